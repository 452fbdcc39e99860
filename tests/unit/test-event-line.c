/* test-event-line.c: unit tests for agent/event-line.c: valid lines, the placeholder for
 * malformed ones (missing counter, non-object, truncated JSON, binary garbage, NUL bytes, a line
 * over AGENT_EVENT_MAX_LINE), truncation of an oversized event_data.res, and renumbering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent.h"
#include "drover/json-util.h"

static json_t *parse_ok(const char *line, size_t len, int64_t counter, bool want_malformed) {
        json_t *ev = NULL;
        bool malformed = !want_malformed;

        assert_int_equal(event_line_parse(line, len, counter, &ev, &malformed), 0);
        assert_non_null(ev);
        assert_true(json_is_object(ev));
        assert_int_equal(malformed, want_malformed);
        assert_int_equal(json_get_int(ev, "counter", -1), counter);
        assert_true(json_is_string(json_object_get(ev, "uuid")));
        assert_true(json_is_object(json_object_get(ev, "event_data")));
        if (want_malformed) {
                char want[128];
                snprintf(want, sizeof want, "[drover] malformed event line (%zu bytes) replaced", len);
                assert_string_equal(json_get_string(ev, "event", ""), "warning");
                assert_string_equal(json_get_string(ev, "stdout", ""), want);
                assert_int_equal(json_object_size(json_object_get(ev, "event_data")), 0);
        }
        return ev;
}

static void test_valid(void **state) {
        const char *line = "{\"event\":\"runner_on_ok\",\"uuid\":\"u1\",\"counter\":3,\"parent_uuid\":\"t1\","
                           "\"stdout\":\"ok: [localhost]\",\"event_data\":{\"host\":\"localhost\",\"res\":{\"changed\":false}}}";
        json_t *ev = parse_ok(line, strlen(line), 3, false);
        assert_string_equal(json_get_string(ev, "event", ""), "runner_on_ok");
        assert_string_equal(json_get_string(ev, "uuid", ""), "u1");
        json_t *res = json_object_get(json_object_get(ev, "event_data"), "res");
        assert_true(json_is_false(json_object_get(res, "changed")));
        json_decref(ev);
}

static void test_renumber_and_defaults(void **state) {
        /* counter differs from the expected one: renumbered; no uuid/event_data: filled in */
        const char *line = "{\"event\":\"verbose\",\"counter\":9}";
        json_t *ev = parse_ok(line, strlen(line), 4, false);
        assert_int_equal(json_get_int(ev, "counter", -1), 4);
        json_decref(ev);

        /* event_data of the wrong type is replaced by {} */
        line = "{\"event\":\"verbose\",\"counter\":1,\"uuid\":\"x\",\"event_data\":[1,2]}";
        ev = parse_ok(line, strlen(line), 1, false);
        json_decref(ev);
}

static void test_malformed(void **state) {
        const char *lines[] = {
                "{\"event\":\"runner_on_ok\",\"uuid\":\"u1\"}",                  /* missing counter */
                "{\"event\":\"runner_on_ok\",\"counter\":\"3\"}",                /* counter not integer */
                "{\"event\":\"runner_on_ok\",\"counter\":0}",                    /* counter < 1 */
                "{\"counter\":3}",                                               /* no event */
                "[1,2,3]", "42", "\"str\"", "null", "",                          /* not objects */
                "{\"event\":\"runner_on_ok\",\"counter\":3,\"stdout\":\"abc",    /* truncated */
                "{\"event\":\"x\",\"counter\":3}{\"event\":\"y\",\"counter\":4}", /* two objects */
        };
        for (size_t i = 0; i < ELEMENTSOF(lines); i++)
                json_decref(parse_ok(lines[i], strlen(lines[i]), 5, true));
}

static void test_binary_and_nul(void **state) {
        unsigned char garbage[4096];
        uint32_t x = 2463534242u;
        for (size_t i = 0; i < sizeof garbage; i++) {
                x ^= x << 13, x ^= x >> 17, x ^= x << 5;
                garbage[i] = (unsigned char) x;
        }
        json_decref(parse_ok((const char *) garbage, sizeof garbage, 7, true));

        /* a raw NUL byte inside an otherwise valid line */
        const char with_nul[] = "{\"event\":\"verbose\",\"counter\":7,\"stdout\":\"a\0b\"}";
        json_decref(parse_ok(with_nul, sizeof with_nul - 1, 7, true));

        /* an escaped NUL (\u0000) is legitimate JSON and is kept */
        const char *esc = "{\"event\":\"verbose\",\"counter\":7,\"stdout\":\"a\\u0000b\"}";
        json_t *ev = parse_ok(esc, strlen(esc), 7, false);
        assert_int_equal(json_string_length(json_object_get(ev, "stdout")), 3);
        json_decref(ev);

        /* invalid UTF-8 inside a string */
        const char *bad_utf8 = "{\"event\":\"verbose\",\"counter\":7,\"stdout\":\"\xff\xfe\"}";
        json_decref(parse_ok(bad_utf8, strlen(bad_utf8), 7, true));

        /* NULL pointer */
        json_t *e = NULL;
        bool m = false;
        assert_int_equal(event_line_parse(NULL, 0, 1, &e, &m), 0);
        assert_true(m);
        json_decref(e);
}

static void test_huge_res(void **state) {
        size_t n = AGENT_EVENT_MAX_RES + 100;
        const char *head = "{\"event\":\"runner_on_ok\",\"counter\":2,\"uuid\":\"u\",\"event_data\":{\"host\":\"h\","
                           "\"res\":{\"stdout\":\"";
        const char *tail = "\"}}}";
        size_t len = strlen(head) + n + strlen(tail);
        char *line = malloc(len + 1);
        assert_non_null(line);
        strcpy(line, head);
        memset(line + strlen(head), 'a', n);
        strcpy(line + strlen(head) + n, tail);

        json_t *ev = parse_ok(line, len, 2, false);
        json_t *ed = json_object_get(ev, "event_data");
        json_t *res = json_object_get(ed, "res");
        assert_true(json_is_true(json_object_get(res, "_drover_truncated")));
        assert_int_equal(json_get_int(res, "size", 0), n + strlen("{\"stdout\":\"\"}"));
        assert_string_equal(json_get_string(ed, "host", ""), "h");
        json_decref(ev);

        /* just under the limit: kept */
        n = AGENT_EVENT_MAX_RES - 20;
        len = strlen(head) + n + strlen(tail);
        memset(line + strlen(head), 'a', n);
        strcpy(line + strlen(head) + n, tail);
        ev = parse_ok(line, len, 2, false);
        res = json_object_get(json_object_get(ev, "event_data"), "res");
        assert_null(json_object_get(res, "_drover_truncated"));
        assert_int_equal(json_string_length(json_object_get(res, "stdout")), n);
        json_decref(ev);
        free(line);
}

static void test_overlong_line(void **state) {
        /* 10 MB: over AGENT_EVENT_MAX_LINE even though it is valid JSON */
        size_t n = 10u * 1024u * 1024u;
        const char *head = "{\"event\":\"verbose\",\"counter\":1,\"stdout\":\"";
        char *line = malloc(n + 1);
        assert_non_null(line);
        memset(line, 'b', n);
        memcpy(line, head, strlen(head));
        memcpy(line + n - 2, "\"}", 2);
        line[n] = 0;
        json_decref(parse_ok(line, n, 1, true));
        free(line);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_valid),
                cmocka_unit_test(test_renumber_and_defaults),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_binary_and_nul),
                cmocka_unit_test(test_huge_res),
                cmocka_unit_test(test_overlong_line),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
