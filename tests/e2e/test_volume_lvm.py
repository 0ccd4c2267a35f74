"""End-to-end tests of the volume service's LVM backend: a private cloud whose only backend is
a volume group the test makes (a sparse file, a loop device, pvcreate/vgcreate under a unique
name, a thin pool where the kernel has device-mapper) and tears down. Volumes are checked as
real block devices /dev/<vg>/volume-<id>: data written there survives extend, a snapshot and
a volume made from it hold the snapshot's data, revert brings it back, a new volume on
reused extents reads zeros, create from image / upload to image keep the bytes, the
scheduler sees the group's capacity, and delete leaves no LV and no device.

Without device-mapper in the kernel (these machines have none) the backend uses linear LVs
that it maps with loop devices; with it, thin LVs in the pool. Needs root and lvm2.
"""
import json
import os
import shutil
import stat
import subprocess
import tempfile
import time
import uuid

import pytest

from test_volume import vol_url, wait_snapshot, wait_volume

LVM = "/usr/sbin/lvm"
GiB = 1 << 30

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(LVM), reason="needs root and lvm2")


def have_dm():
    with open("/proc/misc") as f:
        return "device-mapper" in f.read()


def sh(cmd, check=True):
    env = dict(os.environ, LVM_SUPPRESS_FD_WARNINGS="1", LC_ALL="C")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError("%s failed: %s" % (" ".join(cmd), p.stderr))
    return p


class VG:
    """A volume group on a loop device over a sparse file, removed again by destroy()."""

    def __init__(self, size_gb=10):
        self.name = "tsvg" + uuid.uuid4().hex[:10]
        fd, self.img = tempfile.mkstemp(prefix="ts-lvm-", suffix=".img", dir="/var/tmp")
        os.ftruncate(fd, size_gb * GiB)
        os.close(fd)
        self.loop = sh(["losetup", "-f", "--show", self.img]).stdout.strip()
        self.dm = have_dm()
        self.thin = self.dm
        sh(self.lvm("pvcreate", "-q", "-y", self.loop))
        sh(self.lvm("vgcreate", "-q", self.name, self.loop))
        if self.thin:
            sh(self.lvm("lvcreate", "-q", "-T", "-L", "%dg" % (size_gb - 1), "%s/%s-pool" % (self.name, self.name)))

    def lvm(self, cmd, *args):
        cfg = ('activation{udev_sync=0 udev_rules=0} backup{archive=0} devices{obtain_device_list_from_udev=0 '
               'global_filter=["a|^%s$|","r|.*|"]}' % self.loop)
        return [LVM, cmd, "--config", cfg] + ([] if self.dm else ["--driverloaded", "n"]) + list(args)

    def lvs(self):
        out = sh(self.lvm("lvs", "--noheadings", "-o", "lv_name", self.name)).stdout.split()
        return [n for n in out if n != "%s-pool" % self.name]

    def loops_on_file(self):
        out = sh(["losetup", "-j", self.img, "-O", "NAME", "-n"]).stdout.split()
        return [d for d in out if d != self.loop]

    def destroy(self):
        for d in self.loops_on_file():
            sh(["losetup", "-d", d], check=False)
        shutil.rmtree("/dev/%s" % self.name, ignore_errors=True)
        sh(self.lvm("vgremove", "-q", "-f", self.name), check=False)
        sh(self.lvm("pvremove", "-q", "-y", self.loop), check=False)
        sh(["losetup", "-d", self.loop], check=False)
        os.unlink(self.img)


@pytest.fixture
def vg():
    g = VG()
    yield g
    g.destroy()


def lvm_cloud(make_cloud, vg):
    c = make_cloud(**{"volume.enabled_backends": "lvm", "volume:lvm.driver": "lvm",
                      "volume:lvm.volume_group": vg.name})
    if not c.service_up("volume"):
        pytest.skip("volume service not built")
    return c


def dev(vg, vid):
    return "/dev/%s/volume-%s" % (vg.name, vid)


def dev_size(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def pwrite(path, off, data):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, off)
        os.fsync(fd)
    finally:
        os.close(fd)


def pread(path, off, n):
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, n, off)
    finally:
        os.close(fd)


def create(cloud, pid, **body):
    r = cloud.request("POST", "volume", vol_url(pid, "/volumes"), json={"volume": body})
    assert r.status_code == 202, r.text
    return wait_volume(cloud, pid, r.json()["volume"]["id"], "available")


def pool_caps(cloud, pid):
    r = cloud.request("GET", "volume", vol_url(pid, "/scheduler-stats/get_pools?detail=true"))
    assert r.status_code == 200, r.text
    pools = [p for p in r.json()["pools"] if "@lvm" in p["name"]]
    assert len(pools) == 1, r.text
    return pools[0]["capabilities"]


def wait_caps(cloud, pid, pred, timeout=20):
    end = time.time() + timeout
    caps = pool_caps(cloud, pid)
    while not pred(caps) and time.time() < end:
        time.sleep(0.2)
        caps = pool_caps(cloud, pid)
    assert pred(caps), caps
    return caps


def test_lvm_volume_lifecycle_data(make_cloud, vg, tmp_path):
    c = lvm_cloud(make_cloud, vg)
    pid = c.openstack("token", "issue")["project_id"]
    caps = pool_caps(c, pid)
    assert 8.5 < caps["total_capacity_gb"] <= 10 and caps["volume_backend_name"] == "lvm"
    free0 = caps["free_capacity_gb"]

    # an empty volume: a block device of the volume's size, as an LV of the group
    v = c.openstack("volume", "create", "--size", "1", "lv1")
    v = wait_volume(c, pid, v["id"], "available")
    vid = v["id"]
    p = dev(vg, vid)
    assert stat.S_ISBLK(os.stat(p).st_mode)
    assert dev_size(p) == GiB
    assert "volume-%s" % vid in vg.lvs()
    if not vg.thin:  # thick: the group's free space is the scheduler's
        wait_caps(c, pid, lambda k: abs(k["free_capacity_gb"] - (free0 - 1)) < 0.01)
    a, b = os.urandom(4096), os.urandom(4096)
    pwrite(p, 0, a)
    pwrite(p, 700 << 20, b)

    # extend: bigger device, data kept, the new part zeros
    c.openstack("volume", "set", "--size", "2", vid)
    v = wait_volume(c, pid, vid, "available")
    assert v["size"] == 2 and dev_size(p) == 2 * GiB
    assert pread(p, 0, 4096) == a and pread(p, 700 << 20, 4096) == b
    assert pread(p, GiB + (100 << 20), 1 << 20) == bytes(1 << 20)

    # snapshot, then change the volume
    s = c.openstack("volume", "snapshot", "create", "--volume", vid, "ls1")
    wait_snapshot(c, pid, s["id"], "available")
    assert "_snapshot-%s" % s["id"] in vg.lvs()
    a2 = os.urandom(4096)
    pwrite(p, 0, a2)
    pwrite(p, GiB + 4096, a2)

    # a volume from the snapshot has the snapshot's data
    v2 = create(c, pid, size=2, snapshot_id=s["id"], name="fromsnap")
    p2 = dev(vg, v2["id"])
    assert dev_size(p2) == 2 * GiB
    assert pread(p2, 0, 4096) == a and pread(p2, 700 << 20, 4096) == b
    assert pread(p2, GiB + 4096, 4096) == bytes(4096)

    # a clone of the volume has the volume's current data, and is its own copy
    v3 = create(c, pid, size=3, source_volid=vid, name="clone")
    p3 = dev(vg, v3["id"])
    assert dev_size(p3) == 3 * GiB and pread(p3, 0, 4096) == a2 and pread(p3, GiB + 4096, 4096) == a2
    pwrite(p3, 0, b)
    assert pread(p, 0, 4096) == a2

    # revert to the snapshot (3.40)
    r = c.request("POST", "volume", vol_url(pid, "/volumes/%s/action" % vid),
                  headers={"OpenStack-API-Version": "volume 3.40"}, json={"revert": {"snapshot_id": s["id"]}})
    assert r.status_code == 202, r.text
    wait_volume(c, pid, vid, "available")
    assert pread(p, 0, 4096) == a and pread(p, 700 << 20, 4096) == b
    assert pread(p, GiB + 4096, 4096) == bytes(4096)

    # everything deleted: no LV, no device, no loop mapping left
    c.openstack("volume", "snapshot", "delete", s["id"])
    wait_snapshot(c, pid, s["id"], "deleted")
    for x in (vid, v2["id"], v3["id"]):
        c.openstack("volume", "delete", x)
    for x in (vid, v2["id"], v3["id"]):
        wait_volume(c, pid, x, "deleted")
    assert vg.lvs() == []
    assert not os.path.exists(p) and not os.path.exists(p2)
    assert vg.loops_on_file() == []

    # a new volume on the extents the old ones used reads zeros
    v4 = create(c, pid, size=2, name="fresh")
    p4 = dev(vg, v4["id"])
    assert pread(p4, 0, 4096) == bytes(4096) and pread(p4, 700 << 20, 4096) == bytes(4096)
    c.openstack("volume", "delete", v4["id"])
    wait_volume(c, pid, v4["id"], "deleted")
    assert vg.lvs() == [] and vg.loops_on_file() == []
    if not vg.thin:
        wait_caps(c, pid, lambda k: abs(k["free_capacity_gb"] - free0) < 0.01)


def test_lvm_image_round_trip_and_restart(make_cloud, vg, tmp_path):
    c = lvm_cloud(make_cloud, vg)
    if not c.service_up("image"):
        pytest.skip("image service not built")
    pid = c.openstack("token", "issue")["project_id"]
    data = os.urandom(3 << 20)
    src = tmp_path / "img.raw"
    src.write_bytes(data)
    img = c.openstack("image", "create", "--disk-format", "raw", "--container-format", "bare", "--file", str(src),
                      "limg")
    v = c.openstack("volume", "create", "--image", img["id"], "--size", "1", "lfromimg")
    v = wait_volume(c, pid, v["id"], "available")
    assert v["bootable"] == "true"
    p = dev(vg, v["id"])
    assert pread(p, 0, len(data)) == data
    assert [n for n in vg.lvs() if n.startswith("tmp-")] == []

    # upload to the image service as qcow2 and compare
    r = c.request("POST", "volume", vol_url(pid, "/volumes/%s/action" % v["id"]),
                  json={"os-volume_upload_image": {"image_name": "lup", "disk_format": "qcow2",
                                                   "container_format": "bare"}})
    assert r.status_code == 202, r.text
    new_id = r.json()["os-volume_upload_image"]["image_id"]
    wait_volume(c, pid, v["id"], "available")
    end = time.time() + 60
    while c.openstack("image", "show", new_id)["status"] != "active" and time.time() < end:
        time.sleep(0.2)
    out = tmp_path / "back.qcow2"
    c.openstack("image", "save", "--file", str(out), new_id)
    raw = tmp_path / "back.raw"
    c.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(out), str(raw)])
    assert os.path.getsize(raw) == GiB
    with open(raw, "rb") as f:
        assert f.read(len(data)) == data

    # a raw upload reads the block device's size (st_size is 0 for a device)
    r = c.request("POST", "volume", vol_url(pid, "/volumes/%s/action" % v["id"]),
                  json={"os-volume_upload_image": {"image_name": "lupraw", "disk_format": "raw",
                                                   "container_format": "bare"}})
    assert r.status_code == 202, r.text
    raw_id = r.json()["os-volume_upload_image"]["image_id"]
    wait_volume(c, pid, v["id"], "available")
    end = time.time() + 60
    while c.openstack("image", "show", raw_id)["status"] != "active" and time.time() < end:
        time.sleep(0.2)
    assert c.openstack("image", "show", raw_id)["size"] == GiB

    # a restart keeps the volume reachable; a leftover temporary LV is removed
    sh(vg.lvm("lvcreate", "-q", "-an", "-Zn", "-L", "4m", "-n", "tmp-volume-leftover", vg.name)
       if not vg.thin else vg.lvm("lvcreate", "-q", "-T", "%s/%s-pool" % (vg.name, vg.name), "-V", "4m", "-n",
                                  "tmp-volume-leftover"))
    c.stop()
    c.start()
    assert "tmp-volume-leftover" not in vg.lvs()
    assert pread(p, 0, len(data)) == data
    c.openstack("volume", "delete", v["id"])
    wait_volume(c, pid, v["id"], "deleted")
    c.openstack("image", "delete", img["id"], new_id, raw_id)
    assert vg.lvs() == [] and vg.loops_on_file() == []


def test_lvm_volume_attached_to_real_guest(make_cloud, vg):
    """A volume of the LVM backend hot-plugged into a running TCG guest as a block disk."""
    import test_compute_libvirt as tcl

    up = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "scripts",
                      "libvirt-up.sh")
    was_up = tcl.sh([up, "status"], check=False).returncode == 0
    if not was_up:
        tcl.sh([up, "start"], timeout=120)
    inst = tempfile.mkdtemp(prefix="ts-e2e-inst-", dir="/var/tmp")
    os.chmod(inst, 0o755)
    server_id = None
    c = None
    try:
        os.makedirs(tcl.GUEST_DIR, exist_ok=True)
        os.chmod(tcl.GUEST_DIR, 0o755)
        tcl.sh([os.path.join(tcl.ROOT, "tools", "build-guest.sh"), tcl.GUEST_DIR], timeout=300)
        c = make_cloud(**{"compute.virt_driver": "libvirt", "compute.run_agent": "true",
                          "compute.instances_path": inst, "volume.enabled_backends": "lvm",
                          "volume:lvm.driver": "lvm", "volume:lvm.volume_group": vg.name})
        os.chmod(c.data_dir, 0o755)
        for svc in ("compute", "volume", "image"):
            if not c.service_up(svc):
                pytest.skip("%s service not built" % svc)
        pid = c.openstack("token", "issue")["project_id"]
        c.openstack("image", "create", "--disk-format", "qcow2", "--container-format", "bare", "--file",
                    os.path.join(tcl.GUEST_DIR, "tinyvm.qcow2"), "--public", "tinyvm")
        c.openstack("flavor", "create", "--ram", "256", "--disk", "1", "--vcpus", "1", "t1.tiny")
        s = c.openstack("--os-compute-api-version", "2.37", "server", "create", "--image", "tinyvm", "--flavor",
                        "t1.tiny", "--nic", "none", "--wait", "-f", "json", "lvm1", timeout=300)
        if isinstance(s, str):  # --wait may print progress before the JSON
            s = json.loads(s[s.index("{"):])
        server_id = s["id"]
        assert s["status"] == "ACTIVE", s
        tcl.wait_console(c, "lvm1", "TINYVM READY")
        v = c.openstack("volume", "create", "--size", "1", "lvmatt")
        wait_volume(c, pid, v["id"], "available")
        c.openstack("server", "add", "volume", "lvm1", v["id"])
        tcl.wait_console(c, "lvm1", "TINYVM DISK vdb 1073741824", timeout=90)
        xml = tcl.sh(["virsh", "-c", tcl.URI, "dumpxml", server_id]).stdout
        assert "<disk type='block' device='disk'>" in xml and dev(vg, v["id"]) in xml, xml
        assert wait_volume(c, pid, v["id"], "in-use")["attachments"][0]["server_id"] == server_id
        r = c.request("DELETE", "volume", vol_url(pid, "/volumes/%s" % v["id"]))
        assert r.status_code == 400, r.text
        c.openstack("server", "remove", "volume", "lvm1", v["id"])
        tcl.wait_console(c, "lvm1", "TINYVM DISK vdb removed", timeout=90)
        wait_volume(c, pid, v["id"], "available")
        c.openstack("server", "delete", "--wait", server_id, timeout=120)
        server_id = None
        c.openstack("volume", "delete", v["id"])
        wait_volume(c, pid, v["id"], "deleted")
        assert vg.lvs() == [] and vg.loops_on_file() == []
    finally:
        if server_id:
            tcl.sh(["virsh", "-c", tcl.URI, "destroy", server_id], check=False)
            tcl.sh(["virsh", "-c", tcl.URI, "undefine", server_id], check=False)
        if c:
            c.stop()
        shutil.rmtree(inst, ignore_errors=True)
        if not was_up:
            tcl.sh([up, "stop"], check=False)
