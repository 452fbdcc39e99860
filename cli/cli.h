/* cli.h: droverctl's shared machinery: the command table (one cli_command per cmd-*.c file, as
 * tmux's cmd_entry), command-line parsing with global options anywhere, settings resolution
 * (flags > environment > config file), the HTTP helpers every command uses, and output helpers
 * (tables, JSON, the API's error bodies). */
#pragma once

#include <jansson.h>
#include <inttypes.h>
#include <stdio.h>
#include "drover/http-client.h"
#include "drover/macro.h"

enum {
        CLI_EXIT_SUCCESS = 0,
        CLI_EXIT_FAILURE = 1,
        CLI_EXIT_USAGE = 64,    /* EX_USAGE */
};

/* Limits on what the user (or a config file) hands us. */
#define CLI_ARGS_MAX 256
#define CLI_ARG_MAX (64U * 1024U)
#define CLI_CONFIG_MAX (64U * 1024U)
#define CLI_EXTRA_VARS_FILE_MAX (1024U * 1024U)
#define CLI_LIST_MAX_ITEMS 100000
#define CLI_PASSWORD_MAX 1024
#define CLI_REQUEST_TIMEOUT_MS 60000L

/* ---- settings: global options, environment, config file ---- */

typedef struct cli_settings {
        char *url;              /* normalised: scheme added, no trailing slash */
        char *token;            /* secret */
        char *ca_file;
        char *user;
        char *password;         /* secret; never read from the config file */
        char *config_path;      /* the config file in use (explicit or default) */
        bool json;
} cli_settings;

void cli_settings_done(cli_settings *s);    /* frees the members (secrets wiped) */

/* The default config path: $XDG_CONFIG_HOME/drover/cli.yaml or ~/.config/drover/cli.yaml. */
int cli_default_config_path(char **ret);

/* Fill every unset member of *s, first from DROVER_URL/DROVER_TOKEN/DROVER_CA_FILE/DROVER_USER/
 * DROVER_PASSWORD, then from the config file s->config_path (set to the default when NULL; a
 * missing file is not an error). Members already set (from flags) win. On a config error returns
 * -EINVAL and stores "<file>:<line>:<col>: <problem>" in ret_error (free it). */
int cli_settings_resolve(cli_settings *s, char **ret_error);

/* Load the config file alone (keys url, token, ca_file, user) into *ret (zeroed first). */
int cli_config_load(const char *path, cli_settings *ret, char **ret_error);
/* Write url, ca_file, token, user to path, 0600, creating the directory 0700. */
int cli_config_save(const char *path, const cli_settings *s);

/* "host:8443" -> "https://host:8443"; trailing slashes dropped. */
int cli_normalize_url(const char *url, char **ret);

/* ---- command line ---- */

typedef struct cli_option {
        const char *name;       /* long name without "--" */
        bool has_value;
        bool repeatable;        /* every occurrence is kept (e.g. --extra-vars) */
} cli_option;

typedef struct cli_args {
        char **positional;      /* strv */
        const struct cli_command *command;
        const cli_option *options;
        char ***values;         /* values[i]: strv of the values of options[i] ("" for flags) */
        size_t n_options;
} cli_args;

typedef struct cli_context cli_context;

typedef enum cli_command_flags {
        CLI_COMMAND_NO_AUTH = 1 << 0,   /* the command handles authentication itself (login) */
} cli_command_flags;

typedef struct cli_command {
        const char *name;               /* words, e.g. "job launch" */
        const char *usage;              /* arguments after the name */
        const char *summary;
        const cli_option *options;      /* terminated by { NULL } ; may be NULL */
        unsigned min_args, max_args;    /* positional arguments */
        unsigned flags;
        int (*exec)(cli_context *ctx, const cli_args *args);  /* exit code >= 0 or -errno (reported) */
} cli_command;

extern const cli_command cli_cmd_login;
extern const cli_command cli_cmd_job_launch;
extern const cli_command cli_cmd_job_list;
extern const cli_command cli_cmd_job_show;
extern const cli_command cli_cmd_job_cancel;
extern const cli_command cli_cmd_job_events;
extern const cli_command cli_cmd_node_list;
extern const cli_command cli_cmd_node_token;

extern const cli_command *const cli_commands[];     /* NULL terminated */

/* Parse argv (without argv[0]): global options anywhere, the command words, the command's own
 * options and positional arguments. Global options are stored into *settings (flags only, no
 * resolution). Returns 0 with *ret_args filled, 1 when help was requested (text printed),
 * or -EINVAL for a usage error with ret_error set ("unknown option '--x'", ...); then only
 * ret_args->command is set (when the command words were recognised), for the usage line. */
int cli_parse(int argc, char **argv, cli_settings *settings, cli_args *ret_args, char **ret_error);
void cli_args_done(cli_args *a);

/* The last value of option `name` (NULL if not given); cli_args_all: every value (NULL if none). */
const char *cli_args_get(const cli_args *a, const char *name);
char *const *cli_args_all(const cli_args *a, const char *name);
bool cli_args_has(const cli_args *a, const char *name);

void cli_print_usage(FILE *f, const cli_command *c);
void cli_print_help(FILE *f);

/* Print "error: ..." (and return -EINVAL) / "usage: ..." + return CLI_EXIT_USAGE. */
int cli_error(const char *fmt, ...) _printf_(1, 2);
void cli_warning(const char *fmt, ...) _printf_(1, 2);
int cli_usage_error(const cli_command *c, const char *fmt, ...) _printf_(2, 3);

/* The whole program: parse, resolve, run. Returns the exit status. */
int cli_main(int argc, char **argv);

/* ---- talking to the controller ---- */

struct cli_context {
        cli_settings settings;
        const cli_command *command;
        http_client *http;
        FILE *out;
};

/* Create ctx->http for settings.url/ca_file with Bearer token or Basic user/password. */
int cli_connect(cli_context *ctx, bool need_auth);

/* One request. A transport failure or a status outside [200, 300) is reported to the user
 * (cli_report_*) and returned as a negative errno; on success *ret_json (may be NULL) gets the
 * parsed body (or NULL if none) and *ret_status the status. */
int cli_request(cli_context *ctx, const char *method, const char *path, const json_t *body,
                long *ret_status, json_t **ret_json);
/* GET a paginated list and every following page (up to max_items results) into one array. */
int cli_get_all(cli_context *ctx, const char *path, size_t max_items, json_t **ret_results);

/* "error: 400 name: This field is required." from an API answer. */
char *cli_format_error_body(long status, const json_t *json, const char *body);
void cli_report_http_error(long status, const json_t *json, const char *body);
void cli_report_transport_error(const char *url, int error, const char *text);

/* Percent-encode a query string value. */
char *cli_uri_escape(const char *s);
/* Look up a job template by name, or by id-or-name for digits (the awx collection's rules). */
int cli_lookup_job_template(cli_context *ctx, const char *name_or_id, json_t **ret_template);
/* Parse a job id argument ("12"). */
int cli_parse_id(const char *s, int64_t *ret);

/* ---- output ---- */

typedef struct cli_column {
        const char *header;
        size_t max_width;       /* 0: unlimited; longer cells are cut and end in "..." */
        bool right_align;
} cli_column;

/* Render rows (rows[r][c], NULL cells print as "") as an aligned table: two spaces between
 * columns, widths in UTF-8 characters, no trailing spaces. */
void cli_table_render(FILE *f, const cli_column *columns, size_t n_columns, char *const *const *rows,
                      size_t n_rows);
/* A table being built: add a row, then put each cell (taking ownership; a NULL value means the
 * caller ran out of memory and makes cli_table_put fail with -ENOMEM). */
typedef struct cli_table cli_table;
int cli_table_new(const cli_column *columns, size_t n_columns, cli_table **ret);
void cli_table_free(cli_table *t);
static inline void cli_table_freep(cli_table **t) { if (*t) cli_table_free(*t); }
#define _cleanup_cli_table_ _cleanup_(cli_table_freep)
int cli_table_add_row(cli_table *t);
int cli_table_put(cli_table *t, size_t column, char *value);
void cli_table_print(const cli_table *t, FILE *f);

/* Cut s to at most width characters (UTF-8 aware), ending in "..." when cut. Caller frees. */
char *cli_truncate(const char *s, size_t width);
size_t cli_utf8_width(const char *s);

/* Pretty JSON on f followed by a newline. */
int cli_print_json(FILE *f, const json_t *j);

/* A JSON field as display text: strings as is, numbers, true/false, null -> "". Caller frees. */
char *cli_json_text(const json_t *o, const char *key);
/* Seconds as "12.3s". */
char *cli_format_elapsed(double seconds);
/* ISO timestamp "2026-11-23T06:15:03.123456Z" -> "2026-11-23 06:15:03"; NULL/"" -> "". */
char *cli_format_time(const char *iso);

/* ---- job launch helpers (cmd-job-launch.c) ---- */

/* Merge one --extra-vars argument into the object *vars (created when NULL): a JSON object, "@file"
 * holding a JSON (or YAML mapping) object, or "key=value" (string value). Later keys win. */
int cli_extra_vars_parse(const char *arg, json_t **vars, char **ret_error);

/* Exit status for a finished job's status: successful 0, failed 1, error 2, canceled 3. */
int cli_job_status_to_exit(const char *status);
