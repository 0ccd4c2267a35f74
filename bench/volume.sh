#!/usr/bin/env bash
# bench/volume.sh: tinystack's block storage service with the file backend: volume creates and
# deletes per second (API to "available"/gone, 8 client threads), the same for the LVM backend
# (as root with lvm2: a volume group on a loop device over a sparse file that the script makes
# and removes; N_LVM volumes), detail list of 1,000 volumes
# (req/s with wrk), create-from-image MB/s next to a plain `qemu-img convert` of the same image,
# cold start of `tinystack serve` (identity + image + volume) and the server's RSS.
# Writes its section of bench/results/volume.md (between its markers; the rest of the file
# stays). Run by hand only.
#
# Usage: bench/volume.sh   (TS_BUILD=build by default; N=200 creates; N_LVM=100; LIST=1000; IMAGE_MB=1024)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${TS_BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
TS=$BUILD/tinystack
N=${N:-200}
N_LVM=${N_LVM:-100}
LIST=${LIST:-1000}
IMAGE_MB=${IMAGE_MB:-1024}
LIST_SECONDS=${LIST_SECONDS:-10}
OUT=$ROOT/bench/results/volume.md
[ -x "$TS" ] || { echo "bench/volume.sh: build tinystack first ($TS missing)" >&2; exit 2; }
command -v wrk >/dev/null || { echo "bench/volume.sh: needs wrk (apt-get install wrk)" >&2; exit 2; }

W=$(mktemp -d /var/tmp/ts-bench-volume.XXXXXX)
TS_PID=
VG= LOOP=
lvmc() { # lvm with udev off, only our PV scanned, no device-mapper where the kernel has none
  local dm=(); grep -q device-mapper /proc/misc || dm=(--driverloaded n)
  LVM_SUPPRESS_FD_WARNINGS=1 /usr/sbin/lvm "$1" --config "activation{udev_sync=0 udev_rules=0} backup{archive=0} devices{obtain_device_list_from_udev=0 global_filter=[\"a|^$LOOP\$|\",\"r|.*|\"]}" "${dm[@]}" "${@:2}"
}
cleanup() {
  [ -n "$TS_PID" ] && kill "$TS_PID" 2>/dev/null && wait "$TS_PID" 2>/dev/null || true
  if [ -n "$LOOP" ]; then
    for d in $(losetup -j "$W/vg.img" -O NAME -n); do [ "$d" = "$LOOP" ] || losetup -d "$d"; done
    rm -rf "/dev/$VG"
    lvmc vgremove -q -f "$VG" >/dev/null 2>&1; lvmc pvremove -q -y "$LOOP" >/dev/null 2>&1
    rm -f "/etc/lvm/backup/$VG" # (seen left behind after some runs)
    losetup -d "$LOOP"
  fi
  [ -n "${KEEP:-}" ] && echo "kept $W" >&2 || rm -rf "$W"
}
trap cleanup EXIT

port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ID_PORT=$(port); IMG_PORT=$(port); VOL_PORT=$(port)
LVM_SETS=()
if [ "$(id -u)" = 0 ] && [ -x /usr/sbin/lvm ] && [ "$N_LVM" -gt 0 ]; then
  truncate -s $((N_LVM + 8))G "$W/vg.img"
  LOOP=$(losetup -f --show "$W/vg.img")
  VG=tsbench$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
  lvmc pvcreate -q -y "$LOOP" >/dev/null && lvmc vgcreate -q "$VG" "$LOOP" >/dev/null
  if grep -q device-mapper /proc/misc; then lvmc lvcreate -q -T -L $((N_LVM + 4))G "$VG/$VG-pool" >/dev/null; fi
  LVM_SETS=(--set volume.enabled_backends=file,lvm --set volume:lvm.driver=lvm --set "volume:lvm.volume_group=$VG")
else
  N_LVM=0
fi
"$TS" init --data "$W/ts" --admin-password benchpw --set identity.port=$ID_PORT --set image.port=$IMG_PORT \
  --set volume.port=$VOL_PORT --set identity.password_hash_rounds=4 \
  --set DEFAULT.enabled_services=identity,image,volume "${LVM_SETS[@]}" >/dev/null
T0=$(date +%s.%N)
"$TS" serve --data "$W/ts" > "$W/ts.log" 2>&1 &
TS_PID=$!
for _ in $(seq 2000); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$VOL_PORT/")" = 300 ] && break
  sleep 0.005
done
T1=$(date +%s.%N)
COLD_MS=$(echo "($T1 - $T0) * 1000" | bc -l)

export BENCH_W=$W ID_PORT IMG_PORT VOL_PORT N N_LVM LIST IMAGE_MB
/usr/bin/python3 - <<'PY' > "$W/results"
import concurrent.futures, json, os, subprocess, time, requests
W = os.environ["BENCH_W"]
idu = "http://127.0.0.1:%s" % os.environ["ID_PORT"]
imgu = "http://127.0.0.1:%s" % os.environ["IMG_PORT"]
volu = "http://127.0.0.1:%s" % os.environ["VOL_PORT"]
N, LIST, MB = int(os.environ["N"]), int(os.environ["LIST"]), int(os.environ["IMAGE_MB"])
N_LVM = int(os.environ["N_LVM"])
body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"name": "Default"},
        "password": "benchpw"}}}, "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}
r = requests.post(idu + "/v3/auth/tokens", json=body)
tok, pid = r.headers["X-Subject-Token"], r.json()["token"]["project"]["id"]
open(W + "/token", "w").write(tok)
s = requests.Session()
s.headers["X-Auth-Token"] = tok
base = "%s/v3/%s" % (volu, pid)
s.put(base + "/os-quota-sets/" + pid, json={"quota_set": {"volumes": -1, "gigabytes": -1}}).raise_for_status()

def status_all(ids, gone=False):
    while True:
        vols = {v["id"]: v["status"] for v in s.get(base + "/volumes/detail?limit=1000").json()["volumes"]}
        if gone and not any(i in vols for i in ids):
            return
        if not gone and all(vols.get(i) == "available" for i in ids):
            return
        time.sleep(0.01)

# one type per backend (volume_backend_name), so each run lands where it should
for bk in ("file", "lvm") if N_LVM else ("file",):
    r = s.post(base + "/types", json={"volume_type": {"name": "b-" + bk, "extra_specs": {"volume_backend_name": bk}}})
    r.raise_for_status()
vtype = "b-file"

def create(i):
    r = requests.post(base + "/volumes", json={"volume": {"size": 1, "name": "b%d" % i, "volume_type": vtype}},
                      headers={"X-Auth-Token": tok})
    assert r.status_code == 202, r.text
    return r.json()["volume"]["id"]

def create_delete(n):
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        ids = list(ex.map(create, range(n)))
    status_all(ids)
    c = n / (time.time() - t0)
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda i: requests.delete(base + "/volumes/" + i, headers={"X-Auth-Token": tok}).raise_for_status(), ids))
    status_all(ids, gone=True)
    return c, n / (time.time() - t0)

create_s, delete_s = create_delete(N)
lvm_create_s = lvm_delete_s = 0.0
if N_LVM:
    vtype = "b-lvm"
    lvm_create_s, lvm_delete_s = create_delete(N_LVM)
    vtype = "b-file"
with concurrent.futures.ThreadPoolExecutor(8) as ex:
    ids = list(ex.map(create, range(LIST)))
status_all(ids)
# image: IMAGE_MB of random data
img = W + "/image.raw"
with open(img, "wb") as f:
    for _ in range(MB):
        f.write(os.urandom(1 << 20))
r = s.post(imgu + "/v2/images", json={"name": "bench", "disk_format": "raw", "container_format": "bare"})
iid = r.json()["id"]
with open(img, "rb") as f:
    s.put(imgu + "/v2/images/%s/file" % iid, data=f, headers={"Content-Type": "application/octet-stream"}).raise_for_status()
size_gb = max(1, (MB + 1023) // 1024)
t0 = time.time()
r = s.post(base + "/volumes", json={"volume": {"size": size_gb, "imageRef": iid}})
vid = r.json()["volume"]["id"]
while True:
    st = s.get(base + "/volumes/" + vid).json()["volume"]["status"]
    if st in ("available", "error"):
        break
    time.sleep(0.02)
assert st == "available"
from_image = MB / (time.time() - t0)
subprocess.run(["sync"])
t0 = time.time()
subprocess.run(["qemu-img", "convert", "-O", "raw", img, W + "/conv.raw"], check=True)
subprocess.run(["sync"])
qemu = MB / (time.time() - t0)
os.unlink(W + "/conv.raw")
print(json.dumps({"create_s": create_s, "delete_s": delete_s, "from_image": from_image, "qemu": qemu, "pid": pid,
                  "lvm_create_s": lvm_create_s, "lvm_delete_s": lvm_delete_s}))
PY
read -r CREATE DELETE FROMIMG QEMU PID LCREATE LDELETE < <(/usr/bin/python3 -c '
import json,sys; d=json.load(open(sys.argv[1])); print("%.1f %.1f %.1f %.1f %s %.1f %.1f" % (d["create_s"], d["delete_s"], d["from_image"], d["qemu"], d["pid"], d["lvm_create_s"], d["lvm_delete_s"]))' "$W/results")
LVM_KIND=thick; grep -q device-mapper /proc/misc && LVM_KIND=thin
LVM_ROWS=""
[ "$N_LVM" -gt 0 ] && LVM_ROWS="| LVM backend ($LVM_KIND LVs), create 1 GiB volumes to \"available\" ($N_LVM, 8 client threads) | $LCREATE volumes/s |
| LVM backend, delete them to gone | $LDELETE volumes/s |"
TOKEN=$(cat "$W/token")
RPS=$(wrk -t2 -c4 -d${LIST_SECONDS}s -H "X-Auth-Token: $TOKEN" "http://127.0.0.1:$VOL_PORT/v3/$PID/volumes/detail?limit=1000" |
      sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p')
RSS=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/$TS_PID/status)
HWM=$(awk '/VmHWM/ {printf "%.1f", $2/1024}' /proc/$TS_PID/status)

mkdir -p "$(dirname "$OUT")"
cat > "$W/section.md" <<EOF
# Block storage service: tinystack (file backend)

Measured by \`bench/volume.sh\` on $(date -u +%Y-%m-%d) ($(nproc) CPUs, $(uname -r), load average at the end:
$(cut -d' ' -f1-3 /proc/loadavg)); one \`tinystack serve\`
with identity, image and volume on loopback, SQLite, the file backend (sparse raw files) on the
same disk as the data dir. Side by side with Debian's cinder-api: bench/volume-cinder.sh (its own
section of this file).

| metric | tinystack |
|---|---:|
| create 1 GiB empty volumes, POST to all "available" ($N, 8 client threads) | $CREATE volumes/s |
| delete them, DELETE to all gone | $DELETE volumes/s |
$LVM_ROWS
| \`GET /volumes/detail?limit=1000\` with $LIST volumes (wrk -t2 -c4) | $RPS req/s |
| create from a ${IMAGE_MB} MiB random raw image (download + qemu-img convert + rename) | $FROMIMG MB/s |
| plain \`qemu-img convert -O raw\` of the same file, for comparison | $QEMU MB/s |
| cold start: \`tinystack serve\` to the volume API answering | $(printf '%.0f' "$COLD_MS") ms |
| RSS of the server after the runs (peak) | $RSS MiB ($HWM MiB) |
EOF
# only this script's section (between its markers) is replaced; volume-cinder.sh's section and
# hand-written notes outside the markers stay
/usr/bin/python3 "$ROOT/bench/results-section.py" "$OUT" volume.sh --top < "$W/section.md"
cat "$W/section.md"
