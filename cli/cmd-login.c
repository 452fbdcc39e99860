/* cmd-login.c: "droverctl login": trade user + password for an API token (POST /api/v2/tokens/
 * with Basic auth) and remember url, ca_file, user and token in the config file (0600). */
#include "cli.h"

#include <termios.h>

#include "drover/json-util.h"
#include "drover/log.h"
#include "drover/util.h"

/* Read one line (without the newline) from f, at most CLI_PASSWORD_MAX bytes. */
static int read_line(FILE *f, char **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t allocated = 0;
        ssize_t n;

        errno = 0;
        n = getline(&buf, &allocated, f);
        if (n < 0)
                return errno > 0 ? -errno : -ENODATA;
        if ((size_t) n > CLI_PASSWORD_MAX + 1) {
                explicit_bzero(buf, (size_t) n);
                return -E2BIG;
        }
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
                buf[--n] = 0;
        *ret = TAKE_PTR(buf);
        return 0;
}

/* Prompt on the terminal with echo off. */
static int prompt_password(const char *user, char **ret) {
        _cleanup_fclose_ FILE *tty = fopen("/dev/tty", "r+e");
        struct termios old, raw;
        int r;

        if (!tty)
                return negative_errno();
        fprintf(tty, "Password for %s: ", user);
        fflush(tty);
        if (tcgetattr(fileno(tty), &old) < 0)
                return negative_errno();
        raw = old;
        raw.c_lflag &= ~(tcflag_t) ECHO;
        raw.c_lflag |= ECHONL;
        if (tcsetattr(fileno(tty), TCSAFLUSH, &raw) < 0)
                return negative_errno();
        r = read_line(tty, ret);
        (void) tcsetattr(fileno(tty), TCSAFLUSH, &old);
        return r;
}

static int get_password(cli_settings *s) {
        int r;

        if (s->password)
                return 0;
        if (isatty(STDIN_FILENO))
                r = prompt_password(s->user, &s->password);
        else
                r = read_line(stdin, &s->password);
        if (r == -ENODATA)
                return cli_error("no password: pass --password, set DROVER_PASSWORD or write it to stdin");
        if (r == -E2BIG)
                return cli_error("password too long (at most %d bytes)", CLI_PASSWORD_MAX);
        if (r < 0)
                return cli_error("cannot read the password: %s", strerror(-r));
        return 0;
}

static int exec_login(cli_context *ctx, const cli_args *args) {
        cli_settings *s = &ctx->settings;
        _cleanup_json_ json_t *body = NULL, *answer = NULL;
        _cleanup_free_ char *ca_abs = NULL;
        int r;

        if (!s->url)
                return cli_usage_error(ctx->command, "no controller URL: pass --url");
        if (!s->user)
                return cli_usage_error(ctx->command, "no user: pass --user");
        if (!s->config_path)
                return cli_error("no config file location: set HOME or XDG_CONFIG_HOME, or pass --config");
        if (s->ca_file) {
                /* remember an absolute path: later commands run from anywhere */
                ca_abs = realpath(s->ca_file, NULL);
                if (!ca_abs)
                        return cli_error("cannot use CA file %s: %m", s->ca_file);
                free(s->ca_file);
                s->ca_file = TAKE_PTR(ca_abs);
        }
        r = get_password(s);
        if (r < 0)
                return r;

        r = cli_connect(ctx, false);
        if (r < 0)
                return r;
        r = http_client_set_basic_auth(ctx->http, s->user, s->password);
        if (r < 0)
                return cli_error("invalid user name for Basic authentication (no ':' allowed)");

        body = json_pack("{s:s, s:n, s:s}", "description", "droverctl", "application", "scope", "write");
        if (!body)
                return log_oom();
        r = cli_request(ctx, "POST", "/api/v2/tokens/", body, NULL, &answer);
        if (r < 0)
                return r;
        const char *token = json_get_string(answer, "token", NULL);
        if (isempty(token))
                return cli_error("the controller answered without a token");

        if (s->token) {
                explicit_bzero(s->token, strlen(s->token));
                free(s->token);
        }
        s->token = strdup(token);
        if (!s->token)
                return log_oom();
        r = cli_config_save(s->config_path, s);
        if (r < 0)
                return cli_error("cannot write %s: %s", s->config_path, strerror(-r));

        if (s->json) {
                /* never print the token itself */
                json_object_del(answer, "token");
                json_object_del(answer, "refresh_token");
                cli_print_json(ctx->out, answer);
        } else
                fprintf(ctx->out, "Logged in to %s as %s\n", s->url, s->user);
        return CLI_EXIT_SUCCESS;
}

const cli_command cli_cmd_login = {
        .name = "login",
        .usage = "--url URL [--ca-file FILE] --user USER [--password PASS]",
        .summary = "Get an API token and store it with the URL in the config file.",
        .flags = CLI_COMMAND_NO_AUTH,
        .exec = exec_login,
};
