/* api-resources.c: the AWX resources drover serves, as field tables (name, JSON type, default,
 * flags) with AWX's defaults, plus the resource-specific checks (manual projects under
 * projects_root, playbooks inside their project). */
#include <inttypes.h>
#include <limits.h>
#include <sys/stat.h>

#include "api.h"
#include "drover/log.h"
#include "drover/util.h"

#define RO AFF_READONLY
#define REQ AFF_REQUIRED
#define NUL AFF_NULLABLE
#define FK(n, t, fl) { n, AF_FK, (fl) | NUL, NULL, 0, t }
#define NOFK(n) { n, AF_FK, NUL, NULL, 0, _ST_INVALID }     /* resources drover lacks: only null */
#define INT(n, def, lo, hi) { n, AF_INT, 0, def, .min = lo, .max = hi }
#define BIG INT64_C(2147483647)

static const char *const manual_kinds[] = { "", NULL };
static const char *const job_types[] = { "run", "check", NULL };
static const char *const scm_types[] = { "", "git", "hg", "svn", "insights", "archive", NULL };
static const char *const webhook_services[] = { "", "github", "gitlab", NULL };

static const api_field organization_fields[] = {
        { "name", AF_STRING, REQ, NULL, 512 },
        { "description", AF_STRING },
        INT("max_hosts", NULL, 0, BIG),
        { "custom_virtualenv", AF_STRING, NUL | RO, "null" },
        FK("default_environment", ST_EXECUTION_ENVIRONMENT, 0),
        {}
};

static const api_field user_fields[] = {
        { "username", AF_STRING, REQ, NULL, 150 },
        { "first_name", AF_STRING, 0, NULL, 150 },
        { "last_name", AF_STRING, 0, NULL, 150 },
        { "email", AF_STRING, 0, NULL, 254 },
        { "is_superuser", AF_BOOL },
        { "is_system_auditor", AF_BOOL },
        { "password", AF_STRING, AFF_WRITEONLY, NULL, 1024 },
        { "ldap_dn", AF_STRING, RO },
        { "last_login", AF_DATETIME, RO },
        { "external_account", AF_JSON, RO, "null" },
        { "auth", AF_JSON, RO, "[]" },
        {}
};

static const api_field token_fields[] = {
        { "description", AF_STRING },
        FK("user", ST_USER, RO),
        { "application", AF_JSON, RO, "null" },
        { "scope", AF_STRING, RO, "\"write\"" },
        { "expires", AF_DATETIME, RO },
        {}
};

static const api_field inventory_fields[] = {
        { "name", AF_STRING, REQ, NULL, 512 },
        { "description", AF_STRING },
        FK("organization", ST_ORGANIZATION, REQ),
        { "kind", AF_STRING, 0, NULL, 32, 0, manual_kinds },
        { "host_filter", AF_STRING, NUL, "null", 4096 },
        { "variables", AF_JSON_STRING },
        { "prevent_instance_group_fallback", AF_BOOL },
        { "pending_deletion", AF_BOOL, RO },
        {}
};

static const api_field host_fields[] = {
        { "name", AF_STRING, REQ, NULL, 512 },
        { "description", AF_STRING },
        FK("inventory", ST_INVENTORY, REQ),
        { "enabled", AF_BOOL, 0, "true" },
        { "instance_id", AF_STRING, 0, NULL, 1024 },
        { "variables", AF_JSON_STRING },
        { "last_job", AF_JSON, RO, "null" },
        {}
};

static const api_field group_fields[] = {
        { "name", AF_STRING, REQ, NULL, 512 },
        { "description", AF_STRING },
        FK("inventory", ST_INVENTORY, REQ),
        { "variables", AF_JSON_STRING },
        {}
};

static const api_field project_fields[] = {
        { "name", AF_STRING, REQ, NULL, 512 },
        { "description", AF_STRING },
        FK("organization", ST_ORGANIZATION, 0),
        { "scm_type", AF_STRING, 0, NULL, 8, 0, scm_types },
        { "scm_url", AF_STRING, 0, NULL, 1024 },
        { "scm_branch", AF_STRING, 0, NULL, 256 },
        { "scm_refspec", AF_STRING, 0, NULL, 1024 },
        { "scm_clean", AF_BOOL },
        { "scm_delete_on_update", AF_BOOL },
        { "scm_track_submodules", AF_BOOL },
        { "scm_update_on_launch", AF_BOOL },
        INT("scm_update_cache_timeout", NULL, 0, BIG),
        { "allow_override", AF_BOOL },
        INT("timeout", NULL, -BIG, BIG),
        FK("default_environment", ST_EXECUTION_ENVIRONMENT, 0),
        NOFK("credential"),
        NOFK("signature_validation_credential"),
        { "local_path", AF_STRING, 0, NULL, 1024 },
        { "status", AF_STRING, RO, "\"ok\"" },
        { "scm_revision", AF_STRING, RO },
        { "last_job_run", AF_DATETIME, RO },
        { "last_job_failed", AF_BOOL, RO },
        { "last_updated", AF_DATETIME, RO },
        { "custom_virtualenv", AF_STRING, NUL | RO, "null" },
        {}
};

#define ASK(n) { "ask_" n "_on_launch", AF_BOOL }
static const api_field job_template_fields[] = {
        { "name", AF_STRING, REQ, NULL, 512 },
        { "description", AF_STRING },
        { "job_type", AF_STRING, 0, "\"run\"", 64, 0, job_types },
        FK("inventory", ST_INVENTORY, 0),
        FK("project", ST_PROJECT, 0),
        { "playbook", AF_STRING, 0, NULL, 1024 },
        { "scm_branch", AF_STRING, 0, NULL, 1024 },
        INT("forks", NULL, 0, 10000),
        { "limit", AF_STRING, 0, NULL, 1024 * 1024 },
        INT("verbosity", NULL, 0, 5),
        { "extra_vars", AF_JSON_STRING },
        { "job_tags", AF_STRING, 0, NULL, 1024 * 1024 },
        { "skip_tags", AF_STRING, 0, NULL, 1024 * 1024 },
        { "start_at_task", AF_STRING, 0, NULL, 1024 * 1024 },
        INT("timeout", NULL, -BIG, BIG),
        { "use_fact_cache", AF_BOOL },
        FK("organization", ST_ORGANIZATION, 0),
        FK("execution_environment", ST_EXECUTION_ENVIRONMENT, 0),
        { "host_config_key", AF_STRING, 0, NULL, 1024 },
        ASK("scm_branch"), ASK("diff_mode"), ASK("variables"), ASK("limit"), ASK("tags"), ASK("skip_tags"),
        ASK("job_type"), ASK("verbosity"), ASK("inventory"), ASK("credential"), ASK("execution_environment"),
        ASK("labels"), ASK("forks"), ASK("job_slice_count"), ASK("timeout"), ASK("instance_groups"),
        { "survey_enabled", AF_BOOL },
        { "become_enabled", AF_BOOL },
        { "diff_mode", AF_BOOL },
        { "allow_simultaneous", AF_BOOL },
        INT("job_slice_count", "1", 0, 1000),
        { "webhook_service", AF_STRING, 0, NULL, 16, 0, webhook_services },
        NOFK("webhook_credential"),
        { "force_handlers", AF_BOOL },
        { "prevent_instance_group_fallback", AF_BOOL },
        { "custom_virtualenv", AF_STRING, NUL | RO, "null" },
        { "status", AF_STRING, RO, "\"never updated\"" },
        { "last_job_run", AF_DATETIME, RO },
        { "last_job_failed", AF_BOOL, RO },
        {}
};

/* Jobs are written by launch and the agent protocol only: every field is read-only here. */
static const api_field job_fields[] = {
        { "name", AF_STRING, RO },
        { "description", AF_STRING, RO },
        { "job_type", AF_STRING, RO, "\"run\"" },
        FK("inventory", ST_INVENTORY, RO),
        FK("project", ST_PROJECT, RO),
        { "playbook", AF_STRING, RO },
        { "scm_branch", AF_STRING, RO },
        { "forks", AF_INT, RO },
        { "limit", AF_STRING, RO },
        { "verbosity", AF_INT, RO },
        { "extra_vars", AF_JSON_STRING, RO, "\"{}\"" },
        { "job_tags", AF_STRING, RO },
        { "skip_tags", AF_STRING, RO },
        { "force_handlers", AF_BOOL, RO },
        { "start_at_task", AF_STRING, RO },
        { "timeout", AF_INT, RO },
        { "use_fact_cache", AF_BOOL, RO },
        FK("organization", ST_ORGANIZATION, RO),
        { "diff_mode", AF_BOOL, RO },
        FK("execution_environment", ST_EXECUTION_ENVIRONMENT, RO),
        FK("job_template", ST_JOB_TEMPLATE, RO),
        FK("unified_job_template", ST_JOB_TEMPLATE, RO),
        { "launch_type", AF_STRING, RO, "\"manual\"" },
        { "status", AF_STRING, RO, "\"pending\"" },
        { "failed", AF_BOOL, RO },
        { "started", AF_DATETIME, RO },
        { "finished", AF_DATETIME, RO },
        { "canceled_on", AF_DATETIME, RO },
        { "elapsed", AF_FLOAT, RO },
        { "job_args", AF_STRING, RO },
        { "job_cwd", AF_STRING, RO },
        { "job_env", AF_JSON, RO },
        { "job_explanation", AF_STRING, RO },
        { "execution_node", AF_STRING, RO },
        { "controller_node", AF_STRING, RO },
        { "result_traceback", AF_STRING, RO },
        { "event_processing_finished", AF_BOOL, RO },
        { "artifacts", AF_JSON, RO },
        { "scm_revision", AF_STRING, RO },
        FK("instance_group", ST_INSTANCE_GROUP, RO),
        { "passwords_needed_to_start", AF_JSON, RO, "[]" },
        { "launched_by", AF_JSON, RO },
        { "allow_simultaneous", AF_BOOL, RO },
        { "job_slice_number", AF_INT, RO },
        { "job_slice_count", AF_INT, RO, "1" },
        { "webhook_service", AF_STRING, RO },
        { "webhook_credential", AF_FK, RO | NUL, NULL, 0, _ST_INVALID },
        { "webhook_guid", AF_STRING, RO },
        { "host_status_counts", AF_JSON, RO, "null" },
        {}
};

static const api_field instance_fields[] = {
        { "hostname", AF_STRING, RO },
        { "uuid", AF_STRING, RO },
        { "node_type", AF_STRING, RO, "\"execution\"" },
        { "node_state", AF_STRING, RO, "\"ready\"" },
        { "enabled", AF_BOOL, 0, "true" },
        { "managed_by_policy", AF_BOOL, 0, "true" },
        { "capacity_adjustment", AF_DECIMAL, 0, "\"1.00\"" },
        { "capacity", AF_INT, RO },
        { "consumed_capacity", AF_INT, RO },
        { "percent_capacity_remaining", AF_FLOAT, RO },
        { "jobs_running", AF_INT, RO },
        { "jobs_total", AF_INT, RO },
        { "cpu", AF_JSON, RO, "0" },
        { "memory", AF_INT, RO },
        { "cpu_capacity", AF_INT, RO },
        { "mem_capacity", AF_INT, RO },
        { "version", AF_STRING, RO },
        { "last_seen", AF_DATETIME, RO },
        { "last_health_check", AF_DATETIME, RO },
        { "errors", AF_STRING, RO },
        { "ip_address", AF_STRING, RO },
        { "listener_port", AF_JSON, RO, "null" },
        { "runtimes", AF_JSON, RO, "[]" },
        {}
};

static const api_field instance_group_fields[] = {
        { "name", AF_STRING, REQ, NULL, 250 },
        { "capacity", AF_INT, RO },
        { "consumed_capacity", AF_INT, RO },
        { "percent_capacity_remaining", AF_FLOAT, RO },
        { "jobs_running", AF_INT, RO },
        { "jobs_total", AF_INT, RO },
        { "instances", AF_INT, RO },
        { "is_container_group", AF_BOOL },
        NOFK("credential"),
        INT("policy_instance_percentage", NULL, 0, 100),
        INT("policy_instance_minimum", NULL, 0, BIG),
        { "policy_instance_list", AF_JSON, 0, "[]" },
        { "pod_spec_override", AF_STRING, 0, NULL, 64 * 1024 },
        INT("max_concurrent_jobs", NULL, 0, BIG),
        INT("max_forks", NULL, 0, BIG),
        {}
};

#define RELATED(...) (const char *const[]) { __VA_ARGS__, NULL }

const api_resource api_res_organization = {
        ST_ORGANIZATION, "organizations", "organization", "Organization", organization_fields, "name", NULL,
        RELATED("inventories", "projects", "job_templates", "instance_groups", "credentials", "execution_environments"),
};
const api_resource api_res_user = {
        ST_USER, "users", "user", "User", user_fields, "username", NULL, NULL,
        .check = api_user_check,
};
const api_resource api_res_token = {
        ST_TOKEN, "tokens", "o_auth2_access_token", "Token", token_fields, NULL, NULL, NULL,
};
const api_resource api_res_inventory = {
        ST_INVENTORY, "inventories", "inventory", "Inventory", inventory_fields, "name", "organization",
        RELATED("hosts", "groups", "instance_groups", "script"),
};
const api_resource api_res_host = {
        ST_HOST, "hosts", "host", "Host", host_fields, "name", "inventory", RELATED("groups"),
};
const api_resource api_res_group = {
        ST_GROUP, "groups", "group", "Group", group_fields, "name", "inventory", RELATED("hosts", "children"),
};
const api_resource api_res_project = {
        ST_PROJECT, "projects", "project", "Project", project_fields, "name", "organization", NULL,
        .check = api_check_project,
};
const api_resource api_res_job_template = {
        ST_JOB_TEMPLATE, "job_templates", "job_template", "Job Template", job_template_fields, "name", "organization",
        RELATED("launch", "jobs", "instance_groups", "credentials", "labels"),
        .check = api_check_job_template,
};
const api_resource api_res_job = {
        ST_JOB, "jobs", "job", "Job", job_fields, NULL, NULL,
        RELATED("cancel", "stdout", "job_events", "job_host_summaries", "relaunch", "stream"),
        .render = api_render_job, .before_delete = api_job_before_delete,
};
const api_resource api_res_instance = {
        ST_INSTANCE, "instances", "instance", "Instance", instance_fields, "hostname", NULL, RELATED("instance_groups"),
        .render = api_render_instance, .schedule = true,
};
const api_resource api_res_instance_group = {
        ST_INSTANCE_GROUP, "instance_groups", "instance_group", "Instance Group", instance_group_fields, "name", NULL,
        RELATED("instances"),
        .render = api_render_instance_group, .schedule = true,
};

const api_resource *api_resource_of(storage_type t) {
        static const api_resource *const all[] = {
                &api_res_organization, &api_res_user, &api_res_token, &api_res_inventory, &api_res_host,
                &api_res_group, &api_res_project, &api_res_job_template, &api_res_job, &api_res_instance,
                &api_res_instance_group, &api_res_credential_type, &api_res_credential,
                &api_res_execution_environment,
        };
        for (size_t i = 0; i < ELEMENTSOF(all); i++)
                if (all[i]->type == t)
                        return all[i];
        return NULL;
}

int64_t api_default_instance_group(controller *c) {
        _cleanup_json_ json_t *ig = NULL;

        if (storage_obj_find(c->storage, ST_INSTANCE_GROUP, "name", "default", &ig) < 0)
                return 0;
        return json_get_int(ig, "id", 0);
}

/* A single directory name: no '/', not "." or "..", no leading dot. */
static bool is_single_name(const char *s) {
        return !isempty(s) && !strchr(s, '/') && s[0] != '.' && strlen(s) < NAME_MAX;
}

int api_check_project(controller *c, const api_resource *r, json_t *doc, int64_t id, http_response *resp) {
        const char *scm_type = json_get_string(doc, "scm_type", ""), *lp = json_get_string(doc, "local_path", "");
        _cleanup_free_ char *path = NULL;
        struct stat st;

        if (!isempty(scm_type)) {
                http_respond_field_error(resp, "scm_type",
                                         "Source control type \"%s\" is not supported yet: only manual projects "
                                         "(scm_type \"\") with a local_path under the projects root.", scm_type);
                return 1;
        }
        if (isempty(lp)) {
                http_respond_field_error(resp, "local_path", "This field is required for manual projects.");
                return 1;
        }
        if (!is_single_name(lp)) {
                http_respond_field_error(resp, "local_path",
                                         "Invalid path choice. Give a single directory name under %s.",
                                         c->config->projects_root);
                return 1;
        }
        path = strjoin(c->config->projects_root, "/", lp, NULL);
        if (!path)
                return -ENOMEM;
        if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
                http_respond_field_error(resp, "local_path", "Invalid path choice. \"%s\" is not a directory in %s.",
                                         lp, c->config->projects_root);
                return 1;
        }
        json_object_set_new(doc, "status", json_string("ok"));
        return 0;
}

/* A relative path inside the project: no absolute path, no ".." component. */
static bool playbook_path_ok(const char *p) {
        const char *s = p;

        if (isempty(p) || p[0] == '/' || strlen(p) >= PATH_MAX / 2)
                return false;
        while (*s) {
                size_t n = strcspn(s, "/");
                if (n == 2 && s[0] == '.' && s[1] == '.')
                        return false;
                s += n;
                s += strspn(s, "/");
        }
        return true;
}

int api_check_job_template(controller *c, const api_resource *r, json_t *doc, int64_t id, http_response *resp) {
        _cleanup_json_ json_t *project = NULL;
        _cleanup_free_ char *dir = NULL, *path = NULL, *real_dir = NULL, *real_path = NULL;
        const char *playbook = json_get_string(doc, "playbook", "");
        json_t *pid = json_object_get(doc, "project");
        struct stat st;

        if (!json_is_integer(pid)) {
                http_respond_field_error(resp, "project", "Job Templates must have a project assigned.");
                return 1;
        }
        if (isempty(playbook)) {
                http_respond_field_error(resp, "playbook", "This field is required.");
                return 1;
        }
        if (storage_obj_get(c->storage, ST_PROJECT, json_integer_value(pid), &project) < 0) {
                http_respond_field_error(resp, "project", "Invalid pk \"%" PRIi64 "\" - object does not exist.",
                                         (int64_t) json_integer_value(pid));
                return 1;
        }
        dir = strjoin(c->config->projects_root, "/", json_get_string(project, "local_path", ""), NULL);
        path = strjoin(dir ? dir : "", "/", playbook, NULL);
        if (!dir || !path)
                return -ENOMEM;
        real_dir = realpath(dir, NULL);
        real_path = playbook_path_ok(playbook) ? realpath(path, NULL) : NULL;
        if (!real_dir || !real_path || !startswith(real_path, real_dir) || real_path[strlen(real_dir)] != '/' ||
            stat(real_path, &st) < 0 || !S_ISREG(st.st_mode)) {
                http_respond_field_error(resp, "playbook", "Playbook not found for project.");
                return 1;
        }
        if (json_is_null(json_object_get(doc, "organization")) || !json_object_get(doc, "organization"))
                json_object_set(doc, "organization", json_object_get(project, "organization") ?: json_null());
        return 0;
}
