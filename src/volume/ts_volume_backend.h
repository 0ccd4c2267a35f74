/*
 * ts_volume_backend.h: the driver interface every volume backend implements (Cinder's
 * VolumeDriver reduced to what tinystack uses). A backend holds volume and snapshot data
 * under names derived from their ids; the manager calls it on bus worker threads only.
 * Writes that take time (create from image, clones) go to a temporary name and are
 * renamed into place on success, so a crash never leaves a half-written volume.
 */
#ifndef TS_VOLUME_BACKEND_H
#define TS_VOLUME_BACKEND_H

#include <jansson.h>
#include <stdint.h>
#include "core/ts_core.h"

struct ts_volume_backend;

struct ts_volume_backend_stats {
    double total_gb, free_gb;
    bool thin;
};

struct ts_volume_backend_ops {
    const char *driver;
    /* An empty volume of size_gb. */
    int (*create)(struct ts_volume_backend *be, const char *vol_id, int64_t size_gb, struct ts_err *err);
    /* A volume from an image file (any format qemu-img reads), grown to size_gb. */
    int (*create_from_image)(struct ts_volume_backend *be, const char *vol_id, const char *image_path,
                             int64_t size_gb, struct ts_err *err);
    /* A copy of another volume or snapshot (src_is_snapshot), grown to size_gb. */
    int (*clone)(struct ts_volume_backend *be, const char *vol_id, const char *src_id, bool src_is_snapshot,
                 int64_t size_gb, struct ts_err *err);
    int (*delete)(struct ts_volume_backend *be, const char *vol_id, struct ts_err *err);
    int (*extend)(struct ts_volume_backend *be, const char *vol_id, int64_t new_size_gb, struct ts_err *err);
    int (*snapshot_create)(struct ts_volume_backend *be, const char *snap_id, const char *vol_id,
                           struct ts_err *err);
    int (*snapshot_delete)(struct ts_volume_backend *be, const char *snap_id, struct ts_err *err);
    /* Overwrites the volume with the snapshot's data. */
    int (*revert)(struct ts_volume_backend *be, const char *vol_id, const char *snap_id, struct ts_err *err);
    /* Where the data is: a file or a block device path. */
    void (*path)(struct ts_volume_backend *be, const char *vol_id, char *out, size_t outlen);
    /* connection_info for an attachment (caller decrefs). */
    json_t *(*connection_info)(struct ts_volume_backend *be, const char *vol_id);
    int (*stats)(struct ts_volume_backend *be, struct ts_volume_backend_stats *out);
    /* Removes leftovers of interrupted work (temporary files). */
    void (*cleanup)(struct ts_volume_backend *be);
    void (*free)(struct ts_volume_backend *be);
};

struct ts_volume_backend {
    const struct ts_volume_backend_ops *ops;
    char name[64];      /* volume_backend_name */
    char dir[1024];     /* file backend: where volumes live */
    char format[16];    /* file backend: raw | qcow2 */
    double capacity_gb; /* configured total, 0 = the filesystem's */
    double ratio;       /* max_over_subscription_ratio */
};

/* Opens the file backend: volumes as sparse raw (or qcow2) files in dir. */
int ts_volume_backend_file_open(const char *name, const char *dir, const char *format, double capacity_gb,
                                struct ts_volume_backend **out, struct ts_err *err);

/* Opens the LVM backend on volume group vg: lvm_type "thin" (thin LVs in pool, default
 * "<vg>-pool"; needs device-mapper), "default" (linear LVs; mapped with loop devices when the
 * kernel has no device-mapper) or "auto"/NULL (thin where device-mapper is there).
 * state_dir holds temporary files (image downloads). */
int ts_volume_backend_lvm_open(const char *name, const char *vg, const char *lvm_type, const char *pool,
                               const char *state_dir, double capacity_gb, struct ts_volume_backend **out,
                               struct ts_err *err);

/* Runs argv (argv[0] an absolute path) and waits; stderr captured into err on failure. */
int ts_volume_run(const char *const *argv, struct ts_err *err);

#endif
