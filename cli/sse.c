/* sse.c: the incremental text/event-stream parser declared in sse.h (WHATWG "event stream
 * interpretation": fields data, event, id; comments; LF/CRLF/CR line ends; retry is ignored). */
#include "sse.h"

typedef struct sse_buf {
        char *data;
        size_t size, allocated;
} sse_buf;

struct sse_parser {
        size_t max_size;
        sse_buf line;           /* the line being received */
        sse_buf data;           /* data of the event being received */
        sse_buf event;          /* its event type */
        sse_buf id;             /* the last event id */
        bool have_data;         /* a data field was seen in this event */
        bool skip_lf;           /* the previous chunk ended in CR: a leading LF belongs to it */
        bool bom_checked;
        bool broken;            /* a limit was exceeded */
};

static int buf_append(sse_buf *b, const char *s, size_t n, size_t max) {
        if (n > max || b->size > max - n)
                return -EMSGSIZE;
        if (b->size + n + 1 > b->allocated) {
                size_t a = MAX(b->allocated * 2, b->size + n + 1);
                a = MAX(a, (size_t) 64);
                char *d = realloc(b->data, a);
                if (!d)
                        return -ENOMEM;
                b->data = d;
                b->allocated = a;
        }
        memcpy(b->data + b->size, s, n);
        b->size += n;
        b->data[b->size] = 0;
        return 0;
}

static int buf_set(sse_buf *b, const char *s, size_t n, size_t max) {
        b->size = 0;
        if (b->data)
                b->data[0] = 0;
        return buf_append(b, s, n, max);
}

static void buf_clear(sse_buf *b) {
        b->size = 0;
        if (b->data)
                b->data[0] = 0;
}

int sse_parser_new(size_t max_event_size, sse_parser **ret) {
        sse_parser *p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->max_size = max_event_size > 0 ? max_event_size : SSE_DEFAULT_MAX_EVENT_SIZE;
        *ret = p;
        return 0;
}

void sse_parser_free(sse_parser *p) {
        if (!p)
                return;
        free(p->line.data);
        free(p->data.data);
        free(p->event.data);
        free(p->id.data);
        free(p);
}

void sse_parser_reset(sse_parser *p) {
        buf_clear(&p->line);
        buf_clear(&p->data);
        buf_clear(&p->event);
        p->have_data = false;
        p->skip_lf = false;
        p->bom_checked = false;
}

const char *sse_parser_last_id(const sse_parser *p) {
        return p->id.data ? p->id.data : "";
}

static int dispatch(sse_parser *p, sse_event_cb cb, void *userdata) {
        int r = 0;

        if (p->have_data) {
                sse_event e = {
                        .event = p->event.size > 0 ? p->event.data : "message",
                        .id = sse_parser_last_id(p),
                        .data = p->data.data ? p->data.data : "",
                        .data_size = p->data.size,
                };
                r = cb(&e, userdata);
        }
        buf_clear(&p->data);
        buf_clear(&p->event);
        p->have_data = false;
        return r;
}

static int process_line(sse_parser *p, sse_event_cb cb, void *userdata) {
        const char *line = p->line.data ? p->line.data : "";
        size_t n = p->line.size, name_len;
        const char *value;
        size_t value_len;
        int r;

        if (n == 0)
                return dispatch(p, cb, userdata);
        if (line[0] == ':')
                return 0;       /* comment / keep-alive */

        const char *colon = memchr(line, ':', n);
        if (colon) {
                name_len = (size_t) (colon - line);
                value = colon + 1;
                value_len = n - name_len - 1;
                if (value_len > 0 && *value == ' ') {
                        value++;
                        value_len--;
                }
        } else {
                name_len = n;
                value = "";
                value_len = 0;
        }

#define FIELD_IS(s) (name_len == strlen(s) && memcmp(line, s, name_len) == 0)
        if (FIELD_IS("data")) {
                if (p->have_data) {
                        r = buf_append(&p->data, "\n", 1, p->max_size);
                        if (r < 0)
                                return r;
                }
                r = buf_append(&p->data, value, value_len, p->max_size);
                if (r < 0)
                        return r;
                p->have_data = true;
        } else if (FIELD_IS("event")) {
                r = buf_set(&p->event, value, value_len, p->max_size);
                if (r < 0)
                        return r;
        } else if (FIELD_IS("id")) {
                if (!memchr(value, 0, value_len)) {
                        r = buf_set(&p->id, value, value_len, p->max_size);
                        if (r < 0)
                                return r;
                }
        }
        /* "retry" and unknown fields are ignored */
#undef FIELD_IS
        return 0;
}

int sse_parser_feed(sse_parser *p, const char *data, size_t size, sse_event_cb cb, void *userdata) {
        size_t i = 0;
        int r;

        if (p->broken)
                return -EMSGSIZE;

        while (i < size) {
                if (p->skip_lf) {
                        p->skip_lf = false;
                        if (data[i] == '\n') {
                                i++;
                                continue;
                        }
                }

                /* find the end of the line within this chunk */
                size_t j = i;
                while (j < size && data[j] != '\n' && data[j] != '\r')
                        j++;

                r = buf_append(&p->line, data + i, j - i, p->max_size);
                if (r < 0) {
                        p->broken = true;
                        return r;
                }
                if (j == size)
                        break;  /* the line continues in the next chunk */

                if (data[j] == '\r')
                        p->skip_lf = true;
                i = j + 1;

                if (!p->bom_checked) {
                        p->bom_checked = true;
                        if (p->line.size >= 3 && memcmp(p->line.data, "\xEF\xBB\xBF", 3) == 0) {
                                memmove(p->line.data, p->line.data + 3, p->line.size - 3 + 1);
                                p->line.size -= 3;
                        }
                }

                r = process_line(p, cb, userdata);
                buf_clear(&p->line);
                if (r == -EMSGSIZE || r == -ENOMEM) {
                        p->broken = true;
                        return r;
                }
                if (r != 0)
                        return r;
        }
        return 0;
}
