#!/usr/bin/env bash
# Loads a fresh `make run` cloud with what a user needs to start, idempotently (a second run on
# the same data dir changes nothing): the test guest image `tinyvm`, the flavor `m1.tiny`, an
# external network `public` (flat, physical network `public`, 172.24.4.0/24, gateway .1,
# floating IPs .10-.250, no DHCP), a router `router1` with its gateway on it, a tenant network
# `private` (10.0.0.0/24, DHCP) on router1, ICMP and SSH ingress in the admin project's default
# security group, and the "outside world" namespace ts-public (scripts/ext-namespace.sh).
# Needs OS_CLIENT_CONFIG_FILE/OS_CLOUD set. Steps for services that are not running are skipped.
# Usage: scripts/post-setup.sh DATA_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=$1
OS=/usr/bin/openstack
has() { $OS catalog show "$1" >/dev/null 2>&1; }
exists() { $OS "$@" >/dev/null 2>&1; }
say() { echo "post-setup: $*"; }

if has image && [ -x tools/build-guest.sh ]; then
  if ! exists image show tinyvm; then
    # QEMU (uid libvirt-qemu) must be able to search the directories above the image cache
    mkdir -p "$DATA/guest" && chmod 755 "$DATA" "$DATA/guest"
    bash tools/build-guest.sh "$DATA/guest" >/dev/null
    $OS image create --public --disk-format qcow2 --container-format bare \
      --file "$DATA/guest/tinyvm.qcow2" tinyvm >/dev/null
    say "uploaded image tinyvm"
  fi
fi

if has compute; then
  exists flavor show m1.tiny || {
    $OS flavor create --ram 256 --vcpus 1 --disk 1 m1.tiny >/dev/null; say "created flavor m1.tiny"; }
fi

if has volume; then
  # the volume service makes its directories 0700; QEMU opens the volume files itself
  for d in "$DATA/volumes" "$DATA"/volumes/*/; do [ -d "$d" ] && chmod 755 "$d"; done
fi

if has network; then
  exists network show public || {
    $OS network create --external --provider-network-type flat --provider-physical-network public \
      public >/dev/null; say "created external network public"; }
  exists subnet show public-subnet || {
    $OS subnet create --network public --subnet-range 172.24.4.0/24 --gateway 172.24.4.1 \
      --allocation-pool start=172.24.4.10,end=172.24.4.250 --no-dhcp public-subnet >/dev/null
    say "created subnet public-subnet 172.24.4.0/24"; }
  exists router show router1 || { $OS router create router1 >/dev/null; say "created router router1"; }
  gw=$($OS router show router1 -f value -c external_gateway_info)
  if [ -z "$gw" ] || [ "$gw" = "None" ] || [ "$gw" = "null" ]; then
    $OS router set --external-gateway public router1; say "router1: gateway on public"
  fi
  exists network show private || { $OS network create private >/dev/null; say "created network private"; }
  exists subnet show private-subnet || {
    $OS subnet create --network private --subnet-range 10.0.0.0/24 private-subnet >/dev/null
    say "created subnet private-subnet 10.0.0.0/24"; }
  if [ -z "$($OS port list --router router1 --network private -f value -c ID)" ]; then
    $OS router add subnet router1 private-subnet; say "router1: interface on private-subnet"
  fi
  project=$($OS project show admin -f value -c id)
  sg=$($OS security group list --project "$project" -f value -c ID -c Name | awk '$2 == "default" {print $1; exit}')
  if [ -n "$sg" ]; then
    rules=$($OS security group rule list "$sg" --ingress -f value -c "IP Protocol" -c "Port Range")
    grep -q '^icmp' <<<"$rules" || {
      $OS security group rule create --ingress --protocol icmp "$sg" >/dev/null; say "default security group: ICMP in"; }
    grep -q '^tcp 22:22' <<<"$rules" || {
      $OS security group rule create --ingress --protocol tcp --dst-port 22 "$sg" >/dev/null
      say "default security group: SSH in"; }
  else
    say "no default security group for project admin (rules not added)"
  fi
  if [ "$(id -u)" -eq 0 ]; then
    bash scripts/ext-namespace.sh up
  else
    say "not root: no network agent, no ts-public namespace"
  fi
fi
