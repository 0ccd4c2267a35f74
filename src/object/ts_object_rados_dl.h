/*
 * ts_object_rados_dl.h: librados, loaded with dlopen() when the object store's RADOS backend
 * is opened (ts_object_store_rados_new), so processes that never use Ceph do not map
 * librados, libceph-common and their C++ runtime. Types come from the real header.
 */
#ifndef TS_OBJECT_RADOS_DL_H
#define TS_OBJECT_RADOS_DL_H

#include <rados/librados.h>

struct ts_err;

/* every librados.so.2 function the users call, resolved by ts_object_rados_dl_load() */
struct ts_object_rados_dl {
    __typeof__(rados_application_enable) *rados_application_enable;
    __typeof__(rados_conf_read_file) *rados_conf_read_file;
    __typeof__(rados_conf_set) *rados_conf_set;
    __typeof__(rados_connect) *rados_connect;
    __typeof__(rados_create) *rados_create;
    __typeof__(rados_create_write_op) *rados_create_write_op;
    __typeof__(rados_getxattr) *rados_getxattr;
    __typeof__(rados_ioctx_create) *rados_ioctx_create;
    __typeof__(rados_ioctx_destroy) *rados_ioctx_destroy;
    __typeof__(rados_nobjects_list_close) *rados_nobjects_list_close;
    __typeof__(rados_nobjects_list_next) *rados_nobjects_list_next;
    __typeof__(rados_nobjects_list_open) *rados_nobjects_list_open;
    __typeof__(rados_pool_create) *rados_pool_create;
    __typeof__(rados_pool_lookup) *rados_pool_lookup;
    __typeof__(rados_read) *rados_read;
    __typeof__(rados_release_write_op) *rados_release_write_op;
    __typeof__(rados_remove) *rados_remove;
    __typeof__(rados_shutdown) *rados_shutdown;
    __typeof__(rados_stat) *rados_stat;
    __typeof__(rados_write) *rados_write;
    __typeof__(rados_write_op_create) *rados_write_op_create;
    __typeof__(rados_write_op_operate) *rados_write_op_operate;
    __typeof__(rados_write_op_setxattr) *rados_write_op_setxattr;
};
extern struct ts_object_rados_dl ts_object_rados_dl;

/* dlopen()s librados.so.2 once (thread-safe) and fills ts_object_rados_dl; 0, or TS_EUNAVAIL with a message
 * naming the library when it or one of its functions is missing. */
int ts_object_rados_dl_load(struct ts_err *err);

/* the users call the table through the library's own names (not in the file that fills it) */
#ifndef TS_OBJECT_RADOS_DL_H_IMPL
#define rados_application_enable (*ts_object_rados_dl.rados_application_enable)
#define rados_conf_read_file (*ts_object_rados_dl.rados_conf_read_file)
#define rados_conf_set (*ts_object_rados_dl.rados_conf_set)
#define rados_connect (*ts_object_rados_dl.rados_connect)
#define rados_create (*ts_object_rados_dl.rados_create)
#define rados_create_write_op (*ts_object_rados_dl.rados_create_write_op)
#define rados_getxattr (*ts_object_rados_dl.rados_getxattr)
#define rados_ioctx_create (*ts_object_rados_dl.rados_ioctx_create)
#define rados_ioctx_destroy (*ts_object_rados_dl.rados_ioctx_destroy)
#define rados_nobjects_list_close (*ts_object_rados_dl.rados_nobjects_list_close)
#define rados_nobjects_list_next (*ts_object_rados_dl.rados_nobjects_list_next)
#define rados_nobjects_list_open (*ts_object_rados_dl.rados_nobjects_list_open)
#define rados_pool_create (*ts_object_rados_dl.rados_pool_create)
#define rados_pool_lookup (*ts_object_rados_dl.rados_pool_lookup)
#define rados_read (*ts_object_rados_dl.rados_read)
#define rados_release_write_op (*ts_object_rados_dl.rados_release_write_op)
#define rados_remove (*ts_object_rados_dl.rados_remove)
#define rados_shutdown (*ts_object_rados_dl.rados_shutdown)
#define rados_stat (*ts_object_rados_dl.rados_stat)
#define rados_write (*ts_object_rados_dl.rados_write)
#define rados_write_op_create (*ts_object_rados_dl.rados_write_op_create)
#define rados_write_op_operate (*ts_object_rados_dl.rados_write_op_operate)
#define rados_write_op_setxattr (*ts_object_rados_dl.rados_write_op_setxattr)
#endif

#endif
