#!/usr/bin/env bash
# bench/image.sh: tinystack's image service side by side with Debian's glance-api (OpenStack
# Zed): upload and download MB/s of a 1 GiB image, peak RSS of the server during the upload,
# and image-list (100 images, limit=100) requests per second. Writes its section of
# bench/results/image.md (between "<!-- begin image.sh -->" and its end marker, through
# bench/results-section.py): the rest of that file (notes, earlier runs kept under another
# name) stays. SECTION=name writes a section of another name (e.g. to keep a reference run).
#
# Run by hand only (never from `make test`): it apt-installs glance-api and wrk when missing.
# Both image services validate tokens against the same tinystack identity service
# (keystonemiddleware talks Keystone v3 to it), so only the image services differ.
#
# Usage: bench/image.sh   (TS_BUILD=build by default; SIZE_MB=1024; LIST_SECONDS=10; SECTION=image.sh)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${TS_BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
TS=$BUILD/tinystack
SIZE_MB=${SIZE_MB:-1024}
LIST_SECONDS=${LIST_SECONDS:-10}
OUT=$ROOT/bench/results/image.md
SECTION=${SECTION:-image.sh}
[ -x "$TS" ] || { echo "bench/image.sh: build tinystack first ($TS missing)" >&2; exit 2; }

need_pkgs=()
command -v glance-api >/dev/null || need_pkgs+=(glance-api)
command -v wrk >/dev/null || need_pkgs+=(wrk)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "installing ${need_pkgs[*]} (apt)"
  # glance-api's postinst asks debconf questions and starts the service: keep both quiet
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_pkgs[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

W=$(mktemp -d /var/tmp/ts-bench-image.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] && echo "kept $W" >&2 || rm -rf "$W"
}
trap cleanup EXIT

port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ID_PORT=$(port); TS_IMG_PORT=$(port); GL_PORT=$(port)

# ---- tinystack (identity + image) -------------------------------------------------
"$TS" init --data "$W/ts" --admin-password benchpw --set identity.port=$ID_PORT \
  --set image.port=$TS_IMG_PORT --set DEFAULT.enabled_services=identity,image >/dev/null
"$TS" serve --data "$W/ts" > "$W/ts.log" 2>&1 &
TS_PID=$!; PIDS+=($TS_PID)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$ID_PORT/v3" >/dev/null && break; sleep 0.1; done
export OS_AUTH_URL=http://127.0.0.1:$ID_PORT/v3 OS_IDENTITY_API_VERSION=3 OS_USERNAME=admin OS_PASSWORD=benchpw \
  OS_PROJECT_NAME=admin OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default OS_REGION_NAME=RegionOne
unset OS_CLOUD OS_CLIENT_CONFIG_FILE
openstack project show service >/dev/null 2>&1 || openstack project create service >/dev/null
openstack user create --password glancepw glance-bench >/dev/null
openstack role add --user glance-bench --project service admin >/dev/null
TOKEN=$(openstack token issue -f value -c id)

# ---- glance-api (Zed) on the same identity ------------------------------------------
mkdir -p "$W/glance/images" "$W/glance/staging" "$W/glance/lock"
cat > "$W/glance/glance-api.conf" <<EOF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $GL_PORT
workers = 1
log_file = $W/glance/glance-api.log
enabled_import_methods = [glance-direct]
[database]
connection = sqlite:///$W/glance/glance.sqlite
[glance_store]
stores = file
default_store = file
filesystem_store_datadir = $W/glance/images
[os_glance_staging_store]
filesystem_store_datadir = $W/glance/staging
[os_glance_tasks_store]
filesystem_store_datadir = $W/glance/tasks
[oslo_concurrency]
lock_path = $W/glance/lock
[keystone_authtoken]
www_authenticate_uri = http://127.0.0.1:$ID_PORT
auth_url = http://127.0.0.1:$ID_PORT
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = glance-bench
password = glancepw
[paste_deploy]
flavor = keystone
config_file = /etc/glance/glance-api-paste.ini
EOF
glance-manage --config-file "$W/glance/glance-api.conf" db_sync >/dev/null 2>&1
glance-api --config-file "$W/glance/glance-api.conf" > "$W/glance/stdout.log" 2>&1 &
GL_PID=$!; PIDS+=($GL_PID)
for _ in $(seq 300); do curl -s "http://127.0.0.1:$GL_PORT/" >/dev/null && break; sleep 0.1; done
curl -s "http://127.0.0.1:$GL_PORT/" >/dev/null || { echo "glance-api did not start; see $W/glance" >&2; tail -20 "$W/glance/glance-api.log" >&2; exit 1; }

head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom > "$W/image.raw"

# Peak RSS (KiB) of a process and its children while a command runs.
peak_rss_during() {
  local pid=$1; shift
  /usr/bin/python3 - "$pid" "$W/peak" <<'PY' &
import os, sys, time
root, out = int(sys.argv[1]), sys.argv[2]
def tree(p):
    pids = [p]
    try:
        for t in os.listdir(f"/proc/{p}/task"):
            with open(f"/proc/{p}/task/{t}/children") as f:
                for c in f.read().split():
                    pids += tree(int(c))
    except OSError:
        pass
    return pids
peak = 0
while not os.path.exists(out + ".stop"):
    rss = 0
    for p in set(tree(root)):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
        except OSError:
            pass
    peak = max(peak, rss)
    time.sleep(0.05)
open(out, "w").write(str(peak))
PY
  local sampler=$!
  "$@"
  touch "$W/peak.stop"; wait $sampler; rm -f "$W/peak.stop"
  cat "$W/peak"
}

bench_service() {   # name base_url server_pid -> "up_mbs down_mbs peak_mib list_rps"
  local name=$1 url=$2 pid=$3 id t0 t1 up down peak rps
  id=$(curl -sf -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/json' \
       -d '{"name": "bench", "disk_format": "raw", "container_format": "bare"}' "$url/v2/images" |
       /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  t0=$(date +%s.%N)
  peak=$(peak_rss_during "$pid" curl -sf -o /dev/null -X PUT -H "X-Auth-Token: $TOKEN" \
         -H 'Content-Type: application/octet-stream' -T "$W/image.raw" "$url/v2/images/$id/file")
  t1=$(date +%s.%N)
  up=$(echo "$SIZE_MB / ($t1 - $t0)" | bc -l)
  t0=$(date +%s.%N)
  curl -sf -o "$W/out.raw" -H "X-Auth-Token: $TOKEN" "$url/v2/images/$id/file"
  t1=$(date +%s.%N)
  down=$(echo "$SIZE_MB / ($t1 - $t0)" | bc -l)
  cmp -s "$W/image.raw" "$W/out.raw" || { echo "$name: downloaded bytes differ" >&2; exit 1; }
  rm -f "$W/out.raw"
  curl -sf -o /dev/null -X DELETE -H "X-Auth-Token: $TOKEN" "$url/v2/images/$id"
  for i in $(seq 100); do
    curl -sf -o /dev/null -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/json' \
      -d "{\"name\": \"list-$i\", \"disk_format\": \"raw\", \"container_format\": \"bare\", \"tags\": [\"t$i\"], \"p$i\": \"v\"}" \
      "$url/v2/images"
  done
  rps=$(wrk -t2 -c8 -d${LIST_SECONDS}s -H "X-Auth-Token: $TOKEN" "$url/v2/images?limit=100" |
        sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p')
  printf '%.1f %.1f %.1f %.1f\n' "$up" "$down" "$(echo "$peak / 1024" | bc -l)" "${rps:-0}"
}

# the same bytes copied on the same disk: cp alone (page cache), and cp + sync (durable, as
# tinystack's fsync before active)
t0=$(date +%s.%N); cp "$W/image.raw" "$W/cp.raw"; t1=$(date +%s.%N)
CP=$(printf '%.1f' "$(echo "$SIZE_MB / ($t1 - $t0)" | bc -l)")
rm -f "$W/cp.raw"; sync
t0=$(date +%s.%N); cp "$W/image.raw" "$W/cp.raw"; sync "$W/cp.raw"; t1=$(date +%s.%N)
CP_SYNC=$(printf '%.1f' "$(echo "$SIZE_MB / ($t1 - $t0)" | bc -l)")
rm -f "$W/cp.raw"

# The hashing floor: every upload computes md5 (checksum) and sha512 (os_hash_value) over
# every byte. openssl over the same file (in the page cache), one core each, one after the
# other: an upload cannot beat the slower digest alone, and only with a core for each.
t0=$(date +%s.%N); openssl dgst -md5 "$W/image.raw" >/dev/null; t1=$(date +%s.%N)
MD5_S=$(echo "$t1 - $t0" | bc -l)
t0=$(date +%s.%N); openssl dgst -sha512 "$W/image.raw" >/dev/null; t1=$(date +%s.%N)
SHA_S=$(echo "$t1 - $t0" | bc -l)
MD5_MBS=$(printf '%.1f' "$(echo "$SIZE_MB / $MD5_S" | bc -l)")
SHA_MBS=$(printf '%.1f' "$(echo "$SIZE_MB / $SHA_S" | bc -l)")
BOTH_MBS=$(printf '%.1f' "$(echo "$SIZE_MB / ($MD5_S + $SHA_S)" | bc -l)")

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
echo "benchmarking tinystack image (port $TS_IMG_PORT)"
read -r TS_UP TS_DOWN TS_RSS TS_RPS < <(bench_service tinystack "http://127.0.0.1:$TS_IMG_PORT" $TS_PID)
echo "benchmarking glance-api (port $GL_PORT)"
read -r GL_UP GL_DOWN GL_RSS GL_RPS < <(bench_service glance "http://127.0.0.1:$GL_PORT" $GL_PID)
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

mkdir -p "$(dirname "$OUT")"
cat > "$W/section.md" <<EOF
## Image service: tinystack vs glance-api (Debian 12, OpenStack Zed)${TITLE:+: $TITLE}

Measured by \`bench/image.sh\` on $(date -u +%Y-%m-%d) $(date -u +%H:%M) UTC ($(nproc) CPUs, $(uname -r)) with
\`$(basename "$BUILD")\` at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'); both services on
loopback, both validating tokens against the same tinystack identity service, filesystem store on
the same disk. Upload/download: one ${SIZE_MB} MiB random image with curl (one stream). Peak RSS:
the whole server process tree (tinystack runs identity too) sampled every 50 ms during the upload.
List: \`wrk -t2 -c8 -d${LIST_SECONDS}s GET /v2/images?limit=100\` over 100 images with a tag and a property each.
Host load average when the run started: $LOAD_BEFORE, when it ended: $LOAD_AFTER (other work
shares the host: the MB/s figures move with it; run again on an idle host for clean numbers).

| metric | tinystack | glance-api |
|---|---:|---:|
| upload ${SIZE_MB} MiB (MB/s) | $TS_UP | $GL_UP |
| download ${SIZE_MB} MiB (MB/s) | $TS_DOWN | $GL_DOWN |
| peak RSS during upload (MiB) | $TS_RSS | $GL_RSS |
| image list, 100 images (req/s) | $TS_RPS | $GL_RPS |

Floors for the upload, measured in the same run on the same ${SIZE_MB} MiB file:

| reference | MB/s |
|---|---:|
| \`cp\` on the same disk (page cache) | $CP |
| \`cp\` + \`sync\` (durable, as tinystack's fsync before active) | $CP_SYNC |
| \`openssl dgst -md5\`, one core | $MD5_MBS |
| \`openssl dgst -sha512\`, one core | $SHA_MBS |
| md5 then sha512 on one core (both digests every upload computes) | $BOTH_MBS |

glance-api: \`workers = 1\` (one eventlet worker process plus the parent), SQLite database, the
\`keystone\` paste flavor (keystonemiddleware, token cache in-process).
tinystack fsyncs the image file and its directory before it marks an image active (crash
safety); glance_store's filesystem driver does not fsync. Both compute md5 and sha512 while
receiving: an upload cannot be faster than the slower of the two digests on a core of its own.
EOF
# only this script's section (between its markers) is replaced: notes and other sections stay
/usr/bin/python3 "$ROOT/bench/results-section.py" "$OUT" "$SECTION" < "$W/section.md"
cat "$W/section.md"
