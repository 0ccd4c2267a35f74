/*
 * ts_db_sqlite.c: the SQLite backend of ts_db. Each pooled connection is opened NOMUTEX
 * (only one thread uses it at a time) with WAL, synchronous=NORMAL, foreign keys and a
 * 30 s busy timeout. Writers are serialised in-process by the ts_db write lock: a transaction
 * holds it from BEGIN IMMEDIATE to COMMIT, an autocommit statement that writes holds it
 * while it steps. So threads of one process never race for SQLite's write lock ("database
 * is locked"); readers run in parallel under WAL. Other processes are covered by the busy
 * timeout plus a retry of autocommit statements that still come back SQLITE_BUSY.
 * Prepared statements are cached per connection (a small LRU keyed by SQL text).
 */
#include "db/ts_db_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sqlite3.h>

#define STMT_CACHE_MAX 32
#define BUSY_RETRIES 10

struct stmt_entry {
    char *sql;
    uint64_t hash;
    uint64_t last_use;
    sqlite3_stmt *st;
};

struct sq_priv {
    struct stmt_entry cache[STMT_CACHE_MAX];
    int ncache;
    uint64_t tick;
};

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int sq_fail(struct ts_db_conn *c, int sqrc, const char *sql, struct ts_err *err)
{
    sqlite3 *sq = c->handle;
    const char *msg = sqlite3_errmsg(sq);
    int ext = sqlite3_extended_errcode(sq);
    if (sqrc != ext && (sqrc & 0xff) == (ext & 0xff)) sqrc = ext;
    if (sqrc == SQLITE_CONSTRAINT_UNIQUE || sqrc == SQLITE_CONSTRAINT_PRIMARYKEY)
        return ts_err_set(err, TS_ECONFLICT, "%s", msg);
    ts_db_log_failure("sqlite", sql, msg);
    return ts_err_set(err, TS_EIO, "database error: %s", msg);
}

/* Runs a statement without arguments or rows (PRAGMA, BEGIN, COMMIT, ...). */
static int simple(struct ts_db_conn *c, const char *sql, struct ts_err *err)
{
    for (int attempt = 0;; attempt++) {
        int rc = sqlite3_exec(c->handle, sql, NULL, NULL, NULL);
        if (rc == SQLITE_OK) return 0;
        if ((rc & 0xff) == SQLITE_BUSY && attempt < BUSY_RETRIES) {
            usleep(10000u << (attempt < 5 ? attempt : 5));
            continue;
        }
        return sq_fail(c, rc, sql, err);
    }
}

static int sq_open(struct ts_db *db, struct ts_db_conn *c, bool first, struct ts_err *err)
{
    sqlite3 *sq = NULL;
    int rc = sqlite3_open_v2(db->target, &sq,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        int r = ts_err_set(err, TS_EIO, "cannot open sqlite database %s: %s", db->target,
                           sq ? sqlite3_errmsg(sq) : sqlite3_errstr(rc));
        ts_error("db", "%s", err ? err->msg : "cannot open sqlite database");
        sqlite3_close(sq);
        return r;
    }
    sqlite3_extended_result_codes(sq, 1);
    c->handle = sq;
    c->priv = ts_calloc(1, sizeof(struct sq_priv));
    /* busy_timeout first, so that switching to WAL waits for other processes */
    rc = simple(c, "PRAGMA busy_timeout=30000", err);
    if (rc == 0 && first && !db->memory) rc = simple(c, "PRAGMA journal_mode=WAL", err);
    if (rc == 0) rc = simple(c, "PRAGMA synchronous=NORMAL", err);
    if (rc == 0) rc = simple(c, "PRAGMA foreign_keys=ON", err);
    if (rc < 0) {
        sqlite3_close(sq);
        free(c->priv);
        c->handle = c->priv = NULL;
    }
    return rc;
}

static void sq_close(struct ts_db_conn *c)
{
    struct sq_priv *p = c->priv;
    if (p) {
        for (int i = 0; i < p->ncache; i++) {
            sqlite3_finalize(p->cache[i].st);
            free(p->cache[i].sql);
        }
        free(p);
    }
    sqlite3_close(c->handle);
    c->handle = c->priv = NULL;
}

static void sq_release(struct ts_db_conn *c)
{
    /* a transaction left open (cannot happen through the API) must not leak to the next
     * borrower */
    if (!sqlite3_get_autocommit(c->handle)) sqlite3_exec(c->handle, "ROLLBACK", NULL, NULL, NULL);
}

/* Finds or prepares sql on this connection. */
static int get_stmt(struct ts_db_conn *c, const char *sql, sqlite3_stmt **out, struct ts_err *err)
{
    struct sq_priv *p = c->priv;
    uint64_t h = fnv1a(sql);
    for (int i = 0; i < p->ncache; i++) {
        if (p->cache[i].hash == h && strcmp(p->cache[i].sql, sql) == 0) {
            p->cache[i].last_use = ++p->tick;
            *out = p->cache[i].st;
            return 0;
        }
    }
    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    int rc = sqlite3_prepare_v3(c->handle, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, &tail);
    if (rc != SQLITE_OK) return sq_fail(c, rc, sql, err);
    if (!st) return ts_err_set(err, TS_EINVAL, "empty SQL statement");
    if (tail && *tail) {
        /* what follows may only be whitespace, ';' or comments: it prepares to nothing */
        sqlite3_stmt *more = NULL;
        int trc = sqlite3_prepare_v2(c->handle, tail, -1, &more, NULL);
        if (trc != SQLITE_OK || more) {
            sqlite3_finalize(more);
            sqlite3_finalize(st);
            return ts_err_set(err, TS_EINVAL, "one statement per call expected");
        }
    }
    int slot = p->ncache;
    if (slot == STMT_CACHE_MAX) {
        slot = 0;
        for (int i = 1; i < p->ncache; i++)
            if (p->cache[i].last_use < p->cache[slot].last_use) slot = i;
        sqlite3_finalize(p->cache[slot].st);
        free(p->cache[slot].sql);
    } else {
        p->ncache++;
    }
    p->cache[slot] = (struct stmt_entry){.sql = ts_strdup(sql), .hash = h, .last_use = ++p->tick, .st = st};
    *out = st;
    return 0;
}

static int bind_args(struct ts_db_conn *c, sqlite3_stmt *st, const char *sql, const struct ts_db_val *args,
                     int nargs, struct ts_err *err)
{
    if (sqlite3_bind_parameter_count(st) != nargs)
        return ts_err_set(err, TS_EINVAL, "statement wants %d arguments, got %d",
                          sqlite3_bind_parameter_count(st), nargs);
    for (int i = 0; i < nargs; i++) {
        int rc;
        switch (args[i].type) {
        case TS_DB_T_NULL: rc = sqlite3_bind_null(st, i + 1); break;
        case TS_DB_T_INT: rc = sqlite3_bind_int64(st, i + 1, args[i].i); break;
        case TS_DB_T_DOUBLE: rc = sqlite3_bind_double(st, i + 1, args[i].d); break;
        case TS_DB_T_TEXT:
            rc = args[i].s ? sqlite3_bind_text(st, i + 1, args[i].s, -1, SQLITE_STATIC)
                           : sqlite3_bind_null(st, i + 1);
            break;
        default: return ts_err_set(err, TS_EINVAL, "bad argument type for parameter %d", i + 1);
        }
        if (rc != SQLITE_OK) return sq_fail(c, rc, sql, err);
    }
    return 0;
}

/* Steps st to the end, collecting rows if res. */
static int step_all(struct ts_db_conn *c, sqlite3_stmt *st, struct ts_db_res **res)
{
    struct ts_db_res *r = NULL;
    int ncols = sqlite3_column_count(st);
    const char **cells = NULL;
    size_t *lens = NULL;
    int rc;
    (void)c;
    if (res) {
        r = ts_db_res_new(ncols);
        for (int i = 0; i < ncols; i++) ts_db_res_set_col(r, i, sqlite3_column_name(st, i));
        cells = ts_calloc(ncols > 0 ? (size_t)ncols : 1, sizeof(*cells));
        lens = ts_calloc(ncols > 0 ? (size_t)ncols : 1, sizeof(*lens));
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (!r) continue;
        for (int i = 0; i < ncols; i++) {
            if (sqlite3_column_type(st, i) == SQLITE_NULL) {
                cells[i] = NULL;
                lens[i] = 0;
            } else {
                cells[i] = (const char *)sqlite3_column_text(st, i);
                lens[i] = (size_t)sqlite3_column_bytes(st, i);
                if (!cells[i]) cells[i] = "";
            }
        }
        ts_db_res_add_row(r, cells, lens);
    }
    free(cells);
    free(lens);
    if (rc == SQLITE_DONE) {
        if (r) *res = r;
    } else {
        ts_db_res_free(r);
    }
    return rc;
}

static int sq_exec(struct ts_db_conn *c, const char *sql, const struct ts_db_val *args, int nargs,
                   struct ts_db_res **res, struct ts_err *err)
{
    sqlite3_stmt *st = NULL;
    bool took_write = false;
    int rc = get_stmt(c, sql, &st, err);
    if (rc < 0) return rc;
    rc = bind_args(c, st, sql, args, nargs, err);
    if (rc < 0) goto out;

    bool writes = !sqlite3_stmt_readonly(st);
    if (writes && !c->in_tx) {
        rc = ts_db_write_lock(c->db, err);
        if (rc < 0) {
            ts_db_log_failure("sqlite", sql, "autocommit write while this thread holds a transaction");
            goto out;
        }
        took_write = true;
    }
    for (int attempt = 0;; attempt++) {
        int sqrc = step_all(c, st, res);
        if (sqrc == SQLITE_DONE) {
            if (res && *res && writes) (*res)->changes = sqlite3_changes64(c->handle);
            rc = 0;
            break;
        }
        /* An autocommit statement that lost a race with another process was rolled back
         * as a whole: run it again. Inside a transaction the caller decides. */
        if ((sqrc & 0xff) == SQLITE_BUSY && !c->in_tx && attempt < BUSY_RETRIES) {
            sqlite3_reset(st);
            usleep(10000u << (attempt < 5 ? attempt : 5));
            continue;
        }
        rc = sq_fail(c, sqrc, sql, err);
        break;
    }
out:
    if (st) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    if (took_write) ts_db_write_unlock(c->db);
    return rc;
}

static int sq_exec_script(struct ts_db_conn *c, const char *sql, struct ts_err *err)
{
    const char *p = sql;
    while (p && *p) {
        sqlite3_stmt *st = NULL;
        const char *tail = NULL;
        int rc = sqlite3_prepare_v2(c->handle, p, -1, &st, &tail);
        if (rc != SQLITE_OK) return sq_fail(c, rc, p, err);
        if (!st) break; /* only whitespace or comments left */
        rc = step_all(c, st, NULL);
        if (rc != SQLITE_DONE) {
            rc = sq_fail(c, rc, sqlite3_sql(st), err);
            sqlite3_finalize(st);
            return rc;
        }
        sqlite3_finalize(st);
        p = tail;
    }
    return 0;
}

static int sq_begin(struct ts_db_conn *c, struct ts_err *err)
{
    /* the caller holds the write lock: the only waiting left is for other processes */
    return simple(c, "BEGIN IMMEDIATE", err);
}

static int sq_commit(struct ts_db_conn *c, struct ts_err *err)
{
    if (sqlite3_get_autocommit(c->handle)) {
        /* SQLite rolled the transaction back itself after an error (I/O, full, ...) */
        return ts_err_set(err, TS_EIO, "transaction was rolled back by the database");
    }
    int rc = simple(c, "COMMIT", err);
    if (rc < 0 && !sqlite3_get_autocommit(c->handle)) sqlite3_exec(c->handle, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static void sq_rollback(struct ts_db_conn *c)
{
    if (!sqlite3_get_autocommit(c->handle)) sqlite3_exec(c->handle, "ROLLBACK", NULL, NULL, NULL);
}

/* Decimal text of v into buf (at least 21 bytes), as SQLite prints an INTEGER ("%lld");
 * returns the length. */
static size_t i64_text(int64_t v, char *buf)
{
    static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                "8081828384858687888990919293949596979899";
    char tmp[24];
    size_t n = sizeof(tmp);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    while (u >= 100) {
        unsigned r = (unsigned)(u % 100);
        u /= 100;
        tmp[--n] = pairs[2 * r + 1];
        tmp[--n] = pairs[2 * r];
    }
    if (u >= 10) {
        tmp[--n] = pairs[2 * u + 1];
        tmp[--n] = pairs[2 * u];
    } else {
        tmp[--n] = (char)('0' + u);
    }
    size_t len = 0;
    if (v < 0) buf[len++] = '-';
    memcpy(buf + len, tmp + n, sizeof(tmp) - n);
    len += sizeof(tmp) - n;
    buf[len] = '\0';
    return len;
}

/* ts_db_each: steps a cached read-only statement, handing each row's text cells to row()
 * straight from SQLite's buffers. INTEGER cells are printed here (SQLite would convert
 * the value in place, a much slower path, 1/3 of a 1,000-row listing's SQLite time).
 * sqlite3_column_value() saves two API calls per cell; its value is "unprotected", which
 * only matters to connections shared between threads: this one is NOMUTEX and borrowed
 * by one thread at a time. */
static int sq_each(struct ts_db_conn *c, const char *sql, const struct ts_db_val *args, int nargs, ts_db_row_fn row,
                   void *ctx, struct ts_err *err)
{
    enum { MAXCOLS = 32 };
    sqlite3_stmt *st = NULL;
    const char *cells[MAXCOLS];
    size_t lens[MAXCOLS];
    char nums[MAXCOLS][24];
    int rc = get_stmt(c, sql, &st, err);
    if (rc < 0) return rc;
    if (!sqlite3_stmt_readonly(st)) {
        rc = ts_err_set(err, TS_EINVAL, "ts_db_each runs read-only statements");
        goto out;
    }
    int ncols = sqlite3_column_count(st);
    if (ncols > MAXCOLS) {
        rc = ts_err_set(err, TS_EINVAL, "ts_db_each: at most %d columns", MAXCOLS);
        goto out;
    }
    rc = bind_args(c, st, sql, args, nargs, err);
    if (rc < 0) goto out;
    int sqrc;
    while ((sqrc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int i = 0; i < ncols; i++) {
            sqlite3_value *v = sqlite3_column_value(st, i);
            switch (sqlite3_value_type(v)) {
            case SQLITE_NULL:
                cells[i] = NULL;
                lens[i] = 0;
                break;
            case SQLITE_INTEGER:
                lens[i] = i64_text(sqlite3_value_int64(v), nums[i]);
                cells[i] = nums[i];
                break;
            default:
                cells[i] = (const char *)sqlite3_value_text(v);
                lens[i] = (size_t)sqlite3_value_bytes(v);
                if (!cells[i]) cells[i] = "";
            }
        }
        rc = row(ctx, cells, lens, ncols);
        if (rc != 0) goto out;
    }
    if (sqrc != SQLITE_DONE) rc = sq_fail(c, sqrc, sql, err);
out:
    if (st) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    return rc;
}

const struct ts_db_backend ts_db_sqlite_backend = {
    .name = "sqlite",
    .conn_open = sq_open,
    .conn_close = sq_close,
    .conn_release = sq_release,
    .exec = sq_exec,
    .exec_script = sq_exec_script,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .each = sq_each,
};
