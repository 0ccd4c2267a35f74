/*
 * identity_appcred.c: application credentials (/v3/users/{id}/application_credentials)
 * and their use as an authentication method. The secret is shown once at creation and
 * kept only as a bcrypt hash; the credential grants a subset of its creator's roles on
 * one project.
 */
#include <stdio.h>
#include <string.h>

#include "identity/identity_int.h"
#include "json/ts_json.h"

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static int own_user(struct ts_http_req *req, const char *uid, const char *rule, struct ts_err *err)
{
    if (!strcmp(uid, req->auth->user_id) || id_is_admin(req)) return 0;
    return id_forbid(err, rule);
}

static json_t *render(struct ident *id, const struct ts_db_res *res, int r)
{
    json_t *o = json_object();
    const char *uid = ts_db_res_getn(res, r, "user_id"), *cid = ts_db_res_getn(res, r, "id");
    json_object_set_new(o, "id", json_string(cid));
    json_object_set_new(o, "name", json_string(ts_db_res_getn(res, r, "name")));
    ts_json_set_str(o, "description", ts_db_res_getn(res, r, "description"));
    json_object_set_new(o, "user_id", json_string(uid));
    json_object_set_new(o, "project_id", json_string(ts_db_res_getn(res, r, "project_id")));
    ts_json_set_str(o, "expires_at", ts_db_res_getn(res, r, "expires_at"));
    json_object_set_new(o, "unrestricted", json_boolean(strcmp(ts_db_res_getn(res, r, "unrestricted"), "0") != 0));
    json_t *ids = json_loads(ts_db_res_getn(res, r, "roles"), 0, NULL);
    json_t *roles = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) {
        struct ts_db_res *rr = NULL;
        if (ts_db_exec(id->db, "SELECT id, name, domain_id FROM roles WHERE id = ?", TS_DB_ARGS(TS_DB_S(json_string_value(v))),
                       &rr, NULL) == 0 && rr->nrows) {
            const char *dom = ts_db_res_get(rr, 0, 2);
            json_t *role = json_pack("{s:s,s:s}", "id", ts_db_res_get(rr, 0, 0), "name", ts_db_res_get(rr, 0, 1));
            json_object_set_new(role, "domain_id", dom && strcmp(dom, ID_NULL_DOMAIN) ? json_string(dom) : json_null());
            json_array_append_new(roles, role);
        }
        ts_db_res_free(rr);
    }
    json_decref(ids);
    json_object_set_new(o, "roles", roles);
    json_object_set_new(o, "access_rules", json_array());
    json_object_set_new(o, "links", id_links(id, "users/%s/application_credentials/%s", uid, cid));
    return o;
}

static bool appcred_unrestricted(struct ident *id, const char *cid)
{
    struct ts_db_res *res = NULL;
    if (ts_db_exec(id->db, "SELECT unrestricted FROM app_creds WHERE id = ?", TS_DB_ARGS(TS_DB_S(cid)), &res, NULL) < 0)
        return false;
    bool yes = res->nrows && ts_db_res_get(res, 0, 0) && strcmp(ts_db_res_get(res, 0, 0), "0") != 0;
    ts_db_res_free(res);
    return yes;
}

int id_appcred_create(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    const char *uid = ts_http_param(req, "id");
    int rc = own_user(req, uid, "identity:create_application_credential", err);
    if (rc < 0) return rc;
    if (strcmp(uid, req->auth->user_id))
        return id_forbid(err, "identity:create_application_credential");
    if (!req->auth->project_id[0])
        return ts_err_set(err, TS_EINVAL, "An application credential must be created with a project-scoped token.");
    if (req->auth->n_roles == 0) return id_forbid(err, "identity:create_application_credential");
    /* a restricted application credential may not make (or delete) others: Keystone's rule */
    char parent_ac[65];
    id_token_app_cred(id, req->auth->token, parent_ac);
    if (parent_ac[0] && !appcred_unrestricted(id, parent_ac))
        return id_forbid(err, "identity:create_application_credential");
    json_t *body, *in;
    if ((rc = ts_http_json_body(req, &body, err)) < 0) return rc;
    if (ts_json_body_object(body, "application_credential", &in, err) < 0) return -err->code;
    static const struct ts_json_field fields[] = {
        {"name", TS_J_STRING, true, 1, 255},          {"description", TS_J_STRING_OR_NULL, false, 0, 65535},
        {"secret", TS_J_STRING_OR_NULL, false, 0, 4096}, {"expires_at", TS_J_STRING_OR_NULL, false, 0, 64},
        {"roles", TS_J_ARRAY, false, 0, 0},           {"unrestricted", TS_J_BOOL, false, 0, 0},
        {"access_rules", TS_J_ARRAY, false, 0, 0},    {NULL, 0, 0, 0, 0}};
    if ((rc = ts_json_check(in, fields, true, err)) < 0) return rc;
    const char *expires = jstr(in, "expires_at");
    if (expires) {
        double t;
        if (ts_time_parse(expires, &t) < 0) return ts_err_set(err, TS_EINVAL, "Invalid input for field 'expires_at'.");
        if (t < ts_now()) return ts_err_set(err, TS_EINVAL, "The expiration date is in the past.");
    }
    /* roles: a subset of the caller's roles on the project, by id or name */
    json_t *mine = id_effective_roles(id, uid, "project", req->auth->project_id, err);
    if (!mine) return -TS_EIO;
    json_t *chosen = json_array();
    json_t *want = json_object_get(in, "roles");
    size_t i, j;
    json_t *w, *m;
    if (!want || json_array_size(want) == 0) {
        json_array_foreach(mine, j, m) json_array_append(chosen, json_object_get(m, "id"));
    } else {
        json_array_foreach(want, i, w) {
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
                return ts_err_set(err, TS_EFORBIDDEN, "You are not authorized to grant role %s.",
                                  jstr(w, "name") ? jstr(w, "name") : jstr(w, "id") ? jstr(w, "id") : "?");
            }
        }
    }
    json_decref(mine);
    char cid[33], generated[64] = "";
    ts_uuid_hex(cid);
    const char *secret = jstr(in, "secret");
    if (!secret) {
        unsigned char raw[48];
        ts_random(raw, sizeof(raw));
        char *s = ts_b64url_encode(raw, sizeof(raw), false);
        snprintf(generated, sizeof(generated), "%s", s);
        free(s);
        secret = generated;
    }
    char *hash = ts_password_hash(secret, 4);
    char *roles_text = json_dumps(chosen, JSON_COMPACT);
    json_decref(chosen);
    char now[32];
    id_now_iso(now);
    rc = ts_db_exec(id->db,
                    "INSERT INTO app_creds (id, name, secret_hash, description, user_id, project_id, expires_at, "
                    "unrestricted, roles, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    TS_DB_ARGS(TS_DB_S(cid), TS_DB_S(jstr(in, "name")), TS_DB_S(hash), TS_DB_S(jstr(in, "description")),
                               TS_DB_S(uid), TS_DB_S(req->auth->project_id), TS_DB_S(expires),
                               TS_DB_B(json_is_true(json_object_get(in, "unrestricted"))), TS_DB_S(roles_text),
                               TS_DB_S(now)),
                    NULL, err);
    free(hash);
    free(roles_text);
    if (rc == -TS_ECONFLICT)
        return ts_err_set(err, TS_ECONFLICT, "Conflict occurred attempting to store application_credential - Duplicate entry found with name %s.", jstr(in, "name"));
    if (rc < 0) return rc;
    struct ts_db_res *res = NULL;
    if ((rc = id_q(id, "SELECT * FROM app_creds WHERE id = ?", TS_DB_ARGS(TS_DB_S(cid)), &res, err)) < 0) return rc;
    json_t *o = render(id, res, 0);
    ts_db_res_free(res);
    json_object_set_new(o, "secret", json_string(secret));
    ts_http_resp_json(resp, 201, json_pack("{s:o}", "application_credential", o));
    return 0;
}

int id_appcred_list(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    const char *uid = ts_http_param(req, "id");
    int rc = own_user(req, uid, "identity:list_application_credentials", err);
    if (rc < 0) return rc;
    struct ts_db_res *res = NULL;
    const char *name = ts_http_query(req, "name");
    rc = name ? id_q(id, "SELECT * FROM app_creds WHERE user_id = ? AND name = ? ORDER BY name",
                     TS_DB_ARGS(TS_DB_S(uid), TS_DB_S(name)), &res, err)
              : id_q(id, "SELECT * FROM app_creds WHERE user_id = ? ORDER BY name", TS_DB_ARGS(TS_DB_S(uid)), &res, err);
    if (rc < 0) return rc;
    json_t *arr = json_array();
    for (int r = 0; r < res->nrows; r++) json_array_append_new(arr, render(id, res, r));
    ts_db_res_free(res);
    ts_http_resp_json(resp, 200, json_pack("{s:o,s:o}", "application_credentials", arr, "links", id_collection_links(id, req)));
    return 0;
}

static int load(struct ident *id, const char *uid, const char *cid, struct ts_db_res **res, struct ts_err *err)
{
    int rc = id_q(id, "SELECT * FROM app_creds WHERE id = ? AND user_id = ?", TS_DB_ARGS(TS_DB_S(cid), TS_DB_S(uid)),
                  res, err);
    if (rc < 0) return rc;
    if ((*res)->nrows == 0) {
        ts_db_res_free(*res);
        *res = NULL;
        return ts_err_set(err, TS_ENOTFOUND, "Could not find Application Credential: %s.", cid);
    }
    return 0;
}

int id_appcred_get(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    const char *uid = ts_http_param(req, "id"), *cid = ts_http_param(req, "cred");
    int rc = own_user(req, uid, "identity:get_application_credential", err);
    if (rc < 0) return rc;
    struct ts_db_res *res = NULL;
    if ((rc = load(id, uid, cid, &res, err)) < 0) return rc;
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "application_credential", render(id, res, 0)));
    ts_db_res_free(res);
    return 0;
}

int id_appcred_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    const char *uid = ts_http_param(req, "id"), *cid = ts_http_param(req, "cred");
    int rc = own_user(req, uid, "identity:delete_application_credential", err);
    if (rc < 0) return rc;
    struct ts_db_res *res = NULL;
    if ((rc = load(id, uid, cid, &res, err)) < 0) return rc;
    ts_db_res_free(res);
    if ((rc = id_q(id, "DELETE FROM app_creds WHERE id = ?", TS_DB_ARGS(TS_DB_S(cid)), NULL, err)) < 0) return rc;
    /* no revocation event: tokens issued with it stop validating because token_body finds
     * no credential; revoking the user would also kill the token making this call */
    ts_http_resp_no_body(resp, 204, 0);
    return 0;
}

int id_appcred_authenticate(struct ident *id, const json_t *ac, char *user_id, size_t uid_len, char *project_id,
                            size_t pid_len, char *app_cred_id, json_t **roles, struct ts_err *err)
{
    const char *cid = jstr(ac, "id"), *name = jstr(ac, "name"), *secret = jstr(ac, "secret");
    if (!secret) return ts_err_set(err, TS_EINVAL, "Expecting to find secret in application_credential.");
    struct ts_db_res *res = NULL;
    int rc;
    if (cid) {
        rc = id_q(id, "SELECT * FROM app_creds WHERE id = ?", TS_DB_ARGS(TS_DB_S(cid)), &res, err);
    } else {
        const json_t *u = json_object_get(ac, "user");
        const char *uid = jstr(u, "id");
        if (!name || !json_is_object(u)) return ts_err_set(err, TS_EINVAL, "Expecting to find id or name and user in application_credential.");
        if (uid) {
            rc = id_q(id, "SELECT * FROM app_creds WHERE name = ? AND user_id = ?", TS_DB_ARGS(TS_DB_S(name), TS_DB_S(uid)),
                      &res, err);
        } else {
            const json_t *d = json_object_get(u, "domain");
            rc = id_q(id,
                      "SELECT a.* FROM app_creds a JOIN users u ON u.id = a.user_id JOIN domains d ON d.id = u.domain_id "
                      "WHERE a.name = ? AND u.name = ? AND (d.id = ? OR d.name = ?)",
                      TS_DB_ARGS(TS_DB_S(name), TS_DB_S(jstr(u, "name")), TS_DB_S(jstr(d, "id")), TS_DB_S(jstr(d, "name"))),
                      &res, err);
        }
    }
    if (rc < 0) return rc;
    rc = ts_err_set(err, TS_EUNAUTH, "The request you have made requires authentication.");
    if (res->nrows == 0 || !ts_password_verify(secret, ts_db_res_getn(res, 0, "secret_hash"))) goto out;
    const char *exp = ts_db_res_getn(res, 0, "expires_at");
    double t;
    if (exp && ts_time_parse(exp, &t) == 0 && t < ts_now()) goto out;
    snprintf(user_id, uid_len, "%s", ts_db_res_getn(res, 0, "user_id"));
    snprintf(project_id, pid_len, "%s", ts_db_res_getn(res, 0, "project_id"));
    snprintf(app_cred_id, 65, "%s", ts_db_res_getn(res, 0, "id"));
    *roles = json_loads(ts_db_res_getn(res, 0, "roles"), 0, NULL);
    ts_err_clear(err);
    rc = 0;
out:
    ts_db_res_free(res);
    return rc;
}
