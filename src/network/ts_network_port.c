/*
 * ts_network_port.c: ports: fixed IPs through the IPAM, unique MACs (the `objects.mac_address`
 * UNIQUE column, retried on collision), device owner/id, port binding (host, vif type and
 * details, vnic type, profile), allowed address pairs, port security, extra DHCP options and
 * security groups. Ports start DOWN; the data-plane agent (bus fanout "network_agent") sets
 * them ACTIVE with a PUT carrying binding:host_id and status.
 */
#include "network/ts_network_int.h"

#include <stdlib.h>
#include <string.h>

static const char *const port_keys[] = {
    "name", "network_id", "admin_state_up", "mac_address", "fixed_ips", "device_id", "device_owner",
    "binding:host_id", "binding:vnic_type", "binding:profile", "allowed_address_pairs", "port_security_enabled",
    "extra_dhcp_opts", "security_groups", "description", "project_id", "tenant_id", "status", "qos_policy_id",
    "dns_name", "propagate_uplink_status", NULL};

static const char *const vnic_types[] = {"normal", "direct", "macvtap", "baremetal", "direct-physical",
                                         "virtio-forwarder", "smart-nic", "remote-managed", "vdpa", NULL};

static int check_pairs(const json_t *pairs, const char *port_mac, json_t **out, struct ts_err *err)
{
    if (!json_is_array(pairs)) return ts_network_bad(err, "Invalid input for allowed_address_pairs. Reason: not a list.");
    json_t *res = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(pairs, i, e) {
        const char *ip = ts_network_vs(e, "ip_address"), *mac = ts_network_vs(e, "mac_address");
        struct ts_network_cidr c;
        int v;
        ts_network_u128 a;
        if (!json_is_object(e) || !ip ||
            (ts_network_ip_parse(ip, &v, &a) && ts_network_cidr_parse(ip, false, &c))) {
            json_decref(res);
            return ts_network_bad(err, "Invalid input for allowed_address_pairs. Reason: '%s' is not a valid IP address or CIDR.", ip ? ip : "");
        }
        char m[18];
        if (mac && ts_network_mac_normalize(mac, m)) {
            json_decref(res);
            return ts_network_bad(err, "Invalid input for allowed_address_pairs. Reason: '%s' is not a valid MAC address.", mac);
        }
        json_array_append_new(res, json_pack("{s:s,s:s}", "ip_address", ip, "mac_address", mac ? m : port_mac));
    }
    *out = res;
    return 0;
}

static int check_dhcp_opts(const json_t *opts, struct ts_err *err)
{
    if (!json_is_array(opts)) return ts_network_bad(err, "Invalid input for extra_dhcp_opts. Reason: not a list.");
    size_t i;
    json_t *e;
    json_array_foreach(opts, i, e) {
        if (!json_is_object(e) || !ts_network_vs(e, "opt_name"))
            return ts_network_bad(err, "Invalid input for extra_dhcp_opts. Reason: opt_name required.");
        json_t *ipv = json_object_get(e, "ip_version");
        if (ipv && !json_is_null(ipv) && json_integer_value(ipv) != 4 && json_integer_value(ipv) != 6)
            return ts_network_bad(err, "Invalid input for extra_dhcp_opts. Reason: ip_version must be 4 or 6.");
    }
    return 0;
}

static int check_sgs(struct ts_network_svc *svc, struct ts_db_conn *tx, struct ts_http_req *req, const json_t *sgs,
                     const char *project, struct ts_err *err)
{
    if (!json_is_array(sgs)) return ts_network_bad(err, "Invalid input for security_groups. Reason: not a list.");
    size_t i;
    json_t *e;
    json_array_foreach(sgs, i, e) {
        json_t *sg = NULL;
        const char *id = json_string_value(e);
        int rc = ts_network_load_visible(svc, tx, req, &ts_network_k_sg, id, &sg, err);
        if (rc) return rc;
        bool ok = ts_streq(ts_network_vs(sg, "project_id"), project) || req->auth->is_admin;
        json_decref(sg);
        if (!ok) return ts_network_nf(err, &ts_network_k_sg, id);
    }
    return 0;
}

static int64_t opt_ver(const json_t *o)
{
    json_t *v = json_object_get(o, "ip_version");
    return v && json_is_integer(v) ? json_integer_value(v) : 4;
}

/* attributes shared by create and update */
static int port_apply(struct ts_network_svc *svc, struct ts_db_conn *tx, struct ts_http_req *req, json_t *v,
                      const json_t *b, bool create, const char *default_sg, struct ts_err *err)
{
    int rc;
    const char *s;
    static const char *const strs[] = {"name", "device_id", "device_owner", "binding:host_id", "dns_name"};
    for (int i = 0; i < 5; i++) {
        if ((rc = ts_network_json_str(b, strs[i], 255, &s, err))) return rc;
        if (s || create) json_object_set_new(v, strs[i], json_string(s ? s : ""));
    }
    if (json_object_get(b, "binding:host_id") && !req->auth->is_admin)
        return ts_network_forbidden(err, "rule:%s_port:binding:host_id is disallowed by policy", create ? "create" : "update");
    if ((rc = ts_network_json_str(b, "description", 255, &s, err))) return rc;
    if (s) json_object_set_new(v, "description", json_string(s));
    bool val;
    if (create || json_object_get(b, "admin_state_up")) {
        if ((rc = ts_network_json_bool(b, "admin_state_up", true, &val, err))) return rc;
        json_object_set_new(v, "admin_state_up", json_boolean(val));
    }
    if ((rc = ts_network_json_str(b, "binding:vnic_type", 64, &s, err))) return rc;
    if (s) {
        bool ok = false;
        for (int i = 0; vnic_types[i]; i++) ok |= ts_streq(vnic_types[i], s);
        if (!ok) return ts_network_bad(err, "Invalid input for binding:vnic_type. Reason: '%s' is not in %s.", s, "['normal', 'direct', 'macvtap', 'baremetal', 'direct-physical', 'virtio-forwarder', 'smart-nic', 'remote-managed', 'vdpa']");
    }
    if (s || create) json_object_set_new(v, "binding:vnic_type", json_string(s ? s : "normal"));
    json_t *prof = json_object_get(b, "binding:profile");
    if (prof) {
        if (!json_is_object(prof) && !json_is_null(prof))
            return ts_network_bad(err, "Invalid input for binding:profile. Reason: not a dictionary.");
        if (!req->auth->is_admin) return ts_network_forbidden(err, "rule:create_port:binding:profile is disallowed by policy");
        json_object_set_new(v, "binding:profile", json_is_null(prof) ? json_object() : json_deep_copy(prof));
    } else if (create) {
        json_object_set_new(v, "binding:profile", json_object());
    }
    /* binding result: the data plane is a Linux bridge agent */
    const char *host = ts_network_vs(v, "binding:host_id");
    json_object_set_new(v, "binding:vif_type", json_string(host && *host ? "bridge" : "unbound"));
    json_object_set_new(v, "binding:vif_details",
                        host && *host ? json_pack("{s:b,s:b}", "port_filter", 1, "connectivity", 0) : json_object());
    if (json_is_object(json_object_get(v, "binding:vif_details")) && host && *host)
        json_object_set_new(json_object_get(v, "binding:vif_details"), "connectivity", json_string("l2"));
    /* status: admins (the agent) may set it */
    if ((rc = ts_network_json_str(b, "status", 16, &s, err))) return rc;
    if (s) {
        if (!req->auth->is_admin) return ts_network_forbidden(err, "rule:update_port:status is disallowed by policy");
        if (!ts_streq(s, "ACTIVE") && !ts_streq(s, "DOWN") && !ts_streq(s, "BUILD") && !ts_streq(s, "ERROR"))
            return ts_network_bad(err, "Invalid input for status. Reason: '%s' is not a valid port status.", s);
        json_object_set_new(v, "status", json_string(s));
    } else if (create) {
        json_object_set_new(v, "status", json_string("DOWN"));
    }
    if (json_object_get(b, "port_security_enabled")) {
        if ((rc = ts_network_json_bool(b, "port_security_enabled", true, &val, err))) return rc;
        json_object_set_new(v, "port_security_enabled", json_boolean(val));
    }
    bool psec = json_is_true(json_object_get(v, "port_security_enabled"));
    json_t *pairs = json_object_get(b, "allowed_address_pairs");
    if (pairs && !json_is_null(pairs)) {
        json_t *out = NULL;
        if ((rc = check_pairs(pairs, ts_network_vs(v, "mac_address"), &out, err))) return rc;
        if (json_array_size(out) && !psec) {
            json_decref(out);
            return ts_network_conflict(err, "AddressPairAndPortSecurityRequired", "Port Security must be enabled in order to have allowed address pairs on a port.");
        }
        json_object_set_new(v, "allowed_address_pairs", out);
    } else if (create || pairs) {
        json_object_set_new(v, "allowed_address_pairs", json_array());
    }
    if (!psec && json_array_size(json_object_get(v, "allowed_address_pairs")) && json_object_get(b, "port_security_enabled"))
        return ts_network_conflict(err, "AddressPairAndPortSecurityRequired", "Port Security must be enabled in order to have allowed address pairs on a port.");
    json_t *opts = json_object_get(b, "extra_dhcp_opts");
    if (opts && !json_is_null(opts)) {
        if ((rc = check_dhcp_opts(opts, err))) return rc;
        /* update merges by opt_name; a null opt_value removes the option */
        json_t *cur = create ? json_array() : json_deep_copy(json_object_get(v, "extra_dhcp_opts"));
        if (!json_is_array(cur)) {
            json_decref(cur);
            cur = json_array();
        }
        size_t i;
        json_t *e;
        json_array_foreach(opts, i, e) {
            size_t j;
            json_t *c;
            int found = -1;
            json_array_foreach(cur, j, c) if (ts_streq(ts_network_vs(c, "opt_name"), ts_network_vs(e, "opt_name")) &&
                                              opt_ver(c) == opt_ver(e)) found = (int)j;
            json_t *val2 = json_object_get(e, "opt_value");
            if (!val2 || json_is_null(val2)) {
                if (found >= 0) json_array_remove(cur, (size_t)found);
                continue;
            }
            json_t *n = json_pack("{s:s,s:O,s:I}", "opt_name", ts_network_vs(e, "opt_name"), "opt_value", val2,
                                  "ip_version", (json_int_t)opt_ver(e));
            if (found >= 0) json_array_set_new(cur, (size_t)found, n);
            else json_array_append_new(cur, n);
        }
        json_object_set_new(v, "extra_dhcp_opts", cur);
    } else if (create) {
        json_object_set_new(v, "extra_dhcp_opts", json_array());
    }
    json_t *sgs = json_object_get(b, "security_groups");
    if (sgs && !json_is_null(sgs)) {
        if ((rc = check_sgs(svc, tx, req, sgs, ts_network_vs(v, "project_id"), err))) return rc;
        if (json_array_size(sgs) && !psec)
            return ts_network_conflict(err, "PortSecurityAndIPRequiredForSecurityGroups", "Port security must be enabled and port must have an IP address in order to use security groups.");
        json_t *u = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(sgs, i, e) {
            bool dup = false;
            size_t j;
            json_t *f;
            json_array_foreach(u, j, f) dup |= json_equal(e, f);
            if (!dup) json_array_append(u, e);
        }
        json_object_set_new(v, "security_groups", u);
    } else if (sgs) {
        json_object_set_new(v, "security_groups", json_array());
    } else if (create) {
        const char *owner = ts_network_vs(v, "device_owner");
        json_t *arr = json_array();
        if (psec && !ts_startswith(owner, "network:") && default_sg) json_array_append_new(arr, json_string(default_sg));
        json_object_set_new(v, "security_groups", arr);
    } else if (!psec && json_object_get(b, "port_security_enabled") && json_array_size(json_object_get(v, "security_groups"))) {
        return ts_network_conflict(err, "PortSecurityPortHasSecurityGroup", "Port has security group associated. Cannot disable port security or ip address until security group is removed.");
    }
    return 0;
}

static int port_create_one(struct ts_network_svc *svc, struct ts_http_req *req, const json_t *b, json_t **out,
                           struct ts_err *err)
{
    int rc = ts_network_check_keys(b, port_keys, err);
    if (rc) return rc;
    const char *net_id = ts_network_vs(b, "network_id");
    if (!net_id) return ts_network_bad(err, "Failed to parse request. Required attribute 'network_id' not specified");
    const char *mac_in = ts_network_vs(b, "mac_address");
    char mac[18] = "";
    if (mac_in && ts_network_mac_normalize(mac_in, mac))
        return ts_network_bad(err, "Invalid input for mac_address. Reason: '%s' is not a valid MAC address.", mac_in);
    json_t *v = NULL, *net = NULL, *ips = NULL;
    struct ts_db_conn *tx = NULL;
    char defsg[37];
    /* the default group is made in its own transaction, before this one */
    if ((rc = ts_network_default_sg(svc, ts_network_req_project(req, b), defsg, err))) return rc;
    for (int attempt = 0; attempt < 8; attempt++) {
        json_decref(v);
        v = ts_network_new_view(req, &ts_network_k_port, b);
        if (!mac_in) ts_network_mac_generate(mac);
        json_object_set_new(v, "network_id", json_string(net_id));
        json_object_set_new(v, "mac_address", json_string(mac));
        if ((rc = ts_db_begin(svc->db, &tx, err))) goto out;
        json_decref(net);
        net = NULL;
        if ((rc = ts_network_load_visible(svc, tx, req, &ts_network_k_network, net_id, &net, err))) goto out;
        bool net_owner = ts_network_owner(req, net);
        if (!net_owner && !json_is_true(json_object_get(net, "shared"))) {
            /* external networks are visible but only admins (and FIP/gateway code) plug into them */
            rc = ts_network_forbidden(err, "(rule:create_port and rule:create_port:network_id) is disallowed by policy");
            goto out;
        }
        if (mac_in && !net_owner) {
            rc = ts_network_forbidden(err, "(rule:create_port and rule:create_port:mac_address) is disallowed by policy");
            goto out;
        }
        json_object_set_new(v, "port_security_enabled",
                            json_boolean(!json_is_false(json_object_get(net, "port_security_enabled"))));
        if ((rc = ts_network_quota_check(svc, tx, &ts_network_k_port, ts_network_vs(v, "project_id"), 1, err))) goto out;
        if ((rc = port_apply(svc, tx, req, v, b, true, defsg, err))) goto out;
        json_t *fixed = json_object_get(b, "fixed_ips");
        if (fixed && json_is_null(fixed)) fixed = NULL;
        bool router = ts_startswith(ts_network_vs(v, "device_owner"), "network:router_interface");
        json_decref(ips);
        ips = NULL;
        if ((rc = ts_network_ipam_allocate(tx, req, net_id, ts_network_vs(v, "id"), mac, fixed, router, &ips, err))) goto out;
        if (json_array_size(json_object_get(v, "security_groups")) && json_array_size(ips) == 0 && fixed) {
            rc = ts_network_conflict(err, "PortSecurityAndIPRequiredForSecurityGroups", "Port security must be enabled and port must have an IP address in order to use security groups.");
            goto out;
        }
        json_object_set(v, "fixed_ips", ips);
        rc = ts_network_save(tx, &ts_network_k_port, v, true, err);
        if (rc == -TS_ECONFLICT) {
            ts_db_rollback(tx);
            tx = NULL;
            if (mac_in) {
                rc = ts_network_conflict(err, "MacAddressInUse", "Unable to complete operation for network %s. The mac address %s is in use.", net_id, mac);
                goto out;
            }
            continue;   /* random MAC collided: try another */
        }
        if (rc) goto out;
        rc = ts_db_commit(tx, err);
        tx = NULL;
        goto out;
    }
    rc = ts_err_set(err, TS_EIO, "could not generate a unique MAC address");
out:
    ts_db_rollback(tx);
    json_decref(net);
    json_decref(ips);
    if (rc) json_decref(v);
    else *out = v;
    return rc;
}

int ts_network_h_port_create(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    int rc = ts_network_check_writer(req, err);
    if (rc) return rc;
    json_t *root = NULL;
    if (ts_http_json_body(req, &root, err)) return ts_network_bad(err, "Malformed request body");
    json_t *bulk = json_object_get(root, "ports");
    json_t *list = json_array();
    if (json_is_array(bulk)) {
        size_t i;
        json_t *e;
        json_array_foreach(bulk, i, e) {
            json_t *inner = json_object_get(e, "port") ? json_object_get(e, "port") : e;
            json_t *v = NULL;
            rc = json_is_object(inner) ? port_create_one(svc, req, inner, &v, err) : ts_network_bad(err, "Invalid bulk body");
            if (rc) break;
            json_array_append_new(list, v);
        }
        if (rc) {
            json_array_foreach(list, i, e) {
                struct ts_db_conn *tx = NULL;
                if (ts_db_begin(svc->db, &tx, NULL) == 0) {
                    ts_network_ipam_release(tx, ts_network_vs(e, "id"), NULL);
                    ts_network_delete_obj(tx, ts_network_vs(e, "id"), NULL);
                    ts_db_commit(tx, NULL);
                }
            }
            json_decref(list);
            return rc;
        }
    } else {
        json_t *o = json_object_get(root, "port");
        if (!json_is_object(o)) {
            json_decref(list);
            return ts_network_bad(err, "Resource body required: expected an object under 'port'.");
        }
        json_t *v = NULL;
        if ((rc = port_create_one(svc, req, o, &v, err))) {
            json_decref(list);
            return rc;
        }
        json_array_append_new(list, v);
    }
    size_t i;
    json_t *e;
    json_t *outarr = json_array();
    json_array_foreach(list, i, e) {
        ts_network_notify(svc, &ts_network_k_port, "create.end", e);
        const char *dev = ts_network_vs(e, "device_id");
        if (dev && *dev) ts_network_agent_event(svc, "port.create", ts_network_vs(e, "id"));
        json_t *r = ts_network_render(req, &ts_network_k_port, e);
        json_array_append(outarr, json_object_get(r, "port"));
        json_decref(r);
    }
    if (json_is_array(bulk)) ts_http_resp_json(resp, 201, json_pack("{s:o}", "ports", outarr));
    else {
        ts_http_resp_json(resp, 201, json_pack("{s:O}", "port", json_array_get(outarr, 0)));
        json_decref(outarr);
    }
    json_decref(list);
    return 0;
}

int ts_network_h_port_update(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    int rc = ts_network_check_writer(req, err);
    if (rc) return rc;
    json_t *root, *b, *v = NULL, *ips = NULL;
    if ((rc = ts_network_body(req, &ts_network_k_port, port_keys, &root, &b, err))) return rc;
    if (json_object_get(b, "network_id")) return ts_network_bad(err, "Cannot update read-only attribute network_id");
    struct ts_db_conn *tx = NULL;
    if ((rc = ts_db_begin(svc->db, &tx, err))) return rc;
    if ((rc = ts_network_load_visible(svc, tx, req, &ts_network_k_port, ts_http_param(req, "id"), &v, err))) goto out;
    const char *mac_in = ts_network_vs(b, "mac_address");
    if (mac_in) {
        char mac[18];
        if (ts_network_mac_normalize(mac_in, mac)) {
            rc = ts_network_bad(err, "Invalid input for mac_address. Reason: '%s' is not a valid MAC address.", mac_in);
            goto out;
        }
        if (!req->auth->is_admin) {
            rc = ts_network_forbidden(err, "rule:update_port:mac_address is disallowed by policy");
            goto out;
        }
        json_object_set_new(v, "mac_address", json_string(mac));
    }
    if ((rc = port_apply(svc, tx, req, v, b, false, NULL, err))) goto out;
    json_t *fixed = json_object_get(b, "fixed_ips");
    if (fixed) {
        const char *id = ts_network_vs(v, "id");
        if ((rc = ts_network_ipam_release(tx, id, err))) goto out;
        bool router = ts_startswith(ts_network_vs(v, "device_owner"), "network:router_interface");
        if ((rc = ts_network_ipam_allocate(tx, req, ts_network_vs(v, "network_id"), id, ts_network_vs(v, "mac_address"),
                                           json_is_null(fixed) ? json_array() : fixed, router, &ips, err)))
            goto out;
        json_object_set(v, "fixed_ips", ips);
    }
    rc = ts_network_save(tx, &ts_network_k_port, v, false, err);
    if (rc == -TS_ECONFLICT) {
        rc = ts_network_conflict(err, "MacAddressInUse", "Unable to complete operation for network %s. The mac address %s is in use.", ts_network_vs(v, "network_id"), ts_network_vs(v, "mac_address"));
        goto out;
    }
    if (rc) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    ts_network_notify(svc, &ts_network_k_port, "update.end", v);
    const char *dev = ts_network_vs(v, "device_id");
    if (dev && *dev) ts_network_agent_event(svc, "port.update", ts_network_vs(v, "id"));
    ts_http_resp_json(resp, 200, ts_network_render(req, &ts_network_k_port, v));
out:
    ts_db_rollback(tx);
    json_decref(v);
    json_decref(ips);
    return rc;
}

int ts_network_h_port_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    int rc = ts_network_check_writer(req, err);
    if (rc) return rc;
    json_t *v = NULL;
    struct ts_db_conn *tx = NULL;
    const char *id = ts_http_param(req, "id");
    if ((rc = ts_db_begin(svc->db, &tx, err))) return rc;
    if ((rc = ts_network_load_visible(svc, tx, req, &ts_network_k_port, id, &v, err))) goto out;
    const char *owner = ts_network_vs(v, "device_owner");
    if (ts_streq(owner, "network:router_interface") || ts_streq(owner, "network:router_gateway") ||
        ts_streq(owner, "network:floatingip") || ts_streq(owner, "network:router_interface_distributed")) {
        rc = ts_network_conflict(err, "ServicePortInUse", "Port %s cannot be deleted directly via the port API: has device owner %s.", id, owner);
        goto out;
    }
    if ((rc = ts_network_fip_port_gone(tx, id, err))) goto out;
    if ((rc = ts_network_ipam_release(tx, id, err))) goto out;
    if ((rc = ts_network_delete_obj(tx, id, err))) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    ts_network_notify(svc, &ts_network_k_port, "delete.end", v);
    ts_network_agent_event(svc, "port.delete", id);
    ts_http_resp_no_body(resp, 204, 0);
out:
    ts_db_rollback(tx);
    json_decref(v);
    return rc;
}
