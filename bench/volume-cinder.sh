#!/usr/bin/env bash
# bench/volume-cinder.sh: tinystack's block storage API side by side with Debian 12's cinder-api
# (OpenStack Zed, 2:21.3.1), in one run on this machine, loopback only. Run by hand (it
# apt-installs cinder-api, mariadb-server and wrk when missing; nothing else runs it):
#
#   bench/volume-cinder.sh [BUILD_DIR]      (default $TS_BUILD or build)
#
# The API alone, as the issue measured it: cinder-api with no scheduler and no volume service,
# so its volumes stay "creating" (the create call's rate is what is measured, on both sides).
# cinder-api runs as the cinder-api package's init script starts it: uwsgi with
# /etc/cinder/cinder-api-uwsgi.ini (8 processes x 32 threads, lazy-apps, "Connection: close";
# only the socket, the log file and the user differ); MariaDB on a unix socket only; RPC on
# oslo.messaging's in-memory fake:// transport (the cast to the absent scheduler goes nowhere);
# one row in its services table stands for a cinder-volume in zone "nova" (without it every
# create is refused: no availability zone). It authenticates with keystonemiddleware against
# tinystack's identity service of the same run, so both sides see the same admin token.
# tinystack: `tinystack serve` with identity + volume, SQLite, the file backend (its creates do
# make the sparse file, in the same process). The client (bench/volapi_client.py) is the same
# for both. Writes its section of bench/results/volume.md
# (replaced on a re-run; the rest of the file stays).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib-openstack.sh"
BUILD=${1:-${TS_BUILD:-build}}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
TS=$BUILD/tinystack
[ -x "$TS" ] || { echo "no $TS: build first" >&2; exit 2; }
OUT=${OUT:-$ROOT/bench/results/volume.md}
CLIENT=$ROOT/bench/volapi_client.py
# measured creates, detail lists, wrk seconds per row
TS_COUNTS=${TS_COUNTS:-"400 200 3"}
CINDER_COUNTS=${CINDER_COUNTS:-"100 16 15"}

os_install cinder-api mariadb-server wrk

W=$(mktemp -d /var/tmp/ts-bench-cinder.XXXXXX)
TS_PID= CI_PID=
cleanup() {
  [ -n "$CI_PID" ] && { kill -TERM "$CI_PID" 2>/dev/null || true; }
  [ -n "$TS_PID" ] && { kill -TERM "$TS_PID" 2>/dev/null || true; }
  sleep 2
  [ -n "$CI_PID" ] && { pkill -KILL -P "$CI_PID" 2>/dev/null || true; kill -KILL "$CI_PID" 2>/dev/null || true; wait "$CI_PID" 2>/dev/null || true; }
  [ -n "$TS_PID" ] && { kill -KILL "$TS_PID" 2>/dev/null || true; wait "$TS_PID" 2>/dev/null || true; }
  mariadb_stop
  [ -n "${KEEP:-}" ] && echo "kept $W" >&2 || rm -rf "$W"
}
trap cleanup EXIT

ID_PORT=$(free_port); VOL_PORT=$(free_port); CI_PORT=$(free_port)
"$TS" init --data "$W/ts" --admin-password benchpw --set identity.port=$ID_PORT --set volume.port=$VOL_PORT \
  --set DEFAULT.enabled_services=identity,volume >/dev/null
LOAD_TS=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(now)
"$TS" serve --data "$W/ts" > "$W/ts.log" 2>&1 &
TS_PID=$!
TS_COLD=$(wait_200 "http://127.0.0.1:$VOL_PORT/" "$start")
export OS_AUTH_URL=http://127.0.0.1:$ID_PORT/v3 OS_IDENTITY_API_VERSION=3 OS_USERNAME=admin OS_PASSWORD=benchpw \
  OS_PROJECT_NAME=admin OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default OS_REGION_NAME=RegionOne
unset OS_CLOUD OS_CLIENT_CONFIG_FILE
read -r TOKEN PROJECT < <(openstack token issue -f value -c id -c project_id | paste -sd' ')

echo "tinystack volume service on :$VOL_PORT (cold start $TS_COLD s)"
# shellcheck disable=SC2086
python3 "$CLIENT" "http://127.0.0.1:$VOL_PORT" "$TOKEN" "$PROJECT" "$TS_PID" "$W" $TS_COUNTS > "$W/ts.json"

# ---- cinder-api (Zed) on MariaDB, authenticating against tinystack's identity --------------
ts_service_user svcpw
mariadb_start "$W"
mariadb --socket="$MARIADB_SOCK" -u root -e "CREATE DATABASE cinder CHARACTER SET utf8"
C=$W/cinder
mkdir -p "$C/lock" "$C/tmp" "$C/log"
cat > "$C/cinder.conf" <<EOF
[DEFAULT]
auth_strategy = keystone
transport_url = fake:/
my_ip = 127.0.0.1
state_path = $C
log_dir = $C/log
storage_availability_zone = nova
[database]
connection = mysql+pymysql://bench:benchpw@localhost/cinder?unix_socket=$MARIADB_SOCK&charset=utf8
[keystone_authtoken]
www_authenticate_uri = http://127.0.0.1:$ID_PORT
auth_url = http://127.0.0.1:$ID_PORT
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = bench-svc
password = svcpw
region_name = RegionOne
[oslo_concurrency]
lock_path = $C/lock
[oslo_messaging_notifications]
driver = noop
EOF
echo "cinder-manage db sync (not timed)"
cinder-manage --config-file "$C/cinder.conf" db sync > "$C/db-sync.log" 2>&1 || { tail -20 "$C/db-sync.log" >&2; exit 1; }
# the versions a Zed cinder-volume reports (cinder-api refuses to start on a row without them)
read -r RPCV OBJV < <(python3 -c 'from cinder.volume import rpcapi; from cinder.objects import base
print(rpcapi.VolumeAPI.RPC_API_VERSION, base.OBJ_VERSIONS.get_current())')
mariadb --socket="$MARIADB_SOCK" -u root cinder -e \
  "INSERT INTO services (created_at, updated_at, deleted, host, \`binary\`, topic, report_count, disabled,
     availability_zone, rpc_current_version, object_current_version)
   VALUES (NOW(), NOW(), 0, 'bench@none', 'cinder-volume', 'cinder-volume', 1, 0, 'nova', '$RPCV', '$OBJV')"
sed -e "s|^logto = .*|logto = $C/log/cinder-api.log|" -e 's/^uid = .*/uid = root/' -e 's/^gid = .*/gid = root/' \
  -e "s|^chdir = .*|chdir = $C|" /etc/cinder/cinder-api-uwsgi.ini > "$C/uwsgi.ini"
LOAD_CI=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(now)
TMPDIR=$C/tmp uwsgi_python3 --http-socket 127.0.0.1:$CI_PORT --ini "$C/uwsgi.ini" --pyargv "--config-file=$C/cinder.conf" \
  > "$C/uwsgi.out" 2>&1 &
CI_PID=$!
CI_COLD=$(wait_200 "http://127.0.0.1:$CI_PORT/" "$start") || {
  echo "cinder-api did not answer" >&2; tail -30 "$C/log/cinder-api.log" >&2; exit 1; }
echo "cinder-api on :$CI_PORT (cold start $CI_COLD s)"
CI_NPROC=$(( $(pgrep -c -P "$CI_PID") + 1 ))
# shellcheck disable=SC2086
python3 "$CLIENT" "http://127.0.0.1:$CI_PORT" "$TOKEN" "$PROJECT" "$CI_PID" "$W" $CINDER_COUNTS > "$W/ci.json" || {
  tail -40 "$C/log/cinder-api.log" >&2; exit 1; }
DB_RSS=$(rss_tree "$MARIADB_PID")
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report (appended) ----------------------------------------------------------------------
python3 - "$W/ts.json" "$W/ci.json" "$OUT" <<PY
import json, sys, time
ts, ci = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
la = lambda v: "%.1f/%.1f/%.1f" % tuple(v)
def row(name, key, unit, fmt):
    a, b = ts[key], ci[key]
    return "| %s | %s %s | %s %s | %.0fx |" % (name, fmt % a, unit, fmt % b, unit, a / b) if a and b else "| %s | | | |" % name
tc, cc = "$TS_COUNTS".split(), "$CINDER_COUNTS".split()
rows = [
    "",
    "## Side by side with cinder-api, %s (bench/volume-cinder.sh)" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    "",
    "One run on this machine (2 CPUs, shared with other helpers' builds and tests), tinystack first,",
    "cinder-api right after it, the same client (bench/volapi_client.py: Python requests, 8 threads;",
    "then wrk -t2 -c4). tinystack: \`tinystack serve\` with identity + volume, SQLite, file backend",
    "(its create also makes the sparse file). cinder-api: Debian 12's 2:21.3.1 (Zed) under uwsgi with",
    "Debian's ini (8 processes x 32 threads), MariaDB 10.11 on a unix socket, no scheduler or volume",
    "service (its volumes stay \"creating\"), RPC on the fake:// transport; keystone auth",
    "(keystonemiddleware) against the tinystack identity service of the same run.",
    "Calls, tinystack / cinder-api: creates %s / %s (then filled to 1,000 volumes), detail lists %s / %s;" % (tc[0], cc[0], tc[1], cc[1]),
    "wrk %s s / %s s per row (the list first, still 1,000 volumes)." % (tc[2], cc[2]),
    "Load average (1/5/15 min): before tinystack $LOAD_TS; tinystack Python rows %s, wrk %s;" % (la(ts["load_py"]), la(ts["load_end"])),
    "before cinder-api $LOAD_CI; cinder-api Python rows %s, wrk %s; end $LOAD_END." % (la(ci["load_py"]), la(ci["load_end"])),
    "",
    "| measure | tinystack | cinder-api | ratio |",
    "|---|---|---|---|",
    row("POST volumes, 1 GiB empty (Python), 202s per second", "create", "/s", "%.1f"),
    row("POST volumes (wrk)", "w_create", "/s", "%.1f"),
    row("GET volumes/detail?limit=1000, 1,000 volumes (Python)", "list", "lists/s", "%.2f"),
    row("GET volumes/detail?limit=1000 (wrk)", "w_list", "lists/s", "%.2f"),
    "| cold start, process start to the version document on GET / | $TS_COLD s | $CI_COLD s | %.0fx |" % ($CI_COLD / max($TS_COLD, 0.001)),
    "| RSS after the Python rows (process tree) | %d MiB | %d MiB ($CI_NPROC processes) | 1/%.0f |" % (ts["rss"], ci["rss"], ci["rss"] / ts["rss"]),
    "| RSS after wrk | %d MiB | %d MiB | 1/%.0f |" % (ts["rss_end"], ci["rss_end"], ci["rss_end"] / ts["rss_end"]),
    "| MariaDB's RSS (not in cinder-api's figure) | | $DB_RSS MiB | |",
    "",
]
txt = "\n".join(rows)
print(txt)
# only this script's section (between its markers) is replaced; the rest of the file stays
import subprocess
subprocess.run(["/usr/bin/python3", "$ROOT/bench/results-section.py", sys.argv[3], "volume-cinder.sh"],
               input=txt, text=True, check=True)
PY
