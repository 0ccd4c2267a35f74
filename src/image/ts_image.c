/*
 * ts_image.c: the image service's life cycle (init: defaults, database and migrations;
 * start: stores, crash recovery, HTTP server; stop), its route table, version discovery,
 * /v2/schemas and /v2/info, and the helpers every handler shares: loading an image with
 * its properties and tags, Glance's visibility rules, and notifications.
 */
#include "image/ts_image_int.h"

#include <stdlib.h>
#include <string.h>

#include "json/ts_json.h"

static const struct ts_db_migration migrations[] = {
    {1,
     "CREATE TABLE images ("
     " id TEXT PRIMARY KEY, name TEXT, status TEXT NOT NULL, visibility TEXT NOT NULL, owner TEXT,"
     " protected BIGINT NOT NULL DEFAULT 0, os_hidden BIGINT NOT NULL DEFAULT 0,"
     " disk_format TEXT, container_format TEXT, min_disk BIGINT NOT NULL DEFAULT 0,"
     " min_ram BIGINT NOT NULL DEFAULT 0, size BIGINT, virtual_size BIGINT, checksum TEXT,"
     " os_hash_algo TEXT, os_hash_value TEXT, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,"
     " staged_size BIGINT);"
     "CREATE INDEX images_owner_idx ON images (owner);"
     "CREATE INDEX images_created_idx ON images (created_at);"
     "CREATE TABLE image_properties (image_id TEXT NOT NULL, name TEXT NOT NULL, value TEXT,"
     " PRIMARY KEY (image_id, name));"
     "CREATE TABLE image_tags (image_id TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (image_id, value));"
     "CREATE INDEX image_tags_value_idx ON image_tags (value);"
     "CREATE TABLE image_members (image_id TEXT NOT NULL, member TEXT NOT NULL, status TEXT NOT NULL,"
     " created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, PRIMARY KEY (image_id, member));"
     "CREATE INDEX image_members_member_idx ON image_members (member)"},
    /* which store holds the data: NULL = file (images from before the swift store) */
    {2, "ALTER TABLE images ADD COLUMN store TEXT"},
    /* the default list order (created_at desc, id desc) straight from an index, no sort */
    {3, "CREATE INDEX images_created_id_idx ON images (created_at, id);"
        "DROP INDEX images_created_idx"},
    /* the list cache's generation, bumped by triggers on every write (ts_image_list.c) */
    {4, "CREATE TABLE image_list_gen (n BIGINT NOT NULL);"
        "INSERT INTO image_list_gen (n) VALUES (0)"},
};

int64_t ts_image_now_us(void) { return (int64_t)(ts_now() * 1e6); }

const char *ts_image_vs(const json_t *view, const char *key) { return json_string_value(json_object_get(view, key)); }

static void iso_us(const char *us_text, char out[32])
{
    int64_t us = 0;
    if (!us_text || ts_parse_int64(us_text, &us) != 0) us = 0;
    ts_time_iso((double)(us / 1000000), 0, out);
}

static void set_int_or_null(json_t *o, const char *key, const char *s)
{
    int64_t v;
    if (s && ts_parse_int64(s, &v) == 0) json_object_set_new(o, key, json_integer(v));
    else json_object_set_new(o, key, json_null());
}

json_t *ts_image_row_view(const struct ts_db_res *res, int r)
{
    json_t *o = json_object();
    const char *id = ts_db_res_get(res, r, 0);
    char t[32];
    json_object_set_new(o, "id", json_string(id));
    ts_json_set_str(o, "name", ts_db_res_get(res, r, 1));
    json_object_set_new(o, "status", json_string(ts_db_res_get(res, r, 2)));
    json_object_set_new(o, "visibility", json_string(ts_db_res_get(res, r, 3)));
    ts_json_set_str(o, "owner", ts_db_res_get(res, r, 4));
    json_object_set_new(o, "protected", json_boolean(ts_db_res_int(res, r, 5, 0) != 0));
    json_object_set_new(o, "os_hidden", json_boolean(ts_db_res_int(res, r, 6, 0) != 0));
    ts_json_set_str(o, "disk_format", ts_db_res_get(res, r, 7));
    ts_json_set_str(o, "container_format", ts_db_res_get(res, r, 8));
    json_object_set_new(o, "min_disk", json_integer(ts_db_res_int(res, r, 9, 0)));
    json_object_set_new(o, "min_ram", json_integer(ts_db_res_int(res, r, 10, 0)));
    set_int_or_null(o, "size", ts_db_res_get(res, r, 11));
    set_int_or_null(o, "virtual_size", ts_db_res_get(res, r, 12));
    ts_json_set_str(o, "checksum", ts_db_res_get(res, r, 13));
    ts_json_set_str(o, "os_hash_algo", ts_db_res_get(res, r, 14));
    ts_json_set_str(o, "os_hash_value", ts_db_res_get(res, r, 15));
    iso_us(ts_db_res_get(res, r, 16), t);
    json_object_set_new(o, "created_at", json_string(t));
    iso_us(ts_db_res_get(res, r, 17), t);
    json_object_set_new(o, "updated_at", json_string(t));
    json_object_set_new(o, "tags", json_array());
    char *s = ts_asprintf("/v2/images/%s", id);
    json_object_set_new(o, "self", json_string(s));
    free(s);
    s = ts_asprintf("/v2/images/%s/file", id);
    json_object_set_new(o, "file", json_string(s));
    free(s);
    json_object_set_new(o, "schema", json_string("/v2/schemas/image"));
    const char *status = ts_db_res_get(res, r, 2);
    const char *store = ts_db_res_get(res, r, 18);
    if (ts_streq(status, "active") || ts_streq(status, "deactivated"))
        json_object_set_new(o, "stores", json_string(store && *store ? store : "file"));
    return o;
}

struct ts_image_store *ts_image_store_by_id(struct ts_image_svc *svc, const char *id, size_t len)
{
    if (len == 4 && strncmp(id, "file", 4) == 0) return svc->file;
    if (len == 5 && strncmp(id, "swift", 5) == 0) return svc->swift;
    return NULL;
}

struct ts_image_store *ts_image_store_of(struct ts_image_svc *svc, const char *name)
{
    if (!name || !*name) return svc->file;
    /* "file,swift" after a copy-image: the first one that is enabled */
    for (const char *p = name; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        struct ts_image_store *s = ts_image_store_by_id(svc, p, n);
        if (s) return s;
        p += n + (e ? 1 : 0);
    }
    return NULL;
}

bool ts_image_stores_has(const char *list, const char *id)
{
    size_t n = strlen(id);
    for (const char *p = list ? list : ""; *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && strncmp(p, id, n) == 0) return true;
        p += l + (e ? 1 : 0);
    }
    return false;
}

int ts_image_load(struct ts_image_svc *svc, const char *id, json_t **view, struct ts_err *err)
{
    struct ts_db_res *res = NULL, *props = NULL, *tags = NULL;
    int rc = ts_db_exec(svc->db, "SELECT " TS_IMAGE_COLS " FROM images WHERE id = ?", TS_DB_ARGS(TS_DB_S(id)), &res, err);
    if (rc) goto out;
    if (res->nrows == 0) {
        rc = ts_err_set(err, TS_ENOTFOUND, "No image found with ID %s", id);
        goto out;
    }
    rc = ts_db_exec(svc->db, "SELECT name, value FROM image_properties WHERE image_id = ?", TS_DB_ARGS(TS_DB_S(id)),
                    &props, err);
    if (rc) goto out;
    rc = ts_db_exec(svc->db, "SELECT value FROM image_tags WHERE image_id = ? ORDER BY value", TS_DB_ARGS(TS_DB_S(id)),
                    &tags, err);
    if (rc) goto out;
    json_t *v = ts_image_row_view(res, 0);
    for (int i = 0; i < props->nrows; i++)
        ts_json_set_str(v, ts_db_res_get(props, i, 0), ts_db_res_get(props, i, 1));
    json_t *arr = json_object_get(v, "tags");
    for (int i = 0; i < tags->nrows; i++) json_array_append_new(arr, json_string(ts_db_res_get(tags, i, 0)));
    *view = v;
out:
    ts_db_res_free(res);
    ts_db_res_free(props);
    ts_db_res_free(tags);
    return rc;
}

int ts_image_get_visible(struct ts_image_svc *svc, struct ts_http_req *req, const char *id, json_t **view,
                         struct ts_err *err)
{
    json_t *v = NULL;
    if (!id || !ts_uuid_valid(id)) return ts_err_set(err, TS_ENOTFOUND, "No image found with ID %s", id ? id : "");
    int rc = ts_image_load(svc, id, &v, err);
    if (rc) return rc;
    const struct ts_auth *a = req->auth;
    const char *vis = ts_image_vs(v, "visibility");
    const char *owner = ts_image_vs(v, "owner");
    bool ok = a->is_admin || (a->project_id[0] && ts_streq(owner, a->project_id)) || ts_streq(vis, "public") ||
              ts_streq(vis, "community");
    if (!ok && ts_streq(vis, "shared") && a->project_id[0]) {
        struct ts_db_res *m = NULL;
        rc = ts_db_exec(svc->db, "SELECT status FROM image_members WHERE image_id = ? AND member = ?",
                        TS_DB_ARGS(TS_DB_S(id), TS_DB_S(a->project_id)), &m, err);
        if (rc) {
            json_decref(v);
            return rc;
        }
        ok = m->nrows > 0;
        ts_db_res_free(m);
    }
    if (!ok) {
        json_decref(v);
        return ts_err_set(err, TS_ENOTFOUND, "No image found with ID %s", id);
    }
    *view = v;
    return 0;
}

bool ts_image_can_modify(const struct ts_http_req *req, const json_t *view)
{
    const struct ts_auth *a = req->auth;
    if (a->is_reader_only) return false;
    if (a->is_admin) return true;
    return a->project_id[0] && ts_streq(ts_image_vs(view, "owner"), a->project_id);
}

int ts_image_project_usage(struct ts_image_svc *svc, const char *project, int64_t *bytes, int64_t *count,
                           struct ts_err *err)
{
    struct ts_db_res *res = NULL;
    int rc = ts_db_exec(svc->db,
                        "SELECT COALESCE(SUM(COALESCE(size, 0) + COALESCE(staged_size, 0)), 0), COUNT(*) "
                        "FROM images WHERE owner = ?",
                        TS_DB_ARGS(TS_DB_S(project)), &res, err);
    if (rc) return rc;
    if (bytes) *bytes = ts_db_res_int(res, 0, 0, 0);
    if (count) *count = ts_db_res_int(res, 0, 1, 0);
    ts_db_res_free(res);
    return 0;
}

void ts_image_notify(struct ts_image_svc *svc, const char *event, const json_t *view)
{
    if (!svc->env || !svc->env->bus || !view) return;
    /* glance.notifier.format_image_notification */
    static const char *const keys[] = {"id", "name", "status", "created_at", "updated_at", "min_disk", "min_ram",
                                       "protected", "checksum", "owner", "disk_format", "container_format", "size",
                                       "virtual_size", "visibility", "os_hidden", "os_hash_algo", "os_hash_value",
                                       "tags", NULL};
    json_t *p = json_object();
    for (int i = 0; keys[i]; i++) {
        json_t *v = json_object_get(view, keys[i]);
        json_object_set(p, keys[i], v ? v : json_null());
    }
    json_object_set_new(p, "is_public", json_boolean(ts_streq(ts_image_vs(view, "visibility"), "public")));
    json_object_set_new(p, "deleted", json_boolean(ts_streq(event, "image.delete")));
    json_t *props = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)view, k, v) {
        if (!ts_image_attr_base(k) && !ts_image_attr_readonly(k)) json_object_set(props, k, v);
    }
    json_object_set_new(p, "properties", props);
    if (ts_streq(event, "image.delete")) {
        char t[32];
        ts_time_iso(ts_now(), 0, t);
        json_object_set_new(p, "deleted_at", json_string(t));
    } else {
        json_object_set_new(p, "deleted_at", json_null());
    }
    ts_bus_notify(svc->env->bus, svc->publisher, event, "INFO", p);
}

/* ---- versions, schemas, info ------------------------------------------------------- */

static json_t *versions_body(struct ts_http_req *req)
{
    /* Glance Zed with an image cache and without multiple backends (enabled_backends): no
     * 2.8 and 2.10-2.13, which are the multi-store and tasks API versions. */
    static const char *const ids[] = {"2.16", "2.15", "2.14", "2.9", "2.7", "2.6", "2.5", "2.4",
                                      "2.3",  "2.2",  "2.1",  "2.0", NULL};
    const char *host = ts_http_header(req, "Host");
    const char *proto = ts_http_header(req, "X-Forwarded-Proto");
    char *href = ts_asprintf("%s://%s/v2/", proto ? proto : "http", host ? host : "127.0.0.1:9292");
    json_t *arr = json_array();
    for (int i = 0; ids[i]; i++) {
        char id[16];
        snprintf(id, sizeof(id), "v%s", ids[i]);
        json_array_append_new(arr, json_pack("{s:s, s:s, s:[{s:s, s:s}]}", "id", id, "status",
                                             i == 0 ? "CURRENT" : "SUPPORTED", "links", "rel", "self", "href", href));
    }
    free(href);
    return json_pack("{s:o}", "versions", arr);
}

static int h_versions(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)err;
    ts_http_resp_json(resp, 300, versions_body(req));
    return 0;
}

static int h_versions_explicit(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)err;
    ts_http_resp_json(resp, 200, versions_body(req));
    return 0;
}

static int h_schema_image(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)err;
    struct ts_image_svc *svc = req->svc;
    ts_http_resp_json(resp, 200, json_incref(svc->schema_image));
    return 0;
}

static int h_schema_images(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)req, (void)err;
    ts_http_resp_json(resp, 200, ts_image_schema_images());
    return 0;
}

static int h_schema_member(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)req, (void)err;
    ts_http_resp_json(resp, 200, ts_image_schema_member());
    return 0;
}

static int h_schema_members(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)req, (void)err;
    ts_http_resp_json(resp, 200, ts_image_schema_members());
    return 0;
}

static int h_info_import(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)req, (void)err;
    ts_http_resp_json(resp, 200,
                      json_pack("{s:{s:s, s:s, s:[s, s]}}", "import-methods", "description",
                                "Import methods available.", "type", "array", "value", "glance-direct",
                                "copy-image"));
    return 0;
}

static int h_info_stores(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)err;
    struct ts_image_svc *svc = req->svc;
    json_t *arr = json_array();
    /* the default first, as glance lists enabled_backends; "default" only on that one */
    struct ts_image_store *order[] = {svc->store, svc->store == svc->file ? svc->swift : svc->file};
    for (int i = 0; i < 2; i++) {
        if (!order[i]) continue;
        bool swift = order[i] == svc->swift;
        json_t *o = json_pack("{s:s, s:s}", "id", swift ? "swift" : "file", "description",
                              swift ? "Object storage (swift) store" : "Local filesystem store");
        if (order[i] == svc->store) json_object_set_new(o, "default", json_true());
        json_array_append_new(arr, o);
    }
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "stores", arr));
    return 0;
}

static int h_info_usage(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_image_svc *svc = req->svc;
    int64_t bytes = 0, count = 0, staged = 0, uploading = 0;
    int rc = ts_image_project_usage(svc, req->auth->project_id, &bytes, &count, err);
    if (rc) return rc;
    struct ts_db_res *res = NULL;
    rc = ts_db_exec(svc->db,
                    "SELECT COALESCE(SUM(COALESCE(staged_size, 0)), 0), COUNT(*) FROM images "
                    "WHERE owner = ? AND status IN ('uploading', 'importing', 'saving')",
                    TS_DB_ARGS(TS_DB_S(req->auth->project_id)), &res, err);
    if (rc) return rc;
    staged = ts_db_res_int(res, 0, 0, 0);
    uploading = ts_db_res_int(res, 0, 1, 0);
    ts_db_res_free(res);
    int64_t lb = svc->quota_bytes ? svc->quota_bytes : -1, li = svc->quota_images ? svc->quota_images : -1;
    ts_http_resp_json(resp, 200,
                      json_pack("{s:{s:{s:I,s:I}, s:{s:I,s:I}, s:{s:I,s:I}, s:{s:I,s:I}}}", "usage",
                                "image_size_total", "limit", (json_int_t)lb, "usage", (json_int_t)bytes,
                                "image_count_total", "limit", (json_int_t)li, "usage", (json_int_t)count,
                                "image_stage_total", "limit", (json_int_t)-1, "usage", (json_int_t)staged,
                                "image_count_uploading", "limit", (json_int_t)-1, "usage", (json_int_t)uploading));
    return 0;
}

/* DELETE /v2/images and GET /v2/images/ (an empty id) are 404 in Glance. */
static int h_no_image(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)req, (void)resp;
    return ts_err_set(err, TS_ENOTFOUND, "The resource could not be found.");
}

static const struct ts_http_route routes[] = {
    {"GET", "/", h_versions, TS_ROUTE_PUBLIC},
    {"GET", "/versions", h_versions_explicit, TS_ROUTE_PUBLIC},
    {"GET", "/v2", h_versions, TS_ROUTE_PUBLIC},
    {"GET", "/v2/schemas/image", h_schema_image, 0},
    {"GET", "/v2/schemas/images", h_schema_images, 0},
    {"GET", "/v2/schemas/member", h_schema_member, 0},
    {"GET", "/v2/schemas/members", h_schema_members, 0},
    {"GET", "/v2/info/import", h_info_import, 0},
    {"GET", "/v2/info/stores", h_info_stores, 0},
    {"GET", "/v2/info/usage", h_info_usage, 0},
    {"POST", "/v2/images", ts_image_h_create, 0},
    {"GET", "/v2/images", ts_image_h_list, 0},
    {"DELETE", "/v2/images", h_no_image, 0},
    {"PATCH", "/v2/images", h_no_image, 0},
    {"GET", "/v2/images/{image_id}", ts_image_h_show, 0},
    {"PATCH", "/v2/images/{image_id}", ts_image_h_update, 0},
    {"DELETE", "/v2/images/{image_id}", ts_image_h_delete, 0},
    {"PUT", "/v2/images/{image_id}/file", ts_image_h_upload, TS_ROUTE_STREAM},
    {"GET", "/v2/images/{image_id}/file", ts_image_h_download, 0},
    {"PUT", "/v2/images/{image_id}/stage", ts_image_h_stage, TS_ROUTE_STREAM},
    {"POST", "/v2/images/{image_id}/import", ts_image_h_import, 0},
    {"PUT", "/v2/images/{image_id}/tags/{tag}", ts_image_h_tag_add, 0},
    {"DELETE", "/v2/images/{image_id}/tags/{tag}", ts_image_h_tag_delete, 0},
    {"POST", "/v2/images/{image_id}/actions/deactivate", ts_image_h_deactivate, 0},
    {"POST", "/v2/images/{image_id}/actions/reactivate", ts_image_h_reactivate, 0},
    {"POST", "/v2/images/{image_id}/members", ts_image_h_members_add, 0},
    {"GET", "/v2/images/{image_id}/members", ts_image_h_members_list, 0},
    {"GET", "/v2/images/{image_id}/members/{member_id}", ts_image_h_member_show, 0},
    {"PUT", "/v2/images/{image_id}/members/{member_id}", ts_image_h_member_update, 0},
    {"DELETE", "/v2/images/{image_id}/members/{member_id}", ts_image_h_member_delete, 0},
    {NULL, NULL, NULL, 0},
};

/* ---- life cycle ------------------------------------------------------------------------- */

static void conf_default(struct ts_conf *conf, const char *key, const char *value)
{
    ts_service_conf_default(conf, "image", key, value);
}

static int image_init(struct ts_service_env *env, struct ts_err *err)
{
    char *s = ts_asprintf("%d", ts_image_service.default_port);
    conf_default(env->conf, "port", s);
    free(s);
    s = ts_asprintf("sqlite:///%s/image.db", env->data_dir);
    conf_default(env->conf, "connection", s);
    free(s);
    s = ts_asprintf("%s/images", env->data_dir);
    conf_default(env->conf, "store_dir", s);
    free(s);
    s = ts_asprintf("%s/image-staging", env->data_dir);
    conf_default(env->conf, "staging_dir", s);
    free(s);
    conf_default(env->conf, "default_store", "file");
    conf_default(env->conf, "quota_total_bytes_per_project", "0");
    conf_default(env->conf, "quota_images_per_project", "0");

    struct ts_db *db = NULL;
    int rc = ts_db_open(ts_conf_get(env->conf, "image", "connection", NULL), &db, err);
    if (rc) return rc;
    rc = ts_db_migrate(db, migrations, sizeof(migrations) / sizeof(migrations[0]), err);
    ts_db_close(db);
    return rc;
}

static int conf_size(const struct ts_conf *conf, const char *key, uint64_t def, uint64_t *out, struct ts_err *err)
{
    const char *v = ts_conf_get(conf, "image", key, NULL);
    if (!v || !*v) {
        *out = def;
        return 0;
    }
    if (ts_image_size_parse(v, out) != 0)
        return ts_err_set(err, TS_EINVAL, "[image] %s = %s: expected a size in bytes (or with K, M, G, T)", key, v);
    return 0;
}

/* The swift store when [image] default_store or [image] stores names it (glance_store's
 * stores/default_store); *out stays NULL otherwise. */
static int open_swift(struct ts_service_env *env, struct ts_image_store **out, struct ts_err *err)
{
    struct ts_conf *conf = env->conf;
    bool file = true, swift = false;
    int rc = ts_image_stores_parse(ts_conf_get(conf, "image", "stores", NULL),
                                   ts_conf_get(conf, "image", "default_store", "file"), &file, &swift, err);
    if (rc || !swift) return rc;
    const char *url = ts_conf_get(conf, "image", "swift_url", NULL);
    if (!(url && *url) && !ts_service_enabled(conf, "object"))
        return ts_err_set(err, TS_EINVAL, "the image swift store needs the object service: add \"object\" to "
                                          "[DEFAULT] enabled_services or set [image] swift_url");
    struct ts_image_swift_opts o = {
        .url = url,
        .object_host = ts_conf_get(conf, "DEFAULT", "public_host", "127.0.0.1"),
        .object_port = (int)ts_conf_get_int(conf, "object", "port", 8080),
        .identity_url = env->identity_url ? env->identity_url : "http://127.0.0.1:5000",
        .username = ts_conf_get(conf, "service_credentials", "username", "tinystack"),
        .password = ts_conf_get(conf, "service_credentials", "password", ""),
        .project_name = ts_conf_get(conf, "service_credentials", "project_name", "service"),
        .user_domain_id = ts_conf_get(conf, "service_credentials", "user_domain_id", "default"),
        .project_domain_id = ts_conf_get(conf, "service_credentials", "project_domain_id", "default"),
        .container = ts_conf_get(conf, "image", "swift_container", "glance"),
    };
    rc = conf_size(conf, "swift_large_object_size", 5ULL << 30, &o.large_object_size, err);
    if (!rc) rc = conf_size(conf, "swift_large_object_chunk_size", 200ULL << 20, &o.segment_size, err);
    if (!rc) rc = ts_image_store_open_swift(&o, out, err);
    return rc;
}

static void image_stop(void *state)
{
    struct ts_image_svc *svc = state;
    if (!svc) return;
    ts_http_server_stop(svc->http);
    ts_image_imports_wait(svc);
    ts_image_store_close(svc->file);
    ts_image_store_close(svc->swift);
    ts_image_store_close(svc->staging);
    ts_image_list_cache_free(svc);
    ts_db_close(svc->db);
    json_decref(svc->schema_image);
    pthread_mutex_destroy(&svc->lock);
    pthread_cond_destroy(&svc->cond);
    free(svc);
}

static int image_start(struct ts_service_env *env, void **state, struct ts_err *err)
{
    struct ts_image_svc *svc = ts_calloc(1, sizeof(*svc));
    pthread_mutex_init(&svc->lock, NULL);
    pthread_cond_init(&svc->cond, NULL);
    svc->env = env;
    snprintf(svc->publisher, sizeof(svc->publisher), "image.%s", env->host ? env->host : "localhost");
    int rc = image_init(env, err);   /* idempotent: defaults + migrations */
    if (rc) goto out;
    svc->quota_bytes = ts_conf_get_int(env->conf, "image", "quota_total_bytes_per_project", 0);
    svc->quota_images = ts_conf_get_int(env->conf, "image", "quota_images_per_project", 0);
    rc = ts_db_open(ts_conf_get(env->conf, "image", "connection", NULL), &svc->db, err);
    if (rc) goto out;
    rc = ts_image_store_open(ts_conf_get(env->conf, "image", "store_dir", NULL), &svc->file, err);
    if (rc) goto out;
    /* O_DIRECT uploads (opt-in): less CPU per uploaded byte, but the image is then not in the
     * page cache and the first download reads the disk (measured: 338 vs 263 MB/s up, 208 vs
     * 969 MB/s down on this machine's disk), and compute hosts download right after uploads */
    ts_image_store_set_direct(svc->file, ts_conf_get_bool(env->conf, "image", "store_direct_io", false));
    rc = open_swift(env, &svc->swift, err);
    if (rc) goto out;
    svc->store = ts_streq(ts_conf_get(env->conf, "image", "default_store", "file"), "swift") ? svc->swift : svc->file;
    ts_info("image", "image store: %s%s", ts_image_store_name(svc->store), svc->swift ? " (file and swift enabled)" : "");
    rc = ts_image_store_open(ts_conf_get(env->conf, "image", "staging_dir", NULL), &svc->staging, err);
    if (rc) goto out;
    rc = ts_image_recover(svc, err);
    if (rc) goto out;
    rc = ts_image_list_cache_open(svc, err);
    if (rc) goto out;
    svc->schema_image = ts_image_schema_image();

    rc = ts_service_http_start(env, &ts_image_service, routes, TS_FAULT_GLANCE, 16, svc, &svc->http, err);
    if (rc) goto out;
    *state = svc;
out:
    if (rc) image_stop(svc);
    return rc;
}

const struct ts_service ts_image_service = {
    .name = "image",
    .type = "image",
    .catalog_name = "glance",
    .default_port = 9292,
    .catalog_path = "",
    .init = image_init,
    .start = image_start,
    .stop = image_stop,
};
