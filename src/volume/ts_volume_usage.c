/*
 * ts_volume_usage.c: what the quota check and the capability reports need to know about
 * usage, without summing every volume on each create. On SQLite two tables hold the
 * totals (per project: volumes, snapshots, gigabytes; per backend: provisioned gigabytes
 * of its volumes and their snapshots), kept by triggers on volumes and snapshots, so every
 * insert, delete and change of size, project or backend updates them in the same
 * transaction as the row (exact under concurrent writers and across crashes). At start they
 * are recomputed from the rows all the same. PostgreSQL sums the rows as before.
 */
#include "volume/ts_volume_int.h"

#include <string.h>

/* delta of a project's usage: (project, volumes, snapshots, gigabytes) */
#define PROJ(p, nv, ns, gb)                                                                                  \
    "INSERT INTO volume_usage_projects (project_id, volumes, snapshots, gigabytes) VALUES (" p ", " nv       \
    ", " ns ", " gb ") ON CONFLICT (project_id) DO UPDATE SET volumes = volumes + excluded.volumes,"         \
    " snapshots = snapshots + excluded.snapshots, gigabytes = gigabytes + excluded.gigabytes;"
/* delta of a backend's provisioned gigabytes (nothing for a volume without backend yet) */
#define BACKEND(b, gb)                                                                                       \
    "INSERT INTO volume_usage_backends (backend, gigabytes) SELECT " b ", " gb " WHERE " b                   \
    " IS NOT NULL ON CONFLICT (backend) DO UPDATE SET gigabytes = gigabytes + excluded.gigabytes;"
/* the gigabytes of a volume's snapshots */
#define SNAPS(id) "(SELECT COALESCE(SUM(size), 0) FROM snapshots WHERE volume_id = " id ")"
/* a snapshot's backend: its volume's */
#define SNAP_BACKEND(vid) "(SELECT backend FROM volumes WHERE id = " vid ")"

static const char *const triggers[] = {
    "CREATE TRIGGER IF NOT EXISTS volume_usage_vol_ins AFTER INSERT ON volumes BEGIN " PROJ(
        "NEW.project_id", "1", "0", "NEW.size") BACKEND("NEW.backend", "NEW.size + " SNAPS("NEW.id")) " END",
    "CREATE TRIGGER IF NOT EXISTS volume_usage_vol_del AFTER DELETE ON volumes BEGIN " PROJ(
        "OLD.project_id", "-1", "0", "-OLD.size")
        BACKEND("OLD.backend", "-(OLD.size + " SNAPS("OLD.id") ")") " END",
    "CREATE TRIGGER IF NOT EXISTS volume_usage_vol_upd AFTER UPDATE OF size, project_id, backend ON volumes"
    " WHEN OLD.size IS NOT NEW.size OR OLD.project_id IS NOT NEW.project_id OR OLD.backend IS NOT NEW.backend"
    " BEGIN " PROJ("OLD.project_id", "-1", "0", "-OLD.size") PROJ("NEW.project_id", "1", "0", "NEW.size")
        BACKEND("OLD.backend", "-(OLD.size + " SNAPS("OLD.id") ")")
            BACKEND("NEW.backend", "NEW.size + " SNAPS("NEW.id")) " END",
    "CREATE TRIGGER IF NOT EXISTS volume_usage_snap_ins AFTER INSERT ON snapshots BEGIN " PROJ(
        "NEW.project_id", "0", "1", "NEW.size") BACKEND(SNAP_BACKEND("NEW.volume_id"), "NEW.size") " END",
    "CREATE TRIGGER IF NOT EXISTS volume_usage_snap_del AFTER DELETE ON snapshots BEGIN " PROJ(
        "OLD.project_id", "0", "-1", "-OLD.size") BACKEND(SNAP_BACKEND("OLD.volume_id"), "-OLD.size") " END",
    "CREATE TRIGGER IF NOT EXISTS volume_usage_snap_upd AFTER UPDATE OF size, project_id, volume_id ON "
    "snapshots"
    " WHEN OLD.size IS NOT NEW.size OR OLD.project_id IS NOT NEW.project_id OR OLD.volume_id IS NOT "
    "NEW.volume_id BEGIN " PROJ("OLD.project_id", "0", "-1", "-OLD.size")
        PROJ("NEW.project_id", "0", "1", "NEW.size") BACKEND(SNAP_BACKEND("OLD.volume_id"), "-OLD.size")
            BACKEND(SNAP_BACKEND("NEW.volume_id"), "NEW.size") " END",
};

static const char *const recompute[] = {
    "DELETE FROM volume_usage_projects",
    "INSERT INTO volume_usage_projects (project_id, volumes, snapshots, gigabytes)"
    " SELECT project_id, SUM(nv), SUM(ns), SUM(gb) FROM"
    " (SELECT project_id, 1 AS nv, 0 AS ns, size AS gb FROM volumes"
    "  UNION ALL SELECT project_id, 0, 1, size FROM snapshots) AS u GROUP BY project_id",
    "DELETE FROM volume_usage_backends",
    "INSERT INTO volume_usage_backends (backend, gigabytes) SELECT backend, SUM(gb) FROM"
    " (SELECT backend, size AS gb FROM volumes WHERE backend IS NOT NULL"
    "  UNION ALL SELECT v.backend, s.size FROM snapshots s JOIN volumes v ON v.id = s.volume_id"
    "  WHERE v.backend IS NOT NULL) AS u GROUP BY backend",
};

static bool maintained(struct ts_volume_svc *svc)
{
    return !ts_db_is_postgres(svc->db);
}

int ts_volume_usage_setup(struct ts_volume_svc *svc, struct ts_err *err)
{
    if (!maintained(svc)) return 0;
    struct ts_db_conn *tx = NULL;
    int rc = ts_db_begin(svc->db, &tx, err);
    if (rc) return rc;
    for (size_t i = 0; i < sizeof(triggers) / sizeof(triggers[0]); i++)
        if ((rc = ts_db_tx_exec(tx, triggers[i], TS_DB_NOARGS, NULL, err))) goto out;
    for (size_t i = 0; i < sizeof(recompute) / sizeof(recompute[0]); i++)
        if ((rc = ts_db_tx_exec(tx, recompute[i], TS_DB_NOARGS, NULL, err))) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
out:
    ts_db_rollback(tx);
    return rc;
}

int ts_volume_usage_project(struct ts_volume_svc *svc, struct ts_db_conn *tx, const char *project,
                            int64_t *volumes, int64_t *snapshots, int64_t *gigabytes, struct ts_err *err)
{
    struct ts_db_res *r = NULL;
    int rc;
    if (maintained(svc))
        rc = ts_db_tx_exec(
            tx, "SELECT volumes, snapshots, gigabytes FROM volume_usage_projects WHERE project_id = ?",
            TS_DB_ARGS(TS_DB_S(project)), &r, err);
    else
        rc = ts_db_tx_exec(tx,
                           "SELECT (SELECT COUNT(*) FROM volumes WHERE project_id = ?),"
                           " (SELECT COUNT(*) FROM snapshots WHERE project_id = ?),"
                           " (SELECT COALESCE(SUM(size), 0) FROM volumes WHERE project_id = ?) +"
                           " (SELECT COALESCE(SUM(size), 0) FROM snapshots WHERE project_id = ?)",
                           TS_DB_ARGS(TS_DB_S(project), TS_DB_S(project), TS_DB_S(project), TS_DB_S(project)),
                           &r, err);
    if (rc) return rc;
    bool row = r->nrows > 0;
    *volumes = row ? ts_db_res_int(r, 0, 0, 0) : 0;
    *snapshots = row ? ts_db_res_int(r, 0, 1, 0) : 0;
    *gigabytes = row ? ts_db_res_int(r, 0, 2, 0) : 0;
    ts_db_res_free(r);
    return 0;
}

double ts_volume_usage_backend_gb(struct ts_volume_svc *svc, const char *backend)
{
    struct ts_db_res *r = NULL;
    double v = 0;
    int rc;
    if (maintained(svc))
        rc = ts_db_exec(svc->db, "SELECT gigabytes FROM volume_usage_backends WHERE backend = ?",
                        TS_DB_ARGS(TS_DB_S(backend)), &r, NULL);
    else
        rc = ts_db_exec(
            svc->db,
            "SELECT (SELECT COALESCE(SUM(size), 0) FROM volumes WHERE backend = ?) + "
            "(SELECT COALESCE(SUM(s.size), 0) FROM snapshots s JOIN volumes v ON v.id = s.volume_id "
            "WHERE v.backend = ?)",
            TS_DB_ARGS(TS_DB_S(backend), TS_DB_S(backend)), &r, NULL);
    if (rc == 0 && r->nrows > 0) v = (double)ts_db_res_int(r, 0, 0, 0);
    ts_db_res_free(r);
    return v;
}
