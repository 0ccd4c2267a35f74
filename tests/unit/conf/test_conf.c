/*
 * test_conf.c: unit tests for src/conf: oslo-style parsing (comments, "key=value" spacing,
 * '=' in values, continuation lines, quotes), [DEFAULT] fallback, typed getters,
 * line-numbered errors, file loading and dump round trips.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "conf/ts_conf.h"

static struct ts_conf *parse_ok(const char *text)
{
    struct ts_conf *c = ts_conf_new();
    struct ts_err err = {0};
    int rc = ts_conf_parse(c, text, strlen(text), &err);
    if (rc != 0) fail_msg("parse failed: %s", err.msg);
    return c;
}

static void test_basic(void **state)
{
    (void)state;
    struct ts_conf *c = parse_ok("# comment\n"
                                 "; other comment\n"
                                 "[DEFAULT]\n"
                                 "debug = true\n"
                                 "workers=4\n"
                                 "\n"
                                 "[database]\n"
                                 "connection = sqlite:////var/lib/ts/a.db?x=1&y=2\n"
                                 "  # not a comment inside a value? no: a continuation\n"
                                 "[identity]\n"
                                 "Key = Case\n"
                                 "empty =\n"
                                 "hash = abc # not stripped\n"
                                 "ratio = 1.5\n"
                                 "colon: yes\n"
                                 "spaced   key   =   v  a  l   \n");
    assert_string_equal(ts_conf_get(c, "DEFAULT", "debug", NULL), "true");
    assert_string_equal(ts_conf_get(c, NULL, "workers", NULL), "4");
    assert_string_equal(ts_conf_get(c, "database", "connection", NULL),
                        "sqlite:////var/lib/ts/a.db?x=1&y=2\n# not a comment inside a value? no: a continuation");
    assert_string_equal(ts_conf_get(c, "identity", "Key", NULL), "Case");
    assert_null(ts_conf_get(c, "identity", "key", NULL)); /* keys are case-sensitive */
    assert_string_equal(ts_conf_get(c, "identity", "empty", "def"), "");
    assert_string_equal(ts_conf_get(c, "identity", "hash", NULL), "abc # not stripped");
    assert_string_equal(ts_conf_get(c, "identity", "colon", NULL), "yes");
    assert_string_equal(ts_conf_get(c, "identity", "spaced   key", NULL), "v  a  l");
    assert_true(ts_conf_get_double(c, "identity", "ratio", 0) == 1.5);
    assert_true(ts_conf_get_double(c, "identity", "hash", 2.5) == 2.5);
    assert_true(ts_conf_get_double(c, "identity", "missing", 3.5) == 3.5);
    assert_null(ts_conf_get(c, "nosuch", "nosuch", NULL));
    assert_string_equal(ts_conf_get(c, "nosuch", "nosuch", "d"), "d");
    ts_conf_free(c);
    ts_conf_free(NULL);
}

static void test_default_fallback(void **state)
{
    (void)state;
    struct ts_conf *c = parse_ok("[DEFAULT]\n"
                                 "host = 127.0.0.1\n"
                                 "port = 1\n"
                                 "[image]\n"
                                 "port = 9292\n");
    assert_string_equal(ts_conf_get(c, "image", "port", NULL), "9292");
    assert_string_equal(ts_conf_get(c, "image", "host", NULL), "127.0.0.1");
    assert_string_equal(ts_conf_get(c, "compute", "host", NULL), "127.0.0.1");
    assert_string_equal(ts_conf_get(c, "DEFAULT", "port", NULL), "1");
    assert_int_equal(ts_conf_get_int(c, "image", "port", 0), 9292);
    assert_int_equal(ts_conf_get_int(c, "compute", "port", 0), 1);
    assert_int_equal(ts_conf_get_int(c, "image", "host", 77), 77); /* not a number */
    ts_conf_free(c);
}

static void test_continuation(void **state)
{
    (void)state;
    struct ts_conf *c = parse_ok("[s]\n"
                                 "multi = first\n"
                                 "    second = with equals\n"
                                 "\tthird\n"
                                 "next = x\n"
                                 "blank = a\n"
                                 "\n"
                                 "after = b\n");
    assert_string_equal(ts_conf_get(c, "s", "multi", NULL), "first\nsecond = with equals\nthird");
    assert_string_equal(ts_conf_get(c, "s", "next", NULL), "x");
    assert_string_equal(ts_conf_get(c, "s", "blank", NULL), "a");
    assert_string_equal(ts_conf_get(c, "s", "after", NULL), "b");
    ts_conf_free(c);

    /* CRLF files and a final line without newline */
    c = parse_ok("[s]\r\na = 1\r\n  2\r\nb = 3");
    assert_string_equal(ts_conf_get(c, "s", "a", NULL), "1\n2");
    assert_string_equal(ts_conf_get(c, "s", "b", NULL), "3");
    ts_conf_free(c);
}

static void test_long_values_and_quotes(void **state)
{
    (void)state;
    size_t n = 100000;
    char *text = ts_malloc(n + 64);
    strcpy(text, "[s]\nlong = ");
    size_t off = strlen(text);
    for (size_t i = 0; i < n; i++) text[off + i] = (i % 7 == 3) ? '=' : 'a' + (char)(i % 26);
    strcpy(text + off + n, "\nq1 = \"quoted  \"\nq2 = 'x'\nq3 = \"mismatch'\nq4 = \"\n");
    struct ts_conf *c = parse_ok(text);
    const char *v = ts_conf_get(c, "s", "long", NULL);
    assert_non_null(v);
    assert_int_equal(strlen(v), n);
    assert_memory_equal(v, text + off, n);
    assert_string_equal(ts_conf_get(c, "s", "q1", NULL), "quoted  ");
    assert_string_equal(ts_conf_get(c, "s", "q2", NULL), "x");
    assert_string_equal(ts_conf_get(c, "s", "q3", NULL), "\"mismatch'");
    assert_string_equal(ts_conf_get(c, "s", "q4", NULL), "\"");
    ts_conf_free(c);
    free(text);
}

static void test_bool_and_set(void **state)
{
    (void)state;
    struct ts_conf *c = parse_ok("[a]\nt = True\nf = off\nbad = perhaps\n");
    assert_true(ts_conf_get_bool(c, "a", "t", false));
    assert_false(ts_conf_get_bool(c, "a", "f", true));
    assert_true(ts_conf_get_bool(c, "a", "bad", true));
    assert_false(ts_conf_get_bool(c, "a", "missing", false));
    ts_conf_set(c, "a", "t", "no");
    assert_false(ts_conf_get_bool(c, "a", "t", true));
    ts_conf_set(c, "new", "k", "v");
    assert_string_equal(ts_conf_get(c, "new", "k", NULL), "v");
    ts_conf_set(c, NULL, "dk", "dv");
    assert_string_equal(ts_conf_get(c, "new", "dk", NULL), "dv");
    ts_conf_set(c, "a", "n", NULL);
    assert_string_equal(ts_conf_get(c, "a", "n", "x"), "");
    /* a later assignment replaces, and a repeated section merges */
    struct ts_err err;
    const char *more = "[a]\nt = yes\n[b]\nz = 1\n[a]\nu = 2\n";
    assert_int_equal(ts_conf_parse(c, more, strlen(more), &err), 0);
    assert_true(ts_conf_get_bool(c, "a", "t", false));
    assert_string_equal(ts_conf_get(c, "a", "u", NULL), "2");
    ts_conf_free(c);
}

static void expect_error(const char *text, const char *needle)
{
    struct ts_conf *c = ts_conf_new();
    struct ts_err err = {0};
    int rc = ts_conf_parse(c, text, strlen(text), &err);
    if (rc != -TS_EINVAL) fail_msg("accepted bad config: %s", text);
    if (!strstr(err.msg, needle)) fail_msg("message '%s' lacks '%s'", err.msg, needle);
    ts_conf_free(c);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("[s]\na = 1\n[broken\n", "line 3: Invalid section");
    expect_error("[s]\na = 1\n\njust words\n", "line 4: No ':' or '='");
    expect_error("  leading continuation\n", "line 1: Unexpected continuation");
    expect_error("[s]\n# c\n  cont after comment\n", "line 3: Unexpected continuation");
    expect_error("[s]\n= value\n", "line 2: Key cannot be empty");
    expect_error("key = value\n", "line 1: Assignment before any [section]");
    expect_error("[]\n", "line 1: Empty section name");
    /* a NUL inside the given length */
    struct ts_conf *c = ts_conf_new();
    struct ts_err err = {0};
    assert_int_equal(ts_conf_parse(c, "[s]\na = b\0c\n", 12, &err), -TS_EINVAL);
    assert_non_null(strstr(err.msg, "line 2"));
    /* empty input is fine */
    assert_int_equal(ts_conf_parse(c, "", 0, &err), 0);
    assert_int_equal(ts_conf_parse(c, NULL, 0, NULL), 0);
    /* not NUL-terminated: only len bytes count */
    assert_int_equal(ts_conf_parse(c, "[s]\nk = v[garbage", 9, NULL), 0);
    assert_string_equal(ts_conf_get(c, "s", "k", NULL), "v");
    ts_conf_free(c);
}

static void test_load_and_dump(void **state)
{
    (void)state;
    char path[] = "/tmp/ts_test_conf_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "[DEFAULT]\nb = 2\na = 1\n[z]\nmulti = x\n  y\nq = \"  padded\"\n[m]\nk = v\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct ts_conf *c = ts_conf_new();
    struct ts_err err = {0};
    assert_int_equal(ts_conf_load(c, path, &err), 0);
    char *dump = ts_conf_dump(c);
    /* sections and keys in insertion order; multi-line values indented; padding quoted */
    assert_string_equal(dump, "[DEFAULT]\nb = 2\na = 1\n\n[z]\nmulti = x\n    y\nq = \"  padded\"\n\n[m]\nk = v\n");
    struct ts_conf *c2 = ts_conf_new();
    assert_int_equal(ts_conf_parse(c2, dump, strlen(dump), &err), 0);
    char *dump2 = ts_conf_dump(c2);
    assert_string_equal(dump, dump2);
    assert_string_equal(ts_conf_get(c2, "z", "q", NULL), "  padded");
    free(dump);
    free(dump2);
    ts_conf_free(c2);
    ts_conf_free(c);

    /* found by fuzzing: a key made of odd whitespace and '#' must not dump as a comment */
    c = ts_conf_new();
    assert_int_equal(ts_conf_parse(c, "[w]\n\v\v#\v(+\v=i[s", 15, &err), 0);
    assert_string_equal(ts_conf_get(c, "w", "\v\v#\v(+\v", NULL), "i[s");
    dump = ts_conf_dump(c);
    c2 = ts_conf_new();
    assert_int_equal(ts_conf_parse(c2, dump, strlen(dump), &err), 0);
    assert_string_equal(ts_conf_get(c2, "w", "\v\v#\v(+\v", NULL), "i[s");
    free(dump);
    ts_conf_free(c2);
    ts_conf_free(c);

    /* an error from a file names the file and the line */
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "[s]\nnope\n", 9), 9);
    close(fd);
    c = ts_conf_new();
    assert_int_equal(ts_conf_load(c, path, &err), -TS_EINVAL);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "line 2"));
    ts_conf_free(c);
    unlink(path);

    c = ts_conf_new();
    assert_int_equal(ts_conf_load(c, "/nonexistent/ts.conf", &err), -TS_ENOTFOUND);
    assert_non_null(strstr(err.msg, "/nonexistent/ts.conf"));
    dump = ts_conf_dump(c);
    assert_string_equal(dump, "");
    free(dump);
    ts_conf_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),        cmocka_unit_test(test_default_fallback),
        cmocka_unit_test(test_continuation), cmocka_unit_test(test_long_values_and_quotes),
        cmocka_unit_test(test_bool_and_set), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_load_and_dump),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
