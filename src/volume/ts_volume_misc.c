/*
 * ts_volume_misc.c: the smaller resources: quota sets and quota classes, limits,
 * availability zones, services, scheduler pools, extensions, user messages, and volume
 * transfers (a volume handed from one project to another with an auth key; only a hash
 * of the key is stored).
 */
#include "volume/ts_volume_int.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

static const char *const quota_res[] = {
    "volumes", "snapshots", "gigabytes", "backups", "backup_gigabytes", "groups", "per_volume_gigabytes",
    NULL};

static int need_admin(struct ts_http_req *req, struct ts_err *err)
{
    if (!req->auth->is_admin)
        return ts_err_set(err, TS_EFORBIDDEN, "Policy doesn't allow this operation to be performed.");
    return 0;
}

static void usage_of(struct ts_volume_svc *svc, const char *project, int64_t *vols, int64_t *gb,
                     int64_t *snaps)
{
    struct ts_db_res *r = NULL;
    *vols = *gb = *snaps = 0;
    if (ts_db_exec(svc->db,
                   "SELECT (SELECT COUNT(*) FROM volumes WHERE project_id = ?),"
                   " (SELECT COALESCE(SUM(size), 0) FROM volumes WHERE project_id = ?),"
                   " (SELECT COUNT(*) FROM snapshots WHERE project_id = ?),"
                   " (SELECT COALESCE(SUM(size), 0) FROM snapshots WHERE project_id = ?)",
                   TS_DB_ARGS(TS_DB_S(project), TS_DB_S(project), TS_DB_S(project), TS_DB_S(project)), &r,
                   NULL) == 0) {
        *vols = ts_db_res_int(r, 0, 0, 0);
        *gb = ts_db_res_int(r, 0, 1, 0) + ts_db_res_int(r, 0, 3, 0);
        *snaps = ts_db_res_int(r, 0, 2, 0);
    }
    ts_db_res_free(r);
}

static json_t *quota_set(struct ts_volume_svc *svc, const char *project, bool usage, bool defaults)
{
    json_t *o = json_object();
    int64_t vols = 0, gb = 0, snaps = 0;
    if (usage) usage_of(svc, project, &vols, &gb, &snaps);
    for (int i = 0; quota_res[i]; i++) {
        int64_t lim = ts_volume_quota_limit(svc, NULL, defaults ? NULL : project, quota_res[i]);
        if (usage) {
            int64_t in_use = !strcmp(quota_res[i], "volumes")     ? vols
                             : !strcmp(quota_res[i], "gigabytes") ? gb
                             : !strcmp(quota_res[i], "snapshots") ? snaps
                                                                  : 0;
            json_object_set_new(o, quota_res[i],
                                json_pack("{s:I, s:I, s:I, s:I}", "limit", (json_int_t)lim, "in_use",
                                          (json_int_t)in_use, "reserved", (json_int_t)0, "allocated",
                                          (json_int_t)0));
        } else {
            json_object_set_new(o, quota_res[i], json_integer(lim));
        }
    }
    /* per-type quotas (unlimited unless set) */
    struct ts_db_res *t = NULL;
    if (ts_db_exec(svc->db, "SELECT name FROM volume_types ORDER BY name", TS_DB_NOARGS, &t, NULL) == 0) {
        for (int i = 0; i < t->nrows; i++) {
            static const char *const pre[] = {"volumes_", "gigabytes_", "snapshots_"};
            for (int k = 0; k < 3; k++) {
                char key[320];
                snprintf(key, sizeof(key), "%s%s", pre[k], ts_db_res_get(t, i, 0));
                int64_t lim = ts_volume_quota_limit(svc, NULL, defaults ? NULL : project, key);
                if (usage)
                    json_object_set_new(o, key,
                                        json_pack("{s:I, s:i, s:i, s:i}", "limit", (json_int_t)lim, "in_use",
                                                  0, "reserved", 0, "allocated", 0));
                else
                    json_object_set_new(o, key, json_integer(lim));
            }
        }
    }
    ts_db_res_free(t);
    return o;
}

static int target_ok(struct ts_http_req *req, const char *target, struct ts_err *err)
{
    if (!req->auth->is_admin && !ts_streq(target, req->auth->project_id))
        return ts_err_set(err, TS_EFORBIDDEN,
                          "Policy doesn't allow volume_extension:quotas:show to be performed.");
    return 0;
}

int ts_volume_h_quota_show(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    const char *target = ts_http_param(req, "target");
    if ((rc = target_ok(req, target, err))) return rc;
    bool usage = false;
    const char *u = ts_http_query(req, "usage");
    if (u) ts_parse_bool(u, &usage);
    json_t *qs = quota_set(svc, target, usage, false);
    json_object_set_new(qs, "id", json_string(target));
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "quota_set", qs));
    return 0;
}

int ts_volume_h_quota_defaults(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    const char *target = ts_http_param(req, "target");
    json_t *qs = quota_set(svc, target, false, true);
    json_object_set_new(qs, "id", json_string(target));
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "quota_set", qs));
    return 0;
}

/* Validates and stores {"<resource>": int, ...} into table for owner. */
static int store_limits(struct ts_volume_svc *svc, const char *table, const char *owner_col,
                        const char *owner, json_t *set, struct ts_err *err)
{
    if (!json_is_object(set))
        return ts_err_set(err, TS_EINVAL, "Missing required element 'quota_set' in request body.");
    const char *k;
    json_t *v;
    json_object_foreach(set, k, v)
    {
        bool known = false;
        for (int i = 0; quota_res[i]; i++)
            if (!strcmp(quota_res[i], k)) known = true;
        if (!known && (ts_startswith(k, "volumes_") || ts_startswith(k, "gigabytes_") ||
                       ts_startswith(k, "snapshots_")))
            known = true;
        if (!known) {
            if (!strcmp(k, "tenant_id") || !strcmp(k, "id") || !strcmp(k, "class_name")) continue;
            return ts_err_set(err, TS_EINVAL, "Bad key(s) in quota set: %s", k);
        }
        int64_t val;
        if (json_is_integer(v))
            val = json_integer_value(v);
        else if (!json_is_string(v) || ts_parse_int64(json_string_value(v), &val) != 0)
            return ts_err_set(err, TS_EINVAL, "Quota limit for %s must be an integer.", k);
        if (val < -1)
            return ts_err_set(err, TS_EINVAL, "Quota limit %lld for %s must be -1 or greater.",
                              (long long)val, k);
        if (val > 2147483647LL) return ts_err_set(err, TS_EINVAL, "Quota limit for %s is too large.", k);
    }
    json_object_foreach(set, k, v)
    {
        if (!strcmp(k, "tenant_id") || !strcmp(k, "id") || !strcmp(k, "class_name")) continue;
        int64_t val = 0;
        if (json_is_integer(v))
            val = json_integer_value(v);
        else
            ts_parse_int64(json_string_value(v), &val);
        char *sql = ts_asprintf(
            "INSERT INTO %s (%s, resource, hard_limit) VALUES (?, ?, ?) ON CONFLICT (%s, resource) "
            "DO UPDATE SET hard_limit = excluded.hard_limit",
            table, owner_col, owner_col);
        int rc = ts_db_exec(svc->db, sql, TS_DB_ARGS(TS_DB_S(owner), TS_DB_S(k), TS_DB_I(val)), NULL, err);
        free(sql);
        if (rc) return rc;
    }
    return 0;
}

int ts_volume_h_quota_update(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = need_admin(req, err))) return rc;
    const char *target = ts_http_param(req, "target");
    json_t *body = NULL;
    if ((rc = ts_http_json_body(req, &body, err))) return rc;
    if ((rc = store_limits(svc, "quotas", "project_id", target, json_object_get(body, "quota_set"), err)))
        return rc;
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "quota_set", quota_set(svc, target, false, false)));
    return 0;
}

int ts_volume_h_quota_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = need_admin(req, err))) return rc;
    if ((rc = ts_db_exec(svc->db, "DELETE FROM quotas WHERE project_id = ?",
                         TS_DB_ARGS(TS_DB_S(ts_http_param(req, "target"))), NULL, err)))
        return rc;
    ts_http_resp_body(resp, 200, NULL, "", 0);
    return 0;
}

static json_t *class_set(struct ts_volume_svc *svc, const char *cls)
{
    json_t *o = json_object();
    for (int i = 0; quota_res[i]; i++) {
        bool found = false;
        struct ts_db_res *r = NULL;
        int64_t v = 0;
        if (ts_db_exec(svc->db, "SELECT hard_limit FROM quota_classes WHERE class_name = ? AND resource = ?",
                       TS_DB_ARGS(TS_DB_S(cls), TS_DB_S(quota_res[i])), &r, NULL) == 0 &&
            r->nrows > 0) {
            found = true;
            v = ts_db_res_int(r, 0, 0, 0);
        }
        ts_db_res_free(r);
        json_object_set_new(o, quota_res[i],
                            json_integer(found ? v : ts_volume_quota_limit(svc, NULL, NULL, quota_res[i])));
    }
    struct ts_db_res *t = NULL;
    if (ts_db_exec(svc->db, "SELECT name FROM volume_types ORDER BY name", TS_DB_NOARGS, &t, NULL) == 0) {
        for (int i = 0; i < t->nrows; i++) {
            static const char *const pre[] = {"volumes_", "gigabytes_", "snapshots_"};
            for (int k = 0; k < 3; k++) {
                char key[320];
                snprintf(key, sizeof(key), "%s%s", pre[k], ts_db_res_get(t, i, 0));
                json_object_set_new(o, key, json_integer(ts_volume_quota_limit(svc, NULL, NULL, key)));
            }
        }
    }
    ts_db_res_free(t);
    return o;
}

int ts_volume_h_quota_class_show(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = need_admin(req, err))) return rc;
    const char *cls = ts_http_param(req, "class");
    json_t *o = class_set(svc, cls);
    json_object_set_new(o, "id", json_string(cls));
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "quota_class_set", o));
    return 0;
}

int ts_volume_h_quota_class_update(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = need_admin(req, err))) return rc;
    const char *cls = ts_http_param(req, "class");
    json_t *body = NULL;
    if ((rc = ts_http_json_body(req, &body, err))) return rc;
    json_t *set = json_object_get(body, "quota_class_set");
    if (!json_is_object(set))
        return ts_err_set(err, TS_EINVAL, "Missing required element 'quota_class_set' in request body.");
    if ((rc = store_limits(svc, "quota_classes", "class_name", cls, set, err))) return rc;
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "quota_class_set", class_set(svc, cls)));
    return 0;
}

int ts_volume_h_limits(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    const char *p = req->auth->project_id;
    int64_t vols, gb, snaps;
    usage_of(svc, p, &vols, &gb, &snaps);
    json_t *abs =
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:i}", "maxTotalVolumes",
                  (json_int_t)ts_volume_quota_limit(svc, NULL, p, "volumes"), "maxTotalSnapshots",
                  (json_int_t)ts_volume_quota_limit(svc, NULL, p, "snapshots"), "maxTotalVolumeGigabytes",
                  (json_int_t)ts_volume_quota_limit(svc, NULL, p, "gigabytes"), "maxTotalBackups",
                  (json_int_t)ts_volume_quota_limit(svc, NULL, p, "backups"), "maxTotalBackupGigabytes",
                  (json_int_t)ts_volume_quota_limit(svc, NULL, p, "backup_gigabytes"), "totalVolumesUsed",
                  (json_int_t)vols, "totalGigabytesUsed", (json_int_t)gb, "totalSnapshotsUsed",
                  (json_int_t)snaps, "totalBackupsUsed", 0, "totalBackupGigabytesUsed", 0);
    ts_http_resp_json(resp, 200, json_pack("{s:{s:[], s:o}}", "limits", "rate", "absolute", abs));
    return 0;
}

int ts_volume_h_azs(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    ts_http_resp_json(resp, 200,
                      json_pack("{s:[{s:s, s:{s:b}}]}", "availabilityZoneInfo", "zoneName", svc->az,
                                "zoneState", "available", 1));
    return 0;
}

int ts_volume_h_services(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = need_admin(req, err))) return rc;
    const char *fb = ts_http_query(req, "binary"), *fh = ts_http_query(req, "host");
    char now[32];
    ts_volume_now(now);
    json_t *arr = json_array();
    for (int i = -1; i < svc->n_backends; i++) {
        char host[320];
        const char *bin = i < 0 ? "cinder-scheduler" : "cinder-volume";
        if (i < 0)
            snprintf(host, sizeof(host), "%s", svc->host);
        else
            snprintf(host, sizeof(host), "%s@%s", svc->host, svc->backends[i]->name);
        if (fb && strcmp(fb, bin)) continue;
        if (fh && strcmp(fh, host) && strcmp(fh, svc->host)) continue;
        json_t *s =
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:n}", "binary", bin, "host", host, "zone", svc->az,
                      "status", "enabled", "state", "up", "updated_at", now, "disabled_reason");
        if (mv >= 7) json_object_set_new(s, "cluster", json_null());
        if (mv >= 49 && i >= 0) json_object_set_new(s, "backend_state", json_string("up"));
        json_array_append_new(arr, s);
    }
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "services", arr));
    return 0;
}

/* "<host>@<backend>" of backend i into out. */
static void backend_host(struct ts_volume_svc *svc, int i, char *out, size_t len)
{
    snprintf(out, len, "%s@%s", svc->host, svc->backends[i]->name);
}

/* Index of the backend whose "<host>@<backend>[#pool]" is host, or -1. */
static int find_backend_host(struct ts_volume_svc *svc, const char *host)
{
    for (int i = 0; host && i < svc->n_backends; i++) {
        char h[320];
        backend_host(svc, i, h, sizeof(h));
        if (strncmp(host, h, strlen(h)) == 0 && (host[strlen(h)] == 0 || host[strlen(h)] == '#')) return i;
    }
    return -1;
}

int ts_volume_h_service_action(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = need_admin(req, err))) return rc;
    const char *action = ts_http_param(req, "action");
    json_t *body = NULL;
    if ((rc = ts_http_json_body(req, &body, err))) return rc;
    const char *host = ts_json_str(body, "host", NULL),
               *binary = ts_json_str(body, "binary", "cinder-volume");
    if (!strcmp(action, "freeze") || !strcmp(action, "thaw")) {
        if (find_backend_host(svc, host) < 0)
            return ts_err_set(err, TS_EINVAL, "Host %s is not valid.", host ? host : "");
        ts_http_resp_body(resp, 200, NULL, "", 0);
        return 0;
    }
    if (strcmp(action, "enable") && strcmp(action, "disable") && strcmp(action, "disable-log-reason"))
        return ts_err_set(err, TS_ENOTFOUND, "Unknown action");
    if (!host) return ts_err_set(err, TS_EINVAL, "Missing required element 'host' in request body.");
    if (strcmp(binary, "cinder-volume") && strcmp(binary, "cinder-scheduler") &&
        strcmp(binary, "cinder-backup"))
        return ts_err_set(err, TS_ENOTFOUND, "Service %s could not be found.", binary);
    const char *reason = ts_json_str(body, "disabled_reason", NULL);
    if (!strcmp(action, "disable-log-reason") && (!reason || !*reason || strlen(reason) > 255))
        return ts_err_set(err, TS_EINVAL, "Disabled reason contains invalid characters or is too long");
    if (strcmp(host, svc->host) && find_backend_host(svc, host) < 0)
        return ts_err_set(err, TS_ENOTFOUND, "Host %s could not be found.", host);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:b}", "host", host, "binary", binary, "service", binary,
                          "status", strcmp(action, "enable") ? "disabled" : "enabled", "disabled",
                          strcmp(action, "enable") != 0);
    if (!strcmp(action, "disable-log-reason"))
        json_object_set_new(o, "disabled_reason", json_string(reason));
    else if (!strcmp(action, "enable"))
        json_object_set_new(o, "disabled_reason", json_null());
    ts_http_resp_json(resp, 200, o);
    return 0;
}

int ts_volume_h_hosts(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = need_admin(req, err))) return rc;
    char now[32];
    ts_volume_now(now);
    json_t *arr = json_array();
    for (int i = -1; i < svc->n_backends; i++) {
        char h[320];
        if (i < 0)
            snprintf(h, sizeof(h), "%s", svc->host);
        else
            backend_host(svc, i, h, sizeof(h));
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "service-status", "available",
                                             "service", i < 0 ? "cinder-scheduler" : "cinder-volume", "zone",
                                             svc->az, "service-state", "enabled", "host_name", h,
                                             "last-update", now));
    }
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "hosts", arr));
    return 0;
}

int ts_volume_h_host_show(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = need_admin(req, err))) return rc;
    const char *host = ts_http_param(req, "host");
    int i = find_backend_host(svc, host);
    if (i < 0) return ts_err_set(err, TS_ENOTFOUND, "Host %s could not be found.", host);
    struct ts_db_res *r = NULL;
    if ((rc = ts_db_exec(svc->db,
                         "SELECT project_id, COUNT(*), COALESCE(SUM(size), 0) FROM volumes WHERE backend = ? "
                         "GROUP BY project_id",
                         TS_DB_ARGS(TS_DB_S(svc->backends[i]->name)), &r, err)))
        return rc;
    json_t *arr = json_array();
    int64_t tv = 0, tg = 0;
    for (int k = 0; k < r->nrows; k++) {
        tv += ts_db_res_int(r, k, 1, 0);
        tg += ts_db_res_int(r, k, 2, 0);
    }
    char a[32], b[32];
    snprintf(a, sizeof(a), "%lld", (long long)tv);
    snprintf(b, sizeof(b), "%lld", (long long)tg);
    json_array_append_new(arr, json_pack("{s:{s:s, s:s, s:s, s:s, s:s, s:s}}", "resource", "host", host,
                                         "project", "(total)", "volume_count", a, "total_volume_gb", b,
                                         "snapshot_count", "0", "total_snapshot_gb", "0"));
    for (int k = 0; k < r->nrows; k++)
        json_array_append_new(
            arr, json_pack("{s:{s:s, s:s, s:s, s:s, s:s, s:s}}", "resource", "host", host, "project",
                           ts_db_res_get(r, k, 0), "volume_count", ts_db_res_get(r, k, 1), "total_volume_gb",
                           ts_db_res_get(r, k, 2), "snapshot_count", "0", "total_snapshot_gb", "0"));
    ts_db_res_free(r);
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "host", arr));
    return 0;
}

int ts_volume_h_capabilities(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = need_admin(req, err))) return rc;
    const char *host = ts_http_param(req, "host");
    int i = find_backend_host(svc, host);
    if (i < 0) return ts_err_set(err, TS_ENOTFOUND, "Host %s could not be found.", host);
    struct ts_volume_backend *be = svc->backends[i];
    char ns[400];
    snprintf(ns, sizeof(ns), "OS::Storage::Capabilities::%s", host);
    ts_http_resp_json(resp, 200,
                      json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:n, s:n, s:s, s:[], s:{}}", "namespace", ns,
                                "vendor_name", "Open Source", "volume_backend_name", be->name, "pool_name",
                                be->name, "driver_version", "1.0", "storage_protocol", "file", "display_name",
                                "description", "visibility", "pool", "replication_targets", "properties"));
    return 0;
}

int ts_volume_h_pools(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = need_admin(req, err))) return rc;
    bool detail = false;
    const char *d = ts_http_query(req, "detail");
    if (d) ts_parse_bool(d, &detail);
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "pools", ts_volume_mgr_pools(svc, detail)));
    return 0;
}

int ts_volume_h_extensions(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    static const char *const ext[][2] = {
        {"AvailabilityZones", "os-availability-zone"},
        {"VolumeActions", "os-volume-actions"},
        {"VolumeTypeAccess", "os-volume-type-access"},
        {"VolumeTransfer", "os-volume-transfer"},
        {"Quotas", "os-quota-sets"},
        {"QuotaClasses", "os-quota-class-sets"},
        {"Services", "os-services"},
        {"ExtendedSnapshotAttributes", "os-extended-snapshot-attributes"},
        {"VolumeHostAttribute", "os-vol-host-attr"},
        {"VolumeTenantAttribute", "os-vol-tenant-attr"},
        {"VolumeMigStatusAttribute", "os-vol-mig-status-attr"},
        {"SchedulerStats", "scheduler-stats"},
        {"AdminActions", "os-admin-actions"},
        {"UsedLimits", "os-used-limits"},
        {"Types", "types"},
        {"Hosts", "os-hosts"},
        {"Capabilities", "capabilities"},
        {"TypesManage", "os-types-manage"},
        {"VolumeImageMetadata", "os-vol-image-meta"},
    };
    json_t *arr = json_array();
    for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++)
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:[]}", "name", ext[i][0], "alias",
                                             ext[i][1], "description", ext[i][0], "updated",
                                             "2013-01-01T00:00:00+00:00", "links"));
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "extensions", arr));
    return 0;
}

int ts_volume_h_messages(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    ts_http_resp_json(resp, 200, json_pack("{s:[]}", "messages"));
    return 0;
}

/* ---- transfers ------------------------------------------------------------------------------ */

static void key_hash(const char *salt, const char *key, char out[65])
{
    unsigned char md[32];
    unsigned int n = 0;
    char *s = ts_asprintf("%s%s", salt, key);
    EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL);
    free(s);
    ts_hex(md, 32, out);
}

static json_t *transfer_view(struct ts_http_req *req, const struct ts_db_res *r, int i, bool detail, int mv)
{
    const char *host = ts_http_header(req, "Host");
    char *href = ts_asprintf("http://%s/v3/%s/os-volume-transfer/%s", host ? host : "localhost",
                             req->auth->project_id, ts_db_res_get(r, i, 0));
    json_t *o = json_pack("{s:s, s:s, s:[{s:s, s:s}]}", "id", ts_db_res_get(r, i, 0), "volume_id",
                          ts_db_res_get(r, i, 1), "links", "rel", "self", "href", href);
    free(href);
    ts_json_set_str(o, "name", ts_db_res_get(r, i, 2));
    if (detail) {
        ts_json_set_str(o, "created_at", ts_db_res_get(r, i, 4));
        if (mv >= 57) {
            ts_json_set_str(o, "source_project_id", ts_db_res_get(r, i, 3));
            json_object_set_new(o, "destination_project_id", json_null());
            json_object_set_new(o, "accepted", json_false());
        }
        if (mv >= 55) json_object_set_new(o, "no_snapshots", json_false());
    }
    return o;
}

#define TR_COLS "id, volume_id, name, source_project_id, created_at, key_hash"

int ts_volume_h_transfer_create(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = ts_volume_check_writer(req, err))) return rc;
    json_t *body = NULL, *t = NULL;
    struct ts_db_res *vol = NULL, *r = NULL;
    if ((rc = ts_http_json_body(req, &body, err))) return rc;
    if ((rc = ts_json_body_object(body, "transfer", &t, err))) return rc;
    const char *vid = ts_json_str(t, "volume_id", NULL);
    json_t *nv = json_object_get(t, "name");
    if (!vid || !json_is_string(json_object_get(t, "volume_id")))
        return ts_err_set(err, TS_EINVAL, "Incorrect request body format");
    if (nv && !json_is_null(nv) && !json_is_string(nv))
        return ts_err_set(err, TS_EINVAL, "Transfer name must be a string");
    const char *name = json_string_value(nv);
    if ((rc = ts_volume_check_text("name", name, 255, err))) return rc;
    if ((rc = ts_volume_get(svc, req, vid, &vol, err))) return rc;
    if (!ts_streq(ts_db_res_getn(vol, 0, "project_id"), req->auth->project_id)) {
        rc = ts_err_set(err, TS_ENOTFOUND, "Volume %s could not be found.", vid);
        goto out;
    }
    static const char *const from[] = {"available", NULL};
    if ((rc = ts_volume_cas_status(svc, vid, from, "awaiting-transfer",
                                   "Invalid volume: status must be available", err)))
        goto out;
    char id[TS_UUID_LEN + 1], now[32], key[17], salt[17], hash[65];
    unsigned char rnd[16];
    ts_uuid(id);
    ts_volume_now(now);
    ts_random(rnd, sizeof(rnd));
    ts_hex(rnd, 8, key);
    ts_hex(rnd + 8, 8, salt);
    key_hash(salt, key, hash);
    char *stored = ts_asprintf("%s$%s", salt, hash);
    rc = ts_db_exec(svc->db,
                    "INSERT INTO transfers (id, volume_id, name, key_hash, source_project_id, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    TS_DB_ARGS(TS_DB_S(id), TS_DB_S(vid), TS_DB_S(name), TS_DB_S(stored),
                               TS_DB_S(req->auth->project_id), TS_DB_S(now)),
                    NULL, err);
    free(stored);
    if (rc) {
        ts_volume_set_status(svc, vid, "available", NULL);
        goto out;
    }
    if ((rc = ts_db_exec(svc->db, "SELECT " TR_COLS " FROM transfers WHERE id = ?", TS_DB_ARGS(TS_DB_S(id)),
                         &r, err)))
        goto out;
    json_t *v = transfer_view(req, r, 0, true, mv);
    json_object_set_new(v, "auth_key", json_string(key));
    ts_http_resp_json(resp, 202, json_pack("{s:o}", "transfer", v));
    ts_bus_notify(svc->env->bus, svc->publisher, "transfer.create.end", "INFO",
                  json_pack("{s:s, s:s}", "id", id, "volume_id", vid));
out:
    ts_db_res_free(vol);
    ts_db_res_free(r);
    return rc;
}

static int transfer_list(struct ts_http_req *req, struct ts_http_resp *resp, bool detail, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    bool all = false;
    const char *at = ts_http_query(req, "all_tenants");
    if (at && req->auth->is_admin && ts_parse_bool(at, &all) != 0) all = true;
    struct ts_db_res *r = NULL;
    if ((rc = ts_db_exec(
             svc->db,
             "SELECT " TR_COLS
             " FROM transfers WHERE CAST(? AS BIGINT) = 1 OR source_project_id = ? ORDER BY created_at",
             TS_DB_ARGS(TS_DB_I(all ? 1 : 0), TS_DB_S(req->auth->project_id)), &r, err)))
        return rc;
    json_t *arr = json_array();
    for (int i = 0; i < r->nrows; i++)
        json_array_append_new(arr, transfer_view(req, r, i, detail, mv));
    ts_db_res_free(r);
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "transfers", arr));
    return 0;
}

int ts_volume_h_transfer_list(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    return transfer_list(req, resp, false, err);
}

int ts_volume_h_transfer_detail(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    return transfer_list(req, resp, true, err);
}

static int transfer_load(struct ts_volume_svc *svc, struct ts_http_req *req, const char *id, bool any_project,
                         struct ts_db_res **out, struct ts_err *err)
{
    struct ts_db_res *r = NULL;
    int rc = ts_db_exec(svc->db, "SELECT " TR_COLS " FROM transfers WHERE id = ?",
                        TS_DB_ARGS(TS_DB_S(id ? id : "")), &r, err);
    if (rc) return rc;
    if (r->nrows == 0 ||
        (!any_project && !req->auth->is_admin && !ts_streq(ts_db_res_get(r, 0, 3), req->auth->project_id))) {
        ts_db_res_free(r);
        return ts_err_set(err, TS_ENOTFOUND, "Transfer %s could not be found.", id ? id : "");
    }
    *out = r;
    return 0;
}

int ts_volume_h_transfer_show(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    struct ts_db_res *r = NULL;
    if ((rc = transfer_load(svc, req, ts_http_param(req, "transfer_id"), false, &r, err))) return rc;
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "transfer", transfer_view(req, r, 0, true, mv)));
    ts_db_res_free(r);
    return 0;
}

int ts_volume_h_transfer_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = ts_volume_check_writer(req, err))) return rc;
    struct ts_db_res *r = NULL;
    const char *id = ts_http_param(req, "transfer_id");
    if ((rc = transfer_load(svc, req, id, false, &r, err))) return rc;
    static const char *const from[] = {"awaiting-transfer", NULL};
    ts_volume_cas_status(svc, ts_db_res_get(r, 0, 1), from, "available", "", NULL);
    ts_db_res_free(r);
    ts_db_exec(svc->db, "DELETE FROM transfers WHERE id = ?", TS_DB_ARGS(TS_DB_S(id)), NULL, NULL);
    ts_http_resp_body(resp, 202, NULL, "", 0);
    return 0;
}

int ts_volume_h_transfer_accept(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = ts_volume_check_writer(req, err))) return rc;
    json_t *body = NULL, *a = NULL;
    struct ts_db_res *r = NULL, *vol = NULL;
    struct ts_db_conn *tx = NULL;
    const char *id = ts_http_param(req, "transfer_id");
    if ((rc = ts_http_json_body(req, &body, err))) return rc;
    if ((rc = ts_json_body_object(body, "accept", &a, err))) return rc;
    const char *key = ts_json_str(a, "auth_key", NULL);
    if (!key) return ts_err_set(err, TS_EINVAL, "Incorrect request body format");
    if ((rc = transfer_load(svc, req, id, true, &r, err))) return rc;
    const char *stored = ts_db_res_get(r, 0, 5), *dollar = strchr(stored, '$');
    char salt[64] = "", hash[65];
    if (dollar && (size_t)(dollar - stored) < sizeof(salt))
        snprintf(salt, sizeof(salt), "%.*s", (int)(dollar - stored), stored);
    key_hash(salt, key, hash);
    if (!dollar || strcmp(hash, dollar + 1) != 0) {
        rc =
            ts_err_set(err, TS_EINVAL, "Invalid auth key: Attempt to transfer %s with invalid auth key.", id);
        goto out;
    }
    char vid[64];
    snprintf(vid, sizeof(vid), "%s", ts_db_res_get(r, 0, 1));
    if ((rc = ts_db_exec(svc->db, "SELECT size, status FROM volumes WHERE id = ?", TS_DB_ARGS(TS_DB_S(vid)),
                         &vol, err)))
        goto out;
    if (vol->nrows == 0 || !ts_streq(ts_db_res_get(vol, 0, 1), "awaiting-transfer")) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid volume: Volume %s is not awaiting a transfer.", vid);
        goto out;
    }
    int64_t size = ts_db_res_int(vol, 0, 0, 0);
    if ((rc = ts_db_begin(svc->db, &tx, err))) goto out;
    if ((rc = ts_volume_quota_check(svc, tx, req->auth->project_id, 1, 0, size, err))) goto out;
    char now[32];
    ts_volume_now(now);
    if ((rc = ts_db_tx_exec(
             tx,
             "UPDATE volumes SET project_id = ?, user_id = ?, status = 'available', updated_at = ? "
             "WHERE id = ?",
             TS_DB_ARGS(TS_DB_S(req->auth->project_id), TS_DB_S(req->auth->user_id), TS_DB_S(now),
                        TS_DB_S(vid)),
             NULL, err)))
        goto out;
    if ((rc = ts_db_tx_exec(tx, "UPDATE snapshots SET project_id = ? WHERE volume_id = ?",
                            TS_DB_ARGS(TS_DB_S(req->auth->project_id), TS_DB_S(vid)), NULL, err)))
        goto out;
    if ((rc = ts_db_tx_exec(tx, "DELETE FROM transfers WHERE id = ?", TS_DB_ARGS(TS_DB_S(id)), NULL, err)))
        goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    json_t *v = transfer_view(req, r, 0, false, mv);
    ts_http_resp_json(resp, 202, json_pack("{s:o}", "transfer", v));
    ts_bus_notify(svc->env->bus, svc->publisher, "transfer.accept.end", "INFO",
                  json_pack("{s:s, s:s}", "id", id, "volume_id", vid));
out:
    ts_db_rollback(tx);
    ts_db_res_free(r);
    ts_db_res_free(vol);
    return rc;
}
