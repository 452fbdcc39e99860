/* storage-migrations.h: the versioned schema migrations of the SQLite storage backend
 * (storage-sqlite.c applies them; storage-migrations.c holds them). Private to storage. */
#pragma once

#include <stddef.h>

typedef struct storage_migration {
        int version;                    /* 1, 2, 3 ... in order */
        const char *const *statements;  /* NULL-terminated; applied in one transaction */
} storage_migration;

extern const storage_migration storage_migrations[];
extern const size_t storage_migrations_count;
