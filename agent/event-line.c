/* event-line.c: validation and limits for one line of a job's events file (written by the
 * drover callback plugin): parse it, check the types the controller relies on, truncate an
 * oversized event_data.res, and replace anything unusable by a placeholder event so that the
 * counter sequence stays gapless. Never crashes on any input. */
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
