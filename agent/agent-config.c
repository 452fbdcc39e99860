/* agent-config.c: loads /etc/drover/agent.yaml into an agent_config (see agent.h for the fields
 * and docs/agent.md for the keys). Unknown keys, wrong types and bad values are errors that name
 * "<file>:<line>:<col>" of the offending key or value. */
#include "agent.h"
#include "agent-internal.h"

#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <unistd.h>

#include "drover/log.h"
#include "drover/util.h"
#include "drover/yaml-config.h"

#define AGENT_DEFAULT_STATE_DIR "/var/lib/drover"
#define AGENT_DEFAULT_ANSIBLE_PLAYBOOK "/usr/bin/ansible-playbook"
#define AGENT_DEFAULT_PODMAN "/usr/bin/podman"
#define AGENT_DEFAULT_SPOOL_JOB (256ULL * 1024 * 1024)
#define AGENT_DEFAULT_SPOOL_TOTAL (1024ULL * 1024 * 1024)
#define AGENT_SPOOL_MIN (64ULL * 1024)
#define AGENT_OPTIONS_MAX 64

static const char *const agent_config_keys[] = {
        "controller_url", "ca_file", "enrollment_token", "secret_file", "node_name", "state_dir",
        "share_dir", "ansible_playbook", "bus_address", "capacity", "job_slice", "keep_job_dirs",
        "heartbeat_interval", "log_level", "unit", "spool", "podman", NULL,
};

static const char *const agent_config_spool_keys[] = {
        "max_job_size", "max_total_size", NULL,
};

static const char *const agent_config_podman_keys[] = {
        "enabled", "path", "global_options", "run_options", "pull_options", NULL,
};

static const char *const agent_config_unit_keys[] = {
        "memory_max", "cpu_quota", "tasks_max", "user", "stop_timeout", NULL,
};

void agent_config_free(agent_config *c) {
        if (!c)
                return;
        free(c->path);
        free(c->controller_url);
        free(c->ca_file);
        if (c->enrollment_token) {
                explicit_bzero(c->enrollment_token, strlen(c->enrollment_token));
                free(c->enrollment_token);
        }
        free(c->secret_file);
        free(c->node_name);
        free(c->state_dir);
        free(c->share_dir);
        free(c->ansible_playbook);
        free(c->bus_address);
        free(c->unit.user);
        free(c->podman.path);
        strv_free(c->podman.global_options);
        strv_free(c->podman.run_options);
        strv_free(c->podman.pull_options);
        free(c);
}

static void agent_config_freep(agent_config **c) { agent_config_free(*c); }

/* An error for a position we have no node for (empty document, missing file). */
static int config_error_at(yaml_doc *d, const char *path, const ynode *n, const char *fmt, ...) {
        char msg[384];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (d && n)
                return yaml_doc_error(d, n, "%s", msg);
        if (d) {
                snprintf(d->error, sizeof d->error, "%s:1:1: %s", path, msg);
                return -EINVAL;
        }
        return -EINVAL;
}

/* Like ynode_check_keys(), but in the "key '<path>': ..." form every other config error uses. */
static int config_check_keys(yaml_doc *d, const ynode *map, const char *prefix, const char *const *known) {
        for (size_t i = 0; i < map->n_children; i++) {
                bool found = false;
                for (const char *const *k = known; *k; k++)
                        if (map->keys[i] && streq(*k, map->keys[i])) {
                                found = true;
                                break;
                        }
                if (found)
                        continue;
                snprintf(d->error, sizeof d->error, "%s:%u:%u: key '%s%s': unknown key", d->path ? d->path : "<config>",
                         map->key_lines[i], map->key_columns[i], prefix, strempty(map->keys[i]));
                return -EINVAL;
        }
        return 0;
}

static int config_string(yaml_doc *d, const ynode *map, const char *key, char **field) {
        const ynode *n = ynode_get(map, key);
        if (!n || n->kind == YNODE_NULL)
                return 0;
        char *s = NULL;
        int r = ynode_string(d, n, key, &s);
        if (r < 0)
                return r;
        free(*field);
        *field = s;
        return 0;
}

static int config_abs_path(yaml_doc *d, const ynode *map, const char *key, char **field) {
        int r = config_string(d, map, key, field);
        if (r < 0)
                return r;
        const ynode *n = ynode_get(map, key);
        if (n && *field && (*field)[0] != '/')
                return yaml_doc_error(d, n, "key '%s': expected an absolute path, got '%s'", key, *field);
        return 0;
}

static int config_unit(yaml_doc *d, const ynode *u, agent_unit_defaults *ret) {
        const ynode *n;
        int r;

        if (u->kind == YNODE_NULL)
                return 0;
        if (u->kind != YNODE_MAPPING)
                return yaml_doc_error(d, u, "key 'unit': expected a mapping, got '%s'", strempty(u->value));
        r = config_check_keys(d, u, "unit.", agent_config_unit_keys);
        if (r < 0)
                return r;

        n = ynode_get(u, "memory_max");
        if (n && n->kind != YNODE_NULL) {
                r = ynode_size(d, n, "unit.memory_max", &ret->memory_max);
                if (r < 0)
                        return r;
        }
        n = ynode_get(u, "cpu_quota");
        if (n && n->kind != YNODE_NULL) {
                r = ynode_percent(d, n, "unit.cpu_quota", &ret->cpu_quota_usec);
                if (r < 0)
                        return r;
        }
        n = ynode_get(u, "tasks_max");
        if (n && n->kind != YNODE_NULL) {
                if (n->kind == YNODE_SCALAR && n->value && streq(n->value, "infinity"))
                        ret->tasks_max = UINT64_MAX;
                else {
                        int64_t v;
                        r = ynode_int(d, n, "unit.tasks_max", 1, INT64_MAX, &v);
                        if (r < 0)
                                return r;
                        ret->tasks_max = (uint64_t) v;
                }
        }
        r = config_string(d, u, "user", &ret->user);
        if (r < 0)
                return r;
        n = ynode_get(u, "stop_timeout");
        if (n && n->kind != YNODE_NULL) {
                r = ynode_timespan(d, n, "unit.stop_timeout", &ret->stop_timeout_usec);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int config_spool(yaml_doc *d, const ynode *s, agent_spool_config *ret) {
        static const struct {
                const char *key;
                size_t offset;
        } sizes[] = {
                { "max_job_size", offsetof(agent_spool_config, max_job_bytes) },
                { "max_total_size", offsetof(agent_spool_config, max_total_bytes) },
        };
        int r;

        if (s->kind == YNODE_NULL)
                return 0;
        if (s->kind != YNODE_MAPPING)
                return yaml_doc_error(d, s, "key 'spool': expected a mapping, got '%s'", strempty(s->value));
        r = config_check_keys(d, s, "spool.", agent_config_spool_keys);
        if (r < 0)
                return r;

        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                const ynode *n = ynode_get(s, sizes[i].key);
                char key[64];
                uint64_t v;

                if (!n || n->kind == YNODE_NULL)
                        continue;
                snprintf(key, sizeof key, "spool.%s", sizes[i].key);
                r = ynode_size(d, n, key, &v);
                if (r < 0)
                        return r;
                if (v < AGENT_SPOOL_MIN || v == UINT64_MAX)
                        return yaml_doc_error(d, n, "key '%s': expected a size of at least 64K, got '%s'", key,
                                              strempty(n->value));
                *(uint64_t *) ((uint8_t *) ret + sizes[i].offset) = v;
        }
        return 0;
}

static int config_options(yaml_doc *d, const ynode *p, const char *key, char ***field) {
        const ynode *n = ynode_get(p, key);
        char key_path[64];
        char **l = NULL;
        int r;

        if (!n || n->kind == YNODE_NULL)
                return 0;
        snprintf(key_path, sizeof key_path, "podman.%s", key);
        r = ynode_strv(d, n, key_path, &l);
        if (r < 0)
                return r;
        if (strv_length(l) > AGENT_OPTIONS_MAX) {
                strv_free(l);
                return yaml_doc_error(d, n, "key '%s': at most %d options allowed", key_path, AGENT_OPTIONS_MAX);
        }
        for (char **o = l; o && *o; o++)
                if (isempty(*o)) {
                        strv_free(l);
                        return yaml_doc_error(d, n, "key '%s': an option must not be empty", key_path);
                }
        strv_free(*field);
        *field = l;
        return 0;
}

static int config_podman(yaml_doc *d, const ynode *p, agent_podman_config *ret, bool *ret_enabled_set) {
        const ynode *n;
        int r;

        if (p->kind == YNODE_NULL)
                return 0;
        if (p->kind != YNODE_MAPPING)
                return yaml_doc_error(d, p, "key 'podman': expected a mapping, got '%s'", strempty(p->value));
        r = config_check_keys(d, p, "podman.", agent_config_podman_keys);
        if (r < 0)
                return r;

        n = ynode_get(p, "enabled");
        if (n && n->kind != YNODE_NULL) {
                r = ynode_bool(d, n, "podman.enabled", &ret->enabled);
                if (r < 0)
                        return r;
                *ret_enabled_set = true;
        }
        n = ynode_get(p, "path");
        if (n && n->kind != YNODE_NULL) {
                char *s = NULL;
                r = ynode_string(d, n, "podman.path", &s);
                if (r < 0)
                        return r;
                if (s[0] != '/') {
                        r = yaml_doc_error(d, n, "key 'podman.path': expected an absolute path, got '%s'", s);
                        free(s);
                        return r;
                }
                free(ret->path);
                ret->path = s;
        }
        if ((r = config_options(d, p, "global_options", &ret->global_options)) < 0 ||
            (r = config_options(d, p, "run_options", &ret->run_options)) < 0 ||
            (r = config_options(d, p, "pull_options", &ret->pull_options)) < 0)
                return r;
        return 0;
}

static int config_parse(yaml_doc *d, const char *path, agent_config *c, bool *ret_podman_enabled_set) {
        const ynode *root = d->root, *n;
        int r;

        if (!root || root->kind == YNODE_NULL)
                return config_error_at(d, path, NULL, "key 'controller_url': required key missing (empty configuration)");
        if (root->kind != YNODE_MAPPING)
                return yaml_doc_error(d, root, "key 'controller_url': required key missing (the file is not a mapping of keys)");

        r = config_check_keys(d, root, "", agent_config_keys);
        if (r < 0)
                return r;

        n = ynode_get(root, "controller_url");
        if (!n || n->kind == YNODE_NULL)
                return config_error_at(d, path, n ?: root, "key 'controller_url': required key missing");
        r = ynode_string(d, n, "controller_url", &c->controller_url);
        if (r < 0)
                return r;
        if (!startswith(c->controller_url, "https://") || strlen(c->controller_url) <= strlen("https://"))
                return yaml_doc_error(d, n, "key 'controller_url': expected an https:// URL, got '%s'",
                                      c->controller_url);
        /* Paths are appended to the base URL: drop a trailing slash. */
        size_t l = strlen(c->controller_url);
        while (l > strlen("https://") && c->controller_url[l - 1] == '/')
                c->controller_url[--l] = 0;

        if ((r = config_abs_path(d, root, "ca_file", &c->ca_file)) < 0 ||
            (r = config_string(d, root, "enrollment_token", &c->enrollment_token)) < 0 ||
            (r = config_abs_path(d, root, "secret_file", &c->secret_file)) < 0 ||
            (r = config_string(d, root, "node_name", &c->node_name)) < 0 ||
            (r = config_abs_path(d, root, "state_dir", &c->state_dir)) < 0 ||
            (r = config_abs_path(d, root, "share_dir", &c->share_dir)) < 0 ||
            (r = config_abs_path(d, root, "ansible_playbook", &c->ansible_playbook)) < 0 ||
            (r = config_string(d, root, "bus_address", &c->bus_address)) < 0)
                return r;

        n = ynode_get(root, "node_name");
        if (n && c->node_name && (isempty(c->node_name) || strlen(c->node_name) > 253))
                return yaml_doc_error(d, n, "key 'node_name': expected a host name of 1..253 characters, got '%s'",
                                      c->node_name);

        n = ynode_get(root, "capacity");
        if (n && n->kind != YNODE_NULL) {
                r = ynode_int(d, n, "capacity", 0, 1000000, &c->capacity);
                if (r < 0)
                        return r;
        }
        n = ynode_get(root, "job_slice");
        if (n && n->kind != YNODE_NULL) {
                r = ynode_int(d, n, "job_slice", 1, 1000000, &c->job_slice);
                if (r < 0)
                        return r;
        }
        n = ynode_get(root, "keep_job_dirs");
        if (n && n->kind != YNODE_NULL) {
                r = ynode_bool(d, n, "keep_job_dirs", &c->keep_job_dirs);
                if (r < 0)
                        return r;
        }
        n = ynode_get(root, "heartbeat_interval");
        if (n && n->kind != YNODE_NULL) {
                uint64_t v;
                r = ynode_timespan(d, n, "heartbeat_interval", &v);
                if (r < 0)
                        return r;
                if (v < USEC_PER_SEC || v > 3600 * USEC_PER_SEC)
                        return yaml_doc_error(d, n, "key 'heartbeat_interval': expected a timespan between 1s and 1h, got '%s'",
                                              strempty(n->value));
                c->heartbeat_interval_usec = v;
        }
        n = ynode_get(root, "log_level");
        if (n && n->kind != YNODE_NULL) {
                _cleanup_free_ char *s = NULL;
                r = ynode_string(d, n, "log_level", &s);
                if (r < 0)
                        return r;
                int level = log_level_from_string(s);
                if (level < 0 || streq(s, "err"))
                        return yaml_doc_error(d, n, "key 'log_level': expected one of debug, info, notice, warning, error, got '%s'", s);
                c->log_level = level;
        }
        n = ynode_get(root, "unit");
        if (n) {
                r = config_unit(d, n, &c->unit);
                if (r < 0)
                        return r;
        }
        n = ynode_get(root, "spool");
        if (n) {
                r = config_spool(d, n, &c->spool);
                if (r < 0)
                        return r;
        }
        n = ynode_get(root, "podman");
        if (n) {
                r = config_podman(d, n, &c->podman, ret_podman_enabled_set);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int config_defaults(agent_config *c, bool podman_enabled_set) {
        if (!c->state_dir && !(c->state_dir = strdup(AGENT_DEFAULT_STATE_DIR)))
                return -ENOMEM;
        if (!c->secret_file && !(c->secret_file = strjoin(c->state_dir, "/node-secret", NULL)))
                return -ENOMEM;
        if (!c->share_dir && !(c->share_dir = strdup(DROVER_SHARE_DIR)))
                return -ENOMEM;
        if (!c->ansible_playbook && !(c->ansible_playbook = strdup(AGENT_DEFAULT_ANSIBLE_PLAYBOOK)))
                return -ENOMEM;
        if (!c->node_name) {
                char host[HOST_NAME_MAX + 1] = {};
                if (gethostname(host, sizeof host - 1) < 0)
                        return negative_errno();
                if (!(c->node_name = strdup(host)))
                        return -ENOMEM;
        }
        if (!c->podman.path && !(c->podman.path = strdup(AGENT_DEFAULT_PODMAN)))
                return -ENOMEM;
        if (!podman_enabled_set)
                c->podman.enabled = access(c->podman.path, X_OK) == 0;
        return 0;
}

int agent_config_load_with_error(const char *path, agent_config **ret, char *error, size_t error_size) {
        _cleanup_(agent_config_freep) agent_config *c = NULL;
        _cleanup_yaml_doc_ yaml_doc *d = NULL;
        bool podman_enabled_set = false;
        int r;

        if (error_size > 0)
                error[0] = 0;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->path = strdup(path);
        if (!c->path)
                return -ENOMEM;
        c->job_slice = 1;
        c->heartbeat_interval_usec = 10 * USEC_PER_SEC;
        c->log_level = LOG_LEVEL_INFO;
        c->unit.memory_max = UINT64_MAX;
        c->unit.cpu_quota_usec = UINT64_MAX;
        c->unit.tasks_max = UINT64_MAX;
        c->unit.stop_timeout_usec = 10 * USEC_PER_SEC;
        c->spool.max_job_bytes = AGENT_DEFAULT_SPOOL_JOB;
        c->spool.max_total_bytes = AGENT_DEFAULT_SPOOL_TOTAL;

        r = yaml_doc_load_file(path, &d);
        if (r < 0) {
                if (d && d->error[0])
                        snprintf(error, error_size, "%s", d->error);
                else {
                        errno = -r;
                        snprintf(error, error_size, "%s: cannot read configuration: %m", path);
                }
                return r == -ENOMEM ? r : -EINVAL;
        }

        r = config_parse(d, path, c, &podman_enabled_set);
        if (r < 0) {
                snprintf(error, error_size, "%s", d->error[0] ? d->error : "invalid configuration");
                return r == -ENOMEM ? r : -EINVAL;
        }
        r = config_defaults(c, podman_enabled_set);
        if (r < 0) {
                errno = -r;
                snprintf(error, error_size, "%s: cannot apply defaults: %m", path);
                return r;
        }

        *ret = TAKE_PTR(c);
        return 0;
}

int agent_config_load(const char *path, agent_config **ret) {
        char error[600];
        int r = agent_config_load_with_error(path, ret, error, sizeof error);
        if (r < 0)
                log_error("%s", error);
        return r;
}
