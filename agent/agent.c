/* agent.c: the drover-agent runtime: enrollment, the heartbeat thread, the work long-poll thread,
 * the set of running jobs (one supervisor thread each, see job-run.c), cancel/stop handling,
 * resuming job dirs after a restart, sd_notify and SIGTERM handling. Wire protocol: docs/protocol.md. */
#include "agent-internal.h"
#include "agent-exec.h"

#include <libgen.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "drover/json-util.h"
#include "drover/log.h"
#include "drover/util.h"

/* ---------------- waiting and backoff ---------------- */

bool agent_is_stopping(agent *a) {
        pthread_mutex_lock(&a->lock);
        bool s = a->stopping;
        pthread_mutex_unlock(&a->lock);
        return s;
}

int agent_sleep(agent *a, uint64_t usec) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t) ts.tv_nsec + (usec % USEC_PER_SEC) * NSEC_PER_USEC;
        ts.tv_sec += (time_t) (usec / USEC_PER_SEC + ns / 1000000000ULL);
        ts.tv_nsec = (long) (ns % 1000000000ULL);

        int r = 0;
        pthread_mutex_lock(&a->lock);
        while (!a->stopping) {
                if (pthread_cond_timedwait(&a->cond, &a->lock, &ts) == ETIMEDOUT)
                        break;
        }
        if (a->stopping)
                r = -ECANCELED;
        pthread_mutex_unlock(&a->lock);
        return r;
}

void agent_backoff_reset(agent_backoff *b) {
        b->next_usec = 0;
}

static uint64_t random_u64(void) {
        uint64_t v = 0;
        if (random_bytes(&v, sizeof v) < 0)
                v = now_monotonic_usec() * 6364136223846793005ULL;
        return v;
}

int agent_backoff_wait(agent *a, agent_backoff *b, const char *retry_after) {
        if (b->next_usec == 0)
                b->next_usec = AGENT_BACKOFF_MIN_USEC;
        /* "equal jitter": somewhere between half and all of the current step */
        uint64_t step = b->next_usec;
        uint64_t wait = step / 2 + random_u64() % (step / 2 + 1);
        b->next_usec = MIN(step * 2, AGENT_BACKOFF_MAX_USEC);

        if (retry_after) {
                char *end = NULL;
                errno = 0;
                unsigned long long s = strtoull(retry_after, &end, 10);
                if (errno == 0 && end != retry_after && s <= 3600)
                        wait = MAX(wait, (uint64_t) s * USEC_PER_SEC);
        }
        return agent_sleep(a, wait);
}

/* ---------------- HTTP ---------------- */

int agent_http_client(agent *a, long timeout_ms, http_client **ret) {
        http_client *c = NULL;
        int r = http_client_new(a->cfg->controller_url, a->cfg->ca_file, &c);
        if (r < 0)
                return log_error_errno(r, "Failed to create HTTP client for %s: %m", a->cfg->controller_url);
        if (a->authorization) {
                r = http_client_set_authorization(c, a->authorization);
                if (r < 0) {
                        http_client_free(c);
                        return log_error_errno(r, "Failed to set authorization: %m");
                }
        }
        http_client_set_timeout(c, timeout_ms);
        *ret = c;
        return 0;
}

int agent_request(agent *a, http_client *c, const char *method, const char *path, const json_t *body,
                  http_response *ret) {
        int r = http_client_request(c, method, path, body, ret);
        if (r < 0)
                return r;
        if (ret->json && ret->status >= 200 && ret->status < 300)
                agent_apply_control(a, ret->json);
        return 0;
}

bool agent_response_retryable(int r, const http_response *resp) {
        if (r < 0)
                return true;
        return resp->status == 0 || resp->status >= 500 || resp->status == 429 || resp->status == 408;
}

char *agent_describe_failure(int r, const http_response *resp) {
        if (r < 0 || resp->status == 0) {
                if (resp->error[0])
                        return strdup(resp->error);
                errno = r < 0 ? -r : EIO;
                return asprintf_safe("%m");
        }
        const char *detail = NULL;
        _cleanup_free_ char *dump = NULL;
        if (resp->json) {
                detail = json_get_string(resp->json, "detail", NULL);
                if (!detail) {
                        dump = json_dumps_compact(resp->json);
                        detail = dump;
                }
        }
        if (dump && strlen(dump) > 300)
                dump[300] = 0;
        return asprintf_safe("HTTP %ld%s%s", resp->status, detail ? ": " : "", strempty(detail));
}

void agent_note_reachable(agent *a, bool reachable, const char *what) {
        pthread_mutex_lock(&a->lock);
        bool changed = a->unreachable == reachable;
        a->unreachable = !reachable;
        pthread_mutex_unlock(&a->lock);
        if (!changed)
                return;
        if (reachable)
                log_notice("Controller %s reachable again.", a->cfg->controller_url);
        else
                log_warning("Controller %s unreachable: %s", a->cfg->controller_url, strna(what));
}

/* ---------------- spool and disk ---------------- */

void agent_job_set_spool(agent_job *j, uint64_t bytes) {
        pthread_mutex_lock(&j->agent->lock);
        j->spool_bytes = bytes;
        pthread_mutex_unlock(&j->agent->lock);
}

bool agent_spool_check(agent *a) {
        uint64_t total = 0;

        pthread_mutex_lock(&a->lock);
        for (agent_job *j = a->jobs; j; j = j->next)
                total += j->spool_bytes;
        bool was = a->spool_full;
        /* A little hysteresis: full at the limit, free again below 90 % of it. */
        uint64_t limit = a->cfg->spool.max_total_bytes;
        bool full = was ? total >= limit - limit / 10 : total >= limit;
        a->spool_full = full;
        pthread_mutex_unlock(&a->lock);

        if (full && !was)
                log_warning("Unacknowledged spool (%" PRIu64 " bytes) reached spool.max_total_size (%" PRIu64
                            " bytes): advertising no capacity and taking no new jobs.", total, limit);
        else if (!full && was)
                log_notice("Unacknowledged spool down to %" PRIu64 " bytes: taking new jobs again.", total);
        return full;
}

bool agent_disk_full(const char *path) {
        struct statvfs sv;
        if (!path || statvfs(path, &sv) < 0)
                return false;
        return (uint64_t) sv.f_bfree * (uint64_t) sv.f_frsize < AGENT_DISK_FULL_BYTES;
}

static json_t *agent_runtimes_json(agent *a) {
        json_t *l = json_array();
        if (!l)
                return NULL;
        for (char **r = a->runtimes; r && *r; r++)
                json_array_append_new(l, json_string(*r));
        if (json_array_size(l) == 0)
                json_array_append_new(l, json_string("systemd"));
        return l;
}

/* ---------------- the running jobs set ---------------- */

static void agent_notify_status_locked(agent *a) {
        sd_notifyf(0, "STATUS=%zu job%s running", a->n_jobs, a->n_jobs == 1 ? "" : "s");
}

static json_t *agent_running_list(agent *a) {
        json_t *l = json_array();
        if (!l)
                return NULL;
        pthread_mutex_lock(&a->lock);
        for (agent_job *j = a->jobs; j; j = j->next) {
                if (j->stop_requested || j->reported)
                        continue;
                json_array_append_new(l, json_pack("{s:I,s:I}", "job", (json_int_t) j->job_id,
                                                   "attempt", (json_int_t) j->attempt));
        }
        pthread_mutex_unlock(&a->lock);
        return l;
}

static agent_job *agent_find_job_locked(agent *a, int64_t job_id) {
        for (agent_job *j = a->jobs; j; j = j->next)
                if (j->job_id == job_id)
                        return j;
        return NULL;
}

typedef enum control_kind {
        CONTROL_CANCEL,
        CONTROL_STOP,
} control_kind;

static void agent_control_job(agent *a, int64_t job_id, int64_t attempt, control_kind kind) {
        char unit[64];
        bool do_stop = false;

        pthread_mutex_lock(&a->lock);
        agent_job *j = agent_find_job_locked(a, job_id);
        if (!j || (attempt > 0 && j->attempt != attempt)) {
                pthread_mutex_unlock(&a->lock);
                return;
        }
        if (kind == CONTROL_CANCEL) {
                if (j->cancel_requested || j->stop_requested) {
                        pthread_mutex_unlock(&a->lock);
                        return;
                }
                j->cancel_requested = true;
                job_unit_result res;
                if (j->dir && job_dir_read_unit_result(j->dir, &res) >= 0) {
                        /* Too late: the unit already ended on its own; its outcome stands. */
                        log_info("Job %" PRId64 ": cancel requested after its unit finished; ignored.", job_id);
                        pthread_mutex_unlock(&a->lock);
                        return;
                }
                if (j->dir) {
                        int r = job_dir_mark_cancel(j->dir);
                        if (r < 0)
                                log_warning_errno(r, "Job %" PRId64 ": failed to record the cancel request: %m", job_id);
                }
                log_info("Job %" PRId64 " attempt %" PRId64 ": cancel requested.", job_id, j->attempt);
        } else {
                if (j->stop_requested || j->reported) {
                        pthread_mutex_unlock(&a->lock);
                        return;
                }
                j->stop_requested = true;
                log_notice("Job %" PRId64 " attempt %" PRId64 ": no longer owned by this node, stopping it.",
                           job_id, j->attempt);
        }
        do_stop = j->unit_started;
        job_unit_name(job_id, unit);
        pthread_cond_broadcast(&a->cond);
        pthread_mutex_unlock(&a->lock);

        if (do_stop) {
                int r = unit_stop(a->bus, unit);
                if (r < 0)
                        log_warning_errno(r, "Failed to stop %s: %m", unit);
        }
}

void agent_apply_control(agent *a, const json_t *answer) {
        static const struct {
                const char *key;
                control_kind kind;
        } lists[] = { { "cancel", CONTROL_CANCEL }, { "stop", CONTROL_STOP } };

        if (!json_is_object(answer))
                return;
        for (size_t k = 0; k < ELEMENTSOF(lists); k++) {
                const json_t *l = json_object_get(answer, lists[k].key);
                size_t i;
                const json_t *e;
                if (!json_is_array(l))
                        continue;
                json_array_foreach(l, i, e) {
                        int64_t job = json_get_int(e, "job", 0), attempt = json_get_int(e, "attempt", 0);
                        if (job > 0)
                                agent_control_job(a, job, attempt, lists[k].kind);
                }
        }
}

void agent_job_drop(agent_job *j) {
        agent *a = j->agent;
        char unit[64];

        pthread_mutex_lock(&a->lock);
        j->stop_requested = true;
        bool started = j->unit_started;
        pthread_mutex_unlock(&a->lock);
        if (started) {
                int r = unit_stop(a->bus, job_unit_name(j->job_id, unit));
                if (r < 0)
                        log_warning_errno(r, "Failed to stop %s: %m", unit);
        }
}

void agent_job_remove(agent_job *j) {
        agent *a = j->agent;

        pthread_mutex_lock(&a->lock);
        for (agent_job **p = &a->jobs; *p; p = &(*p)->next)
                if (*p == j) {
                        *p = j->next;
                        a->n_jobs--;
                        break;
                }
        if (!a->stopping && !j->forget) {
                size_t slot = a->n_recent++ % AGENT_RECENT_MAX;
                a->recent[slot].job_id = j->job_id;
                a->recent[slot].attempt = j->attempt;
        }
        agent_notify_status_locked(a);
        pthread_mutex_unlock(&a->lock);

        json_decref(j->assignment);
        free(j);
}

static void *job_thread_main(void *userdata) {
        agent_job *j = userdata;
        agent *a = j->agent;

        job_run_thread(j);      /* ends with agent_job_remove(j) */

        pthread_mutex_lock(&a->lock);
        a->n_threads--;
        pthread_cond_broadcast(&a->cond);
        pthread_mutex_unlock(&a->lock);
        return NULL;
}

/* Add a job to the set and start its supervisor. Takes a reference on assignment, takes over dir. */
static int agent_spawn_job(agent *a, int64_t job_id, int64_t attempt, json_t *assignment, job_dir *dir) {
        agent_job *j = calloc(1, sizeof *j);
        if (!j)
                return log_oom();
        j->agent = a;
        j->job_id = job_id;
        j->attempt = attempt;
        j->assignment = json_incref(assignment);
        j->dir = dir;
        j->resume = !assignment;
        j->unit_started = j->resume;    /* its unit may be running: a cancel must stop it */

        pthread_mutex_lock(&a->lock);
        j->next = a->jobs;
        a->jobs = j;
        a->n_jobs++;
        a->n_threads++;
        agent_notify_status_locked(a);
        pthread_mutex_unlock(&a->lock);

        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int r = -pthread_create(&j->thread, &attr, job_thread_main, j);
        pthread_attr_destroy(&attr);
        if (r < 0) {
                log_error_errno(r, "Job %" PRId64 ": failed to start its supervisor thread: %m", job_id);
                j->dir = NULL;  /* the caller still owns it */
                agent_job_remove(j);
                pthread_mutex_lock(&a->lock);
                a->n_threads--;
                pthread_mutex_unlock(&a->lock);
                return r;
        }
        return 0;
}

/* Returns 1 if a new job was started, 0 if the assignment was ignored. */
static int agent_accept_assignment(agent *a, json_t *asg) {
        int64_t job_id = json_get_int(asg, "job", 0), attempt = json_get_int(asg, "attempt", 0);

        if (!json_is_object(asg) || job_id <= 0 || attempt <= 0) {
                log_warning("Ignoring malformed assignment from the controller.");
                return 0;
        }

        pthread_mutex_lock(&a->lock);
        agent_job *j = agent_find_job_locked(a, job_id);
        int64_t have_attempt = j ? j->attempt : 0;
        bool recent = false;
        for (size_t i = 0; i < MIN(a->n_recent, (size_t) AGENT_RECENT_MAX); i++)
                if (a->recent[i].job_id == job_id && a->recent[i].attempt == attempt)
                        recent = true;
        pthread_mutex_unlock(&a->lock);
        if (recent) {
                log_debug("Job %" PRId64 ": attempt %" PRId64 " already ran here, ignoring it.", job_id, attempt);
                return 0;
        }
        if (have_attempt == attempt)
                return 0;
        if (have_attempt > 0) {
                log_debug("Job %" PRId64 ": attempt %" PRId64 " assigned while attempt %" PRId64
                          " still runs here; waiting for it to end.", job_id, attempt, have_attempt);
                return 0;
        }

        log_info("Job %" PRId64 " attempt %" PRId64 " assigned (%s, playbook %s).", job_id, attempt,
                 json_get_string(asg, "name", "?"), json_get_string(asg, "playbook", "?"));
        return agent_spawn_job(a, job_id, attempt, asg, NULL) < 0 ? 0 : 1;
}

/* ---------------- node facts ---------------- */

static void agent_node_facts(agent *a) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGESIZE);

        a->cpus = cpus > 0 ? cpus : 1;
        a->memory = pages > 0 && page_size > 0 ? (uint64_t) pages * (uint64_t) page_size : 0;

        if (a->cfg->capacity > 0)
                a->capacity = a->cfg->capacity;
        else {
                /* AWX: forks per CPU 4, memory per fork 100 MiB after 2 GiB for the system */
                const uint64_t gib = 1024ULL * 1024 * 1024, mib = 1024ULL * 1024;
                int64_t cpu_cap = a->cpus * 4;
                int64_t mem_cap = a->memory > 2 * gib ? (int64_t) ((a->memory - 2 * gib) / (100 * mib)) : 0;
                a->capacity = MAX(MAX(cpu_cap, mem_cap), (int64_t) 1);
        }
}

/* ---------------- enrollment ---------------- */

static int agent_read_secret(agent *a) {
        _cleanup_free_ char *data = NULL;
        size_t size = 0;
        int r = read_full_file(a->cfg->secret_file, AGENT_SECRET_MAX, &data, &size);
        if (r < 0)
                return r;
        while (size > 0 && strchr(" \t\r\n", data[size - 1]))
                data[--size] = 0;
        if (size == 0 || strpbrk(data, " \t\r\n")) {
                explicit_bzero(data, size);
                return log_error_errno(-EBADMSG, "Secret file %s is empty or malformed; remove it and enroll again.",
                                       a->cfg->secret_file);
        }
        char *auth = strjoin("Bearer ", data, NULL);
        explicit_bzero(data, size);
        if (!auth)
                return log_oom();
        a->authorization = auth;
        return 0;
}

static int agent_write_secret(agent *a, const char *secret) {
        _cleanup_free_ char *dir = strdup(a->cfg->secret_file);
        if (!dir)
                return log_oom();
        int r = mkdir_p(dirname(dir), 0700);
        if (r < 0)
                return log_error_errno(r, "Failed to create the directory of %s: %m", a->cfg->secret_file);
        r = write_file_atomic(a->cfg->secret_file, secret, strlen(secret), 0600);
        if (r < 0)
                return log_error_errno(r, "Failed to write %s: %m", a->cfg->secret_file);
        return 0;
}

static int agent_enroll(agent *a) {
        _cleanup_http_client_ http_client *c = NULL;
        _cleanup_json_ json_t *body = NULL;
        agent_backoff b = {};
        int r;

        if (access(a->cfg->secret_file, F_OK) == 0)
                return agent_read_secret(a);
        if (errno != ENOENT)
                return log_error_errno(-errno, "Cannot access %s: %m", a->cfg->secret_file);

        if (isempty(a->cfg->enrollment_token))
                return log_error_errno(-ENOKEY, "%s does not exist and no enrollment_token is configured in %s: "
                                       "create a token (POST /api/v2/instances/enrollment_tokens/) and set it.",
                                       a->cfg->secret_file, a->cfg->path);

        r = agent_http_client(a, AGENT_REQUEST_TIMEOUT_MS, &c);
        if (r < 0)
                return r;

        body = json_pack("{s:s,s:s,s:I,s:I,s:o,s:s}", "token", a->cfg->enrollment_token,
                         "hostname", a->cfg->node_name, "cpus", (json_int_t) a->cpus,
                         "memory", (json_int_t) a->memory, "runtimes", agent_runtimes_json(a),
                         "version", DROVER_VERSION);
        if (!body)
                return log_oom();
        if (a->cfg->capacity > 0)
                json_object_set_new(body, "capacity", json_integer(a->cfg->capacity));

        for (;;) {
                http_response resp = {};
                r = http_client_request(c, "POST", "/api/agent/v1/enroll", body, &resp);
                if (agent_response_retryable(r, &resp)) {
                        _cleanup_free_ char *why = agent_describe_failure(r, &resp);
                        log_warning("Enrollment at %s failed (%s), retrying.", a->cfg->controller_url, strna(why));
                        r = agent_backoff_wait(a, &b, resp.retry_after);
                        http_response_clear(&resp);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (resp.status != 200 && resp.status != 201) {
                        _cleanup_free_ char *why = agent_describe_failure(r, &resp);
                        http_response_clear(&resp);
                        return log_error_errno(-EACCES, "Enrollment at %s refused: %s", a->cfg->controller_url,
                                               strna(why));
                }
                const char *secret = json_get_string(resp.json, "secret", NULL);
                int64_t instance = json_get_int(resp.json, "instance", 0);
                if (isempty(secret) || strlen(secret) > AGENT_SECRET_MAX || strpbrk(secret, " \t\r\n")) {
                        http_response_clear(&resp);
                        return log_error_errno(-EBADMSG, "Enrollment answer from %s carries no usable secret.",
                                               a->cfg->controller_url);
                }
                r = agent_write_secret(a, secret);
                if (r >= 0) {
                        a->authorization = strjoin("Bearer ", secret, NULL);
                        if (!a->authorization)
                                r = log_oom();
                }
                if (resp.body)
                        explicit_bzero(resp.body, resp.body_size);
                http_response_clear(&resp);
                if (r < 0)
                        return r;
                log_notice("Enrolled at %s as instance %" PRId64 " (%s); secret stored in %s.",
                           a->cfg->controller_url, instance, a->cfg->node_name, a->cfg->secret_file);
                return 0;
        }
}

/* ---------------- heartbeat thread ---------------- */

static void *agent_heartbeat_thread(void *userdata) {
        agent *a = userdata;
        _cleanup_http_client_ http_client *c = NULL;

        if (agent_http_client(a, AGENT_REQUEST_TIMEOUT_MS, &c) < 0)
                return NULL;

        while (!agent_is_stopping(a)) {
                bool spool_full = agent_spool_check(a);
                _cleanup_json_ json_t *body = json_pack("{s:I,s:I,s:I,s:o,s:o,s:s}",
                                                        "capacity", (json_int_t) (spool_full ? 0 : a->capacity),
                                                        "cpus", (json_int_t) a->cpus,
                                                        "memory", (json_int_t) a->memory,
                                                        "runtimes", agent_runtimes_json(a),
                                                        "running", agent_running_list(a),
                                                        "version", DROVER_VERSION);
                if (!body) {
                        log_oom();
                } else {
                        http_response resp = {};
                        int r = agent_request(a, c, "POST", "/api/agent/v1/heartbeat", body, &resp);
                        if (r >= 0 && resp.status >= 200 && resp.status < 300) {
                                agent_note_reachable(a, true, NULL);
                                pthread_mutex_lock(&a->lock);
                                bool first = !a->ready;
                                a->ready = true;
                                pthread_mutex_unlock(&a->lock);
                                if (first) {
                                        sd_notify(0, "READY=1");
                                        log_info("First heartbeat accepted; capacity %" PRId64 ", %" PRId64
                                                 " CPUs, %" PRIu64 " bytes of memory.", a->capacity, a->cpus, a->memory);
                                }
                        } else {
                                _cleanup_free_ char *why = agent_describe_failure(r, &resp);
                                if (agent_response_retryable(r, &resp))
                                        agent_note_reachable(a, false, why);
                                else
                                        log_warning("Heartbeat refused: %s", strna(why));
                        }
                        http_response_clear(&resp);
                }
                if (agent_sleep(a, a->cfg->heartbeat_interval_usec) < 0)
                        break;
        }
        return NULL;
}

/* ---------------- work thread ---------------- */

static void *agent_work_thread(void *userdata) {
        agent *a = userdata;
        _cleanup_http_client_ http_client *c = NULL;
        agent_backoff b = {};

        if (agent_http_client(a, AGENT_WORK_TIMEOUT_MS, &c) < 0)
                return NULL;

        while (!agent_is_stopping(a)) {
                _cleanup_json_ json_t *body = json_pack("{s:o,s:i}", "running", agent_running_list(a),
                                                        "wait", AGENT_WORK_WAIT_SEC);
                if (!body) {
                        log_oom();
                        if (agent_sleep(a, USEC_PER_SEC) < 0)
                                break;
                        continue;
                }

                http_response resp = {};
                uint64_t t0 = now_monotonic_usec();
                int r = agent_request(a, c, "POST", "/api/agent/v1/work", body, &resp);
                if (r < 0 || resp.status != 200) {
                        _cleanup_free_ char *why = agent_describe_failure(r, &resp);
                        if (agent_response_retryable(r, &resp))
                                agent_note_reachable(a, false, why);
                        else
                                log_warning("Work request refused: %s", strna(why));
                        r = agent_backoff_wait(a, &b, resp.retry_after);
                        http_response_clear(&resp);
                        if (r < 0)
                                break;
                        continue;
                }
                agent_note_reachable(a, true, NULL);
                agent_backoff_reset(&b);

                const json_t *l = json_object_get(resp.json, "assignments");
                size_t i, n_new = 0;
                json_t *asg;
                bool spool_full = agent_spool_check(a);
                if (json_is_array(l))
                        json_array_foreach(l, i, asg) {
                                if (spool_full) {
                                        log_debug("Spool full: not taking job %" PRId64 " now.",
                                                  json_get_int(asg, "job", 0));
                                        continue;
                                }
                                if (agent_accept_assignment(a, asg) > 0)
                                        n_new++;
                        }
                http_response_clear(&resp);

                /* The controller answers at once while something is pending that we cannot act on
                 * yet (a cancel whose unit is still stopping, an attempt of a job still running here):
                 * do not spin, poll at most five times a second then (short, so a launch right after
                 * a cancel is not held back for long). */
                uint64_t elapsed = now_monotonic_usec() - t0, pace = 200 * USEC_PER_MSEC;
                if (n_new == 0 && elapsed < pace && agent_sleep(a, pace - elapsed) < 0)
                        break;
        }
        return NULL;
}

/* ---------------- resume after restart ---------------- */

static void agent_resume_jobs(agent *a) {
        _cleanup_free_ int64_t *ids = NULL;
        size_t n = 0;
        int r = job_dir_list(a->cfg, &ids, &n);
        if (r < 0) {
                if (r != -ENOENT)
                        log_warning_errno(r, "Failed to list job directories in %s: %m", a->cfg->state_dir);
                return;
        }
        for (size_t i = 0; i < n; i++) {
                job_dir *d = NULL;
                r = job_dir_open(a->cfg, ids[i], &d);
                if (r < 0) {
                        log_warning_errno(r, "Job %" PRId64 ": cannot open its job directory, ignoring it: %m", ids[i]);
                        continue;
                }
                _cleanup_free_ char *done = strjoin(d->root, "/" AGENT_JOB_DONE_FILE, NULL);
                if (!done || access(done, F_OK) == 0) {
                        log_debug("Job %" PRId64 ": kept job directory of a finished run, not resuming it.", ids[i]);
                        job_dir_free(d);
                        continue;
                }
                int64_t attempt = d->attempt > 0 ? d->attempt : json_get_int(d->assignment, "attempt", 1);
                log_info("Job %" PRId64 " attempt %" PRId64 ": resuming supervision.", ids[i], attempt);
                if (agent_spawn_job(a, ids[i], attempt, NULL, d) < 0)
                        job_dir_free(d);
        }
}

/* ---------------- signals and the main loop ---------------- */

static void *agent_signal_thread(void *userdata) {
        agent *a = userdata;
        sigset_t set;
        int sig = 0;

        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        if (sigwait(&set, &sig) != 0)
                sig = SIGTERM;

        pthread_mutex_lock(&a->lock);
        bool was = a->stopping;
        a->stopping = true;
        pthread_cond_broadcast(&a->cond);
        pthread_mutex_unlock(&a->lock);
        if (!was)
                log_notice("Received %s, stopping (job units keep running).", sig == SIGINT ? "SIGINT" : "SIGTERM");
        return NULL;
}

static void agent_request_stop(agent *a) {
        pthread_mutex_lock(&a->lock);
        a->stopping = true;
        pthread_cond_broadcast(&a->cond);
        pthread_mutex_unlock(&a->lock);
}

/* Wait for a joinable thread up to usec; false if it did not end in time. */
static bool join_with_deadline(pthread_t t, uint64_t usec) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns = (uint64_t) ts.tv_nsec + (usec % USEC_PER_SEC) * NSEC_PER_USEC;
        ts.tv_sec += (time_t) (usec / USEC_PER_SEC + ns / 1000000000ULL);
        ts.tv_nsec = (long) (ns % 1000000000ULL);
        return pthread_timedjoin_np(t, NULL, &ts) == 0;
}

/* Wait until all supervisors exited, at most usec. */
static bool agent_wait_supervisors(agent *a, uint64_t usec) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t) ts.tv_nsec + (usec % USEC_PER_SEC) * NSEC_PER_USEC;
        ts.tv_sec += (time_t) (usec / USEC_PER_SEC + ns / 1000000000ULL);
        ts.tv_nsec = (long) (ns % 1000000000ULL);

        pthread_mutex_lock(&a->lock);
        while (a->n_threads > 0)
                if (pthread_cond_timedwait(&a->cond, &a->lock, &ts) == ETIMEDOUT)
                        break;
        bool done = a->n_threads == 0;
        pthread_mutex_unlock(&a->lock);
        return done;
}

int agent_run(agent_config *cfg) {
        agent *a = NULL;
        pthread_t sig_thread, hb_thread, work_thread;
        bool hb_started = false, work_started = false, clean = true;
        pthread_condattr_t cattr;
        sigset_t set;
        int r;

        a = calloc(1, sizeof *a);
        if (!a)
                return log_oom();
        a->cfg = cfg;
        pthread_mutex_init(&a->lock, NULL);
        pthread_mutex_init(&a->project_lock, NULL);
        pthread_condattr_init(&cattr);
        pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
        pthread_cond_init(&a->cond, &cattr);
        pthread_condattr_destroy(&cattr);
        a->unreachable = false;

        signal(SIGPIPE, SIG_IGN);
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        r = -pthread_create(&sig_thread, NULL, agent_signal_thread, a);
        if (r < 0) {
                log_error_errno(r, "Failed to start the signal thread: %m");
                goto free_agent;
        }

        agent_node_facts(a);
        r = agent_runtimes(cfg, &a->runtimes);
        if (r < 0) {
                log_error_errno(r, "Failed to determine the container runtimes: %m");
                goto stop_signal;
        }

        r = mkdir_p(cfg->state_dir, 0700);
        if (r < 0) {
                log_error_errno(r, "Failed to create %s: %m", cfg->state_dir);
                goto stop_signal;
        }

        r = unit_bus_open(cfg->bus_address, &a->bus);
        if (r < 0) {
                log_error_errno(r, "Failed to connect to systemd (%s): %m", strna(cfg->bus_address));
                goto stop_signal;
        }

        r = agent_enroll(a);
        if (r < 0) {
                if (r == -ECANCELED)
                        r = 0;
                goto stop_signal;
        }

        log_info("drover-agent %s on %s: controller %s, capacity %" PRId64 ", state in %s.", DROVER_VERSION,
                 cfg->node_name, cfg->controller_url, a->capacity, cfg->state_dir);

        agent_resume_jobs(a);

        r = -pthread_create(&hb_thread, NULL, agent_heartbeat_thread, a);
        if (r < 0) {
                log_error_errno(r, "Failed to start the heartbeat thread: %m");
                agent_request_stop(a);
        } else
                hb_started = true;
        if (r >= 0) {
                r = -pthread_create(&work_thread, NULL, agent_work_thread, a);
                if (r < 0) {
                        log_error_errno(r, "Failed to start the work thread: %m");
                        agent_request_stop(a);
                } else
                        work_started = true;
        }

        /* Sleep until told to stop. */
        pthread_mutex_lock(&a->lock);
        while (!a->stopping)
                pthread_cond_wait(&a->cond, &a->lock);
        pthread_mutex_unlock(&a->lock);
        sd_notify(0, "STOPPING=1");

        /* Supervisors notice the stop within a second unless they are inside an HTTP request. */
        if (!agent_wait_supervisors(a, (AGENT_REQUEST_TIMEOUT_MS / 1000 + 5) * USEC_PER_SEC)) {
                log_warning("Some job supervisors did not stop in time; exiting anyway (their units keep running).");
                clean = false;
        }
        if (hb_started && !join_with_deadline(hb_thread, 5 * USEC_PER_SEC))
                clean = false;
        /* The long-poll may hold its request for up to a minute: do not wait for it. */
        if (work_started && !join_with_deadline(work_thread, 2 * USEC_PER_SEC))
                clean = false;

stop_signal:
        agent_request_stop(a);
        pthread_kill(sig_thread, SIGTERM);
        pthread_join(sig_thread, NULL);
        if (!clean)
                return r < 0 ? r : 1;   /* threads still use the agent and cfg: leave them to process exit */
        if (a->bus)
                unit_bus_close(a->bus);
        if (a->authorization) {
                explicit_bzero(a->authorization, strlen(a->authorization));
                free(a->authorization);
        }
        strv_free(a->runtimes);
free_agent:
        pthread_cond_destroy(&a->cond);
        pthread_mutex_destroy(&a->lock);
        pthread_mutex_destroy(&a->project_lock);
        free(a);
        return r < 0 ? r : 0;
}
