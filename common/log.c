/* log.c: the stderr logger behind log.h. Thread safe: each message is formatted into one buffer
 * and written with a single write(2). */
#include "drover/log.h"

#include <stdarg.h>
#include <time.h>
#include <sys/uio.h>

static int max_level = LOG_LEVEL_INFO;
static const char *log_ident = NULL;

void log_set_max_level(int level) { max_level = level; }
int log_get_max_level(void) { return max_level; }
void log_set_ident(const char *ident) { log_ident = ident; }

int log_level_from_string(const char *s) {
        static const struct { const char *name; int level; } table[] = {
                { "debug", LOG_LEVEL_DEBUG }, { "info", LOG_LEVEL_INFO }, { "notice", LOG_LEVEL_NOTICE },
                { "warning", LOG_LEVEL_WARNING }, { "error", LOG_LEVEL_ERR }, { "err", LOG_LEVEL_ERR },
        };
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (streq(table[i].name, s))
                        return table[i].level;
        return -EINVAL;
}

int log_internal(int level, int error, const char *file, int line, const char *fmt, ...) {
        int saved = errno;
        if (error < 0)
                error = -error;
        if (level > max_level)
                return error > 0 ? -error : 0;

        char buf[4096];
        size_t n = 0;
        bool tty = isatty(STDERR_FILENO);
        if (!tty)
                n += (size_t) snprintf(buf, sizeof buf, "<%d>", level);
        if (log_ident && tty)
                n += (size_t) snprintf(buf + n, sizeof buf - n, "%s: ", log_ident);
        if (max_level >= LOG_LEVEL_DEBUG && n < sizeof buf)
                n += (size_t) snprintf(buf + n, sizeof buf - n, "(%s:%d) ", file, line);

        /* %m means strerror(error), not strerror(errno) */
        errno = error;
        va_list ap;
        va_start(ap, fmt);
        if (n < sizeof buf)
                n += (size_t) vsnprintf(buf + n, sizeof buf - n, fmt, ap);
        va_end(ap);
        if (n >= sizeof buf - 1)
                n = sizeof buf - 2;
        buf[n++] = '\n';
        ssize_t _unused_ w = write(STDERR_FILENO, buf, n);
        errno = saved;
        return error > 0 ? -error : 0;
}
