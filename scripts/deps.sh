#!/usr/bin/env bash
# Installs every Debian 12 package tinystack needs to build, run and test.
# Idempotent: packages already present are skipped quickly. Run as root.
set -euo pipefail
PKGS=(
  # build
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
  libmicrohttpd-dev libjansson-dev libsqlite3-dev libpq-dev libcurl4-openssl-dev
  libssl-dev libcrypt-dev uuid-dev libyaml-dev librabbitmq-dev libvirt-dev libcmocka-dev
  # run: guests, networks, services
  qemu-system-x86 qemu-utils linux-image-cloud-amd64 busybox-static cpio e2fsprogs
  extlinux syslinux-common fdisk
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-daemon-system libvirt-clients
  dnsmasq-base iptables iproute2 iputils-ping conntrack socat radvd isc-dhcp-client
  rabbitmq-server amqp-tools postgresql sqlite3 dropbear-bin
  # the object service's Ceph RADOS backend and the one-node Ceph of scripts/ceph-local.sh
  ceph-mon ceph-osd ceph-common librados-dev
  # the volume service's LVM backend (thin pools on a loop device the tests make)
  lvm2 thin-provisioning-tools
  # tests: the real OpenStack clients and Tempest
  python3-openstackclient python3-openstacksdk python3-swiftclient python3-pytest
  python3-requests python3-yaml python3-pytest-xdist tempest curl
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=900 update -qq
  apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}"
fi
