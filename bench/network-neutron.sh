#!/usr/bin/env bash
# bench/network-neutron.sh: tinystack's network service side by side with Debian 12's
# neutron-server (OpenStack Zed, 2:21.0.0), in one run on this machine, loopback only.
# Run by hand (it apt-installs neutron-api, mariadb-server and wrk when missing; nothing else
# runs it):
#
#   bench/network-neutron.sh [BUILD_DIR]      (default $TS_BUILD or build)
#
# tinystack: `tinystack serve` with identity + network, no data-plane agent (bench/network.sh's
# set-up). Neutron: the neutron-api package's uwsgi set-up as its init script starts it
# (/etc/neutron/neutron-api-uwsgi.ini: 8 processes, lazy-apps, "Connection: close"; the socket,
# the log file, the user differ, and 1 thread per process instead of 32, see below), Debian's ML2 config
# (/etc/neutron/plugins/ml2/ml2_conf.ini: openvswitch + l2population, vxlan 1:1000,
# port_security + qos) and Debian's service_plugins (router, metering, qos); MariaDB (its
# migrations fail on SQLite) on a unix socket only; no agents, no Nova notifications, RPC on
# oslo.messaging's in-memory fake:// transport (no RabbitMQ: casts to absent agents go nowhere).
# Neutron authenticates with keystonemiddleware against tinystack's identity service of the
# same run (a service user in project "service"), so both sides see the same admin token.
# The client (bench/netapi_client.py) is the same for both; Neutron gets fewer calls per row
# (it runs at a few calls per second). Writes its section of bench/results/network.md
# (replaced on a re-run; the rest of the file stays).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib-openstack.sh"
BUILD=${1:-${TS_BUILD:-build}}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
TS=$BUILD/tinystack
[ -x "$TS" ] || { echo "no $TS: build first" >&2; exit 2; }
OUT=${OUT:-$ROOT/bench/results/network.md}
CLIENT=$ROOT/bench/netapi_client.py
# calls per row: networks (= subnets), ports, rules, lists, wrk seconds
TS_COUNTS=${TS_COUNTS:-"400 400 400 200 3"}
NEUTRON_COUNTS=${NEUTRON_COUNTS:-"48 48 48 8 15"}

os_install neutron-api mariadb-server wrk

W=$(mktemp -d /var/tmp/ts-bench-neutron.XXXXXX)
TS_PID= NEU_PID=
cleanup() {
  [ -n "$NEU_PID" ] && { kill -TERM "$NEU_PID" 2>/dev/null || true; }
  [ -n "$TS_PID" ] && { kill -TERM "$TS_PID" 2>/dev/null || true; }
  sleep 2
  [ -n "$NEU_PID" ] && { pkill -KILL -P "$NEU_PID" 2>/dev/null || true; kill -KILL "$NEU_PID" 2>/dev/null || true; wait "$NEU_PID" 2>/dev/null || true; }
  [ -n "$TS_PID" ] && { kill -KILL "$TS_PID" 2>/dev/null || true; wait "$TS_PID" 2>/dev/null || true; }
  mariadb_stop
  [ -n "${KEEP:-}" ] && echo "kept $W" >&2 || rm -rf "$W"
}
trap cleanup EXIT

ID_PORT=$(free_port); NET_PORT=$(free_port); NEU_PORT=$(free_port)
"$TS" init --data "$W/ts" --admin-password benchpw --set identity.port=$ID_PORT --set network.port=$NET_PORT \
  --set DEFAULT.enabled_services=identity,network --set network.run_agent=false >/dev/null
LOAD_TS=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(now)
"$TS" serve --data "$W/ts" > "$W/ts.log" 2>&1 &
TS_PID=$!
TS_COLD=$(wait_200 "http://127.0.0.1:$NET_PORT/" "$start")
export OS_AUTH_URL=http://127.0.0.1:$ID_PORT/v3 OS_IDENTITY_API_VERSION=3 OS_USERNAME=admin OS_PASSWORD=benchpw \
  OS_PROJECT_NAME=admin OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default OS_REGION_NAME=RegionOne
unset OS_CLOUD OS_CLIENT_CONFIG_FILE
read -r TOKEN PROJECT < <(openstack token issue -f value -c id -c project_id | paste -sd' ')

echo "tinystack network service on :$NET_PORT (cold start $TS_COLD s)"
# shellcheck disable=SC2086
python3 "$CLIENT" "http://127.0.0.1:$NET_PORT" "$TOKEN" "$PROJECT" "$TS_PID" "$W" $TS_COUNTS > "$W/ts.json"

# ---- neutron-server (Zed) on MariaDB, authenticating against tinystack's identity ----------
ts_service_user svcpw
mariadb_start "$W"
mariadb --socket="$MARIADB_SOCK" -u root -e "CREATE DATABASE neutron CHARACTER SET utf8"
N=$W/neutron
mkdir -p "$N/lock" "$N/tmp" "$N/log"
cat > "$N/neutron.conf" <<EOF
[DEFAULT]
core_plugin = ml2
service_plugins = router,metering,qos
auth_strategy = keystone
notify_nova_on_port_status_changes = False
notify_nova_on_port_data_changes = False
interface_driver = openvswitch
transport_url = fake:/
state_path = $N
log_dir = $N/log
[database]
connection = mysql+pymysql://bench:benchpw@localhost/neutron?unix_socket=$MARIADB_SOCK&charset=utf8
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
lock_path = $N/lock
[oslo_messaging_notifications]
driver = noop
[oslo_policy]
policy_file = /etc/neutron/policy.json
policy_dirs = /etc/neutron/policy.d
EOF
PYARGV="--config-file=$N/neutron.conf --config-file=/etc/neutron/plugins/ml2/ml2_conf.ini"
echo "neutron-db-manage upgrade heads (not timed)"
neutron-db-manage --config-file "$N/neutron.conf" --config-file /etc/neutron/plugins/ml2/ml2_conf.ini \
  upgrade heads > "$N/db-manage.log" 2>&1 || { tail -20 "$N/db-manage.log" >&2; exit 1; }
# Debian's uwsgi ini with our socket, log file and user (the init script adds --http-socket
# and --pyargv the same way) and one thread per process instead of 32: with Debian's 32 the
# first concurrent authenticated requests of a worker hang for good (neutron monkey-patches
# eventlet; keystonemiddleware's lock is an eventlet semaphore shared by uwsgi's native
# threads: "greenlet.error: cannot switch to a different thread"): one of two runs here hung
# on its first 8 concurrent calls, the other logged 10 such errors. devstack runs 1 thread too.
sed -e "s|^logto = .*|logto = $N/log/neutron-api.log|" -e 's/^uid = .*/uid = root/' -e 's/^gid = .*/gid = root/' \
  -e 's/^threads = .*/threads = 1/' \
  -e "s|^chdir = .*|chdir = $N|" /etc/neutron/neutron-api-uwsgi.ini > "$N/uwsgi.ini"
LOAD_NEU=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(now)
TMPDIR=$N/tmp uwsgi_python3 --http-socket 127.0.0.1:$NEU_PORT --ini "$N/uwsgi.ini" --pyargv "$PYARGV" \
  > "$N/uwsgi.out" 2>&1 &
NEU_PID=$!
NEU_COLD=$(wait_200 "http://127.0.0.1:$NEU_PORT/" "$start") || {
  echo "neutron-api did not answer" >&2; tail -30 "$N/log/neutron-api.log" >&2; exit 1; }
echo "neutron-api on :$NEU_PORT (cold start $NEU_COLD s)"
NEU_NPROC=$(( $(pgrep -c -P "$NEU_PID") + 1 ))
# shellcheck disable=SC2086
python3 "$CLIENT" "http://127.0.0.1:$NEU_PORT" "$TOKEN" "$PROJECT" "$NEU_PID" "$W" $NEUTRON_COUNTS > "$W/neu.json" || {
  tail -40 "$N/log/neutron-api.log" >&2; exit 1; }
DB_RSS=$(rss_tree "$MARIADB_PID")
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report (appended) ----------------------------------------------------------------------
python3 - "$W/ts.json" "$W/neu.json" "$OUT" <<PY
import json, sys, time
ts, ne = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
la = lambda v: "%.1f/%.1f/%.1f" % tuple(v)
def row(name, key, unit, fmt):
    a, b = ts[key], ne[key]
    return "| %s | %s %s | %s %s | %.0fx |" % (name, fmt % a, unit, fmt % b, unit, a / b) if a and b else "| %s | | | |" % name
tc, nc = "$TS_COUNTS".split(), "$NEUTRON_COUNTS".split()
rows = [
    "",
    "## Side by side with neutron-server, %s (bench/network-neutron.sh)" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    "",
    "One run on this machine (2 CPUs, shared with other helpers' builds and tests), tinystack first,",
    "neutron-server right after it, the same client (bench/netapi_client.py: Python requests, 8",
    "threads; then wrk -t2 -c8). tinystack: \`tinystack serve\` with identity + network, SQLite, no agent.",
    "Neutron: Debian 12's neutron-api 2:21.0.0 (Zed) under uwsgi with Debian's ini (8 processes; 1",
    "thread each instead of Debian's 32, which hang on the first concurrent requests), Debian's ML2",
    "config and service plugins, MariaDB 10.11 on a unix socket, RPC on the fake:// transport (no",
    "agents, no RabbitMQ), Nova notifications off; keystone auth",
    "(keystonemiddleware) against the tinystack identity service of the same run.",
    "Calls per row, tinystack / Neutron: networks and subnets %s / %s, ports %s / %s (then filled" % (tc[0], nc[0], tc[1], nc[1]),
    "to 1,000, not timed), rules %s / %s, lists %s / %s; wrk %s s / %s s per row." % (tc[2], nc[2], tc[3], nc[3], tc[4], nc[4]),
    "Load average (1/5/15 min): before tinystack $LOAD_TS; tinystack Python rows %s, wrk %s;" % (la(ts["load_py"]), la(ts["load_end"])),
    "before neutron $LOAD_NEU; neutron Python rows %s, wrk %s; end $LOAD_END." % (la(ne["load_py"]), la(ne["load_end"])),
    "",
    "| measure | tinystack | neutron-server | ratio |",
    "|---|---|---|---|",
    row("network create (Python)", "net", "/s", "%.1f"),
    row("network create (wrk)", "w_net", "/s", "%.1f"),
    row("subnet create, /24 (Python)", "sub", "/s", "%.1f"),
    row("port create, one /16 (Python)", "port", "/s", "%.1f"),
    row("port create (wrk)", "w_port", "/s", "%.1f"),
    row("security group rule create (Python)", "sgr", "/s", "%.1f"),
    row("security group rule create (wrk)", "w_sgr", "/s", "%.1f"),
    row("GET ports?network_id= of 1,000 ports (Python)", "list", "lists/s", "%.2f"),
    row("GET ports?network_id= of 1,000 ports (wrk)", "w_list", "lists/s", "%.2f"),
    "| cold start, process start to first 200 on GET / | $TS_COLD s | $NEU_COLD s | %.0fx |" % ($NEU_COLD / max($TS_COLD, 0.001)),
    "| RSS after the Python rows (process tree) | %d MiB | %d MiB ($NEU_NPROC processes) | 1/%.0f |" % (ts["rss"], ne["rss"], ne["rss"] / ts["rss"]),
    "| RSS after wrk | %d MiB | %d MiB | 1/%.0f |" % (ts["rss_end"], ne["rss_end"], ne["rss_end"] / ts["rss_end"]),
    "| MariaDB's RSS (not in Neutron's figure) | | $DB_RSS MiB | |",
    "",
]
txt = "\n".join(rows)
print(txt)
# only this script's section (between its markers) is replaced; the rest of the file stays
import subprocess
subprocess.run(["/usr/bin/python3", "$ROOT/bench/results-section.py", sys.argv[3], "network-neutron.sh"],
               input=txt, text=True, check=True)
PY
