/*
 * identity_trust.c: OS-TRUST trusts (/v3/OS-TRUST/trusts): a trustor delegates some of its
 * roles on a project to a trustee. Create, list (filtered by trustor or trustee), show,
 * delete and the trust's roles. Trust-scoped tokens are not issued yet: authenticating
 * with {"scope": {"OS-TRUST:trust": ...}} is refused.
 */
#include <stdio.h>
#include <string.h>

#include "identity/identity_int.h"
#include "json/ts_json.h"

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static json_t *role_json(struct ident *id, const char *rid)
{
    struct ts_db_res *res = NULL;
    json_t *o = NULL;
    if (ts_db_exec(id->db, "SELECT id, name, domain_id FROM roles WHERE id = ?", TS_DB_ARGS(TS_DB_S(rid)), &res,
                   NULL) == 0 &&
        res->nrows) {
        const char *dom = ts_db_res_get(res, 0, 2);
        o = json_pack("{s:s,s:s}", "id", ts_db_res_get(res, 0, 0), "name", ts_db_res_get(res, 0, 1));
        json_object_set_new(o, "domain_id", dom && strcmp(dom, ID_NULL_DOMAIN) ? json_string(dom) : json_null());
        json_object_set_new(o, "links", id_links(id, "roles/%s", rid));
    }
    ts_db_res_free(res);
    return o;
}

static json_t *render(struct ident *id, const struct ts_db_res *res, int r)
{
    const char *tid = ts_db_res_getn(res, r, "id");
    json_t *o = json_pack("{s:s,s:s,s:s}", "id", tid, "trustor_user_id", ts_db_res_getn(res, r, "trustor_user_id"),
                          "trustee_user_id", ts_db_res_getn(res, r, "trustee_user_id"));
    ts_json_set_str(o, "project_id", ts_db_res_getn(res, r, "project_id"));
    json_object_set_new(o, "impersonation", json_boolean(strcmp(ts_db_res_getn(res, r, "impersonation"), "0") != 0));
    const char *exp = ts_db_res_getn(res, r, "expires_at");
    json_object_set_new(o, "expires_at", exp ? json_string(exp) : json_null());
    const char *uses = ts_db_res_getn(res, r, "remaining_uses");
    json_object_set_new(o, "remaining_uses", uses ? json_integer(strtoll(uses, NULL, 10)) : json_null());
    json_object_set_new(o, "allow_redelegation", json_false());
    json_t *ids = json_loads(ts_db_res_getn(res, r, "roles"), 0, NULL);
    json_t *roles = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) {
        json_t *role = role_json(id, json_string_value(v));
        if (role) json_array_append_new(roles, role);
    }
    json_decref(ids);
    json_object_set_new(o, "roles", roles);
    json_object_set_new(o, "roles_links", json_pack("{s:n,s:n,s:s}", "previous", "next", "self", ""));
    json_object_set_new(o, "links", id_links(id, "OS-TRUST/trusts/%s", tid));
    return o;
}

static bool user_exists(struct ident *id, const char *uid)
{
    struct ts_db_res *res = NULL;
    if (!uid || ts_db_exec(id->db, "SELECT 1 FROM users WHERE id = ?", TS_DB_ARGS(TS_DB_S(uid)), &res, NULL) < 0)
        return false;
    bool found = res->nrows > 0;
    ts_db_res_free(res);
    return found;
}

int id_trust_create(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    json_t *body, *in;
    int rc = ts_http_json_body(req, &body, err);
    if (rc < 0) return rc;
    if (ts_json_body_object(body, "trust", &in, err) < 0) return -err->code;
    static const struct ts_json_field fields[] = {
        {"trustor_user_id", TS_J_STRING, true, 1, 64},    {"trustee_user_id", TS_J_STRING, true, 1, 64},
        {"project_id", TS_J_STRING_OR_NULL, false, 0, 64}, {"impersonation", TS_J_BOOL, true, 0, 0},
        {"expires_at", TS_J_STRING_OR_NULL, false, 0, 64}, {"roles", TS_J_ARRAY, false, 0, 0},
        {NULL, 0, 0, 0, 0}};
    if ((rc = ts_json_check(in, fields, false, err)) < 0) return rc;
    const char *trustor = jstr(in, "trustor_user_id"), *trustee = jstr(in, "trustee_user_id");
    const char *project = jstr(in, "project_id");
    if (strcmp(trustor, req->auth->user_id))
        return ts_err_set(err, TS_EFORBIDDEN, "The authenticated user should match the trustor.");
    if (!user_exists(id, trustee)) return ts_err_set(err, TS_ENOTFOUND, "Could not find user: %s.", trustee);
    const json_t *uses = json_object_get(in, "remaining_uses");
    if (uses && !json_is_null(uses) && (!json_is_integer(uses) || json_integer_value(uses) <= 0))
        return ts_err_set(err, TS_EINVAL, "remaining_uses must be a positive integer or null.");
    const char *expires = jstr(in, "expires_at");
    char exp_iso[32] = "";
    if (expires) {
        double t;
        if (ts_time_parse(expires, &t) < 0)
            return ts_err_set(err, TS_EINVAL, "Invalid input for field 'expires_at': %.64s.", expires);
        if (t < ts_now()) return ts_err_set(err, TS_EINVAL, "The expiration date is in the past.");
        ts_time_iso(t, 6, exp_iso);
    }
    /* the roles must be the trustor's (effective) roles on the project */
    json_t *chosen = json_array();
    json_t *mine = project ? id_effective_roles(id, trustor, "project", project, err) : json_array();
    if (!mine) {
        json_decref(chosen);
        return -TS_EIO;
    }
    size_t i, j;
    json_t *w, *m;
    json_array_foreach(json_object_get(in, "roles"), i, w) {
        bool ok = false;
        json_array_foreach(mine, j, m) {
            if ((jstr(w, "id") && ts_streq(jstr(w, "id"), jstr(m, "id"))) ||
                (jstr(w, "name") && ts_streq(jstr(w, "name"), jstr(m, "name")))) {
                json_array_append(chosen, json_object_get(m, "id"));
                ok = true;
                break;
            }
        }
        if (!ok) {
            json_decref(mine);
            json_decref(chosen);
            return ts_err_set(err, TS_EFORBIDDEN, "At least one role should be specified and held by the trustor.");
        }
    }
    json_decref(mine);
    if (project && json_array_size(chosen) == 0) {
        json_decref(chosen);
        return ts_err_set(err, TS_EFORBIDDEN, "At least one role should be specified.");
    }
    char tid[33], now[32];
    ts_uuid_hex(tid);
    id_now_iso(now);
    char *roles_text = json_dumps(chosen, JSON_COMPACT);
    json_decref(chosen);
    rc = id_q(id,
              "INSERT INTO trusts (id, trustor_user_id, trustee_user_id, project_id, impersonation, expires_at, "
              "remaining_uses, roles, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
              TS_DB_ARGS(TS_DB_S(tid), TS_DB_S(trustor), TS_DB_S(trustee), TS_DB_S(project),
                         TS_DB_B(json_is_true(json_object_get(in, "impersonation"))),
                         TS_DB_S(exp_iso[0] ? exp_iso : NULL),
                         json_is_integer(uses) ? TS_DB_I(json_integer_value(uses)) : TS_DB_NULL, TS_DB_S(roles_text),
                         TS_DB_S(now)),
              NULL, err);
    free(roles_text);
    if (rc < 0) return rc;
    struct ts_db_res *res = NULL;
    if ((rc = id_q(id, "SELECT * FROM trusts WHERE id = ?", TS_DB_ARGS(TS_DB_S(tid)), &res, err)) < 0) return rc;
    ts_http_resp_json(resp, 201, json_pack("{s:o}", "trust", render(id, res, 0)));
    ts_db_res_free(res);
    id_notify(id, "OS-TRUST:trust", "created", tid);
    return 0;
}

int id_trust_list(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    const char *trustor = ts_http_query(req, "trustor_user_id"), *trustee = ts_http_query(req, "trustee_user_id");
    const char *me = req->auth->user_id;
    if (!id_is_admin(req) && !(trustor && !strcmp(trustor, me)) && !(trustee && !strcmp(trustee, me)))
        return id_forbid(err, "identity:list_trusts");
    struct ts_db_res *res = NULL;
    int rc = id_q(id,
                  "SELECT * FROM trusts WHERE (? IS NULL OR trustor_user_id = ?) AND (? IS NULL OR trustee_user_id = ?) "
                  "ORDER BY created_at, id",
                  TS_DB_ARGS(TS_DB_S(trustor), TS_DB_S(trustor), TS_DB_S(trustee), TS_DB_S(trustee)), &res, err);
    if (rc < 0) return rc;
    json_t *arr = json_array();
    for (int r = 0; r < res->nrows; r++) json_array_append_new(arr, render(id, res, r));
    ts_db_res_free(res);
    ts_http_resp_json(resp, 200, json_pack("{s:o,s:o}", "trusts", arr, "links", id_collection_links(id, req)));
    return 0;
}

/* Loads a trust the caller may see (trustor, trustee or admin). */
static int load(struct ts_http_req *req, struct ts_db_res **res, struct ts_err *err)
{
    struct ident *id = req->svc;
    const char *tid = ts_http_param(req, "id");
    int rc = id_q(id, "SELECT * FROM trusts WHERE id = ?", TS_DB_ARGS(TS_DB_S(tid)), res, err);
    if (rc < 0) return rc;
    if ((*res)->nrows == 0) {
        ts_db_res_free(*res);
        *res = NULL;
        return ts_err_set(err, TS_ENOTFOUND, "Could not find trust: %s.", tid);
    }
    const char *me = req->auth->user_id;
    if (!id_is_admin(req) && strcmp(ts_db_res_getn(*res, 0, "trustor_user_id"), me) &&
        strcmp(ts_db_res_getn(*res, 0, "trustee_user_id"), me)) {
        ts_db_res_free(*res);
        *res = NULL;
        return id_forbid(err, "identity:get_trust");
    }
    return 0;
}

int id_trust_one(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    struct ts_db_res *res = NULL;
    int rc = load(req, &res, err);
    if (rc < 0) return rc;
    if (!strcmp(req->method, "DELETE")) {
        const char *tid = ts_http_param(req, "id");
        if (strcmp(ts_db_res_getn(res, 0, "trustor_user_id"), req->auth->user_id) && !id_is_admin(req)) {
            ts_db_res_free(res);
            return id_forbid(err, "identity:delete_trust");
        }
        ts_db_res_free(res);
        if ((rc = id_q(id, "DELETE FROM trusts WHERE id = ?", TS_DB_ARGS(TS_DB_S(tid)), NULL, err)) < 0) return rc;
        id_notify(id, "OS-TRUST:trust", "deleted", tid);
        ts_http_resp_no_body(resp, 204, 0);
        return 0;
    }
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "trust", render(id, res, 0)));
    ts_db_res_free(res);
    return 0;
}

/* GET /v3/OS-TRUST/trusts/{id}/roles and GET/HEAD .../roles/{role} */
int id_trust_roles(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    struct ts_db_res *res = NULL;
    int rc = load(req, &res, err);
    if (rc < 0) return rc;
    json_t *t = render(id, res, 0);
    ts_db_res_free(res);
    const char *want = ts_http_param(req, "role");
    json_t *roles = json_object_get(t, "roles");
    if (!want) {
        ts_http_resp_json(resp, 200, json_pack("{s:O,s:o}", "roles", roles, "links", id_collection_links(id, req)));
        json_decref(t);
        return 0;
    }
    size_t i;
    json_t *r;
    json_array_foreach(roles, i, r) {
        if (!ts_streq(jstr(r, "id"), want)) continue;
        if (!strcmp(req->method, "HEAD"))
            ts_http_resp_no_body(resp, 200, 0);
        else
            ts_http_resp_json(resp, 200, json_pack("{s:O}", "role", r));
        json_decref(t);
        return 0;
    }
    json_decref(t);
    return ts_err_set(err, TS_ENOTFOUND, "Could not find role %s in the trust.", want);
}
