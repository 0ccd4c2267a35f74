/*
 * ts_compute_agent.c: the per-host compute agent (nova-compute). It serves
 * "compute.<host>" on the bus: builds (instance data from the conductor, image fetched
 * with the user's token into a per-host cache <data_dir>/compute/<host>/_base/<image id>
 * by atomic rename, instance dir, virt driver spawn, state back through the conductor;
 * failures go to the conductor which reschedules), terminate, power actions, rebuild,
 * resize (source powers off and keeps the old disk, destination grows and redefines; revert
 * and confirm), snapshot (uploaded to the image service with the user's token), console
 * output. A reporter thread heartbeats to the conductor every [compute] report_interval
 * seconds with the host's resources and syncs power states from the driver.
 */
#include "compute/ts_compute_int.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compute/virt/ts_virt.h"
#include "json/ts_json.h"

#define JS(o, k) json_string_value(json_object_get((o), (k)))
#define JI(o, k) json_integer_value(json_object_get((o), (k)))

struct ev {
    char uuid[37], name[40], tag[64];
    double at;
};

struct ts_compute_agent {
    struct ts_service_env *env;
    struct ts_bus *bus;
    const struct ts_conf *conf;
    char host[256];
    char topic[300];
    char publisher[300];
    char zone[256];
    char *base_dir;                 /* <data_dir>/compute/<host> */
    char *instances_dir;            /* [compute] instances_path or base_dir */
    const struct ts_virt_ops *ops;
    struct ts_virt_driver *drv;
    int report_interval;
    pthread_t reporter;
    bool reporter_started, serving, serving_events;
    pthread_mutex_t lock;           /* guards busy, stopping */
    pthread_cond_t cond;
    bool stopping;
    char (*busy)[37];
    int n_busy, cap_busy;
    struct ev *evs;                 /* external events received (guarded by lock, broadcast on cond) */
    int n_evs, cap_evs;
    int vif_timeout;                /* [compute] vif_plugging_timeout, 0 = do not wait */
    bool vif_fatal;                 /* [compute] vif_plugging_is_fatal */
};

/* ---- per-instance serialisation ---------------------------------------------------- */

static void inst_lock(struct ts_compute_agent *ag, const char *uuid)
{
    pthread_mutex_lock(&ag->lock);
    for (;;) {
        bool found = false;
        for (int i = 0; i < ag->n_busy; i++)
            if (!strcmp(ag->busy[i], uuid)) found = true;
        if (!found) break;
        pthread_cond_wait(&ag->cond, &ag->lock);
    }
    if (ag->n_busy == ag->cap_busy) {
        ag->cap_busy = ag->cap_busy ? ag->cap_busy * 2 : 32;
        ag->busy = ts_realloc(ag->busy, (size_t)ag->cap_busy * sizeof(*ag->busy));
    }
    snprintf(ag->busy[ag->n_busy++], 37, "%s", uuid);
    pthread_mutex_unlock(&ag->lock);
}

static void inst_unlock(struct ts_compute_agent *ag, const char *uuid)
{
    pthread_mutex_lock(&ag->lock);
    for (int i = 0; i < ag->n_busy; i++) {
        if (!strcmp(ag->busy[i], uuid)) {
            memcpy(ag->busy[i], ag->busy[--ag->n_busy], 37);
            break;
        }
    }
    pthread_cond_broadcast(&ag->cond);
    pthread_mutex_unlock(&ag->lock);
}

/* ---- conductor calls ------------------------------------------------------------------ */

static int conductor(struct ts_compute_agent *ag, const char *method, json_t *args, json_t **reply, struct ts_err *err)
{
    json_t *r = NULL;
    int rc = ts_bus_call(ag->bus, "conductor", method, args, 30000, &r, err);
    if (reply) *reply = r;
    else json_decref(r);
    return rc;
}

/* instance_update with optional action event; *out (may be NULL) gets the row. */
static int update(struct ts_compute_agent *ag, const char *uuid, json_t *vals, const char *expect, json_t *ctx,
                  const char *event, bool ok, const char *msg, json_t **out)
{
    json_t *a = json_pack("{s:s, s:o}", "instance_uuid", uuid, "values", vals ? vals : json_object());
    if (expect) json_object_set_new(a, "expected_task_state", json_string(expect));
    if (event && ctx)
        json_object_set_new(a, "event", json_pack("{s:s?, s:s, s:s, s:b, s:s?}", "request_id", JS(ctx, "request_id"),
                                                  "event", event, "host", ag->host, "ok", ok, "message", msg));
    struct ts_err err = {0};
    int rc = conductor(ag, "instance_update", a, out, &err);
    if (rc) ts_warn("agent", "instance_update %s: %s", uuid, err.msg);
    return rc;
}

/* ---- image cache ---------------------------------------------------------------------- */

struct dl {
    int fd;
};

static int dl_write(void *ctx, const char *data, size_t len)
{
    struct dl *d = ctx;
    while (len) {
        ssize_t w = write(d->fd, data, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -TS_EIO;
        }
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Makes sure the image is in the host's cache; fills path and format. */
static int image_fetch(struct ts_compute_agent *ag, json_t *ctx, const char *image_id, char *path, size_t path_cap,
                       char *format, size_t fmt_cap, struct ts_err *err)
{
    const char *base = JS(ctx, "image_url");
    const char *token = JS(ctx, "token");
    char *dir = ts_asprintf("%s/_base", ag->base_dir);
    char *fmt_path = ts_asprintf("%s/%s.format", dir, image_id);
    char *tmp = NULL, *url = NULL, *tok = NULL, *fmt_text = NULL;
    json_t *meta = NULL;
    int rc = 0, fd = -1;
    snprintf(path, path_cap, "%s/%s", dir, image_id);
    ts_mkdirs(dir, 0755);
    size_t fl = 0;
    if (access(path, R_OK) == 0 && ts_file_read(fmt_path, 64, &fmt_text, &fl) == 0) {
        snprintf(format, fmt_cap, "%s", fmt_text);
        goto out;   /* cached */
    }
    if (!base || !token) {
        rc = ts_err_set(err, TS_EUNAVAIL, "no image service URL to fetch image %s", image_id);
        goto out;
    }
    tok = ts_asprintf("X-Auth-Token: %s", token);
    const char *hdrs[] = {tok, "Accept: application/json", NULL};
    url = ts_asprintf("%s/v2/images/%s", base, image_id);
    struct ts_http_client_resp r = {0};
    rc = ts_http_client_request("GET", url, hdrs, NULL, 0, 30000, &r, err);
    if (rc) goto out;
    if (r.status != 200 || !(meta = json_loadb(r.body ? r.body : "", r.body_len, 0, NULL))) {
        rc = ts_err_set(err, TS_EIO, "image %s: image service answered %d", image_id, r.status);
        ts_http_client_resp_free(&r);
        goto out;
    }
    ts_http_client_resp_free(&r);
    const char *df = JS(meta, "disk_format");
    snprintf(format, fmt_cap, "%s", df && !strcmp(df, "qcow2") ? "qcow2" : "raw");
    free(url);
    url = ts_asprintf("%s/v2/images/%s/file", base, image_id);
    char rnd[9];
    unsigned char rb[4];
    ts_random(rb, 4);
    ts_hex(rb, 4, rnd);
    tmp = ts_asprintf("%s/.%s.%s.part", dir, image_id, rnd);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = ts_err_set(err, TS_EIO, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    struct dl d = {fd};
    const char *hdrs2[] = {tok, NULL};
    int status = 0;
    rc = ts_http_client_download(url, hdrs2, 600000, dl_write, &d, &status, err);
    if (!rc && status != 200) rc = ts_err_set(err, TS_EIO, "image %s download: status %d", image_id, status);
    if (!rc && fsync(fd) < 0) rc = ts_err_set(err, TS_EIO, "fsync %s: %s", tmp, strerror(errno));
    close(fd);
    fd = -1;
    if (!rc && rename(tmp, path) < 0) rc = ts_err_set(err, TS_EIO, "rename %s: %s", tmp, strerror(errno));
    if (!rc) ts_file_write_atomic(fmt_path, format, strlen(format), 0644);
    if (rc) unlink(tmp);
out:
    if (fd >= 0) close(fd);
    json_decref(meta);
    free(dir);
    free(fmt_path);
    free(fmt_text);
    free(tmp);
    free(url);
    free(tok);
    return rc;
}

/* ---- instance description for the driver ------------------------------------------------ */

static void nic_fill(const json_t *vif, struct ts_virt_nic *n)
{
    const char *pid = JS(vif, "port_id") ? JS(vif, "port_id") : "";
    const char *net = JS(vif, "network_id") ? JS(vif, "network_id") : "";
    memset(n, 0, sizeof(*n));
    snprintf(n->port_id, sizeof(n->port_id), "%s", pid);
    snprintf(n->mac, sizeof(n->mac), "%s", JS(vif, "mac") ? JS(vif, "mac") : "");
    snprintf(n->tap, sizeof(n->tap), "tap%.11s", pid);
    snprintf(n->bridge, sizeof(n->bridge), "brq%.11s", net);
    n->mtu = (int)JI(vif, "mtu");
}

static bool bdm_is_root(const json_t *b)
{
    json_t *bx = json_object_get(b, "boot_index");
    return (json_is_integer(bx) && json_integer_value(bx) == 0) || ts_streq(json_string_value(bx), "0");
}

static void disk_fill(const json_t *b, struct ts_virt_disk *d)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->id, sizeof(d->id), "%s", JS(b, "volume_id") ? JS(b, "volume_id") : "");
    snprintf(d->path, sizeof(d->path), "%s", JS(b, "path"));
    snprintf(d->format, sizeof(d->format), "%s", ts_streq(JS(b, "format"), "qcow2") ? "qcow2" : "raw");
    const char *dev = JS(b, "device_name");
    if (dev && ts_startswith(dev, "/dev/")) dev += 5;
    if (dev && strlen(dev) < sizeof(d->dev)) snprintf(d->dev, sizeof(d->dev), "%s", dev);
}

static void vinst_fill(struct ts_compute_agent *ag, const json_t *inst, struct ts_virt_instance *vi)
{
    memset(vi, 0, sizeof(*vi));
    snprintf(vi->uuid, sizeof(vi->uuid), "%s", JS(inst, "uuid") ? JS(inst, "uuid") : "");
    snprintf(vi->name, sizeof(vi->name), "%s", JS(inst, "display_name") ? JS(inst, "display_name") : "");
    ts_compute_instance_name(ag->conf, (long long)JI(inst, "id"), vi->domain_name, sizeof(vi->domain_name));
    vi->vcpus = (int)JI(inst, "vcpus");
    vi->memory_mb = (int)JI(inst, "memory_mb");
    vi->root_gb = (int)JI(inst, "root_gb");
    snprintf(vi->instance_dir, sizeof(vi->instance_dir), "%s/%s", ag->instances_dir, vi->uuid);
    const char *img = JS(inst, "image_ref");
    if (img && *img) {
        snprintf(vi->image_path, sizeof(vi->image_path), "%s/_base/%s", ag->base_dir, img);
        char *fp = ts_asprintf("%s.format", vi->image_path), *f = NULL;
        size_t n = 0;
        if (ts_file_read(fp, 64, &f, &n) == 0) snprintf(vi->image_format, sizeof(vi->image_format), "%s", f);
        else snprintf(vi->image_format, sizeof(vi->image_format), "raw");
        free(f);
        free(fp);
    }
    vi->user_data = (char *)JS(inst, "user_data");
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(inst, "nw_info"), i, v) {
        if (vi->n_nics >= TS_VIRT_MAX_NICS) break;
        nic_fill(v, &vi->nics[vi->n_nics++]);
    }
    /* volumes: the root volume first (boot from volume), then the others */
    for (int pass = 0; pass < 2; pass++) {
        json_array_foreach(json_object_get(inst, "bdm"), i, v) {
            if (!JS(v, "path") || vi->n_disks >= TS_VIRT_MAX_DISKS) continue;
            bool root = bdm_is_root(v);
            if ((pass == 0) != (root && !vi->image_path[0])) continue;
            disk_fill(v, &vi->disks[vi->n_disks++]);
        }
    }
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void rm_tree(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* ---- external events (network-vif-plugged) ----------------------------------------------- */

static void ev_record(struct ts_compute_agent *ag, const char *uuid, const char *name, const char *tag)
{
    pthread_mutex_lock(&ag->lock);
    double now = ts_mono();
    for (int i = 0; i < ag->n_evs;) {
        if (now - ag->evs[i].at > 900) ag->evs[i] = ag->evs[--ag->n_evs];
        else i++;
    }
    if (ag->n_evs == ag->cap_evs) {
        ag->cap_evs = ag->cap_evs ? ag->cap_evs * 2 : 32;
        ag->evs = ts_realloc(ag->evs, (size_t)ag->cap_evs * sizeof(*ag->evs));
    }
    struct ev *e = &ag->evs[ag->n_evs++];
    snprintf(e->uuid, sizeof(e->uuid), "%s", uuid);
    snprintf(e->name, sizeof(e->name), "%s", name);
    snprintf(e->tag, sizeof(e->tag), "%s", tag ? tag : "");
    e->at = now;
    pthread_cond_broadcast(&ag->cond);
    pthread_mutex_unlock(&ag->lock);
}

/* Takes a recorded event (lock held). */
static bool ev_take(struct ts_compute_agent *ag, const char *uuid, const char *name, const char *tag)
{
    for (int i = 0; i < ag->n_evs; i++) {
        struct ev *e = &ag->evs[i];
        if (!strcmp(e->uuid, uuid) && !strcmp(e->name, name) && !strcmp(e->tag, tag)) {
            ag->evs[i] = ag->evs[--ag->n_evs];
            return true;
        }
    }
    return false;
}

static void ev_forget(struct ts_compute_agent *ag, const char *uuid)
{
    pthread_mutex_lock(&ag->lock);
    for (int i = 0; i < ag->n_evs;) {
        if (!strcmp(ag->evs[i].uuid, uuid)) ag->evs[i] = ag->evs[--ag->n_evs];
        else i++;
    }
    pthread_mutex_unlock(&ag->lock);
}

static bool waits_for_vifs(struct ts_compute_agent *ag)
{
    /* fake hosts have no network agent: nothing would ever plug their VIFs */
    return ag->vif_timeout > 0 && ag->ops != &ts_virt_fake_ops;
}

/* Waits for network-vif-plugged of every port in vifs (Nova's wait_for_instance_event). */
static int wait_vifs(struct ts_compute_agent *ag, const char *uuid, const json_t *vifs, struct ts_err *err)
{
    size_t n = json_array_size(vifs);
    if (!n || !waits_for_vifs(ag)) return 0;
    bool *got = ts_calloc(n, sizeof(bool));
    size_t left = n;
    double t0 = ts_mono();
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ag->vif_timeout;
    int rc = 0;
    pthread_mutex_lock(&ag->lock);
    for (;;) {
        for (size_t i = 0; i < n; i++) {
            const char *pid = JS(json_array_get(vifs, i), "port_id");
            if (!got[i] && pid && ev_take(ag, uuid, "network-vif-plugged", pid)) {
                got[i] = true;
                left--;
            }
        }
        if (!left || ag->stopping) break;
        if (pthread_cond_timedwait(&ag->cond, &ag->lock, &until) == ETIMEDOUT) break;
    }
    pthread_mutex_unlock(&ag->lock);
    if (left) {
        if (ag->vif_fatal)
            rc = ts_err_set(err, TS_ETIMEDOUT, "Virtual Interface creation failed (no network-vif-plugged for %zu "
                            "port(s) after %d s)", left, ag->vif_timeout);
        else
            ts_warn("agent", "%s: timeout waiting for %zu vif plugging events, continuing", uuid, left);
    } else {
        ts_debug("agent", "%s: %zu VIF(s) plugged after %.2f s", uuid, n, ts_mono() - t0);
    }
    free(got);
    return rc;
}

/* ---- networks and volumes of a build --------------------------------------------------------- */

static int allocate_networks(struct ts_compute_agent *ag, json_t *ctx, json_t *inst, struct ts_err *err)
{
    json_t *nets = json_object_get(inst, "networks");
    if (!json_is_array(nets) || !json_array_size(nets)) return 0;
    const char *uuid = JS(inst, "uuid");
    json_t *vifs = json_array();
    size_t i;
    json_t *r;
    int rc = 0;
    json_array_foreach(nets, i, r) {
        json_t *vif = NULL;
        rc = ts_compute_net_port_setup(ag->env, JS(ctx, "token"), inst, ag->host, r, &vif, err);
        if (rc) {
            ts_compute_net_deallocate(ag->env, uuid, vifs);
            json_decref(vifs);
            return rc;
        }
        json_array_append_new(vifs, vif);
    }
    json_object_set(inst, "nw_info", vifs);
    update(ag, uuid, json_pack("{s:o}", "nw_info", vifs), NULL, NULL, NULL, true, NULL, NULL);
    return 0;
}

/* Next free vdX among the instance's bdm entries (vda is the root disk). */
static void next_dev(const json_t *bdm, char out[16])
{
    for (char c = 'b'; c <= 'z'; c++) {
        char dev[16];
        snprintf(dev, sizeof(dev), "/dev/vd%c", c);
        bool used = false;
        size_t i;
        json_t *b;
        json_array_foreach(bdm, i, b) if (ts_streq(JS(b, "device_name"), dev)) used = true;
        if (!used) {
            snprintf(out, 16, "%s", dev);
            return;
        }
    }
    snprintf(out, 16, "/dev/vdz");
}

/* Connects an attachment to this host and fills the bdm entry's path. */
static int connect_volume(struct ts_compute_agent *ag, const char *token, const char *project, json_t *b,
                          struct ts_err *err)
{
    char path[512], fmt[16];
    int rc = ts_compute_vol_connect(ag->env, token, project, JS(b, "attachment_id"), ag->host, path, sizeof(path), fmt,
                                    sizeof(fmt), err);
    if (rc) return rc;
    ts_json_set_str(b, "path", path);
    ts_json_set_str(b, "format", fmt);
    return 0;
}

/* Boot from volume: creates volumes from images (or blank), attaches every volume of the bdm. */
static int prepare_volumes(struct ts_compute_agent *ag, json_t *ctx, json_t *inst, struct ts_err *err)
{
    json_t *bdm = json_object_get(inst, "bdm");
    if (!json_is_array(bdm)) return 0;
    const char *token = JS(ctx, "token"), *project = JS(inst, "project_id"), *uuid = JS(inst, "uuid");
    json_t *nb = json_deep_copy(bdm);
    int rc = 0, timeout = (int)ts_conf_get_int(ag->conf, "compute", "block_device_allocate_timeout", 600);
    bool any = false;
    size_t i;
    json_t *b;
    json_array_foreach(nb, i, b) {
        if (!ts_streq(JS(b, "destination_type"), "volume") || JS(b, "path")) continue;
        const char *src = JS(b, "source_type");
        char vid[37];
        if (ts_streq(src, "volume")) {
            snprintf(vid, sizeof(vid), "%s", JS(b, "uuid") ? JS(b, "uuid") : "");
        } else if (ts_streq(src, "image") || ts_streq(src, "blank")) {
            json_t *sz = json_object_get(b, "volume_size");
            int64_t gb = json_is_integer(sz) ? json_integer_value(sz) : json_is_string(sz) ? atoll(json_string_value(sz))
                                                                                           : 0;
            if (gb <= 0) gb = JI(inst, "root_gb") > 0 ? JI(inst, "root_gb") : 1;
            char *name = ts_asprintf("%s-volume", JS(inst, "display_name") ? JS(inst, "display_name") : "");
            rc = ts_compute_vol_create_wait(ag->env, token, project, gb, ts_streq(src, "image") ? JS(b, "uuid") : NULL,
                                            name, timeout, vid, err);
            free(name);
            if (rc) goto out;
            json_object_set_new(b, "created_volume", json_true());
        } else {
            continue;
        }
        ts_json_set_str(b, "volume_id", vid);
        char att[37];
        rc = ts_compute_vol_reserve(ag->env, token, project, vid, uuid, att, err);
        if (rc) goto out;
        ts_json_set_str(b, "attachment_id", att);
        any = true;
        rc = connect_volume(ag, token, project, b, err);
        if (rc) goto out;
        if (bdm_is_root(b)) {
            ts_json_set_str(b, "device_name", "/dev/vda");
        } else if (!JS(b, "device_name")) {
            char dev[16];
            next_dev(nb, dev);
            ts_json_set_str(b, "device_name", dev);
        }
        rc = ts_compute_vol_complete(ag->env, token, project, att, err);
        if (rc) goto out;
    }
out:
    if (any || rc) {
        json_object_set(inst, "bdm", nb);
        update(ag, uuid, json_pack("{s:O}", "bdm", nb), NULL, NULL, NULL, true, NULL, NULL);
    }
    json_decref(nb);
    return rc;
}

/* Undoes what a failed build allocated (so a reschedule starts clean). */
static void build_cleanup(struct ts_compute_agent *ag, json_t *ctx, json_t *inst, json_t *orig_bdm)
{
    const char *uuid = JS(inst, "uuid");
    ts_compute_net_deallocate(ag->env, uuid, json_object_get(inst, "nw_info"));
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(inst, "bdm"), i, b) {
        struct ts_err e = {0};
        if (JS(b, "attachment_id"))
            ts_compute_vol_unreserve(ag->env, JS(ctx, "token"), JS(inst, "project_id"), JS(b, "attachment_id"), &e);
        if (json_is_true(json_object_get(b, "created_volume")) && JS(b, "volume_id"))
            ts_compute_vol_delete(ag->env, JS(ctx, "token"), JS(inst, "project_id"), JS(b, "volume_id"), &e);
    }
    update(ag, uuid, json_pack("{s:n, s:O}", "nw_info", "bdm", orig_bdm ? orig_bdm : json_null()), NULL, NULL, NULL,
           true, NULL, NULL);
    ev_forget(ag, uuid);
}

/* ---- operations ------------------------------------------------------------------------- */

static int build(struct ts_compute_agent *ag, json_t *args)
{
    const char *uuid = JS(args, "instance_uuid");
    json_t *ctx = json_object_get(args, "context");
    json_t *inst = NULL, *orig_bdm = NULL;
    struct ts_err err = {0};
    struct ts_virt_instance vi;
    bool spawned = false;
    const char *img = NULL;
    int rc = conductor(ag, "instance_get", json_pack("{s:s}", "instance_uuid", uuid), &inst, &err);
    if (rc) {
        ts_warn("agent", "build %s: cannot get instance: %s", uuid, err.msg);
        return 0;
    }
    if (JI(inst, "deleted") || !ts_streq(JS(inst, "task_state"), "scheduling")) {
        conductor(ag, "build_aborted", json_pack("{s:s}", "instance_uuid", uuid), NULL, NULL);
        goto out;
    }
    json_t *cur = NULL;
    rc = update(ag, uuid, json_pack("{s:s, s:s, s:s, s:s}", "host", ag->host, "node", ag->host, "task_state", "spawning",
                                    "availability_zone", JS(inst, "availability_zone") ? JS(inst, "availability_zone")
                                                                                         : ag->zone),
                "scheduling", NULL, NULL, true, NULL, &cur);
    if (rc) {
        conductor(ag, "build_aborted", json_pack("{s:s}", "instance_uuid", uuid), NULL, NULL);
        goto out;
    }
    json_decref(inst);
    inst = cur;
    orig_bdm = json_incref(json_object_get(inst, "bdm"));
    /* ports created and bound to this host (the network agent plugs them), volumes attached */
    rc = allocate_networks(ag, ctx, inst, &err);
    if (rc) goto fail;
    rc = prepare_volumes(ag, ctx, inst, &err);
    if (rc) goto fail;
    img = JS(inst, "image_ref");
    if (img && *img) {
        char path[512], fmt[16];
        rc = image_fetch(ag, ctx, img, path, sizeof(path), fmt, sizeof(fmt), &err);
        if (rc) goto fail;
    }
    rc = wait_vifs(ag, uuid, json_object_get(inst, "nw_info"), &err);
    if (rc) goto fail;
    vinst_fill(ag, inst, &vi);
    if (ts_mkdirs(vi.instance_dir, 0755) < 0) {
        rc = ts_err_set(&err, TS_EIO, "cannot create %s", vi.instance_dir);
        goto fail;
    }
    rc = ag->ops->spawn(ag->drv, &vi, &err);
    if (rc) goto fail;
    spawned = true;
    json_t *done = NULL;
    rc = update(ag, uuid, json_pack("{s:s, s:n, s:i, s:f}", "vm_state", "active", "task_state", "power_state",
                                    TS_POWER_RUNNING, "launched_at", ts_now()),
                "spawning", ctx, "compute__do_build_and_run_instance", true, NULL, &done);
    if (rc) {
        /* deleted while we were building: clean up */
        ag->ops->destroy(ag->drv, &vi, NULL);
        rm_tree(vi.instance_dir);
        json_t *now = NULL;
        if (conductor(ag, "instance_get", json_pack("{s:s}", "instance_uuid", uuid), &now, NULL) == 0) {
            ts_compute_vol_cleanup(ag->env, JS(ctx, "token"), now);
            ts_compute_net_deallocate(ag->env, uuid, json_object_get(now, "nw_info"));
        }
        json_decref(now);
        conductor(ag, "build_aborted", json_pack("{s:s}", "instance_uuid", uuid), NULL, NULL);
        goto out;
    }
    ts_compute_notify(ag->bus, ag->publisher, "compute.instance.create.end", done);
    json_decref(done);
    goto out;
fail:
    ts_warn("agent", "build of %s failed: %s", uuid, err.msg);
    if (spawned || img) {
        vinst_fill(ag, inst, &vi);
        ag->ops->destroy(ag->drv, &vi, NULL);
        rm_tree(vi.instance_dir);
    }
    build_cleanup(ag, ctx, inst, orig_bdm);
    update(ag, uuid, NULL, NULL, ctx, "compute__do_build_and_run_instance", false, err.msg, NULL);
    conductor(ag, "build_failed",
              json_pack("{s:s, s:s, s:s, s:O}", "instance_uuid", uuid, "host", ag->host, "message",
                        err.msg[0] ? err.msg : "Build of instance failed", "context", ctx ? ctx : json_null()),
              NULL, NULL);
out:
    json_decref(inst);
    json_decref(orig_bdm);
    return 0;
}

static int terminate(struct ts_compute_agent *ag, json_t *args)
{
    const char *uuid = JS(args, "instance_uuid");
    json_t *inst = NULL, *gone = NULL;
    struct ts_err err = {0};
    if (conductor(ag, "instance_get", json_pack("{s:s}", "instance_uuid", uuid), &inst, &err) < 0) return 0;
    if (JI(inst, "deleted")) goto out;
    ts_compute_notify(ag->bus, ag->publisher, "compute.instance.delete.start", inst);
    struct ts_virt_instance vi;
    vinst_fill(ag, inst, &vi);
    if (ag->ops->destroy(ag->drv, &vi, &err) < 0) ts_warn("agent", "destroy %s: %s", uuid, err.msg);
    rm_tree(vi.instance_dir);
    /* volumes detached (and deleted with delete_on_termination), ports released */
    ts_compute_vol_cleanup(ag->env, JS(json_object_get(args, "context"), "token"), inst);
    ts_compute_net_deallocate(ag->env, uuid, json_object_get(inst, "nw_info"));
    ev_forget(ag, uuid);
    if (conductor(ag, "instance_destroy", json_pack("{s:s}", "instance_uuid", uuid), &gone, &err) == 0)
        ts_compute_notify(ag->bus, ag->publisher, "compute.instance.delete.end", gone);
out:
    json_decref(inst);
    json_decref(gone);
    return 0;
}

/* Power and lifecycle operations that only call the driver and set states. */
static int simple_op(struct ts_compute_agent *ag, const char *method, json_t *args)
{
    const char *uuid = JS(args, "instance_uuid");
    json_t *ctx = json_object_get(args, "context");
    json_t *inst = NULL, *done = NULL;
    struct ts_err err = {0};
    if (conductor(ag, "instance_get", json_pack("{s:s}", "instance_uuid", uuid), &inst, &err) < 0) return 0;
    if (JI(inst, "deleted")) goto out;
    struct ts_virt_instance vi;
    vinst_fill(ag, inst, &vi);
    const char *vm = NULL, *ev_start = NULL, *ev_end = NULL;
    int rc = 0;
    char event[64];
    snprintf(event, sizeof(event), "compute_%s", method);
    if (!strcmp(method, "stop_instance")) {
        ev_start = "compute.instance.power_off.start", ev_end = "compute.instance.power_off.end";
        rc = ag->ops->power_off(ag->drv, &vi, (int)ts_conf_get_int(ag->conf, "compute", "shutdown_timeout", 60), &err);
        vm = "stopped";
    } else if (!strcmp(method, "start_instance")) {
        ev_start = "compute.instance.power_on.start", ev_end = "compute.instance.power_on.end";
        rc = ag->ops->power_on(ag->drv, &vi, &err);
        vm = "active";
    } else if (!strcmp(method, "reboot_instance")) {
        ev_start = "compute.instance.reboot.start", ev_end = "compute.instance.reboot.end";
        rc = ag->ops->reboot(ag->drv, &vi, json_is_true(json_object_get(args, "hard")), &err);
        vm = "active";
    } else if (!strcmp(method, "pause_instance")) {
        ev_start = "compute.instance.pause.start", ev_end = "compute.instance.pause.end";
        rc = ag->ops->pause(ag->drv, &vi, &err);
        vm = "paused";
    } else if (!strcmp(method, "unpause_instance")) {
        ev_start = "compute.instance.unpause.start", ev_end = "compute.instance.unpause.end";
        rc = ag->ops->unpause(ag->drv, &vi, &err);
        vm = "active";
    } else if (!strcmp(method, "suspend_instance")) {
        ev_start = "compute.instance.suspend.start", ev_end = "compute.instance.suspend.end";
        rc = ag->ops->suspend(ag->drv, &vi, &err);
        vm = "suspended";
    } else if (!strcmp(method, "resume_instance")) {
        ev_start = "compute.instance.resume.start", ev_end = "compute.instance.resume.end";
        rc = ag->ops->resume(ag->drv, &vi, &err);
        vm = "active";
    } else if (!strcmp(method, "rebuild_instance")) {
        ev_start = "compute.instance.rebuild.start", ev_end = "compute.instance.rebuild.end";
        ts_compute_notify(ag->bus, ag->publisher, ev_start, inst);
        ev_start = NULL;
        ag->ops->destroy(ag->drv, &vi, NULL);
        rm_tree(vi.instance_dir);
        const char *img = JS(inst, "image_ref");
        char path[512], fmt[16];
        if (img && *img) rc = image_fetch(ag, ctx, img, path, sizeof(path), fmt, sizeof(fmt), &err);
        if (!rc) {
            vinst_fill(ag, inst, &vi);
            ts_mkdirs(vi.instance_dir, 0755);
            rc = ag->ops->spawn(ag->drv, &vi, &err);
        }
        /* a stopped server stays stopped after a rebuild, as in Nova */
        vm = "active";
        if (!rc && ts_streq(JS(inst, "vm_state"), "stopped")) {
            rc = ag->ops->power_off(ag->drv, &vi, 0, &err);
            vm = "stopped";
        }
    } else {
        goto out;
    }
    if (ev_start) ts_compute_notify(ag->bus, ag->publisher, ev_start, inst);
    if (rc) {
        ts_warn("agent", "%s %s failed: %s", method, uuid, err.msg);
        update(ag, uuid, json_pack("{s:n}", "task_state"), NULL, ctx, event, false, err.msg, NULL);
        goto out;
    }
    enum ts_power_state ps = TS_POWER_NOSTATE;
    ag->ops->power_state(ag->drv, &vi, &ps, NULL);
    update(ag, uuid, json_pack("{s:s, s:n, s:i}", "vm_state", vm, "task_state", "power_state", (int)ps), NULL, ctx,
           event, true, NULL, &done);
    if (ev_end && done) ts_compute_notify(ag->bus, ag->publisher, ev_end, done);
out:
    json_decref(inst);
    json_decref(done);
    return 0;
}

/* ---- resize (Nova's resize_instance / finish_resize / revert_resize / confirm_resize) ---- */

static void vinst_flavor(struct ts_virt_instance *vi, const json_t *fl)
{
    if (!json_is_object(fl)) return;
    vi->vcpus = (int)JI(fl, "vcpus");
    vi->memory_mb = (int)JI(fl, "memory_mb");
    vi->root_gb = (int)JI(fl, "root_gb");
}

static bool ops_resize(const struct ts_compute_agent *ag)
{
    return ag->ops->migrate_disk_and_power_off && ag->ops->finish_migration && ag->ops->finish_revert_migration &&
           ag->ops->confirm_migration;
}

static int power_state_of(struct ts_compute_agent *ag, const struct ts_virt_instance *vi)
{
    enum ts_power_state ps = TS_POWER_NOSTATE;
    if (ag->ops->power_state(ag->drv, vi, &ps, NULL) < 0) ps = TS_POWER_NOSTATE;
    return (int)ps;
}

/* On the destination (possibly this same host): the driver grows the disk, redefines the
 * guest with the new flavor and starts it unless it was stopped; VERIFY_RESIZE. A failure
 * here leaves the instance in ERROR, as in Nova. */
static int finish_resize(struct ts_compute_agent *ag, json_t *args)
{
    const char *uuid = JS(args, "instance_uuid");
    json_t *ctx = json_object_get(args, "context"), *fl = json_object_get(args, "new_flavor");
    json_t *inst = NULL, *done = NULL;
    struct ts_err err = {0};
    if (conductor(ag, "instance_get", json_pack("{s:s}", "instance_uuid", uuid), &inst, &err) < 0) return 0;
    if (JI(inst, "deleted")) goto out;
    update(ag, uuid, json_pack("{s:s}", "task_state", "resize_finish"), NULL, NULL, NULL, true, NULL, NULL);
    struct ts_virt_instance vi;
    vinst_fill(ag, inst, &vi);
    vinst_flavor(&vi, fl);
    bool power_on = !ts_streq(JS(inst, "old_vm_state"), "stopped");
    int rc = ag->ops->finish_migration(ag->drv, &vi, power_on, &err);
    update(ag, uuid, NULL, NULL, ctx, "compute_finish_resize", rc == 0, err.msg, NULL);
    if (rc) {
        ts_warn("agent", "finish_resize %s failed: %s", uuid, err.msg);
        update(ag, uuid, json_pack("{s:s, s:n, s:{s:i, s:s, s:f}}", "vm_state", "error", "task_state", "fault", "code",
                                   500, "message", err.msg, "created", ts_now()),
               NULL, NULL, NULL, true, NULL, NULL);
        goto out;
    }
    json_t *a = json_pack("{s:s, s:O, s:s, s:i}", "instance_uuid", uuid, "new_flavor", fl, "host", ag->host,
                          "power_state", power_state_of(ag, &vi));
    if (conductor(ag, "resize_finished", a, &done, &err) < 0) ts_warn("agent", "resize_finished %s: %s", uuid, err.msg);
    else ts_compute_notify(ag->bus, ag->publisher, "compute.instance.finish_resize.end", done);
out:
    json_decref(inst);
    json_decref(done);
    return 0;
}

/* On the source: powers the guest off and keeps its old disk (the driver refuses to shrink
 * it), then the destination finishes. */
static int resize_instance(struct ts_compute_agent *ag, json_t *args)
{
    const char *uuid = JS(args, "instance_uuid"), *dest = JS(args, "dest");
    json_t *ctx = json_object_get(args, "context"), *fl = json_object_get(args, "new_flavor");
    json_t *inst = NULL;
    struct ts_err err = {0};
    if (conductor(ag, "instance_get", json_pack("{s:s}", "instance_uuid", uuid), &inst, &err) < 0) return 0;
    if (JI(inst, "deleted")) goto out;
    ts_compute_notify(ag->bus, ag->publisher, "compute.instance.resize.start", inst);
    struct ts_virt_instance vi, nvi;
    vinst_fill(ag, inst, &vi);
    nvi = vi;
    vinst_flavor(&nvi, fl);
    int rc = 0;
    if (!ops_resize(ag)) rc = ts_err_set(&err, TS_EINVAL, "the %s driver cannot resize", ag->ops->name);
    if (!rc) rc = update(ag, uuid, json_pack("{s:s}", "task_state", "resize_migrating"), "resize_prep", NULL, NULL,
                         true, NULL, NULL);
    if (!rc)
        rc = ag->ops->migrate_disk_and_power_off(ag->drv, &vi, &nvi,
                                                 (int)ts_conf_get_int(ag->conf, "compute", "shutdown_timeout", 60),
                                                 &err);
    update(ag, uuid, NULL, NULL, ctx, "compute_resize_instance", rc == 0, err.msg, NULL);
    if (rc) {
        /* the guest is as it was (the driver undoes its steps): make sure it runs again */
        if (!ts_streq(JS(inst, "vm_state"), "stopped") && power_state_of(ag, &vi) != TS_POWER_RUNNING)
            ag->ops->power_on(ag->drv, &vi, NULL);
        conductor(ag, "resize_failed",
                  json_pack("{s:s, s:s, s:s, s:s, s:O, s:i}", "instance_uuid", uuid, "message",
                            err.msg[0] ? err.msg : "resize failed", "event", "compute_resize_instance", "host",
                            ag->host, "context", ctx ? ctx : json_null(), "power_state", power_state_of(ag, &vi)),
                  NULL, NULL);
        goto out;
    }
    update(ag, uuid, json_pack("{s:s, s:i}", "task_state", "resize_migrated", "power_state", TS_POWER_SHUTDOWN), NULL,
           NULL, NULL, true, NULL, NULL);
    if (!dest || !strcmp(dest, ag->host)) {
        finish_resize(ag, args);
    } else {
        char *topic = ts_asprintf("compute.%s", dest);
        json_t *a = json_pack("{s:s, s:O, s:O}", "instance_uuid", uuid, "new_flavor", fl, "context",
                              ctx ? ctx : json_null());
        if (ts_bus_cast(ag->bus, topic, "finish_resize", a, &err) < 0) {
            ts_warn("agent", "resize %s: cannot reach %s: %s", uuid, dest, err.msg);
            update(ag, uuid, json_pack("{s:s, s:n}", "vm_state", "error", "task_state"), NULL, NULL, NULL, true, NULL,
                   NULL);
        }
        free(topic);
    }
out:
    json_decref(inst);
    return 0;
}

/* On the source: the old disk and definition come back, the guest runs again unless it was
 * stopped; the conductor puts back the old flavor and allocation. */
static int finish_revert_resize(struct ts_compute_agent *ag, json_t *args)
{
    const char *uuid = JS(args, "instance_uuid");
    json_t *ctx = json_object_get(args, "context");
    json_t *inst = NULL, *done = NULL;
    struct ts_err err = {0};
    if (conductor(ag, "instance_get", json_pack("{s:s}", "instance_uuid", uuid), &inst, &err) < 0) return 0;
    if (JI(inst, "deleted")) goto out;
    struct ts_virt_instance vi;
    vinst_fill(ag, inst, &vi);
    vinst_flavor(&vi, json_object_get(inst, "old_flavor"));
    bool power_on = !ts_streq(JS(inst, "old_vm_state"), "stopped");
    int rc = ag->ops->finish_revert_migration(ag->drv, &vi, power_on, &err);
    update(ag, uuid, NULL, NULL, ctx, "compute_finish_revert_resize", rc == 0, err.msg, NULL);
    if (rc) {
        ts_warn("agent", "revert of %s failed: %s", uuid, err.msg);
        update(ag, uuid, json_pack("{s:s, s:n, s:{s:i, s:s, s:f}}", "vm_state", "error", "task_state", "fault", "code",
                                   500, "message", err.msg, "created", ts_now()),
               NULL, NULL, NULL, true, NULL, NULL);
        goto out;
    }
    json_t *a = json_pack("{s:s, s:i}", "instance_uuid", uuid, "power_state", power_state_of(ag, &vi));
    if (conductor(ag, "resize_reverted", a, &done, &err) < 0) ts_warn("agent", "resize_reverted %s: %s", uuid, err.msg);
    else ts_compute_notify(ag->bus, ag->publisher, "compute.instance.resize.revert.end", done);
out:
    json_decref(inst);
    json_decref(done);
    return 0;
}

/* On the destination: the new guest goes when it is on another host, then the source
 * restores the old one. */
static int revert_resize(struct ts_compute_agent *ag, json_t *args)
{
    const char *uuid = JS(args, "instance_uuid");
    json_t *ctx = json_object_get(args, "context");
    json_t *inst = NULL;
    struct ts_err err = {0};
    if (conductor(ag, "instance_get", json_pack("{s:s}", "instance_uuid", uuid), &inst, &err) < 0) return 0;
    if (JI(inst, "deleted")) goto out;
    ts_compute_notify(ag->bus, ag->publisher, "compute.instance.resize.revert.start", inst);
    const char *source = JS(json_object_get(inst, "migration"), "source");
    update(ag, uuid, NULL, NULL, ctx, "compute_revert_resize", true, NULL, NULL);
    if (!source || !strcmp(source, ag->host)) {
        finish_revert_resize(ag, args);
        goto out;
    }
    struct ts_virt_instance vi;
    vinst_fill(ag, inst, &vi);
    if (ag->ops->destroy(ag->drv, &vi, &err) < 0) ts_warn("agent", "revert %s: destroy: %s", uuid, err.msg);
    rm_tree(vi.instance_dir);
    char *topic = ts_asprintf("compute.%s", source);
    json_t *a = json_pack("{s:s, s:O}", "instance_uuid", uuid, "context", ctx ? ctx : json_null());
    if (ts_bus_cast(ag->bus, topic, "finish_revert_resize", a, &err) < 0) {
        ts_warn("agent", "revert %s: cannot reach %s: %s", uuid, source, err.msg);
        update(ag, uuid, json_pack("{s:s, s:n}", "vm_state", "error", "task_state"), NULL, NULL, NULL, true, NULL, NULL);
    }
    free(topic);
out:
    json_decref(inst);
    return 0;
}

/* On the source after the API confirmed: the old disk goes (and the old guest when the new
 * one runs elsewhere). Skipped when a newer resize has already started: its own power-off
 * step replaced the backup. */
static int confirm_resize(struct ts_compute_agent *ag, json_t *args)
{
    const char *uuid = JS(args, "instance_uuid"), *dest = JS(args, "dest");
    json_t *inst = NULL;
    struct ts_err err = {0};
    if (conductor(ag, "instance_get", json_pack("{s:s}", "instance_uuid", uuid), &inst, &err) < 0) return 0;
    if (JI(inst, "deleted") || json_is_object(json_object_get(inst, "migration"))) goto out;
    struct ts_virt_instance vi;
    vinst_fill(ag, inst, &vi);
    int rc = 0;
    if (dest && strcmp(dest, ag->host)) {
        rc = ag->ops->destroy(ag->drv, &vi, &err);
        rm_tree(vi.instance_dir);
    } else if (ag->ops->confirm_migration) {
        rc = ag->ops->confirm_migration(ag->drv, &vi, &err);
    }
    if (rc) ts_warn("agent", "confirm resize of %s: %s", uuid, err.msg);
    update(ag, uuid, NULL, NULL, json_object_get(args, "context"), "compute_confirm_resize", rc == 0, err.msg, NULL);
    json_t *now = NULL;
    if (conductor(ag, "instance_get", json_pack("{s:s}", "instance_uuid", uuid), &now, NULL) == 0)
        ts_compute_notify(ag->bus, ag->publisher, "compute.instance.resize.confirm.end", now);
    json_decref(now);
out:
    json_decref(inst);
    return 0;
}

/* createBackup's rotation (Nova's _rotate_backups): the newest `rotation` images with this
 * instance's uuid, image_type backup and this backup_type stay, older ones are deleted. */
static void rotate_backups(json_t *ctx, const char *uuid, const char *type,
                           int64_t rotation)
{
    const char *base = JS(ctx, "image_url");
    if (!base || !type) return;
    char *tok = ts_asprintf("X-Auth-Token: %s", JS(ctx, "token") ? JS(ctx, "token") : "");
    char *url = ts_asprintf("%s/v2/images?instance_uuid=%s&image_type=backup&sort_key=created_at&sort_dir=desc&"
                            "limit=1000", base, uuid);
    const char *hdrs[] = {tok, "Accept: application/json", NULL};
    struct ts_http_client_resp r = {0};
    json_t *list = NULL;
    if (ts_http_client_request("GET", url, hdrs, NULL, 0, 30000, &r, NULL) == 0 && r.status == 200)
        list = json_loadb(r.body ? r.body : "", r.body_len, 0, NULL);
    ts_http_client_resp_free(&r);
    int64_t kept = 0;
    size_t i;
    json_t *img;
    json_array_foreach(json_object_get(list, "images"), i, img) {
        /* filtered here too: the image service may ignore unknown property filters */
        if (!ts_streq(JS(img, "instance_uuid"), uuid) || !ts_streq(JS(img, "image_type"), "backup") ||
            !ts_streq(JS(img, "backup_type"), type) || !JS(img, "id"))
            continue;
        if (kept++ < rotation) continue;
        char *durl = ts_asprintf("%s/v2/images/%s", base, JS(img, "id"));
        struct ts_http_client_resp r2 = {0};
        ts_http_client_request("DELETE", durl, hdrs, NULL, 0, 30000, &r2, NULL);
        ts_info("agent", "backup rotation of %s: deleted image %s (%d)", uuid, JS(img, "id"), r2.status);
        ts_http_client_resp_free(&r2);
        free(durl);
    }
    json_decref(list);
    free(url);
    free(tok);
}

static int snapshot(struct ts_compute_agent *ag, json_t *args)
{
    const char *uuid = JS(args, "instance_uuid"), *image_id = JS(args, "image_id");
    json_t *ctx = json_object_get(args, "context");
    json_t *inst = NULL;
    struct ts_err err = {0};
    char *path = NULL, *url = NULL, *tok = NULL;
    int rc = 0, fd = -1;
    if (!image_id || conductor(ag, "instance_get", json_pack("{s:s}", "instance_uuid", uuid), &inst, &err) < 0)
        return 0;
    ts_compute_notify(ag->bus, ag->publisher, "compute.instance.snapshot.start", inst);
    struct ts_virt_instance vi;
    vinst_fill(ag, inst, &vi);
    ts_mkdirs(vi.instance_dir, 0755);
    path = ts_asprintf("%s/snapshot-%s.qcow2", vi.instance_dir, image_id);
    rc = ag->ops->snapshot(ag->drv, &vi, path, &err);
    if (rc) goto done;
    update(ag, uuid, json_pack("{s:s}", "task_state", "image_uploading"), NULL, NULL, NULL, true, NULL, NULL);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        rc = ts_err_set(&err, TS_EIO, "cannot open snapshot %s", path);
        goto done;
    }
    url = ts_asprintf("%s/v2/images/%s/file", JS(ctx, "image_url") ? JS(ctx, "image_url") : "", image_id);
    tok = ts_asprintf("X-Auth-Token: %s", JS(ctx, "token") ? JS(ctx, "token") : "");
    const char *hdrs[] = {tok, "Content-Type: application/octet-stream", NULL};
    struct ts_http_client_resp r = {0};
    rc = ts_http_client_upload_fd("PUT", url, hdrs, fd, st.st_size, 600000, &r, &err);
    if (!rc && r.status != 204 && r.status != 200 && r.status != 201)
        rc = ts_err_set(&err, TS_EIO, "image upload answered %d", r.status);
    ts_http_client_resp_free(&r);
done:
    if (fd >= 0) close(fd);
    if (path) unlink(path);
    if (rc) {
        ts_warn("agent", "snapshot of %s failed: %s", uuid, err.msg);
        /* the image record would stay queued forever: delete it as Nova does */
        if (JS(ctx, "image_url")) {
            char *durl = ts_asprintf("%s/v2/images/%s", JS(ctx, "image_url"), image_id);
            char *dtok = ts_asprintf("X-Auth-Token: %s", JS(ctx, "token") ? JS(ctx, "token") : "");
            const char *dh[] = {dtok, NULL};
            struct ts_http_client_resp r2 = {0};
            ts_http_client_request("DELETE", durl, dh, NULL, 0, 30000, &r2, NULL);
            ts_http_client_resp_free(&r2);
            free(durl);
            free(dtok);
        }
    }
    const char *backup_type = JS(args, "backup_type");
    if (!rc && backup_type) rotate_backups(ctx, uuid, backup_type, JI(args, "rotation"));
    json_t *fin = NULL;
    update(ag, uuid, json_pack("{s:n}", "task_state"), NULL, ctx,
           backup_type ? "compute_backup_instance" : "compute_snapshot_instance", rc == 0, err.msg, &fin);
    if (!rc) ts_compute_notify(ag->bus, ag->publisher, "compute.instance.snapshot.end", fin ? fin : inst);
    json_decref(fin);
    json_decref(inst);
    free(path);
    free(url);
    free(tok);
    return 0;
}

static int console_output(struct ts_compute_agent *ag, json_t *args, json_t **reply, struct ts_err *err)
{
    const char *uuid = JS(args, "instance_uuid");
    json_t *inst = NULL;
    int rc = conductor(ag, "instance_get", json_pack("{s:s}", "instance_uuid", uuid), &inst, err);
    if (rc) return rc;
    struct ts_virt_instance vi;
    vinst_fill(ag, inst, &vi);
    json_decref(inst);
    char *out = NULL;
    size_t len = 0;
    rc = ag->ops->console_log(ag->drv, &vi, 1 << 20, &out, &len, err);
    if (rc) return rc;
    int64_t want = JI(args, "length");
    const char *start = out;
    if (json_object_get(args, "length") && want >= 0) {
        /* the last `want` pieces of the text split on '\n', as Nova's _tail_log: a trailing
         * newline ends an empty last piece, so it counts as one */
        const char *p = out + len;
        int64_t lines = 0;
        while (p > out) {
            if (p[-1] == '\n' && ++lines >= want) break;
            p--;
        }
        start = want == 0 ? out + len : p;
    }
    /* invalid UTF-8 from a guest must not break the JSON reply */
    json_t *s = json_stringn(start, len - (size_t)(start - out));
    if (!s) {
        for (char *q = (char *)start; q < out + len; q++)
            if ((unsigned char)*q >= 0x80 || (*q < 0x20 && *q != '\n' && *q != '\r' && *q != '\t')) *q = '?';
        s = json_stringn(start, len - (size_t)(start - out));
    }
    free(out);
    *reply = json_pack("{s:o}", "output", s ? s : json_string(""));
    return 0;
}

/* ---- hotplug: volumes and interfaces (bus calls from the API) ------------------------------ */

static int attach_volume(struct ts_compute_agent *ag, json_t *args, json_t **reply, struct ts_err *err)
{
    const char *uuid = JS(args, "instance_uuid"), *vid = JS(args, "volume_id"), *att = JS(args, "attachment_id");
    const char *token = JS(json_object_get(args, "context"), "token");
    json_t *inst = NULL;
    if (!vid || !att) return ts_err_set(err, TS_EINVAL, "attach_volume without volume or attachment");
    int rc = conductor(ag, "instance_get", json_pack("{s:s}", "instance_uuid", uuid), &inst, err);
    if (rc) return rc;
    json_t *bdm = json_is_array(json_object_get(inst, "bdm")) ? json_deep_copy(json_object_get(inst, "bdm"))
                                                              : json_array();
    json_t *b = json_pack("{s:s, s:s, s:s, s:s, s:i, s:b}", "source_type", "volume", "destination_type", "volume",
                          "volume_id", vid, "attachment_id", att, "boot_index", -1, "delete_on_termination",
                          json_is_true(json_object_get(args, "delete_on_termination")));
    if (JS(args, "tag")) ts_json_set_str(b, "tag", JS(args, "tag"));
    rc = connect_volume(ag, token, JS(inst, "project_id"), b, err);
    if (rc) goto out;
    struct ts_virt_instance vi;
    vinst_fill(ag, inst, &vi);
    struct ts_virt_disk d;
    disk_fill(b, &d);
    const char *want = JS(args, "device");
    if (want && ts_startswith(want, "/dev/vd") && strlen(want) == 8 && !ts_streq(want, "/dev/vda")) {
        bool used = false;
        size_t i;
        json_t *x;
        json_array_foreach(bdm, i, x) if (ts_streq(JS(x, "device_name"), want)) used = true;
        if (!used) snprintf(d.dev, sizeof(d.dev), "%s", want + 5);
    }
    if (!d.dev[0]) {
        char dev[16];
        next_dev(bdm, dev);
        snprintf(d.dev, sizeof(d.dev), "%s", dev + 5);
    }
    rc = ag->ops->attach_disk(ag->drv, &vi, &d, err);
    if (rc) goto out;
    char devname[32];
    snprintf(devname, sizeof(devname), "/dev/%s", d.dev);
    ts_json_set_str(b, "device_name", devname);
    rc = ts_compute_vol_complete(ag->env, token, JS(inst, "project_id"), att, err);
    if (rc) {
        ag->ops->detach_disk(ag->drv, &vi, &d, NULL);
        goto out;
    }
    json_array_append(bdm, b);
    update(ag, uuid, json_pack("{s:O}", "bdm", bdm), NULL, NULL, NULL, true, NULL, NULL);
    *reply = json_pack("{s:s}", "device", devname);
out:
    json_decref(b);
    json_decref(bdm);
    json_decref(inst);
    return rc;
}

static int detach_volume(struct ts_compute_agent *ag, json_t *args, json_t **reply, struct ts_err *err)
{
    const char *uuid = JS(args, "instance_uuid"), *vid = JS(args, "volume_id");
    const char *token = JS(json_object_get(args, "context"), "token");
    json_t *inst = NULL;
    int rc = conductor(ag, "instance_get", json_pack("{s:s}", "instance_uuid", uuid), &inst, err);
    if (rc) return rc;
    json_t *bdm = json_deep_copy(json_object_get(inst, "bdm"));
    size_t i;
    json_t *b;
    ssize_t at = -1;
    json_array_foreach(bdm, i, b) if (ts_streq(JS(b, "volume_id"), vid)) at = (ssize_t)i;
    if (at < 0) {
        rc = ts_err_set(err, TS_ENOTFOUND, "volume %s is not attached to %s", vid ? vid : "", uuid);
        goto out;
    }
    b = json_array_get(bdm, (size_t)at);
    if (JS(b, "path")) {
        struct ts_virt_instance vi;
        vinst_fill(ag, inst, &vi);
        struct ts_virt_disk d;
        disk_fill(b, &d);
        rc = ag->ops->detach_disk(ag->drv, &vi, &d, err);
        if (rc == -TS_ENOTFOUND) rc = 0;
        if (rc) goto out;
    }
    if (JS(b, "attachment_id")) {
        struct ts_err e2 = {0};
        if (ts_compute_vol_unreserve(ag->env, token, JS(inst, "project_id"), JS(b, "attachment_id"), &e2) < 0)
            ts_warn("agent", "attachment %s of volume %s: %s", JS(b, "attachment_id"), vid, e2.msg);
    }
    json_array_remove(bdm, (size_t)at);
    update(ag, uuid, json_pack("{s:O}", "bdm", bdm), NULL, NULL, NULL, true, NULL, NULL);
    *reply = json_object();
out:
    json_decref(bdm);
    json_decref(inst);
    return rc;
}

static int attach_interface(struct ts_compute_agent *ag, json_t *args, json_t **reply, struct ts_err *err)
{
    const char *uuid = JS(args, "instance_uuid");
    const char *token = JS(json_object_get(args, "context"), "token");
    json_t *inst = NULL, *vif = NULL;
    int rc = conductor(ag, "instance_get", json_pack("{s:s}", "instance_uuid", uuid), &inst, err);
    if (rc) return rc;
    rc = ts_compute_net_port_setup(ag->env, token, inst, ag->host, json_object_get(args, "request"), &vif, err);
    if (rc) goto out;
    json_t *one = json_pack("[O]", vif);
    rc = wait_vifs(ag, uuid, one, err);
    json_decref(one);
    struct ts_virt_nic nic;
    nic_fill(vif, &nic);
    struct ts_virt_instance vi;
    vinst_fill(ag, inst, &vi);
    if (!rc) rc = ag->ops->attach_nic(ag->drv, &vi, &nic, err);
    if (rc) {
        ts_compute_net_port_release(ag->env, JS(vif, "port_id"), json_is_true(json_object_get(vif, "created")));
        goto out;
    }
    json_t *nw = json_is_array(json_object_get(inst, "nw_info")) ? json_deep_copy(json_object_get(inst, "nw_info"))
                                                                 : json_array();
    json_array_append(nw, vif);
    update(ag, uuid, json_pack("{s:o}", "nw_info", nw), NULL, NULL, NULL, true, NULL, NULL);
    *reply = json_incref(vif);
out:
    json_decref(vif);
    json_decref(inst);
    return rc;
}

static int detach_interface(struct ts_compute_agent *ag, json_t *args, json_t **reply, struct ts_err *err)
{
    const char *uuid = JS(args, "instance_uuid"), *pid = JS(args, "port_id");
    json_t *inst = NULL;
    int rc = conductor(ag, "instance_get", json_pack("{s:s}", "instance_uuid", uuid), &inst, err);
    if (rc) return rc;
    json_t *nw = json_deep_copy(json_object_get(inst, "nw_info"));
    size_t i;
    json_t *v;
    ssize_t at = -1;
    json_array_foreach(nw, i, v) if (ts_streq(JS(v, "port_id"), pid)) at = (ssize_t)i;
    bool created = false;
    if (at >= 0) {
        v = json_array_get(nw, (size_t)at);
        created = json_is_true(json_object_get(v, "created"));
        struct ts_virt_instance vi;
        vinst_fill(ag, inst, &vi);
        struct ts_virt_nic nic;
        nic_fill(v, &nic);
        rc = ag->ops->detach_nic(ag->drv, &vi, &nic, err);
        if (rc == -TS_ENOTFOUND) rc = 0;
        if (rc) goto out;
        json_array_remove(nw, (size_t)at);
        update(ag, uuid, json_pack("{s:O}", "nw_info", nw), NULL, NULL, NULL, true, NULL, NULL);
    }
    ts_compute_net_port_release(ag->env, pid, created);
    *reply = json_object();
out:
    json_decref(nw);
    json_decref(inst);
    return rc;
}

/* "compute_events.<host>": external events, on their own workers so that builds waiting for
 * network-vif-plugged never starve their delivery. */
static int events_handler(void *ctx, const char *method, json_t *args, json_t **reply, struct ts_err *err)
{
    struct ts_compute_agent *ag = ctx;
    (void)reply;
    if (strcmp(method, "external_instance_event")) return ts_err_set(err, TS_EINVAL, "unknown method %s", method);
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(args, "events"), i, e) {
        const char *uuid = JS(e, "server_uuid"), *name = JS(e, "name");
        if (!uuid || !name || !ts_uuid_valid(uuid)) continue;
        ts_debug("agent", "event %s %s tag %s", uuid, name, JS(e, "tag") ? JS(e, "tag") : "");
        if (ts_streq(JS(e, "status"), "failed")) continue;
        ev_record(ag, uuid, name, JS(e, "tag"));
    }
    return 0;
}

static int handler(void *ctx, const char *method, json_t *args, json_t **reply, struct ts_err *err)
{
    struct ts_compute_agent *ag = ctx;
    const char *uuid = JS(args, "instance_uuid");
    if (!uuid || !ts_uuid_valid(uuid)) return ts_err_set(err, TS_EINVAL, "agent: %s without instance_uuid", method);
    if (!strcmp(method, "get_console_output")) return console_output(ag, args, reply, err);
    inst_lock(ag, uuid);
    int rc;
    if (!strcmp(method, "build_and_run_instance")) rc = build(ag, args);
    else if (!strcmp(method, "terminate_instance")) rc = terminate(ag, args);
    else if (!strcmp(method, "snapshot_instance")) rc = snapshot(ag, args);
    else if (!strcmp(method, "attach_volume")) rc = attach_volume(ag, args, reply, err);
    else if (!strcmp(method, "detach_volume")) rc = detach_volume(ag, args, reply, err);
    else if (!strcmp(method, "attach_interface")) rc = attach_interface(ag, args, reply, err);
    else if (!strcmp(method, "detach_interface")) rc = detach_interface(ag, args, reply, err);
    else if (!strcmp(method, "resize_instance")) rc = resize_instance(ag, args);
    else if (!strcmp(method, "finish_resize")) rc = finish_resize(ag, args);
    else if (!strcmp(method, "revert_resize")) rc = revert_resize(ag, args);
    else if (!strcmp(method, "finish_revert_resize")) rc = finish_revert_resize(ag, args);
    else if (!strcmp(method, "confirm_resize")) rc = confirm_resize(ag, args);
    else rc = simple_op(ag, method, args);
    inst_unlock(ag, uuid);
    return rc;
}

/* ---- reporting and power sync ------------------------------------------------------------- */

static void report(struct ts_compute_agent *ag)
{
    struct ts_virt_host_info hi;
    struct ts_err err = {0};
    if (ag->ops->host_info(ag->drv, &hi, &err) < 0) {
        ts_warn("agent", "host_info: %s", err.msg);
        return;
    }
    json_t *args = json_pack("{s:s, s:s, s:s, s:{s:s, s:I, s:i, s:I, s:I, s:s}}", "host", ag->host, "availability_zone",
                             ag->zone, "host_ip", ts_conf_get(ag->conf, "DEFAULT", "my_ip", "127.0.0.1"), "host_info",
                             "hypervisor_type", hi.hypervisor_type, "hypervisor_version",
                             (json_int_t)hi.hypervisor_version, "vcpus", hi.vcpus, "memory_mb",
                             (json_int_t)hi.memory_mb, "local_gb", (json_int_t)hi.local_gb, "cpu_info", hi.cpu_info);
    if (conductor(ag, "report_state", args, NULL, &err) < 0) ts_warn("agent", "report_state: %s", err.msg);
}

static void sync_power(struct ts_compute_agent *ag)
{
    json_t *reply = NULL;
    if (conductor(ag, "instances_on_host", json_pack("{s:s}", "host", ag->host), &reply, NULL) < 0) return;
    size_t i;
    json_t *inst;
    json_array_foreach(json_object_get(reply, "instances"), i, inst) {
        if (JS(inst, "task_state")) continue;
        const char *vm = JS(inst, "vm_state");
        if (!ts_streq(vm, "active") && !ts_streq(vm, "stopped") && !ts_streq(vm, "paused") &&
            !ts_streq(vm, "suspended"))
            continue;
        const char *uuid = JS(inst, "uuid");
        struct ts_virt_instance vi;
        vinst_fill(ag, inst, &vi);
        enum ts_power_state ps = TS_POWER_NOSTATE;
        if (ag->ops->power_state(ag->drv, &vi, &ps, NULL) < 0) ps = TS_POWER_NOSTATE;
        if ((int64_t)ps == JI(inst, "power_state")) continue;
        json_t *vals = json_pack("{s:i}", "power_state", (int)ps);
        /* a guest that shut itself down: Nova's _sync_instance_power_state stops the instance */
        if (ts_streq(vm, "active") && (ps == TS_POWER_SHUTDOWN || ps == TS_POWER_CRASHED))
            json_object_set_new(vals, "vm_state", json_string("stopped"));
        inst_lock(ag, uuid);
        update(ag, uuid, vals, "", NULL, NULL, true, NULL, NULL);
        inst_unlock(ag, uuid);
    }
    json_decref(reply);
}

static void *reporter_main(void *arg)
{
    struct ts_compute_agent *ag = arg;
    int sync_every = (int)ts_conf_get_int(ag->conf, "compute", "sync_power_state_interval", 60);
    double last_sync = ts_mono();
    pthread_mutex_lock(&ag->lock);
    while (!ag->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += ag->report_interval;
        pthread_cond_timedwait(&ag->cond, &ag->lock, &ts);
        if (ag->stopping) break;
        pthread_mutex_unlock(&ag->lock);
        report(ag);
        if (sync_every > 0 && ts_mono() - last_sync >= sync_every) {
            sync_power(ag);
            last_sync = ts_mono();
        }
        pthread_mutex_lock(&ag->lock);
    }
    pthread_mutex_unlock(&ag->lock);
    return NULL;
}

/* ---- life cycle ----------------------------------------------------------------------------- */

void ts_compute_agent_stop(struct ts_compute_agent *ag)
{
    if (!ag) return;
    if (ag->serving) ts_bus_unserve(ag->bus, ag->topic);
    if (ag->serving_events) {
        char *t = ts_asprintf("compute_events.%s", ag->host);
        ts_bus_unserve(ag->bus, t);
        free(t);
    }
    pthread_mutex_lock(&ag->lock);
    ag->stopping = true;
    pthread_cond_broadcast(&ag->cond);
    pthread_mutex_unlock(&ag->lock);
    if (ag->reporter_started) pthread_join(ag->reporter, NULL);
    if (ag->drv) ag->ops->close(ag->drv);
    pthread_mutex_destroy(&ag->lock);
    pthread_cond_destroy(&ag->cond);
    free(ag->busy);
    free(ag->evs);
    free(ag->base_dir);
    free(ag->instances_dir);
    free(ag);
}

int ts_compute_agent_start(struct ts_service_env *env, const char *driver, struct ts_compute_agent **out,
                           struct ts_err *err)
{
    struct ts_compute_agent *ag = ts_calloc(1, sizeof(*ag));
    pthread_mutex_init(&ag->lock, NULL);
    pthread_cond_init(&ag->cond, NULL);
    ag->env = env;
    ag->bus = env->bus;
    ag->conf = env->conf;
    ag->vif_timeout = (int)ts_conf_get_int(env->conf, "compute", "vif_plugging_timeout", 300);
    ag->vif_fatal = ts_conf_get_bool(env->conf, "compute", "vif_plugging_is_fatal", true);
    snprintf(ag->host, sizeof(ag->host), "%s", env->host ? env->host : "localhost");
    snprintf(ag->topic, sizeof(ag->topic), "compute.%s", ag->host);
    snprintf(ag->publisher, sizeof(ag->publisher), "compute.%s", ag->host);
    snprintf(ag->zone, sizeof(ag->zone), "%s", ts_conf_get(env->conf, "compute", "availability_zone", "nova"));
    ag->base_dir = ts_asprintf("%s/compute/%s", env->data_dir, ag->host);
    ag->instances_dir = ts_strdup(ts_conf_get(env->conf, "compute", "instances_path", ag->base_dir));
    ag->report_interval = (int)ts_conf_get_int(env->conf, "compute", "report_interval", 10);
    if (ag->report_interval < 1) ag->report_interval = 1;
    int rc = 0;
    if (!driver) driver = ts_conf_get(env->conf, "compute", "virt_driver", NULL);
    if (driver) {
        ag->ops = ts_virt_find(driver);
        if (!ag->ops) {
            rc = ts_err_set(err, TS_EINVAL, "unknown or unavailable virt driver '%s'", driver);
            goto out;
        }
        rc = ag->ops->open(env->conf, ag->host, &ag->drv, err);
        if (rc) goto out;
    } else {
        /* default: libvirt when libvirtd answers, else fake */
        const struct ts_virt_ops *lv = ts_virt_find("libvirt");
        struct ts_err e2 = {0};
        if (lv && lv->open(env->conf, ag->host, &ag->drv, &e2) == 0) {
            ag->ops = lv;
        } else {
            ts_info("agent", "libvirt driver not usable (%s): using the fake driver", lv ? e2.msg : "not built");
            ag->ops = &ts_virt_fake_ops;
            rc = ag->ops->open(env->conf, ag->host, &ag->drv, err);
            if (rc) goto out;
        }
    }
    ts_mkdirs(ag->base_dir, 0755);
    ts_mkdirs(ag->instances_dir, 0755);
    rc = ts_bus_serve(ag->bus, ag->topic, handler, ag, (int)ts_conf_get_int(env->conf, "compute", "agent_workers", 8),
                      err);
    if (rc) goto out;
    ag->serving = true;
    char *evt = ts_asprintf("compute_events.%s", ag->host);
    rc = ts_bus_serve(ag->bus, evt, events_handler, ag, 2, err);
    free(evt);
    if (rc) goto out;
    ag->serving_events = true;
    report(ag);   /* schedulable right away */
    if (pthread_create(&ag->reporter, NULL, reporter_main, ag) == 0) ag->reporter_started = true;
    ts_info("agent", "compute agent for host %s running with the %s driver", ag->host, ag->ops->name);
    *out = ag;
out:
    if (rc) ts_compute_agent_stop(ag);
    return rc;
}
