#!/usr/bin/env bash
# Smoke test of the tinyvm image (tools/build-guest.sh) with plain QEMU (TCG), everything inside a
# private network namespace: a bridge with two taps (two NICs), dnsmasq (DHCP with option 121),
# a busybox httpd answering as the metadata service on 169.254.169.254, then checks the console
# markers, logs in with ssh using the key served by "metadata", hot-plugs and unplugs a disk, and
# presses the ACPI power button. Cleans up everything it made. Needs root.
# With "libvirt" (libvirtd must answer on qemu:///system: scripts/libvirt-up.sh start) it instead
# boots the image through libvirt from the disk alone (no <kernel>, no network), attaches and
# detaches a volume, and checks that `virsh shutdown` powers the domain off.
# Usage: tools/check-guest.sh IMAGE_DIR [qemu|libvirt]    (IMAGE_DIR holds tinyvm.qcow2)
set -euo pipefail
IMG=$(cd "${1:?usage: $0 IMAGE_DIR [qemu|libvirt]}" && pwd)/tinyvm.qcow2
MODE=${2:-qemu}
[ -s "$IMG" ] || { echo "check-guest: no $IMG" >&2; exit 1; }
NS=tsguest$$
DOM=tinyvm-check$$
# libvirt's qemu runs as libvirt-qemu (uid 64055): its files must be in a directory it can traverse
W=$(mktemp -d /var/tmp/tinyvm-check.XXXXXX); chmod 755 "$W"
QPID= DPID= HPID=
V() { virsh -q -c qemu:///system "$@"; }
cleanup() {
  for p in $QPID $DPID $HPID; do kill "$p" 2>/dev/null || true; done
  for p in $QPID $DPID $HPID; do wait "$p" 2>/dev/null || true; done
  # anything else still running in the namespace (nothing should be) goes too
  if ip netns pids "$NS" >/dev/null 2>&1; then
    for p in $(ip netns pids "$NS"); do kill -KILL "$p" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
  fi
  if [ "$MODE" = libvirt ]; then
    V destroy "$DOM" >/dev/null 2>&1 || true
    V undefine "$DOM" >/dev/null 2>&1 || true
  fi
  rm -rf "$W"
}
trap cleanup EXIT
T0=$(date +%s.%N)
ts() { printf '[%5.2fs]' "$(echo "$(date +%s.%N) - $T0" | bc)"; }
fail() { echo "$(ts) FAIL: $*"; echo "--- console"; cat "$W/console.log"; exit 1; }
wait_for() {  # wait_for REGEX SECONDS
  local end=$(( $(date +%s) + $2 ))
  until tr -d '\r' 2>/dev/null < "$W/console.log" | grep -E "$1" >/dev/null; do
    [ "$(date +%s)" -lt "$end" ] || fail "no console line matching '$1' within $2 s"
    sleep 0.1
  done
  echo "$(ts) $(tr -d '\r' < "$W/console.log" | grep -E "$1" | tail -1)"
}
hmp() { echo "$1" | socat - "UNIX-CONNECT:$W/hmp.sock" >/dev/null; }
# foreground only: background jobs use `ip netns exec` directly so that $! is the program's pid
N() { ip netns exec "$NS" "$@"; }

if [ "$MODE" = libvirt ]; then
  qemu-img create -q -f qcow2 -b "$IMG" -F qcow2 "$W/root.qcow2"
  qemu-img create -q -f qcow2 "$W/vol.qcow2" 32M
  cat > "$W/domain.xml" <<EOF
<domain type='qemu'>
  <name>$DOM</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <features><acpi/></features>
  <cpu mode='custom' match='exact'><model fallback='allow'>qemu64</model></cpu>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$W/root.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'><source path='$W/console.log'/><target port='0'/></serial>
    <console type='file'><source path='$W/console.log'/><target type='serial' port='0'/></console>
    <video><model type='none'/></video>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
  cat > "$W/vol.xml" <<EOF
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$W/vol.qcow2'/><target dev='vdb' bus='virtio'/></disk>
EOF
  V define "$W/domain.xml" >/dev/null
  echo "$(ts) virsh start"
  V start "$DOM" >/dev/null
  wait_for 'TINYVM BOOTED' 30
  wait_for 'TINYVM DISK vda 67108864$' 30
  wait_for 'TINYVM READY' 30
  V attach-device "$DOM" "$W/vol.xml" >/dev/null
  wait_for 'TINYVM DISK vdb 33554432$' 15
  V detach-device "$DOM" "$W/vol.xml" >/dev/null
  wait_for 'TINYVM DISK vdb removed$' 15
  V shutdown "$DOM" >/dev/null
  wait_for 'TINYVM POWEROFF' 15
  for _ in $(seq 100); do V domstate "$DOM" | grep -q 'shut off' && break; sleep 0.1; done
  V domstate "$DOM" | grep -q 'shut off' || fail "domain still $(V domstate "$DOM") after virsh shutdown"
  echo "$(ts) domain shut off after virsh shutdown"
  echo "check-guest: 1 passed, 0 failed"
  exit 0
fi

ip netns add "$NS"
N ip link set lo up
N ip link add br0 type bridge
N ip addr add 10.99.0.1/24 dev br0
N ip addr add 169.254.169.254/32 dev br0
N ip link set br0 up
for i in 0 1; do
  N ip tuntap add dev tap$i mode tap
  N ip link set tap$i master br0 up
done

# metadata tree served by busybox httpd
M=$W/md
mkdir -p "$M/latest/meta-data/public-keys/0" "$M/openstack/latest"
echo i-0000check > "$M/latest/meta-data/instance-id"
echo check-vm.novalocal > "$M/latest/meta-data/hostname"
ssh-keygen -q -t ed25519 -N '' -C check@tinystack -f "$W/id"
cp "$W/id.pub" "$M/latest/meta-data/public-keys/0/openssh-key"
printf '#!/bin/sh\necho hello from user data\n' > "$M/openstack/latest/user_data"
ip netns exec "$NS" busybox httpd -f -p 169.254.169.254:80 -h "$M" & HPID=$!

ip netns exec "$NS" dnsmasq --keep-in-foreground --no-hosts --no-resolv --port=0 --interface=br0 --bind-interfaces \
  --dhcp-range=set:s1,10.99.0.0,static,255.255.255.0,86400s \
  --dhcp-host=52:54:00:99:00:10,10.99.0.10 --dhcp-host=52:54:00:99:00:11,10.99.0.11 \
  --dhcp-option=tag:s1,option:router,10.99.0.1 \
  --dhcp-option=tag:s1,option:classless-static-route,169.254.169.254/32,10.99.0.1,0.0.0.0/0,10.99.0.1 \
  --dhcp-leasefile="$W/leases" --pid-file="$W/dnsmasq.pid" --user=root --log-facility="$W/dnsmasq.log" &
DPID=$!

qemu-img create -q -f qcow2 -b "$IMG" -F qcow2 "$W/root.qcow2"
qemu-img create -q -f qcow2 "$W/vol.qcow2" 32M
echo "$(ts) starting qemu"
ip netns exec "$NS" qemu-system-x86_64 -accel tcg -m 256 -display none -no-reboot -nodefaults \
  -serial "file:$W/console.log" -monitor "unix:$W/hmp.sock,server=on,wait=off" \
  -drive "file=$W/root.qcow2,if=virtio,format=qcow2" \
  -netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device virtio-net-pci,netdev=n0,mac=52:54:00:99:00:10 \
  -netdev tap,id=n1,ifname=tap1,script=no,downscript=no -device virtio-net-pci,netdev=n1,mac=52:54:00:99:00:11 &
QPID=$!

wait_for 'TINYVM BOOTED' 20
wait_for 'TINYVM DHCP eth0 ip=10.99.0.10 .*routes=169.254.169.254/32 10.99.0.1' 20
wait_for 'TINYVM DHCP eth1 ip=10.99.0.11' 20
wait_for 'TINYVM METADATA instance-id=i-0000check$' 20
wait_for 'TINYVM METADATA hostname=check-vm.novalocal$' 5
wait_for 'TINYVM USERDATA #!/bin/sh$' 5
wait_for 'TINYVM DISK vda 67108864$' 5
wait_for 'TINYVM READY' 5
wait_for 'TINYVM SSH SHA256:' 20
N ping -c1 -W2 10.99.0.11 >/dev/null || fail "ping eth1"
OUT=$(N ssh -q -i "$W/id" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=10 \
  -o BatchMode=yes root@10.99.0.10 'hostname; ip route | grep -c 169.254.169.254' 2>&1) || fail "ssh: $OUT"
[ "$OUT" = "$(printf 'check-vm\n1')" ] || fail "ssh said: $OUT"
echo "$(ts) ssh ok: $(echo $OUT)"

hmp "drive_add 0 if=none,id=vol1,format=qcow2,file=$W/vol.qcow2"
hmp "device_add virtio-blk-pci,drive=vol1,id=vol1dev"
wait_for 'TINYVM DISK vdb 33554432$' 15
hmp "device_del vol1dev"
wait_for 'TINYVM DISK vdb removed$' 15

hmp "system_powerdown"
wait_for 'TINYVM POWEROFF' 15
for _ in $(seq 100); do kill -0 "$QPID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$QPID" 2>/dev/null && fail "qemu still running after the power button"
wait "$QPID" || true; QPID=
echo "$(ts) qemu exited after the ACPI power button"
echo "check-guest: 1 passed, 0 failed"
