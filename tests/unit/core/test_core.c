/*
 * test_core.c: unit tests for src/core: error mapping, pools and cleanups, bounded
 * buffers, log format, uuid, time round trips, URL coding, UTF-8, number parsing, files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ts_core.h"

static void test_err_status(void **state)
{
    (void)state;
    assert_int_equal(ts_err_status(TS_EINVAL), 400);
    assert_int_equal(ts_err_status(-TS_EINVAL), 400);
    assert_int_equal(ts_err_status(-TS_EUNAUTH), 401);
    assert_int_equal(ts_err_status(-TS_ENOTFOUND), 404);
    assert_int_equal(ts_err_status(-TS_ECONFLICT), 409);
    assert_int_equal(ts_err_status(-TS_ETOOBIG), 413);
    assert_int_equal(ts_err_status(-TS_EQUOTA), 403);
    assert_int_equal(ts_err_status(-TS_ENOMEM), 500);
    assert_int_equal(ts_err_status(-TS_EUNAVAIL), 503);
    assert_int_equal(ts_err_status(-TS_ETIMEDOUT), 504);
    assert_int_equal(ts_err_status(0), 200);
    assert_int_equal(ts_err_status(9999), 500);
    assert_int_equal(ts_err_status(-9999), 500);
    assert_string_equal(ts_err_title(404), "Not Found");
    assert_string_equal(ts_err_title(413), "Request Entity Too Large");
    assert_string_equal(ts_err_title(202), "Accepted");
    assert_string_equal(ts_err_title(409), "Conflict");
    assert_non_null(ts_err_title(599));
}

static void test_err_set(void **state)
{
    (void)state;
    struct ts_err err;
    ts_err_clear(&err);
    assert_int_equal(ts_err_set(&err, TS_ENOTFOUND, "image %s not found", "abc"), -TS_ENOTFOUND);
    assert_int_equal(err.code, TS_ENOTFOUND);
    assert_int_equal(err.status, 0);
    assert_string_equal(err.msg, "image abc not found");
    assert_int_equal(ts_err_set(NULL, TS_EINVAL, "x"), -TS_EINVAL);
    assert_int_equal(ts_err_set_full(&err, TS_EQUOTA, 413, "OverQuota", "over %d", 5), -TS_EQUOTA);
    assert_int_equal(err.status, 413);
    assert_string_equal(err.type, "OverQuota");
    assert_string_equal(err.msg, "over 5");
    /* negative codes are accepted too */
    assert_int_equal(ts_err_set(&err, -TS_EIO, "io"), -TS_EIO);
    assert_int_equal(err.code, TS_EIO);
    ts_err_set_full(&err, TS_EINVAL, 0, NULL, "y");
    assert_string_equal(err.type, "");
    ts_err_clear(&err);
    assert_int_equal(err.code, 0);
    assert_string_equal(err.msg, "");
    ts_err_clear(NULL);
}

static void test_err_truncation_keeps_utf8(void **state)
{
    (void)state;
    struct ts_err err;
    char big[1200];
    /* "é" is two bytes: 600 of them cannot fit in 512 bytes */
    for (int i = 0; i < 600; i++) memcpy(big + 2 * i, "\xc3\xa9", 2);
    big[1200 - 1] = '\0';
    big[1198] = '\0';
    ts_err_set(&err, TS_EINVAL, "x%s", big);
    assert_true(strlen(err.msg) < TS_ERR_MSG_MAX);
    assert_true(ts_utf8_valid(err.msg, strlen(err.msg)));
    /* invalid bytes from client text are replaced, valid ones kept */
    ts_err_set(&err, TS_ENOTFOUND, "image %s not found", "a\xff\xc3\xa9\xc3(\xed\xa0\x80z");
    assert_string_equal(err.msg, "image a?\xc3\xa9?(???z not found");
    ts_err_set_full(&err, TS_EINVAL, 0, "T\x80", "m");
    assert_string_equal(err.type, "T?");
}

static void test_alloc(void **state)
{
    (void)state;
    char *s = ts_strdup("hello");
    assert_string_equal(s, "hello");
    free(s);
    s = ts_strndup("hello", 3);
    assert_string_equal(s, "hel");
    free(s);
    s = ts_strndup("hi", 10);
    assert_string_equal(s, "hi");
    free(s);
    s = ts_asprintf("%d-%s", 42, "x");
    assert_string_equal(s, "42-x");
    free(s);
    int *p = ts_calloc(4, sizeof(int));
    assert_int_equal(p[3], 0);
    p = ts_realloc(p, 100 * sizeof(int));
    free(p);
}

static int cleanup_counter;
static int cleanup_order[4];
static void cleanup_fn(void *arg)
{
    cleanup_order[cleanup_counter++] = (int)(intptr_t)arg;
}
static void free_fn(void *arg)
{
    free(arg);
}

static void test_pool(void **state)
{
    (void)state;
    struct ts_pool *pool = ts_pool_new();
    cleanup_counter = 0;
    /* many small and some large allocations, all zeroed and aligned */
    for (int i = 0; i < 2000; i++) {
        size_t n = (size_t)(i % 97) + 1;
        unsigned char *p = ts_pool_alloc(pool, n);
        assert_int_equal((uintptr_t)p % 16, 0);
        for (size_t k = 0; k < n; k++) assert_int_equal(p[k], 0);
        memset(p, 0xab, n);
    }
    unsigned char *big = ts_pool_alloc(pool, 1 << 20);
    assert_int_equal(big[(1 << 20) - 1], 0);
    memset(big, 1, 1 << 20);
    assert_non_null(ts_pool_alloc(pool, 0));
    assert_string_equal(ts_pool_strdup(pool, "abc"), "abc");
    assert_string_equal(ts_pool_strdup(pool, NULL), "");
    assert_string_equal(ts_pool_strndup(pool, "abcdef", 2), "ab");
    assert_string_equal(ts_pool_printf(pool, "%s/%d", "v2", 7), "v2/7");
    ts_pool_cleanup(pool, cleanup_fn, (void *)1);
    ts_pool_cleanup(pool, cleanup_fn, (void *)2);
    ts_pool_cleanup(pool, free_fn, ts_malloc(10));
    assert_int_equal(cleanup_counter, 0);
    ts_pool_free(pool);
    /* cleanups run, last registered first */
    assert_int_equal(cleanup_counter, 2);
    assert_int_equal(cleanup_order[0], 2);
    assert_int_equal(cleanup_order[1], 1);
    ts_pool_free(NULL);
}

static void test_buf(void **state)
{
    (void)state;
    struct ts_buf b;
    ts_buf_init(&b, 16);
    assert_string_equal(ts_buf_cstr(&b), "");
    assert_int_equal(ts_buf_appends(&b, "0123456789"), 0);
    assert_int_equal(ts_buf_printf(&b, "%s", "abcdef"), 0);
    assert_int_equal(b.len, 16);
    assert_string_equal(b.data, "0123456789abcdef");
    /* cap: one more byte is too big, and the buffer is unchanged */
    assert_int_equal(ts_buf_append(&b, "x", 1), -TS_ETOOBIG);
    assert_int_equal(ts_buf_printf(&b, "%d", 1), -TS_ETOOBIG);
    assert_int_equal(b.len, 16);
    assert_string_equal(ts_buf_cstr(&b), "0123456789abcdef");
    assert_int_equal(ts_buf_append(&b, "", 0), 0);
    /* a huge length must not overflow */
    assert_int_equal(ts_buf_append(&b, "x", SIZE_MAX), -TS_ETOOBIG);
    ts_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(ts_buf_cstr(&b), "");
    assert_int_equal(ts_buf_append(&b, "a\0b", 3), 0);
    size_t len = 0;
    char *s = ts_buf_steal(&b, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(s, "a\0b", 4);
    free(s);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    s = ts_buf_steal(&b, &len);
    assert_string_equal(s, "");
    assert_int_equal(len, 0);
    free(s);
    ts_buf_free(&b);

    /* max 0 means 1 GiB */
    ts_buf_init(&b, 0);
    assert_int_equal(b.max, (size_t)1 << 30);
    for (int i = 0; i < 10000; i++) assert_int_equal(ts_buf_printf(&b, "%05d", i), 0);
    assert_int_equal(b.len, 50000);
    assert_memory_equal(b.data + 49995, "09999", 5);
    assert_int_equal(ts_buf_append(&b, "x", ((size_t)1 << 30)), -TS_ETOOBIG);
    ts_buf_free(&b);
    ts_buf_free(&b);
}

static void test_log(void **state)
{
    (void)state;
    char path[] = "/tmp/ts_test_log_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    ts_log_set_file(path);
    ts_log_set_level(TS_LOG_INFO);
    ts_debug("core", "hidden %d", 1);
    ts_info("core", "hello %s", "world");
    ts_warn("image", "two\nlines");
    ts_log_set_file(NULL);
    char *text = NULL;
    size_t len;
    assert_int_equal(ts_file_read(path, 4096, &text, &len), 0);
    unlink(path);
    /* "2026-11-25 19:20:00.123 INFO core: hello world" */
    assert_null(strstr(text, "hidden"));
    char *nl = strchr(text, '\n');
    assert_non_null(nl);
    *nl = '\0';
    assert_int_equal(strlen(text), 23 + strlen(" INFO core: hello world"));
    assert_int_equal(text[4], '-');
    assert_int_equal(text[10], ' ');
    assert_int_equal(text[19], '.');
    assert_string_equal(text + 23, " INFO core: hello world");
    assert_string_equal(nl + 1 + 23, " WARNING image: two lines\n");
    free(text);
    ts_log_set_level(TS_LOG_WARN);
    ts_info("core", "not shown on stderr");
    ts_log_set_level(TS_LOG_INFO);
}

static void *log_thread(void *arg)
{
    for (int i = 0; i < 200; i++) ts_info("thread", "worker %d line %d", (int)(intptr_t)arg, i);
    return NULL;
}

static void test_log_threads(void **state)
{
    (void)state;
    char path[] = "/tmp/ts_test_logt_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    ts_log_set_file(path);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&th[i], NULL, log_thread, (void *)(intptr_t)i), 0);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    ts_log_set_file(NULL);
    char *text = NULL;
    size_t len;
    assert_int_equal(ts_file_read(path, 1 << 20, &text, &len), 0);
    unlink(path);
    /* 800 whole lines, none interleaved */
    int lines = 0;
    for (char *line = text, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
        *nl = '\0';
        assert_true(strlen(line) > 23);
        char *first = strstr(line, " INFO thread: worker ");
        assert_ptr_equal(first, line + 23);
        assert_null(strstr(first + 2, "INFO"));
        lines++;
    }
    assert_int_equal(lines, 800);
    free(text);
}

static void test_uuid(void **state)
{
    (void)state;
    char a[TS_UUID_LEN + 1], b[TS_UUID_LEN + 1], h[33];
    ts_uuid(a);
    ts_uuid(b);
    assert_int_equal(strlen(a), 36);
    assert_string_not_equal(a, b);
    assert_true(ts_uuid_valid(a));
    assert_int_equal(a[14], '4');
    assert_non_null(strchr("89ab", a[19]));
    for (int i = 0; i < 36; i++) assert_false(a[i] >= 'A' && a[i] <= 'Z');
    ts_uuid_hex(h);
    assert_int_equal(strlen(h), 32);
    assert_true(ts_uuid_valid(h));
    assert_false(ts_uuid_valid(NULL));
    assert_false(ts_uuid_valid(""));
    assert_false(ts_uuid_valid("not-a-uuid"));
    assert_false(ts_uuid_valid("0123456789abcdef0123456789abcdeg"));
    assert_false(ts_uuid_valid("01234567-89ab-cdef-0123-456789abcdef0"));
    assert_false(ts_uuid_valid("0123456789-ab-cdef-0123-456789abcdef"));
    assert_true(ts_uuid_valid("01234567-89AB-CDEF-0123-456789ABCDEF"));
    unsigned char r[64] = {0};
    ts_random(r, sizeof(r));
    int nz = 0;
    for (size_t i = 0; i < sizeof(r); i++) nz += r[i] != 0;
    assert_true(nz > 32);
    ts_random(r, 0);
}

static void test_time(void **state)
{
    (void)state;
    char out[32];
    ts_time_iso(0, 0, out);
    assert_string_equal(out, "1970-01-01T00:00:00Z");
    ts_time_iso(1795634400.5, 6, out);
    assert_string_equal(out, "2026-11-25T19:20:00.500000Z");
    ts_time_iso(1795634400.9999999, 6, out); /* rounds up into the next second */
    assert_string_equal(out, "2026-11-25T19:20:01.000000Z");
    ts_time_iso(1795634400.123456, 3, out);
    assert_string_equal(out, "2026-11-25T19:20:00.123Z");

    ts_time_iso(1e300, 0, out); /* out of range: the epoch rather than undefined behaviour */
    assert_string_equal(out, "1970-01-01T00:00:00Z");
    ts_time_iso(-1e300, 6, out);
    assert_string_equal(out, "1970-01-01T00:00:00.000000Z");
    ts_time_iso(253402300799.0, 0, out);
    assert_string_equal(out, "9999-12-31T23:59:59Z");

    double t;
    assert_int_equal(ts_time_parse("2026-11-25T19:20:00Z", &t), 0);
    ts_time_iso(t, 0, out);
    assert_string_equal(out, "2026-11-25T19:20:00Z");
    assert_int_equal(ts_time_parse("2026-11-25T19:20:00.123456Z", &t), 0);
    ts_time_iso(t, 6, out);
    assert_string_equal(out, "2026-11-25T19:20:00.123456Z");
    double base;
    assert_int_equal(ts_time_parse("2026-11-25T19:20:00", &base), 0); /* no zone: UTC */
    assert_int_equal(ts_time_parse("2026-11-25T19:20:00+00:00", &t), 0);
    assert_true(t == base);
    assert_int_equal(ts_time_parse("2026-11-25T21:20:00+02:00", &t), 0);
    assert_true(t == base);
    assert_int_equal(ts_time_parse("2026-11-25T14:20:00-0500", &t), 0);
    assert_true(t == base);
    assert_int_equal(ts_time_parse("2026-11-25 19:20:00", &t), 0);
    assert_true(t == base);
    assert_int_equal(ts_time_parse("2026-11-25T19:20Z", &t), 0);
    assert_true(t == base);
    assert_int_equal(ts_time_parse("2026-11-25", &t), 0);
    assert_true(t == base - 19 * 3600 - 20 * 60);

    /* round trip of now */
    double now = ts_now();
    ts_time_iso(now, 6, out);
    assert_int_equal(ts_time_parse(out, &t), 0);
    assert_true(t - now < 1e-5 && now - t < 1e-5);
    assert_true(now > 1.7e9);
    double m1 = ts_mono(), m2 = ts_mono();
    assert_true(m2 >= m1);

    const char *bad[] = {"", "2026", "2026-11-25T", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z",
                         "2026-11-25T24:00:00Z", "2026-11-25T19:61:00Z", "2026-11-25T19:20:00.Z",
                         "2026-11-25T19:20:00ZZ", "2026-11-25T19:20:00+2", "2026-11-25T19:20:00 junk",
                         "x026-11-25T19:20:00Z", "2026-11-25T19:20:00+25:00", "2026/11/25"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (ts_time_parse(bad[i], &t) != -TS_EINVAL) fail_msg("accepted bad time '%s'", bad[i]);
    }
    assert_int_equal(ts_time_parse(NULL, &t), -TS_EINVAL);
    assert_int_equal(ts_time_parse("2024-02-29T00:00:00Z", &t), 0);
    assert_int_equal(ts_time_parse("2023-02-29T00:00:00Z", &t), -TS_EINVAL);
}

static void test_strings(void **state)
{
    (void)state;
    assert_true(ts_streq(NULL, NULL));
    assert_false(ts_streq("a", NULL));
    assert_false(ts_streq(NULL, "a"));
    assert_true(ts_streq("abc", "abc"));
    assert_false(ts_streq("abc", "abd"));
    assert_true(ts_strcaseeq("X-Auth-Token", "x-auth-token"));
    assert_false(ts_strcaseeq("a", NULL));
    assert_true(ts_startswith("/v2/images", "/v2/"));
    assert_false(ts_startswith("/v2", "/v2/"));
    assert_true(ts_startswith("abc", ""));
    assert_false(ts_startswith(NULL, "a"));
    assert_true(ts_endswith("file.json", ".json"));
    assert_false(ts_endswith("json", ".json"));
    assert_false(ts_endswith(NULL, "x"));

    char hex[9];
    ts_hex((const unsigned char *)"\x00\xff\x10\xab", 4, hex);
    assert_string_equal(hex, "00ff10ab");
}

static void test_url(void **state)
{
    (void)state;
    struct ts_pool *pool = ts_pool_new();
    assert_string_equal(ts_url_decode(pool, "a%20b%2Fc+d", 11), "a b/c+d");
    assert_string_equal(ts_url_decode(pool, "%e2%82%ac", 9), "\xe2\x82\xac");
    assert_string_equal(ts_url_decode(pool, "abcdef", 3), "abc");
    assert_string_equal(ts_url_decode(pool, "", 0), "");
    assert_null(ts_url_decode(pool, "%", 1));
    assert_null(ts_url_decode(pool, "%2", 2));
    assert_null(ts_url_decode(pool, "ab%2", 4));
    assert_null(ts_url_decode(pool, "%zz", 3));
    assert_null(ts_url_decode(pool, "%g0", 3));
    assert_null(ts_url_decode(pool, "a%00b", 5));
    assert_null(ts_url_decode(pool, "a\0b", 3));
    assert_null(ts_url_decode(pool, "%41%", 4));
    /* len stops before a bad escape */
    assert_string_equal(ts_url_decode(pool, "%41%", 3), "A");
    assert_null(ts_url_decode(pool, NULL, 0));

    assert_string_equal(ts_url_encode(pool, "a b/c?d=é~._-", false), "a%20b%2Fc%3Fd%3D%C3%A9~._-");
    assert_string_equal(ts_url_encode(pool, "a b/c", true), "a%20b/c");
    assert_string_equal(ts_url_encode(pool, "", true), "");
    const char *orig = "container/obj name %+&?#";
    char *enc = ts_url_encode(pool, orig, true);
    assert_string_equal(ts_url_decode(pool, enc, strlen(enc)), orig);
    ts_pool_free(pool);
}

static void test_utf8(void **state)
{
    (void)state;
#define U(s) ts_utf8_valid(s, sizeof(s) - 1)
    assert_true(U(""));
    assert_true(U("plain ascii"));
    assert_true(U("caf\xc3\xa9"));
    assert_true(U("\xe2\x82\xac"));
    assert_true(U("\xf0\x9f\x98\x80"));
    assert_true(U("\xef\xbf\xbf"));
    assert_true(U("\xf4\x8f\xbf\xbf"));
    assert_false(U("a\0b"));
    assert_false(U("\x80"));
    assert_false(U("\xc3"));
    assert_false(U("\xc3\x28"));
    assert_false(U("\xc0\xaf"));         /* overlong '/' */
    assert_false(U("\xe0\x80\xaf"));     /* overlong */
    assert_false(U("\xf0\x80\x80\xaf")); /* overlong */
    assert_false(U("\xed\xa0\x80"));     /* surrogate */
    assert_false(U("\xf4\x90\x80\x80")); /* > U+10FFFF */
    assert_false(U("\xf5\x80\x80\x80"));
    assert_false(U("\xff"));
    assert_false(U("\xe2\x82"));
    assert_false(U("ok\xf0\x9f\x98"));
#undef U
    assert_true(ts_utf8_valid(NULL, 0));
    /* len bounds the check: a truncated view of a valid string is judged by len */
    assert_false(ts_utf8_valid("\xe2\x82\xac", 2));
}

static void test_numbers(void **state)
{
    (void)state;
    int64_t v;
    assert_int_equal(ts_parse_int64("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(ts_parse_int64("-42", &v), 0);
    assert_int_equal(v, -42);
    assert_int_equal(ts_parse_int64("+7", &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(ts_parse_int64("9223372036854775807", &v), 0);
    assert_true(v == INT64_MAX);
    assert_int_equal(ts_parse_int64("-9223372036854775808", &v), 0);
    assert_true(v == INT64_MIN);
    assert_int_equal(ts_parse_int64("9223372036854775808", &v), -TS_EINVAL);
    assert_int_equal(ts_parse_int64("", &v), -TS_EINVAL);
    assert_int_equal(ts_parse_int64(NULL, &v), -TS_EINVAL);
    assert_int_equal(ts_parse_int64(" 1", &v), -TS_EINVAL);
    assert_int_equal(ts_parse_int64("1 ", &v), -TS_EINVAL);
    assert_int_equal(ts_parse_int64("1x", &v), -TS_EINVAL);
    assert_int_equal(ts_parse_int64("-", &v), -TS_EINVAL);
    assert_int_equal(ts_parse_int64("0x10", &v), -TS_EINVAL);
    assert_int_equal(ts_parse_int64("1.5", &v), -TS_EINVAL);

    bool b = false;
    const char *yes[] = {"true", "TRUE", "1", "yes", "On", "True"};
    const char *no[] = {"false", "0", "NO", "off", "False"};
    for (size_t i = 0; i < 6; i++) {
        b = false;
        assert_int_equal(ts_parse_bool(yes[i], &b), 0);
        assert_true(b);
    }
    for (size_t i = 0; i < 5; i++) {
        b = true;
        assert_int_equal(ts_parse_bool(no[i], &b), 0);
        assert_false(b);
    }
    assert_int_equal(ts_parse_bool("maybe", &b), -TS_EINVAL);
    assert_int_equal(ts_parse_bool("", &b), -TS_EINVAL);
    assert_int_equal(ts_parse_bool(NULL, &b), -TS_EINVAL);
}

static void test_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/ts_test_files_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *deep = ts_asprintf("%s/a/b//c/", dir);
    assert_int_equal(ts_mkdirs(deep, 0755), 0);
    assert_int_equal(ts_mkdirs(deep, 0755), 0); /* exists already */
    struct stat st;
    assert_int_equal(stat(deep, &st), 0);
    assert_true(S_ISDIR(st.st_mode));

    char *path = ts_asprintf("%s/a/file.txt", dir);
    assert_int_equal(ts_file_write_atomic(path, "hello\0world", 11, 0600), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(ts_file_read(path, 100, &data, &len), 0);
    assert_int_equal(len, 11);
    assert_memory_equal(data, "hello\0world", 12);
    free(data);
    assert_int_equal(ts_file_read(path, 10, &data, &len), -TS_ETOOBIG);
    assert_null(data);
    assert_int_equal(ts_file_read(path, 11, &data, &len), 0);
    free(data);
    /* replace, and an empty file */
    assert_int_equal(ts_file_write_atomic(path, NULL, 0, 0644), 0);
    assert_int_equal(ts_file_read(path, 0, &data, &len), 0);
    assert_int_equal(len, 0);
    assert_string_equal(data, "");
    free(data);

    /* a bigger file crosses the read chunking */
    size_t n = 100000;
    char *big = ts_malloc(n);
    for (size_t i = 0; i < n; i++) big[i] = (char)('a' + i % 26);
    assert_int_equal(ts_file_write_atomic(path, big, n, 0644), 0);
    assert_int_equal(ts_file_read(path, n, &data, &len), 0);
    assert_int_equal(len, n);
    assert_memory_equal(data, big, n);
    free(data);
    assert_int_equal(ts_file_read(path, n - 1, &data, &len), -TS_ETOOBIG);
    free(big);

    char *missing = ts_asprintf("%s/nope", dir);
    assert_int_equal(ts_file_read(missing, 10, &data, &len), -TS_ENOTFOUND);
    char *baddir = ts_asprintf("%s/nodir/x", dir);
    assert_int_equal(ts_file_write_atomic(baddir, "x", 1, 0644), -TS_EIO);
    /* mkdirs over a file fails */
    assert_int_equal(ts_mkdirs(path, 0755), -TS_EIO);
    assert_int_equal(ts_mkdirs("", 0755), -TS_EINVAL);

    char *cmd = ts_asprintf("rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(missing);
    free(baddir);
    free(path);
    free(deep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_status), cmocka_unit_test(test_err_set),
        cmocka_unit_test(test_err_truncation_keeps_utf8), cmocka_unit_test(test_alloc),
        cmocka_unit_test(test_pool), cmocka_unit_test(test_buf),
        cmocka_unit_test(test_log), cmocka_unit_test(test_log_threads),
        cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_time), cmocka_unit_test(test_strings),
        cmocka_unit_test(test_url), cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_numbers), cmocka_unit_test(test_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
