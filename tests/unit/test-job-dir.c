/* test-job-dir.c: unit tests for agent/job-dir.c: inventory conversion (groups, children,
 * ungrouped, hostvars-only hosts, cycles), the ustar extractor (files, dirs, modes, long names,
 * and refusal of "../x", absolute names, links and devices), the project cache (hash check),
 * job_dir_create/open/list/remove, the ack round trip and the unit-result file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>

#include "agent-exec.h"
#include "drover/crypto.h"
#include "drover/json-util.h"
#include "drover/util.h"

/* ---- a tiny ustar writer for the tests ---- */
typedef struct tarbuf {
        unsigned char *data;
        size_t size;
} tarbuf;

static void tar_add(tarbuf *t, const char *name, char type, unsigned mode, const char *content, const char *link) {
        size_t clen = content ? strlen(content) : 0;
        size_t padded = (clen + 511) / 512 * 512;
        t->data = realloc(t->data, t->size + 512 + padded);
        assert_non_null(t->data);
        unsigned char *h = t->data + t->size;
        memset(h, 0, 512 + padded);
        if (strlen(name) > 100) {
                /* split into prefix/name at a slash */
                const char *s = strrchr(name, '/');
                assert_non_null(s);
                memcpy(h + 345, name, (size_t) (s - name));
                strncpy((char *) h, s + 1, 100);
        } else
                memcpy(h, name, strlen(name));
        snprintf((char *) h + 100, 8, "%07o", mode);
        snprintf((char *) h + 108, 8, "%07o", 0);
        snprintf((char *) h + 116, 8, "%07o", 0);
        snprintf((char *) h + 124, 12, "%011o", (unsigned) (clen & 07777777777));
        snprintf((char *) h + 136, 12, "%011o", 0);
        h[156] = (unsigned char) type;
        if (link)
                strncpy((char *) h + 157, link, 100);
        memcpy(h + 257, "ustar", 6);
        memcpy(h + 263, "00", 2);
        memset(h + 148, ' ', 8);
        unsigned sum = 0;
        for (int i = 0; i < 512; i++)
                sum += h[i];
        snprintf((char *) h + 148, 8, "%06o", sum);
        h[155] = ' ';
        if (clen)
                memcpy(h + 512, content, clen);
        t->size += 512 + padded;
}

static void tar_end(tarbuf *t) {
        t->data = realloc(t->data, t->size + 1024);
        memset(t->data + t->size, 0, 1024);
        t->size += 1024;
}

static char *make_tmpdir(void) {
        char *p = strdup("/tmp/test-job-dir.XXXXXX");
        assert_non_null(mkdtemp(p));
        return p;
}

static char *read_text(const char *dir, const char *rel) {
        _cleanup_free_ char *p = strjoin(dir, "/", rel, NULL);
        char *data = NULL;
        assert_int_equal(read_full_file(p, 1 << 20, &data, NULL), 0);
        return data;
}

static mode_t mode_of(const char *dir, const char *rel) {
        _cleanup_free_ char *p = isempty(rel) ? strdup(dir) : strjoin(dir, "/", rel, NULL);
        struct stat st;
        assert_int_equal(lstat(p, &st), 0);
        return st.st_mode;
}

/* ---- inventory ---- */
static void test_inventory_convert(void **state) {
        json_t *exp = json_loads(
                "{\"_meta\":{\"hostvars\":{\"web1\":{\"ansible_host\":\"10.0.0.11\",\"http_port\":8080},"
                "                         \"db1\":{\"ansible_host\":\"10.0.0.21\"},\"lonely\":{\"a\":1}}},"
                " \"all\":{\"children\":[\"ungrouped\",\"web\",\"db\"],\"vars\":{\"env\":\"lab\"}},"
                " \"ungrouped\":{\"hosts\":[\"solo\"]},"
                " \"web\":{\"children\":[\"web_canary\"],\"hosts\":[\"web1\",\"web2\"],\"vars\":{\"max_conn\":100}},"
                " \"web_canary\":{\"hosts\":[\"web3\",\"web1\"]}, \"db\":{\"hosts\":[\"db1\"]},"
                " \"orphan\":{\"hosts\":[\"o1\"]},"
                " \"loop_a\":{\"children\":[\"loop_b\"]}, \"loop_b\":{\"children\":[\"loop_a\",\"all\"]}}", 0, NULL);
        assert_non_null(exp);
        json_t *out = NULL;
        assert_int_equal(job_inventory_convert(exp, &out), 0);

        json_t *all = json_object_get(out, "all");
        assert_non_null(all);
        assert_int_equal(json_object_size(out), 1);
        assert_string_equal(json_get_string(json_object_get(all, "vars"), "env", ""), "lab");
        json_t *ch = json_object_get(all, "children");
        json_t *web = json_object_get(ch, "web");
        assert_int_equal(json_get_int(json_object_get(web, "vars"), "max_conn", 0), 100);
        json_t *web1 = json_object_get(json_object_get(web, "hosts"), "web1");
        assert_string_equal(json_get_string(web1, "ansible_host", ""), "10.0.0.11");
        assert_int_equal(json_get_int(web1, "http_port", 0), 8080);
        assert_true(json_is_object(json_object_get(json_object_get(web, "hosts"), "web2")));
        json_t *canary = json_object_get(json_object_get(web, "children"), "web_canary");
        assert_true(json_is_object(json_object_get(json_object_get(canary, "hosts"), "web3")));
        assert_true(json_is_object(json_object_get(json_object_get(canary, "hosts"), "web1")));
        json_t *db1 = json_object_get(json_object_get(json_object_get(ch, "db"), "hosts"), "db1");
        assert_string_equal(json_get_string(db1, "ansible_host", ""), "10.0.0.21");
        assert_true(json_is_object(json_object_get(json_object_get(json_object_get(ch, "ungrouped"), "hosts"), "solo")));
        /* groups not reachable from all are attached to it */
        assert_true(json_is_object(json_object_get(json_object_get(json_object_get(ch, "orphan"), "hosts"), "o1")));
        /* cycles terminate */
        json_t *la = json_object_get(ch, "loop_a");
        assert_non_null(la);
        json_t *lb = json_object_get(json_object_get(la, "children"), "loop_b");
        assert_non_null(lb);
        assert_null(json_object_get(json_object_get(lb, "children"), "all"));
        /* a host that only has hostvars lands in all.hosts */
        assert_int_equal(json_get_int(json_object_get(json_object_get(all, "hosts"), "lonely"), "a", 0), 1);
        json_decref(out);
        json_decref(exp);

        /* empty and absent inventories */
        assert_int_equal(job_inventory_convert(NULL, &out), 0);
        assert_true(json_is_object(json_object_get(out, "all")));
        json_decref(out);
        json_t *bad = json_array();
        assert_int_equal(job_inventory_convert(bad, &out), -EINVAL);
        json_decref(bad);
}

/* ---- tar ---- */
static void test_tar_extract_ok(void **state) {
        _cleanup_free_ char *dir = make_tmpdir();
        char longname[200];
        tarbuf t = {};

        snprintf(longname, sizeof longname, "%s/%s", "deep/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.yml");
        tar_add(&t, "./", '5', 0755, NULL, NULL);
        tar_add(&t, "roles/", '5', 0777, NULL, NULL);
        tar_add(&t, "site.yml", '0', 0666, "- hosts: all\n", NULL);
        tar_add(&t, "bin/run.sh", '0', 0777, "#!/bin/sh\n", NULL);     /* parent created implicitly */
        tar_add(&t, longname, '0', 0600, "x", NULL);
        tar_add(&t, "empty", '0', 0644, "", NULL);
        tar_end(&t);

        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY);
        assert_int_equal(tar_extract(fd, t.data, t.size), 0);
        _cleanup_free_ char *s = read_text(dir, "site.yml");
        assert_string_equal(s, "- hosts: all\n");
        assert_int_equal(mode_of(dir, "site.yml") & 07777, 0644);
        assert_int_equal(mode_of(dir, "bin/run.sh") & 07777, 0755);
        assert_true(S_ISDIR(mode_of(dir, "roles")));
        _cleanup_free_ char *l = read_text(dir, longname);
        assert_string_equal(l, "x");
        _cleanup_free_ char *e = read_text(dir, "empty");
        assert_string_equal(e, "");
        free(t.data);
        assert_int_equal(rm_rf(dir), 0);
}

static void expect_refused(const char *name, char type, const char *link) {
        _cleanup_free_ char *dir = make_tmpdir();
        tarbuf t = {};

        tar_add(&t, "ok.txt", '0', 0644, "fine", NULL);
        tar_add(&t, name, type, 0644, type == '0' ? "evil" : NULL, link);
        tar_end(&t);
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY);
        assert_true(tar_extract(fd, t.data, t.size) < 0);
        free(t.data);
        /* nothing escaped the directory */
        assert_int_equal(access("/tmp/x-escaped-by-test-job-dir", F_OK), -1);
        assert_int_equal(rm_rf(dir), 0);
}

static void test_tar_extract_refused(void **state) {
        expect_refused("../x-escaped-by-test-job-dir", '0', NULL);
        expect_refused("a/../../x-escaped-by-test-job-dir", '0', NULL);
        expect_refused("/tmp/x-escaped-by-test-job-dir", '0', NULL);
        expect_refused("link", '2', "/etc/passwd");            /* symlink */
        expect_refused("hard", '1', "ok.txt");                 /* hardlink */
        expect_refused("dev", '3', NULL);                      /* char device */
        expect_refused("fifo", '6', NULL);
        expect_refused("ok.txt", '0', NULL);                   /* duplicate entry */
        expect_refused("", '0', NULL);                         /* empty name */
        expect_refused("./", '0', NULL);                       /* a file named "." */
}

static void test_tar_extract_corrupt(void **state) {
        _cleanup_free_ char *dir = make_tmpdir();
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY);
        tarbuf t = {};

        tar_add(&t, "a.txt", '0', 0644, "hello", NULL);
        tar_end(&t);
        /* bad checksum */
        t.data[0] ^= 1;
        assert_int_equal(tar_extract(fd, t.data, t.size), -EBADMSG);
        t.data[0] ^= 1;
        /* truncated data */
        assert_int_equal(tar_extract(fd, t.data, 600), -EBADMSG);
        /* not ustar */
        unsigned char junk[1024];
        memset(junk, 'j', sizeof junk);
        assert_int_equal(tar_extract(fd, junk, sizeof junk), -EBADMSG);
        /* empty archive */
        assert_int_equal(tar_extract(fd, t.data, 0), 0);
        free(t.data);
        assert_int_equal(rm_rf(dir), 0);
}

static void test_project_cache(void **state) {
        _cleanup_free_ char *state_dir = make_tmpdir(), *path = NULL, *path2 = NULL;
        char hash[65];
        tarbuf t = {};

        tar_add(&t, "site.yml", '0', 0644, "- hosts: all\n", NULL);
        tar_end(&t);
        crypto_sha256_hex(t.data, t.size, hash);

        assert_false(project_cache_has(state_dir, hash, NULL));
        char wrong[65];
        memset(wrong, 'a', 64), wrong[64] = 0;
        assert_int_equal(project_cache_store(state_dir, wrong, t.data, t.size, &path), -EBADMSG);
        assert_int_equal(project_cache_store(state_dir, "../etc", t.data, t.size, &path), -EINVAL);
        assert_null(path);
        assert_int_equal(project_cache_store(state_dir, hash, t.data, t.size, &path), 0);
        assert_true(project_cache_has(state_dir, hash, &path2));
        assert_string_equal(path, path2);
        _cleanup_free_ char *s = read_text(path, "site.yml");
        assert_string_equal(s, "- hosts: all\n");
        /* storing again is fine */
        free(path);
        path = NULL;
        assert_int_equal(project_cache_store(state_dir, hash, t.data, t.size, &path), 0);
        free(t.data);
        assert_int_equal(rm_rf(state_dir), 0);
}

/* ---- the job dir ---- */
static void test_job_dir_lifecycle(void **state) {
        _cleanup_free_ char *state_dir = make_tmpdir();
        agent_config cfg = { .state_dir = state_dir };
        json_t *a = json_loads("{\"job\": 42, \"attempt\": 2, \"name\": \"Demo\", \"playbook\": \"site.yml\","
                               " \"inventory\": {\"_meta\": {\"hostvars\": {\"h1\": {\"v\": 1}}},"
                               "                 \"all\": {\"children\": [\"g\"]}, \"g\": {\"hosts\": [\"h1\"]}},"
                               " \"extra_vars\": {\"x\": 1}, \"env\": {\"E\": \"1\"}, \"timeout\": 30}", 0, NULL);
        job_dir *d = NULL, *d2 = NULL;

        assert_int_equal(job_dir_create(&cfg, a, "/nonexistent/project", &d), 0);
        assert_int_equal(d->job_id, 42);
        assert_int_equal(d->attempt, 2);
        _cleanup_free_ char *root = strjoin(state_dir, "/jobs/42", NULL);
        assert_string_equal(d->root, root);
        assert_int_equal(mode_of(root, "") & 07777, 0700);
        assert_int_equal(mode_of(root, "env/extravars") & 07777, 0600);
        assert_true(S_ISDIR(mode_of(root, "home")));
        assert_true(S_ISDIR(mode_of(root, "tmp")));
        assert_true(S_ISDIR(mode_of(d->artifacts, "fact_cache")));
        assert_true(S_ISLNK(mode_of(root, "project")));
        assert_true(S_ISREG(mode_of(d->events_path, "")));

        _cleanup_free_ char *ev = read_text(root, "env/extravars");
        assert_string_equal(ev, "{\"x\":1}");
        _cleanup_free_ char *envv = read_text(root, "env/envvars");
        assert_string_equal(envv, "{\"E\":\"1\"}");
        _cleanup_free_ char *st = read_text(root, "env/settings");
        assert_string_equal(st, "{\"job_timeout\":30}");
        _cleanup_free_ char *inv = read_text(root, "inventory/hosts.json");
        assert_string_equal(inv, "{\"all\":{\"children\":{\"g\":{\"hosts\":{\"h1\":{\"v\":1}}}}}}");

        /* ack round trip */
        uint64_t off = 99;
        int64_t counter = 99;
        assert_int_equal(job_dir_read_ack(d, &off, &counter), 0);
        assert_true(off == 0 && counter == 0);
        assert_int_equal(job_dir_write_ack(d, 123456789012ULL, 77), 0);
        assert_int_equal(job_dir_read_ack(d, &off, &counter), 0);
        assert_true(off == 123456789012ULL);
        assert_int_equal(counter, 77);
        _cleanup_free_ char *ack = read_text(root, "ack");
        assert_string_equal(ack, "123456789012 77\n");

        /* cancel marker */
        assert_false(job_dir_cancel_requested(d));
        assert_int_equal(job_dir_mark_cancel(d), 0);
        assert_true(job_dir_cancel_requested(d));

        /* unit result */
        job_unit_result u;
        assert_int_equal(job_dir_read_unit_result(d, &u), -ENOENT);
        assert_int_equal(write_file_atomic(d->result_path, "signal killed KILL 1\n", 21, 0600), 0);
        assert_int_equal(job_dir_read_unit_result(d, &u), 0);
        assert_string_equal(u.service_result, "signal");
        assert_string_equal(u.exit_code, "killed");
        assert_string_equal(u.exit_status, "KILL");
        assert_int_equal(u.oom_kills, 1);
        assert_int_equal(write_file_atomic(d->result_path, "garbage\n", 8, 0600), 0);
        assert_int_equal(job_dir_read_unit_result(d, &u), -EBADMSG);

        /* status, command */
        assert_int_equal(job_dir_write_status(d, "failed", 2), 0);
        _cleanup_free_ char *status = read_text(d->artifacts, "status"), *rc = read_text(d->artifacts, "rc");
        assert_string_equal(status, "failed");
        assert_string_equal(rc, "2");
        char *argv[] = { "ansible-playbook", "site.yml", NULL };
        json_t *renv = json_pack("{s:s}", "A", "b");
        assert_int_equal(job_dir_write_command(d, argv, "/p", renv), 0);
        json_decref(renv);
        _cleanup_free_ char *cmd = read_text(d->artifacts, "command");
        assert_string_equal(cmd, "{\"command\":[\"ansible-playbook\",\"site.yml\"],\"cwd\":\"/p\",\"env\":{\"A\":\"b\"}}");

        /* open again, list */
        assert_int_equal(job_dir_open(&cfg, 42, &d2), 0);
        assert_int_equal(d2->attempt, 2);
        assert_string_equal(json_get_string(d2->assignment, "name", ""), "Demo");
        job_dir_free(d2);
        assert_int_equal(job_dir_open(&cfg, 43, &d2), -ENOENT);

        _cleanup_free_ char *junk = strjoin(state_dir, "/jobs/notanumber", NULL);
        assert_int_equal(mkdir(junk, 0700), 0);
        int64_t *ids = NULL;
        size_t n = 0;
        assert_int_equal(job_dir_list(&cfg, &ids, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(ids[0], 42);
        free(ids);

        /* create again replaces the dir */
        job_dir *d3 = NULL;
        assert_int_equal(job_dir_create(&cfg, a, NULL, &d3), 0);
        assert_false(job_dir_cancel_requested(d3));
        assert_true(S_ISDIR(mode_of(root, "project")));
        assert_int_equal(job_dir_remove(d3), 0);
        assert_int_equal(access(root, F_OK), -1);
        job_dir_free(d3);
        job_dir_free(d);
        json_decref(a);

        /* bad assignments */
        json_t *bad = json_loads("{\"job\": 0}", 0, NULL);
        assert_int_equal(job_dir_create(&cfg, bad, NULL, &d), -EINVAL);
        json_decref(bad);
        bad = json_loads("{\"job\": 5, \"extra_vars\": [1]}", 0, NULL);
        assert_int_equal(job_dir_create(&cfg, bad, NULL, &d), -EINVAL);
        json_decref(bad);
        assert_int_equal(rm_rf(state_dir), 0);
}

/* ---- execution environments: registry auth file, password not stored, pull failure read back ---- */
static void test_job_dir_registry_auth(void **state) {
        _cleanup_free_ char *state_dir = make_tmpdir();
        agent_config cfg = { .state_dir = state_dir };
        json_t *a = json_loads("{\"job\": 7, \"attempt\": 1, \"playbook\": \"site.yml\", \"inventory\": {},"
                               " \"execution_environment\": {\"id\": 3, \"name\": \"EE\", \"image\": \"localhost:5000/ee:1\","
                               "   \"pull\": \"always\", \"auth\": {\"registry\": \"localhost:5000\", \"username\": \"drover\","
                               "   \"password\": \"pa:ss-w0rd\"}}}", 0, NULL);
        job_dir *d = NULL, *d2 = NULL;

        assert_non_null(a);
        assert_int_equal(job_dir_create(&cfg, a, NULL, &d), 0);
        _cleanup_free_ char *auth_expected = strjoin(d->root, "/auth.json", NULL);
        assert_string_equal(d->auth_path, auth_expected);
        assert_int_equal(mode_of(d->auth_path, "") & 07777, 0600);
        _cleanup_free_ char *auth = read_text(d->root, "auth.json");
        /* base64("drover:pa:ss-w0rd") */
        assert_string_equal(auth, "{\"auths\":{\"localhost:5000\":{\"auth\":\"ZHJvdmVyOnBhOnNzLXcwcmQ=\"}}}");
        /* the password is in auth.json only: not in job.json, not in the assignment any more */
        _cleanup_free_ char *job = read_text(d->root, "job.json");
        assert_null(strstr(job, "pa:ss-w0rd"));
        assert_non_null(strstr(job, "\"username\":\"drover\""));
        assert_null(json_object_get(json_object_get(json_object_get(a, "execution_environment"), "auth"), "password"));

        /* reopened after an agent restart: the container fields come back from job.json */
        assert_int_equal(job_dir_open(&cfg, 7, &d2), 0);
        assert_int_equal(write_file_atomic(d2->result_path, "exit-code exited 125 0\n", 23, 0600), 0);
        const char pe[] = "pull\nError: initializing source docker://localhost:5000/ee:1: unauthorized: authentication required\n";
        assert_int_equal(write_file_atomic(d2->pull_error_path, pe, strlen(pe), 0600), 0);
        job_unit_result u;
        assert_int_equal(job_dir_read_unit_result(d2, &u), 0);
        assert_true(u.container);
        assert_true(u.pull_failed);
        assert_string_equal(u.image, "localhost:5000/ee:1");
        assert_string_equal(u.detail, "initializing source docker://localhost:5000/ee:1: unauthorized: authentication required");
        assert_int_equal(u.oom_kills, 0);

        /* podman's own failure (exit 125 without a pull failure): the last "Error:" line of stderr */
        assert_int_equal(unlink(d2->pull_error_path), 0);
        const char se[] = "some output\nError: crun: executable file `ansible-playbook` not found\n";
        assert_int_equal(write_file_atomic(d2->stderr_path, se, strlen(se), 0600), 0);
        assert_int_equal(job_dir_read_unit_result(d2, &u), 0);
        assert_false(u.pull_failed);
        assert_string_equal(u.detail, "crun: executable file `ansible-playbook` not found");

        assert_int_equal(job_dir_remove(d), 0);
        job_dir_free(d);
        job_dir_free(d2);
        json_decref(a);
        (void) rm_rf(state_dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_inventory_convert),
                cmocka_unit_test(test_tar_extract_ok),
                cmocka_unit_test(test_tar_extract_refused),
                cmocka_unit_test(test_tar_extract_corrupt),
                cmocka_unit_test(test_project_cache),
                cmocka_unit_test(test_job_dir_lifecycle),
                cmocka_unit_test(test_job_dir_registry_auth),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
