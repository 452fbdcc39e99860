/* fuzz-tar.c: fuzz target for the agent's project archive extraction, tar_extract()
 * (agent/job-dir.c): the archive comes from the controller over the network. Each input is
 * extracted into a fresh directory <base>/root/ (removed afterwards); nothing may appear next to
 * it (no escape through "..", absolute names or links) and nothing but regular files and
 * directories may appear below it. Then the round trip through the controller's archive builder
 * (controller/project-tar.c): project_tar_build(root) extracted again into <base>/copy/ must give
 * the same tree (names, types, executable bits, contents; ".git" is skipped by design).
 * Input: byte 0 is a flag; when odd, the harness fixes up the header checksums along the walk
 * tar_extract does (so the fuzzer gets past them); the rest is the archive. */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent-exec.h"
#include "controller.h"
#include "drover/crypto.h"
#include "drover/log.h"
#include "drover/util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BLOCK 512

static char base[64];

static void cleanup_base(void) {
        if (base[0])
                (void) rm_rf(base);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        log_set_max_level(getenv("FUZZ_VERBOSE") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERR - 1);  /* quiet unless asked */
        snprintf(base, sizeof base, "/dev/shm/fuzz-tar-XXXXXX");
        if (!mkdtemp(base)) {
                snprintf(base, sizeof base, "/tmp/fuzz-tar-XXXXXX");        /* no /dev/shm */
                if (!mkdtemp(base))
                        abort();
        }
        atexit(cleanup_base);
        return 0;
}

static uint64_t octal(const unsigned char *f, size_t n) {
        uint64_t v = 0;
        for (size_t i = 0; i < n && f[i] >= '0' && f[i] <= '7' && v < (UINT64_MAX >> 3); i++)
                v = v * 8 + (uint64_t) (f[i] - '0');
        return v;
}

/* Walk the headers as tar_extract does and write valid checksums into them. */
static void fix_checksums(unsigned char *t, size_t size) {
        for (size_t off = 0; off + BLOCK <= size;) {
                unsigned char *h = t + off;
                uint64_t sum = 0, fsize;
                bool zero = true;

                for (size_t i = 0; i < BLOCK && zero; i++)
                        zero = h[i] == 0;
                if (zero)
                        return;
                for (size_t i = 0; i < BLOCK; i++)
                        sum += (i >= 148 && i < 156) ? ' ' : h[i];
                snprintf((char *) h + 148, 8, "%06o", (unsigned) (sum & 0777777));
                h[155] = ' ';
                fsize = octal(h + 124, 12);
                if (fsize > size)
                        return;
                off += BLOCK + (fsize + BLOCK - 1) / BLOCK * BLOCK;
        }
}

/* Everything below dir_fd is a regular file or directory. */
static void check_tree(int dir_fd, unsigned depth) {
        DIR *d;

        assert(depth < 200);
        d = fdopendir(dir_fd);
        assert(d);
        for (struct dirent *de; (de = readdir(d));) {
                struct stat st;
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                assert(fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0);
                assert(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode));
                assert((st.st_mode & 07022) == 0);      /* no setuid/setgid/sticky, no group/other write */
                if (S_ISDIR(st.st_mode)) {
                        int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        assert(fd >= 0);
                        check_tree(fd, depth + 1);
                }
        }
        closedir(d);
}

typedef struct listing {
        char *data;
        size_t size, allocated;
} listing;

static void listing_add(listing *l, const char *s) {
        size_t n = strlen(s);
        if (l->size + n + 1 > l->allocated) {
                l->allocated = (l->size + n + 1) * 2;
                l->data = realloc(l->data, l->allocated);
                if (!l->data)
                        abort();
        }
        memcpy(l->data + l->size, s, n + 1);
        l->size += n;
}

static int dirent_cmp(const struct dirent **a, const struct dirent **b) {
        return strcmp((*a)->d_name, (*b)->d_name);
}

/* A canonical text of a tree: "<rel path> <d|x|f> <size> <sha256>\n" per entry, sorted. */
static void list_tree(const char *path, const char *rel, listing *l, unsigned depth) {
        struct dirent **names = NULL;
        int n;

        assert(depth < 200);
        n = scandir(path, &names, NULL, dirent_cmp);
        assert(n >= 0);
        for (int i = 0; i < n; i++) {
                const char *nm = names[i]->d_name;
                char *p = NULL, *r = NULL, line[PATH_MAX + 128];
                struct stat st;

                if (strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0 || strcmp(nm, ".git") == 0) {
                        free(names[i]);
                        continue;
                }
                assert(asprintf(&p, "%s/%s", path, nm) >= 0);
                assert(asprintf(&r, "%s%s%s", rel, *rel ? "/" : "", nm) >= 0);
                assert(lstat(p, &st) == 0);
                if (S_ISDIR(st.st_mode)) {
                        snprintf(line, sizeof line, "%s d\n", r);
                        listing_add(l, line);
                        list_tree(p, r, l, depth + 1);
                } else {
                        char *data = NULL, hash[65];
                        size_t size = 0;
                        assert(read_full_file(p, 64 * 1024 * 1024, &data, &size) == 0);
                        crypto_sha256_hex(data, size, hash);
                        free(data);
                        snprintf(line, sizeof line, "%s %c %zu %s\n", r, (st.st_mode & 0111) ? 'x' : 'f', size, hash);
                        listing_add(l, line);
                }
                free(p);
                free(r);
                free(names[i]);
        }
        free(names);
}

/* Build the archive of root as the controller does, extract it into copy, compare the trees. */
static void round_trip(const char *root, const char *copy) {
        listing a = {}, b = {};
        char *tar = NULL, hash[65];
        size_t size = 0;
        int r, fd;

        r = project_tar_build(root, 64 * 1024 * 1024, &tar, &size, hash);
        if (r == -ENAMETOOLONG)
                return;         /* the builder writes no pax/GNU long names (ustar name+prefix only) */
        if (r < 0)
                fprintf(stderr, "project_tar_build: %s\n", strerror(-r));
        assert(r == 0);
        assert(size % BLOCK == 0 && size >= 2 * BLOCK);
        assert(mkdir(copy, 0755) == 0);
        fd = open(copy, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert(fd >= 0);
        r = tar_extract(fd, tar, size);
        if (r < 0)
                fprintf(stderr, "tar_extract of the built archive: %s\n", strerror(-r));
        assert(r == 0);
        close(fd);
        list_tree(root, "", &a, 0);
        list_tree(copy, "", &b, 0);
        if (a.size != b.size || (a.size > 0 && memcmp(a.data, b.data, a.size) != 0)) {
                fprintf(stderr, "tree differs after the round trip:\n--- extracted\n%s--- rebuilt\n%s",
                        a.data ? a.data : "", b.data ? b.data : "");
                abort();
        }
        free(a.data);
        free(b.data);
        free(tar);
}

/* Only "root" and "copy" exist in base. */
static void check_base(void) {
        DIR *d = opendir(base);
        assert(d);
        for (struct dirent *de; (de = readdir(d));)
                assert(strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
                       strcmp(de->d_name, "root") == 0 || strcmp(de->d_name, "copy") == 0);
        closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char root[96], copy[96];
        int r;
        unsigned char *tar;
        int fd;

        if (size < 1)
                return 0;
        /* an exact-size copy: the harness may patch it, ASan sees reads past its end */
        tar = malloc(size - 1 > 0 ? size - 1 : 1);
        if (!tar)
                return 0;
        memcpy(tar, data + 1, size - 1);
        if (data[0] & 1)
                fix_checksums(tar, size - 1);

        snprintf(root, sizeof root, "%s/root", base);
        snprintf(copy, sizeof copy, "%s/copy", base);
        assert(mkdir(root, 0755) == 0);
        fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert(fd >= 0);
        r = tar_extract(fd, tar, size - 1);
        check_base();
        check_tree(fd, 0);      /* takes fd */
        if (r >= 0)
                round_trip(root, copy);
        check_base();
        assert(rm_rf(root) == 0);
        assert(rm_rf(copy) == 0);
        free(tar);
        return 0;
}
