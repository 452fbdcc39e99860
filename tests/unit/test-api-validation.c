/* test-api-validation.c: the AWX API handlers (api-*.c) called through the real route table
 * against a real SQLite storage in a temp dir: input validation (nothing stored on errors),
 * pagination links, filters, launch prompts, extra_vars round-trips, cancel, job output and host
 * summaries, associations, the inventory export and tokens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "api.h"
#include "drover/crypto.h"
#include "drover/util.h"
#include "http-server.h"

#define API_TEST_TMPDIR "/tmp/test-api-XXXXXX"
#include "api-test-fixture.h"
}

/* ---- tests ---- */

static void test_bad_input_stores_nothing(void **state) {
        int64_t orgs = count_of("/api/v2/organizations/"), org = default_org(), invs;
        _cleanup_json_ json_t *j1 = NULL, *j2 = NULL, *j3 = NULL, *j4 = NULL, *j5 = NULL, *j6 = NULL, *j7 = NULL;
        char body[256];

        j1 = expect(400, "POST", "/api/v2/organizations/", "{\"name\": \"x\",");
        assert_non_null(strstr(json_get_string(j1, "detail", ""), "JSON parse error"));
        j2 = expect(400, "POST", "/api/v2/organizations/", "{\"name\": 12}");
        assert_string_equal(first_error(j2, "name"), "Not a valid string.");
        j3 = expect(400, "POST", "/api/v2/organizations/", "{\"description\": \"d\"}");
        assert_string_equal(first_error(j3, "name"), "This field is required.");
        j4 = expect(400, "POST", "/api/v2/organizations/", "[1, 2]");
        assert_non_null(json_object_get(j4, "detail"));
        assert_int_equal(count_of("/api/v2/organizations/"), orgs);

        invs = count_of("/api/v2/inventories/");
        j5 = expect(400, "POST", "/api/v2/inventories/", "{\"name\": \"inv\", \"organization\": 99}");
        assert_string_equal(first_error(j5, "organization"), "Invalid pk \"99\" - object does not exist.");
        snprintf(body, sizeof body, "{\"name\": \"inv\", \"organization\": %" PRIi64 ", \"forks\": \"x\"}", org);
        assert_int_equal(count_of("/api/v2/inventories/"), invs);
        /* unknown fields are ignored, as AWX does */
        j6 = expect(201, "POST", "/api/v2/inventories/", body);
        assert_null(json_object_get(j6, "forks"));
        assert_int_equal(count_of("/api/v2/inventories/"), invs + 1);
        (void) j7;
}

static void test_bad_input_dup(void **state) {
        int64_t org = default_org(), invs, hosts;
        _cleanup_json_ json_t *j1 = NULL, *j2 = NULL, *j3 = NULL, *j4 = NULL, *j5 = NULL;
        char body[256];

        snprintf(body, sizeof body, "{\"name\": \"dup\", \"organization\": %" PRIi64 "}", org);
        create_id("/api/v2/inventories/", body);
        invs = count_of("/api/v2/inventories/");
        j1 = expect(400, "POST", "/api/v2/inventories/", body);
        assert_string_equal(first_error(j1, "__all__"), "Inventory with this Name and Organization already exists.");
        j2 = expect(400, "POST", "/api/v2/organizations/", "{\"name\": \"Default\"}");
        assert_non_null(first_error(j2, "name"));
        snprintf(body, sizeof body, "{\"name\": 5, \"organization\": \"abc\", \"variables\": \"[1]\"}");
        j3 = expect(400, "POST", "/api/v2/inventories/", body);
        assert_non_null(first_error(j3, "name"));
        assert_non_null(first_error(j3, "organization"));
        assert_non_null(first_error(j3, "variables"));
        assert_int_equal(count_of("/api/v2/inventories/"), invs);

        /* a host with a bad field type and an unknown inventory; nulls count as not provided */
        hosts = count_of("/api/v2/hosts/");
        j4 = expect(400, "POST", "/api/v2/hosts/", "{\"name\": \"h\", \"inventory\": 12345, \"enabled\": \"maybe\"}");
        assert_non_null(first_error(j4, "inventory"));
        assert_non_null(first_error(j4, "enabled"));
        assert_int_equal(count_of("/api/v2/hosts/"), hosts);

        /* PATCH with a bad value changes nothing */
        j5 = expectf(400, "PATCH", "{\"max_hosts\": \"many\", \"description\": \"changed\"}", "/api/v2/organizations/%" PRIi64 "/", org);
        assert_string_equal(first_error(j5, "max_hosts"), "A valid integer is required.");
        _cleanup_json_ json_t *o = expectf(200, "GET", NULL, "/api/v2/organizations/%" PRIi64 "/", org);
        assert_string_equal(json_get_string(o, "description", "?"), "");
}

static void test_output_shape_and_update(void **state) {
        _cleanup_json_ json_t *o = NULL, *p = NULL;
        int64_t id = create_id("/api/v2/organizations/", "{\"name\": \"Shape\", \"max_hosts\": 3, \"unknown\": 1}");

        o = expectf(200, "GET", NULL, "/api/v2/organizations/%" PRIi64 "/", id);
        assert_string_equal(json_get_string(o, "type", ""), "organization");
        assert_non_null(json_object_get(o, "related"));
        assert_non_null(json_object_get(json_object_get(o, "summary_fields"), "user_capabilities"));
        assert_int_equal(json_get_int(o, "max_hosts", 0), 3);
        assert_null(json_object_get(o, "unknown"));
        assert_true(json_is_null(json_object_get(o, "default_environment")));
        const char *created = json_get_string(o, "created", "");
        assert_int_equal(strlen(created), 27);
        assert_int_equal(created[26], 'Z');
        char url[64];
        snprintf(url, sizeof url, "/api/v2/organizations/%" PRIi64 "/", id);
        assert_string_equal(json_get_string(o, "url", ""), url);

        p = expect(200, "PATCH", url, "{\"description\": \"new\"}");
        assert_string_equal(json_get_string(p, "description", ""), "new");
        assert_string_equal(json_get_string(p, "name", ""), "Shape");
        json_decref(expect(204, "DELETE", url, NULL));
        json_decref(expect(404, "GET", url, NULL));
}

static void test_pagination(void **state) {
        _cleanup_json_ json_t *p1 = NULL, *p2 = NULL, *p3 = NULL;
        int64_t n;

        for (int i = 0; i < 3; i++) {
                char body[64];
                snprintf(body, sizeof body, "{\"name\": \"page-org-%d\"}", i);
                create_id("/api/v2/organizations/", body);
        }
        n = count_of("/api/v2/organizations/?name__startswith=page-org-");
        assert_int_equal(n, 3);
        p1 = expect(200, "GET", "/api/v2/organizations/?name__startswith=page-org-&page_size=1", NULL);
        assert_int_equal(json_array_size(json_object_get(p1, "results")), 1);
        assert_string_equal(json_get_string(p1, "next", ""),
                            "/api/v2/organizations/?name__startswith=page-org-&page=2&page_size=1");
        assert_true(json_is_null(json_object_get(p1, "previous")));
        p2 = expect(200, "GET", "/api/v2/organizations/?name__startswith=page-org-&page_size=1&page=2", NULL);
        assert_string_equal(json_get_string(p2, "previous", ""), "/api/v2/organizations/?name__startswith=page-org-&page_size=1");
        assert_string_equal(json_get_string(p2, "next", ""),
                            "/api/v2/organizations/?name__startswith=page-org-&page=3&page_size=1");
        assert_string_equal(json_get_string(json_array_get(json_object_get(p2, "results"), 0), "name", ""), "page-org-1");
        p3 = expect(200, "GET", "/api/v2/organizations/?name__startswith=page-org-&page_size=1&page=3&order_by=-name", NULL);
        assert_true(json_is_null(json_object_get(p3, "next")));
        assert_string_equal(json_get_string(json_array_get(json_object_get(p3, "results"), 0), "name", ""), "page-org-0");
        json_decref(expect(404, "GET", "/api/v2/organizations/?page=99", NULL));
        json_decref(expect(404, "GET", "/api/v2/organizations/?page=9223372036854775807&page_size=200", NULL));
        json_decref(expect(404, "GET", "/api/v2/organizations/?page=0", NULL));
        _cleanup_json_ json_t *big = expect(200, "GET", "/api/v2/organizations/?page_size=100000", NULL);
        assert_int_equal((int64_t) json_array_size(json_object_get(big, "results")), json_get_int(big, "count", -1));
}

static void test_filters(void **state) {
        int64_t org = default_org(), other, inv;
        char body[256], url[256];
        _cleanup_json_ json_t *j = NULL, *bad = NULL;

        other = create_id("/api/v2/organizations/", "{\"name\": \"FilterOrg\"}");
        snprintf(body, sizeof body, "{\"name\": \"Filter Inv\", \"organization\": %" PRIi64 "}", other);
        inv = create_id("/api/v2/inventories/", body);
        snprintf(body, sizeof body, "{\"name\": \"Filter Inv\", \"organization\": %" PRIi64 "}", org);
        create_id("/api/v2/inventories/", body);

        assert_int_equal(count_of("/api/v2/inventories/?name=Filter+Inv"), 2);
        snprintf(url, sizeof url, "/api/v2/inventories/?name=Filter%%20Inv&organization=%" PRIi64, other);
        assert_int_equal(count_of(url), 1);
        assert_int_equal(count_of("/api/v2/inventories/?name__icontains=filter"), 2);
        assert_int_equal(count_of("/api/v2/inventories/?name__iexact=filter+inv"), 2);
        assert_int_equal(count_of("/api/v2/inventories/?name__iexact=filter"), 0);
        snprintf(url, sizeof url, "/api/v2/inventories/?or__id=%" PRIi64 "&or__name=%" PRIi64, inv, inv);
        j = expect(200, "GET", url, NULL);
        assert_int_equal(json_get_int(j, "count", 0), 1);
        assert_int_equal(json_get_int(json_array_get(json_object_get(j, "results"), 0), "id", 0), inv);
        snprintf(url, sizeof url, "/api/v2/inventories/?not__organization=%" PRIi64 "&name=Filter+Inv", other);
        assert_int_equal(count_of(url), 1);
        snprintf(url, sizeof url, "/api/v2/inventories/?id__in=%" PRIi64 ",999999", inv);
        assert_int_equal(count_of(url), 1);
        assert_int_equal(count_of("/api/v2/inventories/?host_filter__isnull=true&name=Filter+Inv"), 2);
        assert_int_equal(count_of("/api/v2/organizations/?id__gt=0&search=x&page_size=200"), count_of("/api/v2/organizations/"));
        bad = expect(400, "GET", "/api/v2/inventories/?no_such_field=1", NULL);
        assert_non_null(json_object_get(bad, "detail"));
        json_decref(expect(400, "GET", "/api/v2/inventories/?organization=abc", NULL));
        json_decref(expect(400, "GET", "/api/v2/users/?password=x", NULL));
}

static int64_t make_inventory(const char *name) {
        char body[256];
        snprintf(body, sizeof body, "{\"name\": \"%s\", \"organization\": %" PRIi64 "}", name, default_org());
        return create_id("/api/v2/inventories/", body);
}

static int64_t make_project(void) {
        _cleanup_json_ json_t *j = expect(200, "GET", "/api/v2/projects/?name=demo", NULL);
        char body[256];

        if (json_get_int(j, "count", 0) > 0)
                return json_get_int(json_array_get(json_object_get(j, "results"), 0), "id", 0);
        snprintf(body, sizeof body, "{\"name\": \"demo\", \"organization\": %" PRIi64 ", \"scm_type\": \"\", \"local_path\": \"demo\"}",
                 default_org());
        return create_id("/api/v2/projects/", body);
}

static void test_projects_and_templates(void **state) {
        _cleanup_json_ json_t *j1 = NULL, *j2 = NULL, *j3 = NULL, *j4 = NULL, *jt = NULL;
        int64_t proj = make_project(), inv = make_inventory("jt-inv"), n;
        char body[512];

        j1 = expect(400, "POST", "/api/v2/projects/", "{\"name\": \"p2\", \"local_path\": \"missing\"}");
        assert_non_null(first_error(j1, "local_path"));
        j2 = expect(400, "POST", "/api/v2/projects/", "{\"name\": \"p3\", \"local_path\": \"../etc\"}");
        assert_non_null(first_error(j2, "local_path"));
        j3 = expect(400, "POST", "/api/v2/projects/", "{\"name\": \"p4\", \"scm_type\": \"git\", \"scm_url\": \"x\"}");
        assert_non_null(strstr(first_error(j3, "scm_type"), "not supported yet"));

        n = count_of("/api/v2/job_templates/");
        snprintf(body, sizeof body, "{\"name\": \"t\", \"inventory\": %" PRIi64 ", \"project\": %" PRIi64 ", \"playbook\": \"missing.yml\"}",
                 inv, proj);
        j4 = expect(400, "POST", "/api/v2/job_templates/", body);
        assert_string_equal(first_error(j4, "playbook"), "Playbook not found for project.");
        snprintf(body, sizeof body, "{\"name\": \"t\", \"inventory\": %" PRIi64 ", \"project\": %" PRIi64 ", \"playbook\": \"../demo/site.yml\"}",
                 inv, proj);
        json_decref(expect(400, "POST", "/api/v2/job_templates/", body));
        snprintf(body, sizeof body, "{\"name\": \"t\", \"inventory\": %" PRIi64 ", \"project\": %" PRIi64
                 ", \"playbook\": \"site.yml\", \"verbosity\": 9, \"job_type\": \"deploy\"}", inv, proj);
        _cleanup_json_ json_t *j5 = expect(400, "POST", "/api/v2/job_templates/", body);
        assert_string_equal(first_error(j5, "verbosity"), "Ensure this value is less than or equal to 5.");
        assert_string_equal(first_error(j5, "job_type"), "\"deploy\" is not a valid choice.");
        assert_int_equal(count_of("/api/v2/job_templates/"), n);

        snprintf(body, sizeof body, "{\"name\": \"t\", \"inventory\": %" PRIi64 ", \"project\": %" PRIi64 ", \"playbook\": \"site.yml\"}",
                 inv, proj);
        jt = expect(201, "POST", "/api/v2/job_templates/", body);
        assert_string_equal(json_get_string(jt, "job_type", ""), "run");
        assert_int_equal(json_get_int(jt, "job_slice_count", 0), 1);
        assert_false(json_get_bool(jt, "ask_limit_on_launch", true));
        assert_true(json_is_null(json_object_get(jt, "execution_environment")));
        assert_int_equal(json_get_int(jt, "organization", 0), default_org());   /* from the project */
        snprintf(body, sizeof body, "/api/v2/job_templates/%" PRIi64 "/launch/", json_get_int(jt, "id", 0));
        assert_string_equal(json_get_string(json_object_get(jt, "related"), "launch", ""), body);
        assert_int_equal(count_of("/api/v2/unified_job_templates/?name=t"), 1);
}

static int64_t make_template(const char *name, const char *extra) {
        char body[1024];
        snprintf(body, sizeof body, "{\"name\": \"%s\", \"inventory\": %" PRIi64 ", \"project\": %" PRIi64
                 ", \"playbook\": \"site.yml\"%s}", name, make_inventory(name), make_project(), extra);
        return create_id("/api/v2/job_templates/", body);
}

static void test_extra_vars_round_trip(void **state) {
        static const char *const texts[] = {
                "{\"a\":   1,\n \"b\": [1,2]}",
                "---\nfoo: 1\nbar: [x, y]\n",
                "",
        };
        for (size_t i = 0; i < ELEMENTSOF(texts); i++) {
                _cleanup_json_ json_t *v = json_string(texts[i]), *body = json_pack("{s:O}", "extra_vars", v), *got = NULL;
                _cleanup_free_ char *b = json_dumps(body, 0);
                char name[32];
                snprintf(name, sizeof name, "ev-%zu", i);
                int64_t id = make_template(name, "");
                got = expectf(200, "PATCH", b, "/api/v2/job_templates/%" PRIi64 "/", id);
                assert_string_equal(json_get_string(got, "extra_vars", "?"), texts[i]);
                json_decref(got);
                got = expectf(200, "GET", NULL, "/api/v2/job_templates/%" PRIi64 "/", id);
                assert_string_equal(json_get_string(got, "extra_vars", "?"), texts[i]);
        }
        /* YAML aliases cannot blow up into a huge document */
        {
                _cleanup_free_ char *bomb = strdup("a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                                                   "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                                                   "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n");
                json_t *j = NULL;
                assert_int_equal(api_parse_vars(bomb, &j), -EINVAL);
                assert_int_equal(api_parse_vars("a: &a [1, 2]\nb: *a\n", &j), 0);
                assert_int_equal(json_array_size(json_object_get(j, "b")), 2);
                json_decref(j);
        }
        /* a YAML template's vars reach the job as JSON, merged with the prompted ones */
        int64_t id = make_template("ev-merge", ", \"extra_vars\": \"---\\nfoo: 1\\nkeep: yes\\n\", \"ask_variables_on_launch\": true");
        _cleanup_json_ json_t *job = expectf(201, "POST", "{\"extra_vars\": {\"foo\": 2, \"new\": \"x\"}}",
                                             "/api/v2/job_templates/%" PRIi64 "/launch/", id);
        _cleanup_json_ json_t *vars = json_loads(json_get_string(job, "extra_vars", ""), 0, NULL);
        assert_non_null(vars);
        assert_int_equal(json_get_int(vars, "foo", 0), 2);
        assert_true(json_get_bool(vars, "keep", false));
        assert_string_equal(json_get_string(vars, "new", ""), "x");
}

static void test_launch_prompts(void **state) {
        int64_t id = make_template("launch-t", ", \"limit\": \"web\"");
        _cleanup_json_ json_t *job = NULL, *desc = NULL, *again = NULL, *cancel = NULL;
        result r = {};
        char url[128];

        desc = expectf(200, "GET", NULL, "/api/v2/job_templates/%" PRIi64 "/launch/", id);
        assert_false(json_get_bool(desc, "ask_limit_on_launch", true));
        assert_true(json_get_bool(desc, "can_start_without_user_input", false));

        snprintf(url, sizeof url, "/api/v2/job_templates/%" PRIi64 "/launch/", id);
        r = call("POST", url, "{\"limit\": \"db\", \"job_timeout\": 5}");
        assert_int_equal(r.status, 201);
        job = json_incref(r.json);
        assert_string_equal(json_get_string(json_object_get(job, "ignored_fields"), "limit", ""), "db");
        assert_string_equal(json_get_string(job, "limit", ""), "web");
        assert_int_equal(json_get_int(job, "job", 0), json_get_int(job, "id", -1));
        assert_string_equal(json_get_string(job, "type", ""), "job");
        assert_string_equal(json_get_string(job, "launch_type", ""), "manual");
        assert_false(json_get_bool(job, "failed", true));
        assert_true(json_is_null(json_object_get(job, "finished")));
        assert_string_equal(json_get_string(job, "extra_vars", ""), "{}");
        assert_string_equal(json_get_string(json_object_get(job, "launched_by"), "type", ""), "user");
        assert_null(json_object_get(job, "_attempt"));
        snprintf(url, sizeof url, "/api/v2/jobs/%" PRIi64 "/", json_get_int(job, "id", 0));
        assert_string_equal(r.location, url);
        result_free(&r);

        /* with ask_limit_on_launch the limit is taken */
        again = expectf(200, "PATCH", "{\"ask_limit_on_launch\": true}", "/api/v2/job_templates/%" PRIi64 "/", id);
        json_decref(again);
        again = expectf(201, "POST", "{\"limit\": \"db\"}", "/api/v2/job_templates/%" PRIi64 "/launch/", id);
        assert_string_equal(json_get_string(again, "limit", ""), "db");
        assert_int_equal(json_object_size(json_object_get(again, "ignored_fields")), 0);

        /* cancel a pending job: final at once; a second cancel is refused */
        int64_t jid = json_get_int(job, "id", 0);
        cancel = expectf(200, "GET", NULL, "/api/v2/jobs/%" PRIi64 "/cancel/", jid);
        assert_true(json_get_bool(cancel, "can_cancel", false));
        json_decref(expectf(403, "DELETE", NULL, "/api/v2/jobs/%" PRIi64 "/", jid));
        json_decref(expectf(202, "POST", NULL, "/api/v2/jobs/%" PRIi64 "/cancel/", jid));
        _cleanup_json_ json_t *done = expectf(200, "GET", NULL, "/api/v2/jobs/%" PRIi64 "/", jid);
        assert_string_equal(json_get_string(done, "status", ""), "canceled");
        assert_true(json_get_bool(done, "failed", false));
        assert_non_null(json_get_string(done, "finished", NULL));
        json_decref(expectf(405, "POST", NULL, "/api/v2/jobs/%" PRIi64 "/cancel/", jid));
        assert_int_equal(api_job_cancel(&F->c, jid), -EBUSY);
        snprintf(url, sizeof url, "/api/v2/jobs/?id=%" PRIi64 "&status=canceled", jid);
        assert_int_equal(count_of(url), 1);
        _cleanup_json_ json_t *re = expectf(201, "POST", "{}", "/api/v2/jobs/%" PRIi64 "/relaunch/", jid);
        assert_string_equal(json_get_string(re, "launch_type", ""), "relaunch");
        assert_string_equal(json_get_string(re, "status", ""), "pending");
        assert_string_equal(json_get_string(re, "limit", ""), "web");
        assert_int_equal(json_get_int(re, "job_template", 0), id);
        json_decref(expectf(204, "DELETE", NULL, "/api/v2/jobs/%" PRIi64 "/", jid));
        json_decref(expectf(404, "GET", NULL, "/api/v2/jobs/%" PRIi64 "/", jid));
}

static void test_job_output(void **state) {
        int64_t tid = make_template("output-t", ""), jid, host;
        _cleanup_json_ json_t *job = NULL, *events = NULL, *sums = NULL, *ev = NULL, *js = NULL, *tmpl = NULL;
        char body[256];
        result r;
        int64_t acked = 0;

        tmpl = expectf(200, "GET", NULL, "/api/v2/job_templates/%" PRIi64 "/", tid);
        snprintf(body, sizeof body, "{\"name\": \"web1\", \"inventory\": %" PRIi64 "}", json_get_int(tmpl, "inventory", 0));
        host = create_id("/api/v2/hosts/", body);
        job = expectf(201, "POST", "{}", "/api/v2/job_templates/%" PRIi64 "/launch/", tid);
        jid = json_get_int(job, "id", 0);
        events = json_loads("[{\"counter\": 1, \"event\": \"playbook_on_start\", \"uuid\": \"u1\", \"stdout\": \"\"},"
                            " {\"counter\": 2, \"event\": \"playbook_on_play_start\", \"uuid\": \"u2\", \"stdout\": \"\\nPLAY [all] ***\"},"
                            " {\"counter\": 3, \"event\": \"runner_on_failed\", \"uuid\": \"u3\", \"stdout\": \"fatal: [web1]: FAILED!\","
                            "  \"event_data\": {\"host\": \"web1\", \"task\": \"t1\", \"res\": {}}},"
                            " {\"counter\": 4, \"event\": \"playbook_on_stats\", \"uuid\": \"u4\", \"stdout\": \"\\nPLAY RECAP\","
                            "  \"event_data\": {\"ok\": {\"web1\": 2, \"web2\": 1}, \"changed\": {\"web1\": 1}, \"failures\": {\"web2\": 1},"
                            "  \"processed\": {\"web1\": 1, \"web2\": 1}}}]", 0, NULL);
        assert_non_null(events);
        assert_int_equal(storage_events_insert(F->c.storage, jid, 1, events, &acked), 0);
        assert_int_equal(acked, 4);

        ev = expectf(200, "GET", NULL, "/api/v2/jobs/%" PRIi64 "/job_events/?counter__gt=1&page_size=2", jid);
        assert_int_equal(json_get_int(ev, "count", 0), 3);
        assert_int_equal(json_get_int(json_array_get(json_object_get(ev, "results"), 0), "counter", 0), 2);
        assert_non_null(json_get_string(ev, "next", NULL));
        json_decref(ev);
        ev = expectf(200, "GET", NULL, "/api/v2/jobs/%" PRIi64 "/job_events/?event=runner_on_failed", jid);
        assert_int_equal(json_get_int(ev, "count", 0), 1);
        json_t *e = json_array_get(json_object_get(ev, "results"), 0);
        assert_true(json_get_bool(e, "failed", false));
        assert_string_equal(json_get_string(e, "host_name", ""), "web1");
        assert_string_equal(json_get_string(e, "type", ""), "job_event");

        char url[128];
        snprintf(url, sizeof url, "/api/v2/jobs/%" PRIi64 "/stdout/?format=txt", jid);
        r = call("GET", url, NULL);
        assert_int_equal(r.status, 200);
        assert_non_null(r.body);
        assert_string_equal(r.body, "\nPLAY [all] ***\nfatal: [web1]: FAILED!\n\nPLAY RECAP\n");
        result_free(&r);
        js = expectf(200, "GET", NULL, "/api/v2/jobs/%" PRIi64 "/stdout/?format=json", jid);
        assert_string_equal(json_get_string(js, "content", ""), "\nPLAY [all] ***\nfatal: [web1]: FAILED!\n\nPLAY RECAP\n");
        assert_int_equal(json_get_int(json_object_get(js, "range"), "end", 0), 5);

        sums = expectf(200, "GET", NULL, "/api/v2/jobs/%" PRIi64 "/job_host_summaries/", jid);
        assert_int_equal(json_get_int(sums, "count", 0), 2);
        json_t *s1 = NULL, *s2 = NULL, *it;
        size_t i;
        json_array_foreach(json_object_get(sums, "results"), i, it) {
                if (streq(json_get_string(it, "host_name", ""), "web1"))
                        s1 = it;
                else
                        s2 = it;
        }
        assert_non_null(s1);
        assert_non_null(s2);
        assert_int_equal(json_get_int(s1, "ok", 0), 2);
        assert_int_equal(json_get_int(s1, "changed", 0), 1);
        assert_int_equal(json_get_int(s1, "host", 0), host);
        assert_false(json_get_bool(s1, "failed", true));
        assert_true(json_get_bool(s2, "failed", false));
        assert_true(json_is_null(json_object_get(s2, "host")));
}

static void test_groups_and_export(void **state) {
        int64_t inv = make_inventory("export-inv"), g1, g2, h1, h2, h3;
        char body[256], url[128];
        _cleanup_json_ json_t *exp = NULL, *created = NULL, *vars = NULL;

        snprintf(body, sizeof body, "{\"name\": \"web\", \"inventory\": %" PRIi64 ", \"variables\": \"max_conn: 100\"}", inv);
        g1 = create_id("/api/v2/groups/", body);
        snprintf(body, sizeof body, "{\"name\": \"canary\", \"inventory\": %" PRIi64 "}", inv);
        g2 = create_id("/api/v2/groups/", body);
        snprintf(body, sizeof body, "{\"name\": \"web1\", \"inventory\": %" PRIi64 ", \"variables\": \"{\\\"ansible_host\\\": \\\"10.0.0.1\\\"}\"}", inv);
        h1 = create_id("/api/v2/hosts/", body);
        snprintf(body, sizeof body, "{\"name\": \"db1\", \"inventory\": %" PRIi64 ", \"enabled\": null}", inv);
        h2 = create_id("/api/v2/hosts/", body);
        snprintf(body, sizeof body, "{\"name\": \"off\", \"inventory\": %" PRIi64 ", \"enabled\": false}", inv);
        h3 = create_id("/api/v2/hosts/", body);
        (void) h3;

        snprintf(url, sizeof url, "/api/v2/groups/%" PRIi64 "/hosts/", g1);
        snprintf(body, sizeof body, "{\"id\": %" PRIi64 "}", h1);
        json_decref(expect(204, "POST", url, body));
        snprintf(body, sizeof body, "{\"id\": %" PRIi64 "}", h2);
        json_decref(expect(204, "POST", url, body));
        assert_int_equal(count_of(url), 2);
        snprintf(body, sizeof body, "{\"id\": %" PRIi64 ", \"disassociate\": true}", h2);
        json_decref(expect(204, "POST", url, body));
        assert_int_equal(count_of(url), 1);
        snprintf(url, sizeof url, "/api/v2/groups/%" PRIi64 "/children/", g1);
        snprintf(body, sizeof body, "{\"id\": %" PRIi64 "}", g2);
        json_decref(expect(204, "POST", url, body));
        /* no cycles: canary is web's child, so web cannot become canary's child */
        snprintf(url, sizeof url, "/api/v2/groups/%" PRIi64 "/children/", g2);
        snprintf(body, sizeof body, "{\"id\": %" PRIi64 "}", g1);
        json_decref(expect(400, "POST", url, body));
        snprintf(body, sizeof body, "{\"id\": %" PRIi64 "}", g2);
        json_decref(expect(400, "POST", url, body));
        snprintf(url, sizeof url, "/api/v2/groups/%" PRIi64 "/hosts/", g2);
        created = expect(201, "POST", url, "{\"name\": \"web3\"}");
        assert_int_equal(json_get_int(created, "inventory", 0), inv);
        assert_int_equal(count_of(url), 1);
        snprintf(url, sizeof url, "/api/v2/inventories/%" PRIi64 "/hosts/", inv);
        assert_int_equal(count_of(url), 4);

        assert_int_equal(api_inventory_export(&F->c, inv, &exp), 0);
        _cleanup_free_ char *s = json_dumps(exp, JSON_SORT_KEYS | JSON_COMPACT);
        assert_string_equal(s,
                "{\"_meta\":{\"hostvars\":{\"db1\":{},\"web1\":{\"ansible_host\":\"10.0.0.1\"},\"web3\":{}}},"
                "\"all\":{\"children\":[\"ungrouped\",\"web\"]},"
                "\"canary\":{\"hosts\":[\"web3\"]},"
                "\"ungrouped\":{\"hosts\":[\"db1\"]},"
                "\"web\":{\"children\":[\"canary\"],\"hosts\":[\"web1\"],\"vars\":{\"max_conn\":100}}}");

        /* the in-memory id-set path (used for relations above the SQL IN limit) */
        {
                int64_t ids[] = { h1, h2 };
                http_request req = { .method = "GET", .path = "/api/v2/hosts/" };
                http_response resp = {};
                char *keys[] = { (char *) "name__startswith" }, *vals[] = { (char *) "web" };
                req.n_query = 1, req.query_keys = keys, req.query_values = vals;
                assert_int_equal(api_obj_list_ids(&F->c, &req, &resp, &api_res_host, ids, 2), 0);
                assert_int_equal(resp.status, 200);
                assert_int_equal(json_get_int(resp.json, "count", 0), 1);
                assert_int_equal(json_get_int(json_array_get(json_object_get(resp.json, "results"), 0), "id", 0), h1);
                json_decref(resp.json);
        }

        /* deleting the inventory takes hosts and groups along */
        snprintf(url, sizeof url, "/api/v2/inventories/%" PRIi64 "/", inv);
        json_decref(expect(204, "DELETE", url, NULL));
        snprintf(url, sizeof url, "/api/v2/hosts/?inventory=%" PRIi64, inv);
        assert_int_equal(count_of(url), 0);
        (void) vars;
}

static void test_users_tokens_misc(void **state) {
        _cleanup_json_ json_t *u = NULL, *tok = NULL, *me = NULL, *ping = NULL, *stored = NULL, *cfg = NULL;
        char hash[65], url[64];

        u = expect(201, "POST", "/api/v2/users/", "{\"username\": \"bob\", \"password\": \"pw\", \"email\": \"b@x\"}");
        assert_string_equal(json_get_string(u, "password", ""), "$encrypted$");
        assert_null(json_object_get(u, "_password_hash"));
        assert_int_equal(storage_obj_get(F->c.storage, ST_USER, json_get_int(u, "id", 0), &stored), 0);
        assert_int_equal(crypto_password_verify("pw", json_get_string(stored, "_password_hash", "")), 1);
        assert_null(json_object_get(stored, "password"));
        json_decref(expect(400, "POST", "/api/v2/users/", "{\"username\": \"bob\"}"));

        tok = expect(201, "POST", "/api/v2/tokens/", "{\"description\": \"t\", \"application\": null, \"scope\": \"write\"}");
        assert_string_equal(json_get_string(tok, "type", ""), "o_auth2_access_token");
        const char *secret = json_get_string(tok, "token", "");
        assert_true(strlen(secret) >= 30);
        crypto_sha256_hex(secret, strlen(secret), hash);
        json_decref(stored);
        stored = NULL;
        assert_int_equal(storage_obj_find(F->c.storage, ST_TOKEN, "_token_hash", hash, &stored), 0);
        snprintf(url, sizeof url, "/api/v2/tokens/%" PRIi64 "/", json_get_int(tok, "id", 0));
        json_decref(expect(204, "DELETE", url, NULL));

        me = expect(200, "GET", "/api/v2/me/", NULL);
        assert_string_equal(json_get_string(json_array_get(json_object_get(me, "results"), 0), "username", ""), "admin");
        ping = expect(200, "GET", "/api/v2/ping/", NULL);
        assert_string_equal(json_get_string(ping, "version", ""), "21.14.0");
        assert_int_equal(strlen(json_get_string(ping, "install_uuid", "")), 36);
        cfg = expect(200, "GET", "/api/v2/config/", NULL);
        assert_string_equal(json_string_value(json_array_get(json_object_get(cfg, "project_local_paths"), 0)), "demo");
        assert_int_equal(count_of("/api/v2/instance_groups/?name=default"), 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_bad_input_stores_nothing),
                cmocka_unit_test(test_bad_input_dup),
                cmocka_unit_test(test_output_shape_and_update),
                cmocka_unit_test(test_pagination),
                cmocka_unit_test(test_filters),
                cmocka_unit_test(test_projects_and_templates),
                cmocka_unit_test(test_extra_vars_round_trip),
                cmocka_unit_test(test_launch_prompts),
                cmocka_unit_test(test_job_output),
                cmocka_unit_test(test_groups_and_export),
                cmocka_unit_test(test_users_tokens_misc),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
