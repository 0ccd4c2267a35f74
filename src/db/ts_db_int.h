/*
 * ts_db_int.h: private to src/db. The shared handle (connection pool, write lock) and the
 * small vtable each backend (ts_db_sqlite.c, ts_db_pg.c) fills in; ts_db.c holds the
 * public entry points, the pool and the migration runner on top of it.
 */
#ifndef TS_DB_INT_H
#define TS_DB_INT_H

#include <pthread.h>
#include "db/ts_db.h"

#define TS_DB_POOL_MAX 16

struct ts_db_backend;

struct ts_db_conn {
    struct ts_db *db;
    struct ts_db_conn *next_free;
    pthread_t owner;            /* valid while borrowed */
    bool in_tx;                 /* between ts_db_begin and commit/rollback */
    bool tx_failed;             /* a statement inside the transaction failed */
    bool holds_write;           /* SQLite: this conn holds db->write_mu */
    void *handle;               /* sqlite3 * or PGconn * */
    void *priv;                 /* backend state (statement cache, ...) */
};

struct ts_db {
    const struct ts_db_backend *be;
    char *target;               /* SQLite file path or libpq conninfo/URI */
    bool memory;                /* SQLite :memory:, one connection only */
    int pool_max;

    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cv;
    struct ts_db_conn *free_list;
    struct ts_db_conn *all[TS_DB_POOL_MAX];
    int nopen;                  /* connections opened or being opened */
    int nborrowed;

    /* SQLite: serialises writers in this process. A lock of our own rather than a bare
     * mutex: it may be released by another thread than the one that took it (a
     * transaction handed over), and a thread that asks for it twice gets an error
     * instead of hanging. */
    pthread_mutex_t write_mu;
    pthread_cond_t write_cv;
    bool write_held;
    pthread_t write_owner;
};

struct ts_db_backend {
    const char *name;
    /* Opens c->handle (and c->priv). first: the first connection of this ts_db. */
    int (*conn_open)(struct ts_db *db, struct ts_db_conn *c, bool first, struct ts_err *err);
    void (*conn_close)(struct ts_db_conn *c);
    /* Called when a connection goes back to the pool: must leave it idle, outside any
     * transaction. */
    void (*conn_release)(struct ts_db_conn *c);
    /* One statement; autocommit unless c->in_tx. */
    int (*exec)(struct ts_db_conn *c, const char *sql, const struct ts_db_val *args, int nargs,
                struct ts_db_res **res, struct ts_err *err);
    /* Several ';'-separated statements without parameters (migrations); inside a tx. */
    int (*exec_script)(struct ts_db_conn *c, const char *sql, struct ts_err *err);
    int (*begin)(struct ts_db_conn *c, struct ts_err *err);
    int (*commit)(struct ts_db_conn *c, struct ts_err *err);
    void (*rollback)(struct ts_db_conn *c);
    /* Optional: one read-only statement, rows handed to row() without copies (ts_db_each).
     * NULL: ts_db.c runs exec and walks the result. */
    int (*each)(struct ts_db_conn *c, const char *sql, const struct ts_db_val *args, int nargs, ts_db_row_fn row,
                void *ctx, struct ts_err *err);
};

extern const struct ts_db_backend ts_db_sqlite_backend;
extern const struct ts_db_backend ts_db_pg_backend;

/* Result building, shared by the backends. */
struct ts_db_res *ts_db_res_new(int ncols);
void ts_db_res_set_col(struct ts_db_res *r, int col, const char *name);
/* Appends a row; cells[ncols] are copied (NULL stays NULL). */
void ts_db_res_add_row(struct ts_db_res *r, const char *const *cells, const size_t *lens);

/* The in-process write lock: -TS_EIO (with err) if this thread already holds it. */
int ts_db_write_lock(struct ts_db *db, struct ts_err *err);
void ts_db_write_unlock(struct ts_db *db);

/* Logs a failed statement (the SQL is logged, never the argument values). */
void ts_db_log_failure(const char *backend, const char *sql, const char *msg);

#endif
