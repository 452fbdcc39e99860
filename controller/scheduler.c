/* scheduler.c: places pending jobs on execution nodes with AWX's capacity rules (capacity from
 * CPUs and memory, impact = min(forks, hosts) + 1), one storage transaction per assignment, and a
 * background thread that runs it every second and declares silent nodes lost. */
#include <inttypes.h>
#include <time.h>

#include <jansson.h>
#include "drover/json-util.h"

#include "controller.h"
#include "drover/log.h"
#include "drover/util.h"

#define FORKS_PER_CPU 4
#define MEM_PER_FORK_MB 100
#define MEM_RESERVED_MB 2048
#define DEFAULT_FORKS 5
#define DEFAULT_INSTANCE_GROUP "default"

static pthread_t sched_thread;
static bool sched_thread_running;
static pthread_mutex_t sched_stop_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sched_stop_cond;
static bool sched_stop;
/* The lost-node grace period runs from here: the controller's start, or the last time the database
 * refused a write (heartbeats could not be recorded then). Atomic: set from request threads. */
static uint64_t sched_grace_from_usec;

bool scheduler_status_is_final(const char *status) {
        return status && (streq(status, "successful") || streq(status, "failed") || streq(status, "error") ||
                          streq(status, "canceled"));
}

static double json_get_number(const json_t *o, const char *key, double def) {
        const json_t *v = json_object_get(o, key);

        if (json_is_number(v))
                return json_number_value(v);
        if (json_is_string(v)) {
                char *end;
                double d = strtod(json_string_value(v), &end);
                if (end != json_string_value(v) && *end == 0)
                        return d;
        }
        return def;
}

int64_t scheduler_instance_capacity(const json_t *instance) {
        int64_t override = json_get_int(instance, "_capacity_override", 0);
        double cpu = json_get_number(instance, "cpu", 0);
        double memory = json_get_number(instance, "memory", 0);
        double adj = json_get_number(instance, "capacity_adjustment", 1.0);
        int64_t cpu_cap, mem_cap, lo, hi, mem_mb;

        /* a lost node has no capacity (as AWX shows it); a document without node_state is computed */
        if (json_is_string(json_object_get(instance, "node_state")) &&
            !streq(json_get_string(instance, "node_state", ""), "ready"))
                return 0;
        if (json_get_bool(instance, "_paused", false))
                return 0;
        if (override > 0)
                return override;
        cpu_cap = (int64_t) (cpu * FORKS_PER_CPU);
        mem_mb = (int64_t) (memory / (1024.0 * 1024.0));
        mem_cap = MAX((int64_t) 1, (mem_mb - MEM_RESERVED_MB) / MEM_PER_FORK_MB);
        if (cpu_cap <= 0)
                cpu_cap = 1;
        if (!(adj >= 0))
                adj = 0;
        if (adj > 1)
                adj = 1;
        lo = MIN(cpu_cap, mem_cap);
        hi = MAX(cpu_cap, mem_cap);
        return lo + (int64_t) ((double) (hi - lo) * adj);
}

int64_t scheduler_consumed_capacity(controller *c, int64_t instance_id) {
        _cleanup_json_ json_t *jobs = NULL, *id = json_integer(instance_id), *st = json_pack("[ss]", "waiting", "running");
        storage_filter f[] = {
                { .field = "_instance", .op = SF_EQ, .value = id },
                { .field = "status", .op = SF_IN, .value = st },
        };
        storage_query q = { .filters = f, .n_filters = ELEMENTSOF(f) };
        int64_t sum = 0;
        size_t i;
        json_t *j;

        if (!id || !st || storage_obj_list(c->storage, ST_JOB, &q, &jobs, NULL) < 0)
                return 0;
        json_array_foreach(jobs, i, j)
                sum += json_get_int(j, "_impact", 0);
        return sum;
}

int64_t scheduler_job_impact(controller *c, const json_t *job) {
        int64_t forks = json_get_int(job, "forks", 0), hosts = 0;
        int64_t inv = json_get_int(job, "inventory", 0);

        if (forks <= 0)
                forks = DEFAULT_FORKS;
        if (inv > 0) {
                _cleanup_json_ json_t *id = json_integer(inv);
                storage_filter f = { .field = "inventory", .op = SF_EQ, .value = id };
                storage_query q = { .filters = &f, .n_filters = 1, .limit = 1 };

                if (!id || storage_obj_list(c->storage, ST_HOST, &q, NULL, &hosts) < 0)
                        hosts = 0;
        }
        return MIN(forks, hosts) + 1;
}

/* ---- building an assignment ---- */

static json_t *job_extra_vars(const json_t *job) {
        const json_t *ev = json_object_get(job, "extra_vars");
        json_t *o;

        if (json_is_object(ev))
                return json_deep_copy(ev);
        if (json_is_string(ev) && !isempty(json_string_value(ev))) {
                o = json_loads(json_string_value(ev), 0, NULL);
                if (json_is_object(o))
                        return o;
                json_decref(o);
                log_warning("Job %" PRId64 ": extra_vars is not a JSON object, ignoring it.", json_get_int(job, "id", 0));
        }
        return json_object();
}

/* Everything of the assignment but "attempt" (set in the transaction). On a job that cannot run
 * at all (no project, no inventory...) returns -EINVAL with *ret_error set. */
static int assignment_build(controller *c, const json_t *job, const json_t *ee, json_t **ret, char **ret_error) {
        _cleanup_json_ json_t *project = NULL, *inventory = NULL, *a = NULL;
        _cleanup_free_ char *dir = NULL;
        int64_t job_id = json_get_int(job, "id", 0);
        int64_t project_id = json_get_int(job, "project", 0);
        int64_t inventory_id = json_get_int(job, "inventory", 0);
        char hash[65], url[64];
        int r;

        r = storage_obj_get(c->storage, ST_PROJECT, project_id, &project);
        if (r < 0) {
                *ret_error = asprintf_safe("The job's project %" PRId64 " could not be loaded: %s", project_id, strerror(-r));
                return r == -ENOENT ? -EINVAL : r;
        }
        r = project_local_dir(c, project, &dir);
        if (r < 0) {
                *ret_error = asprintf_safe("Project %" PRId64 " has no valid local_path.", project_id);
                return -EINVAL;
        }
        r = project_tar_get(dir, c->config->limits.max_project_size, NULL, NULL, hash);
        if (r < 0) {
                if (r == -EFBIG)
                        *ret_error = asprintf_safe("Project %" PRId64 " is larger than limits.max_project_size (%" PRIu64 " bytes).",
                                                   project_id, c->config->limits.max_project_size);
                else
                        *ret_error = asprintf_safe("Project %" PRId64 " could not be archived from %s: %s", project_id, dir,
                                                   strerror(-r));
                return -EINVAL;
        }
        r = api_inventory_export(c, inventory_id, &inventory);
        if (r < 0) {
                *ret_error = asprintf_safe("The job's inventory %" PRId64 " could not be exported: %s", inventory_id, strerror(-r));
                return r == -ENOMEM ? r : -EINVAL;
        }

        snprintf(url, sizeof(url), "/api/agent/v1/jobs/%" PRId64 "/project", job_id);
        a = json_pack("{s:I, s:s, s:s, s:s, s:{s:I, s:s, s:s}, s:O, s:o, s:s, s:I, s:I, s:s, s:s, s:b, s:I, s:b, s:{}}",
                      "job", (json_int_t) job_id,
                      "name", json_get_string(job, "name", ""),
                      "job_type", json_get_string(job, "job_type", "run"),
                      "playbook", json_get_string(job, "playbook", ""),
                      "project", "id", (json_int_t) project_id, "hash", hash, "url", url,
                      "inventory", inventory,
                      "extra_vars", job_extra_vars(job),
                      "limit", json_get_string(job, "limit", ""),
                      "forks", (json_int_t) json_get_int(job, "forks", 0),
                      "verbosity", (json_int_t) json_get_int(job, "verbosity", 0),
                      "job_tags", json_get_string(job, "job_tags", ""),
                      "skip_tags", json_get_string(job, "skip_tags", ""),
                      "diff_mode", json_get_bool(job, "diff_mode", false),
                      "timeout", (json_int_t) json_get_int(job, "timeout", 0),
                      "keep_data_dir", json_get_bool(job, "_keep_data_dir", false),
                      "env");
        if (!a)
                return -ENOMEM;
        if (json_object_set_new(a, "execution_environment", ee ? json_deep_copy(ee) : json_null()) < 0)
                return -ENOMEM;
        /* registry passwords are stored encrypted in the job's _assignment (unsealed when sent) */
        r = api_ee_assignment_seal(c, a);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(a);
        return 0;
}

/* Does the instance offer a runtime ("systemd", "podman")? */
static bool instance_offers(const json_t *inst, const char *runtime) {
        const json_t *rt = json_object_get(inst, "runtimes");
        size_t i;
        json_t *v;

        if (!json_is_array(rt))
                return streq(runtime, "systemd");
        json_array_foreach(rt, i, v)
                if (json_is_string(v) && streq(json_string_value(v), runtime))
                        return true;
        return false;
}

typedef struct assign_ctx {
        int64_t job_id, instance_id, group_id, impact;
        const char *hostname;
        json_t *assignment;
        bool assigned;
} assign_ctx;

static int assign_tx(storage *s, void *userdata) {
        assign_ctx *a = userdata;
        _cleanup_json_ json_t *job = NULL, *patch = NULL, *history = NULL;
        char now[32];
        int64_t attempt;
        int r;

        r = storage_obj_get(s, ST_JOB, a->job_id, &job);
        if (r < 0)
                return r;
        if (!streq(json_get_string(job, "status", ""), "pending"))
                return 0;   /* canceled or placed meanwhile */

        attempt = json_get_int(job, "_attempt", 0) + 1;
        history = json_is_array(json_object_get(job, "_attempt_history"))
                          ? json_deep_copy(json_object_get(job, "_attempt_history")) : json_array();
        if (!history || json_array_append_new(history, json_pack("{s:I, s:I}", "attempt", (json_int_t) attempt,
                                                                 "instance", (json_int_t) a->instance_id)) < 0)
                return -ENOMEM;
        if (json_object_set_new(a->assignment, "attempt", json_integer(attempt)) < 0)
                return -ENOMEM;

        format_iso8601(now, 0);
        patch = json_pack("{s:s, s:s, s:I, s:I, s:I, s:b, s:O, s:O, s:s, s:s}",
                          "status", "waiting",
                          "execution_node", a->hostname,
                          "_instance", (json_int_t) a->instance_id,
                          "_attempt", (json_int_t) attempt,
                          "_impact", (json_int_t) a->impact,
                          "_started_ack", false,
                          "_assignment", a->assignment,
                          "_attempt_history", history,
                          "job_explanation", "",
                          "modified", now);
        if (!patch)
                return -ENOMEM;
        if (json_is_null(json_object_get(job, "instance_group")) || !json_object_get(job, "instance_group"))
                if (json_object_set_new(patch, "instance_group", json_integer(a->group_id)) < 0)
                        return -ENOMEM;
        r = storage_obj_patch(s, ST_JOB, a->job_id, patch);
        if (r < 0)
                return r;
        a->assigned = true;
        return 0;
}

/* A job that can never run as configured: error it. */
static int job_fail(controller *c, int64_t job_id, const char *explanation) {
        _cleanup_json_ json_t *patch = NULL;
        char now[32];

        format_iso8601(now, 0);
        patch = json_pack("{s:s, s:b, s:s, s:s, s:s, s:b}", "status", "error", "failed", true, "finished", now,
                          "modified", now, "job_explanation", explanation, "event_processing_finished", true);
        if (!patch)
                return -ENOMEM;
        return storage_obj_patch(c->storage, ST_JOB, job_id, patch);
}

static int job_explain(controller *c, const json_t *job, const char *explanation) {
        _cleanup_json_ json_t *patch = NULL;

        if (streq(json_get_string(job, "job_explanation", ""), explanation))
                return 0;
        patch = json_pack("{s:s}", "job_explanation", explanation);
        if (!patch)
                return -ENOMEM;
        return storage_obj_patch(c->storage, ST_JOB, json_get_int(job, "id", 0), patch);
}

typedef struct sched_instance {
        int64_t id;
        json_t *doc;
        int64_t capacity, consumed;
        const char *why_not;   /* NULL if eligible */
} sched_instance;

static bool instance_seen_recently(controller *c, const json_t *inst, uint64_t now) {
        uint64_t seen = 0;

        if (parse_iso8601(json_get_string(inst, "last_seen", ""), &seen) < 0)
                return false;
        return seen + c->config->limits.node_lost_timeout_usec >= now;
}

/* Load instances by id once per run. */
static sched_instance *instance_lookup(controller *c, sched_instance **cache, size_t *n, int64_t id, uint64_t now) {
        sched_instance *si;
        json_t *doc = NULL;

        for (size_t i = 0; i < *n; i++)
                if ((*cache)[i].id == id)
                        return &(*cache)[i];
        if (storage_obj_get(c->storage, ST_INSTANCE, id, &doc) < 0)
                return NULL;
        si = reallocarray(*cache, *n + 1, sizeof(sched_instance));
        if (!si) {
                json_decref(doc);
                return NULL;
        }
        *cache = si;
        si = &(*cache)[(*n)++];
        *si = (sched_instance) { .id = id, .doc = doc };
        if (!json_get_bool(doc, "enabled", true))
                si->why_not = "disabled";
        else if (!streq(json_get_string(doc, "node_state", ""), "ready") || !instance_seen_recently(c, doc, now))
                si->why_not = "unavailable";
        si->capacity = scheduler_instance_capacity(doc);
        si->consumed = scheduler_consumed_capacity(c, id);
        return si;
}

static int schedule_job(controller *c, json_t *job, int64_t default_group, sched_instance **cache, size_t *n_cache,
                        uint64_t now, bool *ret_assigned) {
        _cleanup_free_ int64_t *members = NULL;
        _cleanup_free_ char *details = NULL, *explanation = NULL, *error = NULL;
        _cleanup_json_ json_t *group = NULL, *ee = NULL;
        int64_t job_id = json_get_int(job, "id", 0), group_id, impact;
        sched_instance *best = NULL;
        size_t n_members = 0, n_podman = 0, best_i = SIZE_MAX;
        int r;

        *ret_assigned = false;
        r = api_job_execution_environment(c, job, &ee, &error);
        if (r == -EINVAL) {
                log_warning("Job %" PRId64 " cannot run: %s", job_id, strna(error));
                r = job_fail(c, job_id, error ? error : "The job's execution environment cannot be used.");
                controller_notify(c);
                return r;
        }
        if (r < 0)
                return r;
        group_id = json_get_int(job, "instance_group", 0);
        if (group_id <= 0)
                group_id = default_group;
        if (group_id <= 0 || storage_obj_get(c->storage, ST_INSTANCE_GROUP, group_id, &group) < 0)
                return job_explain(c, job, "Waiting for capacity: the job's instance group does not exist");
        const char *gname = json_get_string(group, "name", "?");

        r = storage_rel_list(c->storage, SR_INSTANCE_GROUP_INSTANCES, group_id, false, &members, &n_members);
        if (r < 0)
                return r;
        impact = scheduler_job_impact(c, job);

        for (size_t i = 0; i < n_members; i++) {
                sched_instance *si = instance_lookup(c, cache, n_cache, members[i], now);
                _cleanup_free_ char *d = NULL;

                if (!si)
                        continue;
                if (ee && !instance_offers(si->doc, "podman"))
                        d = asprintf_safe("%s%s%s: no podman runtime", strempty(details), details ? ", " : "",
                                          json_get_string(si->doc, "hostname", "?"));
                else if (si->why_not)
                        d = asprintf_safe("%s%s%s: %s", strempty(details), details ? ", " : "",
                                          json_get_string(si->doc, "hostname", "?"), si->why_not);
                else {
                        int64_t free_cap = si->capacity - si->consumed;
                        if (ee)
                                n_podman++;
                        d = asprintf_safe("%s%s%s: %" PRId64 " free", strempty(details), details ? ", " : "",
                                          json_get_string(si->doc, "hostname", "?"), MAX(free_cap, (int64_t) 0));
                        /* an index, not a pointer: instance_lookup() may move the cache */
                        if (free_cap >= impact &&
                            (best_i == SIZE_MAX || free_cap > (*cache)[best_i].capacity - (*cache)[best_i].consumed))
                                best_i = (size_t) (si - *cache);
                }
                if (!d)
                        return -ENOMEM;
                free(details);
                details = TAKE_PTR(d);
        }

        if (best_i != SIZE_MAX)
                best = &(*cache)[best_i];
        if (!best && ee && n_podman == 0 && n_members > 0) {
                bool any_podman = false;
                for (size_t i = 0; i < n_members; i++) {
                        sched_instance *si = instance_lookup(c, cache, n_cache, members[i], now);
                        if (si && instance_offers(si->doc, "podman"))
                                any_podman = true;
                }
                if (!any_podman) {
                        /* never fall back to running a container job without its container */
                        explanation = asprintf_safe("No instance in group '%s' offers the podman runtime needed by "
                                                    "execution environment '%s' (%s): %s", gname,
                                                    json_get_string(ee, "name", "?"), json_get_string(ee, "image", "?"),
                                                    strempty(details));
                        if (!explanation)
                                return -ENOMEM;
                        log_warning("Job %" PRId64 " cannot run: %s", job_id, explanation);
                        r = job_fail(c, job_id, explanation);
                        controller_notify(c);
                        return r;
                }
        }
        if (!best) {
                if (n_members == 0)
                        explanation = asprintf_safe("Waiting for capacity: instance group '%s' has no instances", gname);
                else
                        explanation = asprintf_safe("Waiting for capacity: no instance in group '%s' has %" PRId64
                                                    " free capacity (%s)", gname, impact, strempty(details));
                if (!explanation)
                        return -ENOMEM;
                return job_explain(c, job, explanation);
        }

        assign_ctx a = {
                .job_id = job_id,
                .instance_id = best->id,
                .group_id = group_id,
                .impact = impact,
                .hostname = json_get_string(best->doc, "hostname", ""),
        };
        r = assignment_build(c, job, ee, &a.assignment, &error);
        if (r == -EINVAL) {
                log_warning("Job %" PRId64 " cannot run: %s", job_id, strna(error));
                r = job_fail(c, job_id, error ? error : "The job could not be prepared.");
                controller_notify(c);
                return r;
        }
        if (r < 0)
                return r;
        r = storage_transaction(c->storage, assign_tx, &a);
        json_decref(a.assignment);
        if (r < 0)
                return r;
        if (a.assigned) {
                best->consumed += impact;
                log_info("Job %" PRId64 " assigned to %s (impact %" PRId64 ").", job_id, a.hostname, impact);
                *ret_assigned = true;
        }
        return 0;
}

int scheduler_run(controller *c) {
        _cleanup_json_ json_t *jobs = NULL, *pending = json_string("pending"), *group = NULL;
        storage_filter f = { .field = "status", .op = SF_EQ, .value = pending };
        storage_query q = { .filters = &f, .n_filters = 1, .order_by = "id" };
        sched_instance *cache = NULL;
        size_t n_cache = 0, i;
        int64_t default_group = 0;
        uint64_t now = now_realtime_usec();
        bool any = false;
        json_t *job;
        int r;

        if (!pending)
                return -ENOMEM;
        pthread_mutex_lock(&c->sched_lock);
        r = storage_obj_list(c->storage, ST_JOB, &q, &jobs, NULL);
        if (r < 0)
                goto finish;
        if (json_array_size(jobs) == 0)
                goto finish;
        if (storage_obj_find(c->storage, ST_INSTANCE_GROUP, "name", DEFAULT_INSTANCE_GROUP, &group) >= 0)
                default_group = json_get_int(group, "id", 0);

        json_array_foreach(jobs, i, job) {
                bool assigned = false;

                r = schedule_job(c, job, default_group, &cache, &n_cache, now, &assigned);
                if (r < 0)
                        break;
                any = any || assigned;
        }

finish:
        for (i = 0; i < n_cache; i++)
                json_decref(cache[i].doc);
        free(cache);
        pthread_mutex_unlock(&c->sched_lock);
        if (any)
                controller_notify(c);
        if (r < 0)
                return log_error_errno(r, "Scheduler run failed: %m");
        return 0;
}

/* ---- lost nodes ---- */

typedef struct lost_ctx {
        controller *c;
        int64_t instance_id;
        const char *hostname, *last_seen;
        unsigned n_requeued, n_failed, n_canceled;
        bool lost;
} lost_ctx;

/* Seen within node_lost_timeout, counting from the controller's start at the earliest. */
static bool instance_alive(controller *c, const json_t *inst, uint64_t now) {
        uint64_t seen = 0;

        if (parse_iso8601(json_get_string(inst, "last_seen", ""), &seen) < 0)
                seen = 0;
        /* grace period after a controller restart or a database outage */
        seen = MAX(seen, __atomic_load_n(&sched_grace_from_usec, __ATOMIC_RELAXED));
        return seen + c->config->limits.node_lost_timeout_usec >= now;
}

static int lost_tx(storage *s, void *userdata) {
        lost_ctx *l = userdata;
        _cleanup_json_ json_t *inst = NULL, *jobs = NULL, *id = json_integer(l->instance_id),
                              *st = json_pack("[ss]", "waiting", "running"), *patch = NULL;
        storage_filter f[] = {
                { .field = "_instance", .op = SF_EQ, .value = id },
                { .field = "status", .op = SF_IN, .value = st },
        };
        storage_query q = { .filters = f, .n_filters = ELEMENTSOF(f) };
        char now[32];
        size_t i;
        json_t *job;
        int r;

        if (!id || !st)
                return -ENOMEM;
        /* a heartbeat may have arrived since the instance was listed */
        r = storage_obj_get(s, ST_INSTANCE, l->instance_id, &inst);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        if (!streq(json_get_string(inst, "node_state", ""), "ready") || instance_alive(l->c, inst, now_realtime_usec()))
                return 0;
        l->lost = true;

        format_iso8601(now, 0);
        patch = json_pack("{s:s, s:i, s:s, s:s}", "node_state", "unavailable", "capacity", 0,
                          "errors", "The node stopped sending heartbeats.", "modified", now);
        if (!patch)
                return -ENOMEM;
        r = storage_obj_patch(s, ST_INSTANCE, l->instance_id, patch);
        if (r < 0)
                return r;

        r = storage_obj_list(s, ST_JOB, &q, &jobs, NULL);
        if (r < 0)
                return r;
        json_array_foreach(jobs, i, job) {
                _cleanup_json_ json_t *jp = NULL;
                int64_t job_id = json_get_int(job, "id", 0);

                if (json_get_bool(job, "_cancel_requested", false)) {
                        /* the cancel could not be delivered: the job is closed as canceled */
                        _cleanup_free_ char *expl = asprintf_safe(
                                "Job was canceled while node '%s' was not reporting (last seen %s); the node was declared "
                                "lost before the cancel could be delivered.", l->hostname, l->last_seen);
                        if (!expl)
                                return -ENOMEM;
                        jp = json_pack("{s:s, s:b, s:s, s:s, s:s, s:s, s:b}", "status", "canceled", "failed", true,
                                       "finished", now, "canceled_on", now, "modified", now, "job_explanation", expl,
                                       "event_processing_finished", true);
                        l->n_canceled++;
                } else if (streq(json_get_string(job, "status", ""), "waiting") && !json_get_bool(job, "_started_ack", false)) {
                        /* never started: place it again (a new attempt supersedes the old one). Events
                         * the old attempt may have sent before reporting its start are not this job's
                         * record: the new attempt numbers its events from 1 again. */
                        r = storage_events_delete(s, job_id);
                        if (r < 0)
                                return r;
                        jp = json_pack("{s:s, s:n, s:s, s:I, s:s, s:s}", "status", "pending", "_instance",
                                       "execution_node", "", "_impact", (json_int_t) 0, "modified", now,
                                       "job_explanation", "");
                        l->n_requeued++;
                } else {
                        _cleanup_free_ char *expl = asprintf_safe(
                                "Job was running on node '%s', which stopped reporting (last seen %s).", l->hostname,
                                l->last_seen);
                        if (!expl)
                                return -ENOMEM;
                        jp = json_pack("{s:s, s:b, s:s, s:s, s:s, s:b}", "status", "error", "failed", true,
                                       "finished", now, "modified", now, "job_explanation", expl,
                                       "event_processing_finished", true);
                        l->n_failed++;
                }
                if (!jp)
                        return -ENOMEM;
                r = storage_obj_patch(s, ST_JOB, job_id, jp);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int scheduler_check_lost(controller *c) {
        _cleanup_json_ json_t *instances = NULL, *ready = json_string("ready");
        storage_filter f = { .field = "node_state", .op = SF_EQ, .value = ready };
        storage_query q = { .filters = &f, .n_filters = 1 };
        uint64_t now = now_realtime_usec();
        bool any = false;
        size_t i;
        json_t *inst;
        int r;

        if (!ready)
                return -ENOMEM;
        r = storage_obj_list(c->storage, ST_INSTANCE, &q, &instances, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to list instances: %m");
        json_array_foreach(instances, i, inst) {
                if (instance_alive(c, inst, now))
                        continue;

                lost_ctx l = {
                        .c = c,
                        .instance_id = json_get_int(inst, "id", 0),
                        .hostname = json_get_string(inst, "hostname", "?"),
                        .last_seen = json_get_string(inst, "last_seen", "never"),
                };
                pthread_mutex_lock(&c->sched_lock);
                r = storage_transaction(c->storage, lost_tx, &l);
                pthread_mutex_unlock(&c->sched_lock);
                if (r < 0)
                        return log_error_errno(r, "Failed to mark node %s lost: %m", l.hostname);
                if (!l.lost)
                        continue;
                log_warning("Node %s stopped reporting (last seen %s): marked unavailable, %u job(s) failed, %u re-queued, "
                            "%u canceled.", l.hostname, l.last_seen, l.n_failed, l.n_requeued, l.n_canceled);
                any = true;
        }
        if (any) {
                controller_notify(c);
                (void) scheduler_run(c);
        }
        return 0;
}

static void *scheduler_thread(void *userdata) {
        controller *c = userdata;

        pthread_mutex_lock(&sched_stop_lock);
        while (!sched_stop) {
                struct timespec ts;

                pthread_mutex_unlock(&sched_stop_lock);
                (void) scheduler_check_lost(c);
                (void) scheduler_run(c);
                pthread_mutex_lock(&sched_stop_lock);

                clock_gettime(CLOCK_MONOTONIC, &ts);
                ts.tv_sec += 1;
                while (!sched_stop && pthread_cond_timedwait(&sched_stop_cond, &sched_stop_lock, &ts) != ETIMEDOUT)
                        ;
        }
        pthread_mutex_unlock(&sched_stop_lock);
        return NULL;
}

void scheduler_restart_grace(controller *c) {
        __atomic_store_n(&sched_grace_from_usec, now_realtime_usec(), __ATOMIC_RELAXED);
}

int scheduler_start(controller *c) {
        pthread_condattr_t attr;
        int r;

        if (sched_thread_running)
                return -EBUSY;
        __atomic_store_n(&sched_grace_from_usec, now_realtime_usec(), __ATOMIC_RELAXED);
        sched_stop = false;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        r = pthread_cond_init(&sched_stop_cond, &attr);
        pthread_condattr_destroy(&attr);
        if (r != 0)
                return log_error_errno(-r, "Failed to create the scheduler condition: %m");
        r = pthread_create(&sched_thread, NULL, scheduler_thread, c);
        if (r != 0) {
                pthread_cond_destroy(&sched_stop_cond);
                return log_error_errno(-r, "Failed to start the scheduler thread: %m");
        }
        sched_thread_running = true;
        return 0;
}

void scheduler_stop(controller *c) {
        if (!sched_thread_running)
                return;
        pthread_mutex_lock(&sched_stop_lock);
        sched_stop = true;
        pthread_cond_broadcast(&sched_stop_cond);
        pthread_mutex_unlock(&sched_stop_lock);
        pthread_join(sched_thread, NULL);
        pthread_cond_destroy(&sched_stop_cond);
        sched_thread_running = false;
}
