/*
 * ts_compute_api_admin.c: the operator side of compute-api: os-services (list,
 * enable/disable/force-down both as PUT /os-services/{uuid} from 2.53 and through the
 * older action URLs, delete), os-hypervisors (list, detail, show, statistics, search,
 * servers), os-availability-zone, os-simple-tenant-usage and os-server-groups.
 */
#include "compute/api/ts_compute_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json/ts_json.h"

static double dbl(const char *s) { return s ? strtod(s, NULL) : 0; }

/* ---- services ----------------------------------------------------------------------- */

#define SVC_COLS "id, uuid, host, binary_name, availability_zone, disabled, disabled_reason, forced_down, " \
                 "last_seen_up, updated_at"

static json_t *service_view(struct ts_compute_svc *svc, int mv, const struct ts_db_res *r, int i)
{
    char t[32];
    bool up = ts_compute_is_up(dbl(ts_db_res_get(r, i, 8)), svc->service_down_time, ts_db_res_int(r, i, 7, 0) != 0);
    json_t *s = json_object();
    if (mv >= 53) json_object_set_new(s, "id", json_string(ts_db_res_get(r, i, 1)));
    else json_object_set_new(s, "id", json_integer(ts_db_res_int(r, i, 0, 0)));
    json_object_set_new(s, "binary", json_string(ts_db_res_get(r, i, 3)));
    json_object_set_new(s, "host", json_string(ts_db_res_get(r, i, 2)));
    const char *zone = ts_db_res_get(r, i, 4);
    json_object_set_new(s, "zone", json_string(zone ? zone : "nova"));
    json_object_set_new(s, "status", json_string(ts_db_res_int(r, i, 5, 0) ? "disabled" : "enabled"));
    json_object_set_new(s, "state", json_string(up ? "up" : "down"));
    const char *ls = ts_db_res_get(r, i, 8);
    if (ls) {
        ts_compute_iso_us(dbl(ls), t);
        json_object_set_new(s, "updated_at", json_string(t));
    } else {
        json_object_set_new(s, "updated_at", json_null());
    }
    ts_json_set_str(s, "disabled_reason", ts_db_res_get(r, i, 6));
    if (mv >= 11) json_object_set_new(s, "forced_down", json_boolean(ts_db_res_int(r, i, 7, 0) != 0));
    return s;
}

TS_COMPUTE_HANDLER(services_list)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_admin(req, err))) return rc;
    struct ts_db_res *res = NULL;
    const char *host = ts_http_query(req, "host"), *bin = ts_http_query(req, "binary");
    rc = ts_db_exec(svc->db, "SELECT " SVC_COLS " FROM services WHERE (? IS NULL OR host = ?) AND (? IS NULL OR "
                    "binary_name = ?) ORDER BY id",
                    TS_DB_ARGS(TS_DB_S(host), TS_DB_S(host), TS_DB_S(bin), TS_DB_S(bin)), &res, err);
    if (rc) return rc;
    json_t *arr = json_array();
    for (int i = 0; i < res->nrows; i++) json_array_append_new(arr, service_view(svc, mv, res, i));
    ts_db_res_free(res);
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "services", arr));
    return 0;
}

static int service_show_by(struct ts_compute_svc *svc, struct ts_http_resp *resp, int mv, const char *where,
                           const char *a1, const char *a2, struct ts_err *err)
{
    struct ts_db_res *res = NULL;
    char *sql = ts_asprintf("SELECT " SVC_COLS " FROM services WHERE %s", where);
    int rc = ts_db_exec(svc->db, sql, TS_DB_ARGS(TS_DB_S(a1), TS_DB_S(a2)), &res, err);
    free(sql);
    if (rc) return rc;
    if (res->nrows == 0) rc = ts_err_set(err, TS_ENOTFOUND, "Service %s could not be found.", a1);
    else ts_http_resp_json(resp, 200, json_pack("{s:o}", "service", service_view(svc, mv, res, 0)));
    ts_db_res_free(res);
    return rc;
}

TS_COMPUTE_HANDLER(services_update)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_admin(req, err))) return rc;
    if (mv < 53) return ts_err_set(err, TS_ENOTFOUND, "Unknown action");
    const char *id = ts_http_param(req, "id");
    if (!ts_uuid_valid(id)) return ts_err_set(err, TS_EINVAL, "Invalid uuid %s", id);
    json_t *body = NULL;
    rc = ts_http_json_body(req, &body, err);
    if (rc) return rc;
    struct ts_db_res *res = NULL;
    rc = ts_db_exec(svc->db, "SELECT binary_name FROM services WHERE uuid = ?", TS_DB_ARGS(TS_DB_S(id)), &res, err);
    if (rc) goto out;
    if (res->nrows == 0) {
        rc = ts_err_set(err, TS_ENOTFOUND, "Service %s could not be found.", id);
        goto out;
    }
    json_t *st = json_object_get(body, "status"), *reason = json_object_get(body, "disabled_reason"),
           *fd = json_object_get(body, "forced_down");
    if (!st && !fd) {
        rc = ts_err_set(err, TS_EINVAL, "At least one of 'status' or 'forced_down' should be specified.");
        goto out;
    }
    if (st && !ts_streq(json_string_value(st), "enabled") && !ts_streq(json_string_value(st), "disabled")) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute status.");
        goto out;
    }
    if (reason && (!json_is_string(reason) || !ts_streq(json_string_value(st), "disabled"))) {
        rc = ts_err_set(err, TS_EINVAL, "Specifying 'disabled_reason' with status 'enabled' is invalid.");
        goto out;
    }
    if (fd && !json_is_boolean(fd)) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute forced_down.");
        goto out;
    }
    if ((st || fd) && !ts_streq(ts_db_res_get(res, 0, 0), "nova-compute")) {
        rc = ts_err_set(err, TS_EINVAL, "Updating a %s service is not supported. Only nova-compute services can be "
                        "updated.", ts_db_res_get(res, 0, 0));
        goto out;
    }
    if (st) {
        bool dis = ts_streq(json_string_value(st), "disabled");
        rc = ts_db_exec(svc->db, "UPDATE services SET disabled = ?, disabled_reason = ?, updated_at = ? WHERE uuid = ?",
                        TS_DB_ARGS(TS_DB_B(dis), TS_DB_S(dis ? json_string_value(reason) : NULL), TS_DB_D(ts_now()),
                                   TS_DB_S(id)), NULL, err);
        ts_compute_sched_changed();
        if (rc) goto out;
    }
    if (fd) {
        rc = ts_db_exec(svc->db, "UPDATE services SET forced_down = ? WHERE uuid = ?",
                        TS_DB_ARGS(TS_DB_B(json_is_true(fd)), TS_DB_S(id)), NULL, err);
        ts_compute_sched_changed();
        if (rc) goto out;
    }
    rc = service_show_by(svc, resp, mv, "uuid = ? OR uuid = ?", id, id, err);
out:
    ts_db_res_free(res);
    return rc;
}

TS_COMPUTE_HANDLER(services_legacy)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_admin(req, err))) return rc;
    if (mv >= 53) return ts_err_set(err, TS_ENOTFOUND, "Service %s could not be found.", req->path);
    const char *action = strrchr(req->path, '/');
    action = action ? action + 1 : "";
    json_t *body = NULL;
    rc = ts_http_json_body(req, &body, err);
    if (rc) return rc;
    const char *host = JS(body, "host"), *bin = JS(body, "binary");
    struct ts_db_res *res = NULL;
    if (!host || !bin) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute host/binary.");
        goto out;
    }
    json_t *reply = json_pack("{s:s, s:s}", "host", host, "binary", bin);
    if (!strcmp(action, "force-down")) {
        if (mv < 11) {
            json_decref(reply);
            rc = ts_err_set(err, TS_ENOTFOUND, "Unknown action");
            goto out;
        }
        json_t *fd = json_object_get(body, "forced_down");
        rc = ts_db_exec(svc->db, "UPDATE services SET forced_down = ? WHERE host = ? AND binary_name = ?",
                        TS_DB_ARGS(TS_DB_B(json_is_true(fd)), TS_DB_S(host), TS_DB_S(bin)), &res, err);
        json_object_set_new(reply, "forced_down", json_boolean(json_is_true(fd)));
    } else {
        bool dis = strcmp(action, "enable") != 0;
        const char *reason = !strcmp(action, "disable-log-reason") ? JS(body, "disabled_reason") : NULL;
        if (!strcmp(action, "disable-log-reason") && !reason) {
            json_decref(reply);
            rc = ts_err_set(err, TS_EINVAL, "Missing disabled reason field");
            goto out;
        }
        rc = ts_db_exec(svc->db, "UPDATE services SET disabled = ?, disabled_reason = ?, updated_at = ? WHERE host = ? "
                        "AND binary_name = ?", TS_DB_ARGS(TS_DB_B(dis), TS_DB_S(reason), TS_DB_D(ts_now()),
                                                          TS_DB_S(host), TS_DB_S(bin)), &res, err);
        json_object_set_new(reply, "status", json_string(dis ? "disabled" : "enabled"));
        if (reason) json_object_set_new(reply, "disabled_reason", json_string(reason));
    }
    ts_compute_sched_changed();
    if (!rc && res->changes == 0) rc = ts_err_set(err, TS_ENOTFOUND, "Host %s could not be found.", host);
    if (rc) json_decref(reply);
    else ts_http_resp_json(resp, 200, json_pack("{s:o}", "service", reply));
out:
    ts_db_res_free(res);
    return rc;
}

TS_COMPUTE_HANDLER(services_delete)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_admin(req, err))) return rc;
    const char *id = ts_http_param(req, "id");
    struct ts_db_res *res = NULL;
    int64_t iid = -1;
    if (mv >= 53 ? !ts_uuid_valid(id) : ts_parse_int64(id, &iid) < 0)
        return ts_err_set(err, mv >= 53 ? TS_EINVAL : TS_ENOTFOUND, "Service %s could not be found.", id);
    rc = ts_db_exec(svc->db, "SELECT host, binary_name FROM services WHERE uuid = ? OR id = ?",
                    TS_DB_ARGS(TS_DB_S(id), TS_DB_I(iid)), &res, err);
    if (rc) return rc;
    if (res->nrows == 0) {
        ts_db_res_free(res);
        return ts_err_set(err, TS_ENOTFOUND, "Service %s could not be found.", id);
    }
    if (ts_streq(ts_db_res_get(res, 0, 1), "nova-compute"))
        ts_db_exec(svc->db, "DELETE FROM compute_nodes WHERE host = ?", TS_DB_ARGS(TS_DB_S(ts_db_res_get(res, 0, 0))),
                   NULL, NULL);
    ts_db_exec(svc->db, "DELETE FROM services WHERE uuid = ? OR id = ?", TS_DB_ARGS(TS_DB_S(id), TS_DB_I(iid)), NULL,
               NULL);
    ts_compute_sched_changed();
    ts_db_res_free(res);
    ts_http_resp_json(resp, 204, NULL);
    return 0;
}

/* ---- hypervisors ------------------------------------------------------------------------- */

#define HV_SQL                                                                                                  \
    "SELECT n.id, n.uuid, n.hypervisor_hostname, n.hypervisor_type, n.hypervisor_version, n.vcpus, n.memory_mb, " \
    "n.local_gb, n.cpu_info, n.host_ip, s.id, s.uuid, s.disabled, s.disabled_reason, s.forced_down, "             \
    "s.last_seen_up, COALESCE(a.v, 0), COALESCE(a.m, 0), COALESCE(a.d, 0), COALESCE(a.c, 0), n.host "            \
    "FROM compute_nodes n JOIN services s ON s.host = n.host AND s.binary_name = 'nova-compute' "              \
    "LEFT JOIN (SELECT host, SUM(vcpus) AS v, SUM(memory_mb) AS m, SUM(disk_gb) AS d, SUM(CASE WHEN consumer "  \
    "LIKE '%-migration' THEN 0 ELSE 1 END) AS c FROM "                                                        \
    "allocations GROUP BY host) a ON a.host = n.host "

static json_t *hv_view(struct ts_compute_svc *svc, int mv, const struct ts_db_res *r, int i, bool detail)
{
    bool up = ts_compute_is_up(dbl(ts_db_res_get(r, i, 15)), svc->service_down_time, ts_db_res_int(r, i, 14, 0) != 0);
    json_t *h = json_object();
    if (mv >= 53) json_object_set_new(h, "id", json_string(ts_db_res_get(r, i, 1)));
    else json_object_set_new(h, "id", json_integer(ts_db_res_int(r, i, 0, 0)));
    json_object_set_new(h, "hypervisor_hostname", json_string(ts_db_res_get(r, i, 2)));
    json_object_set_new(h, "state", json_string(up ? "up" : "down"));
    json_object_set_new(h, "status", json_string(ts_db_res_int(r, i, 12, 0) ? "disabled" : "enabled"));
    if (!detail) return h;
    json_object_set_new(h, "hypervisor_type", json_string(ts_db_res_get(r, i, 3) ? ts_db_res_get(r, i, 3) : ""));
    json_object_set_new(h, "hypervisor_version", json_integer(ts_db_res_int(r, i, 4, 0)));
    json_object_set_new(h, "host_ip", json_string(ts_db_res_get(r, i, 9) ? ts_db_res_get(r, i, 9) : "127.0.0.1"));
    json_t *sv = json_pack("{s:s}", "host", ts_db_res_get(r, i, 20));
    if (mv >= 53) json_object_set_new(sv, "id", json_string(ts_db_res_get(r, i, 11)));
    else json_object_set_new(sv, "id", json_integer(ts_db_res_int(r, i, 10, 0)));
    ts_json_set_str(sv, "disabled_reason", ts_db_res_get(r, i, 13));
    json_object_set_new(h, "service", sv);
    if (mv >= 88) {
        json_object_set_new(h, "uptime", json_null());
        return h;
    }
    int64_t vc = ts_db_res_int(r, i, 5, 0), mem = ts_db_res_int(r, i, 6, 0), disk = ts_db_res_int(r, i, 7, 0);
    int64_t uv = ts_db_res_int(r, i, 16, 0), um = ts_db_res_int(r, i, 17, 0), ud = ts_db_res_int(r, i, 18, 0);
    json_object_set_new(h, "vcpus", json_integer(vc));
    json_object_set_new(h, "memory_mb", json_integer(mem));
    json_object_set_new(h, "local_gb", json_integer(disk));
    json_object_set_new(h, "vcpus_used", json_integer(uv));
    json_object_set_new(h, "memory_mb_used", json_integer(um));
    json_object_set_new(h, "local_gb_used", json_integer(ud));
    json_object_set_new(h, "free_ram_mb", json_integer(mem - um));
    json_object_set_new(h, "free_disk_gb", json_integer(disk - ud));
    json_object_set_new(h, "disk_available_least", json_integer(disk - ud));
    json_object_set_new(h, "current_workload", json_integer(0));
    json_object_set_new(h, "running_vms", json_integer(ts_db_res_int(r, i, 19, 0)));
    const char *ci = ts_db_res_get(r, i, 8);
    if (mv >= 28) {
        json_t *o = ci ? json_loads(ci, 0, NULL) : NULL;
        json_object_set_new(h, "cpu_info", o ? o : json_object());
    } else {
        json_object_set_new(h, "cpu_info", json_string(ci ? ci : "{}"));
    }
    return h;
}

static json_t *servers_of_hosts(struct ts_compute_svc *svc)
{
    json_t *o = json_object();
    struct ts_db_res *res = NULL;
    if (ts_db_exec(svc->db, "SELECT host, uuid, display_name FROM instances WHERE deleted = 0 AND host IS NOT NULL",
                   TS_DB_NOARGS, &res, NULL) == 0) {
        for (int i = 0; i < res->nrows; i++) {
            const char *h = ts_db_res_get(res, i, 0);
            json_t *a = json_object_get(o, h);
            if (!a) {
                a = json_array();
                json_object_set_new(o, h, a);
            }
            json_array_append_new(a, json_pack("{s:s, s:s}", "uuid", ts_db_res_get(res, i, 1), "name",
                                               ts_db_res_get(res, i, 2) ? ts_db_res_get(res, i, 2) : ""));
        }
    }
    ts_db_res_free(res);
    return o;
}

static int hv_list(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err, bool detail,
                   const char *pattern_path, bool servers_path)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_admin(req, err))) return rc;
    const char *pattern = pattern_path;
    if (!pattern && mv >= 53) pattern = ts_http_query(req, "hypervisor_hostname_pattern");
    bool with_servers = servers_path || (mv >= 53 && ts_http_query(req, "with_servers") &&
                                         strcasecmp(ts_http_query(req, "with_servers"), "false") &&
                                         strcmp(ts_http_query(req, "with_servers"), "0"));
    struct ts_db_res *res = NULL;
    char *like = pattern ? ts_asprintf("%%%s%%", pattern) : NULL;
    rc = ts_db_exec(svc->db, HV_SQL "WHERE (? IS NULL OR n.hypervisor_hostname LIKE ?) ORDER BY n.id",
                    TS_DB_ARGS(TS_DB_S(like), TS_DB_S(like)), &res, err);
    free(like);
    if (rc) return rc;
    if (pattern && res->nrows == 0) {
        ts_db_res_free(res);
        return ts_err_set(err, TS_ENOTFOUND, "No hypervisor matching '%s' could be found.", pattern);
    }
    json_t *srv = with_servers ? servers_of_hosts(svc) : NULL;
    json_t *arr = json_array();
    int64_t limit = -1;
    const char *lv = mv >= 33 ? ts_http_query(req, "limit") : NULL, *marker = mv >= 33 ? ts_http_query(req, "marker") : NULL;
    if (lv && (ts_parse_int64(lv, &limit) < 0 || limit < 0)) {
        ts_db_res_free(res);
        json_decref(arr);
        json_decref(srv);
        return ts_err_set(err, TS_EINVAL, "Invalid input for query parameters limit. Value: %s.", lv);
    }
    bool past = !marker;
    for (int i = 0; i < res->nrows; i++) {
        if (!past) {
            if (ts_streq(marker, ts_db_res_get(res, i, mv >= 53 ? 1 : 0))) past = true;
            continue;
        }
        if (limit >= 0 && (int64_t)json_array_size(arr) >= limit) break;
        json_t *h = hv_view(svc, mv, res, i, detail);
        json_t *s = srv ? json_object_get(srv, ts_db_res_get(res, i, 20)) : NULL;
        if (s) json_object_set(h, "servers", s);
        else if (with_servers && mv >= 53) json_object_set_new(h, "servers", json_array());
        json_array_append_new(arr, h);
    }
    ts_db_res_free(res);
    json_decref(srv);
    if (!past) {
        json_decref(arr);
        return ts_err_set(err, TS_EINVAL, "marker [%s] not found", marker);
    }
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "hypervisors", arr));
    return 0;
}

TS_COMPUTE_HANDLER(hypervisors_list) { return hv_list(req, resp, err, false, NULL, false); }
TS_COMPUTE_HANDLER(hypervisors_detail) { return hv_list(req, resp, err, true, NULL, false); }

TS_COMPUTE_HANDLER(hypervisors_search)
{
    return hv_list(req, resp, err, false, ts_http_param(req, "id"), false);
}

TS_COMPUTE_HANDLER(hypervisors_servers)
{
    return hv_list(req, resp, err, false, ts_http_param(req, "id"), true);
}

TS_COMPUTE_HANDLER(hypervisors_show)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_admin(req, err))) return rc;
    const char *id = ts_http_param(req, "id");
    int64_t iid = -1;
    if (mv >= 53 ? !ts_uuid_valid(id) : ts_parse_int64(id, &iid) < 0)
        return ts_err_set(err, mv >= 53 ? TS_EINVAL : TS_ENOTFOUND, "Hypervisor with ID %s could not be found.", id);
    struct ts_db_res *res = NULL;
    rc = ts_db_exec(svc->db, HV_SQL "WHERE n.uuid = ? OR n.id = ?", TS_DB_ARGS(TS_DB_S(id), TS_DB_I(iid)), &res, err);
    if (rc) return rc;
    if (res->nrows == 0) {
        ts_db_res_free(res);
        return ts_err_set(err, TS_ENOTFOUND, "Hypervisor with ID %s could not be found.", id);
    }
    json_t *h = hv_view(svc, mv, res, 0, true);
    const char *ws = ts_http_query(req, "with_servers");
    if (mv >= 53 && ws && strcasecmp(ws, "false") && strcmp(ws, "0")) {
        json_t *srv = servers_of_hosts(svc);
        json_t *s = json_object_get(srv, ts_db_res_get(res, 0, 20));
        json_object_set_new(h, "servers", s ? json_incref(s) : json_array());
        json_decref(srv);
    }
    ts_db_res_free(res);
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "hypervisor", h));
    return 0;
}

/* GET /os-hypervisors/{id}/uptime (before 2.88): the hypervisor with an "uptime" line in the
 * form of the uptime(1) command, from this machine's /proc (every host of a tinystack shares it) */
TS_COMPUTE_HANDLER(hypervisors_uptime)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_admin(req, err))) return rc;
    if (mv >= 88) return ts_err_set(err, TS_ENOTFOUND, "The resource could not be found.");
    const char *id = ts_http_param(req, "id");
    int64_t iid = -1;
    if (mv >= 53 ? !ts_uuid_valid(id) : ts_parse_int64(id, &iid) < 0)
        return ts_err_set(err, mv >= 53 ? TS_EINVAL : TS_ENOTFOUND, "Hypervisor with ID %s could not be found.", id);
    struct ts_db_res *res = NULL;
    rc = ts_db_exec(svc->db, HV_SQL "WHERE n.uuid = ? OR n.id = ?", TS_DB_ARGS(TS_DB_S(id), TS_DB_I(iid)), &res, err);
    if (rc) return rc;
    if (res->nrows == 0) {
        ts_db_res_free(res);
        return ts_err_set(err, TS_ENOTFOUND, "Hypervisor with ID %s could not be found.", id);
    }
    json_t *h = hv_view(svc, mv, res, 0, false);
    ts_db_res_free(res);
    double up = 0, l1 = 0, l5 = 0, l15 = 0;
    FILE *f = fopen("/proc/uptime", "r");
    if (f) {
        if (fscanf(f, "%lf", &up) != 1) up = 0;
        fclose(f);
    }
    f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &l1, &l5, &l15) != 3) l1 = l5 = l15 = 0;
        fclose(f);
    }
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    long mins = (long)(up / 60), days = mins / 1440;
    json_object_set_new(h, "uptime",
                        json_string(ts_pool_printf(req->pool, " %02d:%02d:%02d up %ld days, %2ld:%02ld,  0 users,  load "
                                                   "average: %.2f, %.2f, %.2f", tm.tm_hour, tm.tm_min, tm.tm_sec, days,
                                                   (mins % 1440) / 60, mins % 60, l1, l5, l15)));
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "hypervisor", h));
    return 0;
}

TS_COMPUTE_HANDLER(hypervisors_stats)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_admin(req, err))) return rc;
    if (mv >= 88) return ts_err_set(err, TS_ENOTFOUND, "The resource could not be found.");
    struct ts_db_res *res = NULL;
    rc = ts_db_exec(svc->db, HV_SQL, TS_DB_NOARGS, &res, err);
    if (rc) return rc;
    int64_t s[12] = {0};
    for (int i = 0; i < res->nrows; i++) {
        s[0]++;
        s[1] += ts_db_res_int(res, i, 5, 0);
        s[2] += ts_db_res_int(res, i, 6, 0);
        s[3] += ts_db_res_int(res, i, 7, 0);
        s[4] += ts_db_res_int(res, i, 16, 0);
        s[5] += ts_db_res_int(res, i, 17, 0);
        s[6] += ts_db_res_int(res, i, 18, 0);
        s[7] += ts_db_res_int(res, i, 19, 0);
    }
    ts_db_res_free(res);
    json_t *st = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i}", "count", (json_int_t)s[0],
                           "vcpus", (json_int_t)s[1], "memory_mb", (json_int_t)s[2], "local_gb", (json_int_t)s[3],
                           "vcpus_used", (json_int_t)s[4], "memory_mb_used", (json_int_t)s[5], "local_gb_used",
                           (json_int_t)s[6], "running_vms", (json_int_t)s[7], "free_ram_mb", (json_int_t)(s[2] - s[5]),
                           "free_disk_gb", (json_int_t)(s[3] - s[6]), "disk_available_least",
                           (json_int_t)(s[3] - s[6]), "current_workload", 0);
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "hypervisor_statistics", st));
    return 0;
}

/* ---- availability zones -------------------------------------------------------------------- */

static int az_common(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err, bool detail)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if (detail && (rc = ts_compute_check_admin(req, err))) return rc;
    struct ts_db_res *res = NULL;
    rc = ts_db_exec(svc->db, "SELECT " SVC_COLS " FROM services ORDER BY id", TS_DB_NOARGS, &res, err);
    if (rc) return rc;
    json_t *zones = json_object();   /* name -> {available, hosts} */
    for (int i = 0; i < res->nrows; i++) {
        const char *bin = ts_db_res_get(res, i, 3);
        bool compute = ts_streq(bin, "nova-compute");
        if (!compute && !detail) continue;
        const char *zn = compute ? (ts_db_res_get(res, i, 4) ? ts_db_res_get(res, i, 4) : "nova") : "internal";
        bool up = ts_compute_is_up(dbl(ts_db_res_get(res, i, 8)), svc->service_down_time,
                                   ts_db_res_int(res, i, 7, 0) != 0);
        bool enabled = ts_db_res_int(res, i, 5, 0) == 0;
        json_t *z = json_object_get(zones, zn);
        if (!z) {
            z = json_pack("{s:b, s:{}}", "available", 0, "hosts");
            json_object_set_new(zones, zn, z);
        }
        if (up && enabled) json_object_set_new(z, "available", json_true());
        json_t *hosts = json_object_get(z, "hosts");
        json_t *h = json_object_get(hosts, ts_db_res_get(res, i, 2));
        if (!h) {
            h = json_object();
            json_object_set_new(hosts, ts_db_res_get(res, i, 2), h);
        }
        char t[32];
        ts_compute_iso_us(dbl(ts_db_res_get(res, i, 8)), t);
        json_object_set_new(h, bin, json_pack("{s:b, s:b, s:s}", "available", up, "active", enabled, "updated_at", t));
    }
    ts_db_res_free(res);
    json_t *arr = json_array();
    const char *zn;
    json_t *z;
    json_object_foreach(zones, zn, z) {
        json_t *e = json_pack("{s:s, s:{s:O}}", "zoneName", zn, "zoneState", "available",
                              json_object_get(z, "available"));
        json_object_set(e, "hosts", detail ? json_object_get(z, "hosts") : json_null());
        json_array_append_new(arr, e);
    }
    json_decref(zones);
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "availabilityZoneInfo", arr));
    return 0;
}

TS_COMPUTE_HANDLER(az_list) { return az_common(req, resp, err, false); }
TS_COMPUTE_HANDLER(az_detail) { return az_common(req, resp, err, true); }

/* ---- simple tenant usage ------------------------------------------------------------------- */

static int usage_period(struct ts_http_req *req, double *start, double *end, struct ts_err *err)
{
    const char *s = ts_http_query(req, "start"), *e = ts_http_query(req, "end");
    *end = ts_now();
    *start = *end - 86400;
    if (s && ts_time_parse(s, start) < 0) return ts_err_set(err, TS_EINVAL, "Invalid start time.");
    if (e && ts_time_parse(e, end) < 0) return ts_err_set(err, TS_EINVAL, "Invalid end time.");
    if (*start > *end) return ts_err_set(err, TS_EINVAL, "Invalid start time. The start time cannot occur after the "
                                          "end time.");
    return 0;
}

static int usage_build(struct ts_http_req *req, const char *project, bool detailed, json_t **out, struct ts_err *err)
{
    struct ts_compute_svc *svc = req->svc;
    double start, end;
    int rc = usage_period(req, &start, &end, err);
    if (rc) return rc;
    struct ts_db_res *res = NULL;
    rc = ts_db_exec(svc->db, "SELECT " TS_COMPUTE_INST_COLS " FROM instances WHERE (? IS NULL OR project_id = ?) AND "
                    "created_at <= ? AND (terminated_at IS NULL OR terminated_at >= ?) ORDER BY project_id, id",
                    TS_DB_ARGS(TS_DB_S(project), TS_DB_S(project), TS_DB_D(end), TS_DB_D(start)), &res, err);
    if (rc) return rc;
    json_t *by = json_object();
    char ts1[32], ts2[32];
    ts_compute_iso_us(start, ts1);
    ts_compute_iso_us(end, ts2);
    for (int i = 0; i < res->nrows; i++) {
        json_t *inst = ts_compute_inst_row(res, i);
        const char *p = JS(inst, "project_id");
        json_t *u = json_object_get(by, p);
        if (!u) {
            u = json_pack("{s:s, s:f, s:f, s:f, s:f, s:s, s:s, s:[]}", "tenant_id", p, "total_local_gb_usage", 0.0,
                          "total_vcpus_usage", 0.0, "total_memory_mb_usage", 0.0, "total_hours", 0.0, "start", ts1,
                          "stop", ts2, "server_usages");
            json_object_set_new(by, p, u);
        }
        json_t *la = json_object_get(inst, "launched_at");
        double from = json_is_number(la) ? json_number_value(la) : json_number_value(json_object_get(inst, "created_at"));
        json_t *ta = json_object_get(inst, "terminated_at");
        double to = json_is_number(ta) ? json_number_value(ta) : end;
        double a = from > start ? from : start, b = to < end ? to : end;
        double hours = b > a ? (b - a) / 3600.0 : 0;
        int64_t vc = JI(inst, "vcpus"), mem = JI(inst, "memory_mb"), gb = JI(inst, "root_gb");
#define ADD(k, v) json_object_set_new(u, k, json_real(json_real_value(json_object_get(u, k)) + (v)))
        ADD("total_hours", hours);
        ADD("total_vcpus_usage", hours * (double)vc);
        ADD("total_memory_mb_usage", hours * (double)mem);
        ADD("total_local_gb_usage", hours * (double)gb);
#undef ADD
        if (detailed) {
            char st[32], et[32];
            ts_compute_iso_us(from, st);
            json_t *su = json_pack("{s:s, s:s, s:f, s:I, s:I, s:I, s:s, s:s, s:s, s:I}", "instance_id",
                                   JS(inst, "uuid"), "name", JS(inst, "display_name") ? JS(inst, "display_name") : "",
                                   "hours", hours, "memory_mb", (json_int_t)mem, "local_gb", (json_int_t)gb, "vcpus",
                                   (json_int_t)vc, "tenant_id", p, "flavor",
                                   JS(json_object_get(inst, "flavor"), "name") ? JS(json_object_get(inst, "flavor"),
                                                                                   "name") : "",
                                   "started_at", st, "uptime", (json_int_t)((json_is_number(ta) ? to : ts_now()) - from));
            if (json_is_number(ta)) {
                ts_compute_iso_us(to, et);
                json_object_set_new(su, "ended_at", json_string(et));
            } else {
                json_object_set_new(su, "ended_at", json_null());
            }
            json_object_set_new(su, "state", json_string(json_is_number(ta) ? "terminated" : JS(inst, "vm_state")));
            json_array_append_new(json_object_get(u, "server_usages"), su);
        }
        json_decref(inst);
    }
    ts_db_res_free(res);
    if (!detailed) {
        const char *k;
        json_t *u;
        json_object_foreach(by, k, u) json_object_del(u, "server_usages");
    }
    *out = by;
    return 0;
}

TS_COMPUTE_HANDLER(usage_list)
{
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_admin(req, err))) return rc;
    /* ".../os-simple-tenant-usage/" is a show with an empty project id: 404 as in Nova */
    size_t pl = req->path ? strlen(req->path) : 0;
    if (pl > 0 && req->path[pl - 1] == '/') return ts_err_set(err, TS_ENOTFOUND, "The resource could not be found.");
    const char *d = ts_http_query(req, "detailed");
    json_t *by = NULL;
    rc = usage_build(req, NULL, d && strcmp(d, "0") && strcasecmp(d, "false"), &by, err);
    if (rc) return rc;
    json_t *arr = json_array();
    const char *k;
    json_t *u;
    json_object_foreach(by, k, u) json_array_append(arr, u);
    json_decref(by);
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "tenant_usages", arr));
    return 0;
}

TS_COMPUTE_HANDLER(usage_show)
{
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    const char *p = ts_http_param(req, "project");
    if (!req->auth->is_admin && !ts_streq(p, req->auth->project_id))
        return ts_err_set(err, TS_EFORBIDDEN, "Policy doesn't allow os_compute_api:os-simple-tenant-usage:show to be "
                          "performed.");
    json_t *by = NULL;
    rc = usage_build(req, p, true, &by, err);
    if (rc) return rc;
    json_t *u = json_object_get(by, p);
    ts_http_resp_json(resp, 200, json_pack("{s:O}", "tenant_usage", u ? u : json_object()));
    json_decref(by);
    return 0;
}

/* ---- server groups -------------------------------------------------------------------------- */

static json_t *group_view(int mv, const struct ts_db_res *r, int i, json_t *members)
{
    /* columns: uuid, name, policy, rules, project_id, user_id */
    json_t *g = json_pack("{s:s, s:s}", "id", ts_db_res_get(r, i, 0), "name",
                          ts_db_res_get(r, i, 1) ? ts_db_res_get(r, i, 1) : "");
    json_object_set_new(g, "members", members ? json_incref(members) : json_array());
    if (mv >= 64) {
        json_object_set_new(g, "policy", json_string(ts_db_res_get(r, i, 2)));
        json_t *rules = ts_db_res_get(r, i, 3) ? json_loads(ts_db_res_get(r, i, 3), 0, NULL) : NULL;
        json_object_set_new(g, "rules", rules ? rules : json_object());
    } else {
        json_object_set_new(g, "policies", json_pack("[s]", ts_db_res_get(r, i, 2)));
        json_object_set_new(g, "metadata", json_object());
    }
    if (mv >= 13) {
        ts_json_set_str(g, "project_id", ts_db_res_get(r, i, 4));
        ts_json_set_str(g, "user_id", ts_db_res_get(r, i, 5));
    }
    return g;
}

static json_t *group_members(struct ts_compute_svc *svc, const char *group)
{
    json_t *o = json_object();
    struct ts_db_res *res = NULL;
    if (ts_db_exec(svc->db, "SELECT m.group_uuid, m.instance_uuid FROM server_group_members m JOIN instances i ON "
                   "i.uuid = m.instance_uuid AND i.deleted = 0 WHERE (? IS NULL OR m.group_uuid = ?)",
                   TS_DB_ARGS(TS_DB_S(group), TS_DB_S(group)), &res, NULL) == 0) {
        for (int i = 0; i < res->nrows; i++) {
            const char *g = ts_db_res_get(res, i, 0);
            json_t *a = json_object_get(o, g);
            if (!a) {
                a = json_array();
                json_object_set_new(o, g, a);
            }
            json_array_append_new(a, json_string(ts_db_res_get(res, i, 1)));
        }
    }
    ts_db_res_free(res);
    return o;
}

#define GRP_COLS "uuid, name, policy, rules, project_id, user_id"

TS_COMPUTE_HANDLER(groups_list)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    const char *ap = ts_http_query(req, "all_projects");
    bool all = req->auth->is_admin && ap && strcasecmp(ap, "false") && strcmp(ap, "0");
    struct ts_db_res *res = NULL;
    rc = ts_db_exec(svc->db, "SELECT " GRP_COLS " FROM server_groups WHERE (? = 1 OR project_id = ?) ORDER BY id",
                    TS_DB_ARGS(TS_DB_I(all ? 1 : 0), TS_DB_S(req->auth->project_id)), &res, err);
    if (rc) return rc;
    int64_t limit = -1, offset = 0;
    const char *lv = ts_http_query(req, "limit"), *ov = ts_http_query(req, "offset");
    if ((lv && (ts_parse_int64(lv, &limit) < 0 || limit < 0)) || (ov && (ts_parse_int64(ov, &offset) < 0 || offset < 0))) {
        ts_db_res_free(res);
        return ts_err_set(err, TS_EINVAL, "Invalid input for query parameters limit/offset.");
    }
    json_t *mem = group_members(svc, NULL);
    json_t *arr = json_array();
    for (int i = (int)offset; i < res->nrows; i++) {
        if (limit >= 0 && (int64_t)json_array_size(arr) >= limit) break;
        json_array_append_new(arr, group_view(mv, res, i, json_object_get(mem, ts_db_res_get(res, i, 0))));
    }
    json_decref(mem);
    ts_db_res_free(res);
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "server_groups", arr));
    return 0;
}

static int group_load(struct ts_http_req *req, const char *id, struct ts_db_res **out, struct ts_err *err)
{
    struct ts_compute_svc *svc = req->svc;
    struct ts_db_res *res = NULL;
    int rc = ts_db_exec(svc->db, "SELECT " GRP_COLS " FROM server_groups WHERE uuid = ?", TS_DB_ARGS(TS_DB_S(id)), &res,
                        err);
    if (rc) return rc;
    if (res->nrows == 0 || (!req->auth->is_admin && !ts_streq(ts_db_res_get(res, 0, 4), req->auth->project_id))) {
        ts_db_res_free(res);
        return ts_err_set(err, TS_ENOTFOUND, "Instance group %s could not be found.", id);
    }
    *out = res;
    return 0;
}

TS_COMPUTE_HANDLER(groups_show)
{
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    const char *id = ts_http_param(req, "id");
    struct ts_db_res *res = NULL;
    if ((rc = group_load(req, id, &res, err))) return rc;
    json_t *mem = group_members(req->svc, id);
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "server_group", group_view(mv, res, 0, json_object_get(mem, id))));
    json_decref(mem);
    ts_db_res_free(res);
    return 0;
}

TS_COMPUTE_HANDLER(groups_delete)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_writer(req, err))) return rc;
    const char *id = ts_http_param(req, "id");
    struct ts_db_res *res = NULL;
    if ((rc = group_load(req, id, &res, err))) return rc;
    ts_db_res_free(res);
    ts_db_exec(svc->db, "DELETE FROM server_group_members WHERE group_uuid = ?", TS_DB_ARGS(TS_DB_S(id)), NULL, NULL);
    rc = ts_db_exec(svc->db, "DELETE FROM server_groups WHERE uuid = ?", TS_DB_ARGS(TS_DB_S(id)), NULL, err);
    if (!rc) ts_http_resp_json(resp, 204, NULL);
    return rc;
}

TS_COMPUTE_HANDLER(groups_create)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_writer(req, err))) return rc;
    json_t *body = NULL;
    struct ts_db_res *res = NULL;
    char *rules_s = NULL;
    rc = ts_http_json_body(req, &body, err);
    if (rc) return rc;
    json_t *g = json_object_get(body, "server_group");
    const char *name = JS(g, "name");
    const char *policy = NULL;
    if (!json_is_object(g) || !name || !*name || strlen(name) > 255) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute name.");
        goto out;
    }
    if (mv >= 64) {
        policy = JS(g, "policy");
        if (json_object_get(g, "policies")) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute server_group. Additional properties are "
                            "not allowed ('policies' was unexpected)");
            goto out;
        }
    } else {
        json_t *pol = json_object_get(g, "policies");
        if (!json_is_array(pol) || json_array_size(pol) != 1) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute policies.");
            goto out;
        }
        policy = json_string_value(json_array_get(pol, 0));
    }
    bool ok = ts_streq(policy, "affinity") || ts_streq(policy, "anti-affinity") ||
              (mv >= 15 && (ts_streq(policy, "soft-affinity") || ts_streq(policy, "soft-anti-affinity")));
    if (!ok) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute policy. Value: %s.", policy ? policy : "None");
        goto out;
    }
    json_t *rules = mv >= 64 ? json_object_get(g, "rules") : NULL;
    if (rules) {
        if (!json_is_object(rules) || (json_object_size(rules) && !ts_streq(policy, "anti-affinity"))) {
            rc = ts_err_set(err, TS_EINVAL, "Only anti-affinity policy supports rules.");
            goto out;
        }
        rules_s = ts_json_dump(rules);
    }
    int64_t lim = ts_compute_quota_limit(svc, req->auth->project_id, "server_groups");
    rc = ts_db_exec(svc->db, "SELECT COUNT(*) FROM server_groups WHERE project_id = ?",
                    TS_DB_ARGS(TS_DB_S(req->auth->project_id)), &res, err);
    if (rc) goto out;
    if (lim >= 0 && ts_db_res_int(res, 0, 0, 0) >= lim) {
        rc = ts_err_set_full(err, TS_EQUOTA, 403, NULL, "Quota exceeded, too many server groups.");
        goto out;
    }
    ts_db_res_free(res);
    res = NULL;
    char uuid[TS_UUID_LEN + 1];
    ts_uuid(uuid);
    rc = ts_db_exec(svc->db, "INSERT INTO server_groups (uuid, name, policy, rules, project_id, user_id, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", TS_DB_ARGS(TS_DB_S(uuid), TS_DB_S(name), TS_DB_S(policy),
                    TS_DB_S(rules_s), TS_DB_S(req->auth->project_id), TS_DB_S(req->auth->user_id), TS_DB_D(ts_now())),
                    NULL, err);
    if (rc) goto out;
    rc = group_load(req, uuid, &res, err);
    if (!rc) ts_http_resp_json(resp, 200, json_pack("{s:o}", "server_group", group_view(mv, res, 0, NULL)));
out:
    ts_db_res_free(res);
    free(rules_s);
    return rc;
}
