/* api-jobs.c: jobs in the AWX API: launching a job template (prompts, ignored_fields, extra_vars
 * merging), relaunch, job output (live elapsed), cancel, job events, stdout in AWX's formats and
 * the per-host summaries built from the playbook_on_stats event. */
#include <inttypes.h>
#include <math.h>

#include "api.h"
#include "drover/log.h"
#include "drover/util.h"

static bool status_is_final(const char *s) {
        return streq(s, "successful") || streq(s, "failed") || streq(s, "error") || streq(s, "canceled");
}

static json_t *job_url(int64_t id) {
        char buf[64];
        snprintf(buf, sizeof buf, API_PREFIX "jobs/%" PRIi64 "/", id);
        return json_string(buf);
}

int api_render_job(controller *c, const api_resource *r, const json_t *doc, json_t *out) {
        const char *started = json_get_string(doc, "started", NULL);
        json_t *summary = json_object_get(out, "summary_fields"), *lb = json_object_get(doc, "launched_by");
        uint64_t t;

        if (streq(json_get_string(doc, "status", ""), "running") && started && parse_iso8601(started, &t) >= 0) {
                uint64_t now = now_realtime_usec();
                double e = now > t ? (double) (now - t) / 1e6 : 0.0;
                json_object_set_new(out, "elapsed", json_real(round(e * 1000.0) / 1000.0));
        }
        json_object_set_new(summary, "credentials", json_array());
        json_object_set_new(summary, "labels", json_pack("{s:i,s:[]}", "count", 0, "results"));
        if (json_is_object(lb) && json_get_int(lb, "id", 0) > 0)
                json_object_set_new(summary, "created_by", json_pack("{s:I,s:s}", "id", (json_int_t) json_get_int(lb, "id", 0),
                                                                     "username", json_get_string(lb, "name", "")));
        json_object_set_new(summary, "user_capabilities",
                            json_pack("{s:b,s:b}", "delete", status_is_final(json_get_string(doc, "status", "")), "start", 1));
        return 0;
}

int api_job_before_delete(controller *c, const api_resource *r, const json_t *doc, http_response *resp) {
        int q;

        if (!status_is_final(json_get_string(doc, "status", ""))) {
                http_respond_detail(resp, 403, "Cannot delete running job resource.");
                return 1;
        }
        q = storage_events_delete(c->storage, json_get_int(doc, "id", 0));
        return q < 0 ? q : 0;
}

/* ---- launch ---- */

static const struct { const char *field, *ask; } prompts[] = {
        { "job_type", "ask_job_type_on_launch" },
        { "limit", "ask_limit_on_launch" },
        { "extra_vars", "ask_variables_on_launch" },
        { "scm_branch", "ask_scm_branch_on_launch" },
        { "verbosity", "ask_verbosity_on_launch" },
        { "diff_mode", "ask_diff_mode_on_launch" },
        { "forks", "ask_forks_on_launch" },
        { "job_tags", "ask_tags_on_launch" },
        { "skip_tags", "ask_skip_tags_on_launch" },
        { "timeout", "ask_timeout_on_launch" },
        { "inventory", "ask_inventory_on_launch" },
        { "execution_environment", "ask_execution_environment_on_launch" },
        { "credentials", "ask_credential_on_launch" },
        { "labels", "ask_labels_on_launch" },
        { "instance_groups", "ask_instance_groups_on_launch" },
        { "job_slice_count", "ask_job_slice_count_on_launch" },
};

/* Fields a job takes over from its template (or, on relaunch, from the previous job). */
static const char *const inherited[] = {
        "name", "description", "job_type", "inventory", "project", "playbook", "scm_branch", "forks", "limit",
        "verbosity", "job_tags", "skip_tags", "force_handlers", "start_at_task", "timeout", "use_fact_cache",
        "organization", "diff_mode", "execution_environment", "allow_simultaneous", "job_slice_count",
        "webhook_service", NULL,
};

/* Validate the accepted prompts into `set` (job fields) and `vars` (extra vars). 1: resp filled. */
static int accept_prompts(controller *c, const json_t *jt, const json_t *body, json_t *set, json_t *vars,
                          json_t *ignored, http_response *resp) {
        _cleanup_json_ json_t *errors = json_object();
        char msg[512];

        if (!errors)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(prompts); i++) {
                const json_t *v = json_object_get(body, prompts[i].field);
                const char *name = prompts[i].field;

                if (!v)
                        continue;
                if (!json_get_bool(jt, prompts[i].ask, false) &&
                    !(streq(name, "extra_vars") && json_get_bool(jt, "survey_enabled", false))) {
                        json_object_set(ignored, name, (json_t *) v);
                        continue;
                }
                if (json_is_null(v))
                        continue;
                if (streq(name, "extra_vars")) {
                        _cleanup_json_ json_t *parsed = NULL;
                        if (json_is_object(v))
                                parsed = json_deep_copy(v);
                        else if (!json_is_string(v) || api_parse_vars(json_string_value(v), &parsed) < 0)
                                json_object_set_new(errors, name, json_pack("[s]", "Must be a valid JSON or YAML dictionary."));
                        if (parsed)
                                json_object_update(vars, parsed);
                } else if (streq(name, "credentials") || streq(name, "labels")) {
                        if (!json_is_array(v) || json_array_size(v) > 0)
                                json_object_set_new(errors, name, json_pack("[s]", "drover has no credentials or labels yet: give an empty list."));
                } else if (streq(name, "instance_groups")) {
                        size_t j;
                        json_t *it;
                        if (!json_is_array(v)) {
                                json_object_set_new(errors, name, json_pack("[s]", "Expected a list of items."));
                                continue;
                        }
                        json_array_foreach(v, j, it) {
                                static const api_field igf = { "instance_groups", AF_FK, 0, NULL, 0, ST_INSTANCE_GROUP };
                                json_t *conv = api_convert_input(c, &igf, it, msg, sizeof msg);
                                if (!conv) {
                                        json_object_set_new(errors, name, json_pack("[s]", msg));
                                        break;
                                }
                                if (j == 0)
                                        json_object_set_new(set, "instance_group", conv);
                                else
                                        json_decref(conv);
                        }
                } else {
                        const api_field *f = api_field_find(api_res_job_template.fields, name);
                        json_t *conv = f ? api_convert_input(c, f, v, msg, sizeof msg) : NULL;
                        if (!conv)
                                json_object_set_new(errors, name, json_pack("[s]", f ? msg : "Unsupported."));
                        else
                                json_object_set_new(set, name, conv);
                }
        }
        if (json_object_size(errors) > 0) {
                http_respond(resp, 400, TAKE_PTR(errors));
                return 1;
        }
        return 0;
}

/* AWX's preference: the template's instance groups, then the inventory's, then the
 * organization's, then "default". */
static int64_t preferred_instance_group(controller *c, const json_t *job, int64_t template_id) {
        const struct { storage_rel rel; int64_t id; } order[] = {
                { SR_JOB_TEMPLATE_INSTANCE_GROUPS, template_id },
                { SR_INVENTORY_INSTANCE_GROUPS, json_get_int(job, "inventory", 0) },
                { SR_ORGANIZATION_INSTANCE_GROUPS, json_get_int(job, "organization", 0) },
        };

        for (size_t i = 0; i < ELEMENTSOF(order); i++) {
                _cleanup_free_ int64_t *ids = NULL;
                size_t n = 0;
                if (order[i].id > 0 && storage_rel_list(c->storage, order[i].rel, order[i].id, false, &ids, &n) >= 0 && n > 0)
                        return ids[0];
        }
        return api_default_instance_group(c);
}

typedef struct launch_op {
        controller *c;
        http_request *req;
        http_response *resp;
        const json_t *src;          /* template or previous job */
        int64_t template_id;
        const char *launch_type;
        json_t *set;                /* accepted overrides */
        json_t *vars;               /* accepted extra vars */
        bool refused;
        int64_t id;
        json_t *job;
} launch_op;

static int op_launch(storage *s, void *userdata) {
        launch_op *op = userdata;
        _cleanup_json_ json_t *base_vars = NULL, *tmp = NULL;
        _cleanup_free_ char *vars_text = NULL;
        const char *k;
        json_t *v;
        char now[32], url[64];
        int64_t ig;
        int q;

        op->job = api_defaults(api_res_job.fields);
        if (!op->job)
                return -ENOMEM;
        for (const char *const *f = inherited; *f; f++)
                if ((v = json_object_get(op->src, *f)))
                        json_object_set(op->job, *f, v);
        json_object_foreach(op->set, k, v)
                json_object_set(op->job, k, v);

        if (!json_is_integer(json_object_get(op->job, "inventory")) ||
            storage_obj_get(s, ST_INVENTORY, json_get_int(op->job, "inventory", 0), &tmp) < 0) {
                http_respond_field_error(op->resp, "inventory", "Job Template 'inventory' is missing or undefined.");
                op->refused = true;
                return -ECANCELED;
        }
        json_decref(TAKE_PTR(tmp));
        if (!json_is_integer(json_object_get(op->job, "project")) ||
            storage_obj_get(s, ST_PROJECT, json_get_int(op->job, "project", 0), &tmp) < 0) {
                http_respond_field_error(op->resp, "project", "Job Template 'project' is missing or undefined.");
                op->refused = true;
                return -ECANCELED;
        }

        /* extra_vars: the source's (JSON or YAML text) with the accepted ones merged over them */
        if (api_parse_vars(json_get_string(op->src, "extra_vars", ""), &base_vars) < 0) {
                base_vars = json_object();
                if (!base_vars)
                        return -ENOMEM;
        }
        json_object_update(base_vars, op->vars);
        vars_text = json_dumps(base_vars, 0);
        if (!vars_text)
                return -ENOMEM;
        json_object_set_new(op->job, "extra_vars", json_string(vars_text));

        json_object_set_new(op->job, "job_template", json_integer(op->template_id));
        json_object_set_new(op->job, "unified_job_template", json_integer(op->template_id));
        json_object_set_new(op->job, "launch_type", json_string(op->launch_type));
        json_object_set_new(op->job, "status", json_string("pending"));
        if (!json_object_get(op->set, "instance_group")) {
                ig = preferred_instance_group(op->c, op->job, op->template_id);
                json_object_set_new(op->job, "instance_group", ig > 0 ? json_integer(ig) : json_null());
        }
        snprintf(url, sizeof url, API_PREFIX "users/%" PRIi64 "/", op->req->user_id);
        json_object_set_new(op->job, "launched_by",
                            json_pack("{s:I,s:s,s:s,s:s}", "id", (json_int_t) op->req->user_id,
                                      "name", strempty(op->req->username), "type", "user", "url", url));
        api_now(now);
        json_object_set_new(op->job, "created", json_string(now));
        json_object_set_new(op->job, "modified", json_string(now));
        json_object_set_new(op->job, "_attempt", json_integer(0));
        json_object_set_new(op->job, "_instance", json_null());
        json_object_set_new(op->job, "_cancel_requested", json_false());
        json_object_set_new(op->job, "_keep_data_dir", json_false());
        q = api_ee_resolve_at_launch(op->c, op->job);
        if (q < 0)
                return q;

        q = storage_obj_create(s, ST_JOB, op->job, &op->id);
        if (q < 0)
                return q;
        return json_object_set_new(op->job, "id", json_integer(op->id));
}

static int launch_job(controller *c, http_request *req, http_response *resp, const json_t *src, int64_t template_id,
                      const char *launch_type, json_t *set, json_t *vars, json_t *ignored) {
        launch_op op = { .c = c, .req = req, .resp = resp, .src = src, .template_id = template_id,
                         .launch_type = launch_type, .set = set, .vars = vars };
        json_t *out = NULL;
        int q;

        q = storage_transaction(c->storage, op_launch, &op);
        if (op.refused || q < 0) {
                json_decref(op.job);
                return op.refused ? 0 : api_storage_error(resp, q, "launch");
        }
        q = api_render(c, &api_res_job, op.job, &out);
        json_decref(op.job);
        if (q < 0)
                return q;
        json_object_set_new(out, "job", json_integer(op.id));
        json_object_set(out, "ignored_fields", ignored);

        q = scheduler_run(c);
        if (q < 0)
                log_warning_errno(q, "Scheduler run after launching job %" PRIi64 " failed: %m", op.id);
        controller_notify(c);

        resp->location = asprintf_safe(API_PREFIX "jobs/%" PRIi64 "/", op.id);
        return http_respond(resp, 201, out);
}

int api_jt_launch_post(controller *c, http_request *req, http_response *resp) {
        _cleanup_json_ json_t *jt = NULL, *body = NULL, *set = json_object(), *vars = json_object(),
                              *ignored = json_object();
        int q;

        if (!set || !vars || !ignored)
                return -ENOMEM;
        q = storage_obj_get(c->storage, ST_JOB_TEMPLATE, req->ids[0], &jt);
        if (q == -ENOENT)
                return api_not_found(resp);
        if (q < 0)
                return api_storage_error(resp, q, "job_templates");
        if (http_request_json_object(req, resp, &body) < 0)
                return 0;
        q = accept_prompts(c, jt, body, set, vars, ignored, resp);
        if (q != 0)
                return q < 0 ? q : 0;
        return launch_job(c, req, resp, jt, req->ids[0], "manual", set, vars, ignored);
}

int api_jt_launch_get(controller *c, http_request *req, http_response *resp) {
        _cleanup_json_ json_t *jt = NULL, *inv = NULL;
        json_t *out, *defaults;
        int q;

        q = storage_obj_get(c->storage, ST_JOB_TEMPLATE, req->ids[0], &jt);
        if (q == -ENOENT)
                return api_not_found(resp);
        if (q < 0)
                return api_storage_error(resp, q, "job_templates");
        if (json_is_integer(json_object_get(jt, "inventory")))
                (void) storage_obj_get(c->storage, ST_INVENTORY, json_get_int(jt, "inventory", 0), &inv);

        defaults = json_pack("{s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:[],s:[],s:[],s:n,s:O}",
                             "extra_vars", json_object_get(jt, "extra_vars"), "diff_mode", json_object_get(jt, "diff_mode"),
                             "limit", json_object_get(jt, "limit"), "job_tags", json_object_get(jt, "job_tags"),
                             "skip_tags", json_object_get(jt, "skip_tags"), "job_type", json_object_get(jt, "job_type"),
                             "verbosity", json_object_get(jt, "verbosity"), "scm_branch", json_object_get(jt, "scm_branch"),
                             "forks", json_object_get(jt, "forks"), "timeout", json_object_get(jt, "timeout"),
                             "credentials", "labels", "instance_groups", "execution_environment",
                             "job_slice_count", json_object_get(jt, "job_slice_count"));
        if (!defaults)
                return -ENOMEM;
        json_object_set_new(defaults, "inventory",
                            inv ? json_pack("{s:I,s:O}", "id", (json_int_t) json_get_int(inv, "id", 0), "name", json_object_get(inv, "name"))
                                : json_pack("{s:n,s:n}", "id", "name"));
        out = json_pack("{s:b,s:[],s:[],s:b,s:b,s:o,s:{s:I,s:O,s:O}}",
                        "can_start_without_user_input", inv != NULL,
                        "passwords_needed_to_start", "variables_needed_to_start",
                        "credential_needed_to_start", 0, "inventory_needed_to_start", inv == NULL,
                        "defaults", defaults,
                        "job_template_data", "id", (json_int_t) req->ids[0], "name", json_object_get(jt, "name"),
                        "description", json_object_get(jt, "description"));
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(prompts); i++)
                json_object_set_new(out, prompts[i].ask, json_boolean(json_get_bool(jt, prompts[i].ask, false)));
        json_object_set(out, "survey_enabled", json_object_get(jt, "survey_enabled") ?: json_false());
        return http_respond(resp, 200, out);
}

int api_job_relaunch_post(controller *c, http_request *req, http_response *resp) {
        _cleanup_json_ json_t *job = NULL, *set = json_object(), *vars = json_object(), *ignored = json_object();
        int q;

        if (!set || !vars || !ignored)
                return -ENOMEM;
        q = storage_obj_get(c->storage, ST_JOB, req->ids[0], &job);
        if (q == -ENOENT)
                return api_not_found(resp);
        if (q < 0)
                return api_storage_error(resp, q, "jobs");
        if (json_is_integer(json_object_get(job, "instance_group")))
                json_object_set(set, "instance_group", json_object_get(job, "instance_group"));
        return launch_job(c, req, resp, job, json_get_int(job, "job_template", 0), "relaunch", set, vars, ignored);
}

/* ---- cancel ---- */

typedef struct cancel_op {
        int64_t id;
        bool changed;
} cancel_op;

static int op_cancel(storage *s, void *userdata) {
        cancel_op *op = userdata;
        _cleanup_json_ json_t *job = NULL, *patch = NULL;
        const char *status;
        char now[32];
        int q;

        q = storage_obj_get(s, ST_JOB, op->id, &job);
        if (q < 0)
                return q;
        status = json_get_string(job, "status", "");
        if (status_is_final(status))
                return -EBUSY;
        if (json_get_bool(job, "_cancel_requested", false))
                return 0;
        api_now(now);
        if (streq(status, "new") || streq(status, "pending") ||
            (streq(status, "waiting") && !json_get_bool(job, "_started_ack", false)))
                patch = json_pack("{s:s,s:b,s:s,s:s,s:s,s:b,s:b,s:s}", "status", "canceled", "failed", 1,
                                  "finished", now, "canceled_on", now, "job_explanation", "Job canceled before it started",
                                  "event_processing_finished", 1, "_cancel_requested", 1, "modified", now);
        else
                patch = json_pack("{s:b,s:s,s:s}", "_cancel_requested", 1, "canceled_on", now, "modified", now);
        if (!patch)
                return -ENOMEM;
        q = storage_obj_patch(s, ST_JOB, op->id, patch);
        if (q < 0)
                return q;
        op->changed = true;
        return 0;
}

int api_job_cancel(controller *c, int64_t job_id) {
        cancel_op op = { .id = job_id };
        int q;

        q = storage_transaction(c->storage, op_cancel, &op);
        if (q < 0)
                return q;
        if (op.changed)
                controller_notify(c);   /* the scheduler's timer picks up freed capacity */
        return 0;
}

int api_job_cancel_get(controller *c, http_request *req, http_response *resp) {
        _cleanup_json_ json_t *job = NULL;
        int q;

        q = storage_obj_get(c->storage, ST_JOB, req->ids[0], &job);
        if (q == -ENOENT)
                return api_not_found(resp);
        if (q < 0)
                return api_storage_error(resp, q, "jobs");
        return http_respond(resp, 200, json_pack("{s:b}", "can_cancel", !status_is_final(json_get_string(job, "status", ""))));
}

int api_job_cancel_post(controller *c, http_request *req, http_response *resp) {
        int q;

        q = api_job_cancel(c, req->ids[0]);
        if (q == -ENOENT)
                return api_not_found(resp);
        if (q == -EBUSY)
                return http_respond_detail(resp, 405, "Method \"POST\" not allowed.");
        if (q < 0)
                return api_storage_error(resp, q, "cancel");
        resp->status = 202;
        return 0;
}

/* ---- events ---- */

static const api_field event_fields[] = {
        { "counter", AF_INT },
        { "event", AF_STRING },
        { "uuid", AF_STRING },
        { "parent_uuid", AF_STRING },
        { "host_name", AF_STRING },
        { "task", AF_STRING },
        { "play", AF_STRING },
        { "failed", AF_BOOL },
        { "changed", AF_BOOL },
        {}
};

static const struct { const char *event, *display; } event_displays[] = {
        { "playbook_on_start", "Playbook Started" },
        { "playbook_on_play_start", "Play Started" },
        { "playbook_on_task_start", "Task Started" },
        { "playbook_on_handler_task_start", "Handler Task Started" },
        { "playbook_on_include", "Including File" },
        { "playbook_on_notify", "Running Handlers" },
        { "playbook_on_no_hosts_matched", "No Hosts Matched" },
        { "playbook_on_no_hosts_remaining", "No Hosts Remaining" },
        { "playbook_on_stats", "Playbook Complete" },
        { "runner_on_start", "Host Started" },
        { "runner_on_ok", "Host OK" },
        { "runner_on_failed", "Host Failed" },
        { "runner_on_skipped", "Host Skipped" },
        { "runner_on_unreachable", "Host Unreachable" },
        { "runner_item_on_ok", "Item OK" },
        { "runner_item_on_failed", "Item Failed" },
        { "runner_item_on_skipped", "Item Skipped" },
        { "runner_retry", "Host Retry" },
        { "runner_on_file_diff", "File Difference" },
        { "verbose", "Verbose" },
        { "warning", "Warning" },
        { "deprecated", "Deprecated" },
        { "error", "Error" },
};

static int list_events(controller *c, void *userdata, const storage_query *q, json_t **ret_results, int64_t *ret_count) {
        return storage_events_list(c->storage, *(int64_t *) userdata, q, ret_results, ret_count);
}

static int render_event(controller *c, void *userdata, const json_t *ev, json_t **ret) {
        const char *event = json_get_string(ev, "event", "");
        json_t *data = json_object_get(ev, "event_data"), *out;
        int64_t id = json_get_int(ev, "id", 0), job = json_get_int(ev, "job", 0);
        const char *display = event;
        bool failed, changed;
        int level = 0;
        char url[96];

        for (size_t i = 0; i < ELEMENTSOF(event_displays); i++)
                if (streq(event_displays[i].event, event))
                        display = event_displays[i].display;
        if (startswith(event, "runner_"))
                level = 3;
        else if (streq(event, "playbook_on_task_start") || streq(event, "playbook_on_handler_task_start"))
                level = 2;
        else if (streq(event, "playbook_on_play_start"))
                level = 1;
        storage_event_flags(ev, &failed, &changed);
        snprintf(url, sizeof url, API_PREFIX "job_events/%" PRIi64 "/", id);
        out = json_pack("{s:I,s:s,s:s,s:{s:o},s:{},s:O*,s:O*,s:I,s:s,s:I,s:s,s:i,s:b,s:b}",
                        "id", (json_int_t) id, "type", "job_event", "url", url,
                        "related", "job", job_url(job), "summary_fields",
                        "created", json_object_get(ev, "created"), "modified", json_object_get(ev, "created"),
                        "job", (json_int_t) job, "event", event, "counter", (json_int_t) json_get_int(ev, "counter", 0),
                        "event_display", display, "event_level", level, "failed", failed, "changed", changed);
        if (!out)
                return -ENOMEM;
        json_object_set_new(out, "event_data", data ? json_incref(data) : json_object());
        static const char *const copied[] = { "uuid", "parent_uuid", "stdout", "start_line", "end_line", "verbosity", NULL };
        for (size_t i = 0; copied[i]; i++)
                json_object_set_new(out, copied[i], json_incref(json_object_get(ev, copied[i])) ?:
                                    (streq(copied[i], "start_line") || streq(copied[i], "end_line") ||
                                     streq(copied[i], "verbosity") ? json_integer(0) : json_string("")));
        json_object_set_new(out, "host", json_null());
        json_object_set_new(out, "host_name", json_string(json_get_string(ev, "host_name", json_get_string(data, "host", ""))));
        json_object_set_new(out, "playbook", json_string(json_get_string(data, "playbook", "")));
        json_object_set_new(out, "play", json_string(json_get_string(data, "play", "")));
        json_object_set_new(out, "task", json_string(json_get_string(data, "task", "")));
        json_object_set_new(out, "role", json_string(json_get_string(data, "role", "")));
        *ret = out;
        return 0;
}

static int job_exists(controller *c, int64_t id, json_t **ret, http_response *resp) {
        int q = storage_obj_get(c->storage, ST_JOB, id, ret);
        if (q == -ENOENT) {
                api_not_found(resp);
                return 1;
        }
        if (q < 0) {
                api_storage_error(resp, q, "jobs");
                return 1;
        }
        return 0;
}

int api_job_events(controller *c, http_request *req, http_response *resp) {
        _cleanup_json_ json_t *job = NULL;
        int64_t id = req->ids[0];

        if (job_exists(c, id, &job, resp))
                return 0;
        api_list_spec spec = {
                .fields = event_fields, .list = list_events, .render = render_event, .userdata = &id,
                .default_order = "counter",
        };
        return api_list(c, req, resp, &spec);
}

/* Events are read in pages (by counter) so that only the text, not every event document of a
 * long job at once, is held in memory. */
#define STDOUT_EVENTS_PAGE 200

int api_job_stdout(controller *c, http_request *req, http_response *resp) {
        _cleanup_json_ json_t *job = NULL;
        _cleanup_free_ char *text = NULL;
        const char *format = http_query_get(req, "format");
        size_t len = 0, lines = 0;
        int64_t last = 0;
        FILE *f;
        int q = 0;

        if (job_exists(c, req->ids[0], &job, resp))
                return 0;

        f = open_memstream(&text, &len);
        if (!f)
                return -ENOMEM;
        for (;;) {
                _cleanup_json_ json_t *events = NULL, *after = json_integer(last);
                storage_filter filter = { .field = "counter", .op = SF_GT, .value = after };
                storage_query query = { .filters = &filter, .n_filters = 1, .order_by = "counter",
                                        .limit = STDOUT_EVENTS_PAGE };
                json_t *ev;
                size_t i;

                if (!after) {
                        q = -ENOMEM;
                        break;
                }
                q = storage_events_list(c->storage, req->ids[0], &query, &events, NULL);
                if (q < 0)
                        break;
                int64_t before = last;
                json_array_foreach(events, i, ev) {
                        const char *s = json_get_string(ev, "stdout", "");
                        last = MAX(last, json_get_int(ev, "counter", last));
                        if (isempty(s))
                                continue;
                        fputs(s, f);
                        fputc('\n', f);
                        for (const char *p = s; *p; p++)
                                lines += *p == '\n';
                        lines++;
                }
                if (json_array_size(events) < STDOUT_EVENTS_PAGE || last == before)
                        break;
        }
        if (fclose(f) != 0 || !text)
                return -ENOMEM;
        if (q < 0)
                return api_storage_error(resp, q, "job events");

        if (format && (streq(format, "txt") || streq(format, "ansi") || streq(format, "txt_download") ||
                       streq(format, "ansi_download") || streq(format, "html"))) {
                resp->status = 200;
                resp->content_type = "text/plain; charset=utf-8";
                resp->body_size = len;
                resp->body = TAKE_PTR(text);
                return 0;
        }
        if (format && !streq(format, "json") && !streq(format, "api"))
                return http_respond_detail(resp, 400, "Unsupported format \"%s\": use txt, ansi, json or txt_download.", format);
        return http_respond(resp, 200, json_pack("{s:{s:i,s:I,s:I},s:s%}", "range", "start", 0,
                                                 "end", (json_int_t) lines, "absolute_end", (json_int_t) lines,
                                                 "content", text, len));
}

/* ---- host summaries ---- */

static const char *const summary_counters[] = {
        "changed", "dark", "failures", "ignored", "ok", "processed", "rescued", "skipped", NULL,
};

static int str_cmp(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

int api_job_host_summaries(controller *c, http_request *req, http_response *resp) {
        _cleanup_json_ json_t *job = NULL, *events = NULL, *hosts = json_object(), *results = json_array(),
                              *ev_name = json_string("playbook_on_stats");
        json_t *stats, *data;
        _cleanup_free_ const char **names = NULL;
        size_t n_names = 0;
        const char *host;
        json_t *v;
        int64_t job_id = req->ids[0], n = 0;
        int q;

        if (!hosts || !results || !ev_name)
                return -ENOMEM;
        if (job_exists(c, job_id, &job, resp))
                return 0;
        storage_filter f = { .field = "event", .op = SF_EQ, .value = ev_name };
        storage_query query = { .filters = &f, .n_filters = 1, .order_by = "-counter", .limit = 1 };
        q = storage_events_list(c->storage, job_id, &query, &events, NULL);
        if (q < 0)
                return api_storage_error(resp, q, "job events");
        stats = json_array_get(events, 0);
        data = json_object_get(stats, "event_data");

        /* every host named by any counter */
        for (size_t i = 0; summary_counters[i]; i++)
                json_object_foreach(json_object_get(data, summary_counters[i]), host, v)
                        json_object_set_new(hosts, host, json_true());
        names = calloc(json_object_size(hosts) + 1, sizeof(char *));
        if (!names)
                return -ENOMEM;
        json_object_foreach(hosts, host, v)
                names[n_names++] = host;
        qsort(names, n_names, sizeof(char *), str_cmp);
        for (size_t hi = 0; hi < n_names; hi++) {
                _cleanup_json_ json_t *h = NULL;
                host = names[hi];
                storage_filter hf[2] = {
                        { .field = "inventory", .op = SF_EQ, .value = json_object_get(job, "inventory") ?: json_null() },
                        { .field = "name", .op = SF_EQ, .value = json_string(host) },
                };
                storage_query hq = { .filters = hf, .n_filters = 2, .limit = 1 };
                json_t *s, *hid;
                int64_t failures, dark;

                if (!hf[1].value)
                        return -ENOMEM;
                q = storage_obj_list(c->storage, ST_HOST, &hq, &h, NULL);
                json_decref(hf[1].value);
                if (q < 0)
                        return api_storage_error(resp, q, "hosts");
                hid = json_object_get(json_array_get(h, 0), "id");
                s = json_pack("{s:I,s:s,s:I,s:O,s:s}", "id", (json_int_t) ++n, "type", "job_host_summary",
                              "job", (json_int_t) job_id, "host", hid ?: json_null(), "host_name", host);
                if (!s)
                        return -ENOMEM;
                for (size_t i = 0; summary_counters[i]; i++)
                        json_object_set_new(s, summary_counters[i],
                                            json_integer(json_get_int(json_object_get(data, summary_counters[i]), host, 0)));
                failures = json_get_int(s, "failures", 0);
                dark = json_get_int(s, "dark", 0);
                json_object_set_new(s, "failed", json_boolean(failures > 0 || dark > 0));
                json_object_set_new(s, "created", json_incref(json_object_get(stats, "created")) ?: json_null());
                json_object_set_new(s, "modified", json_incref(json_object_get(stats, "created")) ?: json_null());
                json_object_set_new(s, "related", json_pack("{s:o}", "job", job_url(job_id)));
                json_object_set_new(s, "summary_fields",
                                    json_pack("{s:{s:O,s:s},s:{s:I,s:O,s:O}}", "host", "id", hid ?: json_null(), "name", host,
                                              "job", "id", (json_int_t) job_id, "name", json_object_get(job, "name"),
                                              "status", json_object_get(job, "status")));
                json_array_append_new(results, s);
        }
        return http_respond(resp, 200, json_pack("{s:I,s:n,s:n,s:O}", "count", (json_int_t) n, "next", "previous",
                                                 "results", results));
}
