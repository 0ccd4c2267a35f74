/*
 * identity_auth.c: /v3/auth/... — token issue (password, token, application credential;
 * project, domain, system scope or unscoped), validation, revocation, the catalog and the
 * projects/domains/system a token may be scoped to. Tokens are Keystone-format Fernet
 * tokens; what a token grants is recomputed from the database at validation, so role
 * and user changes apply at once, and revocation events (by audit id, user or project)
 * kill tokens issued before them.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "identity/identity_int.h"
#include "json/ts_json.h"

#define MSG_UNAUTH "The request you have made requires authentication."

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* ---- keys: reloaded when the repository changes (tinystack token rotate) --------------- */
static struct ts_fernet_keys *keys_get(struct ident *id)
{
    double now = ts_mono();
    pthread_rwlock_rdlock(&id->keys_lock);
    bool fresh = id->keys && now - id->keys_loaded_at < 1.0;
    pthread_rwlock_unlock(&id->keys_lock);
    if (!fresh) {
        struct ts_fernet_keys *k = NULL;
        if (ts_fernet_load(id->key_dir, &k, NULL) == 0) {
            pthread_rwlock_wrlock(&id->keys_lock);
            bool first = id->keys == NULL;
            ts_fernet_keys_free(id->keys);
            id->keys = k;
            id->keys_loaded_at = now;
            pthread_rwlock_unlock(&id->keys_lock);
            if (!first) id_changed(id); /* a removed key kills its tokens */
        }
    }
    pthread_rwlock_rdlock(&id->keys_lock);
    return id->keys; /* caller unlocks with keys_put */
}

static void keys_put(struct ident *id)
{
    pthread_rwlock_unlock(&id->keys_lock);
}

/* ---- validation cache ----------------------------------------------------------------------
 * What a token grants is recomputed from the database (user, scope, roles, revocations), which
 * costs a few queries. The answer is cached by token string and served while the database
 * generation is unchanged: every write handler bumps it after writing (ts_identity.c W()), a
 * key reload too. Entries also end at the token's expiry and after cache_seconds, which bounds
 * staleness when another process (a second identity server on PostgreSQL) writes. */
#define VC_BUCKETS 4096
#define VC_MAX 20000

struct vc_entry {
    struct vc_entry *next;
    uint64_t hash;
    char *token;
    unsigned long gen;
    double until;
    uint64_t issued;
    struct ts_auth auth;
    char *body[2]; /* token bodies: [0] without catalog, [1] with; NULL until asked */
};

static uint64_t vc_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void vc_entry_free(struct vc_entry *e)
{
    free(e->token);
    free(e->body[0]);
    free(e->body[1]);
    free(e);
}

void id_changed(struct ident *id)
{
    __atomic_add_fetch(&id->gen, 1, __ATOMIC_SEQ_CST);
}

static unsigned long gen_now(struct ident *id)
{
    return __atomic_load_n(&id->gen, __ATOMIC_SEQ_CST);
}

/* Drops every entry; caller holds vc_lock (or is the only user). */
static void vc_clear(struct ident *id)
{
    for (int i = 0; id->vc && i < VC_BUCKETS; i++) {
        struct vc_entry *e = id->vc[i];
        while (e) {
            struct vc_entry *n = e->next;
            vc_entry_free(e);
            e = n;
        }
        id->vc[i] = NULL;
    }
    id->vc_count = 0;
}

void id_vc_free(struct ident *id)
{
    vc_clear(id);
    free(id->vc);
    id->vc = NULL;
}

/* Finds a live entry; copies what is asked (auth, and/or the body with or without catalog,
 * *body = malloc'd copy or NULL if not cached yet). Returns true on a hit. */
static bool vc_get(struct ident *id, const char *token, struct ts_auth *auth, uint64_t *issued, int body_kind,
                   char **body)
{
    if (id->cache_seconds <= 0 || !id->vc) return false;
    uint64_t h = vc_hash(token);
    unsigned long gen = gen_now(id);
    double now = ts_now();
    bool hit = false;
    pthread_mutex_lock(&id->vc_lock);
    for (struct vc_entry *e = id->vc[h % VC_BUCKETS]; e; e = e->next) {
        if (e->hash != h || strcmp(e->token, token)) continue;
        if (e->gen == gen && e->until > now) {
            hit = true;
            if (auth) *auth = e->auth;
            if (issued) *issued = e->issued;
            if (body) *body = e->body[body_kind] ? ts_strdup(e->body[body_kind]) : NULL;
        }
        break;
    }
    pthread_mutex_unlock(&id->vc_lock);
    return hit;
}

/* Stores (or completes) the entry for token, computed at generation gen. */
static void vc_put(struct ident *id, const char *token, unsigned long gen, uint64_t issued, const struct ts_auth *auth,
                   int body_kind, const char *body)
{
    if (id->cache_seconds <= 0) return;
    uint64_t h = vc_hash(token);
    double now = ts_now(), until = now + id->cache_seconds;
    if (auth->expires_at < until) until = auth->expires_at;
    if (until <= now) return;
    pthread_mutex_lock(&id->vc_lock);
    if (!id->vc) id->vc = ts_calloc(VC_BUCKETS, sizeof(*id->vc));
    struct vc_entry **pp = &id->vc[h % VC_BUCKETS], *e = NULL;
    for (; *pp; pp = &(*pp)->next) {
        if ((*pp)->hash == h && !strcmp((*pp)->token, token)) {
            e = *pp;
            break;
        }
    }
    if (e && e->gen != gen) { /* stale: start over */
        free(e->body[0]);
        free(e->body[1]);
        e->body[0] = e->body[1] = NULL;
    }
    if (!e) {
        if (id->vc_count >= VC_MAX) { /* full: drop everything (cheap, rare) */
            vc_clear(id);
            pp = &id->vc[h % VC_BUCKETS];
        }
        e = ts_calloc(1, sizeof(*e));
        e->hash = h;
        e->token = ts_strdup(token);
        e->next = *pp;
        *pp = e;
        id->vc_count++;
    }
    e->gen = gen;
    e->until = until;
    e->issued = issued;
    e->auth = *auth;
    if (body && !e->body[body_kind]) e->body[body_kind] = ts_strdup(body);
    pthread_mutex_unlock(&id->vc_lock);
}

/* ---- revocation ---------------------------------------------------------------------------- */
void id_revoke(struct ident *id, const char *audit_id, const char *user_id, const char *project_id)
{
    char rid[33];
    ts_uuid_hex(rid);
    double now = ts_now();
    ts_db_exec(id->db,
               "INSERT INTO revocations (id, audit_id, user_id, project_id, issued_before, revoked_at) "
               "VALUES (?, ?, ?, ?, ?, ?)",
               TS_DB_ARGS(TS_DB_S(rid), TS_DB_S(audit_id), TS_DB_S(user_id), TS_DB_S(project_id), TS_DB_D(now),
                          TS_DB_D(now)),
               NULL, NULL);
    /* expired events are useless: tokens live at most token_ttl */
    ts_db_exec(id->db, "DELETE FROM revocations WHERE revoked_at < ?", TS_DB_ARGS(TS_DB_D(now - id->token_ttl - 60)),
               NULL, NULL);
    if (id->bus) {
        json_t *a = json_object();
        if (audit_id) json_object_set_new(a, "audit_id", json_string(audit_id));
        if (user_id) json_object_set_new(a, "user_id", json_string(user_id));
        if (project_id) json_object_set_new(a, "project_id", json_string(project_id));
        ts_bus_fanout(id->bus, "identity_revocations", "revoke", a, NULL);
    }
}

static bool is_revoked(struct ident *id, const struct ts_token_payload *p, uint64_t issued)
{
    struct ts_db_res *res = NULL;
    const char *project = p->scope == TS_SCOPE_PROJECT || p->scope == TS_SCOPE_DOMAIN ? p->scope_id : "";
    /* An event matches when every field it sets matches the token (Keystone's revoke
     * model): {audit_id}, {user_id}, {project_id} or {user_id, project_id} (a grant removed). */
    int rc = ts_db_exec(id->db,
                        "SELECT 1 FROM revocations WHERE issued_before >= ? AND "
                        "(audit_id IS NULL OR audit_id IN (?, ?)) AND (user_id IS NULL OR user_id = ?) AND "
                        "(project_id IS NULL OR project_id = ?) LIMIT 1",
                        TS_DB_ARGS(TS_DB_D((double)issued), TS_DB_S(p->audit_ids[0]),
                                   TS_DB_S(p->audit_ids[1][0] ? p->audit_ids[1] : p->audit_ids[0]),
                                   TS_DB_S(p->user_id), TS_DB_S(project)),
                        &res, NULL);
    if (rc < 0) return true; /* fail closed */
    bool revoked = res->nrows > 0;
    ts_db_res_free(res);
    return revoked;
}

/* A token issued in the same second as a revocation event of its user or project would
 * look revoked (Fernet time stamps have one-second resolution): wait for the next second. */
static void wait_past_revocation(struct ident *id, const char *user_id, const char *project_id)
{
    struct ts_db_res *res = NULL;
    if (ts_db_exec(id->db, "SELECT MAX(issued_before) FROM revocations WHERE user_id = ? OR project_id = ?",
                   TS_DB_ARGS(TS_DB_S(user_id), TS_DB_S(project_id ? project_id : "")), &res, NULL) < 0)
        return;
    const char *v = ts_db_res_get(res, 0, 0);
    double last = v ? strtod(v, NULL) : 0;
    ts_db_res_free(res);
    double now = ts_now();
    if (last > 0 && floor(now) <= last) {
        double wait = floor(last) + 1.0 - now + 0.001;
        if (wait > 0 && wait < 1.5) usleep((useconds_t)(wait * 1e6));
    }
}

/* ---- catalog ------------------------------------------------------------------------------- */
/* Replaces %(project_id)s / %(tenant_id)s; NULL if the URL needs a project and none is given. */
static char *endpoint_url(const char *url, const char *project_id)
{
    const char *markers[] = {"%(project_id)s", "$(project_id)s", "%(tenant_id)s", "$(tenant_id)s"};
    for (size_t i = 0; i < 4; i++) {
        const char *m = strstr(url, markers[i]);
        if (!m) continue;
        if (!project_id) return NULL;
        return ts_asprintf("%.*s%s%s", (int)(m - url), url, project_id, m + strlen(markers[i]));
    }
    return ts_strdup(url);
}

json_t *id_catalog(struct ident *id, const char *project_id)
{
    struct ts_db_res *res = NULL;
    json_t *cat = json_array();
    if (id_q(id,
             "SELECT s.id, s.type, s.name, e.id, e.interface, e.url, e.region_id FROM services s "
             "JOIN endpoints e ON e.service_id = s.id WHERE s.enabled = 1 AND e.enabled = 1 ORDER BY s.id, e.id",
             TS_DB_NOARGS, &res, NULL) < 0)
        return cat;
    json_t *cur = NULL;
    const char *cur_id = NULL;
    for (int r = 0; r < res->nrows; r++) {
        const char *sid = ts_db_res_get(res, r, 0);
        if (!cur_id || strcmp(cur_id, sid)) {
            cur = json_pack("{s:s,s:s,s:s,s:[]}", "id", sid, "type", ts_db_res_get(res, r, 1), "name",
                            ts_db_res_get(res, r, 2) ? ts_db_res_get(res, r, 2) : "", "endpoints");
            json_array_append_new(cat, cur);
            cur_id = sid;
        }
        char *url = endpoint_url(ts_db_res_get(res, r, 5), project_id);
        if (!url) continue;
        const char *region = ts_db_res_get(res, r, 6);
        json_t *ep = json_pack("{s:s,s:s,s:s}", "id", ts_db_res_get(res, r, 3), "interface", ts_db_res_get(res, r, 4),
                               "url", url);
        json_object_set_new(ep, "region", region ? json_string(region) : json_null());
        json_object_set_new(ep, "region_id", region ? json_string(region) : json_null());
        json_array_append_new(json_object_get(cur, "endpoints"), ep);
        free(url);
    }
    ts_db_res_free(res);
    return cat;
}

/* ---- lookups ---------------------------------------------------------------------------------- */
/* Loads a user with its domain: {"id","name","domain_id","enabled","password",...,"domain_name",
 * "domain_enabled"}. by_name uses name + domain (id or name). */
static json_t *user_lookup(struct ident *id, const char *user_id, const char *name, const char *domain_id,
                           const char *domain_name)
{
    struct ts_db_res *res = NULL;
    int rc;
    const char *cols = "SELECT u.id, u.name, u.domain_id, u.enabled, u.password, u.failed_auth_count, "
                       "u.failed_auth_at, u.default_project_id, d.name AS domain_name, d.enabled AS domain_enabled "
                       "FROM users u JOIN domains d ON d.id = u.domain_id ";
    char sql[512];
    if (user_id) {
        snprintf(sql, sizeof(sql), "%sWHERE u.id = ?", cols);
        rc = ts_db_exec(id->db, sql, TS_DB_ARGS(TS_DB_S(user_id)), &res, NULL);
    } else if (domain_id) {
        snprintf(sql, sizeof(sql), "%sWHERE u.name = ? AND u.domain_id = ?", cols);
        rc = ts_db_exec(id->db, sql, TS_DB_ARGS(TS_DB_S(name), TS_DB_S(domain_id)), &res, NULL);
    } else {
        snprintf(sql, sizeof(sql), "%sWHERE u.name = ? AND d.name = ?", cols);
        rc = ts_db_exec(id->db, sql, TS_DB_ARGS(TS_DB_S(name), TS_DB_S(domain_name)), &res, NULL);
    }
    if (rc < 0) return NULL;
    json_t *u = res->nrows ? id_row_json(res, 0) : NULL;
    ts_db_res_free(res);
    return u;
}

static json_t *project_lookup(struct ident *id, const char *project_id, const char *name, const char *domain_id,
                              const char *domain_name)
{
    struct ts_db_res *res = NULL;
    int rc;
    const char *cols = "SELECT p.id, p.name, p.domain_id, p.enabled, d.name AS domain_name, d.enabled AS domain_enabled "
                       "FROM projects p JOIN domains d ON d.id = p.domain_id ";
    char sql[512];
    if (project_id) {
        snprintf(sql, sizeof(sql), "%sWHERE p.id = ?", cols);
        rc = ts_db_exec(id->db, sql, TS_DB_ARGS(TS_DB_S(project_id)), &res, NULL);
    } else if (domain_id) {
        snprintf(sql, sizeof(sql), "%sWHERE p.name = ? AND p.domain_id = ?", cols);
        rc = ts_db_exec(id->db, sql, TS_DB_ARGS(TS_DB_S(name), TS_DB_S(domain_id)), &res, NULL);
    } else {
        snprintf(sql, sizeof(sql), "%sWHERE p.name = ? AND d.name = ?", cols);
        rc = ts_db_exec(id->db, sql, TS_DB_ARGS(TS_DB_S(name), TS_DB_S(domain_name)), &res, NULL);
    }
    if (rc < 0) return NULL;
    json_t *p = res->nrows ? id_row_json(res, 0) : NULL;
    ts_db_res_free(res);
    return p;
}

static json_t *domain_lookup(struct ident *id, const char *domain_id, const char *name)
{
    struct ts_db_res *res = NULL;
    int rc = domain_id ? ts_db_exec(id->db, "SELECT id, name, enabled FROM domains WHERE id = ?",
                                    TS_DB_ARGS(TS_DB_S(domain_id)), &res, NULL)
                       : ts_db_exec(id->db, "SELECT id, name, enabled FROM domains WHERE name = ?",
                                    TS_DB_ARGS(TS_DB_S(name)), &res, NULL);
    if (rc < 0) return NULL;
    json_t *d = res->nrows ? id_row_json(res, 0) : NULL;
    ts_db_res_free(res);
    return d;
}

static bool enabled(const json_t *o, const char *key)
{
    const char *v = jstr(o, key);
    return v && strcmp(v, "0") != 0;
}

/* ---- the token body --------------------------------------------------------------------------- */
/* Resolves what a payload grants now and renders Keystone's token body. -TS_EUNAUTH /
 * -TS_ENOTFOUND (caller picks) when the user, scope or roles are gone. */
static int token_body(struct ident *id, const struct ts_token_payload *p, uint64_t issued, bool with_catalog,
                      json_t **out, struct ts_auth *auth, struct ts_err *err)
{
    int rc = -TS_EUNAUTH;
    json_t *user = user_lookup(id, p->user_id, NULL, NULL, NULL), *scope = NULL, *roles = NULL;
    json_t *tok = NULL;
    if (!user || !enabled(user, "enabled") || !enabled(user, "domain_enabled")) {
        ts_err_set(err, TS_EUNAUTH, "Failed to validate token: user is gone or disabled.");
        goto out;
    }
    tok = json_object();
    json_t *methods = json_array();
    if (p->methods & TS_METHOD_PASSWORD) json_array_append_new(methods, json_string("password"));
    if (p->methods & TS_METHOD_TOKEN) json_array_append_new(methods, json_string("token"));
    if (p->methods & TS_METHOD_APPCRED) json_array_append_new(methods, json_string("application_credential"));
    json_object_set_new(tok, "methods", methods);
    json_object_set_new(tok, "user", json_pack("{s:s,s:s,s:{s:s,s:s},s:n}", "id", jstr(user, "id"), "name",
                                               jstr(user, "name"), "domain", "id", jstr(user, "domain_id"), "name",
                                               jstr(user, "domain_name"), "password_expires_at"));
    json_t *audit = json_array();
    json_array_append_new(audit, json_string(p->audit_ids[0]));
    if (p->audit_ids[1][0]) json_array_append_new(audit, json_string(p->audit_ids[1]));
    json_object_set_new(tok, "audit_ids", audit);
    char ts[32];
    ts_time_iso(p->expires_at, 6, ts);
    json_object_set_new(tok, "expires_at", json_string(ts));
    ts_time_iso((double)issued, 6, ts);
    json_object_set_new(tok, "issued_at", json_string(ts));

    const char *project_id = NULL;
    if (p->scope == TS_SCOPE_PROJECT) {
        scope = project_lookup(id, p->scope_id, NULL, NULL, NULL);
        if (!scope || !enabled(scope, "enabled") || !enabled(scope, "domain_enabled")) {
            ts_err_set(err, TS_EUNAUTH, "Failed to validate token: project is gone or disabled.");
            goto out;
        }
        project_id = p->scope_id;
        roles = id_effective_roles(id, p->user_id, "project", p->scope_id, err);
        if (roles && p->app_cred_id[0]) {
            /* an application credential grants its roles that the user still has */
            struct ts_db_res *res = NULL;
            json_t *granted = NULL;
            if (ts_db_exec(id->db, "SELECT roles FROM app_creds WHERE id = ?", TS_DB_ARGS(TS_DB_S(p->app_cred_id)),
                           &res, NULL) == 0 &&
                res->nrows) {
                json_t *ids = json_loads(ts_db_res_get(res, 0, 0), 0, NULL);
                granted = id_expand_implied(id, ids);
                json_decref(ids);
            }
            ts_db_res_free(res);
            json_t *both = json_array();
            size_t i, j;
            json_t *a, *b;
            json_array_foreach(granted, i, a) json_array_foreach(roles, j, b) if (json_equal(a, b))
                json_array_append(both, a);
            json_decref(granted);
            json_decref(roles);
            roles = both;
            json_object_set_new(tok, "application_credential",
                                json_pack("{s:s,s:b}", "id", p->app_cred_id, "restricted", 1));
        }
        json_object_set_new(tok, "project", json_pack("{s:s,s:s,s:{s:s,s:s}}", "id", jstr(scope, "id"), "name",
                                                      jstr(scope, "name"), "domain", "id", jstr(scope, "domain_id"),
                                                      "name", jstr(scope, "domain_name")));
        json_object_set_new(tok, "is_domain", json_false());
    } else if (p->scope == TS_SCOPE_DOMAIN) {
        scope = domain_lookup(id, p->scope_id, NULL);
        if (!scope || !enabled(scope, "enabled")) {
            ts_err_set(err, TS_EUNAUTH, "Failed to validate token: domain is gone or disabled.");
            goto out;
        }
        roles = id_effective_roles(id, p->user_id, "domain", p->scope_id, err);
        json_object_set_new(tok, "domain", json_pack("{s:s,s:s}", "id", jstr(scope, "id"), "name", jstr(scope, "name")));
    } else if (p->scope == TS_SCOPE_SYSTEM) {
        roles = id_effective_roles(id, p->user_id, "system", "system", err);
        json_object_set_new(tok, "system", json_pack("{s:b}", "all", 1));
    }
    if (p->scope != TS_SCOPE_UNSCOPED) {
        if (!roles || json_array_size(roles) == 0) {
            ts_err_set(err, TS_EUNAUTH, "User %s has no access to the requested scope.", p->user_id);
            goto out;
        }
        json_object_set(tok, "roles", roles);
        if (with_catalog) json_object_set_new(tok, "catalog", id_catalog(id, project_id));
    }
    if (auth) {
        memset(auth, 0, sizeof(*auth));
        auth->authenticated = true;
        snprintf(auth->user_id, sizeof(auth->user_id), "%s", jstr(user, "id"));
        snprintf(auth->user_name, sizeof(auth->user_name), "%s", jstr(user, "name"));
        snprintf(auth->user_domain_id, sizeof(auth->user_domain_id), "%s", jstr(user, "domain_id"));
        if (p->scope == TS_SCOPE_PROJECT) {
            snprintf(auth->project_id, sizeof(auth->project_id), "%s", jstr(scope, "id"));
            snprintf(auth->project_name, sizeof(auth->project_name), "%s", jstr(scope, "name"));
            snprintf(auth->project_domain_id, sizeof(auth->project_domain_id), "%s", jstr(scope, "domain_id"));
        } else if (p->scope == TS_SCOPE_DOMAIN) {
            snprintf(auth->domain_id, sizeof(auth->domain_id), "%s", jstr(scope, "id"));
        } else if (p->scope == TS_SCOPE_SYSTEM) {
            auth->system_scope = true;
        }
        size_t i;
        json_t *r;
        bool member = false;
        json_array_foreach(roles, i, r) {
            if (auth->n_roles == TS_AUTH_MAX_ROLES) break;
            const char *name = jstr(r, "name");
            snprintf(auth->roles[auth->n_roles++], sizeof(auth->roles[0]), "%s", name);
            if (!strcmp(name, "admin")) auth->is_admin = true;
            if (!strcmp(name, "member") || !strcmp(name, "admin")) member = true;
        }
        auth->is_reader_only = !member && ts_auth_has_role(auth, "reader");
        auth->expires_at = p->expires_at;
    }
    *out = json_pack("{s:o}", "token", tok);
    tok = NULL;
    rc = 0;
out:
    json_decref(tok);
    json_decref(user);
    json_decref(scope);
    json_decref(roles);
    return rc;
}

/* Decrypts and checks a token, revocation included. */
static int token_check(struct ident *id, const char *token, struct ts_token_payload *p, uint64_t *issued,
                       bool allow_expired, struct ts_err *err)
{
    if (!token || !*token || strlen(token) > 1024) return ts_err_set(err, TS_EUNAUTH, MSG_UNAUTH);
    struct ts_fernet_keys *k = keys_get(id);
    int rc = k ? ts_token_decode(k, token, p, issued, allow_expired, NULL) : -TS_EUNAUTH;
    keys_put(id);
    if (rc < 0) return ts_err_set(err, TS_EUNAUTH, MSG_UNAUTH);
    if (is_revoked(id, p, *issued)) return ts_err_set(err, TS_EUNAUTH, "The token has been revoked.");
    return 0;
}

void id_token_app_cred(struct ident *id, const char *token, char out[65])
{
    struct ts_token_payload p;
    uint64_t issued = 0;
    out[0] = 0;
    if (token_check(id, token, &p, &issued, false, NULL) == 0) snprintf(out, 65, "%s", p.app_cred_id);
}

int id_validate(void *ctx, const char *token, struct ts_auth *out, struct ts_err *err)
{
    struct ident *id = ctx;
    struct ts_token_payload p;
    uint64_t issued = 0;
    if (token && vc_get(id, token, out, NULL, 0, NULL)) return 0;
    unsigned long gen = gen_now(id);
    int rc = token_check(id, token, &p, &issued, false, err);
    if (rc < 0) return rc;
    json_t *body = NULL;
    rc = token_body(id, &p, issued, false, &body, out, err);
    if (rc < 0) {
        json_decref(body);
        return ts_err_set(err, TS_EUNAUTH, MSG_UNAUTH);
    }
    snprintf(out->token, sizeof(out->token), "%s", token);
    char *text = json_dumps(body, JSON_COMPACT);
    vc_put(id, token, gen, issued, out, 0, text);
    free(text);
    json_decref(body);
    return 0;
}

/* ---- issuing ---------------------------------------------------------------------------------- */
/* Identifies a user from {"id"} or {"name", "domain": {"id"|"name"}}. */
static json_t *user_from_spec(struct ident *id, const json_t *u, struct ts_err *err)
{
    if (!json_is_object(u)) {
        ts_err_set(err, TS_EINVAL, "Expecting to find user in password - the server could not comply with the "
                                   "request since it is either malformed or otherwise incorrect. The client is "
                                   "assumed to be in error.");
        return NULL;
    }
    const char *uid = jstr(u, "id"), *name = jstr(u, "name");
    const json_t *dom = json_object_get(u, "domain");
    if (!uid && !name) {
        ts_err_set(err, TS_EINVAL, "Expecting to find id or name in user - the server could not comply with the "
                                   "request since it is either malformed or otherwise incorrect. The client is "
                                   "assumed to be in error.");
        return NULL;
    }
    if (!uid && !json_is_object(dom)) {
        ts_err_set(err, TS_EINVAL, "Expecting to find domain in user - the server could not comply with the request "
                                   "since it is either malformed or otherwise incorrect. The client is assumed to be "
                                   "in error.");
        return NULL;
    }
    json_t *user = user_lookup(id, uid, name, uid ? NULL : jstr(dom, "id"), uid ? NULL : jstr(dom, "name"));
    if (!user) ts_err_set(err, TS_EUNAUTH, MSG_UNAUTH);
    return user;
}

/* Password method with lockout accounting. */
static int auth_password(struct ident *id, const json_t *pw, char *user_id, struct ts_err *err)
{
    json_t *user = user_from_spec(id, json_object_get(pw, "user"), err);
    if (!user) return -err->code;
    int rc = -TS_EUNAUTH;
    const char *password = jstr(json_object_get(pw, "user"), "password");
    const char *uid = jstr(user, "id");
    double now = ts_now();
    int64_t failures = 0;
    if (jstr(user, "failed_auth_count")) ts_parse_int64(jstr(user, "failed_auth_count"), &failures);
    double last_fail = jstr(user, "failed_auth_at") ? strtod(jstr(user, "failed_auth_at"), NULL) : 0;
    if (id->lockout_attempts > 0 && failures >= id->lockout_attempts && now - last_fail < id->lockout_duration) {
        ts_err_set(err, TS_EUNAUTH, "The account is locked for user: %s.", uid);
        goto out;
    }
    if (!password || !jstr(user, "password") || !ts_password_verify(password, jstr(user, "password"))) {
        if (id->lockout_attempts > 0) {
            if (now - last_fail >= id->lockout_duration && failures >= id->lockout_attempts) failures = 0;
            ts_db_exec(id->db, "UPDATE users SET failed_auth_count = ?, failed_auth_at = ? WHERE id = ?",
                       TS_DB_ARGS(TS_DB_I(failures + 1), TS_DB_D(now), TS_DB_S(uid)), NULL, NULL);
        }
        ts_err_set(err, TS_EUNAUTH, MSG_UNAUTH);
        goto out;
    }
    if (!enabled(user, "enabled") || !enabled(user, "domain_enabled")) {
        ts_err_set(err, TS_EUNAUTH, MSG_UNAUTH);
        goto out;
    }
    if (failures > 0)
        ts_db_exec(id->db, "UPDATE users SET failed_auth_count = 0 WHERE id = ?", TS_DB_ARGS(TS_DB_S(uid)), NULL, NULL);
    snprintf(user_id, 65, "%s", uid);
    rc = 0;
out:
    json_decref(user);
    return rc;
}

/* Resolves the requested scope into payload p (project, domain, system) or leaves it
 * unscoped. */
static int resolve_scope(struct ident *id, const json_t *scope, struct ts_token_payload *p, struct ts_err *err)
{
    if (!scope || (json_is_string(scope) && !strcmp(json_string_value(scope), "unscoped"))) return 0;
    if (!json_is_object(scope)) return ts_err_set(err, TS_EINVAL, "Invalid input for field 'scope'.");
    const json_t *proj = json_object_get(scope, "project"), *dom = json_object_get(scope, "domain");
    const json_t *sys = json_object_get(scope, "system");
    int n = (proj != NULL) + (dom != NULL) + (sys != NULL);
    if (n > 1) return ts_err_set(err, TS_EINVAL, "Specifying more than one scope is not allowed.");
    if (json_object_get(scope, "OS-TRUST:trust")) return ts_err_set(err, TS_EFORBIDDEN, "Trusts are not supported.");
    if (proj) {
        if (!json_is_object(proj)) return ts_err_set(err, TS_EINVAL, "Invalid input for field 'scope.project'.");
        const char *pid = jstr(proj, "id"), *name = jstr(proj, "name");
        const json_t *pd = json_object_get(proj, "domain");
        if (!pid && !name) return ts_err_set(err, TS_EINVAL, "Expecting to find id or name in project.");
        if (!pid && !json_is_object(pd)) return ts_err_set(err, TS_EINVAL, "Expecting to find domain in project.");
        json_t *pr = project_lookup(id, pid, name, pid ? NULL : jstr(pd, "id"), pid ? NULL : jstr(pd, "name"));
        if (!pr) return ts_err_set(err, TS_EUNAUTH, "Could not find project: %s.", pid ? pid : name);
        if (!enabled(pr, "enabled") || !enabled(pr, "domain_enabled")) {
            json_decref(pr);
            return ts_err_set(err, TS_EUNAUTH, "Project is disabled: %s.", pid ? pid : name);
        }
        p->scope = TS_SCOPE_PROJECT;
        snprintf(p->scope_id, sizeof(p->scope_id), "%s", jstr(pr, "id"));
        json_decref(pr);
    } else if (dom) {
        if (!json_is_object(dom)) return ts_err_set(err, TS_EINVAL, "Invalid input for field 'scope.domain'.");
        json_t *d = domain_lookup(id, jstr(dom, "id"), jstr(dom, "name"));
        if (!d) return ts_err_set(err, TS_EUNAUTH, "Could not find domain.");
        if (!enabled(d, "enabled")) {
            json_decref(d);
            return ts_err_set(err, TS_EUNAUTH, "Domain is disabled.");
        }
        p->scope = TS_SCOPE_DOMAIN;
        snprintf(p->scope_id, sizeof(p->scope_id), "%s", jstr(d, "id"));
        json_decref(d);
    } else if (sys) {
        if (!json_is_object(sys) || !json_is_true(json_object_get(sys, "all")))
            return ts_err_set(err, TS_EINVAL, "Invalid input for field 'scope.system'.");
        p->scope = TS_SCOPE_SYSTEM;
        snprintf(p->scope_id, sizeof(p->scope_id), "all");
    }
    return 0;
}

int id_auth_tokens_post(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    json_t *body;
    int rc = ts_http_json_body(req, &body, err);
    if (rc < 0) return rc;
    const json_t *auth = json_object_get(body, "auth");
    const json_t *identity = json_object_get(auth, "identity");
    const json_t *methods = json_object_get(identity, "methods");
    if (!json_is_object(auth) || !json_is_object(identity))
        return ts_err_set(err, TS_EINVAL, "Expecting to find identity in auth - the server could not comply with the "
                                          "request since it is either malformed or otherwise incorrect. The client "
                                          "is assumed to be in error.");
    if (!json_is_array(methods) || json_array_size(methods) == 0)
        return ts_err_set(err, TS_EINVAL, "Expecting to find methods in identity - the server could not comply with "
                                          "the request since it is either malformed or otherwise incorrect. The "
                                          "client is assumed to be in error.");
    struct ts_token_payload p;
    memset(&p, 0, sizeof(p));
    ts_token_audit_id(p.audit_ids[0]);
    p.expires_at = floor(ts_now()) + id->token_ttl;
    const json_t *scope = json_object_get(auth, "scope");
    bool scoped_by_method = false;
    size_t i;
    json_t *m;
    json_array_foreach(methods, i, m) {
        const char *name = json_string_value(m);
        if (!name) return ts_err_set(err, TS_EINVAL, "Invalid input for field 'methods'.");
        const json_t *spec = json_object_get(identity, name);
        if (!strcmp(name, "password")) {
            if (!json_is_object(spec)) return ts_err_set(err, TS_EINVAL, "Expecting to find password in identity.");
            if ((rc = auth_password(id, spec, p.user_id, err)) < 0) return rc;
            p.methods |= TS_METHOD_PASSWORD;
        } else if (!strcmp(name, "token")) {
            const char *tid = jstr(spec, "id");
            if (!tid) return ts_err_set(err, TS_EINVAL, "Expecting to find id in token.");
            struct ts_token_payload parent;
            uint64_t issued;
            if ((rc = token_check(id, tid, &parent, &issued, false, err)) < 0) return rc;
            if (parent.app_cred_id[0])
                return ts_err_set(err, TS_EFORBIDDEN, "Application credentials cannot request a scope.");
            if (parent.scope != TS_SCOPE_UNSCOPED && scope && !ts_conf_get_bool(id->conf, "identity", "allow_rescope_scoped_token", true))
                return ts_err_set(err, TS_EFORBIDDEN, "Rescoping scoped tokens is disabled.");
            if (p.user_id[0] && strcmp(p.user_id, parent.user_id)) return ts_err_set(err, TS_EUNAUTH, MSG_UNAUTH);
            snprintf(p.user_id, sizeof(p.user_id), "%s", parent.user_id);
            p.methods |= parent.methods | TS_METHOD_TOKEN;
            p.expires_at = parent.expires_at;
            snprintf(p.audit_ids[1], sizeof(p.audit_ids[1]), "%s",
                     parent.audit_ids[1][0] ? parent.audit_ids[1] : parent.audit_ids[0]);
            if (!scope) {
                /* re-issuing a token without scope keeps the parent's scope */
                p.scope = parent.scope;
                snprintf(p.scope_id, sizeof(p.scope_id), "%s", parent.scope_id);
            }
        } else if (!strcmp(name, "application_credential")) {
            if (!json_is_object(spec)) return ts_err_set(err, TS_EINVAL, "Expecting to find application_credential.");
            json_t *roles = NULL;
            char project_id[65];
            if ((rc = id_appcred_authenticate(id, spec, p.user_id, sizeof(p.user_id), project_id, sizeof(project_id),
                                              p.app_cred_id, &roles, err)) < 0)
                return rc;
            json_decref(roles);
            if (scope) return ts_err_set(err, TS_EUNAUTH, "Application credentials cannot request a scope.");
            p.methods |= TS_METHOD_APPCRED;
            p.scope = TS_SCOPE_PROJECT;
            snprintf(p.scope_id, sizeof(p.scope_id), "%s", project_id);
            scoped_by_method = true;
        } else {
            return ts_err_set(err, TS_EUNAUTH, "Attempted to authenticate with an unsupported method.");
        }
    }
    if (!p.user_id[0]) return ts_err_set(err, TS_EUNAUTH, MSG_UNAUTH);
    if (!scoped_by_method && scope && (rc = resolve_scope(id, scope, &p, err)) < 0) return rc;
    if (!scope && p.scope == TS_SCOPE_UNSCOPED && !scoped_by_method) {
        /* no scope asked: the user's default project, if they have a role there */
        json_t *user = user_lookup(id, p.user_id, NULL, NULL, NULL);
        const char *dp = user ? jstr(user, "default_project_id") : NULL;
        if (dp) {
            json_t *roles = id_effective_roles(id, p.user_id, "project", dp, NULL);
            json_t *pr = project_lookup(id, dp, NULL, NULL, NULL);
            if (roles && json_array_size(roles) && pr && enabled(pr, "enabled")) {
                p.scope = TS_SCOPE_PROJECT;
                snprintf(p.scope_id, sizeof(p.scope_id), "%s", dp);
            }
            json_decref(roles);
            json_decref(pr);
        }
        json_decref(user);
    }
    wait_past_revocation(id, p.user_id, p.scope == TS_SCOPE_PROJECT ? p.scope_id : NULL);
    struct ts_fernet_keys *k = keys_get(id);
    char *token = k ? ts_token_issue(k, &p) : NULL;
    keys_put(id);
    if (!token) return ts_err_set(err, TS_EIO, "Could not issue a token.");
    json_t *out = NULL;
    bool nocatalog = ts_http_query(req, "nocatalog") != NULL;
    rc = token_body(id, &p, (uint64_t)ts_now(), !nocatalog, &out, NULL, err);
    if (rc < 0) {
        free(token);
        if (p.scope != TS_SCOPE_UNSCOPED)
            return ts_err_set(err, TS_EUNAUTH, "User %s has no access to %s %s.", p.user_id,
                              p.scope == TS_SCOPE_PROJECT ? "project" : p.scope == TS_SCOPE_DOMAIN ? "domain" : "system",
                              p.scope_id);
        return rc;
    }
    ts_http_resp_header(resp, "X-Subject-Token", token);
    ts_http_resp_json(resp, 201, out);
    free(token);
    return 0;
}

int id_auth_tokens_get(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    const char *subject = ts_http_header(req, "X-Subject-Token");
    if (!subject) return ts_err_set(err, TS_EINVAL, "X-Subject-Token header is required.");
    bool allow_expired = false;
    const char *ae = ts_http_query(req, "allow_expired");
    if (ae) ts_parse_bool(ae, &allow_expired);
    int kind = ts_http_query(req, "nocatalog") == NULL ? 1 : 0;
    struct ts_auth cached;
    char *text = NULL;
    if (!allow_expired && vc_get(id, subject, &cached, NULL, kind, &text) && text) {
        if (strcmp(cached.user_id, req->auth->user_id) && !id_is_admin(req) && !ts_auth_has_role(req->auth, "service")) {
            free(text);
            return id_forbid(err, "identity:validate_token");
        }
        ts_http_resp_header(resp, "X-Subject-Token", subject);
        if (!strcmp(req->method, "HEAD"))
            ts_http_resp_no_body(resp, 200, 0);
        else
            ts_http_resp_body(resp, 200, "application/json", text, strlen(text));
        free(text);
        return 0;
    }
    unsigned long gen = gen_now(id);
    struct ts_token_payload p;
    uint64_t issued = 0;
    struct ts_err e2 = {0};
    if (token_check(id, subject, &p, &issued, allow_expired, &e2) < 0)
        return ts_err_set(err, TS_ENOTFOUND, "Failed to validate token");
    /* a caller may validate its own tokens (Keystone's token_subject rule); others' need
     * admin or service */
    if (strcmp(p.user_id, req->auth->user_id) && !id_is_admin(req) && !ts_auth_has_role(req->auth, "service"))
        return id_forbid(err, "identity:validate_token");
    json_t *out = NULL;
    struct ts_auth sub_auth;
    if (token_body(id, &p, issued, kind == 1, &out, &sub_auth, &e2) < 0)
        return ts_err_set(err, TS_ENOTFOUND, "Failed to validate token");
    if (!allow_expired) {
        snprintf(sub_auth.token, sizeof(sub_auth.token), "%s", subject);
        char *t = json_dumps(out, JSON_COMPACT);
        vc_put(id, subject, gen, issued, &sub_auth, kind, t);
        free(t);
    }
    ts_http_resp_header(resp, "X-Subject-Token", subject);
    if (!strcmp(req->method, "HEAD")) {
        json_decref(out);
        ts_http_resp_no_body(resp, 200, 0);
    } else {
        ts_http_resp_json(resp, 200, out);
    }
    return 0;
}

int id_auth_tokens_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    const char *subject = ts_http_header(req, "X-Subject-Token");
    if (!subject) return ts_err_set(err, TS_EINVAL, "X-Subject-Token header is required.");
    struct ts_token_payload p;
    uint64_t issued = 0;
    if (token_check(id, subject, &p, &issued, false, NULL) < 0)
        return ts_err_set(err, TS_ENOTFOUND, "Failed to validate token");
    if (strcmp(p.user_id, req->auth->user_id) && !id_is_admin(req) && !ts_auth_has_role(req->auth, "service"))
        return id_forbid(err, "identity:revoke_token");
    id_revoke(id, p.audit_ids[0], NULL, NULL);
    if (id->bus) {
        json_t *a = json_pack("{s:s}", "token", subject);
        ts_bus_fanout(id->bus, "identity_revocations", "revoke", a, NULL);
    }
    ts_http_resp_no_body(resp, 204, 0);
    return 0;
}

int id_auth_catalog(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    if (!req->auth->project_id[0] && !req->auth->domain_id[0] && !req->auth->system_scope)
        return ts_err_set(err, TS_EFORBIDDEN, "A project-scoped token is required to produce a service catalog.");
    json_t *out = json_pack("{s:o,s:o}", "catalog", id_catalog(id, req->auth->project_id[0] ? req->auth->project_id : NULL),
                            "links", id_collection_links(id, req));
    ts_http_resp_json(resp, 200, out);
    return 0;
}

/* Projects a user may scope to (direct, group, inherited), enabled only. */
static int user_projects_json(struct ident *id, const char *user_id, json_t **out, struct ts_err *err)
{
    struct ts_db_res *res = NULL;
    int rc = id_q(
        id,
        "WITH RECURSIVE actors(id) AS (SELECT CAST(? AS TEXT) UNION SELECT group_id FROM user_groups WHERE user_id = ?), "
        "inh(id) AS (SELECT target_id FROM assignments WHERE inherited = 1 AND actor_id IN (SELECT id FROM actors)), "
        "sub(id) AS (SELECT id FROM projects WHERE parent_id IN (SELECT id FROM inh) "
        "            UNION SELECT p.id FROM projects p JOIN sub s ON p.parent_id = s.id) "
        "SELECT p.id, p.name, p.domain_id, p.description, p.enabled, p.parent_id, p.is_domain FROM projects p "
        "WHERE p.id IN (SELECT target_id FROM assignments WHERE inherited = 0 AND type IN ('UserProject','GroupProject') "
        "               AND actor_id IN (SELECT id FROM actors)) OR p.id IN (SELECT id FROM sub) ORDER BY p.name",
        TS_DB_ARGS(TS_DB_S(user_id), TS_DB_S(user_id)), &res, err);
    if (rc < 0) return rc;
    json_t *arr = json_array();
    for (int r = 0; r < res->nrows; r++) {
        json_t *o = id_row_json(res, r);
        json_object_set_new(o, "enabled", json_boolean(strcmp(ts_db_res_get(res, r, 4), "0") != 0));
        json_object_set_new(o, "is_domain", json_boolean(ts_db_res_get(res, r, 6) && strcmp(ts_db_res_get(res, r, 6), "0")));
        json_object_set_new(o, "links", id_links(id, "projects/%s", ts_db_res_get(res, r, 0)));
        json_array_append_new(arr, o);
    }
    ts_db_res_free(res);
    *out = arr;
    return 0;
}

int id_auth_projects(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    json_t *arr = NULL;
    int rc = user_projects_json(id, req->auth->user_id, &arr, err);
    if (rc < 0) return rc;
    /* /v3/auth/projects only lists enabled projects */
    json_t *en = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (json_is_true(json_object_get(v, "enabled"))) json_array_append(en, v);
    json_decref(arr);
    ts_http_resp_json(resp, 200, json_pack("{s:o,s:o}", "projects", en, "links", id_collection_links(id, req)));
    return 0;
}

int id_user_projects(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    const char *uid = ts_http_param(req, "id");
    if (strcmp(uid, req->auth->user_id) && !id_is_admin(req)) return id_forbid(err, "identity:list_user_projects");
    json_t *u = user_lookup(id, uid, NULL, NULL, NULL);
    if (!u) return ts_err_set(err, TS_ENOTFOUND, "Could not find user: %s.", uid);
    json_decref(u);
    json_t *arr = NULL;
    int rc = user_projects_json(id, uid, &arr, err);
    if (rc < 0) return rc;
    ts_http_resp_json(resp, 200, json_pack("{s:o,s:o}", "projects", arr, "links", id_collection_links(id, req)));
    return 0;
}

int id_auth_domains(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    struct ts_db_res *res = NULL;
    const char *uid = req->auth->user_id;
    int rc = id_q(id,
                  "SELECT id, name, description, enabled FROM domains WHERE enabled = 1 AND id IN "
                  "(SELECT target_id FROM assignments WHERE type IN ('UserDomain','GroupDomain') AND inherited = 0 AND "
                  " (actor_id = ? OR actor_id IN (SELECT group_id FROM user_groups WHERE user_id = ?))) ORDER BY name",
                  TS_DB_ARGS(TS_DB_S(uid), TS_DB_S(uid)), &res, err);
    if (rc < 0) return rc;
    json_t *arr = json_array();
    for (int r = 0; r < res->nrows; r++) {
        json_t *o = id_row_json(res, r);
        json_object_set_new(o, "enabled", json_true());
        json_object_set_new(o, "links", id_links(id, "domains/%s", ts_db_res_get(res, r, 0)));
        json_array_append_new(arr, o);
    }
    ts_db_res_free(res);
    ts_http_resp_json(resp, 200, json_pack("{s:o,s:o}", "domains", arr, "links", id_collection_links(id, req)));
    return 0;
}

int id_auth_system(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    json_t *roles = id_effective_roles(id, req->auth->user_id, "system", "system", err);
    if (!roles) return -TS_EIO;
    json_t *sys = json_array();
    if (json_array_size(roles)) json_array_append_new(sys, json_pack("{s:b}", "all", 1));
    json_decref(roles);
    ts_http_resp_json(resp, 200, json_pack("{s:o,s:o}", "system", sys, "links", id_collection_links(id, req)));
    return 0;
}
