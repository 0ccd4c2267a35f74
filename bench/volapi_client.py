#!/usr/bin/python3
"""bench/volapi_client.py: the client side of bench/volume-cinder.sh, run unchanged against
tinystack's block storage service and against cinder-api: POST /v3/{project}/volumes (1 GiB,
empty) per second from 8 threads each holding a keep-alive session (the API call's rate: the
202; what the volume becomes afterwards is not waited for), then up to 1,000 volumes (not
timed), GET /v3/{project}/volumes/detail?limit=1000 per second (Python, 8 threads; then wrk),
volume creates per second from wrk, and the RSS of the server's process tree.

Usage: volapi_client.py URL TOKEN PROJECT_ID SERVER_PID WORKDIR N_CREATE N_LIST WRK_S
Prints one JSON object on stdout.
"""
import concurrent.futures, json, os, shutil, subprocess, sys, threading, time
import requests

URL, TOK, PID, SPID, W = sys.argv[1:6]
N_CREATE, N_LIST, WRK_S = (int(a) for a in sys.argv[6:9])
BASE = "%s/v3/%s" % (URL, PID)
T = 120
local = threading.local()


def sess():
    if not hasattr(local, "s"):
        local.s = requests.Session()
        local.s.headers.update({"X-Auth-Token": TOK})
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
        return sess().get(BASE + "/volumes?limit=1", timeout=T).status_code
    except requests.RequestException:
        return 0
with concurrent.futures.ThreadPoolExecutor(8) as ex:
    warm_codes = list(ex.map(warm, range(64)))
log("warm-up: %d of 64 GETs failed" % sum(1 for c in warm_codes if c != 200))
res = {"load_start": os.getloadavg()}
r = sess().put(BASE + "/os-quota-sets/" + PID, json={"quota_set": {"volumes": -1, "gigabytes": -1}}, timeout=T)
assert r.status_code == 200, r.text
create = lambda i: sess().post(BASE + "/volumes", json={"volume": {"size": 1, "name": "b%d" % i}}, timeout=T)
res["create"], _ = rate(N_CREATE, create)
log("volume create %.1f/s" % res["create"])
rate(1000 - N_CREATE, create)
n = len(sess().get(BASE + "/volumes/detail?limit=1000", timeout=T).json()["volumes"])
assert n == 1000, n
log("1,000 volumes")
res["list"], _ = rate(N_LIST, lambda i: sess().get(BASE + "/volumes/detail?limit=1000", timeout=T))
log("detail list of 1,000 volumes %.2f/s" % res["list"])
res["rss"] = rss_tree(int(SPID))
res["load_py"] = os.getloadavg()


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
    out = subprocess.run(["wrk", "-t2", "-c4", "-d%ds" % WRK_S, "--timeout", "120s", "-s", lua, URL],
                         capture_output=True, text=True).stdout
    bad = [l for l in out.splitlines() if "Non-2xx" in l]
    assert not bad, out
    v = float([l for l in out.splitlines() if l.startswith("Requests/sec:")][0].split()[1])
    log("wrk %s %s: %.2f/s" % ("POST" if fmt else "GET", path.split("?")[0], v))
    return v


vpath = "/v3/%s/volumes" % PID
res["w_list"] = wrk(vpath + "/detail?limit=1000")
res["w_create"] = wrk(vpath, '{"volume": {"size": 1, "name": "w%d"}}')
res["rss_end"] = rss_tree(int(SPID))
res["load_end"] = os.getloadavg()
print(json.dumps(res))
