#!/usr/bin/env bash
# Runs every test: C unit tests under ASan/UBSan (ctest + cmocka), the libFuzzer targets
# replayed on their corpus, the end-to-end tests with the real OpenStack clients (pytest),
# and the Tempest lists. Usage: scripts/test.sh [unit|fuzz|e2e|tempest|scenario]...
# (default: unit fuzz e2e tempest; `scenario`, the Tempest scenario list with real TCG guests,
# about 10 min on 2 cores, is left out of the default run to keep it under 30 min)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(unit fuzz e2e tempest)
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
fail=0
# With both e2e and tempest asked for (the default), the Tempest lists start in the background
# as soon as the e2e step has built tinystack, on their own cloud: most of their time is Tempest
# sleeping (10 s before every subnet delete) and polling, which the e2e tests' CPU fills; their
# report is printed at the tempest step. TS_TEMPEST_BESIDE_E2E=0: one after the other.
tempest_bg=
tempest_log=
beside=
if [ "${TS_TEMPEST_BESIDE_E2E:-1}" != 0 ] && [[ " ${steps[*]} " == *" e2e "*"tempest "* ]]; then
  beside=1
fi
stop_tempest_bg() {
  [ -n "$tempest_bg" ] && kill -TERM "$tempest_bg" 2>/dev/null || true
  [ -n "$tempest_log" ] && rm -f "$tempest_log" || true
}
for s in "${steps[@]}"; do
  case $s in
  unit)
    echo "== unit tests (ASan/UBSan)"
    cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTS_SANITIZE=ON -DTS_MODULES= >/dev/null
    ninja -C build-asan
    # the db and bus suites also run against real PostgreSQL and RabbitMQ servers, and the
    # object store's RADOS backend against a one-node Ceph (started in the background: ~10 s)
    export PG_DIR=/var/tmp/ts-test-pg PG_PORT=26432
    export RMQ_DIR=/var/tmp/ts-test-rmq RMQ_PORT=26672 RMQ_DIST_PORT=26673 RMQ_EPMD_PORT=26369
    export CEPH_DIR=/var/tmp/ts-test-ceph CEPH_MON_PORT=26790
    # (under set -e a failing command in an EXIT trap becomes the script's status: every
    # stop here must succeed even when the server is already stopped)
    trap 'bash scripts/pg-local.sh stop >/dev/null 2>&1 || true; bash scripts/rabbitmq-local.sh stop >/dev/null 2>&1 || true;
          bash scripts/ceph-local.sh stop >/dev/null 2>&1 || true' EXIT
    ceph_out=$(mktemp)
    bash scripts/ceph-local.sh start >"$ceph_out" 2>"$ceph_out.err" &
    ceph_pid=$!
    if TS_TEST_PG_URL=$(bash scripts/pg-local.sh start | tail -1); then export TS_TEST_PG_URL; else
      echo "test.sh: PostgreSQL did not start"; fail=1; fi
    if bash scripts/rabbitmq-local.sh start >/dev/null; then
      TS_TEST_AMQP_URL=$(bash scripts/rabbitmq-local.sh url); export TS_TEST_AMQP_URL
    else echo "test.sh: RabbitMQ did not start"; fail=1; fi
    if wait $ceph_pid; then TS_TEST_CEPH_CONF=$(tail -1 "$ceph_out"); export TS_TEST_CEPH_CONF; else
      echo "test.sh: Ceph did not start:"; cat "$ceph_out.err"; fail=1; fi
    rm -f "$ceph_out" "$ceph_out.err"
    (cd build-asan && ctest --output-on-failure -j2) || fail=1
    bash scripts/pg-local.sh stop >/dev/null 2>&1 || true
    bash scripts/rabbitmq-local.sh stop >/dev/null 2>&1 || true
    bash scripts/ceph-local.sh stop >/dev/null 2>&1 || true
    unset TS_TEST_PG_URL TS_TEST_AMQP_URL TS_TEST_CEPH_CONF
    trap - EXIT
    ;;
  fuzz)
    echo "== fuzz corpus replay"
    CC=clang cmake -S . -B build-fuzz -G Ninja -DTS_FUZZ=ON -DTS_MODULES= >/dev/null
    ninja -C build-fuzz
    (cd build-fuzz && ctest --output-on-failure) || fail=1
    ;;
  e2e)
    echo "== end-to-end tests (real openstack CLI, openstacksdk, swift)"
    cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTS_MODULES= >/dev/null
    ninja -C "$BUILD"
    # the guest images the guest tests boot, built now rather than by the first test that needs
    # one (a build is a minute of CPU: beside the Tempest start it pushed the first TCG boots
    # past their timeouts); a failure here is left for those tests to report
    for g in /var/tmp/tinystack-guest /var/tmp/tinystack-netagent-guest; do
      mkdir -p "$g" && chmod 755 "$g" && bash tools/build-guest.sh "$g" >/dev/null 2>&1 ||
        echo "test.sh: tools/build-guest.sh $g failed (the guest tests will say why)"
    done
    if [ -n "$beside" ]; then
      tempest_log=$(mktemp)
      TS_BUILD="$BUILD" bash tests/tempest/run-lists.sh > "$tempest_log" 2>&1 &
      tempest_bg=$!
      trap stop_tempest_bg EXIT
      echo "(the Tempest lists run in the background meanwhile: see == tempest below)"
    fi
    # two pytest processes (pytest-xdist; TS_E2E_WORKERS=1: one): tests/e2e/conftest.py keeps
    # the files that boot guests or make LVM groups together in one of them
    XDIST=()
    if [ "${TS_E2E_WORKERS:-2}" -gt 1 ]; then
      if /usr/bin/python3 -c 'import xdist' 2>/dev/null; then XDIST=(-n "${TS_E2E_WORKERS:-2}" --dist loadgroup)
      else echo "test.sh: pytest-xdist not installed (python3-pytest-xdist): e2e in one process"; fi
    fi
    TS_BUILD="$BUILD" /usr/bin/python3 -m pytest -q -p no:cacheprovider --durations=25 "${XDIST[@]}" tests/e2e || fail=1
    ;;
  tempest)
    echo "== tempest"
    if [ -n "$tempest_bg" ]; then
      t0=$(date +%s)
      wait "$tempest_bg" || fail=1
      echo "(run beside the e2e tests; waited $(( $(date +%s) - t0 )) s for it after them)"
      cat "$tempest_log"
      rm -f "$tempest_log"
      tempest_bg= tempest_log=
      trap - EXIT
    else
      TS_BUILD="$BUILD" bash tests/tempest/run-lists.sh || fail=1
    fi
    ;;
  scenario)
    echo "== tempest scenario (real guests: libvirt, namespaces)"
    cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTS_MODULES= >/dev/null
    ninja -C "$BUILD"
    bash scripts/libvirt-up.sh start >/dev/null || fail=1
    TS_BUILD="$BUILD" bash tests/tempest/run-lists.sh "$BUILD" tests/tempest/network-scenario.list || fail=1
    ;;
  *) echo "unknown step $s"; exit 2 ;;
  esac
done
exit $fail
