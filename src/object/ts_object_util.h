/*
 * ts_object_util.h: the object service's pure helpers (no I/O besides the tar reader's
 * read callback): Range headers, listing parameters, Accept negotiation, name and
 * metadata checks, temp URL signatures, content-type guessing and a streaming tar reader.
 * Everything here is unit-tested in tests/unit/object/.
 */
#ifndef TS_OBJECT_UTIL_H
#define TS_OBJECT_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "core/ts_core.h"

/* ---- Swift limits (served by /info) ---- */
#define TS_OBJECT_MAX_FILE_SIZE 5368709122LL
#define TS_OBJECT_MAX_META_NAME 128
#define TS_OBJECT_MAX_META_VALUE 256
#define TS_OBJECT_MAX_META_COUNT 90
#define TS_OBJECT_MAX_META_OVERALL 4096
#define TS_OBJECT_MAX_HEADER_SIZE 8192
#define TS_OBJECT_MAX_OBJECT_NAME 1024
#define TS_OBJECT_LISTING_LIMIT 10000
#define TS_OBJECT_MAX_ACCOUNT_NAME 256
#define TS_OBJECT_MAX_CONTAINER_NAME 256
#define TS_OBJECT_MAX_RANGES 100

/* ---- Range ---- */
struct ts_object_range {
    uint64_t start;   /* first byte */
    uint64_t len;     /* bytes (>0) */
};
/* Parses a Range header against an entity of size bytes. Returns the number of
 * satisfiable ranges (>= 1) into out (at most max), 0 if the header must be ignored
 * (malformed, not "bytes=", or too many ranges: the whole entity is served), or
 * -TS_ERANGE when it is well formed but nothing in it is satisfiable (416). */
int ts_object_range_parse(const char *hdr, uint64_t size, struct ts_object_range *out, int max);

/* ---- listings ---- */
enum ts_object_fmt { TS_OBJECT_FMT_PLAIN, TS_OBJECT_FMT_JSON, TS_OBJECT_FMT_XML };
struct ts_object_listing {
    const char *prefix;      /* "" when absent */
    const char *delimiter;   /* NULL when absent; one byte */
    const char *marker;      /* "" when absent */
    const char *end_marker;  /* NULL when absent */
    bool path_mode;          /* path= given: prefix is path + "/", no subdirs returned */
    bool reverse;
    int limit;               /* 1..10000 */
    enum ts_object_fmt fmt;
    const char *content_type;/* of the answer, with charset */
};
/* get(ctx, name) returns a decoded query argument or NULL. accept is the Accept header
 * (may be NULL). Returns 0, -TS_EPRECOND (bad limit/delimiter, Swift's 412) or
 * -TS_ENOTACCEPT (406) with err set. Strings point into get's storage or literals. */
int ts_object_listing_parse(const char *(*get)(void *ctx, const char *name), void *ctx, const char *accept,
                            struct ts_object_listing *out, struct ts_err *err);
/* Best of the offers for an Accept header; returns the index or -1 if none acceptable. */
int ts_object_accept_best(const char *accept, const char *const *offers, int n);

/* ---- names and metadata ---- */
/* Checks a decoded path segment: not empty, valid UTF-8 without NUL (else 412 as Swift),
 * at most max bytes (else 400). what = "Container", "Object". */
int ts_object_name_check(const char *name, size_t len, size_t max, const char *what, struct ts_err *err);
/* Accumulates metadata items for Swift's check_metadata; call add for each X-*-Meta-*
 * header (key without the prefix), then the last add's result tells 400s. */
struct ts_object_meta_check {
    int count;
    size_t size;
};
int ts_object_meta_check_add(struct ts_object_meta_check *c, const char *key, const char *value, struct ts_err *err);
/* Title-cases a header name in place ("x-object-meta-foo" -> "X-Object-Meta-Foo"). */
void ts_object_header_title(char *name);

/* ---- temp URLs ---- */
enum ts_object_digest { TS_OBJECT_SHA1, TS_OBJECT_SHA256, TS_OBJECT_SHA512 };
/* Hex HMAC of "method\nexpires\npath" into out (129 bytes). */
void ts_object_tempurl_hmac(enum ts_object_digest d, const char *key, const char *method, const char *expires,
                            const char *path, char out[129]);
/* Checks sig (hex sha1/sha256/sha512 or "<digest>:<base64url>") against key for the
 * method and path ("/v1/AUTH_x/c/o", or "prefix:/v1/AUTH_x/c/pfx" when prefix-based).
 * Returns true when it matches (constant-time compare). */
bool ts_object_tempurl_check(const char *key, const char *method, const char *expires, const char *path,
                             const char *sig);
/* Parses temp_url_expires: integer seconds or ISO-8601 "2026-11-25T19:20:00Z". -TS_EINVAL if bad. */
int ts_object_tempurl_expires(const char *s, int64_t *out);
/* Generic HMAC for form POST: hex of HMAC(key, msg). */
void ts_object_hmac_hex(enum ts_object_digest d, const char *key, const void *msg, size_t len, char out[129]);

/* ---- content types ---- */
/* A type guessed from name's extension, or "application/octet-stream". */
const char *ts_object_guess_type(const char *name);

/* ---- HTTP dates ---- */
/* RFC 1123 "Wed, 25 Nov 2026 19:20:00 GMT" into out[40]. */
void ts_object_http_date(int64_t t, char out[40]);
/* Parses RFC 1123 / RFC 850 / asctime dates; -TS_EINVAL if bad. */
int ts_object_http_date_parse(const char *s, int64_t *out);

/* ---- tar reader (ustar, GNU long names, pax path) ---- */
struct ts_object_tar;
struct ts_object_tar_entry {
    char name[4096];
    uint64_t size;
    char type;          /* '0' regular, '5' directory, other = skipped by callers */
};
/* read(ctx, buf, len) fills up to len bytes: returns bytes (>0), 0 at end, -1 on error. */
struct ts_object_tar *ts_object_tar_new(ssize_t (*read)(void *ctx, void *buf, size_t len), void *ctx);
void ts_object_tar_free(struct ts_object_tar *t);
/* Next entry: 1 with *e filled, 0 at the end of the archive, -TS_EINVAL on a corrupt
 * archive. Unread data of the previous entry is skipped. */
int ts_object_tar_next(struct ts_object_tar *t, struct ts_object_tar_entry *e);
/* Reads the current entry's data: bytes (>0), 0 at its end, -TS_EINVAL on truncation. */
ssize_t ts_object_tar_read(struct ts_object_tar *t, void *buf, size_t len);

#endif
