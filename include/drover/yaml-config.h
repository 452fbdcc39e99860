/* yaml-config.h: a small YAML document tree with source positions, for drover's config files.
 * Every value remembers its line and column so errors can name "file:line:col". Config loaders
 * walk the tree with the typed getters below; each getter that fails logs nothing but fills an
 * error message of the form "<file>:<line>:<col>: key 'x': expected a size, got 'abc'". */
#pragma once

#include <stdint.h>
#include "drover/macro.h"

typedef enum yaml_node_kind {
        YNODE_SCALAR,
        YNODE_MAPPING,
        YNODE_SEQUENCE,
        YNODE_NULL,      /* "~", "null" or empty */
} yaml_node_kind;

typedef struct ynode ynode;
struct ynode {
        yaml_node_kind kind;
        char *value;            /* scalars: the text; NULL otherwise */
        bool quoted;            /* scalar was quoted: never a number/bool/null */
        unsigned line, column;  /* 1-based */
        /* mappings: keys[i] -> children[i]; sequences: children[i] */
        char **keys;
        unsigned *key_lines, *key_columns;
        ynode **children;
        size_t n_children;
};

typedef struct yaml_doc {
        char *path;
        ynode *root;            /* NULL for an empty document */
        char error[512];        /* filled by any failing call below */
} yaml_doc;

/* Parse a file. On a syntax error returns -EINVAL with doc->error "<file>:<line>:<col>: <problem>"
 * (doc is still allocated so the caller can print the error; free it with yaml_doc_free). */
int yaml_doc_load_file(const char *path, yaml_doc **ret);
int yaml_doc_load_string(const char *name, const char *text, yaml_doc **ret);
void yaml_doc_free(yaml_doc *d);
static inline void yaml_doc_freep(yaml_doc **d) { if (*d) yaml_doc_free(*d); }
#define _cleanup_yaml_doc_ _cleanup_(yaml_doc_freep)

/* Look up a key in a mapping (NULL if missing or node is not a mapping). */
const ynode *ynode_get(const ynode *map, const char *key);

/* Typed accessors. Each returns 0 (value stored into *ret), or -EINVAL with doc->error set to
 * "<file>:<line>:<col>: key '<key_path>': <what was expected>, got '<text>'". key_path is what the
 * user wrote, e.g. "limits.max_body_size". */
int ynode_string(yaml_doc *d, const ynode *n, const char *key_path, char **ret);
int ynode_bool(yaml_doc *d, const ynode *n, const char *key_path, bool *ret);
int ynode_int(yaml_doc *d, const ynode *n, const char *key_path, int64_t min, int64_t max, int64_t *ret);
int ynode_size(yaml_doc *d, const ynode *n, const char *key_path, uint64_t *ret);      /* "512M" */
int ynode_timespan(yaml_doc *d, const ynode *n, const char *key_path, uint64_t *ret_usec); /* "30s" */
int ynode_percent(yaml_doc *d, const ynode *n, const char *key_path, uint64_t *ret_usec_per_sec); /* "50%" */
int ynode_strv(yaml_doc *d, const ynode *n, const char *key_path, char ***ret);        /* list of scalars */

/* Fail for any key of mapping `map` not in the NULL-terminated `known` list:
 * "<file>:<line>:<col>: unknown key '<prefix><key>'". prefix may be "" or "limits.". */
int ynode_check_keys(yaml_doc *d, const ynode *map, const char *prefix, const char *const *known);
/* Set doc->error to "<file>:<line>:<col>: <message>" for node n and return -EINVAL. */
int yaml_doc_error(yaml_doc *d, const ynode *n, const char *fmt, ...) _printf_(3, 4);
