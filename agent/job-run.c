/* job-run.c: the supervisor thread of one job run: fetch the project, create the job dir, report the
 * start, start the transient unit, follow and upload the events file until the unit has finished,
 * then report the outcome (again, until the controller holds every event) and clean up.
 * In resume mode (after an agent restart) it picks up an existing job dir and its unit. */
#include "agent-internal.h"
#include "agent-exec.h"

#include <sys/stat.h>
#include <unistd.h>

#include "drover/json-util.h"
#include "drover/log.h"
#include "drover/util.h"

#define JOB_PROJECT_MAX_SIZE (1024u * 1024u * 1024u)
#define JOB_PROJECT_TIMEOUT_MS (10 * 60 * 1000L)
#define JOB_COLLECT_WAIT_USEC (5 * USEC_PER_SEC)
#define JOB_ERROR_RC (-1)
#define JOB_DISK_FULL_GRACE_USEC (5 * USEC_PER_SEC)

enum {
        JOB_STARTED = 0,
        JOB_CANCELED_BEFORE_START = 1,
};

typedef struct job_report {
        const char *status;
        int rc;
        char *explanation;
        const char *result;
        const char *exit_code;
        const char *exit_status;
} job_report;

static bool job_flag_stop(agent_job *j) {
        pthread_mutex_lock(&j->agent->lock);
        bool s = j->stop_requested;
        pthread_mutex_unlock(&j->agent->lock);
        return s;
}

static bool job_flag_cancel(agent_job *j) {
        pthread_mutex_lock(&j->agent->lock);
        bool s = j->cancel_requested;
        pthread_mutex_unlock(&j->agent->lock);
        return s;
}

/* One request to the controller about this job, retried on transport errors, 5xx and 429.
 * 0 on 2xx (resp filled: caller clears), -ESTALE on 409 (superseded), -ECANCELED when the agent
 * stops, -EPROTO on any other refusal (*ret_why set). */
static int job_request(agent_job *j, http_client *c, const char *what, const char *method, const char *path,
                       const json_t *body, bool raw, http_response *resp, char **ret_why) {
        agent_backoff b = {};
        int r;

        for (;;) {
                if (agent_is_stopping(j->agent))
                        return -ECANCELED;
                if (job_flag_stop(j))
                        return -ESTALE;
                *resp = (http_response) {};
                if (raw)
                        r = http_client_request_raw(c, method, path, NULL, NULL, 0, resp);
                else
                        r = agent_request(j->agent, c, method, path, body, resp);
                if (r >= 0 && resp->status >= 200 && resp->status < 300) {
                        agent_note_reachable(j->agent, true, NULL);
                        return 0;
                }
                _cleanup_free_ char *why = agent_describe_failure(r, resp);
                if (r >= 0 && resp->status == 409) {
                        log_notice("Job %" PRId64 ": %s refused (%s); dropping this run.", j->job_id, what, strna(why));
                        http_response_clear(resp);
                        return -ESTALE;
                }
                if (!agent_response_retryable(r, resp)) {
                        log_error("Job %" PRId64 ": %s refused: %s", j->job_id, what, strna(why));
                        http_response_clear(resp);
                        if (ret_why)
                                *ret_why = TAKE_PTR(why);
                        return -EPROTO;
                }
                agent_note_reachable(j->agent, false, why);
                log_debug("Job %" PRId64 ": %s failed (%s), retrying.", j->job_id, what, strna(why));
                _cleanup_free_ char *ra = resp->retry_after ? strdup(resp->retry_after) : NULL;
                http_response_clear(resp);
                r = agent_backoff_wait(j->agent, &b, ra);
                if (r < 0)
                        return r;
        }
}

static int job_fetch_project(agent_job *j, http_client *c, char **ret_path, char **ret_error) {
        agent *a = j->agent;
        const json_t *project = json_object_get(j->assignment, "project");
        const char *hash = json_get_string(project, "hash", NULL);
        const char *url = json_get_string(project, "url", NULL);
        _cleanup_free_ char *default_url = NULL, *path = NULL;
        int r;

        if (isempty(hash) || strlen(hash) != 64 || strspn(hash, "0123456789abcdef") != 64) {
                *ret_error = strdup("The assignment carries no valid project hash");
                return -EBADMSG;
        }
        if (!url || !startswith(url, "/api/agent/v1/")) {
                default_url = asprintf_safe("/api/agent/v1/jobs/%" PRId64 "/project", j->job_id);
                if (!default_url)
                        return -ENOMEM;
                url = default_url;
        }

        pthread_mutex_lock(&a->project_lock);
        bool have = project_cache_has(a->cfg->state_dir, hash, &path);
        pthread_mutex_unlock(&a->project_lock);
        if (have) {
                *ret_path = TAKE_PTR(path);
                return 0;
        }

        http_response resp = {};
        _cleanup_free_ char *why = NULL;
        http_client_set_timeout(c, JOB_PROJECT_TIMEOUT_MS);
        r = job_request(j, c, "project download", "GET", url, NULL, true, &resp, &why);
        http_client_set_timeout(c, AGENT_REQUEST_TIMEOUT_MS);
        if (r == -EPROTO) {
                *ret_error = asprintf_safe("Failed to fetch the project: %s", strna(why));
                return r;
        }
        if (r < 0)
                return r;
        if (resp.body_size > JOB_PROJECT_MAX_SIZE) {
                http_response_clear(&resp);
                *ret_error = strdup("Failed to fetch the project: archive too large");
                return -EFBIG;
        }

        pthread_mutex_lock(&a->project_lock);
        if (project_cache_has(a->cfg->state_dir, hash, &path))
                r = 0;
        else
                r = project_cache_store(a->cfg->state_dir, hash, resp.body ?: "", resp.body_size, &path);
        pthread_mutex_unlock(&a->project_lock);
        http_response_clear(&resp);
        if (r < 0) {
                errno = -r;
                *ret_error = asprintf_safe("Failed to store the project archive (%s): %m", hash);
                return r;
        }
        log_info("Job %" PRId64 ": project %.12s fetched.", j->job_id, hash);
        *ret_path = TAKE_PTR(path);
        return 0;
}

static int job_launch(agent_job *j, http_client *c, job_dir *d, char **ret_error);

/* Prepare and start a fresh job. On success *ret_dir holds the job dir (also in j->dir). */
static int job_start(agent_job *j, http_client *c, job_dir **ret_dir, char **ret_error) {
        agent *a = j->agent;
        _cleanup_free_ char *project_path = NULL;
        job_dir *d = NULL;
        int r;

        r = job_fetch_project(j, c, &project_path, ret_error);
        if (r < 0)
                return r;

        r = job_dir_create(a->cfg, j->assignment, project_path, &d);
        if (r < 0) {
                errno = -r;
                *ret_error = asprintf_safe("Failed to create the job directory: %m");
                return r;
        }
        pthread_mutex_lock(&a->lock);
        j->dir = d;
        bool cancel = j->cancel_requested;
        pthread_mutex_unlock(&a->lock);
        *ret_dir = d;
        if (cancel)
                (void) job_dir_mark_cancel(d);

        return job_launch(j, c, d, ret_error);
}

/* Build the command, report the start and start the unit of a prepared job dir. Also used when a
 * restarted agent finds a job dir whose unit was never started (killed in between). */
static int job_launch(agent_job *j, http_client *c, job_dir *d, char **ret_error) {
        agent *a = j->agent;
        _cleanup_free_ char *path = NULL, *start_err = NULL, *why = NULL;
        _cleanup_json_ json_t *redacted = NULL, *body = NULL;
        job_command cmd = {};
        char unit[64];
        int r;

        job_unit_name(j->job_id, unit);

        r = job_command_build(a->cfg, d, &cmd);
        if (r < 0) {
                errno = -r;
                *ret_error = asprintf_safe("Failed to build the ansible-playbook command: %m");
                return r;
        }
        redacted = job_command_redacted_env(cmd.env);
        if (!redacted) {
                r = -ENOMEM;
                goto finish;
        }
        r = job_dir_write_command(d, cmd.argv, cmd.cwd, redacted);
        if (r < 0)
                log_warning_errno(r, "Job %" PRId64 ": failed to write artifacts/command: %m", j->job_id);

        json_t *args = json_array();
        if (args)
                for (char **s = cmd.argv; s && *s; s++)
                        json_array_append_new(args, json_string(*s));
        body = json_pack("{s:I,s:s,s:o,s:s,s:O}", "attempt", (json_int_t) j->attempt, "unit", unit,
                         "job_args", args, "job_cwd", strempty(cmd.cwd), "job_env", redacted);
        path = asprintf_safe("/api/agent/v1/jobs/%" PRId64 "/start", j->job_id);
        if (!body || !path) {
                r = -ENOMEM;
                goto finish;
        }
        http_response resp = {};
        r = job_request(j, c, "start report", "POST", path, body, false, &resp, &why);
        if (r == -EPROTO) {
                *ret_error = asprintf_safe("The controller refused the start report: %s", strna(why));
                goto finish;
        }
        if (r < 0)
                goto finish;
        http_response_clear(&resp);

        /* A cancel that arrived before the unit exists: do not start it at all. */
        if (job_flag_stop(j)) {
                r = -ESTALE;
                goto finish;
        }
        if (job_flag_cancel(j)) {
                (void) job_dir_mark_cancel(d);
                r = JOB_CANCELED_BEFORE_START;
                goto finish;
        }

        unit_spec spec = {};
        job_command_unit_spec(a->cfg, d, &cmd, &spec);
        r = unit_start(a->bus, &spec, &start_err);
        if (r < 0) {
                errno = -r;
                if (r == -EEXIST)
                        *ret_error = asprintf_safe("Failed to start unit %s: a unit with that name is already loaded", unit);
                else if (start_err)
                        *ret_error = asprintf_safe("Failed to start unit %s: %s", unit, start_err);
                else
                        *ret_error = asprintf_safe("Failed to start unit %s: %m", unit);
                log_error("Job %" PRId64 ": %s", j->job_id, strna(*ret_error));
                goto finish;
        }
        log_info("Job %" PRId64 " attempt %" PRId64 ": unit %s started.", j->job_id, j->attempt, unit);

        /* A cancel/stop that raced with the start: whoever sees the other's flag stops the unit. */
        pthread_mutex_lock(&a->lock);
        j->unit_started = true;
        bool stop_now = j->cancel_requested || j->stop_requested;
        pthread_mutex_unlock(&a->lock);
        if (stop_now) {
                r = unit_stop(a->bus, unit);
                if (r < 0)
                        log_warning_errno(r, "Failed to stop %s: %m", unit);
        }
        r = JOB_STARTED;

finish:
        job_command_done(&cmd);
        return r;
}

/* Note (once) that the file system of the job dir is full: the job's output or result may be lost,
 * so its outcome cannot be "successful". Returns whether it is full right now. */
static bool job_check_disk(agent_job *j, job_dir *d) {
        agent *a = j->agent;
        bool full_now = d && agent_disk_full(d->root);

        pthread_mutex_lock(&a->lock);
        bool was = j->disk_full;
        if (full_now)
                j->disk_full = true;
        pthread_mutex_unlock(&a->lock);
        if (full_now && !was)
                log_error("Job %" PRId64 ": no space left on device in %s; the job's events and result may not be "
                          "recorded.", j->job_id, d->root);
        return full_now;
}

static bool job_flag_disk_full(agent_job *j) {
        pthread_mutex_lock(&j->agent->lock);
        bool s = j->disk_full;
        pthread_mutex_unlock(&j->agent->lock);
        return s;
}

static bool unit_finished(const unit_state *s) {
        if (!s->loaded)
                return true;
        return (streq(s->active_state, "inactive") || streq(s->active_state, "failed")) && !s->has_job;
}

/* Follow the unit and upload events until the unit has finished and everything is acknowledged.
 * 0 with *ret_res filled; 1 if the unit vanished without a result; -ESTALE, -ECANCELED. */
static int job_follow(agent_job *j, http_client *c, uploader *u, job_unit_result *ret_res) {
        agent *a = j->agent;
        agent_backoff b = {};
        uint64_t result_seen = 0, full_since = 0;
        bool stopped_for_disk = false;
        unsigned vanished_checks = 0;
        char unit[64];
        int r;

        job_unit_name(j->job_id, unit);

        for (;;) {
                if (agent_is_stopping(a))
                        return -ECANCELED;
                if (job_flag_stop(j))
                        return -ESTALE;

                /* A job whose file system stays full cannot record its output: stop it after a grace
                 * (the space may come back) instead of letting it run (or hang) unrecorded. */
                if (job_check_disk(j, u->dir)) {
                        if (full_since == 0)
                                full_since = now_monotonic_usec();
                        else if (!stopped_for_disk && now_monotonic_usec() - full_since > JOB_DISK_FULL_GRACE_USEC &&
                                 job_dir_read_unit_result(u->dir, &(job_unit_result) {}) < 0) {
                                log_error("Job %" PRId64 ": stopping %s: no space left on device in %s for %" PRIu64
                                          " s.", j->job_id, unit, u->dir->root, JOB_DISK_FULL_GRACE_USEC / USEC_PER_SEC);
                                stopped_for_disk = true;
                                r = unit_stop(a->bus, unit);
                                if (r < 0)
                                        log_warning_errno(r, "Failed to stop %s: %m", unit);
                        }
                } else
                        full_since = 0;
                unit_state st = {};
                bool have_state = unit_get_state(a->bus, unit, &st) >= 0;
                job_unit_result res = {};
                bool have_result = job_dir_read_unit_result(u->dir, &res) >= 0;
                if (have_result && result_seen == 0)
                        result_seen = now_monotonic_usec();

                /* Final once the unit left a result, or is gone without one (seen twice): a torn
                 * last line then becomes a placeholder event instead of blocking forever. */
                bool gone = have_state && !st.loaded && !have_result;
                bool final = have_result || (gone && vanished_checks >= 1);
                _cleanup_free_ char *retry_after = NULL;
                r = uploader_run_once(u, c, final, &retry_after);
                if (r == -ESTALE)
                        return r;
                if (r < 0) {
                        if (agent_backoff_wait(a, &b, retry_after) < 0)
                                return -ECANCELED;
                        continue;
                }
                agent_backoff_reset(&b);
                if (r > 0)
                        continue;

                if (have_result) {
                        if (uploader_complete(u, true) &&
                            ((have_state && unit_finished(&st)) ||
                             now_monotonic_usec() - result_seen > JOB_COLLECT_WAIT_USEC)) {
                                *ret_res = res;
                                return 0;
                        }
                } else if (have_state && !st.loaded) {
                        /* The unit is gone; ExecStopPost runs before that, so a result would be here.
                         * Check twice to be safe against a slow file system. */
                        if (++vanished_checks >= 2 && uploader_complete(u, true))
                                return 1;
                } else
                        vanished_checks = 0;

                uploader_wait(u, USEC_PER_SEC);
        }
}

/* POST .../result until the controller says finished (uploading whatever it still misses). */
static int job_send_result(agent_job *j, http_client *c, uploader *u, const job_report *rep) {
        agent *a = j->agent;
        _cleanup_free_ char *path = asprintf_safe("/api/agent/v1/jobs/%" PRId64 "/result", j->job_id);
        agent_backoff b = {};
        int r;

        if (!path)
                return -ENOMEM;

        for (;;) {
                /* Everything in the spool first: final_counter must be stored for the job to finish. */
                while (u) {
                        _cleanup_free_ char *retry_after = NULL;
                        r = uploader_run_once(u, c, true, &retry_after);
                        if (r == -ESTALE)
                                return r;
                        if (r < 0) {
                                if (agent_backoff_wait(a, &b, retry_after) < 0)
                                        return -ECANCELED;
                                continue;
                        }
                        if (r == 0)
                                break;
                }
                agent_backoff_reset(&b);

                int64_t final_counter = u ? u->acked_counter : 0;
                _cleanup_json_ json_t *body = json_pack("{s:I,s:s,s:i,s:s?,s:I,s:s,s:s,s:s}",
                                                        "attempt", (json_int_t) j->attempt,
                                                        "status", rep->status,
                                                        "rc", rep->rc,
                                                        "explanation", rep->explanation,
                                                        "final_counter", (json_int_t) final_counter,
                                                        "result", strempty(rep->result),
                                                        "exit_code", strempty(rep->exit_code),
                                                        "exit_status", strempty(rep->exit_status));
                if (!body)
                        return -ENOMEM;

                http_response resp = {};
                _cleanup_free_ char *why = NULL;
                r = job_request(j, c, "result report", "POST", path, body, false, &resp, &why);
                if (r < 0)
                        return r;
                bool finished = json_get_bool(resp.json, "finished", false);
                int64_t acked = json_get_int(resp.json, "acked", -1);
                http_response_clear(&resp);
                if (finished)
                        return 0;
                if (u && acked >= 0 && acked < u->acked_counter)
                        uploader_rewind(u);
                log_debug("Job %" PRId64 ": result kept by the controller until events up to %" PRId64
                          " are stored (has %" PRId64 ").", j->job_id, final_counter, acked);
                if (agent_sleep(a, USEC_PER_SEC) < 0)
                        return -ECANCELED;
        }
}

/* A dropped run (superseded, "stop" list, 409): stop the unit, wait a bit for it to go. */
static void job_drop(agent_job *j) {
        agent *a = j->agent;
        char unit[64];

        agent_job_drop(j);
        job_unit_name(j->job_id, unit);
        uint64_t deadline = now_monotonic_usec() + a->cfg->unit.stop_timeout_usec + 10 * USEC_PER_SEC;
        while (now_monotonic_usec() < deadline) {
                unit_state st = {};
                if (unit_get_state(a->bus, unit, &st) < 0 || unit_finished(&st))
                        break;
                if (agent_sleep(a, 500 * USEC_PER_MSEC) < 0)
                        break;
        }
}

/* A resumed job dir whose unit never ran: no such unit, no unit-result, and no stdout file (systemd
 * creates it when it spawns the unit's process). */
static bool job_never_started(agent_job *j, job_dir *d) {
        unit_state st = {};
        job_unit_result res;
        char unit[64];

        if (!d || job_dir_read_unit_result(d, &res) >= 0 || access(d->stdout_path, F_OK) >= 0 || errno != ENOENT)
                return false;
        if (unit_get_state(j->agent->bus, job_unit_name(j->job_id, unit), &st) < 0 || st.loaded)
                return false;
        return true;
}

/* Did job_dir_create() finish? The project link is the last thing it makes (after job.json and the
 * empty events file). */
static bool job_dir_complete(job_dir *d) {
        struct stat st;
        return lstat(d->project, &st) >= 0 && access(d->events_path, F_OK) >= 0;
}

static bool job_keep_dir(agent_job *j, job_dir *d) {
        if (j->agent->cfg->keep_job_dirs)
                return true;
        const json_t *asg = j->assignment ?: (d ? d->assignment : NULL);
        return json_get_bool(asg, "keep_data_dir", false);
}

/* The report for a run that never got its unit going: canceled before the start, or an error. */
static void start_failure_report(agent_job *j, int r, char **error, job_report *rep) {
        if (r == JOB_CANCELED_BEFORE_START) {
                log_info("Job %" PRId64 ": canceled before its unit started.", j->job_id);
                *rep = (job_report) { .status = "canceled", .rc = 254 };
                rep->explanation = strdup("Job canceled");
                return;
        }
        if (!*error) {
                errno = -r;
                *error = asprintf_safe("Failed to start the job: %m");
        }
        *rep = (job_report) { .status = "error", .rc = JOB_ERROR_RC };
        rep->explanation = TAKE_PTR(*error);
}

void *job_run_thread(void *userdata) {
        agent_job *j = userdata;
        agent *a = j->agent;
        _cleanup_http_client_ http_client *c = NULL;
        _cleanup_free_ char *error = NULL;
        job_dir *d = j->dir;
        uploader u = { .inotify_fd = -1 };
        bool have_uploader = false;
        job_report rep = {};
        job_unit_result res = {};
        int r;

        r = agent_http_client(a, AGENT_REQUEST_TIMEOUT_MS, &c);
        if (r < 0)
                goto out;

        bool never_started = j->resume && job_never_started(j, d);
        if (never_started && !job_dir_complete(d)) {
                /* Killed while creating it: the start was not reported yet, so the controller sends
                 * the assignment again once it is not in our "running" list. */
                log_notice("Job %" PRId64 " attempt %" PRId64 ": its job directory was left incomplete and its "
                           "unit never started; removing it (the controller sends the job again).",
                           j->job_id, j->attempt);
                r = job_dir_remove(d);
                if (r < 0)
                        log_warning_errno(r, "Job %" PRId64 ": failed to remove %s: %m", j->job_id, d->root);
                pthread_mutex_lock(&a->lock);
                j->forget = true;
                pthread_mutex_unlock(&a->lock);
                goto out;
        }
        if (never_started) {
                log_notice("Job %" PRId64 " attempt %" PRId64 ": its unit was never started (the agent stopped "
                           "in between); starting it now.", j->job_id, j->attempt);
                pthread_mutex_lock(&a->lock);
                j->unit_started = false;
                if (job_dir_cancel_requested(d))
                        j->cancel_requested = true;
                pthread_mutex_unlock(&a->lock);
                r = job_launch(j, c, d, &error);
                if (r == -ECANCELED)
                        goto out;       /* stopping again: the next agent resumes it the same way */
                if (r == -ESTALE) {
                        job_drop(j);
                        goto cleanup;
                }
                if (r == JOB_CANCELED_BEFORE_START || r < 0) {
                        start_failure_report(j, r, &error, &rep);
                        goto report;
                }
        } else if (!j->resume) {
                r = job_start(j, c, &d, &error);
                if (r == -ECANCELED) {
                        /* Agent stopping before the start was reported: the controller keeps the
                         * assignment and sends it again, so the half-made job dir must go. */
                        if (d)
                                (void) job_dir_remove(d);
                        goto out;
                }
                if (r == -ESTALE) {
                        job_drop(j);
                        goto cleanup;
                }
                if (r == JOB_CANCELED_BEFORE_START || r < 0) {
                        start_failure_report(j, r, &error, &rep);
                        goto report;
                }
        }

        r = uploader_init(&u, j, d);
        if (r < 0)
                goto out;
        have_uploader = true;

        r = job_follow(j, c, &u, &res);
        if (r == -ECANCELED)
                goto out;
        if (r == -ESTALE) {
                job_drop(j);
                goto cleanup;
        }
        (void) job_check_disk(j, d);
        bool disk_full = job_flag_disk_full(j);
        if (r == 1) {
                rep = (job_report) { .status = "error", .rc = JOB_ERROR_RC };
                if (disk_full)
                        rep.explanation = asprintf_safe("No space left on device in %s: the job's output and its unit's "
                                                        "result could not be recorded", d->root);
                else
                        rep.explanation = strdup(j->resume ? "unit vanished while the agent was down"
                                                           : "unit vanished without recording its result");
                log_error("Job %" PRId64 ": %s.", j->job_id, strna(rep.explanation));
        } else {
                char *expl = NULL;
                const char *status = NULL;
                int rc = 0;
                r = job_outcome(a->cfg, &res, job_dir_cancel_requested(d), &status, &rc, &expl);
                if (r < 0) {
                        rep = (job_report) { .status = "error", .rc = JOB_ERROR_RC };
                        rep.explanation = asprintf_safe("Cannot interpret the unit's result '%s %s %s'",
                                                        res.service_result, res.exit_code, res.exit_status);
                } else
                        rep = (job_report) { .status = status, .rc = rc, .explanation = expl };
                rep.result = res.service_result;
                rep.exit_code = res.exit_code;
                rep.exit_status = res.exit_status;
                if (disk_full && !streq(rep.status, "canceled")) {
                        /* Its events (and ansible's own files) may be incomplete: never "successful". */
                        char *e = asprintf_safe("No space left on device in %s while the job ran; its output may be "
                                                "incomplete (ansible-playbook: %s, rc %d)%s%s", d->root, rep.status,
                                                rep.rc, rep.explanation ? ": " : "", strempty(rep.explanation));
                        free(rep.explanation);
                        rep.explanation = e;
                        rep.status = "error";
                        log_error("Job %" PRId64 ": %s", j->job_id, strna(e));
                }
        }

report:
        if (d) {
                r = job_dir_write_status(d, rep.status, rep.rc);
                if (r < 0)
                        log_warning_errno(r, "Job %" PRId64 ": failed to write artifacts/status: %m", j->job_id);
        }
        if (d && !have_uploader) {
                if (uploader_init(&u, j, d) >= 0)
                        have_uploader = true;
        }
        r = job_send_result(j, c, have_uploader ? &u : NULL, &rep);
        if (r == -ECANCELED)
                goto out;
        if (r == -ESTALE) {
                job_drop(j);
                goto cleanup;
        }
        if (r < 0) {
                log_error("Job %" PRId64 ": giving up reporting its result (%s); job directory kept.", j->job_id,
                          rep.status);
                goto out;
        }
        /* The controller holds the final result: the run is over, a "stop" for it is moot. */
        pthread_mutex_lock(&a->lock);
        j->reported = true;
        pthread_mutex_unlock(&a->lock);
        log_info("Job %" PRId64 " attempt %" PRId64 " finished: %s (rc %d)%s%s", j->job_id, j->attempt,
                 rep.status, rep.rc, rep.explanation ? ": " : ".", strempty(rep.explanation));

cleanup:
        if (d && job_keep_dir(j, d)) {
                /* Kept for inspection: a restarted agent must not supervise it again. */
                _cleanup_free_ char *done = strjoin(d->root, "/" AGENT_JOB_DONE_FILE, NULL);
                r = done ? write_file_atomic(done, "", 0, 0600) : -ENOMEM;
                if (r < 0)
                        log_warning_errno(r, "Job %" PRId64 ": failed to mark its kept job directory done: %m", j->job_id);
        } else if (d) {
                if (have_uploader) {
                        uploader_done(&u);
                        have_uploader = false;
                }
                r = job_dir_remove(d);
                if (r < 0)
                        log_warning_errno(r, "Job %" PRId64 ": failed to remove %s: %m", j->job_id, d->root);
        }

out:
        if (have_uploader)
                uploader_done(&u);
        free(rep.explanation);
        pthread_mutex_lock(&a->lock);
        j->dir = NULL;
        pthread_mutex_unlock(&a->lock);
        if (d)
                job_dir_free(d);
        agent_job_remove(j);
        return NULL;
}
