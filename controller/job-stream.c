/* job-stream.c: GET /api/v2/jobs/<id>/stream/, a job's events as Server-Sent Events: replays the
 * stored events after a counter, follows new ones as they arrive, pings every 15 s and ends with a
 * "status" event once the job is final and every event has been sent. */
#include <inttypes.h>

#include <jansson.h>
#include "drover/json-util.h"

#include "controller.h"
#include "drover/log.h"
#include "drover/util.h"
#include "http.h"

#define PING_INTERVAL_USEC (15 * USEC_PER_SEC)
#define EVENTS_PER_FETCH 100

typedef struct job_stream {
        controller *c;
        int64_t job_id;
        int64_t last_counter;
        uint64_t last_send_usec;
        char *buf;
        size_t size, off;
        bool done;
} job_stream;

static void job_stream_free(void *userdata) {
        job_stream *js = userdata;

        if (!js)
                return;
        controller_slot_release(js->c, &js->c->streams);
        free(js->buf);
        free(js);
}

static int stream_append(job_stream *js, const char *s) {
        size_t l = strlen(s);
        char *b;

        b = realloc(js->buf, js->size + l + 1);
        if (!b)
                return -ENOMEM;
        js->buf = b;
        memcpy(js->buf + js->size, s, l + 1);
        js->size += l;
        return 0;
}

/* Queue stored events after last_counter, in order and without gaps (up to the highest counter N
 * with 1..N all stored: a later event never overtakes a missing one); returns how many. */
static int stream_fetch_events(job_stream *js) {
        _cleanup_json_ json_t *events = NULL, *after = NULL, *upto = NULL;
        int64_t acked = 0;
        size_t i;
        json_t *ev;
        int r, n = 0;

        r = storage_events_acked(js->c->storage, js->job_id, &acked);
        if (r < 0)
                return r;
        if (acked <= js->last_counter)
                return 0;
        after = json_integer(js->last_counter);
        upto = json_integer(acked);
        if (!after || !upto)
                return -ENOMEM;
        storage_filter f[] = {
                { .field = "counter", .op = SF_GT, .value = after },
                { .field = "counter", .op = SF_LTE, .value = upto },
        };
        storage_query q = { .filters = f, .n_filters = ELEMENTSOF(f), .order_by = "counter", .limit = EVENTS_PER_FETCH };
        r = storage_events_list(js->c->storage, js->job_id, &q, &events, NULL);
        if (r < 0)
                return r;
        json_array_foreach(events, i, ev) {
                _cleanup_free_ char *data = json_dumps(ev, JSON_COMPACT), *chunk = NULL;
                int64_t counter = json_get_int(ev, "counter", 0);

                if (!data)
                        return -ENOMEM;
                chunk = asprintf_safe("id: %" PRId64 "\nevent: job_event\ndata: %s\n\n", counter, data);
                if (!chunk)
                        return -ENOMEM;
                r = stream_append(js, chunk);
                if (r < 0)
                        return r;
                if (counter > js->last_counter)
                        js->last_counter = counter;
                n++;
        }
        return n;
}

/* 1 if the job is final with its events complete (status event queued), 0 if not. */
static int stream_check_final(job_stream *js) {
        _cleanup_json_ json_t *job = NULL, *status = NULL;
        _cleanup_free_ char *data = NULL, *chunk = NULL;
        int r;

        r = storage_obj_get(js->c->storage, ST_JOB, js->job_id, &job);
        if (r == -ENOENT) {
                js->done = true;   /* deleted while we streamed */
                return 1;
        }
        if (r < 0)
                return r;
        /* final implies complete: the agent API finalizes only once events 1..final_counter are stored */
        if (!scheduler_status_is_final(json_get_string(job, "status", "")))
                return 0;

        /* events stored between our last fetch and the final status */
        r = stream_fetch_events(js);
        if (r != 0)
                return r < 0 ? r : 0;

        status = json_pack("{s:I, s:O?, s:O?, s:O?, s:O?}", "id", (json_int_t) js->job_id,
                           "status", json_object_get(job, "status"), "failed", json_object_get(job, "failed"),
                           "finished", json_object_get(job, "finished"), "elapsed", json_object_get(job, "elapsed"));
        if (!status)
                return -ENOMEM;
        data = json_dumps(status, JSON_COMPACT);
        if (!data)
                return -ENOMEM;
        chunk = asprintf_safe("event: status\ndata: %s\n\n", data);
        if (!chunk)
                return -ENOMEM;
        r = stream_append(js, chunk);
        if (r < 0)
                return r;
        js->done = true;
        return 1;
}

static ssize_t job_stream_read(void *userdata, char *buf, size_t max) {
        job_stream *js = userdata;
        int r;

        for (;;) {
                if (js->off < js->size) {
                        size_t n = MIN(max, js->size - js->off);
                        memcpy(buf, js->buf + js->off, n);
                        js->off += n;
                        if (js->off == js->size)
                                js->off = js->size = 0;
                        js->last_send_usec = now_monotonic_usec();
                        return (ssize_t) n;
                }
                if (js->done || js->c->shutting_down)
                        return -1;

                uint64_t gen = controller_generation(js->c);
                r = stream_fetch_events(js);
                if (r == 0)
                        r = stream_check_final(js);
                if (r < 0) {
                        log_error_errno(r, "Job %" PRId64 " stream failed: %m", js->job_id);
                        return -2;
                }
                if (js->size > 0)
                        continue;

                uint64_t now = now_monotonic_usec(), ping_at = js->last_send_usec + PING_INTERVAL_USEC;
                if (now >= ping_at) {
                        if (stream_append(js, ": ping\n\n") < 0)
                                return -2;
                        continue;
                }
                (void) controller_wait(js->c, &gen, ping_at - now);
        }
}

static int job_stream_open(controller *c, http_request *req, http_response *resp) {
        _cleanup_json_ json_t *job = NULL;
        const char *after;
        int64_t job_id = req->n_ids > 0 ? req->ids[0] : 0, n = 0;
        job_stream *js;
        int r;

        r = storage_obj_get(c->storage, ST_JOB, job_id, &job);
        if (r == -ENOENT)
                return http_respond_detail(resp, 404, "Not found.");
        if (r < 0)
                return r;

        after = req->header_last_event_id;
        if (isempty(after))
                after = http_query_get(req, "counter__gt");
        if (!isempty(after)) {
                char *end;
                errno = 0;
                n = strtoll(after, &end, 10);
                if (errno != 0 || *end != 0 || n < 0)
                        return http_respond_field_error(resp, "counter__gt", "A valid integer is required.");
        }

        if (controller_slot_acquire(c, &c->streams, c->config->limits.max_streams) < 0) {
                resp->retry_after = strdup("5");
                return http_respond_detail(resp, 429, "Too many open streams; retry later.");
        }
        js = calloc(1, sizeof(*js));
        if (!js) {
                controller_slot_release(c, &c->streams);
                return -ENOMEM;
        }
        *js = (job_stream) { .c = c, .job_id = job_id, .last_counter = n, .last_send_usec = now_monotonic_usec() };

        resp->status = 200;
        resp->content_type = "text/event-stream";
        resp->stream = job_stream_read;
        resp->stream_userdata = js;
        resp->stream_free = job_stream_free;
        return 0;
}

const http_route stream_routes[] = {
        { "GET", "/api/v2/jobs/%/stream/", HTTP_AUTH_USER, job_stream_open },
        {}
};
