/*
 * ts_db.c: the backend-neutral half of ts_db. Parses the URL and picks the backend,
 * keeps the connection pool (a thread borrows one connection per statement or per
 * transaction; up to TS_DB_POOL_MAX are opened lazily, waiters sleep on a condvar),
 * builds and reads result sets, and runs numbered migrations so that racing processes
 * apply each version exactly once.
 */
#include "db/ts_db_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- results --------------------------------------------------------------------- */

struct ts_db_res *ts_db_res_new(int ncols)
{
    struct ts_db_res *r = ts_calloc(1, sizeof(*r));
    r->ncols = ncols;
    r->cols = ts_calloc(ncols > 0 ? (size_t)ncols : 1, sizeof(char *));
    return r;
}

void ts_db_res_set_col(struct ts_db_res *r, int col, const char *name)
{
    free(r->cols[col]);
    r->cols[col] = ts_strdup(name ? name : "");
}

void ts_db_res_add_row(struct ts_db_res *r, const char *const *cells, const size_t *lens)
{
    size_t n = (size_t)r->nrows;
    /* capacity is the next power of two of nrows: grow when nrows is one */
    if (n == 0 || (n & (n - 1)) == 0) {
        size_t cap = n ? n * 2 : 1;
        r->cells = ts_realloc(r->cells, cap * (size_t)(r->ncols > 0 ? r->ncols : 1) * sizeof(char *));
    }
    for (int c = 0; c < r->ncols; c++)
        r->cells[n * (size_t)r->ncols + (size_t)c] = cells[c] ? ts_strndup(cells[c], lens[c]) : NULL;
    r->nrows++;
}

const char *ts_db_res_get(const struct ts_db_res *r, int row, int col)
{
    if (!r || row < 0 || col < 0 || row >= r->nrows || col >= r->ncols) return NULL;
    return r->cells[(size_t)row * (size_t)r->ncols + (size_t)col];
}

const char *ts_db_res_getn(const struct ts_db_res *r, int row, const char *col)
{
    if (!r || !col) return NULL;
    for (int c = 0; c < r->ncols; c++)
        if (strcmp(r->cols[c], col) == 0) return ts_db_res_get(r, row, c);
    return NULL;
}

int64_t ts_db_res_int(const struct ts_db_res *r, int row, int col, int64_t def)
{
    int64_t v;
    const char *s = ts_db_res_get(r, row, col);
    if (!s || ts_parse_int64(s, &v) < 0) return def;
    return v;
}

void ts_db_res_free(struct ts_db_res *r)
{
    if (!r) return;
    size_t n = (size_t)r->nrows * (size_t)r->ncols;
    for (size_t i = 0; i < n; i++) free(r->cells[i]);
    for (int c = 0; c < r->ncols; c++) free(r->cols[c]);
    free(r->cells);
    free(r->cols);
    free(r);
}

void ts_db_log_failure(const char *backend, const char *sql, const char *msg)
{
    ts_error("db", "%s: %s [sql: %.400s]", backend, msg, sql ? sql : "");
}

/* ---- open / close ---------------------------------------------------------------- */

int ts_db_open(const char *url, struct ts_db **out, struct ts_err *err)
{
    int rc;
    struct ts_db *db = NULL;
    if (!url || !out) return ts_err_set(err, TS_EINVAL, "database url missing");
    *out = NULL;

    db = ts_calloc(1, sizeof(*db));
    pthread_mutex_init(&db->pool_mu, NULL);
    pthread_cond_init(&db->pool_cv, NULL);
    pthread_mutex_init(&db->write_mu, NULL);
    pthread_cond_init(&db->write_cv, NULL);
    db->pool_max = TS_DB_POOL_MAX;

    if (ts_startswith(url, "sqlite://")) {
        const char *path = url + strlen("sqlite://");
        if (!*path) {
            rc = ts_err_set(err, TS_EINVAL, "sqlite url without a path: %s", url);
            goto out;
        }
        db->be = &ts_db_sqlite_backend;
        db->target = ts_strdup(path);
        if (strcmp(path, ":memory:") == 0) {
            /* every connection to :memory: is its own database: keep exactly one */
            db->memory = true;
            db->pool_max = 1;
        } else {
            char *slash = strrchr(db->target, '/');
            if (slash && slash != db->target) {
                *slash = '\0';
                ts_mkdirs(db->target, 0750); /* best effort; the open reports failure */
                *slash = '/';
            }
        }
    } else if (ts_startswith(url, "postgresql://") || ts_startswith(url, "postgres://")) {
        db->be = &ts_db_pg_backend;
        db->target = ts_strdup(url);
    } else {
        rc = ts_err_set(err, TS_EINVAL, "unsupported database url (want sqlite:// or postgresql://)");
        goto out;
    }

    /* Open one connection now so that a bad URL fails here, not on first use. */
    struct ts_db_conn *c = ts_calloc(1, sizeof(*c));
    c->db = db;
    rc = db->be->conn_open(db, c, true, err);
    if (rc < 0) {
        free(c);
        goto out;
    }
    db->all[0] = c;
    db->nopen = 1;
    db->free_list = c;
    *out = db;
    return 0;
out:
    ts_db_close(db);
    return rc;
}

void ts_db_close(struct ts_db *db)
{
    if (!db) return;
    if (db->nborrowed)
        ts_warn("db", "closing a database with %d connection(s) still borrowed", db->nborrowed);
    for (int i = 0; i < TS_DB_POOL_MAX; i++) {
        if (!db->all[i]) continue;
        db->be->conn_close(db->all[i]);
        free(db->all[i]);
    }
    pthread_mutex_destroy(&db->pool_mu);
    pthread_cond_destroy(&db->pool_cv);
    pthread_mutex_destroy(&db->write_mu);
    pthread_cond_destroy(&db->write_cv);
    free(db->target);
    free(db);
}

bool ts_db_is_postgres(const struct ts_db *db)
{
    return db && db->be == &ts_db_pg_backend;
}

/* ---- pool ------------------------------------------------------------------------- */

static int borrow(struct ts_db *db, struct ts_db_conn **out, struct ts_err *err)
{
    pthread_t self = pthread_self();
    pthread_mutex_lock(&db->pool_mu);
    for (;;) {
        if (db->free_list) {
            struct ts_db_conn *c = db->free_list;
            db->free_list = c->next_free;
            c->next_free = NULL;
            c->owner = self;
            db->nborrowed++;
            pthread_mutex_unlock(&db->pool_mu);
            *out = c;
            return 0;
        }
        if (db->nopen < db->pool_max) {
            int slot = 0;
            while (db->all[slot]) slot++;
            struct ts_db_conn *c = ts_calloc(1, sizeof(*c));
            c->db = db;
            c->owner = self;
            db->all[slot] = c;  /* reserve the slot while opening unlocked */
            db->nopen++;
            db->nborrowed++;
            pthread_mutex_unlock(&db->pool_mu);
            int rc = db->be->conn_open(db, c, false, err);
            if (rc < 0) {
                pthread_mutex_lock(&db->pool_mu);
                db->all[slot] = NULL;
                db->nopen--;
                db->nborrowed--;
                pthread_cond_signal(&db->pool_cv);
                pthread_mutex_unlock(&db->pool_mu);
                free(c);
                return rc;
            }
            *out = c;
            return 0;
        }
        /* With one connection (:memory:) a thread that already holds it would wait on
         * itself forever. */
        if (db->pool_max == 1 && db->all[0] && pthread_equal(db->all[0]->owner, self)) {
            pthread_mutex_unlock(&db->pool_mu);
            return ts_err_set(err, TS_EIO, "database connection already held by this thread "
                                           "(use ts_db_tx_exec inside a transaction)");
        }
        pthread_cond_wait(&db->pool_cv, &db->pool_mu);
    }
}

static void give_back(struct ts_db_conn *c)
{
    struct ts_db *db = c->db;
    db->be->conn_release(c);
    if (c->holds_write) {
        c->holds_write = false;
        ts_db_write_unlock(db);
    }
    pthread_mutex_lock(&db->pool_mu);
    memset(&c->owner, 0, sizeof(c->owner));
    c->next_free = db->free_list;
    db->free_list = c;
    db->nborrowed--;
    pthread_cond_signal(&db->pool_cv);
    pthread_mutex_unlock(&db->pool_mu);
}

int ts_db_write_lock(struct ts_db *db, struct ts_err *err)
{
    pthread_t self = pthread_self();
    pthread_mutex_lock(&db->write_mu);
    if (db->write_held && pthread_equal(db->write_owner, self)) {
        pthread_mutex_unlock(&db->write_mu);
        return ts_err_set(err, TS_EIO, "this thread already holds a write transaction on this "
                                       "database (use ts_db_tx_exec inside it)");
    }
    while (db->write_held) pthread_cond_wait(&db->write_cv, &db->write_mu);
    db->write_held = true;
    db->write_owner = self;
    pthread_mutex_unlock(&db->write_mu);
    return 0;
}

void ts_db_write_unlock(struct ts_db *db)
{
    pthread_mutex_lock(&db->write_mu);
    db->write_held = false;
    pthread_cond_signal(&db->write_cv);
    pthread_mutex_unlock(&db->write_mu);
}

/* ---- statements and transactions ------------------------------------------------- */

static int check_args(const char *sql, const struct ts_db_val *args, int nargs, struct ts_db_res **res,
                      struct ts_err *err)
{
    if (res) *res = NULL;
    if (!sql) return ts_err_set(err, TS_EINVAL, "no SQL statement");
    if (nargs < 0 || (nargs > 0 && !args)) return ts_err_set(err, TS_EINVAL, "bad statement arguments");
    return 0;
}

int ts_db_exec(struct ts_db *db, const char *sql, const struct ts_db_val *args, int nargs,
               struct ts_db_res **res, struct ts_err *err)
{
    struct ts_db_conn *c;
    int rc = check_args(sql, args, nargs, res, err);
    if (rc < 0) return rc;
    if (!db) return ts_err_set(err, TS_EINVAL, "no database");
    rc = borrow(db, &c, err);
    if (rc < 0) return rc;
    rc = db->be->exec(c, sql, args, nargs, res, err);
    give_back(c);
    return rc;
}

int ts_db_each(struct ts_db *db, const char *sql, const struct ts_db_val *args, int nargs, ts_db_row_fn row,
               void *ctx, struct ts_err *err)
{
    struct ts_db_conn *c;
    struct ts_db_res *r = NULL;
    int rc = check_args(sql, args, nargs, NULL, err);
    if (rc < 0) return rc;
    if (!db || !row) return ts_err_set(err, TS_EINVAL, "no database or row callback");
    rc = borrow(db, &c, err);
    if (rc < 0) return rc;
    if (db->be->each) {
        rc = db->be->each(c, sql, args, nargs, row, ctx, err);
        give_back(c);
        return rc;
    }
    rc = db->be->exec(c, sql, args, nargs, &r, err);
    give_back(c);
    if (rc < 0) return rc;
    size_t *lens = ts_calloc(r->ncols > 0 ? (size_t)r->ncols : 1, sizeof(*lens));
    for (int i = 0; i < r->nrows && rc == 0; i++) {
        const char *const *cells = (const char *const *)&r->cells[(size_t)i * (size_t)r->ncols];
        for (int k = 0; k < r->ncols; k++) lens[k] = cells[k] ? strlen(cells[k]) : 0;
        rc = row(ctx, cells, lens, r->ncols);
    }
    free(lens);
    ts_db_res_free(r);
    return rc;
}

int ts_db_begin(struct ts_db *db, struct ts_db_conn **tx, struct ts_err *err)
{
    struct ts_db_conn *c;
    if (!db || !tx) return ts_err_set(err, TS_EINVAL, "bad transaction arguments");
    *tx = NULL;
    int rc = borrow(db, &c, err);
    if (rc < 0) return rc;
    /* Write transactions of one process queue here, in both backends (PostgreSQL then
     * also takes an advisory lock for other processes): a nested ts_db_begin on the same
     * thread is reported instead of deadlocking. */
    rc = ts_db_write_lock(db, err);
    if (rc < 0) {
        give_back(c);
        return rc;
    }
    c->holds_write = true;
    rc = db->be->begin(c, err);
    if (rc < 0) {
        give_back(c);
        return rc;
    }
    c->in_tx = true;
    c->tx_failed = false;
    *tx = c;
    return 0;
}

int ts_db_tx_exec(struct ts_db_conn *tx, const char *sql, const struct ts_db_val *args, int nargs,
                  struct ts_db_res **res, struct ts_err *err)
{
    int rc = check_args(sql, args, nargs, res, err);
    if (rc < 0) return rc;
    if (!tx || !tx->in_tx) return ts_err_set(err, TS_EINVAL, "not inside a transaction");
    /* PostgreSQL aborts a transaction at its first failed statement; SQLite would carry
     * on. Both behave like PostgreSQL here, so code tested on one works on the other. */
    if (tx->tx_failed)
        return ts_err_set(err, TS_EIO, "transaction aborted by an earlier error; roll it back");
    rc = tx->db->be->exec(tx, sql, args, nargs, res, err);
    if (rc < 0) tx->tx_failed = true;
    return rc;
}

int ts_db_commit(struct ts_db_conn *tx, struct ts_err *err)
{
    if (!tx || !tx->in_tx) return ts_err_set(err, TS_EINVAL, "not inside a transaction");
    int rc;
    if (tx->tx_failed) {
        tx->db->be->rollback(tx);
        rc = ts_err_set(err, TS_EIO, "transaction aborted by an earlier error, rolled back");
    } else {
        rc = tx->db->be->commit(tx, err);
    }
    tx->in_tx = false;
    give_back(tx);
    return rc;
}

void ts_db_rollback(struct ts_db_conn *tx)
{
    if (!tx || !tx->in_tx) return;
    tx->db->be->rollback(tx);
    tx->in_tx = false;
    give_back(tx);
}

/* ---- migrations ------------------------------------------------------------------ */

static int current_version(struct ts_db_conn *tx, int64_t *ver, struct ts_err *err)
{
    struct ts_db_res *r = NULL;
    int rc = ts_db_tx_exec(tx, "SELECT COALESCE(MAX(version), 0) FROM ts_schema_version", TS_DB_NOARGS,
                           &r, err);
    if (rc == 0) *ver = ts_db_res_int(r, 0, 0, 0);
    ts_db_res_free(r);
    return rc;
}

int ts_db_migrate(struct ts_db *db, const struct ts_db_migration *migs, size_t n, struct ts_err *err)
{
    struct ts_db_conn *tx = NULL;
    int64_t ver = 0;
    int rc;
    if (!db || (n && !migs)) return ts_err_set(err, TS_EINVAL, "bad migration arguments");
    for (size_t i = 0; i < n; i++) {
        if (migs[i].version <= 0 || !migs[i].sql || (i && migs[i].version <= migs[i - 1].version))
            return ts_err_set(err, TS_EINVAL, "migrations must have increasing positive versions");
    }

    /* Creating the version table is itself racy between processes (PostgreSQL can fail a
     * concurrent CREATE TABLE IF NOT EXISTS): do it in a write transaction, which is
     * serialised in both backends. */
    rc = ts_db_begin(db, &tx, err);
    if (rc < 0) return rc;
    rc = ts_db_tx_exec(tx, "CREATE TABLE IF NOT EXISTS ts_schema_version (version BIGINT NOT NULL)",
                       TS_DB_NOARGS, NULL, err);
    if (rc == 0) rc = current_version(tx, &ver, err);
    if (rc < 0) {
        ts_db_rollback(tx);
        return rc;
    }
    rc = ts_db_commit(tx, err);
    if (rc < 0) return rc;

    for (size_t i = 0; i < n; i++) {
        if (migs[i].version <= ver) continue;
        rc = ts_db_begin(db, &tx, err);
        if (rc < 0) return rc;
        /* re-check: another process may have applied it since we looked */
        rc = current_version(tx, &ver, err);
        if (rc < 0) goto fail;
        if (migs[i].version <= ver) {
            ts_db_rollback(tx);
            continue;
        }
        rc = db->be->exec_script(tx, migs[i].sql, err);
        if (rc < 0) {
            ts_error("db", "migration %d failed", migs[i].version);
            goto fail;
        }
        rc = ts_db_tx_exec(tx, "INSERT INTO ts_schema_version (version) VALUES (?)",
                           TS_DB_ARGS(TS_DB_I(migs[i].version)), NULL, err);
        if (rc < 0) goto fail;
        rc = ts_db_commit(tx, err);
        if (rc < 0) return rc;
        ver = migs[i].version;
        ts_info("db", "applied migration %d", migs[i].version);
    }
    return 0;
fail:
    ts_db_rollback(tx);
    return rc;
}
