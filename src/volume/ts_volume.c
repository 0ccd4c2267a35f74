/*
 * ts_volume.c: the volume service's life cycle (init: defaults, database, default type;
 * start: backends, crash recovery, scheduler and managers on the bus, HTTP server), its
 * route table, version discovery, and what every handler shares: the microversion
 * prologue, loading and rendering volumes, metadata, quotas and notifications.
 */
#include "volume/ts_volume_int.h"

#include <stdlib.h>
#include <string.h>

static const struct ts_db_migration migrations[] = {
    {1,
     "CREATE TABLE volumes ("
     " id TEXT PRIMARY KEY, project_id TEXT NOT NULL, user_id TEXT, name TEXT, description TEXT,"
     " status TEXT NOT NULL, attach_status TEXT NOT NULL DEFAULT 'detached', size BIGINT NOT NULL,"
     " availability_zone TEXT, volume_type_id TEXT, snapshot_id TEXT, source_volid TEXT, image_id TEXT,"
     " bootable BIGINT NOT NULL DEFAULT 0, multiattach BIGINT NOT NULL DEFAULT 0, host TEXT, backend TEXT,"
     " migration_status TEXT, created_at TEXT NOT NULL, updated_at TEXT, launched_at TEXT, image_meta TEXT,"
     " encrypted BIGINT NOT NULL DEFAULT 0);"
     "CREATE INDEX volumes_project_idx ON volumes (project_id);"
     "CREATE INDEX volumes_created_idx ON volumes (created_at);"
     "CREATE TABLE volume_metadata (volume_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT,"
     " PRIMARY KEY (volume_id, key));"
     "CREATE TABLE attachments (id TEXT PRIMARY KEY, volume_id TEXT NOT NULL, instance_uuid TEXT,"
     " attached_host TEXT, mountpoint TEXT, attach_status TEXT NOT NULL, attach_mode TEXT,"
     " connector TEXT, connection_info TEXT, attach_time TEXT, detach_time TEXT,"
     " created_at TEXT NOT NULL, updated_at TEXT);"
     "CREATE INDEX attachments_volume_idx ON attachments (volume_id);"
     "CREATE TABLE volume_types (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, description TEXT,"
     " is_public BIGINT NOT NULL DEFAULT 1, created_at TEXT NOT NULL);"
     "CREATE TABLE type_extra_specs (type_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT,"
     " PRIMARY KEY (type_id, key));"
     "CREATE TABLE type_access (type_id TEXT NOT NULL, project_id TEXT NOT NULL,"
     " PRIMARY KEY (type_id, project_id));"
     "CREATE TABLE snapshots (id TEXT PRIMARY KEY, volume_id TEXT NOT NULL, project_id TEXT NOT NULL,"
     " user_id TEXT, name TEXT, description TEXT, status TEXT NOT NULL, progress TEXT, size BIGINT NOT NULL,"
     " host TEXT, created_at TEXT NOT NULL, updated_at TEXT);"
     "CREATE INDEX snapshots_project_idx ON snapshots (project_id);"
     "CREATE INDEX snapshots_volume_idx ON snapshots (volume_id);"
     "CREATE TABLE snapshot_metadata (snapshot_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT,"
     " PRIMARY KEY (snapshot_id, key));"
     "CREATE TABLE quotas (project_id TEXT NOT NULL, resource TEXT NOT NULL, hard_limit BIGINT NOT NULL,"
     " PRIMARY KEY (project_id, resource));"
     "CREATE TABLE quota_classes (class_name TEXT NOT NULL, resource TEXT NOT NULL, hard_limit BIGINT NOT "
     "NULL,"
     " PRIMARY KEY (class_name, resource));"
     "CREATE TABLE transfers (id TEXT PRIMARY KEY, volume_id TEXT NOT NULL, name TEXT, key_hash TEXT NOT "
     "NULL,"
     " source_project_id TEXT NOT NULL, created_at TEXT NOT NULL)"},
    {2,
     "CREATE TABLE backups (id TEXT PRIMARY KEY, volume_id TEXT NOT NULL, project_id TEXT NOT NULL, user_id "
     "TEXT,"
     " name TEXT, description TEXT, status TEXT NOT NULL, size BIGINT NOT NULL, container TEXT, host TEXT,"
     " fail_reason TEXT, snapshot_id TEXT, created_at TEXT NOT NULL, updated_at TEXT, data_timestamp TEXT);"
     "CREATE INDEX backups_project_idx ON backups (project_id)"},
    {3, "ALTER TABLE backups ADD COLUMN volume_meta TEXT"},
    {4, "CREATE TABLE qos_specs (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, consumer TEXT NOT NULL,"
        " created_at TEXT NOT NULL);"
        "CREATE TABLE qos_spec_keys (qos_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT, PRIMARY KEY "
        "(qos_id, key));"
        "ALTER TABLE volume_types ADD COLUMN qos_specs_id TEXT"},
    /* backups in the object store: driver, object name prefix, data object count */
    {5, "ALTER TABLE backups ADD COLUMN driver TEXT;"
        "ALTER TABLE backups ADD COLUMN service_metadata TEXT;"
        "ALTER TABLE backups ADD COLUMN object_count BIGINT NOT NULL DEFAULT 0"},
    /* the project whose object account holds an imported backup's data (NULL: project_id) */
    {6, "ALTER TABLE backups ADD COLUMN account TEXT"},
    /* lists in the default order (created_at desc, id desc), per project or all, read the index
     * in order instead of sorting the rows (the old indexes are prefixes of these) */
    {7, "CREATE INDEX volumes_project_created_idx ON volumes (project_id, created_at, id);"
        "CREATE INDEX volumes_created_id_idx ON volumes (created_at, id);"
        "DROP INDEX volumes_project_idx;"
        "DROP INDEX volumes_created_idx"},
    /* usage totals for the quota check and the capability reports (ts_volume_usage.c) */
    {8, "CREATE TABLE volume_usage_projects (project_id TEXT PRIMARY KEY, volumes BIGINT NOT NULL DEFAULT 0,"
        " snapshots BIGINT NOT NULL DEFAULT 0, gigabytes BIGINT NOT NULL DEFAULT 0);"
        "CREATE TABLE volume_usage_backends (backend TEXT PRIMARY KEY, gigabytes BIGINT NOT NULL DEFAULT 0)"},
};

/* ---- shared helpers --------------------------------------------------------------------- */

void ts_volume_now(char out[32])
{
    ts_time_iso(ts_now(), 6, out);
    size_t n = strlen(out);
    if (n && out[n - 1] == 'Z') out[n - 1] = 0; /* Cinder prints naive UTC */
}

int ts_volume_begin(struct ts_http_req *req, struct ts_http_resp *resp, int *mv, struct ts_err *err)
{
    const char *h = ts_http_header(req, "OpenStack-API-Version");
    int rc = ts_volume_mv_parse(h, mv, err);
    if (rc) return rc;
    ts_http_resp_headerf(resp, "OpenStack-API-Version", "volume 3.%d", *mv);
    ts_http_resp_header(resp, "Vary", "OpenStack-API-Version");
    return 0;
}

int ts_volume_check_writer(struct ts_http_req *req, struct ts_err *err)
{
    if (req->auth->is_reader_only)
        return ts_err_set(err, TS_EFORBIDDEN, "Policy doesn't allow this operation to be performed.");
    if (!req->auth->project_id[0])
        return ts_err_set(err, TS_EFORBIDDEN, "A project-scoped token is required.");
    return 0;
}

int ts_volume_get(struct ts_volume_svc *svc, struct ts_http_req *req, const char *id, struct ts_db_res **res,
                  struct ts_err *err)
{
    struct ts_db_res *r = NULL;
    if (!id || !*id || strlen(id) > 64)
        return ts_err_set(err, TS_ENOTFOUND, "Volume %s could not be found.", id ? id : "");
    int rc = ts_db_exec(svc->db, "SELECT " TS_VOLUME_COLS " FROM volumes WHERE id = ?",
                        TS_DB_ARGS(TS_DB_S(id)), &r, err);
    if (rc) return rc;
    if (r->nrows == 0 ||
        (!req->auth->is_admin && !ts_streq(ts_db_res_getn(r, 0, "project_id"), req->auth->project_id))) {
        ts_db_res_free(r);
        return ts_err_set(err, TS_ENOTFOUND, "Volume %s could not be found.", id);
    }
    *res = r;
    return 0;
}

json_t *ts_volume_metadata(struct ts_volume_svc *svc, const char *table, const char *idcol, const char *id)
{
    json_t *o = json_object();
    struct ts_db_res *r = NULL;
    char sql[200];
    snprintf(sql, sizeof(sql), "SELECT key, value FROM %s WHERE %s = ? ORDER BY key", table, idcol);
    if (ts_db_exec(svc->db, sql, TS_DB_ARGS(TS_DB_S(id)), &r, NULL) == 0)
        for (int i = 0; i < r->nrows; i++)
            ts_json_set_str(o, ts_db_res_get(r, i, 0), ts_db_res_get(r, i, 1));
    ts_db_res_free(r);
    return o;
}

int ts_volume_metadata_check(json_t *obj, struct ts_err *err)
{
    if (!json_is_object(obj))
        return ts_err_set(err, TS_EINVAL, "Malformed request body: metadata must be an object");
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        if (!*k || strlen(k) > 255)
            return ts_err_set(err, TS_EINVAL,
                              "Invalid input for field/attribute metadata. Key must be 1 to 255 "
                              "characters.");
        if (!json_is_string(v))
            return ts_err_set(err, TS_EINVAL,
                              "Invalid input for field/attribute metadata. Value of %s must be a "
                              "string.",
                              k);
        if (strlen(json_string_value(v)) > 255)
            return ts_err_set(err, TS_EINVAL,
                              "Invalid input for field/attribute metadata. Value of %s is longer "
                              "than 255 characters.",
                              k);
    }
    return 0;
}

int ts_volume_metadata_set(struct ts_volume_svc *svc, const char *table, const char *idcol, const char *id,
                           json_t *obj, bool replace, struct ts_err *err)
{
    int rc = ts_volume_metadata_check(obj, err);
    if (rc) return rc;
    struct ts_db_conn *tx = NULL;
    rc = ts_db_begin(svc->db, &tx, err);
    if (rc) return rc;
    char sql[300];
    if (replace) {
        snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE %s = ?", table, idcol);
        rc = ts_db_tx_exec(tx, sql, TS_DB_ARGS(TS_DB_S(id)), NULL, err);
    }
    const char *k;
    json_t *v;
    snprintf(sql, sizeof(sql),
             "INSERT INTO %s (%s, key, value) VALUES (?, ?, ?) ON CONFLICT (%s, key) DO UPDATE "
             "SET value = excluded.value",
             table, idcol, idcol);
    json_object_foreach(obj, k, v)
    {
        if (rc) break;
        rc = ts_db_tx_exec(tx, sql, TS_DB_ARGS(TS_DB_S(id), TS_DB_S(k), TS_DB_S(json_string_value(v))), NULL,
                           err);
    }
    if (rc) {
        ts_db_rollback(tx);
        return rc;
    }
    return ts_db_commit(tx, err);
}

int ts_volume_metadata_handle(struct ts_volume_svc *svc, struct ts_http_req *req, struct ts_http_resp *resp,
                              const char *table, const char *idcol, const char *id, const char *key,
                              struct ts_err *err)
{
    const char *m = req->method;
    json_t *body = NULL;
    int rc;
    if (!ts_streq(m, "GET") && !ts_streq(m, "HEAD")) {
        rc = ts_volume_check_writer(req, err);
        if (rc) return rc;
    }
    if (!key) {
        if (!ts_streq(m, "GET") && !ts_streq(m, "POST") && !ts_streq(m, "PUT"))
            return ts_err_set(err, TS_EMETHOD, "The method is not allowed for the requested URL.");
        if (ts_streq(m, "GET")) {
            ts_http_resp_json(resp, 200,
                              json_pack("{s:o}", "metadata", ts_volume_metadata(svc, table, idcol, id)));
            return 0;
        }
        rc = ts_http_json_body(req, &body, err);
        if (rc) return rc;
        json_t *md = json_object_get(body, "metadata");
        if (!md) return ts_err_set(err, TS_EINVAL, "Malformed request body");
        rc = ts_volume_metadata_set(svc, table, idcol, id, md, ts_streq(m, "PUT"), err);
        if (rc) return rc;
        ts_http_resp_json(
            resp, 200,
            json_pack("{s:o}", "metadata",
                      ts_streq(m, "PUT") ? json_incref(md) : ts_volume_metadata(svc, table, idcol, id)));
        return 0;
    }
    json_t *all = ts_volume_metadata(svc, table, idcol, id);
    json_t *cur = json_object_get(all, key);
    if (ts_streq(m, "GET")) {
        if (!cur) {
            json_decref(all);
            return ts_err_set(err, TS_ENOTFOUND, "Metadata item was not found");
        }
        ts_http_resp_json(resp, 200, json_pack("{s:{s:O}}", "meta", key, cur));
        json_decref(all);
        return 0;
    }
    json_decref(all);
    if (!ts_streq(m, "DELETE") && !ts_streq(m, "PUT"))
        return ts_err_set(err, TS_EMETHOD, "The method is not allowed for the requested URL.");
    if (ts_streq(m, "DELETE")) {
        if (!cur) return ts_err_set(err, TS_ENOTFOUND, "Metadata item was not found");
        char sql[200];
        snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE %s = ? AND key = ?", table, idcol);
        rc = ts_db_exec(svc->db, sql, TS_DB_ARGS(TS_DB_S(id), TS_DB_S(key)), NULL, err);
        if (rc) return rc;
        ts_http_resp_body(resp, 200, NULL, "", 0);
        return 0;
    }
    /* PUT key */
    rc = ts_http_json_body(req, &body, err);
    if (rc) return rc;
    json_t *meta = json_object_get(body, "meta");
    if (!json_is_object(meta) || json_object_size(meta) != 1)
        return ts_err_set(err, TS_EINVAL, "Request body contains too many items.");
    if (!json_object_get(meta, key)) return ts_err_set(err, TS_EINVAL, "Request body and URI mismatch");
    rc = ts_volume_metadata_set(svc, table, idcol, id, meta, false, err);
    if (rc) return rc;
    ts_http_resp_json(resp, 200, json_pack("{s:O}", "meta", meta));
    return 0;
}

static json_t *attachment_json(const char *vol_id, const struct ts_db_res *r, int i, int off)
{
    json_t *a = json_object();
    json_object_set_new(a, "id", json_string(vol_id));
    json_object_set_new(a, "attachment_id", json_string(ts_db_res_get(r, i, off)));
    json_object_set_new(a, "volume_id", json_string(vol_id));
    ts_json_set_str(a, "server_id", ts_db_res_get(r, i, off + 1));
    ts_json_set_str(a, "host_name", ts_db_res_get(r, i, off + 2));
    ts_json_set_str(a, "device", ts_db_res_get(r, i, off + 3));
    ts_json_set_str(a, "attached_at", ts_db_res_get(r, i, off + 4));
    return a;
}

static json_t *attachments_of(struct ts_volume_svc *svc, const char *vol_id)
{
    json_t *arr = json_array();
    struct ts_db_res *r = NULL;
    if (ts_db_exec(svc->db,
                   "SELECT id, instance_uuid, attached_host, mountpoint, attach_time FROM attachments "
                   "WHERE volume_id = ? AND attach_status = 'attached' ORDER BY created_at",
                   TS_DB_ARGS(TS_DB_S(vol_id)), &r, NULL) == 0) {
        for (int i = 0; i < r->nrows; i++)
            json_array_append_new(arr, attachment_json(vol_id, r, i, 0));
    }
    ts_db_res_free(r);
    return arr;
}

/* Runs sql (with "%s" where the "?, ?, ..." list of ids goes) for the ids of res. */
static struct ts_db_res *query_ids(struct ts_volume_svc *svc, const char *sql_fmt,
                                   const struct ts_db_res *res)
{
    if (res->nrows == 0) return NULL;
    struct ts_buf marks;
    ts_buf_init(&marks, 1 << 20);
    struct ts_db_val *args = ts_calloc((size_t)res->nrows, sizeof(*args));
    for (int i = 0; i < res->nrows; i++) {
        ts_buf_appends(&marks, i ? ", ?" : "?");
        args[i] = TS_DB_S(ts_db_res_get(res, i, 0));
    }
    char *sql = ts_asprintf(sql_fmt, ts_buf_cstr(&marks));
    struct ts_db_res *out = NULL;
    if (ts_db_exec(svc->db, sql, args, res->nrows, &out, NULL) != 0) out = NULL;
    free(sql);
    free(args);
    ts_buf_free(&marks);
    return out;
}

/* Column index of name in res, or -1. */
static int res_col(const struct ts_db_res *res, const char *name)
{
    for (int c = 0; c < res->ncols; c++)
        if (strcmp(res->cols[c], name) == 0) return c;
    return -1;
}

/* A result holding, in column 0, the ids (column 0) of the rows of res whose column flag is
 * non-zero; its cells are borrowed from res (free with free_ids). */
static struct ts_db_res *flagged_ids(const struct ts_db_res *res, int flag)
{
    struct ts_db_res *v = ts_calloc(1, sizeof(*v));
    v->ncols = 1;
    v->cells = ts_calloc((size_t)res->nrows + 1, sizeof(char *));
    for (int i = 0; i < res->nrows; i++)
        if (ts_db_res_int(res, i, flag, 0)) v->cells[v->nrows++] = res->cells[(size_t)i * (size_t)res->ncols];
    return v;
}

static void free_ids(struct ts_db_res *v)
{
    if (!v) return;
    free(v->cells);
    free(v);
}

void ts_volume_preload_load(struct ts_volume_svc *svc, const struct ts_db_res *res,
                            struct ts_volume_preload *pre)
{
    pre->types = json_object();
    pre->metadata = json_object();
    pre->attachments = json_object();
    struct ts_db_res *r = NULL;
    if (ts_db_exec(svc->db, "SELECT id, name FROM volume_types", TS_DB_NOARGS, &r, NULL) == 0)
        for (int i = 0; i < r->nrows; i++)
            json_object_set_new(pre->types, ts_db_res_get(r, i, 0), json_string(ts_db_res_get(r, i, 1)));
    ts_db_res_free(r);
    /* with the list query's has_metadata/has_attachments flags only the volumes that have some
     * are looked up (usually none: then no query at all); a volume missing from the maps has none */
    int hm = res_col(res, "has_metadata"), ha = res_col(res, "has_attachments");
    pre->sparse = hm >= 0 && ha >= 0;
    struct ts_db_res *want_md = pre->sparse ? flagged_ids(res, hm) : NULL;
    struct ts_db_res *want_att = pre->sparse ? flagged_ids(res, ha) : NULL;
    if (!pre->sparse)
        for (int i = 0; i < res->nrows; i++) {
            json_object_set_new(pre->metadata, ts_db_res_get(res, i, 0), json_object());
            json_object_set_new(pre->attachments, ts_db_res_get(res, i, 0), json_array());
        }
    r = query_ids(svc, "SELECT volume_id, key, value FROM volume_metadata WHERE volume_id IN (%s)",
                  want_md ? want_md : res);
    for (int i = 0; r && i < r->nrows; i++) {
        const char *vid = ts_db_res_get(r, i, 0);
        json_t *m = json_object_get(pre->metadata, vid);
        if (!m && pre->sparse) json_object_set_new(pre->metadata, vid, m = json_object());
        if (m) ts_json_set_str(m, ts_db_res_get(r, i, 1), ts_db_res_get(r, i, 2));
    }
    ts_db_res_free(r);
    r = query_ids(
        svc,
        "SELECT volume_id, id, instance_uuid, attached_host, mountpoint, attach_time FROM attachments "
        "WHERE attach_status = 'attached' AND volume_id IN (%s) ORDER BY created_at",
        want_att ? want_att : res);
    for (int i = 0; r && i < r->nrows; i++) {
        const char *vid = ts_db_res_get(r, i, 0);
        json_t *a = json_object_get(pre->attachments, vid);
        if (!a && pre->sparse) json_object_set_new(pre->attachments, vid, a = json_array());
        if (a) json_array_append_new(a, attachment_json(vid, r, i, 1));
    }
    ts_db_res_free(r);
    free_ids(want_md);
    free_ids(want_att);
}

void ts_volume_preload_free(struct ts_volume_preload *pre)
{
    json_decref(pre->types);
    json_decref(pre->metadata);
    json_decref(pre->attachments);
    memset(pre, 0, sizeof(*pre));
}

void ts_volume_type_name(struct ts_volume_svc *svc, const char *type_id, char *out, size_t len)
{
    out[0] = 0;
    if (!type_id) return;
    struct ts_db_res *r = NULL;
    if (ts_db_exec(svc->db, "SELECT name FROM volume_types WHERE id = ?", TS_DB_ARGS(TS_DB_S(type_id)), &r,
                   NULL) == 0 &&
        r->nrows > 0)
        snprintf(out, len, "%s", ts_db_res_get(r, 0, 0));
    ts_db_res_free(r);
}

json_t *ts_volume_view(struct ts_volume_svc *svc, struct ts_http_req *req, const struct ts_db_res *res, int r,
                       int mv)
{
    return ts_volume_view_pre(svc, req, res, r, mv, NULL);
}

json_t *ts_volume_view_pre(struct ts_volume_svc *svc, struct ts_http_req *req, const struct ts_db_res *res,
                           int r, int mv, const struct ts_volume_preload *pre)
{
    const char *id = ts_db_res_getn(res, r, "id");
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id));
    ts_json_set_str(o, "name", ts_db_res_getn(res, r, "name"));
    ts_json_set_str(o, "description", ts_db_res_getn(res, r, "description"));
    json_object_set_new(o, "status", json_string(ts_db_res_getn(res, r, "status")));
    json_object_set_new(o, "size", json_integer(ts_db_res_int(res, r, 7, 0)));
    ts_json_set_str(o, "availability_zone", ts_db_res_getn(res, r, "availability_zone"));
    ts_json_set_str(o, "created_at", ts_db_res_getn(res, r, "created_at"));
    ts_json_set_str(o, "updated_at", ts_db_res_getn(res, r, "updated_at"));
    json_t *pa = pre && pre->attachments ? json_object_get(pre->attachments, id) : NULL;
    json_object_set_new(o, "attachments",
                        pa ? json_incref(pa) : pre && pre->sparse ? json_array() : attachments_of(svc, id));
    json_object_set_new(o, "bootable", json_string(ts_db_res_int(res, r, 13, 0) ? "true" : "false"));
    json_object_set_new(o, "encrypted", json_boolean(ts_db_res_int(res, r, 22, 0) != 0));
    json_object_set_new(o, "multiattach", json_boolean(ts_db_res_int(res, r, 14, 0) != 0));
    json_object_set_new(o, "replication_status", json_null());
    json_object_set_new(o, "consistencygroup_id", json_null());
    ts_json_set_str(o, "snapshot_id", ts_db_res_getn(res, r, "snapshot_id"));
    ts_json_set_str(o, "source_volid", ts_db_res_getn(res, r, "source_volid"));
    ts_json_set_str(o, "user_id", ts_db_res_getn(res, r, "user_id"));
    json_object_set_new(o, "os-vol-tenant-attr:tenant_id", json_string(ts_db_res_getn(res, r, "project_id")));
    ts_json_set_str(o, "os-vol-mig-status-attr:migstat", ts_db_res_getn(res, r, "migration_status"));
    json_object_set_new(o, "os-vol-mig-status-attr:name_id", json_null());
    if (req && req->auth->is_admin) {
        ts_json_set_str(o, "os-vol-host-attr:host", ts_db_res_getn(res, r, "host"));
        ts_json_set_str(o, "migration_status", ts_db_res_getn(res, r, "migration_status"));
    }
    char tname[256] = "";
    const char *tid = ts_db_res_getn(res, r, "volume_type_id");
    if (pre && pre->types) {
        const char *tn = tid ? json_string_value(json_object_get(pre->types, tid)) : NULL;
        snprintf(tname, sizeof(tname), "%s", tn ? tn : "");
    } else {
        ts_volume_type_name(svc, tid, tname, sizeof(tname));
    }
    ts_json_set_str(o, "volume_type", tname[0] ? tname : NULL);
    json_t *pm = pre && pre->metadata ? json_object_get(pre->metadata, id) : NULL;
    json_object_set_new(o, "metadata",
                        pm                  ? json_deep_copy(pm)
                        : pre && pre->sparse ? json_object()
                                             : ts_volume_metadata(svc, "volume_metadata", "volume_id", id));
    const char *im = ts_db_res_getn(res, r, "image_meta");
    if (im) {
        json_t *j = json_loads(im, 0, NULL);
        if (j) json_object_set_new(o, "volume_image_metadata", j);
    }
    if (mv >= 13) json_object_set_new(o, "group_id", json_null());
    if (mv >= 21) json_object_set_new(o, "provider_id", json_null());
    if (mv >= 48) {
        json_object_set_new(o, "shared_targets", json_false());
        json_object_set_new(o, "service_uuid", json_null());
    }
    if (mv >= 61 && req && req->auth->is_admin) json_object_set_new(o, "cluster_name", json_null());
    if (mv >= 63) ts_json_set_str(o, "volume_type_id", tid);
    if (mv >= 64) json_object_set_new(o, "encryption_key_id", json_null());
    if (mv >= 65) json_object_set_new(o, "consumes_quota", json_true());
    char *self = ts_asprintf("http://%s/v3/%s/volumes/%s",
                             req && ts_http_header(req, "Host") ? ts_http_header(req, "Host") : "localhost",
                             ts_db_res_getn(res, r, "project_id"), id);
    json_object_set_new(
        o, "links",
        json_pack("[{s:s, s:s}, {s:s, s:s}]", "rel", "self", "href", self, "rel", "bookmark", "href", self));
    free(self);
    return o;
}

/* Compact JSON of v into b, byte for byte what json_dumps(v, JSON_COMPACT) writes (insertion
 * order, the same escapes), without jansson's per-character dump callback, which cost most of a
 * 1,000-volume detail list. Reals and anything else unusual go through json_dumps. */
static void dump_str(struct ts_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    ts_buf_append(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        ts_buf_append(b, s + run, i - run);
        run = i + 1;
        char e[6] = {'\\', 0};
        size_t el = 2;
        switch (c) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        default:
            e[1] = 'u', e[2] = '0', e[3] = '0', e[4] = hex[c >> 4], e[5] = hex[c & 15];
            el = 6;
        }
        ts_buf_append(b, e, el);
    }
    ts_buf_append(b, s + run, n - run);
    ts_buf_append(b, "\"", 1);
}

void ts_volume_dump_json(struct ts_buf *b, json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        ts_buf_append(b, "{", 1);
        bool first = true;
        for (void *it = json_object_iter(v); it; it = json_object_iter_next(v, it)) {
            if (!first) ts_buf_append(b, ",", 1);
            first = false;
            dump_str(b, json_object_iter_key(it), json_object_iter_key_len(it));
            ts_buf_append(b, ":", 1);
            ts_volume_dump_json(b, json_object_iter_value(it));
        }
        ts_buf_append(b, "}", 1);
        return;
    }
    case JSON_ARRAY:
        ts_buf_append(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) ts_buf_append(b, ",", 1);
            ts_volume_dump_json(b, json_array_get(v, i));
        }
        ts_buf_append(b, "]", 1);
        return;
    case JSON_STRING: dump_str(b, json_string_value(v), json_string_length(v)); return;
    case JSON_INTEGER: ts_buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); return;
    case JSON_TRUE: ts_buf_append(b, "true", 4); return;
    case JSON_FALSE: ts_buf_append(b, "false", 5); return;
    case JSON_NULL: ts_buf_append(b, "null", 4); return;
    default: {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (s) ts_buf_appends(b, s);
        free(s);
    }
    }
}

json_t *ts_volume_view_brief(json_t *v)
{
    static const char *const drop[] = {"os-vol-tenant-attr:tenant_id",
                                       "os-vol-mig-status-attr:migstat",
                                       "migration_status",
                                       "os-vol-mig-status-attr:name_id",
                                       "os-vol-host-attr:host",
                                       "volume_image_metadata",
                                       NULL};
    for (int i = 0; drop[i]; i++)
        json_object_del(v, drop[i]);
    return v;
}

int ts_volume_set_status(struct ts_volume_svc *svc, const char *id, const char *status, struct ts_err *err)
{
    char now[32];
    ts_volume_now(now);
    return ts_db_exec(svc->db, "UPDATE volumes SET status = ?, updated_at = ? WHERE id = ?",
                      TS_DB_ARGS(TS_DB_S(status), TS_DB_S(now), TS_DB_S(id)), NULL, err);
}

int ts_volume_cas_status(struct ts_volume_svc *svc, const char *id, const char *const *from, const char *to,
                         const char *msg, struct ts_err *err)
{
    char now[32];
    ts_volume_now(now);
    struct ts_buf sql;
    ts_buf_init(&sql, 4096);
    ts_buf_appends(&sql, "UPDATE volumes SET status = ?, updated_at = ? WHERE id = ? AND status IN (");
    struct ts_db_val args[16];
    int n = 0;
    args[n++] = TS_DB_S(to);
    args[n++] = TS_DB_S(now);
    args[n++] = TS_DB_S(id);
    for (int i = 0; from[i] && n < 16; i++) {
        ts_buf_appends(&sql, i ? ", ?" : "?");
        args[n++] = TS_DB_S(from[i]);
    }
    ts_buf_appends(&sql, ")");
    struct ts_db_res *r = NULL;
    int rc = ts_db_exec(svc->db, ts_buf_cstr(&sql), args, n, &r, err);
    ts_buf_free(&sql);
    if (rc) return rc;
    int64_t changes = r ? r->changes : 0;
    ts_db_res_free(r);
    if (changes == 0) return ts_err_set(err, TS_EINVAL, "%s", msg);
    return 0;
}

void ts_volume_notify_volume(struct ts_volume_svc *svc, const char *event, const char *vol_id)
{
    if (!svc->env || !svc->env->bus) return;
    struct ts_db_res *r = NULL;
    if (ts_db_exec(svc->db, "SELECT " TS_VOLUME_COLS " FROM volumes WHERE id = ?",
                   TS_DB_ARGS(TS_DB_S(vol_id)), &r, NULL) != 0)
        return;
    json_t *p;
    if (r->nrows == 0) {
        p = json_pack("{s:s, s:s}", "volume_id", vol_id, "status", "deleted");
    } else {
        char tname[256];
        ts_volume_type_name(svc, ts_db_res_getn(r, 0, "volume_type_id"), tname, sizeof(tname));
        p = json_object();
        json_object_set_new(p, "volume_id", json_string(vol_id));
        json_object_set_new(p, "tenant_id", json_string(ts_db_res_getn(r, 0, "project_id")));
        ts_json_set_str(p, "user_id", ts_db_res_getn(r, 0, "user_id"));
        ts_json_set_str(p, "display_name", ts_db_res_getn(r, 0, "name"));
        json_object_set_new(p, "size", json_integer(ts_db_res_int(r, 0, 7, 0)));
        json_object_set_new(p, "status", json_string(ts_db_res_getn(r, 0, "status")));
        ts_json_set_str(p, "availability_zone", ts_db_res_getn(r, 0, "availability_zone"));
        ts_json_set_str(p, "host", ts_db_res_getn(r, 0, "host"));
        ts_json_set_str(p, "created_at", ts_db_res_getn(r, 0, "created_at"));
        ts_json_set_str(p, "launched_at", ts_db_res_getn(r, 0, "launched_at"));
        ts_json_set_str(p, "snapshot_id", ts_db_res_getn(r, 0, "snapshot_id"));
        ts_json_set_str(p, "volume_type", tname[0] ? tname : NULL);
        json_object_set_new(p, "metadata", ts_volume_metadata(svc, "volume_metadata", "volume_id", vol_id));
    }
    ts_db_res_free(r);
    ts_bus_notify(svc->env->bus, svc->publisher, event, "INFO", p);
}

void ts_volume_notify_snapshot(struct ts_volume_svc *svc, const char *event, const char *snap_id)
{
    if (!svc->env || !svc->env->bus) return;
    struct ts_db_res *r = NULL;
    if (ts_db_exec(svc->db,
                   "SELECT id, volume_id, project_id, user_id, name, status, size, created_at FROM snapshots "
                   "WHERE id = ?",
                   TS_DB_ARGS(TS_DB_S(snap_id)), &r, NULL) != 0)
        return;
    json_t *p = json_pack("{s:s}", "snapshot_id", snap_id);
    if (r->nrows > 0) {
        ts_json_set_str(p, "volume_id", ts_db_res_get(r, 0, 1));
        ts_json_set_str(p, "tenant_id", ts_db_res_get(r, 0, 2));
        ts_json_set_str(p, "user_id", ts_db_res_get(r, 0, 3));
        ts_json_set_str(p, "display_name", ts_db_res_get(r, 0, 4));
        ts_json_set_str(p, "status", ts_db_res_get(r, 0, 5));
        json_object_set_new(p, "volume_size", json_integer(ts_db_res_int(r, 0, 6, 0)));
        ts_json_set_str(p, "created_at", ts_db_res_get(r, 0, 7));
    } else {
        json_object_set_new(p, "status", json_string("deleted"));
    }
    ts_db_res_free(r);
    ts_bus_notify(svc->env->bus, svc->publisher, event, "INFO", p);
}

/* ---- quotas -------------------------------------------------------------------------------- */

static int64_t builtin_default(struct ts_volume_svc *svc, const char *resource)
{
    static const struct {
        const char *name;
        int64_t def;
    } d[] = {{"volumes", 10},
             {"snapshots", 10},
             {"gigabytes", 1000},
             {"backups", 10},
             {"backup_gigabytes", 1000},
             {"groups", 10},
             {"per_volume_gigabytes", -1},
             {NULL, 0}};
    for (int i = 0; d[i].name; i++) {
        if (strcmp(d[i].name, resource) == 0) {
            char key[64];
            snprintf(key, sizeof(key), "quota_%s", resource);
            return ts_conf_get_int(svc->env->conf, "volume", key, d[i].def);
        }
    }
    return -1;
}

static int64_t lookup_limit(struct ts_volume_svc *svc, struct ts_db_conn *tx, const char *sql, const char *a,
                            const char *b, bool *found)
{
    struct ts_db_res *r = NULL;
    int rc = tx ? ts_db_tx_exec(tx, sql, TS_DB_ARGS(TS_DB_S(a), TS_DB_S(b)), &r, NULL)
                : ts_db_exec(svc->db, sql, TS_DB_ARGS(TS_DB_S(a), TS_DB_S(b)), &r, NULL);
    int64_t v = 0;
    *found = rc == 0 && r->nrows > 0;
    if (*found) v = ts_db_res_int(r, 0, 0, 0);
    ts_db_res_free(r);
    return v;
}

int64_t ts_volume_quota_limit(struct ts_volume_svc *svc, struct ts_db_conn *tx, const char *project,
                              const char *resource)
{
    bool found;
    int64_t v = 0;
    if (project) {
        v = lookup_limit(svc, tx, "SELECT hard_limit FROM quotas WHERE project_id = ? AND resource = ?",
                         project, resource, &found);
        if (found) return v;
    }
    v = lookup_limit(svc, tx, "SELECT hard_limit FROM quota_classes WHERE class_name = ? AND resource = ?",
                     "default", resource, &found);
    if (found) return v;
    return builtin_default(svc, resource);
}

int ts_volume_quota_check(struct ts_volume_svc *svc, struct ts_db_conn *tx, const char *project,
                          int64_t add_volumes, int64_t add_snapshots, int64_t add_gb, struct ts_err *err)
{
    int64_t nvol, nsnap, gb;
    int rc = ts_volume_usage_project(svc, tx, project, &nvol, &nsnap, &gb, err);
    if (rc) return rc;
    int64_t lim;
    if (add_gb > 0) {
        lim = ts_volume_quota_limit(svc, tx, project, "per_volume_gigabytes");
        if (lim >= 0 && add_gb > lim)
            return ts_err_set_full(err, TS_EQUOTA, 413, NULL,
                                   "VolumeSizeExceedsLimit: Requested volume size "
                                   "%lldG is larger than maximum allowed limit %lldG.",
                                   (long long)add_gb, (long long)lim);
    }
    if (add_volumes > 0) {
        lim = ts_volume_quota_limit(svc, tx, project, "volumes");
        if (lim >= 0 && nvol + add_volumes > lim)
            return ts_err_set_full(err, TS_EQUOTA, 413, NULL,
                                   "VolumeLimitExceeded: Maximum number of volumes "
                                   "allowed (%lld) exceeded for quota 'volumes'.",
                                   (long long)lim);
    }
    if (add_snapshots > 0) {
        lim = ts_volume_quota_limit(svc, tx, project, "snapshots");
        if (lim >= 0 && nsnap + add_snapshots > lim)
            return ts_err_set_full(err, TS_EQUOTA, 413, NULL,
                                   "SnapshotLimitExceeded: Maximum number of snapshots "
                                   "allowed (%lld) exceeded",
                                   (long long)lim);
    }
    if (add_gb > 0) {
        lim = ts_volume_quota_limit(svc, tx, project, "gigabytes");
        if (lim >= 0 && gb + add_gb > lim)
            return ts_err_set_full(
                err, TS_EQUOTA, 413, NULL,
                "VolumeSizeExceedsAvailableQuota: Requested volume or "
                "snapshot exceeds allowed gigabytes quota. Requested %lldG, quota is %lldG and "
                "%lldG has been consumed.",
                (long long)add_gb, (long long)lim, (long long)gb);
    }
    return 0;
}

/* ---- versions ------------------------------------------------------------------------------ */

static json_t *version_doc(struct ts_http_req *req)
{
    const char *host = ts_http_header(req, "Host");
    char *href = ts_asprintf("http://%s/v3/", host ? host : "127.0.0.1:8776");
    char maxv[16];
    snprintf(maxv, sizeof(maxv), "3.%d", TS_VOLUME_MV_MAX);
    json_t *v = json_pack("{s:s, s:s, s:s, s:s, s:s, s:[{s:s, s:s, s:s}, {s:s, s:s}], s:[{s:s, s:s}]}", "id",
                          "v3.0", "status", "CURRENT", "version", maxv, "min_version", "3.0", "updated",
                          "2022-08-31T00:00:00Z", "links", "rel", "describedby", "type", "text/html", "href",
                          "https://docs.openstack.org/", "rel", "self", "href", href, "media-types", "base",
                          "application/json", "type", "application/vnd.openstack.volume+json;version=3");
    free(href);
    return v;
}

static int h_versions(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)err;
    ts_http_resp_json(resp, 300, json_pack("{s:[o]}", "versions", version_doc(req)));
    return 0;
}

static int h_version_v3(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    int mv;
    int rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    ts_http_resp_json(resp, 200, json_pack("{s:[o]}", "versions", version_doc(req)));
    return 0;
}

/* PUT/DELETE on a collection without an id: Cinder answers 404. */
static int h_no_id(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    return ts_err_set(err, TS_ENOTFOUND, "The resource could not be found.");
}

#define P "/v3/{project_id}"
static const struct ts_http_route routes[] = {
    {"GET", "/", h_versions, TS_ROUTE_PUBLIC},
    {"GET", "/v3", h_version_v3, TS_ROUTE_PUBLIC},
    {"POST", P "/volumes", ts_volume_h_create, 0},
    {"GET", P "/volumes", ts_volume_h_list, 0},
    {"GET", P "/volumes/detail", ts_volume_h_detail, 0},
    {"GET", P "/volumes/summary", ts_volume_h_summary, 0},
    {"GET", P "/volumes/{volume_id}", ts_volume_h_show, 0},
    {"PUT", P "/volumes/{volume_id}", ts_volume_h_update, 0},
    {"PUT", P "/volumes", h_no_id, 0},
    {"DELETE", P "/volumes", h_no_id, 0},
    {"DELETE", P "/volumes/{volume_id}", ts_volume_h_delete, 0},
    {"*", P "/volumes/{volume_id}/metadata", ts_volume_h_metadata, 0},
    {"*", P "/volumes/{volume_id}/metadata/{key}", ts_volume_h_metadata, 0},
    {"POST", P "/volumes/{volume_id}/action", ts_volume_h_action, 0},
    {"POST", P "/attachments", ts_volume_h_att_create, 0},
    {"GET", P "/attachments", ts_volume_h_att_list, 0},
    {"GET", P "/attachments/detail", ts_volume_h_att_detail, 0},
    {"GET", P "/attachments/{attachment_id}", ts_volume_h_att_show, 0},
    {"PUT", P "/attachments/{attachment_id}", ts_volume_h_att_update, 0},
    {"POST", P "/attachments/{attachment_id}/action", ts_volume_h_att_complete, 0},
    {"DELETE", P "/attachments/{attachment_id}", ts_volume_h_att_delete, 0},
    {"POST", P "/types", ts_volume_h_type_create, 0},
    {"GET", P "/types", ts_volume_h_type_list, 0},
    {"GET", P "/types/default", ts_volume_h_type_default, 0},
    {"GET", P "/types/{type_id}", ts_volume_h_type_show, 0},
    {"PUT", P "/types/{type_id}", ts_volume_h_type_update, 0},
    {"DELETE", P "/types/{type_id}", ts_volume_h_type_delete, 0},
    {"*", P "/types/{type_id}/extra_specs", ts_volume_h_type_specs, 0},
    {"*", P "/types/{type_id}/extra_specs/{key}", ts_volume_h_type_specs, 0},
    {"POST", P "/types/{type_id}/action", ts_volume_h_type_action, 0},
    {"GET", P "/types/{type_id}/os-volume-type-access", ts_volume_h_type_access, 0},
    {"POST", P "/snapshots", ts_volume_h_snap_create, 0},
    {"GET", P "/snapshots", ts_volume_h_snap_list, 0},
    {"GET", P "/snapshots/detail", ts_volume_h_snap_detail, 0},
    {"GET", P "/snapshots/{snapshot_id}", ts_volume_h_snap_show, 0},
    {"PUT", P "/snapshots/{snapshot_id}", ts_volume_h_snap_update, 0},
    {"DELETE", P "/snapshots/{snapshot_id}", ts_volume_h_snap_delete, 0},
    {"*", P "/snapshots/{snapshot_id}/metadata", ts_volume_h_snap_metadata, 0},
    {"*", P "/snapshots/{snapshot_id}/metadata/{key}", ts_volume_h_snap_metadata, 0},
    {"POST", P "/snapshots/{snapshot_id}/action", ts_volume_h_snap_action, 0},
    {"GET", P "/os-quota-sets/{target}", ts_volume_h_quota_show, 0},
    {"GET", P "/os-quota-sets/{target}/defaults", ts_volume_h_quota_defaults, 0},
    {"PUT", P "/os-quota-sets/{target}", ts_volume_h_quota_update, 0},
    {"DELETE", P "/os-quota-sets/{target}", ts_volume_h_quota_delete, 0},
    {"GET", P "/os-quota-class-sets/{class}", ts_volume_h_quota_class_show, 0},
    {"PUT", P "/os-quota-class-sets/{class}", ts_volume_h_quota_class_update, 0},
    {"GET", P "/limits", ts_volume_h_limits, 0},
    {"GET", P "/os-availability-zone", ts_volume_h_azs, 0},
    {"GET", P "/os-services", ts_volume_h_services, 0},
    {"PUT", P "/os-services/{action}", ts_volume_h_service_action, 0},
    {"GET", P "/os-hosts", ts_volume_h_hosts, 0},
    {"GET", P "/os-hosts/{host}", ts_volume_h_host_show, 0},
    {"GET", P "/capabilities/{host}", ts_volume_h_capabilities, 0},
    {"GET", P "/scheduler-stats/get_pools", ts_volume_h_pools, 0},
    {"GET", P "/extensions", ts_volume_h_extensions, 0},
    {"GET", P "/messages", ts_volume_h_messages, 0},
    {"POST", P "/os-volume-transfer", ts_volume_h_transfer_create, 0},
    {"GET", P "/os-volume-transfer", ts_volume_h_transfer_list, 0},
    {"GET", P "/os-volume-transfer/detail", ts_volume_h_transfer_detail, 0},
    {"GET", P "/os-volume-transfer/{transfer_id}", ts_volume_h_transfer_show, 0},
    {"DELETE", P "/os-volume-transfer/{transfer_id}", ts_volume_h_transfer_delete, 0},
    {"POST", P "/os-volume-transfer/{transfer_id}/accept", ts_volume_h_transfer_accept, 0},
    {"POST", P "/volume-transfers", ts_volume_h_transfer_create, 0},
    {"GET", P "/volume-transfers", ts_volume_h_transfer_list, 0},
    {"GET", P "/volume-transfers/detail", ts_volume_h_transfer_detail, 0},
    {"GET", P "/volume-transfers/{transfer_id}", ts_volume_h_transfer_show, 0},
    {"DELETE", P "/volume-transfers/{transfer_id}", ts_volume_h_transfer_delete, 0},
    {"POST", P "/volume-transfers/{transfer_id}/accept", ts_volume_h_transfer_accept, 0},
    {"POST", P "/qos-specs", ts_volume_h_qos_create, 0},
    {"GET", P "/qos-specs", ts_volume_h_qos_list, 0},
    {"GET", P "/qos-specs/{qos_id}", ts_volume_h_qos_show, 0},
    {"PUT", P "/qos-specs/{qos_id}", ts_volume_h_qos_set, 0},
    {"DELETE", P "/qos-specs/{qos_id}", ts_volume_h_qos_delete, 0},
    {"PUT", P "/qos-specs/{qos_id}/delete_keys", ts_volume_h_qos_delete_keys, 0},
    {"GET", P "/qos-specs/{qos_id}/{op}", ts_volume_h_qos_op, 0},
    {"POST", P "/backups", ts_volume_h_backup_create, 0},
    {"GET", P "/backups", ts_volume_h_backup_list, 0},
    {"GET", P "/backups/detail", ts_volume_h_backup_detail, 0},
    {"GET", P "/backups/{backup_id}", ts_volume_h_backup_show, 0},
    {"PUT", P "/backups/{backup_id}", ts_volume_h_backup_update, 0},
    {"DELETE", P "/backups/{backup_id}", ts_volume_h_backup_delete, 0},
    {"POST", P "/backups/{backup_id}/restore", ts_volume_h_backup_restore, 0},
    {"POST", P "/backups/{backup_id}/action", ts_volume_h_backup_action, 0},
    {"GET", P "/backups/{backup_id}/export_record", ts_volume_h_backup_export, 0},
    {"POST", P "/backups/import_record", ts_volume_h_backup_import, 0},
    {NULL, NULL, NULL, 0},
};
#undef P

/* ---- life cycle ------------------------------------------------------------------------------ */

static void conf_default(struct ts_conf *conf, const char *key, const char *value)
{
    ts_service_conf_default(conf, "volume", key, value);
}

static int ensure_default_type(struct ts_db *db, const char *name, struct ts_err *err)
{
    char id[TS_UUID_LEN + 1], now[32];
    ts_uuid(id);
    ts_volume_now(now);
    return ts_db_exec(
        db,
        "INSERT INTO volume_types (id, name, description, is_public, created_at) VALUES (?, ?, ?, 1, ?) "
        "ON CONFLICT (name) DO NOTHING",
        TS_DB_ARGS(TS_DB_S(id), TS_DB_S(name), TS_DB_S("Default Volume Type"), TS_DB_S(now)), NULL, err);
}

static int volume_init(struct ts_service_env *env, struct ts_err *err)
{
    char *s = ts_asprintf("%d", ts_volume_service.default_port);
    conf_default(env->conf, "port", s);
    free(s);
    s = ts_asprintf("sqlite:///%s/volume.db", env->data_dir);
    conf_default(env->conf, "connection", s);
    free(s);
    s = ts_asprintf("%s/volumes", env->data_dir);
    conf_default(env->conf, "volumes_dir", s);
    free(s);
    s = ts_asprintf("%s/backups", env->data_dir);
    conf_default(env->conf, "backups_dir", s);
    free(s);
    conf_default(env->conf, "enabled_backends", "file");
    conf_default(env->conf, "default_volume_type", "__DEFAULT__");
    conf_default(env->conf, "storage_availability_zone", "nova");

    struct ts_db *db = NULL;
    int rc = ts_db_open(ts_conf_get(env->conf, "volume", "connection", NULL), &db, err);
    if (rc) return rc;
    rc = ts_db_migrate(db, migrations, sizeof(migrations) / sizeof(migrations[0]), err);
    if (rc == 0)
        rc = ensure_default_type(db, ts_conf_get(env->conf, "volume", "default_volume_type", "__DEFAULT__"),
                                 err);
    ts_db_close(db);
    return rc;
}

static void volume_stop(void *state)
{
    struct ts_volume_svc *svc = state;
    if (!svc) return;
    ts_http_server_stop(svc->http);
    ts_volume_mgr_stop(svc);
    for (int i = 0; i < svc->n_backends; i++)
        svc->backends[i]->ops->free(svc->backends[i]);
    ts_db_close(svc->db);
    pthread_mutex_destroy(&svc->lock);
    free(svc);
}

/* Backends from "[volume] enabled_backends = a,b" and "[volume:a] driver/dir/format/capacity_gb". */
static int open_backends(struct ts_volume_svc *svc, struct ts_err *err)
{
    struct ts_conf *c = svc->env->conf;
    char list[512];
    snprintf(list, sizeof(list), "%s", ts_conf_get(c, "volume", "enabled_backends", "file"));
    char *save = NULL;
    for (char *tok = strtok_r(list, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        if (svc->n_backends >= TS_VOLUME_MAX_BACKENDS) break;
        char sect[128];
        snprintf(sect, sizeof(sect), "volume:%s", tok);
        const char *driver = ts_conf_get(c, sect, "driver", "file");
        if (strcmp(driver, "file") != 0 && strcmp(driver, "lvm") != 0)
            return ts_err_set(err, TS_EINVAL, "volume backend %s: unknown driver %s", tok, driver);
        char *dflt = ts_asprintf("%s/%s", ts_conf_get(c, "volume", "volumes_dir", "/tmp"), tok);
        const char *dir = ts_conf_get(c, sect, "dir", dflt);
        const char *bname = ts_conf_get(c, sect, "volume_backend_name", tok);
        double cap = ts_conf_get_double(c, sect, "capacity_gb", 0);
        struct ts_volume_backend *be = NULL;
        int rc;
        if (strcmp(driver, "lvm") == 0) /* [volume:x] volume_group, lvm_type, thin_pool; dir: temporary files */
            rc = ts_volume_backend_lvm_open(bname, ts_conf_get(c, sect, "volume_group", NULL),
                                            ts_conf_get(c, sect, "lvm_type", "auto"),
                                            ts_conf_get(c, sect, "thin_pool", NULL), dir, cap, &be, err);
        else
            rc = ts_volume_backend_file_open(bname, dir, ts_conf_get(c, sect, "format", "raw"), cap, &be, err);
        free(dflt);
        if (rc) return rc;
        be->ratio = ts_conf_get_double(c, sect, "max_over_subscription_ratio", be->ratio);
        svc->backends[svc->n_backends++] = be;
    }
    if (svc->n_backends == 0) return ts_err_set(err, TS_EINVAL, "volume: no enabled_backends");
    return 0;
}

static int volume_start(struct ts_service_env *env, void **state, struct ts_err *err)
{
    struct ts_volume_svc *svc = ts_calloc(1, sizeof(*svc));
    pthread_mutex_init(&svc->lock, NULL);
    svc->env = env;
    svc->started_at = ts_now();
    snprintf(svc->host, sizeof(svc->host), "%s", env->host ? env->host : "localhost");
    snprintf(svc->publisher, sizeof(svc->publisher), "volume.%s", svc->host);
    int rc = volume_init(env, err);
    if (rc) goto out;
    snprintf(svc->az, sizeof(svc->az), "%s",
             ts_conf_get(env->conf, "volume", "storage_availability_zone", "nova"));
    snprintf(svc->default_type, sizeof(svc->default_type), "%s",
             ts_conf_get(env->conf, "volume", "default_volume_type", "__DEFAULT__"));
    const char *iu = ts_conf_get(env->conf, "volume", "image_url", NULL);
    if (iu)
        snprintf(svc->image_url, sizeof(svc->image_url), "%s", iu);
    else
        snprintf(svc->image_url, sizeof(svc->image_url), "http://%s:%lld",
                 ts_conf_get(env->conf, "DEFAULT", "public_host", "127.0.0.1"),
                 (long long)ts_conf_get_int(env->conf, "image", "port", 9292));
    rc = ts_db_open(ts_conf_get(env->conf, "volume", "connection", NULL), &svc->db, err);
    if (rc) goto out;
    rc = ts_volume_usage_setup(svc, err);
    if (rc) goto out;
    rc = open_backends(svc, err);
    if (rc) goto out;
    ts_volume_mgr_recover(svc);
    rc = ts_volume_mgr_start(svc, err);
    if (rc) goto out;

    rc = ts_service_http_start(env, &ts_volume_service, routes, TS_FAULT_CINDER, 8, svc, &svc->http, err);
    if (rc) goto out;
    *state = svc;
out:
    if (rc) volume_stop(svc);
    return rc;
}

const struct ts_service ts_volume_service = {
    .name = "volume",
    .type = "volumev3",
    .catalog_name = "cinderv3",
    .default_port = 8776,
    .catalog_path = "/v3/%(project_id)s",
    .init = volume_init,
    .start = volume_start,
    .stop = volume_stop,
};
