/*
 * test_db.c: ts_db against SQLite (a temporary file) and, when TS_TEST_PG_URL names a
 * PostgreSQL server (scripts/pg-local.sh start prints one), against PostgreSQL in a
 * database of its own that it creates and drops. The same cases run on both: migrations
 * (idempotent, racing), typed values, UTF-8, NULL, unique violations, RETURNING,
 * rollback, and writers + read-modify-write transactions in parallel with zero errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/ts_db.h"

#define PG_TEST_DB "ts_db_unit_test"

struct fixture {
    bool pg;
    char dir[64];       /* sqlite: temp dir */
    char url[512];
    struct ts_db *db;
};
static struct fixture fx;
static char pg_admin_url[512];

/* ---- fixtures ---------------------------------------------------------------------- */

static int sqlite_setup(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof(fx));
    snprintf(fx.dir, sizeof(fx.dir), "/tmp/ts_db_test_XXXXXX");
    if (!mkdtemp(fx.dir)) return -1;
    snprintf(fx.url, sizeof(fx.url), "sqlite://%s/sub/test.db", fx.dir);
    struct ts_err err = {0};
    if (ts_db_open(fx.url, &fx.db, &err) < 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int sqlite_teardown(void **state)
{
    (void)state;
    ts_db_close(fx.db);
    fx.db = NULL;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx.dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* The admin URL with its database name replaced. */
static void pg_url_for(const char *admin, const char *dbname, char *out, size_t outlen)
{
    const char *scheme = strstr(admin, "://");
    const char *slash = scheme ? strchr(scheme + 3, '/') : NULL;
    const char *query = strchr(admin, '?');
    if (!slash) slash = query ? query : admin + strlen(admin);
    snprintf(out, outlen, "%.*s/%s%s", (int)(slash - admin), admin, dbname, query ? query : "");
}

static int pg_group_setup(void **state)
{
    (void)state;
    struct ts_db *admin = NULL;
    struct ts_err err = {0};
    if (ts_db_open(pg_admin_url, &admin, &err) < 0) {
        fprintf(stderr, "pg admin open: %s\n", err.msg);
        return -1;
    }
    int rc = ts_db_exec(admin, "DROP DATABASE IF EXISTS " PG_TEST_DB " WITH (FORCE)", TS_DB_NOARGS, NULL, &err);
    if (rc == 0) rc = ts_db_exec(admin, "CREATE DATABASE " PG_TEST_DB, TS_DB_NOARGS, NULL, &err);
    if (rc < 0) fprintf(stderr, "pg create database: %s\n", err.msg);
    ts_db_close(admin);
    return rc;
}

static int pg_group_teardown(void **state)
{
    (void)state;
    struct ts_db *admin = NULL;
    if (ts_db_open(pg_admin_url, &admin, NULL) < 0) return -1;
    int rc = ts_db_exec(admin, "DROP DATABASE IF EXISTS " PG_TEST_DB " WITH (FORCE)", TS_DB_NOARGS, NULL, NULL);
    ts_db_close(admin);
    return rc;
}

static int pg_setup(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof(fx));
    fx.pg = true;
    pg_url_for(pg_admin_url, PG_TEST_DB, fx.url, sizeof(fx.url));
    struct ts_err err = {0};
    if (ts_db_open(fx.url, &fx.db, &err) < 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        return -1;
    }
    /* every test starts from an empty schema */
    if (ts_db_exec(fx.db, "DROP SCHEMA IF EXISTS public CASCADE", TS_DB_NOARGS, NULL, &err) < 0 ||
        ts_db_exec(fx.db, "CREATE SCHEMA public", TS_DB_NOARGS, NULL, &err) < 0) {
        fprintf(stderr, "reset schema: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int pg_teardown(void **state)
{
    (void)state;
    ts_db_close(fx.db);
    fx.db = NULL;
    return 0;
}

/* ---- helpers ----------------------------------------------------------------------- */

static void exec_ok(const char *sql, const struct ts_db_val *args, int nargs, struct ts_db_res **res)
{
    struct ts_err err = {0};
    int rc = ts_db_exec(fx.db, sql, args, nargs, res, &err);
    if (rc != 0) fail_msg("%s: %d %s", sql, rc, err.msg);
}

static int64_t scalar(const char *sql)
{
    struct ts_db_res *r = NULL;
    exec_ok(sql, TS_DB_NOARGS, &r);
    assert_int_equal(r->nrows, 1);
    int64_t v = ts_db_res_int(r, 0, 0, -999);
    ts_db_res_free(r);
    return v;
}

/* ---- migrations -------------------------------------------------------------------- */

static const struct ts_db_migration migs[] = {
    {1, "CREATE TABLE a (id BIGINT PRIMARY KEY, note TEXT DEFAULT 'x;y');\n"
        "CREATE INDEX a_note ON a (note);"},
    {2, "CREATE TABLE b (id TEXT PRIMARY KEY, a_id BIGINT REFERENCES a(id)); -- comment; here\n"
        "INSERT INTO a (id) VALUES (1)"},
    {5, "ALTER TABLE b ADD COLUMN created_at TEXT;\n"
        "CREATE TABLE seq (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)"},
};

static void test_migrate(void **state)
{
    (void)state;
    struct ts_err err = {0};
    assert_int_equal(ts_db_migrate(fx.db, migs, 3, &err), 0);
    assert_int_equal(ts_db_migrate(fx.db, migs, 3, &err), 0); /* idempotent */
    assert_int_equal(scalar("SELECT MAX(version) FROM ts_schema_version"), 5);
    assert_int_equal(scalar("SELECT COUNT(*) FROM ts_schema_version"), 3);
    assert_int_equal(scalar("SELECT COUNT(*) FROM a"), 1); /* migration 2 ran once */
    struct ts_db_res *r = NULL;
    exec_ok("SELECT note FROM a", TS_DB_NOARGS, &r);
    assert_string_equal(ts_db_res_get(r, 0, 0), "x;y");
    ts_db_res_free(r);
    /* auto-increment keys (BIGSERIAL on PostgreSQL) */
    for (int i = 1; i <= 2; i++) {
        exec_ok("INSERT INTO seq (v) VALUES (?) RETURNING id", TS_DB_ARGS(TS_DB_S("v")), &r);
        assert_int_equal(ts_db_res_int(r, 0, 0, 0), i);
        ts_db_res_free(r);
    }

    /* a failing migration leaves nothing behind and stops there */
    const struct ts_db_migration more[] = {
        migs[0], migs[1], migs[2],
        {6, "CREATE TABLE c (id BIGINT); CREATE TABLE broken ("},
        {7, "CREATE TABLE d (id BIGINT)"},
    };
    assert_int_equal(ts_db_migrate(fx.db, more, 5, &err), -TS_EIO);
    assert_int_equal(scalar("SELECT MAX(version) FROM ts_schema_version"), 5);
    /* table c was rolled back with its migration */
    assert_int_equal(ts_db_exec(fx.db, "SELECT * FROM c", TS_DB_NOARGS, NULL, NULL), -TS_EIO);

    /* versions must increase */
    const struct ts_db_migration bad[] = {{2, "SELECT 1"}, {1, "SELECT 1"}};
    assert_int_equal(ts_db_migrate(fx.db, bad, 2, &err), -TS_EINVAL);
}

struct race_arg {
    const char *url;
    int rc;
};

static void *race_migrate(void *p)
{
    struct race_arg *a = p;
    struct ts_db *db = NULL;
    struct ts_err err = {0};
    /* its own handle, as another process would have */
    a->rc = ts_db_open(a->url, &db, &err);
    if (a->rc == 0) a->rc = ts_db_migrate(db, migs, 3, &err);
    if (a->rc) fprintf(stderr, "race migrate: %s\n", err.msg);
    ts_db_close(db);
    return NULL;
}

static void test_migrate_race(void **state)
{
    (void)state;
    pthread_t th[6];
    struct race_arg args[6];
    for (int i = 0; i < 6; i++) {
        args[i] = (struct race_arg){.url = fx.url};
        assert_int_equal(pthread_create(&th[i], NULL, race_migrate, &args[i]), 0);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].rc, 0);
    }
    assert_int_equal(scalar("SELECT COUNT(*) FROM ts_schema_version"), 3);
    assert_int_equal(scalar("SELECT COUNT(*) FROM a"), 1);
}

/* ---- values ------------------------------------------------------------------------ */

static const char *create_t =
    "CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT UNIQUE, score DOUBLE PRECISION, "
    "flag BIGINT NOT NULL DEFAULT 0, note TEXT)";

static void test_values(void **state)
{
    (void)state;
    struct ts_db_res *r = NULL;
    const char *utf8 = "na\xc3\xafve \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac 'quoted' ?";
    exec_ok(create_t, TS_DB_NOARGS, NULL);
    exec_ok("INSERT INTO t (id, name, score, flag, note) VALUES (?, ?, ?, ?, ?)",
            TS_DB_ARGS(TS_DB_I(INT64_MAX), TS_DB_S(utf8), TS_DB_D(1.5), TS_DB_B(true), TS_DB_NULL), &r);
    assert_int_equal(r->changes, 1);
    assert_int_equal(r->nrows, 0);
    ts_db_res_free(r);
    exec_ok("INSERT INTO t (id, name, score, note) VALUES (?, ?, ?, ?)",
            TS_DB_ARGS(TS_DB_I(INT64_MIN), TS_DB_S("second"), TS_DB_NULL, TS_DB_S(NULL)), NULL);
    exec_ok("INSERT INTO t (id, name) VALUES (?, ?)", TS_DB_ARGS(TS_DB_I(0), TS_DB_S("")), NULL);

    exec_ok("SELECT id, name, score, flag, note FROM t WHERE id = ?", TS_DB_ARGS(TS_DB_I(INT64_MAX)), &r);
    assert_int_equal(r->nrows, 1);
    assert_int_equal(r->ncols, 5);
    assert_int_equal(r->changes, 0);
    assert_string_equal(r->cols[0], "id");
    assert_string_equal(r->cols[4], "note");
    assert_string_equal(ts_db_res_get(r, 0, 0), "9223372036854775807");
    assert_true(ts_db_res_int(r, 0, 0, 0) == INT64_MAX);
    assert_string_equal(ts_db_res_getn(r, 0, "name"), utf8);
    assert_string_equal(ts_db_res_get(r, 0, 2), "1.5");
    assert_int_equal(ts_db_res_int(r, 0, 3, -1), 1);
    assert_null(ts_db_res_get(r, 0, 4));
    assert_int_equal(ts_db_res_int(r, 0, 4, 42), 42);
    /* out of range, unknown column */
    assert_null(ts_db_res_get(r, 1, 0));
    assert_null(ts_db_res_get(r, 0, 5));
    assert_null(ts_db_res_get(r, -1, 0));
    assert_null(ts_db_res_getn(r, 0, "nope"));
    ts_db_res_free(r);

    exec_ok("SELECT id, score, name FROM t WHERE name = ?", TS_DB_ARGS(TS_DB_S("second")), &r);
    assert_int_equal(r->nrows, 1);
    assert_true(ts_db_res_int(r, 0, 0, 0) == INT64_MIN);
    assert_null(ts_db_res_get(r, 0, 1));
    ts_db_res_free(r);

    exec_ok("SELECT name FROM t WHERE id = 0", TS_DB_NOARGS, &r);
    assert_string_equal(ts_db_res_get(r, 0, 0), ""); /* empty string is not NULL */
    ts_db_res_free(r);

    /* '?' inside literals and comments is not a placeholder */
    exec_ok("SELECT '?' AS q, ? AS v /* ? */", TS_DB_ARGS(TS_DB_S("it's")), &r);
    assert_string_equal(ts_db_res_getn(r, 0, "q"), "?");
    assert_string_equal(ts_db_res_getn(r, 0, "v"), "it's");
    ts_db_res_free(r);

    /* update/delete counts, ordering, many rows */
    exec_ok("UPDATE t SET flag = ? WHERE flag = 0", TS_DB_ARGS(TS_DB_I(7)), &r);
    assert_int_equal(r->changes, 2);
    ts_db_res_free(r);
    for (int i = 1; i <= 100; i++) {
        char name[32];
        snprintf(name, sizeof(name), "n%03d", i);
        exec_ok("INSERT INTO t (id, name, score) VALUES (?, ?, ?)",
                TS_DB_ARGS(TS_DB_I(i), TS_DB_S(name), TS_DB_D(i / 4.0)), NULL);
    }
    exec_ok("SELECT id, name FROM t WHERE id BETWEEN ? AND ? ORDER BY id", TS_DB_ARGS(TS_DB_I(1), TS_DB_I(100)), &r);
    assert_int_equal(r->nrows, 100);
    assert_string_equal(ts_db_res_get(r, 99, 1), "n100");
    assert_int_equal(ts_db_res_int(r, 36, 0, 0), 37);
    ts_db_res_free(r);
    exec_ok("SELECT COUNT(*) AS n FROM t WHERE score > ?", TS_DB_ARGS(TS_DB_D(20.0)), &r);
    assert_int_equal(ts_db_res_int(r, 0, 0, 0), 20);
    ts_db_res_free(r);
    exec_ok("DELETE FROM t WHERE id > ?", TS_DB_ARGS(TS_DB_I(50)), &r); /* 51..100 and INT64_MAX */
    assert_int_equal(r->changes, 51);
    ts_db_res_free(r);
    exec_ok("SELECT id FROM t WHERE id < 0 AND id > 0", TS_DB_NOARGS, &r);
    assert_int_equal(r->nrows, 0);
    assert_int_equal(r->ncols, 1);
    ts_db_res_free(r);
}

struct each_ctx {
    int rows;
    int64_t id_sum;
    bool saw_null;
    char names[64];
    int stop_after;
};

static int each_row(void *ctx, const char *const *cells, const size_t *lens, int ncols)
{
    struct each_ctx *e = ctx;
    assert_int_equal(ncols, 3);
    int64_t id = strtoll(cells[0], NULL, 10);
    e->id_sum += id;
    assert_int_equal(lens[1], strlen(cells[1]));
    strncat(e->names, cells[1], sizeof(e->names) - strlen(e->names) - 1);
    if (!cells[2]) {
        e->saw_null = true;
        assert_int_equal(lens[2], 0);
    }
    e->rows++;
    return e->stop_after && e->rows == e->stop_after ? 7 : 0;
}

static void test_each(void **state)
{
    (void)state;
    exec_ok(create_t, TS_DB_NOARGS, NULL);
    for (int i = 1; i <= 4; i++) {
        char name[8];
        snprintf(name, sizeof(name), "n%d", i);
        exec_ok("INSERT INTO t (id, name, note) VALUES (?, ?, ?)",
                TS_DB_ARGS(TS_DB_I(i), TS_DB_S(name), i == 3 ? TS_DB_NULL : TS_DB_S("x")), NULL);
    }
    struct ts_err err = {0};
    struct each_ctx e = {0};
    assert_int_equal(ts_db_each(fx.db, "SELECT id, name, note FROM t WHERE id > ? ORDER BY id",
                                TS_DB_ARGS(TS_DB_I(0)), each_row, &e, &err), 0);
    assert_int_equal(e.rows, 4);
    assert_true(e.id_sum == 10);
    assert_true(e.saw_null);
    assert_string_equal(e.names, "n1n2n3n4");
    /* the callback stops the walk; its value comes back */
    memset(&e, 0, sizeof(e));
    e.stop_after = 2;
    assert_int_equal(ts_db_each(fx.db, "SELECT id, name, note FROM t ORDER BY id", TS_DB_NOARGS, each_row, &e, &err),
                     7);
    assert_int_equal(e.rows, 2);
    /* the connection is usable afterwards, no rows is fine */
    memset(&e, 0, sizeof(e));
    assert_int_equal(ts_db_each(fx.db, "SELECT id, name, note FROM t WHERE id > 100", TS_DB_NOARGS, each_row, &e,
                                &err), 0);
    assert_int_equal(e.rows, 0);
    /* bad SQL is an error, not a crash */
    assert_true(ts_db_each(fx.db, "SELECT nope FROM t", TS_DB_NOARGS, each_row, &e, &err) < 0);
    assert_true(ts_db_each(fx.db, "SELECT id FROM t", TS_DB_NOARGS, NULL, &e, &err) < 0);
}

static void test_conflict_and_returning(void **state)
{
    (void)state;
    struct ts_db_res *r = NULL;
    struct ts_err err = {0};
    exec_ok(create_t, TS_DB_NOARGS, NULL);
    exec_ok("INSERT INTO t (id, name) VALUES (?, ?) RETURNING id, name, flag",
            TS_DB_ARGS(TS_DB_I(1), TS_DB_S("one")), &r);
    assert_int_equal(r->nrows, 1);
    assert_int_equal(r->changes, 1);
    assert_string_equal(ts_db_res_getn(r, 0, "name"), "one");
    assert_string_equal(ts_db_res_getn(r, 0, "flag"), "0");
    ts_db_res_free(r);

    /* primary key and unique column */
    r = (void *)1;
    assert_int_equal(ts_db_exec(fx.db, "INSERT INTO t (id, name) VALUES (?, ?)",
                                TS_DB_ARGS(TS_DB_I(1), TS_DB_S("other")), &r, &err), -TS_ECONFLICT);
    assert_null(r);
    assert_int_equal(err.code, TS_ECONFLICT);
    assert_true(strlen(err.msg) > 0);
    ts_err_clear(&err);
    assert_int_equal(ts_db_exec(fx.db, "INSERT INTO t (id, name) VALUES (?, ?)",
                                TS_DB_ARGS(TS_DB_I(2), TS_DB_S("one")), NULL, &err), -TS_ECONFLICT);

    /* upserts */
    exec_ok("INSERT INTO t (id, name) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
            TS_DB_ARGS(TS_DB_I(1), TS_DB_S("x")), &r);
    assert_int_equal(r->changes, 0);
    ts_db_res_free(r);
    exec_ok("INSERT INTO t (id, name, flag) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET flag = "
            "excluded.flag RETURNING flag",
            TS_DB_ARGS(TS_DB_I(1), TS_DB_S("x"), TS_DB_I(9)), &r);
    assert_int_equal(r->nrows, 1);
    assert_string_equal(ts_db_res_get(r, 0, 0), "9");
    ts_db_res_free(r);

    exec_ok("UPDATE t SET note = ? WHERE id = ? RETURNING id, note", TS_DB_ARGS(TS_DB_S("n"), TS_DB_I(1)), &r);
    assert_int_equal(r->nrows, 1);
    assert_int_equal(r->changes, 1);
    assert_string_equal(ts_db_res_get(r, 0, 1), "n");
    ts_db_res_free(r);
    exec_ok("DELETE FROM t WHERE id = ? RETURNING name", TS_DB_ARGS(TS_DB_I(1)), &r);
    assert_int_equal(r->nrows, 1);
    assert_string_equal(ts_db_res_get(r, 0, 0), "one");
    ts_db_res_free(r);
    assert_int_equal(scalar("SELECT COUNT(*) FROM t"), 0);
}

static void test_transactions(void **state)
{
    (void)state;
    struct ts_db_conn *tx = NULL;
    struct ts_db_res *r = NULL;
    struct ts_err err = {0};
    exec_ok(create_t, TS_DB_NOARGS, NULL);

    /* rollback leaves nothing */
    assert_int_equal(ts_db_begin(fx.db, &tx, &err), 0);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(ts_db_tx_exec(tx, "INSERT INTO t (id, name) VALUES (?, ?)",
                                       TS_DB_ARGS(TS_DB_I(i), TS_DB_S(i == 1 ? "a" : i == 2 ? "b" : "c")),
                                       NULL, &err), 0);
    assert_int_equal(ts_db_tx_exec(tx, "SELECT COUNT(*) FROM t", TS_DB_NOARGS, &r, &err), 0);
    assert_int_equal(ts_db_res_int(r, 0, 0, 0), 3); /* visible inside */
    ts_db_res_free(r);
    ts_db_rollback(tx);
    assert_int_equal(scalar("SELECT COUNT(*) FROM t"), 0);

    /* commit keeps it; RETURNING inside */
    assert_int_equal(ts_db_begin(fx.db, &tx, &err), 0);
    assert_int_equal(ts_db_tx_exec(tx, "INSERT INTO t (id, name) VALUES (?, ?) RETURNING id",
                                   TS_DB_ARGS(TS_DB_I(10), TS_DB_S("ten")), &r, &err), 0);
    assert_string_equal(ts_db_res_get(r, 0, 0), "10");
    ts_db_res_free(r);
    assert_int_equal(ts_db_commit(tx, &err), 0);
    assert_int_equal(scalar("SELECT COUNT(*) FROM t"), 1);

    /* a failed statement aborts the transaction in both backends */
    assert_int_equal(ts_db_begin(fx.db, &tx, &err), 0);
    assert_int_equal(ts_db_tx_exec(tx, "INSERT INTO t (id, name) VALUES (?, ?)",
                                   TS_DB_ARGS(TS_DB_I(11), TS_DB_S("eleven")), NULL, &err), 0);
    assert_int_equal(ts_db_tx_exec(tx, "INSERT INTO t (id, name) VALUES (?, ?)",
                                   TS_DB_ARGS(TS_DB_I(10), TS_DB_S("dup")), NULL, &err), -TS_ECONFLICT);
    assert_int_equal(ts_db_tx_exec(tx, "SELECT 1", TS_DB_NOARGS, NULL, &err), -TS_EIO);
    assert_int_equal(ts_db_commit(tx, &err), -TS_EIO);
    assert_int_equal(scalar("SELECT COUNT(*) FROM t"), 1);

    /* nested transaction on the same thread is an error, not a hang */
    assert_int_equal(ts_db_begin(fx.db, &tx, &err), 0);
    struct ts_db_conn *tx2 = (void *)1;
    assert_int_equal(ts_db_begin(fx.db, &tx2, &err), -TS_EIO);
    assert_null(tx2);
    if (!fx.pg) {
        /* SQLite: an autocommit write while holding the write lock would wait forever */
        assert_int_equal(ts_db_exec(fx.db, "DELETE FROM t", TS_DB_NOARGS, NULL, &err), -TS_EIO);
    }
    /* reads on another connection are fine and do not see uncommitted rows */
    assert_int_equal(ts_db_tx_exec(tx, "DELETE FROM t", TS_DB_NOARGS, NULL, &err), 0);
    assert_int_equal(scalar("SELECT COUNT(*) FROM t"), 1);
    assert_int_equal(ts_db_commit(tx, &err), 0);
    assert_int_equal(scalar("SELECT COUNT(*) FROM t"), 0);

    /* misuse */
    assert_int_equal(ts_db_tx_exec(NULL, "SELECT 1", TS_DB_NOARGS, NULL, &err), -TS_EINVAL);
    assert_int_equal(ts_db_commit(NULL, &err), -TS_EINVAL);
    ts_db_rollback(NULL);
}

static void test_errors(void **state)
{
    (void)state;
    struct ts_err err = {0};
    struct ts_db *db = (void *)1;
    struct ts_db_res *r = (void *)1;
    assert_int_equal(ts_db_open("mysql://x", &db, &err), -TS_EINVAL);
    assert_null(db);
    assert_int_equal(ts_db_open("sqlite://", &db, &err), -TS_EINVAL);
    assert_int_equal(ts_db_open(NULL, &db, &err), -TS_EINVAL);
    assert_int_equal(ts_db_open("sqlite:///proc/nope/test.db", &db, &err), -TS_EIO);
    assert_int_equal(ts_db_exec(fx.db, "SELEKT 1", TS_DB_NOARGS, &r, &err), -TS_EIO);
    assert_null(r);
    assert_int_equal(err.code, TS_EIO);
    assert_int_equal(ts_db_exec(fx.db, "SELECT ?", TS_DB_NOARGS, NULL, &err), -TS_EINVAL);
    assert_int_equal(ts_db_exec(fx.db, "SELECT 1", TS_DB_ARGS(TS_DB_I(1)), NULL, &err), -TS_EINVAL);
    assert_int_equal(ts_db_exec(fx.db, NULL, TS_DB_NOARGS, NULL, &err), -TS_EINVAL);
    assert_int_equal(scalar("SELECT 5; -- trailing comment"), 5);
    if (!fx.pg) /* PostgreSQL's extended protocol refuses it as well, with -TS_EIO */
        assert_int_equal(ts_db_exec(fx.db, "SELECT 1; SELECT 2", TS_DB_NOARGS, NULL, &err), -TS_EINVAL);
    else
        assert_int_equal(ts_db_exec(fx.db, "SELECT 1; SELECT 2", TS_DB_NOARGS, NULL, &err), -TS_EIO);
    assert_int_equal(ts_db_exec(NULL, "SELECT 1", TS_DB_NOARGS, NULL, &err), -TS_EINVAL);
    assert_int_equal(ts_db_exec(fx.db, "SELECT * FROM no_such_table", TS_DB_NOARGS, NULL, &err), -TS_EIO);
    assert_true(strstr(err.msg, "no_such_table") != NULL);
    assert_int_equal(ts_db_is_postgres(fx.db), fx.pg);
    assert_false(ts_db_is_postgres(NULL));
    ts_db_close(NULL);
    ts_db_res_free(NULL);
    assert_null(ts_db_res_get(NULL, 0, 0));
    assert_int_equal(ts_db_res_int(NULL, 0, 0, 3), 3);
    /* still usable after errors */
    assert_int_equal(scalar("SELECT 41 + 1"), 42);
}

static void test_memory(void **state)
{
    (void)state;
    struct ts_db *db = NULL;
    struct ts_db_res *r = NULL;
    struct ts_db_conn *tx = NULL;
    struct ts_err err = {0};
    assert_int_equal(ts_db_open("sqlite://:memory:", &db, &err), 0);
    assert_int_equal(ts_db_migrate(db, migs, 3, &err), 0);
    assert_int_equal(ts_db_begin(db, &tx, &err), 0);
    /* the only connection is in the transaction: a second borrow must fail, not hang */
    assert_int_equal(ts_db_exec(db, "SELECT 1", TS_DB_NOARGS, NULL, &err), -TS_EIO);
    ts_db_rollback(tx);
    assert_int_equal(ts_db_exec(db, "SELECT COUNT(*) FROM a", TS_DB_NOARGS, &r, &err), 0);
    assert_int_equal(ts_db_res_int(r, 0, 0, 0), 1);
    ts_db_res_free(r);
    ts_db_close(db);
}

/* ---- concurrency ------------------------------------------------------------------- */

#define WRITERS 8
#define INSERTS 200
#define RMW_THREADS 4
#define RMW_EACH 100

static atomic_int errors;
static atomic_int writers_left;

static void *writer(void *p)
{
    int id = (int)(intptr_t)p;
    for (int i = 0; i < INSERTS; i++) {
        char name[32];
        struct ts_err err = {0};
        snprintf(name, sizeof(name), "w%d-%d", id, i);
        if (ts_db_exec(fx.db, "INSERT INTO items (name, thread) VALUES (?, ?)",
                       TS_DB_ARGS(TS_DB_S(name), TS_DB_I(id)), NULL, &err) < 0) {
            fprintf(stderr, "writer: %s\n", err.msg);
            atomic_fetch_add(&errors, 1);
        }
    }
    atomic_fetch_sub(&writers_left, 1);
    return NULL;
}

static void *rmw(void *p)
{
    (void)p;
    for (int i = 0; i < RMW_EACH; i++) {
        struct ts_db_conn *tx = NULL;
        struct ts_db_res *r = NULL;
        struct ts_err err = {0};
        int rc = ts_db_begin(fx.db, &tx, &err);
        if (rc == 0) rc = ts_db_tx_exec(tx, "SELECT v FROM counter WHERE id = 1", TS_DB_NOARGS, &r, &err);
        if (rc == 0) {
            int64_t v = ts_db_res_int(r, 0, 0, -1);
            /* widen the window a read-modify-write race would need */
            if (i % 10 == 0) usleep(200);
            rc = ts_db_tx_exec(tx, "UPDATE counter SET v = ? WHERE id = 1", TS_DB_ARGS(TS_DB_I(v + 1)), NULL, &err);
        }
        ts_db_res_free(r);
        if (rc == 0) {
            rc = ts_db_commit(tx, &err);
        } else {
            ts_db_rollback(tx);
        }
        if (rc < 0) {
            fprintf(stderr, "rmw: %s\n", err.msg);
            atomic_fetch_add(&errors, 1);
        }
    }
    return NULL;
}

static void *reader(void *p)
{
    (void)p;
    while (atomic_load(&writers_left) > 0) {
        struct ts_db_res *r = NULL;
        struct ts_err err = {0};
        if (ts_db_exec(fx.db, "SELECT COUNT(*), MAX(id) FROM items", TS_DB_NOARGS, &r, &err) < 0) {
            fprintf(stderr, "reader: %s\n", err.msg);
            atomic_fetch_add(&errors, 1);
        }
        ts_db_res_free(r);
    }
    return NULL;
}

static void test_concurrency(void **state)
{
    (void)state;
    const char *items = fx.pg ? "CREATE TABLE items (id BIGSERIAL PRIMARY KEY, name TEXT UNIQUE, thread BIGINT)"
                              : "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT UNIQUE, thread BIGINT)";
    exec_ok(items, TS_DB_NOARGS, NULL);
    exec_ok("CREATE TABLE counter (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)", TS_DB_NOARGS, NULL);
    exec_ok("INSERT INTO counter (id, v) VALUES (1, 0)", TS_DB_NOARGS, NULL);
    atomic_store(&errors, 0);
    atomic_store(&writers_left, WRITERS);

    pthread_t w[WRITERS], m[RMW_THREADS], rd[2];
    for (int i = 0; i < WRITERS; i++) assert_int_equal(pthread_create(&w[i], NULL, writer, (void *)(intptr_t)i), 0);
    for (int i = 0; i < RMW_THREADS; i++) assert_int_equal(pthread_create(&m[i], NULL, rmw, NULL), 0);
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&rd[i], NULL, reader, NULL), 0);
    for (int i = 0; i < WRITERS; i++) pthread_join(w[i], NULL);
    for (int i = 0; i < RMW_THREADS; i++) pthread_join(m[i], NULL);
    for (int i = 0; i < 2; i++) pthread_join(rd[i], NULL);

    assert_int_equal(atomic_load(&errors), 0);
    assert_int_equal(scalar("SELECT COUNT(*) FROM items"), WRITERS * INSERTS);
    assert_int_equal(scalar("SELECT COUNT(DISTINCT thread) FROM items"), WRITERS);
    assert_int_equal(scalar("SELECT v FROM counter WHERE id = 1"), RMW_THREADS * RMW_EACH);
}

/* PostgreSQL: a connection killed under us is reset and the statement retried once. */
static void test_pg_reconnect(void **state)
{
    (void)state;
    struct ts_db *victim = NULL, *killer = NULL;
    struct ts_db_res *r = NULL;
    struct ts_err err = {0};
    assert_int_equal(ts_db_open(fx.url, &victim, &err), 0);
    assert_int_equal(ts_db_open(fx.url, &killer, &err), 0);
    assert_int_equal(ts_db_exec(victim, "SELECT pg_backend_pid()", TS_DB_NOARGS, &r, &err), 0);
    int64_t pid = ts_db_res_int(r, 0, 0, 0);
    ts_db_res_free(r);
    assert_int_equal(ts_db_exec(killer, "SELECT pg_terminate_backend(?)", TS_DB_ARGS(TS_DB_I(pid)), NULL, &err), 0);
    usleep(100000);
    assert_int_equal(ts_db_exec(victim, "SELECT 7", TS_DB_NOARGS, &r, &err), 0);
    assert_string_equal(ts_db_res_get(r, 0, 0), "7");
    ts_db_res_free(r);

    /* killed inside a transaction: the transaction fails, the connection comes back */
    struct ts_db_conn *tx = NULL;
    assert_int_equal(ts_db_begin(victim, &tx, &err), 0);
    assert_int_equal(ts_db_tx_exec(tx, "SELECT pg_backend_pid()", TS_DB_NOARGS, &r, &err), 0);
    pid = ts_db_res_int(r, 0, 0, 0);
    ts_db_res_free(r);
    assert_int_equal(ts_db_exec(killer, "SELECT pg_terminate_backend(?)", TS_DB_ARGS(TS_DB_I(pid)), NULL, &err), 0);
    usleep(100000);
    assert_int_equal(ts_db_tx_exec(tx, "SELECT 1", TS_DB_NOARGS, NULL, &err), -TS_EIO);
    assert_int_equal(ts_db_commit(tx, &err), -TS_EIO);
    assert_int_equal(ts_db_begin(victim, &tx, &err), 0);
    assert_int_equal(ts_db_commit(tx, &err), 0);
    ts_db_close(killer);
    ts_db_close(victim);
}

/* ---- main -------------------------------------------------------------------------- */

int main(void)
{
    const struct CMUnitTest sqlite_tests[] = {
        cmocka_unit_test_setup_teardown(test_migrate, sqlite_setup, sqlite_teardown),
        cmocka_unit_test_setup_teardown(test_migrate_race, sqlite_setup, sqlite_teardown),
        cmocka_unit_test_setup_teardown(test_values, sqlite_setup, sqlite_teardown),
        cmocka_unit_test_setup_teardown(test_each, sqlite_setup, sqlite_teardown),
        cmocka_unit_test_setup_teardown(test_conflict_and_returning, sqlite_setup, sqlite_teardown),
        cmocka_unit_test_setup_teardown(test_transactions, sqlite_setup, sqlite_teardown),
        cmocka_unit_test_setup_teardown(test_errors, sqlite_setup, sqlite_teardown),
        cmocka_unit_test_setup_teardown(test_concurrency, sqlite_setup, sqlite_teardown),
        cmocka_unit_test(test_memory),
    };
    const struct CMUnitTest pg_tests[] = {
        cmocka_unit_test_setup_teardown(test_migrate, pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(test_migrate_race, pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(test_values, pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(test_each, pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(test_conflict_and_returning, pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(test_transactions, pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(test_errors, pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(test_concurrency, pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(test_pg_reconnect, pg_setup, pg_teardown),
    };
    int failed = cmocka_run_group_tests_name("db_sqlite", sqlite_tests, NULL, NULL);
    const char *pg = getenv("TS_TEST_PG_URL");
    if (pg && *pg) {
        snprintf(pg_admin_url, sizeof(pg_admin_url), "%s", pg);
        failed += cmocka_run_group_tests_name("db_postgresql", pg_tests, pg_group_setup, pg_group_teardown);
    } else {
        printf("[  SKIPPED ] db_postgresql: set TS_TEST_PG_URL (scripts/pg-local.sh start) to run\n");
    }
    return failed;
}
