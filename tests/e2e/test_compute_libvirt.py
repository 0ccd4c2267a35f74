"""A real guest through the whole cloud with the libvirt virt driver: the tinyvm image is
uploaded with `openstack image create`, booted with `openstack server create --nic none --wait`
(compute-api -> scheduler -> agent -> libvirt -> QEMU/TCG), its serial console read with
`openstack console log show`, then stopped, started, rebooted (soft and hard), paused,
suspended, snapshotted (the snapshot boots as a second server) and deleted, checking libvirt's
view at each step.

Needs root, libvirtd (started with scripts/libvirt-up.sh if it is not running, and stopped
afterwards only then), the guest image inputs (tools/build-guest.sh). Run:
  TS_BUILD=build /usr/bin/python3 -m pytest -q tests/e2e/test_compute_libvirt.py
"""
import glob
import os
import shutil
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GUEST_DIR = os.environ.get("TS_GUEST_DIR", "/var/tmp/tinystack-guest")
URI = "qemu:///system"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (libvirtd, qemu:///system)")


def sh(cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def libvirt():
    up = os.path.join(ROOT, "scripts", "libvirt-up.sh")
    was_up = sh([up, "status"], check=False).returncode == 0
    if not was_up:
        sh([up, "start"], timeout=120)
    yield URI
    if not was_up:
        sh([up, "stop"], check=False)


@pytest.fixture(scope="module")
def guest_image():
    os.makedirs(GUEST_DIR, exist_ok=True)
    os.chmod(GUEST_DIR, 0o755)
    sh([os.path.join(ROOT, "tools", "build-guest.sh"), GUEST_DIR], timeout=300)
    return os.path.join(GUEST_DIR, "tinyvm.qcow2")


@pytest.fixture
def instances_dir():
    # QEMU runs as libvirt-qemu: every directory above the instance files must be 0755
    d = tempfile.mkdtemp(prefix="ts-e2e-inst-", dir="/var/tmp")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def wait_status(cloud, server, want, timeout=120):
    end = time.time() + timeout
    s = None
    while time.time() < end:
        s = cloud.openstack("server", "show", server)
        if s["status"] == want:
            return s
        assert s["status"] != "ERROR", s
        time.sleep(0.5)
    raise AssertionError("server %s is %s, not %s, after %d s" % (server, s and s["status"], want, timeout))


def wait_console(cloud, server, text, timeout=240):
    end = time.time() + timeout
    out = ""
    while time.time() < end:
        # (cloud.openstack would add "-f json", which `console log show` does not take)
        p = cloud.run(["/usr/bin/openstack", "console", "log", "show", server], check=False)
        out = p.stdout
        if p.returncode == 0 and text in out:
            return out
        time.sleep(1)
    raise AssertionError("no %r on the console of %s within %d s:\n%s" % (text, server, timeout, out[-3000:]))


def domain_state(uuid):
    p = sh(["virsh", "-c", URI, "domstate", uuid], check=False)
    return p.stdout.strip() if p.returncode == 0 else None


def test_server_boots_with_libvirt(libvirt, guest_image, instances_dir, make_cloud):
    cloud = make_cloud(**{"compute.virt_driver": "libvirt", "compute.run_agent": "true",
                          "compute.instances_path": instances_dir})
    # the image cache may live under the data dir: let libvirt-qemu traverse it
    os.chmod(cloud.data_dir, 0o755)
    if not cloud.service_up("compute"):
        pytest.skip("this build serves no compute API")
    server_id = None
    made = []  # every server id, for cleanup if the test fails half-way
    try:
        cloud.openstack("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                        "--file", guest_image, "--public", "tinyvm")
        cloud.openstack("flavor", "create", "--ram", "256", "--disk", "1", "--vcpus", "1", "t1.tiny")
        # `--nic none` needs microversion 2.37 (the CLI sends nics="none" only from there)
        s = cloud.openstack("--os-compute-api-version", "2.37", "server", "create", "--image", "tinyvm",
                            "--flavor", "t1.tiny", "--nic", "none", "--wait", "-f", "json", "vm1", timeout=300)
        server_id = s["id"]
        made.append(server_id)
        assert s["status"] == "ACTIVE", s
        wait_console(cloud, "vm1", "TINYVM READY")
        assert domain_state(server_id) == "running"
        xml = sh(["virsh", "-c", URI, "dumpxml", server_id]).stdout
        assert "<domain type='qemu'" in xml
        assert "<name>instance-" in xml

        cloud.openstack("server", "stop", "vm1")
        wait_status(cloud, "vm1", "SHUTOFF")
        assert domain_state(server_id) == "shut off"
        cloud.openstack("server", "start", "vm1")
        wait_status(cloud, "vm1", "ACTIVE")
        wait_console(cloud, "vm1", "TINYVM READY")

        # soft reboot (ACPI shutdown + start: the console log starts over) and hard reboot
        cloud.openstack("server", "reboot", "--soft", "vm1")
        wait_status(cloud, "vm1", "ACTIVE", timeout=180)
        wait_console(cloud, "vm1", "TINYVM READY")
        cloud.openstack("server", "reboot", "--hard", "vm1")
        wait_status(cloud, "vm1", "ACTIVE", timeout=180)
        wait_console(cloud, "vm1", "TINYVM READY")

        cloud.openstack("server", "pause", "vm1")
        wait_status(cloud, "vm1", "PAUSED")
        assert domain_state(server_id) == "paused"
        cloud.openstack("server", "unpause", "vm1")
        wait_status(cloud, "vm1", "ACTIVE")
        cloud.openstack("server", "suspend", "vm1")
        wait_status(cloud, "vm1", "SUSPENDED", timeout=180)
        assert domain_state(server_id) == "shut off"  # managed save
        cloud.openstack("server", "resume", "vm1")
        wait_status(cloud, "vm1", "ACTIVE", timeout=180)
        assert domain_state(server_id) == "running"

        # snapshot -> a new image that boots
        img = cloud.openstack("server", "image", "create", "--name", "vm1-snap", "--wait", "vm1", timeout=300)
        assert img["status"] == "active", img
        wait_status(cloud, "vm1", "ACTIVE")
        s2 = cloud.openstack("--os-compute-api-version", "2.37", "server", "create", "--image", "vm1-snap",
                             "--flavor", "t1.tiny", "--nic", "none", "--wait", "-f", "json", "vm2", timeout=300)
        made.append(s2["id"])
        assert s2["status"] == "ACTIVE", s2
        wait_console(cloud, "vm2", "TINYVM READY")
        cloud.openstack("server", "delete", "--wait", "vm2", timeout=180)
        assert domain_state(s2["id"]) is None

        cloud.openstack("server", "delete", "--wait", "vm1", timeout=180)
        assert domain_state(server_id) is None
        # no instance directory left, wherever the agent keeps them
        left = glob.glob(os.path.join(instances_dir, server_id)) + \
            glob.glob(os.path.join(cloud.data_dir, "**", server_id), recursive=True)
        assert not left, left
    finally:
        for sid in made:
            if domain_state(sid) is not None:
                sh(["virsh", "-c", URI, "destroy", sid], check=False)
                sh(["virsh", "-c", URI, "undefine", "--managed-save", sid], check=False)


def dominfo(uuid):
    """(vCPUs, max memory KiB) of the domain as libvirt has it defined."""
    out = sh(["virsh", "-c", URI, "dominfo", uuid]).stdout
    info = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return int(info["CPU(s)"].strip()), int(info["Max memory"].split()[0])


def disk_size(path):
    import json
    return json.loads(sh(["qemu-img", "info", "-U", "--output", "json", path]).stdout)["virtual-size"]


def test_server_resize_with_libvirt(libvirt, guest_image, instances_dir, make_cloud):
    """Resize as Nova's libvirt driver does it, on one host (allow_resize_to_same_host): the
    guest is powered off, its overlay grown with qemu-img, the domain redefined with the new
    vCPUs/memory and started (VERIFY_RESIZE); confirm drops the old disk kept meanwhile,
    revert brings back the old disk and definition; a smaller disk is refused and the server
    stays as it was. Every step is an instance action."""
    cloud = make_cloud(**{"compute.virt_driver": "libvirt", "compute.run_agent": "true",
                          "compute.instances_path": instances_dir})
    os.chmod(cloud.data_dir, 0o755)
    if not cloud.service_up("compute"):
        pytest.skip("this build serves no compute API")
    sid = None
    try:
        cloud.openstack("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                        "--file", guest_image, "--public", "tinyvm")
        cloud.openstack("flavor", "create", "--ram", "256", "--disk", "1", "--vcpus", "1", "r1.small")
        cloud.openstack("flavor", "create", "--ram", "384", "--disk", "2", "--vcpus", "2", "r1.medium")
        cloud.openstack("flavor", "create", "--ram", "512", "--disk", "3", "--vcpus", "3", "r1.large")
        s = cloud.openstack("--os-compute-api-version", "2.37", "server", "create", "--image", "tinyvm",
                            "--flavor", "r1.small", "--nic", "none", "--wait", "-f", "json", "rz1", timeout=300)
        sid = s["id"]
        assert s["status"] == "ACTIVE", s
        wait_console(cloud, "rz1", "TINYVM READY")
        disk = os.path.join(instances_dir, sid, "disk")
        backup = os.path.join(instances_dir, sid + "_resize")
        assert dominfo(sid) == (1, 256 * 1024)
        assert disk_size(disk) == 1 << 30

        # grow: VERIFY_RESIZE with the new sizes on the running guest, old disk kept
        cloud.openstack("server", "resize", "--flavor", "r1.medium", "--wait", "rz1", timeout=300)
        s = wait_status(cloud, "rz1", "VERIFY_RESIZE")
        assert s["flavor"].startswith("r1.medium") if isinstance(s["flavor"], str) else \
            s["flavor"]["original_name"] == "r1.medium", s["flavor"]
        assert domain_state(sid) == "running"
        assert dominfo(sid) == (2, 384 * 1024)
        assert disk_size(disk) == 2 << 30
        assert disk_size(os.path.join(backup, "disk")) == 1 << 30
        wait_console(cloud, "rz1", "TINYVM READY")
        cloud.openstack("server", "resize", "confirm", "rz1")
        wait_status(cloud, "rz1", "ACTIVE")
        end = time.time() + 30
        while os.path.exists(backup) and time.time() < end:
            time.sleep(0.5)
        assert not os.path.exists(backup)
        assert dominfo(sid) == (2, 384 * 1024)

        # grow again, then revert: old disk, old definition, ACTIVE
        cloud.openstack("server", "resize", "--flavor", "r1.large", "--wait", "rz1", timeout=300)
        wait_status(cloud, "rz1", "VERIFY_RESIZE")
        assert dominfo(sid) == (3, 512 * 1024)
        assert disk_size(disk) == 3 << 30
        cloud.openstack("server", "resize", "revert", "rz1")
        s = wait_status(cloud, "rz1", "ACTIVE", timeout=180)
        assert dominfo(sid) == (2, 384 * 1024)
        assert disk_size(disk) == 2 << 30
        assert not os.path.exists(backup)
        assert domain_state(sid) == "running"
        wait_console(cloud, "rz1", "TINYVM READY")
        flavor = s["flavor"]
        assert (flavor.startswith("r1.medium") if isinstance(flavor, str)
                else flavor["original_name"] == "r1.medium"), flavor

        # shrink is refused by the driver before it touches the guest: back to ACTIVE
        cloud.openstack("server", "resize", "--flavor", "r1.small", "rz1")
        end = time.time() + 120
        while time.time() < end:
            s = cloud.openstack("server", "show", "rz1")
            if s["status"] == "ACTIVE" and not s.get("OS-EXT-STS:task_state"):
                break
            time.sleep(0.5)
        assert s["status"] == "ACTIVE", s
        assert dominfo(sid) == (2, 384 * 1024)
        assert disk_size(disk) == 2 << 30
        assert domain_state(sid) == "running"

        # the instance actions, newest first, with the failed resize's event
        acts = cloud.openstack("server", "event", "list", "rz1")
        names = [a["Action"] for a in acts]
        assert names[:6] == ["resize", "revertResize", "resize", "confirmResize", "resize", "create"], names
        r = cloud.request("GET", "compute", "/v2.1/servers/%s/os-instance-actions/%s" % (sid, acts[0]["Request ID"]),
                          headers={"OpenStack-API-Version": "compute 2.51"})
        assert r.status_code == 200, r.text
        events = r.json()["instanceAction"]["events"]
        failed = [e for e in events if e["event"] == "compute_resize_instance"]
        assert failed and failed[0]["result"] == "Error", events

        cloud.openstack("server", "delete", "--wait", "rz1", timeout=180)
        assert domain_state(sid) is None
        assert not os.path.exists(os.path.join(instances_dir, sid)) and not os.path.exists(backup)
    finally:
        if sid and domain_state(sid) is not None:
            sh(["virsh", "-c", URI, "destroy", sid], check=False)
            sh(["virsh", "-c", URI, "undefine", "--managed-save", sid], check=False)
