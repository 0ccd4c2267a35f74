/*
 * ts_auth_b64.c: strict base64 codecs (RFC 4648 standard and urlsafe alphabets) used by
 * Fernet keys and tokens, audit ids and anything else that needs them. Decoding accepts
 * input with or without '=' padding but rejects characters outside the alphabet,
 * misplaced padding and non-canonical trailing bits, so each byte string has exactly
 * one accepted spelling (besides the optional padding).
 */
#include <stdlib.h>
#include <string.h>

#include "auth/ts_auth.h"

static const char std_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Inputs beyond this are refused: nothing in tinystack base64-encodes gigabytes. */
#define B64_MAX_INPUT ((size_t)1 << 30)

static char *encode(const char *alphabet, const unsigned char *in, size_t len, bool pad)
{
    if (len > B64_MAX_INPUT || (in == NULL && len > 0)) return NULL;
    size_t out_len = (len + 2) / 3 * 4;
    char *out = malloc(out_len + 1);
    if (!out) return NULL;
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    size_t rest = len - i;
    if (rest == 1) {
        unsigned v = (unsigned)in[i] << 16;
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        if (pad) {
            out[o++] = '=';
            out[o++] = '=';
        }
    } else if (rest == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        if (pad) out[o++] = '=';
    }
    out[o] = '\0';
    return out;
}

static int sextet(bool url, unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (url) {
        if (c == '-') return 62;
        if (c == '_') return 63;
    } else {
        if (c == '+') return 62;
        if (c == '/') return 63;
    }
    return -1;
}

static int decode(bool url, const char *in, size_t len, unsigned char **out, size_t *outlen)
{
    if (out) *out = NULL;
    if (outlen) *outlen = 0;
    if (!out || (in == NULL && len > 0) || len > B64_MAX_INPUT) return -TS_EINVAL;

    /* Padding is optional, but when present it must complete the last quantum. */
    size_t data_len = len;
    while (data_len > 0 && in[data_len - 1] == '=') data_len--;
    size_t npad = len - data_len;
    if (npad > 2) return -TS_EINVAL;
    if (npad > 0 && len % 4 != 0) return -TS_EINVAL;
    if (data_len % 4 == 1) return -TS_EINVAL;
    if (npad > 0 && (data_len + npad) % 4 != 0) return -TS_EINVAL;

    size_t full = data_len / 4, rest = data_len % 4;
    size_t n = full * 3 + (rest == 2 ? 1 : rest == 3 ? 2 : 0);
    unsigned char *buf = malloc(n + 1);
    if (!buf) return -TS_ENOMEM;
    size_t o = 0, i = 0;
    for (; i + 4 <= data_len; i += 4) {
        int a = sextet(url, (unsigned char)in[i]), b = sextet(url, (unsigned char)in[i + 1]);
        int c = sextet(url, (unsigned char)in[i + 2]), d = sextet(url, (unsigned char)in[i + 3]);
        if ((a | b | c | d) < 0) goto bad;
        unsigned v = (unsigned)a << 18 | (unsigned)b << 12 | (unsigned)c << 6 | (unsigned)d;
        buf[o++] = (unsigned char)(v >> 16);
        buf[o++] = (unsigned char)(v >> 8);
        buf[o++] = (unsigned char)v;
    }
    if (rest >= 2) {
        int a = sextet(url, (unsigned char)in[i]), b = sextet(url, (unsigned char)in[i + 1]);
        int c = rest == 3 ? sextet(url, (unsigned char)in[i + 2]) : 0;
        if ((a | b | c) < 0) goto bad;
        unsigned v = (unsigned)a << 18 | (unsigned)b << 12 | (unsigned)c << 6;
        buf[o++] = (unsigned char)(v >> 16);
        if (rest == 3) {
            buf[o++] = (unsigned char)(v >> 8);
            if (v & 0xff) goto bad;        /* non-canonical trailing bits */
        } else if (v & 0xffff) {
            goto bad;
        }
    }
    buf[o] = 0;
    *out = buf;
    if (outlen) *outlen = o;
    return 0;
bad:
    free(buf);
    return -TS_EINVAL;
}

char *ts_b64url_encode(const unsigned char *in, size_t len, bool pad)
{
    return encode(url_alphabet, in, len, pad);
}

int ts_b64url_decode(const char *in, size_t len, unsigned char **out, size_t *outlen)
{
    return decode(true, in, len, out, outlen);
}

char *ts_b64_encode(const unsigned char *in, size_t len)
{
    return encode(std_alphabet, in, len, true);
}

int ts_b64_decode(const char *in, size_t len, unsigned char **out, size_t *outlen)
{
    return decode(false, in, len, out, outlen);
}
