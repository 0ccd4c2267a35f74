/*
 * ts_core_err.c: error codes and the ts_err detail carrier. One table maps each TS_E...
 * code to its HTTP status; ts_err_title() gives the reason phrase for a status. Also the
 * abort-on-OOM allocators and ts_panic(), the other "cannot continue" paths.
 */
#include "core/ts_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int code_status[TS_E_COUNT] = {
    [TS_OK] = 200,
    [TS_EINVAL] = 400,
    [TS_EUNAUTH] = 401,
    [TS_EFORBIDDEN] = 403,
    [TS_ENOTFOUND] = 404,
    [TS_EMETHOD] = 405,
    [TS_ENOTACCEPT] = 406,
    [TS_ECONFLICT] = 409,
    [TS_EGONE] = 410,
    [TS_ELENGTH] = 411,
    [TS_EPRECOND] = 412,
    [TS_ETOOBIG] = 413,
    [TS_EMEDIA] = 415,
    [TS_ERANGE] = 416,
    [TS_EUNPROCESSABLE] = 422,
    [TS_ELOCKED] = 423,
    [TS_ENOMEM] = 500,
    [TS_EIO] = 500,
    [TS_ENOTIMPL] = 501,
    [TS_EUNAVAIL] = 503,
    [TS_ETIMEDOUT] = 504,
    [TS_EQUOTA] = 403,
};

int ts_err_status(int code)
{
    if (code < 0) code = -code;
    if (code >= TS_E_COUNT) return 500;
    return code_status[code];
}

const char *ts_err_title(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Request Entity Too Large";
    case 414: return "Request-URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Requested Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Entity";
    case 423: return "Locked";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    default: break;
    }
    if (status >= 200 && status < 300) return "OK";
    if (status >= 400 && status < 500) return "Bad Request";
    return "Internal Server Error";
}

void ts_err_clear(struct ts_err *err)
{
    if (!err) return;
    memset(err, 0, sizeof(*err));
}

/* Cuts a UTF-8 sequence that truncation left incomplete at the end of s. */
static void trim_partial_utf8(char *s)
{
    size_t len = strlen(s);
    if (len == 0) return;
    size_t j = len - 1;
    while (j > 0 && len - j < 4 && ((unsigned char)s[j] & 0xc0) == 0x80) j--;
    unsigned char lead = (unsigned char)s[j];
    size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
    if (lead >= 0x80 && j + need > len) s[j] = '\0';
}

/* Replaces bytes that are not part of valid UTF-8 with '?': messages carry client text
 * (names, jansson's "near '...'") and end up in JSON fault bodies. */
static void sanitize_utf8(char *s)
{
    size_t len = strlen(s);
    for (size_t i = 0; i < len;) {
        if ((unsigned char)s[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = 2;
        while (n <= 4 && i + n <= len && !ts_utf8_valid(s + i, n)) n++;
        if (n > 4 || i + n > len) {
            s[i++] = '?';
        } else {
            i += n;
        }
    }
}

static int err_vset(struct ts_err *err, int code, int status, const char *type, const char *fmt,
                    va_list ap)
{
    if (code < 0) code = -code;
    if (!err) return -code;
    err->code = code;
    err->status = status;
    err->type[0] = '\0';
    if (type) {
        snprintf(err->type, sizeof(err->type), "%s", type);
        sanitize_utf8(err->type);
    }
    err->msg[0] = '\0';
    if (fmt && vsnprintf(err->msg, sizeof(err->msg), fmt, ap) >= (int)sizeof(err->msg))
        trim_partial_utf8(err->msg);
    sanitize_utf8(err->msg);
    return -code;
}

int ts_err_set(struct ts_err *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = err_vset(err, code, 0, NULL, fmt, ap);
    va_end(ap);
    return rc;
}

int ts_err_set_full(struct ts_err *err, int code, int status, const char *type, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = err_vset(err, code, status, type, fmt, ap);
    va_end(ap);
    return rc;
}

void ts_panic(const char *fmt, ...)
{
    va_list ap;
    fputs("tinystack: fatal: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    abort();
}

/* ---- allocation that aborts on out-of-memory ---- */

void *ts_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) ts_panic("out of memory allocating %zu bytes", n);
    return p;
}

void *ts_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) ts_panic("out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *ts_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) ts_panic("out of memory reallocating %zu bytes", n);
    return q;
}

char *ts_strdup(const char *s)
{
    return ts_strndup(s ? s : "", s ? strlen(s) : 0);
}

char *ts_strndup(const char *s, size_t n)
{
    size_t len = s ? strnlen(s, n) : 0;
    char *p = ts_malloc(len + 1);
    if (len) memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *ts_vasprintf(const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0) ts_panic("ts_vasprintf: bad format");
    char *p = ts_malloc((size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    return p;
}

char *ts_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = ts_vasprintf(fmt, ap);
    va_end(ap);
    return p;
}
