/* cmd-job-cancel.c: "droverctl job cancel N": ask whether the job can be canceled (GET
 * .../cancel/ -> can_cancel), then request it (POST -> 202). */
#include "cli.h"

#include "drover/json-util.h"
#include "drover/log.h"
#include "drover/util.h"

static int exec_job_cancel(cli_context *ctx, const cli_args *args) {
        _cleanup_json_ json_t *answer = NULL, *job = NULL;
        _cleanup_free_ char *path = NULL, *job_path = NULL;
        int64_t id;
        int r;

        if (cli_parse_id(args->positional[0], &id) < 0)
                return cli_usage_error(ctx->command, "invalid job id '%s'", args->positional[0]);
        path = asprintf_safe("/api/v2/jobs/%" PRId64 "/cancel/", id);
        job_path = asprintf_safe("/api/v2/jobs/%" PRId64 "/", id);
        if (!path || !job_path)
                return log_oom();

        r = cli_request(ctx, "GET", path, NULL, NULL, &answer);
        if (r < 0)
                return r;
        if (!json_get_bool(answer, "can_cancel", false)) {
                /* say why: the job's status */
                if (cli_request(ctx, "GET", job_path, NULL, NULL, &job) >= 0)
                        return cli_error("job %" PRId64 " cannot be canceled (status %s)", id,
                                         json_get_string(job, "status", "unknown"));
                return cli_error("job %" PRId64 " cannot be canceled", id);
        }

        r = cli_request(ctx, "POST", path, NULL, NULL, NULL);
        if (r < 0)
                return r;
        if (ctx->settings.json)
                fprintf(ctx->out, "{\"id\": %" PRId64 ", \"cancel_requested\": true}\n", id);
        else
                fprintf(ctx->out, "Cancel requested for job %" PRId64 "\n", id);
        return CLI_EXIT_SUCCESS;
}

const cli_command cli_cmd_job_cancel = {
        .name = "job cancel",
        .usage = "JOB_ID",
        .summary = "Cancel a pending or running job.",
        .min_args = 1,
        .max_args = 1,
        .exec = exec_job_cancel,
};
