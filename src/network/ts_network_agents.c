/*
 * ts_network_agents.c: Neutron's agents API and its DHCP / L3 agent schedulers (the
 * `agent`, `dhcp_agent_scheduler` and `l3_agent_scheduler` extensions). Agents are what
 * hosts report over the bus (topic "q-reports-plugin", method report_state, sent by
 * ts_network_agent_report.c where the data-plane agent runs): one row per (agent_type, host)
 * in table `agents`, `alive` while the last heartbeat is younger than [network]
 * agent_down_time seconds. Networks with a DHCP subnet are scheduled to the least loaded
 * alive DHCP agent when the subnet is made, routers to an L3 agent when they are made, and
 * unhosted ones to an agent that (re)starts; admins move them with the scheduler calls.
 * Everything here is admin only (non-admins list no agents, as Neutron's policy does).
 */
#include "network/ts_network_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/ts_bus.h"
#include "json/ts_json.h"

#define REPORT_TOPIC "q-reports-plugin"

static const char *const agent_types[] = {"DHCP agent", "L3 agent", "Linux bridge agent", "Metadata agent", NULL};

#define AGENT_COLS                                                                                          \
    "g.id, g.agent_type, g.host, g.binary_name, g.topic, g.admin_state_up, g.description, g.availability_zone," \
    " g.configurations, g.created_at, g.started_at, g.heartbeat_at"

/* ---- rendering --------------------------------------------------------------------------- */

static void fmt_time(double t, char out[32])
{
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, 32, "%Y-%m-%d %H:%M:%S", &tm);
}

static double col_double(const struct ts_db_res *r, int row, int col)
{
    const char *s = ts_db_res_get(r, row, col);
    return s ? strtod(s, NULL) : 0;
}

static bool alive_at(struct ts_network_svc *svc, double heartbeat)
{
    return heartbeat > 0 && ts_now() - heartbeat <= svc->agent_down_time;
}

/* The API view of row i of a SELECT AGENT_COLS. */
static json_t *agent_view(struct ts_network_svc *svc, const struct ts_db_res *r, int i)
{
    char created[32], started[32], beat[32];
    fmt_time(col_double(r, i, 9), created);
    fmt_time(col_double(r, i, 10), started);
    fmt_time(col_double(r, i, 11), beat);
    json_t *conf = NULL;
    const char *ct = ts_db_res_get(r, i, 8);
    if (!ct || ts_json_parse(ct, strlen(ct), &conf, NULL) < 0 || !json_is_object(conf)) {
        json_decref(conf);
        conf = json_object();
    }
    json_t *v = json_object();
    ts_json_set_str(v, "id", ts_db_res_get(r, i, 0));
    ts_json_set_str(v, "agent_type", ts_db_res_get(r, i, 1));
    ts_json_set_str(v, "host", ts_db_res_get(r, i, 2));
    ts_json_set_str(v, "binary", ts_db_res_get(r, i, 3));
    ts_json_set_str(v, "topic", ts_db_res_get(r, i, 4));
    json_object_set_new(v, "admin_state_up", json_boolean(ts_db_res_int(r, i, 5, 1) != 0));
    json_object_set_new(v, "alive", json_boolean(alive_at(svc, col_double(r, i, 11))));
    const char *d = ts_db_res_get(r, i, 6), *az = ts_db_res_get(r, i, 7);
    json_object_set_new(v, "description", d ? json_string(d) : json_null());
    json_object_set_new(v, "availability_zone", az ? json_string(az) : json_null());
    json_object_set_new(v, "configurations", conf);
    json_object_set_new(v, "created_at", json_string(created));
    json_object_set_new(v, "started_at", json_string(started));
    json_object_set_new(v, "heartbeat_timestamp", json_string(beat));
    json_object_set_new(v, "resources_synced", json_null());
    return v;
}

static json_t *with_fields(struct ts_http_req *req, json_t *o)
{
    const char **fields = NULL;
    int nf = ts_http_query_all(req, "fields", &fields);
    return ts_network_apply_fields(o, fields, nf);
}

/* ---- list filters ------------------------------------------------------------------------ */

static void add_filter(void *ctx, const char *name, const char *value)
{
    static const char *const not_filters[] = {"fields", "sort_key", "sort_dir", "limit", "marker", "page_reverse",
                                              NULL};
    for (int i = 0; not_filters[i]; i++)
        if (ts_streq(name, not_filters[i])) return;
    json_t *f = ctx, *vals = json_object_get(f, name);
    if (!vals) {
        vals = json_array();
        json_object_set_new(f, name, vals);
    }
    json_array_append_new(vals, json_string(value ? value : ""));
}

static bool value_matches(const json_t *have, const char *want)
{
    if (json_is_boolean(have)) {
        bool w = ts_strcaseeq(want, "true") || ts_streq(want, "1");
        return w == json_is_true(have);
    }
    if (json_is_string(have)) return ts_streq(json_string_value(have), want);
    if (json_is_null(have)) return !*want;
    return false;
}

/* Neutron's equality filters: every named attribute must equal one of its values; names that
 * are no attribute of an agent are ignored. */
static bool agent_matches(const json_t *agent, const json_t *filters)
{
    const char *key;
    json_t *vals;
    json_object_foreach((json_t *)filters, key, vals) {
        json_t *have = json_object_get(agent, key);
        if (!have || json_is_object(have)) continue;
        bool any = false;
        size_t i;
        json_t *w;
        json_array_foreach(vals, i, w) any |= value_matches(have, json_string_value(w));
        if (!any) return false;
    }
    return true;
}

/* ---- lookups ------------------------------------------------------------------------------- */

static int agent_nf(struct ts_err *err, const char *id)
{
    return ts_err_set_full(err, TS_ENOTFOUND, 404, "AgentNotFound", "Agent %s could not be found.", id ? id : "");
}

/* Loads agent id (its API view) inside tx or autocommit (tx NULL). */
static int agent_load(struct ts_network_svc *svc, struct ts_db_conn *tx, const char *id, json_t **out,
                      struct ts_err *err)
{
    struct ts_db_res *res = NULL;
    if (!id) return agent_nf(err, id);
    const char *sql = "SELECT " AGENT_COLS " FROM agents g WHERE g.id = ?";
    int rc = tx ? ts_db_tx_exec(tx, sql, TS_DB_ARGS(TS_DB_S(id)), &res, err)
                : ts_db_exec(svc->db, sql, TS_DB_ARGS(TS_DB_S(id)), &res, err);
    if (rc) return rc;
    if (res->nrows == 0) rc = agent_nf(err, id);
    else *out = agent_view(svc, res, 0);
    ts_db_res_free(res);
    return rc;
}

static int admin_only(struct ts_http_req *req, const char *rule, struct ts_err *err)
{
    if (req->auth->is_admin) return 0;
    return ts_network_forbidden(err, "rule:%s is disallowed by policy", rule);
}

/* Sends agents rows of res as {"agents": [...]} with `fields`. */
static void send_agents(struct ts_network_svc *svc, struct ts_http_req *req, struct ts_http_resp *resp,
                        const struct ts_db_res *res, const json_t *filters)
{
    json_t *arr = json_array();
    for (int i = 0; res && i < res->nrows; i++) {
        json_t *v = agent_view(svc, res, i);
        if (filters && !agent_matches(v, filters)) {
            json_decref(v);
            continue;
        }
        json_array_append_new(arr, with_fields(req, v));
    }
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "agents", arr));
}

/* ---- /v2.0/agents ---------------------------------------------------------------------------- */

int ts_network_h_agents_list(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    /* get_agent is admin only: other callers see an empty list, as with Neutron's policy */
    if (!req->auth->is_admin) {
        ts_http_resp_json(resp, 200, json_pack("{s:[]}", "agents"));
        return 0;
    }
    struct ts_db_res *res = NULL;
    int rc = ts_db_exec(svc->db, "SELECT " AGENT_COLS " FROM agents g ORDER BY g.host, g.agent_type", TS_DB_NOARGS,
                        &res, err);
    if (rc) return rc;
    json_t *filters = json_object();
    ts_http_query_each(req, add_filter, filters);
    send_agents(svc, req, resp, res, filters);
    json_decref(filters);
    ts_db_res_free(res);
    return 0;
}

int ts_network_h_agent_show(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    const char *id = ts_http_param(req, "id");
    if (!req->auth->is_admin) return agent_nf(err, id); /* Neutron hides what policy forbids */
    json_t *v = NULL;
    int rc = agent_load(req->svc, NULL, id, &v, err);
    if (rc) return rc;
    ts_http_resp_json(resp, 200, json_pack("{s:o}", "agent", with_fields(req, v)));
    return 0;
}

int ts_network_h_agent_update(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    const char *id = ts_http_param(req, "id");
    if (!req->auth->is_admin) return agent_nf(err, id);
    json_t *root = NULL;
    int rc = ts_http_json_body(req, &root, err);
    if (rc) return ts_network_bad(err, "%s", err && err->msg[0] ? err->msg : "Malformed request body");
    json_t *b = json_object_get(root, "agent");
    if (!json_is_object(b)) return ts_network_bad(err, "Resource body required: expected an object under 'agent'.");
    const char *key;
    json_t *val;
    json_object_foreach(b, key, val) {
        if (!ts_streq(key, "admin_state_up") && !ts_streq(key, "description"))
            return ts_network_bad(err, "Cannot update read-only attribute %s", key);
    }
    bool up = true;
    const char *desc = NULL;
    json_t *dv = json_object_get(b, "description");
    if ((rc = ts_network_json_bool(b, "admin_state_up", true, &up, err))) return rc;
    if ((rc = ts_network_json_str(b, "description", 255, &desc, err))) return rc;
    struct ts_db_conn *tx = NULL;
    json_t *v = NULL;
    if ((rc = ts_db_begin(svc->db, &tx, err))) return rc;
    if ((rc = agent_load(svc, tx, id, &v, err))) goto out;
    if (json_object_get(b, "admin_state_up") &&
        (rc = ts_db_tx_exec(tx, "UPDATE agents SET admin_state_up = ? WHERE id = ?",
                            TS_DB_ARGS(TS_DB_B(up), TS_DB_S(id)), NULL, err)))
        goto out;
    if (dv && (rc = ts_db_tx_exec(tx, "UPDATE agents SET description = ? WHERE id = ?",
                                  TS_DB_ARGS(TS_DB_S(desc), TS_DB_S(id)), NULL, err)))
        goto out;
    json_decref(v);
    v = NULL;
    if ((rc = agent_load(svc, tx, id, &v, err))) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    ts_http_resp_json(resp, 200, json_pack("{s:O}", "agent", v));
out:
    ts_db_rollback(tx);
    json_decref(v);
    return rc;
}

int ts_network_h_agent_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    const char *id = ts_http_param(req, "id");
    if (!req->auth->is_admin) return agent_nf(err, id);
    struct ts_db_conn *tx = NULL;
    json_t *v = NULL;
    int rc = ts_db_begin(svc->db, &tx, err);
    if (rc) return rc;
    if ((rc = agent_load(svc, tx, id, &v, err))) goto out;
    /* a live agent reports again and comes back under a new id, as in Neutron */
    if ((rc = ts_db_tx_exec(tx, "DELETE FROM agent_networks WHERE agent_id = ?", TS_DB_ARGS(TS_DB_S(id)), NULL,
                            err)))
        goto out;
    if ((rc = ts_db_tx_exec(tx, "DELETE FROM agent_routers WHERE agent_id = ?", TS_DB_ARGS(TS_DB_S(id)), NULL,
                            err)))
        goto out;
    if ((rc = ts_db_tx_exec(tx, "DELETE FROM agents WHERE id = ?", TS_DB_ARGS(TS_DB_S(id)), NULL, err))) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    ts_http_resp_no_body(resp, 204, 0);
out:
    ts_db_rollback(tx);
    json_decref(v);
    return rc;
}

/* ---- schedulers ------------------------------------------------------------------------------ */

int ts_network_agents_schedule_network(struct ts_network_svc *svc, struct ts_db_conn *tx, const char *net_id,
                                       struct ts_err *err)
{
    /* one statement: nothing when some agent hosts it already or no DHCP agent is up */
    return ts_db_tx_exec(tx,
                         "INSERT INTO agent_networks (agent_id, network_id) SELECT g.id, ? FROM agents g"
                         " WHERE g.agent_type = 'DHCP agent' AND g.admin_state_up = 1 AND g.heartbeat_at >= ?"
                         " AND NOT EXISTS (SELECT 1 FROM agent_networks x WHERE x.network_id = ?)"
                         " ORDER BY (SELECT COUNT(*) FROM agent_networks y WHERE y.agent_id = g.id), g.id LIMIT 1",
                         TS_DB_ARGS(TS_DB_S(net_id), TS_DB_D(ts_now() - svc->agent_down_time), TS_DB_S(net_id)),
                         NULL, err);
}

int ts_network_agents_schedule_router(struct ts_network_svc *svc, struct ts_db_conn *tx, const char *router_id,
                                      struct ts_err *err)
{
    return ts_db_tx_exec(tx,
                         "INSERT INTO agent_routers (router_id, agent_id) SELECT ?, g.id FROM agents g"
                         " WHERE g.agent_type = 'L3 agent' AND g.admin_state_up = 1 AND g.heartbeat_at >= ?"
                         " AND NOT EXISTS (SELECT 1 FROM agent_routers x WHERE x.router_id = ?)"
                         " ORDER BY (SELECT COUNT(*) FROM agent_routers y WHERE y.agent_id = g.id), g.id LIMIT 1",
                         TS_DB_ARGS(TS_DB_S(router_id), TS_DB_D(ts_now() - svc->agent_down_time),
                                    TS_DB_S(router_id)),
                         NULL, err);
}

int ts_network_agents_unbind(struct ts_db_conn *tx, const char *id, struct ts_err *err)
{
    int rc = ts_db_tx_exec(tx, "DELETE FROM agent_networks WHERE network_id = ?", TS_DB_ARGS(TS_DB_S(id)), NULL, err);
    if (rc) return rc;
    return ts_db_tx_exec(tx, "DELETE FROM agent_routers WHERE router_id = ?", TS_DB_ARGS(TS_DB_S(id)), NULL, err);
}

/* The agent of a scheduler call, which must be of type `type` and enabled (404 otherwise,
 * Neutron's InvalidDHCPAgent / InvalidL3Agent). */
static int sched_agent(struct ts_network_svc *svc, struct ts_db_conn *tx, const char *id, const char *type,
                       struct ts_err *err)
{
    json_t *v = NULL;
    int rc = agent_load(svc, tx, id, &v, err);
    if (rc) return rc;
    if (!ts_streq(ts_network_vs(v, "agent_type"), type) || !json_is_true(json_object_get(v, "admin_state_up")))
        rc = ts_err_set_full(err, TS_ENOTFOUND, 404, ts_streq(type, "DHCP agent") ? "InvalidDHCPAgent" : "InvalidL3Agent",
                             ts_streq(type, "DHCP agent") ? "Agent %s is not a valid DHCP Agent or has been disabled"
                                                          : "Agent %s is not a L3 Agent or has been disabled",
                             id);
    json_decref(v);
    return rc;
}

/* GET /v2.0/agents/{id}/dhcp-networks and /l3-routers: the objects an agent hosts. */
static int hosted_list(struct ts_http_req *req, struct ts_http_resp *resp, bool dhcp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    int rc = admin_only(req, dhcp ? "get_dhcp-networks" : "get_l3-routers", err);
    if (rc) return rc;
    const char *id = ts_http_param(req, "id");
    json_t *agent = NULL;
    if ((rc = agent_load(svc, NULL, id, &agent, err))) return rc;
    json_decref(agent);
    struct ts_db_res *res = NULL;
    rc = ts_db_exec(svc->db,
                    dhcp ? "SELECT o.body FROM agent_networks b JOIN objects o ON o.id = b.network_id"
                           " WHERE b.agent_id = ? AND o.kind = 'network' ORDER BY o.created_us, o.id"
                         : "SELECT o.body FROM agent_routers b JOIN objects o ON o.id = b.router_id"
                           " WHERE b.agent_id = ? AND o.kind = 'router' ORDER BY o.created_us, o.id",
                    TS_DB_ARGS(TS_DB_S(id)), &res, err);
    if (rc) return rc;
    json_t *arr = json_array();
    for (int i = 0; i < res->nrows; i++) {
        json_t *v = NULL;
        const char *t = ts_db_res_get(res, i, 0);
        if (!t || ts_json_parse(t, strlen(t), &v, NULL) < 0) continue;
        json_array_append_new(arr, with_fields(req, ts_network_output_view(req, v)));
        json_decref(v);
    }
    ts_db_res_free(res);
    ts_http_resp_json(resp, 200, json_pack("{s:o}", dhcp ? "networks" : "routers", arr));
    return 0;
}

/* POST /v2.0/agents/{id}/dhcp-networks {"network_id"} and /l3-routers {"router_id"}. */
static int hosted_add(struct ts_http_req *req, struct ts_http_resp *resp, bool dhcp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    int rc = admin_only(req, dhcp ? "create_dhcp-network" : "create_l3-router", err);
    if (rc) return rc;
    const char *id = ts_http_param(req, "id");
    const char *key = dhcp ? "network_id" : "router_id";
    json_t *root = NULL;
    if ((rc = ts_http_json_body(req, &root, err)))
        return ts_network_bad(err, "%s", err && err->msg[0] ? err->msg : "Malformed request body");
    const char *oid = ts_network_vs(root, key);
    if (!json_is_object(root) || !oid || !*oid)
        return ts_network_bad(err, "Failed to parse request. Required attribute '%s' not specified", key);
    struct ts_db_conn *tx = NULL;
    struct ts_db_res *res = NULL;
    json_t *obj = NULL;
    if ((rc = ts_db_begin(svc->db, &tx, err))) return rc;
    if ((rc = sched_agent(svc, tx, id, dhcp ? "DHCP agent" : "L3 agent", err))) goto out;
    if ((rc = ts_network_load(tx, dhcp ? &ts_network_k_network : &ts_network_k_router, oid, &obj, err))) goto out;
    if (dhcp) {
        rc = ts_db_tx_exec(tx, "SELECT 1 FROM agent_networks WHERE agent_id = ? AND network_id = ?",
                           TS_DB_ARGS(TS_DB_S(id), TS_DB_S(oid)), &res, err);
        if (rc) goto out;
        if (res->nrows) {
            rc = ts_network_conflict(err, "NetworkHostedByDHCPAgent",
                                     "The network %s has been already hosted by the DHCP Agent %s.", oid, id);
            goto out;
        }
        rc = ts_db_tx_exec(tx, "INSERT INTO agent_networks (agent_id, network_id) VALUES (?, ?)",
                           TS_DB_ARGS(TS_DB_S(id), TS_DB_S(oid)), NULL, err);
    } else {
        /* a legacy (not HA) router lives on one L3 agent */
        rc = ts_db_tx_exec(tx, "SELECT agent_id FROM agent_routers WHERE router_id = ?", TS_DB_ARGS(TS_DB_S(oid)),
                           &res, err);
        if (rc) goto out;
        if (res->nrows) {
            rc = ts_network_conflict(err, "RouterHostedByL3Agent",
                                     "The router %s has been already hosted by the L3 Agent %s.", oid,
                                     ts_db_res_get(res, 0, 0));
            goto out;
        }
        rc = ts_db_tx_exec(tx, "INSERT INTO agent_routers (router_id, agent_id) VALUES (?, ?)",
                           TS_DB_ARGS(TS_DB_S(oid), TS_DB_S(id)), NULL, err);
    }
    if (rc) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    if (!dhcp) ts_network_agent_event(svc, "router.update", oid);
    /* Neutron answers 201 with a JSON null; openstacksdk parses the body */
    ts_http_resp_body(resp, 201, "application/json", "null", 4);
out:
    ts_db_rollback(tx);
    ts_db_res_free(res);
    json_decref(obj);
    return rc;
}

/* DELETE /v2.0/agents/{id}/dhcp-networks/{oid} and /l3-routers/{oid}. */
static int hosted_remove(struct ts_http_req *req, struct ts_http_resp *resp, bool dhcp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    int rc = admin_only(req, dhcp ? "delete_dhcp-network" : "delete_l3-router", err);
    if (rc) return rc;
    const char *id = ts_http_param(req, "id"), *oid = ts_http_param(req, "oid");
    struct ts_db_conn *tx = NULL;
    struct ts_db_res *res = NULL;
    json_t *agent = NULL, *obj = NULL;
    if ((rc = ts_db_begin(svc->db, &tx, err))) return rc;
    if ((rc = agent_load(svc, tx, id, &agent, err))) goto out;
    if ((rc = ts_network_load(tx, dhcp ? &ts_network_k_network : &ts_network_k_router, oid, &obj, err))) goto out;
    rc = ts_db_tx_exec(tx,
                       dhcp ? "SELECT 1 FROM agent_networks WHERE agent_id = ? AND network_id = ?"
                            : "SELECT 1 FROM agent_routers WHERE agent_id = ? AND router_id = ?",
                       TS_DB_ARGS(TS_DB_S(id), TS_DB_S(oid)), &res, err);
    if (rc) goto out;
    if (!res->nrows) {
        rc = dhcp ? ts_network_conflict(err, "NetworkNotHostedByDhcpAgent",
                                        "The network %s is not hosted by the DHCP agent %s.", oid, id)
                  : ts_network_conflict(err, "RouterNotHostedByL3Agent",
                                        "The router %s is not hosted by L3 agent %s.", oid, id);
        goto out;
    }
    rc = ts_db_tx_exec(tx,
                       dhcp ? "DELETE FROM agent_networks WHERE agent_id = ? AND network_id = ?"
                            : "DELETE FROM agent_routers WHERE agent_id = ? AND router_id = ?",
                       TS_DB_ARGS(TS_DB_S(id), TS_DB_S(oid)), NULL, err);
    if (rc) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    if (!dhcp) ts_network_agent_event(svc, "router.update", oid);
    ts_http_resp_no_body(resp, 204, 0);
out:
    ts_db_rollback(tx);
    ts_db_res_free(res);
    json_decref(agent);
    json_decref(obj);
    return rc;
}

/* GET /v2.0/networks/{id}/dhcp-agents and /v2.0/routers/{id}/l3-agents. */
static int hosting_agents(struct ts_http_req *req, struct ts_http_resp *resp, bool dhcp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    int rc = admin_only(req, dhcp ? "get_dhcp-agents" : "get_l3-agents", err);
    if (rc) return rc;
    const char *id = ts_http_param(req, "id");
    json_t *obj = NULL;
    if ((rc = ts_network_load_visible(svc, NULL, req, dhcp ? &ts_network_k_network : &ts_network_k_router, id, &obj,
                                      err)))
        return rc;
    json_decref(obj);
    struct ts_db_res *res = NULL;
    rc = ts_db_exec(svc->db,
                    dhcp ? "SELECT " AGENT_COLS " FROM agent_networks b JOIN agents g ON g.id = b.agent_id"
                           " WHERE b.network_id = ? ORDER BY g.host"
                         : "SELECT " AGENT_COLS " FROM agent_routers b JOIN agents g ON g.id = b.agent_id"
                           " WHERE b.router_id = ? ORDER BY g.host",
                    TS_DB_ARGS(TS_DB_S(id)), &res, err);
    if (rc) return rc;
    send_agents(svc, req, resp, res, NULL);
    ts_db_res_free(res);
    return 0;
}

int ts_network_h_dhcp_networks_list(struct ts_http_req *r, struct ts_http_resp *s, struct ts_err *e)
{
    return hosted_list(r, s, true, e);
}
int ts_network_h_dhcp_networks_add(struct ts_http_req *r, struct ts_http_resp *s, struct ts_err *e)
{
    return hosted_add(r, s, true, e);
}
int ts_network_h_dhcp_networks_remove(struct ts_http_req *r, struct ts_http_resp *s, struct ts_err *e)
{
    return hosted_remove(r, s, true, e);
}
int ts_network_h_l3_routers_list(struct ts_http_req *r, struct ts_http_resp *s, struct ts_err *e)
{
    return hosted_list(r, s, false, e);
}
int ts_network_h_l3_routers_add(struct ts_http_req *r, struct ts_http_resp *s, struct ts_err *e)
{
    return hosted_add(r, s, false, e);
}
int ts_network_h_l3_routers_remove(struct ts_http_req *r, struct ts_http_resp *s, struct ts_err *e)
{
    return hosted_remove(r, s, false, e);
}
int ts_network_h_network_dhcp_agents(struct ts_http_req *r, struct ts_http_resp *s, struct ts_err *e)
{
    return hosting_agents(r, s, true, e);
}
int ts_network_h_router_l3_agents(struct ts_http_req *r, struct ts_http_resp *s, struct ts_err *e)
{
    return hosting_agents(r, s, false, e);
}


/* ---- heartbeats ---------------------------------------------------------------------------- */

/* Networks with a DHCP subnet and routers that no agent hosts go to agent_id (a DHCP or L3
 * agent that just started or came back), as Neutron's auto-scheduling on agent sync. */
static int auto_schedule(struct ts_db_conn *tx, const char *agent_id, bool dhcp, struct ts_err *err)
{
    struct ts_db_res *res = NULL;
    int rc;
    if (!dhcp) {
        rc = ts_db_tx_exec(tx,
                           "INSERT INTO agent_routers (router_id, agent_id) SELECT o.id, ? FROM objects o"
                           " WHERE o.kind = 'router' AND NOT EXISTS (SELECT 1 FROM agent_routers x"
                           " WHERE x.router_id = o.id)",
                           TS_DB_ARGS(TS_DB_S(agent_id)), NULL, err);
        return rc;
    }
    rc = ts_db_tx_exec(tx,
                       "SELECT s.network_id, s.body FROM objects s WHERE s.kind = 'subnet' AND s.network_id IS NOT NULL"
                       " AND NOT EXISTS (SELECT 1 FROM agent_networks x WHERE x.network_id = s.network_id)",
                       TS_DB_NOARGS, &res, err);
    if (rc) return rc;
    for (int i = 0; i < res->nrows && rc == 0; i++) {
        json_t *sn = NULL;
        const char *t = ts_db_res_get(res, i, 1);
        if (!t || ts_json_parse(t, strlen(t), &sn, NULL) < 0) continue;
        if (json_is_true(json_object_get(sn, "enable_dhcp")))
            rc = ts_db_tx_exec(tx,
                               "INSERT INTO agent_networks (agent_id, network_id) VALUES (?, ?)"
                               " ON CONFLICT DO NOTHING",
                               TS_DB_ARGS(TS_DB_S(agent_id), TS_DB_S(ts_db_res_get(res, i, 0))), NULL, err);
        json_decref(sn);
    }
    ts_db_res_free(res);
    return rc;
}

/* report_state {"host", "start_flag", "agents": [{"agent_type", "binary", "topic",
 * "availability_zone", "configurations"}]}: upserts one row per agent with the server's
 * clock as its heartbeat. */
static int on_report(void *ctx, const char *method, json_t *args, json_t **reply, struct ts_err *err)
{
    struct ts_network_svc *svc = ctx;
    (void)reply;
    if (!ts_streq(method, "report_state")) return ts_err_set(err, TS_EINVAL, "unknown method %s", method ? method : "");
    const char *host = ts_json_str(args, "host", NULL);
    json_t *agents = json_object_get(args, "agents");
    if (!host || !*host || strlen(host) > 255 || !json_is_array(agents))
        return ts_err_set(err, TS_EINVAL, "report_state without host or agents");
    bool start = ts_json_bool(args, "start_flag", false);
    double now = ts_now();
    struct ts_db_conn *tx = NULL;
    struct ts_db_res *res = NULL;
    int rc = ts_db_begin(svc->db, &tx, err);
    if (rc) return rc;
    size_t i;
    json_t *a;
    json_array_foreach(agents, i, a) {
        const char *type = ts_json_str(a, "agent_type", NULL), *bin = ts_json_str(a, "binary", NULL);
        bool known = false;
        for (int k = 0; type && agent_types[k]; k++) known |= ts_streq(type, agent_types[k]);
        if (!known || !bin) continue;
        const char *az = ts_json_str(a, "availability_zone", NULL);
        json_t *conf = json_object_get(a, "configurations");
        char *ctext = json_is_object(conf) ? ts_json_dump(conf) : ts_strdup("{}");
        ts_db_res_free(res);
        res = NULL;
        rc = ts_db_tx_exec(tx, "SELECT id, heartbeat_at FROM agents WHERE agent_type = ? AND host = ?",
                           TS_DB_ARGS(TS_DB_S(type), TS_DB_S(host)), &res, err);
        if (rc) {
            free(ctext);
            goto out;
        }
        bool revived = start || res->nrows == 0 || !alive_at(svc, col_double(res, 0, 1));
        char id[TS_UUID_LEN + 1];
        if (res->nrows) {
            snprintf(id, sizeof(id), "%s", ts_db_res_get(res, 0, 0));
            rc = ts_db_tx_exec(tx,
                               "UPDATE agents SET binary_name = ?, topic = ?, availability_zone = ?, configurations = ?,"
                               " heartbeat_at = ?, started_at = CASE WHEN ? = 1 THEN ? ELSE started_at END WHERE id = ?",
                               TS_DB_ARGS(TS_DB_S(bin), TS_DB_S(ts_json_str(a, "topic", "N/A")), TS_DB_S(az),
                                          TS_DB_S(ctext), TS_DB_D(now), TS_DB_B(revived), TS_DB_D(now), TS_DB_S(id)),
                               NULL, err);
        } else {
            ts_uuid(id);
            rc = ts_db_tx_exec(tx,
                               "INSERT INTO agents (id, agent_type, host, binary_name, topic, availability_zone,"
                               " configurations, created_at, started_at, heartbeat_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                               TS_DB_ARGS(TS_DB_S(id), TS_DB_S(type), TS_DB_S(host), TS_DB_S(bin),
                                          TS_DB_S(ts_json_str(a, "topic", "N/A")), TS_DB_S(az), TS_DB_S(ctext),
                                          TS_DB_D(now), TS_DB_D(now), TS_DB_D(now)),
                               NULL, err);
        }
        free(ctext);
        if (rc) goto out;
        if (revived && (ts_streq(type, "DHCP agent") || ts_streq(type, "L3 agent"))) {
            ts_info("network", "%s on %s is up: scheduling what no agent hosts", type, host);
            if ((rc = auto_schedule(tx, id, ts_streq(type, "DHCP agent"), err))) goto out;
        }
    }
    rc = ts_db_commit(tx, err);
    tx = NULL;
out:
    ts_db_res_free(res);
    ts_db_rollback(tx);
    if (rc) ts_warn("network", "report_state from %s: %s", host, err ? err->msg : "");
    return rc;
}

int ts_network_agents_start(struct ts_network_svc *svc, struct ts_err *err)
{
    svc->agent_down_time = ts_conf_get_double(svc->env->conf, "network", "agent_down_time", 75.0);
    if (svc->agent_down_time < 1) svc->agent_down_time = 1;
    if (!svc->env->bus) return 0;
    int rc = ts_bus_serve(svc->env->bus, REPORT_TOPIC, on_report, svc, 1, err);
    if (rc == 0) svc->agents_served = true;
    return rc;
}

void ts_network_agents_stop(struct ts_network_svc *svc)
{
    if (svc->agents_served) ts_bus_unserve(svc->env->bus, REPORT_TOPIC);
    svc->agents_served = false;
}
