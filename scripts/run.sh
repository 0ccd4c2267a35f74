#!/usr/bin/env bash
# `make run`: initialise (once) and run a whole tinystack cloud on this machine, then load it
# with what a user needs to start (scripts/post-setup.sh: the test guest image, a flavor, an
# external network reachable from the namespace ts-public, a router, a tenant network).
# Ctrl-C (or SIGTERM) stops the services; guests and their networking (namespaces, dnsmasq,
# bridges: [network] agent_cleanup_on_stop is false) are kept so that the next `make run` on the
# same data dir picks them up again. `scripts/run.sh down` removes those too.
# Usage: scripts/run.sh [down]      env: DATA (/var/lib/tinystack), BUILD (build)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
DATA=${DATA:-/var/lib/tinystack}
TS=$PWD/$BUILD/tinystack
PIDFILE=$DATA/serve.pid
export OS_CLIENT_CONFIG_FILE=$PWD/clouds.yaml OS_CLOUD=tinystack

serving() {  # pid of a `tinystack serve` running on $DATA, if any
  local pid
  [ -s "$PIDFILE" ] || return 1
  pid=$(cat "$PIDFILE")
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = tinystack ] && echo "$pid"
}

# what a stopped `make run` leaves behind: guests of this data dir, the network agent's
# namespaces/bridges/taps/dnsmasq/chains, ts-public, and libvirtd if no guest at all is left
down() {
  if pid=$(serving); then echo "run.sh: tinystack serve ($pid) still runs on $DATA: stop it first" >&2; exit 1; fi
  local dom n=0
  if virsh -c qemu:///system version >/dev/null 2>&1; then
    for dom in $(virsh -c qemu:///system list --name); do
      case "$dom" in instance-*) ;; *) continue ;; esac
      if virsh -c qemu:///system dumpxml "$dom" 2>/dev/null | grep -F "$DATA/" >/dev/null; then
        virsh -c qemu:///system destroy "$dom" >/dev/null && n=$((n + 1))
      fi
    done
  fi
  echo "run.sh: stopped $n guest(s) of $DATA (still defined: the next make run starts them again)"
  if [ -d "$DATA/network-agent" ]; then
    local empty=$DATA/network-agent/empty-state.json
    echo '{"networks":[],"subnets":[],"ports":[],"routers":[],"floatingips":[],"security_groups":[]}' >"$empty"
    "$TS" netagent-apply --state "$empty" --data "$DATA" --once && echo "run.sh: removed the network agent's objects"
    rm -f "$empty"
  fi
  bash scripts/ext-namespace.sh down
  # libvirtd only if a make run started it and no guest at all runs on it any more
  if [ -e "$DATA/libvirtd.ours" ] && [ -z "$(virsh -c qemu:///system list --name 2>/dev/null | tr -d '[:space:]')" ]; then
    bash scripts/libvirt-up.sh stop
    rm -f "$DATA/libvirtd.ours"
  fi
}

if [ "${1:-}" = down ]; then down; exit 0; fi

if pid=$(serving); then echo "run.sh: tinystack serve ($pid) already runs on $DATA" >&2; exit 1; fi
mkdir -p "$DATA"
chmod 755 "$DATA"   # QEMU (uid libvirt-qemu) must search the instance, image and volume dirs below
# real guests need libvirtd (Debian ships no unit we could rely on: start it by hand)
if virsh -c qemu:///system version >/dev/null 2>&1; then
  :   # someone else's libvirtd: `down` leaves it alone
elif bash scripts/libvirt-up.sh start; then
  touch "$DATA/libvirtd.ours"
else
  echo "run.sh: libvirtd did not start; compute falls back to the fake driver"
fi
"$TS" init --data "$DATA" >/dev/null
cp "$DATA/clouds.yaml" ./clouds.yaml   # the openstack CLI reads ./clouds.yaml
LOG=$DATA/tinystack.log   # the services log every request: keep this terminal readable
echo "run.sh: serving, log in $LOG"
"$TS" serve --data "$DATA" >>"$LOG" 2>&1 &
pid=$!
echo "$pid" >"$PIDFILE"
trap 'kill -TERM $pid 2>/dev/null; wait $pid; rm -f "$PIDFILE"; exit 0' INT TERM
port=$(sed -n '/^\[identity\]/,/^\[/s/^port *= *//p' "$DATA/tinystack.conf" | head -1)
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:${port:-5000}/v3" >/dev/null && break
  kill -0 $pid 2>/dev/null || { echo "tinystack serve exited:"; tail -5 "$LOG"; rm -f "$PIDFILE"; exit 1; }
  sleep 0.1
done
bash scripts/post-setup.sh "$DATA" || echo "run.sh: post-setup failed (the cloud still runs)"
cat <<MSG

tinystack is running (data in $DATA, log in $LOG). In another shell:
  export OS_CLIENT_CONFIG_FILE=$PWD/clouds.yaml OS_CLOUD=tinystack
  openstack server create --image tinyvm --flavor m1.tiny --network private --wait vm1
  openstack console log show vm1
  ip netns exec ts-public ping <a floating ip>       (the outside world: 172.24.4.1)
  . $DATA/openrc; swift list                         (swiftclient reads OS_* only)
Ctrl-C stops it (guests and their networks stay; \`scripts/run.sh down\` removes them).
MSG
wait $pid || true
rm -f "$PIDFILE"
