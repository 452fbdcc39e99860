/* json-util.h: jansson helpers: cleanup attribute, typed getters with defaults, and the
 * AWX-style error bodies every API answer uses. */
#pragma once

#include <jansson.h>
#include <stdint.h>
#include "drover/macro.h"

/* json_decrefp() comes from jansson >= 2.14 itself. */
#define _cleanup_json_ _cleanup_(json_decrefp)

const char *json_get_string(const json_t *o, const char *key, const char *def);
int64_t json_get_int(const json_t *o, const char *key, int64_t def);
bool json_get_bool(const json_t *o, const char *key, bool def);
/* Serialize compactly; caller frees. NULL on OOM. */
char *json_dumps_compact(const json_t *j);
/* {"detail": "..."} */
json_t *json_error_detail(const char *fmt, ...) _printf_(1, 2);
/* {"<field>": ["..."]} */
json_t *json_error_field(const char *field, const char *fmt, ...) _printf_(2, 3);
