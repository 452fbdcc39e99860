/* cmd-job-launch.c: "droverctl job launch": look up a job template, POST its launch endpoint
 * with --limit / --extra-vars, and with --follow stream the job's output (SSE, resuming after the
 * last counter seen when the stream breaks) until it ends; the exit status reflects the job's. */
#include "cli.h"

#include <time.h>

#include "drover/json-util.h"
#include "drover/log.h"
#include "drover/util.h"
#include "drover/yaml-config.h"
#include "sse.h"

#define FOLLOW_MAX_RETRIES 30           /* consecutive reconnects without progress */
#define FOLLOW_RETRY_DELAY_MS 1000

static const cli_option launch_options[] = {
        { "limit", true },
        { "extra-vars", true, true },
        { "follow", false },
        {},
};

/* ---- extra vars ---- */

static json_t *ynode_to_json(const ynode *n, unsigned depth) {
        if (!n || depth > 64)
                return NULL;
        switch (n->kind) {
        case YNODE_NULL:
                return json_null();
        case YNODE_MAPPING: {
                json_t *o = json_object();
                for (size_t i = 0; o && i < n->n_children; i++) {
                        json_t *v = ynode_to_json(n->children[i], depth + 1);
                        if (!v || json_object_set_new(o, n->keys[i], v) < 0) {
                                json_decref(o);
                                return NULL;
                        }
                }
                return o;
        }
        case YNODE_SEQUENCE: {
                json_t *a = json_array();
                for (size_t i = 0; a && i < n->n_children; i++)
                        if (json_array_append_new(a, ynode_to_json(n->children[i], depth + 1)) < 0) {
                                json_decref(a);
                                return NULL;
                        }
                return a;
        }
        case YNODE_SCALAR: {
                const char *v = n->value ?: "";
                char *end;
                if (n->quoted)
                        return json_string(v);
                if (streq(v, "true") || streq(v, "True") || streq(v, "TRUE"))
                        return json_true();
                if (streq(v, "false") || streq(v, "False") || streq(v, "FALSE"))
                        return json_false();
                if (streq(v, "null") || streq(v, "~") || streq(v, "Null") || streq(v, "NULL"))
                        return json_null();
                if (*v && strchr("-+0123456789", *v)) {
                        errno = 0;
                        long long i = strtoll(v, &end, 10);
                        if (errno == 0 && *end == 0)
                                return json_integer(i);
                        double d = strtod(v, &end);
                        if (errno == 0 && *end == 0)
                                return json_real(d);
                }
                return json_string(v);
        }
        }
        return NULL;
}

static int parse_object_text(const char *what, const char *text, json_t **ret, char **ret_error) {
        json_error_t jerr;
        _cleanup_json_ json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
        const char *p = text;

        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
                p++;
        if (!j && (*p == '{' || *p == '[' || *p == '"')) {
                *ret_error = asprintf_safe("%s: invalid JSON at line %d column %d: %s", what, jerr.line,
                                           jerr.column, jerr.text);
                return -EINVAL;
        }
        if (!j) {
                /* a YAML vars file, as ansible-playbook -e @vars.yml accepts */
                _cleanup_yaml_doc_ yaml_doc *doc = NULL;
                int r = yaml_doc_load_string(what, text, &doc);
                if (r < 0) {
                        *ret_error = strdup(doc ? doc->error : "invalid YAML");
                        return r;
                }
                if (!doc->root || doc->root->kind != YNODE_MAPPING) {
                        *ret_error = asprintf_safe("%s: expected a JSON object or YAML mapping", what);
                        return -EINVAL;
                }
                j = ynode_to_json(doc->root, 0);
                if (!j)
                        return -ENOMEM;
        }
        if (!json_is_object(j)) {
                *ret_error = asprintf_safe("%s: expected a JSON object", what);
                return -EINVAL;
        }
        *ret = TAKE_PTR(j);
        return 0;
}

int cli_extra_vars_parse(const char *arg, json_t **vars, char **ret_error) {
        _cleanup_json_ json_t *parsed = NULL;
        const char *p = arg;
        int r;

        while (*p == ' ' || *p == '\t' || *p == '\n')
                p++;
        if (*p == '@') {
                _cleanup_free_ char *text = NULL;
                size_t size;
                r = read_full_file(p + 1, CLI_EXTRA_VARS_FILE_MAX, &text, &size);
                if (r < 0) {
                        *ret_error = r == -EFBIG ? asprintf_safe("%s: file too large (more than %u bytes)", p + 1,
                                                                 CLI_EXTRA_VARS_FILE_MAX)
                                                 : asprintf_safe("%s: %s", p + 1, strerror(-r));
                        return r;
                }
                if (strlen(text) != size) {
                        *ret_error = asprintf_safe("%s: file contains a NUL byte", p + 1);
                        return -EINVAL;
                }
                r = parse_object_text(p + 1, text, &parsed, ret_error);
                if (r < 0)
                        return r;
        } else if (*p == '{') {
                r = parse_object_text("--extra-vars", p, &parsed, ret_error);
                if (r < 0)
                        return r;
        } else {
                const char *eq = strchr(arg, '=');
                if (!eq || eq == arg) {
                        *ret_error = asprintf_safe("--extra-vars '%s': expected a JSON object, @FILE or KEY=VALUE", arg);
                        return -EINVAL;
                }
                _cleanup_free_ char *key = strndup(arg, (size_t) (eq - arg));
                if (!key)
                        return -ENOMEM;
                if (strpbrk(key, " \t\r\n")) {
                        *ret_error = asprintf_safe("--extra-vars: invalid variable name '%s'", key);
                        return -EINVAL;
                }
                parsed = json_pack("{s:s}", key, eq + 1);
                if (!parsed)
                        return -ENOMEM;
        }

        if (!*vars) {
                *vars = json_object();
                if (!*vars)
                        return -ENOMEM;
        }
        if (json_object_update(*vars, parsed) < 0)
                return -ENOMEM;
        return 0;
}

int cli_job_status_to_exit(const char *status) {
        static const struct { const char *status; int code; } table[] = {
                { "successful", 0 }, { "failed", 1 }, { "error", 2 }, { "canceled", 3 },
        };
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (streq_ptr(status, table[i].status))
                        return table[i].code;
        return 1;
}

/* ---- following the job's output ---- */

typedef struct follow_state {
        FILE *out;
        sse_parser *parser;
        int64_t last_counter;
        char *status;           /* set by the final "status" event */
        bool progress;          /* something arrived on this connection */
} follow_state;

static int on_event(const sse_event *e, void *userdata) {
        follow_state *st = userdata;
        _cleanup_json_ json_t *j = json_loadb(e->data, e->data_size, 0, NULL);

        st->progress = true;
        if (streq(e->event, "status")) {
                const char *s = json_get_string(j, "status", NULL);
                free(st->status);
                st->status = strdup(s ?: "unknown");
                if (!st->status)
                        return -ENOMEM;
                return 1;       /* done: stop reading */
        }
        if (!streq(e->event, "job_event") || !j)
                return 0;

        int64_t counter = json_get_int(j, "counter", -1);
        if (counter < 0 && !isempty(e->id))
                (void) cli_parse_id(e->id, &counter);
        if (counter >= 0) {
                if (counter <= st->last_counter)
                        return 0;       /* already printed before a reconnect */
                st->last_counter = counter;
        }
        const char *text = json_get_string(j, "stdout", "");
        if (!isempty(text)) {
                fputs(text, st->out);
                fputc('\n', st->out);
                fflush(st->out);
        }
        return 0;
}

static int on_data(const char *data, size_t size, void *userdata) {
        follow_state *st = userdata;
        return sse_parser_feed(st->parser, data, size, on_event, st);
}

static void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };
        (void) nanosleep(&ts, NULL);
}

static int follow_job(cli_context *ctx, int64_t job) {
        _cleanup_sse_parser_ sse_parser *parser = NULL;
        follow_state st = { .out = ctx->out };
        unsigned failures = 0;
        int r;

        r = sse_parser_new(0, &parser);
        if (r < 0)
                return log_oom();
        st.parser = parser;
        r = cli_connect(ctx, true);
        if (r < 0)
                return r;

        while (!st.status) {
                _cleanup_free_ char *path = asprintf_safe("/api/v2/jobs/%" PRId64 "/stream/?counter__gt=%" PRId64, job,
                                                          st.last_counter);
                long status = 0;

                if (!path)
                        return log_oom();
                sse_parser_reset(parser);
                st.progress = false;
                r = http_client_stream(ctx->http, path, on_data, &st, &status);
                if (st.status)
                        break;
                if (r == -ENOMEM || r == -EMSGSIZE) {
                        free(st.status);
                        return cli_error("cannot read the event stream of job %" PRId64 ": %s", job, strerror(-r));
                }
                if (r >= 0 && status >= 400 && status != 429 && status < 500) {
                        free(st.status);
                        cli_report_http_error(status, NULL, NULL);
                        return -EREMOTEIO;
                }
                if (st.progress)
                        failures = 0;
                if (++failures > FOLLOW_MAX_RETRIES) {
                        free(st.status);
                        if (r < 0)
                                cli_report_transport_error(ctx->settings.url, r, NULL);
                        return cli_error("lost the event stream of job %" PRId64 " (gave up after %u attempts)", job,
                                         FOLLOW_MAX_RETRIES);
                }
                log_debug("Stream of job %" PRId64 " ended (%d, HTTP %ld); resuming after counter %" PRId64, job, r,
                          status, st.last_counter);
                sleep_ms(st.progress ? 100 : FOLLOW_RETRY_DELAY_MS);
        }

        fflush(ctx->out);
        fprintf(stderr, "Job %" PRId64 " %s\n", job, st.status);
        r = cli_job_status_to_exit(st.status);
        free(st.status);
        return r;
}

/* ---- launch ---- */

static int warn_ignored(const json_t *answer) {
        const json_t *ignored = json_object_get(answer, "ignored_fields");
        _cleanup_free_ char *names = NULL;
        size_t size = 0;
        const char *key;
        json_t *v;

        if (!json_is_object(ignored) || json_object_size(ignored) == 0)
                return 0;
        FILE *f = open_memstream(&names, &size);
        if (!f)
                return log_oom();
        bool first = true;
        json_object_foreach((json_t *) ignored, key, v) {
                fprintf(f, "%s%s", first ? "" : ", ", key);
                first = false;
        }
        fclose(f);
        cli_warning("the template does not prompt for these fields, so the controller ignored them: %s", names);
        return 0;
}

static int exec_job_launch(cli_context *ctx, const cli_args *args) {
        _cleanup_json_ json_t *template = NULL, *body = NULL, *vars = NULL, *answer = NULL;
        _cleanup_free_ char *launch_path = NULL;
        const char *limit = cli_args_get(args, "limit");
        char *const *ev = cli_args_all(args, "extra-vars");
        int r;

        for (size_t i = 0; ev && ev[i]; i++) {
                _cleanup_free_ char *error = NULL;
                r = cli_extra_vars_parse(ev[i], &vars, &error);
                if (r == -ENOMEM)
                        return log_oom();
                if (r < 0)
                        return cli_usage_error(ctx->command, "%s", error ?: "invalid --extra-vars");
        }

        r = cli_lookup_job_template(ctx, args->positional[0], &template);
        if (r < 0)
                return r;
        int64_t tid = json_get_int(template, "id", -1);
        const json_t *related = json_object_get(template, "related");
        const char *launch = json_get_string(related, "launch", NULL);
        if (launch && launch[0] == '/')
                launch_path = strdup(launch);
        else
                launch_path = asprintf_safe("/api/v2/job_templates/%" PRId64 "/launch/", tid);
        if (!launch_path)
                return log_oom();

        body = json_object();
        if (!body)
                return log_oom();
        if (!isempty(limit) && json_object_set_new(body, "limit", json_string(limit)) < 0)
                return log_oom();
        if (vars && json_object_set(body, "extra_vars", vars) < 0)
                return log_oom();

        r = cli_request(ctx, "POST", launch_path, body, NULL, &answer);
        if (r < 0)
                return r;
        int64_t job = json_get_int(answer, "job", -1);
        if (job < 0)
                job = json_get_int(answer, "id", -1);
        if (job < 0)
                return cli_error("the controller's launch answer has no job id");

        warn_ignored(answer);
        if (ctx->settings.json)
                cli_print_json(ctx->out, answer);
        else
                fprintf(ctx->out, "Job %" PRId64 " launched (status %s)\n", job,
                        json_get_string(answer, "status", "pending"));
        fflush(ctx->out);

        if (!cli_args_has(args, "follow"))
                return CLI_EXIT_SUCCESS;
        return follow_job(ctx, job);
}

const cli_command cli_cmd_job_launch = {
        .name = "job launch",
        .usage = "TEMPLATE [--limit PATTERN] [--extra-vars JSON|@FILE|KEY=VALUE]... [--follow]",
        .summary = "Launch a job from a job template (name or id); --follow prints its output until it ends.",
        .options = launch_options,
        .min_args = 1,
        .max_args = 1,
        .exec = exec_job_launch,
};
