#!/usr/bin/env bash
# Side-by-side benchmark of tinystack's identity service and Debian's Keystone (Zed) on this
# machine, loopback only. Run by hand (it installs keystone, memcached and uwsgi with apt when
# they are missing; nothing else runs it):
#
#   bench/identity.sh [BUILD_DIR] [SECONDS_PER_TEST]      (defaults: $TS_BUILD or build, 10)
#
# Keystone runs as Debian ships it: keystone-wsgi-public under uwsgi (one process per CPU),
# SQLite, Fernet tokens, bcrypt cost 12, first without a cache and then with memcached
# ([cache] backend = dogpile.cache.pymemcache). tinystack runs `tinystack serve` with its
# defaults (bcrypt cost 12, 4 HTTP threads). Load: wrk, 2 threads, 16 connections, bounded
# in time. Measures: token validation (GET /v3/auth/tokens), token issue by password and by
# token, project list, cold start (process start to the first 200 on GET /v3) and RSS
# (all processes of the server) after the runs. Writes bench/results/identity.md.
set -euo pipefail
export PATH=/usr/bin:/bin:/usr/sbin:/sbin:$PATH  # Debian python3 (keystone, pymemcache), not a pyenv one
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-${TS_BUILD:-build}}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
DUR=${2:-10}
TS=$BUILD/tinystack
[ -x "$TS" ] || { echo "no $TS: build first" >&2; exit 2; }
OUT=$ROOT/bench/results/identity.md
PW=bench-admin-pw
THREADS=2 CONNS=16

need=()
[ -x /usr/bin/keystone-manage ] || need+=(keystone)
command -v memcached >/dev/null || need+=(memcached)
command -v uwsgi >/dev/null || need+=(uwsgi-core)
python3 -c 'import pymemcache' 2>/dev/null || need+=(python3-pymemcache)
command -v wrk >/dev/null || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} (apt)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
fi

WORK=$(mktemp -d /var/tmp/ts-bench-identity.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

# Waits for the first 200 on URL; prints seconds since START.
wait_200() {
  local url=$1 start=$2
  for _ in $(seq 3000); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$url" 2>/dev/null)" = 200 ]; then
      python3 -c "print('%.3f' % ($(now) - $start))"; return 0
    fi
    sleep 0.005
  done
  echo "timeout"; return 1
}

# RSS in MiB of a process and its descendants.
rss_tree() {
  python3 - "$1" <<'PY'
import os, sys
root = int(sys.argv[1]); kids = {}
for p in os.listdir('/proc'):
    if p.isdigit():
        try:
            st = open('/proc/%s/stat' % p).read().rsplit(')', 1)[1].split()
            kids.setdefault(int(st[1]), []).append(int(p))
        except OSError:
            pass
tot, todo = 0, [root]
while todo:
    p = todo.pop(); todo += kids.get(p, [])
    try:
        for l in open('/proc/%d/status' % p):
            if l.startswith('VmRSS:'): tot += int(l.split()[1])
    except OSError:
        pass
print('%.1f' % (tot / 1024))
PY
}

get_token() { # url body -> token
  curl -s -o /dev/null -D - -H 'Content-Type: application/json' -d "$2" "$1/v3/auth/tokens" |
    sed -n 's/^[Xx]-[Ss]ubject-[Tt]oken: *\([^[:space:]]*\).*/\1/p'
}
PW_BODY='{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"id":"default"},"password":"'$PW'"}}},"scope":{"project":{"name":"admin","domain":{"id":"default"}}}}}'

# wrk runs; print req/s
wrk_get() { # url token subject
  local extra=()
  [ -n "${3:-}" ] && extra=(-H "X-Subject-Token: $3")
  wrk -t$THREADS -c$CONNS -d"${DUR}s" --timeout 30s --latency -H "X-Auth-Token: $2" "${extra[@]}" "$1" 2>&1 |
    tee -a "$WORK/wrk.log" | awk '/^Requests\/sec/ {printf ($2 < 100 ? "%.1f" : "%.0f"), $2} /Non-2xx/ {print " (non-2xx: " $NF ")" > "/dev/stderr"}'
}
wrk_post() { # url body
  cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[$2]]
LUA
  wrk -t$THREADS -c$CONNS -d"${DUR}s" --timeout 30s -s "$WORK/post.lua" "$1" 2>&1 | tee -a "$WORK/wrk.log" |
    awk '/^Requests\/sec/ {printf "%.1f", $2} /Non-2xx/ {print " (non-2xx: " $NF ")" > "/dev/stderr"}'
}

declare -A R
measure() { # name base_url
  local name=$1 url=$2 tok
  tok=$(get_token "$url" "$PW_BODY")
  [ -n "$tok" ] || { echo "$name: cannot get a token" >&2; return 1; }
  echo "  $name: validate"; R[$name,validate]=$(wrk_get "$url/v3/auth/tokens" "$tok" "$tok")
  echo "  $name: project list"; R[$name,projects]=$(wrk_get "$url/v3/projects" "$tok")
  echo "  $name: issue by token"
  R[$name,issue_token]=$(wrk_post "$url/v3/auth/tokens" '{"auth":{"identity":{"methods":["token"],"token":{"id":"'$tok'"}},"scope":{"project":{"name":"admin","domain":{"id":"default"}}}}}')
  echo "  $name: issue by password"; R[$name,issue_pw]=$(wrk_post "$url/v3/auth/tokens" "$PW_BODY")
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
# ---- tinystack ------------------------------------------------------------------------------
TSP=$(free_port)
"$TS" init --data "$WORK/ts" --admin-password "$PW" --set identity.port=$TSP \
  --set DEFAULT.enabled_services=identity >/dev/null 2>&1
echo "tinystack on :$TSP"
start=$(now)
"$TS" serve --data "$WORK/ts" > "$WORK/ts.log" 2>&1 &
TSPID=$!; PIDS+=($TSPID)
R[ts,cold]=$(wait_200 "http://127.0.0.1:$TSP/v3" "$start")
measure ts "http://127.0.0.1:$TSP"
R[ts,rss]=$(rss_tree $TSPID)
kill -TERM $TSPID; wait $TSPID 2>/dev/null || true

# ---- keystone ---------------------------------------------------------------------------------
KS=$WORK/ks
mkdir -p "$KS/fernet" "$KS/cred" "$KS/log"
MCP=$(free_port)
write_conf() { # cache on|off
  cat > "$KS/keystone.conf" <<CONF
[DEFAULT]
log_dir = $KS/log
use_stderr = false
[database]
connection = sqlite:///$KS/keystone.db
[token]
provider = fernet
[fernet_tokens]
key_repository = $KS/fernet
[fernet_receipts]
key_repository = $KS/fernet
[credential]
key_repository = $KS/cred
[identity]
password_hash_algorithm = bcrypt
password_hash_rounds = 12
[cache]
enabled = $([ "$1" = on ] && echo true || echo false)
backend = dogpile.cache.pymemcache
memcache_servers = 127.0.0.1:$MCP
CONF
}
write_conf off
KM=(keystone-manage --config-file "$KS/keystone.conf")
"${KM[@]}" db_sync >/dev/null 2>&1
"${KM[@]}" fernet_setup --keystone-user root --keystone-group root >/dev/null 2>&1
"${KM[@]}" credential_setup --keystone-user root --keystone-group root >/dev/null 2>&1
"${KM[@]}" bootstrap --bootstrap-password "$PW" --bootstrap-region-id RegionOne \
  --bootstrap-public-url "http://127.0.0.1:5000" >/dev/null 2>&1

KSP=$(free_port)
run_keystone() { # cache on|off
  write_conf "$1"
  local start; start=$(now)
  OS_KEYSTONE_CONFIG_FILES=$KS/keystone.conf uwsgi --plugin python3 --http-socket 127.0.0.1:$KSP \
    --wsgi-file /usr/bin/keystone-wsgi-public --processes "$(nproc)" --threads 1 --master --die-on-term \
    --lazy-apps --buffer-size 65535 --env OS_KEYSTONE_CONFIG_FILES=$KS/keystone.conf > "$KS/uwsgi-$1.log" 2>&1 &
  KSPID=$!; PIDS+=($KSPID)
  R[ks_$1,cold]=$(wait_200 "http://127.0.0.1:$KSP/v3" "$start")
}
echo "keystone (no cache) on :$KSP"
run_keystone off
measure ks_off "http://127.0.0.1:$KSP"
R[ks_off,rss]=$(rss_tree $KSPID)
kill -TERM $KSPID; wait $KSPID 2>/dev/null || true

memcached -l 127.0.0.1 -p $MCP -U 0 -m 64 -u root > "$WORK/memcached.log" 2>&1 &
PIDS+=($!)
echo "keystone (memcached) on :$KSP"
run_keystone on
measure ks_on "http://127.0.0.1:$KSP"
R[ks_on,rss]=$(rss_tree $KSPID)
kill -TERM $KSPID; wait $KSPID 2>/dev/null || true

# ---- report -------------------------------------------------------------------------------------
ratio() { python3 -c "a,b=float('$1' or 0),float('$2' or 0); print('%.0fx' % (a/b) if b else '-')"; }
mkdir -p "$(dirname "$OUT")"
{
  echo "# Identity: tinystack vs Keystone (Debian 12, Zed)"
  echo
  echo "Measured $(date -u +%Y-%m-%d) by bench/identity.sh on this machine ($(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)),"
  echo "loopback only. wrk -t$THREADS -c$CONNS --timeout 30s, ${DUR} s per row; servers and load generator share the CPUs."
  echo "Load average before the run: $LOAD0; after: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews both columns alike)."
  echo "Keystone: keystone-wsgi-public under uwsgi ($(nproc) processes), SQLite, Fernet, bcrypt cost 12;"
  echo "tinystack: \`tinystack serve\` (identity only), SQLite, Fernet, bcrypt cost 12, 4 HTTP threads."
  echo
  echo "| measure | tinystack | Keystone | Keystone + memcached | tinystack / Keystone+memcached |"
  echo "|---|---|---|---|---|"
  echo "| token validate (GET /v3/auth/tokens), req/s | ${R[ts,validate]} | ${R[ks_off,validate]} | ${R[ks_on,validate]} | $(ratio "${R[ts,validate]}" "${R[ks_on,validate]}") |"
  echo "| project list (GET /v3/projects), req/s | ${R[ts,projects]} | ${R[ks_off,projects]} | ${R[ks_on,projects]} | $(ratio "${R[ts,projects]}" "${R[ks_on,projects]}") |"
  echo "| token issue by token, req/s | ${R[ts,issue_token]} | ${R[ks_off,issue_token]} | ${R[ks_on,issue_token]} | $(ratio "${R[ts,issue_token]}" "${R[ks_on,issue_token]}") |"
  echo "| token issue by password (bcrypt 12), req/s | ${R[ts,issue_pw]} | ${R[ks_off,issue_pw]} | ${R[ks_on,issue_pw]} | $(ratio "${R[ts,issue_pw]}" "${R[ks_on,issue_pw]}") |"
  echo "| cold start (process start to first 200 on GET /v3), s | ${R[ts,cold]} | ${R[ks_off,cold]} | ${R[ks_on,cold]} | |"
  echo "| RSS after the runs (all processes), MiB | ${R[ts,rss]} | ${R[ks_off,rss]} | ${R[ks_on,rss]} (+ memcached) | |"
  echo
  echo "Targets (issue #2): validate >= 100x Keystone with cache, cold start < 0.2 s, RSS < 30 MB."
  echo
  echo "Notes: Keystone without a cache runs about 500 SQL statements per token validation (cProfile of"
  echo "keystone-wsgi-public in-process, Zed), so with 16 connections on 2 processes few requests finish"
  echo "within the run. tinystack caches validations in-process (invalidated by every write, at most"
  echo "[identity] validation_cache_seconds = 10 s) and answers both checks of GET /v3/auth/tokens"
  echo "(X-Auth-Token and X-Subject-Token) from it. Token issue by password is bcrypt-bound on both."
} > "$OUT"
cat "$OUT"
