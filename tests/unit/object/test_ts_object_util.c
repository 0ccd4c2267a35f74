/*
 * test_ts_object_util.c: unit tests for the object service's pure helpers: Range parsing,
 * listing parameters and Accept negotiation, name/metadata limits, temp URL signatures,
 * HTTP dates and the tar reader (ustar, GNU long names, pax paths, corruption).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "object/ts_object_util.h"

/* ---- range ---- */
static void test_range_single(void **state)
{
    (void)state;
    struct ts_object_range r[4];
    assert_int_equal(ts_object_range_parse("bytes=0-9", 100, r, 4), 1);
    assert_int_equal(r[0].start, 0);
    assert_int_equal(r[0].len, 10);
    assert_int_equal(ts_object_range_parse("bytes=90-", 100, r, 4), 1);
    assert_int_equal(r[0].start, 90);
    assert_int_equal(r[0].len, 10);
    assert_int_equal(ts_object_range_parse("bytes=-5", 100, r, 4), 1);
    assert_int_equal(r[0].start, 95);
    assert_int_equal(r[0].len, 5);
    assert_int_equal(ts_object_range_parse("bytes=-500", 100, r, 4), 1);
    assert_int_equal(r[0].start, 0);
    assert_int_equal(r[0].len, 100);
    assert_int_equal(ts_object_range_parse("bytes=50-5000", 100, r, 4), 1);
    assert_int_equal(r[0].len, 50);
}

static void test_range_multi_and_bad(void **state)
{
    (void)state;
    struct ts_object_range r[4];
    assert_int_equal(ts_object_range_parse("bytes=0-1, 5-6,-2", 100, r, 4), 3);
    assert_int_equal(r[1].start, 5);
    assert_int_equal(r[2].start, 98);
    assert_int_equal(ts_object_range_parse("bytes=200-300", 100, r, 4), -TS_ERANGE);
    assert_int_equal(ts_object_range_parse("bytes=-0", 100, r, 4), -TS_ERANGE);
    assert_int_equal(ts_object_range_parse("bytes=5-1", 100, r, 4), 0);
    assert_int_equal(ts_object_range_parse("items=0-1", 100, r, 4), 0);
    assert_int_equal(ts_object_range_parse("bytes=abc", 100, r, 4), 0);
    assert_int_equal(ts_object_range_parse("bytes=-", 100, r, 4), 0);
    assert_int_equal(ts_object_range_parse("bytes=1-2,", 100, r, 4), 0);
    assert_int_equal(ts_object_range_parse("bytes=99999999999999999999999-", 100, r, 4), 0);
    assert_int_equal(ts_object_range_parse(NULL, 100, r, 4), 0);
}

/* ---- listing params ---- */
struct kv {
    const char *k[8];
    const char *v[8];
};
static const char *kv_get(void *ctx, const char *name)
{
    struct kv *kv = ctx;
    for (int i = 0; i < 8 && kv->k[i]; i++)
        if (strcmp(kv->k[i], name) == 0) return kv->v[i];
    return NULL;
}

static void test_listing_params(void **state)
{
    (void)state;
    struct ts_object_listing l;
    struct ts_err err;
    struct kv q1 = {{"prefix", "delimiter", "marker", "end_marker", "limit", "reverse", "format"},
                    {"a/", "/", "a/b", "a/z", "5", "true", "json"}};
    assert_int_equal(ts_object_listing_parse(kv_get, &q1, NULL, &l, &err), 0);
    assert_string_equal(l.prefix, "a/");
    assert_string_equal(l.delimiter, "/");
    assert_string_equal(l.marker, "a/b");
    assert_string_equal(l.end_marker, "a/z");
    assert_int_equal(l.limit, 5);
    assert_true(l.reverse);
    assert_int_equal(l.fmt, TS_OBJECT_FMT_JSON);

    struct kv q2 = {{"limit"}, {"10001"}};
    assert_int_equal(ts_object_listing_parse(kv_get, &q2, NULL, &l, &err), -TS_EPRECOND);
    struct kv q3 = {{"delimiter"}, {"ab"}};
    assert_int_equal(ts_object_listing_parse(kv_get, &q3, NULL, &l, &err), -TS_EPRECOND);
    struct kv q4 = {{"path"}, {"dir//"}};
    assert_int_equal(ts_object_listing_parse(kv_get, &q4, NULL, &l, &err), 0);
    assert_true(l.path_mode);
    assert_string_equal(l.prefix, "dir/");
    assert_int_equal(l.fmt, TS_OBJECT_FMT_PLAIN);
    assert_int_equal(l.limit, 10000);
    struct kv q5 = {{"limit"}, {"abc"}};
    assert_int_equal(ts_object_listing_parse(kv_get, &q5, "application/xml", &l, &err), 0);
    assert_int_equal(l.limit, 10000);
    assert_int_equal(l.fmt, TS_OBJECT_FMT_XML);
    struct kv q6 = {{NULL}, {NULL}};
    assert_int_equal(ts_object_listing_parse(kv_get, &q6, "image/png", &l, &err), -TS_ENOTACCEPT);
    assert_int_equal(ts_object_listing_parse(kv_get, &q6, "application/json;q=0.9, text/plain;q=0.5", &l, &err), 0);
    assert_int_equal(l.fmt, TS_OBJECT_FMT_JSON);
    assert_int_equal(ts_object_listing_parse(kv_get, &q6, "*/*", &l, &err), 0);
    assert_int_equal(l.fmt, TS_OBJECT_FMT_PLAIN);
    assert_int_equal(ts_object_listing_parse(kv_get, &q6, "text/*", &l, &err), 0);
    assert_int_equal(l.fmt, TS_OBJECT_FMT_PLAIN);
}

static void test_names_meta(void **state)
{
    (void)state;
    struct ts_err err;
    assert_int_equal(ts_object_name_check("abc", 3, 256, "Container", &err), 0);
    assert_int_equal(ts_object_name_check("a\xff", 2, 256, "Container", &err), -TS_EPRECOND);
    assert_int_equal(ts_object_name_check("a\0b", 3, 256, "Object", &err), -TS_EPRECOND);
    assert_int_equal(ts_object_name_check("abcd", 4, 3, "Object", &err), -TS_EINVAL);
    assert_int_equal(ts_object_name_check("", 0, 3, "Object", &err), -TS_EINVAL);
    struct ts_object_meta_check c = {0};
    assert_int_equal(ts_object_meta_check_add(&c, "k", "v", &err), 0);
    char big[300];
    memset(big, 'x', sizeof(big));
    big[299] = '\0';
    assert_int_equal(ts_object_meta_check_add(&c, "k", big, &err), -TS_EINVAL);
    assert_int_equal(ts_object_meta_check_add(&c, big, "v", &err), -TS_EINVAL);
    assert_int_equal(ts_object_meta_check_add(&c, "", "v", &err), -TS_EINVAL);
    struct ts_object_meta_check c2 = {0};
    int rc = 0;
    for (int i = 0; i < 30 && rc == 0; i++) rc = ts_object_meta_check_add(&c2, "key", big + 50, &err);
    assert_int_equal(rc, -TS_EINVAL); /* overall > 4096 */
    char h[] = "x-object-meta-color";
    ts_object_header_title(h);
    assert_string_equal(h, "X-Object-Meta-Color");
    assert_string_equal(ts_object_guess_type("a/b.TXT"), "text/plain");
    assert_string_equal(ts_object_guess_type("a.d/b"), "application/octet-stream");
}

/* ---- tempurl ---- */
static void test_tempurl(void **state)
{
    (void)state;
    char sig[129];
    /* python: hmac.new(b'mykey', b'GET\n1700000000\n/v1/AUTH_a/c/o', sha1).hexdigest() */
    ts_object_tempurl_hmac(TS_OBJECT_SHA1, "mykey", "GET", "1700000000", "/v1/AUTH_a/c/o", sig);
    assert_int_equal(strlen(sig), 40);
    assert_string_equal(sig, "cf1cb4ca7ffbf542fd4bd4792d5feaafb1e6bda3");
    assert_true(ts_object_tempurl_check("mykey", "GET", "1700000000", "/v1/AUTH_a/c/o", sig));
    assert_false(ts_object_tempurl_check("mykey", "PUT", "1700000000", "/v1/AUTH_a/c/o", sig));
    assert_false(ts_object_tempurl_check("other", "GET", "1700000000", "/v1/AUTH_a/c/o", sig));
    assert_false(ts_object_tempurl_check("mykey", "GET", "1700000001", "/v1/AUTH_a/c/o", sig));
    ts_object_tempurl_hmac(TS_OBJECT_SHA256, "mykey", "GET", "1700000000", "/v1/AUTH_a/c/o", sig);
    assert_int_equal(strlen(sig), 64);
    assert_true(ts_object_tempurl_check("mykey", "GET", "1700000000", "/v1/AUTH_a/c/o", sig));
    ts_object_tempurl_hmac(TS_OBJECT_SHA512, "mykey", "GET", "1700000000", "/v1/AUTH_a/c/o", sig);
    assert_int_equal(strlen(sig), 128);
    assert_true(ts_object_tempurl_check("mykey", "GET", "1700000000", "/v1/AUTH_a/c/o", sig));
    assert_false(ts_object_tempurl_check("mykey", "GET", "1700000000", "/v1/AUTH_a/c/o", "abc"));
    assert_false(ts_object_tempurl_check("mykey", "GET", "1700000000", "/v1/AUTH_a/c/o", "md5:abc"));
    /* known vector: HMAC-SHA1(key="key", "The quick brown fox jumps over the lazy dog") */
    ts_object_hmac_hex(TS_OBJECT_SHA1, "key", "The quick brown fox jumps over the lazy dog", 43, sig);
    assert_string_equal(sig, "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9");
    int64_t e;
    assert_int_equal(ts_object_tempurl_expires("1700000000", &e), 0);
    assert_int_equal(e, 1700000000);
    assert_int_equal(ts_object_tempurl_expires("2023-11-14T22:13:20Z", &e), 0);
    assert_int_equal(e, 1700000000);
    assert_int_equal(ts_object_tempurl_expires("soon", &e), -TS_EINVAL);
    assert_int_equal(ts_object_tempurl_expires("-5", &e), -TS_EINVAL);
    char d[40];
    ts_object_http_date(1700000000, d);
    assert_string_equal(d, "Tue, 14 Nov 2023 22:13:20 GMT");
    assert_int_equal(ts_object_http_date_parse(d, &e), 0);
    assert_int_equal(e, 1700000000);
    assert_int_equal(ts_object_http_date_parse("garbage", &e), -TS_EINVAL);
}

/* ---- tar ---- */
struct mem {
    const unsigned char *p;
    size_t len, pos, chunk;
};
static ssize_t mem_read(void *ctx, void *buf, size_t len)
{
    struct mem *m = ctx;
    size_t n = m->len - m->pos;
    if (n > len) n = len;
    if (m->chunk && n > m->chunk) n = m->chunk;
    memcpy(buf, m->p + m->pos, n);
    m->pos += n;
    return (ssize_t)n;
}

static void tar_header(unsigned char *h, const char *name, char type, size_t size, const char *prefix)
{
    memset(h, 0, 512);
    snprintf((char *)h, 100, "%s", name);
    snprintf((char *)h + 100, 8, "%07o", 0644);
    snprintf((char *)h + 124, 12, "%011zo", size);
    h[156] = (unsigned char)type;
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    if (prefix) snprintf((char *)h + 345, 155, "%s", prefix);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
}

static size_t tar_add(unsigned char *buf, size_t off, const char *name, char type, const char *data,
                      size_t dlen, const char *prefix)
{
    tar_header(buf + off, name, type, dlen, prefix);
    off += 512;
    memcpy(buf + off, data, dlen);
    off += (dlen + 511) / 512 * 512;
    return off;
}

static void test_tar(void **state)
{
    (void)state;
    static unsigned char buf[16384];
    memset(buf, 0, sizeof(buf));
    size_t off = 0;
    off = tar_add(buf, off, "dir/", '5', "", 0, NULL);
    off = tar_add(buf, off, "dir/a.txt", '0', "hello", 5, NULL);
    char longn[300];
    memset(longn, 'n', 299);
    longn[299] = '\0';
    off = tar_add(buf, off, "././@LongLink", 'L', longn, 300, NULL);
    off = tar_add(buf, off, "short", '0', "x", 1, NULL);
    const char pax[] = "20 path=pax/name.bin\n";
    off = tar_add(buf, off, "PaxHeader", 'x', pax, strlen(pax), NULL);
    off = tar_add(buf, off, "ignored", '0', "0123456789", 10, NULL);
    off = tar_add(buf, off, "b", '0', "yy", 2, "pre");
    off += 1024; /* end blocks */

    for (size_t chunk = 0; chunk < 3; chunk++) {
        struct mem m = {buf, off, 0, chunk == 0 ? 0 : chunk == 1 ? 7 : 513};
        struct ts_object_tar *t = ts_object_tar_new(mem_read, &m);
        struct ts_object_tar_entry e;
        char data[64];
        assert_int_equal(ts_object_tar_next(t, &e), 1);
        assert_string_equal(e.name, "dir/");
        assert_int_equal(e.type, '5');
        assert_int_equal(ts_object_tar_next(t, &e), 1);
        assert_string_equal(e.name, "dir/a.txt");
        assert_int_equal(e.size, 5);
        size_t got = 0;
        ssize_t n;
        while ((n = ts_object_tar_read(t, data + got, sizeof(data) - got)) > 0) got += (size_t)n;
        assert_int_equal(n, 0);
        assert_int_equal(got, 5);
        assert_memory_equal(data, "hello", 5);
        assert_int_equal(ts_object_tar_next(t, &e), 1);
        assert_int_equal(strlen(e.name), 299);
        assert_int_equal(e.size, 1);
        /* skip its data without reading */
        assert_int_equal(ts_object_tar_next(t, &e), 1);
        assert_string_equal(e.name, "pax/name.bin");
        assert_int_equal(e.size, 10);
        assert_int_equal(ts_object_tar_next(t, &e), 1);
        assert_string_equal(e.name, "pre/b");
        assert_int_equal(ts_object_tar_next(t, &e), 0);
        ts_object_tar_free(t);
    }

    /* corrupt checksum */
    buf[0] ^= 1;
    struct mem m = {buf, off, 0, 0};
    struct ts_object_tar *t = ts_object_tar_new(mem_read, &m);
    struct ts_object_tar_entry e;
    assert_int_equal(ts_object_tar_next(t, &e), -TS_EINVAL);
    ts_object_tar_free(t);
    buf[0] ^= 1;
    /* truncated data */
    struct mem m2 = {buf, 512 + 512 + 2, 0, 0};
    t = ts_object_tar_new(mem_read, &m2);
    assert_int_equal(ts_object_tar_next(t, &e), 1);
    assert_int_equal(ts_object_tar_next(t, &e), 1);
    char d[16];
    assert_int_equal(ts_object_tar_read(t, d, sizeof(d)), 2);
    assert_int_equal(ts_object_tar_read(t, d, sizeof(d)), -TS_EINVAL);
    assert_int_equal(ts_object_tar_next(t, &e), -TS_EINVAL);
    ts_object_tar_free(t);
    /* empty input and garbage */
    struct mem m3 = {buf, 0, 0, 0};
    t = ts_object_tar_new(mem_read, &m3);
    assert_int_equal(ts_object_tar_next(t, &e), 0);
    ts_object_tar_free(t);
    unsigned char junk[512];
    memset(junk, 'A', sizeof(junk));
    struct mem m4 = {junk, sizeof(junk), 0, 0};
    t = ts_object_tar_new(mem_read, &m4);
    assert_int_equal(ts_object_tar_next(t, &e), -TS_EINVAL);
    ts_object_tar_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range_single), cmocka_unit_test(test_range_multi_and_bad),
        cmocka_unit_test(test_listing_params), cmocka_unit_test(test_names_meta),
        cmocka_unit_test(test_tempurl),        cmocka_unit_test(test_tar),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
