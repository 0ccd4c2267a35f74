"""Object storage on the Ceph RADOS backend ([object] backend = rados): a one-node Ceph
(scripts/ceph-local.sh: 1 mon + 1 memstore osd on free loopback ports) for this module, and
private clouds that keep their object bytes in it, driven with /usr/bin/swift and raw HTTP.
Each cloud uses its own pool so the RADOS object counts below are exact.
"""
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from urllib.parse import urlparse

import pytest
import requests

from conftest import ROOT, free_port

SWIFT = "/usr/bin/swift"
CEPH_LOCAL = os.path.join(ROOT, "scripts", "ceph-local.sh")


@pytest.fixture(scope="module")
def ceph():
    if not shutil.which("ceph-mon"):
        pytest.skip("Ceph is not installed (scripts/deps.sh)")
    d = tempfile.mkdtemp(prefix="ts-e2e-ceph-", dir="/var/tmp")
    # the osd binds the next free ports above the mon's: leave it room below 65536
    port = free_port()
    while port > 65000:
        port = free_port()
    env = dict(os.environ, CEPH_DIR=d, CEPH_MON_PORT=str(port))
    t0 = time.time()
    p = subprocess.run(["bash", CEPH_LOCAL, "start"], env=env, capture_output=True, text=True, timeout=180)
    if p.returncode != 0:
        subprocess.run(["bash", CEPH_LOCAL, "stop"], env=env, capture_output=True, timeout=120)
        raise RuntimeError("ceph-local.sh start failed:\n%s\n%s" % (p.stdout, p.stderr))
    print("ceph up in %.1f s" % (time.time() - t0))
    conf = p.stdout.strip().splitlines()[-1]
    yield conf
    subprocess.run(["bash", CEPH_LOCAL, "stop"], env=env, capture_output=True, timeout=120)
    shutil.rmtree(d, ignore_errors=True)


def uid(prefix="c"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


def rados_ls(conf, pool):
    p = subprocess.run(["rados", "-c", conf, "-p", pool, "ls"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return sorted(n for n in p.stdout.split() if n.startswith("ts."))


def rados_cloud(make_cloud, conf, **extra):
    pool = uid("tsobj")
    c = make_cloud(**{"object.backend": "rados", "object.rados_conf": conf, "object.rados_pool": pool}, **extra)
    c.pool = pool
    return c


class Acct:
    def __init__(self, cloud):
        self.cloud = cloud
        env = cloud.creds_env("admin", cloud.admin_password, "admin")
        self.env = env
        pid = cloud.openstack("token", "issue", env=env)["project_id"]
        self.base = cloud.urls["object"] + "/v1/AUTH_" + pid
        self.token = cloud.token()

    def req(self, method, path="", **kw):
        headers = dict(kw.pop("headers", {}) or {})
        headers["X-Auth-Token"] = self.token
        kw.setdefault("timeout", 120)
        return requests.request(method, self.base + path, headers=headers, **kw)


def md5_file(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def test_rados_swift_roundtrip(ceph, make_cloud, tmp_path):
    pc = rados_cloud(make_cloud, ceph)
    a = Acct(pc)
    env = a.env
    # 64 MiB through the real client, md5 compared end to end
    src = tmp_path / "big.bin"
    with open(src, "wb") as f:
        chunk = os.urandom(1 << 20)
        for i in range(64):
            f.write(chunk[:-4] + i.to_bytes(4, "big"))
    want = md5_file(src)
    c = uid()
    pc.run([SWIFT, "upload", c, str(src), "--object-name", "big.bin"], env=env, timeout=600)
    # the bytes are in RADOS (a head and 16 data objects of 4 MiB), not under the data dir
    names = rados_ls(ceph, pc.pool)
    assert len(names) == 17, names
    files = [f for _r, _d, fs in os.walk(os.path.join(pc.data_dir, "objects")) for f in fs]
    assert files == []
    out = tmp_path / "out.bin"
    pc.run([SWIFT, "download", c, "big.bin", "-o", str(out)], env=env, timeout=600)
    assert md5_file(out) == want
    st = pc.run([SWIFT, "stat", c, "big.bin"], env=env).stdout
    assert str(64 << 20) in st and want in st
    # ranges across a data-object boundary and at the end
    data = src.read_bytes()
    r = a.req("GET", "/%s/big.bin" % c, headers={"Range": "bytes=4194000-4194999"})
    assert r.status_code == 206 and r.content == data[4194000:4195000]
    r = a.req("GET", "/%s/big.bin" % c, headers={"Range": "bytes=-10"})
    assert r.status_code == 206 and r.content == data[-10:]
    # server-side copy (a clone in RADOS)
    r = a.req("COPY", "/%s/big.bin" % c, headers={"Destination": "%s/copy.bin" % c})
    assert r.status_code == 201, r.text
    assert len(rados_ls(ceph, pc.pool)) == 34
    # listings
    for i in range(3):
        assert a.req("PUT", "/%s/dir/small-%d" % (c, i), data=b"x" * (i + 1)).status_code == 201
    assert pc.run([SWIFT, "list", c], env=env).stdout.split() == [
        "big.bin", "copy.bin", "dir/small-0", "dir/small-1", "dir/small-2"]
    assert pc.run([SWIFT, "list", c, "--prefix", "dir/"], env=env).stdout.split() == [
        "dir/small-0", "dir/small-1", "dir/small-2"]
    r = a.req("GET", "/" + c, params={"format": "json", "delimiter": "/"})
    assert [e.get("name", e.get("subdir")) for e in r.json()] == ["big.bin", "copy.bin", "dir/"]
    h = a.req("HEAD", "/" + c).headers
    assert h["X-Container-Object-Count"] == "5" and h["X-Container-Bytes-Used"] == str((128 << 20) + 6)
    # SLO upload, download, range, delete with its segments
    slo = os.urandom(5 * 1048576 + 12345)
    (tmp_path / "slo.bin").write_bytes(slo)
    s = uid()
    pc.run([SWIFT, "upload", "--use-slo", "-S", "1048576", s, str(tmp_path / "slo.bin"), "--object-name",
            "slo.bin"], env=env)
    assert len(pc.run([SWIFT, "list", s + "_segments"], env=env).stdout.split()) == 6
    pc.run([SWIFT, "download", s, "slo.bin", "-o", str(tmp_path / "slo.out")], env=env)
    assert (tmp_path / "slo.out").read_bytes() == slo
    r = a.req("GET", "/%s/slo.bin" % s, headers={"Range": "bytes=1048570-1048580"})
    assert r.status_code == 206 and r.content == slo[1048570:1048581]
    pc.run([SWIFT, "delete", s, "slo.bin"], env=env)
    assert pc.run([SWIFT, "list", s + "_segments"], env=env).stdout.split() == []
    # deletes remove the RADOS objects
    pc.run([SWIFT, "delete", c], env=env)
    assert a.req("GET", "/%s/big.bin" % c).status_code == 404
    deadline = time.time() + 10
    while time.time() < deadline and rados_ls(ceph, pc.pool):
        time.sleep(0.2)
    assert rados_ls(ceph, pc.pool) == []


def test_rados_kill9_during_overwrite(ceph, make_cloud):
    # grace 0: the restart's reconcile removes the half-written blob at once
    pc = rados_cloud(make_cloud, ceph, **{"object.rados_orphan_grace": "0"})
    a = Acct(pc)
    assert a.req("PUT", "/keep").status_code == 201
    old = os.urandom(100000)
    assert a.req("PUT", "/keep/obj", data=old).status_code == 201
    old_names = rados_ls(ceph, pc.pool)
    assert len(old_names) == 2  # head + one data object
    u = urlparse(a.base)
    sock = __import__("socket").create_connection((u.hostname, u.port), timeout=30)
    sock.sendall(("PUT %s/keep/obj HTTP/1.1\r\nHost: x\r\nX-Auth-Token: %s\r\n"
                  "Content-Length: 104857600\r\n\r\n" % (u.path, a.token)).encode())
    sock.sendall(os.urandom(9 << 20))
    deadline = time.time() + 10
    while time.time() < deadline and len(rados_ls(ceph, pc.pool)) < 4:
        time.sleep(0.1)
    assert len(rados_ls(ceph, pc.pool)) >= 4, "the overwrite should be streaming into RADOS"
    pc.kill9()
    sock.close()
    pc.start()
    a.token = pc.token()
    r = a.req("GET", "/keep/obj")
    assert r.status_code == 200 and r.content == old
    assert a.req("GET", "/keep").text == "obj\n"
    assert a.req("HEAD", "/keep").headers["X-Container-Bytes-Used"] == "100000"
    assert rados_ls(ceph, pc.pool) == old_names
    # a completed overwrite switches to the new blob and removes the old one
    new = os.urandom(5 << 20)
    assert a.req("PUT", "/keep/obj", data=new).status_code == 201
    assert a.req("GET", "/keep/obj").content == new
    names = rados_ls(ceph, pc.pool)
    assert len(names) == 3 and not set(names) & set(old_names)


def test_rados_orphans_spared_within_grace(ceph, make_cloud):
    # the default grace (3600 s) keeps a fresh orphan: another server may still be writing it
    pc = rados_cloud(make_cloud, ceph)
    orphan = "ts.%s.0" % uuid.uuid4().hex
    p = subprocess.run(["rados", "-c", ceph, "-p", pc.pool, "put", orphan, "/etc/hostname"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    pc.stop()
    pc.start()
    assert rados_ls(ceph, pc.pool) == [orphan]
