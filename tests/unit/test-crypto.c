/* test-crypto.c: unit tests for common/crypto.c: tokens, SHA-256, Django password hashes,
 * AES-256-GCM secrets and the key file rules. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>

#include "drover/crypto.h"

static void test_random_token(void **state) {
        char *a = NULL, *b = NULL;

        assert_int_equal(crypto_random_token(32, &a), 0);
        assert_int_equal(crypto_random_token(32, &b), 0);
        assert_int_equal(strlen(a), 43);   /* ceil(32 * 4 / 3), no padding */
        for (const char *p = a; *p; p++)
                assert_true((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                            *p == '-' || *p == '_');
        assert_string_not_equal(a, b);
        free(a);
        free(b);

        assert_int_equal(crypto_random_token(1, &a), 0);
        assert_int_equal(strlen(a), 2);
        free(a);
        assert_int_equal(crypto_random_token(0, &a), -EINVAL);
        assert_int_equal(crypto_random_token(1 << 20, &a), -EINVAL);
}

static void test_sha256(void **state) {
        char out[65];

        crypto_sha256_hex("abc", 3, out);
        assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        crypto_sha256_hex("", 0, out);
        assert_string_equal(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_password(void **state) {
        char *h = NULL;

        assert_int_equal(crypto_password_hash("s3cret pässword", &h), 0);
        assert_non_null(strstr(h, "pbkdf2_sha256$260000$"));
        /* salt is 16 alphanumeric characters */
        const char *salt = h + strlen("pbkdf2_sha256$260000$");
        const char *end = strchr(salt, '$');
        assert_non_null(end);
        assert_int_equal(end - salt, 16);
        assert_int_equal(crypto_password_verify("s3cret pässword", h), 1);
        assert_int_equal(crypto_password_verify("s3cret password", h), 0);
        assert_int_equal(crypto_password_verify("", h), 0);

        char *h2 = NULL;
        assert_int_equal(crypto_password_hash("s3cret pässword", &h2), 0);
        assert_string_not_equal(h, h2);   /* random salt */
        free(h);
        free(h2);
}

static void test_password_django_vectors(void **state) {
        /* Computed with python3 hashlib.pbkdf2_hmac('sha256', password, salt, iterations), as Django does. */
        const char *v1 = "pbkdf2_sha256$260000$SaltSaltSalt1234$EaelrPDg7Mm8zkvJeFCmYjzrTWTWkqEiUYlJpTaQxzQ=";
        const char *v2 = "pbkdf2_sha256$1000$abcdefghijkl$gLfHtkQteC323qwsg1iAHjNuz02AzcFUy3ldAAn6TAw=";

        assert_int_equal(crypto_password_verify("correct horse", v1), 1);
        assert_int_equal(crypto_password_verify("correct horsf", v1), 0);
        assert_int_equal(crypto_password_verify("secret", v2), 1);
        assert_int_equal(crypto_password_verify("Secret", v2), 0);

        /* malformed */
        assert_true(crypto_password_verify("secret", "") < 0);
        assert_true(crypto_password_verify("secret", "md5$1000$abc$def") < 0);
        assert_true(crypto_password_verify("secret", "pbkdf2_sha256$x$abcdefghijkl$gLfHtkQteC323qwsg1iAHjNuz02AzcFUy3ldAAn6TAw=") < 0);
        assert_true(crypto_password_verify("secret", "pbkdf2_sha256$1000$abcdefghijkl") < 0);
        assert_true(crypto_password_verify("secret", "pbkdf2_sha256$99999999999$abc$gLfHtkQteC323qwsg1iAHjNuz02AzcFUy3ldAAn6TAw=") < 0);
        assert_true(crypto_password_verify("secret", "pbkdf2_sha256$1000$abcdefghijkl$short") < 0);
}

static char tmpdir[] = "/tmp/test-crypto-XXXXXX";

static void test_key_and_encryption(void **state) {
        char path[256], path2[256];
        crypto_key k = {}, k2 = {}, other = {};
        struct stat st;
        char *ct = NULL, *pt = NULL;

        assert_non_null(mkdtemp(tmpdir));
        snprintf(path, sizeof(path), "%s/secret.key", tmpdir);

        assert_int_equal(crypto_key_load_or_create(path, &k), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(st.st_size, 32);
        assert_int_equal(crypto_key_load_or_create(path, &k2), 0);
        assert_memory_equal(k.key, k2.key, 32);

        assert_int_equal(crypto_encrypt(&k, "hunter2 – ünïcode", &ct), 0);
        assert_non_null(strstr(ct, "$encrypted$AESGCM$"));
        assert_null(strstr(ct, "hunter2"));
        assert_int_equal(crypto_decrypt(&k2, ct, &pt), 0);
        assert_string_equal(pt, "hunter2 – ünïcode");
        free(pt);
        pt = NULL;

        /* empty secret round trip */
        char *ct0 = NULL;
        assert_int_equal(crypto_encrypt(&k, "", &ct0), 0);
        assert_int_equal(crypto_decrypt(&k, ct0, &pt), 0);
        assert_string_equal(pt, "");
        free(pt);
        pt = NULL;
        free(ct0);

        /* tampering: flip one base64 character in the middle of the ciphertext */
        size_t prefix = strlen("$encrypted$AESGCM$"), l = strlen(ct);
        char *bad = strdup(ct);
        size_t i = prefix + (l - prefix) / 2;
        bad[i] = bad[i] == 'A' ? 'B' : 'A';
        assert_int_equal(crypto_decrypt(&k, bad, &pt), -EBADMSG);
        assert_null(pt);
        free(bad);

        /* wrong key */
        memset(other.key, 0x42, sizeof(other.key));
        assert_int_equal(crypto_decrypt(&other, ct, &pt), -EBADMSG);
        assert_null(pt);

        /* malformed */
        assert_true(crypto_decrypt(&k, "not encrypted", &pt) < 0);
        assert_true(crypto_decrypt(&k, "$encrypted$AESGCM$!!!!", &pt) < 0);
        assert_true(crypto_decrypt(&k, "$encrypted$AESGCM$AAAA", &pt) < 0);
        assert_null(pt);
        free(ct);

        /* a key readable by others is refused */
        assert_int_equal(chmod(path, 0644), 0);
        assert_int_equal(crypto_key_load_or_create(path, &k2), -EPERM);

        /* wrong size is refused */
        snprintf(path2, sizeof(path2), "%s/short.key", tmpdir);
        int fd = open(path2, O_WRONLY | O_CREAT | O_EXCL, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "0123456789", 10), 10);
        close(fd);
        assert_int_equal(crypto_key_load_or_create(path2, &k2), -EINVAL);

        unlink(path);
        unlink(path2);
        rmdir(tmpdir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_random_token),
                cmocka_unit_test(test_sha256),
                cmocka_unit_test(test_password),
                cmocka_unit_test(test_password_django_vectors),
                cmocka_unit_test(test_key_and_encryption),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
