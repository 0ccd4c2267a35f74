/*
 * ts_db.h: one SQL interface over SQLite (default; WAL, busy timeout, writes serialised
 * in-process so concurrent writers never see "database is locked") and PostgreSQL (libpq).
 *
 * SQL is written once in the common dialect: '?' placeholders (rewritten to $n for
 * PostgreSQL), TEXT/BIGINT/DOUBLE PRECISION/BLOB-free schemas, ON CONFLICT ... DO ...,
 * RETURNING. Values travel as typed ts_db_val; results come back as text cells.
 *
 * Threads: a ts_db is shared by all threads; each thread borrows a connection for a
 * statement or a transaction.
 */
#ifndef TS_DB_H
#define TS_DB_H

#include <stdbool.h>
#include <stdint.h>
#include "core/ts_core.h"

struct ts_db;
struct ts_db_conn;

enum ts_db_type { TS_DB_T_NULL, TS_DB_T_INT, TS_DB_T_DOUBLE, TS_DB_T_TEXT };
struct ts_db_val {
    enum ts_db_type type;
    int64_t i;
    double d;
    const char *s;      /* TEXT; NULL means SQL NULL */
};
#define TS_DB_NULL ((struct ts_db_val){.type = TS_DB_T_NULL})
#define TS_DB_I(v) ((struct ts_db_val){.type = TS_DB_T_INT, .i = (int64_t)(v)})
#define TS_DB_D(v) ((struct ts_db_val){.type = TS_DB_T_DOUBLE, .d = (double)(v)})
/* Text; a NULL pointer binds SQL NULL. */
#define TS_DB_S(v) ((struct ts_db_val){.type = TS_DB_T_TEXT, .s = (v)})
#define TS_DB_B(v) TS_DB_I((v) ? 1 : 0)

/* A result: rows x cols of text (NULL for SQL NULL). */
struct ts_db_res {
    int nrows, ncols;
    char **cols;        /* column names */
    char **cells;       /* nrows*ncols */
    int64_t changes;    /* rows changed by INSERT/UPDATE/DELETE */
};
const char *ts_db_res_get(const struct ts_db_res *r, int row, int col);
/* By column name; NULL if absent. */
const char *ts_db_res_getn(const struct ts_db_res *r, int row, const char *col);
int64_t ts_db_res_int(const struct ts_db_res *r, int row, int col, int64_t def);
void ts_db_res_free(struct ts_db_res *r);     /* NULL is a no-op; frees r too */

/* url: "sqlite:///abs/path.db", "sqlite://:memory:", or "postgresql://user@host:port/db".
 * Creates the database file (SQLite) if missing. */
int ts_db_open(const char *url, struct ts_db **out, struct ts_err *err);
void ts_db_close(struct ts_db *db);           /* NULL is a no-op */
bool ts_db_is_postgres(const struct ts_db *db);

/* Numbered migrations, applied in order inside one transaction each; the applied version
 * is kept in table ts_schema_version. Each entry may hold several ';'-separated statements. */
struct ts_db_migration { int version; const char *sql; };
int ts_db_migrate(struct ts_db *db, const struct ts_db_migration *migs, size_t n, struct ts_err *err);

/* One-shot statements on a borrowed connection (autocommit). *res may be NULL if no rows
 * are wanted. Unique-constraint violations return -TS_ECONFLICT; other errors -TS_EIO. */
int ts_db_exec(struct ts_db *db, const char *sql, const struct ts_db_val *args, int nargs,
               struct ts_db_res **res, struct ts_err *err);
/* Streams the rows of a read-only statement: row(ctx, cells, lens, ncols) runs once per row
 * with the row's cells as text (NULL for SQL NULL, lens[i] their byte lengths), valid only
 * during the call; nothing is copied. A non-zero return from row stops the walk and is
 * returned. Costs no allocation per row on SQLite (PostgreSQL walks a fetched result).
 * A statement that writes is refused (-TS_EINVAL). Any thread; row must not use db. */
typedef int (*ts_db_row_fn)(void *ctx, const char *const *cells, const size_t *lens, int ncols);
int ts_db_each(struct ts_db *db, const char *sql, const struct ts_db_val *args, int nargs, ts_db_row_fn row,
               void *ctx, struct ts_err *err);

/* Convenience: variadic args terminated by nothing: pass count. */
#define TS_DB_ARGS(...) ((const struct ts_db_val[]){__VA_ARGS__}), \
    (int)(sizeof((const struct ts_db_val[]){__VA_ARGS__}) / sizeof(struct ts_db_val))
#define TS_DB_NOARGS NULL, 0

/* Transactions: begin borrows a connection and starts a write transaction (SQLite BEGIN
 * IMMEDIATE under the in-process write lock; PostgreSQL BEGIN). Every statement inside
 * goes through ts_db_tx_exec. commit/rollback release the connection. */
int ts_db_begin(struct ts_db *db, struct ts_db_conn **tx, struct ts_err *err);
int ts_db_tx_exec(struct ts_db_conn *tx, const char *sql, const struct ts_db_val *args, int nargs,
                  struct ts_db_res **res, struct ts_err *err);
int ts_db_commit(struct ts_db_conn *tx, struct ts_err *err);
void ts_db_rollback(struct ts_db_conn *tx);   /* NULL is a no-op */

#endif
