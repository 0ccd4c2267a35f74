/*
 * test_ts_image_util.c: unit tests of the image service's pure helpers: qcow2 header,
 * JSON patch, view validation, filter operators, sorting and Range parsing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "image/ts_image_util.h"

static void test_qcow2(void **state)
{
    (void)state;
    unsigned char h[64] = {'Q', 'F', 'I', 0xfb, 0, 0, 0, 3};
    uint64_t v = 0;
    h[24 + 3] = 0x01;   /* 0x0000000100000000 = 4 GiB */
    assert_int_equal(ts_image_qcow2_virtual_size(h, sizeof(h), &v), 0);
    assert_true(v == (1ULL << 32));
    assert_int_equal(ts_image_qcow2_virtual_size(h, 16, &v), -TS_EINVAL);
    h[0] = 'X';
    assert_int_equal(ts_image_qcow2_virtual_size(h, sizeof(h), &v), -TS_EINVAL);
    assert_int_equal(ts_image_qcow2_virtual_size(NULL, 0, &v), -TS_EINVAL);
    h[0] = 'Q';
    h[7] = 9;   /* unknown version */
    assert_int_equal(ts_image_qcow2_virtual_size(h, sizeof(h), &v), -TS_EINVAL);
}

static void test_formats(void **state)
{
    (void)state;
    assert_true(ts_image_disk_format_valid("qcow2"));
    assert_true(ts_image_disk_format_valid("ploop"));
    assert_false(ts_image_disk_format_valid("qcow3"));
    assert_false(ts_image_disk_format_valid(NULL));
    assert_true(ts_image_container_format_valid("bare"));
    assert_false(ts_image_container_format_valid("tar"));
}

static json_t *view(void)
{
    return json_pack("{s:s, s:s, s:s, s:b, s:[s], s:i, s:s, s:s, s:s}", "id", "8b6b8d4a-29cf-4d31-9d6b-05f79bc4f8e2",
                     "name", "cirros", "visibility", "shared", "protected", 0, "tags", "a", "min_disk", 0, "status",
                     "queued", "disk_format", "raw", "hypervisor_type", "qemu");
}

static int patch(json_t *v, const char *ops_text, int draft, struct ts_err *err)
{
    json_error_t e;
    json_t *ops = json_loads(ops_text, 0, &e);
    assert_non_null(ops);
    int rc = ts_image_patch_apply(v, ops, draft, err);
    json_decref(ops);
    return rc;
}

static void test_patch(void **state)
{
    (void)state;
    struct ts_err err = {0};
    json_t *v = view();
    assert_int_equal(patch(v, "[{\"op\": \"replace\", \"path\": \"/name\", \"value\": \"new\"},"
                              " {\"op\": \"add\", \"path\": \"/os_distro\", \"value\": \"debian\"},"
                              " {\"op\": \"remove\", \"path\": \"/hypervisor_type\"},"
                              " {\"op\": \"replace\", \"path\": \"/tags\", \"value\": [\"x\", \"y\"]},"
                              " {\"op\": \"add\", \"path\": \"/a~1b\", \"value\": \"slash\"}]",
                     10, &err),
                     0);
    assert_string_equal(json_string_value(json_object_get(v, "name")), "new");
    assert_string_equal(json_string_value(json_object_get(v, "os_distro")), "debian");
    assert_string_equal(json_string_value(json_object_get(v, "a/b")), "slash");
    assert_null(json_object_get(v, "hypervisor_type"));
    assert_int_equal(json_array_size(json_object_get(v, "tags")), 2);

    /* read-only, reserved, base removal, missing property, bad values */
    assert_int_equal(patch(v, "[{\"op\": \"replace\", \"path\": \"/status\", \"value\": \"active\"}]", 10, &err),
                     -TS_EFORBIDDEN);
    assert_int_equal(patch(v, "[{\"op\": \"add\", \"path\": \"/deleted\", \"value\": \"x\"}]", 10, &err),
                     -TS_EFORBIDDEN);
    assert_int_equal(patch(v, "[{\"op\": \"add\", \"path\": \"/os_glance_x\", \"value\": \"x\"}]", 10, &err),
                     -TS_EFORBIDDEN);
    assert_int_equal(patch(v, "[{\"op\": \"remove\", \"path\": \"/name\"}]", 10, &err), -TS_EFORBIDDEN);
    assert_int_equal(patch(v, "[{\"op\": \"remove\", \"path\": \"/nope\"}]", 10, &err), -TS_ECONFLICT);
    assert_int_equal(patch(v, "[{\"op\": \"replace\", \"path\": \"/nope\", \"value\": \"1\"}]", 10, &err),
                     -TS_ECONFLICT);
    assert_int_equal(patch(v, "[{\"op\": \"replace\", \"path\": \"/visibility\", \"value\": \"world\"}]", 10, &err),
                     -TS_EINVAL);
    assert_int_equal(patch(v, "[{\"op\": \"replace\", \"path\": \"/disk_format\", \"value\": \"xxx\"}]", 10, &err),
                     -TS_EINVAL);
    assert_int_equal(patch(v, "[{\"op\": \"add\", \"path\": \"/prop\", \"value\": 1}]", 10, &err), -TS_EINVAL);
    assert_int_equal(patch(v, "[{\"op\": \"replace\", \"path\": \"/min_ram\", \"value\": -1}]", 10, &err),
                     -TS_EINVAL);
    assert_int_equal(patch(v, "[{\"op\": \"move\", \"path\": \"/name\", \"value\": \"x\"}]", 10, &err), -TS_EINVAL);
    assert_int_equal(patch(v, "[{\"path\": \"/name\", \"value\": \"x\"}]", 10, &err), -TS_EINVAL);
    assert_int_equal(patch(v, "[{\"op\": \"add\", \"path\": \"name\", \"value\": \"x\"}]", 10, &err), -TS_EINVAL);
    assert_int_equal(patch(v, "[{\"op\": \"add\", \"path\": \"/a/b\", \"value\": \"x\"}]", 10, &err), -TS_EINVAL);
    assert_int_equal(patch(v, "[{\"op\": \"add\", \"path\": \"/a~2\", \"value\": \"x\"}]", 10, &err), -TS_EINVAL);
    assert_int_equal(patch(v, "[{\"op\": \"add\", \"path\": \"/name\"}]", 10, &err), -TS_EINVAL);
    assert_int_equal(patch(v, "[1]", 10, &err), -TS_EINVAL);
    assert_int_equal(patch(v, "{}", 10, &err), -TS_EINVAL);
    /* name unchanged by the failed patches */
    assert_string_equal(json_string_value(json_object_get(v, "name")), "new");

    /* draft 4 */
    assert_int_equal(patch(v, "[{\"replace\": \"/name\", \"value\": \"d4\"}]", 4, &err), 0);
    assert_string_equal(json_string_value(json_object_get(v, "name")), "d4");
    assert_int_equal(patch(v, "[{\"add\": \"/os_distro\", \"value\": \"again\"}]", 4, &err), -TS_ECONFLICT);
    assert_int_equal(patch(v, "[{\"add\": \"/x\", \"remove\": \"/y\"}]", 4, &err), -TS_EINVAL);
    json_decref(v);
}

static void test_validate(void **state)
{
    (void)state;
    struct ts_err err = {0};
    json_t *b = json_pack("{s:s, s:s, s:s}", "name", "x", "disk_format", "qcow2", "container_format", "bare");
    assert_int_equal(ts_image_view_validate(b, true, &err), 0);
    json_object_set_new(b, "status", json_string("active"));
    assert_int_equal(ts_image_view_validate(b, true, &err), -TS_EFORBIDDEN);
    json_object_del(b, "status");
    json_object_set_new(b, "location", json_string("x"));
    assert_int_equal(ts_image_view_validate(b, true, &err), -TS_EFORBIDDEN);
    json_object_del(b, "location");
    json_object_set_new(b, "id", json_string("not-a-uuid"));
    assert_int_equal(ts_image_view_validate(b, true, &err), -TS_EINVAL);
    json_object_set_new(b, "id", json_string("8b6b8d4a-29cf-4d31-9d6b-05f79bc4f8e2"));
    assert_int_equal(ts_image_view_validate(b, true, &err), 0);
    json_object_set_new(b, "tags", json_pack("[i]", 1));
    assert_int_equal(ts_image_view_validate(b, true, &err), -TS_EINVAL);
    json_object_set_new(b, "tags", json_pack("[s]", "ok"));
    json_object_set_new(b, "protected", json_string("yes"));
    assert_int_equal(ts_image_view_validate(b, true, &err), -TS_EINVAL);
    json_object_set_new(b, "protected", json_true());
    char key[300];
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    json_object_set_new(b, key, json_string("v"));
    assert_int_equal(ts_image_view_validate(b, true, &err), -TS_EINVAL);
    json_decref(b);
    assert_int_equal(ts_image_view_validate(NULL, true, &err), -TS_EINVAL);
}

static void test_filters(void **state)
{
    (void)state;
    struct ts_pool *pool = ts_pool_new();
    struct ts_err err = {0};
    const char **vals = NULL;
    assert_int_equal(ts_image_filter_in(pool, "plain", &vals, &err), 1);
    assert_string_equal(vals[0], "plain");
    assert_int_equal(ts_image_filter_in(pool, "in:a,b,\"c,d\",e", &vals, &err), 4);
    assert_string_equal(vals[0], "a");
    assert_string_equal(vals[2], "c,d");
    assert_string_equal(vals[3], "e");
    assert_int_equal(ts_image_filter_in(pool, "in:\"unterminated", &vals, &err), -TS_EINVAL);
    assert_int_equal(ts_image_filter_in(pool, "in:\"a\"b", &vals, &err), -TS_EINVAL);

    const char *op;
    double t;
    assert_int_equal(ts_image_filter_time("gte:2024-01-02T03:04:05Z", &op, &t, &err), 0);
    assert_string_equal(op, ">=");
    assert_true(t > 1704164644.0 && t < 1704164646.0);
    assert_int_equal(ts_image_filter_time("2024-01-02T03:04:05Z", &op, &t, &err), 0);
    assert_string_equal(op, "=");
    assert_int_equal(ts_image_filter_time("neq:2024-01-02T03:04:05Z", &op, &t, &err), 0);
    assert_string_equal(op, "<>");
    assert_int_equal(ts_image_filter_time("bad:2024-01-02T03:04:05Z", &op, &t, &err), -TS_EINVAL);
    assert_int_equal(ts_image_filter_time("lt:yesterday", &op, &t, &err), -TS_EINVAL);
    ts_pool_free(pool);
}

static void test_sort(void **state)
{
    (void)state;
    struct ts_err err = {0};
    struct ts_image_sort s;
    assert_int_equal(ts_image_sort_parse(NULL, NULL, 0, NULL, 0, &s, &err), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.keys[0], "created_at");
    assert_true(s.desc[0]);
    assert_int_equal(ts_image_sort_parse("name:asc,size", NULL, 0, NULL, 0, &s, &err), 0);
    assert_int_equal(s.n, 2);
    assert_false(s.desc[0]);
    assert_true(s.desc[1]);
    assert_int_equal(ts_image_sort_parse("bogus:asc", NULL, 0, NULL, 0, &s, &err), -TS_EINVAL);
    assert_int_equal(ts_image_sort_parse("name:up", NULL, 0, NULL, 0, &s, &err), -TS_EINVAL);
    const char *keys[] = {"name", "size"}, *dirs1[] = {"asc"}, *dirs3[] = {"asc", "desc", "asc"};
    assert_int_equal(ts_image_sort_parse("name", keys, 1, NULL, 0, &s, &err), -TS_EINVAL);
    assert_int_equal(ts_image_sort_parse(NULL, keys, 2, dirs1, 1, &s, &err), 0);
    assert_false(s.desc[0]);
    assert_false(s.desc[1]);
    assert_int_equal(ts_image_sort_parse(NULL, keys, 2, dirs3, 3, &s, &err), -TS_EINVAL);
}

static void test_range(void **state)
{
    (void)state;
    uint64_t off = 0, len = 0;
    assert_int_equal(ts_image_range_parse(NULL, 100, &off, &len), 1);
    assert_int_equal(ts_image_range_parse("bytes=0-9", 100, &off, &len), 0);
    assert_true(off == 0 && len == 10);
    assert_int_equal(ts_image_range_parse("bytes=90-", 100, &off, &len), 0);
    assert_true(off == 90 && len == 10);
    assert_int_equal(ts_image_range_parse("bytes=-5", 100, &off, &len), 0);
    assert_true(off == 95 && len == 5);
    assert_int_equal(ts_image_range_parse("bytes=50-500", 100, &off, &len), 0);
    assert_true(off == 50 && len == 50);
    assert_int_equal(ts_image_range_parse("bytes=100-", 100, &off, &len), -TS_ERANGE);
    assert_int_equal(ts_image_range_parse("bytes=9-1", 100, &off, &len), -TS_EINVAL);
    assert_int_equal(ts_image_range_parse("bytes=a-b", 100, &off, &len), -TS_EINVAL);
    assert_int_equal(ts_image_range_parse("bytes=0-1,5-6", 100, &off, &len), 1);
    assert_int_equal(ts_image_range_parse("items=0-1", 100, &off, &len), 1);
}

static void test_sizes(void **state)
{
    (void)state;
    uint64_t v = 0;
    assert_int_equal(ts_image_size_parse("4096", &v), 0);
    assert_true(v == 4096);
    assert_int_equal(ts_image_size_parse("5G", &v), 0);
    assert_true(v == 5ULL << 30);
    assert_int_equal(ts_image_size_parse("200M", &v), 0);
    assert_true(v == 200ULL << 20);
    assert_int_equal(ts_image_size_parse("64KiB", &v), 0);
    assert_true(v == 64 << 10);
    assert_int_equal(ts_image_size_parse("1tb", &v), 0);
    assert_true(v == 1ULL << 40);
    assert_int_equal(ts_image_size_parse("0", &v), -TS_EINVAL);
    assert_int_equal(ts_image_size_parse("-1", &v), -TS_EINVAL);
    assert_int_equal(ts_image_size_parse("5X", &v), -TS_EINVAL);
    assert_int_equal(ts_image_size_parse("5Gi", &v), -TS_EINVAL);
    assert_int_equal(ts_image_size_parse("", &v), -TS_EINVAL);
    assert_int_equal(ts_image_size_parse(NULL, &v), -TS_EINVAL);
    assert_int_equal(ts_image_size_parse("99999999999999999999", &v), -TS_EINVAL);
    assert_int_equal(ts_image_size_parse("17179869184T", &v), -TS_EINVAL);   /* overflows */
}

static void test_stores(void **state)
{
    (void)state;
    bool file = false, swift = true;
    struct ts_err err = {0};
    assert_int_equal(ts_image_stores_parse(NULL, NULL, &file, &swift, &err), 0);
    assert_true(file && !swift);
    assert_int_equal(ts_image_stores_parse(NULL, "swift", &file, &swift, &err), 0);
    assert_true(file && swift);
    assert_int_equal(ts_image_stores_parse("file, swift", "file", &file, &swift, &err), 0);
    assert_true(file && swift);
    assert_int_equal(ts_image_stores_parse("file", "file", &file, &swift, &err), 0);
    assert_true(file && !swift);
    assert_int_equal(ts_image_stores_parse("file,rbd", "file", &file, &swift, &err), -TS_EINVAL);
    assert_int_equal(ts_image_stores_parse(NULL, "http", &file, &swift, &err), -TS_EINVAL);
}

static void test_token(void **state)
{
    (void)state;
    const char *b = "{\"token\": {\"expires_at\": \"2030-01-01T00:00:00.000000Z\", "
                    "\"project\": {\"id\": \"4f1c0de0a1b2\", \"name\": \"service\"}}}";
    char pid[65];
    double exp = 0;
    assert_int_equal(ts_image_token_parse(b, strlen(b), pid, sizeof(pid), &exp), 0);
    assert_string_equal(pid, "4f1c0de0a1b2");
    assert_true(exp == 1893456000.0);
    assert_int_equal(ts_image_token_parse(b, strlen(b), pid, 5, &exp), -TS_EINVAL);
    const char *unscoped = "{\"token\": {\"expires_at\": \"2030-01-01T00:00:00Z\"}}";
    assert_int_equal(ts_image_token_parse(unscoped, strlen(unscoped), pid, sizeof(pid), &exp), -TS_EINVAL);
    const char *odd = "{\"token\": {\"expires_at\": \"2030-01-01T00:00:00Z\", \"project\": {\"id\": \"a/b\"}}}";
    assert_int_equal(ts_image_token_parse(odd, strlen(odd), pid, sizeof(pid), &exp), -TS_EINVAL);
    assert_int_equal(ts_image_token_parse("nope", 4, pid, sizeof(pid), &exp), -TS_EINVAL);
    assert_int_equal(ts_image_token_parse(NULL, 0, pid, sizeof(pid), &exp), -TS_EINVAL);

    /* a 1 h token: renewed after 45 min; a 10 min token after 5; a 2 min token after 1 */
    assert_false(ts_image_token_stale(1000 + 2699, 1000, 1000 + 3600));
    assert_true(ts_image_token_stale(1000 + 2700, 1000, 1000 + 3600));
    assert_false(ts_image_token_stale(1000 + 299, 1000, 1000 + 600));
    assert_true(ts_image_token_stale(1000 + 300, 1000, 1000 + 600));
    assert_false(ts_image_token_stale(1000 + 59, 1000, 1000 + 120));
    assert_true(ts_image_token_stale(1000 + 60, 1000, 1000 + 120));
    assert_true(ts_image_token_stale(5000, 1000, 1000 + 3600));   /* expired */
}

static void test_etag_segments(void **state)
{
    (void)state;
    const char *md5 = "d41d8cd98f00b204e9800998ecf8427e";
    assert_true(ts_image_etag_match(md5, md5));
    assert_true(ts_image_etag_match("\"d41d8cd98f00b204e9800998ecf8427e\"", md5));
    assert_true(ts_image_etag_match("D41D8CD98F00B204E9800998ECF8427E", md5));
    assert_false(ts_image_etag_match("\"d41d8cd98f00b204e9800998ecf8427\"", md5));
    assert_false(ts_image_etag_match("\"\"", ""));
    assert_false(ts_image_etag_match(NULL, md5));
    char n[64];
    assert_int_equal(ts_image_segment_name("abc", 1, n, sizeof(n)), 0);
    assert_string_equal(n, "abc-00001");
    assert_int_equal(ts_image_segment_name("abc", 1000, n, sizeof(n)), 0);
    assert_string_equal(n, "abc-01000");
    assert_int_equal(ts_image_segment_name("abc", 0, n, sizeof(n)), -TS_EINVAL);
    assert_int_equal(ts_image_segment_name("abcdef", 1, n, 8), -TS_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qcow2),   cmocka_unit_test(test_formats), cmocka_unit_test(test_patch),
        cmocka_unit_test(test_validate), cmocka_unit_test(test_filters), cmocka_unit_test(test_sort),
        cmocka_unit_test(test_range),   cmocka_unit_test(test_sizes),   cmocka_unit_test(test_stores),
        cmocka_unit_test(test_token),   cmocka_unit_test(test_etag_segments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
