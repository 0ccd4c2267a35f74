/*
 * ts_network_sg.c: security groups and their rules. Each project gets a "default" group on
 * first use (the default_sgs table's primary key makes that exactly-once under
 * concurrency) with Neutron's default rules: egress IPv4/IPv6 to anywhere and ingress
 * from members of the same group. Rules validate protocol names/numbers, port ranges,
 * ICMP type/code, remote prefix vs ethertype and refuse duplicates.
 */
#include "network/ts_network_int.h"

#include <stdlib.h>
#include <string.h>

static json_t *rule_view(const char *sg_id, const char *project, const char *direction, const char *ethertype,
                         const char *remote_group)
{
    char id[TS_UUID_LEN + 1], t[32];
    ts_uuid(id);
    ts_network_now_iso(t);
    json_t *r = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:n,s:n,s:n,s:n,s:n,s:n,s:s,s:s,s:s,s:i}", "id", id,
                          "security_group_id", sg_id, "project_id", project, "tenant_id", project, "direction",
                          direction, "ethertype", ethertype, "protocol", "port_range_min", "port_range_max",
                          "remote_ip_prefix", "remote_group_id", "remote_address_group_id", "description", "",
                          "created_at", t, "updated_at", t, "revision_number", 0);
    if (remote_group) json_object_set_new(r, "remote_group_id", json_string(remote_group));
    return r;
}

/* creates the group row and its default rules inside tx */
static int sg_insert(struct ts_db_conn *tx, json_t *sg, bool is_default, struct ts_err *err)
{
    const char *id = ts_network_vs(sg, "id"), *project = ts_network_vs(sg, "project_id");
    int rc = ts_network_save(tx, &ts_network_k_sg, sg, true, err);
    if (rc) return rc;
    static const char *const eth[] = {"IPv4", "IPv6"};
    for (int i = 0; i < 2; i++) {
        json_t *r = rule_view(id, project, "egress", eth[i], NULL);
        rc = ts_network_save(tx, &ts_network_k_sgr, r, true, err);
        json_decref(r);
        if (rc) return rc;
        if (!is_default) continue;
        r = rule_view(id, project, "ingress", eth[i], id);
        rc = ts_network_save(tx, &ts_network_k_sgr, r, true, err);
        json_decref(r);
        if (rc) return rc;
    }
    return 0;
}

static json_t *sg_new(const char *project, const char *name, const char *desc)
{
    char id[TS_UUID_LEN + 1], t[32];
    ts_uuid(id);
    ts_network_now_iso(t);
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:[],s:b,s:b}", "id", id, "name", name, "description", desc,
                     "project_id", project, "tenant_id", project, "created_at", t, "updated_at", t,
                     "revision_number", 0, "tags", "stateful", 1, "shared", 0);
}

int ts_network_default_sg(struct ts_network_svc *svc, const char *project, char id[37], struct ts_err *err)
{
    struct ts_db_res *res = NULL;
    int rc = ts_db_exec(svc->db, "SELECT sg_id FROM default_sgs WHERE project_id = ?", TS_DB_ARGS(TS_DB_S(project)),
                        &res, err);
    if (rc) return rc;
    if (res->nrows) {
        snprintf(id, 37, "%s", ts_db_res_get(res, 0, 0));
        ts_db_res_free(res);
        return 0;
    }
    ts_db_res_free(res);
    json_t *sg = sg_new(project, "default", "Default security group");
    struct ts_db_conn *tx = NULL;
    if ((rc = ts_db_begin(svc->db, &tx, err))) goto out;
    rc = ts_db_tx_exec(tx, "INSERT INTO default_sgs (project_id, sg_id) VALUES (?, ?)",
                       TS_DB_ARGS(TS_DB_S(project), TS_DB_S(ts_network_vs(sg, "id"))), NULL, err);
    if (rc == -TS_ECONFLICT) {
        /* someone else made it first */
        ts_db_rollback(tx);
        tx = NULL;
        json_decref(sg);
        return ts_network_default_sg(svc, project, id, err);
    }
    if (rc) goto out;
    if ((rc = sg_insert(tx, sg, true, err))) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    snprintf(id, 37, "%s", ts_network_vs(sg, "id"));
    ts_network_sg_attach_rules(svc, sg, NULL);
    ts_network_notify(svc, &ts_network_k_sg, "create.end", sg);
out:
    ts_db_rollback(tx);
    json_decref(sg);
    return rc;
}

int ts_network_sg_attach_rules(struct ts_network_svc *svc, json_t *sg, struct ts_err *err)
{
    struct ts_db_res *res = NULL;
    int rc = ts_db_exec(svc->db, "SELECT body FROM objects WHERE kind = 'security_group_rule' AND ref_id = ?"
                                 " ORDER BY created_us, id",
                        TS_DB_ARGS(TS_DB_S(ts_network_vs(sg, "id"))), &res, err);
    if (rc) return rc;
    json_t *arr = json_array();
    for (int i = 0; i < res->nrows; i++) {
        json_t *r = json_loads(ts_db_res_get(res, i, 0), 0, NULL);
        if (r) json_array_append_new(arr, r);
    }
    ts_db_res_free(res);
    json_object_set_new(sg, "security_group_rules", arr);
    return 0;
}

static const char *const sg_keys[] = {"name", "description", "project_id", "tenant_id", "stateful", NULL};

int ts_network_h_sg_create(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    int rc = ts_network_check_writer(req, err);
    if (rc) return rc;
    json_t *root, *b, *sg = NULL;
    if ((rc = ts_network_body(req, &ts_network_k_sg, sg_keys, &root, &b, err))) return rc;
    const char *name, *desc;
    if ((rc = ts_network_json_str(b, "name", 255, &name, err))) return rc;
    if ((rc = ts_network_json_str(b, "description", 255, &desc, err))) return rc;
    const char *project = ts_network_req_project(req, b);
    if (ts_streq(name, "default") && !req->auth->is_admin)
        return ts_network_conflict(err, "SecurityGroupDefaultAlreadyExists", "Default security group already exists.");
    char defid[37];
    if ((rc = ts_network_default_sg(svc, project, defid, err))) return rc;
    bool stateful;
    if ((rc = ts_network_json_bool(b, "stateful", true, &stateful, err))) return rc;
    sg = sg_new(project, name ? name : "", desc ? desc : "");
    json_object_set_new(sg, "stateful", json_boolean(stateful));
    struct ts_db_conn *tx = NULL;
    if ((rc = ts_db_begin(svc->db, &tx, err))) goto out;
    if ((rc = ts_network_quota_check(svc, tx, &ts_network_k_sg, project, 1, err))) goto out;
    if ((rc = sg_insert(tx, sg, false, err))) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    ts_network_sg_attach_rules(svc, sg, NULL);
    ts_network_notify(svc, &ts_network_k_sg, "create.end", sg);
    ts_http_resp_json(resp, 201, ts_network_render(req, &ts_network_k_sg, sg));
out:
    ts_db_rollback(tx);
    json_decref(sg);
    return rc;
}

int ts_network_h_sg_update(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    int rc = ts_network_check_writer(req, err);
    if (rc) return rc;
    json_t *root, *b, *sg = NULL;
    static const char *const keys[] = {"name", "description", "stateful", NULL};
    if ((rc = ts_network_body(req, &ts_network_k_sg, keys, &root, &b, err))) return rc;
    struct ts_db_conn *tx = NULL;
    if ((rc = ts_db_begin(svc->db, &tx, err))) return rc;
    if ((rc = ts_network_load_visible(svc, tx, req, &ts_network_k_sg, ts_http_param(req, "id"), &sg, err))) goto out;
    const char *name, *desc;
    if ((rc = ts_network_json_str(b, "name", 255, &name, err))) goto out;
    if ((rc = ts_network_json_str(b, "description", 255, &desc, err))) goto out;
    if (name && ts_streq(ts_network_vs(sg, "name"), "default") && !ts_streq(name, "default")) {
        rc = ts_network_conflict(err, "SecurityGroupCannotUpdateDefault", "Updating default security group not allowed.");
        goto out;
    }
    if (name && ts_streq(name, "default") && !ts_streq(ts_network_vs(sg, "name"), "default")) {
        rc = ts_network_conflict(err, "SecurityGroupDefaultAlreadyExists", "Default security group already exists.");
        goto out;
    }
    if (name) json_object_set_new(sg, "name", json_string(name));
    if (desc) json_object_set_new(sg, "description", json_string(desc));
    if (json_object_get(b, "stateful")) {
        bool st;
        if ((rc = ts_network_json_bool(b, "stateful", true, &st, err))) goto out;
        json_object_set_new(sg, "stateful", json_boolean(st));
    }
    if ((rc = ts_network_save(tx, &ts_network_k_sg, sg, false, err))) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    ts_network_sg_attach_rules(svc, sg, NULL);
    ts_network_notify(svc, &ts_network_k_sg, "update.end", sg);
    ts_http_resp_json(resp, 200, ts_network_render(req, &ts_network_k_sg, sg));
out:
    ts_db_rollback(tx);
    json_decref(sg);
    return rc;
}

int ts_network_h_sg_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    int rc = ts_network_check_writer(req, err);
    if (rc) return rc;
    json_t *sg = NULL, *rules = NULL;
    struct ts_db_conn *tx = NULL;
    const char *id = ts_http_param(req, "id");
    if ((rc = ts_db_begin(svc->db, &tx, err))) return rc;
    if ((rc = ts_network_load_visible(svc, tx, req, &ts_network_k_sg, id, &sg, err))) goto out;
    struct ts_db_res *res = NULL;
    if ((rc = ts_db_tx_exec(tx, "SELECT project_id FROM default_sgs WHERE sg_id = ?", TS_DB_ARGS(TS_DB_S(id)), &res, err)))
        goto out;
    bool is_default = res->nrows > 0;
    ts_db_res_free(res);
    if (is_default && !req->auth->is_admin) {
        rc = ts_network_conflict(err, "SecurityGroupCannotRemoveDefault", "Insufficient rights for removing default security group.");
        goto out;
    }
    /* in use by a port? (the body's security_groups list holds the id as a JSON string) */
    char *pat = ts_asprintf("%%\"%s\"%%", id);
    rc = ts_db_tx_exec(tx, "SELECT COUNT(*) FROM objects WHERE kind = 'port' AND body LIKE ?", TS_DB_ARGS(TS_DB_S(pat)),
                       &res, err);
    free(pat);
    if (rc) goto out;
    int64_t n = ts_db_res_int(res, 0, 0, 0);
    ts_db_res_free(res);
    if (n > 0) {
        json_t *ports = NULL;
        /* LIKE is a prefilter: confirm on the parsed list */
        n = 0;
        if ((rc = ts_db_tx_exec(tx, "SELECT body FROM objects WHERE kind = 'port'", NULL, 0, &res, err))) goto out;
        for (int i = 0; i < res->nrows && !n; i++) {
            ports = json_loads(ts_db_res_get(res, i, 0), 0, NULL);
            size_t j;
            json_t *e;
            json_array_foreach(json_object_get(ports, "security_groups"), j, e) if (ts_streq(json_string_value(e), id)) n = 1;
            json_decref(ports);
        }
        ts_db_res_free(res);
        if (n) {
            rc = ts_network_conflict(err, "SecurityGroupInUse", "Security Group %s in use.", id);
            goto out;
        }
    }
    if ((rc = ts_db_tx_exec(tx, "DELETE FROM objects WHERE kind = 'security_group_rule' AND ref_id = ?",
                            TS_DB_ARGS(TS_DB_S(id)), NULL, err)))
        goto out;
    if ((rc = ts_db_tx_exec(tx, "DELETE FROM default_sgs WHERE sg_id = ?", TS_DB_ARGS(TS_DB_S(id)), NULL, err))) goto out;
    if ((rc = ts_network_delete_obj(tx, id, err))) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    ts_network_notify(svc, &ts_network_k_sg, "delete.end", sg);
    ts_http_resp_no_body(resp, 204, 0);
out:
    ts_db_rollback(tx);
    json_decref(sg);
    json_decref(rules);
    return rc;
}

/* ---- rules ---- */

static const struct {
    const char *name;
    int num;
} protocols[] = {{"ah", 51},      {"dccp", 33},     {"egp", 8},        {"esp", 50},       {"gre", 47},
                 {"icmp", 1},     {"icmpv6", 58},   {"igmp", 2},       {"ipip", 4},       {"ipv6-encap", 41},
                 {"ipv6-frag", 44}, {"ipv6-icmp", 58}, {"ipv6-nonxt", 59}, {"ipv6-opts", 60}, {"ipv6-route", 43},
                 {"ospf", 89},    {"pgm", 113},     {"rsvp", 46},      {"sctp", 132},     {"tcp", 6},
                 {"udp", 17},     {"udplite", 136}, {"vrrp", 112}};

/* protocol number or -1 for "any"; -2 for invalid */
static int proto_num(const char *p)
{
    if (!p || !*p || ts_streq(p, "any")) return -1;
    for (size_t i = 0; i < sizeof(protocols) / sizeof(protocols[0]); i++)
        if (ts_strcaseeq(protocols[i].name, p)) return protocols[i].num;
    int64_t n;
    if (ts_parse_int64(p, &n) == 0 && n >= 0 && n <= 255) return (int)n;
    return -2;
}

void ts_network_sgr_key(const json_t *rule, char *out, size_t n)
{
    /* what the duplicate check compares: null and absent alike, protocols by number */
    char pmin[24] = "", pmax[24] = "";
    json_t *a = json_object_get(rule, "port_range_min"), *b = json_object_get(rule, "port_range_max");
    if (json_is_integer(a)) snprintf(pmin, sizeof(pmin), "%lld", (long long)json_integer_value(a));
    if (json_is_integer(b)) snprintf(pmax, sizeof(pmax), "%lld", (long long)json_integer_value(b));
    const char *rp = ts_network_vs(rule, "remote_ip_prefix"), *rg = ts_network_vs(rule, "remote_group_id");
    const char *d = ts_network_vs(rule, "direction"), *e = ts_network_vs(rule, "ethertype");
    snprintf(out, n, "sgr|%s|%s|%s|%d|%s|%s|%s|%s", ts_network_vs(rule, "security_group_id") ? ts_network_vs(rule, "security_group_id") : "", d ? d : "",
             e ? e : "", proto_num(ts_network_vs(rule, "protocol")), pmin, pmax, rp ? rp : "", rg ? rg : "");
}

static const char *const rule_keys[] = {"security_group_id", "direction", "ethertype", "protocol", "port_range_min",
                                        "port_range_max", "remote_ip_prefix", "remote_group_id",
                                        "remote_address_group_id", "description", "project_id", "tenant_id", NULL};

static int get_port(const json_t *b, const char *key, bool *has, int64_t *out, struct ts_err *err)
{
    json_t *v = json_object_get(b, key);
    *has = false;
    if (!v || json_is_null(v)) return 0;
    if (json_is_integer(v)) *out = json_integer_value(v);
    else if (!json_is_string(v) || ts_parse_int64(json_string_value(v), out))
        return ts_network_bad(err, "Invalid input for %s. Reason: '%s' is not a valid port number.", key, json_is_string(v) ? json_string_value(v) : "?");
    *has = true;
    return 0;
}

int ts_network_h_sgr_create(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    int rc = ts_network_check_writer(req, err);
    if (rc) return rc;
    json_t *root, *b, *sg = NULL, *r = NULL;
    struct ts_db_res *dup = NULL;
    if ((rc = ts_network_body(req, &ts_network_k_sgr, rule_keys, &root, &b, err))) return rc;
    const char *sg_id = ts_network_vs(b, "security_group_id"), *dir = ts_network_vs(b, "direction");
    const char *eth = ts_network_vs(b, "ethertype"), *rprefix = ts_network_vs(b, "remote_ip_prefix");
    const char *rgroup = ts_network_vs(b, "remote_group_id"), *desc = ts_network_vs(b, "description");
    json_t *pj = json_object_get(b, "protocol");
    char pbuf[32];
    const char *proto = NULL;
    if (json_is_integer(pj)) {
        snprintf(pbuf, sizeof(pbuf), "%lld", (long long)json_integer_value(pj));
        proto = pbuf;
    } else if (json_is_string(pj)) {
        proto = json_string_value(pj);
    } else if (pj && !json_is_null(pj)) {
        return ts_network_bad(err, "Security group rule protocol is not supported.");
    }
    if (!sg_id) return ts_network_bad(err, "Failed to parse request. Required attribute 'security_group_id' not specified");
    if (!ts_streq(dir, "ingress") && !ts_streq(dir, "egress"))
        return ts_network_bad(err, "Invalid input for direction. Reason: '%s' is not in ['ingress', 'egress'].", dir ? dir : "None");
    if (!eth) eth = "IPv4";
    if (!ts_streq(eth, "IPv4") && !ts_streq(eth, "IPv6"))
        return ts_network_bad(err, "Invalid input for ethertype. Reason: '%s' is not in ['IPv4', 'IPv6'].", eth);
    int pn = proto_num(proto);
    if (pn == -2)
        return ts_network_bad(err, "Security group rule protocol %s not supported. Only protocol values [None, ah, dccp, egp, esp, gre, icmp, icmpv6, igmp, ipip, ipv6-encap, ipv6-frag, ipv6-icmp, ipv6-nonxt, ipv6-opts, ipv6-route, ospf, pgm, rsvp, sctp, tcp, udp, udplite, vrrp] and integer representations [0 to 255] are supported.", proto);
    if (pn == -1) proto = NULL;
    if ((pn == 1 || pn == 58) && proto && ts_streq(eth, "IPv4") && pn == 58)
        return ts_network_bad(err, "Security group rule for ethertype 'IPv4' not supported. Allowed ethertypes are IPv6.");
    bool hmin, hmax;
    int64_t pmin = 0, pmax = 0;
    if ((rc = get_port(b, "port_range_min", &hmin, &pmin, err)) || (rc = get_port(b, "port_range_max", &hmax, &pmax, err)))
        return rc;
    if ((hmin && (pmin < 0 || pmin > 65535)) || (hmax && (pmax < 0 || pmax > 65535)))
        return ts_network_bad(err, "Invalid value for port %lld.", (long long)(hmin && (pmin < 0 || pmin > 65535) ? pmin : pmax));
    if (hmin || hmax) {
        if (pn == 6 || pn == 17 || pn == 132 || pn == 33 || pn == 136) {
            if (hmin && !hmax) pmax = pmin, hmax = true;
            if ((hmin && pmin == 0) || pmax == 0) return ts_network_bad(err, "Invalid value for port 0.");
            if (!hmin || pmin > pmax)
                return ts_network_bad(err, "For TCP/UDP protocols, port_range_min must be <= port_range_max");
        } else if (pn == 1 || pn == 58) {
            if (hmin && pmin > 255)
                return ts_network_bad(err, "Invalid value for ICMP type (port_range_min): %lld. It must be 0 to 255.", (long long)pmin);
            if (hmax && pmax > 255)
                return ts_network_bad(err, "Invalid value for ICMP code (port_range_max): %lld. It must be 0 to 255.", (long long)pmax);
            if (hmax && !hmin)
                return ts_network_bad(err, "ICMP code (port-range-max) %lld is provided but ICMP type (port-range-min) is missing.", (long long)pmax);
        } else {
            return ts_network_bad(err, "Invalid input for operation: Port ranges are only supported for protocols tcp, udp, sctp, dccp, udplite, icmp and icmpv6 (got %s).", proto ? proto : "any");
        }
    }
    if (rprefix && rgroup)
        return ts_network_bad(err, "Only remote_ip_prefix or remote_group_id may be provided.");
    char norm[50];
    if (rprefix) {
        struct ts_network_cidr c;
        int v;
        ts_network_u128 a;
        if (ts_network_cidr_parse(rprefix, false, &c)) {
            if (ts_network_ip_parse(rprefix, &v, &a))
                return ts_network_bad(err, "Invalid input for remote_ip_prefix. Reason: '%s' is not a valid IP subnet.", rprefix);
            c.version = v, c.net = a, c.prefix = v == 4 ? 32 : 128;
        }
        if ((c.version == 4) != ts_streq(eth, "IPv4"))
            return ts_network_bad(err, "Conflicting value ethertype %s for CIDR %s", eth, rprefix);
        ts_network_cidr_format(&c, norm);
        rprefix = norm;
    }
    struct ts_db_conn *tx = NULL;
    if ((rc = ts_db_begin(svc->db, &tx, err))) return rc;
    if ((rc = ts_network_load_visible(svc, tx, req, &ts_network_k_sg, sg_id, &sg, err))) goto out;
    if (rgroup) {
        json_t *g = NULL;
        if ((rc = ts_network_load_visible(svc, tx, req, &ts_network_k_sg, rgroup, &g, err))) goto out;
        json_decref(g);
    }
    const char *project = ts_network_vs(sg, "project_id");
    r = rule_view(sg_id, project, dir, eth, rgroup);
    if (proto) json_object_set_new(r, "protocol", json_string(proto));
    if (hmin) json_object_set_new(r, "port_range_min", json_integer(pmin));
    if (hmax) json_object_set_new(r, "port_range_max", json_integer(pmax));
    ts_json_set_str(r, "remote_ip_prefix", rprefix);
    if (desc) json_object_set_new(r, "description", json_string(desc));
    /* duplicates: the rule's normalised identity is a unique column, so this is one index
     * lookup; the insert's unique key still answers a racing duplicate (PostgreSQL) */
    char key[512];
    ts_network_sgr_key(r, key, sizeof(key));
    if ((rc = ts_db_tx_exec(tx, "SELECT id FROM objects WHERE uniq = ?", TS_DB_ARGS(TS_DB_S(key)), &dup, err))) goto out;
    if (dup->nrows) {
        rc = ts_network_conflict(err, "SecurityGroupRuleExists", "Security group rule already exists. Rule id is %s.",
                                 ts_db_res_get(dup, 0, 0));
        goto out;
    }
    if ((rc = ts_network_quota_check(svc, tx, &ts_network_k_sgr, project, 1, err))) goto out;
    if ((rc = ts_network_save(tx, &ts_network_k_sgr, r, true, err))) {
        if (rc == -TS_ECONFLICT)
            rc = ts_network_conflict(err, "SecurityGroupRuleExists", "Security group rule already exists.");
        goto out;
    }
    /* the group's revision moves with its rules */
    if ((rc = ts_network_touch(tx, sg, err))) goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    ts_network_notify(svc, &ts_network_k_sgr, "create.end", r);
    ts_http_resp_json(resp, 201, ts_network_render(req, &ts_network_k_sgr, r));
out:
    ts_db_rollback(tx);
    json_decref(sg);
    json_decref(r);
    ts_db_res_free(dup);
    return rc;
}

int ts_network_h_sgr_update(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    (void)req, (void)resp;
    return ts_err_set_full(err, TS_EMETHOD, 405, "HTTPMethodNotAllowed", "Security group rules cannot be updated.");
}

int ts_network_h_sgr_delete(struct ts_http_req *req, struct ts_http_resp *resp, struct ts_err *err)
{
    struct ts_network_svc *svc = req->svc;
    int rc = ts_network_check_writer(req, err);
    if (rc) return rc;
    json_t *r = NULL, *sg = NULL;
    struct ts_db_conn *tx = NULL;
    const char *id = ts_http_param(req, "id");
    if ((rc = ts_db_begin(svc->db, &tx, err))) return rc;
    if ((rc = ts_network_load_visible(svc, tx, req, &ts_network_k_sgr, id, &r, err))) goto out;
    if ((rc = ts_network_delete_obj(tx, id, err))) goto out;
    if (ts_network_load(tx, &ts_network_k_sg, ts_network_vs(r, "security_group_id"), &sg, NULL) == 0 &&
        (rc = ts_network_touch(tx, sg, err)))
        goto out;
    rc = ts_db_commit(tx, err);
    tx = NULL;
    if (rc) goto out;
    ts_network_notify(svc, &ts_network_k_sgr, "delete.end", r);
    ts_http_resp_no_body(resp, 204, 0);
out:
    ts_db_rollback(tx);
    json_decref(r);
    json_decref(sg);
    return rc;
}
