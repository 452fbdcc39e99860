/* test-storage.c: unit tests of the SQLite storage backend (storage.h) against a real database
 * file in a fresh mkdtemp directory: objects, filters, relations, job events, migrations and
 * transactions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>

#include "drover/json-util.h"
#include "storage-migrations.h"
#include "storage.h"

/* The schema version a fresh database reaches: the last migration's. */
static int latest_version(void) {
        return storage_migrations[storage_migrations_count - 1].version;
}

typedef struct fixture {
        char dir[64];
        char path[128];
        storage *s;
} fixture;

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(p);
}

static int setup(void **state) {
        fixture *f = calloc(1, sizeof *f);
        assert_non_null(f);
        snprintf(f->dir, sizeof f->dir, "/tmp/test-storage-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->path, sizeof f->path, "sqlite:%s/drover.db", f->dir);
        assert_int_equal(storage_open(f->path, &f->s), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture *f = *state;
        storage_close(f->s);
        nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        free(f);
        return 0;
}

static json_t *J(const char *text) {
        json_error_t err;
        json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        if (!j)
                fail_msg("bad JSON in test: %s: %s", text, err.text);
        return j;
}

static int64_t create(storage *s, storage_type t, const char *text) {
        _cleanup_json_ json_t *doc = J(text);
        int64_t id = -1;
        assert_int_equal(storage_obj_create(s, t, doc, &id), 0);
        assert_true(id > 0);
        return id;
}

/* Run a list and return the ids as "1,2,3" in a static buffer; *ret_count gets the total. */
static const char *list_ids(storage *s, storage_type t, const storage_query *q, int64_t *ret_count) {
        static char buf[512];
        _cleanup_json_ json_t *res = NULL;
        size_t i, n = 0;
        json_t *e;

        assert_int_equal(storage_obj_list(s, t, q, &res, ret_count), 0);
        buf[0] = 0;
        json_array_foreach(res, i, e)
                n += (size_t) snprintf(buf + n, sizeof buf - n, "%s%lld", i ? "," : "",
                                       (long long) json_integer_value(json_object_get(e, "id")));
        return buf;
}

static const char *filter1(storage *s, const char *field, storage_filter_op op, const char *value, bool negate) {
        _cleanup_json_ json_t *v = J(value);
        storage_filter f = { .field = field, .op = op, .value = v, .negate = negate };
        storage_query q = { .filters = &f, .n_filters = 1 };
        return list_ids(s, ST_HOST, &q, NULL);
}

static void test_type_names(void **state) {
        assert_string_equal(storage_type_to_string(ST_ORGANIZATION), "organizations");
        assert_string_equal(storage_type_to_string(ST_JOB_TEMPLATE), "job_templates");
        assert_string_equal(storage_type_to_string(ST_ENROLLMENT_TOKEN), "enrollment_tokens");
        assert_int_equal(storage_type_from_string("instance_groups"), ST_INSTANCE_GROUP);
        assert_int_equal(storage_type_from_string("nope"), _ST_INVALID);
        assert_null(storage_type_to_string(_ST_MAX));
}

static void test_open_url(void **state) {
        fixture *f = *state;
        storage *s = NULL;
        char url[160];

        assert_int_equal(storage_open("postgresql://db/drover", &s), -EPROTONOSUPPORT);
        assert_null(s);
        /* a plain path and sqlite:// work too */
        snprintf(url, sizeof url, "%s/plain.db", f->dir);
        assert_int_equal(storage_open(url, &s), 0);
        assert_int_equal(storage_schema_version(s), latest_version());
        storage_close(s);
        snprintf(url, sizeof url, "sqlite://%s/plain.db", f->dir);
        assert_int_equal(storage_open(url, &s), 0);
        storage_close(s);
}

static void test_crud(void **state) {
        fixture *f = *state;
        _cleanup_json_ json_t *got = NULL, *got2 = NULL, *got3 = NULL, *repl = NULL, *patch = NULL;

        int64_t id = create(f->s, ST_ORGANIZATION, "{\"id\": 99, \"name\": \"Default\", \"max_hosts\": 0, \"_x\": null}");
        assert_int_equal(id, 1);
        assert_int_equal(create(f->s, ST_ORGANIZATION, "{\"name\": \"Second\"}"), 2);
        /* ids are per type */
        assert_int_equal(create(f->s, ST_USER, "{\"username\": \"admin\"}"), 1);

        assert_int_equal(storage_obj_get(f->s, ST_ORGANIZATION, id, &got), 0);
        assert_int_equal(json_integer_value(json_object_get(got, "id")), 1);
        assert_string_equal(json_string_value(json_object_get(got, "name")), "Default");
        assert_true(json_is_null(json_object_get(got, "_x")));
        assert_int_equal(json_object_size(got), 4);

        repl = J("{\"name\": \"Renamed\", \"id\": 7}");
        assert_int_equal(storage_obj_replace(f->s, ST_ORGANIZATION, id, repl), 0);
        assert_int_equal(storage_obj_get(f->s, ST_ORGANIZATION, id, &got2), 0);
        assert_int_equal(json_object_size(got2), 2);
        assert_string_equal(json_string_value(json_object_get(got2, "name")), "Renamed");
        assert_int_equal(json_integer_value(json_object_get(got2, "id")), 1);

        patch = J("{\"description\": \"d\", \"id\": 5, \"flag\": true}");
        assert_int_equal(storage_obj_patch(f->s, ST_ORGANIZATION, id, patch), 0);
        assert_int_equal(storage_obj_get(f->s, ST_ORGANIZATION, id, &got3), 0);
        assert_string_equal(json_string_value(json_object_get(got3, "name")), "Renamed");
        assert_string_equal(json_string_value(json_object_get(got3, "description")), "d");
        assert_true(json_is_true(json_object_get(got3, "flag")));
        assert_int_equal(json_integer_value(json_object_get(got3, "id")), 1);

        assert_int_equal(storage_obj_replace(f->s, ST_ORGANIZATION, 42, repl), -ENOENT);
        assert_int_equal(storage_obj_patch(f->s, ST_ORGANIZATION, 42, patch), -ENOENT);
        assert_int_equal(storage_obj_delete(f->s, ST_ORGANIZATION, id), 0);
        json_t *none = NULL;
        assert_int_equal(storage_obj_get(f->s, ST_ORGANIZATION, id, &none), -ENOENT);
        assert_null(none);
        assert_int_equal(storage_obj_delete(f->s, ST_ORGANIZATION, id), -ENOENT);
        /* AUTOINCREMENT: ids are never reused */
        assert_int_equal(create(f->s, ST_ORGANIZATION, "{\"name\": \"Third\"}"), 3);

        _cleanup_json_ json_t *arr = J("[1]");
        assert_int_equal(storage_obj_create(f->s, ST_ORGANIZATION, arr, NULL), -EINVAL);
}

/* Every storage type has its table (a type added without a migration fails here). */
static void test_all_types(void **state) {
        fixture *f = *state;
        for (int t = 0; t < _ST_MAX; t++) {
                _cleanup_json_ json_t *got = NULL;
                int64_t id = create(f->s, (storage_type) t, "{\"name\": \"x\"}");
                assert_non_null(storage_type_to_string((storage_type) t));
                assert_int_equal(storage_type_from_string(storage_type_to_string((storage_type) t)), t);
                assert_int_equal(storage_obj_get(f->s, (storage_type) t, id, &got), 0);
                assert_int_equal(storage_obj_delete(f->s, (storage_type) t, id), 0);
        }
}

static void seed_hosts(storage *s) {
        /* ids 1..6 */
        create(s, ST_HOST, "{\"name\": \"web1\", \"inventory\": 3, \"enabled\": true, \"port\": 80, \"description\": \"Front 100%_web\"}");
        create(s, ST_HOST, "{\"name\": \"web2\", \"inventory\": \"3\", \"enabled\": false, \"port\": 8080}");
        create(s, ST_HOST, "{\"name\": \"db1\", \"inventory\": 4, \"enabled\": null, \"port\": 5432, \"description\": \"Database\"}");
        create(s, ST_HOST, "{\"name\": \"5\", \"inventory\": 3, \"enabled\": true, \"weight\": 1.5}");
        create(s, ST_HOST, "{\"name\": \"Web3\", \"inventory\": 3, \"enabled\": true, \"port\": 443}");
        create(s, ST_HOST, "{\"name\": \"web_1\", \"inventory\": 5, \"enabled\": true, \"port\": 80}");
}

static void test_filters(void **state) {
        fixture *f = *state;
        storage *s = f->s;
        seed_hosts(s);

        /* typed equality: integer 3 only matches integer fields, string "3" only strings */
        assert_string_equal(filter1(s, "inventory", SF_EQ, "3", false), "1,4,5");
        assert_string_equal(filter1(s, "inventory", SF_EQ, "\"3\"", false), "2");
        /* the id column: integer or numeric string */
        assert_string_equal(filter1(s, "id", SF_EQ, "2", false), "2");
        assert_string_equal(filter1(s, "id", SF_EQ, "\"2\"", false), "2");
        assert_string_equal(filter1(s, "name", SF_EQ, "\"db1\"", false), "3");
        /* booleans and null */
        assert_string_equal(filter1(s, "enabled", SF_EQ, "true", false), "1,4,5,6");
        assert_string_equal(filter1(s, "enabled", SF_EQ, "false", false), "2");
        assert_string_equal(filter1(s, "enabled", SF_EQ, "null", false), "3");
        assert_string_equal(filter1(s, "description", SF_EQ, "null", false), "2,4,5,6");
        assert_string_equal(filter1(s, "description", SF_ISNULL, "true", false), "2,4,5,6");
        assert_string_equal(filter1(s, "description", SF_ISNULL, "false", false), "1,3");
        /* NE keeps documents without the field (IS NOT) */
        assert_string_equal(filter1(s, "port", SF_NE, "80", false), "2,3,4,5");
        /* comparisons */
        assert_string_equal(filter1(s, "port", SF_GT, "443", false), "2,3");
        assert_string_equal(filter1(s, "port", SF_GTE, "443", false), "2,3,5");
        assert_string_equal(filter1(s, "port", SF_LT, "443", false), "1,6");
        assert_string_equal(filter1(s, "port", SF_LTE, "443", false), "1,5,6");
        assert_string_equal(filter1(s, "id", SF_GT, "4", false), "5,6");
        assert_string_equal(filter1(s, "weight", SF_GT, "1.25", false), "4");
        /* icontains: case-insensitive, % and _ are literal */
        assert_string_equal(filter1(s, "name", SF_ICONTAINS, "\"WEB\"", false), "1,2,5,6");
        assert_string_equal(filter1(s, "name", SF_ICONTAINS, "\"b_\"", false), "6");
        assert_string_equal(filter1(s, "description", SF_ICONTAINS, "\"100%_w\"", false), "1");
        assert_string_equal(filter1(s, "description", SF_ICONTAINS, "\"0%w\"", false), "");
        /* startswith: case-sensitive */
        assert_string_equal(filter1(s, "name", SF_STARTSWITH, "\"web\"", false), "1,2,6");
        assert_string_equal(filter1(s, "name", SF_STARTSWITH, "\"Web\"", false), "5");
        /* in: typed members */
        assert_string_equal(filter1(s, "name", SF_IN, "[\"db1\", \"web2\", \"nope\"]", false), "2,3");
        assert_string_equal(filter1(s, "inventory", SF_IN, "[4, 5]", false), "3,6");
        assert_string_equal(filter1(s, "id", SF_IN, "[]", false), "");
        /* negate (not__): documents without the field are kept, like Django's exclude() */
        assert_string_equal(filter1(s, "inventory", SF_EQ, "3", true), "2,3,6");
        assert_string_equal(filter1(s, "port", SF_EQ, "80", true), "2,3,4,5");
        assert_string_equal(filter1(s, "name", SF_ICONTAINS, "\"web\"", true), "3,4");
        assert_string_equal(filter1(s, "id", SF_IN, "[1,2,3]", true), "4,5,6");

        /* bad field names and values */
        _cleanup_json_ json_t *v = J("1"), *obj = J("{}");
        json_t *res = NULL;
        int64_t count = -1;
        const char *bad[] = { "Name", "na-me", "a.b", "x') OR 1=1 --", "", "$.name" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                storage_filter fl = { .field = bad[i], .op = SF_EQ, .value = v };
                storage_query q = { .filters = &fl, .n_filters = 1 };
                assert_int_equal(storage_obj_list(s, ST_HOST, &q, &res, &count), -EINVAL);
                assert_null(res);
                assert_int_equal(count, -1);
        }
        storage_query qo = { .order_by = "-na me" };
        assert_int_equal(storage_obj_list(s, ST_HOST, &qo, &res, NULL), -EINVAL);
        storage_filter fo = { .field = "name", .op = SF_EQ, .value = obj };
        storage_query qv = { .filters = &fo, .n_filters = 1 };
        assert_int_equal(storage_obj_list(s, ST_HOST, &qv, &res, NULL), -EINVAL);
        storage_filter fi = { .field = "name", .op = SF_ICONTAINS, .value = v };
        storage_query qi = { .filters = &fi, .n_filters = 1 };
        assert_int_equal(storage_obj_list(s, ST_HOST, &qi, &res, NULL), -EINVAL);
}

static void test_or_group_order_paging(void **state) {
        fixture *f = *state;
        storage *s = f->s;
        int64_t count = -1;
        seed_hosts(s);

        /* AWX name lookup: ?or__id=5&or__name=5 (both the string "5") */
        _cleanup_json_ json_t *five = J("\"5\""), *three = J("3"), *ten = J("10");
        storage_filter orf[] = {
                { .field = "id", .op = SF_EQ, .value = five, .or_group = true },
                { .field = "name", .op = SF_EQ, .value = five, .or_group = true },
        };
        storage_query q = { .filters = orf, .n_filters = 2 };
        assert_string_equal(list_ids(s, ST_HOST, &q, &count), "4,5");
        assert_int_equal(count, 2);

        /* the OR group is AND-ed with the other filters */
        storage_filter mixed[] = {
                { .field = "id", .op = SF_EQ, .value = five, .or_group = true },
                { .field = "inventory", .op = SF_EQ, .value = three },
                { .field = "name", .op = SF_EQ, .value = five, .or_group = true },
                { .field = "id", .op = SF_LT, .value = ten },
        };
        storage_query q2 = { .filters = mixed, .n_filters = 4 };
        assert_string_equal(list_ids(s, ST_HOST, &q2, &count), "4,5");
        mixed[1].value = five;  /* inventory "5": none */
        assert_string_equal(list_ids(s, ST_HOST, &q2, &count), "");
        assert_int_equal(count, 0);

        /* ordering: ties broken by id */
        storage_query qo = { .order_by = "port" };
        assert_string_equal(list_ids(s, ST_HOST, &qo, NULL), "4,1,6,5,3,2");
        qo.order_by = "-port";
        assert_string_equal(list_ids(s, ST_HOST, &qo, NULL), "2,3,5,1,6,4");
        qo.order_by = "-id";
        assert_string_equal(list_ids(s, ST_HOST, &qo, NULL), "6,5,4,3,2,1");
        qo.order_by = "name";
        assert_string_equal(list_ids(s, ST_HOST, &qo, NULL), "4,5,3,1,2,6");

        /* limit/offset with the total count */
        storage_filter inv3 = { .field = "inventory", .op = SF_EQ, .value = three };
        storage_query qp = { .filters = &inv3, .n_filters = 1, .limit = 2, .offset = 0 };
        assert_string_equal(list_ids(s, ST_HOST, &qp, &count), "1,4");
        assert_int_equal(count, 3);
        qp.offset = 2;
        assert_string_equal(list_ids(s, ST_HOST, &qp, &count), "5");
        assert_int_equal(count, 3);
        qp.offset = 5;
        assert_string_equal(list_ids(s, ST_HOST, &qp, &count), "");
        assert_int_equal(count, 3);
        storage_query qoff = { .offset = 4 };
        assert_string_equal(list_ids(s, ST_HOST, &qoff, &count), "5,6");
        assert_int_equal(count, 6);

        /* count only; NULL query */
        assert_int_equal(storage_obj_list(s, ST_HOST, NULL, NULL, &count), 0);
        assert_int_equal(count, 6);

        /* find */
        _cleanup_json_ json_t *found = NULL;
        json_t *missing = NULL;
        assert_int_equal(storage_obj_find(s, ST_HOST, "name", "db1", &found), 0);
        assert_int_equal(json_integer_value(json_object_get(found, "id")), 3);
        assert_int_equal(storage_obj_find(s, ST_HOST, "name", "nope", &missing), -ENOENT);
        assert_int_equal(storage_obj_find(s, ST_HOST, "bad-field", "x", &missing), -EINVAL);
        assert_null(missing);
}

static void test_relations(void **state) {
        fixture *f = *state;
        storage *s = f->s;
        _cleanup_free_ int64_t *ids = NULL;
        size_t n = 99;

        assert_int_equal(storage_rel_add(s, SR_GROUP_HOSTS, 1, 30), 0);
        assert_int_equal(storage_rel_add(s, SR_GROUP_HOSTS, 1, 10), 0);
        assert_int_equal(storage_rel_add(s, SR_GROUP_HOSTS, 1, 20), 0);
        assert_int_equal(storage_rel_add(s, SR_GROUP_HOSTS, 1, 20), 0);  /* again: success */
        assert_int_equal(storage_rel_add(s, SR_GROUP_HOSTS, 2, 20), 0);
        assert_int_equal(storage_rel_add(s, SR_GROUP_CHILDREN, 1, 20), 0);

        assert_int_equal(storage_rel_list(s, SR_GROUP_HOSTS, 1, false, &ids, &n), 0);
        assert_int_equal(n, 3);
        assert_int_equal(ids[0], 10);
        assert_int_equal(ids[1], 20);
        assert_int_equal(ids[2], 30);
        free(ids);

        assert_int_equal(storage_rel_list(s, SR_GROUP_HOSTS, 20, true, &ids, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(ids[0], 1);
        assert_int_equal(ids[1], 2);
        free(ids);

        assert_int_equal(storage_rel_remove(s, SR_GROUP_HOSTS, 1, 10), 0);
        assert_int_equal(storage_rel_remove(s, SR_GROUP_HOSTS, 1, 10), 0);  /* missing: success */
        assert_int_equal(storage_rel_list(s, SR_GROUP_HOSTS, 1, false, &ids, &n), 0);
        assert_int_equal(n, 2);
        free(ids);

        /* purge by b: host 20 leaves every group; other kinds untouched */
        assert_int_equal(storage_rel_purge(s, SR_GROUP_HOSTS, 20, true), 0);
        assert_int_equal(storage_rel_list(s, SR_GROUP_HOSTS, 20, true, &ids, &n), 0);
        assert_int_equal(n, 0);
        assert_non_null(ids);
        free(ids);
        assert_int_equal(storage_rel_list(s, SR_GROUP_CHILDREN, 1, false, &ids, &n), 0);
        assert_int_equal(n, 1);
        free(ids);
        /* purge by a */
        assert_int_equal(storage_rel_purge(s, SR_GROUP_HOSTS, 1, false), 0);
        assert_int_equal(storage_rel_list(s, SR_GROUP_HOSTS, 1, false, &ids, &n), 0);
        assert_int_equal(n, 0);
        free(ids);

        /* deleting an object removes the pairs that name it */
        int64_t g = create(s, ST_GROUP, "{\"name\": \"g\"}");
        int64_t h = create(s, ST_HOST, "{\"name\": \"h\"}");
        assert_int_equal(storage_rel_add(s, SR_GROUP_HOSTS, g, h), 0);
        assert_int_equal(storage_obj_delete(s, ST_HOST, h), 0);
        assert_int_equal(storage_rel_list(s, SR_GROUP_HOSTS, g, false, &ids, &n), 0);
        assert_int_equal(n, 0);
        free(ids);
        ids = NULL;

        assert_int_equal(storage_rel_add(s, _SR_MAX, 1, 2), -EINVAL);
}

static json_t *event(int64_t counter, const char *name) {
        json_t *e = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:{s:b}}}",
                              "event", name, "uuid", "u", "parent_uuid", "p", "created", "2026-01-01T00:00:00Z",
                              "event_data", "host", "web1", "task", "ping", "play", "all", "res", "changed", 1);
        assert_non_null(e);
        if (counter > 0)
                json_object_set_new(e, "counter", json_integer(counter));
        return e;
}

static json_t *batch(const int64_t *counters, size_t n) {
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++)
                json_array_append_new(a, event(counters[i], counters[i] == 2 ? "runner_on_failed" : "runner_on_ok"));
        return a;
}

static int64_t events_count(storage *s, int64_t job) {
        int64_t count = -1;
        assert_int_equal(storage_events_list(s, job, NULL, NULL, &count), 0);
        return count;
}

static void test_events(void **state) {
        fixture *f = *state;
        storage *s = f->s;
        int64_t acked = -1;

        assert_int_equal(storage_events_acked(s, 7, &acked), 0);
        assert_int_equal(acked, 0);

        _cleanup_json_ json_t *b1 = batch((int64_t[]) { 1, 2, 4 }, 3);
        assert_int_equal(storage_events_insert(s, 7, 1, b1, &acked), 0);
        assert_int_equal(acked, 2);
        assert_int_equal(events_count(s, 7), 3);

        _cleanup_json_ json_t *b2 = batch((int64_t[]) { 3 }, 1);
        assert_int_equal(storage_events_insert(s, 7, 1, b2, &acked), 0);
        assert_int_equal(acked, 4);
        assert_int_equal(events_count(s, 7), 4);

        /* repeats are no-ops */
        assert_int_equal(storage_events_insert(s, 7, 2, b1, &acked), 0);
        assert_int_equal(acked, 4);
        assert_int_equal(events_count(s, 7), 4);

        /* an event without a counter: -EINVAL and nothing of that batch stored */
        _cleanup_json_ json_t *b3 = batch((int64_t[]) { 5, 0, 6 }, 3);
        acked = -1;
        assert_int_equal(storage_events_insert(s, 7, 1, b3, &acked), -EINVAL);
        assert_int_equal(acked, -1);
        assert_int_equal(events_count(s, 7), 4);
        _cleanup_json_ json_t *b4 = J("[{\"counter\": \"5\", \"event\": \"x\"}]");
        assert_int_equal(storage_events_insert(s, 7, 1, b4, NULL), -EINVAL);
        _cleanup_json_ json_t *b5 = J("[{\"counter\": 0}]");
        assert_int_equal(storage_events_insert(s, 7, 1, b5, NULL), -EINVAL);
        assert_int_equal(events_count(s, 7), 4);
        assert_int_equal(storage_events_acked(s, 7, &acked), 0);
        assert_int_equal(acked, 4);

        /* another job is separate */
        _cleanup_json_ json_t *b6 = batch((int64_t[]) { 2 }, 1);
        assert_int_equal(storage_events_insert(s, 8, 1, b6, &acked), 0);
        assert_int_equal(acked, 0);
        assert_int_equal(events_count(s, 8), 1);

        /* listing: ordered by counter, stored doc plus id and job */
        _cleanup_json_ json_t *all = NULL;
        int64_t count = 0;
        assert_int_equal(storage_events_list(s, 7, NULL, &all, &count), 0);
        assert_int_equal(count, 4);
        assert_int_equal(json_array_size(all), 4);
        for (size_t i = 0; i < 4; i++) {
                json_t *e = json_array_get(all, i);
                assert_int_equal(json_integer_value(json_object_get(e, "counter")), (int64_t) i + 1);
                assert_int_equal(json_integer_value(json_object_get(e, "job")), 7);
                assert_int_equal(json_integer_value(json_object_get(e, "id")), INT64_C(7000000000) + (int64_t) i + 1);
                assert_string_equal(json_string_value(json_object_get(json_object_get(e, "event_data"), "host")), "web1");
        }

        /* filters on event columns */
        _cleanup_json_ json_t *two = J("2"), *failed_name = J("\"runner_on_failed\""), *t = J("true"),
                              *host = J("\"web1\""), *one = J("1");
        _cleanup_json_ json_t *res = NULL, *res2 = NULL, *res3 = NULL;
        storage_filter fg = { .field = "counter", .op = SF_GT, .value = two };
        storage_query qg = { .filters = &fg, .n_filters = 1, .order_by = "-counter" };
        assert_int_equal(storage_events_list(s, 7, &qg, &res, &count), 0);
        assert_int_equal(count, 2);
        assert_int_equal(json_integer_value(json_object_get(json_array_get(res, 0), "counter")), 4);

        storage_filter fe[] = {
                { .field = "event", .op = SF_EQ, .value = failed_name },
                { .field = "failed", .op = SF_EQ, .value = t },
                { .field = "changed", .op = SF_EQ, .value = t },
                { .field = "host_name", .op = SF_EQ, .value = host },
        };
        storage_query qe = { .filters = fe, .n_filters = 4 };
        assert_int_equal(storage_events_list(s, 7, &qe, &res2, &count), 0);
        assert_int_equal(count, 1);
        assert_int_equal(json_integer_value(json_object_get(json_array_get(res2, 0), "counter")), 2);

        storage_query qp = { .limit = 1, .offset = 1 };
        assert_int_equal(storage_events_list(s, 7, &qp, &res3, &count), 0);
        assert_int_equal(count, 4);
        assert_int_equal(json_array_size(res3), 1);
        assert_int_equal(json_integer_value(json_object_get(json_array_get(res3, 0), "counter")), 2);

        json_t *none = NULL;
        storage_filter fbad = { .field = "stdout", .op = SF_EQ, .value = one };
        storage_query qbad = { .filters = &fbad, .n_filters = 1 };
        assert_int_equal(storage_events_list(s, 7, &qbad, &none, NULL), -EINVAL);
        storage_query qbado = { .order_by = "stdout" };
        assert_int_equal(storage_events_list(s, 7, &qbado, &none, NULL), -EINVAL);
        assert_null(none);

        /* delete */
        assert_int_equal(storage_events_delete(s, 7), 0);
        assert_int_equal(events_count(s, 7), 0);
        assert_int_equal(storage_events_acked(s, 7, &acked), 0);
        assert_int_equal(acked, 0);
        assert_int_equal(events_count(s, 8), 1);

        /* deleting a job object deletes its events */
        int64_t job = create(s, ST_JOB, "{\"name\": \"j\", \"status\": \"running\"}");
        _cleanup_json_ json_t *b7 = batch((int64_t[]) { 1 }, 1);
        assert_int_equal(storage_events_insert(s, job, 1, b7, &acked), 0);
        assert_int_equal(acked, 1);
        assert_int_equal(storage_obj_delete(s, ST_JOB, job), 0);
        assert_int_equal(events_count(s, job), 0);
}

static void test_event_flags(void **state) {
        bool failed, changed;
        _cleanup_json_ json_t *a = J("{\"event\": \"runner_on_failed\", \"event_data\": {\"ignore_errors\": true, \"res\": {\"changed\": false}}}");
        _cleanup_json_ json_t *b = J("{\"event\": \"runner_on_unreachable\", \"event_data\": {}}");
        _cleanup_json_ json_t *c = J("{\"event\": \"playbook_on_stats\", \"event_data\": {\"failures\": {}, \"dark\": {\"h\": 1}, \"changed\": {\"h\": 0}}}");
        storage_event_flags(a, &failed, &changed);
        assert_false(failed);
        assert_false(changed);
        storage_event_flags(b, &failed, &changed);
        assert_true(failed);
        storage_event_flags(c, &failed, &changed);
        assert_true(failed);
        assert_false(changed);
}

/* The stored text of an event is exactly what json_dumps(JSON_COMPACT) gives. */
static void test_event_json(void **state) {
        fixture *f = *state;
        _cleanup_json_ json_t *ev = J("{\"counter\": 1, \"event\": \"verbose\","
                                      " \"stdout\": \"l1\\n\\\"q\\\"\\t\\\\ \\u0001\\u001f \\u00fcn\\u00efcode \\u2028 /\","
                                      " \"k\\\"ey\": [1, -5, 0, 9223372036854775807, -9223372036854775808, 0.1, 1e300, 1.5e-7, -0.0, 2.0,"
                                      " true, false, null, {}, [], [[{\"a\": {}}]]], \"nul\": \"a\\u0000b\"}");
        _cleanup_json_ json_t *batch1 = json_pack("[O]", ev), *listed = NULL;
        _cleanup_free_ char *expected = json_dumps(ev, JSON_COMPACT);
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;

        assert_int_equal(storage_events_insert(f->s, 1, 1, batch1, NULL), 0);
        assert_int_equal(sqlite3_open_v2(f->path + strlen("sqlite:"), &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT doc FROM job_events WHERE job = 1", -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_string_equal((const char *) sqlite3_column_text(st, 0), expected);
        sqlite3_finalize(st);
        sqlite3_close(db);

        assert_int_equal(storage_events_list(f->s, 1, NULL, &listed, NULL), 0);
        json_t *got = json_array_get(listed, 0);
        json_object_del(got, "id");
        json_object_del(got, "job");
        assert_true(json_equal(got, ev));
}

/* Enough events to go through several WAL checkpoints (thread and writer), then reopen. */
static void test_events_bulk(void **state) {
        fixture *f = *state;
        _cleanup_json_ json_t *b = json_array();
        int64_t acked = 0, count = 0;
        char pad[901];

        memset(pad, 'x', sizeof pad - 1);
        pad[sizeof pad - 1] = 0;
        for (int i = 0; i < 1000; i++)
                json_array_append_new(b, json_pack("{s:I, s:s, s:{s:s, s:s}}", "counter", (json_int_t) 0,
                                                   "event", "runner_on_ok", "event_data", "host", "h", "pad", pad));
        for (int k = 0; k < 40; k++) {
                for (int i = 0; i < 1000; i++)
                        json_integer_set(json_object_get(json_array_get(b, (size_t) i), "counter"), k * 1000 + i + 1);
                assert_int_equal(storage_events_insert(f->s, 9, 1, b, &acked), 0);
                assert_int_equal(acked, (k + 1) * 1000);
        }
        storage_close(f->s);
        f->s = NULL;
        assert_int_equal(storage_open(f->path, &f->s), 0);
        assert_int_equal(storage_events_acked(f->s, 9, &acked), 0);
        assert_int_equal(acked, 40000);
        assert_int_equal(storage_events_list(f->s, 9, NULL, NULL, &count), 0);
        assert_int_equal(count, 40000);
}

static void test_reopen(void **state) {
        fixture *f = *state;
        _cleanup_json_ json_t *got = NULL;

        int64_t id = create(f->s, ST_PROJECT, "{\"name\": \"p\"}");
        _cleanup_json_ json_t *b = batch((int64_t[]) { 1, 2 }, 2);
        assert_int_equal(storage_events_insert(f->s, 3, 1, b, NULL), 0);
        assert_int_equal(storage_schema_version(f->s), latest_version());
        storage_close(f->s);
        f->s = NULL;

        assert_int_equal(storage_open(f->path, &f->s), 0);
        assert_int_equal(storage_schema_version(f->s), latest_version());
        assert_int_equal(storage_obj_get(f->s, ST_PROJECT, id, &got), 0);
        assert_string_equal(json_string_value(json_object_get(got, "name")), "p");
        int64_t acked = 0;
        assert_int_equal(storage_events_acked(f->s, 3, &acked), 0);
        assert_int_equal(acked, 2);

        /* schema_version has one row per applied migration, none added on reopen */
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_open_v2(f->path + strlen("sqlite:"), &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT COUNT(*), MAX(version) FROM schema_version", -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(st, 0), (int) storage_migrations_count);
        assert_int_equal(sqlite3_column_int(st, 1), latest_version());
        sqlite3_finalize(st);
        assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_string_equal((const char *) sqlite3_column_text(st, 0), "wal");
        sqlite3_finalize(st);
        /* the lookup indexes are used */
        assert_int_equal(sqlite3_prepare_v2(db, "EXPLAIN QUERY PLAN SELECT id FROM obj_hosts WHERE json_extract(doc, '$.name') = 'x'",
                                            -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_non_null(strstr((const char *) sqlite3_column_text(st, 3), "INDEX obj_hosts__name"));
        sqlite3_finalize(st);
        sqlite3_close(db);

        /* a database from a newer drover is refused */
        storage_close(f->s);
        f->s = NULL;
        assert_int_equal(sqlite3_open(f->path + strlen("sqlite:"), &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "INSERT INTO schema_version VALUES (1000)", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        assert_int_equal(storage_open(f->path, &f->s), -EPROTO);
        assert_null(f->s);
        assert_int_equal(sqlite3_open(f->path + strlen("sqlite:"), &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "DELETE FROM schema_version WHERE version = 1000", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        assert_int_equal(storage_open(f->path, &f->s), 0);
}

/* A database left at schema version 1 (later migrations' tables dropped again) is migrated to
 * the latest version at open, keeping its data. */
static void test_upgrade(void **state) {
        fixture *f = *state;
        const char *file = f->path + strlen("sqlite:");
        _cleanup_json_ json_t *got = NULL;
        sqlite3 *db = NULL;

        if (storage_migrations_count < 2)
                skip();
        int64_t id = create(f->s, ST_HOST, "{\"name\": \"kept\"}");
        storage_close(f->s);
        f->s = NULL;

        assert_int_equal(sqlite3_open(file, &db), SQLITE_OK);
        for (size_t i = 1; i < storage_migrations_count; i++)
                for (const char *const *sql = storage_migrations[i].statements; *sql; sql++) {
                        char name[128], drop[192];
                        const char *kind = NULL;
                        if (sscanf(*sql, "CREATE TABLE %127s", name) == 1)
                                kind = "TABLE";
                        else if (sscanf(*sql, "CREATE INDEX %127s", name) == 1)
                                kind = "INDEX";
                        else {
                                sqlite3_close(db);
                                skip();  /* a migration this test cannot undo */
                        }
                        snprintf(drop, sizeof drop, "DROP %s IF EXISTS %s", kind, name);
                        assert_int_equal(sqlite3_exec(db, drop, NULL, NULL, NULL), SQLITE_OK);
                }
        assert_int_equal(sqlite3_exec(db, "DELETE FROM schema_version WHERE version > 1", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);

        assert_int_equal(storage_open(f->path, &f->s), 0);
        assert_int_equal(storage_schema_version(f->s), latest_version());
        assert_int_equal(storage_obj_get(f->s, ST_HOST, id, &got), 0);
        assert_string_equal(json_string_value(json_object_get(got, "name")), "kept");
        test_all_types(state);
}

typedef struct tx_args {
        int64_t id;
        int result;
} tx_args;

static int tx_create_then(storage *s, void *userdata) {
        tx_args *a = userdata;
        _cleanup_json_ json_t *doc = J("{\"name\": \"tx\"}");
        assert_int_equal(storage_obj_create(s, ST_INVENTORY, doc, &a->id), 0);
        return a->result;
}

static int tx_nested(storage *s, void *userdata) {
        tx_args inner = { .result = -EBUSY };
        /* the inner transaction fails and rolls back only its own work */
        assert_int_equal(storage_transaction(s, tx_create_then, &inner), -EBUSY);
        json_t *none = NULL;
        assert_int_equal(storage_obj_get(s, ST_INVENTORY, inner.id, &none), -ENOENT);
        return tx_create_then(s, userdata);
}

static void test_transactions(void **state) {
        fixture *f = *state;
        json_t *got = NULL;
        int64_t count = -1;

        tx_args a = { .result = -ENOTRECOVERABLE };
        assert_int_equal(storage_transaction(f->s, tx_create_then, &a), -ENOTRECOVERABLE);
        assert_int_equal(storage_obj_get(f->s, ST_INVENTORY, a.id, &got), -ENOENT);

        tx_args b = { .result = 5 };
        assert_int_equal(storage_transaction(f->s, tx_create_then, &b), 5);
        assert_int_equal(storage_obj_get(f->s, ST_INVENTORY, b.id, &got), 0);
        json_decref(got);

        tx_args c = { .result = 0 };
        assert_int_equal(storage_transaction(f->s, tx_nested, &c), 0);
        assert_int_equal(storage_obj_list(f->s, ST_INVENTORY, NULL, NULL, &count), 0);
        assert_int_equal(count, 2);

        /* an outer failure rolls back everything, inner work included */
        tx_args d = { .result = -EIO };
        assert_int_equal(storage_transaction(f->s, tx_nested, &d), -EIO);
        assert_int_equal(storage_obj_list(f->s, ST_INVENTORY, NULL, NULL, &count), 0);
        assert_int_equal(count, 2);
}

static int tx_two_creates(storage *s, void *userdata) {
        _cleanup_json_ json_t *doc = J("{\"name\": \"t\", \"inventory\": 1}");
        assert_int_equal(storage_obj_create(s, ST_HOST, doc, NULL), 0);
        assert_int_equal(storage_obj_create(s, ST_HOST, doc, NULL), 0);
        return 0;
}

static void *thread_main(void *userdata) {
        storage *s = userdata;
        for (int i = 0; i < 50; i++) {
                json_t *res = NULL;
                assert_int_equal(storage_transaction(s, tx_two_creates, NULL), 0);
                assert_int_equal(storage_obj_list(s, ST_HOST, NULL, &res, NULL), 0);
                json_decref(res);
        }
        return NULL;
}

static void test_threads(void **state) {
        fixture *f = *state;
        pthread_t t[4];
        int64_t count = 0;

        for (size_t i = 0; i < ELEMENTSOF(t); i++)
                assert_int_equal(pthread_create(&t[i], NULL, thread_main, f->s), 0);
        for (size_t i = 0; i < ELEMENTSOF(t); i++)
                assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(storage_obj_list(f->s, ST_HOST, NULL, NULL, &count), 0);
        assert_int_equal(count, 4 * 50 * 2);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_type_names),
                cmocka_unit_test_setup_teardown(test_open_url, setup, teardown),
                cmocka_unit_test_setup_teardown(test_crud, setup, teardown),
                cmocka_unit_test_setup_teardown(test_all_types, setup, teardown),
                cmocka_unit_test_setup_teardown(test_filters, setup, teardown),
                cmocka_unit_test_setup_teardown(test_or_group_order_paging, setup, teardown),
                cmocka_unit_test_setup_teardown(test_relations, setup, teardown),
                cmocka_unit_test_setup_teardown(test_events, setup, teardown),
                cmocka_unit_test_setup_teardown(test_event_flags, setup, teardown),
                cmocka_unit_test_setup_teardown(test_event_json, setup, teardown),
                cmocka_unit_test_setup_teardown(test_events_bulk, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
                cmocka_unit_test_setup_teardown(test_upgrade, setup, teardown),
                cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
                cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
