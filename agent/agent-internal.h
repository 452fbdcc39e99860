/* agent-internal.h: the runtime side of drover-agent shared between agent.c (main loop, enrollment,
 * heartbeat and work threads, the running-jobs set), job-run.c (one supervisor thread per job) and
 * uploader.c (following a job's events file and uploading it). Not a contract for other modules. */
#pragma once

#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <jansson.h>

#include "agent.h"
#include "drover/http-client.h"

typedef struct unit_bus unit_bus;
typedef struct job_dir job_dir;
typedef struct agent agent;

/* HTTP timeouts: the long-poll waits AGENT_WORK_WAIT_SEC, the request may take a bit longer. */
#define AGENT_WORK_WAIT_SEC 50
#define AGENT_WORK_TIMEOUT_MS (60 * 1000L)
#define AGENT_REQUEST_TIMEOUT_MS (30 * 1000L)
#define AGENT_BACKOFF_MIN_USEC (250 * 1000ULL)
#define AGENT_BACKOFF_MAX_USEC (30 * 1000 * 1000ULL)
#define AGENT_SECRET_MAX 4096
#define AGENT_RECENT_MAX 256
/* Written into a job dir that is kept (keep_job_dirs/keep_data_dir) once its run was reported or
 * dropped: a restarted agent does not resume such a dir. */
#define AGENT_JOB_DONE_FILE "done"

/* One job run this node owns: lives in agent->jobs while its supervisor runs. */
typedef struct agent_job {
        agent *agent;
        int64_t job_id;
        int64_t attempt;
        json_t *assignment;             /* NULL when resumed after an agent restart */
        job_dir *dir;                   /* set by the supervisor once the job dir exists (under agent->lock) */
        bool resume;
        bool cancel_requested;          /* "cancel" list: stop the unit, report canceled */
        bool stop_requested;            /* "stop" list or 409: stop the unit, do not report */
        bool unit_started;
        uint64_t spool_bytes;           /* events file bytes not yet acknowledged (set by the uploader) */
        bool disk_full;                 /* the job dir's file system ran full while it ran */
        bool forget;                    /* on removal, do not remember (job, attempt) as run here */
        bool reported;                  /* the controller accepted the final result (cleanup left) */
        pthread_t thread;
        struct agent_job *next;
} agent_job;

struct agent {
        agent_config *cfg;
        unit_bus *bus;
        char *authorization;            /* "Bearer dns_..." (secret: never logged) */
        int64_t cpus;
        uint64_t memory;
        int64_t capacity;

        pthread_mutex_t lock;           /* protects everything below */
        pthread_cond_t cond;            /* broadcast on stop; CLOCK_MONOTONIC */
        agent_job *jobs;
        size_t n_jobs;
        size_t n_threads;               /* supervisor threads not yet exited */
        bool stopping;
        bool unreachable;               /* for "controller unreachable/reachable again" logging */
        bool ready;
        bool spool_full;                /* unacknowledged spool past spool.max_total_size: take no work */
        char **runtimes;                /* agent_runtimes() */

        /* (job, attempt) runs that ended here lately: a late re-sent assignment must not start them again */
        struct {
                int64_t job_id, attempt;
        } recent[AGENT_RECENT_MAX];
        size_t n_recent;

        pthread_mutex_t project_lock;   /* serialises project downloads/extraction */
};

/* Exponential backoff with jitter: 250 ms doubling to 30 s, honouring Retry-After. */
typedef struct agent_backoff {
        uint64_t next_usec;
} agent_backoff;
void agent_backoff_reset(agent_backoff *b);
/* Sleep for the next backoff step (interruptible by stop); -ECANCELED when the agent stops. */
int agent_backoff_wait(agent *a, agent_backoff *b, const char *retry_after);

/* Sleep up to usec; returns -ECANCELED at once if the agent is stopping. */
int agent_sleep(agent *a, uint64_t usec);
bool agent_is_stopping(agent *a);

/* A per-thread client talking to the controller, authorised with the node secret. */
int agent_http_client(agent *a, long timeout_ms, http_client **ret);
/* POST/GET and act on the answer's "cancel"/"stop" lists. Returns 0 when a response arrived. */
int agent_request(agent *a, http_client *c, const char *method, const char *path, const json_t *body,
                  http_response *ret);
/* Did the request fail in a way worth retrying (transport error, 5xx, 429)? */
bool agent_response_retryable(int r, const http_response *resp);
/* Log "controller unreachable" / "reachable again" on transitions. */
void agent_note_reachable(agent *a, bool reachable, const char *what);
/* Apply "cancel" and "stop" lists found in an answer. */
void agent_apply_control(agent *a, const json_t *answer);
/* Mark a job as no longer reported (superseded/409) and stop its unit. */
void agent_job_drop(agent_job *j);
/* The supervisor of j ended: take it out of the set. Frees j. */
void agent_job_remove(agent_job *j);
/* A short description of an HTTP failure for logs and explanations ("HTTP 400: ..." or transport text). */
char *agent_describe_failure(int r, const http_response *resp);

/* Sum the jobs' unacknowledged spool, compare it with spool.max_total_size (logging transitions)
 * and return whether the node is past it (then it advertises capacity 0 and takes no new work). */
bool agent_spool_check(agent *a);
/* Record a job's unacknowledged spool bytes. */
void agent_job_set_spool(agent_job *j, uint64_t bytes);
/* Is the file system holding path (nearly) full? Less than AGENT_DISK_FULL_BYTES free. */
#define AGENT_DISK_FULL_BYTES (64u * 1024u)
bool agent_disk_full(const char *path);

/* ---- job-run.c ---- */
void *job_run_thread(void *userdata);

/* ---- uploader.c ---- */
typedef struct uploader {
        agent_job *job;
        job_dir *dir;
        uint64_t acked_offset;          /* bytes of the events file the controller acknowledged */
        int64_t acked_counter;
        int inotify_fd;
        bool rewind;                    /* controller lost events: upload again from the start */
        /* spool.max_job_size: lines past the limit are not uploaded; one truncation event replaces them */
        bool truncated;                 /* the truncation event is acknowledged: nothing more to upload */
        int64_t truncated_counter;      /* its counter (the job's final counter) */
} uploader;

/* Written into the job dir once the truncation event is acknowledged: "<offset> <counter>". */
#define AGENT_JOB_TRUNCATED_FILE "spool-truncated"

int uploader_init(uploader *u, agent_job *j, job_dir *d);
void uploader_done(uploader *u);
/* Upload what is available. final: the unit has finished, a trailing line without '\n' counts too.
 * Returns 1 if something was acknowledged (call again), 0 if nothing is pending, -EAGAIN/-EIO on
 * a retryable failure (*ret_retry_after may be set), -ESTALE on 409 (superseded). */
int uploader_run_once(uploader *u, http_client *c, bool final, char **ret_retry_after);
/* Is the whole events file acknowledged (a missing file counts as fully uploaded)? */
bool uploader_complete(uploader *u, bool final);
/* Wait for the events file to change or 1 s to pass. */
void uploader_wait(uploader *u, uint64_t max_usec);
/* The controller answered with a lower "acked" than ours: upload everything again. */
void uploader_rewind(uploader *u);

/* ---- agent.c ---- */
/* Run the agent until SIGTERM/SIGINT. Returns 0 on a clean stop, 1 on a stop that left threads
 * running (a long-poll in flight: cfg must stay valid, the caller should _exit(0) at once),
 * negative errno on a fatal error. */
int agent_run(agent_config *cfg);

/* ---- agent-config.c ---- */
/* agent_config_load() that returns its error text instead of logging it. */
int agent_config_load_with_error(const char *path, agent_config **ret, char *error, size_t error_size);
