/*
 * ts_volume_mgr.c: the scheduler and the volume managers, as Cinder runs them, over the
 * bus. The API casts create_volume to the scheduler (topic "cinder-scheduler"); the
 * scheduler filters the pools the managers reported (backend name from the type's
 * volume_backend_name extra spec, capacity with thin over-subscription), weighs them by
 * free space, records the host and casts to the manager's topic
 * "cinder-volume.<host>@<backend>". Managers do the slow work (copies, qemu-img, image
 * download/upload) on their bus worker threads, never on API threads, then set the final
 * state and notify. Also crash recovery at start.
 */
#include "volume/ts_volume_int.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct ts_volume_backend *ts_volume_mgr_backend(struct ts_volume_svc *svc, const char *host)
{
    if (!host) return NULL;
    const char *at = strchr(host, '@');
    if (!at) return NULL;
    at++;
    size_t n = strcspn(at, "#");
    for (int i = 0; i < svc->n_backends; i++)
        if (strlen(svc->backends[i]->name) == n && strncmp(svc->backends[i]->name, at, n) == 0)
            return svc->backends[i];
    return NULL;
}

int ts_volume_cast_scheduler(struct ts_volume_svc *svc, const char *method, json_t *args, struct ts_err *err)
{
    return ts_bus_cast(svc->env->bus, TS_VOLUME_SCHED_TOPIC, method, args, err);
}

int ts_volume_cast_manager(struct ts_volume_svc *svc, const char *host, const char *method, json_t *args,
                           struct ts_err *err)
{
    if (!host) {
        json_decref(args);
        return ts_err_set(err, TS_EINVAL, "Volume has no host");
    }
    char topic[400];
    snprintf(topic, sizeof(topic), "cinder-volume.%.*s", (int)strcspn(host, "#"), host);
    return ts_bus_cast(svc->env->bus, topic, method, args, err);
}

/* ---- capability reports ------------------------------------------------------------------- */

static void report_caps(struct ts_volume_svc *svc, int idx)
{
    struct ts_volume_backend *be = svc->backends[idx];
    struct ts_volume_backend_stats st = {0};
    if (be->ops->stats(be, &st) != 0) return;
    char host[320];
    snprintf(host, sizeof(host), "%s@%s#%s", svc->host, be->name, be->name);
    json_t *a =
        json_pack("{s:s, s:s, s:s, s:f, s:f, s:f, s:f, s:b}", "host", host, "backend", be->name, "topic",
                  svc->topics[idx], "total_gb", st.total_gb, "free_gb", st.free_gb, "provisioned_gb",
                  ts_volume_usage_backend_gb(svc, be->name), "ratio", be->ratio, "thin", st.thin);
    ts_bus_cast(svc->env->bus, TS_VOLUME_SCHED_TOPIC, "update_capabilities", a, NULL);
}

json_t *ts_volume_mgr_pools(struct ts_volume_svc *svc, bool detail)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&svc->lock);
    for (int i = 0; i < svc->n_pools; i++) {
        struct ts_volume_pool *p = &svc->pools[i];
        json_t *o = json_pack("{s:s}", "name", p->host);
        if (detail) {
            char ts[32];
            ts_time_iso(p->updated, 6, ts);
            json_object_set_new(o, "capabilities",
                                json_pack("{s:s, s:f, s:f, s:f, s:f, s:b, s:b, s:s, s:s, s:s, s:s, s:i, s:s}",
                                          "volume_backend_name", p->backend, "total_capacity_gb", p->total_gb,
                                          "free_capacity_gb", p->free_gb, "provisioned_capacity_gb",
                                          p->provisioned_gb, "max_over_subscription_ratio", p->ratio,
                                          "thin_provisioning_support", p->thin, "thick_provisioning_support",
                                          !p->thin, "storage_protocol", "file", "vendor_name", "Open Source",
                                          "driver_version", "1.0", "timestamp", ts, "reserved_percentage", 0,
                                          "pool_name", p->backend));
        }
        json_array_append_new(arr, o);
    }
    pthread_mutex_unlock(&svc->lock);
    return arr;
}

/* ---- scheduler ------------------------------------------------------------------------------ */

static bool pool_fits(const struct ts_volume_pool *p, int64_t size)
{
    if (p->thin) {
        if (p->provisioned_gb + (double)size > p->total_gb * p->ratio) return false;
        return p->free_gb > 0 || size == 0;
    }
    return p->free_gb >= (double)size;
}

static void fail_volume(struct ts_volume_svc *svc, const char *vol_id, const char *why)
{
    ts_warn("volume", "volume %s: %s", vol_id, why);
    ts_volume_set_status(svc, vol_id, "error", NULL);
    ts_volume_notify_volume(svc, "volume.create.end", vol_id);
}

static int sched_create(struct ts_volume_svc *svc, json_t *args)
{
    const char *vol_id = ts_json_str(args, "volume_id", NULL);
    const char *want = ts_json_str(args, "backend_name", NULL);
    const char *same_host = ts_json_str(args, "same_host", NULL); /* clones stay on their source's backend */
    int64_t size = ts_json_int(args, "size", 1);
    if (!vol_id) return 0;
    char host[320] = "", topic[400] = "";
    for (int tries = 0; tries < 40; tries++) {
        pthread_mutex_lock(&svc->lock);
        int n = svc->n_pools;
        int best = -1;
        for (int i = 0; i < svc->n_pools; i++) {
            struct ts_volume_pool *p = &svc->pools[i];
            if (want && *want && strcmp(p->backend, want) != 0) continue;
            if (same_host && *same_host && strncmp(p->host, same_host, strcspn(same_host, "#")) != 0)
                continue;
            if (!pool_fits(p, size)) continue;
            if (best < 0 || p->free_gb > svc->pools[best].free_gb) best = i;
        }
        if (best >= 0) {
            struct ts_volume_pool *p = &svc->pools[best];
            p->provisioned_gb += (double)size; /* consumed until the next report */
            if (!p->thin) p->free_gb -= (double)size;
            snprintf(host, sizeof(host), "%s", p->host);
            snprintf(topic, sizeof(topic), "%s", p->topic);
        }
        pthread_mutex_unlock(&svc->lock);
        if (best >= 0 || n > 0) break;
        usleep(50000); /* no report yet (just started) */
    }
    if (!host[0]) {
        fail_volume(svc, vol_id, "No valid backend was found.");
        return 0;
    }
    const char *backend = strchr(host, '@') + 1;
    char bname[64];
    snprintf(bname, sizeof(bname), "%.*s", (int)strcspn(backend, "#"), backend);
    ts_db_exec(svc->db, "UPDATE volumes SET host = ?, backend = ? WHERE id = ?",
               TS_DB_ARGS(TS_DB_S(host), TS_DB_S(bname), TS_DB_S(vol_id)), NULL, NULL);
    struct ts_err e = {0};
    if (ts_bus_cast(svc->env->bus, topic, "create_volume", json_deep_copy(args), &e) != 0)
        fail_volume(svc, vol_id, e.msg);
    return 0;
}

static int sched_handler(void *ctx, const char *method, json_t *args, json_t **reply, struct ts_err *err)
{
    (void)reply, (void)err;
    struct ts_volume_svc *svc = ctx;
    if (strcmp(method, "create_volume") == 0) return sched_create(svc, args);
    if (strcmp(method, "update_capabilities") == 0) {
        const char *host = ts_json_str(args, "host", NULL);
        if (!host) return 0;
        pthread_mutex_lock(&svc->lock);
        int i;
        for (i = 0; i < svc->n_pools; i++)
            if (strcmp(svc->pools[i].host, host) == 0) break;
        if (i == svc->n_pools && svc->n_pools < (int)(sizeof(svc->pools) / sizeof(svc->pools[0])))
            svc->n_pools++;
        if (i < svc->n_pools) {
            struct ts_volume_pool *p = &svc->pools[i];
            snprintf(p->host, sizeof(p->host), "%s", host);
            snprintf(p->backend, sizeof(p->backend), "%s", ts_json_str(args, "backend", ""));
            snprintf(p->topic, sizeof(p->topic), "%s", ts_json_str(args, "topic", ""));
            p->total_gb = json_number_value(json_object_get(args, "total_gb"));
            p->free_gb = json_number_value(json_object_get(args, "free_gb"));
            p->provisioned_gb = json_number_value(json_object_get(args, "provisioned_gb"));
            p->ratio = json_number_value(json_object_get(args, "ratio"));
            p->thin = ts_json_bool(args, "thin", true);
            p->updated = ts_now();
        }
        pthread_mutex_unlock(&svc->lock);
    }
    return 0;
}

/* ---- manager -------------------------------------------------------------------------------- */

struct dl {
    int fd;
    int64_t bytes;
};

static int dl_write(void *ctx, const char *data, size_t len)
{
    struct dl *d = ctx;
    while (len > 0) {
        ssize_t w = write(d->fd, data, len);
        if (w < 0) return -TS_EIO;
        data += w;
        len -= (size_t)w;
        d->bytes += w;
    }
    return 0;
}

static char *token_header(const char *token)
{
    return ts_asprintf("X-Auth-Token: %s", token ? token : "");
}

/* GETs the image record and its data into tmp; fills image metadata for the volume. */
static int fetch_image(struct ts_volume_svc *svc, struct ts_volume_backend *be, const char *vol_id,
                       const char *image_id, const char *token, char *tmp, size_t tmplen, json_t **meta,
                       struct ts_err *err)
{
    char *th = token_header(token);
    const char *hdrs[] = {th, "Accept: application/json", NULL};
    char *url = ts_asprintf("%s/v2/images/%s", svc->image_url, image_id);
    struct ts_http_client_resp r = {0};
    int rc = ts_http_client_request("GET", url, hdrs, NULL, 0, 30000, &r, err);
    free(url);
    if (rc) goto out;
    if (r.status != 200) {
        rc = ts_err_set(err, TS_EINVAL, "Image %s could not be found (%d).", image_id, r.status);
        goto out;
    }
    json_t *img = json_loads(r.body ? r.body : "", 0, NULL);
    if (!img) {
        rc = ts_err_set(err, TS_EIO, "bad image record");
        goto out;
    }
    json_t *m = json_object();
    static const char *const keys[] = {"name", "disk_format", "container_format", "checksum",
                                       "size", "min_disk",    "min_ram",          NULL};
    json_object_set_new(m, "image_id", json_string(image_id));
    for (int i = 0; keys[i]; i++) {
        json_t *v = json_object_get(img, keys[i]);
        if (!v || json_is_null(v)) continue;
        const char *k = strcmp(keys[i], "name") == 0 ? "image_name" : keys[i];
        if (json_is_string(v))
            json_object_set(m, k, v);
        else {
            char *s = json_dumps(v, JSON_ENCODE_ANY);
            json_object_set_new(m, k, json_string(s));
            free(s);
        }
    }
    json_decref(img);
    *meta = m;
    snprintf(tmp, tmplen, "%s/.tmp-image-%s", be->dir, vol_id);
    struct dl d = {open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), 0};
    if (d.fd < 0) {
        rc = ts_err_set(err, TS_EIO, "cannot create %s", tmp);
        goto out;
    }
    url = ts_asprintf("%s/v2/images/%s/file", svc->image_url, image_id);
    const char *h2[] = {th, NULL};
    int status = 0;
    rc = ts_http_client_download(url, h2, 0, dl_write, &d, &status, err);
    free(url);
    close(d.fd);
    if (rc == 0 && status != 200) rc = ts_err_set(err, TS_EIO, "image download answered %d", status);
    if (rc) unlink(tmp);
out:
    free(th);
    ts_http_client_resp_free(&r);
    return rc;
}

static int m_create(struct ts_volume_mgr_ctx *mc, json_t *args)
{
    struct ts_volume_svc *svc = mc->svc;
    struct ts_volume_backend *be = mc->be;
    const char *vol_id = ts_json_str(args, "volume_id", NULL);
    const char *snap = ts_json_str(args, "snapshot_id", NULL);
    const char *src = ts_json_str(args, "source_volid", NULL);
    const char *image = ts_json_str(args, "image_id", NULL);
    int64_t size = ts_json_int(args, "size", 1);
    struct ts_err e = {0};
    int rc;
    json_t *meta = NULL;
    if (!vol_id) return 0;
    ts_volume_notify_volume(svc, "volume.create.start", vol_id);
    if (snap && *snap)
        rc = be->ops->clone(be, vol_id, snap, true, size, &e);
    else if (src && *src)
        rc = be->ops->clone(be, vol_id, src, false, size, &e);
    else if (image && *image) {
        char tmp[1200];
        rc = fetch_image(svc, be, vol_id, image, ts_json_str(args, "token", NULL), tmp, sizeof(tmp), &meta,
                         &e);
        if (rc == 0) {
            rc = be->ops->create_from_image(be, vol_id, tmp, size, &e);
            unlink(tmp);
        }
    } else
        rc = be->ops->create(be, vol_id, size, &e);
    char now[32];
    ts_volume_now(now);
    if (rc) {
        ts_warn("volume", "create %s failed: %s", vol_id, e.msg);
        ts_db_exec(svc->db, "UPDATE volumes SET status = 'error', updated_at = ? WHERE id = ?",
                   TS_DB_ARGS(TS_DB_S(now), TS_DB_S(vol_id)), NULL, NULL);
    } else {
        char *ms = meta ? ts_json_dump(meta) : NULL;
        if (ms)
            ts_db_exec(svc->db, "UPDATE volumes SET image_meta = ?, bootable = 1 WHERE id = ?",
                       TS_DB_ARGS(TS_DB_S(ms), TS_DB_S(vol_id)), NULL, NULL);
        free(ms);
        ts_db_exec(svc->db,
                   "UPDATE volumes SET status = 'available', launched_at = ?, updated_at = ? "
                   "WHERE id = ? AND status = 'creating'",
                   TS_DB_ARGS(TS_DB_S(now), TS_DB_S(now), TS_DB_S(vol_id)), NULL, NULL);
    }
    json_decref(meta);
    ts_volume_notify_volume(svc, "volume.create.end", vol_id);
    report_caps(svc, mc->idx);
    return 0;
}

static int m_delete(struct ts_volume_mgr_ctx *mc, json_t *args)
{
    struct ts_volume_svc *svc = mc->svc;
    const char *vol_id = ts_json_str(args, "volume_id", NULL);
    struct ts_err e = {0};
    if (!vol_id) return 0;
    ts_volume_notify_volume(svc, "volume.delete.start", vol_id);
    if (mc->be->ops->delete (mc->be, vol_id, &e) != 0) {
        ts_warn("volume", "delete %s failed: %s", vol_id, e.msg);
        ts_volume_set_status(svc, vol_id, "error_deleting", NULL);
        return 0;
    }
    ts_db_exec(svc->db, "DELETE FROM volume_metadata WHERE volume_id = ?", TS_DB_ARGS(TS_DB_S(vol_id)), NULL,
               NULL);
    ts_db_exec(svc->db, "DELETE FROM attachments WHERE volume_id = ?", TS_DB_ARGS(TS_DB_S(vol_id)), NULL,
               NULL);
    ts_db_exec(svc->db, "DELETE FROM transfers WHERE volume_id = ?", TS_DB_ARGS(TS_DB_S(vol_id)), NULL, NULL);
    ts_db_exec(svc->db, "DELETE FROM volumes WHERE id = ?", TS_DB_ARGS(TS_DB_S(vol_id)), NULL, NULL);
    ts_bus_notify(svc->env->bus, svc->publisher, "volume.delete.end", "INFO",
                  json_pack("{s:s, s:s}", "volume_id", vol_id, "status", "deleted"));
    report_caps(svc, mc->idx);
    return 0;
}

static int m_extend(struct ts_volume_mgr_ctx *mc, json_t *args)
{
    struct ts_volume_svc *svc = mc->svc;
    const char *vol_id = ts_json_str(args, "volume_id", NULL);
    int64_t new_size = ts_json_int(args, "new_size", 0);
    const char *restore = ts_json_str(args, "restore_status", "available");
    struct ts_err e = {0};
    if (!vol_id) return 0;
    ts_volume_notify_volume(svc, "volume.resize.start", vol_id);
    char now[32];
    ts_volume_now(now);
    if (mc->be->ops->extend(mc->be, vol_id, new_size, &e) != 0) {
        ts_warn("volume", "extend %s failed: %s", vol_id, e.msg);
        ts_volume_set_status(svc, vol_id, "error_extending", NULL);
    } else {
        ts_db_exec(svc->db, "UPDATE volumes SET size = ?, status = ?, updated_at = ? WHERE id = ?",
                   TS_DB_ARGS(TS_DB_I(new_size), TS_DB_S(restore), TS_DB_S(now), TS_DB_S(vol_id)), NULL,
                   NULL);
    }
    ts_volume_notify_volume(svc, "volume.resize.end", vol_id);
    report_caps(svc, mc->idx);
    return 0;
}

static int m_snapshot_create(struct ts_volume_mgr_ctx *mc, json_t *args)
{
    struct ts_volume_svc *svc = mc->svc;
    const char *snap_id = ts_json_str(args, "snapshot_id", NULL),
               *vol_id = ts_json_str(args, "volume_id", NULL);
    struct ts_err e = {0};
    if (!snap_id || !vol_id) return 0;
    ts_volume_notify_snapshot(svc, "snapshot.create.start", snap_id);
    int rc = mc->be->ops->snapshot_create(mc->be, snap_id, vol_id, &e);
    char now[32];
    ts_volume_now(now);
    if (rc) ts_warn("volume", "snapshot %s failed: %s", snap_id, e.msg);
    ts_db_exec(svc->db, "UPDATE snapshots SET status = ?, progress = ?, updated_at = ? WHERE id = ?",
               TS_DB_ARGS(TS_DB_S(rc ? "error" : "available"), TS_DB_S(rc ? "0%" : "100%"), TS_DB_S(now),
                          TS_DB_S(snap_id)),
               NULL, NULL);
    ts_volume_notify_snapshot(svc, "snapshot.create.end", snap_id);
    return 0;
}

static int m_snapshot_delete(struct ts_volume_mgr_ctx *mc, json_t *args)
{
    struct ts_volume_svc *svc = mc->svc;
    const char *snap_id = ts_json_str(args, "snapshot_id", NULL);
    struct ts_err e = {0};
    if (!snap_id) return 0;
    ts_volume_notify_snapshot(svc, "snapshot.delete.start", snap_id);
    if (mc->be->ops->snapshot_delete(mc->be, snap_id, &e) != 0) {
        ts_db_exec(svc->db, "UPDATE snapshots SET status = 'error_deleting' WHERE id = ?",
                   TS_DB_ARGS(TS_DB_S(snap_id)), NULL, NULL);
        return 0;
    }
    ts_db_exec(svc->db, "DELETE FROM snapshot_metadata WHERE snapshot_id = ?", TS_DB_ARGS(TS_DB_S(snap_id)),
               NULL, NULL);
    ts_db_exec(svc->db, "DELETE FROM snapshots WHERE id = ?", TS_DB_ARGS(TS_DB_S(snap_id)), NULL, NULL);
    ts_bus_notify(svc->env->bus, svc->publisher, "snapshot.delete.end", "INFO",
                  json_pack("{s:s, s:s}", "snapshot_id", snap_id, "status", "deleted"));
    report_caps(svc, mc->idx);
    return 0;
}

static int m_revert(struct ts_volume_mgr_ctx *mc, json_t *args)
{
    struct ts_volume_svc *svc = mc->svc;
    const char *snap_id = ts_json_str(args, "snapshot_id", NULL),
               *vol_id = ts_json_str(args, "volume_id", NULL);
    struct ts_err e = {0};
    if (!snap_id || !vol_id) return 0;
    int rc = mc->be->ops->revert(mc->be, vol_id, snap_id, &e);
    if (rc) ts_warn("volume", "revert %s failed: %s", vol_id, e.msg);
    ts_volume_set_status(svc, vol_id, rc ? "error" : "available", NULL);
    ts_db_exec(svc->db, "UPDATE snapshots SET status = 'available' WHERE id = ?",
               TS_DB_ARGS(TS_DB_S(snap_id)), NULL, NULL);
    ts_volume_notify_volume(svc, "volume.revert.end", vol_id);
    return 0;
}

static int m_upload(struct ts_volume_mgr_ctx *mc, json_t *args)
{
    struct ts_volume_svc *svc = mc->svc;
    struct ts_volume_backend *be = mc->be;
    const char *vol_id = ts_json_str(args, "volume_id", NULL),
               *image_id = ts_json_str(args, "image_id", NULL);
    const char *fmt = ts_json_str(args, "disk_format", "raw");
    const char *restore = ts_json_str(args, "restore_status", "available");
    if (!vol_id || !image_id) return 0;
    struct ts_err e = {0};
    char path[1200], tmp[1200];
    be->ops->path(be, vol_id, path, sizeof(path));
    const char *src = path;
    int rc = 0;
    tmp[0] = 0;
    if (strcmp(fmt, "raw") != 0 || strcmp(be->format, "raw") != 0) {
        snprintf(tmp, sizeof(tmp), "%s/.tmp-upload-%s", be->dir, vol_id);
        const char *of = strcmp(fmt, "raw") == 0 || strcmp(fmt, "qcow2") == 0 || strcmp(fmt, "vmdk") == 0 ||
                                 strcmp(fmt, "vdi") == 0 || strcmp(fmt, "vhd") == 0
                             ? (strcmp(fmt, "vhd") == 0 ? "vpc" : fmt)
                             : "raw";
        const char *argv[] = {
            "/usr/bin/qemu-img", "convert", "-q", "-f", be->format, "-O", of, path, tmp, NULL};
        rc = ts_volume_run(argv, &e);
        src = tmp;
    }
    int fd = -1;
    if (rc == 0) {
        fd = open(src, O_RDONLY | O_CLOEXEC);
        if (fd < 0) rc = ts_err_set(&e, TS_EIO, "open %s", src);
    }
    if (rc == 0) {
        off_t size = lseek(fd, 0, SEEK_END); /* a block device (LVM) has no st_size */
        lseek(fd, 0, SEEK_SET);
        char *th = token_header(ts_json_str(args, "token", NULL));
        const char *hdrs[] = {th, "Content-Type: application/octet-stream", NULL};
        char *url = ts_asprintf("%s/v2/images/%s/file", svc->image_url, image_id);
        struct ts_http_client_resp r = {0};
        rc = ts_http_client_upload_fd("PUT", url, hdrs, fd, size, 0, &r, &e);
        if (rc == 0 && (r.status < 200 || r.status >= 300))
            rc = ts_err_set(&e, TS_EIO, "image upload answered %d", r.status);
        ts_http_client_resp_free(&r);
        free(url);
        free(th);
    }
    if (fd >= 0) close(fd);
    if (tmp[0]) unlink(tmp);
    if (rc) ts_warn("volume", "upload of %s to image %s failed: %s", vol_id, image_id, e.msg);
    ts_volume_set_status(svc, vol_id, restore, NULL);
    ts_volume_notify_volume(svc, "volume.upload_image.end", vol_id);
    return 0;
}

static int mgr_handler(void *ctx, const char *method, json_t *args, json_t **reply, struct ts_err *err)
{
    (void)reply, (void)err;
    struct ts_volume_mgr_ctx *mc = ctx;
    if (strcmp(method, "create_volume") == 0) return m_create(mc, args);
    if (strcmp(method, "delete_volume") == 0) return m_delete(mc, args);
    if (strcmp(method, "extend_volume") == 0) return m_extend(mc, args);
    if (strcmp(method, "create_snapshot") == 0) return m_snapshot_create(mc, args);
    if (strcmp(method, "delete_snapshot") == 0) return m_snapshot_delete(mc, args);
    if (strcmp(method, "revert_to_snapshot") == 0) return m_revert(mc, args);
    if (strcmp(method, "upload_image") == 0) return m_upload(mc, args);
    if (strcmp(method, "create_backup") == 0) ts_volume_backup_create_work(mc->svc, mc->be, args);
    if (strcmp(method, "restore_backup") == 0) ts_volume_backup_restore_work(mc->svc, mc->be, args);
    if (strcmp(method, "delete_backup") == 0) ts_volume_backup_delete_work(mc->svc, mc->be, args);
    if (strcmp(method, "import_backup") == 0) ts_volume_backup_import_work(mc->svc, mc->be, args);
    if (strcmp(method, "report") == 0) report_caps(mc->svc, mc->idx);
    return 0;
}

/* ---- start, stop, recovery ------------------------------------------------------------------ */

int ts_volume_mgr_start(struct ts_volume_svc *svc, struct ts_err *err)
{
    struct ts_bus *bus = svc->env->bus;
    int rc = ts_bus_serve(bus, TS_VOLUME_SCHED_TOPIC, sched_handler, svc, 2, err);
    if (rc) return rc;
    svc->serving = true;
    struct ts_volume_mgr_ctx *ctxs = svc->mgrs;
    int threads = (int)ts_conf_get_int(svc->env->conf, "volume", "manager_threads", 4);
    for (int i = 0; i < svc->n_backends; i++) {
        snprintf(svc->topics[i], sizeof(svc->topics[i]), "cinder-volume.%s@%s", svc->host,
                 svc->backends[i]->name);
        ctxs[i] = (struct ts_volume_mgr_ctx){svc, svc->backends[i], i};
        rc = ts_bus_serve(bus, svc->topics[i], mgr_handler, &ctxs[i], threads, err);
        if (rc) return rc;
        report_caps(svc, i);
    }
    return 0;
}

void ts_volume_mgr_stop(struct ts_volume_svc *svc)
{
    if (!svc->serving) return;
    for (int i = 0; i < svc->n_backends; i++)
        if (svc->topics[i][0]) ts_bus_unserve(svc->env->bus, svc->topics[i]);
    ts_bus_unserve(svc->env->bus, TS_VOLUME_SCHED_TOPIC);
    svc->serving = false;
}

static struct ts_volume_backend *backend_named(struct ts_volume_svc *svc, const char *name)
{
    for (int i = 0; i < svc->n_backends; i++)
        if (ts_streq(svc->backends[i]->name, name)) return svc->backends[i];
    return NULL;
}

void ts_volume_mgr_recover(struct ts_volume_svc *svc)
{
    ts_volume_backup_recover(svc);
    for (int i = 0; i < svc->n_backends; i++)
        svc->backends[i]->ops->cleanup(svc->backends[i]);
    struct ts_db_res *r = NULL;
    if (ts_db_exec(
            svc->db,
            "SELECT id, status, backend, attach_status FROM volumes WHERE status IN ('creating', 'deleting', "
            "'extending', 'downloading', 'uploading', 'reverting')",
            TS_DB_NOARGS, &r, NULL) == 0) {
        for (int i = 0; i < r->nrows; i++) {
            const char *id = ts_db_res_get(r, i, 0), *st = ts_db_res_get(r, i, 1);
            struct ts_volume_backend *be = backend_named(svc, ts_db_res_get(r, i, 2));
            ts_warn("volume", "recovering volume %s stuck in %s", id, st);
            if (strcmp(st, "deleting") == 0) {
                struct ts_err e = {0};
                if (be && be->ops->delete (be, id, &e) != 0) {
                    ts_volume_set_status(svc, id, "error_deleting", NULL);
                    continue;
                }
                ts_db_exec(svc->db, "DELETE FROM volume_metadata WHERE volume_id = ?",
                           TS_DB_ARGS(TS_DB_S(id)), NULL, NULL);
                ts_db_exec(svc->db, "DELETE FROM attachments WHERE volume_id = ?", TS_DB_ARGS(TS_DB_S(id)),
                           NULL, NULL);
                ts_db_exec(svc->db, "DELETE FROM volumes WHERE id = ?", TS_DB_ARGS(TS_DB_S(id)), NULL, NULL);
            } else if (strcmp(st, "uploading") == 0 || strcmp(st, "reverting") == 0) {
                ts_volume_set_status(
                    svc, id, ts_streq(ts_db_res_get(r, i, 3), "attached") ? "in-use" : "available", NULL);
            } else {
                /* creating/downloading: the data went to a temporary name that cleanup removed,
                 * unless the rename happened: then the volume is complete, but we do not know
                 * that the database saw it, so error is the honest answer either way. */
                ts_volume_set_status(svc, id, "error", NULL);
            }
        }
    }
    ts_db_res_free(r);
    r = NULL;
    if (ts_db_exec(
            svc->db,
            "SELECT s.id, s.status, v.backend FROM snapshots s LEFT JOIN volumes v ON v.id = s.volume_id "
            "WHERE s.status IN ('creating', 'deleting')",
            TS_DB_NOARGS, &r, NULL) == 0) {
        for (int i = 0; i < r->nrows; i++) {
            const char *id = ts_db_res_get(r, i, 0);
            if (ts_streq(ts_db_res_get(r, i, 1), "deleting")) {
                struct ts_volume_backend *be = backend_named(svc, ts_db_res_get(r, i, 2));
                if (be) be->ops->snapshot_delete(be, id, NULL);
                ts_db_exec(svc->db, "DELETE FROM snapshot_metadata WHERE snapshot_id = ?",
                           TS_DB_ARGS(TS_DB_S(id)), NULL, NULL);
                ts_db_exec(svc->db, "DELETE FROM snapshots WHERE id = ?", TS_DB_ARGS(TS_DB_S(id)), NULL,
                           NULL);
            } else {
                ts_db_exec(svc->db, "UPDATE snapshots SET status = 'error' WHERE id = ?",
                           TS_DB_ARGS(TS_DB_S(id)), NULL, NULL);
            }
        }
    }
    ts_db_res_free(r);
}
