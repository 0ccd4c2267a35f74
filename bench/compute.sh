#!/usr/bin/env bash
# bench/compute.sh: the compute service on the fake virt driver: N boots (default 500)
# create -> ACTIVE latency p50/p99 and servers/s through the whole flow (api -> scheduler ->
# agent -> conductor over the in-process bus), peak RSS of `tinystack serve`, and the
# scheduler's decision time with 1,000 compute hosts in its tables. Writes
# bench/results/compute.md.
#
# Usage: bench/compute.sh     (TS_BUILD=build by default; N=500; CONC=16; HOSTS=1000)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${TS_BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
TS=$BUILD/tinystack
N=${N:-500}
CONC=${CONC:-16}
HOSTS=${HOSTS:-1000}
OUT=$ROOT/bench/results/compute.md
[ -x "$TS" ] || { echo "bench/compute.sh: build tinystack first ($TS missing)" >&2; exit 2; }

W=$(mktemp -d /var/tmp/compute-bench.XXXXXX)
PID=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && sleep 1 && kill -9 "$PID" 2>/dev/null
  [ -n "${KEEP:-}" ] && echo "kept $W" >&2 || rm -rf "$W"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
IP=$(port); CP=$(port); GP=$(port)
"$TS" init --data "$W" --admin-password bench --set identity.port=$IP --set compute.port=$CP \
  --set image.port=$GP --set DEFAULT.enabled_services=identity,image,compute \
  --set compute.virt_driver=fake --set compute.service_down_time=100000000 \
  --set compute.quota_instances=-1 --set compute.quota_cores=-1 --set compute.quota_ram=-1 \
  --set compute.agent_workers=16 --set compute.threads=32 --set identity.password_hash_rounds=4 >/dev/null

start() {
  "$TS" serve --data "$W" "$@" > "$W/serve.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$IP/v3" >/dev/null && break; sleep 0.05; done
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }

start
python3 - "$IP" "$CP" "$GP" "$N" "$CONC" "$PID" "$W" <<'PY'
import concurrent.futures as cf, json, sys, time, requests
ip, cp, gp, n, conc, pid, w = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7]
body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"name": "Default"}, "password": "bench"}}},
                 "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}
tok = requests.post("http://127.0.0.1:%s/v3/auth/tokens" % ip, json=body).headers["X-Subject-Token"]
H = {"X-Auth-Token": tok, "OpenStack-API-Version": "compute 2.90"}
C = "http://127.0.0.1:%s/v2.1" % cp
fl = requests.post(C + "/flavors", headers=H, json={"flavor": {"name": "b1", "ram": 64, "vcpus": 1, "disk": 0}}).json()["flavor"]
img = requests.post("http://127.0.0.1:%s/v2/images" % gp, headers=H, json={"name": "b", "disk_format": "raw", "container_format": "bare"}).json()
requests.put("http://127.0.0.1:%s/v2/images/%s/file" % (gp, img["id"]), headers=dict(H, **{"Content-Type": "application/octet-stream"}), data=b"\0" * 4096)
sess = requests.Session()
starts, active = {}, {}
def boot(i):
    t = time.time()
    r = sess.post(C + "/servers", headers=H, json={"server": {"name": "b%d" % i, "imageRef": img["id"], "flavorRef": fl["id"], "networks": "none"}})
    assert r.status_code == 202, r.text
    starts[r.json()["server"]["id"]] = t
t0 = time.time()
with cf.ThreadPoolExecutor(conc) as ex:
    futs = [ex.submit(boot, i) for i in range(n)]
    # poll while booting: one detail list every 20 ms
    while len(active) < n:
        now = time.time()
        for s in requests.get(C + "/servers/detail?limit=1000", headers=H).json()["servers"]:
            if s["status"] == "ACTIVE" and s["id"] not in active:
                active[s["id"]] = now
            if s["status"] == "ERROR":
                raise SystemExit("ERROR: %s" % s.get("fault"))
        if time.time() - t0 > 600:
            raise SystemExit("timeout")
        time.sleep(0.02)
    for f in futs:
        f.result()
t1 = max(active.values())
lat = sorted(active[k] - starts[k] for k in starts)
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
rss = hwm = 0
for line in open("/proc/%s/status" % pid):
    if line.startswith("VmRSS"): rss = int(line.split()[1]) // 1024
    if line.startswith("VmHWM"): hwm = int(line.split()[1]) // 1024
json.dump({"n": n, "conc": conc, "p50": p(0.5), "p99": p(0.99), "rate": n / (t1 - t0), "rss": rss, "hwm": hwm},
          open(w + "/boot.json", "w"))
PY
stop

# 1,000 more compute hosts in the scheduler's tables (up, enabled, smaller than the real one so
# builds still land on the running fake agent), then time the decisions
python3 - "$W/compute.db" "$HOSTS" <<'PY'
import sqlite3, sys, time, uuid
db = sqlite3.connect(sys.argv[1]); now = time.time() + 1e7
for i in range(int(sys.argv[2])):
    h = "bench-host-%04d" % i
    db.execute("INSERT INTO services (uuid, host, binary_name, topic, availability_zone, last_seen_up, created_at) VALUES (?,?,?,?,?,?,?)",
               (str(uuid.uuid4()), h, "nova-compute", "compute", "nova", now, now))
    db.execute("INSERT INTO compute_nodes (uuid, host, hypervisor_hostname, hypervisor_type, vcpus, memory_mb, local_gb) VALUES (?,?,?,?,?,?,?)",
               (str(uuid.uuid4()), h, h, "fake", 64, 65536, 1000))
db.commit()
PY
start --set DEFAULT.debug=true
python3 - "$IP" "$CP" "$GP" <<'PY'
import sys, time, requests
ip, cp, gp = sys.argv[1:4]
body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"name": "Default"}, "password": "bench"}}},
                 "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}
tok = requests.post("http://127.0.0.1:%s/v3/auth/tokens" % ip, json=body).headers["X-Subject-Token"]
H = {"X-Auth-Token": tok, "OpenStack-API-Version": "compute 2.90"}
C = "http://127.0.0.1:%s/v2.1" % cp
fl = requests.get(C + "/flavors", headers=H).json()["flavors"][0]["id"]
img = requests.get("http://127.0.0.1:%s/v2/images" % gp, headers=H).json()["images"][0]["id"]
for i in range(100):
    r = requests.post(C + "/servers", headers=H, json={"server": {"name": "s%d" % i, "imageRef": img, "flavorRef": fl, "networks": "none"}})
    assert r.status_code == 202
time.sleep(3)
PY
stop
python3 - "$W" "$OUT" "$HOSTS" <<'PY'
import json, re, sys, subprocess
w, out, hosts = sys.argv[1], sys.argv[2], sys.argv[3]
b = json.load(open(w + "/boot.json"))
ms = sorted(float(m) for m in re.findall(r"scheduler: \S+ -> \S+ \(([0-9.]+) ms\)", open(w + "/serve.log").read()))
q = lambda a, x: a[min(len(a) - 1, int(x * len(a)))] if a else float("nan")
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2; nproc"], capture_output=True, text=True).stdout.split("\n")
with open(out, "w") as f:
    f.write("# compute service benchmark (fake virt driver)\n\n")
    f.write("Written by `bench/compute.sh` on %s (%s CPUs). One `tinystack serve` with identity, image\n"
            "and compute (api, scheduler, conductor and an in-process agent on the in-process bus).\n\n" % (cpu[0].strip(), cpu[1].strip()))
    f.write("| measure | value |\n|---|---|\n")
    f.write("| boots | %d (%d concurrent clients) |\n" % (b["n"], b["conc"]))
    f.write("| create -> ACTIVE p50 | %.0f ms |\n| create -> ACTIVE p99 | %.0f ms |\n" % (b["p50"] * 1000, b["p99"] * 1000))
    f.write("| servers/s (first POST to last ACTIVE) | %.1f |\n" % b["rate"])
    f.write("| RSS after the boots / peak | %d MiB / %d MiB |\n" % (b["rss"], b["hwm"]))
    f.write("| scheduler decision with %s hosts, p50 / p99 (%d decisions) | %.2f ms / %.2f ms |\n" % (int(hosts) + 1, len(ms), q(ms, 0.5), q(ms, 0.99)))
    f.write("\nLatency is measured by polling `GET /servers/detail` every 20 ms, so it includes up to\n"
            "that much polling delay. The decision time is the scheduler's claim transaction up to\n"
            "the INSERT: the instance check, one pass of filter+weigh over the in-memory host table\n"
            "and the re-read of the chosen host (the first decision after a start or a change\n"
            "elsewhere also reloads the table: one SELECT over all hosts with their allocation sums).\n")
print(open(out).read())
PY
