"""End-to-end tests of the block storage service (Cinder v3) with the real openstack CLI and
plain requests: volumes, types and access, snapshots with data checks, image round trips,
transfers, quotas, attachments, isolation between projects, concurrency and a crash."""
import concurrent.futures
import hashlib
import os
import time
import uuid

import pytest


def proj_id(cloud, env=None):
    return cloud.openstack("token", "issue", env=env)["project_id"]


def vol_url(pid, suffix=""):
    return "/v3/%s%s" % (pid, suffix)


def wait_volume(cloud, pid, vid, want, token=None, timeout=60):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        r = cloud.request("GET", "volume", vol_url(pid, "/volumes/%s" % vid), token=token)
        if r.status_code == 404 and want == "deleted":
            return None
        assert r.status_code == 200, r.text
        last = r.json()["volume"]
        if last["status"] == want:
            return last
        if last["status"].startswith("error") and not want.startswith("error"):
            raise AssertionError("volume went to %s" % last["status"])
        time.sleep(0.1)
    raise AssertionError("volume %s not %s: %s" % (vid, want, last and last["status"]))


def wait_snapshot(cloud, pid, sid, want, token=None, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = cloud.request("GET", "volume", vol_url(pid, "/snapshots/%s" % sid), token=token)
        if r.status_code == 404 and want == "deleted":
            return None
        assert r.status_code == 200, r.text
        s = r.json()["snapshot"]
        if s["status"] == want:
            return s
        time.sleep(0.1)
    raise AssertionError("snapshot %s not %s" % (sid, want))


def backing_file(cloud, vid):
    return os.path.join(cloud.data_dir, "volumes", "file", "volume-%s" % vid)


def create(cloud, pid, token=None, mv=None, **body):
    body.setdefault("size", 1)
    headers = {"OpenStack-API-Version": "volume %s" % mv} if mv else {}
    return cloud.request("POST", "volume", vol_url(pid, "/volumes"), token=token, json={"volume": body},
                         headers=headers)


def set_quota(cloud, pid, **limits):
    # admin PUT os-quota-sets (the CLI's "quota set" also wants a compute endpoint)
    r = cloud.request("PUT", "volume", vol_url(proj_id(cloud), "/os-quota-sets/%s" % pid), json={"quota_set": limits})
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def admin_pid(cloud):
    return proj_id(cloud)


def test_version_discovery(cloud):
    r = cloud.request("GET", "volume", "/", token="")
    assert r.status_code == 300
    v = r.json()["versions"][0]
    assert v["id"] == "v3.0" and v["min_version"] == "3.0" and v["version"] == "3.70"
    r = cloud.request("GET", "volume", "/v3/", token="", headers={"OpenStack-API-Version": "volume 3.70"})
    assert r.status_code == 200 and r.headers["OpenStack-API-Version"] == "volume 3.70"
    r = cloud.request("GET", "volume", "/v3/", token="", headers={"OpenStack-API-Version": "volume 3.71"})
    assert r.status_code == 406


def test_cli_create_list_show_extend_delete(cloud, admin_pid):
    name = "v-" + uuid.uuid4().hex[:6]
    v = cloud.openstack("volume", "create", "--size", "1", "--property", "k=v", name)
    assert v["size"] == 1 and v["name"] == name
    wait_volume(cloud, admin_pid, v["id"], "available")
    assert os.path.getsize(backing_file(cloud, v["id"])) == 1 << 30
    names = [x["Name"] for x in cloud.openstack("volume", "list")]
    assert name in names
    s = cloud.openstack("volume", "show", name)
    assert s["status"] == "available" and s["properties"] in ({"k": "v"}, "k='v'")
    cloud.openstack("volume", "set", "--size", "2", name)
    wait_volume(cloud, admin_pid, v["id"], "available")
    assert cloud.openstack("volume", "show", name)["size"] == 2
    assert os.path.getsize(backing_file(cloud, v["id"])) == 2 << 30
    cloud.openstack("volume", "set", "--bootable", "--name", name + "-x", name)
    s = cloud.openstack("volume", "show", name + "-x")
    assert s["bootable"] == "true"
    cloud.openstack("volume", "delete", name + "-x")
    wait_volume(cloud, admin_pid, v["id"], "deleted")
    assert not os.path.exists(backing_file(cloud, v["id"]))


def test_list_filters_sort_pagination(cloud, admin_pid):
    tag = uuid.uuid4().hex[:6]
    ids = []
    for i in range(5):
        r = create(cloud, admin_pid, name="p-%s-%d" % (tag, i), metadata={"tag": tag})
        assert r.status_code == 202
        ids.append(r.json()["volume"]["id"])
    for vid in ids:
        wait_volume(cloud, admin_pid, vid, "available")
    r = cloud.request("GET", "volume", vol_url(admin_pid, "/volumes/detail?metadata={'tag':'%s'}&sort=name:asc" % tag))
    assert [v["name"] for v in r.json()["volumes"]] == ["p-%s-%d" % (tag, i) for i in range(5)]
    seen = []
    marker = None
    while True:
        q = "/volumes?metadata={'tag':'%s'}&sort=name:desc&limit=2" % tag + ("&marker=%s" % marker if marker else "")
        page = cloud.request("GET", "volume", vol_url(admin_pid, q)).json()
        seen += [v["name"] for v in page["volumes"]]
        if "volumes_links" not in page:
            break
        marker = page["volumes"][-1]["id"]
    assert seen == ["p-%s-%d" % (tag, i) for i in reversed(range(5))]
    r = cloud.request("GET", "volume", vol_url(admin_pid, "/volumes/detail?name=p-%s-3" % tag))
    assert [v["id"] for v in r.json()["volumes"]] == [ids[3]]
    r = cloud.request("GET", "volume", vol_url(admin_pid, "/volumes?sort=bogus:asc"))
    assert r.status_code == 400
    r = cloud.request("GET", "volume", vol_url(admin_pid, "/volumes?with_count=true&metadata={'tag':'%s'}" % tag),
                      headers={"OpenStack-API-Version": "volume 3.45"})
    assert r.json()["count"] == 5
    for vid in ids:
        assert cloud.request("DELETE", "volume", vol_url(admin_pid, "/volumes/%s" % vid)).status_code == 202


def test_types_and_private_access(cloud, admin_pid):
    a = cloud.new_project_user(prefix="va")
    b = cloud.new_project_user(prefix="vb")
    tname = "priv-" + uuid.uuid4().hex[:6]
    t = cloud.openstack("volume", "type", "create", "--private", "--property", "volume_backend_name=file", tname)
    cloud.openstack("volume", "type", "set", "--project", a.project_id, tname)
    a_types = [x["Name"] for x in cloud.openstack("volume", "type", "list", env=a.env)]
    b_types = [x["Name"] for x in cloud.openstack("volume", "type", "list", env=b.env)]
    assert tname in a_types and tname not in b_types
    r = cloud.request("GET", "volume", vol_url(b.project_id, "/types/%s" % t["id"]), token=b.token())
    assert r.status_code == 404
    v = cloud.openstack("volume", "create", "--size", "1", "--type", tname, "tv", env=a.env)
    wait_volume(cloud, a.project_id, v["id"], "available", token=a.token())
    p = cloud.openstack("volume", "create", "--size", "1", "--type", tname, "tv", env=b.env, check=False)
    assert p.returncode != 0
    # a type in use cannot be deleted
    r = cloud.request("DELETE", "volume", vol_url(admin_pid, "/types/%s" % t["id"]))
    assert r.status_code == 400
    cloud.openstack("volume", "delete", v["id"], env=a.env)
    wait_volume(cloud, a.project_id, v["id"], "deleted", token=a.token())
    # a member may not create types
    p = cloud.openstack("volume", "type", "create", "nope-" + tname, env=a.env, check=False)
    assert p.returncode != 0 and "403" in p.stderr
    cloud.openstack("volume", "type", "delete", tname)


def test_snapshot_and_create_from_snapshot_data(cloud, admin_pid):
    v = create(cloud, admin_pid, name="snapsrc").json()["volume"]
    wait_volume(cloud, admin_pid, v["id"], "available")
    pattern = os.urandom(4096) * 16
    with open(backing_file(cloud, v["id"]), "r+b") as f:
        f.seek(12345678)
        f.write(pattern)
    s = cloud.openstack("volume", "snapshot", "create", "--volume", v["id"], "--property", "a=b", "s1")
    wait_snapshot(cloud, admin_pid, s["id"], "available")
    # the snapshot keeps the data even when the volume changes afterwards
    with open(backing_file(cloud, v["id"]), "r+b") as f:
        f.seek(12345678)
        f.write(b"\0" * len(pattern))
    c = cloud.openstack("volume", "create", "--snapshot", s["id"], "--size", "2", "fromsnap")
    wait_volume(cloud, admin_pid, c["id"], "available")
    with open(backing_file(cloud, c["id"]), "rb") as f:
        f.seek(12345678)
        assert f.read(len(pattern)) == pattern
    assert os.path.getsize(backing_file(cloud, c["id"])) == 2 << 30
    # a volume with snapshots cannot be deleted
    r = cloud.request("DELETE", "volume", vol_url(admin_pid, "/volumes/%s" % v["id"]))
    assert r.status_code == 400
    # revert (3.40) brings the pattern back
    r = cloud.request("POST", "volume", vol_url(admin_pid, "/volumes/%s/action" % v["id"]),
                      json={"revert": {"snapshot_id": s["id"]}}, headers={"OpenStack-API-Version": "volume 3.40"})
    assert r.status_code == 202, r.text
    wait_volume(cloud, admin_pid, v["id"], "available")
    with open(backing_file(cloud, v["id"]), "rb") as f:
        f.seek(12345678)
        assert f.read(len(pattern)) == pattern
    # clone a volume
    r = create(cloud, admin_pid, source_volid=c["id"], name="clone", size=None)
    assert r.status_code == 202
    cl = wait_volume(cloud, admin_pid, r.json()["volume"]["id"], "available")
    assert cl["size"] == 2
    with open(backing_file(cloud, cl["id"]), "rb") as f:
        f.seek(12345678)
        assert f.read(len(pattern)) == pattern
    cloud.openstack("volume", "snapshot", "delete", s["id"])
    wait_snapshot(cloud, admin_pid, s["id"], "deleted")
    for vid in (v["id"], c["id"], cl["id"]):
        cloud.openstack("volume", "delete", vid)


def test_snapshot_in_use_needs_force(cloud, admin_pid):
    v = create(cloud, admin_pid).json()["volume"]
    wait_volume(cloud, admin_pid, v["id"], "available")
    r = cloud.request("POST", "volume", vol_url(admin_pid, "/volumes/%s/action" % v["id"]),
                      json={"os-attach": {"instance_uuid": str(uuid.uuid4()), "mountpoint": "/dev/vdb"}})
    assert r.status_code == 202
    r = cloud.request("POST", "volume", vol_url(admin_pid, "/snapshots"), json={"snapshot": {"volume_id": v["id"]}})
    assert r.status_code == 400
    r = cloud.request("POST", "volume", vol_url(admin_pid, "/snapshots"),
                      json={"snapshot": {"volume_id": v["id"], "force": True}})
    assert r.status_code == 202
    sid = r.json()["snapshot"]["id"]
    wait_snapshot(cloud, admin_pid, sid, "available")
    cloud.request("DELETE", "volume", vol_url(admin_pid, "/snapshots/%s" % sid))
    wait_snapshot(cloud, admin_pid, sid, "deleted")
    cloud.request("POST", "volume", vol_url(admin_pid, "/volumes/%s/action" % v["id"]), json={"os-detach": {}})
    wait_volume(cloud, admin_pid, v["id"], "available")
    cloud.request("DELETE", "volume", vol_url(admin_pid, "/volumes/%s" % v["id"]))


def test_delete_in_use_is_400_attachments_api(cloud, admin_pid):
    v = create(cloud, admin_pid, name="att").json()["volume"]
    wait_volume(cloud, admin_pid, v["id"], "available")
    h = {"OpenStack-API-Version": "volume 3.44"}
    server = str(uuid.uuid4())
    r = cloud.request("POST", "volume", vol_url(admin_pid, "/attachments"), headers=h,
                      json={"attachment": {"volume_uuid": v["id"], "instance_uuid": server}})
    assert r.status_code == 200, r.text
    att = r.json()["attachment"]
    assert att["status"] == "reserved"
    assert wait_volume(cloud, admin_pid, v["id"], "reserved")
    r = cloud.request("PUT", "volume", vol_url(admin_pid, "/attachments/%s" % att["id"]), headers=h,
                      json={"attachment": {"connector": {"host": "h1", "initiator": "iqn.x", "mountpoint": "/dev/vdb"}}})
    assert r.status_code == 200, r.text
    ci = r.json()["attachment"]["connection_info"]
    assert ci["driver_volume_type"] == "file"
    assert ci["data"]["device_path"] == backing_file(cloud, v["id"])
    r = cloud.request("POST", "volume", vol_url(admin_pid, "/attachments/%s/action" % att["id"]), headers=h,
                      json={"os-complete": None})
    assert r.status_code == 204
    vol = wait_volume(cloud, admin_pid, v["id"], "in-use")
    assert vol["attachments"][0]["server_id"] == server
    r = cloud.request("DELETE", "volume", vol_url(admin_pid, "/volumes/%s" % v["id"]))
    assert r.status_code == 400
    assert "badRequest" in r.json()
    # the CLI shows the attachment too
    s = cloud.openstack("volume", "show", v["id"])
    assert s["status"] == "in-use"
    r = cloud.request("DELETE", "volume", vol_url(admin_pid, "/attachments/%s" % att["id"]), headers=h)
    assert r.status_code == 200
    wait_volume(cloud, admin_pid, v["id"], "available")
    # the older actions: reserve, initialize_connection, attach, detach
    act = lambda body: cloud.request("POST", "volume", vol_url(admin_pid, "/volumes/%s/action" % v["id"]), json=body)
    assert act({"os-reserve": None}).status_code == 202
    r = act({"os-initialize_connection": {"connector": {"host": "h1"}}})
    assert r.status_code == 200 and r.json()["connection_info"]["data"]["path"] == backing_file(cloud, v["id"])
    assert act({"os-attach": {"instance_uuid": server, "mountpoint": "/dev/vdc", "mode": "rw"}}).status_code == 202
    wait_volume(cloud, admin_pid, v["id"], "in-use")
    assert cloud.request("DELETE", "volume", vol_url(admin_pid, "/volumes/%s" % v["id"])).status_code == 400
    assert act({"os-begin_detaching": None}).status_code == 202
    assert act({"os-detach": {}}).status_code == 202
    wait_volume(cloud, admin_pid, v["id"], "available")
    assert cloud.request("DELETE", "volume", vol_url(admin_pid, "/volumes/%s" % v["id"])).status_code == 202


def test_bad_size_and_bad_body(cloud, admin_pid):
    for size in (0, -1, "abc", 1.5, None):
        r = create(cloud, admin_pid, size=size)
        assert r.status_code == 400, (size, r.text)
        assert "badRequest" in r.json()
    r = cloud.request("POST", "volume", vol_url(admin_pid, "/volumes"), data="{not json",
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = create(cloud, admin_pid, volume_type="no-such-type")
    assert r.status_code in (400, 404)
    r = create(cloud, admin_pid, availability_zone="elsewhere")
    assert r.status_code == 400


def test_quota_exceeded_413(cloud):
    u = cloud.new_project_user(prefix="vq")
    set_quota(cloud, u.project_id, volumes=2, gigabytes=5)
    tok = u.token()
    r = create(cloud, u.project_id, token=tok, size=6)
    assert r.status_code == 413, r.text
    assert "overLimit" in r.json()
    ids = []
    for _ in range(2):
        r = create(cloud, u.project_id, token=tok, size=1)
        assert r.status_code == 202
        ids.append(r.json()["volume"]["id"])
    r = create(cloud, u.project_id, token=tok, size=1)
    assert r.status_code == 413
    assert "VolumeLimitExceeded" in r.json()["overLimit"]["message"]
    q = cloud.request("GET", "volume", vol_url(u.project_id, "/os-quota-sets/%s?usage=True" % u.project_id),
                      token=tok).json()["quota_set"]
    assert q["volumes"]["in_use"] == 2 and q["volumes"]["limit"] == 2 and q["gigabytes"]["in_use"] == 2
    lim = cloud.request("GET", "volume", vol_url(u.project_id, "/limits"), token=tok).json()["limits"]["absolute"]
    assert lim["maxTotalVolumes"] == 2 and lim["totalVolumesUsed"] == 2
    for vid in ids:
        wait_volume(cloud, u.project_id, vid, "available", token=tok)
    # extend past the gigabytes quota
    r = cloud.request("POST", "volume", vol_url(u.project_id, "/volumes/%s/action" % ids[0]), token=tok,
                      json={"os-extend": {"new_size": 5}})
    assert r.status_code == 413
    for vid in ids:
        cloud.request("DELETE", "volume", vol_url(u.project_id, "/volumes/%s" % vid), token=tok)


def test_other_projects_volume_invisible(cloud):
    a = cloud.new_project_user(prefix="vi")
    b = cloud.new_project_user(prefix="vj")
    v = create(cloud, a.project_id, token=a.token()).json()["volume"]
    wait_volume(cloud, a.project_id, v["id"], "available", token=a.token())
    for method, suffix, body in (("GET", "", None), ("PUT", "", {"volume": {"name": "x"}}), ("DELETE", "", None),
                                 ("POST", "/action", {"os-extend": {"new_size": 3}}), ("GET", "/metadata", None)):
        r = cloud.request(method, "volume", vol_url(b.project_id, "/volumes/%s%s" % (v["id"], suffix)), token=b.token(),
                          json=body)
        assert r.status_code == 404, (method, suffix, r.status_code)
        assert "itemNotFound" in r.json()
    listed = cloud.request("GET", "volume", vol_url(b.project_id, "/volumes/detail"), token=b.token()).json()["volumes"]
    assert v["id"] not in [x["id"] for x in listed]
    r = cloud.request("POST", "volume", vol_url(b.project_id, "/snapshots"), token=b.token(),
                      json={"snapshot": {"volume_id": v["id"]}})
    assert r.status_code == 404
    p = cloud.openstack("volume", "show", v["id"], env=b.env, check=False)
    assert p.returncode != 0
    cloud.request("DELETE", "volume", vol_url(a.project_id, "/volumes/%s" % v["id"]), token=a.token())


def test_transfer_between_projects(cloud):
    a = cloud.new_project_user(prefix="vt")
    b = cloud.new_project_user(prefix="vu")
    v = cloud.openstack("volume", "create", "--size", "1", "moving", env=a.env)
    wait_volume(cloud, a.project_id, v["id"], "available", token=a.token())
    t = cloud.openstack("volume", "transfer", "request", "create", "--name", "tr", v["id"], "-f", "json", env=a.env)
    assert t["auth_key"]
    wait_volume(cloud, a.project_id, v["id"], "awaiting-transfer", token=a.token())
    p = cloud.openstack("volume", "transfer", "request", "accept", "--auth-key", "wrongkey", t["id"], env=b.env,
                        check=False)
    assert p.returncode != 0
    cloud.openstack("volume", "transfer", "request", "accept", "--auth-key", t["auth_key"], t["id"], env=b.env)
    got = cloud.openstack("volume", "show", v["id"], env=b.env)
    assert got["status"] == "available"
    r = cloud.request("GET", "volume", vol_url(a.project_id, "/volumes/%s" % v["id"]), token=a.token())
    assert r.status_code == 404
    cloud.openstack("volume", "delete", v["id"], env=b.env)


def test_concurrent_creates_no_5xx(cloud):
    u = cloud.new_project_user(prefix="vc")
    set_quota(cloud, u.project_id, volumes=100)
    tok = u.token()

    def one(i):
        r = create(cloud, u.project_id, token=tok, name="c%d" % i)
        return r.status_code, r.json()["volume"]["id"] if r.status_code == 202 else None

    with concurrent.futures.ThreadPoolExecutor(20) as ex:
        res = list(ex.map(one, range(20)))
    assert all(s == 202 for s, _ in res), res
    ids = [i for _, i in res]
    for vid in ids:
        wait_volume(cloud, u.project_id, vid, "available", token=tok)

    def delete(vid):
        return cloud.request("DELETE", "volume", vol_url(u.project_id, "/volumes/%s" % vid), token=tok).status_code

    with concurrent.futures.ThreadPoolExecutor(20) as ex:
        assert set(ex.map(delete, ids)) == {202}
    for vid in ids:
        wait_volume(cloud, u.project_id, vid, "deleted", token=tok)


def test_misc_resources(cloud, admin_pid):
    azs = cloud.openstack("availability", "zone", "list", "--volume")
    assert any(z["Zone Name"] == "nova" for z in azs)
    svcs = cloud.openstack("volume", "service", "list")
    assert {s["Binary"] for s in svcs} == {"cinder-scheduler", "cinder-volume"}
    assert all(s["State"] == "up" for s in svcs)
    r = cloud.request("GET", "volume", vol_url(admin_pid, "/scheduler-stats/get_pools?detail=True"))
    pools = r.json()["pools"]
    assert pools and pools[0]["capabilities"]["total_capacity_gb"] > 0


def image_up(cloud):
    return cloud.service_up("image")


def test_create_from_image_and_upload_to_image(cloud, admin_pid, tmp_path):
    if not image_up(cloud):
        pytest.skip("image service not built")
    data = os.urandom(3 << 20)
    src = tmp_path / "img.raw"
    src.write_bytes(data)
    img = cloud.openstack("image", "create", "--disk-format", "raw", "--container-format", "bare", "--file", str(src),
                          "vimg-" + uuid.uuid4().hex[:6])
    v = cloud.openstack("volume", "create", "--image", img["id"], "--size", "1", "fromimg")
    vol = wait_volume(cloud, admin_pid, v["id"], "available")
    assert vol["bootable"] == "true"
    assert vol["volume_image_metadata"]["image_id"] == img["id"]
    with open(backing_file(cloud, v["id"]), "rb") as f:
        assert f.read(len(data)) == data
    # upload back to the image service (as qcow2: sparse, small) and compare bytes
    name = "up-" + uuid.uuid4().hex[:6]
    r = cloud.request("POST", "volume", vol_url(admin_pid, "/volumes/%s/action" % v["id"]),
                      json={"os-volume_upload_image": {"image_name": name, "disk_format": "qcow2",
                                                       "container_format": "bare"}})
    assert r.status_code == 202, r.text
    new_id = r.json()["os-volume_upload_image"]["image_id"]
    wait_volume(cloud, admin_pid, v["id"], "available")
    deadline = time.time() + 60
    while time.time() < deadline:
        st = cloud.openstack("image", "show", new_id)["status"]
        if st == "active":
            break
        time.sleep(0.2)
    out = tmp_path / "back.qcow2"
    cloud.openstack("image", "save", "--file", str(out), new_id)
    raw = tmp_path / "back.raw"
    cloud.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(out), str(raw)])
    assert os.path.getsize(raw) == 1 << 30
    with open(raw, "rb") as f:
        assert f.read(len(data)) == data
        rest = f.read()
    assert rest.count(0) == len(rest)
    # too small a volume for the image
    big = tmp_path / "big.raw"
    with open(big, "wb") as f:
        f.truncate((1 << 30) + 4096)
        f.write(b"x")
    img2 = cloud.openstack("image", "create", "--disk-format", "raw", "--container-format", "bare", "--file", str(big),
                           "vbig-" + uuid.uuid4().hex[:6])
    r = create(cloud, admin_pid, imageRef=img2["id"], size=1)
    assert r.status_code == 400
    cloud.openstack("volume", "delete", v["id"])
    cloud.openstack("image", "delete", img["id"], new_id, img2["id"])


def test_crash_during_create_from_image(make_cloud, tmp_path):
    c = make_cloud()
    if not c.service_up("image"):
        pytest.skip("image service not built")
    pid = proj_id(c)
    data = os.urandom(1 << 20) * 400   # 400 MiB, not sparse
    src = tmp_path / "big.raw"
    src.write_bytes(data)
    img = c.openstack("image", "create", "--disk-format", "raw", "--container-format", "bare", "--file", str(src), "crash")
    r = create(c, pid, imageRef=img["id"], size=1)
    assert r.status_code == 202
    vid = r.json()["volume"]["id"]
    time.sleep(0.3)
    c.kill9()
    c.start()
    vol = None
    deadline = time.time() + 30
    while time.time() < deadline:
        vol = c.request("GET", "volume", vol_url(pid, "/volumes/%s" % vid)).json()["volume"]
        if vol["status"] in ("available", "error"):
            break
        time.sleep(0.1)
    assert vol["status"] in ("available", "error"), vol["status"]
    path = backing_file(c, vid)
    if vol["status"] == "available":
        with open(path, "rb") as f:
            assert f.read(len(data)) == data
    leftovers = [n for n in os.listdir(os.path.dirname(path)) if n.startswith(".tmp-")]
    assert leftovers == []
    # the volume can be deleted either way
    assert c.request("DELETE", "volume", vol_url(pid, "/volumes/%s" % vid)).status_code == 202
    wait_volume(c, pid, vid, "deleted")


def wait_backup(cloud, pid, bid, want, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = cloud.request("GET", "volume", vol_url(pid, "/backups/%s" % bid))
        if r.status_code == 404 and want == "deleted":
            return None
        b = r.json()["backup"]
        if b["status"] == want:
            return b
        time.sleep(0.1)
    raise AssertionError("backup %s not %s" % (bid, want))


def test_backup_create_restore_delete(cloud, admin_pid):
    v = create(cloud, admin_pid, name="bsrc").json()["volume"]
    wait_volume(cloud, admin_pid, v["id"], "available")
    pattern = os.urandom(65536)
    with open(backing_file(cloud, v["id"]), "r+b") as f:
        f.seek(777777)
        f.write(pattern)
    b = cloud.openstack("volume", "backup", "create", "--name", "b1", v["id"])
    wait_backup(cloud, admin_pid, b["id"], "available")
    wait_volume(cloud, admin_pid, v["id"], "available")
    listed = [x["ID"] for x in cloud.openstack("volume", "backup", "list")]
    assert b["id"] in listed
    # restore into a new volume
    r = cloud.request("POST", "volume", vol_url(admin_pid, "/backups/%s/restore" % b["id"]), json={"restore": {}})
    assert r.status_code == 202, r.text
    nv = r.json()["restore"]["volume_id"]
    wait_volume(cloud, admin_pid, nv, "available")
    with open(backing_file(cloud, nv), "rb") as f:
        f.seek(777777)
        assert f.read(len(pattern)) == pattern
    # restore over an existing volume
    t = create(cloud, admin_pid, name="btarget").json()["volume"]
    wait_volume(cloud, admin_pid, t["id"], "available")
    r = cloud.request("POST", "volume", vol_url(admin_pid, "/backups/%s/restore" % b["id"]),
                      json={"restore": {"volume_id": t["id"]}})
    assert r.status_code == 202
    wait_volume(cloud, admin_pid, t["id"], "available")
    with open(backing_file(cloud, t["id"]), "rb") as f:
        f.seek(777777)
        assert f.read(len(pattern)) == pattern
    cloud.openstack("volume", "backup", "delete", b["id"])
    wait_backup(cloud, admin_pid, b["id"], "deleted")
    for vid in (v["id"], nv, t["id"]):
        cloud.request("DELETE", "volume", vol_url(admin_pid, "/volumes/%s" % vid))


def usage_rows(cloud):
    """The maintained usage totals next to the same totals summed from the rows."""
    import sqlite3
    db = sqlite3.connect(os.path.join(cloud.data_dir, "volume.db"), timeout=30)
    try:
        kept = {r[0]: tuple(r[1:]) for r in db.execute(
            "SELECT project_id, volumes, snapshots, gigabytes FROM volume_usage_projects"
            " WHERE volumes != 0 OR snapshots != 0 OR gigabytes != 0")}
        summed = {r[0]: tuple(r[1:]) for r in db.execute(
            "SELECT project_id, SUM(nv), SUM(ns), SUM(gb) FROM (SELECT project_id, 1 AS nv, 0 AS ns, size AS gb"
            " FROM volumes UNION ALL SELECT project_id, 0, 1, size FROM snapshots) GROUP BY project_id")}
        kept_be = {r[0]: r[1] for r in db.execute(
            "SELECT backend, gigabytes FROM volume_usage_backends WHERE gigabytes != 0")}
        summed_be = {r[0]: r[1] for r in db.execute(
            "SELECT backend, SUM(gb) FROM (SELECT backend, size AS gb FROM volumes WHERE backend IS NOT NULL"
            " UNION ALL SELECT v.backend, s.size FROM snapshots s JOIN volumes v ON v.id = s.volume_id"
            " WHERE v.backend IS NOT NULL) GROUP BY backend")}
    finally:
        db.close()
    return kept, summed, kept_be, summed_be


def test_usage_totals_follow_creates_snapshots_extends_transfers_and_restart(make_cloud):
    """The quota check reads per-project totals kept by triggers (not sums over all volumes):
    they must match the rows after every kind of change, and be recomputed at start."""
    c = make_cloud()
    a = c.new_project_user(prefix="vua")
    b = c.new_project_user(prefix="vub")
    set_quota(c, a.project_id, volumes=3, gigabytes=4)
    tok = a.token()
    ids = []
    for _ in range(2):
        r = create(c, a.project_id, token=tok, size=1)
        assert r.status_code == 202, r.text
        ids.append(r.json()["volume"]["id"])
    for vid in ids:
        wait_volume(c, a.project_id, vid, "available", token=tok)
    r = c.request("POST", "volume", vol_url(a.project_id, "/snapshots"), token=tok,
                  json={"snapshot": {"volume_id": ids[0]}})
    assert r.status_code == 202, r.text
    sid = r.json()["snapshot"]["id"]
    wait_snapshot(c, a.project_id, sid, "available", token=tok)
    r = c.request("POST", "volume", vol_url(a.project_id, "/volumes/%s/action" % ids[1]), token=tok,
                  json={"os-extend": {"new_size": 2}})
    assert r.status_code == 202, r.text
    wait_volume(c, a.project_id, ids[1], "available", token=tok)
    kept, summed, kept_be, summed_be = usage_rows(c)
    assert kept == summed and kept_be == summed_be, (kept, summed, kept_be, summed_be)
    assert kept[a.project_id] == (2, 1, 4)
    # 1 + 2 + a 1 GB snapshot = the 4 GB quota
    r = create(c, a.project_id, token=tok, size=1)
    assert r.status_code == 413, r.text
    assert "4G has been consumed" in r.json()["overLimit"]["message"]
    # moving a volume to another project moves its usage
    t = c.request("POST", "volume", vol_url(a.project_id, "/os-volume-transfer"), token=tok,
                  json={"transfer": {"volume_id": ids[1], "name": "t"}}).json()["transfer"]
    r = c.request("POST", "volume", vol_url(b.project_id, "/os-volume-transfer/%s/accept" % t["id"]),
                  token=b.token(), json={"accept": {"auth_key": t["auth_key"]}})
    assert r.status_code == 202, r.text
    kept, summed, kept_be, summed_be = usage_rows(c)
    assert kept == summed and kept_be == summed_be, (kept, summed, kept_be, summed_be)
    assert kept[a.project_id] == (1, 1, 2) and kept[b.project_id] == (1, 0, 2)
    r = create(c, a.project_id, token=tok, size=2)
    assert r.status_code == 202, r.text
    ids.append(r.json()["volume"]["id"])
    wait_volume(c, a.project_id, ids[2], "available", token=tok)
    # deletes give it back
    assert c.request("DELETE", "volume", vol_url(a.project_id, "/snapshots/%s" % sid), token=tok).status_code == 202
    wait_snapshot(c, a.project_id, sid, "deleted", token=tok)
    assert c.request("DELETE", "volume", vol_url(a.project_id, "/volumes/%s" % ids[0]),
                     token=tok).status_code == 202
    wait_volume(c, a.project_id, ids[0], "deleted", token=tok)
    kept, summed, kept_be, summed_be = usage_rows(c)
    assert kept == summed and kept_be == summed_be, (kept, summed, kept_be, summed_be)
    assert kept[a.project_id] == (1, 0, 2)
    # a crash, and totals that went wrong behind the service's back: recomputed at start
    c.kill9()
    import sqlite3
    db = sqlite3.connect(os.path.join(c.data_dir, "volume.db"), timeout=30)
    db.execute("UPDATE volume_usage_projects SET volumes = 99, gigabytes = 99")
    db.execute("UPDATE volume_usage_backends SET gigabytes = 999")
    db.commit()
    db.close()
    c.start()
    kept, summed, kept_be, summed_be = usage_rows(c)
    assert kept == summed and kept_be == summed_be, (kept, summed, kept_be, summed_be)
    r = create(c, a.project_id, token=tok, size=2)
    assert r.status_code == 202, r.text
