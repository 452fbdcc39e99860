/* job-podman.c: the container runtime. Which runtimes the node offers, and how a job whose
 * assignment carries an execution_environment runs as `podman run` as the main process of its
 * transient unit: the registry auth file, the pull step (before exec of podman run), the
 * container command line with the job's private data dir mounted at the same paths and the job
 * environment passed by name, the removal of the container (ExecStopPost) and the reading back
 * of podman's own failures. */
#include "agent-exec.h"

#include <ctype.h>
#include <inttypes.h>
#include <pwd.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "drover/json-util.h"
#include "drover/log.h"
#include "drover/macro.h"
#include "drover/util.h"

#define EE_IMAGE_MAX 255
#define EE_AUTH_FIELD_MAX 1024
#define PULL_ERROR_MAX 4096
#define STDERR_TAIL 8192

int agent_runtimes(const agent_config *cfg, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        if (strv_extend(&l, "systemd") < 0)
                return -ENOMEM;
        if (cfg && cfg->podman.enabled && cfg->podman.path && access(cfg->podman.path, X_OK) == 0)
                if (strv_extend(&l, "podman") < 0)
                        return -ENOMEM;
        *ret = TAKE_PTR(l);
        return 0;
}

const json_t *job_podman_ee(const json_t *assignment) {
        const json_t *ee = json_object_get(assignment, "execution_environment");
        return json_is_object(ee) ? ee : NULL;
}

static bool image_name_ok(const char *s) {
        if (isempty(s) || s[0] == '-' || strlen(s) > EE_IMAGE_MAX)
                return false;
        for (const char *p = s; *p; p++)
                if (!isgraph((unsigned char) *p))
                        return false;
        return true;
}

static bool auth_field_ok(const json_t *v, bool may_be_empty) {
        const char *s = json_string_value(v);
        return s && (may_be_empty || *s) && json_string_length(v) == strlen(s) && strlen(s) <= EE_AUTH_FIELD_MAX;
}

int job_podman_ee_validate(int64_t job_id, const json_t *ee) {
        const json_t *pull = json_object_get(ee, "pull"), *auth = json_object_get(ee, "auth");
        const char *p = json_string_value(pull);

        if (!image_name_ok(json_string_value(json_object_get(ee, "image"))))
                return log_error_errno(-EINVAL, "Job %" PRId64 ": execution environment has no valid image name", job_id);
        if (pull && !json_is_null(pull) &&
            !(p && (streq(p, "") || streq(p, "always") || streq(p, "missing") || streq(p, "never"))))
                return log_error_errno(-EINVAL, "Job %" PRId64 ": execution environment has an invalid pull policy", job_id);
        if (auth && !json_is_null(auth)) {
                const char *reg = json_string_value(json_object_get(auth, "registry"));
                if (!json_is_object(auth) || !auth_field_ok(json_object_get(auth, "registry"), false) ||
                    !auth_field_ok(json_object_get(auth, "username"), true) ||
                    (json_object_get(auth, "password") && !auth_field_ok(json_object_get(auth, "password"), true)) ||
                    strpbrk(reg, " \t\r\n\"\\"))
                        return log_error_errno(-EINVAL, "Job %" PRId64 ": execution environment has invalid registry auth", job_id);
        }
        return 0;
}

const char *job_podman_pull_policy(const char *pull) {
        if (streq_ptr(pull, "always"))
                return "always";
        if (streq_ptr(pull, "never"))
                return "never";
        return "missing";
}

static char *base64_encode(const void *data, size_t n) {
        static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const unsigned char *p = data;
        char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;

        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i += 3) {
                uint32_t v = (uint32_t) p[i] << 16 | (i + 1 < n ? (uint32_t) p[i + 1] << 8 : 0) |
                             (i + 2 < n ? p[i + 2] : 0);
                *o++ = tab[v >> 18 & 63];
                *o++ = tab[v >> 12 & 63];
                *o++ = i + 1 < n ? tab[v >> 6 & 63] : '=';
                *o++ = i + 2 < n ? tab[v & 63] : '=';
        }
        *o = 0;
        return out;
}

int job_podman_write_auth(const job_dir *d, json_t *ee) {
        json_t *auth = json_object_get(ee, "auth");
        _cleanup_free_ char *userpass = NULL, *b64 = NULL, *text = NULL, *reg = NULL;
        int r;

        if (!json_is_object(auth))
                return 0;
        const char *registry = json_string_value(json_object_get(auth, "registry"));
        const char *user = json_string_value(json_object_get(auth, "username"));
        const char *pass = json_string_value(json_object_get(auth, "password"));
        if (isempty(registry) || !user || !pass)
                return log_error_errno(-EINVAL, "Job %" PRId64 ": incomplete registry auth", d->job_id);

        /* assembled by hand so the encoded secret is in buffers we wipe, not in jansson's copies */
        _cleanup_json_ json_t *regj = json_string(registry);
        reg = regj ? json_dumps(regj, JSON_ENCODE_ANY) : NULL;
        userpass = strjoin(user, ":", pass, NULL);
        b64 = userpass ? base64_encode(userpass, strlen(userpass)) : NULL;
        text = reg && b64 ? strjoin("{\"auths\":{", reg, ":{\"auth\":\"", b64, "\"}}}", NULL) : NULL;
        r = text ? write_file_atomic(d->auth_path, text, strlen(text), 0600) : -ENOMEM;
        if (userpass)
                explicit_bzero(userpass, strlen(userpass));
        if (b64)
                explicit_bzero(b64, strlen(b64));
        if (text)
                explicit_bzero(text, strlen(text));
        if (r < 0)
                return log_error_errno(r, "Job %" PRId64 ": failed to write the registry auth file: %m", d->job_id);
        /* the password lives in auth.json only: not in job.json, not in memory */
        explicit_bzero((char *) pass, strlen(pass));
        (void) json_object_del(auth, "password");
        return 0;
}

void job_podman_argvs_free(char ***l) {
        for (char ***i = l; i && *i; i++)
                strv_free(*i);
        free(l);
}

static int argvs_push(char ****l, char **argv) {
        size_t n = 0;
        while (*l && (*l)[n])
                n++;
        char ***m = realloc(*l, (n + 2) * sizeof *m);
        if (!m)
                return -ENOMEM;
        m[n] = argv;
        m[n + 1] = NULL;
        *l = m;
        return 0;
}

static int strv_extend_all(char ***l, char **add) {
        for (char **i = add; i && *i; i++)
                if (strv_extend(l, *i) < 0)
                        return -ENOMEM;
        return 0;
}

/* `-v <from>:<to>:<mode>`; refuses paths podman's syntax cannot carry (':' or ',' in them). */
static int add_mount(char ***argv, const char *from, const char *to, const char *mode) {
        if (strpbrk(from, ":,") || strpbrk(to, ":,"))
                return -EINVAL;
        if (strv_extend(argv, "-v") < 0 || strv_extendf(argv, "%s:%s:%s", from, to, mode) < 0)
                return -ENOMEM;
        return 0;
}

/* The unit's main process (bash: arrays keep every option one argument). Arguments: policy image
 * authfile errfile <words of the podman prefix (path + global options)> <number of pull options>
 * <podman prefix> <pull options> <the podman run argv>. Pulls when the policy says so (recording
 * podman's message in errfile on failure), removes the auth file in every case, then execs the
 * podman run command, which becomes the unit's main process. */
static const char pull_script[] =
        "pol=$1 img=$2 auth=$3 err=$4 ng=$5 np=$6; shift 6\n"
        "pm=(\"${@:1:ng}\"); shift \"$ng\"; po=(\"${@:1:np}\"); shift \"$np\"\n"
        "af=(); [ -n \"$auth\" ] && [ -e \"$auth\" ] && af=(--authfile \"$auth\")\n"
        "rm -f \"$err\"; rc=0\n"
        "if [ \"$pol\" = always ] || ! \"${pm[@]}\" image exists \"$img\" >/dev/null 2>&1; then\n"
        "  if [ \"$pol\" = never ]; then\n"
        "    printf 'missing\\nimage %s is not present on this node and its pull policy is never\\n' \"$img\" > \"$err\"\n"
        "    printf 'drover: image %s is not present and the pull policy is never\\n' \"$img\" >&2\n"
        "    rc=1\n"
        "  else\n"
        "    out=$(\"${pm[@]}\" pull -q \"${af[@]}\" \"${po[@]}\" \"$img\" 2>&1 >/dev/null); rc=$?\n"
        "    if [ \"$rc\" != 0 ]; then\n"
        "      { printf 'pull\\n'; printf '%s\\n' \"$out\" | tail -c 4000; } > \"$err\"\n"
        "      printf 'drover: pulling %s failed (podman exit status %s)\\n' \"$img\" \"$rc\" >&2\n"
        "    fi\n"
        "  fi\n"
        "fi\n"
        "rm -f \"$auth\"\n"
        "[ \"$rc\" = 0 ] || exit \"$rc\"\n"
        "exec \"$@\"\n";

/* How a job environment variable reaches a container job. */
typedef enum env_podman {
        ENV_BY_NAME,            /* `-e NAME`: podman copies it from its environment */
        ENV_BY_VALUE,           /* `-e NAME=value` (HOME, PATH: not secrets); podman gets its own */
        ENV_DROPPED,            /* would configure podman, the runtime or the dynamic loader (as root) */
} env_podman;

/* The environment podman itself runs with, besides the by-name variables. */
static const char *const podman_base_env[] = {
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME=/root",
};

static env_podman env_podman_class(const char *name, size_t n) {
        static const char *const by_value[] = { "HOME", "PATH" };
        static const char *const dropped[] = { "TMPDIR", "REGISTRY_AUTH_FILE", "DOCKER_CONFIG", "DOCKER_HOST",
                                               "STORAGE_DRIVER", "STORAGE_OPTS", "NOTIFY_SOCKET", "GODEBUG",
                                               "GOTRACEBACK", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
                                               "http_proxy", "https_proxy", "no_proxy" };
        static const char *const dropped_prefix[] = { "CONTAINERS_", "CONTAINER_", "_CONTAINERS_", "XDG_",
                                                      "BUILDAH_", "PODMAN_", "LD_", "CNI_", "NETAVARK_" };
        for (size_t i = 0; i < ELEMENTSOF(by_value); i++)
                if (strlen(by_value[i]) == n && strncmp(name, by_value[i], n) == 0)
                        return ENV_BY_VALUE;
        for (size_t i = 0; i < ELEMENTSOF(dropped); i++)
                if (strlen(dropped[i]) == n && strncmp(name, dropped[i], n) == 0)
                        return ENV_DROPPED;
        for (size_t i = 0; i < ELEMENTSOF(dropped_prefix); i++)
                if (n >= strlen(dropped_prefix[i]) && strncmp(name, dropped_prefix[i], strlen(dropped_prefix[i])) == 0)
                        return ENV_DROPPED;
        return ENV_BY_NAME;
}

int job_podman_command(const agent_config *cfg, const job_dir *d, const json_t *ee, job_command *cmd) {
        _cleanup_strv_free_ char **argv = NULL, **pull = NULL, **rm = NULL, **rm_auth = NULL, **prefix = NULL,
                                 **podman_env = NULL;
        _cleanup_free_ char *project_real = NULL, *name = NULL, *callback = NULL;
        char ***post = NULL;
        const char *image = json_string_value(json_object_get(ee, "image"));
        const char *policy = job_podman_pull_policy(json_string_value(json_object_get(ee, "pull")));
        const char *share_dir = cfg->share_dir ? cfg->share_dir : DROVER_SHARE_DIR;
        const char *podman = cfg->podman.path ? cfg->podman.path : "/usr/bin/podman";
        int r = 0;

        if (!cfg->podman.enabled || access(podman, X_OK) < 0)
                return log_error_errno(-EOPNOTSUPP, "Job %" PRId64 ": runs in execution environment %s but this node "
                                       "has no podman runtime (podman.enabled false or %s not executable)",
                                       d->job_id, image, podman);
        if (!image_name_ok(image))
                return log_error_errno(-EINVAL, "Job %" PRId64 ": invalid image name", d->job_id);

        /* The project symlink points into the project cache: mount the cache dir at the link's path. */
        project_real = realpath(d->project, NULL);
        if (!project_real)
                return log_error_errno(negative_errno(), "Job %" PRId64 ": cannot resolve %s: %m", d->job_id, d->project);
        name = asprintf_safe("drover-job-%" PRId64, d->job_id);
        callback = strjoin(share_dir, "/callback", NULL);
        if (!name || !callback)
                return log_oom();

        if (strv_extend(&prefix, podman) < 0 || strv_extend_all(&prefix, cfg->podman.global_options) < 0)
                return log_oom();

        /* podman [global] run --rm --replace --name N --label ... [run_options] --pull=never -v ... -w P -e ... IMAGE ansible-playbook ... */
        r = strv_extend_all(&argv, prefix);
        if (r >= 0) r = strv_extend(&argv, "run");
        if (r >= 0) r = strv_extend(&argv, "--rm");
        if (r >= 0) r = strv_extend(&argv, "--replace");
        if (r >= 0) r = strv_extend(&argv, "--name");
        if (r >= 0) r = strv_extend(&argv, name);
        if (r >= 0) r = strv_extend(&argv, "--label");
        if (r >= 0) r = strv_extendf(&argv, "drover.job=%" PRId64, d->job_id);
        if (r >= 0) r = strv_extend(&argv, "--label");
        if (r >= 0) r = strv_extendf(&argv, "drover.attempt=%" PRId64, d->attempt);
        /* the unit's User= would make podman rootless: the job user runs the container's processes */
        if (r >= 0 && !isempty(cfg->unit.user) && !streq(cfg->unit.user, "root")) {
                struct passwd pw, *res = NULL;
                char buf[4096];
                int k = getpwnam_r(cfg->unit.user, &pw, buf, sizeof buf, &res);
                if (k != 0 || !res)
                        return log_error_errno(k > 0 ? -k : -ESRCH, "Job %" PRId64 ": unknown job user '%s'",
                                               d->job_id, cfg->unit.user);
                r = strv_extendf(&argv, "--user=%u:%u", (unsigned) pw.pw_uid, (unsigned) pw.pw_gid);
        }
        if (r >= 0) r = strv_extend_all(&argv, cfg->podman.run_options);
        /* the pull step made sure the image is there (with the auth file, since removed) */
        if (r >= 0) r = strv_extend(&argv, "--pull=never");
        if (r < 0)
                return log_oom();

        struct { const char *from, *to, *mode; } mounts[] = {
                { project_real, d->project, "ro" },
                { NULL, "inventory", "ro" },
                { NULL, "env", "ro" },
                { d->artifacts, d->artifacts, "rw" },
                { NULL, "home", "rw" },
                { NULL, "tmp", "rw" },
                { NULL, "cp", "rw" },
                { callback, callback, "ro" },
        };
        for (size_t i = 0; i < ELEMENTSOF(mounts); i++) {
                _cleanup_free_ char *p = NULL;
                const char *from = mounts[i].from, *to = mounts[i].to;
                if (!from) {
                        p = strjoin(d->root, "/", mounts[i].to, NULL);
                        if (!p)
                                return log_oom();
                        from = to = p;
                }
                r = add_mount(&argv, from, to, mounts[i].mode);
                if (r == -EINVAL)
                        return log_error_errno(r, "Job %" PRId64 ": path %s cannot be mounted into a container "
                                               "(':' or ',' in it)", d->job_id, from);
                if (r < 0)
                        return log_oom();
        }
        r = strv_extend(&argv, "-w");
        if (r >= 0) r = strv_extend(&argv, cmd->cwd);
        /* environment by name: podman takes each value from its own environment (the unit's
         * Environment=), so values (secrets) never appear on a command line. podman runs as root
         * with that environment: what would steer podman itself is not passed through (see
         * env_podman_class()); HOME and PATH go to the container by value, podman gets safe ones. */
        for (char **e = cmd->env; r >= 0 && e && *e; e++) {
                const char *eq = strchr(*e, '=');
                if (!eq || eq == *e)
                        continue;
                int k = (int) (eq - *e);
                switch (env_podman_class(*e, (size_t) k)) {
                case ENV_BY_NAME:
                        r = strv_extend(&argv, "-e");
                        if (r >= 0) r = strv_extendf(&argv, "%.*s", k, *e);
                        if (r >= 0) r = strv_extend(&podman_env, *e);
                        break;
                case ENV_BY_VALUE:
                        r = strv_extend(&argv, "-e");
                        if (r >= 0) r = strv_extend(&argv, *e);
                        break;
                case ENV_DROPPED:
                        log_warning("Job %" PRId64 ": environment variable %.*s is not passed to a container job "
                                    "(it would configure podman itself)", d->job_id, k, *e);
                        break;
                }
        }
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(podman_base_env); i++)
                r = strv_extend(&podman_env, podman_base_env[i]);
        if (r >= 0) r = strv_extend(&argv, image);
        if (r >= 0) r = strv_extend(&argv, "ansible-playbook");
        for (char **a = cmd->argv + 1; r >= 0 && *a; a++)
                r = strv_extend(&argv, *a);
        if (r < 0)
                return log_oom();

        /* the unit's main process: the pull step, then exec podman run */
        r = strv_extend(&pull, "/bin/bash");
        if (r >= 0) r = strv_extend(&pull, "-c");
        if (r >= 0) r = strv_extend(&pull, pull_script);
        if (r >= 0) r = strv_extend(&pull, "drover-pull");
        if (r >= 0) r = strv_extend(&pull, policy);
        if (r >= 0) r = strv_extend(&pull, image);
        if (r >= 0) r = strv_extend(&pull, d->auth_path);
        if (r >= 0) r = strv_extend(&pull, d->pull_error_path);
        if (r >= 0) r = strv_extendf(&pull, "%zu", strv_length(prefix));
        /* a registry credential with verify_ssl false (AWX's field) pulls without TLS verification */
        const json_t *auth = json_object_get(ee, "auth");
        bool no_verify = json_is_false(json_object_get(auth, "verify_ssl"));
        if (r >= 0) r = strv_extendf(&pull, "%zu", strv_length(cfg->podman.pull_options) + no_verify);
        if (r >= 0) r = strv_extend_all(&pull, prefix);
        if (r >= 0) r = strv_extend_all(&pull, cfg->podman.pull_options);
        if (r >= 0 && no_verify) r = strv_extend(&pull, "--tls-verify=false");
        if (r >= 0) r = strv_extend_all(&pull, argv);
        /* ExecStopPost: no container and no auth file is left, whatever ended the unit */
        if (r >= 0) r = strv_extend_all(&rm, prefix);
        if (r >= 0) r = strv_extend(&rm, "rm");
        if (r >= 0) r = strv_extend(&rm, "-f");
        if (r >= 0) r = strv_extend(&rm, "-i");
        if (r >= 0) r = strv_extend(&rm, name);
        if (r >= 0) r = strv_extend(&rm_auth, "/bin/rm");
        if (r >= 0) r = strv_extend(&rm_auth, "-f");
        if (r >= 0) r = strv_extend(&rm_auth, d->auth_path);
        if (r >= 0) r = argvs_push(&post, TAKE_PTR(rm));
        if (r >= 0) r = argvs_push(&post, TAKE_PTR(rm_auth));
        if (r < 0) {
                job_podman_argvs_free(post);
                return log_oom();
        }

        strv_free(cmd->argv);
        cmd->argv = TAKE_PTR(argv);
        strv_free(cmd->env);
        cmd->env = TAKE_PTR(podman_env);
        strv_free(cmd->unit_argv);
        cmd->unit_argv = TAKE_PTR(pull);
        job_podman_argvs_free(cmd->exec_stop_post);
        cmd->exec_stop_post = post;
        free(cmd->container_name);
        cmd->container_name = TAKE_PTR(name);
        cmd->container_limits = cfg->unit;
        cmd->container_limits.user = NULL;
        return 0;
}

/* Copy text into buf as one line: control characters become spaces, runs of blanks collapse. */
static void copy_one_line(char *buf, size_t size, const char *s, size_t n) {
        size_t o = 0;
        bool space = false;
        for (size_t i = 0; i < n && s[i] && o + 1 < size; i++) {
                unsigned char c = (unsigned char) s[i];
                if (c < 0x20 || c == 0x7f || c == ' ') {
                        space = o > 0;
                        continue;
                }
                if (space && o + 2 < size)
                        buf[o++] = ' ';
                space = false;
                buf[o++] = (char) c;
        }
        buf[o] = 0;
}

/* The last line of stderr that starts with "Error:" (podman's own failure message). */
static void stderr_podman_error(const char *path, char *buf, size_t size) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        char tail[STDERR_TAIL + 1];
        struct stat st;
        ssize_t n;

        buf[0] = 0;
        if (fd < 0 || fstat(fd, &st) < 0)
                return;
        off_t off = st.st_size > STDERR_TAIL ? st.st_size - STDERR_TAIL : 0;
        n = pread(fd, tail, STDERR_TAIL, off);
        if (n <= 0)
                return;
        tail[n] = 0;
        const char *best = NULL;
        for (char *line = tail; line && *line;) {
                char *nl = strchr(line, '\n');
                if (startswith(line, "Error:") || startswith(line, "Error "))
                        best = line;
                line = nl ? nl + 1 : NULL;
        }
        if (best) {
                best += strlen("Error");
                best += strspn(best, ": ");
                copy_one_line(buf, size, best, strcspn(best, "\n"));
        }
}

void job_podman_read_result(job_dir *d, job_unit_result *res) {
        const json_t *ee = job_podman_ee(d->assignment);
        _cleanup_free_ char *data = NULL;
        size_t size = 0;

        if (!ee)
                return;
        res->container = true;
        snprintf(res->image, sizeof res->image, "%s", strempty(json_string_value(json_object_get(ee, "image"))));
        if (read_full_file(d->pull_error_path, PULL_ERROR_MAX, &data, &size) >= 0) {
                /* "missing\n<text>" or "pull\n<podman's output>" */
                const char *nl = memchr(data, '\n', size);
                res->pull_failed = true;
                if (nl) {
                        const char *msg = nl + 1;
                        /* keep podman's "Error: ..." line when there is one, else everything */
                        const char *e = strstr(msg, "Error: ");
                        copy_one_line(res->detail, sizeof res->detail, e ? e + 7 : msg, size - (size_t) ((e ? e + 7 : msg) - data));
                }
                return;
        }
        if (streq(res->service_result, "exit-code") &&
            (streq(res->exit_status, "125") || streq(res->exit_status, "126") || streq(res->exit_status, "127")))
                stderr_podman_error(d->stderr_path, res->detail, sizeof res->detail);
}
