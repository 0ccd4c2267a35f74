/*
 * ts_netagent_metadata.c: renders Nova's metadata documents for one instance, as seen from
 * the port that asks: the OpenStack tree (/openstack/latest/meta_data.json, user_data,
 * network_data.json, vendor_data.json; password is compute's, see ts_netagent.c) and the EC2 tree (/latest/meta-data/<key>,
 * /latest/user-data). Pure functions over a normalized instance object, so they are
 * unit-tested without a compute service.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/ts_auth.h"
#include "json/ts_json.h"
#include "network/agent/ts_netagent_int.h"

void ts_netagent_meta_ec2_id(const json_t *inst, char out[32])
{
    const char *iname = ts_json_str(inst, "instance_name", NULL);
    if (iname && ts_startswith(iname, "instance-") && strlen(iname) <= 9 + 16) {
        snprintf(out, 32, "i-%s", iname + 9);
        return;
    }
    const char *uuid = ts_json_str(inst, "uuid", "00000000");
    char hex[9] = {0};
    int n = 0;
    for (const char *c = uuid; *c && n < 8; c++)
        if (isxdigit((unsigned char)*c)) hex[n++] = (char)tolower((unsigned char)*c);
    snprintf(out, 32, "i-%s", hex);
}

static const char *hostname_of(const json_t *inst)
{
    const char *h = ts_json_str(inst, "hostname", NULL);
    return h && *h ? h : ts_json_str(inst, "name", "instance");
}

static const char *port_ip4(const json_t *port)
{
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(port, "fixed_ips"), i, f) {
        const char *ip = ts_json_str(f, "ip_address", NULL);
        if (ts_netagent_is_v4(ip)) return ip;
    }
    return NULL;
}

static const char *public_ip(const json_t *state, const json_t *port)
{
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(state, "floatingips"), i, f) {
        if (ts_streq(ts_json_str(f, "port_id", NULL), ts_json_str(port, "id", "")))
            return ts_json_str(f, "floating_ip_address", NULL);
    }
    return NULL;
}

static json_t *meta_data_json(const json_t *inst)
{
    json_t *md = json_object();
    json_object_set_new(md, "uuid", json_string(ts_json_str(inst, "uuid", "")));
    json_object_set_new(md, "name", json_string(ts_json_str(inst, "name", "")));
    json_object_set_new(md, "hostname", json_string(hostname_of(inst)));
    json_object_set_new(md, "launch_index", json_integer(0));
    json_object_set_new(md, "availability_zone", json_string(ts_json_str(inst, "availability_zone", "nova")));
    json_object_set_new(md, "project_id", json_string(ts_json_str(inst, "project_id", "")));
    json_t *meta = json_object_get(inst, "metadata");
    json_object_set_new(md, "meta", json_is_object(meta) ? json_deep_copy(meta) : json_object());
    const char *kn = ts_json_str(inst, "key_name", NULL), *pk = ts_json_str(inst, "public_key", NULL);
    if (kn && pk) {
        json_t *pks = json_object(), *keys = json_array();
        json_object_set_new(pks, kn, json_string(pk));
        json_array_append_new(keys, json_pack("{s:s,s:s,s:s}", "name", kn, "type", "ssh", "data", pk));
        json_object_set_new(md, "public_keys", pks);
        json_object_set_new(md, "keys", keys);
    }
    json_object_set_new(md, "devices", json_array());
    return md;
}

static json_t *network_data_json(const json_t *state, const json_t *inst, const json_t *asking)
{
    json_t *nd = json_object(), *links = json_array(), *nets = json_array(), *svcs = json_array();
    size_t i, k, idx = 0;
    json_t *p, *f;
    const char *dev = ts_json_str(inst, "uuid", "");
    json_array_foreach(json_object_get(state, "ports"), i, p) {
        if (!ts_streq(ts_json_str(p, "device_id", NULL), dev) && p != asking) continue;
        char tap[TS_NETAGENT_IFNAME];
        ts_netagent_ifname(tap, "tap", ts_json_str(p, "id", ""));
        const json_t *net = ts_netagent_find(state, "networks", ts_json_str(p, "network_id", NULL));
        json_t *link = json_pack("{s:s,s:s,s:s,s:s}", "id", tap, "vif_id", ts_json_str(p, "id", ""), "type",
                                 "bridge", "ethernet_mac_address", ts_json_str(p, "mac_address", ""));
        json_object_set_new(link, "mtu", json_integer(ts_json_int(net, "mtu", 1500)));
        json_array_append_new(links, link);
        json_array_foreach(json_object_get(p, "fixed_ips"), k, f) {
            const char *ip = ts_json_str(f, "ip_address", NULL);
            const json_t *sn = ts_netagent_find(state, "subnets", ts_json_str(f, "subnet_id", NULL));
            int plen = ts_netagent_prefixlen(ts_json_str(sn, "cidr", NULL));
            char mask[16];
            if (!ts_netagent_is_v4(ip) || !ts_netagent_mask(plen, mask)) continue;
            char nid[32];
            snprintf(nid, sizeof(nid), "network%zu", idx++);
            json_t *n =
                json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "id", nid, "type", "ipv4", "link", tap, "ip_address",
                          ip, "netmask", mask, "network_id", ts_json_str(p, "network_id", ""));
            json_t *routes = json_array();
            const char *gw = ts_json_str(sn, "gateway_ip", NULL);
            if (ts_netagent_is_v4(gw))
                json_array_append_new(routes, json_pack("{s:s,s:s,s:s}", "network", "0.0.0.0", "netmask",
                                                        "0.0.0.0", "gateway", gw));
            json_object_set_new(n, "routes", routes);
            json_array_append_new(nets, n);
            size_t d;
            json_t *dns;
            json_array_foreach(json_object_get(sn, "dns_nameservers"), d, dns) {
                if (json_is_string(dns))
                    json_array_append_new(
                        svcs, json_pack("{s:s,s:s}", "type", "dns", "address", json_string_value(dns)));
            }
        }
    }
    json_object_set_new(nd, "links", links);
    json_object_set_new(nd, "networks", nets);
    json_object_set_new(nd, "services", svcs);
    return nd;
}

static char *user_data(const json_t *inst, size_t *len)
{
    const char *b64 = ts_json_str(inst, "user_data", NULL);
    if (!b64 || !*b64) return NULL;
    unsigned char *raw = NULL;
    size_t n = 0;
    if (ts_b64_decode(b64, strlen(b64), &raw, &n) < 0) return NULL;
    char *s = ts_malloc(n + 1);
    memcpy(s, raw, n);
    s[n] = 0;
    free(raw);
    *len = n;
    return s;
}

/* "/2009-04-04/meta-data/x" and "/openstack/2018-08-27/x" -> "latest" forms. */
static void normalize(const char *path, char *out, size_t len)
{
    const char *q = strchr(path, '?');
    size_t n = q ? (size_t)(q - path) : strlen(path);
    char tmp[512];
    if (n >= sizeof(tmp)) n = sizeof(tmp) - 1;
    memcpy(tmp, path, n);
    tmp[n] = 0;
    const char *p = tmp;
    char pre[32] = "";
    if (ts_startswith(p, "/openstack/")) {
        snprintf(pre, sizeof(pre), "/openstack");
        p += 10;
    }
    /* p now starts with "/<version>..." */
    if (p[0] == '/' && isdigit((unsigned char)p[1])) {
        const char *slash = strchr(p + 1, '/');
        snprintf(out, len, "%s/latest%s", pre, slash ? slash : "");
    } else {
        snprintf(out, len, "%s%s", pre, p);
    }
    /* a trailing slash is the listing of the same thing */
    size_t l = strlen(out);
    while (l > 1 && out[l - 1] == '/')
        out[--l] = 0;
}

bool ts_netagent_meta_is_password(const char *path)
{
    char p[600];
    if (!path) return false;
    normalize(path, p, sizeof(p));
    return ts_streq(p, "/openstack/latest/password");
}

static int text(char **body, const char **ctype, const char *s)
{
    *body = ts_strdup(s);
    *ctype = "text/plain; charset=UTF-8";
    return 200;
}

int ts_netagent_meta_render(const json_t *state, const json_t *inst, const json_t *port, const char *path,
                            char **body, const char **ctype)
{
    char p[600];
    *body = NULL;
    *ctype = "text/plain; charset=UTF-8";
    if (!path || !inst || !port) return 404;
    normalize(path, p, sizeof(p));

    if (ts_streq(p, "") || ts_streq(p, "/")) return text(body, ctype, "latest\nopenstack");
    if (ts_streq(p, "/openstack")) return text(body, ctype, "latest");
    if (ts_streq(p, "/openstack/latest"))
        return text(body, ctype,
                    "meta_data.json\nnetwork_data.json\npassword\nuser_data\nvendor_data.json\nvendor_data2.json");
    if (ts_streq(p, "/openstack/latest/meta_data.json") ||
        ts_streq(p, "/openstack/latest/network_data.json") ||
        ts_streq(p, "/openstack/latest/vendor_data.json") ||
        ts_streq(p, "/openstack/latest/vendor_data2.json")) {
        json_t *doc = strstr(p, "meta_data")      ? meta_data_json(inst)
                      : strstr(p, "network_data") ? network_data_json(state, inst, port)
                                                  : json_object();
        *body = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(doc);
        *ctype = "application/json";
        return *body ? 200 : 500;
    }
    if (ts_streq(p, "/openstack/latest/user_data") || ts_streq(p, "/latest/user-data")) {
        size_t n;
        char *u = user_data(inst, &n);
        if (!u) return 404;
        *body = u;
        *ctype = "application/octet-stream";
        return 200;
    }
    if (ts_streq(p, "/latest")) return text(body, ctype, "meta-data/\nuser-data");

    /* EC2 tree */
    if (!ts_startswith(p, "/latest/meta-data")) return 404;
    const char *k = p + strlen("/latest/meta-data");
    char id[32];
    const char *ip = port_ip4(port), *pub = public_ip(state, port);
    const char *kn = ts_json_str(inst, "key_name", NULL), *pk = ts_json_str(inst, "public_key", NULL);
    if (ts_streq(k, "")) {
        struct ts_buf b;
        ts_buf_init(&b, 4096);
        ts_buf_appends(&b, "ami-id\nami-launch-index\nhostname\ninstance-action\ninstance-id\ninstance-type\n"
                           "local-hostname\nlocal-ipv4\nplacement/\n");
        if (pub) ts_buf_appends(&b, "public-hostname\npublic-ipv4\n");
        if (kn && pk) ts_buf_appends(&b, "public-keys/\n");
        ts_buf_appends(&b, "reservation-id\nsecurity-groups");
        *body = ts_buf_steal(&b, NULL);
        return 200;
    }
    k++;
    if (ts_streq(k, "instance-id")) {
        ts_netagent_meta_ec2_id(inst, id);
        return text(body, ctype, id);
    }
    if (ts_streq(k, "hostname") || ts_streq(k, "local-hostname") || ts_streq(k, "public-hostname"))
        return text(body, ctype, hostname_of(inst));
    if (ts_streq(k, "local-ipv4")) return ip ? text(body, ctype, ip) : 404;
    if (ts_streq(k, "public-ipv4")) return pub ? text(body, ctype, pub) : 404;
    if (ts_streq(k, "ami-launch-index")) return text(body, ctype, "0");
    if (ts_streq(k, "ami-id")) return text(body, ctype, ts_json_str(inst, "image_id", "ami-00000000"));
    if (ts_streq(k, "instance-type")) return text(body, ctype, ts_json_str(inst, "flavor", ""));
    if (ts_streq(k, "instance-action")) return text(body, ctype, "none");
    if (ts_streq(k, "reservation-id"))
        return text(body, ctype, ts_json_str(inst, "reservation_id", "r-00000000"));
    if (ts_streq(k, "placement")) return text(body, ctype, "availability-zone");
    if (ts_streq(k, "placement/availability-zone"))
        return text(body, ctype, ts_json_str(inst, "availability_zone", "nova"));
    if (ts_streq(k, "security-groups")) {
        struct ts_buf b;
        size_t i;
        json_t *g;
        ts_buf_init(&b, 65536);
        json_array_foreach(json_object_get(inst, "security_groups"), i, g) {
            if (json_is_string(g)) ts_buf_printf(&b, "%s%s", i ? "\n" : "", json_string_value(g));
        }
        ts_buf_cstr(&b);
        *body = b.data ? ts_buf_steal(&b, NULL) : ts_strdup("");
        return 200;
    }
    if (kn && pk) {
        if (ts_streq(k, "public-keys")) {
            char *s = ts_asprintf("0=%s", kn);
            *body = s;
            return 200;
        }
        if (ts_streq(k, "public-keys/0")) return text(body, ctype, "openssh-key");
        if (ts_streq(k, "public-keys/0/openssh-key")) return text(body, ctype, pk);
    }
    return 404;
}
