/* agent.h: the agent's shared types and the contracts between its modules:
 *   agent-config.c  YAML config (errors name file:line:col)
 *   job-dir.c       the ansible-runner private data dir of one job, project cache
 *   job-command.c   ansible-playbook argv/env and the transient unit's properties
 *   unit.c          sd-bus: start/stop/inspect transient units
 *   event-line.c    validation/limits of one callback event line
 *   agent.c, job-run.c, uploader.c  threads: work long-poll, heartbeat, one supervisor per job
 * See docs/protocol.md for the job directory layout and the wire protocol. */
#pragma once

#include <jansson.h>
#include <stdint.h>
#include "drover/macro.h"

typedef struct agent_unit_defaults {
        uint64_t memory_max;         /* bytes; UINT64_MAX = unset */
        uint64_t cpu_quota_usec;     /* CPUQuotaPerSecUSec; UINT64_MAX = unset */
        uint64_t tasks_max;          /* UINT64_MAX = unset */
        char *user;                  /* NULL = root */
        uint64_t stop_timeout_usec;  /* TimeoutStopUSec: grace between SIGTERM and SIGKILL; default 10 s */
} agent_unit_defaults;

/* Container runtime (issue: execution environments). Parsed from the `podman:` section. */
typedef struct agent_podman_config {
        bool enabled;                /* podman.enabled; default: true when `path` is executable */
        char *path;                  /* podman.path; default "/usr/bin/podman" */
        char **global_options;       /* podman.global_options: before the subcommand, e.g. ["--events-backend=file"] */
        char **run_options;          /* podman.run_options: extra `podman run` options a site needs, e.g.
                                      * ["--cgroups=disabled", "--ulimit=nofile=4096:4096", "--network=none"] */
        char **pull_options;         /* podman.pull_options: extra `podman pull` options, e.g. ["--tls-verify=false"] */
} agent_podman_config;

/* Spool limits (issue: faults). Parsed from the `spool:` section. */
typedef struct agent_spool_config {
        uint64_t max_job_bytes;      /* spool.max_job_size: events file of one job; default 256M */
        uint64_t max_total_bytes;    /* spool.max_total_size: all unacknowledged spool on the node; default 1G */
} agent_spool_config;

typedef struct agent_config {
        char *path;
        char *controller_url;        /* https://host:port */
        char *ca_file;               /* pinned controller CA; NULL = system store */
        char *enrollment_token;      /* one-time token (used when secret_file does not exist yet) */
        char *secret_file;           /* default <state_dir>/node-secret (0600) */
        char *node_name;             /* default: hostname */
        char *state_dir;             /* default /var/lib/drover */
        char *share_dir;             /* where the callback plugin lives; default DROVER_SHARE_DIR */
        char *ansible_playbook;      /* default "/usr/bin/ansible-playbook" */
        char *bus_address;           /* default: unix:path=/run/systemd/private as root, else system bus */
        int64_t capacity;            /* 0 = computed from CPUs and memory (AWX rules) */
        int64_t job_slice;           /* unused yet; default 1 */
        bool keep_job_dirs;          /* keep private data dirs after jobs (debugging) */
        uint64_t heartbeat_interval_usec;  /* default 10 s */
        int log_level;
        agent_unit_defaults unit;
        agent_podman_config podman;
        agent_spool_config spool;
} agent_config;

int agent_config_load(const char *path, agent_config **ret);
void agent_config_free(agent_config *c);

/* ---- event-line.c ---- */
#define AGENT_EVENT_MAX_LINE (8u * 1024u * 1024u)  /* a longer line is replaced by a marker event */
#define AGENT_EVENT_MAX_RES  (700000u)              /* ansible-runner's limit for event_data.res */
/* Parse one complete line of the events file (without its '\n'). expected_counter is the counter
 * the line should carry (the callback writes 1, 2, 3 ... one per line).
 * Returns 0 with a new event object in *ret. A `res` (event_data.res) bigger than AGENT_EVENT_MAX_RES
 * characters of JSON is replaced by {"_drover_truncated": true, "size": N}. A line that is not a JSON
 * object with an integer counter, or longer than AGENT_EVENT_MAX_LINE, is replaced by a placeholder
 * {"event": "warning", "counter": expected_counter, "uuid": <fresh>, "stdout": "[drover] malformed event
 * line (N bytes) replaced", "event_data": {}} so the sequence stays gapless; *ret_malformed is set.
 * Never crashes on any input. */
int event_line_parse(const char *line, size_t len, int64_t expected_counter, json_t **ret, bool *ret_malformed);
/* True when event_line_parse() would return the line's own event unchanged (so its bytes can be
 * uploaded as they are), with its counter in *ret_counter; false when event_line_parse() must decide
 * (it may answer false for some lines event_line_parse() keeps unchanged). Never builds a tree. */
bool event_line_check_raw(const char *line, size_t len, int64_t expected_counter, int64_t *ret_counter);
