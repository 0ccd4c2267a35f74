/*
 * ts_object_api.c: the Swift v1 HTTP API: path parsing, keystoneauth-like authorization
 * (operator roles, reseller admin, container ACLs, temp URLs), /info and /healthcheck,
 * accounts and containers (metadata, listings in plain/json/xml, ACLs, quotas,
 * versioning locations, CORS). Objects live in ts_object_api_obj.c.
 */
#include "object/ts_object_api.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bus/ts_bus.h"

void ts_object_ts_text(double ts, char out[32])
{
    snprintf(out, 32, "%016.5f", ts);
}

int ts_object_fail(struct ts_err *err, int code, int status)
{
    return ts_err_set_full(err, code, status, NULL, "%s", "");
}

/* ---- path and request context ------------------------------------------------------------ */

static char *decode_seg(struct ts_pool *pool, const char *s, size_t len)
{
    return ts_url_decode(pool, s, len);
}

static int parse_path(struct ts_object_req *s, struct ts_err *err)
{
    const char *p = s->req->raw_path;
    if (!ts_startswith(p, "/v1/")) return ts_object_fail(err, TS_ENOTFOUND, 404);
    p += 4;
    const char *e = strchr(p, '/');
    size_t alen = e ? (size_t)(e - p) : strlen(p);
    s->account = decode_seg(s->req->pool, p, alen);
    if (!s->account || !*s->account) return ts_err_set_full(err, TS_EPRECOND, 412, NULL, "Invalid UTF8 or contains NULL");
    if (strlen(s->account) > TS_OBJECT_MAX_ACCOUNT_NAME)
        return ts_err_set_full(err, TS_EINVAL, 400, NULL, "Account name length of %zu longer than %d",
                               strlen(s->account), TS_OBJECT_MAX_ACCOUNT_NAME);
    if (!e || !e[1]) return 0;
    p = e + 1;
    e = strchr(p, '/');
    size_t clen = e ? (size_t)(e - p) : strlen(p);
    char *c = decode_seg(s->req->pool, p, clen);
    if (!c) return ts_err_set_full(err, TS_EPRECOND, 412, NULL, "Invalid UTF8 or contains NULL");
    int rc = ts_object_name_check(c, strlen(c), TS_OBJECT_MAX_CONTAINER_NAME, "Container", err);
    if (rc < 0) return rc;
    s->container = c;
    if (!e || !e[1]) return 0;
    p = e + 1;
    char *o = decode_seg(s->req->pool, p, strlen(p));
    if (!o) return ts_err_set_full(err, TS_EPRECOND, 412, NULL, "Invalid UTF8 or contains NULL");
    rc = ts_object_name_check(o, strlen(o), TS_OBJECT_MAX_OBJECT_NAME, "Object", err);
    if (rc < 0) return rc;
    s->object = o;
    return 0;
}

/* ---- authorization ---------------------------------------------------------------------- */

static bool acl_match(const char *acl, const struct ts_auth *a, bool *referrer, bool *listings)
{
    *referrer = *listings = false;
    bool user = false;
    if (!acl) return false;
    char *copy = ts_strdup(acl), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ') t++;
        size_t l = strlen(t);
        while (l && t[l - 1] == ' ') t[--l] = '\0';
        if (strcmp(t, ".rlistings") == 0) *listings = true;
        else if (strcmp(t, ".r:*") == 0 || strcmp(t, ".referrer:*") == 0) *referrer = true;
        else if (a && a->authenticated) {
            char *colon = strchr(t, ':');
            if (!colon) {
                if (strcmp(t, a->project_id) == 0 || strcmp(t, a->user_id) == 0) user = true;
                continue;
            }
            *colon = '\0';
            const char *pr = t, *us = colon + 1;
            bool pok = strcmp(pr, "*") == 0 || strcmp(pr, a->project_id) == 0 || strcmp(pr, a->project_name) == 0;
            bool uok = strcmp(us, "*") == 0 || strcmp(us, a->user_id) == 0 || strcmp(us, a->user_name) == 0;
            if (pok && uok) user = true;
        }
    }
    free(copy);
    return user;
}

static bool has_operator_role(const struct ts_auth *a)
{
    static const char *const ops[] = {"admin", "member", "_member_", "swiftoperator", "SwiftOperator"};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (ts_auth_has_role(a, ops[i])) return true;
    return false;
}

/* Account ACLs (X-Account-Access-Control, tempauth's version-2 JSON as Swift documents it:
 * {"admin": [...], "read-write": [...], "read-only": [...]}). A grantee is a project id, a
 * user id, "<project_id>:<user_id>", "<project_id>:*" or "*:<user_id>". */
enum { ACCT_ACL_NONE, ACCT_ACL_READ_ONLY, ACCT_ACL_READ_WRITE, ACCT_ACL_ADMIN };

static bool grantee_match(const char *g, const struct ts_auth *a)
{
    if (!g || !*g) return false;
    if (strcmp(g, a->project_id) == 0 || strcmp(g, a->user_id) == 0) return true;
    const char *colon = strchr(g, ':');
    if (!colon) return false;
    size_t pl = (size_t)(colon - g);
    bool pok = (pl == 1 && g[0] == '*') || (pl == strlen(a->project_id) && memcmp(g, a->project_id, pl) == 0);
    bool uok = strcmp(colon + 1, "*") == 0 || strcmp(colon + 1, a->user_id) == 0;
    return pok && uok && !(pl == 1 && g[0] == '*' && strcmp(colon + 1, "*") == 0);
}

/* The strongest account ACL level granted to a on acct. */
static int account_acl_level(struct ts_object_req *s, const struct ts_auth *a)
{
    json_t *am;
    ts_object_account_meta(s->svc, s->req->pool, s->account, &am);
    const char *text = json_string_value(json_object_get(am, "X-Account-Access-Control"));
    if (!text || !*text) return ACCT_ACL_NONE;
    json_t *acl = json_loads(text, 0, NULL);
    static const char *const keys[] = {"admin", "read-write", "read-only"};
    static const int levels[] = {ACCT_ACL_ADMIN, ACCT_ACL_READ_WRITE, ACCT_ACL_READ_ONLY};
    int level = ACCT_ACL_NONE;
    for (int k = 0; k < 3 && level == ACCT_ACL_NONE; k++) {
        size_t i;
        json_t *g;
        json_array_foreach(json_object_get(acl, keys[k]), i, g) {
            if (grantee_match(json_string_value(g), a)) {
                level = levels[k];
                break;
            }
        }
    }
    json_decref(acl);
    return level;
}

/* Checks and normalises an X-Account-Access-Control value in place (Swift's 400 texts);
 * an empty ACL becomes "" (removal). */
static int account_acl_clean(json_t *set, struct ts_err *err)
{
    const char *v = json_string_value(json_object_get(set, "X-Account-Access-Control"));
    if (!v || !*v) return 0;
    json_t *acl = json_loads(v, JSON_REJECT_DUPLICATES, NULL);
    int rc = 0;
    if (!json_is_object(acl)) {
        rc = ts_err_set_full(err, TS_EINVAL, 400, NULL, "Syntax error in input ('%s')", v);
        goto out;
    }
    const char *k;
    json_t *list;
    void *tmp;
    json_object_foreach_safe(acl, tmp, k, list) {
        if (strcmp(k, "admin") && strcmp(k, "read-write") && strcmp(k, "read-only")) {
            rc = ts_err_set_full(err, TS_EINVAL, 400, NULL, "Key \"%s\" not recognized", k);
            goto out;
        }
        if (!json_is_array(list)) {
            rc = ts_err_set_full(err, TS_EINVAL, 400, NULL, "Value for key \"%s\" must be a list", k);
            goto out;
        }
        size_t i;
        json_t *g;
        json_array_foreach(list, i, g) {
            if (!json_is_string(g)) {
                rc = ts_err_set_full(err, TS_EINVAL, 400, NULL, "Elements of \"%s\" list must be strings", k);
                goto out;
            }
        }
        if (json_array_size(list) == 0) json_object_del(acl, k);
    }
    char *text = json_object_size(acl) ? json_dumps(acl, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_object_set_new(set, "X-Account-Access-Control", json_string(text ? text : ""));
    free(text);
out:
    json_decref(acl);
    return rc;
}

int ts_object_authorize(struct ts_object_req *s, enum ts_object_op op, struct ts_err *err)
{
    const struct ts_auth *a = s->req->auth;
    bool authed = a && a->authenticated;
    bool write = op == TS_OBJECT_OP_ACCOUNT_WRITE || op == TS_OBJECT_OP_CONTAINER_WRITE || op == TS_OBJECT_OP_OBJECT_WRITE;
    if (s->tempurl_ok && (op == TS_OBJECT_OP_OBJECT_READ || op == TS_OBJECT_OP_OBJECT_WRITE)) return 0;
    if (authed && (a->is_admin || ts_auth_has_role(a, "ResellerAdmin") || ts_auth_has_role(a, "reselleradmin"))) {
        s->owner = true;
        return 0;
    }
    if (authed && ts_startswith(s->account, "AUTH_") && strcmp(s->account + 5, a->project_id) == 0) {
        if (has_operator_role(a)) {
            s->owner = true;
            return 0;
        }
        if (ts_auth_has_role(a, "reader") && !write) return 0;
    }
    if (s->container && op != TS_OBJECT_OP_CONTAINER_WRITE) {
        struct ts_object_container c;
        struct ts_err e2;
        if (ts_object_db_container(s->svc, s->req->pool, s->account, s->container, &c, &e2) == 0) {
            bool ref = false, lst = false;
            if (op == TS_OBJECT_OP_OBJECT_WRITE) {
                if (acl_match(json_string_value(json_object_get(c.meta, "X-Container-Write")), a, &ref, &lst))
                    return 0;
            } else {
                bool user = acl_match(json_string_value(json_object_get(c.meta, "X-Container-Read")), a, &ref, &lst);
                if (user) return 0;
                if (op == TS_OBJECT_OP_OBJECT_READ && ref) return 0;
                if (op == TS_OBJECT_OP_CONTAINER_READ && ref && lst) return 0;
            }
        }
    }
    if (!authed) return ts_err_set_full(err, TS_EUNAUTH, 401, NULL, "%s", "");
    /* account ACLs, as tempauth: admin is an owner; read-write may do anything below the
     * account and read it; read-only may read */
    int level = account_acl_level(s, a);
    if (level == ACCT_ACL_ADMIN) {
        s->owner = true;
        return 0;
    }
    if (level == ACCT_ACL_READ_WRITE && (s->container || !write)) return 0;
    if (level == ACCT_ACL_READ_ONLY && !write) return 0;
    return ts_object_fail(err, TS_EFORBIDDEN, 403);
}

/* ---- common response bits --------------------------------------------------------------- */

void ts_object_meta_headers(struct ts_http_resp *resp, json_t *meta, bool owner)
{
    const char *k;
    json_t *v;
    json_object_foreach(meta, k, v) {
        if (strstr(k, "-Sysmeta-")) continue;
        if (!owner && strstr(k, "Temp-Url-Key")) continue;
        if (!owner && strcasecmp(k, "X-Account-Access-Control") == 0) continue;
        if (!owner && (strcasecmp(k, "X-Container-Read") == 0 || strcasecmp(k, "X-Container-Write") == 0))
            continue;
        if (json_is_string(v)) ts_http_resp_header(resp, k, json_string_value(v));  /* "" is sent as empty */
    }
}

void ts_object_cors(struct ts_object_req *s, json_t *cmeta)
{
    const char *origin = ts_http_header(s->req, "Origin");
    if (!origin || !cmeta) return;
    const char *allow = json_string_value(json_object_get(cmeta, "X-Container-Meta-Access-Control-Allow-Origin"));
    if (!allow) return;
    bool ok = false;
    char *copy = ts_strdup(allow), *save = NULL;
    for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save))
        if (strcmp(t, "*") == 0 || strcmp(t, origin) == 0) ok = true;
    free(copy);
    if (!ok) return;
    ts_http_resp_header(s->resp, "Access-Control-Allow-Origin", strcmp(allow, "*") == 0 ? "*" : origin);
    const char *expose = json_string_value(json_object_get(cmeta, "X-Container-Meta-Access-Control-Expose-Headers"));
    ts_http_resp_headerf(s->resp, "Access-Control-Expose-Headers",
                         "cache-control, content-language, content-type, expires, last-modified, pragma, etag, "
                         "x-timestamp, x-trans-id, x-openstack-request-id%s%s",
                         expose ? ", " : "", expose ? expose : "");
}

static int options_preflight(struct ts_object_req *s, struct ts_err *err)
{
    const char *origin = ts_http_header(s->req, "Origin");
    const char *method = ts_http_header(s->req, "Access-Control-Request-Method");
    if (!s->container || !origin || !method) {
        ts_http_resp_header(s->resp, "Allow", "HEAD, GET, PUT, POST, COPY, OPTIONS, DELETE");
        ts_http_resp_no_body(s->resp, 200, 0);
        return 0;
    }
    struct ts_object_container c;
    if (ts_object_db_container(s->svc, s->req->pool, s->account, s->container, &c, err) < 0)
        return ts_err_set_full(err, TS_EUNAUTH, 401, NULL, "%s", "");
    const char *allow = json_string_value(json_object_get(c.meta, "X-Container-Meta-Access-Control-Allow-Origin"));
    bool ok = false;
    if (allow) {
        char *copy = ts_strdup(allow), *save = NULL;
        for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save))
            if (strcmp(t, "*") == 0 || strcmp(t, origin) == 0) ok = true;
        free(copy);
    }
    if (!ok) return ts_err_set_full(err, TS_EUNAUTH, 401, NULL, "%s", "");
    ts_http_resp_header(s->resp, "Access-Control-Allow-Origin", strcmp(allow, "*") == 0 ? "*" : origin);
    ts_http_resp_header(s->resp, "Access-Control-Allow-Methods", "HEAD, GET, PUT, POST, COPY, OPTIONS, DELETE");
    const char *rh = ts_http_header(s->req, "Access-Control-Request-Headers");
    if (rh) ts_http_resp_header(s->resp, "Access-Control-Allow-Headers", rh);
    const char *age = json_string_value(json_object_get(c.meta, "X-Container-Meta-Access-Control-Max-Age"));
    if (age) ts_http_resp_header(s->resp, "Access-Control-Max-Age", age);
    ts_http_resp_header(s->resp, "Allow", "HEAD, GET, PUT, POST, COPY, OPTIONS, DELETE");
    ts_http_resp_no_body(s->resp, 200, 0);
    return 0;
}

/* ---- metadata from request headers ------------------------------------------------------- */

struct meta_collect {
    struct ts_pool *pool;
    const char *prefix;        /* "x-container-meta-" */
    const char *rm_prefix;     /* "x-remove-container-meta-" */
    const char *const *extra; /* other headers kept verbatim (NULL-terminated, lower-case) */
    const char *const *rm_extra;
    json_t *set;               /* name -> value ("" = remove) */
    bool owner;                /* may set privileged headers (ACLs, sync, temp URL keys) */
    struct ts_object_meta_check check;
    struct ts_err err;
    int rc;
};

static void collect_cb(void *ctx, const char *name, const char *value)
{
    struct meta_collect *m = ctx;
    if (m->rc < 0) return;
    /* as Swift's proxy: privileged headers from non-owners (account ACL grantees) are dropped */
    if (!m->owner && (strcasestr(name, "temp-url-key") || strcasecmp(name, "x-container-read") == 0 ||
                      strcasecmp(name, "x-container-write") == 0 || strcasecmp(name, "x-remove-container-read") == 0 ||
                      strcasecmp(name, "x-remove-container-write") == 0 ||
                      strncasecmp(name, "x-container-sync-", 17) == 0 ||
                      strcasecmp(name, "x-account-access-control") == 0))
        return;
    size_t pl = strlen(m->prefix), rl = strlen(m->rm_prefix);
    char *n = NULL;
    if (strncasecmp(name, m->prefix, pl) == 0) {
        m->rc = ts_object_meta_check_add(&m->check, name + pl, value, &m->err);
        if (m->rc < 0) return;
        n = ts_pool_strdup(m->pool, name);
    } else if (strncasecmp(name, m->rm_prefix, rl) == 0 && name[rl]) {
        n = ts_pool_printf(m->pool, "%.*s%s", (int)pl, m->prefix, name + rl);
        value = NULL;
    } else {
        for (int i = 0; m->extra && m->extra[i]; i++)
            if (strcasecmp(name, m->extra[i]) == 0) n = ts_pool_strdup(m->pool, name);
        for (int i = 0; m->rm_extra && m->rm_extra[i]; i += 2)
            if (strcasecmp(name, m->rm_extra[i]) == 0) {
                n = ts_pool_strdup(m->pool, m->rm_extra[i + 1]);
                value = NULL;
            }
    }
    if (!n) return;
    ts_object_header_title(n);
    /* removals are JSON null; an empty value is kept as "" (objects keep it, containers
     * and accounts treat it as a removal) */
    json_object_set_new(m->set, n, value ? json_string(value) : json_null());
}

int ts_object_collect_meta(struct ts_object_req *s, const char *kind, const char *const *extra,
                           const char *const *rm_extra, json_t **out, struct ts_err *err)
{
    struct meta_collect m = {0};
    m.pool = s->req->pool;
    m.owner = s->owner;
    m.prefix = ts_pool_printf(s->req->pool, "x-%s-meta-", kind);
    m.rm_prefix = ts_pool_printf(s->req->pool, "x-remove-%s-meta-", kind);
    m.extra = extra;
    m.rm_extra = rm_extra;
    m.set = json_object();
    ts_pool_cleanup(s->req->pool, (void (*)(void *))json_decref, m.set);
    ts_http_headers_each(s->req, collect_cb, &m);
    if (m.rc < 0) {
        if (err) *err = m.err;
        return m.rc;
    }
    *out = m.set;
    return 0;
}

/* Applies set onto meta: null and empty values remove. */
static void meta_apply(json_t *meta, json_t *set)
{
    const char *k;
    json_t *v;
    json_object_foreach(set, k, v) {
        if (json_is_string(v) && *json_string_value(v)) json_object_set(meta, k, v);
        else json_object_del(meta, k);
    }
}

/* ---- /info and /healthcheck ---------------------------------------------------------------- */

static int h_info(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)req;
    (void)err;
    json_t *j = json_pack(
        "{s:{s:s,s:I,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:[{s:s,s:b}],s:b,s:b,s:b,s:[s,s]},"
        "s:{s:i,s:i,s:i,s:i,s:i,s:b},s:{s:i},"
        "s:{s:[s,s,s,s,s],s:[s,s,s],s:[s,s],s:[s]},"
        "s:{s:i,s:i},s:{s:i,s:i},s:{s:[s,s]},s:{},s:{},s:{},s:{},s:{},s:{s:s}}",
        "swift", "version", "2.30.0", "max_file_size", (json_int_t)TS_OBJECT_MAX_FILE_SIZE, "max_meta_name_length",
        TS_OBJECT_MAX_META_NAME, "max_meta_value_length", TS_OBJECT_MAX_META_VALUE, "max_meta_count",
        TS_OBJECT_MAX_META_COUNT, "max_meta_overall_size", TS_OBJECT_MAX_META_OVERALL, "max_header_size",
        TS_OBJECT_MAX_HEADER_SIZE, "max_object_name_length", TS_OBJECT_MAX_OBJECT_NAME, "container_listing_limit",
        TS_OBJECT_LISTING_LIMIT, "account_listing_limit", TS_OBJECT_LISTING_LIMIT, "max_account_name_length",
        TS_OBJECT_MAX_ACCOUNT_NAME, "max_container_name_length", TS_OBJECT_MAX_CONTAINER_NAME, "extra_header_count",
        0, "policies", "name", "Policy-0", "default", 1, "strict_cors_mode", 1, "allow_account_management", 0,
        "account_autocreate", 1, "valid_api_versions", "v1", "v1.0",
        "slo", "max_manifest_segments", 1000, "max_manifest_size", 8388608, "min_segment_size", 1,
        "yield_frequency", 10, "max_get_time", 86400, "allow_async_delete", 0,
        "dlo", "max_get_time", 86400,
        "tempurl", "methods", "GET", "HEAD", "PUT", "POST", "DELETE", "allowed_digests", "sha1", "sha256", "sha512",
        "incoming_remove_headers", "x-timestamp", "x-open-expired", "outgoing_remove_headers",
        "x-object-meta-*",
        "bulk_delete", "max_deletes_per_request", 10000, "max_failed_deletes", 1000,
        "bulk_upload", "max_containers_per_extraction", 10000, "max_failed_extractions", 1000,
        "versioned_writes", "allowed_flags", "x-versions-location", "x-history-location",
        "container_quotas", "account_quotas", "keystoneauth", "formpost", "staticweb", "crossdomain",
        "cross_domain_policy", "<allow-access-from domain=\"*\" secure=\"false\" />");
    if (!j) return ts_err_set(err, TS_EIO, "info");
    ts_http_resp_json(resp, 200, j);
    return 0;
}

/* Swift's transaction id, "tx" + 21 hex digits + "-" + the time in hex: unique, not secret,
 * so the digits come from a per-thread xorshift128+ seeded once by getrandom rather than
 * from a getrandom call per request. */
static void trans_id_text(double now, char out[48])
{
    static __thread uint64_t st[2];
    if (!st[0] && !st[1]) {
        ts_random(st, sizeof(st));
        if (!st[0] && !st[1]) st[0] = 1;
    }
    uint64_t r[2];
    for (int i = 0; i < 2; i++) {
        uint64_t x = st[0];
        const uint64_t y = st[1];
        st[0] = y;
        x ^= x << 23;
        st[1] = x ^ y ^ (x >> 17) ^ (y >> 26);
        r[i] = st[1] + y;
    }
    snprintf(out, 48, "tx%016llx%05llx-%010llx", (unsigned long long)r[0], (unsigned long long)(r[1] & 0xfffff),
             (unsigned long long)now);
}

static void trans_id_hdr(struct ts_http_req *req, struct ts_http_resp *resp)
{
    (void)req;
    char id[48];
    trans_id_text(ts_now(), id);
    ts_http_resp_header(resp, "X-Trans-Id", id);
}

static int h_healthcheck(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)err;
    trans_id_hdr(req, resp);
    ts_http_resp_body(resp, 200, "text/plain", "OK", 2);
    return 0;
}

static int h_crossdomain(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)err;
    static const char body[] = "<?xml version=\"1.0\"?>\n<!DOCTYPE cross-domain-policy SYSTEM "
                               "\"http://www.adobe.com/xml/dtds/cross-domain-policy.dtd\" >\n<cross-domain-policy>\n"
                               "<allow-access-from domain=\"*\" secure=\"false\" />\n</cross-domain-policy>";
    trans_id_hdr(req, resp);
    ts_http_resp_body(resp, 200, "application/xml", body, sizeof(body) - 1);
    return 0;
}

/* ---- listings -------------------------------------------------------------------------- */

/*
 * A listing is one SQL query whose rows go straight into the response body as SQLite steps
 * them (ts_db_each): no result set, no per-row copies, no JSON trees. A delimiter that
 * rolls names up into a "subdir" ends the walk there and the next query starts past that
 * subdir, as Swift does; a listing without a delimiter is always a single query.
 */

struct entry {            /* staticweb collects these instead of rendering */
    const char *name;
    bool subdir;
    int64_t a;
};

/* The body being built. Bounded by the listing limit (10,000 rows of bounded names). */
struct out {
    char *p;
    size_t len, cap;
};

static void out_grow(struct out *o, size_t more)
{
    if (o->len + more <= o->cap) return;
    size_t cap = o->cap ? o->cap : 16384;
    while (cap < o->len + more) cap *= 2;
    o->p = ts_realloc(o->p, cap);
    o->cap = cap;
}

static void out_put(struct out *o, const char *s, size_t n)
{
    out_grow(o, n);
    memcpy(o->p + o->len, s, n);
    o->len += n;
}
#define OUT_LIT(o, lit) out_put((o), (lit), sizeof(lit) - 1)

/* Appends into room reserved with out_grow. */
static inline void out_raw(struct out *o, const char *s, size_t n)
{
    memcpy(o->p + o->len, s, n);
    o->len += n;
}
#define RAW_LIT(o, lit) out_raw((o), (lit), sizeof(lit) - 1)

/* Bytes a JSON string must escape: control characters, '"' and '\\'. */
static const unsigned char json_esc[256] = {[0 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1};

/* The inside of a JSON string, escaped as jansson escapes (names are valid UTF-8): runs
 * that need no escape are copied whole. */
static void out_json_raw(struct out *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    char *d = o->p + o->len;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        /* eight bytes at a time while none of them needs an escape (a byte below 0x20,
         * '"' or '\\': the classic "has a zero byte" test on w, w ^ '"' and w ^ '\\') */
        for (; j + 8 <= n; j += 8) {
            uint64_t w;
            memcpy(&w, s + j, 8);
            const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
            uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
            uint64_t hit = ((w - ones * 0x20) | (q - ones) | (b - ones)) & ~w & highs;
            if (hit) break;
        }
        while (j < n && !json_esc[(unsigned char)s[j]]) j++;
        memcpy(d, s + i, j - i);
        d += j - i;
        if (j == n) break;
        unsigned char c = (unsigned char)s[j];
        i = j + 1;
        *d++ = '\\';
        switch (c) {
        case '"': *d++ = '"'; break;
        case '\\': *d++ = '\\'; break;
        case '\b': *d++ = 'b'; break;
        case '\f': *d++ = 'f'; break;
        case '\n': *d++ = 'n'; break;
        case '\r': *d++ = 'r'; break;
        case '\t': *d++ = 't'; break;
        default:
            memcpy(d, "u00", 3);
            d[3] = hex[c >> 4];
            d[4] = hex[c & 15];
            d += 5;
        }
    }
    o->len = (size_t)(d - o->p);
}

static void out_json(struct out *o, const char *s, size_t n)
{
    out_grow(o, n * 6);
    out_json_raw(o, s, n);
}

static void out_xml_raw(struct out *o, const char *s, size_t n)
{
    char *d = o->p + o->len;
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '<': memcpy(d, "&lt;", 4); d += 4; break;
        case '>': memcpy(d, "&gt;", 4); d += 4; break;
        case '&': memcpy(d, "&amp;", 5); d += 5; break;
        case '"': memcpy(d, "&quot;", 6); d += 6; break;
        default: *d++ = s[i];
        }
    }
    o->len = (size_t)(d - o->p);
}

static void out_xml(struct out *o, const char *s, size_t n)
{
    out_grow(o, n * 6);
    out_xml_raw(o, s, n);
}

static void xml_escape(struct ts_buf *b, const char *s)
{
    struct out o = {0};
    out_xml(&o, s, strlen(s));
    ts_buf_append(b, o.p ? o.p : "", o.len);
    free(o.p);
}

struct lister {
    const struct ts_object_listing *lp;
    bool objects;
    size_t plen;
    char dl;
    size_t marker_len;
    int n;                    /* entries so far */
    char *next_bound;         /* where the next query starts after a subdir (malloc'd) */
    struct out o;
    struct entry *ents;       /* staticweb: collect instead of render */
    struct ts_pool *pool;
    int64_t lm_sec;           /* last_modified: the date part of the last second seen */
    char lm_base[24];
};

/* last_modified from a timestamp in 1e-5 s units (Swift's precision): what
 * ts_time_iso(ts, 6) gives without the 'Z', the date part cached per second (into room reserved by the caller). text is
 * SQLite's decimal integer; anything else (negative, too large) shows the epoch. */
static void out_lm(struct lister *l, const char *text, size_t len)
{
    int64_t t5 = 0;
    if (text && len && len <= 17) {
        for (size_t i = 0; i < len; i++) {
            unsigned d = (unsigned)(unsigned char)text[i] - '0';
            if (d > 9) {
                t5 = 0;
                break;
            }
            t5 = t5 * 10 + (int64_t)d;
        }
    }
    if (t5 >= 25340230080000000LL) t5 = 0;
    int64_t sec = t5 / 100000;
    long usec = (long)(t5 % 100000) * 10;
    if (sec != l->lm_sec || !l->lm_base[0]) {
        time_t tt = (time_t)sec;
        struct tm tm;
        if (!gmtime_r(&tt, &tm)) {
            tt = 0;
            usec = 0;
            gmtime_r(&tt, &tm);
        }
        strftime(l->lm_base, sizeof(l->lm_base), "%Y-%m-%dT%H:%M:%S", &tm);
        l->lm_sec = sec;
    }
    char frac[8];
    frac[0] = '.';
    for (int i = 6; i >= 1; i--) {
        frac[i] = (char)('0' + usec % 10);
        usec /= 10;
    }
    out_raw(&l->o, l->lm_base, strlen(l->lm_base));
    out_raw(&l->o, frac, 7);
}

static void emit_subdir(struct lister *l, const char *name, size_t len)
{
    if (l->ents) {
        l->ents[l->n++] = (struct entry){.name = ts_pool_strndup(l->pool, name, len), .subdir = true};
        return;
    }
    struct out *o = &l->o;
    switch (l->lp->fmt) {
    case TS_OBJECT_FMT_PLAIN:
        out_put(o, name, len);
        OUT_LIT(o, "\n");
        break;
    case TS_OBJECT_FMT_JSON:
        if (l->n) OUT_LIT(o, ",");
        OUT_LIT(o, "{\"subdir\":\"");
        out_json(o, name, len);
        OUT_LIT(o, "\"}");
        break;
    case TS_OBJECT_FMT_XML:
        OUT_LIT(o, "<subdir name=\"");
        out_xml(o, name, len);
        OUT_LIT(o, "\"><name>");
        out_xml(o, name, len);
        OUT_LIT(o, "</name></subdir>");
        break;
    }
    l->n++;
}

/* cells: objects: name, size, etag, content_type, ts; containers: name, count, bytes, '', put_ts */
static void emit_row(struct lister *l, const char *const *c, const size_t *len)
{
    if (l->ents) {
        int64_t a = 0;
        if (c[1]) ts_parse_int64(c[1], &a);
        l->ents[l->n++] = (struct entry){.name = ts_pool_strndup(l->pool, c[0], len[0]), .a = a};
        return;
    }
    struct out *o = &l->o;
    const char *etag = c[2] ? c[2] : "";
    size_t elen = c[2] ? len[2] : 0;
    if (l->objects && elen >= 2 && etag[0] == '"') {
        /* SLO etags are stored quoted; listings show the bare md5 */
        etag++;
        elen -= 2;
    }
    const char *one = c[1] ? c[1] : "0";
    size_t onelen = c[1] ? len[1] : 1;
    /* one reservation per row: escaping at most sextuples a string; literals and the
     * last_modified text fit in 160 bytes */
    out_grow(o, 6 * (len[0] + elen + (c[3] ? len[3] : 0)) + onelen + (c[2] ? len[2] : 0) + 160);
    switch (l->lp->fmt) {
    case TS_OBJECT_FMT_PLAIN:
        out_raw(o, c[0], len[0]);
        RAW_LIT(o, "\n");
        break;
    case TS_OBJECT_FMT_JSON:
        if (l->n) RAW_LIT(o, ",");
        RAW_LIT(o, "{\"name\":\"");
        out_json_raw(o, c[0], len[0]);
        if (l->objects) {
            RAW_LIT(o, "\",\"hash\":\"");
            out_json_raw(o, etag, elen);
            RAW_LIT(o, "\",\"bytes\":");
            out_raw(o, one, onelen);
            RAW_LIT(o, ",\"content_type\":\"");
            if (c[3]) out_json_raw(o, c[3], len[3]);
        } else {
            RAW_LIT(o, "\",\"count\":");
            out_raw(o, one, onelen);
            RAW_LIT(o, ",\"bytes\":");
            if (c[2]) out_raw(o, c[2], len[2]);
            else RAW_LIT(o, "0");
        }
        if (l->objects) RAW_LIT(o, "\",\"last_modified\":\"");
        else RAW_LIT(o, ",\"last_modified\":\"");
        out_lm(l, c[4], len[4]);
        RAW_LIT(o, "\"}");
        break;
    case TS_OBJECT_FMT_XML:
        if (l->objects) RAW_LIT(o, "<object><name>");
        else RAW_LIT(o, "<container><name>");
        out_xml_raw(o, c[0], len[0]);
        if (l->objects) {
            RAW_LIT(o, "</name><hash>");
            out_raw(o, etag, elen);
            RAW_LIT(o, "</hash><bytes>");
            out_raw(o, one, onelen);
            RAW_LIT(o, "</bytes><content_type>");
            if (c[3]) out_xml_raw(o, c[3], len[3]);
            RAW_LIT(o, "</content_type><last_modified>");
            out_lm(l, c[4], len[4]);
            RAW_LIT(o, "</last_modified></object>");
        } else {
            RAW_LIT(o, "</name><count>");
            out_raw(o, one, onelen);
            RAW_LIT(o, "</count><bytes>");
            if (c[2]) out_raw(o, c[2], len[2]);
            else RAW_LIT(o, "0");
            RAW_LIT(o, "</bytes><last_modified>");
            out_lm(l, c[4], len[4]);
            RAW_LIT(o, "</last_modified></container>");
        }
        break;
    }
    l->n++;
}

static int list_row(void *ctx, const char *const *cells, const size_t *lens, int ncols)
{
    struct lister *l = ctx;
    if (ncols < 5 || !cells[0]) return 0;
    const char *name = cells[0];
    size_t nlen = lens[0];
    if (l->dl && nlen > l->plen) {
        const char *d = memchr(name + l->plen, l->dl, nlen - l->plen);
        /* as Swift: "dir/" itself is an object; "dir/x" rolls up into "dir/" */
        if (d && d + 1 < name + nlen) {
            size_t dlen = (size_t)(d - name) + 1;
            if (!l->lp->path_mode && !(dlen == l->marker_len && memcmp(name, l->lp->marker, dlen) == 0))
                emit_subdir(l, name, dlen);
            /* skip every name under dir: the walk restarts past it */
            free(l->next_bound);
            l->next_bound = ts_strndup(name, dlen);
            if (!l->lp->reverse) l->next_bound[dlen - 1] = (char)(l->dl + 1);
            return 1;
        }
    }
    emit_row(l, cells, lens);
    return 0;
}

static const char *query_get_cb(void *ctx, const char *name)
{
    return ts_http_query(ctx, name);
}

/* Upper bound for names starting with prefix (prefix with its last byte incremented). */
static char *prefix_upper(struct ts_pool *pool, const char *prefix)
{
    size_t l = strlen(prefix);
    if (!l) return NULL;
    char *u = ts_pool_strdup(pool, prefix);
    while (l && (unsigned char)u[l - 1] == 0xff) u[--l] = '\0';
    if (!l) return NULL;
    u[l - 1] = (char)((unsigned char)u[l - 1] + 1);
    return u;
}

/* Walks the listing of the objects (cont != NULL) or containers of acct into l. */
static int walk_listing(struct ts_object_req *s, const char *cont, struct lister *l, struct ts_err *err)
{
    const struct ts_object_listing *lp = l->lp;
    struct ts_pool *pool = s->req->pool;
    const char *lo = lp->reverse ? (lp->end_marker ? lp->end_marker : "") : lp->marker; /* exclusive */
    const char *hi = lp->reverse ? (*lp->marker ? lp->marker : NULL) : lp->end_marker;  /* exclusive */
    const char *pre = lp->prefix;
    const char *pre_hi = prefix_upper(pool, pre);
    l->plen = strlen(pre);
    l->dl = lp->delimiter ? lp->delimiter[0] : 0;
    l->marker_len = strlen(lp->marker);
    char sql[512];
    int rc = 0;
    for (int guard = 0; l->n < lp->limit && guard < 100000; guard++) {
        struct ts_db_val args[10];
        int na = 0;
        size_t sl = 0;
        args[na++] = TS_DB_S(s->account);
        if (cont) {
            sl = (size_t)snprintf(sql, sizeof(sql), "%s",
                                  "SELECT name, size, etag, content_type, CAST(round(ts * 100000) AS BIGINT) FROM objects"
                                  " WHERE account = ? AND"
                                  " container = ? AND (delete_at IS NULL OR delete_at > ?)");
            args[na++] = TS_DB_S(cont);
            args[na++] = TS_DB_I((int64_t)ts_now());
        } else {
            sl = (size_t)snprintf(sql, sizeof(sql), "%s",
                                  "SELECT name, object_count, bytes_used, '', CAST(round(put_ts * 100000) AS BIGINT)"
                                  " FROM containers WHERE account = ?");
        }
        sl += (size_t)snprintf(sql + sl, sizeof(sql) - sl, " AND name > ?");
        args[na++] = TS_DB_S(lo);
        if (hi) {
            sl += (size_t)snprintf(sql + sl, sizeof(sql) - sl, " AND name < ?");
            args[na++] = TS_DB_S(hi);
        }
        if (*pre) {
            sl += (size_t)snprintf(sql + sl, sizeof(sql) - sl, " AND name >= ?");
            args[na++] = TS_DB_S(pre);
            if (pre_hi) {
                sl += (size_t)snprintf(sql + sl, sizeof(sql) - sl, " AND name < ?");
                args[na++] = TS_DB_S(pre_hi);
            }
        }
        snprintf(sql + sl, sizeof(sql) - sl, " ORDER BY name %s LIMIT ?", lp->reverse ? "DESC" : "ASC");
        args[na++] = TS_DB_I(lp->limit - l->n);
        rc = ts_db_each(s->svc->db, sql, args, na, list_row, l, err);
        if (rc < 0) break;
        if (rc == 0) break;          /* walked to the end: done */
        rc = 0;                      /* a subdir: go on past it */
        char *b = ts_pool_strdup(pool, l->next_bound);
        free(l->next_bound);
        l->next_bound = NULL;
        if (lp->reverse) hi = b;
        else lo = b;
    }
    free(l->next_bound);
    l->next_bound = NULL;
    return rc;
}

/* staticweb's entries (names and sizes) of cont. */
static int do_listing(struct ts_object_req *s, const char *cont, const struct ts_object_listing *lp,
                      struct entry **out, int *n_out, struct ts_err *err)
{
    struct lister l = {.lp = lp, .objects = true, .pool = s->req->pool};
    l.ents = ts_pool_alloc(s->req->pool, sizeof(*l.ents) * (size_t)(lp->limit > 0 ? lp->limit : 1));
    int rc = walk_listing(s, cont, &l, err);
    if (rc < 0) return rc;
    *out = l.ents;
    *n_out = l.n;
    return 0;
}

/* Renders the listing of cont's objects (or the account's containers when cont is NULL)
 * in lp's format straight into the response. */
static int send_listing(struct ts_object_req *s, const struct ts_object_listing *lp, const char *cont,
                        const char *owner_name, struct ts_err *err)
{
    struct lister l = {.lp = lp, .objects = cont != NULL, .pool = s->req->pool};
    struct out *o = &l.o;
    if (lp->fmt == TS_OBJECT_FMT_JSON) {
        OUT_LIT(o, "[");
    } else if (lp->fmt == TS_OBJECT_FMT_XML) {
        OUT_LIT(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        if (cont) OUT_LIT(o, "<container name=\"");
        else OUT_LIT(o, "<account name=\"");
        out_xml(o, owner_name, strlen(owner_name));
        OUT_LIT(o, "\">");
    }
    int rc = walk_listing(s, cont, &l, err);
    if (rc < 0) {
        free(o->p);
        return rc;
    }
    if (lp->fmt == TS_OBJECT_FMT_JSON) OUT_LIT(o, "]");
    else if (lp->fmt == TS_OBJECT_FMT_XML && cont) OUT_LIT(o, "</container>");
    else if (lp->fmt == TS_OBJECT_FMT_XML) OUT_LIT(o, "</account>");
    if (lp->fmt == TS_OBJECT_FMT_PLAIN && l.n == 0) {
        free(o->p);
        ts_http_resp_body(s->resp, 204, lp->content_type, "", 0);
        return 0;
    }
    ts_http_resp_body_take(s->resp, 200, lp->content_type, o->p, o->len);
    return 0;
}

/* ---- accounts -------------------------------------------------------------------------- */

static void account_headers(struct ts_object_req *s, json_t **meta_out)
{
    struct ts_db_res *r = NULL;
    int64_t cc = 0, oc = 0, bu = 0;
    if (ts_db_exec(s->svc->db,
                   "SELECT COUNT(*), COALESCE(SUM(object_count), 0), COALESCE(SUM(bytes_used), 0) FROM containers"
                   " WHERE account = ?",
                   TS_DB_ARGS(TS_DB_S(s->account)), &r, NULL) == 0 && r->nrows) {
        cc = ts_db_res_int(r, 0, 0, 0);
        oc = ts_db_res_int(r, 0, 1, 0);
        bu = ts_db_res_int(r, 0, 2, 0);
    }
    ts_db_res_free(r);
    r = NULL;
    double created = s->now;
    json_t *meta = NULL;
    if (ts_db_exec(s->svc->db, "SELECT created, meta FROM accounts WHERE name = ?", TS_DB_ARGS(TS_DB_S(s->account)), &r,
                   NULL) == 0 && r->nrows) {
        created = atof(ts_db_res_get(r, 0, 0));
        meta = json_loads(ts_db_res_get(r, 0, 1), 0, NULL);
    }
    ts_db_res_free(r);
    if (!meta) meta = json_object();
    ts_pool_cleanup(s->req->pool, (void (*)(void *))json_decref, meta);
    char t[32];
    ts_object_ts_text(created, t);
    ts_http_resp_headerf(s->resp, "X-Account-Container-Count", "%lld", (long long)cc);
    ts_http_resp_headerf(s->resp, "X-Account-Object-Count", "%lld", (long long)oc);
    ts_http_resp_headerf(s->resp, "X-Account-Bytes-Used", "%lld", (long long)bu);
    ts_http_resp_headerf(s->resp, "X-Account-Storage-Policy-Policy-0-Container-Count", "%lld", (long long)cc);
    ts_http_resp_headerf(s->resp, "X-Account-Storage-Policy-Policy-0-Object-Count", "%lld", (long long)oc);
    ts_http_resp_headerf(s->resp, "X-Account-Storage-Policy-Policy-0-Bytes-Used", "%lld", (long long)bu);
    ts_http_resp_header(s->resp, "X-Timestamp", t);
    ts_http_resp_header(s->resp, "X-Put-Timestamp", t);
    ts_object_meta_headers(s->resp, meta, s->owner);
    if (meta_out) *meta_out = meta;
}

int ts_object_account_meta(struct ts_object_svc *svc, struct ts_pool *pool, const char *acct, json_t **out)
{
    struct ts_db_res *r = NULL;
    json_t *meta = NULL;
    if (ts_db_exec(svc->db, "SELECT meta FROM accounts WHERE name = ?", TS_DB_ARGS(TS_DB_S(acct)), &r, NULL) == 0 &&
        r->nrows)
        meta = json_loads(ts_db_res_get(r, 0, 0), 0, NULL);
    ts_db_res_free(r);
    if (!meta) meta = json_object();
    ts_pool_cleanup(pool, (void (*)(void *))json_decref, meta);
    *out = meta;
    return 0;
}

static int account_get(struct ts_object_req *s, struct ts_err *err)
{
    int rc = ts_object_authorize(s, TS_OBJECT_OP_ACCOUNT_READ, err);
    if (rc < 0) return rc;
    bool head = strcmp(s->req->method, "HEAD") == 0;
    struct ts_object_listing lp;
    rc = ts_object_listing_parse(query_get_cb, s->req, ts_http_header(s->req, "Accept"), &lp, err);
    if (rc < 0) return rc;
    account_headers(s, NULL);
    if (head) {
        ts_http_resp_header(s->resp, "Content-Type", lp.content_type);
        ts_http_resp_no_body(s->resp, 204, 0);
        return 0;
    }
    return send_listing(s, &lp, NULL, s->account, err);
}

static int ensure_account(struct ts_object_svc *svc, const char *acct, double now, struct ts_err *err)
{
    return ts_db_exec(svc->db, "INSERT INTO accounts (name, created, meta) VALUES (?, ?, '{}') ON CONFLICT (name) DO NOTHING",
                      TS_DB_ARGS(TS_DB_S(acct), TS_DB_D(now)), NULL, err);
}

static int check_int_header(json_t *set, const char *name, struct ts_err *err)
{
    const char *v = json_string_value(json_object_get(set, name));
    int64_t x;
    if (v && *v && (ts_parse_int64(v, &x) < 0 || x < 0))
        return ts_err_set_full(err, TS_EINVAL, 400, NULL, "Invalid %s", name);
    return 0;
}

static int account_post(struct ts_object_req *s, struct ts_err *err)
{
    int rc = ts_object_authorize(s, TS_OBJECT_OP_ACCOUNT_WRITE, err);
    if (rc < 0) return rc;
    static const char *const extra[] = {"x-account-access-control", NULL};
    json_t *set;
    rc = ts_object_collect_meta(s, "account", extra, NULL, &set, err);
    if (rc < 0) return rc;
    rc = account_acl_clean(set, err);
    if (rc < 0) return rc;
    if (json_object_get(set, "X-Account-Meta-Quota-Bytes")) {
        const struct ts_auth *a = s->req->auth;
        if (!(a && a->authenticated && (a->is_admin || ts_auth_has_role(a, "ResellerAdmin"))))
            return ts_object_fail(err, TS_EFORBIDDEN, 403);
        rc = check_int_header(set, "X-Account-Meta-Quota-Bytes", err);
        if (rc < 0) return rc;
    }
    rc = ensure_account(s->svc, s->account, s->now, err);
    if (rc < 0) return rc;
    struct ts_db_conn *tx = NULL;
    struct ts_db_res *r = NULL;
    json_t *meta = NULL;
    rc = ts_db_begin(s->svc->db, &tx, err);
    if (rc < 0) return rc;
    rc = ts_db_tx_exec(tx, "SELECT meta FROM accounts WHERE name = ?", TS_DB_ARGS(TS_DB_S(s->account)), &r, err);
    if (rc < 0) goto out;
    meta = json_loads(r->nrows ? ts_db_res_get(r, 0, 0) : "{}", 0, NULL);
    if (!meta) meta = json_object();
    meta_apply(meta, set);
    char *text = json_dumps(meta, JSON_COMPACT);
    rc = ts_db_tx_exec(tx, "UPDATE accounts SET meta = ? WHERE name = ?", TS_DB_ARGS(TS_DB_S(text), TS_DB_S(s->account)),
                       NULL, err);
    free(text);
    if (rc < 0) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc < 0) goto out;
    ts_http_resp_body(s->resp, 204, "text/html; charset=UTF-8", "", 0);
out:
    if (tx) ts_db_rollback(tx);
    ts_db_res_free(r);
    json_decref(meta);
    return rc;
}

/* ---- containers ------------------------------------------------------------------------ */

static void container_headers(struct ts_object_req *s, const struct ts_object_container *c)
{
    char t[32], lmd[40];
    ts_object_ts_text(c->created, t);
    ts_http_resp_headerf(s->resp, "X-Container-Object-Count", "%lld", (long long)c->object_count);
    ts_http_resp_headerf(s->resp, "X-Container-Bytes-Used", "%lld", (long long)c->bytes_used);
    ts_http_resp_header(s->resp, "X-Timestamp", t);
    ts_object_ts_text(c->put_ts, t);
    ts_http_resp_header(s->resp, "X-Put-Timestamp", t);
    ts_object_http_date((int64_t)ceil(c->put_ts), lmd);
    ts_http_resp_header(s->resp, "Last-Modified", lmd);
    ts_http_resp_header(s->resp, "X-Storage-Policy", "Policy-0");
    ts_object_meta_headers(s->resp, c->meta, s->owner);
    ts_object_cors(s, c->meta);
}

/* staticweb: an HTML listing of the container for browsers */
static int web_listing(struct ts_object_req *s, const struct ts_object_container *c, struct ts_err *err)
{
    struct ts_object_listing lp = {.prefix = ts_http_query(s->req, "prefix") ? ts_http_query(s->req, "prefix") : "",
                                   .delimiter = "/", .marker = "", .limit = TS_OBJECT_LISTING_LIMIT};
    struct entry *ents;
    int n;
    int rc = do_listing(s, s->container, &lp, &ents, &n, err);
    if (rc < 0) return rc;
    struct ts_buf b;
    ts_buf_init(&b, 0);
    ts_buf_appends(&b, "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01 Transitional//EN\" "
                       "\"http://www.w3.org/TR/html4/loose.dtd\">\n<html>\n <head>\n  <title>Listing of /");
    xml_escape(&b, s->container);
    ts_buf_appends(&b, "/");
    xml_escape(&b, lp.prefix);
    ts_buf_appends(&b, "</title>\n");
    const char *css = json_string_value(json_object_get(c->meta, "X-Container-Meta-Web-Listings-Css"));
    if (css && *css) {
        ts_buf_appends(&b, "  <link rel=\"stylesheet\" type=\"text/css\" href=\"");
        xml_escape(&b, css);
        ts_buf_appends(&b, "\" />\n");
    }
    ts_buf_appends(&b, " </head>\n <body>\n  <h1 id=\"title\">Listing of /");
    xml_escape(&b, s->container);
    ts_buf_appends(&b, "/");
    xml_escape(&b, lp.prefix);
    ts_buf_appends(&b, "</h1>\n  <table id=\"listing\">\n");
    for (int i = 0; i < n; i++) {
        const char *rel = ents[i].name + strlen(lp.prefix);
        ts_buf_printf(&b, "   <tr class=\"%s\"><td class=\"colname\"><a href=\"", ents[i].subdir ? "subdir" : "item");
        ts_buf_appends(&b, ts_url_encode(s->req->pool, rel, true));
        ts_buf_appends(&b, "\">");
        xml_escape(&b, rel);
        ts_buf_printf(&b, "</a></td><td class=\"colsize\">%lld</td></tr>\n", (long long)ents[i].a);
    }
    ts_buf_appends(&b, "  </table>\n </body>\n</html>\n");
    ts_http_resp_body(s->resp, 200, "text/html; charset=UTF-8", b.data, b.len);
    ts_buf_free(&b);
    return 0;
}

static int container_get(struct ts_object_req *s, struct ts_err *err)
{
    int rc = ts_object_authorize(s, TS_OBJECT_OP_CONTAINER_READ, err);
    if (rc < 0) return rc;
    struct ts_object_container c;
    rc = ts_object_db_container(s->svc, s->req->pool, s->account, s->container, &c, err);
    if (rc < 0) return rc;
    bool anon = !(s->req->auth && s->req->auth->authenticated);
    const char *wm = ts_http_header(s->req, "X-Web-Mode");
    bool web = anon || (wm && (strcasecmp(wm, "true") == 0 || strcasecmp(wm, "yes") == 0));
    if (web && strcmp(s->req->method, "GET") == 0) {
        const char *index = json_string_value(json_object_get(c.meta, "X-Container-Meta-Web-Index"));
        if (index && *index) {
            struct ts_object_row row;
            struct ts_err e2;
            if (ts_object_db_object(s->svc, s->req->pool, s->account, s->container, index, &row, &e2) == 0) {
                s->object = index;
                return ts_object_object(s, err);
            }
        }
        const char *wl = json_string_value(json_object_get(c.meta, "X-Container-Meta-Web-Listings"));
        bool listings = false;
        if (wl) ts_parse_bool(wl, &listings);
        if (listings) return web_listing(s, &c, err);
    }
    struct ts_object_listing lp;
    rc = ts_object_listing_parse(query_get_cb, s->req, ts_http_header(s->req, "Accept"), &lp, err);
    if (rc < 0) return rc;
    container_headers(s, &c);
    if (strcmp(s->req->method, "HEAD") == 0) {
        ts_http_resp_header(s->resp, "Content-Type", lp.content_type);
        ts_http_resp_no_body(s->resp, 204, 0);
        return 0;
    }
    return send_listing(s, &lp, s->container, s->container, err);
}

static const char *const container_extra[] = {"x-container-read", "x-container-write", "x-versions-location",
                                              "x-history-location", "x-container-sync-to", "x-container-sync-key",
                                              NULL};
static const char *const container_rm_extra[] = {
    "x-remove-container-read", "X-Container-Read", "x-remove-container-write", "X-Container-Write",
    "x-remove-versions-location", "X-Versions-Location", "x-remove-history-location", "X-History-Location",
    NULL, NULL};

static int container_meta_check(struct ts_object_req *s, json_t *set, struct ts_err *err)
{
    int rc = check_int_header(set, "X-Container-Meta-Quota-Bytes", err);
    if (rc == 0) rc = check_int_header(set, "X-Container-Meta-Quota-Count", err);
    if (rc < 0) return rc;
    const char *vl = json_string_value(json_object_get(set, "X-Versions-Location"));
    const char *hl = json_string_value(json_object_get(set, "X-History-Location"));
    if (vl && *vl && hl && *hl)
        return ts_err_set_full(err, TS_EINVAL, 400, NULL,
                               "Only one of X-Versions-Location or X-History-Location may be specified");
    for (int i = 0; i < 2; i++) {
        const char *v = i ? hl : vl;
        if (v && *v) {
            char *d = ts_url_decode(s->req->pool, v, strlen(v));
            if (!d || strchr(d, '/'))
                return ts_err_set_full(err, TS_EPRECOND, 412, NULL, "Container name cannot contain '/'");
            json_object_set_new(set, i ? "X-History-Location" : "X-Versions-Location", json_string(d));
            /* setting one clears the other */
            json_object_set_new(set, i ? "X-Versions-Location" : "X-History-Location", json_string(""));
        }
    }
    return 0;
}

static int container_put(struct ts_object_req *s, struct ts_err *err)
{
    int rc = ts_object_authorize(s, TS_OBJECT_OP_CONTAINER_WRITE, err);
    if (rc < 0) return rc;
    json_t *set;
    rc = ts_object_collect_meta(s, "container", container_extra, container_rm_extra, &set, err);
    if (rc < 0) return rc;
    rc = container_meta_check(s, set, err);
    if (rc < 0) return rc;
    rc = ensure_account(s->svc, s->account, s->now, err);
    if (rc < 0) return rc;
    struct ts_db_conn *tx = NULL;
    struct ts_db_res *r = NULL;
    json_t *meta = NULL;
    int status = 201;
    rc = ts_db_begin(s->svc->db, &tx, err);
    if (rc < 0) return rc;
    rc = ts_db_tx_exec(tx, "SELECT meta FROM containers WHERE account = ? AND name = ?",
                       TS_DB_ARGS(TS_DB_S(s->account), TS_DB_S(s->container)), &r, err);
    if (rc < 0) goto out;
    if (r->nrows) {
        status = 202;
        meta = json_loads(ts_db_res_get(r, 0, 0), 0, NULL);
    } else {
        struct ts_db_res *cnt = NULL;
        rc = ts_db_tx_exec(tx, "SELECT COUNT(*) FROM containers WHERE account = ?", TS_DB_ARGS(TS_DB_S(s->account)),
                           &cnt, err);
        int64_t ncont = rc == 0 ? ts_db_res_int(cnt, 0, 0, 0) : 0;
        ts_db_res_free(cnt);
        if (rc < 0) goto out;
        (void)ncont;
    }
    if (!meta) meta = json_object();
    meta_apply(meta, set);
    char *text = json_dumps(meta, JSON_COMPACT);
    if (status == 201)
        rc = ts_db_tx_exec(tx, "INSERT INTO containers (account, name, created, put_ts, meta) VALUES (?, ?, ?, ?, ?)",
                           TS_DB_ARGS(TS_DB_S(s->account), TS_DB_S(s->container), TS_DB_D(s->now), TS_DB_D(s->now),
                                      TS_DB_S(text)),
                           NULL, err);
    else
        rc = ts_db_tx_exec(tx, "UPDATE containers SET meta = ?, put_ts = ? WHERE account = ? AND name = ?",
                           TS_DB_ARGS(TS_DB_S(text), TS_DB_D(s->now), TS_DB_S(s->account), TS_DB_S(s->container)), NULL,
                           err);
    free(text);
    if (rc < 0) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc < 0) goto out;
    if (status == 201) ts_object_usage_changed(s->svc, s->account);
    ts_http_resp_body(s->resp, status, "text/html; charset=UTF-8", "", 0);
out:
    if (tx) ts_db_rollback(tx);
    ts_db_res_free(r);
    json_decref(meta);
    return rc;
}

static int container_post(struct ts_object_req *s, struct ts_err *err)
{
    int rc = ts_object_authorize(s, TS_OBJECT_OP_CONTAINER_WRITE, err);
    if (rc < 0) return rc;
    json_t *set;
    rc = ts_object_collect_meta(s, "container", container_extra, container_rm_extra, &set, err);
    if (rc < 0) return rc;
    rc = container_meta_check(s, set, err);
    if (rc < 0) return rc;
    struct ts_db_conn *tx = NULL;
    struct ts_db_res *r = NULL;
    json_t *meta = NULL;
    rc = ts_db_begin(s->svc->db, &tx, err);
    if (rc < 0) return rc;
    rc = ts_db_tx_exec(tx, "SELECT meta FROM containers WHERE account = ? AND name = ?",
                       TS_DB_ARGS(TS_DB_S(s->account), TS_DB_S(s->container)), &r, err);
    if (rc < 0) goto out;
    if (!r->nrows) {
        rc = ts_object_fail(err, TS_ENOTFOUND, 404);
        goto out;
    }
    meta = json_loads(ts_db_res_get(r, 0, 0), 0, NULL);
    if (!meta) meta = json_object();
    meta_apply(meta, set);
    char *text = json_dumps(meta, JSON_COMPACT);
    rc = ts_db_tx_exec(tx, "UPDATE containers SET meta = ? WHERE account = ? AND name = ?",
                       TS_DB_ARGS(TS_DB_S(text), TS_DB_S(s->account), TS_DB_S(s->container)), NULL, err);
    free(text);
    if (rc < 0) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc < 0) goto out;
    ts_http_resp_body(s->resp, 204, "text/html; charset=UTF-8", "", 0);
out:
    if (tx) ts_db_rollback(tx);
    ts_db_res_free(r);
    json_decref(meta);
    return rc;
}

static int container_delete(struct ts_object_req *s, struct ts_err *err)
{
    int rc = ts_object_authorize(s, TS_OBJECT_OP_CONTAINER_WRITE, err);
    if (rc < 0) return rc;
    ts_object_db_reap(s->svc, 1000);
    struct ts_db_res *r = NULL;
    rc = ts_db_exec(s->svc->db,
                    "DELETE FROM containers WHERE account = ? AND name = ? AND object_count = 0 RETURNING name",
                    TS_DB_ARGS(TS_DB_S(s->account), TS_DB_S(s->container)), &r, err);
    if (rc < 0) return rc;
    int deleted = r->nrows;
    ts_db_res_free(r);
    if (deleted) {
        ts_object_usage_changed(s->svc, s->account);
        ts_http_resp_body(s->resp, 204, "text/html; charset=UTF-8", "", 0);
        return 0;
    }
    struct ts_object_container c;
    rc = ts_object_db_container(s->svc, s->req->pool, s->account, s->container, &c, err);
    if (rc < 0) return rc;
    return ts_object_fail(err, TS_ECONFLICT, 409);
}

/* ---- dispatch ---------------------------------------------------------------------------- */

static void trans_id(struct ts_object_req *s)
{
    char id[48];
    trans_id_text(s->now, id);
    ts_http_resp_header(s->resp, "X-Trans-Id", id);
}

static int h_swift(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_object_req *s = ts_pool_alloc(req->pool, sizeof(*s));
    s->req = req;
    s->resp = resp;
    s->svc = req->svc;
    s->now = ts_now();
    trans_id(s);
    int rc = parse_path(s, err);
    if (rc < 0) return rc;
    const char *m = req->method;
    if (strcmp(m, "OPTIONS") == 0) return options_preflight(s, err);
    if (s->object) return ts_object_object(s, err);
    if (ts_http_query(req, "bulk-delete") && (strcmp(m, "POST") == 0 || strcmp(m, "DELETE") == 0) && !s->container)
        return ts_object_bulk_delete(s, err);
    if (ts_http_query(req, "extract-archive") && strcmp(m, "PUT") == 0) return ts_object_extract(s, err);
    if (s->container) {
        if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0) return container_get(s, err);
        if (strcmp(m, "PUT") == 0) return container_put(s, err);
        if (strcmp(m, "POST") == 0) {
            const char *ct = ts_http_header(req, "Content-Type");
            if (ct && strncasecmp(ct, "multipart/form-data", 19) == 0) return ts_object_formpost(s, err);
            if (ts_http_query(req, "bulk-delete")) return ts_object_bulk_delete(s, err);
            return container_post(s, err);
        }
        if (strcmp(m, "DELETE") == 0) return container_delete(s, err);
        ts_http_resp_header(resp, "Allow", "HEAD, GET, PUT, POST, OPTIONS, DELETE");
        return ts_object_fail(err, TS_EMETHOD, 405);
    }
    if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0) return account_get(s, err);
    if (strcmp(m, "POST") == 0) return account_post(s, err);
    ts_http_resp_header(resp, "Allow", "HEAD, GET, POST, OPTIONS");
    return ts_object_fail(err, TS_EMETHOD, 405);
}

const struct ts_http_route ts_object_routes[] = {
    {"GET", "/info", h_info, TS_ROUTE_PUBLIC},
    {"GET", "/healthcheck", h_healthcheck, TS_ROUTE_PUBLIC},
    {"GET", "/crossdomain.xml", h_crossdomain, TS_ROUTE_PUBLIC},
    {"*", "/v1/{account}", h_swift, TS_ROUTE_STREAM | TS_ROUTE_OPTIONAL_AUTH},
    {"*", "/v1/{account}/{container}", h_swift, TS_ROUTE_STREAM | TS_ROUTE_OPTIONAL_AUTH},
    {"*", "/v1/{account}/{container}/{object*}", h_swift, TS_ROUTE_STREAM | TS_ROUTE_OPTIONAL_AUTH},
    {NULL, NULL, NULL, 0},
};
