/*
 * ts_network.c: the network service's life cycle (defaults, migrations, HTTP server), its
 * route table, version discovery and /v2.0/extensions, and the machinery every resource
 * shares: the `objects` store (each resource's JSON view plus the columns an agent
 * reconciles from: kind, project, network, device, owner, host, status, MAC), visibility,
 * list filters/sorting/pagination/fields as Neutron does them, tags, quotas, errors and
 * notifications.
 */
#include "network/ts_network_int.h"

#include <stdlib.h>
#include <string.h>

#include "json/ts_json.h"

const struct ts_network_kind ts_network_k_network = {"network", "networks", "Network", "NetworkNotFound",
                                                     TS_NV_NETWORK, true, true};
const struct ts_network_kind ts_network_k_subnet = {"subnet", "subnets", "Subnet", "SubnetNotFound", TS_NV_SUBNET,
                                                    true, true};
const struct ts_network_kind ts_network_k_port = {"port", "ports", "Port", "PortNotFound", TS_NV_OWN, true, true};
const struct ts_network_kind ts_network_k_router = {"router", "routers", "Router", "RouterNotFound", TS_NV_OWN, true,
                                                    true};
const struct ts_network_kind ts_network_k_floatingip = {"floatingip", "floatingips", "Floating IP",
                                                        "FloatingIPNotFound", TS_NV_OWN, true, true};
const struct ts_network_kind ts_network_k_sg = {"security_group", "security-groups", "Security group",
                                                "SecurityGroupNotFound", TS_NV_OWN, true, true};
const struct ts_network_kind ts_network_k_sgr = {"security_group_rule", "security-group-rules",
                                                 "Security group rule", "SecurityGroupRuleNotFound", TS_NV_OWN,
                                                 false, true};
const struct ts_network_kind ts_network_k_subnetpool = {"subnetpool", "subnetpools", "Subnet pool",
                                                        "SubnetPoolNotFound", TS_NV_POOL, true, false};

static const struct ts_network_kind *const all_kinds[] = {
    &ts_network_k_network, &ts_network_k_subnet, &ts_network_k_port,       &ts_network_k_router,
    &ts_network_k_floatingip, &ts_network_k_sg,  &ts_network_k_sgr, &ts_network_k_subnetpool, NULL};

static const struct ts_db_migration migrations[] = {
    {1,
     "CREATE TABLE objects ("
     " id TEXT PRIMARY KEY, kind TEXT NOT NULL, project_id TEXT, network_id TEXT, device_id TEXT,"
     " device_owner TEXT, host_id TEXT, status TEXT, mac_address TEXT UNIQUE, ref_id TEXT,"
     " created_us BIGINT NOT NULL, body TEXT NOT NULL);"
     "CREATE INDEX objects_kind_project_idx ON objects (kind, project_id);"
     "CREATE INDEX objects_kind_network_idx ON objects (kind, network_id);"
     "CREATE INDEX objects_kind_ref_idx ON objects (kind, ref_id);"
     "CREATE INDEX objects_kind_device_idx ON objects (kind, device_id);"
     "CREATE INDEX objects_kind_host_idx ON objects (kind, host_id);"
     /* one row per allocated address: the primary key is what keeps IPs unique */
     "CREATE TABLE ipallocs (subnet_id TEXT NOT NULL, ip_address TEXT NOT NULL, network_id TEXT NOT NULL,"
     " port_id TEXT NOT NULL, PRIMARY KEY (subnet_id, ip_address));"
     "CREATE INDEX ipallocs_port_idx ON ipallocs (port_id);"
     /* provider segments: unique (type, physnet, id) */
     "CREATE TABLE segments (network_id TEXT PRIMARY KEY, network_type TEXT NOT NULL,"
     " physical_network TEXT NOT NULL, segmentation_id BIGINT NOT NULL,"
     " UNIQUE (network_type, physical_network, segmentation_id));"
     "CREATE TABLE quotas (project_id TEXT NOT NULL, resource TEXT NOT NULL, hard_limit BIGINT NOT NULL,"
     " PRIMARY KEY (project_id, resource));"
     "CREATE TABLE default_sgs (project_id TEXT PRIMARY KEY, sg_id TEXT NOT NULL)"},
    /* lists filter and sort in SQL: name and "visible to every project" as columns; a rule's
     * normalised identity (uniq) makes the duplicate check one index lookup. Indexes on columns
     * most kinds leave NULL become partial, so a write only touches the ones its kind uses. */
    {2,
     "ALTER TABLE objects ADD COLUMN name TEXT;"
     "ALTER TABLE objects ADD COLUMN is_public BIGINT NOT NULL DEFAULT 0;"
     "ALTER TABLE objects ADD COLUMN uniq TEXT;"
     "CREATE UNIQUE INDEX objects_uniq_idx ON objects (uniq) WHERE uniq IS NOT NULL;"
     "CREATE INDEX objects_kind_name_idx ON objects (kind, name) WHERE name IS NOT NULL;"
     "CREATE INDEX objects_kind_owner_idx ON objects (kind, device_owner) WHERE device_owner IS NOT NULL;"
     "DROP INDEX objects_kind_network_idx;"
     "CREATE INDEX objects_kind_network_idx ON objects (kind, network_id) WHERE network_id IS NOT NULL;"
     "DROP INDEX objects_kind_ref_idx;"
     "CREATE INDEX objects_kind_ref_idx ON objects (kind, ref_id) WHERE ref_id IS NOT NULL;"
     "DROP INDEX objects_kind_device_idx;"
     "CREATE INDEX objects_kind_device_idx ON objects (kind, device_id) WHERE device_id IS NOT NULL;"
     "DROP INDEX objects_kind_host_idx;"
     "CREATE INDEX objects_kind_host_idx ON objects (kind, host_id) WHERE host_id IS NOT NULL"},
    /* agents as hosts report them (one per type and host), and what the DHCP / L3 schedulers
     * put on them: a network may have several DHCP agents, a (legacy) router one L3 agent */
    {3,
     "CREATE TABLE agents (id TEXT PRIMARY KEY, agent_type TEXT NOT NULL, host TEXT NOT NULL,"
     " binary_name TEXT NOT NULL, topic TEXT NOT NULL, admin_state_up BIGINT NOT NULL DEFAULT 1, description TEXT,"
     " availability_zone TEXT, configurations TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,"
     " started_at DOUBLE PRECISION NOT NULL, heartbeat_at DOUBLE PRECISION NOT NULL, UNIQUE (agent_type, host));"
     "CREATE TABLE agent_networks (agent_id TEXT NOT NULL, network_id TEXT NOT NULL,"
     " PRIMARY KEY (agent_id, network_id));"
     "CREATE INDEX agent_networks_net_idx ON agent_networks (network_id);"
     "CREATE TABLE agent_routers (router_id TEXT PRIMARY KEY, agent_id TEXT NOT NULL);"
     "CREATE INDEX agent_routers_agent_idx ON agent_routers (agent_id)"},
};

/* ---- errors ------------------------------------------------------------------------------ */

int ts_network_nf(struct ts_err *err, const struct ts_network_kind *k, const char *id)
{
    return ts_err_set_full(err, TS_ENOTFOUND, 404, k->notfound, "%s %s could not be found.", k->label,
                           id ? id : "");
}

int ts_network_bad(struct ts_err *err, const char *fmt, ...)
{
    char m[TS_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof(m), fmt, ap);
    va_end(ap);
    return ts_err_set_full(err, TS_EINVAL, 400, "HTTPBadRequest", "%s", m);
}

int ts_network_conflict(struct ts_err *err, const char *type, const char *fmt, ...)
{
    char m[TS_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof(m), fmt, ap);
    va_end(ap);
    return ts_err_set_full(err, TS_ECONFLICT, 409, type, "%s", m);
}

int ts_network_forbidden(struct ts_err *err, const char *fmt, ...)
{
    char m[TS_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof(m), fmt, ap);
    va_end(ap);
    return ts_err_set_full(err, TS_EFORBIDDEN, 403, "PolicyNotAuthorized", "%s", m);
}

int ts_network_check_writer(struct ts_http_req *req, struct ts_err *err)
{
    if (req->auth->is_reader_only)
        return ts_network_forbidden(err, "rule:%s %s is disallowed by policy", req->method, req->path);
    return 0;
}

/* ---- small helpers ------------------------------------------------------------------------- */

const char *ts_network_vs(const json_t *v, const char *key) { return json_string_value(json_object_get(v, key)); }

void ts_network_now_iso(char out[32]) { ts_time_iso(ts_now(), 0, out); }

int ts_network_json_bool(const json_t *obj, const char *key, bool def, bool *out, struct ts_err *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (ts_strcaseeq(s, "true") || ts_streq(s, "1")) return *out = true, 0;
        if (ts_strcaseeq(s, "false") || ts_streq(s, "0")) return *out = false, 0;
    }
    return ts_network_bad(err, "Invalid input for %s. Reason: '%s' is not a valid boolean value.", key,
                          json_is_string(v) ? json_string_value(v) : "?");
}

int ts_network_json_str(const json_t *obj, const char *key, size_t max, const char **out, struct ts_err *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = NULL;
        return 0;
    }
    if (!json_is_string(v)) return ts_network_bad(err, "Invalid input for %s. Reason: not a string.", key);
    if (max && strlen(json_string_value(v)) > max)
        return ts_network_bad(err, "Invalid input for %s. Reason: '%s' exceeds maximum length of %zu.", key,
                              json_string_value(v), max);
    *out = json_string_value(v);
    return 0;
}

const char *ts_network_req_project(struct ts_http_req *req, const json_t *body)
{
    const char *p = ts_network_vs(body, "project_id");
    if (!p) p = ts_network_vs(body, "tenant_id");
    if (p && *p && (req->auth->is_admin || ts_streq(p, req->auth->project_id))) return p;
    return req->auth->project_id;
}

json_t *ts_network_new_view(struct ts_http_req *req, const struct ts_network_kind *k, const json_t *body)
{
    char id[TS_UUID_LEN + 1], t[32];
    ts_uuid(id);
    ts_network_now_iso(t);
    const char *project = ts_network_req_project(req, body);
    const char *desc = ts_network_vs(body, "description");
    json_t *v = json_object();
    json_object_set_new(v, "id", json_string(id));
    json_object_set_new(v, "project_id", json_string(project));
    json_object_set_new(v, "tenant_id", json_string(project));
    json_object_set_new(v, "description", json_string(desc ? desc : ""));
    json_object_set_new(v, "created_at", json_string(t));
    json_object_set_new(v, "updated_at", json_string(t));
    json_object_set_new(v, "revision_number", json_integer(0));
    if (k->taggable) json_object_set_new(v, "tags", json_array());
    return v;
}

int ts_network_check_keys(const json_t *obj, const char *const *allowed, struct ts_err *err)
{
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val) {
        bool ok = false;
        for (int i = 0; allowed[i]; i++)
            if (ts_streq(allowed[i], key)) ok = true;
        if (!ok) return ts_network_bad(err, "Unrecognized attribute(s) '%s'", key);
    }
    return 0;
}

int ts_network_body(struct ts_http_req *req, const struct ts_network_kind *k, const char *const *allowed,
                    json_t **root, json_t **obj, struct ts_err *err)
{
    int rc = ts_http_json_body(req, root, err);
    if (rc) return ts_network_bad(err, "%s", err && err->msg[0] ? err->msg : "Malformed request body");
    json_t *o = json_object_get(*root, k->name);
    if (!json_is_object(o))
        return ts_network_bad(err, "Resource body required: expected an object under '%s'.", k->name);
    *obj = o;
    return allowed ? ts_network_check_keys(o, allowed, err) : 0;
}

/* ---- object store -------------------------------------------------------------------------- */

static const char *kind_ref(const struct ts_network_kind *k, const json_t *v)
{
    if (k == &ts_network_k_sgr) return ts_network_vs(v, "security_group_id");
    if (k == &ts_network_k_subnet) return ts_network_vs(v, "subnetpool_id");
    if (k == &ts_network_k_floatingip) return ts_network_vs(v, "port_id");
    return NULL;
}

/* visible to every project (ts_network_visible without an owner) */
static bool kind_public(const struct ts_network_kind *k, const json_t *v)
{
    switch (k->vis) {
    case TS_NV_NETWORK:
        return json_is_true(json_object_get(v, "shared")) || json_is_true(json_object_get(v, "router:external"));
    case TS_NV_SUBNET:
        return json_is_true(json_object_get(v, "_net_shared"));
    case TS_NV_POOL:
        return json_is_true(json_object_get(v, "shared"));
    default:
        return false;
    }
}

/* the derived columns of a view, in the order of the INSERT below (body, created_us aside) */
struct cols {
    struct ts_db_val v[12];
    char uniq[512];
};

static void derive_cols(const struct ts_network_kind *k, const json_t *view, struct cols *c)
{
    const char *net = k == &ts_network_k_network ? NULL : ts_network_vs(view, "network_id");
    if (k == &ts_network_k_floatingip) net = ts_network_vs(view, "floating_network_id");
    c->uniq[0] = 0;
    if (k == &ts_network_k_sgr) ts_network_sgr_key(view, c->uniq, sizeof(c->uniq));
    c->v[0] = TS_DB_S(ts_network_vs(view, "project_id"));
    c->v[1] = TS_DB_S(net);
    c->v[2] = TS_DB_S(ts_network_vs(view, "device_id"));
    c->v[3] = TS_DB_S(ts_network_vs(view, "device_owner"));
    c->v[4] = TS_DB_S(ts_network_vs(view, "binding:host_id"));
    c->v[5] = TS_DB_S(ts_network_vs(view, "status"));
    c->v[6] = TS_DB_S(k == &ts_network_k_port ? ts_network_vs(view, "mac_address") : NULL);
    c->v[7] = TS_DB_S(kind_ref(k, view));
    c->v[8] = TS_DB_S(ts_network_vs(view, "name"));
    c->v[9] = TS_DB_B(kind_public(k, view));
    c->v[10] = TS_DB_S(c->uniq[0] ? c->uniq : NULL);
}

int ts_network_save(struct ts_db_conn *tx, const struct ts_network_kind *k, json_t *view, bool insert,
                    struct ts_err *err)
{
    if (!insert) {
        char t[32];
        ts_network_now_iso(t);
        json_object_set_new(view, "updated_at", json_string(t));
        json_object_set_new(view, "revision_number",
                            json_integer(json_integer_value(json_object_get(view, "revision_number")) + 1));
    }
    char *body = ts_json_dump(view);
    struct cols c;
    derive_cols(k, view, &c);
    int rc;
    if (insert) {
        struct ts_db_val args[] = {TS_DB_S(ts_network_vs(view, "id")), TS_DB_S(k->name), c.v[0], c.v[1], c.v[2],
                                   c.v[3], c.v[4], c.v[5], c.v[6], c.v[7], c.v[8], c.v[9], c.v[10],
                                   TS_DB_I((int64_t)(ts_now() * 1e6)), TS_DB_S(body)};
        rc = ts_db_tx_exec(tx,
                           "INSERT INTO objects (id, kind, project_id, network_id, device_id, device_owner, host_id,"
                           " status, mac_address, ref_id, name, is_public, uniq, created_us, body)"
                           " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           args, 15, NULL, err);
    } else {
        struct ts_db_val up[] = {c.v[0], c.v[1], c.v[2], c.v[3], c.v[4], c.v[5], c.v[6], c.v[7], c.v[8], c.v[9],
                                 c.v[10], TS_DB_S(body), TS_DB_S(ts_network_vs(view, "id"))};
        rc = ts_db_tx_exec(tx,
                           "UPDATE objects SET project_id = ?, network_id = ?, device_id = ?, device_owner = ?,"
                           " host_id = ?, status = ?, mac_address = ?, ref_id = ?, name = ?, is_public = ?, uniq = ?,"
                           " body = ? WHERE id = ?",
                           up, 13, NULL, err);
    }
    free(body);
    return rc;
}

int ts_network_touch(struct ts_db_conn *tx, json_t *view, struct ts_err *err)
{
    char t[32];
    ts_network_now_iso(t);
    json_object_set_new(view, "updated_at", json_string(t));
    json_object_set_new(view, "revision_number",
                        json_integer(json_integer_value(json_object_get(view, "revision_number")) + 1));
    char *body = ts_json_dump(view);
    /* only the body: no indexed column changes, so no index page is rewritten */
    int rc = ts_db_tx_exec(tx, "UPDATE objects SET body = ? WHERE id = ?",
                           TS_DB_ARGS(TS_DB_S(body), TS_DB_S(ts_network_vs(view, "id"))), NULL, err);
    free(body);
    return rc;
}

/* Fills the version-2 columns of objects written before them, once, right after migrating. */
static int backfill_v2(struct ts_db *db, struct ts_err *err)
{
    struct ts_db_conn *tx = NULL;
    struct ts_db_res *res = NULL;
    int rc = ts_db_begin(db, &tx, err);
    if (rc) return rc;
    if ((rc = ts_db_tx_exec(tx, "SELECT id, kind, body FROM objects", TS_DB_NOARGS, &res, err))) goto out;
    for (int i = 0; i < res->nrows && rc == 0; i++) {
        const struct ts_network_kind *k = NULL;
        for (int j = 0; all_kinds[j]; j++)
            if (ts_streq(all_kinds[j]->name, ts_db_res_get(res, i, 1))) k = all_kinds[j];
        json_t *v = k ? json_loads(ts_db_res_get(res, i, 2), 0, NULL) : NULL;
        if (!v) continue;
        struct cols c;
        derive_cols(k, v, &c);
        rc = ts_db_tx_exec(tx, "UPDATE objects SET name = ?, is_public = ?, uniq = ? WHERE id = ?",
                           TS_DB_ARGS(c.v[8], c.v[9], c.v[10], TS_DB_S(ts_db_res_get(res, i, 0))), NULL, err);
        if (rc == -TS_ECONFLICT) {
            /* an old duplicate rule: keep it, without the key */
            rc = ts_db_tx_exec(tx, "UPDATE objects SET name = ?, is_public = ? WHERE id = ?",
                               TS_DB_ARGS(c.v[8], c.v[9], TS_DB_S(ts_db_res_get(res, i, 0))), NULL, err);
        }
        json_decref(v);
    }
    if (rc) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
out:
    ts_db_res_free(res);
    ts_db_rollback(tx);
    return rc;
}

int ts_network_delete_obj(struct ts_db_conn *tx, const char *id, struct ts_err *err)
{
    return ts_db_tx_exec(tx, "DELETE FROM objects WHERE id = ?", TS_DB_ARGS(TS_DB_S(id)), NULL, err);
}

static int exec_any(struct ts_network_svc *svc, struct ts_db_conn *tx, const char *sql, const struct ts_db_val *a,
                    int n, struct ts_db_res **res, struct ts_err *err)
{
    return tx ? ts_db_tx_exec(tx, sql, a, n, res, err) : ts_db_exec(svc->db, sql, a, n, res, err);
}

static json_t *parse_body(const char *s)
{
    json_t *v = s ? json_loads(s, 0, NULL) : NULL;
    return v ? v : json_object();
}

int ts_network_load(struct ts_db_conn *tx, const struct ts_network_kind *k, const char *id, json_t **out,
                    struct ts_err *err)
{
    struct ts_db_res *res = NULL;
    if (!id) return ts_network_nf(err, k, id);
    int rc = ts_db_tx_exec(tx, "SELECT body FROM objects WHERE id = ? AND kind = ?",
                           TS_DB_ARGS(TS_DB_S(id), TS_DB_S(k->name)), &res, err);
    if (rc) return rc;
    if (res->nrows == 0) rc = ts_network_nf(err, k, id);
    else *out = parse_body(ts_db_res_get(res, 0, 0));
    ts_db_res_free(res);
    return rc;
}

bool ts_network_owner(const struct ts_http_req *req, const json_t *v)
{
    return req->auth->is_admin || (req->auth->project_id[0] && ts_streq(ts_network_vs(v, "project_id"),
                                                                        req->auth->project_id));
}

bool ts_network_visible(const struct ts_http_req *req, const struct ts_network_kind *k, const json_t *v)
{
    if (ts_network_owner(req, v)) return true;
    switch (k->vis) {
    case TS_NV_NETWORK:
        return json_is_true(json_object_get(v, "shared")) || json_is_true(json_object_get(v, "router:external"));
    case TS_NV_SUBNET:
        return json_is_true(json_object_get(v, "_net_shared"));
    case TS_NV_POOL:
        return json_is_true(json_object_get(v, "shared"));
    default:
        return false;
    }
}

int ts_network_load_visible(struct ts_network_svc *svc, struct ts_db_conn *tx, struct ts_http_req *req,
                            const struct ts_network_kind *k, const char *id, json_t **out, struct ts_err *err)
{
    struct ts_db_res *res = NULL;
    if (!id) return ts_network_nf(err, k, id);
    int rc = exec_any(svc, tx, "SELECT body FROM objects WHERE id = ? AND kind = ?",
                      TS_DB_ARGS(TS_DB_S(id), TS_DB_S(k->name)), &res, err);
    if (rc) return rc;
    json_t *v = res->nrows ? parse_body(ts_db_res_get(res, 0, 0)) : NULL;
    ts_db_res_free(res);
    if (!v || !ts_network_visible(req, k, v)) {
        json_decref(v);
        return ts_network_nf(err, k, id);
    }
    *out = v;
    return 0;
}

int ts_network_load_where(struct ts_db_conn *tx, const struct ts_network_kind *k, const char *column,
                          const char *value, json_t **out_array, struct ts_err *err)
{
    static const char *const cols[] = {"project_id", "network_id", "device_id", "ref_id", "host_id", NULL};
    bool ok = false;
    for (int i = 0; cols[i]; i++)
        if (ts_streq(cols[i], column)) ok = true;
    TS_ASSERT(ok);
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT body FROM objects WHERE kind = ? AND %s = ? ORDER BY created_us, id", column);
    struct ts_db_res *res = NULL;
    int rc = ts_db_tx_exec(tx, sql, TS_DB_ARGS(TS_DB_S(k->name), TS_DB_S(value)), &res, err);
    if (rc) return rc;
    json_t *arr = json_array();
    for (int i = 0; i < res->nrows; i++) json_array_append_new(arr, parse_body(ts_db_res_get(res, i, 0)));
    ts_db_res_free(res);
    *out_array = arr;
    return 0;
}

/* ---- quotas --------------------------------------------------------------------------------- */

static const char *const quota_names[] = {"network", "subnet", "port", "router", "floatingip", "security_group",
                                          "security_group_rule", "subnetpool", NULL};
static const int64_t quota_defaults[] = {100, 100, 500, 10, 50, 10, 100, -1};

static int64_t quota_default(struct ts_network_svc *svc, const char *name)
{
    for (int i = 0; quota_names[i]; i++) {
        if (!ts_streq(quota_names[i], name)) continue;
        char key[64];
        snprintf(key, sizeof(key), "quota_%s", name);
        return ts_conf_get_int(svc->env->conf, "network", key, quota_defaults[i]);
    }
    return -1;
}

static int quota_limits(struct ts_network_svc *svc, struct ts_db_conn *tx, const char *project, json_t **out,
                        struct ts_err *err)
{
    json_t *q = json_object();
    for (int i = 0; quota_names[i]; i++)
        json_object_set_new(q, quota_names[i], json_integer(quota_default(svc, quota_names[i])));
    struct ts_db_res *res = NULL;
    int rc = exec_any(svc, tx, "SELECT resource, hard_limit FROM quotas WHERE project_id = ?",
                      TS_DB_ARGS(TS_DB_S(project)), &res, err);
    if (rc) {
        json_decref(q);
        return rc;
    }
    for (int i = 0; i < res->nrows; i++)
        json_object_set_new(q, ts_db_res_get(res, i, 0), json_integer(ts_db_res_int(res, i, 1, -1)));
    ts_db_res_free(res);
    *out = q;
    return 0;
}

static int64_t count_kind(struct ts_network_svc *svc, struct ts_db_conn *tx, const char *kind, const char *project)
{
    struct ts_db_res *res = NULL;
    int64_t n = 0;
    if (exec_any(svc, tx, "SELECT COUNT(*) FROM objects WHERE kind = ? AND project_id = ?",
                 TS_DB_ARGS(TS_DB_S(kind), TS_DB_S(project)), &res, NULL) == 0)
        n = ts_db_res_int(res, 0, 0, 0);
    ts_db_res_free(res);
    return n;
}

int ts_network_quota_check(struct ts_network_svc *svc, struct ts_db_conn *tx, const struct ts_network_kind *k,
                           const char *project, int adding, struct ts_err *err)
{
    if (!k->quota || !project || !*project) return 0;
    json_t *q = NULL;
    int rc = quota_limits(svc, tx, project, &q, err);
    if (rc) return rc;
    int64_t limit = json_integer_value(json_object_get(q, k->name));
    json_decref(q);
    if (limit < 0) return 0;
    if (count_kind(svc, tx, k->name, project) + adding > limit)
        return ts_network_conflict(err, "OverQuota", "Quota exceeded for resources: ['%s'].", k->name);
    return 0;
}

/* ---- rendering, filters, sorting, pagination -------------------------------------------------- */

static bool attr_admin_only(const char *key)
{
    return ts_startswith(key, "provider:") || ts_streq(key, "binding:host_id") ||
           ts_streq(key, "binding:vif_type") || ts_streq(key, "binding:vif_details") ||
           ts_streq(key, "binding:profile");
}

json_t *ts_network_output_view(struct ts_http_req *req, const json_t *v)
{
    json_t *o = json_object();
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val) {
        if (key[0] == '_') continue;
        if (!req->auth->is_admin && attr_admin_only(key)) continue;
        json_object_set(o, key, val);
    }
    return o;
}

json_t *ts_network_apply_fields(json_t *o, const char **fields, int n)
{
    if (n == 0) return o;
    json_t *r = json_object();
    for (int i = 0; i < n; i++) {
        json_t *v = json_object_get(o, fields[i]);
        if (v) json_object_set(r, fields[i], v);
    }
    json_decref(o);
    return r;
}

json_t *ts_network_render(struct ts_http_req *req, const struct ts_network_kind *k, const json_t *v)
{
    const char **fields = NULL;
    int nf = ts_http_query_all(req, "fields", &fields);
    json_t *o = ts_network_apply_fields(ts_network_output_view(req, v), fields, nf);
    return json_pack("{s:o}", k->name, o);
}

char *ts_network_self_url(struct ts_http_req *req, const char *path)
{
    const char *host = ts_http_header(req, "Host");
    const char *proto = ts_http_header(req, "X-Forwarded-Proto");
    return ts_pool_printf(req->pool, "%s://%s%s", proto ? proto : "http", host ? host : "127.0.0.1:9696", path);
}

static int show_object(struct ts_network_svc *svc, struct ts_http_req *req, struct ts_http_resp *resp,
                       const struct ts_network_kind *k, struct ts_err *err)
{
    json_t *v = NULL;
    int rc = ts_network_load_visible(svc, NULL, req, k, ts_http_param(req, "id"), &v, err);
    if (rc) return rc;
    if (k == &ts_network_k_sg) ts_network_sg_attach_rules(svc, v, NULL);
    ts_http_resp_json(resp, 200, ts_network_render(req, k, v));
    json_decref(v);
    return 0;
}

#define KIND_HANDLERS(x, kind)                                                                          \
    static int h_list_##x(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)      \
    {                                                                                                   \
        return ts_network_list(req->svc, req, resp, &kind, err);                                           \
    }                                                                                                   \
    static int h_show_##x(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)      \
    {                                                                                                   \
        return show_object(req->svc, req, resp, &kind, err);                                            \
    }
KIND_HANDLERS(network, ts_network_k_network)
KIND_HANDLERS(subnet, ts_network_k_subnet)
KIND_HANDLERS(subnetpool, ts_network_k_subnetpool)
KIND_HANDLERS(port, ts_network_k_port)
KIND_HANDLERS(router, ts_network_k_router)
KIND_HANDLERS(floatingip, ts_network_k_floatingip)
KIND_HANDLERS(sg, ts_network_k_sg)
KIND_HANDLERS(sgr, ts_network_k_sgr)

/* ---- tags ------------------------------------------------------------------------------------- */

static const struct ts_network_kind *tag_kind(const char *plural)
{
    for (int i = 0; all_kinds[i]; i++)
        if (all_kinds[i]->taggable && ts_streq(all_kinds[i]->plural, plural)) return all_kinds[i];
    return NULL;
}

static int tag_valid(const char *t, struct ts_err *err)
{
    if (!t || !*t || strlen(t) > 255 || strchr(t, ','))
        return ts_network_bad(err, "Invalid input for operation: '%s' is not a valid tag.", t ? t : "");
    return 0;
}

/* op: 0 list, 1 replace (body), 2 add one, 3 remove one, 4 remove all, 5 check one */
static int tags_op(struct ts_http_req *req, struct ts_http_resp *resp, int op, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    const struct ts_network_kind *k = tag_kind(ts_http_param(req, "res"));
    if (!k) return ts_err_set_full(err, TS_ENOTFOUND, 404, "HTTPNotFound", "The resource could not be found.");
    const char *id = ts_http_param(req, "id"), *tag = ts_http_param(req, "tag");
    json_t *v = NULL, *root = NULL;
    struct ts_db_conn *tx = NULL;
    int rc = 0;
    if (op != 0 && op != 5 && (rc = ts_network_check_writer(req, err))) return rc;
    if (op == 0 || op == 5) {
        rc = ts_network_load_visible(svc, NULL, req, k, id, &v, err);
        if (rc) return rc;
        json_t *tags = json_object_get(v, "tags");
        if (op == 0) {
            ts_http_resp_json(resp, 200, json_pack("{s:O}", "tags", tags ? tags : json_array()));
        } else {
            bool has = false;
            size_t i;
            json_t *e;
            json_array_foreach(tags, i, e) if (ts_streq(json_string_value(e), tag)) has = true;
            if (!has) rc = ts_err_set_full(err, TS_ENOTFOUND, 404, "TagNotFound", "Tag %s could not be found for %s %s.",
                                           tag, k->name, id);
            else ts_http_resp_no_body(resp, 204, 0);
        }
        json_decref(v);
        return rc;
    }
    json_t *newtags = NULL;
    if (op == 1) {
        rc = ts_http_json_body(req, &root, err);
        if (rc) return ts_network_bad(err, "Malformed request body");
        json_t *t = json_object_get(root, "tags");
        if (!json_is_array(t)) return ts_network_bad(err, "Invalid input for tags: a list is required.");
        size_t i;
        json_t *e;
        newtags = json_array();
        json_array_foreach(t, i, e) {
            if (!json_is_string(e) || (rc = tag_valid(json_string_value(e), err))) {
                json_decref(newtags);
                return rc ? rc : ts_network_bad(err, "Invalid tag");
            }
            bool dup = false;
            size_t j;
            json_t *f;
            json_array_foreach(newtags, j, f) if (json_equal(e, f)) dup = true;
            if (!dup) json_array_append(newtags, e);
        }
    }
    if (op == 2 && (rc = tag_valid(tag, err))) return rc;
    rc = ts_db_begin(svc->db, &tx, err);
    if (rc) goto out;
    rc = ts_network_load_visible(svc, tx, req, k, id, &v, err);
    if (rc) goto out;
    if (!ts_network_owner(req, v)) {
        rc = ts_network_forbidden(err, "Tagging %s %s is not allowed.", k->name, id);
        goto out;
    }
    json_t *tags = json_object_get(v, "tags");
    if (!json_is_array(tags)) {
        tags = json_array();
        json_object_set_new(v, "tags", tags);
    }
    if (op == 1) {
        json_object_set(v, "tags", newtags);
    } else if (op == 2) {
        size_t i;
        json_t *e;
        bool has = false;
        json_array_foreach(tags, i, e) if (ts_streq(json_string_value(e), tag)) has = true;
        if (!has) json_array_append_new(tags, json_string(tag));
    } else if (op == 3) {
        size_t i;
        json_t *e;
        bool has = false;
        json_array_foreach(tags, i, e) if (ts_streq(json_string_value(e), tag)) {
            json_array_remove(tags, i);
            has = true;
            break;
        }
        if (!has) {
            rc = ts_err_set_full(err, TS_ENOTFOUND, 404, "TagNotFound", "Tag %s could not be found for %s %s.", tag,
                                 k->name, id);
            goto out;
        }
    } else {
        json_array_clear(tags);
    }
    rc = ts_network_save(tx, k, v, false, err);
    if (rc) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    if (op == 1) ts_http_resp_json(resp, 200, json_pack("{s:O}", "tags", json_object_get(v, "tags")));
    else if (op == 2) ts_http_resp_json(resp, 201, NULL);
    else ts_http_resp_no_body(resp, 204, 0);
out:
    ts_db_rollback(tx);
    json_decref(v);
    json_decref(newtags);
    return rc;
}

static int h_tags_list(struct ts_http_req *r, struct ts_http_resp *s, struct ts_err *e) { return tags_op(r, s, 0, e); }
static int h_tags_put(struct ts_http_req *r, struct ts_http_resp *s, struct ts_err *e) { return tags_op(r, s, 1, e); }
static int h_tag_add(struct ts_http_req *r, struct ts_http_resp *s, struct ts_err *e) { return tags_op(r, s, 2, e); }
static int h_tag_del(struct ts_http_req *r, struct ts_http_resp *s, struct ts_err *e) { return tags_op(r, s, 3, e); }
static int h_tags_del(struct ts_http_req *r, struct ts_http_resp *s, struct ts_err *e) { return tags_op(r, s, 4, e); }
static int h_tag_get(struct ts_http_req *r, struct ts_http_resp *s, struct ts_err *e) { return tags_op(r, s, 5, e); }

/* ---- quotas API ------------------------------------------------------------------------------- */

static int quota_target(struct ts_http_req *req, const char **project, struct ts_err *err)
{
    const char *p = ts_http_param(req, "project");
    if (!req->auth->is_admin && !ts_streq(p, req->auth->project_id))
        return ts_network_forbidden(err, "Non-admin is not authorized to access quotas for another project");
    *project = p;
    return 0;
}

static int h_quota_show(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    const char *p = NULL;
    int rc = quota_target(req, &p, err);
    if (rc) return rc;
    json_t *q = NULL;
    rc = quota_limits(req->svc, NULL, p, &q, err);
    if (rc) return rc;
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "quota", q));
    return 0;
}

static int h_quota_default(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    const char *p = NULL;
    int rc = quota_target(req, &p, err);
    if (rc) return rc;
    json_t *q = json_object();
    for (int i = 0; quota_names[i]; i++)
        json_object_set_new(q, quota_names[i], json_integer(quota_default(req->svc, quota_names[i])));
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "quota", q));
    return 0;
}

static int h_quota_details(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    const char *p = NULL;
    int rc = quota_target(req, &p, err);
    if (rc) return rc;
    json_t *q = NULL;
    rc = quota_limits(req->svc, NULL, p, &q, err);
    if (rc) return rc;
    json_t *d = json_object();
    const char *key;
    json_t *val;
    json_object_foreach(q, key, val) {
        json_object_set_new(d, key, json_pack("{s:O,s:I,s:i}", "limit", val, "used",
                                              (json_int_t)count_kind(req->svc, NULL, key, p), "reserved", 0));
    }
    json_decref(q);
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "quota", d));
    return 0;
}

static int h_quota_update(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    if (!req->auth->is_admin) return ts_network_forbidden(err, "rule:update_quota is disallowed by policy");
    const char *p = ts_http_param(req, "project");
    json_t *root = NULL;
    int rc = ts_http_json_body(req, &root, err);
    if (rc) return ts_network_bad(err, "Malformed request body");
    json_t *q = json_object_get(root, "quota");
    if (!json_is_object(q)) return ts_network_bad(err, "Resource body required: expected an object under 'quota'.");
    const char *key;
    json_t *val;
    json_object_foreach(q, key, val) {
        bool known = false;
        for (int i = 0; quota_names[i]; i++)
            if (ts_streq(quota_names[i], key)) known = true;
        if (!known) return ts_network_bad(err, "Unrecognized attribute(s) '%s'", key);
        int64_t n;
        if (json_is_integer(val)) n = json_integer_value(val);
        else if (!json_is_string(val) || ts_parse_int64(json_string_value(val), &n))
            return ts_network_bad(err, "Invalid input for %s. Reason: '%s' is not an integer.", key,
                                  json_is_string(val) ? json_string_value(val) : "?");
        if (n < -1) return ts_network_bad(err, "Invalid input for %s. Reason: '%lld' should be >= -1.", key, (long long)n);
    }
    struct ts_db_conn *tx = NULL;
    rc = ts_db_begin(svc->db, &tx, err);
    if (rc) return rc;
    json_object_foreach(q, key, val) {
        int64_t n = json_is_integer(val) ? json_integer_value(val) : 0;
        if (json_is_string(val)) ts_parse_int64(json_string_value(val), &n);
        rc = ts_db_tx_exec(tx,
                           "INSERT INTO quotas (project_id, resource, hard_limit) VALUES (?, ?, ?) "
                           "ON CONFLICT (project_id, resource) DO UPDATE SET hard_limit = excluded.hard_limit",
                           TS_DB_ARGS(TS_DB_S(p), TS_DB_S(key), TS_DB_I(n)), NULL, err);
        if (rc) {
            ts_db_rollback(tx);
            return rc;
        }
    }
    rc = ts_db_commit(tx, err);
    if (rc) return rc;
    json_t *out = NULL;
    rc = quota_limits(svc, NULL, p, &out, err);
    if (rc) return rc;
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "quota", out));
    return 0;
}

static int h_quota_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    if (!req->auth->is_admin) return ts_network_forbidden(err, "rule:delete_quota is disallowed by policy");
    int rc = ts_db_exec(svc->db, "DELETE FROM quotas WHERE project_id = ?",
                        TS_DB_ARGS(TS_DB_S(ts_http_param(req, "project"))), NULL, err);
    if (rc) return rc;
    ts_http_resp_no_body(resp, 204, 0);
    return 0;
}

static int h_quota_list(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    if (!req->auth->is_admin) return ts_network_forbidden(err, "rule:get_quota is disallowed by policy");
    struct ts_db_res *res = NULL;
    int rc = ts_db_exec(svc->db, "SELECT DISTINCT project_id FROM quotas ORDER BY project_id", TS_DB_NOARGS, &res,
                        err);
    if (rc) return rc;
    json_t *arr = json_array();
    for (int i = 0; i < res->nrows; i++) {
        json_t *q = NULL;
        if (quota_limits(svc, NULL, ts_db_res_get(res, i, 0), &q, NULL) == 0) {
            json_object_set_new(q, "project_id", json_string(ts_db_res_get(res, i, 0)));
            json_object_set_new(q, "tenant_id", json_string(ts_db_res_get(res, i, 0)));
            json_array_append_new(arr, q);
        }
    }
    ts_db_res_free(res);
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "quotas", arr));
    return 0;
}

static int h_quota_tenant(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)err;
    ts_http_resp_json(resp, 200, json_pack("{s:{s:s,s:s}}", "tenant", "tenant_id", req->auth->project_id,
                                           "project_id", req->auth->project_id));
    return 0;
}

/* ---- versions and extensions ------------------------------------------------------------------- */

static int h_versions(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)err;
    ts_http_resp_json(resp, 200,
                      json_pack("{s:[{s:s,s:s,s:[{s:s,s:s}]}]}", "versions", "id", "v2.0", "status", "CURRENT",
                                "links", "rel", "self", "href", ts_network_self_url(req, "/v2.0/")));
    return 0;
}

static int h_v2(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)err;
    static const char *const res[][2] = {{"network", "networks"},     {"subnet", "subnets"},
                                         {"subnetpool", "subnetpools"}, {"port", "ports"},
                                         {"router", "routers"},       {"floatingip", "floatingips"},
                                         {"security_group", "security-groups"},
                                         {"security_group_rule", "security-group-rules"},
                                         {"quota", "quotas"}};
    json_t *arr = json_array();
    for (size_t i = 0; i < sizeof(res) / sizeof(res[0]); i++) {
        char *p = ts_pool_printf(req->pool, "/v2.0/%s", res[i][1]);
        json_array_append_new(arr, json_pack("{s:s,s:s,s:[{s:s,s:s}]}", "name", res[i][0], "collection", res[i][1],
                                             "links", "rel", "self", "href", ts_network_self_url(req, p)));
    }
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "resources", arr));
    return 0;
}

static const char *const extensions[][3] = {
    {"external-net", "Neutron external network", "Adds external network attribute to network resource."},
    {"router", "Neutron L3 Router", "Router abstraction for basic L3 forwarding between L2 Neutron networks and access to external networks via a NAT gateway."},
    {"ext-gw-mode", "Neutron L3 Configurable external gateway mode", "Extension of the router abstraction for specifying whether SNAT should occur on the external gateway"},
    {"extraroute", "Neutron Extra Route", "Extra routes configuration for L3 router"},
    {"provider", "Provider Network", "Expose mapping of virtual networks to physical networks"},
    {"binding", "Port Binding", "Expose port bindings of a virtual port to external application"},
    {"security-group", "security-group", "The security groups extension."},
    {"quotas", "Quota management support", "Expose functions for quotas management per project"},
    {"quota_details", "Quota details management support", "Expose functions for quotas usage statistics per project"},
    {"port-security", "Port Security", "Provides port security"},
    {"allowed-address-pairs", "Allowed Address Pairs", "Provides allowed address pairs"},
    {"extra_dhcp_opt", "Neutron Extra DHCP options", "Extra options configuration for DHCP. For example PXE boot options to DHCP clients can be specified (e.g. tftp-server, server-ip-address, bootfile-name)"},
    {"net-mtu", "Network MTU", "Provides MTU attribute for a network resource."},
    {"net-mtu-writable", "Network MTU (writable)", "Provides a writable MTU attribute for a network resource."},
    {"subnet_allocation", "Subnet Allocation", "Enables allocation of subnets from a subnet pool"},
    {"standard-attr-tag", "Tag support for resources with standard attribute: subnet, trunk, network_segment_range, router, network, policy, subnetpool, port, security_group, floatingip", "Enables to set tag on resources with standard attribute."},
    {"standard-attr-revisions", "Resource revision numbers", "This extension will display the revision number of neutron resources."},
    {"standard-attr-timestamp", "Resource timestamps", "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes."},
    {"standard-attr-description", "standard-attr-description", "Extension to add descriptions to standard attributes"},
    {"project-id", "project_id field enabled", "Extension that indicates that project_id field is enabled."},
    {"sorting", "Sorting support", "Extension that indicates that sorting is enabled."},
    {"agent", "agent", "The agent management extension."},
    {"dhcp_agent_scheduler", "DHCP Agent Scheduler", "Schedule networks among dhcp agents"},
    {"l3_agent_scheduler", "L3 Agent Scheduler", "Schedule routers among l3 agents"},
    {"pagination", "Pagination support", "Extension that indicates that pagination is enabled."},
};

static int h_extensions(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)req, (void)err;
    json_t *arr = json_array();
    for (size_t i = 0; i < sizeof(extensions) / sizeof(extensions[0]); i++)
        json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s,s:[]}", "alias", extensions[i][0], "name",
                                             extensions[i][1], "description", extensions[i][2], "updated",
                                             "2013-01-01T10:00:00-00:00", "links"));
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "extensions", arr));
    return 0;
}

static int h_extension(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    const char *alias = ts_http_param(req, "alias");
    for (size_t i = 0; i < sizeof(extensions) / sizeof(extensions[0]); i++) {
        if (!ts_streq(alias, extensions[i][0])) continue;
        ts_http_resp_json(resp, 200,
                          json_pack("{s:{s:s,s:s,s:s,s:s,s:[]}}", "extension", "alias", extensions[i][0], "name",
                                    extensions[i][1], "description", extensions[i][2], "updated",
                                    "2013-01-01T10:00:00-00:00", "links"));
        return 0;
    }
    return ts_err_set_full(err, TS_ENOTFOUND, 404, "HTTPNotFound", "Extension with alias %s does not exist",
                           alias ? alias : "");
}

/* ---- notifications -------------------------------------------------------------------------- */

void ts_network_notify(struct ts_network_svc *svc, const struct ts_network_kind *k, const char *what,
                       const json_t *view)
{
    if (!svc->env || !svc->env->bus || !view) return;
    char ev[96];
    snprintf(ev, sizeof(ev), "%s.%s", k->name, what);
    json_t *p = json_object();
    json_t *o = json_object();
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)view, key, val) if (key[0] != '_') json_object_set(o, key, val);
    if (ts_streq(what, "delete.end")) {
        char idk[64];
        snprintf(idk, sizeof(idk), "%s_id", k->name);
        json_object_set(p, idk, json_object_get(view, "id"));
    }
    json_object_set_new(p, k->name, o);
    ts_bus_notify(svc->env->bus, svc->publisher, ev, "INFO", p);
}

void ts_network_agent_event(struct ts_network_svc *svc, const char *event, const char *port_id)
{
    if (!svc->env || !svc->env->bus) return;
    /* ts_bus_fanout steals the arguments */
    ts_bus_fanout(svc->env->bus, "network_agent", "port_event",
                  json_pack("{s:s,s:s}", "event", event, "port_id", port_id), NULL);
}

int ts_network_nova_event(struct ts_network_svc *svc, const char *token, const char *name, const char *server_id,
                          const char *port_id, const char *status, struct ts_err *err)
{
    if (!svc->compute_url[0]) return 0;
    json_t *b = json_pack("{s:[{s:s,s:s,s:s,s:s}]}", "events", "name", name, "server_uuid", server_id, "tag",
                          port_id, "status", status);
    char *body = ts_json_dump(b);
    json_decref(b);
    char *url = ts_asprintf("%s/v2.1/os-server-external-events", svc->compute_url);
    char *tok = ts_asprintf("X-Auth-Token: %s", token ? token : "");
    const char *headers[] = {"Content-Type: application/json", tok, NULL};
    struct ts_http_client_resp r = {0};
    int rc = ts_http_client_request("POST", url, headers, body, strlen(body), 10000, &r, err);
    if (rc == 0 && r.status >= 300)
        rc = ts_err_set(err, TS_EUNAVAIL, "nova external event %s: HTTP %d", name, r.status);
    ts_http_client_resp_free(&r);
    free(tok);
    free(url);
    free(body);
    return rc;
}

/* ---- routes and life cycle ---------------------------------------------------------------------- */

#define CRUD(path, x)                                                                        \
    {"GET", "/v2.0/" path, h_list_##x, 0}, {"POST", "/v2.0/" path, ts_network_h_##x##_create, 0}, \
        {"GET", "/v2.0/" path "/{id}", h_show_##x, 0},                                       \
        {"PUT", "/v2.0/" path "/{id}", ts_network_h_##x##_update, 0},                        \
        {"DELETE", "/v2.0/" path "/{id}", ts_network_h_##x##_delete, 0}

static const struct ts_http_route routes[] = {
    {"GET", "/", h_versions, TS_ROUTE_PUBLIC},
    {"GET", "/v2.0", h_v2, 0},
    {"GET", "/v2.0/extensions", h_extensions, 0},
    {"GET", "/v2.0/extensions/{alias}", h_extension, 0},
    CRUD("networks", network),
    CRUD("subnets", subnet),
    CRUD("subnetpools", subnetpool),
    CRUD("ports", port),
    CRUD("routers", router),
    CRUD("floatingips", floatingip),
    CRUD("security-groups", sg),
    CRUD("security-group-rules", sgr),
    {"PUT", "/v2.0/routers/{id}/add_router_interface", ts_network_h_router_add_if, 0},
    {"PUT", "/v2.0/routers/{id}/remove_router_interface", ts_network_h_router_remove_if, 0},
    {"GET", "/v2.0/agents", ts_network_h_agents_list, 0},
    {"GET", "/v2.0/agents/{id}", ts_network_h_agent_show, 0},
    {"PUT", "/v2.0/agents/{id}", ts_network_h_agent_update, 0},
    {"DELETE", "/v2.0/agents/{id}", ts_network_h_agent_delete, 0},
    {"GET", "/v2.0/agents/{id}/dhcp-networks", ts_network_h_dhcp_networks_list, 0},
    {"POST", "/v2.0/agents/{id}/dhcp-networks", ts_network_h_dhcp_networks_add, 0},
    {"DELETE", "/v2.0/agents/{id}/dhcp-networks/{oid}", ts_network_h_dhcp_networks_remove, 0},
    {"GET", "/v2.0/agents/{id}/l3-routers", ts_network_h_l3_routers_list, 0},
    {"POST", "/v2.0/agents/{id}/l3-routers", ts_network_h_l3_routers_add, 0},
    {"DELETE", "/v2.0/agents/{id}/l3-routers/{oid}", ts_network_h_l3_routers_remove, 0},
    {"GET", "/v2.0/networks/{id}/dhcp-agents", ts_network_h_network_dhcp_agents, 0},
    {"GET", "/v2.0/routers/{id}/l3-agents", ts_network_h_router_l3_agents, 0},
    {"GET", "/v2.0/quotas", h_quota_list, 0},
    {"GET", "/v2.0/quotas/tenant", h_quota_tenant, 0},
    {"GET", "/v2.0/quotas/{project}", h_quota_show, 0},
    {"GET", "/v2.0/quotas/{project}/default", h_quota_default, 0},
    {"GET", "/v2.0/quotas/{project}/details", h_quota_details, 0},
    {"GET", "/v2.0/quotas/{project}/details.json", h_quota_details, 0},
    {"PUT", "/v2.0/quotas/{project}", h_quota_update, 0},
    {"DELETE", "/v2.0/quotas/{project}", h_quota_delete, 0},
    {"GET", "/v2.0/{res}/{id}/tags", h_tags_list, 0},
    {"PUT", "/v2.0/{res}/{id}/tags", h_tags_put, 0},
    {"DELETE", "/v2.0/{res}/{id}/tags", h_tags_del, 0},
    {"GET", "/v2.0/{res}/{id}/tags/{tag}", h_tag_get, 0},
    {"PUT", "/v2.0/{res}/{id}/tags/{tag}", h_tag_add, 0},
    {"DELETE", "/v2.0/{res}/{id}/tags/{tag}", h_tag_del, 0},
    {NULL, NULL, NULL, 0},
};

static void conf_default(struct ts_conf *conf, const char *key, const char *value)
{
    if (!ts_conf_get(conf, "network", key, NULL)) ts_conf_set(conf, "network", key, value);
}

static int network_init(struct ts_service_env *env, struct ts_err *err)
{
    char *s = ts_asprintf("%d", ts_network_service.default_port);
    conf_default(env->conf, "port", s);
    free(s);
    s = ts_asprintf("sqlite:///%s/network.db", env->data_dir);
    conf_default(env->conf, "connection", s);
    free(s);
    struct ts_db *db = NULL;
    int rc = ts_db_open(ts_conf_get(env->conf, "network", "connection", NULL), &db, err);
    if (rc) return rc;
    struct ts_db_res *res = NULL;
    int64_t before = 0;
    if (ts_db_exec(db, "SELECT COALESCE(MAX(version), 0) FROM ts_schema_version", TS_DB_NOARGS, &res, NULL) == 0)
        before = ts_db_res_int(res, 0, 0, 0);
    ts_db_res_free(res);
    rc = ts_db_migrate(db, migrations, sizeof(migrations) / sizeof(migrations[0]), err);
    if (rc == 0 && before == 1) rc = backfill_v2(db, err);
    ts_db_close(db);
    return rc;
}

static void network_stop(void *state)
{
    struct ts_network_svc *svc = state;
    if (!svc) return;
    ts_http_server_stop(svc->http);
    ts_network_agents_stop(svc);
    ts_db_close(svc->db);
    free(svc);
}

static int network_start(struct ts_service_env *env, void **state, struct ts_err *err)
{
    struct ts_network_svc *svc = ts_calloc(1, sizeof(*svc));
    svc->env = env;
    snprintf(svc->publisher, sizeof(svc->publisher), "network.%s", env->host ? env->host : "localhost");
    int rc = network_init(env, err);
    if (rc) goto out;
    svc->mtu = ts_conf_get_int(env->conf, "network", "global_physnet_mtu", 1500);
    const char *cu = ts_conf_get(env->conf, "network", "compute_url", NULL);
    if (!cu) {
        const char *cp = ts_conf_get(env->conf, "compute", "port", NULL);
        if (cp) snprintf(svc->compute_url, sizeof(svc->compute_url), "http://127.0.0.1:%s", cp);
    } else {
        snprintf(svc->compute_url, sizeof(svc->compute_url), "%s", cu);
    }
    rc = ts_db_open(ts_conf_get(env->conf, "network", "connection", NULL), &svc->db, err);
    if (rc) goto out;
    rc = ts_network_agents_start(svc, err);
    if (rc) goto out;
    rc = ts_service_http_start(env, &ts_network_service, routes, TS_FAULT_NEUTRON, 8, svc, &svc->http, err);
    if (rc) goto out;
    *state = svc;
out:
    if (rc) network_stop(svc);
    return rc;
}

const struct ts_service ts_network_service = {
    .name = "network",
    .type = "network",
    .catalog_name = "neutron",
    .default_port = 9696,
    .catalog_path = "",
    .init = network_init,
    .start = network_start,
    .stop = network_stop,
};
