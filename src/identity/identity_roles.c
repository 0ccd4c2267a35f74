/*
 * identity_roles.c: which roles a user really has on a project, a domain or the system:
 * direct and group assignments, assignments inherited from the domain and from parent
 * projects (OS-INHERIT), and implied roles (admin implies member implies reader). Each
 * answer is one recursive SQL query, so token issue and validation stay cheap.
 */
#include <string.h>

#include "identity/identity_int.h"

/* Expands a set of role ids (the CTE "base") with the implied-role closure and returns
 * the roles' ids and names. */
#define IMPLIED_CLOSURE                                                                        \
    ", closure(id) AS (SELECT role_id FROM base UNION "                                        \
    "SELECT i.implied_role_id FROM implied_roles i JOIN closure c ON i.prior_role_id = c.id) " \
    "SELECT DISTINCT r.id, r.name FROM roles r JOIN closure c ON r.id = c.id "                 \
    "WHERE r.domain_id = '<<null>>' ORDER BY r.name"

static const char *SQL_PROJECT =
    "WITH RECURSIVE actors(id) AS (SELECT CAST(? AS TEXT) UNION SELECT group_id FROM user_groups WHERE user_id = ?), "
    "anc(id) AS (SELECT parent_id FROM projects WHERE id = ? UNION "
    "            SELECT p.parent_id FROM projects p JOIN anc a ON p.id = a.id), "
    "base(role_id) AS (SELECT role_id FROM assignments WHERE actor_id IN (SELECT id FROM actors) AND "
    "  ((target_id = ? AND inherited = 0 AND type IN ('UserProject','GroupProject')) OR "
    "   (target_id IN (SELECT id FROM anc) AND inherited = 1)))" IMPLIED_CLOSURE;

static const char *SQL_DOMAIN =
    "WITH RECURSIVE actors(id) AS (SELECT CAST(? AS TEXT) UNION SELECT group_id FROM user_groups WHERE user_id = ?), "
    "base(role_id) AS (SELECT role_id FROM assignments WHERE actor_id IN (SELECT id FROM actors) AND "
    "  target_id = ? AND inherited = 0 AND type IN ('UserDomain','GroupDomain'))" IMPLIED_CLOSURE;

static const char *SQL_SYSTEM =
    "WITH RECURSIVE actors(id) AS (SELECT CAST(? AS TEXT) UNION SELECT group_id FROM user_groups WHERE user_id = ?), "
    "base(role_id) AS (SELECT role_id FROM assignments WHERE actor_id IN (SELECT id FROM actors) AND "
    "  target_id = ? AND type IN ('UserSystem','GroupSystem'))" IMPLIED_CLOSURE;

json_t *id_effective_roles(struct ident *id, const char *user_id, const char *scope_type, const char *target_id,
                           struct ts_err *err)
{
    const char *sql;
    struct ts_db_res *res = NULL;
    int rc;
    if (!strcmp(scope_type, "project")) {
        sql = SQL_PROJECT;
        rc = id_q(id, sql, TS_DB_ARGS(TS_DB_S(user_id), TS_DB_S(user_id), TS_DB_S(target_id), TS_DB_S(target_id)),
                  &res, err);
    } else {
        sql = !strcmp(scope_type, "domain") ? SQL_DOMAIN : SQL_SYSTEM;
        rc = id_q(id, sql, TS_DB_ARGS(TS_DB_S(user_id), TS_DB_S(user_id), TS_DB_S(target_id)), &res, err);
    }
    if (rc < 0) return NULL;
    json_t *arr = json_array();
    for (int r = 0; r < res->nrows; r++)
        json_array_append_new(arr, json_pack("{s:s,s:s}", "id", ts_db_res_get(res, r, 0), "name",
                                             ts_db_res_get(res, r, 1)));
    ts_db_res_free(res);
    return arr;
}

json_t *id_expand_implied(struct ident *id, json_t *role_ids)
{
    json_t *out = json_array();
    if (!json_is_array(role_ids) || json_array_size(role_ids) == 0) return out;
    /* a small VALUES list of the given ids */
    struct ts_buf sql;
    ts_buf_init(&sql, 1 << 16);
    ts_buf_appends(&sql, "WITH RECURSIVE base(role_id) AS (SELECT id FROM roles WHERE id IN (");
    struct ts_db_val args[64];
    int n = 0;
    size_t i;
    json_t *v;
    json_array_foreach(role_ids, i, v) {
        if (n == 64 || !json_is_string(v)) break;
        ts_buf_printf(&sql, "%s?", n ? "," : "");
        args[n++] = TS_DB_S(json_string_value(v));
    }
    ts_buf_appends(&sql, "))" IMPLIED_CLOSURE);
    struct ts_db_res *res = NULL;
    if (id_q(id, ts_buf_cstr(&sql), args, n, &res, NULL) == 0) {
        for (int r = 0; r < res->nrows; r++)
            json_array_append_new(out, json_pack("{s:s,s:s}", "id", ts_db_res_get(res, r, 0), "name",
                                                 ts_db_res_get(res, r, 1)));
        ts_db_res_free(res);
    }
    ts_buf_free(&sql);
    return out;
}
