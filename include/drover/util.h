/* util.h: file, directory, time and string helpers used by every drover program. All functions
 * return 0 or a negative errno; ret_* output parameters are untouched on failure. */
#pragma once

#include <stdint.h>
#include <sys/types.h>
#include "drover/macro.h"

#define USEC_PER_SEC ((uint64_t) 1000000)
#define USEC_PER_MSEC ((uint64_t) 1000)
#define NSEC_PER_USEC ((uint64_t) 1000)

uint64_t now_realtime_usec(void);
uint64_t now_monotonic_usec(void);
/* ISO-8601 UTC with microseconds and 'Z', as AWX prints: 2026-11-23T06:15:03.123456Z.
 * buf must hold at least 32 bytes. usec 0 means "now". */
char *format_iso8601(char buf[static 32], uint64_t usec);
/* Parse the same format (fraction optional) back to microseconds since the epoch. */
int parse_iso8601(const char *s, uint64_t *ret_usec);

/* Read a whole file, at most max_size bytes (-EFBIG beyond). The result is NUL terminated. */
int read_full_file(const char *path, size_t max_size, char **ret_data, size_t *ret_size);
/* Write atomically (temp file + fsync + rename) with the given mode (e.g. 0600). */
int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode);
/* The same without fsync: atomic against a crash of the writing process (the page cache outlives
 * it), not against a crash of the machine. For state a machine crash destroys anyway (a job's
 * private data dir: its unit dies with the machine) and for state that may go back safely (the
 * acknowledged offset: re-uploading acknowledged events is a no-op). */
int write_file_atomic_nosync(const char *path, const void *data, size_t size, mode_t mode);
/* write(2) all of data, retrying on EINTR and short writes. */
int loop_write(int fd, const void *data, size_t size);
/* mkdir -p with mode for every created component. */
int mkdir_p(const char *path, mode_t mode);
/* rm -rf; does not cross mount points; a missing path is success. */
int rm_rf(const char *path);
/* Copy a directory tree (regular files, dirs, symlinks). */
int copy_tree(const char *from, const char *to);

/* strdup that aborts on OOM is not used; these return NULL on OOM. */
char *strjoin(const char *a, ...) __attribute__((sentinel));
char *asprintf_safe(const char *fmt, ...) _printf_(1, 2);
/* Parse sizes like "512M", "2G", "1048576", "infinity" (-> UINT64_MAX). */
int parse_size(const char *s, uint64_t *ret);
/* Parse "50%" -> 500000 (CPUQuotaPerSecUSec). */
int parse_percent_usec(const char *s, uint64_t *ret);
/* Parse timespans like "30s", "5min", "1h", "250ms", plain number = seconds -> usec. */
int parse_timespan(const char *s, uint64_t *ret_usec);
/* Hex encoding of bytes (lowercase). out must hold 2*n+1. */
void hex_encode(const void *data, size_t n, char *out);
/* Constant-time comparison of two NUL-terminated strings. */
bool streq_consttime(const char *a, const char *b);
/* Random bytes from getrandom(2). */
int random_bytes(void *buf, size_t n);
/* A fresh random UUID string (36 chars + NUL). */
void uuid_string(char out[static 37]);
