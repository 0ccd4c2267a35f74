/*
 * ts_core_buf.c: bounded growable buffers. Every buffer has a hard cap (max, 0 = 1 GiB);
 * appends that would pass it fail with -TS_ETOOBIG and leave the buffer unchanged, so an
 * oversized body becomes a 413. Growth failures (client-sized) return -TS_ENOMEM.
 */
#include "core/ts_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_DEFAULT_MAX ((size_t)1 << 30)

void ts_buf_init(struct ts_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max ? max : BUF_DEFAULT_MAX;
}

void ts_buf_free(struct ts_buf *b)
{
    if (!b) return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

static size_t buf_max(const struct ts_buf *b)
{
    return b->max ? b->max : BUF_DEFAULT_MAX;
}

/* Makes room for extra more bytes plus the terminating NUL. */
static int buf_reserve(struct ts_buf *b, size_t extra)
{
    size_t max = buf_max(b);
    if (extra > max || b->len > max - extra) return -TS_ETOOBIG;
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    if (cap > max + 1) cap = max + 1;
    char *p = realloc(b->data, cap);
    if (!p) return -TS_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int ts_buf_append(struct ts_buf *b, const void *data, size_t len)
{
    int rc = buf_reserve(b, len);
    if (rc < 0) return rc;
    if (len) memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int ts_buf_appends(struct ts_buf *b, const char *s)
{
    return ts_buf_append(b, s, s ? strlen(s) : 0);
}

int ts_buf_printf(struct ts_buf *b, const char *fmt, ...)
{
    va_list ap, cp;
    va_start(ap, fmt);
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    int rc = -TS_EINVAL;
    if (n < 0) goto out;
    rc = buf_reserve(b, (size_t)n);
    if (rc < 0) goto out;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    rc = 0;
out:
    va_end(ap);
    return rc;
}

const char *ts_buf_cstr(struct ts_buf *b)
{
    if (!b->data) {
        if (buf_reserve(b, 0) < 0) return "";
        b->data[0] = '\0';
    }
    return b->data;
}

void ts_buf_reset(struct ts_buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

char *ts_buf_steal(struct ts_buf *b, size_t *len)
{
    char *p = b->data;
    if (!p) {
        p = ts_malloc(1);
        p[0] = '\0';
    }
    if (len) *len = b->len;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
