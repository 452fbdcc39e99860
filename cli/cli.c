/* cli.c: droverctl's core: the command table and command-line parser (global options may stand
 * before or after the subcommand), settings resolution (flags > environment > config file), the
 * config file itself, HTTP helpers that report API and transport errors to the user, and the
 * table / JSON output helpers every command prints with. */
#include "cli.h"

#include <stdarg.h>
#include <sys/stat.h>

#include "drover/json-util.h"
#include "drover/log.h"
#include "drover/util.h"
#include "drover/yaml-config.h"

const cli_command *const cli_commands[] = {
        &cli_cmd_login,
        &cli_cmd_job_launch,
        &cli_cmd_job_list,
        &cli_cmd_job_show,
        &cli_cmd_job_cancel,
        &cli_cmd_job_events,
        &cli_cmd_node_list,
        &cli_cmd_node_token,
        NULL,
};

/* ---- messages ---- */

static void vmessage(const char *prefix, const char *fmt, va_list ap) {
        _cleanup_free_ char *text = NULL;

        if (vasprintf(&text, fmt, ap) < 0)
                text = NULL;
        fflush(stdout);
        fprintf(stderr, "%s%s\n", prefix, text ?: "(out of memory)");
}

int cli_error(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vmessage("error: ", fmt, ap);
        va_end(ap);
        return -EINVAL;
}

void cli_warning(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vmessage("warning: ", fmt, ap);
        va_end(ap);
}

void cli_print_usage(FILE *f, const cli_command *c) {
        fprintf(f, "usage: droverctl [global options] %s%s%s\n", c->name, isempty(c->usage) ? "" : " ",
                strempty(c->usage));
}

int cli_usage_error(const cli_command *c, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vmessage("error: ", fmt, ap);
        va_end(ap);
        if (c)
                cli_print_usage(stderr, c);
        else
                fprintf(stderr, "usage: droverctl [global options] COMMAND [ARGS...]; see droverctl --help\n");
        return CLI_EXIT_USAGE;
}

void cli_print_help(FILE *f) {
        fputs("droverctl: command-line client for the drover controller (AWX API v2 subset)\n\n"
              "usage: droverctl [global options] COMMAND [ARGS...]\n\n"
              "Commands:\n", f);
        for (size_t i = 0; cli_commands[i]; i++) {
                const cli_command *c = cli_commands[i];
                if (isempty(c->usage))
                        fprintf(f, "  %s\n      %s\n", c->name, c->summary);
                else
                        fprintf(f, "  %-12s %s\n      %s\n", c->name, c->usage, c->summary);
        }
        fputs("\nGlobal options (before or after the command):\n"
              "  --url URL         controller URL (env DROVER_URL)\n"
              "  --token TOKEN     API token (env DROVER_TOKEN)\n"
              "  --ca-file PATH    CA certificate to verify the controller (env DROVER_CA_FILE)\n"
              "  --user USER       Basic auth user when no token (env DROVER_USER)\n"
              "  --password PASS   Basic auth password (env DROVER_PASSWORD)\n"
              "  --config PATH     config file (default $XDG_CONFIG_HOME/drover/cli.yaml)\n"
              "  --json            print raw JSON\n"
              "  -h, --help        show help\n"
              "  --version         show the version\n", f);
}

/* ---- settings ---- */

static void free_secret(char **s) {
        if (*s) {
                explicit_bzero(*s, strlen(*s));
                free(*s);
                *s = NULL;
        }
}

void cli_settings_done(cli_settings *s) {
        free(s->url);
        free_secret(&s->token);
        free(s->ca_file);
        free(s->user);
        free_secret(&s->password);
        free(s->config_path);
        *s = (cli_settings) {};
}

static void cli_settings_donep(cli_settings *s) { cli_settings_done(s); }

int cli_default_config_path(char **ret) {
        const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
        char *p;

        if (!isempty(xdg) && xdg[0] == '/')
                p = strjoin(xdg, "/drover/cli.yaml", NULL);
        else if (!isempty(home))
                p = strjoin(home, "/.config/drover/cli.yaml", NULL);
        else
                return -ENOENT;
        if (!p)
                return -ENOMEM;
        *ret = p;
        return 0;
}

int cli_normalize_url(const char *url, char **ret) {
        char *u;

        if (isempty(url) || strlen(url) > 2048 || strpbrk(url, " \t\r\n"))
                return -EINVAL;
        if (startswith(url, "https://") || startswith(url, "http://"))
                u = strdup(url);
        else if (strstr(url, "://"))
                return -EINVAL;
        else
                u = strjoin("https://", url, NULL);
        if (!u)
                return -ENOMEM;
        size_t l = strlen(u);
        while (l > 0 && u[l - 1] == '/')
                u[--l] = 0;
        if (!strchr(u, ':') || streq(strchr(u, ':'), "://")) {
                free(u);
                return -EINVAL;
        }
        *ret = u;
        return 0;
}

int cli_config_load(const char *path, cli_settings *ret, char **ret_error) {
        static const char *const known[] = { "url", "token", "ca_file", "user", NULL };
        _cleanup_yaml_doc_ yaml_doc *doc = NULL;
        _cleanup_(cli_settings_donep) cli_settings s = {};
        int r;

        r = yaml_doc_load_file(path, &doc);
        if (r < 0) {
                if (ret_error)
                        *ret_error = strdup(doc ? doc->error : strerror(-r));
                return r;
        }
        if (doc->root && doc->root->kind != YNODE_NULL) {
                if (doc->root->kind != YNODE_MAPPING) {
                        r = yaml_doc_error(doc, doc->root, "expected a mapping of settings");
                        goto fail;
                }
                r = ynode_check_keys(doc, doc->root, "", known);
                if (r < 0)
                        goto fail;
                struct { const char *key; char **dest; } fields[] = {
                        { "url", &s.url }, { "token", &s.token }, { "ca_file", &s.ca_file }, { "user", &s.user },
                };
                for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                        const ynode *n = ynode_get(doc->root, fields[i].key);
                        if (!n || n->kind == YNODE_NULL)
                                continue;
                        r = ynode_string(doc, n, fields[i].key, fields[i].dest);
                        if (r < 0)
                                goto fail;
                }
                if (s.url) {
                        char *u = NULL;
                        const ynode *n = ynode_get(doc->root, "url");
                        r = cli_normalize_url(s.url, &u);
                        if (r == -EINVAL) {
                                r = yaml_doc_error(doc, n, "key 'url': expected a URL like https://host:8443, got '%s'",
                                                   s.url);
                                goto fail;
                        }
                        if (r < 0)
                                return r;
                        free(s.url);
                        s.url = u;
                }
        }
        s.config_path = strdup(path);
        if (!s.config_path)
                return -ENOMEM;
        *ret = s;
        s = (cli_settings) {};
        return 0;
fail:
        if (ret_error)
                *ret_error = strdup(doc->error);
        return r;
}

static char *yaml_quote(const char *s) {
        _cleanup_json_ json_t *j = json_string(s);
        /* a JSON string is a valid YAML double-quoted scalar */
        return j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
}

int cli_config_save(const char *path, const cli_settings *s) {
        _cleanup_free_ char *dir = NULL, *text = NULL;
        struct { const char *key; const char *value; } fields[] = {
                { "url", s->url }, { "ca_file", s->ca_file }, { "user", s->user }, { "token", s->token },
        };
        size_t size = 0;
        int r;

        _cleanup_fclose_ FILE *f = open_memstream(&text, &size);
        if (!f)
                return -ENOMEM;
        fputs("# droverctl settings, written by 'droverctl login'. Keys: url, token, ca_file, user.\n", f);
        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                if (!fields[i].value)
                        continue;
                _cleanup_free_ char *q = yaml_quote(fields[i].value);
                if (!q)
                        return -ENOMEM;
                fprintf(f, "%s: %s\n", fields[i].key, q);
        }
        if (fflush(f) != 0 || ferror(f))
                return -ENOMEM;
        fclose(f);
        f = NULL;

        dir = strdup(path);
        if (!dir)
                return -ENOMEM;
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
                *slash = 0;
                r = mkdir_p(dir, 0700);
                if (r < 0)
                        return r;
        }
        r = write_file_atomic(path, text, size, 0600);
        explicit_bzero(text, size);
        return r;
}

static int env_default(char **dest, const char *name) {
        const char *v = getenv(name);
        if (*dest || isempty(v))
                return 0;
        *dest = strdup(v);
        return *dest ? 0 : -ENOMEM;
}

static int take_default(char **dest, char **src) {
        if (!*dest && *src) {
                *dest = *src;
                *src = NULL;
        }
        return 0;
}

int cli_settings_resolve(cli_settings *s, char **ret_error) {
        _cleanup_(cli_settings_donep) cli_settings file = {};
        int r;

        /* the environment */
        if ((r = env_default(&s->url, "DROVER_URL")) < 0 ||
            (r = env_default(&s->token, "DROVER_TOKEN")) < 0 ||
            (r = env_default(&s->ca_file, "DROVER_CA_FILE")) < 0 ||
            (r = env_default(&s->user, "DROVER_USER")) < 0 ||
            (r = env_default(&s->password, "DROVER_PASSWORD")) < 0)
                return r;

        /* the config file */
        if (!s->config_path) {
                r = cli_default_config_path(&s->config_path);
                if (r == -ENOMEM)
                        return r;
        }
        if (s->config_path) {
                r = cli_config_load(s->config_path, &file, ret_error);
                if (r == -ENOENT) {
                        if (ret_error) {
                                free(*ret_error);
                                *ret_error = NULL;
                        }
                } else if (r < 0)
                        return r;
        }
        take_default(&s->url, &file.url);
        take_default(&s->token, &file.token);
        take_default(&s->ca_file, &file.ca_file);
        take_default(&s->user, &file.user);

        if (s->url) {
                char *u = NULL;
                r = cli_normalize_url(s->url, &u);
                if (r < 0) {
                        if (r == -EINVAL && ret_error)
                                *ret_error = asprintf_safe("invalid URL '%s': expected https://host:port", s->url);
                        return r;
                }
                free(s->url);
                s->url = u;
        }
        return 0;
}

/* ---- command line ---- */

typedef enum global_option {
        GLOBAL_URL,
        GLOBAL_TOKEN,
        GLOBAL_CA_FILE,
        GLOBAL_USER,
        GLOBAL_PASSWORD,
        GLOBAL_CONFIG,
        GLOBAL_JSON,
        GLOBAL_HELP,
        GLOBAL_VERSION,
        _GLOBAL_MAX,
} global_option;

static const cli_option global_options[_GLOBAL_MAX + 1] = {
        [GLOBAL_URL] = { "url", true },
        [GLOBAL_TOKEN] = { "token", true },
        [GLOBAL_CA_FILE] = { "ca-file", true },
        [GLOBAL_USER] = { "user", true },
        [GLOBAL_PASSWORD] = { "password", true },
        [GLOBAL_CONFIG] = { "config", true },
        [GLOBAL_JSON] = { "json", false },
        [GLOBAL_HELP] = { "help", false },
        [GLOBAL_VERSION] = { "version", false },
};

void cli_args_done(cli_args *a) {
        strv_free(a->positional);
        if (a->values)
                for (size_t i = 0; i < a->n_options; i++)
                        strv_free(a->values[i]);
        free(a->values);
        *a = (cli_args) {};
}

static void cli_args_donep(cli_args *a) { cli_args_done(a); }

static ssize_t option_index(const cli_option *options, const char *name, size_t name_len) {
        if (!options)
                return -1;
        for (size_t i = 0; options[i].name; i++)
                if (strlen(options[i].name) == name_len && memcmp(options[i].name, name, name_len) == 0)
                        return (ssize_t) i;
        return -1;
}

static size_t count_options(const cli_option *options) {
        size_t n = 0;
        if (options)
                while (options[n].name)
                        n++;
        return n;
}

static int set_error(char **ret_error, const char *fmt, ...) _printf_(2, 3);
static int set_error(char **ret_error, const char *fmt, ...) {
        va_list ap;
        if (ret_error) {
                free(*ret_error);
                va_start(ap, fmt);
                if (vasprintf(ret_error, fmt, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return -EINVAL;
}

static int set_global(cli_settings *s, global_option o, const char *value) {
        char **dest = NULL;

        switch (o) {
        case GLOBAL_URL: dest = &s->url; break;
        case GLOBAL_TOKEN: dest = &s->token; break;
        case GLOBAL_CA_FILE: dest = &s->ca_file; break;
        case GLOBAL_USER: dest = &s->user; break;
        case GLOBAL_PASSWORD: dest = &s->password; break;
        case GLOBAL_CONFIG: dest = &s->config_path; break;
        case GLOBAL_JSON: s->json = true; return 0;
        default: return 0;
        }
        char *v = strdup(value);
        if (!v)
                return -ENOMEM;
        if (dest == &s->token || dest == &s->password)
                free_secret(dest);
        else
                free(*dest);
        *dest = v;
        return 0;
}

/* Does `words` (n words) name a command exactly (1) or begin one (0), or neither (-1)? */
static int match_command(char **words, size_t n, const cli_command **ret) {
        int best = -1;
        for (size_t i = 0; cli_commands[i]; i++) {
                const char *name = cli_commands[i]->name;
                size_t k = 0;
                const char *p = name;
                for (; k < n; k++) {
                        size_t l = strlen(words[k]);
                        if (strncmp(p, words[k], l) != 0 || (p[l] != ' ' && p[l] != 0))
                                break;
                        p += l;
                        if (*p == ' ')
                                p++;
                        else if (k + 1 < n)
                                break;  /* name is over but words remain */
                }
                if (k < n)
                        continue;
                if (*p == 0) {
                        *ret = cli_commands[i];
                        return 1;
                }
                best = 0;
        }
        return best;
}

/* "job" -> "job launch, job list, ..." (the commands starting with the given words). */
static char *group_commands(char **words, size_t n) {
        _cleanup_free_ char *prefix = NULL, *text = NULL;
        size_t size = 0, psize = 0;
        FILE *m = open_memstream(&prefix, &psize);
        if (!m)
                return NULL;
        for (size_t i = 0; i < n; i++)
                fprintf(m, "%s%s", i ? " " : "", words[i]);
        if (fclose(m) != 0)
                return NULL;
        m = open_memstream(&text, &size);
        if (!m)
                return NULL;
        bool first = true;
        for (size_t i = 0; cli_commands[i]; i++)
                if (startswith(cli_commands[i]->name, prefix) && cli_commands[i]->name[strlen(prefix)] == ' ') {
                        fprintf(m, "%s'%s'", first ? "" : ", ", cli_commands[i]->name);
                        first = false;
                }
        if (fclose(m) != 0)
                return NULL;
        return TAKE_PTR(text);
}

int cli_parse(int argc, char **argv, cli_settings *settings, cli_args *ret_args, char **ret_error) {
        _cleanup_(cli_args_donep) cli_args a = {};
        _cleanup_strv_free_ char **words = NULL;
        const cli_command *cmd = NULL;
        bool only_positional = false, help = false;
        int r;

        if (argc < 0 || argc > CLI_ARGS_MAX)
                return set_error(ret_error, "too many arguments (at most %d)", CLI_ARGS_MAX);

        for (int i = 0; i < argc; i++) {
                const char *arg = argv[i];

                if (strlen(arg) > CLI_ARG_MAX)
                        return set_error(ret_error, "argument %d is too long", i + 1);

                if (!only_positional && streq(arg, "--")) {
                        if (!cmd)
                                return set_error(ret_error, "missing command before '--'");
                        only_positional = true;
                        continue;
                }
                if (!only_positional && streq(arg, "-h")) {
                        help = true;
                        continue;
                }
                if (!only_positional && startswith(arg, "--")) {
                        const char *name = arg + 2, *eq = strchr(name, '=');
                        size_t name_len = eq ? (size_t) (eq - name) : strlen(name);
                        const cli_option *opt;
                        ssize_t idx;
                        bool global = false;

                        idx = cmd ? option_index(cmd->options, name, name_len) : -1;
                        if (idx >= 0)
                                opt = &cmd->options[idx];
                        else {
                                idx = option_index(global_options, name, name_len);
                                if (idx < 0)
                                        return set_error(ret_error, "unknown option '--%.*s'", (int) name_len, name);
                                opt = &global_options[idx];
                                global = true;
                        }

                        const char *value = NULL;
                        if (opt->has_value) {
                                if (eq)
                                        value = eq + 1;
                                else if (i + 1 < argc)
                                        value = argv[++i];
                                else
                                        return set_error(ret_error, "option '--%s' needs a value", opt->name);
                        } else if (eq)
                                return set_error(ret_error, "option '--%s' takes no value", opt->name);

                        if (global) {
                                if (idx == GLOBAL_HELP)
                                        help = true;
                                else if (idx == GLOBAL_VERSION) {
                                        printf("droverctl %s\n", DROVER_VERSION);
                                        return 1;
                                } else {
                                        r = set_global(settings, (global_option) idx, value);
                                        if (r < 0)
                                                return r;
                                }
                        } else {
                                if (!opt->repeatable && a.values[idx]) {
                                        strv_free(a.values[idx]);
                                        a.values[idx] = NULL;
                                }
                                r = strv_extend(&a.values[idx], value ?: "");
                                if (r < 0)
                                        return r;
                        }
                        continue;
                }
                if (!only_positional && arg[0] == '-' && arg[1] != 0)
                        return set_error(ret_error, "unknown option '%s'", arg);

                if (cmd) {
                        if (strv_length(a.positional) >= cmd->max_args)
                                return set_error(ret_error, "unexpected argument '%s'", arg);
                        r = strv_extend(&a.positional, arg);
                        if (r < 0)
                                return r;
                        continue;
                }

                /* a command word */
                r = strv_extend(&words, arg);
                if (r < 0)
                        return r;
                r = match_command(words, strv_length(words), &cmd);
                if (r < 0)
                        return set_error(ret_error, "unknown command '%s'", arg);
                if (r > 0) {
                        a.command = ret_args->command = cmd;    /* for the usage line on errors */
                        a.options = cmd->options;
                        a.n_options = count_options(cmd->options);
                        a.values = calloc(a.n_options + 1, sizeof(char **));
                        if (!a.values)
                                return -ENOMEM;
                }
        }

        if (!cmd) {
                if (help && strv_length(words) == 0) {
                        cli_print_help(stdout);
                        return 1;
                }
                if (strv_length(words) == 0)
                        return set_error(ret_error, "missing command");
                _cleanup_free_ char *list = group_commands(words, strv_length(words));
                if (help) {
                        printf("commands: %s\n", strempty(list));
                        return 1;
                }
                return set_error(ret_error, "incomplete command: expected one of %s", strempty(list));
        }
        if (help) {
                cli_print_usage(stdout, cmd);
                printf("%s\n", cmd->summary);
                return 1;
        }
        if (strv_length(a.positional) < cmd->min_args)
                return set_error(ret_error, "missing argument");

        *ret_args = a;
        a = (cli_args) {};
        return 0;
}

char *const *cli_args_all(const cli_args *a, const char *name) {
        ssize_t idx = option_index(a->options, name, strlen(name));
        if (idx < 0 || !a->values)
                return NULL;
        return a->values[idx];
}

const char *cli_args_get(const cli_args *a, const char *name) {
        char *const *l = cli_args_all(a, name);
        size_t n = strv_length(l);
        return n > 0 ? l[n - 1] : NULL;
}

bool cli_args_has(const cli_args *a, const char *name) {
        return cli_args_get(a, name) != NULL;
}

/* ---- HTTP ---- */

int cli_connect(cli_context *ctx, bool need_auth) {
        _cleanup_http_client_ http_client *c = NULL;
        cli_settings *s = &ctx->settings;
        int r;

        if (ctx->http)
                return 0;
        if (!s->url)
                return cli_error("no controller URL: pass --url, set DROVER_URL or run 'droverctl login'");
        if (s->ca_file && access(s->ca_file, R_OK) < 0)
                return cli_error("cannot read CA file %s: %m", s->ca_file);

        r = http_client_new(s->url, s->ca_file, &c);
        if (r == -EINVAL)
                return cli_error("invalid controller URL '%s'", s->url);
        if (r < 0)
                return cli_error("cannot set up the HTTP client: %s", strerror(-r));
        http_client_set_timeout(c, CLI_REQUEST_TIMEOUT_MS);

        if (need_auth) {
                if (s->token) {
                        _cleanup_free_ char *h = strjoin("Bearer ", s->token, NULL);
                        if (!h)
                                return log_oom();
                        r = http_client_set_authorization(c, h);
                        explicit_bzero(h, strlen(h));
                        if (r < 0)
                                return cli_error("invalid token");
                } else if (s->user && s->password) {
                        r = http_client_set_basic_auth(c, s->user, s->password);
                        if (r < 0)
                                return cli_error("invalid user name or password for Basic authentication");
                } else
                        return cli_error("not logged in: run 'droverctl login', or pass --token or --user and --password");
        }
        ctx->http = TAKE_PTR(c);
        return 0;
}

static const char *reason_phrase(long status) {
        static const struct { long status; const char *text; } table[] = {
                { 400, "Bad Request" }, { 401, "Unauthorized" }, { 403, "Forbidden" }, { 404, "Not Found" },
                { 405, "Method Not Allowed" }, { 409, "Conflict" }, { 413, "Payload Too Large" },
                { 429, "Too Many Requests" }, { 500, "Internal Server Error" }, { 502, "Bad Gateway" },
                { 503, "Service Unavailable" }, { 504, "Gateway Timeout" },
        };
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (table[i].status == status)
                        return table[i].text;
        return "HTTP error";
}

#define ERROR_TEXT_MAX 1000

static void put_clean(FILE *f, const char *s, size_t max) {
        for (size_t i = 0; s[i] && i < max; i++)
                fputc((unsigned char) s[i] < 0x20 ? ' ' : s[i], f);
}

static void put_error_value(FILE *f, const json_t *v) {
        if (json_is_string(v))
                put_clean(f, json_string_value(v), ERROR_TEXT_MAX);
        else if (json_is_array(v)) {
                size_t i;
                json_t *e;
                json_array_foreach(v, i, e) {
                        if (i > 0)
                                fputc(' ', f);
                        put_error_value(f, e);
                }
        } else {
                _cleanup_free_ char *d = json_dumps_compact(v);
                put_clean(f, strempty(d), ERROR_TEXT_MAX);
        }
}

char *cli_format_error_body(long status, const json_t *json, const char *body) {
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&text, &size);

        if (!f)
                return NULL;
        fprintf(f, "%ld ", status);
        if (json_is_object(json) && json_object_size(json) > 0) {
                const json_t *detail = json_object_get(json, "detail");
                const json_t *error = json_object_get(json, "error");
                if (json_is_string(detail))
                        put_error_value(f, detail);
                else if (json_is_string(error))
                        put_error_value(f, error);
                else {
                        const char *key;
                        json_t *v;
                        bool first = true;
                        json_object_foreach((json_t *) json, key, v) {
                                if (!first)
                                        fputs("; ", f);
                                first = false;
                                if (!streq(key, "__all__") && !streq(key, "non_field_errors")) {
                                        put_clean(f, key, 200);
                                        fputs(": ", f);
                                }
                                put_error_value(f, v);
                        }
                }
        } else if (json_is_array(json) && json_array_size(json) > 0)
                put_error_value(f, json);
        else if (!isempty(body) && !json) {
                size_t l = strcspn(body, "\r\n");
                if (l == 0)
                        fputs(reason_phrase(status), f);
                else {
                        put_clean(f, body, MIN(l, (size_t) 200));
                        if (l > 200)
                                fputs("...", f);
                }
        } else
                fputs(reason_phrase(status), f);
        if (fclose(f) != 0)
                return NULL;
        /* keep it to one reasonable line */
        if (size > ERROR_TEXT_MAX) {
                strcpy(text + ERROR_TEXT_MAX - 3, "...");
        }
        return TAKE_PTR(text);
}

void cli_report_http_error(long status, const json_t *json, const char *body) {
        _cleanup_free_ char *t = cli_format_error_body(status, json, body);
        cli_error("%s", t ?: "out of memory");
}

void cli_report_transport_error(const char *url, int error, const char *text) {
        bool tls = error == -EPROTO ||
                   (text && (strcasestr(text, "certificate") || strcasestr(text, "SSL") || strcasestr(text, "TLS")));
        cli_error("cannot talk to %s: %s", url, !isempty(text) ? text : strerror(-error));
        if (tls)
                fprintf(stderr, "hint: pass --ca-file with the controller's CA certificate "
                        "(e.g. /var/lib/drover-controller/tls/ca.crt), or set DROVER_CA_FILE\n");
        else if (error == -ECONNREFUSED || error == -EHOSTUNREACH || error == -ETIMEDOUT)
                fprintf(stderr, "hint: check --url (is the controller running there?); with a private CA "
                        "also pass --ca-file\n");
}

int cli_request(cli_context *ctx, const char *method, const char *path, const json_t *body,
                long *ret_status, json_t **ret_json) {
        http_response resp = {};
        int r;

        r = cli_connect(ctx, !(ctx->command && (ctx->command->flags & CLI_COMMAND_NO_AUTH)));
        if (r < 0)
                return r;
        r = http_client_request(ctx->http, method, path, body, &resp);
        if (r < 0) {
                cli_report_transport_error(ctx->settings.url, r, resp.error);
                http_response_clear(&resp);
                return r;
        }
        if (resp.status < 200 || resp.status > 299) {
                cli_report_http_error(resp.status, resp.json, resp.body);
                http_response_clear(&resp);
                return -EREMOTEIO;
        }
        if (ret_status)
                *ret_status = resp.status;
        if (ret_json)
                *ret_json = TAKE_PTR(resp.json);
        http_response_clear(&resp);
        return 0;
}

int cli_get_all(cli_context *ctx, const char *path, size_t max_items, json_t **ret_results) {
        _cleanup_json_ json_t *all = json_array();
        _cleanup_free_ char *next = strdup(path);
        int r;

        if (!all || !next)
                return log_oom();
        for (unsigned page = 0; next && json_array_size(all) < max_items; page++) {
                _cleanup_json_ json_t *j = NULL;

                if (page >= 10000)
                        return cli_error("too many pages at %s", path);
                r = cli_request(ctx, "GET", next, NULL, NULL, &j);
                if (r < 0)
                        return r;
                json_t *results = json_object_get(j, "results");
                if (!json_is_array(results))
                        return cli_error("unexpected answer from %s: no results list", next);
                size_t i;
                json_t *e;
                json_array_foreach(results, i, e) {
                        if (json_array_size(all) >= max_items)
                                break;
                        if (json_array_append(all, e) < 0)
                                return log_oom();
                }

                free(next);
                next = NULL;
                const char *n = json_get_string(j, "next", NULL);
                if (!isempty(n)) {
                        /* "next" must be a path; tolerate an absolute URL on our own base */
                        const char *p = startswith(n, ctx->settings.url);
                        if (p)
                                n = p;
                        if (n[0] != '/')
                                return cli_error("unexpected 'next' link from the controller: %s", n);
                        next = strdup(n);
                        if (!next)
                                return log_oom();
                }
        }
        *ret_results = TAKE_PTR(all);
        return 0;
}

char *cli_uri_escape(const char *s) {
        static const char hex[] = "0123456789ABCDEF";
        size_t l = strlen(s);
        char *out = malloc(3 * l + 1), *p = out;

        if (!out)
                return NULL;
        for (; *s; s++) {
                unsigned char c = (unsigned char) *s;
                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-._~", c))
                        *p++ = (char) c;
                else {
                        *p++ = '%';
                        *p++ = hex[c >> 4];
                        *p++ = hex[c & 15];
                }
        }
        *p = 0;
        return out;
}

int cli_parse_id(const char *s, int64_t *ret) {
        char *end;
        long long v;

        if (isempty(s) || !strchr("0123456789", s[0]))
                return -EINVAL;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno != 0 || *end != 0 || v <= 0 || v > INT64_MAX / 2)
                return -EINVAL;
        *ret = v;
        return 0;
}

int cli_lookup_job_template(cli_context *ctx, const char *name_or_id, json_t **ret_template) {
        _cleanup_free_ char *esc = cli_uri_escape(name_or_id), *path = NULL;
        _cleanup_json_ json_t *j = NULL;
        int64_t id = 0;
        bool digits = cli_parse_id(name_or_id, &id) >= 0;
        int r;

        if (!esc)
                return log_oom();
        if (digits)
                path = asprintf_safe("/api/v2/job_templates/?or__id=%s&or__name=%s", esc, esc);
        else
                path = asprintf_safe("/api/v2/job_templates/?name=%s", esc);
        if (!path)
                return log_oom();
        r = cli_request(ctx, "GET", path, NULL, NULL, &j);
        if (r < 0)
                return r;
        json_t *results = json_object_get(j, "results");
        if (!json_is_array(results))
                return cli_error("unexpected answer from %s: no results list", path);
        if (json_array_size(results) == 0)
                return cli_error("job template '%s' not found", name_or_id);
        if (json_array_size(results) == 1) {
                *ret_template = json_incref(json_array_get(results, 0));
                return 0;
        }
        size_t i;
        json_t *e;
        json_array_foreach(results, i, e)
                if (digits && json_get_int(e, "id", -1) == id) {
                        *ret_template = json_incref(e);
                        return 0;
                }
        return cli_error("job template name '%s' is ambiguous (%zu matches); use the id", name_or_id,
                         json_array_size(results));
}

/* ---- output ---- */

size_t cli_utf8_width(const char *s) {
        size_t n = 0;
        for (; *s; s++)
                if (((unsigned char) *s & 0xC0) != 0x80)
                        n++;
        return n;
}

char *cli_truncate(const char *s, size_t width) {
        size_t chars = 0, cut = 0, keep, i;
        char *out;

        s = strempty(s);
        keep = width > 3 ? width - 3 : width;
        /* find the byte offset where the kept part ends, and whether the string is too wide */
        for (i = 0; s[i]; i++) {
                if (((unsigned char) s[i] & 0xC0) == 0x80)
                        continue;
                if (chars == keep)
                        cut = i;
                chars++;
        }
        if (chars == keep)
                cut = i;
        bool too_wide = width > 0 && chars > width;

        out = strdup(s);
        if (!out)
                return NULL;
        if (too_wide) {
                if (width > 3)
                        strcpy(out + cut, "...");
                else
                        out[cut] = 0;
        }
        for (char *p = out; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7F)
                        *p = ' ';
        return out;
}

void cli_table_render(FILE *f, const cli_column *columns, size_t n_columns, char *const *const *rows,
                      size_t n_rows) {
        _cleanup_free_ size_t *widths = calloc(n_columns ?: 1, sizeof(size_t));

        if (!widths || n_columns == 0)
                return;
        for (size_t c = 0; c < n_columns; c++)
                widths[c] = cli_utf8_width(columns[c].header);
        for (size_t r = 0; r < n_rows; r++)
                for (size_t c = 0; c < n_columns; c++) {
                        size_t w = cli_utf8_width(strempty(rows[r][c]));
                        if (columns[c].max_width > 0 && w > columns[c].max_width)
                                w = columns[c].max_width;
                        widths[c] = MAX(widths[c], w);
                }

        for (size_t r = 0; r <= n_rows; r++)
                for (size_t c = 0; c < n_columns; c++) {
                        _cleanup_free_ char *cell = NULL;
                        const char *text = r == 0 ? columns[c].header : strempty(rows[r - 1][c]);
                        bool last = c + 1 == n_columns;

                        cell = cli_truncate(text, columns[c].max_width);
                        if (!cell)
                                return;
                        size_t pad = widths[c] - MIN(widths[c], cli_utf8_width(cell));
                        if (columns[c].right_align)
                                fprintf(f, "%*s%s", (int) pad, "", cell);
                        else if (last)
                                fputs(cell, f);
                        else
                                fprintf(f, "%s%*s", cell, (int) pad, "");
                        fputs(last ? "\n" : "  ", f);
                }
}

struct cli_table {
        const cli_column *columns;
        size_t n_columns;
        char ***rows;
        size_t n_rows, allocated;
};

int cli_table_new(const cli_column *columns, size_t n_columns, cli_table **ret) {
        cli_table *t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->columns = columns;
        t->n_columns = n_columns;
        *ret = t;
        return 0;
}

void cli_table_free(cli_table *t) {
        if (!t)
                return;
        for (size_t r = 0; r < t->n_rows; r++) {
                for (size_t c = 0; c < t->n_columns; c++)
                        free(t->rows[r][c]);
                free(t->rows[r]);
        }
        free(t->rows);
        free(t);
}

int cli_table_add_row(cli_table *t) {
        if (t->n_rows >= CLI_LIST_MAX_ITEMS)
                return -E2BIG;
        if (t->n_rows == t->allocated) {
                size_t a = MAX(t->allocated * 2, (size_t) 16);
                char ***rows = reallocarray(t->rows, a, sizeof(char **));
                if (!rows)
                        return -ENOMEM;
                t->rows = rows;
                t->allocated = a;
        }
        t->rows[t->n_rows] = calloc(t->n_columns ?: 1, sizeof(char *));
        if (!t->rows[t->n_rows])
                return -ENOMEM;
        t->n_rows++;
        return 0;
}

int cli_table_put(cli_table *t, size_t column, char *value) {
        if (!value)
                return -ENOMEM;
        if (t->n_rows == 0 || column >= t->n_columns) {
                free(value);
                return -EINVAL;
        }
        char **cell = &t->rows[t->n_rows - 1][column];
        free(*cell);
        *cell = value;
        return 0;
}

void cli_table_print(const cli_table *t, FILE *f) {
        cli_table_render(f, t->columns, t->n_columns, (char *const *const *) t->rows, t->n_rows);
}

int cli_print_json(FILE *f, const json_t *j) {
        if (json_dumpf(j, f, JSON_INDENT(2) | JSON_ENCODE_ANY) < 0)
                return -EIO;
        fputc('\n', f);
        return 0;
}

char *cli_json_text(const json_t *o, const char *key) {
        const json_t *v = json_object_get(o, key);
        if (json_is_string(v))
                return strdup(json_string_value(v));
        if (json_is_integer(v))
                return asprintf_safe("%" JSON_INTEGER_FORMAT, json_integer_value(v));
        if (json_is_real(v))
                return asprintf_safe("%g", json_real_value(v));
        if (json_is_true(v))
                return strdup("yes");
        if (json_is_false(v))
                return strdup("no");
        if (!v || json_is_null(v))
                return strdup("");
        return json_dumps_compact(v);
}

char *cli_format_elapsed(double seconds) {
        if (seconds < 0)
                seconds = 0;
        if (seconds < 3600)
                return asprintf_safe("%.1fs", seconds);
        unsigned long s = (unsigned long) seconds;
        return asprintf_safe("%luh%02lum%02lus", s / 3600, (s / 60) % 60, s % 60);
}

char *cli_format_time(const char *iso) {
        char *t;

        if (isempty(iso))
                return strdup("");
        t = strdup(iso);
        if (!t)
                return NULL;
        /* 2026-11-23T06:15:03.123456Z -> 2026-11-23 06:15:03 */
        if (strlen(t) >= 19 && t[10] == 'T' && t[4] == '-') {
                t[10] = ' ';
                t[19] = 0;
        }
        return t;
}

/* ---- the program ---- */

static void cli_context_done(cli_context *ctx) {
        http_client_free(ctx->http);
        ctx->http = NULL;
        cli_settings_done(&ctx->settings);
}

int cli_main(int argc, char **argv) {
        _cleanup_(cli_context_done) cli_context ctx = { .out = stdout };
        _cleanup_(cli_args_donep) cli_args args = {};
        _cleanup_free_ char *error = NULL;
        const char *level = getenv("DROVER_LOG_LEVEL");
        int r;

        log_set_ident("droverctl");
        log_set_max_level(LOG_LEVEL_WARNING);
        if (level && log_level_from_string(level) >= 0)
                log_set_max_level(log_level_from_string(level));

        r = cli_parse(argc > 0 ? argc - 1 : 0, argv + (argc > 0), &ctx.settings, &args, &error);
        if (r > 0)
                return CLI_EXIT_SUCCESS;
        if (r == -ENOMEM) {
                log_oom();
                return CLI_EXIT_FAILURE;
        }
        if (r < 0)
                return cli_usage_error(args.command, "%s", error ?: "invalid command line");

        r = cli_settings_resolve(&ctx.settings, &error);
        if (r < 0) {
                cli_error("%s", error ?: strerror(-r));
                return CLI_EXIT_FAILURE;
        }

        ctx.command = args.command;
        r = args.command->exec(&ctx, &args);
        if (fflush(stdout) != 0 && r >= 0) {
                cli_error("cannot write output: %m");
                r = -EIO;
        }
        return r < 0 ? CLI_EXIT_FAILURE : r;
}
