/*
 * ts_core_str.c: small string helpers: NULL-safe comparisons, URL percent-coding into pool
 * strings, hex, strict UTF-8 validation, and whole-string int/bool parsing.
 */
#include "core/ts_core.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool ts_streq(const char *a, const char *b)
{
    if (!a || !b) return a == b;
    return strcmp(a, b) == 0;
}

bool ts_strcaseeq(const char *a, const char *b)
{
    if (!a || !b) return a == b;
    return strcasecmp(a, b) == 0;
}

bool ts_startswith(const char *s, const char *prefix)
{
    if (!s || !prefix) return false;
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool ts_endswith(const char *s, const char *suffix)
{
    if (!s || !suffix) return false;
    size_t ls = strlen(s), lx = strlen(suffix);
    return lx <= ls && memcmp(s + ls - lx, suffix, lx) == 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* '+' is left as is: this decodes paths (RFC 3986); query strings are decoded by the HTTP
 * server library. */
char *ts_url_decode(struct ts_pool *pool, const char *s, size_t len)
{
    if (!s) return NULL;
    char *out = ts_pool_alloc(pool, len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '\0') return NULL;
        if (c == '%') {
            if (len - i < 3) return NULL;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0) return NULL;
            c = (char)(hi << 4 | lo);
            if (c == '\0') return NULL;
            i += 2;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return out;
}

char *ts_url_encode(struct ts_pool *pool, const char *s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    if (!s) s = "";
    size_t len = strlen(s);
    char *out = ts_pool_alloc(pool, len * 3 + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/');
        if (keep) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return out;
}

void ts_hex(const unsigned char *in, size_t len, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * len] = '\0';
}

bool ts_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    if (!s) return len == 0;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c == 0) return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false; /* continuation byte, overlong lead (c0/c1) or > f4 */
        }
        if (len - i <= n) return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000)) return false; /* overlong */
        if (cp >= 0xd800 && cp <= 0xdfff) return false;                       /* surrogates */
        if (cp > 0x10ffff) return false;
        i += n + 1;
    }
    return true;
}

int ts_parse_int64(const char *s, int64_t *out)
{
    if (!s || !*s) return -TS_EINVAL;
    const char *p = s;
    if (*p == '+' || *p == '-') p++;
    if (*p < '0' || *p > '9') return -TS_EINVAL; /* no spaces, no empty digits */
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end != '\0') return -TS_EINVAL;
    if (out) *out = v;
    return 0;
}

int ts_parse_bool(const char *s, bool *out)
{
    static const char *yes[] = {"true", "1", "yes", "on", "y", "t"};
    static const char *no[] = {"false", "0", "no", "off", "n", "f"};
    if (!s) return -TS_EINVAL;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            if (out) *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            if (out) *out = false;
            return 0;
        }
    }
    return -TS_EINVAL;
}
