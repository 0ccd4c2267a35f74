"""End-to-end tests of the image service's swift store: images kept as objects in the
object service (container "glance" of the service project), large ones as SLO segments,
with /usr/bin/openstack (image create --file, image save), /usr/bin/swift as the service
user, raw HTTP for ranges and an interrupted upload, and a start that must fail when the
object service is not enabled."""
import configparser
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from urllib.parse import urlparse

import pytest
import requests

from conftest import TINYSTACK, free_port

SWIFT = "/usr/bin/swift"
MiB = 1 << 20


def service_env(cloud):
    """/usr/bin/swift as the service user: it owns the account that holds the images."""
    cp = configparser.RawConfigParser()
    cp.read(os.path.join(cloud.data_dir, "tinystack.conf"))
    sc = cp["service_credentials"]
    return cloud.creds_env(sc.get("username", "tinystack"), sc["password"], sc.get("project_name", "service"))


def swift_names(cloud, env, prefix):
    p = cloud.run([SWIFT, "list", "glance", "--prefix", prefix], env=env, check=False)
    if p.returncode != 0:
        assert "404" in p.stderr or "not found" in p.stderr.lower(), p.stderr
        return []
    return [l for l in p.stdout.splitlines() if l]


def make_file(path, size, seed):
    with open(path, "wb") as f:
        block = hashlib.sha512(seed.encode()).digest() * 2048   # 128 KiB
        left = size
        i = 0
        while left > 0:
            chunk = hashlib.md5(b"%d" % i).digest() + block
            chunk = chunk[:min(left, len(chunk))]
            f.write(chunk)
            left -= len(chunk)
            i += 1


def md5_of(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(MiB), b""):
            h.update(b)
    return h.hexdigest()


def wait_status(cloud, image_id, want, timeout=30):
    deadline = time.time() + timeout
    st = None
    while time.time() < deadline:
        st = cloud.request("GET", "image", "/v2/images/" + image_id).json()["status"]
        if st == want:
            return
        time.sleep(0.1)
    raise AssertionError("image %s is %s, not %s" % (image_id, st, want))


@pytest.fixture
def swift_cloud(make_cloud):
    # 8 MiB threshold, 3 MiB segments: 20 MiB -> 7 segments, 1 MiB -> one plain object
    return make_cloud(**{"image.default_store": "swift", "image.swift_large_object_size": "8M",
                         "image.swift_large_object_chunk_size": "3M"})


def test_stores_listed(swift_cloud):
    stores = swift_cloud.request("GET", "image", "/v2/info/stores").json()["stores"]
    by_id = {s["id"]: s for s in stores}
    assert set(by_id) == {"swift", "file"}
    assert by_id["swift"].get("default") is True
    assert "default" not in by_id["file"]


def test_image_in_swift_roundtrip(swift_cloud, tmp_path):
    cloud = swift_cloud
    senv = service_env(cloud)
    # a small image: one plain object <id>
    small = tmp_path / "small.raw"
    make_file(small, MiB + 7, "small")
    img = cloud.openstack("image", "create", "--disk-format", "raw", "--container-format", "bare",
                          "--file", str(small), "small")
    sid = img["id"]
    wait_status(cloud, sid, "active")
    assert swift_names(cloud, senv, sid) == [sid]
    shown = cloud.request("GET", "image", "/v2/images/" + sid).json()
    assert shown["checksum"] == md5_of(small) and shown["size"] == MiB + 7
    assert shown["stores"] == "swift"
    head = cloud.run([SWIFT, "stat", "glance", sid], env=senv).stdout
    assert md5_of(small) in head

    # 20 MiB: above the threshold -> SLO manifest <id> over 3 MiB segments
    big = tmp_path / "big.raw"
    make_file(big, 20 * MiB, "big")
    img = cloud.openstack("image", "create", "--disk-format", "raw", "--container-format", "bare",
                          "--file", str(big), "big")
    bid = img["id"]
    wait_status(cloud, bid, "active")
    names = swift_names(cloud, senv, bid)
    assert names[0] == bid
    assert names[1:] == ["%s-%05d" % (bid, i) for i in range(1, 8)], names
    stat = cloud.run([SWIFT, "stat", "glance", bid], env=senv).stdout
    assert "Manifest" in stat or "static" in stat.lower() or "20971520" in stat, stat

    out = tmp_path / "big.out"
    cloud.openstack("image", "save", "--file", str(out), bid)
    assert out.stat().st_size == 20 * MiB
    assert md5_of(out) == md5_of(big)
    assert cloud.request("GET", "image", "/v2/images/" + bid).json()["checksum"] == md5_of(big)

    # ranges go to swift: one across a segment boundary, one open-ended, one too far
    data = big.read_bytes()
    r = cloud.request("GET", "image", "/v2/images/%s/file" % bid, headers={"Range": "bytes=3145000-6291999"})
    assert r.status_code == 206
    assert r.headers["Content-Range"] == "bytes 3145000-6291999/%d" % len(data)
    assert r.content == data[3145000:6292000]
    r = cloud.request("GET", "image", "/v2/images/%s/file" % bid, headers={"Range": "bytes=-100"})
    assert r.status_code == 206 and r.content == data[-100:]
    r = cloud.request("GET", "image", "/v2/images/%s/file" % bid, headers={"Range": "bytes=%d-" % (len(data) + 1)})
    assert r.status_code == 416

    # delete removes the objects and every segment
    cloud.openstack("image", "delete", bid)
    cloud.openstack("image", "delete", sid)
    assert swift_names(cloud, senv, bid) == []
    assert swift_names(cloud, senv, sid) == []


def test_empty_image_and_user_cannot_see_objects(swift_cloud, tmp_path):
    cloud = swift_cloud
    user = cloud.new_project_user()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    img = cloud.openstack("image", "create", "--disk-format", "raw", "--container-format", "bare",
                          "--file", str(empty), "empty", env=user.env)
    wait_status(cloud, img["id"], "active")
    out = tmp_path / "empty.out"
    cloud.openstack("image", "save", "--file", str(out), img["id"], env=user.env)
    assert out.read_bytes() == b""
    # the images live in the service's account, not the user's
    p = cloud.run([SWIFT, "list"], env=user.env, check=False)
    assert "glance" not in p.stdout
    cloud.openstack("image", "delete", img["id"], env=user.env)


def test_interrupted_upload_leaves_nothing(swift_cloud):
    cloud = swift_cloud
    senv = service_env(cloud)
    token = cloud.token()
    img = cloud.request("POST", "image", "/v2/images", json={"name": "cut", "disk_format": "raw",
                                                            "container_format": "bare"}).json()
    iid = img["id"]
    u = urlparse(cloud.urls["image"])
    total = 16 * MiB
    s = socket.create_connection((u.hostname, u.port))
    s.sendall(("PUT /v2/images/%s/file HTTP/1.1\r\nHost: x\r\nX-Auth-Token: %s\r\n"
               "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % (iid, token, total)).encode())
    block = os.urandom(MiB)
    for _ in range(10):   # 10 of 16 MiB: three segments are complete in swift
        s.sendall(block)
    time.sleep(0.5)
    s.close()
    wait_status(cloud, iid, "queued")
    deadline = time.time() + 20
    while time.time() < deadline and swift_names(cloud, senv, iid):
        time.sleep(0.2)
    assert swift_names(cloud, senv, iid) == []
    # and the image can be uploaded again (unknown size: chunked -> segments)
    def gen():
        for _ in range(5):
            yield block
    r = requests.put(cloud.urls["image"] + "/v2/images/%s/file" % iid, data=gen(),
                     headers={"X-Auth-Token": token, "Content-Type": "application/octet-stream"}, timeout=120)
    assert r.status_code == 204, r.text
    wait_status(cloud, iid, "active")
    assert len(swift_names(cloud, senv, iid)) == 1 + 2   # manifest + 2 segments of 3 MiB (5 MiB)
    r = cloud.request("GET", "image", "/v2/images/%s/file" % iid)
    assert r.content == block * 5
    cloud.request("DELETE", "image", "/v2/images/" + iid)
    assert swift_names(cloud, senv, iid) == []


def test_swift_store_needs_object_service():
    d = tempfile.mkdtemp(prefix="ts-e2e-noobj-", dir="/var/tmp")
    try:
        args = [TINYSTACK, "init", "--data", d, "--admin-password", "x"]
        sets = {"DEFAULT.enabled_services": "identity,image", "image.default_store": "swift",
                "identity.port": str(free_port()), "image.port": str(free_port()),
                "identity.password_hash_rounds": "4"}
        for k, v in sets.items():
            args += ["--set", "%s=%s" % (k, v)]
        subprocess.run(args, check=True, capture_output=True, text=True)
        p = subprocess.run([TINYSTACK, "serve", "--data", d], capture_output=True, text=True, timeout=30)
        assert p.returncode != 0
        assert "needs the object service" in p.stdout + p.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)
