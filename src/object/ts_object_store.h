/*
 * ts_object_store.h: where object bytes live. The object service keeps names, sizes,
 * etags and metadata in its database and the bytes in a store as immutable blobs named
 * by an opaque id: a blob is written once through a writer (temp space, md5 on the fly,
 * durable on commit), read many times, cloned (copies, versions) and removed. Because a
 * blob never changes after commit, an overwrite is "commit new blob, switch the listing
 * row, remove the old blob", and a crash at any point leaves either blob referenced.
 *
 * The file backend (ts_object_store_file_new) keeps blobs under <dir>/<xx>/<id>.data with
 * temp files in <dir>/tmp; the RADOS backend (ts_object_store_rados_new) keeps them as
 * striped objects in a Ceph pool (see ts_object_store_rados.c, docs/internals/object-rados.md).
 * All ops are thread-safe.
 */
#ifndef TS_OBJECT_STORE_H
#define TS_OBJECT_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "core/ts_core.h"

#define TS_OBJECT_BLOB_ID_MAX 64

struct ts_object_store;
struct ts_object_writer;
struct ts_object_blob;

struct ts_object_store_ops {
    const char *name;
    /* Starts a new blob. */
    int (*writer_new)(struct ts_object_store *s, struct ts_object_writer **out, struct ts_err *err);
    int (*write)(struct ts_object_writer *w, const void *data, size_t len, struct ts_err *err);
    /* Makes the blob durable and gives its id (TS_OBJECT_BLOB_ID_MAX bytes) and md5 hex;
     * frees w in every case. */
    int (*commit)(struct ts_object_writer *w, char id[TS_OBJECT_BLOB_ID_MAX], char md5[33], uint64_t *size,
                  struct ts_err *err);
    /* Drops an unfinished blob and frees w. NULL is a no-op. */
    void (*abort)(struct ts_object_writer *w);
    /* Opens a blob for reading; -TS_ENOTFOUND if it is gone. */
    int (*open)(struct ts_object_store *s, const char *id, struct ts_object_blob **out, uint64_t *size,
                struct ts_err *err);
    ssize_t (*pread)(struct ts_object_blob *b, void *buf, size_t len, uint64_t off);
    /* A file descriptor the caller may take over (dup'd) for zero-copy sends, or -1. */
    int (*dup_fd)(struct ts_object_blob *b);
    void (*close)(struct ts_object_blob *b);
    /* A new blob with the same bytes as id (a hard link for files). */
    int (*clone)(struct ts_object_store *s, const char *id, char out[TS_OBJECT_BLOB_ID_MAX], struct ts_err *err);
    /* Removes a blob; a missing one is not an error. */
    int (*remove)(struct ts_object_store *s, const char *id);
    /* Startup pass: removes temp leftovers and every blob for which referenced() is false;
     * returns the number of blobs removed. */
    int (*reconcile)(struct ts_object_store *s, bool (*referenced)(void *ctx, const char *id), void *ctx);
    void (*free)(struct ts_object_store *s);
};

struct ts_object_store {
    const struct ts_object_store_ops *ops;
};

/* The file backend rooted at dir (created if missing). */
int ts_object_store_file_new(const char *dir, struct ts_object_store **out, struct ts_err *err);

struct ts_object_store_rados_opts {
    const char *conf_path;   /* a ceph.conf ([object] rados_conf) */
    const char *pool;        /* created if missing ([object] rados_pool) */
    const char *client_id;   /* NULL = "admin" ([object] rados_client) */
    int op_timeout;          /* seconds for mon/osd ops and connect; <= 0 = 30 */
    int64_t orphan_grace;    /* reconcile spares unreferenced objects younger than this (s) */
};

/* The RADOS backend: connects to the cluster now (-TS_EUNAVAIL if it does not answer within
 * op_timeout) and keeps one cluster handle until ops->free. */
int ts_object_store_rados_new(const struct ts_object_store_rados_opts *opts, struct ts_object_store **out,
                              struct ts_err *err);

#endif
