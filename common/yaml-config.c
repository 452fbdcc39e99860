/* yaml-config.c: loads drover's YAML config files into a small tree (ynode) that remembers the
 * line and column of every value, and the typed getters that turn scalars into strings, bools,
 * integers, sizes, timespans and percentages with "file:line:col: key 'x': ..." error messages.
 * Built on libyaml's event API; anchors/aliases, tags and multi-document streams are rejected. */
#include "drover/yaml-config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <strings.h>
#include <yaml.h>

#include "drover/util.h"

#define YAML_MAX_FILE_SIZE (4U * 1024U * 1024U)
#define YAML_MAX_DEPTH 64
#define YAML_MAX_CHILDREN 100000

static void ynode_free(ynode *n) {
        if (!n)
                return;
        for (size_t i = 0; i < n->n_children; i++) {
                ynode_free(n->children[i]);
                if (n->keys)
                        free(n->keys[i]);
        }
        free(n->children);
        free(n->keys);
        free(n->key_lines);
        free(n->key_columns);
        free(n->value);
        free(n);
}

static void ynode_free_p(ynode **n) {
        ynode_free(*n);
}

void yaml_doc_free(yaml_doc *d) {
        if (!d)
                return;
        ynode_free(d->root);
        free(d->path);
        free(d);
}

static const char *doc_name(const yaml_doc *d) {
        return d->path ? d->path : "<config>";
}

/* Fills d->error with "<file>:<line>:<col>: <message>" (or "<file>: <message>" when line is 0). */
static int doc_verror(yaml_doc *d, unsigned line, unsigned column, const char *fmt, va_list ap) _printf_(4, 0);
static int doc_verror(yaml_doc *d, unsigned line, unsigned column, const char *fmt, va_list ap) {
        int k;

        if (line > 0)
                k = snprintf(d->error, sizeof(d->error), "%s:%u:%u: ", doc_name(d), line, column);
        else
                k = snprintf(d->error, sizeof(d->error), "%s: ", doc_name(d));
        if (k >= 0 && (size_t) k < sizeof(d->error))
                vsnprintf(d->error + k, sizeof(d->error) - (size_t) k, fmt, ap);
        return -EINVAL;
}

static int doc_error_at(yaml_doc *d, unsigned line, unsigned column, const char *fmt, ...) _printf_(4, 5);
static int doc_error_at(yaml_doc *d, unsigned line, unsigned column, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        doc_verror(d, line, column, fmt, ap);
        va_end(ap);
        return -EINVAL;
}

int yaml_doc_error(yaml_doc *d, const ynode *n, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        doc_verror(d, n ? n->line : 0, n ? n->column : 0, fmt, ap);
        va_end(ap);
        return -EINVAL;
}

/* ---- parsing ---- */

typedef struct parse_state {
        yaml_parser_t parser;
        yaml_doc *doc;
} parse_state;

static int next_event(parse_state *s, yaml_event_t *ev) {
        if (!yaml_parser_parse(&s->parser, ev)) {
                yaml_parser_t *p = &s->parser;
                if (p->error == YAML_MEMORY_ERROR)
                        return -ENOMEM;
                return doc_error_at(s->doc, (unsigned) p->problem_mark.line + 1,
                                    (unsigned) p->problem_mark.column + 1, "%s",
                                    p->problem ? p->problem : "invalid YAML");
        }
        return 0;
}

static ynode *ynode_new(yaml_node_kind kind, const yaml_mark_t *m) {
        ynode *n = calloc(1, sizeof(ynode));
        if (!n)
                return NULL;
        n->kind = kind;
        n->line = (unsigned) m->line + 1;
        n->column = (unsigned) m->column + 1;
        return n;
}

static bool scalar_is_null(const char *v) {
        return v[0] == 0 || streq(v, "~") || streq(v, "null") || streq(v, "Null") || streq(v, "NULL");
}

static int add_child(ynode *parent, char *key, unsigned kline, unsigned kcol, ynode *child) {
        size_t n = parent->n_children;
        ynode **c;

        if (n >= YAML_MAX_CHILDREN)
                return -E2BIG;
        c = realloc(parent->children, sizeof(ynode *) * (n + 1));
        if (!c)
                return -ENOMEM;
        parent->children = c;
        if (parent->kind == YNODE_MAPPING) {
                char **k = realloc(parent->keys, sizeof(char *) * (n + 1));
                if (!k)
                        return -ENOMEM;
                parent->keys = k;
                unsigned *kl = realloc(parent->key_lines, sizeof(unsigned) * (n + 1));
                if (!kl)
                        return -ENOMEM;
                parent->key_lines = kl;
                unsigned *kc = realloc(parent->key_columns, sizeof(unsigned) * (n + 1));
                if (!kc)
                        return -ENOMEM;
                parent->key_columns = kc;
                parent->keys[n] = key;
                parent->key_lines[n] = kline;
                parent->key_columns[n] = kcol;
        }
        parent->children[n] = child;
        parent->n_children = n + 1;
        return 0;
}

static bool event_has_anchor_or_tag(const yaml_event_t *ev) {
        switch (ev->type) {
        case YAML_SCALAR_EVENT:
                /* "!!str 5" is allowed: it is treated like a quoted scalar */
                if (ev->data.scalar.tag && streq((const char *) ev->data.scalar.tag, YAML_STR_TAG))
                        return ev->data.scalar.anchor;
                return ev->data.scalar.anchor || (ev->data.scalar.tag && !ev->data.scalar.plain_implicit &&
                                                  !ev->data.scalar.quoted_implicit);
        case YAML_SEQUENCE_START_EVENT:
                return ev->data.sequence_start.anchor || (ev->data.sequence_start.tag && !ev->data.sequence_start.implicit);
        case YAML_MAPPING_START_EVENT:
                return ev->data.mapping_start.anchor || (ev->data.mapping_start.tag && !ev->data.mapping_start.implicit);
        default:
                return false;
        }
}

/* Builds the node that starts with event ev (which the caller owns and deletes). */
static int parse_node(parse_state *s, yaml_event_t *ev, unsigned depth, ynode **ret);

static int parse_collection(parse_state *s, ynode *n, unsigned depth) {
        bool mapping = n->kind == YNODE_MAPPING;

        for (;;) {
                yaml_event_t ev;
                _cleanup_free_ char *key = NULL;
                unsigned kline = 0, kcol = 0;
                ynode *child = NULL;
                int r;

                r = next_event(s, &ev);
                if (r < 0)
                        return r;
                if (ev.type == (mapping ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT)) {
                        yaml_event_delete(&ev);
                        return 0;
                }
                if (mapping) {
                        if (ev.type != YAML_SCALAR_EVENT) {
                                r = doc_error_at(s->doc, (unsigned) ev.start_mark.line + 1,
                                                 (unsigned) ev.start_mark.column + 1,
                                                 ev.type == YAML_ALIAS_EVENT ? "anchors, aliases and tags are not supported"
                                                                             : "mapping keys must be scalars");
                                yaml_event_delete(&ev);
                                return r;
                        }
                        if (event_has_anchor_or_tag(&ev)) {
                                r = doc_error_at(s->doc, (unsigned) ev.start_mark.line + 1,
                                                 (unsigned) ev.start_mark.column + 1,
                                                 "anchors, aliases and tags are not supported");
                                yaml_event_delete(&ev);
                                return r;
                        }
                        key = strndup((const char *) ev.data.scalar.value, ev.data.scalar.length);
                        kline = (unsigned) ev.start_mark.line + 1;
                        kcol = (unsigned) ev.start_mark.column + 1;
                        yaml_event_delete(&ev);
                        if (!key)
                                return -ENOMEM;
                        if (strlen(key) == 0 || ynode_get(n, key)) {
                                return doc_error_at(s->doc, kline, kcol,
                                                    *key ? "duplicate key '%s'" : "empty key%s", key);
                        }
                        r = next_event(s, &ev);
                        if (r < 0)
                                return r;
                }
                r = parse_node(s, &ev, depth + 1, &child);
                yaml_event_delete(&ev);
                if (r < 0)
                        return r;
                r = add_child(n, key, kline, kcol, child);
                if (r < 0) {
                        ynode_free(child);
                        return r;
                }
                key = NULL;  /* owned by n now */
        }
}

static int parse_node(parse_state *s, yaml_event_t *ev, unsigned depth, ynode **ret) {
        _cleanup_(ynode_free_p) ynode *n = NULL;
        int r;

        if (depth > YAML_MAX_DEPTH)
                return doc_error_at(s->doc, (unsigned) ev->start_mark.line + 1, (unsigned) ev->start_mark.column + 1,
                                    "nesting too deep (more than %u levels)", YAML_MAX_DEPTH);
        if (event_has_anchor_or_tag(ev))
                return doc_error_at(s->doc, (unsigned) ev->start_mark.line + 1, (unsigned) ev->start_mark.column + 1,
                                    "anchors, aliases and tags are not supported");

        switch (ev->type) {
        case YAML_SCALAR_EVENT: {
                bool quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
                              (ev->data.scalar.tag && streq((const char *) ev->data.scalar.tag, YAML_STR_TAG));
                _cleanup_free_ char *v = strndup((const char *) ev->data.scalar.value, ev->data.scalar.length);

                if (!v)
                        return -ENOMEM;
                if (strlen(v) != ev->data.scalar.length)
                        return doc_error_at(s->doc, (unsigned) ev->start_mark.line + 1,
                                            (unsigned) ev->start_mark.column + 1, "NUL byte in value");
                if (!quoted && scalar_is_null(v)) {
                        n = ynode_new(YNODE_NULL, &ev->start_mark);
                        if (!n)
                                return -ENOMEM;
                } else {
                        n = ynode_new(YNODE_SCALAR, &ev->start_mark);
                        if (!n)
                                return -ENOMEM;
                        n->value = TAKE_PTR(v);
                        n->quoted = quoted;
                }
                break;
        }
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT:
                n = ynode_new(ev->type == YAML_MAPPING_START_EVENT ? YNODE_MAPPING : YNODE_SEQUENCE, &ev->start_mark);
                if (!n)
                        return -ENOMEM;
                r = parse_collection(s, n, depth);
                if (r < 0)
                        return r;
                break;
        case YAML_ALIAS_EVENT:
                return doc_error_at(s->doc, (unsigned) ev->start_mark.line + 1, (unsigned) ev->start_mark.column + 1,
                                    "anchors, aliases and tags are not supported");
        default:
                return doc_error_at(s->doc, (unsigned) ev->start_mark.line + 1, (unsigned) ev->start_mark.column + 1,
                                    "unexpected YAML event");
        }
        *ret = TAKE_PTR(n);
        return 0;
}

static int parse_stream(parse_state *s) {
        yaml_event_t ev;
        bool have_doc = false;
        int r;

        for (;;) {
                r = next_event(s, &ev);
                if (r < 0)
                        return r;
                switch (ev.type) {
                case YAML_STREAM_START_EVENT:
                case YAML_DOCUMENT_END_EVENT:
                        break;
                case YAML_STREAM_END_EVENT:
                        yaml_event_delete(&ev);
                        return 0;
                case YAML_DOCUMENT_START_EVENT:
                        if (have_doc) {
                                r = doc_error_at(s->doc, (unsigned) ev.start_mark.line + 1,
                                                 (unsigned) ev.start_mark.column + 1,
                                                 "multiple YAML documents are not supported");
                                yaml_event_delete(&ev);
                                return r;
                        }
                        have_doc = true;
                        break;
                default: {
                        ynode *root = NULL;

                        r = parse_node(s, &ev, 0, &root);
                        yaml_event_delete(&ev);
                        if (r < 0)
                                return r;
                        if (root && root->kind == YNODE_NULL) {
                                ynode_free(root);
                                root = NULL;
                        }
                        ynode_free(s->doc->root);
                        s->doc->root = root;
                        continue;
                }
                }
                yaml_event_delete(&ev);
        }
}

int yaml_doc_load_string(const char *name, const char *text, yaml_doc **ret) {
        yaml_doc *d;
        parse_state s = {};
        size_t len;
        int r;

        if (!text || !ret)
                return -EINVAL;
        d = calloc(1, sizeof(yaml_doc));
        if (!d)
                return -ENOMEM;
        d->path = strdup(name ? name : "<string>");
        if (!d->path) {
                free(d);
                return -ENOMEM;
        }
        len = strlen(text);
        if (len > YAML_MAX_FILE_SIZE) {
                snprintf(d->error, sizeof(d->error), "%s: file too large (more than %u bytes)",
                         d->path, YAML_MAX_FILE_SIZE);
                *ret = d;
                return -EFBIG;
        }
        if (!yaml_parser_initialize(&s.parser)) {
                yaml_doc_free(d);
                return -ENOMEM;
        }
        s.doc = d;
        yaml_parser_set_input_string(&s.parser, (const unsigned char *) text, len);
        r = parse_stream(&s);
        yaml_parser_delete(&s.parser);
        if (r < 0) {
                ynode_free(d->root);
                d->root = NULL;
                if (r == -ENOMEM) {
                        yaml_doc_free(d);
                        return r;
                }
                if (d->error[0] == 0)
                        snprintf(d->error, sizeof(d->error), "%s: %s", d->path, strerror(-r));
        }
        *ret = d;
        return r;
}

int yaml_doc_load_file(const char *path, yaml_doc **ret) {
        _cleanup_free_ char *text = NULL;
        size_t size;
        int r;

        if (!path || !ret)
                return -EINVAL;
        r = read_full_file(path, YAML_MAX_FILE_SIZE, &text, &size);
        if (r < 0) {
                yaml_doc *d = calloc(1, sizeof(yaml_doc));
                if (!d)
                        return -ENOMEM;
                d->path = strdup(path);
                if (!d->path) {
                        free(d);
                        return -ENOMEM;
                }
                if (r == -EFBIG)
                        snprintf(d->error, sizeof(d->error), "%s: file too large (more than %u bytes)",
                                 path, YAML_MAX_FILE_SIZE);
                else
                        snprintf(d->error, sizeof(d->error), "%s: %s", path, strerror(-r));
                *ret = d;
                return r;
        }
        if (strlen(text) != size) {
                r = yaml_doc_load_string(path, "", ret);
                if (r < 0)
                        return r;
                snprintf((*ret)->error, sizeof((*ret)->error), "%s: file contains a NUL byte", path);
                return -EINVAL;
        }
        return yaml_doc_load_string(path, text, ret);
}

/* ---- lookups and typed getters ---- */

const ynode *ynode_get(const ynode *map, const char *key) {
        if (!map || map->kind != YNODE_MAPPING || !key)
                return NULL;
        for (size_t i = 0; i < map->n_children; i++)
                if (map->keys[i] && streq(map->keys[i], key))
                        return map->children[i];
        return NULL;
}

static const char *kind_text(const ynode *n) {
        switch (n->kind) {
        case YNODE_MAPPING:
                return "a mapping";
        case YNODE_SEQUENCE:
                return "a list";
        case YNODE_NULL:
                return "an empty value";
        default:
                return "a value";
        }
}

/* "<file>:<l>:<c>: key 'k': <expected>, got '<text>'" (or "got a mapping" for non-scalars). */
static int type_error(yaml_doc *d, const ynode *n, const char *key_path, const char *expected) {
        if (n->kind == YNODE_SCALAR)
                return yaml_doc_error(d, n, "key '%s': %s, got '%s'", strempty(key_path), expected, n->value);
        return yaml_doc_error(d, n, "key '%s': %s, got %s", strempty(key_path), expected, kind_text(n));
}

static int missing(yaml_doc *d, const char *key_path) {
        snprintf(d->error, sizeof(d->error), "%s: key '%s': missing", doc_name(d), strempty(key_path));
        return -ENOENT;
}

int ynode_string(yaml_doc *d, const ynode *n, const char *key_path, char **ret) {
        char *s;

        if (!n)
                return missing(d, key_path);
        if (n->kind != YNODE_SCALAR)
                return type_error(d, n, key_path, "expected a string");
        s = strdup(n->value);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int ynode_bool(yaml_doc *d, const ynode *n, const char *key_path, bool *ret) {
        static const struct { const char *name; bool value; } table[] = {
                { "true", true }, { "yes", true }, { "on", true },
                { "false", false }, { "no", false }, { "off", false },
        };

        if (!n)
                return missing(d, key_path);
        if (n->kind == YNODE_SCALAR && !n->quoted)
                for (size_t i = 0; i < ELEMENTSOF(table); i++)
                        if (strcasecmp(n->value, table[i].name) == 0) {
                                *ret = table[i].value;
                                return 0;
                        }
        return type_error(d, n, key_path, "expected a boolean (true/false)");
}

int ynode_int(yaml_doc *d, const ynode *n, const char *key_path, int64_t min, int64_t max, int64_t *ret) {
        char expected[128];
        long long v;
        char *end;

        if (!n)
                return missing(d, key_path);
        snprintf(expected, sizeof(expected), "expected an integer between %" PRId64 " and %" PRId64, min, max);
        if (n->kind != YNODE_SCALAR || n->quoted)
                return type_error(d, n, key_path, expected);
        if (!(n->value[0] == '-' || n->value[0] == '+' || (n->value[0] >= '0' && n->value[0] <= '9')))
                return type_error(d, n, key_path, expected);
        errno = 0;
        v = strtoll(n->value, &end, 10);
        if (errno != 0 || end == n->value || *end != 0 || v < min || v > max)
                return type_error(d, n, key_path, expected);
        *ret = (int64_t) v;
        return 0;
}

int ynode_size(yaml_doc *d, const ynode *n, const char *key_path, uint64_t *ret) {
        uint64_t v;

        if (!n)
                return missing(d, key_path);
        if (n->kind != YNODE_SCALAR || parse_size(n->value, &v) < 0)
                return type_error(d, n, key_path, "expected a size (e.g. 512M, 2G or a number of bytes)");
        *ret = v;
        return 0;
}

int ynode_timespan(yaml_doc *d, const ynode *n, const char *key_path, uint64_t *ret_usec) {
        uint64_t v;

        if (!n)
                return missing(d, key_path);
        if (n->kind != YNODE_SCALAR || parse_timespan(n->value, &v) < 0)
                return type_error(d, n, key_path, "expected a time span (e.g. 30s, 5min, 1h)");
        *ret_usec = v;
        return 0;
}

int ynode_percent(yaml_doc *d, const ynode *n, const char *key_path, uint64_t *ret_usec_per_sec) {
        uint64_t v;

        if (!n)
                return missing(d, key_path);
        if (n->kind != YNODE_SCALAR || parse_percent_usec(n->value, &v) < 0)
                return type_error(d, n, key_path, "expected a percentage (e.g. 50%)");
        *ret_usec_per_sec = v;
        return 0;
}

int ynode_strv(yaml_doc *d, const ynode *n, const char *key_path, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        int r;

        if (!n)
                return missing(d, key_path);
        if (n->kind == YNODE_NULL) {
                l = calloc(1, sizeof(char *));
                if (!l)
                        return -ENOMEM;
                *ret = TAKE_PTR(l);
                return 0;
        }
        if (n->kind != YNODE_SEQUENCE)
                return type_error(d, n, key_path, "expected a list of strings");
        l = calloc(1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < n->n_children; i++) {
                const ynode *c = n->children[i];

                if (c->kind != YNODE_SCALAR) {
                        char path[256];
                        snprintf(path, sizeof(path), "%s[%zu]", strempty(key_path), i);
                        return type_error(d, c, path, "expected a string");
                }
                r = strv_extend(&l, c->value);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

int ynode_check_keys(yaml_doc *d, const ynode *map, const char *prefix, const char *const *known) {
        if (!map)
                return 0;
        if (map->kind != YNODE_MAPPING) {
                _cleanup_free_ char *p = strdup(strempty(prefix));
                size_t l;

                if (!p)
                        return -ENOMEM;
                l = strlen(p);
                if (l > 0 && p[l - 1] == '.')
                        p[l - 1] = 0;
                if (isempty(p))
                        return yaml_doc_error(d, map, "expected a mapping at the top level, got %s", kind_text(map));
                return type_error(d, map, p, "expected a mapping");
        }
        for (size_t i = 0; i < map->n_children; i++) {
                bool found = false;

                for (const char *const *k = known; k && *k; k++)
                        if (streq(*k, map->keys[i])) {
                                found = true;
                                break;
                        }
                if (!found)
                        return doc_error_at(d, map->key_lines[i], map->key_columns[i], "unknown key '%s%s'",
                                            strempty(prefix), map->keys[i]);
        }
        return 0;
}
