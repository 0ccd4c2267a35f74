/*
 * ts_compute_api_migrations.c: GET /os-migrations (admin): the migration records resizes
 * leave (pre-migrating, migrating, finished, confirmed, reverting, reverted, error), newest
 * first, filtered by host, status, instance_uuid and migration_type, with the fields of
 * each microversion (migration_type from 2.23, uuid from 2.59, user and project from 2.80).
 */
#include "compute/api/ts_compute_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/ts_json.h"

static json_t *time_or_null(const char *v)
{
    if (!v) return json_null();
    char t[32];
    ts_compute_iso_us(strtod(v, NULL), t);
    return json_string(t);
}

static json_t *str_or_null(const char *v) { return v ? json_string(v) : json_null(); }

TS_COMPUTE_HANDLER(migrations_list)
{
    struct ts_compute_svc *svc = req->svc;
    int mv;
    int rc = ts_compute_begin(req, resp, err, &mv);
    if (rc) return rc;
    if ((rc = ts_compute_check_admin(req, err))) return rc;
    const char *host = ts_http_query(req, "host"), *status = ts_http_query(req, "status");
    const char *inst = ts_http_query(req, "instance_uuid"), *type = ts_http_query(req, "migration_type");
    struct ts_db_res *res = NULL;
    rc = ts_db_exec(svc->db,
                    "SELECT id, uuid, instance_uuid, project_id, user_id, source_compute, dest_compute, status, "
                    "migration_type, created_at, updated_at FROM migrations WHERE (? IS NULL OR source_compute = ? OR "
                    "dest_compute = ?) AND (? IS NULL OR status = ?) AND (? IS NULL OR instance_uuid = ?) AND (? IS "
                    "NULL OR migration_type = ?) ORDER BY created_at DESC, id DESC LIMIT 1000",
                    TS_DB_ARGS(TS_DB_S(host), TS_DB_S(host), TS_DB_S(host), TS_DB_S(status), TS_DB_S(status),
                               TS_DB_S(inst), TS_DB_S(inst), TS_DB_S(type), TS_DB_S(type)),
                    &res, err);
    if (rc) return rc;
    json_t *arr = json_array();
    for (int i = 0; i < res->nrows; i++) {
        const char *src = ts_db_res_get(res, i, 5), *dst = ts_db_res_get(res, i, 6);
        json_t *m = json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:n, s:n, s:o, s:o}", "id",
                              (json_int_t)ts_db_res_int(res, i, 0, 0), "status", str_or_null(ts_db_res_get(res, i, 7)),
                              "instance_uuid", str_or_null(ts_db_res_get(res, i, 2)), "source_node", str_or_null(src),
                              "source_compute", str_or_null(src), "dest_node", str_or_null(dst), "dest_compute",
                              str_or_null(dst), "dest_host", str_or_null(NULL), "old_instance_type_id",
                              "new_instance_type_id", "created_at", time_or_null(ts_db_res_get(res, i, 9)),
                              "updated_at", time_or_null(ts_db_res_get(res, i, 10)));
        if (mv >= 23) json_object_set_new(m, "migration_type", str_or_null(ts_db_res_get(res, i, 8)));
        if (mv >= 59) json_object_set_new(m, "uuid", str_or_null(ts_db_res_get(res, i, 1)));
        if (mv >= 80) {
            json_object_set_new(m, "user_id", str_or_null(ts_db_res_get(res, i, 4)));
            json_object_set_new(m, "project_id", str_or_null(ts_db_res_get(res, i, 3)));
        }
        json_array_append_new(arr, m);
    }
    ts_db_res_free(res);
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "migrations", arr));
    return 0;
}
