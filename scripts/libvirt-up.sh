#!/usr/bin/env bash
# Starts or stops the host's libvirt daemons by hand (there is no systemd here): virtlogd (the qemu
# driver sends guest consoles through it) and the monolithic libvirtd of Debian 12, as root, with
# pid files under /run. "start" returns once `virsh -c qemu:///system version` answers (about 8 s
# the first time, while libvirtd probes QEMU's capabilities; 0.1 s later). Idempotent: start does
# nothing if qemu:///system already answers, stop only kills daemons this script started.
# Usage: scripts/libvirt-up.sh start|stop|status
set -euo pipefail
RUN=${TS_LIBVIRT_RUNDIR:-/run}
VL_PID=$RUN/tinystack-virtlogd.pid
LV_PID=$RUN/tinystack-libvirtd.pid
URI=qemu:///system
TIMEOUT=${TS_LIBVIRT_TIMEOUT:-60}

# pid from FILE if that process is alive and runs PROGRAM
alive() {
  local pid
  [ -s "$1" ] || return 1
  pid=$(cat "$1")
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$2" ] && echo "$pid"
}
answers() { virsh -c "$URI" version >/dev/null 2>&1; }

start() {
  [ "$(id -u)" -eq 0 ] || { echo "libvirt-up: must run as root" >&2; exit 1; }
  if answers; then echo "libvirt-up: $URI already answers"; return 0; fi
  mkdir -p "$RUN"
  if ! alive "$VL_PID" virtlogd >/dev/null; then
    rm -f "$VL_PID"
    /usr/sbin/virtlogd -d -p "$VL_PID"
  fi
  if ! alive "$LV_PID" libvirtd >/dev/null; then
    rm -f "$LV_PID"
    /usr/sbin/libvirtd -d -p "$LV_PID"
  fi
  local end=$(( $(date +%s) + TIMEOUT ))
  until answers; do
    if [ "$(date +%s)" -ge "$end" ] || ! alive "$LV_PID" libvirtd >/dev/null; then
      echo "libvirt-up: libvirtd did not answer on $URI within ${TIMEOUT} s" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "libvirt-up: $URI answers (libvirtd $(cat "$LV_PID"), virtlogd $(cat "$VL_PID"))"
}

stop_one() {  # PIDFILE PROGRAM
  local pid i
  pid=$(alive "$1" "$2") || { rm -f "$1"; return 0; }
  kill "$pid"
  for i in $(seq 100); do
    [ -d "/proc/$pid" ] || break
    sleep 0.1
  done
  if [ -d "/proc/$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$1"
  echo "libvirt-up: stopped $2 ($pid)"
}

case "${1:-}" in
  start) start ;;
  stop) stop_one "$LV_PID" libvirtd; stop_one "$VL_PID" virtlogd ;;
  status)
    if answers; then echo "libvirt-up: $URI answers"; else echo "libvirt-up: $URI does not answer"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
