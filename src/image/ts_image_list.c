/*
 * ts_image_list.c: the image list's JSON body written straight from the page's SQL rows
 * into one buffer, without a jansson tree per image (which cost more than the SQL: a
 * malloc per key and value, then json_dumps). The output is what ts_image_row_view plus
 * properties and tags would render through jansson: same keys, same order, same escaping.
 * Properties and tags come from one statement each for the whole page, ordered by image
 * id, and each image finds its run by binary search.
 */
#include "image/ts_image_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Past the buffer's cap every later append fails too (max shrinks to len), so a body that
 * does not end with its closing '}' is one that did not fit. */
static void app(struct ts_buf *b, const char *s, size_t n)
{
    /* room already there (the usual case once the buffer grew): no call; max is set (the
     * caller's cap, or lowered below after a failure) */
    if (b->data && b->len + n < b->cap && b->len + n <= b->max) {
        memcpy(b->data + b->len, s, n);
        b->len += n;
        b->data[b->len] = '\0';
        return;
    }
    if (n && ts_buf_append(b, s, n) != 0) b->max = b->len ? b->len : 1;
}

#define APPL(b, lit) app((b), (lit), sizeof(lit) - 1)

/* true when one of the 8 bytes in w is < 0x20, '"' or '\\' */
static bool word_needs_escape(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t lt20 = (w - ones * 0x20) & ~w;
    uint64_t q = w ^ (ones * '"'), bs = w ^ (ones * '\\');
    uint64_t eq = ((q - ones) & ~q) | ((bs - ones) & ~bs);
    return ((lt20 | eq) & highs) != 0;
}

/* "s" escaped as jansson escapes it (bytes >= 0x80 pass: stored text is valid UTF-8). */
static void str(struct ts_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s), i = 0, run = 0;
    APPL(b, "\"");
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (!word_needs_escape(w)) {
                i += 8;
                continue;
            }
        }
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        app(b, s + run, i - run);
        run = i + 1;
        char e[6] = {'\\', 0};
        size_t el = 2;
        switch (c) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        default:
            e[1] = 'u', e[2] = '0', e[3] = '0', e[4] = hex[c >> 4], e[5] = hex[c & 15];
            el = 6;
        }
        app(b, e, el);
        i++;
    }
    app(b, s + run, n - run);
    APPL(b, "\"");
}

static void str_or_null(struct ts_buf *b, const char *s)
{
    if (s) str(b, s);
    else APPL(b, "null");
}

static void num(struct ts_buf *b, int64_t v)
{
    char t[24];
    int n = snprintf(t, sizeof(t), "%lld", (long long)v);
    app(b, t, (size_t)n);
}

static void num_or_null(struct ts_buf *b, const char *s)
{
    int64_t v;
    if (s && ts_parse_int64(s, &v) == 0) num(b, v);
    else APPL(b, "null");
}

static void two(char *p, int v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

/* "YYYY-MM-DDTHH:MM:SSZ" of a microsecond count, as ts_time_iso(us / 1e6, 0) writes it. */
static void iso(struct ts_buf *b, const char *us_text)
{
    int64_t us = 0;
    if (!us_text || ts_parse_int64(us_text, &us) != 0) us = 0;
    time_t sec = (time_t)(us / 1000000);
    struct tm tm;
    if (us < 0 || us / 1000000 >= 253402300800LL || !gmtime_r(&sec, &tm)) {
        char t[32];
        ts_time_iso((double)(us / 1000000), 0, t);
        str(b, t);
        return;
    }
    char t[22] = "\"0000-00-00T00:00:00Z\"";
    int y = tm.tm_year + 1900;
    two(t + 1, y / 100);
    two(t + 3, y % 100);
    two(t + 6, tm.tm_mon + 1);
    two(t + 9, tm.tm_mday);
    two(t + 12, tm.tm_hour);
    two(t + 15, tm.tm_min);
    two(t + 18, tm.tm_sec);
    app(b, t, sizeof(t));
}

/* Rows of a properties or tags result ordered by image id (column 0) in C's byte order,
 * SQL order kept within an image (tags come sorted by value): the database's collation
 * may not be strcmp's (PostgreSQL's is the locale's). */
struct rows {
    const struct ts_db_res *res;
    int *idx;
    int n;
};

static int cmp_rows(const void *a, const void *b, void *ctx)
{
    const struct ts_db_res *res = ctx;
    int ia = *(const int *)a, ib = *(const int *)b;
    int c = strcmp(ts_db_res_get(res, ia, 0), ts_db_res_get(res, ib, 0));
    return c ? c : (ia > ib) - (ia < ib);
}

static void rows_sort(struct rows *rw, const struct ts_db_res *res, int *idx)
{
    rw->res = res;
    rw->idx = idx;
    rw->n = res ? res->nrows : 0;
    for (int i = 0; i < rw->n; i++) idx[i] = i;
    if (rw->n > 1) qsort_r(idx, (size_t)rw->n, sizeof(*idx), cmp_rows, (void *)res);
}

static const char *rows_get(const struct rows *rw, int k, int col) { return ts_db_res_get(rw->res, rw->idx[k], col); }

/* First position whose image id is id, or where it would be. */
static int lower_bound(const struct rows *rw, const char *id)
{
    int lo = 0, hi = rw->n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strcmp(rows_get(rw, mid, 0), id) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static void image(struct ts_buf *b, const struct ts_db_res *res, int r, const struct rows *props,
                  const struct rows *tags)
{
    const char *id = ts_db_res_get(res, r, 0);
    APPL(b, "{\"id\":");
    str(b, id);
    APPL(b, ",\"name\":");
    str_or_null(b, ts_db_res_get(res, r, 1));
    APPL(b, ",\"status\":");
    str_or_null(b, ts_db_res_get(res, r, 2));
    APPL(b, ",\"visibility\":");
    str_or_null(b, ts_db_res_get(res, r, 3));
    APPL(b, ",\"owner\":");
    str_or_null(b, ts_db_res_get(res, r, 4));
    if (ts_db_res_int(res, r, 5, 0)) APPL(b, ",\"protected\":true");
    else APPL(b, ",\"protected\":false");
    if (ts_db_res_int(res, r, 6, 0)) APPL(b, ",\"os_hidden\":true");
    else APPL(b, ",\"os_hidden\":false");
    APPL(b, ",\"disk_format\":");
    str_or_null(b, ts_db_res_get(res, r, 7));
    APPL(b, ",\"container_format\":");
    str_or_null(b, ts_db_res_get(res, r, 8));
    APPL(b, ",\"min_disk\":");
    num(b, ts_db_res_int(res, r, 9, 0));
    APPL(b, ",\"min_ram\":");
    num(b, ts_db_res_int(res, r, 10, 0));
    APPL(b, ",\"size\":");
    num_or_null(b, ts_db_res_get(res, r, 11));
    APPL(b, ",\"virtual_size\":");
    num_or_null(b, ts_db_res_get(res, r, 12));
    APPL(b, ",\"checksum\":");
    str_or_null(b, ts_db_res_get(res, r, 13));
    APPL(b, ",\"os_hash_algo\":");
    str_or_null(b, ts_db_res_get(res, r, 14));
    APPL(b, ",\"os_hash_value\":");
    str_or_null(b, ts_db_res_get(res, r, 15));
    APPL(b, ",\"created_at\":");
    iso(b, ts_db_res_get(res, r, 16));
    APPL(b, ",\"updated_at\":");
    iso(b, ts_db_res_get(res, r, 17));
    APPL(b, ",\"tags\":[");
    int t = lower_bound(tags, id);
    for (int k = t; k < tags->n && strcmp(rows_get(tags, k, 0), id) == 0; k++) {
        if (k > t) APPL(b, ",");
        str_or_null(b, rows_get(tags, k, 1));
    }
    APPL(b, "],\"self\":\"/v2/images/");
    app(b, id, strlen(id));   /* a UUID: nothing to escape */
    APPL(b, "\",\"file\":\"/v2/images/");
    app(b, id, strlen(id));
    APPL(b, "/file\",\"schema\":\"/v2/schemas/image\"");
    const char *status = ts_db_res_get(res, r, 2);
    if (ts_streq(status, "active") || ts_streq(status, "deactivated")) {
        const char *store = ts_db_res_get(res, r, 18);
        APPL(b, ",\"stores\":");
        str(b, store && *store ? store : "file");
    }
    for (int k = lower_bound(props, id); k < props->n && strcmp(rows_get(props, k, 0), id) == 0; k++) {
        APPL(b, ",");
        str(b, rows_get(props, k, 1));
        APPL(b, ":");
        str_or_null(b, rows_get(props, k, 2));
    }
    APPL(b, "}");
}

void ts_image_list_render(struct ts_buf *b, const struct ts_db_res *res, const struct ts_db_res *props,
                          const struct ts_db_res *tags, const char *first, const char *next)
{
    struct rows pr, tr;
    int *idx = ts_malloc(((props ? (size_t)props->nrows : 0) + (tags ? (size_t)tags->nrows : 0) + 1) * sizeof(int));
    rows_sort(&pr, props, idx);
    rows_sort(&tr, tags, idx + pr.n);
    APPL(b, "{\"images\":[");
    for (int r = 0; r < res->nrows; r++) {
        if (r) APPL(b, ",");
        image(b, res, r, &pr, &tr);
    }
    APPL(b, "],\"first\":");
    str(b, first);
    APPL(b, ",\"schema\":\"/v2/schemas/images\"");
    if (next) {
        APPL(b, ",\"next\":");
        str(b, next);
    }
    APPL(b, "}");
    free(idx);
}
