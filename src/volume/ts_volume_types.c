/*
 * ts_volume_types.c: volume types (admin-managed), their extra specs (volume_backend_name
 * steers the scheduler) and private type access (a private type is visible to admins and
 * to the projects it was granted to, 404 to everyone else).
 */
#include "volume/ts_volume_int.h"

#include <stdlib.h>
#include <string.h>

static int need_admin(struct ts_http_req *req, struct ts_err *err)
{
    if (!req->auth->is_admin)
        return ts_err_set(err, TS_EFORBIDDEN,
                          "Policy doesn't allow volume_extension:types_manage to be performed.");
    return 0;
}

static json_t *specs_of(struct ts_volume_svc *svc, const char *type_id)
{
    return ts_volume_metadata(svc, "type_extra_specs", "type_id", type_id);
}

enum view_kind { VIEW_SHOW, VIEW_CREATE, VIEW_UPDATE };

static json_t *type_view_kind(struct ts_volume_svc *svc, struct ts_http_req *req, const struct ts_db_res *r,
                              int i, enum view_kind kind)
{
    const char *id = ts_db_res_get(r, i, 0);
    bool pub = ts_db_res_int(r, i, 3, 1) != 0;
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "name", json_string(ts_db_res_get(r, i, 1)));
    ts_json_set_str(o, "description", ts_db_res_get(r, i, 2));
    json_object_set_new(o, "is_public", json_boolean(pub));
    if (kind != VIEW_UPDATE) json_object_set_new(o, "os-volume-type-access:is_public", json_boolean(pub));
    if (kind == VIEW_SHOW) json_object_set_new(o, "qos_specs_id", json_null());
    json_t *specs = specs_of(svc, id);
    if (!req->auth->is_admin) {
        /* users see only the multiattach/replication style keys, as Cinder's policy does */
        json_t *f = json_object();
        const char *k;
        json_t *v;
        json_object_foreach(specs, k, v)
        {
            if (!strcmp(k, "multiattach") || !strcmp(k, "RESKEY:availability_zones") ||
                !strcmp(k, "replication_enabled"))
                json_object_set(f, k, v);
        }
        json_decref(specs);
        specs = f;
    }
    json_object_set_new(o, "extra_specs", specs);
    return o;
}

static json_t *type_view(struct ts_volume_svc *svc, struct ts_http_req *req, const struct ts_db_res *r, int i)
{
    return type_view_kind(svc, req, r, i, VIEW_SHOW);
}

#define TYPE_COLS "id, name, description, is_public, created_at"

/* Loads a type by id visible to the caller (404 otherwise). */
static int type_load(struct ts_volume_svc *svc, struct ts_http_req *req, const char *id,
                     struct ts_db_res **out, struct ts_err *err)
{
    struct ts_db_res *r = NULL;
    int rc = ts_db_exec(svc->db, "SELECT " TYPE_COLS " FROM volume_types WHERE id = ?",
                        TS_DB_ARGS(TS_DB_S(id ? id : "")), &r, err);
    if (rc) return rc;
    bool ok = r->nrows > 0;
    if (ok && !req->auth->is_admin && ts_db_res_int(r, 0, 3, 1) == 0) {
        struct ts_db_res *a = NULL;
        ok = ts_db_exec(svc->db, "SELECT 1 FROM type_access WHERE type_id = ? AND project_id = ?",
                        TS_DB_ARGS(TS_DB_S(id), TS_DB_S(req->auth->project_id)), &a, NULL) == 0 &&
             a->nrows > 0;
        ts_db_res_free(a);
    }
    if (!ok) {
        ts_db_res_free(r);
        return ts_err_set(err, TS_ENOTFOUND, "Volume type %s could not be found.", id ? id : "");
    }
    *out = r;
    return 0;
}

int ts_volume_h_type_create(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = need_admin(req, err))) return rc;
    json_t *body = NULL, *t = NULL;
    if ((rc = ts_http_json_body(req, &body, err))) return rc;
    if ((rc = ts_json_body_object(body, "volume_type", &t, err))) return rc;
    json_t *nv = json_object_get(t, "name");
    if (!json_is_string(nv) || !*json_string_value(nv) || strlen(json_string_value(nv)) > 255)
        return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute name.");
    const char *name = json_string_value(nv);
    json_t *dv = json_object_get(t, "description");
    if (dv && !json_is_null(dv) && !json_is_string(dv))
        return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute description.");
    const char *desc = json_string_value(dv);
    if ((rc = ts_volume_check_text("description", desc, 255, err))) return rc;
    bool pub = true;
    json_t *pv = json_object_get(t, "os-volume-type-access:is_public");
    if (!pv) pv = json_object_get(t, "is_public");
    if (pv && !json_is_null(pv)) {
        if (json_is_boolean(pv))
            pub = json_is_true(pv);
        else if (!json_is_string(pv) || ts_parse_bool(json_string_value(pv), &pub) != 0)
            return ts_err_set(err, TS_EINVAL, "Invalid value for is_public");
    }
    json_t *specs = json_object_get(t, "extra_specs");
    if (specs && (rc = ts_volume_metadata_check(specs, err))) return rc;
    char id[TS_UUID_LEN + 1], now[32];
    ts_uuid(id);
    ts_volume_now(now);
    rc = ts_db_exec(
        svc->db,
        "INSERT INTO volume_types (id, name, description, is_public, created_at) VALUES (?, ?, ?, ?, ?)",
        TS_DB_ARGS(TS_DB_S(id), TS_DB_S(name), TS_DB_S(desc), TS_DB_B(pub), TS_DB_S(now)), NULL, err);
    if (rc == -TS_ECONFLICT) return ts_err_set(err, TS_ECONFLICT, "Volume Type %s already exists.", name);
    if (rc) return rc;
    if (specs && (rc = ts_volume_metadata_set(svc, "type_extra_specs", "type_id", id, specs, false, err)))
        return rc;
    struct ts_db_res *r = NULL;
    if ((rc = type_load(svc, req, id, &r, err))) return rc;
    ts_http_resp_json(resp, 200,
                      json_pack("{s:o}", "volume_type", type_view_kind(svc, req, r, 0, VIEW_CREATE)));
    ts_db_res_free(r);
    ts_bus_notify(svc->env->bus, svc->publisher, "volume_type.create", "INFO",
                  json_pack("{s:s, s:s}", "id", id, "name", name));
    return 0;
}

int ts_volume_h_type_list(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    /* is_public: absent/true -> public + granted; false -> private only (admin); None -> all (admin) */
    const char *ip = ts_http_query(req, "is_public");
    int mode = 1; /* 1 public+granted, 0 private, 2 all */
    if (ip && req->auth->is_admin) {
        bool b;
        if (strcasecmp(ip, "none") == 0)
            mode = 2;
        else if (ts_parse_bool(ip, &b) == 0)
            mode = b ? 1 : 0;
    }
    struct ts_db_res *r = NULL;
    rc = ts_db_exec(svc->db,
                    "SELECT " TYPE_COLS " FROM volume_types t WHERE CAST(? AS BIGINT) = 2 OR (CAST(? AS "
                                        "BIGINT) = 1 AND (is_public = 1 OR EXISTS "
                    "(SELECT 1 FROM type_access a WHERE a.type_id = t.id AND a.project_id = ?))) OR (CAST(? "
                    "AS BIGINT) = 0 AND is_public = 0) "
                    "ORDER BY name",
                    TS_DB_ARGS(TS_DB_I(mode), TS_DB_I(mode), TS_DB_S(req->auth->project_id), TS_DB_I(mode)),
                    &r, err);
    if (rc) return rc;
    json_t *arr = json_array();
    for (int i = 0; i < r->nrows; i++)
        json_array_append_new(arr, type_view(svc, req, r, i));
    ts_db_res_free(r);
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "volume_types", arr));
    return 0;
}

int ts_volume_h_type_show(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    struct ts_db_res *r = NULL;
    if ((rc = type_load(svc, req, ts_http_param(req, "type_id"), &r, err))) return rc;
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "volume_type", type_view(svc, req, r, 0)));
    ts_db_res_free(r);
    return 0;
}

int ts_volume_h_type_default(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    char id[64];
    if ((rc = ts_volume_default_type(svc, id, err))) return rc;
    struct ts_db_res *r = NULL;
    if ((rc = type_load(svc, req, id, &r, err))) return rc;
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "volume_type", type_view(svc, req, r, 0)));
    ts_db_res_free(r);
    return 0;
}

int ts_volume_h_type_update(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = need_admin(req, err))) return rc;
    const char *id = ts_http_param(req, "type_id");
    struct ts_db_res *r = NULL;
    json_t *body = NULL, *t = NULL;
    if ((rc = type_load(svc, req, id, &r, err))) return rc;
    ts_db_res_free(r);
    r = NULL;
    if ((rc = ts_http_json_body(req, &body, err))) return rc;
    if ((rc = ts_json_body_object(body, "volume_type", &t, err))) return rc;
    json_t *nv = json_object_get(t, "name"), *dv = json_object_get(t, "description"),
           *pv = json_object_get(t, "is_public");
    if (!nv && !dv && !pv)
        return ts_err_set(err, TS_EINVAL,
                          "Specify volume type name, description, is_public or a combination thereof.");
    if (nv) {
        if (!json_is_string(nv) || !*json_string_value(nv) || strlen(json_string_value(nv)) > 255)
            return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute name.");
        rc = ts_db_exec(svc->db, "UPDATE volume_types SET name = ? WHERE id = ?",
                        TS_DB_ARGS(TS_DB_S(json_string_value(nv)), TS_DB_S(id)), NULL, err);
        if (rc == -TS_ECONFLICT)
            return ts_err_set(err, TS_ECONFLICT, "Volume Type %s already exists.", json_string_value(nv));
        if (rc) return rc;
    }
    if (dv) {
        if (!json_is_null(dv) && !json_is_string(dv))
            return ts_err_set(err, TS_EINVAL, "Invalid description");
        if ((rc = ts_db_exec(svc->db, "UPDATE volume_types SET description = ? WHERE id = ?",
                             TS_DB_ARGS(TS_DB_S(json_string_value(dv)), TS_DB_S(id)), NULL, err)))
            return rc;
    }
    if (pv) {
        bool b;
        if (json_is_boolean(pv))
            b = json_is_true(pv);
        else if (!json_is_string(pv) || ts_parse_bool(json_string_value(pv), &b) != 0)
            return ts_err_set(err, TS_EINVAL, "Invalid value for is_public");
        if ((rc = ts_db_exec(svc->db, "UPDATE volume_types SET is_public = ? WHERE id = ?",
                             TS_DB_ARGS(TS_DB_B(b), TS_DB_S(id)), NULL, err)))
            return rc;
    }
    if ((rc = type_load(svc, req, id, &r, err))) return rc;
    ts_http_resp_json(resp, 200,
                      json_pack("{s:o}", "volume_type", type_view_kind(svc, req, r, 0, VIEW_UPDATE)));
    ts_db_res_free(r);
    return 0;
}

int ts_volume_h_type_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = need_admin(req, err))) return rc;
    const char *id = ts_http_param(req, "type_id");
    struct ts_db_res *r = NULL;
    if ((rc = type_load(svc, req, id, &r, err))) return rc;
    bool is_default = ts_streq(ts_db_res_get(r, 0, 1), svc->default_type);
    ts_db_res_free(r);
    if (is_default) return ts_err_set(err, TS_EINVAL, "Default volume type can not be deleted.");
    r = NULL;
    if ((rc = ts_db_exec(svc->db, "SELECT COUNT(*) FROM volumes WHERE volume_type_id = ?",
                         TS_DB_ARGS(TS_DB_S(id)), &r, err)))
        return rc;
    int64_t n = ts_db_res_int(r, 0, 0, 0);
    ts_db_res_free(r);
    if (n > 0) return ts_err_set(err, TS_EINVAL, "Target volume type is still in use.");
    ts_db_exec(svc->db, "DELETE FROM type_extra_specs WHERE type_id = ?", TS_DB_ARGS(TS_DB_S(id)), NULL,
               NULL);
    ts_db_exec(svc->db, "DELETE FROM type_access WHERE type_id = ?", TS_DB_ARGS(TS_DB_S(id)), NULL, NULL);
    if ((rc = ts_db_exec(svc->db, "DELETE FROM volume_types WHERE id = ?", TS_DB_ARGS(TS_DB_S(id)), NULL,
                         err)))
        return rc;
    ts_http_resp_body(resp, 202, NULL, "", 0);
    return 0;
}

int ts_volume_h_type_specs(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    const char *id = ts_http_param(req, "type_id"), *key = ts_http_param(req, "key");
    struct ts_db_res *r = NULL;
    if ((rc = type_load(svc, req, id, &r, err))) return rc;
    ts_db_res_free(r);
    const char *m = req->method;
    if (!ts_streq(m, "GET") && (rc = need_admin(req, err))) return rc;
    json_t *specs = specs_of(svc, id), *body = NULL;
    if (ts_streq(m, "GET")) {
        if (!key) {
            ts_http_resp_json(resp, 200, json_pack("{s:o}", "extra_specs", specs));
            return 0;
        }
        json_t *v = json_object_get(specs, key);
        if (!v) {
            json_decref(specs);
            return ts_err_set(err, TS_ENOTFOUND, "Volume Type %s has no extra specs with key %s.", id, key);
        }
        ts_http_resp_json(resp, 200, json_pack("{s:O}", key, v));
        json_decref(specs);
        return 0;
    }
    if (ts_streq(m, "DELETE") && key) {
        bool had = json_object_get(specs, key) != NULL;
        json_decref(specs);
        if (!had)
            return ts_err_set(err, TS_ENOTFOUND, "Volume Type %s has no extra specs with key %s.", id, key);
        if ((rc = ts_db_exec(svc->db, "DELETE FROM type_extra_specs WHERE type_id = ? AND key = ?",
                             TS_DB_ARGS(TS_DB_S(id), TS_DB_S(key)), NULL, err)))
            return rc;
        ts_http_resp_body(resp, 202, NULL, "", 0);
        return 0;
    }
    json_decref(specs);
    if ((rc = ts_http_json_body(req, &body, err))) return rc;
    if (ts_streq(m, "POST") && !key) {
        json_t *es = json_object_get(body, "extra_specs");
        if (!json_is_object(es)) return ts_err_set(err, TS_EINVAL, "Malformed request body");
        if ((rc = ts_volume_metadata_set(svc, "type_extra_specs", "type_id", id, es, false, err))) return rc;
        ts_http_resp_json(resp, 200, json_pack("{s:O}", "extra_specs", es));
        return 0;
    }
    if (ts_streq(m, "PUT") && key) {
        if (!json_is_object(body) || json_object_size(body) != 1)
            return ts_err_set(err, TS_EINVAL, "Request body contains too many items.");
        if (!json_object_get(body, key)) return ts_err_set(err, TS_EINVAL, "Request body and URI mismatch");
        if ((rc = ts_volume_metadata_set(svc, "type_extra_specs", "type_id", id, body, false, err)))
            return rc;
        ts_http_resp_json(resp, 200, json_incref(body));
        return 0;
    }
    return ts_err_set(err, TS_EMETHOD, "The method is not allowed for the requested URL.");
}

int ts_volume_h_type_action(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = need_admin(req, err))) return rc;
    const char *id = ts_http_param(req, "type_id");
    struct ts_db_res *r = NULL;
    json_t *body = NULL;
    if ((rc = type_load(svc, req, id, &r, err))) return rc;
    bool pub = ts_db_res_int(r, 0, 3, 1) != 0;
    ts_db_res_free(r);
    if ((rc = ts_http_json_body(req, &body, err))) return rc;
    json_t *add = json_object_get(body, "addProjectAccess"),
           *rem = json_object_get(body, "removeProjectAccess");
    json_t *a = add ? add : rem;
    const char *project = json_is_object(a) ? ts_json_str(a, "project", NULL) : NULL;
    if (!a) return ts_err_set(err, TS_EINVAL, "There is no such action");
    if (!project) return ts_err_set(err, TS_EINVAL, "Missing required element 'project' in request body.");
    if (pub)
        return ts_err_set(
            err, TS_EINVAL,
            "Invalid volume type: Type access modification is not applicable to public volume type.");
    if (add) {
        rc = ts_db_exec(svc->db, "INSERT INTO type_access (type_id, project_id) VALUES (?, ?)",
                        TS_DB_ARGS(TS_DB_S(id), TS_DB_S(project)), NULL, err);
        if (rc == -TS_ECONFLICT)
            return ts_err_set(err, TS_ECONFLICT, "Volume type access for %s / %s combination already exists.",
                              id, project);
        if (rc) return rc;
    } else {
        if ((rc = ts_db_exec(svc->db, "DELETE FROM type_access WHERE type_id = ? AND project_id = ?",
                             TS_DB_ARGS(TS_DB_S(id), TS_DB_S(project)), &r, err)))
            return rc;
        int64_t ch = r->changes;
        ts_db_res_free(r);
        if (ch == 0)
            return ts_err_set(err, TS_ENOTFOUND, "Volume type access not found for %s / %s combination.", id,
                              project);
    }
    ts_http_resp_body(resp, 202, NULL, "", 0);
    return 0;
}

int ts_volume_h_type_access(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = need_admin(req, err))) return rc;
    const char *id = ts_http_param(req, "type_id");
    struct ts_db_res *r = NULL;
    if ((rc = type_load(svc, req, id, &r, err))) return rc;
    bool pub = ts_db_res_int(r, 0, 3, 1) != 0;
    ts_db_res_free(r);
    if (pub) return ts_err_set(err, TS_ENOTFOUND, "Access list not available for public volume types.");
    if ((rc = ts_db_exec(svc->db, "SELECT project_id FROM type_access WHERE type_id = ? ORDER BY project_id",
                         TS_DB_ARGS(TS_DB_S(id)), &r, err)))
        return rc;
    json_t *arr = json_array();
    for (int i = 0; i < r->nrows; i++)
        json_array_append_new(
            arr, json_pack("{s:s, s:s}", "volume_type_id", id, "project_id", ts_db_res_get(r, i, 0)));
    ts_db_res_free(r);
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "volume_type_access", arr));
    return 0;
}
