/* test-job-command.c: unit tests for agent/job-command.c: the ansible-playbook argv and
 * environment built from a full assignment, the unit spec, redaction of secret-looking
 * environment values, and the job_outcome() table (success, exit codes, timeout, cancel, OOM,
 * signals, unexpected results), and the container runtime (podman command line, pull step,
 * ExecStopPost, podman exit statuses). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sys/stat.h>

#include "agent-exec.h"
#include "drover/json-util.h"
#include "drover/util.h"

static const char *env_get(char **env, const char *name) {
        size_t n = strlen(name);
        const char *found = NULL;
        for (char **i = env; i && *i; i++)
                if (strncmp(*i, name, n) == 0 && (*i)[n] == '=') {
                        assert_null(found);     /* each name once */
                        found = *i + n + 1;
                }
        return found;
}

static job_dir *fake_dir(json_t *assignment) {
        job_dir *d = calloc(1, sizeof *d);
        assert_non_null(d);
        d->job_id = 12;
        d->attempt = 1;
        d->root = strdup("/var/lib/drover/jobs/12");
        d->artifacts = strdup("/var/lib/drover/jobs/12/artifacts/12");
        d->events_path = strdup("/var/lib/drover/jobs/12/artifacts/12/job_events.jsonl");
        d->stdout_path = strdup("/var/lib/drover/jobs/12/artifacts/12/stdout");
        d->stderr_path = strdup("/var/lib/drover/jobs/12/artifacts/12/stderr");
        d->result_path = strdup("/var/lib/drover/jobs/12/artifacts/12/unit-result");
        d->project = strdup("/var/lib/drover/jobs/12/project");
        d->inventory = strdup("/var/lib/drover/jobs/12/inventory/hosts.json");
        d->extravars = strdup("/var/lib/drover/jobs/12/env/extravars");
        d->assignment = assignment;
        return d;
}

static agent_config fake_cfg(void) {
        return (agent_config) {
                .state_dir = (char *) "/var/lib/drover",
                .share_dir = (char *) "/usr/share/drover",
                .ansible_playbook = (char *) "/usr/bin/ansible-playbook",
                .unit = {
                        .memory_max = 512ULL << 20,
                        .cpu_quota_usec = 500000,
                        .tasks_max = 100,
                        .stop_timeout_usec = 10 * USEC_PER_SEC,
                },
        };
}

static void test_full_assignment(void **state) {
        json_t *a = json_loads("{\"job\": 12, \"attempt\": 1, \"name\": \"Demo\", \"job_type\": \"check\","
                               " \"playbook\": \"plays/site.yml\", \"limit\": \"web:!web3\", \"forks\": 7,"
                               " \"verbosity\": 3, \"job_tags\": \"a,b\", \"skip_tags\": \"c\", \"diff_mode\": true,"
                               " \"timeout\": 30, \"extra_vars\": {\"x\": 1},"
                               " \"env\": {\"FOO\": \"bar\", \"N\": 5, \"B\": true, \"MY_PASSWORD\": \"hunter2\","
                               "          \"DROVER_EVENTS_FILE\": \"/evil\", \"bad name\": \"x\", \"HOME\": \"/h\"}}", 0, NULL);
        assert_non_null(a);
        agent_config cfg = fake_cfg();
        job_dir *d = fake_dir(a);
        job_command cmd = {};

        assert_int_equal(job_command_build(&cfg, d, &cmd), 0);
        const char *want[] = { "/usr/bin/ansible-playbook", "-i", d->inventory, "-e",
                               "@/var/lib/drover/jobs/12/env/extravars", "--limit", "web:!web3", "-f", "7", "-vvv",
                               "-t", "a,b", "--skip-tags", "c", "-C", "-D", "plays/site.yml", NULL };
        for (size_t i = 0; want[i]; i++) {
                assert_non_null(cmd.argv[i]);
                assert_string_equal(cmd.argv[i], want[i]);
        }
        assert_int_equal(strv_length(cmd.argv), ELEMENTSOF(want) - 1);
        assert_string_equal(cmd.cwd, "/var/lib/drover/jobs/12/project");

        assert_string_equal(env_get(cmd.env, "PATH"), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        assert_string_equal(env_get(cmd.env, "HOME"), "/h");   /* assignment env may override HOME */
        assert_string_equal(env_get(cmd.env, "LANG"), "C.UTF-8");
        assert_string_equal(env_get(cmd.env, "ANSIBLE_STDOUT_CALLBACK"), "drover");
        assert_string_equal(env_get(cmd.env, "ANSIBLE_CALLBACK_PLUGINS"), "/usr/share/drover/callback");
        assert_string_equal(env_get(cmd.env, "DROVER_EVENTS_FILE"), d->events_path);   /* protected */
        assert_string_equal(env_get(cmd.env, "DROVER_JOB_ID"), "12");
        assert_string_equal(env_get(cmd.env, "JOB_ID"), "12");
        assert_string_equal(env_get(cmd.env, "ANSIBLE_HOST_KEY_CHECKING"), "False");
        assert_string_equal(env_get(cmd.env, "ANSIBLE_RETRY_FILES_ENABLED"), "False");
        assert_string_equal(env_get(cmd.env, "ANSIBLE_FORCE_COLOR"), "false");
        assert_string_equal(env_get(cmd.env, "ANSIBLE_CACHE_PLUGIN"), "jsonfile");
        assert_string_equal(env_get(cmd.env, "ANSIBLE_CACHE_PLUGIN_CONNECTION"),
                            "/var/lib/drover/jobs/12/artifacts/12/fact_cache");
        assert_string_equal(env_get(cmd.env, "ANSIBLE_LOCAL_TEMP"), "/var/lib/drover/jobs/12/tmp");
        assert_string_equal(env_get(cmd.env, "ANSIBLE_REMOTE_TEMP"), "/tmp");
        assert_string_equal(env_get(cmd.env, "ANSIBLE_SSH_CONTROL_PATH_DIR"), "/var/lib/drover/jobs/12/cp");
        /* ANSIBLE_GATHER_TIMEOUT is deprecated in ansible-core 2.14 (a warning on every job): not set */
        assert_null(env_get(cmd.env, "ANSIBLE_GATHER_TIMEOUT"));
        assert_string_equal(env_get(cmd.env, "PYTHONUNBUFFERED"), "1");
        assert_string_equal(env_get(cmd.env, "FOO"), "bar");
        assert_string_equal(env_get(cmd.env, "N"), "5");
        assert_string_equal(env_get(cmd.env, "B"), "True");
        assert_string_equal(env_get(cmd.env, "MY_PASSWORD"), "hunter2");
        assert_null(env_get(cmd.env, "bad name"));

        /* unit spec */
        unit_spec spec;
        job_command_unit_spec(&cfg, d, &cmd, &spec);
        assert_string_equal(spec.name, "drover-job-12.service");
        assert_string_equal(spec.description, "drover job 12 (Demo)");
        assert_string_equal(spec.slice, "drover-jobs.slice");
        assert_ptr_equal(spec.argv, cmd.argv);
        assert_ptr_equal(spec.env, cmd.env);
        assert_string_equal(spec.working_directory, cmd.cwd);
        assert_string_equal(spec.stdout_append, d->stdout_path);
        assert_string_equal(spec.stderr_append, d->stderr_path);
        assert_string_equal(spec.result_path, d->result_path);
        assert_true(spec.runtime_max_usec == 30 * USEC_PER_SEC);
        assert_ptr_equal(spec.limits, &cfg.unit);

        /* redaction */
        json_t *r = job_command_redacted_env(cmd.env);
        assert_non_null(r);
        assert_string_equal(json_get_string(r, "MY_PASSWORD", ""), "**********");
        assert_string_equal(json_get_string(r, "ANSIBLE_HOST_KEY_CHECKING", ""), "False");
        assert_string_equal(json_get_string(r, "FOO", ""), "bar");
        json_decref(r);

        job_command_done(&cmd);
        assert_null(cmd.argv);
        job_dir_free(d);
}

static void test_minimal_assignment(void **state) {
        json_t *a = json_loads("{\"job\": 12, \"playbook\": \"site.yml\", \"job_type\": \"run\", \"forks\": 0,"
                               " \"verbosity\": 9, \"diff_mode\": false, \"timeout\": 0}", 0, NULL);
        agent_config cfg = fake_cfg();
        job_dir *d = fake_dir(a);
        job_command cmd = {};

        assert_int_equal(job_command_build(&cfg, d, &cmd), 0);
        const char *want[] = { "/usr/bin/ansible-playbook", "-i", d->inventory, "-e",
                               "@/var/lib/drover/jobs/12/env/extravars", "-vvvvv", "site.yml", NULL };
        assert_int_equal(strv_length(cmd.argv), ELEMENTSOF(want) - 1);
        for (size_t i = 0; want[i]; i++)
                assert_string_equal(cmd.argv[i], want[i]);
        assert_string_equal(env_get(cmd.env, "HOME"), "/var/lib/drover/jobs/12/home");

        unit_spec spec;
        job_command_unit_spec(&cfg, d, &cmd, &spec);
        assert_true(spec.runtime_max_usec == 0);
        assert_string_equal(spec.description, "drover job 12");
        job_command_done(&cmd);
        job_dir_free(d);
}

static void test_bad_playbook(void **state) {
        const char *bad[] = { "{\"job\": 1}", "{\"job\": 1, \"playbook\": \"/etc/passwd\"}",
                              "{\"job\": 1, \"playbook\": \"../x.yml\"}", "{\"job\": 1, \"playbook\": \"a/../../x.yml\"}",
                              "{\"job\": 1, \"playbook\": \"\"}", "{\"job\": 1, \"playbook\": 5}",
                              "{\"job\": 1, \"playbook\": \"s.yml\", \"forks\": -1}",
                              "{\"job\": 1, \"playbook\": \"s.yml\", \"env\": []}" };
        agent_config cfg = fake_cfg();
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                json_t *a = json_loads(bad[i], 0, NULL);
                assert_non_null(a);
                job_dir *d = fake_dir(a);
                job_command cmd = {};
                assert_int_equal(job_command_build(&cfg, d, &cmd), -EINVAL);
                assert_null(cmd.argv);
                job_dir_free(d);
        }
}

static void test_redaction_rule(void **state) {
        char *env[] = { "ANSIBLE_HOST_KEY_CHECKING=False", "API_KEY=k1", "apikey=k2", "SSH_KEYS=k3",
                        "AWS_SECRET_ACCESS_KEY=k4", "AWS_ACCESS_KEY_ID=AKIA", "GITHUB_TOKEN=t", "db_passwd=p",
                        "VAULT_PASSWORD_FILE=/x", "MY_CREDENTIALS=c", "client_secret=s", "KEYBOARD=us",
                        "PATH=/bin", "EMPTY=", "noequals", NULL };
        json_t *r = job_command_redacted_env(env);
        assert_non_null(r);
        const char *stars = "**********";
        assert_string_equal(json_get_string(r, "ANSIBLE_HOST_KEY_CHECKING", ""), "False");
        assert_string_equal(json_get_string(r, "API_KEY", ""), stars);
        assert_string_equal(json_get_string(r, "apikey", ""), stars);
        assert_string_equal(json_get_string(r, "SSH_KEYS", ""), stars);
        assert_string_equal(json_get_string(r, "AWS_SECRET_ACCESS_KEY", ""), stars);
        /* KEY as a word: redacted even where the value is only an identifier (cautious) */
        assert_string_equal(json_get_string(r, "AWS_ACCESS_KEY_ID", ""), stars);
        assert_string_equal(json_get_string(r, "GITHUB_TOKEN", ""), stars);
        assert_string_equal(json_get_string(r, "db_passwd", ""), stars);
        assert_string_equal(json_get_string(r, "VAULT_PASSWORD_FILE", ""), stars);
        assert_string_equal(json_get_string(r, "MY_CREDENTIALS", ""), stars);
        assert_string_equal(json_get_string(r, "client_secret", ""), stars);
        assert_string_equal(json_get_string(r, "KEYBOARD", ""), "us");
        assert_string_equal(json_get_string(r, "PATH", ""), "/bin");
        assert_string_equal(json_get_string(r, "EMPTY", "x"), "");
        assert_null(json_object_get(r, "noequals"));
        json_decref(r);
}

static void check_outcome(const char *result, const char *code, const char *status_s, int64_t oom, bool canceled,
                          const char *want_status, int want_rc, const char *want_expl) {
        agent_config cfg = fake_cfg();
        job_unit_result u = { .oom_kills = oom };
        const char *status = NULL;
        char *expl = NULL;
        int rc = -12345;

        snprintf(u.service_result, sizeof u.service_result, "%s", result);
        snprintf(u.exit_code, sizeof u.exit_code, "%s", code);
        snprintf(u.exit_status, sizeof u.exit_status, "%s", status_s);
        assert_int_equal(job_outcome(&cfg, &u, canceled, &status, &rc, &expl), 0);
        assert_string_equal(status, want_status);
        assert_int_equal(rc, want_rc);
        if (!want_expl)
                assert_null(expl);
        else {
                assert_non_null(expl);
                if (strstr(expl, want_expl) == NULL)
                        fail_msg("explanation '%s' lacks '%s'", expl, want_expl);
        }
        free(expl);
}

static void test_outcome_table(void **state) {
        check_outcome("success", "exited", "0", 0, false, "successful", 0, NULL);
        check_outcome("exit-code", "exited", "2", 0, false, "failed", 2, NULL);
        check_outcome("exit-code", "exited", "4", -1, false, "failed", 4, NULL);
        check_outcome("timeout", "killed", "TERM", 0, false, "failed", 254, "Job terminated due to timeout");
        check_outcome("timeout", "killed", "KILL", 0, true, "canceled", 254, "Job canceled");
        check_outcome("success", "killed", "TERM", 0, true, "canceled", 254, "Job canceled");
        check_outcome("signal", "killed", "KILL", 1, false, "failed", 137, "memory limit (MemoryMax=536870912) exceeded");
        check_outcome("oom-kill", "killed", "KILL", 0, false, "failed", 137, "Job killed: memory limit");
        check_outcome("signal", "killed", "KILL", 0, false, "failed", 137, "Job killed by signal SIGKILL");
        check_outcome("signal", "killed", "SEGV", -1, false, "failed", 139, "Job killed by signal SIGSEGV");
        check_outcome("core-dump", "dumped", "ABRT", 0, false, "failed", 134, "SIGABRT");
        check_outcome("signal", "killed", "BOGUS", 0, false, "error", -1, "Result=signal");
        check_outcome("exit-code", "exited", "x", 0, false, "error", -1, "EXIT_STATUS=x");
        check_outcome("start-limit-hit", "-", "-", -1, false, "error", -1, "start-limit-hit");
        check_outcome("resources", "-", "-", -1, false, "error", -1, "Result=resources");
}

static void test_unit_name(void **state) {
        char buf[64];
        assert_string_equal(job_unit_name(12, buf), "drover-job-12.service");
        assert_string_equal(job_unit_name(INT64_MAX, buf), "drover-job-9223372036854775807.service");
}

/* ---- the container runtime (execution environments) ---- */

static bool strv_has_pair(char **l, const char *a, const char *b) {
        for (char **i = l; i && i[0] && i[1]; i++)
                if (streq(i[0], a) && streq(i[1], b))
                        return true;
        return false;
}

static void test_container_command(void **state) {
        char tmpl[] = "/tmp/test-job-command.XXXXXX";
        assert_non_null(mkdtemp(tmpl));
        _cleanup_free_ char *state_dir = strjoin(tmpl, "/state", NULL), *proj = strjoin(tmpl, "/proj", NULL);
        assert_int_equal(mkdir(proj, 0755), 0);
        char *global[] = { (char *) "--events-backend=file", NULL };
        char *run[] = { (char *) "--cgroups=disabled", (char *) "--network=none", NULL };
        agent_config cfg = fake_cfg();
        cfg.state_dir = state_dir;
        cfg.podman = (agent_podman_config) { .enabled = true, .path = (char *) "/bin/true",
                                             .global_options = global, .run_options = run };
        json_t *a = json_loads("{\"job\": 12, \"attempt\": 3, \"name\": \"Demo\", \"playbook\": \"site.yml\","
                               " \"inventory\": {}, \"env\": {\"MY_PASSWORD\": \"hunter2\", \"LD_PRELOAD\": \"/x.so\","
                               "   \"CONTAINERS_CONF\": \"/evil.conf\", \"XDG_CONFIG_HOME\": \"/evil\"},"
                               " \"execution_environment\": {\"id\": 1, \"name\": \"EE\", \"image\": \"reg.example:5000/ee:1\","
                               "   \"pull\": \"always\", \"auth\": {\"registry\": \"reg.example:5000\", \"username\": \"u\","
                               "   \"password\": \"pw-secret\", \"verify_ssl\": false}}}", 0, NULL);
        job_dir *d = NULL;
        job_command cmd = {};

        assert_int_equal(job_dir_create(&cfg, a, proj, &d), 0);
        assert_int_equal(job_command_build(&cfg, d, &cmd), 0);
        _cleanup_free_ char *name = NULL;

        /* podman [global] run --rm ... */
        assert_string_equal(cmd.argv[0], "/bin/true");
        assert_string_equal(cmd.argv[1], "--events-backend=file");
        assert_string_equal(cmd.argv[2], "run");
        assert_true(strv_contains(cmd.argv, "--rm"));
        assert_true(strv_has_pair(cmd.argv, "--name", "drover-job-12"));
        assert_string_equal(cmd.container_name, "drover-job-12");
        assert_true(strv_has_pair(cmd.argv, "--label", "drover.job=12"));
        assert_true(strv_has_pair(cmd.argv, "--label", "drover.attempt=3"));
        assert_true(strv_contains(cmd.argv, "--cgroups=disabled"));
        assert_true(strv_contains(cmd.argv, "--network=none"));
        assert_true(strv_contains(cmd.argv, "--pull=never"));   /* the pull step ran before */
        _cleanup_free_ char *real = realpath(proj, NULL);
        _cleanup_free_ char *mproj = strjoin(real, ":", d->project, ":ro", NULL);
        _cleanup_free_ char *minv = strjoin(d->root, "/inventory:", d->root, "/inventory:ro", NULL);
        _cleanup_free_ char *menv = strjoin(d->root, "/env:", d->root, "/env:ro", NULL);
        _cleanup_free_ char *mart = strjoin(d->artifacts, ":", d->artifacts, ":rw", NULL);
        assert_true(strv_has_pair(cmd.argv, "-v", mproj));
        assert_true(strv_has_pair(cmd.argv, "-v", minv));
        assert_true(strv_has_pair(cmd.argv, "-v", menv));
        assert_true(strv_has_pair(cmd.argv, "-v", mart));
        assert_true(strv_has_pair(cmd.argv, "-v", "/usr/share/drover/callback:/usr/share/drover/callback:ro"));
        assert_true(strv_has_pair(cmd.argv, "-w", d->project));
        /* environment by name only: no value (no secret) on the command line */
        assert_true(strv_has_pair(cmd.argv, "-e", "MY_PASSWORD"));
        assert_true(strv_has_pair(cmd.argv, "-e", "DROVER_EVENTS_FILE"));
        for (char **i = cmd.argv; *i; i++) {
                assert_null(strstr(*i, "hunter2"));
                assert_null(strstr(*i, "pw-secret"));
        }
        /* image, then ansible-playbook with the systemd runtime's arguments */
        size_t n = strv_length(cmd.argv), k;
        for (k = 0; k < n && !streq(cmd.argv[k], "reg.example:5000/ee:1"); k++)
                ;
        assert_true(k + 1 < n);
        assert_string_equal(cmd.argv[k + 1], "ansible-playbook");
        assert_string_equal(cmd.argv[k + 2], "-i");
        assert_string_equal(cmd.argv[k + 3], d->inventory);
        assert_string_equal(cmd.argv[n - 1], "site.yml");
        assert_string_equal(env_get(cmd.env, "MY_PASSWORD"), "hunter2");     /* the unit's Environment= */
        assert_string_equal(env_get(cmd.env, "DROVER_EVENTS_FILE"), d->events_path);
        /* podman (root) runs with a safe HOME and PATH; the container gets the job's by value */
        assert_string_equal(env_get(cmd.env, "HOME"), "/root");
        assert_string_equal(env_get(cmd.env, "PATH"), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        _cleanup_free_ char *home = strjoin("HOME=", d->root, "/home", NULL);
        assert_true(strv_has_pair(cmd.argv, "-e", home));
        assert_true(strv_has_pair(cmd.argv, "-e", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
        /* what would configure podman or the loader reaches neither podman nor the container */
        static const char *const dropped[] = { "LD_PRELOAD", "CONTAINERS_CONF", "XDG_CONFIG_HOME" };
        for (size_t i = 0; i < ELEMENTSOF(dropped); i++) {
                assert_null(env_get(cmd.env, dropped[i]));
                for (char **e = cmd.argv; *e; e++)
                        assert_null(startswith(*e, dropped[i]));
        }

        /* the unit's main process: the pull step, ending with the podman run argv */
        assert_non_null(cmd.unit_argv);
        assert_string_equal(cmd.unit_argv[0], "/bin/bash");
        assert_string_equal(cmd.unit_argv[1], "-c");
        assert_string_equal(cmd.unit_argv[3], "drover-pull");
        assert_string_equal(cmd.unit_argv[4], "always");
        assert_string_equal(cmd.unit_argv[5], "reg.example:5000/ee:1");
        assert_string_equal(cmd.unit_argv[6], d->auth_path);
        assert_string_equal(cmd.unit_argv[7], d->pull_error_path);
        assert_string_equal(cmd.unit_argv[8], "2");     /* podman + 1 global option */
        assert_string_equal(cmd.unit_argv[9], "1");     /* --tls-verify=false from verify_ssl false */
        assert_string_equal(cmd.unit_argv[12], "--tls-verify=false");
        size_t un = strv_length(cmd.unit_argv);
        assert_int_equal(un, 13 + n);
        for (size_t i = 0; i < n; i++)
                assert_string_equal(cmd.unit_argv[13 + i], cmd.argv[i]);

        /* ExecStopPost: podman rm -f -i NAME, rm -f auth file */
        assert_non_null(cmd.exec_stop_post);
        assert_string_equal(cmd.exec_stop_post[0][0], "/bin/true");
        assert_string_equal(cmd.exec_stop_post[0][2], "rm");
        assert_string_equal(cmd.exec_stop_post[0][5], "drover-job-12");
        assert_string_equal(cmd.exec_stop_post[1][0], "/bin/rm");
        assert_string_equal(cmd.exec_stop_post[1][2], d->auth_path);
        assert_null(cmd.exec_stop_post[2]);

        unit_spec spec;
        job_command_unit_spec(&cfg, d, &cmd, &spec);
        assert_ptr_equal(spec.argv, cmd.unit_argv);
        assert_ptr_equal(spec.exec_stop_post, cmd.exec_stop_post);
        assert_ptr_equal(spec.env, cmd.env);
        assert_true(spec.limits == &cmd.container_limits);
        assert_true(spec.limits->memory_max == cfg.unit.memory_max);
        assert_true(spec.limits->tasks_max == cfg.unit.tasks_max);
        assert_null(spec.limits->user);

        job_command_done(&cmd);
        assert_null(cmd.unit_argv);

        /* a node without podman refuses, it never falls back to the systemd runtime */
        cfg.podman.enabled = false;
        assert_int_equal(job_command_build(&cfg, d, &cmd), -EOPNOTSUPP);
        cfg.podman.enabled = true;
        cfg.podman.path = (char *) "/nonexistent/podman";
        assert_int_equal(job_command_build(&cfg, d, &cmd), -EOPNOTSUPP);

        assert_int_equal(job_dir_remove(d), 0);
        job_dir_free(d);
        json_decref(a);
        (void) rm_rf(tmpl);
}

static void test_container_validation(void **state) {
        static const char *const bad[] = {
                "{\"image\": \"\"}", "{\"image\": \"-x\"}", "{\"image\": \"a b\"}", "{\"image\": 5}",
                "{\"image\": \"i\", \"pull\": \"sometimes\"}", "{\"image\": \"i\", \"auth\": 1}",
                "{\"image\": \"i\", \"auth\": {\"username\": \"u\", \"password\": \"p\"}}",
                "{\"image\": \"i\", \"auth\": {\"registry\": \"r r\", \"username\": \"u\", \"password\": \"p\"}}",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                json_t *ee = json_loads(bad[i], 0, NULL);
                assert_non_null(ee);
                assert_int_equal(job_podman_ee_validate(1, ee), -EINVAL);
                json_decref(ee);
        }
        json_t *ok = json_loads("{\"image\": \"localhost/drover-ee:latest\", \"pull\": \"\", \"auth\": null}", 0, NULL);
        assert_int_equal(job_podman_ee_validate(1, ok), 0);
        json_decref(ok);
        assert_string_equal(job_podman_pull_policy("always"), "always");
        assert_string_equal(job_podman_pull_policy("never"), "never");
        assert_string_equal(job_podman_pull_policy("missing"), "missing");
        assert_string_equal(job_podman_pull_policy(""), "missing");
        assert_string_equal(job_podman_pull_policy(NULL), "missing");
        json_t *a = json_loads("{\"execution_environment\": null}", 0, NULL);
        assert_null(job_podman_ee(a));
        json_decref(a);
}

static void check_container_outcome(const char *result, const char *status_s, int64_t oom, bool pull_failed,
                                    const char *detail, const char *want_status, int want_rc, const char *want_expl) {
        agent_config cfg = fake_cfg();
        job_unit_result u = { .oom_kills = oom, .container = true, .pull_failed = pull_failed };
        const char *status = NULL;
        char *expl = NULL;
        int rc = -12345;

        snprintf(u.service_result, sizeof u.service_result, "%s", result);
        snprintf(u.exit_code, sizeof u.exit_code, "%s", streq(result, "exit-code") ? "exited" : "killed");
        snprintf(u.exit_status, sizeof u.exit_status, "%s", status_s);
        snprintf(u.image, sizeof u.image, "localhost/ee:1");
        snprintf(u.detail, sizeof u.detail, "%s", strempty(detail));
        assert_int_equal(job_outcome(&cfg, &u, false, &status, &rc, &expl), 0);
        assert_string_equal(status, want_status);
        assert_int_equal(rc, want_rc);
        if (!want_expl)
                assert_null(expl);
        else {
                assert_non_null(expl);
                if (strstr(expl, want_expl) == NULL)
                        fail_msg("explanation '%s' lacks '%s'", expl, want_expl);
        }
        free(expl);
}

static void test_container_outcome_table(void **state) {
        check_container_outcome("success", "0", 0, false, NULL, "successful", 0, NULL);
        check_container_outcome("exit-code", "2", 0, false, NULL, "failed", 2, NULL);
        check_container_outcome("exit-code", "4", 0, false, NULL, "failed", 4, NULL);
        check_container_outcome("exit-code", "125", 0, true, "unauthorized: authentication required", "error", -1,
                                "image localhost/ee:1 could not be used: unauthorized");
        check_container_outcome("exit-code", "1", 0, true, "image localhost/ee:1 is not present", "error", -1,
                                "not present");
        check_container_outcome("exit-code", "125", 0, false, "crun: bad", "error", -1,
                                "podman failed to run the execution environment image localhost/ee:1: crun: bad");
        check_container_outcome("exit-code", "127", 0, false, NULL, "error", -1, "ansible-playbook was not found");
        check_container_outcome("exit-code", "126", 0, false, NULL, "error", -1, "could not be run");
        check_container_outcome("exit-code", "137", 2, false, NULL, "failed", 137, "memory limit (MemoryMax=536870912)");
        check_container_outcome("exit-code", "137", 0, false, NULL, "failed", 137, "Job killed by signal SIGKILL");
        check_container_outcome("exit-code", "143", -1, false, NULL, "failed", 143, "Job killed by signal SIGTERM");
        check_container_outcome("timeout", "TERM", 0, false, NULL, "failed", 254, "Job terminated due to timeout");
        check_container_outcome("signal", "KILL", 1, false, NULL, "failed", 137, "memory limit");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_full_assignment),
                cmocka_unit_test(test_minimal_assignment),
                cmocka_unit_test(test_bad_playbook),
                cmocka_unit_test(test_redaction_rule),
                cmocka_unit_test(test_outcome_table),
                cmocka_unit_test(test_unit_name),
                cmocka_unit_test(test_container_command),
                cmocka_unit_test(test_container_validation),
                cmocka_unit_test(test_container_outcome_table),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
