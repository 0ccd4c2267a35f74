/*
 * test_ts_object_store_rados.c: the RADOS backend of the object store against a real Ceph
 * (TS_TEST_CEPH_CONF=<ceph.conf>, e.g. from scripts/ceph-local.sh start; every test skips
 * without it): streamed writes across data-object boundaries with md5, reads and ranges,
 * clones, removal, abort, missing and malformed ids, and the reconcile that removes
 * unreferenced blobs and temp leftovers but spares young ones within the grace period. Each
 * run uses its own pool and deletes it at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <rados/librados.h>

#include "object/ts_object_store.h"

static const char *conf;
static char pool[64];

/* Objects of the pool with a name starting with prefix (all of ours when prefix is "ts."). */
static int count_objects(const char *prefix)
{
    rados_t c;
    rados_ioctx_t io;
    int n = 0;
    if (rados_create(&c, "admin") < 0) return -1;
    if (rados_conf_read_file(c, conf) < 0 || rados_connect(c) < 0 || rados_ioctx_create(c, pool, &io) < 0) {
        rados_shutdown(c);
        return -1;
    }
    rados_list_ctx_t lc;
    if (rados_nobjects_list_open(io, &lc) == 0) {
        const char *name;
        while (rados_nobjects_list_next(lc, &name, NULL, NULL) == 0)
            if (strncmp(name, prefix, strlen(prefix)) == 0) n++;
        rados_nobjects_list_close(lc);
    }
    rados_ioctx_destroy(io);
    rados_shutdown(c);
    return n;
}

/* Creates (or removes) an object named other.ts.0123456789abcdef0123456789abcdef in the pool. */
static int foreign_object(bool create)
{
    rados_t c;
    rados_ioctx_t io;
    int r = rados_create(&c, "admin");
    if (r < 0) return r;
    if ((r = rados_conf_read_file(c, conf)) < 0 || (r = rados_connect(c)) < 0 ||
        (r = rados_ioctx_create(c, pool, &io)) < 0) {
        rados_shutdown(c);
        return r;
    }
    const char *name = "other.ts.0123456789abcdef0123456789abcdef";
    r = create ? rados_write_full(io, name, "x", 1) : rados_remove(io, name);
    rados_ioctx_destroy(io);
    rados_shutdown(c);
    return r;
}

static struct ts_object_store *open_store(int64_t grace)
{
    struct ts_object_store_rados_opts o = {.conf_path = conf, .pool = pool, .op_timeout = 30, .orphan_grace = grace};
    struct ts_object_store *st = NULL;
    struct ts_err err = {0};
    int rc = ts_object_store_rados_new(&o, &st, &err);
    if (rc < 0) fail_msg("rados store: %s", err.msg);
    return st;
}

static int group_setup(void **state)
{
    (void)state;
    conf = getenv("TS_TEST_CEPH_CONF");
    snprintf(pool, sizeof(pool), "ts-unit-%d", (int)getpid());
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (!conf || !*conf) return 0;
    rados_t c;
    if (rados_create(&c, "admin") < 0) return 0;
    if (rados_conf_read_file(c, conf) == 0 && rados_connect(c) == 0) rados_pool_delete(c, pool);
    rados_shutdown(c);
    return 0;
}

#define NEED_CEPH()                                                                         \
    do {                                                                                    \
        if (!conf || !*conf) {                                                              \
            fprintf(stderr, "TS_TEST_CEPH_CONF not set (scripts/ceph-local.sh start): skip\n"); \
            skip();                                                                         \
        }                                                                                   \
    } while (0)

static void fill(unsigned char *p, size_t n, uint64_t off)
{
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)((off + i) * 2654435761u >> 13);
}

static void test_small(void **state)
{
    (void)state;
    NEED_CEPH();
    struct ts_object_store *st = open_store(0);
    struct ts_err err;
    struct ts_object_writer *w = NULL;
    assert_int_equal(st->ops->writer_new(st, &w, &err), 0);
    assert_int_equal(st->ops->write(w, "hello ", 6, &err), 0);
    assert_int_equal(st->ops->write(w, "world", 5, &err), 0);
    char id[TS_OBJECT_BLOB_ID_MAX], md5[33];
    uint64_t size = 0;
    assert_int_equal(st->ops->commit(w, id, md5, &size, &err), 0);
    assert_int_equal(size, 11);
    assert_string_equal(md5, "5eb63bbbe01eeed093cb22bb8f5acdc3");

    struct ts_object_blob *b = NULL;
    uint64_t bs = 0;
    assert_int_equal(st->ops->open(st, id, &b, &bs, &err), 0);
    assert_int_equal(bs, 11);
    assert_int_equal(st->ops->dup_fd(b), -1);
    char buf[16] = {0};
    assert_int_equal(st->ops->pread(b, buf, sizeof(buf), 0), 11);
    assert_memory_equal(buf, "hello world", 11);
    memset(buf, 0, sizeof(buf));
    assert_int_equal(st->ops->pread(b, buf, 3, 6), 3); /* a range inside the cached bytes */
    assert_memory_equal(buf, "wor", 3);
    assert_int_equal(st->ops->pread(b, buf, 4, 11), 0); /* at EOF */
    st->ops->close(b);

    /* a clone survives the removal of its source */
    char cid[TS_OBJECT_BLOB_ID_MAX];
    assert_int_equal(st->ops->clone(st, id, cid, &err), 0);
    assert_string_not_equal(id, cid);
    assert_int_equal(st->ops->remove(st, id), 0);
    assert_int_equal(st->ops->open(st, id, &b, NULL, &err), -TS_ENOTFOUND);
    assert_int_equal(st->ops->remove(st, id), 0); /* twice is fine */
    assert_int_equal(st->ops->open(st, cid, &b, &bs, &err), 0);
    assert_int_equal(bs, 11);
    memset(buf, 0, sizeof(buf));
    assert_int_equal(st->ops->pread(b, buf, 5, 0), 5);
    assert_memory_equal(buf, "hello", 5);
    st->ops->close(b);
    assert_int_equal(st->ops->remove(st, cid), 0);

    /* an empty blob has a head and no data objects */
    assert_int_equal(st->ops->writer_new(st, &w, &err), 0);
    assert_int_equal(st->ops->commit(w, id, md5, &size, &err), 0);
    assert_int_equal(size, 0);
    assert_string_equal(md5, "d41d8cd98f00b204e9800998ecf8427e");
    assert_int_equal(st->ops->open(st, id, &b, &bs, &err), 0);
    assert_int_equal(bs, 0);
    assert_int_equal(st->ops->pread(b, buf, 4, 0), 0);
    st->ops->close(b);
    assert_int_equal(st->ops->remove(st, id), 0);

    /* malformed and unknown ids */
    assert_int_equal(st->ops->open(st, "../etc/passwd", &b, NULL, &err), -TS_ENOTFOUND);
    assert_int_equal(st->ops->open(st, "ab/abababababababababababababababab", &b, NULL, &err), -TS_ENOTFOUND);
    assert_int_equal(st->ops->open(st, "0123456789abcdef0123456789abcdef", &b, NULL, &err), -TS_ENOTFOUND);
    assert_int_equal(st->ops->open(st, NULL, &b, NULL, &err), -TS_ENOTFOUND);
    assert_int_equal(st->ops->remove(st, "zz"), 0);
    assert_int_equal(st->ops->clone(st, "0123456789abcdef0123456789abcdef", cid, &err), -TS_ENOTFOUND);
    assert_int_equal(count_objects("ts."), 0);
    st->ops->free(st);
}

/* 9 MiB + 12345 bytes in odd-sized writes: three data objects, md5 and ranges across their
 * boundaries, large and small reads. */
static void test_large_ranges(void **state)
{
    (void)state;
    NEED_CEPH();
    struct ts_object_store *st = open_store(0);
    struct ts_err err;
    const uint64_t total = (9u << 20) + 12345;
    unsigned char *src = malloc(total);
    assert_non_null(src);
    fill(src, total, 0);
    unsigned char dg[16];
    unsigned dl = 0;
    char want_md5[33];
    EVP_Digest(src, total, dg, &dl, EVP_md5(), NULL);
    ts_hex(dg, 16, want_md5);

    struct ts_object_writer *w = NULL;
    assert_int_equal(st->ops->writer_new(st, &w, &err), 0);
    for (uint64_t off = 0; off < total;) {
        size_t n = 65537;
        if (n > total - off) n = (size_t)(total - off);
        assert_int_equal(st->ops->write(w, src + off, n, &err), 0);
        off += n;
    }
    char id[TS_OBJECT_BLOB_ID_MAX], md5[33];
    uint64_t size = 0;
    assert_int_equal(st->ops->commit(w, id, md5, &size, &err), 0);
    assert_int_equal(size, total);
    assert_string_equal(md5, want_md5);
    assert_int_equal(count_objects("ts."), 1 + 3); /* head + 4 MiB, 4 MiB, 1 MiB+ */

    struct ts_object_blob *b = NULL;
    uint64_t bs = 0;
    assert_int_equal(st->ops->open(st, id, &b, &bs, &err), 0);
    assert_int_equal(bs, total);
    /* whole blob with 64 KiB reads (the HTTP path), then with 3 MiB reads */
    size_t steps[] = {65536, 3u << 20};
    unsigned char *got = malloc(total);
    assert_non_null(got);
    for (size_t s = 0; s < 2; s++) {
        memset(got, 0, total);
        uint64_t off = 0;
        while (off < total) {
            size_t want = steps[s] < total - off ? steps[s] : (size_t)(total - off);
            ssize_t n = st->ops->pread(b, got + off, want, off);
            assert_true(n > 0);
            off += (uint64_t)n;
        }
        assert_memory_equal(got, src, total);
    }
    /* ranges: across the first boundary, the last bytes, one byte in the middle */
    struct { uint64_t off; size_t len; } r[] = {{(4u << 20) - 100, 300}, {total - 7, 7}, {5000000, 1}};
    for (size_t i = 0; i < 3; i++) {
        unsigned char tmp[512];
        size_t have = 0;
        while (have < r[i].len) {
            ssize_t n = st->ops->pread(b, tmp + have, r[i].len - have, r[i].off + have);
            assert_true(n > 0);
            have += (size_t)n;
        }
        assert_memory_equal(tmp, src + r[i].off, r[i].len);
    }
    assert_int_equal(st->ops->pread(b, got, 10, total + 5), 0);
    st->ops->close(b);
    assert_int_equal(st->ops->remove(st, id), 0);
    assert_int_equal(count_objects("ts."), 0);
    free(got);
    free(src);
    st->ops->free(st);
}

static const char *keep_id;
static bool referenced(void *ctx, const char *id)
{
    (void)ctx;
    return keep_id && strcmp(id, keep_id) == 0;
}

/* An aborted writer leaves nothing; a writer that died (never committed nor aborted, as in
 * a crash) and a committed blob nobody refers to are removed by reconcile, the referenced
 * one is kept, and a grace period spares young objects. */
static void test_orphans(void **state)
{
    (void)state;
    NEED_CEPH();
    struct ts_object_store *st = open_store(0);
    struct ts_err err;
    unsigned char *data = malloc(5u << 20);
    assert_non_null(data);
    fill(data, 5u << 20, 0);

    struct ts_object_writer *w = NULL;
    assert_int_equal(st->ops->writer_new(st, &w, &err), 0);
    assert_int_equal(st->ops->write(w, data, 5u << 20, &err), 0);
    assert_true(count_objects("ts.") >= 1);
    st->ops->abort(w);
    assert_int_equal(count_objects("ts."), 0);

    char keep[TS_OBJECT_BLOB_ID_MAX], gone[TS_OBJECT_BLOB_ID_MAX], md5[33];
    assert_int_equal(st->ops->writer_new(st, &w, &err), 0);
    assert_int_equal(st->ops->write(w, "keep", 4, &err), 0);
    assert_int_equal(st->ops->commit(w, keep, md5, NULL, &err), 0);
    assert_int_equal(st->ops->writer_new(st, &w, &err), 0);
    assert_int_equal(st->ops->write(w, data, 5u << 20, &err), 0);
    assert_int_equal(st->ops->commit(w, gone, md5, NULL, &err), 0);
    /* a crashed upload: data objects written, no head (the writer is neither committed nor
     * aborted until after the reconcile) */
    struct ts_object_store *crash = open_store(0);
    struct ts_object_writer *dead = NULL;
    assert_int_equal(crash->ops->writer_new(crash, &dead, &err), 0);
    assert_int_equal(crash->ops->write(dead, data, 5u << 20, &err), 0); /* 5 flushed MiB */
    int before = count_objects("ts.");
    assert_int_equal(before, 2 + 3 + 2); /* keep: head+1, gone: head+2, dead: 4 MiB + 1 MiB */

    /* within the grace period nothing goes */
    struct ts_object_store *graceful = open_store(3600);
    keep_id = keep;
    assert_int_equal(graceful->ops->reconcile(graceful, referenced, NULL), 0);
    assert_int_equal(count_objects("ts."), before);
    graceful->ops->free(graceful);

    assert_int_equal(st->ops->reconcile(st, referenced, NULL), 2); /* gone + dead */
    assert_int_equal(count_objects("ts."), 2);
    struct ts_object_blob *b = NULL;
    assert_int_equal(st->ops->open(st, keep, &b, NULL, &err), 0);
    char buf[8] = {0};
    assert_int_equal(st->ops->pread(b, buf, 8, 0), 4);
    assert_memory_equal(buf, "keep", 4);
    st->ops->close(b);
    assert_int_equal(st->ops->open(st, gone, &b, NULL, &err), -TS_ENOTFOUND);

    /* the dead writer's commit now fails (its chunks are gone) instead of making a torn blob */
    char did[TS_OBJECT_BLOB_ID_MAX];
    assert_int_not_equal(crash->ops->commit(dead, did, md5, NULL, &err), 0);
    crash->ops->free(crash);

    assert_int_equal(st->ops->remove(st, keep), 0);
    assert_int_equal(count_objects("ts."), 0);
    /* objects that are not ours are never touched */
    assert_int_equal(foreign_object(true), 0);
    keep_id = NULL;
    assert_int_equal(st->ops->reconcile(st, referenced, NULL), 0);
    assert_int_equal(count_objects("ts."), 0);
    assert_int_equal(count_objects("other."), 1);
    assert_int_equal(foreign_object(false), 0);
    free(data);
    st->ops->free(st);
}

static void test_bad_config(void **state)
{
    (void)state;
    struct ts_object_store *st = NULL;
    struct ts_err err;
    struct ts_object_store_rados_opts o = {.conf_path = "/nonexistent/ceph.conf", .pool = "p"};
    assert_int_equal(ts_object_store_rados_new(&o, &st, &err), -TS_EINVAL);
    o.pool = NULL;
    assert_int_equal(ts_object_store_rados_new(&o, &st, &err), -TS_EINVAL);
    assert_int_equal(ts_object_store_rados_new(NULL, &st, &err), -TS_EINVAL);
    assert_null(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_small),
        cmocka_unit_test(test_large_ranges),
        cmocka_unit_test(test_orphans),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
