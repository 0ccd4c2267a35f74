/*
 * test_netagent.c: the network agent's planner and reconcile, without touching the host:
 * names, the dnsmasq argv, iptables-restore texts for router NAT and security groups
 * (ports, ranges, ICMP, remote groups, stale chains), metadata documents, and a reconcile
 * pass against a recording fake of ts_netagent_exec that simulates namespaces and links.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "json/ts_json.h"
#include "network/agent/ts_netagent_int.h"

#define NET "11111111-aaaa-4aaa-8aaa-000000000001"
#define EXT "22222222-aaaa-4aaa-8aaa-000000000002"
#define SUB "33333333-aaaa-4aaa-8aaa-000000000003"
#define ESUB "44444444-aaaa-4aaa-8aaa-000000000004"
#define DHCP "55555555-aaaa-4aaa-8aaa-000000000005"
#define VM1 "66666666-aaaa-4aaa-8aaa-000000000006"
#define VM2 "77777777-aaaa-4aaa-8aaa-000000000007"
#define RIF "88888888-aaaa-4aaa-8aaa-000000000008"
#define RGW "99999999-aaaa-4aaa-8aaa-000000000009"
#define RTR "aaaaaaaa-aaaa-4aaa-8aaa-00000000000a"
#define SG "bbbbbbbb-aaaa-4aaa-8aaa-00000000000b"
#define DEV1 "cccccccc-aaaa-4aaa-8aaa-00000000000c"

static const char *STATE =
    "{\"networks\":[{\"id\":\"" NET "\",\"mtu\":1450},{\"id\":\"" EXT "\",\"router:external\":true}],"
    "\"subnets\":[{\"id\":\"" SUB "\",\"network_id\":\"" NET "\",\"cidr\":\"10.77.0.0/24\",\"ip_version\":4,"
    "\"gateway_ip\":\"10.77.0.1\",\"enable_dhcp\":true,\"dns_nameservers\":[\"10.77.0.53\"],"
    "\"host_routes\":[{\"destination\":\"10.99.0.0/16\",\"nexthop\":\"10.77.0.254\"}]},"
    "{\"id\":\"" ESUB "\",\"network_id\":\"" EXT "\",\"cidr\":\"10.78.0.0/24\",\"ip_version\":4,"
    "\"gateway_ip\":\"10.78.0.100\",\"enable_dhcp\":false}],"
    "\"ports\":["
    "{\"id\":\"" DHCP "\",\"network_id\":\"" NET "\",\"mac_address\":\"fa:16:3e:00:00:02\",\"device_owner\":"
    "\"network:dhcp\",\"fixed_ips\":[{\"subnet_id\":\"" SUB "\",\"ip_address\":\"10.77.0.2\"}]},"
    "{\"id\":\"" VM1 "\",\"network_id\":\"" NET "\",\"mac_address\":\"fa:16:3e:00:00:10\",\"device_owner\":"
    "\"compute:nova\",\"device_id\":\"" DEV1 "\",\"binding:host_id\":\"h1\",\"project_id\":\"p1\","
    "\"security_groups\":[\"" SG "\"],"
    "\"allowed_address_pairs\":[{\"ip_address\":\"10.77.0.200\"}],"
    "\"fixed_ips\":[{\"subnet_id\":\"" SUB "\",\"ip_address\":\"10.77.0.10\"}]},"
    "{\"id\":\"" VM2 "\",\"network_id\":\"" NET "\",\"mac_address\":\"fa:16:3e:00:00:11\",\"device_owner\":"
    "\"compute:nova\",\"binding:host_id\":\"other-host\",\"security_groups\":[\"" SG "\"],"
    "\"fixed_ips\":[{\"subnet_id\":\"" SUB "\",\"ip_address\":\"10.77.0.11\"}]},"
    "{\"id\":\"" RIF "\",\"network_id\":\"" NET "\",\"mac_address\":\"fa:16:3e:00:00:01\",\"device_owner\":"
    "\"network:router_interface\",\"device_id\":\"" RTR "\","
    "\"fixed_ips\":[{\"subnet_id\":\"" SUB "\",\"ip_address\":\"10.77.0.1\"}]},"
    "{\"id\":\"" RGW "\",\"network_id\":\"" EXT "\",\"mac_address\":\"fa:16:3e:00:00:99\",\"device_owner\":"
    "\"network:router_gateway\",\"device_id\":\"" RTR "\","
    "\"fixed_ips\":[{\"subnet_id\":\"" ESUB "\",\"ip_address\":\"10.78.0.2\"}]}],"
    "\"routers\":[{\"id\":\"" RTR "\",\"external_gateway_info\":{\"network_id\":\"" EXT "\"}}],"
    "\"floatingips\":[{\"id\":\"f1\",\"floating_ip_address\":\"10.78.0.50\",\"router_id\":\"" RTR "\","
    "\"port_id\":\"" VM1 "\",\"fixed_ip_address\":\"10.77.0.10\"},"
    "{\"id\":\"f2\",\"floating_ip_address\":\"10.78.0.51\",\"router_id\":null,\"port_id\":null}],"
    "\"security_groups\":[{\"id\":\"" SG "\",\"security_group_rules\":["
    "{\"direction\":\"egress\",\"ethertype\":\"IPv4\",\"protocol\":null},"
    "{\"direction\":\"egress\",\"ethertype\":\"IPv6\",\"protocol\":null},"
    "{\"direction\":\"ingress\",\"ethertype\":\"IPv4\",\"protocol\":\"icmp\",\"remote_group_id\":\"" SG "\"},"
    "{\"direction\":\"ingress\",\"ethertype\":\"IPv4\",\"protocol\":\"tcp\",\"port_range_min\":8000,"
    "\"port_range_max\":8080,\"remote_ip_prefix\":\"192.168.0.0/16\"}]}]}";

static json_t *state(void)
{
    json_t *s = NULL;
    assert_int_equal(ts_json_parse(STATE, strlen(STATE), &s, NULL), 0);
    return s;
}

static bool has(const json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (ts_streq(json_string_value(v), s)) return true;
    return false;
}

static void test_names(void **st)
{
    (void)st;
    char n[TS_NETAGENT_IFNAME];
    ts_netagent_ifname(n, "brq", NET);
    assert_string_equal(n, "brq11111111-aa");
    ts_netagent_ifname(n, "tap", VM1);
    assert_string_equal(n, "tap66666666-aa");
    ts_netagent_ifname(n, "qg-", RGW);
    assert_int_equal(strlen(n), 14);
    assert_int_equal(ts_netagent_prefixlen("10.0.0.0/8"), 8);
    assert_int_equal(ts_netagent_prefixlen("10.0.0.0/33"), -1);
    assert_int_equal(ts_netagent_prefixlen("10.0.0.0"), -1);
    assert_int_equal(ts_netagent_prefixlen("fd00::/64"), -1);
    char m[16];
    assert_true(ts_netagent_mask(20, m));
    assert_string_equal(m, "255.255.240.0");
    char fwd[32], fwd2[32];
    ts_netagent_fwd_chain("/a/network-agent", fwd);
    ts_netagent_fwd_chain("/b/network-agent", fwd2);
    assert_true(ts_startswith(fwd, "tsg-F"));
    assert_string_not_equal(fwd, fwd2);
}

static void test_dnsmasq_argv(void **st)
{
    (void)st;
    json_t *s = state();
    const json_t *dp = ts_netagent_find(s, "ports", DHCP);
    json_t *a = ts_netagent_dnsmasq_argv(s, NET, dp, "ns-55555555-aa", "/d");
    assert_non_null(a);
    assert_string_equal(json_string_value(json_array_get(a, 0)), "dnsmasq");
    assert_true(has(a, "--interface=ns-55555555-aa"));
    assert_true(has(a, "--port=0"));
    assert_true(has(a, "--pid-file=/d/pid"));
    assert_true(has(a, "--dhcp-range=set:subnet-" SUB ",10.77.0.0,static,255.255.255.0,86400s"));
    assert_true(has(a, "--dhcp-option-force=tag:subnet-" SUB ",option:router,10.77.0.1"));
    assert_true(has(a, "--dhcp-option-force=tag:subnet-" SUB ",option:classless-static-route,"
                       "169.254.169.254/32,10.77.0.2,10.99.0.0/16,10.77.0.254,0.0.0.0/0,10.77.0.1"));
    assert_true(has(a, "--dhcp-option-force=tag:subnet-" SUB ",option:dns-server,10.77.0.53"));
    assert_true(has(a, "--dhcp-hostsfile=/d/host"));
    assert_true(has(a, "--dhcp-option-force=option:mtu,1450"));
    json_decref(a);
    /* per-port entries are in the hosts file (reloaded by SIGHUP), not on the command line */
    char *h = ts_netagent_dnsmasq_hosts(s, NET, dp);
    assert_non_null(strstr(h, "fa:16:3e:00:00:10,10.77.0.10,host-10-77-0-10\n"));
    assert_non_null(strstr(h, "fa:16:3e:00:00:11,10.77.0.11,host-10-77-0-11\n"));
    assert_null(strstr(h, "10.77.0.2,")); /* not itself */
    free(h);
    h = ts_netagent_dnsmasq_hosts(s, EXT, dp);
    assert_string_equal(h, "");
    free(h);
    /* the external network has no DHCP subnet */
    assert_null(ts_netagent_dnsmasq_argv(s, EXT, dp, "x", "/d"));
    json_decref(s);
}

static void test_router_nat(void **st)
{
    (void)st;
    json_t *s = state();
    char *t = ts_netagent_router_nat(s, RTR);
    assert_string_equal(t,
                        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                        ":POSTROUTING ACCEPT [0:0]\n"
                        "-A PREROUTING -d 10.78.0.50/32 -j DNAT --to-destination 10.77.0.10\n"
                        "-A OUTPUT -d 10.78.0.50/32 -j DNAT --to-destination 10.77.0.10\n"
                        "-A POSTROUTING -s 10.77.0.10/32 -o qg-99999999-aa -j SNAT --to-source 10.78.0.50\n"
                        "-A POSTROUTING -s 10.77.0.0/24 -o qg-99999999-aa -j SNAT --to-source 10.78.0.2\n"
                        "COMMIT\n");
    free(t);
    /* no SNAT when disabled; floating IPs stay */
    json_object_set_new(json_object_get(ts_netagent_find(s, "routers", RTR), "external_gateway_info"),
                        "enable_snat", json_false());
    t = ts_netagent_router_nat(s, RTR);
    assert_null(strstr(t, "10.77.0.0/24"));
    assert_non_null(strstr(t, "DNAT --to-destination 10.77.0.10"));
    free(t);
    t = ts_netagent_dhcp_nat(9697);
    assert_non_null(strstr(
        t, "-A PREROUTING -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 9697"));
    free(t);
    json_decref(s);
}

static char *specs(json_t *s, const char *rule_json)
{
    json_t *r = NULL;
    assert_int_equal(ts_json_parse(rule_json, strlen(rule_json), &r, NULL), 0);
    struct ts_buf b;
    ts_buf_init(&b, 65536);
    ts_netagent_sg_rule_specs(s, r, &b, "C");
    json_decref(r);
    ts_buf_cstr(&b);
    return b.data ? ts_buf_steal(&b, NULL) : ts_strdup("");
}

static void test_sg_rule_specs(void **st)
{
    (void)st;
    json_t *s = state();
    char *t;
    t = specs(s,
              "{\"direction\":\"ingress\",\"protocol\":\"tcp\",\"port_range_min\":22,\"port_range_max\":22}");
    assert_string_equal(t, "-A C -p tcp -m tcp --dport 22 -j RETURN\n");
    free(t);
    t = specs(
        s, "{\"direction\":\"ingress\",\"protocol\":\"udp\",\"port_range_min\":1000,\"port_range_max\":2000,"
           "\"remote_ip_prefix\":\"10.0.0.0/8\"}");
    assert_string_equal(t, "-A C -p udp -m udp --dport 1000:2000 -s 10.0.0.0/8 -j RETURN\n");
    free(t);
    t = specs(s, "{\"direction\":\"egress\",\"protocol\":\"6\",\"remote_ip_prefix\":\"1.2.3.4\"}");
    assert_string_equal(t, "-A C -p tcp -d 1.2.3.4 -j RETURN\n");
    free(t);
    t = specs(s,
              "{\"direction\":\"ingress\",\"protocol\":\"icmp\",\"port_range_min\":8,\"port_range_max\":0}");
    assert_string_equal(t, "-A C -p icmp -m icmp --icmp-type 8/0 -j RETURN\n");
    free(t);
    t = specs(s, "{\"direction\":\"ingress\",\"protocol\":\"icmp\",\"remote_ip_prefix\":\"0.0.0.0/0\"}");
    assert_string_equal(t, "-A C -p icmp -j RETURN\n");
    free(t);
    t = specs(s, "{\"direction\":\"ingress\",\"protocol\":\"47\"}");
    assert_string_equal(t, "-A C -p 47 -j RETURN\n");
    free(t);
    /* remote group: every v4 address of its member ports, allowed pairs included */
    t = specs(s, "{\"direction\":\"ingress\",\"protocol\":\"icmp\",\"remote_group_id\":\"" SG "\"}");
    assert_string_equal(t, "-A C -p icmp -s 10.77.0.10/32 -j RETURN\n-A C -p icmp -s 10.77.0.200 -j RETURN\n"
                           "-A C -p icmp -s 10.77.0.11/32 -j RETURN\n");
    free(t);
    /* an empty group admits nobody */
    t = specs(s, "{\"direction\":\"ingress\",\"remote_group_id\":\"nobody\"}");
    assert_string_equal(t, "");
    free(t);
    /* IPv6, unknown protocols, bad prefixes and injection attempts produce nothing */
    t = specs(s, "{\"direction\":\"ingress\",\"ethertype\":\"IPv6\",\"protocol\":\"tcp\"}");
    assert_string_equal(t, "");
    free(t);
    t = specs(s, "{\"direction\":\"ingress\",\"protocol\":\"tcp -j ACCEPT\"}");
    assert_string_equal(t, "");
    free(t);
    t = specs(s,
              "{\"direction\":\"ingress\",\"protocol\":\"tcp\",\"remote_ip_prefix\":\"1.2.3.0/24\\n-A X\"}");
    assert_string_equal(t, "");
    free(t);
    t = specs(
        s, "{\"direction\":\"ingress\",\"protocol\":\"tcp\",\"port_range_min\":1,\"port_range_max\":70000}");
    assert_string_equal(t, "");
    free(t);
    json_decref(s);
}

static void test_sg_restore(void **st)
{
    (void)st;
    json_t *s = state(), *chains = NULL;
    json_t *stale = json_pack("[s,s]", "tsg-iOLDOLDOLD", "tsg-i66666666-aa");
    char *t = ts_netagent_sg_restore(s, "h1", "tsg-Fabc", stale, true, false, &chains);
    /* only VM1 is on host h1 */
    assert_true(has(chains, "tsg-Fabc"));
    assert_true(has(chains, "tsg-i66666666-aa"));
    assert_true(has(chains, "tsg-o66666666-aa"));
    assert_true(has(chains, "tsg-s66666666-aa"));
    assert_false(has(chains, "tsg-i77777777-aa"));
    assert_non_null(strstr(t, "*filter\n:tsg-Fabc - [0:0]\n"));
    assert_non_null(strstr(t, ":tsg-iOLDOLDOLD - [0:0]\n"));
    assert_non_null(strstr(t, "-I FORWARD 1 -j tsg-Fabc\n"));
    assert_non_null(strstr(
        t, "-A tsg-Fabc -m physdev --physdev-out tap66666666-aa --physdev-is-bridged -j tsg-i66666666-aa\n"));
    assert_non_null(strstr(
        t, "-A tsg-Fabc -m physdev --physdev-in tap66666666-aa --physdev-is-bridged -j tsg-o66666666-aa\n"));
    assert_non_null(strstr(t, "-A tsg-i66666666-aa -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN\n"));
    assert_non_null(strstr(t, "-A tsg-i66666666-aa -p icmp -s 10.77.0.11/32 -j RETURN\n"));
    assert_non_null(
        strstr(t, "-A tsg-i66666666-aa -p tcp -m tcp --dport 8000:8080 -s 192.168.0.0/16 -j RETURN\n"));
    assert_non_null(strstr(t, "-A tsg-i66666666-aa -j DROP\n"));
    assert_non_null(
        strstr(t, "-A tsg-s66666666-aa -s 10.77.0.10/32 -m mac --mac-source fa:16:3e:00:00:10 -j RETURN\n"));
    assert_non_null(
        strstr(t, "-A tsg-s66666666-aa -s 10.77.0.200 -m mac --mac-source fa:16:3e:00:00:10 -j RETURN\n"));
    assert_non_null(strstr(t, "-A tsg-o66666666-aa -j tsg-s66666666-aa\n"));
    assert_non_null(strstr(t, "-A tsg-o66666666-aa -j RETURN\n")); /* egress allow all */
    assert_non_null(strstr(t, "-A tsg-Fabc -o brq11111111-aa -m physdev --physdev-is-bridged -j ACCEPT\n"));
    assert_non_null(strstr(t, "-X tsg-iOLDOLDOLD\n"));
    assert_null(strstr(t, "-X tsg-i66666666-aa")); /* still wanted */
    assert_true(ts_endswith(t, "COMMIT\n"));
    free(t);
    json_decref(chains);
    /* port security off: no chains for it */
    json_object_set_new(ts_netagent_find(s, "ports", VM1), "port_security_enabled", json_false());
    t = ts_netagent_sg_restore(s, "h1", "tsg-Fabc", NULL, false, false, &chains);
    assert_false(has(chains, "tsg-i66666666-aa"));
    assert_null(strstr(t, "-I FORWARD"));
    free(t);
    json_decref(chains);
    /* removal: the jump goes, every chain is flushed and deleted */
    json_t *all = json_pack("[s,s]", "tsg-Fabc", "tsg-i66666666-aa");
    t = ts_netagent_sg_restore(s, "h1", "tsg-Fabc", all, false, true, NULL);
    assert_string_equal(t, "*filter\n:tsg-Fabc - [0:0]\n:tsg-i66666666-aa - [0:0]\n-D FORWARD -j tsg-Fabc\n"
                           "-X tsg-Fabc\n-X tsg-i66666666-aa\nCOMMIT\n");
    free(t);
    json_decref(all);
    json_decref(stale);
    json_decref(s);
}

static void test_zones_and_arp(void **st)
{
    (void)st;
    json_t *s = state(), *chains = NULL;
    json_t *z = ts_netagent_zones(s), *z2 = ts_netagent_zones(s);
    assert_int_equal(json_object_size(z), 2);
    assert_true(json_equal(z, z2)); /* stable */
    json_int_t zn = json_integer_value(json_object_get(z, NET)), ze = json_integer_value(json_object_get(z, EXT));
    assert_true(zn >= 1 && zn <= TS_NETAGENT_ZONE_MAX && ze >= 1 && ze <= TS_NETAGENT_ZONE_MAX && zn != ze);
    char *t = ts_netagent_zone_restore(z, "tsg-Rabc", true, false);
    char want[128];
    snprintf(want, sizeof(want), "-A tsg-Rabc -i brq11111111-aa -j CT --zone %lld\n", (long long)zn);
    assert_non_null(strstr(t, want));
    assert_non_null(strstr(t, "*raw\n:tsg-Rabc - [0:0]\n-I PREROUTING 1 -j tsg-Rabc\n"));
    free(t);
    t = ts_netagent_zone_restore(z, "tsg-Rabc", false, true);
    assert_string_equal(t, "*raw\n:tsg-Rabc - [0:0]\n-X tsg-Rabc\nCOMMIT\n");
    free(t);

    /* MAC/ARP: VM1 only (VM2 is on another host); its allowed pair keeps the port's MAC */
    json_t *stale = json_pack("[s]", "tsa-OLDOLDOLDOL");
    t = ts_netagent_arp_restore(s, "h1", "tsa-Pabc", stale, true, false, &chains);
    assert_true(has(chains, "tsm-66666666-aa"));
    assert_true(has(chains, "tsa-66666666-aa"));
    assert_false(has(chains, "tsa-77777777-aa"));
    assert_non_null(strstr(t, "*nat\n:tsa-Pabc RETURN\n"));
    assert_non_null(strstr(t, "-I PREROUTING 1 -j tsa-Pabc\n"));
    assert_non_null(strstr(t, "-A tsa-Pabc -i tap66666666-aa -j tsm-66666666-aa\n"));
    assert_non_null(strstr(t, "-A tsa-Pabc -i tap66666666-aa -p ARP -j tsa-66666666-aa\n"));
    assert_non_null(strstr(t, "-A tsm-66666666-aa -s fa:16:3e:00:00:10 -j RETURN\n-A tsm-66666666-aa -j DROP\n"));
    assert_non_null(strstr(t, "-A tsa-66666666-aa -p ARP --arp-ip-src 10.77.0.10 --arp-mac-src fa:16:3e:00:00:10 -j RETURN\n"));
    assert_non_null(strstr(t, "-A tsa-66666666-aa -p ARP --arp-ip-src 10.77.0.200 --arp-mac-src fa:16:3e:00:00:10 -j RETURN\n"));
    assert_non_null(strstr(t, "-A tsa-66666666-aa -j DROP\n"));
    assert_non_null(strstr(t, "-X tsa-OLDOLDOLDOL\n"));
    assert_null(strstr(t, "77777777"));
    free(t);
    json_decref(chains);
    /* an allowed pair with its own MAC adds that MAC (once) */
    json_t *aap = json_object_get(ts_netagent_find(s, "ports", VM1), "allowed_address_pairs");
    json_array_append_new(aap, json_pack("{s:s,s:s}", "ip_address", "10.77.5.0/24", "mac_address", "fa:16:3e:00:00:77"));
    json_array_append_new(aap, json_pack("{s:s,s:s}", "ip_address", "10.77.6.1", "mac_address", "fa:16:3e:00:00:77"));
    json_array_append_new(aap, json_pack("{s:s,s:s}", "ip_address", "10.77.7.1; -j ACCEPT", "mac_address", "x"));
    t = ts_netagent_arp_restore(s, "h1", "tsa-Pabc", NULL, false, false, NULL);
    assert_non_null(strstr(t, "-A tsm-66666666-aa -s fa:16:3e:00:00:77 -j RETURN\n"));
    assert_null(strstr(strstr(t, "-s fa:16:3e:00:00:77") + 1, "-s fa:16:3e:00:00:77"));
    assert_non_null(strstr(t, "--arp-ip-src 10.77.5.0/24 --arp-mac-src fa:16:3e:00:00:77 -j RETURN\n"));
    assert_null(strstr(t, "10.77.7.1"));
    assert_null(strstr(t, "-I PREROUTING"));
    free(t);
    /* removal */
    json_t *all = json_pack("[s,s]", "tsa-Pabc", "tsm-66666666-aa");
    t = ts_netagent_arp_restore(s, "h1", "tsa-Pabc", all, false, true, NULL);
    assert_string_equal(t, "*nat\n:tsa-Pabc RETURN\n:tsm-66666666-aa RETURN\n-D PREROUTING -j tsa-Pabc\n"
                           "-X tsa-Pabc\n-X tsm-66666666-aa\nCOMMIT\n");
    free(t);
    json_decref(all);
    json_decref(stale);

    /* conntrack: the removed rules' flows, on the port's zone and address */
    const char *old_text = "*filter\n"
                           "-A tsg-i66666666-aa -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN\n"
                           "-A tsg-i66666666-aa -p icmp -s 10.77.0.11/32 -j RETURN\n"
                           "-A tsg-i66666666-aa -p tcp -m tcp --dport 22 -s 10.77.0.0/24 -j RETURN\n"
                           "-A tsg-i66666666-aa -p tcp -m tcp --dport 8000:8080 -j RETURN\n"
                           "-A tsg-o66666666-aa -j RETURN\n"
                           "-A tsg-o77777777-aa -j RETURN\n"
                           "-A tsg-i66666666-aa -j DROP\nCOMMIT\n";
    const char *new_text = "*filter\n"
                           "-A tsg-i66666666-aa -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN\n"
                           "-A tsg-i66666666-aa -p tcp -m tcp --dport 22 -s 10.77.0.0/24 -j RETURN\n"
                           "-A tsg-i66666666-aa -j DROP\nCOMMIT\n";
    json_t *fl = ts_netagent_ct_flushes(s, "h1", z, old_text, new_text);
    assert_int_equal(json_array_size(fl), 3);
    char *d = json_dumps(fl, JSON_COMPACT);
    char w1[256], w2[256], w3[256];
    snprintf(w1, sizeof(w1), "[\"conntrack\",\"-D\",\"-f\",\"ipv4\",\"-w\",\"%lld\",\"-d\",\"10.77.0.10\",\"-s\","
             "\"10.77.0.11\",\"-p\",\"icmp\"]", (long long)zn);
    snprintf(w2, sizeof(w2), "[\"conntrack\",\"-D\",\"-f\",\"ipv4\",\"-w\",\"%lld\",\"-d\",\"10.77.0.10\",\"-p\","
             "\"tcp\"]", (long long)zn);
    snprintf(w3, sizeof(w3), "[\"conntrack\",\"-D\",\"-f\",\"ipv4\",\"-w\",\"%lld\",\"-s\",\"10.77.0.10\"]",
             (long long)zn);
    assert_non_null(strstr(d, w1));
    assert_non_null(strstr(d, w2)); /* a port range: the protocol only */
    assert_non_null(strstr(d, w3)); /* egress allow-all gone: every flow from the VM */
    assert_null(strstr(d, "10.77.0.11\",\"-p\",\"tcp")); /* VM2 is not on this host */
    free(d);
    json_decref(fl);
    fl = ts_netagent_ct_flushes(s, "h1", z, new_text, new_text);
    assert_int_equal(json_array_size(fl), 0);
    json_decref(fl);
    json_decref(z);
    json_decref(z2);
    json_decref(s);
}

static json_t *inst(void)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:{s:s},s:s,s:s,s:s,s:[s]}", "uuid", DEV1, "name", "vm one",
                     "hostname", "vm-one", "instance_name", "instance-0000002a", "project_id", "p1",
                     "metadata", "role", "web", "user_data", "IyFjbG91ZC1jb25maWcKaGk=", "key_name", "k1",
                     "public_key", "ssh-ed25519 AAAA k1", "security_groups", "default");
}

static int render(json_t *s, json_t *i, const char *path, char **body)
{
    const char *ct;
    return ts_netagent_meta_render(s, i, ts_netagent_find(s, "ports", VM1), path, body, &ct);
}

static void test_metadata(void **st)
{
    (void)st;
    json_t *s = state(), *i = inst();
    char *b = NULL;
    assert_int_equal(render(s, i, "/latest/meta-data/instance-id", &b), 200);
    assert_string_equal(b, "i-0000002a");
    free(b);
    assert_int_equal(render(s, i, "/2009-04-04/meta-data/local-ipv4", &b), 200);
    assert_string_equal(b, "10.77.0.10");
    free(b);
    assert_int_equal(render(s, i, "/latest/meta-data/public-ipv4", &b), 200);
    assert_string_equal(b, "10.78.0.50");
    free(b);
    assert_int_equal(render(s, i, "/latest/meta-data/hostname", &b), 200);
    assert_string_equal(b, "vm-one");
    free(b);
    assert_int_equal(render(s, i, "/latest/meta-data/public-keys/", &b), 200);
    assert_string_equal(b, "0=k1");
    free(b);
    assert_int_equal(render(s, i, "/latest/meta-data/public-keys/0/openssh-key", &b), 200);
    assert_string_equal(b, "ssh-ed25519 AAAA k1");
    free(b);
    assert_int_equal(render(s, i, "/latest/meta-data/", &b), 200);
    assert_non_null(strstr(b, "instance-id\n"));
    free(b);
    assert_int_equal(render(s, i, "/openstack/latest/user_data", &b), 200);
    assert_string_equal(b, "#!cloud-config\nhi");
    free(b);
    assert_int_equal(render(s, i, "/openstack/latest/meta_data.json", &b), 200);
    json_t *md = NULL;
    assert_int_equal(ts_json_parse(b, strlen(b), &md, NULL), 0);
    assert_string_equal(ts_json_str(md, "uuid", ""), DEV1);
    assert_string_equal(ts_json_str(json_object_get(md, "meta"), "role", ""), "web");
    assert_string_equal(ts_json_str(json_object_get(md, "public_keys"), "k1", ""), "ssh-ed25519 AAAA k1");
    json_decref(md);
    free(b);
    assert_int_equal(render(s, i, "/openstack/2018-08-27/network_data.json", &b), 200);
    assert_int_equal(ts_json_parse(b, strlen(b), &md, NULL), 0);
    json_t *n0 = json_array_get(json_object_get(md, "networks"), 0);
    assert_string_equal(ts_json_str(n0, "ip_address", ""), "10.77.0.10");
    assert_string_equal(ts_json_str(n0, "netmask", ""), "255.255.255.0");
    assert_string_equal(
        ts_json_str(json_array_get(json_object_get(md, "links"), 0), "ethernet_mac_address", ""),
        "fa:16:3e:00:00:10");
    json_decref(md);
    free(b);
    assert_int_equal(render(s, i, "/latest/meta-data/nope", &b), 404);
    free(b);
    assert_int_equal(render(s, i, "/etc/passwd", &b), 404);
    free(b);
    /* no user data, no key: 404 and no keys listed */
    json_object_del(i, "user_data");
    json_object_del(i, "public_key");
    assert_int_equal(render(s, i, "/openstack/latest/user_data", &b), 404);
    free(b);
    assert_int_equal(render(s, i, "/latest/meta-data/public-keys/0/openssh-key", &b), 404);
    free(b);
    /* without an instance name: from the uuid */
    char id[32];
    json_object_del(i, "instance_name");
    ts_netagent_meta_ec2_id(i, id);
    assert_string_equal(id, "i-cccccccc");
    json_decref(i);
    json_decref(s);
}

/* ---- a reconcile pass against a fake host --------------------------------------------- */

struct fakehost {
    json_t *ns, *links, *log; /* names, names, "argv joined" (+ "<<stdin") */
    char jump[64];            /* the chain FORWARD jumps to, as iptables-restore left it */
    char rawjump[64];         /* raw PREROUTING's jump (conntrack zones) */
    char ebjump[64];          /* ebtables nat PREROUTING's jump (ARP/MAC anti-spoofing) */
    char jump6[64];           /* ip6tables FORWARD's jump */
};

static void del_name(json_t *arr, const char *n)
{
    for (size_t i = 0; i < json_array_size(arr); i++)
        if (ts_streq(json_string_value(json_array_get(arr, i)), n)) json_array_remove(arr, i--);
}

static int fake_exec(void *ctx, const char *const *argv, const char *input, char **out)
{
    struct fakehost *h = ctx;
    struct ts_buf b;
    ts_buf_init(&b, 1 << 20);
    int n = 0;
    while (argv[n])
        n++;
    for (int i = 0; i < n; i++)
        ts_buf_printf(&b, "%s%s", i ? " " : "", argv[i]);
    if (input) ts_buf_printf(&b, " <<%s", input);
    json_array_append_new(h->log, json_string(ts_buf_cstr(&b)));
    ts_buf_free(&b);
    struct ts_buf o;
    ts_buf_init(&o, 1 << 20);
    int rc = 0;
#define IS(k, s) (n > (k) && ts_streq(argv[k], s))
    if (IS(0, "ip") && IS(1, "netns") && IS(2, "list")) {
        size_t i;
        json_t *v;
        json_array_foreach(h->ns, i, v) ts_buf_printf(&o, "%s (id: %zu)\n", json_string_value(v), i);
    } else if (IS(0, "ip") && IS(1, "netns") && IS(2, "add") && n > 3) {
        json_array_append_new(h->ns, json_string(argv[3]));
    } else if (IS(0, "ip") && IS(1, "netns") && IS(2, "del") && n > 3) {
        del_name(h->ns, argv[3]);
    } else if (IS(0, "ip") && IS(1, "-o") && IS(2, "link") && IS(3, "show")) {
        size_t i;
        json_t *v;
        json_array_foreach(h->links, i, v)
            ts_buf_printf(&o, "%zu: %s: <BROADCAST,MULTICAST,UP> mtu 1500\n", i + 1, json_string_value(v));
    } else if (IS(0, "ip") && IS(1, "link") && IS(2, "add") && n > 3) {
        json_array_append_new(h->links, json_string(argv[3]));
    } else if (IS(0, "ip") && IS(1, "tuntap") && IS(2, "add") && n > 4) {
        json_array_append_new(h->links, json_string(argv[4]));
    } else if (IS(0, "ip") && IS(1, "link") && IS(2, "del") && n > 3) {
        del_name(h->links, argv[3]);
    } else if (IS(0, "ip") && IS(1, "link") && IS(2, "show")) {
        rc = 1;
    } else if (IS(0, "iptables-restore") && input) {
        const char *j = strstr(input, "-I FORWARD 1 -j ");
        if (j) sscanf(j + 16, "%63s", h->jump);
        if (strstr(input, "-D FORWARD -j ")) h->jump[0] = 0;
        if ((j = strstr(input, "-I PREROUTING 1 -j "))) sscanf(j + 19, "%63s", h->rawjump);
    } else if (IS(0, "iptables") && IS(2, "-t") && IS(3, "raw") && IS(4, "-D")) {
        h->rawjump[0] = 0;
    } else if (IS(0, "iptables") && IS(2, "-t") && IS(3, "raw") && IS(4, "-S")) {
        ts_buf_printf(&o, "-P PREROUTING ACCEPT\n");
        if (h->rawjump[0]) ts_buf_printf(&o, "-A PREROUTING -j %s\n", h->rawjump);
    } else if (IS(0, "ip6tables-restore") && input) {
        const char *j = strstr(input, "-I FORWARD 1 -j ");
        if (j) sscanf(j + 16, "%63s", h->jump6);
        if (strstr(input, "-D FORWARD -j ")) h->jump6[0] = 0;
    } else if (IS(0, "ip6tables") && IS(2, "-S") && IS(3, "FORWARD")) {
        ts_buf_printf(&o, "-P FORWARD ACCEPT\n");
        if (h->jump6[0]) ts_buf_printf(&o, "-A FORWARD -j %s\n", h->jump6);
    } else if (IS(0, "ebtables-restore") && input) {
        const char *j = strstr(input, "-I PREROUTING 1 -j ");
        if (j) sscanf(j + 19, "%63s", h->ebjump);
        if (strstr(input, "-D PREROUTING -j ")) h->ebjump[0] = 0;
    } else if (IS(0, "ebtables") && IS(3, "-L")) {
        ts_buf_printf(&o, "Bridge table: nat\n\nBridge chain: PREROUTING, entries: 1, policy: ACCEPT\n");
        if (h->ebjump[0]) ts_buf_printf(&o, "-j %s\n", h->ebjump);
    } else if (IS(0, "iptables") && IS(2, "-S") && IS(3, "FORWARD")) {
        ts_buf_printf(&o, "-P FORWARD ACCEPT\n");
        if (h->jump[0]) ts_buf_printf(&o, "-A FORWARD -j %s\n", h->jump);
    }
    ts_buf_cstr(&o);
    if (out) *out = ts_buf_steal(&o, NULL);
    ts_buf_free(&o);
    return rc;
}

static json_t *fake_state_json;
static json_t *fetch_fake(void *ctx)
{
    (void)ctx;
    return json_incref(fake_state_json);
}

static int plugged_count;
static void on_plugged(void *ctx, const json_t *port)
{
    (void)ctx;
    assert_string_equal(ts_json_str(port, "id", ""), VM1);
    plugged_count++;
}

static bool logged(struct fakehost *h, const char *prefix)
{
    size_t i;
    json_t *v;
    json_array_foreach(h->log, i, v) if (ts_startswith(json_string_value(v), prefix)) return true;
    return false;
}

static void test_reconcile(void **st)
{
    (void)st;
    char dir[] = "/tmp/ts-netagent-unit-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct fakehost h = {json_array(), json_pack("[s,s]", "lo", "eth0"), json_array(), "", "", "", ""};
    json_array_append_new(h.ns, json_string("someone-elses-ns"));
    json_array_append_new(h.links, json_string("brqnotours000"));
    ts_netagent_exec_set_fake(fake_exec, &h);
    fake_state_json = state();
    struct ts_netagent_opts o = {
        .data_dir = dir, .host = "h1", .fetch_state = fetch_fake, .vif_plugged = on_plugged};
    struct ts_netagent *a = ts_netagent_new(&o, NULL);
    assert_non_null(a);

    assert_int_equal(ts_netagent_reconcile(a), 0);
    assert_true(logged(&h, "ip link add brq11111111-aa type bridge"));
    assert_true(logged(&h, "ip link add brq22222222-aa type bridge"));
    assert_true(logged(&h, "ip netns add qdhcp-" NET));
    assert_true(logged(&h, "ip netns add qrouter-" RTR));
    assert_true(logged(&h, "ip netns exec qrouter-" RTR " sysctl -qw net.ipv4.ip_forward=1"));
    assert_true(logged(&h, "ip link add tap55555555-aa type veth peer name ns-55555555-aa netns qdhcp-" NET));
    assert_true(
        logged(&h, "ip link add tap88888888-aa type veth peer name qr-88888888-aa netns qrouter-" RTR));
    assert_true(
        logged(&h, "ip link add tap99999999-aa type veth peer name qg-99999999-aa netns qrouter-" RTR));
    assert_true(logged(&h, "ip -n qdhcp-" NET " addr add 10.77.0.2/24 dev ns-55555555-aa"));
    assert_true(logged(&h, "ip -n qrouter-" RTR " addr add 10.78.0.50/32 dev qg-99999999-aa"));
    assert_true(logged(&h, "ip -n qrouter-" RTR " route replace default via 10.78.0.100 dev qg-99999999-aa"));
    assert_true(logged(&h, "ip netns exec qrouter-" RTR " iptables-restore -w <<*nat"));
    assert_true(logged(&h, "ip netns exec qdhcp-" NET " dnsmasq --conf-file=/dev/null"));
    assert_true(logged(&h, "ip tuntap add dev tap66666666-aa mode tap"));
    assert_true(logged(&h, "ip link set tap66666666-aa master brq11111111-aa"));
    assert_false(logged(&h, "ip tuntap add dev tap77777777-aa")); /* bound to another host */
    assert_true(logged(&h, "iptables-restore -w -n <<*filter"));
    assert_true(logged(&h, "iptables-restore -w -n <<*raw"));
    assert_true(logged(&h, "ebtables-restore --noflush <<*nat"));
    assert_true(logged(&h, "ip6tables-restore -w -n <<*filter"));
    assert_true(ts_startswith(h.jump6, "tsg-F"));
    /* no IPv6 on our root-namespace devices; forwarding only inside the router namespace */
    assert_true(logged(&h, "sysctl -qw net.ipv6.conf.brq11111111-aa.disable_ipv6=1"));
    assert_true(logged(&h, "sysctl -qw net.ipv6.conf.tap66666666-aa.disable_ipv6=1"));
    assert_true(logged(&h, "sysctl -qw net.ipv6.conf.tap55555555-aa.disable_ipv6=1"));
    assert_true(logged(&h, "ip netns exec qrouter-" RTR " sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1"));
    assert_false(logged(&h, "sysctl -qw net.ipv6.conf.all"));
    assert_false(logged(&h, "ip netns exec qrouter-" RTR " radvd")); /* no IPv6 subnet */
    assert_true(ts_startswith(h.rawjump, "tsg-R"));
    assert_true(ts_startswith(h.ebjump, "tsa-P"));
    assert_int_equal(plugged_count, 1);

    /* a second pass on an unchanged world does not rebuild or replug */
    json_array_clear(h.log);
    assert_int_equal(ts_netagent_reconcile(a), 0);
    assert_false(logged(&h, "ip link add"));
    assert_false(logged(&h, "ip netns add"));
    assert_false(logged(&h, "iptables-restore -w -n"));
    assert_false(logged(&h, "ebtables-restore"));
    assert_false(logged(&h, "ip6tables-restore"));
    assert_false(logged(&h, "sysctl"));
    assert_false(logged(&h, "conntrack"));
    assert_int_equal(plugged_count, 1);

    /* a removed rule: the filter text is rebuilt and the flows it let in are deleted */
    json_t *rules = json_object_get(json_array_get(json_object_get(fake_state_json, "security_groups"), 0),
                                    "security_group_rules");
    json_array_remove(rules, 2); /* ingress icmp from the group */
    json_array_clear(h.log);
    assert_int_equal(ts_netagent_reconcile(a), 0);
    assert_true(logged(&h, "iptables-restore -w -n <<*filter"));
    assert_true(logged(&h, "conntrack -D -f ipv4 -w "));
    assert_false(logged(&h, "ebtables-restore"));

    /* the same port on another server (deleted and rebooted between two passes): plugged again */
    json_object_set_new(ts_netagent_find(fake_state_json, "ports", VM1), "device_id",
                        json_string("dddddddd-aaaa-4aaa-8aaa-00000000000d"));
    assert_int_equal(ts_netagent_reconcile(a), 0);
    assert_int_equal(plugged_count, 2);
    assert_int_equal(ts_netagent_reconcile(a), 0);
    assert_int_equal(plugged_count, 2);
    json_object_set_new(ts_netagent_find(fake_state_json, "ports", VM1), "device_id", json_string(DEV1));
    assert_int_equal(ts_netagent_reconcile(a), 0);
    plugged_count = 1;

    /* an admin-down router goes (namespace and its ports), and comes back */
    json_t *rtr = ts_netagent_find(fake_state_json, "routers", RTR);
    json_object_set_new(rtr, "admin_state_up", json_false());
    json_array_clear(h.log);
    assert_int_equal(ts_netagent_reconcile(a), 0);
    assert_true(logged(&h, "ip netns del qrouter-" RTR));
    assert_true(logged(&h, "ip link del tap88888888-aa"));
    json_object_set_new(rtr, "admin_state_up", json_true());
    json_array_clear(h.log);
    assert_int_equal(ts_netagent_reconcile(a), 0);
    assert_true(logged(&h, "ip netns add qrouter-" RTR));

    /* admin_state_up false takes the VIF down */
    json_object_set_new(ts_netagent_find(fake_state_json, "ports", VM1), "admin_state_up", json_false());
    json_array_clear(h.log);
    assert_int_equal(ts_netagent_reconcile(a), 0);
    assert_true(logged(&h, "ip link set tap66666666-aa down"));
    assert_int_equal(plugged_count, 1);

    /* everything deleted: ours goes, nobody else's */
    json_decref(fake_state_json);
    fake_state_json = json_pack("{s:[],s:[],s:[],s:[],s:[],s:[]}", "networks", "subnets", "ports", "routers",
                                "floatingips", "security_groups");
    json_array_clear(h.log);
    assert_int_equal(ts_netagent_reconcile(a), 0);
    assert_true(logged(&h, "ip netns del qdhcp-" NET));
    assert_true(logged(&h, "ip netns del qrouter-" RTR));
    assert_true(logged(&h, "ip link del brq11111111-aa"));
    assert_true(logged(&h, "ip link del tap66666666-aa"));
    assert_true(logged(&h, "iptables-restore -w -n <<*filter"));
    assert_false(logged(&h, "ip netns del someone-elses-ns"));
    assert_false(logged(&h, "ip link del brqnotours000"));
    assert_false(logged(&h, "ip link del eth0"));
    assert_int_equal(json_array_size(h.ns), 1);
    assert_int_equal(json_array_size(h.links), 3);
    assert_string_equal(h.jump, "");
    assert_string_equal(h.rawjump, "");
    assert_string_equal(h.ebjump, "");
    assert_string_equal(h.jump6, "");
    assert_true(logged(&h, "ebtables-restore --noflush <<*nat"));
    assert_true(logged(&h, "ip6tables-restore -w -n <<*filter"));

    ts_netagent_free(a);
    ts_netagent_exec_set_fake(NULL, NULL);
    json_decref(fake_state_json);
    json_decref(h.ns);
    json_decref(h.links);
    json_decref(h.log);
    char *cmd[] = {"rm", "-rf", dir, NULL};
    assert_int_equal(ts_netagent_exec((const char *const *)cmd, NULL, NULL, 0), 0);
}

static void test_exec_real(void **st)
{
    (void)st;
    ts_netagent_exec_set_fake(NULL, NULL);
    const char *echo[] = {"cat", NULL};
    char *out = NULL;
    assert_int_equal(ts_netagent_exec(echo, "hello\n", &out, 0), 0);
    assert_string_equal(out, "hello\n");
    free(out);
    const char *f[] = {"false", NULL};
    assert_int_equal(ts_netagent_exec(f, NULL, NULL, TS_NETAGENT_EXEC_QUIET), 1);
    const char *nx[] = {"/nonexistent/tool", NULL};
    assert_int_equal(ts_netagent_exec(nx, NULL, NULL, TS_NETAGENT_EXEC_QUIET), 127);
    json_t *j = json_pack("[s,s,s]", "sh", "-c", "exit 3");
    assert_int_equal(ts_netagent_exec_json(j, NULL, NULL, TS_NETAGENT_EXEC_QUIET), 3);
    json_decref(j);
    j = json_pack("[s,i]", "sh", 1);
    assert_int_equal(ts_netagent_exec_json(j, NULL, NULL, 0), -1);
    json_decref(j);
}

/* ---- IPv6: DHCPv6, radvd, ip6tables ------------------------------------------------ */

#define N6 "dddddddd-aaaa-4aaa-8aaa-0000000000d1"
#define S6A "dddddddd-aaaa-4aaa-8aaa-0000000000d2" /* slaac */
#define S6B "dddddddd-aaaa-4aaa-8aaa-0000000000d3" /* dhcpv6-stateful */
#define S6C "dddddddd-aaaa-4aaa-8aaa-0000000000d4" /* dhcpv6-stateless */
#define P6 "dddddddd-aaaa-4aaa-8aaa-0000000000d5"
#define D6 "dddddddd-aaaa-4aaa-8aaa-0000000000d6"
#define R6 "dddddddd-aaaa-4aaa-8aaa-0000000000d7"
#define RP6 "dddddddd-aaaa-4aaa-8aaa-0000000000d8"

static const char *STATE6 =
    "{\"networks\":[{\"id\":\"" N6 "\",\"mtu\":1450}],"
    "\"subnets\":["
    "{\"id\":\"" S6A "\",\"network_id\":\"" N6 "\",\"cidr\":\"fd00:a::/64\",\"ip_version\":6,"
    "\"ipv6_ra_mode\":\"slaac\",\"ipv6_address_mode\":\"slaac\",\"gateway_ip\":\"fd00:a::1\","
    "\"dns_nameservers\":[\"fd00:a::53\"]},"
    "{\"id\":\"" S6B "\",\"network_id\":\"" N6 "\",\"cidr\":\"fd00:b::/64\",\"ip_version\":6,"
    "\"ipv6_ra_mode\":\"dhcpv6-stateful\",\"ipv6_address_mode\":\"dhcpv6-stateful\",\"gateway_ip\":\"fd00:b::1\","
    "\"dns_nameservers\":[\"fd00:b::53\",\"10.0.0.53\"]},"
    "{\"id\":\"" S6C "\",\"network_id\":\"" N6 "\",\"cidr\":\"fd00:c::/64\",\"ip_version\":6,"
    "\"ipv6_ra_mode\":null,\"ipv6_address_mode\":\"dhcpv6-stateless\",\"gateway_ip\":\"fd00:c::1\"}],"
    "\"ports\":["
    "{\"id\":\"" D6 "\",\"network_id\":\"" N6 "\",\"mac_address\":\"fa:16:3e:00:06:02\",\"device_owner\":"
    "\"network:dhcp\",\"fixed_ips\":[{\"subnet_id\":\"" S6B "\",\"ip_address\":\"fd00:b::2\"},"
    "{\"subnet_id\":\"" S6C "\",\"ip_address\":\"fd00:c::f816:3eff:fe00:602\"}]},"
    "{\"id\":\"" P6 "\",\"network_id\":\"" N6 "\",\"mac_address\":\"fa:16:3e:00:06:10\",\"device_owner\":"
    "\"compute:nova\",\"binding:host_id\":\"h1\",\"security_groups\":[\"" SG "\"],"
    "\"allowed_address_pairs\":[{\"ip_address\":\"fd00:a::99\",\"mac_address\":\"fa:16:3e:00:06:99\"}],"
    "\"fixed_ips\":[{\"subnet_id\":\"" S6A "\",\"ip_address\":\"fd00:a::f816:3eff:fe00:610\"},"
    "{\"subnet_id\":\"" S6B "\",\"ip_address\":\"fd00:b::0:10\"}]},"
    "{\"id\":\"" RP6 "\",\"network_id\":\"" N6 "\",\"mac_address\":\"fa:16:3e:00:06:01\",\"device_owner\":"
    "\"network:router_interface\",\"device_id\":\"" R6 "\","
    "\"fixed_ips\":[{\"subnet_id\":\"" S6A "\",\"ip_address\":\"fd00:a::1\"},"
    "{\"subnet_id\":\"" S6B "\",\"ip_address\":\"fd00:b::1\"}]}],"
    "\"routers\":[{\"id\":\"" R6 "\"}],\"floatingips\":[],"
    "\"security_groups\":[{\"id\":\"" SG "\",\"security_group_rules\":["
    "{\"direction\":\"egress\",\"ethertype\":\"IPv4\",\"protocol\":null},"
    "{\"direction\":\"egress\",\"ethertype\":\"IPv6\",\"protocol\":null},"
    "{\"direction\":\"ingress\",\"ethertype\":\"IPv6\",\"protocol\":\"ipv6-icmp\",\"remote_group_id\":\"" SG "\"},"
    "{\"direction\":\"ingress\",\"ethertype\":\"IPv6\",\"protocol\":\"tcp\",\"port_range_min\":22,"
    "\"port_range_max\":22,\"remote_ip_prefix\":\"fd00::/16\"}]}]}";

static void test_ipv6(void **st)
{
    (void)st;
    json_t *s = NULL, *chains = NULL;
    assert_int_equal(ts_json_parse(STATE6, strlen(STATE6), &s, NULL), 0);
    char lla[46];
    assert_true(ts_netagent_lla("fa:16:3e:00:06:01", lla));
    assert_string_equal(lla, "fe80::f816:3eff:fe00:601");
    assert_false(ts_netagent_lla("fa:16:3e:00:06", lla));
    assert_int_equal(ts_netagent_prefixlen6("fd00:a::/64"), 64);
    assert_int_equal(ts_netagent_prefixlen6("fd00:a::/129"), -1);
    assert_int_equal(ts_netagent_prefixlen6("10.0.0.0/8"), -1);

    /* DHCPv6: stateful and stateless served (static ranges), SLAAC not; DNS as option6 */
    const json_t *dp = ts_netagent_find(s, "ports", D6);
    json_t *a = ts_netagent_dnsmasq_argv(s, N6, dp, "ns-x", "/d");
    assert_non_null(a);
    assert_true(has(a, "--dhcp-range=set:subnet-" S6B ",fd00:b::,static,64,86400s"));
    assert_true(has(a, "--dhcp-range=set:subnet-" S6C ",fd00:c::,static,64,86400s"));
    assert_true(has(a, "--dhcp-option-force=tag:subnet-" S6B ",option6:dns-server,[fd00:b::53]"));
    char *t = json_dumps(a, JSON_COMPACT);
    assert_null(strstr(t, S6A));
    assert_null(strstr(t, "enable-ra"));
    free(t);
    json_decref(a);
    char *h = ts_netagent_dnsmasq_hosts(s, N6, dp);
    /* every port with an address there (the router's too, as Neutron), the DHCP port excepted */
    assert_string_equal(h, "fa:16:3e:00:06:10,[fd00:b::10],host-fd00-b--10\n"
                           "fa:16:3e:00:06:01,[fd00:b::1],host-fd00-b--1\n");
    free(h);

    /* radvd: one interface block, the slaac prefix autonomous, the stateful one managed */
    t = ts_netagent_radvd_conf(s, R6);
    assert_non_null(t);
    assert_non_null(strstr(t, "interface qr-dddddddd-aa\n{\n    AdvSendAdvert on;\n"));
    assert_non_null(strstr(t, "    AdvLinkMTU 1450;\n    AdvManagedFlag on;\n"));
    assert_null(strstr(t, "AdvOtherConfigFlag"));
    assert_non_null(strstr(t, "    prefix fd00:a::/64\n    {\n        AdvOnLink on;\n        AdvAutonomous on;\n"));
    assert_non_null(strstr(t, "    prefix fd00:b::/64\n    {\n        AdvOnLink on;\n        AdvAutonomous off;\n"));
    assert_non_null(strstr(t, "    RDNSS fd00:a::53 fd00:b::53 {};\n"));
    free(t);
    assert_null(ts_netagent_radvd_conf(s, "no-such-router"));

    /* ip6tables: ND first, RAs from the router's link-local address only, DHCPv6, the
     * group's IPv6 rules; anti-spoofing with the link-local address of each MAC */
    t = ts_netagent_sg6_restore(s, "h1", "tsg-Fabc", NULL, true, false, &chains);
    assert_true(has(chains, "tsg-idddddddd-aa") && has(chains, "tsg-sdddddddd-aa"));
    assert_non_null(strstr(t, "*filter\n:tsg-Fabc - [0:0]\n"));
    assert_non_null(strstr(t, "-I FORWARD 1 -j tsg-Fabc\n"));
    assert_non_null(strstr(t, "-A tsg-idddddddd-aa -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j RETURN\n"));
    assert_non_null(strstr(t, "-A tsg-idddddddd-aa -s fe80::f816:3eff:fe00:601/128 -p ipv6-icmp -m icmp6 "
                              "--icmpv6-type 134 -j RETURN\n-A tsg-idddddddd-aa -p ipv6-icmp -m icmp6 "
                              "--icmpv6-type 134 -j DROP\n"));
    assert_non_null(strstr(t, "-A tsg-idddddddd-aa -p udp -m udp --sport 547 --dport 546 -j RETURN\n"));
    assert_non_null(strstr(t, "-A tsg-idddddddd-aa -p ipv6-icmp -s fd00:a::f816:3eff:fe00:610/128 -j RETURN\n"));
    assert_non_null(strstr(t, "-A tsg-idddddddd-aa -p ipv6-icmp -s fd00:a::99 -j RETURN\n"));
    assert_non_null(strstr(t, "-A tsg-idddddddd-aa -p tcp -m tcp --dport 22 -s fd00::/16 -j RETURN\n"));
    assert_non_null(strstr(t, "-A tsg-sdddddddd-aa -s fd00:b::0:10/128 -m mac --mac-source fa:16:3e:00:06:10 -j RETURN\n"));
    assert_non_null(strstr(t, "-A tsg-sdddddddd-aa -s fe80::f816:3eff:fe00:610/128 -m mac --mac-source fa:16:3e:00:06:10 -j RETURN\n"));
    assert_non_null(strstr(t, "-A tsg-sdddddddd-aa -s fd00:a::99 -m mac --mac-source fa:16:3e:00:06:99 -j RETURN\n"));
    assert_non_null(strstr(t, "-A tsg-sdddddddd-aa -s fe80::f816:3eff:fe00:699/128 -m mac --mac-source fa:16:3e:00:06:99 -j RETURN\n"));
    /* from the VM: RA dropped before anything, DAD from ::, then the source check */
    assert_non_null(strstr(t, ":tsg-odddddddd-aa - [0:0]\n"));
    const char *o = strstr(t, "-A tsg-odddddddd-aa ");
    assert_non_null(o);
    assert_true(ts_startswith(o, "-A tsg-odddddddd-aa -p ipv6-icmp -m icmp6 --icmpv6-type 134 -j DROP\n"
                                 "-A tsg-odddddddd-aa -s ::/128 -d ff02::/16 -p ipv6-icmp -m icmp6 --icmpv6-type 131 -j RETURN\n"));
    assert_non_null(strstr(t, "-A tsg-odddddddd-aa -j tsg-sdddddddd-aa\n"));
    assert_non_null(strstr(t, "-A tsg-odddddddd-aa -p udp -m udp --sport 546 --dport 547 -j RETURN\n"));
    assert_non_null(strstr(t, "-A tsg-odddddddd-aa -p udp -m udp --sport 547 --dport 546 -j DROP\n"));
    assert_non_null(strstr(t, "-A tsg-odddddddd-aa -j RETURN\n")); /* egress IPv6 any */
    assert_null(strstr(t, "10.0.0.53"));
    assert_true(ts_endswith(t, "COMMIT\n"));
    free(t);
    json_decref(chains);

    /* the rule specs: "icmp" on an IPv6 rule is ICMPv6; IPv4 rules produce nothing here */
    struct ts_buf b;
    ts_buf_init(&b, 1 << 16);
    json_t *r = json_pack("{s:s,s:s,s:s,s:i,s:i}", "direction", "ingress", "ethertype", "IPv6", "protocol", "icmp",
                          "port_range_min", 128, "port_range_max", 0);
    assert_int_equal(ts_netagent_sg6_rule_specs(s, r, &b, "C"), 1);
    assert_int_equal(ts_netagent_sg_rule_specs(s, r, &b, "C"), 0);
    assert_string_equal(ts_buf_cstr(&b), "-A C -p ipv6-icmp -m icmp6 --icmpv6-type 128/0 -j RETURN\n");
    json_decref(r);
    ts_buf_free(&b);
    ts_buf_init(&b, 1 << 16);
    r = json_pack("{s:s,s:s,s:s}", "direction", "egress", "ethertype", "IPv6", "remote_ip_prefix", "::/0");
    assert_int_equal(ts_netagent_sg6_rule_specs(s, r, &b, "C"), 1);
    json_decref(r);
    r = json_pack("{s:s,s:s,s:s}", "direction", "egress", "ethertype", "IPv6", "remote_ip_prefix", "fd00::/8 -j X");
    assert_int_equal(ts_netagent_sg6_rule_specs(s, r, &b, "C"), 0);
    json_decref(r);
    assert_string_equal(ts_buf_cstr(&b), "-A C -j RETURN\n");
    ts_buf_free(&b);
    json_decref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),      cmocka_unit_test(test_dnsmasq_argv),
        cmocka_unit_test(test_router_nat), cmocka_unit_test(test_sg_rule_specs),
        cmocka_unit_test(test_sg_restore), cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_reconcile),  cmocka_unit_test(test_exec_real),
        cmocka_unit_test(test_zones_and_arp), cmocka_unit_test(test_ipv6),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
