/* tls-ca.c: a private EC P-256 certificate authority for a controller that has no certificate
 * configured: creates (or reuses) <dir>/ca.{crt,key} and a server certificate signed by it. */
#include "drover/tls-ca.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "drover/log.h"
#include "drover/util.h"

#define CA_DAYS 3650
#define SERVER_DAYS 730
#define RENEW_BEFORE_SECONDS (30L * 24 * 3600)   /* re-issue a server cert expiring within 30 days */
#define PEM_MAX_SIZE (64 * 1024)
#define MAX_NAME_LEN 253
#define MAX_EXTRA_NAMES 64

static void evp_pkey_freep(EVP_PKEY **p) { EVP_PKEY_free(*p); }
static void x509_freep(X509 **p) { X509_free(*p); }
static void bio_freep(BIO **p) { BIO_free(*p); }
static void general_names_freep(GENERAL_NAMES **p) { GENERAL_NAMES_free(*p); }
#define _cleanup_pkey_ _cleanup_(evp_pkey_freep)
#define _cleanup_x509_ _cleanup_(x509_freep)
#define _cleanup_bio_ _cleanup_(bio_freep)
#define _cleanup_gens_ _cleanup_(general_names_freep)

/* One subjectAltName the server certificate must carry. */
typedef struct san {
        bool ip;
        char name[MAX_NAME_LEN + 1];
        unsigned char addr[16];
        size_t addr_len;
} san;

static void log_openssl_errors(void) {
        unsigned long e;
        char buf[256];
        while ((e = ERR_get_error()) != 0) {
                ERR_error_string_n(e, buf, sizeof(buf));
                log_debug("OpenSSL: %s", buf);
        }
}

static int mkdir_parents_private(const char *dir) {
        _cleanup_free_ char *p = strdup(dir);
        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(p, 0755) < 0 && errno != EEXIST)
                        return negative_errno();
                *s = '/';
        }
        if (mkdir(p, 0700) < 0) {
                if (errno != EEXIST)
                        return negative_errno();
                struct stat st;
                if (stat(p, &st) < 0)
                        return negative_errno();
                if (!S_ISDIR(st.st_mode))
                        return -ENOTDIR;
        }
        return 0;
}

static bool file_exists(const char *path) {
        return access(path, F_OK) == 0;
}

static int write_pem_key(const char *path, EVP_PKEY *key) {
        _cleanup_bio_ BIO *b = BIO_new(BIO_s_mem());
        char *data;
        long n;

        /* PKCS#8 ("BEGIN PRIVATE KEY"), unencrypted: readable by GnuTLS (libmicrohttpd). */
        if (!b || PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) != 1)
                return -EIO;
        n = BIO_get_mem_data(b, &data);
        if (n <= 0)
                return -EIO;
        int r = write_file_atomic(path, data, (size_t) n, 0600);
        OPENSSL_cleanse(data, (size_t) n);
        return r;
}

static int write_pem_cert(const char *path, X509 *x) {
        _cleanup_bio_ BIO *b = BIO_new(BIO_s_mem());
        char *data;
        long n;

        if (!b || PEM_write_bio_X509(b, x) != 1)
                return -EIO;
        n = BIO_get_mem_data(b, &data);
        if (n <= 0)
                return -EIO;
        return write_file_atomic(path, data, (size_t) n, 0644);
}

static int read_pem_bio(const char *path, BIO **ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        struct stat st;
        char buf[PEM_MAX_SIZE];
        size_t done = 0;

        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if (st.st_size > PEM_MAX_SIZE)
                return -EFBIG;
        for (;;) {
                ssize_t n = read(fd, buf + done, sizeof(buf) - done);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        break;
                done += (size_t) n;
                if (done == sizeof(buf))
                        return -EFBIG;
        }
        BIO *b = BIO_new(BIO_s_mem());
        if (!b || BIO_write(b, buf, (int) done) != (int) done) {
                BIO_free(b);
                OPENSSL_cleanse(buf, done);
                return -ENOMEM;
        }
        OPENSSL_cleanse(buf, done);
        *ret = b;
        return 0;
}

static int load_cert(const char *path, X509 **ret) {
        _cleanup_bio_ BIO *b = NULL;
        int r = read_pem_bio(path, &b);
        if (r < 0)
                return r;
        X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
        if (!x) {
                log_openssl_errors();
                return -EBADMSG;
        }
        *ret = x;
        return 0;
}

static int load_key(const char *path, EVP_PKEY **ret) {
        _cleanup_bio_ BIO *b = NULL;
        struct stat st;

        if (stat(path, &st) < 0)
                return negative_errno();
        if (st.st_mode & 0077)
                log_warning("Private key %s is readable by group or others.", path);
        int r = read_pem_bio(path, &b);
        if (r < 0)
                return r;
        EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
        if (!k) {
                log_openssl_errors();
                return -EBADMSG;
        }
        *ret = k;
        return 0;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value) {
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
        if (!ext)
                return -EIO;
        int ok = X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
        return ok ? 0 : -EIO;
}

/* A new certificate skeleton: v3, random positive 128-bit serial, validity, subject CN. */
static int cert_new(const char *cn, long days, EVP_PKEY *key, X509 **ret) {
        _cleanup_x509_ X509 *x = X509_new();
        BIGNUM *bn = NULL;
        int r = -EIO;

        if (!x)
                return -ENOMEM;
        if (X509_set_version(x, X509_VERSION_3) != 1)
                return -EIO;

        bn = BN_new();
        if (!bn)
                return -ENOMEM;
        if (BN_rand(bn, 128, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
            !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
                goto finish;

        if (!X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||   /* tolerate a little clock skew */
            !X509_time_adj_ex(X509_getm_notAfter(x), (int) days, 0, NULL))
                goto finish;

        X509_NAME *name = X509_get_subject_name(x);
        if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *) cn, -1, -1, 0) != 1)
                goto finish;
        if (X509_set_pubkey(x, key) != 1)
                goto finish;

        *ret = TAKE_PTR(x);
        r = 0;
finish:
        BN_free(bn);
        return r;
}

static int ca_create(EVP_PKEY *key, X509 **ret) {
        _cleanup_x509_ X509 *x = NULL;
        int r;

        r = cert_new("drover controller CA", CA_DAYS, key, &x);
        if (r < 0)
                return r;
        if (X509_set_issuer_name(x, X509_get_subject_name(x)) != 1)
                return -EIO;
        if (add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
            add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
            add_ext(x, x, NID_subject_key_identifier, "hash") < 0 ||
            add_ext(x, x, NID_authority_key_identifier, "keyid:always") < 0)
                return -EIO;
        if (X509_sign(x, key, EVP_sha256()) <= 0)
                return -EIO;
        *ret = TAKE_PTR(x);
        return 0;
}

static int server_create(const char *cn, const san *sans, size_t n_sans, EVP_PKEY *key, X509 *ca,
                         EVP_PKEY *ca_key, X509 **ret) {
        _cleanup_x509_ X509 *x = NULL;
        _cleanup_gens_ GENERAL_NAMES *gens = NULL;
        int r;

        r = cert_new(cn, SERVER_DAYS, key, &x);
        if (r < 0)
                return r;
        if (X509_set_issuer_name(x, X509_get_subject_name(ca)) != 1)
                return -EIO;
        if (add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
            add_ext(x, ca, NID_key_usage, "critical,digitalSignature") < 0 ||
            add_ext(x, ca, NID_ext_key_usage, "serverAuth") < 0 ||
            add_ext(x, ca, NID_subject_key_identifier, "hash") < 0 ||
            add_ext(x, ca, NID_authority_key_identifier, "keyid:always") < 0)
                return -EIO;

        gens = sk_GENERAL_NAME_new_null();
        if (!gens)
                return -ENOMEM;
        for (size_t i = 0; i < n_sans; i++) {
                GENERAL_NAME *g = GENERAL_NAME_new();
                if (!g)
                        return -ENOMEM;
                ASN1_STRING *s = ASN1_STRING_type_new(sans[i].ip ? V_ASN1_OCTET_STRING : V_ASN1_IA5STRING);
                if (!s || (sans[i].ip ? ASN1_STRING_set(s, sans[i].addr, (int) sans[i].addr_len)
                                      : ASN1_STRING_set(s, sans[i].name, -1)) != 1) {
                        ASN1_STRING_free(s);
                        GENERAL_NAME_free(g);
                        return -ENOMEM;
                }
                GENERAL_NAME_set0_value(g, sans[i].ip ? GEN_IPADD : GEN_DNS, s);
                if (sk_GENERAL_NAME_push(gens, g) <= 0) {
                        GENERAL_NAME_free(g);
                        return -ENOMEM;
                }
        }
        if (X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1)
                return -EIO;

        if (X509_sign(x, ca_key, EVP_sha256()) <= 0)
                return -EIO;
        *ret = TAKE_PTR(x);
        return 0;
}

static bool cert_has_san(X509 *x, const san *want) {
        _cleanup_gens_ GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
        if (!gens)
                return false;
        for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
                const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
                if (want->ip && g->type == GEN_IPADD) {
                        const ASN1_OCTET_STRING *s = g->d.iPAddress;
                        if ((size_t) ASN1_STRING_length(s) == want->addr_len &&
                            memcmp(ASN1_STRING_get0_data(s), want->addr, want->addr_len) == 0)
                                return true;
                } else if (!want->ip && g->type == GEN_DNS) {
                        const ASN1_IA5STRING *s = g->d.dNSName;
                        if ((size_t) ASN1_STRING_length(s) == strlen(want->name) &&
                            strncasecmp((const char *) ASN1_STRING_get0_data(s), want->name, strlen(want->name)) == 0)
                                return true;
                }
        }
        return false;
}

/* Is the existing server certificate still good: signed by this CA, matching its key, not about
 * to expire, and carrying every wanted name? */
static bool server_cert_usable(X509 *x, EVP_PKEY *key, X509 *ca, const san *sans, size_t n_sans) {
        EVP_PKEY *ca_pub = X509_get0_pubkey(ca);
        time_t soon = time(NULL) + RENEW_BEFORE_SECONDS;

        if (!ca_pub || X509_verify(x, ca_pub) != 1) {
                ERR_clear_error();
                return false;
        }
        if (X509_check_private_key(x, key) != 1) {
                ERR_clear_error();
                return false;
        }
        if (X509_cmp_time(X509_get0_notAfter(x), &soon) <= 0)
                return false;
        for (size_t i = 0; i < n_sans; i++)
                if (!cert_has_san(x, &sans[i]))
                        return false;
        return true;
}

static bool valid_dns_name(const char *s) {
        size_t l = strlen(s);
        if (l == 0 || l > MAX_NAME_LEN)
                return false;
        for (const char *p = s; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      *p == '-' || *p == '.' || *p == '_' || (*p == '*' && p == s && p[1] == '.')))
                        return false;
        return true;
}

static int san_add(san *sans, size_t *n, size_t max, const char *name) {
        san s = {};

        if (inet_pton(AF_INET, name, s.addr) == 1) {
                s.ip = true;
                s.addr_len = 4;
        } else if (inet_pton(AF_INET6, name, s.addr) == 1) {
                s.ip = true;
                s.addr_len = 16;
        } else if (!valid_dns_name(name))
                return -EINVAL;
        if (strlen(name) > MAX_NAME_LEN)
                return -EINVAL;
        strcpy(s.name, name);

        for (size_t i = 0; i < *n; i++)
                if (sans[i].ip == s.ip && (s.ip ? sans[i].addr_len == s.addr_len &&
                                                          memcmp(sans[i].addr, s.addr, s.addr_len) == 0
                                                : strcasecmp(sans[i].name, s.name) == 0))
                        return 0;   /* duplicate */
        if (*n >= max)
                return -E2BIG;
        sans[(*n)++] = s;
        return 0;
}

static int ensure_ca(const char *ca_path, const char *ca_key_path, X509 **ret_ca, EVP_PKEY **ret_key,
                     bool *ret_new) {
        _cleanup_pkey_ EVP_PKEY *key = NULL;
        _cleanup_x509_ X509 *ca = NULL;
        bool have_crt = file_exists(ca_path), have_key = file_exists(ca_key_path), created = false;
        int r;

        if (have_crt && !have_key)
                return log_error_errno(-ENOKEY, "CA certificate %s exists but its key %s is missing: %m", ca_path,
                                       ca_key_path);
        if (have_key) {
                r = load_key(ca_key_path, &key);
                if (r < 0)
                        return log_error_errno(r, "Failed to load CA key %s: %m", ca_key_path);
        } else {
                key = EVP_EC_gen("P-256");
                if (!key) {
                        log_openssl_errors();
                        return log_error_errno(-EIO, "Failed to generate CA key: %m");
                }
                r = write_pem_key(ca_key_path, key);
                if (r < 0)
                        return log_error_errno(r, "Failed to write %s: %m", ca_key_path);
        }

        if (have_crt) {
                r = load_cert(ca_path, &ca);
                if (r < 0)
                        return log_error_errno(r, "Failed to load CA certificate %s: %m", ca_path);
                if (X509_check_private_key(ca, key) != 1) {
                        log_openssl_errors();
                        return log_error_errno(-EINVAL, "CA certificate %s does not match key %s: %m", ca_path,
                                               ca_key_path);
                }
        } else {
                r = ca_create(key, &ca);
                if (r < 0) {
                        log_openssl_errors();
                        return log_error_errno(r, "Failed to create CA certificate: %m");
                }
                r = write_pem_cert(ca_path, ca);
                if (r < 0)
                        return log_error_errno(r, "Failed to write %s: %m", ca_path);
                created = true;
                log_info("Created certificate authority %s.", ca_path);
        }

        *ret_ca = TAKE_PTR(ca);
        *ret_key = TAKE_PTR(key);
        *ret_new = created;
        return 0;
}

int tls_ca_ensure(const char *dir, char *const *extra_names, char **ret_cert_path, char **ret_key_path,
                  char **ret_ca_path) {
        _cleanup_free_ char *ca_path = NULL, *ca_key_path = NULL, *cert_path = NULL, *key_path = NULL;
        _cleanup_pkey_ EVP_PKEY *ca_key = NULL, *key = NULL;
        _cleanup_x509_ X509 *ca = NULL, *cert = NULL;
        san sans[MAX_EXTRA_NAMES + 8];
        size_t n_sans = 0;
        char hostname[HOST_NAME_MAX + 1] = {};
        bool ca_new = false, reuse = false;
        int r;

        if (isempty(dir))
                return -EINVAL;

        /* Wanted names first, so a bad configured name fails before anything is written. */
        (void) san_add(sans, &n_sans, ELEMENTSOF(sans), "localhost");
        if (gethostname(hostname, sizeof(hostname) - 1) == 0 && valid_dns_name(hostname))
                (void) san_add(sans, &n_sans, ELEMENTSOF(sans), hostname);
        (void) san_add(sans, &n_sans, ELEMENTSOF(sans), "127.0.0.1");
        (void) san_add(sans, &n_sans, ELEMENTSOF(sans), "::1");
        for (size_t i = 0; extra_names && extra_names[i]; i++) {
                r = san_add(sans, &n_sans, ELEMENTSOF(sans), extra_names[i]);
                if (r == -E2BIG)
                        return log_error_errno(r, "Too many server names (at most %d): %m", MAX_EXTRA_NAMES);
                if (r < 0)
                        return log_error_errno(r, "Invalid server name '%s': %m", extra_names[i]);
        }

        if (asprintf(&ca_path, "%s/ca.crt", dir) < 0 || asprintf(&ca_key_path, "%s/ca.key", dir) < 0 ||
            asprintf(&cert_path, "%s/server.crt", dir) < 0 || asprintf(&key_path, "%s/server.key", dir) < 0)
                return log_oom();

        r = mkdir_parents_private(dir);
        if (r < 0)
                return log_error_errno(r, "Failed to create directory %s: %m", dir);

        r = ensure_ca(ca_path, ca_key_path, &ca, &ca_key, &ca_new);
        if (r < 0)
                return r;

        if (!ca_new && file_exists(cert_path) && file_exists(key_path)) {
                if (load_cert(cert_path, &cert) >= 0 && load_key(key_path, &key) >= 0 &&
                    server_cert_usable(cert, key, ca, sans, n_sans))
                        reuse = true;
                else
                        log_info("Re-issuing server certificate %s.", cert_path);
        }

        if (!reuse) {
                EVP_PKEY_free(TAKE_PTR(key));
                X509_free(TAKE_PTR(cert));

                key = EVP_EC_gen("P-256");
                if (!key) {
                        log_openssl_errors();
                        return log_error_errno(-EIO, "Failed to generate server key: %m");
                }
                const char *cn = strlen(hostname) > 0 && strlen(hostname) <= 64 ? hostname : "localhost";
                r = server_create(cn, sans, n_sans, key, ca, ca_key, &cert);
                if (r < 0) {
                        log_openssl_errors();
                        return log_error_errno(r, "Failed to create server certificate: %m");
                }
                /* Key first: a crash in between leaves a mismatching pair, which is re-issued next time. */
                r = write_pem_key(key_path, key);
                if (r < 0)
                        return log_error_errno(r, "Failed to write %s: %m", key_path);
                r = write_pem_cert(cert_path, cert);
                if (r < 0)
                        return log_error_errno(r, "Failed to write %s: %m", cert_path);
                log_info("Issued server certificate %s.", cert_path);
        }

        if (ret_cert_path)
                *ret_cert_path = TAKE_PTR(cert_path);
        if (ret_key_path)
                *ret_key_path = TAKE_PTR(key_path);
        if (ret_ca_path)
                *ret_ca_path = TAKE_PTR(ca_path);
        return 0;
}
