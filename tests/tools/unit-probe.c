/* unit-probe.c: a small CLI over agent/unit.c for the integration tests (tests/integration/
 * test_units.py), run inside a private systemd:
 *   unit-probe start NAME RESULT_PATH ARGV...   limits from $PROBE_MEMORY_MAX, $PROBE_CPU_QUOTA_USEC,
 *                                               $PROBE_TASKS_MAX, $PROBE_RUNTIME_MAX_USEC,
 *                                               $PROBE_STOP_TIMEOUT_USEC, $PROBE_USER, $PROBE_SLICE,
 *                                               $PROBE_STDOUT, $PROBE_STDERR, $PROBE_CWD;
 *                                               environment entries from $PROBE_ENV (NAME=value;...)
 *   unit-probe state NAME                       prints "loaded active sub result has_job"
 *   unit-probe prop NAME IFACE PROP             prints a uint64 property
 *   unit-probe stop NAME | kill NAME SIGNO | list PATTERN
 *   unit-probe job STATE_DIR ASSIGNMENT_JSON PROJECT_DIR
 *                                               the agent's execution path: job_dir_create,
 *                                               job_command_build, job_command_unit_spec, unit_start
 *                                               (callback from $PROBE_SHARE_DIR/callback); prints the unit
 *   unit-probe outcome STATE_DIR JOB_ID [canceled]  prints "status rc explanation" (job_outcome)
 * Exit status 0 on success; on failure the error text goes to stderr and the status is 1
 * (2 for -EEXIST, 3 for usage). */
#include <inttypes.h>
#include <signal.h>

#include "agent-exec.h"
#include "drover/log.h"

static uint64_t env_u64(const char *name) {
        const char *v = getenv(name);
        if (isempty(v))
                return UINT64_MAX;
        return strtoull(v, NULL, 10);
}

static int cmd_start(unit_bus *b, int argc, char **argv) {
        agent_unit_defaults lim = {
                .memory_max = env_u64("PROBE_MEMORY_MAX"),
                .cpu_quota_usec = env_u64("PROBE_CPU_QUOTA_USEC"),
                .tasks_max = env_u64("PROBE_TASKS_MAX"),
                .stop_timeout_usec = env_u64("PROBE_STOP_TIMEOUT_USEC"),
                .user = getenv("PROBE_USER"),
        };
        char **env = NULL;
        char *err = NULL;
        uint64_t rt = env_u64("PROBE_RUNTIME_MAX_USEC");
        int r;

        if (lim.stop_timeout_usec == UINT64_MAX)
                lim.stop_timeout_usec = 10 * 1000000ULL;
        const char *e = getenv("PROBE_ENV");
        if (!isempty(e)) {
                char *copy = strdup(e), *save = NULL;
                for (char *t = strtok_r(copy, ";", &save); t; t = strtok_r(NULL, ";", &save))
                        strv_extend(&env, t);
                free(copy);
        }
        unit_spec spec = {
                .name = argv[0],
                .description = "unit-probe",
                .slice = getenv("PROBE_SLICE"),
                .argv = argv + 2,
                .env = env,
                .working_directory = getenv("PROBE_CWD"),
                .stdout_append = getenv("PROBE_STDOUT"),
                .stderr_append = getenv("PROBE_STDERR"),
                .runtime_max_usec = rt == UINT64_MAX ? 0 : rt,
                .limits = &lim,
                .result_path = argv[1],
        };
        r = unit_start(b, &spec, &err);
        strv_free(env);
        if (r < 0) {
                fprintf(stderr, "start failed (%s): %s\n", strerror(-r), strna(err));
                free(err);
                return r == -EEXIST ? 2 : 1;
        }
        return 0;
}

static agent_config probe_config(char *state_dir) {
        return (agent_config) {
                .state_dir = state_dir,
                .share_dir = getenv("PROBE_SHARE_DIR"),
                .ansible_playbook = getenv("PROBE_ANSIBLE_PLAYBOOK"),
                .unit = {
                        .memory_max = env_u64("PROBE_MEMORY_MAX"),
                        .cpu_quota_usec = env_u64("PROBE_CPU_QUOTA_USEC"),
                        .tasks_max = env_u64("PROBE_TASKS_MAX"),
                        .stop_timeout_usec = 10 * 1000000ULL,
                        .user = getenv("PROBE_USER"),
                },
        };
}

static int cmd_job(unit_bus *b, char *state_dir, const char *assignment_path, const char *project) {
        agent_config cfg = probe_config(state_dir);
        json_error_t e;
        json_t *a = json_load_file(assignment_path, 0, &e);
        job_dir *d = NULL;
        job_command cmd = {};
        unit_spec spec;
        char *err = NULL;
        int r;

        if (!a) {
                fprintf(stderr, "%s: %s\n", assignment_path, e.text);
                return 1;
        }
        r = job_dir_create(&cfg, a, project, &d);
        json_decref(a);
        if (r < 0)
                return 1;
        r = job_command_build(&cfg, d, &cmd);
        if (r >= 0) {
                job_command_unit_spec(&cfg, d, &cmd, &spec);
                r = unit_start(b, &spec, &err);
                if (r < 0)
                        fprintf(stderr, "start failed (%s): %s\n", strerror(-r), strna(err));
                else
                        printf("%s\n", spec.name);
        }
        free(err);
        job_command_done(&cmd);
        job_dir_free(d);
        return r < 0;
}

static int cmd_outcome(char *state_dir, const char *id, bool canceled) {
        agent_config cfg = probe_config(state_dir);
        job_dir *d = NULL;
        job_unit_result u;
        const char *status;
        char *expl = NULL;
        int rc, r;

        r = job_dir_open(&cfg, strtoll(id, NULL, 10), &d);
        if (r < 0) {
                fprintf(stderr, "job dir: %s\n", strerror(-r));
                return 1;
        }
        r = job_dir_read_unit_result(d, &u);
        if (r >= 0)
                r = job_outcome(&cfg, &u, canceled || job_dir_cancel_requested(d), &status, &rc, &expl);
        if (r >= 0)
                printf("%s %d %s\n", status, rc, strna(expl));
        else
                fprintf(stderr, "outcome: %s\n", strerror(-r));
        free(expl);
        job_dir_free(d);
        return r < 0;
}

int main(int argc, char **argv) {
        unit_bus *b = NULL;
        int r, ret = 1;

        if (argc < 3) {
                fprintf(stderr, "usage: unit-probe start|state|prop|stop|kill|list ...\n");
                return 3;
        }
        r = unit_bus_open(getenv("PROBE_BUS"), &b);
        if (r < 0)
                return 1;

        const char *verb = argv[1];
        if (streq(verb, "job") && argc == 5)
                ret = cmd_job(b, argv[2], argv[3], argv[4]);
        else if (streq(verb, "outcome") && argc >= 4)
                ret = cmd_outcome(argv[2], argv[3], argc > 4 && streq(argv[4], "canceled"));
        else if (streq(verb, "start") && argc >= 5)
                ret = cmd_start(b, argc - 2, argv + 2);
        else if (streq(verb, "state")) {
                unit_state st;
                r = unit_get_state(b, argv[2], &st);
                if (r >= 0) {
                        printf("%s %s %s %s %s\n", st.loaded ? "loaded" : "not-loaded", st.active_state,
                               st.sub_state, isempty(st.result) ? "-" : st.result, st.has_job ? "job" : "nojob");
                        ret = 0;
                } else
                        fprintf(stderr, "state failed: %s\n", strerror(-r));
        } else if (streq(verb, "prop") && argc == 5) {
                uint64_t v;
                r = unit_get_property_u64(b, argv[2], argv[3], argv[4], &v);
                if (r >= 0) {
                        printf("%" PRIu64 "\n", v);
                        ret = 0;
                } else
                        fprintf(stderr, "prop failed: %s\n", strerror(-r));
        } else if (streq(verb, "stop")) {
                ret = unit_stop(b, argv[2]) < 0;
        } else if (streq(verb, "kill") && argc == 4) {
                r = unit_kill(b, argv[2], atoi(argv[3]));
                if (r < 0)
                        fprintf(stderr, "kill failed: %s\n", strerror(-r));
                ret = r < 0;
        } else if (streq(verb, "list")) {
                char **names = NULL;
                r = unit_list(b, argv[2], &names);
                if (r >= 0) {
                        for (char **n = names; *n; n++)
                                printf("%s\n", *n);
                        strv_free(names);
                        ret = 0;
                }
        } else {
                fprintf(stderr, "unknown command or wrong arguments\n");
                ret = 3;
        }
        unit_bus_close(b);
        return ret;
}
