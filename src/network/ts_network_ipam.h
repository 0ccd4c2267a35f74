/*
 * ts_network_ipam.h: address arithmetic for the network service: IPv4/IPv6 addresses as
 * 128-bit integers, CIDR parsing (strict: no host bits), containment and overlap, allocation
 * pool validation, next-free-address search and Neutron-style MAC generation. Pure functions
 * (no I/O, no locks): callable from any thread; uniqueness is the database's job.
 */
#ifndef TS_NETWORK_IPAM_H
#define TS_NETWORK_IPAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef unsigned __int128 ts_network_u128;

struct ts_network_cidr {
    int version;                 /* 4 or 6 */
    ts_network_u128 net;         /* network address (host bits zero) */
    int prefix;                  /* 0..32 or 0..128 */
};

struct ts_network_pool {
    ts_network_u128 start, end;  /* inclusive */
};

/* Parses an IPv4 or IPv6 address. Returns 0 and sets *version and *out, or -1. */
int ts_network_ip_parse(const char *s, int *version, ts_network_u128 *out);
/* Formats an address in canonical text (inet_ntop). out needs 46 bytes. */
void ts_network_ip_format(int version, ts_network_u128 addr, char out[46]);
/* Parses "a.b.c.d/n" or "x::/n". strict: host bits must be zero (Neutron's rule); else
 * they are masked off. Returns 0, or -1 on malformed text or bad prefix. */
int ts_network_cidr_parse(const char *s, bool strict, struct ts_network_cidr *out);
/* Canonical text "10.0.0.0/24". out needs 50 bytes. */
void ts_network_cidr_format(const struct ts_network_cidr *c, char out[50]);
/* First and last address of the CIDR. */
ts_network_u128 ts_network_cidr_first(const struct ts_network_cidr *c);
ts_network_u128 ts_network_cidr_last(const struct ts_network_cidr *c);
bool ts_network_cidr_contains(const struct ts_network_cidr *c, int version, ts_network_u128 addr);
bool ts_network_cidr_overlap(const struct ts_network_cidr *a, const struct ts_network_cidr *b);

/* Neutron's default allocation pool: v4 first+1 .. last-1 (without the gateway when it is at
 * either end), v6 first+1 .. last. Fills up to 2 pools (the gateway splits the range);
 * returns the number filled. gw may be 0 (none). */
int ts_network_default_pools(const struct ts_network_cidr *c, ts_network_u128 gw, bool has_gw,
                             struct ts_network_pool out[2]);

/* Validates pools against the subnet: start <= end, inside the CIDR, not the network or (v4)
 * broadcast address, no two pools overlapping, the gateway (if has_gw) in no pool.
 * Returns 0, or -1 with a Neutron-like message in msg. */
int ts_network_pools_validate(const struct ts_network_cidr *c, const struct ts_network_pool *pools, int n,
                              bool has_gw, ts_network_u128 gw, char *msg, size_t msglen);

/* First address in the pools (in pool order) that is not in used (sorted ascending, n_used).
 * Returns 0 and *out, or -1 when the pools are exhausted. */
int ts_network_next_free(const struct ts_network_pool *pools, int n_pools, const ts_network_u128 *used,
                         size_t n_used, ts_network_u128 *out);
/* True if addr is inside one of the pools. */
bool ts_network_in_pools(const struct ts_network_pool *pools, int n, ts_network_u128 addr);

/* "fa:16:3e:xx:xx:xx" with 3 random bytes (base prefix as Neutron's base_mac). out: 18 bytes. */
void ts_network_mac_generate(char out[18]);
/* Validates and lowercases a MAC "aa:bb:cc:dd:ee:ff" (unicast, not all-zero). 0 or -1. */
int ts_network_mac_normalize(const char *in, char out[18]);

/* qsort comparator for ts_network_u128 arrays. */
int ts_network_u128_cmp(const void *a, const void *b);

#endif
