/*
 * ts_network.h: the network service (Neutron v2.0 compatible API and IPAM). main.c picks it
 * up through ts_network_service.
 */
#ifndef TS_NETWORK_H
#define TS_NETWORK_H

#include "ts_service.h"

extern const struct ts_service ts_network_service;

#endif
