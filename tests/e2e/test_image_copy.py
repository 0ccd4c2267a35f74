"""End-to-end tests of the interoperable import across stores: a cloud with the file store
(default) and the swift store enabled ([image] stores = file,swift), the copy-image method
through openstacksdk (the client Nova and Tempest use; /usr/bin/openstack 6.0 has no
`image import`), glance-direct into chosen stores, and the bytes checked where they land:
in the object service with /usr/bin/swift as the service user, in the file store's
directory on disk."""
import hashlib
import os
import time

import openstack
import pytest

from test_image_swift import SWIFT, MiB, make_file, md5_of, service_env, swift_names


@pytest.fixture(scope="module")
def two_store_cloud(tmp_path_factory):
    # module scope: one cloud for every test here (make_cloud is per test)
    import tempfile
    import shutil
    from conftest import Cloud, _build_ok
    _build_ok()
    d = tempfile.mkdtemp(prefix="ts-e2e-p-", dir="/var/tmp")
    c = Cloud(d, {"image.stores": "file,swift", "image.default_store": "file",
                  "image.swift_large_object_size": "8M", "image.swift_large_object_chunk_size": "3M"})
    c.init().start()
    yield c
    c.stop()
    if os.environ.get("TS_KEEP_DATA") is None:
        shutil.rmtree(d, ignore_errors=True)


def sdk(cloud):
    """openstacksdk as admin, from the cloud's clouds.yaml."""
    from openstack import config
    region = config.OpenStackConfig(config_files=[cloud.clouds_yaml]).get_one("tinystack")
    return openstack.connection.Connection(config=region)


def show(cloud, image_id):
    r = cloud.request("GET", "image", "/v2/images/" + image_id)
    assert r.status_code == 200, r.text
    return r.json()


def wait_import_done(cloud, image_id, timeout=60):
    """Tempest's wait_for_image_copied_to_stores: os_glance_importing_to_stores set and empty."""
    deadline = time.time() + timeout
    img = None
    while time.time() < deadline:
        img = show(cloud, image_id)
        left = img.get("os_glance_importing_to_stores")
        if left is not None and not left and img["status"] == "active":
            return img
        time.sleep(0.1)
    raise AssertionError("import of %s did not finish: %s" % (image_id, img))


def import_(cloud, image_id, body, token=None):
    return cloud.request("POST", "image", "/v2/images/%s/import" % image_id, token=token, json=body)


def file_store_path(cloud, image_id):
    return os.path.join(cloud.data_dir, "images", image_id)


def test_info_lists_copy_image_and_both_stores(two_store_cloud):
    cloud = two_store_cloud
    methods = cloud.request("GET", "image", "/v2/info/import").json()["import-methods"]["value"]
    assert "copy-image" in methods and "glance-direct" in methods
    stores = cloud.request("GET", "image", "/v2/info/stores").json()["stores"]
    assert [s["id"] for s in stores] == ["file", "swift"]
    assert stores[0].get("default") is True


def test_copy_image_file_to_swift(two_store_cloud, tmp_path):
    cloud = two_store_cloud
    senv = service_env(cloud)
    src = tmp_path / "img.raw"
    make_file(src, 10 * MiB + 3, "copy")   # above 8M: lands in swift as an SLO over 3 MiB segments
    img = cloud.openstack("image", "create", "--disk-format", "raw", "--container-format", "bare",
                          "--file", str(src), "copy-me")
    iid = img["id"]
    shown = show(cloud, iid)
    assert shown["status"] == "active" and shown["stores"] == "file"
    assert swift_names(cloud, senv, iid) == []
    fpath = file_store_path(cloud, iid)
    assert md5_of(fpath) == md5_of(src)

    conn = sdk(cloud)
    conn.image.import_image(conn.image.get_image(iid), method="copy-image", stores=["swift"])
    done = wait_import_done(cloud, iid)
    assert done["stores"] == "file,swift"
    assert done["os_glance_failed_import"] == ""
    assert done["status"] == "active" and done["checksum"] == md5_of(src)
    # the bytes are in the object service: manifest + 4 segments, and their content matches
    names = swift_names(cloud, senv, iid)
    assert names[0] == iid and names[1:] == ["%s-%05d" % (iid, i) for i in range(1, 5)], names
    out = tmp_path / "from-swift"
    cloud.run([SWIFT, "download", "glance", iid, "-o", str(out)], env=senv)
    assert md5_of(out) == md5_of(src)
    # the file copy stays, and the image still downloads whole
    assert os.path.exists(fpath)
    saved = tmp_path / "saved"
    cloud.openstack("image", "save", "--file", str(saved), iid)
    assert md5_of(saved) == md5_of(src)

    # again to swift: 400; all_stores: nothing left to copy, 202 and nothing changes
    r = import_(cloud, iid, {"method": {"name": "copy-image"}, "stores": ["swift"]})
    assert r.status_code == 400 and "already present" in r.text, r.text
    r = import_(cloud, iid, {"method": {"name": "copy-image"}, "all_stores": True})
    assert r.status_code == 202, r.text
    assert show(cloud, iid)["stores"] == "file,swift"

    # delete removes both copies
    cloud.openstack("image", "delete", iid)
    assert swift_names(cloud, senv, iid) == []
    assert not os.path.exists(fpath)


def test_copy_image_errors(two_store_cloud):
    cloud = two_store_cloud
    r = cloud.request("POST", "image", "/v2/images", json={"name": "q", "disk_format": "raw",
                                                          "container_format": "bare"})
    qid = r.json()["id"]
    # a queued image cannot be copied
    r = import_(cloud, qid, {"method": {"name": "copy-image"}, "stores": ["swift"]})
    assert r.status_code == 409 and "active" in r.text, r.text
    r = cloud.request("PUT", "image", "/v2/images/%s/file" % qid, data=b"x" * 4096,
                      headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204
    # unknown store: 409 as Glance (UnknownScheme); stores with all_stores: 400; bad types: 400
    r = import_(cloud, qid, {"method": {"name": "copy-image"}, "stores": ["nope"]})
    assert r.status_code == 409, r.text
    r = import_(cloud, qid, {"method": {"name": "copy-image"}, "stores": ["swift"], "all_stores": True})
    assert r.status_code == 400, r.text
    r = import_(cloud, qid, {"method": {"name": "copy-image"}, "stores": "swift"})
    assert r.status_code == 400, r.text
    r = import_(cloud, qid, {"method": {"name": "copy-image"}, "all_stores": "yes"})
    assert r.status_code == 400, r.text
    # glance-direct on an active image: 409
    r = import_(cloud, qid, {"method": {"name": "glance-direct"}})
    assert r.status_code == 409, r.text
    # copy_image is an admin action (Glance's default policy), even for the owner
    user = cloud.new_project_user()
    r = cloud.request("POST", "image", "/v2/images", token=user.token(),
                      json={"name": "mine", "disk_format": "raw", "container_format": "bare"})
    uid = r.json()["id"]
    r = cloud.request("PUT", "image", "/v2/images/%s/file" % uid, token=user.token(), data=b"y" * 100,
                      headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204
    r = import_(cloud, uid, {"method": {"name": "copy-image"}, "stores": ["swift"]}, token=user.token())
    assert r.status_code == 403, r.text
    # the os_glance_* properties are the service's: a user cannot set them
    r = cloud.request("PATCH", "image", "/v2/images/" + uid, token=user.token(),
                      headers={"Content-Type": "application/openstack-images-v2.1-json-patch"},
                      json=[{"op": "add", "path": "/os_glance_importing_to_stores", "value": "swift"}])
    assert r.status_code == 403, r.text
    # an update during or after a copy keeps the import properties
    r = import_(cloud, qid, {"method": {"name": "copy-image"}, "all_stores": True})
    assert r.status_code == 202
    r = cloud.request("PATCH", "image", "/v2/images/" + qid,
                      headers={"Content-Type": "application/openstack-images-v2.1-json-patch"},
                      json=[{"op": "add", "path": "/color", "value": "blue"}])
    assert r.status_code == 200, r.text
    done = wait_import_done(cloud, qid)
    assert done["stores"] == "file,swift" and done["color"] == "blue"
    assert "os_glance_failed_import" in done


def test_glance_direct_to_swift_then_copy_to_file(two_store_cloud, tmp_path):
    cloud = two_store_cloud
    senv = service_env(cloud)
    data = hashlib.sha512(b"direct").digest() * 20000   # 1.28 MB
    r = cloud.request("POST", "image", "/v2/images", json={"name": "d", "disk_format": "raw",
                                                          "container_format": "bare"})
    iid = r.json()["id"]
    r = cloud.request("PUT", "image", "/v2/images/%s/stage" % iid, data=data,
                      headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204
    conn = sdk(cloud)
    conn.image.import_image(conn.image.get_image(iid), method="glance-direct", stores=["swift"])
    done = wait_import_done(cloud, iid)
    assert done["stores"] == "swift" and done["checksum"] == hashlib.md5(data).hexdigest()
    assert swift_names(cloud, senv, iid) == [iid]
    assert not os.path.exists(file_store_path(cloud, iid))

    conn.image.import_image(conn.image.get_image(iid), method="copy-image", stores=["file"])
    done = wait_import_done(cloud, iid)
    assert done["stores"] == "file,swift"   # sorted, as Tempest compares it
    with open(file_store_path(cloud, iid), "rb") as f:
        assert f.read() == data
    r = cloud.request("GET", "image", "/v2/images/%s/file" % iid)
    assert r.status_code == 200 and r.content == data
    cloud.openstack("image", "delete", iid)
    assert swift_names(cloud, senv, iid) == []
    assert not os.path.exists(file_store_path(cloud, iid))


def test_glance_direct_to_all_stores(two_store_cloud):
    cloud = two_store_cloud
    senv = service_env(cloud)
    data = os.urandom(300000)
    r = cloud.request("POST", "image", "/v2/images", json={"name": "all", "disk_format": "raw",
                                                          "container_format": "bare"})
    iid = r.json()["id"]
    r = cloud.request("PUT", "image", "/v2/images/%s/stage" % iid, data=data,
                      headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204
    r = import_(cloud, iid, {"method": {"name": "glance-direct"}, "all_stores": True})
    assert r.status_code == 202, r.text
    done = wait_import_done(cloud, iid)
    assert done["stores"] == "file,swift" and done["size"] == len(data)
    assert swift_names(cloud, senv, iid) == [iid]
    with open(file_store_path(cloud, iid), "rb") as f:
        assert f.read() == data


def test_upload_to_chosen_store(two_store_cloud):
    """PUT /file with X-Image-Meta-Store (Glance with enabled_backends): the data lands there."""
    cloud = two_store_cloud
    senv = service_env(cloud)
    data = os.urandom(200000)
    iid = cloud.request("POST", "image", "/v2/images", json={"name": "to-swift", "disk_format": "raw",
                                                            "container_format": "bare"}).json()["id"]
    r = cloud.request("PUT", "image", "/v2/images/%s/file" % iid, data=data,
                      headers={"Content-Type": "application/octet-stream", "X-Image-Meta-Store": "nope"})
    assert r.status_code == 400, r.text
    assert show(cloud, iid)["status"] == "queued"
    r = cloud.request("PUT", "image", "/v2/images/%s/file" % iid, data=data,
                      headers={"Content-Type": "application/octet-stream", "X-Image-Meta-Store": "swift"})
    assert r.status_code == 204, r.text
    img = show(cloud, iid)
    assert img["stores"] == "swift" and img["checksum"] == hashlib.md5(data).hexdigest()
    assert swift_names(cloud, senv, iid) == [iid]
    assert not os.path.exists(file_store_path(cloud, iid))
    assert cloud.request("GET", "image", "/v2/images/%s/file" % iid).content == data


def test_restart_mid_copy(make_cloud, tmp_path):
    """A copy the server's death interrupts: after the restart the copy lock is free, the
    store it was writing is reported failed, no partial file stays, and a new copy works."""
    cloud = make_cloud(**{"image.stores": "file,swift", "image.default_store": "file"})
    src = tmp_path / "big.raw"
    make_file(src, 128 * MiB, "restart")
    iid = cloud.request("POST", "image", "/v2/images", json={"name": "crash-copy", "disk_format": "raw",
                                                            "container_format": "bare"}).json()["id"]
    with open(src, "rb") as f:
        r = cloud.request("PUT", "image", "/v2/images/%s/file" % iid, data=f, timeout=600,
                          headers={"Content-Type": "application/octet-stream", "X-Image-Meta-Store": "swift"})
    assert r.status_code == 204, r.text
    store = os.path.join(cloud.data_dir, "images")
    r = import_(cloud, iid, {"method": {"name": "copy-image"}, "stores": ["file"]})
    assert r.status_code == 202, r.text
    # a second copy while this one runs: the lock says 409
    r = import_(cloud, iid, {"method": {"name": "copy-image"}, "stores": ["file"]})
    assert r.status_code == 409, r.text
    deadline = time.time() + 120
    while time.time() < deadline and not any(".tmp." in f for f in os.listdir(store)):
        time.sleep(0.01)
    assert any(".tmp." in f for f in os.listdir(store)), "the copy never started writing"
    cloud.kill9()
    cloud.start()
    img = show(cloud, iid)
    assert img["status"] == "active" and img["stores"] == "swift"
    assert img["os_glance_importing_to_stores"] == "" and img["os_glance_failed_import"] == "file"
    assert [f for f in os.listdir(store) if ".tmp." in f] == []
    assert not os.path.exists(file_store_path(cloud, iid))
    # the lock is free: copy again, and this time it lands
    r = import_(cloud, iid, {"method": {"name": "copy-image"}, "stores": ["file"]})
    assert r.status_code == 202, r.text
    done = wait_import_done(cloud, iid, timeout=300)
    assert done["stores"] == "file,swift"
    assert md5_of(file_store_path(cloud, iid)) == md5_of(src)
