/* standalone-main.c: a main() for the fuzz targets when they are not built with libFuzzer (gcc).
 * Runs LLVMFuzzerTestOneInput once over every regular file of each directory (or file) named on
 * the command line, e.g. the seed corpus tests/fuzz/corpus/<name>/ and its crash reproducers.
 * Calls LLVMFuzzerInitialize first when the target defines it. Exits non-zero when a path
 * cannot be read or holds no input at all; a crash is reported by the sanitizers. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

#define STANDALONE_MAX_INPUT (16u * 1024u * 1024u)

static int run_file(const char *path) {
        struct stat st;
        uint8_t *buf;
        size_t n;
        FILE *f;

        f = fopen(path, "re");
        if (!f) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                return -1;
        }
        if (fstat(fileno(f), &st) < 0 || st.st_size < 0 || (uint64_t) st.st_size > STANDALONE_MAX_INPUT) {
                fprintf(stderr, "%s: cannot stat or too large\n", path);
                fclose(f);
                return -1;
        }
        /* an exact-size heap buffer, so ASan sees reads past the input's end */
        buf = malloc(st.st_size > 0 ? (size_t) st.st_size : 1);
        if (!buf) {
                fclose(f);
                return -1;
        }
        n = fread(buf, 1, (size_t) st.st_size, f);
        fclose(f);
        fprintf(stderr, "running %s (%zu bytes)\n", path, n);
        LLVMFuzzerTestOneInput(buf, n);
        free(buf);
        return 0;
}

static int name_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int main(int argc, char **argv) {
        unsigned ran = 0, failed = 0;

        if (LLVMFuzzerInitialize)
                LLVMFuzzerInitialize(&argc, &argv);
        if (argc < 2) {
                fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
                return 2;
        }
        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
                        failed++;
                        continue;
                }
                if (!S_ISDIR(st.st_mode)) {
                        if (run_file(argv[i]) < 0)
                                failed++;
                        else
                                ran++;
                        continue;
                }
                DIR *d = opendir(argv[i]);
                size_t n = 0, allocated = 0;
                if (!d) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
                        failed++;
                        continue;
                }
                char **files = NULL;
                for (struct dirent *de; (de = readdir(d));) {
                        if (de->d_name[0] == '.')
                                continue;
                        if (n == allocated) {
                                allocated = allocated ? allocated * 2 : 64;
                                char **nf = realloc(files, allocated * sizeof(char *));
                                if (!nf)
                                        abort();
                                files = nf;
                        }
                        if (asprintf(&files[n], "%s/%s", argv[i], de->d_name) < 0)
                                abort();
                        n++;
                }
                closedir(d);
                qsort(files, n, sizeof(char *), name_cmp);
                for (size_t k = 0; k < n; k++) {
                        if (stat(files[k], &st) == 0 && S_ISREG(st.st_mode)) {
                                if (run_file(files[k]) < 0)
                                        failed++;
                                else
                                        ran++;
                        }
                        free(files[k]);
                }
                free(files);
        }
        fprintf(stderr, "%u inputs run, %u failed\n", ran, failed);
        return failed > 0 || ran == 0 ? 1 : 0;
}
