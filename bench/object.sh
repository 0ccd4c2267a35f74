#!/usr/bin/env bash
# Object storage benchmark: tinystack's object service and, side by side, Debian's Swift
# (Zed: swift-proxy with tempauth, one account/container/object server each on a loopback
# directory, replica count 1). Run by hand only: it installs the swift packages with apt when
# they are missing (pass --no-swift to measure tinystack alone). Loopback traffic only.
#
#   bench/object.sh [BUILD_DIR] [SECONDS_PER_TEST] [--no-swift]   (defaults: $TS_BUILD or build, 10)
#
# With BENCH_SECTION=NAME (and BENCH_LABEL="a heading") the table goes into the section NAME of
# the results file (bench/results-section.py markers) and the rest of the file, the reference
# table at its top included, stays as it is.
#
# Measures, for each server: 1 KiB PUT / GET / HEAD requests per second with 1 and 8
# keep-alive clients; listing a 1,000-object container (JSON); a 1 GiB PUT and GET (md5
# checked) against `cp` of the same file on the same disk and against `openssl md5` of it
# (the ETag a PUT answers with is the body's MD5: one core's MD5 speed bounds any PUT); the
# server's RSS (VmHWM) after the runs. Writes bench/results/object.md.
set -euo pipefail
export PATH=/usr/bin:/bin:/usr/sbin:/sbin:$PATH
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${TS_BUILD:-build}
DUR=10
WITH_SWIFT=1
pos=0
for a in "$@"; do
  case $a in
    --no-swift) WITH_SWIFT=0 ;;
    *) if [ $pos -eq 0 ]; then BUILD=$a; else DUR=$a; fi; pos=$((pos + 1)) ;;
  esac
done
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
TS=$BUILD/tinystack
[ -x "$TS" ] || { echo "no $TS: build first" >&2; exit 2; }
OUT=$ROOT/bench/results/object.md
PW=bench-admin-pw

if [ $WITH_SWIFT = 1 ] && { [ ! -x /usr/bin/swift-proxy-server ] || ! command -v memcached >/dev/null; }; then
  echo "installing swift (apt)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q swift-proxy swift-account swift-container swift-object memcached >/dev/null
fi

WORK=$(mktemp -d /var/tmp/ts-bench-object.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---- the load generator (python, keep-alive http.client per thread) -------------------------
cat > "$WORK/load.py" <<'PY'
import hashlib, http.client, json, os, sys, threading, time
from urllib.parse import urlparse
storage, token, dur, label, bigfile = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5]
u = urlparse(storage)
H = {"X-Auth-Token": token}
def conn():
    # 1 MiB send blocks: http.client's default 8 KiB makes the client the bottleneck of a 1 GiB PUT
    return http.client.HTTPConnection(u.hostname, u.port, timeout=120, blocksize=1 << 20)
def load():
    return open("/proc/loadavg").read().split()[0]
def fsync_floor(d, secs=3.0):
    """What one durable 1 KiB write costs on this disk right now: write a temp file, fsync it,
    rename it over one of 20 names, fsync the directory (the durability both servers give a
    PUT), in a loop."""
    os.makedirs(d, exist_ok=True)
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    n = 0; t0 = time.time(); buf = os.urandom(1024)
    while time.time() - t0 < secs:
        tmp = os.path.join(d, "t.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, buf); os.fsync(fd); os.close(fd)
        os.rename(tmp, os.path.join(d, "f%d" % (n % 20))); os.fsync(dfd)
        n += 1
    os.close(dfd)
    return n / (time.time() - t0)
def req(c, m, path, body=None, headers=None):
    h = dict(H); h.update(headers or {})
    c.request(m, u.path + path, body=body, headers=h)
    r = c.getresponse(); data = r.read()
    return r.status, data
c = conn()
req(c, "PUT", "/bench")
payload = os.urandom(1024)
NAMES = 20  # objects per client thread: GET/HEAD only ever touch objects that exist
for i in range(8):
    for n in range(NAMES):
        req(c, "PUT", "/bench/o-%d-%d" % (i, n), payload)
def run(method, nthreads):
    stop = time.time() + dur
    counts = [0] * nthreads
    errors = [0]
    def worker(i):
        cc = conn(); n = 0
        while time.time() < stop:
            name = "/bench/o-%d-%d" % (i, n % NAMES)
            st, _ = req(cc, method, name, payload if method == "PUT" else None)
            if st >= 300: errors[0] += 1
            n += 1
        counts[i] = n
    th = [threading.Thread(target=worker, args=(i,)) for i in range(nthreads)]
    [t.start() for t in th]; [t.join() for t in th]
    return sum(counts) / dur, errors[0]
rows = [("load average at the start", load())]
floor = fsync_floor(label + "-fsync")
rows.append(("fsync floor: 1 KiB write+fsync+rename+fsync dir loop, same disk (not a server)", "%.0f /s" % floor))
for nt in (1, 8):
    for m in ("PUT", "GET", "HEAD"):
        rps, err = run(m, nt)
        rows.append(("1 KiB %s, c=%d" % (m, nt), "%.0f req/s" % rps + (" (%d errors)" % err if err else "")))
# listing 1,000 objects (a new connection: the first one sat idle through the runs above,
# longer than a server's keep-alive timeout when SECONDS_PER_TEST is 10)
c.close(); c = conn()
req(c, "PUT", "/list")
for i in range(1000):
    req(c, "PUT", "/list/obj-%04d" % i, b"x")
t0 = time.time(); n = 0
while time.time() - t0 < min(dur, 5):
    st, body = req(c, "GET", "/list?format=json")
    assert st == 200 and len(json.loads(body)) == 1000
    n += 1
rows.append(("list 1,000 objects (json)", "%.1f ms" % ((time.time() - t0) / n * 1000)))
t0 = time.time(); n = 0
while time.time() - t0 < min(dur, 5):
    st, body = req(c, "GET", "/list?format=json")
    assert st == 200
    n += 1
rows.append(("list 1,000 objects (json, body read but not parsed)", "%.2f ms" % ((time.time() - t0) / n * 1000)))
# the same reads from wrk (C, keep-alive): the Python client above costs ~0.25 ms of CPU per
# request on the same 2 cores, so its c=8 rows measure the client as much as the server
import shutil, subprocess
def wrk(path, conns, method="GET"):
    if not shutil.which("wrk"):
        return None
    script = label + "-wrk.lua"
    with open(script, "w") as f:
        f.write('wrk.method = "%s"\n' % method)
    out = subprocess.run(["wrk", "-t2", "-c%d" % conns, "-d%ds" % max(2, int(dur)), "--timeout", "30s",
                          "-s", script, "-H", "X-Auth-Token: " + token, storage + path],
                         capture_output=True, text=True).stdout
    rps = [l.split()[1] for l in out.splitlines() if l.startswith("Requests/sec:")]
    bad = [l for l in out.splitlines() if "Non-2xx" in l]
    return (float(rps[0]) if rps else 0.0), bad
# (no HEAD row: wrk waits for a body after a HEAD answer's Content-Length)
for m in ("GET",):
    r = wrk("/bench/o-0-0", 8, m)
    if r is not None:
        rows.append(("1 KiB %s, c=8 (wrk)" % m, "%.0f req/s" % r[0] + (" (non-2xx!)" if r[1] else "")))
r = wrk("/list?format=json", 2)
if r is not None:
    rows.append(("list 1,000 objects (json), wrk c=2", "%.1f lists/s" % r[0] + (" (non-2xx!)" if r[1] else "")))
# 1 GiB PUT / GET
size = os.path.getsize(bigfile)
t0 = time.time()
with open(bigfile, "rb") as f:
    cc = conn()
    cc.request("PUT", u.path + "/bench/big", body=f, headers=dict(H, **{"Content-Length": str(size)}))
    r = cc.getresponse(); r.read()
    assert r.status == 201, r.status
tput = time.time() - t0
t0 = time.time()
cc = conn(); cc.request("GET", u.path + "/bench/big", headers=H); r = cc.getresponse()
h = hashlib.md5(); got = 0
while True:
    b = r.read(1 << 20)
    if not b: break
    h.update(b); got += len(b)
tget = time.time() - t0
assert got == size
t0 = time.time()
cc = conn(); cc.request("GET", u.path + "/bench/big", headers=H); r = cc.getresponse()
buf = bytearray(1 << 20); got = 0
while True:
    k = r.readinto(buf)
    if not k: break
    got += k
tget2 = time.time() - t0
assert got == size
rows.append(("1 GiB PUT", "%.2f s (%.0f MiB/s)" % (tput, size / tput / 2**20)))
rows.append(("1 GiB GET (md5 on the client)", "%.2f s (%.0f MiB/s)" % (tget, size / tget / 2**20)))
rows.append(("1 GiB GET (client only reads)", "%.2f s (%.0f MiB/s)" % (tget2, size / tget2 / 2**20)))
rows.append(("load average at the end", load()))
json.dump(rows, open(label + ".json", "w"))
PY

BIG=$WORK/big.bin
head -c 1073741824 /dev/urandom > "$BIG"
sync
cp_sync() {
  local t0 t1
  t0=$(date +%s.%N); cp "$BIG" "$WORK/big.copy"; sync; t1=$(date +%s.%N); rm -f "$WORK/big.copy"; sync
  python3 -c "print('%.2f' % ($t1 - $t0))"
}
md5_time() {
  local t0 t1
  t0=$(date +%s.%N); openssl md5 "$BIG" >/dev/null; t1=$(date +%s.%N)
  python3 -c "print('%.2f' % ($t1 - $t0))"
}
t0=$(date +%s.%N); cat "$BIG" > /dev/null; t1=$(date +%s.%N)
CAT=$(python3 -c "print('%.2f' % ($t1 - $t0))")
CP=$(cp_sync)
MD5=$(md5_time)

# current RSS, as `ps -o rss` gives Swift's (its processes' peaks are not sampled), and the peak
rss() { awk '/VmRSS/{r=$2} /VmHWM/{h=$2} END {printf "%.1f MiB (peak %.1f MiB)", r/1024, h/1024}' /proc/$1/status; }

# ---- tinystack ---------------------------------------------------------------------------
declare -A P
for s in identity image compute network volume object; do P[$s]=$(free_port); done
sets=()
for s in "${!P[@]}"; do sets+=(--set "$s.port=${P[$s]}"); done
# identity (the auth Swift's tempauth does in its proxy) and object only: the other services
# are not part of what Swift runs
sets+=(--set DEFAULT.enabled_services=identity,object)
"$TS" init --data "$WORK/ts" --admin-password "$PW" "${sets[@]}" >/dev/null
"$TS" serve --data "$WORK/ts" >"$WORK/ts.log" 2>&1 &
TSPID=$!; PIDS+=($TSPID)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:${P[identity]}/v3" >/dev/null && break; sleep 0.1; done
TOK=$(curl -si -H 'Content-Type: application/json' -d "{\"auth\":{\"identity\":{\"methods\":[\"password\"],\"password\":{\"user\":{\"name\":\"admin\",\"domain\":{\"name\":\"Default\"},\"password\":\"$PW\"}}},\"scope\":{\"project\":{\"name\":\"admin\",\"domain\":{\"name\":\"Default\"}}}}}" "http://127.0.0.1:${P[identity]}/v3/auth/tokens" | tr -d '\r' | awk '/^[Xx]-[Ss]ubject-[Tt]oken:/{print $2}')
PROJ=$(curl -s -H "X-Auth-Token: $TOK" -H "X-Subject-Token: $TOK" "http://127.0.0.1:${P[identity]}/v3/auth/tokens" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"]["project"]["id"])')
[ -n "${BENCH_SKIP_TS:-}" ] && echo "[]" > "$WORK/tinystack.json" || (cd "$WORK" && python3 load.py "http://127.0.0.1:${P[object]}/v1/AUTH_$PROJ" "$TOK" "$DUR" tinystack "$BIG")
TS_RSS=$(rss $TSPID)

# ---- Debian Swift ---------------------------------------------------------------------------
SW_RSS="-"
if [ $WITH_SWIFT = 1 ]; then
  S=$WORK/swift; mkdir -p "$S/etc" "$S/srv/d1" "$S/run"
  PP=$(free_port); AP=$(free_port); CP2=$(free_port); OP=$(free_port); MP=$(free_port)
  memcached -u "$(id -un)" -l 127.0.0.1 -p "$MP" -m 64 & PIDS+=($!)
  cat > "$S/etc/swift.conf" <<CONF
[swift-hash]
swift_hash_path_suffix = bench
[storage-policy:0]
name = Policy-0
default = yes
CONF
  for kind in account:$AP container:$CP2 object:$OP; do
    k=${kind%%:*}; port=${kind##*:}
    (cd "$S/etc" && swift-ring-builder $k.builder create 4 1 1 >/dev/null &&
      swift-ring-builder $k.builder add r1z1-127.0.0.1:$port/d1 1 >/dev/null &&
      swift-ring-builder $k.builder rebalance >/dev/null)
    cat > "$S/etc/$k-server.conf" <<CONF
[DEFAULT]
devices = $S/srv
mount_check = false
bind_ip = 127.0.0.1
bind_port = $port
workers = 1
user = $(id -un)
swift_dir = $S/etc
[pipeline:main]
pipeline = $k-server
[app:$k-server]
use = egg:swift#$k
CONF
  done
  cat > "$S/etc/proxy-server.conf" <<CONF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $PP
workers = $(nproc)
user = $(id -un)
swift_dir = $S/etc
[pipeline:main]
pipeline = catch_errors healthcheck cache tempauth proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$MP
[filter:catch_errors]
use = egg:swift#catch_errors
CONF
  for k in account container object; do
    SWIFT_DIR=$S/etc swift-$k-server "$S/etc/$k-server.conf" >"$S/$k.log" 2>&1 & PIDS+=($!)
  done
  swift-proxy-server "$S/etc/proxy-server.conf" >"$S/proxy.log" 2>&1 & SWPID=$!; PIDS+=($SWPID)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PP/healthcheck" >/dev/null && break; sleep 0.2; done
  curl -sf "http://127.0.0.1:$PP/healthcheck" >/dev/null || { for l in "$S"/*.log; do echo "== $l"; tail -n 5 "$l"; done >&2; echo "swift did not come up" >&2; exit 1; }
  HDR=$(curl -si -H 'X-Auth-User: test:tester' -H 'X-Auth-Key: testing' "http://127.0.0.1:$PP/auth/v1.0" | tr -d '\r')
  STOK=$(echo "$HDR" | awk '/^X-Auth-Token:/{print $2}')
  SURL=$(echo "$HDR" | awk '/^X-Storage-Url:/{print $2}')
  CPSW=$(cp_sync)
  MD5SW=$(md5_time)
  (cd "$WORK" && python3 load.py "$SURL" "$STOK" "$DUR" swift "$BIG")
  SW_RSS=$(ps -o rss= -p "$(pgrep -d, -f "$S/etc")" | awk '{s+=$1} END {printf "%.1f MiB (sum of %d processes)", s/1024, NR}')
fi

# ---- report ------------------------------------------------------------------------------------
python3 - "$WORK" "$OUT" "$CP" "$TS_RSS" "$SW_RSS" "$DUR" "${CPSW:-}" "$CAT" "$MD5" "${MD5SW:-}" "$ROOT" <<'PY'
import json, os, sys, platform, subprocess
work, out, cp, ts_rss, sw_rss, dur, cp2, cat, md5, md52, root = sys.argv[1:]
section, label = os.environ.get("BENCH_SECTION"), os.environ.get("BENCH_LABEL")
ts = json.load(open(os.path.join(work, "tinystack.json")))
sw = json.load(open(os.path.join(work, "swift.json"))) if os.path.exists(os.path.join(work, "swift.json")) else None
lines = ["### " + label if label else "# Object storage benchmark", "",
         "bench/object.sh, %s s per test, loopback, %s, %d CPUs." % (dur, platform.machine(), os.cpu_count()), "",
         "| test | tinystack | Debian Swift (Zed) | tinystack vs Swift |", "|---|---|---|---|"]
base = ts or sw or []
def ratio(name, a, b):
    """How many times better tinystack is (rates: a/b; times: b/a)."""
    try:
        x, y = float(a.split()[0]), float(b.split()[0])
    except (ValueError, IndexError, AttributeError):
        return ""
    if name.startswith(("load", "fsync")) or x <= 0 or y <= 0:
        return ""
    return "%.1fx" % (x / y if "/s" in a.split("(")[0] else y / x)
for i, (name, _v) in enumerate(base):
    a = ts[i][1] if ts else "-"
    b = sw[i][1] if sw else "-"
    lines.append("| %s | %s | %s | %s |" % (name, a, b, ratio(name, a, b) if ts and sw else ""))
lines.append("| cp of the same 1 GiB file + sync, just before the run | %s s | %s | |" % (cp, (cp2 + " s") if cp2 else "-"))
lines.append("| openssl md5 of the same 1 GiB file (one core: the floor of a PUT answering its MD5 ETag), just before the run | %s s | %s | |" % (md5, (md52 + " s") if md52 else "-"))
lines.append("| cat of the 1 GiB file (page cache) > /dev/null | %s s | | |" % cat)
def rss_ratio(a, b):
    try:
        return "1/%.0f" % (float(b.split()[0]) / float(a.split()[0]))
    except (ValueError, IndexError, ZeroDivisionError):
        return ""
lines.append("| server RSS after the runs (VmRSS; tinystack: identity + object enabled) | %s | %s | %s |" % (ts_rss, sw_rss, rss_ratio(ts_rss, sw_rss)))
lines += ["", "Clients: python http.client, one keep-alive connection per thread (1 MiB send blocks);",
          "PUTs overwrite 20 objects per thread, GET/HEAD read them. Both servers make a PUT durable",
          "before answering: fsync of the data file, rename, fsync of the directory; the fsync floor row",
          "is that sequence alone in a loop on the same disk just before the server's run, the bound",
          "of any durable PUT at c=1. Swift: proxy (workers = CPUs) + one account, container and",
          "object server, tempauth, memcached, one replica. Numbers from a shared 2-CPU VM where other",
          "builds may run at the same time (see the load rows): compare columns, not runs."]
if section:
    subprocess.run([sys.executable, os.path.join(root, "bench", "results-section.py"), out, section],
                   input="\n".join(lines), text=True, check=True)
    print("\n".join(lines))
    sys.exit(0)
# hand-written notes below the marker survive a re-run
MARK = "<!-- notes: kept by bench/object.sh -->"
notes = ""
if os.path.exists(out):
    prev = open(out).read()
    if MARK in prev:
        notes = "\n" + MARK + prev.split(MARK, 1)[1]
open(out, "w").write("\n".join(lines) + "\n" + notes)
print("\n".join(lines))
PY
