#!/usr/bin/python3
"""bench/api_client.py: the client side of the side-by-side benchmarks bench/network-neutron.sh
and bench/volume-cinder.sh, run unchanged against tinystack's service and against the OpenStack
one so that both servers see the same calls, and the report both scripts write.

Every service: the calls from Python requests (8 threads each holding a keep-alive session),
then from wrk (C, 2 threads, a Lua script making each body unique), and the RSS of the server's
process tree after the Python runs and after wrk. The per-service request builders:
  network: network, subnet (one /24 per network), port (on one /16 network) and security group
    rule (in one group) creates per second, GET /v2.0/ports?network_id= of 1,000 ports per
    second (the client of bench/network.sh); wrk with 8 connections.
  volume: POST /v3/{project}/volumes (1 GiB, empty) per second (the API call's rate: the 202;
    what the volume becomes afterwards is not waited for), then up to 1,000 volumes (not timed),
    GET /v3/{project}/volumes/detail?limit=1000 per second; wrk with 4 connections.

Usage: api_client.py network URL TOKEN PROJECT_ID SERVER_PID WORKDIR N_NET N_PORT N_SGR N_LIST WRK_S
       api_client.py volume URL TOKEN PROJECT_ID SERVER_PID WORKDIR N_CREATE N_LIST WRK_S
         one JSON object on stdout
       api_client.py report network|volume TS_JSON REF_JSON OUT
         the script's results section from the two JSON objects (tinystack's, the reference
         server's) and the environment (TS_COUNTS REF_COUNTS LOAD_TS LOAD_REF LOAD_END TS_COLD
         REF_COLD REF_NPROC DB_RSS): on stdout and in OUT (bench/results-section.py)
       api_client.py rss PID
         MiB of a process and all its descendants
"""
import concurrent.futures, json, os, shutil, subprocess, sys, threading, time

T = 120  # per request timeout, s (neutron under load takes seconds per call)
HERE = os.path.dirname(os.path.abspath(__file__))


def rss_kib(root):
    """KiB resident of a process and all its descendants."""
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
    return tot


def log(msg):
    print("  %s  %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def rate(n, fn):
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        t = time.time()
        rs = list(ex.map(fn, range(n)))
        dt = time.time() - t
    bad = [r for r in rs if r.status_code >= 300]
    assert not bad, bad[0].text
    return n / dt, rs


class Server:
    """One server under test: keep-alive sessions (one a thread) and wrk."""

    def __init__(self, url, token, pid, workdir, wrk_s, wrk_conns):
        import requests
        self.requests = requests
        self.url, self.token, self.pid, self.workdir = url, token, pid, workdir
        self.wrk_s, self.wrk_conns = wrk_s, wrk_conns
        self.local = threading.local()

    def sess(self):
        if not hasattr(self.local, "s"):
            self.local.s = self.requests.Session()
            self.local.s.headers.update({"X-Auth-Token": self.token})
        return self.local.s

    def get(self, path):
        return self.sess().get(self.url + path, timeout=T)

    def post(self, path, body):
        return self.sess().post(self.url + path, json=body, timeout=T)

    def put(self, path, body):
        return self.sess().put(self.url + path, json=body, timeout=T)

    # Warm-up, not timed, failures ignored: 64 GETs from 8 threads reach every worker process
    # once (cinder-api's oslo.policy loads its rules lazily and two threads of one worker
    # loading them at once fail with "dictionary changed size during iteration", a 500).
    def warm(self, path):
        def one(i):
            try:
                return self.get(path).status_code
            except self.requests.RequestException:
                return 0
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            codes = list(ex.map(one, range(64)))
        log("warm-up: %d of 64 GETs failed" % sum(1 for c in codes if c != 200))

    # The same calls from wrk (2 threads, wrk_conns connections, wrk_s seconds each); a POST
    # body is fmt with %d the request's number (unique across wrk's threads).
    def wrk(self, path, fmt=None):
        if not shutil.which("wrk"):
            return None
        lua = os.path.join(self.workdir, "wrk.lua")
        with open(lua, "w") as f:
            f.write('tid = 0\nfunction setup(t) t:set("tid", tid); tid = tid + 1 end\n'
                    'local n = 0\nwrk.headers["X-Auth-Token"] = "%s"\n' % self.token)
            f.write('local shown = 0\nresponse = function(status, headers, body)\n'
                    ' if status >= 300 and shown < 2 then shown = shown + 1; print(status, body) end end\n')
            if fmt:
                f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                        'request = function() n = n + 1\n local k = tid * 30000 + n\n'
                        ' return wrk.format(nil, "%s", nil, string.format(%r, k)) end\n' % (path, fmt))
            else:
                f.write('request = function() return wrk.format(nil, "%s") end\n' % path)
        out = subprocess.run(["wrk", "-t2", "-c%d" % self.wrk_conns, "-d%ds" % self.wrk_s, "--timeout", "120s",
                              "-s", lua, self.url], capture_output=True, text=True).stdout
        bad = [l for l in out.splitlines() if "Non-2xx" in l]
        assert not bad, out
        v = float([l for l in out.splitlines() if l.startswith("Requests/sec:")][0].split()[1])
        log("wrk %s %s: %.2f/s" % ("POST" if fmt else "GET", path.split("?")[0], v))
        return v

    def python_done(self, res):
        """The figures taken between the Python rows and wrk."""
        res["rss"] = rss_kib(self.pid) // 1024
        res["load_py"] = os.getloadavg()


# ---- request builders, one a service: the calls, into res ------------------------------------
def network(s, project, res, n_net, n_port, n_sgr, n_list):
    r = s.put("/v2.0/quotas/" + project, {"quota": {
        "network": -1, "subnet": -1, "port": -1, "security_group_rule": -1, "security_group": -1}})
    assert r.status_code == 200, r.text
    res["net"], nets = rate(n_net, lambda i: s.post("/v2.0/networks", {"network": {"name": "b%d" % i}}))
    log("network create %.1f/s" % res["net"])
    net_ids = [r.json()["network"]["id"] for r in nets]
    res["sub"], _ = rate(n_net, lambda i: s.post("/v2.0/subnets", {"subnet": {
        "network_id": net_ids[i], "cidr": "10.%d.%d.0/24" % (i // 256, i % 256), "ip_version": 4}}))
    log("subnet create %.1f/s" % res["sub"])
    big = s.post("/v2.0/networks", {"network": {"name": "big"}}).json()["network"]["id"]
    r = s.post("/v2.0/subnets", {"subnet": {"network_id": big, "cidr": "10.200.0.0/16", "ip_version": 4}})
    assert r.status_code == 201, r.text
    res["port"], _ = rate(n_port, lambda i: s.post("/v2.0/ports", {"port": {"network_id": big}}))
    log("port create %.1f/s" % res["port"])
    # fill the network up to 1,000 ports (not timed; single creates from 8 threads: Neutron's
    # bulk create was slower than that here)
    rate(1000 - n_port, lambda i: s.post("/v2.0/ports", {"port": {"network_id": big}}))
    log("1,000 ports")
    sg = s.post("/v2.0/security-groups", {"security_group": {"name": "bench"}}).json()["security_group"]["id"]
    res["sgr"], _ = rate(n_sgr, lambda i: s.post("/v2.0/security-group-rules", {"security_group_rule": {
        "security_group_id": sg, "direction": "ingress", "protocol": "tcp", "port_range_min": i + 1,
        "port_range_max": i + 1}}))
    log("security group rule create %.1f/s" % res["sgr"])
    n = len(s.get("/v2.0/ports?network_id=" + big).json()["ports"])
    assert n == 1000, n
    res["list"], _ = rate(n_list, lambda i: s.get("/v2.0/ports?network_id=" + big))
    log("list of 1,000 ports %.2f/s" % res["list"])
    s.python_done(res)
    sg2 = s.post("/v2.0/security-groups", {"security_group": {"name": "bench-wrk"}}).json()["security_group"]["id"]
    res["w_list"] = s.wrk("/v2.0/ports?network_id=" + big)
    res["w_net"] = s.wrk("/v2.0/networks", '{"network": {"name": "w%d"}}')
    res["w_port"] = s.wrk("/v2.0/ports", '{"port": {"network_id": "%s", "name": "w%%d"}}' % big)
    res["w_sgr"] = s.wrk("/v2.0/security-group-rules", '{"security_group_rule": {"security_group_id": "%s", '
                         '"direction": "ingress", "protocol": "tcp", "port_range_min": %%d, "port_range_max": '
                         '65535}}' % sg2)


def volume(s, project, res, n_create, n_list):
    base = "/v3/%s" % project
    r = s.put(base + "/os-quota-sets/" + project, {"quota_set": {"volumes": -1, "gigabytes": -1}})
    assert r.status_code == 200, r.text
    create = lambda i: s.post(base + "/volumes", {"volume": {"size": 1, "name": "b%d" % i}})
    res["create"], _ = rate(n_create, create)
    log("volume create %.1f/s" % res["create"])
    rate(1000 - n_create, create)
    n = len(s.get(base + "/volumes/detail?limit=1000").json()["volumes"])
    assert n == 1000, n
    log("1,000 volumes")
    res["list"], _ = rate(n_list, lambda i: s.get(base + "/volumes/detail?limit=1000"))
    log("detail list of 1,000 volumes %.2f/s" % res["list"])
    s.python_done(res)
    res["w_list"] = s.wrk(base + "/volumes/detail?limit=1000")
    res["w_create"] = s.wrk(base + "/volumes", '{"volume": {"size": 1, "name": "w%d"}}')


# What a service's run needs: its request builder, how many counts it takes (the last is wrk's
# seconds), the path of the warm-up GET (project id for %s), wrk's connections; and for the
# report: the script, the reference server's names (title and table / load lines / MariaDB row),
# the text above the table (after its first line), the rows and the cold start row's label.
SERVICES = {
    "network": dict(
        run=network, counts=5, warm="/v2.0/networks?limit=1", wrk_conns=8,
        script="network-neutron.sh", ref="neutron-server", ref_load="neutron", ref_db="Neutron",
        text=lambda tc, rc: [
            "neutron-server right after it, the same client (bench/api_client.py network: Python requests, 8",
            "threads; then wrk -t2 -c8). tinystack: `tinystack serve` with identity + network, SQLite, no agent.",
            "Neutron: Debian 12's neutron-api 2:21.0.0 (Zed) under uwsgi with Debian's ini (8 processes; 1",
            "thread each instead of Debian's 32, which hang on the first concurrent requests), Debian's ML2",
            "config and service plugins, MariaDB 10.11 on a unix socket, RPC on the fake:// transport (no",
            "agents, no RabbitMQ), Nova notifications off; keystone auth",
            "(keystonemiddleware) against the tinystack identity service of the same run.",
            "Calls per row, tinystack / Neutron: networks and subnets %s / %s, ports %s / %s (then filled"
            % (tc[0], rc[0], tc[1], rc[1]),
            "to 1,000, not timed), rules %s / %s, lists %s / %s; wrk %s s / %s s per row."
            % (tc[2], rc[2], tc[3], rc[3], tc[4], rc[4]),
        ],
        rows=[
            ("network create (Python)", "net", "/s", "%.1f"),
            ("network create (wrk)", "w_net", "/s", "%.1f"),
            ("subnet create, /24 (Python)", "sub", "/s", "%.1f"),
            ("port create, one /16 (Python)", "port", "/s", "%.1f"),
            ("port create (wrk)", "w_port", "/s", "%.1f"),
            ("security group rule create (Python)", "sgr", "/s", "%.1f"),
            ("security group rule create (wrk)", "w_sgr", "/s", "%.1f"),
            ("GET ports?network_id= of 1,000 ports (Python)", "list", "lists/s", "%.2f"),
            ("GET ports?network_id= of 1,000 ports (wrk)", "w_list", "lists/s", "%.2f"),
        ],
        cold="cold start, process start to first 200 on GET /"),
    "volume": dict(
        run=volume, counts=3, warm="/v3/%s/volumes?limit=1", wrk_conns=4,
        script="volume-cinder.sh", ref="cinder-api", ref_load="cinder-api", ref_db="cinder-api",
        text=lambda tc, rc: [
            "cinder-api right after it, the same client (bench/api_client.py volume: Python requests, 8",
            "threads; then wrk -t2 -c4). tinystack: `tinystack serve` with identity + volume, SQLite, file",
            "backend (its create also makes the sparse file). cinder-api: Debian 12's 2:21.3.1 (Zed) under",
            "uwsgi with Debian's ini (8 processes x 32 threads), MariaDB 10.11 on a unix socket, no scheduler",
            "or volume service (its volumes stay \"creating\"), RPC on the fake:// transport; keystone auth",
            "(keystonemiddleware) against the tinystack identity service of the same run.",
            "Calls, tinystack / cinder-api: creates %s / %s (then filled to 1,000 volumes), detail lists %s / %s;"
            % (tc[0], rc[0], tc[1], rc[1]),
            "wrk %s s / %s s per row (the list first, still 1,000 volumes)." % (tc[2], rc[2]),
        ],
        rows=[
            ("POST volumes, 1 GiB empty (Python), 202s per second", "create", "/s", "%.1f"),
            ("POST volumes (wrk)", "w_create", "/s", "%.1f"),
            ("GET volumes/detail?limit=1000, 1,000 volumes (Python)", "list", "lists/s", "%.2f"),
            ("GET volumes/detail?limit=1000 (wrk)", "w_list", "lists/s", "%.2f"),
        ],
        cold="cold start, process start to the version document on GET /"),
}


def run(svc, argv):
    spec = SERVICES[svc]
    if len(argv) != 5 + spec["counts"]:
        sys.exit(__doc__)
    url, token, project, spid, workdir = argv[:5]
    counts = [int(a) for a in argv[5:]]
    s = Server(url, token, int(spid), workdir, counts[-1], spec["wrk_conns"])
    s.warm(spec["warm"].replace("%s", project))
    res = {"load_start": os.getloadavg()}
    spec["run"](s, project, res, *counts[:-1])
    res["rss_end"] = rss_kib(s.pid) // 1024
    res["load_end"] = os.getloadavg()
    print(json.dumps(res))


def report(svc, ts_path, ref_path, out):
    spec, e = SERVICES[svc], os.environ
    ts, ref = json.load(open(ts_path)), json.load(open(ref_path))
    la = lambda v: "%.1f/%.1f/%.1f" % tuple(v)

    def row(name, key, unit, fmt):
        a, b = ts[key], ref[key]
        return ("| %s | %s %s | %s %s | %.0fx |" % (name, fmt % a, unit, fmt % b, unit, a / b) if a and b
                else "| %s | | | |" % name)
    rows = [
        "",
        "## Side by side with %s, %s (bench/%s)" % (spec["ref"], time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                                  spec["script"]),
        "",
        "One run on this machine (2 CPUs, shared with other helpers' builds and tests), tinystack first,",
    ] + spec["text"](e["TS_COUNTS"].split(), e["REF_COUNTS"].split()) + [
        "Load average (1/5/15 min): before tinystack %s; tinystack Python rows %s, wrk %s;"
        % (e["LOAD_TS"], la(ts["load_py"]), la(ts["load_end"])),
        "before %s %s; %s Python rows %s, wrk %s; end %s."
        % (spec["ref_load"], e["LOAD_REF"], spec["ref_load"], la(ref["load_py"]), la(ref["load_end"]), e["LOAD_END"]),
        "",
        "| measure | tinystack | %s | ratio |" % spec["ref"],
        "|---|---|---|---|",
    ] + [row(*r) for r in spec["rows"]] + [
        "| %s | %s s | %s s | %.0fx |" % (spec["cold"], e["TS_COLD"], e["REF_COLD"],
                                        float(e["REF_COLD"]) / max(float(e["TS_COLD"]), 0.001)),
        "| RSS after the Python rows (process tree) | %d MiB | %d MiB (%s processes) | 1/%.0f |"
        % (ts["rss"], ref["rss"], e["REF_NPROC"], ref["rss"] / ts["rss"]),
        "| RSS after wrk | %d MiB | %d MiB | 1/%.0f |" % (ts["rss_end"], ref["rss_end"], ref["rss_end"] / ts["rss_end"]),
        "| MariaDB's RSS (not in %s's figure) | | %s MiB | |" % (spec["ref_db"], e["DB_RSS"]),
        "",
    ]
    txt = "\n".join(rows)
    print(txt)
    # only this script's section (between its markers) is replaced; the rest of the file stays
    subprocess.run(["/usr/bin/python3", os.path.join(HERE, "results-section.py"), out, spec["script"]],
                   input=txt, text=True, check=True)


def main():
    a = sys.argv[1:]
    if len(a) == 2 and a[0] == "rss":
        print("%.0f" % (rss_kib(int(a[1])) / 1024))
    elif len(a) == 5 and a[0] == "report" and a[1] in SERVICES:
        report(*a[1:])
    elif a and a[0] in SERVICES:
        run(a[0], a[1:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
