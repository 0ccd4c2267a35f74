/*
 * ts_netagent.c: the reconcile loop of the network agent. One pass reads the desired state
 * (from the network API, or a file for tests), observes what exists (namespaces, links,
 * addresses, our iptables chains, dnsmasq processes), removes what this agent made that is
 * no longer wanted, and builds what is missing: bridges brq<net>, VIF taps tap<port>,
 * qdhcp-<net> (veth, dnsmasq, metadata REDIRECT + listener), qrouter-<router> (qr-/qg-
 * veths, floating IPs, NAT, radvd for IPv6 subnets) and the security-group chains (iptables
 * and ip6tables). No IPv6 in the root namespace: our devices there get disable_ipv6. Every
 * object is recorded under
 * <data_dir>/network-agent/own/ *before* it is made, so after a crash or kill -9 the next
 * pass knows exactly what is ours (and never touches anyone else's bridges or namespaces).
 * All commands go through ts_netagent_exec.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json/ts_json.h"
#include "network/agent/ts_netagent.h"
#include "network/agent/ts_netagent_int.h"

struct ts_netagent {
    char *data_dir, *state_dir, *host, *ext_iface;
    char fwd_chain[32];
    char raw_chain[32]; /* raw PREROUTING: conntrack zones (tsg-R + the same hash) */
    char arp_chain[32]; /* ebtables nat PREROUTING: MAC/ARP anti-spoofing (tsa-P + hash) */
    int meta_port;
    struct ts_netagent_opts o;
    pthread_mutex_t mu;    /* one reconcile at a time */
    pthread_mutex_t st_mu; /* guards current */
    json_t *current;       /* last desired state (for metadata lookups) */
    json_t *applied;       /* ns or "filter" -> last restore text applied this run */
    struct ts_netagent_metasrv *meta;
    int failures; /* failed steps in this pass */
};

/* ---- small helpers ---------------------------------------------------------------- */

static int run(struct ts_netagent *a, int flags, const char *input, char **out, ...)
{
    const char *argv[64];
    int n = 0;
    va_list ap;
    va_start(ap, out);
    const char *s;
    while (n < 63 && (s = va_arg(ap, const char *)))
        argv[n++] = s;
    va_end(ap);
    argv[n] = NULL;
    int rc = ts_netagent_exec(argv, input, out, flags);
    if (rc != 0 && !(flags & TS_NETAGENT_EXEC_QUIET)) a->failures++;
    return rc;
}
#define RUN(a, ...) run(a, 0, NULL, NULL, __VA_ARGS__, (const char *)NULL)
#define RUNQ(a, ...) run(a, TS_NETAGENT_EXEC_QUIET, NULL, NULL, __VA_ARGS__, (const char *)NULL)

static bool valid_id(const char *id)
{
    if (!id || !*id || strlen(id) > 64) return false;
    for (const char *c = id; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '-'))
            return false;
    return true;
}

static char *own_path(struct ts_netagent *a, const char *kind, const char *name)
{
    return ts_asprintf("%s/own/%s:%s", a->state_dir, kind, name);
}

static void own_add(struct ts_netagent *a, const char *kind, const char *name)
{
    char *p = own_path(a, kind, name);
    if (access(p, F_OK) != 0 && ts_file_write_atomic(p, "", 0, 0644) < 0)
        ts_warn("netagent", "cannot record %s: %s", p, strerror(errno));
    free(p);
}

static void own_del(struct ts_netagent *a, const char *kind, const char *name)
{
    char *p = own_path(a, kind, name);
    unlink(p);
    free(p);
}

/* Names recorded for kind, as a JSON array. */
static json_t *own_list(struct ts_netagent *a, const char *kind)
{
    json_t *out = json_array();
    char *dir = ts_asprintf("%s/own", a->state_dir);
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t kl = strlen(kind);
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, kind, kl) == 0 && e->d_name[kl] == ':' && !strchr(e->d_name, '.'))
            json_array_append_new(out, json_string(e->d_name + kl + 1));
    }
    if (d) closedir(d);
    free(dir);
    return out;
}

static bool in_array(const json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (ts_streq(json_string_value(v), s)) return true;
    return false;
}

static void add_unique(json_t *arr, const char *s)
{
    if (!in_array(arr, s)) json_array_append_new(arr, json_string(s));
}

/* ---- observation ----------------------------------------------------------------- */

/* `ip -o link show` -> {name: {"master": s|null, "up": bool, "mac": s}} */
static json_t *parse_links(const char *text)
{
    json_t *out = json_object();
    const char *line = text;
    while (line && *line) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        char buf[2048];
        if (len >= sizeof(buf)) len = sizeof(buf) - 1;
        memcpy(buf, line, len);
        buf[len] = 0;
        line = eol ? eol + 1 : NULL;
        char *p = strchr(buf, ':');
        if (!p || p[1] != ' ') continue;
        p += 2;
        size_t nl = strcspn(p, ":@");
        if (nl == 0 || nl >= 32) continue;
        char name[32];
        memcpy(name, p, nl);
        name[nl] = 0;
        json_t *o = json_object();
        char *fl = strchr(p, '<'), *fe = fl ? strchr(fl, '>') : NULL;
        bool up = false;
        if (fl && fe) {
            *fe = 0;
            char *tok, *save = NULL;
            for (tok = strtok_r(fl + 1, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
                up |= ts_streq(tok, "UP");
            *fe = ' ';
        }
        json_object_set_new(o, "up", json_boolean(up));
        char *m = strstr(p, " master ");
        if (m) {
            char mn[32] = "";
            sscanf(m + 8, "%31s", mn);
            json_object_set_new(o, "master", json_string(mn));
        }
        char *ether = strstr(p, "link/ether ");
        if (ether) {
            char mac[32] = "";
            sscanf(ether + 11, "%31s", mac);
            json_object_set_new(o, "mac", json_string(mac));
        }
        json_object_set_new(out, name, o);
    }
    return out;
}

/* `ip -o addr show` -> {dev: ["a.b.c.d/n", "fd00::2/64", ...]}: every IPv4 address and the
 * global IPv6 ones (link-local addresses are the kernel's, not ours to manage) */
static json_t *parse_addrs(const char *text)
{
    json_t *out = json_object();
    const char *line = text;
    while (line && *line) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        char buf[1024], dev[32], fam[16], addr[64];
        if (len >= sizeof(buf)) len = sizeof(buf) - 1;
        memcpy(buf, line, len);
        buf[len] = 0;
        line = eol ? eol + 1 : NULL;
        if (sscanf(buf, "%*d: %31s %15s %63s", dev, fam, addr) != 3) continue;
        if (!ts_streq(fam, "inet") && !(ts_streq(fam, "inet6") && strstr(buf, " scope global"))) continue;
        json_t *l = json_object_get(out, dev);
        if (!l) {
            l = json_array();
            json_object_set_new(out, dev, l);
        }
        json_array_append_new(l, json_string(addr));
    }
    return out;
}

static json_t *list_netns(struct ts_netagent *a)
{
    char *out = NULL;
    json_t *l = json_array();
    if (run(a, 0, NULL, &out, "ip", "netns", "list", (const char *)NULL) == 0 && out) {
        char *save = NULL;
        for (char *ln = strtok_r(out, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
            char name[256];
            if (sscanf(ln, "%255s", name) == 1) json_array_append_new(l, json_string(name));
        }
    }
    free(out);
    return l;
}

static json_t *links_in(struct ts_netagent *a, const char *ns)
{
    char *out = NULL;
    int rc = ns ? run(a, 0, NULL, &out, "ip", "-n", ns, "-o", "link", "show", (const char *)NULL)
                : run(a, 0, NULL, &out, "ip", "-o", "link", "show", (const char *)NULL);
    json_t *l = rc == 0 && out ? parse_links(out) : json_object();
    free(out);
    return l;
}

static json_t *addrs_in(struct ts_netagent *a, const char *ns)
{
    char *out = NULL;
    int rc = run(a, 0, NULL, &out, "ip", "-n", ns, "-o", "addr", "show", (const char *)NULL);
    json_t *l = rc == 0 && out ? parse_addrs(out) : json_object();
    free(out);
    return l;
}

/* ---- processes -------------------------------------------------------------------- */

static pid_t read_pid(const char *path)
{
    char *s = NULL;
    size_t n;
    pid_t pid = 0;
    if (ts_file_read(path, 64, &s, &n) == 0) {
        int64_t v;
        char *nl = strchr(s, '\n');
        if (nl) *nl = 0;
        if (ts_parse_int64(s, &v) == 0 && v > 1 && v < (1 << 30)) pid = (pid_t)v;
    }
    free(s);
    return pid;
}

/* Is pid a live process whose command line contains needle? */
static bool proc_matches(pid_t pid, const char *needle)
{
    char path[64], *s = NULL;
    size_t n;
    bool ok = false;
    if (pid <= 1) return false;
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    if (ts_file_read(path, 65536, &s, &n) == 0) {
        for (size_t i = 0; i + 1 < n; i++)
            if (!s[i]) s[i] = ' ';
        ok = strstr(s, needle) != NULL;
    }
    free(s);
    return ok;
}

static void kill_wait(pid_t pid)
{
    if (pid <= 1) return;
    if (kill(pid, SIGTERM) < 0) return;
    for (int i = 0; i < 50; i++) {
        if (kill(pid, 0) < 0) return;
        usleep(20000);
    }
    kill(pid, SIGKILL);
}

/* Every process in namespace ns: TERM, then KILL. */
static void kill_ns_pids(struct ts_netagent *a, const char *ns)
{
    char *out = NULL;
    if (run(a, TS_NETAGENT_EXEC_QUIET, NULL, &out, "ip", "netns", "pids", ns, (const char *)NULL) == 0 &&
        out) {
        char *save = NULL;
        for (char *ln = strtok_r(out, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
            int64_t v;
            if (ts_parse_int64(ln, &v) == 0 && v > 1 && v != getpid()) kill_wait((pid_t)v);
        }
    }
    free(out);
}

/* ---- building blocks ---------------------------------------------------------------- */

static void ensure_ns(struct ts_netagent *a, const char *ns, const json_t *have_ns, bool router)
{
    own_add(a, "ns", ns); /* before it exists; or (re)claimed: ours by name and wanted */
    if (!in_array(have_ns, ns) && RUN(a, "ip", "netns", "add", ns) != 0) return;
    /* once per agent run (a kill -9 may have come between `netns add` and these) */
    char key[160];
    snprintf(key, sizeof(key), "init:%s", ns);
    if (json_object_get(a->applied, key)) return;
    int rc = RUN(a, "ip", "-n", ns, "link", "set", "lo", "up");
    /* IPv6 forwarding in the router namespace only; a DHCP namespace never takes a router's
     * advertisement for itself (its addresses are the DHCP port's) */
    if (router)
        rc |= RUN(a, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1",
                  "net.ipv6.conf.all.forwarding=1");
    else
        rc |= RUN(a, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.accept_ra=0",
                  "net.ipv6.conf.all.accept_ra=0");
    if (rc == 0) json_object_set_new(a->applied, key, json_true());
}

/* No IPv6 on our devices in the root namespace: without this a bridge would take a link-local
 * address, and an address of its own from our routers' advertisements. Once per device and
 * agent run (a kill -9 may have come between the link's creation and this). */
static void v6_off(struct ts_netagent *a, const char *dev, bool fresh)
{
    char key[64], *opt;
    snprintf(key, sizeof(key), "v6off:%s", dev);
    if (fresh) json_object_del(a->applied, key);
    if (json_object_get(a->applied, key)) return;
    opt = ts_asprintf("net.ipv6.conf.%s.disable_ipv6=1", dev);
    if (RUNQ(a, "sysctl", "-qw", opt) == 0) json_object_set_new(a->applied, key, json_true());
    free(opt);
}

static void ensure_bridge(struct ts_netagent *a, const char *br, json_t *links)
{
    json_t *l = json_object_get(links, br);
    if (!l) {
        own_add(a, "link", br);
        if (RUN(a, "ip", "link", "add", br, "type", "bridge") != 0) return;
        RUNQ(a, "ip", "link", "set", "dev", br, "addrgenmode", "none");
        v6_off(a, br, true);
        RUN(a, "ip", "link", "set", br, "up");
        json_object_set_new(links, br, json_pack("{s:b}", "up", 1));
    } else {
        own_add(a, "link", br);
        v6_off(a, br, false);
        if (!json_is_true(json_object_get(l, "up"))) RUN(a, "ip", "link", "set", br, "up");
    }
}

/* Root-side device (tap or veth end) enslaved to br and up (down for admin_state_up false). */
static void ensure_enslaved_state(struct ts_netagent *a, const char *dev, const char *br, const json_t *links,
                                  bool up)
{
    json_t *l = json_object_get(links, dev);
    if (!ts_streq(ts_json_str(l, "master", NULL), br)) RUN(a, "ip", "link", "set", dev, "master", br);
    bool is_up = json_is_true(json_object_get(l, "up"));
    if (up && !is_up) RUN(a, "ip", "link", "set", dev, "up");
    if (!up && is_up) RUN(a, "ip", "link", "set", dev, "down");
}

static void ensure_enslaved(struct ts_netagent *a, const char *dev, const char *br, const json_t *links)
{
    ensure_enslaved_state(a, dev, br, links, true);
}

/* The addresses "ip/prefixlen" a port should have inside a namespace (extra: more, e.g. FIPs). */
static json_t *port_cidrs(const json_t *state, const json_t *port)
{
    json_t *out = json_array();
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(port, "fixed_ips"), i, f) {
        const char *ip = ts_json_str(f, "ip_address", NULL);
        const json_t *sn = ts_netagent_find(state, "subnets", ts_json_str(f, "subnet_id", NULL));
        const char *cidr = ts_json_str(sn, "cidr", NULL);
        char *s;
        struct in6_addr a6;
        char canon[INET6_ADDRSTRLEN];
        int plen6 = ts_netagent_prefixlen6(cidr);
        if (ts_netagent_is_v6(ip) && plen6 >= 0 && inet_pton(AF_INET6, ip, &a6) == 1 &&
            inet_ntop(AF_INET6, &a6, canon, sizeof(canon))) {
            s = ts_asprintf("%s/%d", canon, plen6); /* as `ip addr` shows it */
            add_unique(out, s);
            free(s);
            continue;
        }
        int plen = ts_netagent_prefixlen(cidr);
        if (!ts_netagent_is_v4(ip) || plen < 0) continue;
        s = ts_asprintf("%s/%d", ip, plen);
        add_unique(out, s);
        free(s);
    }
    return out;
}

/* veth root (in br) <-> inner (in ns) with port's MAC on inner and exactly `cidrs`. */
static void ensure_veth(struct ts_netagent *a, const char *ns, const char *root, const char *inner,
                        const char *br, const char *mac, const json_t *cidrs, json_t *links,
                        const json_t *ns_links, const json_t *ns_addrs)
{
    if (!json_object_get(links, root)) {
        own_add(a, "link", root);
        if (json_object_get(ns_links, inner)) RUNQ(a, "ip", "-n", ns, "link", "del", inner);
        if (RUN(a, "ip", "link", "add", root, "type", "veth", "peer", "name", inner, "netns", ns) != 0)
            return;
        RUNQ(a, "ip", "link", "set", "dev", root, "addrgenmode", "none");
        v6_off(a, root, true);
        json_object_set_new(links, root, json_object());
    } else {
        own_add(a, "link", root);
    }
    v6_off(a, root, false);
    ensure_enslaved(a, root, br, links);
    json_t *il = json_object_get(ns_links, inner);
    if (mac && !ts_strcaseeq(ts_json_str(il, "mac", NULL), mac))
        RUN(a, "ip", "-n", ns, "link", "set", inner, "address", mac);
    if (!json_is_true(json_object_get(il, "up"))) RUN(a, "ip", "-n", ns, "link", "set", inner, "up");
    json_t *have = json_object_get(ns_addrs, inner);
    size_t i;
    json_t *v;
    json_array_foreach(have, i, v) {
        if (!in_array(cidrs, json_string_value(v)))
            RUN(a, "ip", "-n", ns, "addr", "del", json_string_value(v), "dev", inner);
    }
    json_array_foreach(cidrs, i, v) {
        const char *c = json_string_value(v);
        if (in_array(have, c)) continue;
        /* IPv6: the address is the port's (IPAM made it unique), usable at once */
        if (strchr(c, ':'))
            RUN(a, "ip", "-n", ns, "addr", "add", c, "dev", inner, "nodad");
        else
            RUN(a, "ip", "-n", ns, "addr", "add", c, "dev", inner);
    }
}

/* iptables-restore of one table text inside ns (NULL = root, with --noflush), only when changed. */
static void restore(struct ts_netagent *a, const char *ns, const char *text, bool noflush, bool force)
{
    const char *key = ns ? ns : "root";
    if (!force && ts_streq(ts_json_str(a->applied, key, NULL), text)) return;
    /* -w everywhere: the xtables lock is a file, shared by every network namespace, so a
     * router namespace's restore collides with other agents' root-namespace ones too */
    int rc = ns ? run(a, 0, text, NULL, "ip", "netns", "exec", ns, "iptables-restore", "-w", (const char *)NULL)
         : noflush ? run(a, 0, text, NULL, "iptables-restore", "-w", "-n", (const char *)NULL)
                   : run(a, 0, text, NULL, "iptables-restore", "-w", (const char *)NULL);
    if (rc == 0)
        json_object_set_new(a->applied, key, json_string(text));
    else
        json_object_del(a->applied, key);
}

static const json_t *dhcp_port_of(const json_t *state, const char *net_id)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(state, "ports"), i, p) {
        if (ts_streq(ts_json_str(p, "network_id", NULL), net_id) &&
            ts_streq(ts_json_str(p, "device_owner", NULL), "network:dhcp") &&
            valid_id(ts_json_str(p, "id", NULL)))
            return p;
    }
    return NULL;
}

/* The lines of the leases file "EXPIRY MAC IP NAME CLIENTID" whose MAC,IP pair is not in the
 * hosts file any more: dnsmasq would refuse the address to a new port with another MAC ("not
 * using configured address ... because it is leased to ...") until the lease expires. Returns
 * whether there are any; *kept gets the other lines (caller frees). */
static bool stale_leases(const char *leasef, const char *hosts, char **kept)
{
    char *txt = NULL;
    size_t n;
    bool stale = false;
    struct ts_buf b;
    ts_buf_init(&b, 0);
    *kept = NULL;
    if (ts_file_read(leasef, 1 << 26, &txt, &n) < 0 || !txt) goto out;
    char *save = NULL;
    for (char *ln = strtok_r(txt, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
        char mac[64], ip[64];
        if (sscanf(ln, "%*s %63s %63s", mac, ip) == 2 && strchr(ip, ':')) {
            /* a DHCPv6 lease "EXPIRY IAID ADDRESS NAME DUID": the client is known by its
             * DUID, the address by the "[ADDRESS]" of a hosts line */
            char *entry = ts_asprintf(",[%s],", ip);
            bool known = strstr(hosts, entry) != NULL;
            free(entry);
            if (!known) {
                stale = true;
                continue;
            }
        } else if (sscanf(ln, "%*s %63s %63s", mac, ip) == 2) {
            char *entry = ts_asprintf("%s,%s,", mac, ip);
            const char *hit = strstr(hosts, entry);
            bool known = hit && (hit == hosts || hit[-1] == '\n');
            free(entry);
            if (!known) {
                stale = true;
                continue;
            }
        }
        ts_buf_printf(&b, "%s\n", ln);
    }
out:
    *kept = ts_strdup(ts_buf_cstr(&b));
    ts_buf_free(&b);
    free(txt);
    return stale;
}

/* dnsmasq of a network: the command line (subnets, ranges, options) is fixed for the life of
 * the process and recorded in argv.json; a change restarts it. The per-port entries are in
 * the hosts file, rewritten atomically (temp + rename) when they change and reloaded with
 * SIGHUP, as Neutron's DHCP agent does: a port added while a guest does its DHCP exchange
 * never takes the server away. A removed port that holds a lease restarts it without that
 * lease (what Neutron does with dhcp_release), so its address can go to a new port at once. */
static void ensure_dnsmasq(struct ts_netagent *a, const char *ns, const char *net_id, const json_t *argv,
                           const char *hosts)
{
    char *dir = ts_asprintf("%s/dhcp/%s", a->state_dir, net_id);
    char *pidf = ts_asprintf("%s/pid", dir), *argf = ts_asprintf("%s/argv.json", dir);
    char *hostf = ts_asprintf("%s/host", dir), *leasef = ts_asprintf("%s/leases", dir);
    char *want = json_dumps(argv, JSON_COMPACT);
    char *have = NULL, *have_hosts = NULL, *kept = NULL, *needle = ts_asprintf("--pid-file=%s", pidf);
    size_t n;
    ts_mkdirs(dir, 0755);
    bool hosts_changed = ts_file_read(hostf, 1 << 30, &have_hosts, &n) < 0 || !ts_streq(have_hosts, hosts);
    if (hosts_changed && ts_file_write_atomic(hostf, hosts, strlen(hosts), 0644) < 0) {
        ts_warn("netagent", "cannot write %s", hostf);
        a->failures++;
    }
    pid_t pid = read_pid(pidf);
    bool alive = proc_matches(pid, needle);
    ts_file_read(argf, 1 << 20, &have, &n);
    bool stale = stale_leases(leasef, hosts, &kept);
    if (alive && ts_streq(have, want) && !stale) {
        if (hosts_changed) {
            if (kill(pid, SIGHUP) < 0)
                a->failures++;
            else
                ts_info("netagent", "dnsmasq for network %s reloads its hosts file", net_id);
        }
        goto out;
    }
    if (alive) kill_wait(pid);
    unlink(pidf);
    free(kept);
    kept = NULL;
    if (stale_leases(leasef, hosts, &kept) && ts_file_write_atomic(leasef, kept, strlen(kept), 0644) < 0)
        a->failures++;
    if (ts_file_write_atomic(argf, want, strlen(want), 0644) < 0) a->failures++;
    json_t *full = json_pack("[s,s,s]", "ip", "netns", "exec");
    json_array_append_new(full, json_string(ns));
    json_array_extend(full, (json_t *)argv);
    if (ts_netagent_exec_json(full, NULL, NULL, TS_NETAGENT_EXEC_DAEMON) != 0)
        a->failures++;
    else
        ts_info("netagent", "dnsmasq for network %s (re)started", net_id);
    json_decref(full);
out:
    free(dir);
    free(pidf);
    free(argf);
    free(hostf);
    free(leasef);
    free(kept);
    free(want);
    free(have);
    free(have_hosts);
    free(needle);
}

static void rm_tree(const char *dir);

/* radvd of a router (conf NULL: none wanted): its configuration in <state>/ra/<router>/,
 * rewritten when it changes and reloaded with SIGHUP; started when not running (after a
 * kill -9 of the agent the one running is found by its pid file and kept). */
static void ensure_radvd(struct ts_netagent *a, const char *ns, const char *router_id, const char *conf)
{
    char *dir = ts_asprintf("%s/ra/%s", a->state_dir, router_id);
    char *conff = ts_asprintf("%s/radvd.conf", dir), *pidf = ts_asprintf("%s/pid", dir);
    char *logf = ts_asprintf("%s/log", dir), *have = NULL;
    size_t n;
    pid_t pid = read_pid(pidf);
    bool alive = proc_matches(pid, pidf);
    if (!conf) {
        if (alive) {
            kill_wait(pid);
            ts_info("netagent", "radvd of router %s stopped", router_id);
        }
        if (access(dir, F_OK) == 0) rm_tree(dir);
        goto out;
    }
    ts_mkdirs(dir, 0755);
    bool changed = ts_file_read(conff, 1 << 20, &have, &n) < 0 || !ts_streq(have, conf);
    if (changed && ts_file_write_atomic(conff, conf, strlen(conf), 0644) < 0) {
        a->failures++;
        goto out;
    }
    if (alive) {
        if (changed) {
            if (kill(pid, SIGHUP) < 0)
                a->failures++;
            else
                ts_info("netagent", "radvd of router %s reloads its configuration", router_id);
        }
        goto out;
    }
    /* a stale pid file is fine: radvd takes it over unless another radvd holds its lock */
    if (run(a, TS_NETAGENT_EXEC_DAEMON, NULL, NULL, "ip", "netns", "exec", ns, "radvd", "-C", conff, "-p", pidf, "-m",
            "logfile", "-l", logf, (const char *)NULL) == 0)
        ts_info("netagent", "radvd of router %s started", router_id);
out:
    free(dir);
    free(conff);
    free(pidf);
    free(logf);
    free(have);
}

/* radvd directories of routers that are not wanted any more (deleted, admin down, no RA
 * subnet left, or gone while the agent was down): stop their radvd, remove the directory. */
static void sweep_radvd(struct ts_netagent *a, const json_t *ra_routers)
{
    char *dir = ts_asprintf("%s/ra", a->state_dir);
    DIR *d = opendir(dir);
    struct dirent *e;
    json_t *gone = json_array(), *v;
    size_t i;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.' || in_array(ra_routers, e->d_name)) continue;
        json_array_append_new(gone, json_string(e->d_name));
    }
    if (d) closedir(d);
    json_array_foreach(gone, i, v) ensure_radvd(a, NULL, json_string_value(v), NULL);
    json_decref(gone);
    free(dir);
}

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (ts_streq(e->d_name, ".") || ts_streq(e->d_name, "..")) continue;
        char *p = ts_asprintf("%s/%s", dir, e->d_name);
        unlink(p);
        free(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

/* ---- the pass ----------------------------------------------------------------------- */

static void remove_ns(struct ts_netagent *a, const char *ns, const json_t *have_ns)
{
    if (ts_startswith(ns, "qdhcp-")) {
        const char *net = ns + 6;
        if (a->meta) ts_netagent_metasrv_close(a->meta, net);
        char *dir = ts_asprintf("%s/dhcp/%s", a->state_dir, net);
        char *pidf = ts_asprintf("%s/pid", dir), *needle = ts_asprintf("--pid-file=%s", pidf);
        pid_t pid = read_pid(pidf);
        if (proc_matches(pid, needle)) kill_wait(pid);
        rm_tree(dir);
        free(dir);
        free(pidf);
        free(needle);
    }
    if (in_array(have_ns, ns)) {
        kill_ns_pids(a, ns);
        if (RUN(a, "ip", "netns", "del", ns) != 0) return;
    }
    json_object_del(a->applied, ns);
    char key[160];
    snprintf(key, sizeof(key), "init:%s", ns);
    json_object_del(a->applied, key);
    own_del(a, "ns", ns);
    ts_info("netagent", "removed namespace %s", ns);
}

/* Tells compute once per (port, instance): the record holds the device_id it was plugged for,
 * so a port that moves to another server between two passes (a server deleted and a new one
 * booted on the same pre-made port) gets its network-vif-plugged again. */
static void plugged(struct ts_netagent *a, const json_t *port)
{
    const char *id = ts_json_str(port, "id", "");
    const char *dev = ts_json_str(port, "device_id", "");
    char *p = ts_asprintf("%s/plugged/%s", a->state_dir, id), *had = NULL;
    size_t n;
    if (ts_file_read(p, 256, &had, &n) != 0 || !ts_streq(had, dev)) {
        if (a->o.vif_plugged) a->o.vif_plugged(a->o.ctx, port);
        ts_file_write_atomic(p, dev, strlen(dev), 0644);
    }
    free(had);
    free(p);
}

static void forget_plugged(struct ts_netagent *a, const json_t *wanted_ports)
{
    char *dir = ts_asprintf("%s/plugged", a->state_dir);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.' || in_array(wanted_ports, e->d_name)) continue;
        char *p = ts_asprintf("%s/%s", dir, e->d_name);
        unlink(p);
        free(p);
    }
    if (d) closedir(d);
    free(dir);
}

static bool jump_present(struct ts_netagent *a)
{
    char *out = NULL;
    bool yes = false;
    if (run(a, TS_NETAGENT_EXEC_QUIET, NULL, &out, "iptables", "-w", "-S", "FORWARD", (const char *)NULL) ==
            0 &&
        out) {
        char *want = ts_asprintf("-A FORWARD -j %s\n", a->fwd_chain);
        yes = strstr(out, want) != NULL;
        free(want);
    }
    free(out);
    return yes;
}

/* Does the output of argv list a rule "-j chain" (a whole word)? */
static bool lists_jump(struct ts_netagent *a, const char *const *argv, const char *chain)
{
    char *out = NULL;
    bool yes = false;
    if (ts_netagent_exec(argv, NULL, &out, TS_NETAGENT_EXEC_QUIET) == 0 && out) {
        char *want = ts_asprintf("-j %s", chain);
        for (const char *p = strstr(out, want); p && !yes; p = strstr(p + 1, want)) {
            char c = p[strlen(want)];
            yes = c == 0 || c == ' ' || c == '\n' || c == '\r' || c == '\t';
        }
        free(want);
    }
    (void)a;
    free(out);
    return yes;
}

static bool own_has(struct ts_netagent *a, const char *kind, const char *name)
{
    char *p = own_path(a, kind, name);
    bool yes = access(p, F_OK) == 0;
    free(p);
    return yes;
}

/* Conntrack zones: one raw-table chain, "-i brq<net> -j CT --zone Z" per network. */
static void sync_zones(struct ts_netagent *a, const json_t *zones, bool anything)
{
    const char *lsargv[] = {"iptables", "-w", "-t", "raw", "-S", "PREROUTING", NULL};
    bool jump = lists_jump(a, lsargv, a->raw_chain);
    if (!anything || !json_object_size(zones)) {
        if (!jump && !own_has(a, "raw", a->raw_chain)) return;
        if (jump) RUN(a, "iptables", "-w", "-t", "raw", "-D", "PREROUTING", "-j", a->raw_chain);
        char *text = ts_netagent_zone_restore(zones, a->raw_chain, false, true);
        if (run(a, 0, text, NULL, "iptables-restore", "-w", "-n", (const char *)NULL) == 0)
            own_del(a, "raw", a->raw_chain);
        free(text);
        json_object_del(a->applied, "raw");
        return;
    }
    own_add(a, "raw", a->raw_chain);
    char *probe = ts_netagent_zone_restore(zones, a->raw_chain, false, false);
    if (!jump || !ts_streq(ts_json_str(a->applied, "raw", NULL), probe)) {
        char *text = jump ? NULL : ts_netagent_zone_restore(zones, a->raw_chain, true, false);
        if (run(a, 0, text ? text : probe, NULL, "iptables-restore", "-w", "-n", (const char *)NULL) == 0)
            json_object_set_new(a->applied, "raw", json_string(probe));
        else
            json_object_del(a->applied, "raw");
        free(text);
    }
    free(probe);
}

/* MAC and ARP anti-spoofing per port (ebtables nat table, our chains only). */
static void sync_arp(struct ts_netagent *a, const json_t *state, bool anything)
{
    const char *lsargv[] = {"ebtables", "-t", "nat", "-L", "PREROUTING", NULL};
    json_t *owned = own_list(a, "ebchain");
    bool jump = lists_jump(a, lsargv, a->arp_chain);
    size_t i;
    json_t *c;
    if (!anything) {
        if (json_array_size(owned) || jump) {
            add_unique(owned, a->arp_chain);
            char *text = ts_netagent_arp_restore(state, a->host, a->arp_chain, owned, false, jump, NULL);
            if (run(a, 0, text, NULL, "ebtables-restore", "--noflush", (const char *)NULL) == 0) {
                json_array_foreach(owned, i, c) own_del(a, "ebchain", json_string_value(c));
            }
            free(text);
            json_object_del(a->applied, "arp");
        }
        json_decref(owned);
        return;
    }
    json_t *chains = NULL;
    char *probe = ts_netagent_arp_restore(state, a->host, a->arp_chain, owned, false, false, &chains);
    char *text = jump ? NULL : ts_netagent_arp_restore(state, a->host, a->arp_chain, owned, true, false, NULL);
    json_array_foreach(chains, i, c) own_add(a, "ebchain", json_string_value(c));
    if (!jump || !ts_streq(ts_json_str(a->applied, "arp", NULL), probe)) {
        if (run(a, 0, text ? text : probe, NULL, "ebtables-restore", "--noflush", (const char *)NULL) == 0) {
            json_object_set_new(a->applied, "arp", json_string(probe));
            json_array_foreach(owned, i, c) {
                if (!in_array(chains, json_string_value(c))) own_del(a, "ebchain", json_string_value(c));
            }
        } else {
            json_object_del(a->applied, "arp");
        }
    }
    free(probe);
    free(text);
    json_decref(chains);
    json_decref(owned);
}

/* After a filter change: end the tracked flows that removed rules had let through. */
static void flush_conntrack(struct ts_netagent *a, const json_t *state, const json_t *zones, const char *old_text,
                            const char *new_text)
{
    if (!old_text) return; /* first pass of this run: nothing known to have been removed */
    json_t *cmds = ts_netagent_ct_flushes(state, a->host, zones, old_text, new_text);
    size_t i;
    json_t *argv;
    json_array_foreach(cmds, i, argv) {
        /* exit 1 = no such flow: not a failure */
        ts_netagent_exec_json(argv, NULL, NULL, TS_NETAGENT_EXEC_QUIET);
    }
    if (json_array_size(cmds))
        ts_info("netagent", "conntrack: %zu flow deletion(s) for removed rules", json_array_size(cmds));
    json_decref(cmds);
}

static void sync_sg(struct ts_netagent *a, const json_t *state, const json_t *zones, bool anything)
{
    json_t *owned = own_list(a, "chain");
    bool jump = jump_present(a);
    if (!anything) {
        if (json_array_size(owned) || jump) {
            add_unique(owned, a->fwd_chain);
            char *text = ts_netagent_sg_restore(state, a->host, a->fwd_chain, owned, false, jump, NULL);
            if (run(a, 0, text, NULL, "iptables-restore", "-w", "-n", (const char *)NULL) == 0) {
                size_t i;
                json_t *c;
                json_array_foreach(owned, i, c) own_del(a, "chain", json_string_value(c));
                char *path = ts_asprintf("%s/filter.applied", a->state_dir);
                unlink(path);
                free(path);
            }
            free(text);
            json_object_del(a->applied, "root");
        }
        json_decref(owned);
        return;
    }
    json_t *chains = NULL;
    /* the text without the jump is what we compare with the last one applied */
    char *probe = ts_netagent_sg_restore(state, a->host, a->fwd_chain, owned, false, false, &chains);
    char *text = jump ? NULL : ts_netagent_sg_restore(state, a->host, a->fwd_chain, owned, true, false, NULL);
    size_t i;
    json_t *c;
    json_array_foreach(chains, i, c) own_add(a, "chain", json_string_value(c));
    if (!jump || !ts_streq(ts_json_str(a->applied, "root", NULL), probe)) {
        if (run(a, 0, text ? text : probe, NULL, "iptables-restore", "-w", "-n", (const char *)NULL) == 0) {
            /* the text applied last, from memory or (first pass after a restart) from disk */
            char *last = NULL, *path = ts_asprintf("%s/filter.applied", a->state_dir);
            size_t n;
            const char *prev = ts_json_str(a->applied, "root", NULL);
            if (!prev && ts_file_read(path, 256u << 20, &last, &n) == 0) prev = last;
            flush_conntrack(a, state, zones, prev, probe);
            if (ts_file_write_atomic(path, probe, strlen(probe), 0600) < 0)
                ts_warn("netagent", "cannot save %s: %s", path, strerror(errno));
            free(last);
            free(path);
            json_object_set_new(a->applied, "root", json_string(probe));
            json_array_foreach(owned, i, c) {
                if (!in_array(chains, json_string_value(c))) own_del(a, "chain", json_string_value(c));
            }
        } else {
            json_object_del(a->applied, "root");
        }
    }
    free(probe);
    free(text);
    json_decref(chains);
    json_decref(owned);
}

/* The IPv6 side of the security groups: the same chains in ip6tables (recorded as "chain6"),
 * jumped to from ip6tables' FORWARD. */
static void sync_sg6(struct ts_netagent *a, const json_t *state, bool anything)
{
    const char *lsargv[] = {"ip6tables", "-w", "-S", "FORWARD", NULL};
    json_t *owned = own_list(a, "chain6");
    bool jump = lists_jump(a, lsargv, a->fwd_chain);
    size_t i;
    json_t *c;
    if (!anything) {
        if (json_array_size(owned) || jump) {
            add_unique(owned, a->fwd_chain);
            char *text = ts_netagent_sg6_restore(state, a->host, a->fwd_chain, owned, false, jump, NULL);
            if (run(a, 0, text, NULL, "ip6tables-restore", "-w", "-n", (const char *)NULL) == 0) {
                json_array_foreach(owned, i, c) own_del(a, "chain6", json_string_value(c));
            }
            free(text);
            json_object_del(a->applied, "root6");
        }
        json_decref(owned);
        return;
    }
    json_t *chains = NULL;
    char *probe = ts_netagent_sg6_restore(state, a->host, a->fwd_chain, owned, false, false, &chains);
    char *text = jump ? NULL : ts_netagent_sg6_restore(state, a->host, a->fwd_chain, owned, true, false, NULL);
    json_array_foreach(chains, i, c) own_add(a, "chain6", json_string_value(c));
    if (!jump || !ts_streq(ts_json_str(a->applied, "root6", NULL), probe)) {
        if (run(a, 0, text ? text : probe, NULL, "ip6tables-restore", "-w", "-n", (const char *)NULL) == 0) {
            json_object_set_new(a->applied, "root6", json_string(probe));
            json_array_foreach(owned, i, c) {
                if (!in_array(chains, json_string_value(c))) own_del(a, "chain6", json_string_value(c));
            }
        } else {
            json_object_del(a->applied, "root6");
        }
    }
    free(probe);
    free(text);
    json_decref(chains);
    json_decref(owned);
}

static int reconcile_to(struct ts_netagent *a, json_t *state);

int ts_netagent_reconcile(struct ts_netagent *a)
{
    json_t *state = a->o.fetch_state(a->o.ctx);
    if (!json_is_object(state)) {
        json_decref(state);
        ts_warn("netagent", "no desired state (network API unreachable?): nothing changed");
        return -TS_EUNAVAIL;
    }
    return reconcile_to(a, state);
}

int ts_netagent_teardown(struct ts_netagent *a)
{
    json_t *empty = json_pack("{s:[],s:[],s:[],s:[],s:[],s:[]}", "networks", "subnets", "ports", "routers",
                              "floatingips", "security_groups");
    return reconcile_to(a, empty);
}

/* One pass towards state (a reference the pass takes). */
static int reconcile_to(struct ts_netagent *a, json_t *state)
{
    /* an admin-down router is not served: no namespace, no ports, no NAT (as Neutron's L3
     * agent); done before the state is shared with the metadata thread */
    json_t *routers = json_object_get(state, "routers"), *rt;
    size_t ri;
    bool down = false;
    json_array_foreach(routers, ri, rt) down |= !ts_json_bool(rt, "admin_state_up", true);
    if (down) { /* the caller's state is left alone: a shallow copy with the up routers only */
        json_t *up = json_array(), *copy = json_copy(state);
        json_array_foreach(routers, ri, rt) if (ts_json_bool(rt, "admin_state_up", true)) json_array_append(up, rt);
        json_object_set_new(copy, "routers", up);
        json_decref(state);
        state = copy;
    }
    pthread_mutex_lock(&a->mu);
    pthread_mutex_lock(&a->st_mu);
    json_decref(a->current);
    a->current = json_incref(state);
    pthread_mutex_unlock(&a->st_mu);
    a->failures = 0;

    json_t *want_ns = json_array(), *want_links = json_array(), *vif_ports = json_array();
    json_t *have_ns = list_netns(a), *links = links_in(a, NULL);
    json_t *dhcp_argv = json_object(); /* net -> argv */
    json_t *ra_routers = json_array(); /* routers running radvd */
    size_t i;
    json_t *v;
    char name[TS_NETAGENT_IFNAME], nsname[128];

    /* what should exist */
    json_array_foreach(json_object_get(state, "networks"), i, v) {
        const char *nid = ts_json_str(v, "id", NULL);
        if (!valid_id(nid)) continue;
        ts_netagent_ifname(name, "brq", nid);
        add_unique(want_links, name);
        const json_t *dp = dhcp_port_of(state, nid);
        if (!dp) continue;
        char dnsif[TS_NETAGENT_IFNAME], *dir = ts_asprintf("%s/dhcp/%s", a->state_dir, nid);
        ts_netagent_ifname(dnsif, "ns-", ts_json_str(dp, "id", ""));
        json_t *argv = ts_netagent_dnsmasq_argv(state, nid, dp, dnsif, dir);
        free(dir);
        if (!argv) continue;
        json_object_set_new(dhcp_argv, nid, argv);
        snprintf(nsname, sizeof(nsname), "qdhcp-%s", nid);
        add_unique(want_ns, nsname);
        ts_netagent_ifname(name, "tap", ts_json_str(dp, "id", ""));
        add_unique(want_links, name);
    }
    json_array_foreach(json_object_get(state, "routers"), i, v) {
        const char *rid = ts_json_str(v, "id", NULL);
        if (!valid_id(rid)) continue;
        snprintf(nsname, sizeof(nsname), "qrouter-%s", rid);
        add_unique(want_ns, nsname);
    }
    json_array_foreach(json_object_get(state, "ports"), i, v) {
        const char *pid = ts_json_str(v, "id", NULL), *owner = ts_json_str(v, "device_owner", "");
        if (!valid_id(pid) || !ts_netagent_find(state, "networks", ts_json_str(v, "network_id", NULL)))
            continue;
        ts_netagent_ifname(name, "tap", pid);
        if (ts_netagent_port_is_vif(v, a->host)) {
            add_unique(want_links, name);
            json_array_append_new(vif_ports, json_string(pid));
        } else if ((ts_streq(owner, "network:router_interface") ||
                    ts_streq(owner, "network:router_gateway")) &&
                   ts_netagent_find(state, "routers", ts_json_str(v, "device_id", NULL))) {
            add_unique(want_links, name);
        }
    }

    /* remove what is ours and no longer wanted */
    json_t *owned = own_list(a, "ns");
    json_array_foreach(owned, i, v) {
        if (!in_array(want_ns, json_string_value(v))) remove_ns(a, json_string_value(v), have_ns);
    }
    json_decref(owned);
    json_decref(links);
    links = links_in(a, NULL);
    owned = own_list(a, "link");
    json_array_foreach(owned, i, v) {
        const char *l = json_string_value(v);
        if (in_array(want_links, l)) continue;
        /* a veth end goes with its namespace, a little later: gone is as good as deleted */
        if (json_object_get(links, l) && RUNQ(a, "ip", "link", "del", l) != 0 &&
            RUNQ(a, "ip", "link", "show", "dev", l) == 0) {
            a->failures++;
            continue;
        }
        own_del(a, "link", l);
        json_object_del(links, l);
        ts_info("netagent", "removed link %s", l);
    }
    json_decref(owned);
    json_decref(have_ns);
    have_ns = list_netns(a);
    json_decref(links);
    links = links_in(a, NULL);
    forget_plugged(a, vif_ports);

    /* build: bridges */
    json_array_foreach(json_object_get(state, "networks"), i, v) {
        const char *nid = ts_json_str(v, "id", NULL);
        if (!valid_id(nid)) continue;
        ts_netagent_ifname(name, "brq", nid);
        ensure_bridge(a, name, links);
    }
    if (a->ext_iface) {
        json_array_foreach(json_object_get(state, "networks"), i, v) {
            if (!ts_json_bool(v, "router:external", false) || !valid_id(ts_json_str(v, "id", NULL))) continue;
            ts_netagent_ifname(name, "brq", ts_json_str(v, "id", NULL));
            if (json_object_get(links, a->ext_iface))
                ensure_enslaved(a, a->ext_iface, name, links);
            else
                ts_warn("netagent", "external_bridge_interface %s does not exist", a->ext_iface);
            break;
        }
    }
    /* DHCP namespaces */
    const char *nid;
    json_t *argv;
    json_object_foreach(dhcp_argv, nid, argv) {
        const json_t *dp = dhcp_port_of(state, nid);
        char root[TS_NETAGENT_IFNAME], inner[TS_NETAGENT_IFNAME], br[TS_NETAGENT_IFNAME];
        snprintf(nsname, sizeof(nsname), "qdhcp-%s", nid);
        ensure_ns(a, nsname, have_ns, false);
        json_t *nl = links_in(a, nsname), *na = addrs_in(a, nsname);
        ts_netagent_ifname(root, "tap", ts_json_str(dp, "id", ""));
        ts_netagent_ifname(inner, "ns-", ts_json_str(dp, "id", ""));
        ts_netagent_ifname(br, "brq", nid);
        json_t *cidrs = port_cidrs(state, dp);
        ensure_veth(a, nsname, root, inner, br, ts_json_str(dp, "mac_address", NULL), cidrs, links, nl, na);
        json_decref(cidrs);
        json_decref(nl);
        json_decref(na);
        if (a->o.serve_metadata) {
            char *nat = ts_netagent_dhcp_nat(a->meta_port);
            restore(a, nsname, nat, false, false);
            free(nat);
            if (a->meta && ts_netagent_metasrv_listen(a->meta, nid, nsname, a->meta_port) < 0) a->failures++;
        }
        char *hosts = ts_netagent_dnsmasq_hosts(state, nid, dp);
        ensure_dnsmasq(a, nsname, nid, argv, hosts);
        free(hosts);
    }
    /* routers */
    json_array_foreach(json_object_get(state, "routers"), i, v) {
        const char *rid = ts_json_str(v, "id", NULL);
        if (!valid_id(rid)) continue;
        snprintf(nsname, sizeof(nsname), "qrouter-%s", rid);
        ensure_ns(a, nsname, have_ns, true);
        json_t *nl = links_in(a, nsname), *na = addrs_in(a, nsname);
        size_t k;
        json_t *p;
        const char *gw = NULL, *qg_dev = NULL;
        char qg[TS_NETAGENT_IFNAME] = "";
        json_array_foreach(json_object_get(state, "ports"), k, p) {
            const char *owner = ts_json_str(p, "device_owner", ""), *pid = ts_json_str(p, "id", NULL);
            bool gwport = ts_streq(owner, "network:router_gateway");
            if (!ts_streq(ts_json_str(p, "device_id", NULL), rid) || !valid_id(pid)) continue;
            if (!gwport && !ts_streq(owner, "network:router_interface")) continue;
            if (!ts_netagent_find(state, "networks", ts_json_str(p, "network_id", NULL))) continue;
            char root[TS_NETAGENT_IFNAME], inner[TS_NETAGENT_IFNAME], br[TS_NETAGENT_IFNAME];
            ts_netagent_ifname(root, "tap", pid);
            ts_netagent_ifname(inner, gwport ? "qg-" : "qr-", pid);
            ts_netagent_ifname(br, "brq", ts_json_str(p, "network_id", ""));
            json_t *cidrs = port_cidrs(state, p);
            if (gwport) {
                size_t f;
                json_t *fip;
                json_array_foreach(json_object_get(state, "floatingips"), f, fip) {
                    const char *fa = ts_json_str(fip, "floating_ip_address", NULL);
                    if (ts_streq(ts_json_str(fip, "router_id", NULL), rid) &&
                        ts_json_str(fip, "port_id", NULL) && ts_netagent_is_v4(fa)) {
                        char *s = ts_asprintf("%s/32", fa);
                        add_unique(cidrs, s);
                        free(s);
                    }
                }
                json_t *f0 = json_array_get(json_object_get(p, "fixed_ips"), 0);
                const json_t *sn = ts_netagent_find(state, "subnets", ts_json_str(f0, "subnet_id", NULL));
                gw = ts_json_str(sn, "gateway_ip", NULL);
                snprintf(qg, sizeof(qg), "%s", inner);
                qg_dev = qg;
            }
            ensure_veth(a, nsname, root, inner, br, ts_json_str(p, "mac_address", NULL), cidrs, links, nl,
                        na);
            json_decref(cidrs);
        }
        if (qg_dev && ts_netagent_is_v4(gw))
            RUN(a, "ip", "-n", nsname, "route", "replace", "default", "via", gw, "dev", qg_dev);
        char *nat = ts_netagent_router_nat(state, rid);
        restore(a, nsname, nat, false, false);
        free(nat);
        /* Router Advertisements for its IPv6 subnets with an ipv6_ra_mode */
        char *ra = ts_netagent_radvd_conf(state, rid);
        ensure_radvd(a, nsname, rid, ra);
        if (ra) add_unique(ra_routers, rid);
        free(ra);
        json_decref(nl);
        json_decref(na);
    }
    sweep_radvd(a, ra_routers);
    /* VIF taps */
    json_array_foreach(json_object_get(state, "ports"), i, v) {
        const char *pid = ts_json_str(v, "id", NULL);
        if (!in_array(vif_ports, pid)) continue;
        char br[TS_NETAGENT_IFNAME];
        ts_netagent_ifname(name, "tap", pid);
        ts_netagent_ifname(br, "brq", ts_json_str(v, "network_id", ""));
        if (!json_object_get(links, name)) {
            own_add(a, "link", name);
            if (RUN(a, "ip", "tuntap", "add", "dev", name, "mode", "tap") != 0) continue;
            RUNQ(a, "ip", "link", "set", "dev", name, "addrgenmode", "none");
            v6_off(a, name, true);
            json_object_set_new(links, name, json_object());
        } else {
            own_add(a, "link", name);
        }
        v6_off(a, name, false);
        ensure_enslaved_state(a, name, br, links, ts_json_bool(v, "admin_state_up", true));
        plugged(a, v);
    }
    /* conntrack zones, security groups, MAC/ARP anti-spoofing */
    json_t *zones = ts_netagent_zones(state);
    bool anything = json_array_size(want_links) > 0;
    sync_zones(a, zones, anything);
    sync_sg(a, state, zones, anything);
    sync_sg6(a, state, anything);
    sync_arp(a, state, anything);
    json_decref(zones);

    int failures = a->failures;
    pthread_mutex_unlock(&a->mu);
    json_decref(dhcp_argv);
    json_decref(ra_routers);
    json_decref(want_ns);
    json_decref(want_links);
    json_decref(vif_ports);
    json_decref(have_ns);
    json_decref(links);
    json_decref(state);
    if (failures) ts_warn("netagent", "reconcile: %d step(s) failed", failures);
    return failures ? -TS_EIO : 0;
}

/* ---- metadata lookups ---------------------------------------------------------------- */

/* The guest's password (Nova's /openstack/<v>/password): GET reads it, POST stores it once
 * (400 over 256 bytes, 409 when set). Compute keeps it; the agent only relays. */
static int meta_password(struct ts_netagent *a, const char *dev, const char *method, const char *data,
                         size_t data_len, char **body, const char **ctype)
{
    *ctype = "text/plain; charset=UTF-8";
    if (!a->o.password) return 404;
    if (ts_streq(method, "POST")) {
        if (data_len > 256) return 400;
        if (memchr(data, 0, data_len) || !ts_utf8_valid(data, data_len)) return 400;
        int st = a->o.password(a->o.ctx, dev, data, NULL);
        if (st == 200) *body = ts_strdup("");
        return st;
    }
    char *got = NULL;
    int st = a->o.password(a->o.ctx, dev, NULL, &got);
    if (st == 200) *body = got ? got : ts_strdup("");
    else free(got);
    return st;
}

static int meta_answer(void *ctx, const char *net_id, const char *src_ip, const char *method, const char *path,
                       const char *data, size_t data_len, char **body, const char **ctype)
{
    struct ts_netagent *a = ctx;
    json_t *state;
    pthread_mutex_lock(&a->st_mu);
    state = json_incref(a->current);
    pthread_mutex_unlock(&a->st_mu);
    const json_t *port = NULL;
    size_t i, k;
    json_t *p, *f;
    json_array_foreach(json_object_get(state, "ports"), i, p) {
        if (!ts_streq(ts_json_str(p, "network_id", NULL), net_id)) continue;
        if (ts_startswith(ts_json_str(p, "device_owner", ""), "network:")) continue;
        json_array_foreach(json_object_get(p, "fixed_ips"), k, f) {
            if (ts_streq(ts_json_str(f, "ip_address", NULL), src_ip)) port = p;
        }
    }
    int st = 404;
    const char *dev = ts_json_str(port, "device_id", NULL);
    if (port && dev && *dev && a->o.fetch_instance) {
        json_t *inst = a->o.fetch_instance(a->o.ctx, dev);
        const char *pp = ts_json_str(port, "project_id", ts_json_str(port, "tenant_id", NULL));
        const char *ip = ts_json_str(inst, "project_id", NULL);
        if (inst && ts_streq(ts_json_str(inst, "uuid", NULL), dev) && (!pp || !ip || ts_streq(pp, ip))) {
            if (ts_netagent_meta_is_password(path))
                st = meta_password(a, dev, method, data, data_len, body, ctype);
            else if (ts_streq(method, "POST"))
                st = 405;
            else
                st = ts_netagent_meta_render(state, inst, port, path, body, ctype);
        }
        json_decref(inst);
    } else {
        ts_info("netagent", "metadata: no instance port for %s on network %s", src_ip, net_id);
    }
    json_decref(state);
    return st;
}

/* ---- lifecycle ------------------------------------------------------------------------ */

void ts_netagent_fwd_chain(const char *state_dir, char out[32])
{
    uint32_t h = 2166136261u; /* FNV-1a: a stable short tag per agent state dir */
    for (const char *c = state_dir; *c; c++)
        h = (h ^ (unsigned char)*c) * 16777619u;
    snprintf(out, 32, "tsg-F%08x", h);
}

struct ts_netagent *ts_netagent_new(const struct ts_netagent_opts *o, struct ts_err *err)
{
    if (!o || !o->data_dir || !o->host || !o->fetch_state) {
        ts_err_set(err, TS_EINVAL, "netagent: data_dir, host and fetch_state are required");
        return NULL;
    }
    struct ts_netagent *a = ts_calloc(1, sizeof(*a));
    a->o = *o;
    a->data_dir = ts_strdup(o->data_dir);
    a->host = ts_strdup(o->host);
    a->ext_iface = o->external_bridge_interface && *o->external_bridge_interface
                       ? ts_strdup(o->external_bridge_interface)
                       : NULL;
    a->o.data_dir = a->data_dir;
    a->o.host = a->host;
    a->o.external_bridge_interface = a->ext_iface;
    a->meta_port = o->meta_port > 0 ? o->meta_port : 9697;
    a->state_dir = ts_asprintf("%s/network-agent", a->data_dir);
    ts_netagent_fwd_chain(a->state_dir, a->fwd_chain);
    snprintf(a->raw_chain, sizeof(a->raw_chain), "tsg-R%s", a->fwd_chain + 5);
    snprintf(a->arp_chain, sizeof(a->arp_chain), "tsa-P%s", a->fwd_chain + 5);
    a->applied = json_object();
    pthread_mutex_init(&a->mu, NULL);
    pthread_mutex_init(&a->st_mu, NULL);
    char *d1 = ts_asprintf("%s/own", a->state_dir), *d2 = ts_asprintf("%s/dhcp", a->state_dir),
         *d3 = ts_asprintf("%s/plugged", a->state_dir);
    int rc = ts_mkdirs(d1, 0755) | ts_mkdirs(d2, 0755) | ts_mkdirs(d3, 0755);
    free(d1);
    free(d2);
    free(d3);
    if (rc < 0) {
        ts_err_set(err, TS_EIO, "netagent: cannot create %s: %s", a->state_dir, strerror(errno));
        ts_netagent_free(a);
        return NULL;
    }
    if (o->serve_metadata) {
        a->meta = ts_netagent_metasrv_new(meta_answer, a);
        if (!a->meta) {
            ts_err_set(err, TS_EIO, "netagent: cannot start the metadata listener thread");
            ts_netagent_free(a);
            return NULL;
        }
    }
    return a;
}

void ts_netagent_free(struct ts_netagent *a)
{
    if (!a) return;
    ts_netagent_metasrv_free(a->meta);
    json_decref(a->current);
    json_decref(a->applied);
    pthread_mutex_destroy(&a->mu);
    pthread_mutex_destroy(&a->st_mu);
    free(a->data_dir);
    free(a->state_dir);
    free(a->host);
    free(a->ext_iface);
    free(a);
}
