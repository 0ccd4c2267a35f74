"""End-to-end tests of volume backups kept in the object service (Cinder's swift backup driver):
/usr/bin/openstack volume backup create/show/list/restore/delete as a project member, the objects
seen with /usr/bin/swift in that member's account, bytes compared after restores, isolation
between projects, an object-store failure and a damaged object, and a kill -9 during a backup."""
import hashlib
import json
import os
import subprocess
import time

import pytest

SWIFT = "/usr/bin/swift"
MiB = 1 << 20
CHUNK = 52428800          # Cinder's default backup_swift_object_size, the session cloud's


def vol_url(pid, suffix=""):
    return "/v3/%s%s" % (pid, suffix)


def backing_file(cloud, vid):
    return os.path.join(cloud.data_dir, "volumes", "file", "volume-%s" % vid)


def wait(cloud, user, kind, rid, want, timeout=120):
    """Polls /volumes or /backups as user until status want ("deleted" = 404); fails on an
    unexpected error status."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        r = cloud.request("GET", "volume", vol_url(user.project_id, "/%s/%s" % (kind, rid)), token=user.token())
        if r.status_code == 404 and want == "deleted":
            return None
        assert r.status_code == 200, r.text
        last = r.json()[kind[:-1]]
        if last["status"] == want:
            return last
        if last["status"].startswith("error") and not want.startswith("error"):
            raise AssertionError("%s %s went to %s: %s" % (kind, rid, last["status"], last.get("fail_reason")))
        time.sleep(0.1)
    raise AssertionError("%s %s not %s: %s" % (kind, rid, want, last and last["status"]))


def swift_list(cloud, user, container, prefix=""):
    p = cloud.run([SWIFT, "list", container, "--prefix", prefix], env=user.env, check=False)
    if p.returncode != 0:
        assert "404" in p.stderr or "not found" in p.stderr.lower(), p.stderr
        return []
    return [l for l in p.stdout.splitlines() if l]


def new_volume(cloud, user, name, size=1):
    v = cloud.openstack("volume", "create", "--size", str(size), name, env=user.env)
    wait(cloud, user, "volumes", v["id"], "available")
    return v["id"]


def write_patterns(cloud, vid, seed):
    """Writes 64 KiB patterns at offsets in the 1st and 3rd 50 MiB chunk; returns them."""
    pats = {}
    with open(backing_file(cloud, vid), "r+b") as f:
        for off in (777777, 2 * CHUNK + 12345):
            data = hashlib.sha512(("%s-%d" % (seed, off)).encode()).digest() * 1024
            f.seek(off)
            f.write(data)
            pats[off] = data
    return pats


def read_at(path, off, n):
    with open(path, "rb") as f:
        f.seek(off)
        return f.read(n)


def file_md5(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(4 * MiB), b""):
            h.update(b)
    return h.hexdigest()


def cli_restore(cloud, user, bid, volume, force=False):
    """openstack volume backup restore; returns the target volume's id. The Debian CLI (6.0)
    sends the request, then fails formatting the answer ("cannot unpack non-iterable
    VolumeBackupsRestore object", a client bug): accepted, the volume is found by name."""
    args = ["volume", "backup", "restore"] + (["--force"] if force else []) + [bid, volume]
    p = cloud.openstack(*args, env=user.env, check=False)
    assert p.returncode == 0 or "cannot unpack non-iterable VolumeBackupsRestore" in p.stderr, p.stderr
    return cloud.openstack("volume", "show", volume, env=user.env)["id"]


@pytest.fixture(scope="module")
def member(cloud):
    return cloud.new_project_user(prefix="bk")


@pytest.fixture(scope="module")
def other(cloud):
    return cloud.new_project_user(prefix="bko")


def test_backup_to_object_store_roundtrip(cloud, member, other):
    vid = new_volume(cloud, member, "bk-src")
    pats = write_patterns(cloud, vid, "roundtrip")
    src_md5 = file_md5(backing_file(cloud, vid))
    b = cloud.openstack("volume", "backup", "create", "--name", "bk1", "--description", "first", vid, env=member.env)
    shown = wait(cloud, member, "backups", b["id"], "available")
    wait(cloud, member, "volumes", vid, "available")
    # what the CLI shows
    s = cloud.openstack("volume", "backup", "show", b["id"], env=member.env)
    assert s["status"] == "available" and s["container"] == "volumebackups" and s["size"] == 1
    assert s["object_count"] == 2 == shown["object_count"]     # chunks 1 and 3 hold data, the rest is zeros
    assert s["volume_id"] == vid and s["name"] == "bk1" and s["description"] == "first"
    listed = cloud.openstack("volume", "backup", "list", env=member.env)
    assert [x["ID"] for x in listed] == [b["id"]] and listed[0]["Status"] == "available"

    # the objects, in the member's own account, named as Cinder names them
    names = swift_list(cloud, member, "volumebackups", "volume_%s/" % vid)
    prefix = names[0].rsplit("_", 1)[0] if names[0].endswith("_metadata") else names[0][:-6]
    assert prefix.startswith("volume_%s/" % vid) and prefix.endswith("/az_nova_backup_%s" % b["id"])
    assert sorted(names) == sorted([prefix + "-00001", prefix + "-00003", prefix + "_metadata",
                                    prefix + "_sha256file"])
    meta = json.loads(cloud.run([SWIFT, "download", "volumebackups", prefix + "_metadata", "-o", "-"],
                                env=member.env).stdout)
    assert meta["backup_id"] == b["id"] and meta["volume_id"] == vid
    objs = [(k, v) for o in meta["objects"] for k, v in o.items()]
    assert [(k, v["offset"], v["length"]) for k, v in objs] == [(prefix + "-00001", 0, CHUNK),
                                                                 (prefix + "-00003", 2 * CHUNK, CHUNK)]
    with open(backing_file(cloud, vid), "rb") as f:
        f.seek(2 * CHUNK)
        assert hashlib.md5(f.read(CHUNK)).hexdigest() == objs[1][1]["md5"]
    sha = json.loads(cloud.run([SWIFT, "download", "volumebackups", prefix + "_sha256file", "-o", "-"],
                               env=member.env).stdout)
    assert sha["chunk_size"] == 32768 and len(sha["sha256s"]) == (1 << 30) // 32768
    with open(backing_file(cloud, vid), "rb") as f:
        f.seek(777777 // 32768 * 32768)
        assert hashlib.sha256(f.read(32768)).hexdigest() == sha["sha256s"][777777 // 32768]

    # another project sees neither the backup nor the objects
    p = cloud.openstack("volume", "backup", "show", b["id"], env=other.env, check=False)
    assert p.returncode != 0 and ("could not be found" in p.stderr or "No volumebackup" in p.stderr), p.stderr
    assert cloud.openstack("volume", "backup", "list", env=other.env) == []
    r = cloud.request("GET", "volume", vol_url(member.project_id, "/backups/%s" % b["id"]), token=other.token())
    assert r.status_code in (403, 404)
    r = cloud.request("GET", "volume", vol_url(other.project_id, "/backups/%s" % b["id"]), token=other.token())
    assert r.status_code == 404
    r = cloud.request("GET", "object", "/v1/AUTH_%s/volumebackups" % member.project_id, token=other.token())
    assert r.status_code == 403

    # restore into a new volume: same bytes
    nv = cli_restore(cloud, member, b["id"], "bk-restored")
    wait(cloud, member, "volumes", nv, "available")
    wait(cloud, member, "backups", b["id"], "available")
    assert file_md5(backing_file(cloud, nv)) == src_md5
    for off, data in pats.items():
        assert read_at(backing_file(cloud, nv), off, len(data)) == data

    # restore over an existing volume that holds other data: old bytes are gone
    tv = new_volume(cloud, member, "bk-target")
    with open(backing_file(cloud, tv), "r+b") as f:
        f.seek(CHUNK + 5)              # a chunk the backup has no object for
        f.write(b"\xff" * 4096)
    assert cli_restore(cloud, member, b["id"], tv, force=True) == tv
    wait(cloud, member, "volumes", tv, "available")
    assert file_md5(backing_file(cloud, tv)) == src_md5

    # delete: the backup and every object are gone
    cloud.openstack("volume", "backup", "delete", b["id"], env=member.env)
    wait(cloud, member, "backups", b["id"], "deleted")
    assert swift_list(cloud, member, "volumebackups", "volume_%s/" % vid) == []
    for v in (vid, nv, tv):
        cloud.openstack("volume", "delete", v, env=member.env)


def test_backup_container_and_bad_input(cloud, member):
    vid = new_volume(cloud, member, "bk-cont")
    write_patterns(cloud, vid, "cont")
    b = cloud.openstack("volume", "backup", "create", "--container", "my-backups", vid, env=member.env)
    s = wait(cloud, member, "backups", b["id"], "available")
    assert s["container"] == "my-backups" and s["object_count"] == 2
    assert len(swift_list(cloud, member, "my-backups", "volume_%s/" % vid)) == 4
    assert swift_list(cloud, member, "volumebackups", "volume_%s/" % vid) == []
    tok = member.token()
    url = vol_url(member.project_id, "/backups")
    for body, code in (({"backup": {"volume_id": vid, "container": "a/b"}}, 400),
                       ({"backup": {"volume_id": vid, "container": "x" * 300}}, 400),
                       ({"backup": {"volume_id": vid, "container": 42}}, 400),
                       ({"backup": {"volume_id": vid, "incremental": True}}, 400),
                       ({"backup": {"volume_id": "0" * 8 + "-0000-0000-0000-" + "0" * 12}}, 404),
                       ({"backup": {}}, 400)):
        r = cloud.request("POST", "volume", url, token=tok, json=body)
        assert r.status_code == code, (body, r.text)
    # a backup that is not available cannot be restored; deleting twice is refused
    cloud.openstack("volume", "backup", "delete", b["id"], env=member.env)
    r = cloud.request("DELETE", "volume", vol_url(member.project_id, "/backups/%s" % b["id"]), token=tok)
    assert r.status_code in (202, 400, 404)
    wait(cloud, member, "backups", b["id"], "deleted")
    assert swift_list(cloud, member, "my-backups", "volume_%s/" % vid) == []
    cloud.openstack("volume", "delete", vid, env=member.env)


def test_object_store_failure_leaves_error(cloud, member):
    """The member's account quota (set by the admin) refuses the chunks: the backup ends in
    error with the reason, the volume is available again, and nothing is left behind."""
    vid = new_volume(cloud, member, "bk-quota")
    write_patterns(cloud, vid, "quota")
    acct = "/v1/AUTH_%s" % member.project_id
    r = cloud.request("POST", "object", acct, headers={"X-Account-Meta-Quota-Bytes": "4096"})
    assert r.status_code == 204, r.text
    try:
        b = cloud.openstack("volume", "backup", "create", "--container", "quota-test", vid, env=member.env)
        s = wait(cloud, member, "backups", b["id"], "error")
        assert "413" in (s.get("fail_reason") or ""), s
        wait(cloud, member, "volumes", vid, "available")
        assert swift_list(cloud, member, "quota-test", "volume_%s/" % vid) == []
        # a backup in error cannot be restored, but can be deleted
        r = cloud.request("POST", "volume", vol_url(member.project_id, "/backups/%s/restore" % b["id"]),
                          token=member.token(), json={"restore": {}})
        assert r.status_code == 400
        cloud.openstack("volume", "backup", "delete", b["id"], env=member.env)
        wait(cloud, member, "backups", b["id"], "deleted")
    finally:
        r = cloud.request("POST", "object", acct, headers={"X-Remove-Account-Meta-Quota-Bytes": "x"})
        assert r.status_code == 204
    cloud.openstack("volume", "delete", vid, env=member.env)


def test_damaged_object_fails_restore(cloud, member):
    vid = new_volume(cloud, member, "bk-dmg")
    write_patterns(cloud, vid, "damage")
    b = cloud.openstack("volume", "backup", "create", vid, env=member.env)
    wait(cloud, member, "backups", b["id"], "available")
    names = swift_list(cloud, member, "volumebackups", "volume_%s/" % vid)
    first = [n for n in names if n.endswith("-00001")][0]
    # overwrite the first chunk with other bytes of the same length
    r = cloud.request("PUT", "object", "/v1/AUTH_%s/volumebackups/%s" % (member.project_id, first),
                      token=member.token(), data=b"\x01" * CHUNK)
    assert r.status_code == 201
    r = cloud.request("POST", "volume", vol_url(member.project_id, "/backups/%s/restore" % b["id"]),
                      token=member.token(), json={"restore": {}})
    assert r.status_code == 202
    nv = r.json()["restore"]["volume_id"]
    wait(cloud, member, "volumes", nv, "error_restoring")
    wait(cloud, member, "backups", b["id"], "available")
    cloud.openstack("volume", "backup", "delete", b["id"], env=member.env)
    wait(cloud, member, "backups", b["id"], "deleted")
    for v in (vid, nv):
        cloud.request("DELETE", "volume", vol_url(member.project_id, "/volumes/%s" % v), token=member.token())


def test_kill9_during_backup_leaves_error(make_cloud):
    """kill -9 while the chunks are being sent: after the restart the backup is in error,
    never available, and deleting it removes what was stored."""
    c = make_cloud(**{"volume.backup_swift_object_size": "1048576"})
    u = c.new_project_user(prefix="bkk")
    vid = new_volume(c, u, "bk-kill")
    with open(backing_file(c, vid), "r+b") as f:   # 256 MiB of data: 256 objects, each fsync'd
        block = os.urandom(MiB)
        for i in range(256):
            f.write(block[i:] + block[:i])
    b = c.openstack("volume", "backup", "create", vid, env=u.env)
    listing = "/v1/AUTH_%s/volumebackups?prefix=volume_%s/" % (u.project_id, vid)
    deadline = time.time() + 60
    while time.time() < deadline:
        r = c.request("GET", "object", listing, token=u.token())
        if r.status_code == 200 and len(r.text.split()) >= 2:
            break
        time.sleep(0.02)
    assert len(r.text.split()) >= 2
    c.kill9()
    c.start()
    s = wait(c, u, "backups", b["id"], "error")
    assert s["status"] == "error"
    wait(c, u, "volumes", vid, "available")
    c.openstack("volume", "backup", "delete", b["id"], env=u.env)
    wait(c, u, "backups", b["id"], "deleted")
    assert swift_list(c, u, "volumebackups", "volume_%s/" % vid) == []


def test_file_driver_without_object_service(make_cloud):
    """Without an object service new backups use the file driver (backups_dir/backup-<id>):
    create, restore with the bytes compared, delete."""
    c = make_cloud(**{"DEFAULT.enabled_services": "identity,image,volume"})
    u = c.new_project_user(prefix="bkf")
    vid = new_volume(c, u, "bk-file")
    pats = write_patterns(c, vid, "file")
    b = c.openstack("volume", "backup", "create", vid, env=u.env)
    s = wait(c, u, "backups", b["id"], "available")
    assert s["container"] == "backups"
    path = os.path.join(c.data_dir, "backups", "backup-%s" % b["id"])
    assert os.path.exists(path)
    nv = cli_restore(c, u, b["id"], "bk-file-restored")
    wait(c, u, "volumes", nv, "available")
    for off, data in pats.items():
        assert read_at(backing_file(c, nv), off, len(data)) == data
    c.openstack("volume", "backup", "delete", b["id"], env=u.env)
    wait(c, u, "backups", b["id"], "deleted")
    assert not os.path.exists(path)
