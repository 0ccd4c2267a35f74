/*
 * ts_object_util.c: the object service's pure helpers: Range parsing with Swift's rules,
 * listing parameters and Accept negotiation, name and metadata limits, temp URL HMACs,
 * content-type guessing, HTTP dates and a pull-style tar reader (ustar, GNU 'L' long
 * names, pax "path" records) used by extract-archive. No allocation beyond the tar reader.
 */
#include "object/ts_object_util.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- Range ------------------------------------------------------------------------ */

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t') p++;
    return p;
}

/* Parses an unsigned decimal; NULL if none. */
static const char *parse_u64(const char *p, uint64_t *out, bool *ok)
{
    uint64_t v = 0;
    const char *s = p;
    while (*p >= '0' && *p <= '9') {
        if (v > (UINT64_MAX - 9) / 10) {
            *ok = false;
            return p;
        }
        v = v * 10 + (uint64_t)(*p - '0');
        p++;
    }
    *ok = p != s;
    *out = v;
    return p;
}

int ts_object_range_parse(const char *hdr, uint64_t size, struct ts_object_range *out, int max)
{
    if (!hdr) return 0;
    const char *p = skip_ws(hdr);
    if (strncasecmp(p, "bytes", 5) != 0) return 0;
    p = skip_ws(p + 5);
    if (*p != '=') return 0;
    p++;
    int n = 0, specs = 0;
    for (;;) {
        p = skip_ws(p);
        uint64_t a = 0, b = 0;
        bool has_a = false, has_b = false;
        p = parse_u64(p, &a, &has_a);
        p = skip_ws(p);
        if (*p != '-') return 0;
        p = skip_ws(p + 1);
        p = parse_u64(p, &b, &has_b);
        p = skip_ws(p);
        if (!has_a && !has_b) return 0;
        if (has_a && has_b && b < a) return 0;   /* malformed -> ignored, as webob does */
        if (++specs > TS_OBJECT_MAX_RANGES) return 0;
        if (!has_a) {
            /* suffix: last b bytes */
            if (b > 0 && size > 0) {
                uint64_t len = b > size ? size : b;
                if (n < max) out[n++] = (struct ts_object_range){size - len, len};
            }
        } else if (a < size) {
            uint64_t end = has_b && b < size - 1 ? b : size - 1;
            if (n < max) out[n++] = (struct ts_object_range){a, end - a + 1};
        }
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == '\0') break;
        return 0;
    }
    return n > 0 ? n : -TS_ERANGE;
}

/* ---- Accept and listings ---------------------------------------------------------------- */

/* q of the best pattern in accept matching offer (type/sub); -1 when none matches. */
static double accept_q(const char *accept, const char *offer)
{
    const char *slash = strchr(offer, '/');
    size_t tlen = slash ? (size_t)(slash - offer) : strlen(offer);
    double best = -1;
    int best_spec = -1;
    const char *p = accept;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        const char *e = p;
        while (*e && *e != ',' && *e != ';') e++;
        size_t mlen = (size_t)(e - p);
        while (mlen && (p[mlen - 1] == ' ')) mlen--;
        double q = 1.0;
        const char *c = e;
        while (*c == ';') {
            c++;
            while (*c == ' ') c++;
            if ((c[0] == 'q' || c[0] == 'Q') && c[1] == '=') q = strtod(c + 2, NULL);
            while (*c && *c != ',' && *c != ';') c++;
        }
        int spec = -1;
        if (mlen == 3 && memcmp(p, "*/*", 3) == 0) spec = 0;
        else if (mlen == tlen + 2 && strncasecmp(p, offer, tlen) == 0 && p[tlen] == '/' && p[tlen + 1] == '*')
            spec = 1;
        else if (mlen == strlen(offer) && strncasecmp(p, offer, mlen) == 0) spec = 2;
        if (spec > best_spec) {
            best_spec = spec;
            best = q;
        }
        p = c;
        if (*p == ',') p++;
    }
    return best;
}

int ts_object_accept_best(const char *accept, const char *const *offers, int n)
{
    if (!accept || !*skip_ws(accept)) return 0;
    int best = -1;
    double bq = 0;
    for (int i = 0; i < n; i++) {
        double q = accept_q(accept, offers[i]);
        if (q > bq) {
            bq = q;
            best = i;
        }
    }
    return best;
}

int ts_object_listing_parse(const char *(*get)(void *ctx, const char *name), void *ctx, const char *accept,
                            struct ts_object_listing *out, struct ts_err *err)
{
    memset(out, 0, sizeof(*out));
    out->prefix = "";
    out->marker = "";
    out->limit = TS_OBJECT_LISTING_LIMIT;
    const char *v = get(ctx, "prefix");
    if (v) out->prefix = v;
    v = get(ctx, "delimiter");
    if (v && *v) {
        if (strlen(v) > 1 || (unsigned char)v[0] > 254)
            return ts_err_set_full(err, TS_EPRECOND, 412, NULL, "Bad delimiter");
        out->delimiter = v;
    }
    v = get(ctx, "marker");
    if (v) out->marker = v;
    v = get(ctx, "end_marker");
    if (v && *v) out->end_marker = v;
    v = get(ctx, "path");
    if (v) {
        out->path_mode = true;
        size_t l = strlen(v);
        while (l && v[l - 1] == '/') l--;
        static __thread char pbuf[TS_OBJECT_MAX_OBJECT_NAME + 2];
        if (l == 0) {
            out->prefix = "";
        } else {
            if (l > TS_OBJECT_MAX_OBJECT_NAME) return ts_err_set_full(err, TS_EINVAL, 400, NULL, "Bad path");
            memcpy(pbuf, v, l);
            pbuf[l] = '/';
            pbuf[l + 1] = '\0';
            out->prefix = pbuf;
        }
        out->delimiter = "/";
    }
    v = get(ctx, "limit");
    if (v && *v) {
        bool digits = true;
        for (const char *c = v; *c; c++)
            if (!isdigit((unsigned char)*c)) digits = false;
        if (digits) {
            if (strlen(v) > 9 || atoi(v) > TS_OBJECT_LISTING_LIMIT)
                return ts_err_set_full(err, TS_EPRECOND, 412, NULL, "Maximum limit is %d", TS_OBJECT_LISTING_LIMIT);
            out->limit = atoi(v);
        }
    }
    v = get(ctx, "reverse");
    if (v) {
        bool b = false;
        if (ts_parse_bool(v, &b) == 0) out->reverse = b;
    }
    static const char *const offers[] = {"text/plain", "application/json", "application/xml", "text/xml"};
    v = get(ctx, "format");
    const char *acc = accept;
    if (v && *v) {
        if (strcasecmp(v, "json") == 0) acc = "application/json";
        else if (strcasecmp(v, "xml") == 0) acc = "application/xml";
        else acc = "text/plain";
    }
    int i = ts_object_accept_best(acc, offers, 4);
    if (i < 0) return ts_err_set_full(err, TS_ENOTACCEPT, 406, NULL, "No acceptable content type");
    static const char *const ctypes[] = {"text/plain; charset=utf-8", "application/json; charset=utf-8",
                                         "application/xml; charset=utf-8", "text/xml; charset=utf-8"};
    out->fmt = i == 0 ? TS_OBJECT_FMT_PLAIN : i == 1 ? TS_OBJECT_FMT_JSON : TS_OBJECT_FMT_XML;
    out->content_type = ctypes[i];
    return 0;
}

/* ---- names and metadata --------------------------------------------------------------- */

int ts_object_name_check(const char *name, size_t len, size_t max, const char *what, struct ts_err *err)
{
    if (!name || len == 0) return ts_err_set_full(err, TS_EINVAL, 400, NULL, "%s name required", what);
    if (memchr(name, '\0', len) || !ts_utf8_valid(name, len))
        return ts_err_set_full(err, TS_EPRECOND, 412, NULL, "Invalid UTF8 or contains NULL");
    if (len > max)
        return ts_err_set_full(err, TS_EINVAL, 400, NULL, "%s name length of %zu longer than %zu", what, len, max);
    return 0;
}

int ts_object_meta_check_add(struct ts_object_meta_check *c, const char *key, const char *value, struct ts_err *err)
{
    size_t kl = strlen(key), vl = value ? strlen(value) : 0;
    if (kl == 0) return ts_err_set_full(err, TS_EINVAL, 400, NULL, "Metadata name cannot be empty");
    if (!ts_utf8_valid(key, kl) || (value && !ts_utf8_valid(value, vl)))
        return ts_err_set_full(err, TS_EINVAL, 400, NULL, "Metadata must be valid UTF-8");
    if (kl > TS_OBJECT_MAX_META_NAME)
        return ts_err_set_full(err, TS_EINVAL, 400, NULL, "Metadata name too long: %s; max %d", key,
                               TS_OBJECT_MAX_META_NAME);
    if (vl > TS_OBJECT_MAX_META_VALUE)
        return ts_err_set_full(err, TS_EINVAL, 400, NULL, "Metadata value longer than %d: %s",
                               TS_OBJECT_MAX_META_VALUE, key);
    c->count++;
    c->size += kl + vl;
    if (c->count > TS_OBJECT_MAX_META_COUNT)
        return ts_err_set_full(err, TS_EINVAL, 400, NULL, "Too many metadata items; max %d",
                               TS_OBJECT_MAX_META_COUNT);
    if (c->size > TS_OBJECT_MAX_META_OVERALL)
        return ts_err_set_full(err, TS_EINVAL, 400, NULL, "Total metadata too large; max %d",
                               TS_OBJECT_MAX_META_OVERALL);
    return 0;
}

void ts_object_header_title(char *name)
{
    bool start = true;
    for (char *p = name; *p; p++) {
        if (*p == '_') *p = '-';  /* as WSGI sees header names */
        *p = start ? (char)toupper((unsigned char)*p) : (char)tolower((unsigned char)*p);
        start = !isalpha((unsigned char)*p);
    }
}

/* ---- HMAC ---------------------------------------------------------------------------- */

static const EVP_MD *digest_md(enum ts_object_digest d)
{
    return d == TS_OBJECT_SHA1 ? EVP_sha1() : d == TS_OBJECT_SHA256 ? EVP_sha256() : EVP_sha512();
}

static unsigned hmac_raw(enum ts_object_digest d, const char *key, const void *msg, size_t len,
                         unsigned char mac[EVP_MAX_MD_SIZE])
{
    unsigned mlen = 0;
    HMAC(digest_md(d), key, (int)strlen(key), msg, len, mac, &mlen);
    return mlen;
}

void ts_object_hmac_hex(enum ts_object_digest d, const char *key, const void *msg, size_t len, char out[129])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mlen = hmac_raw(d, key, msg, len, mac);
    ts_hex(mac, mlen, out);
}

void ts_object_tempurl_hmac(enum ts_object_digest d, const char *key, const char *method, const char *expires,
                            const char *path, char out[129])
{
    char *msg = ts_asprintf("%s\n%s\n%s", method, expires, path);
    ts_object_hmac_hex(d, key, msg, strlen(msg), out);
    free(msg);
}

static bool ct_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb) return false;
    return CRYPTO_memcmp(a, b, la) == 0;
}

/* Decodes base64 (std or urlsafe, padding optional) into out; returns length or -1. */
static int b64_any(const char *s, unsigned char *out, size_t max)
{
    int val = 0, bits = 0;
    size_t n = 0;
    for (; *s && *s != '='; s++) {
        int c = (unsigned char)*s, v;
        if (c >= 'A' && c <= 'Z') v = c - 'A';
        else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
        else if (c >= '0' && c <= '9') v = c - '0' + 52;
        else if (c == '+' || c == '-') v = 62;
        else if (c == '/' || c == '_') v = 63;
        else return -1;
        val = (val << 6) | v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n >= max) return -1;
            out[n++] = (unsigned char)((val >> bits) & 0xff);
        }
    }
    return (int)n;
}

bool ts_object_tempurl_check(const char *key, const char *method, const char *expires, const char *path,
                             const char *sig)
{
    if (!key || !*key || !sig || !method || !expires || !path) return false;
    char want[129];
    enum ts_object_digest d;
    char hexsig[129];
    const char *colon = strchr(sig, ':');
    if (colon) {
        size_t dl = (size_t)(colon - sig);
        if (dl == 4 && strncmp(sig, "sha1", 4) == 0) d = TS_OBJECT_SHA1;
        else if (dl == 6 && strncmp(sig, "sha256", 6) == 0) d = TS_OBJECT_SHA256;
        else if (dl == 6 && strncmp(sig, "sha512", 6) == 0) d = TS_OBJECT_SHA512;
        else return false;
        unsigned char raw[64];
        int n = b64_any(colon + 1, raw, sizeof(raw));
        if (n <= 0) return false;
        ts_hex(raw, (size_t)n, hexsig);
        sig = hexsig;
    } else {
        size_t l = strlen(sig);
        if (l == 40) d = TS_OBJECT_SHA1;
        else if (l == 64) d = TS_OBJECT_SHA256;
        else if (l == 128) d = TS_OBJECT_SHA512;
        else return false;
    }
    ts_object_tempurl_hmac(d, key, method, expires, path, want);
    return ct_eq(want, sig);
}

int ts_object_tempurl_expires(const char *s, int64_t *out)
{
    if (!s || !*s) return -TS_EINVAL;
    if (ts_parse_int64(s, out) == 0) return *out >= 0 ? 0 : -TS_EINVAL;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *e = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!e || *e) return -TS_EINVAL;
    *out = (int64_t)timegm(&tm);
    return 0;
}

/* ---- content types -------------------------------------------------------------------- */

static const struct {
    const char *ext;
    const char *type;
} mime_table[] = {
    {"txt", "text/plain"},          {"html", "text/html"},          {"htm", "text/html"},
    {"css", "text/css"},            {"csv", "text/csv"},            {"xml", "application/xml"},
    {"json", "application/json"},   {"js", "application/javascript"}, {"pdf", "application/pdf"},
    {"zip", "application/zip"},     {"gz", "application/gzip"},     {"tgz", "application/gzip"},
    {"tar", "application/x-tar"},   {"bz2", "application/x-bzip2"}, {"xz", "application/x-xz"},
    {"png", "image/png"},           {"jpg", "image/jpeg"},          {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},           {"svg", "image/svg+xml"},       {"ico", "image/vnd.microsoft.icon"},
    {"webp", "image/webp"},         {"mp3", "audio/mpeg"},          {"mp4", "video/mp4"},
    {"iso", "application/x-iso9660-image"}, {"qcow2", "application/octet-stream"},
    {"md", "text/markdown"},        {"sh", "application/x-sh"},     {"py", "text/x-python"},
    {"c", "text/x-csrc"},           {"h", "text/x-chdr"},           {"yaml", "application/yaml"},
    {"yml", "application/yaml"},
};

const char *ts_object_guess_type(const char *name)
{
    const char *slash = strrchr(name, '/');
    const char *base = slash ? slash + 1 : name;
    const char *dot = strrchr(base, '.');
    if (dot && dot[1]) {
        for (size_t i = 0; i < sizeof(mime_table) / sizeof(mime_table[0]); i++)
            if (strcasecmp(dot + 1, mime_table[i].ext) == 0) return mime_table[i].type;
    }
    return "application/octet-stream";
}

/* ---- HTTP dates ----------------------------------------------------------------------- */

void ts_object_http_date(int64_t t, char out[40])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const mons[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    snprintf(out, 40, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7], tm.tm_mday,
             mons[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

int ts_object_http_date_parse(const char *s, int64_t *out)
{
    static const char *const fmts[] = {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT",
                                       "%a %b %d %H:%M:%S %Y"};
    if (!s) return -TS_EINVAL;
    for (size_t i = 0; i < 3; i++) {
        struct tm tm;
        memset(&tm, 0, sizeof(tm));
        const char *e = strptime(s, fmts[i], &tm);
        if (e && *skip_ws(e) == '\0') {
            *out = (int64_t)timegm(&tm);
            return 0;
        }
    }
    return -TS_EINVAL;
}

/* ---- tar reader ----------------------------------------------------------------------- */

struct ts_object_tar {
    ssize_t (*read)(void *ctx, void *buf, size_t len);
    void *ctx;
    uint64_t remaining;   /* data bytes of the current entry not yet read */
    uint64_t pad;         /* padding after it */
};

struct ts_object_tar *ts_object_tar_new(ssize_t (*read)(void *ctx, void *buf, size_t len), void *ctx)
{
    struct ts_object_tar *t = ts_calloc(1, sizeof(*t));
    t->read = read;
    t->ctx = ctx;
    return t;
}

void ts_object_tar_free(struct ts_object_tar *t)
{
    free(t);
}

/* Reads exactly len bytes; 1 on success, 0 on clean EOF at the start, -1 otherwise. */
static int read_full(struct ts_object_tar *t, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = t->read(t->ctx, (char *)buf + got, len - got);
        if (n < 0) return -1;
        if (n == 0) return got == 0 ? 0 : -1;
        got += (size_t)n;
    }
    return 1;
}

static int skip_bytes(struct ts_object_tar *t, uint64_t n)
{
    char buf[4096];
    while (n > 0) {
        size_t c = n > sizeof(buf) ? sizeof(buf) : (size_t)n;
        if (read_full(t, buf, c) != 1) return -1;
        n -= c;
    }
    return 0;
}

/* Octal (NUL/space padded) or GNU base-256 number. */
static int tar_number(const unsigned char *f, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (f[0] & 0x80) {
        if (f[0] != 0x80) return -1;  /* negative */
        for (size_t i = 1; i < len; i++) {
            if (v >> 56) return -1;
            v = (v << 8) | f[i];
        }
        *out = v;
        return 0;
    }
    size_t i = 0;
    while (i < len && (f[i] == ' ' || f[i] == '\0')) i++;
    if (i == len) {
        *out = 0;
        return 0;
    }
    for (; i < len && f[i] >= '0' && f[i] <= '7'; i++) {
        if (v >> 60) return -1;
        v = (v << 3) | (uint64_t)(f[i] - '0');
    }
    for (; i < len; i++)
        if (f[i] != ' ' && f[i] != '\0') return -1;
    *out = v;
    return 0;
}

static bool all_zero(const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i]) return false;
    return true;
}

/* Reads a long-name / pax payload of size bytes into a malloc'd buffer (bounded). */
static char *read_payload(struct ts_object_tar *t, uint64_t size)
{
    if (size > 1 << 20) return NULL;
    char *buf = ts_malloc((size_t)size + 1);
    if (read_full(t, buf, (size_t)size) != 1) {
        free(buf);
        return NULL;
    }
    buf[size] = '\0';
    uint64_t pad = (512 - size % 512) % 512;
    if (skip_bytes(t, pad) < 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* Finds "path=" in pax records "len key=value\n"; copies into out. */
static void pax_path(const char *p, size_t n, char *out, size_t outsz)
{
    size_t i = 0;
    while (i < n) {
        char *end;
        unsigned long rl = strtoul(p + i, &end, 10);
        if (end == p + i || rl == 0 || i + rl > n || *end != ' ') return;
        const char *kv = end + 1;
        const char *rec_end = p + i + rl;  /* points after '\n' */
        if (kv < rec_end && strncmp(kv, "path=", 5) == 0) {
            size_t vl = (size_t)(rec_end - (kv + 5));
            if (vl && kv[5 + vl - 1] == '\n') vl--;
            if (vl >= outsz) vl = outsz - 1;
            memcpy(out, kv + 5, vl);
            out[vl] = '\0';
        }
        i += rl;
    }
}

int ts_object_tar_next(struct ts_object_tar *t, struct ts_object_tar_entry *e)
{
    char longname[4096] = "";
    if (skip_bytes(t, t->remaining + t->pad) < 0) return -TS_EINVAL;
    t->remaining = t->pad = 0;
    for (;;) {
        unsigned char h[512];
        int r = read_full(t, h, sizeof(h));
        if (r == 0) return 0;
        if (r < 0) return -TS_EINVAL;
        if (all_zero(h, sizeof(h))) return 0;
        uint64_t sum = 0, want;
        for (int i = 0; i < 512; i++) sum += (i >= 148 && i < 156) ? ' ' : h[i];
        if (tar_number(h + 148, 8, &want) < 0 || want != sum) return -TS_EINVAL;
        uint64_t size;
        if (tar_number(h + 124, 12, &size) < 0) return -TS_EINVAL;
        char type = (char)h[156];
        if (type == 'L' || type == 'x') {
            char *payload = read_payload(t, size);
            if (!payload) return -TS_EINVAL;
            if (type == 'L') snprintf(longname, sizeof(longname), "%s", payload);
            else pax_path(payload, (size_t)size, longname, sizeof(longname));
            free(payload);
            continue;
        }
        if (type == 'g') {
            if (skip_bytes(t, size + (512 - size % 512) % 512) < 0) return -TS_EINVAL;
            continue;
        }
        memset(e, 0, sizeof(*e));
        if (longname[0]) {
            snprintf(e->name, sizeof(e->name), "%s", longname);
        } else {
            char name[101], prefix[156];
            memcpy(name, h, 100);
            name[100] = '\0';
            memcpy(prefix, h + 345, 155);
            prefix[155] = '\0';
            if (memcmp(h + 257, "ustar", 5) == 0 && prefix[0])
                snprintf(e->name, sizeof(e->name), "%s/%s", prefix, name);
            else
                snprintf(e->name, sizeof(e->name), "%s", name);
        }
        e->type = type == '\0' || type == '7' ? '0' : type;
        /* only regular files carry data we hand out; others' data is skipped */
        e->size = (e->type == '0') ? size : 0;
        t->remaining = size;
        t->pad = (512 - size % 512) % 512;
        if (e->type != '0') {
            if (skip_bytes(t, t->remaining + t->pad) < 0) return -TS_EINVAL;
            t->remaining = t->pad = 0;
        }
        return 1;
    }
}

ssize_t ts_object_tar_read(struct ts_object_tar *t, void *buf, size_t len)
{
    if (t->remaining == 0) return 0;
    if (len > t->remaining) len = (size_t)t->remaining;
    ssize_t n = t->read(t->ctx, buf, len);
    if (n <= 0) return -TS_EINVAL;
    t->remaining -= (uint64_t)n;
    return n;
}
