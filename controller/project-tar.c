/* project-tar.c: deterministic POSIX ustar archives of project directories (what agents download,
 * identified by their SHA-256), and a small in-memory cache so unchanged projects are not rebuilt
 * for every dispatch. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#include "controller.h"
#include "drover/crypto.h"
#include <jansson.h>
#include "drover/json-util.h"
#include "drover/log.h"
#include "drover/util.h"

#define TAR_BLOCK 512
#define TAR_MAX_DEPTH 64
#define TAR_MAX_ENTRIES 200000
#define CACHE_ENTRIES 8

typedef struct tar_buf {
        char *data;
        size_t size, allocated;
        uint64_t max_size;
        size_t n_entries;
} tar_buf;

static int tar_reserve(tar_buf *t, size_t n) {
        if (t->size + n + 2 * TAR_BLOCK > t->max_size)
                return -EFBIG;
        if (t->size + n > t->allocated) {
                size_t a = MAX(t->allocated * 2, t->size + n);
                char *d = realloc(t->data, MAX(a, (size_t) 64 * 1024));
                if (!d)
                        return -ENOMEM;
                t->data = d;
                t->allocated = MAX(a, (size_t) 64 * 1024);
        }
        return 0;
}

static void octal(char *field, size_t width, uint64_t v) {
        /* width includes the terminating NUL */
        snprintf(field, width, "%0*llo", (int) width - 1, (unsigned long long) v);
}

static int tar_header(tar_buf *t, const char *name, bool dir, mode_t mode, uint64_t size) {
        char h[TAR_BLOCK] = {};
        size_t l = strlen(name);
        unsigned sum = 0;
        int r;

        /* name (100) or prefix (155) + '/' + name */
        if (l <= 100)
                memcpy(h, name, l);
        else {
                const char *split = NULL;
                for (const char *p = name; *p; p++)
                        if (*p == '/' && (size_t) (p - name) <= 155 && l - (size_t) (p - name) - 1 <= 100 &&
                            l - (size_t) (p - name) - 1 > 0)
                                split = split ? split : p;
                if (!split)
                        return -ENAMETOOLONG;
                memcpy(h + 345, name, (size_t) (split - name));
                memcpy(h, split + 1, l - (size_t) (split - name) - 1);
        }
        octal(h + 100, 8, mode);
        octal(h + 108, 8, 0);
        octal(h + 116, 8, 0);
        if (size > 077777777777ULL)
                return -EFBIG;
        octal(h + 124, 12, size);
        octal(h + 136, 12, 0);
        memset(h + 148, ' ', 8);
        h[156] = dir ? '5' : '0';
        memcpy(h + 257, "ustar", 6);
        memcpy(h + 263, "00", 2);
        memcpy(h + 265, "root", 4);
        memcpy(h + 297, "root", 4);
        for (size_t i = 0; i < TAR_BLOCK; i++)
                sum += (unsigned char) h[i];
        snprintf(h + 148, 8, "%06o", sum);   /* 6 digits, NUL, then the space already there */
        h[155] = ' ';

        r = tar_reserve(t, TAR_BLOCK);
        if (r < 0)
                return r;
        memcpy(t->data + t->size, h, TAR_BLOCK);
        t->size += TAR_BLOCK;
        return 0;
}

static int tar_file(tar_buf *t, const char *rel, int fd, const struct stat *st) {
        size_t padded = ((size_t) st->st_size + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
        mode_t mode = (st->st_mode & 0111) ? 0755 : 0644;
        size_t done = 0;
        int r;

        if ((uint64_t) st->st_size > t->max_size)
                return -EFBIG;
        r = tar_header(t, rel, false, mode, (uint64_t) st->st_size);
        if (r < 0)
                return r;
        r = tar_reserve(t, padded);
        if (r < 0)
                return r;
        while (done < (size_t) st->st_size) {
                ssize_t n = read(fd, t->data + t->size + done, (size_t) st->st_size - done);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        return -EIO;   /* the file shrank while we read it */
                done += (size_t) n;
        }
        memset(t->data + t->size + done, 0, padded - done);
        t->size += padded;
        return 0;
}

static int name_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* root_real: realpath of the tree root; dir_real: realpath of the directory being walked. */
static int tar_dir(tar_buf *t, const char *root_real, const char *dir_real, const char *rel, unsigned depth) {
        _cleanup_strv_free_ char **names = NULL;
        DIR *d;
        struct dirent *de;
        size_t n = 0;
        int r = 0;

        if (depth > TAR_MAX_DEPTH)
                return -ELOOP;
        d = opendir(dir_real);
        if (!d)
                return negative_errno();
        while ((de = readdir(d))) {
                if (streq(de->d_name, ".") || streq(de->d_name, "..") || streq(de->d_name, ".git"))
                        continue;
                r = strv_extend(&names, de->d_name);
                if (r < 0)
                        break;
                n++;
        }
        closedir(d);
        if (r < 0)
                return r;
        if (n == 0)
                return 0;
        qsort(names, n, sizeof(char *), name_cmp);

        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *path = strjoin(dir_real, "/", names[i], NULL);
                _cleanup_free_ char *child_rel = rel[0] ? strjoin(rel, "/", names[i], NULL) : strdup(names[i]);
                _cleanup_free_ char *real = NULL;
                _cleanup_close_ int fd = -1;
                struct stat st;

                if (!path || !child_rel)
                        return -ENOMEM;
                if (++t->n_entries > TAR_MAX_ENTRIES)
                        return -EFBIG;
                if (lstat(path, &st) < 0)
                        return negative_errno();
                if (S_ISLNK(st.st_mode)) {
                        size_t rl = strlen(root_real);
                        real = realpath(path, NULL);
                        if (!real)
                                continue;   /* dangling */
                        if (!(startswith(real, root_real) && (real[rl] == '/' || real[rl] == 0)))
                                continue;   /* leaves the tree */
                        if (stat(real, &st) < 0)
                                continue;
                        if (S_ISDIR(st.st_mode)) {
                                /* a link to an ancestor (or itself) would loop */
                                size_t ll = strlen(real);
                                if (startswith(dir_real, real) && (dir_real[ll] == '/' || dir_real[ll] == 0))
                                        continue;
                        }
                } else {
                        real = strdup(path);
                        if (!real)
                                return -ENOMEM;
                }

                if (S_ISDIR(st.st_mode)) {
                        _cleanup_free_ char *dname = strjoin(child_rel, "/", NULL);
                        if (!dname)
                                return -ENOMEM;
                        r = tar_header(t, dname, true, 0755, 0);
                        if (r < 0)
                                return r;
                        r = tar_dir(t, root_real, real, child_rel, depth + 1);
                        if (r < 0)
                                return r;
                } else if (S_ISREG(st.st_mode)) {
                        fd = open(real, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
                        if (fd < 0)
                                return negative_errno();
                        if (fstat(fd, &st) < 0)
                                return negative_errno();
                        if (!S_ISREG(st.st_mode))
                                continue;
                        r = tar_file(t, child_rel, fd, &st);
                        if (r < 0)
                                return r;
                }
                /* sockets, fifos, devices: skipped */
        }
        return 0;
}

int project_tar_build(const char *dir, uint64_t max_size, char **ret_data, size_t *ret_size, char ret_hash[static 65]) {
        _cleanup_free_ char *root = NULL;
        tar_buf t = { .max_size = max_size };
        struct stat st;
        int r;

        root = realpath(dir, NULL);
        if (!root)
                return negative_errno();
        if (stat(root, &st) < 0)
                return negative_errno();
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;

        r = tar_dir(&t, root, root, "", 0);
        if (r == 0)
                r = tar_reserve(&t, 2 * TAR_BLOCK);
        if (r < 0) {
                free(t.data);
                return r;
        }
        memset(t.data + t.size, 0, 2 * TAR_BLOCK);
        t.size += 2 * TAR_BLOCK;

        crypto_sha256_hex(t.data, t.size, ret_hash);
        *ret_data = t.data;
        *ret_size = t.size;
        return 0;
}

/* ---- the cache ---- */

/* A signature of the tree: every name, size, mtime and inode, hashed. Cheap compared with reading
 * and hashing every file. */
static int tree_signature_walk(const char *path, unsigned depth, void *ctx_, size_t *n) {
        char **ctx = ctx_;
        DIR *d;
        struct dirent *de;
        int r = 0;

        if (depth > TAR_MAX_DEPTH)
                return -ELOOP;
        d = opendir(path);
        if (!d)
                return negative_errno();
        while ((de = readdir(d))) {
                _cleanup_free_ char *p = NULL, *line = NULL;
                struct stat st;

                if (streq(de->d_name, ".") || streq(de->d_name, "..") || streq(de->d_name, ".git"))
                        continue;
                if (++*n > TAR_MAX_ENTRIES) {
                        r = -EFBIG;
                        break;
                }
                p = strjoin(path, "/", de->d_name, NULL);
                if (!p) {
                        r = -ENOMEM;
                        break;
                }
                if (stat(p, &st) < 0)   /* follows links: a link target's change counts */
                        continue;
                line = asprintf_safe("%s %llu %lld.%09ld %llu %o\n", p, (unsigned long long) st.st_size,
                                     (long long) st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
                                     (unsigned long long) st.st_ino, (unsigned) st.st_mode);
                if (!line) {
                        r = -ENOMEM;
                        break;
                }
                char hash[65], *combined = strjoin(*ctx, line, NULL);
                if (!combined) {
                        r = -ENOMEM;
                        break;
                }
                crypto_sha256_hex(combined, strlen(combined), hash);
                free(combined);
                free(*ctx);
                *ctx = strdup(hash);
                if (!*ctx) {
                        r = -ENOMEM;
                        break;
                }
                if (S_ISDIR(st.st_mode)) {
                        struct stat lst;
                        if (lstat(p, &lst) == 0 && S_ISLNK(lst.st_mode))
                                continue;   /* project_tar_build decides about linked dirs; their own entry is hashed */
                        r = tree_signature_walk(p, depth + 1, ctx, n);
                        if (r < 0)
                                break;
                }
        }
        closedir(d);
        return r;
}

static int tree_signature(const char *dir, char **ret) {
        char *sig = strdup("");
        size_t n = 0;
        int r;

        if (!sig)
                return -ENOMEM;
        r = tree_signature_walk(dir, 0, &sig, &n);
        if (r < 0) {
                free(sig);
                return r;
        }
        *ret = sig;
        return 0;
}

static struct {
        char *dir, *signature;
        char *data;
        size_t size;
        char hash[65];
        uint64_t used;
} cache[CACHE_ENTRIES];
static uint64_t cache_clock;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static int cache_copy_out(size_t i, char **ret_data, size_t *ret_size, char ret_hash[static 65]) {
        if (ret_data) {
                char *d = malloc(MAX(cache[i].size, (size_t) 1));
                if (!d)
                        return -ENOMEM;
                memcpy(d, cache[i].data, cache[i].size);
                *ret_data = d;
                if (ret_size)
                        *ret_size = cache[i].size;
        } else if (ret_size)
                *ret_size = cache[i].size;
        memcpy(ret_hash, cache[i].hash, 65);
        cache[i].used = ++cache_clock;
        return 0;
}

int project_tar_get(const char *dir, uint64_t max_size, char **ret_data, size_t *ret_size, char ret_hash[static 65]) {
        _cleanup_free_ char *sig = NULL, *data = NULL;
        size_t size = 0, victim = 0;
        char hash[65];
        int r;

        r = tree_signature(dir, &sig);
        if (r < 0)
                return r;

        pthread_mutex_lock(&cache_lock);
        for (size_t i = 0; i < CACHE_ENTRIES; i++)
                if (cache[i].dir && streq(cache[i].dir, dir) && streq(cache[i].signature, sig) &&
                    cache[i].size <= max_size) {
                        r = cache_copy_out(i, ret_data, ret_size, ret_hash);
                        pthread_mutex_unlock(&cache_lock);
                        return r;
                }
        pthread_mutex_unlock(&cache_lock);

        r = project_tar_build(dir, max_size, &data, &size, hash);
        if (r < 0)
                return r;

        pthread_mutex_lock(&cache_lock);
        victim = CACHE_ENTRIES;
        for (size_t i = 0; i < CACHE_ENTRIES && victim == CACHE_ENTRIES; i++)   /* the same dir */
                if (cache[i].dir && streq(cache[i].dir, dir))
                        victim = i;
        for (size_t i = 0; i < CACHE_ENTRIES && victim == CACHE_ENTRIES; i++)   /* a free slot */
                if (!cache[i].dir)
                        victim = i;
        if (victim == CACHE_ENTRIES) {                                          /* least recently used */
                victim = 0;
                for (size_t i = 1; i < CACHE_ENTRIES; i++)
                        if (cache[i].used < cache[victim].used)
                                victim = i;
        }
        char *dir_copy = strdup(dir);
        if (dir_copy) {
                free(cache[victim].dir);
                free(cache[victim].signature);
                free(cache[victim].data);
                cache[victim].dir = dir_copy;
                cache[victim].signature = TAKE_PTR(sig);
                cache[victim].data = TAKE_PTR(data);
                cache[victim].size = size;
                memcpy(cache[victim].hash, hash, 65);
                r = cache_copy_out(victim, ret_data, ret_size, ret_hash);
        } else
                r = -ENOMEM;
        pthread_mutex_unlock(&cache_lock);
        return r;
}

int project_local_dir(controller *c, const json_t *project, char **ret) {
        const char *lp = json_get_string(project, "local_path", NULL);
        char *p;

        if (isempty(lp) || lp[0] == '/' || streq(lp, "..") || startswith(lp, "../") || strstr(lp, "/../") ||
            (strlen(lp) >= 3 && streq(lp + strlen(lp) - 3, "/..")))
                return -EINVAL;
        p = strjoin(c->config->projects_root, "/", lp, NULL);
        if (!p)
                return -ENOMEM;
        *ret = p;
        return 0;
}
