/*
 * ts_virt_libvirt_dl.h: libvirt, loaded with dlopen() when the libvirt virt driver is opened
 * (lv_open), so processes that never drive libvirt do not map libvirt and glib. Types come
 * from the real headers.
 */
#ifndef TS_VIRT_LIBVIRT_DL_H
#define TS_VIRT_LIBVIRT_DL_H

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

struct ts_err;

/* every libvirt.so.0 function the users call, resolved by ts_virt_libvirt_dl_load() */
struct ts_virt_libvirt_dl {
    __typeof__(virConnectClose) *virConnectClose;
    __typeof__(virConnectGetType) *virConnectGetType;
    __typeof__(virConnectGetVersion) *virConnectGetVersion;
    __typeof__(virConnectIsAlive) *virConnectIsAlive;
    __typeof__(virConnectListAllDomains) *virConnectListAllDomains;
    __typeof__(virConnectOpen) *virConnectOpen;
    __typeof__(virConnectRef) *virConnectRef;
    __typeof__(virDomainAttachDeviceFlags) *virDomainAttachDeviceFlags;
    __typeof__(virDomainCreate) *virDomainCreate;
    __typeof__(virDomainDefineXML) *virDomainDefineXML;
    __typeof__(virDomainDestroy) *virDomainDestroy;
    __typeof__(virDomainDetachDeviceFlags) *virDomainDetachDeviceFlags;
    __typeof__(virDomainFree) *virDomainFree;
    __typeof__(virDomainGetName) *virDomainGetName;
    __typeof__(virDomainGetState) *virDomainGetState;
    __typeof__(virDomainGetUUIDString) *virDomainGetUUIDString;
    __typeof__(virDomainGetXMLDesc) *virDomainGetXMLDesc;
    __typeof__(virDomainHasManagedSaveImage) *virDomainHasManagedSaveImage;
    __typeof__(virDomainIsActive) *virDomainIsActive;
    __typeof__(virDomainLookupByName) *virDomainLookupByName;
    __typeof__(virDomainLookupByUUIDString) *virDomainLookupByUUIDString;
    __typeof__(virDomainManagedSave) *virDomainManagedSave;
    __typeof__(virDomainResume) *virDomainResume;
    __typeof__(virDomainShutdown) *virDomainShutdown;
    __typeof__(virDomainSuspend) *virDomainSuspend;
    __typeof__(virDomainUndefine) *virDomainUndefine;
    __typeof__(virDomainUndefineFlags) *virDomainUndefineFlags;
    __typeof__(virGetLastError) *virGetLastError;
    __typeof__(virInitialize) *virInitialize;
    __typeof__(virNodeGetInfo) *virNodeGetInfo;
    __typeof__(virResetLastError) *virResetLastError;
    __typeof__(virSetErrorFunc) *virSetErrorFunc;
};
extern struct ts_virt_libvirt_dl ts_virt_libvirt_dl;

/* dlopen()s libvirt.so.0 once (thread-safe) and fills ts_virt_libvirt_dl; 0, or TS_EUNAVAIL with a message
 * naming the library when it or one of its functions is missing. */
int ts_virt_libvirt_dl_load(struct ts_err *err);

/* the users call the table through the library's own names (not in the file that fills it) */
#ifndef TS_VIRT_LIBVIRT_DL_H_IMPL
#define virConnectClose (*ts_virt_libvirt_dl.virConnectClose)
#define virConnectGetType (*ts_virt_libvirt_dl.virConnectGetType)
#define virConnectGetVersion (*ts_virt_libvirt_dl.virConnectGetVersion)
#define virConnectIsAlive (*ts_virt_libvirt_dl.virConnectIsAlive)
#define virConnectListAllDomains (*ts_virt_libvirt_dl.virConnectListAllDomains)
#define virConnectOpen (*ts_virt_libvirt_dl.virConnectOpen)
#define virConnectRef (*ts_virt_libvirt_dl.virConnectRef)
#define virDomainAttachDeviceFlags (*ts_virt_libvirt_dl.virDomainAttachDeviceFlags)
#define virDomainCreate (*ts_virt_libvirt_dl.virDomainCreate)
#define virDomainDefineXML (*ts_virt_libvirt_dl.virDomainDefineXML)
#define virDomainDestroy (*ts_virt_libvirt_dl.virDomainDestroy)
#define virDomainDetachDeviceFlags (*ts_virt_libvirt_dl.virDomainDetachDeviceFlags)
#define virDomainFree (*ts_virt_libvirt_dl.virDomainFree)
#define virDomainGetName (*ts_virt_libvirt_dl.virDomainGetName)
#define virDomainGetState (*ts_virt_libvirt_dl.virDomainGetState)
#define virDomainGetUUIDString (*ts_virt_libvirt_dl.virDomainGetUUIDString)
#define virDomainGetXMLDesc (*ts_virt_libvirt_dl.virDomainGetXMLDesc)
#define virDomainHasManagedSaveImage (*ts_virt_libvirt_dl.virDomainHasManagedSaveImage)
#define virDomainIsActive (*ts_virt_libvirt_dl.virDomainIsActive)
#define virDomainLookupByName (*ts_virt_libvirt_dl.virDomainLookupByName)
#define virDomainLookupByUUIDString (*ts_virt_libvirt_dl.virDomainLookupByUUIDString)
#define virDomainManagedSave (*ts_virt_libvirt_dl.virDomainManagedSave)
#define virDomainResume (*ts_virt_libvirt_dl.virDomainResume)
#define virDomainShutdown (*ts_virt_libvirt_dl.virDomainShutdown)
#define virDomainSuspend (*ts_virt_libvirt_dl.virDomainSuspend)
#define virDomainUndefine (*ts_virt_libvirt_dl.virDomainUndefine)
#define virDomainUndefineFlags (*ts_virt_libvirt_dl.virDomainUndefineFlags)
#define virGetLastError (*ts_virt_libvirt_dl.virGetLastError)
#define virInitialize (*ts_virt_libvirt_dl.virInitialize)
#define virNodeGetInfo (*ts_virt_libvirt_dl.virNodeGetInfo)
#define virResetLastError (*ts_virt_libvirt_dl.virResetLastError)
#define virSetErrorFunc (*ts_virt_libvirt_dl.virSetErrorFunc)
#endif

#endif
