/* event-line.c: validation and limits for one line of a job's events file (written by the
 * drover callback plugin): parse it, check the types the controller relies on, truncate an
 * oversized event_data.res, and replace anything unusable by a placeholder event so that the
 * counter sequence stays gapless. Never crashes on any input. event_line_check_raw() is the fast
 * path: it recognises, without building a tree, lines that need no change at all. */
#include "agent.h"

#include <inttypes.h>

#include "drover/log.h"
#include "drover/util.h"

static json_t *placeholder(size_t len, int64_t counter) {
        char uuid[37], msg[128];

        uuid_string(uuid);
        snprintf(msg, sizeof msg, "[drover] malformed event line (%zu bytes) replaced", len);
        return json_pack("{s:s, s:I, s:s, s:s, s:{}}", "event", "warning", "counter", (json_int_t) counter,
                         "uuid", uuid, "stdout", msg, "event_data");
}

/* Replace event_data.res when its compact JSON exceeds AGENT_EVENT_MAX_RES characters. */
static int limit_res(json_t *event_data) {
        json_t *res = json_object_get(event_data, "res");
        size_t n;

        if (!res)
                return 0;
        n = json_dumpb(res, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
        if (n <= AGENT_EVENT_MAX_RES)
                return 0;
        json_t *marker = json_pack("{s:b, s:I}", "_drover_truncated", 1, "size", (json_int_t) n);
        if (!marker)
                return -ENOMEM;
        return json_object_set_new(event_data, "res", marker) < 0 ? -ENOMEM : 1;
}

/* expected_counter > 0: the line's counter must equal it; a different one is overwritten (and
 * logged) so the stream stays gapless. expected_counter <= 0 accepts any counter >= 1. */
int event_line_parse(const char *line, size_t len, int64_t expected_counter, json_t **ret, bool *ret_malformed) {
        json_t *ev = NULL, *c, *ed;
        json_error_t err;
        int r;

        if (!line || len > AGENT_EVENT_MAX_LINE)
                goto malformed;

        /* JSON_ALLOW_NUL: \u0000 in a module's output is legitimate; keep it (length-aware). */
        ev = json_loadb(line, len, JSON_ALLOW_NUL, &err);
        if (!ev || !json_is_object(ev))
                goto malformed;
        c = json_object_get(ev, "counter");
        if (!c || !json_is_integer(c) || json_integer_value(c) < 1)
                goto malformed;
        if (!json_is_string(json_object_get(ev, "event")))
                goto malformed;

        if (expected_counter > 0 && json_integer_value(c) != expected_counter) {
                log_warning("Event line carries counter %" JSON_INTEGER_FORMAT ", expected %" PRId64 "; renumbered",
                            json_integer_value(c), expected_counter);
                if (json_object_set_new(ev, "counter", json_integer(expected_counter)) < 0)
                        goto oom;
        }
        if (!json_is_string(json_object_get(ev, "uuid"))) {
                char uuid[37];
                uuid_string(uuid);
                if (json_object_set_new(ev, "uuid", json_string(uuid)) < 0)
                        goto oom;
        }
        ed = json_object_get(ev, "event_data");
        if (!ed || !json_is_object(ed)) {
                if (json_object_set_new(ev, "event_data", json_object()) < 0)
                        goto oom;
        } else {
                r = limit_res(ed);
                if (r < 0)
                        goto oom;
        }

        *ret = ev;
        if (ret_malformed)
                *ret_malformed = false;
        return 0;

malformed:
        json_decref(ev);
        ev = placeholder(len, expected_counter > 0 ? expected_counter : 1);
        if (!ev)
                return -ENOMEM;
        *ret = ev;
        if (ret_malformed)
                *ret_malformed = true;
        return 0;

oom:
        json_decref(ev);
        return -ENOMEM;
}

/* Raw check: a conservative JSON scanner that never builds a tree. It answers "unchanged" only
 * for lines event_line_parse() would accept without modifying anything; every doubtful construct
 * (escapes in the keys it looks at, \u0000, surrogate escapes, exponents, very long numbers, deep
 * nesting, duplicate keys it relies on, a res that might be over the limit) answers "use
 * event_line_parse()" instead, so the two paths can only differ in speed. */
typedef struct raw_scan {
        const unsigned char *p, *end;
        unsigned depth;
        bool real;
} raw_scan;

#define RAW_MAX_DEPTH 256u
#define RAW_MAX_NUMBER 300

static void raw_ws(raw_scan *s) {
        while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
                s->p++;
}

static bool raw_cont(raw_scan *s, unsigned n, unsigned char lo, unsigned char hi) {
        /* the first continuation byte within [lo, hi], the others within [0x80, 0xbf] */
        if ((size_t) (s->end - s->p) < n)
                return false;
        for (unsigned i = 0; i < n; i++) {
                unsigned char c = s->p[i];
                if (i == 0 ? (c < lo || c > hi) : (c < 0x80 || c > 0xbf))
                        return false;
        }
        s->p += n;
        return true;
}

static int raw_hex(unsigned char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* At the opening quote. ret_start, ret_len: the raw bytes between the quotes; ret_escaped: any escape. */
static bool raw_string(raw_scan *s, const unsigned char **ret_start, size_t *ret_len, bool *ret_escaped) {
        bool escaped = false;

        if (s->p >= s->end || *s->p != '"')
                return false;
        const unsigned char *start = ++s->p;
        while (s->p < s->end) {
                unsigned char c = *s->p;
                if (c == '"') {
                        if (ret_start)
                                *ret_start = start;
                        if (ret_len)
                                *ret_len = (size_t) (s->p - start);
                        if (ret_escaped)
                                *ret_escaped = escaped;
                        s->p++;
                        return true;
                }
                if (c < 0x20)
                        return false;
                if (c == '\\') {
                        escaped = true;
                        if (s->end - s->p < 2)
                                return false;
                        c = s->p[1];
                        if (strchr("\"\\/bfnrt", c) && c) {
                                s->p += 2;
                                continue;
                        }
                        if (c != 'u' || s->end - s->p < 6)
                                return false;
                        unsigned v = 0;
                        for (int i = 2; i < 6; i++) {
                                int h = raw_hex(s->p[i]);
                                if (h < 0)
                                        return false;
                                v = v * 16 + (unsigned) h;
                        }
                        if (v == 0 || (v >= 0xd800 && v <= 0xdfff))
                                return false;
                        s->p += 6;
                        continue;
                }
                if (c < 0x80) {
                        s->p++;
                        continue;
                }
                s->p++;
                bool ok;
                if (c >= 0xc2 && c <= 0xdf)
                        ok = raw_cont(s, 1, 0x80, 0xbf);
                else if (c == 0xe0)
                        ok = raw_cont(s, 2, 0xa0, 0xbf);
                else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef)
                        ok = raw_cont(s, 2, 0x80, 0xbf);
                else if (c == 0xed)
                        ok = raw_cont(s, 2, 0x80, 0x9f);
                else if (c == 0xf0)
                        ok = raw_cont(s, 3, 0x90, 0xbf);
                else if (c >= 0xf1 && c <= 0xf3)
                        ok = raw_cont(s, 3, 0x80, 0xbf);
                else if (c == 0xf4)
                        ok = raw_cont(s, 3, 0x80, 0x8f);
                else
                        ok = false;
                if (!ok)
                        return false;
        }
        return false;
}

/* An integer sets *ret_int (when given) and *ret_is_int; a real sets s->real. */
static bool raw_number(raw_scan *s, int64_t *ret_int, bool *ret_is_int) {
        const unsigned char *start = s->p;
        bool neg = false, is_int = true;
        int64_t v = 0;
        unsigned digits = 0;

        if (s->p < s->end && *s->p == '-') {
                neg = true;
                s->p++;
        }
        if (s->p >= s->end || *s->p < '0' || *s->p > '9')
                return false;
        if (*s->p == '0') {
                s->p++;
                if (s->p < s->end && *s->p >= '0' && *s->p <= '9')
                        return false;
        } else
                while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
                        if (++digits > 18)
                                return false;
                        v = v * 10 + (*s->p - '0');
                        s->p++;
                }
        if (s->p < s->end && *s->p == '.') {
                is_int = false;
                s->p++;
                if (s->p >= s->end || *s->p < '0' || *s->p > '9')
                        return false;
                while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
                        s->p++;
        }
        if (s->p < s->end && (*s->p == 'e' || *s->p == 'E'))
                return false;   /* could overflow or expand a lot when dumped: let jansson decide */
        if (s->p - start > RAW_MAX_NUMBER)
                return false;
        if (!is_int)
                s->real = true;
        if (ret_int)
                *ret_int = neg ? -v : v;
        if (ret_is_int)
                *ret_is_int = is_int;
        return true;
}

static bool raw_value(raw_scan *s);

static bool raw_literal(raw_scan *s, const char *word, size_t n) {
        if ((size_t) (s->end - s->p) < n || memcmp(s->p, word, n) != 0)
                return false;
        s->p += n;
        return true;
}

static bool raw_container(raw_scan *s) {
        bool object = *s->p == '{';
        unsigned char close = object ? '}' : ']';

        if (++s->depth > RAW_MAX_DEPTH)
                return false;
        s->p++;
        raw_ws(s);
        if (s->p < s->end && *s->p == close) {
                s->p++;
                s->depth--;
                return true;
        }
        for (;;) {
                if (object) {
                        if (!raw_string(s, NULL, NULL, NULL))
                                return false;
                        raw_ws(s);
                        if (s->p >= s->end || *s->p != ':')
                                return false;
                        s->p++;
                        raw_ws(s);
                }
                if (!raw_value(s))
                        return false;
                raw_ws(s);
                if (s->p >= s->end)
                        return false;
                if (*s->p == close) {
                        s->p++;
                        s->depth--;
                        return true;
                }
                if (*s->p != ',')
                        return false;
                s->p++;
                raw_ws(s);
        }
}

static bool raw_value(raw_scan *s) {
        if (s->p >= s->end)
                return false;
        switch (*s->p) {
        case '{':
        case '[':
                return raw_container(s);
        case '"':
                return raw_string(s, NULL, NULL, NULL);
        case 't':
                return raw_literal(s, "true", 4);
        case 'f':
                return raw_literal(s, "false", 5);
        case 'n':
                return raw_literal(s, "null", 4);
        default:
                return raw_number(s, NULL, NULL);
        }
}

static bool raw_key_is(const unsigned char *k, size_t n, const char *name) {
        return n == strlen(name) && memcmp(k, name, n) == 0;
}

/* Walk an object's members; for each calls on_member with the key (s->p at the value), which must
 * consume the value. Keys with escapes make it fail (they might spell a key we look at). */
typedef bool (*raw_member_fn)(raw_scan *s, const unsigned char *key, size_t n, void *userdata);

static bool raw_object(raw_scan *s, raw_member_fn on_member, void *userdata) {
        if (s->p >= s->end || *s->p != '{' || ++s->depth > RAW_MAX_DEPTH)
                return false;
        s->p++;
        raw_ws(s);
        if (s->p < s->end && *s->p == '}') {
                s->p++;
                s->depth--;
                return true;
        }
        for (;;) {
                const unsigned char *key;
                size_t n;
                bool escaped;
                if (!raw_string(s, &key, &n, &escaped) || escaped)
                        return false;
                raw_ws(s);
                if (s->p >= s->end || *s->p != ':')
                        return false;
                s->p++;
                raw_ws(s);
                if (!on_member(s, key, n, userdata))
                        return false;
                raw_ws(s);
                if (s->p >= s->end)
                        return false;
                if (*s->p == '}') {
                        s->p++;
                        s->depth--;
                        return true;
                }
                if (*s->p != ',')
                        return false;
                s->p++;
                raw_ws(s);
        }
}

typedef struct raw_event {
        bool counter, event, uuid, event_data, res;
        int64_t counter_value;
} raw_event;

static bool raw_event_data_member(raw_scan *s, const unsigned char *key, size_t n, void *userdata) {
        raw_event *e = userdata;

        if (!raw_key_is(key, n, "res"))
                return raw_value(s);
        if (e->res)
                return false;
        e->res = true;
        const unsigned char *start = s->p;
        bool real_before = s->real;
        s->real = false;
        if (!raw_value(s))
                return false;
        size_t len = (size_t) (s->p - start);
        /* Its compact dump is at most as long as the raw text, or 8x with reals ("0.1" dumps as
         * 0.10000000000000001); anything that might be over the limit goes to event_line_parse(). */
        if (s->real ? len > AGENT_EVENT_MAX_RES / 8 : len > AGENT_EVENT_MAX_RES)
                return false;
        s->real = real_before || s->real;
        return true;
}

static bool raw_event_member(raw_scan *s, const unsigned char *key, size_t n, void *userdata) {
        raw_event *e = userdata;
        bool is_int = false;

        if (raw_key_is(key, n, "counter")) {
                if (e->counter)
                        return false;
                e->counter = true;
                return raw_number(s, &e->counter_value, &is_int) && is_int;
        }
        if (raw_key_is(key, n, "event") || raw_key_is(key, n, "uuid")) {
                bool *seen = key[0] == 'e' ? &e->event : &e->uuid;
                if (*seen)
                        return false;
                *seen = true;
                return raw_string(s, NULL, NULL, NULL);
        }
        if (raw_key_is(key, n, "event_data")) {
                if (e->event_data)
                        return false;
                e->event_data = true;
                return raw_object(s, raw_event_data_member, e);
        }
        return raw_value(s);
}

bool event_line_check_raw(const char *line, size_t len, int64_t expected_counter, int64_t *ret_counter) {
        raw_scan s = { .p = (const unsigned char *) line, .end = (const unsigned char *) line + len };
        raw_event e = {};

        if (!line || len > AGENT_EVENT_MAX_LINE)
                return false;
        raw_ws(&s);
        if (!raw_object(&s, raw_event_member, &e))
                return false;
        raw_ws(&s);
        if (s.p != s.end)
                return false;
        if (!e.counter || !e.event || !e.uuid || !e.event_data || e.counter_value < 1)
                return false;
        if (expected_counter > 0 && e.counter_value != expected_counter)
                return false;
        if (ret_counter)
                *ret_counter = e.counter_value;
        return true;
}
