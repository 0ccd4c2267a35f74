/*
 * ts_network_net.c: networks (provider segments, shared/external, MTU), subnets (v4/v6,
 * pools, gateway, host routes, DNS, IPv6 modes, allocation from subnet pools), subnet pools,
 * and the IPAM that gives ports their addresses from the `ipallocs` table, whose primary
 * key (subnet, address) keeps addresses unique under concurrency.
 */
#include "network/ts_network_int.h"

#include <stdlib.h>
#include <string.h>

#include "json/ts_json.h"

/* ---- networks ------------------------------------------------------------------------------ */

static const char *const net_create_keys[] = {
    "name", "admin_state_up", "shared", "router:external", "provider:network_type", "provider:physical_network",
    "provider:segmentation_id", "mtu", "port_security_enabled", "description", "project_id", "tenant_id",
    "availability_zone_hints", "is_default", "dns_domain", "qos_policy_id", NULL};
static const char *const net_update_keys[] = {"name", "admin_state_up", "shared", "router:external", "mtu",
                                              "port_security_enabled", "description", "is_default", "dns_domain",
                                              "qos_policy_id", "provider:network_type",
                                              "provider:physical_network", "provider:segmentation_id", NULL};

static int get_int(const json_t *o, const char *key, bool *present, int64_t *out, struct ts_err *err)
{
    json_t *v = json_object_get(o, key);
    *present = false;
    if (!v || json_is_null(v)) return 0;
    if (json_is_integer(v)) *out = json_integer_value(v);
    else if (!json_is_string(v) || ts_parse_int64(json_string_value(v), out))
        return ts_network_bad(err, "Invalid input for %s. Reason: not an integer.", key);
    *present = true;
    return 0;
}

/* the writable basics shared by create and update */
static int net_apply(struct ts_http_req *req, json_t *v, const json_t *b, bool create, struct ts_err *err)
{
    const char *name;
    int rc = ts_network_json_str(b, "name", 255, &name, err);
    if (rc) return rc;
    if (name || create) json_object_set_new(v, "name", json_string(name ? name : ""));
    const char *desc;
    if ((rc = ts_network_json_str(b, "description", 255, &desc, err))) return rc;
    if (desc) json_object_set_new(v, "description", json_string(desc));
    static const char *const bools[] = {"admin_state_up", "shared", "router:external", "port_security_enabled",
                                        "is_default"};
    static const bool defs[] = {true, false, false, true, false};
    for (size_t i = 0; i < 5; i++) {
        bool val;
        if (!json_object_get(b, bools[i]) && !create) continue;
        if ((rc = ts_network_json_bool(b, bools[i], defs[i], &val, err))) return rc;
        if ((i == 1 || i == 2 || i == 4) && json_object_get(b, bools[i]) && !req->auth->is_admin &&
            val != json_is_true(json_object_get(v, bools[i])))
            return ts_network_forbidden(err, "(rule:%s_network and rule:%s_network:%s) is disallowed by policy",
                                        create ? "create" : "update", create ? "create" : "update", bools[i]);
        json_object_set_new(v, bools[i], json_boolean(val));
    }
    return 0;
}

static int segment_alloc(struct ts_network_svc *svc, struct ts_db_conn *tx, struct ts_http_req *req, json_t *v,
                         const json_t *b, struct ts_err *err)
{
    const char *type, *phys;
    int64_t seg = 0;
    bool has_seg;
    int rc;
    if ((rc = ts_network_json_str(b, "provider:network_type", 64, &type, err))) return rc;
    if ((rc = ts_network_json_str(b, "provider:physical_network", 64, &phys, err))) return rc;
    if ((rc = get_int(b, "provider:segmentation_id", &has_seg, &seg, err))) return rc;
    if ((type || phys || has_seg) && !req->auth->is_admin)
        return ts_network_forbidden(err, "(rule:create_network and rule:create_network:provider:network_type) is "
                                         "disallowed by policy");
    if (!type) type = ts_conf_get(svc->env->conf, "network", "tenant_network_type", "vxlan");
    int64_t mtu = svc->mtu;
    if (ts_streq(type, "flat")) {
        if (!phys) return ts_network_bad(err, "Invalid input for operation: physical_network required for flat provider network.");
        if (has_seg) return ts_network_bad(err, "Invalid input for operation: segmentation_id specified for flat provider network.");
        seg = 0;
    } else if (ts_streq(type, "vlan")) {
        if (!phys) return ts_network_bad(err, "Invalid input for operation: physical_network required for VLAN provider network.");
        if (!has_seg) {
            /* first free VLAN on this physnet */
            struct ts_db_res *res = NULL;
            rc = ts_db_tx_exec(tx, "SELECT COALESCE(MAX(segmentation_id), 0) FROM segments WHERE network_type = 'vlan'"
                                   " AND physical_network = ?", TS_DB_ARGS(TS_DB_S(phys)), &res, err);
            if (rc) return rc;
            seg = ts_db_res_int(res, 0, 0, 0) + 1;
            ts_db_res_free(res);
        }
        if (seg < 1 || seg > 4094)
            return ts_network_bad(err, "Invalid input for operation: segmentation_id out of range (1 through 4094).");
    } else if (ts_streq(type, "vxlan") || ts_streq(type, "geneve")) {
        if (phys) return ts_network_bad(err, "Invalid input for operation: physical_network specified for %s provider network.", type);
        if (!has_seg) {
            struct ts_db_res *res = NULL;
            rc = ts_db_tx_exec(tx, "SELECT COALESCE(MAX(segmentation_id), 0) FROM segments WHERE network_type = ?",
                               TS_DB_ARGS(TS_DB_S(type)), &res, err);
            if (rc) return rc;
            seg = ts_db_res_int(res, 0, 0, 0) + 1;
            ts_db_res_free(res);
        }
        if (seg < 1 || seg > 16777215)
            return ts_network_bad(err, "Invalid input for operation: segmentation_id out of range (1 through 16777215).");
        mtu -= 50;
    } else if (ts_streq(type, "local")) {
        if (phys || has_seg) return ts_network_bad(err, "Invalid input for operation: provider attributes not allowed for local network.");
    } else {
        return ts_network_bad(err, "Invalid input for operation: network_type value '%s' not supported.", type);
    }
    if (!ts_streq(type, "local")) {
        rc = ts_db_tx_exec(tx, "INSERT INTO segments (network_id, network_type, physical_network, segmentation_id)"
                               " VALUES (?, ?, ?, ?)",
                           TS_DB_ARGS(TS_DB_S(ts_network_vs(v, "id")), TS_DB_S(type), TS_DB_S(phys ? phys : ""),
                                      TS_DB_I(seg)), NULL, err);
        if (rc == -TS_ECONFLICT) {
            if (ts_streq(type, "flat"))
                return ts_network_conflict(err, "FlatNetworkInUse", "Unable to create the flat network. Physical network %s is in use.", phys);
            if (ts_streq(type, "vlan"))
                return ts_network_conflict(err, "VlanIdInUse", "Unable to create the network. The VLAN %lld on physical network %s is in use.", (long long)seg, phys);
            return ts_network_conflict(err, "TunnelIdInUse", "Unable to create the network. The tunnel ID %lld is in use.", (long long)seg);
        }
        if (rc) return rc;
    }
    json_object_set_new(v, "provider:network_type", json_string(type));
    ts_json_set_str(v, "provider:physical_network", phys);
    if (ts_streq(type, "flat") || ts_streq(type, "local")) json_object_set_new(v, "provider:segmentation_id", json_null());
    else json_object_set_new(v, "provider:segmentation_id", json_integer(seg));
    json_object_set_new(v, "_max_mtu", json_integer(mtu));
    bool has_mtu;
    int64_t want = mtu;
    if ((rc = get_int(b, "mtu", &has_mtu, &want, err))) return rc;
    if (has_mtu && want > mtu) return ts_network_bad(err, "Invalid input for operation: Requested MTU is too big, maximum is %lld.", (long long)mtu);
    if (has_mtu && want < 68) return ts_network_bad(err, "Invalid input for mtu. Reason: '%lld' is too small - must be at least '68'.", (long long)want);
    json_object_set_new(v, "mtu", json_integer(has_mtu ? want : mtu));
    return 0;
}

static int network_create_one(struct ts_network_svc *svc, struct ts_http_req *req, const json_t *b, json_t **out,
                              struct ts_err *err)
{
    int rc = ts_network_check_keys(b, net_create_keys, err);
    if (rc) return rc;
    json_t *v = ts_network_new_view(req, &ts_network_k_network, b);
    struct ts_db_conn *tx = NULL;
    json_object_set_new(v, "status", json_string("ACTIVE"));
    json_object_set_new(v, "subnets", json_array());
    json_object_set_new(v, "availability_zone_hints", json_array());
    json_object_set_new(v, "availability_zones", json_array());
    json_object_set_new(v, "ipv4_address_scope", json_null());
    json_object_set_new(v, "ipv6_address_scope", json_null());
    json_object_set_new(v, "l2_adjacency", json_true());
    if ((rc = net_apply(req, v, b, true, err))) goto out;
    if ((rc = ts_db_begin(svc->db, &tx, err))) goto out;
    if ((rc = ts_network_quota_check(svc, tx, &ts_network_k_network, ts_network_vs(v, "project_id"), 1, err))) goto out;
    if ((rc = segment_alloc(svc, tx, req, v, b, err))) goto out;
    if ((rc = ts_network_save(tx, &ts_network_k_network, v, true, err))) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
out:
    ts_db_rollback(tx);
    if (rc) json_decref(v);
    else *out = v;
    return rc;
}

/* Bulk-aware create: {"x": {...}} or {"xs": [{...}, ...]}. */
static int create_common(struct ts_http_req *req, struct ts_http_resp *resp, const struct ts_network_kind *k,
                         int (*one)(struct ts_network_svc *, struct ts_http_req *, const json_t *, json_t **,
                                    struct ts_err *),
                         struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    int rc = ts_network_check_writer(req, err);
    if (rc) return rc;
    json_t *root = NULL;
    if (ts_http_json_body(req, &root, err)) return ts_network_bad(err, "Malformed request body");
    json_t *bulk = json_object_get(root, k->plural);
    json_t *single = json_object_get(root, k->name);
    if (json_is_array(bulk)) {
        json_t *views = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(bulk, i, e) {
            json_t *inner = json_is_object(e) && json_object_get(e, k->name) ? json_object_get(e, k->name) : e;
            json_t *v = NULL;
            if (!json_is_object(inner)) rc = ts_network_bad(err, "Invalid bulk body");
            else rc = one(svc, req, inner, &v, err);
            if (rc) break;
            json_array_append_new(views, v);
        }
        if (rc) {
            /* undo what was created: bulk is all or nothing in Neutron */
            json_array_foreach(views, i, e) {
                struct ts_db_conn *tx = NULL;
                if (ts_db_begin(svc->db, &tx, NULL) == 0) {
                    ts_network_ipam_release(tx, ts_network_vs(e, "id"), NULL);
                    ts_db_tx_exec(tx, "DELETE FROM segments WHERE network_id = ?",
                                  TS_DB_ARGS(TS_DB_S(ts_network_vs(e, "id"))), NULL, NULL);
                    ts_network_delete_obj(tx, ts_network_vs(e, "id"), NULL);
                    ts_db_commit(tx, NULL);
                }
            }
            json_decref(views);
            return rc;
        }
        json_t *outarr = json_array();
        json_array_foreach(views, i, e) {
            ts_network_notify(svc, k, "create.end", e);
            json_t *r = ts_network_render(req, k, e);
            json_array_append(outarr, json_object_get(r, k->name));
            json_decref(r);
        }
        json_decref(views);
        char key[64];
        snprintf(key, sizeof(key), "%s", k->plural);
        ts_http_resp_json(resp, 201, json_pack("{s:o}", key, outarr));
        return 0;
    }
    if (!json_is_object(single))
        return ts_network_bad(err, "Resource body required: expected an object under '%s'.", k->name);
    json_t *v = NULL;
    rc = one(svc, req, single, &v, err);
    if (rc) return rc;
    ts_network_notify(svc, k, "create.end", v);
    ts_http_resp_json(resp, 201, ts_network_render(req, k, v));
    json_decref(v);
    return 0;
}

int ts_network_h_network_create(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    return create_common(req, resp, &ts_network_k_network, network_create_one, err);
}

/* Pushes a network's shared flag into its subnets (subnet visibility). */
static int sync_subnet_visibility(struct ts_db_conn *tx, const json_t *net, struct ts_err *err)
{
    json_t *subs = NULL;
    int rc = ts_network_load_where(tx, &ts_network_k_subnet, "network_id", ts_network_vs(net, "id"), &subs, err);
    if (rc) return rc;
    /* as Neutron: an external network is visible to all (access_as_external), its subnets
     * only if it is also shared (access_as_shared) */
    bool vis = json_is_true(json_object_get(net, "shared"));
    size_t i;
    json_t *s;
    json_array_foreach(subs, i, s) {
        if (json_is_true(json_object_get(s, "_net_shared")) == vis) continue;
        json_object_set_new(s, "_net_shared", json_boolean(vis));
        if ((rc = ts_network_save(tx, &ts_network_k_subnet, s, false, err))) break;
    }
    json_decref(subs);
    return rc;
}

int ts_network_h_network_update(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    int rc = ts_network_check_writer(req, err);
    if (rc) return rc;
    json_t *root, *b, *v = NULL;
    if ((rc = ts_network_body(req, &ts_network_k_network, net_update_keys, &root, &b, err))) return rc;
    struct ts_db_conn *tx = NULL;
    if ((rc = ts_db_begin(svc->db, &tx, err))) return rc;
    if ((rc = ts_network_load_visible(svc, tx, req, &ts_network_k_network, ts_http_param(req, "id"), &v, err))) goto out;
    if (!ts_network_owner(req, v)) {
        rc = ts_network_forbidden(err, "rule:update_network is disallowed by policy");
        goto out;
    }
    if (json_object_get(b, "provider:network_type") || json_object_get(b, "provider:physical_network") ||
        json_object_get(b, "provider:segmentation_id")) {
        rc = ts_network_bad(err, "Invalid input for operation: Plugin does not support updating provider attributes.");
        goto out;
    }
    bool was_shared = json_is_true(json_object_get(v, "shared"));
    if ((rc = net_apply(req, v, b, false, err))) goto out;
    bool has_mtu;
    int64_t mtu = 0;
    if ((rc = get_int(b, "mtu", &has_mtu, &mtu, err))) goto out;
    if (has_mtu) {
        int64_t max = json_integer_value(json_object_get(v, "_max_mtu"));
        if (max && mtu > max) {
            rc = ts_network_bad(err, "Invalid input for operation: Requested MTU is too big, maximum is %lld.", (long long)max);
            goto out;
        }
        if (mtu < 68) {
            rc = ts_network_bad(err, "Invalid input for mtu. Reason: '%lld' is too small - must be at least '68'.", (long long)mtu);
            goto out;
        }
        json_object_set_new(v, "mtu", json_integer(mtu));
    }
    if (was_shared && !json_is_true(json_object_get(v, "shared"))) {
        /* unsharing while other projects have ports on it */
        struct ts_db_res *res = NULL;
        rc = ts_db_tx_exec(tx, "SELECT COUNT(*) FROM objects WHERE kind = 'port' AND network_id = ? AND project_id <> ?"
                               " AND project_id <> ''",
                           TS_DB_ARGS(TS_DB_S(ts_network_vs(v, "id")), TS_DB_S(ts_network_vs(v, "project_id"))), &res, err);
        if (rc) goto out;
        int64_t n = ts_db_res_int(res, 0, 0, 0);
        ts_db_res_free(res);
        if (n > 0) {
            rc = ts_network_conflict(err, "InvalidSharedSetting", "Unable to reconfigure sharing settings for network %s. Multiple tenants are using it.", ts_network_vs(v, "id"));
            goto out;
        }
    }
    if ((rc = ts_network_save(tx, &ts_network_k_network, v, false, err))) goto out;
    if ((rc = sync_subnet_visibility(tx, v, err))) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    ts_network_notify(svc, &ts_network_k_network, "update.end", v);
    ts_http_resp_json(resp, 200, ts_network_render(req, &ts_network_k_network, v));
out:
    ts_db_rollback(tx);
    json_decref(v);
    return rc;
}

int ts_network_h_network_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    int rc = ts_network_check_writer(req, err);
    if (rc) return rc;
    json_t *v = NULL, *ports = NULL, *subs = NULL;
    struct ts_db_conn *tx = NULL;
    const char *id = ts_http_param(req, "id");
    if ((rc = ts_db_begin(svc->db, &tx, err))) return rc;
    if ((rc = ts_network_load_visible(svc, tx, req, &ts_network_k_network, id, &v, err))) goto out;
    if (!ts_network_owner(req, v)) {
        rc = ts_network_forbidden(err, "rule:delete_network is disallowed by policy");
        goto out;
    }
    if ((rc = ts_network_load_where(tx, &ts_network_k_port, "network_id", id, &ports, err))) goto out;
    size_t i;
    json_t *p;
    json_array_foreach(ports, i, p) {
        const char *owner = ts_network_vs(p, "device_owner");
        if (!ts_streq(owner, "network:dhcp") && !ts_streq(owner, "network:floatingip")) {
            rc = ts_network_conflict(err, "NetworkInUse", "Unable to complete operation on network %s. There are one or more ports still in use on the network.", id);
            goto out;
        }
    }
    /* DHCP ports and floating IPs go with the network, as in Neutron */
    json_array_foreach(ports, i, p) {
        if (ts_streq(ts_network_vs(p, "device_owner"), "network:floatingip") &&
            (rc = ts_network_delete_obj(tx, ts_network_vs(p, "device_id"), err)))
            goto out;
        if ((rc = ts_network_ipam_release(tx, ts_network_vs(p, "id"), err))) goto out;
        if ((rc = ts_network_delete_obj(tx, ts_network_vs(p, "id"), err))) goto out;
    }
    if ((rc = ts_network_load_where(tx, &ts_network_k_subnet, "network_id", id, &subs, err))) goto out;
    json_array_foreach(subs, i, p) if ((rc = ts_network_delete_obj(tx, ts_network_vs(p, "id"), err))) goto out;
    if ((rc = ts_db_tx_exec(tx, "DELETE FROM segments WHERE network_id = ?", TS_DB_ARGS(TS_DB_S(id)), NULL, err))) goto out;
    if ((rc = ts_network_agents_unbind(tx, id, err))) goto out;
    if ((rc = ts_network_delete_obj(tx, id, err))) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    json_array_foreach(subs, i, p) ts_network_notify(svc, &ts_network_k_subnet, "delete.end", p);
    ts_network_notify(svc, &ts_network_k_network, "delete.end", v);
    ts_http_resp_no_body(resp, 204, 0);
out:
    ts_db_rollback(tx);
    json_decref(v);
    json_decref(ports);
    json_decref(subs);
    return rc;
}

/* ---- subnets -------------------------------------------------------------------------------- */

static const char *const subnet_create_keys[] = {
    "name", "network_id", "cidr", "ip_version", "gateway_ip", "allocation_pools", "dns_nameservers", "host_routes",
    "enable_dhcp", "ipv6_ra_mode", "ipv6_address_mode", "subnetpool_id", "use_default_subnetpool", "prefixlen",
    "description", "project_id", "tenant_id", "segment_id", "service_types", "dns_publish_fixed_ip", NULL};
static const char *const subnet_update_keys[] = {"name", "gateway_ip", "allocation_pools", "dns_nameservers",
                                                 "host_routes", "enable_dhcp", "description", "service_types",
                                                 "segment_id", "dns_publish_fixed_ip", NULL};

static int parse_ip_for(const char *what, const char *s, int version, ts_network_u128 *out, struct ts_err *err)
{
    int v;
    if (!s || ts_network_ip_parse(s, &v, out))
        return ts_network_bad(err, "Invalid input for %s. Reason: '%s' is not a valid IP address.", what, s ? s : "");
    if (version && v != version)
        return ts_network_bad(err, "Invalid input for %s. Reason: '%s' is not a valid IPv%d address.", what, s, version);
    return 0;
}

static int subnet_pools_of(const json_t *sub, const struct ts_network_cidr *c, struct ts_network_pool *pools, int max,
                           int *n, struct ts_err *err)
{
    json_t *arr = json_object_get(sub, "allocation_pools");
    *n = 0;
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        if (*n >= max) return ts_network_bad(err, "Too many allocation pools.");
        if (!json_is_object(e)) return ts_network_bad(err, "Invalid input for allocation_pools. Reason: not a list of {start, end}.");
        int rc = parse_ip_for("allocation_pools", ts_network_vs(e, "start"), c->version, &pools[*n].start, err);
        if (!rc) rc = parse_ip_for("allocation_pools", ts_network_vs(e, "end"), c->version, &pools[*n].end, err);
        if (rc) return rc;
        (*n)++;
    }
    return 0;
}

static json_t *pools_json(int version, const struct ts_network_pool *p, int n)
{
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        char a[46], b[46];
        ts_network_ip_format(version, p[i].start, a);
        ts_network_ip_format(version, p[i].end, b);
        json_array_append_new(arr, json_pack("{s:s,s:s}", "start", a, "end", b));
    }
    return arr;
}

/* dns_nameservers, host_routes, gateway_ip, allocation_pools: validated and normalised into v */
static int subnet_apply(json_t *v, const json_t *b, const struct ts_network_cidr *c, bool create, struct ts_err *err)
{
    int rc;
    json_t *dns = json_object_get(b, "dns_nameservers");
    if (dns && !json_is_null(dns)) {
        if (!json_is_array(dns)) return ts_network_bad(err, "Invalid input for dns_nameservers. Reason: not a list.");
        if (json_array_size(dns) > 5)
            return ts_network_bad(err, "Number of DNS nameservers exceeds the limit 5.");
        size_t i;
        json_t *e;
        json_array_foreach(dns, i, e) {
            ts_network_u128 a;
            if ((rc = parse_ip_for("dns_nameservers", json_string_value(e), 0, &a, err))) return rc;
            for (size_t j = 0; j < i; j++)
                if (json_equal(e, json_array_get(dns, j)))
                    return ts_network_bad(err, "Invalid input for dns_nameservers. Reason: Duplicate nameserver '%s'.", json_string_value(e));
        }
        json_object_set(v, "dns_nameservers", dns);
    } else if (create || dns) {
        json_object_set_new(v, "dns_nameservers", json_array());
    }
    json_t *hr = json_object_get(b, "host_routes");
    if (hr && !json_is_null(hr)) {
        if (!json_is_array(hr)) return ts_network_bad(err, "Invalid input for host_routes. Reason: not a list.");
        json_t *out = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(hr, i, e) {
            struct ts_network_cidr d;
            ts_network_u128 nh;
            const char *dest = ts_network_vs(e, "destination"), *nexthop = ts_network_vs(e, "nexthop");
            if (!dest || ts_network_cidr_parse(dest, false, &d)) {
                json_decref(out);
                return ts_network_bad(err, "Invalid input for host_routes. Reason: '%s' is not a valid IP subnet.", dest ? dest : "");
            }
            if ((rc = parse_ip_for("host_routes", nexthop, d.version, &nh, err))) {
                json_decref(out);
                return rc;
            }
            char cs[50];
            ts_network_cidr_format(&d, cs);
            json_array_append_new(out, json_pack("{s:s,s:s}", "destination", cs, "nexthop", nexthop));
        }
        json_object_set_new(v, "host_routes", out);
    } else if (create || hr) {
        json_object_set_new(v, "host_routes", json_array());
    }
    /* gateway */
    ts_network_u128 gw = 0;
    bool has_gw = false;
    json_t *g = json_object_get(b, "gateway_ip");
    if (create && !g) {
        gw = ts_network_cidr_first(c) + 1;
        has_gw = ts_network_cidr_last(c) > ts_network_cidr_first(c) + (c->version == 4 ? 1 : 0);
    } else if (g && !json_is_null(g)) {
        if ((rc = parse_ip_for("gateway_ip", json_string_value(g), c->version, &gw, err))) return rc;
        if (!ts_network_cidr_contains(c, c->version, gw) || gw == ts_network_cidr_first(c) ||
            (c->version == 4 && c->prefix < 31 && gw == ts_network_cidr_last(c)))
            return ts_network_bad(err, "Invalid input for operation: Gateway is not valid on subnet.");
        has_gw = true;
    } else if (!g) {
        const char *cur = ts_network_vs(v, "gateway_ip");
        if (cur) {
            int vv;
            ts_network_ip_parse(cur, &vv, &gw);
            has_gw = true;
        }
    }
    if (has_gw) {
        char s[46];
        ts_network_ip_format(c->version, gw, s);
        json_object_set_new(v, "gateway_ip", json_string(s));
    } else {
        json_object_set_new(v, "gateway_ip", json_null());
    }
    /* pools */
    struct ts_network_pool pools[64];
    int n = 0;
    json_t *ap = json_object_get(b, "allocation_pools");
    if (ap && !json_is_null(ap)) {
        if (!json_is_array(ap)) return ts_network_bad(err, "Invalid input for allocation_pools. Reason: not a list.");
        json_t *tmp = json_pack("{s:O}", "allocation_pools", ap);
        rc = subnet_pools_of(tmp, c, pools, 64, &n, err);
        json_decref(tmp);
        if (rc) return rc;
    } else if (create) {
        n = ts_network_default_pools(c, gw, has_gw, pools);
    } else {
        if ((rc = subnet_pools_of(v, c, pools, 64, &n, err))) return rc;
    }
    char msg[256];
    if (ts_network_pools_validate(c, pools, n, has_gw, gw, msg, sizeof(msg)))
        return ts_network_bad(err, "%s", msg);
    json_object_set_new(v, "allocation_pools", pools_json(c->version, pools, n));
    return 0;
}

static int subnetpool_allocate(struct ts_db_conn *tx, struct ts_http_req *req, const char *pool_id, int version,
                               int64_t prefixlen, bool has_prefixlen, struct ts_network_cidr *out, json_t **pool_out,
                               struct ts_err *err);

static int subnet_create_one(struct ts_network_svc *svc, struct ts_http_req *req, const json_t *b, json_t **out,
                             struct ts_err *err)
{
    int rc = ts_network_check_keys(b, subnet_create_keys, err);
    if (rc) return rc;
    const char *net_id = ts_network_vs(b, "network_id");
    if (!net_id) return ts_network_bad(err, "Failed to parse request. Required attribute 'network_id' not specified");
    json_t *ipv = json_object_get(b, "ip_version");
    int64_t version = 4;
    if (ipv) {
        if (json_is_integer(ipv)) version = json_integer_value(ipv);
        else if (!json_is_string(ipv) || ts_parse_int64(json_string_value(ipv), &version)) version = 0;
        if (version != 4 && version != 6)
            return ts_network_bad(err, "Invalid input for ip_version. Reason: '%s' is not in [4, 6].",
                                  json_is_string(ipv) ? json_string_value(ipv) : "?");
    }
    const char *cidr_s = ts_network_vs(b, "cidr");
    const char *pool_id = ts_network_vs(b, "subnetpool_id");
    bool use_default = json_is_true(json_object_get(b, "use_default_subnetpool"));
    if (!cidr_s && !pool_id && !use_default)
        return ts_network_bad(err, "Bad subnets request: a subnetpool must be specified in the absence of a cidr.");
    json_t *v = ts_network_new_view(req, &ts_network_k_subnet, b), *net = NULL, *pool = NULL, *subs = NULL;
    struct ts_db_conn *tx = NULL;
    struct ts_network_cidr c;
    if ((rc = ts_db_begin(svc->db, &tx, err))) goto out;
    if ((rc = ts_network_load_visible(svc, tx, req, &ts_network_k_network, net_id, &net, err))) goto out;
    if (!ts_network_owner(req, net)) {
        rc = ts_network_forbidden(err, "(rule:create_subnet and rule:create_subnet:network_id) is disallowed by policy");
        goto out;
    }
    if (cidr_s) {
        if (ts_network_cidr_parse(cidr_s, true, &c)) {
            struct ts_network_cidr loose;
            char rec[50];
            if (ts_network_cidr_parse(cidr_s, false, &loose) == 0) {
                ts_network_cidr_format(&loose, rec);
                rc = ts_network_bad(err, "Invalid input for cidr. Reason: '%s' isn't a recognized IP subnet cidr, '%s' is recommended.", cidr_s, rec);
            } else {
                rc = ts_network_bad(err, "Invalid input for cidr. Reason: '%s' is not a valid IP subnet.", cidr_s);
            }
            goto out;
        }
        if (c.version != version) {
            rc = ts_network_bad(err, "Invalid input for operation: Cidr %s does not match ip_version %d.", cidr_s, (int)version);
            goto out;
        }
        if (c.prefix == 0) {
            rc = ts_network_bad(err, "Invalid input for cidr. Reason: '%s' is not a valid subnet (prefix length 0).", cidr_s);
            goto out;
        }
    } else {
        if (use_default && !pool_id) {
            rc = ts_network_bad(err, "Bad subnets request: no default subnet pool for IPv%d.", (int)version);
            goto out;
        }
        bool has_pl;
        int64_t pl = 0;
        if ((rc = get_int(b, "prefixlen", &has_pl, &pl, err))) goto out;
        if ((rc = subnetpool_allocate(tx, req, pool_id, (int)version, pl, has_pl, &c, &pool, err))) goto out;
    }
    if (cidr_s && pool_id) {
        if ((rc = subnetpool_allocate(tx, req, pool_id, (int)version, 0, false, NULL, &pool, err))) goto out;
    }
    if (version == 6) {
        const char *ra, *am;
        if ((rc = ts_network_json_str(b, "ipv6_ra_mode", 32, &ra, err)) ||
            (rc = ts_network_json_str(b, "ipv6_address_mode", 32, &am, err)))
            goto out;
        static const char *const modes[] = {"slaac", "dhcpv6-stateful", "dhcpv6-stateless", NULL};
        const char *both[2] = {ra, am};
        for (int i = 0; i < 2; i++) {
            if (!both[i]) continue;
            bool ok = false;
            for (int j = 0; modes[j]; j++) ok |= ts_streq(both[i], modes[j]);
            if (!ok) {
                rc = ts_network_bad(err, "Invalid input for %s. Reason: '%s' is not in ['dhcpv6-stateful', 'dhcpv6-stateless', 'slaac'].", i ? "ipv6_address_mode" : "ipv6_ra_mode", both[i]);
                goto out;
            }
        }
        if (ra && am && !ts_streq(ra, am)) {
            rc = ts_network_bad(err, "Invalid input for operation: ipv6_ra_mode set to '%s' with ipv6_address_mode set to '%s' is not valid. If both attributes are set, they must be the same value.", ra, am);
            goto out;
        }
        if ((ts_streq(am, "slaac") || ts_streq(am, "dhcpv6-stateless")) && c.prefix != 64) {
            rc = ts_network_bad(err, "Invalid input for operation: Invalid CIDR %s for IPv6 address mode. OpenStack uses the EUI-64 address format, which requires the prefix to be /64.", cidr_s ? cidr_s : "");
            goto out;
        }
        ts_json_set_str(v, "ipv6_ra_mode", ra);
        ts_json_set_str(v, "ipv6_address_mode", am);
    } else {
        if (json_object_get(b, "ipv6_ra_mode") && !json_is_null(json_object_get(b, "ipv6_ra_mode"))) {
            rc = ts_network_bad(err, "Invalid input for operation: ipv6_ra_mode is not valid when ip_version is 4.");
            goto out;
        }
        if (json_object_get(b, "ipv6_address_mode") && !json_is_null(json_object_get(b, "ipv6_address_mode"))) {
            rc = ts_network_bad(err, "Invalid input for operation: ipv6_address_mode is not valid when ip_version is 4.");
            goto out;
        }
        json_object_set_new(v, "ipv6_ra_mode", json_null());
        json_object_set_new(v, "ipv6_address_mode", json_null());
    }
    /* overlap with the network's other subnets */
    if ((rc = ts_network_load_where(tx, &ts_network_k_subnet, "network_id", net_id, &subs, err))) goto out;
    size_t i;
    json_t *s;
    json_array_foreach(subs, i, s) {
        struct ts_network_cidr o;
        if (ts_network_cidr_parse(ts_network_vs(s, "cidr"), false, &o) == 0 && ts_network_cidr_overlap(&o, &c)) {
            char cs[50];
            ts_network_cidr_format(&c, cs);
            rc = ts_network_bad(err, "Invalid input for operation: Requested subnet with cidr: %s for network: %s overlaps with another subnet.", cs, net_id);
            goto out;
        }
    }
    const char *name;
    if ((rc = ts_network_json_str(b, "name", 255, &name, err))) goto out;
    bool dhcp;
    if ((rc = ts_network_json_bool(b, "enable_dhcp", true, &dhcp, err))) goto out;
    char cs[50];
    ts_network_cidr_format(&c, cs);
    json_object_set_new(v, "name", json_string(name ? name : ""));
    json_object_set_new(v, "network_id", json_string(net_id));
    json_object_set_new(v, "ip_version", json_integer(version));
    json_object_set_new(v, "cidr", json_string(cs));
    json_object_set_new(v, "enable_dhcp", json_boolean(dhcp));
    ts_json_set_str(v, "subnetpool_id", pool ? ts_network_vs(pool, "id") : NULL);
    json_object_set_new(v, "service_types", json_array());
    json_object_set_new(v, "segment_id", json_null());
    json_object_set_new(v, "_net_shared", json_boolean(json_is_true(json_object_get(net, "shared"))));
    if ((rc = subnet_apply(v, b, &c, true, err))) goto out;
    if ((rc = ts_network_quota_check(svc, tx, &ts_network_k_subnet, ts_network_vs(v, "project_id"), 1, err))) goto out;
    if ((rc = ts_network_save(tx, &ts_network_k_subnet, v, true, err))) goto out;
    json_array_append(json_object_get(net, "subnets"), json_object_get(v, "id"));
    if ((rc = ts_network_save(tx, &ts_network_k_network, net, false, err))) goto out;
    /* a DHCP subnet puts its network on a DHCP agent (Neutron's network scheduler) */
    if (dhcp && (rc = ts_network_agents_schedule_network(svc, tx, net_id, err))) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
out:
    ts_db_rollback(tx);
    json_decref(net);
    json_decref(pool);
    json_decref(subs);
    if (rc) json_decref(v);
    else *out = v;
    return rc;
}

int ts_network_h_subnet_create(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    return create_common(req, resp, &ts_network_k_subnet, subnet_create_one, err);
}

int ts_network_h_subnet_update(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    int rc = ts_network_check_writer(req, err);
    if (rc) return rc;
    json_t *root, *b, *v = NULL;
    if ((rc = ts_network_body(req, &ts_network_k_subnet, NULL, &root, &b, err))) return rc;
    const char *key;
    json_t *val;
    json_object_foreach(b, key, val) {
        bool ok = false;
        for (int i = 0; subnet_update_keys[i]; i++) ok |= ts_streq(key, subnet_update_keys[i]);
        if (!ok) return ts_network_bad(err, "Cannot update read-only attribute %s", key);
    }
    struct ts_db_conn *tx = NULL;
    if ((rc = ts_db_begin(svc->db, &tx, err))) return rc;
    if ((rc = ts_network_load_visible(svc, tx, req, &ts_network_k_subnet, ts_http_param(req, "id"), &v, err))) goto out;
    if (!ts_network_owner(req, v)) {
        rc = ts_network_forbidden(err, "rule:update_subnet is disallowed by policy");
        goto out;
    }
    struct ts_network_cidr c;
    ts_network_cidr_parse(ts_network_vs(v, "cidr"), false, &c);
    const char *name, *desc;
    if ((rc = ts_network_json_str(b, "name", 255, &name, err))) goto out;
    if ((rc = ts_network_json_str(b, "description", 255, &desc, err))) goto out;
    if (name) json_object_set_new(v, "name", json_string(name));
    if (desc) json_object_set_new(v, "description", json_string(desc));
    if (json_object_get(b, "enable_dhcp")) {
        bool d;
        if ((rc = ts_network_json_bool(b, "enable_dhcp", true, &d, err))) goto out;
        json_object_set_new(v, "enable_dhcp", json_boolean(d));
        if (d && (rc = ts_network_agents_schedule_network(svc, tx, ts_network_vs(v, "network_id"), err))) goto out;
    }
    if ((rc = subnet_apply(v, b, &c, false, err))) goto out;
    if ((rc = ts_network_save(tx, &ts_network_k_subnet, v, false, err))) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    ts_network_notify(svc, &ts_network_k_subnet, "update.end", v);
    ts_http_resp_json(resp, 200, ts_network_render(req, &ts_network_k_subnet, v));
out:
    ts_db_rollback(tx);
    json_decref(v);
    return rc;
}

int ts_network_h_subnet_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    int rc = ts_network_check_writer(req, err);
    if (rc) return rc;
    json_t *v = NULL, *net = NULL;
    struct ts_db_conn *tx = NULL;
    const char *id = ts_http_param(req, "id");
    if ((rc = ts_db_begin(svc->db, &tx, err))) return rc;
    if ((rc = ts_network_load_visible(svc, tx, req, &ts_network_k_subnet, id, &v, err))) goto out;
    if (!ts_network_owner(req, v)) {
        rc = ts_network_forbidden(err, "rule:delete_subnet is disallowed by policy");
        goto out;
    }
    struct ts_db_res *res = NULL;
    if ((rc = ts_db_tx_exec(tx, "SELECT a.port_id, o.device_owner FROM ipallocs a LEFT JOIN objects o ON o.id = a.port_id"
                                " WHERE a.subnet_id = ?", TS_DB_ARGS(TS_DB_S(id)), &res, err)))
        goto out;
    /* addresses of an IPv6 SLAAC / DHCPv6-stateless subnet are the hosts' own (EUI-64): Neutron
     * strips them from the ports (router interfaces excepted) instead of refusing */
    const char *am = ts_network_vs(v, "ipv6_address_mode");
    bool auto_addr = json_integer_value(json_object_get(v, "ip_version")) == 6 &&
                     (ts_streq(am, "slaac") || ts_streq(am, "dhcpv6-stateless"));
    for (int r = 0; r < res->nrows; r++) {
        const char *owner = ts_db_res_get(res, r, 1);
        if (auto_addr && !ts_startswith(owner ? owner : "", "network:router_interface")) continue;
        if (!ts_streq(owner, "network:dhcp")) {
            ts_db_res_free(res);
            rc = ts_network_conflict(err, "SubnetInUse", "Unable to complete operation on subnet %s: One or more ports have an IP allocation from this subnet.", id);
            goto out;
        }
    }
    /* DHCP ports (and ports on an auto-address subnet) just lose their address on it, as in Neutron */
    for (int r = 0; r < res->nrows; r++) {
        json_t *dp = NULL;
        if (ts_network_load(tx, &ts_network_k_port, ts_db_res_get(res, r, 0), &dp, NULL) != 0) continue;
        json_t *fi = json_object_get(dp, "fixed_ips");
        for (size_t k = json_array_size(fi); k-- > 0;)
            if (ts_streq(ts_network_vs(json_array_get(fi, k), "subnet_id"), id)) json_array_remove(fi, k);
        rc = ts_network_save(tx, &ts_network_k_port, dp, false, err);
        json_decref(dp);
        if (rc) break;
    }
    ts_db_res_free(res);
    if (rc) goto out;
    if ((rc = ts_db_tx_exec(tx, "DELETE FROM ipallocs WHERE subnet_id = ?", TS_DB_ARGS(TS_DB_S(id)), NULL, err))) goto out;
    if (ts_network_load(tx, &ts_network_k_network, ts_network_vs(v, "network_id"), &net, NULL) == 0) {
        json_t *arr = json_object_get(net, "subnets");
        size_t i;
        json_t *e;
        json_array_foreach(arr, i, e) if (ts_streq(json_string_value(e), id)) {
            json_array_remove(arr, i);
            break;
        }
        if ((rc = ts_network_save(tx, &ts_network_k_network, net, false, err))) goto out;
    }
    if ((rc = ts_network_delete_obj(tx, id, err))) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    ts_network_notify(svc, &ts_network_k_subnet, "delete.end", v);
    ts_http_resp_no_body(resp, 204, 0);
out:
    ts_db_rollback(tx);
    json_decref(v);
    json_decref(net);
    return rc;
}

/* ---- subnet pools ------------------------------------------------------------------------------ */

static const char *const pool_keys[] = {"name", "prefixes", "default_prefixlen", "min_prefixlen", "max_prefixlen",
                                        "shared", "is_default", "default_quota", "address_scope_id", "description",
                                        "project_id", "tenant_id", NULL};

static int pool_apply(struct ts_http_req *req, json_t *v, const json_t *b, bool create, struct ts_err *err)
{
    int rc;
    const char *name;
    if ((rc = ts_network_json_str(b, "name", 255, &name, err))) return rc;
    if (name || create) json_object_set_new(v, "name", json_string(name ? name : ""));
    const char *desc;
    if ((rc = ts_network_json_str(b, "description", 255, &desc, err))) return rc;
    if (desc) json_object_set_new(v, "description", json_string(desc));
    json_t *pf = json_object_get(b, "prefixes");
    int version = (int)json_integer_value(json_object_get(v, "ip_version"));
    if (pf) {
        if (!json_is_array(pf) || json_array_size(pf) == 0)
            return ts_network_bad(err, "Invalid input for prefixes. Reason: a non-empty list is required.");
        json_t *old = json_object_get(v, "prefixes");
        json_t *out = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(pf, i, e) {
            struct ts_network_cidr c;
            if (!json_is_string(e) || ts_network_cidr_parse(json_string_value(e), false, &c)) {
                json_decref(out);
                return ts_network_bad(err, "Invalid input for prefixes. Reason: '%s' is not a valid IP subnet.", json_is_string(e) ? json_string_value(e) : "?");
            }
            if (version && c.version != version) {
                json_decref(out);
                return ts_network_bad(err, "Illegal subnetpool update : Cannot mix IPv4 and IPv6 prefixes in a subnet pool.");
            }
            version = c.version;
            char cs[50];
            ts_network_cidr_format(&c, cs);
            json_array_append_new(out, json_string(cs));
        }
        if (!create && json_is_array(old)) {
            /* prefixes may only grow: every old prefix must be inside a new one */
            json_array_foreach(old, i, e) {
                struct ts_network_cidr o;
                ts_network_cidr_parse(json_string_value(e), false, &o);
                bool kept = false;
                size_t j;
                json_t *f;
                json_array_foreach(out, j, f) {
                    struct ts_network_cidr n;
                    ts_network_cidr_parse(json_string_value(f), false, &n);
                    if (ts_network_cidr_contains(&n, o.version, o.net) && n.prefix <= o.prefix) kept = true;
                }
                if (!kept) {
                    json_decref(out);
                    return ts_network_bad(err, "Illegal subnetpool update : Existing prefix %s must be a subset of the new prefixes", json_string_value(e));
                }
            }
        }
        json_object_set_new(v, "prefixes", out);
        json_object_set_new(v, "ip_version", json_integer(version));
    } else if (create) {
        return ts_network_bad(err, "Failed to parse request. Required attribute 'prefixes' not specified");
    }
    int maxbits = version == 6 ? 128 : 32;
    static const char *const lens[] = {"min_prefixlen", "max_prefixlen", "default_prefixlen"};
    int64_t vals[3] = {json_integer_value(json_object_get(v, "min_prefixlen")),
                       json_integer_value(json_object_get(v, "max_prefixlen")),
                       json_integer_value(json_object_get(v, "default_prefixlen"))};
    if (create) vals[0] = version == 6 ? 64 : 8, vals[1] = maxbits, vals[2] = -1;
    for (int i = 0; i < 3; i++) {
        bool has;
        int64_t x;
        if ((rc = get_int(b, lens[i], &has, &x, err))) return rc;
        if (!has) continue;
        if (x < 0 || x > maxbits) return ts_network_bad(err, "Invalid input for %s. Reason: '%lld' out of range.", lens[i], (long long)x);
        vals[i] = x;
    }
    if (vals[2] < 0) vals[2] = vals[0];
    if (vals[0] > vals[1] || vals[2] < vals[0] || vals[2] > vals[1])
        return ts_network_bad(err, "Illegal prefix bounds: min_prefixlen=%lld, max_prefixlen=%lld, default_prefixlen=%lld.", (long long)vals[0], (long long)vals[1], (long long)vals[2]);
    for (int i = 0; i < 3; i++) json_object_set_new(v, lens[i], json_integer(vals[i]));
    static const char *const bools[] = {"shared", "is_default"};
    for (int i = 0; i < 2; i++) {
        if (!create && !json_object_get(b, bools[i])) continue;
        bool x;
        if ((rc = ts_network_json_bool(b, bools[i], false, &x, err))) return rc;
        if (x && !req->auth->is_admin && json_object_get(b, bools[i]))
            return ts_network_forbidden(err, "rule:create_subnetpool:%s is disallowed by policy", bools[i]);
        json_object_set_new(v, bools[i], json_boolean(x));
    }
    if (create) {
        json_object_set_new(v, "address_scope_id", json_null());
        json_object_set_new(v, "default_quota", json_null());
    }
    bool hq;
    int64_t q;
    if ((rc = get_int(b, "default_quota", &hq, &q, err))) return rc;
    if (hq) json_object_set_new(v, "default_quota", json_integer(q));
    return 0;
}

static int subnetpool_create_one(struct ts_network_svc *svc, struct ts_http_req *req, const json_t *b, json_t **out,
                                 struct ts_err *err)
{
    int rc = ts_network_check_keys(b, pool_keys, err);
    if (rc) return rc;
    json_t *v = ts_network_new_view(req, &ts_network_k_subnetpool, b);
    struct ts_db_conn *tx = NULL;
    if ((rc = pool_apply(req, v, b, true, err))) goto out;
    if ((rc = ts_db_begin(svc->db, &tx, err))) goto out;
    if ((rc = ts_network_save(tx, &ts_network_k_subnetpool, v, true, err))) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
out:
    ts_db_rollback(tx);
    if (rc) json_decref(v);
    else *out = v;
    return rc;
}

int ts_network_h_subnetpool_create(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    return create_common(req, resp, &ts_network_k_subnetpool, subnetpool_create_one, err);
}

int ts_network_h_subnetpool_update(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    int rc = ts_network_check_writer(req, err);
    if (rc) return rc;
    json_t *root, *b, *v = NULL;
    if ((rc = ts_network_body(req, &ts_network_k_subnetpool, pool_keys, &root, &b, err))) return rc;
    struct ts_db_conn *tx = NULL;
    if ((rc = ts_db_begin(svc->db, &tx, err))) return rc;
    if ((rc = ts_network_load_visible(svc, tx, req, &ts_network_k_subnetpool, ts_http_param(req, "id"), &v, err))) goto out;
    if (!ts_network_owner(req, v)) {
        rc = ts_network_forbidden(err, "rule:update_subnetpool is disallowed by policy");
        goto out;
    }
    if ((rc = pool_apply(req, v, b, false, err))) goto out;
    if ((rc = ts_network_save(tx, &ts_network_k_subnetpool, v, false, err))) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    ts_network_notify(svc, &ts_network_k_subnetpool, "update.end", v);
    ts_http_resp_json(resp, 200, ts_network_render(req, &ts_network_k_subnetpool, v));
out:
    ts_db_rollback(tx);
    json_decref(v);
    return rc;
}

int ts_network_h_subnetpool_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    int rc = ts_network_check_writer(req, err);
    if (rc) return rc;
    json_t *v = NULL, *subs = NULL;
    struct ts_db_conn *tx = NULL;
    const char *id = ts_http_param(req, "id");
    if ((rc = ts_db_begin(svc->db, &tx, err))) return rc;
    if ((rc = ts_network_load_visible(svc, tx, req, &ts_network_k_subnetpool, id, &v, err))) goto out;
    if (!ts_network_owner(req, v)) {
        rc = ts_network_forbidden(err, "rule:delete_subnetpool is disallowed by policy");
        goto out;
    }
    if ((rc = ts_network_load_where(tx, &ts_network_k_subnet, "ref_id", id, &subs, err))) goto out;
    if (json_array_size(subs)) {
        rc = ts_network_conflict(err, "SubnetPoolInUse", "Subnet pool %s could not be deleted: it has allocated subnets.", id);
        goto out;
    }
    if ((rc = ts_network_delete_obj(tx, id, err))) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    ts_network_notify(svc, &ts_network_k_subnetpool, "delete.end", v);
    ts_http_resp_no_body(resp, 204, 0);
out:
    ts_db_rollback(tx);
    json_decref(v);
    json_decref(subs);
    return rc;
}

/* Finds the first aligned block of prefixlen inside the pool's prefixes that overlaps no
 * subnet already allocated from the pool (out may be NULL: only load/check the pool). */
static int subnetpool_allocate(struct ts_db_conn *tx, struct ts_http_req *req, const char *pool_id, int version,
                               int64_t prefixlen, bool has_prefixlen, struct ts_network_cidr *out, json_t **pool_out,
                               struct ts_err *err)
{
    json_t *pool = NULL, *subs = NULL;
    int rc = ts_network_load(tx, &ts_network_k_subnetpool, pool_id, &pool, err);
    if (rc) return rc;
    if (!ts_network_visible(req, &ts_network_k_subnetpool, pool)) {
        json_decref(pool);
        return ts_network_nf(err, &ts_network_k_subnetpool, pool_id);
    }
    if (json_integer_value(json_object_get(pool, "ip_version")) != version) {
        json_decref(pool);
        return ts_network_bad(err, "Bad subnets request: Cannot allocate IPv%d subnet from IPv%d subnet pool.", version,
                              (int)json_integer_value(json_object_get(pool, "ip_version")));
    }
    if (!out) {
        *pool_out = pool;
        return 0;
    }
    if (!has_prefixlen) prefixlen = json_integer_value(json_object_get(pool, "default_prefixlen"));
    if (prefixlen < json_integer_value(json_object_get(pool, "min_prefixlen")) ||
        prefixlen > json_integer_value(json_object_get(pool, "max_prefixlen"))) {
        json_decref(pool);
        return ts_network_bad(err, "Illegal prefix bounds: prefixlen=%lld.", (long long)prefixlen);
    }
    rc = ts_network_load_where(tx, &ts_network_k_subnet, "ref_id", pool_id, &subs, err);
    if (rc) {
        json_decref(pool);
        return rc;
    }
    rc = ts_network_conflict(err, "SubnetAllocationError", "Failed to allocate subnet: Insufficient prefix space to allocate subnet size /%lld.", (long long)prefixlen);
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(pool, "prefixes"), i, p) {
        struct ts_network_cidr pc;
        if (ts_network_cidr_parse(json_string_value(p), false, &pc) || pc.prefix > prefixlen) continue;
        struct ts_network_cidr cand = {pc.version, pc.net, (int)prefixlen};
        ts_network_u128 step = ts_network_cidr_last(&cand) - ts_network_cidr_first(&cand) + 1;
        /* at most 65536 candidates per prefix keeps this bounded */
        for (int n = 0; n < 65536 && ts_network_cidr_last(&cand) <= ts_network_cidr_last(&pc); n++) {
            bool clash = false;
            size_t j;
            json_t *s;
            json_array_foreach(subs, j, s) {
                struct ts_network_cidr sc;
                if (ts_network_cidr_parse(ts_network_vs(s, "cidr"), false, &sc) == 0 && ts_network_cidr_overlap(&sc, &cand))
                    clash = true;
            }
            if (!clash) {
                *out = cand;
                rc = 0;
                goto done;
            }
            if (step == 0 || cand.net + step < cand.net) break;
            cand.net += step;
        }
    }
done:
    json_decref(subs);
    if (rc) json_decref(pool);
    else *pool_out = pool, ts_err_clear(err);
    return rc;
}

/* ---- IPAM over the store -------------------------------------------------------------------------- */

static int alloc_insert(struct ts_db_conn *tx, const char *subnet_id, const char *ip, const char *net_id,
                        const char *port_id, struct ts_err *err)
{
    int rc = ts_db_tx_exec(tx, "INSERT INTO ipallocs (subnet_id, ip_address, network_id, port_id) VALUES (?, ?, ?, ?)",
                           TS_DB_ARGS(TS_DB_S(subnet_id), TS_DB_S(ip), TS_DB_S(net_id), TS_DB_S(port_id)), NULL, err);
    if (rc == -TS_ECONFLICT)
        return ts_network_conflict(err, "IpAddressAlreadyAllocated", "IP address %s already allocated in subnet %s", ip,
                                   subnet_id);
    return rc;
}

/* next free address of one subnet; -TS_ECONFLICT when full */
static int alloc_next(struct ts_db_conn *tx, const json_t *sub, const char *net_id, const char *port_id, char ip[46],
                      struct ts_err *err)
{
    struct ts_network_cidr c;
    if (ts_network_cidr_parse(ts_network_vs(sub, "cidr"), false, &c)) return ts_err_set(err, TS_EIO, "bad stored cidr");
    struct ts_network_pool pools[64];
    int n;
    int rc = subnet_pools_of(sub, &c, pools, 64, &n, err);
    if (rc) return rc;
    struct ts_db_res *res = NULL;
    rc = ts_db_tx_exec(tx, "SELECT ip_address FROM ipallocs WHERE subnet_id = ?",
                       TS_DB_ARGS(TS_DB_S(ts_network_vs(sub, "id"))), &res, err);
    if (rc) return rc;
    ts_network_u128 *used = ts_calloc((size_t)res->nrows + 1, sizeof(*used));
    size_t nu = 0;
    for (int i = 0; i < res->nrows; i++) {
        int v;
        if (ts_network_ip_parse(ts_db_res_get(res, i, 0), &v, &used[nu]) == 0) nu++;
    }
    ts_db_res_free(res);
    qsort(used, nu, sizeof(*used), ts_network_u128_cmp);
    ts_network_u128 a;
    rc = ts_network_next_free(pools, n, used, nu, &a);
    free(used);
    if (rc) return -TS_ECONFLICT;
    ts_network_ip_format(c.version, a, ip);
    return alloc_insert(tx, ts_network_vs(sub, "id"), ip, net_id, port_id, err);
}

static bool slaac(const json_t *sub)
{
    const char *m = ts_network_vs(sub, "ipv6_address_mode");
    return ts_streq(m, "slaac") || ts_streq(m, "dhcpv6-stateless");
}

static void eui64(const json_t *sub, const char *mac, char ip[46])
{
    struct ts_network_cidr c;
    ts_network_cidr_parse(ts_network_vs(sub, "cidr"), false, &c);
    unsigned int m[6] = {0};
    sscanf(mac, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]);
    ts_network_u128 iid = 0;
    unsigned int bytes[8] = {m[0] ^ 2u, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]};
    for (int i = 0; i < 8; i++) iid = (iid << 8) | (bytes[i] & 0xff);
    ts_network_ip_format(6, c.net | iid, ip);
}

int ts_network_ipam_allocate(struct ts_db_conn *tx, struct ts_http_req *req, const char *net_id, const char *port_id,
                             const char *mac, const json_t *fixed_ips, bool router_port, json_t **out,
                             struct ts_err *err)
{
    (void)req;
    json_t *subs = NULL, *res = json_array();
    int rc = ts_network_load_where(tx, &ts_network_k_subnet, "network_id", net_id, &subs, err);
    if (rc) goto out;
    size_t i;
    json_t *s;
    char ip[46];
    if (!fixed_ips) {
        bool v4_any = false, v4_done = false, v6_done = false;
        json_array_foreach(subs, i, s) {
            int version = (int)json_integer_value(json_object_get(s, "ip_version"));
            if (version == 4) {
                v4_any = true;
                if (v4_done) continue;
                rc = alloc_next(tx, s, net_id, port_id, ip, err);
                if (rc == -TS_ECONFLICT && !err->type[0]) continue;
                if (rc) goto out;
                v4_done = true;
            } else if (slaac(s) && !router_port) {
                eui64(s, mac, ip);
                if ((rc = alloc_insert(tx, ts_network_vs(s, "id"), ip, net_id, port_id, err))) goto out;
            } else {
                if (v6_done) continue;
                rc = alloc_next(tx, s, net_id, port_id, ip, err);
                if (rc == -TS_ECONFLICT && !err->type[0]) continue;
                if (rc) goto out;
                v6_done = true;
            }
            json_array_append_new(res, json_pack("{s:s,s:s}", "subnet_id", ts_network_vs(s, "id"), "ip_address", ip));
        }
        if (v4_any && !v4_done) {
            rc = ts_network_conflict(err, "IpAddressGenerationFailure", "No more IP addresses available on network %s.", net_id);
            goto out;
        }
        rc = 0;
        goto out;
    }
    if (!json_is_array(fixed_ips)) {
        rc = ts_network_bad(err, "Invalid input for fixed_ips. Reason: not a list.");
        goto out;
    }
    json_t *f;
    json_array_foreach(fixed_ips, i, f) {
        if (!json_is_object(f)) {
            rc = ts_network_bad(err, "Invalid input for fixed_ips. Reason: not a list of {subnet_id, ip_address}.");
            goto out;
        }
        const char *sid = ts_network_vs(f, "subnet_id"), *want = ts_network_vs(f, "ip_address");
        if (!sid && !want) {
            rc = ts_network_bad(err, "Invalid input for fixed_ips. Reason: subnet_id or ip_address required.");
            goto out;
        }
        int wv = 0;
        ts_network_u128 wa = 0;
        if (want && ts_network_ip_parse(want, &wv, &wa)) {
            rc = ts_network_bad(err, "Invalid input for fixed_ips. Reason: '%s' is not a valid IP address.", want);
            goto out;
        }
        json_t *sub = NULL;
        size_t j;
        json_array_foreach(subs, j, s) {
            if (sid ? ts_streq(ts_network_vs(s, "id"), sid) : true) {
                struct ts_network_cidr c;
                ts_network_cidr_parse(ts_network_vs(s, "cidr"), false, &c);
                if (want && !ts_network_cidr_contains(&c, wv, wa)) {
                    if (sid) {
                        rc = ts_network_bad(err, "Invalid input for operation: IP address %s is not a valid IP for the specified subnet.", want);
                        goto out;
                    }
                    continue;
                }
                sub = s;
                break;
            }
        }
        if (!sub) {
            if (sid) rc = ts_network_bad(err, "Invalid input for operation: Failed to create port on network %s, because fixed_ips included invalid subnet %s.", net_id, sid);
            else rc = ts_network_bad(err, "Invalid input for operation: IP address %s is not a valid IP for any subnet on network %s.", want, net_id);
            goto out;
        }
        if (want) {
            struct ts_network_cidr c;
            ts_network_cidr_parse(ts_network_vs(sub, "cidr"), false, &c);
            if (wa == ts_network_cidr_first(&c) || (c.version == 4 && c.prefix < 31 && wa == ts_network_cidr_last(&c))) {
                rc = ts_network_bad(err, "Invalid input for operation: IP address %s is not a valid IP for the specified subnet.", want);
                goto out;
            }
            ts_network_ip_format(wv, wa, ip);
            if (ts_streq(ts_network_vs(sub, "gateway_ip"), ip) && !router_port) {
                rc = ts_network_conflict(err, "IpAddressInUse", "Unable to complete operation for network %s. The IP address %s is in use.", net_id, ip);
                goto out;
            }
            if ((rc = alloc_insert(tx, ts_network_vs(sub, "id"), ip, net_id, port_id, err))) {
                if (rc == -TS_ECONFLICT)
                    ts_network_conflict(err, "IpAddressInUse", "Unable to complete operation for network %s. The IP address %s is in use.", net_id, ip);
                goto out;
            }
        } else if (slaac(sub) && !router_port) {
            eui64(sub, mac, ip);
            if ((rc = alloc_insert(tx, ts_network_vs(sub, "id"), ip, net_id, port_id, err))) goto out;
        } else {
            rc = alloc_next(tx, sub, net_id, port_id, ip, err);
            if (rc == -TS_ECONFLICT && !err->type[0]) {
                rc = ts_network_conflict(err, "IpAddressGenerationFailure", "No more IP addresses available for subnet %s.", ts_network_vs(sub, "id"));
            }
            if (rc) goto out;
        }
        json_array_append_new(res, json_pack("{s:s,s:s}", "subnet_id", ts_network_vs(sub, "id"), "ip_address", ip));
    }
    rc = 0;
out:
    json_decref(subs);
    if (rc) json_decref(res);
    else *out = res;
    return rc;
}

int ts_network_ipam_release(struct ts_db_conn *tx, const char *port_id, struct ts_err *err)
{
    return ts_db_tx_exec(tx, "DELETE FROM ipallocs WHERE port_id = ?", TS_DB_ARGS(TS_DB_S(port_id)), NULL, err);
}
