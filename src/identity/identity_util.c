/*
 * identity_util.c: small helpers shared by the identity handlers: queries, rows as JSON,
 * links, notifications and policy checks.
 */
#include <stdio.h>
#include <string.h>

#include "identity/identity_int.h"
#include "json/ts_json.h"

int id_q(struct ident *id, const char *sql, const struct ts_db_val *args, int nargs, struct ts_db_res **res,
         struct ts_err *err)
{
    int rc = ts_db_exec(id->db, sql, args, nargs, res, err);
    if (rc < 0 && rc != -TS_ECONFLICT) ts_error("identity", "sql failed: %s", err ? err->msg : sql);
    return rc;
}

json_t *id_row_json(const struct ts_db_res *res, int r)
{
    json_t *o = json_object();
    for (int c = 0; c < res->ncols; c++) {
        const char *v = ts_db_res_get(res, r, c);
        json_object_set_new(o, res->cols[c], v ? json_string(v) : json_null());
    }
    return o;
}

json_t *id_links(struct ident *id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *path = ts_vasprintf(fmt, ap);
    va_end(ap);
    char *url = ts_asprintf("%s/v3/%s", id->base_url, path);
    json_t *l = json_pack("{s:s}", "self", url);
    free(path);
    free(url);
    return l;
}

json_t *id_collection_links(struct ident *id, struct ts_http_req *req)
{
    char *url = ts_asprintf("%s%s%s%s", id->base_url, req->raw_path, req->query[0] ? "?" : "", req->query);
    json_t *l = json_pack("{s:s,s:n,s:n}", "self", url, "previous", "next");
    free(url);
    return l;
}

void id_notify(struct ident *id, const char *resource, const char *operation, const char *resource_id)
{
    if (!id->bus) return;
    char ev[128];
    snprintf(ev, sizeof(ev), "identity.%s.%s", resource, operation);
    ts_bus_notify(id->bus, "identity.localhost", ev, "INFO", json_pack("{s:s}", "resource_info", resource_id));
}

void id_now_iso(char out[32])
{
    ts_time_iso(ts_now(), 6, out);
}

bool id_is_admin(const struct ts_http_req *req)
{
    return req->auth && req->auth->authenticated && req->auth->is_admin;
}

int id_forbid(struct ts_err *err, const char *rule)
{
    return ts_err_set(err, TS_EFORBIDDEN, "You are not authorized to perform the requested action: %s.", rule);
}

int id_require_admin(struct ts_http_req *req, const char *rule, struct ts_err *err)
{
    if (id_is_admin(req)) return 0;
    return id_forbid(err, rule);
}
