/*
 * ts_auth_internal.h: pieces of src/auth shared between its own files, its unit tests and
 * its fuzz target; not for other modules. A minimal MessagePack codec (only the types a
 * Keystone token payload uses, plus skipping of everything else) and the token payload
 * codec underneath ts_token_issue/ts_token_parse.
 */
#ifndef TS_AUTH_INTERNAL_H
#define TS_AUTH_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/ts_auth.h"

/* ---- msgpack writer: into a caller-supplied fixed buffer ----------------------- */
struct ts_mp_writer {
    unsigned char *buf;
    size_t cap;
    size_t len;
    bool overflow;      /* set once anything did not fit; the rest is ignored */
};
void ts_auth_mp_writer_init(struct ts_mp_writer *w, unsigned char *buf, size_t cap);
void ts_auth_mp_nil(struct ts_mp_writer *w);
void ts_auth_mp_bool(struct ts_mp_writer *w, bool v);
void ts_auth_mp_int(struct ts_mp_writer *w, int64_t v);      /* smallest encoding, like msgpack-python */
void ts_auth_mp_double(struct ts_mp_writer *w, double v);    /* always float 64 (0xcb) */
void ts_auth_mp_str(struct ts_mp_writer *w, const char *s, size_t len);
void ts_auth_mp_bin(struct ts_mp_writer *w, const unsigned char *p, size_t len);
void ts_auth_mp_array(struct ts_mp_writer *w, uint32_t n);

/* ---- msgpack reader: a bounds-checked cursor over untrusted bytes ----------------- */
enum ts_mp_type {
    TS_MP_NIL, TS_MP_BOOL, TS_MP_INT, TS_MP_UINT64, TS_MP_FLOAT, TS_MP_STR, TS_MP_BIN,
    TS_MP_ARRAY, TS_MP_MAP, TS_MP_EXT
};
struct ts_mp_value {
    enum ts_mp_type type;
    bool b;                     /* TS_MP_BOOL */
    int64_t i;                  /* TS_MP_INT (every integer that fits int64) */
    uint64_t u;                 /* TS_MP_UINT64 (above INT64_MAX) */
    double f;                   /* TS_MP_FLOAT (float 32 widened) */
    const unsigned char *data;  /* TS_MP_STR, TS_MP_BIN, TS_MP_EXT: points into the input */
    uint32_t len;               /* byte length for STR/BIN/EXT, element count for ARRAY/MAP */
};
struct ts_mp_reader {
    const unsigned char *p;
    size_t len;
    size_t pos;
};
void ts_auth_mp_reader_init(struct ts_mp_reader *r, const unsigned char *p, size_t len);
/* Reads one value's header (and the bytes of a STR/BIN/EXT). For ARRAY/MAP only the header
 * is consumed: the caller reads the len (2*len for maps) elements next. -TS_EINVAL when
 * truncated, uses the reserved byte 0xc1, or announces more elements than bytes remain. */
int ts_auth_mp_read(struct ts_mp_reader *r, struct ts_mp_value *v);
/* Skips one complete value, nested at most max_depth deep. */
int ts_auth_mp_skip(struct ts_mp_reader *r, int max_depth);
/* 0 if p..p+len is exactly one well-formed value nested at most 32 deep. */
int ts_auth_mp_check(const unsigned char *p, size_t len);

/* ---- token payloads ------------------------------------------------------------------ */
/* Bytes a payload can take; far above what the fixed-size struct fields can produce. */
#define TS_TOKEN_PAYLOAD_MAX 1024
/* Encodes p as Keystone's token_formatters would (versioned msgpack array).
 * Returns the length written into buf, or -TS_EINVAL for a payload Keystone could not carry. */
int ts_token_payload_encode(const struct ts_token_payload *p, unsigned char *buf, size_t cap);
/* Decodes a versioned payload (versions 0, 1, 2, 8, 9); -TS_EINVAL on anything else.
 * Does not check expiry. */
int ts_token_payload_decode(const unsigned char *buf, size_t len, struct ts_token_payload *out);

/* ---- fernet ------------------------------------------------------------------------ */
/* ts_fernet_encrypt with a caller-chosen IV (test vectors); pad keeps the '=' padding. */
char *ts_fernet_encrypt_iv(const struct ts_fernet_keys *k, const unsigned char *payload, size_t len,
                           uint64_t now, const unsigned char iv[16], bool pad);
/* Builds a key set from urlsafe base64 key strings, first = primary (tests, fuzzing). */
int ts_fernet_keys_from_strings(const char *const *keys, int n, struct ts_fernet_keys **out);

#endif
