/* job-dir.c: the ansible-runner style private data dir of one job (<state_dir>/jobs/<id>/, see
 * docs/protocol.md), the conversion of the assignment's exported inventory into the YAML
 * inventory plugin's structure, the acknowledged-offset file, and the project cache
 * (<state_dir>/projects/<hash>/) filled by a small, strict ustar extractor. */
#include "agent-exec.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <inttypes.h>
#include <pthread.h>
#include <sys/stat.h>

#include "drover/crypto.h"
#include "drover/json-util.h"
#include "drover/log.h"
#include "drover/util.h"


#define JOB_JSON_MAX (64u * 1024u * 1024u)
#define INVENTORY_MAX_DEPTH 64

#define TAR_BLOCK 512
#define TAR_MAX_ENTRIES 200000
#define TAR_MAX_TOTAL ((uint64_t) 2 * 1024 * 1024 * 1024)
#define TAR_MAX_NAME 4096
#define TAR_MAX_DEPTH 64

/* ---------------- project cache ---------------- */

static bool hash_valid(const char *hash) {
        if (!hash || strlen(hash) != 64)
                return false;
        for (const char *p = hash; *p; p++)
                if (!isxdigit((unsigned char) *p) || isupper((unsigned char) *p))
                        return false;
        return true;
}

bool project_cache_has(const char *state_dir, const char *hash, char **ret_path) {
        _cleanup_free_ char *p = NULL;
        struct stat st;

        if (!hash_valid(hash))
                return false;
        p = strjoin(state_dir, "/projects/", hash, NULL);
        if (!p || stat(p, &st) < 0 || !S_ISDIR(st.st_mode))
                return false;
        if (ret_path)
                *ret_path = TAKE_PTR(p);
        return true;
}

static uint64_t tar_octal(const char *f, size_t n, bool *ok) {
        uint64_t v = 0;
        size_t i = 0;

        if ((unsigned char) f[0] & 0x80) {      /* base-256: never produced for sane sizes */
                *ok = false;
                return 0;
        }
        while (i < n && f[i] == ' ')
                i++;
        for (; i < n && f[i] >= '0' && f[i] <= '7'; i++) {
                if (v > (UINT64_MAX >> 3)) {
                        *ok = false;
                        return 0;
                }
                v = v * 8 + (uint64_t) (f[i] - '0');
        }
        for (; i < n; i++)
                if (f[i] != ' ' && f[i] != 0)
                        *ok = false;
        return v;
}

static bool tar_checksum_ok(const unsigned char *h) {
        bool ok = true;
        uint64_t want = tar_octal((const char *) h + 148, 8, &ok), sum = 0;

        for (size_t i = 0; i < TAR_BLOCK; i++)
                sum += (i >= 148 && i < 156) ? ' ' : h[i];
        return ok && sum == want;
}

/* Normalise an entry name into components; rejects absolute names, "..", empty names. "./" and
 * repeated or trailing slashes are dropped. Returns the number of components (0 for "./") or -EPERM. */
static int tar_split_name(char *name, char *comp[static TAR_MAX_DEPTH]) {
        int n = 0;

        if (name[0] == '/')
                return -EPERM;
        for (char *save = NULL, *t = strtok_r(name, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
                if (streq(t, "."))
                        continue;
                if (streq(t, ".."))
                        return -EPERM;
                if (n >= TAR_MAX_DEPTH)
                        return -EPERM;
                comp[n++] = t;
        }
        return n;       /* 0: the name was only "." components (the archive root) */
}

/* Open (creating as needed) the directory for comp[0..n-1] below root_fd, never following links. */
static int tar_open_dir(int root_fd, char **comp, int n) {
        int fd = fcntl(root_fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return negative_errno();
        for (int i = 0; i < n; i++) {
                if (mkdirat(fd, comp[i], 0755) < 0 && errno != EEXIST) {
                        int r = negative_errno();
                        close(fd);
                        return r;
                }
                int nfd = openat(fd, comp[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                int r = nfd < 0 ? negative_errno() : 0;
                close(fd);
                if (r < 0)
                        return r;
                fd = nfd;
        }
        return fd;
}

/* Pax extended header: take "path"; other keys are ignored. */
static int pax_path(const char *data, size_t size, char **ret) {
        size_t off = 0;
        while (off < size) {
                char *end;
                unsigned long len = strtoul(data + off, &end, 10);
                if (end == data + off || *end != ' ' || len == 0 || len > size - off)
                        return -EBADMSG;
                const char *kv = end + 1, *stop = data + off + len;
                if (stop[-1] != '\n')
                        return -EBADMSG;
                if ((size_t) (stop - kv) > 5 && strncmp(kv, "path=", 5) == 0) {
                        free(*ret);
                        *ret = strndup(kv + 5, (size_t) (stop - kv - 6));
                        if (!*ret)
                                return -ENOMEM;
                }
                off += len;
        }
        return 0;
}

/* Extract a ustar archive below the directory dir_fd. Regular files and directories only. */
int tar_extract(int dir_fd, const void *tar, size_t size) {
        const unsigned char *p = tar;
        size_t off = 0, entries = 0;
        uint64_t total = 0;
        _cleanup_free_ char *long_name = NULL;
        int r;

        while (off + TAR_BLOCK <= size) {
                const unsigned char *h = p + off;
                bool ok = true, zero = true;

                for (size_t i = 0; i < TAR_BLOCK && zero; i++)
                        zero = h[i] == 0;
                if (zero)
                        return 0;       /* end of archive */
                if (++entries > TAR_MAX_ENTRIES)
                        return log_error_errno(-E2BIG, "Project archive has too many entries");
                if (!tar_checksum_ok(h))
                        return log_error_errno(-EBADMSG, "Project archive: bad header checksum at offset %zu", off);
                if (memcmp(h + 257, "ustar", 5) != 0)
                        return log_error_errno(-EBADMSG, "Project archive is not ustar");

                uint64_t fsize = tar_octal((const char *) h + 124, 12, &ok);
                uint64_t mode = tar_octal((const char *) h + 100, 8, &ok);
                char type = (char) h[156];
                if (!ok)
                        return log_error_errno(-EBADMSG, "Project archive: bad numeric field");
                off += TAR_BLOCK;
                uint64_t padded = (fsize + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
                if (fsize > size - off || padded > size - off)
                        return log_error_errno(-EBADMSG, "Project archive truncated");
                const char *data = (const char *) p + off;
                off += padded;

                if (type == 'g')
                        continue;
                if (type == 'x' || type == 'L') {
                        if (fsize > TAR_MAX_NAME * 4)
                                return log_error_errno(-EBADMSG, "Project archive: oversized extended header");
                        if (type == 'x')
                                r = pax_path(data, fsize, &long_name);
                        else {
                                free(long_name);
                                long_name = strndup(data, fsize);
                                r = long_name ? 0 : -ENOMEM;
                        }
                        if (r < 0)
                                return log_error_errno(r, "Project archive: bad extended header");
                        continue;
                }

                char namebuf[TAR_MAX_NAME + 1];
                if (long_name) {
                        if (strlen(long_name) > TAR_MAX_NAME)
                                return log_error_errno(-ENAMETOOLONG, "Project archive: name too long");
                        snprintf(namebuf, sizeof namebuf, "%s", long_name);
                        free(long_name);
                        long_name = NULL;
                } else {
                        char pre[156], nm[101];
                        memcpy(pre, h + 345, 155), pre[155] = 0;
                        memcpy(nm, h, 100), nm[100] = 0;
                        snprintf(namebuf, sizeof namebuf, "%s%s%s", pre, *pre ? "/" : "", nm);
                }

                if (type != '0' && type != '\0' && type != '5')
                        return log_error_errno(-EPERM, "Project archive: entry '%s' is not a regular file or "
                                               "directory (type '%c'); refused", namebuf, isprint(type) ? type : '?');
                char *comp[TAR_MAX_DEPTH];
                int n = tar_split_name(namebuf, comp);
                if (n == 0 && type == '5')
                        continue;       /* "./" */
                if (n <= 0)
                        return log_error_errno(-EPERM, "Project archive: unsafe entry name refused");
                total += fsize;
                if (total > TAR_MAX_TOTAL)
                        return log_error_errno(-EFBIG, "Project archive too large when extracted");

                if (type == '5') {
                        int fd = tar_open_dir(dir_fd, comp, n);
                        if (fd < 0)
                                return log_error_errno(fd, "Project archive: cannot create directory: %m");
                        close(fd);
                        continue;
                }

                _cleanup_close_ int pfd = tar_open_dir(dir_fd, comp, n - 1);
                if (pfd < 0)
                        return log_error_errno(pfd, "Project archive: cannot create directory: %m");
                _cleanup_close_ int fd = openat(pfd, comp[n - 1], O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                                                (mode & 0111) ? 0755 : 0644);
                if (fd < 0)
                        return log_error_errno(negative_errno(), "Project archive: cannot create '%s': %m", comp[n - 1]);
                r = loop_write(fd, data, fsize);
                if (r < 0)
                        return log_error_errno(r, "Project archive: write failed: %m");
        }
        return 0;       /* archive without end marker: accept what was complete */
}

int project_cache_store(const char *state_dir, const char *hash, const void *tar, size_t size, char **ret_path) {
        _cleanup_free_ char *dir = NULL, *final = NULL, *tmp = NULL;
        char got[65], rnd[17];
        uint8_t b[8];
        int r;

        if (!hash_valid(hash))
                return log_error_errno(-EINVAL, "Invalid project hash");
        crypto_sha256_hex(tar, size, got);
        if (!streq(got, hash))
                return log_error_errno(-EBADMSG, "Project archive hash mismatch (expected %s, got %s)", hash, got);

        dir = strjoin(state_dir, "/projects", NULL);
        final = strjoin(state_dir, "/projects/", hash, NULL);
        if (!dir || !final)
                return log_oom();
        if (project_cache_has(state_dir, hash, NULL)) {
                *ret_path = TAKE_PTR(final);
                return 0;
        }
        r = mkdir_p(dir, 0755);
        if (r < 0)
                return log_error_errno(r, "Failed to create %s: %m", dir);
        r = random_bytes(b, sizeof b);
        if (r < 0)
                return log_error_errno(r, "Failed to get random bytes: %m");
        hex_encode(b, sizeof b, rnd);
        tmp = strjoin(dir, "/.tmp-", hash, "-", rnd, NULL);
        if (!tmp)
                return log_oom();
        if (mkdir(tmp, 0755) < 0)
                return log_error_errno(negative_errno(), "Failed to create %s: %m", tmp);

        _cleanup_close_ int fd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        r = fd < 0 ? negative_errno() : tar_extract(fd, tar, size);
        if (r >= 0 && rename(tmp, final) < 0) {
                r = negative_errno();
                if ((r == -EEXIST || r == -ENOTEMPTY) && project_cache_has(state_dir, hash, NULL))
                        r = 0;          /* somebody else stored it meanwhile */
                else
                        log_error_errno(r, "Failed to rename %s: %m", tmp);
        }
        (void) rm_rf(tmp);
        if (r < 0)
                return r;
        *ret_path = TAKE_PTR(final);
        return 0;
}

/* ---------------- inventory conversion ---------------- */

typedef struct inv_ctx {
        const json_t *export;
        const json_t *hostvars;
        json_t *hosts_done;     /* set: host name -> true once its vars were emitted */
        json_t *groups_done;    /* set: group name -> true once defined */
} inv_ctx;

static json_t *inv_host_entry(inv_ctx *c, const char *host) {
        if (json_object_get(c->hosts_done, host))
                return json_object();
        json_object_set_new(c->hosts_done, host, json_true());
        json_t *v = json_object_get(c->hostvars, host);
        return json_is_object(v) ? json_deep_copy(v) : json_object();
}

/* {"hosts": {...}, "vars": {...}, "children": {...}} for group `name`. A group already defined
 * elsewhere or on the current path (a cycle) gives {}. */
static json_t *inv_group(inv_ctx *c, const char *name, json_t *path, unsigned depth) {
        const json_t *g = json_object_get(c->export, name), *v;
        json_t *out, *hosts, *children;
        size_t i;

        out = json_object();
        if (!out)
                return NULL;
        if (depth > INVENTORY_MAX_DEPTH || json_object_get(path, name) || json_object_get(c->groups_done, name))
                return out;
        json_object_set_new(c->groups_done, name, json_true());
        if (!json_is_object(g))
                return out;
        json_object_set_new(path, name, json_true());

        hosts = json_object();
        json_array_foreach(json_object_get(g, "hosts"), i, v)
                if (json_is_string(v))
                        json_object_set_new(hosts, json_string_value(v), inv_host_entry(c, json_string_value(v)));
        if (json_object_size(hosts) > 0)
                json_object_set_new(out, "hosts", hosts);
        else
                json_decref(hosts);

        v = json_object_get(g, "vars");
        if (json_is_object(v) && json_object_size(v) > 0)
                json_object_set_new(out, "vars", json_deep_copy(v));

        children = json_object();
        json_array_foreach(json_object_get(g, "children"), i, v)
                if (json_is_string(v) && !streq(json_string_value(v), "all")) {
                        json_t *child = inv_group(c, json_string_value(v), path, depth + 1);
                        if (child)
                                json_object_set_new(children, json_string_value(v), child);
                }
        if (json_object_size(children) > 0)
                json_object_set_new(out, "children", children);
        else
                json_decref(children);

        json_object_del(path, name);
        return out;
}

/* ansible-inventory --list --export -> the YAML inventory plugin's structure (as JSON). */
int job_inventory_convert(const json_t *export, json_t **ret) {
        _cleanup_json_ json_t *path = json_object(), *hosts_done = json_object(), *groups_done = json_object();
        json_t *all, *children, *hosts, *v;
        const char *k;

        if (!path || !hosts_done || !groups_done)
                return -ENOMEM;
        if (export && !json_is_object(export))
                return -EINVAL;
        inv_ctx c = {
                .export = export,
                .hostvars = json_object_get(json_object_get(export, "_meta"), "hostvars"),
                .hosts_done = hosts_done,
                .groups_done = groups_done,
        };

        all = inv_group(&c, "all", path, 0);
        if (!all)
                return -ENOMEM;
        /* groups not reachable from "all" become its children */
        children = json_object_get(all, "children");
        json_object_foreach((json_t *) export, k, v) {
                if (streq(k, "_meta") || streq(k, "all") || json_object_get(groups_done, k) || !json_is_object(v))
                        continue;
                if (!children) {
                        children = json_object();
                        json_object_set_new(all, "children", children);
                }
                json_object_set_new(children, k, inv_group(&c, k, path, 1));
        }
        /* hosts that only have hostvars */
        hosts = json_object_get(all, "hosts");
        json_object_foreach((json_t *) c.hostvars, k, v) {
                if (json_object_get(hosts_done, k))
                        continue;
                if (!hosts) {
                        hosts = json_object();
                        json_object_set_new(all, "hosts", hosts);
                }
                json_object_set_new(hosts, k, inv_host_entry(&c, k));
        }
        *ret = json_pack("{s:o}", "all", all);
        return *ret ? 0 : -ENOMEM;
}

/* ---------------- the job dir ---------------- */

void job_dir_free(job_dir *d) {
        if (!d)
                return;
        free(d->root);
        free(d->artifacts);
        free(d->events_path);
        free(d->stdout_path);
        free(d->stderr_path);
        free(d->result_path);
        free(d->project);
        free(d->inventory);
        free(d->extravars);
        free(d->auth_path);
        free(d->pull_error_path);
        json_decref(d->assignment);
        free(d);
}

static int job_dir_new(const agent_config *cfg, int64_t job_id, job_dir **ret) {
        char id[32];
        job_dir *d;

        if (job_id <= 0 || isempty(cfg->state_dir))
                return -EINVAL;
        d = calloc(1, sizeof *d);
        if (!d)
                return -ENOMEM;
        snprintf(id, sizeof id, "%" PRId64, job_id);
        d->job_id = job_id;
        d->root = strjoin(cfg->state_dir, "/jobs/", id, NULL);
        if (d->root) {
                d->artifacts = strjoin(d->root, "/artifacts/", id, NULL);
                d->project = strjoin(d->root, "/project", NULL);
                d->inventory = strjoin(d->root, "/inventory/hosts.json", NULL);
                d->extravars = strjoin(d->root, "/env/extravars", NULL);
                d->auth_path = strjoin(d->root, "/auth.json", NULL);
                d->pull_error_path = strjoin(d->root, "/pull-error", NULL);
        }
        if (d->artifacts) {
                d->events_path = strjoin(d->artifacts, "/job_events.jsonl", NULL);
                d->stdout_path = strjoin(d->artifacts, "/stdout", NULL);
                d->stderr_path = strjoin(d->artifacts, "/stderr", NULL);
                d->result_path = strjoin(d->artifacts, "/unit-result", NULL);
        }
        if (!d->root || !d->artifacts || !d->project || !d->inventory || !d->extravars || !d->events_path ||
            !d->stdout_path || !d->stderr_path || !d->result_path || !d->auth_path || !d->pull_error_path) {
                job_dir_free(d);
                return -ENOMEM;
        }
        *ret = d;
        return 0;
}

static int write_json_file(const char *path, const json_t *j) {
        _cleanup_free_ char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!s)
                return -ENOMEM;
        return write_file_atomic_nosync(path, s, strlen(s), 0600);
}

static int write_under(const job_dir *d, const char *rel, const void *data, size_t size) {
        _cleanup_free_ char *p = strjoin(d->root, "/", rel, NULL);
        if (!p)
                return -ENOMEM;
        return write_file_atomic_nosync(p, data, size, 0600);
}

static int mkdir_under(const char *base, const char *rel) {
        _cleanup_free_ char *p = strjoin(base, "/", rel, NULL);
        if (!p)
                return -ENOMEM;
        return mkdir_p(p, 0700);
}

/* With User= the job runs unprivileged: hand it the job dir (the agent, as root, can still read
 * and write everything; the ExecStopPost= recorder runs privileged). */
static uid_t chown_uid;
static gid_t chown_gid;
static pthread_mutex_t chown_lock = PTHREAD_MUTEX_INITIALIZER;

static int chown_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return lchown(path, chown_uid, chown_gid) < 0 ? -1 : 0;
}

static int job_dir_give_to_user(const agent_config *cfg, const char *root, const char *jobs) {
        struct passwd pw, *res = NULL;
        char buf[4096];
        int r;

        r = getpwnam_r(cfg->unit.user, &pw, buf, sizeof buf, &res);
        if (r != 0 || !res)
                return log_error_errno(r > 0 ? -r : -ESRCH, "Unknown job user '%s'", cfg->unit.user);
        /* the user must be able to traverse <state_dir> and <state_dir>/jobs (but not list them) */
        struct stat st;
        if (stat(cfg->state_dir, &st) < 0 || chmod(cfg->state_dir, (st.st_mode & 07777) | 0111) < 0 ||
            chmod(jobs, 0711) < 0)
                return log_error_errno(negative_errno(), "Failed to make %s traversable: %m", jobs);
        pthread_mutex_lock(&chown_lock);
        chown_uid = pw.pw_uid;
        chown_gid = pw.pw_gid;
        r = nftw(root, chown_one, 16, FTW_PHYS | FTW_MOUNT) < 0 ? negative_errno() : 0;
        pthread_mutex_unlock(&chown_lock);
        if (r < 0)
                return log_error_errno(r, "Failed to hand %s to user %s: %m", root, cfg->unit.user);
        return 0;
}

int job_dir_create(const agent_config *cfg, json_t *assignment, const char *project_path, job_dir **ret) {
        job_dir *d = NULL;
        _cleanup_json_ json_t *inv = NULL, *settings = NULL;
        _cleanup_free_ char *jobs = NULL;
        const json_t *ev, *env;
        int64_t id;
        int r;

        if (!json_is_object(assignment))
                return log_error_errno(-EINVAL, "Assignment is not an object");
        id = json_integer_value(json_object_get(assignment, "job"));
        if (id <= 0)
                return log_error_errno(-EINVAL, "Assignment has no valid job id");
        ev = json_object_get(assignment, "extra_vars");
        env = json_object_get(assignment, "env");
        if ((ev && !json_is_object(ev) && !json_is_null(ev)) || (env && !json_is_object(env) && !json_is_null(env)))
                return log_error_errno(-EINVAL, "Job %" PRId64 ": extra_vars/env must be objects", id);
        json_t *ee = (json_t *) job_podman_ee(assignment);
        if (ee) {
                r = job_podman_ee_validate(id, ee);
                if (r < 0)
                        return r;
        }

        r = job_dir_new(cfg, id, &d);
        if (r < 0)
                return log_error_errno(r, "Job %" PRId64 ": cannot set up job dir paths: %m", id);
        d->attempt = json_integer_value(json_object_get(assignment, "attempt"));
        d->assignment = json_incref(assignment);

        jobs = strjoin(cfg->state_dir, "/jobs", NULL);
        if (!jobs) {
                r = -ENOMEM;
                goto fail;
        }
        r = mkdir_p(jobs, 0700);
        if (r < 0)
                goto fail;
        r = rm_rf(d->root);
        if (r < 0)
                goto fail;
        if (mkdir(d->root, 0700) < 0) {
                r = negative_errno();
                goto fail;
        }
        const char *dirs[] = { "env", "inventory", "home", "tmp", "cp" };
        for (size_t i = 0; i < ELEMENTSOF(dirs) && r >= 0; i++)
                r = mkdir_under(d->root, dirs[i]);
        if (r >= 0)
                r = mkdir_p(d->artifacts, 0700);
        if (r >= 0)
                r = mkdir_under(d->artifacts, "fact_cache");
        if (r < 0)
                goto fail;

        r = job_inventory_convert(json_object_get(assignment, "inventory"), &inv);
        if (r >= 0)
                r = write_json_file(d->inventory, inv);
        if (r >= 0) {
                _cleanup_json_ json_t *e = json_is_object(ev) ? json_incref((json_t *) ev) : json_object();
                r = e ? write_json_file(d->extravars, e) : -ENOMEM;
        }
        if (r >= 0) {
                _cleanup_json_ json_t *e = json_is_object(env) ? json_incref((json_t *) env) : json_object();
                _cleanup_free_ char *p = strjoin(d->root, "/env/envvars", NULL);
                r = e && p ? write_json_file(p, e) : -ENOMEM;
        }
        if (r >= 0) {
                int64_t t = json_integer_value(json_object_get(assignment, "timeout"));
                _cleanup_free_ char *p = strjoin(d->root, "/env/settings", NULL);
                settings = json_pack("{s:I}", "job_timeout", (json_int_t) MAX(t, 0));
                r = settings && p ? write_json_file(p, settings) : -ENOMEM;
        }
        /* the registry password goes into auth.json only (and leaves the assignment) */
        if (r >= 0 && ee)
                r = job_podman_write_auth(d, ee);
        if (r >= 0) {
                _cleanup_free_ char *p = strjoin(d->root, "/job.json", NULL);
                r = p ? write_json_file(p, assignment) : -ENOMEM;
        }
        if (r >= 0)
                r = write_file_atomic_nosync(d->events_path, "", 0, 0600);
        if (r < 0)
                goto fail;

        if (project_path) {
                if (symlink(project_path, d->project) < 0)
                        r = negative_errno();
        } else if (mkdir(d->project, 0700) < 0)
                r = negative_errno();
        if (r < 0)
                goto fail;
        if (!isempty(cfg->unit.user) && !streq(cfg->unit.user, "root")) {
                r = job_dir_give_to_user(cfg, d->root, jobs);
                if (r < 0)
                        goto fail;
        }

        *ret = d;
        return 0;

fail:
        log_error_errno(r, "Failed to create job dir %s: %m", d->root);
        (void) rm_rf(d->root);
        job_dir_free(d);
        return r;
}

int job_dir_open(const agent_config *cfg, int64_t job_id, job_dir **ret) {
        job_dir *d = NULL;
        _cleanup_free_ char *p = NULL, *data = NULL;
        json_error_t err;
        size_t size;
        int r;

        r = job_dir_new(cfg, job_id, &d);
        if (r < 0)
                return r;
        p = strjoin(d->root, "/job.json", NULL);
        if (!p) {
                job_dir_free(d);
                return -ENOMEM;
        }
        r = read_full_file(p, JOB_JSON_MAX, &data, &size);
        if (r < 0) {
                job_dir_free(d);
                return r;
        }
        d->assignment = json_loadb(data, size, 0, &err);
        if (!json_is_object(d->assignment)) {
                log_error("%s: %s", p, err.text);
                job_dir_free(d);
                return -EBADMSG;
        }
        d->attempt = json_integer_value(json_object_get(d->assignment, "attempt"));
        *ret = d;
        return 0;
}

static int cmp_i64(const void *a, const void *b) {
        int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
        return x < y ? -1 : x > y;
}

int job_dir_list(const agent_config *cfg, int64_t **ret_ids, size_t *ret_n) {
        _cleanup_free_ char *p = strjoin(cfg->state_dir, "/jobs", NULL);
        _cleanup_free_ int64_t *ids = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        DIR *dir;

        if (!p)
                return -ENOMEM;
        dir = opendir(p);
        if (!dir) {
                if (errno != ENOENT)
                        return negative_errno();
                *ret_ids = NULL;
                *ret_n = 0;
                return 0;
        }
        while ((de = readdir(dir))) {
                char *end;
                if (!isdigit((unsigned char) de->d_name[0]) || de->d_type != DT_DIR)
                        continue;
                errno = 0;
                long long v = strtoll(de->d_name, &end, 10);
                if (*end || errno || v <= 0)
                        continue;
                if (n == cap) {
                        int64_t *m = realloc(ids, (cap = cap ? cap * 2 : 16) * sizeof *ids);
                        if (!m) {
                                closedir(dir);
                                return -ENOMEM;
                        }
                        ids = m;
                }
                ids[n++] = v;
        }
        closedir(dir);
        if (n > 0)
                qsort(ids, n, sizeof *ids, cmp_i64);
        *ret_ids = TAKE_PTR(ids);
        *ret_n = n;
        return 0;
}

int job_dir_remove(job_dir *d) {
        return rm_rf(d->root);
}

int job_dir_write_ack(job_dir *d, uint64_t offset, int64_t counter) {
        char buf[64];
        int n = snprintf(buf, sizeof buf, "%" PRIu64 " %" PRId64 "\n", offset, counter);
        return write_under(d, "ack", buf, (size_t) n);
}

int job_dir_read_ack(job_dir *d, uint64_t *ret_offset, int64_t *ret_counter) {
        _cleanup_free_ char *p = strjoin(d->root, "/ack", NULL), *data = NULL;
        uint64_t off;
        int64_t c;
        int r;

        if (!p)
                return -ENOMEM;
        r = read_full_file(p, 128, &data, NULL);
        if (r == -ENOENT) {
                *ret_offset = 0;
                *ret_counter = 0;
                return 0;
        }
        if (r < 0)
                return r;
        if (sscanf(data, "%" SCNu64 " %" SCNd64, &off, &c) != 2 || c < 0)
                return -EBADMSG;
        *ret_offset = off;
        *ret_counter = c;
        return 0;
}

int job_dir_mark_cancel(job_dir *d) {
        return write_under(d, "cancel", "", 0);
}

bool job_dir_cancel_requested(job_dir *d) {
        _cleanup_free_ char *p = strjoin(d->root, "/cancel", NULL);
        return p && access(p, F_OK) == 0;
}

static int write_artifact(job_dir *d, const char *name, const char *text) {
        _cleanup_free_ char *p = strjoin(d->artifacts, "/", name, NULL);
        if (!p)
                return -ENOMEM;
        return write_file_atomic_nosync(p, text, strlen(text), 0600);
}

int job_dir_write_status(job_dir *d, const char *status, int rc) {
        char buf[32];
        int r;

        snprintf(buf, sizeof buf, "%d", rc);
        r = write_artifact(d, "status", status);
        if (r >= 0)
                r = write_artifact(d, "rc", buf);
        return r;
}

int job_dir_write_command(job_dir *d, char **argv, const char *cwd, json_t *redacted_env) {
        _cleanup_json_ json_t *o = json_object(), *a = json_array();
        _cleanup_free_ char *s = NULL;

        if (!o || !a)
                return -ENOMEM;
        for (char **i = argv; i && *i; i++)
                json_array_append_new(a, json_string(*i));
        json_object_set(o, "command", a);
        json_object_set_new(o, "cwd", json_string(strempty(cwd)));
        json_object_set(o, "env", redacted_env ? redacted_env : json_object());
        s = json_dumps(o, JSON_COMPACT);
        if (!s)
                return -ENOMEM;
        return write_artifact(d, "command", s);
}

int job_dir_read_unit_result(job_dir *d, job_unit_result *ret) {
        _cleanup_free_ char *data = NULL;
        job_unit_result u = {};
        long long oom;
        int r;

        r = read_full_file(d->result_path, 512, &data, NULL);
        if (r < 0)
                return r;
        if (sscanf(data, "%31s %31s %31s %lld", u.service_result, u.exit_code, u.exit_status, &oom) != 4)
                return -EBADMSG;
        u.oom_kills = oom < 0 ? -1 : (int64_t) oom;
        job_podman_read_result(d, &u);
        *ret = u;
        return 0;
}
