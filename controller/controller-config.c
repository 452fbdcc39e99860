/* controller-config.c: loading /etc/drover/controller.yaml into a controller_config. Unknown keys
 * and badly typed values are errors naming "<file>:<line>:<col>"; a missing file at the default
 * path means "all defaults". */
#include "controller.h"
#include "drover/log.h"
#include "drover/util.h"
#include "drover/yaml-config.h"

#define DEFAULT_CONFIG_PATH DROVER_SYSCONF_DIR "/controller.yaml"
#define DEFAULT_LISTEN "127.0.0.1:8443"
#define DEFAULT_STATE_DIR "/var/lib/drover-controller"
#define DEFAULT_ADMIN_USER "admin"

void controller_config_free(controller_config *c) {
        if (!c)
                return;
        free(c->path);
        free(c->listen);
        free(c->tls_cert);
        free(c->tls_key);
        strv_free(c->tls_names);
        free(c->ee_default_image);
        free(c->ee_control_plane_image);
        free(c->ee_latest_image);
        free(c->ee_global_default);
        free(c->database);
        free(c->state_dir);
        free(c->projects_root);
        free(c->admin_user);
        if (c->admin_password)
                explicit_bzero(c->admin_password, strlen(c->admin_password));
        free(c->admin_password);
        free(c->admin_email);
        free(c);
}

static void controller_config_freep(controller_config **c) { controller_config_free(*c); }

static void limits_default(controller_limits *l) {
        *l = (controller_limits) {
                .max_body_size = 1024 * 1024,
                .max_agent_body_size = 16 * 1024 * 1024,
                .max_project_size = 64 * 1024 * 1024,
                .max_event_size = 1024 * 1024,
                .max_connections = 1024,
                .max_long_polls = 512,
                .max_streams = 256,
                .long_poll_max_usec = 50 * USEC_PER_SEC,
                .node_lost_timeout_usec = 120 * USEC_PER_SEC,
        };
}

/* A string option: null keeps the default. */
static int opt_string(yaml_doc *d, const ynode *map, const char *key, const char *key_path, char **v) {
        const ynode *n = ynode_get(map, key);
        char *s = NULL;
        int r;

        if (!n || n->kind == YNODE_NULL)
                return 0;
        r = ynode_string(d, n, key_path, &s);
        if (r < 0)
                return r;
        free(*v);
        *v = s;
        return 0;
}

static int opt_size(yaml_doc *d, const ynode *map, const char *key, const char *key_path, uint64_t *v) {
        const ynode *n = ynode_get(map, key);

        if (!n || n->kind == YNODE_NULL)
                return 0;
        return ynode_size(d, n, key_path, v);
}

static int opt_timespan(yaml_doc *d, const ynode *map, const char *key, const char *key_path, uint64_t *v) {
        const ynode *n = ynode_get(map, key);
        uint64_t t;
        int r;

        if (!n || n->kind == YNODE_NULL)
                return 0;
        r = ynode_timespan(d, n, key_path, &t);
        if (r < 0)
                return r;
        if (t == 0)
                return yaml_doc_error(d, n, "key '%s': expected a positive timespan, got '%s'", key_path, n->value);
        *v = t;
        return 0;
}

static int opt_uint(yaml_doc *d, const ynode *map, const char *key, const char *key_path, unsigned *v) {
        const ynode *n = ynode_get(map, key);
        int64_t i;
        int r;

        if (!n || n->kind == YNODE_NULL)
                return 0;
        r = ynode_int(d, n, key_path, 1, 1000000, &i);
        if (r < 0)
                return r;
        *v = (unsigned) i;
        return 0;
}

static int config_parse(yaml_doc *d, controller_config *c) {
        static const char *const top_keys[] = { "listen", "tls", "database", "state_dir", "projects_root", "admin",
                                                "log_level", "limits", "execution_environments", NULL };
        static const char *const ee_keys[] = { "default_image", "control_plane_image", "latest_image",
                                               "global_default", NULL };
        static const char *const tls_keys[] = { "certificate", "key", "names", NULL };
        static const char *const admin_keys[] = { "username", "password", "email", NULL };
        static const char *const limits_keys[] = { "max_body_size", "max_agent_body_size", "max_project_size",
                                                   "max_event_size", "max_connections", "max_long_polls",
                                                   "max_streams", "long_poll_timeout", "node_lost_timeout", NULL };
        const ynode *root = d->root, *n;
        controller_limits *l = &c->limits;
        int r;

        if (!root || root->kind == YNODE_NULL)
                return 0;
        r = ynode_check_keys(d, root, "", top_keys);
        if (r < 0)
                return r;

        if ((r = opt_string(d, root, "listen", "listen", &c->listen)) < 0 ||
            (r = opt_string(d, root, "database", "database", &c->database)) < 0 ||
            (r = opt_string(d, root, "state_dir", "state_dir", &c->state_dir)) < 0 ||
            (r = opt_string(d, root, "projects_root", "projects_root", &c->projects_root)) < 0)
                return r;

        n = ynode_get(root, "log_level");
        if (n && n->kind != YNODE_NULL) {
                if (n->kind != YNODE_SCALAR || log_level_from_string(n->value) < 0)
                        return yaml_doc_error(d, n,
                                              "key 'log_level': expected one of debug, info, notice, warning, error, got '%s'",
                                              n->kind == YNODE_SCALAR ? n->value : "a non-scalar");
                c->log_level = log_level_from_string(n->value);
        }

        n = ynode_get(root, "tls");
        if (n && n->kind != YNODE_NULL) {
                r = ynode_check_keys(d, n, "tls.", tls_keys);
                if (r < 0)
                        return r;
                if ((r = opt_string(d, n, "certificate", "tls.certificate", &c->tls_cert)) < 0 ||
                    (r = opt_string(d, n, "key", "tls.key", &c->tls_key)) < 0)
                        return r;
                const ynode *names = ynode_get(n, "names");
                if (names) {
                        char **l2 = NULL;
                        r = ynode_strv(d, names, "tls.names", &l2);
                        if (r < 0)
                                return r;
                        strv_free(c->tls_names);
                        c->tls_names = l2;
                }
        }

        n = ynode_get(root, "admin");
        if (n && n->kind != YNODE_NULL) {
                r = ynode_check_keys(d, n, "admin.", admin_keys);
                if (r < 0)
                        return r;
                if ((r = opt_string(d, n, "username", "admin.username", &c->admin_user)) < 0 ||
                    (r = opt_string(d, n, "password", "admin.password", &c->admin_password)) < 0 ||
                    (r = opt_string(d, n, "email", "admin.email", &c->admin_email)) < 0)
                        return r;
        }

        n = ynode_get(root, "execution_environments");
        if (n && n->kind != YNODE_NULL) {
                r = ynode_check_keys(d, n, "execution_environments.", ee_keys);
                if (r < 0)
                        return r;
                if ((r = opt_string(d, n, "default_image", "execution_environments.default_image",
                                    &c->ee_default_image)) < 0 ||
                    (r = opt_string(d, n, "control_plane_image", "execution_environments.control_plane_image",
                                    &c->ee_control_plane_image)) < 0 ||
                    (r = opt_string(d, n, "latest_image", "execution_environments.latest_image",
                                    &c->ee_latest_image)) < 0 ||
                    (r = opt_string(d, n, "global_default", "execution_environments.global_default",
                                    &c->ee_global_default)) < 0)
                        return r;
        }

        n = ynode_get(root, "limits");
        if (n && n->kind != YNODE_NULL) {
                r = ynode_check_keys(d, n, "limits.", limits_keys);
                if (r < 0)
                        return r;
                if ((r = opt_size(d, n, "max_body_size", "limits.max_body_size", &l->max_body_size)) < 0 ||
                    (r = opt_size(d, n, "max_agent_body_size", "limits.max_agent_body_size", &l->max_agent_body_size)) < 0 ||
                    (r = opt_size(d, n, "max_project_size", "limits.max_project_size", &l->max_project_size)) < 0 ||
                    (r = opt_size(d, n, "max_event_size", "limits.max_event_size", &l->max_event_size)) < 0 ||
                    (r = opt_uint(d, n, "max_connections", "limits.max_connections", &l->max_connections)) < 0 ||
                    (r = opt_uint(d, n, "max_long_polls", "limits.max_long_polls", &l->max_long_polls)) < 0 ||
                    (r = opt_uint(d, n, "max_streams", "limits.max_streams", &l->max_streams)) < 0 ||
                    (r = opt_timespan(d, n, "long_poll_timeout", "limits.long_poll_timeout", &l->long_poll_max_usec)) < 0 ||
                    (r = opt_timespan(d, n, "node_lost_timeout", "limits.node_lost_timeout", &l->node_lost_timeout_usec)) < 0)
                        return r;
                /* agents refuse responses over 64 MiB (common/http-client.c): a larger project could
                 * never be downloaded */
                const ynode *p = ynode_get(n, "max_project_size");
                if (p && l->max_project_size > 64 * 1024 * 1024)
                        return yaml_doc_error(d, p, "key 'limits.max_project_size': at most 64M (the agents' download "
                                              "limit), got '%s'", p->kind == YNODE_SCALAR ? p->value : "?");
        }
        return 0;
}

int controller_config_load(const char *path, controller_config **ret) {
        _cleanup_(controller_config_freep) controller_config *c = NULL;
        _cleanup_yaml_doc_ yaml_doc *d = NULL;
        bool explicit_path = !!path;
        int r;

        if (!path)
                path = DEFAULT_CONFIG_PATH;

        c = calloc(1, sizeof(*c));
        if (!c)
                return log_oom();
        c->log_level = LOG_LEVEL_INFO;
        limits_default(&c->limits);
        c->path = strdup(path);
        c->listen = strdup(DEFAULT_LISTEN);
        c->admin_user = strdup(DEFAULT_ADMIN_USER);
        if (!c->path || !c->listen || !c->admin_user)
                return log_oom();

        if (!explicit_path && access(path, F_OK) < 0 && errno == ENOENT)
                log_debug("No configuration file %s, using defaults.", path);
        else {
                r = yaml_doc_load_file(path, &d);
                if (r < 0) {
                        if (d)
                                log_error("%s", d->error);
                        else
                                log_error_errno(r, "Failed to read %s: %m", path);
                        return r;
                }
                r = config_parse(d, c);
                if (r < 0) {
                        if (r == -ENOMEM)
                                return log_oom();
                        log_error("%s", d->error);
                        return -EINVAL;
                }
        }

        /* Defaults that depend on other keys */
        if (!c->state_dir && !(c->state_dir = strdup(DEFAULT_STATE_DIR)))
                return log_oom();
        if (!c->database && !(c->database = strjoin("sqlite:", c->state_dir, "/drover.db", NULL)))
                return log_oom();
        if (!c->projects_root && !(c->projects_root = strjoin(c->state_dir, "/projects", NULL)))
                return log_oom();
        if (!!c->tls_cert != !!c->tls_key) {
                log_error("%s: tls.certificate and tls.key must be given together.", path);
                return -EINVAL;
        }
        if (isempty(c->listen) || isempty(c->state_dir) || c->state_dir[0] != '/' || c->projects_root[0] != '/') {
                log_error("%s: listen must be set, state_dir and projects_root must be absolute paths.", path);
                return -EINVAL;
        }

        *ret = TAKE_PTR(c);
        return 0;
}
