/*
 * ts_netagent.h: the network data plane, run by the per-host agent (Neutron's Linux bridge,
 * DHCP, L3 and metadata agents in one). It reads the desired state (networks, subnets,
 * ports, routers, floating IPs, security groups) from the network API with a service token
 * and makes it real on this host: a bridge brq<net> per network, a tap<port> per VIF,
 * qdhcp-<net> namespaces with dnsmasq and a metadata proxy, qrouter-<router> namespaces
 * with SNAT/DNAT, and stateful iptables security groups. See docs/internals/network-agent.md.
 */
#ifndef TS_NETAGENT_H
#define TS_NETAGENT_H

#include "ts_service.h"

/* Starts the agent for `host` (NULL = env->host): reconciles once in the background, then
 * every [network] agent_interval seconds (default 5) and on bus fanout "network_agent"
 * events. *state is the caller's to pass to stop/sync. Fails with -TS_EFORBIDDEN when not
 * run as root (the caller may log it and go on without a data plane). Run one agent per
 * host: two agents of one cloud on a host would undo each other's work. */
int ts_netagent_start(struct ts_service_env *env, const char *host, void **state, struct ts_err *err);
/* Stops the thread and the metadata listeners. What was made stays (the next start
 * reconciles it). NULL is a no-op. */
void ts_netagent_stop(void *state);
/* Full reconcile now, on the caller's thread. 0 when every step worked, else -TS_EIO. */
int ts_netagent_sync(void *state);

/* `tinystack netagent-apply --state FILE --data DIR [--host H] [--once] [--interval S]`:
 * a test entry point that needs no API. Reconciles the desired state in FILE (JSON with
 * "networks", "subnets", "ports", "routers", "floatingips", "security_groups" as the
 * Neutron API lists them, plus optional "servers": {device_id: {...}} for metadata), then,
 * unless --once, keeps serving metadata and re-applies FILE when it changes, until
 * SIGTERM/SIGINT. argv[0] is the subcommand name. Returns the process exit code. */
int ts_netagent_apply_main(int argc, char **argv);

#endif
