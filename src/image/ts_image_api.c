/*
 * ts_image_api.c: the /v2/images resource: create, list (filters, sorting, keyset
 * pagination with a constant number of SQL statements), show, JSON-patch update,
 * delete, tags, deactivate/reactivate. Image data lives in ts_image_data.c, members in
 * ts_image_members.c.
 */
#include "image/ts_image_int.h"

#include <stdlib.h>
#include <string.h>

#include "json/ts_json.h"

#define MAX_PROPERTIES 128
#define MAX_TAGS 128
#define LIMIT_DEFAULT 25
#define LIMIT_MAX 1000

static struct ts_image_svc *svc_of(struct ts_http_req *req) { return req->svc; }

static int no_readers(struct ts_http_req *req, struct ts_err *err)
{
    if (req->auth->is_reader_only)
        return ts_err_set(err, TS_EFORBIDDEN, "You are not authorized to complete this action.");
    return 0;
}

/* Writes view (base columns, properties, tags) inside tx. insert: a new row. */
static int save_view_tx(struct ts_db_conn *tx, const json_t *view, bool insert, int64_t now, struct ts_err *err)
{
    const char *id = ts_image_vs(view, "id");
    int rc;
    json_t *tags = json_object_get(view, "tags");
    int nprops = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)view, k, v) {
        if (!ts_image_attr_base(k) && !ts_image_attr_readonly(k)) nprops++;
    }
    if (nprops > MAX_PROPERTIES)
        return ts_err_set(err, TS_ETOOBIG, "Attempted: %d, Maximum: %d. Maximum number of properties exceeded",
                          nprops, MAX_PROPERTIES);
    if (json_array_size(tags) > MAX_TAGS)
        return ts_err_set(err, TS_ETOOBIG, "Attempted: %zu, Maximum: %d. Maximum number of tags exceeded",
                          json_array_size(tags), MAX_TAGS);
    struct ts_db_val vals[] = {
        TS_DB_S(ts_image_vs(view, "name")),
        TS_DB_S(ts_image_vs(view, "visibility")),
        TS_DB_S(ts_image_vs(view, "owner")),
        TS_DB_B(json_is_true(json_object_get(view, "protected"))),
        TS_DB_B(json_is_true(json_object_get(view, "os_hidden"))),
        TS_DB_S(ts_image_vs(view, "disk_format")),
        TS_DB_S(ts_image_vs(view, "container_format")),
        TS_DB_I(json_integer_value(json_object_get(view, "min_disk"))),
        TS_DB_I(json_integer_value(json_object_get(view, "min_ram"))),
        TS_DB_I(now),
        TS_DB_S(id),
    };
    if (insert) {
        rc = ts_db_tx_exec(tx,
                           "INSERT INTO images (name, visibility, owner, protected, os_hidden, disk_format, "
                           "container_format, min_disk, min_ram, updated_at, id, status, created_at) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?)",
                           (const struct ts_db_val[]){vals[0], vals[1], vals[2], vals[3], vals[4], vals[5], vals[6],
                                                      vals[7], vals[8], vals[9], vals[10], TS_DB_I(now)},
                           12, NULL, err);
        if (rc == -TS_ECONFLICT) return ts_err_set(err, TS_ECONFLICT, "Image with identifier %s already exists!", id);
        if (rc) return rc;
    } else {
        rc = ts_db_tx_exec(tx,
                           "UPDATE images SET name = ?, visibility = ?, owner = ?, protected = ?, os_hidden = ?, "
                           "disk_format = ?, container_format = ?, min_disk = ?, min_ram = ?, updated_at = ? "
                           "WHERE id = ?",
                           vals, 11, NULL, err);
        if (rc) return rc;
        /* os_glance_* properties belong to a running import: an update keeps the stored ones */
        rc = ts_db_tx_exec(tx, "DELETE FROM image_properties WHERE image_id = ? AND substr(name, 1, 9) <> 'os_glance'",
                           TS_DB_ARGS(TS_DB_S(id)), NULL, err);
        if (rc) return rc;
        rc = ts_db_tx_exec(tx, "DELETE FROM image_tags WHERE image_id = ?", TS_DB_ARGS(TS_DB_S(id)), NULL, err);
        if (rc) return rc;
    }
    json_object_foreach((json_t *)view, k, v) {
        if (ts_image_attr_base(k) || ts_image_attr_readonly(k) || (!insert && ts_startswith(k, "os_glance"))) continue;
        rc = ts_db_tx_exec(tx, "INSERT INTO image_properties (image_id, name, value) VALUES (?, ?, ?)",
                           TS_DB_ARGS(TS_DB_S(id), TS_DB_S(k), TS_DB_S(json_string_value(v))), NULL, err);
        if (rc) return rc;
    }
    size_t i;
    json_array_foreach(tags, i, v) {
        rc = ts_db_tx_exec(tx,
                           "INSERT INTO image_tags (image_id, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
                           TS_DB_ARGS(TS_DB_S(id), TS_DB_S(json_string_value(v))), NULL, err);
        if (rc) return rc;
    }
    return 0;
}

static int respond_image(struct ts_image_svc *svc, struct ts_http_resp *resp, int status, const char *id,
                         const char *event, struct ts_err *err)
{
    json_t *view = NULL;
    int rc = ts_image_load(svc, id, &view, err);
    if (rc) return rc;
    if (event) ts_image_notify(svc, event, view);
    ts_http_resp_json(resp, status, view);
    return 0;
}

int ts_image_h_create(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_image_svc *svc = svc_of(req);
    json_t *body = NULL;
    int rc = ts_http_json_body(req, &body, err);
    if (rc) return rc;
    if (!json_is_object(body)) return ts_err_set(err, TS_EINVAL, "Body expected in request.");
    static const char *const disallowed[] = {"direct_url", "self", "file", "schema", "stores"};
    for (size_t i = 0; i < sizeof(disallowed) / sizeof(disallowed[0]); i++)
        if (json_object_get(body, disallowed[i]))
            return ts_err_set(err, TS_EFORBIDDEN, "Attribute '%s' is read-only.", disallowed[i]);
    rc = ts_image_view_validate(body, true, err);
    if (rc) return rc;
    rc = no_readers(req, err);
    if (rc) return rc;
    const struct ts_auth *a = req->auth;
    const char *vis = json_string_value(json_object_get(body, "visibility"));
    if (ts_streq(vis, "public") && !a->is_admin)
        return ts_err_set(err, TS_EFORBIDDEN, "You are not authorized to complete publicize_image action.");
    const char *owner = ts_json_str(body, "owner", NULL);
    if (owner && !ts_streq(owner, a->project_id) && !a->is_admin)
        return ts_err_set(err, TS_EFORBIDDEN, "You are not permitted to create images owned by '%s'.", owner);
    if (!owner) owner = a->project_id[0] ? a->project_id : NULL;

    json_t *view = json_deep_copy(body);
    char idbuf[TS_UUID_LEN + 1];
    const char *id = ts_json_str(body, "id", NULL);
    if (!id) {
        ts_uuid(idbuf);
        id = idbuf;
    }
    json_object_set_new(view, "id", json_string(id));
    ts_json_set_str(view, "owner", owner);
    if (!json_object_get(view, "visibility")) json_object_set_new(view, "visibility", json_string("shared"));
    if (!json_object_get(view, "tags")) json_object_set_new(view, "tags", json_array());
    if (!json_object_get(view, "min_disk")) json_object_set_new(view, "min_disk", json_integer(0));
    if (!json_object_get(view, "min_ram")) json_object_set_new(view, "min_ram", json_integer(0));

    struct ts_db_conn *tx = NULL;
    rc = ts_db_begin(svc->db, &tx, err);
    if (rc) goto out;
    if (svc->quota_images > 0 && owner) {
        struct ts_db_res *res = NULL;
        rc = ts_db_tx_exec(tx, "SELECT COUNT(*) FROM images WHERE owner = ?", TS_DB_ARGS(TS_DB_S(owner)), &res, err);
        if (rc) goto out;
        int64_t n = ts_db_res_int(res, 0, 0, 0);
        ts_db_res_free(res);
        if (n >= svc->quota_images) {
            rc = ts_err_set(err, TS_ETOOBIG,
                            "Maximum number of images exceeded: quota image_count_total is %lld, %lld in use",
                            (long long)svc->quota_images, (long long)n);
            goto out;
        }
    }
    rc = save_view_tx(tx, view, true, ts_image_now_us(), err);
    if (rc) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    char *loc = ts_pool_printf(req->pool, "/v2/images/%s", id);
    ts_http_resp_header(resp, "Location", loc);
    ts_http_resp_header(resp, "OpenStack-image-import-methods", "glance-direct");
    rc = respond_image(svc, resp, 201, id, "image.create", err);
out:
    ts_db_rollback(tx);
    json_decref(view);
    return rc;
}

int ts_image_h_show(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    json_t *view = NULL;
    int rc = ts_image_get_visible(svc_of(req), req, ts_http_param(req, "image_id"), &view, err);
    if (rc) return rc;
    ts_http_resp_json(resp, 200, view);
    return 0;
}

int ts_image_h_update(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_image_svc *svc = svc_of(req);
    const char *ct = ts_http_header(req, "Content-Type");
    int draft = 0;
    if (ct) {
        size_t n = strcspn(ct, ";");
        while (n > 0 && ct[n - 1] == ' ') n--;
        if (n == strlen("application/openstack-images-v2.1-json-patch") &&
            strncmp(ct, "application/openstack-images-v2.1-json-patch", n) == 0)
            draft = 10;
        else if (n == strlen("application/openstack-images-v2.0-json-patch") &&
                 strncmp(ct, "application/openstack-images-v2.0-json-patch", n) == 0)
            draft = 4;
    }
    if (!draft) {
        ts_http_resp_header(resp, "Accept-Patch",
                            "application/openstack-images-v2.0-json-patch, application/openstack-images-v2.1-json-patch");
        return ts_err_set(err, TS_EMEDIA, "The request has an unsupported media type.");
    }
    json_t *ops = NULL;
    int rc = ts_http_json_body(req, &ops, err);
    if (rc) return rc;
    if (!json_is_array(ops)) return ts_err_set(err, TS_EINVAL, "Request body must be a JSON array of operation objects.");
    json_t *view = NULL, *orig = NULL;
    const char *id = ts_http_param(req, "image_id");
    rc = ts_image_get_visible(svc, req, id, &orig, err);
    if (rc) return rc;
    if (!ts_image_can_modify(req, orig)) {
        rc = ts_err_set(err, TS_EFORBIDDEN, "You are not permitted to modify this image.");
        goto out;
    }
    view = json_deep_copy(orig);
    rc = ts_image_patch_apply(view, ops, draft, err);
    if (rc) goto out;
    const struct ts_auth *a = req->auth;
    const char *ov = ts_image_vs(orig, "visibility"), *nv = ts_image_vs(view, "visibility");
    if (!ts_streq(ov, nv) && ts_streq(nv, "public") && !a->is_admin) {
        rc = ts_err_set(err, TS_EFORBIDDEN, "You are not authorized to complete publicize_image action.");
        goto out;
    }
    if (!ts_streq(ts_image_vs(orig, "owner"), ts_image_vs(view, "owner")) && !a->is_admin) {
        rc = ts_err_set(err, TS_EFORBIDDEN, "Owner can't be updated by non admin.");
        goto out;
    }
    const char *status = ts_image_vs(orig, "status");
    static const char *const fmts[] = {"disk_format", "container_format"};
    for (int i = 0; i < 2; i++) {
        if (!ts_streq(status, "queued") && !ts_streq(ts_image_vs(orig, fmts[i]), ts_image_vs(view, fmts[i]))) {
            rc = ts_err_set(err, TS_EFORBIDDEN, "Attribute %s can be only replaced for a queued image.", fmts[i]);
            goto out;
        }
    }
    struct ts_db_conn *tx = NULL;
    rc = ts_db_begin(svc->db, &tx, err);
    if (rc) goto out;
    rc = save_view_tx(tx, view, false, ts_image_now_us(), err);
    if (rc) {
        ts_db_rollback(tx);
        goto out;
    }
    rc = ts_db_commit(tx, err);
    if (rc) goto out;
    rc = respond_image(svc, resp, 200, id, "image.update", err);
out:
    json_decref(orig);
    json_decref(view);
    return rc;
}

int ts_image_h_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_image_svc *svc = svc_of(req);
    json_t *view = NULL;
    const char *id = ts_http_param(req, "image_id");
    int rc = ts_image_get_visible(svc, req, id, &view, err);
    if (rc) return rc;
    if (!ts_image_can_modify(req, view)) {
        rc = ts_err_set(err, TS_EFORBIDDEN, "You are not permitted to delete this image.");
        goto out;
    }
    if (json_is_true(json_object_get(view, "protected"))) {
        rc = ts_err_set(err, TS_EFORBIDDEN, "Image %s is protected and cannot be deleted.", id);
        goto out;
    }
    struct ts_db_conn *tx = NULL;
    rc = ts_db_begin(svc->db, &tx, err);
    if (rc) goto out;
    static const char *const stmts[] = {
        "DELETE FROM image_properties WHERE image_id = ?", "DELETE FROM image_tags WHERE image_id = ?",
        "DELETE FROM image_members WHERE image_id = ?", "DELETE FROM images WHERE id = ? AND protected = 0"};
    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]) && rc == 0; i++)
        rc = ts_db_tx_exec(tx, stmts[i], TS_DB_ARGS(TS_DB_S(id)), NULL, err);
    if (rc) {
        ts_db_rollback(tx);
        goto out;
    }
    rc = ts_db_commit(tx, err);
    if (rc) goto out;
    /* every enabled store: a queued image may hold the leftovers of a crashed upload */
    struct ts_err derr = {0};
    ts_image_store_delete(svc->file, id, NULL);
    if (svc->swift && ts_image_store_delete(svc->swift, id, &derr) != 0)
        ts_warn("image", "image %s deleted but its swift data stays: %s", id, derr.msg);
    ts_image_store_delete(svc->staging, id, NULL);
    json_object_set_new(view, "status", json_string("deleted"));
    ts_image_notify(svc, "image.delete", view);
    ts_http_resp_no_body(resp, 204, 0);
out:
    json_decref(view);
    return rc;
}

/* ---- tags ------------------------------------------------------------------------------ */

static int tag_prepare(struct ts_http_req *req, json_t **view, struct ts_err *err)
{
    int rc = ts_image_get_visible(svc_of(req), req, ts_http_param(req, "image_id"), view, err);
    if (rc) return rc;
    if (!ts_image_can_modify(req, *view)) {
        json_decref(*view);
        *view = NULL;
        return ts_err_set(err, TS_EFORBIDDEN, "You are not permitted to modify tags on this image.");
    }
    return 0;
}

int ts_image_h_tag_add(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_image_svc *svc = svc_of(req);
    const char *tag = ts_http_param(req, "tag");
    if (!tag || !*tag || strlen(tag) > 255 || !ts_utf8_valid(tag, strlen(tag)))
        return ts_err_set(err, TS_EINVAL, "Provided object does not match schema 'image': tag is invalid");
    json_t *view = NULL;
    int rc = tag_prepare(req, &view, err);
    if (rc) return rc;
    const char *id = ts_image_vs(view, "id");
    bool present = false;
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(view, "tags"), i, t) present |= ts_streq(json_string_value(t), tag);
    if (!present && json_array_size(json_object_get(view, "tags")) >= MAX_TAGS) {
        rc = ts_err_set(err, TS_ETOOBIG, "Maximum number of tags exceeded");
        goto out;
    }
    rc = ts_db_exec(svc->db, "INSERT INTO image_tags (image_id, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    TS_DB_ARGS(TS_DB_S(id), TS_DB_S(tag)), NULL, err);
    if (rc) goto out;
    rc = ts_db_exec(svc->db, "UPDATE images SET updated_at = ? WHERE id = ?",
                    TS_DB_ARGS(TS_DB_I(ts_image_now_us()), TS_DB_S(id)), NULL, err);
    if (rc) goto out;
    if (!present) json_array_append_new(json_object_get(view, "tags"), json_string(tag));
    ts_image_notify(svc, "image.update", view);
    ts_http_resp_no_body(resp, 204, 0);
out:
    json_decref(view);
    return rc;
}

int ts_image_h_tag_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_image_svc *svc = svc_of(req);
    const char *tag = ts_http_param(req, "tag");
    json_t *view = NULL;
    int rc = tag_prepare(req, &view, err);
    if (rc) return rc;
    struct ts_db_res *res = NULL;
    const char *id = ts_image_vs(view, "id");
    rc = ts_db_exec(svc->db, "DELETE FROM image_tags WHERE image_id = ? AND value = ?",
                    TS_DB_ARGS(TS_DB_S(id), TS_DB_S(tag)), &res, err);
    if (rc) goto out;
    if (res->changes == 0) {
        rc = ts_err_set(err, TS_ENOTFOUND, "Tag %s not found.", tag ? tag : "");
        goto out;
    }
    rc = ts_db_exec(svc->db, "UPDATE images SET updated_at = ? WHERE id = ?",
                    TS_DB_ARGS(TS_DB_I(ts_image_now_us()), TS_DB_S(id)), NULL, err);
    if (rc) goto out;
    ts_image_notify(svc, "image.update", view);
    ts_http_resp_no_body(resp, 204, 0);
out:
    ts_db_res_free(res);
    json_decref(view);
    return rc;
}

/* ---- deactivate / reactivate ----------------------------------------------------------- */

static int set_active_state(struct ts_http_req *req, struct ts_http_resp *resp, bool deactivate, struct ts_err *err)
{
    struct ts_image_svc *svc = svc_of(req);
    json_t *view = NULL;
    const char *id = ts_http_param(req, "image_id");
    int rc = ts_image_get_visible(svc, req, id, &view, err);
    if (rc) return rc;
    if (!ts_image_can_modify(req, view)) {
        rc = ts_err_set(err, TS_EFORBIDDEN, "You are not authorized to complete %s action.",
                        deactivate ? "deactivate" : "reactivate");
        goto out;
    }
    const char *status = ts_image_vs(view, "status");
    const char *from = deactivate ? "active" : "deactivated", *to = deactivate ? "deactivated" : "active";
    if (ts_streq(status, to)) {
        ts_http_resp_no_body(resp, 204, 0);
        goto out;
    }
    if (!ts_streq(status, from)) {
        rc = ts_err_set(err, TS_EFORBIDDEN, "Not allowed to %s image in status '%s'",
                        deactivate ? "deactivate" : "reactivate", status);
        goto out;
    }
    rc = ts_db_exec(svc->db, "UPDATE images SET status = ?, updated_at = ? WHERE id = ? AND status = ?",
                    TS_DB_ARGS(TS_DB_S(to), TS_DB_I(ts_image_now_us()), TS_DB_S(id), TS_DB_S(from)), NULL, err);
    if (rc) goto out;
    json_object_set_new(view, "status", json_string(to));
    ts_image_notify(svc, deactivate ? "image.deactivate" : "image.reactivate", view);
    ts_http_resp_no_body(resp, 204, 0);
out:
    json_decref(view);
    return rc;
}

int ts_image_h_deactivate(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    return set_active_state(req, resp, true, err);
}

int ts_image_h_reactivate(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    return set_active_state(req, resp, false, err);
}

/* ---- list ------------------------------------------------------------------------------ */

struct sqlq {
    struct ts_pool *pool;
    struct ts_buf sql;
    struct ts_db_val *args;
    int n, cap;
};

static void q_arg(struct sqlq *q, struct ts_db_val v)
{
    if (q->n == q->cap) {
        int cap = q->cap ? q->cap * 2 : 32;
        struct ts_db_val *a = ts_pool_alloc(q->pool, (size_t)cap * sizeof(*a));
        if (q->n) memcpy(a, q->args, (size_t)q->n * sizeof(*a));
        q->args = a;
        q->cap = cap;
    }
    q->args[q->n++] = v;
}

static int q_sql(struct sqlq *q, const char *s, struct ts_err *err)
{
    if (ts_buf_appends(&q->sql, s) != 0) return ts_err_set(err, TS_ETOOBIG, "Query too long");
    return 0;
}

/* Sort column expressions: NULLs coalesced so that keyset comparisons stay total. */
static const char *sort_expr(const char *key)
{
    if (ts_streq(key, "name")) return "COALESCE(name, '')";
    if (ts_streq(key, "container_format")) return "COALESCE(container_format, '')";
    if (ts_streq(key, "disk_format")) return "COALESCE(disk_format, '')";
    if (ts_streq(key, "size")) return "COALESCE(size, -1)";
    return key;   /* status, id, created_at, updated_at: never NULL */
}

static bool sort_numeric(const char *key)
{
    return ts_streq(key, "size") || ts_streq(key, "created_at") || ts_streq(key, "updated_at");
}

struct list_params {
    struct ts_http_req *req;
    struct sqlq *q;
    struct ts_err *err;
    int rc;
    bool have_hidden;
};

static const char *const reserved_params[] = {"limit", "marker", "sort", "sort_key", "sort_dir", "member_status",
                                              "visibility", "tag", NULL};

static void add_in_filter(struct list_params *lp, const char *col, const char *value)
{
    const char **vals = NULL;
    int n = ts_image_filter_in(lp->req->pool, value, &vals, lp->err);
    if (n < 0) {
        lp->rc = n;
        return;
    }
    lp->rc = q_sql(lp->q, " AND ", lp->err) ?: q_sql(lp->q, col, lp->err) ?: q_sql(lp->q, " IN (", lp->err);
    for (int i = 0; i < n && !lp->rc; i++) {
        lp->rc = q_sql(lp->q, i ? ", ?" : "?", lp->err);
        q_arg(lp->q, TS_DB_S(vals[i]));
    }
    if (!lp->rc) lp->rc = q_sql(lp->q, ")", lp->err);
}

static void list_param(void *ctx, const char *name, const char *value)
{
    struct list_params *lp = ctx;
    if (lp->rc) return;
    for (int i = 0; reserved_params[i]; i++)
        if (ts_streq(name, reserved_params[i])) return;
    struct sqlq *q = lp->q;
    struct ts_err *err = lp->err;
    if (ts_streq(name, "changes-since")) {
        lp->rc = ts_err_set(err, TS_EINVAL, "The \"changes-since\" filter is no longer available on v2.");
    } else if (ts_streq(name, "name") || ts_streq(name, "status") || ts_streq(name, "disk_format") ||
               ts_streq(name, "container_format") || ts_streq(name, "id")) {
        add_in_filter(lp, name, value);
    } else if (ts_streq(name, "size")) {
        int64_t v;
        if (ts_parse_int64(value, &v) != 0) {
            lp->rc = ts_err_set(err, TS_EINVAL, "Invalid value for size: %s", value);
            return;
        }
        lp->rc = q_sql(q, " AND size = ?", err);
        q_arg(q, TS_DB_I(v));
    } else if (ts_streq(name, "owner") || ts_streq(name, "checksum") || ts_streq(name, "os_hash_value")) {
        lp->rc = q_sql(q, " AND ", err) ?: q_sql(q, name, err) ?: q_sql(q, " = ?", err);
        q_arg(q, TS_DB_S(value));
    } else if (ts_streq(name, "protected") || ts_streq(name, "os_hidden")) {
        bool b;
        if (!ts_streq(value, "true") && !ts_streq(value, "false") && ts_parse_bool(value, &b) != 0) {
            lp->rc = ts_err_set(err, TS_EINVAL, "Invalid value for %s: %s", name, value);
            return;
        }
        ts_parse_bool(value, &b);
        if (ts_streq(name, "os_hidden")) lp->have_hidden = true;
        lp->rc = q_sql(q, " AND ", err) ?: q_sql(q, name, err) ?: q_sql(q, " = ?", err);
        q_arg(q, TS_DB_B(b));
    } else if (ts_streq(name, "size_min") || ts_streq(name, "size_max")) {
        int64_t v;
        if (ts_parse_int64(value, &v) != 0) {
            lp->rc = ts_err_set(err, TS_EINVAL, "Unable to filter on a range with a non-numeric value.");
            return;
        }
        lp->rc = q_sql(q, ts_streq(name, "size_min") ? " AND size >= ?" : " AND size <= ?", err);
        q_arg(q, TS_DB_I(v));
    } else if (ts_streq(name, "created_at") || ts_streq(name, "updated_at")) {
        const char *op;
        double t;
        lp->rc = ts_image_filter_time(value, &op, &t, err);
        if (lp->rc) return;
        /* stored with microseconds, shown in whole seconds: compare on whole seconds */
        lp->rc = q_sql(q, " AND (", err) ?: q_sql(q, name, err) ?: q_sql(q, " / 1000000) ", err) ?:
                 q_sql(q, op, err) ?: q_sql(q, " ?", err);
        q_arg(q, TS_DB_I((int64_t)t));
    } else {
        if (strlen(name) > 255) {
            lp->rc = ts_err_set(err, TS_EINVAL, "Invalid property name");
            return;
        }
        lp->rc = q_sql(q, " AND id IN (SELECT image_id FROM image_properties WHERE name = ? AND value = ?)", err);
        q_arg(q, TS_DB_S(name));
        q_arg(q, TS_DB_S(value));
    }
}

static void append_query_arg(void *ctx, const char *name, const char *value)
{
    void **c = ctx;
    struct ts_buf *b = c[0];
    struct ts_pool *pool = c[1];
    if (ts_streq(name, "marker")) return;
    ts_buf_printf(b, "%s%s=%s", b->len ? "&" : "", ts_url_encode(pool, name, false), ts_url_encode(pool, value, false));
}

int ts_image_h_list(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_image_svc *svc = svc_of(req);
    const struct ts_auth *a = req->auth;
    struct sqlq q = {.pool = req->pool};
    struct ts_db_res *mres = NULL;
    struct ts_buf qs;
    ts_buf_init(&q.sql, 1 << 20);
    ts_buf_init(&qs, 1 << 16);
    int rc = 0;
    if (ts_endswith(req->raw_path, "/images/")) {   /* GET /v2/images/ : an empty image id */
        rc = ts_err_set(err, TS_ENOTFOUND, "The resource could not be found.");
        goto out;
    }
    /* the same page for the same generation, caller and query: from the cache */
    int64_t gen = ts_image_list_gen(svc);
    char *key = NULL;
    if (gen >= 0) {
        key = ts_pool_printf(req->pool, "%c%s?%s", a->is_admin ? 'A' : 'P', a->project_id, req->query ? req->query : "");
        if (ts_image_list_cache_get(svc, gen, key, resp)) goto out;
    }

    /* limit, marker, member_status, visibility, sort */
    int64_t limit = LIMIT_DEFAULT;
    const char *ls = ts_http_query(req, "limit");
    if (ls) {
        if (ts_parse_int64(ls, &limit) != 0) {
            rc = ts_err_set(err, TS_EINVAL, "limit param must be an integer");
            goto out;
        }
        if (limit < 0) {
            rc = ts_err_set(err, TS_EINVAL, "limit param must be positive");
            goto out;
        }
        if (limit > LIMIT_MAX) limit = LIMIT_MAX;
    }
    const char *member_status = ts_http_query(req, "member_status");
    if (!member_status) member_status = "accepted";
    if (!ts_streq(member_status, "pending") && !ts_streq(member_status, "accepted") &&
        !ts_streq(member_status, "rejected") && !ts_streq(member_status, "all")) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid status: %s", member_status);
        goto out;
    }
    const char *vis = ts_http_query(req, "visibility");
    if (vis && !ts_streq(vis, "community") && !ts_streq(vis, "public") && !ts_streq(vis, "private") &&
        !ts_streq(vis, "shared") && !ts_streq(vis, "all")) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid visibility value: %s", vis);
        goto out;
    }
    const char **sort_keys = NULL, **sort_dirs = NULL;
    int nk = ts_http_query_all(req, "sort_key", &sort_keys);
    int nd = ts_http_query_all(req, "sort_dir", &sort_dirs);
    struct ts_image_sort sort;
    rc = ts_image_sort_parse(ts_http_query(req, "sort"), sort_keys, nk, sort_dirs, nd, &sort, err);
    if (rc) goto out;
    bool has_id = false;
    for (int i = 0; i < sort.n; i++) has_id |= ts_streq(sort.keys[i], "id");
    if (!has_id && sort.n < TS_IMAGE_SORT_MAX) {
        sort.keys[sort.n] = "id";
        sort.desc[sort.n] = sort.desc[sort.n - 1];
        sort.n++;
    }

    rc = q_sql(&q, "SELECT " TS_IMAGE_COLS " FROM images WHERE 1 = 1", err);
    if (rc) goto out;
    const char *project = a->project_id;
    if (!a->is_admin) {
        rc = q_sql(&q, " AND (visibility IN ('public', 'community') OR owner = ? OR (visibility = 'shared' AND id IN "
                       "(SELECT image_id FROM image_members WHERE member = ?",
                   err);
        q_arg(&q, TS_DB_S(project));
        q_arg(&q, TS_DB_S(project));
        if (!rc && !ts_streq(member_status, "all")) {
            rc = q_sql(&q, " AND status = ?", err);
            q_arg(&q, TS_DB_S(member_status));
        }
        if (!rc) rc = q_sql(&q, ")))", err);
    }
    if (!rc && vis && !ts_streq(vis, "all")) {
        rc = q_sql(&q, " AND visibility = ?", err);
        q_arg(&q, TS_DB_S(vis));
    } else if (!rc && !vis) {
        rc = q_sql(&q, " AND (owner = ? OR visibility <> 'community')", err);
        q_arg(&q, TS_DB_S(project));
    }
    if (rc) goto out;
    const char **tag_vals = NULL;
    int ntags = ts_http_query_all(req, "tag", &tag_vals);
    for (int i = 0; i < ntags && !rc; i++) {
        rc = q_sql(&q, " AND id IN (SELECT image_id FROM image_tags WHERE value = ?)", err);
        q_arg(&q, TS_DB_S(tag_vals[i]));
    }
    if (rc) goto out;
    struct list_params lp = {.req = req, .q = &q, .err = err};
    ts_http_query_each(req, list_param, &lp);
    rc = lp.rc;
    if (rc) goto out;
    if (!lp.have_hidden) rc = q_sql(&q, " AND os_hidden = 0", err);
    if (rc) goto out;

    const char *marker = ts_http_query(req, "marker");
    if (marker) {
        json_t *mview = NULL;
        rc = ts_image_get_visible(svc, req, marker, &mview, err);
        json_decref(mview);
        if (rc) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid marker. Image %s could not be found.", marker);
            goto out;
        }
        struct ts_buf ms;
        ts_buf_init(&ms, 4096);
        ts_buf_appends(&ms, "SELECT ");
        for (int i = 0; i < sort.n; i++) ts_buf_printf(&ms, "%s%s", i ? ", " : "", sort_expr(sort.keys[i]));
        ts_buf_appends(&ms, " FROM images WHERE id = ?");
        rc = ts_db_exec(svc->db, ts_buf_cstr(&ms), TS_DB_ARGS(TS_DB_S(marker)), &mres, err);
        ts_buf_free(&ms);
        if (rc) goto out;
        if (mres->nrows == 0) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid marker. Image %s could not be found.", marker);
            goto out;
        }
        /* (k1 > m1) OR (k1 = m1 AND k2 > m2) OR ... with each key's direction */
        rc = q_sql(&q, " AND (", err);
        for (int i = 0; i < sort.n && !rc; i++) {
            rc = q_sql(&q, i ? " OR (" : "(", err);
            for (int j = 0; j <= i && !rc; j++) {
                const char *mv = ts_db_res_get(mres, 0, j);
                struct ts_db_val v = TS_DB_S(mv ? mv : "");
                if (sort_numeric(sort.keys[j])) {
                    int64_t iv = -1;
                    if (mv) ts_parse_int64(mv, &iv);
                    v = TS_DB_I(iv);
                }
                const char *op = j < i ? " = ?" : (sort.desc[j] ? " < ?" : " > ?");
                rc = q_sql(&q, j ? " AND " : "", err) ?: q_sql(&q, sort_expr(sort.keys[j]), err) ?: q_sql(&q, op, err);
                q_arg(&q, v);
            }
            if (!rc) rc = q_sql(&q, ")", err);
        }
        if (!rc) rc = q_sql(&q, ")", err);
        if (rc) goto out;
    }
    rc = q_sql(&q, " ORDER BY ", err);
    for (int i = 0; i < sort.n && !rc; i++) {
        rc = q_sql(&q, i ? ", " : "", err) ?: q_sql(&q, sort_expr(sort.keys[i]), err) ?:
             q_sql(&q, sort.desc[i] ? " DESC" : " ASC", err);
    }
    if (rc) goto out;
    rc = q_sql(&q, " LIMIT ?", err);
    q_arg(&q, TS_DB_I(limit));
    if (rc) goto out;
    void *ctx[2] = {&qs, req->pool};
    ts_http_query_each(req, append_query_arg, ctx);
    char *first = qs.len ? ts_pool_printf(req->pool, "/v2/images?%s", ts_buf_cstr(&qs)) : "/v2/images";
    char *next = ts_pool_printf(req->pool, "/v2/images?%s%smarker=", qs.len ? ts_buf_cstr(&qs) : "", qs.len ? "&" : "");
    /* the page, its properties and tags, and the body straight from the rows
     * (ts_image_list.c): a 1,000-image page is ~2.5 MB */
    struct ts_buf body;
    ts_buf_init(&body, (size_t)64 << 20);
    rc = ts_image_list_page(svc, ts_buf_cstr(&q.sql), q.args, q.n, limit, first, next, &body, err);
    if (rc == 0) {
        ts_http_resp_body(resp, 200, "application/json", ts_buf_cstr(&body), body.len);
        /* cached only when no write committed while the page was read */
        if (gen >= 0 && ts_image_list_gen(svc) == gen) ts_image_list_cache_put(svc, gen, key, body.data, body.len);
    }
    ts_buf_free(&body);
out:
    ts_db_res_free(mres);
    ts_buf_free(&q.sql);
    ts_buf_free(&qs);
    return rc;
}
