/*
 * ts_image_util.h: the image service's pure helpers, kept apart from HTTP and SQL so
 * they can be unit tested: qcow2 header parsing, Glance's JSON-patch dialect applied to
 * an image's API view, validation of that view against the image schema, list filter
 * operators ("in:", "gte:"...), sort parameters, HTTP Range parsing, and the swift
 * store's helpers (sizes, store lists, token bodies, ETags, segment names).
 */
#ifndef TS_IMAGE_UTIL_H
#define TS_IMAGE_UTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include "core/ts_core.h"

/* ---- formats -------------------------------------------------------------------- */
/* The qcow2 virtual size: magic "QFI\xfb" and the big-endian u64 at bytes 24..31.
 * Returns 0 and *out, or -TS_EINVAL when hdr (len bytes) is not a qcow2 header. */
int ts_image_qcow2_virtual_size(const unsigned char *hdr, size_t len, uint64_t *out);
/* true if s is one of Glance's default disk / container formats. */
bool ts_image_disk_format_valid(const char *s);
bool ts_image_container_format_valid(const char *s);

/* ---- the image view ------------------------------------------------------------------ */
/* true for read-only attributes (created_at, status, checksum, size, id, ...). */
bool ts_image_attr_readonly(const char *name);
/* true for reserved names ("location", "deleted", "deleted_at", "os_glance_*"). */
bool ts_image_attr_reserved(const char *name);
/* true for the writable base attributes (name, visibility, tags, min_disk, ...). */
bool ts_image_attr_base(const char *name);
/* Checks the writable attributes present in view (a JSON object): types, enums, lengths,
 * and that every extra property is a string of at most 65535 bytes with a key <= 255.
 * -TS_EINVAL (400) with Glance's message, -TS_EFORBIDDEN for reserved/read-only keys
 * when check_readonly is true (create bodies). */
int ts_image_view_validate(const json_t *view, bool check_readonly, struct ts_err *err);

/* Applies a Glance JSON-patch body (an array of {op, path, value}) to view in place.
 * draft is 10 (application/openstack-images-v2.1-json-patch: {"op": "add", "path": ...})
 * or 4 (v2.0: {"add": "/path", "value": ...}). Errors as Glance: 400 malformed, 403
 * read-only/reserved/remove of a base attribute, 409 replace/remove of a missing
 * property (and draft-4 add of an existing one). The result is validated with
 * ts_image_view_validate. */
int ts_image_patch_apply(json_t *view, const json_t *ops, int draft, struct ts_err *err);

/* ---- list parameters -------------------------------------------------------------------- */
/* "in:a,b,\"c,d\"" -> values (pool strings); a value without "in:" -> one value.
 * Returns the count (>= 1) or -TS_EINVAL. */
int ts_image_filter_in(struct ts_pool *pool, const char *v, const char ***out, struct ts_err *err);
/* "gte:2024-01-01T00:00:00Z" -> *sql_op ">=" and *t; no operator means "=".
 * Operators: gt gte lt lte eq neq. -TS_EINVAL on a bad operator or time. */
int ts_image_filter_time(const char *v, const char **sql_op, double *t, struct ts_err *err);

#define TS_IMAGE_SORT_MAX 8
struct ts_image_sort {
    int n;
    const char *keys[TS_IMAGE_SORT_MAX];   /* validated sort keys (static strings) */
    bool desc[TS_IMAGE_SORT_MAX];
};
/* Glance's two syntaxes: sort="name:asc,size:desc", or repeated sort_key / sort_dir.
 * Combining both -> 400. Default created_at desc. */
int ts_image_sort_parse(const char *sort, const char *const *sort_keys, int n_keys, const char *const *sort_dirs,
                        int n_dirs, struct ts_image_sort *out, struct ts_err *err);

/* Parses a "Range: bytes=N-M" header against size. Returns 0 with *off and *len for a single
 * satisfiable range, 1 when the header should be ignored (absent, multi-range, not bytes),
 * -TS_ERANGE when unsatisfiable, -TS_EINVAL when malformed. */
int ts_image_range_parse(const char *h, uint64_t size, uint64_t *off, uint64_t *len);

/* ---- stores -------------------------------------------------------------------------- */
/* "5368709120", "5G", "200M", "64KiB", "1T" (binary units) -> *out bytes. -TS_EINVAL for
 * anything else, zero, or an overflow. */
int ts_image_size_parse(const char *s, uint64_t *out);
/* [image] stores ("file,swift") and default_store: which stores are enabled. default_store
 * is always enabled, file always is (staging and older images live there). -TS_EINVAL for
 * an unknown store name. */
int ts_image_stores_parse(const char *stores, const char *default_store, bool *file, bool *swift,
                          struct ts_err *err);
/* From a Keystone v3 token body: the project id (into project_id[cap]) and expires_at
 * (epoch seconds). -TS_EINVAL when either is missing. */
int ts_image_token_parse(const char *body, size_t len, char *project_id, size_t cap, double *expires_at);
/* true when a token obtained at issued_at and expiring at expires_at should be renewed at
 * now: in its last quarter of life and its last 5 minutes, but never in its first half. */
bool ts_image_token_stale(double now, double issued_at, double expires_at);
/* true when the ETag header value (quoted or not) names the md5 hex digest. */
bool ts_image_etag_match(const char *etag, const char *md5_hex);
/* "<id>-00001": segment n (from 1) of object id, into out[cap]. -TS_EINVAL if it does not fit. */
int ts_image_segment_name(const char *id, int n, char *out, size_t cap);

#endif
