/*
 * ts_auth_token.c: Keystone token payloads inside Fernet tokens, laid out as
 * keystone/token/token_formatters.py lays them out, so that tokens can move between
 * tinystack and Keystone sharing one key repository. A payload is a msgpack array
 * [version, user, methods, (scope), expires_at, audit_ids, (extra)]:
 *   0 unscoped       [0, user, methods, expires, audits]
 *   1 domain         [1, user, methods, domain, expires, audits]   domain: 16 raw bytes or str
 *   2 project        [2, user, methods, project, expires, audits]
 *   8 system         [8, user, methods, "all", expires, audits]
 *   9 app credential [9, user, methods, project, expires, audits, app_cred]
 * where user/project/app_cred are [true, 16 raw uuid bytes] for 32-char hex ids and
 * [false, str] otherwise, expires is a float of seconds, audits a list of the raw bytes
 * behind each urlsafe base64 audit id. The methods bitmask on the wire uses Keystone's
 * default [auth] methods order (external 1, password 2, token 4, oauth1 8, mapped 16,
 * application_credential 32, then totp 64); the struct uses the TS_METHOD_* bits.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "auth/ts_auth_internal.h"

enum {
    V_UNSCOPED = 0, V_DOMAIN = 1, V_PROJECT = 2, V_SYSTEM = 8, V_APPCRED = 9
};

static const char unauth_msg[] = "The request you have made requires authentication.";

/* TS_METHOD_* bit -> Keystone wire bit */
static const struct { int ts; int64_t wire; } method_bits[] = {
    {TS_METHOD_PASSWORD, 2}, {TS_METHOD_TOKEN, 4}, {TS_METHOD_APPCRED, 32}, {TS_METHOD_TOTP, 64},
};
#define N_METHOD_BITS (sizeof method_bits / sizeof method_bits[0])

static int64_t methods_to_wire(int methods)
{
    int64_t wire = 0;
    for (size_t i = 0; i < N_METHOD_BITS; i++)
        if (methods & method_bits[i].ts) wire |= method_bits[i].wire;
    return wire;
}

static int methods_from_wire(int64_t wire)
{
    int methods = 0;
    for (size_t i = 0; i < N_METHOD_BITS; i++)
        if (wire & method_bits[i].wire) methods |= method_bits[i].ts;
    return methods;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* A lower-case 32-hex-digit id packs to 16 bytes. Upper-case ids stay strings so that
 * they come back unchanged (Keystone would lower-case them). */
static bool uuid_hex_to_bytes(const char *s, unsigned char out[16])
{
    if (strlen(s) != 32) return false;
    for (int i = 0; i < 16; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

static void bytes_to_hex(const unsigned char in[16], char out[33])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[32] = '\0';
}

/* (True, bytes) or (False, str), as attempt_convert_uuid_hex_to_bytes makes. */
static void put_id(struct ts_mp_writer *w, const char *id)
{
    unsigned char raw[16];
    ts_auth_mp_array(w, 2);
    if (uuid_hex_to_bytes(id, raw)) {
        ts_auth_mp_bool(w, true);
        ts_auth_mp_bin(w, raw, 16);
    } else {
        ts_auth_mp_bool(w, false);
        ts_auth_mp_str(w, id, strlen(id));
    }
}

static bool field_ok(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

static int put_audit_ids(struct ts_mp_writer *w, const struct ts_token_payload *p)
{
    int n = 0;
    for (int i = 0; i < 2; i++) {
        if (!field_ok(p->audit_ids[i], sizeof p->audit_ids[i])) return -TS_EINVAL;
        if (p->audit_ids[i][0]) n = i + 1;
    }
    if (n == 0 || (n == 2 && !p->audit_ids[0][0])) return -TS_EINVAL;
    ts_auth_mp_array(w, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        unsigned char *raw = NULL;
        size_t raw_len = 0;
        if (ts_b64url_decode(p->audit_ids[i], strlen(p->audit_ids[i]), &raw, &raw_len) < 0) return -TS_EINVAL;
        ts_auth_mp_bin(w, raw, raw_len);
        free(raw);
    }
    return 0;
}

int ts_token_payload_encode(const struct ts_token_payload *p, unsigned char *buf, size_t cap)
{
    if (!p || !buf) return -TS_EINVAL;
    if (!field_ok(p->user_id, sizeof p->user_id) || !field_ok(p->scope_id, sizeof p->scope_id) ||
        !field_ok(p->app_cred_id, sizeof p->app_cred_id) || !p->user_id[0] || !isfinite(p->expires_at))
        return -TS_EINVAL;

    int version;
    switch (p->scope) {
    case TS_SCOPE_UNSCOPED: version = V_UNSCOPED; break;
    case TS_SCOPE_DOMAIN: version = V_DOMAIN; break;
    case TS_SCOPE_PROJECT: version = p->app_cred_id[0] ? V_APPCRED : V_PROJECT; break;
    case TS_SCOPE_SYSTEM: version = V_SYSTEM; break;
    default: return -TS_EINVAL;
    }
    if (version != V_UNSCOPED && !p->scope_id[0]) return -TS_EINVAL;
    if (version != V_APPCRED && p->app_cred_id[0]) return -TS_EINVAL;

    struct ts_mp_writer w;
    ts_auth_mp_writer_init(&w, buf, cap);
    ts_auth_mp_array(&w, version == V_UNSCOPED ? 5 : version == V_APPCRED ? 7 : 6);
    ts_auth_mp_int(&w, version);
    put_id(&w, p->user_id);
    ts_auth_mp_int(&w, methods_to_wire(p->methods));
    if (version == V_DOMAIN) {
        /* A domain id is bare bytes (no flag); the default domain "default" stays a str. */
        unsigned char raw[16];
        if (uuid_hex_to_bytes(p->scope_id, raw)) ts_auth_mp_bin(&w, raw, 16);
        else ts_auth_mp_str(&w, p->scope_id, strlen(p->scope_id));
    } else if (version == V_PROJECT || version == V_APPCRED) {
        put_id(&w, p->scope_id);
    } else if (version == V_SYSTEM) {
        ts_auth_mp_str(&w, p->scope_id, strlen(p->scope_id));
    }
    ts_auth_mp_double(&w, p->expires_at);
    if (put_audit_ids(&w, p) < 0) return -TS_EINVAL;
    if (version == V_APPCRED) put_id(&w, p->app_cred_id);
    if (w.overflow) return -TS_EINVAL;
    return (int)w.len;
}

/* ---- decoding ---------------------------------------------------------------------- */

/* Copies a str (or legacy raw bin) value into out[size] as a C string. */
static int take_string(const struct ts_mp_value *v, char *out, size_t size)
{
    if (v->type != TS_MP_STR && v->type != TS_MP_BIN) return -TS_EINVAL;
    if (v->len == 0 || v->len >= size || memchr(v->data, '\0', v->len)) return -TS_EINVAL;
    memcpy(out, v->data, v->len);
    out[v->len] = '\0';
    return 0;
}

/* [is_bytes, value] -> id string. */
static int get_id(struct ts_mp_reader *r, char *out, size_t size)
{
    struct ts_mp_value v;
    if (ts_auth_mp_read(r, &v) < 0 || v.type != TS_MP_ARRAY || v.len != 2) return -TS_EINVAL;
    struct ts_mp_value flag, val;
    if (ts_auth_mp_read(r, &flag) < 0 || flag.type != TS_MP_BOOL) return -TS_EINVAL;
    if (ts_auth_mp_read(r, &val) < 0) return -TS_EINVAL;
    if (flag.b) {
        if (val.type != TS_MP_BIN && val.type != TS_MP_STR) return -TS_EINVAL;
        if (val.len != 16 || size < 33) return -TS_EINVAL;
        bytes_to_hex(val.data, out);
        return 0;
    }
    return take_string(&val, out, size);
}

static int get_methods(struct ts_mp_reader *r, int *methods)
{
    struct ts_mp_value v;
    if (ts_auth_mp_read(r, &v) < 0 || v.type != TS_MP_INT || v.i < 0) return -TS_EINVAL;
    *methods = methods_from_wire(v.i);
    return 0;
}

static int get_expires(struct ts_mp_reader *r, double *out)
{
    struct ts_mp_value v;
    if (ts_auth_mp_read(r, &v) < 0) return -TS_EINVAL;
    if (v.type == TS_MP_FLOAT && isfinite(v.f)) *out = v.f;
    else if (v.type == TS_MP_INT) *out = (double)v.i;
    else return -TS_EINVAL;
    return 0;
}

static int get_audit_ids(struct ts_mp_reader *r, char out[2][32])
{
    struct ts_mp_value v;
    if (ts_auth_mp_read(r, &v) < 0 || v.type != TS_MP_ARRAY || v.len < 1 || v.len > 2) return -TS_EINVAL;
    for (uint32_t i = 0; i < v.len; i++) {
        struct ts_mp_value a;
        if (ts_auth_mp_read(r, &a) < 0 || (a.type != TS_MP_BIN && a.type != TS_MP_STR)) return -TS_EINVAL;
        /* 22 base64 characters for the usual 16 bytes; at most 31 fit the struct. */
        if (a.len == 0 || a.len > 23) return -TS_EINVAL;
        char *s = ts_b64url_encode(a.data, a.len, false);
        if (!s) return -TS_EINVAL;
        size_t n = strlen(s);
        if (n >= 32) {
            free(s);
            return -TS_EINVAL;
        }
        memcpy(out[i], s, n + 1);
        free(s);
    }
    return 0;
}

int ts_token_payload_decode(const unsigned char *buf, size_t len, struct ts_token_payload *out)
{
    if (!out) return -TS_EINVAL;
    memset(out, 0, sizeof *out);
    if (!buf || len == 0 || len > TS_TOKEN_PAYLOAD_MAX) return -TS_EINVAL;
    struct ts_mp_reader r;
    struct ts_mp_value top, ver;
    ts_auth_mp_reader_init(&r, buf, len);
    int rc = -TS_EINVAL;
    if (ts_auth_mp_read(&r, &top) < 0 || top.type != TS_MP_ARRAY) goto out;
    if (ts_auth_mp_read(&r, &ver) < 0 || ver.type != TS_MP_INT) goto out;

    uint32_t want;
    switch (ver.i) {
    case V_UNSCOPED: want = 5; out->scope = TS_SCOPE_UNSCOPED; break;
    case V_DOMAIN: want = 6; out->scope = TS_SCOPE_DOMAIN; break;
    case V_PROJECT: want = 6; out->scope = TS_SCOPE_PROJECT; break;
    case V_SYSTEM: want = 6; out->scope = TS_SCOPE_SYSTEM; break;
    case V_APPCRED: want = 7; out->scope = TS_SCOPE_PROJECT; break;
    default: goto out;      /* trust, federated and oauth tokens are not supported */
    }
    if (top.len != want) goto out;
    if (get_id(&r, out->user_id, sizeof out->user_id) < 0) goto out;
    if (get_methods(&r, &out->methods) < 0) goto out;
    if (ver.i == V_DOMAIN) {
        struct ts_mp_value d;
        if (ts_auth_mp_read(&r, &d) < 0) goto out;
        if (d.type == TS_MP_BIN && d.len == 16) bytes_to_hex(d.data, out->scope_id);
        else if (take_string(&d, out->scope_id, sizeof out->scope_id) < 0) goto out;
    } else if (ver.i == V_PROJECT || ver.i == V_APPCRED) {
        if (get_id(&r, out->scope_id, sizeof out->scope_id) < 0) goto out;
    } else if (ver.i == V_SYSTEM) {
        struct ts_mp_value s;
        if (ts_auth_mp_read(&r, &s) < 0 || take_string(&s, out->scope_id, sizeof out->scope_id) < 0) goto out;
    }
    if (get_expires(&r, &out->expires_at) < 0) goto out;
    if (get_audit_ids(&r, out->audit_ids) < 0) goto out;
    if (ver.i == V_APPCRED && get_id(&r, out->app_cred_id, sizeof out->app_cred_id) < 0) goto out;
    if (r.pos != r.len) goto out;
    rc = 0;
out:
    if (rc < 0) memset(out, 0, sizeof *out);
    return rc;
}

/* ---- public API ------------------------------------------------------------------ */

char *ts_token_issue(const struct ts_fernet_keys *k, const struct ts_token_payload *p)
{
    unsigned char buf[TS_TOKEN_PAYLOAD_MAX];
    int n = ts_token_payload_encode(p, buf, sizeof buf);
    if (n < 0) return NULL;
    double now = ts_now();
    return ts_fernet_encrypt(k, buf, (size_t)n, now > 0 ? (uint64_t)now : 0);
}

int ts_token_decode(const struct ts_fernet_keys *k, const char *token, struct ts_token_payload *out,
                    uint64_t *issued, bool allow_expired, struct ts_err *err)
{
    struct ts_token_payload tmp;
    struct ts_token_payload *p = out ? out : &tmp;
    memset(p, 0, sizeof *p);
    unsigned char *plain = NULL;
    size_t plain_len = 0;
    int rc = ts_fernet_decrypt(k, token, &plain, &plain_len, issued);
    if (rc == 0) rc = ts_token_payload_decode(plain, plain_len, p);
    if (rc == 0 && !allow_expired && p->expires_at < ts_now()) rc = -TS_EUNAUTH;
    if (plain) {
        OPENSSL_cleanse(plain, plain_len);
        free(plain);
    }
    if (rc < 0) {
        memset(p, 0, sizeof *p);
        return ts_err_set(err, TS_EUNAUTH, "%s", unauth_msg);
    }
    return 0;
}

int ts_token_parse(const struct ts_fernet_keys *k, const char *token, struct ts_token_payload *out,
                   struct ts_err *err)
{
    return ts_token_decode(k, token, out, NULL, false, err);
}

void ts_token_audit_id(char out[32])
{
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof raw) != 1) ts_panic("RAND_bytes failed");
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    /* 16 bytes -> 22 urlsafe base64 characters without padding, as random_urlsafe_str. */
    int o = 0;
    for (int i = 0; i < 15; i += 3) {
        unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    out[o++] = alphabet[raw[15] >> 2];
    out[o++] = alphabet[(raw[15] & 3) << 4];
    out[o] = '\0';
}
