/*
 * ts_json.c: jansson helpers for request bodies. ts_json_parse() rejects empty bodies,
 * malformed JSON, invalid UTF-8 (jansson) and nesting deeper than 64 levels (checked by a
 * scan before jansson recurses). ts_json_check() validates an object against a small field
 * table and words its errors like OpenStack's jsonschema validation, e.g.
 * "Invalid input for field/attribute name. Value: 1. 1 is not of type 'string'".
 * All functions are reentrant; json_t values are not shared between threads here.
 */
#include "json/ts_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define JSON_MAX_DEPTH 64
#define STRING_DEFAULT_MAX 255

/* Depth of the deepest array/object outside strings; stops counting past the limit. */
static int nesting_too_deep(const char *data, size_t len)
{
    int depth = 0;
    bool in_str = false, esc = false;
    for (size_t i = 0; i < len; i++) {
        char c = data[i];
        if (in_str) {
            if (esc) esc = false;
            else if (c == '\\') esc = true;
            else if (c == '"') in_str = false;
            continue;
        }
        if (c == '"') in_str = true;
        else if (c == '[' || c == '{') {
            if (++depth > JSON_MAX_DEPTH) return 1;
        } else if ((c == ']' || c == '}') && depth > 0) depth--;
    }
    return 0;
}

int ts_json_parse(const char *data, size_t len, json_t **out, struct ts_err *err)
{
    TS_ASSERT(out);
    *out = NULL;
    size_t i = 0;
    if (!data) len = 0;
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n')) i++;
    if (i == len) return ts_err_set(err, TS_EINVAL, "Malformed request body: empty body");
    if (nesting_too_deep(data, len))
        return ts_err_set(err, TS_EINVAL, "Malformed request body: nesting deeper than %d levels",
                          JSON_MAX_DEPTH);
    json_error_t jerr;
    json_t *v = json_loadb(data, len, JSON_DECODE_ANY, &jerr);
    if (!v)
        return ts_err_set(err, TS_EINVAL, "Malformed request body: %s (line %d, column %d)",
                          jerr.text, jerr.line, jerr.column);
    *out = v;
    return 0;
}

/* Bytes of s (at most max) that do not end inside a UTF-8 sequence. */
static int utf8_prefix(const char *s, size_t max)
{
    size_t len = strnlen(s, max + 1);
    if (len <= max) return (int)len;
    size_t j = max;
    while (j > 0 && ((unsigned char)s[j] & 0xc0) == 0x80) j--;
    return (int)j;
}

/* Python-like rendering of a value for messages: strings bare or quoted, null as None. */
static void render(const json_t *v, bool quote_strings, char *out, size_t size)
{
    switch (json_typeof(v)) {
    case JSON_NULL: snprintf(out, size, "None"); return;
    case JSON_TRUE: snprintf(out, size, "True"); return;
    case JSON_FALSE: snprintf(out, size, "False"); return;
    case JSON_STRING:
        snprintf(out, size, quote_strings ? "'%.*s%s'" : "%.*s%s", utf8_prefix(json_string_value(v), 100),
                 json_string_value(v), json_string_length(v) > 100 ? "..." : "");
        return;
    default: break;
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    snprintf(out, size, "%.*s%s", s ? utf8_prefix(s, 100) : 1, s ? s : "?", s && strlen(s) > 100 ? "..." : "");
    free(s);
}

static int invalid(struct ts_err *err, const char *name, const json_t *v, const char *fmt_tail,
                   const char *extra)
{
    char bare[128], quoted[128];
    render(v, false, bare, sizeof(bare));
    render(v, true, quoted, sizeof(quoted));
    char tail[320];
    snprintf(tail, sizeof(tail), fmt_tail, quoted, extra ? extra : "");
    return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute %s. Value: %s. %s", name, bare,
                      tail);
}

static const char *kind_type(enum ts_json_kind k)
{
    switch (k) {
    case TS_J_STRING: return "'string'";
    case TS_J_INT: return "'integer'";
    case TS_J_BOOL: return "'boolean'";
    case TS_J_OBJECT: return "'object'";
    case TS_J_ARRAY: return "'array'";
    case TS_J_STRING_OR_NULL: return "'string', 'null'";
    case TS_J_UUID: return "'string'";
    case TS_J_ANY: break;
    }
    return "'any'";
}

static bool lax_bool_string(const json_t *v, bool *out)
{
    if (!json_is_string(v)) return false;
    const char *s = json_string_value(v);
    if (strcasecmp(s, "true") == 0) {
        if (out) *out = true;
        return true;
    }
    if (strcasecmp(s, "false") == 0) {
        if (out) *out = false;
        return true;
    }
    return false;
}

static int check_string(const struct ts_json_field *f, const json_t *v, struct ts_err *err)
{
    size_t len = json_string_length(v);
    int64_t max = f->max == 0 ? STRING_DEFAULT_MAX : f->max;
    if (max > 0 && len > (uint64_t)max) return invalid(err, f->name, v, "%s is too long%s", NULL);
    if (f->min > 0 && len < (uint64_t)f->min) return invalid(err, f->name, v, "%s is too short%s", NULL);
    return 0;
}

static int check_field(const struct ts_json_field *f, const json_t *v, bool strict, struct ts_err *err)
{
    char extra[24];
    switch (f->kind) {
    case TS_J_ANY: return 0;
    case TS_J_STRING_OR_NULL:
        if (json_is_null(v)) return 0;
        /* fall through */
    case TS_J_STRING:
        if (!json_is_string(v)) break;
        return check_string(f, v, err);
    case TS_J_UUID:
        if (!json_is_string(v)) break;
        if (!ts_uuid_valid(json_string_value(v))) return invalid(err, f->name, v, "%s is not a 'uuid'%s", NULL);
        return 0;
    case TS_J_INT:
        if (!json_is_integer(v)) break;
        if (f->min != 0 || f->max != 0) {
            json_int_t i = json_integer_value(v);
            if (i < f->min) {
                snprintf(extra, sizeof(extra), "%lld", (long long)f->min);
                return invalid(err, f->name, v, "%s is less than the minimum of %s", extra);
            }
            if (i > f->max) {
                snprintf(extra, sizeof(extra), "%lld", (long long)f->max);
                return invalid(err, f->name, v, "%s is greater than the maximum of %s", extra);
            }
        }
        return 0;
    case TS_J_BOOL:
        if (json_is_boolean(v) || (!strict && lax_bool_string(v, NULL))) return 0;
        break;
    case TS_J_OBJECT:
        if (json_is_object(v)) return 0;
        break;
    case TS_J_ARRAY:
        if (json_is_array(v)) return 0;
        break;
    }
    return invalid(err, f->name, v, "%s is not of type %s", kind_type(f->kind));
}

int ts_json_check(const json_t *obj, const struct ts_json_field *fields, bool strict, struct ts_err *err)
{
    if (!json_is_object(obj)) {
        char quoted[128];
        if (obj) render(obj, true, quoted, sizeof(quoted));
        else snprintf(quoted, sizeof(quoted), "None");
        return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute body. %s is not of type 'object'",
                          quoted);
    }
    for (const struct ts_json_field *f = fields; f && f->name; f++) {
        const json_t *v = json_object_get(obj, f->name);
        if (!v) {
            if (f->required) return ts_err_set(err, TS_EINVAL, "'%s' is a required property", f->name);
            continue;
        }
        int rc = check_field(f, v, strict, err);
        if (rc < 0) return rc;
    }
    if (strict) {
        const char *key;
        const json_t *v;
        json_object_foreach ((json_t *)obj, key, v) {
            bool known = false;
            for (const struct ts_json_field *f = fields; f && f->name && !known; f++)
                known = strcmp(f->name, key) == 0;
            if (!known)
                return ts_err_set(err, TS_EINVAL,
                                  "Additional properties are not allowed ('%.*s' was unexpected)",
                                  utf8_prefix(key, 100), key);
        }
    }
    return 0;
}

int ts_json_body_object(const json_t *body, const char *key, json_t **out, struct ts_err *err)
{
    TS_ASSERT(key && out);
    *out = NULL;
    if (!json_is_object(body))
        return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute body. The request body must be an object");
    json_t *v = json_object_get(body, key);
    if (!v) return ts_err_set(err, TS_EINVAL, "'%s' is a required property", key);
    if (!json_is_object(v)) return invalid(err, key, v, "%s is not of type 'object'%s", NULL);
    *out = v;
    return 0;
}

const char *ts_json_str(const json_t *obj, const char *key, const char *def)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : def;
}

int64_t ts_json_int(const json_t *obj, const char *key, int64_t def)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : def;
}

bool ts_json_bool(const json_t *obj, const char *key, bool def)
{
    const json_t *v = json_object_get(obj, key);
    if (json_is_boolean(v)) return json_is_true(v);
    bool b;
    if (lax_bool_string(v, &b)) return b;
    return def;
}

void ts_json_set_str(json_t *obj, const char *key, const char *s)
{
    TS_ASSERT(obj && key);
    json_t *v;
    if (!s) {
        v = json_null();
    } else {
        v = json_string(s);
        if (!v) {
            /* not valid UTF-8 (should not come from our own data): replace bad bytes */
            size_t len = strlen(s);
            char *copy = ts_strndup(s, len);
            for (size_t i = 0; i < len;) {
                size_t n = 1;
                while (n <= 4 && i + n <= len && !ts_utf8_valid(copy + i, n)) n++;
                if (n > 4 || i + n > len) {
                    copy[i] = '?';
                    i++;
                } else {
                    i += n;
                }
            }
            v = json_string(copy);
            free(copy);
            if (!v) v = json_null();
        }
    }
    json_object_set_new(obj, key, v);
}

char *ts_json_dump(const json_t *v)
{
    if (!v) return ts_strdup("null");
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}
