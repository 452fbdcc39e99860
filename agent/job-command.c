/* job-command.c: what a job runs: the ansible-playbook argv and environment built from an
 * assignment (the same options and ANSIBLE_* variables AWX/ansible-runner use), the transient
 * unit's properties, the redaction of secret-looking environment values, and the mapping of the
 * unit's recorded outcome to an AWX job status. */
#include "agent-exec.h"

#include <ctype.h>
#include <inttypes.h>
#include <signal.h>

#include "drover/json-util.h"
#include "drover/log.h"
#include "drover/redact.h"
#include "drover/util.h"


#define JOB_ENV_MAX_ENTRIES 1024
#define JOB_ENV_MAX_VALUE (128u * 1024u)
#define JOB_ARG_MAX 4096                /* limit, tags, skip_tags, playbook */

static const char *const protected_env[] = {
        "ANSIBLE_STDOUT_CALLBACK", "ANSIBLE_CALLBACK_PLUGINS", "DROVER_EVENTS_FILE", "DROVER_JOB_ID", "JOB_ID",
};

static bool env_name_valid(const char *n) {
        if (!n || !(isalpha((unsigned char) n[0]) || n[0] == '_'))
                return false;
        for (const char *p = n; *p; p++)
                if (!(isalnum((unsigned char) *p) || *p == '_'))
                        return false;
        return strlen(n) <= 256;
}

/* Replace NAME=... in env or append it. */
static int env_set(char ***env, const char *name, const char *value) {
        size_t n = strlen(name);
        char *e = strjoin(name, "=", value, NULL);
        if (!e)
                return -ENOMEM;
        for (char **i = *env; i && *i; i++)
                if (strncmp(*i, name, n) == 0 && (*i)[n] == '=') {
                        free(*i);
                        *i = e;
                        return 0;
                }
        return strv_push(env, e);
}

static bool arg_ok(const char *s) {
        return s && strlen(s) <= JOB_ARG_MAX;
}

/* A playbook path inside the project: relative, no "..", no NUL, not empty. */
static bool playbook_path_ok(const char *p) {
        if (isempty(p) || p[0] == '/' || !arg_ok(p))
                return false;
        for (const char *s = p; *s;) {
                size_t l = strcspn(s, "/");
                if (l == 2 && s[0] == '.' && s[1] == '.')
                        return false;
                s += l;
                if (*s == '/')
                        s++;
        }
        return true;
}

int job_command_build(const agent_config *cfg, const job_dir *d, job_command *ret) {
        _cleanup_strv_free_ char **argv = NULL, **env = NULL;
        _cleanup_free_ char *cwd = NULL, *unit_name = NULL, *description = NULL;
        const json_t *a = d->assignment;
        const char *playbook, *limit, *tags, *skip_tags, *job_type, *name, *share_dir;
        int64_t forks, verbosity;
        char buf[64];
        int r = 0;

        playbook = json_string_value(json_object_get(a, "playbook"));
        limit = json_string_value(json_object_get(a, "limit"));
        tags = json_string_value(json_object_get(a, "job_tags"));
        skip_tags = json_string_value(json_object_get(a, "skip_tags"));
        job_type = json_string_value(json_object_get(a, "job_type"));
        name = json_string_value(json_object_get(a, "name"));
        forks = json_integer_value(json_object_get(a, "forks"));
        verbosity = json_integer_value(json_object_get(a, "verbosity"));

        if (!playbook_path_ok(playbook))
                return log_error_errno(-EINVAL, "Job %" PRId64 ": invalid playbook path", d->job_id);
        if ((limit && !arg_ok(limit)) || (tags && !arg_ok(tags)) || (skip_tags && !arg_ok(skip_tags)))
                return log_error_errno(-EINVAL, "Job %" PRId64 ": limit or tags too long", d->job_id);
        if (forks < 0 || forks > 10000)
                return log_error_errno(-EINVAL, "Job %" PRId64 ": invalid forks %" PRId64, d->job_id, forks);
        verbosity = MAX(0, MIN(verbosity, 5));

        /* argv */
        r = strv_extend(&argv, cfg->ansible_playbook ? cfg->ansible_playbook : "/usr/bin/ansible-playbook");
        if (r >= 0) r = strv_extend(&argv, "-i");
        if (r >= 0) r = strv_extend(&argv, d->inventory);
        if (r >= 0) r = strv_extend(&argv, "-e");
        if (r >= 0) r = strv_extendf(&argv, "@%s", d->extravars);
        if (r >= 0 && !isempty(limit)) {
                r = strv_extend(&argv, "--limit");
                if (r >= 0) r = strv_extend(&argv, limit);
        }
        if (r >= 0 && forks > 0) {
                r = strv_extend(&argv, "-f");
                if (r >= 0) r = strv_extendf(&argv, "%" PRId64, forks);
        }
        if (r >= 0 && verbosity > 0) {
                char v[8] = "-";
                memset(v + 1, 'v', (size_t) verbosity);
                r = strv_extend(&argv, v);
        }
        if (r >= 0 && !isempty(tags)) {
                r = strv_extend(&argv, "-t");
                if (r >= 0) r = strv_extend(&argv, tags);
        }
        if (r >= 0 && !isempty(skip_tags)) {
                r = strv_extend(&argv, "--skip-tags");
                if (r >= 0) r = strv_extend(&argv, skip_tags);
        }
        if (r >= 0 && streq_ptr(job_type, "check"))
                r = strv_extend(&argv, "-C");
        if (r >= 0 && json_is_true(json_object_get(a, "diff_mode")))
                r = strv_extend(&argv, "-D");
        if (r >= 0)
                r = strv_extend(&argv, playbook);
        if (r < 0)
                return log_oom();

        /* environment */
        share_dir = cfg->share_dir ? cfg->share_dir : DROVER_SHARE_DIR;
        snprintf(buf, sizeof buf, "%" PRId64, d->job_id);
        const struct { const char *name; const char *a, *b; } base[] = {
                { "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL },
                { "HOME", d->root, "/home" },
                { "LANG", "C.UTF-8", NULL },
                { "ANSIBLE_STDOUT_CALLBACK", "drover", NULL },
                { "ANSIBLE_CALLBACK_PLUGINS", share_dir, "/callback" },
                { "DROVER_EVENTS_FILE", d->events_path, NULL },
                { "DROVER_JOB_ID", buf, NULL },
                { "ANSIBLE_HOST_KEY_CHECKING", "False", NULL },
                { "ANSIBLE_RETRY_FILES_ENABLED", "False", NULL },
                { "ANSIBLE_FORCE_COLOR", "false", NULL },
                { "ANSIBLE_CACHE_PLUGIN", "jsonfile", NULL },
                { "ANSIBLE_CACHE_PLUGIN_CONNECTION", d->artifacts, "/fact_cache" },
                { "ANSIBLE_LOCAL_TEMP", d->root, "/tmp" },
                { "ANSIBLE_REMOTE_TEMP", "/tmp", NULL },
                { "ANSIBLE_SSH_CONTROL_PATH_DIR", d->root, "/cp" },
                { "PYTHONUNBUFFERED", "1", NULL },
                { "JOB_ID", buf, NULL },
        };
        for (size_t i = 0; i < ELEMENTSOF(base) && r >= 0; i++) {
                _cleanup_free_ char *v = strjoin(base[i].a, base[i].b ? base[i].b : "", NULL);
                r = v ? env_set(&env, base[i].name, v) : -ENOMEM;
        }
        if (r < 0)
                return log_oom();

        /* assignment env: strings, numbers and booleans; drover's own plumbing cannot be overridden */
        const json_t *aenv = json_object_get(a, "env");
        if (aenv && !json_is_object(aenv))
                return log_error_errno(-EINVAL, "Job %" PRId64 ": env is not an object", d->job_id);
        if (json_object_size(aenv) > JOB_ENV_MAX_ENTRIES)
                return log_error_errno(-E2BIG, "Job %" PRId64 ": too many env entries", d->job_id);
        const char *k;
        json_t *v;
        json_object_foreach((json_t *) aenv, k, v) {
                char num[64];
                const char *val = NULL;
                bool skip = false;

                for (size_t i = 0; i < ELEMENTSOF(protected_env); i++)
                        if (streq(k, protected_env[i]))
                                skip = true;
                if (skip || !env_name_valid(k)) {
                        log_warning("Job %" PRId64 ": ignoring environment variable %s", d->job_id,
                                    env_name_valid(k) ? k : "(invalid name)");
                        continue;
                }
                if (json_is_string(v)) {
                        if (json_string_length(v) > JOB_ENV_MAX_VALUE ||
                            strlen(json_string_value(v)) != json_string_length(v))
                                return log_error_errno(-EINVAL, "Job %" PRId64 ": bad value for %s", d->job_id, k);
                        val = json_string_value(v);
                } else if (json_is_integer(v)) {
                        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                        val = num;
                } else if (json_is_real(v)) {
                        snprintf(num, sizeof num, "%.17g", json_real_value(v));
                        val = num;
                } else if (json_is_boolean(v))
                        val = json_is_true(v) ? "True" : "False";
                else
                        continue;
                r = env_set(&env, k, val);
                if (r < 0)
                        return log_oom();
        }

        cwd = strdup(d->project);
        unit_name = malloc(64);
        description = name ? asprintf_safe("drover job %" PRId64 " (%.200s)", d->job_id, name)
                           : asprintf_safe("drover job %" PRId64, d->job_id);
        if (!cwd || !unit_name || !description)
                return log_oom();
        job_unit_name(d->job_id, unit_name);

        job_command c = {
                .argv = TAKE_PTR(argv),
                .env = TAKE_PTR(env),
                .cwd = TAKE_PTR(cwd),
                .unit_name = TAKE_PTR(unit_name),
                .description = TAKE_PTR(description),
        };
        /* An execution environment: the same command, run by podman inside the unit. */
        const json_t *ee = job_podman_ee(a);
        if (ee) {
                r = job_podman_ee_validate(d->job_id, ee);
                if (r >= 0)
                        r = job_podman_command(cfg, d, ee, &c);
                if (r < 0) {
                        job_command_done(&c);
                        return r;
                }
        }
        *ret = c;
        return 0;
}

void job_command_done(job_command *c) {
        if (!c)
                return;
        strv_free(c->argv);
        strv_free(c->env);
        free(c->cwd);
        free(c->unit_name);
        free(c->description);
        strv_free(c->unit_argv);
        job_podman_argvs_free(c->exec_start_pre);
        job_podman_argvs_free(c->exec_stop_post);
        free(c->container_name);
        *c = (job_command) {};
}

/* The redaction rule is env_name_is_secret() (drover/redact.h), shared with the controller. */
static bool env_name_secret(const char *name, size_t n) {
        _cleanup_free_ char *copy = strndup(name, n);
        return env_name_is_secret(copy);
}

json_t *job_command_redacted_env(char *const *env) {
        json_t *o = json_object();
        if (!o)
                return NULL;
        for (char *const *i = env; i && *i; i++) {
                const char *eq = strchr(*i, '=');
                if (!eq || eq == *i)
                        continue;
                size_t n = (size_t) (eq - *i);
                _cleanup_free_ char *name = strndup(*i, n);
                if (!name) {
                        json_decref(o);
                        return NULL;
                }
                const char *value = env_name_secret(name, n) ? "**********" : eq + 1;
                if (json_object_set_new(o, name, json_string(value)) < 0) {
                        /* not UTF-8: keep the name, hide the value */
                        json_object_set_new(o, name, json_string("(not UTF-8)"));
                }
        }
        return o;
}

void job_command_unit_spec(const agent_config *cfg, const job_dir *d, const job_command *cmd, unit_spec *ret) {
        int64_t timeout = json_integer_value(json_object_get(d->assignment, "timeout"));

        *ret = (unit_spec) {
                .name = cmd->unit_name,
                .description = cmd->description,
                .slice = "drover-jobs.slice",
                .argv = cmd->unit_argv ? cmd->unit_argv : cmd->argv,
                .env = cmd->env,
                .working_directory = cmd->cwd,
                .stdout_append = d->stdout_path,
                .stderr_append = d->stderr_path,
                .runtime_max_usec = timeout > 0 && (uint64_t) timeout < UINT64_MAX / USEC_PER_SEC
                                            ? (uint64_t) timeout * USEC_PER_SEC : 0,
                .limits = cmd->container_name ? &cmd->container_limits : &cfg->unit,
                .result_path = d->result_path,
                .exec_start_pre = cmd->exec_start_pre,
                .exec_stop_post = cmd->exec_stop_post,
        };
}

char *job_unit_name(int64_t job_id, char buf[static 64]) {
        snprintf(buf, 64, "drover-job-%" PRId64 ".service", job_id);
        return buf;
}

/* "KILL" / "SIGKILL" / "9" -> 9; -EINVAL if unknown */
static int signal_from_string(const char *s) {
        if (isempty(s))
                return -EINVAL;
        if (isdigit((unsigned char) s[0])) {
                char *end;
                long n = strtol(s, &end, 10);
                return *end == 0 && n > 0 && n < NSIG ? (int) n : -EINVAL;
        }
        const char *p = startswith(s, "SIG") ?: s;
        for (int i = 1; i < NSIG; i++) {
                const char *abbrev = sigabbrev_np(i);
                if (abbrev && streq(abbrev, p))
                        return i;
        }
        return -EINVAL;
}

int job_outcome(const agent_config *cfg, const job_unit_result *r, bool canceled, const char **ret_status,
                int *ret_rc, char **ret_explanation) {
        const char *status;
        char *expl = NULL;
        int rc;

        long cstatus = -1;      /* podman's exit status of a container job that ended with exit-code */
        if (r->container && streq(r->service_result, "exit-code")) {
                char *end;
                cstatus = strtol(r->exit_status, &end, 10);
                if (isempty(r->exit_status) || *end != 0)
                        cstatus = -1;
        }

        if (canceled) {
                status = "canceled", rc = 254;
                expl = strdup("Job canceled");
        } else if (r->container && r->pull_failed) {
                /* the pull step (ExecStartPre) failed: the container never ran */
                status = "error", rc = -1;
                expl = asprintf_safe("Execution environment image %s could not be used: %s", r->image,
                                     isempty(r->detail) ? "pulling it failed" : r->detail);
        } else if (cstatus == 125) {
                status = "error", rc = -1;
                expl = asprintf_safe("podman failed to run the execution environment image %s%s%s", r->image,
                                     isempty(r->detail) ? "" : ": ", r->detail);
        } else if (cstatus == 126 || cstatus == 127) {
                status = "error", rc = -1;
                expl = asprintf_safe("ansible-playbook %s in the execution environment image %s%s%s",
                                     cstatus == 127 ? "was not found" : "could not be run", r->image,
                                     isempty(r->detail) ? "" : ": ", r->detail);
        } else if (cstatus == 128 + SIGKILL && r->oom_kills > 0) {
                /* the container's main process was SIGKILLed by the kernel for the unit's MemoryMax */
                char limit[32];
                uint64_t m = cfg ? cfg->unit.memory_max : UINT64_MAX;
                if (m == UINT64_MAX)
                        snprintf(limit, sizeof limit, "infinity");
                else
                        snprintf(limit, sizeof limit, "%" PRIu64, m);
                status = "failed", rc = 137;
                expl = asprintf_safe("Job killed: memory limit (MemoryMax=%s) exceeded", limit);
        } else if (cstatus > 128 && cstatus < 128 + NSIG && sigabbrev_np((int) (cstatus - 128))) {
                /* podman reports a container process killed by signal N as 128+N */
                status = "failed", rc = (int) cstatus;
                expl = asprintf_safe("Job killed by signal SIG%s", sigabbrev_np((int) (cstatus - 128)));
        } else if (streq(r->service_result, "success")) {
                status = "successful", rc = 0;
        } else if (streq(r->service_result, "oom-kill") ||
                   (streq(r->service_result, "signal") && signal_from_string(r->exit_status) == SIGKILL &&
                    r->oom_kills > 0)) {
                char limit[32];
                uint64_t m = cfg ? cfg->unit.memory_max : UINT64_MAX;
                if (m == UINT64_MAX)
                        snprintf(limit, sizeof limit, "infinity");
                else
                        snprintf(limit, sizeof limit, "%" PRIu64, m);
                status = "failed", rc = 137;
                expl = asprintf_safe("Job killed: memory limit (MemoryMax=%s) exceeded", limit);
        } else if (streq(r->service_result, "exit-code")) {
                char *end;
                long n = strtol(r->exit_status, &end, 10);
                if (isempty(r->exit_status) || *end != 0 || n < 0 || n > 255)
                        goto unexpected;
                status = "failed", rc = (int) n;
        } else if (streq(r->service_result, "timeout")) {
                status = "failed", rc = 254;
                expl = strdup("Job terminated due to timeout");
        } else if (streq(r->service_result, "signal") || streq(r->service_result, "core-dump")) {
                int sig = signal_from_string(r->exit_status);
                if (sig < 0)
                        goto unexpected;
                status = "failed", rc = 128 + sig;
                expl = asprintf_safe("Job killed by signal SIG%s%s", sigabbrev_np(sig) ?: "?",
                                     streq(r->service_result, "core-dump") ? " (core dumped)" : "");
        } else {
        unexpected:
                status = "error", rc = -1;
                expl = asprintf_safe("Job unit ended with an unexpected result: Result=%s EXIT_CODE=%s EXIT_STATUS=%s",
                                     r->service_result, r->exit_code, r->exit_status);
        }

        if (!streq(status, "successful") && !(streq(status, "failed") && rc >= 0 && rc <= 255 &&
                                                streq(r->service_result, "exit-code") && cstatus <= 128) && !expl)
                return log_oom();
        *ret_status = status;
        *ret_rc = rc;
        *ret_explanation = expl;
        return 0;
}
