/* controller.h: the controller's shared state and the contracts between its modules
 * (HTTP server, AWX API handlers, agent protocol, scheduler, notifier).
 *
 * Internal document fields: every stored field whose name starts with '_' is internal and never
 * shown by the API (api output strips them). Job documents carry:
 *   _attempt (int, 0 = never assigned), _instance (int|null: assigned instance id),
 *   _impact (int), _cancel_requested (bool), _started_ack (bool: node reported start for _attempt),
 *   _assignment (object: the assignment sent to the node for _attempt, see docs/protocol.md),
 *   _pending_result (object|null: a result waiting for missing events), _keep_data_dir (bool).
 * Instance documents carry _secret_hash (sha256 hex of the node secret), runtimes, cpu, memory.
 * User documents carry _password_hash; token documents _token_hash; enrollment tokens _token_hash. */
#pragma once

#include <pthread.h>
#include <stdint.h>
#include "drover/macro.h"
#include "storage.h"

typedef struct controller_limits {
        uint64_t max_body_size;          /* AWX API request bodies; default 1 MiB */
        uint64_t max_agent_body_size;    /* agent uploads; default 16 MiB */
        uint64_t max_project_size;       /* project archive; default 64 MiB */
        uint64_t max_event_size;         /* one stored event; default 1 MiB (bigger res truncated) */
        unsigned max_connections;        /* default 1024 */
        unsigned max_long_polls;         /* default 512 */
        unsigned max_streams;            /* SSE streams; default 256 */
        uint64_t long_poll_max_usec;     /* default 50 s */
        uint64_t node_lost_timeout_usec; /* default 120 s */
} controller_limits;

typedef struct controller_config {
        char *path;                      /* the file it was read from */
        char *listen;                    /* "127.0.0.1:8443" / "0.0.0.0:8443" / "[::]:8443" */
        char *tls_cert, *tls_key;        /* NULL: private CA in state_dir/tls */
        char **tls_names;                /* extra names for the generated server certificate */
        char *database;                  /* "sqlite:/var/lib/drover-controller/drover.db" or a path */
        char *state_dir;                 /* default /var/lib/drover-controller */
        char *projects_root;             /* default /var/lib/drover-controller/projects */
        char *admin_user;                /* default "admin" */
        char *admin_password;            /* NULL: generated, written 0600 to state_dir/admin-password */
        char *admin_email;
        int log_level;
        controller_limits limits;
        /* Added by issue5-api: execution environments (api-ee.c); NULL keeps the default.
         * execution_environments.default_image / control_plane_image / latest_image: the images of the
         * three managed EEs (default "localhost/drover-ee:latest"), applied at every start;
         * execution_environments.global_default: the name of the EE a job runs in when neither its
         * template, project nor organization names one (NULL/"": the plain systemd runtime). */
        char *ee_default_image;
        char *ee_control_plane_image;
        char *ee_latest_image;
        char *ee_global_default;
} controller_config;

typedef struct controller {
        controller_config *config;
        storage *storage;
        char *tls_ca_path;               /* the CA clients pin (NULL if a certificate was configured) */

        /* notifier: a generation counter bumped on every change, and a condition to wait on */
        pthread_mutex_t notify_lock;
        pthread_cond_t notify_cond;
        uint64_t notify_generation;

        pthread_mutex_t sched_lock;      /* serialises scheduler runs */
        unsigned long_polls, streams;    /* open counts, under notify_lock */
        volatile bool shutting_down;
} controller;

/* ---- config (controller-config.c) ---- */
int controller_config_load(const char *path, controller_config **ret);  /* errors name file:line:col */
void controller_config_free(controller_config *c);

/* ---- notifier (notify.c) ---- */
/* Wake every waiter (long-polls, SSE streams): something about jobs/instances changed. */
void controller_notify(controller *c);
/* Wait until the generation moves past *gen or timeout_usec passes; updates *gen.
 * Returns 1 if woken, 0 on timeout. */
int controller_wait(controller *c, uint64_t *gen, uint64_t timeout_usec);
/* Added by controller-server: set up / tear down the notifier (and sched_lock) of a controller
 * struct; the current generation; a bounded slot counter (long_polls, streams) under notify_lock:
 * acquire returns -EBUSY when *counter >= max. */
int controller_notify_init(controller *c);
void controller_notify_done(controller *c);
uint64_t controller_generation(controller *c);
int controller_slot_acquire(controller *c, unsigned *counter, unsigned max);
void controller_slot_release(controller *c, unsigned *counter);

/* ---- scheduler (scheduler.c) ---- */
/* Assign pending jobs to instances with room (AWX capacity/impact rules); sets
 * job_explanation on jobs that must wait. Called after launch, job end, heartbeat, enrollment,
 * instance changes, and once a second from a timer thread (which also marks lost nodes). */
int scheduler_run(controller *c);
/* AWX capacity of an instance document (cpu, memory, capacity override, capacity_adjustment);
 * 0 for a node whose node_state is not "ready" (lost nodes show capacity 0). */
int64_t scheduler_instance_capacity(const json_t *instance);
/* The capacity the jobs waiting/running on an instance consume. */
int64_t scheduler_consumed_capacity(controller *c, int64_t instance_id);
/* A job's impact: min(forks (0 -> 5), hosts in its inventory after limit... approximated by hosts) + 1 */
int64_t scheduler_job_impact(controller *c, const json_t *job);
/* Added by controller-server: the background thread (scheduler_run every second, lost-node
 * detection). stop joins it. */
int scheduler_start(controller *c);
void scheduler_stop(controller *c);
/* Statuses: true for successful, failed, error, canceled. */
bool scheduler_status_is_final(const char *status);
/* Added by issue4-controller: restart every node's lost-node grace period now (called when the
 * database refused a request: heartbeats that arrived meanwhile could not be recorded). */
void scheduler_restart_grace(controller *c);

/* ---- AWX API (api-*.c) ---- */
/* Build the `ansible-inventory --list --export` JSON of an inventory. */
int api_inventory_export(controller *c, int64_t inventory_id, json_t **ret);
/* The execution environment a job runs in (api-ee.c). AWX's resolution order: the job's
 * execution_environment (from its template or launch), then the project's default_environment, then
 * the organization's default_environment, then the global default (controller config). *ret_ee is
 * NULL when the job runs on the plain systemd runtime, else a new object
 * {"id", "name", "image", "pull": "always"|"missing"|"never"|"", "auth": null |
 *  {"registry", "username", "password"}} (auth decrypted: only ever sent to the node that runs the job).
 * -EINVAL with *ret_error (malloc'ed) when the job names an EE that cannot be used.
 * Added by issue5-api: auth also carries "verify_ssl" (bool, the Container Registry credential's
 * verify_ssl; false means podman --tls-verify=false). */
int api_job_execution_environment(controller *c, const json_t *job, json_t **ret_ee, char **ret_error);
/* Added by issue5-api: the object above carries the registry password in clear; an assignment
 * stored in a job document (_assignment) must not. seal: move execution_environment.auth.password
 * of an assignment into an AES-GCM "password_encrypted" (in place; no-op without a password);
 * unseal: the reverse, on a copy, right before sending it to the node. Both 0 or negative errno. */
int api_ee_assignment_seal(controller *c, json_t *assignment);
int api_ee_assignment_unseal(controller *c, json_t *assignment);
/* Seed the Default organization, the default instance group and the admin user (first start). */
int api_bootstrap(controller *c);
/* Cancel a job (sets _cancel_requested, or cancels a pending job at once); -EBUSY if final. */
int api_job_cancel(controller *c, int64_t job_id);

/* ---- project archives (project-tar.c) ---- */
/* A deterministic ustar archive of dir (regular files and directories, sorted, mtime 0).
 * -EFBIG above max_size. ret_hash: sha256 hex of the archive. */
int project_tar_build(const char *dir, uint64_t max_size, char **ret_data, size_t *ret_size, char ret_hash[static 65]);
/* Added by controller-server: project_tar_build through an in-memory cache keyed by dir and a
 * signature of the tree (names, sizes, mtimes), so dispatch does not rebuild unchanged projects.
 * ret_data/ret_size may be NULL (hash only); *ret_data is the caller's copy. */
int project_tar_get(const char *dir, uint64_t max_size, char **ret_data, size_t *ret_size, char ret_hash[static 65]);
/* The project directory of a project document: <projects_root>/<local_path>; -EINVAL for a
 * local_path that is empty, absolute or has "..". */
int project_local_dir(controller *c, const json_t *project, char **ret);
