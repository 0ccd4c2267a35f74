/*
 * ts_object_rados_dl.c: dlopen()s librados.so.2 on first use and fills the function table of
 * ts_object_rados_dl.h (the RADOS object store calls librados only through it).
 */
#define TS_OBJECT_RADOS_DL_H_IMPL
#include "object/ts_object_rados_dl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "core/ts_core.h"

struct ts_object_rados_dl ts_object_rados_dl;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static bool loaded;

static const struct {
    const char *name;
    size_t off;
} syms[] = {
    {"rados_application_enable", offsetof(struct ts_object_rados_dl, rados_application_enable)},
    {"rados_conf_read_file", offsetof(struct ts_object_rados_dl, rados_conf_read_file)},
    {"rados_conf_set", offsetof(struct ts_object_rados_dl, rados_conf_set)},
    {"rados_connect", offsetof(struct ts_object_rados_dl, rados_connect)},
    {"rados_create", offsetof(struct ts_object_rados_dl, rados_create)},
    {"rados_create_write_op", offsetof(struct ts_object_rados_dl, rados_create_write_op)},
    {"rados_getxattr", offsetof(struct ts_object_rados_dl, rados_getxattr)},
    {"rados_ioctx_create", offsetof(struct ts_object_rados_dl, rados_ioctx_create)},
    {"rados_ioctx_destroy", offsetof(struct ts_object_rados_dl, rados_ioctx_destroy)},
    {"rados_nobjects_list_close", offsetof(struct ts_object_rados_dl, rados_nobjects_list_close)},
    {"rados_nobjects_list_next", offsetof(struct ts_object_rados_dl, rados_nobjects_list_next)},
    {"rados_nobjects_list_open", offsetof(struct ts_object_rados_dl, rados_nobjects_list_open)},
    {"rados_pool_create", offsetof(struct ts_object_rados_dl, rados_pool_create)},
    {"rados_pool_lookup", offsetof(struct ts_object_rados_dl, rados_pool_lookup)},
    {"rados_read", offsetof(struct ts_object_rados_dl, rados_read)},
    {"rados_release_write_op", offsetof(struct ts_object_rados_dl, rados_release_write_op)},
    {"rados_remove", offsetof(struct ts_object_rados_dl, rados_remove)},
    {"rados_shutdown", offsetof(struct ts_object_rados_dl, rados_shutdown)},
    {"rados_stat", offsetof(struct ts_object_rados_dl, rados_stat)},
    {"rados_write", offsetof(struct ts_object_rados_dl, rados_write)},
    {"rados_write_op_create", offsetof(struct ts_object_rados_dl, rados_write_op_create)},
    {"rados_write_op_operate", offsetof(struct ts_object_rados_dl, rados_write_op_operate)},
    {"rados_write_op_setxattr", offsetof(struct ts_object_rados_dl, rados_write_op_setxattr)},
};

int ts_object_rados_dl_load(struct ts_err *err)
{
    int rc = 0;
    pthread_mutex_lock(&lock);
    if (loaded) goto out;
    /* RTLD_LOCAL: nothing else in the process resolves against it; never dlclose()d */
    void *h = dlopen("librados.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        rc = ts_err_set(err, TS_EUNAVAIL, "cannot load librados.so.2 (Debian package librados2): %s", e ? e : "unknown error");
        goto out;
    }
    struct ts_object_rados_dl t;
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        void *p = dlsym(h, syms[i].name);
        if (!p) {
            rc = ts_err_set(err, TS_EUNAVAIL, "librados.so.2 has no %s: too old?", syms[i].name);
            dlclose(h);
            goto out;
        }
        memcpy((char *)&t + syms[i].off, &p, sizeof p);
    }
    ts_object_rados_dl = t;
    loaded = true;
out:
    pthread_mutex_unlock(&lock);
    return rc;
}
