/* test-api-ee.c: credential types, credentials and execution environments (api-credential.c,
 * api-ee.c) through the real route table against a real SQLite storage in a temp dir: CRUD and
 * validation, managed objects, secrets encrypted at rest (checked in the database file bytes) and
 * shown as "$encrypted$", and the EE resolution order (template > project > organization >
 * global > none) with decrypted registry auth. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "api.h"
#include "drover/crypto.h"
#include "drover/util.h"
#include "http-server.h"

#define API_TEST_TMPDIR "/tmp/test-api-ee-XXXXXX"
#include "api-test-fixture.h"
}

/* ---- tests ---- */
static json_t *first_result(const char *url) {
        _cleanup_json_ json_t *j = expect(200, "GET", url, NULL);
        assert_int_equal(json_get_int(j, "count", 0), 1);
        return json_incref(json_array_get(json_object_get(j, "results"), 0));
}

static int64_t id_of(const char *url) {
        _cleanup_json_ json_t *o = first_result(url);
        return json_get_int(o, "id", 0);
}

#define PASSWORD "s3cr3t-Registry-Pa55word-7f1c"

static int64_t make_registry_credential(const char *name, const char *extra_inputs) {
        char body[1024];
        snprintf(body, sizeof body,
                 "{\"name\": \"%s\", \"credential_type\": %" PRIi64 ", \"organization\": %" PRIi64 ", \"inputs\": "
                 "{\"host\": \"https://reg.example:5000/v2/\", \"username\": \"robot\", \"password\": \"" PASSWORD "\"%s}}",
                 name, id_of("/api/v2/credential_types/?name=Container+Registry"), default_org(), extra_inputs);
        return create_id("/api/v2/credentials/", body);
}

static int64_t make_ee(const char *name, const char *image, const char *extra) {
        char body[1024];
        snprintf(body, sizeof body, "{\"name\": \"%s\", \"image\": \"%s\"%s}", name, image, extra);
        return create_id("/api/v2/execution_environments/", body);
}

static bool file_contains(const char *path, const char *needle) {
        _cleanup_free_ char *data = NULL;
        size_t n = 0, k = strlen(needle);

        if (read_full_file(path, 256 * 1024 * 1024, &data, &n) < 0)
                return false;
        for (size_t i = 0; i + k <= n; i++)
                if (memcmp(data + i, needle, k) == 0)
                        return true;
        return false;
}

/* ---- tests ---- */

static void test_seeded(void **state) {
        _cleanup_json_ json_t *machine = first_result("/api/v2/credential_types/?name=Machine"),
                              *scm = first_result("/api/v2/credential_types/?name=Source+Control"),
                              *vault = first_result("/api/v2/credential_types/?name=Vault"),
                              *reg = first_result("/api/v2/credential_types/?name=Container+Registry"),
                              *ees = expect(200, "GET", "/api/v2/execution_environments/?managed=true", NULL),
                              *dflt = NULL;
        json_t *j;
        int64_t dflt_id;

        assert_string_equal(json_get_string(machine, "kind", ""), "ssh");
        assert_string_equal(json_get_string(scm, "kind", ""), "scm");
        assert_string_equal(json_get_string(vault, "kind", ""), "vault");
        assert_string_equal(json_get_string(reg, "kind", ""), "registry");
        assert_true(json_get_bool(reg, "managed", false));
        assert_int_equal(json_get_int(machine, "id", 0), 1);
        assert_int_equal(json_get_int(scm, "id", 0), 2);
        assert_int_equal(json_get_int(vault, "id", 0), 3);
        assert_int_equal(json_get_int(reg, "id", 0), 4);

        /* managed credential types stay as they are */
        json_decref(expectf(403, "DELETE", NULL, "/api/v2/credential_types/%" PRIi64 "/", json_get_int(reg, "id", 0)));
        json_decref(expectf(403, "PATCH", "{\"description\": \"x\"}", "/api/v2/credential_types/%" PRIi64 "/",
                            json_get_int(reg, "id", 0)));

        /* three managed EEs, global, with the default image */
        assert_int_equal(json_get_int(ees, "count", 0), 3);
        dflt = first_result("/api/v2/execution_environments/?name=Default+execution+environment");
        dflt_id = json_get_int(dflt, "id", 0);
        assert_true(json_get_bool(dflt, "managed", false));
        assert_true(json_is_null(json_object_get(dflt, "organization")));
        assert_string_equal(json_get_string(dflt, "image", ""), "localhost/drover-ee:latest");
        assert_int_equal(id_of("/api/v2/execution_environments/?name=Control+Plane+Execution+Environment") > 0, 1);
        assert_int_equal(id_of("/api/v2/execution_environments/?name=drover+EE+%28latest%29") > 0, 1);

        /* not deletable, image not editable, pull is */
        j = expectf(403, "DELETE", NULL, "/api/v2/execution_environments/%" PRIi64 "/", dflt_id);
        json_decref(j);
        json_decref(expectf(403, "PATCH", "{\"image\": \"quay.io/x/y:1\"}", "/api/v2/execution_environments/%" PRIi64 "/", dflt_id));
        j = expectf(200, "PATCH", "{\"pull\": \"never\"}", "/api/v2/execution_environments/%" PRIi64 "/", dflt_id);
        assert_string_equal(json_get_string(j, "pull", ""), "never");
        json_decref(j);

        /* the config decides the managed images at every start, and a restart seeds nothing twice */
        F->cfg.ee_default_image = (char *) "registry.example/drover/ee:2";
        assert_int_equal(api_bootstrap(&F->c), 0);
        F->cfg.ee_default_image = NULL;
        j = expectf(200, "GET", NULL, "/api/v2/execution_environments/%" PRIi64 "/", dflt_id);
        assert_string_equal(json_get_string(j, "image", ""), "registry.example/drover/ee:2");
        json_decref(j);
        assert_int_equal(count_of("/api/v2/execution_environments/"), 3);
        assert_int_equal(count_of("/api/v2/credential_types/?name=Machine"), 1);
}

static void test_ee_crud_validation(void **state) {
        _cleanup_json_ json_t *j1 = NULL, *j2 = NULL, *j3 = NULL, *j4 = NULL, *j5 = NULL, *ee = NULL, *j6 = NULL;
        int64_t n = count_of("/api/v2/execution_environments/"), id, vault_cred;
        char body[512];

        j1 = expect(400, "POST", "/api/v2/execution_environments/", "{\"name\": \"no-image\"}");
        assert_string_equal(first_error(j1, "image"), "This field is required.");
        j2 = expect(400, "POST", "/api/v2/execution_environments/", "{\"name\": \"x\", \"image\": \"a/b\", \"pull\": \"sometimes\"}");
        assert_string_equal(first_error(j2, "pull"), "\"sometimes\" is not a valid choice.");
        j3 = expect(400, "POST", "/api/v2/execution_environments/", "{\"name\": \"x\", \"image\": \"a b\"}");
        assert_non_null(first_error(j3, "image"));
        j4 = expect(400, "POST", "/api/v2/execution_environments/", "{\"name\": \"x\", \"image\": \"a/b\", \"credential\": 999}");
        assert_non_null(first_error(j4, "credential"));

        /* only Container Registry credentials */
        snprintf(body, sizeof body, "{\"name\": \"v\", \"credential_type\": %" PRIi64 ", \"inputs\": {\"vault_password\": \"pw\"}}",
                 id_of("/api/v2/credential_types/?name=Vault"));
        vault_cred = create_id("/api/v2/credentials/", body);
        snprintf(body, sizeof body, "{\"name\": \"x\", \"image\": \"a/b\", \"credential\": %" PRIi64 "}", vault_cred);
        j5 = expect(400, "POST", "/api/v2/execution_environments/", body);
        assert_non_null(strstr(first_error(j5, "credential"), "Container Registry"));
        assert_int_equal(count_of("/api/v2/execution_environments/"), n);

        /* create (managed is read-only), update, filter, delete */
        ee = expect(201, "POST", "/api/v2/execution_environments/",
                    "{\"name\": \"mine\", \"image\": \"quay.example.org/team/ee:1\", \"pull\": \"always\", \"managed\": true, "
                    "\"organization\": null, \"description\": \"d\"}");
        id = json_get_int(ee, "id", 0);
        assert_false(json_get_bool(ee, "managed", true));
        assert_string_equal(json_get_string(ee, "pull", ""), "always");
        assert_string_equal(json_get_string(ee, "type", ""), "execution_environment");
        assert_true(json_is_null(json_object_get(ee, "credential")));
        j6 = expectf(400, "PATCH", "{\"pull\": \"maybe\"}", "/api/v2/execution_environments/%" PRIi64 "/", id);
        assert_non_null(first_error(j6, "pull"));
        json_decref(expectf(200, "PATCH", "{\"pull\": \"\"}", "/api/v2/execution_environments/%" PRIi64 "/", id));
        assert_int_equal(count_of("/api/v2/execution_environments/?name=mine&pull="), 1);
        assert_int_equal(count_of("/api/v2/execution_environments/?image__icontains=team/ee"), 1);
        json_decref(expectf(204, "DELETE", NULL, "/api/v2/execution_environments/%" PRIi64 "/", id));
        assert_int_equal(count_of("/api/v2/execution_environments/"), n);
}

static void test_credential_secrets(void **state) {
        _cleanup_json_ json_t *cred = NULL, *j1 = NULL, *j2 = NULL, *j3 = NULL, *j4 = NULL, *stored = NULL, *ct = NULL;
        _cleanup_free_ char *plain = NULL, *plain2 = NULL;
        int64_t reg_type = id_of("/api/v2/credential_types/?name=Container+Registry"), id;
        char path[256], body[512];

        id = make_registry_credential("reg", ", \"verify_ssl\": false");
        cred = expectf(200, "GET", NULL, "/api/v2/credentials/%" PRIi64 "/", id);
        assert_string_equal(json_get_string(json_object_get(cred, "inputs"), "password", ""), "$encrypted$");
        assert_string_equal(json_get_string(json_object_get(cred, "inputs"), "username", ""), "robot");
        assert_false(json_get_bool(json_object_get(cred, "inputs"), "verify_ssl", true));
        assert_string_equal(json_get_string(cred, "kind", ""), "registry");
        assert_string_equal(json_get_string(json_object_get(json_object_get(cred, "summary_fields"), "credential_type"), "name", ""),
                            "Container Registry");

        /* at rest: encrypted, nowhere in the database files in clear */
        assert_int_equal(storage_obj_get(F->c.storage, ST_CREDENTIAL, id, &stored), 0);
        assert_non_null(startswith(json_get_string(json_object_get(stored, "inputs"), "password", ""), "$encrypted$AESGCM$"));
        assert_int_equal(api_credential_input(&F->c, stored, "password", &plain), 0);
        assert_string_equal(plain, PASSWORD);
        const char *suffixes[] = { "", "-wal", "-shm" };
        for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
                snprintf(path, sizeof path, "%s/drover.db%s", F->dir, suffixes[i]);
                assert_false(file_contains(path, PASSWORD));
        }
        snprintf(path, sizeof path, "%s/drover.db", F->dir);
        assert_true(file_contains(path, "robot") || (snprintf(path, sizeof path, "%s/drover.db-wal", F->dir), file_contains(path, "robot")));

        /* "$encrypted$" sent back keeps the secret; a new value replaces it */
        json_decref(expectf(200, "PATCH",
                            "{\"inputs\": {\"host\": \"reg.example:5000\", \"username\": \"robot2\", \"password\": \"$encrypted$\"}}",
                            "/api/v2/credentials/%" PRIi64 "/", id));
        json_decref(TAKE_PTR(stored));
        assert_int_equal(storage_obj_get(F->c.storage, ST_CREDENTIAL, id, &stored), 0);
        assert_int_equal(api_credential_input(&F->c, stored, "password", &plain2), 0);
        assert_string_equal(plain2, PASSWORD);
        assert_string_equal(json_get_string(json_object_get(stored, "inputs"), "username", ""), "robot2");
        json_decref(expectf(200, "PATCH", "{\"description\": \"no inputs\"}", "/api/v2/credentials/%" PRIi64 "/", id));
        free(TAKE_PTR(plain2));
        json_decref(TAKE_PTR(stored));
        assert_int_equal(storage_obj_get(F->c.storage, ST_CREDENTIAL, id, &stored), 0);
        assert_int_equal(api_credential_input(&F->c, stored, "password", &plain2), 0);
        assert_string_equal(plain2, PASSWORD);
        json_decref(expectf(200, "PATCH", "{\"inputs\": {\"host\": \"h\", \"password\": \"other\"}}",
                            "/api/v2/credentials/%" PRIi64 "/", id));
        free(TAKE_PTR(plain2));
        json_decref(TAKE_PTR(stored));
        assert_int_equal(storage_obj_get(F->c.storage, ST_CREDENTIAL, id, &stored), 0);
        assert_int_equal(api_credential_input(&F->c, stored, "password", &plain2), 0);
        assert_string_equal(plain2, "other");

        /* validation */
        snprintf(body, sizeof body, "{\"name\": \"bad\", \"credential_type\": %" PRIi64 ", \"inputs\": {\"password\": \"$encrypted$\", \"host\": \"h\"}}", reg_type);
        j1 = expect(400, "POST", "/api/v2/credentials/", body);
        assert_non_null(json_object_get(json_object_get(j1, "inputs"), "password"));
        snprintf(body, sizeof body, "{\"name\": \"bad\", \"credential_type\": %" PRIi64 ", \"inputs\": {\"host\": \"h\", \"nope\": \"x\"}}", reg_type);
        j2 = expect(400, "POST", "/api/v2/credentials/", body);
        assert_non_null(json_object_get(json_object_get(j2, "inputs"), "nope"));
        snprintf(body, sizeof body, "{\"name\": \"bad\", \"credential_type\": %" PRIi64 ", \"inputs\": {\"username\": \"u\"}}", reg_type);
        j3 = expect(400, "POST", "/api/v2/credentials/", body);
        assert_non_null(json_object_get(json_object_get(j3, "inputs"), "host"));
        j4 = expect(400, "POST", "/api/v2/credentials/", "{\"name\": \"bad\", \"inputs\": {}}");
        assert_non_null(first_error(j4, "credential_type"));
        assert_int_equal(count_of("/api/v2/credentials/?name=bad"), 0);

        /* lookups as the awx.awx credential module does them */
        snprintf(path, sizeof path, "/api/v2/credentials/?credential_type=%" PRIi64 "&organization=%" PRIi64 "&name=reg",
                 reg_type, default_org());
        assert_int_equal(count_of(path), 1);
        snprintf(path, sizeof path, "/api/v2/credential_types/%" PRIi64 "/credentials/", reg_type);
        assert_int_equal(count_of(path), 1);

        /* custom credential types: cloud/net only, inputs declared; in use: not deletable */
        json_decref(expect(400, "POST", "/api/v2/credential_types/", "{\"name\": \"c\", \"kind\": \"ssh\"}"));
        json_decref(expect(400, "POST", "/api/v2/credential_types/",
                           "{\"name\": \"c\", \"kind\": \"cloud\", \"inputs\": {\"fields\": [{\"id\": \"1x\", \"label\": \"L\"}]}}"));
        ct = expect(201, "POST", "/api/v2/credential_types/",
                    "{\"name\": \"c\", \"kind\": \"cloud\", \"managed\": true, \"inputs\": {\"fields\": [{\"id\": \"api_key\", "
                    "\"label\": \"Key\", \"secret\": true}], \"required\": [\"api_key\"]}, \"injectors\": {}}");
        assert_false(json_get_bool(ct, "managed", true));
        snprintf(body, sizeof body, "{\"name\": \"cc\", \"credential_type\": %" PRIi64 ", \"inputs\": {\"api_key\": \"k-123-secret\"}}",
                 json_get_int(ct, "id", 0));
        json_decref(expect(201, "POST", "/api/v2/credentials/", body));
        json_decref(expectf(403, "DELETE", NULL, "/api/v2/credential_types/%" PRIi64 "/", json_get_int(ct, "id", 0)));
        snprintf(path, sizeof path, "%s/drover.db-wal", F->dir);
        assert_false(file_contains(path, "k-123-secret"));
}

static void resolve_ok(const json_t *job, int64_t want_id) {
        _cleanup_free_ char *error = NULL;
        _cleanup_json_ json_t *ee = NULL;
        int r = api_job_execution_environment(&F->c, job, &ee, &error);

        if (r < 0)
                fail_msg("resolution failed: %d %s", r, strna(error));
        if (want_id == 0)
                assert_null(ee);
        else
                assert_int_equal(json_get_int(ee, "id", 0), want_id);
}

static char *resolve_error(const json_t *job) {
        char *error = NULL;
        json_t *ee = NULL;

        assert_int_equal(api_job_execution_environment(&F->c, job, &ee, &error), -EINVAL);
        assert_null(ee);
        assert_non_null(error);
        return error;
}

static void test_resolution(void **state) {
        _cleanup_json_ json_t *job = NULL, *ee = NULL, *launched = NULL, *launched2 = NULL, *launched3 = NULL, *patch = NULL;
        _cleanup_free_ char *error = NULL, *e1 = NULL, *e2 = NULL, *e3 = NULL;
        int64_t cred = make_registry_credential("reg-auth", ", \"verify_ssl\": false"), org = default_org(), proj, jt, gone;
        int64_t ee_t, ee_p, ee_o, ee_g;
        char body[512], url[128];
        json_t *auth;

        snprintf(body, sizeof body, ", \"credential\": %" PRIi64, cred);
        ee_t = make_ee("ee-template", "reg.example:5000/team/ee:t", body);
        ee_p = make_ee("ee-project", "quay.example.org/team/ee:p", "");
        ee_o = make_ee("ee-org", "docker.io/team/ee:o", "");
        ee_g = make_ee("ee-global", "localhost/ee:g", "");

        snprintf(body, sizeof body, "{\"name\": \"demo\", \"organization\": %" PRIi64 ", \"local_path\": \"demo\", "
                 "\"default_environment\": %" PRIi64 "}", org, ee_p);
        proj = create_id("/api/v2/projects/", body);
        snprintf(body, sizeof body, "{\"default_environment\": %" PRIi64 "}", ee_o);
        json_decref(expectf(200, "PATCH", body, "/api/v2/organizations/%" PRIi64 "/", org));
        F->cfg.ee_global_default = (char *) "ee-global";

        job = json_pack("{s:I,s:I,s:I}", "project", (json_int_t) proj, "organization", (json_int_t) org,
                        "execution_environment", (json_int_t) ee_t);
        assert_non_null(job);

        /* the template's EE, with the registry auth decrypted */
        assert_int_equal(api_job_execution_environment(&F->c, job, &ee, &error), 0);
        assert_non_null(ee);
        assert_int_equal(json_get_int(ee, "id", 0), ee_t);
        assert_string_equal(json_get_string(ee, "name", ""), "ee-template");
        assert_string_equal(json_get_string(ee, "image", ""), "reg.example:5000/team/ee:t");
        assert_string_equal(json_get_string(ee, "pull", "x"), "");
        auth = json_object_get(ee, "auth");
        assert_string_equal(json_get_string(auth, "registry", ""), "reg.example:5000");
        assert_string_equal(json_get_string(auth, "username", ""), "robot");
        assert_string_equal(json_get_string(auth, "password", ""), PASSWORD);
        assert_false(json_get_bool(auth, "verify_ssl", true));

        /* stored assignments hold the password sealed; unsealed right before sending */
        {
                _cleanup_json_ json_t *a = json_pack("{s:I,s:O}", "job", (json_int_t) 1, "execution_environment", ee),
                                      *none = json_pack("{s:I,s:n}", "job", (json_int_t) 2, "execution_environment");
                _cleanup_free_ char *dump = NULL;
                json_t *sealed_auth;

                assert_non_null(a);
                assert_int_equal(api_ee_assignment_seal(&F->c, a), 0);
                assert_int_equal(api_ee_assignment_seal(&F->c, a), 0);        /* idempotent */
                dump = json_dumps(a, 0);
                assert_null(strstr(dump, PASSWORD));
                sealed_auth = json_object_get(json_object_get(a, "execution_environment"), "auth");
                assert_null(json_object_get(sealed_auth, "password"));
                assert_non_null(startswith(json_get_string(sealed_auth, "password_encrypted", ""), "$encrypted$AESGCM$"));
                assert_int_equal(api_ee_assignment_unseal(&F->c, a), 0);
                assert_string_equal(json_get_string(sealed_auth, "password", ""), PASSWORD);
                assert_null(json_object_get(sealed_auth, "password_encrypted"));
                assert_int_equal(api_ee_assignment_seal(&F->c, none), 0);
                assert_int_equal(api_ee_assignment_unseal(&F->c, none), 0);
        }

        /* then the project's default, the organization's, the global default, none */
        json_object_set_new(job, "execution_environment", json_null());
        resolve_ok(job, ee_p);
        json_decref(expectf(200, "PATCH", "{\"default_environment\": null}", "/api/v2/projects/%" PRIi64 "/", proj));
        resolve_ok(job, ee_o);
        json_object_del(job, "organization");      /* the project's organization counts too */
        resolve_ok(job, ee_o);
        json_decref(expectf(200, "PATCH", "{\"default_environment\": null}", "/api/v2/organizations/%" PRIi64 "/", org));
        resolve_ok(job, ee_g);
        F->cfg.ee_global_default = NULL;
        resolve_ok(job, 0);
        F->cfg.ee_global_default = (char *) "no-such-ee";
        e1 = resolve_error(job);
        assert_non_null(strstr(e1, "\"no-such-ee\""));
        F->cfg.ee_global_default = NULL;

        /* an EE that was deleted, or lost its image: -EINVAL naming it */
        gone = make_ee("ee-gone", "x/y", "");
        json_decref(expectf(204, "DELETE", NULL, "/api/v2/execution_environments/%" PRIi64 "/", gone));
        json_object_set_new(job, "execution_environment", json_integer(gone));
        e2 = resolve_error(job);
        snprintf(body, sizeof body, "Execution environment %" PRIi64 " ", gone);
        assert_non_null(strstr(e2, body));
        patch = json_pack("{s:s}", "image", "");
        assert_int_equal(storage_obj_patch(F->c.storage, ST_EXECUTION_ENVIRONMENT, ee_p, patch), 0);
        json_object_set_new(job, "execution_environment", json_integer(ee_p));
        e3 = resolve_error(job);
        assert_non_null(strstr(e3, "\"ee-project\""));
        assert_non_null(strstr(e3, "no image"));
        json_object_set_new(patch, "image", json_string("quay.example.org/team/ee:p"));
        assert_int_equal(storage_obj_patch(F->c.storage, ST_EXECUTION_ENVIRONMENT, ee_p, patch), 0);

        /* a credential without host: the registry is the image's */
        json_decref(TAKE_PTR(patch));
        patch = json_pack("{s:{s:s,s:s}}", "inputs", "host", "", "username", "u");
        assert_int_equal(storage_obj_patch(F->c.storage, ST_CREDENTIAL, cred, patch), 0);
        json_object_set_new(job, "execution_environment", json_integer(ee_t));
        json_decref(TAKE_PTR(ee));
        assert_int_equal(api_job_execution_environment(&F->c, job, &ee, &error), 0);
        assert_string_equal(json_get_string(json_object_get(ee, "auth"), "registry", ""), "reg.example:5000");
        assert_string_equal(json_get_string(json_object_get(ee, "auth"), "password", ""), "");

        /* launch: the job shows the EE it runs in (template, prompt, project default, none) */
        snprintf(body, sizeof body, "{\"name\": \"ee-inv\", \"organization\": %" PRIi64 "}", org);
        int64_t inv = create_id("/api/v2/inventories/", body);
        snprintf(body, sizeof body, "{\"name\": \"ee-jt\", \"inventory\": %" PRIi64 ", \"project\": %" PRIi64
                 ", \"playbook\": \"site.yml\", \"execution_environment\": %" PRIi64 ", \"ask_execution_environment_on_launch\": true}",
                 inv, proj, ee_o);
        jt = create_id("/api/v2/job_templates/", body);
        snprintf(url, sizeof url, "/api/v2/job_templates/%" PRIi64 "/launch/", jt);
        launched = expect(201, "POST", url, "{}");
        assert_int_equal(json_get_int(launched, "execution_environment", 0), ee_o);
        json_t *sf = json_object_get(json_object_get(launched, "summary_fields"), "execution_environment");
        assert_int_equal(json_get_int(sf, "id", 0), ee_o);
        assert_string_equal(json_get_string(sf, "name", ""), "ee-org");
        assert_string_equal(json_get_string(sf, "image", ""), "docker.io/team/ee:o");
        snprintf(body, sizeof body, "{\"execution_environment\": %" PRIi64 "}", ee_g);
        launched2 = expect(201, "POST", url, body);
        assert_int_equal(json_get_int(launched2, "execution_environment", 0), ee_g);
        json_decref(expectf(200, "PATCH", "{\"execution_environment\": null}", "/api/v2/job_templates/%" PRIi64 "/", jt));
        snprintf(body, sizeof body, "{\"default_environment\": %" PRIi64 "}", ee_p);
        json_decref(expectf(200, "PATCH", body, "/api/v2/projects/%" PRIi64 "/", proj));
        launched3 = expect(201, "POST", url, "{}");
        assert_int_equal(json_get_int(launched3, "execution_environment", 0), ee_p);
        /* the stored job resolves to exactly what it shows */
        json_decref(TAKE_PTR(job));
        assert_int_equal(storage_obj_get(F->c.storage, ST_JOB, json_get_int(launched3, "id", 0), &job), 0);
        resolve_ok(job, ee_p);
        json_decref(expectf(200, "PATCH", "{\"default_environment\": null}", "/api/v2/projects/%" PRIi64 "/", proj));
        resolve_ok(job, ee_p);
        json_decref(TAKE_PTR(launched3));
        launched3 = expect(201, "POST", url, "{}");
        assert_true(json_is_null(json_object_get(launched3, "execution_environment")));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_seeded, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ee_crud_validation, setup, teardown),
                cmocka_unit_test_setup_teardown(test_credential_secrets, setup, teardown),
                cmocka_unit_test_setup_teardown(test_resolution, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
