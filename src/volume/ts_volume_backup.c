/*
 * ts_volume_backup.c: volume backups. API: create, list/detail, show, update (3.9),
 * delete, restore (to a new or an existing volume), reset-status and force-delete; the
 * work runs on the volume manager that owns the volume (bus cast). Two drivers, chosen
 * per backup when it is created ([volume] backup_driver = swift | file; swift by default
 * when the object service is enabled or backup_swift_url is set):
 *   swift: objects in the user's account on the object service (ts_volume_backup_swift.c);
 *          delete is asynchronous (status "deleting") since it takes object-store calls;
 *   file:  a sparse copy "backup-<id>" of the volume under [volume] backups_dir (Cinder's
 *          posix driver), written to a ".tmp-" name and renamed.
 * Status: creating -> available (error on any failure, or when a crash interrupted it).
 */
#include "volume/ts_volume_int.h"

#include <dirent.h>
#include "auth/ts_auth.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BK_COLS                                                                                              \
    "id, volume_id, project_id, user_id, name, description, status, size, container, host, fail_reason, "    \
    "snapshot_id, created_at, updated_at, data_timestamp, driver, service_metadata, object_count, "          \
    "volume_meta, account"

static void backup_path(struct ts_volume_svc *svc, const char *id, bool tmp, char *out, size_t len)
{
    snprintf(out, len, "%s/%sbackup-%s", ts_conf_get(svc->env->conf, "volume", "backups_dir", "/tmp"),
             tmp ? ".tmp-" : "", id);
}

static bool is_swift(const struct ts_db_res *r, int i)
{
    return ts_streq(ts_db_res_get(r, i, 15), "swift");
}

/* The driver new backups use: [volume] backup_driver (swift | file, or Cinder's class
 * names), by default swift when there is an object service to talk to. NULL if unknown. */
static const char *driver_for_new(struct ts_volume_svc *svc)
{
    struct ts_conf *c = svc->env->conf;
    const char *d = ts_conf_get(c, "volume", "backup_driver", NULL);
    if (!d || !*d) {
        const char *u = ts_conf_get(c, "volume", "backup_swift_url", NULL);
        return (u && *u) || ts_service_enabled(c, "object") ? "swift" : "file";
    }
    if (strstr(d, "swift")) return "swift";
    if (ts_streq(d, "file") || strstr(d, "posix")) return "file";
    return NULL;
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
    json_object_set_new(o, "object_count", json_integer(ts_db_res_int(r, i, 17, 0)));
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
    json_t *cj = json_object_get(b, "container");
    if (cj && !json_is_null(cj) && !json_is_string(cj))
        return ts_err_set(err, TS_EINVAL, "Invalid input received: container must be a string.");
    if (container && (!*container || strlen(container) > 255 || strchr(container, '/') ||
                      !ts_utf8_valid(container, strlen(container))))
        return ts_err_set(err, TS_EINVAL,
                          "Invalid input received: container must be 1 to 255 bytes of UTF-8 without '/'.");
    const char *driver = driver_for_new(svc);
    if (!driver)
        return ts_err_set(err, TS_EUNAVAIL,
                          "Service cinder-backup could not be found: unknown [volume] "
                          "backup_driver.");
    bool swift = ts_streq(driver, "swift");
    if (swift && (rc = ts_volume_bswift_check_conf(svc, err))) {
        char why[sizeof(err->msg)];
        snprintf(why, sizeof(why), "%s", err->msg);
        return ts_err_set(err, TS_EUNAVAIL, "Service cinder-backup is not configured correctly: %s", why);
    }
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
    char id[TS_UUID_LEN + 1], now[32], prefix[200] = "";
    ts_uuid(id);
    ts_volume_now(now);
    if (swift) {
        /* Cinder's object prefix: volume_<vol>/<YYYYmmddHHMMSS>/az_<az>_backup_<id> */
        char stamp[16];
        snprintf(stamp, sizeof(stamp), "%.4s%.2s%.2s%.2s%.2s%.2s", now, now + 5, now + 8, now + 11, now + 14,
                 now + 17);
        snprintf(prefix, sizeof(prefix), "volume_%s/%s/az_%s_backup_%s", vid, stamp, svc->az, id);
    }
    if (!container) container = swift ? "volumebackups" : "backups";
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
        "container, host, created_at, updated_at, data_timestamp, snapshot_id, volume_meta, driver, "
        "service_metadata) VALUES (?, ?, ?, ?, ?, ?, 'creating', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        TS_DB_ARGS(TS_DB_S(id), TS_DB_S(vid), TS_DB_S(project), TS_DB_S(req->auth->user_id), TS_DB_S(name),
                   TS_DB_S(desc), TS_DB_I(size), TS_DB_S(container), TS_DB_S(ts_db_res_getn(vol, 0, "host")),
                   TS_DB_S(now), TS_DB_S(now), TS_DB_S(now), TS_DB_S(snap), TS_DB_S(mds), TS_DB_S(driver),
                   TS_DB_S(swift ? prefix : NULL)),
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
                           json_pack("{s:s, s:s, s:s, s:s?, s:s}", "backup_id", id, "volume_id", vid,
                                     "restore_status", in_use ? "in-use" : "available", "snapshot_id", snap,
                                     "token", req->auth->token),
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

/* Swift backups: "deleting", then the manager removes the objects and the row. */
static int bk_delete_async(struct ts_volume_svc *svc, struct ts_http_req *req, const struct ts_db_res *r,
                           bool force, struct ts_err *err)
{
    const char *id = ts_db_res_get(r, 0, 0);
    char now[32];
    ts_volume_now(now);
    struct ts_db_res *u = NULL;
    int rc = ts_db_exec(svc->db,
                        "UPDATE backups SET status = 'deleting', updated_at = ? WHERE id = ? AND "
                        "(CAST(? AS BIGINT) = 1 OR status IN ('available', 'error')) RETURNING id",
                        TS_DB_ARGS(TS_DB_S(now), TS_DB_S(id), TS_DB_I(force)), &u, err);
    bool changed = rc == 0 && u->nrows > 0;
    ts_db_res_free(u);
    if (rc) return rc;
    if (!changed)
        return ts_err_set(err, TS_EINVAL, "Invalid backup: Backup status must be available or error");
    rc = ts_volume_cast_manager(svc, ts_db_res_get(r, 0, 9), "delete_backup",
                                json_pack("{s:s, s:s}", "backup_id", id, "token", req->auth->token), err);
    if (rc) /* nobody will delete it: let the user retry */
        ts_db_exec(svc->db, "UPDATE backups SET status = 'error', fail_reason = ? WHERE id = ?",
                   TS_DB_ARGS(TS_DB_S(err->msg), TS_DB_S(id)), NULL, NULL);
    return rc;
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
    if (is_swift(r, 0)) {
        rc = bk_delete_async(svc, req, r, false, err);
        ts_db_res_free(r);
        if (rc) return rc;
        ts_http_resp_body(resp, 202, NULL, "", 0);
        return 0;
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
                           json_pack("{s:s, s:s, s:s, s:b}", "backup_id", id, "volume_id", new_id, "token",
                                     req->auth->token, "new_volume", vid == NULL),
                           NULL);
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
    bool swift = is_swift(r, 0);
    if ((rc = ts_http_json_body(req, &body, err))) goto out;
    if (json_object_get(body, "os-force_delete") && swift) {
        if ((rc = bk_delete_async(svc, req, r, true, err))) goto out;
        ts_http_resp_body(resp, 202, NULL, "", 0);
        goto out;
    }
    ts_db_res_free(r);
    r = NULL;
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
out:
    ts_db_res_free(r);
    return rc;
}

/* ---- export and import of backup records (admin) ------------------------------------------- */

#define SVC_SWIFT "cinder.backup.drivers.swift.SwiftBackupDriver"
#define SVC_POSIX "cinder.backup.drivers.posix.PosixBackupDriver"

int ts_volume_h_backup_export(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if (!req->auth->is_admin)
        return ts_err_set(err, TS_EFORBIDDEN, "Policy doesn't allow backup:export-import to be performed.");
    struct ts_db_res *r = NULL;
    if ((rc = bk_load(svc, req, ts_http_param(req, "backup_id"), &r, err))) return rc;
    if (!ts_streq(ts_db_res_get(r, 0, 6), "available")) {
        ts_db_res_free(r);
        return ts_err_set(err, TS_EINVAL,
                          "Invalid backup: Backup status must be available and not restoring.");
    }
    /* the record: what an import needs to point a new row at the same data */
    const char *acct = ts_db_res_get(r, 0, 19) ? ts_db_res_get(r, 0, 19) : ts_db_res_get(r, 0, 2);
    json_t *rec = json_object();
    static const struct {
        const char *key;
        int col;
    } cols[] = {
        {"id", 0},           {"volume_id", 1},           {"project_id", 2},      {"user_id", 3},
        {"display_name", 4}, {"display_description", 5}, {"container", 8},       {"host", 9},
        {"snapshot_id", 11}, {"created_at", 12},         {"data_timestamp", 14}, {"service_metadata", 16},
        {"volume_meta", 18}};
    for (size_t k = 0; k < sizeof(cols) / sizeof(cols[0]); k++)
        if (ts_db_res_get(r, 0, cols[k].col))
            json_object_set_new(rec, cols[k].key, json_string(ts_db_res_get(r, 0, cols[k].col)));
    json_object_set_new(rec, "size", json_integer(ts_db_res_int(r, 0, 7, 0)));
    json_object_set_new(rec, "object_count", json_integer(ts_db_res_int(r, 0, 17, 0)));
    json_object_set_new(rec, "account", json_string(acct));
    json_object_set_new(rec, "status", json_string("available"));
    char *text = ts_json_dump(rec);
    char *b64 = ts_b64_encode((const unsigned char *)text, strlen(text));
    ts_http_resp_json(resp, 200,
                      json_pack("{s:{s:s, s:s}}", "backup-record", "backup_service",
                                is_swift(r, 0) ? SVC_SWIFT : SVC_POSIX, "backup_url", b64));
    free(b64);
    free(text);
    json_decref(rec);
    ts_db_res_free(r);
    return 0;
}

int ts_volume_h_backup_import(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = ts_volume_check_writer(req, err))) return rc;
    if (!req->auth->is_admin)
        return ts_err_set(err, TS_EFORBIDDEN, "Policy doesn't allow backup:backup-import to be performed.");
    json_t *body = NULL, *b = NULL, *rec = NULL;
    unsigned char *raw = NULL;
    size_t rawlen = 0;
    struct ts_db_res *r = NULL;
    if ((rc = ts_http_json_body(req, &body, err))) return rc;
    if ((rc = ts_json_body_object(body, "backup-record", &b, err))) return rc;
    const char *service = ts_json_str(b, "backup_service", NULL), *url = ts_json_str(b, "backup_url", NULL);
    if (!service || !url) return ts_err_set(err, TS_EINVAL, "Incorrect request body format.");
    const char *driver = strstr(service, "swift") ? "swift" : strstr(service, "posix") ? "file" : NULL;
    if (!driver)
        return ts_err_set(err, TS_EINVAL, "Invalid input received: unsupported backup service %s.", service);
    if (ts_b64_decode(url, strlen(url), &raw, &rawlen) != 0 ||
        !(rec = json_loadb((const char *)raw, rawlen, 0, NULL)) || !json_is_object(rec)) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input received: Can't parse backup record.");
        goto out;
    }
    const char *id = ts_json_str(rec, "id", NULL), *host = ts_json_str(rec, "host", NULL);
    const char *prefix = ts_json_str(rec, "service_metadata", NULL),
               *cont = ts_json_str(rec, "container", NULL);
    json_int_t size = json_integer_value(json_object_get(rec, "size"));
    if (!id || !ts_uuid_valid(id) || size <= 0 || !cont || (ts_streq(driver, "swift") && !prefix)) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input received: Can't parse backup record.");
        goto out;
    }
    char bhost[600];
    if (!host || !ts_volume_mgr_backend(svc, host))
        snprintf(bhost, sizeof(bhost), "%s@%s", svc->host, svc->backends[0]->name);
    else
        snprintf(bhost, sizeof(bhost), "%s", host);
    char now[32];
    ts_volume_now(now);
    rc = ts_db_exec(
        svc->db,
        "INSERT INTO backups (id, volume_id, project_id, user_id, name, description, status, size, "
        "container, "
        "host, created_at, updated_at, data_timestamp, snapshot_id, volume_meta, driver, service_metadata, "
        "object_count, account) VALUES (?, ?, ?, ?, ?, ?, 'creating', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        TS_DB_ARGS(
            TS_DB_S(id), TS_DB_S(ts_json_str(rec, "volume_id", "0")), TS_DB_S(req->auth->project_id),
            TS_DB_S(req->auth->user_id), TS_DB_S(ts_json_str(rec, "display_name", NULL)),
            TS_DB_S(ts_json_str(rec, "display_description", NULL)), TS_DB_I(size), TS_DB_S(cont),
            TS_DB_S(bhost), TS_DB_S(now), TS_DB_S(now), TS_DB_S(ts_json_str(rec, "data_timestamp", now)),
            TS_DB_S(ts_json_str(rec, "snapshot_id", NULL)), TS_DB_S(ts_json_str(rec, "volume_meta", NULL)),
            TS_DB_S(driver), TS_DB_S(prefix),
            TS_DB_I(json_integer_value(json_object_get(rec, "object_count"))),
            TS_DB_S(ts_json_str(rec, "account", ts_json_str(rec, "project_id", req->auth->project_id)))),
        NULL, err);
    if (rc == -TS_ECONFLICT) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid backup: Backup already exists in database.");
        goto out;
    }
    if (rc) goto out;
    if (ts_volume_cast_manager(svc, bhost, "import_backup",
                               json_pack("{s:s, s:s}", "backup_id", id, "token", req->auth->token),
                               NULL) != 0)
        ts_db_exec(svc->db,
                   "UPDATE backups SET status = 'error', fail_reason = 'no volume manager' WHERE id = ?",
                   TS_DB_ARGS(TS_DB_S(id)), NULL, NULL);
    if ((rc = bk_load(svc, req, id, &r, err))) goto out;
    ts_http_resp_json(resp, 201, json_pack("{s:o}", "backup", bk_view(svc, req, r, 0, false)));
out:
    json_decref(rec);
    free(raw);
    ts_db_res_free(r);
    return rc;
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

/* The backup row (BK_COLS) for the manager, or NULL when it is gone. */
static struct ts_db_res *bk_row(struct ts_volume_svc *svc, const char *id)
{
    struct ts_db_res *r = NULL;
    if (ts_db_exec(svc->db, "SELECT " BK_COLS " FROM backups WHERE id = ?", TS_DB_ARGS(TS_DB_S(id)), &r,
                   NULL) != 0)
        return NULL;
    if (r->nrows == 0) {
        ts_db_res_free(r);
        return NULL;
    }
    return r;
}

static void job_from_row(struct ts_volume_bswift_job *j, const struct ts_db_res *r, const char *token)
{
    memset(j, 0, sizeof(*j));
    j->token = token;
    j->backup_id = ts_db_res_get(r, 0, 0);
    j->volume_id = ts_db_res_get(r, 0, 1);
    j->project = ts_db_res_get(r, 0, 19) ? ts_db_res_get(r, 0, 19) : ts_db_res_get(r, 0, 2);
    j->name = ts_db_res_get(r, 0, 4);
    j->description = ts_db_res_get(r, 0, 5);
    j->container = ts_db_res_get(r, 0, 8);
    j->created_at = ts_db_res_get(r, 0, 12);
    j->prefix = ts_db_res_get(r, 0, 16);
    j->volume_meta = ts_db_res_get(r, 0, 18);
}

/* Bytes in an open volume: a file's size or a block device's. */
static int64_t fd_length(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0) return -1;
    if (S_ISBLK(st.st_mode)) return (int64_t)lseek(fd, 0, SEEK_END);
    return (int64_t)st.st_size;
}

static int swift_create(struct ts_volume_svc *svc, const struct ts_db_res *r, const char *token,
                        const char *src, int64_t *count, struct ts_err *err)
{
    struct ts_volume_bswift_job job;
    job_from_row(&job, r, token);
    if (!job.prefix || !job.container) return ts_err_set(err, TS_EINVAL, "the backup has no object prefix");
    int fd = open(src, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ts_err_set(err, TS_EIO, "open %s: %s", src, strerror(errno));
    int64_t len = fd_length(fd);
    int rc = len < 0 ? ts_err_set(err, TS_EIO, "size of %s: %s", src, strerror(errno))
                     : ts_volume_bswift_backup(svc, &job, fd, len, count, err);
    close(fd);
    return rc;
}

void ts_volume_backup_create_work(struct ts_volume_svc *svc, struct ts_volume_backend *be, json_t *args)
{
    const char *id = ts_json_str(args, "backup_id", NULL), *vid = ts_json_str(args, "volume_id", NULL);
    const char *restore = ts_json_str(args, "restore_status", "available");
    if (!id || !vid) return;
    char src[1200], tmp[1200], fin[1200], now[32];
    struct ts_err e = {0};
    struct ts_db_res *r = bk_row(svc, id);
    int64_t count = 0;
    int rc = 0;
    const char *snap = ts_json_str(args, "snapshot_id", NULL);
    if (snap)
        snprintf(src, sizeof(src), "%s/snapshot-%s", be->dir, snap); /* file backend layout */
    else
        be->ops->path(be, vid, src, sizeof(src));
    if (!r || !ts_streq(ts_db_res_get(r, 0, 6), "creating")) {
        rc = ts_err_set(&e, TS_ENOTFOUND, "the backup is gone or no longer creating");
    } else if (is_swift(r, 0)) {
        rc = swift_create(svc, r, ts_json_str(args, "token", NULL), src, &count, &e);
    } else {
        ts_mkdirs(ts_conf_get(svc->env->conf, "volume", "backups_dir", "/tmp"), 0700);
        backup_path(svc, id, true, tmp, sizeof(tmp));
        backup_path(svc, id, false, fin, sizeof(fin));
        rc = copy_file(src, tmp, 0, &e);
        if (rc == 0 && rename(tmp, fin) != 0) rc = ts_err_set(&e, TS_EIO, "rename: %s", strerror(errno));
        if (rc) unlink(tmp);
        count = rc ? 0 : 1;
    }
    if (rc) ts_warn("volume", "backup %s of volume %s failed: %s", id, vid, e.msg);
    ts_volume_now(now);
    /* only a backup still "creating" changes: a reset-status or delete meanwhile wins */
    ts_db_exec(
        svc->db,
        "UPDATE backups SET status = ?, fail_reason = ?, object_count = ?, updated_at = ? WHERE id = ? "
        "AND status = 'creating'",
        TS_DB_ARGS(TS_DB_S(rc ? "error" : "available"), TS_DB_S(rc ? e.msg : NULL), TS_DB_I(count),
                   TS_DB_S(now), TS_DB_S(id)),
        NULL, NULL);
    ts_db_exec(svc->db,
               "UPDATE volumes SET status = ?, updated_at = ? WHERE id = ? AND status = 'backing-up'",
               TS_DB_ARGS(TS_DB_S(restore), TS_DB_S(now), TS_DB_S(vid)), NULL, NULL);
    ts_db_res_free(r);
    ts_bus_notify(svc->env->bus, svc->publisher, "backup.create.end", "INFO",
                  json_pack("{s:s, s:s, s:s}", "backup_id", id, "volume_id", vid, "status",
                            rc ? "error" : "available"));
}

/* Restores a swift backup into volume vid: a block device in place, a file backend through
 * a temporary file renamed over the volume's. */
static int swift_restore(struct ts_volume_svc *svc, struct ts_volume_backend *be, const struct ts_db_res *r,
                         const char *token, const char *vid, int64_t size_gb, struct ts_err *err)
{
    struct ts_volume_bswift_job job;
    job_from_row(&job, r, token);
    if (!job.prefix || !job.container) return ts_err_set(err, TS_EINVAL, "the backup has no object prefix");
    char dst[1200], tmp[1200];
    be->ops->path(be, vid, dst, sizeof(dst));
    struct stat st;
    bool exists = stat(dst, &st) == 0;
    int rc = 0;
    if (!exists && !ts_streq(be->ops->driver, "file")) {
        /* a device backend: make the new volume first, then write into it */
        if ((rc = be->ops->create(be, vid, size_gb, err))) return rc;
        exists = stat(dst, &st) == 0;
    }
    if (exists && S_ISBLK(st.st_mode)) {
        int fd = open(dst, O_WRONLY | O_CLOEXEC);
        if (fd < 0) return ts_err_set(err, TS_EIO, "open %s: %s", dst, strerror(errno));
        int64_t len = fd_length(fd);
        rc = len < 0 ? ts_err_set(err, TS_EIO, "size of %s", dst)
                     : ts_volume_bswift_restore(svc, &job, fd, len, false, err);
        if (rc == 0 && fsync(fd) != 0) rc = ts_err_set(err, TS_EIO, "fsync %s: %s", dst, strerror(errno));
        close(fd);
        return rc;
    }
    snprintf(tmp, sizeof(tmp), "%s/.tmp-restore-%s", be->dir, vid);
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return ts_err_set(err, TS_EIO, "open %s: %s", tmp, strerror(errno));
    int64_t len = size_gb << 30;
    if (ftruncate(fd, len) != 0) rc = ts_err_set(err, TS_EIO, "truncate %s: %s", tmp, strerror(errno));
    if (rc == 0) rc = ts_volume_bswift_restore(svc, &job, fd, len, true, err);
    if (rc == 0 && fsync(fd) != 0) rc = ts_err_set(err, TS_EIO, "fsync %s: %s", tmp, strerror(errno));
    close(fd);
    if (rc == 0 && rename(tmp, dst) != 0) rc = ts_err_set(err, TS_EIO, "rename: %s", strerror(errno));
    if (rc) unlink(tmp);
    return rc;
}

void ts_volume_backup_restore_work(struct ts_volume_svc *svc, struct ts_volume_backend *be, json_t *args)
{
    const char *id = ts_json_str(args, "backup_id", NULL), *vid = ts_json_str(args, "volume_id", NULL);
    if (!id || !vid) return;
    char src[1200], dst[1200], tmp[1200], now[32];
    struct ts_err e = {0};
    struct ts_db_res *r = NULL, *bk = bk_row(svc, id);
    int64_t size = 1;
    if (ts_db_exec(svc->db, "SELECT size FROM volumes WHERE id = ?", TS_DB_ARGS(TS_DB_S(vid)), &r, NULL) ==
            0 &&
        r->nrows)
        size = ts_db_res_int(r, 0, 0, 1);
    ts_db_res_free(r);
    int rc;
    if (!bk) {
        rc = ts_err_set(&e, TS_ENOTFOUND, "the backup is gone");
    } else if (is_swift(bk, 0)) {
        rc = swift_restore(svc, be, bk, ts_json_str(args, "token", NULL), vid, size, &e);
    } else {
        backup_path(svc, id, false, src, sizeof(src));
        be->ops->path(be, vid, dst, sizeof(dst));
        snprintf(tmp, sizeof(tmp), "%s/.tmp-restore-%s", be->dir, vid);
        rc = copy_file(src, tmp, size << 30, &e);
        if (rc == 0 && rename(tmp, dst) != 0) rc = ts_err_set(&e, TS_EIO, "rename: %s", strerror(errno));
        if (rc) unlink(tmp);
    }
    ts_db_res_free(bk);
    if (rc) ts_warn("volume", "restore of backup %s failed: %s", id, e.msg);
    ts_volume_now(now);
    ts_db_exec(svc->db, "UPDATE volumes SET status = ?, updated_at = ? WHERE id = ?",
               TS_DB_ARGS(TS_DB_S(rc ? "error_restoring" : "available"), TS_DB_S(now), TS_DB_S(vid)), NULL,
               NULL);
    ts_db_exec(
        svc->db,
        "UPDATE backups SET status = 'available', updated_at = ? WHERE id = ? AND status = 'restoring'",
        TS_DB_ARGS(TS_DB_S(now), TS_DB_S(id)), NULL, NULL);
    ts_bus_notify(svc->env->bus, svc->publisher, "backup.restore.end", "INFO",
                  json_pack("{s:s, s:s, s:s}", "backup_id", id, "volume_id", vid, "status",
                            rc ? "error_restoring" : "available"));
}

void ts_volume_backup_delete_work(struct ts_volume_svc *svc, struct ts_volume_backend *be, json_t *args)
{
    (void)be;
    const char *id = ts_json_str(args, "backup_id", NULL);
    struct ts_db_res *r = id ? bk_row(svc, id) : NULL;
    if (!r) return;
    if (ts_streq(ts_db_res_get(r, 0, 6), "deleting")) {
        struct ts_volume_bswift_job job;
        struct ts_err e = {0};
        job_from_row(&job, r, ts_json_str(args, "token", NULL));
        int rc = job.prefix && job.container ? ts_volume_bswift_delete(svc, &job, &e) : 0;
        if (rc) {
            char now[32];
            ts_volume_now(now);
            ts_warn("volume", "delete of backup %s failed: %s", id, e.msg);
            ts_db_exec(svc->db,
                       "UPDATE backups SET status = 'error', fail_reason = ?, updated_at = ? WHERE id = ?",
                       TS_DB_ARGS(TS_DB_S(e.msg), TS_DB_S(now), TS_DB_S(id)), NULL, NULL);
        } else {
            bk_remove(svc, id);
        }
    }
    ts_db_res_free(r);
}

void ts_volume_backup_import_work(struct ts_volume_svc *svc, struct ts_volume_backend *be, json_t *args)
{
    (void)be;
    const char *id = ts_json_str(args, "backup_id", NULL);
    struct ts_db_res *r = id ? bk_row(svc, id) : NULL;
    if (!r) return;
    struct ts_err e = {0};
    int rc = 0;
    if (is_swift(r, 0)) {
        struct ts_volume_bswift_job job;
        job_from_row(&job, r, ts_json_str(args, "token", NULL));
        rc = ts_volume_bswift_check(svc, &job, &e);
    } else {
        char p[1200];
        struct stat st;
        backup_path(svc, id, false, p, sizeof(p));
        if (stat(p, &st) != 0) rc = ts_err_set(&e, TS_ENOTFOUND, "no backup file %s", p);
    }
    char now[32];
    ts_volume_now(now);
    ts_db_exec(
        svc->db,
        "UPDATE backups SET status = ?, fail_reason = ?, updated_at = ? WHERE id = ? AND status = 'creating'",
        TS_DB_ARGS(TS_DB_S(rc ? "error" : "available"), TS_DB_S(rc ? e.msg : NULL), TS_DB_S(now),
                   TS_DB_S(id)),
        NULL, NULL);
    ts_db_res_free(r);
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
    /* an interrupted delete may be retried by the user */
    ts_db_exec(
        svc->db,
        "UPDATE backups SET status = 'error', fail_reason = 'delete interrupted' WHERE status = 'deleting'",
        TS_DB_NOARGS, NULL, NULL);
    ts_db_exec(svc->db, "UPDATE volumes SET status = 'available' WHERE status = 'backing-up'", TS_DB_NOARGS,
               NULL, NULL);
    ts_db_exec(svc->db, "UPDATE volumes SET status = 'error_restoring' WHERE status = 'restoring-backup'",
               TS_DB_NOARGS, NULL, NULL);
}
