/*
 * ts_image_store.h: where image bytes live. A store keeps one object per image id;
 * writers stream into a hidden temporary object and commit atomically, so a reader never
 * sees a partial image. The filesystem store keeps <dir>/<id> with temp files
 * <dir>/.<id>.tmp.<random> in the same directory (fsync, rename, fsync dir). Other
 * backends (Ceph) can implement the same calls later.
 *
 * Threads: a store may be used from any thread; each writer belongs to one thread.
 */
#ifndef TS_IMAGE_STORE_H
#define TS_IMAGE_STORE_H

#include <stdint.h>
#include "core/ts_core.h"

struct ts_image_store;
struct ts_image_store_writer;

/* Opens (creating) the store under dir and removes stray temporary files left by a
 * crash. Returns 0 and *out, or -TS_EIO. */
int ts_image_store_open(const char *dir, struct ts_image_store **out, struct ts_err *err);
void ts_image_store_close(struct ts_image_store *s);   /* NULL is a no-op */
const char *ts_image_store_dir(const struct ts_image_store *s);

/* Starts writing the object for id (a UUID). */
int ts_image_store_open_write(struct ts_image_store *s, const char *id, struct ts_image_store_writer **out,
                              struct ts_err *err);
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
/* Removes the object; absent is not an error. */
int ts_image_store_delete(struct ts_image_store *s, const char *id, struct ts_err *err);

#endif
