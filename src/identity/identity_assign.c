/*
 * identity_assign.c: role grants (users and groups on projects, domains and the system,
 * OS-INHERIT inherited grants), /v3/role_assignments with Keystone's filters, effective
 * expansion and include_names, implied roles, group membership, project tags and the
 * self-service password change.
 */
#include <stdio.h>
#include <string.h>

#include "identity/identity_int.h"
#include "json/ts_json.h"

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static bool exists(struct ident *id, const char *table, const char *key)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT 1 FROM %s WHERE id = ?", table);
    struct ts_db_res *res = NULL;
    if (!key || ts_db_exec(id->db, sql, TS_DB_ARGS(TS_DB_S(key)), &res, NULL) < 0) return false;
    bool found = res->nrows > 0;
    ts_db_res_free(res);
    return found;
}

/* ---- grants -------------------------------------------------------------------------------- */
struct grant_path {
    char type[16];        /* UserProject, GroupDomain, UserSystem, ... */
    const char *actor, *target, *role;
    bool inherited;
    bool group;
    const char *target_table; /* projects, domains, NULL for system */
};

static int parse_grant(struct ts_http_req *req, struct grant_path *g, struct ts_err *err)
{
    memset(g, 0, sizeof(*g));
    const char *p = req->path;
    g->actor = ts_http_param(req, "actor");
    g->role = ts_http_param(req, "role");
    const char *ttype, *atype;
    if (ts_startswith(p, "/v3/OS-INHERIT/")) {
        g->inherited = true;
        ttype = ts_http_param(req, "ttype");
        atype = ts_http_param(req, "atype");
        g->target = ts_http_param(req, "target");
    } else if (ts_startswith(p, "/v3/system/")) {
        ttype = "system";
        atype = strstr(p, "/groups/") ? "groups" : "users";
        g->target = "system";
    } else {
        ttype = ts_startswith(p, "/v3/projects/") ? "projects" : "domains";
        atype = strstr(p + 5, "/groups/") ? "groups" : "users";
        g->target = ts_http_param(req, "target");
    }
    if (strcmp(atype, "users") && strcmp(atype, "groups")) return ts_err_set(err, TS_ENOTFOUND, "The resource could not be found.");
    g->group = !strcmp(atype, "groups");
    if (!strcmp(ttype, "projects")) {
        g->target_table = "projects";
        snprintf(g->type, sizeof(g->type), "%sProject", g->group ? "Group" : "User");
    } else if (!strcmp(ttype, "domains")) {
        g->target_table = "domains";
        snprintf(g->type, sizeof(g->type), "%sDomain", g->group ? "Group" : "User");
    } else if (!strcmp(ttype, "system")) {
        snprintf(g->type, sizeof(g->type), "%sSystem", g->group ? "Group" : "User");
    } else {
        return ts_err_set(err, TS_ENOTFOUND, "The resource could not be found.");
    }
    return 0;
}

static int check_grant_refs(struct ident *id, const struct grant_path *g, struct ts_err *err)
{
    if (g->target_table && !exists(id, g->target_table, g->target))
        return ts_err_set(err, TS_ENOTFOUND, "Could not find %s: %s.",
                          !strcmp(g->target_table, "projects") ? "project" : "domain", g->target);
    if (!exists(id, g->group ? "groups_" : "users", g->actor))
        return ts_err_set(err, TS_ENOTFOUND, "Could not find %s: %s.", g->group ? "group" : "user", g->actor);
    if (g->role && !exists(id, "roles", g->role)) return ts_err_set(err, TS_ENOTFOUND, "Could not find role: %s.", g->role);
    return 0;
}

/* Tokens of the user (or every member of the group) lose this grant now. */
static void revoke_for_grant(struct ident *id, const struct grant_path *g)
{
    const char *project = g->target_table && !strcmp(g->target_table, "projects") ? g->target : NULL;
    if (!g->group) {
        id_revoke(id, NULL, g->actor, project);
        return;
    }
    struct ts_db_res *res = NULL;
    if (ts_db_exec(id->db, "SELECT user_id FROM user_groups WHERE group_id = ?", TS_DB_ARGS(TS_DB_S(g->actor)), &res,
                   NULL) < 0)
        return;
    for (int r = 0; r < res->nrows; r++) id_revoke(id, NULL, ts_db_res_get(res, r, 0), project);
    ts_db_res_free(res);
}

int id_grant(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    struct grant_path g;
    int rc = parse_grant(req, &g, err);
    if (rc < 0) return rc;
    bool writing = !strcmp(req->method, "PUT") || !strcmp(req->method, "DELETE");
    if ((rc = id_require_admin(req, writing ? "identity:create_grant" : "identity:check_grant", err)) < 0) return rc;
    if ((rc = check_grant_refs(id, &g, err)) < 0) return rc;
    struct ts_db_val key[] = {TS_DB_S(g.type), TS_DB_S(g.actor), TS_DB_S(g.target), TS_DB_S(g.role),
                              TS_DB_I(g.inherited)};
    if (!strcmp(req->method, "PUT")) {
        rc = ts_db_exec(id->db,
                        "INSERT INTO assignments (type, actor_id, target_id, role_id, inherited) VALUES (?, ?, ?, ?, ?) "
                        "ON CONFLICT DO NOTHING",
                        key, 5, NULL, err);
        if (rc < 0) return rc;
        id_notify(id, "role_assignment", "created", g.role);
    } else {
        struct ts_db_res *res = NULL;
        const char *sql = !strcmp(req->method, "DELETE")
                              ? "DELETE FROM assignments WHERE type = ? AND actor_id = ? AND target_id = ? AND "
                                "role_id = ? AND inherited = ?"
                              : "SELECT 1 FROM assignments WHERE type = ? AND actor_id = ? AND target_id = ? AND "
                                "role_id = ? AND inherited = ?";
        rc = ts_db_exec(id->db, sql, key, 5, &res, err);
        if (rc < 0) return rc;
        bool found = res->nrows > 0 || res->changes > 0;
        ts_db_res_free(res);
        if (!found) return ts_err_set(err, TS_ENOTFOUND, "Could not find role assignment with role: %s, user or group: %s, project, domain, or system: %s.", g.role, g.actor, g.target);
        if (!strcmp(req->method, "DELETE")) {
            revoke_for_grant(id, &g);
            id_notify(id, "role_assignment", "deleted", g.role);
        }
    }
    ts_http_resp_no_body(resp, 204, 0);
    return 0;
}

static json_t *role_json(struct ident *id, const char *rid, const char *name, const char *domain_id)
{
    json_t *r = json_pack("{s:s,s:s}", "id", rid, "name", name);
    json_object_set_new(r, "domain_id", domain_id && strcmp(domain_id, ID_NULL_DOMAIN) ? json_string(domain_id) : json_null());
    json_object_set_new(r, "links", id_links(id, "roles/%s", rid));
    return r;
}

int id_grants_list(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    struct grant_path g;
    int rc = parse_grant(req, &g, err);
    if (rc < 0) return rc;
    if ((rc = id_require_admin(req, "identity:list_grants", err)) < 0) return rc;
    if ((rc = check_grant_refs(id, &g, err)) < 0) return rc;
    struct ts_db_res *res = NULL;
    rc = id_q(id,
              "SELECT r.id, r.name, r.domain_id FROM assignments a JOIN roles r ON r.id = a.role_id "
              "WHERE a.type = ? AND a.actor_id = ? AND a.target_id = ? AND a.inherited = ? ORDER BY r.name",
              TS_DB_ARGS(TS_DB_S(g.type), TS_DB_S(g.actor), TS_DB_S(g.target), TS_DB_I(g.inherited)), &res, err);
    if (rc < 0) return rc;
    json_t *arr = json_array();
    for (int r = 0; r < res->nrows; r++)
        json_array_append_new(arr, role_json(id, ts_db_res_get(res, r, 0), ts_db_res_get(res, r, 1),
                                             ts_db_res_get(res, r, 2)));
    ts_db_res_free(res);
    ts_http_resp_json(resp, 200, json_pack("{s:o,s:o}", "roles", arr, "links", id_collection_links(id, req)));
    return 0;
}

/* ---- /v3/role_assignments -------------------------------------------------------------------- */
struct ra {
    char type[16];
    char actor[65], target[65], role[65];
    bool inherited;
    char via_group[65];  /* effective: the group a user entry came from */
    char prior_role[65]; /* effective: the role this one is implied by */
};

struct ra_set {
    struct ra *v;
    size_t n, cap;
};

static void ra_push(struct ra_set *s, const struct ra *a)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->v = ts_realloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->n++] = *a;
}

/* Lookup helpers over small result sets loaded once. */
static const char *res_lookup(const struct ts_db_res *res, const char *key, int col)
{
    for (int r = 0; res && r < res->nrows; r++)
        if (ts_streq(ts_db_res_get(res, r, 0), key)) return ts_db_res_get(res, r, col);
    return NULL;
}

static json_t *ra_render(struct ident *id, const struct ra *a, bool names, const struct ts_db_res *roles,
                         const struct ts_db_res *users, const struct ts_db_res *groups,
                         const struct ts_db_res *projects, const struct ts_db_res *domains)
{
    json_t *o = json_object();
    bool group = ts_startswith(a->type, "Group");
    json_t *actor = json_pack("{s:s}", "id", a->actor);
    if (names) {
        const struct ts_db_res *src = group ? groups : users;
        const char *n = res_lookup(src, a->actor, 1), *dom = res_lookup(src, a->actor, 2);
        if (n) json_object_set_new(actor, "name", json_string(n));
        if (dom)
            json_object_set_new(actor, "domain",
                                json_pack("{s:s,s:s?}", "id", dom, "name", res_lookup(domains, dom, 1)));
    }
    json_object_set_new(o, group ? "group" : "user", actor);
    json_t *role = json_pack("{s:s}", "id", a->role);
    if (names) {
        const char *n = res_lookup(roles, a->role, 1);
        if (n) json_object_set_new(role, "name", json_string(n));
        const char *rd = res_lookup(roles, a->role, 2);
        if (rd && strcmp(rd, ID_NULL_DOMAIN))
            json_object_set_new(role, "domain", json_pack("{s:s,s:s?}", "id", rd, "name", res_lookup(domains, rd, 1)));
    }
    json_object_set_new(o, "role", role);
    json_t *scope = json_object();
    char link[512];
    const char *actor_path = group ? "groups" : "users";
    if (ts_endswith(a->type, "Project")) {
        json_t *p = json_pack("{s:s}", "id", a->target);
        if (names) {
            const char *n = res_lookup(projects, a->target, 1), *dom = res_lookup(projects, a->target, 2);
            if (n) json_object_set_new(p, "name", json_string(n));
            if (dom) json_object_set_new(p, "domain", json_pack("{s:s,s:s?}", "id", dom, "name", res_lookup(domains, dom, 1)));
        }
        json_object_set_new(scope, "project", p);
        snprintf(link, sizeof(link), "%s/v3/%sprojects/%s/%s/%s/roles/%s%s", id->base_url,
                 a->inherited ? "OS-INHERIT/" : "", a->target, actor_path, a->actor, a->role,
                 a->inherited ? "/inherited_to_projects" : "");
    } else if (ts_endswith(a->type, "Domain")) {
        json_t *d = json_pack("{s:s}", "id", a->target);
        if (names && res_lookup(domains, a->target, 1))
            json_object_set_new(d, "name", json_string(res_lookup(domains, a->target, 1)));
        json_object_set_new(scope, "domain", d);
        snprintf(link, sizeof(link), "%s/v3/%sdomains/%s/%s/%s/roles/%s%s", id->base_url,
                 a->inherited ? "OS-INHERIT/" : "", a->target, actor_path, a->actor, a->role,
                 a->inherited ? "/inherited_to_projects" : "");
    } else {
        json_object_set_new(scope, "system", json_pack("{s:b}", "all", 1));
        snprintf(link, sizeof(link), "%s/v3/system/%s/%s/roles/%s", id->base_url, actor_path, a->actor, a->role);
    }
    if (a->inherited) json_object_set_new(scope, "OS-INHERIT:inherited_to", json_string("projects"));
    json_object_set_new(o, "scope", scope);
    json_t *links = json_pack("{s:s}", "assignment", link);
    if (a->via_group[0]) {
        char m[512];
        snprintf(m, sizeof(m), "%s/v3/groups/%s/users/%s", id->base_url, a->via_group, a->actor);
        json_object_set_new(links, "membership", json_string(m));
    }
    if (a->prior_role[0]) {
        char m[512];
        snprintf(m, sizeof(m), "%s/v3/roles/%s/implies/%s", id->base_url, a->prior_role, a->role);
        json_object_set_new(links, "prior_role", json_string(m));
    }
    json_object_set_new(o, "links", links);
    return o;
}

int id_role_assignments(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    const char *f_user = ts_http_query(req, "user.id"), *f_group = ts_http_query(req, "group.id");
    const char *f_role = ts_http_query(req, "role.id"), *f_project = ts_http_query(req, "scope.project.id");
    const char *f_domain = ts_http_query(req, "scope.domain.id"), *f_system = ts_http_query(req, "scope.system");
    const char *f_inh = ts_http_query(req, "scope.OS-INHERIT:inherited_to");
    bool effective = ts_http_query(req, "effective") != NULL;
    bool names = ts_http_query(req, "include_names") != NULL;
    bool subtree = ts_http_query(req, "include_subtree") != NULL;
    if (names) {
        bool b = true;
        if (ts_parse_bool(ts_http_query(req, "include_names"), &b) == 0 && !b) names = false;
    }
    /* a user may list their own assignments; the rest is for admins */
    if (!id_is_admin(req) && !(f_user && !strcmp(f_user, req->auth->user_id)))
        return id_forbid(err, "identity:list_role_assignments");
    if (effective && f_group) return ts_err_set(err, TS_EINVAL, "Combining effective and group filter will always result in an empty list.");
    if (f_project && f_domain) return ts_err_set(err, TS_EINVAL, "Specify a domain or project, not both");
    if (subtree && !f_project) return ts_err_set(err, TS_EINVAL, "scope.project.id needs to be specified if include_subtree is also specified");

    int rc = 0;
    struct ts_db_res *all = NULL, *members = NULL, *projects = NULL, *implied = NULL;
    struct ts_db_res *roles = NULL, *users = NULL, *groups = NULL, *domains = NULL;
    struct ra_set base = {0}, out = {0};
    if ((rc = id_q(id, "SELECT type, actor_id, target_id, role_id, inherited FROM assignments", TS_DB_NOARGS, &all, err)) < 0 ||
        (rc = id_q(id, "SELECT id, name, domain_id, parent_id FROM projects", TS_DB_NOARGS, &projects, err)) < 0 ||
        (rc = id_q(id, "SELECT group_id, user_id FROM user_groups", TS_DB_NOARGS, &members, err)) < 0 ||
        (rc = id_q(id, "SELECT prior_role_id, implied_role_id FROM implied_roles", TS_DB_NOARGS, &implied, err)) < 0 ||
        (rc = id_q(id, "SELECT id, name, domain_id FROM roles", TS_DB_NOARGS, &roles, err)) < 0)
        goto out;
    for (int r = 0; r < all->nrows; r++) {
        struct ra a = {0};
        snprintf(a.type, sizeof(a.type), "%s", ts_db_res_get(all, r, 0));
        snprintf(a.actor, sizeof(a.actor), "%s", ts_db_res_get(all, r, 1));
        snprintf(a.target, sizeof(a.target), "%s", ts_db_res_get(all, r, 2));
        snprintf(a.role, sizeof(a.role), "%s", ts_db_res_get(all, r, 3));
        a.inherited = strcmp(ts_db_res_get(all, r, 4), "0") != 0;
        ra_push(&base, &a);
    }
    if (effective) {
        /* groups -> users, inherited -> each project below, roles -> implied roles */
        struct ra_set stage = {0};
        for (size_t i = 0; i < base.n; i++) {
            struct ra a = base.v[i];
            if (ts_startswith(a.type, "Group")) {
                for (int m = 0; m < members->nrows; m++) {
                    if (strcmp(ts_db_res_get(members, m, 0), a.actor)) continue;
                    struct ra u = a;
                    snprintf(u.type, sizeof(u.type), "User%s", a.type + 5);
                    snprintf(u.actor, sizeof(u.actor), "%s", ts_db_res_get(members, m, 1));
                    snprintf(u.via_group, sizeof(u.via_group), "%s", a.actor);
                    ra_push(&stage, &u);
                }
            } else {
                ra_push(&stage, &a);
            }
        }
        struct ra_set stage2 = {0};
        for (size_t i = 0; i < stage.n; i++) {
            struct ra a = stage.v[i];
            if (!a.inherited) {
                ra_push(&stage2, &a);
                continue;
            }
            /* every project in the domain, or below the project */
            bool from_domain = ts_endswith(a.type, "Domain");
            for (int p = 0; p < projects->nrows; p++) {
                const char *pid = ts_db_res_get(projects, p, 0);
                bool below = false;
                if (from_domain) {
                    below = ts_streq(ts_db_res_get(projects, p, 2), a.target);
                } else {
                    const char *cur = ts_db_res_get(projects, p, 3);
                    for (int depth = 0; cur && depth < 32; depth++) {
                        if (!strcmp(cur, a.target)) {
                            below = true;
                            break;
                        }
                        cur = res_lookup(projects, cur, 3);
                    }
                }
                if (!below) continue;
                struct ra e = a;
                e.inherited = false;
                snprintf(e.type, sizeof(e.type), "UserProject");
                snprintf(e.target, sizeof(e.target), "%s", pid);
                ra_push(&stage2, &e);
            }
        }
        free(stage.v);
        for (size_t i = 0; i < stage2.n; i++) {
            ra_push(&out, &stage2.v[i]);
            /* implied roles, transitively (bounded) */
            const char *frontier[32];
            int nf = 0;
            frontier[nf++] = stage2.v[i].role;
            for (int k = 0; k < nf && nf < 32; k++) {
                for (int r = 0; r < implied->nrows && nf < 32; r++) {
                    if (strcmp(ts_db_res_get(implied, r, 0), frontier[k])) continue;
                    struct ra e = stage2.v[i];
                    snprintf(e.role, sizeof(e.role), "%s", ts_db_res_get(implied, r, 1));
                    snprintf(e.prior_role, sizeof(e.prior_role), "%s", frontier[k]);
                    ra_push(&out, &e);
                    frontier[nf++] = ts_db_res_get(implied, r, 1);
                }
            }
        }
        free(stage2.v);
    } else {
        out = base;
        base.v = NULL;
        base.n = 0;
    }

    json_t *arr = json_array();
    if (names) {
        id_q(id, "SELECT id, name, domain_id FROM users", TS_DB_NOARGS, &users, NULL);
        id_q(id, "SELECT id, name, domain_id FROM groups_", TS_DB_NOARGS, &groups, NULL);
        id_q(id, "SELECT id, name FROM domains", TS_DB_NOARGS, &domains, NULL);
    }
    for (size_t i = 0; i < out.n; i++) {
        const struct ra *a = &out.v[i];
        bool group = ts_startswith(a->type, "Group");
        if (f_user && (group || strcmp(a->actor, f_user))) continue;
        if (f_group && (!group || strcmp(a->actor, f_group))) continue;
        if (f_role && strcmp(a->role, f_role)) continue;
        /* domain-specific roles grant nothing by themselves: only the roles they imply
         * are effective (as in a token) */
        if (effective && !ts_streq(res_lookup(roles, a->role, 2), ID_NULL_DOMAIN)) continue;
        if (f_project) {
            if (!ts_endswith(a->type, "Project")) continue;
            bool match = !strcmp(a->target, f_project);
            if (!match && subtree) {
                const char *cur = res_lookup(projects, a->target, 3);
                for (int depth = 0; cur && depth < 32 && !match; depth++) {
                    match = !strcmp(cur, f_project);
                    cur = res_lookup(projects, cur, 3);
                }
            }
            if (!match) continue;
        }
        if (f_domain && (!ts_endswith(a->type, "Domain") || strcmp(a->target, f_domain))) continue;
        if (f_system && !ts_endswith(a->type, "System")) continue;
        if (f_inh && !a->inherited) continue;
        /* drop duplicates (same actor/target/role) that expansion can produce */
        bool dup = false;
        for (size_t j = 0; j < i && effective && !dup; j++)
            dup = !strcmp(out.v[j].actor, a->actor) && !strcmp(out.v[j].target, a->target) &&
                  !strcmp(out.v[j].role, a->role) && !strcmp(out.v[j].type, a->type);
        if (dup) continue;
        json_array_append_new(arr, ra_render(id, a, names, roles, users, groups, projects, domains));
    }
    ts_http_resp_json(resp, 200, json_pack("{s:o,s:o}", "role_assignments", arr, "links", id_collection_links(id, req)));
out:
    free(base.v);
    free(out.v);
    ts_db_res_free(all);
    ts_db_res_free(members);
    ts_db_res_free(projects);
    ts_db_res_free(implied);
    ts_db_res_free(roles);
    ts_db_res_free(users);
    ts_db_res_free(groups);
    ts_db_res_free(domains);
    return rc;
}

/* ---- implied roles ------------------------------------------------------------------------ */
static json_t *role_brief(struct ident *id, const char *rid)
{
    struct ts_db_res *res = NULL;
    json_t *o = NULL;
    if (ts_db_exec(id->db, "SELECT id, name FROM roles WHERE id = ?", TS_DB_ARGS(TS_DB_S(rid)), &res, NULL) == 0 &&
        res->nrows)
        o = json_pack("{s:s,s:s,s:o}", "id", ts_db_res_get(res, 0, 0), "name", ts_db_res_get(res, 0, 1), "links",
                      id_links(id, "roles/%s", rid));
    ts_db_res_free(res);
    return o;
}

static bool role_is_domain(struct ident *id, const char *rid)
{
    struct ts_db_res *res = NULL;
    if (ts_db_exec(id->db, "SELECT domain_id FROM roles WHERE id = ?", TS_DB_ARGS(TS_DB_S(rid)), &res, NULL) < 0)
        return false;
    bool dom = res->nrows && !ts_streq(ts_db_res_get(res, 0, 0), ID_NULL_DOMAIN);
    ts_db_res_free(res);
    return dom;
}

int id_implied_role(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    const char *prior = ts_http_param(req, "id"), *implied = ts_http_param(req, "implied");
    int rc = id_require_admin(req, "identity:create_implied_role", err);
    if (rc < 0) return rc;
    json_t *pj = role_brief(id, prior), *ij = role_brief(id, implied);
    if (!pj || !ij) {
        json_decref(pj);
        json_decref(ij);
        return ts_err_set(err, TS_ENOTFOUND, "Could not find role: %s.", pj ? implied : prior);
    }
    if (!strcmp(req->method, "PUT")) {
        if (!strcmp(prior, implied)) {
            rc = ts_err_set(err, TS_EFORBIDDEN, "A role cannot imply itself.");
            goto out;
        }
        if (!role_is_domain(id, prior) && role_is_domain(id, implied)) {
            rc = ts_err_set(err, TS_EFORBIDDEN, "%s is a domain-specific role: a global role cannot imply it.", implied);
            goto out;
        }
        rc = ts_db_exec(id->db, "INSERT INTO implied_roles (prior_role_id, implied_role_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                        TS_DB_ARGS(TS_DB_S(prior), TS_DB_S(implied)), NULL, err);
        if (rc < 0) goto out;
        ts_http_resp_json(resp, 201, json_pack("{s:{s:O,s:O},s:{s:s}}", "role_inference", "prior_role", pj, "implies",
                                               ij, "links", "self", ""));
    } else {
        struct ts_db_res *res = NULL;
        const char *sql = !strcmp(req->method, "DELETE")
                              ? "DELETE FROM implied_roles WHERE prior_role_id = ? AND implied_role_id = ?"
                              : "SELECT 1 FROM implied_roles WHERE prior_role_id = ? AND implied_role_id = ?";
        rc = ts_db_exec(id->db, sql, TS_DB_ARGS(TS_DB_S(prior), TS_DB_S(implied)), &res, err);
        if (rc < 0) goto out;
        bool found = res->nrows > 0 || res->changes > 0;
        ts_db_res_free(res);
        if (!found) {
            rc = ts_err_set(err, TS_ENOTFOUND, "%s does not imply %s.", prior, implied);
            goto out;
        }
        if (!strcmp(req->method, "GET"))
            ts_http_resp_json(resp, 200, json_pack("{s:{s:O,s:O}}", "role_inference", "prior_role", pj, "implies", ij));
        else
            ts_http_resp_no_body(resp, 204, 0);
    }
out:
    json_decref(pj);
    json_decref(ij);
    return rc;
}

static json_t *implies_of(struct ident *id, const char *prior)
{
    struct ts_db_res *res = NULL;
    json_t *arr = json_array();
    if (ts_db_exec(id->db,
                   "SELECT r.id, r.name FROM implied_roles i JOIN roles r ON r.id = i.implied_role_id "
                   "WHERE i.prior_role_id = ? ORDER BY r.name",
                   TS_DB_ARGS(TS_DB_S(prior)), &res, NULL) == 0) {
        for (int r = 0; r < res->nrows; r++)
            json_array_append_new(arr, json_pack("{s:s,s:s,s:o}", "id", ts_db_res_get(res, r, 0), "name",
                                                 ts_db_res_get(res, r, 1), "links",
                                                 id_links(id, "roles/%s", ts_db_res_get(res, r, 0))));
        ts_db_res_free(res);
    }
    return arr;
}

int id_implied_roles_list(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    int rc = id_require_admin(req, "identity:list_implied_roles", err);
    if (rc < 0) return rc;
    const char *prior = ts_http_param(req, "id");
    json_t *pj = role_brief(id, prior);
    if (!pj) return ts_err_set(err, TS_ENOTFOUND, "Could not find role: %s.", prior);
    ts_http_resp_json(resp, 200, json_pack("{s:{s:o,s:o}}", "role_inference", "prior_role", pj, "implies",
                                           implies_of(id, prior)));
    return 0;
}

int id_role_inferences(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    int rc = id_require_admin(req, "identity:list_role_inference_rules", err);
    if (rc < 0) return rc;
    struct ts_db_res *res = NULL;
    if ((rc = id_q(id, "SELECT DISTINCT prior_role_id FROM implied_roles ORDER BY prior_role_id", TS_DB_NOARGS, &res,
                   err)) < 0)
        return rc;
    json_t *arr = json_array();
    for (int r = 0; r < res->nrows; r++) {
        const char *prior = ts_db_res_get(res, r, 0);
        json_t *pj = role_brief(id, prior);
        if (pj) json_array_append_new(arr, json_pack("{s:o,s:o}", "prior_role", pj, "implies", implies_of(id, prior)));
    }
    ts_db_res_free(res);
    ts_http_resp_json(resp, 200, json_pack("{s:o,s:o}", "role_inferences", arr, "links", id_collection_links(id, req)));
    return 0;
}

/* ---- groups and members ------------------------------------------------------------------ */
static json_t *rows_as(struct ident *id, struct ts_db_res *res, const char *kind)
{
    json_t *arr = json_array();
    for (int r = 0; r < res->nrows; r++) {
        json_t *o = id_row_json(res, r);
        const char *en = jstr(o, "enabled");
        if (en) json_object_set_new(o, "enabled", json_boolean(strcmp(en, "0") != 0));
        if (json_is_null(json_object_get(o, "description"))) json_object_del(o, "description");
        json_object_set_new(o, "links", id_links(id, "%s/%s", kind, ts_db_res_get(res, r, 0)));
        if (!strcmp(kind, "users")) {
            json_object_set_new(o, "password_expires_at", json_null());
            json_object_set_new(o, "options", json_object());
        }
        json_array_append_new(arr, o);
    }
    return arr;
}

int id_user_groups(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    const char *uid = ts_http_param(req, "id");
    if (strcmp(uid, req->auth->user_id) && !id_is_admin(req)) return id_forbid(err, "identity:list_groups_for_user");
    if (!exists(id, "users", uid)) return ts_err_set(err, TS_ENOTFOUND, "Could not find user: %s.", uid);
    struct ts_db_res *res = NULL;
    int rc = id_q(id,
                  "SELECT g.id, g.name, g.domain_id, g.description FROM groups_ g JOIN user_groups m "
                  "ON m.group_id = g.id WHERE m.user_id = ? ORDER BY g.name",
                  TS_DB_ARGS(TS_DB_S(uid)), &res, err);
    if (rc < 0) return rc;
    json_t *arr = rows_as(id, res, "groups");
    ts_db_res_free(res);
    ts_http_resp_json(resp, 200, json_pack("{s:o,s:o}", "groups", arr, "links", id_collection_links(id, req)));
    return 0;
}

int id_group_users(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    const char *gid = ts_http_param(req, "id");
    int rc = id_require_admin(req, "identity:list_users_in_group", err);
    if (rc < 0) return rc;
    if (!exists(id, "groups_", gid)) return ts_err_set(err, TS_ENOTFOUND, "Could not find group: %s.", gid);
    struct ts_db_res *res = NULL;
    rc = id_q(id, "SELECT u.* FROM users u JOIN user_groups m ON m.user_id = u.id WHERE m.group_id = ? ORDER BY u.name",
              TS_DB_ARGS(TS_DB_S(gid)), &res, err);
    if (rc < 0) return rc;
    const struct rdef *ud = crud_find("users");
    json_t *arr = json_array();
    for (int r = 0; r < res->nrows; r++) {
        json_t *row = crud_row_json(ud, res, r);
        json_array_append_new(arr, crud_render(id, ud, row));
        json_decref(row);
    }
    ts_db_res_free(res);
    ts_http_resp_json(resp, 200, json_pack("{s:o,s:o}", "users", arr, "links", id_collection_links(id, req)));
    return 0;
}

int id_group_member(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    const char *gid = ts_http_param(req, "id"), *uid = ts_http_param(req, "user");
    int rc = id_require_admin(req, "identity:add_user_to_group", err);
    if (rc < 0) return rc;
    if (!exists(id, "groups_", gid)) return ts_err_set(err, TS_ENOTFOUND, "Could not find group: %s.", gid);
    if (!exists(id, "users", uid)) return ts_err_set(err, TS_ENOTFOUND, "Could not find user: %s.", uid);
    if (!strcmp(req->method, "PUT")) {
        rc = ts_db_exec(id->db, "INSERT INTO user_groups (user_id, group_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                        TS_DB_ARGS(TS_DB_S(uid), TS_DB_S(gid)), NULL, err);
        if (rc < 0) return rc;
    } else {
        struct ts_db_res *res = NULL;
        const char *sql = !strcmp(req->method, "DELETE") ? "DELETE FROM user_groups WHERE user_id = ? AND group_id = ?"
                                                         : "SELECT 1 FROM user_groups WHERE user_id = ? AND group_id = ?";
        rc = ts_db_exec(id->db, sql, TS_DB_ARGS(TS_DB_S(uid), TS_DB_S(gid)), &res, err);
        if (rc < 0) return rc;
        bool found = res->nrows > 0 || res->changes > 0;
        ts_db_res_free(res);
        if (!found) return ts_err_set(err, TS_ENOTFOUND, "User '%s' not found in group '%s'", uid, gid);
        if (!strcmp(req->method, "DELETE")) id_revoke(id, NULL, uid, NULL);
    }
    ts_http_resp_no_body(resp, 204, 0);
    return 0;
}

/* ---- self-service password change -------------------------------------------------------------- */
int id_user_password(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    const char *uid = ts_http_param(req, "id");
    json_t *body, *u;
    int rc = ts_http_json_body(req, &body, err);
    if (rc < 0) return rc;
    if (ts_json_body_object(body, "user", &u, err) < 0) return -err->code;
    const char *orig = jstr(u, "original_password"), *pw = jstr(u, "password");
    if (!orig || !pw) return ts_err_set(err, TS_EINVAL, "'original_password' and 'password' are required properties.");
    if (strlen(pw) > 4096) return ts_err_set(err, TS_EINVAL, "Invalid input for field 'password': too long.");
    struct ts_db_res *res = NULL;
    rc = id_q(id, "SELECT password, enabled FROM users WHERE id = ?", TS_DB_ARGS(TS_DB_S(uid)), &res, err);
    if (rc < 0) return rc;
    bool ok = res->nrows && ts_db_res_get(res, 0, 0) && ts_password_verify(orig, ts_db_res_get(res, 0, 0));
    ts_db_res_free(res);
    if (!ok) return ts_err_set(err, TS_EUNAUTH, "The request you have made requires authentication.");
    char *hash = ts_password_hash(pw, id->bcrypt_rounds);
    rc = ts_db_exec(id->db, "UPDATE users SET password = ?, failed_auth_count = 0 WHERE id = ?",
                    TS_DB_ARGS(TS_DB_S(hash), TS_DB_S(uid)), NULL, err);
    free(hash);
    if (rc < 0) return rc;
    id_revoke(id, NULL, uid, NULL);
    ts_http_resp_no_body(resp, 204, 0);
    return 0;
}

/* ---- project tags ------------------------------------------------------------------------------- */
int id_project_tags(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    const struct rdef *d = crud_find("projects");
    const char *pid = ts_http_param(req, "id"), *tag = ts_http_param(req, "tag");
    json_t *row = NULL;
    int rc = crud_load(id, d, pid, &row, err);
    if (rc < 0) return rc;
    bool write = strcmp(req->method, "GET") && strcmp(req->method, "HEAD");
    if (!id_is_admin(req) && (write || strcmp(pid, req->auth->project_id))) {
        json_decref(row);
        return id_forbid(err, write ? "identity:update_project_tags" : "identity:get_project_tag");
    }
    json_t *tags = json_object_get(row, "tags");
    if (!json_is_array(tags)) {
        tags = json_array();
        json_object_set_new(row, "tags", tags);
    }
    size_t i;
    json_t *v;
    int found = -1;
    if (tag) json_array_foreach(tags, i, v) if (!strcmp(json_string_value(v), tag)) found = (int)i;
    if (!strcmp(req->method, "GET") || !strcmp(req->method, "HEAD")) {
        if (!tag) {
            ts_http_resp_json(resp, 200, json_pack("{s:O}", "tags", tags));
        } else if (found < 0) {
            rc = ts_err_set(err, TS_ENOTFOUND, "Tag %s not found for project %s.", tag, pid);
        } else {
            ts_http_resp_no_body(resp, 204, 0);
        }
        json_decref(row);
        return rc;
    }
    json_t *newtags = NULL;
    if (!strcmp(req->method, "PUT") && !tag) {
        json_t *body;
        if ((rc = ts_http_json_body(req, &body, err)) < 0) goto out;
        newtags = json_object_get(body, "tags");
        if (!json_is_array(newtags) || json_array_size(newtags) > 80) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid input for field 'tags'.");
            goto out;
        }
        json_array_foreach(newtags, i, v) {
            const char *s = json_string_value(v);
            if (!s || !*s || strlen(s) > 255 || strchr(s, '/') || strchr(s, ',')) {
                rc = ts_err_set(err, TS_EINVAL, "Invalid input for field 'tags': invalid tag.");
                goto out;
            }
        }
        json_object_set(row, "tags", newtags);
    } else if (!strcmp(req->method, "PUT")) {
        if (strlen(tag) > 255 || strchr(tag, ',')) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid input for field 'tag'.");
            goto out;
        }
        if (found < 0) {
            if (json_array_size(tags) >= 80) {
                rc = ts_err_set(err, TS_EINVAL, "The number of tags exceeds the limit of 80.");
                goto out;
            }
            json_array_append_new(tags, json_string(tag));
        }
    } else if (tag) { /* DELETE one */
        if (found < 0) {
            rc = ts_err_set(err, TS_ENOTFOUND, "Tag %s not found for project %s.", tag, pid);
            goto out;
        }
        json_array_remove(tags, (size_t)found);
    } else { /* DELETE all */
        json_array_clear(tags);
    }
    /* tags live in the extra JSON of the project */
    {
        struct ts_db_res *res = NULL;
        rc = id_q(id, "SELECT extra FROM projects WHERE id = ?", TS_DB_ARGS(TS_DB_S(pid)), &res, err);
        if (rc < 0) goto out;
        json_t *extra = res->nrows && ts_db_res_get(res, 0, 0) ? json_loads(ts_db_res_get(res, 0, 0), 0, NULL) : NULL;
        ts_db_res_free(res);
        if (!json_is_object(extra)) {
            json_decref(extra);
            extra = json_object();
        }
        json_object_set(extra, "tags", json_object_get(row, "tags"));
        char *text = json_dumps(extra, JSON_COMPACT);
        rc = id_q(id, "UPDATE projects SET extra = ? WHERE id = ?", TS_DB_ARGS(TS_DB_S(text), TS_DB_S(pid)), NULL, err);
        free(text);
        json_decref(extra);
        if (rc < 0) goto out;
    }
    if (!strcmp(req->method, "PUT") && !tag)
        ts_http_resp_json(resp, 200, json_pack("{s:O}", "tags", json_object_get(row, "tags")));
    else if (!strcmp(req->method, "PUT"))
        ts_http_resp_no_body(resp, 201, 0);
    else
        ts_http_resp_no_body(resp, 204, 0);
out:
    json_decref(row);
    return rc;
}
