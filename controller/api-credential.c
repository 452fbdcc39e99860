/* api-credential.c: credential types and credentials (/api/v2/credential_types/, /credentials/).
 * The managed types are seeded under AWX's names at first start; custom types ("cloud" or "net")
 * declare their inputs like AWX ({"fields": [{"id", "label", "type", "secret"}], "required": []}).
 * A credential's secret inputs are encrypted at rest (AES-256-GCM, key <state_dir>/secret.key),
 * shown as "$encrypted$", and kept as stored when a client sends "$encrypted$" back. Secrets are
 * never logged. */
#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>

#include "api.h"
#include "drover/crypto.h"
#include "drover/log.h"
#include "drover/util.h"

#define ENCRYPTED "$encrypted$"
#define CRED_MAX_INPUT (64 * 1024)     /* one input value */
#define CRED_MAX_FIELDS 64             /* fields of a custom credential type */
#define CRED_MAX_ID 64                 /* length of a field id */

static const char *const cred_kinds[] = {
        "ssh", "vault", "net", "scm", "cloud", "registry", "token", "insights", "external", "kubernetes",
        "galaxy", "cryptography", NULL,
};

static const api_field credential_type_fields[] = {
        { "name", AF_STRING, AFF_REQUIRED, NULL, 512 },
        { "description", AF_STRING },
        { "kind", AF_STRING, 0, "\"cloud\"", 32, 0, cred_kinds },
        { "namespace", AF_STRING, AFF_READONLY | AFF_NULLABLE, "null" },
        { "managed", AF_BOOL, AFF_READONLY },
        { "inputs", AF_JSON, 0, "{}" },
        { "injectors", AF_JSON, 0, "{}" },
        {}
};

static const api_field credential_fields[] = {
        { "name", AF_STRING, AFF_REQUIRED, NULL, 512 },
        { "description", AF_STRING },
        { "organization", AF_FK, AFF_NULLABLE, NULL, 0, ST_ORGANIZATION },
        { "credential_type", AF_FK, AFF_REQUIRED | AFF_NULLABLE, NULL, 0, ST_CREDENTIAL_TYPE },
        { "inputs", AF_JSON, 0, "{}" },
        { "managed", AF_BOOL, AFF_READONLY },
        { "kind", AF_STRING, AFF_READONLY | AFF_NULLABLE, "null" },
        { "cloud", AF_BOOL, AFF_READONLY },
        { "kubernetes", AF_BOOL, AFF_READONLY },
        {}
};

/* ---- managed credential types ---- */

#define F_STR(id, label) "{\"id\":\"" id "\",\"label\":\"" label "\",\"type\":\"string\"}"
#define F_SECRET(id, label) "{\"id\":\"" id "\",\"label\":\"" label "\",\"type\":\"string\",\"secret\":true}"
#define F_BOOL(id, label, def) \
        "{\"id\":\"" id "\",\"label\":\"" label "\",\"type\":\"boolean\",\"default\":" def "}"

static const struct {
        const char *name, *kind, *namespace, *inputs;
} managed_types[] = {
        /* the first four in this order (ids 1-4 on a new database) */
        { "Machine", "ssh", "ssh",
          "{\"fields\":[" F_STR("username", "Username") "," F_SECRET("password", "Password") ","
          F_SECRET("ssh_key_data", "SSH Private Key") "," F_STR("ssh_public_key_data", "Signed SSH Certificate") ","
          F_SECRET("ssh_key_unlock", "Private Key Passphrase") "," F_STR("become_method", "Privilege Escalation Method") ","
          F_STR("become_username", "Privilege Escalation Username") ","
          F_SECRET("become_password", "Privilege Escalation Password") "],\"required\":[]}" },
        { "Source Control", "scm", "scm",
          "{\"fields\":[" F_STR("username", "Username") "," F_SECRET("password", "Password") ","
          F_SECRET("ssh_key_data", "SCM Private Key") "," F_SECRET("ssh_key_unlock", "Private Key Passphrase")
          "],\"required\":[]}" },
        { "Vault", "vault", "vault",
          "{\"fields\":[" F_SECRET("vault_password", "Vault Password") "," F_STR("vault_id", "Vault Identifier")
          "],\"required\":[\"vault_password\"]}" },
        { "Container Registry", "registry", "registry",
          "{\"fields\":[" F_STR("host", "Authentication URL") "," F_STR("username", "Username") ","
          F_SECRET("password", "Password or Token") "," F_BOOL("verify_ssl", "Verify SSL", "true")
          "],\"required\":[\"host\"]}" },
        { "Network", "net", "net",
          "{\"fields\":[" F_STR("username", "Username") "," F_SECRET("password", "Password") ","
          F_SECRET("ssh_key_data", "SSH Private Key") "," F_SECRET("ssh_key_unlock", "Private Key Passphrase") ","
          F_BOOL("authorize", "Authorize", "false") "," F_SECRET("authorize_password", "Authorize Password")
          "],\"required\":[\"username\"]}" },
        { "Amazon Web Services", "cloud", "aws",
          "{\"fields\":[" F_STR("username", "Access Key") "," F_SECRET("password", "Secret Key") ","
          F_SECRET("security_token", "STS Token") "],\"required\":[\"username\",\"password\"]}" },
        { "GitHub Personal Access Token", "token", "github_token",
          "{\"fields\":[" F_SECRET("token", "Token") "],\"required\":[\"token\"]}" },
        { "GitLab Personal Access Token", "token", "gitlab_token",
          "{\"fields\":[" F_SECRET("token", "Token") "],\"required\":[\"token\"]}" },
        { "Ansible Galaxy/Automation Hub API Token", "galaxy", "galaxy_api_token",
          "{\"fields\":[" F_STR("url", "Galaxy Server URL") "," F_STR("auth_url", "Auth Server URL") ","
          F_SECRET("token", "API Token") "],\"required\":[\"url\"]}" },
};

static int seed_doc(controller *c, const api_resource *r, json_t *fields, int64_t *ret_id) {
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

int api_credential_bootstrap(controller *c) {
        int q;

        for (size_t i = 0; i < ELEMENTSOF(managed_types); i++) {
                _cleanup_json_ json_t *found = NULL, *fields = NULL, *inputs = NULL;
                int64_t id;

                q = storage_obj_find(c->storage, ST_CREDENTIAL_TYPE, "name", managed_types[i].name, &found);
                if (q >= 0)
                        continue;
                if (q != -ENOENT)
                        return log_error_errno(q, "Failed to look up credential type %s: %m", managed_types[i].name);
                inputs = json_loads(managed_types[i].inputs, 0, NULL);
                if (!inputs)
                        return log_error_errno(-EINVAL, "Bad built-in inputs of credential type %s.", managed_types[i].name);
                fields = json_pack("{s:s,s:s,s:s,s:b,s:O,s:{}}", "name", managed_types[i].name, "kind",
                                   managed_types[i].kind, "namespace", managed_types[i].namespace, "managed", 1,
                                   "inputs", inputs, "injectors");
                if (!fields)
                        return log_oom();
                q = seed_doc(c, &api_res_credential_type, fields, &id);
                if (q < 0)
                        return log_error_errno(q, "Failed to create credential type %s: %m", managed_types[i].name);
        }
        return 0;
}

/* ---- the secret key ---- */

int api_credential_key(controller *c, crypto_key *ret) {
        static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
        static char *cached_path;
        static crypto_key cached;
        _cleanup_free_ char *path = strjoin(c->config->state_dir, "/secret.key", NULL);
        crypto_key k;
        int q = 0;

        if (!path)
                return -ENOMEM;
        pthread_mutex_lock(&lock);
        if (cached_path && streq(cached_path, path))
                k = cached;
        else {
                q = mkdir_p(c->config->state_dir, 0700);
                if (q >= 0)
                        q = crypto_key_load_or_create(path, &k);
                if (q >= 0) {
                        free(cached_path);
                        cached_path = TAKE_PTR(path);
                        cached = k;
                }
        }
        pthread_mutex_unlock(&lock);
        if (q < 0)
                return log_error_errno(q, "Failed to load the secret key %s/secret.key: %m", c->config->state_dir);
        *ret = k;
        explicit_bzero(&k, sizeof k);
        return 0;
}

/* ---- type inputs ---- */

/* The field declaration {"id", ...} of input `id` in a credential type, or NULL. */
static const json_t *type_field(const json_t *type, const char *id) {
        const json_t *fields = json_object_get(json_object_get(type, "inputs"), "fields"), *it;
        size_t i;

        json_array_foreach(fields, i, it)
                if (streq(json_get_string(it, "id", ""), id))
                        return it;
        return NULL;
}

static bool field_is_secret(const json_t *f) {
        return json_get_bool(f, "secret", false);
}

static bool field_is_bool(const json_t *f) {
        return streq(json_get_string(f, "type", "string"), "boolean");
}

int api_credential_input(controller *c, const json_t *cred, const char *id, char **ret) {
        _cleanup_json_ json_t *type = NULL;
        const json_t *v = json_object_get(json_object_get(cred, "inputs"), id), *f;
        crypto_key k;
        char *s;
        int q;

        if (!json_is_string(v) || isempty(json_string_value(v))) {
                s = strdup("");
                if (!s)
                        return -ENOMEM;
                *ret = s;
                return 0;
        }
        q = storage_obj_get(c->storage, ST_CREDENTIAL_TYPE, json_get_int(cred, "credential_type", 0), &type);
        if (q < 0)
                return q;
        f = type_field(type, id);
        if (!f || !field_is_secret(f)) {
                s = strdup(json_string_value(v));
                if (!s)
                        return -ENOMEM;
                *ret = s;
                return 0;
        }
        q = api_credential_key(c, &k);
        if (q < 0)
                return q;
        q = crypto_decrypt(&k, json_string_value(v), &s);
        explicit_bzero(&k, sizeof k);
        if (q < 0)
                return q;
        *ret = s;
        return 0;
}

/* ---- checks ---- */

static bool valid_input_id(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > CRED_MAX_ID || !(isalpha((unsigned char) s[0]) || s[0] == '_'))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char) s[i]) && s[i] != '_')
                        return false;
        return true;
}

/* A custom type's inputs: {"fields": [{"id", "label", "type": "string"|"boolean", "secret"}],
 * "required": [ids]}. On error fills msg and returns false. */
static bool check_type_inputs(const json_t *inputs, char *msg, size_t msgsz) {
        const json_t *fields, *required, *it, *v;
        const char *key;
        size_t i, j;

        if (!json_is_object(inputs)) {
                snprintf(msg, msgsz, "Must be a JSON object.");
                return false;
        }
        json_object_foreach((json_t *) inputs, key, v)
                if (!streq(key, "fields") && !streq(key, "required")) {
                        snprintf(msg, msgsz, "Additional properties are not allowed ('%.64s' was unexpected)", key);
                        return false;
                }
        fields = json_object_get(inputs, "fields");
        if (fields && (!json_is_array(fields) || json_array_size(fields) > CRED_MAX_FIELDS)) {
                snprintf(msg, msgsz, "fields must be a list of at most %d input declarations.", CRED_MAX_FIELDS);
                return false;
        }
        json_array_foreach(fields, i, it) {
                const char *id = json_get_string(it, "id", ""), *type = json_get_string(it, "type", "string");
                if (!json_is_object(it) || !valid_input_id(id)) {
                        snprintf(msg, msgsz, "fields[%zu]: id must match [a-zA-Z_][a-zA-Z0-9_]* (at most %d characters).",
                                 i, CRED_MAX_ID);
                        return false;
                }
                if (!json_is_string(json_object_get(it, "label"))) {
                        snprintf(msg, msgsz, "fields[%zu]: label is required.", i);
                        return false;
                }
                if (!streq(type, "string") && !streq(type, "boolean")) {
                        snprintf(msg, msgsz, "fields[%zu]: type must be \"string\" or \"boolean\".", i);
                        return false;
                }
                if ((v = json_object_get(it, "secret")) && !json_is_boolean(v)) {
                        snprintf(msg, msgsz, "fields[%zu]: secret must be a boolean.", i);
                        return false;
                }
                for (j = 0; j < i; j++)
                        if (streq(json_get_string(json_array_get(fields, j), "id", ""), id)) {
                                snprintf(msg, msgsz, "fields: duplicate id '%s'.", id);
                                return false;
                        }
        }
        required = json_object_get(inputs, "required");
        if (required && !json_is_array(required)) {
                snprintf(msg, msgsz, "required must be a list of field ids.");
                return false;
        }
        json_array_foreach(required, i, it) {
                bool found = false;
                json_array_foreach(fields, j, v)
                        if (json_is_string(it) && streq(json_get_string(v, "id", ""), json_string_value(it)))
                                found = true;
                if (!found) {
                        snprintf(msg, msgsz, "required[%zu] names no declared field.", i);
                        return false;
                }
        }
        return true;
}

static int check_credential_type(controller *c, const api_resource *r, json_t *doc, int64_t id, http_response *resp) {
        const char *kind = json_get_string(doc, "kind", "");
        char msg[256];

        if (json_get_bool(doc, "managed", false)) {
                http_respond_detail(resp, 403, "Modifications not allowed for managed credential types");
                return 1;
        }
        if (!streq(kind, "cloud") && !streq(kind, "net")) {
                http_respond_field_error(resp, "kind", "Must be 'cloud' or 'net', not %s", kind);
                return 1;
        }
        if (!check_type_inputs(json_object_get(doc, "inputs"), msg, sizeof msg)) {
                http_respond_field_error(resp, "inputs", "%s", msg);
                return 1;
        }
        if (!json_is_object(json_object_get(doc, "injectors"))) {
                http_respond_field_error(resp, "injectors", "Must be a JSON object.");
                return 1;
        }
        return 0;
}

static int credential_type_before_delete(controller *c, const api_resource *r, const json_t *doc, http_response *resp) {
        _cleanup_json_ json_t *users = NULL, *idv = json_integer(json_get_int(doc, "id", 0));
        storage_filter f = { .field = "credential_type", .op = SF_EQ, .value = idv };
        storage_query q1 = { .filters = &f, .n_filters = 1, .limit = 1 };
        int q;

        if (json_get_bool(doc, "managed", false)) {
                http_respond_detail(resp, 403, "Deletion not allowed for managed credential types");
                return 1;
        }
        if (!idv)
                return -ENOMEM;
        q = storage_obj_list(c->storage, ST_CREDENTIAL, &q1, &users, NULL);
        if (q < 0)
                return q;
        if (json_array_size(users) > 0) {
                http_respond_detail(resp, 403, "Credential types that are in use cannot be deleted");
                return 1;
        }
        return 0;
}

/* {"inputs": {"<field>": ["<message>"]}}, AWX's shape for input errors. */
static int inputs_error(http_response *resp, const char *field, const char *fmt, ...) _printf_(3, 4);
static int inputs_error(http_response *resp, const char *field, const char *fmt, ...) {
        _cleanup_free_ char *m = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0)
                m = NULL;
        va_end(ap);
        if (!m)
                return -ENOMEM;
        http_respond(resp, 400, json_pack("{s:{s:[s]}}", "inputs", field, m));
        return 1;
}

static int check_credential(controller *c, const api_resource *r, json_t *doc, int64_t id, http_response *resp) {
        _cleanup_json_ json_t *type = NULL, *old = NULL;
        json_t *inputs = json_object_get(doc, "inputs"), *v, *req_ids, *it;
        const json_t *old_inputs = NULL;
        const char *key;
        crypto_key k;
        bool have_key = false;
        size_t i;
        int q;

        if (storage_obj_get(c->storage, ST_CREDENTIAL_TYPE, json_get_int(doc, "credential_type", 0), &type) < 0) {
                http_respond_field_error(resp, "credential_type", "This field is required.");
                return 1;
        }
        if (!json_is_object(inputs)) {
                http_respond_field_error(resp, "inputs", "Must be a JSON object.");
                return 1;
        }
        if (id > 0 && storage_obj_get(c->storage, ST_CREDENTIAL, id, &old) >= 0 &&
            json_get_int(old, "credential_type", 0) == json_get_int(doc, "credential_type", 0))
                old_inputs = json_object_get(old, "inputs");

        json_object_foreach(inputs, key, v) {
                const json_t *f = type_field(type, key);
                if (!f)
                        return inputs_error(resp, key, "Additional properties are not allowed ('%.64s' was unexpected)", key);
                if (field_is_bool(f)) {
                        if (!json_is_boolean(v))
                                return inputs_error(resp, key, "%s is not of type 'boolean'",
                                                    json_is_string(v) ? "a string" : "this value");
                        continue;
                }
                if (!json_is_string(v))
                        return inputs_error(resp, key, "This value is not of type 'string'");
                if (json_string_length(v) > CRED_MAX_INPUT)
                        return inputs_error(resp, key, "Ensure this value has no more than %d characters.", CRED_MAX_INPUT);
        }
        req_ids = json_object_get(json_object_get(type, "inputs"), "required");
        json_array_foreach(req_ids, i, it) {
                const char *rid = json_string_value(it);
                v = rid ? json_object_get(inputs, rid) : NULL;
                if (rid && (!v || (json_is_string(v) && json_string_length(v) == 0)))
                        return inputs_error(resp, rid, "required for %s", json_get_string(type, "name", "?"));
        }

        /* encrypt the secrets: "$encrypted$" keeps the stored value, an unchanged stored
         * ciphertext stays, "" stays empty, anything else is a new plaintext */
        json_object_foreach(inputs, key, v) {
                const json_t *f = type_field(type, key), *prev = json_object_get(old_inputs, key);
                const char *s = json_string_value(v);
                _cleanup_free_ char *enc = NULL;

                if (!field_is_secret(f) || isempty(s))
                        continue;
                if (streq(s, ENCRYPTED)) {
                        if (!json_is_string(prev))
                                return inputs_error(resp, key, "\"$encrypted$\" stands for a stored secret, and none is stored.");
                        json_object_set(inputs, key, (json_t *) prev);
                        continue;
                }
                if (json_is_string(prev) && streq(s, json_string_value(prev)) && startswith(s, ENCRYPTED))
                        continue;
                if (!have_key) {
                        q = api_credential_key(c, &k);
                        if (q < 0)
                                return q;
                        have_key = true;
                }
                q = crypto_encrypt(&k, s, &enc);
                if (q < 0) {
                        explicit_bzero(&k, sizeof k);
                        return log_error_errno(q, "Failed to encrypt input %s of a credential: %m", key);
                }
                json_object_set_new(inputs, key, json_string(enc));
        }
        if (have_key)
                explicit_bzero(&k, sizeof k);

        /* derived, as AWX shows them */
        v = json_object_get(type, "namespace");
        json_object_set(doc, "kind", json_is_string(v) ? v : json_null());
        json_object_set_new(doc, "cloud", json_boolean(streq(json_get_string(type, "kind", ""), "cloud")));
        json_object_set_new(doc, "kubernetes", json_boolean(streq(json_get_string(type, "kind", ""), "kubernetes")));
        json_object_set_new(doc, "managed", json_false());
        return 0;
}

/* Output: secret inputs that hold something show as "$encrypted$". */
static int render_credential(controller *c, const api_resource *r, const json_t *doc, json_t *out) {
        _cleanup_json_ json_t *type = NULL;
        json_t *inputs = json_deep_copy(json_object_get(doc, "inputs")), *v;
        const char *key;

        if (!inputs)
                inputs = json_object();
        if (!inputs)
                return -ENOMEM;
        (void) storage_obj_get(c->storage, ST_CREDENTIAL_TYPE, json_get_int(doc, "credential_type", 0), &type);
        json_object_foreach(inputs, key, v) {
                const json_t *f = type ? type_field(type, key) : NULL;
                /* without the type, anything encrypted is still hidden */
                if ((f ? field_is_secret(f) : (json_is_string(v) && startswith(json_string_value(v), ENCRYPTED))) &&
                    json_is_string(v) && json_string_length(v) > 0)
                        json_object_set_new(inputs, key, json_string(ENCRYPTED));
        }
        return json_object_set_new(out, "inputs", inputs);
}

#define RELATED(...) (const char *const[]) { __VA_ARGS__, NULL }

const api_resource api_res_credential_type = {
        ST_CREDENTIAL_TYPE, "credential_types", "credential_type", "Credential Type", credential_type_fields, "name",
        NULL, RELATED("credentials"),
        .check = check_credential_type, .before_delete = credential_type_before_delete,
};

const api_resource api_res_credential = {
        ST_CREDENTIAL, "credentials", "credential", "Credential", credential_fields, "name", "organization", NULL,
        .check = check_credential, .render = render_credential,
};
