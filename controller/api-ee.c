/* api-ee.c: execution environments: the /api/v2/execution_environments/ resource (AWX's fields,
 * three managed defaults seeded at start with images from the controller config) and the
 * resolution of the EE a job runs in (AWX's order: the job's own, from its template or launch
 * prompt; the project's default_environment; the organization's; the global default from the
 * controller config; none: the plain systemd runtime). See controller.h and docs/api.md. */
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "api.h"
#include "drover/log.h"
#include "drover/util.h"

#define EE_DEFAULT_IMAGE "localhost/drover-ee:latest"

static const char *const pull_choices[] = { "", "always", "missing", "never", NULL };

static const api_field ee_fields[] = {
        { "name", AF_STRING, AFF_REQUIRED, NULL, 512 },
        { "description", AF_STRING },
        { "organization", AF_FK, AFF_NULLABLE, NULL, 0, ST_ORGANIZATION },
        { "image", AF_STRING, AFF_REQUIRED, NULL, 1024 },
        { "managed", AF_BOOL, AFF_READONLY },
        { "credential", AF_FK, AFF_NULLABLE, NULL, 0, ST_CREDENTIAL },
        { "pull", AF_STRING, 0, NULL, 16, 0, pull_choices },
        {}
};

/* ---- the managed defaults ---- */

typedef struct managed_ee {
        const char *name, *description;
        size_t config_offset;          /* the char * in controller_config holding its image */
} managed_ee;

static const managed_ee managed_ees[] = {
        { "Default execution environment", "The image jobs run in when nothing else is chosen and a global default names it",
          offsetof(controller_config, ee_default_image) },
        { "Control Plane Execution Environment", "The image for controller-side work",
          offsetof(controller_config, ee_control_plane_image) },
        { "drover EE (latest)", "drover's execution environment image (ansible-core on Debian)",
          offsetof(controller_config, ee_latest_image) },
};

static const char *managed_image(controller *c, const managed_ee *m) {
        const char *img = *(char *const *) ((const char *) c->config + m->config_offset);
        return isempty(img) ? EE_DEFAULT_IMAGE : img;
}

static int find_managed(controller *c, const char *name, json_t **ret) {
        _cleanup_json_ json_t *results = NULL, *namev = json_string(name);
        storage_filter f[] = {
                { .field = "name", .op = SF_EQ, .value = namev },
                { .field = "managed", .op = SF_EQ, .value = json_true() },
        };
        storage_query q = { .filters = f, .n_filters = ELEMENTSOF(f), .limit = 1 };
        int r;

        if (!namev)
                return -ENOMEM;
        r = storage_obj_list(c->storage, ST_EXECUTION_ENVIRONMENT, &q, &results, NULL);
        if (r < 0)
                return r;
        if (json_array_size(results) == 0)
                return -ENOENT;
        *ret = json_incref(json_array_get(results, 0));
        return 0;
}

int api_ee_bootstrap(controller *c) {
        int q;

        for (size_t i = 0; i < ELEMENTSOF(managed_ees); i++) {
                const managed_ee *m = &managed_ees[i];
                const char *image = managed_image(c, m);
                _cleanup_json_ json_t *ee = NULL, *doc = NULL;
                char now[32];
                int64_t id;

                q = find_managed(c, m->name, &ee);
                if (q >= 0) {
                        /* the config decides the images of managed EEs, at every start */
                        if (streq(json_get_string(ee, "image", ""), image))
                                continue;
                        doc = json_pack("{s:s,s:s}", "image", image, "modified", api_now(now));
                        if (!doc)
                                return log_oom();
                        q = storage_obj_patch(c->storage, ST_EXECUTION_ENVIRONMENT, json_get_int(ee, "id", 0), doc);
                        if (q < 0)
                                return log_error_errno(q, "Failed to update the image of execution environment %s: %m", m->name);
                        log_info("Execution environment \"%s\" now uses image %s.", m->name, image);
                        continue;
                }
                if (q != -ENOENT)
                        return log_error_errno(q, "Failed to look up execution environment %s: %m", m->name);
                doc = api_defaults(ee_fields);
                if (!doc)
                        return log_oom();
                api_now(now);
                json_object_set_new(doc, "name", json_string(m->name));
                json_object_set_new(doc, "description", json_string(m->description));
                json_object_set_new(doc, "image", json_string(image));
                json_object_set_new(doc, "managed", json_true());
                json_object_set_new(doc, "pull", json_string("missing"));
                json_object_set_new(doc, "created", json_string(now));
                json_object_set_new(doc, "modified", json_string(now));
                q = storage_obj_create(c->storage, ST_EXECUTION_ENVIRONMENT, doc, &id);
                if (q < 0)
                        return log_error_errno(q, "Failed to create execution environment %s: %m", m->name);
        }
        return 0;
}

/* ---- checks ---- */

/* An image reference: no whitespace or control characters, no leading '-' (podman option). */
static bool image_ok(const char *s) {
        if (isempty(s) || s[0] == '-')
                return false;
        for (; *s; s++)
                if ((unsigned char) *s <= ' ' || *s == 0x7f)
                        return false;
        return true;
}

static int check_ee(controller *c, const api_resource *r, json_t *doc, int64_t id, http_response *resp) {
        _cleanup_json_ json_t *old = NULL, *cred = NULL;
        json_t *credv = json_object_get(doc, "credential");

        if (id > 0 && json_get_bool(doc, "managed", false) && storage_obj_get(c->storage, r->type, id, &old) >= 0) {
                static const char *const fixed[] = { "name", "organization", "image", "credential", NULL };
                for (size_t i = 0; fixed[i]; i++)
                        if (!json_equal(json_object_get(old, fixed[i]) ?: json_null(),
                                        json_object_get(doc, fixed[i]) ?: json_null())) {
                                http_respond_detail(resp, 403,
                                                    "Managed execution environments can only change their pull policy "
                                                    "and description: their images come from the controller config "
                                                    "(execution_environments.*).");
                                return 1;
                        }
        }
        if (!image_ok(json_get_string(doc, "image", ""))) {
                http_respond_field_error(resp, "image",
                                         "Enter a valid image reference (no spaces, not starting with '-').");
                return 1;
        }
        if (json_is_integer(credv)) {
                if (storage_obj_get(c->storage, ST_CREDENTIAL, json_integer_value(credv), &cred) < 0) {
                        http_respond_field_error(resp, "credential", "Invalid pk \"%" PRIi64 "\" - object does not exist.",
                                                 (int64_t) json_integer_value(credv));
                        return 1;
                }
                if (!streq(json_get_string(cred, "kind", ""), "registry")) {
                        http_respond_field_error(resp, "credential",
                                                 "Only Container Registry credentials can be associated with an "
                                                 "Execution Environment");
                        return 1;
                }
        }
        return 0;
}

static int ee_before_delete(controller *c, const api_resource *r, const json_t *doc, http_response *resp) {
        if (json_get_bool(doc, "managed", false)) {
                http_respond_detail(resp, 403, "Managed execution environments cannot be deleted.");
                return 1;
        }
        return 0;
}

const api_resource api_res_execution_environment = {
        ST_EXECUTION_ENVIRONMENT, "execution_environments", "execution_environment", "Execution Environment",
        ee_fields, "name", "organization", NULL,
        .check = check_ee, .before_delete = ee_before_delete,
};

/* ---- resolution ---- */

static int fail(char **ret_error, const char *fmt, ...) _printf_(2, 3);
static int fail(char **ret_error, const char *fmt, ...) {
        char *m = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0)
                m = NULL;
        va_end(ap);
        if (!m)
                return -ENOMEM;
        *ret_error = m;
        return -EINVAL;
}

/* A storage failure that is not about the EE must not fail the job with an EE explanation. */
static int storage_errno(int r) {
        return r == -EINVAL ? -EIO : r;
}

/* The id of the EE the job runs in by AWX's order (0: none) and where it came from.
 * -EINVAL with *ret_error when the global default names no EE. */
static int resolve_id(controller *c, const json_t *job, int64_t *ret_id, char **ret_from, char **ret_error) {
        _cleanup_json_ json_t *project = NULL, *org = NULL, *ee = NULL;
        const char *gd = c->config->ee_global_default;
        json_t *v = json_object_get(job, "execution_environment");
        int64_t org_id;
        char *from;
        int r;

        if (json_is_integer(v)) {
                from = strdup("the job (its template or launch)");
                goto found;
        }
        if (json_is_integer(json_object_get(job, "project"))) {
                r = storage_obj_get(c->storage, ST_PROJECT, json_get_int(job, "project", 0), &project);
                if (r < 0 && r != -ENOENT)
                        return storage_errno(r);
        }
        v = json_object_get(project, "default_environment");
        if (json_is_integer(v)) {
                from = asprintf_safe("the default_environment of project \"%s\"", json_get_string(project, "name", "?"));
                goto found;
        }
        org_id = json_get_int(job, "organization", 0);
        if (org_id <= 0)
                org_id = json_get_int(project, "organization", 0);
        if (org_id > 0) {
                r = storage_obj_get(c->storage, ST_ORGANIZATION, org_id, &org);
                if (r < 0 && r != -ENOENT)
                        return storage_errno(r);
        }
        v = json_object_get(org, "default_environment");
        if (json_is_integer(v)) {
                from = asprintf_safe("the default_environment of organization \"%s\"", json_get_string(org, "name", "?"));
                goto found;
        }
        if (!isempty(gd)) {
                _cleanup_json_ json_t *results = NULL, *namev = json_string(gd);
                storage_filter f = { .field = "name", .op = SF_EQ, .value = namev };
                storage_query q = { .filters = &f, .n_filters = 1, .order_by = "id" };
                json_t *it, *pick = NULL;
                size_t i;

                if (!namev)
                        return -ENOMEM;
                r = storage_obj_list(c->storage, ST_EXECUTION_ENVIRONMENT, &q, &results, NULL);
                if (r < 0)
                        return storage_errno(r);
                /* a global EE (organization null) wins over organization-scoped ones of that name */
                json_array_foreach(results, i, it)
                        if (!pick || (json_is_null(json_object_get(it, "organization")) &&
                                      !json_is_null(json_object_get(pick, "organization"))))
                                pick = it;
                if (!pick)
                        return fail(ret_error,
                                    "The global default execution environment \"%s\" (controller setting "
                                    "execution_environments.global_default) does not exist.", gd);
                ee = json_incref(pick);
                v = json_object_get(ee, "id");
                from = strdup("the global default (execution_environments.global_default)");
                goto found;
        }
        *ret_id = 0;
        *ret_from = NULL;
        return 0;

found:
        if (!from)
                return -ENOMEM;
        *ret_id = json_integer_value(v);
        *ret_from = from;
        return 0;
}

/* The registry host of an image reference: its first component when that looks like a host
 * (has a '.' or ':', or is "localhost"), else docker.io, as podman resolves short names. */
static char *image_registry(const char *image) {
        const char *slash = strchr(image, '/');
        size_t n = slash ? (size_t) (slash - image) : 0;

        if (slash && (memchr(image, '.', n) || memchr(image, ':', n) || (n == 9 && startswith(image, "localhost"))))
                return strndup(image, n);
        return strdup("docker.io");
}

/* The registry part of a credential's host input: "https://reg.example:5000/v2/" -> "reg.example:5000". */
static char *host_registry(const char *host) {
        const char *p = host, *s;

        s = strstr(p, "://");
        if (s)
                p = s + 3;
        return strndup(p, strcspn(p, "/"));
}

static int registry_auth(controller *c, const json_t *ee, const char *from, json_t **ret, char **ret_error) {
        _cleanup_json_ json_t *cred = NULL;
        _cleanup_free_ char *host = NULL, *user = NULL, *password = NULL, *registry = NULL;
        const char *ee_name = json_get_string(ee, "name", "?");
        int64_t cred_id = json_get_int(ee, "credential", 0);
        json_t *auth, *verify;
        int r;

        r = storage_obj_get(c->storage, ST_CREDENTIAL, cred_id, &cred);
        if (r == -ENOENT)
                return fail(ret_error, "The credential %" PRIi64 " of execution environment \"%s\" (from %s) no longer exists.",
                            cred_id, ee_name, from);
        if (r < 0)
                return storage_errno(r);
        if (!streq(json_get_string(cred, "kind", ""), "registry"))
                return fail(ret_error, "The credential \"%s\" of execution environment \"%s\" (from %s) is not a Container "
                            "Registry credential.", json_get_string(cred, "name", "?"), ee_name, from);
        r = api_credential_input(c, cred, "host", &host);
        if (r >= 0)
                r = api_credential_input(c, cred, "username", &user);
        if (r >= 0)
                r = api_credential_input(c, cred, "password", &password);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return fail(ret_error, "The registry password of credential \"%s\" (execution environment \"%s\") cannot "
                            "be decrypted: was the controller's secret.key replaced?", json_get_string(cred, "name", "?"),
                            ee_name);
        registry = isempty(host) ? image_registry(json_get_string(ee, "image", "")) : host_registry(host);
        if (!registry)
                return -ENOMEM;
        verify = json_object_get(json_object_get(cred, "inputs"), "verify_ssl");
        auth = json_pack("{s:s,s:s,s:s,s:b}", "registry", registry, "username", user, "password", password,
                         "verify_ssl", json_is_boolean(verify) ? json_is_true(verify) : 1);
        explicit_bzero(password, strlen(password));
        if (!auth)
                return -ENOMEM;
        *ret = auth;
        return 0;
}

static int ee_object(controller *c, int64_t id, const char *from, json_t **ret, char **ret_error) {
        _cleanup_json_ json_t *ee = NULL, *auth = NULL;
        json_t *out;
        int r;

        r = storage_obj_get(c->storage, ST_EXECUTION_ENVIRONMENT, id, &ee);
        if (r == -ENOENT)
                return fail(ret_error, "Execution environment %" PRIi64 " (from %s) no longer exists.", id, from);
        if (r < 0)
                return storage_errno(r);
        if (isempty(json_get_string(ee, "image", "")))
                return fail(ret_error, "Execution environment \"%s\" (id %" PRIi64 ", from %s) has no image.",
                            json_get_string(ee, "name", "?"), id, from);
        if (json_is_integer(json_object_get(ee, "credential"))) {
                r = registry_auth(c, ee, from, &auth, ret_error);
                if (r < 0)
                        return r;
        }
        out = json_pack("{s:I,s:s,s:s,s:s,s:O}", "id", (json_int_t) id, "name", json_get_string(ee, "name", ""),
                        "image", json_get_string(ee, "image", ""), "pull", json_get_string(ee, "pull", ""),
                        "auth", auth ? auth : json_null());
        if (!out)
                return -ENOMEM;
        *ret = out;
        return 0;
}

int api_job_execution_environment(controller *c, const json_t *job, json_t **ret_ee, char **ret_error) {
        _cleanup_free_ char *from = NULL, *error = NULL;
        json_t *ee = NULL;
        int64_t id;
        int r;

        if (json_get_bool(job, "_ee_resolved", false)) {
                /* resolved at launch: exactly what the job shows */
                id = json_get_int(job, "execution_environment", 0);
                if (id > 0) {
                        from = strdup("the job");
                        if (!from)
                                return -ENOMEM;
                }
        } else {
                r = resolve_id(c, job, &id, &from, &error);
                if (r < 0)
                        goto finish;
        }
        if (id > 0) {
                r = ee_object(c, id, from, &ee, &error);
                if (r < 0)
                        goto finish;
        }
        *ret_ee = ee;
        return 0;

finish:
        if (r == -EINVAL && ret_error)
                *ret_error = TAKE_PTR(error);
        return r;
}

int api_ee_resolve_at_launch(controller *c, json_t *job) {
        _cleanup_free_ char *from = NULL, *error = NULL;
        int64_t id;
        int r;

        r = resolve_id(c, job, &id, &from, &error);
        if (r == -EINVAL)
                return 0;       /* the scheduler resolves again and fails the job with the explanation */
        if (r < 0)
                return r;
        if (json_object_set_new(job, "execution_environment", id > 0 ? json_integer(id) : json_null()) < 0 ||
            json_object_set_new(job, "_ee_resolved", json_true()) < 0)
                return -ENOMEM;
        return 0;
}

/* ---- the registry password inside stored assignments ---- */

#define SEALED_KEY "password_encrypted"

static json_t *assignment_auth(json_t *assignment) {
        json_t *auth = json_object_get(json_object_get(assignment, "execution_environment"), "auth");
        return json_is_object(auth) ? auth : NULL;
}

int api_ee_assignment_seal(controller *c, json_t *assignment) {
        _cleanup_free_ char *enc = NULL;
        json_t *auth = assignment_auth(assignment);
        const char *pw = json_get_string(auth, "password", NULL);
        crypto_key k;
        int r;

        if (!pw)
                return 0;       /* nothing to seal, or sealed already */
        r = api_credential_key(c, &k);
        if (r < 0)
                return r;
        r = crypto_encrypt(&k, pw, &enc);
        explicit_bzero(&k, sizeof k);
        if (r < 0)
                return log_error_errno(r, "Failed to encrypt the registry password of an assignment: %m");
        if (json_object_set_new(auth, SEALED_KEY, json_string(enc)) < 0)
                return -ENOMEM;
        return json_object_del(auth, "password") < 0 ? -ENOMEM : 0;
}

int api_ee_assignment_unseal(controller *c, json_t *assignment) {
        _cleanup_free_ char *pw = NULL;
        json_t *auth = assignment_auth(assignment);
        const char *enc = json_get_string(auth, SEALED_KEY, NULL);
        crypto_key k;
        int r;

        if (!enc)
                return 0;
        r = api_credential_key(c, &k);
        if (r < 0)
                return r;
        r = crypto_decrypt(&k, enc, &pw);
        explicit_bzero(&k, sizeof k);
        if (r < 0)
                return log_error_errno(r, "Failed to decrypt the registry password of an assignment "
                                       "(was the controller's secret.key replaced?): %m");
        if (json_object_set_new(auth, "password", json_string(pw)) < 0)
                return -ENOMEM;
        explicit_bzero(pw, strlen(pw));
        return json_object_del(auth, SEALED_KEY) < 0 ? -ENOMEM : 0;
}
