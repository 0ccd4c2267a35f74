/*
 * ts_volume_int.h: what the volume service's source files share: the service state,
 * the request prologue (microversion), loading and rendering volumes, snapshots and
 * types, quota checks, notifications, and the bus topics of the scheduler and managers.
 * Not for other modules.
 */
#ifndef TS_VOLUME_INT_H
#define TS_VOLUME_INT_H

#include <jansson.h>
#include <pthread.h>
#include "db/ts_db.h"
#include "http/ts_http.h"
#include "json/ts_json.h"
#include "volume/ts_volume.h"
#include "volume/ts_volume_backend.h"
#include "volume/ts_volume_util.h"

#define TS_VOLUME_MAX_BACKENDS 8
#define TS_VOLUME_SCHED_TOPIC "cinder-scheduler"

/* What the scheduler knows about one pool (from the managers' capability reports). */
struct ts_volume_pool {
    char host[320];   /* "<host>@<backend>#<pool>" */
    char backend[64]; /* volume_backend_name */
    char topic[400];  /* manager topic "cinder-volume.<host>@<backend>" */
    double total_gb, free_gb, provisioned_gb, ratio;
    bool thin;
    double updated;
};

struct ts_volume_svc;
/* A manager: one per backend, the context of its bus consumer. */
struct ts_volume_mgr_ctx {
    struct ts_volume_svc *svc;
    struct ts_volume_backend *be;
    int idx;
};

struct ts_volume_svc {
    struct ts_service_env *env;
    struct ts_db *db;
    struct ts_http_server *http;
    char publisher[300]; /* "volume.<host>" */
    char host[256];
    char az[64];            /* storage availability zone ("nova") */
    char image_url[512];    /* the image service, "http://127.0.0.1:9292" */
    char default_type[256]; /* name of the default volume type */
    int n_backends;
    struct ts_volume_backend *backends[TS_VOLUME_MAX_BACKENDS];
    char topics[TS_VOLUME_MAX_BACKENDS][400];
    struct ts_volume_mgr_ctx mgrs[TS_VOLUME_MAX_BACKENDS];
    bool serving;         /* bus consumers registered */
    pthread_mutex_t lock; /* guards pools */
    int n_pools;
    struct ts_volume_pool pools[TS_VOLUME_MAX_BACKENDS * 4];
    double started_at;
};

/* Every volume query selects these columns. */
#define TS_VOLUME_COLS                                                                                       \
    "id, project_id, user_id, name, description, status, attach_status, size, availability_zone, "           \
    "volume_type_id, snapshot_id, source_volid, image_id, bootable, multiattach, host, backend, "            \
    "migration_status, created_at, updated_at, launched_at, image_meta, encrypted"

/* The request prologue: parses OpenStack-API-Version (400/406), answers with the version
 * headers, and returns the minor number in *mv. */
int ts_volume_begin(struct ts_http_req *req, struct ts_http_resp *resp, int *mv, struct ts_err *err);
/* Forbids readers (403). */
int ts_volume_check_writer(struct ts_http_req *req, struct ts_err *err);
/* Current time "2026-11-25T19:20:00.000000" as Cinder prints it. */
void ts_volume_now(char out[32]);

/* Loads a volume row visible to the caller (own project, or admin): res has one row of
 * TS_VOLUME_COLS. -TS_ENOTFOUND ("Volume <id> could not be found.") otherwise. */
int ts_volume_get(struct ts_volume_svc *svc, struct ts_http_req *req, const char *id, struct ts_db_res **res,
                  struct ts_err *err);
/* The API view of row r (detail), with metadata, attachments and type name. */
json_t *ts_volume_view(struct ts_volume_svc *svc, struct ts_http_req *req, const struct ts_db_res *res, int r,
                       int mv);
/* Per-page preloads for lists (each may be NULL: then the view queries itself):
 * type id -> name, volume id -> metadata object, volume id -> attachments array. */
struct ts_volume_preload {
    json_t *types, *metadata, *attachments;
    bool sparse; /* metadata/attachments hold only the volumes that have some: a missing id has none */
};
json_t *ts_volume_view_pre(struct ts_volume_svc *svc, struct ts_http_req *req, const struct ts_db_res *res,
                           int r, int mv, const struct ts_volume_preload *pre);
/* Loads the preloads for the volumes of res (column 0 = id). Caller frees with
 * ts_volume_preload_free. */
void ts_volume_preload_load(struct ts_volume_svc *svc, const struct ts_db_res *res,
                            struct ts_volume_preload *pre);
void ts_volume_preload_free(struct ts_volume_preload *pre);
/* Compact JSON of v into b, byte for byte what json_dumps(v, JSON_COMPACT) writes. */
void ts_volume_dump_json(struct ts_buf *b, json_t *v);
/* Appends the compact JSON of ts_volume_view_pre(...) for row r straight to b, without building
 * the jansson tree; false (nothing written) when the row needs the general path (non-ASCII text,
 * image metadata, a missing preload). */
bool ts_volume_render_pre(struct ts_buf *b, struct ts_http_req *req, const struct ts_db_res *res, int r, int mv,
                          const struct ts_volume_preload *pre);
/* GET /volumes/detail: appends {"volumes":[...] (no closing brace) for
 * "SELECT <columns>" + from_where (" FROM volumes WHERE ... ORDER BY ... LIMIT ? OFFSET ?")
 * to body, streaming the rows (ts_volume_list.c). *nrows and last_id get the count and the
 * last volume's id (for the next link). */
int ts_volume_list_detail(struct ts_volume_svc *svc, struct ts_http_req *req, int mv, const char *from_where,
                          const struct ts_db_val *args, int nargs, struct ts_buf *body, int *nrows,
                          char *last_id, size_t last_len, struct ts_err *err);
/* Drops what Cinder shows only on show/detail (tenant, host, migration attributes, image
 * metadata): the create and update responses. Returns v. */
json_t *ts_volume_view_brief(json_t *v);
/* Sets the status (and updated_at) of a volume. */
int ts_volume_set_status(struct ts_volume_svc *svc, const char *id, const char *status, struct ts_err *err);
/* Atomic "status = to WHERE status IN (from...)": -TS_EINVAL with msg if it was not. */
int ts_volume_cas_status(struct ts_volume_svc *svc, const char *id, const char *const *from, const char *to,
                         const char *msg, struct ts_err *err);
/* Metadata of a volume / snapshot as a JSON object. */
json_t *ts_volume_metadata(struct ts_volume_svc *svc, const char *table, const char *idcol, const char *id);
/* Replaces (replace=true) or merges metadata from obj; validates keys/values (400). */
int ts_volume_metadata_set(struct ts_volume_svc *svc, const char *table, const char *idcol, const char *id,
                           json_t *obj, bool replace, struct ts_err *err);
/* Validates a metadata object (string values, key 1..255, value <= 255). */
int ts_volume_metadata_check(json_t *obj, struct ts_err *err);
/* Generic metadata sub-resource handlers for table/idcol after the parent was checked. */
int ts_volume_metadata_handle(struct ts_volume_svc *svc, struct ts_http_req *req, struct ts_http_resp *resp,
                              const char *table, const char *idcol, const char *id, const char *key,
                              struct ts_err *err);

/* Publishes a notification ("volume.create.start" ...) with Cinder's volume payload. */
void ts_volume_notify_volume(struct ts_volume_svc *svc, const char *event, const char *vol_id);
void ts_volume_notify_snapshot(struct ts_volume_svc *svc, const char *event, const char *snap_id);

/* Quotas: the limit of resource for project (project value, else class default,
 * else built-in default; -1 = unlimited). */
int64_t ts_volume_quota_limit(struct ts_volume_svc *svc, struct ts_db_conn *tx, const char *project,
                              const char *resource);
/* Inside a write transaction: checks that adding (volumes, gigabytes) / (snapshots,
 * gigabytes) keeps the project within its quotas, else -TS_EQUOTA (413) with Cinder's
 * message. */
int ts_volume_quota_check(struct ts_volume_svc *svc, struct ts_db_conn *tx, const char *project,
                          int64_t add_volumes, int64_t add_snapshots, int64_t add_gb, struct ts_err *err);

/* Usage (ts_volume_usage.c): setup creates the triggers that keep the per-project and
 * per-backend totals and recomputes them from the rows (at start). */
int ts_volume_usage_setup(struct ts_volume_svc *svc, struct ts_err *err);
/* Inside tx: the project's volume count, snapshot count and gigabytes (volumes + snapshots). */
int ts_volume_usage_project(struct ts_volume_svc *svc, struct ts_db_conn *tx, const char *project,
                            int64_t *volumes, int64_t *snapshots, int64_t *gigabytes, struct ts_err *err);
/* Provisioned gigabytes of a backend: its volumes and their snapshots (0 on error). */
double ts_volume_usage_backend_gb(struct ts_volume_svc *svc, const char *backend);

/* Types: resolves a type by id or name visible to the caller; fills id/name. */
int ts_volume_type_resolve(struct ts_volume_svc *svc, struct ts_http_req *req, const char *id_or_name,
                           char id[64], char name[256], struct ts_err *err);
/* Name of a type id (into out), "" if gone. */
void ts_volume_type_name(struct ts_volume_svc *svc, const char *type_id, char *out, size_t len);
/* Id of the default type into out. */
int ts_volume_default_type(struct ts_volume_svc *svc, char id[64], struct ts_err *err);

/* Scheduler and manager (ts_volume_mgr.c). */
int ts_volume_mgr_start(struct ts_volume_svc *svc, struct ts_err *err);
void ts_volume_mgr_stop(struct ts_volume_svc *svc);
/* Crash recovery at start: stuck creating/extending -> error, deleting finished. */
void ts_volume_mgr_recover(struct ts_volume_svc *svc);
/* The backend serving host string "<host>@<backend>#<pool>" (or NULL). */
struct ts_volume_backend *ts_volume_mgr_backend(struct ts_volume_svc *svc, const char *host);
/* Casts method to the scheduler (create_volume) or to the manager owning the volume's
 * host. Steals args. */
int ts_volume_cast_scheduler(struct ts_volume_svc *svc, const char *method, json_t *args, struct ts_err *err);
int ts_volume_cast_manager(struct ts_volume_svc *svc, const char *host, const char *method, json_t *args,
                           struct ts_err *err);
/* Current pools as the scheduler sees them (for get_pools), caller decrefs. */
json_t *ts_volume_mgr_pools(struct ts_volume_svc *svc, bool detail);

/* Backups (ts_volume_backup.c): manager work and crash recovery. */
void ts_volume_backup_create_work(struct ts_volume_svc *svc, struct ts_volume_backend *be, json_t *args);
void ts_volume_backup_restore_work(struct ts_volume_svc *svc, struct ts_volume_backend *be, json_t *args);
void ts_volume_backup_recover(struct ts_volume_svc *svc);
/* Deletes a backup's data (object store) then its row, on a manager thread. */
void ts_volume_backup_delete_work(struct ts_volume_svc *svc, struct ts_volume_backend *be, json_t *args);
/* Checks an imported backup's data is there: available, else error. */
void ts_volume_backup_import_work(struct ts_volume_svc *svc, struct ts_volume_backend *be, json_t *args);

/* The object-storage backup driver (ts_volume_backup_swift.c), manager threads only.
 * A job names one backup's objects: account AUTH_<project> reached with the user's token,
 * container, object name prefix, and what the metadata object records. */
struct ts_volume_bswift_job {
    const char *token, *project, *container, *prefix;
    const char *backup_id, *volume_id, *name, *description, *created_at, *volume_meta;
};
/* [volume] backup_swift_object_size (chunk bytes) and backup_swift_block_size (sha256 block). */
int64_t ts_volume_bswift_object_size(struct ts_volume_svc *svc);
int64_t ts_volume_bswift_block_size(struct ts_volume_svc *svc);
/* Checks the driver's [volume] options (sizes, compression, URL): -TS_EINVAL with a message. */
int ts_volume_bswift_check_conf(struct ts_volume_svc *svc, struct ts_err *err);
/* Stores len bytes of src (read with pread) as the backup's objects; *object_count = data
 * objects written. On failure removes what it wrote (best effort). */
int ts_volume_bswift_backup(struct ts_volume_svc *svc, const struct ts_volume_bswift_job *job, int src,
                            int64_t len, int64_t *object_count, struct ts_err *err);
/* Writes the backup into dst (dst_len bytes long), each object checked against the metadata's
 * length and md5. sparse_ok: dst reads as zeros where not written (a fresh sparse file), so
 * zero ranges are skipped; otherwise they are zeroed. */
int ts_volume_bswift_restore(struct ts_volume_svc *svc, const struct ts_volume_bswift_job *job, int dst,
                             int64_t dst_len, bool sparse_ok, struct ts_err *err);
/* Deletes every object under the job's prefix (404s count as done). */
int ts_volume_bswift_delete(struct ts_volume_svc *svc, const struct ts_volume_bswift_job *job, struct ts_err *err);
/* Whether a swift backup's _metadata object can be read (0) or why not. */
int ts_volume_bswift_check(struct ts_volume_svc *svc, const struct ts_volume_bswift_job *job, struct ts_err *err);

/* Route handlers. */
#define TS_VOLUME_HANDLER(name)                                                                              \
    int name(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
TS_VOLUME_HANDLER(ts_volume_h_create);
TS_VOLUME_HANDLER(ts_volume_h_list);
TS_VOLUME_HANDLER(ts_volume_h_detail);
TS_VOLUME_HANDLER(ts_volume_h_show);
TS_VOLUME_HANDLER(ts_volume_h_update);
TS_VOLUME_HANDLER(ts_volume_h_delete);
TS_VOLUME_HANDLER(ts_volume_h_summary);
TS_VOLUME_HANDLER(ts_volume_h_metadata);
TS_VOLUME_HANDLER(ts_volume_h_action);
TS_VOLUME_HANDLER(ts_volume_h_att_create);
TS_VOLUME_HANDLER(ts_volume_h_att_list);
TS_VOLUME_HANDLER(ts_volume_h_att_detail);
TS_VOLUME_HANDLER(ts_volume_h_att_show);
TS_VOLUME_HANDLER(ts_volume_h_att_update);
TS_VOLUME_HANDLER(ts_volume_h_att_complete);
TS_VOLUME_HANDLER(ts_volume_h_att_delete);
TS_VOLUME_HANDLER(ts_volume_h_type_create);
TS_VOLUME_HANDLER(ts_volume_h_type_list);
TS_VOLUME_HANDLER(ts_volume_h_type_show);
TS_VOLUME_HANDLER(ts_volume_h_type_update);
TS_VOLUME_HANDLER(ts_volume_h_type_delete);
TS_VOLUME_HANDLER(ts_volume_h_type_default);
TS_VOLUME_HANDLER(ts_volume_h_type_specs);
TS_VOLUME_HANDLER(ts_volume_h_type_action);
TS_VOLUME_HANDLER(ts_volume_h_type_access);
TS_VOLUME_HANDLER(ts_volume_h_snap_create);
TS_VOLUME_HANDLER(ts_volume_h_snap_list);
TS_VOLUME_HANDLER(ts_volume_h_snap_detail);
TS_VOLUME_HANDLER(ts_volume_h_snap_show);
TS_VOLUME_HANDLER(ts_volume_h_snap_update);
TS_VOLUME_HANDLER(ts_volume_h_snap_delete);
TS_VOLUME_HANDLER(ts_volume_h_snap_metadata);
TS_VOLUME_HANDLER(ts_volume_h_snap_action);
TS_VOLUME_HANDLER(ts_volume_h_quota_show);
TS_VOLUME_HANDLER(ts_volume_h_quota_defaults);
TS_VOLUME_HANDLER(ts_volume_h_quota_update);
TS_VOLUME_HANDLER(ts_volume_h_quota_delete);
TS_VOLUME_HANDLER(ts_volume_h_quota_class_show);
TS_VOLUME_HANDLER(ts_volume_h_quota_class_update);
TS_VOLUME_HANDLER(ts_volume_h_limits);
TS_VOLUME_HANDLER(ts_volume_h_azs);
TS_VOLUME_HANDLER(ts_volume_h_services);
TS_VOLUME_HANDLER(ts_volume_h_service_action);
TS_VOLUME_HANDLER(ts_volume_h_hosts);
TS_VOLUME_HANDLER(ts_volume_h_host_show);
TS_VOLUME_HANDLER(ts_volume_h_capabilities);
TS_VOLUME_HANDLER(ts_volume_h_pools);
TS_VOLUME_HANDLER(ts_volume_h_extensions);
TS_VOLUME_HANDLER(ts_volume_h_messages);
TS_VOLUME_HANDLER(ts_volume_h_transfer_create);
TS_VOLUME_HANDLER(ts_volume_h_transfer_list);
TS_VOLUME_HANDLER(ts_volume_h_transfer_detail);
TS_VOLUME_HANDLER(ts_volume_h_transfer_show);
TS_VOLUME_HANDLER(ts_volume_h_transfer_delete);
TS_VOLUME_HANDLER(ts_volume_h_transfer_accept);
TS_VOLUME_HANDLER(ts_volume_h_qos_create);
TS_VOLUME_HANDLER(ts_volume_h_qos_list);
TS_VOLUME_HANDLER(ts_volume_h_qos_show);
TS_VOLUME_HANDLER(ts_volume_h_qos_set);
TS_VOLUME_HANDLER(ts_volume_h_qos_delete_keys);
TS_VOLUME_HANDLER(ts_volume_h_qos_delete);
TS_VOLUME_HANDLER(ts_volume_h_qos_op);
TS_VOLUME_HANDLER(ts_volume_h_backup_create);
TS_VOLUME_HANDLER(ts_volume_h_backup_list);
TS_VOLUME_HANDLER(ts_volume_h_backup_detail);
TS_VOLUME_HANDLER(ts_volume_h_backup_show);
TS_VOLUME_HANDLER(ts_volume_h_backup_update);
TS_VOLUME_HANDLER(ts_volume_h_backup_delete);
TS_VOLUME_HANDLER(ts_volume_h_backup_restore);
TS_VOLUME_HANDLER(ts_volume_h_backup_action);
TS_VOLUME_HANDLER(ts_volume_h_backup_export);
TS_VOLUME_HANDLER(ts_volume_h_backup_import);

#endif
