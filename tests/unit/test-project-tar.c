/* test-project-tar.c: project_tar_build()/project_tar_get(): deterministic archives (same hash
 * across builds and mtimes), valid ustar headers (checksums checked here, and the archive extracted
 * with tar(1)), .git and symlinks leaving the tree skipped, -EFBIG over the limit, and the cache
 * noticing changes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "controller.h"
#include "drover/crypto.h"
#include "drover/util.h"

static char tmpdir[] = "/tmp/test-project-tar.XXXXXX";
static char *proj;

static void put(const char *rel, const char *text, mode_t mode) {
        _cleanup_free_ char *p = strjoin(proj, "/", rel, NULL);
        assert_non_null(p);
        assert_int_equal(write_file_atomic(p, text, strlen(text), mode), 0);
}

static void mkd(const char *rel) {
        _cleanup_free_ char *p = strjoin(proj, "/", rel, NULL);
        assert_non_null(p);
        assert_int_equal(mkdir_p(p, 0755), 0);
}

static void lnk(const char *target, const char *rel) {
        _cleanup_free_ char *p = strjoin(proj, "/", rel, NULL);
        assert_non_null(p);
        assert_int_equal(symlink(target, p), 0);
}

static int setup(void **state) {
        if (!mkdtemp(tmpdir))
                return -1;
        proj = strjoin(tmpdir, "/project", NULL);
        if (!proj || mkdir_p(proj, 0755) < 0)
                return -1;
        mkd("roles/web/tasks");
        mkd(".git/objects");
        mkd("empty");
        put("site.yml", "- hosts: all\n  roles: [web]\n", 0644);
        put("roles/web/tasks/main.yml", "- debug: msg=hi\n", 0644);
        put("run.sh", "#!/bin/sh\necho hi\n", 0755);
        put(".git/HEAD", "ref: refs/heads/main\n", 0644);
        put("zz-last.txt", "last\n", 0600);
        lnk("site.yml", "link-inside.yml");
        lnk("/etc/hostname", "link-outside");
        lnk("..", "roles/up");                 /* a loop: skipped */
        lnk("roles/web", "web-alias");         /* a directory inside: followed */
        {
                _cleanup_free_ char *outside = strjoin(tmpdir, "/secret.txt", NULL);
                assert_non_null(outside);
                assert_int_equal(write_file_atomic(outside, "secret\n", 7, 0644), 0);
                lnk("../secret.txt", "link-up-outside");
        }
        return 0;
}

static int teardown(void **state) {
        free(proj);
        return rm_rf(tmpdir) < 0 ? -1 : 0;
}

static void check_headers(const char *data, size_t size) {
        size_t off = 0;
        unsigned zero_blocks = 0, entries = 0;

        assert_int_equal(size % 512, 0);
        while (off + 512 <= size) {
                const unsigned char *h = (const unsigned char *) data + off;
                unsigned sum = 0, stored;
                bool all_zero = true;
                char field[13];

                for (size_t i = 0; i < 512; i++)
                        all_zero = all_zero && h[i] == 0;
                if (all_zero) {
                        zero_blocks++;
                        off += 512;
                        continue;
                }
                assert_int_equal(zero_blocks, 0);   /* no data after the end marker */
                for (size_t i = 0; i < 512; i++)
                        sum += (i >= 148 && i < 156) ? ' ' : h[i];
                memcpy(field, h + 148, 8);
                field[8] = 0;
                stored = (unsigned) strtoul(field, NULL, 8);
                assert_int_equal(sum, stored);
                assert_memory_equal(h + 257, "ustar\0" "00", 8);
                memcpy(field, h + 136, 12);   /* mtime */
                field[12] = 0;
                assert_int_equal(strtoull(field, NULL, 8), 0);
                memcpy(field, h + 108, 8);   /* uid */
                field[8] = 0;
                assert_int_equal(strtoul(field, NULL, 8), 0);
                memcpy(field, h + 124, 12);
                field[12] = 0;
                off += 512 + (strtoull(field, NULL, 8) + 511) / 512 * 512;
                entries++;
        }
        assert_int_equal(off, size);
        assert_int_equal(zero_blocks, 2);
        assert_true(entries > 5);
}

static void test_deterministic(void **state) {
        _cleanup_free_ char *a = NULL, *b = NULL, *site = strjoin(proj, "/site.yml", NULL);
        size_t na = 0, nb = 0;
        char ha[65], hb[65], check[65];
        struct timespec ts[2] = { { .tv_sec = 12345 }, { .tv_sec = 12345 } };

        assert_int_equal(project_tar_build(proj, 1024 * 1024, &a, &na, ha), 0);
        crypto_sha256_hex(a, na, check);
        assert_string_equal(ha, check);
        check_headers(a, na);

        /* a different mtime changes nothing */
        assert_int_equal(utimensat(AT_FDCWD, site, ts, 0), 0);
        assert_int_equal(project_tar_build(proj, 1024 * 1024, &b, &nb, hb), 0);
        assert_string_equal(ha, hb);
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, na);
}

static void test_extract(void **state) {
        _cleanup_free_ char *data = NULL, *tarfile = strjoin(tmpdir, "/p.tar", NULL),
                            *out = strjoin(tmpdir, "/out", NULL), *cmd = NULL, *listing = NULL, *list_path = NULL,
                            *content = NULL, *p = NULL;
        size_t n = 0;
        char hash[65];
        struct stat st;

        assert_int_equal(project_tar_build(proj, 1024 * 1024, &data, &n, hash), 0);
        assert_int_equal(write_file_atomic(tarfile, data, n, 0644), 0);
        assert_int_equal(mkdir_p(out, 0755), 0);
        list_path = strjoin(tmpdir, "/list.txt", NULL);
        cmd = asprintf_safe("tar -xf '%s' -C '%s' && tar -tf '%s' > '%s'", tarfile, out, tarfile, list_path);
        assert_int_equal(system(cmd), 0);
        assert_int_equal(read_full_file(list_path, 65536, &listing, NULL), 0);
        assert_string_equal(listing,
                            "empty/\n"
                            "link-inside.yml\n"
                            "roles/\n"
                            "roles/web/\n"
                            "roles/web/tasks/\n"
                            "roles/web/tasks/main.yml\n"
                            "run.sh\n"
                            "site.yml\n"
                            "web-alias/\n"
                            "web-alias/tasks/\n"
                            "web-alias/tasks/main.yml\n"
                            "zz-last.txt\n");

        p = strjoin(out, "/link-inside.yml", NULL);
        assert_int_equal(lstat(p, &st), 0);
        assert_true(S_ISREG(st.st_mode));   /* the link's content, as a file */
        assert_int_equal(read_full_file(p, 4096, &content, NULL), 0);
        assert_string_equal(content, "- hosts: all\n  roles: [web]\n");
        free(p);
        p = strjoin(out, "/run.sh", NULL);
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0755);
        free(p);
        p = strjoin(out, "/zz-last.txt", NULL);
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0644);
        free(p);
        p = strjoin(out, "/.git", NULL);
        assert_int_equal(access(p, F_OK), -1);
}

static void test_too_big(void **state) {
        _cleanup_free_ char *data = NULL;
        size_t n = 0;
        char hash[65] = "untouched";

        assert_int_equal(project_tar_build(proj, 2048, &data, &n, hash), -EFBIG);
        assert_null(data);
        assert_string_equal(hash, "untouched");
        assert_int_equal(project_tar_get(proj, 2048, NULL, NULL, hash), -EFBIG);
}

static void test_missing(void **state) {
        _cleanup_free_ char *data = NULL, *p = strjoin(tmpdir, "/nope", NULL);
        size_t n = 0;
        char hash[65];

        assert_int_equal(project_tar_build(p, 1024 * 1024, &data, &n, hash), -ENOENT);
}

static void test_cache(void **state) {
        _cleanup_free_ char *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        char h1[65], h2[65], h3[65], h4[65];

        assert_int_equal(project_tar_build(proj, 1024 * 1024, &a, &na, h1), 0);
        assert_int_equal(project_tar_get(proj, 1024 * 1024, &b, &nb, h2), 0);
        assert_string_equal(h1, h2);
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, na);
        assert_int_equal(project_tar_get(proj, 1024 * 1024, NULL, NULL, h3), 0);
        assert_string_equal(h1, h3);

        /* a changed file (same size) is noticed */
        put("roles/web/tasks/main.yml", "- debug: msg=ho\n", 0644);
        assert_int_equal(project_tar_get(proj, 1024 * 1024, NULL, NULL, h4), 0);
        assert_string_not_equal(h1, h4);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_deterministic),
                cmocka_unit_test(test_extract),
                cmocka_unit_test(test_too_big),
                cmocka_unit_test(test_missing),
                cmocka_unit_test(test_cache),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
