#!/usr/bin/env bash
# Runs every curated Tempest list (tests/tempest/*.list) against a private tinystack:
# `tinystack init` in a temporary data dir with free loopback ports for every service,
# `tinystack serve` (all built services are enabled by init), then run-tempest.sh once per
# list, all lists at the same time (TS_TEMPEST_SEQUENTIAL=1: one after another), a count line
# (and wall seconds) per list, and everything stopped and removed at exit.
#
# Usage: tests/tempest/run-lists.sh [BUILD_DIR] [LIST...]
#   BUILD_DIR defaults to $TS_BUILD, else "build" (relative to the repository root).
#   LIST defaults to every tests/tempest/*.list but *-scenario.list. A list named after a service (identity,
#   image, compute, network, volume, object; e.g. network.list, image-import.list) is not run
#   when that service is not built in (reported, not a failure).
# A list may come with tests/tempest/<name>.env: shell lines (TEMPEST_*=...) sourced before
# its run, e.g. TEMPEST_IMAGE_REF. Variables TS_URL_<SVC> (identity, image, ...) and
# TS_DATA are set for them.
# The one cloud all lists share is initialised with `--set section.key=value` options from
# tests/tempest/<name>.sets of every list run (one per line, # comments allowed; e.g.
# compute.sets: compute.virt_driver=fake) and from $TS_SETS (whitespace-separated), after the
# port settings.
# Exit status: 0 if every listed test passed, 1 if any failed or a list did not run.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${1:-${TS_BUILD:-build}}
[ $# -gt 0 ] && shift
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
TS=$BUILD/tinystack
[ -x "$TS" ] || { echo "run-lists: no tinystack binary at $TS (build first)" >&2; exit 2; }
LISTS=("$@")
# *-scenario.list (real guests: libvirt driver, root, a namespace for Tempest) only when named:
# their .sets would put every other list's cloud on another virt driver
if [ ${#LISTS[@]} -eq 0 ]; then
  for l in "$HERE"/*.list; do case $l in *-scenario.list) ;; *) LISTS+=("$l") ;; esac; done
fi
[ -e "${LISTS[0]}" ] || { echo "run-lists: no tests/tempest/*.list" >&2; exit 2; }

export PATH=/usr/bin:/bin:/usr/sbin:/sbin:$PATH
WORK=$(mktemp -d /var/tmp/ts-tempest-lists.XXXXXX)
DATA=$WORK/data
PID=
BG=()
# a list still running when this script is stopped (INT/TERM): its subshell and everything under it
kill_tree() {
  local c
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do kill_tree "$c"; done
  kill -TERM "$1" 2>/dev/null
}
cleanup() {
  for p in "${BG[@]}"; do kill -0 "$p" 2>/dev/null && kill_tree "$p"; done
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PID" 2>/dev/null
    wait "$PID" 2>/dev/null
  fi
  if [ -z "${TS_KEEP_DATA:-}" ]; then rm -rf "$WORK"; else echo "run-lists: kept $WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PASSWORD=tempest-$(head -c 9 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
SETS=(--set identity.password_hash_rounds=4 --set network.agent_cleanup_on_stop=true)
declare -A PORT
for svc in identity image compute network volume object; do
  PORT[$svc]=$(free_port)
  SETS+=(--set "$svc.port=${PORT[$svc]}")
done
for list in "${LISTS[@]}"; do
  [ -f "${list%.list}.sets" ] || continue
  while read -r kv; do SETS+=(--set "$kv"); done < <(sed -e 's/#.*//' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' -e '/^$/d' "${list%.list}.sets")
done
for kv in ${TS_SETS:-}; do SETS+=(--set "$kv"); done
if ! "$TS" init --data "$DATA" --admin-password "$PASSWORD" "${SETS[@]}" > "$WORK/init.log" 2>&1; then
  cat "$WORK/init.log" >&2; echo "run-lists: tinystack init failed" >&2; exit 1
fi
"$TS" serve --data "$DATA" > "$WORK/serve.log" 2>&1 &
PID=$!
up=
for _ in $(seq 300); do
  kill -0 "$PID" 2>/dev/null || break
  if curl -sf -o /dev/null "http://127.0.0.1:${PORT[identity]}/v3"; then up=1; break; fi
  sleep 0.1
done
[ -n "$up" ] || { tail -20 "$WORK/serve.log" >&2; echo "run-lists: tinystack did not come up" >&2; exit 1; }

ENABLED=$(sed -n 's/^enabled_services *= *//p' "$DATA/tinystack.conf" | head -1)
on() { case ",${ENABLED// /}," in *",$1,"*) echo true ;; *) echo false ;; esac; }
export TEMPEST_IDENTITY_URL=http://127.0.0.1:${PORT[identity]}
export TEMPEST_ADMIN_PASSWORD=$PASSWORD
export TEMPEST_GLANCE_AVAILABLE=$(on image) TEMPEST_SWIFT_AVAILABLE=$(on object)
export TEMPEST_NOVA_AVAILABLE=$(on compute) TEMPEST_NEUTRON_AVAILABLE=$(on network)
export TEMPEST_CINDER_AVAILABLE=$(on volume)
export TS_DATA=$DATA
for svc in "${!PORT[@]}"; do export "TS_URL_${svc^^}=http://127.0.0.1:${PORT[$svc]}"; done
echo "run-lists: tinystack up (services: $ENABLED), data $DATA"

# One list: its .env sourced in a subshell, run-tempest.sh in its own workspace; the log, exit
# status and wall seconds go to $WORK/<name>.{log,rc,secs}.
run_list() {
  local list=$1 name t0
  name=$(basename "$list" .list)
  t0=$(date +%s)
  (
    [ -f "${list%.list}.env" ] && . "${list%.list}.env"
    bash "$HERE/run-tempest.sh" "$WORK/ws-$name" "$list"
  ) > "$WORK/$name.log" 2>&1
  echo $? > "$WORK/$name.rc"
  echo $(( $(date +%s) - t0 )) > "$WORK/$name.secs"
}

# The lists run at the same time on the one cloud (TS_TEMPEST_SEQUENTIAL=1: one after another).
# Tempest gives every test class its own dynamic project and user; its external locks
# (quota classes, availability zones) are shared through one lock dir; no API test of these lists
# makes a shared network, so servers of the compute and volume lists (booted without networks)
# never land on the network list's networks. Most of the network list's time is Tempest sleeping
# (10 s before every subnet delete), so it overlaps with the others' CPU.
export TEMPEST_LOCK_PATH=$WORK/tempest_lock
fail=0
SUMMARY=()
RUN=()
t_all=$(date +%s)
for list in "${LISTS[@]}"; do
  name=$(basename "$list" .list)
  n=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$list" | wc -l)
  svc=${name%%[-_.]*}
  case $svc in identity|image|compute|network|volume|object)
    if [ "$(on "$svc")" != true ]; then
      SUMMARY+=("$(printf '%-12s not run: the %s service is not built in %s (%d listed)' "$name" "$svc" "$BUILD" "$n")")
      continue
    fi ;;
  esac
  RUN+=("$list")
  if [ -n "${TS_TEMPEST_SEQUENTIAL:-}" ]; then run_list "$list"; else run_list "$list" & BG+=($!); fi
done
for p in "${BG[@]}"; do wait "$p"; done
for list in "${RUN[@]}"; do
  name=$(basename "$list" .list)
  n=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$list" | wc -l)
  log=$WORK/$name.log
  rc=$(cat "$WORK/$name.rc" 2>/dev/null || echo 1)
  line=$(grep '^tempest: ' "$log" | tail -1)
  p=$(echo "$line" | sed -n 's/^tempest: \([0-9]*\) passed.*/\1/p')
  f=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
  s=$(echo "$line" | sed -n 's/.* \([0-9]*\) skipped.*/\1/p')
  SUMMARY+=("$(printf '%-12s %4s passed %4s failed %4s skipped of %4d listed  %4s s' "$name" "${p:-0}" "${f:-?}" "${s:-0}" "$n" \
    "$(cat "$WORK/$name.secs" 2>/dev/null)")")
  if [ "$rc" != 0 ] || [ "${f:-1}" != 0 ]; then
    fail=1
    echo "---- $name: failures (full log: $log)"
    grep -E '^\{[0-9]+\} .*FAILED' "$WORK/ws-$name/tempest-run.log" 2>/dev/null | sed 's/^{[0-9]*} /  /' | head -50
    [ -s "$WORK/ws-$name/tempest-run.log" ] || tail -20 "$log"
    TS_KEEP_DATA=${TS_KEEP_DATA:-1}
  fi
done
echo "==== tempest lists ($(( $(date +%s) - t_all )) s$([ -z "${TS_TEMPEST_SEQUENTIAL:-}" ] && [ ${#RUN[@]} -gt 1 ] && echo ", run at the same time"))"
printf '%s\n' "${SUMMARY[@]}"
exit $fail
