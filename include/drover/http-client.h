/* http-client.h: the HTTPS client (libcurl) used by the agent and droverctl. Certificates are
 * always verified against a CA file (the pinned controller CA) or the system store; there is no
 * way to turn verification off. One http_client per thread (keeps its connection alive). */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "drover/macro.h"

typedef struct http_client http_client;

typedef struct http_response {
        long status;            /* HTTP status; 0 if no response arrived */
        char *body;             /* NUL terminated; may be NULL */
        size_t body_size;
        json_t *json;           /* parsed body if it was JSON, else NULL */
        char *retry_after;      /* Retry-After header, if any */
        char *location;         /* Location header, if any */
        char error[256];        /* transport error text when status == 0 */
} http_response;

void http_response_clear(http_response *r);

/* base_url like "https://127.0.0.1:8443"; ca_file may be NULL for the system store. */
int http_client_new(const char *base_url, const char *ca_file, http_client **ret);
void http_client_free(http_client *c);
static inline void http_client_freep(http_client **c) { if (*c) http_client_free(*c); }
#define _cleanup_http_client_ _cleanup_(http_client_freep)

/* "Bearer <token>" or "Basic <base64>" etc.; NULL removes it. */
int http_client_set_authorization(http_client *c, const char *value);
int http_client_set_basic_auth(http_client *c, const char *user, const char *password);
void http_client_set_timeout(http_client *c, long timeout_ms);   /* whole request; 0 = none */

/* method "GET"/"POST"/...; path is appended to base_url; body may be NULL. Returns 0 when a
 * response (any status) arrived, -EIO/-ETIMEDOUT/... on transport failure (ret->error set). */
int http_client_request(http_client *c, const char *method, const char *path, const json_t *body,
                        http_response *ret);
int http_client_request_raw(http_client *c, const char *method, const char *path, const char *content_type,
                            const void *body, size_t body_size, http_response *ret);

/* Stream a GET response (e.g. Server-Sent Events): calls on_data for each chunk received;
 * returning non-zero from on_data stops the transfer. */
typedef int (*http_data_cb)(const char *data, size_t size, void *userdata);
int http_client_stream(http_client *c, const char *path, http_data_cb on_data, void *userdata,
                       long *ret_status);
