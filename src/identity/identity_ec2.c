/*
 * identity_ec2.c: the OS-EC2 extension (/v3/users/{id}/credentials/OS-EC2), what
 * `openstack ec2 credentials create/list/show/delete` call. EC2 key pairs are stored as
 * credentials of type "ec2" whose blob holds {"access","secret","trust_id"} and whose id is
 * the sha256 of the access key, exactly as Keystone stores them, so /v3/credentials sees
 * them too.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/sha.h>

#include "identity/identity_int.h"
#include "json/ts_json.h"

static int own_user(struct ts_http_req *req, const char *uid, const char *rule, struct ts_err *err)
{
    if (!strcmp(uid, req->auth->user_id) || id_is_admin(req)) return 0;
    return id_forbid(err, rule);
}

static void access_id(const char *access, char hex[65])
{
    unsigned char md[32];
    SHA256((const unsigned char *)access, strlen(access), md);
    ts_hex(md, 32, hex);
}

/* One credentials row (id, user_id, project_id, blob) as Keystone's ec2 body; NULL if the
 * blob is not an ec2 blob. */
static json_t *render(struct ident *id, const char *uid, const char *project_id, const char *blob_text)
{
    json_t *blob = json_loads(blob_text ? blob_text : "", 0, NULL);
    const char *access = json_string_value(json_object_get(blob, "access"));
    const char *secret = json_string_value(json_object_get(blob, "secret"));
    json_t *o = NULL;
    if (access && secret) {
        o = json_pack("{s:s,s:s,s:s,s:s,s:n}", "user_id", uid, "tenant_id", project_id ? project_id : "", "access",
                      access, "secret", secret, "trust_id");
        json_object_set_new(o, "links", id_links(id, "users/%s/credentials/OS-EC2/%s", uid, access));
    }
    json_decref(blob);
    return o;
}

static bool user_exists(struct ident *id, const char *uid)
{
    struct ts_db_res *res = NULL;
    if (ts_db_exec(id->db, "SELECT 1 FROM users WHERE id = ?", TS_DB_ARGS(TS_DB_S(uid)), &res, NULL) < 0) return false;
    bool found = res->nrows > 0;
    ts_db_res_free(res);
    return found;
}

int id_ec2_create(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    const char *uid = ts_http_param(req, "id");
    int rc = own_user(req, uid, "identity:ec2_create_credential", err);
    if (rc < 0) return rc;
    json_t *body;
    if ((rc = ts_http_json_body(req, &body, err)) < 0) return rc;
    const char *project = json_string_value(json_object_get(body, "tenant_id"));
    if (!json_is_object(body) || !project)
        return ts_err_set(err, TS_EINVAL, "Invalid input for field 'tenant_id': it is a required property.");
    if (!user_exists(id, uid)) return ts_err_set(err, TS_ENOTFOUND, "Could not find user: %s.", uid);
    json_t *roles = id_effective_roles(id, uid, "project", project, err);
    if (!roles) return -TS_EIO;
    size_t nroles = json_array_size(roles);
    json_decref(roles);
    if (nroles == 0)
        return ts_err_set(err, TS_EUNAUTH, "User %s is unauthorized for project %s.", uid, project);
    char access[33], secret[33], cid[65];
    ts_uuid_hex(access);
    ts_uuid_hex(secret);
    access_id(access, cid);
    json_t *blob = json_pack("{s:s,s:s,s:n}", "access", access, "secret", secret, "trust_id");
    char *text = json_dumps(blob, JSON_COMPACT);
    json_decref(blob);
    rc = id_q(id, "INSERT INTO credentials (id, user_id, project_id, type, blob, extra) VALUES (?, ?, ?, 'ec2', ?, '{}')",
              TS_DB_ARGS(TS_DB_S(cid), TS_DB_S(uid), TS_DB_S(project), TS_DB_S(text)), NULL, err);
    if (rc == 0) {
        ts_http_resp_json(resp, 201, json_pack("{s:o}", "credential", render(id, uid, project, text)));
        id_notify(id, "credential", "created", cid);
    }
    free(text);
    return rc;
}

int id_ec2_list(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    const char *uid = ts_http_param(req, "id");
    int rc = own_user(req, uid, "identity:ec2_list_credentials", err);
    if (rc < 0) return rc;
    if (!user_exists(id, uid)) return ts_err_set(err, TS_ENOTFOUND, "Could not find user: %s.", uid);
    struct ts_db_res *res = NULL;
    rc = id_q(id, "SELECT project_id, blob FROM credentials WHERE user_id = ? AND type = 'ec2' ORDER BY id",
              TS_DB_ARGS(TS_DB_S(uid)), &res, err);
    if (rc < 0) return rc;
    json_t *arr = json_array();
    for (int r = 0; r < res->nrows; r++) {
        json_t *o = render(id, uid, ts_db_res_get(res, r, 0), ts_db_res_get(res, r, 1));
        if (o) json_array_append_new(arr, o);
    }
    ts_db_res_free(res);
    ts_http_resp_json(resp, 200, json_pack("{s:o,s:o}", "credentials", arr, "links", id_collection_links(id, req)));
    return 0;
}

/* GET and DELETE /v3/users/{id}/credentials/OS-EC2/{access} */
int id_ec2_one(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    const char *uid = ts_http_param(req, "id"), *access = ts_http_param(req, "access");
    bool del = !strcmp(req->method, "DELETE");
    int rc = own_user(req, uid, del ? "identity:ec2_delete_credential" : "identity:ec2_get_credential", err);
    if (rc < 0) return rc;
    char cid[65];
    access_id(access, cid);
    struct ts_db_res *res = NULL;
    rc = id_q(id, "SELECT project_id, blob FROM credentials WHERE id = ? AND user_id = ? AND type = 'ec2'",
              TS_DB_ARGS(TS_DB_S(cid), TS_DB_S(uid)), &res, err);
    if (rc < 0) return rc;
    json_t *o = res->nrows ? render(id, uid, ts_db_res_get(res, 0, 0), ts_db_res_get(res, 0, 1)) : NULL;
    ts_db_res_free(res);
    if (!o) return ts_err_set(err, TS_ENOTFOUND, "Could not find credential: %s.", access);
    if (del) {
        json_decref(o);
        if ((rc = id_q(id, "DELETE FROM credentials WHERE id = ?", TS_DB_ARGS(TS_DB_S(cid)), NULL, err)) < 0) return rc;
        id_notify(id, "credential", "deleted", cid);
        ts_http_resp_no_body(resp, 204, 0);
    } else {
        ts_http_resp_json(resp, 200, json_pack("{s:o}", "credential", o));
    }
    return 0;
}
