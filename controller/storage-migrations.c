/* storage-migrations.c: the SQLite schema of drover-controller as an ordered list of migrations.
 * Migration N is applied (all its statements in one transaction) when a database's schema_version
 * is below N. Never edit a released migration: add a new one.
 *
 * Objects live in one table per storage type, obj_<awx endpoint name> (id, doc JSON text), with
 * expression indexes on the fields the API looks objects up by. The index expressions must be
 * written exactly as storage-sqlite.c writes filter expressions (json_extract(doc, '$.<field>'))
 * for SQLite to use them. */
#include "storage-migrations.h"

#define OBJ_TABLE(t) "CREATE TABLE obj_" t " (id INTEGER PRIMARY KEY AUTOINCREMENT, doc TEXT NOT NULL)"
#define OBJ_INDEX(t, f) "CREATE INDEX obj_" t "__" f " ON obj_" t " (json_extract(doc, '$." f "'))"

static const char *const migration_1[] = {
        OBJ_TABLE("organizations"),
        OBJ_INDEX("organizations", "name"),

        OBJ_TABLE("users"),
        OBJ_INDEX("users", "username"),

        OBJ_TABLE("tokens"),
        OBJ_INDEX("tokens", "_token_hash"),
        OBJ_INDEX("tokens", "user"),

        OBJ_TABLE("inventories"),
        OBJ_INDEX("inventories", "name"),
        OBJ_INDEX("inventories", "organization"),

        OBJ_TABLE("hosts"),
        OBJ_INDEX("hosts", "name"),
        OBJ_INDEX("hosts", "inventory"),

        OBJ_TABLE("groups"),
        OBJ_INDEX("groups", "name"),
        OBJ_INDEX("groups", "inventory"),

        OBJ_TABLE("projects"),
        OBJ_INDEX("projects", "name"),
        OBJ_INDEX("projects", "organization"),

        OBJ_TABLE("job_templates"),
        OBJ_INDEX("job_templates", "name"),
        OBJ_INDEX("job_templates", "organization"),

        OBJ_TABLE("jobs"),
        OBJ_INDEX("jobs", "name"),
        OBJ_INDEX("jobs", "status"),
        OBJ_INDEX("jobs", "job_template"),
        OBJ_INDEX("jobs", "organization"),

        OBJ_TABLE("instances"),
        OBJ_INDEX("instances", "hostname"),
        OBJ_INDEX("instances", "_secret_hash"),

        OBJ_TABLE("instance_groups"),
        OBJ_INDEX("instance_groups", "name"),

        OBJ_TABLE("enrollment_tokens"),
        OBJ_INDEX("enrollment_tokens", "name"),
        OBJ_INDEX("enrollment_tokens", "_token_hash"),

        /* many-to-many relations; kind = enum storage_rel */
        "CREATE TABLE rel (kind INTEGER NOT NULL, a INTEGER NOT NULL, b INTEGER NOT NULL, "
        "PRIMARY KEY (kind, a, b)) WITHOUT ROWID",
        "CREATE INDEX rel_kind_b ON rel (kind, b)",

        /* job events: one row per (job, counter); doc is the event as uploaded (compact JSON) */
        "CREATE TABLE job_events (job INTEGER NOT NULL, counter INTEGER NOT NULL, attempt INTEGER, "
        "event TEXT, uuid TEXT, parent_uuid TEXT, host_name TEXT, task TEXT, play TEXT, "
        "failed INTEGER NOT NULL DEFAULT 0, changed INTEGER NOT NULL DEFAULT 0, created TEXT, "
        "doc TEXT NOT NULL, PRIMARY KEY (job, counter)) WITHOUT ROWID",
        /* per job: the highest N such that counters 1..N are all stored */
        "CREATE TABLE job_event_ack (job INTEGER PRIMARY KEY, acked INTEGER NOT NULL)",
        NULL,
};

/* credential types, credentials and execution environments (issue 5) */
static const char *const migration_2[] = {
        OBJ_TABLE("credential_types"),
        OBJ_INDEX("credential_types", "name"),

        OBJ_TABLE("credentials"),
        OBJ_INDEX("credentials", "name"),
        OBJ_INDEX("credentials", "organization"),
        OBJ_INDEX("credentials", "credential_type"),

        OBJ_TABLE("execution_environments"),
        OBJ_INDEX("execution_environments", "name"),
        OBJ_INDEX("execution_environments", "organization"),
        NULL,
};

const storage_migration storage_migrations[] = {
        { 1, migration_1 },
        { 2, migration_2 },
};

const size_t storage_migrations_count = sizeof(storage_migrations) / sizeof(storage_migrations[0]);
