/* json-util.c: jansson helpers: typed getters with defaults, compact serialization and the
 * AWX-style error bodies ({"detail": ...} and {"field": [...]}) used by every API answer. */
#include "drover/json-util.h"

#include <stdarg.h>

const char *json_get_string(const json_t *o, const char *key, const char *def) {
        const json_t *v;

        if (!o || !json_is_object(o))
                return def;
        v = json_object_get(o, key);
        if (!v || !json_is_string(v))
                return def;
        return json_string_value(v);
}

int64_t json_get_int(const json_t *o, const char *key, int64_t def) {
        const json_t *v;

        if (!o || !json_is_object(o))
                return def;
        v = json_object_get(o, key);
        if (!v || !json_is_integer(v))
                return def;
        return (int64_t) json_integer_value(v);
}

bool json_get_bool(const json_t *o, const char *key, bool def) {
        const json_t *v;

        if (!o || !json_is_object(o))
                return def;
        v = json_object_get(o, key);
        if (!v || !json_is_boolean(v))
                return def;
        return json_is_true(v);
}

char *json_dumps_compact(const json_t *j) {
        if (!j)
                return NULL;
        return json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
}

static char *vformat(const char *fmt, va_list ap) {
        char *s = NULL;
        if (vasprintf(&s, fmt, ap) < 0)
                return NULL;
        return s;
}

json_t *json_error_detail(const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        msg = vformat(fmt, ap);
        va_end(ap);
        if (!msg)
                return NULL;
        return json_pack("{s:s}", "detail", msg);
}

json_t *json_error_field(const char *field, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        msg = vformat(fmt, ap);
        va_end(ap);
        if (!msg || !field)
                return NULL;
        return json_pack("{s:[s]}", field, msg);
}
