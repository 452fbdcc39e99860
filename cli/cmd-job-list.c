/* cmd-job-list.c: "droverctl job list": the newest jobs as a table (ID NAME STATUS NODE STARTED
 * ELAPSED), optionally filtered by status and job template. */
#include "cli.h"

#include "drover/json-util.h"
#include "drover/log.h"
#include "drover/util.h"

#define JOB_LIST_DEFAULT 25
#define JOB_LIST_MAX 10000

static const cli_option job_list_options[] = {
        { "status", true },
        { "template", true },
        { "limit", true },
        {},
};

static const char *const job_statuses[] = {
        "new", "pending", "waiting", "running", "successful", "failed", "error", "canceled", NULL,
};

static const cli_column job_columns[] = {
        { "ID", 0, true }, { "NAME", 40 }, { "STATUS", 0 }, { "NODE", 30 }, { "STARTED", 0 }, { "ELAPSED", 0, true },
};

static int add_job_row(cli_table *t, const json_t *j) {
        const json_t *el = json_object_get(j, "elapsed");
        int r;

        if ((r = cli_table_add_row(t)) < 0 ||
            (r = cli_table_put(t, 0, cli_json_text(j, "id"))) < 0 ||
            (r = cli_table_put(t, 1, cli_json_text(j, "name"))) < 0 ||
            (r = cli_table_put(t, 2, cli_json_text(j, "status"))) < 0 ||
            (r = cli_table_put(t, 3, cli_json_text(j, "execution_node"))) < 0 ||
            (r = cli_table_put(t, 4, cli_format_time(json_get_string(j, "started", NULL)))) < 0 ||
            (r = cli_table_put(t, 5, json_is_number(el) ? cli_format_elapsed(json_number_value(el)) : strdup(""))) < 0)
                return r;
        return 0;
}

static int exec_job_list(cli_context *ctx, const cli_args *args) {
        const char *status = cli_args_get(args, "status"), *template = cli_args_get(args, "template");
        const char *limit_arg = cli_args_get(args, "limit");
        _cleanup_json_ json_t *results = NULL, *tmpl = NULL;
        _cleanup_free_ char *path = NULL, *filter = NULL;
        _cleanup_cli_table_ cli_table *t = NULL;
        int64_t limit = JOB_LIST_DEFAULT;
        int r;

        if (limit_arg && (cli_parse_id(limit_arg, &limit) < 0 || limit > JOB_LIST_MAX))
                return cli_usage_error(ctx->command, "--limit: expected a number between 1 and %d", JOB_LIST_MAX);
        if (status && !strv_contains((char *const *) job_statuses, status))
                return cli_usage_error(ctx->command, "--status: unknown status '%s'", status);

        if (template) {
                r = cli_lookup_job_template(ctx, template, &tmpl);
                if (r < 0)
                        return r;
                filter = asprintf_safe("&job_template=%" PRId64, json_get_int(tmpl, "id", 0));
        } else
                filter = strdup("");
        if (!filter)
                return log_oom();
        path = asprintf_safe("/api/v2/jobs/?order_by=-id&page_size=%" PRId64 "%s%s%s", MIN(limit, (int64_t) 200),
                             filter, status ? "&status=" : "", strempty(status));
        if (!path)
                return log_oom();
        r = cli_get_all(ctx, path, (size_t) limit, &results);
        if (r < 0)
                return r;

        if (ctx->settings.json)
                return cli_print_json(ctx->out, results) < 0 ? -EIO : CLI_EXIT_SUCCESS;

        if (cli_table_new(job_columns, ELEMENTSOF(job_columns), &t) < 0)
                return log_oom();
        size_t i;
        json_t *j;
        json_array_foreach(results, i, j)
                if (add_job_row(t, j) < 0)
                        return log_oom();
        cli_table_print(t, ctx->out);
        return CLI_EXIT_SUCCESS;
}

const cli_command cli_cmd_job_list = {
        .name = "job list",
        .usage = "[--status STATUS] [--template NAME] [--limit N]",
        .summary = "List jobs, newest first (default 25).",
        .options = job_list_options,
        .max_args = 0,
        .exec = exec_job_list,
};
