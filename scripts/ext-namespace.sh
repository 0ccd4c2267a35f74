#!/usr/bin/env bash
# The "outside world" of `make run`: a network namespace `ts-public` holding the external
# network's gateway address (172.24.4.1/24 by default) on a veth whose other end is a port of
# the external network's bridge (brq<net[:11]>, made by the network agent). Floating IPs are
# reachable from it: `ip netns exec ts-public ping <floating ip>`. Nothing gets an address in
# the root namespace (the root end of the veth has IPv6 address generation off), and no real
# host interface is touched.
# Usage: scripts/ext-namespace.sh up|down|status
#   up needs OS_CLIENT_CONFIG_FILE/OS_CLOUD (or OS_*) for the cloud; idempotent.
#   env: TS_EXT_NET (public), TS_EXT_CIDR (172.24.4.1/24), TS_EXT_WAIT (60 s for the bridge)
set -euo pipefail
NS=ts-public
ROOT_END=tspub-br   # in the root namespace, a port of the bridge, no address
NS_END=tspub-ns     # in $NS, holds the gateway address
NET=${TS_EXT_NET:-public}
CIDR=${TS_EXT_CIDR:-172.24.4.1/24}
WAIT=${TS_EXT_WAIT:-60}

up() {
  [ "$(id -u)" -eq 0 ] || { echo "ext-namespace: must run as root" >&2; exit 1; }
  local id br end
  id=$(/usr/bin/openstack network show "$NET" -f value -c id)
  [[ $id =~ ^[0-9a-f-]{11,}$ ]] || { echo "ext-namespace: bad network id '$id'" >&2; exit 1; }
  br=brq${id:0:11}
  end=$(( $(date +%s) + WAIT ))
  until ip link show "$br" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$end" ]; then
      echo "ext-namespace: bridge $br of network $NET did not appear in ${WAIT} s (is the network agent running as root?)" >&2
      exit 1
    fi
    sleep 0.5
  done
  [ -e "/run/netns/$NS" ] || ip netns add "$NS"
  ip -n "$NS" link set lo up
  if ! ip link show "$ROOT_END" >/dev/null 2>&1; then
    ip -n "$NS" link del "$NS_END" 2>/dev/null || true
    ip link add "$ROOT_END" type veth peer name "$NS_END" netns "$NS"
  fi
  ip link set "$ROOT_END" addrgenmode none 2>/dev/null || true
  ip link set "$ROOT_END" master "$br"
  ip link set "$ROOT_END" up
  local addrs
  addrs=$(ip -n "$NS" -o addr show dev "$NS_END")
  [[ $addrs == *"inet $CIDR "* ]] || ip -n "$NS" addr add "$CIDR" dev "$NS_END"
  ip -n "$NS" link set "$NS_END" up
  echo "ext-namespace: $NS has $CIDR on $NS_END, plugged into $br (network $NET)"
}

down() {
  # deleting the namespace deletes the veth pair with it
  if [ -e "/run/netns/$NS" ]; then ip netns del "$NS"; echo "ext-namespace: removed $NS"; fi
  if ip link show "$ROOT_END" >/dev/null 2>&1; then ip link del "$ROOT_END"; fi
}

status() {
  [ -e "/run/netns/$NS" ] || { echo "ext-namespace: no $NS"; exit 1; }
  ip -n "$NS" -br addr show
  ip -br link show "$ROOT_END"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
