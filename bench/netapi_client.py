#!/usr/bin/python3
"""bench/netapi_client.py: the client side of bench/network-neutron.sh, run unchanged against
tinystack's network service and against neutron-server. It is the client of bench/network.sh
(requests, 8 threads each holding a keep-alive session; then wrk with a Lua script making each
body unique) as a program of its own so that both servers see the same calls:
network, subnet (one /24 per network), port (on one /16 network) and security group rule
(in one group) creates per second, GET /v2.0/ports?network_id= of 1,000 ports per second, and
the RSS of the server's process tree after the Python runs and after wrk.

Usage: netapi_client.py URL TOKEN PROJECT_ID SERVER_PID WORKDIR N_NET N_PORT N_SGR N_LIST WRK_S
Prints one JSON object on stdout.
"""
import concurrent.futures, json, os, shutil, subprocess, sys, threading, time
import requests

URL, TOK, PID, SPID, W = sys.argv[1:6]
N_NET, N_PORT, N_SGR, N_LIST, WRK_S = (int(a) for a in sys.argv[6:11])
H = {"X-Auth-Token": TOK}
T = 120  # per request timeout, s (neutron under load takes seconds per call)
local = threading.local()


def sess():
    if not hasattr(local, "s"):
        local.s = requests.Session()
        local.s.headers.update(H)
    return local.s


def rate(n, fn):
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        t = time.time()
        rs = list(ex.map(fn, range(n)))
        dt = time.time() - t
    bad = [r for r in rs if r.status_code >= 300]
    assert not bad, bad[0].text
    return n / dt, rs


def rss_tree(root):
    kids = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                st = open("/proc/%s/stat" % p).read().rsplit(")", 1)[1].split()
                kids.setdefault(int(st[1]), []).append(int(p))
            except OSError:
                pass
    tot, todo = 0, [root]
    while todo:
        p = todo.pop()
        todo += kids.get(p, [])
        try:
            for line in open("/proc/%d/status" % p):
                if line.startswith("VmRSS:"):
                    tot += int(line.split()[1])
        except OSError:
            pass
    return tot // 1024


def log(msg):
    print("  %s  %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


# Warm-up, not timed, failures ignored: 64 GETs from 8 threads reach every worker process once
# (cinder-api's oslo.policy loads its rules lazily and two threads of one worker loading them at
# once fail with "dictionary changed size during iteration", a 500).
def warm(i):
    try:
        return sess().get(URL + "/v2.0/networks?limit=1", timeout=T).status_code
    except requests.RequestException:
        return 0
with concurrent.futures.ThreadPoolExecutor(8) as ex:
    warm_codes = list(ex.map(warm, range(64)))
log("warm-up: %d of 64 GETs failed" % sum(1 for c in warm_codes if c != 200))
res = {"load_start": os.getloadavg()}
r = sess().put(URL + "/v2.0/quotas/" + PID, json={"quota": {
    "network": -1, "subnet": -1, "port": -1, "security_group_rule": -1, "security_group": -1}}, timeout=T)
assert r.status_code == 200, r.text

res["net"], nets = rate(N_NET, lambda i: sess().post(URL + "/v2.0/networks", json={"network": {"name": "b%d" % i}}, timeout=T))
log("network create %.1f/s" % res["net"])
net_ids = [r.json()["network"]["id"] for r in nets]
res["sub"], _ = rate(N_NET, lambda i: sess().post(URL + "/v2.0/subnets", json={"subnet": {
    "network_id": net_ids[i], "cidr": "10.%d.%d.0/24" % (i // 256, i % 256), "ip_version": 4}}, timeout=T))
log("subnet create %.1f/s" % res["sub"])
big = sess().post(URL + "/v2.0/networks", json={"network": {"name": "big"}}, timeout=T).json()["network"]["id"]
r = sess().post(URL + "/v2.0/subnets", json={"subnet": {"network_id": big, "cidr": "10.200.0.0/16", "ip_version": 4}}, timeout=T)
assert r.status_code == 201, r.text
res["port"], _ = rate(N_PORT, lambda i: sess().post(URL + "/v2.0/ports", json={"port": {"network_id": big}}, timeout=T))
log("port create %.1f/s" % res["port"])
# fill the network up to 1,000 ports (not timed; single creates from 8 threads: Neutron's bulk
# create was slower than that here)
rate(1000 - N_PORT, lambda i: sess().post(URL + "/v2.0/ports", json={"port": {"network_id": big}}, timeout=T))
log("1,000 ports")
sg = sess().post(URL + "/v2.0/security-groups", json={"security_group": {"name": "bench"}}, timeout=T).json()["security_group"]["id"]
res["sgr"], _ = rate(N_SGR, lambda i: sess().post(URL + "/v2.0/security-group-rules", json={"security_group_rule": {
    "security_group_id": sg, "direction": "ingress", "protocol": "tcp", "port_range_min": i + 1, "port_range_max": i + 1}}, timeout=T))
log("security group rule create %.1f/s" % res["sgr"])
n = len(sess().get(URL + "/v2.0/ports?network_id=" + big, timeout=T).json()["ports"])
assert n == 1000, n
res["list"], _ = rate(N_LIST, lambda i: sess().get(URL + "/v2.0/ports?network_id=" + big, timeout=T))
log("list of 1,000 ports %.2f/s" % res["list"])
res["rss"] = rss_tree(int(SPID))
res["load_py"] = os.getloadavg()

# The same calls from wrk (C, 2 threads, 8 connections, WRK_S seconds each).
sg2 = sess().post(URL + "/v2.0/security-groups", json={"security_group": {"name": "bench-wrk"}}, timeout=T).json()["security_group"]["id"]


def wrk(path, fmt=None):
    if not shutil.which("wrk"):
        return None
    lua = os.path.join(W, "wrk.lua")
    with open(lua, "w") as f:
        f.write('tid = 0\nfunction setup(t) t:set("tid", tid); tid = tid + 1 end\n'
                'local n = 0\nwrk.headers["X-Auth-Token"] = "%s"\n' % TOK)
        f.write('local shown = 0\nresponse = function(status, headers, body)\n'
                ' if status >= 300 and shown < 2 then shown = shown + 1; print(status, body) end end\n')
        if fmt:
            f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                    'request = function() n = n + 1\n local k = tid * 30000 + n\n'
                    ' return wrk.format(nil, "%s", nil, string.format(%r, k)) end\n' % (path, fmt))
        else:
            f.write('request = function() return wrk.format(nil, "%s") end\n' % path)
    out = subprocess.run(["wrk", "-t2", "-c8", "-d%ds" % WRK_S, "--timeout", "120s", "-s", lua, URL],
                         capture_output=True, text=True).stdout
    bad = [l for l in out.splitlines() if "Non-2xx" in l]
    assert not bad, out
    v = float([l for l in out.splitlines() if l.startswith("Requests/sec:")][0].split()[1])
    log("wrk %s %s: %.2f/s" % ("POST" if fmt else "GET", path.split("?")[0], v))
    return v


res["w_list"] = wrk("/v2.0/ports?network_id=" + big)
res["w_net"] = wrk("/v2.0/networks", '{"network": {"name": "w%d"}}')
res["w_port"] = wrk("/v2.0/ports", '{"port": {"network_id": "%s", "name": "w%%d"}}' % big)
res["w_sgr"] = wrk("/v2.0/security-group-rules", '{"security_group_rule": {"security_group_id": "%s", "direction": '
                   '"ingress", "protocol": "tcp", "port_range_min": %%d, "port_range_max": 65535}}' % sg2)
res["rss_end"] = rss_tree(int(SPID))
res["load_end"] = os.getloadavg()
print(json.dumps(res))
