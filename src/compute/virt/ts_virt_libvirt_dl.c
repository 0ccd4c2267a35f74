/*
 * ts_virt_libvirt_dl.c: dlopen()s libvirt.so.0 on first use and fills the function table of
 * ts_virt_libvirt_dl.h (the libvirt virt driver calls libvirt only through it).
 */
#define TS_VIRT_LIBVIRT_DL_H_IMPL
#include "compute/virt/ts_virt_libvirt_dl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "core/ts_core.h"

struct ts_virt_libvirt_dl ts_virt_libvirt_dl;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static bool loaded;

static const struct {
    const char *name;
    size_t off;
} syms[] = {
    {"virConnectClose", offsetof(struct ts_virt_libvirt_dl, virConnectClose)},
    {"virConnectGetType", offsetof(struct ts_virt_libvirt_dl, virConnectGetType)},
    {"virConnectGetVersion", offsetof(struct ts_virt_libvirt_dl, virConnectGetVersion)},
    {"virConnectIsAlive", offsetof(struct ts_virt_libvirt_dl, virConnectIsAlive)},
    {"virConnectListAllDomains", offsetof(struct ts_virt_libvirt_dl, virConnectListAllDomains)},
    {"virConnectOpen", offsetof(struct ts_virt_libvirt_dl, virConnectOpen)},
    {"virConnectRef", offsetof(struct ts_virt_libvirt_dl, virConnectRef)},
    {"virDomainAttachDeviceFlags", offsetof(struct ts_virt_libvirt_dl, virDomainAttachDeviceFlags)},
    {"virDomainCreate", offsetof(struct ts_virt_libvirt_dl, virDomainCreate)},
    {"virDomainDefineXML", offsetof(struct ts_virt_libvirt_dl, virDomainDefineXML)},
    {"virDomainDestroy", offsetof(struct ts_virt_libvirt_dl, virDomainDestroy)},
    {"virDomainDetachDeviceFlags", offsetof(struct ts_virt_libvirt_dl, virDomainDetachDeviceFlags)},
    {"virDomainFree", offsetof(struct ts_virt_libvirt_dl, virDomainFree)},
    {"virDomainGetName", offsetof(struct ts_virt_libvirt_dl, virDomainGetName)},
    {"virDomainGetState", offsetof(struct ts_virt_libvirt_dl, virDomainGetState)},
    {"virDomainGetUUIDString", offsetof(struct ts_virt_libvirt_dl, virDomainGetUUIDString)},
    {"virDomainGetXMLDesc", offsetof(struct ts_virt_libvirt_dl, virDomainGetXMLDesc)},
    {"virDomainHasManagedSaveImage", offsetof(struct ts_virt_libvirt_dl, virDomainHasManagedSaveImage)},
    {"virDomainIsActive", offsetof(struct ts_virt_libvirt_dl, virDomainIsActive)},
    {"virDomainLookupByName", offsetof(struct ts_virt_libvirt_dl, virDomainLookupByName)},
    {"virDomainLookupByUUIDString", offsetof(struct ts_virt_libvirt_dl, virDomainLookupByUUIDString)},
    {"virDomainManagedSave", offsetof(struct ts_virt_libvirt_dl, virDomainManagedSave)},
    {"virDomainResume", offsetof(struct ts_virt_libvirt_dl, virDomainResume)},
    {"virDomainShutdown", offsetof(struct ts_virt_libvirt_dl, virDomainShutdown)},
    {"virDomainSuspend", offsetof(struct ts_virt_libvirt_dl, virDomainSuspend)},
    {"virDomainUndefine", offsetof(struct ts_virt_libvirt_dl, virDomainUndefine)},
    {"virDomainUndefineFlags", offsetof(struct ts_virt_libvirt_dl, virDomainUndefineFlags)},
    {"virGetLastError", offsetof(struct ts_virt_libvirt_dl, virGetLastError)},
    {"virInitialize", offsetof(struct ts_virt_libvirt_dl, virInitialize)},
    {"virNodeGetInfo", offsetof(struct ts_virt_libvirt_dl, virNodeGetInfo)},
    {"virResetLastError", offsetof(struct ts_virt_libvirt_dl, virResetLastError)},
    {"virSetErrorFunc", offsetof(struct ts_virt_libvirt_dl, virSetErrorFunc)},
};

int ts_virt_libvirt_dl_load(struct ts_err *err)
{
    int rc = 0;
    pthread_mutex_lock(&lock);
    if (loaded) goto out;
    /* RTLD_LOCAL: nothing else in the process resolves against it; never dlclose()d */
    void *h = dlopen("libvirt.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        rc = ts_err_set(err, TS_EUNAVAIL, "cannot load libvirt.so.0 (Debian package libvirt0): %s", e ? e : "unknown error");
        goto out;
    }
    struct ts_virt_libvirt_dl t;
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        void *p = dlsym(h, syms[i].name);
        if (!p) {
            rc = ts_err_set(err, TS_EUNAVAIL, "libvirt.so.0 has no %s: too old?", syms[i].name);
            dlclose(h);
            goto out;
        }
        memcpy((char *)&t + syms[i].off, &p, sizeof p);
    }
    ts_virt_libvirt_dl = t;
    loaded = true;
out:
    pthread_mutex_unlock(&lock);
    return rc;
}
