/*
 * ts_virt.h: the virt driver interface of the compute agent (Nova's nova.virt.driver).
 * Drivers: "fake" (in memory, for scale tests and many hosts) and "libvirt" (QEMU guests
 * through the libvirt C API, TCG unless KVM really works). The agent owns one driver
 * instance; every call may block (seconds) and is made from agent worker threads, so
 * drivers must be thread-safe.
 */
#ifndef TS_VIRT_H
#define TS_VIRT_H

#include <stdbool.h>
#include <stdint.h>
#include "conf/ts_conf.h"
#include "core/ts_core.h"

/* Nova's power states. */
enum ts_power_state {
    TS_POWER_NOSTATE = 0,
    TS_POWER_RUNNING = 1,
    TS_POWER_PAUSED = 3,
    TS_POWER_SHUTDOWN = 4,
    TS_POWER_CRASHED = 6,
    TS_POWER_SUSPENDED = 7,
};

#define TS_VIRT_MAX_NICS 16
#define TS_VIRT_MAX_DISKS 16

struct ts_virt_nic {
    char port_id[37];
    char mac[18];            /* "fa:16:3e:xx:xx:xx" */
    char bridge[16];         /* Linux bridge to plug into ("brq<net id prefix>") */
    char tap[16];            /* tap name ("tap<port id prefix>") */
    int mtu;                 /* 0 = default */
};

struct ts_virt_disk {
    char id[37];             /* volume id */
    char path[512];          /* file or block device on this host */
    char format[8];          /* "raw" or "qcow2" */
    char dev[8];             /* "vdb", ... (empty = next free) */
};

struct ts_virt_instance {
    char uuid[37];
    char name[256];          /* display name */
    char domain_name[64];    /* "instance-0000000a" (libvirt domain name) */
    int vcpus;
    int memory_mb;
    int root_gb;             /* root disk size; 0 = image size */
    char image_path[512];    /* cached base image on this host (may be empty: boot from volume) */
    char image_format[8];    /* "qcow2" or "raw" */
    char instance_dir[512];  /* the agent-made directory for disk overlay, console log */
    char *user_data;         /* base64 as given to the API, may be NULL (borrowed) */
    int n_nics;
    struct ts_virt_nic nics[TS_VIRT_MAX_NICS];
    int n_disks;             /* volumes attached at boot; disks[0] is root when image_path is empty */
    struct ts_virt_disk disks[TS_VIRT_MAX_DISKS];
};

struct ts_virt_host_info {
    char hypervisor_type[32];     /* "QEMU", "fake" */
    int64_t hypervisor_version;   /* e.g. 7002000 for 7.2.0 */
    int vcpus;
    int64_t memory_mb;
    int64_t local_gb;
    char cpu_info[256];           /* JSON text */
};

struct ts_virt_driver;   /* a driver instance (opaque) */

struct ts_virt_ops {
    const char *name;
    /* Creates a driver for host `host` with config conf ([libvirt] / [fake] sections). */
    int (*open)(const struct ts_conf *conf, const char *host, struct ts_virt_driver **out, struct ts_err *err);
    void (*close)(struct ts_virt_driver *drv);
    int (*host_info)(struct ts_virt_driver *drv, struct ts_virt_host_info *out, struct ts_err *err);
    /* Defines and starts the guest; returns when the hypervisor runs it. */
    int (*spawn)(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, struct ts_err *err);
    /* Stops and undefines the guest and removes its files in instance_dir (not volumes). */
    int (*destroy)(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, struct ts_err *err);
    /* Graceful (ACPI, up to timeout_s, then hard) or hard power off. */
    int (*power_off)(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, int timeout_s, struct ts_err *err);
    int (*power_on)(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, struct ts_err *err);
    int (*reboot)(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, bool hard, struct ts_err *err);
    int (*pause)(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, struct ts_err *err);
    int (*unpause)(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, struct ts_err *err);
    int (*suspend)(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, struct ts_err *err);
    int (*resume)(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, struct ts_err *err);
    int (*power_state)(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, enum ts_power_state *out,
                       struct ts_err *err);
    /* The serial console log (malloc'd, last max_bytes at most). */
    int (*console_log)(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, size_t max_bytes, char **out,
                       size_t *len, struct ts_err *err);
    /* Writes a standalone qcow2 copy of the root disk to out_path (guest may be running). */
    int (*snapshot)(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, const char *out_path,
                    struct ts_err *err);
    /* Disk hotplug (volumes). disk->dev is filled in by attach when empty. */
    int (*attach_disk)(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, struct ts_virt_disk *disk,
                       struct ts_err *err);
    int (*detach_disk)(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, const struct ts_virt_disk *disk,
                       struct ts_err *err);
    /* NIC hotplug (ports). */
    int (*attach_nic)(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, const struct ts_virt_nic *nic,
                      struct ts_err *err);
    int (*detach_nic)(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, const struct ts_virt_nic *nic,
                      struct ts_err *err);
    /* UUIDs of the guests this driver runs (for reconciliation at agent start); malloc'd array of
     * malloc'd strings. */
    int (*list)(struct ts_virt_driver *drv, char ***uuids, int *n, struct ts_err *err);
    /* Resize (Nova's migrate_disk_and_power_off / finish_migration / finish_revert_migration /
     * confirm_migration), all on the instance's host. inst has the current flavor's sizes, new
     * the new one's. migrate_disk_and_power_off refuses a smaller root disk (-TS_EINVAL "Unable
     * to resize disk down.", guest untouched), then powers the guest off (ACPI up to timeout_s,
     * then hard) and keeps the old disk and definition as a backup. finish_migration grows the
     * root disk to new->root_gb, redefines the guest with new's vCPUs and memory and starts it
     * when power_on. finish_revert_migration puts the backup back (old disk, old definition) and
     * starts the guest when power_on; confirm_migration drops the backup (no-op without one). */
    int (*migrate_disk_and_power_off)(struct ts_virt_driver *drv, const struct ts_virt_instance *inst,
                                      const struct ts_virt_instance *new_inst, int timeout_s, struct ts_err *err);
    int (*finish_migration)(struct ts_virt_driver *drv, const struct ts_virt_instance *new_inst, bool power_on,
                            struct ts_err *err);
    int (*finish_revert_migration)(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, bool power_on,
                                   struct ts_err *err);
    int (*confirm_migration)(struct ts_virt_driver *drv, const struct ts_virt_instance *inst, struct ts_err *err);
};

/* The drivers built in; NULL if name is unknown. */
const struct ts_virt_ops *ts_virt_find(const char *name);
extern const struct ts_virt_ops ts_virt_fake_ops;
extern const struct ts_virt_ops ts_virt_libvirt_ops;

#endif
