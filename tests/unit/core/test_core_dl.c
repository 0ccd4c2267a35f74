/*
 * test_core_dl.c: unit tests for ts_dl_load() (src/core/ts_core_dl.c): a library that is not
 * there, and a function a library lacks, give TS_EUNAVAIL (503) with a message naming them and
 * leave the table untouched; a real library (libm) fills the table once, also when eight
 * threads ask at the same time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>

#include "core/ts_core.h"

#define NO_LIB "libts-no-such-library.so.7"

/* members named after the functions, as the real tables are */
struct m_table {
    double (*cos)(double);
    double (*sqrt)(double);
    void (*ts_no_such_function)(void);
};

static const struct ts_dl_sym m_syms[] = {
    TS_DL_SYM(struct m_table, cos),
    TS_DL_SYM(struct m_table, sqrt),
};
static const struct ts_dl_sym m_syms_missing[] = {
    TS_DL_SYM(struct m_table, cos),
    TS_DL_SYM(struct m_table, ts_no_such_function),
};

static void test_dl_missing_library(void **state)
{
    (void)state;
    struct m_table t = {0};
    struct ts_dl_lib lib = {.soname = NO_LIB, .package = "ts-none", .syms = m_syms, .nsyms = 2, .table = &t,
                            .table_size = sizeof t};
    struct ts_err err;
    ts_err_clear(&err);
    int rc = ts_dl_load(&lib, &err);
    assert_int_equal(rc, -TS_EUNAVAIL);
    assert_int_equal(ts_err_status(rc), 503);
    assert_int_equal(err.code, TS_EUNAVAIL);
    const char *want = "cannot load " NO_LIB " (Debian package ts-none): ";
    assert_true(ts_startswith(err.msg, want));
    /* dlerror()'s reason follows: it names the file too */
    assert_non_null(strstr(err.msg + strlen(want), NO_LIB));
    assert_false(lib.loaded);
    assert_null(t.cos);
    assert_null(t.sqrt);
    /* not remembered as failed: tried again, with or without an err */
    assert_int_equal(ts_dl_load(&lib, NULL), -TS_EUNAVAIL);
    assert_false(lib.loaded);
}

static void test_dl_missing_function(void **state)
{
    (void)state;
    struct m_table t = {0};
    struct ts_dl_lib lib = {.soname = "libm.so.6", .package = "libc6", .syms = m_syms_missing, .nsyms = 2,
                            .table = &t, .table_size = sizeof t};
    struct ts_err err;
    ts_err_clear(&err);
    assert_int_equal(ts_dl_load(&lib, &err), -TS_EUNAVAIL);
    assert_int_equal(err.code, TS_EUNAVAIL);
    assert_string_equal(err.msg, "libm.so.6 has no ts_no_such_function: too old?");
    assert_false(lib.loaded);
    /* cos was found before the missing one, yet the table is as it was */
    assert_null(t.cos);
    assert_null(t.ts_no_such_function);
}

static void test_dl_load(void **state)
{
    (void)state;
    struct m_table t = {0};
    struct ts_dl_lib lib = {.soname = "libm.so.6", .package = "libc6", .syms = m_syms, .nsyms = 2, .table = &t,
                            .table_size = sizeof t};
    struct ts_err err;
    ts_err_clear(&err);
    assert_int_equal(ts_dl_load(&lib, &err), 0);
    assert_true(lib.loaded);
    assert_non_null(t.cos);
    assert_non_null(t.sqrt);
    assert_true(t.sqrt(16.0) == 4.0);
    assert_true(t.cos(0.0) == 1.0);
    assert_null(t.ts_no_such_function);
    /* once: a later call does not open anything (it would fail on this name) */
    lib.soname = NO_LIB;
    assert_int_equal(ts_dl_load(&lib, &err), 0);
    assert_true(t.sqrt(9.0) == 3.0);
}

struct race {
    struct ts_dl_lib *lib;
    int rc;
};

static void *race_load(void *arg)
{
    struct race *r = arg;
    r->rc = ts_dl_load(r->lib, NULL);
    return NULL;
}

static void test_dl_threads(void **state)
{
    (void)state;
    struct m_table t = {0};
    struct ts_dl_lib lib = {.soname = "libm.so.6", .package = "libc6", .syms = m_syms, .nsyms = 2, .table = &t,
                            .table_size = sizeof t};
    pthread_t th[8];
    struct race r[8];
    for (int i = 0; i < 8; i++) {
        r[i] = (struct race){.lib = &lib, .rc = -1};
        assert_int_equal(pthread_create(&th[i], NULL, race_load, &r[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(r[i].rc, 0);
    }
    assert_true(lib.loaded);
    assert_true(t.sqrt(25.0) == 5.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dl_missing_library),
        cmocka_unit_test(test_dl_missing_function),
        cmocka_unit_test(test_dl_load),
        cmocka_unit_test(test_dl_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
