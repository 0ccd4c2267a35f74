/*
 * ts_object_api_obj.c: Swift objects: GET/HEAD (ranges, multi-range, conditionals, static
 * and dynamic large objects streamed from their segments), PUT (streamed to the store
 * with md5, ETag check, quotas, expiry, If-None-Match, SLO manifests, X-Copy-From), POST
 * (metadata), COPY, DELETE (with versioning and multipart-manifest=delete) and temp URLs.
 * Every body is a list of pieces (literal bytes or blob slices) read sequentially, so
 * memory per request stays constant whatever the object size.
 */
#include "object/ts_object_api.h"

#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bus/ts_bus.h"

#define MAX_MANIFEST_BYTES (8 << 20)
#define MAX_SEGMENTS 1000

/* ---- pieces ------------------------------------------------------------------------ */

struct piece {
    const char *lit;      /* literal bytes, or NULL for a blob slice */
    char blob[TS_OBJECT_BLOB_ID_MAX];
    uint64_t off, len;
};

struct pieces {
    struct piece *v;
    int n, cap;
    uint64_t total;
    struct ts_pool *pool;
    EVP_MD_CTX *etags;    /* md5 over segment etags (large objects) */
};

static void pieces_init(struct pieces *p, struct ts_pool *pool)
{
    memset(p, 0, sizeof(*p));
    p->pool = pool;
}

static void pieces_push(struct pieces *p, const char *lit, const char *blob, uint64_t off, uint64_t len)
{
    if (len == 0) return;
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 8;
        struct piece *nv = ts_pool_alloc(p->pool, sizeof(*nv) * (size_t)cap);
        if (p->n) memcpy(nv, p->v, sizeof(*nv) * (size_t)p->n);
        p->v = nv;
        p->cap = cap;
    }
    struct piece *x = &p->v[p->n++];
    x->lit = lit;
    if (blob) snprintf(x->blob, sizeof(x->blob), "%s", blob);
    x->off = off;
    x->len = len;
    p->total += len;
}

/* The slice [start, start+len) of src appended to dst. */
static void pieces_slice(const struct pieces *src, uint64_t start, uint64_t len, struct pieces *dst)
{
    uint64_t pos = 0, end = start + len;
    for (int i = 0; i < src->n && pos < end; i++) {
        const struct piece *x = &src->v[i];
        uint64_t a = pos, b = pos + x->len;
        pos = b;
        if (b <= start) continue;
        uint64_t s0 = start > a ? start - a : 0;
        uint64_t e0 = (end < b ? end : b) - a;
        pieces_push(dst, x->lit ? x->lit + s0 : NULL, x->lit ? NULL : x->blob, x->off + s0, e0 - s0);
    }
}

struct reader {
    struct ts_object_svc *svc;
    struct piece *v;
    int n, cur;
    uint64_t in;             /* offset inside the current piece */
    struct ts_object_blob *b;
    int b_for;               /* index of the piece b was opened for */
};

static ssize_t reader_read(void *ctx, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct reader *r = ctx;
    while (r->cur < r->n && r->in >= r->v[r->cur].len) {
        r->cur++;
        r->in = 0;
    }
    if (r->cur >= r->n) return 0;
    struct piece *x = &r->v[r->cur];
    uint64_t left = x->len - r->in;
    size_t want = left < max ? (size_t)left : max;
    if (x->lit) {
        memcpy(buf, x->lit + r->in, want);
        r->in += want;
        return (ssize_t)want;
    }
    if (!r->b || r->b_for != r->cur) {
        if (r->b) r->svc->store->ops->close(r->b);
        r->b = NULL;
        if (r->svc->store->ops->open(r->svc->store, x->blob, &r->b, NULL, NULL) < 0) return -1;
        r->b_for = r->cur;
    }
    ssize_t n = r->svc->store->ops->pread(r->b, buf, want, x->off + r->in);
    if (n <= 0) return -1;   /* a segment shorter than its listing: cut the response */
    r->in += (uint64_t)n;
    return n;
}

static void reader_free(void *ctx)
{
    struct reader *r = ctx;
    if (r->b) r->svc->store->ops->close(r->b);
    free(r);
}

/* A single blob slice up to this size is read into memory and goes out with the headers in
 * one send; larger ones go out from an fd (sendfile). */
#define SMALL_BODY (64u << 10)

/* Sends pieces as the body (a single blob slice goes out from memory or as an fd). */
static void send_pieces(struct ts_object_req *s, int status, const char *ctype, struct pieces *p)
{
    struct ts_object_store *st = s->svc->store;
    if (p->n == 1 && !p->v[0].lit) {
        struct ts_object_blob *b = NULL;
        if (st->ops->open(st, p->v[0].blob, &b, NULL, NULL) == 0) {
            if (p->v[0].len <= SMALL_BODY) {
                char *buf = ts_malloc((size_t)p->v[0].len);
                uint64_t got = 0;
                while (got < p->v[0].len) {
                    ssize_t n = st->ops->pread(b, buf + got, (size_t)(p->v[0].len - got), p->v[0].off + got);
                    if (n <= 0) break;
                    got += (uint64_t)n;
                }
                if (got == p->v[0].len) {
                    st->ops->close(b);
                    ts_http_resp_body_take(s->resp, status, ctype, buf, (size_t)got);
                    return;
                }
                free(buf);  /* shorter than its row: the fd path cuts the response as before */
            }
            int fd = st->ops->dup_fd(b);
            st->ops->close(b);
            if (fd >= 0) {
                ts_http_resp_fd(s->resp, status, ctype, fd, p->v[0].off, p->v[0].len);
                return;
            }
        }
    }
    struct reader *r = ts_calloc(1, sizeof(*r));
    r->svc = s->svc;
    r->v = p->v;
    r->n = p->n;
    r->b_for = -1;
    ts_http_resp_stream(s->resp, status, ctype, (int64_t)p->total, reader_read, reader_free, r);
}

/* Reads a whole (small) blob into pool memory. */
static int read_blob(struct ts_object_svc *svc, struct ts_pool *pool, const char *id, size_t max, char **out,
                     size_t *len, struct ts_err *err)
{
    struct ts_object_blob *b = NULL;
    uint64_t size = 0;
    int rc = svc->store->ops->open(svc->store, id, &b, &size, err);
    if (rc < 0) return rc;
    if (size > max) {
        svc->store->ops->close(b);
        return ts_err_set(err, TS_ETOOBIG, "manifest too large");
    }
    char *buf = ts_pool_alloc(pool, (size_t)size + 1);
    uint64_t got = 0;
    while (got < size) {
        ssize_t n = svc->store->ops->pread(b, buf + got, (size_t)(size - got), got);
        if (n <= 0) break;
        got += (uint64_t)n;
    }
    svc->store->ops->close(b);
    if (got != size) return ts_err_set(err, TS_EIO, "short read");
    *out = buf;
    *len = (size_t)size;
    return 0;
}

/* Splits "/c/o" or "c/o" into pool strings. */
static int split_path(struct ts_pool *pool, const char *path, const char **c, const char **o)
{
    if (!path) return -1;
    if (*path == '/') path++;
    const char *slash = strchr(path, '/');
    if (!slash || slash == path || !slash[1]) return -1;
    *c = ts_pool_strndup(pool, path, (size_t)(slash - path));
    *o = ts_pool_strdup(pool, slash + 1);
    return 0;
}

static int add_row_pieces(struct ts_object_req *s, const char *cont, const struct ts_object_row *row,
                          struct pieces *p, int depth, struct ts_err *err);

static int add_slo_pieces(struct ts_object_req *s, const struct ts_object_row *row, struct pieces *p, int depth,
                          struct ts_err *err)
{
    char *text;
    size_t len;
    int rc = read_blob(s->svc, s->req->pool, row->blob, MAX_MANIFEST_BYTES, &text, &len, err);
    if (rc < 0) return rc;
    json_t *arr = json_loadb(text, len, 0, NULL);
    if (!json_is_array(arr)) {
        json_decref(arr);
        return ts_err_set(err, TS_EIO, "corrupt manifest");
    }
    ts_pool_cleanup(s->req->pool, (void (*)(void *))json_decref, arr);
    size_t i;
    json_t *seg;
    json_array_foreach(arr, i, seg) {
        const char *c, *o;
        if (split_path(s->req->pool, json_string_value(json_object_get(seg, "name")), &c, &o) < 0)
            return ts_err_set(err, TS_EIO, "corrupt manifest");
        struct ts_object_row sr;
        struct ts_err e2;
        if (ts_object_db_object(s->svc, s->req->pool, s->account, c, o, &sr, &e2) < 0)
            return ts_err_set_full(err, TS_ECONFLICT, 409, NULL, "Segment /%s/%s is missing", c, o);
        rc = add_row_pieces(s, c, &sr, p, depth + 1, err);
        if (rc < 0) return rc;
    }
    return 0;
}

static int add_dlo_pieces(struct ts_object_req *s, const char *manifest, struct pieces *p, int depth,
                          struct ts_err *err)
{
    char *dec = ts_url_decode(s->req->pool, manifest, strlen(manifest));
    if (!dec) return ts_err_set(err, TS_EINVAL, "bad X-Object-Manifest");
    const char *slash = strchr(dec, '/');
    if (!slash) return ts_err_set(err, TS_EINVAL, "bad X-Object-Manifest");
    const char *c = ts_pool_strndup(s->req->pool, dec, (size_t)(slash - dec));
    const char *prefix = slash + 1;
    char *upper = NULL;
    size_t pl = strlen(prefix);
    struct ts_db_res *r = NULL;
    int rc;
    if (pl) {
        upper = ts_pool_strdup(s->req->pool, prefix);
        upper[pl - 1] = (char)((unsigned char)upper[pl - 1] + 1);
        rc = ts_db_exec(s->svc->db,
                        "SELECT name FROM objects WHERE account = ? AND container = ? AND name >= ? AND name < ?"
                        " AND (delete_at IS NULL OR delete_at > ?) ORDER BY name LIMIT 10000",
                        TS_DB_ARGS(TS_DB_S(s->account), TS_DB_S(c), TS_DB_S(prefix), TS_DB_S(upper),
                                   TS_DB_I((int64_t)s->now)),
                        &r, err);
    } else {
        rc = ts_db_exec(s->svc->db,
                        "SELECT name FROM objects WHERE account = ? AND container = ?"
                        " AND (delete_at IS NULL OR delete_at > ?) ORDER BY name LIMIT 10000",
                        TS_DB_ARGS(TS_DB_S(s->account), TS_DB_S(c), TS_DB_I((int64_t)s->now)), &r, err);
    }
    if (rc < 0) return rc;
    for (int i = 0; i < r->nrows && rc == 0; i++) {
        struct ts_object_row sr;
        struct ts_err e2;
        if (ts_object_db_object(s->svc, s->req->pool, s->account, c, ts_db_res_get(r, i, 0), &sr, &e2) < 0) continue;
        if (json_object_get(sr.meta, "X-Object-Manifest")) continue; /* no nested DLOs */
        rc = add_row_pieces(s, c, &sr, p, depth + 1, err);
    }
    ts_db_res_free(r);
    return rc;
}

static int add_row_pieces(struct ts_object_req *s, const char *cont, const struct ts_object_row *row,
                          struct pieces *p, int depth, struct ts_err *err)
{
    (void)cont;
    if (depth > 10) return ts_err_set_full(err, TS_ECONFLICT, 409, NULL, "Max recursion depth exceeded");
    if (row->kind == TS_OBJECT_KIND_SLO) return add_slo_pieces(s, row, p, depth, err);
    const char *dlo = json_string_value(json_object_get(row->meta, "X-Object-Manifest"));
    if (dlo && depth < 1) return add_dlo_pieces(s, dlo, p, depth, err);
    if (p->etags) {
        const char *e = row->etag;
        size_t l = strlen(e);
        if (l >= 2 && e[0] == '"') EVP_DigestUpdate(p->etags, e + 1, l - 2);
        else EVP_DigestUpdate(p->etags, e, l);
    }
    pieces_push(p, NULL, row->blob, 0, (uint64_t)row->size);
    return 0;
}

/* ---- temp URLs ------------------------------------------------------------------------ */

static int tempurl_check(struct ts_object_req *s, struct ts_err *err)
{
    const char *sig = ts_http_query(s->req, "temp_url_sig");
    const char *exp = ts_http_query(s->req, "temp_url_expires");
    if (!sig && !exp) return 0;
    const char *m = s->req->method;
    int64_t e;
    if (!sig || !exp || ts_object_tempurl_expires(exp, &e) < 0 || (double)e < s->now)
        goto bad;
    if (strcmp(m, "GET") && strcmp(m, "HEAD") && strcmp(m, "PUT") && strcmp(m, "POST") && strcmp(m, "DELETE"))
        goto bad;
    const char *prefix = ts_http_query(s->req, "temp_url_prefix");
    const char *path;
    if (prefix) {
        if (!ts_startswith(s->object, prefix)) goto bad;
        path = ts_pool_printf(s->req->pool, "prefix:/v1/%s/%s/%s", s->account, s->container, prefix);
    } else {
        path = ts_pool_printf(s->req->pool, "/v1/%s/%s/%s", s->account, s->container, s->object);
    }
    json_t *am;
    ts_object_account_meta(s->svc, s->req->pool, s->account, &am);
    struct ts_object_container c;
    struct ts_err e2;
    const char *keys[4] = {json_string_value(json_object_get(am, "X-Account-Meta-Temp-Url-Key")),
                           json_string_value(json_object_get(am, "X-Account-Meta-Temp-Url-Key-2")), NULL, NULL};
    if (ts_object_db_container(s->svc, s->req->pool, s->account, s->container, &c, &e2) == 0) {
        keys[2] = json_string_value(json_object_get(c.meta, "X-Container-Meta-Temp-Url-Key"));
        keys[3] = json_string_value(json_object_get(c.meta, "X-Container-Meta-Temp-Url-Key-2"));
    }
    const char *methods[3] = {m, NULL, NULL};
    if (strcmp(m, "HEAD") == 0) {
        methods[1] = "GET";
        methods[2] = "PUT";
    }
    for (int k = 0; k < 4; k++)
        for (int j = 0; j < 3 && methods[j]; j++)
            if (keys[k] && ts_object_tempurl_check(keys[k], methods[j], exp, path, sig)) {
                s->tempurl_ok = true;
                return 0;
            }
bad:
    return ts_err_set_full(err, TS_EUNAUTH, 401, NULL, "401 Unauthorized: Temp URL invalid\n");
}

/* ---- helpers ------------------------------------------------------------------------------ */

static void notify(struct ts_object_req *s, const char *action, int64_t bytes)
{
    /* a quarter of a small GET's instructions: built only when someone can receive it */
    if (!s->svc->bus || !ts_bus_notify_wanted(s->svc->bus)) return;
    json_t *p = json_pack("{s:s,s:s,s:s,s:{s:s,s:s},s:{s:s,s:{s:s,s:s,s:s}},s:[{s:I,s:{s:s,s:s}}]}",
                          "typeURI", "http://schemas.dmtf.org/cloud/audit/1.0/event", "eventType", "activity",
                          "action", action, "initiator", "project_id", s->account + (ts_startswith(s->account, "AUTH_") ? 5 : 0),
                          "id", s->req->auth && s->req->auth->authenticated ? s->req->auth->user_id : "",
                          "target", "id", s->account, "metadata", "container", s->container ? s->container : "",
                          "object", s->object ? s->object : "", "path", s->req->path ? s->req->path : "",
                          "measurements", "result", (json_int_t)bytes, "metric", "name",
                          strcmp(action, "read") == 0 ? "storage.objects.outgoing.bytes" : "storage.objects.incoming.bytes",
                          "unit", "B");
    if (!p) return;
    char *pub = ts_pool_printf(s->req->pool, "objectstore.%s", s->svc->host ? s->svc->host : "localhost");
    ts_bus_notify(s->svc->bus, pub, "objectstore.http.request", "INFO", p);
}

static const char *unquote(struct ts_pool *pool, const char *e)
{
    if (!e) return NULL;
    while (*e == ' ') e++;
    if (ts_startswith(e, "W/")) e += 2;
    size_t l = strlen(e);
    while (l && e[l - 1] == ' ') l--;
    if (l >= 2 && e[0] == '"' && e[l - 1] == '"') return ts_pool_strndup(pool, e + 1, l - 2);
    return ts_pool_strndup(pool, e, l);
}

static bool etag_in_list(struct ts_pool *pool, const char *list, const char *etag)
{
    char *copy = ts_pool_strdup(pool, list), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        const char *u = unquote(pool, t);
        if (strcmp(u, "*") == 0 || strcmp(u, etag) == 0) return true;
    }
    return false;
}

/* 0 to go on, 304 or 412. */
static int conditionals(struct ts_object_req *s, const char *etag, int64_t lm)
{
    const char *im = ts_http_header(s->req, "If-Match");
    const char *inm = ts_http_header(s->req, "If-None-Match");
    const char *ims = ts_http_header(s->req, "If-Modified-Since");
    const char *ius = ts_http_header(s->req, "If-Unmodified-Since");
    int64_t t;
    if (im && !etag_in_list(s->req->pool, im, etag)) return 412;
    if (ius && ts_object_http_date_parse(ius, &t) == 0 && lm > t) return 412;
    if (inm && etag_in_list(s->req->pool, inm, etag)) return 304;
    if (!inm && ims && ts_object_http_date_parse(ims, &t) == 0 && lm <= t) return 304;
    return 0;
}

static void object_headers(struct ts_object_req *s, const struct ts_object_row *row, const char *etag_hdr,
                           json_t *cmeta)
{
    char t[32], lmd[40];
    ts_object_ts_text(row->ts, t);
    ts_object_http_date((int64_t)ceil(row->ts), lmd);
    ts_http_resp_header(s->resp, "ETag", etag_hdr);
    ts_http_resp_header(s->resp, "Last-Modified", lmd);
    ts_http_resp_header(s->resp, "X-Timestamp", t);
    ts_http_resp_header(s->resp, "Accept-Ranges", "bytes");
    if (row->delete_at) ts_http_resp_headerf(s->resp, "X-Delete-At", "%lld", (long long)row->delete_at);
    ts_object_meta_headers(s->resp, row->meta, true);
    ts_object_cors(s, cmeta);
}

/* ---- GET / HEAD -------------------------------------------------------------------------- */

static int object_get(struct ts_object_req *s, struct ts_err *err)
{
    int rc = ts_object_authorize(s, TS_OBJECT_OP_OBJECT_READ, err);
    if (rc < 0) return rc;
    bool head = strcmp(s->req->method, "HEAD") == 0;
    struct ts_object_row row;
    rc = ts_object_db_object(s->svc, s->req->pool, s->account, s->container, s->object, &row, err);
    if (rc < 0) return rc;
    /* the container's metadata only answers CORS requests (ts_object_cors) */
    struct ts_object_container c;
    json_t *cmeta = NULL;
    struct ts_err e2;
    if (ts_http_header(s->req, "Origin") &&
        ts_object_db_container(s->svc, s->req->pool, s->account, s->container, &c, &e2) == 0)
        cmeta = c.meta;
    const char *mm = ts_http_query(s->req, "multipart-manifest");
    struct pieces all;
    pieces_init(&all, s->req->pool);
    const char *ctype = row.content_type;
    const char *etag = row.etag;          /* as sent, may be quoted */
    if (row.kind == TS_OBJECT_KIND_SLO && mm && strcmp(mm, "get") == 0) {
        const char *me = json_string_value(json_object_get(row.meta, "X-Object-Sysmeta-Slo-Etag"));
        struct ts_object_blob *b = NULL;
        uint64_t msize = 0;
        rc = s->svc->store->ops->open(s->svc->store, row.blob, &b, &msize, err);
        if (rc < 0) return rc;
        s->svc->store->ops->close(b);
        const char *fmt = ts_http_query(s->req, "format");
        if (fmt && strcmp(fmt, "raw") == 0) {
            char *text;
            size_t len;
            rc = read_blob(s->svc, s->req->pool, row.blob, MAX_MANIFEST_BYTES, &text, &len, err);
            if (rc < 0) return rc;
            json_t *arr = json_loadb(text, len, 0, NULL), *out = json_array();
            size_t i;
            json_t *seg;
            json_array_foreach(arr, i, seg) {
                json_array_append_new(out, json_pack("{s:O,s:O,s:O}", "path", json_object_get(seg, "name"), "etag",
                                                     json_object_get(seg, "hash"), "size_bytes",
                                                     json_object_get(seg, "bytes")));
            }
            json_decref(arr);
            object_headers(s, &row, me ? me : "", cmeta);
            if (head) {
                char *t = json_dumps(out, JSON_COMPACT);
                ts_http_resp_header(s->resp, "Content-Type", "application/json; charset=utf-8");
                ts_http_resp_no_body(s->resp, 200, (int64_t)strlen(t));
                free(t);
                json_decref(out);
            } else {
                ts_http_resp_json(s->resp, 200, out);
            }
            return 0;
        }
        pieces_push(&all, NULL, row.blob, 0, msize);
        ctype = "application/json; charset=utf-8";
        etag = me ? me : "";
    } else {
        bool large = row.kind == TS_OBJECT_KIND_SLO || json_object_get(row.meta, "X-Object-Manifest");
        if (large && !(mm && strcmp(mm, "get") == 0)) {
            all.etags = EVP_MD_CTX_new();
            EVP_DigestInit_ex(all.etags, EVP_md5(), NULL);
        }
        rc = add_row_pieces(s, s->container, &row, &all, 0, err);
        if (all.etags) {
            unsigned char dg[16];
            unsigned dl;
            EVP_DigestFinal_ex(all.etags, dg, &dl);
            EVP_MD_CTX_free(all.etags);
            all.etags = NULL;
            char hex[33];
            ts_hex(dg, 16, hex);
            if (row.kind != TS_OBJECT_KIND_SLO) etag = ts_pool_printf(s->req->pool, "\"%s\"", hex);
        }
        if (rc < 0) return rc;
    }
    const char *bare = unquote(s->req->pool, etag);
    object_headers(s, &row, etag, cmeta);
    int cond = conditionals(s, bare, (int64_t)ceil(row.ts));
    if (cond == 304) {
        ts_http_resp_no_body(s->resp, 304, 0);
        return 0;
    }
    if (cond == 412) return ts_object_fail(err, TS_EPRECOND, 412);
    if (s->tempurl_ok && !head) {
        const char *fn = ts_http_query(s->req, "filename");
        const char *base = strrchr(s->object, '/');
        base = base ? base + 1 : s->object;
        if (ts_http_query(s->req, "inline"))
            ts_http_resp_header(s->resp, "Content-Disposition", fn ? ts_pool_printf(s->req->pool, "inline; filename=\"%s\"", fn) : "inline");
        else
            ts_http_resp_headerf(s->resp, "Content-Disposition", "attachment; filename=\"%s\"", fn ? fn : base);
    }
    /* ranges */
    const char *range = ts_http_header(s->req, "Range");
    struct ts_object_range rs[TS_OBJECT_MAX_RANGES];
    int nr = range ? ts_object_range_parse(range, all.total, rs, TS_OBJECT_MAX_RANGES) : 0;
    if (nr == -TS_ERANGE) {
        ts_http_resp_headerf(s->resp, "Content-Range", "bytes */%llu", (unsigned long long)all.total);
        return ts_object_fail(err, TS_ERANGE, 416);
    }
    if (nr == 1) {
        struct pieces part;
        pieces_init(&part, s->req->pool);
        pieces_slice(&all, rs[0].start, rs[0].len, &part);
        ts_http_resp_headerf(s->resp, "Content-Range", "bytes %llu-%llu/%llu", (unsigned long long)rs[0].start,
                             (unsigned long long)(rs[0].start + rs[0].len - 1), (unsigned long long)all.total);
        if (head) {
            ts_http_resp_header(s->resp, "Content-Type", ctype);
            ts_http_resp_no_body(s->resp, 206, (int64_t)part.total);
        } else {
            send_pieces(s, 206, ctype, &part);
        }
        if (!head) notify(s, "read", (int64_t)part.total);
        return 0;
    }
    if (nr > 1) {
        char hex[33];
        ts_uuid_hex(hex);
        struct pieces mp;
        pieces_init(&mp, s->req->pool);
        for (int i = 0; i < nr; i++) {
            char *h = ts_pool_printf(s->req->pool, "--%s\r\nContent-Type: %s\r\nContent-Range: bytes %llu-%llu/%llu\r\n\r\n",
                                     hex, ctype, (unsigned long long)rs[i].start,
                                     (unsigned long long)(rs[i].start + rs[i].len - 1), (unsigned long long)all.total);
            pieces_push(&mp, h, NULL, 0, strlen(h));
            pieces_slice(&all, rs[i].start, rs[i].len, &mp);
            pieces_push(&mp, "\r\n", NULL, 0, 2);
        }
        char *tail = ts_pool_printf(s->req->pool, "--%s--", hex);
        pieces_push(&mp, tail, NULL, 0, strlen(tail));
        char *mct = ts_pool_printf(s->req->pool, "multipart/byteranges;boundary=%s", hex);
        if (head) {
            ts_http_resp_header(s->resp, "Content-Type", mct);
            ts_http_resp_no_body(s->resp, 206, (int64_t)mp.total);
        } else {
            send_pieces(s, 206, mct, &mp);
        }
        return 0;
    }
    if (head) {
        ts_http_resp_header(s->resp, "Content-Type", ctype);
        ts_http_resp_no_body(s->resp, 200, (int64_t)all.total);
        return 0;
    }
    send_pieces(s, 200, ctype, &all);
    notify(s, "read", (int64_t)all.total);
    return 0;
}

/* ---- PUT ------------------------------------------------------------------------------------ */

static const char *const object_extra[] = {"content-disposition", "content-encoding", "cache-control",
                                           "content-language",    "expires",          "x-object-manifest",
                                           "x-robots-tag",        NULL};

struct put_ctx {
    struct ts_object_req *s;
    struct ts_object_writer *w;
    bool slo;
    struct ts_buf manifest;
    uint64_t got;
    uint64_t max;             /* bytes accepted before 413 */
    const char *max_msg;
    const char *etag_expect;  /* unquoted or NULL */
    const char *ctype;
    json_t *meta;
    int64_t delete_at;
    double ts;
};

static void put_release(void *ctx)
{
    struct put_ctx *p = ctx;
    if (p->w) {
        p->s->svc->store->ops->abort(p->w);
        p->w = NULL;
    }
    ts_buf_free(&p->manifest);
}

static int put_write(void *ctx, const char *data, size_t len, struct ts_err *err)
{
    struct put_ctx *p = ctx;
    if (p->got + len > p->max) return ts_err_set_full(err, TS_ETOOBIG, 413, NULL, "%s", p->max_msg);
    p->got += len;
    if (p->slo) {
        if (ts_buf_append(&p->manifest, data, len) < 0)
            return ts_err_set_full(err, TS_ETOOBIG, 413, NULL, "Manifest is too large");
        return 0;
    }
    return p->s->svc->store->ops->write(p->w, data, len, err);
}

static void put_abort(void *ctx)
{
    put_release(ctx);
}

static int created(struct ts_object_req *s, const char *etag, double ts)
{
    char lmd[40];
    ts_object_http_date((int64_t)ceil(ts), lmd);
    ts_http_resp_header(s->resp, "ETag", etag);
    ts_http_resp_header(s->resp, "Last-Modified", lmd);
    ts_http_resp_body(s->resp, 201, "text/html; charset=UTF-8", "", 0);
    return 0;
}

/* Parses X-Delete-At / X-Delete-After. */
static int parse_expiry(struct ts_object_req *s, int64_t *out, struct ts_err *err)
{
    *out = 0;
    const char *at = ts_http_header(s->req, "X-Delete-At");
    const char *after = ts_http_header(s->req, "X-Delete-After");
    int64_t v;
    if (after) {
        if (ts_parse_int64(after, &v) < 0) return ts_err_set_full(err, TS_EINVAL, 400, NULL, "Non-integer X-Delete-After");
        if (v < 0) return ts_err_set_full(err, TS_EINVAL, 400, NULL, "X-Delete-After in past");
        *out = (int64_t)s->now + v;
        if (v == 0) *out = (int64_t)ceil(s->now);
        return 0;
    }
    if (at) {
        if (ts_parse_int64(at, &v) < 0) {
            double d = strtod(at, NULL);
            if (d <= 0) return ts_err_set_full(err, TS_EINVAL, 400, NULL, "Non-integer X-Delete-At");
            v = (int64_t)d;
        }
        if ((double)v < s->now) return ts_err_set_full(err, TS_EINVAL, 400, NULL, "X-Delete-At in past");
        *out = v;
    }
    return 0;
}

/* Drops removals (null) and empty non-metadata headers; empty X-Object-Meta-* values stay,
 * as Swift keeps them. */
static void drop_empty(json_t *set)
{
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(set, tmp, k, v) {
        if (!json_is_string(v) || (!*json_string_value(v) && strncasecmp(k, "X-Object-Meta-", 14) != 0))
            json_object_del(set, k);
    }
}

static int slo_finish(struct put_ctx *p, struct ts_err *err)
{
    struct ts_object_req *s = p->s;
    json_error_t je;
    json_t *arr = json_loadb(p->manifest.data ? p->manifest.data : "", p->manifest.len, 0, &je);
    if (!arr) return ts_err_set_full(err, TS_EINVAL, 400, NULL, "Manifest must be valid JSON.\n");
    ts_pool_cleanup(s->req->pool, (void (*)(void *))json_decref, arr);
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return ts_err_set_full(err, TS_EINVAL, 400, NULL, "Manifest must be a list.\n");
    if (json_array_size(arr) > MAX_SEGMENTS)
        return ts_err_set_full(err, TS_ETOOBIG, 413, NULL, "Too many segments.\n");
    struct ts_buf errs;
    ts_buf_init(&errs, 65536);
    json_t *out = json_array();
    ts_pool_cleanup(s->req->pool, (void (*)(void *))json_decref, out);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_md5(), NULL);
    int64_t total = 0;
    size_t i;
    json_t *seg;
    int rc = 0;
    json_array_foreach(arr, i, seg) {
        const char *path = json_string_value(json_object_get(seg, "path"));
        const char *c, *o;
        if (!json_is_object(seg) || split_path(s->req->pool, path, &c, &o) < 0) {
            ts_buf_printf(&errs, "Index %zu: invalid path\n", i);
            continue;
        }
        struct ts_object_row sr;
        struct ts_err e2;
        if (ts_object_db_object(s->svc, s->req->pool, s->account, c, o, &sr, &e2) < 0) {
            ts_buf_printf(&errs, "%s, 404 Not Found\n", path);
            continue;
        }
        json_t *je_etag = json_object_get(seg, "etag"), *je_size = json_object_get(seg, "size_bytes");
        const char *seg_etag = unquote(s->req->pool, sr.etag);
        if (je_etag && !json_is_null(je_etag) &&
            (!json_is_string(je_etag) || strcmp(unquote(s->req->pool, json_string_value(je_etag)), seg_etag) != 0)) {
            ts_buf_printf(&errs, "%s, Etag Mismatch\n", path);
            continue;
        }
        if (je_size && !json_is_null(je_size) && (!json_is_integer(je_size) || json_integer_value(je_size) != sr.size)) {
            ts_buf_printf(&errs, "%s, Size Mismatch\n", path);
            continue;
        }
        if (sr.size == 0) {
            ts_buf_printf(&errs, "%s, Too small; each segment must be at least 1 byte.\n", path);
            continue;
        }
        char lm[32];
        ts_time_iso(sr.ts, 6, lm);
        lm[strlen(lm) - 1] = '\0';
        json_t *e = json_pack("{s:s,s:s,s:I,s:s,s:s}", "name", ts_pool_printf(s->req->pool, "/%s/%s", c, o), "hash",
                              seg_etag, "bytes", (json_int_t)sr.size, "content_type", sr.content_type, "last_modified", lm);
        if (sr.kind == TS_OBJECT_KIND_SLO) json_object_set_new(e, "sub_slo", json_true());
        json_array_append_new(out, e);
        EVP_DigestUpdate(md, seg_etag, strlen(seg_etag));
        total += sr.size;
    }
    unsigned char dg[16];
    unsigned dl;
    EVP_DigestFinal_ex(md, dg, &dl);
    EVP_MD_CTX_free(md);
    char slo_etag[33];
    ts_hex(dg, 16, slo_etag);
    if (errs.len) {
        rc = ts_err_set_full(err, TS_EINVAL, 400, NULL, "Errors:\n%s", ts_buf_cstr(&errs));
        goto out;
    }
    if (p->etag_expect && strcmp(p->etag_expect, slo_etag) != 0) {
        rc = ts_object_fail(err, TS_EUNPROCESSABLE, 422);
        goto out;
    }
    char *text = json_dumps(out, JSON_COMPACT);
    struct ts_object_store *st = s->svc->store;
    rc = st->ops->writer_new(st, &p->w, err);
    if (rc == 0) rc = st->ops->write(p->w, text, strlen(text), err);
    struct ts_object_row row = {0};
    char md5[33];
    uint64_t msize = 0;
    if (rc == 0) {
        rc = st->ops->commit(p->w, row.blob, md5, &msize, err);
        p->w = NULL;
    }
    free(text);
    if (rc < 0) goto out;
    row.ts = p->ts;
    row.size = total;
    row.etag = ts_pool_printf(s->req->pool, "\"%s\"", slo_etag);
    row.content_type = p->ctype;
    row.meta = p->meta;
    json_object_set_new(row.meta, "X-Static-Large-Object", json_string("True"));
    json_object_set_new(row.meta, "X-Object-Sysmeta-Slo-Etag", json_string(md5));
    json_object_set_new(row.meta, "X-Object-Sysmeta-Slo-Size", json_integer((json_int_t)msize));
    row.delete_at = p->delete_at;
    row.kind = TS_OBJECT_KIND_SLO;
    rc = ts_object_db_commit(s->svc, s->account, s->container, s->object, &row, true, NULL, err);
    if (rc < 0) goto out;
    created(s, row.etag, row.ts);
out:
    ts_buf_free(&errs);
    return rc;
}

static int put_finish(void *ctx, struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)req;
    (void)resp;
    struct put_ctx *p = ctx;
    struct ts_object_req *s = p->s;
    if (s->req->content_length >= 0 && p->got != (uint64_t)s->req->content_length) {
        put_release(p);
        return ts_err_set_full(err, TS_EINVAL, 499, NULL, "Client Disconnect");
    }
    if (p->slo) {
        int rc = slo_finish(p, err);
        put_release(p);
        return rc;
    }
    struct ts_object_row row = {0};
    char md5[33];
    uint64_t size = 0;
    int rc = s->svc->store->ops->commit(p->w, row.blob, md5, &size, err);
    p->w = NULL;
    if (rc < 0) return rc;
    if (p->etag_expect && strcasecmp(p->etag_expect, md5) != 0) {
        s->svc->store->ops->remove(s->svc->store, row.blob);
        return ts_object_fail(err, TS_EUNPROCESSABLE, 422);
    }
    row.ts = p->ts;
    row.size = (int64_t)size;
    row.etag = ts_pool_strdup(s->req->pool, md5);
    row.content_type = p->ctype;
    row.meta = p->meta;
    row.delete_at = p->delete_at;
    row.kind = TS_OBJECT_KIND_PLAIN;
    rc = ts_object_db_commit(s->svc, s->account, s->container, s->object, &row, true, NULL, err);
    if (rc < 0) return rc;
    notify(s, "update", (int64_t)size);
    return created(s, row.etag, row.ts);
}

static int64_t meta_int(json_t *meta, const char *key)
{
    const char *v = json_string_value(json_object_get(meta, key));
    int64_t x;
    if (v && ts_parse_int64(v, &x) == 0) return x;
    return -1;
}

static int do_copy(struct ts_object_req *s, const char *src_c, const char *src_o, const char *dst_c,
                   const char *dst_o, struct ts_err *err);

static int object_put(struct ts_object_req *s, struct ts_err *err)
{
    int rc = ts_object_authorize(s, TS_OBJECT_OP_OBJECT_WRITE, err);
    if (rc < 0) return rc;
    const char *cf = ts_http_header(s->req, "X-Copy-From");
    if (cf) {
        const char *c, *o;
        char *dec = ts_url_decode(s->req->pool, cf, strlen(cf));
        if (!dec || split_path(s->req->pool, dec, &c, &o) < 0)
            return ts_err_set_full(err, TS_EPRECOND, 412, NULL,
                                   "X-Copy-From header must be of the form <container name>/<object name>");
        if (s->req->content_length > 0)
            return ts_err_set_full(err, TS_EINVAL, 400, NULL, "Copy requests require a zero byte body");
        return do_copy(s, c, o, s->container, s->object, err);
    }
    struct ts_object_container c;
    rc = ts_object_db_container(s->svc, s->req->pool, s->account, s->container, &c, err);
    if (rc < 0) return rc;
    const char *te = ts_http_header(s->req, "Transfer-Encoding");
    bool chunked = te && strcasestr(te, "chunked");
    if (s->req->content_length < 0 && !chunked) return ts_object_fail(err, TS_ELENGTH, 411);
    if (s->req->content_length > TS_OBJECT_MAX_FILE_SIZE)
        return ts_err_set_full(err, TS_ETOOBIG, 413, NULL, "Your request is too large.");
    json_t *set;
    rc = ts_object_collect_meta(s, "object", object_extra, NULL, &set, err);
    if (rc < 0) return rc;
    drop_empty(set);
    struct put_ctx *p = ts_pool_alloc(s->req->pool, sizeof(*p));
    p->s = s;
    p->ts = s->now;
    p->meta = set;
    rc = parse_expiry(s, &p->delete_at, err);
    if (rc < 0) return rc;
    const char *ct = ts_http_header(s->req, "Content-Type");
    const char *detect = ts_http_header(s->req, "X-Detect-Content-Type");
    bool det = false;
    if (detect) ts_parse_bool(detect, &det);
    p->ctype = (!ct || !*ct || det) ? ts_object_guess_type(s->object) : ts_pool_strdup(s->req->pool, ct);
    const char *inm = ts_http_header(s->req, "If-None-Match");
    if (inm) {
        if (strcmp(unquote(s->req->pool, inm), "*") != 0)
            return ts_err_set_full(err, TS_EINVAL, 400, NULL, "If-None-Match only supports *");
        struct ts_object_row old;
        struct ts_err e2;
        if (ts_object_db_object(s->svc, s->req->pool, s->account, s->container, s->object, &old, &e2) == 0)
            return ts_object_fail(err, TS_EPRECOND, 412);
    }
    const char *et = ts_http_header(s->req, "ETag");
    if (et) p->etag_expect = unquote(s->req->pool, et);
    const char *mm = ts_http_query(s->req, "multipart-manifest");
    p->slo = mm && strcmp(mm, "put") == 0;
    p->max = p->slo ? MAX_MANIFEST_BYTES : (uint64_t)TS_OBJECT_MAX_FILE_SIZE;
    p->max_msg = "Your request is too large.";
    /* quotas: container bytes/count, account bytes */
    int64_t qb = meta_int(c.meta, "X-Container-Meta-Quota-Bytes");
    int64_t qc = meta_int(c.meta, "X-Container-Meta-Quota-Count");
    int64_t clen = s->req->content_length > 0 ? s->req->content_length : 0;
    if (qc >= 0 && c.object_count + 1 > qc) return ts_err_set_full(err, TS_ETOOBIG, 413, NULL, "Upload exceeds quota.");
    if (qb >= 0) {
        if (c.bytes_used + clen > qb) return ts_err_set_full(err, TS_ETOOBIG, 413, NULL, "Upload exceeds quota.");
        if ((uint64_t)(qb - c.bytes_used) < p->max) {
            p->max = (uint64_t)(qb - c.bytes_used);
            p->max_msg = "Upload exceeds quota.";
        }
    }
    json_t *am;
    ts_object_account_meta(s->svc, s->req->pool, s->account, &am);
    int64_t aq = meta_int(am, "X-Account-Meta-Quota-Bytes");
    if (aq >= 0) {
        struct ts_db_res *r = NULL;
        int64_t used = 0;
        if (ts_db_exec(s->svc->db, "SELECT COALESCE(SUM(bytes_used), 0) FROM containers WHERE account = ?",
                       TS_DB_ARGS(TS_DB_S(s->account)), &r, NULL) == 0)
            used = ts_db_res_int(r, 0, 0, 0);
        ts_db_res_free(r);
        if (used + clen > aq) return ts_err_set_full(err, TS_ETOOBIG, 413, NULL, "Upload exceeds quota.");
        if ((uint64_t)(aq - used) < p->max) {
            p->max = (uint64_t)(aq - used);
            p->max_msg = "Upload exceeds quota.";
        }
    }
    if (p->slo) {
        ts_buf_init(&p->manifest, MAX_MANIFEST_BYTES);
    } else {
        rc = s->svc->store->ops->writer_new(s->svc->store, &p->w, err);
        if (rc < 0) return rc;
    }
    ts_pool_cleanup(s->req->pool, put_release, p);
    s->req->upload.write = put_write;
    s->req->upload.finish = put_finish;
    s->req->upload.abort = put_abort;
    s->req->upload.ctx = p;
    return 0;
}

/* ---- copy ------------------------------------------------------------------------------------ */

static int do_copy(struct ts_object_req *s, const char *src_c, const char *src_o, const char *dst_c,
                   const char *dst_o, struct ts_err *err)
{
    struct ts_object_req src = *s;
    src.container = src_c;
    src.object = src_o;
    int rc = ts_object_authorize(&src, TS_OBJECT_OP_OBJECT_READ, err);
    if (rc < 0) return rc;
    struct ts_object_req dst = *s;
    dst.container = dst_c;
    dst.object = dst_o;
    rc = ts_object_authorize(&dst, TS_OBJECT_OP_OBJECT_WRITE, err);
    if (rc < 0) return rc;
    struct ts_object_row sr;
    rc = ts_object_db_object(s->svc, s->req->pool, s->account, src_c, src_o, &sr, err);
    if (rc < 0) return rc;
    struct ts_object_container dc;
    rc = ts_object_db_container(s->svc, s->req->pool, s->account, dst_c, &dc, err);
    if (rc < 0) return rc;
    json_t *set;
    rc = ts_object_collect_meta(s, "object", object_extra, NULL, &set, err);
    if (rc < 0) return rc;
    drop_empty(set);
    const char *fresh = ts_http_header(s->req, "X-Fresh-Metadata");
    bool fr = false;
    if (fresh) ts_parse_bool(fresh, &fr);
    json_t *meta = fr ? json_object() : json_deep_copy(sr.meta);
    ts_pool_cleanup(s->req->pool, (void (*)(void *))json_decref, meta);
    const char *mm = ts_http_query(s->req, "multipart-manifest");
    bool keep_manifest = mm && strcmp(mm, "get") == 0;
    bool large = sr.kind == TS_OBJECT_KIND_SLO || json_object_get(sr.meta, "X-Object-Manifest");
    struct ts_object_row row = {0};
    row.ts = s->now;
    const char *ct = ts_http_header(s->req, "Content-Type");
    row.content_type = ct && *ct ? ts_pool_strdup(s->req->pool, ct) : sr.content_type;
    rc = parse_expiry(s, &row.delete_at, err);
    if (rc < 0) return rc;
    struct ts_object_store *st = s->svc->store;
    if (!large || keep_manifest) {
        rc = st->ops->clone(st, sr.blob, row.blob, err);
        if (rc < 0) return rc;
        row.size = sr.size;
        row.etag = sr.etag;
        row.kind = sr.kind;
    } else {
        /* large objects are copied as their concatenation, streamed */
        json_object_del(meta, "X-Object-Manifest");
        json_object_del(meta, "X-Static-Large-Object");
        json_object_del(meta, "X-Object-Sysmeta-Slo-Etag");
        json_object_del(meta, "X-Object-Sysmeta-Slo-Size");
        struct pieces pc;
        pieces_init(&pc, s->req->pool);
        rc = add_row_pieces(s, src_c, &sr, &pc, 0, err);
        if (rc < 0) return rc;
        struct reader rd = {.svc = s->svc, .v = pc.v, .n = pc.n, .b_for = -1};
        struct ts_object_writer *w = NULL;
        rc = st->ops->writer_new(st, &w, err);
        if (rc < 0) return rc;
        char *buf = ts_malloc(65536);
        ssize_t n;
        while ((n = reader_read(&rd, 0, buf, 65536)) > 0) {
            rc = st->ops->write(w, buf, (size_t)n, err);
            if (rc < 0) break;
        }
        free(buf);
        if (rd.b) st->ops->close(rd.b);
        if (rc == 0 && n < 0) rc = ts_err_set(err, TS_EIO, "reading segments failed");
        if (rc < 0) {
            st->ops->abort(w);
            return rc;
        }
        char md5[33];
        uint64_t size;
        rc = st->ops->commit(w, row.blob, md5, &size, err);
        if (rc < 0) return rc;
        row.size = (int64_t)size;
        row.etag = ts_pool_strdup(s->req->pool, md5);
        row.kind = TS_OBJECT_KIND_PLAIN;
    }
    const char *k;
    json_t *v;
    json_object_foreach(set, k, v) json_object_set(meta, k, v);
    row.meta = meta;
    rc = ts_object_db_commit(s->svc, s->account, dst_c, dst_o, &row, true, NULL, err);
    if (rc < 0) return rc;
    char lmd[40];
    ts_object_http_date((int64_t)ceil(sr.ts), lmd);
    ts_http_resp_header(s->resp, "X-Copied-From", ts_url_encode(s->req->pool, ts_pool_printf(s->req->pool, "%s/%s", src_c, src_o), true));
    ts_http_resp_header(s->resp, "X-Copied-From-Last-Modified", lmd);
    ts_http_resp_header(s->resp, "X-Copied-From-Account", s->account);
    ts_object_meta_headers(s->resp, meta, true);
    return created(s, row.etag, row.ts);
}

static int object_copy(struct ts_object_req *s, struct ts_err *err)
{
    const char *d = ts_http_header(s->req, "Destination");
    const char *c, *o;
    char *dec = d ? ts_url_decode(s->req->pool, d, strlen(d)) : NULL;
    if (!dec || split_path(s->req->pool, dec, &c, &o) < 0)
        return ts_err_set_full(err, TS_EPRECOND, 412, NULL,
                               "Destination header must be of the form <container name>/<object name>");
    int rc = ts_object_name_check(o, strlen(o), TS_OBJECT_MAX_OBJECT_NAME, "Object", err);
    if (rc < 0) return rc;
    return do_copy(s, s->container, s->object, c, o, err);
}

/* ---- POST / DELETE --------------------------------------------------------------------------- */

static int object_post(struct ts_object_req *s, struct ts_err *err)
{
    int rc = ts_object_authorize(s, TS_OBJECT_OP_OBJECT_WRITE, err);
    if (rc < 0) return rc;
    struct ts_object_row row;
    rc = ts_object_db_object(s->svc, s->req->pool, s->account, s->container, s->object, &row, err);
    if (rc < 0) return rc;
    json_t *set;
    rc = ts_object_collect_meta(s, "object", object_extra, NULL, &set, err);
    if (rc < 0) return rc;
    drop_empty(set);
    int64_t delete_at;
    rc = parse_expiry(s, &delete_at, err);
    if (rc < 0) return rc;
    json_t *meta = json_object();
    ts_pool_cleanup(s->req->pool, (void (*)(void *))json_decref, meta);
    const char *k;
    json_t *v;
    json_object_foreach(row.meta, k, v) {
        if (strstr(k, "-Sysmeta-") || strcmp(k, "X-Static-Large-Object") == 0) json_object_set(meta, k, v);
    }
    json_object_foreach(set, k, v) json_object_set(meta, k, v);
    const char *ct = ts_http_header(s->req, "Content-Type");
    char *text = json_dumps(meta, JSON_COMPACT);
    rc = ts_db_exec(s->svc->db,
                    "UPDATE objects SET meta = ?, content_type = ?, delete_at = ? WHERE account = ? AND container = ?"
                    " AND name = ?",
                    TS_DB_ARGS(TS_DB_S(text), TS_DB_S(ct && *ct ? ct : row.content_type),
                               delete_at ? TS_DB_I(delete_at) : TS_DB_NULL, TS_DB_S(s->account), TS_DB_S(s->container),
                               TS_DB_S(s->object)),
                    NULL, err);
    free(text);
    if (rc < 0) return rc;
    static const char body[] = "<html><h1>Accepted</h1><p>The request is accepted for processing.</p></html>";
    ts_http_resp_body(s->resp, 202, "text/html; charset=UTF-8", body, sizeof(body) - 1);
    return 0;
}

static int object_delete(struct ts_object_req *s, struct ts_err *err)
{
    int rc = ts_object_authorize(s, TS_OBJECT_OP_OBJECT_WRITE, err);
    if (rc < 0) return rc;
    const char *mm = ts_http_query(s->req, "multipart-manifest");
    if (mm && strcmp(mm, "delete") == 0) {
        struct ts_object_row row;
        rc = ts_object_db_object(s->svc, s->req->pool, s->account, s->container, s->object, &row, err);
        if (rc < 0) return rc;
        int deleted = 0, missing = 0;
        if (row.kind == TS_OBJECT_KIND_SLO) {
            char *text;
            size_t len;
            rc = read_blob(s->svc, s->req->pool, row.blob, MAX_MANIFEST_BYTES, &text, &len, err);
            if (rc < 0) return rc;
            json_t *arr = json_loadb(text, len, 0, NULL);
            size_t i;
            json_t *seg;
            json_array_foreach(arr, i, seg) {
                const char *c, *o;
                if (split_path(s->req->pool, json_string_value(json_object_get(seg, "name")), &c, &o) < 0) continue;
                struct ts_err e2;
                if (ts_object_db_delete(s->svc, s->account, c, o, false, &e2) == 0) deleted++;
                else missing++;
            }
            json_decref(arr);
        }
        rc = ts_object_db_delete(s->svc, s->account, s->container, s->object, false, err);
        if (rc < 0) return rc;
        deleted++;
        const char *acc = ts_http_header(s->req, "Accept");
        if (acc && strstr(acc, "json")) {
            json_t *j = json_pack("{s:i,s:i,s:s,s:s,s:[]}", "Number Deleted", deleted, "Number Not Found", missing,
                                  "Response Status", "200 OK", "Response Body", "", "Errors");
            ts_http_resp_json(s->resp, 200, j);
        } else {
            char *b = ts_pool_printf(s->req->pool,
                                     "Number Deleted: %d\nNumber Not Found: %d\nResponse Body: \nResponse Status: 200 OK\nErrors:\n",
                                     deleted, missing);
            ts_http_resp_body(s->resp, 200, "text/plain", b, strlen(b));
        }
        return 0;
    }
    rc = ts_object_db_delete(s->svc, s->account, s->container, s->object, true, err);
    if (rc < 0) return rc;
    notify(s, "delete", 0);
    ts_http_resp_body(s->resp, 204, "text/html; charset=UTF-8", "", 0);
    return 0;
}

int ts_object_object(struct ts_object_req *s, struct ts_err *err)
{
    int rc = tempurl_check(s, err);
    if (rc < 0) return rc;
    const char *m = s->req->method;
    if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0) return object_get(s, err);
    if (strcmp(m, "PUT") == 0) return object_put(s, err);
    if (strcmp(m, "POST") == 0) {
        const char *ct = ts_http_header(s->req, "Content-Type");
        if (ct && strncasecmp(ct, "multipart/form-data", 19) == 0) return ts_object_formpost(s, err);
        return object_post(s, err);
    }
    if (strcmp(m, "DELETE") == 0) return object_delete(s, err);
    if (strcmp(m, "COPY") == 0) {
        int a = ts_object_authorize(s, TS_OBJECT_OP_OBJECT_READ, err);
        if (a < 0) return a;
        return object_copy(s, err);
    }
    ts_http_resp_header(s->resp, "Allow", "HEAD, GET, PUT, POST, COPY, OPTIONS, DELETE");
    return ts_object_fail(err, TS_EMETHOD, 405);
}

/* Stores data from read() as a plain object (extract-archive, form POST). */
int ts_object_put_from(struct ts_object_svc *svc, const char *acct, const char *cont, const char *name,
                       const char *content_type, ssize_t (*read)(void *ctx, void *buf, size_t len), void *ctx,
                       char etag_out[33], struct ts_err *err)
{
    struct ts_object_store *st = svc->store;
    struct ts_object_writer *w = NULL;
    int rc = st->ops->writer_new(st, &w, err);
    if (rc < 0) return rc;
    char *buf = ts_malloc(65536);
    ssize_t n;
    while ((n = read(ctx, buf, 65536)) > 0) {
        rc = st->ops->write(w, buf, (size_t)n, err);
        if (rc < 0) break;
    }
    free(buf);
    if (rc == 0 && n < 0) rc = ts_err_set(err, TS_EINVAL, "truncated data");
    if (rc < 0) {
        st->ops->abort(w);
        return rc;
    }
    struct ts_object_row row = {0};
    uint64_t size;
    rc = st->ops->commit(w, row.blob, etag_out, &size, err);
    if (rc < 0) return rc;
    row.ts = ts_now();
    row.size = (int64_t)size;
    row.etag = etag_out;
    row.content_type = content_type ? content_type : ts_object_guess_type(name);
    json_t *meta = json_object();
    row.meta = meta;
    rc = ts_object_db_commit(svc, acct, cont, name, &row, true, NULL, err);
    json_decref(meta);
    return rc;
}
