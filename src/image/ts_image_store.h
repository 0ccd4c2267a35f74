/*
 * ts_image_store.h: where image bytes live. A store keeps one object per image id;
 * writers stream into a hidden temporary object and commit atomically, so a reader never
 * sees a partial image. The filesystem store keeps <dir>/<id> with temp files
 * <dir>/.<id>.tmp.<random> in the same directory (fsync, rename, fsync dir). The swift
 * store (ts_image_swift.c) keeps <container>/<id> in the object service, large images as
 * an SLO manifest <id> over segments <id>-00001...; it is reached with the service's own
 * credentials. Other backends (Ceph) can implement the same calls later.
 *
 * Threads: a store may be used from any thread; each writer and reader belongs to one
 * thread at a time.
 */
#ifndef TS_IMAGE_STORE_H
#define TS_IMAGE_STORE_H

#include <stdint.h>
#include <sys/types.h>
#include "core/ts_core.h"

struct ts_image_store;
struct ts_image_store_writer;

/* Opens (creating) the store under dir and removes stray temporary files left by a
 * crash. Returns 0 and *out, or -TS_EIO. */
int ts_image_store_open(const char *dir, struct ts_image_store **out, struct ts_err *err);
/* File store: write new images with O_DIRECT (the default) or through the page cache. */
void ts_image_store_set_direct(struct ts_image_store *s, bool direct);
void ts_image_store_close(struct ts_image_store *s);   /* NULL is a no-op */
const char *ts_image_store_dir(const struct ts_image_store *s);

/* The swift store: where and as whom. Strings are copied. */
struct ts_image_swift_opts {
    const char *url;              /* ".../v1/AUTH_<project>"; NULL: derived from object_host/port */
    const char *object_host;      /* host of the object service when url is NULL */
    int object_port;
    const char *identity_url;     /* POST <identity_url>/v3/auth/tokens */
    const char *username, *password, *project_name;
    const char *user_domain_id, *project_domain_id;   /* NULL = "default" */
    const char *container;        /* "glance" */
    uint64_t large_object_size;   /* images above this (or of unknown size) are segmented */
    uint64_t segment_size;        /* bytes per segment, >= 1 */
};
/* Opens a swift store (no network traffic yet: the token, the container and the object
 * URL are resolved on first use). -TS_EINVAL for bad options. */
int ts_image_store_open_swift(const struct ts_image_swift_opts *o, struct ts_image_store **out, struct ts_err *err);
/* "file" or "swift". */
const char *ts_image_store_name(const struct ts_image_store *s);
/* true when ts_image_store_open_read gives a seekable fd (file store); others stream with
 * ts_image_store_open_range. */
bool ts_image_store_has_fd(const struct ts_image_store *s);

/* Starts writing the object for id (a UUID). */
int ts_image_store_open_write(struct ts_image_store *s, const char *id, struct ts_image_store_writer **out,
                              struct ts_err *err);
/* The same with the expected size (-1 unknown): the swift store writes one object when the
 * size is known and at most large_object_size, segments otherwise. */
int ts_image_store_open_write_sized(struct ts_image_store *s, const char *id, int64_t size,
                                    struct ts_image_store_writer **out, struct ts_err *err);
/* Appends len bytes; -TS_EIO (disk full, ...). */
int ts_image_store_write(struct ts_image_store_writer *w, const void *data, size_t len, struct ts_err *err);
uint64_t ts_image_store_written(const struct ts_image_store_writer *w);
/* Makes the object durable and visible under id, replacing any previous one; frees w
 * whatever the outcome (on failure the temporary data is removed). */
int ts_image_store_commit(struct ts_image_store_writer *w, struct ts_err *err);
/* Drops the temporary data and frees w. NULL is a no-op. */
void ts_image_store_abort(struct ts_image_store_writer *w);

/* Opens the object for reading: *fd (caller closes) and *size. -TS_ENOTFOUND if absent. */
int ts_image_store_open_read(struct ts_image_store *s, const char *id, int *fd, uint64_t *size, struct ts_err *err);
bool ts_image_store_exists(struct ts_image_store *s, const char *id);

/* Streams len bytes of the object from off (any store): a reader whose read/free fit
 * ts_http_resp_stream (read blocks until data, returns 0 at the end, -1 on error).
 * -TS_ENOTFOUND if absent, -TS_ERANGE if off/len lie outside the object. */
struct ts_image_store_reader;
int ts_image_store_open_range(struct ts_image_store *s, const char *id, uint64_t off, uint64_t len,
                              struct ts_image_store_reader **out, struct ts_err *err);
ssize_t ts_image_store_reader_read(void *reader, uint64_t pos, char *buf, size_t max);
void ts_image_store_reader_free(void *reader);   /* NULL is a no-op */
/* Removes the object; absent is not an error. */
int ts_image_store_delete(struct ts_image_store *s, const char *id, struct ts_err *err);

#endif
