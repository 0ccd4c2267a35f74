#!/usr/bin/env bash
# bench/volume-cinder.sh: tinystack's block storage API side by side with Debian 12's cinder-api
# (OpenStack Zed, 2:21.3.1), in one run on this machine, loopback only. Run by hand (it
# apt-installs cinder-api, mariadb-server and wrk when missing; nothing else runs it):
#
#   bench/volume-cinder.sh [BUILD_DIR] [--no-cinder]      (default $TS_BUILD or build)
#
# --no-cinder: tinystack alone (nothing installed but wrk, the results file left alone), e.g.
# TS_COUNTS="40 10 1" for a quick check of the set-up and the client.
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
# make the sparse file, in the same process). The client (bench/api_client.py volume) is the
# same for both. The steps shared with bench/network-neutron.sh are in bench/lib-openstack.sh.
# Writes its section of bench/results/volume.md (replaced on a re-run; the rest of the file
# stays).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib-openstack.sh"
sbs_args cinder "$@"
OUT=${OUT:-$ROOT/bench/results/volume.md}
# measured creates, detail lists, wrk seconds per row
TS_COUNTS=${TS_COUNTS:-"400 200 3"}
REF_COUNTS=${CINDER_COUNTS:-"100 16 15"}

sbs_install cinder-api

W=$(mktemp -d /var/tmp/ts-bench-cinder.XXXXXX)
TS_PID='' REF_PID=''
trap sbs_cleanup EXIT

VOL_PORT=$(free_port); CI_PORT=$(free_port)
ts_side volume "$VOL_PORT"

# ---- cinder-api (Zed) on MariaDB, authenticating against tinystack's identity --------------
ts_service_user svcpw
mariadb_start "$W"
mariadb_db cinder
C=$W/cinder
mkdir -p "$C/lock" "$C/tmp" "$C/log"
{
  cat <<EOF
[DEFAULT]
auth_strategy = keystone
transport_url = fake:/
my_ip = 127.0.0.1
state_path = $C
log_dir = $C/log
storage_availability_zone = nova
[database]
connection = $DB_URL
EOF
  os_conf_auth "$C"
} > "$C/cinder.conf"
echo "cinder-manage db sync (not timed)"
cinder-manage --config-file "$C/cinder.conf" db sync > "$C/db-sync.log" 2>&1 || { tail -20 "$C/db-sync.log" >&2; exit 1; }
# the versions a Zed cinder-volume reports (cinder-api refuses to start on a row without them)
read -r RPCV OBJV < <(python3 -c 'from cinder.volume import rpcapi; from cinder.objects import base
print(rpcapi.VolumeAPI.RPC_API_VERSION, base.OBJ_VERSIONS.get_current())')
mariadb --socket="$MARIADB_SOCK" -u root cinder -e \
  "INSERT INTO services (created_at, updated_at, deleted, host, \`binary\`, topic, report_count, disabled,
     availability_zone, rpc_current_version, object_current_version)
   VALUES (NOW(), NOW(), 0, 'bench@none', 'cinder-volume', 'cinder-volume', 1, 0, 'nova', '$RPCV', '$OBJV')"
uwsgi_start cinder-api /etc/cinder/cinder-api-uwsgi.ini "$C" "$CI_PORT" "--config-file=$C/cinder.conf"
ref_side volume "$CI_PORT" "$C/log/cinder-api.log"

# ---- report (this script's section of OUT) ---------------------------------------------------
sbs_report volume
