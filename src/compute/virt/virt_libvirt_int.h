/*
 * virt_libvirt_int.h: internals of the libvirt virt driver (ts_virt_libvirt.c) exposed for its
 * unit tests: the domain/device XML builders and the small parsers of libvirt's live XML. Not for
 * use outside src/compute/virt and tests/unit/compute.
 */
#ifndef TS_VIRT_LIBVIRT_INT_H
#define TS_VIRT_LIBVIRT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include "compute/virt/ts_virt.h"

/* What the XML builder needs besides the instance. */
struct ts_virt_libvirt_xml_opts {
    const char *virt_type;   /* domain type: "qemu" (TCG, default) or "kvm" */
    const char *emulator;    /* <emulator> path; NULL or "" = libvirt's choice */
    const char *cpu_model;   /* custom CPU model; NULL = "qemu64" */
    /* Whether a tap device already exists on the host (NULL = look in /sys/class/net). A NIC whose
     * tap exists is plugged as <interface type='ethernet'> with managed='no'. */
    bool (*tap_exists)(const char *tap);
};

/* Checks everything of inst the driver puts into XML or onto a command line (names, uuid, paths,
 * MACs, formats, sizes). 0 or -TS_EINVAL with the reason in err. */
int ts_virt_libvirt_check_instance(const struct ts_virt_instance *inst, struct ts_err *err);

/* The root disk of inst: the qcow2 overlay "<instance_dir>/disk" when it boots from an image,
 * else disks[0] (boot from volume). path gets the file, format "qcow2"/"raw". */
int ts_virt_libvirt_root_disk(const struct ts_virt_instance *inst, char *path, size_t path_len,
                              const char **format, struct ts_err *err);

/* "<instance_dir>/console.log" into out. */
int ts_virt_libvirt_console_path(const struct ts_virt_instance *inst, char *out, size_t out_len);

/* The full domain XML for inst (malloc'd into *out). Root disk is vda; volumes follow as vdb,
 * vdc, ... (or their given dev). Checks inst first. */
int ts_virt_libvirt_domain_xml(const struct ts_virt_instance *inst, const struct ts_virt_libvirt_xml_opts *opts,
                               char **out, struct ts_err *err);

/* A <disk> element for a volume on target dev (malloc'd into *out). */
int ts_virt_libvirt_disk_xml(const struct ts_virt_disk *disk, const char *dev, char **out, struct ts_err *err);

/* An <interface> element for nic (malloc'd into *out). */
int ts_virt_libvirt_nic_xml(const struct ts_virt_nic *nic, const struct ts_virt_libvirt_xml_opts *opts, char **out,
                            struct ts_err *err);

/* The first virtio disk name vdb..vdz not used as a <target dev=...> in domain_xml, into
 * out[8]; -TS_ECONFLICT if all are taken. */
int ts_virt_libvirt_next_dev(const char *domain_xml, char out[8]);

/* The target dev (into out[8]) of the <disk> in domain_xml whose target is dev (if dev is not
 * empty) or whose source is path. -TS_ENOTFOUND if there is none. */
int ts_virt_libvirt_find_disk(const char *domain_xml, const char *dev, const char *path, char out[8]);

/* Whether domain_xml holds an <interface> with MAC mac. */
bool ts_virt_libvirt_has_mac(const char *domain_xml, const char *mac);

/* Whether every directory above path (and path's own directory) is searchable by "other",
 * which QEMU needs when libvirt runs it as libvirt-qemu. On false, bad gets the first directory
 * that is not (or cannot be stat'ed). */
bool ts_virt_libvirt_path_traversable(const char *path, char *bad, size_t bad_len);

#endif
