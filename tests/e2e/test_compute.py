"""Compute service (Nova v2.1) end to end with the openstack CLI and raw REST, on the fake
virt driver: flavors, keypairs, the boot flow over the bus, power actions, snapshots,
quotas, visibility, concurrency, filters and paging, metadata/tags, groups, admin APIs."""
import base64
import hashlib
import os
import shutil
import tempfile
import threading
import time
import uuid

import pytest

from conftest import Cloud, _build_ok

MV = {"OpenStack-API-Version": "compute 2.90"}


@pytest.fixture(scope="module")
def fc():
    """A private cloud whose compute agent runs the fake driver."""
    _build_ok()
    d = tempfile.mkdtemp(prefix="compute-e2e-", dir="/var/tmp")
    c = Cloud(d, {"compute.virt_driver": "fake"}).init().start()
    c.flavor = c.openstack("flavor", "create", "--vcpus", "1", "--ram", "128", "--disk", "1", "c1.tiny")
    c.has_image = c.service_up("image")
    c.image = None
    if c.has_image:
        path = os.path.join(d, "tiny.img")
        with open(path, "wb") as f:
            f.write(b"\0" * 4096)
        c.image = c.openstack("image", "create", "--disk-format", "raw", "--container-format", "bare", "--public",
                              "--file", path, "cirros-fake")
    yield c
    c.stop()
    if os.environ.get("TS_KEEP_DATA") is None:
        shutil.rmtree(d, ignore_errors=True)


def need_image(c):
    if not c.has_image:
        pytest.skip("image service not available")


def wait_status(c, sid, want, token=None, timeout=60):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        r = c.request("GET", "compute", "/v2.1/servers/%s" % sid, token=token)
        if r.status_code == 404 and want == "DELETED":
            return None
        assert r.status_code == 200, r.text
        last = r.json()["server"]
        if last["status"] == want and last["OS-EXT-STS:task_state"] is None:
            return last
        if last["status"] == "ERROR" and want != "ERROR":
            raise AssertionError("server went to ERROR: %s" % last.get("fault"))
        time.sleep(0.1)
    raise AssertionError("server %s not %s: %s" % (sid, want, last))


def boot(c, name, token=None, flavor=None, extra=None, hints=None):
    body = {"server": {"name": name, "imageRef": c.image["id"], "flavorRef": flavor or c.flavor["id"],
                       "networks": "none"}}
    body["server"].update(extra or {})
    if hints:
        body["os:scheduler_hints"] = hints
    r = c.request("POST", "compute", "/v2.1/servers", token=token, json=body, headers=dict(MV))
    return r


def test_versions_and_microversions(fc):
    r = fc.request("GET", "compute", "/", token="")
    assert r.status_code == 200
    v = r.json()["versions"][0]
    assert v["id"] == "v2.1" and v["min_version"] == "2.1" and v["version"] == "2.90"
    r = fc.request("GET", "compute", "/v2.1/flavors", headers={"OpenStack-API-Version": "compute 2.53"})
    assert r.headers["OpenStack-API-Version"] == "compute 2.53"
    assert r.headers["X-OpenStack-Nova-API-Version"] == "2.53"
    r = fc.request("GET", "compute", "/v2.1/flavors", headers={"X-OpenStack-Nova-API-Version": "2.999"})
    assert r.status_code == 406
    r = fc.request("GET", "compute", "/v2.1/flavors")
    assert r.headers["OpenStack-API-Version"] == "compute 2.1"


def test_flavor_crud_and_extra_specs(fc):
    f = fc.openstack("flavor", "create", "--vcpus", "2", "--ram", "512", "--disk", "5", "--property", "hw:cpu=x",
                     "c1.small")
    assert f["vcpus"] == 2 and f["ram"] == 512
    shown = fc.openstack("flavor", "show", "c1.small")
    assert shown["properties"] in ({"hw:cpu": "x"}, "hw:cpu='x'")
    names = [x["Name"] for x in fc.openstack("flavor", "list")]
    assert "c1.small" in names and "c1.tiny" in names
    p = fc.openstack("flavor", "create", "--vcpus", "2", "--ram", "512", "--disk", "5", "c1.small", check=False)
    assert p.returncode != 0 and "409" in p.stderr
    priv = fc.openstack("flavor", "create", "--vcpus", "1", "--ram", "64", "--disk", "0", "--private", "c1.priv")
    user = fc.new_project_user()
    r = fc.request("GET", "compute", "/v2.1/flavors/%s" % priv["id"], token=user.token())
    assert r.status_code == 404
    fc.openstack("flavor", "set", "--project", user.project_id, "c1.priv")
    r = fc.request("GET", "compute", "/v2.1/flavors/%s" % priv["id"], token=user.token())
    assert r.status_code == 200
    r = fc.request("POST", "compute", "/v2.1/flavors", token=user.token(),
                   json={"flavor": {"name": "x", "ram": 1, "vcpus": 1, "disk": 0}})
    assert r.status_code == 403
    fc.openstack("flavor", "delete", "c1.small")
    assert fc.request("GET", "compute", "/v2.1/flavors/%s" % f["id"]).status_code == 404


def test_keypair_generate_and_import(fc):
    k = fc.openstack("keypair", "create", "kp-gen", "-f", "value")
    assert "PRIVATE KEY" in k
    shown = fc.openstack("keypair", "show", "kp-gen")
    assert len(shown["fingerprint"].split(":")) == 16
    pub = fc.openstack("keypair", "show", "--public-key", "kp-gen", "-f", "value")
    blob = base64.b64decode(pub.split()[1])
    md5 = hashlib.md5(blob).hexdigest()
    assert shown["fingerprint"] == ":".join(md5[i:i + 2] for i in range(0, 32, 2))
    path = os.path.join(fc.data_dir, "imp.pub")
    with open(path, "w") as f:
        f.write(pub.strip() + "\n")
    imp = fc.openstack("keypair", "create", "--public-key", path, "kp-imp")
    assert imp["fingerprint"] == shown["fingerprint"]
    r = fc.request("POST", "compute", "/v2.1/os-keypairs",
                   json={"keypair": {"name": "bad", "public_key": "ssh-rsa !!!notbase64"}})
    assert r.status_code == 400
    names = [x["Name"] for x in fc.openstack("keypair", "list")]
    assert {"kp-gen", "kp-imp"} <= set(names)
    fc.openstack("keypair", "delete", "kp-imp")
    assert fc.request("GET", "compute", "/v2.1/os-keypairs/kp-imp").status_code == 404


def test_server_lifecycle_cli(fc):
    need_image(fc)
    s = fc.openstack("server", "create", "--image", fc.image["id"], "--flavor", "c1.tiny", "--key-name", "kp-gen",
                     "--property", "role=web", "--nic", "none", "--wait", "life1")
    assert s["status"] == "ACTIVE"
    sid = s["id"]
    for action, status in [("stop", "SHUTOFF"), ("start", "ACTIVE"), ("reboot", "ACTIVE"), ("pause", "PAUSED"),
                           ("unpause", "ACTIVE"), ("suspend", "SUSPENDED"), ("resume", "ACTIVE")]:
        fc.openstack("server", action, sid)
        srv = wait_status(fc, sid, status)
        assert srv["OS-EXT-STS:power_state"] in (1, 3, 4, 7)
    fc.openstack("server", "stop", sid)
    wait_status(fc, sid, "SHUTOFF")
    p = fc.openstack("server", "stop", sid, check=False)
    assert p.returncode != 0 and "409" in p.stderr
    assert "while it is in vm_state stopped" in p.stderr
    shown = fc.openstack("server", "show", sid)
    assert shown["OS-EXT-SRV-ATTR:host"] and shown["key_name"] == "kp-gen"
    actions = [a["Action"] for a in fc.openstack("server", "event", "list", sid)]
    assert "create" in actions and "stop" in actions
    fc.openstack("server", "start", sid)
    wait_status(fc, sid, "ACTIVE")
    out = fc.run(["/usr/bin/openstack", "console", "log", "show", sid]).stdout
    assert "TINYVM READY" in out
    fc.openstack("server", "delete", "--wait", sid)
    assert fc.request("GET", "compute", "/v2.1/servers/%s" % sid).status_code == 404


def test_snapshot_becomes_image(fc):
    need_image(fc)
    r = boot(fc, "snap-src")
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    wait_status(fc, sid, "ACTIVE")
    img = fc.openstack("server", "image", "create", "--name", "snap1", "--wait", sid)
    deadline = time.time() + 60
    while time.time() < deadline:
        shown = fc.openstack("image", "show", img["id"])
        if shown["status"] == "active":
            break
        time.sleep(0.2)
    assert shown["status"] == "active"
    assert shown["properties"]["instance_uuid"] == sid if isinstance(shown.get("properties"), dict) else True
    wait_status(fc, sid, "ACTIVE")
    fc.request("DELETE", "compute", "/v2.1/servers/%s" % sid)


def test_unknown_flavor_and_image_400(fc):
    need_image(fc)
    r = boot(fc, "bad", flavor="no-such-flavor")
    assert r.status_code == 400
    assert r.json()["badRequest"]["message"] == "Flavor no-such-flavor could not be found."
    body = {"server": {"name": "bad", "imageRef": str(uuid.uuid4()), "flavorRef": fc.flavor["id"],
                       "networks": "none"}}
    r = fc.request("POST", "compute", "/v2.1/servers", json=body, headers=dict(MV))
    assert r.status_code == 400 and "could not be found" in r.json()["badRequest"]["message"]
    body["server"]["imageRef"] = fc.image["id"]
    body["server"]["user_data"] = "not base64!!"
    r = fc.request("POST", "compute", "/v2.1/servers", json=body, headers=dict(MV))
    assert r.status_code == 400 and "base 64" in r.json()["badRequest"]["message"]
    del body["server"]["networks"]
    r = fc.request("POST", "compute", "/v2.1/servers", json=body, headers=dict(MV))
    assert r.status_code == 400


def test_quota_exceeded_403(fc):
    need_image(fc)
    user = fc.new_project_user()
    r = fc.request("PUT", "compute", "/v2.1/os-quota-sets/%s" % user.project_id,
                   json={"quota_set": {"instances": 2}})
    assert r.status_code == 200 and r.json()["quota_set"]["instances"] == 2
    tok = user.token()
    ids = []
    for i in range(2):
        r = boot(fc, "q%d" % i, token=tok)
        assert r.status_code == 202, r.text
        ids.append(r.json()["server"]["id"])
    r = boot(fc, "q3", token=tok)
    assert r.status_code == 403
    assert r.json()["forbidden"]["message"] == \
        "Quota exceeded for instances: Requested 1, but already used 2 of 2 instances"
    p = fc.openstack("server", "create", "--image", fc.image["id"], "--flavor", "c1.tiny", "q4", env=user.env,
                     check=False)
    assert p.returncode != 0 and "Quota exceeded for instances" in p.stderr
    lim = fc.request("GET", "compute", "/v2.1/limits", token=tok).json()["limits"]["absolute"]
    assert lim["maxTotalInstances"] == 2 and lim["totalInstancesUsed"] == 2
    d = fc.request("GET", "compute", "/v2.1/os-quota-sets/%s/detail" % user.project_id, token=tok).json()
    assert d["quota_set"]["instances"]["in_use"] == 2
    for sid in ids:
        wait_status(fc, sid, "ACTIVE", token=tok)
        assert fc.request("DELETE", "compute", "/v2.1/servers/%s" % sid, token=tok).status_code == 204


def test_other_project_cannot_see(fc):
    need_image(fc)
    a = fc.new_project_user()
    b = fc.new_project_user()
    r = boot(fc, "private-a", token=a.token())
    sid = r.json()["server"]["id"]
    wait_status(fc, sid, "ACTIVE", token=a.token())
    assert fc.request("GET", "compute", "/v2.1/servers/%s" % sid, token=b.token()).status_code == 404
    assert fc.request("DELETE", "compute", "/v2.1/servers/%s" % sid, token=b.token()).status_code == 404
    r = fc.request("POST", "compute", "/v2.1/servers/%s/action" % sid, token=b.token(), json={"os-stop": None})
    assert r.status_code == 404
    ids = [s["id"] for s in fc.request("GET", "compute", "/v2.1/servers?all_tenants=1",
                                        token=b.token()).json()["servers"]]
    assert sid not in ids
    listed = fc.openstack("server", "list", env=b.env)
    assert all(s["ID"] != sid for s in listed)
    admin_ids = [s["id"] for s in fc.request("GET", "compute", "/v2.1/servers?all_tenants=1").json()["servers"]]
    assert sid in admin_ids
    fc.request("DELETE", "compute", "/v2.1/servers/%s" % sid, token=a.token())


def test_twenty_parallel_creates(fc):
    need_image(fc)
    user = fc.new_project_user()
    fc.request("PUT", "compute", "/v2.1/os-quota-sets/%s" % user.project_id,
               json={"quota_set": {"instances": 50, "cores": 50, "ram": 100000}})
    tok = user.token()
    results = []

    def one(i):
        results.append(boot(fc, "par-%02d" % i, token=tok))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in results) == [202] * 20, [r.text for r in results if r.status_code != 202]
    ids = [r.json()["server"]["id"] for r in results]
    for sid in ids:
        wait_status(fc, sid, "ACTIVE", token=tok)
    # list/detail, filters and paging
    r = fc.request("GET", "compute", "/v2.1/servers/detail?name=par-0", token=tok)
    assert len(r.json()["servers"]) == 10
    page = fc.request("GET", "compute", "/v2.1/servers?limit=7", token=tok).json()
    assert len(page["servers"]) == 7 and page["servers_links"][0]["rel"] == "next"
    seen = [s["id"] for s in page["servers"]]
    while "servers_links" in page:
        nxt = page["servers_links"][0]["href"].split("/v2.1")[1]
        page = fc.request("GET", "compute", "/v2.1" + nxt, token=tok).json()
        seen += [s["id"] for s in page["servers"]]
    assert sorted(seen) == sorted(ids)
    r = fc.request("GET", "compute", "/v2.1/servers?status=SHUTOFF", token=tok)
    assert r.json()["servers"] == []
    r = fc.request("GET", "compute", "/v2.1/servers?marker=%s" % uuid.uuid4(), token=tok)
    assert r.status_code == 400
    for sid in ids:
        assert fc.request("DELETE", "compute", "/v2.1/servers/%s" % sid, token=tok).status_code == 204
    r = fc.request("GET", "compute", "/v2.1/servers?changes-since=2000-01-01T00:00:00Z", token=tok)
    assert {s["id"] for s in r.json()["servers"]} == set(ids)


def test_metadata_tags_update(fc):
    need_image(fc)
    r = boot(fc, "meta1", extra={"metadata": {"a": "1"}})
    sid = r.json()["server"]["id"]
    wait_status(fc, sid, "ACTIVE")
    base = "/v2.1/servers/%s" % sid
    r = fc.request("POST", "compute", base + "/metadata", json={"metadata": {"b": "2"}})
    assert r.json()["metadata"] == {"a": "1", "b": "2"}
    r = fc.request("PUT", "compute", base + "/metadata/c", json={"meta": {"c": "3"}})
    assert r.status_code == 200
    assert fc.request("GET", "compute", base + "/metadata/c").json() == {"meta": {"c": "3"}}
    assert fc.request("DELETE", "compute", base + "/metadata/a").status_code == 204
    assert fc.request("GET", "compute", base + "/metadata/a").status_code == 404
    h = dict(MV)
    assert fc.request("PUT", "compute", base + "/tags/blue", headers=h).status_code == 201
    assert fc.request("PUT", "compute", base + "/tags", headers=h, json={"tags": ["x", "y"]}).json()["tags"] == \
        ["x", "y"]
    assert fc.request("GET", "compute", base + "/tags/x", headers=h).status_code == 204
    assert fc.request("GET", "compute", "/v2.1/servers?tags=x,y", headers=h).json()["servers"][0]["id"] == sid
    r = fc.request("PUT", "compute", base, headers=h, json={"server": {"name": "meta2", "description": "d"}})
    assert r.status_code == 200 and r.json()["server"]["name"] == "meta2"
    assert r.json()["server"]["description"] == "d" and r.json()["server"]["tags"] == ["x", "y"]
    assert r.json()["server"]["flavor"]["original_name"] == "c1.tiny"
    fc.request("DELETE", "compute", base)


def test_resize_rebuild(fc):
    need_image(fc)
    big = fc.openstack("flavor", "create", "--vcpus", "2", "--ram", "256", "--disk", "1", "c1.big")
    r = boot(fc, "rs1")
    sid = r.json()["server"]["id"]
    wait_status(fc, sid, "ACTIVE")
    fc.openstack("server", "resize", "--flavor", "c1.big", sid)
    srv = wait_status(fc, sid, "VERIFY_RESIZE")
    assert srv["flavor"]["vcpus"] == 2 if isinstance(srv["flavor"], dict) and "vcpus" in srv["flavor"] else True
    fc.openstack("server", "resize", "confirm", sid)
    srv = wait_status(fc, sid, "ACTIVE")
    assert srv["flavor"]["id"] == big["id"]
    r = fc.request("POST", "compute", "/v2.1/servers/%s/action" % sid,
                   json={"resize": {"flavorRef": big["id"]}})
    assert r.status_code == 400
    fc.openstack("server", "resize", "--flavor", "c1.tiny", sid)
    wait_status(fc, sid, "VERIFY_RESIZE")
    fc.openstack("server", "resize", "revert", sid)
    srv = wait_status(fc, sid, "ACTIVE")
    assert srv["flavor"]["id"] == big["id"]
    # both resizes are migration records, newest first
    migs = fc.request("GET", "compute", "/v2.1/os-migrations?instance_uuid=%s" % sid,
                      headers={"OpenStack-API-Version": "compute 2.59"}).json()["migrations"]
    assert [m["status"] for m in migs] == ["reverted", "confirmed"], migs
    assert all(m["migration_type"] == "resize" and m["source_compute"] == m["dest_compute"] for m in migs)
    assert len(fc.openstack("server", "migration", "list", "--server", sid)) == 2
    fc.openstack("server", "rebuild", "--image", fc.image["id"], "--wait", sid)
    wait_status(fc, sid, "ACTIVE")
    fc.request("DELETE", "compute", "/v2.1/servers/%s" % sid)


def test_server_group_anti_affinity_one_host(fc):
    need_image(fc)
    g = fc.openstack("server", "group", "create", "--policy", "anti-affinity", "ga")
    r1 = boot(fc, "ga1", hints={"group": g["id"]})
    s1 = r1.json()["server"]["id"]
    wait_status(fc, s1, "ACTIVE")
    r2 = boot(fc, "ga2", hints={"group": g["id"]})
    s2 = r2.json()["server"]["id"]
    srv = wait_status(fc, s2, "ERROR")
    assert "No valid host was found" in srv["fault"]["message"] and srv["fault"]["code"] == 500
    shown = fc.openstack("server", "group", "show", "ga")
    assert s1 in (shown["members"] if isinstance(shown["members"], list) else shown["members"].split(", "))
    for s in (s1, s2):
        assert fc.request("DELETE", "compute", "/v2.1/servers/%s" % s).status_code == 204
    fc.openstack("server", "group", "delete", "ga")


def test_admin_apis(fc):
    svcs = fc.openstack("compute", "service", "list")
    binaries = {s["Binary"] for s in svcs}
    assert {"nova-compute", "nova-scheduler", "nova-conductor"} <= binaries
    assert all(s["State"] == "up" for s in svcs)
    host = [s["Host"] for s in svcs if s["Binary"] == "nova-compute"][0]
    fc.openstack("compute", "service", "set", "--disable", "--disable-reason", "maint", host, "nova-compute")
    st = [s for s in fc.openstack("compute", "service", "list") if s["Binary"] == "nova-compute"][0]
    assert st["Status"] == "disabled"
    if fc.has_image:
        r = boot(fc, "nohost")
        srv = wait_status(fc, r.json()["server"]["id"], "ERROR")
        assert "No valid host" in srv["fault"]["message"]
        fc.request("DELETE", "compute", "/v2.1/servers/%s" % srv["id"])
    fc.openstack("compute", "service", "set", "--enable", host, "nova-compute")
    hv = fc.openstack("hypervisor", "list")
    assert hv and hv[0]["State"] == "up"
    st = fc.request("GET", "compute", "/v2.1/os-hypervisors/statistics").json()["hypervisor_statistics"]
    assert st["count"] == 1 and st["vcpus"] == 1000
    az = fc.openstack("availability", "zone", "list", "--compute")
    assert any(z["Zone Name"] == "nova" for z in az)
    r = fc.request("GET", "compute", "/v2.1/os-simple-tenant-usage?detailed=1")
    assert r.status_code == 200 and "tenant_usages" in r.json()
    user = fc.new_project_user()
    assert fc.request("GET", "compute", "/v2.1/os-services", token=user.token()).status_code == 403


def test_aggregates_and_hosts(fc):
    """os-aggregates with the CLI (an aggregate's zone becomes its host's zone for scheduling)
    and the deprecated os-hosts."""
    host = fc.openstack("compute", "service", "list", "--service", "nova-compute")[0]["Host"]
    agg = fc.openstack("aggregate", "create", "--zone", "az-e2e", "agg-e2e")
    assert agg["name"] == "agg-e2e" and agg["availability_zone"] == "az-e2e"
    r = fc.openstack("aggregate", "create", "agg-e2e", check=False)
    assert r.returncode != 0 and "already exists" in r.stderr
    fc.openstack("aggregate", "set", "--property", "ssd=true", "agg-e2e")
    fc.openstack("aggregate", "add", "host", "agg-e2e", host)
    shown = fc.openstack("aggregate", "show", "agg-e2e")
    assert host in shown["hosts"] and shown["properties"].get("ssd") == "true" if isinstance(shown["properties"], dict) \
        else "ssd='true'" in shown["properties"]
    r = fc.request("POST", "compute", "/v2.1/os-aggregates/%s/action" % agg["id"],
                   json={"add_host": {"host": "no-such-host"}})
    assert r.status_code == 404, r.text
    r = fc.request("POST", "compute", "/v2.1/os-aggregates/%s/action" % agg["id"], json={"add_host": {"host": host}})
    assert r.status_code == 409, r.text
    r = fc.request("DELETE", "compute", "/v2.1/os-aggregates/%s" % agg["id"])
    assert r.status_code == 400, r.text  # not empty
    if fc.has_image:
        # the host is now in zone az-e2e: a server asking for it lands there
        r = boot(fc, "agg1", extra={"availability_zone": "az-e2e"})
        assert r.status_code == 202, r.text
        sid = r.json()["server"]["id"]
        srv = wait_status(fc, sid, "ACTIVE")
        assert srv["OS-EXT-AZ:availability_zone"] == "az-e2e"
        fc.request("DELETE", "compute", "/v2.1/servers/%s" % sid)
        wait_status(fc, sid, "DELETED")
    # os-hosts (up to 2.42)
    old = {"OpenStack-API-Version": "compute 2.42"}
    hosts = fc.request("GET", "compute", "/v2.1/os-hosts", headers=old).json()["hosts"]
    assert {"host_name": host, "service": "compute", "zone": "az-e2e"} in hosts
    res = fc.request("GET", "compute", "/v2.1/os-hosts/%s" % host, headers=old).json()["host"]
    assert [x["resource"]["project"] for x in res[:3]] == ["(total)", "(used_now)", "(used_max)"]
    assert fc.request("GET", "compute", "/v2.1/os-hosts", headers=MV).status_code == 404
    r = fc.request("PUT", "compute", "/v2.1/os-hosts/%s" % host, headers=old, json={"status": "bogus"})
    assert r.status_code == 400
    fc.openstack("aggregate", "remove", "host", "agg-e2e", host)
    fc.openstack("aggregate", "delete", "agg-e2e")
    assert fc.request("GET", "compute", "/v2.1/os-aggregates/%s" % agg["id"]).status_code == 404
