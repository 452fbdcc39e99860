/* test-agent-config.c: agent_config_load(): a full valid configuration, defaults, and every kind of
 * error naming "<file>:<line>:<col>" of the offending key or value. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <unistd.h>

#include "agent.h"
#include "agent-internal.h"
#include "drover/log.h"
#include "drover/util.h"

static char tmpdir[] = "/tmp/test-agent-config-XXXXXX";

static int setup(void **state) {
        assert_non_null(mkdtemp(tmpdir));
        return 0;
}

static int teardown(void **state) {
        assert_int_equal(rm_rf(tmpdir), 0);
        return 0;
}

/* Write text to <tmpdir>/<name>; returns the path (static buffer). */
static const char *write_config(const char *name, const char *text) {
        static char path[512];
        snprintf(path, sizeof path, "%s/%s", tmpdir, name);
        assert_int_equal(write_file_atomic(path, text, strlen(text), 0600), 0);
        return path;
}

/* Load a config that must fail; the error must start with "<path>:<line>:<col>: " and contain want. */
static void expect_error(const char *name, const char *text, unsigned line, unsigned col, const char *want) {
        const char *path = write_config(name, text);
        agent_config *c = NULL;
        char error[600], prefix[600];

        assert_int_equal(agent_config_load_with_error(path, &c, error, sizeof error), -EINVAL);
        assert_null(c);
        snprintf(prefix, sizeof prefix, "%s:%u:%u: ", path, line, col);
        if (!startswith(error, prefix) || !strstr(error, want))
                fail_msg("error '%s' does not start with '%s' or lacks '%s'", error, prefix, want);
}

static void test_full_config(void **state) {
        const char *path = write_config("full.yaml",
                "# every key\n"
                "controller_url: https://controller.example:8443/\n"
                "ca_file: /etc/drover/ca.pem\n"
                "enrollment_token: det_abc\n"
                "secret_file: /var/lib/drover-test/secret\n"
                "node_name: node1\n"
                "state_dir: /var/lib/drover-test\n"
                "share_dir: /usr/share/drover-test\n"
                "ansible_playbook: /opt/ansible/bin/ansible-playbook\n"
                "bus_address: unix:path=/run/systemd/private\n"
                "capacity: 7\n"
                "job_slice: 2\n"
                "keep_job_dirs: true\n"
                "heartbeat_interval: 5s\n"
                "log_level: debug\n"
                "unit:\n"
                "  memory_max: 512M\n"
                "  cpu_quota: 50%\n"
                "  tasks_max: 200\n"
                "  user: awx\n"
                "  stop_timeout: 30s\n");
        agent_config *c = NULL;
        char error[600];

        assert_int_equal(agent_config_load_with_error(path, &c, error, sizeof error), 0);
        assert_non_null(c);
        assert_string_equal(c->path, path);
        assert_string_equal(c->controller_url, "https://controller.example:8443");
        assert_string_equal(c->ca_file, "/etc/drover/ca.pem");
        assert_string_equal(c->enrollment_token, "det_abc");
        assert_string_equal(c->secret_file, "/var/lib/drover-test/secret");
        assert_string_equal(c->node_name, "node1");
        assert_string_equal(c->state_dir, "/var/lib/drover-test");
        assert_string_equal(c->share_dir, "/usr/share/drover-test");
        assert_string_equal(c->ansible_playbook, "/opt/ansible/bin/ansible-playbook");
        assert_string_equal(c->bus_address, "unix:path=/run/systemd/private");
        assert_int_equal(c->capacity, 7);
        assert_int_equal(c->job_slice, 2);
        assert_true(c->keep_job_dirs);
        assert_int_equal(c->heartbeat_interval_usec, 5 * USEC_PER_SEC);
        assert_int_equal(c->log_level, LOG_LEVEL_DEBUG);
        assert_int_equal(c->unit.memory_max, 512ULL * 1024 * 1024);
        assert_int_equal(c->unit.cpu_quota_usec, 500000);
        assert_int_equal(c->unit.tasks_max, 200);
        assert_string_equal(c->unit.user, "awx");
        assert_int_equal(c->unit.stop_timeout_usec, 30 * USEC_PER_SEC);
        agent_config_free(c);
}

static void test_defaults(void **state) {
        const char *path = write_config("minimal.yaml", "controller_url: https://127.0.0.1:8443\n");
        agent_config *c = NULL;

        assert_int_equal(agent_config_load(path, &c), 0);
        assert_string_equal(c->controller_url, "https://127.0.0.1:8443");
        assert_null(c->ca_file);
        assert_null(c->enrollment_token);
        assert_string_equal(c->state_dir, "/var/lib/drover");
        assert_string_equal(c->secret_file, "/var/lib/drover/node-secret");
        assert_string_equal(c->share_dir, DROVER_SHARE_DIR);
        assert_string_equal(c->ansible_playbook, "/usr/bin/ansible-playbook");
        assert_null(c->bus_address);
        assert_non_null(c->node_name);
        assert_true(strlen(c->node_name) > 0);
        assert_int_equal(c->capacity, 0);
        assert_int_equal(c->job_slice, 1);
        assert_false(c->keep_job_dirs);
        assert_int_equal(c->heartbeat_interval_usec, 10 * USEC_PER_SEC);
        assert_int_equal(c->log_level, LOG_LEVEL_INFO);
        assert_true(c->unit.memory_max == UINT64_MAX);
        assert_true(c->unit.cpu_quota_usec == UINT64_MAX);
        assert_true(c->unit.tasks_max == UINT64_MAX);
        assert_null(c->unit.user);
        assert_int_equal(c->unit.stop_timeout_usec, 10 * USEC_PER_SEC);
        agent_config_free(c);
}

static void test_infinity(void **state) {
        const char *path = write_config("inf.yaml",
                "controller_url: https://c\n"
                "state_dir: /srv/drover\n"
                "unit:\n"
                "  memory_max: infinity\n"
                "  tasks_max: infinity\n");
        agent_config *c = NULL;

        assert_int_equal(agent_config_load(path, &c), 0);
        assert_true(c->unit.memory_max == UINT64_MAX);
        assert_true(c->unit.tasks_max == UINT64_MAX);
        assert_string_equal(c->secret_file, "/srv/drover/node-secret");
        agent_config_free(c);
}

static void test_unknown_key(void **state) {
        expect_error("unknown.yaml",
                     "controller_url: https://c\n"
                     "capacity: 3\n"
                     "bogus: 1\n",
                     3, 1, "key 'bogus': unknown key");
        expect_error("unknown-unit.yaml",
                     "controller_url: https://c\n"
                     "unit:\n"
                     "  memory_max: 1G\n"
                     "  memroy: 2\n",
                     4, 3, "key 'unit.memroy': unknown key");
}

static void test_bad_type(void **state) {
        expect_error("capacity.yaml",
                     "controller_url: https://c\n"
                     "capacity: \"abc\"\n",
                     2, 11, "key 'capacity': expected an integer");
        expect_error("capacity-neg.yaml",
                     "controller_url: https://c\n"
                     "capacity: -1\n",
                     2, 11, "key 'capacity'");
        expect_error("slice.yaml",
                     "controller_url: https://c\n"
                     "job_slice: 0\n",
                     2, 12, "key 'job_slice'");
        expect_error("level.yaml",
                     "controller_url: https://c\n"
                     "log_level: loud\n",
                     2, 12, "key 'log_level': expected one of debug, info, notice, warning, error, got 'loud'");
        expect_error("timespan.yaml",
                     "controller_url: https://c\n"
                     "heartbeat_interval: soon\n",
                     2, 21, "key 'heartbeat_interval'");
        expect_error("relative.yaml",
                     "controller_url: https://c\n"
                     "state_dir: var/lib/drover\n",
                     2, 12, "key 'state_dir': expected an absolute path");
}

static void test_bad_size(void **state) {
        expect_error("size.yaml",
                     "controller_url: https://c\n"
                     "unit:\n"
                     "  memory_max: 12Q\n",
                     3, 15, "key 'unit.memory_max'");
        expect_error("tasks.yaml",
                     "controller_url: https://c\n"
                     "unit:\n"
                     "  tasks_max: lots\n",
                     3, 14, "key 'unit.tasks_max'");
        expect_error("quota.yaml",
                     "controller_url: https://c\n"
                     "unit:\n"
                     "  cpu_quota: half\n",
                     3, 14, "key 'unit.cpu_quota'");
}

static void test_bad_bool(void **state) {
        expect_error("bool.yaml",
                     "controller_url: https://c\n"
                     "keep_job_dirs: perhaps\n",
                     2, 16, "key 'keep_job_dirs'");
}

static void test_missing_url(void **state) {
        expect_error("missing.yaml",
                     "node_name: node1\n"
                     "capacity: 2\n",
                     1, 1, "key 'controller_url': required key missing");
        expect_error("empty-url.yaml",
                     "controller_url:\n",
                     1, 16, "key 'controller_url': required key missing");
        expect_error("empty.yaml", "", 1, 1, "key 'controller_url'");
}

static void test_http_url(void **state) {
        expect_error("http.yaml",
                     "capacity: 2\n"
                     "controller_url: http://controller:8080\n",
                     2, 17, "key 'controller_url': expected an https:// URL, got 'http://controller:8080'");
}

static void test_syntax_error(void **state) {
        const char *path = write_config("syntax.yaml",
                                        "controller_url: https://c\n"
                                        "unit: [1, 2\n"
                                        "capacity: 3\n");
        agent_config *c = NULL;
        char error[600], prefix[600];

        assert_int_equal(agent_config_load_with_error(path, &c, error, sizeof error), -EINVAL);
        assert_null(c);
        /* libyaml reports where it noticed the problem: somewhere after line 2 */
        snprintf(prefix, sizeof prefix, "%s:", path);
        if (!startswith(error, prefix))
                fail_msg("error '%s' does not start with '%s'", error, prefix);
        unsigned line = 0, col = 0;
        if (sscanf(error + strlen(prefix), "%u:%u: ", &line, &col) != 2 || line < 2 || col < 1)
                fail_msg("error '%s' does not name line:col", error);
}

static void test_spool_podman(void **state) {
        const char *path = write_config("spool.yaml",
                "controller_url: https://c\n"
                "spool:\n"
                "  max_job_size: 10M\n"
                "  max_total_size: 2G\n"
                "podman:\n"
                "  enabled: false\n"
                "  path: /opt/podman/bin/podman\n"
                "  global_options: [\"--events-backend=file\"]\n"
                "  run_options:\n"
                "    - --cgroups=disabled\n"
                "    - --network=none\n"
                "  pull_options: []\n");
        agent_config *c = NULL;

        assert_int_equal(agent_config_load(path, &c), 0);
        assert_int_equal(c->spool.max_job_bytes, 10ULL * 1024 * 1024);
        assert_int_equal(c->spool.max_total_bytes, 2ULL * 1024 * 1024 * 1024);
        assert_false(c->podman.enabled);
        assert_string_equal(c->podman.path, "/opt/podman/bin/podman");
        assert_int_equal(strv_length(c->podman.global_options), 1);
        assert_string_equal(c->podman.global_options[0], "--events-backend=file");
        assert_int_equal(strv_length(c->podman.run_options), 2);
        assert_string_equal(c->podman.run_options[0], "--cgroups=disabled");
        assert_string_equal(c->podman.run_options[1], "--network=none");
        assert_non_null(c->podman.pull_options);
        assert_int_equal(strv_length(c->podman.pull_options), 0);
        agent_config_free(c);

        /* defaults: 256M / 1G; podman at /usr/bin/podman, enabled when it is executable */
        path = write_config("spool-default.yaml", "controller_url: https://c\n");
        assert_int_equal(agent_config_load(path, &c), 0);
        assert_int_equal(c->spool.max_job_bytes, 256ULL * 1024 * 1024);
        assert_int_equal(c->spool.max_total_bytes, 1024ULL * 1024 * 1024);
        assert_string_equal(c->podman.path, "/usr/bin/podman");
        assert_int_equal(c->podman.enabled, access("/usr/bin/podman", X_OK) == 0);
        assert_null(c->podman.run_options);
        agent_config_free(c);

        /* an executable path given, enabled not given: enabled */
        path = write_config("podman-true.yaml", "controller_url: https://c\npodman:\n  path: /bin/true\n");
        assert_int_equal(agent_config_load(path, &c), 0);
        assert_true(c->podman.enabled);
        agent_config_free(c);

        expect_error("spool-bad.yaml",
                     "controller_url: https://c\n"
                     "spool:\n"
                     "  max_job_size: lots\n",
                     3, 17, "key 'spool.max_job_size'");
        expect_error("spool-small.yaml",
                     "controller_url: https://c\n"
                     "spool:\n"
                     "  max_total_size: 1K\n",
                     3, 19, "key 'spool.max_total_size': expected a size of at least 64K");
        expect_error("spool-unknown.yaml",
                     "controller_url: https://c\n"
                     "spool:\n"
                     "  max_jobs: 1\n",
                     3, 3, "key 'spool.max_jobs': unknown key");
        expect_error("spool-scalar.yaml",
                     "controller_url: https://c\n"
                     "spool: 5\n",
                     2, 8, "key 'spool': expected a mapping");
        expect_error("podman-unknown.yaml",
                     "controller_url: https://c\n"
                     "podman:\n"
                     "  binary: /usr/bin/podman\n",
                     3, 3, "key 'podman.binary': unknown key");
        expect_error("podman-bool.yaml",
                     "controller_url: https://c\n"
                     "podman:\n"
                     "  enabled: maybe\n",
                     3, 12, "key 'podman.enabled'");
        expect_error("podman-path.yaml",
                     "controller_url: https://c\n"
                     "podman:\n"
                     "  path: podman\n",
                     3, 9, "key 'podman.path': expected an absolute path");
        expect_error("podman-list.yaml",
                     "controller_url: https://c\n"
                     "podman:\n"
                     "  run_options: --network=none\n",
                     3, 16, "key 'podman.run_options'");
        expect_error("podman-item.yaml",
                     "controller_url: https://c\n"
                     "podman:\n"
                     "  pull_options:\n"
                     "    - [a]\n",
                     4, 7, "key 'podman.pull_options[0]'");
}

static void test_missing_file(void **state) {
        agent_config *c = NULL;
        char error[600];
        assert_int_equal(agent_config_load_with_error("/nonexistent/agent.yaml", &c, error, sizeof error), -EINVAL);
        assert_non_null(strstr(error, "/nonexistent/agent.yaml"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_full_config),
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_infinity),
                cmocka_unit_test(test_unknown_key),
                cmocka_unit_test(test_bad_type),
                cmocka_unit_test(test_bad_size),
                cmocka_unit_test(test_bad_bool),
                cmocka_unit_test(test_missing_url),
                cmocka_unit_test(test_http_url),
                cmocka_unit_test(test_spool_podman),
                cmocka_unit_test(test_syntax_error),
                cmocka_unit_test(test_missing_file),
        };
        log_set_max_level(LOG_LEVEL_ERR - 1);   /* agent_config_load() logs its errors: keep quiet */
        return cmocka_run_group_tests(tests, setup, teardown);
}
