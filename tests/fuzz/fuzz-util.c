/* fuzz-util.c: fuzz target for the small text parsers of common/util.c that read client or
 * config input: parse_iso8601 (API filters and stored timestamps; must round-trip through
 * format_iso8601), parse_size, parse_timespan, parse_percent_usec, and the route matcher of the
 * HTTP server (http_route_match: client-controlled paths). */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "drover/log.h"
#include "drover/util.h"
#include "http-server.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        log_set_max_level(getenv("FUZZ_VERBOSE") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERR - 1);  /* quiet unless asked */
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char *const patterns[] = {
                "/api/v2/", "/api/v2/jobs/%/", "/api/v2/jobs/%/cancel/", "/api/v2/groups/%/children/",
                "/api/agent/v1/jobs/%/events/%/", NULL,
        };
        char *s = malloc(size + 1);
        uint64_t u = 0, u2 = 0;

        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = 0;

        if (parse_iso8601(s, &u) >= 0 && u > 0) {
                char buf[32];
                assert(format_iso8601(buf, u) == buf);
                assert(strlen(buf) < sizeof buf);
                assert(parse_iso8601(buf, &u2) >= 0);
                assert(u2 == u);
        }
        (void) parse_size(s, &u);
        (void) parse_timespan(s, &u);
        (void) parse_percent_usec(s, &u);

        for (size_t i = 0; patterns[i]; i++) {
                int64_t ids[4];
                size_t n = 0;
                if (http_route_match(patterns[i], s, ids, &n))
                        assert(n <= 4);
        }
        free(s);
        return 0;
}
