/*
 * ts_compute_scheduler.c: the scheduler (nova-scheduler + placement in one). It serves
 * the "scheduler" topic: select_and_build reads the instance's request spec, filters the
 * compute hosts (enabled, up, availability zone, RAM/CPU/disk capacity with allocation
 * ratios (the zone of a host in an aggregate with one is the aggregate's), server-group
 * affinity/anti-affinity, hosts already tried), weighs them by free
 * RAM (spread), claims the resources in the allocations table inside one write
 * transaction (so concurrent decisions never over-commit) and casts
 * build_and_run_instance to "compute.<host>". No host -> the conductor puts the instance
 * in ERROR with Nova's "No valid host was found" fault. select_for_resize does the same for
 * a resize (the old allocation kept under "<uuid>-migration") and casts resize_instance.
 * The hosts are filtered and weighed in one pass over an in-memory table (no query over
 * all hosts per decision); the table is reloaded inside the claim transaction after
 * ts_compute_sched_changed(), and the chosen host is re-read from the DB in the same
 * transaction before the claim (a stale table is reloaded and the pick redone).
 */
#include "compute/ts_compute_int.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/ts_json.h"

#define JS(o, k) json_string_value(json_object_get((o), (k)))
#define JI(o, k) json_integer_value(json_object_get((o), (k)))

/* One compute host as the scheduler sees it: inventory, service state and the sum of all
 * allocations on it. */
struct sched_host {
    char *host, *zone;
    char *svc_zone;            /* the agent's own zone (zone may come from an aggregate) */
    bool disabled, forced_down;
    double last_seen;
    int64_t vcpus, mem, disk, used_vcpus, used_mem, used_disk;
};

/* The in-memory host table. Loaded from the DB (inside a claim transaction) when it is
 * missing or when sched_gen moved (ts_compute_sched_changed() after a write elsewhere);
 * heartbeats update it in place; claims add to it after their commit. Guarded by mu. */
static struct {
    pthread_mutex_t mu;
    const struct ts_compute_svc *owner;
    bool valid;
    unsigned long gen;
    struct sched_host *h;
    int n, cap;
} cache = {.mu = PTHREAD_MUTEX_INITIALIZER};
static atomic_ulong sched_gen;

void ts_compute_sched_changed(void)
{
    atomic_fetch_add(&sched_gen, 1);
}

static struct sched_host *cache_find(const char *host)
{
    for (int i = 0; host && i < cache.n; i++)
        if (!strcmp(cache.h[i].host, host)) return &cache.h[i];
    return NULL;
}

void ts_compute_sched_seen(const char *host, const char *zone, double when)
{
    pthread_mutex_lock(&cache.mu);
    struct sched_host *h = cache_find(host);
    if (!h || !ts_streq(h->svc_zone, zone)) ts_compute_sched_changed();
    else h->last_seen = when;
    pthread_mutex_unlock(&cache.mu);
}

void ts_compute_sched_node(const char *host, int64_t vcpus, int64_t mem, int64_t disk)
{
    pthread_mutex_lock(&cache.mu);
    struct sched_host *h = cache_find(host);
    if (!h || h->vcpus != vcpus || h->mem != mem || h->disk != disk) ts_compute_sched_changed();
    pthread_mutex_unlock(&cache.mu);
}

static void cache_clear(void)
{
    for (int i = 0; i < cache.n; i++) {
        free(cache.h[i].host);
        free(cache.h[i].zone);
        free(cache.h[i].svc_zone);
    }
    cache.n = 0;
    cache.valid = false;
}

#define HOST_COLS                                                                                               \
    "s.host, COALESCE((SELECT MIN(g.availability_zone) FROM aggregate_hosts gh JOIN aggregates g ON g.id = "   \
    "gh.aggregate_id WHERE gh.host = s.host AND g.availability_zone IS NOT NULL), s.availability_zone), "        \
    "s.disabled, s.forced_down, s.last_seen_up, n.vcpus, n.memory_mb, n.local_gb, " \
    "COALESCE(a.v, 0), COALESCE(a.m, 0), COALESCE(a.d, 0), s.availability_zone"

static void host_from_row(struct sched_host *h, const struct ts_db_res *res, int r)
{
    const char *ls = ts_db_res_get(res, r, 4);
    h->disabled = ts_db_res_int(res, r, 2, 0) != 0;
    h->forced_down = ts_db_res_int(res, r, 3, 0) != 0;
    h->last_seen = ls ? strtod(ls, NULL) : 0;
    h->vcpus = ts_db_res_int(res, r, 5, 0);
    h->mem = ts_db_res_int(res, r, 6, 0);
    h->disk = ts_db_res_int(res, r, 7, 0);
    h->used_vcpus = ts_db_res_int(res, r, 8, 0);
    h->used_mem = ts_db_res_int(res, r, 9, 0);
    h->used_disk = ts_db_res_int(res, r, 10, 0);
}

/* Reloads the host table inside tx (cache.mu held). */
static int cache_load(struct ts_compute_svc *svc, struct ts_db_conn *tx, struct ts_err *err)
{
    struct ts_db_res *res = NULL;
    unsigned long gen = atomic_load(&sched_gen);
    cache_clear();
    int rc = ts_db_tx_exec(tx,
                           "SELECT " HOST_COLS " FROM services s JOIN compute_nodes n ON n.host = s.host LEFT JOIN "
                           "(SELECT host, SUM(vcpus) AS v, SUM(memory_mb) AS m, SUM(disk_gb) AS d FROM allocations "
                           "GROUP BY host) a ON a.host = s.host WHERE s.binary_name = 'nova-compute'",
                           TS_DB_NOARGS, &res, err);
    if (rc) return rc;
    if (res->nrows > cache.cap) {
        struct sched_host *nh = realloc(cache.h, (size_t)res->nrows * sizeof(*nh));
        if (!nh) {
            ts_db_res_free(res);
            return ts_err_set(err, TS_ENOMEM, "scheduler: out of memory");
        }
        cache.h = nh;
        cache.cap = res->nrows;
    }
    for (int r = 0; r < res->nrows; r++) {
        struct sched_host *h = &cache.h[cache.n];
        const char *zone = ts_db_res_get(res, r, 1);
        h->host = ts_strdup(ts_db_res_get(res, r, 0));
        h->zone = zone ? ts_strdup(zone) : NULL;
        h->svc_zone = ts_db_res_get(res, r, 11) ? ts_strdup(ts_db_res_get(res, r, 11)) : NULL;
        host_from_row(h, res, r);
        cache.n++;
    }
    ts_db_res_free(res);
    cache.owner = svc;
    cache.gen = gen;
    cache.valid = true;
    return 0;
}

static bool in_array(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (ts_streq(json_string_value(v), s)) return true;
    return false;
}

/* What one decision asks for. own_* is the instance's current allocation (not counted). */
struct sched_req {
    json_t *ignore, *extra_ignore;
    const char *az, *force, *policy;
    int64_t vcpus, mem, disk;
    const char *own_host;
    int64_t own_vcpus, own_mem, own_disk;
    struct ts_db_res *grp;
};

static int group_members(const struct sched_req *q, const char *host)
{
    int m = 0;
    for (int g = 0; q->grp && g < q->grp->nrows; g++)
        if (ts_streq(ts_db_res_get(q->grp, g, 0), host)) m = (int)ts_db_res_int(q->grp, g, 1, 0);
    return m;
}

/* The filters and the weigher for one host; false when filtered out. */
static bool weigh(struct ts_compute_svc *svc, const struct sched_req *q, const struct sched_host *h, double *weight)
{
    if (h->disabled) return false;
    if (!ts_compute_is_up(h->last_seen, svc->service_down_time, h->forced_down)) return false;
    if (q->force && !ts_streq(q->force, h->host)) return false;
    if (q->az && strcmp(q->az, "nova") && !ts_streq(q->az, h->zone)) return false;
    if (in_array(q->ignore, h->host) || in_array(q->extra_ignore, h->host)) return false;
    int64_t uv = h->used_vcpus, um = h->used_mem, ud = h->used_disk;
    if (q->own_host && !strcmp(q->own_host, h->host)) {
        uv -= q->own_vcpus;
        um -= q->own_mem;
        ud -= q->own_disk;
    }
    if ((double)(uv + q->vcpus) > (double)h->vcpus * svc->cpu_ratio) return false;
    if ((double)(um + q->mem) > (double)h->mem * svc->ram_ratio) return false;
    if ((double)(ud + q->disk) > (double)h->disk * svc->disk_ratio) return false;
    int members = q->grp ? group_members(q, h->host) : 0;
    if (ts_streq(q->policy, "anti-affinity") && members > 0) return false;
    if (ts_streq(q->policy, "affinity") && q->grp && q->grp->nrows > 0 && members == 0) return false;
    /* weigh: free RAM (spread); soft policies shift by members */
    *weight = (double)h->mem * svc->ram_ratio - (double)um;
    if (ts_streq(q->policy, "soft-anti-affinity")) *weight -= 1e12 * members;
    if (ts_streq(q->policy, "soft-affinity")) *weight += 1e12 * members;
    return true;
}

/* Filters and weighs the host table in one pass; index of the best host or -1. */
static int pick(struct ts_compute_svc *svc, const struct sched_req *q)
{
    int best = -1;
    double bw = 0, w = 0;
    for (int i = 0; i < cache.n; i++)
        if (weigh(svc, q, &cache.h[i], &w) && (best < 0 || w > bw)) {
            best = i;
            bw = w;
        }
    return best;
}

/* Re-reads the chosen host inside tx; false when the table was stale for it (the caller
 * then reloads the table). */
static int verify(struct ts_db_conn *tx, struct sched_host *h, bool *fresh, struct ts_err *err)
{
    struct ts_db_res *res = NULL;
    int rc = ts_db_tx_exec(tx,
                           "SELECT " HOST_COLS " FROM services s JOIN compute_nodes n ON n.host = s.host LEFT JOIN "
                           "(SELECT host, SUM(vcpus) AS v, SUM(memory_mb) AS m, SUM(disk_gb) AS d FROM allocations "
                           "WHERE host = ? GROUP BY host) a ON a.host = s.host WHERE s.host = ? AND "
                           "s.binary_name = 'nova-compute'",
                           TS_DB_ARGS(TS_DB_S(h->host), TS_DB_S(h->host)), &res, err);
    if (rc) return rc;
    *fresh = false;
    if (res->nrows == 1 && ts_streq(ts_db_res_get(res, 0, 1), h->zone)) {
        struct sched_host d = *h;
        host_from_row(&d, res, 0);
        *fresh = d.disabled == h->disabled && d.forced_down == h->forced_down && d.vcpus == h->vcpus &&
                 d.mem == h->mem && d.disk == h->disk && d.used_vcpus == h->used_vcpus && d.used_mem == h->used_mem &&
                 d.used_disk == h->used_disk;
        h->last_seen = d.last_seen;
    }
    ts_db_res_free(res);
    return 0;
}

/* Picks and claims a host for inst inside one transaction. *host_out is malloc'd. */
static int claim(struct ts_compute_svc *svc, json_t *inst, json_t *extra_ignore, char **host_out, double *elapsed,
                 struct ts_err *err)
{
    const char *uuid = JS(inst, "uuid");
    json_t *spec = json_object_get(inst, "request_spec");
    const char *group = JS(spec, "group");
    struct sched_req q = {.ignore = json_object_get(spec, "ignore_hosts"), .extra_ignore = extra_ignore,
                          .az = JS(spec, "availability_zone"), .force = JS(spec, "force_host"),
                          .policy = JS(spec, "group_policy"), .vcpus = JI(spec, "vcpus"),
                          .mem = JI(spec, "memory_mb"), .disk = JI(spec, "root_gb")};
    struct ts_db_conn *tx = NULL;
    struct ts_db_res *chk = NULL;
    bool locked = false;
    double t0 = ts_mono();
    int rc = ts_db_begin(svc->db, &tx, err);
    if (rc) return rc;
    rc = ts_db_tx_exec(tx,
                       "SELECT i.deleted, i.task_state, a.host, a.vcpus, a.memory_mb, a.disk_gb FROM instances i "
                       "LEFT JOIN allocations a ON a.consumer = i.uuid WHERE i.uuid = ?",
                       TS_DB_ARGS(TS_DB_S(uuid)), &chk, err);
    if (rc) goto out;
    if (chk->nrows == 0 || ts_db_res_int(chk, 0, 0, 0) != 0 || !ts_streq(ts_db_res_get(chk, 0, 1), "scheduling")) {
        rc = ts_err_set(err, TS_EGONE, "instance %s is no longer waiting for a host", uuid);
        goto out;
    }
    q.own_host = ts_db_res_get(chk, 0, 2);
    q.own_vcpus = ts_db_res_int(chk, 0, 3, 0);
    q.own_mem = ts_db_res_int(chk, 0, 4, 0);
    q.own_disk = ts_db_res_int(chk, 0, 5, 0);
    if (group) {
        rc = ts_db_tx_exec(tx,
                           "SELECT a.host, COUNT(*) FROM allocations a JOIN server_group_members m ON "
                           "m.instance_uuid = a.consumer WHERE m.group_uuid = ? AND a.consumer <> ? GROUP BY a.host",
                           TS_DB_ARGS(TS_DB_S(group), TS_DB_S(uuid)), &q.grp, err);
        if (rc) goto out;
    }
    pthread_mutex_lock(&cache.mu);
    locked = true;
    bool loaded = false;
    if (!cache.valid || cache.owner != svc || cache.gen != atomic_load(&sched_gen)) {
        rc = cache_load(svc, tx, err);
        if (rc) goto out;
        loaded = true;
    }
    int best = pick(svc, &q);
    if (best >= 0 && !loaded) {
        bool fresh = false;
        rc = verify(tx, &cache.h[best], &fresh, err);
        if (rc) goto out;
        if (!fresh) {
            ts_debug("scheduler", "host table stale for %s; reloading", cache.h[best].host);
            rc = cache_load(svc, tx, err);
            if (rc) goto out;
            best = pick(svc, &q);
        }
    }
    *elapsed = ts_mono() - t0;
    if (best < 0) {
        rc = ts_err_set(err, TS_ENOTFOUND, "No valid host was found. There are not enough hosts available.");
        goto out;
    }
    struct sched_host *h = &cache.h[best];
    rc = ts_db_tx_exec(tx,
                       "INSERT INTO allocations (consumer, host, vcpus, memory_mb, disk_gb, created_at) VALUES (?, ?, "
                       "?, ?, ?, ?) ON CONFLICT (consumer) DO UPDATE SET host = excluded.host, vcpus = excluded.vcpus, "
                       "memory_mb = excluded.memory_mb, disk_gb = excluded.disk_gb",
                       TS_DB_ARGS(TS_DB_S(uuid), TS_DB_S(h->host), TS_DB_I(q.vcpus), TS_DB_I(q.mem), TS_DB_I(q.disk),
                                  TS_DB_D(ts_now())),
                       NULL, err);
    if (rc) goto out;
    *host_out = ts_strdup(h->host);
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) {
        free(*host_out);
        *host_out = NULL;
        cache.valid = false;
        goto out;
    }
    /* the claim in the table: the instance's old allocation moves to the chosen host */
    struct sched_host *old = cache_find(q.own_host);
    if (old) {
        old->used_vcpus -= q.own_vcpus;
        old->used_mem -= q.own_mem;
        old->used_disk -= q.own_disk;
    }
    h->used_vcpus += q.vcpus;
    h->used_mem += q.mem;
    h->used_disk += q.disk;
out:
    if (tx) ts_db_rollback(tx);
    if (locked) pthread_mutex_unlock(&cache.mu);
    ts_db_res_free(q.grp);
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
        ts_compute_sched_changed();
        json_array_append_new(tried, json_string(host));
        free(host);
    }
    json_decref(inst);
    json_decref(tried);
    return 0;
}

/* Picks and claims a host for a resize to flavor fl, as Nova does with placement: the
 * instance's current allocation moves to the consumer "<uuid>-migration" (still counted on
 * its host until confirm or revert) and the instance gets the new flavor's on the chosen
 * host. The current host is a candidate only with [compute] allow_resize_to_same_host
 * (default true: one-host clouds). *host_out is malloc'd. */
static int claim_resize(struct ts_compute_svc *svc, json_t *inst, json_t *fl, char **host_out, struct ts_err *err)
{
    const char *uuid = JS(inst, "uuid");
    json_t *spec = json_object_get(inst, "request_spec");
    json_t *skip = json_array();
    char mig[64];
    snprintf(mig, sizeof(mig), "%s-migration", uuid);
    struct sched_req q = {.az = JS(spec, "availability_zone"), .vcpus = JI(fl, "vcpus"), .mem = JI(fl, "memory_mb"),
                          .disk = JI(fl, "root_gb") + JI(fl, "ephemeral_gb"), .extra_ignore = skip};
    if (!ts_conf_get_bool(svc->env->conf, "compute", "allow_resize_to_same_host", true) && JS(inst, "host"))
        json_array_append_new(skip, json_string(JS(inst, "host")));
    struct ts_db_conn *tx = NULL;
    struct ts_db_res *chk = NULL;
    bool locked = false;
    int rc = ts_db_begin(svc->db, &tx, err);
    if (rc) goto out;
    rc = ts_db_tx_exec(tx, "SELECT deleted, task_state FROM instances WHERE uuid = ?", TS_DB_ARGS(TS_DB_S(uuid)), &chk,
                       err);
    if (rc) goto out;
    if (chk->nrows == 0 || ts_db_res_int(chk, 0, 0, 0) != 0 || !ts_streq(ts_db_res_get(chk, 0, 1), "resize_prep")) {
        rc = ts_err_set(err, TS_EGONE, "instance %s is no longer waiting for a resize", uuid);
        goto out;
    }
    pthread_mutex_lock(&cache.mu);
    locked = true;
    rc = cache_load(svc, tx, err);   /* resizes are rare: always decide on fresh sums */
    if (rc) goto out;
    int best = pick(svc, &q);
    if (best < 0) {
        rc = ts_err_set(err, TS_ENOTFOUND, "No valid host was found. No valid host found for resize");
        goto out;
    }
    struct sched_host *h = &cache.h[best];
    rc = ts_db_tx_exec(tx, "DELETE FROM allocations WHERE consumer = ?", TS_DB_ARGS(TS_DB_S(mig)), NULL, err);
    if (!rc)
        rc = ts_db_tx_exec(tx, "UPDATE allocations SET consumer = ? WHERE consumer = ?",
                           TS_DB_ARGS(TS_DB_S(mig), TS_DB_S(uuid)), NULL, err);
    if (!rc)
        rc = ts_db_tx_exec(tx,
                           "INSERT INTO allocations (consumer, host, vcpus, memory_mb, disk_gb, created_at) VALUES (?, "
                           "?, ?, ?, ?, ?)",
                           TS_DB_ARGS(TS_DB_S(uuid), TS_DB_S(h->host), TS_DB_I(q.vcpus), TS_DB_I(q.mem),
                                      TS_DB_I(q.disk), TS_DB_D(ts_now())),
                           NULL, err);
    if (rc) goto out;
    *host_out = ts_strdup(h->host);
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) {
        free(*host_out);
        *host_out = NULL;
    }
    cache.valid = false;
out:
    if (tx) ts_db_rollback(tx);
    if (locked) pthread_mutex_unlock(&cache.mu);
    ts_db_res_free(chk);
    json_decref(skip);
    return rc;
}

/* The scheduler step of a resize (Nova's conductor migrate_server + select_destinations):
 * claims a host and casts resize_instance to the instance's current host, which powers the
 * guest off and hands over to the destination. No host -> the conductor rolls back. */
static int select_for_resize(struct ts_compute_svc *svc, json_t *args)
{
    const char *uuid = JS(args, "instance_uuid");
    json_t *ctx = json_object_get(args, "context"), *fl = json_object_get(args, "new_flavor");
    json_t *inst = NULL;
    char *dest = NULL;
    struct ts_err err = {0};
    if (!uuid || !json_is_object(fl) || ts_compute_inst_load(svc->db, uuid, &inst, &err) < 0) return 0;
    int rc = claim_resize(svc, inst, fl, &dest, &err);
    if (rc == -TS_EGONE) goto out;
    if (!rc) {
        json_t *mig = json_pack("{s:s, s:s?, s:s, s:s}", "id", JS(args, "migration_id"), "source", JS(inst, "host"),
                                "dest", dest, "status", "pre-migrating");
        json_t *vals = json_pack("{s:o}", "migration", mig);
        ts_compute_inst_update(svc->db, uuid, vals, "resize_prep", NULL, NULL);
        json_decref(vals);
        ts_compute_migration_set(svc->db, JS(args, "migration_id"), "migrating", dest);
        char *topic = ts_asprintf("compute.%s", JS(inst, "host"));
        json_t *a = json_pack("{s:s, s:O, s:s, s:O}", "instance_uuid", uuid, "new_flavor", fl, "dest", dest, "context",
                              ctx ? ctx : json_null());
        rc = ts_bus_cast(svc->env->bus, topic, "resize_instance", a, &err);
        free(topic);
    }
    if (rc) {
        ts_info("scheduler", "resize of %s: %s", uuid, err.msg);
        ts_compute_migration_set(svc->db, JS(args, "migration_id"), "error", NULL);
        json_t *a = json_pack("{s:s, s:s, s:s, s:O}", "instance_uuid", uuid, "message", err.msg[0] ? err.msg :
                              "No valid host was found.", "event", "conductor_migrate_server", "context",
                              ctx ? ctx : json_null());
        ts_bus_cast(svc->env->bus, "conductor", "resize_failed", a, NULL);
    }
out:
    free(dest);
    json_decref(inst);
    return 0;
}

static int handler(void *ctx, const char *method, json_t *args, json_t **reply, struct ts_err *err)
{
    struct ts_compute_svc *svc = ctx;
    (void)reply;
    if (!strcmp(method, "select_and_build")) return select_and_build(svc, args);
    if (!strcmp(method, "select_for_resize")) return select_for_resize(svc, args);
    return ts_err_set(err, TS_EINVAL, "scheduler: unknown method %s", method);
}

int ts_compute_scheduler_start(struct ts_compute_svc *svc, struct ts_err *err)
{
    int threads = (int)ts_conf_get_int(svc->env->conf, "compute", "scheduler_workers", 4);
    return ts_bus_serve(svc->env->bus, "scheduler", handler, svc, threads, err);
}
