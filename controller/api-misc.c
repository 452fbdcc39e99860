/* api-misc.c: the AWX API's service endpoints (root, ping, config, me), OAuth2-style personal
 * tokens, users' passwords, instance and instance group computed fields, and the first-start
 * bootstrap (Default organization, default instance group, admin user). */
#include <dirent.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "api.h"
#include "drover/crypto.h"
#include "drover/log.h"
#include "drover/util.h"

#define TOKEN_LIFETIME_USEC (31536000000ULL * USEC_PER_SEC)   /* AWX's default: 1000 years */

int api_root(controller *c, http_request *req, http_response *resp) {
        static const char *const endpoints[] = {
                "ping", "config", "me", "tokens", "organizations", "users", "inventories", "hosts", "groups",
                "projects", "job_templates", "jobs", "instances", "instance_groups", "unified_job_templates",
                "credential_types", "credentials", "execution_environments", NULL,
        };
        json_t *out = json_object();

        if (!out)
                return -ENOMEM;
        for (size_t i = 0; endpoints[i]; i++) {
                _cleanup_free_ char *p = strjoin(API_PREFIX, endpoints[i], "/", NULL);
                if (!p || json_object_set_new(out, endpoints[i], json_string(p)) < 0) {
                        json_decref(out);
                        return -ENOMEM;
                }
        }
        return http_respond(resp, 200, out);
}

static char *install_uuid_path(controller *c) {
        return strjoin(c->config->state_dir, "/install-uuid", NULL);
}

static int read_install_uuid(controller *c, char ret[static 37]) {
        _cleanup_free_ char *path = install_uuid_path(c), *data = NULL;
        size_t n;

        if (!path)
                return -ENOMEM;
        if (read_full_file(path, 64, &data, &n) < 0 || n < 36)
                return -ENOENT;
        memcpy(ret, data, 36);
        ret[36] = 0;
        return 0;
}

int api_ping(controller *c, http_request *req, http_response *resp) {
        _cleanup_json_ json_t *instances = NULL, *groups = NULL, *out_inst = json_array(), *out_groups = json_array();
        char host[256] = "localhost", uuid[37] = "00000000-0000-0000-0000-000000000000";
        storage_query all = {};
        json_t *it;
        size_t i;
        int q;

        if (!out_inst || !out_groups)
                return -ENOMEM;
        (void) gethostname(host, sizeof host - 1);
        (void) read_install_uuid(c, uuid);
        q = storage_obj_list(c->storage, ST_INSTANCE, &all, &instances, NULL);
        if (q >= 0)
                q = storage_obj_list(c->storage, ST_INSTANCE_GROUP, &all, &groups, NULL);
        if (q < 0)
                return api_storage_error(resp, q, "ping");
        json_array_foreach(instances, i, it)
                json_array_append_new(out_inst, json_pack("{s:s,s:s,s:s,s:O*,s:I,s:s}", "node", json_get_string(it, "hostname", ""),
                                                          "node_type", json_get_string(it, "node_type", "execution"),
                                                          "uuid", json_get_string(it, "uuid", ""),
                                                          "heartbeat", json_object_get(it, "last_seen"),
                                                          "capacity", (json_int_t) scheduler_instance_capacity(it),
                                                          "version", json_get_string(it, "version", "")));
        json_array_foreach(groups, i, it) {
                _cleanup_free_ int64_t *ids = NULL;
                size_t n = 0;
                int64_t cap = 0;
                json_t *names = json_array();

                if (!names || storage_rel_list(c->storage, SR_INSTANCE_GROUP_INSTANCES, json_get_int(it, "id", 0), false, &ids, &n) < 0) {
                        json_decref(names);
                        continue;
                }
                for (size_t j = 0; j < n; j++) {
                        _cleanup_json_ json_t *inst = NULL;
                        if (storage_obj_get(c->storage, ST_INSTANCE, ids[j], &inst) < 0)
                                continue;
                        cap += scheduler_instance_capacity(inst);
                        json_array_append_new(names, json_string(json_get_string(inst, "hostname", "")));
                }
                json_array_append_new(out_groups, json_pack("{s:s,s:I,s:o}", "name", json_get_string(it, "name", ""),
                                                            "capacity", (json_int_t) cap, "instances", names));
        }
        return http_respond(resp, 200, json_pack("{s:b,s:s,s:s,s:s,s:O,s:O}", "ha", 0, "version", API_AWX_VERSION,
                                                 "active_node", host, "install_uuid", uuid, "instances", out_inst,
                                                 "instance_groups", out_groups));
}

static int name_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int api_config(controller *c, http_request *req, http_response *resp) {
        _cleanup_strv_free_ char **paths = NULL;
        json_t *list = json_array(), *out;
        DIR *d;

        if (!list)
                return -ENOMEM;
        d = opendir(c->config->projects_root);
        if (d) {
                struct dirent *de;
                while ((de = readdir(d)))
                        if (de->d_name[0] != '.' && de->d_type == DT_DIR && strv_length(paths) < 10000)
                                strv_extend(&paths, de->d_name);
                closedir(d);
        }
        if (paths)
                qsort(paths, strv_length(paths), sizeof(char *), name_cmp);
        for (size_t i = 0; paths && paths[i]; i++)
                json_array_append_new(list, json_string(paths[i]));
        out = json_pack("{s:s,s:s,s:{s:s,s:b,s:b,s:s,s:s},s:s,s:s,s:{},s:[ssss],s:b,s:s,s:o,s:[],s:s}",
                        "time_zone", "UTC", "version", API_AWX_VERSION,
                        "license_info", "license_type", "open", "valid_key", 1, "compliant", 1, "product_name", "AWX",
                        "subscription_name", "drover",
                        "eula", "", "analytics_status", "off", "analytics_collectors",
                        "become_methods", "sudo", "su", "doas", "pbrun",
                        "ui_next", 0, "project_base_dir", c->config->projects_root,
                        "project_local_paths", list, "custom_virtualenvs", "drover_version", DROVER_VERSION);
        if (!out)
                return -ENOMEM;
        return http_respond(resp, 200, out);
}

int api_me(controller *c, http_request *req, http_response *resp) {
        _cleanup_json_ json_t *user = NULL;
        json_t *out;
        int q;

        q = storage_obj_get(c->storage, ST_USER, req->user_id, &user);
        if (q == -ENOENT)
                return http_respond_detail(resp, 401, "Authentication credentials were not provided.");
        if (q < 0)
                return api_storage_error(resp, q, "me");
        q = api_render(c, &api_res_user, user, &out);
        if (q < 0)
                return q;
        return http_respond(resp, 200, json_pack("{s:i,s:n,s:n,s:[o]}", "count", 1, "next", "previous", "results", out));
}

/* ---- users ---- */

int api_user_check(controller *c, const api_resource *r, json_t *doc, int64_t id, http_response *resp) {
        const char *pw = json_get_string(doc, "password", NULL);
        _cleanup_free_ char *hash = NULL;
        int q;

        if (pw && *pw && !streq(pw, "$encrypted$")) {
                q = crypto_password_hash(pw, &hash);
                if (q < 0)
                        return q;
                json_object_set_new(doc, "_password_hash", json_string(hash));
        }
        json_object_del(doc, "password");
        if (id == 0 && !json_object_get(doc, "_password_hash"))
                json_object_set_new(doc, "_password_hash", json_string(""));   /* no usable password */
        return 0;
}

/* ---- tokens ---- */

static int render_token(controller *c, const json_t *doc, const char *secret, json_t **ret) {
        json_t *out;
        int q;

        q = api_render(c, &api_res_token, doc, &out);
        if (q < 0)
                return q;
        json_object_set_new(out, "token", json_string(secret ? secret : "************"));
        json_object_set_new(out, "refresh_token", json_null());
        *ret = out;
        return 0;
}

int api_token_create(controller *c, http_request *req, http_response *resp) {
        _cleanup_json_ json_t *body = NULL, *doc = NULL;
        _cleanup_free_ char *secret = NULL;
        const char *scope = "write";
        char now[32], expires[32], hash[65];
        json_t *v, *out;
        int64_t id;
        int q;

        if (http_request_json_object(req, resp, &body) < 0)
                return 0;
        v = json_object_get(body, "description");
        if (v && !json_is_null(v) && (!json_is_string(v) || json_string_length(v) > 512))
                return http_respond_field_error(resp, "description", "Not a valid string.");
        v = json_object_get(body, "scope");
        if (v && !json_is_null(v)) {
                if (!json_is_string(v) || (!streq(json_string_value(v), "read") && !streq(json_string_value(v), "write")))
                        return http_respond_field_error(resp, "scope", "Must be a simple space-separated string with allowed scopes ['read', 'write'].");
                scope = json_string_value(v);
        }
        q = crypto_random_token(30, &secret);
        if (q < 0)
                return q;
        crypto_sha256_hex(secret, strlen(secret), hash);
        api_now(now);
        format_iso8601(expires, now_realtime_usec() + TOKEN_LIFETIME_USEC);
        doc = json_pack("{s:s,s:I,s:n,s:s,s:s,s:s,s:s,s:s}", "description", json_get_string(body, "description", ""),
                        "user", (json_int_t) req->user_id, "application", "scope", scope, "expires", expires,
                        "created", now, "modified", now, "_token_hash", hash);
        if (!doc)
                return -ENOMEM;
        q = storage_obj_create(c->storage, ST_TOKEN, doc, &id);
        if (q < 0)
                return api_storage_error(resp, q, "tokens");
        json_object_set_new(doc, "id", json_integer(id));
        q = render_token(c, doc, secret, &out);
        if (q < 0)
                return q;
        return http_respond(resp, 201, out);
}

static int render_token_list(controller *c, void *userdata, const json_t *doc, json_t **ret) {
        return render_token(c, doc, NULL, ret);
}

static int list_tokens(controller *c, void *userdata, const storage_query *q, json_t **ret_results, int64_t *ret_count) {
        return storage_obj_list(c->storage, ST_TOKEN, q, ret_results, ret_count);
}

int api_token_list(controller *c, http_request *req, http_response *resp) {
        _cleanup_json_ json_t *uid = json_integer(req->user_id);
        storage_filter f = { .field = "user", .op = SF_EQ, .value = uid };
        api_list_spec spec = {
                .fields = api_res_token.fields, .list = list_tokens, .render = render_token_list,
                .extra = &f, .n_extra = req->is_superuser ? 0 : 1,
        };

        if (!uid)
                return -ENOMEM;
        return api_list(c, req, resp, &spec);
}

static int get_own_token(controller *c, http_request *req, http_response *resp, json_t **ret) {
        int q = storage_obj_get(c->storage, ST_TOKEN, req->ids[0], ret);
        if (q == -ENOENT || (q >= 0 && !req->is_superuser && json_get_int(*ret, "user", 0) != req->user_id)) {
                api_not_found(resp);
                return 1;
        }
        if (q < 0) {
                api_storage_error(resp, q, "tokens");
                return 1;
        }
        return 0;
}

int api_token_get(controller *c, http_request *req, http_response *resp) {
        _cleanup_json_ json_t *doc = NULL;
        json_t *out;
        int q;

        if (get_own_token(c, req, resp, &doc))
                return 0;
        q = render_token(c, doc, NULL, &out);
        if (q < 0)
                return q;
        return http_respond(resp, 200, out);
}

int api_token_delete(controller *c, http_request *req, http_response *resp) {
        _cleanup_json_ json_t *doc = NULL;
        int q;

        if (get_own_token(c, req, resp, &doc))
                return 0;
        q = storage_obj_delete(c->storage, ST_TOKEN, req->ids[0]);
        if (q < 0 && q != -ENOENT)
                return api_storage_error(resp, q, "tokens");
        resp->status = 204;
        return 0;
}

/* ---- instances and instance groups ---- */

static int64_t count_jobs(controller *c, const char *field, int64_t id) {
        _cleanup_json_ json_t *idv = json_integer(id), *st = json_pack("[ss]", "waiting", "running");
        storage_filter f[2] = {
                { .field = field, .op = SF_EQ, .value = idv },
                { .field = "status", .op = SF_IN, .value = st },
        };
        storage_query q = { .filters = f, .n_filters = 2, .limit = 1 };
        _cleanup_json_ json_t *res = NULL;
        int64_t n = 0;

        if (!idv || !st || storage_obj_list(c->storage, ST_JOB, &q, &res, &n) < 0)
                return 0;
        return n;
}

static int64_t count_all_jobs(controller *c, const char *field, int64_t id) {
        _cleanup_json_ json_t *idv = json_integer(id), *res = NULL;
        storage_filter f = { .field = field, .op = SF_EQ, .value = idv };
        storage_query q = { .filters = &f, .n_filters = 1, .limit = 1 };
        int64_t n = 0;

        if (!idv || storage_obj_list(c->storage, ST_JOB, &q, &res, &n) < 0)
                return 0;
        return n;
}

static void set_capacity(json_t *out, int64_t cap, int64_t consumed) {
        json_object_set_new(out, "capacity", json_integer(cap));
        json_object_set_new(out, "consumed_capacity", json_integer(consumed));
        json_object_set_new(out, "percent_capacity_remaining",
                            json_real(cap > 0 ? (double) (int64_t) ((double) (cap - consumed) * 10000.0 / (double) cap) / 100.0 : 0.0));
}

int api_render_instance(controller *c, const api_resource *r, const json_t *doc, json_t *out) {
        int64_t id = json_get_int(doc, "id", 0);

        set_capacity(out, scheduler_instance_capacity(doc), scheduler_consumed_capacity(c, id));
        json_object_set_new(out, "jobs_running", json_integer(count_jobs(c, "_instance", id)));
        json_object_set_new(out, "jobs_total", json_integer(count_all_jobs(c, "_instance", id)));
        return 0;
}

int api_render_instance_group(controller *c, const api_resource *r, const json_t *doc, json_t *out) {
        _cleanup_free_ int64_t *ids = NULL;
        int64_t id = json_get_int(doc, "id", 0), cap = 0, consumed = 0;
        size_t n = 0;

        if (storage_rel_list(c->storage, SR_INSTANCE_GROUP_INSTANCES, id, false, &ids, &n) < 0)
                n = 0;
        for (size_t i = 0; i < n; i++) {
                _cleanup_json_ json_t *inst = NULL;
                if (storage_obj_get(c->storage, ST_INSTANCE, ids[i], &inst) < 0)
                        continue;
                cap += scheduler_instance_capacity(inst);
                consumed += scheduler_consumed_capacity(c, ids[i]);
        }
        set_capacity(out, cap, consumed);
        json_object_set_new(out, "instances", json_integer((json_int_t) n));
        json_object_set_new(out, "jobs_running", json_integer(count_jobs(c, "instance_group", id)));
        json_object_set_new(out, "jobs_total", json_integer(count_all_jobs(c, "instance_group", id)));
        return 0;
}

/* ---- bootstrap ---- */

static int seed(controller *c, const api_resource *r, json_t *fields, int64_t *ret_id) {
        _cleanup_json_ json_t *doc = api_defaults(r->fields);
        char now[32];

        if (!doc)
                return -ENOMEM;
        json_object_update(doc, fields);
        api_now(now);
        json_object_set_new(doc, "created", json_string(now));
        json_object_set_new(doc, "modified", json_string(now));
        return storage_obj_create(c->storage, r->type, doc, ret_id);
}

static int bootstrap_admin(controller *c) {
        _cleanup_json_ json_t *user = NULL, *fields = NULL;
        _cleanup_free_ char *generated = NULL, *hash = NULL, *path = NULL;
        const char *name = c->config->admin_user ? c->config->admin_user : "admin", *pw = c->config->admin_password;
        int64_t id;
        int q;

        q = storage_obj_find(c->storage, ST_USER, "username", name, &user);
        if (q >= 0)
                return 0;
        if (q != -ENOENT)
                return log_error_errno(q, "Failed to look up user %s: %m", name);
        if (isempty(pw)) {
                q = crypto_random_token(18, &generated);
                if (q < 0)
                        return log_error_errno(q, "Failed to generate the admin password: %m");
                path = strjoin(c->config->state_dir, "/admin-password", NULL);
                if (!path)
                        return log_oom();
                q = mkdir_p(c->config->state_dir, 0700);
                if (q >= 0)
                        q = write_file_atomic(path, generated, strlen(generated), 0600);
                if (q < 0)
                        return log_error_errno(q, "Failed to write %s: %m", path);
                fprintf(stderr, "drover-controller: generated admin password written to %s\n", path);
                pw = generated;
        }
        q = crypto_password_hash(pw, &hash);
        if (q < 0)
                return log_error_errno(q, "Failed to hash the admin password: %m");
        fields = json_pack("{s:s,s:s,s:b,s:s}", "username", name, "email", strempty(c->config->admin_email),
                           "is_superuser", 1, "_password_hash", hash);
        if (!fields)
                return log_oom();
        q = seed(c, &api_res_user, fields, &id);
        if (q < 0)
                return log_error_errno(q, "Failed to create the admin user: %m");
        log_info("Created the admin user \"%s\".", name);
        return 0;
}

int api_bootstrap(controller *c) {
        _cleanup_json_ json_t *orgs = NULL, *ig = NULL, *fields = NULL;
        _cleanup_free_ char *uuid_path = install_uuid_path(c);
        storage_query one = { .limit = 1 };
        char uuid[37];
        int64_t n = 0, id;
        int q;

        if (!uuid_path)
                return log_oom();
        if (read_install_uuid(c, uuid) < 0) {
                uuid_string(uuid);
                q = mkdir_p(c->config->state_dir, 0700);
                if (q >= 0)
                        q = write_file_atomic(uuid_path, uuid, strlen(uuid), 0644);
                if (q < 0)
                        return log_error_errno(q, "Failed to write %s: %m", uuid_path);
        }

        q = storage_obj_list(c->storage, ST_ORGANIZATION, &one, &orgs, &n);
        if (q < 0)
                return log_error_errno(q, "Failed to list organizations: %m");
        if (n == 0) {
                fields = json_pack("{s:s}", "name", "Default");
                if (!fields)
                        return log_oom();
                q = seed(c, &api_res_organization, fields, &id);
                if (q < 0)
                        return log_error_errno(q, "Failed to create the Default organization: %m");
                json_decref(TAKE_PTR(fields));
        }

        q = storage_obj_find(c->storage, ST_INSTANCE_GROUP, "name", "default", &ig);
        if (q == -ENOENT) {
                fields = json_pack("{s:s,s:i,s:i,s:[],s:b}", "name", "default", "policy_instance_percentage", 100,
                                   "policy_instance_minimum", 0, "policy_instance_list", "is_container_group", 0);
                if (!fields)
                        return log_oom();
                q = seed(c, &api_res_instance_group, fields, &id);
        }
        if (q < 0)
                return log_error_errno(q, "Failed to create the default instance group: %m");

        q = api_credential_bootstrap(c);
        if (q < 0)
                return q;
        q = api_ee_bootstrap(c);
        if (q < 0)
                return q;
        return bootstrap_admin(c);
}
