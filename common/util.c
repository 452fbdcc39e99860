/* util.c: file, directory, time, parsing and string helpers shared by every drover program
 * (the functions declared in drover/util.h). */
#include "drover/util.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <uuid/uuid.h>

/* ---- time ---- */

static uint64_t timespec_to_usec(const struct timespec *ts) {
        return (uint64_t) ts->tv_sec * USEC_PER_SEC + (uint64_t) ts->tv_nsec / NSEC_PER_USEC;
}

uint64_t now_realtime_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return timespec_to_usec(&ts);
}

uint64_t now_monotonic_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return timespec_to_usec(&ts);
}

char *format_iso8601(char buf[static 32], uint64_t usec) {
        struct tm tm;
        time_t t;
        size_t l;

        if (usec == 0)
                usec = now_realtime_usec();
        t = (time_t) (usec / USEC_PER_SEC);
        if (!gmtime_r(&t, &tm)) {
                strcpy(buf, "1970-01-01T00:00:00.000000Z");
                return buf;
        }
        l = strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm);
        if (l == 0 || l > 32 - 9) {
                strcpy(buf, "1970-01-01T00:00:00.000000Z");
                return buf;
        }
        snprintf(buf + l, 32 - l, ".%06uZ", (unsigned) (usec % USEC_PER_SEC));
        return buf;
}

static int parse_digits(const char **p, unsigned n, int *ret) {
        int v = 0;
        for (unsigned i = 0; i < n; i++) {
                if (!isdigit((unsigned char) (*p)[i]))
                        return -EINVAL;
                v = v * 10 + ((*p)[i] - '0');
        }
        *p += n;
        *ret = v;
        return 0;
}

int parse_iso8601(const char *s, uint64_t *ret_usec) {
        int year, mon, day, hour, min, sec;
        uint64_t frac = 0;
        struct tm tm = {};
        const char *p = s;
        time_t t;

        if (!s)
                return -EINVAL;
        if (parse_digits(&p, 4, &year) < 0 || *p++ != '-' ||
            parse_digits(&p, 2, &mon) < 0 || *p++ != '-' ||
            parse_digits(&p, 2, &day) < 0 || (*p != 'T' && *p != 't' && *p != ' '))
                return -EINVAL;
        p++;
        if (parse_digits(&p, 2, &hour) < 0 || *p++ != ':' ||
            parse_digits(&p, 2, &min) < 0 || *p++ != ':' ||
            parse_digits(&p, 2, &sec) < 0)
                return -EINVAL;
        if (*p == '.') {
                unsigned n = 0;
                p++;
                if (!isdigit((unsigned char) *p))
                        return -EINVAL;
                for (; isdigit((unsigned char) *p); p++, n++)
                        if (n < 6)
                                frac = frac * 10 + (uint64_t) (*p - '0');
                for (; n < 6; n++)
                        frac *= 10;
        }
        if (*p == 'Z' || *p == 'z')
                p++;
        else if (startswith(p, "+00:00"))
                p += 6;
        else
                return -EINVAL;
        if (*p != 0)
                return -EINVAL;
        if (year < 1970 || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
                return -EINVAL;

        tm.tm_year = year - 1900;
        tm.tm_mon = mon - 1;
        tm.tm_mday = day;
        tm.tm_hour = hour;
        tm.tm_min = min;
        tm.tm_sec = sec;
        t = timegm(&tm);
        if (t == (time_t) -1 || t < 0)
                return -EINVAL;
        /* Reject dates that timegm() normalized (e.g. Feb 31). */
        if (tm.tm_mday != day || tm.tm_mon != mon - 1)
                return -EINVAL;

        *ret_usec = (uint64_t) t * USEC_PER_SEC + frac;
        return 0;
}

/* ---- files ---- */

int read_full_file(const char *path, size_t max_size, char **ret_data, size_t *ret_size) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, alloc = 0;
        struct stat st;

        if (max_size > SIZE_MAX / 4)
                max_size = SIZE_MAX / 4;  /* keeps the max_size + 1 arithmetic below from wrapping */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (S_ISREG(st.st_mode) && (uint64_t) st.st_size > max_size)
                return -EFBIG;

        alloc = S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t) st.st_size + 1 : 4096;
        if (alloc > max_size + 1)
                alloc = max_size + 1;
        if (alloc == 0)
                alloc = 1;
        buf = malloc(alloc + 1);
        if (!buf)
                return -ENOMEM;

        for (;;) {
                ssize_t k;

                if (size == alloc) {
                        size_t na;
                        char *nb;

                        if (size > max_size)
                                return -EFBIG;
                        na = alloc * 2;
                        if (na > max_size + 1)
                                na = max_size + 1;
                        nb = realloc(buf, na + 1);
                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                        alloc = na;
                }
                k = read(fd, buf + size, alloc - size);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        break;
                size += (size_t) k;
                if (size > max_size)
                        return -EFBIG;
        }
        buf[size] = 0;
        *ret_data = TAKE_PTR(buf);
        if (ret_size)
                *ret_size = size;
        return 0;
}

int loop_write(int fd, const void *data, size_t size) {
        const char *p = data;
        while (size > 0) {
                ssize_t k = write(fd, p, size);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                p += k;
                size -= (size_t) k;
        }
        return 0;
}

static int write_file_atomic_internal(const char *path, const void *data, size_t size, mode_t mode, bool sync);

int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode) {
        return write_file_atomic_internal(path, data, size, mode, true);
}

int write_file_atomic_nosync(const char *path, const void *data, size_t size, mode_t mode) {
        return write_file_atomic_internal(path, data, size, mode, false);
}

static int write_file_atomic_internal(const char *path, const void *data, size_t size, mode_t mode, bool sync) {
        _cleanup_free_ char *tmp = NULL, *dir = NULL;
        _cleanup_close_ int fd = -1, dfd = -1;
        const char *slash;
        int r;

        if (isempty(path))
                return -EINVAL;
        slash = strrchr(path, '/');
        if (slash) {
                dir = slash == path ? strdup("/") : strndup(path, (size_t) (slash - path));
                tmp = strjoin(dir, slash == path ? "" : "/", ".#", slash + 1, ".XXXXXX", NULL);
        } else {
                dir = strdup(".");
                tmp = strjoin(".#", path, ".XXXXXX", NULL);
        }
        if (!dir || !tmp)
                return -ENOMEM;

        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return negative_errno();

        if (fchmod(fd, mode & 07777) < 0) {
                r = negative_errno();
                goto fail;
        }
        r = loop_write(fd, data, size);
        if (r < 0)
                goto fail;
        if (sync && fsync(fd) < 0) {
                r = negative_errno();
                goto fail;
        }
        if (rename(tmp, path) < 0) {
                r = negative_errno();
                goto fail;
        }
        if (!sync)
                return 0;
        /* Make the rename itself durable; a failure here is not fatal for the data. */
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0)
                (void) fsync(dfd);
        return 0;

fail:
        (void) unlink(tmp);
        return r;
}

int mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *p = NULL;
        size_t l;

        if (isempty(path))
                return -EINVAL;
        p = strdup(path);
        if (!p)
                return -ENOMEM;
        l = strlen(p);
        while (l > 1 && p[l - 1] == '/')
                p[--l] = 0;

        for (char *s = p + 1; ; s++) {
                bool last = *s == 0;

                if (*s != '/' && !last)
                        continue;
                if (*s == '/' && s[-1] == '/')
                        continue;
                *s = 0;
                if (mkdir(p, mode) < 0) {
                        struct stat st;
                        int e = errno;

                        if (e != EEXIST)
                                return -e;
                        if (stat(p, &st) < 0)
                                return negative_errno();
                        if (!S_ISDIR(st.st_mode))
                                return -ENOTDIR;
                }
                if (last)
                        break;
                *s = '/';
        }
        return 0;
}

#define RM_RF_MAX_DEPTH 256

static int rm_rf_children(int dfd, dev_t dev, unsigned depth) {
        DIR *d;
        struct dirent *de;
        int r = 0;

        if (depth > RM_RF_MAX_DEPTH) {
                close(dfd);
                return -ELOOP;
        }
        d = fdopendir(dfd);
        if (!d) {
                r = negative_errno();
                close(dfd);
                return r;
        }
        while ((errno = 0, de = readdir(d))) {
                struct stat st;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno != ENOENT && r == 0)
                                r = negative_errno();
                        continue;
                }
                if (S_ISDIR(st.st_mode)) {
                        int cfd, q;

                        if (st.st_dev != dev)  /* a mount point: leave it alone */
                                continue;
                        cfd = openat(dirfd(d), de->d_name,
                                     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (cfd < 0) {
                                if (errno != ENOENT && r == 0)
                                        r = negative_errno();
                                continue;
                        }
                        q = rm_rf_children(cfd, dev, depth + 1);
                        if (q < 0 && r == 0)
                                r = q;
                        if (unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
                                r = negative_errno();
                } else if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT && r == 0)
                        r = negative_errno();
        }
        if (errno != 0 && r == 0)
                r = negative_errno();
        closedir(d);
        return r;
}

int rm_rf(const char *path) {
        struct stat st;
        int fd, r;

        if (isempty(path) || streq(path, "/"))
                return -EINVAL;
        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : negative_errno();
        if (!S_ISDIR(st.st_mode)) {
                if (unlink(path) < 0 && errno != ENOENT)
                        return negative_errno();
                return 0;
        }
        fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : negative_errno();
        r = rm_rf_children(fd, st.st_dev, 0);
        if (rmdir(path) < 0 && errno != ENOENT && r == 0)
                r = negative_errno();
        return r;
}

static int copy_file_fd(int from_dfd, const char *name, int to_dfd, mode_t mode) {
        _cleanup_close_ int in = -1, out = -1;
        char buf[65536];

        in = openat(from_dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (in < 0)
                return negative_errno();
        out = openat(to_dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode & 07777);
        if (out < 0)
                return negative_errno();
        for (;;) {
                ssize_t k = read(in, buf, sizeof(buf));
                int r;

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        break;
                r = loop_write(out, buf, (size_t) k);
                if (r < 0)
                        return r;
        }
        if (fchmod(out, mode & 07777) < 0)
                return negative_errno();
        return 0;
}

static int copy_tree_fd(int from_dfd, int to_dfd, unsigned depth) {
        DIR *d;
        struct dirent *de;
        int r = 0, dup_fd;

        if (depth > RM_RF_MAX_DEPTH)
                return -ELOOP;
        dup_fd = fcntl(from_dfd, F_DUPFD_CLOEXEC, 3);
        if (dup_fd < 0)
                return negative_errno();
        d = fdopendir(dup_fd);
        if (!d) {
                r = negative_errno();
                close(dup_fd);
                return r;
        }
        while ((errno = 0, de = readdir(d))) {
                struct stat st;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (fstatat(from_dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        r = negative_errno();
                        break;
                }
                if (S_ISDIR(st.st_mode)) {
                        _cleanup_close_ int cf = -1, ct = -1;

                        if (mkdirat(to_dfd, de->d_name, st.st_mode & 07777) < 0 && errno != EEXIST) {
                                r = negative_errno();
                                break;
                        }
                        cf = openat(from_dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        ct = openat(to_dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (cf < 0 || ct < 0) {
                                r = negative_errno();
                                break;
                        }
                        r = copy_tree_fd(cf, ct, depth + 1);
                        if (r < 0)
                                break;
                } else if (S_ISLNK(st.st_mode)) {
                        char target[PATH_MAX];
                        ssize_t k = readlinkat(from_dfd, de->d_name, target, sizeof(target) - 1);

                        if (k < 0) {
                                r = negative_errno();
                                break;
                        }
                        target[k] = 0;
                        if (symlinkat(target, to_dfd, de->d_name) < 0) {
                                r = negative_errno();
                                break;
                        }
                } else if (S_ISREG(st.st_mode)) {
                        r = copy_file_fd(from_dfd, de->d_name, to_dfd, st.st_mode);
                        if (r < 0)
                                break;
                }
                /* sockets, fifos and devices are skipped */
        }
        if (r == 0 && errno != 0)
                r = negative_errno();
        closedir(d);
        return r;
}

int copy_tree(const char *from, const char *to) {
        _cleanup_close_ int ffd = -1, tfd = -1;
        struct stat st;

        ffd = open(from, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (ffd < 0)
                return negative_errno();
        if (fstat(ffd, &st) < 0)
                return negative_errno();
        if (mkdir(to, st.st_mode & 07777) < 0 && errno != EEXIST)
                return negative_errno();
        tfd = open(to, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (tfd < 0)
                return negative_errno();
        return copy_tree_fd(ffd, tfd, 0);
}

/* ---- strings ---- */

char *strjoin(const char *a, ...) {
        va_list ap;
        size_t l = 0;
        char *r, *p;

        va_start(ap, a);
        for (const char *s = a; s; s = va_arg(ap, const char *)) {
                size_t n = strlen(s);
                if (n > SIZE_MAX - l - 1) {
                        va_end(ap);
                        return NULL;
                }
                l += n;
        }
        va_end(ap);

        r = malloc(l + 1);
        if (!r)
                return NULL;
        p = r;
        va_start(ap, a);
        for (const char *s = a; s; s = va_arg(ap, const char *))
                p = stpcpy(p, s);
        va_end(ap);
        *p = 0;
        return r;
}

char *asprintf_safe(const char *fmt, ...) {
        va_list ap;
        char *s = NULL;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        return r < 0 ? NULL : s;
}

/* Parse "<digits>[.<digits>]" at *p into an integer part and a fraction scaled to 10^9. */
static int parse_decimal(const char **p, uint64_t *ret_int, uint64_t *ret_frac_nano) {
        const char *s = *p;
        uint64_t v = 0, f = 0, scale = 100000000;

        if (!isdigit((unsigned char) *s))
                return -EINVAL;
        for (; isdigit((unsigned char) *s); s++) {
                if (v > (UINT64_MAX - 9) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t) (*s - '0');
        }
        if (*s == '.') {
                s++;
                if (!isdigit((unsigned char) *s))
                        return -EINVAL;
                for (; isdigit((unsigned char) *s); s++) {
                        f += (uint64_t) (*s - '0') * scale;
                        scale /= 10;
                }
        }
        *p = s;
        *ret_int = v;
        *ret_frac_nano = f;
        return 0;
}

/* v * mul + frac_nano * mul / 1e9 with overflow checks. */
static int scale_checked(uint64_t v, uint64_t frac_nano, uint64_t mul, uint64_t *ret) {
        uint64_t a, b;

        if (mul != 0 && v > UINT64_MAX / mul)
                return -ERANGE;
        a = v * mul;
        /* frac_nano < 1e9; split mul to avoid overflow */
        b = (mul / 1000000000) * frac_nano + (mul % 1000000000) * frac_nano / 1000000000;
        if (a > UINT64_MAX - b)
                return -ERANGE;
        *ret = a + b;
        return 0;
}

int parse_size(const char *s, uint64_t *ret) {
        static const struct { char c; unsigned shift; } suffixes[] = {
                { 'K', 10 }, { 'M', 20 }, { 'G', 30 }, { 'T', 40 },
        };
        uint64_t v, f, mul = 1, result;
        const char *p = s;
        int r;

        if (isempty(s))
                return -EINVAL;
        if (streq(s, "infinity")) {
                *ret = UINT64_MAX;
                return 0;
        }
        r = parse_decimal(&p, &v, &f);
        if (r < 0)
                return r;
        if (*p) {
                char c = (char) toupper((unsigned char) *p);
                bool found = false;

                for (size_t i = 0; i < ELEMENTSOF(suffixes); i++)
                        if (suffixes[i].c == c) {
                                mul = (uint64_t) 1 << suffixes[i].shift;
                                found = true;
                                p++;
                                break;
                        }
                if (found && *p == 'i')
                        p++;
                if (*p == 'B' || (found && *p == 'b'))
                        p++;
                if (*p)
                        return -EINVAL;
        }
        if (mul == 1 && f != 0)
                return -EINVAL;  /* fractional bytes */
        r = scale_checked(v, f, mul, &result);
        if (r < 0)
                return r;
        *ret = result;
        return 0;
}

int parse_percent_usec(const char *s, uint64_t *ret) {
        uint64_t v, f, result;
        const char *p = s;
        int r;

        if (isempty(s))
                return -EINVAL;
        r = parse_decimal(&p, &v, &f);
        if (r < 0)
                return r;
        if (!streq(p, "%"))
                return -EINVAL;
        /* 1% of a second = 10000 usec */
        r = scale_checked(v, f, 10000, &result);
        if (r < 0)
                return r;
        *ret = result;
        return 0;
}

int parse_timespan(const char *s, uint64_t *ret_usec) {
        static const struct { const char *suffix; uint64_t usec; } units[] = {
                /* longer spellings first so "min" is not read as "m" + "in" */
                { "seconds", USEC_PER_SEC }, { "second", USEC_PER_SEC }, { "sec", USEC_PER_SEC }, { "s", USEC_PER_SEC },
                { "minutes", 60 * USEC_PER_SEC }, { "minute", 60 * USEC_PER_SEC }, { "min", 60 * USEC_PER_SEC },
                { "msec", USEC_PER_MSEC }, { "ms", USEC_PER_MSEC },
                { "m", 60 * USEC_PER_SEC },
                { "usec", 1 }, { "us", 1 },
                { "hours", 3600 * USEC_PER_SEC }, { "hour", 3600 * USEC_PER_SEC }, { "hr", 3600 * USEC_PER_SEC },
                { "h", 3600 * USEC_PER_SEC },
                { "days", 86400 * USEC_PER_SEC }, { "day", 86400 * USEC_PER_SEC }, { "d", 86400 * USEC_PER_SEC },
                { "weeks", 7 * 86400 * USEC_PER_SEC }, { "week", 7 * 86400 * USEC_PER_SEC },
                { "w", 7 * 86400 * USEC_PER_SEC },
        };
        const char *p = s;
        uint64_t total = 0;
        bool any = false;

        if (isempty(s))
                return -EINVAL;
        if (streq(s, "infinity")) {
                *ret_usec = UINT64_MAX;
                return 0;
        }
        for (;;) {
                uint64_t v, f, mul = 0, part;
                int r;

                while (*p == ' ')
                        p++;
                if (!*p)
                        break;
                r = parse_decimal(&p, &v, &f);
                if (r < 0)
                        return r;
                while (*p == ' ')
                        p++;
                if (!*p || isdigit((unsigned char) *p)) {
                        /* a bare number is seconds, but only as the whole string */
                        if (any || *p)
                                return -EINVAL;
                        mul = USEC_PER_SEC;
                } else {
                        for (size_t i = 0; i < ELEMENTSOF(units); i++) {
                                const char *e = startswith(p, units[i].suffix);
                                if (e && !isalpha((unsigned char) *e)) {
                                        mul = units[i].usec;
                                        p = e;
                                        break;
                                }
                        }
                        if (mul == 0)
                                return -EINVAL;
                }
                r = scale_checked(v, f, mul, &part);
                if (r < 0)
                        return r;
                if (total > UINT64_MAX - 1 - part)
                        return -ERANGE;
                total += part;
                any = true;
        }
        if (!any)
                return -EINVAL;
        *ret_usec = total;
        return 0;
}

void hex_encode(const void *data, size_t n, char *out) {
        static const char digits[] = "0123456789abcdef";
        const uint8_t *b = data;

        for (size_t i = 0; i < n; i++) {
                out[2 * i] = digits[b[i] >> 4];
                out[2 * i + 1] = digits[b[i] & 0xf];
        }
        out[2 * n] = 0;
}

bool streq_consttime(const char *a, const char *b) {
        size_t la, lb, n;
        unsigned char diff;

        if (!a || !b)
                return false;
        la = strlen(a);
        lb = strlen(b);
        diff = la != lb;
        n = MAX(la, lb);
        /* Always walk the longer length; out-of-range bytes compare against 0. */
        for (size_t i = 0; i < n; i++) {
                unsigned char ca = i < la ? (unsigned char) a[i] : 0;
                unsigned char cb = i < lb ? (unsigned char) b[i] : 0;
                diff |= ca ^ cb;
        }
        return diff == 0;
}

int random_bytes(void *buf, size_t n) {
        uint8_t *p = buf;

        while (n > 0) {
                ssize_t k = getrandom(p, n, 0);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

void uuid_string(char out[static 37]) {
        uuid_t u;

        uuid_generate_random(u);
        uuid_unparse_lower(u, out);
}
