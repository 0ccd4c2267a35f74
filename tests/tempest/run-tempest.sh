#!/usr/bin/env bash
# Runs Debian's Tempest 33 against a cloud (tinystack): makes (or reuses) a Tempest workspace,
# writes WORKSPACE/etc/tempest.conf from tests/tempest/tempest.conf.in and the environment, runs
# `tempest run --serial --include-list LIST`, and prints the counts.
#
# Usage: tests/tempest/run-tempest.sh WORKSPACE_DIR LIST_FILE [extra `tempest run` args]
#   LIST_FILE: one regex per line (# comments allowed), e.g. "tempest.api.identity.v3" or test
#   ids as printed by list-tests.sh; a "[id-...]" suffix is turned into "\[" so that the id
#   matches exactly that test.
# Environment (defaults in brackets):
#   TEMPEST_IDENTITY_URL (required)  Keystone base URL, e.g. http://127.0.0.1:5000 (a trailing /v3 is dropped)
#   TEMPEST_ADMIN_PASSWORD (required)
#   TEMPEST_ADMIN_USERNAME [admin]  TEMPEST_ADMIN_PROJECT [admin]  TEMPEST_ADMIN_DOMAIN [Default]
#   TEMPEST_REGION [RegionOne]  TEMPEST_IDENTITY_INTERFACE [public]  TEMPEST_TEMPEST_ROLES []
#   TEMPEST_GLANCE_AVAILABLE TEMPEST_SWIFT_AVAILABLE TEMPEST_NOVA_AVAILABLE
#   TEMPEST_CINDER_AVAILABLE TEMPEST_NEUTRON_AVAILABLE [all false]
#   TEMPEST_ID_TRUST [true] TEMPEST_ID_PROJECT_TAGS [true] TEMPEST_ID_APPLICATION_CREDENTIALS [true]
#   TEMPEST_ID_ACCESS_RULES [false] TEMPEST_ID_SECURITY_COMPLIANCE [false]
#   TEMPEST_IMAGE_URL [http://127.0.0.1:1/tinyvm.qcow2]  TEMPEST_IMAGE_IMPORT [false]
#   TEMPEST_IMAGE_REF, TEMPEST_IMAGE_REF_ALT [empty]  TEMPEST_FLAVOR_REF [1] TEMPEST_FLAVOR_REF_ALT [2]
#   TEMPEST_FIXED_NETWORK_NAME []  TEMPEST_CREATE_ISOLATED_NETWORKS [false]
#   TEMPEST_PUBLIC_NETWORK_ID, TEMPEST_FLOATING_NETWORK_NAME [empty: left out of [network]]
#   TEMPEST_NETWORK_IPV6_SUBNET_ATTRIBUTES [empty: Tempest's default, false]
#   TEMPEST_RUN_VALIDATION [false] TEMPEST_VALIDATION_CONNECT_METHOD [floating]
#   TEMPEST_HTTP_TIMEOUT [60]  TEMPEST_CONCURRENCY [unset: --serial; N: --concurrency N]
#   TEMPEST_NETNS [unset: the current namespace; NAME: `ip netns exec NAME tempest run ...`]
#   TEMPEST_LOCK_PATH [WORKSPACE/tempest_lock]
#   TEMPEST_COMPUTE_MIN_MICROVERSION, TEMPEST_COMPUTE_MAX_MICROVERSION [empty: Tempest's default]
#   TEMPEST_COMPUTE_HYPERVISOR_TYPE [QEMU]
#   [compute-feature-enabled]: TEMPEST_COMPUTE_RESIZE [false] TEMPEST_COMPUTE_CONSOLE_OUTPUT [true]
#   TEMPEST_COMPUTE_INTERFACE_ATTACH [$TEMPEST_NEUTRON_AVAILABLE] and, true by default as in
#   Tempest: TEMPEST_COMPUTE_PAUSE, _SUSPEND, _SHELVE, _RESCUE, _SNAPSHOT, _INSTANCE_PASSWORD,
#   _DISK_CONFIG
# Exit status: tempest's (non-zero if any test failed, or if no test ran).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || { echo "usage: $0 WORKSPACE_DIR LIST_FILE [tempest run args]" >&2; exit 2; }
LIST=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
[ -r "$LIST" ] || { echo "run-tempest: cannot read $2" >&2; exit 2; }
mkdir -p "$1"
WS=$(cd "$1" && pwd)
shift 2
: "${TEMPEST_IDENTITY_URL:?set TEMPEST_IDENTITY_URL, e.g. http://127.0.0.1:5000}"
: "${TEMPEST_ADMIN_PASSWORD:?set TEMPEST_ADMIN_PASSWORD}"

# Debian's tempest and stestr run on /usr/bin/python3; keep any other python (pyenv...) out.
export PATH=/usr/bin:/bin:/usr/sbin:/sbin:$PATH
export PYTHON=/usr/bin/python3
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV

# Workspace: `tempest init` once; the workspace registry stays inside it (not in ~/.tempest).
if [ ! -f "$WS/.stestr.conf" ]; then
  # tempest init wants an empty directory and writes a tempest.log into the current one
  INIT_CWD=$(mktemp -d "${TMPDIR:-/tmp}/tempest-init.XXXXXX")
  if ! (cd "$INIT_CWD" && tempest init --workspace-path "$WS/.workspace.yaml" \
          --name "ts-$(basename "$WS")-$$" "$WS" >/dev/null 2>&1); then
    grep ERROR "$INIT_CWD/tempest.log" >&2 || true
    rm -rf "$INIT_CWD"
    echo "run-tempest: tempest init $WS failed (it must be empty or a tempest workspace)" >&2
    exit 1
  fi
  rm -rf "$INIT_CWD"
fi
cd "$WS"
# TEMPEST_LOCK_PATH: one lock dir for runs that share a cloud at the same time (run-lists.sh), so
# Tempest's external locks (compute_quotas, volume_quotas, availability_zone) hold across them
LOCK_DIR=${TEMPEST_LOCK_PATH:-$WS/tempest_lock}
mkdir -p "$WS/logs" "$LOCK_DIR" "$WS/etc"

# Values for every @NAME@ of the template; unset -> default below.
declare -A V=(
  [LOG_DIR]=$WS/logs [LOCK_PATH]=$LOCK_DIR
  [IDENTITY_URL]=$(echo "$TEMPEST_IDENTITY_URL" | sed -e 's|/*$||' -e 's|/v3$||')
  [ADMIN_PASSWORD]=$TEMPEST_ADMIN_PASSWORD
  [ADMIN_USERNAME]=${TEMPEST_ADMIN_USERNAME:-admin}
  [ADMIN_PROJECT]=${TEMPEST_ADMIN_PROJECT:-admin}
  [ADMIN_DOMAIN]=${TEMPEST_ADMIN_DOMAIN:-Default}
  [REGION]=${TEMPEST_REGION:-RegionOne}
  [IDENTITY_INTERFACE]=${TEMPEST_IDENTITY_INTERFACE:-public}
  [TEMPEST_ROLES]=${TEMPEST_TEMPEST_ROLES:-}
  [GLANCE_AVAILABLE]=${TEMPEST_GLANCE_AVAILABLE:-false}
  [SWIFT_AVAILABLE]=${TEMPEST_SWIFT_AVAILABLE:-false}
  [NOVA_AVAILABLE]=${TEMPEST_NOVA_AVAILABLE:-false}
  [CINDER_AVAILABLE]=${TEMPEST_CINDER_AVAILABLE:-false}
  [NEUTRON_AVAILABLE]=${TEMPEST_NEUTRON_AVAILABLE:-false}
  [ID_TRUST]=${TEMPEST_ID_TRUST:-true}
  [ID_PROJECT_TAGS]=${TEMPEST_ID_PROJECT_TAGS:-true}
  [ID_APPLICATION_CREDENTIALS]=${TEMPEST_ID_APPLICATION_CREDENTIALS:-true}
  [ID_ACCESS_RULES]=${TEMPEST_ID_ACCESS_RULES:-false}
  [ID_SECURITY_COMPLIANCE]=${TEMPEST_ID_SECURITY_COMPLIANCE:-false}
  [IMAGE_URL]=${TEMPEST_IMAGE_URL:-http://127.0.0.1:1/tinyvm.qcow2}
  [IMAGE_IMPORT]=${TEMPEST_IMAGE_IMPORT:-false}
  [IMAGE_REF]=${TEMPEST_IMAGE_REF:-}
  [IMAGE_REF_ALT]=${TEMPEST_IMAGE_REF_ALT:-}
  [FLAVOR_REF]=${TEMPEST_FLAVOR_REF:-1}
  [FLAVOR_REF_ALT]=${TEMPEST_FLAVOR_REF_ALT:-2}
  [FIXED_NETWORK_NAME]=${TEMPEST_FIXED_NETWORK_NAME:-}
  [PUBLIC_NETWORK_ID]=${TEMPEST_PUBLIC_NETWORK_ID:-}
  [FLOATING_NETWORK_NAME]=${TEMPEST_FLOATING_NETWORK_NAME:-}
  [NETWORK_IPV6_SUBNET_ATTRIBUTES]=${TEMPEST_NETWORK_IPV6_SUBNET_ATTRIBUTES:-}
  [CREATE_ISOLATED_NETWORKS]=${TEMPEST_CREATE_ISOLATED_NETWORKS:-false}
  [RUN_VALIDATION]=${TEMPEST_RUN_VALIDATION:-false}
  [VALIDATION_CONNECT_METHOD]=${TEMPEST_VALIDATION_CONNECT_METHOD:-floating}
  [HTTP_TIMEOUT]=${TEMPEST_HTTP_TIMEOUT:-60}
  [COMPUTE_MIN_MICROVERSION]=${TEMPEST_COMPUTE_MIN_MICROVERSION:-}
  [COMPUTE_MAX_MICROVERSION]=${TEMPEST_COMPUTE_MAX_MICROVERSION:-}
  [COMPUTE_HYPERVISOR_TYPE]=${TEMPEST_COMPUTE_HYPERVISOR_TYPE:-QEMU}
  [COMPUTE_RESIZE]=${TEMPEST_COMPUTE_RESIZE:-false}
  [COMPUTE_CONSOLE_OUTPUT]=${TEMPEST_COMPUTE_CONSOLE_OUTPUT:-true}
  [COMPUTE_INTERFACE_ATTACH]=${TEMPEST_COMPUTE_INTERFACE_ATTACH:-${TEMPEST_NEUTRON_AVAILABLE:-false}}
  [COMPUTE_PAUSE]=${TEMPEST_COMPUTE_PAUSE:-true}
  [COMPUTE_SUSPEND]=${TEMPEST_COMPUTE_SUSPEND:-true}
  [COMPUTE_SHELVE]=${TEMPEST_COMPUTE_SHELVE:-true}
  [COMPUTE_RESCUE]=${TEMPEST_COMPUTE_RESCUE:-true}
  [COMPUTE_SNAPSHOT]=${TEMPEST_COMPUTE_SNAPSHOT:-true}
  [COMPUTE_INSTANCE_PASSWORD]=${TEMPEST_COMPUTE_INSTANCE_PASSWORD:-true}
  [COMPUTE_DISK_CONFIG]=${TEMPEST_COMPUTE_DISK_CONFIG:-true}
)
# Fill the template with python (values may hold any character: passwords with / & \ ...).
for k in "${!V[@]}"; do export "TSV_$k=${V[$k]}"; done
/usr/bin/python3 - "$HERE/tempest.conf.in" "$WS/etc/tempest.conf" <<'PY'
import os, re, sys
src, dst = sys.argv[1], sys.argv[2]
text = open(src).read()
def sub(m):
    key = "TSV_" + m.group(1)
    if key not in os.environ:
        sys.exit("run-tempest: no value for @%s@" % m.group(1))
    return os.environ[key].replace("\n", " ")
# placeholders in comment lines are left alone; a line with an empty @?X@ is dropped
def line(l):
    if l.lstrip().startswith("#"):
        return l
    m = re.search(r"@\?([A-Z0-9_]+)@", l)
    if m and os.environ.get("TSV_" + m.group(1), "") == "":
        return ""
    return re.sub(r"@\??([A-Z0-9_]+)@", sub, l)
out = "".join(line(l) for l in text.splitlines(True))
with open(dst + ".tmp", "w") as f:
    f.write(out)
os.chmod(dst + ".tmp", 0o600)
os.replace(dst + ".tmp", dst)
PY

# Include list: ids with their "[id-...,smoke]" attributes become "<id>\[" (exact test).
sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' -e 's/\[.*$/\\[/' "$LIST" > "$WS/include-list.txt"
[ -s "$WS/include-list.txt" ] || { echo "run-tempest: $LIST selects nothing" >&2; exit 2; }

if [ -n "${TEMPEST_CONCURRENCY:-}" ]; then MODE=(--concurrency "$TEMPEST_CONCURRENCY"); else MODE=(--serial); fi
set +e
# TEMPEST_NETNS: run Tempest inside that network namespace (scenario runs: see netns-public.sh)
IN_NS=(); [ -n "${TEMPEST_NETNS:-}" ] && IN_NS=(ip netns exec "$TEMPEST_NETNS")
"${IN_NS[@]}" tempest run --workspace-path "$WS/.workspace.yaml" --config-file "$WS/etc/tempest.conf" \
  "${MODE[@]}" --include-list "$WS/include-list.txt" "$@" 2>&1 | tee "$WS/tempest-run.log"
RC=${PIPESTATUS[0]}
set -e

# Counts from the subunit-trace "Totals" block.
count() { sed -n "s/^ - $1: \([0-9]*\).*/\1/p" "$WS/tempest-run.log" | tail -1; }
P=$(count Passed); F=$(count Failed); S=$(count Skipped)
echo "tempest: ${P:-0} passed, ${F:-0} failed, ${S:-0} skipped (rc=$RC, log $WS/logs/tempest.log)"
exit "$RC"
