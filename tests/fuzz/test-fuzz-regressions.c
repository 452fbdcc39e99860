/* test-fuzz-regressions.c: unit tests (cmocka) for the fixes made while fuzzing and reviewing the
 * untrusted-input paths, where a fuzz corpus cannot express the case:
 *   - GET /api/v2/jobs/<id>/stdout/ reads the events in pages (not all event documents of a long
 *     job at once) and still gives every line, in counter order, across page boundaries;
 *   - a validation message quoting client text cut inside a UTF-8 sequence ("%.200s") is still
 *     answered 400 (it made the handler fail: 500);
 *   - list query strings that are not UTF-8 are answered 400 (were 500; the corpus file
 *     corpus/api/crash-list-query-not-utf8 covers it through the fuzz target too). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>

#include "api.h"
#include "drover/util.h"
#include "http-server.h"

typedef struct fixture {
        char dir[64];
        controller_config cfg;
        controller c;
        char projects[128];
} fixture;

static fixture *F;

static int setup(void **state) {
        char url[128], p[192];

        F = calloc(1, sizeof *F);
        assert_non_null(F);
        snprintf(F->dir, sizeof F->dir, "/tmp/test-fuzz-regr-XXXXXX");
        assert_non_null(mkdtemp(F->dir));
        snprintf(url, sizeof url, "sqlite:%s/drover.db", F->dir);
        snprintf(F->projects, sizeof F->projects, "%s/projects", F->dir);
        snprintf(p, sizeof p, "%s/demo", F->projects);
        assert_int_equal(mkdir_p(p, 0755), 0);
        snprintf(p, sizeof p, "%s/demo/site.yml", F->projects);
        assert_int_equal(write_file_atomic(p, "- hosts: all\n  tasks: []\n", 25, 0644), 0);
        F->cfg.state_dir = F->dir;
        F->cfg.projects_root = F->projects;
        F->cfg.admin_user = (char *) "admin";
        F->cfg.admin_password = (char *) "secret-pw";
        F->c.config = &F->cfg;
        assert_int_equal(storage_open(url, &F->c.storage), 0);
        assert_int_equal(controller_notify_init(&F->c), 0);
        assert_int_equal(api_bootstrap(&F->c), 0);
        *state = F;
        return 0;
}

static int teardown(void **state) {
        storage_close(F->c.storage);
        controller_notify_done(&F->c);
        assert_int_equal(rm_rf(F->dir), 0);
        free(F);
        return 0;
}

/* One request through the route table; returns the status, the response in *ret. */
static unsigned call(const char *method, const char *path, const char *query_key, const char *query_value,
                     const char *body, http_response *ret) {
        char *keys[1] = { (char *) query_key }, *values[1] = { (char *) query_value };
        http_request req = { .method = method, .path = path, .body = body, .body_size = body ? strlen(body) : 0,
                             .user_id = 1, .is_superuser = true, .username = (char *) "admin",
                             .n_query = query_key ? 1 : 0, .query_keys = keys, .query_values = values };

        *ret = (http_response) { .status = 200 };
        for (const http_route *r = api_routes; r->method; r++)
                if (streq(r->method, method) && http_route_match(r->pattern, path, req.ids, &req.n_ids)) {
                        assert_int_equal(r->handler(&F->c, &req, ret), 0);
                        return ret->status;
                }
        fail_msg("no route for %s %s", method, path);
        return 0;
}

static void response_done(http_response *r) {
        json_decref(r->json);
        free(r->body);
        free(r->location);
        free(r->retry_after);
}

static void test_stdout_paged(void **state) {
        const int n = 450;      /* more than two pages of STDOUT_EVENTS_PAGE */
        _cleanup_json_ json_t *events = json_array();
        http_response resp;
        char path[128], *expected = NULL;
        size_t expected_len = 0;
        int64_t jid, acked = 0;
        FILE *f;

        assert_int_equal(call("POST", "/api/v2/inventories/", NULL, NULL, "{\"name\": \"i\", \"organization\": 1}", &resp), 201);
        response_done(&resp);
        assert_int_equal(call("POST", "/api/v2/projects/", NULL, NULL,
                              "{\"name\": \"p\", \"organization\": 1, \"local_path\": \"demo\"}", &resp), 201);
        response_done(&resp);
        assert_int_equal(call("POST", "/api/v2/job_templates/", NULL, NULL,
                              "{\"name\": \"t\", \"inventory\": 1, \"project\": 1, \"playbook\": \"site.yml\"}", &resp), 201);
        response_done(&resp);
        assert_int_equal(call("POST", "/api/v2/job_templates/1/launch/", NULL, NULL, "{}", &resp), 201);
        jid = json_get_int(resp.json, "id", 0);
        response_done(&resp);
        assert_true(jid > 0);

        /* stored out of order; every third event has no output */
        f = open_memstream(&expected, &expected_len);
        assert_non_null(f);
        for (int i = 1; i <= n; i++) {
                char out[32] = "", uuid[32];
                snprintf(uuid, sizeof uuid, "u%d", i);
                if (i % 3 != 0) {
                        snprintf(out, sizeof out, "line %d", i);
                        fprintf(f, "%s\n", out);
                }
                assert_int_equal(json_array_append_new(events, json_pack("{s:i, s:s, s:s, s:s}", "counter", i,
                                                                         "event", "verbose", "uuid", uuid,
                                                                         "stdout", out)), 0);
        }
        fclose(f);
        for (int k = 0; k < 3; k++) {
                _cleanup_json_ json_t *part = json_array();
                for (int i = k; i < n; i += 3)
                        json_array_append(part, json_array_get(events, (size_t) (n - 1 - i)));
                assert_int_equal(storage_events_insert(F->c.storage, jid, 1, part, &acked), 0);
        }
        assert_int_equal(acked, n);

        snprintf(path, sizeof path, "/api/v2/jobs/%" PRIi64 "/stdout/", jid);
        assert_int_equal(call("GET", path, "format", "txt", NULL, &resp), 200);
        assert_non_null(resp.body);
        assert_int_equal(resp.body_size, expected_len);
        assert_memory_equal(resp.body, expected, expected_len);
        response_done(&resp);

        assert_int_equal(call("GET", path, "format", "json", NULL, &resp), 200);
        assert_string_equal(json_get_string(resp.json, "content", ""), expected);
        assert_int_equal(json_get_int(json_object_get(resp.json, "range"), "end", 0), n - n / 3);
        response_done(&resp);
        free(expected);
}

static void test_error_message_cut_in_utf8(void **state) {
        static const char *const choices[] = { "one", "two", NULL };
        static const api_field fields[] = {
                { "kind", AF_STRING, 0, NULL, 0, 0, choices },
                { .name = NULL },
        };
        static const api_resource res = { .type = ST_ORGANIZATION, .endpoint = "x", .awx_type = "x",
                                          .label = "X", .fields = fields, .name_field = "kind" };
        _cleanup_json_ json_t *body = NULL, *doc = json_object();
        http_response resp = { .status = 200 };
        char text[400] = "a";

        /* "a" + 150 x "é": byte 200 falls inside a two-byte sequence */
        for (int i = 0; i < 150; i++)
                strcat(text, "\xc3\xa9");
        body = json_pack("{s:s}", "kind", text);
        assert_non_null(body);
        assert_int_equal(api_validate_into(&F->c, &res, body, doc, false, &resp), 1);
        assert_int_equal(resp.status, 400);
        assert_non_null(resp.json);
        assert_true(json_is_string(json_array_get(json_object_get(resp.json, "kind"), 0)));
        response_done(&resp);
}

static void test_list_query_not_utf8(void **state) {
        char *keys[] = { (char *) "name__icontains" }, *values[] = { (char *) "\xff\xfeh" };
        http_request req = { .method = "GET", .path = "/api/v2/organizations/", .user_id = 1, .is_superuser = true,
                             .username = (char *) "admin", .n_query = 1, .query_keys = keys, .query_values = values };
        http_response resp = { .status = 200 };
        const http_route *r;

        for (r = api_routes; r->method; r++)
                if (streq(r->method, "GET") && http_route_match(r->pattern, req.path, req.ids, &req.n_ids))
                        break;
        assert_non_null(r->method);
        assert_int_equal(r->handler(&F->c, &req, &resp), 0);
        assert_int_equal(resp.status, 400);
        assert_non_null(resp.json);
        response_done(&resp);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_stdout_paged, setup, teardown),
                cmocka_unit_test_setup_teardown(test_error_message_cut_in_utf8, setup, teardown),
                cmocka_unit_test_setup_teardown(test_list_query_not_utf8, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
