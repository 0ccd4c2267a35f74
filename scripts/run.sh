#!/usr/bin/env bash
# `make run`: initialise (once) and run a whole tinystack cloud on this machine, then load
# it with what a user needs to start: the test guest image and a flavor (when the compute
# service is built in). Stops cleanly on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
DATA=${DATA:-/var/lib/tinystack}
TS=$PWD/$BUILD/tinystack
mkdir -p "$DATA"
# real guests need libvirtd (Debian ships no unit we could rely on: start it by hand)
bash scripts/libvirt-up.sh start || echo "run.sh: libvirtd did not start; compute falls back to the fake driver"
"$TS" init --data "$DATA" >/dev/null
cp "$DATA/clouds.yaml" ./clouds.yaml   # the openstack CLI reads ./clouds.yaml
"$TS" serve --data "$DATA" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid' INT TERM
export OS_CLIENT_CONFIG_FILE=$PWD/clouds.yaml OS_CLOUD=tinystack
port=$(sed -n '/^\[identity\]/,/^\[/s/^port *= *//p' "$DATA/tinystack.conf" | head -1)
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:${port:-5000}/v3" >/dev/null && break
  kill -0 $pid 2>/dev/null || { echo "tinystack serve exited"; exit 1; }
  sleep 0.1
done
bash scripts/post-setup.sh "$DATA" || echo "run.sh: post-setup failed (the cloud still runs)"
cat <<MSG

tinystack is running (data in $DATA). In another shell:
  export OS_CLIENT_CONFIG_FILE=$PWD/clouds.yaml OS_CLOUD=tinystack
  openstack token issue
  openstack catalog list
Ctrl-C stops it.
MSG
wait $pid
