/*
 * ts_volume_backup.c: volume backups with a posix-style store (Cinder's posix backup
 * driver): a backup is a sparse copy "backup-<id>" of the volume's data under
 * [volume] backups_dir, made and restored by the volume manager that owns the volume
 * (bus cast), written to ".tmp-" names and renamed. API: create, list/detail, show,
 * update (3.9), delete, restore (to a new or an existing volume), reset-status and
 * force-delete. The object-storage driver is not written yet.
 */
#include "volume/ts_volume_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BK_COLS                                                                                              \
    "id, volume_id, project_id, user_id, name, description, status, size, container, host, fail_reason, "    \
    "snapshot_id, created_at, updated_at, data_timestamp"

static void backup_path(struct ts_volume_svc *svc, const char *id, bool tmp, char *out, size_t len)
{
    snprintf(out, len, "%s/%sbackup-%s", ts_conf_get(svc->env->conf, "volume", "backups_dir", "/tmp"),
             tmp ? ".tmp-" : "", id);
}

static json_t *links_for(struct ts_http_req *req, const char *id)
{
    const char *host = ts_http_header(req, "Host");
    char *href =
        ts_asprintf("http://%s/v3/%s/backups/%s", host ? host : "localhost", req->auth->project_id, id);
    json_t *l =
        json_pack("[{s:s, s:s}, {s:s, s:s}]", "rel", "self", "href", href, "rel", "bookmark", "href", href);
    free(href);
    return l;
}

static json_t *bk_view(struct ts_volume_svc *svc, struct ts_http_req *req, const struct ts_db_res *r, int i,
                       bool detail)
{
    const char *id = ts_db_res_get(r, i, 0);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id));
    ts_json_set_str(o, "name", ts_db_res_get(r, i, 4));
    json_object_set_new(o, "links", links_for(req, id));
    if (!detail) return o;
    json_object_set_new(o, "volume_id", json_string(ts_db_res_get(r, i, 1)));
    ts_json_set_str(o, "description", ts_db_res_get(r, i, 5));
    json_object_set_new(o, "status", json_string(ts_db_res_get(r, i, 6)));
    json_object_set_new(o, "size", json_integer(ts_db_res_int(r, i, 7, 0)));
    ts_json_set_str(o, "container", ts_db_res_get(r, i, 8));
    ts_json_set_str(o, "fail_reason", ts_db_res_get(r, i, 10));
    ts_json_set_str(o, "snapshot_id", ts_db_res_get(r, i, 11));
    ts_json_set_str(o, "created_at", ts_db_res_get(r, i, 12));
    ts_json_set_str(o, "updated_at", ts_db_res_get(r, i, 13));
    ts_json_set_str(o, "data_timestamp", ts_db_res_get(r, i, 14));
    json_object_set_new(o, "object_count", json_integer(0));
    json_object_set_new(o, "availability_zone", json_string(svc->az));
    json_object_set_new(o, "has_dependent_backups", json_false());
    json_object_set_new(o, "is_incremental", json_false());
    return o;
}

static int bk_load(struct ts_volume_svc *svc, struct ts_http_req *req, const char *id, struct ts_db_res **out,
                   struct ts_err *err)
{
    struct ts_db_res *r = NULL;
    int rc = ts_db_exec(svc->db, "SELECT " BK_COLS " FROM backups WHERE id = ?",
                        TS_DB_ARGS(TS_DB_S(id ? id : "")), &r, err);
    if (rc) return rc;
    if (r->nrows == 0 || (!req->auth->is_admin && !ts_streq(ts_db_res_get(r, 0, 2), req->auth->project_id))) {
        ts_db_res_free(r);
        return ts_err_set(err, TS_ENOTFOUND, "Backup %s could not be found.", id ? id : "");
    }
    *out = r;
    return 0;
}

int ts_volume_h_backup_create(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = ts_volume_check_writer(req, err))) return rc;
    json_t *body = NULL, *b = NULL;
    struct ts_db_res *vol = NULL, *r = NULL;
    struct ts_db_conn *tx = NULL;
    if ((rc = ts_http_json_body(req, &body, err))) return rc;
    if ((rc = ts_json_body_object(body, "backup", &b, err))) return rc;
    const char *vid = ts_json_str(b, "volume_id", NULL);
    if (!json_is_string(json_object_get(b, "volume_id")))
        return ts_err_set(err, TS_EINVAL, "Incorrect request body format.");
    const char *name = ts_json_str(b, "name", NULL), *desc = ts_json_str(b, "description", NULL);
    const char *container = ts_json_str(b, "container", NULL), *snap = ts_json_str(b, "snapshot_id", NULL);
    if ((rc = ts_volume_check_text("name", name, 255, err)) ||
        (rc = ts_volume_check_text("description", desc, 255, err)))
        return rc;
    bool force = ts_json_bool(b, "force", false);
    if (ts_json_bool(b, "incremental", false))
        return ts_err_set(err, TS_EINVAL, "Invalid backup: incremental backups are not supported.");
    if ((rc = ts_volume_get(svc, req, vid, &vol, err))) return rc;
    const char *st = ts_db_res_getn(vol, 0, "status");
    bool in_use = ts_streq(st, "in-use");
    if (snap) {
        struct ts_db_res *s = NULL;
        rc = ts_db_exec(svc->db, "SELECT status FROM snapshots WHERE id = ? AND volume_id = ?",
                        TS_DB_ARGS(TS_DB_S(snap), TS_DB_S(vid)), &s, err);
        bool ok = rc == 0 && s->nrows > 0 && ts_streq(ts_db_res_get(s, 0, 0), "available");
        bool found = rc == 0 && s->nrows > 0;
        ts_db_res_free(s);
        if (rc) goto out;
        if (!found) {
            rc = ts_err_set(err, TS_ENOTFOUND, "Snapshot %s could not be found.", snap);
            goto out;
        }
        if (!ok) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid snapshot: Snapshot to be backed up must be available.");
            goto out;
        }
        in_use = true; /* the volume itself is not touched */
    } else if (!ts_streq(st, "available") && !(in_use && force)) {
        rc = ts_err_set(err, TS_EINVAL,
                        "Invalid volume: Volume to be backed up must be available or in-use, but the "
                        "current status is \"%s\".",
                        st);
        goto out;
    }
    int64_t size = ts_db_res_int(vol, 0, 7, 0);
    const char *project = ts_db_res_getn(vol, 0, "project_id");
    char id[TS_UUID_LEN + 1], now[32];
    ts_uuid(id);
    ts_volume_now(now);
    if ((rc = ts_db_begin(svc->db, &tx, err))) goto out;
    struct ts_db_res *u = NULL;
    if ((rc = ts_db_tx_exec(tx,
                            "SELECT (SELECT COUNT(*) FROM backups WHERE project_id = ?), "
                            "(SELECT COALESCE(SUM(size), 0) FROM backups WHERE project_id = ?)",
                            TS_DB_ARGS(TS_DB_S(project), TS_DB_S(project)), &u, err)))
        goto out;
    int64_t nb = ts_db_res_int(u, 0, 0, 0), gb = ts_db_res_int(u, 0, 1, 0);
    ts_db_res_free(u);
    int64_t lim = ts_volume_quota_limit(svc, tx, project, "backups");
    if (lim >= 0 && nb + 1 > lim) {
        rc = ts_err_set_full(err, TS_EQUOTA, 413, NULL,
                             "BackupLimitExceeded: Maximum number of backups allowed (%lld) "
                             "exceeded",
                             (long long)lim);
        goto out;
    }
    lim = ts_volume_quota_limit(svc, tx, project, "backup_gigabytes");
    if (lim >= 0 && gb + size > lim) {
        rc = ts_err_set_full(
            err, TS_EQUOTA, 413, NULL,
            "VolumeBackupSizeExceedsAvailableQuota: Requested backup exceeds "
            "allowed Backup gigabytes quota. Requested %lldG, quota is %lldG and %lldG has been "
            "consumed.",
            (long long)size, (long long)lim, (long long)gb);
        goto out;
    }
    json_t *md = ts_volume_metadata(svc, "volume_metadata", "volume_id", vid);
    char *mds = ts_json_dump(md);
    json_decref(md);
    rc = ts_db_tx_exec(
        tx,
        "INSERT INTO backups (id, volume_id, project_id, user_id, name, description, status, size, "
        "container, host, created_at, updated_at, data_timestamp, snapshot_id, volume_meta) VALUES "
        "(?, ?, ?, ?, ?, ?, 'creating', ?, ?, ?, ?, ?, ?, ?, ?)",
        TS_DB_ARGS(TS_DB_S(id), TS_DB_S(vid), TS_DB_S(project), TS_DB_S(req->auth->user_id), TS_DB_S(name),
                   TS_DB_S(desc), TS_DB_I(size), TS_DB_S(container ? container : "backups"),
                   TS_DB_S(ts_db_res_getn(vol, 0, "host")), TS_DB_S(now), TS_DB_S(now), TS_DB_S(now),
                   TS_DB_S(snap), TS_DB_S(mds)),
        NULL, err);
    free(mds);
    if (rc) goto out;
    if (!in_use &&
        (rc = ts_db_tx_exec(
             tx,
             "UPDATE volumes SET status = 'backing-up', updated_at = ? WHERE id = ? AND status = 'available'",
             TS_DB_ARGS(TS_DB_S(now), TS_DB_S(vid)), NULL, err)))
        goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    ts_volume_cast_manager(svc, ts_db_res_getn(vol, 0, "host"), "create_backup",
                           json_pack("{s:s, s:s, s:s, s:s?}", "backup_id", id, "volume_id", vid,
                                     "restore_status", in_use ? "in-use" : "available", "snapshot_id", snap),
                           NULL);
    if ((rc = bk_load(svc, req, id, &r, err))) goto out;
    ts_http_resp_json(resp, 202, json_pack("{s:o}", "backup", bk_view(svc, req, r, 0, false)));
    ts_bus_notify(svc->env->bus, svc->publisher, "backup.create.start", "INFO",
                  json_pack("{s:s, s:s}", "backup_id", id, "volume_id", vid));
out:
    ts_db_rollback(tx);
    ts_db_res_free(vol);
    ts_db_res_free(r);
    return rc;
}

static int bk_list(struct ts_http_req *req, struct ts_http_resp *resp, bool detail, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    bool all = false;
    const char *at = ts_http_query(req, "all_tenants");
    if (at && req->auth->is_admin && ts_parse_bool(at, &all) != 0) all = true;
    const char *status = ts_http_query(req, "status"), *vid = ts_http_query(req, "volume_id"),
               *name = ts_http_query(req, "name");
    struct ts_db_res *r = NULL;
    if ((rc =
             ts_db_exec(svc->db,
                        "SELECT " BK_COLS " FROM backups WHERE (CAST(? AS BIGINT) = 1 OR project_id = ?) AND "
                                          "(CAST(? AS TEXT) IS NULL OR status = ?) "
                        "AND (CAST(? AS TEXT) IS NULL OR volume_id = ?) AND (CAST(? AS TEXT) IS NULL OR name "
                        "= ?) ORDER BY created_at DESC, id DESC",
                        TS_DB_ARGS(TS_DB_I(all), TS_DB_S(req->auth->project_id), TS_DB_S(status),
                                   TS_DB_S(status), TS_DB_S(vid), TS_DB_S(vid), TS_DB_S(name), TS_DB_S(name)),
                        &r, err)))
        return rc;
    json_t *arr = json_array();
    for (int i = 0; i < r->nrows; i++)
        json_array_append_new(arr, bk_view(svc, req, r, i, detail));
    ts_db_res_free(r);
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "backups", arr));
    return 0;
}

int ts_volume_h_backup_list(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    return bk_list(req, resp, false, err);
}

int ts_volume_h_backup_detail(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    return bk_list(req, resp, true, err);
}

int ts_volume_h_backup_show(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    struct ts_db_res *r = NULL;
    if ((rc = bk_load(svc, req, ts_http_param(req, "backup_id"), &r, err))) return rc;
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "backup", bk_view(svc, req, r, 0, true)));
    ts_db_res_free(r);
    return 0;
}

int ts_volume_h_backup_update(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = ts_volume_check_writer(req, err))) return rc;
    const char *id = ts_http_param(req, "backup_id");
    struct ts_db_res *r = NULL;
    json_t *body = NULL, *b = NULL;
    if ((rc = bk_load(svc, req, id, &r, err))) return rc;
    ts_db_res_free(r);
    r = NULL;
    if ((rc = ts_http_json_body(req, &body, err))) return rc;
    if ((rc = ts_json_body_object(body, "backup", &b, err))) return rc;
    char now[32];
    ts_volume_now(now);
    if (json_object_get(b, "name"))
        ts_db_exec(svc->db, "UPDATE backups SET name = ?, updated_at = ? WHERE id = ?",
                   TS_DB_ARGS(TS_DB_S(ts_json_str(b, "name", NULL)), TS_DB_S(now), TS_DB_S(id)), NULL, NULL);
    if (json_object_get(b, "description"))
        ts_db_exec(svc->db, "UPDATE backups SET description = ?, updated_at = ? WHERE id = ?",
                   TS_DB_ARGS(TS_DB_S(ts_json_str(b, "description", NULL)), TS_DB_S(now), TS_DB_S(id)), NULL,
                   NULL);
    if ((rc = bk_load(svc, req, id, &r, err))) return rc;
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "backup", bk_view(svc, req, r, 0, false)));
    ts_db_res_free(r);
    return 0;
}

static void bk_remove(struct ts_volume_svc *svc, const char *id)
{
    char p[1200];
    backup_path(svc, id, false, p, sizeof(p));
    unlink(p);
    backup_path(svc, id, true, p, sizeof(p));
    unlink(p);
    ts_db_exec(svc->db, "DELETE FROM backups WHERE id = ?", TS_DB_ARGS(TS_DB_S(id)), NULL, NULL);
    ts_bus_notify(svc->env->bus, svc->publisher, "backup.delete.end", "INFO",
                  json_pack("{s:s}", "backup_id", id));
}

int ts_volume_h_backup_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = ts_volume_check_writer(req, err))) return rc;
    const char *id = ts_http_param(req, "backup_id");
    struct ts_db_res *r = NULL;
    if ((rc = bk_load(svc, req, id, &r, err))) return rc;
    const char *st = ts_db_res_get(r, 0, 6);
    if (!ts_streq(st, "available") && !ts_streq(st, "error")) {
        ts_db_res_free(r);
        return ts_err_set(err, TS_EINVAL, "Invalid backup: Backup status must be available or error");
    }
    ts_db_res_free(r);
    bk_remove(svc, id); /* one unlink: no need to leave the API thread */
    ts_http_resp_body(resp, 202, NULL, "", 0);
    return 0;
}

int ts_volume_h_backup_restore(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = ts_volume_check_writer(req, err))) return rc;
    const char *id = ts_http_param(req, "backup_id");
    struct ts_db_res *r = NULL, *vol = NULL;
    json_t *body = NULL, *a = NULL;
    struct ts_db_conn *tx = NULL;
    if ((rc = bk_load(svc, req, id, &r, err))) return rc;
    if ((rc = ts_http_json_body(req, &body, err))) goto out;
    if ((rc = ts_json_body_object(body, "restore", &a, err))) goto out;
    if (!ts_streq(ts_db_res_get(r, 0, 6), "available")) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid backup: Backup status must be available");
        goto out;
    }
    int64_t size = ts_db_res_int(r, 0, 7, 1);
    const char *vid = ts_json_str(a, "volume_id", NULL), *vname = ts_json_str(a, "name", NULL);
    const char *host = ts_db_res_get(r, 0, 9);
    char new_id[TS_UUID_LEN + 1], now[32], vn[300];
    ts_volume_now(now);
    if (vid) {
        if ((rc = ts_volume_get(svc, req, vid, &vol, err))) goto out;
        if (ts_db_res_int(vol, 0, 7, 0) < size) {
            rc = ts_err_set(err, TS_EINVAL,
                            "Invalid volume: volume size %lldGB is too small to restore backup of size "
                            "%lldGB.",
                            (long long)ts_db_res_int(vol, 0, 7, 0), (long long)size);
            goto out;
        }
        static const char *const from[] = {"available", NULL};
        if ((rc = ts_volume_cas_status(svc, vid, from, "restoring-backup",
                                       "Invalid volume: Volume to be restored to "
                                       "must be available",
                                       err)))
            goto out;
        host = ts_db_res_getn(vol, 0, "host");
        snprintf(vn, sizeof(vn), "%s", ts_db_res_getn(vol, 0, "name") ? ts_db_res_getn(vol, 0, "name") : "");
        snprintf(new_id, sizeof(new_id), "%s", vid);
    } else {
        ts_uuid(new_id);
        snprintf(vn, sizeof(vn), "%s", vname ? vname : "");
        if (!vname) snprintf(vn, sizeof(vn), "restore_backup_%s", id);
        char type_id[64], be[64];
        if ((rc = ts_volume_default_type(svc, type_id, err))) goto out;
        snprintf(be, sizeof(be), "%.*s",
                 host && strchr(host, '@') ? (int)strcspn(strchr(host, '@') + 1, "#") : 0,
                 host && strchr(host, '@') ? strchr(host, '@') + 1 : "");
        if ((rc = ts_db_begin(svc->db, &tx, err))) goto out;
        if ((rc = ts_volume_quota_check(svc, tx, req->auth->project_id, 1, 0, size, err))) goto out;
        if ((rc = ts_db_tx_exec(
                 tx,
                 "INSERT INTO volumes (id, project_id, user_id, name, status, size, availability_zone, "
                 "volume_type_id, host, backend, created_at, updated_at) VALUES "
                 "(?, ?, ?, ?, 'restoring-backup', ?, ?, ?, ?, ?, ?, ?)",
                 TS_DB_ARGS(TS_DB_S(new_id), TS_DB_S(req->auth->project_id), TS_DB_S(req->auth->user_id),
                            TS_DB_S(vn), TS_DB_I(size), TS_DB_S(svc->az), TS_DB_S(type_id), TS_DB_S(host),
                            TS_DB_S(be), TS_DB_S(now), TS_DB_S(now)),
                 NULL, err)))
            goto out;
        rc = ts_db_commit(tx, err);
        tx = NULL;
        if (rc) goto out;
    }
    {
        struct ts_db_res *m = NULL;
        if (ts_db_exec(svc->db, "SELECT volume_meta FROM backups WHERE id = ?", TS_DB_ARGS(TS_DB_S(id)), &m,
                       NULL) == 0 &&
            m->nrows > 0 && ts_db_res_get(m, 0, 0)) {
            json_t *md = json_loads(ts_db_res_get(m, 0, 0), 0, NULL);
            if (json_is_object(md))
                ts_volume_metadata_set(svc, "volume_metadata", "volume_id", new_id, md, false, NULL);
            json_decref(md);
        }
        ts_db_res_free(m);
    }
    ts_db_exec(svc->db, "UPDATE backups SET status = 'restoring', updated_at = ? WHERE id = ?",
               TS_DB_ARGS(TS_DB_S(now), TS_DB_S(id)), NULL, NULL);
    ts_volume_cast_manager(svc, host, "restore_backup",
                           json_pack("{s:s, s:s}", "backup_id", id, "volume_id", new_id), NULL);
    ts_http_resp_json(
        resp, 202,
        json_pack("{s:{s:s, s:s, s:s}}", "restore", "backup_id", id, "volume_id", new_id, "volume_name", vn));
out:
    ts_db_rollback(tx);
    ts_db_res_free(r);
    ts_db_res_free(vol);
    return rc;
}

int ts_volume_h_backup_action(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if (!req->auth->is_admin)
        return ts_err_set(err, TS_EFORBIDDEN, "Policy doesn't allow this operation to be performed.");
    const char *id = ts_http_param(req, "backup_id");
    struct ts_db_res *r = NULL;
    json_t *body = NULL, *a;
    if ((rc = bk_load(svc, req, id, &r, err))) return rc;
    ts_db_res_free(r);
    if ((rc = ts_http_json_body(req, &body, err))) return rc;
    if ((a = json_object_get(body, "os-reset_status"))) {
        const char *st = json_is_object(a) ? ts_json_str(a, "status", NULL) : NULL;
        if (!ts_streq(st, "available") && !ts_streq(st, "error"))
            return ts_err_set(err, TS_EINVAL, "Must specify a valid status");
        ts_db_exec(svc->db, "UPDATE backups SET status = ? WHERE id = ?",
                   TS_DB_ARGS(TS_DB_S(st), TS_DB_S(id)), NULL, NULL);
        ts_http_resp_body(resp, 202, NULL, "", 0);
        return 0;
    }
    if (json_object_get(body, "os-force_delete")) {
        bk_remove(svc, id);
        ts_http_resp_body(resp, 202, NULL, "", 0);
        return 0;
    }
    return ts_err_set(err, TS_EINVAL, "There is no such action");
}

/* ---- manager side ----------------------------------------------------------------------------- */

static int copy_file(const char *src, const char *dst, int64_t min_len, struct ts_err *err)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return ts_err_set(err, TS_EIO, "open %s: %s", src, strerror(errno));
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
        close(in);
        return ts_err_set(err, TS_EIO, "open %s: %s", dst, strerror(errno));
    }
    struct stat st;
    int rc = fstat(in, &st) == 0 ? 0 : ts_err_set(err, TS_EIO, "stat %s", src);
    if (rc == 0) rc = ts_volume_sparse_copy(in, out, st.st_size > min_len ? st.st_size : min_len, err);
    if (rc == 0 && fsync(out) != 0) rc = ts_err_set(err, TS_EIO, "fsync: %s", strerror(errno));
    close(in);
    close(out);
    return rc;
}

void ts_volume_backup_create_work(struct ts_volume_svc *svc, struct ts_volume_backend *be, json_t *args)
{
    const char *id = ts_json_str(args, "backup_id", NULL), *vid = ts_json_str(args, "volume_id", NULL);
    const char *restore = ts_json_str(args, "restore_status", "available");
    if (!id || !vid) return;
    char src[1200], tmp[1200], fin[1200], now[32];
    struct ts_err e = {0};
    ts_mkdirs(ts_conf_get(svc->env->conf, "volume", "backups_dir", "/tmp"), 0700);
    const char *snap = ts_json_str(args, "snapshot_id", NULL);
    if (snap)
        snprintf(src, sizeof(src), "%s/snapshot-%s", be->dir, snap); /* file backend layout */
    else
        be->ops->path(be, vid, src, sizeof(src));
    backup_path(svc, id, true, tmp, sizeof(tmp));
    backup_path(svc, id, false, fin, sizeof(fin));
    int rc = copy_file(src, tmp, 0, &e);
    if (rc == 0 && rename(tmp, fin) != 0) rc = ts_err_set(&e, TS_EIO, "rename: %s", strerror(errno));
    if (rc) unlink(tmp);
    ts_volume_now(now);
    ts_db_exec(svc->db, "UPDATE backups SET status = ?, fail_reason = ?, updated_at = ? WHERE id = ?",
               TS_DB_ARGS(TS_DB_S(rc ? "error" : "available"), TS_DB_S(rc ? e.msg : NULL), TS_DB_S(now),
                          TS_DB_S(id)),
               NULL, NULL);
    ts_db_exec(svc->db,
               "UPDATE volumes SET status = ?, updated_at = ? WHERE id = ? AND status = 'backing-up'",
               TS_DB_ARGS(TS_DB_S(restore), TS_DB_S(now), TS_DB_S(vid)), NULL, NULL);
    ts_bus_notify(svc->env->bus, svc->publisher, "backup.create.end", "INFO",
                  json_pack("{s:s, s:s, s:s}", "backup_id", id, "volume_id", vid, "status",
                            rc ? "error" : "available"));
}

void ts_volume_backup_restore_work(struct ts_volume_svc *svc, struct ts_volume_backend *be, json_t *args)
{
    const char *id = ts_json_str(args, "backup_id", NULL), *vid = ts_json_str(args, "volume_id", NULL);
    if (!id || !vid) return;
    char src[1200], dst[1200], tmp[1200], now[32];
    struct ts_err e = {0};
    struct ts_db_res *r = NULL;
    int64_t size = 1;
    if (ts_db_exec(svc->db, "SELECT size FROM volumes WHERE id = ?", TS_DB_ARGS(TS_DB_S(vid)), &r, NULL) ==
            0 &&
        r->nrows)
        size = ts_db_res_int(r, 0, 0, 1);
    ts_db_res_free(r);
    backup_path(svc, id, false, src, sizeof(src));
    be->ops->path(be, vid, dst, sizeof(dst));
    snprintf(tmp, sizeof(tmp), "%s/.tmp-restore-%s", be->dir, vid);
    int rc = copy_file(src, tmp, size << 30, &e);
    if (rc == 0 && rename(tmp, dst) != 0) rc = ts_err_set(&e, TS_EIO, "rename: %s", strerror(errno));
    if (rc) {
        unlink(tmp);
        ts_warn("volume", "restore of backup %s failed: %s", id, e.msg);
    }
    ts_volume_now(now);
    ts_db_exec(svc->db, "UPDATE volumes SET status = ?, updated_at = ? WHERE id = ?",
               TS_DB_ARGS(TS_DB_S(rc ? "error_restoring" : "available"), TS_DB_S(now), TS_DB_S(vid)), NULL,
               NULL);
    ts_db_exec(svc->db, "UPDATE backups SET status = 'available', updated_at = ? WHERE id = ?",
               TS_DB_ARGS(TS_DB_S(now), TS_DB_S(id)), NULL, NULL);
    ts_bus_notify(svc->env->bus, svc->publisher, "backup.restore.end", "INFO",
                  json_pack("{s:s, s:s}", "backup_id", id, "volume_id", vid));
}

void ts_volume_backup_recover(struct ts_volume_svc *svc)
{
    const char *dir = ts_conf_get(svc->env->conf, "volume", "backups_dir", NULL);
    DIR *d = dir ? opendir(dir) : NULL;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (strncmp(de->d_name, ".tmp-", 5) == 0) {
            char p[1400];
            snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
            unlink(p);
        }
    }
    if (d) closedir(d);
    ts_db_exec(svc->db,
               "UPDATE backups SET status = 'error', fail_reason = 'interrupted' WHERE status = 'creating'",
               TS_DB_NOARGS, NULL, NULL);
    ts_db_exec(svc->db, "UPDATE backups SET status = 'available' WHERE status = 'restoring'", TS_DB_NOARGS,
               NULL, NULL);
    ts_db_exec(svc->db, "UPDATE volumes SET status = 'available' WHERE status = 'backing-up'", TS_DB_NOARGS,
               NULL, NULL);
    ts_db_exec(svc->db, "UPDATE volumes SET status = 'error_restoring' WHERE status = 'restoring-backup'",
               TS_DB_NOARGS, NULL, NULL);
}
