/* http.h: the request/response model between the HTTPS server (http-server.c, libmicrohttpd)
 * and the handlers (api-*.c for AWX's /api/v2, agent-api.c for /api/agent/v1).
 * A handler fills `resp` and returns 0; returning a negative errno makes the server answer 500
 * with {"detail": "..."} and log the error once. */
#pragma once

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>
#include "controller.h"

typedef enum http_auth {
        HTTP_AUTH_NONE,      /* anyone (ping, enroll) */
        HTTP_AUTH_USER,      /* Basic or Bearer user token; 401 otherwise */
        HTTP_AUTH_ADMIN,     /* a superuser; 403 for other users */
        HTTP_AUTH_NODE,      /* Bearer node secret (agent protocol); 401 otherwise */
} http_auth;

typedef struct http_request {
        const char *method;          /* "GET", "POST", ... (HEAD is served as GET) */
        const char *path;            /* without the query string, e.g. "/api/v2/jobs/7/" */
        /* query string, decoded, in order; keys may repeat */
        size_t n_query;
        char **query_keys;
        char **query_values;
        const char *body;            /* raw body (NUL terminated), NULL if none */
        size_t body_size;
        const char *content_type;
        const char *header_last_event_id;
        int64_t ids[4];              /* integers matched by '%' in the route pattern, in order */
        size_t n_ids;
        /* filled by authentication */
        int64_t user_id;             /* 0 if not a user */
        bool is_superuser;
        char *username;
        int64_t instance_id;         /* 0 if not a node */
        json_t *user;                /* the user document, or NULL */
} http_request;

/* A streamed body: called repeatedly from the connection's own thread (blocking is allowed);
 * return bytes written to buf (> 0), 0 is not allowed, -1 ends the stream normally, -2 aborts. */
typedef ssize_t (*http_stream_fn)(void *userdata, char *buf, size_t max);

typedef struct http_response {
        unsigned status;             /* default 200 */
        json_t *json;                /* owned; serialised as the body when set */
        char *body;                  /* owned raw body when json is NULL */
        size_t body_size;
        const char *content_type;    /* default application/json */
        char *location;              /* owned; Location header */
        char *retry_after;           /* owned; Retry-After header */
        http_stream_fn stream;       /* set for streaming responses (SSE) */
        void *stream_userdata;
        void (*stream_free)(void *userdata);
} http_response;

typedef int (*http_handler)(controller *c, http_request *req, http_response *resp);

typedef struct http_route {
        const char *method;          /* "GET", "POST", "PATCH", "PUT", "DELETE" */
        const char *pattern;         /* "/api/v2/jobs/%/cancel/"; '%' matches a decimal id */
        http_auth auth;
        http_handler handler;
} http_route;

/* Route tables, each terminated by an entry with method == NULL. */
extern const http_route api_routes[];        /* api-routes.c: the AWX API */
extern const http_route agent_routes[];      /* agent-api.c: the agent protocol */
extern const http_route stream_routes[];     /* job-stream.c: Server-Sent Events of job output (added by controller-server) */

/* Helpers for handlers (http-util.c) */
const char *http_query_get(const http_request *req, const char *key);   /* last value or NULL */
/* Parse the body as a JSON object. On failure fills resp with 400 {"detail": "JSON parse error - ..."}
 * and returns -EBADMSG. An empty body yields an empty object. */
int http_request_json_object(const http_request *req, http_response *resp, json_t **ret);
/* Set status and JSON body (takes ownership of body). Returns 0. */
int http_respond(http_response *resp, unsigned status, json_t *body);
int http_respond_detail(http_response *resp, unsigned status, const char *fmt, ...) _printf_(3, 4);
int http_respond_field_error(http_response *resp, const char *field, const char *fmt, ...) _printf_(3, 4);
/* A storage error a client should retry (disk full, read-only, I/O, busy...): answered 503 with
 * Retry-After instead of 500. */
bool http_errno_storage_unavailable(int r);
