/*
 * ts_image_swift.h: the swift image store's calls, used by ts_image_store.c behind the
 * store interface (ts_image_store.h). Not for other files.
 */
#ifndef TS_IMAGE_SWIFT_H
#define TS_IMAGE_SWIFT_H

#include "image/ts_image_store.h"

struct ts_image_swift;
struct ts_image_swift_writer;
struct ts_image_swift_reader;

int ts_image_swift_new(const struct ts_image_swift_opts *o, struct ts_image_swift **out, struct ts_err *err);
void ts_image_swift_free(struct ts_image_swift *sw); /* NULL is a no-op */

/* size: expected bytes or -1. Creates the container when needed. */
int ts_image_swift_open_write(struct ts_image_swift *sw, const char *id, int64_t size,
                              struct ts_image_swift_writer **out, struct ts_err *err);
int ts_image_swift_write(struct ts_image_swift_writer *w, const void *data, size_t len, struct ts_err *err);
uint64_t ts_image_swift_written(const struct ts_image_swift_writer *w);
/* Completes the object (and the SLO manifest), checks every ETag; frees w. On failure
 * what was written is deleted. */
int ts_image_swift_commit(struct ts_image_swift_writer *w, struct ts_err *err);
/* Stops the transfer, deletes what was written, frees w. NULL is a no-op. */
void ts_image_swift_abort(struct ts_image_swift_writer *w);

/* GET with Range bytes=off-(off+len-1) (no Range when len is 0), streamed through a
 * socketpair by a thread; returns once the object service answered. */
int ts_image_swift_open_range(struct ts_image_swift *sw, const char *id, uint64_t off, uint64_t len,
                              struct ts_image_swift_reader **out, struct ts_err *err);
ssize_t ts_image_swift_read(struct ts_image_swift_reader *r, char *buf, size_t max);
void ts_image_swift_reader_free(struct ts_image_swift_reader *r); /* NULL is a no-op */

/* HEAD: 0 and *exists, or an error when the object service cannot be asked. */
int ts_image_swift_exists(struct ts_image_swift *sw, const char *id, bool *exists, struct ts_err *err);
/* Deletes <id> and every <id>-NNNNN segment; absent is not an error. */
int ts_image_swift_delete(struct ts_image_swift *sw, const char *id, struct ts_err *err);

#endif
