#!/usr/bin/env bash
# Builds tinystack's test guest "tinyvm" from the host's Debian packages, with no network:
#   OUTDIR/tinyvm.qcow2      whole-disk BIOS image (MBR + extlinux + one ext4 partition holding
#                            /boot/vmlinuz, /boot/initrd.gz and a busybox/dropbear root), boots
#                            Nova-style from the disk alone (no -kernel)
#   OUTDIR/tinyvm-vmlinuz    the same kernel and initramfs, for direct-kernel-boot tests
#   OUTDIR/tinyvm-initrd.gz  (append "root=LABEL=tinyvm-root console=ttyS0")
# The guest prints "TINYVM ..." marker lines on the serial console (ttyS0); they are documented
# in docs/internals/guest-image.md.
#
# Inputs: linux-image-cloud-amd64, busybox-static, dropbear-bin (optional), e2fsprogs, fdisk,
# extlinux, syslinux-common, qemu-utils, cpio, gzip (see scripts/deps.sh).
# Needs root: extlinux can only install into a mounted filesystem (one loop mount, undone at exit).
#
# Usage: tools/build-guest.sh OUTDIR
# Env:   TINYVM_APPEND   extra kernel command line (e.g. "tinyvm.linger=5")
#        TINYVM_COMPRESS=1  zlib-compressed qcow2 (16 instead of 23 MB, boots about 1 s slower)
#        TINYVM_FORCE=1  rebuild even if OUTDIR already holds an image built from the same inputs
set -euo pipefail

die() { echo "build-guest: $*" >&2; exit 1; }
[ $# -eq 1 ] || die "usage: $0 OUTDIR"
[ "$(id -u)" -eq 0 ] || die "must run as root (extlinux needs a loop mount)"
for t in busybox mkfs.ext4 sfdisk extlinux qemu-img cpio gzip modprobe; do
  command -v "$t" >/dev/null || die "missing tool $t (run scripts/deps.sh)"
done
MBR=/usr/lib/syslinux/mbr/mbr.bin
[ -r "$MBR" ] || die "missing $MBR (syslinux-common)"

# Newest cloud kernel that has both its image and its modules.
KVER=
for d in $(ls -1 /lib/modules 2>/dev/null | grep -- '-cloud-amd64$' | sort -V); do
  [ -r "/boot/vmlinuz-$d" ] && KVER=$d
done
[ -n "$KVER" ] || die "no cloud-amd64 kernel in /boot + /lib/modules (linux-image-cloud-amd64)"
BUSYBOX=/bin/busybox
"$BUSYBOX" --list | grep -x udhcpc >/dev/null || die "$BUSYBOX is not busybox-static"
DROPBEAR=/usr/sbin/dropbear
[ -x "$DROPBEAR" ] && [ -x /usr/bin/dropbearkey ] || DROPBEAR=

mkdir -p "$1"
OUT=$(cd "$1" && pwd)
IMG=$OUT/tinyvm.qcow2
COMPRESS=; [ "${TINYVM_COMPRESS:-0}" = 1 ] && COMPRESS=1
APPEND="root=LABEL=tinyvm-root console=ttyS0,115200 quiet panic=-1 mitigations=off tsc=reliable no_timer_check ${TINYVM_APPEND:-}"

# Idempotence: skip the build when the same script, kernel, packages and options made the image.
STAMP=$( { sha256sum "$0"; echo "$KVER $APPEND compress=$COMPRESS";
  dpkg-query -W -f='${Package} ${Version}\n' busybox-static dropbear-bin extlinux 2>/dev/null || true
  ls -l --time-style=+%s "/boot/vmlinuz-$KVER"; } | sha256sum | cut -c1-32)
if [ "${TINYVM_FORCE:-0}" != 1 ] && [ -s "$IMG" ] && [ "$(cat "$OUT/.tinyvm.stamp" 2>/dev/null)" = "$STAMP" ]; then
  echo "build-guest: $IMG is up to date"
  exit 0
fi

W=$(mktemp -d "${TMPDIR:-/tmp}/tinyvm-build.XXXXXX")
MNT=
cleanup() {
  if [ -n "$MNT" ] && mountpoint -q "$MNT"; then umount "$MNT" || umount -l "$MNT"; fi
  rm -rf "$W"
}
trap cleanup EXIT

# ---------------------------------------------------------------- initramfs
# Loads the virtio/ACPI modules (not built into the cloud kernel), finds the root partition by
# label, and switch_roots to it. Keeps only busybox: the real userland lives on the disk.
I=$W/initrd
mkdir -p "$I"/{bin,dev,proc,sys,mnt,lib/modules}
cp "$BUSYBOX" "$I/bin/busybox"
MODS=()
for m in virtio_pci virtio_net virtio_blk virtio_rng button evdev; do
  while read -r _ path _; do
    n=$(basename "$path"); n=${n%%.ko*}
    case " ${MODS[*]:-} " in *" $n "*) continue ;; esac
    case "$path" in
      *.ko) cp "$path" "$I/lib/modules/$n.ko" ;;
      *.ko.xz) xz -dc "$path" > "$I/lib/modules/$n.ko" ;;
      *.ko.zst) zstd -qdc "$path" > "$I/lib/modules/$n.ko" ;;
      *) die "unknown module file $path" ;;
    esac
    MODS+=("$n")
  done < <(modprobe -S "$KVER" --show-depends "$m" | grep '^insmod ')
done
cat > "$I/init" <<EOF
#!/bin/busybox sh
MODS="${MODS[*]}"
EOF
cat >> "$I/init" <<'EOF'
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
echo "TINYVM BOOTED uptime=$(cut -d' ' -f1 /proc/uptime)" > /dev/console
for m in $MODS; do insmod /lib/modules/$m.ko 2>/dev/null; done
ROOT=$(sed -n 's/.*root=\([^ ]*\).*/\1/p' /proc/cmdline)
DEV=
i=0
while [ $i -lt 50 ] && [ -n "$ROOT" ]; do
  case "$ROOT" in
    LABEL=*|UUID=*) DEV=$(findfs "$ROOT" 2>/dev/null) ;;
    *) [ -b "$ROOT" ] && DEV=$ROOT ;;
  esac
  [ -n "$DEV" ] && break
  sleep 0.1; i=$((i + 1))
done
if [ -n "$DEV" ] && mount -t ext4 -o rw "$DEV" /mnt; then
  mount --move /dev /mnt/dev; mount --move /proc /mnt/proc; mount --move /sys /mnt/sys
  exec switch_root /mnt /sbin/init
fi
echo "TINYVM ROOT MOUNT FAILED root=$ROOT dev=$DEV" > /dev/console
sleep 2
poweroff -f
EOF
chmod 755 "$I/init"
(cd "$I" && find . | sort | cpio -o -H newc --quiet -R 0:0 | gzip -9n) > "$W/initrd.gz"

# ---------------------------------------------------------------- root filesystem
R=$W/root
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,dev,proc,sys,run,tmp,mnt,root,etc/tinyvm,etc/dropbear,boot/extlinux,usr/share/udhcpc}
chmod 1777 "$R/tmp"; chmod 700 "$R/root"
ln -s /run "$R/var" 2>/dev/null || true   # /var/run, /var/log on tmpfs (busybox acpid needs /var/run)
cp "$BUSYBOX" "$R/bin/busybox"
"$BUSYBOX" --list-full | while read -r a; do
  [ -e "$R/$a" ] || [ -L "$R/$a" ] || ln -s /bin/busybox "$R/$a"
done
if [ -n "$DROPBEAR" ]; then
  cp "$DROPBEAR" "$R/usr/sbin/dropbear"; cp /usr/bin/dropbearkey "$R/usr/bin/dropbearkey"
  for lib in $(ldd "$DROPBEAR" /usr/bin/dropbearkey | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && NF == 2 {print $1}' | sort -u); do
    mkdir -p "$R$(dirname "$lib")"; cp -L "$lib" "$R$lib"
  done
fi
cp "/boot/vmlinuz-$KVER" "$R/boot/vmlinuz"
cp "$W/initrd.gz" "$R/boot/initrd.gz"
cat > "$R/boot/extlinux/extlinux.conf" <<EOF
DEFAULT tinyvm
TIMEOUT 0
PROMPT 0
SERIAL 0 115200
LABEL tinyvm
  KERNEL /boot/vmlinuz
  INITRD /boot/initrd.gz
  APPEND $APPEND
EOF
echo tinyvm > "$R/etc/hostname"
printf 'root:x:0:0:root:/root:/bin/sh\nsshd:x:100:65534::/run:/bin/false\n' > "$R/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$R/etc/group"
printf 'root:*:19000:0:99999:7:::\n' > "$R/etc/shadow"; chmod 600 "$R/etc/shadow"
printf '/bin/sh\n/bin/ash\n' > "$R/etc/shells"
# what Tempest's scenario tests run over ssh besides busybox: sudo (everyone is root here) and
# a curl for the metadata checks (GET, or POST with -d), on top of busybox wget
printf '#!/bin/sh\n[ "$1" = -n ] && shift\nexec "$@"\n' > "$R/usr/bin/sudo"
cat > "$R/usr/bin/curl" <<'EOF_CURL'
#!/bin/sh
# minimal curl: [-s] [-f] [-m SECS] [-X METHOD] [-d DATA] [-o FILE] URL, through busybox wget
T=30 D= O=- U= P=
while [ $# -gt 0 ]; do
  case "$1" in
    -s|-S|-f|-L|-sf|-fs|-sS) ;;
    -m|--max-time) shift; T=${1%%.*} ;;
    -X|--request) shift; [ "$1" = POST ] && P=1 ;;
    -d|--data) shift; D=$1; P=1 ;;
    -o|--output) shift; O=$1 ;;
    -*) ;;
    *) U=$1 ;;
  esac
  shift
done
[ -n "$U" ] || { echo "curl: no URL" >&2; exit 2; }
if [ -n "$P" ]; then exec timeout "$T" wget -q -O "$O" --post-data "$D" "$U"; fi
exec timeout "$T" wget -q -O "$O" "$U"
EOF_CURL
chmod 755 "$R/usr/bin/sudo" "$R/usr/bin/curl"
printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' > "$R/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n' > "$R/etc/hosts"
ln -s /run/resolv.conf "$R/etc/resolv.conf"
cat > "$R/etc/profile" <<'EOF'
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
PS1='tinyvm# '
EOF
cat > "$R/etc/inittab" <<'EOF'
::sysinit:/etc/tinyvm/rc
::ctrlaltdel:/etc/tinyvm/poweroff
::shutdown:/bin/sync
EOF

# power button / Ctrl-Alt-Del: flush and power off (no 2 s grace period of busybox init's poweroff)
cat > "$R/etc/tinyvm/poweroff" <<'EOF'
#!/bin/sh
echo "TINYVM POWEROFF" > /dev/console
sync
mount -o remount,ro / 2>/dev/null
poweroff -f
EOF

# udhcpc hook: address, default route, option 121 routes, MTU, DNS, one marker line per lease
cat > "$R/usr/share/udhcpc/default.script" <<'EOF'
#!/bin/sh
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    # a renewal of the same address keeps it (and the routes); DNS servers may have changed
    if [ "$1" = renew ] && ip -4 addr show dev "$interface" | grep -q " $ip/"; then
      SAME=1
    else
      SAME=
    fi
    if [ -z "$SAME" ]; then
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" ${broadcast:+broadcast $broadcast} dev "$interface"
    [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
    # option 121 (classless static routes) wins over option 3, as RFC 3442 says
    if [ -n "$staticroutes" ]; then
      set -- $staticroutes
      while [ $# -ge 2 ]; do
        if [ "$1" = 0.0.0.0/0 ]; then ip route replace default via "$2" dev "$interface"
        else ip route replace "$1" via "$2" dev "$interface"; fi
        shift 2
      done
    elif [ -n "$router" ]; then
      ip route add default via "${router%% *}" dev "$interface" 2>/dev/null
    fi
    fi
    rm -f /run/resolv.conf.$interface
    if [ -n "$dns" ]; then
      : > /run/resolv.conf.$interface
      for s in $dns; do echo "nameserver $s" >> /run/resolv.conf.$interface; done
    fi
    cat /run/resolv.conf.* > /run/resolv.conf 2>/dev/null || : > /run/resolv.conf
    [ -n "$SAME" ] && exit 0
    echo "TINYVM DHCP $interface ip=$ip mask=$mask router=$router routes=$staticroutes" > /dev/console ;;
esac
exit 0
EOF

# disk watcher: one pass prints every vd*/sd* disk that appeared, changed size or went away
cat > "$R/etc/tinyvm/diskscan" <<'EOF'
#!/bin/sh
S=/run/tinyvm.disks
touch $S
: > $S.new
for b in /sys/block/vd* /sys/block/sd*; do
  [ -e "$b/size" ] || continue
  echo "${b##*/} $(( $(cat $b/size) * 512 ))" >> $S.new
done
while read -r n sz; do
  grep -qx "$n $sz" $S || echo "TINYVM DISK $n $sz" > /dev/console
done < $S.new
while read -r n sz; do
  grep -q "^$n " $S.new || echo "TINYVM DISK $n removed" > /dev/console
done < $S
mv $S.new $S
EOF

# the "cloud-init" of tinyvm
cat > "$R/etc/tinyvm/rc" <<'EOF'
#!/bin/sh
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
exec > /dev/console 2>&1
mounted() { grep -q " $1 " /proc/mounts 2>/dev/null; }
mounted /proc || mount -t proc proc /proc
mounted /sys || mount -t sysfs sys /sys
mounted /dev || mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm; mount -t devpts -o gid=5,mode=620 devpts /dev/pts
mount -t tmpfs -o mode=755 run /run; mkdir -p /run/run /run/log /run/lib /run/tinyvm
mount -t tmpfs -o mode=1777 tmp /tmp
CMDLINE=$(cat /proc/cmdline)
arg() { echo " $CMDLINE " | sed -n "s/.* tinyvm\.$1=\([^ ]*\) .*/\1/p"; }
echo "TINYVM ROOTFS uptime=$(cut -d' ' -f1 /proc/uptime) kernel=$(uname -r)"
hostname -F /etc/hostname

# ACPI power button (virsh shutdown) -> clean poweroff; busybox acpid needs /var/run
mkdir -p /run/acpi/PWRF
ln -sf /etc/tinyvm/poweroff /run/acpi/PWRF/00000080
acpid -c /run/acpi -l /run/log/acpid.log -p /run/run/acpid.pid

ip link set lo up

# DHCP on every NIC at once; udhcpc stays in the background to renew (-n: give up if no offer)
: > /run/tinyvm/leases
for n in /sys/class/net/*; do
  IF=${n##*/}
  [ "$IF" = lo ] && continue
  ( if udhcpc -i "$IF" -O staticroutes -O mtu -n -t 6 -T 1 -p /run/run/udhcpc.$IF.pid \
          -s /usr/share/udhcpc/default.script >/dev/null 2>&1; then echo "$IF" >> /run/tinyvm/leases
    else echo "TINYVM DHCP $IF FAILED"; fi ) &
done
wait

# metadata service (EC2 + OpenStack paths); busybox wget -T segfaults, so use timeout(1)
MD=$(arg metadata_url); MD=${MD:-http://169.254.169.254}
get() { timeout 10 wget -q -O "$2" "$MD$1" 2>/dev/null && [ -s "$2" ]; }
M=/run/tinyvm
if [ -s $M/leases ] && [ "$(arg metadata)" != 0 ]; then
  if get /latest/meta-data/instance-id $M/instance-id; then
    echo "TINYVM METADATA instance-id=$(head -1 $M/instance-id)"
    if get /latest/meta-data/hostname $M/hostname; then
      H=$(head -1 $M/hostname); echo "TINYVM METADATA hostname=$H"
      hostname "${H%%.*}"
    fi
    if get /latest/meta-data/public-keys/0/openssh-key $M/key; then
      mkdir -p /root/.ssh; chmod 700 /root/.ssh
      cp $M/key /root/.ssh/authorized_keys; chmod 600 /root/.ssh/authorized_keys
      echo "TINYVM METADATA public-key=$(head -1 $M/key | cut -d' ' -f1,3)"
    fi
    if get /openstack/latest/user_data $M/user_data; then
      echo "TINYVM USERDATA $(head -1 $M/user_data)"
    fi
  else
    echo "TINYVM METADATA FAILED url=$MD"
  fi
fi

# disks now, then every second (volume attach/detach/extend)
/etc/tinyvm/diskscan
( while :; do sleep 1; /etc/tinyvm/diskscan; done ) </dev/null &

# ssh (dropbear), host key made on first boot and kept on the root disk. In the background: under
# TCG the kernel's random pool takes ~1.5 s more to initialise and both dropbearkey and dropbear
# block on it, so "TINYVM SSH" comes after "TINYVM READY".
if [ -x /usr/sbin/dropbear ]; then
  ( K=/etc/dropbear/dropbear_ed25519_host_key   # ed25519 only: RSA keygen takes seconds under TCG
    [ -s $K ] || dropbearkey -t ed25519 -f $K >/dev/null 2>&1
    if dropbear -r $K -p 22 -P /run/run/dropbear.pid 2>/dev/null; then
      echo "TINYVM SSH $(dropbearkey -y -f $K 2>/dev/null | sed -n 's/^Fingerprint: //p')"
    else
      echo "TINYVM SSH FAILED"
    fi ) </dev/null &
fi

sync
echo "TINYVM READY uptime=$(cut -d' ' -f1 /proc/uptime)"
T=$(arg linger)
[ -n "$T" ] && ( sleep "$T"; /etc/tinyvm/poweroff ) </dev/null &
exit 0
EOF
chmod 755 "$R"/etc/tinyvm/* "$R/usr/share/udhcpc/default.script"

# ---------------------------------------------------------------- whole disk
# 1 MiB gap (MBR + extlinux core) then one bootable Linux partition. extlinux 6.04 cannot read
# ext4 with 64bit/metadata_csum or 1 KiB blocks ("Loading /boot/vmlinuz failed: I/O error").
USED_MB=$(( $(du -sm "$R" | cut -f1) ))
SIZE_MB=$(( (USED_MB + 24 + 15) / 16 * 16 + 16 ))
RAW=$W/disk.raw
truncate -s "${SIZE_MB}M" "$RAW"
echo 'start=2048, type=83, bootable' | sfdisk -q --no-reread --no-tell-kernel "$RAW" >/dev/null
mkfs.ext4 -q -F -b 4096 -O ^64bit,^metadata_csum -m 0 -L tinyvm-root -U clear -E offset=1048576,root_owner=0:0 \
  -d "$R" "$RAW" "$(( (SIZE_MB - 1) * 1024 ))k" >/dev/null
dd if="$MBR" of="$RAW" bs=440 count=1 conv=notrunc status=none
MNT=$W/mnt; mkdir -p "$MNT"
mount -o loop,offset=1048576 "$RAW" "$MNT"
extlinux --install "$MNT/boot/extlinux" >/dev/null 2>&1 || die "extlinux --install failed"
umount "$MNT"; MNT=

# Not compressed by default: SeaBIOS/extlinux read the kernel in small pieces and each one
# inflates a whole compressed cluster, which costs about a second of boot under TCG (23 vs 16 MB).
qemu-img convert ${COMPRESS:+-c} -f raw -O qcow2 "$RAW" "$W/tinyvm.qcow2"
cp "/boot/vmlinuz-$KVER" "$W/tinyvm-vmlinuz"
chmod 644 "$W/tinyvm.qcow2" "$W/tinyvm-vmlinuz" "$W/initrd.gz"
mv -f "$W/tinyvm-vmlinuz" "$OUT/tinyvm-vmlinuz"
mv -f "$W/initrd.gz" "$OUT/tinyvm-initrd.gz"
mv -f "$W/tinyvm.qcow2" "$IMG"
echo "$STAMP" > "$OUT/.tinyvm.stamp"
echo "build-guest: $IMG ($(du -k "$IMG" | cut -f1) KiB, virtual ${SIZE_MB} MiB, kernel $KVER)"
