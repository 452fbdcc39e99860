/* test-util.c: unit tests for drover/util.h and the strv helpers: size/timespan/percent parsing,
 * ISO-8601 round trips, atomic writes, mkdir_p, rm_rf, copy_tree and the string helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>

#include "drover/util.h"

static void test_parse_size(void **state) {
        uint64_t v;

        assert_int_equal(parse_size("1048576", &v), 0);
        assert_int_equal(v, 1048576);
        assert_int_equal(parse_size("512M", &v), 0);
        assert_int_equal(v, 512ULL << 20);
        assert_int_equal(parse_size("2G", &v), 0);
        assert_int_equal(v, 2ULL << 30);
        assert_int_equal(parse_size("4K", &v), 0);
        assert_int_equal(v, 4096);
        assert_int_equal(parse_size("1T", &v), 0);
        assert_int_equal(v, 1ULL << 40);
        assert_int_equal(parse_size("16MB", &v), 0);
        assert_int_equal(v, 16ULL << 20);
        assert_int_equal(parse_size("100B", &v), 0);
        assert_int_equal(v, 100);
        assert_int_equal(parse_size("1.5G", &v), 0);
        assert_int_equal(v, 3ULL << 29);
        assert_int_equal(parse_size("infinity", &v), 0);
        assert_true(v == UINT64_MAX);

        v = 42;
        assert_int_equal(parse_size("", &v), -EINVAL);
        assert_int_equal(parse_size("abc", &v), -EINVAL);
        assert_int_equal(parse_size("12X", &v), -EINVAL);
        assert_int_equal(parse_size("-1M", &v), -EINVAL);
        assert_int_equal(parse_size("1M ", &v), -EINVAL);
        assert_int_equal(parse_size("M", &v), -EINVAL);
        assert_int_equal(parse_size("99999999999999999999", &v), -ERANGE);
        assert_int_equal(parse_size("99999999999T", &v), -ERANGE);
        assert_int_equal(v, 42); /* untouched on failure */
}

static void test_parse_timespan(void **state) {
        uint64_t v;

        assert_int_equal(parse_timespan("30", &v), 0);
        assert_int_equal(v, 30 * USEC_PER_SEC);
        assert_int_equal(parse_timespan("30s", &v), 0);
        assert_int_equal(v, 30 * USEC_PER_SEC);
        assert_int_equal(parse_timespan("5sec", &v), 0);
        assert_int_equal(v, 5 * USEC_PER_SEC);
        assert_int_equal(parse_timespan("5min", &v), 0);
        assert_int_equal(v, 300 * USEC_PER_SEC);
        assert_int_equal(parse_timespan("2m", &v), 0);
        assert_int_equal(v, 120 * USEC_PER_SEC);
        assert_int_equal(parse_timespan("1h", &v), 0);
        assert_int_equal(v, 3600 * USEC_PER_SEC);
        assert_int_equal(parse_timespan("1d", &v), 0);
        assert_int_equal(v, 86400 * USEC_PER_SEC);
        assert_int_equal(parse_timespan("250ms", &v), 0);
        assert_int_equal(v, 250 * USEC_PER_MSEC);
        assert_int_equal(parse_timespan("7us", &v), 0);
        assert_int_equal(v, 7);
        assert_int_equal(parse_timespan("1h30min", &v), 0);
        assert_int_equal(v, 5400 * USEC_PER_SEC);
        assert_int_equal(parse_timespan("1h 30min 5s", &v), 0);
        assert_int_equal(v, 5405 * USEC_PER_SEC);
        assert_int_equal(parse_timespan("1.5s", &v), 0);
        assert_int_equal(v, 1500 * USEC_PER_MSEC);

        v = 42;
        assert_int_equal(parse_timespan("", &v), -EINVAL);
        assert_int_equal(parse_timespan("abc", &v), -EINVAL);
        assert_int_equal(parse_timespan("5 parsecs", &v), -EINVAL);
        assert_int_equal(parse_timespan("5minx", &v), -EINVAL);
        assert_int_equal(parse_timespan("-5s", &v), -EINVAL);
        assert_int_equal(parse_timespan("1h30", &v), -EINVAL);
        assert_int_equal(parse_timespan("99999999999999999999d", &v), -ERANGE);
        assert_int_equal(v, 42);
}

static void test_parse_percent(void **state) {
        uint64_t v;

        assert_int_equal(parse_percent_usec("50%", &v), 0);
        assert_int_equal(v, 500000);
        assert_int_equal(parse_percent_usec("100%", &v), 0);
        assert_int_equal(v, 1000000);
        assert_int_equal(parse_percent_usec("200%", &v), 0);
        assert_int_equal(v, 2000000);
        assert_int_equal(parse_percent_usec("12.5%", &v), 0);
        assert_int_equal(v, 125000);

        v = 42;
        assert_int_equal(parse_percent_usec("50", &v), -EINVAL);
        assert_int_equal(parse_percent_usec("%", &v), -EINVAL);
        assert_int_equal(parse_percent_usec("-5%", &v), -EINVAL);
        assert_int_equal(parse_percent_usec("abc%", &v), -EINVAL);
        assert_int_equal(parse_percent_usec("50%%", &v), -EINVAL);
        assert_int_equal(v, 42);
}

static void test_iso8601(void **state) {
        char buf[32];
        uint64_t v, now;

        assert_string_equal(format_iso8601(buf, 1795414503123456ULL), "2026-11-23T06:15:03.123456Z");
        assert_int_equal(parse_iso8601("2026-11-23T06:15:03.123456Z", &v), 0);
        assert_int_equal(v, 1795414503123456ULL);
        assert_int_equal(parse_iso8601("2026-11-23T06:15:03Z", &v), 0);
        assert_int_equal(v, 1795414503000000ULL);
        assert_int_equal(parse_iso8601("2026-11-23T06:15:03.5Z", &v), 0);
        assert_int_equal(v, 1795414503500000ULL);
        assert_int_equal(parse_iso8601("1970-01-01T00:00:00Z", &v), 0);
        assert_int_equal(v, 0);

        now = now_realtime_usec();
        format_iso8601(buf, now);
        assert_int_equal(strlen(buf), 27);
        assert_int_equal(parse_iso8601(buf, &v), 0);
        assert_int_equal(v, now);

        /* 0 means now */
        format_iso8601(buf, 0);
        assert_int_equal(parse_iso8601(buf, &v), 0);
        assert_true(v >= now);

        v = 42;
        assert_int_equal(parse_iso8601("", &v), -EINVAL);
        assert_int_equal(parse_iso8601("2026-11-23", &v), -EINVAL);
        assert_int_equal(parse_iso8601("2026-11-23T06:15:03", &v), -EINVAL);
        assert_int_equal(parse_iso8601("2026-02-31T06:15:03Z", &v), -EINVAL);
        assert_int_equal(parse_iso8601("2026-13-01T06:15:03Z", &v), -EINVAL);
        assert_int_equal(parse_iso8601("2026-11-23T06:15:03.Z", &v), -EINVAL);
        assert_int_equal(parse_iso8601("2026-11-23T06:15:03Zjunk", &v), -EINVAL);
        assert_int_equal(v, 42);

        assert_true(now_monotonic_usec() > 0);
}

static char *make_tmpdir(void) {
        char *t = strdup("/tmp/drover-test-util.XXXXXX");
        assert_non_null(t);
        assert_non_null(mkdtemp(t));
        return t;
}

static void test_write_file_atomic(void **state) {
        _cleanup_free_ char *dir = make_tmpdir(), *path = NULL, *data = NULL;
        struct stat st;
        size_t size;

        path = strjoin(dir, "/secret", NULL);
        assert_non_null(path);
        assert_int_equal(write_file_atomic(path, "hello", 5, 0600), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(read_full_file(path, 1024, &data, &size), 0);
        assert_int_equal(size, 5);
        assert_string_equal(data, "hello");
        free(data);
        data = NULL;

        /* replace */
        assert_int_equal(write_file_atomic(path, "bye", 3, 0644), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0644);
        assert_int_equal(read_full_file(path, 1024, &data, &size), 0);
        assert_string_equal(data, "bye");
        free(data);
        data = NULL;

        /* size limit */
        assert_int_equal(read_full_file(path, 2, &data, &size), -EFBIG);
        assert_null(data);
        assert_int_equal(read_full_file("/nonexistent/file", 2, &data, &size), -ENOENT);

        /* no temp files left behind */
        assert_int_equal(rm_rf(path), 0);
        assert_int_equal(rmdir(dir), 0);
}

static void test_mkdir_p_rm_rf(void **state) {
        _cleanup_free_ char *dir = make_tmpdir(), *deep = NULL, *file = NULL, *link = NULL, *copy = NULL,
                            *copied = NULL, *data = NULL;
        struct stat st;

        deep = strjoin(dir, "/a/b//c/d/", NULL);
        assert_non_null(deep);
        assert_int_equal(mkdir_p(deep, 0750), 0);
        assert_int_equal(stat(deep, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(mkdir_p(deep, 0750), 0); /* idempotent */

        file = strjoin(dir, "/a/b/c/file", NULL);
        assert_int_equal(write_file_atomic(file, "x", 1, 0600), 0);
        link = strjoin(dir, "/a/link", NULL);
        assert_int_equal(symlink("/etc", link), 0);

        /* mkdir_p through a file fails */
        _cleanup_free_ char *bad = strjoin(file, "/sub", NULL);
        assert_int_equal(mkdir_p(bad, 0755), -ENOTDIR);

        copy = strjoin(dir, "-copy", NULL);
        assert_int_equal(copy_tree(dir, copy), 0);
        copied = strjoin(copy, "/a/b/c/file", NULL);
        assert_int_equal(read_full_file(copied, 10, &data, NULL), 0);
        assert_string_equal(data, "x");
        assert_int_equal(stat(copied, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        _cleanup_free_ char *copied_link = strjoin(copy, "/a/link", NULL);
        assert_int_equal(lstat(copied_link, &st), 0);
        assert_true(S_ISLNK(st.st_mode));

        assert_int_equal(rm_rf(dir), 0);
        assert_int_equal(lstat(dir, &st), -1);
        assert_int_equal(errno, ENOENT);
        assert_int_equal(stat("/etc", &st), 0); /* symlink target survived */
        assert_int_equal(rm_rf(dir), 0);        /* missing is fine */
        assert_int_equal(rm_rf(copy), 0);
        assert_int_equal(lstat(copy, &st), -1);
}

static void test_strings(void **state) {
        _cleanup_free_ char *j = strjoin("a", "bc", "", "d", NULL);
        _cleanup_free_ char *f = asprintf_safe("%s-%d", "x", 42);
        char hex[9], u1[37], u2[37];
        unsigned char bytes[4] = { 0x00, 0xab, 0x10, 0xff }, r1[16] = {}, r2[16] = {};
        _cleanup_strv_free_ char **l = NULL;

        assert_string_equal(j, "abcd");
        assert_string_equal(f, "x-42");
        hex_encode(bytes, 4, hex);
        assert_string_equal(hex, "00ab10ff");

        assert_true(streq_consttime("secret", "secret"));
        assert_false(streq_consttime("secret", "secreT"));
        assert_false(streq_consttime("secret", "secret2"));
        assert_false(streq_consttime("", "x"));
        assert_true(streq_consttime("", ""));

        assert_int_equal(random_bytes(r1, sizeof(r1)), 0);
        assert_int_equal(random_bytes(r2, sizeof(r2)), 0);
        assert_memory_not_equal(r1, r2, sizeof(r1));

        uuid_string(u1);
        uuid_string(u2);
        assert_int_equal(strlen(u1), 36);
        assert_int_equal(u1[8], '-');
        assert_int_equal(u1[14], '4');
        assert_string_not_equal(u1, u2);

        assert_int_equal(strv_length(l), 0);
        assert_int_equal(strv_extend(&l, "one"), 0);
        assert_int_equal(strv_extendf(&l, "n=%d", 2), 0);
        assert_int_equal(strv_push(&l, strdup("three")), 0);
        assert_int_equal(strv_length(l), 3);
        assert_true(strv_contains(l, "n=2"));
        assert_false(strv_contains(l, "four"));
        assert_string_equal(l[2], "three");
        assert_null(l[3]);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_size),
                cmocka_unit_test(test_parse_timespan),
                cmocka_unit_test(test_parse_percent),
                cmocka_unit_test(test_iso8601),
                cmocka_unit_test(test_write_file_atomic),
                cmocka_unit_test(test_mkdir_p_rm_rf),
                cmocka_unit_test(test_strings),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
