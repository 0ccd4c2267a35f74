/*
 * ts_network.h: the network service (Neutron v2.0 compatible API and IPAM). main.c picks it
 * up through ts_network_service.
 */
#ifndef TS_NETWORK_H
#define TS_NETWORK_H

#include "ts_service.h"

extern const struct ts_service ts_network_service;

/* The host side of Neutron's agents API: a thread that casts report_state for this host's
 * Linux bridge, DHCP, L3 and metadata agents (all played by the data-plane agent of
 * src/network/agent) to the network service at start and every [network]
 * agent_report_interval seconds (default 10). Run it in the process that runs the data-plane
 * agent, for the same host; *state is the caller's. Stop it before the agent; NULL is a no-op. */
int ts_network_agent_report_start(struct ts_service_env *env, const char *host, void **state, struct ts_err *err);
void ts_network_agent_report_stop(void *state);

#endif
