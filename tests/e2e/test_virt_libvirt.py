"""Real-QEMU test of the libvirt virt driver (src/compute/virt/ts_virt_libvirt.c), without the
rest of the compute service: a tiny C front end (virt_libvirt_drive.c, compiled here against
src/core, src/conf and the driver) calls the driver's ops one per process, against libvirtd on
qemu:///system with TCG guests built by tools/build-guest.sh.

boot -> "TINYVM READY" -> pause/unpause -> power_off -> power_on -> soft and hard reboot ->
managed save (suspend/resume) -> attach a 64 MiB raw disk ("TINYVM DISK vdb") -> detach ->
NIC hotplug (an unplugged tap) -> snapshot boots as a second guest -> boot from a volume ->
destroy leaves no domain and no files.

Needs root, qemu-system-x86, libvirt-daemon-system, the guest image inputs (scripts/deps.sh).
Starts libvirtd with scripts/libvirt-up.sh if it is not running, and stops it afterwards only
then. Run: /usr/bin/python3 -m pytest -q tests/e2e/test_virt_libvirt.py
"""
import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GUEST_DIR = os.environ.get("TS_GUEST_DIR", "/var/tmp/tinystack-guest")
BOOT_TIMEOUT = 240  # TCG on a loaded 2-core machine (make test runs Tempest beside it); idle about 5 s

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (libvirtd, qemu:///system)")


def sh(cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def libvirt():
    """qemu:///system answering; started by us (and stopped at the end) only if it was not."""
    up = os.path.join(ROOT, "scripts", "libvirt-up.sh")
    was_up = sh([up, "status"], check=False).returncode == 0
    if not was_up:
        sh([up, "start"], timeout=120)
    yield "qemu:///system"
    if not was_up:
        sh([up, "stop"], check=False)


@pytest.fixture(scope="module")
def guest_image():
    os.makedirs(GUEST_DIR, exist_ok=True)
    os.chmod(GUEST_DIR, 0o755)
    sh([os.path.join(ROOT, "tools", "build-guest.sh"), GUEST_DIR], timeout=300)
    img = os.path.join(GUEST_DIR, "tinyvm.qcow2")
    assert os.path.exists(img)
    os.chmod(img, 0o644)
    return img


@pytest.fixture(scope="module")
def work():
    # libvirt-qemu (uid 64055) must traverse every directory above the disks: /var/tmp is 1777
    d = tempfile.mkdtemp(prefix="ts-virt-e2e-", dir="/var/tmp")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def drive(work):
    exe = os.path.join(work, "drive")
    srcs = sorted(glob.glob(os.path.join(ROOT, "src/core/*.c")) + glob.glob(os.path.join(ROOT, "src/conf/*.c")))
    srcs += [os.path.join(ROOT, "src/compute/virt/ts_virt_libvirt.c"),
             os.path.join(ROOT, "src/compute/virt/ts_virt_libvirt_dl.c"),
             os.path.join(ROOT, "tests/e2e/virt_libvirt_drive.c")]
    flags = sh(["pkg-config", "--cflags", "--libs", "libvirt", "uuid"]).stdout.split()
    sh(["cc", "-std=gnu11", "-D_GNU_SOURCE", "-O1", "-g", "-I" + os.path.join(ROOT, "src"), "-o", exe] + srcs
       + flags + ["-lpthread", "-lm"])
    return exe


class Guest:
    def __init__(self, drive, uri, instances, image, name, root_volume=None):
        self.drive = drive
        self.uri = uri
        self.uuid = str(uuid.uuid4())
        self.domain = "instance-e2e%s" % self.uuid[:8]
        self.dir = os.path.join(instances, self.uuid)
        self.common = ["--uri", uri, "--instances", instances, "--uuid", self.uuid, "--domain", self.domain,
                       "--name", name, "--dir", self.dir, "--mem", "256"]
        if root_volume:  # boot from volume: no image, disks[0] is the root
            self.common += ["--disk", root_volume]
        else:
            self.common += ["--image", image, "--format", "qcow2", "--root-gb", "1"]

    def call(self, op, *args, check=True, timeout=180):
        common = self.common
        if op in ("attach_disk", "detach_disk") and "--disk" in common:  # the op's --disk is the one disk
            i = common.index("--disk")
            common = common[:i] + common[i + 2:]
        r = subprocess.run([self.drive, op] + common + list(args), capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("%s failed: %s" % (op, r.stderr.strip()))
        return r

    def state(self):
        return int(self.call("power_state").stdout)

    def console(self):
        return self.call("console", "--bytes", "1000000").stdout

    def wait_console(self, text, timeout=BOOT_TIMEOUT, after=0):
        """Waits until text appears in the console log past offset `after`."""
        end = time.time() + timeout
        while time.time() < end:
            log = self.console()
            if text in log[after:]:
                return log
            time.sleep(0.5)
        raise AssertionError("no %r on the console within %d s; console:\n%s" % (text, timeout, self.console()[-3000:]))

    def wait_state(self, want, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            if self.state() == want:
                return
            time.sleep(0.2)
        assert self.state() == want


def domains(uri):
    return sh(["virsh", "-c", uri, "list", "--all", "--name"]).stdout.split()


RUNNING, PAUSED, SHUTDOWN, SUSPENDED = 1, 3, 4, 7


def test_libvirt_driver_lifecycle(libvirt, guest_image, work, drive):
    instances = os.path.join(work, "instances")
    g = Guest(drive, libvirt, instances, guest_image, "vm1")
    snap_guest = None
    try:
        info = g.call("host_info").stdout
        assert '"hypervisor_type": "QEMU"' in info, info

        t0 = time.time()
        g.call("spawn")
        assert g.domain in domains(libvirt)
        assert g.uuid in g.call("list").stdout.split()
        xml = sh(["virsh", "-c", libvirt, "dumpxml", g.domain]).stdout
        assert "<domain type='qemu'" in xml
        assert "<acpi/>" in xml
        st = os.stat(g.dir)
        assert st.st_mode & 0o777 == 0o755
        g.wait_console("TINYVM READY")
        boot_s = time.time() - t0
        assert g.state() == RUNNING

        # pause / unpause
        g.call("pause")
        assert g.state() == PAUSED
        g.call("unpause")
        assert g.state() == RUNNING

        # graceful power off (ACPI button; the guest logs POWEROFF), then on again
        g.call("power_off", "--timeout", "60")
        assert g.state() == SHUTDOWN
        g.call("power_on")
        g.wait_console("TINYVM READY")  # append='off': the log restarts with each QEMU start

        # soft reboot (ACPI shutdown + start) and hard reboot (destroy + start)
        g.call("reboot_soft")
        assert g.state() == RUNNING
        g.wait_console("TINYVM READY")
        g.call("reboot_hard")
        g.wait_console("TINYVM READY")

        # managed save
        g.call("suspend")
        assert g.state() == SUSPENDED
        g.call("resume")
        assert g.state() == RUNNING

        # volume hotplug: a 64 MiB raw disk as vdb
        vol = os.path.join(work, "vol1.raw")
        with open(vol, "wb") as f:
            f.truncate(64 * 1024 * 1024)
        os.chmod(vol, 0o644)
        mark = len(g.console())
        dev = g.call("attach_disk", "--disk", vol + ":raw").stdout.strip()
        assert dev == "vdb"
        g.wait_console("TINYVM DISK vdb 67108864", timeout=30, after=mark)
        assert g.call("attach_disk", "--disk", vol + ":raw").stdout.strip() == "vdb"  # idempotent
        g.call("detach_disk", "--disk", vol + ":raw")
        g.wait_console("TINYVM DISK vdb removed", timeout=30, after=mark)
        xml = sh(["virsh", "-c", libvirt, "dumpxml", g.domain]).stdout
        assert vol not in xml
        xml = sh(["virsh", "-c", libvirt, "dumpxml", "--inactive", g.domain]).stdout
        assert vol not in xml

        # NIC hotplug: no bridge and no tap yet -> libvirt makes an unplugged tap
        tap = "tape2e" + g.uuid[:6]
        nic = "fa:16:3e:e2:e0:01:%s:" % tap
        g.call("attach_nic", "--nic", nic)
        assert os.path.exists("/sys/class/net/%s" % tap)
        assert "fa:16:3e:e2:e0:01" in sh(["virsh", "-c", libvirt, "domiflist", g.domain]).stdout
        g.call("detach_nic", "--nic", nic)
        assert "fa:16:3e:e2:e0:01" not in sh(["virsh", "-c", libvirt, "domiflist", g.domain]).stdout

        # snapshot of the running guest: standalone qcow2 that boots
        snap = os.path.join(work, "snap.qcow2")
        g.call("snapshot", "--out", snap)
        assert g.state() == RUNNING
        info = sh(["qemu-img", "info", snap]).stdout
        assert "file format: qcow2" in info and "backing file" not in info
        os.chmod(snap, 0o644)
        snap_guest = Guest(drive, libvirt, instances, snap, "vm1-snap")
        snap_guest.call("spawn")
        snap_guest.wait_console("TINYVM READY")
        snap_guest.call("destroy")
        assert snap_guest.domain not in domains(libvirt)
        snap_guest = None

        # boot from volume: the root is a raw "volume" file, which destroy leaves alone
        rootvol = os.path.join(work, "rootvol.raw")
        sh(["qemu-img", "convert", "-O", "raw", guest_image, rootvol])
        os.chmod(rootvol, 0o644)
        bfv = snap_guest = Guest(drive, libvirt, instances, None, "vm1-bfv", root_volume=rootvol + ":raw")
        bfv.call("spawn")
        bfv.wait_console("TINYVM READY")
        assert not os.path.exists(os.path.join(bfv.dir, "disk"))
        bfv.call("destroy")
        assert bfv.domain not in domains(libvirt)
        assert os.path.exists(rootvol) and not os.path.exists(bfv.dir)
        snap_guest = None

        # destroy: no domain, no files
        g.call("destroy")
        assert g.domain not in domains(libvirt)
        assert not os.path.exists(g.dir)
        assert g.uuid not in g.call("list").stdout.split()
        assert g.call("power_state", check=False).returncode == 1
        print("boot to READY %.1f s" % boot_s)
    finally:
        for x in (g, snap_guest):
            if x is not None:
                x.call("destroy", check=False)
                sh(["virsh", "-c", libvirt, "destroy", x.domain], check=False)
                sh(["virsh", "-c", libvirt, "undefine", "--managed-save", x.domain], check=False)
