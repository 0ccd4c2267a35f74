/*
 * ts_compute_conductor.c: the conductor (nova-conductor): the agents' only way to read
 * and write compute tables. It serves the "conductor" topic: instance_get/update/destroy,
 * build_failed (reschedule to another host up to [compute] max_attempts, else ERROR with
 * a fault), schedule_failed, resize bookkeeping, instances_on_host, and report_state
 * (agent heartbeats: services and compute_nodes rows the scheduler reads).
 */
#include "compute/ts_compute_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/ts_json.h"

#define JS(o, k) json_string_value(json_object_get((o), (k)))
#define JI(o, k) json_integer_value(json_object_get((o), (k)))

static int set_error(struct ts_compute_svc *svc, const char *uuid, const char *message)
{
    json_t *vals = json_pack("{s:s, s:n, s:{s:i, s:s, s:f}}", "vm_state", "error", "task_state", "fault", "code", 500,
                             "message", message ? message : "Unknown error", "created", ts_now());
    json_t *inst = NULL;
    int rc = ts_compute_inst_update(svc->db, uuid, vals, NULL, &inst, NULL);
    json_decref(vals);
    ts_db_exec(svc->db, "DELETE FROM allocations WHERE consumer = ?", TS_DB_ARGS(TS_DB_S(uuid)), NULL, NULL);
    ts_compute_sched_changed();
    if (!rc) ts_compute_notify(svc->env->bus, svc->publisher, "compute.instance.create.error", inst);
    json_decref(inst);
    return 0;
}

static int build_failed(struct ts_compute_svc *svc, json_t *args)
{
    const char *uuid = JS(args, "instance_uuid"), *host = JS(args, "host"), *msg = JS(args, "message");
    json_t *inst = NULL;
    if (!uuid || ts_compute_inst_load(svc->db, uuid, &inst, NULL) < 0) return 0;
    ts_db_exec(svc->db, "DELETE FROM allocations WHERE consumer = ?", TS_DB_ARGS(TS_DB_S(uuid)), NULL, NULL);
    ts_compute_sched_changed();
    if (JI(inst, "deleted")) goto out;
    json_t *spec = json_object_get(inst, "request_spec");
    if (!json_is_object(spec)) {
        spec = json_object();
        json_object_set_new(inst, "request_spec", spec);
    }
    json_t *ign = json_object_get(spec, "ignore_hosts");
    if (!json_is_array(ign)) {
        ign = json_array();
        json_object_set_new(spec, "ignore_hosts", ign);
    }
    if (host) json_array_append_new(ign, json_string(host));
    int64_t attempts = JI(spec, "num_attempts") + 1;
    json_object_set_new(spec, "num_attempts", json_integer(attempts));
    bool retry = attempts < svc->max_attempts && !json_is_false(json_object_get(args, "retry")) &&
                 !JS(spec, "force_host");
    ts_warn("conductor", "build of %s failed on %s (attempt %lld): %s%s", uuid, host ? host : "?",
            (long long)attempts, msg ? msg : "", retry ? "; rescheduling" : "");
    if (retry) {
        json_t *vals = json_pack("{s:O, s:s, s:n, s:n}", "request_spec", spec, "task_state", "scheduling", "host",
                                 "node");
        int rc = ts_compute_inst_update(svc->db, uuid, vals, NULL, NULL, NULL);
        json_decref(vals);
        if (!rc) {
            json_t *a = json_pack("{s:s, s:O}", "instance_uuid", uuid, "context", json_object_get(args, "context"));
            if (ts_bus_cast(svc->env->bus, "scheduler", "select_and_build", a, NULL) == 0) goto out;
        }
    }
    char *m = ts_asprintf("%s%s", attempts >= svc->max_attempts ? "Exceeded maximum number of retries. " : "",
                          msg ? msg : "Build of instance failed");
    set_error(svc, uuid, m);
    free(m);
out:
    json_decref(inst);
    return 0;
}

static int report_state(struct ts_compute_svc *svc, json_t *args, json_t **reply, struct ts_err *err)
{
    const char *host = JS(args, "host");
    json_t *hi = json_object_get(args, "host_info");
    if (!host) return ts_err_set(err, TS_EINVAL, "report_state without host");
    const char *zone = JS(args, "availability_zone");
    ts_compute_service_heartbeat(svc->db, host, "nova-compute", "compute", zone ? zone : "nova");
    ts_compute_sched_seen(host, zone ? zone : "nova", ts_now());
    if (json_is_object(hi)) {
        char uuid[TS_UUID_LEN + 1];
        ts_uuid(uuid);
        double now = ts_now();
        int rc = ts_db_exec(svc->db,
                            "INSERT INTO compute_nodes (uuid, host, hypervisor_hostname, hypervisor_type, "
                            "hypervisor_version, vcpus, memory_mb, local_gb, cpu_info, host_ip, created_at, updated_at) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (host) DO UPDATE SET "
                            "hypervisor_type = excluded.hypervisor_type, hypervisor_version = excluded.hypervisor_version, "
                            "vcpus = excluded.vcpus, memory_mb = excluded.memory_mb, local_gb = excluded.local_gb, "
                            "cpu_info = excluded.cpu_info, host_ip = excluded.host_ip, updated_at = excluded.updated_at",
                            TS_DB_ARGS(TS_DB_S(uuid), TS_DB_S(host), TS_DB_S(host), TS_DB_S(JS(hi, "hypervisor_type")),
                                       TS_DB_I(JI(hi, "hypervisor_version")), TS_DB_I(JI(hi, "vcpus")),
                                       TS_DB_I(JI(hi, "memory_mb")), TS_DB_I(JI(hi, "local_gb")),
                                       TS_DB_S(JS(hi, "cpu_info")), TS_DB_S(JS(args, "host_ip")), TS_DB_D(now),
                                       TS_DB_D(now)),
                            NULL, err);
        if (rc) return rc;
        ts_compute_sched_node(host, JI(hi, "vcpus"), JI(hi, "memory_mb"), JI(hi, "local_gb"));
    }
    *reply = json_object();
    return 0;
}

static int instances_on_host(struct ts_compute_svc *svc, json_t *args, json_t **reply, struct ts_err *err)
{
    struct ts_db_res *res = NULL;
    int rc = ts_db_exec(svc->db, "SELECT " TS_COMPUTE_INST_COLS " FROM instances WHERE host = ? AND deleted = 0",
                        TS_DB_ARGS(TS_DB_S(JS(args, "host"))), &res, err);
    if (rc) return rc;
    json_t *arr = json_array();
    for (int i = 0; i < res->nrows; i++) json_array_append_new(arr, ts_compute_inst_row(res, i));
    ts_db_res_free(res);
    *reply = json_pack("{s:o}", "instances", arr);
    return 0;
}

/* Puts the old allocation ("<uuid>-migration") back on the instance and drops the new one,
 * in one transaction; nothing happens when there is no migration allocation. */
static int alloc_restore(struct ts_compute_svc *svc, const char *uuid, struct ts_err *err)
{
    char mig[64];
    snprintf(mig, sizeof(mig), "%s-migration", uuid);
    struct ts_db_conn *tx = NULL;
    struct ts_db_res *res = NULL;
    int rc = ts_db_begin(svc->db, &tx, err);
    if (rc) return rc;
    rc = ts_db_tx_exec(tx, "SELECT host FROM allocations WHERE consumer = ?", TS_DB_ARGS(TS_DB_S(mig)), &res, err);
    if (!rc && res->nrows == 1) {
        rc = ts_db_tx_exec(tx, "DELETE FROM allocations WHERE consumer = ?", TS_DB_ARGS(TS_DB_S(uuid)), NULL, err);
        if (!rc)
            rc = ts_db_tx_exec(tx, "UPDATE allocations SET consumer = ? WHERE consumer = ?",
                               TS_DB_ARGS(TS_DB_S(uuid), TS_DB_S(mig)), NULL, err);
    }
    ts_db_res_free(res);
    if (rc) {
        ts_db_rollback(tx);
        return rc;
    }
    rc = ts_db_commit(tx, err);
    ts_compute_sched_changed();
    return rc;
}

/* The instance gets flavor (old_flavor = old), vm_state and the other values in more. */
static int set_flavor(struct ts_compute_svc *svc, const char *uuid, json_t *flavor, json_t *old, const char *vm_state,
                      json_t *more, json_t **out, struct ts_err *err)
{
    if (!json_is_object(flavor)) return ts_err_set(err, TS_EINVAL, "no flavor");
    json_t *vals = json_pack("{s:O, s:O, s:s, s:I, s:I, s:I, s:s, s:n}", "flavor", flavor, "old_flavor",
                             old ? old : json_null(), "flavor_id", JS(flavor, "flavorid") ? JS(flavor, "flavorid") : "",
                             "vcpus", (json_int_t)JI(flavor, "vcpus"), "memory_mb", (json_int_t)JI(flavor, "memory_mb"),
                             "root_gb", (json_int_t)JI(flavor, "root_gb"), "vm_state", vm_state, "task_state");
    if (!old) json_object_set_new(vals, "old_vm_state", json_null());
    if (json_is_object(more)) json_object_update(vals, more);
    int rc = ts_compute_inst_update(svc->db, uuid, vals, NULL, out, err);
    json_decref(vals);
    return rc;
}

/* A resize that could not go on (no host, disk shrink refused, agent failure before the
 * guest was touched): the allocations and the states go back, the action event records why
 * (Nova's InstanceFaultRollback). */
static int resize_failed(struct ts_compute_svc *svc, json_t *args)
{
    const char *uuid = JS(args, "instance_uuid");
    json_t *inst = NULL;
    if (ts_compute_inst_load(svc->db, uuid, &inst, NULL) < 0) return 0;
    alloc_restore(svc, uuid, NULL);
    ts_compute_migration_set(svc->db, JS(json_object_get(inst, "migration"), "id"), "error", NULL);
    const char *old = JS(inst, "old_vm_state");
    json_t *vals = json_pack("{s:s, s:n, s:n, s:n}", "vm_state", ts_streq(old, "stopped") ? "stopped" : "active",
                             "task_state", "old_vm_state", "migration");
    if (json_object_get(args, "power_state")) json_object_set(vals, "power_state", json_object_get(args, "power_state"));
    ts_compute_inst_update(svc->db, uuid, vals, NULL, NULL, NULL);
    json_decref(vals);
    json_t *ctx = json_object_get(args, "context");
    if (JS(ctx, "request_id") && JS(args, "event"))
        ts_compute_action_event(svc->db, uuid, JS(ctx, "request_id"), JS(args, "event"), JS(args, "host"), false,
                                JS(args, "message"));
    ts_warn("conductor", "resize of %s failed: %s", uuid, JS(args, "message") ? JS(args, "message") : "");
    json_decref(inst);
    return 0;
}

static int handler(void *ctx, const char *method, json_t *args, json_t **reply, struct ts_err *err)
{
    struct ts_compute_svc *svc = ctx;
    const char *uuid = JS(args, "instance_uuid");
    if (!strcmp(method, "report_state")) return report_state(svc, args, reply, err);
    if (!strcmp(method, "instances_on_host")) return instances_on_host(svc, args, reply, err);
    if (!uuid) return ts_err_set(err, TS_EINVAL, "conductor: %s without instance_uuid", method);
    if (!strcmp(method, "instance_get")) {
        json_t *inst = NULL;
        int rc = ts_compute_inst_load(svc->db, uuid, &inst, err);
        if (rc) return rc;
        *reply = inst;
        return 0;
    }
    if (!strcmp(method, "instance_update")) {
        json_t *vals = json_object_get(args, "values");
        json_t *ev = json_object_get(args, "event");
        json_t *out = NULL;
        int rc = 0;
        if (json_is_object(vals) && json_object_size(vals))
            rc = ts_compute_inst_update(svc->db, uuid, vals, JS(args, "expected_task_state"), &out, err);
        else
            rc = ts_compute_inst_load(svc->db, uuid, &out, err);
        if (json_is_object(ev))
            ts_compute_action_event(svc->db, uuid, JS(ev, "request_id"), JS(ev, "event"), JS(ev, "host"),
                                    !json_is_false(json_object_get(ev, "ok")), JS(ev, "message"));
        if (rc) return rc;
        *reply = out;
        return 0;
    }
    if (!strcmp(method, "instance_destroy")) {
        int rc = ts_compute_inst_destroy(svc->db, uuid, err);
        if (rc) return rc;
        json_t *inst = NULL;
        if (ts_compute_inst_load(svc->db, uuid, &inst, NULL) == 0) *reply = inst;
        else *reply = json_object();
        return 0;
    }
    if (!strcmp(method, "build_failed")) return build_failed(svc, args);
    if (!strcmp(method, "schedule_failed")) return set_error(svc, uuid, JS(args, "message"));
    if (!strcmp(method, "build_aborted")) {
        ts_db_exec(svc->db, "DELETE FROM allocations WHERE consumer = ? AND consumer IN (SELECT uuid FROM instances "
                   "WHERE deleted = 1)", TS_DB_ARGS(TS_DB_S(uuid)), NULL, NULL);
        ts_compute_sched_changed();
        return 0;
    }
    if (!strcmp(method, "resize_failed")) return resize_failed(svc, args);
    if (!strcmp(method, "resize_finished") || !strcmp(method, "resize_reverted")) {
        json_t *inst = NULL, *out = NULL;
        int rc = ts_compute_inst_load(svc->db, uuid, &inst, err);
        if (rc) return rc;
        json_t *more = json_object();
        if (json_object_get(args, "power_state")) json_object_set(more, "power_state", json_object_get(args, "power_state"));
        json_t *mig = json_object_get(inst, "migration");
        if (!strcmp(method, "resize_finished")) {
            /* the instance now lives on the destination with the new flavor, VERIFY_RESIZE */
            json_t *m = json_is_object(mig) ? json_deep_copy(mig) : json_object();
            json_object_set_new(m, "status", json_string("finished"));
            json_object_set_new(more, "migration", m);
            if (JS(args, "host")) {
                json_object_set(more, "host", json_object_get(args, "host"));
                json_object_set(more, "node", json_object_get(args, "host"));
            }
            rc = set_flavor(svc, uuid, json_object_get(args, "new_flavor"), json_object_get(inst, "flavor"), "resized",
                            more, &out, err);
            if (!rc) ts_compute_migration_set(svc->db, JS(mig, "id"), "finished", NULL);
        } else {
            /* back on the source with the old flavor and the old allocation */
            json_object_set_new(more, "migration", json_null());
            if (JS(mig, "source")) {
                json_object_set(more, "host", json_object_get(mig, "source"));
                json_object_set(more, "node", json_object_get(mig, "source"));
            }
            rc = set_flavor(svc, uuid, json_object_get(inst, "old_flavor"), NULL,
                            ts_streq(JS(inst, "old_vm_state"), "stopped") ? "stopped" : "active", more, &out, err);
            if (!rc) alloc_restore(svc, uuid, NULL);
            if (!rc) ts_compute_migration_set(svc->db, JS(mig, "id"), "reverted", NULL);
        }
        json_decref(more);
        json_decref(inst);
        if (rc) return rc;
        *reply = out;
        return 0;
    }
    return ts_err_set(err, TS_EINVAL, "conductor: unknown method %s", method);
}

int ts_compute_conductor_start(struct ts_compute_svc *svc, struct ts_err *err)
{
    int threads = (int)ts_conf_get_int(svc->env->conf, "compute", "conductor_workers", 8);
    return ts_bus_serve(svc->env->bus, "conductor", handler, svc, threads, err);
}
