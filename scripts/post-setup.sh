#!/usr/bin/env bash
# Loads a fresh cloud with the test guest image and a flavor, idempotently. Needs
# OS_CLIENT_CONFIG_FILE/OS_CLOUD set. Steps for services that are not running are skipped.
set -euo pipefail
DATA=$1
OS=/usr/bin/openstack
has() { $OS catalog show "$1" >/dev/null 2>&1; }
if has image && [ -x tools/build-guest.sh ]; then
  if ! $OS image show tinyvm >/dev/null 2>&1; then
    bash tools/build-guest.sh "$DATA/guest" >/dev/null
    $OS image create --public --disk-format qcow2 --container-format bare \
      --file "$DATA/guest/tinyvm.qcow2" tinyvm >/dev/null
    echo "post-setup: uploaded image tinyvm"
  fi
fi
if has compute; then
  $OS flavor show m1.tiny >/dev/null 2>&1 || {
    $OS flavor create --ram 256 --vcpus 1 --disk 1 m1.tiny >/dev/null; echo "post-setup: created flavor m1.tiny"; }
fi
