/* fuzz-event-line.c: fuzz target for event_line_parse() (agent/event-line.c), which validates
 * one line of a job's events file written by the callback plugin (untrusted: the playbook
 * controls its content). Checks the contract: always an event object with an integer counter,
 * the expected counter on a malformed line, and a `res` within AGENT_EVENT_MAX_RES; and that
 * event_line_check_raw() (the uploader's no-parse fast path) only accepts lines the parser keeps
 * exactly as they are. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "drover/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        log_set_max_level(getenv("FUZZ_VERBOSE") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERR - 1);  /* quiet unless asked */
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        json_t *ev = NULL;
        bool malformed = false;
        int r;

        /* the parser is length-aware: the line is not NUL terminated here */
        r = event_line_parse((const char *) data, size, 7, &ev, &malformed);
        if (r >= 0) {
                assert(json_is_object(ev));
                assert(json_integer_value(json_object_get(ev, "counter")) == 7);
                assert(json_is_string(json_object_get(ev, "uuid")));
                assert(json_is_object(json_object_get(ev, "event_data")));
                json_t *res = json_object_get(json_object_get(ev, "event_data"), "res");
                if (res)
                        assert(json_dumpb(res, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY) <= AGENT_EVENT_MAX_RES);
                /* the raw fast path (bytes uploaded as written) may only accept what the parser keeps
                 * unchanged: the same event, with the expected counter */
                int64_t counter = 0;
                if (event_line_check_raw((const char *) data, size, 7, &counter)) {
                        assert(!malformed);
                        assert(counter == 7);
                        json_t *raw = json_loadb((const char *) data, size, JSON_ALLOW_NUL, NULL);
                        assert(raw);
                        assert(json_equal(raw, ev));
                        json_decref(raw);
                }
                json_decref(ev);
        }
        return 0;
}
