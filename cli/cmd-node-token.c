/* cmd-node-token.c: "droverctl node token": create a one-time enrollment token for a new
 * execution node (POST /api/v2/instances/enrollment_tokens/) and print it. */
#include "cli.h"

#include "drover/json-util.h"
#include "drover/log.h"
#include "drover/util.h"

#define NODE_TOKEN_MAX_EXPIRES_IN (30 * 24 * 3600)

static const cli_option node_token_options[] = {
        { "hostname", true },
        { "expires-in", true },
        {},
};

static int exec_node_token(cli_context *ctx, const cli_args *args) {
        const char *hostname = cli_args_get(args, "hostname"), *expires = cli_args_get(args, "expires-in");
        _cleanup_json_ json_t *body = json_object(), *answer = NULL;
        int r;

        if (!body)
                return log_oom();
        if (hostname) {
                if (isempty(hostname) || strlen(hostname) > 253 || strpbrk(hostname, " \t\r\n/"))
                        return cli_usage_error(ctx->command, "--hostname: invalid host name '%s'", hostname);
                if (json_object_set_new(body, "hostname", json_string(hostname)) < 0)
                        return log_oom();
        }
        if (expires) {
                uint64_t usec;
                if (parse_timespan(expires, &usec) < 0 || usec < USEC_PER_SEC ||
                    usec / USEC_PER_SEC > NODE_TOKEN_MAX_EXPIRES_IN)
                        return cli_usage_error(ctx->command, "--expires-in: expected a time span like 1h (at most 30 days)");
                if (json_object_set_new(body, "expires_in", json_integer((json_int_t) (usec / USEC_PER_SEC))) < 0)
                        return log_oom();
        }

        r = cli_request(ctx, "POST", "/api/v2/instances/enrollment_tokens/", body, NULL, &answer);
        if (r < 0)
                return r;
        if (ctx->settings.json)
                return cli_print_json(ctx->out, answer) < 0 ? -EIO : CLI_EXIT_SUCCESS;
        const char *token = json_get_string(answer, "token", NULL);
        if (isempty(token))
                return cli_error("the controller answered without a token");
        fprintf(ctx->out, "%s\n", token);
        const char *exp = json_get_string(answer, "expires", NULL);
        if (exp && isatty(STDERR_FILENO))
                fprintf(stderr, "The token can be used once, until %s.\n", exp);
        return CLI_EXIT_SUCCESS;
}

const cli_command cli_cmd_node_token = {
        .name = "node token",
        .usage = "[--hostname HOST] [--expires-in TIMESPAN]",
        .summary = "Create a one-time enrollment token for a new execution node.",
        .options = node_token_options,
        .max_args = 0,
        .exec = exec_node_token,
};
