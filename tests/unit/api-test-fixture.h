/* api-test-fixture.h: the fixture shared by the API unit tests: a controller with a real SQLite
 * storage and projects root in a temp dir (API_TEST_TMPDIR, a mkdtemp template the including test
 * defines), and call()/expect() helpers that dispatch a request through the real route tables. */
#pragma once

#ifndef API_TEST_TMPDIR
#error "define API_TEST_TMPDIR before including api-test-fixture.h"
#endif

typedef struct fixture {
        char dir[64];
        char url[128];
        char projects[128];
        controller_config cfg;
        controller c;
} fixture;

static fixture *F;

static _unused_ int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(p);
}

static _unused_ void write_text(const char *path, const char *text) {
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

static _unused_ int setup(void **state) {
        char p[256];

        F = calloc(1, sizeof *F);
        assert_non_null(F);
        snprintf(F->dir, sizeof F->dir, API_TEST_TMPDIR);
        assert_non_null(mkdtemp(F->dir));
        snprintf(F->url, sizeof F->url, "sqlite:%s/drover.db", F->dir);
        snprintf(F->projects, sizeof F->projects, "%s/projects", F->dir);
        snprintf(p, sizeof p, "%s/demo", F->projects);
        assert_int_equal(mkdir_p(p, 0755), 0);
        snprintf(p, sizeof p, "%s/demo/site.yml", F->projects);
        write_text(p, "- hosts: all\n  tasks: []\n");
        F->cfg.state_dir = F->dir;
        F->cfg.projects_root = F->projects;
        F->cfg.admin_user = (char *) "admin";
        F->cfg.admin_password = (char *) "secret-pw";
        F->c.config = &F->cfg;
        assert_int_equal(storage_open(F->url, &F->c.storage), 0);
        assert_int_equal(controller_notify_init(&F->c), 0);
        assert_int_equal(api_bootstrap(&F->c), 0);
        *state = F;
        return 0;
}

static _unused_ int teardown(void **state) {
        storage_close(F->c.storage);
        controller_notify_done(&F->c);
        nftw(F->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        free(F);
        return 0;
}

/* ---- a tiny dispatcher over api_routes ---- */

typedef struct result {
        unsigned status;
        json_t *json;
        char *body;
        char *location;
} result;

static _unused_ void result_free(result *r) {
        json_decref(r->json);
        free(r->body);
        free(r->location);
        memset(r, 0, sizeof *r);
}

static _unused_ char *url_decode(const char *s, size_t n) {
        char *out = malloc(n + 1), *o = out;
        assert_non_null(out);
        for (size_t i = 0; i < n; i++) {
                if (s[i] == '%' && i + 2 < n + 1 && s[i + 1] && s[i + 2]) {
                        char hex[3] = { s[i + 1], s[i + 2], 0 };
                        *o++ = (char) strtol(hex, NULL, 16);
                        i += 2;
                } else
                        *o++ = s[i] == '+' ? ' ' : s[i];
        }
        *o = 0;
        return out;
}

static _unused_ result call(const char *method, const char *url, const char *body) {
        http_request req = { .method = method, .body = body, .body_size = body ? strlen(body) : 0,
                             .user_id = 1, .is_superuser = true, .username = (char *) "admin" };
        http_response resp = { .status = 200 };
        char *path = strdup(url), *q = strchr(path, '?');
        result res = {};
        bool found = false;

        assert_non_null(path);
        if (q) {
                *q++ = 0;
                for (char *t = q; *t;) {
                        size_t n = strcspn(t, "&"), k = strcspn(t, "=");
                        req.query_keys = realloc(req.query_keys, (req.n_query + 1) * sizeof(char *));
                        req.query_values = realloc(req.query_values, (req.n_query + 1) * sizeof(char *));
                        req.query_keys[req.n_query] = url_decode(t, MIN(k, n));
                        req.query_values[req.n_query] = k < n ? url_decode(t + k + 1, n - k - 1) : strdup("");
                        req.n_query++;
                        t += n;
                        if (*t)
                                t++;
                }
        }
        req.path = path;
        for (const http_route *r = api_routes; r->method; r++) {
                if (!streq(r->method, method) || !http_route_match(r->pattern, path, req.ids, &req.n_ids))
                        continue;
                assert_int_equal(r->handler(&F->c, &req, &resp), 0);
                found = true;
                break;
        }
        if (!found)
                fail_msg("no route for %s %s", method, url);
        res.status = resp.status;
        res.json = resp.json;
        res.body = resp.body;
        res.location = resp.location;
        for (size_t i = 0; i < req.n_query; i++) {
                free(req.query_keys[i]);
                free(req.query_values[i]);
        }
        free(req.query_keys);
        free(req.query_values);
        free(path);
        return res;
}

/* call and expect a status; returns the JSON (owned by the caller) */
static _unused_ json_t *expect(unsigned status, const char *method, const char *url, const char *body) {
        result r = call(method, url, body);
        if (r.status != status) {
                char *s = r.json ? json_dumps(r.json, 0) : NULL;
                fail_msg("%s %s -> %u (expected %u): %s", method, url, r.status, status, s ? s : "(no json)");
        }
        json_t *j = r.json;
        r.json = NULL;
        result_free(&r);
        return j;
}

static _unused_ json_t *expectf(unsigned status, const char *method, const char *body, const char *fmt, ...) _printf_(4, 5);
static _unused_ json_t *expectf(unsigned status, const char *method, const char *body, const char *fmt, ...) {
        char url[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(url, sizeof url, fmt, ap);
        va_end(ap);
        return expect(status, method, url, body);
}

static _unused_ int64_t count_of(const char *url) {
        _cleanup_json_ json_t *j = expect(200, "GET", url, NULL);
        return json_get_int(j, "count", -1);
}

static _unused_ int64_t create_id(const char *url, const char *body) {
        _cleanup_json_ json_t *j = expect(201, "POST", url, body);
        return json_get_int(j, "id", 0);
}

static _unused_ int64_t default_org(void) {
        _cleanup_json_ json_t *j = expect(200, "GET", "/api/v2/organizations/?name=Default", NULL);
        assert_int_equal(json_get_int(j, "count", 0), 1);
        return json_get_int(json_array_get(json_object_get(j, "results"), 0), "id", 0);
}

static _unused_ const char *first_error(const json_t *j, const char *field) {
        return json_string_value(json_array_get(json_object_get(j, field), 0));
