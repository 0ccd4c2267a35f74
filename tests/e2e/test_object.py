"""End-to-end tests of the object storage service (Swift v1) with /usr/bin/swift,
/usr/bin/openstack and raw HTTP: uploads and downloads (256 MiB, SLO, DLO), listings,
ACLs across projects, temp URLs, form POST, expiry, versioning, ranges, copies, bulk
operations, quotas, bad input, client disconnects and a kill -9 during an overwrite."""
import hashlib
import hmac
import io
import json
import os
import socket
import subprocess
import tarfile
import time
import uuid
from urllib.parse import urlparse

import pytest
import requests

SWIFT = "/usr/bin/swift"


def uid(prefix="c"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


def swift_env(cloud, user=None):
    if user is None:
        return cloud.creds_env("admin", cloud.admin_password, "admin")
    return user.env


def project_of(cloud, env=None):
    info = cloud.openstack("token", "issue", env=env or swift_env(cloud))
    return info["project_id"]


class Acct:
    """Raw HTTP on one account with one token."""

    def __init__(self, cloud, project_id, token):
        self.cloud = cloud
        self.base = cloud.urls["object"] + "/v1/AUTH_" + project_id
        self.path = "/v1/AUTH_" + project_id
        self.token = token

    def req(self, method, path="", token=True, **kw):
        headers = dict(kw.pop("headers", {}) or {})
        if token is True:
            headers["X-Auth-Token"] = self.token
        elif token:
            headers["X-Auth-Token"] = token
        kw.setdefault("timeout", 120)
        return requests.request(method, self.base + path, headers=headers, **kw)


@pytest.fixture(scope="module")
def admin(cloud):
    pid = project_of(cloud)
    return Acct(cloud, pid, cloud.token())


def md5(data):
    return hashlib.md5(data).hexdigest()


def raw_http(url, data, timeout=30):
    u = urlparse(url)
    s = socket.create_connection((u.hostname, u.port), timeout=timeout)
    s.sendall(data)
    return s


# ---- info, health ----------------------------------------------------------------------

def test_info_and_healthcheck(cloud):
    r = requests.get(cloud.urls["object"] + "/info", timeout=10)
    assert r.status_code == 200
    info = r.json()
    assert info["swift"]["max_file_size"] == 5368709122
    assert info["swift"]["max_object_name_length"] == 1024
    assert info["swift"]["container_listing_limit"] == 10000
    for k in ("slo", "tempurl", "bulk_delete", "bulk_upload", "versioned_writes", "formpost"):
        assert k in info
    r = requests.get(cloud.urls["object"] + "/healthcheck", timeout=10)
    assert r.status_code == 200 and r.text == "OK"
    p = cloud.run([SWIFT, "capabilities"], env=swift_env(cloud))
    assert "slo" in p.stdout


# ---- big objects through the real client ---------------------------------------------------

def test_upload_download_256mib(cloud, tmp_path):
    env = swift_env(cloud)
    src = tmp_path / "big.bin"
    h = hashlib.md5()
    with open(src, "wb") as f:
        chunk = os.urandom(1 << 20)
        for i in range(256):
            block = chunk[:-4] + i.to_bytes(4, "big")
            f.write(block)
            h.update(block)
    c = uid()
    cloud.run([SWIFT, "upload", c, str(src), "--object-name", "big.bin"], env=env, timeout=600)
    out = tmp_path / "out.bin"
    cloud.run([SWIFT, "download", c, "big.bin", "-o", str(out)], env=env, timeout=600)
    h2 = hashlib.md5()
    with open(out, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h2.update(block)
    assert h2.hexdigest() == h.hexdigest()
    st = cloud.run([SWIFT, "stat", c, "big.bin"], env=env).stdout
    assert "268435456" in st and h.hexdigest() in st
    cloud.run([SWIFT, "delete", c], env=env)


def test_slo_upload_download(cloud, tmp_path):
    env = swift_env(cloud)
    data = os.urandom(5 * 1048576 + 12345)
    src = tmp_path / "slo.bin"
    src.write_bytes(data)
    c = uid()
    cloud.run([SWIFT, "upload", "--use-slo", "-S", "1048576", c, str(src), "--object-name", "slo.bin"], env=env)
    segs = cloud.run([SWIFT, "list", c + "_segments"], env=env).stdout.split()
    assert len(segs) == 6
    out = tmp_path / "o.bin"
    cloud.run([SWIFT, "download", c, "slo.bin", "-o", str(out)], env=env)
    assert md5(out.read_bytes()) == md5(data)
    tok = cloud.token()
    pid = project_of(cloud)
    a = Acct(cloud, pid, tok)
    r = a.req("GET", "/%s/slo.bin" % c, params={"multipart-manifest": "get"})
    assert r.status_code == 200 and len(r.json()) == 6
    r = a.req("HEAD", "/%s/slo.bin" % c)
    assert r.headers["X-Static-Large-Object"] == "True"
    assert r.headers["ETag"].startswith('"')
    r = a.req("GET", "/%s/slo.bin" % c, headers={"Range": "bytes=1048570-1048580"})
    assert r.status_code == 206 and r.content == data[1048570:1048581]
    # overwrite with another SLO, then delete everything
    cloud.run([SWIFT, "upload", "--use-slo", "-S", "2097152", c, str(src), "--object-name", "slo.bin"], env=env)
    cloud.run([SWIFT, "download", c, "slo.bin", "-o", str(out)], env=env)
    assert md5(out.read_bytes()) == md5(data)
    cloud.run([SWIFT, "delete", c, "slo.bin"], env=env)
    assert cloud.run([SWIFT, "list", c + "_segments"], env=env).stdout.split() == []


def test_slo_manifest_validation(admin):
    c = uid()
    assert admin.req("PUT", "/" + c).status_code == 201
    admin.req("PUT", "/%s/s1" % c, data=b"a" * 10)
    man = [{"path": "/%s/s1" % c, "etag": md5(b"a" * 10), "size_bytes": 10},
           {"path": "/%s/missing" % c, "etag": None, "size_bytes": None}]
    r = admin.req("PUT", "/%s/m" % c, params={"multipart-manifest": "put"}, data=json.dumps(man))
    assert r.status_code == 400 and "missing" in r.text
    man[1] = {"path": "/%s/s1" % c, "etag": "0" * 32, "size_bytes": 10}
    r = admin.req("PUT", "/%s/m" % c, params={"multipart-manifest": "put"}, data=json.dumps(man))
    assert r.status_code == 400 and "Etag Mismatch" in r.text
    man[1] = {"path": "/%s/s1" % c, "etag": None, "size_bytes": 11}
    r = admin.req("PUT", "/%s/m" % c, params={"multipart-manifest": "put"}, data=json.dumps(man))
    assert r.status_code == 400 and "Size Mismatch" in r.text
    r = admin.req("PUT", "/%s/m" % c, params={"multipart-manifest": "put"}, data=b"not json")
    assert r.status_code == 400
    man[1] = {"path": "/%s/s1" % c, "etag": None, "size_bytes": None}
    r = admin.req("PUT", "/%s/m" % c, params={"multipart-manifest": "put"}, data=json.dumps(man))
    assert r.status_code == 201
    assert admin.req("GET", "/%s/m" % c).content == b"a" * 20


def test_dlo(admin):
    c = uid()
    admin.req("PUT", "/" + c)
    for i in range(3):
        admin.req("PUT", "/%s/seg/%02d" % (c, i), data=bytes([65 + i]) * 5)
    r = admin.req("PUT", "/%s/dlo" % c, data=b"", headers={"X-Object-Manifest": "%s/seg/" % c})
    assert r.status_code == 201
    r = admin.req("GET", "/%s/dlo" % c)
    assert r.content == b"AAAAABBBBBCCCCC"
    assert r.headers["X-Object-Manifest"] == "%s/seg/" % c
    r = admin.req("GET", "/%s/dlo" % c, headers={"Range": "bytes=4-5"})
    assert r.status_code == 206 and r.content == b"AB"


# ---- listings ------------------------------------------------------------------------------

def test_listings_every_parameter(admin):
    c = uid()
    assert admin.req("PUT", "/" + c).status_code == 201
    assert admin.req("PUT", "/" + c).status_code == 202
    names = ["a", "b/1", "b/2", "b/c/3", "c", "d.txt"]
    for n in names:
        assert admin.req("PUT", "/%s/%s" % (c, n), data=n.encode()).status_code == 201
    r = admin.req("GET", "/" + c)
    assert r.status_code == 200 and r.text.split("\n")[:-1] == names
    assert r.headers["X-Container-Object-Count"] == "6"
    r = admin.req("GET", "/" + c, params={"format": "json"})
    j = r.json()
    assert [o["name"] for o in j] == names
    assert j[0]["hash"] == md5(b"a") and j[0]["bytes"] == 1 and j[5]["content_type"] == "text/plain"
    assert "last_modified" in j[0]
    r = admin.req("GET", "/" + c, headers={"Accept": "application/xml"})
    assert r.headers["Content-Type"].startswith("application/xml") and "<name>b/c/3</name>" in r.text

    def names_of(**params):
        params["format"] = "json"
        return [o.get("name", o.get("subdir")) for o in admin.req("GET", "/" + c, params=params).json()]

    assert names_of(prefix="b/") == ["b/1", "b/2", "b/c/3"]
    assert names_of(delimiter="/") == ["a", "b/", "c", "d.txt"]
    assert names_of(prefix="b/", delimiter="/") == ["b/1", "b/2", "b/c/"]
    assert names_of(marker="b/2") == ["b/c/3", "c", "d.txt"]
    assert names_of(end_marker="b/2") == ["a", "b/1"]
    assert names_of(limit=2) == ["a", "b/1"]
    assert names_of(reverse="true") == names[::-1]
    assert names_of(reverse="true", marker="c", limit=2) == ["b/c/3", "b/2"]
    assert names_of(reverse="true", delimiter="/") == ["d.txt", "c", "b/", "a"]
    assert names_of(path="b") == ["b/1", "b/2"]
    assert names_of(marker="b/", delimiter="/") == ["c", "d.txt"]
    r = admin.req("GET", "/" + c, params={"limit": 10001})
    assert r.status_code == 412
    r = admin.req("GET", "/" + c, params={"prefix": "zzz"})
    assert r.status_code == 204
    r = admin.req("GET", "/" + c, params={"prefix": "zzz", "format": "json"})
    assert r.status_code == 200 and r.json() == []
    r = admin.req("GET", "/" + c, headers={"Accept": "image/png"})
    assert r.status_code == 406
    # account listing with parameters
    r = admin.req("GET", "", params={"format": "json", "prefix": c})
    assert [x["name"] for x in r.json()] == [c]
    assert r.json()[0]["count"] == 6
    r = admin.req("HEAD", "")
    assert r.status_code == 204 and int(r.headers["X-Account-Container-Count"]) >= 1
    r = admin.req("GET", "", params={"format": "xml", "prefix": c})
    assert "<count>6</count>" in r.text
    # openstack CLI sees the same
    out = admin.cloud.openstack("object", "list", c)
    assert sorted(o["Name"] for o in out) == names
    # DELETE of a non-empty container -> 409, of a missing one -> 404
    assert admin.req("DELETE", "/" + c).status_code == 409
    assert admin.req("DELETE", "/" + uid()).status_code == 404


def test_metadata(admin):
    c = uid()
    r = admin.req("PUT", "/" + c, headers={"X-Container-Meta-Color": "red"})
    assert r.status_code == 201
    r = admin.req("POST", "/" + c, headers={"X-Container-Meta-Size": "big", "X-Remove-Container-Meta-Color": "x"})
    assert r.status_code == 204
    h = admin.req("HEAD", "/" + c).headers
    assert h["X-Container-Meta-Size"] == "big" and "X-Container-Meta-Color" not in h
    admin.req("PUT", "/%s/o" % c, data=b"x", headers={"X-Object-Meta-A": "1", "Content-Type": "text/x-foo"})
    r = admin.req("POST", "/%s/o" % c, headers={"X-Object-Meta-B": "2"})
    assert r.status_code == 202
    h = admin.req("HEAD", "/%s/o" % c).headers
    assert h["X-Object-Meta-B"] == "2" and "X-Object-Meta-A" not in h and h["Content-Type"] == "text/x-foo"
    r = admin.req("POST", "", headers={"X-Account-Meta-Test": "v"})
    assert r.status_code == 204
    assert admin.req("HEAD", "").headers["X-Account-Meta-Test"] == "v"
    # content type detection
    admin.req("PUT", "/%s/page.html" % c, data=b"<p>", headers={"Content-Type": ""})
    assert admin.req("HEAD", "/%s/page.html" % c).headers["Content-Type"] == "text/html"


# ---- ACLs -----------------------------------------------------------------------------------

def test_acls_across_projects(cloud):
    alice = cloud.new_project_user(prefix="alice")
    bob = cloud.new_project_user(prefix="bob")
    a = Acct(cloud, alice.project_id, alice.token())
    c = uid()
    assert a.req("PUT", "/" + c).status_code == 201
    assert a.req("PUT", "/%s/o" % c, data=b"secret").status_code == 201
    b_tok = bob.token()
    # bob: denied (403), anonymous: 401
    assert a.req("GET", "/%s/o" % c, token=b_tok).status_code == 403
    assert a.req("GET", "/" + c, token=b_tok).status_code == 403
    assert a.req("PUT", "/%s/p" % c, token=b_tok, data=b"x").status_code == 403
    assert a.req("GET", "/%s/o" % c, token=False).status_code == 401
    assert a.req("GET", "", token=b_tok).status_code == 403
    # read ACL for bob's project
    assert a.req("POST", "/" + c, headers={"X-Container-Read": "%s:*" % bob.project_id}).status_code == 204
    r = a.req("GET", "/%s/o" % c, token=b_tok)
    assert r.status_code == 200 and r.content == b"secret"
    assert a.req("GET", "/" + c, token=b_tok).status_code == 200
    assert a.req("PUT", "/%s/p" % c, token=b_tok, data=b"x").status_code == 403
    # with the swift CLI as bob
    acct_url = cloud.urls["object"] + "/v1/AUTH_" + alice.project_id
    p = cloud.run([SWIFT, "--os-storage-url", acct_url, "download", c, "o", "-o", "-"], env=bob.env)
    assert p.stdout == "secret"
    # write ACL for bob's user
    a.req("POST", "/" + c, headers={"X-Container-Write": "%s:%s" % (bob.project_id, bob.user_id)})
    assert a.req("PUT", "/%s/p" % c, token=b_tok, data=b"x").status_code == 201
    assert a.req("DELETE", "/%s/p" % c, token=b_tok).status_code == 204
    # public read
    assert a.req("GET", "/%s/o" % c, token=False).status_code == 401
    a.req("POST", "/" + c, headers={"X-Container-Read": ".r:*"})
    assert a.req("GET", "/%s/o" % c, token=False).status_code == 200
    assert a.req("GET", "/" + c, token=False).status_code == 401
    a.req("POST", "/" + c, headers={"X-Container-Read": ".r:*,.rlistings"})
    assert a.req("GET", "/" + c, token=False).text == "o\n"
    # ACLs are not shown to non-owners
    assert "X-Container-Read" not in a.req("HEAD", "/" + c, token=b_tok).headers


def test_account_acls_across_projects(cloud):
    """X-Account-Access-Control: read-only, read-write and admin grants to another project's
    user (tempauth's version-2 JSON), checked with raw HTTP and the swift CLI."""
    alice = cloud.new_project_user(prefix="alice")
    bob = cloud.new_project_user(prefix="bob")
    a = Acct(cloud, alice.project_id, alice.token())
    b_tok = bob.token()
    c = uid()
    assert a.req("PUT", "/" + c).status_code == 201
    assert a.req("PUT", "/%s/o" % c, data=b"secret").status_code == 201
    acct_url = cloud.urls["object"] + "/v1/AUTH_" + alice.project_id
    # denied before any grant
    assert a.req("GET", "", token=b_tok).status_code == 403
    assert a.req("GET", "/%s/o" % c, token=b_tok).status_code == 403
    p = cloud.run([SWIFT, "--os-storage-url", acct_url, "list"], env=bob.env, check=False)
    assert p.returncode != 0
    # bad ACLs: Swift's 400s
    for bad in ("not json", '{"owner": ["x"]}', '{"read-only": "x"}', '{"admin": [1]}'):
        r = a.req("POST", "", headers={"X-Account-Access-Control": bad})
        assert r.status_code == 400, (bad, r.status_code)
    # read-only for bob's project (swift CLI sets it)
    cloud.run([SWIFT, "post", "-H", 'X-Account-Access-Control: {"read-only": ["%s"]}' % bob.project_id],
              env=alice.env)
    assert a.req("HEAD", "").headers["X-Account-Access-Control"] == '{"read-only":["%s"]}' % bob.project_id
    p = cloud.run([SWIFT, "--os-storage-url", acct_url, "list"], env=bob.env)
    assert p.stdout.split() == [c]
    p = cloud.run([SWIFT, "--os-storage-url", acct_url, "download", c, "o", "-o", "-"], env=bob.env)
    assert p.stdout == "secret"
    r = a.req("HEAD", "", token=b_tok)
    assert r.status_code == 204 and "X-Account-Access-Control" not in r.headers
    assert a.req("PUT", "/%s/p" % c, token=b_tok, data=b"x").status_code == 403
    assert a.req("PUT", "/" + uid(), token=b_tok).status_code == 403
    assert a.req("DELETE", "/%s/o" % c, token=b_tok).status_code == 403
    # read-write for bob's user: objects and containers, not the account itself
    a.req("POST", "", headers={"X-Account-Access-Control": json.dumps(
        {"read-write": ["%s:%s" % (bob.project_id, bob.user_id)], "read-only": []})})
    assert a.req("HEAD", "").headers["X-Account-Access-Control"] == \
        '{"read-write":["%s:%s"]}' % (bob.project_id, bob.user_id)
    assert a.req("PUT", "/%s/p" % c, token=b_tok, data=b"x").status_code == 201
    c2 = uid()
    assert a.req("PUT", "/" + c2, token=b_tok).status_code == 201
    # ...but may not set privileged headers: the container ACL is dropped, as Swift does
    assert a.req("POST", "/" + c2, token=b_tok, headers={"X-Container-Read": ".r:*"}).status_code == 204
    assert "X-Container-Read" not in a.req("HEAD", "/" + c2).headers
    assert a.req("POST", "", token=b_tok, headers={"X-Account-Meta-X": "1"}).status_code == 403
    assert a.req("POST", "", token=b_tok,
                 headers={"X-Account-Access-Control": '{"admin": ["%s"]}' % bob.project_id}).status_code == 403
    # admin: an owner, sees and changes the ACL
    a.req("POST", "", headers={"X-Account-Access-Control": '{"admin": ["%s:*"]}' % bob.project_id})
    assert a.req("POST", "", token=b_tok, headers={"X-Account-Meta-X": "1"}).status_code == 204
    assert a.req("HEAD", "").headers["X-Account-Meta-X"] == "1"
    assert a.req("HEAD", "", token=b_tok).headers["X-Account-Access-Control"] == \
        '{"admin":["%s:*"]}' % bob.project_id
    # removal: denied again
    assert a.req("POST", "", headers={"X-Account-Access-Control": ""}).status_code == 204
    assert a.req("GET", "/%s/o" % c, token=b_tok).status_code == 403
    assert "X-Account-Access-Control" not in a.req("HEAD", "").headers


def test_reader_role(cloud):
    r = cloud.new_project_user(role="reader", prefix="rd")
    acct = Acct(cloud, r.project_id, r.token())
    assert acct.req("GET", "").status_code in (200, 204)
    assert acct.req("PUT", "/" + uid()).status_code == 403


# ---- temp URLs and form POST ---------------------------------------------------------------

def test_tempurl(admin):
    c = uid()
    admin.req("PUT", "/" + c)
    admin.req("PUT", "/%s/obj.txt" % c, data=b"temp data")
    key = "k-" + uuid.uuid4().hex
    admin.req("POST", "", headers={"X-Account-Meta-Temp-URL-Key": key})
    path = "%s/%s/obj.txt" % (admin.path, c)
    exp = int(time.time() + 300)

    def sig(method, p=path, e=exp, k=key, algo=hashlib.sha1):
        return hmac.new(k.encode(), ("%s\n%s\n%s" % (method, e, p)).encode(), algo).hexdigest()

    url = admin.cloud.urls["object"] + path
    r = requests.get(url, params={"temp_url_sig": sig("GET"), "temp_url_expires": exp}, timeout=10)
    assert r.status_code == 200 and r.content == b"temp data"
    assert "attachment" in r.headers.get("Content-Disposition", "")
    r = requests.get(url, params={"temp_url_sig": sig("GET", algo=hashlib.sha256), "temp_url_expires": exp}, timeout=10)
    assert r.status_code == 200
    r = requests.head(url, params={"temp_url_sig": sig("GET"), "temp_url_expires": exp}, timeout=10)
    assert r.status_code == 200
    r = requests.get(url, params={"temp_url_sig": sig("GET", k="wrong"), "temp_url_expires": exp}, timeout=10)
    assert r.status_code == 401
    r = requests.get(url, params={"temp_url_sig": sig("PUT"), "temp_url_expires": exp}, timeout=10)
    assert r.status_code == 401
    old = int(time.time() - 10)
    r = requests.get(url, params={"temp_url_sig": sig("GET", e=old), "temp_url_expires": old}, timeout=10)
    assert r.status_code == 401
    r = requests.put(url, params={"temp_url_sig": sig("PUT"), "temp_url_expires": exp}, data=b"new", timeout=10)
    assert r.status_code == 201
    assert admin.req("GET", "/%s/obj.txt" % c).content == b"new"
    # the swift CLI computes the same signature
    p = admin.cloud.run([SWIFT, "tempurl", "GET", "300", path, key], env=swift_env(admin.cloud))
    r = requests.get(admin.cloud.urls["object"] + p.stdout.strip(), timeout=10)
    assert r.status_code == 200 and r.content == b"new"


def test_formpost(admin):
    c = uid()
    admin.req("PUT", "/" + c)
    key = "fk-" + uuid.uuid4().hex
    admin.req("POST", "/" + c, headers={"X-Container-Meta-Temp-URL-Key": key})
    path = "%s/%s/up/" % (admin.path, c)
    exp = int(time.time() + 300)
    msg = "%s\n%s\n%s\n%s\n%s" % (path, "", 1024, 5, exp)
    sig = hmac.new(key.encode(), msg.encode(), hashlib.sha1).hexdigest()
    files = {"file1": ("a.txt", b"form data", "text/plain")}
    data = {"redirect": "", "max_file_size": "1024", "max_file_count": "5", "expires": str(exp), "signature": sig}
    r = requests.post(admin.cloud.urls["object"] + path, data=data, files=files, timeout=10)
    assert r.status_code == 201, r.text
    assert admin.req("GET", "/%s/up/a.txt" % c).content == b"form data"
    data["signature"] = "0" * 40
    r = requests.post(admin.cloud.urls["object"] + path, data=data, files=files, timeout=10)
    assert r.status_code == 401


# ---- expiry, versioning, ranges, conditionals, copy ---------------------------------------------

def test_expiry(admin):
    c = uid()
    admin.req("PUT", "/" + c)
    r = admin.req("PUT", "/%s/o" % c, data=b"x", headers={"X-Delete-After": "2"})
    assert r.status_code == 201
    assert "X-Delete-At" in admin.req("HEAD", "/%s/o" % c).headers
    r = admin.req("PUT", "/%s/p" % c, data=b"x", headers={"X-Delete-At": str(int(time.time() + 2))})
    assert r.status_code == 201
    assert admin.req("PUT", "/%s/q" % c, data=b"x", headers={"X-Delete-At": "1000"}).status_code == 400
    assert admin.req("PUT", "/%s/q" % c, data=b"x", headers={"X-Delete-After": "soon"}).status_code == 400
    time.sleep(3.2)
    assert admin.req("GET", "/%s/o" % c).status_code == 404
    assert admin.req("GET", "/" + c).status_code == 204
    # the reaper (or lazy deletion) empties the container
    deadline = time.time() + 20
    while time.time() < deadline:
        if admin.req("HEAD", "/" + c).headers["X-Container-Object-Count"] == "0":
            break
        time.sleep(0.5)
    assert admin.req("HEAD", "/" + c).headers["X-Container-Object-Count"] == "0"
    assert admin.req("DELETE", "/" + c).status_code == 204


def test_versioning_stack_and_history(admin):
    c, v = uid(), uid("ver")
    admin.req("PUT", "/" + v)
    assert admin.req("PUT", "/" + c, headers={"X-Versions-Location": v}).status_code == 201
    assert admin.req("HEAD", "/" + c).headers["X-Versions-Location"] == v
    for body in (b"one", b"two", b"three"):
        admin.req("PUT", "/%s/o" % c, data=body)
    assert admin.req("GET", "/%s/o" % c).content == b"three"
    assert len(admin.req("GET", "/" + v).text.split()) == 2
    assert admin.req("DELETE", "/%s/o" % c).status_code == 204
    assert admin.req("GET", "/%s/o" % c).content == b"two"
    admin.req("DELETE", "/%s/o" % c)
    assert admin.req("GET", "/%s/o" % c).content == b"one"
    admin.req("DELETE", "/%s/o" % c)
    assert admin.req("GET", "/%s/o" % c).status_code == 404
    # history mode keeps deleted data in the archive
    h, hv = uid(), uid("hist")
    admin.req("PUT", "/" + hv)
    admin.req("PUT", "/" + h, headers={"X-History-Location": hv})
    admin.req("PUT", "/%s/o" % h, data=b"a")
    admin.req("PUT", "/%s/o" % h, data=b"b")
    admin.req("DELETE", "/%s/o" % h)
    assert admin.req("GET", "/%s/o" % h).status_code == 404
    names = admin.req("GET", "/" + hv).text.split()
    assert len(names) == 2
    assert sorted(admin.req("GET", "/%s/%s" % (hv, n)).content for n in names) == [b"a", b"b"]


def test_ranges_and_conditionals(admin):
    c = uid()
    admin.req("PUT", "/" + c)
    data = bytes(range(256)) * 4
    r = admin.req("PUT", "/%s/o" % c, data=data)
    etag = r.headers["ETag"]
    assert etag == md5(data)
    r = admin.req("GET", "/%s/o" % c, headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]
    assert r.headers["Content-Range"] == "bytes 10-19/1024"
    r = admin.req("GET", "/%s/o" % c, headers={"Range": "bytes=-5"})
    assert r.content == data[-5:]
    r = admin.req("GET", "/%s/o" % c, headers={"Range": "bytes=1000-"})
    assert r.content == data[1000:]
    r = admin.req("GET", "/%s/o" % c, headers={"Range": "bytes=2000-3000"})
    assert r.status_code == 416
    r = admin.req("GET", "/%s/o" % c, headers={"Range": "bytes=0-1,5-6"})
    assert r.status_code == 206 and r.headers["Content-Type"].startswith("multipart/byteranges")
    assert b"Content-Range: bytes 0-1/1024" in r.content and b"Content-Range: bytes 5-6/1024" in r.content
    r = admin.req("GET", "/%s/o" % c, headers={"Range": "garbage"})
    assert r.status_code == 200 and len(r.content) == 1024
    assert admin.req("GET", "/%s/o" % c, headers={"If-None-Match": etag}).status_code == 304
    assert admin.req("GET", "/%s/o" % c, headers={"If-Match": '"%s"' % etag}).status_code == 200
    assert admin.req("GET", "/%s/o" % c, headers={"If-Match": "nope"}).status_code == 412
    lm = admin.req("HEAD", "/%s/o" % c).headers["Last-Modified"]
    assert admin.req("GET", "/%s/o" % c, headers={"If-Modified-Since": lm}).status_code == 304
    assert admin.req("GET", "/%s/o" % c,
                     headers={"If-Unmodified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"}).status_code == 412
    assert admin.req("PUT", "/%s/o" % c, data=b"x", headers={"If-None-Match": "*"}).status_code == 412
    assert admin.req("PUT", "/%s/new" % c, data=b"x", headers={"If-None-Match": "*"}).status_code == 201
    assert admin.req("PUT", "/%s/bad" % c, data=b"x", headers={"ETag": md5(b"y")}).status_code == 422
    assert admin.req("GET", "/%s/bad" % c).status_code == 404


def test_copy(admin):
    c, d = uid(), uid()
    admin.req("PUT", "/" + c)
    admin.req("PUT", "/" + d)
    admin.req("PUT", "/%s/src" % c, data=b"copy me", headers={"X-Object-Meta-K": "v"})
    r = admin.req("PUT", "/%s/dst" % d, headers={"X-Copy-From": "%s/src" % c, "Content-Length": "0"})
    assert r.status_code == 201
    r = admin.req("GET", "/%s/dst" % d)
    assert r.content == b"copy me" and r.headers["X-Object-Meta-K"] == "v"
    r = admin.req("COPY", "/%s/src" % c, headers={"Destination": "%s/dst2" % d, "X-Object-Meta-J": "w"})
    assert r.status_code == 201
    h = admin.req("HEAD", "/%s/dst2" % d).headers
    assert h["X-Object-Meta-J"] == "w" and h["X-Object-Meta-K"] == "v"
    # the source is independent of the copy
    admin.req("DELETE", "/%s/src" % c)
    assert admin.req("GET", "/%s/dst" % d).content == b"copy me"
    assert admin.req("PUT", "/%s/x" % d, headers={"X-Copy-From": "%s/missing" % c}, data=b"").status_code == 404
    # openstack CLI copy-free check: object show
    out = admin.cloud.openstack("object", "show", d, "dst")
    assert out["content-length"] == "7" or out.get("content-length") == 7


# ---- bulk and quotas ------------------------------------------------------------------------

def test_bulk_delete_and_extract(admin):
    c = uid()
    admin.req("PUT", "/" + c)
    for i in range(3):
        admin.req("PUT", "/%s/o%d" % (c, i), data=b"x")
    body = "\n".join(["/%s/o0" % c, "/%s/o1" % c, "/%s/nope" % c])
    r = admin.req("POST", "", params={"bulk-delete": ""}, data=body, headers={"Accept": "application/json",
                                                                              "Content-Type": "text/plain"})
    assert r.status_code == 200
    j = r.json()
    assert j["Number Deleted"] == 2 and j["Number Not Found"] == 1
    # swift CLI delete of a container uses bulk delete when offered
    admin.cloud.run([SWIFT, "delete", c], env=swift_env(admin.cloud))
    assert admin.req("HEAD", "/" + c).status_code == 404
    # extract-archive: tar and tar.gz
    for mode, kind in (("w", "tar"), ("w:gz", "tar.gz")):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode=mode) as t:
            for name, data in (("x/a.txt", b"AAA"), ("x/b/c.txt", b"CCC"), ("y" * 150 + "/long.txt", b"L")):
                ti = tarfile.TarInfo(name)
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
        cont = uid()
        r = admin.req("PUT", "/" + cont, params={"extract-archive": kind}, data=buf.getvalue(),
                      headers={"Accept": "application/json"})
        assert r.status_code == 200 and r.json()["Number Files Created"] == 3, r.text
        assert admin.req("GET", "/%s/x/b/c.txt" % cont).content == b"CCC"
        assert admin.req("GET", "/%s/%s/long.txt" % (cont, "y" * 150)).content == b"L"
    r = admin.req("PUT", "/" + uid(), params={"extract-archive": "tar"}, data=b"garbage" * 100,
                  headers={"Accept": "application/json"})
    assert r.json()["Response Status"].startswith("400")


def test_quotas(cloud, admin):
    c = uid()
    admin.req("PUT", "/" + c, headers={"X-Container-Meta-Quota-Bytes": "10", "X-Container-Meta-Quota-Count": "2"})
    assert admin.req("PUT", "/%s/a" % c, data=b"12345").status_code == 201
    assert admin.req("PUT", "/%s/b" % c, data=b"123456").status_code == 413
    assert admin.req("PUT", "/%s/b" % c, data=b"12345").status_code == 201
    assert admin.req("PUT", "/%s/c" % c, data=b"").status_code == 413
    assert admin.req("PUT", "/" + c, headers={"X-Container-Meta-Quota-Bytes": "x"}).status_code == 400
    # account quota: only a reseller admin may set it
    u = cloud.new_project_user(prefix="q")
    a = Acct(cloud, u.project_id, u.token())
    assert a.req("POST", "", headers={"X-Account-Meta-Quota-Bytes": "4"}).status_code == 403
    assert admin.req("POST", "", token=admin.token, headers={"X-Account-Meta-Quota-Bytes": "4"}).status_code == 204
    Acct(cloud, u.project_id, admin.token).req("POST", "", headers={"X-Account-Meta-Quota-Bytes": "4"})
    a.req("PUT", "/c")
    assert a.req("PUT", "/c/o", data=b"12345").status_code == 413
    assert a.req("PUT", "/c/o", data=b"1234").status_code == 201
    admin.req("POST", "", headers={"X-Remove-Account-Meta-Quota-Bytes": "x"})


def test_cors(admin):
    c = uid()
    admin.req("PUT", "/" + c, headers={"X-Container-Meta-Access-Control-Allow-Origin": "http://good.example",
                                       "X-Container-Read": ".r:*"})
    admin.req("PUT", "/%s/o" % c, data=b"x")
    r = requests.options(admin.base + "/%s/o" % c, headers={"Origin": "http://good.example",
                                                            "Access-Control-Request-Method": "GET"}, timeout=10)
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "http://good.example"
    r = requests.options(admin.base + "/%s/o" % c, headers={"Origin": "http://evil.example",
                                                            "Access-Control-Request-Method": "GET"}, timeout=10)
    assert r.status_code == 401
    r = requests.get(admin.base + "/%s/o" % c, headers={"Origin": "http://good.example"}, timeout=10)
    assert r.headers["Access-Control-Allow-Origin"] == "http://good.example"
    assert "etag" in r.headers["Access-Control-Expose-Headers"]


# ---- bad input ------------------------------------------------------------------------------

def test_bad_input(admin):
    c = uid()
    admin.req("PUT", "/" + c)
    r = admin.req("PUT", "/%s/%s" % (c, "n" * 1025), data=b"x")
    assert r.status_code == 400
    assert admin.req("PUT", "/%s/%s" % (c, "n" * 1024), data=b"x").status_code == 201
    assert admin.req("PUT", "/" + "c" * 257).status_code == 400
    r = admin.req("PUT", "/%s/bad%%FFname" % c, data=b"x")
    assert r.status_code == 412  # Swift: "Invalid UTF8 or contains NULL"
    r = admin.req("PUT", "/%s/nul%%00name" % c, data=b"x")
    assert r.status_code in (400, 412)
    r = admin.req("PUT", "/%s/m" % c, data=b"x", headers={"X-Object-Meta-Big": "v" * 257})
    assert r.status_code == 400
    r = admin.req("PUT", "/%s/m" % c, data=b"x", headers={"X-Object-Meta-" + "k" * 129: "v"})
    assert r.status_code == 400
    hdrs = {"X-Object-Meta-K%02d" % i: "v" * 200 for i in range(25)}
    assert admin.req("PUT", "/%s/m" % c, data=b"x", headers=hdrs).status_code == 400
    hdrs = {"X-Object-Meta-K%02d" % i: "v" for i in range(91)}
    assert admin.req("PUT", "/%s/m" % c, data=b"x", headers=hdrs).status_code == 400
    assert admin.req("GET", "/%s/m" % c).status_code == 404
    # no length and not chunked -> 411
    u = urlparse(admin.base)
    s = raw_http(admin.base, ("PUT %s/%s/nolen HTTP/1.1\r\nHost: x\r\nX-Auth-Token: %s\r\n\r\n"
                              % (u.path, c, admin.token)).encode())
    assert b" 411 " in s.recv(4096).split(b"\r\n")[0]
    s.close()
    # chunked upload works
    def gen():
        yield b"abc"
        yield b"def"
    r = admin.req("PUT", "/%s/chunked" % c, data=gen())
    assert r.status_code == 201 and admin.req("GET", "/%s/chunked" % c).content == b"abcdef"
    # Content-Length shorter than the body: the first Content-Length bytes are the object
    s = raw_http(admin.base, ("PUT %s/%s/short HTTP/1.1\r\nHost: x\r\nX-Auth-Token: %s\r\nContent-Length: 5\r\n"
                              "Connection: close\r\n\r\n0123456789" % (u.path, c, admin.token)).encode())
    assert b" 201 " in s.recv(4096).split(b"\r\n")[0]
    s.close()
    assert admin.req("GET", "/%s/short" % c).content == b"01234"
    # method not allowed on the account
    assert admin.req("DELETE", "").status_code == 405


def tmp_files(data_dir):
    d = os.path.join(data_dir, "objects", "tmp")
    return os.listdir(d) if os.path.isdir(d) else []


def test_client_disconnect_leaves_nothing(cloud, admin):
    c = uid()
    admin.req("PUT", "/" + c)
    u = urlparse(admin.base)
    before = admin.req("HEAD", "").headers["X-Account-Bytes-Used"]
    s = raw_http(admin.base, ("PUT %s/%s/partial HTTP/1.1\r\nHost: x\r\nX-Auth-Token: %s\r\n"
                              "Content-Length: 10485760\r\n\r\n" % (u.path, c, admin.token)).encode())
    s.sendall(b"x" * 1048576)
    time.sleep(0.5)
    assert tmp_files(cloud.data_dir), "the upload should be spooling"
    s.close()
    deadline = time.time() + 10
    while time.time() < deadline and tmp_files(cloud.data_dir):
        time.sleep(0.1)
    assert tmp_files(cloud.data_dir) == []
    assert admin.req("GET", "/%s/partial" % c).status_code == 404
    assert admin.req("GET", "/" + c).status_code == 204
    assert admin.req("HEAD", "").headers["X-Account-Bytes-Used"] == before


def test_kill9_during_overwrite(make_cloud):
    pc = make_cloud()
    tok = pc.token()
    a = Acct(pc, project_of(pc, pc.creds_env("admin", pc.admin_password, "admin")), tok)
    a.req("PUT", "/keep")
    old = os.urandom(100000)
    assert a.req("PUT", "/keep/obj", data=old).status_code == 201
    u = urlparse(a.base)
    s = raw_http(a.base, ("PUT %s/keep/obj HTTP/1.1\r\nHost: x\r\nX-Auth-Token: %s\r\n"
                          "Content-Length: 104857600\r\n\r\n" % (u.path, tok)).encode())
    s.sendall(os.urandom(4 << 20))
    time.sleep(0.5)
    assert tmp_files(pc.data_dir)
    pc.kill9()
    s.close()
    pc.start()
    tok = pc.token()
    a.token = tok
    r = a.req("GET", "/keep/obj")
    assert r.status_code == 200 and r.content == old
    assert a.req("GET", "/keep").text == "obj\n"
    assert a.req("HEAD", "/keep").headers["X-Container-Bytes-Used"] == "100000"
    assert tmp_files(pc.data_dir) == []
    # and only one blob remains on disk
    blobs = []
    for root, _dirs, files in os.walk(os.path.join(pc.data_dir, "objects")):
        blobs += [f for f in files if f.endswith(".data")]
    assert len(blobs) == 1


def test_concurrent_overwrites_newest_wins(admin):
    import threading
    c = uid()
    admin.req("PUT", "/" + c)
    results = []

    def put(i):
        r = admin.req("PUT", "/%s/o" % c, data=str(i).encode() * 1000)
        results.append(r.status_code)

    th = [threading.Thread(target=put, args=(i,)) for i in range(8)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    assert results == [201] * 8
    h = admin.req("HEAD", "/" + c).headers
    assert h["X-Container-Object-Count"] == "1" and h["X-Container-Bytes-Used"] == "1000"
    body = admin.req("GET", "/%s/o" % c).content
    assert len(body) == 1000 and len(set(body)) == 1
