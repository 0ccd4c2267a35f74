/*
 * test_ts_object_store_file.c: the file backend of the object store: streaming writes with
 * md5, commit/abort (no temp file left behind), reads, clones that survive the removal of
 * their source, and the startup reconcile (temp leftovers and unreferenced blobs removed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/evp.h>

#include "object/ts_object_store.h"

static char root[256];

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof(root), "/tmp/ts-object-store-test-%d", (int)getpid());
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *keep_id;
static bool referenced(void *ctx, const char *id)
{
    (void)ctx;
    return keep_id && strcmp(id, keep_id) == 0;
}

static void test_store(void **state)
{
    (void)state;
    struct ts_object_store *st = NULL;
    struct ts_err err;
    assert_int_equal(ts_object_store_file_new(root, &st, &err), 0);
    char tmpdir[300];
    snprintf(tmpdir, sizeof(tmpdir), "%s/tmp", root);

    struct ts_object_writer *w = NULL;
    assert_int_equal(st->ops->writer_new(st, &w, &err), 0);
    assert_int_equal(count_files(tmpdir), 1);
    assert_int_equal(st->ops->write(w, "hello ", 6, &err), 0);
    assert_int_equal(st->ops->write(w, "world", 5, &err), 0);
    char id[TS_OBJECT_BLOB_ID_MAX], md5[33];
    uint64_t size = 0;
    assert_int_equal(st->ops->commit(w, id, md5, &size, &err), 0);
    assert_int_equal(size, 11);
    assert_string_equal(md5, "5eb63bbbe01eeed093cb22bb8f5acdc3");
    assert_int_equal(count_files(tmpdir), 0);

    struct ts_object_blob *b = NULL;
    uint64_t bs = 0;
    assert_int_equal(st->ops->open(st, id, &b, &bs, &err), 0);
    assert_int_equal(bs, 11);
    char buf[16] = {0};
    assert_int_equal(st->ops->pread(b, buf, 5, 6), 5);
    assert_string_equal(buf, "world");
    int fd = st->ops->dup_fd(b);
    assert_true(fd >= 0);
    close(fd);
    st->ops->close(b);

    char clone[TS_OBJECT_BLOB_ID_MAX];
    assert_int_equal(st->ops->clone(st, id, clone, &err), 0);
    assert_string_not_equal(clone, id);
    assert_int_equal(st->ops->remove(st, id), 0);
    assert_int_equal(st->ops->open(st, id, &b, NULL, &err), -TS_ENOTFOUND);
    assert_int_equal(st->ops->open(st, clone, &b, &bs, &err), 0);
    assert_int_equal(bs, 11);
    st->ops->close(b);
    assert_int_equal(st->ops->remove(st, id), 0); /* already gone: fine */

    /* bad ids never reach the file system */
    assert_int_equal(st->ops->open(st, "../../etc/passwd", &b, NULL, &err), -TS_ENOTFOUND);
    assert_int_equal(st->ops->remove(st, "../x"), 0);

    /* abort leaves nothing */
    assert_int_equal(st->ops->writer_new(st, &w, &err), 0);
    assert_int_equal(st->ops->write(w, "x", 1, &err), 0);
    st->ops->abort(w);
    assert_int_equal(count_files(tmpdir), 0);
    st->ops->abort(NULL);

    /* reconcile: a leftover temp file and an unreferenced blob go, the referenced one stays */
    assert_int_equal(st->ops->writer_new(st, &w, &err), 0); /* simulates a crash mid-upload */
    char other[TS_OBJECT_BLOB_ID_MAX];
    struct ts_object_writer *w2 = NULL;
    assert_int_equal(st->ops->writer_new(st, &w2, &err), 0);
    assert_int_equal(st->ops->commit(w2, other, md5, NULL, &err), 0);
    assert_string_equal(md5, "d41d8cd98f00b204e9800998ecf8427e");
    keep_id = clone;
    assert_int_equal(st->ops->reconcile(st, referenced, NULL), 1);
    assert_int_equal(count_files(tmpdir), 0);
    assert_int_equal(st->ops->open(st, other, &b, NULL, &err), -TS_ENOTFOUND);
    assert_int_equal(st->ops->open(st, clone, &b, NULL, &err), 0);
    st->ops->close(b);
    st->ops->abort(w); /* its temp file is already gone; abort must cope */
    st->ops->free(st);
}

/* Large blobs hash on a thread of their own: odd-sized writes across its buffers must give
 * the same md5 and bytes as hashing the whole; an abort while it runs leaves nothing. */
static void test_large_blob(void **state)
{
    (void)state;
    struct ts_object_store *st = NULL;
    struct ts_err err;
    assert_int_equal(ts_object_store_file_new(root, &st, &err), 0);
    size_t total = (3u << 20) + 12345;
    unsigned char *data = malloc(total);
    assert_non_null(data);
    for (size_t i = 0; i < total; i++) data[i] = (unsigned char)(i * 2654435761u >> 13);
    unsigned char dg[16];
    unsigned dl = 0;
    EVP_Digest(data, total, dg, &dl, EVP_md5(), NULL);
    char want[33];
    ts_hex(dg, 16, want);

    struct ts_object_writer *w = NULL;
    assert_int_equal(st->ops->writer_new(st, &w, &err), 0);
    size_t off = 0, step = 1;
    while (off < total) {
        size_t n = step < total - off ? step : total - off;
        assert_int_equal(st->ops->write(w, data + off, n, &err), 0);
        off += n;
        step = step * 7 + 3;
        if (step > 300000) step = 4099;
    }
    char id[TS_OBJECT_BLOB_ID_MAX], md5[33];
    uint64_t size = 0;
    assert_int_equal(st->ops->commit(w, id, md5, &size, &err), 0);
    assert_string_equal(md5, want);
    assert_true(size == total);
    struct ts_object_blob *b = NULL;
    assert_int_equal(st->ops->open(st, id, &b, &size, &err), 0);
    unsigned char *back = malloc(total);
    assert_non_null(back);
    assert_true(st->ops->pread(b, back, total, 0) == (ssize_t)total);
    assert_memory_equal(back, data, total);
    st->ops->close(b);

    /* abort with the hashing thread busy */
    assert_int_equal(st->ops->writer_new(st, &w, &err), 0);
    for (int i = 0; i < 8; i++) assert_int_equal(st->ops->write(w, data, 1u << 20, &err), 0);
    st->ops->abort(w);
    char tmpdir[300];
    snprintf(tmpdir, sizeof(tmpdir), "%s/tmp", root);
    assert_int_equal(count_files(tmpdir), 0);
    free(back);
    free(data);
    st->ops->free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test_setup_teardown(test_store, setup, teardown),
                                       cmocka_unit_test_setup_teardown(test_large_blob, setup, teardown)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
