/*
 * ts_volume_qos.c: QoS specs (admin only): named key/value sets with a consumer
 * (front-end, back-end, both) that volume types are associated with. tinystack stores
 * and reports them; the file backend does not throttle.
 */
#include "volume/ts_volume_int.h"

#include <stdlib.h>
#include <string.h>

static int need_admin(struct ts_http_req *req, struct ts_err *err)
{
    if (!req->auth->is_admin)
        return ts_err_set(err, TS_EFORBIDDEN,
                          "Policy doesn't allow volume_extension:qos_specs_manage to be performed.");
    return 0;
}

static json_t *qos_view(struct ts_volume_svc *svc, const struct ts_db_res *r, int i)
{
    const char *id = ts_db_res_get(r, i, 0);
    return json_pack("{s:s, s:s, s:s, s:o}", "id", id, "name", ts_db_res_get(r, i, 1), "consumer",
                     ts_db_res_get(r, i, 2), "specs", ts_volume_metadata(svc, "qos_spec_keys", "qos_id", id));
}

static int qos_load(struct ts_volume_svc *svc, const char *id, struct ts_db_res **out, struct ts_err *err)
{
    struct ts_db_res *r = NULL;
    int rc = ts_db_exec(svc->db, "SELECT id, name, consumer FROM qos_specs WHERE id = ?",
                        TS_DB_ARGS(TS_DB_S(id ? id : "")), &r, err);
    if (rc) return rc;
    if (r->nrows == 0) {
        ts_db_res_free(r);
        return ts_err_set(err, TS_ENOTFOUND, "QoS Specs %s could not be found.", id ? id : "");
    }
    *out = r;
    return 0;
}

static json_t *links_for(struct ts_http_req *req, const char *id)
{
    const char *host = ts_http_header(req, "Host");
    char *href =
        ts_asprintf("http://%s/v3/%s/qos-specs/%s", host ? host : "localhost", req->auth->project_id, id);
    json_t *l =
        json_pack("[{s:s, s:s}, {s:s, s:s}]", "rel", "self", "href", href, "rel", "bookmark", "href", href);
    free(href);
    return l;
}

int ts_volume_h_qos_create(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = need_admin(req, err))) return rc;
    json_t *body = NULL, *q = NULL;
    if ((rc = ts_http_json_body(req, &body, err))) return rc;
    if ((rc = ts_json_body_object(body, "qos_specs", &q, err))) return rc;
    const char *name = ts_json_str(q, "name", NULL), *consumer = ts_json_str(q, "consumer", "back-end");
    if (!json_is_string(json_object_get(q, "name")) || !*name || strlen(name) > 255)
        return ts_err_set(err, TS_EINVAL,
                          "Invalid input received: QoS specs name must be a non-empty string");
    if (strcmp(consumer, "front-end") && strcmp(consumer, "back-end") && strcmp(consumer, "both"))
        return ts_err_set(err, TS_EINVAL,
                          "Invalid input received: consumer must be front-end, back-end or both");
    json_t *specs = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(q, k, v)
    {
        if (!strcmp(k, "name") || !strcmp(k, "consumer")) continue;
        if (!json_is_string(v)) {
            json_decref(specs);
            return ts_err_set(err, TS_EINVAL, "Invalid input received: QoS spec %s must be a string", k);
        }
        json_object_set(specs, k, v);
    }
    char id[TS_UUID_LEN + 1], now[32];
    ts_uuid(id);
    ts_volume_now(now);
    rc = ts_db_exec(svc->db, "INSERT INTO qos_specs (id, name, consumer, created_at) VALUES (?, ?, ?, ?)",
                    TS_DB_ARGS(TS_DB_S(id), TS_DB_S(name), TS_DB_S(consumer), TS_DB_S(now)), NULL, err);
    if (rc == -TS_ECONFLICT) rc = ts_err_set(err, TS_ECONFLICT, "QoS Specs %s already exists.", name);
    if (rc == 0) rc = ts_volume_metadata_set(svc, "qos_spec_keys", "qos_id", id, specs, false, err);
    json_decref(specs);
    if (rc) return rc;
    struct ts_db_res *r = NULL;
    if ((rc = qos_load(svc, id, &r, err))) return rc;
    ts_http_resp_json(resp, 200,
                      json_pack("{s:o, s:o}", "qos_specs", qos_view(svc, r, 0), "links", links_for(req, id)));
    ts_db_res_free(r);
    return 0;
}

int ts_volume_h_qos_list(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = need_admin(req, err))) return rc;
    struct ts_db_res *r = NULL;
    if ((rc = ts_db_exec(svc->db, "SELECT id, name, consumer FROM qos_specs ORDER BY created_at",
                         TS_DB_NOARGS, &r, err)))
        return rc;
    json_t *arr = json_array();
    for (int i = 0; i < r->nrows; i++)
        json_array_append_new(arr, qos_view(svc, r, i));
    ts_db_res_free(r);
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "qos_specs", arr));
    return 0;
}

int ts_volume_h_qos_show(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = need_admin(req, err))) return rc;
    const char *id = ts_http_param(req, "qos_id");
    struct ts_db_res *r = NULL;
    if ((rc = qos_load(svc, id, &r, err))) return rc;
    ts_http_resp_json(resp, 200,
                      json_pack("{s:o, s:o}", "qos_specs", qos_view(svc, r, 0), "links", links_for(req, id)));
    ts_db_res_free(r);
    return 0;
}

int ts_volume_h_qos_set(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = need_admin(req, err))) return rc;
    const char *id = ts_http_param(req, "qos_id");
    struct ts_db_res *r = NULL;
    json_t *body = NULL;
    if ((rc = qos_load(svc, id, &r, err))) return rc;
    ts_db_res_free(r);
    if ((rc = ts_http_json_body(req, &body, err))) return rc;
    json_t *q = json_object_get(body, "qos_specs");
    if (!json_is_object(q)) return ts_err_set(err, TS_EINVAL, "Malformed request body");
    if ((rc = ts_volume_metadata_set(svc, "qos_spec_keys", "qos_id", id, q, false, err))) return rc;
    ts_http_resp_json(resp, 200, json_pack("{s:O}", "qos_specs", q));
    return 0;
}

int ts_volume_h_qos_delete_keys(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = need_admin(req, err))) return rc;
    const char *id = ts_http_param(req, "qos_id");
    struct ts_db_res *r = NULL;
    json_t *body = NULL;
    if ((rc = qos_load(svc, id, &r, err))) return rc;
    ts_db_res_free(r);
    if ((rc = ts_http_json_body(req, &body, err))) return rc;
    json_t *keys = json_object_get(body, "keys");
    if (!json_is_array(keys)) return ts_err_set(err, TS_EINVAL, "Malformed request body");
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k)
    {
        if (!json_is_string(k)) return ts_err_set(err, TS_EINVAL, "Malformed request body");
        struct ts_db_res *d = NULL;
        if ((rc = ts_db_exec(svc->db, "DELETE FROM qos_spec_keys WHERE qos_id = ? AND key = ?",
                             TS_DB_ARGS(TS_DB_S(id), TS_DB_S(json_string_value(k))), &d, err)))
            return rc;
        int64_t ch = d->changes;
        ts_db_res_free(d);
        if (ch == 0)
            return ts_err_set(err, TS_ENOTFOUND, "QoS spec %s has no key %s.", id, json_string_value(k));
    }
    ts_http_resp_body(resp, 202, NULL, "", 0);
    return 0;
}

int ts_volume_h_qos_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = need_admin(req, err))) return rc;
    const char *id = ts_http_param(req, "qos_id");
    struct ts_db_res *r = NULL;
    if ((rc = qos_load(svc, id, &r, err))) return rc;
    ts_db_res_free(r);
    bool force = false;
    const char *f = ts_http_query(req, "force");
    if (f) ts_parse_bool(f, &force);
    if ((rc = ts_db_exec(svc->db, "SELECT COUNT(*) FROM volume_types WHERE qos_specs_id = ?",
                         TS_DB_ARGS(TS_DB_S(id)), &r, err)))
        return rc;
    int64_t n = ts_db_res_int(r, 0, 0, 0);
    ts_db_res_free(r);
    if (n > 0 && !force)
        return ts_err_set(err, TS_EINVAL, "QoS Specs %s is still associated with entities.", id);
    ts_db_exec(svc->db, "UPDATE volume_types SET qos_specs_id = NULL WHERE qos_specs_id = ?",
               TS_DB_ARGS(TS_DB_S(id)), NULL, NULL);
    ts_db_exec(svc->db, "DELETE FROM qos_spec_keys WHERE qos_id = ?", TS_DB_ARGS(TS_DB_S(id)), NULL, NULL);
    if ((rc = ts_db_exec(svc->db, "DELETE FROM qos_specs WHERE id = ?", TS_DB_ARGS(TS_DB_S(id)), NULL, err)))
        return rc;
    ts_http_resp_body(resp, 202, NULL, "", 0);
    return 0;
}

/* GET /qos-specs/{id}/{op}: associate, disassociate, disassociate_all, associations */
int ts_volume_h_qos_op(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_volume_svc *svc = req->svc;
    int mv, rc = ts_volume_begin(req, resp, &mv, err);
    if (rc) return rc;
    if ((rc = need_admin(req, err))) return rc;
    const char *id = ts_http_param(req, "qos_id"), *op = ts_http_param(req, "op");
    struct ts_db_res *r = NULL;
    if ((rc = qos_load(svc, id, &r, err))) return rc;
    ts_db_res_free(r);
    r = NULL;
    if (!strcmp(op, "associations")) {
        if ((rc =
                 ts_db_exec(svc->db, "SELECT id, name FROM volume_types WHERE qos_specs_id = ? ORDER BY name",
                            TS_DB_ARGS(TS_DB_S(id)), &r, err)))
            return rc;
        json_t *arr = json_array();
        for (int i = 0; i < r->nrows; i++)
            json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "association_type", "volume_type", "id",
                                                 ts_db_res_get(r, i, 0), "name", ts_db_res_get(r, i, 1)));
        ts_db_res_free(r);
        ts_http_resp_json(resp, 200, json_pack("{s:o}", "qos_associations", arr));
        return 0;
    }
    if (!strcmp(op, "disassociate_all")) {
        ts_db_exec(svc->db, "UPDATE volume_types SET qos_specs_id = NULL WHERE qos_specs_id = ?",
                   TS_DB_ARGS(TS_DB_S(id)), NULL, NULL);
        ts_http_resp_body(resp, 202, NULL, "", 0);
        return 0;
    }
    if (strcmp(op, "associate") && strcmp(op, "disassociate"))
        return ts_err_set(err, TS_ENOTFOUND, "The resource could not be found.");
    const char *tid = ts_http_query(req, "vol_type_id");
    if (!tid) return ts_err_set(err, TS_EINVAL, "Volume Type id must not be None.");
    if ((rc = ts_db_exec(svc->db, "SELECT qos_specs_id FROM volume_types WHERE id = ?",
                         TS_DB_ARGS(TS_DB_S(tid)), &r, err)))
        return rc;
    bool found = r->nrows > 0;
    const char *cur = found ? ts_db_res_get(r, 0, 0) : NULL;
    bool other = cur && strcmp(cur, id) != 0;
    ts_db_res_free(r);
    if (!found) return ts_err_set(err, TS_ENOTFOUND, "Volume type %s could not be found.", tid);
    if (!strcmp(op, "associate")) {
        if (other)
            return ts_err_set(err, TS_EINVAL, "Volume type %s is already associated with another qos specs",
                              tid);
        ts_db_exec(svc->db, "UPDATE volume_types SET qos_specs_id = ? WHERE id = ?",
                   TS_DB_ARGS(TS_DB_S(id), TS_DB_S(tid)), NULL, NULL);
    } else {
        ts_db_exec(svc->db, "UPDATE volume_types SET qos_specs_id = NULL WHERE id = ? AND qos_specs_id = ?",
                   TS_DB_ARGS(TS_DB_S(tid), TS_DB_S(id)), NULL, NULL);
    }
    ts_http_resp_body(resp, 202, NULL, "", 0);
    return 0;
}
