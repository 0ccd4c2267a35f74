#!/bin/bash
# ceph-local.sh: a private one-node Ceph (Debian 12's 16.2 Pacific) for tests and for the
# object service's RADOS backend, started by hand on loopback (no systemd, no cephadm):
# 1 mon + 1 osd, no mgr, cephx off, pool size 1, a memstore OSD (data in the OSD's RAM, capped
# by CEPH_MEM_BYTES). Every daemon binds 127.0.0.1 only: the mon on CEPH_MON_PORT and the OSD on
# the next free ports in CEPH_MON_PORT+1 .. CEPH_MON_PORT+99.
# Usage: scripts/ceph-local.sh start|stop|conf|status
#   start  (re)creates the cluster under CEPH_DIR (anything there is wiped), creates the pool
#          CEPH_POOL and prints the ceph.conf path on its last line, e.g.
#          TS_TEST_CEPH_CONF=$(scripts/ceph-local.sh start | tail -1)
#   stop   SIGTERMs the daemons and waits for them to exit (ceph-osd takes a few seconds)
#   conf   prints the ceph.conf path
# Env: CEPH_DIR (default /var/tmp/ts-ceph), CEPH_MON_PORT (16790), CEPH_POOL
# (tinystack-objects), CEPH_MEM_BYTES (memstore size, 1 GiB).
set -u
D=${CEPH_DIR:-/var/tmp/ts-ceph}
PORT=${CEPH_MON_PORT:-16790}
POOL=${CEPH_POOL:-tinystack-objects}
MEM=${CEPH_MEM_BYTES:-1073741824}
CONF=$D/ceph.conf
C=(-c "$CONF")
el() { echo "$(date +%s.%N) - $t0" | bc; }

pids_of() { local p; for p in "$D"/run/*.pid; do [ -s "$p" ] && cat "$p"; done; }

# waits up to $2 tenths of a second for the pids in $1 to exit
wait_pids() {
  local i p alive
  for i in $(seq 1 "$2"); do
    alive=0
    for p in $1; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && return 0
    sleep 0.1
  done
  return 1
}

# The osd first: it tells the mon it is going down and waits up to 5 s for an answer, so
# stopping both at once costs those 5 s. A daemon still there after 30 s is killed.
stop_daemons() {
  local who pids
  for who in osd mon; do
    pids=$(cat "$D"/run/ceph-$who.*.pid 2>/dev/null | tr '\n' ' ')
    [ -n "${pids// /}" ] || continue
    # shellcheck disable=SC2086
    kill $pids 2>/dev/null
    wait_pids "$pids" 300 && continue
    # shellcheck disable=SC2086
    kill -9 $pids 2>/dev/null
    wait_pids "$pids" 50 || return 1
  done
  return 0
}

case "${1:-}" in
start)
  command -v ceph-mon >/dev/null || { echo "ceph-local: ceph-mon not installed (scripts/deps.sh)" >&2; exit 1; }
  t0=$(date +%s.%N)
  stop_daemons
  rm -rf "$D"
  mkdir -p "$D/run" "$D/log" "$D/mon-a" "$D/osd-0"
  FSID=$(cat /proc/sys/kernel/random/uuid)
  cat > "$CONF" <<EOF
[global]
fsid = $FSID
mon host = v2:127.0.0.1:$PORT
mon initial members = a
public network = 127.0.0.0/8
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
ms bind msgr1 = false
ms bind port min = $((PORT + 1))
ms bind port max = $((PORT + 99))
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
run dir = $D/run
admin socket = $D/run/\$cluster-\$name.asok
pid file = $D/run/\$cluster-\$name.pid
log file = $D/log/\$cluster-\$name.log
mon data = $D/mon-\$id
osd data = $D/osd-\$id
osd objectstore = memstore
memstore device bytes = $MEM
osd memory target = 939524096
osd op num shards = 1
osd op num threads per shard = 2
EOF
  monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$PORT]" "$D/monmap" >/dev/null || exit 1
  ceph-mon "${C[@]}" --mkfs -i a --monmap "$D/monmap" > "$D/log/mon-mkfs.out" 2>&1 ||
    { tail "$D/log/mon-mkfs.out" >&2; exit 1; }
  ceph-mon "${C[@]}" -i a || { echo "ceph-local: ceph-mon failed, see $D/log" >&2; exit 1; }
  # `rados` (C++) answers in ~0.1 s where the python `ceph` CLI takes ~1 s: poll and wait with it
  for i in $(seq 1 150); do rados "${C[@]}" --client-mount-timeout 2 lspools >/dev/null 2>&1 && break; sleep 0.1; done
  rados "${C[@]}" --client-mount-timeout 2 lspools >/dev/null 2>&1 || { echo "ceph-local: mon not up" >&2; stop_daemons; exit 1; }
  echo "ceph-local: mon up on 127.0.0.1:$PORT after $(el) s" >&2
  OSD=$(ceph "${C[@]}" osd create) || { stop_daemons; exit 1; }
  ceph-osd "${C[@]}" -i "$OSD" --mkfs > "$D/log/osd-mkfs.out" 2>&1 ||
    { tail "$D/log/osd-mkfs.out" >&2; stop_daemons; exit 1; }
  # the osd puts itself in the crush map on start (osd crush update on start)
  ceph-osd "${C[@]}" -i "$OSD" 2>> "$D/log/osd-start.out" || { echo "ceph-local: ceph-osd failed, see $D/log" >&2; stop_daemons; exit 1; }
  echo "ceph-local: osd.$OSD (memstore) started after $(el) s" >&2
  ceph "${C[@]}" osd pool create "$POOL" 8 >/dev/null 2>&1 ||
    { echo "ceph-local: pool $POOL not created" >&2; stop_daemons; exit 1; }
  # a write blocks until the osd is up and the pool's PGs have peered: the readiness check
  echo ok > "$D/probe"
  timeout 120 rados "${C[@]}" -p "$POOL" put ts-ceph-local-probe "$D/probe" >/dev/null 2>&1 &&
    rados "${C[@]}" -p "$POOL" rm ts-ceph-local-probe >/dev/null 2>&1 ||
    { echo "ceph-local: pool $POOL not writable" >&2; stop_daemons; exit 1; }
  echo "ceph-local: pool $POOL writable after $(el) s" >&2
  echo "$CONF"
  ;;
stop) stop_daemons ;;
conf) echo "$CONF" ;;
status)
  for p in $(pids_of 2>/dev/null); do kill -0 "$p" 2>/dev/null || { echo "down"; exit 1; }; done
  [ -n "$(pids_of 2>/dev/null)" ] || { echo "down"; exit 1; }
  echo "up"
  ;;
*) echo "usage: $0 start|stop|conf|status" >&2; exit 2 ;;
esac
