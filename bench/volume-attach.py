#!/usr/bin/python3
"""Issue #7 benchmark: attach and detach latency of a volume on a running guest (target:
attach < 0.5 s).

A private cloud (libvirt driver, file volume backend, tinyvm image) on loopback ports boots one
guest without a network, then attaches and detaches a 1 GiB volume ROUNDS times through the
compute API (POST/DELETE /servers/{id}/os-volume_attachments, as `openstack server add/remove
volume` does), timing from the request to
  - the volume's status in the block storage API (in-use / available), polled every 10 ms,
  - the guest's console line "TINYVM DISK vdb <size>" / "TINYVM DISK vdb removed" (the guest
    noticed the disk; tinyvm scans its disks once a second, which adds 0-1 s).
Needs root, libvirtd (scripts/libvirt-up.sh start) and the guest image (tools/build-guest.sh).
Usage: TS_BUILD=build bench/volume-attach.py [ROUNDS]   (the table is printed and written into
bench/results/volume.md as its section; TS_BENCH_WRITE=0 only prints)
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import conftest  # noqa: E402  (the e2e harness's Cloud class)

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
GUEST_DIR = os.environ.get("TS_GUEST_DIR", "/var/tmp/tinystack-guest")


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def until(fn, t0, what, timeout=120, step=0.01):
    end = time.time() + timeout
    while time.time() < end:
        if fn():
            return time.time() - t0
        time.sleep(step)
    raise RuntimeError("timed out waiting for %s" % what)


def console_count(path, marker):
    try:
        with open(path, errors="replace") as f:
            return f.read().count(marker)
    except FileNotFoundError:
        return 0


def main():
    if os.geteuid() != 0:
        sys.exit("volume-attach.py: needs root (libvirtd)")
    sh([os.path.join(ROOT, "scripts", "libvirt-up.sh"), "start"], timeout=120)
    os.makedirs(GUEST_DIR, exist_ok=True)
    sh([os.path.join(ROOT, "tools", "build-guest.sh"), GUEST_DIR], timeout=300)
    work = tempfile.mkdtemp(prefix="ts-bench-attach-", dir="/var/tmp")
    os.chmod(work, 0o755)
    inst_dir = os.path.join(work, "instances")
    os.makedirs(inst_dir)
    os.chmod(inst_dir, 0o755)
    cloud = conftest.Cloud(os.path.join(work, "data"), {
        "compute.virt_driver": "libvirt", "compute.instances_path": inst_dir})
    cloud.init()
    os.chmod(cloud.data_dir, 0o755)
    cloud.start()
    sid = None
    try:
        img = cloud.openstack("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                              "--file", os.path.join(GUEST_DIR, "tinyvm.qcow2"), "--public", "tinyvm")["id"]
        flv = cloud.openstack("flavor", "create", "--ram", "256", "--disk", "1", "--vcpus", "1", "b1.tiny")["id"]
        token = cloud.token()
        hv = {"OpenStack-API-Version": "compute 2.37"}
        r = cloud.request("POST", "compute", "/v2.1/servers", token=token, headers=hv, json={
            "server": {"name": "attach", "imageRef": img, "flavorRef": flv, "networks": "none"}})
        r.raise_for_status()
        sid = r.json()["server"]["id"]
        log = os.path.join(inst_dir, sid, "console.log")
        until(lambda: "TINYVM READY" in open(log, errors="replace").read() if os.path.exists(log) else False,
              time.time(), "the guest's READY line", timeout=240, step=0.2)
        proj = cloud.request("GET", "identity", "/v3/auth/tokens", token=token,
                             headers={"X-Subject-Token": token}).json()["token"]["project"]["id"]
        vol = cloud.request("POST", "volume", "/v3/%s/volumes" % proj, token=token,
                            json={"volume": {"size": 1, "name": "bv"}}).json()["volume"]["id"]

        def vstatus():
            return cloud.request("GET", "volume", "/v3/%s/volumes/%s" % (proj, vol), token=token).json()["volume"]["status"]
        until(lambda: vstatus() == "available", time.time(), "the volume")
        rows = []
        for _ in range(ROUNDS):
            seen = console_count(log, "TINYVM DISK vdb 1073741824")
            t0 = time.time()
            r = cloud.request("POST", "compute", "/v2.1/servers/%s/os-volume_attachments" % sid, token=token,
                              json={"volumeAttachment": {"volumeId": vol}})
            r.raise_for_status()
            api = time.time() - t0
            inuse = until(lambda: vstatus() == "in-use", t0, "in-use")
            guest = until(lambda: console_count(log, "TINYVM DISK vdb 1073741824") > seen, t0, "the guest's disk line")
            gone = console_count(log, "TINYVM DISK vdb removed")
            t1 = time.time()
            cloud.request("DELETE", "compute", "/v2.1/servers/%s/os-volume_attachments/%s" % (sid, vol),
                          token=token).raise_for_status()
            avail = until(lambda: vstatus() == "available", t1, "available")
            guest_d = until(lambda: console_count(log, "TINYVM DISK vdb removed") > gone, t1, "the guest's removal line")
            rows.append((api, inuse, guest, avail, guest_d))
        load = open("/proc/loadavg").read().split()[:3]
        out = ["## Attach and detach latency on a running guest (bench/volume-attach.py)", "",
               "%s, %d rounds, libvirt driver (TCG), tinyvm, file backend, 1 GiB volume; load average at the end %s. "
               "Times from the compute API request; the guest scans its disks once a second (0-1 s of the guest "
               "columns). Target: attach < 0.5 s."
               % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), ROUNDS, " ".join(load)), "",
               "| round | attach: POST answered | volume in-use | guest sees the disk | detach: volume available "
               "| guest sees it gone |", "|---|---:|---:|---:|---:|---:|"]
        for i, r in enumerate(rows, 1):
            out.append("| %d | %s |" % (i, " | ".join("%.3f s" % x for x in r)))
        n = len(rows)
        out.append("| mean | %s |" % " | ".join("%.3f s" % (sum(r[k] for r in rows) / n) for k in range(5)))
        text = "\n".join(out)
        print(text)
        if os.environ.get("TS_BENCH_WRITE", "1") == "1":
            subprocess.run([sys.executable, os.path.join(ROOT, "bench", "results-section.py"),
                            os.path.join(ROOT, "bench", "results", "volume.md"), "volume-attach.py"],
                           input=text, text=True, check=True)
    finally:
        if sid:
            cloud.request("DELETE", "compute", "/v2.1/servers/" + sid, token=cloud.token())
            end = time.time() + 60
            while time.time() < end and cloud.request("GET", "compute", "/v2.1/servers/" + sid,
                                                      token=cloud.token()).status_code != 404:
                time.sleep(0.2)
        cloud.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
