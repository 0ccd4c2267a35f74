/*
 * ts_volume_actions.c: POST /volumes/{id}/action (extend, reset-status, bootable and
 * readonly flags, the Nova-era reserve/initialize_connection/attach/detach calls, upload
 * to image, revert to snapshot, retype, force delete/detach) and the attachments API
 * (3.27+: create, update with a connector, complete, delete). connection_info comes from
 * the volume's backend ("file" with path/device_path for file volumes).
 */
#include "volume/ts_volume_int.h"

#include <stdlib.h>
#include <string.h>

static int json_bool_lax(json_t *v, bool *out)
{
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    if (json_is_string(v)) return ts_parse_bool(json_string_value(v), out);
    return -TS_EINVAL;
}

static json_t *connection_info(struct ts_volume_svc *svc, const char *host, const char *vol_id,
                               const char *mode)
{
    struct ts_volume_backend *be = ts_volume_mgr_backend(svc, host);
    if (!be) return NULL;
    json_t *ci = be->ops->connection_info(be, vol_id);
    json_t *data = json_object_get(ci, "data");
    if (data)
        json_object_set_new(data, "access_mode", json_string(mode && !strcmp(mode, "ro") ? "ro" : "rw"));
    return ci;
}

/* Recomputes status/attach_status from the attachments after a detach. */
static void settle_attach_state(struct ts_volume_svc *svc, const char *vol_id)
{
    struct ts_db_res *r = NULL;
    if (ts_db_exec(svc->db,
                   "SELECT COUNT(*), SUM(CASE WHEN attach_status = 'attached' THEN 1 ELSE 0 END) "
                   "FROM attachments WHERE volume_id = ?",
                   TS_DB_ARGS(TS_DB_S(vol_id)), &r, NULL) != 0)
        return;
    int64_t total = ts_db_res_int(r, 0, 0, 0), attached = ts_db_res_int(r, 0, 1, 0);
    ts_db_res_free(r);
    char now[32];
    ts_volume_now(now);
    const char *st = attached > 0 ? "in-use" : total > 0 ? "reserved" : "available";
    ts_db_exec(svc->db, "UPDATE volumes SET status = ?, attach_status = ?, updated_at = ? WHERE id = ?",
               TS_DB_ARGS(TS_DB_S(st), TS_DB_S(attached > 0 ? "attached" : "detached"), TS_DB_S(now),
                          TS_DB_S(vol_id)),
               NULL, NULL);
}

static int need_admin(struct ts_http_req *req, struct ts_err *err)
{
    if (!req->auth->is_admin)
        return ts_err_set(err, TS_EFORBIDDEN, "Policy doesn't allow this operation to be performed.");
    return 0;
}

static int act_extend(struct ts_volume_svc *svc, struct ts_http_req *req, struct ts_http_resp *resp,
                      struct ts_db_res *vol, json_t *a, int mv, struct ts_err *err)
{
    const char *id = ts_db_res_getn(vol, 0, "id");
    json_t *ns = json_is_object(a) ? json_object_get(a, "new_size") : NULL;
    int64_t new_size;
    char buf[64];
    if (json_is_integer(ns))
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(ns));
    else if (json_is_string(ns))
        snprintf(buf, sizeof(buf), "%s", json_string_value(ns));
    else
        return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute new_size.");
    int rc = ts_volume_size_parse(buf, &new_size, err);
    if (rc) return rc;
    int64_t size = ts_db_res_int(vol, 0, 7, 0);
    const char *status = ts_db_res_getn(vol, 0, "status");
    bool in_use = ts_streq(status, "in-use");
    if (!ts_streq(status, "available") && !(in_use && mv >= 42))
        return ts_err_set(err, TS_EINVAL,
                          "Invalid volume: Volume %s status must be '%s' to extend, currently %s.", id,
                          mv >= 42 ? "available' or 'in-use" : "available", status);
    if (new_size <= size)
        return ts_err_set(err, TS_EINVAL,
                          "Invalid input received: New size for extend must be greater than current "
                          "size. (current: %lld, extended: %lld).",
                          (long long)size, (long long)new_size);
    struct ts_db_conn *tx = NULL;
    if ((rc = ts_db_begin(svc->db, &tx, err))) return rc;
    rc = ts_volume_quota_check(svc, tx, ts_db_res_getn(vol, 0, "project_id"), 0, 0, new_size - size, err);
    if (rc == 0) {
        struct ts_db_res *u = NULL;
        rc = ts_db_tx_exec(tx, "UPDATE volumes SET status = 'extending' WHERE id = ? AND status = ?",
                           TS_DB_ARGS(TS_DB_S(id), TS_DB_S(status)), &u, err);
        if (rc == 0 && u->changes == 0) rc = ts_err_set(err, TS_EINVAL, "Invalid volume: status changed");
        ts_db_res_free(u);
    }
    if (rc) {
        ts_db_rollback(tx);
        return rc;
    }
    if ((rc = ts_db_commit(tx, err))) return rc;
    ts_volume_cast_manager(svc, ts_db_res_getn(vol, 0, "host"), "extend_volume",
                           json_pack("{s:s, s:I, s:s}", "volume_id", id, "new_size", (json_int_t)new_size,
                                     "restore_status", in_use ? "in-use" : "available"),
                           NULL);
    (void)req;
    ts_http_resp_body(resp, 202, NULL, "", 0);
    return 0;
}

static int act_reset_status(struct ts_volume_svc *svc, struct ts_http_req *req, struct ts_http_resp *resp,
                            struct ts_db_res *vol, json_t *a, struct ts_err *err)
{
    int rc = need_admin(req, err);
    if (rc) return rc;
    const char *id = ts_db_res_getn(vol, 0, "id");
    if (!json_is_object(a)) return ts_err_set(err, TS_EINVAL, "Malformed request body");
    const char *st = ts_json_str(a, "status", NULL), *ast = ts_json_str(a, "attach_status", NULL);
    const char *mst = ts_json_str(a, "migration_status", NULL);
    if (!st && !ast && !mst)
        return ts_err_set(err, TS_EINVAL,
                          "Must specify 'status', 'attach_status' or 'migration_status' for update.");
    if (st && !ts_volume_status_valid(st)) return ts_err_set(err, TS_EINVAL, "Must specify a valid status");
    if (ast && !ts_streq(ast, "attached") && !ts_streq(ast, "detached"))
        return ts_err_set(err, TS_EINVAL, "Must specify a valid attach status");
    char now[32];
    ts_volume_now(now);
    if (st)
        ts_db_exec(svc->db, "UPDATE volumes SET status = ?, updated_at = ? WHERE id = ?",
                   TS_DB_ARGS(TS_DB_S(st), TS_DB_S(now), TS_DB_S(id)), NULL, NULL);
    if (ast) {
        ts_db_exec(svc->db, "UPDATE volumes SET attach_status = ? WHERE id = ?",
                   TS_DB_ARGS(TS_DB_S(ast), TS_DB_S(id)), NULL, NULL);
        if (ts_streq(ast, "detached"))
            ts_db_exec(svc->db, "DELETE FROM attachments WHERE volume_id = ?", TS_DB_ARGS(TS_DB_S(id)), NULL,
                       NULL);
    }
    if (mst)
        ts_db_exec(svc->db, "UPDATE volumes SET migration_status = ? WHERE id = ?",
                   TS_DB_ARGS(TS_DB_S(*mst ? mst : NULL), TS_DB_S(id)), NULL, NULL);
    ts_http_resp_body(resp, 202, NULL, "", 0);
    return 0;
}

static int act_attach(struct ts_volume_svc *svc, struct ts_http_req *req, struct ts_http_resp *resp,
                      struct ts_db_res *vol, json_t *a, struct ts_err *err)
{
    (void)req;
    const char *id = ts_db_res_getn(vol, 0, "id");
    if (!json_is_object(a)) return ts_err_set(err, TS_EINVAL, "Malformed request body");
    const char *inst = ts_json_str(a, "instance_uuid", NULL), *hostn = ts_json_str(a, "host_name", NULL);
    const char *mp = ts_json_str(a, "mountpoint", NULL), *mode = ts_json_str(a, "mode", "rw");
    if (!inst && !hostn)
        return ts_err_set(err, TS_EINVAL, "Invalid request to attach volume to an invalid target");
    if (inst && !ts_uuid_valid(inst))
        return ts_err_set(err, TS_EINVAL, "Invalid request to attach volume to an instance %s", inst);
    if (!mp) return ts_err_set(err, TS_EINVAL, "Missing required element 'mountpoint' in request body.");
    if (!ts_streq(mode, "rw") && !ts_streq(mode, "ro"))
        return ts_err_set(err, TS_EINVAL, "Invalid request to attach volume with an invalid mode.");
    const char *status = ts_db_res_getn(vol, 0, "status");
    bool multi = ts_db_res_int(vol, 0, 14, 0) != 0;
    if (!ts_streq(status, "available") && !ts_streq(status, "reserved") && !ts_streq(status, "attaching") &&
        !(multi && ts_streq(status, "in-use")))
        return ts_err_set(err, TS_EINVAL,
                          "Invalid volume: Volume status must be available or reserved to attach, "
                          "currently %s",
                          status);
    char now[32];
    ts_volume_now(now);
    /* a reservation (os-reserve / attachment create) for this instance becomes the attachment */
    struct ts_db_res *r = NULL;
    int rc = ts_db_exec(svc->db,
                        "SELECT id FROM attachments WHERE volume_id = ? AND attach_status != 'attached' "
                        "AND (instance_uuid = ? OR instance_uuid IS NULL) ORDER BY created_at LIMIT 1",
                        TS_DB_ARGS(TS_DB_S(id), TS_DB_S(inst)), &r, err);
    if (rc) return rc;
    char att_id[TS_UUID_LEN + 1];
    if (r->nrows > 0) {
        snprintf(att_id, sizeof(att_id), "%s", ts_db_res_get(r, 0, 0));
        rc = ts_db_exec(
            svc->db,
            "UPDATE attachments SET instance_uuid = ?, attached_host = ?, mountpoint = ?, "
            "attach_status = 'attached', attach_mode = ?, attach_time = ?, updated_at = ? WHERE id = ?",
            TS_DB_ARGS(TS_DB_S(inst), TS_DB_S(hostn), TS_DB_S(mp), TS_DB_S(mode), TS_DB_S(now), TS_DB_S(now),
                       TS_DB_S(att_id)),
            NULL, err);
    } else {
        ts_uuid(att_id);
        rc = ts_db_exec(svc->db,
                        "INSERT INTO attachments (id, volume_id, instance_uuid, attached_host, mountpoint, "
                        "attach_status, attach_mode, attach_time, created_at, updated_at) VALUES "
                        "(?, ?, ?, ?, ?, 'attached', ?, ?, ?, ?)",
                        TS_DB_ARGS(TS_DB_S(att_id), TS_DB_S(id), TS_DB_S(inst), TS_DB_S(hostn), TS_DB_S(mp),
                                   TS_DB_S(mode), TS_DB_S(now), TS_DB_S(now), TS_DB_S(now)),
                        NULL, err);
    }
    ts_db_res_free(r);
    if (rc) return rc;
    ts_db_exec(
        svc->db,
        "UPDATE volumes SET status = 'in-use', attach_status = 'attached', updated_at = ? WHERE id = ?",
        TS_DB_ARGS(TS_DB_S(now), TS_DB_S(id)), NULL, NULL);
    if (ts_streq(mode, "ro"))
        ts_db_exec(svc->db,
                   "INSERT INTO volume_metadata (volume_id, key, value) VALUES (?, 'attached_mode', 'ro') "
                   "ON CONFLICT (volume_id, key) DO UPDATE SET value = excluded.value",
                   TS_DB_ARGS(TS_DB_S(id)), NULL, NULL);
    ts_volume_notify_volume(svc, "volume.attach.end", id);
    ts_http_resp_body(resp, 202, NULL, "", 0);
    return 0;
}

static int act_detach(struct ts_volume_svc *svc, struct ts_http_req *req, struct ts_http_resp *resp,
                      struct ts_db_res *vol, json_t *a, bool force, struct ts_err *err)
{
    if (force) {
        int rc = need_admin(req, err);
        if (rc) return rc;
    }
    const char *id = ts_db_res_getn(vol, 0, "id");
    const char *att = json_is_object(a) ? ts_json_str(a, "attachment_id", NULL) : NULL;
    struct ts_db_res *r = NULL;
    int rc;
    if (att)
        rc = ts_db_exec(svc->db, "SELECT id FROM attachments WHERE volume_id = ? AND id = ?",
                        TS_DB_ARGS(TS_DB_S(id), TS_DB_S(att)), &r, err);
    else
        rc = ts_db_exec(svc->db, "SELECT id FROM attachments WHERE volume_id = ?", TS_DB_ARGS(TS_DB_S(id)),
                        &r, err);
    if (rc) return rc;
    int n = r->nrows;
    ts_db_res_free(r);
    const char *status = ts_db_res_getn(vol, 0, "status");
    if (n == 0 && !force) {
        if (att)
            return ts_err_set(err, TS_EINVAL, "Invalid volume: Volume %s is not attached to attachment %s",
                              id, att);
        if (!ts_streq(status, "in-use") && !ts_streq(status, "detaching"))
            return ts_err_set(err, TS_EINVAL, "Invalid volume: Volume %s is not attached.", id);
    }
    if (n > 1 && !att && !force)
        return ts_err_set(
            err, TS_EINVAL,
            "Invalid volume: Detach volume needs attachment_id when it has several attachments.");
    if (att)
        ts_db_exec(svc->db, "DELETE FROM attachments WHERE volume_id = ? AND id = ?",
                   TS_DB_ARGS(TS_DB_S(id), TS_DB_S(att)), NULL, NULL);
    else
        ts_db_exec(svc->db, "DELETE FROM attachments WHERE volume_id = ?", TS_DB_ARGS(TS_DB_S(id)), NULL,
                   NULL);
    ts_db_exec(svc->db, "DELETE FROM volume_metadata WHERE volume_id = ? AND key = 'attached_mode'",
               TS_DB_ARGS(TS_DB_S(id)), NULL, NULL);
    settle_attach_state(svc, id);
    ts_volume_notify_volume(svc, "volume.detach.end", id);
    ts_http_resp_body(resp, 202, NULL, "", 0);
    return 0;
}

static int act_upload(struct ts_volume_svc *svc, struct ts_http_req *req, struct ts_http_resp *resp,
                      struct ts_db_res *vol, json_t *a, struct ts_err *err)
{
    const char *id = ts_db_res_getn(vol, 0, "id");
    if (!json_is_object(a)) return ts_err_set(err, TS_EINVAL, "Malformed request body");
    const char *iname = ts_json_str(a, "image_name", NULL);
    if (!iname) return ts_err_set(err, TS_EINVAL, "No image_name was specified in request.");
    const char *dfmt = ts_json_str(a, "disk_format", "raw"),
               *cfmt = ts_json_str(a, "container_format", "bare");
    static const char *const dfmts[] = {"raw", "qcow2", "vmdk", "vdi", "vhd", "vhdx", "ploop", NULL};
    bool okf = false;
    for (int i = 0; dfmts[i]; i++)
        if (ts_streq(dfmt, dfmts[i])) okf = true;
    if (!okf)
        return ts_err_set(err, TS_EINVAL,
                          "Invalid disk-format '%s' is specified. Allowed disk-formats are raw, qcow2, vmdk, "
                          "vdi, vhd, vhdx, ploop.",
                          dfmt);
    bool force = false;
    json_t *fv = json_object_get(a, "force");
    if (fv && json_bool_lax(fv, &force) != 0) return ts_err_set(err, TS_EINVAL, "Invalid value for 'force'");
    const char *status = ts_db_res_getn(vol, 0, "status");
    bool in_use = ts_streq(status, "in-use");
    if (!ts_streq(status, "available") && !(in_use && force))
        return ts_err_set(err, TS_EINVAL,
                          "Invalid volume: Volume %s status must be available or in-use, but current "
                          "status is: %s.",
                          id, status);
    /* the image record, created with the caller's token */
    json_t *ib = json_pack("{s:s, s:s, s:s}", "name", iname, "disk_format", dfmt, "container_format", cfmt);
    const char *vis = ts_json_str(a, "visibility", NULL);
    if (vis) json_object_set_new(ib, "visibility", json_string(vis));
    json_t *prot = json_object_get(a, "protected");
    bool pv;
    if (prot && json_bool_lax(prot, &pv) == 0) json_object_set_new(ib, "protected", json_boolean(pv));
    char *body = ts_json_dump(ib);
    json_decref(ib);
    char *th = ts_asprintf("X-Auth-Token: %s", req->auth->token);
    const char *hdrs[] = {th, "Content-Type: application/json", "Accept: application/json", NULL};
    char *url = ts_asprintf("%s/v2/images", svc->image_url);
    struct ts_http_client_resp r = {0};
    int rc = ts_http_client_request("POST", url, hdrs, body, strlen(body), 15000, &r, err);
    free(url);
    free(body);
    free(th);
    json_t *img = NULL;
    if (rc == 0 && (r.status != 201 || !(img = json_loads(r.body ? r.body : "", 0, NULL)))) {
        if (r.status == 403 || r.status == 413)
            rc = ts_err_set_full(err, TS_EQUOTA, 413, NULL, "Image service refused the image (%d)", r.status);
        else
            rc = ts_err_set(err, TS_EINVAL, "Image service refused the image (%d)", r.status);
    } else if (rc) {
        rc = ts_err_set(err, TS_EUNAVAIL, "Image service unavailable");
    }
    ts_http_client_resp_free(&r);
    if (rc) return rc;
    char image_id[128];
    snprintf(image_id, sizeof(image_id), "%s", ts_json_str(img, "id", ""));
    json_decref(img);
    static const char *const from_av[] = {"available", NULL}, *const from_iu[] = {"in-use", NULL};
    if ((rc = ts_volume_cas_status(svc, id, in_use ? from_iu : from_av, "uploading",
                                   "Invalid volume: status changed", err)))
        return rc;
    ts_volume_cast_manager(svc, ts_db_res_getn(vol, 0, "host"), "upload_image",
                           json_pack("{s:s, s:s, s:s, s:s, s:s}", "volume_id", id, "image_id", image_id,
                                     "disk_format", dfmt, "token", req->auth->token, "restore_status",
                                     in_use ? "in-use" : "available"),
                           NULL);
    char tname[256], now[32];
    ts_volume_type_name(svc, ts_db_res_getn(vol, 0, "volume_type_id"), tname, sizeof(tname));
    ts_volume_now(now);
    json_t *out = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s}", "id", id, "updated_at", now, "status",
                            "uploading", "size", (json_int_t)ts_db_res_int(vol, 0, 7, 0), "image_id",
                            image_id, "container_format", cfmt, "disk_format", dfmt, "image_name", iname);
    ts_json_set_str(out, "display_description", ts_db_res_getn(vol, 0, "description"));
    ts_json_set_str(out, "volume_type", tname[0] ? tname : NULL);
    json_object_set_new(out, "visibility", json_string(vis ? vis : "shared"));
    json_object_set_new(out, "protected", json_false());
    ts_http_resp_json(resp, 202, json_pack("{s:o}", "os-volume_upload_image", out));
    return 0;
}

static int act_revert(struct ts_volume_svc *svc, struct ts_http_req *req, struct ts_http_resp *resp,
                      struct ts_db_res *vol, json_t *a, int mv, struct ts_err *err)
{
    (void)req;
    if (mv < 40) return ts_err_set(err, TS_EINVAL, "Invalid action: revert requires microversion 3.40");
    const char *id = ts_db_res_getn(vol, 0, "id");
    const char *sid = json_is_object(a) ? ts_json_str(a, "snapshot_id", NULL) : NULL;
    if (!sid) return ts_err_set(err, TS_EINVAL, "Invalid input received: snapshot_id is required");
    struct ts_db_res *r = NULL;
    int rc = ts_db_exec(
        svc->db, "SELECT id, status, size FROM snapshots WHERE volume_id = ? ORDER BY created_at DESC, id",
        TS_DB_ARGS(TS_DB_S(id)), &r, err);
    if (rc) return rc;
    bool latest = r->nrows > 0 && ts_streq(ts_db_res_get(r, 0, 0), sid);
    bool exists = false;
    for (int i = 0; i < r->nrows; i++)
        if (ts_streq(ts_db_res_get(r, i, 0), sid)) exists = true;
    bool avail = latest && ts_streq(ts_db_res_get(r, 0, 1), "available");
    int64_t ssize = latest ? ts_db_res_int(r, 0, 2, 0) : 0;
    ts_db_res_free(r);
    if (!exists) return ts_err_set(err, TS_ENOTFOUND, "Snapshot %s could not be found.", sid);
    if (!latest)
        return ts_err_set(err, TS_EINVAL,
                          "Invalid snapshot: Volume %s can only be reverted to its latest snapshot.", id);
    if (!avail || !ts_streq(ts_db_res_getn(vol, 0, "status"), "available"))
        return ts_err_set(err, TS_EINVAL, "Invalid volume: Volume and snapshot must be available to revert.");
    if (ssize != ts_db_res_int(vol, 0, 7, 0))
        return ts_err_set(err, TS_EINVAL,
                          "Invalid volume: Volume size and snapshot size must match to revert.");
    static const char *const from[] = {"available", NULL};
    if ((rc = ts_volume_cas_status(svc, id, from, "reverting", "Invalid volume: status changed", err)))
        return rc;
    ts_db_exec(svc->db, "UPDATE snapshots SET status = 'restoring' WHERE id = ?", TS_DB_ARGS(TS_DB_S(sid)),
               NULL, NULL);
    ts_volume_cast_manager(svc, ts_db_res_getn(vol, 0, "host"), "revert_to_snapshot",
                           json_pack("{s:s, s:s}", "volume_id", id, "snapshot_id", sid), NULL);
    ts_http_resp_body(resp, 202, NULL, "", 0);
    return 0;
}

/* os-set/unset/show_image_metadata: the volume_image_metadata kept from the image. */
static int act_image_metadata(struct ts_volume_svc *svc, struct ts_http_resp *resp, struct ts_db_res *vol,
                              const char *action, json_t *a, struct ts_err *err)
{
    const char *id = ts_db_res_getn(vol, 0, "id"), *cur = ts_db_res_getn(vol, 0, "image_meta");
    json_t *meta = cur ? json_loads(cur, 0, NULL) : NULL;
    if (!json_is_object(meta)) {
        json_decref(meta);
        meta = json_object();
    }
    int rc = 0;
    if (!strcmp(action, "os-set_image_metadata")) {
        json_t *m = json_is_object(a) ? json_object_get(a, "metadata") : NULL;
        if (!m || (rc = ts_volume_metadata_check(m, err))) {
            if (!rc) rc = ts_err_set(err, TS_EINVAL, "Malformed request body");
            goto out;
        }
        json_object_update(meta, m);
    } else if (!strcmp(action, "os-unset_image_metadata")) {
        const char *key = json_is_object(a) ? ts_json_str(a, "key", NULL) : NULL;
        if (!key) {
            rc = ts_err_set(err, TS_EINVAL, "Malformed request body");
            goto out;
        }
        if (json_object_del(meta, key) != 0) {
            rc = ts_err_set(err, TS_ENOTFOUND, "Glance metadata %s for volume %s could not be found.", key,
                            id);
            goto out;
        }
    }
    if (strcmp(action, "os-show_image_metadata")) {
        char *s = ts_json_dump(meta);
        rc = ts_db_exec(svc->db, "UPDATE volumes SET image_meta = ? WHERE id = ?",
                        TS_DB_ARGS(TS_DB_S(s), TS_DB_S(id)), NULL, err);
        free(s);
        if (rc) goto out;
    }
    if (!strcmp(action, "os-unset_image_metadata"))
        ts_http_resp_body(resp, 200, NULL, "", 0);
    else
        ts_http_resp_json(resp, 200, json_pack("{s:O}", "metadata", meta));
out:
    json_decref(meta);
    return rc;
}

static int simple_cas(struct ts_volume_svc *svc, struct ts_http_resp *resp, const char *id, const char *from1,
                      const char *from2, const char *to, struct ts_err *err)
{
    const char *from[] = {from1, from2, NULL};
    int rc = ts_volume_cas_status(svc, id, from, to,
                                  "Invalid volume: Volume status is not valid for this action.", err);
    if (rc) return rc;
    ts_http_resp_body(resp, 202, NULL, "", 0);
    return 0;
}

int ts_volume_h_action(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = ts_volume_check_writer(req, err))) return rc;
    const char *id = ts_http_param(req, "volume_id");
    struct ts_db_res *vol = NULL;
    json_t *body = NULL;
    if ((rc = ts_volume_get(svc, req, id, &vol, err))) return rc;
    if ((rc = ts_http_json_body(req, &body, err))) goto out;
    if (!json_is_object(body) || json_object_size(body) != 1) {
        rc = ts_err_set(err, TS_EINVAL, "There is no such action");
        goto out;
    }
    const char *action = json_object_iter_key(json_object_iter(body));
    json_t *a = json_object_get(body, action);
    char now[32];
    ts_volume_now(now);
    if (!strcmp(action, "os-extend"))
        rc = act_extend(svc, req, resp, vol, a, mv, err);
    else if (!strcmp(action, "os-reset_status"))
        rc = act_reset_status(svc, req, resp, vol, a, err);
    else if (!strcmp(action, "os-set_bootable")) {
        bool b;
        json_t *bv = json_is_object(a) ? json_object_get(a, "bootable") : NULL;
        if (!bv || json_bool_lax(bv, &b) != 0)
            rc = ts_err_set(err, TS_EINVAL, "Invalid value for 'bootable'");
        else {
            rc = ts_db_exec(svc->db, "UPDATE volumes SET bootable = ?, updated_at = ? WHERE id = ?",
                            TS_DB_ARGS(TS_DB_B(b), TS_DB_S(now), TS_DB_S(id)), NULL, err);
            if (rc == 0) ts_http_resp_body(resp, 200, NULL, "", 0);
        }
    } else if (!strcmp(action, "os-update_readonly_flag")) {
        bool b;
        json_t *bv = json_is_object(a) ? json_object_get(a, "readonly") : NULL;
        if (!bv || json_bool_lax(bv, &b) != 0)
            rc = ts_err_set(err, TS_EINVAL, "Invalid value for 'readonly'");
        else if (!ts_streq(ts_db_res_getn(vol, 0, "status"), "available") &&
                 !ts_streq(ts_db_res_getn(vol, 0, "status"), "in-use"))
            rc = ts_err_set(err, TS_EINVAL, "Invalid volume: Volume status must be available or in-use");
        else {
            rc = ts_db_exec(svc->db,
                            "INSERT INTO volume_metadata (volume_id, key, value) VALUES (?, 'readonly', ?) "
                            "ON CONFLICT (volume_id, key) DO UPDATE SET value = excluded.value",
                            TS_DB_ARGS(TS_DB_S(id), TS_DB_S(b ? "True" : "False")), NULL, err);
            if (rc == 0) ts_http_resp_body(resp, 202, NULL, "", 0);
        }
    } else if (!strcmp(action, "os-reserve")) {
        rc = simple_cas(svc, resp, id, "available", ts_db_res_int(vol, 0, 14, 0) ? "in-use" : NULL,
                        "attaching", err);
    } else if (!strcmp(action, "os-unreserve")) {
        struct ts_db_res *r = NULL;
        rc = ts_db_exec(svc->db,
                        "SELECT COUNT(*) FROM attachments WHERE volume_id = ? AND attach_status = 'attached'",
                        TS_DB_ARGS(TS_DB_S(id)), &r, err);
        bool attached = rc == 0 && ts_db_res_int(r, 0, 0, 0) > 0;
        ts_db_res_free(r);
        if (rc == 0) {
            static const char *const from[] = {"attaching", "reserved", NULL};
            rc = ts_volume_cas_status(
                svc, id, from, attached ? "in-use" : "available",
                "Invalid volume: Volume status must be attaching or reserved to unreserve.", err);
            if (rc == 0) ts_http_resp_body(resp, 202, NULL, "", 0);
        }
    } else if (!strcmp(action, "os-begin_detaching")) {
        rc = simple_cas(svc, resp, id, "in-use", NULL, "detaching", err);
    } else if (!strcmp(action, "os-roll_detaching")) {
        static const char *const from[] = {"detaching", NULL};
        ts_volume_cas_status(svc, id, from, "in-use", "", NULL);
        ts_http_resp_body(resp, 202, NULL, "", 0);
    } else if (!strcmp(action, "os-initialize_connection")) {
        json_t *conn = json_is_object(a) ? json_object_get(a, "connector") : NULL;
        if (!json_is_object(conn))
            rc = ts_err_set(err, TS_EINVAL, "Must specify 'connector'");
        else {
            json_t *ci = connection_info(svc, ts_db_res_getn(vol, 0, "host"), id, NULL);
            if (!ci)
                rc = ts_err_set(err, TS_EINVAL, "Invalid volume: Volume %s has no backend (status %s).", id,
                                ts_db_res_getn(vol, 0, "status"));
            else
                ts_http_resp_json(resp, 200, json_pack("{s:o}", "connection_info", ci));
        }
    } else if (!strcmp(action, "os-set_image_metadata") || !strcmp(action, "os-unset_image_metadata") ||
               !strcmp(action, "os-show_image_metadata")) {
        rc = act_image_metadata(svc, resp, vol, action, a, err);
    } else if (!strcmp(action, "os-terminate_connection")) {
        ts_http_resp_body(resp, 202, NULL, "", 0);
    } else if (!strcmp(action, "os-attach")) {
        rc = act_attach(svc, req, resp, vol, a, err);
    } else if (!strcmp(action, "os-detach")) {
        rc = act_detach(svc, req, resp, vol, a, false, err);
    } else if (!strcmp(action, "os-force_detach")) {
        rc = act_detach(svc, req, resp, vol, a, true, err);
    } else if (!strcmp(action, "os-volume_upload_image")) {
        rc = act_upload(svc, req, resp, vol, a, err);
    } else if (!strcmp(action, "revert")) {
        rc = act_revert(svc, req, resp, vol, a, mv, err);
    } else if (!strcmp(action, "os-retype")) {
        const char *nt = json_is_object(a) ? ts_json_str(a, "new_type", NULL) : NULL;
        char tid[64], tname[256];
        if (!nt)
            rc = ts_err_set(err, TS_EINVAL, "New volume type must be specified.");
        else if ((rc = ts_volume_type_resolve(svc, req, nt, tid, tname, err)) == 0) {
            const char *st = ts_db_res_getn(vol, 0, "status");
            if (!ts_streq(st, "available") && !ts_streq(st, "in-use"))
                rc = ts_err_set(err, TS_EINVAL, "Invalid volume: Volume status must be available or in-use.");
            else {
                rc = ts_db_exec(svc->db, "UPDATE volumes SET volume_type_id = ?, updated_at = ? WHERE id = ?",
                                TS_DB_ARGS(TS_DB_S(tid), TS_DB_S(now), TS_DB_S(id)), NULL, err);
                if (rc == 0) ts_http_resp_body(resp, 202, NULL, "", 0);
            }
        }
    } else if (!strcmp(action, "os-force_delete")) {
        if ((rc = need_admin(req, err)) == 0) {
            if (ts_streq(ts_db_res_getn(vol, 0, "attach_status"), "attached"))
                rc = ts_err_set(err, TS_EINVAL, "Invalid volume: Volume is attached.");
            else {
                ts_volume_set_status(svc, id, "deleting", NULL);
                const char *host = ts_db_res_getn(vol, 0, "host");
                if (host)
                    ts_volume_cast_manager(svc, host, "delete_volume", json_pack("{s:s}", "volume_id", id),
                                           NULL);
                else
                    ts_db_exec(svc->db, "DELETE FROM volumes WHERE id = ?", TS_DB_ARGS(TS_DB_S(id)), NULL,
                               NULL);
                ts_http_resp_body(resp, 202, NULL, "", 0);
            }
        }
    } else {
        rc = ts_err_set(err, TS_EINVAL, "There is no such action: %s", action);
    }
out:
    ts_db_res_free(vol);
    return rc;
}

/* ---- attachments API (3.27+) ----------------------------------------------------------------- */

#define ATT_COLS                                                                                             \
    "a.id, a.volume_id, a.instance_uuid, a.attached_host, a.mountpoint, a.attach_status, "                   \
    "a.attach_mode, a.connection_info, a.attach_time, a.detach_time, v.host, v.project_id"

static json_t *att_view(const struct ts_db_res *r, int i, bool detail)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(ts_db_res_get(r, i, 0)));
    json_object_set_new(o, "volume_id", json_string(ts_db_res_get(r, i, 1)));
    ts_json_set_str(o, "instance", ts_db_res_get(r, i, 2));
    json_object_set_new(o, "status", json_string(ts_db_res_get(r, i, 5)));
    if (detail) {
        ts_json_set_str(o, "attach_mode", ts_db_res_get(r, i, 6));
        ts_json_set_str(o, "attached_at", ts_db_res_get(r, i, 8));
        ts_json_set_str(o, "detached_at", ts_db_res_get(r, i, 9));
        const char *ci = ts_db_res_get(r, i, 7);
        json_t *cj = ci ? json_loads(ci, 0, NULL) : NULL;
        json_object_set_new(o, "connection_info", cj ? cj : json_object());
    }
    return o;
}

static int att_load(struct ts_volume_svc *svc, struct ts_http_req *req, const char *id,
                    struct ts_db_res **out, struct ts_err *err)
{
    struct ts_db_res *r = NULL;
    int rc = ts_db_exec(svc->db,
                        "SELECT " ATT_COLS " FROM attachments a JOIN volumes v ON v.id = a.volume_id "
                        "WHERE a.id = ?",
                        TS_DB_ARGS(TS_DB_S(id ? id : "")), &r, err);
    if (rc) return rc;
    if (r->nrows == 0 ||
        (!req->auth->is_admin && !ts_streq(ts_db_res_get(r, 0, 11), req->auth->project_id))) {
        ts_db_res_free(r);
        return ts_err_set(err, TS_ENOTFOUND, "Volume attachment %s could not be found.", id ? id : "");
    }
    *out = r;
    return 0;
}

static int att_mv(struct ts_http_req *req, struct ts_http_resp *resp, int need, int *mv, struct ts_err *err)
{
    int rc = ts_volume_begin(req, resp, mv, err);
    if (rc) return rc;
    if (*mv < need) return ts_err_set(err, TS_ENOTFOUND, "The resource could not be found.");
    return 0;
}

/* Stores the connector and returns connection_info; sets attaching states. */
static int att_connect(struct ts_volume_svc *svc, const char *att_id, const char *vol_id, const char *host,
                       json_t *connector, const char *mode, struct ts_err *err)
{
    json_t *ci = connection_info(svc, host, vol_id, mode);
    if (!ci) return ts_err_set(err, TS_EINVAL, "Invalid volume: Volume %s has no backend.", vol_id);
    char *cis = ts_json_dump(ci), *cs = ts_json_dump(connector);
    char now[32];
    ts_volume_now(now);
    const char *hn = ts_json_str(connector, "host", NULL), *mp = ts_json_str(connector, "mountpoint", NULL);
    int rc = ts_db_exec(
        svc->db,
        "UPDATE attachments SET connector = ?, connection_info = ?, attach_status = 'attaching', "
        "attached_host = COALESCE(?, attached_host), mountpoint = COALESCE(?, mountpoint), "
        "updated_at = ? WHERE id = ?",
        TS_DB_ARGS(TS_DB_S(cs), TS_DB_S(cis), TS_DB_S(hn), TS_DB_S(mp), TS_DB_S(now), TS_DB_S(att_id)), NULL,
        err);
    free(cis);
    free(cs);
    json_decref(ci);
    if (rc) return rc;
    ts_db_exec(svc->db,
               "UPDATE volumes SET status = 'attaching', updated_at = ? WHERE id = ? AND status IN "
               "('reserved', 'available')",
               TS_DB_ARGS(TS_DB_S(now), TS_DB_S(vol_id)), NULL, NULL);
    return 0;
}

int ts_volume_h_att_create(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = att_mv(req, resp, 27, &mv, err);
    if (rc) return rc;
    if ((rc = ts_volume_check_writer(req, err))) return rc;
    json_t *body = NULL, *a = NULL;
    struct ts_db_res *vol = NULL, *r = NULL;
    if ((rc = ts_http_json_body(req, &body, err))) return rc;
    if ((rc = ts_json_body_object(body, "attachment", &a, err))) return rc;
    const char *vid = ts_json_str(a, "volume_uuid", NULL), *inst = ts_json_str(a, "instance_uuid", NULL);
    const char *mode = ts_json_str(a, "mode", "rw");
    json_t *connector = json_object_get(a, "connector");
    if (!vid) return ts_err_set(err, TS_EINVAL, "Invalid input received: volume_uuid is required");
    if (inst && !ts_uuid_valid(inst))
        return ts_err_set(err, TS_EINVAL, "Invalid input received: instance_uuid is not a uuid");
    if (!ts_streq(mode, "rw") && !ts_streq(mode, "ro"))
        return ts_err_set(err, TS_EINVAL, "Invalid attach mode");
    if (connector && !json_is_null(connector) && !json_is_object(connector))
        return ts_err_set(err, TS_EINVAL, "Invalid input received: connector must be an object");
    if ((rc = ts_volume_get(svc, req, vid, &vol, err))) return rc;
    const char *status = ts_db_res_getn(vol, 0, "status");
    bool multi = ts_db_res_int(vol, 0, 14, 0) != 0;
    if (!ts_streq(status, "available") && !ts_streq(status, "reserved") &&
        !((multi || (inst == NULL)) && ts_streq(status, "in-use")) &&
        !(multi && ts_streq(status, "attaching"))) {
        rc = ts_err_set(err, TS_EINVAL,
                        "Invalid volume: Volume %s status must be available or downloading to reserve, "
                        "but the current status is %s.",
                        vid, status);
        goto out;
    }
    if (ts_streq(status, "in-use") && !multi) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid volume: Volume %s is already attached.", vid);
        goto out;
    }
    char id[TS_UUID_LEN + 1], now[32];
    ts_uuid(id);
    ts_volume_now(now);
    if ((rc = ts_db_exec(
             svc->db,
             "INSERT INTO attachments (id, volume_id, instance_uuid, attach_status, attach_mode, "
             "created_at, updated_at) VALUES (?, ?, ?, 'reserved', ?, ?, ?)",
             TS_DB_ARGS(TS_DB_S(id), TS_DB_S(vid), TS_DB_S(inst), TS_DB_S(mode), TS_DB_S(now), TS_DB_S(now)),
             NULL, err)))
        goto out;
    if (!ts_streq(status, "in-use"))
        ts_db_exec(svc->db, "UPDATE volumes SET status = 'reserved', updated_at = ? WHERE id = ?",
                   TS_DB_ARGS(TS_DB_S(now), TS_DB_S(vid)), NULL, NULL);
    if (json_is_object(connector) &&
        (rc = att_connect(svc, id, vid, ts_db_res_getn(vol, 0, "host"), connector, mode, err)))
        goto out;
    if ((rc = att_load(svc, req, id, &r, err))) goto out;
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "attachment", att_view(r, 0, true)));
out:
    ts_db_res_free(vol);
    ts_db_res_free(r);
    return rc;
}

int ts_volume_h_att_update(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = att_mv(req, resp, 27, &mv, err);
    if (rc) return rc;
    if ((rc = ts_volume_check_writer(req, err))) return rc;
    json_t *body = NULL, *a = NULL;
    struct ts_db_res *r = NULL;
    const char *id = ts_http_param(req, "attachment_id");
    if ((rc = att_load(svc, req, id, &r, err))) return rc;
    if ((rc = ts_http_json_body(req, &body, err))) goto out;
    if ((rc = ts_json_body_object(body, "attachment", &a, err))) goto out;
    json_t *connector = json_object_get(a, "connector");
    if (!json_is_object(connector)) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input received: connector is required");
        goto out;
    }
    if ((rc = att_connect(svc, id, ts_db_res_get(r, 0, 1), ts_db_res_get(r, 0, 10), connector,
                          ts_db_res_get(r, 0, 6), err)))
        goto out;
    ts_db_res_free(r);
    r = NULL;
    if ((rc = att_load(svc, req, id, &r, err))) goto out;
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "attachment", att_view(r, 0, true)));
out:
    ts_db_res_free(r);
    return rc;
}

int ts_volume_h_att_complete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = att_mv(req, resp, 44, &mv, err);
    if (rc) return rc;
    if ((rc = ts_volume_check_writer(req, err))) return rc;
    json_t *body = NULL;
    struct ts_db_res *r = NULL;
    const char *id = ts_http_param(req, "attachment_id");
    if ((rc = att_load(svc, req, id, &r, err))) return rc;
    if ((rc = ts_http_json_body(req, &body, err))) goto out;
    if (!json_object_get(body, "os-complete")) {
        rc = ts_err_set(err, TS_EINVAL, "There is no such action");
        goto out;
    }
    char now[32];
    ts_volume_now(now);
    const char *vid = ts_db_res_get(r, 0, 1);
    ts_db_exec(
        svc->db,
        "UPDATE attachments SET attach_status = 'attached', attach_time = ?, updated_at = ? WHERE id = ?",
        TS_DB_ARGS(TS_DB_S(now), TS_DB_S(now), TS_DB_S(id)), NULL, NULL);
    ts_db_exec(
        svc->db,
        "UPDATE volumes SET status = 'in-use', attach_status = 'attached', updated_at = ? WHERE id = ?",
        TS_DB_ARGS(TS_DB_S(now), TS_DB_S(vid)), NULL, NULL);
    ts_volume_notify_volume(svc, "volume.attach.end", vid);
    ts_http_resp_body(resp, 204, NULL, "", 0);
out:
    ts_db_res_free(r);
    return rc;
}

int ts_volume_h_att_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = att_mv(req, resp, 27, &mv, err);
    if (rc) return rc;
    if ((rc = ts_volume_check_writer(req, err))) return rc;
    struct ts_db_res *r = NULL;
    const char *id = ts_http_param(req, "attachment_id");
    if ((rc = att_load(svc, req, id, &r, err))) return rc;
    char vid[64];
    snprintf(vid, sizeof(vid), "%s", ts_db_res_get(r, 0, 1));
    bool was_attached = ts_streq(ts_db_res_get(r, 0, 5), "attached");
    ts_db_res_free(r);
    ts_db_exec(svc->db, "DELETE FROM attachments WHERE id = ?", TS_DB_ARGS(TS_DB_S(id)), NULL, NULL);
    settle_attach_state(svc, vid);
    if (was_attached) ts_volume_notify_volume(svc, "volume.detach.end", vid);
    ts_http_resp_json(resp, 200, json_pack("{s:[]}", "attachments"));
    return 0;
}

static int att_list(struct ts_http_req *req, struct ts_http_resp *resp, bool detail, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = att_mv(req, resp, 27, &mv, err);
    if (rc) return rc;
    struct ts_db_res *r = NULL;
    const char *vid = ts_http_query(req, "volume_id"), *inst = ts_http_query(req, "instance_id");
    rc = ts_db_exec(svc->db,
                    "SELECT " ATT_COLS " FROM attachments a JOIN volumes v ON v.id = a.volume_id "
                    "WHERE (v.project_id = ? OR CAST(? AS BIGINT) = 1) AND (CAST(? AS TEXT) IS NULL OR "
                    "a.volume_id = ?) AND "
                    "(CAST(? AS TEXT) IS NULL OR a.instance_uuid = ?) ORDER BY a.created_at DESC",
                    TS_DB_ARGS(TS_DB_S(req->auth->project_id),
                               TS_DB_I(req->auth->is_admin && ts_http_query(req, "all_tenants") ? 1 : 0),
                               TS_DB_S(vid), TS_DB_S(vid), TS_DB_S(inst), TS_DB_S(inst)),
                    &r, err);
    if (rc) return rc;
    json_t *arr = json_array();
    for (int i = 0; i < r->nrows; i++)
        json_array_append_new(arr, att_view(r, i, detail));
    ts_db_res_free(r);
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "attachments", arr));
    return 0;
}

int ts_volume_h_att_list(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    return att_list(req, resp, false, err);
}

int ts_volume_h_att_detail(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    return att_list(req, resp, true, err);
}

int ts_volume_h_att_show(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = att_mv(req, resp, 27, &mv, err);
    if (rc) return rc;
    struct ts_db_res *r = NULL;
    if ((rc = att_load(svc, req, ts_http_param(req, "attachment_id"), &r, err))) return rc;
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "attachment", att_view(r, 0, true)));
    ts_db_res_free(r);
    return 0;
}
