/*
 * identity_crud.c: the table-driven CRUD engine behind most Keystone resources (domains,
 * projects, users, groups, roles, services, endpoints, regions, credentials). A struct rdef
 * names the table, its columns with their types and limits, the query filters, hooks and
 * the policy; this file turns that into list/get/create/update/delete handlers with
 * Keystone's bodies, links and errors. Unknown attributes go to a JSON "extra" column when
 * the resource allows them, as Keystone does.
 */
#include <stdio.h>
#include <string.h>

#include "identity/identity_int.h"
#include "json/ts_json.h"

const struct rdef *crud_find(const char *plural)
{
    for (int i = 0; id_rdefs[i]; i++)
        if (!strcmp(id_rdefs[i]->plural, plural)) return id_rdefs[i];
    return NULL;
}

/* The resource is the first segment after /v3/. */
static const struct rdef *rdef_of(struct ts_http_req *req)
{
    const char *p = req->path;
    if (ts_startswith(p, "/v3/")) p += 4;
    char seg[64];
    size_t n = strcspn(p, "/");
    if (ts_startswith(p, "OS-") && p[n] == '/') n += 1 + strcspn(p + n + 1, "/"); /* OS-OAUTH1/consumers */
    if (n >= sizeof(seg)) return NULL;
    memcpy(seg, p, n);
    seg[n] = 0;
    return crud_find(seg);
}

static const struct col *col_find(const struct rdef *d, const char *name)
{
    for (const struct col *c = d->cols; c->name; c++)
        if (!strcmp(c->name, name)) return c;
    return NULL;
}

/* A DB row (text cells) to JSON by the column kinds, with extra merged. */
json_t *crud_row_json(const struct rdef *d, const struct ts_db_res *res, int r)
{
    json_t *o = json_object();
    for (int ci = 0; ci < res->ncols; ci++) {
        const char *name = res->cols[ci];
        const char *v = ts_db_res_get(res, r, ci);
        if (!strcmp(name, "extra")) {
            if (v && *v) {
                json_t *x = json_loads(v, 0, NULL);
                if (json_is_object(x)) json_object_update_missing(o, x);
                json_decref(x);
            }
            continue;
        }
        const struct col *c = col_find(d, name);
        if (!c) continue; /* internal columns (password hashes, counters) stay inside */
        if (!v) {
            json_object_set_new(o, name, json_null());
        } else if (c->kind == COL_BOOL) {
            json_object_set_new(o, name, json_boolean(strcmp(v, "0") != 0));
        } else if (c->kind == COL_INT) {
            json_object_set_new(o, name, json_integer(strtoll(v, NULL, 10)));
        } else {
            json_object_set_new(o, name, json_string(v));
        }
    }
    return o;
}

int crud_load(struct ident *id, const struct rdef *d, const char *key, json_t **out, struct ts_err *err)
{
    struct ts_db_res *res = NULL;
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT * FROM %s WHERE id = ?", d->table);
    int rc = id_q(id, sql, TS_DB_ARGS(TS_DB_S(key)), &res, err);
    if (rc < 0) return rc;
    if (res->nrows == 0) {
        ts_db_res_free(res);
        return ts_err_set(err, TS_ENOTFOUND, "Could not find %s: %s.", d->singular, key);
    }
    *out = crud_row_json(d, res, 0);
    ts_db_res_free(res);
    return 0;
}

json_t *crud_render(struct ident *id, const struct rdef *d, const json_t *row)
{
    json_t *o = json_deep_copy(row);
    if (d->render) d->render(id, d, o);
    json_object_set_new(o, "links", id_links(id, "%s/%s", d->plural, json_string_value(json_object_get(o, "id"))));
    return o;
}

static int authorize(struct ident *id, struct ts_http_req *req, const struct rdef *d, const char *action,
                     const json_t *obj, struct ts_err *err)
{
    if (d->authorize) return d->authorize(id, req, action, obj, err);
    char rule[96];
    snprintf(rule, sizeof(rule), "identity:%s_%s", action, !strcmp(action, "list") ? d->plural : d->singular);
    return id_require_admin(req, rule, err);
}

int crud_list(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    const struct rdef *d = rdef_of(req);
    if (!d) return ts_err_set(err, TS_ENOTFOUND, "The resource could not be found.");
    int rc = authorize(id, req, d, "list", NULL, err);
    if (rc < 0 && !d->owner_list) return rc;
    ts_err_clear(err);

    struct ts_buf sql;
    ts_buf_init(&sql, 8192);
    struct ts_db_val args[16];
    int nargs = 0;
    ts_buf_printf(&sql, "SELECT * FROM %s WHERE 1=1", d->table);
    for (int i = 0; d->filters && d->filters[i] && nargs < 16; i++) {
        const char *f = d->filters[i];
        const char *v = ts_http_query(req, f);
        if (!v) continue;
        const struct col *c = col_find(d, f);
        if (!c) continue;
        if (c->kind == COL_BOOL) {
            bool b;
            if (ts_parse_bool(v, &b) < 0) {
                ts_buf_free(&sql);
                return ts_err_set(err, TS_EINVAL, "Invalid value for filter %s: %s", f, v);
            }
            args[nargs++] = TS_DB_I(b);
        } else {
            args[nargs++] = TS_DB_S(v);
        }
        ts_buf_printf(&sql, " AND %s = ?", f);
    }
    if (d->scope_col && !ts_http_query(req, d->scope_col) && nargs < 16) {
        ts_buf_printf(&sql, " AND %s = ?", d->scope_col);
        args[nargs++] = TS_DB_S(d->scope_default);
    } else if (d->scope_col && nargs < 16) {
        ts_buf_printf(&sql, " AND %s = ?", d->scope_col);
        args[nargs++] = TS_DB_S(ts_http_query(req, d->scope_col));
    }
    ts_buf_appends(&sql, " ORDER BY id");
    struct ts_db_res *res = NULL;
    rc = id_q(id, ts_buf_cstr(&sql), args, nargs, &res, err);
    ts_buf_free(&sql);
    if (rc < 0) return rc;
    json_t *arr = json_array();
    for (int r = 0; r < res->nrows; r++) {
        json_t *row = crud_row_json(d, res, r);
        if (!d->visible || d->visible(id, req, row)) json_array_append_new(arr, crud_render(id, d, row));
        json_decref(row);
    }
    ts_db_res_free(res);
    json_t *body = json_object();
    const char *key = strrchr(d->plural, '/'); /* OS-OAUTH1/consumers lists "consumers" */
    json_object_set_new(body, key ? key + 1 : d->plural, arr);
    json_object_set_new(body, "links", id_collection_links(id, req));
    ts_http_resp_json(resp, 200, body);
    return 0;
}

int crud_get(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    const struct rdef *d = rdef_of(req);
    if (!d) return ts_err_set(err, TS_ENOTFOUND, "The resource could not be found.");
    const char *key = ts_http_param(req, "id");
    json_t *row = NULL;
    int rc = crud_load(id, d, key, &row, err);
    if (rc == -TS_ENOTFOUND && !id_is_admin(req) && d->authorize) {
        /* do not tell non-admins what exists: the policy answer comes first */
        struct ts_err e2 = {0};
        if (d->authorize(id, req, "get", NULL, &e2) < 0) {
            *err = e2;
            return -e2.code;
        }
    }
    if (rc < 0) return rc;
    rc = authorize(id, req, d, "get", row, err);
    if (rc == 0) {
        json_t *body = json_object();
        json_object_set_new(body, d->singular, crud_render(id, d, row));
        ts_http_resp_json(resp, 200, body);
    }
    json_decref(row);
    return rc;
}

/* Checks an input object against the columns; moves unknown keys to extra (or rejects). */
static int validate(const struct rdef *d, json_t *in, bool creating, struct ts_err *err)
{
    const char *k;
    json_t *v;
    json_object_foreach(in, k, v) {
        const struct col *c = col_find(d, k);
        if (!c) {
            if (!d->extra || !strcmp(k, "links"))
                return ts_err_set(err, TS_EINVAL, "Invalid input for field '%s': additional properties are not allowed.", k);
            continue;
        }
        if (json_is_null(v)) {
            if (!c->nullable && c->required)
                return ts_err_set(err, TS_EINVAL, "Invalid input for field '%s': None is not of type 'string'.", k);
            continue;
        }
        switch (c->kind) {
        case COL_BOOL:
            if (!json_is_boolean(v))
                return ts_err_set(err, TS_EINVAL, "Invalid input for field '%s': it is not of type 'boolean'.", k);
            break;
        case COL_INT:
            if (!json_is_integer(v))
                return ts_err_set(err, TS_EINVAL, "Invalid input for field '%s': it is not of type 'integer'.", k);
            break;
        case COL_STR: {
            if (!json_is_string(v))
                return ts_err_set(err, TS_EINVAL, "Invalid input for field '%s': it is not of type 'string'.", k);
            size_t max = c->max_len ? (size_t)c->max_len : 255;
            size_t len = json_string_length(v);
            if (len > max)
                return ts_err_set(err, TS_EINVAL, "Invalid input for field '%s': '%.40s...' is too long (max %zu).", k,
                                  json_string_value(v), max);
            if (c->required && len == 0)
                return ts_err_set(err, TS_EINVAL, "Invalid input for field '%s': '' is too short.", k);
            break;
        }
        }
    }
    if (creating) {
        for (const struct col *c = d->cols; c->name; c++)
            if (c->required && !json_object_get(in, c->name))
                return ts_err_set(err, TS_EINVAL, "'%s' is a required property.", c->name);
    }
    return 0;
}

/* Writes obj as a row (INSERT, or UPDATE when updating). */
static int store(struct ident *id, const struct rdef *d, json_t *obj, bool update, struct ts_err *err)
{
    struct ts_buf sql, vals;
    ts_buf_init(&sql, 8192);
    ts_buf_init(&vals, 4096);
    struct ts_db_val args[40];
    char *strs[40] = {0};
    int nargs = 0;
    json_t *extra = d->extra ? json_object() : NULL;
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        if (!col_find(d, k) && extra && strcmp(k, "links") && strcmp(k, "password") && strcmp(k, "options"))
            json_object_set(extra, k, v);
    }
    if (update)
        ts_buf_printf(&sql, "UPDATE %s SET ", d->table);
    else
        ts_buf_printf(&sql, "INSERT INTO %s (", d->table);
    int n = 0;
    for (const struct col *c = d->cols; c->name && nargs < 38; c++) {
        if (update && !strcmp(c->name, "id")) continue;
        json_t *cv = json_object_get(obj, c->name);
        struct ts_db_val val = TS_DB_NULL;
        if (cv && !json_is_null(cv)) {
            if (c->kind == COL_BOOL)
                val = TS_DB_I(json_is_true(cv));
            else if (c->kind == COL_INT)
                val = TS_DB_I(json_integer_value(cv));
            else
                val = TS_DB_S(json_string_value(cv));
        }
        args[nargs++] = val;
        if (update) {
            ts_buf_printf(&sql, "%s%s = ?", n ? ", " : "", c->name);
        } else {
            ts_buf_printf(&sql, "%s%s", n ? ", " : "", c->name);
            ts_buf_printf(&vals, "%s?", n ? ", " : "");
        }
        n++;
    }
    if (extra) {
        strs[0] = json_dumps(extra, JSON_COMPACT);
        args[nargs++] = TS_DB_S(strs[0]);
        if (update) {
            ts_buf_printf(&sql, ", extra = ?");
        } else {
            ts_buf_printf(&sql, ", extra");
            ts_buf_printf(&vals, ", ?");
        }
    }
    if (update) {
        ts_buf_printf(&sql, " WHERE id = ?");
        args[nargs++] = TS_DB_S(json_string_value(json_object_get(obj, "id")));
    } else {
        ts_buf_printf(&sql, ") VALUES (%s)", ts_buf_cstr(&vals));
    }
    int rc = id_q(id, ts_buf_cstr(&sql), args, nargs, NULL, err);
    if (rc == -TS_ECONFLICT) {
        const char *name = json_string_value(json_object_get(obj, "name"));
        rc = ts_err_set(err, TS_ECONFLICT, "Conflict occurred attempting to store %s - Duplicate entry found with name %s.",
                        d->singular, name ? name : json_string_value(json_object_get(obj, "id")));
    }
    free(strs[0]);
    json_decref(extra);
    ts_buf_free(&sql);
    ts_buf_free(&vals);
    return rc;
}

int crud_create(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    const struct rdef *d = rdef_of(req);
    if (!d) return ts_err_set(err, TS_ENOTFOUND, "The resource could not be found.");
    json_t *body, *in;
    int rc = ts_http_json_body(req, &body, err);
    if (rc < 0) return rc;
    if (ts_json_body_object(body, d->singular, &in, err) < 0) return -err->code;
    json_t *obj = json_deep_copy(in);
    rc = authorize(id, req, d, "create", obj, err);
    if (rc < 0) goto out;
    /* ids are generated unless the resource lets the caller choose (regions) */
    const char *path_id = ts_http_param(req, "id");
    if (path_id) {
        json_t *b = json_object_get(obj, "id");
        if (b && !(json_is_string(b) && !strcmp(json_string_value(b), path_id))) {
            rc = ts_err_set(err, TS_EINVAL, "Conflicting region IDs specified: \"%s\" != \"%s\"", path_id,
                            json_is_string(b) ? json_string_value(b) : "?");
            goto out;
        }
        json_object_set_new(obj, "id", json_string(path_id));
    }
    json_t *given = json_object_get(obj, "id");
    const struct col *idc = col_find(d, "id");
    if (given && (idc->readonly || !json_is_string(given))) {
        if (idc->readonly) {
            json_object_del(obj, "id");
        } else {
            rc = ts_err_set(err, TS_EINVAL, "Invalid input for field 'id'.");
            goto out;
        }
    }
    rc = validate(d, obj, true, err);
    if (rc < 0) goto out;
    if (!json_object_get(obj, "id")) {
        char hex[33];
        ts_uuid_hex(hex);
        json_object_set_new(obj, "id", json_string(hex));
    }
    for (const struct col *c = d->cols; c->name; c++)
        if (c->kind == COL_BOOL && !json_object_get(obj, c->name) && !strcmp(c->name, "enabled"))
            json_object_set_new(obj, c->name, json_true());
    if (d->before_create && (rc = d->before_create(id, req, d, obj, NULL, err)) < 0) goto out;
    rc = store(id, d, obj, false, err);
    if (rc < 0) goto out;
    json_t *row = NULL;
    rc = crud_load(id, d, json_string_value(json_object_get(obj, "id")), &row, err);
    if (rc < 0) goto out;
    json_t *out_body = json_object();
    json_object_set_new(out_body, d->singular, crud_render(id, d, row));
    json_decref(row);
    ts_http_resp_json(resp, 201, out_body);
    id_notify(id, d->singular, "created", json_string_value(json_object_get(obj, "id")));
out:
    json_decref(obj);
    return rc;
}

int crud_update(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    const struct rdef *d = rdef_of(req);
    if (!d) return ts_err_set(err, TS_ENOTFOUND, "The resource could not be found.");
    const char *key = ts_http_param(req, "id");
    json_t *body, *in, *old = NULL, *obj = NULL;
    int rc = ts_http_json_body(req, &body, err);
    if (rc < 0) return rc;
    if (ts_json_body_object(body, d->singular, &in, err) < 0) return -err->code;
    rc = crud_load(id, d, key, &old, err);
    if (rc < 0) return rc;
    rc = authorize(id, req, d, "update", old, err);
    if (rc < 0) goto out;
    json_t *given = json_object_get(in, "id");
    if (given && !(json_is_string(given) && !strcmp(json_string_value(given), key))) {
        rc = ts_err_set(err, TS_EINVAL, "Cannot change ID");
        goto out;
    }
    rc = validate(d, in, false, err);
    if (rc < 0) goto out;
    const char *k;
    json_t *v;
    json_object_foreach(in, k, v) {
        const struct col *c = col_find(d, k);
        if (c && c->readonly && strcmp(k, "id")) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid input for field '%s': it cannot be updated.", k);
            goto out;
        }
    }
    obj = json_deep_copy(old);
    json_object_update(obj, in);
    if (d->before_update && (rc = d->before_update(id, req, d, obj, old, err)) < 0) goto out;
    rc = store(id, d, obj, true, err);
    if (rc < 0) goto out;
    json_t *row = NULL;
    rc = crud_load(id, d, key, &row, err);
    if (rc < 0) goto out;
    json_t *out_body = json_object();
    json_object_set_new(out_body, d->singular, crud_render(id, d, row));
    json_decref(row);
    ts_http_resp_json(resp, 200, out_body);
    id_notify(id, d->singular, "updated", key);
out:
    json_decref(old);
    json_decref(obj);
    return rc;
}

int crud_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    const struct rdef *d = rdef_of(req);
    if (!d) return ts_err_set(err, TS_ENOTFOUND, "The resource could not be found.");
    const char *key = ts_http_param(req, "id");
    json_t *old = NULL;
    int rc = crud_load(id, d, key, &old, err);
    if (rc < 0) return rc;
    rc = authorize(id, req, d, "delete", old, err);
    if (rc < 0) goto out;
    if (d->before_delete && (rc = d->before_delete(id, req, d, old, NULL, err)) < 0) goto out;
    char sql[256];
    snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE id = ?", d->table);
    rc = id_q(id, sql, TS_DB_ARGS(TS_DB_S(key)), NULL, err);
    if (rc < 0) goto out;
    if (d->after_delete) d->after_delete(id, req, d, old, NULL, err);
    ts_err_clear(err);
    ts_http_resp_no_body(resp, 204, 0);
    id_notify(id, d->singular, "deleted", key);
out:
    json_decref(old);
    return rc;
}
