/* http-util.c: helpers for HTTP handlers: query lookups, JSON request bodies and AWX-shaped
 * answers ({"detail": ...}, {"field": [...]}). */
#include <stdarg.h>

#include <jansson.h>
#include "drover/json-util.h"

#include "http.h"

const char *http_query_get(const http_request *req, const char *key) {
        const char *v = NULL;

        for (size_t i = 0; i < req->n_query; i++)
                if (streq(req->query_keys[i], key))
                        v = req->query_values[i];
        return v;
}

int http_respond(http_response *resp, unsigned status, json_t *body) {
        resp->status = status;
        if (resp->json)
                json_decref(resp->json);
        resp->json = body;
        return 0;
}

int http_respond_detail(http_response *resp, unsigned status, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        json_t *body = json_pack("{s:s}", "detail", msg ? msg : "Out of memory.");
        if (!body)      /* msg quoted client text that is not UTF-8 */
                body = json_pack("{s:s}", "detail", "Invalid input (not UTF-8).");
        return http_respond(resp, status, body);
}

int http_respond_field_error(http_response *resp, const char *field, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        json_t *body = json_pack("{s:[s]}", field, msg ? msg : "Out of memory.");
        if (!body)      /* the field name or message is not UTF-8 */
                body = json_pack("{s:s}", "detail", "Invalid input (not UTF-8).");
        return http_respond(resp, 400, body);
}

int http_request_json_object(const http_request *req, http_response *resp, json_t **ret) {
        json_error_t err;
        json_t *j;

        if (!req->body || req->body_size == 0) {
                j = json_object();
                if (!j)
                        return -ENOMEM;
                *ret = j;
                return 0;
        }

        j = json_loadb(req->body, req->body_size, 0, &err);
        if (!j) {
                http_respond_detail(resp, 400, "JSON parse error - %s", err.text);
                return -EBADMSG;
        }
        if (!json_is_object(j)) {
                json_decref(j);
                http_respond_detail(resp, 400, "JSON parse error - expected an object");
                return -EBADMSG;
        }
        *ret = j;
        return 0;
}

bool http_errno_storage_unavailable(int r) {
        switch (-r) {
        case EROFS: case ENOSPC: case EDQUOT: case EIO: case EBUSY: case EAGAIN: case EACCES:
        case ENFILE: case EMFILE: case ENOLCK:
                return true;
        default:
                return false;
        }
}
