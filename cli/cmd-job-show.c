/* cmd-job-show.c: "droverctl job show N": one job as "key: value" lines. */
#include "cli.h"

#include "drover/json-util.h"
#include "drover/log.h"
#include "drover/util.h"

/* "name (id)" from summary_fields.<key>, falling back to the plain id field. */
static char *related_text(const json_t *job, const char *key) {
        const json_t *sf = json_object_get(json_object_get(job, "summary_fields"), key);
        const char *name = json_get_string(sf, "name", NULL);
        const json_t *id = json_object_get(job, key);

        if (name && json_is_integer(id))
                return asprintf_safe("%s (%" JSON_INTEGER_FORMAT ")", name, json_integer_value(id));
        if (name)
                return strdup(name);
        return cli_json_text(job, key);
}

static int exec_job_show(cli_context *ctx, const cli_args *args) {
        _cleanup_json_ json_t *job = NULL;
        _cleanup_free_ char *path = NULL;
        int64_t id;
        int r;

        if (cli_parse_id(args->positional[0], &id) < 0)
                return cli_usage_error(ctx->command, "invalid job id '%s'", args->positional[0]);
        path = asprintf_safe("/api/v2/jobs/%" PRId64 "/", id);
        if (!path)
                return log_oom();
        r = cli_request(ctx, "GET", path, NULL, NULL, &job);
        if (r < 0)
                return r;
        if (ctx->settings.json)
                return cli_print_json(ctx->out, job) < 0 ? -EIO : CLI_EXIT_SUCCESS;

        const json_t *el = json_object_get(job, "elapsed");
        struct { const char *label; char *value; } lines[] = {
                { "id", cli_json_text(job, "id") },
                { "name", cli_json_text(job, "name") },
                { "status", cli_json_text(job, "status") },
                { "template", related_text(job, "job_template") },
                { "inventory", related_text(job, "inventory") },
                { "project", related_text(job, "project") },
                { "playbook", cli_json_text(job, "playbook") },
                { "node", cli_json_text(job, "execution_node") },
                { "started", cli_format_time(json_get_string(job, "started", NULL)) },
                { "finished", cli_format_time(json_get_string(job, "finished", NULL)) },
                { "elapsed", json_is_number(el) ? cli_format_elapsed(json_number_value(el)) : strdup("") },
                { "explanation", cli_json_text(job, "job_explanation") },
        };
        r = 0;
        for (size_t i = 0; i < ELEMENTSOF(lines); i++)
                if (!lines[i].value)
                        r = -ENOMEM;
        if (r == 0)
                for (size_t i = 0; i < ELEMENTSOF(lines); i++) {
                        _cleanup_free_ char *v = cli_truncate(lines[i].value, 0);   /* control chars -> spaces */
                        fprintf(ctx->out, "%s: %s\n", lines[i].label, strempty(v));
                }
        for (size_t i = 0; i < ELEMENTSOF(lines); i++)
                free(lines[i].value);
        return r < 0 ? log_oom() : CLI_EXIT_SUCCESS;
}

const cli_command cli_cmd_job_show = {
        .name = "job show",
        .usage = "JOB_ID",
        .summary = "Show one job.",
        .min_args = 1,
        .max_args = 1,
        .exec = exec_job_show,
};
