/*
 * ts_http_router.c: the route table. Patterns are compiled once into segment lists;
 * a request path is split on '/', each segment percent-decoded, and every route is tried.
 * Among the routes whose pattern matches, the most specific wins (literal segment >
 * {param} > end of pattern > {rest*}, compared segment by segment from the left); a path
 * that matches some pattern but no route for the method is a 405 with the Allow list.
 * Also here: percent-decoding and the query-string parser.
 */
#include "http/ts_http_internal.h"

#include <stdlib.h>
#include <string.h>

enum seg_kind { SEG_LIT = 4, SEG_PARAM = 3, SEG_END = 2, SEG_REST = 1 };

struct pseg {
    enum seg_kind kind;
    char *text;        /* literal text or parameter name */
};

struct croute {
    const struct ts_http_route *route;
    int nseg;
    struct pseg *segs;
};

struct ts_http_router {
    int n;
    struct croute *routes;
};

/* A decoded request path split into segments. */
struct split {
    int n;                 /* segments, trailing empty one (from a trailing '/') dropped */
    bool trailing_slash;
    const char **dec;      /* decoded segments */
    size_t *raw_start;     /* offset of each segment in the raw path */
};

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

char *ts_http_decode(struct ts_pool *pool, const char *s, size_t len, bool plus_space)
{
    char *out = ts_pool_alloc(pool, len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= len) return NULL;
            int h = hexval((unsigned char)s[i + 1]), l = hexval((unsigned char)s[i + 2]);
            if (h < 0 || l < 0) return NULL;
            c = (char)(h * 16 + l);
            if (c == '\0') return NULL;
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        } else if (c == '\0') {
            return NULL;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return out;
}

static void free_routes(struct croute *routes, int n)
{
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < routes[i].nseg; j++) free(routes[i].segs[j].text);
        free(routes[i].segs);
    }
    free(routes);
}

static int compile(const struct ts_http_route *rt, struct croute *out)
{
    const char *p = rt->pattern;
    out->route = rt;
    out->nseg = 0;
    out->segs = NULL;
    if (!p || p[0] != '/' || !rt->method || !rt->handler) return -TS_EINVAL;
    int cap = 1;
    for (const char *q = p; *q; q++) cap += *q == '/';
    out->segs = ts_calloc((size_t)cap, sizeof(*out->segs));
    p++;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 0) {            /* "//" or trailing '/' */
            if (!e) break;
            return -TS_EINVAL;
        }
        struct pseg *s = &out->segs[out->nseg];
        if (out->nseg > 0 && out->segs[out->nseg - 1].kind == SEG_REST) return -TS_EINVAL;
        if (p[0] == '{') {
            if (p[len - 1] != '}' || len < 3) return -TS_EINVAL;
            bool rest = p[len - 2] == '*';
            size_t nlen = len - 2 - (rest ? 1 : 0);
            if (nlen == 0) return -TS_EINVAL;
            s->kind = rest ? SEG_REST : SEG_PARAM;
            s->text = ts_strndup(p + 1, nlen);
        } else {
            if (memchr(p, '{', len) || memchr(p, '}', len)) return -TS_EINVAL;
            s->kind = SEG_LIT;
            s->text = ts_strndup(p, len);
        }
        out->nseg++;
        if (!e) break;
        p = e + 1;
    }
    int nparams = 0;
    for (int j = 0; j < out->nseg; j++) nparams += out->segs[j].kind != SEG_LIT;
    if (nparams > TS_HTTP_MAX_PARAMS) return -TS_EINVAL;
    return 0;
}

struct ts_http_router *ts_http_router_new(const struct ts_http_route *routes)
{
    int n = 0;
    while (routes && routes[n].method) n++;
    struct croute *cr = ts_calloc((size_t)n + 1, sizeof(*cr));
    for (int i = 0; i < n; i++) {
        if (compile(&routes[i], &cr[i]) < 0) {
            ts_error("http", "bad route pattern %s %s", routes[i].method ? routes[i].method : "?",
                     routes[i].pattern ? routes[i].pattern : "(null)");
            free_routes(cr, i + 1);
            return NULL;
        }
    }
    struct ts_http_router *r = ts_calloc(1, sizeof(*r));
    r->n = n;
    r->routes = cr;
    return r;
}

void ts_http_router_free(struct ts_http_router *r)
{
    if (!r) return;
    free_routes(r->routes, r->n);
    free(r);
}

static int split_path(struct ts_pool *pool, const char *raw, size_t len, struct split *sp)
{
    int cap = 0;
    for (size_t i = 0; i < len; i++) cap += raw[i] == '/';
    sp->dec = ts_pool_alloc(pool, sizeof(char *) * ((size_t)cap + 1));
    sp->raw_start = ts_pool_alloc(pool, sizeof(size_t) * ((size_t)cap + 1));
    sp->n = 0;
    sp->trailing_slash = false;
    size_t i = 1;
    for (;;) {
        size_t j = i;
        while (j < len && raw[j] != '/') j++;
        if (j == len && j == i) {            /* nothing after the last '/' */
            sp->trailing_slash = true;
            break;
        }
        const char *d = ts_http_decode(pool, raw + i, j - i, false);
        if (!d) return -TS_EINVAL;
        sp->dec[sp->n] = d;
        sp->raw_start[sp->n] = i;
        sp->n++;
        if (j >= len) break;
        i = j + 1;
    }
    return 0;
}

/* Tries one route; returns its specificity score (>0) or 0 when the path does not match. */
static uint64_t try_route(const struct croute *cr, const struct split *sp)
{
    uint64_t score = 0;
    int i;
    for (i = 0; i < cr->nseg; i++) {
        const struct pseg *ps = &cr->segs[i];
        uint64_t k;
        if (ps->kind == SEG_LIT) {
            if (i >= sp->n || strcmp(sp->dec[i], ps->text) != 0) return 0;
            k = SEG_LIT;
        } else if (ps->kind == SEG_PARAM) {
            if (i >= sp->n || sp->dec[i][0] == '\0') return 0;
            k = SEG_PARAM;
        } else {
            /* rest: may be empty only if the path has the slash before it */
            if (i >= sp->n && !(i == sp->n && sp->trailing_slash)) return 0;
            k = SEG_REST;
        }
        if (i < 20) score |= k << (3 * (19 - i));
        if (ps->kind == SEG_REST) return score;
    }
    if (i != sp->n) return 0;
    if (i < 20) score |= (uint64_t)SEG_END << (3 * (19 - i));
    return score;
}

static bool method_ok(const char *route_method, const char *method)
{
    return strcmp(route_method, "*") == 0 || strcmp(route_method, method) == 0;
}

static void allow_add(char *allow, size_t cap, const char *m)
{
    size_t ml = strlen(m);
    /* already listed? */
    for (const char *p = allow; *p;) {
        const char *e = strstr(p, ", ");
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == ml && memcmp(p, m, l) == 0) return;
        if (!e) break;
        p = e + 2;
    }
    size_t cur = strlen(allow);
    if (cur + ml + 3 >= cap) return;
    if (cur) {
        memcpy(allow + cur, ", ", 2);
        cur += 2;
    }
    memcpy(allow + cur, m, ml + 1);
}

int ts_http_router_match(const struct ts_http_router *r, struct ts_pool *pool, const char *method,
                         const char *raw_path, size_t raw_len, struct ts_http_router_match *m)
{
    memset(m, 0, sizeof(*m));
    if (raw_len == 0 || raw_path[0] != '/') return -TS_ENOTFOUND;
    m->path = ts_http_decode(pool, raw_path, raw_len, false);
    if (!m->path) return -TS_EINVAL;
    struct split sp;
    if (split_path(pool, raw_path, raw_len, &sp) < 0) return -TS_EINVAL;

    const struct croute *best = NULL;
    uint64_t best_score = 0;
    bool any_path = false;
    bool is_head = strcmp(method, "HEAD") == 0;
    const struct croute *best_get = NULL;
    uint64_t best_get_score = 0;
    for (int i = 0; i < r->n; i++) {
        const struct croute *cr = &r->routes[i];
        uint64_t s = try_route(cr, &sp);
        if (!s) continue;
        any_path = true;
        allow_add(m->allow, sizeof(m->allow), cr->route->method);
        if (strcmp(cr->route->method, "GET") == 0) allow_add(m->allow, sizeof(m->allow), "HEAD");
        if (method_ok(cr->route->method, method)) {
            if (s > best_score) {
                best = cr;
                best_score = s;
            }
        } else if (is_head && strcmp(cr->route->method, "GET") == 0 && s > best_get_score) {
            best_get = cr;
            best_get_score = s;
        }
    }
    if (!best && best_get) best = best_get;
    if (!best) return any_path ? -TS_EMETHOD : -TS_ENOTFOUND;

    m->route = best->route;
    for (int i = 0; i < best->nseg; i++) {
        const struct pseg *ps = &best->segs[i];
        if (ps->kind == SEG_LIT) continue;
        const char *v;
        if (ps->kind == SEG_PARAM) {
            v = sp.dec[i];
        } else if (i < sp.n) {
            size_t st = sp.raw_start[i];
            v = ts_http_decode(pool, raw_path + st, raw_len - st, false);
            if (!v) return -TS_EINVAL;
        } else {
            v = "";
        }
        m->names[m->n_params] = ps->text;
        m->values[m->n_params] = v;
        m->n_params++;
    }
    return 0;
}

int ts_http_query_parse(struct ts_pool *pool, const char *query, const char ***names, const char ***values)
{
    int cap = 1;
    for (const char *p = query; p && *p; p++) cap += *p == '&';
    const char **nm = ts_pool_alloc(pool, sizeof(char *) * (size_t)cap);
    const char **vl = ts_pool_alloc(pool, sizeof(char *) * (size_t)cap);
    int n = 0;
    const char *p = query ? query : "";
    while (*p) {
        const char *e = p;
        while (*e && *e != '&') e++;
        if (e > p) {
            const char *eq = memchr(p, '=', (size_t)(e - p));
            const char *nend = eq ? eq : e;
            char *name = ts_http_decode(pool, p, (size_t)(nend - p), true);
            char *val = eq ? ts_http_decode(pool, eq + 1, (size_t)(e - eq - 1), true) : ts_pool_strdup(pool, "");
            if (name && val && name[0] && n < cap) {
                nm[n] = name;
                vl[n] = val;
                n++;
            }
        }
        if (!*e) break;
        p = e + 1;
    }
    *names = nm;
    *values = vl;
    return n;
}
