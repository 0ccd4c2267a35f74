/*
 * ts_compute_api_hosts.c: the deprecated /os-hosts API (admin only, gone after 2.42): the
 * services' hosts with their zones, one compute host's resources (total, used now, used
 * max, per project), enable/disable through the host's compute service, and the power
 * actions Nova's libvirt driver does not implement (501).
 */
#include "compute/api/ts_compute_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/ts_json.h"

static int hosts_begin(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if (mv > 42) return ts_err_set(err, TS_ENOTFOUND, "The resource could not be found.");
    return ts_compute_check_admin(req, err);
}

/* 0 when host runs a compute service, else Nova's 404. */
static int compute_host(struct ts_compute_svc *svc, const char *host, struct ts_err *err)
{
    struct ts_db_res *res = NULL;
    int rc = ts_db_exec(svc->db, "SELECT 1 FROM services WHERE host = ? AND binary_name = 'nova-compute'",
                        TS_DB_ARGS(TS_DB_S(host)), &res, err);
    if (rc) return rc;
    if (res->nrows == 0) rc = ts_err_set(err, TS_ENOTFOUND, "Compute host %s could not be found.", host);
    ts_db_res_free(res);
    return rc;
}

TS_COMPUTE_HANDLER(hosts_list)
{
    struct ts_compute_svc *svc = req->svc;
    int rc = hosts_begin(req, resp, err);
    if (rc) return rc;
    const char *zone = ts_http_query(req, "zone");
    if (zone && !*zone) zone = NULL;
    struct ts_db_res *res = NULL;
    /* a compute host in an aggregate with a zone is in that zone */
    rc = ts_db_exec(svc->db, "SELECT s.host, s.binary_name, COALESCE((SELECT MIN(g.availability_zone) FROM "
                    "aggregate_hosts gh JOIN aggregates g ON g.id = gh.aggregate_id WHERE gh.host = s.host AND "
                    "g.availability_zone IS NOT NULL), s.availability_zone) FROM services s ORDER BY s.id",
                    TS_DB_NOARGS, &res, err);
    if (rc) return rc;
    json_t *arr = json_array();
    for (int i = 0; i < res->nrows; i++) {
        const char *bin = ts_db_res_get(res, i, 1);
        bool compute = ts_streq(bin, "nova-compute");
        const char *z = compute ? (ts_db_res_get(res, i, 2) ? ts_db_res_get(res, i, 2) : "nova") : "internal";
        if (zone && strcmp(zone, z)) continue;
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "host_name", ts_db_res_get(res, i, 0), "service",
                                             bin && ts_startswith(bin, "nova-") ? bin + 5 : bin ? bin : "", "zone", z));
    }
    ts_db_res_free(res);
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "hosts", arr));
    return 0;
}

static json_t *resource(const char *host, const char *project, int64_t cpu, int64_t mem, int64_t disk)
{
    return json_pack("{s:{s:s, s:s, s:I, s:I, s:I}}", "resource", "host", host, "project", project, "cpu",
                     (json_int_t)cpu, "memory_mb", (json_int_t)mem, "disk_gb", (json_int_t)disk);
}

TS_COMPUTE_HANDLER(hosts_show)
{
    struct ts_compute_svc *svc = req->svc;
    int rc = hosts_begin(req, resp, err);
    if (rc) return rc;
    const char *host = ts_http_param(req, "host");
    if ((rc = compute_host(svc, host, err))) return rc;
    struct ts_db_res *n = NULL, *u = NULL, *p = NULL;
    rc = ts_db_exec(svc->db, "SELECT vcpus, memory_mb, local_gb FROM compute_nodes WHERE host = ?",
                    TS_DB_ARGS(TS_DB_S(host)), &n, err);
    if (!rc)
        rc = ts_db_exec(svc->db, "SELECT COALESCE(SUM(vcpus), 0), COALESCE(SUM(memory_mb), 0), COALESCE(SUM(disk_gb), "
                        "0) FROM allocations WHERE host = ?", TS_DB_ARGS(TS_DB_S(host)), &u, err);
    if (!rc)
        rc = ts_db_exec(svc->db, "SELECT project_id, SUM(vcpus), SUM(memory_mb), SUM(root_gb) FROM instances WHERE "
                        "host = ? AND deleted = 0 GROUP BY project_id ORDER BY project_id", TS_DB_ARGS(TS_DB_S(host)),
                        &p, err);
    if (!rc) {
        json_t *arr = json_array();
        json_array_append_new(arr, resource(host, "(total)", ts_db_res_int(n, 0, 0, 0), ts_db_res_int(n, 0, 1, 0),
                                            ts_db_res_int(n, 0, 2, 0)));
        json_array_append_new(arr, resource(host, "(used_now)", ts_db_res_int(u, 0, 0, 0), ts_db_res_int(u, 0, 1, 0),
                                            ts_db_res_int(u, 0, 2, 0)));
        int64_t c = 0, m = 0, d = 0;
        for (int i = 0; i < p->nrows; i++) {
            c += ts_db_res_int(p, i, 1, 0);
            m += ts_db_res_int(p, i, 2, 0);
            d += ts_db_res_int(p, i, 3, 0);
        }
        json_array_append_new(arr, resource(host, "(used_max)", c, m, d));
        for (int i = 0; i < p->nrows; i++)
            json_array_append_new(arr, resource(host, ts_db_res_get(p, i, 0), ts_db_res_int(p, i, 1, 0),
                                                ts_db_res_int(p, i, 2, 0), ts_db_res_int(p, i, 3, 0)));
        ts_http_resp_json(resp, 200, json_pack("{s:o}", "host", arr));
    }
    ts_db_res_free(n);
    ts_db_res_free(u);
    ts_db_res_free(p);
    return rc;
}

static bool enable_disable(const json_t *v)
{
    const char *s = json_string_value(v);
    return s && (!strcmp(s, "enable") || !strcmp(s, "disable"));
}

TS_COMPUTE_HANDLER(hosts_update)
{
    struct ts_compute_svc *svc = req->svc;
    int rc = hosts_begin(req, resp, err);
    if (rc) return rc;
    const char *host = ts_http_param(req, "host");
    json_t *body = NULL;
    if ((rc = ts_http_json_body(req, &body, err))) return rc;
    json_t *st = json_object_get(body, "status"), *mm = json_object_get(body, "maintenance_mode");
    if (!json_is_object(body) || (!st && !mm))
        return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute request body. {} does not have enough "
                          "properties");
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) {
        if (strcmp(k, "status") && strcmp(k, "maintenance_mode"))
            return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute request body. Additional properties "
                              "are not allowed ('%s' was unexpected)", k);
    }
    if (st && !enable_disable(st)) return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute status.");
    if (mm && !enable_disable(mm))
        return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute maintenance_mode.");
    if ((rc = compute_host(svc, host, err))) return rc;
    if (mm) return ts_err_set(err, TS_ENOTIMPL, "Virt driver does not implement host maintenance mode.");
    bool enable = !strcmp(json_string_value(st), "enable");
    rc = ts_db_exec(svc->db, "UPDATE services SET disabled = ?, disabled_reason = NULL, updated_at = ? WHERE host = ? "
                    "AND binary_name = 'nova-compute'",
                    TS_DB_ARGS(TS_DB_I(enable ? 0 : 1), TS_DB_D(ts_now()), TS_DB_S(host)), NULL, err);
    if (rc) return rc;
    ts_compute_sched_changed();
    ts_http_resp_json(resp, 200, json_pack("{s:s, s:s}", "host", host, "status", enable ? "enabled" : "disabled"));
    return 0;
}

/* GET /os-hosts/{host}/startup|shutdown|reboot: host power is not managed (Nova's libvirt
 * driver answers NotImplemented too). */
TS_COMPUTE_HANDLER(hosts_power)
{
    struct ts_compute_svc *svc = req->svc;
    int rc = hosts_begin(req, resp, err);
    if (rc) return rc;
    if ((rc = compute_host(svc, ts_http_param(req, "host"), err))) return rc;
    return ts_err_set(err, TS_ENOTIMPL, "Virt driver does not implement host power management.");
}
