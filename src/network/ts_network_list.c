/*
 * ts_network_list.c: GET /v2.0/<collection> as Neutron does it: attribute filters (repeated
 * = OR, unknown attributes ignored, fixed_ips and tag filters), sort_key/sort_dir, limit/
 * marker/page_reverse with <collection>_links, and fields.
 *
 * The common cases never build a JSON tree. Visibility and filters on indexed columns (id,
 * project, name, network, device, owner, host, status, MAC, a rule's group) become one SQL
 * WHERE, sorting on those columns an ORDER BY, and each row's stored JSON text is copied to
 * the response member by member (internal "_" keys, admin-only attributes and unrequested
 * fields left out) by a small scanner over text that jansson wrote. Only filters or sort keys
 * on other attributes take the slow path: parse the rows SQL already narrowed, match and
 * sort them in C. Security group lists fetch all their rules with one more statement.
 */
#include "network/ts_network_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- JSON text scanning ------------------------------------------------------------------ */

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* p at '"': returns the byte after the closing quote, NULL if unterminated */
static const char *skip_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\') {
            if (++p >= end) return NULL;
            continue;
        }
        if (*p == '"') return p + 1;
    }
    return NULL;
}

/* p at a value: returns the byte after it, NULL if malformed */
static const char *skip_value(const char *p, const char *end)
{
    if (p >= end) return NULL;
    if (*p == '"') return skip_string(p, end);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < end) {
            if (*p == '"') {
                p = skip_string(p, end);
                if (!p) return NULL;
                continue;
            }
            if (*p == '{' || *p == '[') depth++;
            else if (*p == '}' || *p == ']') {
                if (--depth == 0) return p + 1;
            }
            p++;
        }
        return NULL;
    }
    const char *s = p;
    while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' && *p != '\t' && *p != '\r')
        p++;
    return p > s ? p : NULL;
}

static bool key_eq(const char *k, size_t kl, const char *s) { return strlen(s) == kl && memcmp(k, s, kl) == 0; }

static bool key_admin_only(const char *k, size_t kl)
{
    return (kl >= 9 && memcmp(k, "provider:", 9) == 0) || key_eq(k, kl, "binding:host_id") ||
           key_eq(k, kl, "binding:vif_type") || key_eq(k, kl, "binding:vif_details") ||
           key_eq(k, kl, "binding:profile");
}

static bool key_wanted(const char *k, size_t kl, const char *const *fields, int nf)
{
    if (nf == 0) return true;
    for (int i = 0; i < nf; i++)
        if (key_eq(k, kl, fields[i])) return true;
    return false;
}

int ts_network_render_text(struct ts_buf *b, const char *text, bool admin, const char *const *fields, int nfields,
                           const char *extra_key, const char *extra, size_t extra_len)
{
    size_t start = b->len;
    const char *p = text, *end = text + strlen(text);
    /* kept members are copied in runs: from the first kept key to the last kept value of a
     * stretch with nothing dropped in between, commas included */
    const char *run = NULL, *run_end = NULL;
    bool first = true;
    p = skip_ws(p, end);
    if (p >= end || *p != '{') goto bad;
    ts_buf_append(b, "{", 1);
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}') goto done;
    for (;;) {
        if (p >= end || *p != '"') goto bad;
        const char *ks = p;
        const char *ke = skip_string(p, end);
        if (!ke) goto bad;
        const char *k = ks + 1;
        size_t kl = (size_t)(ke - 1 - k);
        p = skip_ws(ke, end);
        if (p >= end || *p != ':') goto bad;
        const char *ve = skip_value(skip_ws(p + 1, end), end);
        if (!ve) goto bad;
        bool keep = kl > 0 && k[0] != '_' && (admin || !key_admin_only(k, kl)) && key_wanted(k, kl, fields, nfields) &&
                    !(extra_key && key_eq(k, kl, extra_key));
        if (keep) {
            if (!run) run = ks;
            run_end = ve;
        } else if (run) {
            if (!first) ts_buf_append(b, ",", 1);
            ts_buf_append(b, run, (size_t)(run_end - run));
            first = false;
            run = NULL;
        }
        p = skip_ws(ve, end);
        if (p < end && *p == ',') {
            p = skip_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == '}') break;
        goto bad;
    }
    if (run) {
        if (!first) ts_buf_append(b, ",", 1);
        ts_buf_append(b, run, (size_t)(run_end - run));
        first = false;
    }
done:
    if (extra_key && extra && key_wanted(extra_key, strlen(extra_key), fields, nfields)) {
        ts_buf_printf(b, "%s\"%s\":", first ? "" : ",", extra_key);
        ts_buf_append(b, extra, extra_len);
    }
    if (ts_buf_append(b, "}", 1)) goto bad;
    return 0;
bad:
    b->len = start;
    if (b->data) b->data[start] = 0;
    return -1;
}

/* ---- filters -------------------------------------------------------------------------------- */

/* the filter values a JSON null matches */
static bool null_value(const char *want) { return !*want || ts_streq(want, "None") || ts_streq(want, "null"); }

/* Compares a JSON attribute with a filter value as text (Neutron converts the filter to the
 * attribute's type). */
static bool value_matches(const json_t *a, const char *want)
{
    char buf[64];
    switch (json_typeof(a)) {
    case JSON_STRING:
        return ts_streq(json_string_value(a), want);
    case JSON_INTEGER:
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(a));
        return ts_streq(buf, want);
    case JSON_TRUE:
        return ts_strcaseeq(want, "true") || ts_streq(want, "1");
    case JSON_FALSE:
        return ts_strcaseeq(want, "false") || ts_streq(want, "0");
    case JSON_NULL:
        return null_value(want);
    case JSON_ARRAY: {
        size_t i;
        json_t *e;
        json_array_foreach(a, i, e) if (value_matches(e, want)) return true;
        return false;
    }
    default:
        return false;
    }
}

/* fixed_ips=ip_address=10.0.0.3 / subnet_id=... / ip_address_substr=... */
static bool fixed_ips_match(const json_t *arr, const char *want)
{
    const char *eq = strchr(want, '=');
    if (!eq) return false;
    char key[64];
    size_t kl = (size_t)(eq - want);
    if (kl >= sizeof(key)) return false;
    memcpy(key, want, kl);
    key[kl] = 0;
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        if (ts_streq(key, "ip_address_substr")) {
            const char *ip = ts_network_vs(e, "ip_address");
            if (ip && strstr(ip, eq + 1)) return true;
        } else if (ts_streq(ts_network_vs(e, key), eq + 1)) {
            return true;
        }
    }
    return false;
}

static bool tags_match(const json_t *tags, const char *csv, bool any)
{
    char *dup = ts_strdup(csv);
    bool all = true, some = false;
    for (char *save = NULL, *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        bool has = false;
        size_t i;
        json_t *e;
        json_array_foreach(tags, i, e) if (ts_streq(json_string_value(e), t)) has = true;
        if (has) some = true;
        else all = false;
    }
    free(dup);
    return any ? some : all;
}

#define MAX_FILTERS 32

struct filter {
    const char *name;
    const char **values;
    int n;
};

struct list_query {
    struct filter filters[MAX_FILTERS];
    int nfilters;
};

static bool reserved_param(const char *name)
{
    static const char *const r[] = {"fields", "sort_key", "sort_dir", "limit", "marker", "page_reverse", NULL};
    for (int i = 0; r[i]; i++)
        if (ts_streq(r[i], name)) return true;
    return false;
}

static void collect_filter(void *ctx, const char *name, const char *value)
{
    (void)value;
    struct list_query *q = ctx;
    if (reserved_param(name)) return;
    for (int i = 0; i < q->nfilters; i++)
        if (ts_streq(q->filters[i].name, name)) return;
    if (q->nfilters < MAX_FILTERS) q->filters[q->nfilters++].name = name;
}

static bool row_matches(const json_t *v, const struct list_query *q)
{
    for (int i = 0; i < q->nfilters; i++) {
        const struct filter *f = &q->filters[i];
        const json_t *tags = json_object_get(v, "tags");
        if (ts_streq(f->name, "tags") || ts_streq(f->name, "tags-any") || ts_streq(f->name, "not-tags") ||
            ts_streq(f->name, "not-tags-any")) {
            bool any = ts_endswith(f->name, "-any"), neg = ts_startswith(f->name, "not-");
            for (int j = 0; j < f->n; j++) {
                bool m = tags && tags_match(tags, f->values[j], any);
                if (neg ? m : !m) return false;
            }
            continue;
        }
        const json_t *a = json_object_get(v, f->name);
        if (!a) {
            if (ts_streq(f->name, "tenant_id")) a = json_object_get(v, "project_id");
            if (!a) continue;   /* unknown attribute: ignored, as Neutron without filter-validation */
        }
        bool any = false;
        for (int j = 0; j < f->n && !any; j++) {
            if (ts_streq(f->name, "fixed_ips")) any = fixed_ips_match(a, f->values[j]);
            else any = value_matches(a, f->values[j]);
        }
        if (!any) return false;
    }
    return true;
}

static bool kind_in(const struct ts_network_kind *k, const struct ts_network_kind *const *set)
{
    for (int i = 0; set[i]; i++)
        if (set[i] == k) return true;
    return false;
}

/* The indexed column holding attribute `attr` of every object of kind k, as a string or null
 * (never absent), so that `col IN (...)` is exactly Neutron's equality filter; NULL when there
 * is none. *ignore is set when the caller cannot see the attribute at all (a filter on it is
 * ignored, as for any unknown attribute). */
static const char *attr_column(const struct ts_network_kind *k, const char *attr, bool admin, bool *ignore)
{
    static const struct ts_network_kind *const named[] = {&ts_network_k_network, &ts_network_k_subnet,
                                                          &ts_network_k_port,    &ts_network_k_router,
                                                          &ts_network_k_sg,      &ts_network_k_subnetpool, NULL};
    static const struct ts_network_kind *const on_net[] = {&ts_network_k_subnet, &ts_network_k_port, NULL};
    static const struct ts_network_kind *const stat[] = {&ts_network_k_network, &ts_network_k_port,
                                                         &ts_network_k_router, &ts_network_k_floatingip, NULL};
    *ignore = false;
    if (ts_streq(attr, "id")) return "id";
    if (ts_streq(attr, "project_id") || ts_streq(attr, "tenant_id")) return "project_id";
    if (ts_streq(attr, "name")) return kind_in(k, named) ? "name" : NULL;
    if (ts_streq(attr, "network_id")) return kind_in(k, on_net) ? "network_id" : NULL;
    if (ts_streq(attr, "status")) return kind_in(k, stat) ? "status" : NULL;
    if (k == &ts_network_k_port) {
        if (ts_streq(attr, "device_id")) return "device_id";
        if (ts_streq(attr, "device_owner")) return "device_owner";
        if (ts_streq(attr, "mac_address")) return "mac_address";
        if (ts_streq(attr, "binding:host_id")) {
            if (admin) return "host_id";
            *ignore = true;
            return NULL;
        }
    }
    if (k == &ts_network_k_sgr && ts_streq(attr, "security_group_id")) return "ref_id";
    return NULL;
}

/* ---- sorting (slow path) ---------------------------------------------------------------------- */

struct sort_spec {
    const char *keys[8];
    bool desc[8];
    int n;
};

static int json_cmp(const json_t *a, const json_t *b)
{
    if (!a || json_is_null(a)) return (!b || json_is_null(b)) ? 0 : -1;
    if (!b || json_is_null(b)) return 1;
    if (json_is_string(a) && json_is_string(b)) return strcmp(json_string_value(a), json_string_value(b));
    if (json_is_number(a) && json_is_number(b)) {
        double x = json_number_value(a), y = json_number_value(b);
        return x < y ? -1 : x > y ? 1 : 0;
    }
    if (json_is_boolean(a) && json_is_boolean(b)) return (int)json_is_true(a) - (int)json_is_true(b);
    return 0;
}

struct row {
    const char *id;
    const char *text;   /* stored JSON (fast path) */
    json_t *view;       /* output view (slow path) */
};

static __thread const struct sort_spec *cur_sort;

static int sort_cmp(const void *pa, const void *pb)
{
    const json_t *a = ((const struct row *)pa)->view, *b = ((const struct row *)pb)->view;
    for (int i = 0; i < cur_sort->n; i++) {
        int c = json_cmp(json_object_get(a, cur_sort->keys[i]), json_object_get(b, cur_sort->keys[i]));
        if (c) return cur_sort->desc[i] ? -c : c;
    }
    return 0;
}

/* ---- pagination links --------------------------------------------------------------------- */

struct keep_ctx {
    struct ts_buf *b;
    struct ts_pool *pool;
};

/* query string without limit/marker/page_reverse, re-encoded */
static void keep_param(void *ctx, const char *name, const char *value)
{
    struct keep_ctx *kc = ctx;
    if (ts_streq(name, "limit") || ts_streq(name, "marker") || ts_streq(name, "page_reverse")) return;
    ts_buf_printf(kc->b, "%s=%s&", ts_url_encode(kc->pool, name, false), ts_url_encode(kc->pool, value, false));
}

static json_t *page_link(struct ts_http_req *req, const char *rel, int64_t limit, const char *marker, bool reverse)
{
    struct ts_buf b;
    ts_buf_init(&b, 0);
    struct keep_ctx kc = {&b, req->pool};
    ts_http_query_each(req, keep_param, &kc);
    ts_buf_printf(&b, "limit=%lld&marker=%s%s", (long long)limit, marker ? marker : "",
                  reverse ? "&page_reverse=True" : "");
    char *path = ts_pool_printf(req->pool, "%s?%s", req->path, ts_buf_cstr(&b));
    ts_buf_free(&b);
    return json_pack("{s:s,s:s}", "rel", rel, "href", ts_network_self_url(req, path));
}

/* ---- security group rules, all of a list's groups at once ------------------------------------- */

struct rule_row {
    const char *sg;
    const char *body;
    int idx;
};

static int rule_cmp(const void *pa, const void *pb)
{
    const struct rule_row *a = pa, *b = pb;
    int c = strcmp(a->sg ? a->sg : "", b->sg ? b->sg : "");
    return c ? c : a->idx - b->idx;
}

/* index of the first rule of group sg in the sorted rules, n if none */
static int rules_lower(const struct rule_row *r, int n, const char *sg)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (strcmp(r[mid].sg ? r[mid].sg : "", sg) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* ---- the response body: our buffer handed to the server, no copy into the pool ---- */

struct body_stream {
    char *data;
    size_t len;
};

static ssize_t body_read(void *ctx, uint64_t pos, char *buf, size_t max)
{
    struct body_stream *bs = ctx;
    if (pos >= bs->len) return 0;
    size_t n = bs->len - (size_t)pos < max ? bs->len - (size_t)pos : max;
    memcpy(buf, bs->data + pos, n);
    return (ssize_t)n;
}

static void body_free(void *ctx)
{
    struct body_stream *bs = ctx;
    free(bs->data);
    free(bs);
}

/* one allocation for the whole response instead of doubling through it */
static void buf_reserve_once(struct ts_buf *b, size_t n)
{
    if (b->cap >= n || n > b->max) return;
    char *p = realloc(b->data, n);
    if (!p) return;
    b->data = p;
    b->cap = n;
}

/* ---- the list ------------------------------------------------------------------------------- */

struct sql {
    struct ts_buf text;
    struct ts_db_val *args;
    int n, cap;
};

static void sql_arg(struct sql *s, const char *v)
{
    TS_ASSERT(s->n < s->cap);
    s->args[s->n++] = TS_DB_S(v);
}

static const char *list_key(const struct ts_network_kind *k)
{
    if (k == &ts_network_k_sg) return "security_groups";
    if (k == &ts_network_k_sgr) return "security_group_rules";
    return k->plural;
}

int ts_network_list(struct ts_network_svc *svc, struct ts_http_req *req, struct ts_http_resp *resp,
                    const struct ts_network_kind *k, struct ts_err *err)
{
    struct ts_db_res *res = NULL, *rres = NULL;
    struct row *rows = NULL;
    struct rule_row *rules = NULL;
    int nrows = 0, nrules = 0, rc;
    struct sql s = {0};
    struct ts_buf out, tmp;
    ts_buf_init(&out, 0);
    ts_buf_init(&tmp, 0);
    ts_buf_init(&s.text, 0);
    bool admin = req->auth->is_admin;
    const char *me = req->auth->project_id;

    if (k == &ts_network_k_sg && me[0] && !req->auth->is_reader_only) {
        char sgid[37];
        if ((rc = ts_network_default_sg(svc, me, sgid, err))) goto out;
    }

    /* the request */
    struct list_query q = {0};
    ts_http_query_each(req, collect_filter, &q);
    int nvals = 0;
    for (int i = 0; i < q.nfilters; i++) {
        q.filters[i].n = ts_http_query_all(req, q.filters[i].name, &q.filters[i].values);
        nvals += q.filters[i].n;
    }
    struct sort_spec ss = {0};
    const char **keys = NULL, **dirs = NULL;
    int nk = ts_http_query_all(req, "sort_key", &keys), nd = ts_http_query_all(req, "sort_dir", &dirs);
    if (nd && nd != nk) {
        rc = ts_network_bad(err, "The number of sort_keys and sort_dirs must be same");
        goto out;
    }
    for (int i = 0; i < nk && ss.n < 7; i++) {
        if (nd && !ts_strcaseeq(dirs[i], "asc") && !ts_strcaseeq(dirs[i], "desc")) {
            rc = ts_network_bad(err, "%s is invalid attribute for sort_dir", dirs[i]);
            goto out;
        }
        ss.keys[ss.n] = keys[i];
        ss.desc[ss.n] = nd ? ts_strcaseeq(dirs[i], "desc") : false;
        ss.n++;
    }
    const char *ls = ts_http_query(req, "limit"), *marker = ts_http_query(req, "marker");
    const char *pr = ts_http_query(req, "page_reverse");
    bool reverse = pr && ts_strcaseeq(pr, "true");
    int64_t limit = 0;
    if (ls && (ts_parse_int64(ls, &limit) || limit < 0)) {
        rc = ts_network_bad(err, "Bad limit request: Limit must be an integer 0 or greater and not '%s'.", ls);
        goto out;
    }
    const char **fields = NULL;
    int nf = ts_http_query_all(req, "fields", &fields);

    /* WHERE: kind, visibility, the filters on indexed columns */
    s.cap = 2 + nvals;
    s.args = ts_pool_alloc(req->pool, sizeof(*s.args) * (size_t)s.cap);
    ts_buf_appends(&s.text, "FROM objects WHERE kind = ?");
    sql_arg(&s, k->name);
    if (!admin) {
        if (k->vis == TS_NV_OWN) {
            ts_buf_appends(&s.text, me[0] ? " AND project_id = ?" : " AND 1 = 0");
        } else {
            ts_buf_appends(&s.text, me[0] ? " AND (project_id = ? OR is_public = 1)" : " AND is_public = 1");
        }
        if (me[0]) sql_arg(&s, me);
    }
    int residual = 0;
    for (int i = 0; i < q.nfilters; i++) {
        bool ignore;
        const char *col = attr_column(k, q.filters[i].name, admin, &ignore);
        if (ignore) continue;
        if (!col) {
            residual++;
            continue;
        }
        bool nul = false;
        ts_buf_printf(&s.text, " AND (%s IN (", col);
        for (int j = 0; j < q.filters[i].n; j++) {
            ts_buf_appends(&s.text, j ? ",?" : "?");
            sql_arg(&s, q.filters[i].values[j]);
            nul |= null_value(q.filters[i].values[j]);
        }
        /* a JSON null matches "", None and null */
        if (nul) ts_buf_printf(&s.text, ") OR %s IS NULL)", col);
        else ts_buf_appends(&s.text, "))");
    }
    /* ORDER BY: in SQL when every key is an indexed column */
    bool sql_sort = true;
    for (int i = 0; i < ss.n; i++) {
        bool ignore;
        if (!attr_column(k, ss.keys[i], admin, &ignore)) sql_sort = false;
    }
    bool slow = residual > 0 || !sql_sort;
    struct ts_buf order;
    ts_buf_init(&order, 0);
    if (ss.n && sql_sort) {
        bool pg = ts_db_is_postgres(svc->db);
        for (int i = 0; i <= ss.n; i++) {
            bool ignore, desc = i < ss.n ? ss.desc[i] : ss.desc[0];
            const char *col = i < ss.n ? attr_column(k, ss.keys[i], admin, &ignore) : "id";
            /* NULL first ascending, as the C comparison; byte order, as strcmp */
            ts_buf_printf(&order, "%s%s%s %s", i ? ", " : "", col, pg ? " COLLATE \"C\"" : "",
                          desc ? "DESC NULLS LAST" : "ASC NULLS FIRST");
        }
    } else {
        ts_buf_appends(&order, "created_us, id");
    }
    char *sql = ts_pool_printf(req->pool, "SELECT id, body %s ORDER BY %s", ts_buf_cstr(&s.text), ts_buf_cstr(&order));
    ts_buf_free(&order);
    if ((rc = ts_db_exec(svc->db, sql, s.args, s.n, &res, err))) goto out;

    /* a security group carries its rules: one statement for all the listed groups' rules */
    bool want_rules = k == &ts_network_k_sg && (slow || nf == 0 || key_wanted("security_group_rules", 20, fields, nf));
    if (want_rules && res->nrows) {
        sql = ts_pool_printf(req->pool,
                             "SELECT ref_id, body FROM objects WHERE kind = 'security_group_rule' AND ref_id IN"
                             " (SELECT id %s) ORDER BY created_us, id",
                             ts_buf_cstr(&s.text));
        if ((rc = ts_db_exec(svc->db, sql, s.args, s.n, &rres, err))) goto out;
        nrules = rres->nrows;
        rules = ts_calloc((size_t)nrules + 1, sizeof(*rules));
        for (int i = 0; i < nrules; i++)
            rules[i] = (struct rule_row){ts_db_res_get(rres, i, 0), ts_db_res_get(rres, i, 1), i};
        qsort(rules, (size_t)nrules, sizeof(*rules), rule_cmp);
    }

    rows = ts_calloc((size_t)res->nrows + 1, sizeof(*rows));
    for (int i = 0; i < res->nrows; i++) {
        const char *id = ts_db_res_get(res, i, 0), *body = ts_db_res_get(res, i, 1);
        if (!id || !body) continue;
        if (!slow) {
            rows[nrows++] = (struct row){id, body, NULL};
            continue;
        }
        json_t *v = json_loads(body, 0, NULL);
        if (!v || !ts_network_visible(req, k, v)) {
            json_decref(v);
            continue;
        }
        if (want_rules) {
            json_t *arr = json_array();
            for (int j = rules_lower(rules, nrules, id); j < nrules && ts_streq(rules[j].sg, id); j++) {
                json_t *r = json_loads(rules[j].body, 0, NULL);
                if (r) json_array_append_new(arr, r);
            }
            json_object_set_new(v, "security_group_rules", arr);
        }
        json_t *o = ts_network_output_view(req, v);
        json_decref(v);
        if (!row_matches(o, &q)) {
            json_decref(o);
            continue;
        }
        rows[nrows++] = (struct row){ts_network_vs(o, "id"), NULL, o};
    }
    if (slow && ss.n) {
        ss.keys[ss.n] = "id";
        ss.desc[ss.n] = ss.desc[0];
        ss.n++;
        cur_sort = &ss;
        qsort(rows, (size_t)nrows, sizeof(*rows), sort_cmp);
        cur_sort = NULL;
    }

    /* pagination */
    int start = 0, end = nrows;
    if (marker) {
        int mi = -1;
        for (int i = 0; i < nrows && mi < 0; i++)
            if (ts_streq(rows[i].id, marker)) mi = i;
        if (mi < 0) {
            /* Neutron 404s an unknown marker */
            rc = ts_network_nf(err, k, marker);
            goto out;
        }
        if (reverse) end = mi;
        else start = mi + 1;
    }
    if (limit > 0 && end - start > limit) {
        if (reverse) start = end - (int)limit;
        else end = start + (int)limit;
    }

    /* the body, copied from the stored text (or dumped from the slow path's views), into a
     * buffer sized once */
    size_t total = 256;
    for (int i = start; i < end; i++) total += rows[i].text ? strlen(rows[i].text) + 1 : 1024;
    if (want_rules)
        for (int i = 0; i < nrules; i++) total += strlen(rules[i].body) + 1;
    buf_reserve_once(&out, total);
    ts_buf_printf(&out, "{\"%s\":[", list_key(k));
    for (int i = start; i < end; i++) {
        if (i > start) ts_buf_append(&out, ",", 1);
        struct row *r = &rows[i];
        if (!r->view) {
            const char *extra = NULL;
            size_t extra_len = 0;
            if (want_rules) {
                ts_buf_reset(&tmp);
                ts_buf_append(&tmp, "[", 1);
                int n = 0;
                for (int j = rules_lower(rules, nrules, r->id); j < nrules && ts_streq(rules[j].sg, r->id); j++) {
                    if (n) ts_buf_append(&tmp, ",", 1);
                    if (ts_network_render_text(&tmp, rules[j].body, true, NULL, 0, NULL, NULL, 0) == 0) n++;
                    else if (n) tmp.len--;
                }
                ts_buf_append(&tmp, "]", 1);
                extra = tmp.data, extra_len = tmp.len;
            }
            if (ts_network_render_text(&out, r->text, admin, fields, nf, want_rules ? "security_group_rules" : NULL,
                                       extra, extra_len) == 0)
                continue;
            /* not text we wrote: go through jansson */
            json_t *v = json_loads(r->text, 0, NULL);
            r->view = ts_network_output_view(req, v ? v : json_object());
            json_decref(v);
        }
        json_t *o = ts_network_apply_fields(json_incref(r->view), fields, nf);
        char *t = ts_json_dump(o);
        json_decref(o);
        ts_buf_appends(&out, t);
        free(t);
    }
    ts_buf_append(&out, "]", 1);
    if (limit > 0) {
        json_t *links = json_array();
        int cnt = end - start;
        const char *first = cnt > 0 ? rows[start].id : NULL, *last = cnt > 0 ? rows[end - 1].id : NULL;
        if (cnt > 0 && cnt >= limit && (reverse ? start > 0 : end < nrows))
            json_array_append_new(links, page_link(req, reverse ? "previous" : "next", limit, reverse ? first : last,
                                                   reverse));
        if (cnt > 0 && marker)
            json_array_append_new(links, page_link(req, reverse ? "next" : "previous", limit, reverse ? last : first,
                                                   !reverse));
        if (json_array_size(links)) {
            char *t = ts_json_dump(links);
            ts_buf_printf(&out, ",\"%s_links\":%s", list_key(k), t);
            free(t);
        }
        json_decref(links);
    }
    if ((rc = ts_buf_append(&out, "}", 1))) {
        rc = ts_err_set(err, TS_ETOOBIG, "list response too large");
        goto out;
    }
    struct body_stream *bs = ts_calloc(1, sizeof(*bs));
    bs->len = out.len;
    bs->data = ts_buf_steal(&out, NULL);
    ts_http_resp_stream(resp, 200, "application/json", (int64_t)bs->len, body_read, body_free, bs);
    rc = 0;
out:
    for (int i = 0; i < nrows; i++) json_decref(rows[i].view);
    free(rows);
    free(rules);
    ts_db_res_free(res);
    ts_db_res_free(rres);
    ts_buf_free(&s.text);
    ts_buf_free(&out);
    ts_buf_free(&tmp);
    return rc;
}
