/* cmd-node-list.c: "droverctl node list": the execution nodes (GET /api/v2/instances/) as a
 * table HOSTNAME STATE CAPACITY USED ENABLED LAST_SEEN. */
#include "cli.h"

#include "drover/json-util.h"
#include "drover/log.h"
#include "drover/util.h"

static const cli_column node_columns[] = {
        { "HOSTNAME", 50 }, { "STATE", 0 }, { "CAPACITY", 0, true }, { "USED", 0, true }, { "ENABLED", 0 },
        { "LAST_SEEN", 0 },
};

static int add_node_row(cli_table *t, const json_t *n) {
        int r;

        if ((r = cli_table_add_row(t)) < 0 ||
            (r = cli_table_put(t, 0, cli_json_text(n, "hostname"))) < 0 ||
            (r = cli_table_put(t, 1, cli_json_text(n, "node_state"))) < 0 ||
            (r = cli_table_put(t, 2, cli_json_text(n, "capacity"))) < 0 ||
            (r = cli_table_put(t, 3, cli_json_text(n, "consumed_capacity"))) < 0 ||
            (r = cli_table_put(t, 4, cli_json_text(n, "enabled"))) < 0 ||
            (r = cli_table_put(t, 5, cli_format_time(json_get_string(n, "last_seen", NULL)))) < 0)
                return r;
        return 0;
}

static int exec_node_list(cli_context *ctx, const cli_args *args) {
        _cleanup_json_ json_t *results = NULL;
        _cleanup_cli_table_ cli_table *t = NULL;
        int r;

        r = cli_get_all(ctx, "/api/v2/instances/?order_by=hostname&page_size=200", CLI_LIST_MAX_ITEMS, &results);
        if (r < 0)
                return r;
        if (ctx->settings.json)
                return cli_print_json(ctx->out, results) < 0 ? -EIO : CLI_EXIT_SUCCESS;

        if (cli_table_new(node_columns, ELEMENTSOF(node_columns), &t) < 0)
                return log_oom();
        size_t i;
        json_t *n;
        json_array_foreach(results, i, n)
                if (add_node_row(t, n) < 0)
                        return log_oom();
        cli_table_print(t, ctx->out);
        return CLI_EXIT_SUCCESS;
}

const cli_command cli_cmd_node_list = {
        .name = "node list",
        .usage = "",
        .summary = "List execution nodes.",
        .max_args = 0,
        .exec = exec_node_list,
};
