/* http-server.h: the controller's HTTPS server (libmicrohttpd, one thread per connection):
 * transport, body limits, routing over the route tables, authentication and AWX headers. */
#pragma once

#include "http.h"

typedef struct http_server http_server;

/* Start listening on c->config->listen with the PEM certificate and key files. */
int http_server_start(controller *c, const char *cert_path, const char *key_path, http_server **ret);
/* Stop accepting, wake waiters, wait for connection threads, free. NULL is a no-op. */
void http_server_stop(http_server *s);
static inline void http_server_stopp(http_server **s) { if (*s) http_server_stop(*s); }
#define _cleanup_http_server_ _cleanup_(http_server_stopp)

/* The route matcher, exposed for tests: 1 if path matches pattern ('%' = decimal id, stored in
 * ids/n_ids), with /api/v2 paths matching with or without their trailing slash. */
int http_route_match(const char *pattern, const char *path, int64_t ids[static 4], size_t *n_ids);
