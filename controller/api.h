/* api.h: internal interfaces of the AWX API handlers (api-*.c): the per-resource field tables,
 * the generic object plumbing (validation, defaults, output, lists with filters and pagination)
 * and the helpers shared by the resource-specific handlers. Not used outside api-*.c and tests. */
#pragma once

#include <jansson.h>
#include "drover/json-util.h"
#include "drover/crypto.h"

#include "controller.h"
#include "http.h"
#include "storage.h"

#define API_PREFIX "/api/v2/"
#define API_AWX_VERSION "21.14.0"
#define API_PAGE_SIZE_DEFAULT 25
#define API_PAGE_SIZE_MAX 200
#define API_MAX_FILTERS 32               /* query-string filters per request */
#define API_MAX_FILTER_VALUES 1000        /* entries of one __in list */

typedef enum api_ftype {
        AF_STRING,
        AF_INT,
        AF_BOOL,
        AF_FLOAT,        /* read-only numbers (elapsed) */
        AF_JSON_STRING,  /* a JSON or YAML mapping kept as text (extra_vars, variables) */
        AF_JSON,         /* any JSON value (job_env, artifacts, policy_instance_list) */
        AF_FK,           /* an integer id of another object, or null */
        AF_DATETIME,     /* ISO-8601 string or null, read-only */
        AF_DECIMAL,      /* a number kept as "%.2f" text, as AWX's DecimalField shows it */
} api_ftype;

enum {
        AFF_REQUIRED  = 1 << 0,
        AFF_READONLY  = 1 << 1,
        AFF_NULLABLE  = 1 << 2,
        AFF_WRITEONLY = 1 << 3,  /* accepted, never stored as is nor shown (password) */
};

typedef struct api_field {
        const char *name;
        api_ftype type;
        unsigned flags;
        const char *def;          /* JSON text of the default; NULL: "" / 0 / false / null by type */
        unsigned max_length;      /* strings; 0: 1 MiB */
        storage_type fk;          /* AF_FK: target; _ST_INVALID: a resource drover lacks (only null) */
        const char *const *choices; /* AF_STRING: NULL-terminated allowed values */
        int64_t min, max;         /* AF_INT: allowed range when min < max */
} api_field;

typedef struct api_resource api_resource;
struct api_resource {
        storage_type type;
        const char *endpoint;       /* "job_templates" */
        const char *awx_type;       /* "job_template" */
        const char *label;          /* "Job Template" (messages) */
        const api_field *fields;    /* terminated by { .name = NULL } */
        const char *name_field;     /* "name", "username", "hostname" */
        const char *unique_scope;   /* NULL: name unique globally; else the fk field scoping it */
        const char *const *related; /* sub-endpoints listed under related */
        /* Extra checks and derived fields before a create/update is stored. `id` is 0 on create.
         * Returns 0, 1 when it filled resp with an error (nothing is stored), or < 0. */
        int (*check)(controller *c, const api_resource *r, json_t *doc, int64_t id, http_response *resp);
        /* Extra output (computed fields, summary_fields, related). */
        int (*render)(controller *c, const api_resource *r, const json_t *doc, json_t *out);
        /* Before delete (inside the transaction): 1 when it refused via resp. */
        int (*before_delete)(controller *c, const api_resource *r, const json_t *doc, http_response *resp);
        bool schedule;              /* changes matter to the scheduler: run it and notify afterwards */
};

extern const api_resource api_res_organization, api_res_user, api_res_token, api_res_inventory,
        api_res_host, api_res_group, api_res_project, api_res_job_template, api_res_job,
        api_res_instance, api_res_instance_group;
/* added by issue5-api */
extern const api_resource api_res_credential_type, api_res_credential, api_res_execution_environment;
const api_resource *api_resource_of(storage_type t);
const api_field *api_field_find(const api_field *fields, const char *name);

/* ---- api-common.c ---- */
/* The "now" timestamp as AWX prints it. */
char *api_now(char buf[static 32]);
/* A document holding every field's default (read-only ones included). */
json_t *api_defaults(const api_field *fields);
/* Render a stored document for output (strips '_' keys, adds id/type/url/related/summary_fields). */
int api_render(controller *c, const api_resource *r, const json_t *doc, json_t **ret);
/* Validate `body` against r's fields and merge into `doc` (defaults already there on create).
 * partial: PATCH (missing required fields are fine). Returns 0, 1 with resp filled, or < 0.
 * Name uniqueness is checked separately (api_check_unique), after r->check derived fields. */
int api_validate_into(controller *c, const api_resource *r, const json_t *body, json_t *doc, bool partial,
                      http_response *resp);
/* Name uniqueness (globally or within r->unique_scope). 0, 1 with resp filled, or < 0. */
int api_check_unique(controller *c, const api_resource *r, const json_t *doc, http_response *resp);
/* Convert one input value to the field's type (FKs checked); NULL with msg filled on a
 * validation error. */
json_t *api_convert_input(controller *c, const api_field *f, const json_t *v, char *msg, size_t msgsz);
/* Parse a JSON-or-YAML mapping text ("" -> {}). -EINVAL if it is not a mapping. */
int api_parse_vars(const char *text, json_t **ret);
/* JSON value of a YAML text (scalars typed as YAML 1.1 core: ints, floats, bools, null). */
int api_yaml_to_json(const char *text, json_t **ret);

/* A list query over something (objects, events) */
typedef int (*api_list_fn)(controller *c, void *userdata, const storage_query *q, json_t **ret_results,
                           int64_t *ret_count);
typedef int (*api_render_fn)(controller *c, void *userdata, const json_t *doc, json_t **ret);
typedef struct api_list_spec {
        const api_field *fields;     /* filterable fields ("id" always) */
        api_list_fn list;
        api_render_fn render;
        void *userdata;
        const storage_filter *extra; /* always applied (scoping), AND-ed */
        size_t n_extra;
        const char *default_order;
        const int64_t *only_ids;     /* when set: only these ids (sorted ascending), checked in memory */
        size_t n_only_ids;
} api_list_spec;
int api_list(controller *c, http_request *req, http_response *resp, const api_list_spec *spec);

/* Generic handlers for a resource. parent_field/parent_id: a sub-list scoped by a foreign key
 * (/inventories/7/hosts/ -> "inventory" = 7; POST forces it). */
int api_obj_list(controller *c, http_request *req, http_response *resp, const api_resource *r,
                 const storage_filter *extra, size_t n_extra);
int api_obj_list_ids(controller *c, http_request *req, http_response *resp, const api_resource *r,
                     const int64_t *ids, size_t n_ids);
int api_obj_get(controller *c, http_request *req, http_response *resp, const api_resource *r);
int api_obj_create(controller *c, http_request *req, http_response *resp, const api_resource *r,
                   const char *parent_field, int64_t parent_id, int64_t *ret_id);
int api_obj_update(controller *c, http_request *req, http_response *resp, const api_resource *r, bool partial);
int api_obj_delete(controller *c, http_request *req, http_response *resp, const api_resource *r);
/* Create from an already parsed body (used by association POSTs that create). */
int api_obj_create_body(controller *c, http_response *resp, const api_resource *r, json_t *body,
                        int64_t *ret_id);
/* 404 {"detail": "Not found."} */
int api_not_found(http_response *resp);
/* Log and answer 500 on a storage error (returns 0 with resp filled). */
int api_storage_error(http_response *resp, int r, const char *what);

/* ---- api-resources.c ---- */
int api_check_project(controller *c, const api_resource *r, json_t *doc, int64_t id, http_response *resp);
int api_check_job_template(controller *c, const api_resource *r, json_t *doc, int64_t id, http_response *resp);
int64_t api_default_instance_group(controller *c);

/* ---- api-jobs.c ---- */
int api_render_job(controller *c, const api_resource *r, const json_t *doc, json_t *out);
int api_job_before_delete(controller *c, const api_resource *r, const json_t *doc, http_response *resp);
int api_jt_launch_get(controller *c, http_request *req, http_response *resp);
int api_jt_launch_post(controller *c, http_request *req, http_response *resp);
int api_job_cancel_get(controller *c, http_request *req, http_response *resp);
int api_job_cancel_post(controller *c, http_request *req, http_response *resp);
int api_job_events(controller *c, http_request *req, http_response *resp);
int api_job_stdout(controller *c, http_request *req, http_response *resp);
int api_job_host_summaries(controller *c, http_request *req, http_response *resp);
int api_job_relaunch_post(controller *c, http_request *req, http_response *resp);
/* Shared by launch and relaunch: create a job from a template doc with the given overrides
 * (already filtered by ask_* flags) and answer 201. */

/* ---- api-misc.c ---- */
int api_root(controller *c, http_request *req, http_response *resp);
int api_ping(controller *c, http_request *req, http_response *resp);
int api_config(controller *c, http_request *req, http_response *resp);
int api_me(controller *c, http_request *req, http_response *resp);
int api_token_list(controller *c, http_request *req, http_response *resp);
int api_token_create(controller *c, http_request *req, http_response *resp);
int api_token_get(controller *c, http_request *req, http_response *resp);
int api_token_delete(controller *c, http_request *req, http_response *resp);
int api_inventory_script(controller *c, http_request *req, http_response *resp);
int api_user_check(controller *c, const api_resource *r, json_t *doc, int64_t id, http_response *resp);
int api_render_instance(controller *c, const api_resource *r, const json_t *doc, json_t *out);
int api_render_instance_group(controller *c, const api_resource *r, const json_t *doc, json_t *out);

/* ---- api-credential.c ---- */
/* Seed the managed credential types (AWX's names) that are missing. */
int api_credential_bootstrap(controller *c);
/* The AES-GCM key for secrets at rest (<state_dir>/secret.key, created 0600 if missing; cached). */
int api_credential_key(controller *c, crypto_key *ret);
/* One input of a credential document as plaintext (secrets decrypted; "" when unset). */
int api_credential_input(controller *c, const json_t *cred, const char *id, char **ret);

/* ---- api-ee.c ---- */
/* Seed the managed execution environments; re-apply their configured images at every start. */
int api_ee_bootstrap(controller *c);
/* At launch: set the job's execution_environment to the resolved EE id (or null) and mark it
 * resolved (_ee_resolved), so the job shows which EE runs it. A global default that names no
 * EE leaves the job unresolved (the scheduler then fails it with the explanation). */
int api_ee_resolve_at_launch(controller *c, json_t *job);

/* ---- api-relations.c: many-to-many association endpoints ---- */
typedef struct api_relation {
        const api_resource *parent, *child;
        storage_rel rel;
        bool reverse;           /* the parent is side b of the relation */
        bool create_child;      /* POST without "id" creates the child (same inventory) */
} api_relation;
int api_rel_list(controller *c, http_request *req, http_response *resp, const api_relation *rel);
int api_rel_post(controller *c, http_request *req, http_response *resp, const api_relation *rel);
