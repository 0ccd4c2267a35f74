/*
 * ts_compute_api_flavors.c: flavors (+ extra specs and access lists for private
 * flavors), keypairs (RSA generation with OpenSSL, import with Nova's MD5 fingerprint),
 * quota sets, quota classes and /limits.
 */
#include "compute/api/ts_compute_api.h"

#include <ctype.h>
#include <openssl/core_names.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/ts_auth.h"
#include "json/ts_json.h"

/* ---- flavors ------------------------------------------------------------------------- */

#define FLAVOR_COLS "flavorid, name, vcpus, memory_mb, root_gb, ephemeral_gb, swap, rxtx_factor, is_public, " \
                    "disabled, description"

static json_t *flavor_view(struct ts_http_req *req, int mv, const struct ts_db_res *res, int r, bool detail,
                           json_t *specs)
{
    const char *base = ts_compute_base(req);
    const char *id = ts_db_res_get(res, r, 0);
    char *self = ts_asprintf("%s/v2.1/flavors/%s", base, id), *bm = ts_asprintf("%s/flavors/%s", base, id);
    json_t *f = json_pack("{s:s, s:s, s:[{s:s, s:s}, {s:s, s:s}]}", "id", id, "name", ts_db_res_get(res, r, 1),
                          "links", "rel", "self", "href", self, "rel", "bookmark", "href", bm);
    free(self);
    free(bm);
    if (mv >= 55) ts_json_set_str(f, "description", ts_db_res_get(res, r, 10));
    if (!detail) return f;
    json_object_set_new(f, "vcpus", json_integer(ts_db_res_int(res, r, 2, 0)));
    json_object_set_new(f, "ram", json_integer(ts_db_res_int(res, r, 3, 0)));
    json_object_set_new(f, "disk", json_integer(ts_db_res_int(res, r, 4, 0)));
    json_object_set_new(f, "OS-FLV-EXT-DATA:ephemeral", json_integer(ts_db_res_int(res, r, 5, 0)));
    int64_t swap = ts_db_res_int(res, r, 6, 0);
    if (swap == 0 && mv < 75) json_object_set_new(f, "swap", json_string(""));
    else json_object_set_new(f, "swap", json_integer(swap));
    json_object_set_new(f, "rxtx_factor", json_real(strtod(ts_db_res_get(res, r, 7) ? ts_db_res_get(res, r, 7) : "1",
                                                           NULL)));
    json_object_set_new(f, "os-flavor-access:is_public", json_boolean(ts_db_res_int(res, r, 8, 1) != 0));
    json_object_set_new(f, "OS-FLV-DISABLED:disabled", json_boolean(ts_db_res_int(res, r, 9, 0) != 0));
    if (mv >= 61) json_object_set_new(f, "extra_specs", specs ? json_incref(specs) : json_object());
    return f;
}

static json_t *specs_of(struct ts_compute_svc *svc, const char *flavorid)
{
    struct ts_db_res *res = NULL;
    json_t *o = json_object();
    if (ts_db_exec(svc->db, "SELECT key, value FROM flavor_extra_specs WHERE flavorid = ?", TS_DB_ARGS(TS_DB_S(flavorid)),
                   &res, NULL) == 0)
        for (int i = 0; i < res->nrows; i++) ts_json_set_str(o, ts_db_res_get(res, i, 0), ts_db_res_get(res, i, 1));
    ts_db_res_free(res);
    return o;
}

/* Flavor visible to the caller: public, or admin, or in its access list. */
static int flavor_load(struct ts_http_req *req, const char *id, struct ts_db_res **out, struct ts_err *err)
{
    struct ts_compute_svc *svc = req->svc;
    struct ts_db_res *res = NULL;
    int rc = ts_db_exec(svc->db,
                        "SELECT " FLAVOR_COLS ", (SELECT COUNT(*) FROM flavor_projects p WHERE p.flavorid = "
                        "flavors.flavorid AND p.project_id = ?) FROM flavors WHERE flavorid = ?",
                        TS_DB_ARGS(TS_DB_S(req->auth->project_id), TS_DB_S(id ? id : "")), &res, err);
    if (rc) return rc;
    if (res->nrows == 0 ||
        (!req->auth->is_admin && ts_db_res_int(res, 0, 8, 1) == 0 && ts_db_res_int(res, 0, 11, 0) == 0)) {
        ts_db_res_free(res);
        return ts_err_set(err, TS_ENOTFOUND, "Flavor %s could not be found.", id ? id : "");
    }
    *out = res;
    return 0;
}

static int flavors_list_common(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err, bool detail)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    struct ts_buf sql;
    ts_buf_init(&sql, 0);
    struct ts_db_val args[8];
    int n = 0;
    struct ts_db_res *res = NULL, *specs = NULL;
    ts_buf_appends(&sql, "SELECT " FLAVOR_COLS " FROM flavors WHERE disabled = 0");
    const char *ip = ts_http_query(req, "is_public");
    int pub = 1;   /* 1 public (+accessible), 0 private only, -1 all */
    if (ip) {
        bool b;
        if (!strcasecmp(ip, "none")) pub = -1;
        else if (ts_parse_bool(ip, &b) == 0) pub = b ? 1 : 0;
        else {
            rc = ts_err_set(err, TS_EINVAL, "Invalid is_public filter [%s]", ip);
            goto out;
        }
    }
    if (!req->auth->is_admin) {
        ts_buf_appends(&sql, " AND (is_public = 1 OR flavorid IN (SELECT flavorid FROM flavor_projects WHERE "
                       "project_id = ?))");
        args[n++] = TS_DB_S(req->auth->project_id);
    } else if (pub == 1) {
        ts_buf_appends(&sql, " AND (is_public = 1 OR flavorid IN (SELECT flavorid FROM flavor_projects WHERE "
                       "project_id = ?))");
        args[n++] = TS_DB_S(req->auth->project_id);
    } else if (pub == 0) {
        ts_buf_appends(&sql, " AND is_public = 0");
    }
    const char *v;
    int64_t iv;
    if ((v = ts_http_query(req, "minRam"))) {
        if (ts_parse_int64(v, &iv) < 0) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid minRam filter [%s]", v);
            goto out;
        }
        ts_buf_appends(&sql, " AND memory_mb >= ?");
        args[n++] = TS_DB_I(iv);
    }
    if ((v = ts_http_query(req, "minDisk"))) {
        if (ts_parse_int64(v, &iv) < 0) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid minDisk filter [%s]", v);
            goto out;
        }
        ts_buf_appends(&sql, " AND root_gb >= ?");
        args[n++] = TS_DB_I(iv);
    }
    const char *sk = ts_http_query(req, "sort_key"), *sd = ts_http_query(req, "sort_dir");
    static const char *const keys[][2] = {{"flavorid", "flavorid"}, {"id", "id"}, {"name", "name"},
                                          {"memory_mb", "memory_mb"}, {"vcpus", "vcpus"}, {"root_gb", "root_gb"},
                                          {"swap", "swap"}, {"ephemeral_gb", "ephemeral_gb"},
                                          {"rxtx_factor", "rxtx_factor"}, {"created_at", "created_at"}};
    const char *col = "flavorid";
    if (sk) {
        col = NULL;
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
            if (!strcmp(keys[i][0], sk)) col = keys[i][1];
        if (!col) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid input for query parameters sort_key. Value: %s.", sk);
            goto out;
        }
    }
    bool desc = sd && !strcasecmp(sd, "desc");
    ts_buf_printf(&sql, " ORDER BY %s %s", col, desc ? "DESC" : "ASC");
    rc = ts_db_exec(svc->db, ts_buf_cstr(&sql), args, n, &res, err);
    if (rc) goto out;
    if (detail && mv >= 61) {
        rc = ts_db_exec(svc->db, "SELECT flavorid, key, value FROM flavor_extra_specs", TS_DB_NOARGS, &specs, err);
        if (rc) goto out;
    }
    json_t *allspecs = json_object();
    for (int i = 0; specs && i < specs->nrows; i++) {
        const char *fid = ts_db_res_get(specs, i, 0);
        json_t *o = json_object_get(allspecs, fid);
        if (!o) {
            o = json_object();
            json_object_set_new(allspecs, fid, o);
        }
        ts_json_set_str(o, ts_db_res_get(specs, i, 1), ts_db_res_get(specs, i, 2));
    }
    int64_t limit = 1000;
    bool limit_given = false;
    if ((v = ts_http_query(req, "limit"))) {
        if (ts_parse_int64(v, &limit) < 0 || limit < 0) {
            json_decref(allspecs);
            rc = ts_err_set(err, TS_EINVAL, "Invalid input for query parameters limit. Value: %s.", v);
            goto out;
        }
        limit_given = true;
    }
    const char *marker = ts_http_query(req, "marker");
    bool past = marker == NULL;
    json_t *arr = json_array();
    const char *last = NULL;
    for (int i = 0; i < res->nrows; i++) {
        const char *fid = ts_db_res_get(res, i, 0);
        if (!past) {
            if (ts_streq(fid, marker)) past = true;
            continue;
        }
        if ((int64_t)json_array_size(arr) >= limit) break;
        json_array_append_new(arr, flavor_view(req, mv, res, i, detail, json_object_get(allspecs, fid)));
        last = fid;
    }
    json_decref(allspecs);
    if (!past) {
        json_decref(arr);
        rc = ts_err_set(err, TS_EINVAL, "marker [%s] not found", marker);
        goto out;
    }
    json_t *body = json_pack("{s:o}", "flavors", arr);
    if (limit_given && last && (int64_t)json_array_size(arr) == limit) {
        char *href = ts_asprintf("%s/v2.1/flavors%s?limit=%lld&marker=%s", ts_compute_base(req),
                                 detail ? "/detail" : "", (long long)limit, last);
        json_object_set_new(body, "flavors_links", json_pack("[{s:s, s:s}]", "rel", "next", "href", href));
        free(href);
    }
    ts_http_resp_json(resp, 200, body);
out:
    ts_db_res_free(res);
    ts_db_res_free(specs);
    ts_buf_free(&sql);
    return rc;
}

TS_COMPUTE_HANDLER(flavors_list) { return flavors_list_common(req, resp, err, false); }
TS_COMPUTE_HANDLER(flavors_detail) { return flavors_list_common(req, resp, err, true); }

static int flavor_show(struct ts_http_req *req, struct ts_http_resp *resp, int mv, const char *id, struct ts_err *err)
{
    struct ts_db_res *res = NULL;
    int rc = flavor_load(req, id, &res, err);
    if (rc) return rc;
    json_t *specs = specs_of(req->svc, id);
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "flavor", flavor_view(req, mv, res, 0, true, specs)));
    json_decref(specs);
    ts_db_res_free(res);
    return 0;
}

TS_COMPUTE_HANDLER(flavors_show)
{
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    return flavor_show(req, resp, mv, ts_http_param(req, "id"), err);
}

/* An int field given as integer or decimal string within [min, max]; absent -> def. */
static int int_field(const json_t *o, const char *key, int64_t min, int64_t max, int64_t def, bool required,
                     int64_t *out, struct ts_err *err)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (required) return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute flavor. '%s' is a required "
                                        "property", key);
        *out = def;
        return 0;
    }
    int64_t x;
    if (json_is_integer(v)) x = json_integer_value(v);
    else if (!json_is_string(v) || ts_parse_int64(json_string_value(v), &x) < 0)
        return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute %s. Value: %s. is not of type "
                          "'integer', 'string'", key, json_is_string(v) ? json_string_value(v) : "?");
    if (x < min || x > max)
        return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute %s. Value: %lld. %lld is %s the %s of "
                          "%lld", key, (long long)x, (long long)x, x < min ? "less than" : "greater than",
                          x < min ? "minimum" : "maximum", (long long)(x < min ? min : max));
    *out = x;
    return 0;
}

TS_COMPUTE_HANDLER(flavors_create)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_admin(req, err))) return rc;
    json_t *body = NULL;
    rc = ts_http_json_body(req, &body, err);
    if (rc) return rc;
    json_t *f = json_object_get(body, "flavor");
    char idbuf[TS_UUID_LEN + 1];
    if (!json_is_object(f)) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute flavor. 'flavor' is a required property");
        goto out;
    }
    const char *name = JS(f, "name");
    if (!name || !*name || strlen(name) > 255 || name[0] == ' ' || name[strlen(name) - 1] == ' ') {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute name. Value: %s.", name ? name : "None");
        goto out;
    }
    int64_t ram, vcpus, disk, eph, swap;
    if ((rc = int_field(f, "ram", 1, 0x7fffffff, 0, true, &ram, err))) goto out;
    if ((rc = int_field(f, "vcpus", 1, 0x7fffffff, 0, true, &vcpus, err))) goto out;
    if ((rc = int_field(f, "disk", 0, 0x7fffffff, 0, true, &disk, err))) goto out;
    if ((rc = int_field(f, "OS-FLV-EXT-DATA:ephemeral", 0, 0x7fffffff, 0, false, &eph, err))) goto out;
    if ((rc = int_field(f, "swap", 0, 0x7fffffff, 0, false, &swap, err))) goto out;
    double rxtx = 1.0;
    json_t *rx = json_object_get(f, "rxtx_factor");
    if (rx && !json_is_null(rx)) {
        if (!json_is_number(rx) || json_number_value(rx) <= 0) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute rxtx_factor.");
            goto out;
        }
        rxtx = json_number_value(rx);
    }
    json_t *pubj = json_object_get(f, "os-flavor-access:is_public");
    bool pub = true;
    if (pubj && !json_is_null(pubj)) {
        if (json_is_boolean(pubj)) pub = json_is_true(pubj);
        else if (!json_is_string(pubj) || ts_parse_bool(json_string_value(pubj), &pub) < 0) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute os-flavor-access:is_public.");
            goto out;
        }
    }
    json_t *idj = json_object_get(f, "id");
    const char *id = NULL;
    if (json_is_string(idj) && strcmp(json_string_value(idj), "auto")) id = json_string_value(idj);
    else if (json_is_integer(idj)) id = ts_pool_printf(req->pool, "%lld", (long long)json_integer_value(idj));
    else if (idj && !json_is_null(idj) && !json_is_string(idj)) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute id.");
        goto out;
    }
    if (!id) {
        ts_uuid(idbuf);
        id = idbuf;
    }
    if (!*id || strlen(id) > 255 || id[0] == ' ' || strchr(id, '/')) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute id. Value: %s.", id);
        goto out;
    }
    const char *desc = mv >= 55 ? JS(f, "description") : NULL;
    struct ts_db_res *res = NULL;
    rc = ts_db_exec(svc->db, "SELECT flavorid, name FROM flavors WHERE flavorid = ? OR name = ?",
                    TS_DB_ARGS(TS_DB_S(id), TS_DB_S(name)), &res, err);
    if (rc) goto out;
    for (int i = 0; i < res->nrows && !rc; i++) {
        if (ts_streq(ts_db_res_get(res, i, 1), name))
            rc = ts_err_set(err, TS_ECONFLICT, "Flavor with name %s already exists.", name);
        else
            rc = ts_err_set(err, TS_ECONFLICT, "Flavor with ID %s already exists.", id);
    }
    ts_db_res_free(res);
    if (rc) goto out;
    rc = ts_db_exec(svc->db,
                    "INSERT INTO flavors (flavorid, name, vcpus, memory_mb, root_gb, ephemeral_gb, swap, rxtx_factor, "
                    "is_public, description, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    TS_DB_ARGS(TS_DB_S(id), TS_DB_S(name), TS_DB_I(vcpus), TS_DB_I(ram), TS_DB_I(disk), TS_DB_I(eph),
                               TS_DB_I(swap), TS_DB_D(rxtx), TS_DB_B(pub), TS_DB_S(desc), TS_DB_D(ts_now())),
                    NULL, err);
    if (rc == -TS_ECONFLICT) rc = ts_err_set(err, TS_ECONFLICT, "Flavor with name %s already exists.", name);
    if (rc) goto out;
    rc = flavor_show(req, resp, mv, id, err);
out:
    return rc;
}

TS_COMPUTE_HANDLER(flavors_update)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if (mv < 55) return ts_err_set(err, TS_EMETHOD, "Method not allowed");
    if ((rc = ts_compute_check_admin(req, err))) return rc;
    const char *id = ts_http_param(req, "id");
    struct ts_db_res *res = NULL;
    json_t *body = NULL;
    if ((rc = flavor_load(req, id, &res, err))) return rc;
    ts_db_res_free(res);
    rc = ts_http_json_body(req, &body, err);
    if (rc) return rc;
    json_t *f = json_object_get(body, "flavor");
    json_t *d = json_object_get(f, "description");
    if (!json_is_object(f) || !d || (!json_is_null(d) && !json_is_string(d))) {
        return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute flavor. 'description' is a required "
                          "property");
    }
    rc = ts_db_exec(svc->db, "UPDATE flavors SET description = ? WHERE flavorid = ?",
                    TS_DB_ARGS(TS_DB_S(json_string_value(d)), TS_DB_S(id)), NULL, err);
    if (rc) return rc;
    return flavor_show(req, resp, mv, id, err);
}

TS_COMPUTE_HANDLER(flavors_delete)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_admin(req, err))) return rc;
    const char *id = ts_http_param(req, "id");
    struct ts_db_res *res = NULL;
    rc = ts_db_exec(svc->db, "DELETE FROM flavors WHERE flavorid = ?", TS_DB_ARGS(TS_DB_S(id)), &res, err);
    if (rc) return rc;
    int64_t ch = res->changes;
    ts_db_res_free(res);
    if (!ch) return ts_err_set(err, TS_ENOTFOUND, "Flavor %s could not be found.", id);
    ts_db_exec(svc->db, "DELETE FROM flavor_extra_specs WHERE flavorid = ?", TS_DB_ARGS(TS_DB_S(id)), NULL, NULL);
    ts_db_exec(svc->db, "DELETE FROM flavor_projects WHERE flavorid = ?", TS_DB_ARGS(TS_DB_S(id)), NULL, NULL);
    ts_http_resp_json(resp, 202, NULL);
    return 0;
}

static json_t *access_list(struct ts_compute_svc *svc, const char *id)
{
    struct ts_db_res *res = NULL;
    json_t *arr = json_array();
    if (ts_db_exec(svc->db, "SELECT project_id FROM flavor_projects WHERE flavorid = ? ORDER BY project_id",
                   TS_DB_ARGS(TS_DB_S(id)), &res, NULL) == 0)
        for (int i = 0; i < res->nrows; i++)
            json_array_append_new(arr, json_pack("{s:s, s:s}", "flavor_id", id, "tenant_id", ts_db_res_get(res, i, 0)));
    ts_db_res_free(res);
    return arr;
}

TS_COMPUTE_HANDLER(flavor_access_list)
{
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_admin(req, err))) return rc;
    const char *id = ts_http_param(req, "id");
    struct ts_db_res *res = NULL;
    if ((rc = flavor_load(req, id, &res, err))) return rc;
    bool pub = ts_db_res_int(res, 0, 8, 1) != 0;
    ts_db_res_free(res);
    if (pub) return ts_err_set(err, TS_ENOTFOUND, "Access list not available for public flavors.");
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "flavor_access", access_list(req->svc, id)));
    return 0;
}

TS_COMPUTE_HANDLER(flavors_action)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_admin(req, err))) return rc;
    const char *id = ts_http_param(req, "id");
    struct ts_db_res *res = NULL;
    json_t *body = NULL;
    if ((rc = flavor_load(req, id, &res, err))) return rc;
    bool pub = ts_db_res_int(res, 0, 8, 1) != 0;
    ts_db_res_free(res);
    res = NULL;
    rc = ts_http_json_body(req, &body, err);
    if (rc) return rc;
    json_t *add = json_object_get(body, "addTenantAccess"), *rem = json_object_get(body, "removeTenantAccess");
    const char *tenant = JS(add ? add : rem, "tenant");
    if ((!add && !rem) || !tenant || !*tenant) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute tenant.");
        goto out;
    }
    if (pub) {
        rc = ts_err_set(err, TS_ECONFLICT, "Can not add access to a public flavor.");
        goto out;
    }
    if (add) {
        rc = ts_db_exec(svc->db, "INSERT INTO flavor_projects (flavorid, project_id) VALUES (?, ?)",
                        TS_DB_ARGS(TS_DB_S(id), TS_DB_S(tenant)), NULL, err);
        if (rc == -TS_ECONFLICT)
            rc = ts_err_set(err, TS_ECONFLICT, "Flavor access already exists for flavor %s and project %s combination.",
                            id, tenant);
    } else {
        rc = ts_db_exec(svc->db, "DELETE FROM flavor_projects WHERE flavorid = ? AND project_id = ?",
                        TS_DB_ARGS(TS_DB_S(id), TS_DB_S(tenant)), &res, err);
        if (!rc && res->changes == 0)
            rc = ts_err_set(err, TS_ENOTFOUND, "Flavor access not found for %s / %s combination.", id, tenant);
    }
    if (!rc) ts_http_resp_json(resp, 200, json_pack("{s:o}", "flavor_access", access_list(svc, id)));
out:
    ts_db_res_free(res);
    return rc;
}

TS_COMPUTE_HANDLER(flavor_specs_list)
{
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    const char *id = ts_http_param(req, "id");
    struct ts_db_res *res = NULL;
    if ((rc = flavor_load(req, id, &res, err))) return rc;
    ts_db_res_free(res);
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "extra_specs", specs_of(req->svc, id)));
    return 0;
}

static int specs_write(struct ts_compute_svc *svc, const char *id, json_t *specs, struct ts_err *err)
{
    const char *k;
    json_t *v;
    json_object_foreach(specs, k, v) {
        size_t kl = strlen(k);
        if (kl < 1 || kl > 255) return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute extra_specs.");
        char num[64];
        const char *val = json_string_value(v);
        if (json_is_integer(v)) {
            snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
            val = num;
        } else if (json_is_boolean(v)) {
            val = json_is_true(v) ? "True" : "False";
        } else if (json_is_real(v)) {
            snprintf(num, sizeof(num), "%g", json_real_value(v));
            val = num;
        }
        if (!val || strlen(val) > 255)
            return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute extra_specs. Value: %s.", k);
        for (const char *p = k; *p; p++)
            if (!(isalnum((unsigned char)*p) || strchr("-_:. ", *p)))
                return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute extra_specs. Value: %s.", k);
    }
    json_object_foreach(specs, k, v) {
        char num[64];
        const char *val = json_string_value(v);
        if (json_is_integer(v)) {
            snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
            val = num;
        } else if (json_is_boolean(v)) {
            val = json_is_true(v) ? "True" : "False";
        } else if (json_is_real(v)) {
            snprintf(num, sizeof(num), "%g", json_real_value(v));
            val = num;
        }
        int rc = ts_db_exec(svc->db, "INSERT INTO flavor_extra_specs (flavorid, key, value) VALUES (?, ?, ?) ON "
                            "CONFLICT (flavorid, key) DO UPDATE SET value = excluded.value",
                            TS_DB_ARGS(TS_DB_S(id), TS_DB_S(k), TS_DB_S(val)), NULL, err);
        if (rc) return rc;
        json_object_set_new(specs, k, json_string(val));
    }
    return 0;
}

TS_COMPUTE_HANDLER(flavor_specs_create)
{
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_admin(req, err))) return rc;
    const char *id = ts_http_param(req, "id");
    struct ts_db_res *res = NULL;
    json_t *body = NULL;
    if ((rc = flavor_load(req, id, &res, err))) return rc;
    ts_db_res_free(res);
    rc = ts_http_json_body(req, &body, err);
    if (rc) return rc;
    json_t *specs = json_object_get(body, "extra_specs");
    if (!json_is_object(specs)) rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute extra_specs.");
    else rc = specs_write(req->svc, id, specs, err);
    if (!rc) ts_http_resp_json(resp, 200, json_pack("{s:O}", "extra_specs", specs));
    return rc;
}

TS_COMPUTE_HANDLER(flavor_spec_show)
{
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    const char *id = ts_http_param(req, "id"), *key = ts_http_param(req, "key");
    struct ts_db_res *res = NULL;
    if ((rc = flavor_load(req, id, &res, err))) return rc;
    ts_db_res_free(res);
    json_t *s = specs_of(req->svc, id);
    json_t *v = json_object_get(s, key);
    if (!v) rc = ts_err_set(err, TS_ENOTFOUND, "Flavor %s has no extra specs with key %s.", id, key);
    else ts_http_resp_json(resp, 200, json_pack("{s:O}", key, v));
    json_decref(s);
    return rc;
}

TS_COMPUTE_HANDLER(flavor_spec_put)
{
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_admin(req, err))) return rc;
    const char *id = ts_http_param(req, "id"), *key = ts_http_param(req, "key");
    struct ts_db_res *res = NULL;
    json_t *body = NULL;
    if ((rc = flavor_load(req, id, &res, err))) return rc;
    ts_db_res_free(res);
    rc = ts_http_json_body(req, &body, err);
    if (rc) return rc;
    if (!json_is_object(body) || json_object_size(body) != 1) rc = ts_err_set(err, TS_EINVAL, "Request body contains too "
                                                                              "many items");
    else if (!json_object_get(body, key)) rc = ts_err_set(err, TS_EINVAL, "Request body and URI mismatch");
    else rc = specs_write(req->svc, id, body, err);
    if (!rc) ts_http_resp_json(resp, 200, json_incref(body));
    return rc;
}

TS_COMPUTE_HANDLER(flavor_spec_delete)
{
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_admin(req, err))) return rc;
    const char *id = ts_http_param(req, "id"), *key = ts_http_param(req, "key");
    struct ts_db_res *res = NULL;
    rc = ts_db_exec(((struct ts_compute_svc *)req->svc)->db, "DELETE FROM flavor_extra_specs WHERE flavorid = ? AND key = ?",
                    TS_DB_ARGS(TS_DB_S(id), TS_DB_S(key)), &res, err);
    if (!rc && res->changes == 0) rc = ts_err_set(err, TS_ENOTFOUND, "Flavor %s has no extra specs with key %s.", id, key);
    ts_db_res_free(res);
    if (!rc) ts_http_resp_json(resp, 200, NULL);
    return rc;
}

/* ---- keypairs ------------------------------------------------------------------------ */

static void put_u32(struct ts_buf *b, uint32_t v)
{
    unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
                          (unsigned char)v};
    ts_buf_append(b, x, 4);
}

static void put_mpint(struct ts_buf *b, const BIGNUM *bn)
{
    int n = BN_num_bytes(bn);
    unsigned char *tmp = ts_malloc((size_t)n + 1);
    tmp[0] = 0;
    BN_bn2bin(bn, tmp + 1);
    bool pad = n > 0 && (tmp[1] & 0x80);
    put_u32(b, (uint32_t)(n + (pad ? 1 : 0)));
    ts_buf_append(b, pad ? tmp : tmp + 1, (size_t)n + (pad ? 1 : 0));
    free(tmp);
}

static void md5_fingerprint(const unsigned char *blob, size_t len, char out[48])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(blob, len, md, &n, EVP_md5(), NULL);
    size_t o = 0;
    for (unsigned i = 0; i < n && o + 3 < 48; i++) o += (size_t)snprintf(out + o, 48 - o, "%s%02x", i ? ":" : "", md[i]);
}

/* Generates an RSA-2048 key: OpenSSH public key, PEM private key, fingerprint. */
static int keypair_generate(char **pub, char **priv, char fp[48], struct ts_err *err)
{
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    if (!pkey) return ts_err_set(err, TS_EIO, "key generation failed");
    BIGNUM *n = NULL, *e = NULL;
    int rc = 0;
    unsigned char *pem = NULL;
    size_t pem_len = 0;
    struct ts_buf blob;
    ts_buf_init(&blob, 0);
    if (!EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) || !EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e)) {
        rc = ts_err_set(err, TS_EIO, "key generation failed");
        goto out;
    }
    put_u32(&blob, 7);
    ts_buf_append(&blob, "ssh-rsa", 7);
    put_mpint(&blob, e);
    put_mpint(&blob, n);
    OSSL_ENCODER_CTX *ectx = OSSL_ENCODER_CTX_new_for_pkey(pkey, OSSL_KEYMGMT_SELECT_KEYPAIR, "PEM", "type-specific",
                                                           NULL);
    if (!ectx || !OSSL_ENCODER_to_data(ectx, &pem, &pem_len)) {
        OSSL_ENCODER_CTX_free(ectx);
        rc = ts_err_set(err, TS_EIO, "key encoding failed");
        goto out;
    }
    OSSL_ENCODER_CTX_free(ectx);
    char *b64 = ts_b64_encode((const unsigned char *)blob.data, blob.len);
    *pub = ts_asprintf("ssh-rsa %s Generated-by-Nova", b64);
    free(b64);
    *priv = ts_strndup((const char *)pem, pem_len);
    md5_fingerprint((const unsigned char *)blob.data, blob.len, fp);
out:
    OPENSSL_free(pem);
    BN_free(n);
    BN_free(e);
    EVP_PKEY_free(pkey);
    ts_buf_free(&blob);
    return rc;
}

/* Validates an OpenSSH public key and computes Nova's fingerprint. */
static int keypair_fingerprint(const char *pub, char fp[48], struct ts_err *err)
{
    int rc = ts_err_set(err, TS_EINVAL, "Keypair data is invalid: failed to generate fingerprint");
    char *copy = ts_strdup(pub);
    char *save = NULL;
    char *type = strtok_r(copy, " \t\r\n", &save);
    char *data = type ? strtok_r(NULL, " \t\r\n", &save) : NULL;
    unsigned char *blob = NULL;
    size_t blen = 0;
    if (!type || !data) goto out;
    if (strcmp(type, "ssh-rsa") && strcmp(type, "ssh-ed25519") && strcmp(type, "ssh-dss") &&
        strncmp(type, "ecdsa-sha2-", 11))
        goto out;
    if (ts_b64_decode(data, strlen(data), &blob, &blen) < 0 || blen < 4) goto out;
    uint32_t tl = ((uint32_t)blob[0] << 24) | ((uint32_t)blob[1] << 16) | ((uint32_t)blob[2] << 8) | blob[3];
    if (tl != strlen(type) || 4 + (size_t)tl > blen || memcmp(blob + 4, type, tl)) goto out;
    md5_fingerprint(blob, blen, fp);
    rc = 0;
    ts_err_clear(err);
out:
    free(blob);
    free(copy);
    return rc;
}

static json_t *keypair_view(const struct ts_db_res *res, int r, int mv, bool full)
{
    /* columns: name, public_key, fingerprint, type, user_id, created_at, id */
    json_t *k = json_pack("{s:s, s:s, s:s}", "name", ts_db_res_get(res, r, 0), "public_key",
                          ts_db_res_get(res, r, 1) ? ts_db_res_get(res, r, 1) : "", "fingerprint",
                          ts_db_res_get(res, r, 2) ? ts_db_res_get(res, r, 2) : "");
    if (mv >= 2) json_object_set_new(k, "type", json_string(ts_db_res_get(res, r, 3)));
    if (full) {
        char t[32];
        ts_compute_iso_us(strtod(ts_db_res_get(res, r, 5) ? ts_db_res_get(res, r, 5) : "0", NULL), t);
        json_object_set_new(k, "user_id", json_string(ts_db_res_get(res, r, 4)));
        json_object_set_new(k, "created_at", json_string(t));
        json_object_set_new(k, "deleted", json_false());
        json_object_set_new(k, "deleted_at", json_null());
        json_object_set_new(k, "updated_at", json_null());
        json_object_set_new(k, "id", json_integer(ts_db_res_int(res, r, 6, 0)));
    }
    return k;
}

#define KEY_COLS "name, public_key, fingerprint, type, user_id, created_at, id"

static const char *key_user(struct ts_http_req *req, int mv)
{
    const char *u = mv >= 10 && req->auth->is_admin ? ts_http_query(req, "user_id") : NULL;
    return u ? u : req->auth->user_id;
}

TS_COMPUTE_HANDLER(keypairs_list)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    struct ts_db_res *res = NULL;
    rc = ts_db_exec(svc->db, "SELECT " KEY_COLS " FROM keypairs WHERE user_id = ? ORDER BY name",
                    TS_DB_ARGS(TS_DB_S(key_user(req, mv))), &res, err);
    if (rc) return rc;
    int64_t limit = 1000000;
    const char *v = mv >= 35 ? ts_http_query(req, "limit") : NULL, *marker = mv >= 35 ? ts_http_query(req, "marker") : NULL;
    if (v && (ts_parse_int64(v, &limit) < 0 || limit < 0)) {
        ts_db_res_free(res);
        return ts_err_set(err, TS_EINVAL, "Invalid input for query parameters limit. Value: %s.", v);
    }
    bool past = !marker;
    json_t *arr = json_array();
    const char *last = NULL;
    for (int i = 0; i < res->nrows; i++) {
        if (!past) {
            if (ts_streq(ts_db_res_get(res, i, 0), marker)) past = true;
            continue;
        }
        if ((int64_t)json_array_size(arr) >= limit) break;
        json_array_append_new(arr, json_pack("{s:o}", "keypair", keypair_view(res, i, mv, false)));
        last = ts_db_res_get(res, i, 0);
    }
    if (!past) {
        json_decref(arr);
        ts_db_res_free(res);
        return ts_err_set(err, TS_EINVAL, "marker [%s] not found", marker);
    }
    json_t *body = json_pack("{s:o}", "keypairs", arr);
    if (v && last && (int64_t)json_array_size(arr) == limit) {
        char *href = ts_asprintf("%s/v2.1/os-keypairs?limit=%lld&marker=%s", ts_compute_base(req), (long long)limit,
                                 ts_url_encode(req->pool, last, false));
        json_object_set_new(body, "keypairs_links", json_pack("[{s:s, s:s}]", "rel", "next", "href", href));
        free(href);
    }
    ts_db_res_free(res);
    ts_http_resp_json(resp, 200, body);
    return 0;
}

TS_COMPUTE_HANDLER(keypairs_show)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    struct ts_db_res *res = NULL;
    const char *name = ts_http_param(req, "name");
    const char *user = key_user(req, mv);
    rc = ts_db_exec(svc->db, "SELECT " KEY_COLS " FROM keypairs WHERE user_id = ? AND name = ?",
                    TS_DB_ARGS(TS_DB_S(user), TS_DB_S(name)), &res, err);
    if (rc) return rc;
    if (res->nrows == 0) rc = ts_err_set(err, TS_ENOTFOUND, "Keypair %s not found for user %s", name, user);
    else ts_http_resp_json(resp, 200, json_pack("{s:o}", "keypair", keypair_view(res, 0, mv, true)));
    ts_db_res_free(res);
    return rc;
}

TS_COMPUTE_HANDLER(keypairs_create)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_writer(req, err))) return rc;
    json_t *body = NULL;
    char *pub = NULL, *priv = NULL;
    struct ts_db_res *res = NULL;
    rc = ts_http_json_body(req, &body, err);
    if (rc) return rc;
    json_t *k = json_object_get(body, "keypair");
    const char *name = JS(k, "name");
    if (!json_is_object(k)) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute keypair. 'keypair' is a required property");
        goto out;
    }
    if (!name || !*name || strlen(name) > 255) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute name. Value: %s.", name ? name : "None");
        goto out;
    }
    for (const char *p = name; *p; p++) {
        if (!(isalnum((unsigned char)*p) || strchr("-_ .@", *p))) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute name. Value: %s. Keypair name contains "
                            "unsafe characters", name);
            goto out;
        }
    }
    const char *type = mv >= 2 && JS(k, "type") ? JS(k, "type") : "ssh";
    if (strcmp(type, "ssh") && strcmp(type, "x509")) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute type. Value: %s.", type);
        goto out;
    }
    const char *user = mv >= 10 && req->auth->is_admin && JS(k, "user_id") ? JS(k, "user_id") : req->auth->user_id;
    const char *pk = JS(k, "public_key");
    char fp[48] = "";
    if (pk) {
        if ((rc = keypair_fingerprint(pk, fp, err))) goto out;
        pub = ts_strdup(pk);
    } else {
        if (mv >= 92) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute keypair. 'public_key' is required");
            goto out;
        }
        if ((rc = keypair_generate(&pub, &priv, fp, err))) goto out;
    }
    int64_t lim = ts_compute_quota_limit(svc, req->auth->project_id, "key_pairs");
    rc = ts_db_exec(svc->db, "SELECT COUNT(*) FROM keypairs WHERE user_id = ?", TS_DB_ARGS(TS_DB_S(user)), &res, err);
    if (rc) goto out;
    if (lim >= 0 && ts_db_res_int(res, 0, 0, 0) >= lim) {
        rc = ts_err_set_full(err, TS_EQUOTA, 403, NULL, "Quota exceeded, too many key pairs.");
        goto out;
    }
    rc = ts_db_exec(svc->db, "INSERT INTO keypairs (user_id, name, fingerprint, public_key, type, created_at) VALUES "
                    "(?, ?, ?, ?, ?, ?)", TS_DB_ARGS(TS_DB_S(user), TS_DB_S(name), TS_DB_S(fp), TS_DB_S(pub),
                                                     TS_DB_S(type), TS_DB_D(ts_now())), NULL, err);
    if (rc == -TS_ECONFLICT) rc = ts_err_set(err, TS_ECONFLICT, "Key pair '%s' already exists.", name);
    if (rc) goto out;
    json_t *v = json_pack("{s:s, s:s, s:s, s:s}", "name", name, "public_key", pub, "fingerprint", fp, "user_id", user);
    if (mv >= 2) json_object_set_new(v, "type", json_string(type));
    if (priv) json_object_set_new(v, "private_key", json_string(priv));
    ts_http_resp_json(resp, mv >= 2 ? 201 : 200, json_pack("{s:o}", "keypair", v));
out:
    ts_db_res_free(res);
    free(pub);
    free(priv);
    return rc;
}

TS_COMPUTE_HANDLER(keypairs_delete)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_writer(req, err))) return rc;
    const char *name = ts_http_param(req, "name");
    const char *user = key_user(req, mv);
    struct ts_db_res *res = NULL;
    rc = ts_db_exec(svc->db, "DELETE FROM keypairs WHERE user_id = ? AND name = ?", TS_DB_ARGS(TS_DB_S(user),
                    TS_DB_S(name)), &res, err);
    if (!rc && res->changes == 0) rc = ts_err_set(err, TS_ENOTFOUND, "Keypair %s not found for user %s", name, user);
    ts_db_res_free(res);
    if (!rc) ts_http_resp_json(resp, mv >= 2 ? 204 : 202, NULL);
    return rc;
}

/* ---- quotas and limits ---------------------------------------------------------------- */

struct usage {
    int64_t instances, cores, ram, key_pairs, server_groups;
};

static int usage_of(struct ts_compute_svc *svc, const char *project, const char *user, struct usage *u,
                    struct ts_err *err)
{
    struct ts_db_res *res = NULL;
    int rc = ts_db_exec(svc->db,
                        "SELECT (SELECT COUNT(*) FROM instances WHERE project_id = ? AND deleted = 0), "
                        "(SELECT COALESCE(SUM(vcpus), 0) FROM instances WHERE project_id = ? AND deleted = 0), "
                        "(SELECT COALESCE(SUM(memory_mb), 0) FROM instances WHERE project_id = ? AND deleted = 0), "
                        "(SELECT COUNT(*) FROM keypairs WHERE user_id = ?), "
                        "(SELECT COUNT(*) FROM server_groups WHERE project_id = ?)",
                        TS_DB_ARGS(TS_DB_S(project), TS_DB_S(project), TS_DB_S(project), TS_DB_S(user ? user : ""),
                                   TS_DB_S(project)),
                        &res, err);
    if (rc) return rc;
    u->instances = ts_db_res_int(res, 0, 0, 0);
    u->cores = ts_db_res_int(res, 0, 1, 0);
    u->ram = ts_db_res_int(res, 0, 2, 0);
    u->key_pairs = ts_db_res_int(res, 0, 3, 0);
    u->server_groups = ts_db_res_int(res, 0, 4, 0);
    ts_db_res_free(res);
    return 0;
}

static int64_t usage_get(const struct usage *u, const char *r)
{
    if (!strcmp(r, "instances")) return u->instances;
    if (!strcmp(r, "cores")) return u->cores;
    if (!strcmp(r, "ram")) return u->ram;
    if (!strcmp(r, "key_pairs")) return u->key_pairs;
    if (!strcmp(r, "server_groups")) return u->server_groups;
    return 0;
}

/* Builds the quota_set for project; mode 0 = limits, 1 = detail, 2 = defaults. */
static json_t *quota_set(struct ts_compute_svc *svc, int mv, const char *project, const char *user, int mode,
                         bool with_id)
{
    json_t *q = json_object();
    struct usage u = {0};
    if (mode == 1) usage_of(svc, project, user, &u, NULL);
    for (int i = 0; ts_compute_quota_resources[i]; i++) {
        const char *r = ts_compute_quota_resources[i];
        if (mv >= 57 && !strncmp(r, "injected_file", 13)) continue;
        int64_t lim = mode == 2 ? ts_compute_quota_default(svc->env->conf, r) : ts_compute_quota_limit(svc, project, r);
        if (mode == 1)
            json_object_set_new(q, r, json_pack("{s:I, s:I, s:i}", "in_use", (json_int_t)usage_get(&u, r), "limit",
                                                (json_int_t)lim, "reserved", 0));
        else
            json_object_set_new(q, r, json_integer(lim));
    }
    if (mv < 36) {
        /* the network quotas shown before 2.36 (Nova no longer shows "networks"): the
         * project's stored value (set through this API) or the default */
        static const char *const legacy[][2] = {{"fixed_ips", "-1"}, {"floating_ips", "10"},
                                                {"security_group_rules", "20"}, {"security_groups", "10"}};
        for (size_t i = 0; i < sizeof(legacy) / sizeof(legacy[0]); i++) {
            int64_t v = strtoll(legacy[i][1], NULL, 10);
            struct ts_db_res *res = NULL;
            if (mode != 2 &&
                ts_db_exec(svc->db, "SELECT hard_limit FROM quotas WHERE project_id = ? AND resource = ?",
                           TS_DB_ARGS(TS_DB_S(project), TS_DB_S(legacy[i][0])), &res, NULL) == 0 &&
                res->nrows > 0)
                v = ts_db_res_int(res, 0, 0, v);
            ts_db_res_free(res);
            if (mode == 1)
                json_object_set_new(q, legacy[i][0], json_pack("{s:i, s:I, s:i}", "in_use", 0, "limit",
                                                               (json_int_t)v, "reserved", 0));
            else
                json_object_set_new(q, legacy[i][0], json_integer(v));
        }
    }
    if (with_id) json_object_set_new(q, "id", json_string(project));
    return q;
}

static int quota_access(struct ts_http_req *req, const char *project, struct ts_err *err)
{
    if (req->auth->is_admin || ts_streq(project, req->auth->project_id)) return 0;
    return ts_err_set(err, TS_EFORBIDDEN, "Policy doesn't allow os_compute_api:os-quota-sets:show to be performed.");
}

TS_COMPUTE_HANDLER(quotas_show)
{
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    const char *p = ts_http_param(req, "project");
    if ((rc = quota_access(req, p, err))) return rc;
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "quota_set", quota_set(req->svc, mv, p, NULL, 0, true)));
    return 0;
}

TS_COMPUTE_HANDLER(quotas_detail)
{
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    const char *p = ts_http_param(req, "project");
    if ((rc = quota_access(req, p, err))) return rc;
    const char *user = ts_http_query(req, "user_id");
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "quota_set", quota_set(req->svc, mv, p,
                                                                           user ? user : req->auth->user_id, 1, true)));
    return 0;
}

TS_COMPUTE_HANDLER(quotas_defaults)
{
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "quota_set", quota_set(req->svc, mv, ts_http_param(req, "project"),
                                                                           NULL, 2, true)));
    return 0;
}

TS_COMPUTE_HANDLER(quota_class_show)
{
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    json_t *q = quota_set(req->svc, mv, ts_http_param(req, "name"), NULL, 2, true);
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "quota_class_set", q));
    return 0;
}

TS_COMPUTE_HANDLER(quotas_update)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_admin(req, err))) return rc;
    const char *p = ts_http_param(req, "project");
    json_t *body = NULL;
    rc = ts_http_json_body(req, &body, err);
    if (rc) return rc;
    json_t *qs = json_object_get(body, "quota_set");
    if (!json_is_object(qs)) {
        rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute quota_set.");
        goto out;
    }
    const char *k;
    json_t *v;
    json_object_foreach(qs, k, v) {
        if (!strcmp(k, "force") || !strcmp(k, "id")) continue;
        bool known = false;
        for (int i = 0; ts_compute_quota_resources[i]; i++)
            if (!strcmp(ts_compute_quota_resources[i], k)) known = true;
        bool legacy = !strcmp(k, "fixed_ips") || !strcmp(k, "floating_ips") || !strcmp(k, "networks") ||
                      !strcmp(k, "security_groups") || !strcmp(k, "security_group_rules");
        if (!known && !(legacy && mv < 36)) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute quota_set. Additional properties are "
                            "not allowed ('%s' was unexpected)", k);
            goto out;
        }
        int64_t x;
        if (json_is_integer(v)) x = json_integer_value(v);
        else if (!json_is_string(v) || ts_parse_int64(json_string_value(v), &x) < 0) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute %s. Value: %s.", k,
                            json_is_string(v) ? json_string_value(v) : "?");
            goto out;
        }
        if (x < -1) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute %s. Value: %lld. %lld is less than the "
                            "minimum of -1", k, (long long)x, (long long)x);
            goto out;
        }
    }
    json_object_foreach(qs, k, v) {
        if (!strcmp(k, "force") || !strcmp(k, "id")) continue;
        int64_t x;
        if (json_is_integer(v)) x = json_integer_value(v);
        else ts_parse_int64(json_string_value(v), &x);
        rc = ts_db_exec(svc->db, "INSERT INTO quotas (project_id, resource, hard_limit) VALUES (?, ?, ?) ON CONFLICT "
                        "(project_id, resource) DO UPDATE SET hard_limit = excluded.hard_limit",
                        TS_DB_ARGS(TS_DB_S(p), TS_DB_S(k), TS_DB_I(x)), NULL, err);
        if (rc) goto out;
    }
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "quota_set", quota_set(svc, mv, p, NULL, 0, false)));
out:
    return rc;
}

TS_COMPUTE_HANDLER(quotas_delete)
{
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_admin(req, err))) return rc;
    rc = ts_db_exec(((struct ts_compute_svc *)req->svc)->db, "DELETE FROM quotas WHERE project_id = ?",
                    TS_DB_ARGS(TS_DB_S(ts_http_param(req, "project"))), NULL, err);
    if (!rc) ts_http_resp_json(resp, 202, NULL);
    return rc;
}

TS_COMPUTE_HANDLER(limits)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    const char *p = req->auth->project_id;
    const char *tq = ts_http_query(req, "tenant_id");
    if (tq && req->auth->is_admin) p = tq;
    struct usage u = {0};
    if ((rc = usage_of(svc, p, req->auth->user_id, &u, err))) return rc;
#define L(r) (json_int_t) ts_compute_quota_limit(svc, p, r)
    json_t *a = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "maxServerMeta", L("metadata_items"),
                          "maxTotalInstances", L("instances"), "maxTotalCores", L("cores"), "maxTotalRAMSize", L("ram"),
                          "maxTotalKeypairs", L("key_pairs"), "maxServerGroups", L("server_groups"),
                          "maxServerGroupMembers", L("server_group_members"), "totalCoresUsed", (json_int_t)u.cores,
                          "totalRAMUsed", (json_int_t)u.ram, "totalInstancesUsed", (json_int_t)u.instances,
                          "totalServerGroupsUsed", (json_int_t)u.server_groups);
    json_object_set_new(a, "maxImageMeta", json_integer(128));
    if (mv < 57) {
        json_object_set_new(a, "maxPersonality", json_integer(L("injected_files")));
        json_object_set_new(a, "maxPersonalitySize", json_integer(L("injected_file_content_bytes")));
    }
#undef L
    if (mv < 36) {
        json_object_set_new(a, "maxSecurityGroupRules", json_integer(20));
        json_object_set_new(a, "maxSecurityGroups", json_integer(10));
        json_object_set_new(a, "maxTotalFloatingIps", json_integer(10));
        json_object_set_new(a, "totalFloatingIpsUsed", json_integer(0));
        json_object_set_new(a, "totalSecurityGroupsUsed", json_integer(0));
    }
    ts_http_resp_json(resp, 200, json_pack("{s:{s:[], s:o}}", "limits", "rate", "absolute", a));
    return 0;
}
