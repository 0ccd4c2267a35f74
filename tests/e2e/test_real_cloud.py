"""Real guests through the whole cloud (libvirt driver, the in-cloud network agent, the volume
service), with the openstack CLI only: a network and subnet, two tinyvm guests booted with
`server create --network --key-name --wait` (ports made and bound by compute, taps plugged by
the network agent, network-vif-plugged awaited before QEMU starts), their DHCP leases and
metadata, a 1 GiB volume hot-plugged into one guest and removed, a guest booted from a volume,
and a teardown that leaves no domain, namespace, bridge or tap of this cloud.

One test function on purpose: each TCG boot costs seconds on a 2-core CI machine.
Needs root, libvirtd (scripts/libvirt-up.sh), the guest image (tools/build-guest.sh). Run:
  TS_BUILD=build /usr/bin/python3 -m pytest -q tests/e2e/test_real_cloud.py
"""
import os
import shutil
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GUEST_DIR = os.environ.get("TS_GUEST_DIR", "/var/tmp/tinystack-guest")
URI = "qemu:///system"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (libvirtd, namespaces, bridges)")


def sh(cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def libvirt():
    up = os.path.join(ROOT, "scripts", "libvirt-up.sh")
    sh([up, "start"], timeout=120)  # idempotent
    return URI


@pytest.fixture(scope="module")
def guest_image():
    os.makedirs(GUEST_DIR, exist_ok=True)
    os.chmod(GUEST_DIR, 0o755)
    sh([os.path.join(ROOT, "tools", "build-guest.sh"), GUEST_DIR], timeout=300)
    return os.path.join(GUEST_DIR, "tinyvm.qcow2")


def console(cloud, server):
    p = cloud.run(["/usr/bin/openstack", "console", "log", "show", server], check=False)
    return p.stdout if p.returncode == 0 else ""


def wait_console(cloud, server, texts, timeout=240):
    end = time.time() + timeout
    out = ""
    while time.time() < end:
        out = console(cloud, server)
        if all(t in out for t in texts):
            return out
        time.sleep(1)
    raise AssertionError("no %r on the console of %s within %d s:\n%s" % (texts, server, timeout, out[-3000:]))


def wait_for(fn, timeout=60, what="condition"):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        last = fn()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError("timed out waiting for %s (last %r)" % (what, last))


def domain_state(uuid):
    p = sh(["virsh", "-c", URI, "domstate", uuid], check=False)
    return p.stdout.strip() if p.returncode == 0 else None


def links():
    return sh(["ip", "-o", "link", "show"]).stdout


def test_real_cloud(libvirt, guest_image, make_cloud):
    inst_dir = tempfile.mkdtemp(prefix="ts-real-inst-", dir="/var/tmp")
    os.chmod(inst_dir, 0o755)
    cloud = make_cloud(**{"compute.virt_driver": "libvirt", "compute.instances_path": inst_dir,
                          "compute.vif_plugging_timeout": "120"})
    os.chmod(cloud.data_dir, 0o755)
    for svc in ("compute", "network", "volume", "image"):
        if not cloud.service_up(svc):
            pytest.skip("%s service not available" % svc)
    servers, port_ids = [], []
    net = None
    try:
        cloud.openstack("image", "create", "--disk-format", "qcow2", "--container-format", "bare", "--file",
                        guest_image, "--public", "tinyvm")
        cloud.openstack("flavor", "create", "--ram", "256", "--disk", "1", "--vcpus", "1", "r1.tiny")
        cloud.run(["/usr/bin/openstack", "keypair", "create", "rk"])
        net = cloud.openstack("network", "create", "rnet")
        cloud.openstack("subnet", "create", "--network", "rnet", "--subnet-range", "10.99.0.0/24", "rsub")
        for name in ("vm1", "vm2"):
            s = cloud.openstack("server", "create", "--image", "tinyvm", "--flavor", "r1.tiny", "--network", "rnet",
                                "--key-name", "rk", "--wait", name, timeout=300)
            assert s["status"] == "ACTIVE", s
            servers.append(s["id"])
        ips = {}
        for sid, name in zip(servers, ("vm1", "vm2")):
            ports = cloud.openstack("port", "list", "--device-id", sid)
            assert len(ports) == 1
            port_ids.append(ports[0]["ID"])
            out = wait_console(cloud, name, ["TINYVM DHCP", "TINYVM METADATA instance-id="])
            show = cloud.openstack("server", "show", sid)
            ip = [a for a in str(show["addresses"]).replace("'", " ").replace("=", " ").split()
                  if a.startswith("10.99.0.")][0]
            ips[name] = ip
            assert "ip=%s" % ip in out, out[-2000:]
            assert "TINYVM METADATA public-key=" in out
            assert cloud.openstack("port", "show", ports[0]["ID"])["status"] == "ACTIVE"
            # the tap the agent made is what libvirt uses
            xml = sh(["virsh", "-c", URI, "dumpxml", sid]).stdout
            assert "tap%s" % ports[0]["ID"][:11] in xml
        assert ips["vm1"] != ips["vm2"]

        # a volume hot-plugged and removed
        vol = cloud.openstack("volume", "create", "--size", "1", "rvol")
        wait_for(lambda: cloud.openstack("volume", "show", vol["id"])["status"] == "available", what="volume")
        # QEMU runs as libvirt-qemu: it must be able to search the volume service's directories
        for top, dirs, _ in os.walk(os.path.join(cloud.data_dir, "volumes")):
            os.chmod(top, 0o755)
        cloud.openstack("server", "add", "volume", "vm1", vol["id"])
        assert cloud.openstack("volume", "show", vol["id"])["status"] == "in-use"
        wait_console(cloud, "vm1", ["TINYVM DISK vdb 1073741824"], timeout=60)
        cloud.openstack("server", "remove", "volume", "vm1", vol["id"])
        wait_console(cloud, "vm1", ["TINYVM DISK vdb removed"], timeout=60)
        wait_for(lambda: cloud.openstack("volume", "show", vol["id"])["status"] == "available", what="detached")
        cloud.openstack("volume", "delete", vol["id"])

        # boot from a volume made from the image
        s = cloud.openstack("server", "create", "--image", "tinyvm", "--boot-from-volume", "1", "--flavor",
                            "r1.tiny", "--network", "rnet", "--wait", "vm3", timeout=400)
        assert s["status"] == "ACTIVE", s
        servers.append(s["id"])
        port_ids += [p["ID"] for p in cloud.openstack("port", "list", "--device-id", s["id"])]
        wait_console(cloud, "vm3", ["TINYVM READY", "TINYVM DHCP"])
        root_vols = [v for v in cloud.openstack("volume", "list", "--long") if v["Status"] == "in-use"]
        assert len(root_vols) == 1

        for sid in servers:
            cloud.openstack("server", "delete", "--wait", sid, timeout=180)
            assert domain_state(sid) is None
        for v in cloud.openstack("volume", "list"):
            wait_for(lambda: cloud.openstack("volume", "show", v["ID"])["status"] == "available", what="bfv detach")
            cloud.openstack("volume", "delete", v["ID"])
        assert cloud.openstack("port", "list", "--device-owner", "compute:nova") == []
        cloud.openstack("subnet", "delete", "rsub")
        cloud.openstack("network", "delete", "rnet")
        wait_for(lambda: "brq%s" % net["id"][:11] not in links(), what="bridge removed")
    finally:
        for sid in servers:
            if domain_state(sid) is not None:
                sh(["virsh", "-c", URI, "destroy", sid], check=False)
                sh(["virsh", "-c", URI, "undefine", "--managed-save", sid], check=False)
        cloud.stop()
        shutil.rmtree(inst_dir, ignore_errors=True)
    # nothing of this cloud is left on the host
    for sid in servers:
        assert domain_state(sid) is None
    left = links()
    for pid in port_ids:
        assert "tap%s" % pid[:11] not in left
    if net:
        assert "brq%s" % net["id"][:11] not in left
        assert "qdhcp-%s" % net["id"] not in sh(["ip", "netns", "list"]).stdout
