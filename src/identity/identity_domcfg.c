/*
 * identity_domcfg.c: domain-specific configuration (/v3/domains/{id}/config[/{group}[/{option}]]
 * and the defaults under /v3/domains/config/default). Keystone lets a domain override its
 * [identity] and [ldap] options; tinystack stores them as Keystone does (one JSON document per
 * domain) so the API and tools work, but every domain is served from SQL.
 */
#include <stdio.h>
#include <string.h>

#include "identity/identity_int.h"
#include "json/ts_json.h"

static json_t *defaults(void)
{
    return json_pack("{s:{s:s,s:n},s:{s:s,s:s,s:n,s:s,s:s}}", "identity", "driver", "sql", "list_limit", "ldap", "url",
                     "ldap://localhost", "user_tree_dn", "", "user", "user_objectclass", "inetOrgPerson",
                     "user_id_attribute", "cn");
}

static bool group_ok(const char *g)
{
    return !strcmp(g, "identity") || !strcmp(g, "ldap");
}

static int load(struct ident *id, const char *dom, json_t **cfg, struct ts_err *err)
{
    struct ts_db_res *res = NULL;
    int rc = id_q(id, "SELECT (SELECT 1 FROM domains WHERE id = ?), (SELECT config FROM domain_configs WHERE domain_id = ?)",
                  TS_DB_ARGS(TS_DB_S(dom), TS_DB_S(dom)), &res, err);
    if (rc < 0) return rc;
    bool dom_found = ts_db_res_get(res, 0, 0) != NULL;
    const char *text = ts_db_res_get(res, 0, 1);
    *cfg = text ? json_loads(text, 0, NULL) : NULL;
    ts_db_res_free(res);
    if (!dom_found) return ts_err_set(err, TS_ENOTFOUND, "Could not find domain: %s.", dom);
    if (!json_is_object(*cfg)) {
        json_decref(*cfg);
        *cfg = NULL;
    }
    return 0;
}

static int save(struct ident *id, const char *dom, const json_t *cfg, struct ts_err *err)
{
    char *text = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
    int rc = id_q(id,
                  "INSERT INTO domain_configs (domain_id, config) VALUES (?, ?) "
                  "ON CONFLICT (domain_id) DO UPDATE SET config = excluded.config",
                  TS_DB_ARGS(TS_DB_S(dom), TS_DB_S(text)), NULL, err);
    free(text);
    return rc;
}

/* Checks {"group": {"option": value}} (or {"option": value} when group is given). */
static int check_groups(const json_t *cfg, struct ts_err *err)
{
    if (!json_is_object(cfg) || json_object_size(cfg) == 0)
        return ts_err_set(err, TS_EINVAL, "Invalid input for field 'config': it must be a non-empty object.");
    const char *g;
    json_t *opts;
    json_object_foreach((json_t *)cfg, g, opts) {
        if (!group_ok(g)) return ts_err_set(err, TS_EFORBIDDEN, "Group %s is not supported for domain specific configurations.", g);
        if (!json_is_object(opts) || json_object_size(opts) == 0)
            return ts_err_set(err, TS_EINVAL, "Invalid input for field 'config.%s'.", g);
    }
    return 0;
}

int id_domain_config(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ident *id = req->svc;
    const char *dom = ts_http_param(req, "id"), *group = ts_http_param(req, "group"), *opt = ts_http_param(req, "option");
    const char *m = req->method;
    bool reading = !strcmp(m, "GET") || !strcmp(m, "HEAD");
    int rc = id_require_admin(req, reading ? "identity:get_domain_config" : "identity:update_domain_config", err);
    if (rc < 0) return rc;
    if (group && !group_ok(group))
        return ts_err_set(err, TS_EFORBIDDEN, "Group %s is not supported for domain specific configurations.", group);
    json_t *cfg = NULL, *in = NULL;
    if ((rc = load(id, dom, &cfg, err)) < 0) return rc;
    if (!strcmp(m, "PUT")) { /* create (or replace) the whole configuration */
        json_t *body;
        if ((rc = ts_http_json_body(req, &body, err)) < 0) goto out;
        in = json_object_get(body, "config");
        if ((rc = check_groups(in, err)) < 0) goto out;
        bool existed = cfg != NULL;
        if ((rc = save(id, dom, in, err)) < 0) goto out;
        ts_http_resp_json(resp, existed ? 200 : 201, json_pack("{s:O}", "config", in));
        in = NULL;
        goto out;
    }
    if (!cfg) {
        rc = ts_err_set(err, TS_ENOTFOUND, "Could not find Domain Config for domain %s.", dom);
        goto out;
    }
    json_t *gobj = group ? json_object_get(cfg, group) : NULL;
    if (group && !gobj && strcmp(m, "PATCH")) {
        rc = ts_err_set(err, TS_ENOTFOUND, "Could not find group %s in the configuration of domain %s.", group, dom);
        goto out;
    }
    if (opt && gobj && !json_object_get(gobj, opt) && strcmp(m, "PATCH")) {
        rc = ts_err_set(err, TS_ENOTFOUND, "Could not find option %s in group %s of domain %s.", opt, group, dom);
        goto out;
    }
    if (reading) {
        json_t *out = !group ? json_incref(cfg)
                      : !opt ? json_pack("{s:O}", group, gobj)
                             : json_pack("{s:O}", opt, json_object_get(gobj, opt));
        ts_http_resp_json(resp, 200, json_pack("{s:o}", "config", out));
    } else if (!strcmp(m, "PATCH")) {
        json_t *body;
        if ((rc = ts_http_json_body(req, &body, err)) < 0) goto out;
        json_t *upd = json_object_get(body, "config");
        if (!json_is_object(upd)) {
            rc = ts_err_set(err, TS_EINVAL, "Invalid input for field 'config'.");
            goto out;
        }
        if (!group) {
            if ((rc = check_groups(upd, err)) < 0) goto out;
            const char *g;
            json_t *o;
            json_object_foreach(upd, g, o) {
                json_t *cur = json_object_get(cfg, g);
                if (!cur) json_object_set(cfg, g, o);
                else json_object_update(cur, o);
            }
        } else {
            /* {"config": {"group": {...}}} for a group, {"config": {"option": v}} for an option */
            json_t *vals = opt ? upd : json_object_get(upd, group);
            if (!json_is_object(vals) || (opt && !json_object_get(vals, opt))) {
                rc = ts_err_set(err, TS_EINVAL, "Invalid input for field 'config'.");
                goto out;
            }
            if (!gobj) {
                gobj = json_object();
                json_object_set_new(cfg, group, gobj);
            }
            if (opt)
                json_object_set(gobj, opt, json_object_get(vals, opt));
            else
                json_object_update(gobj, vals);
        }
        if ((rc = save(id, dom, cfg, err)) < 0) goto out;
        ts_http_resp_json(resp, 200, json_pack("{s:O}", "config", cfg));
    } else { /* DELETE */
        if (!group) {
            rc = id_q(id, "DELETE FROM domain_configs WHERE domain_id = ?", TS_DB_ARGS(TS_DB_S(dom)), NULL, err);
        } else {
            if (opt)
                json_object_del(gobj, opt);
            else
                json_object_del(cfg, group);
            if (opt && json_object_size(gobj) == 0) json_object_del(cfg, group);
            rc = save(id, dom, cfg, err);
        }
        if (rc < 0) goto out;
        ts_http_resp_no_body(resp, 204, 0);
    }
out:
    json_decref(cfg);
    return rc;
}

int id_domain_config_default(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    const char *group = ts_http_param(req, "group"), *opt = ts_http_param(req, "option");
    int rc = id_require_admin(req, "identity:get_domain_config_default", err);
    if (rc < 0) return rc;
    json_t *d = defaults();
    json_t *g = group ? json_object_get(d, group) : NULL;
    if (group && !g) {
        json_decref(d);
        return ts_err_set(err, TS_EFORBIDDEN, "Group %s is not supported for domain specific configurations.", group);
    }
    if (opt && !json_object_get(g, opt)) {
        json_decref(d);
        return ts_err_set(err, TS_EFORBIDDEN, "Option %s in group %s is not supported for domain specific configurations.",
                          opt, group);
    }
    json_t *out = !group ? json_incref(d) : !opt ? json_pack("{s:O}", group, g) : json_pack("{s:O}", opt, json_object_get(g, opt));
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "config", out));
    json_decref(d);
    return 0;
}
