/* test-yaml-config.c: unit tests for drover/yaml-config.h: nested lookups, typed getters, exact
 * "file:line:col" error messages, syntax errors, unknown keys, sequences and file loading. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "drover/util.h"
#include "drover/yaml-config.h"

static const char config_text[] =
        "# drover test config\n"                 /* 1 */
        "listen: 0.0.0.0:8443\n"                 /* 2 */
        "debug: yes\n"                           /* 3 */
        "verbose: Off\n"                         /* 4 */
        "quoted_bool: \"true\"\n"                /* 5 */
        "workers: 8\n"                           /* 6 */
        "limits:\n"                              /* 7 */
        "  max_body_size: 512M\n"                /* 8 */
        "  timeout: 1h30min\n"                   /* 9 */
        "  cpu: 50%\n"                           /* 10 */
        "  bad_size: lots\n"                     /* 11 */
        "  port: 70000\n"                        /* 12 */
        "  nested:\n"                            /* 13 */
        "    deep: value\n"                      /* 14 */
        "tags:\n"                                /* 15 */
        "  - web\n"                              /* 16 */
        "  - 'db'\n"                             /* 17 */
        "empty:\n"                               /* 18 */
        "number_string: \"42\"\n"                /* 19 */
        "mixed: [a, {b: c}]\n";                  /* 20 */

static void test_lookup_and_getters(void **state) {
        _cleanup_yaml_doc_ yaml_doc *d = NULL;
        const ynode *limits, *n;
        _cleanup_free_ char *s = NULL;
        _cleanup_strv_free_ char **l = NULL;
        bool b;
        int64_t i;
        uint64_t u;

        assert_int_equal(yaml_doc_load_string("test.yaml", config_text, &d), 0);
        assert_non_null(d->root);
        assert_int_equal(d->root->kind, YNODE_MAPPING);

        assert_int_equal(ynode_string(d, ynode_get(d->root, "listen"), "listen", &s), 0);
        assert_string_equal(s, "0.0.0.0:8443");

        assert_int_equal(ynode_bool(d, ynode_get(d->root, "debug"), "debug", &b), 0);
        assert_true(b);
        assert_int_equal(ynode_bool(d, ynode_get(d->root, "verbose"), "verbose", &b), 0);
        assert_false(b);

        assert_int_equal(ynode_int(d, ynode_get(d->root, "workers"), "workers", 1, 64, &i), 0);
        assert_int_equal(i, 8);

        limits = ynode_get(d->root, "limits");
        assert_non_null(limits);
        assert_int_equal(limits->kind, YNODE_MAPPING);
        assert_int_equal(limits->line, 8);
        assert_int_equal(limits->column, 3);

        assert_int_equal(ynode_size(d, ynode_get(limits, "max_body_size"), "limits.max_body_size", &u), 0);
        assert_int_equal(u, 512ULL << 20);
        assert_int_equal(ynode_timespan(d, ynode_get(limits, "timeout"), "limits.timeout", &u), 0);
        assert_int_equal(u, 5400 * USEC_PER_SEC);
        assert_int_equal(ynode_percent(d, ynode_get(limits, "cpu"), "limits.cpu", &u), 0);
        assert_int_equal(u, 500000);

        n = ynode_get(ynode_get(limits, "nested"), "deep");
        assert_non_null(n);
        assert_int_equal(n->kind, YNODE_SCALAR);
        assert_string_equal(n->value, "value");
        assert_false(n->quoted);
        assert_int_equal(n->line, 14);
        assert_int_equal(n->column, 11);

        assert_null(ynode_get(d->root, "missing"));
        assert_null(ynode_get(n, "deep"));     /* not a mapping */
        assert_null(ynode_get(NULL, "deep"));

        n = ynode_get(d->root, "empty");
        assert_non_null(n);
        assert_int_equal(n->kind, YNODE_NULL);

        n = ynode_get(d->root, "number_string");
        assert_true(n->quoted);

        /* sequences */
        n = ynode_get(d->root, "tags");
        assert_int_equal(n->kind, YNODE_SEQUENCE);
        assert_int_equal(n->n_children, 2);
        assert_false(n->children[0]->quoted);
        assert_true(n->children[1]->quoted);
        assert_int_equal(ynode_strv(d, n, "tags", &l), 0);
        assert_int_equal(strv_length(l), 2);
        assert_string_equal(l[0], "web");
        assert_string_equal(l[1], "db");
        strv_free(l);
        l = NULL;
        assert_int_equal(ynode_strv(d, ynode_get(d->root, "empty"), "empty", &l), 0);
        assert_int_equal(strv_length(l), 0);
}

static void test_type_errors(void **state) {
        _cleanup_yaml_doc_ yaml_doc *d = NULL;
        const ynode *limits;
        _cleanup_strv_free_ char **l = NULL;
        _cleanup_free_ char *s = NULL;
        uint64_t u = 7;
        int64_t i = 7;
        bool b = true;

        assert_int_equal(yaml_doc_load_string("test.yaml", config_text, &d), 0);
        limits = ynode_get(d->root, "limits");

        assert_int_equal(ynode_size(d, ynode_get(limits, "bad_size"), "limits.bad_size", &u), -EINVAL);
        assert_string_equal(d->error,
                            "test.yaml:11:13: key 'limits.bad_size': expected a size (e.g. 512M, 2G or a number of bytes), got 'lots'");
        assert_int_equal(u, 7);

        assert_int_equal(ynode_int(d, ynode_get(limits, "port"), "limits.port", 1, 65535, &i), -EINVAL);
        assert_string_equal(d->error,
                            "test.yaml:12:9: key 'limits.port': expected an integer between 1 and 65535, got '70000'");
        assert_int_equal(i, 7);

        assert_int_equal(ynode_int(d, ynode_get(d->root, "listen"), "listen", 0, 10, &i), -EINVAL);
        assert_string_equal(d->error, "test.yaml:2:9: key 'listen': expected an integer between 0 and 10, got '0.0.0.0:8443'");
        /* a quoted number is a string */
        assert_int_equal(ynode_int(d, ynode_get(d->root, "number_string"), "number_string", 0, 100, &i), -EINVAL);
        assert_int_equal(i, 7);

        assert_int_equal(ynode_bool(d, ynode_get(d->root, "quoted_bool"), "quoted_bool", &b), -EINVAL);
        assert_string_equal(d->error, "test.yaml:5:14: key 'quoted_bool': expected a boolean (true/false), got 'true'");
        assert_int_equal(ynode_bool(d, ynode_get(d->root, "workers"), "workers", &b), -EINVAL);
        assert_true(b);

        assert_int_equal(ynode_timespan(d, ynode_get(d->root, "listen"), "listen", &u), -EINVAL);
        assert_int_equal(ynode_percent(d, ynode_get(limits, "timeout"), "limits.timeout", &u), -EINVAL);
        assert_string_equal(d->error, "test.yaml:9:12: key 'limits.timeout': expected a percentage (e.g. 50%), got '1h30min'");

        assert_int_equal(ynode_string(d, limits, "limits", &s), -EINVAL);
        assert_string_equal(d->error, "test.yaml:8:3: key 'limits': expected a string, got a mapping");
        assert_null(s);

        assert_int_equal(ynode_strv(d, ynode_get(d->root, "listen"), "listen", &l), -EINVAL);
        assert_int_equal(ynode_strv(d, ynode_get(d->root, "mixed"), "mixed", &l), -EINVAL);
        assert_string_equal(d->error, "test.yaml:20:12: key 'mixed[1]': expected a string, got a mapping");
        assert_null(l);

        assert_int_equal(ynode_int(d, NULL, "nope", 0, 1, &i), -ENOENT);

        assert_int_equal(yaml_doc_error(d, limits, "custom %d", 5), -EINVAL);
        assert_string_equal(d->error, "test.yaml:8:3: custom 5");
}

static void test_int_range(void **state) {
        _cleanup_yaml_doc_ yaml_doc *d = NULL;
        int64_t i;

        assert_int_equal(yaml_doc_load_string("r.yaml", "a: -5\nb: 99999999999999999999\nc: 1.5\nd: 0x10\n", &d), 0);
        assert_int_equal(ynode_int(d, ynode_get(d->root, "a"), "a", -10, 10, &i), 0);
        assert_int_equal(i, -5);
        assert_int_equal(ynode_int(d, ynode_get(d->root, "a"), "a", 0, 10, &i), -EINVAL);
        assert_string_equal(d->error, "r.yaml:1:4: key 'a': expected an integer between 0 and 10, got '-5'");
        assert_int_equal(ynode_int(d, ynode_get(d->root, "b"), "b", INT64_MIN, INT64_MAX, &i), -EINVAL);
        assert_int_equal(ynode_int(d, ynode_get(d->root, "c"), "c", 0, 10, &i), -EINVAL);
        assert_int_equal(ynode_int(d, ynode_get(d->root, "d"), "d", 0, 100, &i), -EINVAL);
}

static void test_syntax_error(void **state) {
        yaml_doc *d = NULL;

        assert_int_equal(yaml_doc_load_string("bad.yaml", "a: 1\nb: [1, 2\nc: 3\n", &d), -EINVAL);
        assert_non_null(d);
        assert_null(d->root);
        /* libyaml reports the unterminated flow sequence where it noticed it: line 3 */
        assert_string_equal(d->error, "bad.yaml:3:2: did not find expected ',' or ']'");
        yaml_doc_free(d);
        d = NULL;

        assert_int_equal(yaml_doc_load_string("tab.yaml", "a:\n\tb: 1\n", &d), -EINVAL);
        assert_string_equal(d->error, "tab.yaml:2:1: found character that cannot start any token");
        yaml_doc_free(d);
        d = NULL;

        assert_int_equal(yaml_doc_load_string("alias.yaml", "a: &x 1\nb: *x\n", &d), -EINVAL);
        assert_string_equal(d->error, "alias.yaml:1:4: anchors, aliases and tags are not supported");
        yaml_doc_free(d);
        d = NULL;

        assert_int_equal(yaml_doc_load_string("tag.yaml", "a: !!str 5\nb: !custom 1\n", &d), -EINVAL);
        assert_string_equal(d->error, "tag.yaml:2:4: anchors, aliases and tags are not supported");
        yaml_doc_free(d);
        d = NULL;

        assert_int_equal(yaml_doc_load_string("str.yaml", "a: !!str 5\n", &d), 0);
        assert_true(ynode_get(d->root, "a")->quoted);
        assert_string_equal(ynode_get(d->root, "a")->value, "5");
        yaml_doc_free(d);
        d = NULL;

        assert_int_equal(yaml_doc_load_string("dup.yaml", "a: 1\nb: 2\na: 3\n", &d), -EINVAL);
        assert_string_equal(d->error, "dup.yaml:3:1: duplicate key 'a'");
        yaml_doc_free(d);
        d = NULL;

        assert_int_equal(yaml_doc_load_string("multi.yaml", "a: 1\n---\nb: 2\n", &d), -EINVAL);
        assert_string_equal(d->error, "multi.yaml:2:1: multiple YAML documents are not supported");
        yaml_doc_free(d);
}

static void test_unknown_keys(void **state) {
        static const char *const top[] = { "listen", "limits", NULL };
        static const char *const lim[] = { "max_body_size", "timeout", NULL };
        _cleanup_yaml_doc_ yaml_doc *d = NULL;

        assert_int_equal(yaml_doc_load_string("k.yaml",
                                              "listen: x\n"
                                              "limits:\n"
                                              "  max_body_size: 1M\n"
                                              "  timeuot: 5s\n", &d), 0);
        assert_int_equal(ynode_check_keys(d, d->root, "", top), 0);
        assert_int_equal(ynode_check_keys(d, ynode_get(d->root, "limits"), "limits.", lim), -EINVAL);
        assert_string_equal(d->error, "k.yaml:4:3: unknown key 'limits.timeuot'");
        assert_int_equal(ynode_check_keys(d, ynode_get(d->root, "listen"), "listen.", lim), -EINVAL);
        assert_string_equal(d->error, "k.yaml:1:9: key 'listen': expected a mapping, got 'x'");
}

static void test_empty_and_file(void **state) {
        yaml_doc *d = NULL;
        char path[] = "/tmp/drover-test-yaml.XXXXXX";
        int fd;

        assert_int_equal(yaml_doc_load_string("e.yaml", "", &d), 0);
        assert_null(d->root);
        yaml_doc_free(d);
        d = NULL;
        assert_int_equal(yaml_doc_load_string("e.yaml", "# only a comment\n~\n", &d), 0);
        assert_null(d->root);
        yaml_doc_free(d);
        d = NULL;

        fd = mkstemp(path);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(write_file_atomic(path, "x:\n  y: [1, 2, 3]\n", 18, 0600), 0);
        assert_int_equal(yaml_doc_load_file(path, &d), 0);
        assert_string_equal(d->path, path);
        assert_int_equal(ynode_get(ynode_get(d->root, "x"), "y")->n_children, 3);
        yaml_doc_free(d);
        d = NULL;

        assert_int_equal(write_file_atomic(path, "x: 1\n  y: 2\n", 12, 0600), 0);
        assert_int_equal(yaml_doc_load_file(path, &d), -EINVAL);
        _cleanup_free_ char *prefix = strjoin(path, ":2:4: ", NULL);
        assert_true(strncmp(d->error, prefix, strlen(prefix)) == 0);
        yaml_doc_free(d);
        d = NULL;
        assert_int_equal(unlink(path), 0);

        assert_int_equal(yaml_doc_load_file(path, &d), -ENOENT);
        assert_non_null(d);
        yaml_doc_free(d);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_lookup_and_getters),
                cmocka_unit_test(test_type_errors),
                cmocka_unit_test(test_int_range),
                cmocka_unit_test(test_syntax_error),
                cmocka_unit_test(test_unknown_keys),
                cmocka_unit_test(test_empty_and_file),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
