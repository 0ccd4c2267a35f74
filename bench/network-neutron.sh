#!/usr/bin/env bash
# bench/network-neutron.sh: tinystack's network service side by side with Debian 12's
# neutron-server (OpenStack Zed, 2:21.0.0), in one run on this machine, loopback only.
# Run by hand (it apt-installs neutron-api, mariadb-server and wrk when missing; nothing else
# runs it):
#
#   bench/network-neutron.sh [BUILD_DIR] [--no-neutron]     (default $TS_BUILD or build)
#
# --no-neutron: tinystack alone (nothing installed but wrk, the results file left alone), e.g.
# TS_COUNTS="40 40 40 10 1" for a quick check of the set-up and the client.
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
# The client (bench/api_client.py network) is the same for both; Neutron gets fewer calls per
# row (it runs at a few calls per second). The steps shared with bench/volume-cinder.sh are in
# bench/lib-openstack.sh. Writes its section of bench/results/network.md
# (replaced on a re-run; the rest of the file stays).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib-openstack.sh"
sbs_args neutron "$@"
OUT=${OUT:-$ROOT/bench/results/network.md}
# calls per row: networks (= subnets), ports, rules, lists, wrk seconds
TS_COUNTS=${TS_COUNTS:-"400 400 400 200 3"}
REF_COUNTS=${NEUTRON_COUNTS:-"48 48 48 8 15"}

sbs_install neutron-api

W=$(mktemp -d /var/tmp/ts-bench-neutron.XXXXXX)
TS_PID='' REF_PID=''
trap sbs_cleanup EXIT

NET_PORT=$(free_port); NEU_PORT=$(free_port)
ts_side network "$NET_PORT" --set network.run_agent=false

# ---- neutron-server (Zed) on MariaDB, authenticating against tinystack's identity ----------
ts_service_user svcpw
mariadb_start "$W"
mariadb_db neutron
N=$W/neutron
mkdir -p "$N/lock" "$N/tmp" "$N/log"
{
  cat <<EOF
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
connection = $DB_URL
EOF
  os_conf_auth "$N"
  cat <<EOF
[oslo_policy]
policy_file = /etc/neutron/policy.json
policy_dirs = /etc/neutron/policy.d
EOF
} > "$N/neutron.conf"
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
uwsgi_start neutron-api /etc/neutron/neutron-api-uwsgi.ini "$N" "$NEU_PORT" "$PYARGV" -e 's/^threads = .*/threads = 1/'
ref_side network "$NEU_PORT" "$N/log/neutron-api.log"

# ---- report (this script's section of OUT) ---------------------------------------------------
sbs_report network
