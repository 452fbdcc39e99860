/* bench-storage-ingest.c: job event ingest throughput of the storage backend. Inserts synthetic
 * ansible-runner shaped runner_on_ok events (with a realistic event_data, ~800 bytes of compact
 * JSON each) for one job in batches through storage_events_insert() into a fresh database, and
 * prints events/s, elapsed time and the acknowledged counter. Prints figures; never asserts.
 *
 * Usage: bench-storage-ingest [EVENTS [BATCH [DB_DIR|- [PAD]]]]   (defaults 200000, 1000, "-" = a
 * mkdtemp dir under /var/tmp that is removed afterwards, PAD = extra bytes of stdout per event) */
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <sys/stat.h>
#include <time.h>

#include "drover/json-util.h"
#include "drover/log.h"
#include "storage.h"

static uint64_t clock_usec(clockid_t clock) {
        struct timespec ts;
        clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static void fake_uuid(char buf[static 37], uint64_t n, unsigned salt) {
        snprintf(buf, 37, "%08x-%04x-4%03x-8%03x-%012" PRIx64, (unsigned) (n * 2654435761u) ^ salt,
                 (unsigned) (n & 0xffff), (unsigned) ((n >> 4) & 0xfff), salt & 0xfff, n * 11400714819323198485u >> 16);
}

/* One runner_on_ok event as ansible-runner's awx_display callback sends it. */
static json_t *make_event(int64_t counter, const char *pad) {
        char uuid[37], parent[37], play_uuid[37], task_uuid[37], pb_uuid[37], host[32], stdout_text[64];
        int h = (int) (counter % 200);

        fake_uuid(uuid, (uint64_t) counter, 0xabc);
        fake_uuid(parent, (uint64_t) counter / 200, 0x123);
        fake_uuid(play_uuid, 1, 0x456);
        fake_uuid(task_uuid, (uint64_t) counter / 200, 0x123);
        fake_uuid(pb_uuid, 1, 0x789);
        snprintf(host, sizeof host, "web-%03d", h);
        snprintf(stdout_text, sizeof stdout_text, "ok: [%s]", host);
        _cleanup_free_ char *out = NULL;
        if (asprintf(&out, "%s%s", stdout_text, pad) < 0)
                return NULL;

        json_t *e = json_pack(
                "{s:s, s:I, s:s, s:I, s:I, s:s, s:s, s:i, s:s, s:s,"
                " s:{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s,"
                "    s:{s:b, s:{s:{s:s, s:s}}, s:b},"
                "    s:s, s:s, s:f, s:s}}",
                "uuid", uuid, "counter", (json_int_t) counter, "stdout", out,
                "start_line", (json_int_t) counter * 2, "end_line", (json_int_t) counter * 2 + 1,
                "runner_ident", "1", "event", "runner_on_ok", "pid", 41522,
                "created", "2026-11-23T06:30:00.123456", "parent_uuid", parent,
                "event_data",
                "playbook", "site.yml", "playbook_uuid", pb_uuid, "play", "Configure web servers",
                "play_uuid", play_uuid, "task", "Install packages",
                "task_uuid", task_uuid, "task_action", "ansible.builtin.package",
                "task_path", "roles/web/tasks/main.yml:12", "role", "web",
                "host", host, "remote_addr", host,
                "res",
                "changed", 0, "invocation", "module_args", "name", "nginx", "state", "present",
                "_ansible_no_log", 0,
                "start", "2026-11-23T06:29:59.623456", "end", "2026-11-23T06:30:00.120001",
                "duration", 0.496545, "uuid", uuid);
        return e;
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(p);
}

int main(int argc, char *argv[]) {
        int64_t n_events = argc > 1 ? strtoll(argv[1], NULL, 10) : 200000;
        int64_t batch = argc > 2 ? strtoll(argv[2], NULL, 10) : 1000;
        char dir[PATH_MAX], url[PATH_MAX + 32];
        bool own_dir = argc <= 3 || streq(argv[3], "-");
        long pad_len = argc > 4 ? strtol(argv[4], NULL, 10) : 0;
        _cleanup_storage_ storage *s = NULL;
        int r;

        if (n_events <= 0 || batch <= 0 || batch > 100000 || pad_len < 0 || pad_len > 1000000) {
                fprintf(stderr, "usage: %s [EVENTS [BATCH [DB_DIR|- [PAD]]]]\n", argv[0]);
                return 2;
        }
        log_set_max_level(LOG_LEVEL_WARNING);

        if (own_dir) {
                snprintf(dir, sizeof dir, "/var/tmp/bench-storage-XXXXXX");
                if (!mkdtemp(dir)) {
                        perror("mkdtemp");
                        return 1;
                }
        } else
                snprintf(dir, sizeof dir, "%s", argv[3]);
        snprintf(url, sizeof url, "sqlite:%s/bench.db", dir);

        r = storage_open(url, &s);
        if (r < 0)
                return 1;

        /* One batch of events, built once; counters and uuids are rewritten for every batch so the
         * timed loop measures storage, not building JSON. */
        _cleanup_free_ char *pad = malloc((size_t) pad_len + 1);
        if (!pad)
                return 1;
        memset(pad, '.', (size_t) pad_len);
        pad[pad_len] = 0;
        _cleanup_json_ json_t *events = json_array();
        for (int64_t i = 0; i < batch; i++)
                json_array_append_new(events, make_event(i + 1, pad));

        char *sample = json_dumps(json_array_get(events, 0), JSON_COMPACT);
        size_t sample_size = sample ? strlen(sample) : 0;
        free(sample);

        int64_t acked = 0, inserted = 0;
        uint64_t t0 = clock_usec(CLOCK_MONOTONIC), cpu0 = clock_usec(CLOCK_PROCESS_CPUTIME_ID),
                 thread0 = clock_usec(CLOCK_THREAD_CPUTIME_ID);
        while (inserted < n_events) {
                int64_t n = MIN(batch, n_events - inserted);
                json_t *b = events;
                _cleanup_json_ json_t *partial = NULL;
                if (n < batch) {
                        partial = json_array();
                        for (int64_t i = 0; i < n; i++)
                                json_array_append(partial, json_array_get(events, (size_t) i));
                        b = partial;
                }
                for (int64_t i = 0; i < n; i++) {
                        json_t *e = json_array_get(b, (size_t) i);
                        char uuid[37];
                        fake_uuid(uuid, (uint64_t) (inserted + i + 1), 0xabc);
                        json_integer_set(json_object_get(e, "counter"), inserted + i + 1);
                        json_string_set(json_object_get(e, "uuid"), uuid);
                }
                r = storage_events_insert(s, 1, 1, b, &acked);
                if (r < 0) {
                        fprintf(stderr, "storage_events_insert failed: %s\n", strerror(-r));
                        return 1;
                }
                inserted += n;
        }
        uint64_t elapsed = clock_usec(CLOCK_MONOTONIC) - t0, cpu = clock_usec(CLOCK_PROCESS_CPUTIME_ID) - cpu0,
                 thread_cpu = clock_usec(CLOCK_THREAD_CPUTIME_ID) - thread0;

        int64_t count = 0;
        (void) storage_events_list(s, 1, NULL, NULL, &count);
        storage_close(TAKE_PTR(s));

        struct stat st = {};
        char dbpath[PATH_MAX + 16];
        snprintf(dbpath, sizeof dbpath, "%s/bench.db", dir);
        (void) stat(dbpath, &st);

        printf("events:        %" PRIi64 " in batches of %" PRIi64 " (one job)\n", inserted, batch);
        printf("event size:    %zu bytes (compact JSON)\n", sample_size);
        printf("elapsed:       %.3f s\n", (double) elapsed / 1e6);
        printf("throughput:    %.0f events/s (%.1f MB/s of event JSON)\n",
               (double) inserted * 1e6 / (double) elapsed,
               (double) inserted * (double) sample_size / (double) elapsed);
        printf("cpu time:      %.3f s in the inserting thread, %.3f s whole process (checkpointer included)\n",
               (double) thread_cpu / 1e6, (double) cpu / 1e6);
        printf("per event:     %.2f us of inserting-thread cpu\n", (double) thread_cpu / (double) inserted);
        printf("acked counter: %" PRIi64 "\n", acked);
        printf("stored events: %" PRIi64 "\n", count);
        printf("database size: %.1f MB\n", (double) st.st_size / 1e6);

        if (own_dir)
                nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        return 0;
}
