/*
 * ts_object_db.c: the object service's listing database: accounts, containers (with
 * their object count and bytes used, kept in the same transaction as every object row
 * change, as Swift's container broker does) and objects (name, timestamp, size, etag,
 * type, metadata, expiry and the id of the blob holding the bytes). Also the commit and
 * delete paths with Swift's versioning modes, the expirer and the startup reconcile.
 */
#include "object/ts_object_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MOD "object"

static const char mig1[] =
    "CREATE TABLE accounts (name TEXT PRIMARY KEY, created DOUBLE PRECISION NOT NULL,"
    " meta TEXT NOT NULL DEFAULT '{}');"
    "CREATE TABLE containers (account TEXT NOT NULL, name TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,"
    " put_ts DOUBLE PRECISION NOT NULL, meta TEXT NOT NULL DEFAULT '{}', object_count BIGINT NOT NULL DEFAULT 0,"
    " bytes_used BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (account, name));"
    "CREATE TABLE objects (account TEXT NOT NULL, container TEXT NOT NULL, name TEXT NOT NULL,"
    " ts DOUBLE PRECISION NOT NULL, size BIGINT NOT NULL, etag TEXT NOT NULL, content_type TEXT NOT NULL,"
    " meta TEXT NOT NULL DEFAULT '{}', delete_at BIGINT, blob TEXT NOT NULL, kind INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (account, container, name));"
    "CREATE INDEX objects_blob ON objects (blob);"
    "CREATE INDEX objects_delete_at ON objects (delete_at)";

/* Listings read every column they show from this index alone (a covering index): without
 * it each listed row costs a second B-tree lookup into the table by rowid (8% of a 1,000-row
 * JSON listing's server instructions). SQLite only: a PostgreSQL B-tree entry is limited to
 * ~2.7 KB, less than a 1,024-byte name plus an 8 KiB Content-Type, so there the version is
 * taken without an index. */
static const char mig2_sqlite[] =
    "CREATE INDEX objects_listing ON objects (account, container, name, size, etag, content_type, ts, delete_at)";
static const char mig2_pg[] = "SELECT 1";

static const struct ts_db_migration migs_sqlite[] = {{1, mig1}, {2, mig2_sqlite}};
static const struct ts_db_migration migs_pg[] = {{1, mig1}, {2, mig2_pg}};

int ts_object_db_migrate(struct ts_db *db, struct ts_err *err)
{
    bool pg = ts_db_is_postgres(db);
    return ts_db_migrate(db, pg ? migs_pg : migs_sqlite, sizeof(migs_sqlite) / sizeof(migs_sqlite[0]), err);
}

static json_t *pool_json(struct ts_pool *pool, const char *s)
{
    json_t *j = s ? json_loads(s, 0, NULL) : NULL;
    if (!j || !json_is_object(j)) {
        json_decref(j);
        j = json_object();
    }
    ts_pool_cleanup(pool, (void (*)(void *))json_decref, j);
    return j;
}

int ts_object_db_container(struct ts_object_svc *svc, struct ts_pool *pool, const char *acct, const char *cont,
                           struct ts_object_container *out, struct ts_err *err)
{
    struct ts_db_res *r = NULL;
    int rc = ts_db_exec(svc->db,
                        "SELECT created, put_ts, meta, object_count, bytes_used FROM containers"
                        " WHERE account = ? AND name = ?",
                        TS_DB_ARGS(TS_DB_S(acct), TS_DB_S(cont)), &r, err);
    if (rc < 0) goto out;
    if (r->nrows == 0) {
        rc = ts_err_set_full(err, TS_ENOTFOUND, 404, NULL, "%s", "");
        goto out;
    }
    out->created = atof(ts_db_res_get(r, 0, 0));
    out->put_ts = atof(ts_db_res_get(r, 0, 1));
    out->meta = pool_json(pool, ts_db_res_get(r, 0, 2));
    out->object_count = ts_db_res_int(r, 0, 3, 0);
    out->bytes_used = ts_db_res_int(r, 0, 4, 0);
out:
    ts_db_res_free(r);
    return rc;
}

#define OBJ_COLS "ts, size, etag, content_type, meta, delete_at, blob, kind"

static void fill_row(struct ts_pool *pool, const struct ts_db_res *r, int i, int c0, struct ts_object_row *o)
{
    memset(o, 0, sizeof(*o));
    o->ts = atof(ts_db_res_get(r, i, c0));
    o->size = ts_db_res_int(r, i, c0 + 1, 0);
    /* without a pool the strings point into r, which must outlive o */
    o->etag = pool ? ts_pool_strdup(pool, ts_db_res_get(r, i, c0 + 2)) : ts_db_res_get(r, i, c0 + 2);
    o->content_type = pool ? ts_pool_strdup(pool, ts_db_res_get(r, i, c0 + 3)) : ts_db_res_get(r, i, c0 + 3);
    o->meta = pool ? pool_json(pool, ts_db_res_get(r, i, c0 + 4)) : NULL;
    o->delete_at = ts_db_res_int(r, i, c0 + 5, 0);
    snprintf(o->blob, sizeof(o->blob), "%s", ts_db_res_get(r, i, c0 + 6) ? ts_db_res_get(r, i, c0 + 6) : "");
    o->kind = (int)ts_db_res_int(r, i, c0 + 7, 0);
}

struct row_get {
    struct ts_pool *pool;
    struct ts_object_row *o;
};

static int64_t cell_int(const char *s)
{
    int64_t v;
    return s && ts_parse_int64(s, &v) == 0 ? v : 0;
}

/* fill_row for one row of OBJ_COLS as ts_db_each hands it over (copied into the pool). */
static int row_get_cb(void *ctx, const char *const *c, const size_t *len, int ncols)
{
    struct row_get *g = ctx;
    struct ts_object_row *o = g->o;
    if (ncols < 8) return 0;
    memset(o, 0, sizeof(*o));
    o->ts = c[0] ? atof(c[0]) : 0;
    o->size = cell_int(c[1]);
    o->etag = ts_pool_strndup(g->pool, c[2] ? c[2] : "", c[2] ? len[2] : 0);
    o->content_type = ts_pool_strndup(g->pool, c[3] ? c[3] : "", c[3] ? len[3] : 0);
    o->meta = pool_json(g->pool, c[4]);
    o->delete_at = cell_int(c[5]);
    snprintf(o->blob, sizeof(o->blob), "%s", c[6] ? c[6] : "");
    o->kind = (int)cell_int(c[7]);
    return 1;
}

int ts_object_db_object(struct ts_object_svc *svc, struct ts_pool *pool, const char *acct, const char *cont,
                        const char *name, struct ts_object_row *out, struct ts_err *err)
{
    /* one indexed SELECT whose cells go straight into the pool (no result set) */
    struct row_get g = {pool, out};
    int rc = ts_db_each(svc->db, "SELECT " OBJ_COLS " FROM objects WHERE account = ? AND container = ? AND name = ?",
                        TS_DB_ARGS(TS_DB_S(acct), TS_DB_S(cont), TS_DB_S(name)), row_get_cb, &g, err);
    if (rc < 0) return rc;
    if (rc == 0) return ts_err_set_full(err, TS_ENOTFOUND, 404, NULL, "%s", "");
    if (out->delete_at && (double)out->delete_at <= ts_now()) {
        ts_object_db_delete(svc, acct, cont, name, false, NULL);
        return ts_err_set_full(err, TS_ENOTFOUND, 404, NULL, "%s", "");
    }
    return 0;
}

static int counters(struct ts_db_conn *tx, const char *acct, const char *cont, int64_t dcount, int64_t dbytes,
                    struct ts_err *err)
{
    return ts_db_tx_exec(tx,
                         "UPDATE containers SET object_count = object_count + ?, bytes_used = bytes_used + ?"
                         " WHERE account = ? AND name = ?",
                         TS_DB_ARGS(TS_DB_I(dcount), TS_DB_I(dbytes), TS_DB_S(acct), TS_DB_S(cont)), NULL, err);
}

static int insert_row(struct ts_db_conn *tx, const char *acct, const char *cont, const char *name,
                      const struct ts_object_row *o, const char *meta_text, struct ts_err *err)
{
    return ts_db_tx_exec(
        tx,
        "INSERT INTO objects (account, container, name, ts, size, etag, content_type, meta, delete_at, blob, kind)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account, container, name) DO UPDATE SET"
        " ts = excluded.ts, size = excluded.size, etag = excluded.etag, content_type = excluded.content_type,"
        " meta = excluded.meta, delete_at = excluded.delete_at, blob = excluded.blob, kind = excluded.kind",
        TS_DB_ARGS(TS_DB_S(acct), TS_DB_S(cont), TS_DB_S(name), TS_DB_D(o->ts), TS_DB_I(o->size), TS_DB_S(o->etag),
                   TS_DB_S(o->content_type), TS_DB_S(meta_text), o->delete_at ? TS_DB_I(o->delete_at) : TS_DB_NULL,
                   TS_DB_S(o->blob), TS_DB_I(o->kind)),
        NULL, err);
}

/* The versions container named by the container's metadata, or NULL; *history set for
 * X-History-Location. */
static char *versions_of(struct ts_db_conn *tx, const char *acct, const char *cont, bool *history)
{
    struct ts_db_res *r = NULL;
    char *out = NULL;
    *history = false;
    if (ts_db_tx_exec(tx, "SELECT meta FROM containers WHERE account = ? AND name = ?",
                      TS_DB_ARGS(TS_DB_S(acct), TS_DB_S(cont)), &r, NULL) < 0 || r->nrows == 0)
        goto out;
    json_t *m = json_loads(ts_db_res_get(r, 0, 0), 0, NULL);
    const char *v = json_string_value(json_object_get(m, "X-Versions-Location"));
    if (!v || !*v) {
        v = json_string_value(json_object_get(m, "X-History-Location"));
        if (v && *v) *history = true;
    }
    if (v && *v) out = ts_strdup(v);
    json_decref(m);
out:
    ts_db_res_free(r);
    return out;
}

static bool container_exists(struct ts_db_conn *tx, const char *acct, const char *cont)
{
    struct ts_db_res *r = NULL;
    bool ok = ts_db_tx_exec(tx, "SELECT 1 FROM containers WHERE account = ? AND name = ?",
                            TS_DB_ARGS(TS_DB_S(acct), TS_DB_S(cont)), &r, NULL) == 0 &&
              r->nrows > 0;
    ts_db_res_free(r);
    return ok;
}

static char *version_name(const char *name, double ts)
{
    char t[32];
    ts_object_ts_text(ts, t);
    return ts_asprintf("%03zx%s/%s", strlen(name), name, t);
}

/* Moves the row (acct, cont, name) as read in r to (acct, vcont, vname) within tx. */
static int move_row(struct ts_db_conn *tx, const char *acct, const char *cont, const char *name, const char *vcont,
                    const char *vname, struct ts_err *err)
{
    struct ts_db_res *r = NULL;
    int rc = ts_db_tx_exec(tx, "SELECT " OBJ_COLS " FROM objects WHERE account = ? AND container = ? AND name = ?",
                           TS_DB_ARGS(TS_DB_S(acct), TS_DB_S(cont), TS_DB_S(name)), &r, err);
    if (rc < 0 || r->nrows == 0) goto out;
    struct ts_object_row o;
    fill_row(NULL, r, 0, 0, &o);
    rc = insert_row(tx, acct, vcont, vname, &o, ts_db_res_get(r, 0, 4), err);
    if (rc < 0) goto out;
    rc = counters(tx, acct, vcont, 1, o.size, err);
    if (rc < 0) goto out;
    rc = ts_db_tx_exec(tx, "DELETE FROM objects WHERE account = ? AND container = ? AND name = ?",
                       TS_DB_ARGS(TS_DB_S(acct), TS_DB_S(cont), TS_DB_S(name)), NULL, err);
    if (rc < 0) goto out;
    rc = counters(tx, acct, cont, -1, -o.size, err);
out:
    ts_db_res_free(r);
    return rc;
}

int ts_object_db_commit(struct ts_object_svc *svc, const char *acct, const char *cont, const char *name,
                        const struct ts_object_row *row, bool use_versions, bool *applied, struct ts_err *err)
{
    struct ts_db_conn *tx = NULL;
    struct ts_db_res *r = NULL;
    char *meta_text = json_dumps(row->meta ? row->meta : json_object(), JSON_COMPACT);
    char *vcont = NULL, *vname = NULL, *old_blob = NULL;
    bool done = false;
    int rc = ts_db_begin(svc->db, &tx, err);
    if (rc < 0) goto out;
    if (!container_exists(tx, acct, cont)) {
        rc = ts_err_set_full(err, TS_ENOTFOUND, 404, NULL, "%s", "");
        goto out;
    }
    rc = ts_db_tx_exec(tx, "SELECT ts, size, blob, delete_at FROM objects WHERE account = ? AND container = ? AND name = ?",
                       TS_DB_ARGS(TS_DB_S(acct), TS_DB_S(cont), TS_DB_S(name)), &r, err);
    if (rc < 0) goto out;
    bool exists = r->nrows > 0;
    int64_t old_size = exists ? ts_db_res_int(r, 0, 1, 0) : 0;
    if (exists && atof(ts_db_res_get(r, 0, 0)) > row->ts) {
        /* a newer write already landed: ours loses, as in Swift */
        ts_db_rollback(tx);
        tx = NULL;
        goto out;
    }
    bool live = exists && (ts_db_res_int(r, 0, 3, 0) == 0 || (double)ts_db_res_int(r, 0, 3, 0) > ts_now());
    if (exists) old_blob = ts_strdup(ts_db_res_get(r, 0, 2));
    bool history = false;
    if (use_versions && live) vcont = versions_of(tx, acct, cont, &history);
    if (vcont && strcmp(vcont, cont) != 0 && container_exists(tx, acct, vcont)) {
        vname = version_name(name, atof(ts_db_res_get(r, 0, 0)));
        rc = move_row(tx, acct, cont, name, vcont, vname, err);
        if (rc < 0) goto out;
        free(old_blob);
        old_blob = NULL; /* the version row owns it now */
        exists = false;
        old_size = 0;
    }
    rc = insert_row(tx, acct, cont, name, row, meta_text, err);
    if (rc < 0) goto out;
    rc = counters(tx, acct, cont, exists ? 0 : 1, row->size - old_size, err);
    if (rc < 0) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc < 0) goto out;
    done = true;
    if (old_blob && strcmp(old_blob, row->blob) != 0) ts_object_remove_later(svc, old_blob);
    ts_object_usage_changed(svc, acct);
out:
    if (tx) ts_db_rollback(tx);
    if (!done) svc->store->ops->remove(svc->store, row->blob);
    if (applied) *applied = done;
    ts_db_res_free(r);
    free(meta_text);
    free(vcont);
    free(vname);
    free(old_blob);
    return rc;
}

int ts_object_db_delete(struct ts_object_svc *svc, const char *acct, const char *cont, const char *name,
                        bool use_versions, struct ts_err *err)
{
    struct ts_db_conn *tx = NULL;
    struct ts_db_res *r = NULL, *v = NULL;
    char *vcont = NULL, *blob = NULL, *prefix = NULL, *upper = NULL, *vname = NULL;
    int rc = ts_db_begin(svc->db, &tx, err);
    if (rc < 0) goto out;
    rc = ts_db_tx_exec(tx, "SELECT ts, size, blob, delete_at FROM objects WHERE account = ? AND container = ? AND name = ?",
                       TS_DB_ARGS(TS_DB_S(acct), TS_DB_S(cont), TS_DB_S(name)), &r, err);
    if (rc < 0) goto out;
    if (r->nrows == 0) {
        rc = ts_err_set_full(err, TS_ENOTFOUND, 404, NULL, "%s", "");
        goto out;
    }
    bool expired = ts_db_res_int(r, 0, 3, 0) != 0 && (double)ts_db_res_int(r, 0, 3, 0) <= ts_now();
    bool history = false;
    if (use_versions && !expired) vcont = versions_of(tx, acct, cont, &history);
    if (vcont && (strcmp(vcont, cont) == 0 || !container_exists(tx, acct, vcont))) {
        free(vcont);
        vcont = NULL;
    }
    if (vcont && history) {
        vname = version_name(name, atof(ts_db_res_get(r, 0, 0)));
        rc = move_row(tx, acct, cont, name, vcont, vname, err);
        if (rc < 0) goto out;
    } else {
        blob = ts_strdup(ts_db_res_get(r, 0, 2));
        rc = ts_db_tx_exec(tx, "DELETE FROM objects WHERE account = ? AND container = ? AND name = ?",
                           TS_DB_ARGS(TS_DB_S(acct), TS_DB_S(cont), TS_DB_S(name)), NULL, err);
        if (rc < 0) goto out;
        rc = counters(tx, acct, cont, -1, -ts_db_res_int(r, 0, 1, 0), err);
        if (rc < 0) goto out;
        if (vcont) {
            /* stack mode: the newest archived version comes back */
            prefix = ts_asprintf("%03zx%s/", strlen(name), name);
            upper = ts_asprintf("%03zx%s0", strlen(name), name);
            rc = ts_db_tx_exec(tx,
                               "SELECT name FROM objects WHERE account = ? AND container = ? AND name > ? AND name < ?"
                               " ORDER BY name DESC LIMIT 1",
                               TS_DB_ARGS(TS_DB_S(acct), TS_DB_S(vcont), TS_DB_S(prefix), TS_DB_S(upper)), &v, err);
            if (rc < 0) goto out;
            if (v->nrows > 0) {
                rc = move_row(tx, acct, vcont, ts_db_res_get(v, 0, 0), cont, name, err);
                if (rc < 0) goto out;
            }
        }
    }
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc < 0) goto out;
    if (blob) ts_object_remove_later(svc, blob);
    ts_object_usage_changed(svc, acct);
out:
    if (tx) ts_db_rollback(tx);
    ts_db_res_free(r);
    ts_db_res_free(v);
    free(vcont);
    free(blob);
    free(prefix);
    free(upper);
    free(vname);
    return rc;
}

int ts_object_db_reap(struct ts_object_svc *svc, int max)
{
    struct ts_db_res *r = NULL;
    int n = 0;
    if (ts_db_exec(svc->db,
                   "SELECT account, container, name FROM objects WHERE delete_at IS NOT NULL AND delete_at <= ? LIMIT ?",
                   TS_DB_ARGS(TS_DB_I((int64_t)ts_now()), TS_DB_I(max)), &r, NULL) < 0)
        goto out;
    for (int i = 0; i < r->nrows; i++)
        if (ts_object_db_delete(svc, ts_db_res_get(r, i, 0), ts_db_res_get(r, i, 1), ts_db_res_get(r, i, 2), false,
                                NULL) == 0)
            n++;
out:
    ts_db_res_free(r);
    return n;
}

static bool blob_referenced(void *ctx, const char *id)
{
    struct ts_object_svc *svc = ctx;
    struct ts_db_res *r = NULL;
    /* on a database error keep the blob: losing data is worse than a stray file */
    bool yes = true;
    if (ts_db_exec(svc->db, "SELECT 1 FROM objects WHERE blob = ? LIMIT 1", TS_DB_ARGS(TS_DB_S(id)), &r, NULL) == 0)
        yes = r->nrows > 0;
    ts_db_res_free(r);
    return yes;
}

int ts_object_db_reconcile(struct ts_object_svc *svc)
{
    int removed = svc->store->ops->reconcile(svc->store, blob_referenced, svc);
    /* rows whose blob vanished (lost disk, manual removal) are dropped from the listing */
    struct ts_db_res *r = NULL;
    int dropped = 0;
    if (ts_db_exec(svc->db, "SELECT account, container, name, blob FROM objects", TS_DB_NOARGS, &r, NULL) == 0) {
        for (int i = 0; i < r->nrows; i++) {
            struct ts_object_blob *b = NULL;
            struct ts_err e;
            int rc = svc->store->ops->open(svc->store, ts_db_res_get(r, i, 3), &b, NULL, &e);
            if (rc == 0) {
                svc->store->ops->close(b);
            } else if (rc == -TS_ENOTFOUND) {
                ts_object_db_delete(svc, ts_db_res_get(r, i, 0), ts_db_res_get(r, i, 1), ts_db_res_get(r, i, 2),
                                    false, NULL);
                dropped++;
            }
        }
    }
    ts_db_res_free(r);
    if (removed || dropped)
        ts_info(MOD, "reconcile: removed %d unreferenced blobs, dropped %d rows without data", removed, dropped);
    return 0;
}
