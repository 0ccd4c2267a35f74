#!/usr/bin/env bash
# The "outside world" of a Tempest scenario run, without touching the root namespace: a network
# namespace NS whose eth0 (172.24.4.1/24 by default, the external subnet's gateway) sits on the
# external network's bridge brq<net> that the cloud's agent made, so floating IPs are reachable
# from it; and, since the root namespace gets no address, the cloud's APIs are brought into NS
# on the same 127.0.0.1:PORT addresses through unix sockets (socat in the root namespace connects
# to the real port, socat in NS listens on its own loopback). Tempest then runs inside NS
# (`ip netns exec NS tempest run ...`, TEMPEST_NETNS in run-tempest.sh) and talks to the APIs
# and to the guests exactly as from a real external host.
#
# Usage: netns-public.sh up NS NET_ID GATEWAY_CIDR DIR PORT...   (DIR: sockets and pid files)
#        netns-public.sh down NS DIR
set -euo pipefail
cmd=${1:?usage: netns-public.sh up|down NS ...}
NS=${2:?namespace name}
case $cmd in
up)
  NET=${3:?external network id} GW=${4:?gateway cidr} DIR=${5:?state dir}
  shift 5
  mkdir -p "$DIR"
  BR=brq${NET:0:11}
  VETH=tsp${NS: -8}
  for _ in $(seq 100); do ip link show dev "$BR" >/dev/null 2>&1 && break; sleep 0.1; done
  ip link show dev "$BR" >/dev/null 2>&1 || { echo "netns-public: no bridge $BR (is the agent running?)" >&2; exit 1; }
  ip netns add "$NS"
  echo "$VETH" > "$DIR/veth"
  ip -n "$NS" link set lo up
  ip link add "$VETH" type veth peer name eth0 netns "$NS"
  ip link set dev "$VETH" addrgenmode none 2>/dev/null || true
  ip link set "$VETH" master "$BR" up
  ip -n "$NS" addr add "$GW" dev eth0
  ip -n "$NS" link set eth0 up
  for p in "$@"; do
    setsid socat "UNIX-LISTEN:$DIR/api-$p.sock,fork,unlink-early,mode=600" "TCP:127.0.0.1:$p" </dev/null >/dev/null 2>&1 &
    echo $! >> "$DIR/pids"
    setsid ip netns exec "$NS" socat "TCP-LISTEN:$p,bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$DIR/api-$p.sock" </dev/null >/dev/null 2>&1 &
    echo $! >> "$DIR/pids"
  done
  for p in "$@"; do
    for _ in $(seq 50); do [ -S "$DIR/api-$p.sock" ] && break; sleep 0.1; done
  done
  ;;
down)
  DIR=${3:?state dir}
  if [ -f "$DIR/pids" ]; then
    while read -r pid; do kill "$pid" 2>/dev/null || true; done < "$DIR/pids"
    rm -f "$DIR/pids"
  fi
  if [ -f "$DIR/veth" ]; then ip link del "$(cat "$DIR/veth")" 2>/dev/null || true; rm -f "$DIR/veth"; fi
  ip netns pids "$NS" 2>/dev/null | while read -r pid; do kill "$pid" 2>/dev/null || true; done
  ip netns del "$NS" 2>/dev/null || true
  rm -f "$DIR"/api-*.sock
  ;;
*) echo "usage: netns-public.sh up|down NS ..." >&2; exit 2 ;;
esac
