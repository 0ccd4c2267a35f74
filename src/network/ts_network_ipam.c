/*
 * ts_network_ipam.c: address arithmetic behind subnets and ports (see ts_network_ipam.h).
 * Addresses are held as 128-bit integers so IPv4 and IPv6 share one code path; the
 * database's primary keys on (subnet, address) and the unique MAC column make the results
 * of these helpers safe under concurrency.
 */
#include "network/ts_network_ipam.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_core.h"

int ts_network_u128_cmp(const void *a, const void *b)
{
    ts_network_u128 x = *(const ts_network_u128 *)a, y = *(const ts_network_u128 *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

int ts_network_ip_parse(const char *s, int *version, ts_network_u128 *out)
{
    if (!s || !*s || strlen(s) > 45) return -1;
    unsigned char b[16];
    if (strchr(s, ':')) {
        if (inet_pton(AF_INET6, s, b) != 1) return -1;
        ts_network_u128 v = 0;
        for (int i = 0; i < 16; i++) v = (v << 8) | b[i];
        *version = 6;
        *out = v;
        return 0;
    }
    /* inet_pton(AF_INET) already refuses leading zeros/short forms such as "10.1" */
    if (inet_pton(AF_INET, s, b) != 1) return -1;
    *version = 4;
    *out = ((ts_network_u128)b[0] << 24) | ((ts_network_u128)b[1] << 16) | ((ts_network_u128)b[2] << 8) | b[3];
    return 0;
}

void ts_network_ip_format(int version, ts_network_u128 addr, char out[46])
{
    unsigned char b[16];
    if (version == 4) {
        uint32_t v = (uint32_t)addr;
        b[0] = (unsigned char)(v >> 24), b[1] = (unsigned char)(v >> 16), b[2] = (unsigned char)(v >> 8),
        b[3] = (unsigned char)v;
        inet_ntop(AF_INET, b, out, 46);
        return;
    }
    for (int i = 15; i >= 0; i--) {
        b[i] = (unsigned char)(addr & 0xff);
        addr >>= 8;
    }
    inet_ntop(AF_INET6, b, out, 46);
}

static ts_network_u128 host_mask(int version, int prefix)
{
    int bits = version == 4 ? 32 : 128;
    int host = bits - prefix;
    if (host <= 0) return 0;
    if (host >= 128) return ~(ts_network_u128)0;
    return ((ts_network_u128)1 << host) - 1;
}

int ts_network_cidr_parse(const char *s, bool strict, struct ts_network_cidr *out)
{
    if (!s) return -1;
    const char *slash = strchr(s, '/');
    if (!slash || slash == s || slash - s > 45) return -1;
    char ip[46];
    memcpy(ip, s, (size_t)(slash - s));
    ip[slash - s] = 0;
    const char *p = slash + 1;
    if (!*p || strlen(p) > 3) return -1;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q)) return -1;
    if (p[0] == '0' && p[1]) return -1;
    int prefix = atoi(p);
    int version;
    ts_network_u128 a;
    if (ts_network_ip_parse(ip, &version, &a)) return -1;
    if (prefix > (version == 4 ? 32 : 128)) return -1;
    ts_network_u128 hm = host_mask(version, prefix);
    if (strict && (a & hm)) return -1;
    out->version = version;
    out->prefix = prefix;
    out->net = a & ~hm;
    if (version == 4) out->net &= 0xffffffffu;
    return 0;
}

void ts_network_cidr_format(const struct ts_network_cidr *c, char out[50])
{
    char ip[46];
    ts_network_ip_format(c->version, c->net, ip);
    snprintf(out, 50, "%s/%d", ip, c->prefix);
}

ts_network_u128 ts_network_cidr_first(const struct ts_network_cidr *c) { return c->net; }

ts_network_u128 ts_network_cidr_last(const struct ts_network_cidr *c)
{
    return c->net | host_mask(c->version, c->prefix);
}

bool ts_network_cidr_contains(const struct ts_network_cidr *c, int version, ts_network_u128 addr)
{
    if (version != c->version) return false;
    return addr >= ts_network_cidr_first(c) && addr <= ts_network_cidr_last(c);
}

bool ts_network_cidr_overlap(const struct ts_network_cidr *a, const struct ts_network_cidr *b)
{
    if (a->version != b->version) return false;
    return ts_network_cidr_first(a) <= ts_network_cidr_last(b) && ts_network_cidr_first(b) <= ts_network_cidr_last(a);
}

int ts_network_default_pools(const struct ts_network_cidr *c, ts_network_u128 gw, bool has_gw,
                             struct ts_network_pool out[2])
{
    ts_network_u128 first = ts_network_cidr_first(c), last = ts_network_cidr_last(c);
    ts_network_u128 lo, hi;
    if (c->version == 4) {
        if (c->prefix >= 31) {
            /* /31 and /32: every address is usable (RFC 3021) */
            lo = first, hi = last;
        } else {
            lo = first + 1, hi = last - 1;
        }
    } else {
        if (c->prefix >= 127) lo = first, hi = last;
        else lo = first + 1, hi = last;
    }
    if (lo > hi) return 0;
    if (!has_gw || gw < lo || gw > hi) {
        out[0].start = lo, out[0].end = hi;
        return 1;
    }
    int n = 0;
    if (gw > lo) out[n].start = lo, out[n].end = gw - 1, n++;
    if (gw < hi) out[n].start = gw + 1, out[n].end = hi, n++;
    return n;
}

int ts_network_pools_validate(const struct ts_network_cidr *c, const struct ts_network_pool *pools, int n,
                              bool has_gw, ts_network_u128 gw, char *msg, size_t msglen)
{
    ts_network_u128 first = ts_network_cidr_first(c), last = ts_network_cidr_last(c);
    char a[46], b[46], cs[50];
    ts_network_cidr_format(c, cs);
    for (int i = 0; i < n; i++) {
        ts_network_ip_format(c->version, pools[i].start, a);
        ts_network_ip_format(c->version, pools[i].end, b);
        if (pools[i].start > pools[i].end) {
            snprintf(msg, msglen, "Invalid input for operation: Allocation pool %s-%s is not valid.", a, b);
            return -1;
        }
        if (pools[i].start < first || pools[i].end > last) {
            snprintf(msg, msglen, "The allocation pool %s-%s spans beyond the subnet cidr %s.", a, b, cs);
            return -1;
        }
        bool reserved_edges = c->version == 4 ? c->prefix < 31 : c->prefix < 127;
        if (reserved_edges && (pools[i].start == first || (c->version == 4 && pools[i].end == last))) {
            snprintf(msg, msglen, "The allocation pool %s-%s spans beyond the subnet cidr %s.", a, b, cs);
            return -1;
        }
        if (has_gw && gw >= pools[i].start && gw <= pools[i].end) {
            char g[46];
            ts_network_ip_format(c->version, gw, g);
            snprintf(msg, msglen, "Gateway ip %s conflicts with allocation pool %s-%s.", g, a, b);
            return -1;
        }
        for (int j = 0; j < i; j++) {
            if (pools[j].start <= pools[i].end && pools[i].start <= pools[j].end) {
                char c2[46], d2[46];
                ts_network_ip_format(c->version, pools[j].start, c2);
                ts_network_ip_format(c->version, pools[j].end, d2);
                snprintf(msg, msglen, "Found overlapping allocation pools: %s-%s and %s-%s for subnet %s.", c2, d2,
                         a, b, cs);
                return -1;
            }
        }
    }
    return 0;
}

bool ts_network_in_pools(const struct ts_network_pool *pools, int n, ts_network_u128 addr)
{
    for (int i = 0; i < n; i++)
        if (addr >= pools[i].start && addr <= pools[i].end) return true;
    return false;
}

int ts_network_next_free(const struct ts_network_pool *pools, int n_pools, const ts_network_u128 *used,
                         size_t n_used, ts_network_u128 *out)
{
    for (int p = 0; p < n_pools; p++) {
        ts_network_u128 cand = pools[p].start;
        /* binary search the first used address >= cand, then walk while they are contiguous */
        size_t lo = 0, hi = n_used;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (used[mid] < cand) lo = mid + 1;
            else hi = mid;
        }
        for (size_t i = lo; i < n_used && used[i] <= pools[p].end; i++) {
            if (used[i] == cand) {
                if (cand == pools[p].end) goto next_pool;
                cand++;
            } else if (used[i] > cand) {
                break;
            }
        }
        if (cand <= pools[p].end) {
            *out = cand;
            return 0;
        }
    next_pool:;
    }
    return -1;
}

void ts_network_mac_generate(char out[18])
{
    unsigned char r[3];
    ts_random(r, sizeof(r));
    snprintf(out, 18, "fa:16:3e:%02x:%02x:%02x", r[0], r[1], r[2]);
}

int ts_network_mac_normalize(const char *in, char out[18])
{
    if (!in || strlen(in) != 17) return -1;
    unsigned int b[6];
    for (int i = 0; i < 17; i++) {
        if (i % 3 == 2) {
            if (in[i] != ':' && in[i] != '-') return -1;
        } else if (!isxdigit((unsigned char)in[i])) {
            return -1;
        }
    }
    if (sscanf(in, "%2x%*c%2x%*c%2x%*c%2x%*c%2x%*c%2x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6) return -1;
    if (b[0] & 1) return -1;   /* multicast/broadcast */
    if (!(b[0] | b[1] | b[2] | b[3] | b[4] | b[5])) return -1;
    snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
    return 0;
}
