/*
 * fuzz_json.c: libFuzzer target for request-body handling: ts_json_parse() on raw bytes,
 * then ts_json_check() (strict and lax) against a fixed field table, ts_json_body_object()
 * and the accessors. String values also go through the core parsers that see client text
 * (time stamps, UUIDs, URL decoding, UTF-8 checks). Error messages must stay valid UTF-8.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json/ts_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct ts_json_field fields[] = {
    {"name", TS_J_STRING, true, 1, 64},
    {"count", TS_J_INT, false, -5, 5},
    {"flag", TS_J_BOOL, false, 0, 0},
    {"meta", TS_J_OBJECT, false, 0, 0},
    {"list", TS_J_ARRAY, false, 0, 0},
    {"any", TS_J_ANY, false, 0, 0},
    {"desc", TS_J_STRING_OR_NULL, false, 0, 0},
    {"id", TS_J_UUID, false, 0, 0},
    {NULL, 0, false, 0, 0},
};

static void check_msg(const struct ts_err *err)
{
    size_t len = strlen(err->msg);
    if (len >= TS_ERR_MSG_MAX || !ts_utf8_valid(err->msg, len)) abort();
}

static void poke_string(const char *s, size_t len)
{
    double t;
    (void)ts_time_parse(s, &t);
    (void)ts_uuid_valid(s);
    (void)ts_utf8_valid(s, len);
    int64_t i;
    (void)ts_parse_int64(s, &i);
    bool b;
    (void)ts_parse_bool(s, &b);
    struct ts_pool *pool = ts_pool_new();
    char *dec = ts_url_decode(pool, s, len);
    char *enc = ts_url_encode(pool, s, true);
    /* encoding then decoding gives the string back */
    char *back = ts_url_decode(pool, enc, strlen(enc));
    if (!back || strcmp(back, s) != 0) abort();
    (void)dec;
    ts_pool_free(pool);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *v = NULL;
    struct ts_err err = {0};
    if (ts_json_parse((const char *)data, size, &v, &err) < 0) {
        check_msg(&err);
        return 0;
    }
    if (ts_json_check(v, fields, true, &err) < 0) check_msg(&err);
    if (ts_json_check(v, fields, false, &err) < 0) check_msg(&err);
    json_t *inner = NULL;
    if (ts_json_body_object(v, "server", &inner, &err) == 0) {
        if (ts_json_check(inner, fields, true, &err) < 0) check_msg(&err);
    } else {
        check_msg(&err);
    }
    (void)ts_json_str(v, "name", NULL);
    (void)ts_json_int(v, "count", 0);
    (void)ts_json_bool(v, "flag", false);
    if (json_is_string(v)) poke_string(json_string_value(v), json_string_length(v));
    if (json_is_object(v)) {
        const char *key;
        json_t *val;
        json_object_foreach (v, key, val) {
            if (json_is_string(val)) poke_string(json_string_value(val), json_string_length(val));
        }
        ts_json_set_str(v, "added", "x");
    }
    char *out = ts_json_dump(v);
    if (!out) abort();
    /* what we print parses again */
    json_t *again = NULL;
    if (ts_json_parse(out, strlen(out), &again, &err) < 0) abort();
    json_decref(again);
    free(out);
    json_decref(v);
    return 0;
}
