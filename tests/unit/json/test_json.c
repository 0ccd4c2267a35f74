/*
 * test_json.c: unit tests for src/json: body parsing (empty, malformed, bad UTF-8, depth
 * limit), OpenStack-style field check messages, body objects, accessors and builders.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/ts_json.h"

static json_t *parse_ok(const char *s)
{
    json_t *v = NULL;
    struct ts_err err = {0};
    if (ts_json_parse(s, strlen(s), &v, &err) != 0) fail_msg("parse failed: %s", err.msg);
    return v;
}

static void expect_bad(const char *s, size_t len, const char *needle)
{
    json_t *v = (json_t *)1;
    struct ts_err err = {0};
    assert_int_equal(ts_json_parse(s, len, &v, &err), -TS_EINVAL);
    assert_null(v);
    assert_int_equal(err.code, TS_EINVAL);
    if (!strstr(err.msg, needle)) fail_msg("message '%s' lacks '%s'", err.msg, needle);
    assert_true(ts_utf8_valid(err.msg, strlen(err.msg)));
}

static void test_parse(void **state)
{
    (void)state;
    json_t *v = parse_ok("{\"server\": {\"name\": \"vm\", \"n\": 3}}");
    assert_true(json_is_object(v));
    json_decref(v);
    v = parse_ok("  [1, 2, 3]\n");
    assert_true(json_is_array(v));
    json_decref(v);
    v = parse_ok("\"caf\xc3\xa9\"");
    assert_string_equal(json_string_value(v), "caf\xc3\xa9");
    json_decref(v);
    /* duplicate keys are accepted, like Python's json: the last wins */
    v = parse_ok("{\"a\": 1, \"a\": 2}");
    assert_int_equal(json_integer_value(json_object_get(v, "a")), 2);
    json_decref(v);

    expect_bad("", 0, "Malformed request body");
    expect_bad(NULL, 0, "empty");
    expect_bad(" \r\n\t ", 5, "empty");
    expect_bad("{", 1, "Malformed request body");
    expect_bad("{\"a\": }", 7, "Malformed request body");
    expect_bad("{} {}", 5, "Malformed request body");
    expect_bad("{\"a\": 1,}", 9, "Malformed request body");
    expect_bad("\"\xc3\x28\"", 4, "Malformed request body");   /* bad UTF-8 */
    expect_bad("\"\xed\xa0\x80\"", 5, "Malformed request body"); /* surrogate */
    expect_bad("\"a\\u0000b\"", 10, "Malformed request body");  /* NUL */
    expect_bad("{\"a\": 1}\0", 9, "Malformed request body");
    expect_bad("99999999999999999999999", 23, "Malformed request body");
    expect_bad("nan", 3, "Malformed request body");
    /* found by fuzzing: jansson quotes raw bytes of a bad escape; the message stays UTF-8 */
    expect_bad("{\"a\": \"\\u00f\xc3\xa9\"}", 16, "Malformed request body");
    /* only len bytes are parsed */
    v = NULL;
    assert_int_equal(ts_json_parse("[1]garbage", 3, &v, NULL), 0);
    json_decref(v);
}

static void test_depth(void **state)
{
    (void)state;
    char buf[300];
    /* 64 levels pass, 65 fail */
    memset(buf, '[', 64);
    memset(buf + 64, ']', 64);
    json_t *v = NULL;
    assert_int_equal(ts_json_parse(buf, 128, &v, NULL), 0);
    json_decref(v);
    memset(buf, '[', 65);
    memset(buf + 65, ']', 65);
    expect_bad(buf, 130, "nesting");
    /* brackets inside strings do not count */
    char s[200];
    memset(s, '[', sizeof(s));
    s[0] = '"';
    s[sizeof(s) - 1] = '"';
    v = NULL;
    assert_int_equal(ts_json_parse(s, sizeof(s), &v, NULL), 0);
    json_decref(v);
    /* an escaped quote does not end the string */
    const char *esc = "[\"\\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"]";
    v = NULL;
    assert_int_equal(ts_json_parse(esc, strlen(esc), &v, NULL), 0);
    json_decref(v);
    /* very deep input fails cleanly rather than recursing */
    size_t n = 100000;
    char *deep = ts_malloc(n);
    memset(deep, '{', n);
    expect_bad(deep, n, "nesting");
    free(deep);
}

static const struct ts_json_field server_fields[] = {
    {"name", TS_J_STRING, true, 1, 10},
    {"count", TS_J_INT, false, 1, 5},
    {"anyint", TS_J_INT, false, 0, 0},
    {"flag", TS_J_BOOL, false, 0, 0},
    {"meta", TS_J_OBJECT, false, 0, 0},
    {"list", TS_J_ARRAY, false, 0, 0},
    {"anything", TS_J_ANY, false, 0, 0},
    {"desc", TS_J_STRING_OR_NULL, false, 0, 0},
    {"id", TS_J_UUID, false, 0, 0},
    {NULL, 0, false, 0, 0},
};

static void check_body(const char *body, bool strict, int rc, const char *msg)
{
    json_t *v = parse_ok(body);
    struct ts_err err = {0};
    int got = ts_json_check(v, server_fields, strict, &err);
    json_decref(v);
    if (got != rc) fail_msg("check of %s returned %d (%s), wanted %d", body, got, err.msg, rc);
    if (msg && strcmp(err.msg, msg) != 0) fail_msg("check of %s: got '%s', wanted '%s'", body, err.msg, msg);
}

static void test_check(void **state)
{
    (void)state;
    check_body("{\"name\": \"vm\"}", true, 0, NULL);
    check_body("{\"name\": \"vm\", \"count\": 5, \"anyint\": -99999999999, \"flag\": false,"
                 " \"meta\": {}, \"list\": [], \"anything\": null, \"desc\": null,"
                 " \"id\": \"0123456789abcdef0123456789abcdef\"}",
                 true, 0, NULL);
    check_body("{\"name\": \"vm\", \"desc\": \"text\", \"id\": \"01234567-89ab-cdef-0123-456789abcdef\"}", true, 0,
                 NULL);
    check_body("{}", true, -TS_EINVAL, "'name' is a required property");
    check_body("{\"name\": 123}", true, -TS_EINVAL,
                 "Invalid input for field/attribute name. Value: 123. 123 is not of type 'string'");
    check_body("{\"name\": null}", true, -TS_EINVAL,
                 "Invalid input for field/attribute name. Value: None. None is not of type 'string'");
    check_body("{\"name\": \"\"}", true, -TS_EINVAL,
                 "Invalid input for field/attribute name. Value: . '' is too short");
    check_body("{\"name\": \"01234567890\"}", true, -TS_EINVAL,
                 "Invalid input for field/attribute name. Value: 01234567890. '01234567890' is too long");
    check_body("{\"name\": \"vm\", \"foo\": 1}", true, -TS_EINVAL,
                 "Additional properties are not allowed ('foo' was unexpected)");
    check_body("{\"name\": \"vm\", \"foo\": 1}", false, 0, NULL);
    check_body("{\"name\": \"vm\", \"count\": 0}", true, -TS_EINVAL,
                 "Invalid input for field/attribute count. Value: 0. 0 is less than the minimum of 1");
    check_body("{\"name\": \"vm\", \"count\": 6}", true, -TS_EINVAL,
                 "Invalid input for field/attribute count. Value: 6. 6 is greater than the maximum of 5");
    check_body("{\"name\": \"vm\", \"count\": \"3\"}", true, -TS_EINVAL,
                 "Invalid input for field/attribute count. Value: 3. '3' is not of type 'integer'");
    check_body("{\"name\": \"vm\", \"count\": 2.0}", true, -TS_EINVAL, NULL);
    check_body("{\"name\": \"vm\", \"count\": true}", true, -TS_EINVAL, NULL);
    check_body("{\"name\": \"vm\", \"flag\": 1}", true, -TS_EINVAL,
                 "Invalid input for field/attribute flag. Value: 1. 1 is not of type 'boolean'");
    /* "true"/"false" strings only when lax */
    check_body("{\"name\": \"vm\", \"flag\": \"true\"}", true, -TS_EINVAL, NULL);
    check_body("{\"name\": \"vm\", \"flag\": \"False\"}", false, 0, NULL);
    check_body("{\"name\": \"vm\", \"flag\": \"maybe\"}", false, -TS_EINVAL, NULL);
    check_body("{\"name\": \"vm\", \"meta\": []}", true, -TS_EINVAL,
                 "Invalid input for field/attribute meta. Value: []. [] is not of type 'object'");
    check_body("{\"name\": \"vm\", \"list\": {\"a\":1}}", true, -TS_EINVAL,
                 "Invalid input for field/attribute list. Value: {\"a\":1}. {\"a\":1} is not of type 'array'");
    check_body("{\"name\": \"vm\", \"desc\": 5}", true, -TS_EINVAL,
                 "Invalid input for field/attribute desc. Value: 5. 5 is not of type 'string', 'null'");
    check_body("{\"name\": \"vm\", \"id\": \"abc\"}", true, -TS_EINVAL,
                 "Invalid input for field/attribute id. Value: abc. 'abc' is not a 'uuid'");
    check_body("{\"name\": \"vm\", \"id\": 7}", true, -TS_EINVAL, NULL);

    /* default string max is 255 bytes */
    static const struct ts_json_field dflt[] = {{"s", TS_J_STRING, false, 0, 0}, {NULL, 0, false, 0, 0}};
    json_t *o = json_object();
    char big[300];
    memset(big, 'x', 255);
    big[255] = '\0';
    json_object_set_new(o, "s", json_string(big));
    assert_int_equal(ts_json_check(o, dflt, true, NULL), 0);
    big[255] = 'x';
    big[256] = '\0';
    json_object_set_new(o, "s", json_string(big));
    struct ts_err err;
    assert_int_equal(ts_json_check(o, dflt, true, &err), -TS_EINVAL);
    assert_non_null(strstr(err.msg, "is too long"));
    assert_true(strlen(err.msg) < 300); /* long values are shortened in messages */
    json_decref(o);

    /* long multi-byte values are shortened without splitting a character */
    o = json_object();
    char uni[2 * 300 + 1];
    for (int i = 0; i < 300; i++) memcpy(uni + 2 * i, "\xc3\xa9", 2);
    uni[600] = '\0';
    json_object_set_new(o, "s", json_string(uni + 1 + 1));
    json_object_set_new(o, uni, json_integer(1));
    assert_int_equal(ts_json_check(o, dflt, false, &err), -TS_EINVAL);
    assert_true(ts_utf8_valid(err.msg, strlen(err.msg)));
    json_object_del(o, "s");
    assert_int_equal(ts_json_check(o, dflt, true, &err), -TS_EINVAL);
    assert_non_null(strstr(err.msg, "Additional properties"));
    assert_true(ts_utf8_valid(err.msg, strlen(err.msg)));
    json_decref(o);

    /* not an object at all */
    o = json_array();
    assert_int_equal(ts_json_check(o, server_fields, true, &err), -TS_EINVAL);
    assert_non_null(strstr(err.msg, "is not of type 'object'"));
    json_decref(o);
    assert_int_equal(ts_json_check(NULL, server_fields, true, &err), -TS_EINVAL);
    /* no field table: strict rejects everything, lax accepts */
    o = parse_ok("{\"a\": 1}");
    assert_int_equal(ts_json_check(o, NULL, false, NULL), 0);
    assert_int_equal(ts_json_check(o, NULL, true, NULL), -TS_EINVAL);
    json_decref(o);
}

static void test_body_object(void **state)
{
    (void)state;
    json_t *body = parse_ok("{\"user\": {\"name\": \"u\"}, \"bad\": [1]}");
    json_t *user = NULL;
    struct ts_err err;
    assert_int_equal(ts_json_body_object(body, "user", &user, &err), 0);
    assert_string_equal(ts_json_str(user, "name", NULL), "u");
    assert_int_equal(ts_json_body_object(body, "project", &user, &err), -TS_EINVAL);
    assert_null(user);
    assert_string_equal(err.msg, "'project' is a required property");
    assert_int_equal(ts_json_body_object(body, "bad", &user, &err), -TS_EINVAL);
    assert_string_equal(err.msg, "Invalid input for field/attribute bad. Value: [1]. [1] is not of type 'object'");
    json_decref(body);
    body = json_string("x");
    assert_int_equal(ts_json_body_object(body, "user", &user, NULL), -TS_EINVAL);
    json_decref(body);
    assert_int_equal(ts_json_body_object(NULL, "user", &user, NULL), -TS_EINVAL);
}

static void test_accessors(void **state)
{
    (void)state;
    json_t *o = parse_ok("{\"s\": \"str\", \"i\": 42, \"big\": 9007199254740993, \"t\": true, \"f\": false,"
                         " \"n\": null, \"ts\": \"TRUE\", \"fs\": \"false\", \"r\": 1.5}");
    assert_string_equal(ts_json_str(o, "s", NULL), "str");
    assert_string_equal(ts_json_str(o, "n", "def"), "def");
    assert_string_equal(ts_json_str(o, "missing", "def"), "def");
    assert_string_equal(ts_json_str(o, "i", "def"), "def");
    assert_null(ts_json_str(NULL, "s", NULL));
    assert_int_equal(ts_json_int(o, "i", 0), 42);
    assert_true(ts_json_int(o, "big", 0) == 9007199254740993LL);
    assert_int_equal(ts_json_int(o, "n", 7), 7);
    assert_int_equal(ts_json_int(o, "s", 7), 7);
    assert_int_equal(ts_json_int(o, "r", 7), 7);
    assert_true(ts_json_bool(o, "t", false));
    assert_false(ts_json_bool(o, "f", true));
    assert_true(ts_json_bool(o, "ts", false));
    assert_false(ts_json_bool(o, "fs", true));
    assert_true(ts_json_bool(o, "n", true));
    assert_false(ts_json_bool(o, "s", false));
    json_decref(o);
}

static void test_builders(void **state)
{
    (void)state;
    json_t *o = json_object();
    ts_json_set_str(o, "name", "vm");
    ts_json_set_str(o, "desc", NULL);
    ts_json_set_str(o, "bad", "a\xff" "b\xc3\xa9");
    char *s = ts_json_dump(o);
    assert_string_equal(s, "{\"name\":\"vm\",\"desc\":null,\"bad\":\"a?b\xc3\xa9\"}");
    free(s);
    ts_json_set_str(o, "name", "other");
    assert_string_equal(ts_json_str(o, "name", NULL), "other");
    json_decref(o);
    s = ts_json_dump(NULL);
    assert_string_equal(s, "null");
    free(s);
    json_t *str = json_string("x");
    s = ts_json_dump(str);
    assert_string_equal(s, "\"x\"");
    free(s);
    json_decref(str);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),       cmocka_unit_test(test_depth),
        cmocka_unit_test(test_check),       cmocka_unit_test(test_body_object),
        cmocka_unit_test(test_accessors),   cmocka_unit_test(test_builders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
