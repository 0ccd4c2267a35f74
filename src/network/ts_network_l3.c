/*
 * ts_network_l3.c: routers (external gateway with SNAT, interfaces by subnet or port, static
 * routes) and floating IPs (allocated from an external network, associated with a port
 * reachable through a router). Gateway, interface and floating IP addresses are ports with
 * device owners network:router_gateway / router_interface / floatingip, so the IPAM and
 * the agent see them like any other port.
 */
#include "network/ts_network_int.h"

#include <stdlib.h>
#include <string.h>

/* Creates a service port (owner, device) on net_id with fixed (or NULL = one IPv4 address). */
static int service_port(struct ts_db_conn *tx, struct ts_http_req *req, const char *net_id, const char *project,
                        const char *owner, const char *device_id, const json_t *fixed, json_t **out, struct ts_err *err)
{
    json_t *body = json_pack("{s:s}", "project_id", project);
    json_t *p = ts_network_new_view(req, &ts_network_k_port, body);
    json_decref(body);
    json_object_set_new(p, "project_id", json_string(project));
    json_object_set_new(p, "tenant_id", json_string(project));
    int rc = 0;
    json_t *ips = NULL, *subs = NULL;
    char mac[18];
    ts_network_mac_generate(mac);
    bool router = ts_streq(owner, "network:router_interface");
    if (fixed) {
        rc = ts_network_ipam_allocate(tx, req, net_id, ts_network_vs(p, "id"), mac, fixed, router, &ips, err);
    } else {
        /* one IPv4 address from the first v4 subnet with room */
        if ((rc = ts_network_load_where(tx, &ts_network_k_subnet, "network_id", net_id, &subs, err))) goto out;
        rc = ts_network_conflict(err, "IpAddressGenerationFailure", "No more IP addresses available on network %s.", net_id);
        size_t i;
        json_t *s;
        json_array_foreach(subs, i, s) {
            if (json_integer_value(json_object_get(s, "ip_version")) != 4) continue;
            json_t *want = json_pack("[{s:s}]", "subnet_id", ts_network_vs(s, "id"));
            struct ts_err e2 = {0};
            rc = ts_network_ipam_allocate(tx, req, net_id, ts_network_vs(p, "id"), mac, want, router, &ips, &e2);
            json_decref(want);
            if (rc == 0) break;
            if (!ts_streq(e2.type, "IpAddressGenerationFailure")) {
                if (err) *err = e2;
                goto out;
            }
            ts_network_conflict(err, "IpAddressGenerationFailure", "No more IP addresses available on network %s.", net_id);
        }
    }
    if (rc) goto out;
    json_object_set_new(p, "name", json_string(""));
    json_object_set_new(p, "network_id", json_string(net_id));
    json_object_set_new(p, "admin_state_up", json_true());
    json_object_set_new(p, "status", json_string(ts_streq(owner, "network:floatingip") ? "N/A" : "DOWN"));
    json_object_set_new(p, "device_owner", json_string(owner));
    json_object_set_new(p, "device_id", json_string(device_id));
    json_object_set_new(p, "fixed_ips", ips);
    ips = NULL;
    json_object_set_new(p, "allowed_address_pairs", json_array());
    json_object_set_new(p, "extra_dhcp_opts", json_array());
    json_object_set_new(p, "security_groups", json_array());
    json_object_set_new(p, "port_security_enabled", json_false());
    json_object_set_new(p, "binding:host_id", json_string(""));
    json_object_set_new(p, "binding:vnic_type", json_string("normal"));
    json_object_set_new(p, "binding:vif_type", json_string("unbound"));
    json_object_set_new(p, "binding:vif_details", json_object());
    json_object_set_new(p, "binding:profile", json_object());
    for (int attempt = 0; attempt < 8; attempt++) {
        json_object_set_new(p, "mac_address", json_string(mac));
        rc = ts_network_save(tx, &ts_network_k_port, p, true, err);
        if (rc != -TS_ECONFLICT) break;
        ts_network_mac_generate(mac);
    }
out:
    json_decref(ips);
    json_decref(subs);
    if (rc) json_decref(p);
    else *out = p;
    return rc;
}

static int drop_port(struct ts_db_conn *tx, const char *port_id, struct ts_err *err)
{
    int rc = ts_network_ipam_release(tx, port_id, err);
    if (!rc) rc = ts_network_delete_obj(tx, port_id, err);
    return rc;
}

static int router_ports(struct ts_db_conn *tx, const char *router_id, const char *owner, json_t **out,
                        struct ts_err *err)
{
    json_t *all = NULL;
    int rc = ts_network_load_where(tx, &ts_network_k_port, "device_id", router_id, &all, err);
    if (rc) return rc;
    json_t *res = json_array();
    size_t i;
    json_t *p;
    json_array_foreach(all, i, p) if (ts_streq(ts_network_vs(p, "device_owner"), owner)) json_array_append(res, p);
    json_decref(all);
    *out = res;
    return 0;
}

static int fips_of_router(struct ts_db_conn *tx, const char *router_id, int64_t *n, struct ts_err *err)
{
    struct ts_db_res *res = NULL;
    char *pat = ts_asprintf("%%\"router_id\":\"%s\"%%", router_id);
    int rc = ts_db_tx_exec(tx, "SELECT COUNT(*) FROM objects WHERE kind = 'floatingip' AND body LIKE ?",
                           TS_DB_ARGS(TS_DB_S(pat)), &res, err);
    free(pat);
    if (rc) return rc;
    *n = ts_db_res_int(res, 0, 0, 0);
    ts_db_res_free(res);
    return 0;
}

static int set_gateway(struct ts_db_conn *tx, struct ts_http_req *req, json_t *router, const json_t *info,
                       struct ts_err *err)
{
    const char *rid = ts_network_vs(router, "id");
    json_t *cur = json_object_get(router, "external_gateway_info");
    json_t *gwports = NULL, *net = NULL, *port = NULL;
    int rc = router_ports(tx, rid, "network:router_gateway", &gwports, err);
    if (rc) return rc;
    const char *net_id = json_is_object(info) ? ts_network_vs(info, "network_id") : NULL;
    if (net_id && !*net_id) net_id = NULL;   /* {} or {"network_id": ""}: no gateway */
    bool snat = true;
    if (json_is_object(info) && (rc = ts_network_json_bool(info, "enable_snat", true, &snat, err))) goto out;
    json_t *want_ips = json_is_object(info) ? json_object_get(info, "external_fixed_ips") : NULL;
    bool same_net = json_is_object(cur) && ts_streq(ts_network_vs(cur, "network_id"), net_id);
    if (same_net && !want_ips) {
        json_object_set_new(cur, "enable_snat", json_boolean(snat));
        goto out;
    }
    /* drop the old gateway */
    if (json_array_size(gwports)) {
        int64_t nf = 0;
        if ((rc = fips_of_router(tx, rid, &nf, err))) goto out;
        if (nf && !same_net) {
            rc = ts_network_conflict(err, "RouterExternalGatewayInUseByFloatingIp", "Gateway cannot be updated for router %s, since a gateway to external network %s is required by one or more floating IPs.", rid, ts_network_vs(cur, "network_id"));
            goto out;
        }
        size_t i;
        json_t *p;
        json_array_foreach(gwports, i, p) if ((rc = drop_port(tx, ts_network_vs(p, "id"), err))) goto out;
    }
    if (!net_id) {
        json_object_set_new(router, "external_gateway_info", json_null());
        goto out;
    }
    if ((rc = ts_network_load(tx, &ts_network_k_network, net_id, &net, err))) goto out;
    if (!ts_network_visible(req, &ts_network_k_network, net)) {
        rc = ts_network_nf(err, &ts_network_k_network, net_id);
        goto out;
    }
    if (!json_is_true(json_object_get(net, "router:external"))) {
        rc = ts_network_bad(err, "Bad router request: Network %s is not an external network.", net_id);
        goto out;
    }
    if (want_ips && !json_is_null(want_ips) && !json_is_array(want_ips)) {
        rc = ts_network_bad(err, "Invalid input for external_fixed_ips. Reason: not a list.");
        goto out;
    }
    if ((rc = service_port(tx, req, net_id, "", "network:router_gateway", rid,
                           json_array_size(want_ips) ? want_ips : NULL, &port, err)))
        goto out;
    json_t *ext = json_array();
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(port, "fixed_ips"), i, f) json_array_append(ext, f);
    json_object_set_new(router, "external_gateway_info",
                        json_pack("{s:s,s:b,s:o}", "network_id", net_id, "enable_snat", snat, "external_fixed_ips", ext));
out:
    json_decref(gwports);
    json_decref(net);
    json_decref(port);
    return rc;
}

/* every route's nexthop must sit in a subnet the router is attached to */
static int check_routes(struct ts_db_conn *tx, const json_t *router, const json_t *routes, json_t **out,
                        struct ts_err *err)
{
    if (!json_is_array(routes)) return ts_network_bad(err, "Invalid input for routes. Reason: not a list.");
    json_t *ifs = NULL;
    int rc = router_ports(tx, ts_network_vs(router, "id"), "network:router_interface", &ifs, err);
    if (rc) return rc;
    json_t *res = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(routes, i, r) {
        const char *dest = ts_network_vs(r, "destination"), *nh = ts_network_vs(r, "nexthop");
        struct ts_network_cidr d;
        int v;
        ts_network_u128 a;
        if (!dest || ts_network_cidr_parse(dest, false, &d) || !nh || ts_network_ip_parse(nh, &v, &a) || v != d.version) {
            rc = ts_network_bad(err, "Invalid input for routes. Reason: '%s' is not a valid route.", dest ? dest : "");
            goto out;
        }
        bool connected = false;
        size_t j, k;
        json_t *p, *f;
        json_array_foreach(ifs, j, p) json_array_foreach(json_object_get(p, "fixed_ips"), k, f) {
            json_t *sub = NULL;
            if (ts_network_load(tx, &ts_network_k_subnet, ts_network_vs(f, "subnet_id"), &sub, NULL) == 0) {
                struct ts_network_cidr sc;
                if (ts_network_cidr_parse(ts_network_vs(sub, "cidr"), false, &sc) == 0 &&
                    ts_network_cidr_contains(&sc, v, a) && !ts_streq(ts_network_vs(f, "ip_address"), nh))
                    connected = true;
                json_decref(sub);
            }
        }
        if (!connected) {
            rc = ts_network_bad(err, "Invalid format for routes: %s, the nexthop is not connected with router", ts_network_vs(r, "destination"));
            goto out;
        }
        char cs[50];
        ts_network_cidr_format(&d, cs);
        json_array_append_new(res, json_pack("{s:s,s:s}", "destination", cs, "nexthop", nh));
    }
out:
    json_decref(ifs);
    if (rc) json_decref(res);
    else *out = res;
    return rc;
}

static const char *const router_keys[] = {"name", "admin_state_up", "external_gateway_info", "description",
                                          "project_id", "tenant_id", "distributed", "ha", "routes",
                                          "availability_zone_hints", "flavor_id", NULL};

static int router_apply(struct ts_http_req *req, json_t *v, const json_t *b, bool create, struct ts_err *err)
{
    int rc;
    const char *s;
    if ((rc = ts_network_json_str(b, "name", 255, &s, err))) return rc;
    if (s || create) json_object_set_new(v, "name", json_string(s ? s : ""));
    if ((rc = ts_network_json_str(b, "description", 255, &s, err))) return rc;
    if (s) json_object_set_new(v, "description", json_string(s));
    static const char *const bools[] = {"admin_state_up", "distributed", "ha"};
    static const bool defs[] = {true, false, false};
    for (int i = 0; i < 3; i++) {
        if (!create && !json_object_get(b, bools[i])) continue;
        bool x;
        if ((rc = ts_network_json_bool(b, bools[i], defs[i], &x, err))) return rc;
        if (i && json_object_get(b, bools[i]) && !req->auth->is_admin)
            return ts_network_forbidden(err, "rule:create_router:%s is disallowed by policy", bools[i]);
        json_object_set_new(v, bools[i], json_boolean(x));
    }
    return 0;
}

int ts_network_h_router_create(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    int rc = ts_network_check_writer(req, err);
    if (rc) return rc;
    json_t *root, *b, *v = NULL;
    if ((rc = ts_network_body(req, &ts_network_k_router, router_keys, &root, &b, err))) return rc;
    v = ts_network_new_view(req, &ts_network_k_router, b);
    json_object_set_new(v, "status", json_string("ACTIVE"));
    json_object_set_new(v, "external_gateway_info", json_null());
    json_object_set_new(v, "routes", json_array());
    json_object_set_new(v, "availability_zone_hints", json_array());
    json_object_set_new(v, "availability_zones", json_array());
    json_object_set_new(v, "flavor_id", json_null());
    struct ts_db_conn *tx = NULL;
    if ((rc = router_apply(req, v, b, true, err))) goto out;
    if ((rc = ts_db_begin(svc->db, &tx, err))) goto out;
    if ((rc = ts_network_quota_check(svc, tx, &ts_network_k_router, ts_network_vs(v, "project_id"), 1, err))) goto out;
    json_t *gi = json_object_get(b, "external_gateway_info");
    if (json_is_object(gi) && (rc = set_gateway(tx, req, v, gi, err))) goto out;
    if ((rc = ts_network_save(tx, &ts_network_k_router, v, true, err))) goto out;
    if ((rc = ts_network_agents_schedule_router(svc, tx, ts_network_vs(v, "id"), err))) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    ts_network_notify(svc, &ts_network_k_router, "create.end", v);
    ts_http_resp_json(resp, 201, ts_network_render(req, &ts_network_k_router, v));
out:
    ts_db_rollback(tx);
    json_decref(v);
    return rc;
}

int ts_network_h_router_update(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    int rc = ts_network_check_writer(req, err);
    if (rc) return rc;
    json_t *root, *b, *v = NULL;
    if ((rc = ts_network_body(req, &ts_network_k_router, router_keys, &root, &b, err))) return rc;
    struct ts_db_conn *tx = NULL;
    if ((rc = ts_db_begin(svc->db, &tx, err))) return rc;
    if ((rc = ts_network_load_visible(svc, tx, req, &ts_network_k_router, ts_http_param(req, "id"), &v, err))) goto out;
    if ((rc = router_apply(req, v, b, false, err))) goto out;
    json_t *gi = json_object_get(b, "external_gateway_info");
    if (gi && (rc = set_gateway(tx, req, v, json_object_size(gi) ? gi : NULL, err))) goto out;
    json_t *routes = json_object_get(b, "routes");
    if (routes) {
        json_t *out = NULL;
        if ((rc = check_routes(tx, v, json_is_null(routes) ? json_array() : routes, &out, err))) {
            if (json_is_null(routes)) {}
            goto out;
        }
        json_object_set_new(v, "routes", out);
    }
    if ((rc = ts_network_save(tx, &ts_network_k_router, v, false, err))) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    ts_network_notify(svc, &ts_network_k_router, "update.end", v);
    ts_http_resp_json(resp, 200, ts_network_render(req, &ts_network_k_router, v));
out:
    ts_db_rollback(tx);
    json_decref(v);
    return rc;
}

int ts_network_h_router_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    int rc = ts_network_check_writer(req, err);
    if (rc) return rc;
    json_t *v = NULL, *ifs = NULL;
    struct ts_db_conn *tx = NULL;
    const char *id = ts_http_param(req, "id");
    if ((rc = ts_db_begin(svc->db, &tx, err))) return rc;
    if ((rc = ts_network_load_visible(svc, tx, req, &ts_network_k_router, id, &v, err))) goto out;
    if ((rc = router_ports(tx, id, "network:router_interface", &ifs, err))) goto out;
    if (json_array_size(ifs)) {
        rc = ts_network_conflict(err, "RouterInUse", "Router %s still has ports", id);
        goto out;
    }
    int64_t nf = 0;
    if ((rc = fips_of_router(tx, id, &nf, err))) goto out;
    if (nf) {
        rc = ts_network_conflict(err, "RouterInUse", "Router %s still has floating IPs associated", id);
        goto out;
    }
    if ((rc = set_gateway(tx, req, v, NULL, err))) goto out;
    if ((rc = ts_network_agents_unbind(tx, id, err))) goto out;
    if ((rc = ts_network_delete_obj(tx, id, err))) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    ts_network_notify(svc, &ts_network_k_router, "delete.end", v);
    ts_http_resp_no_body(resp, 204, 0);
out:
    ts_db_rollback(tx);
    json_decref(v);
    json_decref(ifs);
    return rc;
}

static json_t *if_info(const json_t *router, const json_t *port)
{
    json_t *ids = json_array();
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(port, "fixed_ips"), i, f) json_array_append(ids, json_object_get(f, "subnet_id"));
    json_t *o = json_pack("{s:O,s:O,s:O,s:O,s:O,s:o}", "id", json_object_get(router, "id"), "tenant_id",
                          json_object_get(router, "project_id"), "project_id", json_object_get(router, "project_id"),
                          "port_id", json_object_get(port, "id"), "network_id", json_object_get(port, "network_id"),
                          "subnet_ids", ids);
    json_object_set(o, "subnet_id", json_array_size(ids) ? json_array_get(ids, 0) : json_null());
    return o;
}

static bool port_on_subnet(const json_t *port, const char *subnet_id)
{
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(port, "fixed_ips"), i, f) if (ts_streq(ts_network_vs(f, "subnet_id"), subnet_id)) return true;
    return false;
}

int ts_network_h_router_add_if(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    int rc = ts_network_check_writer(req, err);
    if (rc) return rc;
    json_t *b = NULL, *router = NULL, *ifs = NULL, *sub = NULL, *port = NULL;
    if (ts_http_json_body(req, &b, err) || !json_is_object(b)) return ts_network_bad(err, "Malformed request body");
    const char *subnet_id = ts_network_vs(b, "subnet_id"), *port_id = ts_network_vs(b, "port_id");
    if ((subnet_id && port_id) || (!subnet_id && !port_id))
        return ts_network_bad(err, "Bad router request: Either subnet_id or port_id must be specified.");
    struct ts_db_conn *tx = NULL;
    if ((rc = ts_db_begin(svc->db, &tx, err))) return rc;
    if ((rc = ts_network_load_visible(svc, tx, req, &ts_network_k_router, ts_http_param(req, "id"), &router, err))) goto out;
    const char *rid = ts_network_vs(router, "id");
    if ((rc = router_ports(tx, rid, "network:router_interface", &ifs, err))) goto out;
    if (port_id) {
        if ((rc = ts_network_load_visible(svc, tx, req, &ts_network_k_port, port_id, &port, err))) goto out;
        const char *dev = ts_network_vs(port, "device_id");
        if (dev && *dev) {
            rc = ts_network_conflict(err, "PortInUse", "Unable to complete operation on port %s for network %s. Port already has an attached device %s.", port_id, ts_network_vs(port, "network_id"), dev);
            goto out;
        }
        if (json_array_size(json_object_get(port, "fixed_ips")) == 0) {
            rc = ts_network_bad(err, "Bad router request: Router port must have at least one fixed IP.");
            goto out;
        }
        subnet_id = ts_network_vs(json_array_get(json_object_get(port, "fixed_ips"), 0), "subnet_id");
    }
    if ((rc = ts_network_load_visible(svc, tx, req, &ts_network_k_subnet, subnet_id, &sub, err))) goto out;
    if (!port_id && !ts_network_vs(sub, "gateway_ip")) {
        rc = ts_network_bad(err, "Bad router request: Subnet %s does not have a gateway IP.", subnet_id);
        goto out;
    }
    struct ts_network_cidr nc;
    ts_network_cidr_parse(ts_network_vs(sub, "cidr"), false, &nc);
    size_t i, j;
    json_t *p, *f;
    json_array_foreach(ifs, i, p) json_array_foreach(json_object_get(p, "fixed_ips"), j, f) {
        if (ts_streq(ts_network_vs(f, "subnet_id"), subnet_id)) {
            rc = ts_network_bad(err, "Bad router request: Router already has a port on subnet %s.", subnet_id);
            goto out;
        }
        json_t *o = NULL;
        if (ts_network_load(tx, &ts_network_k_subnet, ts_network_vs(f, "subnet_id"), &o, NULL) == 0) {
            struct ts_network_cidr oc;
            bool clash = ts_network_cidr_parse(ts_network_vs(o, "cidr"), false, &oc) == 0 && ts_network_cidr_overlap(&oc, &nc);
            if (clash)
                rc = ts_network_bad(err, "Bad router request: Cidr %s of subnet %s overlaps with cidr %s of subnet %s.",
                                    ts_network_vs(sub, "cidr"), subnet_id, ts_network_vs(o, "cidr"), ts_network_vs(o, "id"));
            json_decref(o);
            if (clash) goto out;
        }
    }
    if (port) {
        json_object_set_new(port, "device_owner", json_string("network:router_interface"));
        json_object_set_new(port, "device_id", json_string(rid));
        if ((rc = ts_network_save(tx, &ts_network_k_port, port, false, err))) goto out;
    } else {
        json_t *fixed = json_pack("[{s:s,s:s}]", "subnet_id", subnet_id, "ip_address", ts_network_vs(sub, "gateway_ip"));
        rc = service_port(tx, req, ts_network_vs(sub, "network_id"), ts_network_vs(router, "project_id"),
                          "network:router_interface", rid, fixed, &port, err);
        json_decref(fixed);
        if (rc) goto out;
    }
    if ((rc = ts_network_save(tx, &ts_network_k_router, router, false, err))) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    json_t *info = if_info(router, port);
    if (svc->env && svc->env->bus) ts_bus_notify(svc->env->bus, svc->publisher, "router.interface.create", "INFO",
                                                 json_pack("{s:O}", "router_interface", info));
    ts_network_agent_event(svc, "router.update", rid);
    ts_http_resp_json(resp, 200, info);
out:
    ts_db_rollback(tx);
    json_decref(router);
    json_decref(ifs);
    json_decref(sub);
    json_decref(port);
    return rc;
}

int ts_network_h_router_remove_if(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    int rc = ts_network_check_writer(req, err);
    if (rc) return rc;
    json_t *b = NULL, *router = NULL, *ifs = NULL, *fips = NULL;
    if (ts_http_json_body(req, &b, err) || !json_is_object(b)) return ts_network_bad(err, "Malformed request body");
    const char *subnet_id = ts_network_vs(b, "subnet_id"), *port_id = ts_network_vs(b, "port_id");
    if (!subnet_id && !port_id) return ts_network_bad(err, "Bad router request: Either subnet_id or port_id must be specified.");
    struct ts_db_conn *tx = NULL;
    if ((rc = ts_db_begin(svc->db, &tx, err))) return rc;
    if ((rc = ts_network_load_visible(svc, tx, req, &ts_network_k_router, ts_http_param(req, "id"), &router, err))) goto out;
    const char *rid = ts_network_vs(router, "id");
    if ((rc = router_ports(tx, rid, "network:router_interface", &ifs, err))) goto out;
    json_t *port = NULL;
    size_t i;
    json_t *p;
    json_array_foreach(ifs, i, p) {
        if (port_id ? ts_streq(ts_network_vs(p, "id"), port_id) : port_on_subnet(p, subnet_id)) port = p;
    }
    if (!port || (port_id && subnet_id && !port_on_subnet(port, subnet_id))) {
        if (port_id)
            rc = ts_err_set_full(err, TS_ENOTFOUND, 404, "RouterInterfaceNotFound", "Router %s does not have an interface with id %s", rid, port_id);
        else
            rc = ts_err_set_full(err, TS_ENOTFOUND, 404, "RouterInterfaceNotFoundForSubnet", "Router %s has no interface on subnet %s", rid, subnet_id);
        goto out;
    }
    /* floating IPs reaching ports behind this interface */
    if ((rc = ts_network_load_where(tx, &ts_network_k_floatingip, "project_id", ts_network_vs(router, "project_id"), &fips, err))) goto out;
    json_t *f;
    json_array_foreach(fips, i, f) {
        if (!ts_streq(ts_network_vs(f, "router_id"), rid) || !ts_network_vs(f, "port_id")) continue;
        json_t *fp = NULL;
        if (ts_network_load(tx, &ts_network_k_port, ts_network_vs(f, "port_id"), &fp, NULL) == 0) {
            size_t k;
            json_t *fi;
            bool hit = false;
            json_array_foreach(json_object_get(port, "fixed_ips"), k, fi) hit |= port_on_subnet(fp, ts_network_vs(fi, "subnet_id"));
            json_decref(fp);
            if (hit) {
                rc = ts_network_conflict(err, "RouterInterfaceInUseByFloatingIP", "Router interface for subnet %s on router %s cannot be deleted, as it is required by one or more floating IPs.", subnet_id ? subnet_id : "", rid);
                goto out;
            }
        }
    }
    json_t *info = if_info(router, port);
    if ((rc = drop_port(tx, ts_network_vs(port, "id"), err))) {
        json_decref(info);
        goto out;
    }
    /* routes through the removed subnet go with it */
    json_t *routes = json_object_get(router, "routes");
    struct ts_network_cidr sc;
    json_t *sub = NULL;
    if (json_array_size(routes) && ts_network_load(tx, &ts_network_k_subnet, ts_network_vs(json_array_get(json_object_get(port, "fixed_ips"), 0), "subnet_id"), &sub, NULL) == 0 &&
        ts_network_cidr_parse(ts_network_vs(sub, "cidr"), false, &sc) == 0) {
        for (size_t k = json_array_size(routes); k-- > 0;) {
            int v;
            ts_network_u128 a;
            if (ts_network_ip_parse(ts_network_vs(json_array_get(routes, k), "nexthop"), &v, &a) == 0 &&
                ts_network_cidr_contains(&sc, v, a)) {
                rc = ts_network_conflict(err, "RouterInterfaceInUseByRoute", "Router interface for subnet %s on router %s cannot be deleted, as it is required by one or more routes.", ts_network_vs(sub, "id"), rid);
                json_decref(sub);
                json_decref(info);
                goto out;
            }
        }
    }
    json_decref(sub);
    if ((rc = ts_network_save(tx, &ts_network_k_router, router, false, err))) {
        json_decref(info);
        goto out;
    }
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) {
        json_decref(info);
        goto out;
    }
    if (svc->env && svc->env->bus) ts_bus_notify(svc->env->bus, svc->publisher, "router.interface.delete", "INFO",
                                                 json_pack("{s:O}", "router_interface", info));
    ts_network_agent_event(svc, "router.update", rid);
    ts_http_resp_json(resp, 200, info);
out:
    ts_db_rollback(tx);
    json_decref(router);
    json_decref(ifs);
    json_decref(fips);
    return rc;
}

/* ---- floating IPs -------------------------------------------------------------------------------- */

static const char *const fip_keys[] = {"floating_network_id", "port_id", "fixed_ip_address", "floating_ip_address",
                                       "subnet_id", "description", "project_id", "tenant_id", "dns_name",
                                       "dns_domain", "qos_policy_id", NULL};

/* finds the router that connects the port's subnet to ext_net */
static int associate(struct ts_db_conn *tx, struct ts_http_req *req, json_t *fip, const char *port_id,
                     const char *want_ip, struct ts_err *err)
{
    json_t *port = NULL, *others = NULL;
    struct ts_db_res *res = NULL;
    int rc;
    if (!port_id) {
        json_object_set_new(fip, "port_id", json_null());
        json_object_set_new(fip, "fixed_ip_address", json_null());
        json_object_set_new(fip, "router_id", json_null());
        json_object_set_new(fip, "status", json_string("DOWN"));
        return 0;
    }
    if ((rc = ts_network_load(tx, &ts_network_k_port, port_id, &port, err))) return rc;
    if (!ts_network_visible(req, &ts_network_k_port, port) ||
        (!req->auth->is_admin && !ts_streq(ts_network_vs(port, "project_id"), ts_network_vs(fip, "project_id")))) {
        rc = ts_network_nf(err, &ts_network_k_port, port_id);
        goto out;
    }
    if (ts_startswith(ts_network_vs(port, "device_owner"), "network:")) {
        rc = ts_network_bad(err, "Bad floatingip request: Port %s has owner %s and therefore cannot be assigned a floating IP.", port_id, ts_network_vs(port, "device_owner"));
        goto out;
    }
    const char *fixed = NULL, *fixed_subnet = NULL;
    int n4 = 0;
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(port, "fixed_ips"), i, f) {
        int v;
        ts_network_u128 a;
        if (ts_network_ip_parse(ts_network_vs(f, "ip_address"), &v, &a) || v != 4) continue;
        n4++;
        if (!want_ip || ts_streq(want_ip, ts_network_vs(f, "ip_address"))) {
            if (!fixed) fixed = ts_network_vs(f, "ip_address"), fixed_subnet = ts_network_vs(f, "subnet_id");
        }
    }
    if (want_ip && !fixed) {
        rc = ts_network_bad(err, "Bad floatingip request: Port %s does not have fixed ip %s.", port_id, want_ip);
        goto out;
    }
    if (!fixed) {
        rc = ts_network_bad(err, "Bad floatingip request: Port %s does not have any IPv4 address.", port_id);
        goto out;
    }
    if (!want_ip && n4 > 1) {
        rc = ts_network_bad(err, "Bad floatingip request: Port %s has multiple fixed IPv4 addresses. Must provide a specific IPv4 address when assigning a floating IP.", port_id);
        goto out;
    }
    /* already associated elsewhere? */
    if ((rc = ts_network_load_where(tx, &ts_network_k_floatingip, "ref_id", port_id, &others, err))) goto out;
    json_array_foreach(others, i, f) {
        if (ts_streq(ts_network_vs(f, "id"), ts_network_vs(fip, "id"))) continue;
        if (ts_streq(ts_network_vs(f, "fixed_ip_address"), fixed)) {
            rc = ts_network_conflict(err, "FloatingIPPortAlreadyAssociated", "Cannot associate floating IP %s (%s) with port %s using fixed IP %s, as that fixed IP already has a floating IP on external network %s.", ts_network_vs(fip, "floating_ip_address"), ts_network_vs(fip, "id"), port_id, fixed, ts_network_vs(fip, "floating_network_id"));
            goto out;
        }
    }
    /* routers with a gateway on the floating network and an interface on the port's subnet */
    if ((rc = ts_db_tx_exec(tx, "SELECT body FROM objects WHERE kind = 'router' ORDER BY created_us", NULL, 0, &res, err))) goto out;
    const char *ext = ts_network_vs(fip, "floating_network_id");
    char router_id[64] = "";
    for (int r = 0; r < res->nrows && !router_id[0]; r++) {
        json_t *rv = json_loads(ts_db_res_get(res, r, 0), 0, NULL);
        json_t *gi = json_object_get(rv, "external_gateway_info");
        if (json_is_object(gi) && ts_streq(ts_network_vs(gi, "network_id"), ext)) {
            json_t *ifs = NULL;
            if (router_ports(tx, ts_network_vs(rv, "id"), "network:router_interface", &ifs, NULL) == 0) {
                size_t k;
                json_t *p;
                json_array_foreach(ifs, k, p) if (port_on_subnet(p, fixed_subnet))
                    snprintf(router_id, sizeof(router_id), "%s", ts_network_vs(rv, "id"));
                json_decref(ifs);
            }
        }
        json_decref(rv);
    }
    if (!router_id[0]) {
        rc = ts_err_set_full(err, TS_ENOTFOUND, 404, "ExternalGatewayForFloatingIPNotFound", "External network %s is not reachable from subnet %s.  Therefore, cannot associate Port %s with a Floating IP.", ext, fixed_subnet, port_id);
        goto out;
    }
    json_object_set_new(fip, "port_id", json_string(port_id));
    json_object_set_new(fip, "fixed_ip_address", json_string(fixed));
    json_object_set_new(fip, "router_id", json_string(router_id));
    json_object_set_new(fip, "status", json_string("ACTIVE"));
    rc = 0;
out:
    ts_db_res_free(res);
    json_decref(port);
    json_decref(others);
    return rc;
}

int ts_network_h_floatingip_create(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    int rc = ts_network_check_writer(req, err);
    if (rc) return rc;
    json_t *root, *b, *v = NULL, *net = NULL, *port = NULL;
    if ((rc = ts_network_body(req, &ts_network_k_floatingip, fip_keys, &root, &b, err))) return rc;
    const char *net_id = ts_network_vs(b, "floating_network_id");
    if (!net_id) return ts_network_bad(err, "Failed to parse request. Required attribute 'floating_network_id' not specified");
    const char *want_ip = ts_network_vs(b, "floating_ip_address"), *subnet_id = ts_network_vs(b, "subnet_id");
    if (want_ip) {
        int ver;
        ts_network_u128 a;
        if (ts_network_ip_parse(want_ip, &ver, &a))
            return ts_network_bad(err, "Invalid input for floating_ip_address. Reason: '%s' is not a valid IP address.", want_ip);
    }
    v = ts_network_new_view(req, &ts_network_k_floatingip, b);
    struct ts_db_conn *tx = NULL;
    if ((rc = ts_db_begin(svc->db, &tx, err))) goto out;
    if ((rc = ts_network_load_visible(svc, tx, req, &ts_network_k_network, net_id, &net, err))) goto out;
    if (!json_is_true(json_object_get(net, "router:external"))) {
        rc = ts_network_bad(err, "Bad floatingip request: Network %s is not a valid external network.", net_id);
        goto out;
    }
    if ((rc = ts_network_quota_check(svc, tx, &ts_network_k_floatingip, ts_network_vs(v, "project_id"), 1, err))) goto out;
    json_t *fixed = NULL;
    if (want_ip || subnet_id) {
        fixed = json_array();
        json_t *e = json_object();
        ts_json_set_str(e, "ip_address", want_ip);
        if (subnet_id) json_object_set_new(e, "subnet_id", json_string(subnet_id));
        json_array_append_new(fixed, e);
    }
    rc = service_port(tx, req, net_id, "", "network:floatingip", ts_network_vs(v, "id"), fixed, &port, err);
    json_decref(fixed);
    if (rc) goto out;
    json_t *ip0 = json_array_get(json_object_get(port, "fixed_ips"), 0);
    json_object_set_new(v, "floating_network_id", json_string(net_id));
    json_object_set(v, "floating_ip_address", json_object_get(ip0, "ip_address"));
    json_object_set_new(v, "_port", json_string(ts_network_vs(port, "id")));
    json_object_set_new(v, "port_details", json_null());
    if ((rc = associate(tx, req, v, ts_network_vs(b, "port_id"), ts_network_vs(b, "fixed_ip_address"), err))) goto out;
    if ((rc = ts_network_save(tx, &ts_network_k_floatingip, v, true, err))) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    ts_network_notify(svc, &ts_network_k_floatingip, "create.end", v);
    ts_http_resp_json(resp, 201, ts_network_render(req, &ts_network_k_floatingip, v));
out:
    ts_db_rollback(tx);
    json_decref(v);
    json_decref(net);
    json_decref(port);
    return rc;
}

int ts_network_h_floatingip_update(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    int rc = ts_network_check_writer(req, err);
    if (rc) return rc;
    json_t *root, *b, *v = NULL;
    static const char *const keys[] = {"port_id", "fixed_ip_address", "description", "qos_policy_id", NULL};
    if ((rc = ts_network_body(req, &ts_network_k_floatingip, keys, &root, &b, err))) return rc;
    struct ts_db_conn *tx = NULL;
    if ((rc = ts_db_begin(svc->db, &tx, err))) return rc;
    if ((rc = ts_network_load_visible(svc, tx, req, &ts_network_k_floatingip, ts_http_param(req, "id"), &v, err))) goto out;
    const char *desc;
    if ((rc = ts_network_json_str(b, "description", 255, &desc, err))) goto out;
    if (desc) json_object_set_new(v, "description", json_string(desc));
    if (json_object_get(b, "port_id") &&
        (rc = associate(tx, req, v, ts_network_vs(b, "port_id"), ts_network_vs(b, "fixed_ip_address"), err)))
        goto out;
    if ((rc = ts_network_save(tx, &ts_network_k_floatingip, v, false, err))) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    ts_network_notify(svc, &ts_network_k_floatingip, "update.end", v);
    ts_http_resp_json(resp, 200, ts_network_render(req, &ts_network_k_floatingip, v));
out:
    ts_db_rollback(tx);
    json_decref(v);
    return rc;
}

int ts_network_h_floatingip_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    int rc = ts_network_check_writer(req, err);
    if (rc) return rc;
    json_t *v = NULL;
    struct ts_db_conn *tx = NULL;
    if ((rc = ts_db_begin(svc->db, &tx, err))) return rc;
    if ((rc = ts_network_load_visible(svc, tx, req, &ts_network_k_floatingip, ts_http_param(req, "id"), &v, err))) goto out;
    const char *pid = ts_network_vs(v, "_port");
    if (pid && (rc = drop_port(tx, pid, err))) goto out;
    if ((rc = ts_network_delete_obj(tx, ts_network_vs(v, "id"), err))) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    ts_network_notify(svc, &ts_network_k_floatingip, "delete.end", v);
    ts_http_resp_no_body(resp, 204, 0);
out:
    ts_db_rollback(tx);
    json_decref(v);
    return rc;
}

int ts_network_fip_port_gone(struct ts_db_conn *tx, const char *port_id, struct ts_err *err)
{
    json_t *fips = NULL;
    int rc = ts_network_load_where(tx, &ts_network_k_floatingip, "ref_id", port_id, &fips, err);
    if (rc) return rc;
    size_t i;
    json_t *f;
    json_array_foreach(fips, i, f) {
        json_object_set_new(f, "port_id", json_null());
        json_object_set_new(f, "fixed_ip_address", json_null());
        json_object_set_new(f, "router_id", json_null());
        json_object_set_new(f, "status", json_string("DOWN"));
        if ((rc = ts_network_save(tx, &ts_network_k_floatingip, f, false, err))) break;
    }
    json_decref(fips);
    return rc;
}
