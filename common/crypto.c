/* crypto.c: secrets handling with OpenSSL 3: random tokens, SHA-256, Django-compatible
 * pbkdf2_sha256 password hashes, and AES-256-GCM encryption of secrets at rest with a key kept
 * in a 0600 file. */
#include "drover/crypto.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "drover/log.h"
#include "drover/util.h"

#define PBKDF2_DEFAULT_ITERATIONS 260000
#define PBKDF2_MAX_ITERATIONS 10000000      /* a stored hash must not make us burn minutes of CPU */
#define PBKDF2_SALT_LEN 16
#define PBKDF2_MAX_SALT_LEN 256
#define PBKDF2_DKLEN 32
#define PASSWORD_MAX_LEN 4096               /* as Django */
#define TOKEN_MAX_BYTES 1024
#define SECRET_MAX_LEN (16U * 1024U * 1024U)
#define GCM_NONCE_LEN 12
#define GCM_TAG_LEN 16
#define ENCRYPTED_PREFIX "$encrypted$AESGCM$"

static const char salt_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/* Standard base64 with padding; caller frees. */
static char *base64_encode(const uint8_t *data, size_t n) {
        if (n > INT_MAX / 2)
                return NULL;
        char *out = malloc(4 * ((n + 2) / 3) + 1);
        if (!out)
                return NULL;
        EVP_EncodeBlock((unsigned char *) out, data, (int) n);
        return out;
}

/* Strict standard base64 decoding (length a multiple of 4, padding honoured). */
static int base64_decode(const char *s, uint8_t **ret, size_t *ret_size) {
        size_t l = strlen(s);
        if (l == 0 || l % 4 != 0 || l > INT_MAX / 2)
                return -EINVAL;
        for (size_t i = 0; i < l; i++) {
                char c = s[i];
                bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                          c == '+' || c == '/' || (c == '=' && i >= l - 2);
                if (!ok)
                        return -EINVAL;
        }
        if (s[l - 2] == '=' && s[l - 1] != '=')
                return -EINVAL;
        size_t pad = (s[l - 1] == '=') + (s[l - 2] == '=');

        uint8_t *buf = malloc(l / 4 * 3 + 1);
        if (!buf)
                return -ENOMEM;
        int n = EVP_DecodeBlock(buf, (const unsigned char *) s, (int) l);
        if (n < 0 || (size_t) n < pad) {
                free(buf);
                return -EINVAL;
        }
        *ret = buf;
        *ret_size = (size_t) n - pad;
        return 0;
}

int crypto_random_token(size_t bytes, char **ret) {
        if (bytes == 0 || bytes > TOKEN_MAX_BYTES)
                return -EINVAL;

        uint8_t buf[TOKEN_MAX_BYTES];
        if (RAND_bytes(buf, (int) bytes) != 1)
                return -EIO;

        char *s = base64_encode(buf, bytes);
        OPENSSL_cleanse(buf, bytes);
        if (!s)
                return -ENOMEM;

        /* base64 -> base64url without padding */
        size_t l = 0;
        for (char *p = s; *p; p++) {
                if (*p == '=')
                        break;
                if (*p == '+')
                        *p = '-';
                else if (*p == '/')
                        *p = '_';
                l++;
        }
        s[l] = 0;
        *ret = s;
        return 0;
}

void crypto_sha256_hex(const void *data, size_t n, char out[static 65]) {
        static const char hex[] = "0123456789abcdef";
        uint8_t md[32];
        unsigned len = 0;

        if (EVP_Digest(data, n, md, &len, EVP_sha256(), NULL) != 1 || len != sizeof(md))
                abort();   /* cannot happen with the default provider */
        for (size_t i = 0; i < sizeof(md); i++) {
                out[2 * i] = hex[md[i] >> 4];
                out[2 * i + 1] = hex[md[i] & 15];
        }
        out[64] = 0;
}

static int pbkdf2_b64(const char *password, const char *salt, unsigned iterations, char **ret) {
        uint8_t dk[PBKDF2_DKLEN];

        if (PKCS5_PBKDF2_HMAC(password, (int) strlen(password), (const unsigned char *) salt, (int) strlen(salt),
                              (int) iterations, EVP_sha256(), sizeof(dk), dk) != 1)
                return -EIO;
        char *s = base64_encode(dk, sizeof(dk));
        OPENSSL_cleanse(dk, sizeof(dk));
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int crypto_password_hash(const char *password, char **ret) {
        char salt[PBKDF2_SALT_LEN + 1];
        _cleanup_free_ char *dk = NULL;
        size_t i = 0;
        int r;

        if (!password)
                return -EINVAL;
        if (strlen(password) > PASSWORD_MAX_LEN)
                return -E2BIG;

        /* Uniformly distributed alphanumeric salt: rejection sampling of random bytes. */
        while (i < PBKDF2_SALT_LEN) {
                uint8_t b[32];
                if (RAND_bytes(b, sizeof(b)) != 1)
                        return -EIO;
                for (size_t j = 0; j < sizeof(b) && i < PBKDF2_SALT_LEN; j++) {
                        unsigned n = sizeof(salt_chars) - 1;   /* 62 */
                        if (b[j] >= 256 / n * n)
                                continue;
                        salt[i++] = salt_chars[b[j] % n];
                }
        }
        salt[i] = 0;

        r = pbkdf2_b64(password, salt, PBKDF2_DEFAULT_ITERATIONS, &dk);
        if (r < 0)
                return r;

        char *s = NULL;
        if (asprintf(&s, "pbkdf2_sha256$%u$%s$%s", PBKDF2_DEFAULT_ITERATIONS, salt, dk) < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int crypto_password_verify(const char *password, const char *hash) {
        _cleanup_free_ char *copy = NULL, *dk = NULL;
        char *iter_s, *salt, *expected, *end;
        unsigned long iterations;
        int r;

        if (!hash)
                return -EINVAL;
        if (strlen(hash) > 1024)
                return -EINVAL;
        copy = strdup(hash);
        if (!copy)
                return -ENOMEM;

        /* algorithm$iterations$salt$hash */
        iter_s = strchr(copy, '$');
        if (!iter_s)
                return -EINVAL;
        *iter_s++ = 0;
        if (!streq(copy, "pbkdf2_sha256"))
                return -EINVAL;
        salt = strchr(iter_s, '$');
        if (!salt)
                return -EINVAL;
        *salt++ = 0;
        expected = strchr(salt, '$');
        if (!expected)
                return -EINVAL;
        *expected++ = 0;

        if (iter_s[0] < '1' || iter_s[0] > '9')
                return -EINVAL;
        errno = 0;
        iterations = strtoul(iter_s, &end, 10);
        if (errno != 0 || *end != 0 || iterations == 0 || iterations > PBKDF2_MAX_ITERATIONS)
                return -EINVAL;
        if (isempty(salt) || strlen(salt) > PBKDF2_MAX_SALT_LEN)
                return -EINVAL;
        /* Django's pbkdf2_sha256 hash is base64 of a 32-byte key: 44 characters. */
        if (strlen(expected) != 4 * ((PBKDF2_DKLEN + 2) / 3))
                return -EINVAL;

        if (!password || strlen(password) > PASSWORD_MAX_LEN)
                return 0;

        r = pbkdf2_b64(password, salt, (unsigned) iterations, &dk);
        if (r < 0)
                return r;

        return CRYPTO_memcmp(dk, expected, strlen(expected)) == 0;
}

static int key_read_fd(int fd, crypto_key *ret) {
        struct stat st;
        crypto_key k;
        size_t done = 0;

        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if (st.st_mode & 0077)
                return -EPERM;
        if (st.st_size != (off_t) sizeof(k.key))
                return -EINVAL;

        while (done < sizeof(k.key)) {
                ssize_t n = read(fd, k.key + done, sizeof(k.key) - done);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        OPENSSL_cleanse(&k, sizeof(k));
                        return negative_errno();
                }
                if (n == 0) {
                        OPENSSL_cleanse(&k, sizeof(k));
                        return -EINVAL;
                }
                done += (size_t) n;
        }
        *ret = k;
        OPENSSL_cleanse(&k, sizeof(k));
        return 0;
}

/* Write a fresh key to a private temporary file and link(2) it into place: link fails with
 * EEXIST when the key appeared meanwhile, so a key is never overwritten nor seen half written. */
static int key_create(const char *path) {
        _cleanup_free_ char *tmp = NULL;
        uint8_t key[32];
        int r = 0;

        if (asprintf(&tmp, "%s.XXXXXX", path) < 0)
                return -ENOMEM;

        _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (fchmod(fd, 0600) < 0) {
                r = negative_errno();
                goto fail;
        }
        if (RAND_bytes(key, sizeof(key)) != 1) {
                r = -EIO;
                goto fail;
        }
        r = loop_write(fd, key, sizeof(key));
        OPENSSL_cleanse(key, sizeof(key));
        if (r < 0)
                goto fail;
        if (fsync(fd) < 0) {
                r = negative_errno();
                goto fail;
        }
        if (link(tmp, path) < 0) {
                r = errno == EEXIST ? 0 : negative_errno();   /* someone else won: use theirs */
                goto fail;
        }
        (void) unlink(tmp);
        return 0;

fail:
        OPENSSL_cleanse(key, sizeof(key));
        (void) unlink(tmp);
        return r;
}

int crypto_key_load_or_create(const char *path, crypto_key *ret) {
        int r;

        if (isempty(path))
                return -EINVAL;

        for (int attempt = 0; attempt < 2; attempt++) {
                _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
                if (fd >= 0) {
                        r = key_read_fd(fd, ret);
                        if (r == -EPERM)
                                return log_error_errno(r, "Key file %s is accessible by group or others, refusing: %m",
                                                       path);
                        if (r == -EINVAL)
                                return log_error_errno(r, "Key file %s does not hold exactly 32 bytes: %m", path);
                        if (r < 0)
                                return log_error_errno(r, "Failed to read key file %s: %m", path);
                        return 0;
                }
                if (errno != ENOENT)
                        return log_error_errno(negative_errno(), "Failed to open key file %s: %m", path);

                r = key_create(path);
                if (r < 0)
                        return log_error_errno(r, "Failed to create key file %s: %m", path);
        }
        return log_error_errno(-EIO, "Key file %s vanished while creating it: %m", path);
}

int crypto_encrypt(const crypto_key *k, const char *plaintext, char **ret) {
        EVP_CIPHER_CTX *ctx = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_free_ char *b64 = NULL;
        size_t l;
        int n, fin, r = -EIO;

        if (!k || !plaintext)
                return -EINVAL;
        l = strlen(plaintext);
        if (l > SECRET_MAX_LEN)
                return -E2BIG;

        buf = malloc(GCM_NONCE_LEN + l + GCM_TAG_LEN);
        if (!buf)
                return -ENOMEM;
        if (RAND_bytes(buf, GCM_NONCE_LEN) != 1)
                return -EIO;

        ctx = EVP_CIPHER_CTX_new();
        if (!ctx)
                return -ENOMEM;
        if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, GCM_NONCE_LEN, NULL) != 1 ||
            EVP_EncryptInit_ex(ctx, NULL, NULL, k->key, buf) != 1 ||
            EVP_EncryptUpdate(ctx, buf + GCM_NONCE_LEN, &n, (const unsigned char *) plaintext, (int) l) != 1 ||
            EVP_EncryptFinal_ex(ctx, buf + GCM_NONCE_LEN + n, &fin) != 1 ||
            (size_t) (n + fin) != l ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG_LEN, buf + GCM_NONCE_LEN + l) != 1)
                goto finish;

        b64 = base64_encode(buf, GCM_NONCE_LEN + l + GCM_TAG_LEN);
        if (!b64) {
                r = -ENOMEM;
                goto finish;
        }
        char *s = NULL;
        if (asprintf(&s, ENCRYPTED_PREFIX "%s", b64) < 0) {
                r = -ENOMEM;
                goto finish;
        }
        *ret = s;
        r = 0;

finish:
        OPENSSL_cleanse(buf, GCM_NONCE_LEN + l + GCM_TAG_LEN);
        EVP_CIPHER_CTX_free(ctx);
        return r;
}

int crypto_decrypt(const crypto_key *k, const char *ciphertext, char **ret) {
        EVP_CIPHER_CTX *ctx = NULL;
        _cleanup_free_ uint8_t *raw = NULL;
        _cleanup_free_ char *out = NULL;
        const char *b64;
        size_t raw_size, l;
        int n, fin, r;

        if (!k || !ciphertext)
                return -EINVAL;
        b64 = startswith(ciphertext, ENCRYPTED_PREFIX);
        if (!b64)
                return -EINVAL;
        if (strlen(b64) > 4 * ((SECRET_MAX_LEN + GCM_NONCE_LEN + GCM_TAG_LEN + 2) / 3))
                return -E2BIG;

        r = base64_decode(b64, &raw, &raw_size);
        if (r < 0)
                return r;
        if (raw_size < GCM_NONCE_LEN + GCM_TAG_LEN)
                return -EINVAL;
        l = raw_size - GCM_NONCE_LEN - GCM_TAG_LEN;

        out = malloc(l + 1);
        if (!out)
                return -ENOMEM;

        ctx = EVP_CIPHER_CTX_new();
        if (!ctx)
                return -ENOMEM;
        r = -EIO;
        if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, GCM_NONCE_LEN, NULL) != 1 ||
            EVP_DecryptInit_ex(ctx, NULL, NULL, k->key, raw) != 1 ||
            EVP_DecryptUpdate(ctx, (unsigned char *) out, &n, raw + GCM_NONCE_LEN, (int) l) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG_LEN, raw + GCM_NONCE_LEN + l) != 1)
                goto finish;
        if (EVP_DecryptFinal_ex(ctx, (unsigned char *) out + n, &fin) != 1) {
                r = -EBADMSG;   /* wrong key or tampered ciphertext */
                OPENSSL_cleanse(out, l);
                goto finish;
        }
        out[l] = 0;
        if (strlen(out) != l) {     /* we only ever encrypt strings */
                r = -EBADMSG;
                OPENSSL_cleanse(out, l);
                goto finish;
        }
        *ret = TAKE_PTR(out);
        r = 0;

finish:
        EVP_CIPHER_CTX_free(ctx);
        return r;
}
