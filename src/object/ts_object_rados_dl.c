/*
 * ts_object_rados_dl.c: the function table of ts_object_rados_dl.h (the RADOS object store calls
 * librados only through it), filled from librados.so.2 by ts_dl_load() on first use.
 */
#define TS_OBJECT_RADOS_DL_H_IMPL
#include "object/ts_object_rados_dl.h"

#include <stddef.h>

#include "core/ts_core.h"

struct ts_object_rados_dl ts_object_rados_dl;

#define SYM(fn) TS_DL_SYM(struct ts_object_rados_dl, fn)
static const struct ts_dl_sym syms[] = {
    SYM(rados_application_enable),
    SYM(rados_conf_read_file),
    SYM(rados_conf_set),
    SYM(rados_connect),
    SYM(rados_create),
    SYM(rados_create_write_op),
    SYM(rados_getxattr),
    SYM(rados_ioctx_create),
    SYM(rados_ioctx_destroy),
    SYM(rados_nobjects_list_close),
    SYM(rados_nobjects_list_next),
    SYM(rados_nobjects_list_open),
    SYM(rados_pool_create),
    SYM(rados_pool_lookup),
    SYM(rados_read),
    SYM(rados_release_write_op),
    SYM(rados_remove),
    SYM(rados_shutdown),
    SYM(rados_stat),
    SYM(rados_write),
    SYM(rados_write_op_create),
    SYM(rados_write_op_operate),
    SYM(rados_write_op_setxattr),
};

static struct ts_dl_lib lib = {.soname = "librados.so.2", .package = "librados2", .syms = syms,
                              .nsyms = sizeof syms / sizeof syms[0], .table = &ts_object_rados_dl,
                              .table_size = sizeof ts_object_rados_dl};

int ts_object_rados_dl_load(struct ts_err *err)
{
    return ts_dl_load(&lib, err);
}
