/*
 * ts_volume_snap.c: snapshots: create (force for in-use volumes), list/detail with
 * filters and pagination, show, update, delete, metadata and the admin actions
 * (reset status, force delete, update status). Data work is cast to the manager.
 */
#include "volume/ts_volume_int.h"

#include <stdlib.h>
#include <string.h>

#define SNAP_COLS                                                                                            \
    "id, volume_id, project_id, user_id, name, description, status, progress, size, host, created_at, "      \
    "updated_at"

static json_t *snap_view(struct ts_volume_svc *svc, struct ts_http_req *req, const struct ts_db_res *r, int i,
                         int mv)
{
    (void)req;
    const char *id = ts_db_res_get(r, i, 0);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "volume_id", json_string(ts_db_res_get(r, i, 1)));
    ts_json_set_str(o, "name", ts_db_res_get(r, i, 4));
    ts_json_set_str(o, "description", ts_db_res_get(r, i, 5));
    json_object_set_new(o, "status", json_string(ts_db_res_get(r, i, 6)));
    json_object_set_new(o, "size", json_integer(ts_db_res_int(r, i, 8, 0)));
    ts_json_set_str(o, "created_at", ts_db_res_get(r, i, 10));
    ts_json_set_str(o, "updated_at", ts_db_res_get(r, i, 11));
    json_object_set_new(o, "metadata", ts_volume_metadata(svc, "snapshot_metadata", "snapshot_id", id));
    ts_json_set_str(o, "os-extended-snapshot-attributes:progress",
                    ts_db_res_get(r, i, 7) ? ts_db_res_get(r, i, 7) : "0%");
    json_object_set_new(o, "os-extended-snapshot-attributes:project_id", json_string(ts_db_res_get(r, i, 2)));
    if (mv >= 14) json_object_set_new(o, "group_snapshot_id", json_null());
    if (mv >= 41) ts_json_set_str(o, "user_id", ts_db_res_get(r, i, 3));
    if (mv >= 65) json_object_set_new(o, "consumes_quota", json_true());
    return o;
}

static int snap_load(struct ts_volume_svc *svc, struct ts_http_req *req, const char *id,
                     struct ts_db_res **out, struct ts_err *err)
{
    struct ts_db_res *r = NULL;
    int rc = ts_db_exec(svc->db, "SELECT " SNAP_COLS " FROM snapshots WHERE id = ?",
                        TS_DB_ARGS(TS_DB_S(id ? id : "")), &r, err);
    if (rc) return rc;
    if (r->nrows == 0 || (!req->auth->is_admin && !ts_streq(ts_db_res_get(r, 0, 2), req->auth->project_id))) {
        ts_db_res_free(r);
        return ts_err_set(err, TS_ENOTFOUND, "Snapshot %s could not be found.", id ? id : "");
    }
    *out = r;
    return 0;
}

int ts_volume_h_snap_create(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = ts_volume_check_writer(req, err))) return rc;
    json_t *body = NULL, *s = NULL;
    struct ts_db_res *vol = NULL, *r = NULL;
    struct ts_db_conn *tx = NULL;
    if ((rc = ts_http_json_body(req, &body, err))) return rc;
    if ((rc = ts_json_body_object(body, "snapshot", &s, err))) return rc;
    const char *vid = ts_json_str(s, "volume_id", NULL);
    json_t *vv = json_object_get(s, "volume_id");
    if (!vv || json_is_null(vv)) return ts_err_set(err, TS_ENOTFOUND, "Volume could not be found.");
    if (!json_is_string(vv))
        return ts_err_set(err, TS_EINVAL, "Invalid input received: volume_id must be a string");
    json_t *nv = json_object_get(s, "name");
    if (!nv || json_is_null(nv)) nv = json_object_get(s, "display_name");
    json_t *dv = json_object_get(s, "description");
    if (!dv || json_is_null(dv)) dv = json_object_get(s, "display_description");
    if ((nv && !json_is_null(nv) && !json_is_string(nv)) || (dv && !json_is_null(dv) && !json_is_string(dv)))
        return ts_err_set(err, TS_EINVAL, "Invalid input: name and description must be strings");
    const char *name = json_string_value(nv), *desc = json_string_value(dv);
    if ((rc = ts_volume_check_text("name", name, 255, err)) ||
        (rc = ts_volume_check_text("description", desc, 255, err)))
        return rc;
    bool force = false;
    json_t *fv = json_object_get(s, "force");
    if (fv && !json_is_null(fv)) {
        if (json_is_boolean(fv))
            force = json_is_true(fv);
        else if (!json_is_string(fv) || ts_parse_bool(json_string_value(fv), &force) != 0)
            return ts_err_set(err, TS_EINVAL, "Invalid value '%s' for force.",
                              json_is_string(fv) ? json_string_value(fv) : "?");
    }
    json_t *md = json_object_get(s, "metadata");
    if (md && !json_is_null(md) && (rc = ts_volume_metadata_check(md, err))) return rc;
    if ((rc = ts_volume_get(svc, req, vid, &vol, err))) return rc;
    const char *st = ts_db_res_getn(vol, 0, "status");
    if (!ts_streq(st, "available") && !(force && ts_streq(st, "in-use"))) {
        rc = ts_err_set(err, TS_EINVAL,
                        "Invalid volume: Volume %s status must be available%s, but current status is: %s.",
                        vid, force ? " or in-use" : "", st);
        goto out;
    }
    const char *host = ts_db_res_getn(vol, 0, "host");
    int64_t size = ts_db_res_int(vol, 0, 7, 0);
    char id[TS_UUID_LEN + 1], now[32];
    ts_uuid(id);
    ts_volume_now(now);
    if ((rc = ts_db_begin(svc->db, &tx, err))) goto out;
    if ((rc = ts_volume_quota_check(svc, tx, ts_db_res_getn(vol, 0, "project_id"), 0, 1, size, err)))
        goto out;
    if ((rc = ts_db_tx_exec(
             tx,
             "INSERT INTO snapshots (id, volume_id, project_id, user_id, name, description, status, "
             "progress, size, host, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'creating', '0%', ?, "
             "?, ?, ?)",
             TS_DB_ARGS(TS_DB_S(id), TS_DB_S(vid), TS_DB_S(ts_db_res_getn(vol, 0, "project_id")),
                        TS_DB_S(req->auth->user_id), TS_DB_S(name), TS_DB_S(desc), TS_DB_I(size),
                        TS_DB_S(host), TS_DB_S(now), TS_DB_S(now)),
             NULL, err)))
        goto out;
    if (json_is_object(md)) {
        const char *k;
        json_t *v;
        json_object_foreach(md, k, v)
        {
            if ((rc = ts_db_tx_exec(
                     tx, "INSERT INTO snapshot_metadata (snapshot_id, key, value) VALUES (?, ?, ?)",
                     TS_DB_ARGS(TS_DB_S(id), TS_DB_S(k), TS_DB_S(json_string_value(v))), NULL, err)))
                goto out;
        }
    }
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    struct ts_err e2 = {0};
    if (!host ||
        ts_volume_cast_manager(svc, host, "create_snapshot",
                               json_pack("{s:s, s:s}", "snapshot_id", id, "volume_id", vid), &e2) != 0)
        ts_db_exec(svc->db, "UPDATE snapshots SET status = 'error' WHERE id = ?", TS_DB_ARGS(TS_DB_S(id)),
                   NULL, NULL);
    if ((rc = snap_load(svc, req, id, &r, err))) goto out;
    json_t *sv = snap_view(svc, req, r, 0, mv);
    json_object_del(sv, "os-extended-snapshot-attributes:progress");
    json_object_del(sv, "os-extended-snapshot-attributes:project_id");
    ts_http_resp_json(resp, 202, json_pack("{s:o}", "snapshot", sv));
out:
    ts_db_rollback(tx);
    ts_db_res_free(vol);
    ts_db_res_free(r);
    return rc;
}

static int snap_list(struct ts_http_req *req, struct ts_http_resp *resp, bool detail, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    bool all = false;
    const char *at = ts_http_query(req, "all_tenants");
    if (at && req->auth->is_admin && ts_parse_bool(at, &all) != 0) all = true;
    const char *status = ts_http_query(req, "status"), *vid = ts_http_query(req, "volume_id");
    const char *name = ts_http_query(req, "name");
    if (!name) name = ts_http_query(req, "display_name");
    int64_t limit = 1000, offset = 0;
    const char *ls = ts_http_query(req, "limit"), *os = ts_http_query(req, "offset"),
               *marker = ts_http_query(req, "marker");
    if (ls && (ts_parse_int64(ls, &limit) != 0 || limit < 0))
        return ts_err_set(err, TS_EINVAL, "Invalid input received: limit must be an integer");
    if (os && (ts_parse_int64(os, &offset) != 0 || offset < 0))
        return ts_err_set(err, TS_EINVAL, "Invalid input received: offset must be an integer");
    if (limit > 1000) limit = 1000;
    const char *sort_dir = ts_http_query(req, "sort_dir"), *sort_key = ts_http_query(req, "sort_key");
    const char *sort = ts_http_query(req, "sort");
    static const char *const skeys[] = {"id",         "name",       "display_name", "status", "size",
                                        "created_at", "updated_at", "volume_id",    NULL};
    static const char *const scols[] = {"id",         "name",       "name",      "status", "size",
                                        "created_at", "updated_at", "volume_id", NULL};
    struct ts_volume_sort sorts[8];
    int ns = ts_volume_sort_parse(sort, sort_key, sort_dir, skeys, scols, sorts, 8, err);
    if (ns < 0) return ns;
    struct ts_buf sql;
    ts_buf_init(&sql, 8192);
    ts_buf_appends(
        &sql,
        "SELECT " SNAP_COLS " FROM snapshots WHERE (CAST(? AS BIGINT) = 1 OR project_id = ?) AND (CAST(? AS "
                            "TEXT) IS NULL OR status = ?) "
        "AND (CAST(? AS TEXT) IS NULL OR volume_id = ?) AND (CAST(? AS TEXT) IS NULL OR name = ?) ORDER BY ");
    for (int i = 0; i < ns; i++)
        ts_buf_printf(&sql, "%s%s %s", i ? ", " : "", sorts[i].key, sorts[i].desc ? "DESC" : "ASC");
    struct ts_db_res *r = NULL;
    rc = ts_db_exec(svc->db, ts_buf_cstr(&sql),
                    TS_DB_ARGS(TS_DB_I(all ? 1 : 0), TS_DB_S(req->auth->project_id), TS_DB_S(status),
                               TS_DB_S(status), TS_DB_S(vid), TS_DB_S(vid), TS_DB_S(name), TS_DB_S(name)),
                    &r, err);
    ts_buf_free(&sql);
    if (rc) return rc;
    int start = (int)offset;
    if (marker) {
        int at_i = -1;
        for (int i = 0; i < r->nrows; i++)
            if (ts_streq(ts_db_res_get(r, i, 0), marker)) at_i = i;
        if (at_i < 0) {
            ts_db_res_free(r);
            return ts_err_set(err, TS_ENOTFOUND, "Marker %s could not be found.", marker);
        }
        start = at_i + 1 + (int)offset;
    }
    json_t *arr = json_array();
    int n = 0;
    for (int i = start; i < r->nrows && n < limit; i++, n++) {
        json_t *v = snap_view(svc, req, r, i, mv);
        if (!detail) {
            json_object_del(v, "os-extended-snapshot-attributes:progress");
            json_object_del(v, "os-extended-snapshot-attributes:project_id");
        }
        json_array_append_new(arr, v);
    }
    json_t *out = json_pack("{s:o}", "snapshots", arr);
    if (ls && n == limit && n > 0 && start + n < r->nrows) {
        const char *host = ts_http_header(req, "Host");
        char *href = ts_asprintf("http://%s/v3/%s/snapshots%s?limit=%lld&marker=%s",
                                 host ? host : "localhost", req->auth->project_id, detail ? "/detail" : "",
                                 (long long)limit, ts_db_res_get(r, start + n - 1, 0));
        json_object_set_new(out, "snapshots_links", json_pack("[{s:s, s:s}]", "href", href, "rel", "next"));
        free(href);
    }
    ts_db_res_free(r);
    ts_http_resp_json(resp, 200, out);
    return 0;
}

int ts_volume_h_snap_list(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    return snap_list(req, resp, false, err);
}

int ts_volume_h_snap_detail(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    return snap_list(req, resp, true, err);
}

int ts_volume_h_snap_show(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    struct ts_db_res *r = NULL;
    if ((rc = snap_load(svc, req, ts_http_param(req, "snapshot_id"), &r, err))) return rc;
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "snapshot", snap_view(svc, req, r, 0, mv)));
    ts_db_res_free(r);
    return 0;
}

int ts_volume_h_snap_update(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = ts_volume_check_writer(req, err))) return rc;
    const char *id = ts_http_param(req, "snapshot_id");
    struct ts_db_res *r = NULL;
    json_t *body = NULL, *s = NULL;
    if ((rc = snap_load(svc, req, id, &r, err))) return rc;
    ts_db_res_free(r);
    r = NULL;
    if ((rc = ts_http_json_body(req, &body, err))) return rc;
    if ((rc = ts_json_body_object(body, "snapshot", &s, err))) return rc;
    char now[32];
    ts_volume_now(now);
    static const char *const keys[][2] = {{"name", "name"},
                                          {"display_name", "name"},
                                          {"description", "description"},
                                          {"display_description", "description"}};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        json_t *v = json_object_get(s, keys[i][0]);
        if (!v) continue;
        if (!json_is_null(v) && !json_is_string(v))
            return ts_err_set(err, TS_EINVAL, "Invalid %s", keys[i][0]);
        if ((rc = ts_volume_check_text(keys[i][0], json_string_value(v), 255, err))) return rc;
        char *sql = ts_asprintf("UPDATE snapshots SET %s = ?, updated_at = ? WHERE id = ?", keys[i][1]);
        rc = ts_db_exec(svc->db, sql, TS_DB_ARGS(TS_DB_S(json_string_value(v)), TS_DB_S(now), TS_DB_S(id)),
                        NULL, err);
        free(sql);
        if (rc) return rc;
    }
    if ((rc = snap_load(svc, req, id, &r, err))) return rc;
    json_t *sv = snap_view(svc, req, r, 0, mv);
    json_object_del(sv, "os-extended-snapshot-attributes:progress");
    json_object_del(sv, "os-extended-snapshot-attributes:project_id");
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "snapshot", sv));
    ts_db_res_free(r);
    return 0;
}

static int start_delete(struct ts_volume_svc *svc, const char *id, const char *host, struct ts_err *err)
{
    (void)err;
    ts_db_exec(svc->db, "UPDATE snapshots SET status = 'deleting' WHERE id = ?", TS_DB_ARGS(TS_DB_S(id)),
               NULL, NULL);
    if (!host || ts_volume_cast_manager(svc, host, "delete_snapshot", json_pack("{s:s}", "snapshot_id", id),
                                        NULL) != 0) {
        ts_db_exec(svc->db, "DELETE FROM snapshot_metadata WHERE snapshot_id = ?", TS_DB_ARGS(TS_DB_S(id)),
                   NULL, NULL);
        ts_db_exec(svc->db, "DELETE FROM snapshots WHERE id = ?", TS_DB_ARGS(TS_DB_S(id)), NULL, NULL);
    }
    return 0;
}

int ts_volume_h_snap_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = ts_volume_check_writer(req, err))) return rc;
    const char *id = ts_http_param(req, "snapshot_id");
    struct ts_db_res *r = NULL;
    if ((rc = snap_load(svc, req, id, &r, err))) return rc;
    const char *st = ts_db_res_get(r, 0, 6);
    if (!ts_streq(st, "available") && !ts_streq(st, "error") && !ts_streq(st, "error_deleting")) {
        rc = ts_err_set(
            err, TS_EINVAL,
            "Invalid snapshot: Snapshot status must be available or error and must not be part of a group.");
    } else {
        struct ts_db_res *u = NULL;
        rc = ts_db_exec(svc->db, "UPDATE snapshots SET status = 'deleting' WHERE id = ? AND status = ?",
                        TS_DB_ARGS(TS_DB_S(id), TS_DB_S(st)), &u, err);
        if (rc == 0 && u->changes == 0) rc = ts_err_set(err, TS_EINVAL, "Invalid snapshot: status changed");
        ts_db_res_free(u);
        if (rc == 0) {
            start_delete(svc, id, ts_db_res_get(r, 0, 9), err);
            ts_http_resp_body(resp, 202, NULL, "", 0);
        }
    }
    ts_db_res_free(r);
    return rc;
}

int ts_volume_h_snap_metadata(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    const char *id = ts_http_param(req, "snapshot_id");
    struct ts_db_res *r = NULL;
    if ((rc = snap_load(svc, req, id, &r, err))) return rc;
    ts_db_res_free(r);
    return ts_volume_metadata_handle(svc, req, resp, "snapshot_metadata", "snapshot_id", id,
                                     ts_http_param(req, "key"), err);
}

int ts_volume_h_snap_action(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = ts_volume_check_writer(req, err))) return rc;
    const char *id = ts_http_param(req, "snapshot_id");
    struct ts_db_res *r = NULL;
    json_t *body = NULL;
    if ((rc = snap_load(svc, req, id, &r, err))) return rc;
    char host[320];
    snprintf(host, sizeof(host), "%s", ts_db_res_get(r, 0, 9) ? ts_db_res_get(r, 0, 9) : "");
    ts_db_res_free(r);
    if ((rc = ts_http_json_body(req, &body, err))) return rc;
    json_t *a;
    if ((a = json_object_get(body, "os-reset_status")) ||
        (a = json_object_get(body, "os-update_snapshot_status"))) {
        bool reset = json_object_get(body, "os-reset_status") != NULL;
        if (reset && !req->auth->is_admin)
            return ts_err_set(err, TS_EFORBIDDEN, "Policy doesn't allow this operation to be performed.");
        const char *st = json_is_object(a) ? ts_json_str(a, "status", NULL) : NULL;
        static const char *const ok[] = {"available",  "error",          "creating",
                                         "deleting",   "error_deleting", "restoring",
                                         "unmanaging", "backing-up",     NULL};
        bool valid = false;
        for (int i = 0; st && ok[i]; i++)
            if (!strcmp(ok[i], st)) valid = true;
        if (!valid) return ts_err_set(err, TS_EINVAL, "Must specify a valid status");
        const char *prog = json_is_object(a) ? ts_json_str(a, "progress", NULL) : NULL;
        ts_db_exec(svc->db, "UPDATE snapshots SET status = ?, progress = COALESCE(?, progress) WHERE id = ?",
                   TS_DB_ARGS(TS_DB_S(st), TS_DB_S(prog), TS_DB_S(id)), NULL, NULL);
        ts_http_resp_body(resp, 202, NULL, "", 0);
        return 0;
    }
    if (json_object_get(body, "os-force_delete")) {
        if (!req->auth->is_admin)
            return ts_err_set(err, TS_EFORBIDDEN, "Policy doesn't allow this operation to be performed.");
        start_delete(svc, id, host[0] ? host : NULL, err);
        ts_http_resp_body(resp, 202, NULL, "", 0);
        return 0;
    }
    return ts_err_set(err, TS_EINVAL, "There is no such action");
}
