/* storage.h: the controller's storage interface. API code sees JSON objects, filters and a few
 * job/event/instance operations; nothing here names SQL. storage-sqlite.c implements it on
 * SQLite (WAL); a PostgreSQL backend implements the same vtable-free functions behind
 * storage_open()'s URL scheme ("sqlite:PATH" or a plain path today, "postgresql://..." later).
 *
 * Objects: every resource type (see storage_type) is a table of (id INTEGER, JSON document).
 * The document holds every field exactly as the API stored it (types preserved); storage adds
 * nothing to it except what the caller passes. `id` is assigned by storage, per type.
 * Thread safety: all functions may be called from any thread (a storage-wide lock serialises them;
 * storage_transaction() holds it across a whole transaction). */
#pragma once

#include <jansson.h>
#include <stdint.h>
#include "drover/macro.h"

typedef struct storage storage;

/* Resource types. Names are the AWX endpoint names; storage_type_to_string() gives them. */
typedef enum storage_type {
        ST_ORGANIZATION,
        ST_USER,
        ST_TOKEN,
        ST_INVENTORY,
        ST_HOST,
        ST_GROUP,
        ST_PROJECT,
        ST_JOB_TEMPLATE,
        ST_JOB,
        ST_INSTANCE,
        ST_INSTANCE_GROUP,
        ST_ENROLLMENT_TOKEN,
        ST_CREDENTIAL_TYPE,         /* added by issue5-api (credential types, credentials, EEs) */
        ST_CREDENTIAL,
        ST_EXECUTION_ENVIRONMENT,
        _ST_MAX,
        _ST_INVALID = -EINVAL,
} storage_type;
const char *storage_type_to_string(storage_type t);
storage_type storage_type_from_string(const char *s);

/* Many-to-many relations (a, b): group->hosts, group->children, instance_group->instances,
 * job_template->instance_groups, organization->instance_groups ... */
typedef enum storage_rel {
        SR_GROUP_HOSTS,             /* a = group id, b = host id */
        SR_GROUP_CHILDREN,          /* a = parent group id, b = child group id */
        SR_INSTANCE_GROUP_INSTANCES,/* a = instance group id, b = instance id */
        SR_JOB_TEMPLATE_INSTANCE_GROUPS,
        SR_ORGANIZATION_INSTANCE_GROUPS,
        SR_INVENTORY_INSTANCE_GROUPS,
        _SR_MAX,
} storage_rel;

typedef enum storage_filter_op {
        SF_EQ,          /* field = value (value null: field IS NULL) */
        SF_NE,
        SF_GT, SF_GTE, SF_LT, SF_LTE,
        SF_ICONTAINS,   /* case-insensitive substring, value is a string */
        SF_STARTSWITH,
        SF_IN,          /* value is a JSON array */
        SF_ISNULL,      /* value true/false */
} storage_filter_op;

typedef struct storage_filter {
        const char *field;      /* a top-level document field, [a-z0-9_]+ (checked: -EINVAL otherwise); "id" is the id */
        storage_filter_op op;
        json_t *value;          /* borrowed; typed as the field's JSON type (integer for ids!) */
        bool or_group;          /* filters with or_group set are OR-ed together; the group is AND-ed with the rest */
        bool negate;            /* not__ */
} storage_filter;

typedef struct storage_query {
        const storage_filter *filters;
        size_t n_filters;
        const char *order_by;   /* a field name, "-field" for descending; NULL = "id" */
        int64_t limit;          /* <= 0: no limit */
        int64_t offset;
} storage_query;

int storage_open(const char *url, storage **ret);
void storage_close(storage *s);
static inline void storage_closep(storage **s) { if (*s) storage_close(*s); }
#define _cleanup_storage_ _cleanup_(storage_closep)
/* Schema version after migrations (for ping/config and tests). */
int storage_schema_version(storage *s);

/* Run fn inside one transaction (BEGIN IMMEDIATE on SQLite). fn returning < 0 rolls back and that
 * value is returned; otherwise commit (a failing commit returns its error). Nested calls run
 * inside the outer transaction. */
int storage_transaction(storage *s, int (*fn)(storage *s, void *userdata), void *userdata);

/* Objects. `doc` is the whole document without "id" (an "id" key is ignored). */
int storage_obj_create(storage *s, storage_type t, json_t *doc, int64_t *ret_id);
/* -ENOENT if missing. *ret is a new reference with "id" added. */
int storage_obj_get(storage *s, storage_type t, int64_t id, json_t **ret);
/* Replace the whole document (-ENOENT if missing). */
int storage_obj_replace(storage *s, storage_type t, int64_t id, json_t *doc);
/* Merge `fields` into the stored document in place (json_object_update semantics). */
int storage_obj_patch(storage *s, storage_type t, int64_t id, json_t *fields);
int storage_obj_delete(storage *s, storage_type t, int64_t id);
/* *ret_results: new JSON array of documents (each with "id"); *ret_count: the total matching
 * the filters ignoring limit/offset (either ret may be NULL). -EINVAL for a bad field name. */
int storage_obj_list(storage *s, storage_type t, const storage_query *q, json_t **ret_results, int64_t *ret_count);
/* Convenience: the first object whose `field` equals string `value`; -ENOENT if none. */
int storage_obj_find(storage *s, storage_type t, const char *field, const char *value, json_t **ret);

/* Relations; adding an existing pair or removing a missing one is success. */
int storage_rel_add(storage *s, storage_rel r, int64_t a, int64_t b);
int storage_rel_remove(storage *s, storage_rel r, int64_t a, int64_t b);
/* All b for a given a (ret_b_ids: malloc'ed, sorted ascending), or with reverse=true all a for b. */
int storage_rel_list(storage *s, storage_rel r, int64_t id, bool reverse, int64_t **ret_ids, size_t *ret_n);
/* Remove every pair that mentions id on side a (reverse=false) or side b (reverse=true). */
int storage_rel_purge(storage *s, storage_rel r, int64_t id, bool reverse);

/* Job events. Each event is stored once per (job, counter); attempt is recorded with it.
 * Inserting a batch is one transaction; repeats are no-ops. *ret_acked: the highest N such that
 * counters 1..N are all stored for the job (0 if none). */
int storage_events_insert(storage *s, int64_t job_id, int64_t attempt, json_t *events, int64_t *ret_acked);
int storage_events_acked(storage *s, int64_t job_id, int64_t *ret_acked);
/* Events of a job ordered by counter, filtered by the same filter language. Filterable fields:
 * counter, event, uuid, parent_uuid, host_name, task, play, failed, changed, created. *ret_results
 * holds the stored event objects (as uploaded, plus "id" and "job"). */
int storage_events_list(storage *s, int64_t job_id, const storage_query *q, json_t **ret_results, int64_t *ret_count);
/* Delete all events of a job (job delete). */
int storage_events_delete(storage *s, int64_t job_id);

/* The failed/changed flags storage derives for an event (as AWX: runner_on_failed,
 * runner_item_on_failed, runner_on_unreachable, runner_on_async_failed, runner_on_error count as
 * failed unless event_data.ignore_errors; changed = event_data.res.changed; playbook_on_stats:
 * failed if any host has failures or dark, changed if any host changed). */
void storage_event_flags(const json_t *event, bool *ret_failed, bool *ret_changed);
