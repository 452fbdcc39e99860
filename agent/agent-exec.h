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
        /* added for the container runtime (issue 5): */
        char ***exec_start_pre;         /* NULL-terminated list of argvs: ExecStartPreEx, in order; a failure
                                         * fails the unit (Result=exit-code) and the main process never runs */
        char ***exec_stop_post;         /* ExecStopPostEx commands run BEFORE the result recorder; their
                                         * failures are ignored ("ignore-failure") */
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
        /* added for the container runtime (issue 5): */
        char *auth_path;        /* <root>/auth.json: podman registry auth file, removed after the pull */
        char *pull_error_path;  /* <root>/pull-error: written by the unit's pull step when it fails */
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
        /* added for the container runtime (issue 5), filled by job_dir_read_unit_result(): */
        bool container;                 /* the job ran in an execution environment (podman) */
        bool pull_failed;               /* the pull step failed: the container never started */
        char image[256];                /* the EE image (truncated) */
        char detail[512];               /* podman's message: the pull step's error, or the last "Error:"
                                         * line of stderr when podman itself failed (exit 125-127) */
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
        /* added for the container runtime (issue 5): for an assignment with an execution_environment
         * object, argv is `podman ... run ... <image> ansible-playbook <args>` (environment values are
         * passed by name, `-e NAME`, so no secret appears in argv) and these hold the unit's pull step
         * and container removal (job_command_unit_spec() puts them into the unit_spec). */
        char **unit_argv;       /* what the unit's main process runs when it differs from argv: the pull
                                 * step, then exec of argv (NULL: argv) */
        char ***exec_start_pre;
        char ***exec_stop_post;
        char *container_name;   /* "drover-job-<id>" or NULL for the systemd runtime */
        agent_unit_defaults container_limits;   /* cfg->unit without User= (podman runs as root; the
                                                 * job user becomes `podman run --user uid:gid`) */
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

/* The assignment's execution_environment when it is an object (else NULL: systemd runtime). */
const json_t *job_podman_ee(const json_t *assignment);
/* Validate an execution_environment object: image (non-empty, <= 255 bytes, printable, no blanks,
 * not starting with '-'), pull ("always", "missing", "never", "" or absent), auth null or
 * {"registry", "username", "password"} strings ("password" may be absent: job_podman_write_auth()
 * removed it). -EINVAL with a log message naming the problem. */
int job_podman_ee_validate(int64_t job_id, const json_t *ee);
/* podman's --pull value for an EE pull policy: always->always, never->never, else missing. */
const char *job_podman_pull_policy(const char *pull);
/* Write <root>/auth.json (0600, {"auths": {"<registry>": {"auth": base64(user:pass)}}}) when the EE
 * has auth, then delete "password" from the assignment's auth object (it is not stored in job.json
 * nor kept in memory). No-op without auth. */
int job_podman_write_auth(const job_dir *d, json_t *ee);
/* Turn a built ansible-playbook command into the container runtime's: cmd->argv becomes the
 * `podman run` command line, cmd->env the environment podman runs with (the job's variables,
 * passed to the container by name, without those that would configure podman, the OCI runtime or
 * the dynamic loader; HOME and PATH passed by value, podman gets HOME=/root and the standard PATH),
 * cmd->unit_argv the unit's main process (a bash step that pulls by
 * policy with the auth file, removes it, then execs the podman run: the pull belongs to the job,
 * counts against its timeout and can be canceled), cmd->exec_stop_post the removal of the
 * container and the auth file. -EOPNOTSUPP when the node has no usable podman. */
int job_podman_command(const agent_config *cfg, const job_dir *d, const json_t *ee, job_command *cmd);
/* Fill the container fields of a job_unit_result from the job dir (pull-error file, stderr tail). */
void job_podman_read_result(job_dir *d, job_unit_result *res);
/* Free a NULL-terminated list of argvs. */
void job_podman_argvs_free(char ***l);
