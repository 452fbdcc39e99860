/* sse.h: an incremental parser for Server-Sent Events (text/event-stream), as droverctl reads
 * from GET /api/v2/jobs/<id>/stream/. Feed it the bytes in whatever chunks the network delivers;
 * it calls back once per complete event (a blank line ends an event). Lines may end in LF, CRLF
 * or CR, also when the CR and LF arrive in different chunks. Every size is limited. */
#pragma once

#include <stddef.h>
#include "drover/macro.h"

#define SSE_DEFAULT_MAX_EVENT_SIZE (16U * 1024U * 1024U)

typedef struct sse_event {
        const char *event;      /* "event:" field, "message" when absent */
        const char *id;         /* the last "id:" seen in the stream (persists across events), "" if none */
        const char *data;       /* "data:" lines joined with '\n'; NUL terminated */
        size_t data_size;
} sse_event;

/* Return 0 to continue, non-zero to stop: sse_parser_feed() then returns that value at once. */
typedef int (*sse_event_cb)(const sse_event *e, void *userdata);

typedef struct sse_parser sse_parser;

/* max_event_size bounds one line and one event's data (0: SSE_DEFAULT_MAX_EVENT_SIZE). */
int sse_parser_new(size_t max_event_size, sse_parser **ret);
void sse_parser_free(sse_parser *p);
static inline void sse_parser_freep(sse_parser **p) { if (*p) sse_parser_free(*p); }
#define _cleanup_sse_parser_ _cleanup_(sse_parser_freep)

/* Parse a chunk. Returns 0, the callback's non-zero value, or -EMSGSIZE when a line or an
 * event exceeds the limit (the parser is then unusable), -ENOMEM. */
int sse_parser_feed(sse_parser *p, const char *data, size_t size, sse_event_cb cb, void *userdata);

/* Forget a partially received event and line (e.g. before reconnecting); keeps the last id. */
void sse_parser_reset(sse_parser *p);

/* The last "id:" value seen ("" if none). */
const char *sse_parser_last_id(const sse_parser *p);
