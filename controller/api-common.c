/* api-common.c: the generic object plumbing of the AWX API: field-table driven validation and
 * defaults, the output shape (id/type/url/related/summary_fields, '_' keys stripped), lists with
 * AWX filters, ordering and page-number pagination, and the generic create/read/update/delete
 * handlers every resource uses. */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <yaml.h>

#include "api.h"
#include "drover/log.h"
#include "drover/util.h"

#define API_MAX_STRING (1024 * 1024)

char *api_now(char buf[static 32]) {
        return format_iso8601(buf, 0);
}

int api_not_found(http_response *resp) {
        return http_respond_detail(resp, 404, "Not found.");
}

int api_storage_error(http_response *resp, int r, const char *what) {
        log_error_errno(r, "Storage failure (%s): %m", what);
        if (http_errno_storage_unavailable(r)) {
                /* nothing was committed: the client may retry */
                free(resp->retry_after);
                resp->retry_after = strdup("5");
                return http_respond_detail(resp, 503, "The service is temporarily unavailable (%s); retry later.",
                                           strerror(-r));
        }
        return http_respond_detail(resp, 500, "Storage failure.");
}

const api_field *api_field_find(const api_field *fields, const char *name) {
        for (const api_field *f = fields; f && f->name; f++)
                if (streq(f->name, name))
                        return f;
        return NULL;
}

static json_t *field_default(const api_field *f) {
        if (f->def)
                return json_loads(f->def, JSON_DECODE_ANY, NULL);
        switch (f->type) {
        case AF_STRING:
        case AF_JSON_STRING:
                return json_string("");
        case AF_INT:
                return json_integer(0);
        case AF_BOOL:
                return json_false();
        case AF_FLOAT:
                return json_real(0.0);
        case AF_JSON:
                return json_object();
        case AF_DECIMAL:
                return json_string("0.00");
        default:
                return json_null();
        }
}

json_t *api_defaults(const api_field *fields) {
        _cleanup_json_ json_t *doc = json_object();

        if (!doc)
                return NULL;
        for (const api_field *f = fields; f->name; f++) {
                if (f->flags & AFF_WRITEONLY)
                        continue;
                if (json_object_set_new(doc, f->name, field_default(f)) < 0)
                        return NULL;
        }
        return TAKE_PTR(doc);
}

/* ---- YAML/JSON variables ---- */

static bool yaml_plain_is(const char *v, const char *const *words) {
        for (; *words; words++)
                if (streq(v, *words))
                        return true;
        return false;
}

static json_t *yaml_scalar_to_json(const yaml_node_t *n) {
        static const char *const trues[] = { "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", NULL };
        static const char *const falses[] = { "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", NULL };
        static const char *const nulls[] = { "", "~", "null", "Null", "NULL", NULL };
        const char *v = (const char *) n->data.scalar.value;
        char *end;

        if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
                return json_stringn(v, n->data.scalar.length);
        if (yaml_plain_is(v, nulls))
                return json_null();
        if (yaml_plain_is(v, trues))
                return json_true();
        if (yaml_plain_is(v, falses))
                return json_false();
        if (*v && (isdigit((unsigned char) *v) || ((*v == '-' || *v == '+') && isdigit((unsigned char) v[1])))) {
                errno = 0;
                long long ll = strtoll(v, &end, 10);
                if (*end == 0 && errno == 0)
                        return json_integer(ll);
                errno = 0;
                double d = strtod(v, &end);
                if (*end == 0 && errno == 0 && isfinite(d))
                        return json_real(d);
        }
        return json_stringn(v, n->data.scalar.length);
}

/* Aliases share nodes, so a small text can describe a huge tree ("billion laughs"): every
 * conversion has a budget of nodes. */
#define YAML_MAX_NODES 100000

static json_t *yaml_node_to_json(yaml_document_t *d, yaml_node_t *n, unsigned depth, unsigned *budget) {
        _cleanup_json_ json_t *j = NULL;

        if (!n || depth > 64 || *budget == 0)
                return NULL;
        (*budget)--;
        switch (n->type) {
        case YAML_SCALAR_NODE:
                return yaml_scalar_to_json(n);
        case YAML_SEQUENCE_NODE:
                j = json_array();
                for (yaml_node_item_t *i = n->data.sequence.items.start; j && i < n->data.sequence.items.top; i++) {
                        json_t *v = yaml_node_to_json(d, yaml_document_get_node(d, *i), depth + 1, budget);
                        if (!v || json_array_append_new(j, v) < 0)
                                return NULL;
                }
                return TAKE_PTR(j);
        case YAML_MAPPING_NODE:
                j = json_object();
                for (yaml_node_pair_t *p = n->data.mapping.pairs.start; j && p < n->data.mapping.pairs.top; p++) {
                        yaml_node_t *k = yaml_document_get_node(d, p->key);
                        if (!k || k->type != YAML_SCALAR_NODE)
                                return NULL;
                        json_t *v = yaml_node_to_json(d, yaml_document_get_node(d, p->value), depth + 1, budget);
                        if (!v || json_object_set_new(j, (const char *) k->data.scalar.value, v) < 0)
                                return NULL;
                }
                return TAKE_PTR(j);
        default:
                return NULL;
        }
}

int api_yaml_to_json(const char *text, json_t **ret) {
        yaml_parser_t parser;
        yaml_document_t doc;
        json_t *j;

        if (!yaml_parser_initialize(&parser))
                return -ENOMEM;
        yaml_parser_set_input_string(&parser, (const unsigned char *) text, strlen(text));
        if (!yaml_parser_load(&parser, &doc)) {
                yaml_parser_delete(&parser);
                return -EINVAL;
        }
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        unsigned budget = YAML_MAX_NODES;
        j = root ? yaml_node_to_json(&doc, root, 0, &budget) : json_null();
        yaml_document_delete(&doc);
        yaml_parser_delete(&parser);
        if (!j)
                return -EINVAL;
        *ret = j;
        return 0;
}

int api_parse_vars(const char *text, json_t **ret) {
        json_t *j;
        int r;

        if (isempty(text) || strspn(text, " \t\r\n") == strlen(text)) {
                j = json_object();
                if (!j)
                        return -ENOMEM;
                *ret = j;
                return 0;
        }
        j = json_loads(text, JSON_DECODE_ANY, NULL);
        if (!j) {
                r = api_yaml_to_json(text, &j);
                if (r < 0)
                        return r;
                if (json_is_null(j)) {
                        json_decref(j);
                        j = json_object();
                        if (!j)
                                return -ENOMEM;
                }
        }
        if (!json_is_object(j)) {
                json_decref(j);
                return -EINVAL;
        }
        *ret = j;
        return 0;
}

/* ---- output ---- */

static int add_summary(controller *c, json_t *summary, const char *key, storage_type t, int64_t id) {
        _cleanup_json_ json_t *o = NULL;
        json_t *s;

        if (storage_obj_get(c->storage, t, id, &o) < 0)
                return 0;       /* a dangling reference shows no summary */
        s = json_pack("{s:I}", "id", (json_int_t) id);
        if (!s)
                return -ENOMEM;
        static const char *const keys[] = { "name", "description", "kind", "status", "scm_type", "hostname",
                                            "username", "first_name", "last_name", "is_container_group", "image",
                                            "cloud", NULL };
        for (size_t i = 0; keys[i]; i++) {
                json_t *v = json_object_get(o, keys[i]);
                if (v)
                        json_object_set(s, keys[i], v);
        }
        if (t == ST_JOB_TEMPLATE && streq(key, "unified_job_template"))
                json_object_set_new(s, "unified_job_type", json_string("job"));
        return json_object_set_new(summary, key, s);
}

int api_render(controller *c, const api_resource *r, const json_t *doc, json_t **ret) {
        _cleanup_json_ json_t *out = NULL;
        json_t *related, *summary, *v;
        const char *k;
        int64_t id = json_get_int(doc, "id", 0);
        char buf[512];
        int q;

        out = json_object();
        related = json_object();
        summary = json_object();
        if (!out || !related || !summary) {
                json_decref(related);
                json_decref(summary);
                return -ENOMEM;
        }
        snprintf(buf, sizeof buf, API_PREFIX "%s/%" PRIi64 "/", r->endpoint, id);
        json_object_set_new(out, "id", json_integer(id));
        json_object_set_new(out, "type", json_string(r->awx_type));
        json_object_set_new(out, "url", json_string(buf));
        json_object_set_new(out, "related", related);
        json_object_set_new(out, "summary_fields", summary);
        v = json_object_get(doc, "created");
        json_object_set(out, "created", v ? v : json_null());
        v = json_object_get(doc, "modified");
        json_object_set(out, "modified", v ? v : json_null());

        for (const api_field *f = r->fields; f->name; f++) {
                if (f->flags & AFF_WRITEONLY) {
                        json_object_set_new(out, f->name, json_string("$encrypted$"));
                        continue;
                }
                v = json_object_get(doc, f->name);
                if (v)
                        json_object_set(out, f->name, v);
                else
                        json_object_set_new(out, f->name, field_default(f));
                if (f->type == AF_FK && f->fk >= 0 && json_is_integer(v)) {
                        const api_resource *t = api_resource_of(f->fk);
                        int64_t fid = json_integer_value(v);
                        if (t) {
                                snprintf(buf, sizeof buf, API_PREFIX "%s/%" PRIi64 "/", t->endpoint, fid);
                                json_object_set_new(related, f->name, json_string(buf));
                        }
                        q = add_summary(c, summary, f->name, f->fk, fid);
                        if (q < 0)
                                return q;
                }
        }
        /* everything else stored, except internal fields */
        json_object_foreach((json_t *) doc, k, v)
                if (k[0] != '_' && !json_object_get(out, k))
                        json_object_set(out, k, v);

        for (const char *const *s = r->related; s && *s; s++) {
                snprintf(buf, sizeof buf, API_PREFIX "%s/%" PRIi64 "/%s/", r->endpoint, id, *s);
                json_object_set_new(related, *s, json_string(buf));
        }
        json_object_set_new(summary, "user_capabilities", json_pack("{s:b,s:b}", "edit", 1, "delete", 1));
        if (r->render) {
                q = r->render(c, r, doc, out);
                if (q < 0)
                        return q;
        }
        *ret = TAKE_PTR(out);
        return 0;
}

/* ---- validation ---- */

static int add_error(json_t *errors, const char *field, const char *fmt, ...) _printf_(3, 4);
static int add_error(json_t *errors, const char *field, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;
        json_t *l;

        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        if (!msg)
                return -ENOMEM;
        l = json_object_get(errors, field);
        if (!l) {
                l = json_array();
                if (!l || json_object_set_new(errors, field, l) < 0)
                        return -ENOMEM;
        }
        /* a message quoting client text cut inside a UTF-8 sequence is no JSON string */
        json_t *m = json_string(msg);
        return json_array_append_new(l, m ? m : json_string("Invalid value.")) < 0 ? -ENOMEM : 0;
}

static bool parse_int_text(const char *s, int64_t *ret) {
        char *end;
        long long v;

        while (isspace((unsigned char) *s))
                s++;
        if (!*s)
                return false;
        errno = 0;
        v = strtoll(s, &end, 10);
        while (isspace((unsigned char) *end))
                end++;
        if (errno != 0 || *end)
                return false;
        *ret = v;
        return true;
}

static bool json_as_int(const json_t *v, int64_t *ret) {
        if (json_is_integer(v)) {
                *ret = json_integer_value(v);
                return true;
        }
        if (json_is_real(v) && floor(json_real_value(v)) == json_real_value(v) && fabs(json_real_value(v)) < 9e15) {
                *ret = (int64_t) json_real_value(v);
                return true;
        }
        if (json_is_string(v))
                return parse_int_text(json_string_value(v), ret);
        return false;
}

static int parse_bool_text(const char *s) {
        static const char *const t[] = { "true", "True", "TRUE", "1", "yes", "on", NULL };
        static const char *const f[] = { "false", "False", "FALSE", "0", "no", "off", NULL };
        return yaml_plain_is(s, t) ? 1 : yaml_plain_is(s, f) ? 0 : -1;
}

/* Convert one input value; returns a new reference, or NULL with *msg set (static text or the
 * buffer) for a validation error. */
json_t *api_convert_input(controller *c, const api_field *f, const json_t *v, char *msg, size_t msgsz) {
        int64_t i;

        switch (f->type) {
        case AF_STRING: {
                if (!json_is_string(v)) {
                        snprintf(msg, msgsz, "Not a valid string.");
                        return NULL;
                }
                const char *s = json_string_value(v);
                size_t max = f->max_length ? f->max_length : API_MAX_STRING;
                if (json_string_length(v) > max) {
                        snprintf(msg, msgsz, "Ensure this field has no more than %zu characters.", max);
                        return NULL;
                }
                if (f->flags & AFF_REQUIRED && isempty(s)) {
                        snprintf(msg, msgsz, "This field may not be blank.");
                        return NULL;
                }
                if (f->choices) {
                        bool ok = false;
                        for (const char *const *ch = f->choices; *ch && !ok; ch++)
                                ok = streq(*ch, s);
                        if (!ok) {
                                snprintf(msg, msgsz, "\"%.200s\" is not a valid choice.", s);
                                return NULL;
                        }
                }
                return json_incref((json_t *) v);
        }
        case AF_INT:
                if (json_is_boolean(v) || !json_as_int(v, &i)) {
                        snprintf(msg, msgsz, "A valid integer is required.");
                        return NULL;
                }
                if (f->min < f->max && i < f->min) {
                        snprintf(msg, msgsz, "Ensure this value is greater than or equal to %" PRIi64 ".", f->min);
                        return NULL;
                }
                if (f->min < f->max && i > f->max) {
                        snprintf(msg, msgsz, "Ensure this value is less than or equal to %" PRIi64 ".", f->max);
                        return NULL;
                }
                return json_integer(i);
        case AF_BOOL:
                if (json_is_boolean(v))
                        return json_incref((json_t *) v);
                if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1))
                        return json_boolean(json_integer_value(v));
                if (json_is_string(v) && parse_bool_text(json_string_value(v)) >= 0)
                        return json_boolean(parse_bool_text(json_string_value(v)));
                snprintf(msg, msgsz, "Must be a valid boolean.");
                return NULL;
        case AF_FK: {
                _cleanup_json_ json_t *o = NULL;
                if (json_is_boolean(v) || !json_as_int(v, &i)) {
                        snprintf(msg, msgsz, "Incorrect type. Expected pk value, received %s.",
                                 json_is_string(v) ? "str" : json_is_object(v) ? "dict" :
                                 json_is_array(v) ? "list" : json_is_boolean(v) ? "bool" : "float");
                        return NULL;
                }
                if (f->fk < 0 || storage_obj_get(c->storage, f->fk, i, &o) < 0) {
                        snprintf(msg, msgsz, "Invalid pk \"%" PRIi64 "\" - object does not exist.", i);
                        return NULL;
                }
                return json_integer(i);
        }
        case AF_JSON_STRING: {
                _cleanup_json_ json_t *parsed = NULL;
                if (json_is_object(v)) {
                        char *s = json_dumps(v, JSON_ENCODE_ANY);
                        json_t *j = s ? json_string(s) : NULL;
                        free(s);
                        return j;
                }
                if (!json_is_string(v)) {
                        snprintf(msg, msgsz, "Not a valid string.");
                        return NULL;
                }
                if (json_string_length(v) > API_MAX_STRING) {
                        snprintf(msg, msgsz, "Ensure this field has no more than %d characters.", API_MAX_STRING);
                        return NULL;
                }
                if (api_parse_vars(json_string_value(v), &parsed) < 0) {
                        snprintf(msg, msgsz, "Cannot parse as JSON or YAML dictionary.");
                        return NULL;
                }
                return json_incref((json_t *) v);
        }
        case AF_JSON: {
                char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
                bool big = !s || strlen(s) > API_MAX_STRING;
                free(s);
                if (big) {
                        snprintf(msg, msgsz, "Value too large.");
                        return NULL;
                }
                return json_deep_copy(v);
        }
        case AF_DECIMAL: {
                double d;
                char *end, buf[64];
                if (json_is_number(v))
                        d = json_number_value(v);
                else if (json_is_string(v)) {
                        errno = 0;
                        d = strtod(json_string_value(v), &end);
                        if (errno != 0 || *end || end == json_string_value(v))
                                d = NAN;
                } else
                        d = NAN;
                if (!isfinite(d) || d < 0 || d > 1e6) {
                        snprintf(msg, msgsz, "A valid number is required.");
                        return NULL;
                }
                snprintf(buf, sizeof buf, "%.2f", d);
                return json_string(buf);
        }
        default:
                snprintf(msg, msgsz, "This field is read-only.");
                return NULL;
        }
}

static void capitalize(const char *s, char *out, size_t n) {
        snprintf(out, n, "%s", s);
        for (char *p = out; *p; p++)
                if (*p == '_')
                        *p = ' ';
        out[0] = (char) toupper((unsigned char) out[0]);
}

static int add_error(json_t *errors, const char *field, const char *fmt, ...) _printf_(3, 4);

static int check_unique(controller *c, const api_resource *r, const json_t *doc, int64_t id, json_t *errors) {
        _cleanup_json_ json_t *results = NULL;
        storage_filter f[2];
        size_t n = 0;
        json_t *name = json_object_get(doc, r->name_field), *scope = NULL, *it;
        size_t i;
        int q;

        if (!json_is_string(name))
                return 0;
        f[n++] = (storage_filter) { .field = r->name_field, .op = SF_EQ, .value = name };
        if (r->unique_scope) {
                scope = json_object_get(doc, r->unique_scope);
                f[n++] = (storage_filter) { .field = r->unique_scope, .op = SF_EQ, .value = scope ? scope : json_null() };
        }
        storage_query query = { .filters = f, .n_filters = n, .limit = 2 };
        q = storage_obj_list(c->storage, r->type, &query, &results, NULL);
        if (q < 0)
                return q;
        json_array_foreach(results, i, it) {
                char nf[64], sf[64];
                if (json_get_int(it, "id", 0) == id)
                        continue;
                capitalize(r->name_field, nf, sizeof nf);
                if (r->type == ST_USER)
                        return add_error(errors, r->name_field, "A user with that username already exists.");
                if (!r->unique_scope)
                        return add_error(errors, r->name_field, "%s with this %s already exists.", r->label, nf);
                capitalize(r->unique_scope, sf, sizeof sf);
                return add_error(errors, "__all__", "%s with this %s and %s already exists.", r->label, nf, sf);
        }
        return 0;
}

int api_check_unique(controller *c, const api_resource *r, const json_t *doc, http_response *resp) {
        _cleanup_json_ json_t *errors = json_object();
        int q;

        if (!errors)
                return -ENOMEM;
        if (!r->name_field)
                return 0;
        q = check_unique(c, r, doc, json_get_int(doc, "id", 0), errors);
        if (q < 0)
                return q;
        if (json_object_size(errors) > 0) {
                http_respond(resp, 400, TAKE_PTR(errors));
                return 1;
        }
        return 0;
}

int api_validate_into(controller *c, const api_resource *r, const json_t *body, json_t *doc, bool partial,
                      http_response *resp) {
        _cleanup_json_ json_t *errors = json_object();
        char msg[512];
        int q;

        if (!errors)
                return -ENOMEM;
        for (const api_field *f = r->fields; f->name; f++) {
                json_t *v = json_object_get(body, f->name), *conv;

                if (f->flags & AFF_READONLY)
                        continue;
                if (v && json_is_null(v) && (f->flags & AFF_NULLABLE)) {
                        json_object_set_new(doc, f->name, json_null());
                        v = NULL;
                        if (f->flags & AFF_REQUIRED && !partial) {
                                q = add_error(errors, f->name, "This field may not be null.");
                                if (q < 0)
                                        return q;
                        }
                        continue;
                }
                if (!v || json_is_null(v)) {
                        /* null for a non-nullable field counts as not provided (awx.awx sends it) */
                        json_t *cur = json_object_get(doc, f->name);
                        if (!partial && (f->flags & AFF_REQUIRED) && (!cur || json_is_null(cur) ||
                                                                      (json_is_string(cur) && !*json_string_value(cur)))) {
                                q = add_error(errors, f->name, "This field is required.");
                                if (q < 0)
                                        return q;
                        }
                        continue;
                }
                conv = api_convert_input(c, f, v, msg, sizeof msg);
                if (!conv) {
                        q = add_error(errors, f->name, "%s", msg);
                        if (q < 0)
                                return q;
                        continue;
                }
                if (json_object_set_new(doc, f->name, conv) < 0)
                        return -ENOMEM;
        }
        if (json_object_size(errors) > 0) {
                http_respond(resp, 400, TAKE_PTR(errors));
                return 1;
        }
        return 0;
}

/* ---- lists ---- */

typedef struct list_filter {
        storage_filter f;
        bool iexact;              /* checked in memory */
} list_filter;

static const char *const ignored_query_keys[] = {
        "page", "page_size", "order_by", "search", "format", "type", "all_pages", NULL,
};

static bool url_safe(char ch) {
        return isalnum((unsigned char) ch) || strchr("_.-~", ch);
}

static int grow(char **buf, size_t *len, size_t *cap) {
        if (*len + 4 >= *cap) {
                size_t n = *cap * 2 + 64;
                char *b = realloc(*buf, n);
                if (!b)
                        return -ENOMEM;
                *buf = b;
                *cap = n;
        }
        return 0;
}

static int append_raw(char **buf, size_t *len, size_t *cap, char ch) {
        if (grow(buf, len, cap) < 0)
                return -ENOMEM;
        (*buf)[(*len)++] = ch;
        (*buf)[*len] = 0;
        return 0;
}

static int append_encoded(char **buf, size_t *len, size_t *cap, const char *s) {
        for (; *s; s++) {
                if (grow(buf, len, cap) < 0)
                        return -ENOMEM;
                if (url_safe(*s))
                        (*buf)[(*len)++] = *s;
                else if (*s == ' ')
                        (*buf)[(*len)++] = '+';
                else
                        *len += (size_t) sprintf(*buf + *len, "%%%02X", (unsigned char) *s);
        }
        (*buf)[*len] = 0;
        return 0;
}

typedef struct qpair { const char *k, *v; size_t idx; } qpair;

static int qpair_cmp(const void *a, const void *b) {
        const qpair *x = a, *y = b;
        int d = strcmp(x->k, y->k);
        return d ? d : (x->idx < y->idx ? -1 : 1);
}

/* A link to another page of the same list, DRF style: query keys sorted, `page` replaced
 * (page <= 1 for "previous" removes it). */
static json_t *page_link(const http_request *req, int64_t page, bool remove_page) {
        _cleanup_free_ qpair *pairs = NULL;
        _cleanup_free_ char *buf = NULL;
        size_t n = 0, len = 0, cap = 0;
        char pagebuf[32];

        pairs = calloc(req->n_query + 1, sizeof *pairs);
        if (!pairs)
                return NULL;
        for (size_t i = 0; i < req->n_query; i++)
                if (!streq(req->query_keys[i], "page"))
                        pairs[n++] = (qpair) { req->query_keys[i], req->query_values[i], i };
        snprintf(pagebuf, sizeof pagebuf, "%" PRIi64, page);
        if (!remove_page)
                pairs[n++] = (qpair) { "page", pagebuf, req->n_query };
        qsort(pairs, n, sizeof *pairs, qpair_cmp);

        cap = strlen(req->path) + 64;
        buf = malloc(cap);
        if (!buf)
                return NULL;
        len = (size_t) sprintf(buf, "%s", req->path);
        for (size_t i = 0; i < n; i++) {
                if (append_raw(&buf, &len, &cap, i == 0 ? '?' : '&') < 0 ||
                    append_encoded(&buf, &len, &cap, pairs[i].k) < 0 ||
                    append_raw(&buf, &len, &cap, '=') < 0 ||
                    append_encoded(&buf, &len, &cap, pairs[i].v) < 0)
                        return NULL;
        }
        return json_string(buf);
}

static const struct { const char *suffix; storage_filter_op op; } filter_ops[] = {
        { "exact", SF_EQ }, { "iexact", SF_EQ }, { "icontains", SF_ICONTAINS }, { "contains", SF_ICONTAINS },
        { "startswith", SF_STARTSWITH }, { "istartswith", SF_STARTSWITH }, { "gt", SF_GT }, { "gte", SF_GTE },
        { "lt", SF_LT }, { "lte", SF_LTE }, { "in", SF_IN }, { "isnull", SF_ISNULL },
};

static const api_field id_field = { "id", AF_INT };
static const api_field created_fields[] = {
        { "created", AF_DATETIME }, { "modified", AF_DATETIME },
};

/* Convert one filter value text to the field's JSON type. NULL: not convertible. */
static json_t *filter_value(const api_field *f, const char *text) {
        int64_t i;
        int b;

        if ((streq(text, "null") || streq(text, "None")) && f->type != AF_STRING)
                return json_null();
        switch (f->type) {
        case AF_INT:
        case AF_FK:
                return parse_int_text(text, &i) ? json_integer(i) : NULL;
        case AF_BOOL:
                b = parse_bool_text(text);
                return b < 0 ? NULL : json_boolean(b);
        case AF_FLOAT: {
                char *end;
                double d = strtod(text, &end);
                return *end || end == text ? NULL : json_real(d);
        }
        default:
                return json_string(text);
        }
}

static int parse_filter(const api_list_spec *spec, const char *key, const char *text, json_t *hold,
                        list_filter *ret, http_response *resp) {
        _cleanup_free_ char *name = NULL;
        const api_field *f;
        const char *k = key, *p;
        list_filter lf = {};
        json_t *val;
        char *sep;

        if ((p = startswith(k, "not__"))) {
                lf.f.negate = true;
                k = p;
        } else if ((p = startswith(k, "or__"))) {
                lf.f.or_group = true;
                k = p;
        }
        name = strdup(k);
        if (!name)
                return -ENOMEM;
        lf.f.op = SF_EQ;
        sep = strstr(name, "__");
        if (sep) {
                bool found = false;
                *sep = 0;
                for (size_t i = 0; i < ELEMENTSOF(filter_ops); i++)
                        if (streq(sep + 2, filter_ops[i].suffix)) {
                                lf.f.op = filter_ops[i].op;
                                lf.iexact = streq(sep + 2, "iexact");
                                found = true;
                        }
                if (!found) {
                        http_respond_detail(resp, 400, "Invalid filter field or lookup: %s", key);
                        return 1;
                }
        }
        f = streq(name, "id") ? &id_field : api_field_find(spec->fields, name);
        if (!f && streq(name, "created"))
                f = &created_fields[0];
        if (!f && streq(name, "modified"))
                f = &created_fields[1];
        if (!f || (f->flags & AFF_WRITEONLY)) {
                http_respond_detail(resp, 400, "Cannot filter on field \"%s\": no such field.", name);
                return 1;
        }
        lf.f.field = f->name;

        if (lf.f.op == SF_ISNULL) {
                int b = parse_bool_text(text);
                if (b < 0) {
                        http_respond_detail(resp, 400, "Invalid value \"%s\" for %s: expected a boolean.", text, key);
                        return 1;
                }
                val = json_boolean(b);
        } else if (lf.f.op == SF_ICONTAINS || lf.f.op == SF_STARTSWITH || lf.iexact) {
                val = json_string(text);
                if (lf.iexact)
                        lf.f.op = SF_ICONTAINS;    /* narrowed in SQL, checked exactly in memory */
        } else if (lf.f.op == SF_IN) {
                _cleanup_free_ char *copy = strdup(text);
                char *save = NULL;
                size_t n = 0;
                val = json_array();
                if (!copy || !val) {
                        json_decref(val);
                        return -ENOMEM;
                }
                for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                        json_t *e = filter_value(f, t);
                        if (!e || ++n > API_MAX_FILTER_VALUES) {
                                json_decref(e);
                                json_decref(val);
                                http_respond_detail(resp, 400, "Invalid value \"%s\" for %s.", t, key);
                                return 1;
                        }
                        json_array_append_new(val, e);
                }
        } else {
                val = filter_value(f, text);
                if (!val) {
                        http_respond_detail(resp, 400, "Invalid value \"%s\" for %s: expected %s.", text, key,
                                            f->type == AF_BOOL ? "a boolean" : "an integer");
                        return 1;
                }
        }
        if (!val || json_array_append_new(hold, val) < 0)
                return -ENOMEM;
        lf.f.value = val;
        *ret = lf;
        return 0;
}

static bool iexact_match(const json_t *doc, const list_filter *lf) {
        const char *v = json_get_string(doc, lf->f.field, NULL);
        bool m = v && strcasecmp(v, json_string_value(lf->f.value)) == 0;
        return lf->f.negate ? !m : m;
}

static int id_cmp(const void *a, const void *b) {
        int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
        return x < y ? -1 : x > y;
}

/* Query values become JSON strings (filters, page links): jansson refuses invalid UTF-8, so it
 * is the check (found by fuzzing: ?name__icontains=%FF answered 500). */
static bool text_is_utf8(const char *s) {
        json_t *j = json_string(s);
        bool ok = j;

        json_decref(j);
        return ok;
}

int api_list(controller *c, http_request *req, http_response *resp, const api_list_spec *spec) {
        _cleanup_json_ json_t *hold = json_array(), *results = NULL, *out_results = NULL;
        _cleanup_free_ list_filter *lfs = NULL;
        _cleanup_free_ storage_filter *sfs = NULL;
        _cleanup_free_ char *order = NULL;
        size_t n = 0, n_iexact = 0;
        int64_t page = 1, page_size = API_PAGE_SIZE_DEFAULT, count = 0;
        const char *s;
        int q;

        if (!hold)
                return -ENOMEM;
        lfs = calloc(API_MAX_FILTERS, sizeof *lfs);
        sfs = calloc(API_MAX_FILTERS + spec->n_extra, sizeof *sfs);
        if (!lfs || !sfs)
                return -ENOMEM;

        for (size_t i = 0; i < req->n_query; i++)
                if (!text_is_utf8(req->query_keys[i]) || !text_is_utf8(req->query_values[i]))
                        return http_respond_detail(resp, 400, "Invalid query string: not valid UTF-8.");
        if ((s = http_query_get(req, "page")) && (!parse_int_text(s, &page) || page < 1 || page > 1000000000))
                return http_respond_detail(resp, 404, "Invalid page.");
        if ((s = http_query_get(req, "page_size")) && parse_int_text(s, &page_size)) {
                if (page_size < 1)
                        page_size = API_PAGE_SIZE_DEFAULT;
                page_size = MIN(page_size, API_PAGE_SIZE_MAX);
        }
        s = http_query_get(req, "order_by");
        if (!isempty(s)) {
                const char *fname;
                order = strndup(s, strcspn(s, ","));
                if (!order)
                        return -ENOMEM;
                fname = order[0] == '-' ? order + 1 : order;
                if (!streq(fname, "id") && !streq(fname, "created") && !streq(fname, "modified") &&
                    !api_field_find(spec->fields, fname))
                        return http_respond_detail(resp, 400, "Cannot order by field \"%s\": no such field.", fname);
        }

        for (size_t i = 0; i < req->n_query; i++) {
                bool skip = false;
                for (const char *const *ig = ignored_query_keys; *ig; ig++)
                        skip = skip || streq(*ig, req->query_keys[i]);
                if (skip)
                        continue;
                if (n >= API_MAX_FILTERS)
                        return http_respond_detail(resp, 400, "Too many filters (at most %d).", API_MAX_FILTERS);
                q = parse_filter(spec, req->query_keys[i], req->query_values[i], hold, &lfs[n], resp);
                if (q != 0)
                        return q < 0 ? q : 0;
                n_iexact += lfs[n].iexact;
                n++;
        }
        for (size_t i = 0; i < n; i++)
                sfs[i] = lfs[i].f;
        for (size_t i = 0; i < spec->n_extra; i++)
                sfs[n + i] = spec->extra[i];

        bool in_memory = n_iexact > 0 || spec->only_ids;
        storage_query query = {
                .filters = sfs, .n_filters = n + spec->n_extra,
                .order_by = order ? order : spec->default_order,
                .limit = in_memory ? 0 : page_size,
                .offset = in_memory ? 0 : (page - 1) * page_size,
        };
        q = spec->list(c, spec->userdata, &query, &results, &count);
        if (q == -EINVAL)
                return http_respond_detail(resp, 400, "Invalid filter.");
        if (q < 0)
                return api_storage_error(resp, q, "list");

        if (in_memory) {
                /* exact case-insensitive matches and id sets, paginated here */
                _cleanup_json_ json_t *kept = json_array();
                json_t *it;
                size_t idx;
                if (!kept)
                        return -ENOMEM;
                json_array_foreach(results, idx, it) {
                        int64_t id = json_get_int(it, "id", 0);
                        bool ok = !spec->only_ids ||
                                  bsearch(&id, spec->only_ids, spec->n_only_ids, sizeof(int64_t), id_cmp);
                        for (size_t i = 0; i < n; i++)
                                if (lfs[i].iexact && !lfs[i].f.or_group)
                                        ok = ok && iexact_match(it, &lfs[i]);
                        if (ok)
                                json_array_append(kept, it);
                }
                count = (int64_t) json_array_size(kept);
                json_decref(results);
                results = json_array();
                if (!results)
                        return -ENOMEM;
                for (int64_t i = (page - 1) * page_size; i < count && i < page * page_size; i++)
                        json_array_append(results, json_array_get(kept, (size_t) i));
        }
        if (page > 1 && json_array_size(results) == 0)
                return http_respond_detail(resp, 404, "Invalid page.");

        out_results = json_array();
        if (!out_results)
                return -ENOMEM;
        for (size_t i = 0; i < json_array_size(results); i++) {
                json_t *o;
                q = spec->render(c, spec->userdata, json_array_get(results, i), &o);
                if (q < 0)
                        return q;
                json_array_append_new(out_results, o);
        }
        json_t *next = page * page_size < count ? page_link(req, page + 1, false) : json_null();
        json_t *prev = page > 1 ? page_link(req, page - 1, page - 1 <= 1) : json_null();
        return http_respond(resp, 200, json_pack("{s:I,s:o*,s:o*,s:O}", "count", (json_int_t) count,
                                                 "next", next ? next : json_null(), "previous", prev ? prev : json_null(),
                                                 "results", out_results));
}

/* ---- generic object handlers ---- */

static int list_objects(controller *c, void *userdata, const storage_query *q, json_t **ret_results, int64_t *ret_count) {
        const api_resource *r = userdata;
        return storage_obj_list(c->storage, r->type, q, ret_results, ret_count);
}

static int render_object(controller *c, void *userdata, const json_t *doc, json_t **ret) {
        return api_render(c, userdata, doc, ret);
}

int api_obj_list(controller *c, http_request *req, http_response *resp, const api_resource *r,
                 const storage_filter *extra, size_t n_extra) {
        api_list_spec spec = {
                .fields = r->fields, .list = list_objects, .render = render_object, .userdata = (void *) r,
                .extra = extra, .n_extra = n_extra,
        };
        return api_list(c, req, resp, &spec);
}

int api_obj_list_ids(controller *c, http_request *req, http_response *resp, const api_resource *r,
                     const int64_t *ids, size_t n_ids) {
        api_list_spec spec = {
                .fields = r->fields, .list = list_objects, .render = render_object, .userdata = (void *) r,
                .only_ids = ids, .n_only_ids = n_ids,
        };
        return api_list(c, req, resp, &spec);
}

int api_obj_get(controller *c, http_request *req, http_response *resp, const api_resource *r) {
        _cleanup_json_ json_t *doc = NULL;
        json_t *out;
        int q;

        q = storage_obj_get(c->storage, r->type, req->ids[0], &doc);
        if (q == -ENOENT)
                return api_not_found(resp);
        if (q < 0)
                return api_storage_error(resp, q, r->endpoint);
        q = api_render(c, r, doc, &out);
        if (q < 0)
                return q;
        return http_respond(resp, 200, out);
}

typedef struct obj_op {
        controller *c;
        const api_resource *r;
        const json_t *body;
        int64_t id;
        bool partial, refused;
        http_response *resp;
        json_t *doc;            /* the stored document (with id) on success */
} obj_op;

static int refuse(obj_op *op, int q) {
        if (q > 0) {
                op->refused = true;
                return -ECANCELED;
        }
        return q;
}

static int op_create(storage *s, void *userdata) {
        obj_op *op = userdata;
        char now[32];
        int q;

        op->doc = api_defaults(op->r->fields);
        if (!op->doc)
                return -ENOMEM;
        api_now(now);
        json_object_set_new(op->doc, "created", json_string(now));
        json_object_set_new(op->doc, "modified", json_string(now));
        q = api_validate_into(op->c, op->r, op->body, op->doc, false, op->resp);
        if (q != 0)
                return refuse(op, q);
        if (op->r->check) {
                q = op->r->check(op->c, op->r, op->doc, 0, op->resp);
                if (q != 0)
                        return refuse(op, q);
        }
        q = api_check_unique(op->c, op->r, op->doc, op->resp);
        if (q != 0)
                return refuse(op, q);
        q = storage_obj_create(s, op->r->type, op->doc, &op->id);
        if (q < 0)
                return q;
        return json_object_set_new(op->doc, "id", json_integer(op->id));
}

static int op_update(storage *s, void *userdata) {
        obj_op *op = userdata;
        char now[32];
        int q;

        q = storage_obj_get(s, op->r->type, op->id, &op->doc);
        if (q == -ENOENT)
                return refuse(op, api_not_found(op->resp) + 1);
        if (q < 0)
                return q;
        q = api_validate_into(op->c, op->r, op->body, op->doc, op->partial, op->resp);
        if (q != 0)
                return refuse(op, q);
        if (op->r->check) {
                q = op->r->check(op->c, op->r, op->doc, op->id, op->resp);
                if (q != 0)
                        return refuse(op, q);
        }
        q = api_check_unique(op->c, op->r, op->doc, op->resp);
        if (q != 0)
                return refuse(op, q);
        json_object_set_new(op->doc, "modified", json_string(api_now(now)));
        json_object_del(op->doc, "id");
        q = storage_obj_replace(s, op->r->type, op->id, op->doc);
        if (q < 0)
                return q;
        return json_object_set_new(op->doc, "id", json_integer(op->id));
}

static void after_change(controller *c, const api_resource *r) {
        int q;

        if (!r->schedule)
                return;
        q = scheduler_run(c);
        if (q < 0)
                log_warning_errno(q, "Scheduler run after a change of %s failed: %m", r->endpoint);
        controller_notify(c);
}

static int finish_op(obj_op *op, int q, unsigned status, int64_t *ret_id) {
        json_t *out;

        if (op->refused) {
                json_decref(op->doc);
                return 0;
        }
        if (q < 0) {
                json_decref(op->doc);
                return api_storage_error(op->resp, q, op->r->endpoint);
        }
        after_change(op->c, op->r);
        q = api_render(op->c, op->r, op->doc, &out);
        json_decref(op->doc);
        if (q < 0)
                return q;
        if (ret_id)
                *ret_id = op->id;
        return http_respond(op->resp, status, out);
}

int api_obj_create_body(controller *c, http_response *resp, const api_resource *r, json_t *body, int64_t *ret_id) {
        obj_op op = { .c = c, .r = r, .body = body, .resp = resp };
        int q;

        q = storage_transaction(c->storage, op_create, &op);
        return finish_op(&op, q, 201, ret_id);
}

int api_obj_create(controller *c, http_request *req, http_response *resp, const api_resource *r,
                   const char *parent_field, int64_t parent_id, int64_t *ret_id) {
        _cleanup_json_ json_t *body = NULL;

        if (http_request_json_object(req, resp, &body) < 0)
                return 0;
        if (parent_field && json_object_set_new(body, parent_field, json_integer(parent_id)) < 0)
                return -ENOMEM;
        return api_obj_create_body(c, resp, r, body, ret_id);
}

int api_obj_update(controller *c, http_request *req, http_response *resp, const api_resource *r, bool partial) {
        _cleanup_json_ json_t *body = NULL;
        obj_op op = { .c = c, .r = r, .id = req->ids[0], .partial = partial, .resp = resp };
        int q;

        if (http_request_json_object(req, resp, &body) < 0)
                return 0;
        op.body = body;
        q = storage_transaction(c->storage, op_update, &op);
        return finish_op(&op, q, 200, NULL);
}

/* Relations to forget when an object goes away: (type, relation, side). */
static const struct { storage_type type; storage_rel rel; bool reverse; } purges[] = {
        { ST_GROUP, SR_GROUP_HOSTS, false },
        { ST_GROUP, SR_GROUP_CHILDREN, false },
        { ST_GROUP, SR_GROUP_CHILDREN, true },
        { ST_HOST, SR_GROUP_HOSTS, true },
        { ST_INSTANCE_GROUP, SR_INSTANCE_GROUP_INSTANCES, false },
        { ST_INSTANCE_GROUP, SR_JOB_TEMPLATE_INSTANCE_GROUPS, true },
        { ST_INSTANCE_GROUP, SR_ORGANIZATION_INSTANCE_GROUPS, true },
        { ST_INSTANCE_GROUP, SR_INVENTORY_INSTANCE_GROUPS, true },
        { ST_INSTANCE, SR_INSTANCE_GROUP_INSTANCES, true },
        { ST_JOB_TEMPLATE, SR_JOB_TEMPLATE_INSTANCE_GROUPS, false },
        { ST_ORGANIZATION, SR_ORGANIZATION_INSTANCE_GROUPS, false },
        { ST_INVENTORY, SR_INVENTORY_INSTANCE_GROUPS, false },
};

/* Objects deleted with their parent: (parent type, child type, child's fk field). */
static const struct { storage_type parent, child; const char *field; } cascades[] = {
        { ST_INVENTORY, ST_HOST, "inventory" },
        { ST_INVENTORY, ST_GROUP, "inventory" },
        { ST_USER, ST_TOKEN, "user" },
};

static int delete_tree(storage *s, storage_type t, int64_t id, unsigned depth) {
        int q;

        for (size_t i = 0; i < ELEMENTSOF(cascades) && depth < 4; i++) {
                _cleanup_json_ json_t *children = NULL, *idv = json_integer(id);
                storage_filter f = { .field = cascades[i].field, .op = SF_EQ, .value = idv };
                storage_query query = { .filters = &f, .n_filters = 1 };
                json_t *it;
                size_t j;

                if (cascades[i].parent != t)
                        continue;
                if (!idv)
                        return -ENOMEM;
                q = storage_obj_list(s, cascades[i].child, &query, &children, NULL);
                if (q < 0)
                        return q;
                json_array_foreach(children, j, it) {
                        q = delete_tree(s, cascades[i].child, json_get_int(it, "id", 0), depth + 1);
                        if (q < 0)
                                return q;
                }
        }
        for (size_t i = 0; i < ELEMENTSOF(purges); i++)
                if (purges[i].type == t) {
                        q = storage_rel_purge(s, purges[i].rel, id, purges[i].reverse);
                        if (q < 0)
                                return q;
                }
        q = storage_obj_delete(s, t, id);
        return q == -ENOENT ? 0 : q;
}

static int op_delete(storage *s, void *userdata) {
        obj_op *op = userdata;
        int q;

        q = storage_obj_get(s, op->r->type, op->id, &op->doc);
        if (q == -ENOENT)
                return refuse(op, api_not_found(op->resp) + 1);
        if (q < 0)
                return q;
        if (op->r->before_delete) {
                q = op->r->before_delete(op->c, op->r, op->doc, op->resp);
                if (q != 0)
                        return refuse(op, q);
        }
        return delete_tree(s, op->r->type, op->id, 0);
}

int api_obj_delete(controller *c, http_request *req, http_response *resp, const api_resource *r) {
        obj_op op = { .c = c, .r = r, .id = req->ids[0], .resp = resp };
        int q;

        q = storage_transaction(c->storage, op_delete, &op);
        json_decref(op.doc);
        if (op.refused)
                return 0;
        if (q < 0)
                return api_storage_error(resp, q, r->endpoint);
        after_change(c, r);
        resp->status = 204;
        return 0;
}
