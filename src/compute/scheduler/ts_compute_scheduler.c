/*
 * ts_compute_scheduler.c: the scheduler (nova-scheduler + placement in one). It serves
 * the "scheduler" topic: select_and_build reads the instance's request spec, filters the
 * compute hosts (enabled, up, availability zone, RAM/CPU/disk capacity with allocation
 * ratios, server-group affinity/anti-affinity, hosts already tried), weighs them by free
 * RAM (spread), claims the resources in the allocations table inside one write
 * transaction (so concurrent decisions never over-commit) and casts
 * build_and_run_instance to "compute.<host>". No host -> the conductor puts the instance
 * in ERROR with Nova's "No valid host was found" fault.
 */
#include "compute/ts_compute_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/ts_json.h"

#define JS(o, k) json_string_value(json_object_get((o), (k)))
#define JI(o, k) json_integer_value(json_object_get((o), (k)))

struct host_state {
    const char *host, *zone;
    int64_t vcpus, mem, disk, used_vcpus, used_mem, used_disk;
    int group_members;
    double weight;
};

static bool in_array(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (ts_streq(json_string_value(v), s)) return true;
    return false;
}

/* Picks and claims a host for inst inside one transaction. *host_out is malloc'd. */
static int claim(struct ts_compute_svc *svc, json_t *inst, json_t *extra_ignore, char **host_out, double *elapsed,
                 struct ts_err *err)
{
    const char *uuid = JS(inst, "uuid");
    json_t *spec = json_object_get(inst, "request_spec");
    json_t *ignore = json_object_get(spec, "ignore_hosts");
    const char *az = JS(spec, "availability_zone"), *force = JS(spec, "force_host");
    const char *group = JS(spec, "group"), *policy = JS(spec, "group_policy");
    int64_t vcpus = JI(spec, "vcpus"), mem = JI(spec, "memory_mb"), disk = JI(spec, "root_gb");
    struct ts_db_conn *tx = NULL;
    struct ts_db_res *res = NULL, *grp = NULL, *chk = NULL;
    struct host_state *hs = NULL;
    double t0 = ts_mono();
    int rc = ts_db_begin(svc->db, &tx, err);
    if (rc) return rc;
    rc = ts_db_tx_exec(tx, "SELECT deleted, task_state FROM instances WHERE uuid = ?", TS_DB_ARGS(TS_DB_S(uuid)), &chk,
                       err);
    if (rc) goto out;
    if (chk->nrows == 0 || ts_db_res_int(chk, 0, 0, 0) != 0 || !ts_streq(ts_db_res_get(chk, 0, 1), "scheduling")) {
        rc = ts_err_set(err, TS_EGONE, "instance %s is no longer waiting for a host", uuid);
        goto out;
    }
    rc = ts_db_tx_exec(tx,
                       "SELECT s.host, s.availability_zone, s.disabled, s.forced_down, s.last_seen_up, n.vcpus, "
                       "n.memory_mb, n.local_gb, COALESCE(a.v, 0), COALESCE(a.m, 0), COALESCE(a.d, 0) "
                       "FROM services s JOIN compute_nodes n ON n.host = s.host LEFT JOIN (SELECT host, SUM(vcpus) AS v, "
                       "SUM(memory_mb) AS m, SUM(disk_gb) AS d FROM allocations WHERE consumer <> ? GROUP BY host) a "
                       "ON a.host = s.host WHERE s.binary_name = 'nova-compute'",
                       TS_DB_ARGS(TS_DB_S(uuid)), &res, err);
    if (rc) goto out;
    if (group) {
        rc = ts_db_tx_exec(tx,
                           "SELECT a.host, COUNT(*) FROM allocations a JOIN server_group_members m ON "
                           "m.instance_uuid = a.consumer WHERE m.group_uuid = ? AND a.consumer <> ? GROUP BY a.host",
                           TS_DB_ARGS(TS_DB_S(group), TS_DB_S(uuid)), &grp, err);
        if (rc) goto out;
    }
    hs = ts_calloc((size_t)res->nrows + 1, sizeof(*hs));
    int n = 0;
    int group_hosts = grp ? grp->nrows : 0;
    for (int r = 0; r < res->nrows; r++) {
        struct host_state h = {0};
        h.host = ts_db_res_get(res, r, 0);
        h.zone = ts_db_res_get(res, r, 1);
        if (ts_db_res_int(res, r, 2, 0)) continue;                                    /* disabled */
        const char *ls = ts_db_res_get(res, r, 4);
        if (!ts_compute_is_up(ls ? strtod(ls, NULL) : 0, svc->service_down_time, ts_db_res_int(res, r, 3, 0) != 0))
            continue;                                                                 /* down */
        if (force && !ts_streq(force, h.host)) continue;
        if (az && strcmp(az, "nova") && !ts_streq(az, h.zone)) continue;
        if (in_array(ignore, h.host) || in_array(extra_ignore, h.host)) continue;
        h.vcpus = ts_db_res_int(res, r, 5, 0);
        h.mem = ts_db_res_int(res, r, 6, 0);
        h.disk = ts_db_res_int(res, r, 7, 0);
        h.used_vcpus = ts_db_res_int(res, r, 8, 0);
        h.used_mem = ts_db_res_int(res, r, 9, 0);
        h.used_disk = ts_db_res_int(res, r, 10, 0);
        if ((double)(h.used_vcpus + vcpus) > (double)h.vcpus * svc->cpu_ratio) continue;
        if ((double)(h.used_mem + mem) > (double)h.mem * svc->ram_ratio) continue;
        if ((double)(h.used_disk + disk) > (double)h.disk * svc->disk_ratio) continue;
        for (int g = 0; grp && g < grp->nrows; g++)
            if (ts_streq(ts_db_res_get(grp, g, 0), h.host)) h.group_members = (int)ts_db_res_int(grp, g, 1, 0);
        if (ts_streq(policy, "anti-affinity") && h.group_members > 0) continue;
        if (ts_streq(policy, "affinity") && group_hosts > 0 && h.group_members == 0) continue;
        /* weigh: free RAM (spread); soft policies shift by members */
        h.weight = (double)h.mem * svc->ram_ratio - (double)h.used_mem;
        if (ts_streq(policy, "soft-anti-affinity")) h.weight -= 1e12 * h.group_members;
        if (ts_streq(policy, "soft-affinity")) h.weight += 1e12 * h.group_members;
        hs[n++] = h;
    }
    int best = -1;
    for (int i = 0; i < n; i++)
        if (best < 0 || hs[i].weight > hs[best].weight) best = i;
    *elapsed = ts_mono() - t0;
    if (best < 0) {
        rc = ts_err_set(err, TS_ENOTFOUND, "No valid host was found. There are not enough hosts available.");
        goto out;
    }
    rc = ts_db_tx_exec(tx,
                       "INSERT INTO allocations (consumer, host, vcpus, memory_mb, disk_gb, created_at) VALUES (?, ?, "
                       "?, ?, ?, ?) ON CONFLICT (consumer) DO UPDATE SET host = excluded.host, vcpus = excluded.vcpus, "
                       "memory_mb = excluded.memory_mb, disk_gb = excluded.disk_gb",
                       TS_DB_ARGS(TS_DB_S(uuid), TS_DB_S(hs[best].host), TS_DB_I(vcpus), TS_DB_I(mem), TS_DB_I(disk),
                                  TS_DB_D(ts_now())),
                       NULL, err);
    if (rc) goto out;
    *host_out = ts_strdup(hs[best].host);
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) {
        free(*host_out);
        *host_out = NULL;
    }
out:
    if (tx) ts_db_rollback(tx);
    free(hs);
    ts_db_res_free(res);
    ts_db_res_free(grp);
    ts_db_res_free(chk);
    return rc;
}

static int select_and_build(struct ts_compute_svc *svc, json_t *args)
{
    const char *uuid = JS(args, "instance_uuid");
    json_t *ctx = json_object_get(args, "context");
    json_t *inst = NULL, *tried = json_array();
    struct ts_err err = {0};
    if (!uuid || ts_compute_inst_load(svc->db, uuid, &inst, &err) < 0) {
        json_decref(tried);
        return 0;
    }
    for (int attempt = 0; attempt < 8; attempt++) {
        char *host = NULL;
        double dt = 0;
        ts_err_clear(&err);
        int rc = claim(svc, inst, tried, &host, &dt, &err);
        if (rc == -TS_EGONE) break;
        if (rc) {
            ts_info("scheduler", "%s: %s", uuid, err.msg);
            json_t *a = json_pack("{s:s, s:s, s:o}", "instance_uuid", uuid, "message",
                                  rc == -TS_ENOTFOUND ? err.msg : "No valid host was found. ", "context",
                                  ctx ? json_incref(ctx) : json_object());
            ts_bus_cast(svc->env->bus, "conductor", "schedule_failed", a, NULL);
            break;
        }
        ts_debug("scheduler", "%s -> %s (%.3f ms)", uuid, host, dt * 1000);
        char *topic = ts_asprintf("compute.%s", host);
        json_t *a = json_pack("{s:s, s:s, s:s, s:o}", "instance_uuid", uuid, "host", host, "node", host, "context",
                              ctx ? json_incref(ctx) : json_object());
        struct ts_err e2 = {0};
        rc = ts_bus_cast(svc->env->bus, topic, "build_and_run_instance", a, &e2);
        free(topic);
        if (rc == 0) {
            free(host);
            break;
        }
        ts_warn("scheduler", "cannot cast to compute.%s: %s; trying another host", host, e2.msg);
        ts_db_exec(svc->db, "DELETE FROM allocations WHERE consumer = ?", TS_DB_ARGS(TS_DB_S(uuid)), NULL, NULL);
        json_array_append_new(tried, json_string(host));
        free(host);
    }
    json_decref(inst);
    json_decref(tried);
    return 0;
}

static int handler(void *ctx, const char *method, json_t *args, json_t **reply, struct ts_err *err)
{
    struct ts_compute_svc *svc = ctx;
    (void)reply;
    if (!strcmp(method, "select_and_build")) return select_and_build(svc, args);
    return ts_err_set(err, TS_EINVAL, "scheduler: unknown method %s", method);
}

int ts_compute_scheduler_start(struct ts_compute_svc *svc, struct ts_err *err)
{
    int threads = (int)ts_conf_get_int(svc->env->conf, "compute", "scheduler_workers", 4);
    return ts_bus_serve(svc->env->bus, "scheduler", handler, svc, threads, err);
}
