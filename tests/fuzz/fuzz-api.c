/* fuzz-api.c: fuzz target for the AWX API handlers (controller/api-*.c) and the agent protocol
 * handlers (controller/agent-api.c) behind the real route tables, against a real SQLite storage
 * in a temp dir (created once, seeded with an inventory, hosts, a group, a project, a job
 * template, a credential and an enrolled node running job 1; inputs accumulate state).
 * Input: byte 0 < 0xd0: byte 0 picks one of the AWX POST/PATCH/PUT routes, byte 1 the id put into
 * the route's '%' parts (1..8), the rest is the JSON body. Byte 0 in 0xd0..0xdf: byte 1 picks an
 * agent route (sent as the enrolled node; POST /work never waits), a scheduler run or a launch of
 * template 1; the job id is (byte 0 & 7) + 1; the rest is the body. Byte 0 >= 0xe0: byte 1 picks
 * a GET list route, byte 0 the id, the rest is its query string ("k=v&k2=v2", %-decoded). Run
 * with FUZZ_LIST_ROUTES=1 to see the route numbers. Every answer must be a status in 200..499;
 * a handler error or a 5xx is fatal: no client or node input may provoke one. */
#include <assert.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "drover/log.h"
#include "drover/util.h"
#include "http-server.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ROUTES 256

static struct {
        char dir[64];
        controller_config cfg;
        controller c;
        const http_route *writes[MAX_ROUTES], *lists[MAX_ROUTES];
        size_t n_writes, n_lists;
        int64_t instance_id;            /* the node the agent protocol requests come from */
} F;

static bool ends_with(const char *s, const char *suffix) {
        size_t a = strlen(s), b = strlen(suffix);
        return a >= b && streq(s + a - b, suffix);
}

static void cleanup(void) {
        storage_close(F.c.storage);
        controller_notify_done(&F.c);
        (void) rm_rf(F.dir);
}

/* Put `id` into every '%' of pattern. */
static char *expand(const char *pattern, unsigned id) {
        char *out = malloc(strlen(pattern) * 4 + 1), *o = out;
        if (!out)
                abort();
        for (const char *p = pattern; *p; p++)
                if (*p == '%')
                        o += sprintf(o, "%u", id);
                else
                        *o++ = *p;
        *o = 0;
        return out;
}

static char *url_decode(const char *s, size_t n) {
        char *out = malloc(n + 1), *o = out;
        if (!out)
                abort();
        for (size_t i = 0; i < n; i++) {
                if (s[i] == '%' && i + 2 < n) {
                        char hex[3] = { s[i + 1], s[i + 2], 0 };
                        *o++ = (char) strtol(hex, NULL, 16);
                        i += 2;
                } else
                        *o++ = s[i] == '+' ? ' ' : s[i];
        }
        *o = 0;
        return out;
}

static unsigned dispatch_full(const http_route *route, unsigned id, const char *query, size_t query_len,
                              const char *body, size_t body_size, json_t **ret_json) {
        http_request req = { .method = route->method, .body = body, .body_size = body_size,
                             .content_type = "application/json", .user_id = 1, .is_superuser = true,
                             .username = (char *) "admin", .instance_id = F.instance_id };
        http_response resp = { .status = 200 };
        char *path = expand(route->pattern, id);
        unsigned status;
        int r;

        for (size_t i = 0; query && i < query_len && req.n_query < 64;) {
                size_t n = strcspn(query + i, "&"), k = strcspn(query + i, "=");
                n = MIN(n, query_len - i);
                req.query_keys = realloc(req.query_keys, (req.n_query + 1) * sizeof(char *));
                req.query_values = realloc(req.query_values, (req.n_query + 1) * sizeof(char *));
                if (!req.query_keys || !req.query_values)
                        abort();
                req.query_keys[req.n_query] = url_decode(query + i, MIN(k, n));
                req.query_values[req.n_query] = k < n ? url_decode(query + i + k + 1, n - k - 1) : strdup("");
                req.n_query++;
                i += n + 1;
        }
        req.path = path;
        assert(http_route_match(route->pattern, path, req.ids, &req.n_ids));

        r = route->handler(&F.c, &req, &resp);
        status = r < 0 ? 500 : resp.status;
        if (getenv("FUZZ_VERBOSE"))
                fprintf(stderr, "%s %s -> %u\n", route->method, path, status);
        if (r < 0 || status >= 500) {
                char *s = resp.json ? json_dumps(resp.json, 0) : NULL;
                fprintf(stderr, "%s %s -> %d/%u: %s\n", route->method, path, r, status, s ? s : "");
                free(s);
        }
        assert(r >= 0);
        assert(status >= 200 && status < 500);
        assert(!(resp.json && resp.body));

        if (ret_json)
                *ret_json = json_incref(resp.json);
        json_decref(resp.json);
        free(resp.body);
        free(resp.location);
        free(resp.retry_after);
        if (resp.stream_free)
                resp.stream_free(resp.stream_userdata);
        for (size_t i = 0; i < req.n_query; i++) {
                free(req.query_keys[i]);
                free(req.query_values[i]);
        }
        free(req.query_keys);
        free(req.query_values);
        free(path);
        return status;
}

static unsigned dispatch(const http_route *route, unsigned id, const char *query, size_t query_len,
                         const char *body, size_t body_size) {
        return dispatch_full(route, id, query, query_len, body, body_size, NULL);
}

static const http_route *find_route(const char *method, const char *pattern) {
        for (const http_route *const *t = (const http_route *const[]) { api_routes, agent_routes, NULL }; *t; t++)
                for (const http_route *r = *t; r->method; r++)
                        if (streq(r->method, method) && streq(r->pattern, pattern))
                                return r;
        abort();
}

static json_t *seed(const char *method, const char *pattern, unsigned id, const char *body) {
        json_t *j = NULL;
        unsigned s = dispatch_full(find_route(method, pattern), id, NULL, 0, body, strlen(body), &j);
        if (s >= 300) {
                fprintf(stderr, "seeding %s %s failed: %u\n", method, pattern, s);
                abort();
        }
        return j;
}

/* Enroll a node, let the scheduler assign job 1 to it and report it started. */
static void seed_node(void) {
        _cleanup_json_ json_t *tok = NULL, *node = NULL, *work = NULL, *hb = NULL, *st = NULL;
        char body[512];

        tok = seed("POST", "/api/v2/instances/enrollment_tokens/", 0, "{\"hostname\": \"node1\"}");
        snprintf(body, sizeof body, "{\"token\": \"%s\", \"hostname\": \"node1\", \"cpus\": 2, "
                 "\"memory\": 4000000000, \"runtimes\": [\"systemd\"], \"version\": \"0.1.0\"}",
                 json_get_string(tok, "token", ""));
        node = seed("POST", "/api/agent/v1/enroll", 0, body);
        F.instance_id = json_get_int(node, "instance", 0);
        assert(F.instance_id > 0);
        hb = seed("POST", "/api/agent/v1/heartbeat", 0,
                  "{\"cpus\": 2, \"memory\": 4000000000, \"runtimes\": [\"systemd\"], \"running\": []}");
        (void) scheduler_run(&F.c);
        work = seed("POST", "/api/agent/v1/work", 0, "{\"running\": [], \"wait\": 0}");
        json_t *a = json_array_get(json_object_get(work, "assignments"), 0);
        if (!a) {
                fprintf(stderr, "no assignment for the fuzz node\n");
                return;
        }
        snprintf(body, sizeof body, "{\"attempt\": %" PRId64 ", \"unit\": \"drover-job-1.service\", "
                 "\"job_args\": [\"ansible-playbook\"], \"job_cwd\": \"/tmp\", \"job_env\": {\"A_PASSWORD\": \"x\"}}",
                 json_get_int(a, "attempt", 1));
        st = seed("POST", "/api/agent/v1/jobs/%/start", (unsigned) json_get_int(a, "job", 1), body);
}

/* The agent protocol: byte 0 in 0xd0..0xdf (job id = low 3 bits + 1), byte 1 picks one of the
 * agent routes, or runs the scheduler, or launches job template 1. */
static void agent_op(uint8_t b0, uint8_t b1, const char *body, size_t body_size) {
        size_t n = 0, k;

        while (agent_routes[n].method)
                n++;
        k = b1 % (n + 2);
        if (k < n)
                (void) dispatch(&agent_routes[k], (b0 & 7) + 1, NULL, 0, body, body_size);
        else if (k == n)
                (void) scheduler_run(&F.c);
        else
                (void) dispatch(find_route("POST", API_PREFIX "job_templates/%/launch/"), 1, NULL, 0, body, body_size);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        char url[128], projects[128], p[192];

        log_set_max_level(getenv("FUZZ_VERBOSE") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERR - 1);  /* quiet unless asked */
        snprintf(F.dir, sizeof F.dir, "/dev/shm/fuzz-api-XXXXXX");
        if (!mkdtemp(F.dir)) {
                snprintf(F.dir, sizeof F.dir, "/tmp/fuzz-api-XXXXXX");      /* no /dev/shm */
                if (!mkdtemp(F.dir))
                        abort();
        }
        snprintf(url, sizeof url, "sqlite:%s/drover.db", F.dir);
        snprintf(projects, sizeof projects, "%s/projects", F.dir);
        snprintf(p, sizeof p, "%s/demo", projects);
        if (mkdir_p(p, 0755) < 0)
                abort();
        snprintf(p, sizeof p, "%s/demo/site.yml", projects);
        if (write_file_atomic(p, "- hosts: all\n  tasks: []\n", 25, 0644) < 0)
                abort();
        F.cfg.state_dir = F.dir;
        F.cfg.projects_root = strdup(projects);
        F.cfg.admin_user = (char *) "admin";
        F.cfg.admin_password = (char *) "fuzz-admin-pw";
        F.cfg.limits = (controller_limits) {
                .max_body_size = 1024 * 1024,
                .max_agent_body_size = 16 * 1024 * 1024,
                .max_project_size = 64 * 1024 * 1024,
                .max_event_size = 1024 * 1024,
                .max_connections = 1024,
                .max_long_polls = 512,
                .max_streams = 256,
                .long_poll_max_usec = 0,        /* POST /work never waits */
                .node_lost_timeout_usec = 120 * USEC_PER_SEC,
        };
        F.c.config = &F.cfg;
        if (storage_open(url, &F.c.storage) < 0 || controller_notify_init(&F.c) < 0 || api_bootstrap(&F.c) < 0)
                abort();
        atexit(cleanup);

        for (const http_route *r = api_routes; r->method; r++) {
                bool has_id = strchr(r->pattern, '%');
                if ((streq(r->method, "POST") || streq(r->method, "PATCH") || streq(r->method, "PUT")) &&
                    F.n_writes < MAX_ROUTES)
                        F.writes[F.n_writes++] = r;
                else if (streq(r->method, "GET") && F.n_lists < MAX_ROUTES && (!has_id || ends_with(r->pattern, "s/") || ends_with(r->pattern, "stdout/")))
                        F.lists[F.n_lists++] = r;
        }

        if (getenv("FUZZ_LIST_ROUTES")) {       /* to write seeds: byte 0 of an input */
                for (size_t i = 0; i < F.n_writes; i++)
                        fprintf(stderr, "0x%02zx %s %s\n", i, F.writes[i]->method, F.writes[i]->pattern);
                for (size_t i = 0; i < F.n_lists; i++)
                        fprintf(stderr, "0xe0 0x%02zx GET %s\n", i, F.lists[i]->pattern);
        }

        /* organization 1 ("Default") exists after bootstrap */
        json_decref(seed("POST", API_PREFIX "inventories/", 0, "{\"name\": \"inv\", \"organization\": 1}"));
        json_decref(seed("POST", API_PREFIX "hosts/", 0, "{\"name\": \"h1\", \"inventory\": 1, \"variables\": \"a: 1\"}"));
        json_decref(seed("POST", API_PREFIX "hosts/", 0, "{\"name\": \"h2\", \"inventory\": 1}"));
        json_decref(seed("POST", API_PREFIX "groups/", 0, "{\"name\": \"g1\", \"inventory\": 1}"));
        json_decref(seed("POST", API_PREFIX "groups/%/hosts/", 1, "{\"id\": 1}"));
        json_decref(seed("POST", API_PREFIX "projects/", 0, "{\"name\": \"p\", \"organization\": 1, \"local_path\": \"demo\"}"));
        json_decref(seed("POST", API_PREFIX "job_templates/", 0,
                         "{\"name\": \"jt\", \"inventory\": 1, \"project\": 1, \"playbook\": \"site.yml\", "
                         "\"ask_variables_on_launch\": true, \"ask_limit_on_launch\": true}"));
        json_decref(seed("POST", API_PREFIX "job_templates/%/launch/", 1, "{\"extra_vars\": {\"x\": 1}, \"limit\": \"h1\"}"));
        json_decref(seed("POST", API_PREFIX "credentials/", 0,
                         "{\"name\": \"c\", \"organization\": 1, \"credential_type\": 1, \"inputs\": {}}"));
        seed_node();
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const http_route *route;
        unsigned id;
        char *text;

        if (size < 2)
                return 0;
        id = (data[0] < 0xe0 ? data[1] : data[0]) % 8 + 1;
        text = malloc(size - 2 + 1);       /* bodies reach the handlers NUL terminated */
        if (!text)
                return 0;
        memcpy(text, data + 2, size - 2);
        text[size - 2] = 0;

        if (data[0] >= 0xd0 && data[0] < 0xe0)
                agent_op(data[0], data[1], text, size - 2);
        else if (data[0] < 0xe0) {
                route = F.writes[data[0] % F.n_writes];
                (void) dispatch(route, id, NULL, 0, text, size - 2);
        } else {
                route = F.lists[data[1] % F.n_lists];
                (void) dispatch(route, id, text, size - 2, NULL, 0);
        }
        free(text);
        return 0;
}
