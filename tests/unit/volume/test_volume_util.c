/*
 * test_volume_util.c: unit tests of the volume service's pure helpers: microversion
 * header parsing, sort parameters, sizes, status rules and the sparse copy.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "volume/ts_volume_util.h"

static void test_mv(void **state)
{
    (void)state;
    struct ts_err err;
    int mv = -1;
    assert_int_equal(ts_volume_mv_parse(NULL, &mv, &err), 0);
    assert_int_equal(mv, 0);
    assert_int_equal(ts_volume_mv_parse("volume 3.27", &mv, &err), 0);
    assert_int_equal(mv, 27);
    assert_int_equal(ts_volume_mv_parse("compute 2.1, volume 3.44", &mv, &err), 0);
    assert_int_equal(mv, 44);
    assert_int_equal(ts_volume_mv_parse("Volume latest", &mv, &err), 0);
    assert_int_equal(mv, TS_VOLUME_MV_MAX);
    assert_int_equal(ts_volume_mv_parse("compute 2.50", &mv, &err), 0);
    assert_int_equal(mv, 0);
    assert_int_equal(ts_volume_mv_parse("volume 3.71", &mv, &err), -TS_ENOTACCEPT);
    assert_int_equal(ts_volume_mv_parse("volume 2.0", &mv, &err), -TS_ENOTACCEPT);
    assert_int_equal(ts_volume_mv_parse("volume 3", &mv, &err), -TS_EINVAL);
    assert_int_equal(ts_volume_mv_parse("volume 3.x", &mv, &err), -TS_EINVAL);
    assert_int_equal(ts_volume_mv_parse("volume ", &mv, &err), -TS_EINVAL);
    assert_int_equal(ts_volume_mv_parse("volume 3.000000001", &mv, &err), -TS_EINVAL);
}

static const char *const keys[] = {"id", "name", "size", "created_at", "display_name", NULL};
static const char *const cols[] = {"id", "name", "size", "created_at", "name", NULL};

static void test_sort(void **state)
{
    (void)state;
    struct ts_err err;
    struct ts_volume_sort s[8];
    int n = ts_volume_sort_parse(NULL, NULL, NULL, keys, cols, s, 8, &err);
    assert_int_equal(n, 2);
    assert_string_equal(s[0].key, "created_at");
    assert_true(s[0].desc);
    n = ts_volume_sort_parse("name:asc,size", NULL, NULL, keys, cols, s, 8, &err);
    assert_int_equal(n, 3);
    assert_string_equal(s[0].key, "name");
    assert_false(s[0].desc);
    assert_string_equal(s[1].key, "size");
    assert_true(s[1].desc);
    assert_string_equal(s[2].key, "id");
    n = ts_volume_sort_parse(NULL, "display_name,size", "asc,desc", keys, cols, s, 8, &err);
    assert_int_equal(n, 3);
    assert_string_equal(s[0].key, "name");
    assert_false(s[0].desc);
    assert_true(s[1].desc);
    assert_int_equal(ts_volume_sort_parse("bogus", NULL, NULL, keys, cols, s, 8, &err), -TS_EINVAL);
    assert_int_equal(ts_volume_sort_parse("name:sideways", NULL, NULL, keys, cols, s, 8, &err), -TS_EINVAL);
    assert_int_equal(ts_volume_sort_parse("name", "size", NULL, keys, cols, s, 8, &err), -TS_EINVAL);
    assert_int_equal(ts_volume_sort_parse("id,id,id,id,id,id,id,id,id", NULL, NULL, keys, cols, s, 8, &err),
                     -TS_EINVAL);
}

static void test_size(void **state)
{
    (void)state;
    struct ts_err err;
    int64_t v;
    assert_int_equal(ts_volume_size_parse("1", &v, &err), 0);
    assert_int_equal(v, 1);
    assert_int_equal(ts_volume_size_parse("0", &v, &err), -TS_EINVAL);
    assert_int_equal(ts_volume_size_parse("-3", &v, &err), -TS_EINVAL);
    assert_int_equal(ts_volume_size_parse("1.5", &v, &err), -TS_EINVAL);
    assert_int_equal(ts_volume_size_parse("99999999999", &v, &err), -TS_EINVAL);
    assert_int_equal(ts_volume_size_parse(NULL, &v, &err), -TS_EINVAL);
}

static void test_status(void **state)
{
    (void)state;
    assert_true(ts_volume_status_deletable("available"));
    assert_true(ts_volume_status_deletable("error"));
    assert_false(ts_volume_status_deletable("in-use"));
    assert_false(ts_volume_status_deletable("creating"));
    assert_false(ts_volume_status_deletable(NULL));
    assert_true(ts_volume_status_valid("in-use"));
    assert_false(ts_volume_status_valid("bogus"));
}

static void test_sparse_copy(void **state)
{
    (void)state;
    char src[] = "/tmp/tsvol-srcXXXXXX", dst[] = "/tmp/tsvol-dstXXXXXX";
    int a = mkstemp(src), b = mkstemp(dst);
    assert_true(a >= 0 && b >= 0);
    const int64_t len = 8 << 20;
    assert_int_equal(ftruncate(a, len), 0);
    char pat[5000];
    for (size_t i = 0; i < sizeof(pat); i++)
        pat[i] = (char)(i * 7 + 1);
    assert_int_equal(pwrite(a, pat, sizeof(pat), 3 << 20), (ssize_t)sizeof(pat));
    struct ts_err err;
    assert_int_equal(ts_volume_sparse_copy(a, b, len, &err), 0);
    struct stat st;
    assert_int_equal(fstat(b, &st), 0);
    assert_int_equal(st.st_size, len);
    assert_true(st.st_blocks * 512 < len); /* holes kept */
    char back[5000];
    assert_int_equal(pread(b, back, sizeof(back), 3 << 20), (ssize_t)sizeof(back));
    assert_memory_equal(back, pat, sizeof(pat));
    char z[16];
    assert_int_equal(pread(b, z, sizeof(z), 0), (ssize_t)sizeof(z));
    for (size_t i = 0; i < sizeof(z); i++)
        assert_int_equal(z[i], 0);
    close(a);
    close(b);
    unlink(src);
    unlink(dst);
}

static void test_text(void **state)
{
    (void)state;
    struct ts_err err;
    assert_int_equal(ts_volume_check_text("name", NULL, 255, &err), 0);
    assert_int_equal(ts_volume_check_text("name", "ok", 255, &err), 0);
    char big[300];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    assert_int_equal(ts_volume_check_text("name", big, 255, &err), -TS_EINVAL);
    assert_int_equal(ts_volume_check_text("name", "\xff\xfe", 255, &err), -TS_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mv),     cmocka_unit_test(test_sort),        cmocka_unit_test(test_size),
        cmocka_unit_test(test_status), cmocka_unit_test(test_sparse_copy), cmocka_unit_test(test_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
