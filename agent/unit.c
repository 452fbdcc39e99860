/* unit.c: sd-bus access to systemd for the agent: start transient units for jobs (with an
 * ExecStopPost= that records the outcome into the job directory), stop/kill them, read their
 * state without loading stubs, and list them by pattern. One connection per agent; a mutex
 * serialises every call because the runtime uses it from several threads. */
#include "agent-exec.h"

#include <pthread.h>
#include <signal.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include "drover/log.h"
#include "drover/util.h"

#define SD_DESTINATION "org.freedesktop.systemd1"
#define SD_PATH "/org/freedesktop/systemd1"
#define SD_MANAGER "org.freedesktop.systemd1.Manager"
#define SD_UNIT "org.freedesktop.systemd1.Unit"
#define SD_SERVICE "org.freedesktop.systemd1.Service"
#define PRIVATE_ADDRESS "unix:path=/run/systemd/private"
#define START_WAIT_USEC (10 * 1000000ULL)

struct unit_bus {
        pthread_mutex_t lock;
        sd_bus *bus;
        char *address;          /* NULL: the system bus */
        bool direct;            /* peer-to-peer connection to PID 1 (no bus daemon) */
};

/* The ExecStopPost= script: $1 is the result path. It runs in the unit's cgroup, so the memory
 * cgroup it finds in /proc/self/cgroup is the unit's (cgroup v1 "memory" controller, or the v2
 * unified path). Uses only shell builtins apart from mv. */
static const char stop_post_script[] =
        "r=\"$1\"; oom=-1; m=; u=\n"
        "while IFS=: read -r id ctl path; do\n"
        "  case \",$ctl,\" in *,memory,*) m=\"$path\";; esac\n"
        "  [ \"$id\" = 0 ] && [ -z \"$ctl\" ] && u=\"$path\"\n"
        "done < /proc/self/cgroup\n"
        "f=\n"
        "if [ -n \"$m\" ] && [ -r \"/sys/fs/cgroup/memory$m/memory.oom_control\" ]; then\n"
        "  f=\"/sys/fs/cgroup/memory$m/memory.oom_control\"\n"
        "elif [ -n \"$u\" ] && [ -r \"/sys/fs/cgroup$u/memory.events\" ]; then\n"
        "  f=\"/sys/fs/cgroup$u/memory.events\"\n"
        "fi\n"
        "if [ -n \"$f\" ]; then\n"
        "  while read -r k v; do [ \"$k\" = oom_kill ] && oom=\"$v\"; done < \"$f\"\n"
        "fi\n"
        "printf '%s %s %s %s\\n' \"${SERVICE_RESULT:-unknown}\" \"${EXIT_CODE:--}\" \"${EXIT_STATUS:--}\" \"$oom\" "
        "> \"$r.tmp\" && mv -f \"$r.tmp\" \"$r\"\n";

static int bus_error_to_errno(const sd_bus_error *e, int r) {
        if (sd_bus_error_has_name(e, "org.freedesktop.systemd1.NoSuchUnit") ||
            sd_bus_error_has_name(e, "org.freedesktop.DBus.Error.UnknownObject"))
                return -ENOENT;
        if (sd_bus_error_has_name(e, "org.freedesktop.systemd1.UnitExists"))
                return -EEXIST;
        return r < 0 ? r : -EIO;
}

/* Drop whatever arrived unsolicited (on the private socket every signal arrives, and
 * sd_bus_call() queues them; an unbounded queue ends in -ENOBUFS). */
static void bus_drain(unit_bus *b) {
        for (int i = 0; i < 100000; i++)
                if (sd_bus_process(b->bus, NULL) <= 0)
                        break;
}

static bool endswith_service(const char *name) {
        size_t n = strlen(name);
        return n > 8 && streq(name + n - 8, ".service");
}

static int bus_connect(const char *address, bool direct, sd_bus **ret);

static void bus_lock(unit_bus *b) {
        pthread_mutex_lock(&b->lock);
        if (sd_bus_is_open(b->bus) <= 0) {
                /* systemd re-executed (daemon-reexec) or the connection broke: connect again */
                sd_bus *nb = NULL;
                if (bus_connect(b->address, b->direct, &nb) >= 0) {
                        sd_bus_flush_close_unref(b->bus);
                        b->bus = nb;
                        log_info("Reconnected to systemd.");
                }
        }
        bus_drain(b);
}

static void bus_unlock(unit_bus *b) {
        pthread_mutex_unlock(&b->lock);
}

static int bus_connect(const char *address, bool direct, sd_bus **ret) {
        sd_bus *bus = NULL;
        int r;

        if (address) {
                r = sd_bus_new(&bus);
                if (r < 0)
                        return log_error_errno(r, "Failed to allocate bus: %m");
                r = sd_bus_set_address(bus, address);
                if (r >= 0 && !direct)
                        r = sd_bus_set_bus_client(bus, true);
                if (r >= 0)
                        r = sd_bus_start(bus);
                if (r < 0) {
                        sd_bus_unref(bus);
                        return log_error_errno(r, "Failed to connect to systemd at %s: %m", address);
                }
        } else {
                r = sd_bus_open_system(&bus);
                if (r < 0)
                        return log_error_errno(r, "Failed to connect to the system bus: %m");
        }

        if (!direct) {
                /* Through the bus daemon, systemd only sends signals to subscribers. */
                sd_bus_error e = SD_BUS_ERROR_NULL;
                r = sd_bus_call_method(bus, SD_DESTINATION, SD_PATH, SD_MANAGER, "Subscribe", &e, NULL, NULL);
                if (r < 0)
                        log_warning("Failed to subscribe to systemd signals: %s", e.message ? e.message : "?");
                sd_bus_error_free(&e);
        }
        *ret = bus;
        return 0;
}

int unit_bus_open(const char *address, unit_bus **ret) {
        _cleanup_free_ unit_bus *b = NULL;
        int r;

        b = calloc(1, sizeof *b);
        if (!b)
                return log_oom();

        if (!address && geteuid() == 0 && access("/run/systemd/private", F_OK) == 0)
                address = PRIVATE_ADDRESS;
        if (address) {
                b->address = strdup(address);
                if (!b->address)
                        return log_oom();
                b->direct = strstr(address, "/systemd/private") != NULL;
        }

        r = bus_connect(b->address, b->direct, &b->bus);
        if (r < 0) {
                free(b->address);
                return r;
        }
        r = pthread_mutex_init(&b->lock, NULL);
        if (r != 0) {
                sd_bus_flush_close_unref(b->bus);
                free(b->address);
                return log_error_errno(-r, "Failed to initialise mutex: %m");
        }
        *ret = TAKE_PTR(b);
        return 0;
}

void unit_bus_close(unit_bus *b) {
        if (!b)
                return;
        sd_bus_flush_close_unref(b->bus);
        pthread_mutex_destroy(&b->lock);
        free(b->address);
        free(b);
}

/* ---- message building ---- */

static int append_prop_s(sd_bus_message *m, const char *name, const char *value) {
        return sd_bus_message_append(m, "(sv)", name, "s", value);
}

static int append_prop_t(sd_bus_message *m, const char *name, uint64_t value) {
        return sd_bus_message_append(m, "(sv)", name, "t", value);
}

static int append_prop_b(sd_bus_message *m, const char *name, bool value) {
        return sd_bus_message_append(m, "(sv)", name, "b", (int) value);
}

static int append_prop_strv(sd_bus_message *m, const char *name, char **l) {
        int r;
        r = sd_bus_message_open_container(m, 'r', "sv");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", name);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'v', "as");
        if (r >= 0)
                r = sd_bus_message_append_strv(m, l);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

/* (sv) with v = a(sasas): several commands, each with the same flags */
static int append_prop_exec_list(sd_bus_message *m, const char *name, char ***argvs, char **flags) {
        int r;
        r = sd_bus_message_open_container(m, 'r', "sv");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", name);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'v', "a(sasas)");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "(sasas)");
        for (char ***a = argvs; r >= 0 && *a; a++) {
                if (!(*a)[0])
                        return -EINVAL;
                r = sd_bus_message_open_container(m, 'r', "sasas");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", (*a)[0]);
                if (r >= 0)
                        r = sd_bus_message_append_strv(m, *a);
                if (r >= 0)
                        r = sd_bus_message_append_strv(m, flags);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
        }
        for (int i = 0; i < 3 && r >= 0; i++)
                r = sd_bus_message_close_container(m);
        return r;
}

/* (sv) with v = a(sasas): one command (path, argv, flags) */
static int append_prop_exec_ex(sd_bus_message *m, const char *name, char **argv, char **flags) {
        char **one[] = { argv, NULL };
        return append_prop_exec_list(m, name, one, flags);
}

static int build_start_message(sd_bus *bus, const unit_spec *spec, sd_bus_message **ret) {
        sd_bus_message *m = NULL;
        const agent_unit_defaults *l = spec->limits;
        char *start_flags[] = { (char *) "no-env-expand", NULL };
        /* privileged: the recorder must be able to write into the root-owned job dir even with User= */
        char *post_flags[] = { (char *) "no-env-expand", (char *) "privileged", NULL };
        char *ignore_flags[] = { (char *) "no-env-expand", (char *) "privileged", (char *) "ignore-failure", NULL };
        char *post_argv[] = { (char *) "/bin/sh", (char *) "-c", (char *) stop_post_script,
                              (char *) "drover-job-finish", (char *) spec->result_path, NULL };
        int r;

        r = sd_bus_message_new_method_call(bus, &m, SD_DESTINATION, SD_PATH, SD_MANAGER, "StartTransientUnit");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "ss", spec->name, "fail");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "(sv)");
        if (r >= 0)
                r = append_prop_s(m, "Description", spec->description ? spec->description : spec->name);
        if (r >= 0 && spec->slice)
                r = append_prop_s(m, "Slice", spec->slice);
        if (r >= 0)
                r = append_prop_s(m, "Type", "exec");
        if (r >= 0 && spec->exec_start_pre && spec->exec_start_pre[0])
                r = append_prop_exec_list(m, "ExecStartPreEx", spec->exec_start_pre, start_flags);
        if (r >= 0)
                r = append_prop_exec_ex(m, "ExecStartEx", spec->argv, start_flags);
        /* ExecStopPost commands run in order: the extra ones (container removal) first, then the
         * result recorder, so the result is only visible once nothing is left behind */
        if (r >= 0 && spec->exec_stop_post && spec->exec_stop_post[0])
                r = append_prop_exec_list(m, "ExecStopPostEx", spec->exec_stop_post, ignore_flags);
        if (r >= 0 && spec->result_path)
                r = append_prop_exec_ex(m, "ExecStopPostEx", post_argv, post_flags);
        if (r >= 0 && spec->env)
                r = append_prop_strv(m, "Environment", spec->env);
        if (r >= 0 && spec->working_directory)
                r = append_prop_s(m, "WorkingDirectory", spec->working_directory);
        if (r >= 0 && spec->stdout_append)
                r = append_prop_s(m, "StandardOutputFileToAppend", spec->stdout_append);
        if (r >= 0 && spec->stderr_append)
                r = append_prop_s(m, "StandardErrorFileToAppend", spec->stderr_append);
        if (r >= 0 && spec->runtime_max_usec > 0)
                r = append_prop_t(m, "RuntimeMaxUSec", spec->runtime_max_usec);
        if (l) {
                if (r >= 0 && l->stop_timeout_usec > 0 && l->stop_timeout_usec != UINT64_MAX)
                        r = append_prop_t(m, "TimeoutStopUSec", l->stop_timeout_usec);
                if (r >= 0 && l->memory_max != UINT64_MAX)
                        r = append_prop_t(m, "MemoryMax", l->memory_max);
                if (r >= 0 && l->cpu_quota_usec != UINT64_MAX)
                        r = append_prop_t(m, "CPUQuotaPerSecUSec", l->cpu_quota_usec);
                if (r >= 0 && l->tasks_max != UINT64_MAX)
                        r = append_prop_t(m, "TasksMax", l->tasks_max);
                if (r >= 0 && !isempty(l->user))
                        r = append_prop_s(m, "User", l->user);
        }
        if (r >= 0)
                r = append_prop_s(m, "CollectMode", "inactive-or-failed");
        if (r >= 0)
                r = append_prop_s(m, "KillMode", "control-group");
        if (r >= 0)
                r = append_prop_b(m, "SendSIGKILL", true);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_append(m, "a(sa(sv))", 0);
        if (r < 0) {
                sd_bus_message_unref(m);
                return r;
        }
        *ret = m;
        return 0;
}

/* ---- state (callers hold the lock) ---- */

static int get_unit_path_locked(unit_bus *b, const char *name, char **ret_path) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *path;
        int r;

        r = sd_bus_call_method(b->bus, SD_DESTINATION, SD_PATH, SD_MANAGER, "GetUnit", &e, &reply, "s", name);
        if (r < 0) {
                r = bus_error_to_errno(&e, r);
                sd_bus_error_free(&e);
                return r;
        }
        r = sd_bus_message_read(reply, "o", &path);
        if (r >= 0) {
                char *p = strdup(path);
                if (!p)
                        r = -ENOMEM;
                else
                        *ret_path = p;
        }
        sd_bus_message_unref(reply);
        return r < 0 ? r : 0;
}

static int get_prop_string(unit_bus *b, const char *path, const char *iface, const char *prop,
                           char *buf, size_t size) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char *s = NULL;
        int r;

        r = sd_bus_get_property_string(b->bus, SD_DESTINATION, path, iface, prop, &e, &s);
        if (r < 0) {
                r = bus_error_to_errno(&e, r);
                sd_bus_error_free(&e);
                return r;
        }
        snprintf(buf, size, "%s", s);
        free(s);
        return 0;
}

static int get_state_locked(unit_bus *b, const char *name, unit_state *ret) {
        _cleanup_free_ char *path = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        unit_state st = {};
        char load[32] = "";
        uint32_t job_id = 0;
        const char *job_path = NULL;
        int r;

        r = get_unit_path_locked(b, name, &path);
        if (r == -ENOENT)
                goto not_loaded;
        if (r < 0)
                return r;

        r = get_prop_string(b, path, SD_UNIT, "LoadState", load, sizeof load);
        if (r >= 0)
                r = get_prop_string(b, path, SD_UNIT, "ActiveState", st.active_state, sizeof st.active_state);
        if (r >= 0)
                r = get_prop_string(b, path, SD_UNIT, "SubState", st.sub_state, sizeof st.sub_state);
        if (r == -ENOENT)
                goto not_loaded;       /* vanished meanwhile */
        if (r < 0)
                return r;

        r = sd_bus_get_property(b->bus, SD_DESTINATION, path, SD_UNIT, "Job", &e, &reply, "(uo)");
        if (r < 0) {
                r = bus_error_to_errno(&e, r);
                sd_bus_error_free(&e);
                if (r == -ENOENT)
                        goto not_loaded;
                return r;
        }
        r = sd_bus_message_read(reply, "(uo)", &job_id, &job_path);
        sd_bus_message_unref(reply);
        if (r < 0)
                return r;
        st.has_job = job_id != 0;

        if (endswith_service(name)) {
                r = get_prop_string(b, path, SD_SERVICE, "Result", st.result, sizeof st.result);
                if (r == -ENOENT)
                        goto not_loaded;
                if (r < 0)
                        return r;
        }
        st.loaded = streq(load, "loaded");
        *ret = st;
        return 0;

not_loaded:
        *ret = (unit_state) {};
        snprintf(ret->active_state, sizeof ret->active_state, "inactive");
        snprintf(ret->sub_state, sizeof ret->sub_state, "dead");
        return 0;
}

/* A call that failed because the connection broke is repeated once on a fresh connection
 * (bus_lock() reconnects). Only for idempotent calls: never for StartTransientUnit. */
static bool bus_retryable(int r) {
        return r == -ENOTCONN || r == -ECONNRESET || r == -EPIPE;
}

/* ---- starting ---- */

typedef struct job_wait {
        const char *job_path;
        bool done;
        char result[32];
} job_wait;

static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        job_wait *w = userdata;
        const char *path = NULL, *unit = NULL, *result = NULL;
        uint32_t id;

        if (sd_bus_message_read(m, "uoss", &id, &path, &unit, &result) < 0)
                return 0;
        if (w->job_path && streq(path, w->job_path)) {
                w->done = true;
                snprintf(w->result, sizeof w->result, "%s", result);
        }
        return 0;
}

/* systemd's own exit statuses for failures between fork and exec (EXIT_CHDIR 200 ... EXIT_...
 * 243): the command never ran. */
static bool exec_stage_status(const char *status) {
        char *end;
        long n = strtol(status, &end, 10);
        return *end == 0 && n >= 200 && n <= 243;
}

/* The start job did not end "done". With Type=exec that also happens when the command ran but
 * exited (with a failure) before systemd noticed the exec succeeded; then the unit did start and
 * its outcome is in the result file. Returns 0 in that case, else -EIO with *ret_msg saying why
 * (from the result file the ExecStopPost= wrote, or the unit if it is still loaded). */
static int check_start_failure(unit_bus *b, const unit_spec *spec, const char *job_result, char **ret_msg) {
        _cleanup_free_ char *path = NULL;
        char res[32] = "";
        uint32_t status = 0;

        if (spec->result_path && streq(job_result, "failed")) {
                /* ExecStopPost runs after the start job ended: give it up to 2 s */
                for (int i = 0; i < 200; i++) {
                        _cleanup_fclose_ FILE *f = fopen(spec->result_path, "re");
                        char a[32], c[32], d[32];
                        if (f && fscanf(f, "%31s %31s %31s", a, c, d) == 3) {
                                if (!(streq(c, "exited") && exec_stage_status(d))) {
                                        log_debug("%s ran and ended before its start job finished (%s %s %s)",
                                                  spec->name, a, c, d);
                                        return 0;
                                }
                                *ret_msg = asprintf_safe("unit failed to start: Result=%s ExecMainStatus=%s", a, d);
                                return -EIO;
                        }
                        usleep(10000);
                }
        }

        if (get_unit_path_locked(b, spec->name, &path) >= 0 && endswith_service(spec->name) &&
            get_prop_string(b, path, SD_SERVICE, "Result", res, sizeof res) >= 0) {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                if (sd_bus_get_property_trivial(b->bus, SD_DESTINATION, path, SD_SERVICE, "ExecMainStatus",
                                                &e, 'i', &status) >= 0) {
                        *ret_msg = asprintf_safe("unit failed to start (job %s): Result=%s ExecMainStatus=%u",
                                                 job_result, res, status);
                        return -EIO;
                }
                sd_bus_error_free(&e);
        }
        *ret_msg = asprintf_safe("unit failed to start: start job result '%s'", job_result);
        return -EIO;
}

int unit_start(unit_bus *b, const unit_spec *spec, char **ret_error) {
        sd_bus_message *m = NULL, *reply = NULL;
        sd_bus_slot *slot = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        job_wait w = {};
        _cleanup_free_ char *job = NULL;
        char *msg = NULL;
        const char *p;
        int r;

        if (!spec || !spec->name || !spec->argv || !spec->argv[0])
                return -EINVAL;
        if (ret_error)
                *ret_error = NULL;

        bus_lock(b);

        r = sd_bus_match_signal(b->bus, &slot, NULL, SD_PATH, SD_MANAGER,
                                "JobRemoved", on_job_removed, &w);
        if (r < 0) {
                msg = asprintf_safe("failed to watch systemd jobs: %s", strerror(-r));
                goto finish;
        }

        r = build_start_message(b->bus, spec, &m);
        if (r < 0) {
                msg = asprintf_safe("failed to build StartTransientUnit call: %s", strerror(-r));
                goto finish;
        }
        r = sd_bus_call(b->bus, m, 0, &e, &reply);
        if (r < 0) {
                r = bus_error_to_errno(&e, r);
                msg = asprintf_safe("%s", e.message ? e.message : strerror(-r));
                goto finish;
        }
        r = sd_bus_message_read(reply, "o", &p);
        if (r < 0 || !(job = strdup(p))) {
                r = r < 0 ? r : -ENOMEM;
                msg = asprintf_safe("bad StartTransientUnit reply");
                goto finish;
        }
        w.job_path = job;

        /* Wait for JobRemoved of our start job (it may already be queued). */
        uint64_t deadline = now_monotonic_usec() + START_WAIT_USEC;
        while (!w.done) {
                r = sd_bus_process(b->bus, NULL);
                if (r < 0) {
                        msg = asprintf_safe("bus failure while waiting for the start job: %s", strerror(-r));
                        goto finish;
                }
                if (r > 0)
                        continue;
                uint64_t now = now_monotonic_usec();
                if (now >= deadline)
                        break;
                r = sd_bus_wait(b->bus, deadline - now);
                if (r < 0) {
                        msg = asprintf_safe("bus failure while waiting for the start job: %s", strerror(-r));
                        goto finish;
                }
        }
        if (!w.done) {
                r = -ETIMEDOUT;
                msg = asprintf_safe("start job of %s did not finish within 10 s", spec->name);
                goto finish;
        }
        r = streq(w.result, "done") ? 0 : check_start_failure(b, spec, w.result, &msg);

finish:
        sd_bus_slot_unref(slot);
        sd_bus_message_unref(m);
        sd_bus_message_unref(reply);
        sd_bus_error_free(&e);
        bus_unlock(b);
        if (r < 0 && r != -EEXIST)
                log_debug("Starting %s failed: %s", spec->name, strna(msg));
        if (ret_error && r < 0)
                *ret_error = msg;
        else
                free(msg);
        return r;
}

/* ---- stopping ---- */

static int unit_stop_once(unit_bus *b, const char *name) {
        _cleanup_free_ char *path = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        bus_lock(b);
        r = get_unit_path_locked(b, name, &path);
        if (r >= 0) {
                r = sd_bus_call_method(b->bus, SD_DESTINATION, SD_PATH, SD_MANAGER, "StopUnit", &e, NULL,
                                       "ss", name, "replace");
                if (r < 0)
                        r = bus_error_to_errno(&e, r);
        }
        bus_unlock(b);
        if (r == -ENOENT)
                r = 0;
        if (r < 0)
                log_error("Failed to stop %s: %s", name, e.message ? e.message : strerror(-r));
        sd_bus_error_free(&e);
        return r < 0 ? r : 0;
}

static int unit_kill_once(unit_bus *b, const char *name, int signo) {
        _cleanup_free_ char *path = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        bus_lock(b);
        r = get_unit_path_locked(b, name, &path);
        if (r == -ENOENT)
                r = -ESRCH;
        else if (r >= 0) {
                r = sd_bus_call_method(b->bus, SD_DESTINATION, SD_PATH, SD_MANAGER, "KillUnit", &e, NULL,
                                       "ssi", name, "all", (int32_t) signo);
                if (r < 0) {
                        r = bus_error_to_errno(&e, r);
                        if (r == -ENOENT)
                                r = -ESRCH;
                }
        }
        bus_unlock(b);
        if (r < 0 && r != -ESRCH)
                log_error("Failed to kill %s: %s", name, e.message ? e.message : strerror(-r));
        sd_bus_error_free(&e);
        return r < 0 ? r : 0;
}

/* ---- inspecting ---- */

static int unit_get_state_once(unit_bus *b, const char *name, unit_state *ret) {
        unit_state st;
        int r;

        bus_lock(b);
        r = get_state_locked(b, name, &st);
        bus_unlock(b);
        if (r < 0)
                return r;
        *ret = st;
        return 0;
}

static int unit_list_once(unit_bus *b, const char *pattern, char ***ret_names) {
        sd_bus_message *m = NULL, *reply = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_strv_free_ char **names = NULL;
        char *patterns[] = { (char *) pattern, NULL };
        const char *name;
        int r;

        bus_lock(b);
        r = sd_bus_message_new_method_call(b->bus, &m, SD_DESTINATION, SD_PATH, SD_MANAGER, "ListUnitsByPatterns");
        if (r >= 0)
                r = sd_bus_message_append_strv(m, NULL);
        if (r >= 0)
                r = sd_bus_message_append_strv(m, patterns);
        if (r >= 0) {
                r = sd_bus_call(b->bus, m, 0, &e, &reply);
                if (r < 0)
                        r = bus_error_to_errno(&e, r);
        }
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(ssssssouso)");
        while (r >= 0) {
                r = sd_bus_message_read(reply, "(ssssssouso)", &name, NULL, NULL, NULL, NULL, NULL, NULL,
                                        NULL, NULL, NULL);
                if (r <= 0)
                        break;
                r = strv_extend(&names, name);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        bus_unlock(b);
        sd_bus_message_unref(m);
        sd_bus_message_unref(reply);
        if (r < 0) {
                log_error("Failed to list units %s: %s", pattern, e.message ? e.message : strerror(-r));
                sd_bus_error_free(&e);
                return r;
        }
        sd_bus_error_free(&e);
        if (!names) {
                names = calloc(1, sizeof(char *));
                if (!names)
                        return -ENOMEM;
        }
        *ret_names = TAKE_PTR(names);
        return 0;
}

static int unit_get_property_u64_once(unit_bus *b, const char *name, const char *interface, const char *property, uint64_t *ret) {
        _cleanup_free_ char *path = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        uint64_t v = 0;
        int r;

        bus_lock(b);
        r = get_unit_path_locked(b, name, &path);
        if (r >= 0) {
                r = sd_bus_get_property_trivial(b->bus, SD_DESTINATION, path, interface, property, &e, 't', &v);
                if (r < 0)
                        r = bus_error_to_errno(&e, r);
        }
        bus_unlock(b);
        sd_bus_error_free(&e);
        if (r < 0)
                return r;
        *ret = v;
        return 0;
}

int unit_stop(unit_bus *b, const char *name) {
        int r = unit_stop_once(b, name);
        if (bus_retryable(r))
                r = unit_stop_once(b, name);
        return r;
}

int unit_kill(unit_bus *b, const char *name, int signo) {
        int r = unit_kill_once(b, name, signo);
        if (bus_retryable(r))
                r = unit_kill_once(b, name, signo);
        return r;
}

int unit_get_state(unit_bus *b, const char *name, unit_state *ret) {
        int r = unit_get_state_once(b, name, ret);
        if (bus_retryable(r))
                r = unit_get_state_once(b, name, ret);
        return r;
}

int unit_list(unit_bus *b, const char *pattern, char ***ret_names) {
        int r = unit_list_once(b, pattern, ret_names);
        if (bus_retryable(r))
                r = unit_list_once(b, pattern, ret_names);
        return r;
}

int unit_get_property_u64(unit_bus *b, const char *name, const char *interface, const char *property, uint64_t *ret) {
        int r = unit_get_property_u64_once(b, name, interface, property, ret);
        if (bus_retryable(r))
                r = unit_get_property_u64_once(b, name, interface, property, ret);
        return r;
}
