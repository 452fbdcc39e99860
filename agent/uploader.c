/* uploader.c: follows one job's events file (artifacts/<id>/job_events.jsonl, the spool) and uploads
 * it to POST /api/agent/v1/jobs/<id>/events in batches (at most 1000 events or 4 MiB of lines).
 * The request body is built by concatenation: a line event_line_check_raw() accepts is sent byte for
 * byte (no jansson parse or dump), any other line goes through event_line_parse() and is serialised.
 * Only complete lines are read, starting at the acknowledged offset; the offset advances only up to
 * the line carrying the controller's "acked" counter and is recorded in the job dir's ack file.
 * Bounded: never more than one batch window (plus one line of at most AGENT_EVENT_MAX_LINE) in memory.
 * spool.max_job_size: lines ending past it are not uploaded; one "verbose" truncation event with the
 * next counter replaces them (recorded in the job dir's spool-truncated file once acknowledged). */
#include "agent-internal.h"
#include "agent-exec.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include "drover/json-util.h"
#include "drover/log.h"
#include "drover/util.h"

#define UPLOAD_MAX_EVENTS 1000u
#define UPLOAD_MAX_BYTES (4u * 1024u * 1024u)
#define UPLOAD_COALESCE_USEC (20 * 1000)
#define UPLOAD_SCAN_CHUNK (64u * 1024u)

static int read_truncated(job_dir *d, uint64_t *ret_offset, int64_t *ret_counter) {
        _cleanup_free_ char *path = strjoin(d->root, "/" AGENT_JOB_TRUNCATED_FILE, NULL), *data = NULL;
        size_t size = 0;
        unsigned long long off;
        long long counter;

        if (!path)
                return -ENOMEM;
        int r = read_full_file(path, 128, &data, &size);
        if (r < 0)
                return r;
        if (sscanf(data, "%llu %lld", &off, &counter) != 2 || counter < 1)
                return -EBADMSG;
        *ret_offset = off;
        *ret_counter = counter;
        return 0;
}

static int write_truncated(job_dir *d, uint64_t offset, int64_t counter) {
        _cleanup_free_ char *path = strjoin(d->root, "/" AGENT_JOB_TRUNCATED_FILE, NULL);
        char buf[64];
        if (!path)
                return -ENOMEM;
        int n = snprintf(buf, sizeof buf, "%" PRIu64 " %" PRId64 "\n", offset, counter);
        return write_file_atomic_nosync(path, buf, (size_t) n, 0600);
}

static void note_write_failure(uploader *u, int r, const char *what) {
        bool first = false;
        if (r == -ENOSPC || r == -EDQUOT) {
                pthread_mutex_lock(&u->job->agent->lock);
                first = !u->job->disk_full;
                u->job->disk_full = true;
                pthread_mutex_unlock(&u->job->agent->lock);
        }
        if (first)
                log_error_errno(r, "Job %" PRId64 ": failed to record %s in %s: %m; the job's events and result "
                                "may not be recorded.", u->job->job_id, what, u->dir->root);
        else
                log_warning_errno(r, "Job %" PRId64 ": failed to record %s: %m", u->job->job_id, what);
}

int uploader_init(uploader *u, agent_job *j, job_dir *d) {
        uint64_t offset = 0, t_offset = 0;
        int64_t counter = 0, t_counter = 0;

        int r = job_dir_read_ack(d, &offset, &counter);
        if (r < 0) {
                log_warning_errno(r, "Job %" PRId64 ": cannot read the acknowledged offset, uploading from the start: %m",
                                  j->job_id);
                offset = 0;
                counter = 0;
        }
        *u = (uploader) {
                .job = j,
                .dir = d,
                .acked_offset = offset,
                .acked_counter = counter,
                .inotify_fd = -1,
        };
        r = read_truncated(d, &t_offset, &t_counter);
        if (r >= 0) {
                u->truncated = true;
                u->truncated_counter = t_counter;
                u->acked_offset = t_offset;
                u->acked_counter = t_counter;
        } else if (r != -ENOENT)
                log_warning_errno(r, "Job %" PRId64 ": cannot read %s, ignoring it: %m", j->job_id,
                                  AGENT_JOB_TRUNCATED_FILE);

        u->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (u->inotify_fd < 0)
                log_debug_errno(-errno, "inotify_init1() failed, polling once a second: %m");
        else if (inotify_add_watch(u->inotify_fd, d->artifacts,
                                   IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO) < 0) {
                log_debug_errno(-errno, "Cannot watch %s, polling once a second: %m", d->artifacts);
                close(u->inotify_fd);
                u->inotify_fd = -1;
        }
        return 0;
}

void uploader_done(uploader *u) {
        if (u->inotify_fd >= 0)
                close(u->inotify_fd);
        u->inotify_fd = -1;
}

void uploader_rewind(uploader *u) {
        u->rewind = true;
}

static uint64_t job_limit(uploader *u) {
        uint64_t l = u->job->agent->cfg->spool.max_job_bytes;
        return l > 0 ? l : UINT64_MAX;
}

/* Unacknowledged bytes that will still be uploaded (lines past the per-job limit will not). */
static void update_spool(uploader *u, uint64_t size) {
        uint64_t upto = MIN(size, job_limit(u));
        agent_job_set_spool(u->job, u->truncated || upto <= u->acked_offset ? 0 : upto - u->acked_offset);
}

void uploader_wait(uploader *u, uint64_t max_usec) {
        int timeout = (int) (max_usec / USEC_PER_MSEC);
        if (u->inotify_fd < 0) {
                usleep((useconds_t) max_usec);
                return;
        }
        struct pollfd p = { .fd = u->inotify_fd, .events = POLLIN };
        if (poll(&p, 1, timeout) > 0) {
                char buf[4096];
                usleep(UPLOAD_COALESCE_USEC);   /* let a burst of event lines land in one batch */
                while (read(u->inotify_fd, buf, sizeof buf) > 0)
                        ;
        }
}

static int events_file_size(uploader *u, uint64_t *ret) {
        struct stat st;
        if (stat(u->dir->events_path, &st) < 0)
                return -errno;
        *ret = (uint64_t) st.st_size;
        return 0;
}

bool uploader_complete(uploader *u, bool final) {
        uint64_t size = 0;
        if (u->rewind)
                return false;
        if (u->truncated)
                return true;    /* the rest is past spool.max_job_size and will not be uploaded */
        if (events_file_size(u, &size) < 0)
                return true;    /* no events file: nothing to upload */
        return size <= u->acked_offset;
}

static int pread_full(int fd, void *buf, size_t n, uint64_t off) {
        size_t done = 0;
        while (done < n) {
                ssize_t k = pread(fd, (char *) buf + done, n - done, (off_t) (off + done));
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return -ENODATA;  /* the file shrank */
                done += (size_t) k;
        }
        return 0;
}

/* Find the end of the line starting at off. *ret_len: its length without '\n'; *ret_next: the
 * offset after it. 0 if there is no complete line (and !final), 1 if found. */
static int find_line_end(int fd, uint64_t off, uint64_t size, bool final, uint64_t *ret_len, uint64_t *ret_next) {
        _cleanup_free_ char *chunk = malloc(UPLOAD_SCAN_CHUNK);
        if (!chunk)
                return -ENOMEM;
        for (uint64_t p = off; p < size;) {
                size_t n = (size_t) MIN((uint64_t) UPLOAD_SCAN_CHUNK, size - p);
                int r = pread_full(fd, chunk, n, p);
                if (r < 0)
                        return r;
                char *nl = memchr(chunk, '\n', n);
                if (nl) {
                        *ret_len = p + (uint64_t) (nl - chunk) - off;
                        *ret_next = *ret_len + off + 1;
                        return 1;
                }
                p += n;
        }
        if (!final || off >= size)
                return 0;
        *ret_len = size - off;
        *ret_next = size;
        return 1;
}

static json_t *oversized_placeholder(int64_t counter, uint64_t len) {
        char uuid[37];
        uuid_string(uuid);
        _cleanup_free_ char *msg = asprintf_safe("[drover] malformed event line (%" PRIu64 " bytes) replaced", len);
        if (!msg)
                return NULL;
        return json_pack("{s:s,s:I,s:s,s:s,s:{}}", "event", "warning", "counter", (json_int_t) counter,
                         "uuid", uuid, "stdout", msg, "event_data");
}

typedef struct batch_entry {
        int64_t counter;
        uint64_t end;           /* file offset after this line */
} batch_entry;

/* The request body, {"attempt":N,"events":[...]}, built as the lines are added: a line that
 * event_line_check_raw() accepts is copied as it is, any other event is serialised by jansson. */
typedef struct batch {
        char *body;
        size_t body_len, body_cap;
        batch_entry entries[UPLOAD_MAX_EVENTS];
        size_t n;
        int64_t expected;
        bool truncation;        /* the last entry is the truncation event */
        uint64_t truncation_offset;     /* where the first line not uploaded starts */
} batch;

static int batch_append(batch *b, const void *p, size_t n) {
        if (n > SIZE_MAX / 2 - b->body_len)
                return -ENOMEM;
        if (b->body_len + n + 1 > b->body_cap) {
                size_t cap = MAX(b->body_cap * 2, b->body_len + n + 1);
                cap = MAX(cap, (size_t) 64 * 1024);
                char *q = realloc(b->body, cap);
                if (!q)
                        return -ENOMEM;
                b->body = q;
                b->body_cap = cap;
        }
        memcpy(b->body + b->body_len, p, n);
        b->body_len += n;
        b->body[b->body_len] = 0;
        return 0;
}

/* Append one event (after a ',' unless it is the first). */
static int batch_append_raw(batch *b, const char *p, size_t n) {
        int r = 0;
        if (b->n > 0)
                r = batch_append(b, ",", 1);
        return r < 0 ? r : batch_append(b, p, n);
}

static int batch_append_event(batch *b, const json_t *ev) {
        _cleanup_free_ char *s = json_dumps(ev, JSON_COMPACT);
        if (!s)
                return -ENOMEM;
        return batch_append_raw(b, s, strlen(s));
}

/* The line starting at offset would end past spool.max_job_size: end the upload with one event
 * saying so instead of its lines (and all after it). */
static int batch_add_truncation(uploader *u, batch *b, uint64_t offset) {
        char uuid[37];
        uuid_string(uuid);
        uint64_t limit = job_limit(u);
        _cleanup_free_ char *msg = asprintf_safe("[drover] output truncated: spool limit of %" PRIu64 " bytes reached",
                                                 limit);
        if (!msg)
                return -ENOMEM;
        _cleanup_json_ json_t *ev = json_pack("{s:s,s:I,s:s,s:s,s:s,s:{}}", "event", "verbose", "counter",
                                              (json_int_t) b->expected, "uuid", uuid, "parent_uuid", "", "stdout", msg,
                                              "event_data");
        if (!ev)
                return -ENOMEM;
        int r;
        r = batch_append_event(b, ev);
        if (r < 0)
                return r;
        b->entries[b->n++] = (batch_entry) { .counter = b->expected, .end = offset };
        b->expected++;
        b->truncation = true;
        b->truncation_offset = offset;
        return 0;
}

static int batch_add(uploader *u, batch *b, const char *line, size_t len, uint64_t real_len, uint64_t end) {
        _cleanup_json_ json_t *ev = NULL;
        bool malformed = false;
        int64_t raw_counter;

        if (line && event_line_check_raw(line, len, b->expected, &raw_counter)) {
                int r = batch_append_raw(b, line, len);
                if (r < 0)
                        return r;
                b->entries[b->n++] = (batch_entry) { .counter = raw_counter, .end = end };
                b->expected = raw_counter + 1;
                return 0;
        }
        if (!line)
                ev = oversized_placeholder(b->expected, real_len);
        else {
                int r = event_line_parse(line, len, b->expected, &ev, &malformed);
                if (r < 0)
                        return r;
        }
        if (!ev)
                return -ENOMEM;
        if (!line || malformed)
                log_warning("Job %" PRId64 ": malformed event line (%" PRIu64 " bytes) at counter %" PRId64 " replaced.",
                            u->job->job_id, real_len, b->expected);

        const json_t *c = json_object_get(ev, "counter");
        int64_t counter = json_is_integer(c) ? json_integer_value(c) : b->expected;
        int r = batch_append_event(b, ev);
        if (r < 0)
                return r;
        b->entries[b->n++] = (batch_entry) { .counter = counter, .end = end };
        b->expected = counter + 1;
        return 0;
}

/* Fill the batch from the acknowledged offset. */
static int batch_fill(uploader *u, int fd, uint64_t size, bool final, batch *b) {
        uint64_t pos = u->acked_offset, limit = job_limit(u);
        size_t wlen = (size_t) MIN((uint64_t) UPLOAD_MAX_BYTES, size - pos);
        _cleanup_free_ char *buf = NULL;
        int r;

        if (pos >= limit)
                return batch_add_truncation(u, b, pos);
        buf = malloc(wlen + 1);
        if (!buf)
                return -ENOMEM;
        r = pread_full(fd, buf, wlen, pos);
        if (r < 0)
                return r;

        size_t p = 0;
        while (b->n < UPLOAD_MAX_EVENTS && p < wlen) {
                char *nl = memchr(buf + p, '\n', wlen - p);
                if (nl) {
                        size_t len = (size_t) (nl - (buf + p));
                        if (pos + p + len + 1 > limit)
                                return batch_add_truncation(u, b, pos + p);
                        r = batch_add(u, b, buf + p, len, len, pos + p + len + 1);
                        if (r < 0)
                                return r;
                        p += len + 1;
                        continue;
                }
                if (b->n > 0)
                        break;  /* upload what we have; the rest starts the next batch */

                if (pos + wlen == size) {
                        /* an incomplete last line: only once the unit has finished */
                        if (size > limit && (final || b->n == 0))
                                return batch_add_truncation(u, b, pos + p);
                        if (final) {
                                r = batch_add(u, b, buf + p, wlen - p, wlen - p, size);
                                if (r < 0)
                                        return r;
                        }
                        break;
                }

                /* a single line longer than the window */
                if (pos + wlen >= limit)
                        return batch_add_truncation(u, b, pos);
                uint64_t len, next;
                r = find_line_end(fd, pos, size, final, &len, &next);
                if (r <= 0)
                        return r;
                if (next > limit)
                        return batch_add_truncation(u, b, pos);
                if (len > AGENT_EVENT_MAX_LINE)
                        r = batch_add(u, b, NULL, 0, len, next);
                else {
                        _cleanup_free_ char *line = malloc((size_t) len + 1);
                        if (!line)
                                return -ENOMEM;
                        r = pread_full(fd, line, (size_t) len, pos);
                        if (r >= 0)
                                r = batch_add(u, b, line, (size_t) len, len, next);
                }
                if (r < 0)
                        return r;
                break;
        }
        return 0;
}

static void batch_freep(batch **b) {
        if (*b)
                free((*b)->body);
        free(*b);
}

int uploader_run_once(uploader *u, http_client *c, bool final, char **ret_retry_after) {
        agent_job *j = u->job;
        _cleanup_close_ int fd = -1;
        _cleanup_(batch_freep) batch *b = NULL;
        uint64_t size;
        int r;

        if (u->rewind) {
                log_notice("Job %" PRId64 ": the controller lost events, uploading them again.", j->job_id);
                u->acked_offset = 0;
                u->acked_counter = 0;
                u->rewind = false;
                u->truncated = false;
        }
        if (u->truncated) {
                agent_job_set_spool(j, 0);
                return 0;
        }

        fd = open(u->dir->events_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : log_warning_errno(-errno, "Cannot open %s: %m", u->dir->events_path);
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        size = (uint64_t) st.st_size;
        update_spool(u, size);
        if (size <= u->acked_offset)
                return 0;

        b = calloc(1, sizeof *b);
        if (!b)
                return -ENOMEM;
        b->expected = u->acked_counter + 1;
        char prefix[64];
        int k = snprintf(prefix, sizeof prefix, "{\"attempt\":%" PRId64 ",\"events\":[", j->attempt);
        r = batch_append(b, prefix, (size_t) k);
        if (r < 0)
                return r;
        r = batch_fill(u, fd, size, final, b);
        if (r < 0)
                return log_warning_errno(r, "Job %" PRId64 ": failed to read %s: %m", j->job_id, u->dir->events_path);
        if (b->n == 0)
                return 0;
        r = batch_append(b, "]}", 2);
        if (r < 0)
                return r;

        _cleanup_free_ char *path = asprintf_safe("/api/agent/v1/jobs/%" PRId64 "/events", j->job_id);
        if (!path)
                return -ENOMEM;

        http_response resp = {};
        r = http_client_request_raw(c, "POST", path, "application/json", b->body, b->body_len, &resp);
        if (r >= 0 && resp.json && resp.status >= 200 && resp.status < 300)
                agent_apply_control(j->agent, resp.json);   /* as agent_request() */
        if (r >= 0 && resp.status == 409) {
                _cleanup_free_ char *why = agent_describe_failure(r, &resp);
                log_notice("Job %" PRId64 ": event upload refused (%s); dropping this run.", j->job_id, strna(why));
                http_response_clear(&resp);
                return -ESTALE;
        }
        if (r < 0 || resp.status != 200) {
                _cleanup_free_ char *why = agent_describe_failure(r, &resp);
                if (agent_response_retryable(r, &resp))
                        agent_note_reachable(j->agent, false, why);
                else
                        log_warning("Job %" PRId64 ": event upload refused: %s; retrying.", j->job_id, strna(why));
                if (ret_retry_after && resp.retry_after)
                        *ret_retry_after = strdup(resp.retry_after);
                http_response_clear(&resp);
                return -EAGAIN;
        }
        agent_note_reachable(j->agent, true, NULL);

        const json_t *acked_j = json_object_get(resp.json, "acked");
        int64_t acked = json_is_integer(acked_j) ? json_integer_value(acked_j) : -1;
        http_response_clear(&resp);
        if (acked < 0) {
                log_warning("Job %" PRId64 ": event upload answer carries no \"acked\"; retrying.", j->job_id);
                return -EAGAIN;
        }
        if (acked < u->acked_counter) {
                uploader_rewind(u);
                return 1;
        }

        /* Advance to the last line whose counter the controller holds contiguously. */
        ssize_t idx = -1;
        for (size_t i = 0; i < b->n; i++)
                if (b->entries[i].counter <= acked)
                        idx = (ssize_t) i;
        if (idx < 0) {
                log_warning("Job %" PRId64 ": controller acknowledged counter %" PRId64 " only, expected %" PRId64
                            " or more; retrying.", j->job_id, acked, b->entries[0].counter);
                return -EAGAIN;
        }
        u->acked_offset = b->entries[idx].end;
        u->acked_counter = b->entries[idx].counter;
        if (b->truncation && (size_t) idx == b->n - 1) {
                /* Record it before the ack: a restarted agent must not upload past the limit. */
                r = write_truncated(u->dir, b->truncation_offset, u->acked_counter);
                if (r < 0)
                        note_write_failure(u, r, "the spool truncation");
                u->truncated = true;
                u->truncated_counter = u->acked_counter;
                log_warning("Job %" PRId64 ": its events file exceeds spool.max_job_size (%" PRIu64 " bytes); further "
                            "output is not uploaded (truncation event at counter %" PRId64 ").", j->job_id,
                            job_limit(u), u->acked_counter);
        }
        r = job_dir_write_ack(u->dir, u->acked_offset, u->acked_counter);
        if (r < 0)
                note_write_failure(u, r, "the acknowledged offset");
        update_spool(u, size);
        log_debug("Job %" PRId64 ": %zu events uploaded, acknowledged up to counter %" PRId64 ".", j->job_id,
                  (size_t) idx + 1, u->acked_counter);
        return 1;
}
