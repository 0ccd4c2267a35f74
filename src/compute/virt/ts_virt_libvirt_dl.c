/*
 * ts_virt_libvirt_dl.c: the function table of ts_virt_libvirt_dl.h (the libvirt virt driver calls
 * libvirt only through it), filled from libvirt.so.0 by ts_dl_load() on first use.
 */
#define TS_VIRT_LIBVIRT_DL_H_IMPL
#include "compute/virt/ts_virt_libvirt_dl.h"

#include <stddef.h>

#include "core/ts_core.h"

struct ts_virt_libvirt_dl ts_virt_libvirt_dl;

#define SYM(fn) TS_DL_SYM(struct ts_virt_libvirt_dl, fn)
static const struct ts_dl_sym syms[] = {
    SYM(virConnectClose),
    SYM(virConnectGetType),
    SYM(virConnectGetVersion),
    SYM(virConnectIsAlive),
    SYM(virConnectListAllDomains),
    SYM(virConnectOpen),
    SYM(virConnectRef),
    SYM(virDomainAttachDeviceFlags),
    SYM(virDomainCreate),
    SYM(virDomainDefineXML),
    SYM(virDomainDestroy),
    SYM(virDomainDetachDeviceFlags),
    SYM(virDomainFree),
    SYM(virDomainGetName),
    SYM(virDomainGetState),
    SYM(virDomainGetUUIDString),
    SYM(virDomainGetXMLDesc),
    SYM(virDomainHasManagedSaveImage),
    SYM(virDomainIsActive),
    SYM(virDomainLookupByName),
    SYM(virDomainLookupByUUIDString),
    SYM(virDomainManagedSave),
    SYM(virDomainResume),
    SYM(virDomainShutdown),
    SYM(virDomainSuspend),
    SYM(virDomainUndefine),
    SYM(virDomainUndefineFlags),
    SYM(virGetLastError),
    SYM(virInitialize),
    SYM(virNodeGetInfo),
    SYM(virResetLastError),
    SYM(virSetErrorFunc),
};

static struct ts_dl_lib lib = {.soname = "libvirt.so.0", .package = "libvirt0", .syms = syms,
                              .nsyms = sizeof syms / sizeof syms[0], .table = &ts_virt_libvirt_dl,
                              .table_size = sizeof ts_virt_libvirt_dl};

int ts_virt_libvirt_dl_load(struct ts_err *err)
{
    return ts_dl_load(&lib, err);
}
