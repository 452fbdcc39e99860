/* fuzz-yaml-config.c: fuzz target for the YAML config reader (common/yaml-config.c) and what is
 * built on it: the document is loaded, every node is walked with every typed getter and the key
 * check, then the same text is loaded as a controller and as an agent config file (through a
 * memfd, /proc/self/fd/N), and parsed as API extra_vars/variables text (api_parse_vars,
 * api_yaml_to_json: JSON-or-YAML that clients send over HTTP). */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "agent.h"
#include "api.h"
#include "controller.h"
#include "drover/log.h"
#include "drover/yaml-config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WALK_MAX_DEPTH 64

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        log_set_max_level(getenv("FUZZ_VERBOSE") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERR - 1);  /* quiet unless asked */
        return 0;
}

static void check_error(const yaml_doc *d) {
        /* the error buffer is always a terminated string */
        assert(memchr(d->error, 0, sizeof d->error));
}

static void walk(yaml_doc *d, const ynode *n, unsigned depth) {
        static const char *const known[] = { "listen", "database", "limits", "unit", NULL };
        char *s = NULL, **l = NULL;
        uint64_t u;
        int64_t i;
        bool b;

        if (!n || depth > WALK_MAX_DEPTH)
                return;
        if (ynode_string(d, n, "k", &s) >= 0)
                free(s);
        check_error(d);
        (void) ynode_bool(d, n, "k", &b);
        (void) ynode_int(d, n, "k", INT64_MIN, INT64_MAX, &i);
        (void) ynode_int(d, n, "k", -5, 5, &i);
        (void) ynode_size(d, n, "k", &u);
        (void) ynode_timespan(d, n, "k", &u);
        (void) ynode_percent(d, n, "k", &u);
        if (ynode_strv(d, n, "k", &l) >= 0)
                strv_free(l);
        check_error(d);
        if (n->kind == YNODE_MAPPING) {
                (void) ynode_check_keys(d, n, "p.", known);
                for (size_t k = 0; k < n->n_children; k++) {
                        assert(n->keys[k]);
                        (void) ynode_get(n, n->keys[k]);
                }
        }
        for (size_t k = 0; k < n->n_children; k++)
                walk(d, n->children[k], depth + 1);
}

static void load_configs(const char *text, size_t size) {
        char path[64];
        int fd;

        fd = memfd_create("fuzz-config", MFD_CLOEXEC);
        if (fd < 0)
                return;
        if (write(fd, text, size) == (ssize_t) size) {
                controller_config *cc = NULL;
                agent_config *ac = NULL;

                snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
                if (controller_config_load(path, &cc) >= 0)
                        controller_config_free(cc);
                if (agent_config_load(path, &ac) >= 0)
                        agent_config_free(ac);
        }
        close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_yaml_doc_ yaml_doc *d = NULL;
        _cleanup_json_ json_t *vars = NULL, *value = NULL;
        _cleanup_free_ char *text = NULL;

        text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = 0;

        if (yaml_doc_load_string("fuzz.yaml", text, &d) >= 0) {
                walk(d, d->root, 0);
                check_error(d);
        } else if (d)
                check_error(d);

        load_configs(text, size);

        if (api_parse_vars(text, &vars) >= 0)
                assert(json_is_object(vars));
        (void) api_yaml_to_json(text, &value);
        return 0;
}
