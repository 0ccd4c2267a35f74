/*
 * ts_volume_util.h: pure helpers of the volume service (no I/O, no database), unit
 * tested in tests/unit/volume/test_volume_util.c: microversion headers, sort and size
 * parsing, state rules, and the sparse file copy used by the file backend.
 */
#ifndef TS_VOLUME_UTIL_H
#define TS_VOLUME_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include "core/ts_core.h"

#define TS_VOLUME_MV_MIN 0  /* 3.0 */
#define TS_VOLUME_MV_MAX 70 /* 3.70, as Cinder Zed */

/* Parses an "OpenStack-API-Version" header value ("volume 3.27", "compute 2.1, volume
 * latest") for the volume service. NULL/absent volume entry -> 3.0. Sets *minor to the
 * minor number. Returns 0, -TS_EINVAL for a malformed value (400), -TS_ENOTACCEPT for a
 * version outside [3.0, 3.70] (406). */
int ts_volume_mv_parse(const char *header, int *minor, struct ts_err *err);

/* One sort key: a column name from the allowed list and a direction. */
struct ts_volume_sort {
    char key[32];
    bool desc;
};
/* Parses Cinder's sort parameters: "sort=k1:dir,k2" or sort_key/sort_dir (comma lists).
 * allowed: NULL-terminated list of public keys; map_to: same index, the SQL column.
 * Fills up to max keys (default created_at desc, id desc when none). Returns the count
 * or -TS_EINVAL with a message naming the bad key/direction. */
int ts_volume_sort_parse(const char *sort, const char *sort_key, const char *sort_dir,
                         const char *const *allowed, const char *const *map_to, struct ts_volume_sort *out,
                         int max, struct ts_err *err);

/* Parses a JSON-ish size text ("1", "10") as Cinder does: a positive integer
 * (1 .. 2^31). Returns 0 or -TS_EINVAL with Cinder's message. */
int ts_volume_size_parse(const char *text, int64_t *out, struct ts_err *err);

/* true when a volume in this status may be deleted without force. */
bool ts_volume_status_deletable(const char *status);
/* true for status values os-reset_status accepts. */
bool ts_volume_status_valid(const char *status);

/* Copies src to dst (both open fds) from offset 0, len bytes, leaving holes where the
 * source reads as zeros (block-wise, 1 MiB), then sets dst's size to len. */
int ts_volume_sparse_copy(int src, int dst, int64_t len, struct ts_err *err);

/* Checks that a name/description fits Cinder's limits (255 bytes, valid UTF-8). */
int ts_volume_check_text(const char *field, const char *value, size_t max, struct ts_err *err);

#endif
