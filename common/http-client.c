/* http-client.c: the HTTPS client of the agent and droverctl, on libcurl easy handles. TLS peer
 * and host verification are always on; one handle per client keeps its connection alive. */
#include "drover/http-client.h"

#include <ctype.h>
#include <pthread.h>
#include <strings.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "drover/log.h"

#define RESPONSE_MAX_SIZE (64U * 1024U * 1024U)
#define HEADER_VALUE_MAX 4096
#define CONNECT_TIMEOUT_MS 10000L
#define BASE_URL_MAX 2048
#define PATH_MAX_LEN 8192

struct http_client {
        CURL *curl;
        char *base_url;
        char *ca_file;
        char *authorization;    /* full "Authorization: ..." header line; secret, never logged */
        long timeout_ms;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;

static void curl_init_once(void) {
        curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

void http_response_clear(http_response *r) {
        if (!r)
                return;
        free(r->body);
        if (r->json)
                json_decref(r->json);
        free(r->retry_after);
        free(r->location);
        memset(r, 0, sizeof(*r));
}

static void free_secret(char *s) {
        if (!s)
                return;
        OPENSSL_cleanse(s, strlen(s));
        free(s);
}

int http_client_new(const char *base_url, const char *ca_file, http_client **ret) {
        http_client *c;

        if (isempty(base_url) || strlen(base_url) > BASE_URL_MAX)
                return -EINVAL;
        if (!startswith(base_url, "https://") && !startswith(base_url, "http://"))
                return -EINVAL;

        (void) pthread_once(&curl_once, curl_init_once);
        if (curl_init_result != CURLE_OK)
                return -EIO;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->base_url = strdup(base_url);
        if (!c->base_url)
                goto oom;
        /* "https://host:port/" + "/api/..." must not give "//api" */
        size_t l = strlen(c->base_url);
        while (l > 0 && c->base_url[l - 1] == '/')
                c->base_url[--l] = 0;
        if (ca_file) {
                c->ca_file = strdup(ca_file);
                if (!c->ca_file)
                        goto oom;
        }
        c->curl = curl_easy_init();
        if (!c->curl)
                goto oom;
        *ret = c;
        return 0;
oom:
        http_client_free(c);
        return -ENOMEM;
}

void http_client_free(http_client *c) {
        if (!c)
                return;
        if (c->curl)
                curl_easy_cleanup(c->curl);
        free(c->base_url);
        free(c->ca_file);
        free_secret(c->authorization);
        free(c);
}

int http_client_set_authorization(http_client *c, const char *value) {
        char *h = NULL;

        if (value) {
                if (strpbrk(value, "\r\n"))
                        return -EINVAL;
                if (asprintf(&h, "Authorization: %s", value) < 0)
                        return -ENOMEM;
        }
        free_secret(c->authorization);
        c->authorization = h;
        return 0;
}

int http_client_set_basic_auth(http_client *c, const char *user, const char *password) {
        _cleanup_free_ char *plain = NULL, *b64 = NULL, *value = NULL;
        size_t l;
        int r;

        if (!user || !password || strchr(user, ':'))
                return -EINVAL;
        if (asprintf(&plain, "%s:%s", user, password) < 0)
                return -ENOMEM;
        l = strlen(plain);
        if (l > 65536) {
                r = -E2BIG;
                goto finish;
        }
        b64 = malloc(4 * ((l + 2) / 3) + 1);
        if (!b64) {
                r = -ENOMEM;
                goto finish;
        }
        EVP_EncodeBlock((unsigned char *) b64, (const unsigned char *) plain, (int) l);
        if (asprintf(&value, "Basic %s", b64) < 0) {
                value = NULL;
                r = -ENOMEM;
                goto finish;
        }
        r = http_client_set_authorization(c, value);
finish:
        if (plain)
                OPENSSL_cleanse(plain, strlen(plain));
        if (b64)
                OPENSSL_cleanse(b64, strlen(b64));
        if (value)
                OPENSSL_cleanse(value, strlen(value));
        return r;
}

void http_client_set_timeout(http_client *c, long timeout_ms) {
        c->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
}

/* Transfer state shared by the callbacks of one request. */
typedef struct transfer {
        http_response *resp;
        char *buf;
        size_t size, allocated;
        bool too_big;
        /* streaming */
        http_data_cb on_data;
        void *userdata;
        int cb_result;
        CURL *curl;
} transfer;

static size_t body_cb(char *data, size_t size, size_t nmemb, void *userdata) {
        transfer *t = userdata;
        size_t n = size * nmemb;

        if (n > RESPONSE_MAX_SIZE || t->size + n > RESPONSE_MAX_SIZE) {
                t->too_big = true;
                return 0;   /* makes curl fail with CURLE_WRITE_ERROR */
        }
        if (t->size + n + 1 > t->allocated) {
                size_t a = MAX(t->allocated * 2, t->size + n + 1);
                a = MIN(a, (size_t) RESPONSE_MAX_SIZE + 1);
                char *p = realloc(t->buf, a);
                if (!p)
                        return 0;
                t->buf = p;
                t->allocated = a;
        }
        memcpy(t->buf + t->size, data, n);
        t->size += n;
        t->buf[t->size] = 0;
        return n;
}

static size_t stream_cb(char *data, size_t size, size_t nmemb, void *userdata) {
        transfer *t = userdata;
        size_t n = size * nmemb;
        long status = 0;

        (void) curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
        if (status < 200 || status > 299)
                return n;   /* error bodies are not events: drop them */
        if (n == 0)
                return 0;
        t->cb_result = t->on_data(data, n, t->userdata);
        return t->cb_result != 0 ? 0 : n;
}

static char *header_value(const char *line, size_t n, const char *name) {
        size_t l = strlen(name);

        if (n <= l || strncasecmp(line, name, l) != 0 || line[l] != ':')
                return NULL;
        line += l + 1;
        n -= l + 1;
        while (n > 0 && (*line == ' ' || *line == '\t')) {
                line++;
                n--;
        }
        while (n > 0 && isspace((unsigned char) line[n - 1]))
                n--;
        if (n > HEADER_VALUE_MAX)
                return NULL;
        return strndup(line, n);
}

static size_t header_cb(char *data, size_t size, size_t nmemb, void *userdata) {
        transfer *t = userdata;
        size_t n = size * nmemb;
        char *v;

        if (!t->resp)
                return n;
        /* A new status line (e.g. after "100 Continue"): forget earlier headers. */
        if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
                free(t->resp->retry_after);
                free(t->resp->location);
                t->resp->retry_after = t->resp->location = NULL;
                return n;
        }
        if ((v = header_value(data, n, "Retry-After"))) {
                free(t->resp->retry_after);
                t->resp->retry_after = v;
        } else if ((v = header_value(data, n, "Location"))) {
                free(t->resp->location);
                t->resp->location = v;
        }
        return n;
}

static int curl_code_to_errno(CURLcode code) {
        switch (code) {
        case CURLE_OK:
                return 0;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                return -EHOSTUNREACH;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        case CURLE_URL_MALFORMAT:
        case CURLE_UNSUPPORTED_PROTOCOL:
                return -EINVAL;
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_ISSUER_ERROR:
                return -EPROTO;
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
                return -ECONNRESET;
        case CURLE_ABORTED_BY_CALLBACK:
                return -ECANCELED;
        default:
                return -EIO;
        }
}

static char *build_url(http_client *c, const char *path) {
        if (!path || strlen(path) > PATH_MAX_LEN || strpbrk(path, " \r\n"))
                return NULL;
        /* An absolute URL is accepted only on our own server (e.g. a "next" link). */
        const char *rest = startswith(path, c->base_url);
        if (rest && (*rest == '/' || *rest == 0))
                return strdup(path);
        if (path[0] != '/')
                return NULL;
        char *u = NULL;
        if (asprintf(&u, "%s%s", c->base_url, path) < 0)
                return NULL;
        return u;
}

/* Options common to every request; the handle is reset first so nothing leaks between
 * requests (curl_easy_reset keeps live connections). */
static int setup_common(http_client *c, const char *path, struct curl_slist **headers, char *errbuf) {
        _cleanup_free_ char *url = build_url(c, path);
        if (!url)
                return -EINVAL;

        curl_easy_reset(c->curl);

        if (curl_easy_setopt(c->curl, CURLOPT_URL, url) != CURLE_OK)
                return -EINVAL;
        (void) curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, errbuf);
        (void) curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
        (void) curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "https,http");
        (void) curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, 1L);
        (void) curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, 2L);
        if (c->ca_file && curl_easy_setopt(c->curl, CURLOPT_CAINFO, c->ca_file) != CURLE_OK)
                return -EINVAL;
        (void) curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
        (void) curl_easy_setopt(c->curl, CURLOPT_FOLLOWLOCATION, 0L);
        (void) curl_easy_setopt(c->curl, CURLOPT_TCP_KEEPALIVE, 1L);
        (void) curl_easy_setopt(c->curl, CURLOPT_TCP_KEEPIDLE, 30L);
        (void) curl_easy_setopt(c->curl, CURLOPT_TCP_KEEPINTVL, 10L);
        (void) curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "drover/" DROVER_VERSION);
        (void) curl_easy_setopt(c->curl, CURLOPT_ACCEPT_ENCODING, NULL);

        struct curl_slist *h = *headers;
        if (c->authorization) {
                h = curl_slist_append(h, c->authorization);
                if (!h)
                        return -ENOMEM;
                *headers = h;
        }
        h = curl_slist_append(h, "Expect:");   /* no 100-continue round trip */
        if (!h)
                return -ENOMEM;
        *headers = h;
        return 0;
}

static void fill_error(http_response *resp, CURLcode code, const char *errbuf) {
        snprintf(resp->error, sizeof(resp->error), "%s", !isempty(errbuf) ? errbuf : curl_easy_strerror(code));
}

int http_client_request_raw(http_client *c, const char *method, const char *path, const char *content_type,
                            const void *body, size_t body_size, http_response *ret) {
        struct curl_slist *headers = NULL;
        char errbuf[CURL_ERROR_SIZE] = {};
        transfer t = { .resp = ret };
        CURLcode code;
        int r;

        memset(ret, 0, sizeof(*ret));

        if (isempty(method) || strpbrk(method, " \r\n") || strlen(method) > 16) {
                snprintf(ret->error, sizeof(ret->error), "Invalid HTTP method");
                return -EINVAL;
        }
        if (body_size > RESPONSE_MAX_SIZE) {
                snprintf(ret->error, sizeof(ret->error), "Request body too large");
                return -E2BIG;
        }
        if (content_type && strpbrk(content_type, "\r\n")) {
                snprintf(ret->error, sizeof(ret->error), "Invalid content type");
                return -EINVAL;
        }

        r = setup_common(c, path, &headers, errbuf);
        if (r < 0) {
                snprintf(ret->error, sizeof(ret->error), "Invalid request: %s", strerror(-r));
                goto finish;
        }

        headers = curl_slist_append(headers, "Accept: application/json");
        if (body && content_type) {
                _cleanup_free_ char *ct = NULL;
                if (asprintf(&ct, "Content-Type: %s", content_type) < 0) {
                        r = -ENOMEM;
                        goto finish;
                }
                headers = curl_slist_append(headers, ct);
        }
        if (!headers) {
                r = -ENOMEM;
                goto finish;
        }

        if (streq(method, "GET"))
                (void) curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
        else if (streq(method, "HEAD"))
                (void) curl_easy_setopt(c->curl, CURLOPT_NOBODY, 1L);
        else {
                if (!streq(method, "POST"))
                        (void) curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
                if (body || streq(method, "POST")) {
                        (void) curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) (body ? body_size : 0));
                        (void) curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body ? body : "");
                }
        }

        (void) curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
        (void) curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, c->timeout_ms);
        (void) curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, body_cb);
        (void) curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &t);
        (void) curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, header_cb);
        (void) curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, &t);
        (void) curl_easy_setopt(c->curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) RESPONSE_MAX_SIZE);

        code = curl_easy_perform(c->curl);
        if (t.too_big || code == CURLE_FILESIZE_EXCEEDED) {
                snprintf(ret->error, sizeof(ret->error), "Response body exceeds %u bytes", RESPONSE_MAX_SIZE);
                r = -EFBIG;
                goto finish;
        }
        if (code != CURLE_OK) {
                fill_error(ret, code, errbuf);
                r = curl_code_to_errno(code);
                goto finish;
        }

        (void) curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &ret->status);
        if (!t.buf) {
                t.buf = strdup("");
                if (!t.buf) {
                        r = -ENOMEM;
                        goto finish;
                }
        }
        ret->body = TAKE_PTR(t.buf);
        ret->body_size = t.size;

        char *ctype = NULL;
        (void) curl_easy_getinfo(c->curl, CURLINFO_CONTENT_TYPE, &ctype);
        if (ret->body_size > 0 && ctype && strcasestr(ctype, "json"))
                ret->json = json_loadb(ret->body, ret->body_size, 0, NULL);
        r = 0;

finish:
        if (r < 0) {
                int saved_status_error = r;
                char saved[sizeof(ret->error)];
                memcpy(saved, ret->error, sizeof(saved));
                http_response_clear(ret);
                memcpy(ret->error, saved, sizeof(saved));
                if (isempty(ret->error))
                        snprintf(ret->error, sizeof(ret->error), "%s", strerror(-saved_status_error));
        }
        free(t.buf);
        curl_slist_free_all(headers);
        /* The handle must not keep pointers into this stack frame. */
        (void) curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, NULL);
        (void) curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
        (void) curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, NULL);
        (void) curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, NULL);
        (void) curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, NULL);
        return r;
}

int http_client_request(http_client *c, const char *method, const char *path, const json_t *body,
                        http_response *ret) {
        _cleanup_free_ char *s = NULL;

        if (body) {
                s = json_dumps(body, JSON_COMPACT);
                if (!s) {
                        memset(ret, 0, sizeof(*ret));
                        snprintf(ret->error, sizeof(ret->error), "Failed to serialize request body");
                        return -ENOMEM;
                }
        }
        return http_client_request_raw(c, method, path, s ? "application/json" : NULL, s, s ? strlen(s) : 0, ret);
}

int http_client_stream(http_client *c, const char *path, http_data_cb on_data, void *userdata,
                       long *ret_status) {
        struct curl_slist *headers = NULL;
        char errbuf[CURL_ERROR_SIZE] = {};
        transfer t = { .on_data = on_data, .userdata = userdata, .curl = c->curl };
        CURLcode code;
        long status = 0;
        int r;

        if (!on_data)
                return -EINVAL;

        r = setup_common(c, path, &headers, errbuf);
        if (r < 0)
                goto finish;
        headers = curl_slist_append(headers, "Accept: text/event-stream, application/json");
        if (!headers) {
                r = -ENOMEM;
                goto finish;
        }

        (void) curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
        (void) curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
        (void) curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, 0L);   /* a stream may last forever */
        (void) curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, stream_cb);
        (void) curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &t);

        code = curl_easy_perform(c->curl);
        (void) curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
        if (code == CURLE_WRITE_ERROR && t.cb_result != 0)
                r = t.cb_result < 0 ? t.cb_result : 0;   /* stopped by the caller */
        else if (code != CURLE_OK) {
                r = curl_code_to_errno(code);
                log_debug("Stream %s failed: %s", path, !isempty(errbuf) ? errbuf : curl_easy_strerror(code));
        } else
                r = 0;

finish:
        curl_slist_free_all(headers);
        (void) curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, NULL);
        (void) curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
        (void) curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, NULL);
        if (r >= 0 && ret_status)
                *ret_status = status;
        return r;
}
