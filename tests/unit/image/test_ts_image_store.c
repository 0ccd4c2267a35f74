/*
 * test_ts_image_store.c: the filesystem image store: atomic commit, abort, read back,
 * delete, and removal of stray temporary files when the store is opened.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>
#include <cmocka.h>

#include "image/ts_image_store.h"

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void test_store(void **state)
{
    (void)state;
    char dir[] = "/tmp/ts_image_store_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *stray = ts_asprintf("%s/.abc.tmp.1234", dir);
    FILE *f = fopen(stray, "w");
    fputs("junk", f);
    fclose(f);
    struct ts_image_store *s = NULL;
    struct ts_err err = {0};
    assert_int_equal(ts_image_store_open(dir, &s, &err), 0);
    assert_int_equal(access(stray, F_OK), -1);   /* removed */
    free(stray);

    const char *id = "8b6b8d4a-29cf-4d31-9d6b-05f79bc4f8e2";
    struct ts_image_store_writer *w = NULL;
    assert_int_equal(ts_image_store_open_write(s, id, &w, &err), 0);
    assert_int_equal(ts_image_store_write(w, "hello ", 6, &err), 0);
    assert_false(ts_image_store_exists(s, id));   /* not visible before commit */
    assert_int_equal(ts_image_store_write(w, "world", 5, &err), 0);
    assert_true(ts_image_store_written(w) == 11);
    assert_int_equal(ts_image_store_commit(w, &err), 0);
    assert_true(ts_image_store_exists(s, id));
    int fd = -1;
    uint64_t size = 0;
    assert_int_equal(ts_image_store_open_read(s, id, &fd, &size, &err), 0);
    char buf[32] = {0};
    assert_int_equal(read(fd, buf, sizeof(buf)), 11);
    close(fd);
    assert_string_equal(buf, "hello world");
    assert_true(size == 11);
    assert_string_equal(ts_image_store_name(s), "file");
    assert_true(ts_image_store_has_fd(s));

    /* range readers: sequential, bounded, end with 0 */
    struct ts_image_store_reader *r = NULL;
    assert_int_equal(ts_image_store_open_range(s, id, 6, 5, &r, &err), 0);
    memset(buf, 0, sizeof(buf));
    assert_int_equal(ts_image_store_reader_read(r, 0, buf, 3), 3);
    assert_int_equal(ts_image_store_reader_read(r, 3, buf + 3, sizeof(buf) - 3), 2);
    assert_int_equal(ts_image_store_reader_read(r, 5, buf + 5, sizeof(buf) - 5), 0);
    assert_string_equal(buf, "world");
    ts_image_store_reader_free(r);
    ts_image_store_reader_free(NULL);
    assert_int_equal(ts_image_store_open_range(s, id, 6, 6, &r, &err), -TS_ERANGE);
    assert_int_equal(ts_image_store_open_range(s, id, 12, 0, &r, &err), -TS_ERANGE);
    assert_int_equal(ts_image_store_open_range(s, "missing", 0, 1, &r, &err), -TS_ENOTFOUND);

    /* abort leaves nothing behind */
    assert_int_equal(ts_image_store_open_write(s, "other", &w, &err), 0);
    assert_int_equal(ts_image_store_write(w, "x", 1, &err), 0);
    ts_image_store_abort(w);
    ts_image_store_abort(NULL);
    assert_int_equal(count_entries(dir), 1);

    assert_int_equal(ts_image_store_open_write(s, "../evil", &w, &err), -TS_EINVAL);
    assert_int_equal(ts_image_store_open_read(s, "missing", &fd, &size, &err), -TS_ENOTFOUND);
    assert_int_equal(ts_image_store_delete(s, id, &err), 0);
    assert_int_equal(ts_image_store_delete(s, id, &err), 0);
    assert_int_equal(count_entries(dir), 0);
    ts_image_store_close(s);
    ts_image_store_close(NULL);
    rmdir(dir);
}

/* Option checks of the swift store: no network traffic happens before first use. */
static void test_swift_opts(void **state)
{
    (void)state;
    struct ts_image_swift_opts o = {
        .object_host = "127.0.0.1", .object_port = 8080, .identity_url = "http://127.0.0.1:5000",
        .username = "tinystack", .password = "pw", .project_name = "service", .container = "glance",
        .large_object_size = 5ULL << 30, .segment_size = 200 << 20,
    };
    struct ts_image_store *s = NULL;
    struct ts_err err = {0};
    assert_int_equal(ts_image_store_open_swift(&o, &s, &err), 0);
    assert_string_equal(ts_image_store_name(s), "swift");
    assert_false(ts_image_store_has_fd(s));
    int fd = -1;
    uint64_t size = 0;
    assert_int_equal(ts_image_store_open_read(s, "x", &fd, &size, &err), -TS_ENOTIMPL);
    struct ts_image_store_writer *w = NULL;
    assert_int_equal(ts_image_store_open_write(s, "../x", &w, &err), -TS_EINVAL);
    ts_image_store_close(s);

    o.container = "a/b";
    assert_int_equal(ts_image_store_open_swift(&o, &s, &err), -TS_EINVAL);
    o.container = "glance";
    o.segment_size = 0;
    assert_int_equal(ts_image_store_open_swift(&o, &s, &err), -TS_EINVAL);
    o.segment_size = 6ULL << 30;
    assert_int_equal(ts_image_store_open_swift(&o, &s, &err), -TS_EINVAL);
    o.segment_size = 1 << 20;
    o.object_port = 0;
    assert_int_equal(ts_image_store_open_swift(&o, &s, &err), -TS_EINVAL);
    o.url = "ftp://x";
    assert_int_equal(ts_image_store_open_swift(&o, &s, &err), -TS_EINVAL);
    o.url = "http://127.0.0.1:8080/v1/AUTH_%(project_id)s";
    assert_int_equal(ts_image_store_open_swift(&o, &s, &err), 0);
    ts_image_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_store), cmocka_unit_test(test_swift_opts)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
