/* http-server.c: the controller's HTTPS server on libmicrohttpd (a thread per connection).
 * Accumulates request bodies up to the configured limits, routes over the AWX, agent and stream
 * route tables, authenticates (Basic, user Bearer tokens, node secrets), and adds AWX's product
 * headers to every answer. Handlers never see libmicrohttpd. A database failure (disk full,
 * read-only, locked, I/O error) is answered 503 with Retry-After instead of 500. Also home of the one
 * injected test fault, DROVER_TEST_DROP_EVENT_REPLIES (docs/testing.md). */
#include <ctype.h>
#include <inttypes.h>
#include <netdb.h>
#include <strings.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <microhttpd.h>
#include <openssl/evp.h>

#include <jansson.h>
#include "drover/json-util.h"

#include "drover/crypto.h"
#include "drover/log.h"
#include "drover/util.h"
#include "http-server.h"

#define AWX_PRODUCT_NAME "AWX"
#define AWX_PRODUCT_VERSION "21.14.0"
#define STREAM_BLOCK_SIZE 4096
#define CONNECTION_TIMEOUT_SEC 120
#define MAX_QUERY_ARGS 256
#define MAX_AUTH_HEADER 8192
#define PASSWORD_CACHE_SIZE 32
#define PASSWORD_CACHE_USEC (300 * USEC_PER_SEC)
#define PEM_MAX_SIZE (1024 * 1024)
#define DRAIN_MAX ((uint64_t) 64 * 1024 * 1024)   /* an oversized body is read and dropped up to this much more */

#define DROP_EVENT_REPLIES_ENV "DROVER_TEST_DROP_EVENT_REPLIES"
#define EVENTS_ROUTE "/api/agent/v1/jobs/%/events"
#define STORAGE_RETRY_AFTER "5"

struct http_server {
        controller *c;
        struct MHD_Daemon *daemon;
        char *cert_pem, *key_pem;
        char hostname[256];
        /* test hook (docs/testing.md): events uploads number drop_first..drop_last (counted from 1
         * over the successful uploads since start) are committed, then their connection is closed
         * without an answer. 0 = off (the default: only DROVER_TEST_DROP_EVENT_REPLIES enables it). */
        uint64_t drop_first, drop_last;
        uint64_t n_event_uploads;            /* under drop_lock */
        pthread_mutex_t drop_lock;
};

/* Errors of the database (or the disk under it) that go away by themselves or once an operator
 * acts: the client should retry later rather than give up. */

/* Per connection-request state (MHD's con_cls). */
typedef struct request_state {
        char *body;
        size_t size, allocated;
        uint64_t limit;
        bool too_big;
        uint64_t drained;            /* bytes read and dropped after the limit was passed */
        uint64_t start_usec;
} request_state;

/* A cache of recent successful Basic verifications (pbkdf2 is deliberately slow): the SHA-256 of
 * username, password and the stored hash; changing the password changes the stored hash. */
static struct {
        char key[65];
        uint64_t until;
} password_cache[PASSWORD_CACHE_SIZE];
static unsigned password_cache_next;
static pthread_mutex_t password_cache_lock = PTHREAD_MUTEX_INITIALIZER;

static void request_clear(http_request *req) {
        for (size_t i = 0; i < req->n_query; i++) {
                free(req->query_keys[i]);
                free(req->query_values[i]);
        }
        free(req->query_keys);
        free(req->query_values);
        free(req->username);
        if (req->user)
                json_decref(req->user);
}

static void response_clear(http_response *resp) {
        if (resp->json)
                json_decref(resp->json);
        free(resp->body);
        free(resp->location);
        free(resp->retry_after);
        if (resp->stream && resp->stream_free)
                resp->stream_free(resp->stream_userdata);
        *resp = (http_response) {};
}

/* ---- routing ---- */

int http_route_match(const char *pattern, const char *path, int64_t ids[static 4], size_t *n_ids) {
        bool api_v2 = startswith(path, "/api/v2/") || streq(path, "/api/v2");
        const char *p = pattern, *s = path;
        size_t n = 0;

        while (*p) {
                if (*p == '%') {
                        int64_t v = 0;
                        unsigned digits = 0;

                        if (!isdigit((unsigned char) *s))
                                return 0;
                        while (isdigit((unsigned char) *s)) {
                                if (++digits > 18)
                                        return 0;
                                v = v * 10 + (*s - '0');
                                s++;
                        }
                        if (n >= 4)
                                return 0;
                        ids[n++] = v;
                        p++;
                        continue;
                }
                if (*p != *s) {
                        /* "/api/v2/jobs" matches "/api/v2/jobs/" */
                        if (api_v2 && *s == 0 && p[0] == '/' && p[1] == 0)
                                break;
                        return 0;
                }
                p++;
                s++;
        }
        if (*s != 0 && !(api_v2 && s[0] == '/' && s[1] == 0 && p > pattern && p[-1] != '/'))
                return 0;
        *n_ids = n;
        return 1;
}

static const http_route *const *route_tables(void) {
        static const http_route *const tables[] = { api_routes, agent_routes, stream_routes, NULL };
        return tables;
}

/* Returns the matching route, or NULL with *ret_path_matched telling whether another method
 * would have matched (405). */
static const http_route *route_find(const char *method, const char *path, http_request *req, bool *ret_path_matched) {
        bool path_matched = false;

        for (const http_route *const *t = route_tables(); *t; t++)
                for (const http_route *r = *t; r->method; r++) {
                        int64_t ids[4];
                        size_t n_ids = 0;

                        if (!http_route_match(r->pattern, path, ids, &n_ids))
                                continue;
                        if (!streq(r->method, method)) {
                                path_matched = true;
                                continue;
                        }
                        memcpy(req->ids, ids, sizeof(ids));
                        req->n_ids = n_ids;
                        return r;
                }
        *ret_path_matched = path_matched;
        return NULL;
}

/* ---- authentication ---- */

static int respond_401(http_response *resp, const char *detail) {
        return http_respond_detail(resp, 401, "%s", detail);
}

static bool user_is_active(const json_t *user) {
        const json_t *v = json_object_get(user, "is_active");
        return !v || !json_is_false(v);
}

static int user_accept(http_request *req, json_t *user) {
        req->user_id = json_get_int(user, "id", 0);
        req->is_superuser = json_get_bool(user, "is_superuser", false);
        req->username = strdup(json_get_string(user, "username", ""));
        if (!req->username)
                return -ENOMEM;
        req->user = json_incref(user);
        return 0;
}

static bool password_cache_check(const char *key) {
        uint64_t now = now_monotonic_usec();
        bool hit = false;

        pthread_mutex_lock(&password_cache_lock);
        for (size_t i = 0; i < PASSWORD_CACHE_SIZE; i++)
                if (password_cache[i].until > now && streq_consttime(password_cache[i].key, key)) {
                        hit = true;
                        break;
                }
        pthread_mutex_unlock(&password_cache_lock);
        return hit;
}

static void password_cache_add(const char *key) {
        pthread_mutex_lock(&password_cache_lock);
        memcpy(password_cache[password_cache_next].key, key, 65);
        password_cache[password_cache_next].until = now_monotonic_usec() + PASSWORD_CACHE_USEC;
        password_cache_next = (password_cache_next + 1) % PASSWORD_CACHE_SIZE;
        pthread_mutex_unlock(&password_cache_lock);
}

/* 1 = authenticated, 0 = refused (resp filled), < 0 = error */
static int auth_basic(controller *c, const char *b64, http_request *req, http_response *resp) {
        _cleanup_free_ char *decoded = NULL, *cache_src = NULL;
        _cleanup_json_ json_t *user = NULL;
        char cache_key[65];
        size_t l = strlen(b64);
        int n, r;

        while (l > 0 && isspace((unsigned char) b64[l - 1]))
                l--;
        if (l == 0 || l % 4 != 0 || l > MAX_AUTH_HEADER)
                return respond_401(resp, "Invalid basic header. Credentials not correctly base64 encoded."), 0;
        decoded = malloc(l / 4 * 3 + 1);
        if (!decoded)
                return -ENOMEM;
        n = EVP_DecodeBlock((unsigned char *) decoded, (const unsigned char *) b64, (int) l);
        if (n < 0)
                return respond_401(resp, "Invalid basic header. Credentials not correctly base64 encoded."), 0;
        if (b64[l - 1] == '=')
                n--;
        if (b64[l - 2] == '=')
                n--;
        decoded[n] = 0;
        if (strlen(decoded) != (size_t) n)
                return respond_401(resp, "Invalid username/password."), 0;

        char *colon = strchr(decoded, ':');
        if (!colon)
                return respond_401(resp, "Invalid basic header. No credentials provided."), 0;
        *colon = 0;
        const char *username = decoded;
        char *password = colon + 1;

        r = storage_obj_find(c->storage, ST_USER, "username", username, &user);
        if (r == -ENOENT) {
                /* cost the same as a known user, so timing does not tell which usernames exist */
                static const char dummy_hash[] =
                        "pbkdf2_sha256$260000$droverdummysalt0$tf7gafggUXyLT/RGQrJwdlYrdWDB41GzimrUoCdGb58=";
                (void) crypto_password_verify(password, dummy_hash);
                return respond_401(resp, "Invalid username/password."), 0;
        }
        if (r < 0)
                return r;
        const char *hash = json_get_string(user, "_password_hash", NULL);
        if (!hash || !user_is_active(user))
                return respond_401(resp, "Invalid username/password."), 0;

        l = strlen(username) + strlen(password) + strlen(hash) + 3;
        cache_src = malloc(l);
        if (!cache_src)
                return -ENOMEM;
        n = snprintf(cache_src, l, "%s%c%s%c%s", username, 0, password, 0, hash);
        crypto_sha256_hex(cache_src, (size_t) n, cache_key);
        explicit_bzero(cache_src, (size_t) n);

        if (!password_cache_check(cache_key)) {
                r = crypto_password_verify(password, hash);
                explicit_bzero(password, strlen(password));
                if (r < 0)
                        log_warning_errno(r, "User '%s' has a malformed password hash: %m", username);
                if (r <= 0)
                        return respond_401(resp, "Invalid username/password."), 0;
                password_cache_add(cache_key);
        } else
                explicit_bzero(password, strlen(password));

        r = user_accept(req, user);
        return r < 0 ? r : 1;
}

static int auth_user_token(controller *c, const char *token, http_request *req, http_response *resp) {
        _cleanup_json_ json_t *tok = NULL, *user = NULL;
        char hash[65];
        int r;

        if (isempty(token) || strlen(token) > MAX_AUTH_HEADER)
                return respond_401(resp, "Invalid token."), 0;
        crypto_sha256_hex(token, strlen(token), hash);
        r = storage_obj_find(c->storage, ST_TOKEN, "_token_hash", hash, &tok);
        if (r == -ENOENT)
                return respond_401(resp, "Invalid token."), 0;
        if (r < 0)
                return r;

        const char *expires = json_get_string(tok, "expires", NULL);
        if (expires) {
                uint64_t e;
                if (parse_iso8601(expires, &e) < 0 || e <= now_realtime_usec())
                        return respond_401(resp, "Invalid token."), 0;
        }
        r = storage_obj_get(c->storage, ST_USER, json_get_int(tok, "user", 0), &user);
        if (r == -ENOENT)
                return respond_401(resp, "Invalid token."), 0;
        if (r < 0)
                return r;
        if (!user_is_active(user))
                return respond_401(resp, "User inactive or deleted."), 0;

        r = user_accept(req, user);
        return r < 0 ? r : 1;
}

static int auth_node(controller *c, const char *secret, http_request *req, http_response *resp) {
        _cleanup_json_ json_t *instance = NULL;
        const char *p;
        char hash[65];
        int64_t id = 0;
        int r;

        p = startswith(secret, "dns_");
        if (!p || strlen(secret) > 1024 || !isdigit((unsigned char) *p))
                return respond_401(resp, "Invalid token."), 0;
        for (unsigned digits = 0; isdigit((unsigned char) *p); p++) {
                if (++digits > 18)
                        return respond_401(resp, "Invalid token."), 0;
                id = id * 10 + (*p - '0');
        }
        if (*p != '_')
                return respond_401(resp, "Invalid token."), 0;

        r = storage_obj_get(c->storage, ST_INSTANCE, id, &instance);
        if (r == -ENOENT)
                return respond_401(resp, "Invalid token."), 0;
        if (r < 0)
                return r;
        const char *expected = json_get_string(instance, "_secret_hash", NULL);
        crypto_sha256_hex(secret, strlen(secret), hash);
        if (!expected || !streq_consttime(hash, expected))
                return respond_401(resp, "Invalid token."), 0;

        req->instance_id = id;
        return 1;
}

/* 1 = go on, 0 = refused (resp filled), < 0 error */
static int authenticate(controller *c, struct MHD_Connection *conn, http_auth auth, http_request *req,
                        http_response *resp) {
        const char *h, *v;
        int r;

        if (auth == HTTP_AUTH_NONE)
                return 1;

        h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        if (isempty(h))
                return respond_401(resp, "Authentication credentials were not provided."), 0;
        while (isspace((unsigned char) *h))
                h++;

        if (auth == HTTP_AUTH_NODE) {
                v = startswith(h, "Bearer ");
                if (!v)
                        return respond_401(resp, "Authentication credentials were not provided."), 0;
                while (*v == ' ')
                        v++;
                return auth_node(c, v, req, resp);
        }

        if ((v = startswith(h, "Basic "))) {
                while (*v == ' ')
                        v++;
                r = auth_basic(c, v, req, resp);
        } else if ((v = startswith(h, "Bearer "))) {
                while (*v == ' ')
                        v++;
                r = auth_user_token(c, v, req, resp);
        } else
                return respond_401(resp, "Authentication credentials were not provided."), 0;
        if (r <= 0)
                return r;

        if (auth == HTTP_AUTH_ADMIN && !req->is_superuser)
                return http_respond_detail(resp, 403, "You do not have permission to perform this action."), 0;
        return 1;
}

/* ---- responses ---- */

typedef struct stream_adapter {
        http_stream_fn fn;
        void *userdata;
        void (*free_fn)(void *userdata);
} stream_adapter;

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
        stream_adapter *a = cls;
        ssize_t n = a->fn(a->userdata, buf, max);

        if (n == -1)
                return MHD_CONTENT_READER_END_OF_STREAM;
        if (n <= 0)
                return MHD_CONTENT_READER_END_WITH_ERROR;
        return n;
}

static void stream_reader_free(void *cls) {
        stream_adapter *a = cls;

        if (a->free_fn)
                a->free_fn(a->userdata);
        free(a);
}

static enum MHD_Result queue(http_server *s, struct MHD_Connection *conn, const char *method, const char *path,
                             http_response *resp, bool head, uint64_t start_usec) {
        struct MHD_Response *r = NULL;
        unsigned status = resp->status ? resp->status : 200;
        enum MHD_Result ret;
        char t[64];

        if (resp->stream && !head) {
                stream_adapter *a = malloc(sizeof(*a));
                if (!a)
                        return MHD_NO;
                *a = (stream_adapter) { resp->stream, resp->stream_userdata, resp->stream_free };
                r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK_SIZE, stream_reader, a,
                                                      stream_reader_free);
                if (!r) {
                        free(a);
                        return MHD_NO;
                }
                resp->stream = NULL;   /* owned by the response now */
        } else {
                char *data = NULL;
                size_t size = 0;

                if (resp->json) {
                        data = json_dumps(resp->json, JSON_COMPACT | JSON_ENCODE_ANY);
                        if (!data)
                                return MHD_NO;
                        size = strlen(data);
                } else if (resp->body) {
                        data = TAKE_PTR(resp->body);
                        size = resp->body_size;
                }
                r = MHD_create_response_from_buffer(size, data ? data : (char *) "",
                                                    data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
                if (!r) {
                        free(data);
                        return MHD_NO;
                }
        }

        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                resp->content_type ? resp->content_type : "application/json");
        MHD_add_response_header(r, "X-API-Product-Name", AWX_PRODUCT_NAME);
        MHD_add_response_header(r, "X-API-Product-Version", AWX_PRODUCT_VERSION);
        MHD_add_response_header(r, "X-API-Node", s->hostname);
        snprintf(t, sizeof(t), "%.3fs", (double) (now_monotonic_usec() - start_usec) / USEC_PER_SEC);
        MHD_add_response_header(r, "X-API-Time", t);
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        if (status == 401)
                MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"api\"");
        if (resp->location)
                MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, resp->location);
        if (resp->retry_after)
                MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, resp->retry_after);

        ret = MHD_queue_response(conn, status, r);
        MHD_destroy_response(r);
        log_debug("%s %s -> %u (%s)", method, path, status, t);
        return ret;
}

static enum MHD_Result queue_detail(http_server *s, struct MHD_Connection *conn, const char *method, const char *path,
                                    unsigned status, bool head, uint64_t start_usec, const char *fmt, ...) _printf_(8, 9);
static enum MHD_Result queue_detail(http_server *s, struct MHD_Connection *conn, const char *method, const char *path,
                                    unsigned status, bool head, uint64_t start_usec, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        http_response resp = {};
        enum MHD_Result ret;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        http_respond(&resp, status, json_pack("{s:s}", "detail", msg ? msg : ""));
        ret = queue(s, conn, method, path, &resp, head, start_usec);
        response_clear(&resp);
        return ret;
}

/* ---- the request handler ---- */

/* Is s valid UTF-8 (no overlong forms, no surrogates)? A round trip through jansson checks it. */
static bool utf8_valid(const char *str) {
        json_t *j = json_string(str);
        if (!j)
                return false;
        json_decref(j);
        return true;
}

static enum MHD_Result query_collect(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
        http_request *req = cls;
        char **k, **v;

        if (req->n_query >= MAX_QUERY_ARGS)
                return MHD_NO;
        k = reallocarray(req->query_keys, req->n_query + 1, sizeof(char *));
        if (!k)
                return MHD_NO;
        req->query_keys = k;
        v = reallocarray(req->query_values, req->n_query + 1, sizeof(char *));
        if (!v)
                return MHD_NO;
        req->query_values = v;
        k[req->n_query] = strdup(strempty(key));
        v[req->n_query] = strdup(strempty(value));
        if (!k[req->n_query] || !v[req->n_query]) {
                free(k[req->n_query]);
                free(v[req->n_query]);
                return MHD_NO;
        }
        req->n_query++;
        return MHD_YES;
}

static enum MHD_Result dispatch(http_server *s, struct MHD_Connection *conn, const char *url, const char *method,
                                request_state *st) {
        controller *c = s->c;
        bool head = streq(method, "HEAD");
        const char *m = head ? "GET" : method;
        http_request req = {};
        http_response resp = {};
        const http_route *route;
        bool path_matched = false;
        enum MHD_Result ret;
        int r;

        if (st->too_big)
                return queue_detail(s, conn, method, url, 413, head, st->start_usec,
                                    "Request body exceeds the limit of %" PRIu64 " bytes.", st->limit);

        if (startswith(url, "/api/gateway/") || streq(url, "/api/gateway"))
                return queue_detail(s, conn, method, url, 404, head, st->start_usec,
                                    "The requested resource could not be found.");

        route = route_find(m, url, &req, &path_matched);
        if (!route) {
                if (path_matched)
                        return queue_detail(s, conn, method, url, 405, head, st->start_usec,
                                            "Method \"%s\" not allowed.", method);
                return queue_detail(s, conn, method, url, 404, head, st->start_usec,
                                    "The requested resource could not be found.");
        }

        req.method = m;
        req.path = url;
        req.body = st->body;
        req.body_size = st->size;
        req.content_type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        req.header_last_event_id = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Last-Event-ID");
        if (MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, query_collect, &req) < 0 ||
            req.n_query >= MAX_QUERY_ARGS) {
                request_clear(&req);
                return queue_detail(s, conn, method, url, 400, head, st->start_usec,
                                    "Too many query parameters (at most %d).", MAX_QUERY_ARGS - 1);
        }
        for (size_t i = 0; i < req.n_query; i++)
                if (!utf8_valid(req.query_keys[i]) || !utf8_valid(req.query_values[i])) {
                        request_clear(&req);
                        return queue_detail(s, conn, method, url, 400, head, st->start_usec,
                                            "The query string is not valid UTF-8.");
                }

        r = authenticate(c, conn, route->auth, &req, &resp);
        if (r > 0)
                r = route->handler(c, &req, &resp);
        if (r < 0) {
                if (resp.status >= 400 && resp.status < 500 && resp.json && !resp.stream)
                        ;   /* the handler answered and returned its error: send the answer */
                else if (http_errno_storage_unavailable(r)) {
                        /* nothing was committed (the transaction rolled back): tell the client to
                         * come back, agents retry with backoff */
                        log_error_errno(r, "%s %s failed, answering 503 (database unavailable?): %m", method, url);
                        scheduler_restart_grace(c);
                        response_clear(&resp);
                        resp.retry_after = strdup(STORAGE_RETRY_AFTER);
                        http_respond_detail(&resp, 503, "The service is temporarily unavailable (%s); retry later.",
                                            strerror(-r));
                } else {
                        log_error_errno(r, "%s %s failed: %m", method, url);
                        response_clear(&resp);
                        http_respond_detail(&resp, 500, "A server error has occurred.");
                }
        }

        if (s->drop_first > 0 && r >= 0 && resp.status == 200 && streq(route->pattern, EVENTS_ROUTE)) {
                uint64_t n;

                pthread_mutex_lock(&s->drop_lock);
                n = ++s->n_event_uploads;
                pthread_mutex_unlock(&s->drop_lock);
                if (n >= s->drop_first && n <= s->drop_last) {
                        log_warning("TEST HOOK %s: events upload #%" PRIu64 " to %s was committed; closing the "
                                    "connection without an answer.", DROP_EVENT_REPLIES_ENV, n, url);
                        response_clear(&resp);
                        request_clear(&req);
                        return MHD_NO;
                }
        }

        ret = queue(s, conn, method, url, &resp, head, st->start_usec);
        response_clear(&resp);
        request_clear(&req);
        return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
        http_server *s = cls;
        request_state *st = *con_cls;

        if (!st) {
                const char *cl;

                st = calloc(1, sizeof(*st));
                if (!st)
                        return MHD_NO;
                st->start_usec = now_monotonic_usec();
                st->limit = startswith(url, "/api/agent/") ? s->c->config->limits.max_agent_body_size
                                                          : s->c->config->limits.max_body_size;
                *con_cls = st;

                cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
                if (cl) {
                        char *end;
                        unsigned long long v;

                        errno = 0;
                        v = strtoull(cl, &end, 10);
                        if (errno != 0 || end == cl || v > st->limit) {
                                const char *expect = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                                                 MHD_HTTP_HEADER_EXPECT);
                                st->too_big = true;
                                /* Answer before the body when the client waits for "100 Continue" or the
                                 * body is huge. Otherwise read and drop it first: a client that sends its
                                 * whole body before reading (urllib) would get a reset, not the 413. */
                                if ((expect && strcasecmp(expect, "100-continue") == 0) || errno != 0 ||
                                    end == cl || v > st->limit + DRAIN_MAX)
                                        return dispatch(s, conn, url, method, st);
                        }
                }
                return MHD_YES;
        }

        if (*upload_data_size > 0) {
                size_t n = *upload_data_size;

                *upload_data_size = 0;
                if (st->too_big) {
                        st->drained += n;
                        return st->drained > st->limit + DRAIN_MAX ? MHD_NO : MHD_YES;
                }
                if (st->size + n > st->limit) {
                        st->too_big = true;
                        st->drained = st->size + n;
                        free(st->body);
                        st->body = NULL;
                        st->size = st->allocated = 0;
                        return MHD_YES;
                }
                if (st->size + n + 1 > st->allocated) {
                        size_t a = MAX(st->allocated * 2, st->size + n + 1);
                        char *b;

                        a = MIN(a, (size_t) st->limit + 1);
                        b = realloc(st->body, a);
                        if (!b)
                                return MHD_NO;
                        st->body = b;
                        st->allocated = a;
                }
                memcpy(st->body + st->size, upload_data, n);
                st->size += n;
                st->body[st->size] = 0;
                return MHD_YES;
        }

        return dispatch(s, conn, url, method, st);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
        request_state *st = *con_cls;

        if (!st)
                return;
        free(st->body);
        free(st);
        *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
        char buf[512];
        size_t l;

        vsnprintf(buf, sizeof(buf), fmt, ap);
        l = strlen(buf);
        while (l > 0 && buf[l - 1] == '\n')
                buf[--l] = 0;
        log_debug("libmicrohttpd: %s", buf);
}

/* "127.0.0.1:8443", "[::]:8443", "host:8443", ":8443" */
static int listen_parse(const char *listen, struct sockaddr_storage *ret, socklen_t *ret_len) {
        _cleanup_free_ char *host = NULL;
        const char *port;
        struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM }, *ai = NULL;
        int r;

        if (listen[0] == '[') {
                const char *e = strchr(listen, ']');
                if (!e || e[1] != ':')
                        return -EINVAL;
                host = strndup(listen + 1, (size_t) (e - listen - 1));
                port = e + 2;
        } else {
                const char *e = strrchr(listen, ':');
                if (!e)
                        return -EINVAL;
                host = strndup(listen, (size_t) (e - listen));
                port = e + 1;
        }
        if (!host)
                return -ENOMEM;
        if (isempty(port))
                return -EINVAL;
        for (const char *p = port; *p; p++)
                if (!isdigit((unsigned char) *p))
                        return -EINVAL;
        if (atoi(port) > 65535)
                return -EINVAL;

        r = getaddrinfo(isempty(host) ? "0.0.0.0" : host, port, &hints, &ai);
        if (r != 0)
                return r == EAI_SYSTEM ? negative_errno() : -EADDRNOTAVAIL;
        if (ai->ai_addrlen > sizeof(*ret)) {
                freeaddrinfo(ai);
                return -EINVAL;
        }
        memset(ret, 0, sizeof(*ret));
        memcpy(ret, ai->ai_addr, ai->ai_addrlen);
        *ret_len = ai->ai_addrlen;
        freeaddrinfo(ai);
        return 0;
}

/* DROVER_TEST_DROP_EVENT_REPLIES=N or N-M: see struct http_server. Never on by accident: only
 * when the variable is set, and then logged loudly at start. */
static int drop_hook_parse(http_server *s) {
        const char *v = getenv(DROP_EVENT_REPLIES_ENV);
        unsigned long long first, last;
        char *end;

        if (!v)
                return 0;
        errno = 0;
        first = strtoull(v, &end, 10);
        last = first;
        if (errno == 0 && *end == '-')
                last = strtoull(end + 1, &end, 10);
        if (errno != 0 || end == v || *end != 0 || first < 1 || last < first)
                return log_error_errno(-EINVAL, "Invalid %s='%s': expected N or N-M (N >= 1).", DROP_EVENT_REPLIES_ENV, v);
        s->drop_first = first;
        s->drop_last = last;
        log_warning("TEST HOOK ENABLED: %s=%s: the answers to events uploads #%llu..#%llu will be dropped after "
                    "they are committed. Never set this outside tests.", DROP_EVENT_REPLIES_ENV, v, first, last);
        return 0;
}

int http_server_start(controller *c, const char *cert_path, const char *key_path, http_server **ret) {
        struct sockaddr_storage addr;
        socklen_t addr_len;
        unsigned flags;
        http_server *s;
        int r;

        r = listen_parse(c->config->listen, &addr, &addr_len);
        if (r < 0)
                return log_error_errno(r, "Invalid listen address '%s': %m", c->config->listen);

        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
                return log_error_errno(-EOPNOTSUPP, "libmicrohttpd was built without TLS support.");

        s = calloc(1, sizeof(*s));
        if (!s)
                return log_oom();
        s->c = c;
        pthread_mutex_init(&s->drop_lock, NULL);
        r = drop_hook_parse(s);
        if (r < 0)
                goto fail;
        if (gethostname(s->hostname, sizeof(s->hostname) - 1) < 0)
                strcpy(s->hostname, "localhost");

        r = read_full_file(cert_path, PEM_MAX_SIZE, &s->cert_pem, NULL);
        if (r < 0) {
                log_error_errno(r, "Failed to read TLS certificate %s: %m", cert_path);
                goto fail;
        }
        r = read_full_file(key_path, PEM_MAX_SIZE, &s->key_pem, NULL);
        if (r < 0) {
                log_error_errno(r, "Failed to read TLS key %s: %m", key_path);
                goto fail;
        }

        flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS | MHD_USE_ERROR_LOG;
        if (addr.ss_family == AF_INET6)
                flags |= MHD_USE_DUAL_STACK;

        s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
                                     MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
                                     MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &addr,
                                     MHD_OPTION_HTTPS_MEM_CERT, s->cert_pem,
                                     MHD_OPTION_HTTPS_MEM_KEY, s->key_pem,
                                     MHD_OPTION_CONNECTION_LIMIT, (unsigned) c->config->limits.max_connections,
                                     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) CONNECTION_TIMEOUT_SEC,
                                     MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                     MHD_OPTION_LISTENING_ADDRESS_REUSE, 1U,
                                     MHD_OPTION_END);
        if (!s->daemon) {
                r = errno > 0 ? -errno : -EADDRNOTAVAIL;
                log_error_errno(r, "Failed to start the HTTPS server on %s: %m", c->config->listen);
                goto fail;
        }

        *ret = s;
        return 0;

fail:
        if (s->key_pem)
                explicit_bzero(s->key_pem, strlen(s->key_pem));
        free(s->key_pem);
        free(s->cert_pem);
        pthread_mutex_destroy(&s->drop_lock);
        free(s);
        return r;
}

void http_server_stop(http_server *s) {
        if (!s)
                return;
        if (s->daemon) {
                s->c->shutting_down = true;
                controller_notify(s->c);   /* wake long-polls and streams */
                MHD_stop_daemon(s->daemon);
        }
        if (s->key_pem)
                explicit_bzero(s->key_pem, strlen(s->key_pem));
        free(s->key_pem);
        free(s->cert_pem);
        pthread_mutex_destroy(&s->drop_lock);
        free(s);
}
