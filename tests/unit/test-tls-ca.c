/* test-tls-ca.c: unit tests for common/tls-ca.c (the controller's private CA) and an end-to-end
 * check of common/http-client.c against a real TLS server (openssl s_server) using that CA. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "drover/http-client.h"
#include "drover/tls-ca.h"

static char tmpdir[] = "/tmp/test-tls-ca-XXXXXX";

static char *slurp(const char *path, size_t *ret_size) {
        FILE *f = fopen(path, "re");
        assert_non_null(f);
        char *buf = calloc(1, 65536);
        size_t n = fread(buf, 1, 65535, f);
        fclose(f);
        if (ret_size)
                *ret_size = n;
        return buf;
}

static mode_t file_mode(const char *path) {
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        return st.st_mode & 07777;
}

static X509 *load_cert(const char *path) {
        FILE *f = fopen(path, "re");
        assert_non_null(f);
        X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
        fclose(f);
        assert_non_null(x);
        return x;
}

/* Verify the server certificate against the CA as a TLS client would. */
static void verify_server_cert(const char *ca_path, const char *cert_path) {
        X509 *ca = load_cert(ca_path), *cert = load_cert(cert_path);
        X509_STORE *store = X509_STORE_new();
        X509_STORE_CTX *ctx = X509_STORE_CTX_new();

        assert_int_equal(X509_STORE_add_cert(store, ca), 1);
        assert_int_equal(X509_STORE_CTX_init(ctx, store, cert, NULL), 1);
        assert_int_equal(X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER), 1);
        int ok = X509_verify_cert(ctx);
        if (ok != 1)
                fprintf(stderr, "verify: %s\n", X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
        assert_int_equal(ok, 1);

        assert_int_equal(X509_check_ca(ca), 1);
        assert_int_equal(X509_check_host(cert, "localhost", 0, 0, NULL), 1);
        assert_int_equal(X509_check_ip_asc(cert, "127.0.0.1", 0), 1);
        assert_int_equal(X509_check_ip_asc(cert, "::1", 0), 1);
        assert_int_equal(X509_check_host(cert, "evil.example.com", 0, 0, NULL), 0);
        assert_int_equal(X509_check_ip_asc(cert, "10.9.9.9", 0), 0);

        X509_STORE_CTX_free(ctx);
        X509_STORE_free(store);
        X509_free(ca);
        X509_free(cert);
}

static void test_tls_ca_ensure(void **state) {
        char *cert = NULL, *key = NULL, *ca = NULL, dir[512], cakey[600], cmd[2048];
        size_t n1, n2;

        assert_non_null(mkdtemp(tmpdir));
        snprintf(dir, sizeof(dir), "%s/tls/sub", tmpdir);

        assert_int_equal(tls_ca_ensure(dir, NULL, &cert, &key, &ca), 0);
        snprintf(cakey, sizeof(cakey), "%s/ca.key", dir);
        assert_int_equal(file_mode(dir), 0700);
        assert_int_equal(file_mode(key), 0600);
        assert_int_equal(file_mode(cakey), 0600);
        assert_int_equal(file_mode(cert) & 0077 & ~0044, 0);

        char *k = slurp(key, NULL);
        assert_non_null(strstr(k, "-----BEGIN PRIVATE KEY-----"));
        free(k);

        verify_server_cert(ca, cert);

        snprintf(cmd, sizeof(cmd), "openssl verify -purpose sslserver -CAfile %s %s >/dev/null", ca, cert);
        assert_int_equal(system(cmd), 0);

        /* Second call: everything reused. */
        char *cert2 = NULL, *key2 = NULL, *ca2 = NULL;
        char *b1 = slurp(cert, &n1), *cab1 = slurp(ca, NULL);
        assert_int_equal(tls_ca_ensure(dir, NULL, &cert2, &key2, &ca2), 0);
        assert_string_equal(cert, cert2);
        char *b2 = slurp(cert2, &n2);
        assert_int_equal(n1, n2);
        assert_memory_equal(b1, b2, n1);
        free(b2);
        free(cert2);
        free(key2);
        free(ca2);

        /* An extra name missing from the SAN: the server certificate is re-issued, the CA kept. */
        char *extra[] = { "drover.example.com", "10.1.2.3", "fd00::7", NULL };
        assert_int_equal(tls_ca_ensure(dir, extra, &cert2, &key2, &ca2), 0);
        b2 = slurp(cert2, &n2);
        assert_false(n1 == n2 && memcmp(b1, b2, n1) == 0);
        free(b2);
        b2 = slurp(ca2, NULL);
        assert_string_equal(cab1, b2);
        free(b2);
        verify_server_cert(ca2, cert2);
        X509 *x = load_cert(cert2);
        assert_int_equal(X509_check_host(x, "drover.example.com", 0, 0, NULL), 1);
        assert_int_equal(X509_check_ip_asc(x, "10.1.2.3", 0), 1);
        assert_int_equal(X509_check_ip_asc(x, "fd00::7", 0), 1);
        X509_free(x);

        /* ... and the same names again reuse it. */
        b1 = (free(b1), slurp(cert2, &n1));
        free(cert2);
        free(key2);
        free(ca2);
        assert_int_equal(tls_ca_ensure(dir, extra, &cert2, &key2, &ca2), 0);
        b2 = slurp(cert2, &n2);
        assert_int_equal(n1, n2);
        assert_memory_equal(b1, b2, n1);
        free(b2);
        free(b1);
        free(cab1);
        free(cert2);
        free(key2);
        free(ca2);

        /* Invalid names are refused. */
        char *bad[] = { "bad name,with comma", NULL };
        assert_int_equal(tls_ca_ensure(dir, bad, &cert2, &key2, &ca2), -EINVAL);

        free(cert);
        free(key);
        free(ca);
}

static int free_port(void) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t l = sizeof(sa);

        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *) &sa, &l), 0);
        close(fd);
        return ntohs(sa.sin_port);
}

static void wait_listening(int port) {
        for (int i = 0; i < 100; i++) {
                int fd = socket(AF_INET, SOCK_STREAM, 0);
                struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
                                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                int r = connect(fd, (struct sockaddr *) &sa, sizeof(sa));
                close(fd);
                if (r == 0)
                        return;
                struct timespec ts = { 0, 50 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        fail_msg("openssl s_server did not start listening on port %d", port);
}

static void test_http_client_tls(void **state) {
        char dir[512], other[512], cert[600], key[600], ca[600], accept_arg[64], url[64];
        char *other_ca = NULL;
        int port = free_port();

        snprintf(dir, sizeof(dir), "%s/tls/sub", tmpdir);   /* made by test_tls_ca_ensure */
        snprintf(cert, sizeof(cert), "%s/server.crt", dir);
        snprintf(key, sizeof(key), "%s/server.key", dir);
        snprintf(ca, sizeof(ca), "%s/ca.crt", dir);
        snprintf(other, sizeof(other), "%s/other", tmpdir);
        assert_int_equal(tls_ca_ensure(other, NULL, NULL, NULL, &other_ca), 0);

        snprintf(accept_arg, sizeof(accept_arg), "127.0.0.1:%d", port);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int null = open("/dev/null", O_RDWR);
                dup2(null, 0);
                dup2(null, 1);
                dup2(null, 2);
                execlp("openssl", "openssl", "s_server", "-cert", cert, "-key", key, "-accept", accept_arg, "-www",
                       (char *) NULL);
                _exit(127);
        }
        wait_listening(port);

        snprintf(url, sizeof(url), "https://127.0.0.1:%d", port);

        /* Pinned to the right CA: a response arrives. */
        http_client *c = NULL;
        http_response resp;
        assert_int_equal(http_client_new(url, ca, &c), 0);
        http_client_set_timeout(c, 10000);
        int r = http_client_request(c, "GET", "/", NULL, &resp);
        if (r < 0)
                fprintf(stderr, "request failed: %s\n", resp.error);
        assert_int_equal(r, 0);
        assert_int_equal(resp.status, 200);
        assert_non_null(resp.body);
        assert_true(resp.body_size > 0);
        assert_null(resp.json);
        http_response_clear(&resp);
        http_client_free(c);

        /* "localhost" also matches the certificate. */
        snprintf(url, sizeof(url), "https://localhost:%d/", port);
        assert_int_equal(http_client_new(url, ca, &c), 0);
        http_client_set_timeout(c, 10000);
        r = http_client_request(c, "GET", "/", NULL, &resp);
        /* localhost may resolve to ::1 first where s_server does not listen; curl falls back. */
        assert_int_equal(r, 0);
        assert_int_equal(resp.status, 200);
        http_response_clear(&resp);
        http_client_free(c);

        /* Pinned to a different CA: the handshake fails, no response. */
        snprintf(url, sizeof(url), "https://127.0.0.1:%d", port);
        assert_int_equal(http_client_new(url, other_ca, &c), 0);
        http_client_set_timeout(c, 10000);
        r = http_client_request(c, "GET", "/", NULL, &resp);
        assert_true(r < 0);
        assert_int_equal(resp.status, 0);
        assert_true(strlen(resp.error) > 0);
        assert_null(resp.body);
        http_response_clear(&resp);
        http_client_free(c);

        assert_int_equal(kill(pid, SIGTERM), 0);
        assert_int_equal(waitpid(pid, NULL, 0), pid);
        free(other_ca);

        char cmd[700];
        snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", tmpdir);
        assert_int_equal(system(cmd), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_tls_ca_ensure),
                cmocka_unit_test(test_http_client_tls),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
