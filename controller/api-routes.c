/* api-routes.c: the AWX API route table (/api/v2/...). Generic resource handlers are stamped
 * out per resource by macros over the field tables in api-resources.c; everything specific
 * lives in api-jobs.c, api-misc.c, api-inventory.c and api-relations.c. */
#include "api.h"

#define H(name) _unused_ static int name(controller *c, http_request *req, http_response *resp)

/* list, create, detail, PATCH, PUT, DELETE for one resource */
#define CRUD(res)                                                                                       \
        H(res##_list) { return api_obj_list(c, req, resp, &api_res_##res, NULL, 0); }                   \
        H(res##_create) { return api_obj_create(c, req, resp, &api_res_##res, NULL, 0, NULL); }         \
        H(res##_get) { return api_obj_get(c, req, resp, &api_res_##res); }                             \
        H(res##_patch) { return api_obj_update(c, req, resp, &api_res_##res, true); }                   \
        H(res##_put) { return api_obj_update(c, req, resp, &api_res_##res, false); }                    \
        H(res##_delete) { return api_obj_delete(c, req, resp, &api_res_##res); }

CRUD(organization)
CRUD(user)
CRUD(inventory)
CRUD(host)
CRUD(group)
CRUD(project)
CRUD(job_template)
CRUD(job)
CRUD(instance)
CRUD(instance_group)
CRUD(credential_type)
CRUD(credential)
CRUD(execution_environment)

/* /<parent>/<id>/<children>/ scoped by the children's foreign key; POST creates inside the parent */
#define SUBLIST(name, res, fkf)                                                                       \
        H(name##_list) {                                                                                \
                _cleanup_json_ json_t *idv = json_integer(req->ids[0]);                                 \
                storage_filter f = { .field = fkf, .op = SF_EQ, .value = idv };                       \
                return idv ? api_obj_list(c, req, resp, &api_res_##res, &f, 1) : -ENOMEM;               \
        }                                                                                               \
        H(name##_create) { return api_obj_create(c, req, resp, &api_res_##res, fkf, req->ids[0], NULL); }

SUBLIST(inventory_hosts, host, "inventory")
SUBLIST(inventory_groups, group, "inventory")
SUBLIST(organization_inventories, inventory, "organization")
SUBLIST(organization_projects, project, "organization")
SUBLIST(organization_job_templates, job_template, "organization")
SUBLIST(job_template_jobs, job, "job_template")
SUBLIST(credential_type_credentials, credential, "credential_type")
SUBLIST(organization_credentials, credential, "organization")
SUBLIST(organization_execution_environments, execution_environment, "organization")

#define REL(name, parent_res, child_res, r, rev, create)                                               \
        static const api_relation name##_rel = { &api_res_##parent_res, &api_res_##child_res, r, rev, create }; \
        H(name##_list) { return api_rel_list(c, req, resp, &name##_rel); }                              \
        H(name##_post) { return api_rel_post(c, req, resp, &name##_rel); }

REL(group_hosts, group, host, SR_GROUP_HOSTS, false, true)
REL(group_children, group, group, SR_GROUP_CHILDREN, false, true)
REL(host_groups, host, group, SR_GROUP_HOSTS, true, false)
REL(ig_instances, instance_group, instance, SR_INSTANCE_GROUP_INSTANCES, false, false)
REL(instance_igs, instance, instance_group, SR_INSTANCE_GROUP_INSTANCES, true, false)
REL(jt_igs, job_template, instance_group, SR_JOB_TEMPLATE_INSTANCE_GROUPS, false, false)
REL(org_igs, organization, instance_group, SR_ORGANIZATION_INSTANCE_GROUPS, false, false)
REL(inv_igs, inventory, instance_group, SR_INVENTORY_INSTANCE_GROUPS, false, false)

/* Sub-lists of resources drover does not have yet (credentials, labels): always empty. */
H(empty_list) {
        return http_respond(resp, 200, json_pack("{s:i,s:n,s:n,s:[]}", "count", 0, "next", "previous", "results"));
}

/* /unified_job_templates/: job templates are the only unified job templates so far */
H(unified_job_template_list) { return api_obj_list(c, req, resp, &api_res_job_template, NULL, 0); }

#define U HTTP_AUTH_USER
#define A HTTP_AUTH_ADMIN
#define RES(ep, res, wauth)                                                                             \
        { "GET", API_PREFIX ep "/", U, res##_list }, { "POST", API_PREFIX ep "/", wauth, res##_create }, \
        { "GET", API_PREFIX ep "/%/", U, res##_get }, { "PATCH", API_PREFIX ep "/%/", wauth, res##_patch }, \
        { "PUT", API_PREFIX ep "/%/", wauth, res##_put }, { "DELETE", API_PREFIX ep "/%/", wauth, res##_delete }
#define SUB(ep, name) { "GET", API_PREFIX ep, U, name##_list }, { "POST", API_PREFIX ep, U, name##_create }
#define RELR(ep, name, wauth) { "GET", API_PREFIX ep, U, name##_list }, { "POST", API_PREFIX ep, wauth, name##_post }

const http_route api_routes[] = {
        { "GET", API_PREFIX, HTTP_AUTH_NONE, api_root },
        { "GET", API_PREFIX "ping/", HTTP_AUTH_NONE, api_ping },
        { "GET", API_PREFIX "config/", U, api_config },
        { "GET", API_PREFIX "me/", U, api_me },
        { "GET", API_PREFIX "tokens/", U, api_token_list },
        { "POST", API_PREFIX "tokens/", U, api_token_create },
        { "GET", API_PREFIX "tokens/%/", U, api_token_get },
        { "DELETE", API_PREFIX "tokens/%/", U, api_token_delete },

        RES("organizations", organization, A),
        RES("users", user, A),
        RES("inventories", inventory, U),
        RES("hosts", host, U),
        RES("groups", group, U),
        RES("projects", project, U),
        RES("job_templates", job_template, U),
        RES("instance_groups", instance_group, A),
        RES("credential_types", credential_type, A),
        RES("credentials", credential, U),
        RES("execution_environments", execution_environment, A),
        SUB("credential_types/%/credentials/", credential_type_credentials),
        SUB("organizations/%/credentials/", organization_credentials),
        SUB("organizations/%/execution_environments/", organization_execution_environments),

        { "GET", API_PREFIX "jobs/", U, job_list },
        { "GET", API_PREFIX "jobs/%/", U, job_get },
        { "DELETE", API_PREFIX "jobs/%/", U, job_delete },
        { "GET", API_PREFIX "jobs/%/cancel/", U, api_job_cancel_get },
        { "POST", API_PREFIX "jobs/%/cancel/", U, api_job_cancel_post },
        { "GET", API_PREFIX "jobs/%/job_events/", U, api_job_events },
        { "GET", API_PREFIX "jobs/%/stdout/", U, api_job_stdout },
        { "GET", API_PREFIX "jobs/%/job_host_summaries/", U, api_job_host_summaries },
        { "POST", API_PREFIX "jobs/%/relaunch/", U, api_job_relaunch_post },

        { "GET", API_PREFIX "job_templates/%/launch/", U, api_jt_launch_get },
        { "POST", API_PREFIX "job_templates/%/launch/", U, api_jt_launch_post },
        { "GET", API_PREFIX "job_templates/%/jobs/", U, job_template_jobs_list },
        { "GET", API_PREFIX "job_templates/%/credentials/", U, empty_list },
        { "GET", API_PREFIX "job_templates/%/labels/", U, empty_list },
        RELR("job_templates/%/instance_groups/", jt_igs, U),

        { "GET", API_PREFIX "instances/", U, instance_list },
        { "GET", API_PREFIX "instances/%/", U, instance_get },
        { "PATCH", API_PREFIX "instances/%/", A, instance_patch },
        { "PUT", API_PREFIX "instances/%/", A, instance_put },
        RELR("instances/%/instance_groups/", instance_igs, A),
        RELR("instance_groups/%/instances/", ig_instances, A),

        SUB("inventories/%/hosts/", inventory_hosts),
        SUB("inventories/%/groups/", inventory_groups),
        RELR("inventories/%/instance_groups/", inv_igs, U),
        { "GET", API_PREFIX "inventories/%/script/", U, api_inventory_script },
        RELR("groups/%/hosts/", group_hosts, U),
        RELR("groups/%/children/", group_children, U),
        RELR("hosts/%/groups/", host_groups, U),

        SUB("organizations/%/inventories/", organization_inventories),
        SUB("organizations/%/projects/", organization_projects),
        SUB("organizations/%/job_templates/", organization_job_templates),
        RELR("organizations/%/instance_groups/", org_igs, A),

        { "GET", API_PREFIX "unified_job_templates/", U, unified_job_template_list },
        {}
};
