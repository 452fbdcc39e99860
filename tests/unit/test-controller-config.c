/* test-controller-config.c: controller_config_load(): every key of a full file, the defaults, and
 * errors (unknown keys, bad sizes, bad integers, YAML syntax) naming file:line:col exactly. The
 * loader logs the error to stderr; the tests capture stderr in a file and compare. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>

#include "controller.h"
#include "drover/log.h"
#include "drover/util.h"

static char tmpdir[] = "/tmp/test-controller-config.XXXXXX";

static char *write_config(const char *name, const char *text) {
        char *path = strjoin(tmpdir, "/", name, NULL);
        assert_non_null(path);
        assert_int_equal(write_file_atomic(path, text, strlen(text), 0600), 0);
        return path;
}

/* Load path with stderr redirected; returns the loader's result and what it logged. */
static int load_capture(const char *path, controller_config **ret, char **ret_log) {
        _cleanup_free_ char *log_path = strjoin(tmpdir, "/stderr.log", NULL);
        int saved, fd, r;

        assert_non_null(log_path);
        fflush(stderr);
        saved = dup(STDERR_FILENO);
        assert_true(saved >= 0);
        fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_true(dup2(fd, STDERR_FILENO) >= 0);
        close(fd);

        r = controller_config_load(path, ret);

        fflush(stderr);
        assert_true(dup2(saved, STDERR_FILENO) >= 0);
        close(saved);
        assert_int_equal(read_full_file(log_path, 65536, ret_log, NULL), 0);
        return r;
}

/* The logged error, without the "<3>" level prefix and the newline. */
static void assert_error(const char *name, const char *text, const char *expected_suffix) {
        char *path = write_config(name, text), *log = NULL, *expected, *p;
        char got_buf[1024], expected_buf[1024];
        controller_config *c = NULL;
        int r;

        r = load_capture(path, &c, &log);
        p = strchr(log, '\n');
        if (p)
                *p = 0;
        p = log;
        if (p[0] == '<' && p[1] && p[2] == '>')
                p += 3;
        expected = strjoin(path, expected_suffix, NULL);
        assert_non_null(expected);
        snprintf(got_buf, sizeof(got_buf), "%s", p);
        snprintf(expected_buf, sizeof(expected_buf), "%s", expected);
        /* free before asserting: a failing assertion longjmps past cleanup handlers */
        free(expected);
        free(log);
        free(path);
        controller_config_free(c);

        assert_int_equal(r, -EINVAL);
        assert_null(c);
        if (!streq(got_buf, expected_buf))
                fail_msg("expected error\n  %s\ngot\n  %s", expected_buf, got_buf);
}

static void test_full(void **state) {
        _cleanup_free_ char *path = write_config("full.yaml",
                "listen: '[::]:9443'\n"
                "tls:\n"
                "  certificate: /etc/drover/tls/server.crt\n"
                "  key: /etc/drover/tls/server.key\n"
                "  names: [controller.example.com, 192.0.2.10]\n"
                "database: sqlite:/srv/drover/db.sqlite\n"
                "state_dir: /srv/drover\n"
                "projects_root: /srv/projects\n"
                "admin:\n"
                "  username: root\n"
                "  password: s3cret\n"
                "  email: root@example.com\n"
                "log_level: debug\n"
                "limits:\n"
                "  max_body_size: 2M\n"
                "  max_agent_body_size: 32M\n"
                "  max_project_size: 32M\n"
                "  max_event_size: 512K\n"
                "  max_connections: 100\n"
                "  max_long_polls: 50\n"
                "  max_streams: 20\n"
                "  long_poll_timeout: 30s\n"
                "  node_lost_timeout: 5min\n");
        _cleanup_free_ char *log = NULL;
        controller_config *c = NULL;

        assert_int_equal(load_capture(path, &c, &log), 0);
        assert_non_null(c);
        assert_string_equal(c->path, path);
        assert_string_equal(c->listen, "[::]:9443");
        assert_string_equal(c->tls_cert, "/etc/drover/tls/server.crt");
        assert_string_equal(c->tls_key, "/etc/drover/tls/server.key");
        assert_int_equal(strv_length(c->tls_names), 2);
        assert_string_equal(c->tls_names[0], "controller.example.com");
        assert_string_equal(c->tls_names[1], "192.0.2.10");
        assert_string_equal(c->database, "sqlite:/srv/drover/db.sqlite");
        assert_string_equal(c->state_dir, "/srv/drover");
        assert_string_equal(c->projects_root, "/srv/projects");
        assert_string_equal(c->admin_user, "root");
        assert_string_equal(c->admin_password, "s3cret");
        assert_string_equal(c->admin_email, "root@example.com");
        assert_int_equal(c->log_level, LOG_LEVEL_DEBUG);
        assert_int_equal(c->limits.max_body_size, 2 * 1024 * 1024);
        assert_int_equal(c->limits.max_agent_body_size, 32 * 1024 * 1024);
        assert_int_equal(c->limits.max_project_size, 32ULL * 1024 * 1024);
        assert_int_equal(c->limits.max_event_size, 512 * 1024);
        assert_int_equal(c->limits.max_connections, 100);
        assert_int_equal(c->limits.max_long_polls, 50);
        assert_int_equal(c->limits.max_streams, 20);
        assert_int_equal(c->limits.long_poll_max_usec, 30 * USEC_PER_SEC);
        assert_int_equal(c->limits.node_lost_timeout_usec, 300 * USEC_PER_SEC);
        controller_config_free(c);
}

static void test_defaults(void **state) {
        _cleanup_free_ char *path = write_config("empty.yaml", "# nothing\n"), *log = NULL;
        controller_config *c = NULL;

        assert_int_equal(load_capture(path, &c, &log), 0);
        assert_string_equal(c->listen, "127.0.0.1:8443");
        assert_null(c->tls_cert);
        assert_null(c->tls_key);
        assert_string_equal(c->state_dir, "/var/lib/drover-controller");
        assert_string_equal(c->database, "sqlite:/var/lib/drover-controller/drover.db");
        assert_string_equal(c->projects_root, "/var/lib/drover-controller/projects");
        assert_string_equal(c->admin_user, "admin");
        assert_null(c->admin_password);
        assert_int_equal(c->log_level, LOG_LEVEL_INFO);
        assert_int_equal(c->limits.max_body_size, 1024 * 1024);
        assert_int_equal(c->limits.max_agent_body_size, 16 * 1024 * 1024);
        assert_int_equal(c->limits.max_project_size, 64 * 1024 * 1024);
        assert_int_equal(c->limits.max_event_size, 1024 * 1024);
        assert_int_equal(c->limits.max_connections, 1024);
        assert_int_equal(c->limits.max_long_polls, 512);
        assert_int_equal(c->limits.max_streams, 256);
        assert_int_equal(c->limits.long_poll_max_usec, 50 * USEC_PER_SEC);
        assert_int_equal(c->limits.node_lost_timeout_usec, 120 * USEC_PER_SEC);
        controller_config_free(c);

        /* state_dir moves the database and projects with it */
        free(path);
        free(log);
        log = NULL;
        path = write_config("state.yaml", "state_dir: /srv/d\n");
        assert_int_equal(load_capture(path, &c, &log), 0);
        assert_string_equal(c->database, "sqlite:/srv/d/drover.db");
        assert_string_equal(c->projects_root, "/srv/d/projects");
        controller_config_free(c);
}

static void test_missing_file(void **state) {
        _cleanup_free_ char *path = strjoin(tmpdir, "/does-not-exist.yaml", NULL), *log = NULL;
        controller_config *c = NULL;

        assert_true(load_capture(path, &c, &log) < 0);
        assert_null(c);
        assert_non_null(strstr(log, "does-not-exist.yaml"));
}

static void test_unknown_key(void **state) {
        assert_error("unknown.yaml", "listen: 127.0.0.1:1\nbogus: 1\n", ":2:1: unknown key 'bogus'");
        assert_error("unknown2.yaml", "limits:\n  max_connections: 5\n  max_body: 1M\n",
                     ":3:3: unknown key 'limits.max_body'");
        assert_error("unknown3.yaml", "tls:\n  cert: /x\n", ":2:3: unknown key 'tls.cert'");
}

static void test_bad_size(void **state) {
        assert_error("size.yaml", "limits:\n  max_body_size: lots\n",
                     ":2:18: key 'limits.max_body_size': expected a size (e.g. 512M, 2G or a number of bytes), got 'lots'");
        /* agents cannot download more than 64 MiB, so a larger project limit is refused */
        assert_error("project.yaml", "limits:\n  max_project_size: 1G\n",
                     ":2:21: key 'limits.max_project_size': at most 64M (the agents' download limit), got '1G'");
}

static void test_bad_int(void **state) {
        assert_error("int.yaml", "limits:\n  max_connections: many\n",
                     ":2:20: key 'limits.max_connections': expected an integer between 1 and 1000000, got 'many'");
}

static void test_bad_type(void **state) {
        assert_error("type.yaml", "listen:\n  - a\n", ":2:3: key 'listen': expected a string, got a list");
}

static void test_syntax_error(void **state) {
        assert_error("syntax.yaml", "listen: 127.0.0.1:1\nlimits: [1, 2\n",
                     ":3:1: did not find expected ',' or ']'");
}

static int setup(void **state) {
        if (!mkdtemp(tmpdir))
                return -1;
        return 0;
}

static int teardown(void **state) {
        return rm_rf(tmpdir) < 0 ? -1 : 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_full),
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_missing_file),
                cmocka_unit_test(test_unknown_key),
                cmocka_unit_test(test_bad_size),
                cmocka_unit_test(test_bad_int),
                cmocka_unit_test(test_bad_type),
                cmocka_unit_test(test_syntax_error),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
