/*
 * ts_network_int.h: what the network service's files share: the service context, the
 * resource kinds, the generic object store (one table `objects` holding each resource's
 * JSON view plus the columns an agent reconciles from), error helpers and notifications.
 */
#ifndef TS_NETWORK_INT_H
#define TS_NETWORK_INT_H

#include <jansson.h>
#include <stdbool.h>

#include "db/ts_db.h"
#include "http/ts_http.h"
#include "network/ts_network.h"
#include "json/ts_json.h"
#include "network/ts_network_ipam.h"

struct ts_network_svc {
    struct ts_service_env *env;
    struct ts_db *db;
    struct ts_http_server *http;
    char publisher[160];
    char compute_url[256];
    int64_t mtu;
    double agent_down_time;   /* [network] agent_down_time: an agent is alive this long after a heartbeat */
    bool agents_served;       /* consuming the agents' report_state casts */
};

enum ts_network_vis {
    TS_NV_OWN,        /* owner project or admin */
    TS_NV_NETWORK,    /* owner, shared, router:external, or admin */
    TS_NV_SUBNET,     /* owner, subnet of a shared/external network, or admin */
    TS_NV_POOL,       /* owner, shared, or admin */
};

struct ts_network_kind {
    const char *name;       /* "network": singular body key, notification prefix, quota name */
    const char *plural;     /* "networks": collection path and list key */
    const char *label;      /* "Network": "Network X could not be found." */
    const char *notfound;   /* "NetworkNotFound" */
    enum ts_network_vis vis;
    bool taggable;
    bool quota;
};

extern const struct ts_network_kind ts_network_k_network, ts_network_k_subnet, ts_network_k_port,
    ts_network_k_router, ts_network_k_floatingip, ts_network_k_sg, ts_network_k_sgr, ts_network_k_subnetpool;

/* ---- errors ---- */
int ts_network_nf(struct ts_err *err, const struct ts_network_kind *k, const char *id);
int ts_network_bad(struct ts_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int ts_network_conflict(struct ts_err *err, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int ts_network_forbidden(struct ts_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* 403 for reader-only callers; 0 otherwise. */
int ts_network_check_writer(struct ts_http_req *req, struct ts_err *err);

/* ---- object store ---- */
/* A fresh view with id, project_id/tenant_id, timestamps, revision 0, tags [] and
 * description "" (from body when given). Caller fills the rest. */
json_t *ts_network_new_view(struct ts_http_req *req, const struct ts_network_kind *k, const json_t *body);
/* Project the new resource belongs to: body project_id/tenant_id (admin only) or the caller's. */
const char *ts_network_req_project(struct ts_http_req *req, const json_t *body);
/* Inserts (insert=true) or replaces a view; updates derived columns. Replacing bumps
 * revision_number and updated_at. Unique MAC violations give -TS_ECONFLICT. */
int ts_network_save(struct ts_db_conn *tx, const struct ts_network_kind *k, json_t *view, bool insert,
                    struct ts_err *err);
/* Bumps revision_number and updated_at of a stored view whose indexed attributes did not
 * change (a security group when its rules change) and writes only its body. */
int ts_network_touch(struct ts_db_conn *tx, json_t *view, struct ts_err *err);
int ts_network_delete_obj(struct ts_db_conn *tx, const char *id, struct ts_err *err);
/* Loads a view by id inside a transaction (no visibility check); 404 if absent. */
int ts_network_load(struct ts_db_conn *tx, const struct ts_network_kind *k, const char *id, json_t **out,
                    struct ts_err *err);
/* Loads and checks visibility for the caller (404 when hidden). tx may be NULL (autocommit). */
int ts_network_load_visible(struct ts_network_svc *svc, struct ts_db_conn *tx, struct ts_http_req *req,
                            const struct ts_network_kind *k, const char *id, json_t **out, struct ts_err *err);
/* Loads views matching `column = value` (column from the fixed set). */
int ts_network_load_where(struct ts_db_conn *tx, const struct ts_network_kind *k, const char *column,
                          const char *value, json_t **out_array, struct ts_err *err);
bool ts_network_visible(const struct ts_http_req *req, const struct ts_network_kind *k, const json_t *v);
bool ts_network_owner(const struct ts_http_req *req, const json_t *v);
/* Over quota: 409 OverQuota when the project has >= limit objects of this kind (adding `adding`). */
int ts_network_quota_check(struct ts_network_svc *svc, struct ts_db_conn *tx, const struct ts_network_kind *k,
                           const char *project, int adding, struct ts_err *err);
/* JSON response of one object (with `fields` and per-caller attribute policy). */
json_t *ts_network_render(struct ts_http_req *req, const struct ts_network_kind *k, const json_t *v);
/* The caller's view of a stored object: no "_" keys; provider:* and binding:* (but
 * vnic_type) for admins only. New reference. */
json_t *ts_network_output_view(struct ts_http_req *req, const json_t *v);
/* Keeps only the named members of o (all when n is 0); steals o, returns a new reference. */
json_t *ts_network_apply_fields(json_t *o, const char **fields, int n);
/* Absolute URL of path on this server as the client reached it (Host, X-Forwarded-Proto). */
char *ts_network_self_url(struct ts_http_req *req, const char *path);
/* Appends to b the JSON object in `text` (as jansson wrote it) without parsing it into a tree:
 * members whose key starts with "_" are dropped, admin-only ones unless admin, and all but
 * `fields` when nfields > 0; when extra_key is given a stored member of that name is dropped
 * and `"extra_key":extra` appended (if extra is non-NULL and the key is wanted). Returns 0,
 * or -1 with b unchanged when text is not a well-formed object. */
int ts_network_render_text(struct ts_buf *b, const char *text, bool admin, const char *const *fields, int nfields,
                           const char *extra_key, const char *extra, size_t extra_len);
/* GET /v2.0/<collection>: visibility, filters, sorting, pagination, fields (ts_network_list.c). */
int ts_network_list(struct ts_network_svc *svc, struct ts_http_req *req, struct ts_http_resp *resp,
                    const struct ts_network_kind *k, struct ts_err *err);

/* Body key for this kind: {"network": {...}}; checks allowed keys (NULL-terminated). */
int ts_network_body(struct ts_http_req *req, const struct ts_network_kind *k, const char *const *allowed,
                    json_t **root, json_t **obj, struct ts_err *err);
int ts_network_check_keys(const json_t *obj, const char *const *allowed, struct ts_err *err);

/* ---- notifications ---- */
void ts_network_notify(struct ts_network_svc *svc, const struct ts_network_kind *k, const char *what,
                       const json_t *view);
/* bus fanout "network_agent" {"event", "port_id"} for the data-plane agent. */
void ts_network_agent_event(struct ts_network_svc *svc, const char *event, const char *port_id);
/* Nova's os-server-external-events (network-vif-plugged etc.) for the data-plane piece. */
int ts_network_nova_event(struct ts_network_svc *svc, const char *token, const char *name, const char *server_id,
                          const char *port_id, const char *status, struct ts_err *err);

/* ---- helpers ---- */
const char *ts_network_vs(const json_t *v, const char *key);
void ts_network_now_iso(char out[32]);
int ts_network_json_bool(const json_t *obj, const char *key, bool def, bool *out, struct ts_err *err);
int ts_network_json_str(const json_t *obj, const char *key, size_t max, const char **out, struct ts_err *err);
/* Default security group of a project (created on first use). id out 37 bytes. */
int ts_network_default_sg(struct ts_network_svc *svc, const char *project, char id[37], struct ts_err *err);

/* ---- IPAM over the store ---- */
/* Allocates addresses for a port on network net_id from fixed_ips (array of {subnet_id?,
 * ip_address?}) or automatically (fixed_ips NULL); writes ipallocs and returns the final
 * fixed_ips array in *out. */
int ts_network_ipam_allocate(struct ts_db_conn *tx, struct ts_http_req *req, const char *net_id, const char *port_id,
                             const char *mac, const json_t *fixed_ips, bool router_port, json_t **out,
                             struct ts_err *err);
int ts_network_ipam_release(struct ts_db_conn *tx, const char *port_id, struct ts_err *err);

/* ---- handlers ---- */
#define TS_NETWORK_HANDLERS(x)                                                                                   \
    int ts_network_h_##x##_create(struct ts_http_req *, struct ts_http_resp *, struct ts_err *);                \
    int ts_network_h_##x##_update(struct ts_http_req *, struct ts_http_resp *, struct ts_err *);                \
    int ts_network_h_##x##_delete(struct ts_http_req *, struct ts_http_resp *, struct ts_err *);
TS_NETWORK_HANDLERS(network)
TS_NETWORK_HANDLERS(subnet)
TS_NETWORK_HANDLERS(subnetpool)
TS_NETWORK_HANDLERS(port)
TS_NETWORK_HANDLERS(router)
TS_NETWORK_HANDLERS(floatingip)
TS_NETWORK_HANDLERS(sg)
TS_NETWORK_HANDLERS(sgr)
int ts_network_h_router_add_if(struct ts_http_req *, struct ts_http_resp *, struct ts_err *);
int ts_network_h_router_remove_if(struct ts_http_req *, struct ts_http_resp *, struct ts_err *);
/* Security group views carry their rules: attach them before rendering. */
int ts_network_sg_attach_rules(struct ts_network_svc *svc, json_t *sg, struct ts_err *err);
/* A security group rule's identity for the duplicate check (group, direction, ethertype,
 * protocol number, ports, remote prefix/group), written to out (size n). */
void ts_network_sgr_key(const json_t *rule, char *out, size_t n);
/* ---- agents and their schedulers (ts_network_agents.c) ---- */
/* Consumes the hosts' report_state casts (bus topic "q-reports-plugin"); stop before the db closes. */
int ts_network_agents_start(struct ts_network_svc *svc, struct ts_err *err);
void ts_network_agents_stop(struct ts_network_svc *svc);
/* Inside the caller's transaction: hosts network net_id on the least loaded alive, enabled DHCP
 * agent unless an agent hosts it already (no-op without one); the same for a router and the L3
 * agents. */
int ts_network_agents_schedule_network(struct ts_network_svc *svc, struct ts_db_conn *tx, const char *net_id,
                                       struct ts_err *err);
int ts_network_agents_schedule_router(struct ts_network_svc *svc, struct ts_db_conn *tx, const char *router_id,
                                      struct ts_err *err);
/* Drops the agent bindings of a network or router that goes away (caller's transaction). */
int ts_network_agents_unbind(struct ts_db_conn *tx, const char *id, struct ts_err *err);
int ts_network_h_agents_list(struct ts_http_req *, struct ts_http_resp *, struct ts_err *);
int ts_network_h_agent_show(struct ts_http_req *, struct ts_http_resp *, struct ts_err *);
int ts_network_h_agent_update(struct ts_http_req *, struct ts_http_resp *, struct ts_err *);
int ts_network_h_agent_delete(struct ts_http_req *, struct ts_http_resp *, struct ts_err *);
int ts_network_h_dhcp_networks_list(struct ts_http_req *, struct ts_http_resp *, struct ts_err *);
int ts_network_h_dhcp_networks_add(struct ts_http_req *, struct ts_http_resp *, struct ts_err *);
int ts_network_h_dhcp_networks_remove(struct ts_http_req *, struct ts_http_resp *, struct ts_err *);
int ts_network_h_l3_routers_list(struct ts_http_req *, struct ts_http_resp *, struct ts_err *);
int ts_network_h_l3_routers_add(struct ts_http_req *, struct ts_http_resp *, struct ts_err *);
int ts_network_h_l3_routers_remove(struct ts_http_req *, struct ts_http_resp *, struct ts_err *);
int ts_network_h_network_dhcp_agents(struct ts_http_req *, struct ts_http_resp *, struct ts_err *);
int ts_network_h_router_l3_agents(struct ts_http_req *, struct ts_http_resp *, struct ts_err *);

/* Called when a port goes away: disassociates floating IPs pointing at it. */
int ts_network_fip_port_gone(struct ts_db_conn *tx, const char *port_id, struct ts_err *err);

#endif
