/*
 * ts_object.c: the object storage service's lifecycle: config defaults ([object] port,
 * connection, store_dir, expirer_interval, workers), the blob store ([object] backend =
 * file, or rados with rados_conf, rados_pool, rados_client, rados_op_timeout,
 * rados_orphan_grace), database migrations, the startup reconcile (temp files,
 * unreferenced blobs, rows without data), the HTTP server and the reaper thread that removes
 * the blobs of overwritten and deleted objects after the answer (unlink is not free here:
 * the disk discards the blocks), reaps objects past their X-Delete-At and emits the
 * coalesced objectstore.account.usage notifications for metering (bytes, objects and
 * containers per account, [object] usage_notify_interval seconds after a change).
 */
#include "object/ts_object.h"

#include <dirent.h>
#include <pthread.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus/ts_bus.h"
#include "object/ts_object_int.h"

#define MOD "object"

static void conf_default(struct ts_conf *conf, const char *key, const char *value)
{
    ts_service_conf_default(conf, "object", key, value);
}

static void set_defaults(struct ts_service_env *env)
{
    char buf[4200];
    conf_default(env->conf, "port", "8080");
    snprintf(buf, sizeof(buf), "sqlite:///%s/object.db", env->data_dir);
    conf_default(env->conf, "connection", buf);
    snprintf(buf, sizeof(buf), "%s/objects", env->data_dir);
    conf_default(env->conf, "store_dir", buf);
    conf_default(env->conf, "expirer_interval", "10");
    conf_default(env->conf, "usage_notify_interval", "5");
    conf_default(env->conf, "backend", "file");
    conf_default(env->conf, "rados_pool", "tinystack-objects");
}

/* Empties a scratch directory (extract-archive leftovers when the store is not the file
 * backend, which cleans its own tmp). */
static void clean_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char p[4096 + 300];
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(d);
}

static int open_store(struct ts_service_env *env, struct ts_object_svc *svc, struct ts_err *err)
{
    const char *backend = ts_conf_get(env->conf, "object", "backend", "file");
    const char *dir = ts_conf_get(env->conf, "object", "store_dir", NULL);
    if (ts_streq(backend, "file")) return ts_object_store_file_new(dir, &svc->store, err);
    if (!ts_streq(backend, "rados"))
        return ts_err_set(err, TS_EINVAL, "[object] backend = %s: expected file or rados", backend);
    if (ts_mkdirs(svc->tmp_dir, 0700) < 0) return ts_err_set(err, TS_EIO, "cannot create %s", svc->tmp_dir);
    clean_dir(svc->tmp_dir);
    struct ts_object_store_rados_opts ro = {
        .conf_path = ts_conf_get(env->conf, "object", "rados_conf", NULL),
        .pool = ts_conf_get(env->conf, "object", "rados_pool", NULL),
        .client_id = ts_conf_get(env->conf, "object", "rados_client", NULL),
        .op_timeout = (int)ts_conf_get_int(env->conf, "object", "rados_op_timeout", 30),
        .orphan_grace = ts_conf_get_int(env->conf, "object", "rados_orphan_grace", 3600),
    };
    int rc = ts_object_store_rados_new(&ro, &svc->store, err);
    if (rc == 0) ts_info(MOD, "objects stored in RADOS pool %s (%s)", ro.pool, ro.conf_path);
    return rc;
}

static int object_init(struct ts_service_env *env, struct ts_err *err)
{
    set_defaults(env);
    struct ts_db *db = NULL;
    int rc = ts_db_open(ts_conf_get(env->conf, "object", "connection", NULL), &db, err);
    if (rc < 0) return rc;
    rc = ts_object_db_migrate(db, err);
    ts_db_close(db);
    if (rc < 0) return rc;
    const char *dir = ts_conf_get(env->conf, "object", "store_dir", NULL);
    if (ts_mkdirs(dir, 0700) < 0) return ts_err_set(err, TS_EIO, "cannot create %s", dir);
    return 0;
}

/* Blobs queued for removal beyond this are removed by the caller at once. */
#define DOOMED_MAX 4096

void ts_object_remove_later(struct ts_object_svc *svc, const char *blob)
{
    if (!blob || !*blob) return;
    pthread_mutex_lock(&svc->lock);
    if (svc->reaper_started && !svc->stopping && svc->n_doomed < DOOMED_MAX) {
        if (!svc->doomed) svc->doomed = ts_calloc(DOOMED_MAX, sizeof(*svc->doomed));
        svc->doomed[svc->n_doomed++] = ts_strdup(blob);
        pthread_cond_signal(&svc->cond);
        pthread_mutex_unlock(&svc->lock);
        return;
    }
    pthread_mutex_unlock(&svc->lock);
    svc->store->ops->remove(svc->store, blob);
}

/* Accounts remembered between two usage notifications; past this the pending ones go
 * out at once (a burst over many accounts then costs one query per account per call). */
#define USAGE_DIRTY_MAX 1024

void ts_object_usage_changed(struct ts_object_svc *svc, const char *acct)
{
    if (!svc->bus || !acct) return;
    pthread_mutex_lock(&svc->lock);
    for (size_t i = svc->n_usage_dirty; i-- > 0;)
        if (strcmp(svc->usage_dirty[i], acct) == 0) goto out;
    if (!svc->usage_dirty) svc->usage_dirty = ts_calloc(USAGE_DIRTY_MAX, sizeof(*svc->usage_dirty));
    if (svc->n_usage_dirty == 0) svc->usage_due = ts_mono() + svc->usage_interval;
    if (svc->n_usage_dirty < USAGE_DIRTY_MAX) svc->usage_dirty[svc->n_usage_dirty++] = ts_strdup(acct);
    if (svc->n_usage_dirty == USAGE_DIRTY_MAX) svc->usage_due = 0;
    /* the reaper may sleep until the next expirer pass: make it look at the new due time */
    pthread_cond_signal(&svc->cond);
out:
    pthread_mutex_unlock(&svc->lock);
}

/* One objectstore.account.usage notification with acct's totals now (one query). */
static void emit_usage(struct ts_object_svc *svc, const char *acct)
{
    struct ts_db_res *r = NULL;
    struct ts_err err;
    if (ts_db_exec(svc->db,
                   "SELECT COUNT(*), COALESCE(SUM(object_count), 0), COALESCE(SUM(bytes_used), 0) FROM containers"
                   " WHERE account = ?",
                   TS_DB_ARGS(TS_DB_S(acct)), &r, &err) < 0) {
        ts_warn(MOD, "usage of %s: %s", acct, err.msg);
        return;
    }
    json_t *p = json_pack("{s:s,s:s,s:I,s:I,s:I}", "project_id", acct + (ts_startswith(acct, "AUTH_") ? 5 : 0),
                          "account", acct, "bytes_used", (json_int_t)ts_db_res_int(r, 0, 2, 0), "object_count",
                          (json_int_t)ts_db_res_int(r, 0, 1, 0), "container_count", (json_int_t)ts_db_res_int(r, 0, 0, 0));
    ts_db_res_free(r);
    if (!p) return;
    char pub[300];
    snprintf(pub, sizeof(pub), "objectstore.%s", svc->host);
    ts_bus_notify(svc->bus, pub, "objectstore.account.usage", "INFO", p);
}

/* Emits the pending usage notifications when due (or all when force); called with
 * svc->lock held, returns with it held. */
static void flush_usage(struct ts_object_svc *svc, bool force)
{
    if (!svc->n_usage_dirty || (!force && ts_mono() < svc->usage_due)) return;
    char **batch = svc->usage_dirty;
    size_t n = svc->n_usage_dirty;
    svc->usage_dirty = NULL;
    svc->n_usage_dirty = 0;
    pthread_mutex_unlock(&svc->lock);
    for (size_t i = 0; i < n; i++) {
        emit_usage(svc, batch[i]);
        free(batch[i]);
    }
    free(batch);
    pthread_mutex_lock(&svc->lock);
}

/* Removes the queued blobs; called with svc->lock held, returns with it held. */
static void drain_doomed(struct ts_object_svc *svc)
{
    char *batch[256];
    while (svc->n_doomed) {
        size_t n = svc->n_doomed < 256 ? svc->n_doomed : 256;
        svc->n_doomed -= n;
        memcpy(batch, svc->doomed + svc->n_doomed, n * sizeof(*batch));
        pthread_mutex_unlock(&svc->lock);
        for (size_t i = 0; i < n; i++) {
            svc->store->ops->remove(svc->store, batch[i]);
            free(batch[i]);
        }
        pthread_mutex_lock(&svc->lock);
    }
}

/* The reaper: removes doomed blobs as they are queued and expired objects every
 * expirer_interval seconds. */
static void *reaper_main(void *arg)
{
    struct ts_object_svc *svc = arg;
    double next_reap = ts_mono() + svc->expirer_interval;
    pthread_mutex_lock(&svc->lock);
    while (!svc->stopping) {
        if (!svc->n_doomed) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            double until = next_reap;
            if (svc->n_usage_dirty && svc->usage_due < until) until = svc->usage_due;
            double wait = until - ts_mono();
            if (wait > 0) {
                ts.tv_sec += (time_t)wait;
                ts.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
                if (ts.tv_nsec >= 1000000000L) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&svc->cond, &svc->lock, &ts);
            }
        }
        if (svc->stopping) break;
        drain_doomed(svc);
        flush_usage(svc, false);
        if (ts_mono() < next_reap) continue;
        pthread_mutex_unlock(&svc->lock);
        int n;
        while ((n = ts_object_db_reap(svc, 500)) > 0)
            ts_debug(MOD, "expirer: reaped %d objects", n);
        next_reap = ts_mono() + svc->expirer_interval;
        pthread_mutex_lock(&svc->lock);
    }
    pthread_mutex_unlock(&svc->lock);
    return NULL;
}

static void object_stop(void *state)
{
    struct ts_object_svc *svc = state;
    if (!svc) return;
    ts_http_server_stop(svc->http);
    if (svc->reaper_started) {
        pthread_mutex_lock(&svc->lock);
        svc->stopping = true;
        pthread_cond_broadcast(&svc->cond);
        pthread_mutex_unlock(&svc->lock);
        pthread_join(svc->reaper, NULL);
    }
    /* what the reaper had not removed yet */
    pthread_mutex_lock(&svc->lock);
    if (svc->store) drain_doomed(svc);
    /* the last usage changes are not lost for metering */
    if (svc->db) flush_usage(svc, true);
    for (size_t i = 0; i < svc->n_usage_dirty; i++) free(svc->usage_dirty[i]);
    pthread_mutex_unlock(&svc->lock);
    free(svc->usage_dirty);
    free(svc->doomed);
    if (svc->store) svc->store->ops->free(svc->store);
    ts_db_close(svc->db);
    pthread_mutex_destroy(&svc->lock);
    pthread_cond_destroy(&svc->cond);
    free(svc->host);
    free(svc->data_dir);
    free(svc->tmp_dir);
    free(svc);
}

static int object_start(struct ts_service_env *env, void **state, struct ts_err *err)
{
    set_defaults(env);
    struct ts_object_svc *svc = ts_calloc(1, sizeof(*svc));
    pthread_mutex_init(&svc->lock, NULL);
    pthread_cond_init(&svc->cond, NULL);
    svc->bus = env->bus;
    svc->host = ts_strdup(env->host ? env->host : "localhost");
    svc->data_dir = ts_strdup(env->data_dir);
    svc->expirer_interval = (int)ts_conf_get_int(env->conf, "object", "expirer_interval", 10);
    if (svc->expirer_interval < 1) svc->expirer_interval = 1;
    svc->usage_interval = ts_conf_get_double(env->conf, "object", "usage_notify_interval", 5);
    if (svc->usage_interval < 0) svc->usage_interval = 0;
    const char *dir = ts_conf_get(env->conf, "object", "store_dir", NULL);
    svc->tmp_dir = ts_asprintf("%s/tmp", dir);
    int rc = ts_db_open(ts_conf_get(env->conf, "object", "connection", NULL), &svc->db, err);
    if (rc < 0) goto fail;
    rc = ts_object_db_migrate(svc->db, err);
    if (rc < 0) goto fail;
    rc = open_store(env, svc, err);
    if (rc < 0) goto fail;
    ts_object_db_reconcile(svc);
    rc = ts_service_http_start(env, &ts_object_service, ts_object_routes, TS_FAULT_SWIFT, 16, svc, &svc->http, err);
    if (rc < 0) goto fail;
    if (pthread_create(&svc->reaper, NULL, reaper_main, svc) == 0) svc->reaper_started = true;
    ts_info(MOD, "object storage listening on port %d", ts_http_server_port(svc->http));
    *state = svc;
    return 0;
fail:
    object_stop(svc);
    return rc;
}

const struct ts_service ts_object_service = {
    .name = "object",
    .type = "object-store",
    .catalog_name = "swift",
    .default_port = 8080,
    .catalog_path = "/v1/AUTH_%(project_id)s",
    .init = object_init,
    .start = object_start,
    .stop = object_stop,
};
