/*
 * ts_object_int.h: what the object service's files share: the service state, the
 * listing-row shapes, the database helpers (ts_object_db.c) and the HTTP entry points
 * (ts_object_api.c). Not for other modules.
 */
#ifndef TS_OBJECT_INT_H
#define TS_OBJECT_INT_H

#include <jansson.h>
#include <pthread.h>
#include "db/ts_db.h"
#include "http/ts_http.h"
#include "object/ts_object_store.h"
#include "object/ts_object_util.h"

struct ts_bus;

struct ts_object_svc {
    struct ts_db *db;
    struct ts_object_store *store;
    struct ts_bus *bus;
    char *host;
    char *data_dir;
    char *tmp_dir;               /* scratch for extract-archive (inside the store's tmp) */
    struct ts_http_server *http;
    pthread_t reaper;
    bool reaper_started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping;
    int expirer_interval;
    /* blobs of overwritten or deleted objects, removed by the reaper thread after the
     * answer (under lock); a crash before that leaves them unreferenced, and the startup
     * reconcile removes them */
    char **doomed;
    size_t n_doomed;
    /* accounts whose usage (bytes, objects, containers) changed since the last
     * objectstore.account.usage notification (under lock); the reaper thread emits one per
     * account usage_interval seconds after the first change, so a burst makes one */
    char **usage_dirty;
    size_t n_usage_dirty;
    double usage_interval;
    double usage_due;            /* ts_mono() when the pending ones are emitted */
};

enum { TS_OBJECT_KIND_PLAIN = 0, TS_OBJECT_KIND_SLO = 1 };

/* One listing row of the objects table. Strings and meta belong to the pool. */
struct ts_object_row {
    double ts;
    int64_t size;
    const char *etag;
    const char *content_type;
    json_t *meta;                /* header name -> value (pool-owned reference) */
    int64_t delete_at;           /* 0 = never */
    char blob[TS_OBJECT_BLOB_ID_MAX];
    int kind;
};

struct ts_object_container {
    double created, put_ts;
    json_t *meta;
    int64_t object_count, bytes_used;
};

/* ts_object_db.c */
/* Applies the object service's schema migrations (per backend). */
int ts_object_db_migrate(struct ts_db *db, struct ts_err *err);
int ts_object_db_container(struct ts_object_svc *svc, struct ts_pool *pool, const char *acct, const char *cont,
                           struct ts_object_container *out, struct ts_err *err);
/* -TS_ENOTFOUND when missing or expired (an expired row is removed on the way). */
int ts_object_db_object(struct ts_object_svc *svc, struct ts_pool *pool, const char *acct, const char *cont,
                        const char *name, struct ts_object_row *out, struct ts_err *err);
/* Makes row the current version of acct/cont/name (newest timestamp wins; stack or history
 * versioning as the container says). Owns row->blob: it is removed if not applied.
 * *applied (may be NULL) tells whether it became current. */
int ts_object_db_commit(struct ts_object_svc *svc, const char *acct, const char *cont, const char *name,
                        const struct ts_object_row *row, bool use_versions, bool *applied, struct ts_err *err);
/* Deletes the current version (restoring the previous one in stack mode when use_versions). */
int ts_object_db_delete(struct ts_object_svc *svc, const char *acct, const char *cont, const char *name,
                        bool use_versions, struct ts_err *err);
/* Removes a blob no row references any more: later, on the reaper thread (now when the
 * queue is full or no reaper runs). Any thread. */
void ts_object_remove_later(struct ts_object_svc *svc, const char *blob);
/* Notes that acct's bytes used, object or container count changed (a commit, delete or
 * container create/delete); an objectstore.account.usage notification follows within
 * [object] usage_notify_interval seconds. No-op without a bus. Any thread. */
void ts_object_usage_changed(struct ts_object_svc *svc, const char *acct);
/* Reaps up to max expired objects; returns how many. */
int ts_object_db_reap(struct ts_object_svc *svc, int max);
/* Startup consistency pass (temp files, unreferenced blobs, rows without blobs). */
int ts_object_db_reconcile(struct ts_object_svc *svc);

/* ts_object_api.c */
extern const struct ts_http_route ts_object_routes[];
/* Timestamp text as Swift writes it ("%016.5f"). */
void ts_object_ts_text(double ts, char out[32]);

#endif
