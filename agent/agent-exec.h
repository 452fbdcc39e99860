/* agent-exec.h: how the agent turns an assignment into a running transient unit, and reads back
 * what happened. Contract between job-dir.c / job-command.c / unit.c (execution side) and
 * agent.c / job-run.c / uploader.c (runtime side). */
#pragma once

#include <jansson.h>
#include <stdint.h>
#include "agent.h"

/* ---------------- unit.c: sd-bus access to systemd ---------------- */
typedef struct unit_bus unit_bus;   /* thread safe: an internal mutex serialises calls */

/* address NULL: "unix:path=/run/systemd/private" when root and it exists, else the system bus. */
int unit_bus_open(const char *address, unit_bus **ret);
void unit_bus_close(unit_bus *b);

typedef struct unit_spec {
        const char *name;               /* "drover-job-12.service" */
        const char *description;        /* "drover job 12 (Demo)" */
        const char *slice;              /* "drover-jobs.slice" */
        char **argv;                    /* ExecStartEx with "no-env-expand": passed untouched */
        char **env;                     /* Environment= NAME=value */
        const char *working_directory;
        const char *stdout_append;      /* StandardOutputFileToAppend (absolute) */
        const char *stderr_append;
        uint64_t runtime_max_usec;      /* 0 = none */
        const agent_unit_defaults *limits; /* MemoryMax, CPUQuotaPerSecUSec, TasksMax, User, TimeoutStopUSec */
        const char *result_path;        /* ExecStopPostEx writes the outcome line here (see job_unit_result) */
} unit_spec;

/* StartTransientUnit (mode "fail", Type=exec, CollectMode=inactive-or-failed, KillMode=control-group,
 * SendSIGKILL=yes) and wait for the start job to finish. -EEXIST if a unit with that name is loaded;
 * other failures carry systemd's error text in *ret_error (caller frees; may be NULL). */
int unit_start(unit_bus *b, const unit_spec *spec, char **ret_error);
/* StopUnit(name, "replace"); a unit that is not loaded is success. */
int unit_stop(unit_bus *b, const char *name);
int unit_kill(unit_bus *b, const char *name, int signo);

typedef struct unit_state {
        bool loaded;                    /* LoadState == "loaded" */
        char active_state[32];          /* "active", "inactive", "failed", ... */
        char sub_state[32];
        char result[32];                /* Service.Result */
        bool has_job;                   /* a start/stop job is pending */
} unit_state;
/* State of a unit by name without loading it: a unit that is not loaded gives loaded=false. */
int unit_get_state(unit_bus *b, const char *name, unit_state *ret);
/* Names of loaded units matching a glob (ListUnitsByPatterns), e.g. "drover-job-*.service". */
int unit_list(unit_bus *b, const char *pattern, char ***ret_names);
/* Read a uint64 property (e.g. interface "org.freedesktop.systemd1.Service", "MemoryMax"). */
int unit_get_property_u64(unit_bus *b, const char *name, const char *interface, const char *property, uint64_t *ret);

/* ---------------- job-dir.c: the private data dir ---------------- */
typedef struct job_dir {
        int64_t job_id;
        int64_t attempt;
        char *root;             /* <state_dir>/jobs/<id> */
        char *artifacts;        /* <root>/artifacts/<id> */
        char *events_path;      /* <artifacts>/job_events.jsonl */
        char *stdout_path;      /* <artifacts>/stdout */
        char *stderr_path;      /* <artifacts>/stderr */
        char *result_path;      /* <artifacts>/unit-result */
        char *project;          /* <root>/project (symlink into the project cache) */
        char *inventory;        /* <root>/inventory/hosts.json */
        char *extravars;        /* <root>/env/extravars */
        json_t *assignment;     /* job.json */
} job_dir;

/* Is project <hash> in <state_dir>/projects/<hash>/ already? (ret_path may be NULL) */
bool project_cache_has(const char *state_dir, const char *hash, char **ret_path);
/* Verify sha256(tar) == hash, then extract the ustar archive into <state_dir>/projects/<hash>/
 * (via a temp dir + rename; rejects absolute paths, "..", links leaving the tree). */
int project_cache_store(const char *state_dir, const char *hash, const void *tar, size_t size, char **ret_path);

/* Extract an uncompressed ustar archive below the directory dir_fd: regular files (mode 0755 if
 * any x bit, else 0644) and directories only; absolute names, "..", links and devices are refused;
 * entry count and total size are limited. (added by job-dir.c; used by tests) */
int tar_extract(int dir_fd, const void *tar, size_t size);
/* Convert an `ansible-inventory --list --export` object into the YAML inventory plugin's
 * structure {"all": {"hosts": {...}, "vars": {...}, "children": {...}}} (cycle safe). (added) */
int job_inventory_convert(const json_t *export, json_t **ret);

/* Create <state_dir>/jobs/<id>/ from an assignment (docs/protocol.md): env/extravars (JSON),
 * env/envvars, env/settings, inventory/hosts.json (the export-format inventory converted to the
 * YAML inventory plugin's structure), project symlink to project_path, artifacts dir, job.json.
 * Mode 0700 for the dir, 0600 for files. An existing dir for the same job is replaced. */
int job_dir_create(const agent_config *cfg, json_t *assignment, const char *project_path, job_dir **ret);
/* Open an existing job dir (after an agent restart); -ENOENT if missing. */
int job_dir_open(const agent_config *cfg, int64_t job_id, job_dir **ret);
/* List job ids that have a job dir under <state_dir>/jobs. */
int job_dir_list(const agent_config *cfg, int64_t **ret_ids, size_t *ret_n);
void job_dir_free(job_dir *d);
int job_dir_remove(job_dir *d);         /* rm -rf root */

int job_dir_write_ack(job_dir *d, uint64_t offset, int64_t counter);
int job_dir_read_ack(job_dir *d, uint64_t *ret_offset, int64_t *ret_counter);   /* 0/0 if absent */
int job_dir_mark_cancel(job_dir *d);    /* creates <root>/cancel */
bool job_dir_cancel_requested(job_dir *d);
/* Write artifacts/<id>/status and rc (ansible-runner style). */
int job_dir_write_status(job_dir *d, const char *status, int rc);
/* Write artifacts/<id>/command: {"command": argv, "cwd": cwd, "env": redacted env}. */
int job_dir_write_command(job_dir *d, char **argv, const char *cwd, json_t *redacted_env);

/* What the unit's ExecStopPost recorded: "<SERVICE_RESULT> <EXIT_CODE> <EXIT_STATUS> <oom_kills>" */
typedef struct job_unit_result {
        char service_result[32];        /* success, exit-code, signal, timeout, oom-kill, ... */
        char exit_code[32];             /* exited, killed, dumped */
        char exit_status[32];           /* "0", "2", "TERM", "KILL", ... */
        int64_t oom_kills;              /* memory cgroup oom kills seen (-1 unknown) */
} job_unit_result;
/* -ENOENT while the unit has not finished. */
int job_dir_read_unit_result(job_dir *d, job_unit_result *ret);

/* ---------------- job-command.c: what runs ---------------- */
typedef struct job_command {
        char **argv;            /* ansible-playbook -i <inv> [--limit] [-f N] [-v..] -e @<extravars> [-t] [--skip-tags] [-C] [-D] <playbook> */
        char **env;             /* the ANSIBLE_* environment AWX/ansible-runner set + assignment env + HOME etc. */
        char *cwd;              /* the project dir */
        /* added by job-command.c (the unit_spec points at them): */
        char *unit_name;        /* job_unit_name() */
        char *description;      /* "drover job 12 (Demo)" */
} job_command;
int job_command_build(const agent_config *cfg, const job_dir *d, job_command *ret);
void job_command_done(job_command *c);
/* env as a JSON object with secret-looking values replaced by "**********". */
json_t *job_command_redacted_env(char *const *env);
/* Fill a unit_spec for the job (points into d, cmd and cfg; valid while they live). */
void job_command_unit_spec(const agent_config *cfg, const job_dir *d, const job_command *cmd, unit_spec *ret);
/* The unit name of a job: "drover-job-<id>.service" (buf >= 64 bytes). */
char *job_unit_name(int64_t job_id, char buf[static 64]);

/* Map what the unit left to a job outcome:
 *   success                          -> "successful", rc 0
 *   exit-code (status N)             -> "failed", rc N, explanation NULL
 *   timeout (and not canceled)       -> "failed", rc 254, "Job terminated due to timeout"
 *   canceled (the agent asked)       -> "canceled", rc 254, "Job canceled"
 *   signal KILL with oom_kills > 0, or oom-kill -> "failed", rc 137,
 *                                       "Job killed: memory limit (MemoryMax=...) exceeded"
 *   signal X                         -> "failed", rc 128+N, "Job killed by signal SIGX"
 *   anything else                    -> "error" with an explanation naming it.
 * *ret_explanation is malloc'ed or NULL. */
int job_outcome(const agent_config *cfg, const job_unit_result *r, bool canceled, const char **ret_status,
                int *ret_rc, char **ret_explanation);

/* ---------------- job-podman.c: the container runtime ---------------- */
/* The runtimes this node offers: always "systemd", plus "podman" when cfg->podman is enabled and
 * its binary is executable. *ret is a new NULL-terminated strv. */
int agent_runtimes(const agent_config *cfg, char ***ret);
