/*
 * ts_image_members.c: image sharing (/v2/images/{id}/members) as Glance does it: only
 * the owner adds and removes members of a 'shared' image; only the member itself moves
 * its status between pending, accepted and rejected; a member sees its own record.
 */
#include "image/ts_image_int.h"

#include <stdlib.h>
#include <string.h>

#include "json/ts_json.h"

#define MAX_MEMBERS 128

static json_t *member_view(const struct ts_db_res *res, int r, const char *image_id)
{
    char c[32], u[32];
    int64_t cu = ts_db_res_int(res, r, 2, 0), uu = ts_db_res_int(res, r, 3, 0);
    ts_time_iso((double)(cu / 1000000), 0, c);
    ts_time_iso((double)(uu / 1000000), 0, u);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "created_at", c, "updated_at", u, "image_id", image_id,
                     "member_id", ts_db_res_get(res, r, 0), "status", ts_db_res_get(res, r, 1), "schema",
                     "/v2/schemas/member");
}

static bool is_owner(const struct ts_http_req *req, const json_t *view)
{
    return req->auth->project_id[0] && ts_streq(ts_image_vs(view, "owner"), req->auth->project_id);
}

static int load_member(struct ts_image_svc *svc, const char *image_id, const char *member, struct ts_db_res **res,
                       struct ts_err *err)
{
    return ts_db_exec(svc->db,
                      "SELECT member, status, created_at, updated_at FROM image_members WHERE image_id = ? AND member = ?",
                      TS_DB_ARGS(TS_DB_S(image_id), TS_DB_S(member)), res, err);
}

int ts_image_h_members_add(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_image_svc *svc = req->svc;
    json_t *body = NULL, *view = NULL;
    struct ts_db_res *res = NULL;
    int rc = ts_http_json_body(req, &body, err);
    if (rc) return rc;
    const char *member = json_string_value(json_object_get(body, "member"));
    if (!json_is_object(body) || !member || !*member || strlen(member) > 255)
        return ts_err_set(err, TS_EINVAL, "Member to be added not specified");
    const char *id = ts_http_param(req, "image_id");
    rc = ts_image_get_visible(svc, req, id, &view, err);
    if (rc) return rc;
    if ((!is_owner(req, view) && !req->auth->is_admin) || req->auth->is_reader_only) {
        rc = ts_err_set(err, TS_EFORBIDDEN, "You are not permitted to add members to this image.");
        goto out;
    }
    if (!ts_streq(ts_image_vs(view, "visibility"), "shared")) {
        rc = ts_err_set(err, TS_EFORBIDDEN, "Only shared images have members.");
        goto out;
    }
    struct ts_db_res *cnt = NULL;
    rc = ts_db_exec(svc->db, "SELECT COUNT(*) FROM image_members WHERE image_id = ?", TS_DB_ARGS(TS_DB_S(id)), &cnt, err);
    if (rc) goto out;
    int64_t n = ts_db_res_int(cnt, 0, 0, 0);
    ts_db_res_free(cnt);
    if (n >= MAX_MEMBERS) {
        rc = ts_err_set(err, TS_ETOOBIG, "Maximum number of image members exceeded");
        goto out;
    }
    int64_t now = ts_image_now_us();
    rc = ts_db_exec(svc->db,
                    "INSERT INTO image_members (image_id, member, status, created_at, updated_at) "
                    "VALUES (?, ?, 'pending', ?, ?)",
                    TS_DB_ARGS(TS_DB_S(id), TS_DB_S(member), TS_DB_I(now), TS_DB_I(now)), NULL, err);
    if (rc == -TS_ECONFLICT) {
        rc = ts_err_set(err, TS_ECONFLICT, "The target member %s is already associated with image %s.", member, id);
        goto out;
    }
    if (rc) goto out;
    rc = load_member(svc, id, member, &res, err);
    if (rc) goto out;
    ts_http_resp_json(resp, 200, member_view(res, 0, id));
out:
    ts_db_res_free(res);
    json_decref(view);
    return rc;
}

int ts_image_h_members_list(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_image_svc *svc = req->svc;
    json_t *view = NULL;
    struct ts_db_res *res = NULL;
    const char *id = ts_http_param(req, "image_id");
    int rc = ts_image_get_visible(svc, req, id, &view, err);
    if (rc) return rc;
    if (!ts_streq(ts_image_vs(view, "visibility"), "shared")) {
        rc = ts_err_set(err, TS_EFORBIDDEN, "Only shared images have members.");
        goto out;
    }
    if (is_owner(req, view) || req->auth->is_admin)
        rc = ts_db_exec(svc->db,
                        "SELECT member, status, created_at, updated_at FROM image_members WHERE image_id = ? "
                        "ORDER BY created_at, member",
                        TS_DB_ARGS(TS_DB_S(id)), &res, err);
    else
        rc = load_member(svc, id, req->auth->project_id, &res, err);
    if (rc) goto out;
    json_t *arr = json_array();
    for (int r = 0; r < res->nrows; r++) json_array_append_new(arr, member_view(res, r, id));
    ts_http_resp_json(resp, 200, json_pack("{s:o, s:s}", "members", arr, "schema", "/v2/schemas/members"));
out:
    ts_db_res_free(res);
    json_decref(view);
    return rc;
}

int ts_image_h_member_show(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_image_svc *svc = req->svc;
    json_t *view = NULL;
    struct ts_db_res *res = NULL;
    const char *id = ts_http_param(req, "image_id"), *member = ts_http_param(req, "member_id");
    int rc = ts_image_get_visible(svc, req, id, &view, err);
    if (rc) return rc;
    if (!ts_streq(ts_image_vs(view, "visibility"), "shared")) {
        rc = ts_err_set(err, TS_EFORBIDDEN, "Only shared images have members.");
        goto out;
    }
    if (!is_owner(req, view) && !req->auth->is_admin && !ts_streq(member, req->auth->project_id)) {
        rc = ts_err_set(err, TS_ENOTFOUND, "Member %s not found", member ? member : "");
        goto out;
    }
    rc = load_member(svc, id, member, &res, err);
    if (rc) goto out;
    if (res->nrows == 0) {
        rc = ts_err_set(err, TS_ENOTFOUND, "Member %s not found", member ? member : "");
        goto out;
    }
    ts_http_resp_json(resp, 200, member_view(res, 0, id));
out:
    ts_db_res_free(res);
    json_decref(view);
    return rc;
}

int ts_image_h_member_update(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_image_svc *svc = req->svc;
    json_t *body = NULL, *view = NULL;
    struct ts_db_res *res = NULL;
    int rc = ts_http_json_body(req, &body, err);
    if (rc) return rc;
    const char *status = json_string_value(json_object_get(body, "status"));
    if (!json_is_object(body) || !status) return ts_err_set(err, TS_EINVAL, "Status not specified");
    if (!ts_streq(status, "pending") && !ts_streq(status, "accepted") && !ts_streq(status, "rejected"))
        return ts_err_set(err, TS_EINVAL, "Provided object does not match schema 'member': '%s' is not one of "
                                          "['pending', 'accepted', 'rejected']", status);
    const char *id = ts_http_param(req, "image_id"), *member = ts_http_param(req, "member_id");
    rc = ts_image_get_visible(svc, req, id, &view, err);
    if (rc) return rc;
    if (!ts_streq(ts_image_vs(view, "visibility"), "shared")) {
        rc = ts_err_set(err, TS_EFORBIDDEN, "Only shared images have members.");
        goto out;
    }
    rc = load_member(svc, id, member, &res, err);
    if (rc) goto out;
    if (res->nrows == 0) {
        rc = ts_err_set(err, TS_ENOTFOUND, "Member %s not found", member ? member : "");
        goto out;
    }
    if (!ts_streq(member, req->auth->project_id) || req->auth->is_reader_only) {
        rc = ts_err_set(err, TS_EFORBIDDEN, "You are not permitted to modify 'status' on this image member.");
        goto out;
    }
    ts_db_res_free(res);
    res = NULL;
    rc = ts_db_exec(svc->db, "UPDATE image_members SET status = ?, updated_at = ? WHERE image_id = ? AND member = ?",
                    TS_DB_ARGS(TS_DB_S(status), TS_DB_I(ts_image_now_us()), TS_DB_S(id), TS_DB_S(member)), NULL, err);
    if (rc) goto out;
    rc = load_member(svc, id, member, &res, err);
    if (rc) goto out;
    ts_http_resp_json(resp, 200, member_view(res, 0, id));
out:
    ts_db_res_free(res);
    json_decref(view);
    return rc;
}

int ts_image_h_member_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_image_svc *svc = req->svc;
    json_t *view = NULL;
    struct ts_db_res *res = NULL;
    const char *id = ts_http_param(req, "image_id"), *member = ts_http_param(req, "member_id");
    int rc = ts_image_get_visible(svc, req, id, &view, err);
    if (rc) return rc;
    if (!ts_streq(ts_image_vs(view, "visibility"), "shared")) {
        rc = ts_err_set(err, TS_EFORBIDDEN, "Only shared images have members.");
        goto out;
    }
    if (!is_owner(req, view) && !req->auth->is_admin) {
        rc = ts_streq(member, req->auth->project_id)
                 ? ts_err_set(err, TS_EFORBIDDEN, "You are not permitted to delete this image member.")
                 : ts_err_set(err, TS_ENOTFOUND, "Member %s not found", member ? member : "");
        goto out;
    }
    if (req->auth->is_reader_only) {
        rc = ts_err_set(err, TS_EFORBIDDEN, "You are not permitted to delete this image member.");
        goto out;
    }
    rc = ts_db_exec(svc->db, "DELETE FROM image_members WHERE image_id = ? AND member = ?",
                    TS_DB_ARGS(TS_DB_S(id), TS_DB_S(member)), &res, err);
    if (rc) goto out;
    if (res->changes == 0) {
        rc = ts_err_set(err, TS_ENOTFOUND, "Member %s not found", member ? member : "");
        goto out;
    }
    ts_http_resp_no_body(resp, 204, 0);
out:
    ts_db_res_free(res);
    json_decref(view);
    return rc;
}
