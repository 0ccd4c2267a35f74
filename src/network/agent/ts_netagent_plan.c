/*
 * ts_netagent_plan.c: the agent's pure planning functions: device and namespace names from
 * resource ids, the dnsmasq command line of a network (DHCPv4 and DHCPv6), the radvd
 * configuration of a router, and the iptables-restore / ip6tables-restore texts for router NAT
 * (floating IPs, gateway SNAT), the metadata REDIRECT and the security-group chains. Nothing
 * here runs a command, so the unit tests check exact outputs. Every value that comes from
 * the API is checked against a strict character set before it lands in a rule or an argument.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/ts_json.h"
#include "network/agent/ts_netagent_int.h"

void ts_netagent_ifname(char out[TS_NETAGENT_IFNAME], const char *prefix, const char *id)
{
    snprintf(out, TS_NETAGENT_IFNAME, "%s%.11s", prefix, id ? id : "");
}

json_t *ts_netagent_find(const json_t *state, const char *list, const char *id)
{
    size_t i;
    json_t *v;
    if (!id) return NULL;
    json_array_foreach(json_object_get(state, list), i, v) {
        if (ts_streq(ts_json_str(v, "id", NULL), id)) return v;
    }
    return NULL;
}

bool ts_netagent_is_v4(const char *addr)
{
    struct in_addr a;
    return addr && strlen(addr) < 16 && inet_pton(AF_INET, addr, &a) == 1;
}

/* "a.b.c.d/n" (IPv4 only): prefix length, or -1. net (16 bytes) gets the address part. */
static int cidr_split(const char *cidr, char net[16])
{
    if (!cidr) return -1;
    const char *slash = strchr(cidr, '/');
    if (!slash || slash - cidr >= 16) return -1;
    memcpy(net, cidr, (size_t)(slash - cidr));
    net[slash - cidr] = 0;
    if (!ts_netagent_is_v4(net)) return -1;
    int64_t n;
    if (ts_parse_int64(slash + 1, &n) < 0 || n < 0 || n > 32) return -1;
    return (int)n;
}

int ts_netagent_prefixlen(const char *cidr)
{
    char net[16];
    return cidr_split(cidr, net);
}

bool ts_netagent_mask(int prefixlen, char out[16])
{
    if (prefixlen < 0 || prefixlen > 32) return false;
    uint32_t m = prefixlen ? htonl(0xffffffffu << (32 - prefixlen)) : 0;
    struct in_addr a = {.s_addr = m};
    return inet_ntop(AF_INET, &a, out, 16) != NULL;
}

static bool valid_cidr4(const char *s)
{
    return ts_netagent_prefixlen(s) >= 0;
}

static bool valid_mac(const char *s);

bool ts_netagent_is_v6(const char *addr)
{
    struct in6_addr a;
    return addr && strlen(addr) < 46 && inet_pton(AF_INET6, addr, &a) == 1;
}

/* "fd00::/64" (IPv6 only): prefix length, or -1; net (46 bytes, may be NULL) gets the
 * address part in canonical form. */
static int cidr6_split(const char *cidr, char *net)
{
    char addr[46];
    if (!cidr) return -1;
    const char *slash = strchr(cidr, '/');
    if (!slash || slash - cidr >= 46) return -1;
    memcpy(addr, cidr, (size_t)(slash - cidr));
    addr[slash - cidr] = 0;
    struct in6_addr a;
    if (inet_pton(AF_INET6, addr, &a) != 1) return -1;
    int64_t n;
    if (ts_parse_int64(slash + 1, &n) < 0 || n < 0 || n > 128) return -1;
    if (net && !inet_ntop(AF_INET6, &a, net, 46)) return -1;
    return (int)n;
}

int ts_netagent_prefixlen6(const char *cidr)
{
    return cidr6_split(cidr, NULL);
}

static bool valid_cidr6(const char *s)
{
    return cidr6_split(s, NULL) >= 0;
}

bool ts_netagent_lla(const char *mac, char out[46])
{
    unsigned int m[6];
    if (!valid_mac(mac) || sscanf(mac, "%2x:%2x:%2x:%2x:%2x:%2x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6)
        return false;
    struct in6_addr a = {{{0xfe, 0x80}}};
    unsigned char iid[8] = {(unsigned char)(m[0] ^ 2u), (unsigned char)m[1], (unsigned char)m[2], 0xff, 0xfe,
                            (unsigned char)m[3], (unsigned char)m[4], (unsigned char)m[5]};
    memcpy(&a.s6_addr[8], iid, 8);
    return inet_ntop(AF_INET6, &a, out, 46) != NULL;
}

static bool valid_mac(const char *s)
{
    if (!s || strlen(s) != 17) return false;
    for (int i = 0; i < 17; i++) {
        char c = s[i];
        if (i % 3 == 2 ? c != ':'
                       : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

bool ts_netagent_port_is_vif(const json_t *port, const char *host)
{
    const char *owner = ts_json_str(port, "device_owner", "");
    const char *h = ts_json_str(port, "binding:host_id", "");
    return ts_startswith(owner, "compute:") && host && ts_streq(h, host) && ts_json_str(port, "id", NULL) &&
           valid_mac(ts_json_str(port, "mac_address", NULL));
}

static const json_t *subnet_of(const json_t *state, const char *id)
{
    return ts_netagent_find(state, "subnets", id);
}

/* The port's IPv4 address on subnet_id, or NULL. */
static const char *port_ip_on(const json_t *port, const char *subnet_id)
{
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(port, "fixed_ips"), i, f) {
        const char *ip = ts_json_str(f, "ip_address", NULL);
        if (ts_streq(ts_json_str(f, "subnet_id", NULL), subnet_id) && ts_netagent_is_v4(ip)) return ip;
    }
    return NULL;
}

/* The port's IPv6 address on subnet_id (canonical, into out[46]), or NULL. */
static const char *port_ip6_on(const json_t *port, const char *subnet_id, char out[46])
{
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(port, "fixed_ips"), i, f) {
        const char *ip = ts_json_str(f, "ip_address", NULL);
        struct in6_addr a;
        if (ts_streq(ts_json_str(f, "subnet_id", NULL), subnet_id) && ts_netagent_is_v6(ip) &&
            inet_pton(AF_INET6, ip, &a) == 1 && inet_ntop(AF_INET6, &a, out, 46))
            return out;
    }
    return NULL;
}

static void push(json_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void push(json_t *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = ts_vasprintf(fmt, ap);
    va_end(ap);
    json_array_append_new(a, json_string(s));
    free(s);
}

static bool dhcp_subnet(const json_t *sn, const char *net_id)
{
    return ts_streq(ts_json_str(sn, "network_id", NULL), net_id) && ts_json_int(sn, "ip_version", 4) == 4 &&
           ts_json_bool(sn, "enable_dhcp", true) && valid_cidr4(ts_json_str(sn, "cidr", NULL)) &&
           ts_json_str(sn, "id", NULL);
}

bool ts_netagent_dhcp6_subnet(const json_t *sn)
{
    const char *am = ts_json_str(sn, "ipv6_address_mode", NULL), *ra = ts_json_str(sn, "ipv6_ra_mode", NULL);
    /* as Neutron's DHCP agent: stateful and stateless are served, and so is a subnet with
     * neither mode (static, as before the modes existed); SLAAC needs nothing from DHCP */
    bool mode = ts_streq(am, "dhcpv6-stateful") || ts_streq(am, "dhcpv6-stateless") || (!am && !ra);
    return ts_json_int(sn, "ip_version", 4) == 6 && ts_json_bool(sn, "enable_dhcp", true) && mode &&
           valid_cidr6(ts_json_str(sn, "cidr", NULL)) && ts_json_str(sn, "id", NULL);
}

static bool dhcp6_subnet(const json_t *sn, const char *net_id)
{
    return ts_streq(ts_json_str(sn, "network_id", NULL), net_id) && ts_netagent_dhcp6_subnet(sn);
}

/* Stateful (or mode-less) IPv6 subnets get an address per port in the hosts file. */
static bool dhcp6_stateful(const json_t *sn)
{
    return !ts_streq(ts_json_str(sn, "ipv6_address_mode", NULL), "dhcpv6-stateless");
}

json_t *ts_netagent_dnsmasq_argv(const json_t *state, const char *net_id, const json_t *dhcp_port,
                                 const char *iface, const char *dir)
{
    json_t *a = json_array();
    size_t i, j;
    json_t *sn;
    int nranges = 0;

    push(a, "dnsmasq");
    push(a, "--conf-file=/dev/null");
    push(a, "--no-hosts");
    push(a, "--no-resolv");
    push(a, "--port=0");
    push(a, "--interface=%s", iface);
    push(a, "--bind-interfaces");
    push(a, "--except-interface=lo");
    push(a, "--pid-file=%s/pid", dir);
    push(a, "--dhcp-leasefile=%s/leases", dir);
    push(a, "--log-facility=%s/log", dir);
    push(a, "--log-dhcp");
    /* per-port entries live in a file that a SIGHUP reloads: adding a port never restarts
     * dnsmasq (a guest in the middle of its DHCP exchange would miss its lease) */
    push(a, "--dhcp-hostsfile=%s/host", dir);
    json_array_foreach(json_object_get(state, "subnets"), i, sn) {
        if (!dhcp_subnet(sn, net_id)) continue;
        const char *sid = ts_json_str(sn, "id", "");
        char net[16], mask[16];
        int plen = cidr_split(ts_json_str(sn, "cidr", NULL), net);
        if (!ts_netagent_mask(plen, mask)) continue;
        const char *me = port_ip_on(dhcp_port, sid);
        if (!me) continue; /* the DHCP port has no address here: cannot serve it */
        char tag[64];
        snprintf(tag, sizeof(tag), "subnet-%.36s", sid);
        push(a, "--dhcp-range=set:%s,%s,static,%s,86400s", tag, net, mask);
        nranges++;
        const char *gw = ts_json_str(sn, "gateway_ip", NULL);
        bool has_gw = ts_netagent_is_v4(gw);
        if (has_gw) push(a, "--dhcp-option-force=tag:%s,option:router,%s", tag, gw);
        /* option 121: the metadata route to this namespace; as RFC 3442 makes clients
         * ignore option 3 when 121 is present, the default route goes in it too */
        struct ts_buf r;
        ts_buf_init(&r, 8192);
        ts_buf_printf(&r, "--dhcp-option-force=tag:%s,option:classless-static-route,169.254.169.254/32,%s",
                      tag, me);
        json_t *hr;
        json_array_foreach(json_object_get(sn, "host_routes"), j, hr) {
            const char *d = ts_json_str(hr, "destination", NULL), *nh = ts_json_str(hr, "nexthop", NULL);
            if (valid_cidr4(d) && ts_netagent_is_v4(nh)) ts_buf_printf(&r, ",%s,%s", d, nh);
        }
        if (has_gw) ts_buf_printf(&r, ",0.0.0.0/0,%s", gw);
        json_array_append_new(a, json_string(ts_buf_cstr(&r)));
        ts_buf_free(&r);
        json_t *dns = json_object_get(sn, "dns_nameservers");
        if (json_array_size(dns)) {
            struct ts_buf d;
            ts_buf_init(&d, 4096);
            ts_buf_printf(&d, "--dhcp-option-force=tag:%s,option:dns-server", tag);
            int nd = 0;
            json_array_foreach(dns, j, hr) {
                const char *ip = json_string_value(hr);
                if (ts_netagent_is_v4(ip)) {
                    ts_buf_printf(&d, ",%s", ip);
                    nd++;
                }
            }
            if (nd) json_array_append_new(a, json_string(ts_buf_cstr(&d)));
            ts_buf_free(&d);
        }
    }
    json_t *net = ts_netagent_find(state, "networks", net_id);
    int64_t mtu = ts_json_int(net, "mtu", 0);
    if (nranges && mtu >= 576 && mtu <= 65535) push(a, "--dhcp-option-force=option:mtu,%lld", (long long)mtu);
    /* DHCPv6: a static range per stateful subnet (addresses from the hosts file) or
     * stateless one (options only), as Neutron's --dhcp-range=set:tag,prefix,static,plen;
     * Router Advertisements come from the router namespace, never from here */
    json_array_foreach(json_object_get(state, "subnets"), i, sn) {
        if (!dhcp6_subnet(sn, net_id)) continue;
        const char *sid = ts_json_str(sn, "id", "");
        char net6[46], me[46];
        int plen = cidr6_split(ts_json_str(sn, "cidr", NULL), net6);
        if (plen < 0 || !port_ip6_on(dhcp_port, sid, me)) continue;
        char tag[64];
        snprintf(tag, sizeof(tag), "subnet-%.36s", sid);
        push(a, "--dhcp-range=set:%s,%s,static,%d,86400s", tag, net6, plen);
        nranges++;
        struct ts_buf d;
        ts_buf_init(&d, 8192);
        ts_buf_printf(&d, "--dhcp-option-force=tag:%s,option6:dns-server", tag);
        int nd = 0;
        json_t *dv;
        json_array_foreach(json_object_get(sn, "dns_nameservers"), j, dv) {
            const char *ip = json_string_value(dv);
            if (ts_netagent_is_v6(ip)) {
                ts_buf_printf(&d, ",[%s]", ip);
                nd++;
            }
        }
        if (nd) json_array_append_new(a, json_string(ts_buf_cstr(&d)));
        ts_buf_free(&d);
    }
    if (!nranges) {
        json_decref(a);
        return NULL;
    }
    return a;
}

char *ts_netagent_dnsmasq_hosts(const json_t *state, const char *net_id, const json_t *dhcp_port)
{
    struct ts_buf b;
    size_t i, j;
    json_t *sn, *p;
    ts_buf_init(&b, 0);
    json_array_foreach(json_object_get(state, "subnets"), i, sn) {
        if (!dhcp_subnet(sn, net_id)) continue;
        const char *sid = ts_json_str(sn, "id", "");
        char net[16], mask[16];
        if (!ts_netagent_mask(cidr_split(ts_json_str(sn, "cidr", NULL), net), mask)) continue;
        if (!port_ip_on(dhcp_port, sid)) continue; /* no --dhcp-range for it either */
        json_array_foreach(json_object_get(state, "ports"), j, p) {
            if (!ts_streq(ts_json_str(p, "network_id", NULL), net_id)) continue;
            if (ts_streq(ts_json_str(p, "device_owner", ""), "network:dhcp")) continue;
            const char *ip = port_ip_on(p, sid), *mac = ts_json_str(p, "mac_address", NULL);
            if (!ip || !valid_mac(mac)) continue;
            char host[64];
            snprintf(host, sizeof(host), "host-%s", ip);
            for (char *c = host; *c; c++)
                if (*c == '.') *c = '-';
            ts_buf_printf(&b, "%s,%s,%s\n", mac, ip, host);
        }
    }
    /* IPv6: "MAC,[addr],host-fd00--5" per port address on a stateful subnet, as Neutron */
    json_array_foreach(json_object_get(state, "subnets"), i, sn) {
        if (!dhcp6_subnet(sn, net_id) || !dhcp6_stateful(sn)) continue;
        const char *sid = ts_json_str(sn, "id", "");
        char me[46], ip[46];
        if (!port_ip6_on(dhcp_port, sid, me)) continue;
        json_array_foreach(json_object_get(state, "ports"), j, p) {
            if (!ts_streq(ts_json_str(p, "network_id", NULL), net_id)) continue;
            if (ts_streq(ts_json_str(p, "device_owner", ""), "network:dhcp")) continue;
            const char *mac = ts_json_str(p, "mac_address", NULL);
            if (!port_ip6_on(p, sid, ip) || !valid_mac(mac)) continue;
            char host[64];
            snprintf(host, sizeof(host), "host-%s", ip);
            for (char *c = host; *c; c++)
                if (*c == ':' || *c == '.') *c = '-';
            ts_buf_printf(&b, "%s,[%s],%s\n", mac, ip, host);
        }
    }
    char *out = ts_strdup(ts_buf_cstr(&b));
    ts_buf_free(&b);
    return out;
}

char *ts_netagent_dhcp_nat(int meta_port)
{
    return ts_asprintf(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        ":POSTROUTING ACCEPT [0:0]\n"
        "-A PREROUTING -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports %d\n"
        "COMMIT\n",
        meta_port);
}

/* The router's port with this device_owner (first one), or NULL. */
static const json_t *router_port(const json_t *state, const char *router_id, const char *owner, size_t *iter)
{
    json_t *p;
    for (size_t i = iter ? *iter : 0; i < json_array_size(json_object_get(state, "ports")); i++) {
        p = json_array_get(json_object_get(state, "ports"), i);
        if (ts_streq(ts_json_str(p, "device_id", NULL), router_id) &&
            ts_streq(ts_json_str(p, "device_owner", NULL), owner)) {
            if (iter) *iter = i + 1;
            return p;
        }
    }
    return NULL;
}

char *ts_netagent_router_nat(const json_t *state, const char *router_id)
{
    struct ts_buf b;
    ts_buf_init(&b, 1 << 20);
    ts_buf_appends(&b, "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                       ":POSTROUTING ACCEPT [0:0]\n");
    const json_t *router = ts_netagent_find(state, "routers", router_id);
    const json_t *gwp = router_port(state, router_id, "network:router_gateway", NULL);
    const char *gw_ip = NULL;
    char qg[TS_NETAGENT_IFNAME];
    if (gwp) {
        json_t *f = json_array_get(json_object_get(gwp, "fixed_ips"), 0);
        size_t i;
        json_array_foreach(json_object_get(gwp, "fixed_ips"), i, f) {
            if (ts_netagent_is_v4(ts_json_str(f, "ip_address", NULL))) {
                gw_ip = ts_json_str(f, "ip_address", NULL);
                break;
            }
        }
        ts_netagent_ifname(qg, "qg-", ts_json_str(gwp, "id", ""));
    }
    if (router && gw_ip) {
        size_t i;
        json_t *fip;
        json_array_foreach(json_object_get(state, "floatingips"), i, fip) {
            const char *fa = ts_json_str(fip, "floating_ip_address", NULL);
            const char *fx = ts_json_str(fip, "fixed_ip_address", NULL);
            if (!ts_streq(ts_json_str(fip, "router_id", NULL), router_id) ||
                !ts_json_str(fip, "port_id", NULL))
                continue;
            if (!ts_netagent_is_v4(fa) || !ts_netagent_is_v4(fx)) continue;
            ts_buf_printf(&b, "-A PREROUTING -d %s/32 -j DNAT --to-destination %s\n", fa, fx);
            ts_buf_printf(&b, "-A OUTPUT -d %s/32 -j DNAT --to-destination %s\n", fa, fx);
            ts_buf_printf(&b, "-A POSTROUTING -s %s/32 -o %s -j SNAT --to-source %s\n", fx, qg, fa);
        }
        json_t *egi = json_object_get(router, "external_gateway_info");
        if (ts_json_bool(egi, "enable_snat", true)) {
            size_t it = 0;
            const json_t *ip;
            while ((ip = router_port(state, router_id, "network:router_interface", &it))) {
                size_t k;
                json_t *f;
                json_array_foreach(json_object_get(ip, "fixed_ips"), k, f) {
                    const json_t *sn = subnet_of(state, ts_json_str(f, "subnet_id", NULL));
                    const char *cidr = ts_json_str(sn, "cidr", NULL);
                    if (valid_cidr4(cidr))
                        ts_buf_printf(&b, "-A POSTROUTING -s %s -o %s -j SNAT --to-source %s\n", cidr, qg,
                                      gw_ip);
                }
            }
        }
    }
    ts_buf_appends(&b, "COMMIT\n");
    return ts_buf_steal(&b, NULL);
}

/* IPv6 gateway of a router: radvd's configuration, one "interface qr-<port>" block per router
 * interface with an IPv6 subnet whose ipv6_ra_mode is set, as Neutron's L3 agent writes it:
 * slaac and dhcpv6-stateless prefixes autonomous, dhcpv6-stateful ones not (and the managed
 * flag), dhcpv6-stateless the other-config flag; RDNSS from the subnets' IPv6 DNS servers. */
char *ts_netagent_radvd_conf(const json_t *state, const char *router_id)
{
    struct ts_buf b;
    ts_buf_init(&b, 1 << 20);
    int nif = 0;
    size_t it = 0;
    const json_t *p;
    while ((p = router_port(state, router_id, "network:router_interface", &it))) {
        const char *pid = ts_json_str(p, "id", NULL);
        if (!pid) continue;
        struct ts_buf pre;
        ts_buf_init(&pre, 1 << 16);
        bool managed = false, other = false;
        int npre = 0;
        json_t *dns = json_array(), *f, *d;
        size_t i, k;
        json_array_foreach(json_object_get(p, "fixed_ips"), i, f) {
            const json_t *sn = subnet_of(state, ts_json_str(f, "subnet_id", NULL));
            const char *ra = ts_json_str(sn, "ipv6_ra_mode", NULL);
            char net6[46];
            int plen = cidr6_split(ts_json_str(sn, "cidr", NULL), net6);
            if (ts_json_int(sn, "ip_version", 4) != 6 || plen < 0 || !ts_netagent_is_v6(ts_json_str(f, "ip_address", NULL)))
                continue;
            bool slaac = ts_streq(ra, "slaac"), stateless = ts_streq(ra, "dhcpv6-stateless"),
                 stateful = ts_streq(ra, "dhcpv6-stateful");
            if (!slaac && !stateless && !stateful) continue;
            managed |= stateful;
            other |= stateless;
            ts_buf_printf(&pre, "    prefix %s/%d\n    {\n        AdvOnLink on;\n        AdvAutonomous %s;\n    };\n",
                          net6, plen, stateful ? "off" : "on");
            npre++;
            json_array_foreach(json_object_get(sn, "dns_nameservers"), k, d) {
                const char *ip = json_string_value(d);
                bool seen = false;
                size_t m;
                json_t *x;
                json_array_foreach(dns, m, x) seen |= ts_streq(json_string_value(x), ip);
                if (ts_netagent_is_v6(ip) && !seen && json_array_size(dns) < 3) json_array_append_new(dns, json_string(ip));
            }
        }
        if (npre) {
            char qr[TS_NETAGENT_IFNAME];
            ts_netagent_ifname(qr, "qr-", pid);
            ts_buf_printf(&b, "interface %s\n{\n    AdvSendAdvert on;\n    MinRtrAdvInterval 3;\n"
                              "    MaxRtrAdvInterval 10;\n", qr);
            const json_t *net = ts_netagent_find(state, "networks", ts_json_str(p, "network_id", NULL));
            int64_t mtu = ts_json_int(net, "mtu", 0);
            if (mtu >= 1280 && mtu <= 65535) ts_buf_printf(&b, "    AdvLinkMTU %lld;\n", (long long)mtu);
            if (managed) ts_buf_appends(&b, "    AdvManagedFlag on;\n");
            if (other) ts_buf_appends(&b, "    AdvOtherConfigFlag on;\n");
            ts_buf_append(&b, pre.data ? pre.data : "", pre.len);
            if (json_array_size(dns)) {
                ts_buf_appends(&b, "    RDNSS");
                json_array_foreach(dns, i, d) ts_buf_printf(&b, " %s", json_string_value(d));
                ts_buf_appends(&b, " {};\n");
            }
            ts_buf_appends(&b, "};\n");
            nif++;
        }
        json_decref(dns);
        ts_buf_free(&pre);
    }
    if (!nif) {
        ts_buf_free(&b);
        return NULL;
    }
    return ts_buf_steal(&b, NULL);
}

/* ---- security groups ---------------------------------------------------------------- */

static bool port_in_group(const json_t *port, const char *sg)
{
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(port, "security_groups"), i, g) {
        if (ts_streq(json_string_value(g), sg)) return true;
    }
    return false;
}

/* "-A <chain+match> [-s|-d addr] -j RETURN" */
static void add_match_line(struct ts_buf *out, const char *chain_spec, const char *dir_flag, const char *addr)
{
    if (addr)
        ts_buf_printf(out, "-A %s %s %s -j RETURN\n", chain_spec, dir_flag, addr);
    else
        ts_buf_printf(out, "-A %s -j RETURN\n", chain_spec);
}

static bool addr_ok(int family, const char *s)
{
    return family == 6 ? ts_netagent_is_v6(s) : ts_netagent_is_v4(s);
}

static bool cidr_ok(int family, const char *s)
{
    return family == 6 ? valid_cidr6(s) : valid_cidr4(s);
}

/* The rule specs of one SG rule of this family (4: iptables, 6: ip6tables); see
 * ts_netagent_sg_rule_specs. */
static int rule_specs(int family, const json_t *state, const json_t *rule, struct ts_buf *out, const char *chain)
{
    const char *eth = ts_json_str(rule, "ethertype", "IPv4");
    if (!ts_streq(eth, family == 6 ? "IPv6" : "IPv4")) return 0;
    bool ingress = !ts_streq(ts_json_str(rule, "direction", "ingress"), "egress");
    const char *dir_flag = ingress ? "-s" : "-d";
    const char *proto = ts_json_str(rule, "protocol", NULL);
    json_t *pmin_j = json_object_get(rule, "port_range_min"),
           *pmax_j = json_object_get(rule, "port_range_max");
    int64_t pmin = json_is_integer(pmin_j) ? json_integer_value(pmin_j) : -1;
    int64_t pmax = json_is_integer(pmax_j) ? json_integer_value(pmax_j) : -1;
    char spec[128] = "";
    const char *icmp = family == 6 ? "ipv6-icmp" : "icmp";

    if (proto && (ts_streq(proto, "6"))) proto = "tcp";
    if (proto && (ts_streq(proto, "17"))) proto = "udp";
    if (proto && (ts_streq(proto, "1"))) proto = family == 6 ? "1" : "icmp";
    /* Neutron takes "icmp" on an IPv6 rule to mean ICMPv6 */
    if (family == 6 && proto &&
        (ts_streq(proto, "icmp") || ts_streq(proto, "ipv6-icmp") || ts_streq(proto, "icmpv6") || ts_streq(proto, "58")))
        proto = "ipv6-icmp";
    if (!proto || ts_streq(proto, "any") || ts_streq(proto, "")) {
        spec[0] = 0;
    } else if (ts_streq(proto, "tcp") || ts_streq(proto, "udp") || ts_streq(proto, "sctp")) {
        if (pmin > 65535 || pmax > 65535) return 0;
        if (pmin >= 1 && pmax >= pmin && pmax != pmin)
            snprintf(spec, sizeof(spec), " -p %s -m %s --dport %lld:%lld", proto, proto, (long long)pmin,
                     (long long)pmax);
        else if (pmin >= 1)
            snprintf(spec, sizeof(spec), " -p %s -m %s --dport %lld", proto, proto, (long long)pmin);
        else
            snprintf(spec, sizeof(spec), " -p %s", proto);
    } else if (ts_streq(proto, icmp)) {
        const char *m = family == 6 ? "icmp6 --icmpv6-type" : "icmp --icmp-type";
        if (pmin >= 0 && pmin <= 255 && pmax >= 0 && pmax <= 255)
            snprintf(spec, sizeof(spec), " -p %s -m %s %lld/%lld", icmp, m, (long long)pmin, (long long)pmax);
        else if (pmin >= 0 && pmin <= 255)
            snprintf(spec, sizeof(spec), " -p %s -m %s %lld", icmp, m, (long long)pmin);
        else
            snprintf(spec, sizeof(spec), " -p %s", icmp);
    } else {
        int64_t num;
        if (ts_parse_int64(proto, &num) == 0 && num >= 0 && num <= 255)
            snprintf(spec, sizeof(spec), " -p %lld", (long long)num);
        else
            return 0; /* ipv6-icmp on IPv4 and names we do not know: nothing */
    }

    char ch[96];
    snprintf(ch, sizeof(ch), "%s%s", chain, spec);
    const char *prefix = ts_json_str(rule, "remote_ip_prefix", NULL);
    const char *rg = ts_json_str(rule, "remote_group_id", NULL);
    int n = 0;
    if (rg) {
        size_t i, k;
        json_t *p, *f;
        json_array_foreach(json_object_get(state, "ports"), i, p) {
            if (!port_in_group(p, rg)) continue;
            json_array_foreach(json_object_get(p, "fixed_ips"), k, f) {
                const char *ip = ts_json_str(f, "ip_address", NULL);
                if (!addr_ok(family, ip)) continue;
                char a[64];
                snprintf(a, sizeof(a), "%s/%d", ip, family == 6 ? 128 : 32);
                add_match_line(out, ch, dir_flag, a);
                n++;
            }
            json_array_foreach(json_object_get(p, "allowed_address_pairs"), k, f) {
                const char *ip = ts_json_str(f, "ip_address", NULL);
                if (addr_ok(family, ip) || cidr_ok(family, ip)) {
                    add_match_line(out, ch, dir_flag, ip);
                    n++;
                }
            }
        }
    } else if (prefix) {
        if (addr_ok(family, prefix) || cidr_ok(family, prefix)) {
            if (ts_streq(prefix, family == 6 ? "::/0" : "0.0.0.0/0")) prefix = NULL;
            add_match_line(out, ch, dir_flag, prefix);
            n++;
        }
    } else {
        add_match_line(out, ch, dir_flag, NULL);
        n++;
    }
    return n;
}

/* The rules of every security group of port in one direction ("ingress"/"egress"), appended
 * to chain for one family. */
static void group_rules(int family, const json_t *state, const json_t *port, const char *direction,
                        struct ts_buf *b, const char *chain)
{
    size_t i, k;
    json_t *g, *r;
    json_array_foreach(json_object_get(port, "security_groups"), i, g) {
        const json_t *sg = ts_netagent_find(state, "security_groups", json_string_value(g));
        json_array_foreach(json_object_get(sg, "security_group_rules"), k, r) {
            if (ts_streq(ts_json_str(r, "direction", ""), direction)) rule_specs(family, state, r, b, chain);
        }
    }
}

int ts_netagent_sg_rule_specs(const json_t *state, const json_t *rule, struct ts_buf *out, const char *chain)
{
    return rule_specs(4, state, rule, out, chain);
}

int ts_netagent_sg6_rule_specs(const json_t *state, const json_t *rule, struct ts_buf *out, const char *chain)
{
    return rule_specs(6, state, rule, out, chain);
}

static void chain_names(const char *port_id, char in[32], char outc[32], char spoof[32])
{
    snprintf(in, 32, "tsg-i%.11s", port_id);
    snprintf(outc, 32, "tsg-o%.11s", port_id);
    snprintf(spoof, 32, "tsg-s%.11s", port_id);
}

static void port_rules(const json_t *state, const json_t *port, struct ts_buf *b)
{
    const char *id = ts_json_str(port, "id", "");
    const char *mac = ts_json_str(port, "mac_address", "");
    char in[32], outc[32], spoof[32];
    size_t i;
    json_t *f;
    chain_names(id, in, outc, spoof);

    /* to the VM */
    ts_buf_printf(b, "-A %s -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN\n", in);
    ts_buf_printf(b, "-A %s -m conntrack --ctstate INVALID -j DROP\n", in);
    ts_buf_printf(b, "-A %s -p udp -m udp --sport 67 --dport 68 -j RETURN\n", in);
    group_rules(4, state, port, "ingress", b, in);
    ts_buf_printf(b, "-A %s -j DROP\n", in);

    /* anti-spoofing: the port's addresses (and allowed pairs) with its MAC */
    json_array_foreach(json_object_get(port, "fixed_ips"), i, f) {
        const char *ip = ts_json_str(f, "ip_address", NULL);
        if (ts_netagent_is_v4(ip))
            ts_buf_printf(b, "-A %s -s %s/32 -m mac --mac-source %s -j RETURN\n", spoof, ip, mac);
    }
    json_array_foreach(json_object_get(port, "allowed_address_pairs"), i, f) {
        const char *ip = ts_json_str(f, "ip_address", NULL);
        const char *pm = ts_json_str(f, "mac_address", mac);
        if ((ts_netagent_is_v4(ip) || valid_cidr4(ip)) && valid_mac(pm))
            ts_buf_printf(b, "-A %s -s %s -m mac --mac-source %s -j RETURN\n", spoof, ip, pm);
    }
    ts_buf_printf(b, "-A %s -j DROP\n", spoof);

    /* from the VM */
    ts_buf_printf(
        b, "-A %s -s 0.0.0.0/32 -d 255.255.255.255/32 -p udp -m udp --sport 68 --dport 67 -j RETURN\n", outc);
    ts_buf_printf(b, "-A %s -j %s\n", outc, spoof);
    ts_buf_printf(b, "-A %s -p udp -m udp --sport 68 --dport 67 -j RETURN\n", outc);
    ts_buf_printf(b, "-A %s -p udp -m udp --sport 67 --dport 68 -j DROP\n", outc);
    ts_buf_printf(b, "-A %s -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN\n", outc);
    ts_buf_printf(b, "-A %s -m conntrack --ctstate INVALID -j DROP\n", outc);
    group_rules(4, state, port, "egress", b, outc);
    ts_buf_printf(b, "-A %s -j DROP\n", outc);
}

static bool sg_port(const json_t *port, const char *host)
{
    return ts_netagent_port_is_vif(port, host) && ts_json_bool(port, "port_security_enabled", true);
}

/* The tail every chain plan shares (iptables filter, ebtables nat, ip6tables filter): the
 * text for `table` that declares the wanted chains (":<name><decl>", decl being the table
 * tool's policy/counter syntax) and the stale ones no longer wanted, deletes or inserts the
 * jump from hook to chain, appends rules, then deletes those stale chains and commits.
 * Takes chains (to *chains_out, or freed) and frees rules. */
static char *chain_plan(const char *table, const char *decl, const char *hook, const char *chain, json_t *chains,
                        const json_t *stale_chains, bool add_jump, bool remove_jump, struct ts_buf *rules,
                        json_t **chains_out)
{
    struct ts_buf b;
    json_t *gone = json_array(), *c, *w;
    size_t i, k;
    /* the stale chains not wanted any more: found once, declared then deleted */
    json_array_foreach(stale_chains, i, c) {
        bool wanted = false;
        json_array_foreach(chains, k, w) wanted |= json_equal(w, c);
        if (!wanted) json_array_append(gone, c);
    }
    ts_buf_init(&b, 64u << 20);
    ts_buf_printf(&b, "*%s\n", table);
    json_array_foreach(chains, i, c) ts_buf_printf(&b, ":%s%s\n", json_string_value(c), decl);
    json_array_foreach(gone, i, c) ts_buf_printf(&b, ":%s%s\n", json_string_value(c), decl);
    if (remove_jump) ts_buf_printf(&b, "-D %s -j %s\n", hook, chain);
    if (add_jump && !remove_jump) ts_buf_printf(&b, "-I %s 1 -j %s\n", hook, chain);
    ts_buf_append(&b, rules->data ? rules->data : "", rules->len);
    json_array_foreach(gone, i, c) ts_buf_printf(&b, "-X %s\n", json_string_value(c));
    ts_buf_appends(&b, "COMMIT\n");
    ts_buf_free(rules);
    json_decref(gone);
    if (chains_out)
        *chains_out = chains;
    else
        json_decref(chains);
    return ts_buf_steal(&b, NULL);
}

/* The addresses a router advertises from on port's network: the link-local address of each
 * router interface there with an IPv6 address (made from its MAC, as the kernel does). */
static void router_llas(const json_t *state, const json_t *port, json_t *out)
{
    size_t i, k;
    json_t *p, *f;
    json_array_foreach(json_object_get(state, "ports"), i, p) {
        if (!ts_streq(ts_json_str(p, "device_owner", ""), "network:router_interface") ||
            !ts_streq(ts_json_str(p, "network_id", NULL), ts_json_str(port, "network_id", "")))
            continue;
        bool v6 = false;
        json_array_foreach(json_object_get(p, "fixed_ips"), k, f) v6 |=
            ts_netagent_is_v6(ts_json_str(f, "ip_address", NULL));
        char lla[46];
        if (v6 && ts_netagent_lla(ts_json_str(p, "mac_address", NULL), lla)) json_array_append_new(out, json_string(lla));
    }
}

/* The ip6tables chains of a port, as Neutron's iptables firewall builds them for IPv6: what
 * neighbour discovery needs (NS/NA, MLD; conntrack sees these as INVALID, so they come
 * first), Router Advertisements only from the network's routers, DHCPv6 client to server and
 * the replies, the security group's IPv6 rules; anti-spoofing for the fixed IPv6 addresses,
 * the link-local one of the MAC and the allowed pairs; RAs and DHCPv6 server replies sent
 * BY the guest are dropped. */
static void port_rules6(const json_t *state, const json_t *port, struct ts_buf *b)
{
    const char *id = ts_json_str(port, "id", "");
    const char *mac = ts_json_str(port, "mac_address", "");
    char in[32], outc[32], spoof[32], lla[46];
    size_t i;
    json_t *r, *f;
    static const int nd_in[] = {130, 135, 136}, nd_out[] = {130, 131, 132, 133, 135, 136, 143},
                     dad[] = {131, 135, 143};
    chain_names(id, in, outc, spoof);

    /* to the VM */
    for (i = 0; i < sizeof(nd_in) / sizeof(nd_in[0]); i++)
        ts_buf_printf(b, "-A %s -p ipv6-icmp -m icmp6 --icmpv6-type %d -j RETURN\n", in, nd_in[i]);
    json_t *routers = json_array();
    router_llas(state, port, routers);
    json_array_foreach(routers, i, r)
        ts_buf_printf(b, "-A %s -s %s/128 -p ipv6-icmp -m icmp6 --icmpv6-type 134 -j RETURN\n", in,
                      json_string_value(r));
    json_decref(routers);
    /* no other RA, whatever the group allows */
    ts_buf_printf(b, "-A %s -p ipv6-icmp -m icmp6 --icmpv6-type 134 -j DROP\n", in);
    ts_buf_printf(b, "-A %s -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN\n", in);
    ts_buf_printf(b, "-A %s -m conntrack --ctstate INVALID -j DROP\n", in);
    ts_buf_printf(b, "-A %s -p udp -m udp --sport 547 --dport 546 -j RETURN\n", in);
    group_rules(6, state, port, "ingress", b, in);
    ts_buf_printf(b, "-A %s -j DROP\n", in);

    /* anti-spoofing: the port's IPv6 addresses, its link-local one, the allowed pairs */
    json_array_foreach(json_object_get(port, "fixed_ips"), i, f) {
        const char *ip = ts_json_str(f, "ip_address", NULL);
        if (ts_netagent_is_v6(ip))
            ts_buf_printf(b, "-A %s -s %s/128 -m mac --mac-source %s -j RETURN\n", spoof, ip, mac);
    }
    if (ts_netagent_lla(mac, lla))
        ts_buf_printf(b, "-A %s -s %s/128 -m mac --mac-source %s -j RETURN\n", spoof, lla, mac);
    json_array_foreach(json_object_get(port, "allowed_address_pairs"), i, f) {
        const char *ip = ts_json_str(f, "ip_address", NULL);
        const char *pm = ts_json_str(f, "mac_address", mac);
        if (!valid_mac(pm)) continue;
        if (ts_netagent_is_v6(ip) || valid_cidr6(ip))
            ts_buf_printf(b, "-A %s -s %s -m mac --mac-source %s -j RETURN\n", spoof, ip, pm);
        if (!ts_strcaseeq(pm, mac) && ts_netagent_lla(pm, lla))
            ts_buf_printf(b, "-A %s -s %s/128 -m mac --mac-source %s -j RETURN\n", spoof, lla, pm);
    }
    ts_buf_printf(b, "-A %s -j DROP\n", spoof);

    /* from the VM: never a Router Advertisement; DAD and MLD from :: before the source check */
    ts_buf_printf(b, "-A %s -p ipv6-icmp -m icmp6 --icmpv6-type 134 -j DROP\n", outc);
    for (i = 0; i < sizeof(dad) / sizeof(dad[0]); i++)
        ts_buf_printf(b, "-A %s -s ::/128 -d ff02::/16 -p ipv6-icmp -m icmp6 --icmpv6-type %d -j RETURN\n", outc,
                      dad[i]);
    ts_buf_printf(b, "-A %s -j %s\n", outc, spoof);
    for (i = 0; i < sizeof(nd_out) / sizeof(nd_out[0]); i++)
        ts_buf_printf(b, "-A %s -p ipv6-icmp -m icmp6 --icmpv6-type %d -j RETURN\n", outc, nd_out[i]);
    ts_buf_printf(b, "-A %s -p udp -m udp --sport 546 --dport 547 -j RETURN\n", outc);
    ts_buf_printf(b, "-A %s -p udp -m udp --sport 547 --dport 546 -j DROP\n", outc);
    ts_buf_printf(b, "-A %s -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN\n", outc);
    ts_buf_printf(b, "-A %s -m conntrack --ctstate INVALID -j DROP\n", outc);
    group_rules(6, state, port, "egress", b, outc);
    ts_buf_printf(b, "-A %s -j DROP\n", outc);
}

/* The filter plan of one family (4: iptables, 6: ip6tables): same chains, same jumps. */
static char *sg_plan(int family, const json_t *state, const char *host, const char *fwd_chain,
                     const json_t *stale_chains, bool add_jump, bool remove_jump, json_t **chains_out)
{
    struct ts_buf rules;
    json_t *chains = json_array();
    size_t i;
    json_t *p;
    ts_buf_init(&rules, 64u << 20);

    if (!remove_jump) {
        json_array_append_new(chains, json_string(fwd_chain));
        json_array_foreach(json_object_get(state, "ports"), i, p) {
            if (!sg_port(p, host)) continue;
            const char *id = ts_json_str(p, "id", "");
            char in[32], outc[32], spoof[32], tap[TS_NETAGENT_IFNAME];
            chain_names(id, in, outc, spoof);
            ts_netagent_ifname(tap, "tap", id);
            json_array_append_new(chains, json_string(in));
            json_array_append_new(chains, json_string(outc));
            json_array_append_new(chains, json_string(spoof));
            ts_buf_printf(&rules, "-A %s -m physdev --physdev-out %s --physdev-is-bridged -j %s\n", fwd_chain,
                          tap, in);
            ts_buf_printf(&rules, "-A %s -m physdev --physdev-in %s --physdev-is-bridged -j %s\n", fwd_chain,
                          tap, outc);
            if (family == 6)
                port_rules6(state, p, &rules);
            else
                port_rules(state, p, &rules);
        }
        /* what passed the port chains is ours to accept, whatever FORWARD's policy */
        json_array_foreach(json_object_get(state, "networks"), i, p) {
            char br[TS_NETAGENT_IFNAME];
            const char *nid = ts_json_str(p, "id", NULL);
            if (!nid) continue;
            ts_netagent_ifname(br, "brq", nid);
            ts_buf_printf(&rules, "-A %s -o %s -m physdev --physdev-is-bridged -j ACCEPT\n", fwd_chain, br);
        }
    }
    return chain_plan("filter", " - [0:0]", "FORWARD", fwd_chain, chains, stale_chains, add_jump, remove_jump,
                      &rules, chains_out);
}

char *ts_netagent_sg_restore(const json_t *state, const char *host, const char *fwd_chain,
                             const json_t *stale_chains, bool add_jump, bool remove_jump, json_t **chains_out)
{
    return sg_plan(4, state, host, fwd_chain, stale_chains, add_jump, remove_jump, chains_out);
}

char *ts_netagent_sg6_restore(const json_t *state, const char *host, const char *fwd_chain,
                              const json_t *stale_chains, bool add_jump, bool remove_jump, json_t **chains_out)
{
    return sg_plan(6, state, host, fwd_chain, stale_chains, add_jump, remove_jump, chains_out);
}

/* ---- conntrack zones ------------------------------------------------------------------ */

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

json_t *ts_netagent_zones(const json_t *state)
{
    json_t *zones = json_object();
    json_t *nets = json_object_get(state, "networks");
    size_t n = json_array_size(nets), k = 0, i;
    const char **idv = ts_calloc(n ? n : 1, sizeof(*idv));
    json_t *v;
    json_array_foreach(nets, i, v) {
        const char *id = ts_json_str(v, "id", NULL);
        if (id && *id && strlen(id) <= 64) idv[k++] = id;
    }
    qsort(idv, k, sizeof(*idv), cmp_str);
    /* a zone from the id's hash, so it stays the same across passes and restarts; a
     * collision takes the next free number (ids in sorted order decide who moves) */
    unsigned char *used = ts_calloc(TS_NETAGENT_ZONE_MAX + 1, 1);
    for (i = 0; i < k; i++) {
        if (json_object_get(zones, idv[i])) continue;
        uint32_t h = 2166136261u;
        for (const char *c = idv[i]; *c; c++)
            h = (h ^ (unsigned char)*c) * 16777619u;
        int z = 1 + (int)(h % TS_NETAGENT_ZONE_MAX);
        for (int t = 0; t < TS_NETAGENT_ZONE_MAX && used[z]; t++)
            z = z % TS_NETAGENT_ZONE_MAX + 1;
        used[z] = 1;
        json_object_set_new(zones, idv[i], json_integer(z));
    }
    free(used);
    free(idv);
    return zones;
}

char *ts_netagent_zone_restore(const json_t *zones, const char *chain, bool add_jump, bool remove)
{
    struct ts_buf b;
    ts_buf_init(&b, 16u << 20);
    ts_buf_printf(&b, "*raw\n:%s - [0:0]\n", chain);
    if (remove) {
        ts_buf_printf(&b, "-X %s\n", chain);
    } else {
        if (add_jump) ts_buf_printf(&b, "-I PREROUTING 1 -j %s\n", chain);
        const char *nid;
        json_t *z;
        json_object_foreach((json_t *)zones, nid, z) {
            char br[TS_NETAGENT_IFNAME];
            ts_netagent_ifname(br, "brq", nid);
            /* bridged frames (br_netfilter) come in with the bridge as their in-device */
            ts_buf_printf(&b, "-A %s -i %s -j CT --zone %lld\n", chain, br, (long long)json_integer_value(z));
        }
    }
    ts_buf_appends(&b, "COMMIT\n");
    return ts_buf_steal(&b, NULL);
}

/* ---- ARP and MAC anti-spoofing (ebtables nat PREROUTING) ------------------------------ */

static void arp_port_rules(const json_t *port, struct ts_buf *b, const char *mchain, const char *achain)
{
    const char *mac = ts_json_str(port, "mac_address", "");
    json_t *macs = json_array(), *f;
    size_t i;
    json_array_append_new(macs, json_string(mac));
    json_array_foreach(json_object_get(port, "allowed_address_pairs"), i, f) {
        const char *pm = ts_json_str(f, "mac_address", mac);
        bool seen = false;
        size_t k;
        json_t *m;
        json_array_foreach(macs, k, m) seen |= ts_strcaseeq(json_string_value(m), pm);
        if (!seen && valid_mac(pm)) json_array_append_new(macs, json_string(pm));
    }
    json_array_foreach(macs, i, f) ts_buf_printf(b, "-A %s -s %s -j RETURN\n", mchain, json_string_value(f));
    ts_buf_printf(b, "-A %s -j DROP\n", mchain);
    json_decref(macs);

    json_array_foreach(json_object_get(port, "fixed_ips"), i, f) {
        const char *ip = ts_json_str(f, "ip_address", NULL);
        if (ts_netagent_is_v4(ip))
            ts_buf_printf(b, "-A %s -p ARP --arp-ip-src %s --arp-mac-src %s -j RETURN\n", achain, ip, mac);
    }
    json_array_foreach(json_object_get(port, "allowed_address_pairs"), i, f) {
        const char *ip = ts_json_str(f, "ip_address", NULL);
        const char *pm = ts_json_str(f, "mac_address", mac);
        if ((ts_netagent_is_v4(ip) || valid_cidr4(ip)) && valid_mac(pm))
            ts_buf_printf(b, "-A %s -p ARP --arp-ip-src %s --arp-mac-src %s -j RETURN\n", achain, ip, pm);
    }
    /* RFC 5227 probes (sender 0.0.0.0) announce nothing */
    ts_buf_printf(b, "-A %s -p ARP --arp-ip-src 0.0.0.0 --arp-mac-src %s -j RETURN\n", achain, mac);
    ts_buf_printf(b, "-A %s -j DROP\n", achain);
}

char *ts_netagent_arp_restore(const json_t *state, const char *host, const char *chain,
                              const json_t *stale_chains, bool add_jump, bool remove_jump, json_t **chains_out)
{
    struct ts_buf rules;
    json_t *chains = json_array();
    size_t i;
    json_t *p;
    ts_buf_init(&rules, 64u << 20);
    if (!remove_jump) {
        json_array_append_new(chains, json_string(chain));
        json_array_foreach(json_object_get(state, "ports"), i, p) {
            if (!sg_port(p, host)) continue;
            const char *id = ts_json_str(p, "id", "");
            char mchain[32], achain[32], tap[TS_NETAGENT_IFNAME];
            snprintf(mchain, sizeof(mchain), "tsm-%.11s", id);
            snprintf(achain, sizeof(achain), "tsa-%.11s", id);
            ts_netagent_ifname(tap, "tap", id);
            json_array_append_new(chains, json_string(mchain));
            json_array_append_new(chains, json_string(achain));
            ts_buf_printf(&rules, "-A %s -i %s -j %s\n", chain, tap, mchain);
            ts_buf_printf(&rules, "-A %s -i %s -p ARP -j %s\n", chain, tap, achain);
            arp_port_rules(p, &rules, mchain, achain);
        }
    }
    return chain_plan("nat", " RETURN", "PREROUTING", chain, chains, stale_chains, add_jump, remove_jump, &rules,
                      chains_out);
}

/* ---- conntrack cleanup after a rule goes -------------------------------------------- */

/* The value after " flag " in line (up to the next space) into out, or false. */
static bool line_opt(const char *line, const char *flag, char *out, size_t n)
{
    char pat[32];
    snprintf(pat, sizeof(pat), " %s ", flag);
    const char *p = strstr(line, pat);
    if (!p) return false;
    p += strlen(pat);
    size_t l = strcspn(p, " \n");
    if (l == 0 || l >= n) return false;
    memcpy(out, p, l);
    out[l] = 0;
    return true;
}

json_t *ts_netagent_ct_flushes(const json_t *state, const char *host, const json_t *zones, const char *old_text,
                               const char *new_text)
{
    json_t *out = json_array(), *now = json_object(), *seen = json_object();
    const char *s;
    /* every rule line of the new text, as a set */
    for (s = new_text; s && *s;) {
        size_t l = strcspn(s, "\n");
        char *ln = ts_strndup(s, l);
        json_object_set_new(now, ln, json_true());
        free(ln);
        s += l + (s[l] == '\n');
    }
    for (s = old_text; s && *s;) {
        size_t l = strcspn(s, "\n");
        char *ln = ts_strndup(s, l);
        s += l + (s[l] == '\n');
        /* only security-group rule lines: "-A tsg-i<port> ... -j RETURN" / "-A tsg-o<port> ..." */
        bool ingress = ts_startswith(ln, "-A tsg-i"), egress = ts_startswith(ln, "-A tsg-o");
        if ((!ingress && !egress) || !ts_endswith(ln, " -j RETURN") || strstr(ln, "--ctstate") ||
            strstr(ln, "--sport 6") || json_object_get(now, ln)) {
            free(ln);
            continue;
        }
        char prefix[12];
        snprintf(prefix, sizeof(prefix), "%.11s", ln + 8);
        const json_t *port = NULL;
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(state, "ports"), i, p) {
            if (sg_port(p, host) && strncmp(ts_json_str(p, "id", ""), prefix, 11) == 0) port = p;
        }
        json_t *z = json_object_get(zones, ts_json_str(port, "network_id", ""));
        if (!port || !json_is_integer(z)) {
            free(ln);
            continue;
        }
        char proto[16] = "", dport[16] = "", icmp[16] = "", remote[48] = "";
        line_opt(ln, "-p", proto, sizeof(proto));
        line_opt(ln, "--dport", dport, sizeof(dport));
        line_opt(ln, "--icmp-type", icmp, sizeof(icmp));
        line_opt(ln, ingress ? "-s" : "-d", remote, sizeof(remote));
        if (strchr(dport, ':')) dport[0] = 0; /* a range: conntrack matches one port only */
        if (!ts_endswith(remote, "/32")) remote[0] = 0;
        else remote[strlen(remote) - 3] = 0;
        json_t *f;
        json_array_foreach(json_object_get(port, "fixed_ips"), i, f) {
            const char *ip = ts_json_str(f, "ip_address", NULL);
            if (!ts_netagent_is_v4(ip)) continue;
            json_t *argv = json_array();
            push(argv, "conntrack");
            push(argv, "-D");
            push(argv, "-f");
            push(argv, "ipv4");
            push(argv, "-w");
            push(argv, "%lld", (long long)json_integer_value(z));
            /* the flows the removed rule let in (to the VM) or out (from it) */
            push(argv, ingress ? "-d" : "-s");
            push(argv, "%s", ip);
            if (remote[0] && ts_netagent_is_v4(remote)) {
                push(argv, ingress ? "-s" : "-d");
                push(argv, "%s", remote);
            }
            if (proto[0]) {
                push(argv, "-p");
                push(argv, "%s", proto);
                if (dport[0] && (ts_streq(proto, "tcp") || ts_streq(proto, "udp") || ts_streq(proto, "sctp"))) {
                    push(argv, "--dport");
                    push(argv, "%s", dport);
                }
                if (icmp[0] && ts_streq(proto, "icmp")) {
                    char *slash = strchr(icmp, '/');
                    if (slash) *slash = 0;
                    push(argv, "--icmp-type");
                    push(argv, "%s", icmp);
                    if (slash) {
                        push(argv, "--icmp-code");
                        push(argv, "%s", slash + 1);
                    }
                }
            }
            char *key = json_dumps(argv, JSON_COMPACT);
            if (!json_object_get(seen, key)) {
                json_object_set_new(seen, key, json_true());
                json_array_append(out, argv);
            }
            free(key);
            json_decref(argv);
        }
        free(ln);
    }
    json_decref(now);
    json_decref(seen);
    return out;
}
