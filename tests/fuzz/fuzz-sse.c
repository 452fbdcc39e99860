/* fuzz-sse.c: fuzz target for droverctl's Server-Sent Events parser (cli/sse.c), which reads
 * what a (possibly hostile or broken) controller streams. Input: byte 0 seeds how the stream is
 * cut into chunks, byte 1 picks the size limit, the rest is the stream. The stream is parsed
 * once in one piece and once in pseudo-random chunks (1..64 bytes, so CR and LF of one line end
 * land in different chunks): both runs must return the same and deliver the same events. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "drover/log.h"
#include "sse.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct record {
        char *data;
        size_t size, allocated;
        size_t max_event_size;
        unsigned events;
} record;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        log_set_max_level(getenv("FUZZ_VERBOSE") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERR - 1);  /* quiet unless asked */
        return 0;
}

static void record_add(record *r, const void *p, size_t n) {
        if (r->size + n > r->allocated) {
                size_t a = r->allocated * 2 + n + 256;
                char *d = realloc(r->data, a);
                if (!d)
                        abort();
                r->data = d;
                r->allocated = a;
        }
        memcpy(r->data + r->size, p, n);
        r->size += n;
}

static int on_event(const sse_event *e, void *userdata) {
        record *r = userdata;
        size_t le = strlen(e->event), li = strlen(e->id);

        assert(e->data && e->data[e->data_size] == 0);
        assert(e->data_size <= r->max_event_size);
        assert((le <= r->max_event_size || strcmp(e->event, "message") == 0) && li <= r->max_event_size);
        record_add(r, e->event, le + 1);
        record_add(r, e->id, li + 1);
        record_add(r, &e->data_size, sizeof e->data_size);
        record_add(r, e->data, e->data_size);
        r->events++;
        return 0;
}

static int parse(const char *s, size_t n, size_t max, uint32_t seed, record *rec) {
        _cleanup_sse_parser_ sse_parser *p = NULL;
        int r = 0;

        assert(sse_parser_new(max, &p) == 0);
        rec->max_event_size = max ? max : SSE_DEFAULT_MAX_EVENT_SIZE;
        if (seed == 0)
                r = sse_parser_feed(p, s, n, on_event, rec);
        else
                for (size_t i = 0; i < n && r == 0;) {
                        seed = seed * 1103515245u + 12345u;
                        size_t k = MIN((size_t) ((seed >> 16) % 64) + 1, n - i);
                        r = sse_parser_feed(p, s + i, k, on_event, rec);
                        i += k;
                }
        /* once broken, it stays broken */
        if (r == -EMSGSIZE)
                assert(sse_parser_feed(p, "\n\n", 2, on_event, rec) == -EMSGSIZE);
        (void) strlen(sse_parser_last_id(p));
        return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        record whole = {}, chunked = {};
        size_t max;
        int r1, r2;

        if (size < 2)
                return 0;
        max = data[1] % 4 == 0 ? 0 : (size_t) data[1];
        r1 = parse((const char *) data + 2, size - 2, max, 0, &whole);
        r2 = parse((const char *) data + 2, size - 2, max, (uint32_t) data[0] + 1, &chunked);
        assert(r1 == r2);
        assert(whole.events == chunked.events);
        assert(whole.size == chunked.size);
        assert(whole.size == 0 || memcmp(whole.data, chunked.data, whole.size) == 0);
        free(whole.data);
        free(chunked.data);
        return 0;
}
