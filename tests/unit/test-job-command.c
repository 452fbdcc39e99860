/* test-job-command.c: unit tests for agent/job-command.c: the ansible-playbook argv and
 * environment built from a full assignment, the unit spec, redaction of secret-looking
 * environment values, and the job_outcome() table (success, exit codes, timeout, cancel, OOM,
 * signals, unexpected results). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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
        assert_string_equal(json_get_string(r, "AWS_ACCESS_KEY_ID", ""), "AKIA");
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

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_full_assignment),
                cmocka_unit_test(test_minimal_assignment),
                cmocka_unit_test(test_bad_playbook),
                cmocka_unit_test(test_redaction_rule),
                cmocka_unit_test(test_outcome_table),
                cmocka_unit_test(test_unit_name),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
