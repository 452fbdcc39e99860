/* test-cli.c: unit tests for droverctl's machinery: command-line parsing and settings precedence
 * (flags > environment > config file), the config file, --extra-vars parsing, table rendering,
 * the SSE frame parser (split at every byte position) and API error body formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>

#include "cli.h"
#include "drover/json-util.h"
#include "drover/util.h"
#include "sse.h"

static char tmpdir[] = "/tmp/test-cli-XXXXXX";

static int setup(void **state) {
        assert_non_null(mkdtemp(tmpdir));
        unsetenv("DROVER_URL");
        unsetenv("DROVER_TOKEN");
        unsetenv("DROVER_CA_FILE");
        unsetenv("DROVER_USER");
        unsetenv("DROVER_PASSWORD");
        setenv("XDG_CONFIG_HOME", tmpdir, 1);
        return 0;
}

static int teardown(void **state) {
        assert_int_equal(rm_rf(tmpdir), 0);
        return 0;
}

static char *tmp_path(const char *name) {
        char *p = strjoin(tmpdir, "/", name, NULL);
        assert_non_null(p);
        return p;
}

static void write_text(const char *path, const char *text) {
        assert_int_equal(write_file_atomic(path, text, strlen(text), 0600), 0);
}

/* ---- command line ---- */

static int parse(char **argv, cli_settings *s, cli_args *a, char **error) {
        return cli_parse((int) strv_length(argv), argv, s, a, error);
}

static void test_parse_globals_anywhere(void **state) {
        char *argv[] = { "--url", "https://a:1", "job", "launch", "--json", "Demo", "--limit=web",
                         "--extra-vars", "a=1", "--token", "T", "--extra-vars", "{\"b\": 2}", "--follow", NULL };
        cli_settings s = {};
        cli_args a = {};
        _cleanup_free_ char *error = NULL;

        assert_int_equal(parse(argv, &s, &a, &error), 0);
        assert_ptr_equal(a.command, &cli_cmd_job_launch);
        assert_int_equal(strv_length(a.positional), 1);
        assert_string_equal(a.positional[0], "Demo");
        assert_string_equal(cli_args_get(&a, "limit"), "web");
        assert_true(cli_args_has(&a, "follow"));
        char *const *ev = cli_args_all(&a, "extra-vars");
        assert_int_equal(strv_length(ev), 2);
        assert_string_equal(ev[0], "a=1");
        assert_string_equal(ev[1], "{\"b\": 2}");
        assert_string_equal(s.url, "https://a:1");
        assert_string_equal(s.token, "T");
        assert_true(s.json);
        assert_null(cli_args_get(&a, "nothere"));
        cli_args_done(&a);
        cli_settings_done(&s);
}

static void test_parse_errors(void **state) {
        struct { char *argv[6]; const char *error; bool has_command; } cases[] = {
                { { "job", "list", "--bogus", NULL }, "unknown option '--bogus'", true },
                { { "job", "show", NULL }, "missing argument", true },
                { { "job", "show", "1", "2", NULL }, "unexpected argument '2'", true },
                { { "job", "launch", "X", "--limit", NULL }, "option '--limit' needs a value", true },
                { { "job", "launch", "X", "--follow=1", NULL }, "option '--follow' takes no value", true },
                { { "jobs", NULL }, "unknown command 'jobs'", false },
                { { "job", NULL }, NULL, false },
                { { NULL }, "missing command", false },
                { { "--limit", "3", "job", "list", NULL }, "unknown option '--limit'", false },
                { { "job", "list", "-x", NULL }, "unknown option '-x'", true },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                cli_settings s = {};
                cli_args a = {};
                _cleanup_free_ char *error = NULL;

                assert_int_equal(parse(cases[i].argv, &s, &a, &error), -EINVAL);
                assert_non_null(error);
                if (cases[i].error)
                        assert_string_equal(error, cases[i].error);
                assert_true((a.command != NULL) == cases[i].has_command);
                cli_args_done(&a);
                cli_settings_done(&s);
        }
}

static void test_parse_double_dash(void **state) {
        char *argv[] = { "job", "launch", "--", "--weird-name", NULL };
        cli_settings s = {};
        cli_args a = {};
        _cleanup_free_ char *error = NULL;

        assert_int_equal(parse(argv, &s, &a, &error), 0);
        assert_string_equal(a.positional[0], "--weird-name");
        cli_args_done(&a);
        cli_settings_done(&s);
}

static void test_settings_precedence(void **state) {
        _cleanup_free_ char *conf = tmp_path("prec.yaml");
        _cleanup_free_ char *error = NULL;
        cli_settings s = {};

        write_text(conf, "url: file-host:8443\ntoken: file-token\nca_file: /file/ca.crt\nuser: file-user\n");

        /* file only */
        s.config_path = strdup(conf);
        assert_int_equal(cli_settings_resolve(&s, &error), 0);
        assert_string_equal(s.url, "https://file-host:8443");
        assert_string_equal(s.token, "file-token");
        assert_string_equal(s.ca_file, "/file/ca.crt");
        assert_string_equal(s.user, "file-user");
        assert_null(s.password);
        cli_settings_done(&s);

        /* env beats file */
        setenv("DROVER_URL", "https://env-host:1/", 1);
        setenv("DROVER_TOKEN", "env-token", 1);
        setenv("DROVER_PASSWORD", "env-pw", 1);
        s.config_path = strdup(conf);
        assert_int_equal(cli_settings_resolve(&s, &error), 0);
        assert_string_equal(s.url, "https://env-host:1");
        assert_string_equal(s.token, "env-token");
        assert_string_equal(s.user, "file-user");
        assert_string_equal(s.password, "env-pw");
        cli_settings_done(&s);

        /* flags beat env and file */
        char *argv[] = { "node", "list", "--url", "http://flag-host:2", "--config", conf, "--user", "flag-user", NULL };
        cli_args a = {};
        assert_int_equal(parse(argv, &s, &a, &error), 0);
        assert_int_equal(cli_settings_resolve(&s, &error), 0);
        assert_string_equal(s.url, "http://flag-host:2");
        assert_string_equal(s.token, "env-token");
        assert_string_equal(s.user, "flag-user");
        assert_string_equal(s.ca_file, "/file/ca.crt");
        assert_string_equal(s.config_path, conf);
        cli_args_done(&a);
        cli_settings_done(&s);

        unsetenv("DROVER_URL");
        unsetenv("DROVER_TOKEN");
        unsetenv("DROVER_PASSWORD");
}

static void test_settings_default_path_and_missing(void **state) {
        _cleanup_free_ char *expected = tmp_path("drover/cli.yaml"), *p = NULL, *error = NULL;
        cli_settings s = {};

        assert_int_equal(cli_default_config_path(&p), 0);
        assert_string_equal(p, expected);
        /* a missing config file is not an error */
        assert_int_equal(cli_settings_resolve(&s, &error), 0);
        assert_null(error);
        assert_string_equal(s.config_path, expected);
        assert_null(s.url);
        cli_settings_done(&s);
}

static void test_config_errors(void **state) {
        _cleanup_free_ char *conf = tmp_path("bad.yaml");
        struct { const char *text; const char *suffix; } cases[] = {
                { "url: https://a:1\nbogus: 1\n", ":2:1: unknown key 'bogus'" },
                { "url: [1, 2]\n", ":1:6:" },
                { "url: ftp://x\n", ":1:6: key 'url'" },
                { "- a\n- b\n", ":1:1:" },
                { "url: \"unterminated\n", ":" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *error = NULL;
                cli_settings s = {};

                write_text(conf, cases[i].text);
                s.config_path = strdup(conf);
                assert_int_equal(cli_settings_resolve(&s, &error), -EINVAL);
                assert_non_null(error);
                assert_non_null(startswith(error, conf));
                assert_non_null(strstr(error, cases[i].suffix));
                cli_settings_done(&s);
        }
}

static void test_config_save_roundtrip(void **state) {
        _cleanup_free_ char *conf = tmp_path("new/sub/cli.yaml"), *dir = tmp_path("new/sub"), *error = NULL;
        cli_settings s = { .url = strdup("https://h:8443"), .ca_file = strdup("/ca \"q\".crt"),
                           .token = strdup("tok: #en"), .user = strdup("admin") };
        cli_settings l = {};
        struct stat st;

        assert_int_equal(cli_config_save(conf, &s), 0);
        assert_int_equal(stat(conf, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(stat(dir, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
        assert_int_equal(cli_config_load(conf, &l, &error), 0);
        assert_string_equal(l.url, s.url);
        assert_string_equal(l.ca_file, s.ca_file);
        assert_string_equal(l.token, s.token);
        assert_string_equal(l.user, s.user);
        cli_settings_done(&s);
        cli_settings_done(&l);
}

static void test_normalize_url(void **state) {
        char *u = NULL;
        assert_int_equal(cli_normalize_url("ctl:8443", &u), 0);
        assert_string_equal(u, "https://ctl:8443");
        free(u);
        assert_int_equal(cli_normalize_url("https://ctl:8443///", &u), 0);
        assert_string_equal(u, "https://ctl:8443");
        free(u);
        assert_int_equal(cli_normalize_url("ftp://x", &u), -EINVAL);
        assert_int_equal(cli_normalize_url("", &u), -EINVAL);
        assert_int_equal(cli_normalize_url("a b", &u), -EINVAL);
}

/* ---- extra vars ---- */

static void test_extra_vars(void **state) {
        _cleanup_free_ char *jf = tmp_path("vars.json"), *yf = tmp_path("vars.yml"), *arg = NULL;
        _cleanup_json_ json_t *vars = NULL;
        char *error = NULL;

        assert_int_equal(cli_extra_vars_parse("{\"a\": 1, \"l\": [1, \"x\"]}", &vars, &error), 0);
        assert_int_equal(cli_extra_vars_parse("name=web 1", &vars, &error), 0);
        assert_int_equal(cli_extra_vars_parse("eq=a=b", &vars, &error), 0);
        assert_int_equal(cli_extra_vars_parse("a=override", &vars, &error), 0);  /* later wins */
        write_text(jf, "{\"from_json\": {\"deep\": true}}");
        arg = strjoin("@", jf, NULL);
        assert_int_equal(cli_extra_vars_parse(arg, &vars, &error), 0);
        free(arg);
        write_text(yf, "---\nfrom_yaml: 5\nquoted: \"5\"\nflag: true\nnothing: ~\nlist:\n  - x\n  - 2.5\n");
        arg = strjoin("@", yf, NULL);
        assert_int_equal(cli_extra_vars_parse(arg, &vars, &error), 0);

        _cleanup_json_ json_t *expected = json_loads(
                "{\"a\": \"override\", \"l\": [1, \"x\"], \"name\": \"web 1\", \"eq\": \"a=b\","
                " \"from_json\": {\"deep\": true}, \"from_yaml\": 5, \"quoted\": \"5\", \"flag\": true,"
                " \"nothing\": null, \"list\": [\"x\", 2.5]}", 0, NULL);
        assert_non_null(expected);
        assert_true(json_equal(vars, expected));

        const char *bad[] = { "[1, 2]", "{\"a\": ", "novalue", "=x", "@/nonexistent/file", "{\"a\":1,\"a\":2}" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                json_t *v = NULL;
                assert_true(cli_extra_vars_parse(bad[i], &v, &error) < 0);
                assert_non_null(error);
                assert_null(v);
                free(error);
                error = NULL;
        }
        write_text(jf, "[1]");
        free(arg);
        arg = strjoin("@", jf, NULL);
        json_t *v = NULL;
        assert_int_equal(cli_extra_vars_parse(arg, &v, &error), -EINVAL);
        assert_non_null(strstr(error, "expected a JSON object"));
        free(error);
}

/* ---- tables ---- */

static char *render(const cli_column *cols, size_t n_cols, char *const *const *rows, size_t n_rows) {
        char *text = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&text, &size);
        assert_non_null(f);
        cli_table_render(f, cols, n_cols, rows, n_rows);
        assert_int_equal(fclose(f), 0);
        return text;
}

static void test_table_widths(void **state) {
        static const cli_column cols[] = { { "ID", 0, true }, { "NAME", 0 }, { "STATUS", 0 } };
        char *r0[] = { "7", "Deploy web", "successful" };
        char *r1[] = { "12", "x", NULL };
        char *const *rows[] = { r0, r1 };
        _cleanup_free_ char *out = render(cols, 3, rows, 2);

        assert_string_equal(out,
                            "ID  NAME        STATUS\n"
                            " 7  Deploy web  successful\n"
                            "12  x           \n");
}

static void test_table_truncation(void **state) {
        static const cli_column cols[] = { { "NAME", 8 }, { "TASK", 5 } };
        char *r0[] = { "abcdefghijkl", "ééééééé" };      /* UTF-8: 7 characters */
        char *r1[] = { "short", "a\nb" };
        char *const *rows[] = { r0, r1 };
        _cleanup_free_ char *out = render(cols, 2, rows, 2);

        assert_string_equal(out,
                            "NAME      TASK\n"
                            "abcde...  éé...\n"
                            "short     a b\n");

        _cleanup_free_ char *t = cli_truncate("abcdef", 3);
        assert_string_equal(t, "abc");
        _cleanup_free_ char *t2 = cli_truncate("abcd", 4);
        assert_string_equal(t2, "abcd");
        _cleanup_free_ char *t3 = cli_truncate("abcde", 4);
        assert_string_equal(t3, "a...");
        assert_int_equal(cli_utf8_width("é€x"), 3);
}

static void test_table_builder(void **state) {
        static const cli_column cols[] = { { "A", 0 }, { "B", 0 } };
        _cleanup_cli_table_ cli_table *t = NULL;
        char *text = NULL;
        size_t size = 0;

        assert_int_equal(cli_table_new(cols, 2, &t), 0);
        assert_int_equal(cli_table_put(t, 0, strdup("x")), -EINVAL);   /* no row yet */
        assert_int_equal(cli_table_add_row(t), 0);
        assert_int_equal(cli_table_put(t, 0, strdup("1")), 0);
        assert_int_equal(cli_table_put(t, 1, NULL), -ENOMEM);
        assert_int_equal(cli_table_put(t, 2, strdup("x")), -EINVAL);
        FILE *f = open_memstream(&text, &size);
        cli_table_print(t, f);
        fclose(f);
        assert_string_equal(text, "A  B\n1  \n");
        free(text);
}

static void test_formatters(void **state) {
        _cleanup_json_ json_t *o = json_loads("{\"s\": \"x\", \"i\": 3, \"b\": true, \"n\": null}", 0, NULL);
        char *t;

        t = cli_json_text(o, "s"); assert_string_equal(t, "x"); free(t);
        t = cli_json_text(o, "i"); assert_string_equal(t, "3"); free(t);
        t = cli_json_text(o, "b"); assert_string_equal(t, "yes"); free(t);
        t = cli_json_text(o, "n"); assert_string_equal(t, ""); free(t);
        t = cli_json_text(o, "missing"); assert_string_equal(t, ""); free(t);
        t = cli_format_elapsed(12.345); assert_string_equal(t, "12.3s"); free(t);
        t = cli_format_elapsed(3725); assert_string_equal(t, "1h02m05s"); free(t);
        t = cli_format_time("2026-11-23T06:15:03.123456Z"); assert_string_equal(t, "2026-11-23 06:15:03"); free(t);
        t = cli_format_time(NULL); assert_string_equal(t, ""); free(t);
        t = cli_uri_escape("My JT/1&x=é"); assert_string_equal(t, "My%20JT%2F1%26x%3D%C3%A9"); free(t);

        int64_t id;
        assert_int_equal(cli_parse_id("42", &id), 0);
        assert_int_equal(id, 42);
        assert_int_equal(cli_parse_id("0", &id), -EINVAL);
        assert_int_equal(cli_parse_id("4x", &id), -EINVAL);
        assert_int_equal(cli_parse_id("-4", &id), -EINVAL);

        assert_int_equal(cli_job_status_to_exit("successful"), 0);
        assert_int_equal(cli_job_status_to_exit("failed"), 1);
        assert_int_equal(cli_job_status_to_exit("error"), 2);
        assert_int_equal(cli_job_status_to_exit("canceled"), 3);
        assert_int_equal(cli_job_status_to_exit("weird"), 1);
}

/* ---- error bodies ---- */

static void check_error(long status, const char *body, const char *expected) {
        _cleanup_json_ json_t *j = body ? json_loads(body, 0, NULL) : NULL;
        _cleanup_free_ char *t = cli_format_error_body(status, j, body);
        assert_non_null(t);
        assert_string_equal(t, expected);
}

static void test_error_bodies(void **state) {
        check_error(400, "{\"name\": [\"This field is required.\"]}", "400 name: This field is required.");
        check_error(400, "{\"name\": [\"Required.\"], \"playbook\": [\"Bad.\", \"Worse.\"]}",
                    "400 name: Required.; playbook: Bad. Worse.");
        check_error(400, "{\"__all__\": [\"Duplicate.\"]}", "400 Duplicate.");
        check_error(401, "{\"detail\": \"Authentication credentials were not provided.\"}",
                    "401 Authentication credentials were not provided.");
        check_error(409, "{\"error\": \"Resource is being used\", \"active_jobs\": [{\"id\": 1}]}",
                    "409 Resource is being used");
        check_error(400, "{\"extra_vars\": {\"x\": 1}}", "400 extra_vars: {\"x\":1}");
        check_error(502, "<html>Bad gateway\nmore</html>", "502 <html>Bad gateway");
        check_error(404, NULL, "404 Not Found");
        check_error(404, "", "404 Not Found");
        check_error(418, "{}", "418 HTTP error");
        check_error(400, "{\"detail\": \"line1\\nline2\"}", "400 line1 line2");

        /* very long bodies are cut */
        _cleanup_free_ char *big = malloc(5000);
        memset(big, 'a', 4999);
        big[4999] = 0;
        _cleanup_json_ json_t *j = json_pack("{s:s}", "detail", big);
        _cleanup_free_ char *t = cli_format_error_body(400, j, NULL);
        assert_true(strlen(t) <= 1000);
        assert_non_null(startswith(t + strlen(t) - 3, "..."));
}

/* ---- SSE ---- */

typedef struct collected {
        char *text;
        size_t size;
        FILE *f;
        unsigned n;
        unsigned stop_after;    /* 0: never */
} collected;

static int collect(const sse_event *e, void *userdata) {
        collected *c = userdata;
        assert_int_equal(strlen(e->data), e->data_size);
        fprintf(c->f, "[%s|%s|%s]", e->event, e->id, e->data);
        c->n++;
        return c->stop_after && c->n >= c->stop_after ? 7 : 0;
}

static void collect_begin(collected *c) {
        *c = (collected) {};
        c->f = open_memstream(&c->text, &c->size);
        assert_non_null(c->f);
}

static void collect_end(collected *c) {
        assert_int_equal(fclose(c->f), 0);
        c->f = NULL;
}

static const char sse_stream[] =
        "\xEF\xBB\xBF: keep-alive comment\n"
        "id: 1\nevent: job_event\ndata: {\"counter\": 1, \"stdout\": \"PLAY [all]\"}\n\n"
        "id: 2\r\nevent: job_event\r\ndata: {\"counter\": 2,\r\ndata:  \"stdout\": \"ok\"}\r\n\r\n"
        "id:3\revent:job_event\rdata:third\r\r"
        "data\n\n"                              /* a field with no colon: empty data */
        "event: ignored-without-data\n\n"
        "retry: 1000\nunknown: x\ndata: no type\n\n"
        "event: status\ndata: {\"id\": 5, \"status\": \"successful\", \"failed\": false}\n\n"
        "data: incomplete at the end";

static const char sse_expected[] =
        "[job_event|1|{\"counter\": 1, \"stdout\": \"PLAY [all]\"}]"
        "[job_event|2|{\"counter\": 2,\n \"stdout\": \"ok\"}]"
        "[job_event|3|third]"
        "[message|3|]"
        "[message|3|no type]"
        "[status|3|{\"id\": 5, \"status\": \"successful\", \"failed\": false}]";

static void test_sse_whole(void **state) {
        _cleanup_sse_parser_ sse_parser *p = NULL;
        collected c;

        assert_int_equal(sse_parser_new(0, &p), 0);
        collect_begin(&c);
        assert_int_equal(sse_parser_feed(p, sse_stream, strlen(sse_stream), collect, &c), 0);
        collect_end(&c);
        assert_string_equal(c.text, sse_expected);
        assert_string_equal(sse_parser_last_id(p), "3");
        free(c.text);
}

static void test_sse_every_split(void **state) {
        size_t n = strlen(sse_stream);

        /* two chunks, split at every byte position */
        for (size_t i = 0; i <= n; i++) {
                _cleanup_sse_parser_ sse_parser *p = NULL;
                collected c;

                assert_int_equal(sse_parser_new(0, &p), 0);
                collect_begin(&c);
                assert_int_equal(sse_parser_feed(p, sse_stream, i, collect, &c), 0);
                assert_int_equal(sse_parser_feed(p, sse_stream + i, n - i, collect, &c), 0);
                collect_end(&c);
                assert_string_equal(c.text, sse_expected);
                free(c.text);
        }

        /* three chunks at every pair of positions */
        for (size_t i = 0; i <= n; i += 3)
                for (size_t j = i; j <= n; j += 5) {
                        _cleanup_sse_parser_ sse_parser *p = NULL;
                        collected c;

                        assert_int_equal(sse_parser_new(0, &p), 0);
                        collect_begin(&c);
                        assert_int_equal(sse_parser_feed(p, sse_stream, i, collect, &c), 0);
                        assert_int_equal(sse_parser_feed(p, sse_stream + i, j - i, collect, &c), 0);
                        assert_int_equal(sse_parser_feed(p, sse_stream + j, n - j, collect, &c), 0);
                        collect_end(&c);
                        assert_string_equal(c.text, sse_expected);
                        free(c.text);
                }

        /* one byte at a time */
        _cleanup_sse_parser_ sse_parser *p = NULL;
        collected c;
        assert_int_equal(sse_parser_new(0, &p), 0);
        collect_begin(&c);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(sse_parser_feed(p, sse_stream + i, 1, collect, &c), 0);
        collect_end(&c);
        assert_string_equal(c.text, sse_expected);
        free(c.text);
}

static void test_sse_stop_limit_reset(void **state) {
        _cleanup_sse_parser_ sse_parser *p = NULL, *small = NULL;
        collected c;

        /* the callback's non-zero value stops parsing */
        assert_int_equal(sse_parser_new(0, &p), 0);
        collect_begin(&c);
        c.stop_after = 2;
        assert_int_equal(sse_parser_feed(p, sse_stream, strlen(sse_stream), collect, &c), 7);
        collect_end(&c);
        assert_int_equal(c.n, 2);
        free(c.text);

        /* reset drops a half-received event, keeps the id */
        sse_parser_reset(p);
        collect_begin(&c);
        assert_int_equal(sse_parser_feed(p, "data: half", 10, collect, &c), 0);
        sse_parser_reset(p);
        assert_int_equal(sse_parser_feed(p, "id: 9\ndata: whole\n\n", 19, collect, &c), 0);
        collect_end(&c);
        assert_string_equal(c.text, "[message|9|whole]");
        free(c.text);

        /* limits: a long line, and many data lines adding up */
        assert_int_equal(sse_parser_new(16, &small), 0);
        collect_begin(&c);
        assert_int_equal(sse_parser_feed(small, "data: 0123456789abcdef", 22, collect, &c), -EMSGSIZE);
        assert_int_equal(sse_parser_feed(small, "\n\n", 2, collect, &c), -EMSGSIZE);
        sse_parser_free(small);
        assert_int_equal(sse_parser_new(16, &small), 0);
        assert_int_equal(sse_parser_feed(small, "data: 0123456\ndata: 0123456\ndata: 0123456\n", 42, collect, &c),
                         -EMSGSIZE);
        collect_end(&c);
        assert_int_equal(c.n, 0);
        free(c.text);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_globals_anywhere),
                cmocka_unit_test(test_parse_errors),
                cmocka_unit_test(test_parse_double_dash),
                cmocka_unit_test(test_settings_precedence),
                cmocka_unit_test(test_settings_default_path_and_missing),
                cmocka_unit_test(test_config_errors),
                cmocka_unit_test(test_config_save_roundtrip),
                cmocka_unit_test(test_normalize_url),
                cmocka_unit_test(test_extra_vars),
                cmocka_unit_test(test_table_widths),
                cmocka_unit_test(test_table_truncation),
                cmocka_unit_test(test_table_builder),
                cmocka_unit_test(test_formatters),
                cmocka_unit_test(test_error_bodies),
                cmocka_unit_test(test_sse_whole),
                cmocka_unit_test(test_sse_every_split),
                cmocka_unit_test(test_sse_stop_limit_reset),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
