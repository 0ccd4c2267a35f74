/*
 * ts_image_list.c: GET /v2/images' page: three SQL statements (the page's images, then the
 * properties and the tags of those images, each ordered by image id so no sort is needed)
 * whose rows are copied into one buffer per statement (ts_db_each: no allocation per cell),
 * and the JSON body written straight from those rows into one buffer, without a jansson
 * tree per image (which cost more than the SQL: a malloc per key and value, then
 * json_dumps). The output is what ts_image_row_view plus properties and tags would render
 * through jansson: same keys, same order, same escaping.
 */
#include "image/ts_image_int.h"

#include <stdint.h>
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
    char *e = t + sizeof(t), *p = e;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    app(b, p, (size_t)(e - p));
}

/* Decimal text of an integer as the database hands it out; other text goes to ts_parse_int64. */
static int parse_int(const char *s, int64_t *out)
{
    const char *p = s;
    bool neg = *p == '-';
    if (neg) p++;
    uint64_t v = 0;
    int n = 0;
    for (; *p >= '0' && *p <= '9' && n < 18; p++, n++) v = v * 10 + (uint64_t)(*p - '0');
    if (n == 0 || *p) return ts_parse_int64(s, out);
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

static void num_or_null(struct ts_buf *b, const char *s)
{
    int64_t v;
    if (s && parse_int(s, &v) == 0) num(b, v);
    else APPL(b, "null");
}

static void two(char *p, int v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

/* "YYYY-MM-DDTHH:MM:SSZ" of a microsecond count, as ts_time_iso(us / 1e6, 0) writes it;
 * the date from the day count by Howard Hinnant's civil_from_days (gmtime_r takes a lock). */
static void iso(struct ts_buf *b, const char *us_text)
{
    int64_t us = 0;
    if (!us_text || parse_int(us_text, &us) != 0) us = 0;
    if (us < 0 || us / 1000000 >= 253402300800LL) {
        char t[32];
        ts_time_iso((double)(us / 1000000), 0, t);
        str(b, t);
        return;
    }
    int64_t sec = us / 1000000, z = sec / 86400 + 719468, s = sec % 86400;
    int64_t era = z / 146097, doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1), m = (int)(mp < 10 ? mp + 3 : mp - 9);
    int y = (int)(yoe + era * 400) + (m <= 2);
    char t[22] = "\"0000-00-00T00:00:00Z\"";
    two(t + 1, y / 100);
    two(t + 3, y % 100);
    two(t + 6, m);
    two(t + 9, d);
    two(t + 12, (int)(s / 3600));
    two(t + 15, (int)(s / 60 % 60));
    two(t + 18, (int)(s % 60));
    app(b, t, sizeof(t));
}

/* The rows of one statement, their cells copied into one buffer (NUL-terminated each). */
struct table {
    char *data;
    size_t len, cap;
    size_t *off;   /* nrows * ncols offsets into data; SIZE_MAX for SQL NULL */
    int ncols, nrows, rows_cap;
};

static int table_row(void *ctx, const char *const *cells, const size_t *lens, int ncols)
{
    struct table *t = ctx;
    if (t->nrows == 0) t->ncols = ncols;
    if (ncols != t->ncols || ncols <= 0) return -TS_EIO;
    if (t->nrows == t->rows_cap) {
        t->rows_cap = t->rows_cap ? t->rows_cap * 2 : 64;
        t->off = ts_realloc(t->off, (size_t)t->rows_cap * (size_t)ncols * sizeof(*t->off));
    }
    size_t need = 0;
    for (int c = 0; c < ncols; c++) need += (cells[c] ? lens[c] : 0) + 1;
    if (t->len + need > t->cap) {
        size_t cap = t->cap ? t->cap : 16384;
        while (cap < t->len + need) cap *= 2;
        t->data = ts_realloc(t->data, cap);
        t->cap = cap;
    }
    size_t *off = t->off + (size_t)t->nrows * (size_t)ncols;
    for (int c = 0; c < ncols; c++) {
        if (!cells[c]) {
            off[c] = SIZE_MAX;
            continue;
        }
        off[c] = t->len;
        memcpy(t->data + t->len, cells[c], lens[c]);
        t->len += lens[c];
        t->data[t->len++] = '\0';
    }
    t->nrows++;
    return 0;
}

static const char *cell(const struct table *t, int r, int c)
{
    size_t o = t->off[(size_t)r * (size_t)t->ncols + (size_t)c];
    return o == SIZE_MAX ? NULL : t->data + o;
}

static void table_free(struct table *t)
{
    free(t->data);
    free(t->off);
}

/* Each image's run of rows in a properties or tags table (ordered by image id, column 0):
 * first[i], count[i] for page row i. The page's ids are found through a small hash table;
 * the database's collation may not be strcmp's (PostgreSQL's is the locale's), so the runs
 * are only assumed to be contiguous, not in any particular order. */
struct runs {
    int *first, *count;
};

static uint64_t hash_id(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

struct id_index {
    int *slot;   /* page row + 1, 0 = empty */
    size_t mask;
};

static void index_build(struct id_index *ix, const struct table *page)
{
    size_t n = 16;
    while (n < (size_t)page->nrows * 2) n *= 2;
    ix->slot = ts_calloc(n, sizeof(int));
    ix->mask = n - 1;
    for (int r = 0; r < page->nrows; r++) {
        size_t h = (size_t)hash_id(cell(page, r, 0)) & ix->mask;
        while (ix->slot[h]) h = (h + 1) & ix->mask;
        ix->slot[h] = r + 1;
    }
}

static int index_find(const struct id_index *ix, const struct table *page, const char *id)
{
    size_t h = (size_t)hash_id(id) & ix->mask;
    for (; ix->slot[h]; h = (h + 1) & ix->mask)
        if (strcmp(cell(page, ix->slot[h] - 1, 0), id) == 0) return ix->slot[h] - 1;
    return -1;
}

static void runs_build(struct runs *ru, const struct table *t, const struct id_index *ix, const struct table *page)
{
    ru->first = ts_calloc((size_t)page->nrows + 1, sizeof(int));
    ru->count = ts_calloc((size_t)page->nrows + 1, sizeof(int));
    for (int k = 0; k < t->nrows;) {
        const char *id = cell(t, k, 0);
        int e = k + 1;
        while (e < t->nrows && strcmp(cell(t, e, 0), id) == 0) e++;
        int r = id ? index_find(ix, page, id) : -1;
        if (r >= 0 && ru->count[r] == 0) {
            ru->first[r] = k;
            ru->count[r] = e - k;
        }
        k = e;
    }
}

static void runs_free(struct runs *ru)
{
    free(ru->first);
    free(ru->count);
}

static void image(struct ts_buf *b, const struct table *res, int r, const struct table *props,
                  const struct runs *pr, const struct table *tags, const struct runs *tr)
{
    const char *id = cell(res, r, 0);
    APPL(b, "{\"id\":");
    str(b, id);
    APPL(b, ",\"name\":");
    str_or_null(b, cell(res, r, 1));
    APPL(b, ",\"status\":");
    str_or_null(b, cell(res, r, 2));
    APPL(b, ",\"visibility\":");
    str_or_null(b, cell(res, r, 3));
    APPL(b, ",\"owner\":");
    str_or_null(b, cell(res, r, 4));
    int64_t v;
    const char *s = cell(res, r, 5);
    if (s && parse_int(s, &v) == 0 && v) APPL(b, ",\"protected\":true");
    else APPL(b, ",\"protected\":false");
    s = cell(res, r, 6);
    if (s && parse_int(s, &v) == 0 && v) APPL(b, ",\"os_hidden\":true");
    else APPL(b, ",\"os_hidden\":false");
    APPL(b, ",\"disk_format\":");
    str_or_null(b, cell(res, r, 7));
    APPL(b, ",\"container_format\":");
    str_or_null(b, cell(res, r, 8));
    APPL(b, ",\"min_disk\":");
    s = cell(res, r, 9);
    num(b, s && parse_int(s, &v) == 0 ? v : 0);
    APPL(b, ",\"min_ram\":");
    s = cell(res, r, 10);
    num(b, s && parse_int(s, &v) == 0 ? v : 0);
    APPL(b, ",\"size\":");
    num_or_null(b, cell(res, r, 11));
    APPL(b, ",\"virtual_size\":");
    num_or_null(b, cell(res, r, 12));
    APPL(b, ",\"checksum\":");
    str_or_null(b, cell(res, r, 13));
    APPL(b, ",\"os_hash_algo\":");
    str_or_null(b, cell(res, r, 14));
    APPL(b, ",\"os_hash_value\":");
    str_or_null(b, cell(res, r, 15));
    APPL(b, ",\"created_at\":");
    iso(b, cell(res, r, 16));
    APPL(b, ",\"updated_at\":");
    iso(b, cell(res, r, 17));
    APPL(b, ",\"tags\":[");
    for (int k = tr->first[r], e = k + tr->count[r]; k < e; k++) {
        if (k > tr->first[r]) APPL(b, ",");
        str_or_null(b, cell(tags, k, 1));
    }
    APPL(b, "],\"self\":\"/v2/images/");
    app(b, id, strlen(id));   /* a UUID: nothing to escape */
    APPL(b, "\",\"file\":\"/v2/images/");
    app(b, id, strlen(id));
    APPL(b, "/file\",\"schema\":\"/v2/schemas/image\"");
    const char *status = cell(res, r, 2);
    if (ts_streq(status, "active") || ts_streq(status, "deactivated")) {
        const char *store = cell(res, r, 18);
        APPL(b, ",\"stores\":");
        str(b, store && *store ? store : "file");
    }
    for (int k = pr->first[r], e = k + pr->count[r]; k < e; k++) {
        APPL(b, ",");
        str(b, cell(props, k, 1));
        APPL(b, ":");
        str_or_null(b, cell(props, k, 2));
    }
    APPL(b, "}");
}

int ts_image_list_page(struct ts_image_svc *svc, const char *sql, const struct ts_db_val *args, int nargs,
                       int64_t limit, const char *first, const char *next_prefix, struct ts_buf *body,
                       struct ts_err *err)
{
    struct table res = {0}, props = {0}, tags = {0};
    struct id_index ix = {0};
    struct runs pr = {0}, tr = {0};
    struct ts_buf q;
    ts_buf_init(&q, 1 << 20);
    int rc = ts_db_each(svc->db, sql, args, nargs, table_row, &res, err);
    if (rc) goto out;
    if (res.nrows > 0 && res.ncols < 19) {
        rc = ts_err_set(err, TS_EIO, "image list: unexpected columns");
        goto out;
    }
    if (res.nrows > 0) {
        /* properties and tags of the whole page: one statement each, grouped by image */
        struct ts_db_val *ids = ts_malloc((size_t)res.nrows * sizeof(*ids));
        ts_buf_appends(&q, "SELECT image_id, name, value FROM image_properties WHERE image_id IN (");
        for (int r = 0; r < res.nrows; r++) {
            ids[r] = TS_DB_S(cell(&res, r, 0));
            ts_buf_appends(&q, r ? ", ?" : "?");
        }
        size_t in_end = q.len;
        ts_buf_appends(&q, ") ORDER BY image_id, name");
        rc = ts_db_each(svc->db, ts_buf_cstr(&q), ids, res.nrows, table_row, &props, err);
        if (!rc) {
            /* the same id list: "SELECT image_id, value FROM image_tags WHERE image_id IN (...)" */
            struct ts_buf t;
            ts_buf_init(&t, 1 << 20);
            ts_buf_appends(&t, "SELECT image_id, value FROM image_tags");
            const char *w = strstr(ts_buf_cstr(&q), " WHERE");
            ts_buf_append(&t, w, (size_t)(q.data + in_end - w));
            ts_buf_appends(&t, ") ORDER BY image_id, value");
            rc = ts_db_each(svc->db, ts_buf_cstr(&t), ids, res.nrows, table_row, &tags, err);
            ts_buf_free(&t);
        }
        free(ids);
        if (rc) goto out;
    }
    index_build(&ix, &res);
    runs_build(&pr, &props, &ix, &res);
    runs_build(&tr, &tags, &ix, &res);
    APPL(body, "{\"images\":[");
    for (int r = 0; r < res.nrows; r++) {
        if (r) APPL(body, ",");
        image(body, &res, r, &props, &pr, &tags, &tr);
    }
    APPL(body, "],\"first\":");
    str(body, first);
    APPL(body, ",\"schema\":\"/v2/schemas/images\"");
    if (next_prefix && res.nrows > 0 && res.nrows == limit) {
        char *next = ts_asprintf("%s%s", next_prefix, cell(&res, res.nrows - 1, 0));
        APPL(body, ",\"next\":");
        str(body, next);
        free(next);
    }
    APPL(body, "}");
    if (body->len == 0 || body->data[body->len - 1] != '}')
        rc = ts_err_set(err, TS_ETOOBIG, "The image list is too large; ask for a smaller limit.");
out:
    free(ix.slot);
    runs_free(&pr);
    runs_free(&tr);
    table_free(&res);
    table_free(&props);
    table_free(&tags);
    ts_buf_free(&q);
    return rc;
}

/* ---- the rendered-page cache ------------------------------------------------------------ */

#define CACHE_ENTRIES 8
#define CACHE_MAX_BODY ((size_t)1 << 20)

struct cache_entry {
    int64_t gen;
    char *key;
    char *body;
    size_t len;
    uint64_t used;
};

struct ts_image_list_cache {
    pthread_mutex_t mu;
    struct cache_entry e[CACHE_ENTRIES];
    uint64_t tick;
};

static const char *const gen_tables[] = {"images", "image_properties", "image_tags", "image_members"};
static const char *const gen_ops[] = {"INSERT", "UPDATE", "DELETE"};

int ts_image_list_cache_open(struct ts_image_svc *svc, struct ts_err *err)
{
    svc->list_cache = NULL;
    if (ts_db_is_postgres(svc->db)) return 0;   /* no triggers there: every list runs its statements */
    struct ts_db_conn *tx = NULL;
    int rc = ts_db_begin(svc->db, &tx, err);
    if (rc) return rc;
    for (size_t t = 0; t < sizeof(gen_tables) / sizeof(gen_tables[0]) && !rc; t++) {
        for (size_t o = 0; o < sizeof(gen_ops) / sizeof(gen_ops[0]) && !rc; o++) {
            char *sql = ts_asprintf("CREATE TRIGGER IF NOT EXISTS %s_gen_%c AFTER %s ON %s "
                                    "BEGIN UPDATE image_list_gen SET n = n + 1; END",
                                    gen_tables[t], gen_ops[o][0] + 32, gen_ops[o], gen_tables[t]);
            rc = ts_db_tx_exec(tx, sql, TS_DB_NOARGS, NULL, err);
            free(sql);
        }
    }
    if (rc) {
        ts_db_rollback(tx);
        return rc;
    }
    rc = ts_db_commit(tx, err);
    if (rc) return rc;
    struct ts_image_list_cache *c = ts_calloc(1, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    svc->list_cache = c;
    return 0;
}

void ts_image_list_cache_free(struct ts_image_svc *svc)
{
    struct ts_image_list_cache *c = svc->list_cache;
    if (!c) return;
    for (int i = 0; i < CACHE_ENTRIES; i++) {
        free(c->e[i].key);
        free(c->e[i].body);
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
    svc->list_cache = NULL;
}

static int gen_row(void *ctx, const char *const *cells, const size_t *lens, int ncols)
{
    (void)lens;
    int64_t *gen = ctx;
    if (ncols < 1 || !cells[0] || parse_int(cells[0], gen) != 0) *gen = -1;
    return 0;
}

int64_t ts_image_list_gen(struct ts_image_svc *svc)
{
    if (!svc->list_cache) return -1;
    int64_t gen = -1;
    struct ts_err e;
    ts_err_clear(&e);
    if (ts_db_each(svc->db, "SELECT n FROM image_list_gen", TS_DB_NOARGS, gen_row, &gen, &e) != 0) return -1;
    return gen;
}

bool ts_image_list_cache_get(struct ts_image_svc *svc, int64_t gen, const char *key, struct ts_http_resp *resp)
{
    struct ts_image_list_cache *c = svc->list_cache;
    if (!c || gen < 0) return false;
    bool hit = false;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < CACHE_ENTRIES; i++) {
        struct cache_entry *e = &c->e[i];
        if (e->key && e->gen == gen && strcmp(e->key, key) == 0) {
            e->used = ++c->tick;
            ts_http_resp_body(resp, 200, "application/json", e->body, e->len);
            hit = true;
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return hit;
}

void ts_image_list_cache_put(struct ts_image_svc *svc, int64_t gen, const char *key, const char *body, size_t len)
{
    struct ts_image_list_cache *c = svc->list_cache;
    if (!c || gen < 0 || len > CACHE_MAX_BODY) return;
    char *k = ts_strdup(key), *b = ts_malloc(len ? len : 1);
    memcpy(b, body, len);
    pthread_mutex_lock(&c->mu);
    /* an entry of an older generation, an empty one, or the least recently used */
    int victim = 0;
    for (int i = 0; i < CACHE_ENTRIES; i++) {
        struct cache_entry *e = &c->e[i];
        if (!e->key || e->gen != gen) {
            victim = i;
            break;
        }
        if (e->used < c->e[victim].used) victim = i;
    }
    struct cache_entry *e = &c->e[victim];
    char *old_key = e->key, *old_body = e->body;
    *e = (struct cache_entry){.gen = gen, .key = k, .body = b, .len = len, .used = ++c->tick};
    pthread_mutex_unlock(&c->mu);
    free(old_key);
    free(old_body);
}
