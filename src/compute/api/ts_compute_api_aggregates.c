/*
 * ts_compute_api_aggregates.c: host aggregates (/os-aggregates, admin only): create, list,
 * show, update, delete, and the add_host / remove_host / set_metadata actions, with Nova's
 * bodies and errors. An aggregate's availability zone (its "availability_zone" metadata) is
 * the zone of its hosts: the scheduler and the availability-zone check of server create read
 * it through the aggregate tables (ts_compute_sched_changed() after every change).
 */
#include "compute/api/ts_compute_api.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/ts_json.h"

#define AGG_COLS "id, uuid, name, availability_zone, created_at, updated_at"

static json_t *time_or_null(const char *v)
{
    if (!v) return json_null();
    char t[32];
    ts_compute_iso_us(strtod(v, NULL), t);
    return json_string(t);
}

/* One aggregate row (AGG_COLS) as Nova shows it; hosts and metadata from the maps (keyed by
 * id as text) unless for_create. */
static json_t *agg_view(int mv, const struct ts_db_res *res, int r, json_t *hosts, json_t *meta, bool for_create)
{
    const char *id = ts_db_res_get(res, r, 0), *az = ts_db_res_get(res, r, 3);
    json_t *a = json_pack("{s:I, s:s, s:o, s:o, s:b, s:n, s:o}", "id", (json_int_t)ts_db_res_int(res, r, 0, 0), "name",
                          ts_db_res_get(res, r, 2), "availability_zone", az ? json_string(az) : json_null(),
                          "created_at", time_or_null(ts_db_res_get(res, r, 4)), "deleted", false, "deleted_at",
                          "updated_at", time_or_null(ts_db_res_get(res, r, 5)));
    if (mv >= 41) ts_json_set_str(a, "uuid", ts_db_res_get(res, r, 1));
    if (!for_create) {
        json_t *h = json_object_get(hosts, id), *m = json_object_get(meta, id);
        json_object_set_new(a, "hosts", h ? json_incref(h) : json_array());
        json_object_set_new(a, "metadata", m ? json_incref(m) : json_object());
    }
    return a;
}

/* Hosts and metadata of the aggregates (one id, or all when id is NULL): two statements. */
static int load_members(struct ts_compute_svc *svc, const char *id, json_t **hosts, json_t **meta, struct ts_err *err)
{
    struct ts_db_res *res = NULL;
    *hosts = json_object();
    *meta = json_object();
    int rc = ts_db_exec(svc->db, "SELECT aggregate_id, host FROM aggregate_hosts WHERE (? IS NULL OR aggregate_id = ?) "
                        "ORDER BY host", TS_DB_ARGS(TS_DB_S(id), TS_DB_S(id)), &res, err);
    if (rc) return rc;
    for (int i = 0; i < res->nrows; i++) {
        const char *k = ts_db_res_get(res, i, 0);
        json_t *arr = json_object_get(*hosts, k);
        if (!arr) json_object_set_new(*hosts, k, arr = json_array());
        json_array_append_new(arr, json_string(ts_db_res_get(res, i, 1)));
    }
    ts_db_res_free(res);
    res = NULL;
    rc = ts_db_exec(svc->db, "SELECT aggregate_id, key, value FROM aggregate_metadata WHERE (? IS NULL OR "
                    "aggregate_id = ?)", TS_DB_ARGS(TS_DB_S(id), TS_DB_S(id)), &res, err);
    if (rc) return rc;
    for (int i = 0; i < res->nrows; i++) {
        const char *k = ts_db_res_get(res, i, 0);
        json_t *o = json_object_get(*meta, k);
        if (!o) json_object_set_new(*meta, k, o = json_object());
        ts_json_set_str(o, ts_db_res_get(res, i, 1), ts_db_res_get(res, i, 2));
    }
    ts_db_res_free(res);
    return 0;
}

/* The start of every handler on one aggregate (/os-aggregates/{id}...): the microversion into
 * *mv, admin only, and the aggregate id of the path (a positive number, else 404) into *out. */
static int agg_begin(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err, int *mv,
                     const char **out)
{
    int rc = ts_compute_begin(req, resp, err, mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_admin(req, err))) return rc;
    const char *id = ts_http_param(req, "id");
    int64_t n = 0;
    if (!id || ts_parse_int64(id, &n) < 0 || n <= 0)
        return ts_err_set(err, TS_ENOTFOUND, "Aggregate %s could not be found.", id ? id : "");
    *out = id;
    return 0;
}

/* 404 unless aggregate id exists; its availability zone ("" for none, a pool string) into *az
 * if az is not NULL. */
static int agg_load(struct ts_http_req *req, const char *id, const char **az, struct ts_err *err)
{
    struct ts_compute_svc *svc = req->svc;
    struct ts_db_res *res = NULL;
    int rc = ts_db_exec(svc->db, "SELECT availability_zone FROM aggregates WHERE id = ?", TS_DB_ARGS(TS_DB_S(id)),
                        &res, err);
    if (rc) return rc;
    if (res->nrows == 0) {
        rc = ts_err_set(err, TS_ENOTFOUND, "Aggregate %s could not be found.", id);
    } else if (az) {
        const char *v = ts_db_res_get(res, 0, 0);
        *az = ts_pool_strdup(req->pool, v ? v : "");
    }
    ts_db_res_free(res);
    return rc;
}

/* Renders {"aggregate": ...} of aggregate id with status 200. */
static int agg_show(struct ts_http_req *req, struct ts_http_resp *resp, int mv, const char *id, bool for_create,
                    struct ts_err *err)
{
    struct ts_compute_svc *svc = req->svc;
    struct ts_db_res *res = NULL;
    json_t *hosts = NULL, *meta = NULL;
    int rc = ts_db_exec(svc->db, "SELECT " AGG_COLS " FROM aggregates WHERE id = ?", TS_DB_ARGS(TS_DB_S(id)), &res,
                        err);
    if (rc) return rc;
    if (res->nrows == 0) {
        rc = ts_err_set(err, TS_ENOTFOUND, "Aggregate %s could not be found.", id);
        goto out;
    }
    if (!for_create && (rc = load_members(svc, id, &hosts, &meta, err))) goto out;
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "aggregate", agg_view(mv, res, 0, hosts, meta, for_create)));
out:
    ts_db_res_free(res);
    json_decref(hosts);
    json_decref(meta);
    return rc;
}

/* name (required on create) and availability_zone of a create/update body. */
static int check_fields(json_t *a, bool create, struct ts_err *err)
{
    if (!json_is_object(a)) return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute aggregate.");
    json_t *n = json_object_get(a, "name"), *z = json_object_get(a, "availability_zone");
    if (create && !n)
        return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute aggregate. 'name' is a required "
                          "property");
    if (n && (!json_is_string(n) || !*json_string_value(n) || strlen(json_string_value(n)) > 255 ||
              isspace((unsigned char)json_string_value(n)[0]) ||
              isspace((unsigned char)json_string_value(n)[strlen(json_string_value(n)) - 1])))
        return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute name.");
    if (z && !json_is_null(z) &&
        (!json_is_string(z) || !*json_string_value(z) || strlen(json_string_value(z)) > 255 ||
         strchr(json_string_value(z), ':')))
        return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute availability_zone.");
    const char *k;
    json_t *v;
    json_object_foreach(a, k, v) {
        if (strcmp(k, "name") && strcmp(k, "availability_zone"))
            return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute aggregate. Additional properties "
                              "are not allowed ('%s' was unexpected)", k);
    }
    return 0;
}

/* The availability_zone metadata key mirrors the column, as in Nova. */
static void set_az_meta(struct ts_compute_svc *svc, const char *id, const char *az)
{
    if (az)
        ts_db_exec(svc->db, "INSERT INTO aggregate_metadata (aggregate_id, key, value) VALUES (?, 'availability_zone', "
                   "?) ON CONFLICT (aggregate_id, key) DO UPDATE SET value = excluded.value",
                   TS_DB_ARGS(TS_DB_S(id), TS_DB_S(az)), NULL, NULL);
    else
        ts_db_exec(svc->db, "DELETE FROM aggregate_metadata WHERE aggregate_id = ? AND key = 'availability_zone'",
                   TS_DB_ARGS(TS_DB_S(id)), NULL, NULL);
}

static int name_taken(struct ts_compute_svc *svc, const char *name, const char *except, struct ts_err *err)
{
    struct ts_db_res *res = NULL;
    int rc = ts_db_exec(svc->db, "SELECT 1 FROM aggregates WHERE name = ? AND (? IS NULL OR id <> ?)",
                        TS_DB_ARGS(TS_DB_S(name), TS_DB_S(except), TS_DB_S(except)), &res, err);
    if (rc) return rc;
    if (res->nrows) rc = ts_err_set(err, TS_ECONFLICT, "Aggregate %s already exists.", name);
    ts_db_res_free(res);
    return rc;
}

TS_COMPUTE_HANDLER(aggregates_list)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_admin(req, err))) return rc;
    struct ts_db_res *res = NULL;
    json_t *hosts = NULL, *meta = NULL;
    rc = ts_db_exec(svc->db, "SELECT " AGG_COLS " FROM aggregates ORDER BY id", TS_DB_NOARGS, &res, err);
    if (rc) return rc;
    rc = load_members(svc, NULL, &hosts, &meta, err);
    if (!rc) {
        json_t *arr = json_array();
        for (int i = 0; i < res->nrows; i++) json_array_append_new(arr, agg_view(mv, res, i, hosts, meta, false));
        ts_http_resp_json(resp, 200, json_pack("{s:o}", "aggregates", arr));
    }
    ts_db_res_free(res);
    json_decref(hosts);
    json_decref(meta);
    return rc;
}

TS_COMPUTE_HANDLER(aggregates_create)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_admin(req, err))) return rc;
    json_t *body = NULL;
    if ((rc = ts_http_json_body(req, &body, err))) return rc;
    json_t *a = json_object_get(body, "aggregate");
    if (!json_is_object(body) || json_object_size(body) != 1 || !a)
        return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute aggregate. 'aggregate' is a required "
                          "property");
    if ((rc = check_fields(a, true, err))) return rc;
    const char *name = JS(a, "name"), *az = JS(a, "availability_zone");
    if ((rc = name_taken(svc, name, NULL, err))) return rc;
    char uuid[TS_UUID_LEN + 1];
    ts_uuid(uuid);
    struct ts_db_res *res = NULL;
    rc = ts_db_exec(svc->db, "INSERT INTO aggregates (uuid, name, availability_zone, created_at) VALUES (?, ?, ?, ?) "
                    "RETURNING id", TS_DB_ARGS(TS_DB_S(uuid), TS_DB_S(name), TS_DB_S(az), TS_DB_D(ts_now())), &res,
                    err);
    if (rc == -TS_ECONFLICT) rc = ts_err_set(err, TS_ECONFLICT, "Aggregate %s already exists.", name);
    if (rc) return rc;
    const char *id = ts_pool_strdup(req->pool, ts_db_res_get(res, 0, 0));
    ts_db_res_free(res);
    set_az_meta(svc, id, az);
    return agg_show(req, resp, mv, id, true, err);
}

TS_COMPUTE_HANDLER(aggregates_show)
{
    int mv;
    const char *id = NULL;
    int rc = agg_begin(req, resp, err, &mv, &id);
    if (rc) return rc;
    return agg_show(req, resp, mv, id, false, err);
}

TS_COMPUTE_HANDLER(aggregates_update)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    const char *id = NULL;
    int rc = agg_begin(req, resp, err, &mv, &id);
    if (rc) return rc;
    json_t *body = NULL;
    if ((rc = ts_http_json_body(req, &body, err))) return rc;
    json_t *a = json_object_get(body, "aggregate");
    if ((rc = check_fields(a, false, err))) return rc;
    if (!json_object_size(a))
        return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute aggregate. {} does not have enough "
                          "properties");
    if ((rc = agg_load(req, id, NULL, err))) return rc;
    const char *name = JS(a, "name");
    if (name && (rc = name_taken(svc, name, id, err))) return rc;
    json_t *z = json_object_get(a, "availability_zone");
    rc = ts_db_exec(svc->db, "UPDATE aggregates SET name = COALESCE(?, name), availability_zone = CASE WHEN ? = 1 "
                    "THEN ? ELSE availability_zone END, updated_at = ? WHERE id = ?",
                    TS_DB_ARGS(TS_DB_S(name), TS_DB_I(z ? 1 : 0), TS_DB_S(json_string_value(z)), TS_DB_D(ts_now()),
                               TS_DB_S(id)),
                    NULL, err);
    if (rc) return rc;
    if (z) {
        set_az_meta(svc, id, json_string_value(z));
        ts_compute_sched_changed();
    }
    return agg_show(req, resp, mv, id, false, err);
}

TS_COMPUTE_HANDLER(aggregates_delete)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    const char *id = NULL;
    int rc = agg_begin(req, resp, err, &mv, &id);
    if (rc) return rc;
    struct ts_db_res *res = NULL;
    rc = ts_db_exec(svc->db, "SELECT (SELECT COUNT(*) FROM aggregates WHERE id = ?), (SELECT COUNT(*) FROM "
                    "aggregate_hosts WHERE aggregate_id = ?)", TS_DB_ARGS(TS_DB_S(id), TS_DB_S(id)), &res, err);
    if (rc) return rc;
    int64_t found = ts_db_res_int(res, 0, 0, 0), nhosts = ts_db_res_int(res, 0, 1, 0);
    ts_db_res_free(res);
    if (!found) return ts_err_set(err, TS_ENOTFOUND, "Aggregate %s could not be found.", id);
    if (nhosts)
        return ts_err_set(err, TS_EINVAL, "Invalid aggregate action delete for aggregate %s. Reason: Host aggregate "
                          "is not empty.", id);
    ts_db_exec(svc->db, "DELETE FROM aggregate_metadata WHERE aggregate_id = ?", TS_DB_ARGS(TS_DB_S(id)), NULL, NULL);
    rc = ts_db_exec(svc->db, "DELETE FROM aggregates WHERE id = ?", TS_DB_ARGS(TS_DB_S(id)), NULL, err);
    if (rc) return rc;
    ts_http_resp_json(resp, 200, NULL);
    return 0;
}

static int add_host(struct ts_compute_svc *svc, const char *id, const char *az, const char *host, struct ts_err *err)
{
    struct ts_db_res *res = NULL;
    int rc = ts_db_exec(svc->db, "SELECT (SELECT COUNT(*) FROM services WHERE host = ? AND binary_name = "
                        "'nova-compute'), (SELECT COUNT(*) FROM aggregate_hosts WHERE aggregate_id = ? AND host = ?), "
                        "(SELECT MIN(a.availability_zone) FROM aggregate_hosts h JOIN aggregates a ON a.id = "
                        "h.aggregate_id WHERE h.host = ? AND a.availability_zone IS NOT NULL AND a.id <> ?)",
                        TS_DB_ARGS(TS_DB_S(host), TS_DB_S(id), TS_DB_S(host), TS_DB_S(host), TS_DB_S(id)), &res, err);
    if (rc) return rc;
    int64_t exists = ts_db_res_int(res, 0, 0, 0), member = ts_db_res_int(res, 0, 1, 0);
    const char *other_az = ts_db_res_get(res, 0, 2);
    if (!exists) rc = ts_err_set(err, TS_ENOTFOUND, "Compute host %s could not be found.", host);
    else if (member) rc = ts_err_set(err, TS_ECONFLICT, "Aggregate %s already has host %s.", id, host);
    else if (az && other_az && strcmp(az, other_az))
        rc = ts_err_set(err, TS_EINVAL, "Cannot add host to aggregate %s. Reason: One or more hosts already in "
                        "availability zone(s) ['%s'].", id, other_az);
    ts_db_res_free(res);
    if (rc) return rc;
    rc = ts_db_exec(svc->db, "INSERT INTO aggregate_hosts (aggregate_id, host) VALUES (?, ?)",
                    TS_DB_ARGS(TS_DB_S(id), TS_DB_S(host)), NULL, err);
    if (rc == -TS_ECONFLICT) rc = ts_err_set(err, TS_ECONFLICT, "Aggregate %s already has host %s.", id, host);
    return rc;
}

static int set_metadata(struct ts_compute_svc *svc, const char *id, json_t *md, struct ts_err *err)
{
    if (!json_is_object(md) || !json_object_size(md))
        return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute metadata.");
    const char *k;
    json_t *v;
    json_object_foreach(md, k, v) {
        if (!*k || strlen(k) > 255 || (!json_is_null(v) && (!json_is_string(v) || strlen(json_string_value(v)) > 255)))
            return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute metadata.");
    }
    json_object_foreach(md, k, v) {
        int rc;
        if (json_is_null(v))
            rc = ts_db_exec(svc->db, "DELETE FROM aggregate_metadata WHERE aggregate_id = ? AND key = ?",
                            TS_DB_ARGS(TS_DB_S(id), TS_DB_S(k)), NULL, err);
        else
            rc = ts_db_exec(svc->db, "INSERT INTO aggregate_metadata (aggregate_id, key, value) VALUES (?, ?, ?) ON "
                            "CONFLICT (aggregate_id, key) DO UPDATE SET value = excluded.value",
                            TS_DB_ARGS(TS_DB_S(id), TS_DB_S(k), TS_DB_S(json_string_value(v))), NULL, err);
        if (rc) return rc;
        if (!strcmp(k, "availability_zone")) {
            ts_db_exec(svc->db, "UPDATE aggregates SET availability_zone = ? WHERE id = ?",
                       TS_DB_ARGS(TS_DB_S(json_string_value(v)), TS_DB_S(id)), NULL, NULL);
            ts_compute_sched_changed();
        }
    }
    ts_db_exec(svc->db, "UPDATE aggregates SET updated_at = ? WHERE id = ?", TS_DB_ARGS(TS_DB_D(ts_now()), TS_DB_S(id)),
               NULL, NULL);
    return 0;
}

TS_COMPUTE_HANDLER(aggregates_action)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    const char *id = NULL;
    int rc = agg_begin(req, resp, err, &mv, &id);
    if (rc) return rc;
    json_t *body = NULL;
    if ((rc = ts_http_json_body(req, &body, err))) return rc;
    if (!json_is_object(body) || json_object_size(body) != 1) return ts_err_set(err, TS_EINVAL, "Malformed request body");
    void *it = json_object_iter(body);
    const char *name = json_object_iter_key(it);
    json_t *arg = json_object_iter_value(it);
    const char *az = "";
    if ((rc = agg_load(req, id, &az, err))) return rc;
    const char *host = JS(arg, "host");
    if (!strcmp(name, "add_host") || !strcmp(name, "remove_host")) {
        if (!json_is_object(arg) || !host || !*host || strlen(host) > 255 || json_object_size(arg) != 1)
            return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute %s. 'host' is a required property",
                              name);
    }
    if (!strcmp(name, "add_host")) {
        rc = add_host(svc, id, *az ? az : NULL, host, err);
    } else if (!strcmp(name, "remove_host")) {
        struct ts_db_res *res = NULL;
        rc = ts_db_exec(svc->db, "DELETE FROM aggregate_hosts WHERE aggregate_id = ? AND host = ?",
                        TS_DB_ARGS(TS_DB_S(id), TS_DB_S(host)), &res, err);
        if (!rc) {
            if (res->changes == 0)
                rc = ts_err_set(err, TS_ENOTFOUND, "Cannot remove host %s in aggregate %s", host, id);
            ts_db_res_free(res);
        }
    } else if (!strcmp(name, "set_metadata")) {
        if (!json_is_object(arg)) return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute set_metadata.");
        rc = set_metadata(svc, id, json_object_get(arg, "metadata"), err);
    } else {
        return ts_err_set(err, TS_EINVAL, "Invalid input for field/attribute %s. Additional properties are not allowed "
                          "('%s' was unexpected)", name, name);
    }
    if (rc) return rc;
    ts_compute_sched_changed();
    return agg_show(req, resp, mv, id, false, err);
}
