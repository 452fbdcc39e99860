/* storage-sqlite.c: the SQLite backend of storage.h.
 *
 * One connection opened without SQLite's own mutex (SQLITE_OPEN_NOMUTEX); every call takes the
 * recursive mutex in struct storage, and storage_transaction() holds it across the whole
 * transaction (nested transactions are SAVEPOINTs). WAL journal, synchronous=NORMAL, foreign keys
 * on, busy timeout 5 s, 16 KiB pages (new databases). The schema comes from storage-migrations.c,
 * applied at open. A second connection, used only by a checkpointer thread, copies the WAL into
 * the database so that writers do not wait for it (see CKPT_PAGES).
 *
 * Objects: table obj_<type> (id, doc). Filters become a WHERE clause with bound parameters: field
 * "id" is the id column, any other field json_extract(doc, '$.<field>') (the same expression the
 * indexes use). Values are bound by their JSON type, so an integer filter only matches integer
 * fields (json_extract gives 1/0 for true/false, and so do the bound booleans).
 * SF_NE is "IS NOT" (documents without the field match). Negated filters (not__) use
 * NOT IFNULL((expr), 0): like Django's exclude(), a document whose field is missing or null is kept.
 *
 * Deleting an object also removes the relation pairs that name it (on the side of its type), and
 * deleting a job also deletes its events.
 *
 * Job events: table job_events keyed by (job, counter); the per-job acknowledged counter lives in
 * job_event_ack. An event's "id" in listings is job * 1000000000 + counter (counters are limited
 * to 1..999999999), stable and unique across jobs. Ingest is the hot path: one transaction per
 * batch (events are validated and serialised before the lock is taken), cached prepared statements,
 * and the event text written by a small JSON writer of our own (byte-identical to
 * json_dumps(JSON_COMPACT), several times faster). */
#include "storage.h"

#include <pthread.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <inttypes.h>

#include "drover/log.h"
#include "drover/json-util.h"
#include "storage-migrations.h"

#define STMT_CACHE_MAX 192
#define FIELD_NAME_MAX 64
#define FILTER_IN_MAX 1000
#define EVENT_COUNTER_MAX INT64_C(999999999)
#define EVENT_ID_FACTOR INT64_C(1000000000)
/* WAL checkpoints: at CKPT_PAGES (16 MiB) the checkpointer thread is woken and copies the WAL into
 * the database while writers go on. The WAL only starts over when a write transaction begins with
 * every frame copied, which a busy writer never sees; so at CKPT_PAGES_SYNC the writer checkpoints
 * itself, which then only copies the few frames the thread has not (PASSIVE: never waits). */
#define CKPT_PAGES 1000
#define CKPT_PAGES_SYNC 2000

enum {
        STMT_EVENT_INSERT,
        STMT_ACK_GET,
        STMT_ACK_SCAN,
        STMT_ACK_SET,
        _STMT_FIXED_MAX,
};

static const char *const fixed_sql[_STMT_FIXED_MAX] = {
        [STMT_EVENT_INSERT] =
                "INSERT OR IGNORE INTO job_events (job, counter, attempt, event, uuid, parent_uuid, "
                "host_name, task, play, failed, changed, created, doc) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        [STMT_ACK_GET] = "SELECT acked FROM job_event_ack WHERE job = ?1",
        [STMT_ACK_SCAN] = "SELECT counter FROM job_events WHERE job = ?1 AND counter > ?2 ORDER BY counter",
        [STMT_ACK_SET] = "INSERT INTO job_event_ack (job, acked) VALUES (?1, ?2) "
                         "ON CONFLICT (job) DO UPDATE SET acked = excluded.acked",
};

typedef struct stmt_cache_entry {
        char *sql;
        sqlite3_stmt *stmt;
} stmt_cache_entry;

struct storage {
        sqlite3 *db;
        pthread_mutex_t lock;           /* recursive */
        unsigned tx_depth;
        int schema_version;
        sqlite3_stmt *fixed[_STMT_FIXED_MAX];
        stmt_cache_entry cache[STMT_CACHE_MAX];
        size_t n_cache;

        /* WAL checkpoints run on a thread with its own connection, so that copying the WAL
         * into the database (and its fsync) does not stall writers. */
        sqlite3 *ckpt_db;
        pthread_t ckpt_thread;
        bool ckpt_running;
        pthread_mutex_t ckpt_lock;
        pthread_cond_t ckpt_cond;
        bool ckpt_requested, ckpt_stop;
};

static const char *const storage_type_table[_ST_MAX] = {
        [ST_ORGANIZATION] = "organizations",
        [ST_USER] = "users",
        [ST_TOKEN] = "tokens",
        [ST_INVENTORY] = "inventories",
        [ST_HOST] = "hosts",
        [ST_GROUP] = "groups",
        [ST_PROJECT] = "projects",
        [ST_JOB_TEMPLATE] = "job_templates",
        [ST_JOB] = "jobs",
        [ST_INSTANCE] = "instances",
        [ST_INSTANCE_GROUP] = "instance_groups",
        [ST_ENROLLMENT_TOKEN] = "enrollment_tokens",
        [ST_CREDENTIAL_TYPE] = "credential_types",
        [ST_CREDENTIAL] = "credentials",
        [ST_EXECUTION_ENVIRONMENT] = "execution_environments",
};

const char *storage_type_to_string(storage_type t) {
        if (t < 0 || t >= _ST_MAX)
                return NULL;
        return storage_type_table[t];
}

storage_type storage_type_from_string(const char *s) {
        if (!s)
                return _ST_INVALID;
        for (int i = 0; i < _ST_MAX; i++)
                if (streq(storage_type_table[i], s))
                        return (storage_type) i;
        return _ST_INVALID;
}

/* Which object types sit on each side of a relation (for purging pairs on delete). */
static const struct {
        storage_type a, b;
} rel_sides[_SR_MAX] = {
        [SR_GROUP_HOSTS] = { ST_GROUP, ST_HOST },
        [SR_GROUP_CHILDREN] = { ST_GROUP, ST_GROUP },
        [SR_INSTANCE_GROUP_INSTANCES] = { ST_INSTANCE_GROUP, ST_INSTANCE },
        [SR_JOB_TEMPLATE_INSTANCE_GROUPS] = { ST_JOB_TEMPLATE, ST_INSTANCE_GROUP },
        [SR_ORGANIZATION_INSTANCE_GROUPS] = { ST_ORGANIZATION, ST_INSTANCE_GROUP },
        [SR_INVENTORY_INSTANCE_GROUPS] = { ST_INVENTORY, ST_INSTANCE_GROUP },
};

/* ---- locking ---- */

static storage *storage_lock(storage *s) {
        pthread_mutex_lock(&s->lock);
        return s;
}

static void storage_unlockp(storage **s) {
        if (*s)
                pthread_mutex_unlock(&(*s)->lock);
}
#define LOCKED(s) _cleanup_(storage_unlockp) _unused_ storage *_locked_ = storage_lock(s)

/* ---- errors ---- */

static int sqlite_errno(sqlite3 *db, int rc) {
        switch (rc & 0xff) {
        case SQLITE_OK:
        case SQLITE_ROW:
        case SQLITE_DONE:
                return 0;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_READONLY:
                return -EROFS;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_CONSTRAINT:
                return -EEXIST;
        case SQLITE_TOOBIG:
                return -E2BIG;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return -EBADMSG;
        case SQLITE_PERM:
        case SQLITE_AUTH:
                return -EPERM;
        case SQLITE_CANTOPEN:
        case SQLITE_IOERR: {
                int e = db ? sqlite3_system_errno(db) : 0;
                return e > 0 ? -e : -EIO;
        }
        default:
                return -EIO;
        }
}

/* Log an SQLite failure once, with SQLite's own message, and return it as a negative errno. */
static int sql_fail(storage *s, int rc, const char *what) {
        int r = sqlite_errno(s->db, rc);
        if (r == 0)
                r = -EIO;
        return log_error_errno(r, "SQLite: %s failed: %s", what, sqlite3_errmsg(s->db));
}

/* ---- statements ---- */

/* A handle holds one count of the (recursive) storage lock from stmt_get() until stmt_releasep():
 * callers declare the handle before LOCKED(s), so their LOCKED is released first and the statement
 * would otherwise be reset outside the lock while another thread uses the same cached statement. */
typedef struct stmt_handle {
        sqlite3_stmt *stmt;
        bool cached;
        storage *locked;
} stmt_handle;

static void stmt_releasep(stmt_handle *h) {
        if (h->stmt) {
                if (h->cached) {
                        sqlite3_reset(h->stmt);
                        sqlite3_clear_bindings(h->stmt);
                } else
                        sqlite3_finalize(h->stmt);
                h->stmt = NULL;
        }
        if (h->locked) {
                pthread_mutex_unlock(&h->locked->lock);
                h->locked = NULL;
        }
}
#define _cleanup_stmt_ _cleanup_(stmt_releasep)

/* A prepared statement for sql: from the cache, or prepared and cached (or, with a full cache,
 * prepared for this use only). Release with stmt_releasep(). */
static int stmt_get_unlocked(storage *s, const char *sql, stmt_handle *ret);
static int stmt_get(storage *s, const char *sql, stmt_handle *ret) {
        pthread_mutex_lock(&s->lock);
        int r = stmt_get_unlocked(s, sql, ret);
        if (r < 0) {
                pthread_mutex_unlock(&s->lock);
                return r;
        }
        ret->locked = s;
        return r;
}

static int stmt_get_unlocked(storage *s, const char *sql, stmt_handle *ret) {
        for (size_t i = 0; i < s->n_cache; i++)
                if (streq(s->cache[i].sql, sql)) {
                        *ret = (stmt_handle) { s->cache[i].stmt, true, NULL };
                        return 0;
                }

        bool cache = s->n_cache < STMT_CACHE_MAX;
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v3(s->db, sql, -1, cache ? SQLITE_PREPARE_PERSISTENT : 0, &st, NULL);
        if (rc != SQLITE_OK)
                return sql_fail(s, rc, "prepare");

        if (cache) {
                char *copy = strdup(sql);
                if (!copy) {
                        sqlite3_finalize(st);
                        return log_oom();
                }
                s->cache[s->n_cache++] = (stmt_cache_entry) { copy, st };
        }
        *ret = (stmt_handle) { st, cache, NULL };
        return 0;
}

static int stmt_fixed(storage *s, int which, stmt_handle *ret) {
        pthread_mutex_lock(&s->lock);
        if (!s->fixed[which]) {
                int rc = sqlite3_prepare_v3(s->db, fixed_sql[which], -1, SQLITE_PREPARE_PERSISTENT,
                                            &s->fixed[which], NULL);
                if (rc != SQLITE_OK) {
                        int r = sql_fail(s, rc, "prepare");
                        pthread_mutex_unlock(&s->lock);
                        return r;
                }
        }
        *ret = (stmt_handle) { s->fixed[which], true, s };
        return 0;
}

/* Run one statement that returns no rows we care about (stepping through any). */
static int exec_sql(storage *s, const char *sql) {
        char *err = NULL;
        int rc = sqlite3_exec(s->db, sql, NULL, NULL, &err);
        if (rc != SQLITE_OK) {
                int r = sqlite_errno(s->db, rc);
                if (r == 0)
                        r = -EIO;
                log_error_errno(r, "SQLite: \"%s\" failed: %s", sql, err ? err : sqlite3_errstr(rc));
                sqlite3_free(err);
                return r;
        }
        return 0;
}

static int step_done(storage *s, sqlite3_stmt *st, const char *what) {
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE && rc != SQLITE_ROW)
                return sql_fail(s, rc, what);
        return 0;
}

/* ---- transactions ---- */

static int tx_begin(storage *s) {
        int r;
        if (s->tx_depth == 0)
                r = exec_sql(s, "BEGIN IMMEDIATE");
        else {
                char sp[32];
                snprintf(sp, sizeof sp, "SAVEPOINT sp%u", s->tx_depth);
                r = exec_sql(s, sp);
        }
        if (r < 0)
                return r;
        s->tx_depth++;
        return 0;
}

/* End the innermost transaction: commit if r >= 0, roll back otherwise. Returns r, or the
 * commit's error. */
static int tx_end(storage *s, int r) {
        s->tx_depth--;
        if (s->tx_depth == 0) {
                if (r < 0) {
                        if (!sqlite3_get_autocommit(s->db))
                                (void) exec_sql(s, "ROLLBACK");
                        return r;
                }
                int q = exec_sql(s, "COMMIT");
                if (q < 0) {
                        if (!sqlite3_get_autocommit(s->db))
                                (void) exec_sql(s, "ROLLBACK");
                        return q;
                }
                return r;
        }

        char sp[64];
        if (r < 0) {
                if (sqlite3_get_autocommit(s->db))
                        return r;  /* SQLite already rolled the whole transaction back */
                snprintf(sp, sizeof sp, "ROLLBACK TO sp%u", s->tx_depth);
                (void) exec_sql(s, sp);
                snprintf(sp, sizeof sp, "RELEASE sp%u", s->tx_depth);
                (void) exec_sql(s, sp);
                return r;
        }
        snprintf(sp, sizeof sp, "RELEASE sp%u", s->tx_depth);
        int q = exec_sql(s, sp);
        return q < 0 ? q : r;
}

int storage_transaction(storage *s, int (*fn)(storage *s, void *userdata), void *userdata) {
        if (!s || !fn)
                return -EINVAL;
        LOCKED(s);
        int r = tx_begin(s);
        if (r < 0)
                return r;
        r = fn(s, userdata);
        return tx_end(s, r);
}

/* ---- open, migrations, close ---- */

static int pragma(storage *s, const char *sql) {
        return exec_sql(s, sql);
}

static int read_schema_version(storage *s, int *ret) {
        _cleanup_stmt_ stmt_handle h = {};
        int r = stmt_get(s, "SELECT COALESCE(MAX(version), 0) FROM schema_version", &h);
        if (r < 0)
                return r;
        int rc = sqlite3_step(h.stmt);
        if (rc != SQLITE_ROW)
                return sql_fail(s, rc, "reading schema_version");
        *ret = sqlite3_column_int(h.stmt, 0);
        return 0;
}

static int migrate_locked(storage *s) {
        int r, current = 0;

        r = exec_sql(s, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
        if (r < 0)
                return r;
        r = read_schema_version(s, &current);
        if (r < 0)
                return r;

        int latest = storage_migrations[storage_migrations_count - 1].version;
        if (current > latest)
                return log_error_errno(-EPROTO,
                                       "Database schema version %d is newer than this drover-controller knows (%d); refusing to use it.",
                                       current, latest);

        for (size_t i = 0; i < storage_migrations_count; i++) {
                const storage_migration *m = &storage_migrations[i];
                if (m->version <= current)
                        continue;
                for (const char *const *sql = m->statements; *sql; sql++) {
                        r = exec_sql(s, *sql);   /* logs the statement and SQLite's message */
                        if (r < 0)
                                return r;
                }
                char ins[96];
                snprintf(ins, sizeof ins, "INSERT INTO schema_version (version) VALUES (%d)", m->version);
                r = exec_sql(s, ins);
                if (r < 0)
                        return r;
                log_info("Database migrated to schema version %d.", m->version);
                current = m->version;
        }
        s->schema_version = current;
        return 0;
}

static int migrate(storage *s) {
        int r = tx_begin(s);
        if (r < 0)
                return r;
        return tx_end(s, migrate_locked(s));
}

static void *ckpt_thread_main(void *userdata) {
        storage *s = userdata;
        bool warned = false;

        pthread_mutex_lock(&s->ckpt_lock);
        for (;;) {
                while (!s->ckpt_requested && !s->ckpt_stop)
                        pthread_cond_wait(&s->ckpt_cond, &s->ckpt_lock);
                if (s->ckpt_stop)
                        break;
                s->ckpt_requested = false;
                pthread_mutex_unlock(&s->ckpt_lock);

                /* PASSIVE: copies what it can without waiting for readers or the writer */
                int rc = sqlite3_wal_checkpoint_v2(s->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
                if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY && !warned) {
                        log_warning("SQLite: WAL checkpoint failed: %s", sqlite3_errmsg(s->ckpt_db));
                        warned = true;
                }

                pthread_mutex_lock(&s->ckpt_lock);
        }
        pthread_mutex_unlock(&s->ckpt_lock);
        return NULL;
}

/* Called by SQLite after each commit on the main connection with the WAL's size in pages. */
static int wal_hook(void *userdata, sqlite3 *db, const char *name, int pages) {
        storage *s = userdata;

        if (pages < CKPT_PAGES)
                return SQLITE_OK;
        if (s->ckpt_running) {
                pthread_mutex_lock(&s->ckpt_lock);
                s->ckpt_requested = true;
                pthread_cond_signal(&s->ckpt_cond);
                pthread_mutex_unlock(&s->ckpt_lock);
                if (pages < CKPT_PAGES_SYNC)
                        return SQLITE_OK;
        }
        /* no checkpointer, or the WAL must start over: checkpoint here (as wal_autocheckpoint would) */
        (void) sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        return SQLITE_OK;
}

static void ckpt_stop(storage *s) {
        if (s->ckpt_running) {
                pthread_mutex_lock(&s->ckpt_lock);
                s->ckpt_stop = true;
                pthread_cond_signal(&s->ckpt_cond);
                pthread_mutex_unlock(&s->ckpt_lock);
                pthread_join(s->ckpt_thread, NULL);
                s->ckpt_running = false;
        }
        if (s->ckpt_db) {
                sqlite3_close(s->ckpt_db);
                s->ckpt_db = NULL;
        }
}

/* Start the checkpointer for a WAL database; without it, the writer checkpoints (a warning). */
static void ckpt_start(storage *s, const char *path) {
        _cleanup_stmt_ stmt_handle h = {};
        int rc;

        if (stmt_get(s, "PRAGMA journal_mode", &h) < 0 || sqlite3_step(h.stmt) != SQLITE_ROW ||
            !streq_ptr((const char *) sqlite3_column_text(h.stmt, 0), "wal"))
                return;  /* e.g. :memory: */

        sqlite3_wal_hook(s->db, wal_hook, s);

        rc = sqlite3_open_v2(path, &s->ckpt_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc != SQLITE_OK) {
                log_warning("SQLite: cannot open a checkpoint connection to %s, writers will checkpoint: %s",
                            path, s->ckpt_db ? sqlite3_errmsg(s->ckpt_db) : sqlite3_errstr(rc));
                sqlite3_close(s->ckpt_db);
                s->ckpt_db = NULL;
                return;
        }
        sqlite3_busy_timeout(s->ckpt_db, 5000);
        /* the connection only checkpoints once it has read the database and seen it is WAL */
        if (sqlite3_exec(s->ckpt_db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL) != SQLITE_OK) {
                log_warning("SQLite: cannot set up the checkpoint connection to %s, writers will checkpoint: %s",
                            path, sqlite3_errmsg(s->ckpt_db));
                sqlite3_close(s->ckpt_db);
                s->ckpt_db = NULL;
                return;
        }
        int r = -pthread_create(&s->ckpt_thread, NULL, ckpt_thread_main, s);
        if (r < 0) {
                log_warning_errno(r, "Cannot start the WAL checkpoint thread, writers will checkpoint: %m");
                sqlite3_close(s->ckpt_db);
                s->ckpt_db = NULL;
                return;
        }
        s->ckpt_running = true;
}

static void storage_free(storage *s) {
        if (!s)
                return;
        ckpt_stop(s);
        for (size_t i = 0; i < s->n_cache; i++) {
                sqlite3_finalize(s->cache[i].stmt);
                free(s->cache[i].sql);
        }
        for (size_t i = 0; i < _STMT_FIXED_MAX; i++)
                sqlite3_finalize(s->fixed[i]);
        if (s->db) {
                if (sqlite3_close(s->db) != SQLITE_OK)
                        log_warning("SQLite: closing the database failed: %s", sqlite3_errmsg(s->db));
        }
        pthread_mutex_destroy(&s->lock);
        pthread_mutex_destroy(&s->ckpt_lock);
        pthread_cond_destroy(&s->ckpt_cond);
        free(s);
}

void storage_close(storage *s) {
        if (!s)
                return;
        pthread_mutex_lock(&s->lock);
        if (s->db)
                (void) sqlite3_exec(s->db, "PRAGMA optimize", NULL, NULL, NULL);
        pthread_mutex_unlock(&s->lock);
        storage_free(s);
}

static int storage_path_from_url(const char *url, const char **ret_path) {
        const char *p;

        if ((p = startswith(url, "sqlite://")))
                ;       /* sqlite:///abs/path -> /abs/path */
        else if ((p = startswith(url, "sqlite:")))
                ;
        else if (startswith(url, "postgresql://") || startswith(url, "postgres://"))
                return log_error_errno(-EPROTONOSUPPORT,
                                       "Database URL is PostgreSQL, but the PostgreSQL storage backend is not built into this drover-controller; use sqlite:PATH.");
        else if (strstr(url, "://"))
                return log_error_errno(-EPROTONOSUPPORT, "Unsupported database URL scheme in \"%s\"; use sqlite:PATH.", url);
        else
                p = url;

        if (isempty(p))
                return log_error_errno(-EINVAL, "Database URL \"%s\" names no file.", url);
        *ret_path = p;
        return 0;
}

int storage_open(const char *url, storage **ret) {
        const char *path = NULL;
        int r, rc;

        if (!url || !ret)
                return -EINVAL;

        r = storage_path_from_url(url, &path);
        if (r < 0)
                return r;

        /* The database holds password and token hashes: create it private. SQLite gives the WAL
         * and shm files the main file's mode. */
        if (!streq(path, ":memory:")) {
                int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
                if (fd < 0)
                        return log_error_errno(negative_errno(), "Failed to open database %s: %m", path);
                close(fd);
        }

        storage *s = calloc(1, sizeof *s);
        if (!s)
                return log_oom();

        pthread_mutexattr_t attr;
        pthread_mutexattr_init(&attr);
        pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
        pthread_mutex_init(&s->lock, &attr);
        pthread_mutexattr_destroy(&attr);
        pthread_mutex_init(&s->ckpt_lock, NULL);
        pthread_cond_init(&s->ckpt_cond, NULL);

        rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc != SQLITE_OK) {
                r = sqlite_errno(s->db, rc);
                log_error_errno(r ?: -EIO, "Failed to open database %s: %s", path,
                                s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
                storage_free(s);
                return r ?: -EIO;
        }
        sqlite3_extended_result_codes(s->db, 1);
        sqlite3_busy_timeout(s->db, 5000);

        /* Only takes effect on a new database. 16 KiB pages keep a ~1 KiB job event inside its
         * WITHOUT ROWID b-tree page: with 4 KiB pages every row over ~1000 bytes spills to an
         * overflow page of its own (4x the disk and I/O). */
        if ((r = pragma(s, "PRAGMA page_size = 16384")) < 0 ||
            (r = pragma(s, "PRAGMA journal_mode = WAL")) < 0 ||
            (r = pragma(s, "PRAGMA synchronous = NORMAL")) < 0 ||
            (r = pragma(s, "PRAGMA journal_size_limit = 67108864")) < 0 ||
            (r = pragma(s, "PRAGMA foreign_keys = ON")) < 0 ||
            (r = migrate(s)) < 0) {
                /* already logged, with SQLite's message */
                storage_free(s);
                return r;
        }

        ckpt_start(s, path);

        log_debug("Opened database %s (schema version %d).", path, s->schema_version);
        *ret = s;
        return 0;
}

int storage_schema_version(storage *s) {
        if (!s)
                return -EINVAL;
        LOCKED(s);
        return s->schema_version;
}

/* ---- JSON helpers ---- */

static bool type_valid(storage_type t) {
        return t >= 0 && t < _ST_MAX;
}

static char *doc_dump(const json_t *doc) {
        return json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* Compact JSON of doc without its "id" key. */
static int doc_dump_without_id(const json_t *doc, char **ret) {
        _cleanup_json_ json_t *copy = NULL;

        if (!json_is_object(doc))
                return -EINVAL;
        if (json_object_get(doc, "id")) {
                copy = json_copy((json_t *) doc);
                if (!copy)
                        return -ENOMEM;
                json_object_del(copy, "id");
                doc = copy;
        }
        char *text = doc_dump(doc);
        if (!text)
                return -ENOMEM;
        *ret = text;
        return 0;
}

/* Parse a stored document and return a new object {"id": id, [extra...], ...doc}. */
static int doc_load(const char *text, size_t len, int64_t id, const char *extra_key, int64_t extra, json_t **ret) {
        json_error_t err;
        _cleanup_json_ json_t *doc = json_loadb(text, len, JSON_ALLOW_NUL, &err);
        if (!doc || !json_is_object(doc))
                return log_error_errno(-EBADMSG, "Stored document %" PRIi64 " is not a JSON object: %s",
                                       id, doc ? "wrong type" : err.text);

        _cleanup_json_ json_t *o = json_object();
        if (!o ||
            json_object_set_new(o, "id", json_integer(id)) < 0 ||
            (extra_key && json_object_set_new(o, extra_key, json_integer(extra)) < 0) ||
            json_object_update(o, doc) < 0 ||
            json_object_set_new(o, "id", json_integer(id)) < 0 ||
            (extra_key && json_object_set_new(o, extra_key, json_integer(extra)) < 0))
                return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}

/* ---- objects ---- */

int storage_obj_create(storage *s, storage_type t, json_t *doc, int64_t *ret_id) {
        _cleanup_free_ char *text = NULL, *sql = NULL;
        _cleanup_stmt_ stmt_handle h = {};
        int r;

        if (!s || !type_valid(t) || !json_is_object(doc))
                return -EINVAL;
        r = doc_dump_without_id(doc, &text);
        if (r < 0)
                return r;
        if (asprintf(&sql, "INSERT INTO obj_%s (doc) VALUES (?1)", storage_type_to_string(t)) < 0)
                return -ENOMEM;

        LOCKED(s);
        r = stmt_get(s, sql, &h);
        if (r < 0)
                return r;
        sqlite3_bind_text(h.stmt, 1, text, -1, SQLITE_STATIC);
        int rc = sqlite3_step(h.stmt);
        if (rc != SQLITE_DONE)
                return sql_fail(s, rc, "creating object");
        if (ret_id)
                *ret_id = sqlite3_last_insert_rowid(s->db);
        return 0;
}

int storage_obj_get(storage *s, storage_type t, int64_t id, json_t **ret) {
        _cleanup_free_ char *sql = NULL;
        _cleanup_stmt_ stmt_handle h = {};
        int r;

        if (!s || !type_valid(t) || !ret)
                return -EINVAL;
        if (asprintf(&sql, "SELECT doc FROM obj_%s WHERE id = ?1", storage_type_to_string(t)) < 0)
                return -ENOMEM;

        LOCKED(s);
        r = stmt_get(s, sql, &h);
        if (r < 0)
                return r;
        sqlite3_bind_int64(h.stmt, 1, id);
        int rc = sqlite3_step(h.stmt);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return sql_fail(s, rc, "reading object");
        return doc_load((const char *) sqlite3_column_text(h.stmt, 0), (size_t) sqlite3_column_bytes(h.stmt, 0),
                        id, NULL, 0, ret);
}

static int obj_write(storage *s, storage_type t, int64_t id, const char *text) {
        _cleanup_free_ char *sql = NULL;
        _cleanup_stmt_ stmt_handle h = {};
        int r;

        if (asprintf(&sql, "UPDATE obj_%s SET doc = ?1 WHERE id = ?2", storage_type_to_string(t)) < 0)
                return -ENOMEM;
        r = stmt_get(s, sql, &h);
        if (r < 0)
                return r;
        sqlite3_bind_text(h.stmt, 1, text, -1, SQLITE_STATIC);
        sqlite3_bind_int64(h.stmt, 2, id);
        int rc = sqlite3_step(h.stmt);
        if (rc != SQLITE_DONE)
                return sql_fail(s, rc, "updating object");
        return sqlite3_changes(s->db) > 0 ? 0 : -ENOENT;
}

int storage_obj_replace(storage *s, storage_type t, int64_t id, json_t *doc) {
        _cleanup_free_ char *text = NULL;
        int r;

        if (!s || !type_valid(t) || !json_is_object(doc))
                return -EINVAL;
        r = doc_dump_without_id(doc, &text);
        if (r < 0)
                return r;

        LOCKED(s);
        return obj_write(s, t, id, text);
}

int storage_obj_patch(storage *s, storage_type t, int64_t id, json_t *fields) {
        _cleanup_json_ json_t *doc = NULL;
        _cleanup_free_ char *text = NULL;
        int r;

        if (!s || !type_valid(t) || !json_is_object(fields))
                return -EINVAL;

        LOCKED(s);
        r = storage_obj_get(s, t, id, &doc);
        if (r < 0)
                return r;
        if (json_object_update(doc, fields) < 0)
                return -ENOMEM;
        json_object_del(doc, "id");
        text = doc_dump(doc);
        if (!text)
                return -ENOMEM;
        return obj_write(s, t, id, text);
}

static int obj_delete_locked(storage *s, storage_type t, int64_t id) {
        _cleanup_free_ char *sql = NULL;
        int r;

        if (asprintf(&sql, "DELETE FROM obj_%s WHERE id = ?1", storage_type_to_string(t)) < 0)
                return -ENOMEM;
        {
                _cleanup_stmt_ stmt_handle h = {};
                r = stmt_get(s, sql, &h);
                if (r < 0)
                        return r;
                sqlite3_bind_int64(h.stmt, 1, id);
                int rc = sqlite3_step(h.stmt);
                if (rc != SQLITE_DONE)
                        return sql_fail(s, rc, "deleting object");
                if (sqlite3_changes(s->db) == 0)
                        return -ENOENT;
        }

        for (int rel = 0; rel < _SR_MAX; rel++) {
                if (rel_sides[rel].a == t && (r = storage_rel_purge(s, rel, id, false)) < 0)
                        return r;
                if (rel_sides[rel].b == t && (r = storage_rel_purge(s, rel, id, true)) < 0)
                        return r;
        }
        if (t == ST_JOB && (r = storage_events_delete(s, id)) < 0)
                return r;
        return 0;
}

typedef struct obj_delete_args {
        storage_type t;
        int64_t id;
} obj_delete_args;

static int obj_delete_tx(storage *s, void *userdata) {
        obj_delete_args *a = userdata;
        return obj_delete_locked(s, a->t, a->id);
}

int storage_obj_delete(storage *s, storage_type t, int64_t id) {
        if (!s || !type_valid(t))
                return -EINVAL;
        return storage_transaction(s, obj_delete_tx, &(obj_delete_args) { t, id });
}

/* ---- filter -> SQL ---- */

typedef struct sqlbuf {
        char *s;
        size_t n, alloc;
        bool oom;
} sqlbuf;

static void sb_add(sqlbuf *b, const char *t) {
        size_t l = strlen(t);
        if (b->oom)
                return;
        if (b->n + l + 1 > b->alloc) {
                size_t a = MAX(b->alloc * 2, b->n + l + 1);
                a = MAX(a, (size_t) 256);
                char *p = realloc(b->s, a);
                if (!p) {
                        b->oom = true;
                        return;
                }
                b->s = p;
                b->alloc = a;
        }
        memcpy(b->s + b->n, t, l + 1);
        b->n += l;
}

typedef enum bind_kind {
        BIND_JSON,      /* a borrowed scalar JSON value, bound by its type */
        BIND_TEXT,      /* an owned string */
        BIND_INT,
} bind_kind;

typedef struct bindv {
        bind_kind kind;
        const json_t *json;
        char *text;
        int64_t i;
} bindv;

typedef struct qbuild {
        sqlbuf sql;
        bindv *binds;
        size_t n_binds, alloc_binds;
} qbuild;

static void qbuild_done(qbuild *q) {
        free(q->sql.s);
        for (size_t i = 0; i < q->n_binds; i++)
                free(q->binds[i].text);
        free(q->binds);
}

static int qb_bind(qbuild *q, bindv v) {
        if (q->n_binds >= q->alloc_binds) {
                size_t a = MAX(q->alloc_binds * 2, (size_t) 8);
                bindv *p = reallocarray(q->binds, a, sizeof *p);
                if (!p) {
                        free(v.text);
                        return -ENOMEM;
                }
                q->binds = p;
                q->alloc_binds = a;
        }
        q->binds[q->n_binds++] = v;
        sb_add(&q->sql, "?");
        return 0;
}

static int bind_all(storage *s, sqlite3_stmt *st, const qbuild *q) {
        for (size_t i = 0; i < q->n_binds; i++) {
                const bindv *b = &q->binds[i];
                int idx = (int) i + 1, rc = SQLITE_OK;

                switch (b->kind) {
                case BIND_INT:
                        rc = sqlite3_bind_int64(st, idx, b->i);
                        break;
                case BIND_TEXT:
                        rc = sqlite3_bind_text(st, idx, b->text, -1, SQLITE_STATIC);
                        break;
                case BIND_JSON:
                        switch (json_typeof(b->json)) {
                        case JSON_INTEGER:
                                rc = sqlite3_bind_int64(st, idx, json_integer_value(b->json));
                                break;
                        case JSON_REAL:
                                rc = sqlite3_bind_double(st, idx, json_real_value(b->json));
                                break;
                        case JSON_STRING:
                                rc = sqlite3_bind_text64(st, idx, json_string_value(b->json),
                                                         json_string_length(b->json), SQLITE_STATIC, SQLITE_UTF8);
                                break;
                        case JSON_TRUE:
                                rc = sqlite3_bind_int(st, idx, 1);
                                break;
                        case JSON_FALSE:
                                rc = sqlite3_bind_int(st, idx, 0);
                                break;
                        case JSON_NULL:
                                rc = sqlite3_bind_null(st, idx);
                                break;
                        default:
                                return -EINVAL;
                        }
                        break;
                }
                if (rc != SQLITE_OK)
                        return sql_fail(s, rc, "binding a filter value");
        }
        return 0;
}

/* Maps an API field to an SQL expression in buf; -EINVAL for a field that cannot be filtered. */
typedef int (*column_fn)(const char *field, char *buf, size_t size);

static bool field_name_valid(const char *f) {
        size_t l = strlen(f);
        if (l == 0 || l > FIELD_NAME_MAX)
                return false;
        for (const char *p = f; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
                        return false;
        return true;
}

static int object_column(const char *field, char *buf, size_t size) {
        if (!field || !field_name_valid(field))
                return -EINVAL;
        if (streq(field, "id"))
                snprintf(buf, size, "id");
        else
                /* must match the index expressions in storage-migrations.c */
                snprintf(buf, size, "json_extract(doc, '$.%s')", field);
        return 0;
}

static int event_column(const char *field, char *buf, size_t size) {
        static const char *const columns[] = {
                "counter", "event", "uuid", "parent_uuid", "host_name", "task", "play",
                "failed", "changed", "created", "attempt",
        };
        if (!field)
                return -EINVAL;
        if (streq(field, "id")) {
                snprintf(buf, size, "(job * %" PRIi64 " + counter)", EVENT_ID_FACTOR);
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(columns); i++)
                if (streq(columns[i], field)) {
                        snprintf(buf, size, "%s", columns[i]);
                        return 0;
                }
        return -EINVAL;
}

static bool filter_value_is_scalar(const json_t *v) {
        return v && !json_is_object(v) && !json_is_array(v);
}

/* LIKE pattern for a substring match: %value% with \ escaping, value lowercased (ASCII, as
 * SQLite's lower()). */
static char *like_pattern(const char *v, size_t len) {
        char *p = malloc(len * 2 + 3), *o = p;
        if (!p)
                return NULL;
        *o++ = '%';
        for (size_t i = 0; i < len; i++) {
                char c = v[i];
                if (c == '\\' || c == '%' || c == '_')
                        *o++ = '\\';
                *o++ = (c >= 'A' && c <= 'Z') ? (char) (c - 'A' + 'a') : c;
        }
        *o++ = '%';
        *o = 0;
        return p;
}

static int filter_expr(qbuild *q, const char *col, const storage_filter *f) {
        const json_t *v = f->value;
        int r;

        if (f->negate)
                sb_add(&q->sql, "NOT IFNULL((");
        else
                sb_add(&q->sql, "(");

        switch (f->op) {
        case SF_EQ:
        case SF_NE:
                if (!filter_value_is_scalar(v))
                        return -EINVAL;
                sb_add(&q->sql, col);
                if (json_is_null(v)) {
                        sb_add(&q->sql, f->op == SF_EQ ? " IS NULL" : " IS NOT NULL");
                        break;
                }
                sb_add(&q->sql, f->op == SF_EQ ? " = " : " IS NOT ");
                if ((r = qb_bind(q, (bindv) { .kind = BIND_JSON, .json = v })) < 0)
                        return r;
                break;

        case SF_GT:
        case SF_GTE:
        case SF_LT:
        case SF_LTE: {
                static const char *const ops[] = { [SF_GT] = " > ", [SF_GTE] = " >= ", [SF_LT] = " < ", [SF_LTE] = " <= " };
                if (!filter_value_is_scalar(v) || json_is_null(v))
                        return -EINVAL;
                sb_add(&q->sql, col);
                sb_add(&q->sql, ops[f->op]);
                if ((r = qb_bind(q, (bindv) { .kind = BIND_JSON, .json = v })) < 0)
                        return r;
                break;
        }

        case SF_ICONTAINS: {
                if (!json_is_string(v))
                        return -EINVAL;
                char *pat = like_pattern(json_string_value(v), json_string_length(v));
                if (!pat)
                        return -ENOMEM;
                sb_add(&q->sql, "lower(");
                sb_add(&q->sql, col);
                sb_add(&q->sql, ") LIKE ");
                if ((r = qb_bind(q, (bindv) { .kind = BIND_TEXT, .text = pat })) < 0)
                        return r;
                sb_add(&q->sql, " ESCAPE '\\'");
                break;
        }

        case SF_STARTSWITH:
                /* case-sensitive, like Django's startswith */
                if (!json_is_string(v))
                        return -EINVAL;
                sb_add(&q->sql, "instr(");
                sb_add(&q->sql, col);
                sb_add(&q->sql, ", ");
                if ((r = qb_bind(q, (bindv) { .kind = BIND_JSON, .json = v })) < 0)
                        return r;
                sb_add(&q->sql, ") = 1");
                break;

        case SF_IN: {
                size_t i, n;
                json_t *e;

                if (!json_is_array(v))
                        return -EINVAL;
                n = json_array_size(v);
                if (n > FILTER_IN_MAX)
                        return -EINVAL;
                if (n == 0) {
                        sb_add(&q->sql, "0");
                        break;
                }
                sb_add(&q->sql, col);
                sb_add(&q->sql, " IN (");
                json_array_foreach(v, i, e) {
                        if (!filter_value_is_scalar(e))
                                return -EINVAL;
                        if (i > 0)
                                sb_add(&q->sql, ", ");
                        if ((r = qb_bind(q, (bindv) { .kind = BIND_JSON, .json = e })) < 0)
                                return r;
                }
                sb_add(&q->sql, ")");
                break;
        }

        case SF_ISNULL:
                if (!json_is_boolean(v))
                        return -EINVAL;
                sb_add(&q->sql, col);
                sb_add(&q->sql, json_is_true(v) ? " IS NULL" : " IS NOT NULL");
                break;

        default:
                return -EINVAL;
        }

        sb_add(&q->sql, f->negate ? "), 0)" : ")");
        return 0;
}

/* Append " AND <filters>" to q: AND of the plain filters and of one OR group. */
static int where_append(qbuild *q, const storage_query *query, column_fn colfn) {
        char col[FIELD_NAME_MAX + 64];
        bool any_or = false;
        int r;

        if (!query || query->n_filters == 0)
                return 0;
        if (!query->filters)
                return -EINVAL;

        for (size_t i = 0; i < query->n_filters; i++) {
                const storage_filter *f = &query->filters[i];
                if (f->or_group) {
                        any_or = true;
                        continue;
                }
                if ((r = colfn(f->field, col, sizeof col)) < 0)
                        return r;
                sb_add(&q->sql, " AND ");
                if ((r = filter_expr(q, col, f)) < 0)
                        return r;
        }

        if (any_or) {
                bool first = true;
                sb_add(&q->sql, " AND (");
                for (size_t i = 0; i < query->n_filters; i++) {
                        const storage_filter *f = &query->filters[i];
                        if (!f->or_group)
                                continue;
                        if ((r = colfn(f->field, col, sizeof col)) < 0)
                                return r;
                        if (!first)
                                sb_add(&q->sql, " OR ");
                        first = false;
                        if ((r = filter_expr(q, col, f)) < 0)
                                return r;
                }
                sb_add(&q->sql, ")");
        }
        return q->sql.oom ? -ENOMEM : 0;
}

static int order_append(qbuild *q, const char *order_by, const char *default_col, column_fn colfn) {
        char col[FIELD_NAME_MAX + 64];
        bool desc = false;
        int r;

        if (isempty(order_by)) {
                sb_add(&q->sql, " ORDER BY ");
                sb_add(&q->sql, default_col);
                return 0;
        }
        if (order_by[0] == '-') {
                desc = true;
                order_by++;
        }
        if ((r = colfn(order_by, col, sizeof col)) < 0)
                return r;
        sb_add(&q->sql, " ORDER BY ");
        sb_add(&q->sql, col);
        if (desc)
                sb_add(&q->sql, " DESC");
        if (!streq(col, default_col)) {
                sb_add(&q->sql, ", ");
                sb_add(&q->sql, default_col);
        }
        return 0;
}

static void limit_append(qbuild *q, const storage_query *query) {
        char buf[64];
        int64_t limit = query && query->limit > 0 ? query->limit : -1;
        int64_t offset = query && query->offset > 0 ? query->offset : 0;
        snprintf(buf, sizeof buf, " LIMIT %" PRIi64 " OFFSET %" PRIi64, limit, offset);
        sb_add(&q->sql, buf);
}

static int count_run(storage *s, const qbuild *q, int64_t *ret) {
        _cleanup_stmt_ stmt_handle h = {};
        int r = stmt_get(s, q->sql.s, &h);
        if (r < 0)
                return r;
        r = bind_all(s, h.stmt, q);
        if (r < 0)
                return r;
        int rc = sqlite3_step(h.stmt);
        if (rc != SQLITE_ROW)
                return sql_fail(s, rc, "counting");
        *ret = sqlite3_column_int64(h.stmt, 0);
        return 0;
}

/* Runs a "SELECT <id expr>, doc[, extra]" query and collects documents. */
static int rows_run(storage *s, const qbuild *q, const char *extra_key, json_t **ret) {
        _cleanup_stmt_ stmt_handle h = {};
        _cleanup_json_ json_t *arr = json_array();
        int r, rc;

        if (!arr)
                return -ENOMEM;
        r = stmt_get(s, q->sql.s, &h);
        if (r < 0)
                return r;
        r = bind_all(s, h.stmt, q);
        if (r < 0)
                return r;
        while ((rc = sqlite3_step(h.stmt)) == SQLITE_ROW) {
                json_t *o = NULL;
                r = doc_load((const char *) sqlite3_column_text(h.stmt, 1), (size_t) sqlite3_column_bytes(h.stmt, 1),
                             sqlite3_column_int64(h.stmt, 0), extra_key,
                             extra_key ? sqlite3_column_int64(h.stmt, 2) : 0, &o);
                if (r < 0)
                        return r;
                if (json_array_append_new(arr, o) < 0)
                        return -ENOMEM;
        }
        if (rc != SQLITE_DONE)
                return sql_fail(s, rc, "listing");
        *ret = TAKE_PTR(arr);
        return 0;
}

/* Builds and runs the count and the page query: "<select><from><base binds> AND <filters>".
 * `from` is " FROM <table> WHERE <base condition>", written up to where its base_binds go
 * (each bound value appends a "?"). */
static int list_run(storage *s, const char *select, const char *from, const bindv *base_binds, size_t n_base,
                    const storage_query *query, column_fn colfn, const char *default_order, const char *extra_key,
                    json_t **ret_results, int64_t *ret_count) {
        _cleanup_json_ json_t *results = NULL;
        int64_t count = 0;
        int r;

        if (ret_count) {
                _cleanup_(qbuild_done) qbuild q = {};
                sb_add(&q.sql, "SELECT COUNT(*)");
                sb_add(&q.sql, from);
                for (size_t i = 0; i < n_base; i++)
                        if ((r = qb_bind(&q, base_binds[i])) < 0)
                                return r;
                if ((r = where_append(&q, query, colfn)) < 0)
                        return r;
                if (q.sql.oom)
                        return -ENOMEM;
                if ((r = count_run(s, &q, &count)) < 0)
                        return r;
        }

        if (ret_results) {
                _cleanup_(qbuild_done) qbuild q = {};
                sb_add(&q.sql, select);
                sb_add(&q.sql, from);
                for (size_t i = 0; i < n_base; i++)
                        if ((r = qb_bind(&q, base_binds[i])) < 0)
                                return r;
                if ((r = where_append(&q, query, colfn)) < 0)
                        return r;
                if ((r = order_append(&q, query ? query->order_by : NULL, default_order, colfn)) < 0)
                        return r;
                limit_append(&q, query);
                if (q.sql.oom)
                        return -ENOMEM;
                if ((r = rows_run(s, &q, extra_key, &results)) < 0)
                        return r;
        }

        if (ret_results)
                *ret_results = TAKE_PTR(results);
        if (ret_count)
                *ret_count = count;
        return 0;
}

int storage_obj_list(storage *s, storage_type t, const storage_query *q, json_t **ret_results, int64_t *ret_count) {
        char from[96];

        if (!s || !type_valid(t))
                return -EINVAL;
        snprintf(from, sizeof from, " FROM obj_%s WHERE 1", storage_type_to_string(t));

        LOCKED(s);
        return list_run(s, "SELECT id, doc", from, NULL, 0, q, object_column, "id", NULL, ret_results, ret_count);
}

int storage_obj_find(storage *s, storage_type t, const char *field, const char *value, json_t **ret) {
        _cleanup_json_ json_t *v = NULL, *results = NULL;
        int r;

        if (!s || !type_valid(t) || !field || !value || !ret)
                return -EINVAL;
        v = json_string(value);
        if (!v)
                return -ENOMEM;
        storage_filter f = { .field = field, .op = SF_EQ, .value = v };
        storage_query q = { .filters = &f, .n_filters = 1, .limit = 1 };
        r = storage_obj_list(s, t, &q, &results, NULL);
        if (r < 0)
                return r;
        if (json_array_size(results) == 0)
                return -ENOENT;
        *ret = json_incref(json_array_get(results, 0));
        return 0;
}

/* ---- relations ---- */

static int rel_exec(storage *s, const char *sql, storage_rel rel, int64_t x, int64_t y, bool two) {
        _cleanup_stmt_ stmt_handle h = {};
        int r = stmt_get(s, sql, &h);
        if (r < 0)
                return r;
        sqlite3_bind_int(h.stmt, 1, (int) rel);
        sqlite3_bind_int64(h.stmt, 2, x);
        if (two)
                sqlite3_bind_int64(h.stmt, 3, y);
        return step_done(s, h.stmt, "changing relations");
}

int storage_rel_add(storage *s, storage_rel r, int64_t a, int64_t b) {
        if (!s || r < 0 || r >= _SR_MAX)
                return -EINVAL;
        LOCKED(s);
        return rel_exec(s, "INSERT OR IGNORE INTO rel (kind, a, b) VALUES (?1, ?2, ?3)", r, a, b, true);
}

int storage_rel_remove(storage *s, storage_rel r, int64_t a, int64_t b) {
        if (!s || r < 0 || r >= _SR_MAX)
                return -EINVAL;
        LOCKED(s);
        return rel_exec(s, "DELETE FROM rel WHERE kind = ?1 AND a = ?2 AND b = ?3", r, a, b, true);
}

int storage_rel_purge(storage *s, storage_rel r, int64_t id, bool reverse) {
        if (!s || r < 0 || r >= _SR_MAX)
                return -EINVAL;
        LOCKED(s);
        return rel_exec(s, reverse ? "DELETE FROM rel WHERE kind = ?1 AND b = ?2"
                                   : "DELETE FROM rel WHERE kind = ?1 AND a = ?2",
                        r, id, 0, false);
}

int storage_rel_list(storage *s, storage_rel r, int64_t id, bool reverse, int64_t **ret_ids, size_t *ret_n) {
        _cleanup_stmt_ stmt_handle h = {};
        _cleanup_free_ int64_t *ids = NULL;
        size_t n = 0, alloc = 8;
        int q, rc;

        if (!s || r < 0 || r >= _SR_MAX || !ret_ids || !ret_n)
                return -EINVAL;

        ids = malloc(alloc * sizeof *ids);  /* never NULL on success, even when empty */
        if (!ids)
                return -ENOMEM;

        LOCKED(s);
        q = stmt_get(s, reverse ? "SELECT a FROM rel WHERE kind = ?1 AND b = ?2 ORDER BY a"
                                : "SELECT b FROM rel WHERE kind = ?1 AND a = ?2 ORDER BY b", &h);
        if (q < 0)
                return q;
        sqlite3_bind_int(h.stmt, 1, (int) r);
        sqlite3_bind_int64(h.stmt, 2, id);
        while ((rc = sqlite3_step(h.stmt)) == SQLITE_ROW) {
                if (n >= alloc) {
                        int64_t *p = reallocarray(ids, alloc * 2, sizeof *ids);
                        if (!p)
                                return -ENOMEM;
                        ids = p;
                        alloc *= 2;
                }
                ids[n++] = sqlite3_column_int64(h.stmt, 0);
        }
        if (rc != SQLITE_DONE)
                return sql_fail(s, rc, "listing relations");
        *ret_ids = TAKE_PTR(ids);
        *ret_n = n;
        return 0;
}

/* ---- job events ---- */

/* The parts of an event storage indexes, found in one walk over its keys (a json_object_get()
 * per field was a fifth of the ingest CPU time). */
typedef struct event_fields {
        const json_t *counter, *event, *uuid, *parent_uuid, *created, *data;
        const json_t *host, *task, *play, *res, *ignore_errors;
} event_fields;

static void event_fields_get(const json_t *ev, event_fields *f) {
        *f = (event_fields) {};
        for (void *it = json_object_iter((json_t *) ev); it; it = json_object_iter_next((json_t *) ev, it)) {
                const char *k = json_object_iter_key(it);
                const json_t *v = json_object_iter_value(it);
                switch (k[0]) {
                case 'c':
                        if (streq(k, "counter"))
                                f->counter = v;
                        else if (streq(k, "created"))
                                f->created = v;
                        break;
                case 'e':
                        if (streq(k, "event"))
                                f->event = v;
                        else if (streq(k, "event_data"))
                                f->data = v;
                        break;
                case 'u':
                        if (streq(k, "uuid"))
                                f->uuid = v;
                        break;
                case 'p':
                        if (streq(k, "parent_uuid"))
                                f->parent_uuid = v;
                        break;
                }
        }
        if (!json_is_object(f->data))
                return;
        for (void *it = json_object_iter((json_t *) f->data); it; it = json_object_iter_next((json_t *) f->data, it)) {
                const char *k = json_object_iter_key(it);
                const json_t *v = json_object_iter_value(it);
                switch (k[0]) {
                case 'h':
                        if (streq(k, "host"))
                                f->host = v;
                        break;
                case 't':
                        if (streq(k, "task"))
                                f->task = v;
                        break;
                case 'p':
                        if (streq(k, "play"))
                                f->play = v;
                        break;
                case 'r':
                        if (streq(k, "res"))
                                f->res = v;
                        break;
                case 'i':
                        if (streq(k, "ignore_errors"))
                                f->ignore_errors = v;
                        break;
                }
        }
}

static bool counts_any_positive(const json_t *o) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *) o, k, v)
                if (json_is_integer(v) && json_integer_value(v) > 0)
                        return true;
        return false;
}

static void event_derive_flags(const event_fields *f, bool *ret_failed, bool *ret_changed) {
        static const char *const failed_events[] = {
                "runner_on_failed", "runner_item_on_failed", "runner_on_unreachable",
                "runner_on_async_failed", "runner_on_error",
        };
        const char *name = json_string_value(f->event);
        bool failed = false, changed = false;

        if (name && streq(name, "playbook_on_stats")) {
                /* as AWX: the playbook failed if any host failed or was unreachable */
                failed = counts_any_positive(json_object_get(f->data, "failures")) ||
                         counts_any_positive(json_object_get(f->data, "dark"));
                changed = counts_any_positive(json_object_get(f->data, "changed"));
        } else {
                if (name && startswith(name, "runner_"))
                        for (size_t i = 0; i < ELEMENTSOF(failed_events); i++)
                                if (streq(name, failed_events[i])) {
                                        failed = !json_is_true(f->ignore_errors);
                                        break;
                                }
                changed = json_is_true(json_object_get(f->res, "changed"));
        }
        *ret_failed = failed;
        *ret_changed = changed;
}

void storage_event_flags(const json_t *event, bool *ret_failed, bool *ret_changed) {
        event_fields f;
        bool failed, changed;

        event_fields_get(event, &f);
        event_derive_flags(&f, &failed, &changed);
        if (ret_failed)
                *ret_failed = failed;
        if (ret_changed)
                *ret_changed = changed;
}

static int bind_opt_text(sqlite3_stmt *st, int idx, const json_t *v) {
        if (!json_is_string(v))
                return sqlite3_bind_null(st, idx);
        return sqlite3_bind_text64(st, idx, json_string_value(v), json_string_length(v), SQLITE_STATIC, SQLITE_UTF8);
}

/* A compact JSON writer for event documents. jansson's json_dumpb() re-validates
 * UTF-8 and escapes byte by byte, which made it more than half of the ingest CPU time; strings in a
 * json_t are already valid UTF-8, so only '"', '\\' and control bytes need escaping and everything
 * else is copied in runs. Output is the same text json_dumpb(JSON_COMPACT) gives. */
#define JSON_WRITE_MAX_DEPTH 2048          /* jansson's parser depth limit: what it parsed can be stored */

typedef struct jbuf {
        char *p;
        size_t n, size;
} jbuf;

static int jw_reserve(jbuf *b, size_t more) {
        if (b->n + more <= b->size)
                return 0;
        size_t a = MAX(b->size * 2, b->n + more);
        a = MAX(a, (size_t) 65536);
        char *p = realloc(b->p, a);
        if (!p)
                return -ENOMEM;
        b->p = p;
        b->size = a;
        return 0;
}

static inline int jw_raw(jbuf *b, const char *t, size_t l) {
        if (_unlikely_(b->n + l > b->size)) {
                int r = jw_reserve(b, l);
                if (r < 0)
                        return r;
        }
        memcpy(b->p + b->n, t, l);
        b->n += l;
        return 0;
}

static int jw_string(jbuf *b, const char *t, size_t l) {
        /* worst case: every byte becomes \u00XX */
        int r = jw_reserve(b, l * 6 + 2);
        if (r < 0)
                return r;
        char *o = b->p + b->n;
        *o++ = '"';
        size_t i = 0;
        while (i < l) {
                size_t j = i;
                while (j < l && (unsigned char) t[j] >= 0x20 && t[j] != '"' && t[j] != '\\')
                        j++;
                memcpy(o, t + i, j - i);
                o += j - i;
                if (j >= l)
                        break;
                unsigned char c = (unsigned char) t[j];
                *o++ = '\\';
                switch (c) {
                case '"': *o++ = '"'; break;
                case '\\': *o++ = '\\'; break;
                case '\b': *o++ = 'b'; break;
                case '\f': *o++ = 'f'; break;
                case '\n': *o++ = 'n'; break;
                case '\r': *o++ = 'r'; break;
                case '\t': *o++ = 't'; break;
                default:
                        o += sprintf(o, "u%04X", c);
                }
                i = j + 1;
        }
        *o++ = '"';
        b->n = (size_t) (o - b->p);
        return 0;
}

static int jw_value(jbuf *b, const json_t *v, unsigned depth) {
        char num[64];
        int r, l;

        if (depth > JSON_WRITE_MAX_DEPTH)
                return -ELOOP;

        switch (json_typeof(v)) {
        case JSON_OBJECT: {
                /* the plain iterator: json_object_foreach() looks every key up again */
                bool first = true;

                if ((r = jw_raw(b, "{", 1)) < 0)
                        return r;
                for (void *it = json_object_iter((json_t *) v); it; it = json_object_iter_next((json_t *) v, it)) {
                        if (!first && (r = jw_raw(b, ",", 1)) < 0)
                                return r;
                        first = false;
                        if ((r = jw_string(b, json_object_iter_key(it), json_object_iter_key_len(it))) < 0 ||
                            (r = jw_raw(b, ":", 1)) < 0 ||
                            (r = jw_value(b, json_object_iter_value(it), depth + 1)) < 0)
                                return r;
                }
                return jw_raw(b, "}", 1);
        }
        case JSON_ARRAY: {
                size_t i;
                json_t *e;

                if ((r = jw_raw(b, "[", 1)) < 0)
                        return r;
                json_array_foreach(v, i, e) {
                        if (i > 0 && (r = jw_raw(b, ",", 1)) < 0)
                                return r;
                        if ((r = jw_value(b, e, depth + 1)) < 0)
                                return r;
                }
                return jw_raw(b, "]", 1);
        }
        case JSON_STRING:
                return jw_string(b, json_string_value(v), json_string_length(v));
        case JSON_INTEGER: {
                json_int_t x = json_integer_value(v);
                uint64_t u = x < 0 ? (uint64_t) 0 - (uint64_t) x : (uint64_t) x;
                char *e = num + sizeof num, *p = e;
                do {
                        *--p = (char) ('0' + u % 10);
                        u /= 10;
                } while (u > 0);
                if (x < 0)
                        *--p = '-';
                return jw_raw(b, p, (size_t) (e - p));
        }
        case JSON_REAL:
                /* as jansson: 17 significant digits, always recognisably a real, and an
                 * exponent without '+' or leading zeros */
                l = snprintf(num, sizeof num - 3, "%.17g", json_real_value(v));
                if (l < 0)
                        return -EINVAL;
                if (!strpbrk(num, ".e")) {
                        strcat(num, ".0");
                        l += 2;
                }
                char *e = strchr(num, 'e');
                if (e) {
                        char *start = e + 1, *end = e + 2;
                        if (*start == '-')
                                start++;
                        while (*end == '0')
                                end++;
                        if (end != start) {
                                memmove(start, end, strlen(end) + 1);
                                l = (int) strlen(num);
                        }
                }
                return jw_raw(b, num, (size_t) l);
        case JSON_TRUE:
                return jw_raw(b, "true", 4);
        case JSON_FALSE:
                return jw_raw(b, "false", 5);
        case JSON_NULL:
                return jw_raw(b, "null", 4);
        default:
                return -EINVAL;
        }
}

static int ack_get(storage *s, int64_t job, int64_t *ret) {
        _cleanup_stmt_ stmt_handle h = {};
        int r = stmt_fixed(s, STMT_ACK_GET, &h);
        if (r < 0)
                return r;
        sqlite3_bind_int64(h.stmt, 1, job);
        int rc = sqlite3_step(h.stmt);
        if (rc == SQLITE_ROW)
                *ret = sqlite3_column_int64(h.stmt, 0);
        else if (rc == SQLITE_DONE)
                *ret = 0;
        else
                return sql_fail(s, rc, "reading acknowledged events");
        return 0;
}

static int ack_advance(storage *s, int64_t job, int64_t *ret) {
        int64_t acked = 0, next;
        int r, rc;

        r = ack_get(s, job, &acked);
        if (r < 0)
                return r;
        next = acked;
        {
                _cleanup_stmt_ stmt_handle h = {};
                r = stmt_fixed(s, STMT_ACK_SCAN, &h);
                if (r < 0)
                        return r;
                sqlite3_bind_int64(h.stmt, 1, job);
                sqlite3_bind_int64(h.stmt, 2, acked);
                while ((rc = sqlite3_step(h.stmt)) == SQLITE_ROW) {
                        if (sqlite3_column_int64(h.stmt, 0) != next + 1)
                                break;
                        next++;
                }
                if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                        return sql_fail(s, rc, "scanning events");
        }
        if (next != acked) {
                _cleanup_stmt_ stmt_handle h = {};
                r = stmt_fixed(s, STMT_ACK_SET, &h);
                if (r < 0)
                        return r;
                sqlite3_bind_int64(h.stmt, 1, job);
                sqlite3_bind_int64(h.stmt, 2, next);
                rc = sqlite3_step(h.stmt);
                if (rc != SQLITE_DONE)
                        return sql_fail(s, rc, "storing acknowledged events");
        }
        *ret = next;
        return 0;
}

/* One event of a batch, ready to insert: its indexed fields and its text in the batch buffer. */
typedef struct event_row {
        event_fields f;
        bool failed, changed;
        size_t offset, len;
} event_row;

typedef struct events_insert_args {
        int64_t job, attempt;
        size_t n;
        const event_row *rows;
        const char *text;
        int64_t acked;
} events_insert_args;

static int events_insert_tx(storage *s, void *userdata) {
        events_insert_args *a = userdata;
        _cleanup_stmt_ stmt_handle h = {};
        int r;

        r = stmt_fixed(s, STMT_EVENT_INSERT, &h);
        if (r < 0)
                return r;

        for (size_t i = 0; i < a->n; i++) {
                const event_row *e = &a->rows[i];
                sqlite3_stmt *st = h.stmt;

                sqlite3_reset(st);
                sqlite3_bind_int64(st, 1, a->job);
                sqlite3_bind_int64(st, 2, json_integer_value(e->f.counter));
                sqlite3_bind_int64(st, 3, a->attempt);
                bind_opt_text(st, 4, e->f.event);
                bind_opt_text(st, 5, e->f.uuid);
                bind_opt_text(st, 6, e->f.parent_uuid);
                bind_opt_text(st, 7, e->f.host);
                bind_opt_text(st, 8, e->f.task);
                bind_opt_text(st, 9, e->f.play);
                sqlite3_bind_int(st, 10, e->failed);
                sqlite3_bind_int(st, 11, e->changed);
                bind_opt_text(st, 12, e->f.created);
                sqlite3_bind_text64(st, 13, a->text + e->offset, e->len, SQLITE_STATIC, SQLITE_UTF8);
                int rc = sqlite3_step(st);
                if (rc != SQLITE_DONE)
                        return sql_fail(s, rc, "storing an event");
        }

        return ack_advance(s, a->job, &a->acked);
}

int storage_events_insert(storage *s, int64_t job_id, int64_t attempt, json_t *events, int64_t *ret_acked) {
        _cleanup_free_ event_row *rows = NULL;
        _cleanup_free_ char *text = NULL;
        jbuf b = {};
        size_t i, n;
        json_t *ev;
        int r;

        if (!s || !json_is_array(events) || job_id < 0)
                return -EINVAL;

        /* Validate, extract and serialise the whole batch before taking the lock: other threads
         * keep using storage meanwhile, and a bad event stores nothing. */
        n = json_array_size(events);
        rows = calloc(MAX(n, (size_t) 1), sizeof *rows);
        if (!rows)
                return -ENOMEM;
        json_array_foreach(events, i, ev) {
                event_row *e = &rows[i];

                if (!json_is_object(ev))
                        r = -EINVAL;
                else {
                        event_fields_get(ev, &e->f);
                        if (!json_is_integer(e->f.counter) || json_integer_value(e->f.counter) < 1 ||
                            json_integer_value(e->f.counter) > EVENT_COUNTER_MAX)
                                r = -EINVAL;
                        else {
                                event_derive_flags(&e->f, &e->failed, &e->changed);
                                e->offset = b.n;
                                r = jw_value(&b, ev, 0);
                                e->len = b.n - e->offset;
                        }
                }
                if (r < 0) {
                        free(b.p);
                        if (r == -EINVAL)
                                log_debug("Event %zu of a batch for job %" PRIi64 " has no valid counter.", i, job_id);
                        return r;
                }
        }
        text = b.p;

        events_insert_args a = { .job = job_id, .attempt = attempt, .n = n, .rows = rows, .text = text };
        r = storage_transaction(s, events_insert_tx, &a);
        if (r < 0)
                return r;
        if (ret_acked)
                *ret_acked = a.acked;
        return 0;
}

int storage_events_acked(storage *s, int64_t job_id, int64_t *ret_acked) {
        int64_t acked = 0;
        if (!s || !ret_acked)
                return -EINVAL;
        LOCKED(s);
        int r = ack_get(s, job_id, &acked);
        if (r < 0)
                return r;
        *ret_acked = acked;
        return 0;
}

int storage_events_list(storage *s, int64_t job_id, const storage_query *q, json_t **ret_results, int64_t *ret_count) {
        char select[96];

        if (!s)
                return -EINVAL;
        snprintf(select, sizeof select, "SELECT job * %" PRIi64 " + counter, doc, job", EVENT_ID_FACTOR);

        LOCKED(s);
        return list_run(s, select, " FROM job_events WHERE job = ", &(bindv) { .kind = BIND_INT, .i = job_id }, 1,
                        q, event_column, "counter", "job", ret_results, ret_count);
}

int storage_events_delete(storage *s, int64_t job_id) {
        _cleanup_stmt_ stmt_handle h = {};
        int r;

        if (!s)
                return -EINVAL;
        LOCKED(s);
        r = stmt_get(s, "DELETE FROM job_events WHERE job = ?1", &h);
        if (r < 0)
                return r;
        sqlite3_bind_int64(h.stmt, 1, job_id);
        r = step_done(s, h.stmt, "deleting events");
        if (r < 0)
                return r;
        stmt_releasep(&h);
        r = stmt_get(s, "DELETE FROM job_event_ack WHERE job = ?1", &h);
        if (r < 0)
                return r;
        sqlite3_bind_int64(h.stmt, 1, job_id);
        return step_done(s, h.stmt, "deleting events");
}
