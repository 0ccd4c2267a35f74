/*
 * identity_resources.c: the Keystone resources served by the CRUD engine, with their
 * columns, filters, hooks and policies: domains, projects, users, groups, roles,
 * services, endpoints, regions, credentials and policies.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/sha.h>

#include "identity/identity_int.h"
#include "json/ts_json.h"

#define DESC_MAX 65535

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static bool row_exists(struct ident *id, const char *table, const char *key)
{
    if (!key) return false;
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT 1 FROM %s WHERE id = ?", table);
    struct ts_db_res *res = NULL;
    if (ts_db_exec(id->db, sql, TS_DB_ARGS(TS_DB_S(key)), &res, NULL) < 0) return false;
    bool found = res->nrows > 0;
    ts_db_res_free(res);
    return found;
}

static void exec_quiet(struct ident *id, const char *sql, const char *key)
{
    ts_db_exec(id->db, sql, TS_DB_ARGS(TS_DB_S(key)), NULL, NULL);
}

/* A domain for a new user/project/group: the given one, else the caller's project domain. */
static int default_domain(struct ident *id, struct ts_http_req *req, json_t *obj, struct ts_err *err)
{
    const char *dom = jstr(obj, "domain_id");
    if (!dom) {
        dom = req->auth->project_domain_id[0] ? req->auth->project_domain_id
              : req->auth->domain_id[0]      ? req->auth->domain_id
                                             : ID_DEFAULT_DOMAIN;
        json_object_set_new(obj, "domain_id", json_string(dom));
    }
    if (!row_exists(id, "domains", dom))
        return ts_err_set(err, TS_ENOTFOUND, "Could not find domain: %s.", dom);
    return 0;
}

/* ---- domains ---------------------------------------------------------------------- */
static const struct col domain_cols[] = {
    {"id", COL_STR, false, false, 64, false},     {"name", COL_STR, true, false, 64, false},
    {"description", COL_STR, false, false, DESC_MAX, true}, {"enabled", COL_BOOL, false, false, 0, false},
    {NULL, 0, 0, 0, 0, 0}};
static const char *const domain_filters[] = {"name", "enabled", NULL};

static int domain_authorize(struct ident *id, struct ts_http_req *req, const char *action, const json_t *obj,
                            struct ts_err *err)
{
    (void)id;
    if (id_is_admin(req)) return 0;
    if (!strcmp(action, "get") && obj) {
        const char *d = jstr(obj, "id");
        if (ts_streq(d, req->auth->domain_id) || ts_streq(d, req->auth->project_domain_id)) return 0;
    }
    char rule[64];
    snprintf(rule, sizeof(rule), "identity:%s_domain%s", action, !strcmp(action, "list") ? "s" : "");
    return id_forbid(err, rule);
}

static int domain_before_delete(struct ident *id, struct ts_http_req *req, const struct rdef *d, json_t *obj,
                                json_t *old, struct ts_err *err)
{
    (void)id, (void)req, (void)d, (void)old;
    if (json_is_true(json_object_get(obj, "enabled")))
        return ts_err_set(err, TS_EFORBIDDEN, "Cannot delete a domain that is enabled, please disable it first.");
    return 0;
}

static int domain_before_update(struct ident *id, struct ts_http_req *req, const struct rdef *d, json_t *obj,
                                json_t *old, struct ts_err *err)
{
    (void)req, (void)d, (void)err;
    if (json_is_true(json_object_get(old, "enabled")) && !json_is_true(json_object_get(obj, "enabled"))) {
        /* disabling a domain invalidates the tokens of its projects' users */
        struct ts_db_res *res = NULL;
        if (ts_db_exec(id->db, "SELECT id FROM projects WHERE domain_id = ?", TS_DB_ARGS(TS_DB_S(jstr(obj, "id"))),
                       &res, NULL) == 0) {
            for (int r = 0; r < res->nrows; r++) id_revoke(id, NULL, NULL, ts_db_res_get(res, r, 0));
            ts_db_res_free(res);
        }
        id_revoke(id, NULL, NULL, jstr(obj, "id"));
    }
    return 0;
}

static int domain_after_delete(struct ident *id, struct ts_http_req *req, const struct rdef *d, json_t *obj,
                               json_t *old, struct ts_err *err)
{
    (void)req, (void)d, (void)old, (void)err;
    const char *key = jstr(obj, "id");
    exec_quiet(id, "DELETE FROM assignments WHERE target_id IN (SELECT id FROM projects WHERE domain_id = ?)", key);
    exec_quiet(id, "DELETE FROM assignments WHERE target_id = ?", key);
    exec_quiet(id, "DELETE FROM user_groups WHERE user_id IN (SELECT id FROM users WHERE domain_id = ?)", key);
    exec_quiet(id, "DELETE FROM projects WHERE domain_id = ?", key);
    exec_quiet(id, "DELETE FROM users WHERE domain_id = ?", key);
    exec_quiet(id, "DELETE FROM groups_ WHERE domain_id = ?", key);
    exec_quiet(id, "DELETE FROM roles WHERE domain_id = ?", key);
    exec_quiet(id, "DELETE FROM domain_configs WHERE domain_id = ?", key);
    return 0;
}

static int domain_before_create(struct ident *id, struct ts_http_req *req, const struct rdef *d, json_t *obj,
                                json_t *old, struct ts_err *err)
{
    (void)id, (void)req, (void)d, (void)old, (void)err;
    if (!json_object_get(obj, "description")) json_object_set_new(obj, "description", json_string(""));
    return 0;
}

static const struct rdef domains_def = {
    .singular = "domain", .plural = "domains", .table = "domains", .cols = domain_cols, .extra = true,
    .filters = domain_filters, .before_create = domain_before_create, .authorize = domain_authorize, .before_delete = domain_before_delete,
    .before_update = domain_before_update, .after_delete = domain_after_delete};

/* ---- projects ------------------------------------------------------------------------- */
static const struct col project_cols[] = {
    {"id", COL_STR, false, true, 64, false},
    {"name", COL_STR, true, false, 64, false},
    {"domain_id", COL_STR, false, true, 64, false},
    {"parent_id", COL_STR, false, true, 64, true},
    {"description", COL_STR, false, false, DESC_MAX, true},
    {"enabled", COL_BOOL, false, false, 0, false},
    {"is_domain", COL_BOOL, false, true, 0, false},
    {NULL, 0, 0, 0, 0, 0}};
static const char *const project_filters[] = {"name", "domain_id", "enabled", "parent_id", "is_domain", NULL};

static int check_tags(const json_t *tags, struct ts_err *err)
{
    if (!tags || json_is_null(tags)) return 0;
    if (!json_is_array(tags)) return ts_err_set(err, TS_EINVAL, "Invalid input for field 'tags': not an array.");
    if (json_array_size(tags) > 80) return ts_err_set(err, TS_EINVAL, "Invalid input for field 'tags': too many tags.");
    size_t i;
    json_t *t;
    json_array_foreach(tags, i, t) {
        const char *s = json_string_value(t);
        if (!s || !*s || strlen(s) > 255 || strchr(s, '/') || strchr(s, ','))
            return ts_err_set(err, TS_EINVAL, "Invalid input for field 'tags': invalid tag.");
    }
    return 0;
}

static int project_before_create(struct ident *id, struct ts_http_req *req, const struct rdef *d, json_t *obj,
                                 json_t *old, struct ts_err *err)
{
    (void)d, (void)old;
    int rc = check_tags(json_object_get(obj, "tags"), err);
    if (rc < 0) return rc;
    if (!json_object_get(obj, "tags")) json_object_set_new(obj, "tags", json_array());
    if (!json_object_get(obj, "description")) json_object_set_new(obj, "description", json_string(""));
    const char *parent = jstr(obj, "parent_id");
    if (parent && !jstr(obj, "domain_id")) {
        json_t *p = NULL;
        if (crud_load(id, crud_find("projects"), parent, &p, err) < 0)
            return ts_err_set(err, TS_ENOTFOUND, "Could not find project: %s.", parent);
        json_object_set(obj, "domain_id", json_object_get(p, "domain_id"));
        json_decref(p);
    }
    if ((rc = default_domain(id, req, obj, err)) < 0) return rc;
    if (!parent) {
        json_object_set_new(obj, "parent_id", json_string(jstr(obj, "domain_id")));
    } else if (!row_exists(id, "projects", parent)) {
        return ts_err_set(err, TS_ENOTFOUND, "Could not find project: %s.", parent);
    }
    if (!json_object_get(obj, "is_domain")) json_object_set_new(obj, "is_domain", json_false());
    if (json_is_true(json_object_get(obj, "is_domain")))
        return ts_err_set(err, TS_EINVAL, "Projects acting as domains are not supported.");
    return 0;
}

static int project_before_update(struct ident *id, struct ts_http_req *req, const struct rdef *d, json_t *obj,
                                 json_t *old, struct ts_err *err)
{
    (void)req, (void)d;
    int rc = check_tags(json_object_get(obj, "tags"), err);
    if (rc < 0) return rc;
    if (json_is_true(json_object_get(old, "enabled")) && !json_is_true(json_object_get(obj, "enabled")))
        id_revoke(id, NULL, NULL, jstr(obj, "id"));
    return 0;
}

static int project_before_delete(struct ident *id, struct ts_http_req *req, const struct rdef *d, json_t *obj,
                                 json_t *old, struct ts_err *err)
{
    (void)req, (void)d, (void)old;
    struct ts_db_res *res = NULL;
    int rc = id_q(id, "SELECT 1 FROM projects WHERE parent_id = ? LIMIT 1", TS_DB_ARGS(TS_DB_S(jstr(obj, "id"))),
                  &res, err);
    if (rc < 0) return rc;
    bool children = res->nrows > 0;
    ts_db_res_free(res);
    if (children)
        return ts_err_set(err, TS_EFORBIDDEN, "Cannot delete the project %s since it is not a leaf in the hierarchy.",
                          jstr(obj, "id"));
    return 0;
}

static int project_after_delete(struct ident *id, struct ts_http_req *req, const struct rdef *d, json_t *obj,
                                json_t *old, struct ts_err *err)
{
    (void)req, (void)d, (void)old, (void)err;
    exec_quiet(id, "DELETE FROM assignments WHERE target_id = ?", jstr(obj, "id"));
    exec_quiet(id, "DELETE FROM app_creds WHERE project_id = ?", jstr(obj, "id"));
    id_revoke(id, NULL, NULL, jstr(obj, "id"));
    return 0;
}

static bool tags_has(const json_t *tags, const char *t)
{
    size_t i;
    json_t *v;
    json_array_foreach(tags, i, v) if (!strcmp(json_string_value(v), t)) return true;
    return false;
}

/* tags (all), tags-any, not-tags, not-tags-any: comma-separated. */
static bool tags_match(const json_t *tags, const char *spec, bool all)
{
    char *copy = ts_strdup(spec), *save = NULL;
    bool any = false, every = true;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        bool has = tags_has(tags, t);
        any = any || has;
        every = every && has;
    }
    free(copy);
    return all ? every : any;
}

static bool project_visible(struct ident *id, struct ts_http_req *req, const json_t *obj)
{
    (void)id;
    const json_t *tags = json_object_get(obj, "tags");
    const char *q;
    if ((q = ts_http_query(req, "tags")) && !tags_match(tags, q, true)) return false;
    if ((q = ts_http_query(req, "tags-any")) && !tags_match(tags, q, false)) return false;
    if ((q = ts_http_query(req, "not-tags")) && tags_match(tags, q, true)) return false;
    if ((q = ts_http_query(req, "not-tags-any")) && tags_match(tags, q, false)) return false;
    return true; /* who may list at all is project_authorize's call */
}

static int project_authorize(struct ident *id, struct ts_http_req *req, const char *action, const json_t *obj,
                             struct ts_err *err)
{
    (void)id;
    if (id_is_admin(req)) return 0;
    if (!strcmp(action, "get") && obj && ts_streq(jstr(obj, "id"), req->auth->project_id)) return 0;
    char rule[64];
    snprintf(rule, sizeof(rule), "identity:%s_project%s", action, !strcmp(action, "list") ? "s" : "");
    return id_forbid(err, rule);
}

static void project_render(struct ident *id, const struct rdef *d, json_t *obj)
{
    (void)id, (void)d;
    if (!json_object_get(obj, "tags")) json_object_set_new(obj, "tags", json_array());
    if (!json_object_get(obj, "options")) json_object_set_new(obj, "options", json_object());
}

static const struct rdef projects_def = {
    .singular = "project", .plural = "projects", .table = "projects", .cols = project_cols, .extra = true,
    .filters = project_filters, .authorize = project_authorize, .before_create = project_before_create,
    .before_update = project_before_update, .before_delete = project_before_delete,
    .after_delete = project_after_delete, .visible = project_visible, .render = project_render};

/* ---- users ---------------------------------------------------------------------------- */
static const struct col user_cols[] = {
    {"id", COL_STR, false, true, 64, false},
    {"name", COL_STR, true, false, 255, false},
    {"domain_id", COL_STR, false, true, 64, false},
    {"enabled", COL_BOOL, false, false, 0, false},
    {"default_project_id", COL_STR, false, false, 64, true},
    {"description", COL_STR, false, false, DESC_MAX, true},
    {"password", COL_STR, false, false, 4096, true},
    {NULL, 0, 0, 0, 0, 0}};
static const char *const user_filters[] = {"name", "domain_id", "enabled", NULL};

static int hash_password(struct ident *id, json_t *obj, struct ts_err *err)
{
    json_t *pw = json_object_get(obj, "password");
    if (!pw || json_is_null(pw)) return 0;
    if (!json_is_string(pw)) return ts_err_set(err, TS_EINVAL, "Invalid input for field 'password'.");
    char *h = ts_password_hash(json_string_value(pw), id->bcrypt_rounds);
    if (!h) return ts_err_set(err, TS_EIO, "password hashing failed");
    json_object_set_new(obj, "password", json_string(h));
    free(h);
    return 0;
}

static int user_before_create(struct ident *id, struct ts_http_req *req, const struct rdef *d, json_t *obj,
                              json_t *old, struct ts_err *err)
{
    (void)d, (void)old;
    int rc = default_domain(id, req, obj, err);
    if (rc < 0) return rc;
    const char *dp = jstr(obj, "default_project_id");
    if (dp && !row_exists(id, "projects", dp))
        return ts_err_set(err, TS_ENOTFOUND, "Could not find project: %s.", dp);
    return hash_password(id, obj, err);
}

static int user_before_update(struct ident *id, struct ts_http_req *req, const struct rdef *d, json_t *obj,
                              json_t *old, struct ts_err *err)
{
    (void)req, (void)d;
    json_t *pw = json_object_get(obj, "password");
    bool pw_changed = pw && !json_equal(pw, json_object_get(old, "password"));
    if (pw_changed) {
        int rc = hash_password(id, obj, err);
        if (rc < 0) return rc;
    }
    bool disabled = json_is_true(json_object_get(old, "enabled")) && !json_is_true(json_object_get(obj, "enabled"));
    if (pw_changed || disabled) id_revoke(id, NULL, jstr(obj, "id"), NULL);
    if (!disabled && json_is_true(json_object_get(obj, "enabled")))
        ts_db_exec(id->db, "UPDATE users SET failed_auth_count = 0 WHERE id = ?", TS_DB_ARGS(TS_DB_S(jstr(obj, "id"))),
                   NULL, NULL);
    return 0;
}

static int user_after_delete(struct ident *id, struct ts_http_req *req, const struct rdef *d, json_t *obj,
                             json_t *old, struct ts_err *err)
{
    (void)req, (void)d, (void)old, (void)err;
    const char *key = jstr(obj, "id");
    exec_quiet(id, "DELETE FROM assignments WHERE actor_id = ?", key);
    exec_quiet(id, "DELETE FROM user_groups WHERE user_id = ?", key);
    exec_quiet(id, "DELETE FROM app_creds WHERE user_id = ?", key);
    exec_quiet(id, "DELETE FROM credentials WHERE user_id = ?", key);
    id_revoke(id, NULL, key, NULL);
    return 0;
}

static int user_authorize(struct ident *id, struct ts_http_req *req, const char *action, const json_t *obj,
                          struct ts_err *err)
{
    (void)id;
    if (id_is_admin(req)) return 0;
    if (!strcmp(action, "get") && obj && ts_streq(jstr(obj, "id"), req->auth->user_id)) return 0;
    char rule[64];
    snprintf(rule, sizeof(rule), "identity:%s_user%s", action, !strcmp(action, "list") ? "s" : "");
    return id_forbid(err, rule);
}

static void user_render(struct ident *id, const struct rdef *d, json_t *obj)
{
    (void)id, (void)d;
    json_object_del(obj, "password");
    if (!json_object_get(obj, "password_expires_at")) json_object_set_new(obj, "password_expires_at", json_null());
    if (!json_object_get(obj, "options")) json_object_set_new(obj, "options", json_object());
    if (json_is_null(json_object_get(obj, "default_project_id"))) json_object_del(obj, "default_project_id");
    if (json_is_null(json_object_get(obj, "description"))) json_object_del(obj, "description");
}

static const struct rdef users_def = {
    .singular = "user", .plural = "users", .table = "users", .cols = user_cols, .extra = true,
    .filters = user_filters, .authorize = user_authorize, .before_create = user_before_create,
    .before_update = user_before_update, .after_delete = user_after_delete, .render = user_render};

/* ---- groups ------------------------------------------------------------------------------ */
static const struct col group_cols[] = {
    {"id", COL_STR, false, true, 64, false},
    {"name", COL_STR, true, false, 64, false},
    {"domain_id", COL_STR, false, true, 64, false},
    {"description", COL_STR, false, false, DESC_MAX, true},
    {NULL, 0, 0, 0, 0, 0}};
static const char *const group_filters[] = {"name", "domain_id", NULL};

static int group_before_create(struct ident *id, struct ts_http_req *req, const struct rdef *d, json_t *obj,
                               json_t *old, struct ts_err *err)
{
    (void)d, (void)old;
    return default_domain(id, req, obj, err);
}

static int group_after_delete(struct ident *id, struct ts_http_req *req, const struct rdef *d, json_t *obj,
                              json_t *old, struct ts_err *err)
{
    (void)req, (void)d, (void)old, (void)err;
    exec_quiet(id, "DELETE FROM assignments WHERE actor_id = ?", jstr(obj, "id"));
    exec_quiet(id, "DELETE FROM user_groups WHERE group_id = ?", jstr(obj, "id"));
    return 0;
}

static const struct rdef groups_def = {
    .singular = "group", .plural = "groups", .table = "groups_", .cols = group_cols, .extra = true,
    .filters = group_filters, .before_create = group_before_create, .after_delete = group_after_delete};

/* ---- roles ---------------------------------------------------------------------------------- */
static const struct col role_cols[] = {
    {"id", COL_STR, false, true, 64, false},
    {"name", COL_STR, true, false, 255, false},
    {"domain_id", COL_STR, false, true, 64, true},
    {"description", COL_STR, false, false, DESC_MAX, true},
    {NULL, 0, 0, 0, 0, 0}};
static const char *const role_filters[] = {"name", NULL};

static int role_before_create(struct ident *id, struct ts_http_req *req, const struct rdef *d, json_t *obj,
                              json_t *old, struct ts_err *err)
{
    (void)req, (void)d, (void)old;
    const char *dom = jstr(obj, "domain_id");
    if (dom && !row_exists(id, "domains", dom)) return ts_err_set(err, TS_ENOTFOUND, "Could not find domain: %s.", dom);
    if (!dom) json_object_set_new(obj, "domain_id", json_string(ID_NULL_DOMAIN));
    return 0;
}

static int role_after_delete(struct ident *id, struct ts_http_req *req, const struct rdef *d, json_t *obj,
                             json_t *old, struct ts_err *err)
{
    (void)req, (void)d, (void)old, (void)err;
    const char *key = jstr(obj, "id");
    exec_quiet(id, "DELETE FROM assignments WHERE role_id = ?", key);
    exec_quiet(id, "DELETE FROM implied_roles WHERE prior_role_id = ?", key);
    exec_quiet(id, "DELETE FROM implied_roles WHERE implied_role_id = ?", key);
    return 0;
}

static void role_render(struct ident *id, const struct rdef *d, json_t *obj)
{
    (void)id, (void)d;
    if (ts_streq(jstr(obj, "domain_id"), ID_NULL_DOMAIN)) json_object_set_new(obj, "domain_id", json_null());
    if (!json_object_get(obj, "options")) json_object_set_new(obj, "options", json_object());
    if (json_is_null(json_object_get(obj, "description"))) json_object_del(obj, "description");
}

static int role_authorize(struct ident *id, struct ts_http_req *req, const char *action, const json_t *obj,
                          struct ts_err *err)
{
    (void)id, (void)obj;
    if (id_is_admin(req)) return 0;
    char rule[64];
    snprintf(rule, sizeof(rule), "identity:%s_role%s", action, !strcmp(action, "list") ? "s" : "");
    return id_forbid(err, rule);
}

static const struct rdef roles_def = {
    .singular = "role", .plural = "roles", .table = "roles", .cols = role_cols, .extra = true,
    .filters = role_filters, .before_create = role_before_create, .after_delete = role_after_delete,
    .render = role_render, .authorize = role_authorize, .scope_col = "domain_id", .scope_default = ID_NULL_DOMAIN};

/* ---- services, endpoints, regions ------------------------------------------------------------ */
static const struct col service_cols[] = {
    {"id", COL_STR, false, true, 64, false},
    {"type", COL_STR, true, false, 255, false},
    {"name", COL_STR, false, false, 255, true},
    {"description", COL_STR, false, false, DESC_MAX, true},
    {"enabled", COL_BOOL, false, false, 0, false},
    {NULL, 0, 0, 0, 0, 0}};
static const char *const service_filters[] = {"type", "name", NULL};

static int service_after_delete(struct ident *id, struct ts_http_req *req, const struct rdef *d, json_t *obj,
                                json_t *old, struct ts_err *err)
{
    (void)req, (void)d, (void)old, (void)err;
    exec_quiet(id, "DELETE FROM endpoints WHERE service_id = ?", jstr(obj, "id"));
    return 0;
}

static const struct rdef services_def = {.singular = "service", .plural = "services", .table = "services",
                                         .cols = service_cols, .extra = true, .filters = service_filters,
                                         .after_delete = service_after_delete};

static const struct col endpoint_cols[] = {
    {"id", COL_STR, false, true, 64, false},
    {"service_id", COL_STR, true, false, 64, false},
    {"interface", COL_STR, true, false, 8, false},
    {"url", COL_STR, true, false, 225, false},
    {"region_id", COL_STR, false, false, 255, true},
    {"enabled", COL_BOOL, false, false, 0, false},
    {NULL, 0, 0, 0, 0, 0}};
static const char *const endpoint_filters[] = {"interface", "service_id", "region_id", NULL};

static int endpoint_check(struct ident *id, struct ts_http_req *req, const struct rdef *d, json_t *obj,
                          json_t *old, struct ts_err *err)
{
    (void)req, (void)d, (void)old;
    const char *itf = jstr(obj, "interface");
    if (itf && strcmp(itf, "public") && strcmp(itf, "internal") && strcmp(itf, "admin"))
        return ts_err_set(err, TS_EINVAL, "Invalid input for field 'interface': '%s' does not match '^(?:admin|internal|public)$'.", itf);
    const char *url = jstr(obj, "url");
    if (url && !ts_startswith(url, "http://") && !ts_startswith(url, "https://"))
        return ts_err_set(err, TS_EINVAL, "Invalid input for field 'url': '%s' is not a valid URL.", url);
    const char *legacy = jstr(obj, "region");
    /* the legacy "region" names the region unless region_id is given too (on update: a
     * region_id unchanged from the old row was not given) */
    if (legacy && (!jstr(obj, "region_id") || (old && ts_streq(jstr(obj, "region_id"), jstr(old, "region_id")))))
        json_object_set_new(obj, "region_id", json_string(legacy));
    json_object_del(obj, "region");
    const char *region = jstr(obj, "region_id");
    if (region && !row_exists(id, "regions", region)) {
        /* Keystone creates a region an endpoint names when it does not exist yet */
        if (strlen(region) > 255) return ts_err_set(err, TS_EINVAL, "Invalid input for field 'region_id'.");
        int rc = ts_db_exec(id->db, "INSERT INTO regions (id, description, extra) VALUES (?, '', '{}') ON CONFLICT DO NOTHING",
                            TS_DB_ARGS(TS_DB_S(region)), NULL, err);
        if (rc < 0) return rc;
    }
    if (!row_exists(id, "services", jstr(obj, "service_id")))
        return ts_err_set(err, TS_EINVAL, "Could not find service: %s.", jstr(obj, "service_id"));
    return 0;
}

static void endpoint_render(struct ident *id, const struct rdef *d, json_t *obj)
{
    (void)id, (void)d;
    json_object_set(obj, "region", json_object_get(obj, "region_id"));
}

static const struct rdef endpoints_def = {
    .singular = "endpoint", .plural = "endpoints", .table = "endpoints", .cols = endpoint_cols, .extra = true,
    .filters = endpoint_filters, .before_create = endpoint_check, .before_update = endpoint_check,
    .render = endpoint_render};

static const struct col region_cols[] = {
    {"id", COL_STR, false, false, 255, false},
    {"description", COL_STR, false, false, DESC_MAX, true},
    {"parent_region_id", COL_STR, false, false, 255, true},
    {NULL, 0, 0, 0, 0, 0}};
static const char *const region_filters[] = {"parent_region_id", NULL};

static int region_check(struct ident *id, struct ts_http_req *req, const struct rdef *d, json_t *obj,
                        json_t *old, struct ts_err *err)
{
    (void)req, (void)d, (void)old;
    const char *parent = jstr(obj, "parent_region_id");
    if (!parent) return 0;
    if (!row_exists(id, "regions", parent))
        return ts_err_set(err, TS_EINVAL, "The specified parent region %s could not be found.", parent);
    /* no cycles: walk up from the parent */
    const char *self = jstr(obj, "id");
    char cur[256];
    snprintf(cur, sizeof(cur), "%s", parent);
    for (int depth = 0; depth < 64 && cur[0]; depth++) {
        if (ts_streq(cur, self))
            return ts_err_set(err, TS_EINVAL, "Circular reference or a repeated entry found in region tree - %s.", self);
        struct ts_db_res *res = NULL;
        if (ts_db_exec(id->db, "SELECT parent_region_id FROM regions WHERE id = ?", TS_DB_ARGS(TS_DB_S(cur)), &res,
                       NULL) < 0)
            break;
        const char *p = res->nrows ? ts_db_res_get(res, 0, 0) : NULL;
        snprintf(cur, sizeof(cur), "%s", p ? p : "");
        ts_db_res_free(res);
    }
    return 0;
}

static int region_before_delete(struct ident *id, struct ts_http_req *req, const struct rdef *d, json_t *obj,
                                json_t *old, struct ts_err *err)
{
    (void)req, (void)d, (void)old;
    struct ts_db_res *res = NULL;
    int rc = id_q(id, "SELECT (SELECT COUNT(*) FROM regions WHERE parent_region_id = ?) + "
                      "(SELECT COUNT(*) FROM endpoints WHERE region_id = ?)",
                  TS_DB_ARGS(TS_DB_S(jstr(obj, "id")), TS_DB_S(jstr(obj, "id"))), &res, err);
    if (rc < 0) return rc;
    int64_t n = ts_db_res_int(res, 0, 0, 0);
    ts_db_res_free(res);
    if (n > 0)
        return ts_err_set(err, TS_EFORBIDDEN,
                          "Unable to delete region %s because it or its child regions have associated endpoints.",
                          jstr(obj, "id"));
    return 0;
}

static int anyone_reads(struct ident *id, struct ts_http_req *req, const char *action, const json_t *obj,
                        struct ts_err *err)
{
    (void)id, (void)obj;
    if (!strcmp(action, "get") || !strcmp(action, "list")) return 0;
    return id_require_admin(req, "identity:region", err);
}

static const struct rdef regions_def = {
    .singular = "region", .plural = "regions", .table = "regions", .cols = region_cols, .extra = true,
    .filters = region_filters, .before_create = region_check, .before_update = region_check,
    .before_delete = region_before_delete, .authorize = anyone_reads};

/* ---- credentials ----------------------------------------------------------------------------- */
static const struct col credential_cols[] = {
    {"id", COL_STR, false, true, 64, false},
    {"user_id", COL_STR, true, false, 64, false},
    {"project_id", COL_STR, false, false, 64, true},
    {"type", COL_STR, true, false, 255, false},
    {"blob", COL_STR, true, false, 65535, false},
    {NULL, 0, 0, 0, 0, 0}};
static const char *const credential_filters[] = {"user_id", "type", NULL};

static int credential_before_create(struct ident *id, struct ts_http_req *req, const struct rdef *d, json_t *obj,
                                    json_t *old, struct ts_err *err)
{
    (void)req, (void)d, (void)old;
    if (!row_exists(id, "users", jstr(obj, "user_id")))
        return ts_err_set(err, TS_ENOTFOUND, "Could not find user: %s.", jstr(obj, "user_id"));
    if (ts_streq(jstr(obj, "type"), "ec2")) {
        if (!jstr(obj, "project_id"))
            return ts_err_set(err, TS_EINVAL, "Invalid blob in credential: project_id is required for ec2 credentials.");
        json_t *blob = json_loads(jstr(obj, "blob"), 0, NULL);
        const char *access = json_string_value(json_object_get(blob, "access"));
        if (!access) {
            json_decref(blob);
            return ts_err_set(err, TS_EINVAL, "Invalid blob in credential: missing access.");
        }
        /* Keystone: the id of an ec2 credential is the sha256 of its access key */
        unsigned char md[32];
        SHA256((const unsigned char *)access, strlen(access), md);
        char hex[65];
        ts_hex(md, 32, hex);
        json_object_set_new(obj, "id", json_string(hex));
        json_decref(blob);
    }
    return 0;
}

static int credential_authorize(struct ident *id, struct ts_http_req *req, const char *action, const json_t *obj,
                                struct ts_err *err)
{
    (void)id;
    if (id_is_admin(req)) return 0;
    if (obj && ts_streq(jstr(obj, "user_id"), req->auth->user_id)) return 0;
    char rule[64];
    snprintf(rule, sizeof(rule), "identity:%s_credential%s", action, !strcmp(action, "list") ? "s" : "");
    return id_forbid(err, rule);
}

static bool credential_visible(struct ident *id, struct ts_http_req *req, const json_t *obj)
{
    (void)id;
    return id_is_admin(req) || ts_streq(jstr(obj, "user_id"), req->auth->user_id);
}

static const struct rdef credentials_def = {
    .singular = "credential", .plural = "credentials", .table = "credentials", .cols = credential_cols,
    .extra = true, .filters = credential_filters, .before_create = credential_before_create,
    .authorize = credential_authorize, .visible = credential_visible, .owner_list = true};

/* ---- policies (stored blobs, as Keystone's /v3/policies) ----------------------------------- */
static const struct col policy_cols[] = {
    {"id", COL_STR, false, true, 64, false},
    {"type", COL_STR, true, false, 255, false},
    {"blob", COL_STR, true, false, 65535, false},
    {NULL, 0, 0, 0, 0, 0}};
static const char *const policy_filters[] = {"type", NULL};
static const struct rdef policies_def = {.singular = "policy", .plural = "policies", .table = "policies",
                                         .cols = policy_cols, .extra = true, .filters = policy_filters};

/* ---- endpoint groups (OS-EP-FILTER) and OAuth1 consumers (records only) ------------------ */
static const struct col endpoint_group_cols[] = {
    {"id", COL_STR, false, true, 64, false},
    {"name", COL_STR, true, false, 255, false},
    {"description", COL_STR, false, false, DESC_MAX, true},
    {NULL, 0, 0, 0, 0, 0}};
static const char *const endpoint_group_filters[] = {"name", NULL};

static int endpoint_group_check(struct ident *id, struct ts_http_req *req, const struct rdef *d, json_t *obj,
                                json_t *old, struct ts_err *err)
{
    (void)id, (void)req, (void)d, (void)old;
    const json_t *f = json_object_get(obj, "filters");
    if (!json_is_object(f)) return ts_err_set(err, TS_EINVAL, "Invalid input for field 'filters': it is a required object.");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)f, k, v) {
        if (strcmp(k, "interface") && strcmp(k, "service_id") && strcmp(k, "region_id"))
            return ts_err_set(err, TS_EINVAL, "Invalid input for field 'filters': unknown filter %s.", k);
        if (!json_is_string(v)) return ts_err_set(err, TS_EINVAL, "Invalid input for field 'filters.%s'.", k);
    }
    return 0;
}

static const struct rdef endpoint_groups_def = {
    .singular = "endpoint_group", .plural = "OS-EP-FILTER/endpoint_groups", .table = "endpoint_groups",
    .cols = endpoint_group_cols, .extra = true, .filters = endpoint_group_filters,
    .before_create = endpoint_group_check, .before_update = endpoint_group_check};

static const struct col consumer_cols[] = {
    {"id", COL_STR, false, true, 64, false},
    {"description", COL_STR, false, false, DESC_MAX, true},
    {NULL, 0, 0, 0, 0, 0}};

static const struct rdef consumers_def = {.singular = "consumer", .plural = "OS-OAUTH1/consumers",
                                          .table = "consumers", .cols = consumer_cols};

const struct rdef *const id_rdefs[] = {&endpoint_groups_def, &consumers_def,&domains_def, &projects_def, &users_def,       &groups_def,
                                       &roles_def,   &services_def, &endpoints_def,   &regions_def,
                                       &credentials_def, &policies_def, NULL};
