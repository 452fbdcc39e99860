/* cmd-job-events.c: "droverctl job events N": the job's events (every page) as a table
 * COUNTER EVENT HOST TASK, optionally only one event type or those after a counter. */
#include "cli.h"

#include "drover/json-util.h"
#include "drover/log.h"
#include "drover/util.h"

static const cli_option job_events_options[] = {
        { "event", true },
        { "after", true },
        {},
};

static const cli_column event_columns[] = {
        { "COUNTER", 0, true }, { "EVENT", 0 }, { "HOST", 40 }, { "TASK", 60 },
};

static int add_event_row(cli_table *t, const json_t *e) {
        int r;

        if ((r = cli_table_add_row(t)) < 0 ||
            (r = cli_table_put(t, 0, cli_json_text(e, "counter"))) < 0 ||
            (r = cli_table_put(t, 1, cli_json_text(e, "event"))) < 0 ||
            (r = cli_table_put(t, 2, cli_json_text(e, "host_name"))) < 0 ||
            (r = cli_table_put(t, 3, cli_json_text(e, "task"))) < 0)
                return r;
        return 0;
}

static int exec_job_events(cli_context *ctx, const cli_args *args) {
        const char *event = cli_args_get(args, "event"), *after_arg = cli_args_get(args, "after");
        _cleanup_json_ json_t *results = NULL;
        _cleanup_free_ char *path = NULL, *event_esc = NULL, *after_q = NULL;
        _cleanup_cli_table_ cli_table *t = NULL;
        int64_t id, after = 0;
        int r;

        if (cli_parse_id(args->positional[0], &id) < 0)
                return cli_usage_error(ctx->command, "invalid job id '%s'", args->positional[0]);
        if (after_arg && !streq(after_arg, "0") && cli_parse_id(after_arg, &after) < 0)
                return cli_usage_error(ctx->command, "--after: expected a counter (a number), got '%s'", after_arg);
        if (event) {
                event_esc = cli_uri_escape(event);
                if (!event_esc)
                        return log_oom();
        }
        after_q = after_arg ? asprintf_safe("&counter__gt=%" PRId64, after) : strdup("");
        if (!after_q)
                return log_oom();
        path = asprintf_safe("/api/v2/jobs/%" PRId64 "/job_events/?order_by=counter&page_size=200%s%s%s", id,
                             event ? "&event=" : "", strempty(event_esc), after_q);
        if (!path)
                return log_oom();
        r = cli_get_all(ctx, path, CLI_LIST_MAX_ITEMS, &results);
        if (r < 0)
                return r;

        if (ctx->settings.json)
                return cli_print_json(ctx->out, results) < 0 ? -EIO : CLI_EXIT_SUCCESS;

        if (cli_table_new(event_columns, ELEMENTSOF(event_columns), &t) < 0)
                return log_oom();
        size_t i;
        json_t *e;
        json_array_foreach(results, i, e)
                if (add_event_row(t, e) < 0)
                        return log_oom();
        cli_table_print(t, ctx->out);
        return CLI_EXIT_SUCCESS;
}

const cli_command cli_cmd_job_events = {
        .name = "job events",
        .usage = "JOB_ID [--event NAME] [--after COUNTER]",
        .summary = "List a job's events (all pages).",
        .options = job_events_options,
        .min_args = 1,
        .max_args = 1,
        .exec = exec_job_events,
};
