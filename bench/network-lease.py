#!/usr/bin/python3
"""Issue #6 benchmark: the time from `server create` to the guest's DHCP lease, against the
time the same guest takes to boot without a network (target: on the network within 1 s of the
no-network boot).

A private cloud (libvirt driver, the in-cloud network agent, tinyvm image) on loopback ports;
the tenant network lives only in the bridge and qdhcp- namespace the agent makes. Each round
boots one guest with `--nic none` and one with a port on the network, through the compute API
(POST /servers), and timestamps the first appearance of the guest's console lines in the
instance's console.log (polled every 20 ms):
  TINYVM ROOTFS  userspace is up (before any DHCP)
  TINYVM DHCP    the lease (networked guest only)
Needs root, libvirtd (scripts/libvirt-up.sh start) and the guest image (tools/build-guest.sh).
Usage: TS_BUILD=build bench/network-lease.py [ROUNDS]   (the table is printed and written into
bench/results/network.md as its section; TS_BENCH_WRITE=0 only prints)
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import conftest  # noqa: E402  (the e2e harness's Cloud class: init, start, stop, CLI helpers)

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
GUEST_DIR = os.environ.get("TS_GUEST_DIR", "/var/tmp/tinystack-guest")


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def wait_line(path, marker, t0, timeout=180):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with open(path, errors="replace") as f:
                if marker in f.read():
                    return time.time() - t0
        except FileNotFoundError:
            pass
        time.sleep(0.02)
    tail = open(path, errors="replace").read()[-2000:] if os.path.exists(path) else "(no console log)"
    raise RuntimeError("no %r in %s within %d s:\n%s" % (marker, path, timeout, tail))


def boot(cloud, token, inst_dir, name, image, flavor, net):
    body = {"server": {"name": name, "imageRef": image, "flavorRef": flavor,
                       "networks": [{"uuid": net}] if net else "none"}}
    t0 = time.time()
    r = cloud.request("POST", "compute", "/v2.1/servers", token=token, json=body,
                      headers={"OpenStack-API-Version": "compute 2.37"})
    r.raise_for_status()
    sid = r.json()["server"]["id"]
    log = os.path.join(inst_dir, sid, "console.log")
    try:  # the guest is deleted whatever happens: guests outlive `serve` by design
        res = {"rootfs": wait_line(log, "TINYVM ROOTFS", t0)}
        if net:
            res["lease"] = wait_line(log, " ip=", t0)
    finally:
        cloud.request("DELETE", "compute", "/v2.1/servers/" + sid, token=token)
    end = time.time() + 60
    while time.time() < end and cloud.request("GET", "compute", "/v2.1/servers/" + sid,
                                              token=token).status_code != 404:
        time.sleep(0.2)
    return res


def main():
    if os.geteuid() != 0:
        sys.exit("network-lease.py: needs root (libvirtd, namespaces, bridges)")
    sh([os.path.join(ROOT, "scripts", "libvirt-up.sh"), "start"], timeout=120)
    os.makedirs(GUEST_DIR, exist_ok=True)
    sh([os.path.join(ROOT, "tools", "build-guest.sh"), GUEST_DIR], timeout=300)
    work = tempfile.mkdtemp(prefix="ts-bench-lease-", dir="/var/tmp")
    os.chmod(work, 0o755)
    inst_dir = os.path.join(work, "instances")
    os.makedirs(inst_dir)
    os.chmod(inst_dir, 0o755)
    cloud = conftest.Cloud(os.path.join(work, "data"), {
        "compute.virt_driver": "libvirt", "compute.instances_path": inst_dir,
        "compute.vif_plugging_timeout": "120", "network.agent_cleanup_on_stop": "true"})
    cloud.init()
    cloud.start()
    try:
        img = cloud.openstack("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                              "--file", os.path.join(GUEST_DIR, "tinyvm.qcow2"), "--public", "tinyvm")["id"]
        flv = cloud.openstack("flavor", "create", "--ram", "256", "--disk", "1", "--vcpus", "1", "b1.tiny")["id"]
        net = cloud.openstack("network", "create", "bnet")["id"]
        cloud.openstack("subnet", "create", "--network", "bnet", "--subnet-range", "10.98.0.0/24", "bsub")
        token = cloud.token()
        boot(cloud, token, inst_dir, "warm", img, flv, None)  # image into the compute cache
        rows = []
        for i in range(ROUNDS):
            a = boot(cloud, token, inst_dir, "none-%d" % i, img, flv, None)
            b = boot(cloud, token, inst_dir, "net-%d" % i, img, flv, net)
            rows.append((a["rootfs"], b["rootfs"], b["lease"]))
        load = open("/proc/loadavg").read().split()[:3]
        out = ["## Time from `server create` to the guest's DHCP lease (bench/network-lease.py)", "",
               "%s, %d rounds, libvirt driver (TCG), tinyvm, one tenant network; load average at the end %s. "
               "Each round boots a guest with `--nic none`, then one on the network; times from the POST to the "
               "first appearance of the console line. Target: on the network within 1 s of the no-network boot."
               % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), ROUNDS, " ".join(load)), "",
               "| round | no network: create -> userspace | on the network: create -> userspace | "
               "create -> DHCP lease | lease after its own userspace | lease - no-network boot |",
               "|---|---:|---:|---:|---:|---:|"]
        for i, (a, b, c) in enumerate(rows, 1):
            out.append("| %d | %.2f s | %.2f s | %.2f s | %.2f s | %+.2f s |" % (i, a, b, c, c - b, c - a))
        n = len(rows)
        ma, mb, mc = (sum(r[k] for r in rows) / n for k in range(3))
        out.append("| mean | %.2f s | %.2f s | %.2f s | %.2f s | %+.2f s |" % (ma, mb, mc, mc - mb, mc - ma))
        text = "\n".join(out)
        print(text)
        if os.environ.get("TS_BENCH_WRITE", "1") == "1":
            subprocess.run([sys.executable, os.path.join(ROOT, "bench", "results-section.py"),
                            os.path.join(ROOT, "bench", "results", "network.md"), "network-lease.py"],
                           input=text, text=True, check=True)
    finally:
        cloud.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
