/*
 * ts_core_dl.c: shared libraries loaded with dlopen() on first use (libvirt by the libvirt virt
 * driver, librados by the object store's RADOS backend), so processes that never need them do
 * not map them. ts_dl_load() fills a caller's table of function pointers from a {name, offset}
 * list once, and names the library and its Debian package when it cannot.
 */
#include "core/ts_core.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* one lock for every library: loads are rare, and dlopen() serialises on the loader's lock anyway */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

int ts_dl_load(struct ts_dl_lib *lib, struct ts_err *err)
{
    int rc = 0;
    char *table = NULL;
    pthread_mutex_lock(&lock);
    if (lib->loaded) goto out;
    /* RTLD_LOCAL: nothing else in the process resolves against it; never dlclose()d */
    void *h = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        rc = ts_err_set(err, TS_EUNAVAIL, "cannot load %s (Debian package %s): %s", lib->soname, lib->package,
                        e ? e : "unknown error");
        goto out;
    }
    /* filled aside and copied whole: a failed load leaves the caller's table as it was */
    table = ts_calloc(1, lib->table_size);
    for (size_t i = 0; i < lib->nsyms; i++) {
        void *p = dlsym(h, lib->syms[i].name);
        if (!p) {
            rc = ts_err_set(err, TS_EUNAVAIL, "%s has no %s: too old?", lib->soname, lib->syms[i].name);
            dlclose(h);
            goto out;
        }
        TS_ASSERT(lib->syms[i].offset + sizeof p <= lib->table_size);
        memcpy(table + lib->syms[i].offset, &p, sizeof p);
    }
    memcpy(lib->table, table, lib->table_size);
    lib->loaded = true;
out:
    pthread_mutex_unlock(&lock);
    free(table);
    return rc;
}
