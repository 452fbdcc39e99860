/* fuzz-cli.c: fuzz target for droverctl's helpers that turn controller answers (untrusted: any
 * server the user points droverctl at) into terminal output, and parse user arguments:
 * cli_truncate/cli_utf8_width (table cells: width limits hold, no control characters survive),
 * cli_table_render over cells cut from the input, cli_format_error_body and cli_json_text over the
 * input parsed as JSON, cli_format_time, cli_uri_escape (only unreserved characters and %XX),
 * cli_parse_id, cli_normalize_url and cli_extra_vars_parse (never with "@file"). */
#include <assert.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "drover/json-util.h"
#include "drover/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_CELLS 64

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        log_set_max_level(getenv("FUZZ_VERBOSE") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERR - 1);  /* quiet unless asked */
        devnull = fopen("/dev/null", "we");
        if (!devnull)
                abort();
        return 0;
}

static void check_truncate(const char *s) {
        static const size_t widths[] = { 0, 1, 3, 4, 5, 12, 40 };

        for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++) {
                char *t = cli_truncate(s, widths[i]);
                assert(t);
                if (widths[i] > 0)
                        assert(cli_utf8_width(t) <= widths[i]);
                for (const char *p = t; *p; p++)
                        assert((unsigned char) *p >= 0x20 && *p != 0x7f);
                free(t);
        }
}

static void check_table(char *text) {
        static const cli_column columns[] = { { "ID", 0, true }, { "NAME", 10, false }, { "STATUS", 4, false } };
        char *cells[MAX_CELLS][3] = {};
        char *const *rows[MAX_CELLS];
        size_t n = 0;

        for (char *save = NULL, *line = strtok_r(text, "\n", &save); line && n < MAX_CELLS;
             line = strtok_r(NULL, "\n", &save)) {
                char *save2 = NULL;
                for (size_t c = 0; c < 3; c++)
                        cells[n][c] = strtok_r(c == 0 ? line : NULL, "\t", &save2);
                rows[n] = cells[n];
                n++;
        }
        cli_table_render(devnull, columns, 3, rows, n);
}

static void check_json(const char *text) {
        _cleanup_json_ json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
        char *s;

        s = cli_format_error_body(400, j, text);
        free(s);
        s = cli_format_error_body(500, NULL, text);
        free(s);
        if (json_is_object(j)) {
                const char *k;
                json_t *v;
                json_object_foreach(j, k, v) {
                        s = cli_json_text(j, k);
                        free(s);
                }
        }
        if (j)
                (void) cli_print_json(devnull, j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_json_ json_t *vars = NULL;
        char *text, *copy, *s, *error = NULL;
        int64_t id;

        text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = 0;

        (void) cli_utf8_width(text);
        check_truncate(text);
        check_json(text);

        s = cli_format_time(text);
        free(s);
        s = cli_uri_escape(text);
        if (s) {
                for (const char *p = s; *p; p++)
                        assert(isalnum((unsigned char) *p) || strchr("-._~", *p) ||
                               (*p == '%' && isxdigit((unsigned char) p[1]) && isxdigit((unsigned char) p[2])));
                free(s);
        }
        (void) cli_parse_id(text, &id);
        if (cli_normalize_url(text, &s) >= 0)
                free(s);
        if (text[0] != '@' && cli_extra_vars_parse(text, &vars, &error) >= 0)
                assert(json_is_object(vars));
        free(error);

        copy = strdup(text);
        if (copy)
                check_table(copy);
        free(copy);
        free(text);
        return 0;
}
