/* agent-api.c: the controller side of the agent protocol (docs/protocol.md): enrollment with
 * one-time tokens, heartbeats, the work long-poll, job start/events/result reports and project
 * downloads, plus the admin endpoint that creates enrollment tokens. */
#include <ctype.h>
#include <inttypes.h>

#include <jansson.h>
#include "drover/redact.h"
#include "drover/json-util.h"

#include "controller.h"
#include "drover/crypto.h"
#include "drover/log.h"
#include "drover/util.h"
#include "http.h"

#define HEARTBEAT_INTERVAL_SEC 10
#define WORK_WAIT_MAX_SEC 55
#define ENROLL_TOKEN_TTL_DEFAULT 3600
#define ENROLL_TOKEN_TTL_MAX (30 * 24 * 3600)
#define SECRET_RANDOM_BYTES 32
#define HOSTNAME_MAX 250
#define STDOUT_KEEP_ON_TRUNCATE (64 * 1024)
#define DEFAULT_INSTANCE_GROUP "default"
#define REDACTED "**********"

/* ---- small helpers ---- */

static bool json_is_int(const json_t *v) { return json_is_integer(v); }

static bool hostname_valid(const char *h) {
        size_t l = strlen(h);

        if (l == 0 || l > HOSTNAME_MAX)
                return false;
        for (const char *p = h; *p; p++)
                if (!isalnum((unsigned char) *p) && !strchr(".-_", *p))
                        return false;
        return true;
}

static int respond_busy(http_response *resp, const char *what) {
        resp->retry_after = strdup("5");
        return http_respond_detail(resp, 429, "Too many open %s; retry later.", what);
}

/* Validate [{"job": int, "attempt": int}, ...]; NULL/missing is an empty list. */
static int running_validate(const json_t *running, http_response *resp) {
        size_t i;
        json_t *e;

        if (!running || json_is_null(running))
                return 0;
        if (!json_is_array(running))
                return http_respond_field_error(resp, "running", "Expected a list of {\"job\": id, \"attempt\": n}."), -EINVAL;
        json_array_foreach(running, i, e)
                if (!json_is_object(e) || !json_is_int(json_object_get(e, "job")) || !json_is_int(json_object_get(e, "attempt")))
                        return http_respond_field_error(resp, "running", "Entry %zu: expected {\"job\": id, \"attempt\": n}.", i), -EINVAL;
        return 0;
}

static bool running_contains(const json_t *running, int64_t job, int64_t attempt) {
        size_t i;
        json_t *e;

        json_array_foreach(running, i, e)
                if (json_get_int(e, "job", -1) == job && json_get_int(e, "attempt", -1) == attempt)
                        return true;
        return false;
}

/* The node's current jobs whose cancel was requested (every answer looks: keep it cheap, the
 * filter leaves out the documents of all other jobs). */
static int node_cancel_jobs(controller *c, int64_t instance_id, json_t **ret) {
        _cleanup_json_ json_t *id = json_integer(instance_id), *st = json_pack("[ss]", "waiting", "running"),
                              *yes = json_true();
        storage_filter f[] = {
                { .field = "_instance", .op = SF_EQ, .value = id },
                { .field = "_cancel_requested", .op = SF_EQ, .value = yes },
                { .field = "status", .op = SF_IN, .value = st },
        };
        storage_query q = { .filters = f, .n_filters = ELEMENTSOF(f) };

        if (!id || !st || !yes)
                return -ENOMEM;
        return storage_obj_list(c->storage, ST_JOB, &q, ret, NULL);
}

/* Adds "cancel" (jobs on this node whose cancel was requested) and "stop" (runs the node reports
 * that it no longer owns) to answer. */
static int node_lists(controller *c, int64_t instance_id, const json_t *running, json_t *answer) {
        _cleanup_json_ json_t *jobs = NULL, *cancel = json_array(), *stop = json_array();
        size_t i;
        json_t *j, *e;
        int r;

        if (!cancel || !stop)
                return -ENOMEM;
        r = node_cancel_jobs(c, instance_id, &jobs);
        if (r < 0)
                return r;
        json_array_foreach(jobs, i, j)
                if (json_get_bool(j, "_cancel_requested", false))
                        if (json_array_append_new(cancel, json_pack("{s:I, s:I}", "job", (json_int_t) json_get_int(j, "id", 0),
                                                                     "attempt", (json_int_t) json_get_int(j, "_attempt", 0))) < 0)
                                return -ENOMEM;

        if (json_is_array(running))
                json_array_foreach(running, i, e) {
                        _cleanup_json_ json_t *job = NULL;
                        int64_t job_id = json_get_int(e, "job", 0), attempt = json_get_int(e, "attempt", 0);
                        bool owned = false;

                        r = storage_obj_get(c->storage, ST_JOB, job_id, &job);
                        if (r < 0 && r != -ENOENT)
                                return r;
                        if (r >= 0)
                                owned = !scheduler_status_is_final(json_get_string(job, "status", "")) &&
                                        json_get_int(job, "_instance", 0) == instance_id &&
                                        json_get_int(job, "_attempt", 0) == attempt;
                        if (!owned &&
                            json_array_append_new(stop, json_pack("{s:I, s:I}", "job", (json_int_t) job_id, "attempt",
                                                                  (json_int_t) attempt)) < 0)
                                return -ENOMEM;
                }

        if (json_object_set(answer, "cancel", cancel) < 0 || json_object_set(answer, "stop", stop) < 0)
                return -ENOMEM;
        return 0;
}

static bool history_has_node(const json_t *job, int64_t instance_id) {
        const json_t *h = json_object_get(job, "_attempt_history");
        size_t i;
        json_t *e;

        json_array_foreach(h, i, e)
                if (json_get_int(e, "instance", 0) == instance_id)
                        return true;
        return false;
}

/* Does this node own (job, attempt)? attempt < 0: any attempt. 0 = yes; -EPERM/-ENOENT/-ECONFLICT
 * with resp filled (403/404/409). */
static int job_check_owner(const json_t *job, int64_t job_id, int64_t instance_id, int64_t attempt,
                           http_response *resp) {
        int64_t current = json_get_int(job, "_attempt", 0);

        if (!job)   /* as for other nodes' jobs: a node learns nothing about jobs that are not its own */
                return http_respond_detail(resp, 403, "job %" PRId64 " is not assigned to this node", job_id), -EPERM;
        if (json_get_int(job, "_instance", 0) != instance_id) {
                if (attempt >= 0 && history_has_node(job, instance_id)) {
                        if (current > attempt)
                                http_respond_detail(resp, 409, "attempt %" PRId64 " of job %" PRId64 " was superseded by attempt %" PRId64,
                                                    attempt, job_id, current);
                        else
                                http_respond_detail(resp, 409, "attempt %" PRId64 " of job %" PRId64 " is no longer assigned to this node",
                                                    attempt, job_id);
                        return -EBUSY;
                }
                return http_respond_detail(resp, 403, "job %" PRId64 " is not assigned to this node", job_id), -EPERM;
        }
        if (attempt >= 0 && attempt != current) {
                if (current > attempt)
                        http_respond_detail(resp, 409, "attempt %" PRId64 " of job %" PRId64 " was superseded by attempt %" PRId64,
                                            attempt, job_id, current);
                else
                        http_respond_detail(resp, 409, "attempt %" PRId64 " of job %" PRId64 " does not exist", attempt, job_id);
                return -EBUSY;
        }
        return 0;
}

/* Inside a transaction: load job_id and check this node owns (job, attempt); with refuse_final, a
 * finished job is refused too (409). 0 with *ret_job, 1 when refused (resp filled), < 0 on errors. */
static int owned_job_get(storage *s, int64_t job_id, int64_t instance_id, int64_t attempt, bool refuse_final,
                         http_response *resp, json_t **ret_job) {
        _cleanup_json_ json_t *job = NULL;
        int r;

        r = storage_obj_get(s, ST_JOB, job_id, &job);
        if (r < 0 && r != -ENOENT)
                return r;
        if (job_check_owner(job, job_id, instance_id, attempt, resp) < 0)
                return 1;
        if (refuse_final && scheduler_status_is_final(json_get_string(job, "status", ""))) {
                http_respond_detail(resp, 409, "job %" PRId64 " is already finished", job_id);
                return 1;
        }
        *ret_job = TAKE_PTR(job);
        return 0;
}

static int body_attempt(const json_t *body, http_response *resp, int64_t *ret) {
        const json_t *a = json_object_get(body, "attempt");

        if (!json_is_int(a) || json_integer_value(a) < 1)
                return http_respond_field_error(resp, "attempt", "A valid integer >= 1 is required."), -EINVAL;
        *ret = json_integer_value(a);
        return 0;
}

/* ---- instances ---- */

static void capacity_fields(json_t *inst) {
        double cpu = json_number_value(json_object_get(inst, "cpu"));
        double mem = json_number_value(json_object_get(inst, "memory"));
        int64_t cpu_cap = (int64_t) (cpu * 4);
        int64_t mem_cap = MAX((int64_t) 1, ((int64_t) (mem / (1024.0 * 1024.0)) - 2048) / 100);

        json_object_set_new(inst, "cpu_capacity", json_integer(MAX(cpu_cap, (int64_t) 1)));
        json_object_set_new(inst, "mem_capacity", json_integer(mem_cap));
        json_object_set_new(inst, "capacity", json_integer(scheduler_instance_capacity(inst)));
}

/* The node facts common to enroll and heartbeat: cpus, memory, capacity, runtimes, version. */
static int node_facts(const json_t *body, bool heartbeat, http_response *resp, json_t *into) {
        const json_t *v;

        v = json_object_get(body, "cpus");
        if (v && !json_is_null(v)) {
                if (!json_is_int(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000000)
                        return http_respond_field_error(resp, "cpus", "A valid integer >= 1 is required."), -EINVAL;
                json_object_set_new(into, "cpu", json_integer(json_integer_value(v)));
        }
        v = json_object_get(body, "memory");
        if (v && !json_is_null(v)) {
                if (!json_is_int(v) || json_integer_value(v) < 0)
                        return http_respond_field_error(resp, "memory", "A valid integer >= 0 is required."), -EINVAL;
                json_object_set_new(into, "memory", json_integer(json_integer_value(v)));
        }
        v = json_object_get(body, "capacity");
        if (v) {
                if (!json_is_null(v) && (!json_is_int(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1000000))
                        return http_respond_field_error(resp, "capacity", "A valid integer >= 0 is required."), -EINVAL;
                json_object_set_new(into, "_capacity_override", json_integer(json_is_null(v) ? 0 : json_integer_value(v)));
                /* a heartbeat's capacity 0 means "take no new work" (e.g. the node's spool is full) */
                if (heartbeat)
                        json_object_set_new(into, "_paused", json_boolean(json_is_integer(v) && json_integer_value(v) == 0));
        }
        v = json_object_get(body, "runtimes");
        if (v && !json_is_null(v)) {
                size_t i;
                json_t *e;
                if (!json_is_array(v) || json_array_size(v) > 32)
                        return http_respond_field_error(resp, "runtimes", "Expected a list of strings."), -EINVAL;
                json_array_foreach(v, i, e)
                        if (!json_is_string(e) || json_string_length(e) > 64)
                                return http_respond_field_error(resp, "runtimes", "Expected a list of strings."), -EINVAL;
                json_object_set_new(into, "runtimes", json_deep_copy(v));
        }
        v = json_object_get(body, "version");
        if (v && !json_is_null(v)) {
                if (!json_is_string(v) || json_string_length(v) > 64)
                        return http_respond_field_error(resp, "version", "Expected a string."), -EINVAL;
                json_object_set_new(into, "version", json_deep_copy(v));
        }
        return 0;
}

/* ---- POST /api/v2/instances/enrollment_tokens/ ---- */

static int enrollment_token_create(controller *c, http_request *req, http_response *resp) {
        _cleanup_json_ json_t *body = NULL, *doc = NULL;
        _cleanup_free_ char *random = NULL, *token = NULL;
        const json_t *v;
        const char *hostname = NULL;
        int64_t ttl = ENROLL_TOKEN_TTL_DEFAULT, id;
        char hash[65], expires[32], now[32];
        int r;

        r = http_request_json_object(req, resp, &body);
        if (r < 0)
                return r == -EBADMSG ? 0 : r;
        v = json_object_get(body, "hostname");
        if (v && !json_is_null(v)) {
                if (!json_is_string(v) || !hostname_valid(json_string_value(v)))
                        return http_respond_field_error(resp, "hostname", "Enter a valid host name.");
                hostname = json_string_value(v);
        }
        v = json_object_get(body, "expires_in");
        if (v && !json_is_null(v)) {
                if (!json_is_int(v) || json_integer_value(v) < 1 || json_integer_value(v) > ENROLL_TOKEN_TTL_MAX)
                        return http_respond_field_error(resp, "expires_in", "Ensure this value is between 1 and %d.",
                                                        ENROLL_TOKEN_TTL_MAX);
                ttl = json_integer_value(v);
        }

        r = crypto_random_token(SECRET_RANDOM_BYTES, &random);
        if (r < 0)
                return r;
        token = strjoin("det_", random, NULL);
        if (!token)
                return -ENOMEM;
        crypto_sha256_hex(token, strlen(token), hash);
        format_iso8601(expires, now_realtime_usec() + (uint64_t) ttl * USEC_PER_SEC);
        format_iso8601(now, 0);

        doc = json_pack("{s:s, s:s?, s:s, s:b, s:s, s:I}", "_token_hash", hash, "hostname", hostname, "expires", expires,
                        "used", false, "created", now, "created_by", (json_int_t) req->user_id);
        if (!doc)
                return -ENOMEM;
        r = storage_obj_create(c->storage, ST_ENROLLMENT_TOKEN, doc, &id);
        if (r < 0)
                return r;
        log_info("User %s created enrollment token %" PRId64 "%s%s.", strna(req->username), id,
                 hostname ? " for " : "", strempty(hostname));
        return http_respond(resp, 201, json_pack("{s:s, s:s, s:s?}", "token", token, "expires", expires, "hostname", hostname));
}

/* ---- POST /api/agent/v1/enroll ---- */

typedef struct enroll_ctx {
        const char *token_hash, *hostname;
        json_t *facts;
        http_response *resp;
        int64_t instance_id;
        char *secret;
        bool refused;
} enroll_ctx;

static int enroll_tx(storage *s, void *userdata) {
        enroll_ctx *e = userdata;
        _cleanup_json_ json_t *tok = NULL, *inst = NULL, *group = NULL, *patch = NULL;
        _cleanup_free_ char *random = NULL;
        char now[32], hash[65], uuid[37];
        uint64_t expires = 0;
        int r;

        r = storage_obj_find(s, ST_ENROLLMENT_TOKEN, "_token_hash", e->token_hash, &tok);
        if (r == -ENOENT || (r >= 0 && (json_get_bool(tok, "used", true) ||
                                        parse_iso8601(json_get_string(tok, "expires", ""), &expires) < 0 ||
                                        expires <= now_realtime_usec()))) {
                http_respond_detail(e->resp, 401, "Invalid, used or expired enrollment token.");
                e->refused = true;
                return 0;
        }
        if (r < 0)
                return r;
        const char *for_host = json_get_string(tok, "hostname", NULL);
        if (for_host && !streq(for_host, e->hostname)) {
                http_respond_detail(e->resp, 403, "This enrollment token is for node '%s'.", for_host);
                e->refused = true;
                return 0;
        }
        format_iso8601(now, 0);
        patch = json_pack("{s:b, s:s, s:s}", "used", true, "used_at", now, "used_by", e->hostname);
        if (!patch)
                return -ENOMEM;
        r = storage_obj_patch(s, ST_ENROLLMENT_TOKEN, json_get_int(tok, "id", 0), patch);
        if (r < 0)
                return r;

        r = storage_obj_find(s, ST_INSTANCE, "hostname", e->hostname, &inst);
        if (r < 0 && r != -ENOENT)
                return r;
        if (r == -ENOENT) {
                uuid_string(uuid);
                inst = json_pack("{s:s, s:s, s:s, s:s, s:b, s:s, s:I, s:I, s:[], s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:n, s:I}",
                                 "hostname", e->hostname, "uuid", uuid, "node_type", "execution", "node_state", "ready",
                                 "enabled", true, "capacity_adjustment", "1.00", "cpu", (json_int_t) 1,
                                 "memory", (json_int_t) 0, "runtimes", "version", "", "last_seen", now,
                                 "last_health_check", now, "created", now, "modified", now, "errors", "",
                                 "managed_by_policy", true, "ip_address", "", "listener_port",
                                 "_capacity_override", (json_int_t) 0);
                if (!inst || json_object_update(inst, e->facts) < 0)
                        return -ENOMEM;
                capacity_fields(inst);
                r = storage_obj_create(s, ST_INSTANCE, inst, &e->instance_id);
                if (r < 0)
                        return r;
        } else {
                e->instance_id = json_get_int(inst, "id", 0);
                json_object_del(inst, "id");
                if (json_object_update(inst, e->facts) < 0)
                        return -ENOMEM;
                json_object_set_new(inst, "node_state", json_string("ready"));
                json_object_set_new(inst, "last_seen", json_string(now));
                json_object_set_new(inst, "last_health_check", json_string(now));
                json_object_set_new(inst, "modified", json_string(now));
                json_object_set_new(inst, "errors", json_string(""));
                capacity_fields(inst);
                r = storage_obj_replace(s, ST_INSTANCE, e->instance_id, inst);
                if (r < 0)
                        return r;
        }

        r = crypto_random_token(SECRET_RANDOM_BYTES, &random);
        if (r < 0)
                return r;
        e->secret = asprintf_safe("dns_%" PRId64 "_%s", e->instance_id, random);
        if (!e->secret)
                return -ENOMEM;
        crypto_sha256_hex(e->secret, strlen(e->secret), hash);
        json_decref(patch);
        patch = json_pack("{s:s}", "_secret_hash", hash);
        if (!patch)
                return -ENOMEM;
        r = storage_obj_patch(s, ST_INSTANCE, e->instance_id, patch);
        if (r < 0)
                return r;

        r = storage_obj_find(s, ST_INSTANCE_GROUP, "name", DEFAULT_INSTANCE_GROUP, &group);
        if (r >= 0)
                r = storage_rel_add(s, SR_INSTANCE_GROUP_INSTANCES, json_get_int(group, "id", 0), e->instance_id);
        else if (r == -ENOENT) {
                log_warning("No instance group '%s': node %s joins no group.", DEFAULT_INSTANCE_GROUP, e->hostname);
                r = 0;
        }
        return r;
}

static int agent_enroll(controller *c, http_request *req, http_response *resp) {
        _cleanup_json_ json_t *body = NULL, *facts = json_object();
        char hash[65];
        const json_t *v;
        int r;

        if (!facts)
                return -ENOMEM;
        r = http_request_json_object(req, resp, &body);
        if (r < 0)
                return r == -EBADMSG ? 0 : r;
        v = json_object_get(body, "token");
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 1024)
                return http_respond_field_error(resp, "token", "This field is required.");
        crypto_sha256_hex(json_string_value(v), json_string_length(v), hash);
        v = json_object_get(body, "hostname");
        if (!json_is_string(v) || !hostname_valid(json_string_value(v)))
                return http_respond_field_error(resp, "hostname", "Enter a valid host name.");
        r = node_facts(body, false, resp, facts);
        if (r < 0)
                return 0;

        enroll_ctx e = { .token_hash = hash, .hostname = json_string_value(v), .facts = facts, .resp = resp };
        r = storage_transaction(c->storage, enroll_tx, &e);
        if (r < 0 || e.refused) {
                if (e.secret)
                        explicit_bzero(e.secret, strlen(e.secret));
                free(e.secret);
                return r;
        }
        log_info("Node %s enrolled as instance %" PRId64 ".", e.hostname, e.instance_id);
        http_respond(resp, 201, json_pack("{s:I, s:s}", "instance", (json_int_t) e.instance_id, "secret", e.secret));
        explicit_bzero(e.secret, strlen(e.secret));
        free(e.secret);
        controller_notify(c);
        (void) scheduler_run(c);
        return 0;
}

/* ---- POST /api/agent/v1/heartbeat ---- */

static int agent_heartbeat(controller *c, http_request *req, http_response *resp) {
        static const char *const patched[] = { "cpu", "memory", "_capacity_override", "runtimes", "version",
                                               "last_seen", "last_health_check", "node_state", "cpu_capacity",
                                               "mem_capacity", "capacity", "errors", "modified" };
        _cleanup_json_ json_t *body = NULL, *inst = NULL, *answer = NULL, *patch = json_object();
        bool changed;
        int64_t old_capacity;
        char now[32];
        int r;

        if (!patch)
                return -ENOMEM;
        r = http_request_json_object(req, resp, &body);
        if (r < 0)
                return r == -EBADMSG ? 0 : r;
        if (running_validate(json_object_get(body, "running"), resp) < 0)
                return 0;

        r = storage_obj_get(c->storage, ST_INSTANCE, req->instance_id, &inst);
        if (r < 0)
                return r;
        old_capacity = json_get_int(inst, "capacity", 0);
        changed = !streq(json_get_string(inst, "node_state", ""), "ready");
        if (node_facts(body, true, resp, inst) < 0)
                return 0;
        format_iso8601(now, 0);
        json_object_set_new(inst, "last_seen", json_string(now));
        json_object_set_new(inst, "last_health_check", json_string(now));
        json_object_set_new(inst, "node_state", json_string("ready"));
        capacity_fields(inst);
        if (changed) {
                json_object_set_new(inst, "errors", json_string(""));
                log_info("Node %s is reporting again.", json_get_string(inst, "hostname", "?"));
        }
        changed = changed || old_capacity != json_get_int(inst, "capacity", 0);
        if (changed)
                json_object_set_new(inst, "modified", json_string(now));

        /* patch only what the heartbeat owns: an administrator may change enabled or
         * capacity_adjustment at the same time */
        for (size_t i = 0; i < ELEMENTSOF(patched); i++) {
                json_t *v = json_object_get(inst, patched[i]);
                if (v && json_object_set(patch, patched[i], v) < 0)
                        return -ENOMEM;
        }
        r = storage_obj_patch(c->storage, ST_INSTANCE, req->instance_id, patch);
        if (r < 0)
                return r;

        /* at least three heartbeats fit in the lost-node timeout */
        answer = json_pack("{s:I}", "heartbeat_interval",
                           (json_int_t) MAX(MIN(c->config->limits.node_lost_timeout_usec / USEC_PER_SEC / 3,
                                                    (uint64_t) HEARTBEAT_INTERVAL_SEC), (uint64_t) 1));
        if (!answer)
                return -ENOMEM;
        r = node_lists(c, req->instance_id, json_object_get(body, "running"), answer);
        if (r < 0)
                return r;
        if (changed) {
                controller_notify(c);
                (void) scheduler_run(c);
        }
        return http_respond(resp, 200, TAKE_PTR(answer));
}

/* ---- POST /api/agent/v1/work ---- */

/* The node's assigned jobs it has not reported started (their assignments are re-sent). A
 * long-poll wakes on every change, so only these documents are loaded. */
static int node_unstarted_jobs(controller *c, int64_t instance_id, json_t **ret) {
        _cleanup_json_ json_t *id = json_integer(instance_id), *st = json_string("waiting"), *no = json_false();
        storage_filter f[] = {
                { .field = "_instance", .op = SF_EQ, .value = id },
                { .field = "status", .op = SF_EQ, .value = st },
                { .field = "_started_ack", .op = SF_EQ, .value = no },
        };
        storage_query q = { .filters = f, .n_filters = ELEMENTSOF(f) };

        if (!id || !st || !no)
                return -ENOMEM;
        return storage_obj_list(c->storage, ST_JOB, &q, ret, NULL);
}

static int work_answer(controller *c, int64_t instance_id, const json_t *running, json_t **ret, bool *ret_something) {
        _cleanup_json_ json_t *jobs = NULL, *answer = NULL, *assignments = json_array();
        size_t i;
        json_t *j;
        int r;

        if (!assignments)
                return -ENOMEM;
        r = node_unstarted_jobs(c, instance_id, &jobs);
        if (r < 0)
                return r;
        json_array_foreach(jobs, i, j) {
                const json_t *a = json_object_get(j, "_assignment");

                if (!streq(json_get_string(j, "status", ""), "waiting") || json_get_bool(j, "_started_ack", false) ||
                    !json_is_object(a))
                        continue;
                if (running_contains(running, json_get_int(j, "id", 0), json_get_int(j, "_attempt", 0)))
                        continue;
                /* the stored assignment keeps registry secrets encrypted; only the copy sent to the
                 * node that runs the job carries them in clear (over TLS) */
                json_t *copy = json_deep_copy(a);
                if (!copy)
                        return -ENOMEM;
                r = api_ee_assignment_unseal(c, copy);
                if (r < 0) {
                        json_decref(copy);
                        return r;
                }
                if (json_array_append_new(assignments, copy) < 0)
                        return -ENOMEM;
        }
        answer = json_pack("{s:O}", "assignments", assignments);
        if (!answer)
                return -ENOMEM;
        r = node_lists(c, instance_id, running, answer);
        if (r < 0)
                return r;
        *ret_something = json_array_size(assignments) > 0 || json_array_size(json_object_get(answer, "cancel")) > 0 ||
                         json_array_size(json_object_get(answer, "stop")) > 0;
        *ret = TAKE_PTR(answer);
        return 0;
}

static int agent_work(controller *c, http_request *req, http_response *resp) {
        _cleanup_json_ json_t *body = NULL, *answer = NULL;
        const json_t *running, *v;
        uint64_t wait_usec = c->config->limits.long_poll_max_usec, deadline, gen;
        bool something = false;
        int r;

        r = http_request_json_object(req, resp, &body);
        if (r < 0)
                return r == -EBADMSG ? 0 : r;
        running = json_object_get(body, "running");
        if (running_validate(running, resp) < 0)
                return 0;
        v = json_object_get(body, "wait");
        if (v && !json_is_null(v)) {
                if (!json_is_number(v) || json_number_value(v) < 0)
                        return http_respond_field_error(resp, "wait", "A number of seconds >= 0 is required.");
                wait_usec = MIN(wait_usec, (uint64_t) (MIN(json_number_value(v), (double) WORK_WAIT_MAX_SEC) * USEC_PER_SEC));
        }
        wait_usec = MIN(wait_usec, (uint64_t) WORK_WAIT_MAX_SEC * USEC_PER_SEC);

        if (controller_slot_acquire(c, &c->long_polls, c->config->limits.max_long_polls) < 0)
                return respond_busy(resp, "long-polls");

        deadline = now_monotonic_usec() + wait_usec;
        gen = controller_generation(c);
        for (;;) {
                uint64_t now;

                json_decref(answer);
                answer = NULL;
                r = work_answer(c, req->instance_id, running, &answer, &something);
                if (r < 0 || something || c->shutting_down)
                        break;
                now = now_monotonic_usec();
                if (now >= deadline)
                        break;
                (void) controller_wait(c, &gen, deadline - now);
        }
        controller_slot_release(c, &c->long_polls);
        if (r < 0)
                return r;
        return http_respond(resp, 200, TAKE_PTR(answer));
}

/* ---- job reports ---- */

static int64_t req_job_id(const http_request *req) {
        return req->n_ids > 0 ? req->ids[0] : 0;
}

/* The agent's rule too (drover/redact.h): one definition of what a secret-looking name is. */
static bool env_name_secret(const char *name) {
        return env_name_is_secret(name);
}

typedef struct start_ctx {
        int64_t job_id, instance_id, attempt;
        json_t *patch;
        http_response *resp;
        bool refused;
} start_ctx;

static int start_tx(storage *s, void *userdata) {
        start_ctx *st = userdata;
        _cleanup_json_ json_t *job = NULL;
        int r;

        r = owned_job_get(s, st->job_id, st->instance_id, st->attempt, true, st->resp, &job);
        if (r != 0) {
                st->refused = r > 0;
                return MIN(r, 0);
        }
        if (!json_is_null(json_object_get(job, "started")) && json_object_get(job, "started"))
                json_object_del(st->patch, "started");   /* a repeated start keeps the first time */
        return storage_obj_patch(s, ST_JOB, st->job_id, st->patch);
}

static int agent_job_start(controller *c, http_request *req, http_response *resp) {
        _cleanup_json_ json_t *body = NULL, *env = json_object(), *answer = NULL;
        _cleanup_free_ char *args = NULL;
        const json_t *v;
        int64_t attempt;
        char now[32];
        const char *k;
        size_t i;
        json_t *e;
        int r;

        if (!env)
                return -ENOMEM;
        r = http_request_json_object(req, resp, &body);
        if (r < 0)
                return r == -EBADMSG ? 0 : r;
        if (body_attempt(body, resp, &attempt) < 0)
                return 0;
        v = json_object_get(body, "job_args");
        if (v && !json_is_null(v)) {
                if (!json_is_array(v))
                        return http_respond_field_error(resp, "job_args", "Expected a list of strings.");
                json_array_foreach(v, i, e)
                        if (!json_is_string(e))
                                return http_respond_field_error(resp, "job_args", "Expected a list of strings.");
                args = json_dumps(v, JSON_ENCODE_ANY);   /* AWX shows it as a JSON string: '["ansible-playbook", ...]' */
        } else
                args = strdup("");
        if (!args)
                return -ENOMEM;
        v = json_object_get(body, "job_cwd");
        if (v && !json_is_null(v) && !json_is_string(v))
                return http_respond_field_error(resp, "job_cwd", "Expected a string.");
        v = json_object_get(body, "unit");
        if (v && !json_is_null(v) && !json_is_string(v))
                return http_respond_field_error(resp, "unit", "Expected a string.");
        v = json_object_get(body, "job_env");
        if (v && !json_is_null(v)) {
                if (!json_is_object(v))
                        return http_respond_field_error(resp, "job_env", "Expected an object of strings.");
                json_object_foreach((json_t *) v, k, e) {
                        if (!json_is_string(e))
                                return http_respond_field_error(resp, "job_env", "Expected an object of strings.");
                        if (json_object_set_new(env, k, env_name_secret(k) ? json_string(REDACTED) : json_copy(e)) < 0)
                                return -ENOMEM;
                }
        }

        format_iso8601(now, 0);
        start_ctx st = { .job_id = req_job_id(req), .instance_id = req->instance_id, .attempt = attempt, .resp = resp };
        st.patch = json_pack("{s:s, s:s, s:s, s:s, s:O, s:s, s:b, s:s}",
                             "status", "running", "started", now, "job_args", args,
                             "job_cwd", json_get_string(body, "job_cwd", ""), "job_env", env,
                             "_unit", json_get_string(body, "unit", ""), "_started_ack", true, "modified", now);
        if (!st.patch)
                return -ENOMEM;
        r = storage_transaction(c->storage, start_tx, &st);
        json_decref(st.patch);
        if (r < 0 || st.refused)
                return r;
        controller_notify(c);

        answer = json_object();
        if (!answer)
                return -ENOMEM;
        r = node_lists(c, req->instance_id, NULL, answer);
        if (r < 0)
                return r;
        return http_respond(resp, 200, TAKE_PTR(answer));
}

/* Make the job final from its (complete) result. Inside a transaction. */
static int job_finalize(storage *s, const json_t *job, const json_t *result) {
        _cleanup_json_ json_t *patch = NULL;
        const char *status = json_get_string(result, "status", "error");
        const char *expl = json_get_string(result, "explanation", "");
        uint64_t started = 0, now = now_realtime_usec();
        double elapsed = 0;
        char finished[32];

        format_iso8601(finished, now);
        if (parse_iso8601(json_get_string(job, "started", ""), &started) == 0 && started <= now)
                elapsed = (double) ((now - started + 500) / 1000) / 1000.0;   /* milliseconds, like AWX */
        patch = json_pack("{s:s, s:b, s:s, s:f, s:s, s:b, s:s, s:n, s:s, s:{s:O?, s:O?, s:O?, s:O?}}",
                          "status", status,
                          "failed", !streq(status, "successful"),
                          "finished", finished,
                          "elapsed", elapsed,
                          "job_explanation", isempty(expl) ? json_get_string(job, "job_explanation", "") : expl,
                          "event_processing_finished", true,
                          "result_traceback", "",
                          "_pending_result",
                          "modified", finished,
                          "_result", "rc", json_object_get(result, "rc"), "result", json_object_get(result, "result"),
                          "exit_code", json_object_get(result, "exit_code"),
                          "exit_status", json_object_get(result, "exit_status"));
        if (!patch)
                return -ENOMEM;
        if (streq(status, "canceled"))
                json_object_set_new(patch, "canceled_on", json_string(finished));
        return storage_obj_patch(s, ST_JOB, json_get_int(job, "id", 0), patch);
}

/* An upper bound of the length of v's compact JSON, without serialising it: a string's bytes
 * become at most 6 characters each (\u00XX), a number at most 32, true/false/null 5. Stops counting
 * once over limit. Cheap compared with json_dumps() of every event of a batch. */
static uint64_t json_size_bound(const json_t *v, uint64_t limit) {
        uint64_t n = 0;
        const char *key;
        json_t *m;
        size_t i;

        switch (json_typeof(v)) {
        case JSON_OBJECT:
                n = 2;
                json_object_foreach((json_t *) v, key, m) {
                        n += 2 + 6 * (uint64_t) strlen(key) + 2 + json_size_bound(m, limit);
                        if (n > limit)
                                return n;
                }
                return n;
        case JSON_ARRAY:
                n = 2;
                json_array_foreach(v, i, m) {
                        n += 1 + json_size_bound(m, limit);
                        if (n > limit)
                                return n;
                }
                return n;
        case JSON_STRING:
                return 2 + 6 * (uint64_t) json_string_length(v);
        case JSON_INTEGER:
        case JSON_REAL:
                return 32;
        default:
                return 5;
        }
}

/* Truncate an event over the size limit: its res first, then stdout, then all event_data. */
static int event_bound(json_t *ev, uint64_t max, int64_t job_id) {
        _cleanup_free_ char *s = NULL;
        size_t size;
        json_t *data;

        if (json_size_bound(ev, max) <= max)
                return 0;       /* surely within the limit: no need to serialise it */
        s = json_dumps(ev, JSON_COMPACT);
        if (!s)
                return -ENOMEM;
        size = strlen(s);
        if (size <= max)
                return 0;
        log_notice("Job %" PRId64 ": event %" PRId64 " is %zu bytes, over limits.max_event_size: truncated.", job_id,
                   json_get_int(ev, "counter", 0), size);
        data = json_object_get(ev, "event_data");
        if (json_is_object(data) && json_object_get(data, "res"))
                json_object_set_new(data, "res", json_pack("{s:b, s:s, s:I}", "_drover_truncated", true, "msg",
                                                           "The result was removed: the event exceeded limits.max_event_size.",
                                                           "original_size", (json_int_t) size));
        free(s);
        s = json_dumps(ev, JSON_COMPACT);
        if (!s)
                return -ENOMEM;
        if (strlen(s) <= max)
                return 0;
        const char *out = json_get_string(ev, "stdout", NULL);
        if (out && strlen(out) > STDOUT_KEEP_ON_TRUNCATE) {
                _cleanup_free_ char *cut = strndup(out, STDOUT_KEEP_ON_TRUNCATE);
                _cleanup_free_ char *n = cut ? strjoin(cut, "\n[output truncated: the event exceeded limits.max_event_size]", NULL) : NULL;
                if (!n)
                        return -ENOMEM;
                json_object_set_new(ev, "stdout", json_string(n));
        }
        free(s);
        s = json_dumps(ev, JSON_COMPACT);
        if (!s)
                return -ENOMEM;
        if (strlen(s) <= max)
                return 0;
        json_object_set_new(ev, "event_data", json_pack("{s:b}", "_drover_truncated", true));
        json_object_set_new(ev, "stdout", json_string("[event truncated: it exceeded limits.max_event_size]"));
        return 0;
}

typedef struct events_ctx {
        int64_t job_id, instance_id, attempt;
        json_t *events;
        http_response *resp;
        int64_t acked;
        bool refused, finalized;
} events_ctx;

static int events_tx(storage *s, void *userdata) {
        events_ctx *ec = userdata;
        _cleanup_json_ json_t *job = NULL;
        const json_t *pending;
        int r;

        r = owned_job_get(s, ec->job_id, ec->instance_id, ec->attempt, true, ec->resp, &job);
        if (r != 0) {
                ec->refused = r > 0;
                return MIN(r, 0);
        }
        r = storage_events_insert(s, ec->job_id, ec->attempt, ec->events, &ec->acked);
        if (r < 0)
                return r;
        pending = json_object_get(job, "_pending_result");
        if (json_is_object(pending) && json_get_int(pending, "attempt", -1) == ec->attempt &&
            ec->acked >= json_get_int(pending, "final_counter", INT64_MAX)) {
                r = job_finalize(s, job, pending);
                if (r < 0)
                        return r;
                ec->finalized = true;
        }
        return 0;
}

static int agent_job_events(controller *c, http_request *req, http_response *resp) {
        _cleanup_json_ json_t *body = NULL, *answer = NULL;
        json_t *events, *ev;
        int64_t attempt;
        size_t i;
        int r;

        r = http_request_json_object(req, resp, &body);
        if (r < 0)
                return r == -EBADMSG ? 0 : r;
        if (body_attempt(body, resp, &attempt) < 0)
                return 0;
        events = json_object_get(body, "events");
        if (!json_is_array(events))
                return http_respond_field_error(resp, "events", "Expected a list of events.");
        json_array_foreach(events, i, ev) {
                const json_t *counter = json_object_get(ev, "counter");
                if (!json_is_object(ev))
                        return http_respond_field_error(resp, "events", "Event %zu is not an object.", i);
                if (!json_is_int(counter) || json_integer_value(counter) < 1)
                        return http_respond_field_error(resp, "counter", "Event %zu: counter must be an integer >= 1.", i);
        }
        json_array_foreach(events, i, ev) {
                r = event_bound(ev, c->config->limits.max_event_size, req_job_id(req));
                if (r < 0)
                        return r;
        }

        events_ctx ec = { .job_id = req_job_id(req), .instance_id = req->instance_id, .attempt = attempt,
                          .events = events, .resp = resp };
        r = storage_transaction(c->storage, events_tx, &ec);
        if (r < 0 || ec.refused)
                return r;
        if (json_array_size(events) > 0 || ec.finalized)
                controller_notify(c);
        if (ec.finalized) {
                log_info("Job %" PRId64 " finished (its last events arrived after the result).", ec.job_id);
                (void) scheduler_run(c);
        }

        answer = json_pack("{s:I}", "acked", (json_int_t) ec.acked);
        if (!answer)
                return -ENOMEM;
        r = node_lists(c, req->instance_id, NULL, answer);
        if (r < 0)
                return r;
        return http_respond(resp, 200, TAKE_PTR(answer));
}

typedef struct result_ctx {
        int64_t job_id, instance_id, attempt;
        json_t *result;
        http_response *resp;
        int64_t acked;
        bool refused, finished, finalized;
} result_ctx;

static int result_tx(storage *s, void *userdata) {
        result_ctx *rc = userdata;
        _cleanup_json_ json_t *job = NULL, *patch = NULL;
        int r;

        r = owned_job_get(s, rc->job_id, rc->instance_id, rc->attempt, false, rc->resp, &job);
        if (r != 0) {
                rc->refused = r > 0;
                return MIN(r, 0);
        }
        r = storage_events_acked(s, rc->job_id, &rc->acked);
        if (r < 0)
                return r;
        if (scheduler_status_is_final(json_get_string(job, "status", ""))) {
                rc->finished = true;   /* a repeated result */
                return 0;
        }
        if (rc->acked >= json_get_int(rc->result, "final_counter", 0)) {
                r = job_finalize(s, job, rc->result);
                if (r < 0)
                        return r;
                rc->finished = rc->finalized = true;
                return 0;
        }
        patch = json_pack("{s:O}", "_pending_result", rc->result);
        if (!patch)
                return -ENOMEM;
        return storage_obj_patch(s, ST_JOB, rc->job_id, patch);
}

static int agent_job_result(controller *c, http_request *req, http_response *resp) {
        static const char *const statuses[] = { "successful", "failed", "canceled", "error" };
        _cleanup_json_ json_t *body = NULL;
        const char *status;
        const json_t *v;
        int64_t attempt;
        bool ok = false;
        int r;

        r = http_request_json_object(req, resp, &body);
        if (r < 0)
                return r == -EBADMSG ? 0 : r;
        if (body_attempt(body, resp, &attempt) < 0)
                return 0;
        status = json_get_string(body, "status", "");
        for (size_t i = 0; i < ELEMENTSOF(statuses); i++)
                ok = ok || streq(status, statuses[i]);
        if (!ok)
                return http_respond_field_error(resp, "status", "\"%s\" is not a valid choice.", status);
        v = json_object_get(body, "final_counter");
        if (!json_is_int(v) || json_integer_value(v) < 0)
                return http_respond_field_error(resp, "final_counter", "A valid integer >= 0 is required.");
        v = json_object_get(body, "explanation");
        if (v && !json_is_null(v) && !json_is_string(v))
                return http_respond_field_error(resp, "explanation", "Expected a string.");
        v = json_object_get(body, "rc");
        if (v && !json_is_null(v) && !json_is_int(v))
                return http_respond_field_error(resp, "rc", "Expected an integer.");

        result_ctx rc = { .job_id = req_job_id(req), .instance_id = req->instance_id, .attempt = attempt,
                          .result = body, .resp = resp };
        r = storage_transaction(c->storage, result_tx, &rc);
        if (r < 0 || rc.refused)
                return r;
        if (rc.finalized) {
                log_info("Job %" PRId64 " finished: %s.", rc.job_id, status);
                controller_notify(c);
                (void) scheduler_run(c);
        }
        return http_respond(resp, 200, json_pack("{s:b, s:I}", "finished", rc.finished, "acked", (json_int_t) rc.acked));
}

/* ---- GET /api/agent/v1/jobs/<id>/project ---- */

static int agent_job_project(controller *c, http_request *req, http_response *resp) {
        _cleanup_json_ json_t *job = NULL, *project = NULL;
        _cleanup_free_ char *dir = NULL, *data = NULL;
        int64_t job_id = req_job_id(req);
        size_t size = 0;
        char hash[65];
        int r;

        r = storage_obj_get(c->storage, ST_JOB, job_id, &job);
        if (r < 0 && r != -ENOENT)
                return r;
        if (job_check_owner(job, job_id, req->instance_id, -1, resp) < 0)
                return 0;
        r = storage_obj_get(c->storage, ST_PROJECT, json_get_int(job, "project", 0), &project);
        if (r == -ENOENT)
                return http_respond_detail(resp, 404, "The project of job %" PRId64 " does not exist.", job_id);
        if (r < 0)
                return r;
        r = project_local_dir(c, project, &dir);
        if (r < 0)
                return http_respond_detail(resp, 404, "The project of job %" PRId64 " has no valid local_path.", job_id);
        r = project_tar_get(dir, c->config->limits.max_project_size, &data, &size, hash);
        if (r == -EFBIG)
                return http_respond_detail(resp, 413, "The project exceeds limits.max_project_size (%" PRIu64 " bytes).",
                                           c->config->limits.max_project_size);
        if (r == -ENOENT || r == -ENOTDIR)
                return http_respond_detail(resp, 404, "The project directory of job %" PRId64 " does not exist.", job_id);
        if (r < 0)
                return r;
        const char *want = json_get_string(json_object_get(json_object_get(job, "_assignment"), "project"), "hash", NULL);
        if (want && !streq(want, hash))
                log_notice("Job %" PRId64 ": the project changed since the job was assigned (%s, now %s).", job_id, want, hash);

        resp->status = 200;
        resp->body = TAKE_PTR(data);
        resp->body_size = size;
        resp->content_type = "application/x-tar";
        return 0;
}

const http_route agent_routes[] = {
        { "POST", "/api/v2/instances/enrollment_tokens/", HTTP_AUTH_ADMIN, enrollment_token_create },
        { "POST", "/api/agent/v1/enroll", HTTP_AUTH_NONE, agent_enroll },
        { "POST", "/api/agent/v1/heartbeat", HTTP_AUTH_NODE, agent_heartbeat },
        { "POST", "/api/agent/v1/work", HTTP_AUTH_NODE, agent_work },
        { "GET", "/api/agent/v1/jobs/%/project", HTTP_AUTH_NODE, agent_job_project },
        { "POST", "/api/agent/v1/jobs/%/start", HTTP_AUTH_NODE, agent_job_start },
        { "POST", "/api/agent/v1/jobs/%/events", HTTP_AUTH_NODE, agent_job_events },
        { "POST", "/api/agent/v1/jobs/%/result", HTTP_AUTH_NODE, agent_job_result },
        {}
};
