/*
 * ts_db_pg.c: the PostgreSQL backend of ts_db, over libpq. The URL goes to PQconnectdb
 * as is (libpq understands postgresql://user:pass@host:port/db?opts). Statements written
 * in the common dialect have their '?' placeholders rewritten to $1..$n and run with
 * PQexecParams and text parameters, all sent untyped: the server infers each one's type
 * from its context exactly as for a quoted literal, so an integer fits an INTEGER,
 * BIGINT, TEXT or BOOLEAN column or an int4 function argument alike. Where the context
 * fixes no type ("? IS NULL", "? + ?") the SQL must say CAST(? AS BIGINT).
 *
 * Transactions: the in-process write lock (taken by ts_db.c), then BEGIN plus a
 * transaction-scoped advisory lock, so write transactions on one database are serialised
 * exactly as with SQLite (BEGIN IMMEDIATE) and
 * read-modify-write inside ts_db_begin/commit is safe in both backends, across
 * processes and hosts. Autocommit statements are not serialised.
 *
 * A connection found broken is reset (PQreset) once; an autocommit statement that hit
 * the broken connection is then retried once.
 */
#include "db/ts_db_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>

/* pg_advisory_xact_lock key for "the write transaction" of a database ("ts_db") */
#define PG_TX_LOCK_SQL "SELECT pg_advisory_xact_lock(499968173154)"

static void quiet_notice(void *arg, const char *msg)
{
    (void)arg;
    ts_debug("db", "postgresql: %s", msg);
}

static int conn_error(PGconn *pg, const char *what, struct ts_err *err)
{
    char msg[TS_ERR_MSG_MAX];
    snprintf(msg, sizeof(msg), "%s", pg ? PQerrorMessage(pg) : "out of memory");
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) msg[--n] = '\0';
    ts_error("db", "postgresql %s: %s", what, msg);
    return ts_err_set(err, TS_EIO, "postgresql %s: %s", what, msg);
}

static int pg_open(struct ts_db *db, struct ts_db_conn *c, bool first, struct ts_err *err)
{
    (void)first;
    PGconn *pg = PQconnectdb(db->target);
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        int rc = conn_error(pg, "connect", err);
        PQfinish(pg);
        return rc;
    }
    PQsetNoticeProcessor(pg, quiet_notice, NULL);
    c->handle = pg;
    return 0;
}

static void pg_close(struct ts_db_conn *c)
{
    PQfinish(c->handle);
    c->handle = NULL;
}

/* Resets a broken connection; true if it works again. */
static bool reset_if_broken(struct ts_db_conn *c)
{
    if (PQstatus(c->handle) == CONNECTION_OK) return false;
    ts_warn("db", "postgresql connection lost, reconnecting");
    PQreset(c->handle);
    if (PQstatus(c->handle) != CONNECTION_OK) {
        ts_error("db", "postgresql reconnect failed: %s", PQerrorMessage(c->handle));
        return false;
    }
    PQsetNoticeProcessor(c->handle, quiet_notice, NULL);
    return true;
}

static void pg_release(struct ts_db_conn *c)
{
    PGconn *pg = c->handle;
    if (PQstatus(pg) != CONNECTION_OK) {
        reset_if_broken(c);
        return;
    }
    if (PQtransactionStatus(pg) != PQTRANS_IDLE) PQclear(PQexec(pg, "ROLLBACK"));
}

/* '?' -> $n outside quoted literals, quoted identifiers and comments. Returns a malloc'd
 * string and the number of placeholders. */
static char *rewrite_placeholders(const char *sql, int *count)
{
    size_t len = strlen(sql);
    size_t nq = 0;
    for (const char *p = sql; *p; p++) nq += *p == '?';
    /* each '?' becomes at most "$" + 10 digits */
    char *out = ts_malloc(len + nq * 10 + 1);
    char *o = out;
    int n = 0;
    const char *p = sql;
    while (*p) {
        if (*p == '\'' || *p == '"') {
            /* a doubled quote inside ends and reopens the literal: same result */
            char q = *p;
            *o++ = *p++;
            while (*p && *p != q) *o++ = *p++;
            if (*p) *o++ = *p++;
        } else if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n') *o++ = *p++;
        } else if (p[0] == '/' && p[1] == '*') {
            *o++ = *p++;
            *o++ = *p++;
            while (*p && !(p[0] == '*' && p[1] == '/')) *o++ = *p++;
            if (*p) {
                *o++ = *p++;
                *o++ = *p++;
            }
        } else if (*p == '?') {
            o += sprintf(o, "$%d", ++n);
            p++;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    *count = n;
    return out;
}

static int result_error(struct ts_db_conn *c, PGresult *r, const char *sql, struct ts_err *err)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *prim = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *detail = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL) : NULL;
    char msg[TS_ERR_MSG_MAX];
    if (prim)
        snprintf(msg, sizeof(msg), "%s%s%s", prim, detail ? ": " : "", detail ? detail : "");
    else
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(c->handle));
    /* one line for logs and fault bodies */
    for (char *m = msg; *m; m++)
        if (*m == '\n' || *m == '\t') *m = ' ';
    size_t n = strlen(msg);
    while (n && msg[n - 1] == ' ') msg[--n] = '\0';
    if (state && strcmp(state, "23505") == 0) return ts_err_set(err, TS_ECONFLICT, "%s", msg);
    ts_db_log_failure("postgresql", sql, msg);
    return ts_err_set(err, TS_EIO, "database error: %s", msg);
}

static struct ts_db_res *collect(PGresult *r)
{
    int ncols = PQnfields(r), nrows = PQntuples(r);
    struct ts_db_res *res = ts_db_res_new(ncols);
    for (int i = 0; i < ncols; i++) ts_db_res_set_col(res, i, PQfname(r, i));
    const char **cells = ts_calloc(ncols > 0 ? (size_t)ncols : 1, sizeof(*cells));
    size_t *lens = ts_calloc(ncols > 0 ? (size_t)ncols : 1, sizeof(*lens));
    for (int row = 0; row < nrows; row++) {
        for (int i = 0; i < ncols; i++) {
            cells[i] = PQgetisnull(r, row, i) ? NULL : PQgetvalue(r, row, i);
            lens[i] = cells[i] ? (size_t)PQgetlength(r, row, i) : 0;
        }
        ts_db_res_add_row(res, cells, lens);
    }
    free(cells);
    free(lens);
    const char *status = PQcmdStatus(r);
    if (ts_startswith(status, "INSERT") || ts_startswith(status, "UPDATE") ||
        ts_startswith(status, "DELETE") || ts_startswith(status, "MERGE")) {
        int64_t ch = 0;
        if (ts_parse_int64(PQcmdTuples(r), &ch) == 0) res->changes = ch;
    }
    return res;
}

static int pg_exec(struct ts_db_conn *c, const char *sql, const struct ts_db_val *args, int nargs,
                   struct ts_db_res **res, struct ts_err *err)
{
    int rc = 0, nph = 0;
    PGresult *r = NULL;
    char *q = rewrite_placeholders(sql, &nph);
    size_t na = nargs > 0 ? (size_t)nargs : 1;
    const char **values = ts_calloc(na, sizeof(*values));
    char *nums = ts_calloc(na, 32);

    if (nph != nargs) {
        rc = ts_err_set(err, TS_EINVAL, "statement wants %d arguments, got %d", nph, nargs);
        goto out;
    }
    for (int i = 0; i < nargs; i++) {
        char *num = nums + (size_t)i * 32;
        switch (args[i].type) {
        case TS_DB_T_NULL: values[i] = NULL; break;
        case TS_DB_T_INT:
            snprintf(num, 32, "%" PRId64, args[i].i);
            values[i] = num;
            break;
        case TS_DB_T_DOUBLE:
            snprintf(num, 32, "%.17g", args[i].d);
            values[i] = num;
            break;
        case TS_DB_T_TEXT: values[i] = args[i].s; break;
        default: rc = ts_err_set(err, TS_EINVAL, "bad argument type for parameter %d", i + 1); goto out;
        }
    }
    for (int attempt = 0;; attempt++) {
        r = PQexecParams(c->handle, q, nargs, NULL, values, NULL, NULL, 0);
        ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) break;
        if (attempt == 0 && !c->in_tx && PQstatus(c->handle) != CONNECTION_OK && reset_if_broken(c)) {
            PQclear(r);
            r = NULL;
            continue;
        }
        rc = result_error(c, r, sql, err);
        goto out;
    }
    if (res) *res = collect(r);
out:
    PQclear(r);
    free(q);
    free(values);
    free(nums);
    return rc;
}

/* Runs a parameterless command string (may hold several statements). */
static int simple(struct ts_db_conn *c, const char *sql, struct ts_err *err, PGresult **keep)
{
    PGresult *r = PQexec(c->handle, sql);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) {
        if (keep)
            *keep = r;
        else
            PQclear(r);
        return 0;
    }
    int rc = result_error(c, r, sql, err);
    PQclear(r);
    return rc;
}

/* The one DDL difference the common dialect papers over: SQLite's auto-increment key. */
static char *translate_ddl(const char *sql)
{
    static const char from[] = "INTEGER PRIMARY KEY AUTOINCREMENT";
    static const char to[] = "BIGSERIAL PRIMARY KEY";
    struct ts_buf b;
    ts_buf_init(&b, 0);
    const char *p = sql, *hit;
    while ((hit = strcasestr(p, from))) {
        ts_buf_append(&b, p, (size_t)(hit - p));
        ts_buf_appends(&b, to);
        p = hit + sizeof(from) - 1;
    }
    ts_buf_appends(&b, p);
    char *out = ts_buf_steal(&b, NULL);
    return out ? out : ts_strdup("");
}

static int pg_exec_script(struct ts_db_conn *c, const char *sql, struct ts_err *err)
{
    /* The simple-query protocol runs ';'-separated statements in order and stops at the
     * first error; the server's parser knows every quoting form, including $$ bodies. */
    char *q = translate_ddl(sql);
    int rc = simple(c, q, err, NULL);
    free(q);
    return rc;
}

static int pg_begin(struct ts_db_conn *c, struct ts_err *err)
{
    int rc = simple(c, "BEGIN", err, NULL);
    if (rc < 0 && reset_if_broken(c)) rc = simple(c, "BEGIN", err, NULL);
    if (rc == 0) rc = simple(c, PG_TX_LOCK_SQL, err, NULL);
    if (rc < 0 && PQstatus(c->handle) == CONNECTION_OK) PQclear(PQexec(c->handle, "ROLLBACK"));
    return rc;
}

static int pg_commit(struct ts_db_conn *c, struct ts_err *err)
{
    PGresult *r = NULL;
    int rc = simple(c, "COMMIT", err, &r);
    /* COMMIT of a transaction that failed earlier "succeeds" as ROLLBACK */
    if (rc == 0 && strcmp(PQcmdStatus(r), "COMMIT") != 0)
        rc = ts_err_set(err, TS_EIO, "transaction was rolled back by the database");
    PQclear(r);
    return rc;
}

static void pg_rollback(struct ts_db_conn *c)
{
    if (PQstatus(c->handle) == CONNECTION_OK) PQclear(PQexec(c->handle, "ROLLBACK"));
}

const struct ts_db_backend ts_db_pg_backend = {
    .name = "postgresql",
    .conn_open = pg_open,
    .conn_close = pg_close,
    .conn_release = pg_release,
    .exec = pg_exec,
    .exec_script = pg_exec_script,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
};
