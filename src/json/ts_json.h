/*
 * ts_json.h: jansson helpers. Strict parsing of request bodies (valid UTF-8, one JSON
 * value, depth and size limits), typed field access that fills a ts_err with an
 * OpenStack-style message, and small builders.
 */
#ifndef TS_JSON_H
#define TS_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include "core/ts_core.h"

/* Parses a request body. Empty or malformed -> -TS_EINVAL ("Malformed request body" style
 * message with jansson's reason). The caller owns *out (json_decref). */
int ts_json_parse(const char *data, size_t len, json_t **out, struct ts_err *err);

/* Field kinds for ts_json_check(). */
enum ts_json_kind {
    TS_J_STRING,    /* string; max_len in bytes (0 = 255) */
    TS_J_INT,       /* integer within [min,max] */
    TS_J_BOOL,      /* true/false (also accepts "true"/"false" strings when lax) */
    TS_J_OBJECT,
    TS_J_ARRAY,
    TS_J_ANY,
    TS_J_STRING_OR_NULL,
    TS_J_UUID,      /* string that is a UUID (with or without dashes) */
};

struct ts_json_field {
    const char *name;
    enum ts_json_kind kind;
    bool required;
    int64_t min, max;      /* ints: range (both 0 = unbounded); strings: min/max length */
};

/* Checks obj against fields: each present field has the right kind and bounds, each
 * required field is present; unknown fields are an error when strict is true.
 * Returns 0 or -TS_EINVAL with a message naming the field. */
int ts_json_check(const json_t *obj, const struct ts_json_field *fields, bool strict, struct ts_err *err);

/* Gets the object under key in a body like {"user": {...}}; -TS_EINVAL if absent/not an object. */
int ts_json_body_object(const json_t *body, const char *key, json_t **out, struct ts_err *err);

/* Accessors: return the value or def when absent or null (the type was checked before). */
const char *ts_json_str(const json_t *obj, const char *key, const char *def);
int64_t ts_json_int(const json_t *obj, const char *key, int64_t def);
bool ts_json_bool(const json_t *obj, const char *key, bool def);

/* Sets key to a string or JSON null when s is NULL. */
void ts_json_set_str(json_t *obj, const char *key, const char *s);
/* Compact serialisation (malloc'd, caller frees). */
char *ts_json_dump(const json_t *v);

#endif
