/*
 * ts_netagent_int.h: what the agent's files share, and what the unit tests reach: the
 * command runner (one module, replaceable by a recording fake), the pure planner
 * functions (names, dnsmasq argv, iptables-restore texts, metadata documents), the
 * metadata listener and the agent object with its pluggable sources.
 */
#ifndef TS_NETAGENT_INT_H
#define TS_NETAGENT_INT_H

#include <jansson.h>
#include <stdbool.h>

#include "core/ts_core.h"

/* ---- command runner (ts_netagent_exec.c) ------------------------------------------- */
enum {
    TS_NETAGENT_EXEC_QUIET = 1,  /* a non-zero exit is expected sometimes: log at debug level */
    TS_NETAGENT_EXEC_DAEMON = 2, /* the command daemonizes: no output capture (stdout/err to /dev/null) */
};
/* A fake for tests: gets argv (NULL-terminated), stdin text (may be NULL); sets *out
 * (malloc'd, may stay NULL) and returns the exit status. */
typedef int (*ts_netagent_exec_fn)(void *ctx, const char *const *argv, const char *input, char **out);
void ts_netagent_exec_set_fake(ts_netagent_exec_fn fn, void *ctx);
/* Runs argv[0] (looked up in PATH) with fork/exec, stdin from input (may be NULL), stdout
 * captured into *out (malloc'd, up to 4 MiB; out may be NULL). No fd beyond 2 is
 * inherited. Returns the exit status (0 = success, 128+N for signal N) or -1 if it could
 * not run; a failure is logged with the command and its stderr. Killed after 30 s. */
int ts_netagent_exec(const char *const *argv, const char *input, char **out, int flags);
/* Same with argv as a JSON array of strings. */
int ts_netagent_exec_json(const json_t *argv, const char *input, char **out, int flags);

/* ---- naming and lookups (ts_netagent_plan.c) ---------------------------------------- */
#define TS_NETAGENT_IFNAME 16
/* prefix + first 11 characters of id ("brq", "tap", "ns-", "qr-", "qg-"). */
void ts_netagent_ifname(char out[TS_NETAGENT_IFNAME], const char *prefix, const char *id);
/* The object of `list` (a state key: "ports", "subnets", ...) with this id, or NULL. */
json_t *ts_netagent_find(const json_t *state, const char *list, const char *id);
/* IPv4 CIDR helpers: "10.0.0.0/24" -> prefix length; dotted mask; -1 / false if bad. */
int ts_netagent_prefixlen(const char *cidr);
bool ts_netagent_mask(int prefixlen, char out[16]);
bool ts_netagent_is_v4(const char *addr);
/* IPv6: an address; "fd00::/64" -> 64 (-1 if bad); the link-local address the kernel makes
 * from a MAC (EUI-64, fe80::/64) into out, false if the MAC is bad. */
bool ts_netagent_is_v6(const char *addr);
int ts_netagent_prefixlen6(const char *cidr);
bool ts_netagent_lla(const char *mac, char out[46]);
/* An IPv6 subnet the DHCP namespace serves: enable_dhcp and ipv6_address_mode
 * dhcpv6-stateful, dhcpv6-stateless or neither mode set (SLAAC needs nothing from DHCP). */
bool ts_netagent_dhcp6_subnet(const json_t *sn);
/* A port that gets a VIF tap on this host: device_owner compute:* and binding:host_id == host. */
bool ts_netagent_port_is_vif(const json_t *port, const char *host);

/* dnsmasq argv (JSON array) for the DHCP server of net_id; dhcp_port is the network:dhcp
 * port whose address the namespace holds; iface is its name in the namespace; dir the
 * per-network state dir (pid, leases, log). NULL when the network has no DHCP subnet (IPv4,
 * or IPv6 as ts_netagent_dhcp6_subnet says). */
json_t *ts_netagent_dnsmasq_argv(const json_t *state, const char *net_id, const json_t *dhcp_port,
                                 const char *iface, const char *dir);
/* Contents of the --dhcp-hostsfile of net_id: one "MAC,IP,host-a-b-c-d" line per port address
 * on a subnet the argv serves (the DHCP port excluded), "MAC,[IPv6],host-fd00--5" on a
 * stateful IPv6 one; "" when none. Caller frees. */
char *ts_netagent_dnsmasq_hosts(const json_t *state, const char *net_id, const json_t *dhcp_port);
/* iptables-restore text of the nat table in a qdhcp namespace (metadata REDIRECT). */
char *ts_netagent_dhcp_nat(int meta_port);
/* iptables-restore text of the nat table of a router namespace: floating IP DNAT/SNAT and
 * the gateway SNAT of its internal subnets. */
char *ts_netagent_router_nat(const json_t *state, const char *router_id);

/* Security groups. Chains: tsg-i<port> (to the VM), tsg-o<port> (from the VM),
 * fwd_chain (jumped to from FORWARD). Input for `iptables-restore -n` that (re)builds all
 * of our chains: ports with port_security_enabled != false among the VIF ports of host;
 * stale_chains (ours, no longer wanted) are flushed and deleted; add_jump inserts
 * "-I FORWARD 1 -j fwd_chain", remove_jump deletes it (when nothing is wanted).
 * *chains_out (if not NULL) gets the JSON array of chain names the text creates. */
char *ts_netagent_sg_restore(const json_t *state, const char *host, const char *fwd_chain,
                             const json_t *stale_chains, bool add_jump, bool remove_jump,
                             json_t **chains_out);
/* Appends the iptables rule specs (no "-A chain") for one SG rule as seen from port's
 * chain (ingress: -s, egress: -d), expanding remote_group_id to the fixed IPs of the
 * ports in that group. Returns the number of lines added (0 for IPv6 rules). */
int ts_netagent_sg_rule_specs(const json_t *state, const json_t *rule, struct ts_buf *out, const char *chain);

/* The same for ip6tables-restore: the port chains for IPv6 (neighbour discovery, RAs from the
 * network's routers only, DHCPv6, the groups' IPv6 rules, IPv6 anti-spoofing), same names. */
char *ts_netagent_sg6_restore(const json_t *state, const char *host, const char *fwd_chain,
                              const json_t *stale_chains, bool add_jump, bool remove_jump, json_t **chains_out);
/* ts_netagent_sg_rule_specs for ip6tables (IPv6 rules only; "icmp" means ICMPv6). */
int ts_netagent_sg6_rule_specs(const json_t *state, const json_t *rule, struct ts_buf *out, const char *chain);
/* radvd.conf of router_id: an interface block per qr- port with IPv6 subnets whose
 * ipv6_ra_mode is set; NULL when there is none (no radvd then). Caller frees. */
char *ts_netagent_radvd_conf(const json_t *state, const char *router_id);

/* Conntrack zones, one per network (as Neutron's Linux bridge firewall): network id ->
 * zone number (1..TS_NETAGENT_ZONE_MAX) from a hash of the id, stable across passes,
 * collisions moved to the next free number. New JSON object. */
#define TS_NETAGENT_ZONE_MAX 65000
json_t *ts_netagent_zones(const json_t *state);
/* iptables-restore text of the raw table: chain with "-i brq<net> -j CT --zone Z" per
 * zone (add_jump: "-I PREROUTING 1 -j chain"); remove: flush and delete the chain (the
 * caller deletes the jump first). */
char *ts_netagent_zone_restore(const json_t *zones, const char *chain, bool add_jump, bool remove);
/* ebtables-restore --noflush text of the nat table: MAC and ARP anti-spoofing for the
 * same ports as the security groups. chain (jumped to from PREROUTING) sends frames from
 * tap<port> to tsm-<port> (source MAC must be the port's or an allowed pair's) and ARP to
 * tsa-<port> (sender IP and MAC must be a fixed IP or allowed pair, or a 0.0.0.0 probe).
 * stale_chains, add_jump, remove_jump and chains_out as ts_netagent_sg_restore. */
char *ts_netagent_arp_restore(const json_t *state, const char *host, const char *chain,
                              const json_t *stale_chains, bool add_jump, bool remove_jump, json_t **chains_out);
/* The conntrack deletions (JSON array of argv arrays, "conntrack -D -f ipv4 -w ZONE ...")
 * that end the flows a security-group rule let through, for every rule line of old_text
 * (the last filter text applied) that new_text no longer has, on ports still present:
 * port address, remote /32, protocol, single destination port or ICMP type as the rule
 * said. As Neutron, so removing a rule stops an established flow. */
json_t *ts_netagent_ct_flushes(const json_t *state, const char *host, const json_t *zones, const char *old_text,
                               const char *new_text);

/* ---- metadata documents (ts_netagent_metadata.c) ------------------------------------ */
/* inst: normalized instance {"uuid","name","hostname","instance_name","availability_zone",
 * "project_id","metadata":{},"user_data": base64|null,"key_name","public_key",
 * "flavor","security_groups":[names]}. port: the requesting port. Renders the document at
 * path ("/openstack/latest/meta_data.json", "/latest/meta-data/instance-id", ...).
 * Returns 200 and sets *body (malloc'd) and *ctype (static), or 404. */
int ts_netagent_meta_render(const json_t *state, const json_t *inst, const json_t *port, const char *path,
                            char **body, const char **ctype);
/* The EC2 instance id ("i-0000000a") of inst into out[32]. */
void ts_netagent_meta_ec2_id(const json_t *inst, char out[32]);
/* True when path is the OpenStack tree's password (/openstack/<version>/password), which
 * the guest may also POST to (kept by compute, not rendered here). */
bool ts_netagent_meta_is_password(const char *path);

/* ---- metadata listener (ts_netagent_metasrv.c) ------------------------------------- */
/* Answers a request: net_id and src_ip say who asks; method is "GET" or "POST" (then
 * data/data_len hold the request body, NUL-terminated). Returns the HTTP status and sets
 * *body (malloc'd) / *ctype. Called on the listener thread. */
typedef int (*ts_netagent_meta_fn)(void *ctx, const char *net_id, const char *src_ip, const char *method,
                                   const char *path, const char *data, size_t data_len, char **body,
                                   const char **ctype);
struct ts_netagent_metasrv;
struct ts_netagent_metasrv *ts_netagent_metasrv_new(ts_netagent_meta_fn fn, void *ctx);
/* Listens on 0.0.0.0:port inside namespace netns for net_id (idempotent). */
int ts_netagent_metasrv_listen(struct ts_netagent_metasrv *m, const char *net_id, const char *netns,
                               int port);
/* Closes the listener of net_id (before its namespace goes). */
void ts_netagent_metasrv_close(struct ts_netagent_metasrv *m, const char *net_id);
bool ts_netagent_metasrv_has(struct ts_netagent_metasrv *m, const char *net_id);
void ts_netagent_metasrv_free(struct ts_netagent_metasrv *m);

/* ---- the agent (ts_netagent.c) ------------------------------------------------------ */
struct ts_netagent_opts {
    const char *data_dir; /* state goes to <data_dir>/network-agent */
    const char *host;
    const char *external_bridge_interface; /* operator config; NULL = none (the default) */
    int meta_port;                         /* 9697 */
    bool serve_metadata;
    /* Desired state (new reference) or NULL on failure (the sync is skipped: never tear
     * down because the API is unreachable). */
    json_t *(*fetch_state)(void *ctx);
    /* Normalized instance for metadata (new reference) or NULL. */
    json_t *(*fetch_instance)(void *ctx, const char *device_id);
    /* The instance password kept by compute: set == NULL reads it into *got (malloc'd),
     * else stores set once. Returns an HTTP status (200, 409 already set, 404, 400, 500).
     * May be NULL (the password path is then 404). */
    int (*password)(void *ctx, const char *device_id, const char *set, char **got);
    /* A VIF of port was plugged (tap made): set the port ACTIVE, tell compute. May be NULL. */
    void (*vif_plugged)(void *ctx, const json_t *port);
    void *ctx;
};
struct ts_netagent;
struct ts_netagent *ts_netagent_new(const struct ts_netagent_opts *o, struct ts_err *err);
/* One reconcile pass (thread-safe). */
int ts_netagent_reconcile(struct ts_netagent *a);
/* A pass towards the empty state: removes everything this agent made. */
int ts_netagent_teardown(struct ts_netagent *a);
void ts_netagent_free(struct ts_netagent *a);
/* The FORWARD chain of this agent (tsg-F + hash of its state dir), into out[32]. */
void ts_netagent_fwd_chain(const char *state_dir, char out[32]);

#endif
