/*
 * ts_virt_fake.c: the fake virt driver (Nova's fake.FakeDriver): guests are entries in an
 * in-memory table guarded by one mutex, every operation only flips their power state
 * (resize records the new sizes and keeps the old ones until confirm or revert).
 * host_info comes from [fake] vcpus / memory_mb / local_gb. Used for scale tests and
 * for many agents on one machine; thread-safe.
 */
#include "compute/virt/ts_virt.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fake_guest {
    char uuid[37];
    char name[256];
    enum ts_power_state state;
    int vcpus, memory_mb, root_gb;          /* the sizes the guest runs with */
    bool has_backup;                        /* resized: old sizes kept until confirm/revert */
    int old_vcpus, old_memory_mb, old_root_gb;
    int n_disks;
    struct ts_virt_disk disks[TS_VIRT_MAX_DISKS];
};

struct ts_virt_driver {
    pthread_mutex_t lock;
    char host[256];
    int vcpus;
    int64_t memory_mb, local_gb;
    struct fake_guest **guests;   /* unordered; removal swaps with the last */
    int n, cap;
};

static int fake_open(const struct ts_conf *conf, const char *host, struct ts_virt_driver **out, struct ts_err *err)
{
    (void)err;
    struct ts_virt_driver *d = ts_calloc(1, sizeof(*d));
    pthread_mutex_init(&d->lock, NULL);
    snprintf(d->host, sizeof(d->host), "%s", host ? host : "fake");
    d->vcpus = (int)ts_conf_get_int(conf, "fake", "vcpus", 1000);
    d->memory_mb = ts_conf_get_int(conf, "fake", "memory_mb", 1048576);
    d->local_gb = ts_conf_get_int(conf, "fake", "local_gb", 100000);
    *out = d;
    return 0;
}

static void fake_close(struct ts_virt_driver *d)
{
    if (!d) return;
    for (int i = 0; i < d->n; i++) free(d->guests[i]);
    free(d->guests);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

static int find(struct ts_virt_driver *d, const char *uuid)
{
    for (int i = 0; i < d->n; i++)
        if (!strcmp(d->guests[i]->uuid, uuid)) return i;
    return -1;
}

static int fake_host_info(struct ts_virt_driver *d, struct ts_virt_host_info *out, struct ts_err *err)
{
    (void)err;
    memset(out, 0, sizeof(*out));
    snprintf(out->hypervisor_type, sizeof(out->hypervisor_type), "fake");
    out->hypervisor_version = 1000;
    out->vcpus = d->vcpus;
    out->memory_mb = d->memory_mb;
    out->local_gb = d->local_gb;
    snprintf(out->cpu_info, sizeof(out->cpu_info),
             "{\"arch\": \"x86_64\", \"model\": \"fake\", \"vendor\": \"fake\", "
             "\"topology\": {\"sockets\": 1, \"cores\": %d, \"threads\": 1}, \"features\": []}",
             d->vcpus);
    return 0;
}

static int fake_spawn(struct ts_virt_driver *d, const struct ts_virt_instance *inst, struct ts_err *err)
{
    pthread_mutex_lock(&d->lock);
    int i = find(d, inst->uuid);
    if (i >= 0) {
        pthread_mutex_unlock(&d->lock);
        return ts_err_set(err, TS_ECONFLICT, "guest %s already exists", inst->uuid);
    }
    struct fake_guest *g = ts_calloc(1, sizeof(*g));
    snprintf(g->uuid, sizeof(g->uuid), "%s", inst->uuid);
    snprintf(g->name, sizeof(g->name), "%s", inst->name);
    g->state = TS_POWER_RUNNING;
    g->vcpus = inst->vcpus;
    g->memory_mb = inst->memory_mb;
    g->root_gb = inst->root_gb;
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 64;
        d->guests = ts_realloc(d->guests, (size_t)d->cap * sizeof(*d->guests));
    }
    d->guests[d->n++] = g;
    pthread_mutex_unlock(&d->lock);
    return 0;
}

static int fake_destroy(struct ts_virt_driver *d, const struct ts_virt_instance *inst, struct ts_err *err)
{
    (void)err;
    pthread_mutex_lock(&d->lock);
    int i = find(d, inst->uuid);
    if (i >= 0) {
        free(d->guests[i]);
        d->guests[i] = d->guests[--d->n];
    }
    pthread_mutex_unlock(&d->lock);
    return 0;   /* destroying a missing guest is fine, as in Nova */
}

/* Sets the state of a guest when it is in one of the allowed states (mask of 1<<state). */
static int set_state(struct ts_virt_driver *d, const struct ts_virt_instance *inst, unsigned allowed,
                     enum ts_power_state to, struct ts_err *err)
{
    int rc = 0;
    pthread_mutex_lock(&d->lock);
    int i = find(d, inst->uuid);
    if (i < 0) {
        rc = ts_err_set(err, TS_ENOTFOUND, "Instance %s could not be found.", inst->uuid);
    } else if (allowed && !(allowed & (1u << d->guests[i]->state))) {
        rc = ts_err_set(err, TS_ECONFLICT, "guest %s is in power state %d", inst->uuid, d->guests[i]->state);
    } else {
        d->guests[i]->state = to;
    }
    pthread_mutex_unlock(&d->lock);
    return rc;
}

static int fake_power_off(struct ts_virt_driver *d, const struct ts_virt_instance *inst, int timeout_s,
                          struct ts_err *err)
{
    (void)timeout_s;
    return set_state(d, inst, 0, TS_POWER_SHUTDOWN, err);
}

static int fake_power_on(struct ts_virt_driver *d, const struct ts_virt_instance *inst, struct ts_err *err)
{
    return set_state(d, inst, 0, TS_POWER_RUNNING, err);
}

static int fake_reboot(struct ts_virt_driver *d, const struct ts_virt_instance *inst, bool hard, struct ts_err *err)
{
    (void)hard;
    return set_state(d, inst, 0, TS_POWER_RUNNING, err);
}

static int fake_pause(struct ts_virt_driver *d, const struct ts_virt_instance *inst, struct ts_err *err)
{
    return set_state(d, inst, 1u << TS_POWER_RUNNING, TS_POWER_PAUSED, err);
}

static int fake_unpause(struct ts_virt_driver *d, const struct ts_virt_instance *inst, struct ts_err *err)
{
    return set_state(d, inst, 1u << TS_POWER_PAUSED, TS_POWER_RUNNING, err);
}

static int fake_suspend(struct ts_virt_driver *d, const struct ts_virt_instance *inst, struct ts_err *err)
{
    return set_state(d, inst, (1u << TS_POWER_RUNNING) | (1u << TS_POWER_PAUSED), TS_POWER_SUSPENDED, err);
}

static int fake_resume(struct ts_virt_driver *d, const struct ts_virt_instance *inst, struct ts_err *err)
{
    return set_state(d, inst, 1u << TS_POWER_SUSPENDED, TS_POWER_RUNNING, err);
}

static int fake_power_state(struct ts_virt_driver *d, const struct ts_virt_instance *inst, enum ts_power_state *out,
                            struct ts_err *err)
{
    int rc = 0;
    pthread_mutex_lock(&d->lock);
    int i = find(d, inst->uuid);
    if (i < 0) rc = ts_err_set(err, TS_ENOTFOUND, "Instance %s could not be found.", inst->uuid);
    else *out = d->guests[i]->state;
    pthread_mutex_unlock(&d->lock);
    return rc;
}

static int fake_console_log(struct ts_virt_driver *d, const struct ts_virt_instance *inst, size_t max_bytes,
                            char **out, size_t *len, struct ts_err *err)
{
    pthread_mutex_lock(&d->lock);
    int i = find(d, inst->uuid);
    pthread_mutex_unlock(&d->lock);
    if (i < 0) return ts_err_set(err, TS_ENOTFOUND, "Instance %s could not be found.", inst->uuid);
    char *s = ts_asprintf("FAKE CONSOLE OUTPUT\nINSTANCE %s ON %s\nTINYVM READY\n", inst->uuid, d->host);
    size_t n = strlen(s);
    if (max_bytes && n > max_bytes) {
        memmove(s, s + (n - max_bytes), max_bytes + 1);
        n = max_bytes;
    }
    *out = s;
    *len = n;
    return 0;
}

static int fake_snapshot(struct ts_virt_driver *d, const struct ts_virt_instance *inst, const char *out_path,
                         struct ts_err *err)
{
    pthread_mutex_lock(&d->lock);
    int i = find(d, inst->uuid);
    pthread_mutex_unlock(&d->lock);
    if (i < 0) return ts_err_set(err, TS_ENOTFOUND, "Instance %s could not be found.", inst->uuid);
    /* a recognisable small file standing in for the qcow2 copy */
    char *s = ts_asprintf("fake snapshot of %s\n", inst->uuid);
    int rc = ts_file_write_atomic(out_path, s, strlen(s), 0600);
    free(s);
    if (rc < 0) return ts_err_set(err, TS_EIO, "cannot write snapshot %s", out_path);
    return 0;
}

static int fake_attach_disk(struct ts_virt_driver *d, const struct ts_virt_instance *inst, struct ts_virt_disk *disk,
                            struct ts_err *err)
{
    int rc = 0;
    pthread_mutex_lock(&d->lock);
    int i = find(d, inst->uuid);
    if (i < 0) {
        rc = ts_err_set(err, TS_ENOTFOUND, "Instance %s could not be found.", inst->uuid);
    } else if (d->guests[i]->n_disks == TS_VIRT_MAX_DISKS) {
        rc = ts_err_set(err, TS_ECONFLICT, "too many disks");
    } else {
        struct fake_guest *g = d->guests[i];
        if (!disk->dev[0]) snprintf(disk->dev, sizeof(disk->dev), "vd%c", 'b' + g->n_disks);
        g->disks[g->n_disks++] = *disk;
    }
    pthread_mutex_unlock(&d->lock);
    return rc;
}

static int fake_detach_disk(struct ts_virt_driver *d, const struct ts_virt_instance *inst,
                            const struct ts_virt_disk *disk, struct ts_err *err)
{
    int rc = 0;
    pthread_mutex_lock(&d->lock);
    int i = find(d, inst->uuid);
    if (i < 0) {
        rc = ts_err_set(err, TS_ENOTFOUND, "Instance %s could not be found.", inst->uuid);
    } else {
        struct fake_guest *g = d->guests[i];
        for (int k = 0; k < g->n_disks; k++) {
            if (!strcmp(g->disks[k].id, disk->id)) {
                g->disks[k] = g->disks[--g->n_disks];
                break;
            }
        }
    }
    pthread_mutex_unlock(&d->lock);
    return rc;
}

static int fake_attach_nic(struct ts_virt_driver *d, const struct ts_virt_instance *inst,
                           const struct ts_virt_nic *nic, struct ts_err *err)
{
    (void)nic;
    pthread_mutex_lock(&d->lock);
    int i = find(d, inst->uuid);
    pthread_mutex_unlock(&d->lock);
    return i < 0 ? ts_err_set(err, TS_ENOTFOUND, "Instance %s could not be found.", inst->uuid) : 0;
}

static int fake_detach_nic(struct ts_virt_driver *d, const struct ts_virt_instance *inst,
                           const struct ts_virt_nic *nic, struct ts_err *err)
{
    (void)nic;
    pthread_mutex_lock(&d->lock);
    int i = find(d, inst->uuid);
    pthread_mutex_unlock(&d->lock);
    return i < 0 ? ts_err_set(err, TS_ENOTFOUND, "Instance %s could not be found.", inst->uuid) : 0;
}

static int fake_list(struct ts_virt_driver *d, char ***uuids, int *n, struct ts_err *err)
{
    (void)err;
    pthread_mutex_lock(&d->lock);
    char **v = ts_calloc((size_t)d->n + 1, sizeof(char *));
    for (int i = 0; i < d->n; i++) v[i] = ts_strdup(d->guests[i]->uuid);
    *n = d->n;
    pthread_mutex_unlock(&d->lock);
    *uuids = v;
    return 0;
}

static int fake_migrate_disk_and_power_off(struct ts_virt_driver *d, const struct ts_virt_instance *inst,
                                           const struct ts_virt_instance *new_inst, int timeout_s, struct ts_err *err)
{
    (void)timeout_s, (void)new_inst;
    int rc = 0;
    pthread_mutex_lock(&d->lock);
    int i = find(d, inst->uuid);
    if (i < 0) {
        rc = ts_err_set(err, TS_ENOTFOUND, "Instance %s could not be found.", inst->uuid);
    } else {
        struct fake_guest *g = d->guests[i];
        g->state = TS_POWER_SHUTDOWN;
        g->has_backup = true;
        g->old_vcpus = g->vcpus, g->old_memory_mb = g->memory_mb, g->old_root_gb = g->root_gb;
    }
    pthread_mutex_unlock(&d->lock);
    return rc;
}

/* On another host the guest does not exist yet: it is created there with the new sizes. */
static int fake_finish_migration(struct ts_virt_driver *d, const struct ts_virt_instance *new_inst, bool power_on,
                                 struct ts_err *err)
{
    pthread_mutex_lock(&d->lock);
    bool exists = find(d, new_inst->uuid) >= 0;
    pthread_mutex_unlock(&d->lock);
    if (!exists) {
        int rc = fake_spawn(d, new_inst, err);
        if (rc) return rc;
    }
    pthread_mutex_lock(&d->lock);
    int i = find(d, new_inst->uuid);
    if (i >= 0) {
        struct fake_guest *g = d->guests[i];
        g->vcpus = new_inst->vcpus, g->memory_mb = new_inst->memory_mb, g->root_gb = new_inst->root_gb;
        g->state = power_on ? TS_POWER_RUNNING : TS_POWER_SHUTDOWN;
    }
    pthread_mutex_unlock(&d->lock);
    return 0;
}

static int fake_finish_revert_migration(struct ts_virt_driver *d, const struct ts_virt_instance *inst, bool power_on,
                                        struct ts_err *err)
{
    int rc = 0;
    pthread_mutex_lock(&d->lock);
    int i = find(d, inst->uuid);
    if (i < 0) {
        rc = ts_err_set(err, TS_ENOTFOUND, "Instance %s could not be found.", inst->uuid);
    } else {
        struct fake_guest *g = d->guests[i];
        if (g->has_backup) g->vcpus = g->old_vcpus, g->memory_mb = g->old_memory_mb, g->root_gb = g->old_root_gb;
        g->has_backup = false;
        g->state = power_on ? TS_POWER_RUNNING : TS_POWER_SHUTDOWN;
    }
    pthread_mutex_unlock(&d->lock);
    return rc;
}

static int fake_confirm_migration(struct ts_virt_driver *d, const struct ts_virt_instance *inst, struct ts_err *err)
{
    (void)err;
    pthread_mutex_lock(&d->lock);
    int i = find(d, inst->uuid);
    if (i >= 0) d->guests[i]->has_backup = false;
    pthread_mutex_unlock(&d->lock);
    return 0;
}

const struct ts_virt_ops ts_virt_fake_ops = {
    .name = "fake",
    .open = fake_open,
    .close = fake_close,
    .host_info = fake_host_info,
    .spawn = fake_spawn,
    .destroy = fake_destroy,
    .power_off = fake_power_off,
    .power_on = fake_power_on,
    .reboot = fake_reboot,
    .pause = fake_pause,
    .unpause = fake_unpause,
    .suspend = fake_suspend,
    .resume = fake_resume,
    .power_state = fake_power_state,
    .console_log = fake_console_log,
    .snapshot = fake_snapshot,
    .attach_disk = fake_attach_disk,
    .detach_disk = fake_detach_disk,
    .attach_nic = fake_attach_nic,
    .detach_nic = fake_detach_nic,
    .list = fake_list,
    .migrate_disk_and_power_off = fake_migrate_disk_and_power_off,
    .finish_migration = fake_finish_migration,
    .finish_revert_migration = fake_finish_revert_migration,
    .confirm_migration = fake_confirm_migration,
};
