/*
 * ts_object_store_rados.c: the Ceph RADOS backend of ts_object_store (librados C API), for
 * object servers that share their bytes through a Ceph pool ([object] backend = rados).
 *
 * A blob with id <hex32> is a set of RADOS objects in the pool:
 *   ts.<hex32>.<n>   data, bytes [n*CHUNK, (n+1)*CHUNK) of the blob (n = 0, 1, ...; a
 *                    0-byte blob has none). Striping keeps every RADOS object far below the
 *                    OSD's osd_max_object_size (128 MiB), so Swift's 5 GiB objects fit.
 *   ts.<hex32>       the head: no data, xattrs ts.size, ts.md5, ts.chunk. Written last, in
 *                    one atomic write op, by commit; a blob without a head does not exist.
 * RADOS has no rename, so the temp name of a blob being written *is* its final id: nothing
 * refers to it until the object service writes the listing row (the atomic switch), and an
 * overwrite removes the old blob only after the row points to the new one. A crash leaves the
 * old or the new blob listed, never a mix; what it leaves behind (chunks without a head,
 * committed blobs without a row) is unreferenced, and the startup reconcile lists the pool
 * (rados_nobjects_list) and removes ts.* objects of unreferenced blobs once they are older
 * than a grace period (so a reconcile on one server does not eat another server's upload).
 *
 * Memory is constant per writer (a WBUF write-behind buffer) and per reader (an RBUF
 * read-ahead buffer). Threads: one rados_t cluster handle (thread-safe) per store, and an
 * ioctx per writer, per open blob and per call of the other ops.
 */
#include "object/ts_object_store.h"
#include "object/ts_object_rados_dl.h"

#include <errno.h>
#include <openssl/evp.h>
#include <rados/librados.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MOD "object"
#define CHUNK ((uint64_t)4 << 20) /* bytes per data object */
#define WBUF ((size_t)1 << 20)    /* write-behind buffer; divides CHUNK */
#define RBUF ((size_t)1 << 20)    /* read-ahead buffer */
#define PREFIX "ts."
#define NAME_MAX_LEN 64

struct rados_store {
    struct ts_object_store base;
    rados_t cluster;
    char *pool;
    int64_t orphan_grace;
};

struct ts_object_writer {
    struct rados_store *rs;
    rados_ioctx_t io;
    char uuid[33];
    EVP_MD_CTX *md5;
    uint64_t size;    /* bytes accepted */
    uint64_t flushed; /* bytes written to RADOS (buf holds [flushed, size)) */
    char *buf;
};

struct ts_object_blob {
    rados_ioctx_t io;
    char uuid[33];
    uint64_t size, chunk;
    char *cache; /* RBUF bytes, allocated on the first small read */
    uint64_t cache_off;
    size_t cache_len;
};

static bool id_valid(const char *id)
{
    if (!id || strlen(id) != 32) return false;
    for (int i = 0; i < 32; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

static void head_name(const char *uuid, char out[NAME_MAX_LEN])
{
    snprintf(out, NAME_MAX_LEN, PREFIX "%s", uuid);
}

static void chunk_name(const char *uuid, uint64_t n, char out[NAME_MAX_LEN])
{
    snprintf(out, NAME_MAX_LEN, PREFIX "%s.%llu", uuid, (unsigned long long)n);
}

/* A librados error (negative errno) as a ts error: full pool -> 507 as the file backend
 * answers ENOSPC, a cluster that does not answer -> 503. */
static int rados_fail(struct ts_err *err, int r, const char *what, const char *name)
{
    int e = -r;
    if (e == ENOSPC || e == EDQUOT)
        return ts_err_set_full(err, TS_EUNAVAIL, 507, NULL, "%s %s: %s", what, name, strerror(e));
    if (e == ETIMEDOUT || e == ENOTCONN || e == ESHUTDOWN)
        return ts_err_set(err, TS_EUNAVAIL, "%s %s: Ceph did not answer: %s", what, name, strerror(e));
    if (e == ENOENT) return ts_err_set(err, TS_ENOTFOUND, "%s %s: %s", what, name, strerror(e));
    return ts_err_set(err, TS_EIO, "%s %s: %s", what, name, strerror(e));
}

static int ioctx(struct rados_store *rs, rados_ioctx_t *io, struct ts_err *err)
{
    int r = rados_ioctx_create(rs->cluster, rs->pool, io);
    /* a vanished pool is an outage, not "this blob is gone" (reconcile drops rows on 404) */
    if (r < 0) return rados_fail(err, r == -ENOENT ? -ENOTCONN : r, "pool", rs->pool);
    return 0;
}

/* Removes the data objects of uuid from chunk 0 up to the first missing one (chunks are
 * written in order, so a gap is where a blob ends or where an earlier removal stopped). */
static int remove_chunks(rados_ioctx_t io, const char *uuid)
{
    char name[NAME_MAX_LEN];
    for (uint64_t n = 0;; n++) {
        chunk_name(uuid, n, name);
        int r = rados_remove(io, name);
        if (r == -ENOENT) return 0;
        if (r < 0) return r;
    }
}

static int rw_writer_new(struct ts_object_store *s, struct ts_object_writer **out, struct ts_err *err)
{
    struct rados_store *rs = (struct rados_store *)s;
    rados_ioctx_t io;
    int rc = ioctx(rs, &io, err);
    if (rc < 0) return rc;
    struct ts_object_writer *w = ts_calloc(1, sizeof(*w));
    w->rs = rs;
    w->io = io;
    ts_uuid_hex(w->uuid);
    w->buf = ts_malloc(WBUF);
    w->md5 = EVP_MD_CTX_new();
    EVP_DigestInit_ex(w->md5, EVP_md5(), NULL);
    *out = w;
    return 0;
}

/* Writes the buffered bytes [flushed, size) at their offsets in the data objects. */
static int flush(struct ts_object_writer *w, struct ts_err *err)
{
    const char *p = w->buf;
    while (w->flushed < w->size) {
        uint64_t n = w->flushed / CHUNK, off = w->flushed % CHUNK;
        uint64_t len = w->size - w->flushed;
        if (len > CHUNK - off) len = CHUNK - off;
        char name[NAME_MAX_LEN];
        chunk_name(w->uuid, n, name);
        int r = rados_write(w->io, name, p, (size_t)len, off);
        if (r < 0) return rados_fail(err, r, "write", name);
        p += len;
        w->flushed += len;
    }
    return 0;
}

static int rw_write(struct ts_object_writer *w, const void *data, size_t len, struct ts_err *err)
{
    const char *p = data;
    EVP_DigestUpdate(w->md5, data, len);
    while (len > 0) {
        size_t used = (size_t)(w->size - w->flushed);
        size_t take = WBUF - used < len ? WBUF - used : len;
        memcpy(w->buf + used, p, take);
        w->size += take;
        p += take;
        len -= take;
        if (w->size - w->flushed == WBUF) {
            int rc = flush(w, err);
            if (rc < 0) return rc;
        }
    }
    return 0;
}

static void writer_free(struct ts_object_writer *w)
{
    rados_ioctx_destroy(w->io);
    EVP_MD_CTX_free(w->md5);
    free(w->buf);
    free(w);
}

static void rw_abort(struct ts_object_writer *w)
{
    if (!w) return;
    remove_chunks(w->io, w->uuid);
    writer_free(w);
}

/* Every data object must be there with its full length before the head makes the blob
 * exist: an upload that stalled past the orphan grace may have lost chunks to a reconcile. */
static int verify_chunks(struct ts_object_writer *w, struct ts_err *err)
{
    uint64_t nchunks = (w->size + CHUNK - 1) / CHUNK;
    for (uint64_t n = 0; n < nchunks; n++) {
        char name[NAME_MAX_LEN];
        chunk_name(w->uuid, n, name);
        uint64_t sz = 0;
        time_t mt;
        int r = rados_stat(w->io, name, &sz, &mt);
        if (r < 0) return rados_fail(err, r == -ENOENT ? -EIO : r, "verify", name);
        uint64_t want = n + 1 < nchunks ? CHUNK : w->size - n * CHUNK;
        if (sz != want) return ts_err_set(err, TS_EIO, "verify %s: %llu bytes, expected %llu", name,
                                          (unsigned long long)sz, (unsigned long long)want);
    }
    return 0;
}

static int rw_commit(struct ts_object_writer *w, char id[TS_OBJECT_BLOB_ID_MAX], char md5[33], uint64_t *size,
                     struct ts_err *err)
{
    unsigned char dg[16];
    unsigned dl = 0;
    EVP_DigestFinal_ex(w->md5, dg, &dl);
    ts_hex(dg, 16, md5);
    if (size) *size = w->size;
    int rc = flush(w, err);
    if (rc == 0) rc = verify_chunks(w, err);
    if (rc == 0) {
        char head[NAME_MAX_LEN], sz[24], ch[24];
        head_name(w->uuid, head);
        snprintf(sz, sizeof(sz), "%llu", (unsigned long long)w->size);
        snprintf(ch, sizeof(ch), "%llu", (unsigned long long)CHUNK);
        rados_write_op_t op = rados_create_write_op();
        rados_write_op_create(op, LIBRADOS_CREATE_EXCLUSIVE, NULL);
        rados_write_op_setxattr(op, "ts.size", sz, strlen(sz));
        rados_write_op_setxattr(op, "ts.chunk", ch, strlen(ch));
        rados_write_op_setxattr(op, "ts.md5", md5, 32);
        int r = rados_write_op_operate(op, w->io, head, NULL, 0);
        rados_release_write_op(op);
        if (r < 0) rc = rados_fail(err, r, "commit", head);
    }
    if (rc == 0) snprintf(id, TS_OBJECT_BLOB_ID_MAX, "%s", w->uuid);
    else remove_chunks(w->io, w->uuid);
    writer_free(w);
    return rc;
}

static int xattr_u64(rados_ioctx_t io, const char *obj, const char *key, uint64_t *out)
{
    char v[32];
    int r = rados_getxattr(io, obj, key, v, sizeof(v) - 1);
    if (r < 0) return r;
    v[r] = 0;
    int64_t x;
    if (ts_parse_int64(v, &x) < 0 || x < 0) return -EIO;
    *out = (uint64_t)x;
    return 0;
}

static int rw_open(struct ts_object_store *s, const char *id, struct ts_object_blob **out, uint64_t *size,
                   struct ts_err *err)
{
    struct rados_store *rs = (struct rados_store *)s;
    if (!id_valid(id)) return ts_err_set(err, TS_ENOTFOUND, "bad blob id");
    rados_ioctx_t io;
    int rc = ioctx(rs, &io, err);
    if (rc < 0) return rc;
    char head[NAME_MAX_LEN];
    head_name(id, head);
    uint64_t bsize = 0, chunk = 0;
    int r = xattr_u64(io, head, "ts.size", &bsize);
    if (r == 0) r = xattr_u64(io, head, "ts.chunk", &chunk);
    if (r == 0 && chunk == 0) r = -EIO;
    if (r < 0) {
        rados_ioctx_destroy(io);
        /* a head without ts.size (ENODATA) is not a blob of ours */
        return rados_fail(err, r == -ENODATA ? -ENOENT : r, "blob", head);
    }
    struct ts_object_blob *b = ts_calloc(1, sizeof(*b));
    b->io = io;
    memcpy(b->uuid, id, 33);
    b->size = bsize;
    b->chunk = chunk;
    if (size) *size = bsize;
    *out = b;
    return 0;
}

/* One rados_read that stays inside a data object; the bytes a full blob must have. */
static ssize_t read_at(struct ts_object_blob *b, char *buf, size_t len, uint64_t off)
{
    uint64_t n = off / b->chunk, in = off % b->chunk;
    if (len > b->chunk - in) len = (size_t)(b->chunk - in);
    if (len > b->size - off) len = (size_t)(b->size - off);
    char name[NAME_MAX_LEN];
    chunk_name(b->uuid, n, name);
    int r = rados_read(b->io, name, buf, len, in);
    if (r < 0) {
        ts_warn(MOD, "rados read %s at %llu: %s", name, (unsigned long long)in, strerror(-r));
        return -1;
    }
    if ((size_t)r != len) {
        ts_warn(MOD, "rados read %s: %d bytes, expected %zu", name, r, len);
        return -1;
    }
    return r;
}

static ssize_t rw_pread(struct ts_object_blob *b, void *buf, size_t len, uint64_t off)
{
    if (off >= b->size || len == 0) return 0;
    if (b->cache && off >= b->cache_off && off < b->cache_off + b->cache_len) {
        size_t in = (size_t)(off - b->cache_off), n = b->cache_len - in;
        if (n > len) n = len;
        memcpy(buf, b->cache + in, n);
        return (ssize_t)n;
    }
    if (len >= RBUF) return read_at(b, buf, len, off);
    /* small reads (HTTP streaming asks for tens of KiB) go through the read-ahead buffer */
    if (!b->cache) b->cache = ts_malloc(RBUF);
    b->cache_len = 0;
    ssize_t got = read_at(b, b->cache, RBUF, off);
    if (got < 0) return -1;
    b->cache_off = off;
    b->cache_len = (size_t)got;
    size_t n = (size_t)got < len ? (size_t)got : len;
    memcpy(buf, b->cache, n);
    return (ssize_t)n;
}

static int rw_dup_fd(struct ts_object_blob *b)
{
    (void)b;
    return -1;
}

static void rw_close(struct ts_object_blob *b)
{
    if (!b) return;
    rados_ioctx_destroy(b->io);
    free(b->cache);
    free(b);
}

/* librados' C API has no server-side copy: the bytes go through this process, RBUF at a time. */
static int rw_clone(struct ts_object_store *s, const char *id, char out[TS_OBJECT_BLOB_ID_MAX], struct ts_err *err)
{
    struct ts_object_blob *b = NULL;
    struct ts_object_writer *w = NULL;
    uint64_t size = 0;
    char *buf = NULL;
    int rc = rw_open(s, id, &b, &size, err);
    if (rc < 0) goto out;
    rc = rw_writer_new(s, &w, err);
    if (rc < 0) goto out;
    buf = ts_malloc(RBUF);
    for (uint64_t off = 0; off < size;) {
        ssize_t n = read_at(b, buf, RBUF, off);
        if (n <= 0) {
            rc = ts_err_set(err, TS_EIO, "clone: cannot read blob %s", id);
            goto out;
        }
        rc = rw_write(w, buf, (size_t)n, err);
        if (rc < 0) goto out;
        off += (uint64_t)n;
    }
    char md5[33];
    rc = rw_commit(w, out, md5, NULL, err);
    w = NULL;
out:
    rw_abort(w);
    rw_close(b);
    free(buf);
    return rc;
}

static int rw_remove(struct ts_object_store *s, const char *id)
{
    struct rados_store *rs = (struct rados_store *)s;
    if (!id_valid(id)) return 0;
    rados_ioctx_t io;
    if (ioctx(rs, &io, NULL) < 0) return -TS_EUNAVAIL;
    char head[NAME_MAX_LEN];
    head_name(id, head);
    /* head first: from here on the blob does not exist, even if a crash stops us midway */
    int r = rados_remove(io, head);
    if (r == 0 || r == -ENOENT) r = remove_chunks(io, id);
    rados_ioctx_destroy(io);
    if (r < 0) {
        ts_warn(MOD, "rados remove %s: %s (reconcile will retry)", head, strerror(-r));
        return -TS_EIO;
    }
    return 0;
}

/* The blob id of a RADOS object name of ours ("ts.<hex32>" or "ts.<hex32>.<n>"), else false. */
static bool name_blob(const char *name, char uuid[33])
{
    if (strncmp(name, PREFIX, strlen(PREFIX)) != 0) return false;
    const char *p = name + strlen(PREFIX);
    if (strlen(p) < 32) return false;
    memcpy(uuid, p, 32);
    uuid[32] = 0;
    if (!id_valid(uuid)) return false;
    p += 32;
    if (*p == 0) return true;
    if (*p++ != '.' || !*p) return false;
    for (; *p; p++)
        if (*p < '0' || *p > '9') return false;
    return true;
}

static int rw_reconcile(struct ts_object_store *s, bool (*referenced)(void *ctx, const char *id), void *ctx)
{
    struct rados_store *rs = (struct rados_store *)s;
    rados_ioctx_t io;
    struct ts_err e;
    if (ioctx(rs, &io, &e) < 0) {
        ts_warn(MOD, "reconcile: %s", e.msg);
        return 0;
    }
    rados_list_ctx_t lc;
    int r = rados_nobjects_list_open(io, &lc);
    if (r < 0) {
        ts_warn(MOD, "reconcile: cannot list pool %s: %s", rs->pool, strerror(-r));
        rados_ioctx_destroy(io);
        return 0;
    }
    /* distinct blob ids removed, to count blobs rather than RADOS objects */
    char (*seen)[33] = NULL;
    size_t nseen = 0, cap = 0;
    time_t now = time(NULL);
    const char *name;
    while (rados_nobjects_list_next(lc, &name, NULL, NULL) == 0) {
        char uuid[33];
        if (!name_blob(name, uuid)) continue;
        if (referenced(ctx, uuid)) continue;
        uint64_t sz;
        time_t mt = 0;
        if (rados_stat(io, name, &sz, &mt) < 0) continue;
        if (rs->orphan_grace > 0 && (int64_t)(now - mt) < rs->orphan_grace) continue;
        /* removing while listing is safe: the cursor is a hash position, not an index */
        if (rados_remove(io, name) < 0) continue;
        bool dup = false;
        for (size_t i = 0; i < nseen && !dup; i++) dup = strcmp(seen[i], uuid) == 0;
        if (!dup) {
            if (nseen == cap) {
                cap = cap ? cap * 2 : 16;
                seen = realloc(seen, cap * sizeof(*seen));
                TS_ASSERT(seen);
            }
            memcpy(seen[nseen++], uuid, 33);
        }
    }
    rados_nobjects_list_close(lc);
    rados_ioctx_destroy(io);
    free(seen);
    return (int)nseen;
}

static void rw_free(struct ts_object_store *s)
{
    struct rados_store *rs = (struct rados_store *)s;
    if (!rs) return;
    rados_shutdown(rs->cluster);
    free(rs->pool);
    free(rs);
}

static const struct ts_object_store_ops rados_ops = {
    .name = "rados",
    .writer_new = rw_writer_new,
    .write = rw_write,
    .commit = rw_commit,
    .abort = rw_abort,
    .open = rw_open,
    .pread = rw_pread,
    .dup_fd = rw_dup_fd,
    .close = rw_close,
    .clone = rw_clone,
    .remove = rw_remove,
    .reconcile = rw_reconcile,
    .free = rw_free,
};

int ts_object_store_rados_new(const struct ts_object_store_rados_opts *opts, struct ts_object_store **out,
                              struct ts_err *err)
{
    if (!opts || !opts->conf_path || !*opts->conf_path || !opts->pool || !*opts->pool)
        return ts_err_set(err, TS_EINVAL, "rados backend needs [object] rados_conf and rados_pool");
    int lrc = ts_object_rados_dl_load(err);
    if (lrc != 0) return lrc;
    rados_t cluster = NULL;
    rados_ioctx_t io = NULL;
    const char *client = opts->client_id && *opts->client_id ? opts->client_id : "admin";
    int rc = 0;
    int r = rados_create(&cluster, client);
    if (r < 0) {
        cluster = NULL;
        rc = rados_fail(err, r, "rados_create", client);
        goto out;
    }
    r = rados_conf_read_file(cluster, opts->conf_path);
    if (r < 0) {
        rc = ts_err_set(err, TS_EINVAL, "cannot read Ceph config %s: %s", opts->conf_path, strerror(-r));
        goto out;
    }
    /* without these, a call into a cluster that went away blocks its thread forever */
    char t[24];
    snprintf(t, sizeof(t), "%d", opts->op_timeout > 0 ? opts->op_timeout : 30);
    rados_conf_set(cluster, "client_mount_timeout", t);
    rados_conf_set(cluster, "rados_mon_op_timeout", t);
    rados_conf_set(cluster, "rados_osd_op_timeout", t);
    /* the object service logs for itself; keep librados off stderr */
    rados_conf_set(cluster, "log_to_stderr", "false");
    rados_conf_set(cluster, "err_to_stderr", "false");
    r = rados_connect(cluster);
    if (r < 0) {
        rc = ts_err_set(err, TS_EUNAVAIL, "cannot connect to Ceph (%s): %s", opts->conf_path, strerror(-r));
        goto out;
    }
    r = rados_pool_lookup(cluster, opts->pool);
    if (r == -ENOENT) {
        r = rados_pool_create(cluster, opts->pool);
        if (r == -EEXIST) r = 0;
        if (r < 0) {
            rc = rados_fail(err, r, "cannot create pool", opts->pool);
            goto out;
        }
        ts_info(MOD, "created RADOS pool %s", opts->pool);
    } else if (r < 0) {
        rc = rados_fail(err, r, "pool", opts->pool);
        goto out;
    }
    r = rados_ioctx_create(cluster, opts->pool, &io);
    if (r < 0) {
        io = NULL;
        rc = rados_fail(err, r, "pool", opts->pool);
        goto out;
    }
    /* tags the pool for `ceph health`; an older cluster without applications is fine */
    rados_application_enable(io, "tinystack", 1);
    struct rados_store *rs = ts_calloc(1, sizeof(*rs));
    rs->base.ops = &rados_ops;
    rs->cluster = cluster;
    rs->pool = ts_strdup(opts->pool);
    rs->orphan_grace = opts->orphan_grace;
    *out = &rs->base;
    cluster = NULL;
out:
    if (io) rados_ioctx_destroy(io);
    if (cluster) rados_shutdown(cluster);
    return rc;
}
