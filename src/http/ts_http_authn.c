/*
 * ts_http_authn.c: the token middleware's validator, what keystonemiddleware's auth_token
 * does for each OpenStack service: GET {identity}/v3/auth/tokens with the token in
 * X-Auth-Token and X-Subject-Token, parse the Keystone token body into struct ts_auth,
 * and cache the result (bounded hash table behind one mutex; positive entries for
 * cache_seconds but never past the token's expiry, negative ones for a few seconds).
 * Revocations arrive on the bus (topic "identity_revocations") and drop cache entries. The
 * identity service sends what Keystone's revocation events hold: {"token"}, {"audit_id"}
 * (the token and every token rescoped from it), {"user_id"}, {"project_id"} (a project or
 * domain disabled or deleted), {"user_id","project_id"} (a grant removed), or {"all": true}.
 */
#include "http/ts_http_internal.h"
#include "bus/ts_bus.h"
#include "json/ts_json.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD "authn"
#define NBUCKETS 4096
#define MAX_ENTRIES 10000
#define NEGATIVE_SECONDS 2.0

struct entry {
    struct entry *next;
    uint64_t hash;
    char *token;
    bool negative;
    double until;            /* wall clock */
    struct ts_auth auth;
    char audit_ids[2][32];   /* the token's audit id and its chain's (rescoped tokens) */
};

struct ts_http_authn {
    char *identity_url;
    int cache_seconds;
    pthread_mutex_t lock;
    struct entry *buckets[NBUCKETS];
    int count;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void entry_free(struct entry *e)
{
    free(e->token);
    free(e);
}

/* Drops entries matching pred (NULL = all). Caller holds the lock. */
static void drop_where(struct ts_http_authn *a, bool (*pred)(const struct entry *, const void *, double),
                       const void *arg, double now)
{
    for (int i = 0; i < NBUCKETS; i++) {
        struct entry **pp = &a->buckets[i];
        while (*pp) {
            struct entry *e = *pp;
            if (!pred || pred(e, arg, now)) {
                *pp = e->next;
                entry_free(e);
                a->count--;
            } else {
                pp = &e->next;
            }
        }
    }
}

static bool is_expired(const struct entry *e, const void *arg, double now)
{
    (void)arg;
    return e->until <= now;
}

static bool has_user(const struct entry *e, const void *arg, double now)
{
    (void)now;
    return !e->negative && strcmp(e->auth.user_id, (const char *)arg) == 0;
}

/* A revocation event as the identity service publishes it: every field given must match. */
struct event {
    const char *audit_id, *user_id, *project_id;
};

static bool matches_event(const struct entry *e, const void *arg, double now)
{
    (void)now;
    const struct event *ev = arg;
    if (e->negative) return false;
    if (ev->audit_id && strcmp(e->audit_ids[0], ev->audit_id) && strcmp(e->audit_ids[1], ev->audit_id)) return false;
    if (ev->user_id && strcmp(e->auth.user_id, ev->user_id)) return false;
    if (ev->project_id && strcmp(e->auth.project_id, ev->project_id) && strcmp(e->auth.domain_id, ev->project_id))
        return false;
    return true;
}

static int on_revocation(void *ctx, const char *method, json_t *args, json_t **reply, struct ts_err *err)
{
    (void)method, (void)reply, (void)err;
    struct ts_http_authn *a = ctx;
    if (!json_is_object(args)) return 0;
    const char *token = ts_json_str(args, "token", NULL);
    struct event ev = {ts_json_str(args, "audit_id", NULL), ts_json_str(args, "user_id", NULL),
                       ts_json_str(args, "project_id", NULL)};
    if (token) ts_http_authn_forget(a, token, NULL);
    if (ev.audit_id || ev.user_id || ev.project_id) {
        pthread_mutex_lock(&a->lock);
        drop_where(a, matches_event, &ev, 0);
        pthread_mutex_unlock(&a->lock);
    }
    if (json_is_true(json_object_get(args, "all"))) ts_http_authn_forget(a, NULL, NULL);
    return 0;
}

struct ts_http_authn *ts_http_authn_new(const char *identity_url, int cache_seconds, struct ts_bus *bus)
{
    struct ts_http_authn *a = ts_calloc(1, sizeof(*a));
    a->identity_url = ts_strdup(identity_url ? identity_url : "http://127.0.0.1:5000");
    size_t n = strlen(a->identity_url);
    while (n && a->identity_url[n - 1] == '/') a->identity_url[--n] = '\0';
    a->cache_seconds = cache_seconds >= 0 ? cache_seconds : 300;
    pthread_mutex_init(&a->lock, NULL);
    if (bus) {
        struct ts_err err;
        ts_err_clear(&err);
        if (ts_bus_subscribe(bus, "identity_revocations", on_revocation, a, &err) < 0)
            ts_warn(MOD, "cannot subscribe to revocations: %s", err.msg);
    }
    return a;
}

void ts_http_authn_free(struct ts_http_authn *a)
{
    if (!a) return;
    drop_where(a, NULL, NULL, 0);
    pthread_mutex_destroy(&a->lock);
    free(a->identity_url);
    free(a);
}

void ts_http_authn_forget(struct ts_http_authn *a, const char *token, const char *user_id)
{
    if (!a) return;
    pthread_mutex_lock(&a->lock);
    if (token) {
        uint64_t h = hash_str(token);
        struct entry **pp = &a->buckets[h % NBUCKETS];
        while (*pp) {
            struct entry *e = *pp;
            if (e->hash == h && strcmp(e->token, token) == 0) {
                *pp = e->next;
                entry_free(e);
                a->count--;
            } else {
                pp = &e->next;
            }
        }
    } else if (user_id) {
        drop_where(a, has_user, user_id, 0);
    } else {
        drop_where(a, NULL, NULL, 0);
    }
    pthread_mutex_unlock(&a->lock);
}

/* Returns 1 (hit, positive), 0 (hit, negative) or -1 (miss). */
static int cache_get(struct ts_http_authn *a, const char *token, struct ts_auth *out)
{
    uint64_t h = hash_str(token);
    double now = ts_now();
    int res = -1;
    pthread_mutex_lock(&a->lock);
    for (struct entry *e = a->buckets[h % NBUCKETS]; e; e = e->next) {
        if (e->hash != h || strcmp(e->token, token) != 0) continue;
        if (e->until > now) {
            res = e->negative ? 0 : 1;
            if (!e->negative) *out = e->auth;
        }
        break;
    }
    pthread_mutex_unlock(&a->lock);
    return res;
}

static void cache_put(struct ts_http_authn *a, const char *token, const struct ts_auth *auth, double until,
                      const char audit_ids[2][32])
{
    uint64_t h = hash_str(token);
    double now = ts_now();
    if (until <= now) return;
    pthread_mutex_lock(&a->lock);
    struct entry **pp = &a->buckets[h % NBUCKETS];
    while (*pp) {
        struct entry *e = *pp;
        if (e->hash == h && strcmp(e->token, token) == 0) {
            *pp = e->next;
            entry_free(e);
            a->count--;
        } else {
            pp = &e->next;
        }
    }
    if (a->count >= MAX_ENTRIES) drop_where(a, is_expired, NULL, now);
    if (a->count >= MAX_ENTRIES) drop_where(a, NULL, NULL, now);
    struct entry *e = ts_calloc(1, sizeof(*e));
    e->hash = h;
    e->token = ts_strdup(token);
    e->negative = auth == NULL;
    e->until = until;
    if (auth) e->auth = *auth;
    if (audit_ids) memcpy(e->audit_ids, audit_ids, sizeof(e->audit_ids));
    e->next = a->buckets[h % NBUCKETS];
    a->buckets[h % NBUCKETS] = e;
    a->count++;
    pthread_mutex_unlock(&a->lock);
}

static void copy_str(char *dst, size_t cap, const char *s)
{
    snprintf(dst, cap, "%s", s ? s : "");
}

static const char *nested_str(const json_t *obj, const char *k1, const char *k2)
{
    json_t *o = json_object_get(obj, k1);
    if (!json_is_object(o)) return NULL;
    json_t *v = json_object_get(o, k2);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Parses a Keystone v3 token body ({"token": {...}}) into out. */
static int parse_token(const char *body, size_t len, struct ts_auth *out, char audit_ids[2][32], struct ts_err *err)
{
    json_t *root = NULL;
    int rc = ts_json_parse(body, len, &root, err);
    if (rc < 0) return rc;
    rc = -TS_EUNAUTH;
    json_t *tok = json_object_get(root, "token");
    if (!json_is_object(tok)) {
        ts_err_set(err, TS_EUNAUTH, "The identity service returned no token.");
        goto out;
    }
    memset(out, 0, sizeof(*out));
    json_t *user = json_object_get(tok, "user");
    if (!json_is_object(user)) {
        ts_err_set(err, TS_EUNAUTH, "The token has no user.");
        goto out;
    }
    copy_str(out->user_id, sizeof(out->user_id), ts_json_str(user, "id", ""));
    copy_str(out->user_name, sizeof(out->user_name), ts_json_str(user, "name", ""));
    copy_str(out->user_domain_id, sizeof(out->user_domain_id), nested_str(user, "domain", "id"));
    json_t *proj = json_object_get(tok, "project");
    if (json_is_object(proj)) {
        copy_str(out->project_id, sizeof(out->project_id), ts_json_str(proj, "id", ""));
        copy_str(out->project_name, sizeof(out->project_name), ts_json_str(proj, "name", ""));
        copy_str(out->project_domain_id, sizeof(out->project_domain_id), nested_str(proj, "domain", "id"));
    }
    copy_str(out->domain_id, sizeof(out->domain_id), nested_str(tok, "domain", "id"));
    json_t *sys = json_object_get(tok, "system");
    out->system_scope = json_is_object(sys) && json_is_true(json_object_get(sys, "all"));
    json_t *roles = json_object_get(tok, "roles");
    size_t i;
    json_t *r;
    if (json_is_array(roles)) {
        json_array_foreach(roles, i, r) {
            const char *name = ts_json_str(r, "name", NULL);
            if (!name || out->n_roles >= TS_AUTH_MAX_ROLES) continue;
            copy_str(out->roles[out->n_roles], sizeof(out->roles[0]), name);
            out->n_roles++;
        }
    }
    json_t *audits = json_object_get(tok, "audit_ids");
    memset(audit_ids, 0, 2 * 32);
    for (size_t k = 0; k < 2 && k < json_array_size(audits); k++)
        copy_str(audit_ids[k], 32, json_string_value(json_array_get(audits, k)));
    const char *exp = ts_json_str(tok, "expires_at", NULL);
    double t = 0;
    if (exp && ts_time_parse(exp, &t) == 0) out->expires_at = t;
    else out->expires_at = ts_now() + 3600;
    out->is_admin = ts_auth_has_role(out, "admin");
    out->is_reader_only = ts_auth_has_role(out, "reader") && !ts_auth_has_role(out, "member") && !out->is_admin;
    out->authenticated = true;
    rc = 0;
out:
    json_decref(root);
    return rc;
}

int ts_http_authn_validate(void *ctx, const char *token, struct ts_auth *out, struct ts_err *err)
{
    struct ts_http_authn *a = ctx;
    if (!token || !token[0] || strlen(token) >= sizeof(out->token) || strpbrk(token, "\r\n"))
        return ts_err_set(err, TS_EUNAUTH, "The request you have made requires authentication.");
    int hit = cache_get(a, token, out);
    if (hit == 1) return 0;
    if (hit == 0) return ts_err_set(err, TS_EUNAUTH, "The request you have made requires authentication.");

    char *url = ts_asprintf("%s/v3/auth/tokens", a->identity_url);
    char *h1 = ts_asprintf("X-Auth-Token: %s", token);
    char *h2 = ts_asprintf("X-Subject-Token: %s", token);
    const char *hdrs[] = {h1, h2, "Accept: application/json", NULL};
    struct ts_http_client_resp resp;
    int rc = ts_http_client_request("GET", url, hdrs, NULL, 0, 10000, &resp, err);
    if (rc < 0) {
        ts_warn(MOD, "cannot reach the identity service at %s: %s", url, err ? err->msg : "");
        rc = ts_err_set(err, TS_EUNAVAIL, "The identity service is unavailable.");
        goto out;
    }
    if (resp.status == 200) {
        struct ts_auth auth;
        char audit_ids[2][32];
        rc = parse_token(resp.body ? resp.body : "", resp.body_len, &auth, audit_ids, err);
        if (rc == 0) {
            snprintf(auth.token, sizeof(auth.token), "%s", token);
            double until = ts_now() + a->cache_seconds;
            if (auth.expires_at < until) until = auth.expires_at;
            cache_put(a, token, &auth, until, (const char(*)[32])audit_ids);
            *out = auth;
        } else {
            rc = ts_err_set(err, TS_EUNAUTH, "The request you have made requires authentication.");
        }
    } else if (resp.status == 401 || resp.status == 403 || resp.status == 404) {
        cache_put(a, token, NULL, ts_now() + NEGATIVE_SECONDS, NULL);
        rc = ts_err_set(err, TS_EUNAUTH, "The request you have made requires authentication.");
    } else {
        ts_warn(MOD, "identity service answered %d to a token validation", resp.status);
        rc = ts_err_set(err, TS_EUNAVAIL, "The identity service is unavailable.");
    }
    ts_http_client_resp_free(&resp);
out:
    free(url);
    free(h1);
    free(h2);
    return rc;
}
