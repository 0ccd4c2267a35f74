/*
 * ts_volume_api.c: the volumes resource: create (empty, from snapshot, from volume, from
 * image), list and detail with Cinder's filters, sorting and marker pagination, show,
 * update, delete (cascade) and the summary. Creation writes the row in state "creating"
 * inside a quota-checked transaction and casts to the scheduler; the manager finishes.
 */
#include "volume/ts_volume_int.h"

#include <stdlib.h>
#include <string.h>

/* size may be an integer or a numeric string; NULL/null -> 0 (absent). */
static int body_size(json_t *v, int64_t *out, struct ts_err *err)
{
    *out = 0;
    if (!v || json_is_null(v)) return 0;
    char buf[64];
    if (json_is_integer(v))
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
    else if (json_is_string(v))
        snprintf(buf, sizeof(buf), "%s", json_string_value(v));
    else if (json_is_real(v) && json_real_value(v) == (double)(int64_t)json_real_value(v))
        snprintf(buf, sizeof(buf), "%lld", (long long)json_real_value(v));
    else
        return ts_err_set(err, TS_EINVAL,
                          "Invalid input for field/attribute size. Value: %s. is not of type integer",
                          json_is_string(v) ? json_string_value(v) : "?");
    return ts_volume_size_parse(buf, out, err);
}

static const char *opt_str(json_t *o, const char *key, const char *alt)
{
    json_t *v = json_object_get(o, key);
    if ((!v || json_is_null(v)) && alt) v = json_object_get(o, alt);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int check_str_field(json_t *o, const char *key, struct ts_err *err)
{
    json_t *v = json_object_get(o, key);
    if (v && !json_is_null(v) && !json_is_string(v))
        return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute %s. Value is not a string.",
                          key);
    return 0;
}

/* Fetches an image record visible with the caller's token. */
static int image_record(struct ts_volume_svc *svc, struct ts_http_req *req, const char *image_id,
                        json_t **out, struct ts_err *err)
{
    char *th = ts_asprintf("X-Auth-Token: %s", req->auth->token);
    const char *hdrs[] = {th, "Accept: application/json", NULL};
    char *url = ts_asprintf("%s/v2/images/%s", svc->image_url, image_id);
    struct ts_http_client_resp r = {0};
    int rc = ts_http_client_request("GET", url, hdrs, NULL, 0, 15000, &r, err);
    free(url);
    free(th);
    if (rc == 0) {
        if (r.status == 200 && (*out = json_loads(r.body ? r.body : "", 0, NULL)))
            rc = 0;
        else
            rc = ts_err_set(err, TS_EINVAL, "Invalid image identifier or unable to access requested image.");
    } else {
        rc = ts_err_set(err, TS_EINVAL, "Image service unavailable: %s", err ? err->msg : "");
    }
    ts_http_client_resp_free(&r);
    return rc;
}

int ts_volume_type_resolve(struct ts_volume_svc *svc, struct ts_http_req *req, const char *id_or_name,
                           char id[64], char name[256], struct ts_err *err)
{
    struct ts_db_res *r = NULL;
    int rc = ts_db_exec(svc->db,
                        "SELECT id, name, is_public FROM volume_types WHERE id = ? OR name = ? ORDER BY "
                        "CASE WHEN id = ? THEN 0 ELSE 1 END",
                        TS_DB_ARGS(TS_DB_S(id_or_name), TS_DB_S(id_or_name), TS_DB_S(id_or_name)), &r, err);
    if (rc) return rc;
    bool ok = r->nrows > 0;
    if (ok && !req->auth->is_admin && ts_db_res_int(r, 0, 2, 1) == 0) {
        struct ts_db_res *a = NULL;
        ok = ts_db_exec(svc->db, "SELECT 1 FROM type_access WHERE type_id = ? AND project_id = ?",
                        TS_DB_ARGS(TS_DB_S(ts_db_res_get(r, 0, 0)), TS_DB_S(req->auth->project_id)), &a,
                        NULL) == 0 &&
             a->nrows > 0;
        ts_db_res_free(a);
    }
    if (ok) {
        snprintf(id, 64, "%s", ts_db_res_get(r, 0, 0));
        snprintf(name, 256, "%s", ts_db_res_get(r, 0, 1));
    }
    ts_db_res_free(r);
    if (!ok) return ts_err_set(err, TS_ENOTFOUND, "Volume type %s could not be found.", id_or_name);
    return 0;
}

int ts_volume_default_type(struct ts_volume_svc *svc, char id[64], struct ts_err *err)
{
    struct ts_db_res *r = NULL;
    int rc = ts_db_exec(svc->db, "SELECT id FROM volume_types WHERE name = ?",
                        TS_DB_ARGS(TS_DB_S(svc->default_type)), &r, err);
    if (rc) return rc;
    if (r->nrows == 0)
        rc = ts_err_set(err, TS_EINVAL, "Default volume type %s not found.", svc->default_type);
    else
        snprintf(id, 64, "%s", ts_db_res_get(r, 0, 0));
    ts_db_res_free(r);
    return rc;
}

static void type_backend(struct ts_volume_svc *svc, const char *type_id, char *out, size_t len)
{
    out[0] = 0;
    struct ts_db_res *r = NULL;
    if (ts_db_exec(svc->db,
                   "SELECT value FROM type_extra_specs WHERE type_id = ? AND key = 'volume_backend_name'",
                   TS_DB_ARGS(TS_DB_S(type_id)), &r, NULL) == 0 &&
        r->nrows > 0)
        snprintf(out, len, "%s", ts_db_res_get(r, 0, 0));
    ts_db_res_free(r);
}

int ts_volume_h_create(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = ts_volume_check_writer(req, err))) return rc;
    json_t *body = NULL, *v = NULL, *img = NULL;
    struct ts_db_res *src = NULL;
    struct ts_db_conn *tx = NULL;
    if ((rc = ts_http_json_body(req, &body, err))) return rc;
    if ((rc = ts_json_body_object(body, "volume", &v, err))) return rc;
    static const char *const strs[] = {
        "name",        "description",       "display_name", "display_description",
        "volume_type", "availability_zone", "snapshot_id",  "source_volid",
        "imageRef",    "image_id",          "backup_id",    NULL};
    for (int i = 0; strs[i]; i++)
        if ((rc = check_str_field(v, strs[i], err))) return rc;
    int64_t size;
    if ((rc = body_size(json_object_get(v, "size"), &size, err))) return rc;
    const char *name = opt_str(v, "name", "display_name"),
               *desc = opt_str(v, "description", "display_description");
    if ((rc = ts_volume_check_text("name", name, 255, err))) return rc;
    if ((rc = ts_volume_check_text("description", desc, 255, err))) return rc;
    const char *az = opt_str(v, "availability_zone", NULL);
    if (az && strcmp(az, svc->az) != 0)
        return ts_err_set(err, TS_EINVAL, "Invalid input received: Availability zone '%s' is invalid.", az);
    json_t *md = json_object_get(v, "metadata");
    if (md && !json_is_null(md) && (rc = ts_volume_metadata_check(md, err))) return rc;
    if (opt_str(v, "backup_id", NULL))
        return ts_err_set(err, TS_EINVAL, "Invalid input received: backups are not supported.");
    const char *snap_id = opt_str(v, "snapshot_id", NULL), *src_id = opt_str(v, "source_volid", NULL);
    const char *image_id = opt_str(v, "imageRef", "image_id");
    if ((snap_id != NULL) + (src_id != NULL) + (image_id != NULL) > 1)
        return ts_err_set(err, TS_EINVAL,
                          "Invalid input received: only one of snapshot_id, source_volid and imageRef "
                          "may be given.");
    bool multiattach = ts_json_bool(v, "multiattach", false);
    char type_id[64] = "", type_name[256] = "", same_host[320] = "";
    const char *tsel = opt_str(v, "volume_type", NULL);
    if (tsel && *tsel) {
        if ((rc = ts_volume_type_resolve(svc, req, tsel, type_id, type_name, err))) return rc;
    }
    if (snap_id) {
        rc = ts_db_exec(svc->db,
                        "SELECT s.size, s.status, s.project_id, v.volume_type_id, v.host, v.bootable, "
                        "v.image_meta FROM snapshots s "
                        "JOIN volumes v ON v.id = s.volume_id WHERE s.id = ?",
                        TS_DB_ARGS(TS_DB_S(snap_id)), &src, err);
        if (rc) goto out;
        if (src->nrows == 0 ||
            (!req->auth->is_admin && !ts_streq(ts_db_res_get(src, 0, 2), req->auth->project_id))) {
            rc = ts_err_set(err, TS_ENOTFOUND, "Snapshot %s could not be found.", snap_id);
            goto out;
        }
        if (!ts_streq(ts_db_res_get(src, 0, 1), "available")) {
            rc = ts_err_set(err, TS_EINVAL,
                            "Invalid snapshot: Originating snapshot status must be one of "
                            "'available' values");
            goto out;
        }
    } else if (src_id) {
        rc = ts_db_exec(
            svc->db,
            "SELECT size, status, project_id, volume_type_id, host, bootable, image_meta FROM volumes "
            "WHERE id = ?",
            TS_DB_ARGS(TS_DB_S(src_id)), &src, err);
        if (rc) goto out;
        if (src->nrows == 0 ||
            (!req->auth->is_admin && !ts_streq(ts_db_res_get(src, 0, 2), req->auth->project_id))) {
            rc = ts_err_set(err, TS_ENOTFOUND, "Volume %s could not be found.", src_id);
            goto out;
        }
        const char *st = ts_db_res_get(src, 0, 1);
        if (!ts_streq(st, "available") && !ts_streq(st, "in-use")) {
            rc = ts_err_set(err, TS_EINVAL,
                            "Invalid volume: Source volume status must be available or in-use.");
            goto out;
        }
    }
    if (src) {
        int64_t ssize = ts_db_res_int(src, 0, 0, 1);
        if (size == 0) size = ssize;
        if (size < ssize) {
            rc = ts_err_set(err, TS_EINVAL,
                            "Invalid input received: Volume size '%lld'GB cannot be smaller than the "
                            "%s size %lldGB.",
                            (long long)size, snap_id ? "snapshot" : "original volume", (long long)ssize);
            goto out;
        }
        if (!type_id[0] && ts_db_res_get(src, 0, 3))
            snprintf(type_id, sizeof(type_id), "%s", ts_db_res_get(src, 0, 3));
        if (ts_db_res_get(src, 0, 4)) snprintf(same_host, sizeof(same_host), "%s", ts_db_res_get(src, 0, 4));
    }
    if (image_id) {
        if ((rc = image_record(svc, req, image_id, &img, err))) goto out;
        if (!ts_streq(json_string_value(json_object_get(img, "status")), "active")) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid image identifier or unable to access requested image.");
            goto out;
        }
        int64_t isize = json_integer_value(json_object_get(img, "size"));
        int64_t vsize = json_integer_value(json_object_get(img, "virtual_size"));
        int64_t min_disk = json_integer_value(json_object_get(img, "min_disk"));
        int64_t need = vsize > isize ? vsize : isize;
        if (size == 0) size = (need + (1LL << 30) - 1) >> 30;
        if (size == 0) size = 1;
        if (size < min_disk || (need > (size << 30) && vsize > 0)) {
            rc = ts_err_set(err, TS_EINVAL,
                            "Invalid input received: Image minDisk size or virtual size is larger "
                            "than the volume size %lldGB.",
                            (long long)size);
            goto out;
        }
    }
    if (size <= 0) {
        rc = ts_err_set(err, TS_EINVAL,
                        "Invalid input received: 'size' parameter must be specified and be an "
                        "integer greater than zero.");
        goto out;
    }
    if (!type_id[0] && (rc = ts_volume_default_type(svc, type_id, err))) goto out;
    char id[TS_UUID_LEN + 1], now[32], backend[64];
    ts_uuid(id);
    ts_volume_now(now);
    type_backend(svc, type_id, backend, sizeof(backend));
    if ((rc = ts_db_begin(svc->db, &tx, err))) goto out;
    if ((rc = ts_volume_quota_check(svc, tx, req->auth->project_id, 1, 0, size, err))) goto out;
    rc = ts_db_tx_exec(tx,
                       "INSERT INTO volumes (id, project_id, user_id, name, description, status, size, "
                       "availability_zone, volume_type_id, snapshot_id, source_volid, image_id, multiattach, "
                       "created_at, updated_at, bootable, image_meta) "
                       "VALUES (?, ?, ?, ?, ?, 'creating', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       TS_DB_ARGS(TS_DB_S(id), TS_DB_S(req->auth->project_id), TS_DB_S(req->auth->user_id),
                                  TS_DB_S(name), TS_DB_S(desc), TS_DB_I(size), TS_DB_S(svc->az),
                                  TS_DB_S(type_id), TS_DB_S(snap_id), TS_DB_S(src_id), TS_DB_S(image_id),
                                  TS_DB_B(multiattach), TS_DB_S(now), TS_DB_S(now),
                                  TS_DB_I(src ? ts_db_res_int(src, 0, 5, 0) : 0),
                                  TS_DB_S(src ? ts_db_res_get(src, 0, 6) : NULL)),
                       NULL, err);
    if (rc) goto out;
    if (md && json_is_object(md)) {
        const char *k;
        json_t *mvv;
        json_object_foreach(md, k, mvv)
        {
            rc = ts_db_tx_exec(tx, "INSERT INTO volume_metadata (volume_id, key, value) VALUES (?, ?, ?)",
                               TS_DB_ARGS(TS_DB_S(id), TS_DB_S(k), TS_DB_S(json_string_value(mvv))), NULL,
                               err);
            if (rc) goto out;
        }
    }
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    json_t *args =
        json_pack("{s:s, s:I, s:s}", "volume_id", id, "size", (json_int_t)size, "token", req->auth->token);
    if (backend[0]) json_object_set_new(args, "backend_name", json_string(backend));
    if (same_host[0]) json_object_set_new(args, "same_host", json_string(same_host));
    if (snap_id) json_object_set_new(args, "snapshot_id", json_string(snap_id));
    if (src_id) json_object_set_new(args, "source_volid", json_string(src_id));
    if (image_id) json_object_set_new(args, "image_id", json_string(image_id));
    struct ts_err e2 = {0};
    if (ts_volume_cast_scheduler(svc, "create_volume", args, &e2) != 0)
        ts_volume_set_status(svc, id, "error", NULL);
    struct ts_db_res *row = NULL;
    if ((rc = ts_db_exec(svc->db, "SELECT " TS_VOLUME_COLS " FROM volumes WHERE id = ?",
                         TS_DB_ARGS(TS_DB_S(id)), &row, err)))
        goto out;
    if (row->nrows == 0) {
        /* finished and deleted already? show what was asked */
        ts_db_res_free(row);
        rc = ts_err_set(err, TS_EIO, "volume vanished");
        goto out;
    }
    ts_http_resp_json(
        resp, 202, json_pack("{s:o}", "volume", ts_volume_view_brief(ts_volume_view(svc, req, row, 0, mv))));
    ts_db_res_free(row);
out:
    ts_db_rollback(tx);
    ts_db_res_free(src);
    json_decref(img);
    return rc;
}

/* ---- list ---------------------------------------------------------------------------------- */

static const char *const sort_keys[] = {"id",       "name",       "display_name", "status",
                                        "size",     "created_at", "updated_at",   "availability_zone",
                                        "bootable", "project_id", "volume_type",  "volume_type_id",
                                        "user_id",  NULL};
static const char *const sort_cols[] = {"id",       "name",       "name",           "status",
                                        "size",     "created_at", "updated_at",     "availability_zone",
                                        "bootable", "project_id", "volume_type_id", "volume_type_id",
                                        "user_id",  NULL};

/* Columns declared NOT NULL in the volumes table. */
static bool not_null_col(const char *c)
{
    static const char *const nn[] = {"id", "project_id", "status", "size", "created_at", "bootable", NULL};
    for (int i = 0; nn[i]; i++)
        if (strcmp(c, nn[i]) == 0) return true;
    return false;
}

static bool int_col(const char *c)
{
    return strcmp(c, "size") == 0 || strcmp(c, "bootable") == 0;
}

struct qb {
    struct ts_buf sql;
    struct ts_db_val args[48];
    int n;
    struct ts_pool *pool;
};

static void qb_arg(struct qb *q, struct ts_db_val v)
{
    if (q->n < 48) q->args[q->n++] = v;
}

/* Parses Cinder's metadata filter "{'k': 'v'}" (a python dict repr) or JSON. */
static json_t *parse_dict(const char *s)
{
    char *t = ts_strdup(s);
    for (char *p = t; *p; p++)
        if (*p == '\'') *p = '"';
    json_t *j = json_loads(t, 0, NULL);
    free(t);
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

static int list_common(struct ts_http_req *req, struct ts_http_resp *resp, bool detail, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    /* "GET /volumes/" is a show with an empty id for Cinder: 404 */
    if (!detail && req->raw_path && ts_endswith(req->raw_path, "/"))
        return ts_err_set(err, TS_ENOTFOUND, "Volume could not be found.");
    struct ts_db_res *res = NULL, *mk = NULL;
    json_t *mdf = NULL;
    struct qb q = {.n = 0, .pool = req->pool};
    ts_buf_init(&q.sql, 1 << 16);
    struct ts_volume_sort sorts[8];
    int ns = ts_volume_sort_parse(ts_http_query(req, "sort"), ts_http_query(req, "sort_key"),
                                  ts_http_query(req, "sort_dir"), sort_keys, sort_cols, sorts, 8, err);
    if (ns < 0) {
        rc = ns;
        goto out;
    }
    int64_t limit = -1, offset = 0;
    const char *ls = ts_http_query(req, "limit"), *os = ts_http_query(req, "offset");
    if (ls && (ts_parse_int64(ls, &limit) != 0 || limit < 0)) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input received: limit param must be an integer");
        goto out;
    }
    if (os && (ts_parse_int64(os, &offset) != 0 || offset < 0)) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input received: offset param must be an integer");
        goto out;
    }
    int64_t max_limit = ts_conf_get_int(svc->env->conf, "volume", "osapi_max_limit", 1000);
    if (limit < 0 || limit > max_limit) limit = max_limit;
    /* the select list goes in front at the end (the count wants none of it) */
    ts_buf_appends(&q.sql, " FROM volumes WHERE 1 = 1");
    bool all = false;
    const char *at = ts_http_query(req, "all_tenants");
    if (at && req->auth->is_admin) ts_parse_bool(at, &all) == 0 ? (void)0 : (void)(all = true);
    const char *proj = ts_http_query(req, "project_id");
    if (!all || (proj && req->auth->is_admin)) {
        ts_buf_appends(&q.sql, " AND project_id = ?");
        qb_arg(&q, TS_DB_S(proj && req->auth->is_admin ? proj : req->auth->project_id));
    }
    static const char *const eq[] = {"status", "availability_zone", "name", "display_name", "user_id", NULL};
    for (int i = 0; eq[i]; i++) {
        const char *val = ts_http_query(req, eq[i]);
        if (!val) continue;
        ts_buf_printf(&q.sql, " AND %s = ?", strcmp(eq[i], "display_name") == 0 ? "name" : eq[i]);
        qb_arg(&q, TS_DB_S(val));
    }
    const char *like = ts_http_query(req, "name~");
    if (like) {
        ts_buf_appends(&q.sql, " AND name LIKE ?");
        qb_arg(&q, TS_DB_S(ts_pool_printf(req->pool, "%%%s%%", like)));
    }
    const char *boot = ts_http_query(req, "bootable");
    if (boot) {
        bool b = false;
        if (ts_parse_bool(boot, &b) != 0) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid input received: bootable must be a boolean");
            goto out;
        }
        ts_buf_appends(&q.sql, " AND bootable = ?");
        qb_arg(&q, TS_DB_B(b));
    }
    const char *vt = ts_http_query(req, "volume_type");
    if (vt) {
        ts_buf_appends(&q.sql,
                       " AND volume_type_id IN (SELECT id FROM volume_types WHERE id = ? OR name = ?)");
        qb_arg(&q, TS_DB_S(vt));
        qb_arg(&q, TS_DB_S(vt));
    }
    const char *mds = ts_http_query(req, "metadata");
    if (mds) {
        mdf = parse_dict(mds);
        if (!mdf) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid input received: metadata filter must be a dict");
            goto out;
        }
        const char *k;
        json_t *val;
        json_object_foreach(mdf, k, val)
        {
            ts_buf_appends(&q.sql,
                           " AND id IN (SELECT volume_id FROM volume_metadata WHERE key = ? AND value = ?)");
            qb_arg(&q, TS_DB_S(k));
            qb_arg(&q, TS_DB_S(json_is_string(val) ? json_string_value(val) : ""));
        }
    }
    const char *marker = ts_http_query(req, "marker");
    if (marker) {
        rc = ts_db_exec(svc->db, "SELECT " TS_VOLUME_COLS " FROM volumes WHERE id = ?",
                        TS_DB_ARGS(TS_DB_S(marker)), &mk, err);
        if (rc) goto out;
        if (mk->nrows == 0 ||
            (!req->auth->is_admin && !ts_streq(ts_db_res_getn(mk, 0, "project_id"), req->auth->project_id))) {
            rc = ts_err_set(err, TS_ENOTFOUND, "Marker %s could not be found.", marker);
            goto out;
        }
        /* keyset: (k1 > v1) OR (k1 = v1 AND k2 > v2) ... with each key's direction */
        ts_buf_appends(&q.sql, " AND (");
        for (int i = 0; i < ns; i++) {
            if (i) ts_buf_appends(&q.sql, " OR ");
            ts_buf_appends(&q.sql, "(");
            for (int j = 0; j <= i; j++) {
                bool ic = int_col(sorts[j].key);
                const char *val = ts_db_res_getn(mk, 0, sorts[j].key);
                if (j) ts_buf_appends(&q.sql, " AND ");
                if (not_null_col(sorts[j].key))
                    ts_buf_printf(&q.sql, "%s %s ?", sorts[j].key, j < i ? "=" : (sorts[j].desc ? "<" : ">"));
                else if (ic)
                    ts_buf_printf(&q.sql, "COALESCE(%s, 0) %s ?", sorts[j].key,
                                  j < i ? "=" : (sorts[j].desc ? "<" : ">"));
                else
                    ts_buf_printf(&q.sql, "COALESCE(%s, '') %s ?", sorts[j].key,
                                  j < i ? "=" : (sorts[j].desc ? "<" : ">"));
                int64_t iv = 0;
                if (ic) {
                    if (val) ts_parse_int64(val, &iv);
                    qb_arg(&q, TS_DB_I(iv));
                } else {
                    qb_arg(&q, TS_DB_S(val ? val : ""));
                }
            }
            ts_buf_appends(&q.sql, ")");
        }
        ts_buf_appends(&q.sql, ")");
    }
    /* count before paging (with_count, 3.45) */
    int64_t count = -1;
    const char *wc = ts_http_query(req, "with_count");
    bool want_count = false;
    if (wc && mv >= 45) ts_parse_bool(wc, &want_count);
    if (want_count) {
        char *csql = ts_asprintf("SELECT COUNT(*)%s", ts_buf_cstr(&q.sql));
        struct ts_db_res *cr = NULL;
        rc = ts_db_exec(svc->db, csql, q.args, q.n, &cr, err);
        free(csql);
        if (rc) goto out;
        count = ts_db_res_int(cr, 0, 0, 0);
        ts_db_res_free(cr);
    }
    /* NOT NULL columns sort as they are, so an index can serve the order (the default
     * created_at desc, id desc: volumes_project_created_idx) */
    ts_buf_appends(&q.sql, " ORDER BY ");
    for (int i = 0; i < ns; i++) {
        if (not_null_col(sorts[i].key))
            ts_buf_printf(&q.sql, "%s%s %s", i ? ", " : "", sorts[i].key, sorts[i].desc ? "DESC" : "ASC");
        else
            ts_buf_printf(&q.sql, "%sCOALESCE(%s, %s) %s", i ? ", " : "", sorts[i].key,
                          int_col(sorts[i].key) ? "0" : "''", sorts[i].desc ? "DESC" : "ASC");
    }
    ts_buf_appends(&q.sql, " LIMIT ? OFFSET ?");
    qb_arg(&q, TS_DB_I(limit));
    qb_arg(&q, TS_DB_I(offset));
    /* the body is written straight out: {"volumes":[...], then volumes_links and count */
    struct ts_buf body;
    ts_buf_init(&body, (size_t)1 << 40);
    int nrows = 0;
    char last_id[256] = "";
    if (detail) {
        rc = ts_volume_list_detail(svc, req, mv, ts_buf_cstr(&q.sql), q.args, q.n, &body, &nrows, last_id,
                                   sizeof(last_id), err);
    } else {
        char *sql = ts_asprintf("SELECT " TS_VOLUME_COLS "%s", ts_buf_cstr(&q.sql));
        rc = ts_db_exec(svc->db, sql, q.args, q.n, &res, err);
        free(sql);
    }
    if (rc) {
        ts_buf_free(&body);
        goto out;
    }
    if (!detail) {
        ts_buf_appends(&body, "{\"volumes\":[");
        const char *host = ts_http_header(req, "Host");
        for (int i = 0; i < res->nrows; i++) {
            char *self = ts_asprintf("http://%s/v3/%s/volumes/%s", host ? host : "localhost",
                                     ts_db_res_get(res, i, 1), ts_db_res_get(res, i, 0));
            json_t *view = json_pack("{s:s, s:s?, s:[{s:s, s:s}, {s:s, s:s}]}", "id", ts_db_res_get(res, i, 0),
                                     "name", ts_db_res_get(res, i, 3), "links", "rel", "self", "href", self,
                                     "rel", "bookmark", "href", self);
            free(self);
            if (i) ts_buf_append(&body, ",", 1);
            ts_volume_dump_json(&body, view);
            json_decref(view);
        }
        ts_buf_append(&body, "]", 1);
        nrows = res->nrows;
        if (nrows > 0) snprintf(last_id, sizeof(last_id), "%s", ts_db_res_get(res, nrows - 1, 0));
    }
    json_t *out = json_object();
    if (nrows > 0 && nrows == limit) {
        const char *host = ts_http_header(req, "Host");
        char *href = ts_asprintf("http://%s/v3/%s/volumes%s?limit=%lld&marker=%s", host ? host : "localhost",
                                 req->auth->project_id, detail ? "/detail" : "", (long long)limit,
                                 last_id);
        json_object_set_new(out, "volumes_links", json_pack("[{s:s, s:s}]", "href", href, "rel", "next"));
        free(href);
    }
    if (count >= 0) json_object_set_new(out, "count", json_integer(count));
    if (json_object_size(out) > 0) {
        struct ts_buf tail;
        ts_buf_init(&tail, (size_t)1 << 40);
        ts_volume_dump_json(&tail, out);
        ts_buf_append(&body, ",", 1);
        ts_buf_append(&body, ts_buf_cstr(&tail) + 1, tail.len - 1);
        ts_buf_free(&tail);
    } else {
        ts_buf_append(&body, "}", 1);
    }
    json_decref(out);
    ts_http_resp_body(resp, 200, "application/json", ts_buf_cstr(&body), body.len);
    ts_buf_free(&body);
out:
    ts_buf_free(&q.sql);
    ts_db_res_free(res);
    ts_db_res_free(mk);
    json_decref(mdf);
    return rc;
}

int ts_volume_h_list(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    return list_common(req, resp, false, err);
}

int ts_volume_h_detail(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    return list_common(req, resp, true, err);
}

int ts_volume_h_show(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    struct ts_db_res *r = NULL;
    if ((rc = ts_volume_get(svc, req, ts_http_param(req, "volume_id"), &r, err))) return rc;
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "volume", ts_volume_view(svc, req, r, 0, mv)));
    ts_db_res_free(r);
    return 0;
}

int ts_volume_h_update(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = ts_volume_check_writer(req, err))) return rc;
    const char *id = ts_http_param(req, "volume_id");
    struct ts_db_res *r = NULL;
    json_t *body = NULL, *v = NULL;
    if ((rc = ts_volume_get(svc, req, id, &r, err))) return rc;
    ts_db_res_free(r);
    r = NULL;
    if ((rc = ts_http_json_body(req, &body, err))) return rc;
    if ((rc = ts_json_body_object(body, "volume", &v, err))) return rc;
    static const char *const strs[] = {"name", "description", "display_name", "display_description", NULL};
    for (int i = 0; strs[i]; i++)
        if ((rc = check_str_field(v, strs[i], err))) return rc;
    char now[32];
    ts_volume_now(now);
    bool has_name = json_object_get(v, "name") || json_object_get(v, "display_name");
    bool has_desc = json_object_get(v, "description") || json_object_get(v, "display_description");
    const char *name = opt_str(v, "name", "display_name"),
               *desc = opt_str(v, "description", "display_description");
    if ((rc = ts_volume_check_text("name", name, 255, err))) return rc;
    if ((rc = ts_volume_check_text("description", desc, 255, err))) return rc;
    if (has_name && (rc = ts_db_exec(svc->db, "UPDATE volumes SET name = ?, updated_at = ? WHERE id = ?",
                                     TS_DB_ARGS(TS_DB_S(name), TS_DB_S(now), TS_DB_S(id)), NULL, err)))
        return rc;
    if (has_desc &&
        (rc = ts_db_exec(svc->db, "UPDATE volumes SET description = ?, updated_at = ? WHERE id = ?",
                         TS_DB_ARGS(TS_DB_S(desc), TS_DB_S(now), TS_DB_S(id)), NULL, err)))
        return rc;
    json_t *md = json_object_get(v, "metadata");
    if (md && (rc = ts_volume_metadata_set(svc, "volume_metadata", "volume_id", id, md, true, err)))
        return rc;
    if ((rc = ts_volume_get(svc, req, id, &r, err))) return rc;
    ts_http_resp_json(resp, 200,
                      json_pack("{s:o}", "volume", ts_volume_view_brief(ts_volume_view(svc, req, r, 0, mv))));
    ts_db_res_free(r);
    ts_volume_notify_volume(svc, "volume.update.end", id);
    return 0;
}

int ts_volume_h_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = ts_volume_check_writer(req, err))) return rc;
    const char *id = ts_http_param(req, "volume_id");
    struct ts_db_res *r = NULL, *snaps = NULL;
    if ((rc = ts_volume_get(svc, req, id, &r, err))) return rc;
    bool cascade = false, force = false;
    const char *c = ts_http_query(req, "cascade");
    if (c) ts_parse_bool(c, &cascade);
    const char *f = ts_http_query(req, "force");
    if (f && req->auth->is_admin) ts_parse_bool(f, &force);
    const char *status = ts_db_res_getn(r, 0, "status");
    const char *host = ts_db_res_getn(r, 0, "host");
    char host_copy[320];
    snprintf(host_copy, sizeof(host_copy), "%s", host ? host : "");
    if (ts_streq(ts_db_res_getn(r, 0, "attach_status"), "attached") ||
        (!force && !ts_volume_status_deletable(status))) {
        rc = ts_err_set(
            err, TS_EINVAL,
            "Invalid volume: Volume status must be available or error or error_restoring "
            "or error_extending or error_managing and must not be migrating, attached, belong to a group, "
            "have snapshots, awaiting a transfer, or be disassociated from snapshots after volume "
            "transfer.");
        goto out;
    }
    if ((rc = ts_db_exec(svc->db, "SELECT id, status FROM snapshots WHERE volume_id = ?",
                         TS_DB_ARGS(TS_DB_S(id)), &snaps, err)))
        goto out;
    if (snaps->nrows > 0 && !cascade) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid volume: Volume %s still has %d dependent snapshots.", id,
                        snaps->nrows);
        goto out;
    }
    for (int i = 0; i < snaps->nrows; i++) {
        const char *s = ts_db_res_get(snaps, i, 1);
        if (!ts_streq(s, "available") && !ts_streq(s, "error")) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid volume: Snapshot %s is in status %s.",
                            ts_db_res_get(snaps, i, 0), s);
            goto out;
        }
    }
    static const char *const from[] = {"available",       "error",          "error_restoring",
                                       "error_extending", "error_managing", NULL};
    static const char *const any[] = {
        "available", "error",     "error_restoring", "error_extending", "error_managing",
        "creating",  "deleting",  "error_deleting",  "extending",       "reserved",
        "attaching", "detaching", "maintenance",     "uploading",       "downloading",
        "in-use",    NULL};
    if ((rc = ts_volume_cas_status(svc, id, force ? any : from, "deleting",
                                   "Invalid volume: Volume status changed.", err)))
        goto out;
    for (int i = 0; i < snaps->nrows; i++) {
        const char *sid = ts_db_res_get(snaps, i, 0);
        ts_db_exec(svc->db, "UPDATE snapshots SET status = 'deleting' WHERE id = ?", TS_DB_ARGS(TS_DB_S(sid)),
                   NULL, NULL);
        if (host_copy[0])
            ts_volume_cast_manager(svc, host_copy, "delete_snapshot", json_pack("{s:s}", "snapshot_id", sid),
                                   NULL);
    }
    if (host_copy[0]) {
        struct ts_err e2 = {0};
        if (ts_volume_cast_manager(svc, host_copy, "delete_volume", json_pack("{s:s}", "volume_id", id),
                                   &e2) != 0)
            ts_volume_set_status(svc, id, "error_deleting", NULL);
    } else {
        /* never scheduled: nothing on any backend */
        ts_db_exec(svc->db, "DELETE FROM volume_metadata WHERE volume_id = ?", TS_DB_ARGS(TS_DB_S(id)), NULL,
                   NULL);
        ts_db_exec(svc->db, "DELETE FROM volumes WHERE id = ?", TS_DB_ARGS(TS_DB_S(id)), NULL, NULL);
        ts_bus_notify(svc->env->bus, svc->publisher, "volume.delete.end", "INFO",
                      json_pack("{s:s, s:s}", "volume_id", id, "status", "deleted"));
    }
    ts_http_resp_body(resp, 202, NULL, "", 0);
out:
    ts_db_res_free(r);
    ts_db_res_free(snaps);
    return rc;
}

int ts_volume_h_summary(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if (mv < 12) return ts_err_set(err, TS_ENOTFOUND, "The resource could not be found.");
    struct ts_db_res *r = NULL;
    bool all = false;
    const char *at = ts_http_query(req, "all_tenants");
    if (at && req->auth->is_admin) ts_parse_bool(at, &all);
    if (all)
        rc = ts_db_exec(svc->db, "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM volumes", TS_DB_NOARGS, &r,
                        err);
    else
        rc = ts_db_exec(svc->db, "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM volumes WHERE project_id = ?",
                        TS_DB_ARGS(TS_DB_S(req->auth->project_id)), &r, err);
    if (rc) return rc;
    json_t *s = json_pack("{s:I, s:I}", "total_count", (json_int_t)ts_db_res_int(r, 0, 0, 0), "total_size",
                          (json_int_t)ts_db_res_int(r, 0, 1, 0));
    if (mv >= 36) json_object_set_new(s, "metadata", json_object());
    ts_db_res_free(r);
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "volume-summary", s));
    return 0;
}

int ts_volume_h_metadata(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    const char *id = ts_http_param(req, "volume_id");
    struct ts_db_res *r = NULL;
    if ((rc = ts_volume_get(svc, req, id, &r, err))) return rc;
    ts_db_res_free(r);
    return ts_volume_metadata_handle(svc, req, resp, "volume_metadata", "volume_id", id,
                                     ts_http_param(req, "key"), err);
}
