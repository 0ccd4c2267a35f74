/*
 * ts_auth_msgpack.c: the small MessagePack codec behind Keystone-compatible token payloads.
 * The writer emits the same bytes msgpack-python's packb (use_bin_type=True) emits for
 * nil, bool, int, float, str, bin and array. The reader walks untrusted input with a
 * bounds-checked cursor: every length is checked against the bytes that remain, so
 * malicious payloads fail with -TS_EINVAL rather than over-read or over-allocate.
 */
#include <string.h>

#include "auth/ts_auth_internal.h"

/* ---- writer ---------------------------------------------------------------------- */

void ts_auth_mp_writer_init(struct ts_mp_writer *w, unsigned char *buf, size_t cap)
{
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->overflow = false;
}

static void put(struct ts_mp_writer *w, const void *p, size_t n)
{
    if (w->overflow || n > w->cap - w->len) {
        w->overflow = true;
        return;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void put_byte(struct ts_mp_writer *w, unsigned char c)
{
    put(w, &c, 1);
}

/* Writes tag followed by v as an n-byte big-endian number. */
static void put_be(struct ts_mp_writer *w, unsigned char tag, uint64_t v, int n)
{
    unsigned char b[9];
    b[0] = tag;
    for (int i = 0; i < n; i++) b[1 + i] = (unsigned char)(v >> (8 * (n - 1 - i)));
    put(w, b, (size_t)n + 1);
}

void ts_auth_mp_nil(struct ts_mp_writer *w)
{
    put_byte(w, 0xc0);
}

void ts_auth_mp_bool(struct ts_mp_writer *w, bool v)
{
    put_byte(w, v ? 0xc3 : 0xc2);
}

void ts_auth_mp_int(struct ts_mp_writer *w, int64_t v)
{
    if (v >= 0) {
        uint64_t u = (uint64_t)v;
        if (u < 128) put_byte(w, (unsigned char)u);
        else if (u <= 0xff) put_be(w, 0xcc, u, 1);
        else if (u <= 0xffff) put_be(w, 0xcd, u, 2);
        else if (u <= 0xffffffffu) put_be(w, 0xce, u, 4);
        else put_be(w, 0xcf, u, 8);
    } else {
        if (v >= -32) put_byte(w, (unsigned char)(int8_t)v);
        else if (v >= INT8_MIN) put_be(w, 0xd0, (uint64_t)v, 1);
        else if (v >= INT16_MIN) put_be(w, 0xd1, (uint64_t)v, 2);
        else if (v >= INT32_MIN) put_be(w, 0xd2, (uint64_t)v, 4);
        else put_be(w, 0xd3, (uint64_t)v, 8);
    }
}

void ts_auth_mp_double(struct ts_mp_writer *w, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    put_be(w, 0xcb, bits, 8);
}

void ts_auth_mp_str(struct ts_mp_writer *w, const char *s, size_t len)
{
    if (len < 32) put_byte(w, (unsigned char)(0xa0 | len));
    else if (len <= 0xff) put_be(w, 0xd9, len, 1);
    else if (len <= 0xffff) put_be(w, 0xda, len, 2);
    else if (len <= 0xffffffffu) put_be(w, 0xdb, len, 4);
    else w->overflow = true;
    put(w, s, len);
}

void ts_auth_mp_bin(struct ts_mp_writer *w, const unsigned char *p, size_t len)
{
    if (len <= 0xff) put_be(w, 0xc4, len, 1);
    else if (len <= 0xffff) put_be(w, 0xc5, len, 2);
    else if (len <= 0xffffffffu) put_be(w, 0xc6, len, 4);
    else w->overflow = true;
    put(w, p, len);
}

void ts_auth_mp_array(struct ts_mp_writer *w, uint32_t n)
{
    if (n < 16) put_byte(w, (unsigned char)(0x90 | n));
    else if (n <= 0xffff) put_be(w, 0xdc, n, 2);
    else put_be(w, 0xdd, n, 4);
}

/* ---- reader ---------------------------------------------------------------------- */

void ts_auth_mp_reader_init(struct ts_mp_reader *r, const unsigned char *p, size_t len)
{
    r->p = p;
    r->len = p ? len : 0;
    r->pos = 0;
}

static size_t remaining(const struct ts_mp_reader *r)
{
    return r->len - r->pos;
}

/* Reads an n-byte big-endian number; false when truncated. */
static bool get_be(struct ts_mp_reader *r, int n, uint64_t *out)
{
    if (remaining(r) < (size_t)n) return false;
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | r->p[r->pos + (size_t)i];
    r->pos += (size_t)n;
    *out = v;
    return true;
}

static int get_bytes(struct ts_mp_reader *r, struct ts_mp_value *v, enum ts_mp_type type, uint64_t len)
{
    if (len > remaining(r)) return -TS_EINVAL;
    v->type = type;
    v->len = (uint32_t)len;
    v->data = r->p + r->pos;
    r->pos += (size_t)len;
    return 0;
}

static int get_container(struct ts_mp_reader *r, struct ts_mp_value *v, enum ts_mp_type type, uint64_t n)
{
    /* Every element takes at least one byte: refuse counts the input cannot hold. */
    uint64_t need = type == TS_MP_MAP ? 2 * n : n;
    if (need > remaining(r)) return -TS_EINVAL;
    v->type = type;
    v->len = (uint32_t)n;
    return 0;
}

static int get_ext(struct ts_mp_reader *r, struct ts_mp_value *v, uint64_t len)
{
    if (remaining(r) < 1) return -TS_EINVAL;
    r->pos++;                   /* the ext type byte */
    return get_bytes(r, v, TS_MP_EXT, len);
}

int ts_auth_mp_read(struct ts_mp_reader *r, struct ts_mp_value *v)
{
    memset(v, 0, sizeof *v);
    if (!r || !r->p || remaining(r) < 1) return -TS_EINVAL;
    unsigned char c = r->p[r->pos++];
    uint64_t n;

    if (c <= 0x7f) {
        v->type = TS_MP_INT;
        v->i = c;
        return 0;
    }
    if (c >= 0xe0) {
        v->type = TS_MP_INT;
        v->i = (int8_t)c;
        return 0;
    }
    if ((c & 0xf0) == 0x80) return get_container(r, v, TS_MP_MAP, c & 0x0f);
    if ((c & 0xf0) == 0x90) return get_container(r, v, TS_MP_ARRAY, c & 0x0f);
    if ((c & 0xe0) == 0xa0) return get_bytes(r, v, TS_MP_STR, c & 0x1f);

    switch (c) {
    case 0xc0: v->type = TS_MP_NIL; return 0;
    case 0xc2: v->type = TS_MP_BOOL; v->b = false; return 0;
    case 0xc3: v->type = TS_MP_BOOL; v->b = true; return 0;
    case 0xc4: if (!get_be(r, 1, &n)) return -TS_EINVAL; return get_bytes(r, v, TS_MP_BIN, n);
    case 0xc5: if (!get_be(r, 2, &n)) return -TS_EINVAL; return get_bytes(r, v, TS_MP_BIN, n);
    case 0xc6: if (!get_be(r, 4, &n)) return -TS_EINVAL; return get_bytes(r, v, TS_MP_BIN, n);
    case 0xc7: if (!get_be(r, 1, &n)) return -TS_EINVAL; return get_ext(r, v, n);
    case 0xc8: if (!get_be(r, 2, &n)) return -TS_EINVAL; return get_ext(r, v, n);
    case 0xc9: if (!get_be(r, 4, &n)) return -TS_EINVAL; return get_ext(r, v, n);
    case 0xca: {
        if (!get_be(r, 4, &n)) return -TS_EINVAL;
        uint32_t bits = (uint32_t)n;
        float f;
        memcpy(&f, &bits, sizeof f);
        v->type = TS_MP_FLOAT;
        v->f = f;
        return 0;
    }
    case 0xcb:
        if (!get_be(r, 8, &n)) return -TS_EINVAL;
        v->type = TS_MP_FLOAT;
        memcpy(&v->f, &n, sizeof v->f);
        return 0;
    case 0xcc: case 0xcd: case 0xce: case 0xcf:
        if (!get_be(r, 1 << (c - 0xcc), &n)) return -TS_EINVAL;
        if (n > INT64_MAX) {
            v->type = TS_MP_UINT64;
            v->u = n;
        } else {
            v->type = TS_MP_INT;
            v->i = (int64_t)n;
        }
        return 0;
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        int bytes = 1 << (c - 0xd0);
        if (!get_be(r, bytes, &n)) return -TS_EINVAL;
        v->type = TS_MP_INT;
        if (bytes == 1) v->i = (int8_t)n;
        else if (bytes == 2) v->i = (int16_t)n;
        else if (bytes == 4) v->i = (int32_t)n;
        else v->i = (int64_t)n;
        return 0;
    }
    case 0xd4: return get_ext(r, v, 1);
    case 0xd5: return get_ext(r, v, 2);
    case 0xd6: return get_ext(r, v, 4);
    case 0xd7: return get_ext(r, v, 8);
    case 0xd8: return get_ext(r, v, 16);
    case 0xd9: if (!get_be(r, 1, &n)) return -TS_EINVAL; return get_bytes(r, v, TS_MP_STR, n);
    case 0xda: if (!get_be(r, 2, &n)) return -TS_EINVAL; return get_bytes(r, v, TS_MP_STR, n);
    case 0xdb: if (!get_be(r, 4, &n)) return -TS_EINVAL; return get_bytes(r, v, TS_MP_STR, n);
    case 0xdc: if (!get_be(r, 2, &n)) return -TS_EINVAL; return get_container(r, v, TS_MP_ARRAY, n);
    case 0xdd: if (!get_be(r, 4, &n)) return -TS_EINVAL; return get_container(r, v, TS_MP_ARRAY, n);
    case 0xde: if (!get_be(r, 2, &n)) return -TS_EINVAL; return get_container(r, v, TS_MP_MAP, n);
    case 0xdf: if (!get_be(r, 4, &n)) return -TS_EINVAL; return get_container(r, v, TS_MP_MAP, n);
    default: return -TS_EINVAL;  /* 0xc1 is reserved */
    }
}

int ts_auth_mp_skip(struct ts_mp_reader *r, int max_depth)
{
    struct ts_mp_value v;
    int rc = ts_auth_mp_read(r, &v);
    if (rc < 0) return rc;
    if (v.type != TS_MP_ARRAY && v.type != TS_MP_MAP) return 0;
    if (max_depth <= 0) return -TS_EINVAL;
    uint64_t n = v.type == TS_MP_MAP ? 2 * (uint64_t)v.len : v.len;
    /* Each element consumes at least one byte, so this loop ends with the input. */
    for (uint64_t i = 0; i < n; i++) {
        rc = ts_auth_mp_skip(r, max_depth - 1);
        if (rc < 0) return rc;
    }
    return 0;
}

int ts_auth_mp_check(const unsigned char *p, size_t len)
{
    struct ts_mp_reader r;
    ts_auth_mp_reader_init(&r, p, len);
    int rc = ts_auth_mp_skip(&r, 32);
    if (rc < 0) return rc;
    return r.pos == r.len ? 0 : -TS_EINVAL;
}
