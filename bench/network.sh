#!/usr/bin/env bash
# bench/network.sh: tinystack's network service alone (no side-by-side: neutron-server needs
# MariaDB/RabbitMQ and an ML2 agent set-up that this bench does not attempt). Measures, on
# loopback, with 8 client threads each holding a keep-alive session: network, subnet and port
# creates per second, security group rule creates per second, GET /v2.0/ports of 1,000 ports
# per second, cold start (process start to the first 200 on GET /) and the server's RSS after
# the runs. Writes bench/results/network.md.
#
# Usage: bench/network.sh [BUILD_DIR]      (default $TS_BUILD or build)
set -euo pipefail
export PATH=/usr/bin:/bin:/usr/sbin:/sbin:$PATH
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-${TS_BUILD:-build}}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
[ -x "$BUILD/tinystack" ] || { echo "no $BUILD/tinystack: build first" >&2; exit 2; }
exec /usr/bin/python3 - "$BUILD/tinystack" "$ROOT/bench/results/network.md" <<'PY'
import concurrent.futures, os, shutil, signal, socket, subprocess, sys, tempfile, time, requests

TS, OUT = sys.argv[1], sys.argv[2]
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
d = tempfile.mkdtemp(prefix="ts-bench-net-", dir="/var/tmp")
ports = {s: free_port() for s in ("identity", "image", "compute", "network", "volume", "object")}
args = [TS, "init", "--data", d, "--admin-password", "pw"]
for s, p in ports.items():
    args += ["--set", "%s.port=%d" % (s, p)]
subprocess.run(args, check=True, capture_output=True)
ID = "http://127.0.0.1:%d" % ports["identity"]
NET = "http://127.0.0.1:%d" % ports["network"]
t0 = time.time()
proc = subprocess.Popen([TS, "serve", "--data", d], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                        start_new_session=True)
cold = None
while time.time() - t0 < 30:
    try:
        if requests.get(NET + "/", timeout=1).status_code == 200:
            cold = time.time() - t0
            break
    except requests.RequestException:
        pass
    time.sleep(0.005)
try:
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"name": "Default"}, "password": "pw"}}},
                     "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}
    tok = requests.post(ID + "/v3/auth/tokens", json=body).headers["X-Subject-Token"]
    H = {"X-Auth-Token": tok}
    requests.put(NET + "/v2.0/quotas/" + requests.get(ID + "/v3/auth/tokens", headers={"X-Auth-Token": tok, "X-Subject-Token": tok}).json()["token"]["project"]["id"],
                 headers=H, json={"quota": {"network": -1, "subnet": -1, "port": -1, "security_group_rule": -1}})
    import threading
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

    net_rate, nets = rate(400, lambda i: sess().post(NET + "/v2.0/networks", json={"network": {"name": "b%d" % i}}))
    net_ids = [r.json()["network"]["id"] for r in nets]
    sub_rate, _ = rate(400, lambda i: sess().post(NET + "/v2.0/subnets", json={"subnet": {
        "network_id": net_ids[i], "cidr": "10.%d.%d.0/24" % (i // 256, i % 256), "ip_version": 4}}))
    big = sess().post(NET + "/v2.0/networks", json={"network": {"name": "big"}}).json()["network"]["id"]
    sess().post(NET + "/v2.0/subnets", json={"subnet": {"network_id": big, "cidr": "10.200.0.0/16", "ip_version": 4}})
    port_rate, _ = rate(1000, lambda i: sess().post(NET + "/v2.0/ports", json={"port": {"network_id": big}}))
    sg = sess().post(NET + "/v2.0/security-groups", json={"security_group": {"name": "bench"}}).json()["security_group"]["id"]
    sgr_rate, _ = rate(400, lambda i: sess().post(NET + "/v2.0/security-group-rules", json={"security_group_rule": {
        "security_group_id": sg, "direction": "ingress", "protocol": "tcp", "port_range_min": i + 1, "port_range_max": i + 1}}))
    n = len(sess().get(NET + "/v2.0/ports?network_id=" + big).json()["ports"])
    assert n == 1000, n
    list_rate, _ = rate(40, lambda i: sess().get(NET + "/v2.0/ports?network_id=" + big))
    rss = 0
    for line in open("/proc/%d/status" % proc.pid):
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) // 1024
    cpu = os.cpu_count()
    res = """# network service benchmark (tinystack only)

Loopback, %d CPUs, SQLite (WAL), 8 client threads with keep-alive sessions, admin token.
Neutron side by side was not run: neutron-server needs MariaDB, RabbitMQ and an ML2 agent set-up.
Run: `bench/network.sh [BUILD_DIR]`.

| measure | tinystack |
|---|---|
| network create | %.0f /s |
| subnet create (/24, one per network) | %.0f /s |
| port create (one /16 subnet, IPAM + unique MAC) | %.0f /s |
| security group rule create | %.0f /s |
| GET /v2.0/ports (1,000 ports) | %.1f lists/s |
| cold start (`tinystack serve` to first 200 on network GET /) | %.2f s |
| RSS of the whole `tinystack serve` after the runs | %d MiB |
""" % (cpu, net_rate, sub_rate, port_rate, sgr_rate, list_rate, cold or -1, rss)
    print(res)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    open(OUT, "w").write(res)
finally:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)
    shutil.rmtree(d, ignore_errors=True)
PY
