"""Compute integration with the network and volume services, with the openstack CLI, on the fake
virt driver: ports made and bound at boot (--network, --nic port-id=, auto), addresses in server
show, floating IPs (action and network API), security groups, interface hotplug, volume
attach/detach through os-volume_attachments and Cinder's attachments, boot from volume, and
cleanup of what compute made on delete."""
import os
import shutil
import tempfile
import time

import pytest

from conftest import Cloud, _build_ok


@pytest.fixture(scope="module")
def ic():
    _build_ok()
    d = tempfile.mkdtemp(prefix="compute-int-", dir="/var/tmp")
    c = Cloud(d, {"compute.virt_driver": "fake"}).init().start()
    for svc in ("network", "volume", "image"):
        if not c.service_up(svc):
            c.stop()
            shutil.rmtree(d, ignore_errors=True)
            pytest.skip("%s service not available" % svc)
    c.flavor = c.openstack("flavor", "create", "--vcpus", "1", "--ram", "128", "--disk", "1", "i1.tiny")
    path = os.path.join(d, "tiny.img")
    with open(path, "wb") as f:
        f.write(b"\0" * 4096)
    c.image = c.openstack("image", "create", "--disk-format", "raw", "--container-format", "bare", "--public",
                          "--file", path, "int-img")
    c.net = c.openstack("network", "create", "int-net")
    c.subnet = c.openstack("subnet", "create", "--network", "int-net", "--subnet-range", "10.77.0.0/24", "int-sub")
    yield c
    c.stop()
    if os.environ.get("TS_KEEP_DATA") is None:
        shutil.rmtree(d, ignore_errors=True)


def boot(c, name, *nic_args, extra=()):
    return c.openstack("server", "create", "--flavor", c.flavor["id"], "--image", c.image["id"], *nic_args, *extra,
                       "--wait", name)


def ports_of(c, sid):
    return c.openstack("port", "list", "--device-id", sid, "--long")


def wait_for(fn, timeout=30, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError("timed out waiting for %s (last %r)" % (what, last))


def addresses(c, sid):
    r = c.request("GET", "compute", "/v2.1/servers/%s" % sid, headers={"OpenStack-API-Version": "compute 2.90"})
    assert r.status_code == 200, r.text
    return r.json()["server"]["addresses"]


def test_network_port_addresses_and_delete(ic):
    s = boot(ic, "n1", "--network", "int-net")
    assert s["status"] == "ACTIVE"
    ports = ports_of(ic, s["id"])
    assert len(ports) == 1
    p = ic.openstack("port", "show", ports[0]["ID"])
    assert p["device_owner"].startswith("compute:")
    assert p["binding_host_id"]
    addrs = addresses(ic, s["id"])
    assert list(addrs) == ["int-net"]
    a = addrs["int-net"][0]
    assert a["addr"].startswith("10.77.0.") and a["version"] == 4
    assert a["OS-EXT-IPS:type"] == "fixed" and a["OS-EXT-IPS-MAC:mac_addr"] == p["mac_address"]
    # the CLI shows it too
    show = ic.openstack("server", "show", s["id"])
    assert "10.77.0." in str(show["addresses"])
    ic.openstack("server", "delete", "--wait", s["id"])
    assert ports_of(ic, s["id"]) == []
    r = ic.request("GET", "network", "/v2.0/ports/%s" % p["id"])
    assert r.status_code == 404


def test_port_id_stays_after_delete(ic):
    port = ic.openstack("port", "create", "--network", "int-net", "user-port")
    s = boot(ic, "n2", "--nic", "port-id=%s" % port["id"])
    p = ic.openstack("port", "show", port["id"])
    assert p["device_id"] == s["id"]
    assert list(addresses(ic, s["id"])) == ["int-net"]
    # a port in use cannot boot another server
    r = ic.openstack("server", "create", "--flavor", ic.flavor["id"], "--image", ic.image["id"], "--nic",
                     "port-id=%s" % port["id"], "n2b", check=False)
    assert r.returncode != 0 and "in use" in (r.stderr + r.stdout)
    ic.openstack("server", "delete", "--wait", s["id"])
    p = ic.openstack("port", "show", port["id"])
    assert p["device_id"] == "" and not p["binding_host_id"]
    ic.openstack("port", "delete", port["id"])


def test_auto_and_errors(ic):
    # auto: the project's only network
    mv = {"OpenStack-API-Version": "compute 2.37"}
    body = {"server": {"name": "auto1", "imageRef": ic.image["id"], "flavorRef": ic.flavor["id"], "networks": "auto"}}
    r = ic.request("POST", "compute", "/v2.1/servers", json=body, headers=dict(mv))
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    ic.openstack("server", "show", sid)
    wait_for(lambda: ports_of(ic, sid), what="auto port")
    ic.openstack("server", "delete", "--wait", sid)
    # a user with no network at all: 400 for auto
    u = ic.new_project_user()
    r = ic.request("POST", "compute", "/v2.1/servers", json=body, headers=dict(mv), token=u.token())
    assert r.status_code == 400, r.text
    # unknown network: 400
    body["server"]["networks"] = [{"uuid": "4b3d5a3c-0000-4000-8000-000000000000"}]
    r = ic.request("POST", "compute", "/v2.1/servers", json=body, headers=dict(mv))
    assert r.status_code == 400 and "could not be found" in r.text


def test_floating_ip_and_security_groups(ic):
    ext = ic.openstack("network", "create", "--external", "int-ext")
    ic.openstack("subnet", "create", "--network", "int-ext", "--subnet-range", "172.30.77.0/24", "--no-dhcp",
                 "int-ext-sub")
    ic.openstack("router", "create", "int-r")
    ic.openstack("router", "set", "--external-gateway", "int-ext", "int-r")
    ic.openstack("router", "add", "subnet", "int-r", "int-sub")
    s = boot(ic, "f1", "--network", "int-net")
    fip = ic.openstack("floating", "ip", "create", "int-ext")
    addr = fip["floating_ip_address"]
    # the CLI (network API directly)
    ic.openstack("server", "add", "floating", "ip", s["id"], addr)
    floats = [a for a in addresses(ic, s["id"])["int-net"] if a["OS-EXT-IPS:type"] == "floating"]
    assert [a["addr"] for a in floats] == [addr]
    ic.openstack("server", "remove", "floating", "ip", s["id"], addr)
    assert all(a["OS-EXT-IPS:type"] == "fixed" for a in addresses(ic, s["id"])["int-net"])
    # the old action (2.43 and before)
    mv = {"OpenStack-API-Version": "compute 2.43"}
    r = ic.request("POST", "compute", "/v2.1/servers/%s/action" % s["id"], json={"addFloatingIp": {"address": addr}},
                   headers=dict(mv))
    assert r.status_code == 202, r.text
    assert ic.openstack("floating", "ip", "show", addr)["port_id"] == ports_of(ic, s["id"])[0]["ID"]
    assert any(a["addr"] == addr for a in addresses(ic, s["id"])["int-net"])
    r = ic.request("POST", "compute", "/v2.1/servers/%s/action" % s["id"],
                   json={"removeFloatingIp": {"address": addr}}, headers=dict(mv))
    assert r.status_code == 202, r.text
    assert not ic.openstack("floating", "ip", "show", addr)["port_id"]
    r = ic.request("POST", "compute", "/v2.1/servers/%s/action" % s["id"],
                   json={"addFloatingIp": {"address": "203.0.113.99"}}, headers=dict(mv))
    assert r.status_code == 404
    # security groups
    sg = ic.openstack("security", "group", "create", "int-sg")
    ic.openstack("server", "add", "security", "group", s["id"], "int-sg")
    port = ic.openstack("port", "show", ports_of(ic, s["id"])[0]["ID"])
    assert sg["id"] in str(port["security_group_ids"])
    names = [g["name"] for g in ic.request("GET", "compute", "/v2.1/servers/%s" % s["id"]).json()["server"][
        "security_groups"]]
    assert "int-sg" in names
    ic.openstack("server", "remove", "security", "group", s["id"], "int-sg")
    port = ic.openstack("port", "show", ports_of(ic, s["id"])[0]["ID"])
    assert sg["id"] not in str(port["security_group_ids"])
    r = ic.request("POST", "compute", "/v2.1/servers/%s/action" % s["id"],
                   json={"addSecurityGroup": {"name": "no-such-sg"}})
    assert r.status_code == 404
    ic.openstack("server", "delete", "--wait", s["id"])
    ic.openstack("floating", "ip", "delete", addr)
    ic.openstack("router", "remove", "subnet", "int-r", "int-sub")
    ic.openstack("router", "delete", "int-r")
    ic.openstack("network", "delete", ext["id"])


def test_interface_hotplug(ic):
    s = boot(ic, "h1", "--network", "int-net")
    port = ic.openstack("port", "create", "--network", "int-net", "hot-port")
    ic.openstack("server", "add", "port", s["id"], port["id"])
    assert len(ports_of(ic, s["id"])) == 2
    r = ic.request("GET", "compute", "/v2.1/servers/%s/os-interface" % s["id"])
    assert r.status_code == 200
    ifs = r.json()["interfaceAttachments"]
    assert port["id"] in [i["port_id"] for i in ifs]
    one = [i for i in ifs if i["port_id"] == port["id"]][0]
    assert one["mac_addr"] == port["mac_address"] and one["fixed_ips"][0]["ip_address"].startswith("10.77.0.")
    assert len(addresses(ic, s["id"])["int-net"]) == 2
    # a network: compute makes the port, and removes it on detach
    ic.openstack("server", "add", "network", s["id"], "int-net")
    ports = ports_of(ic, s["id"])
    assert len(ports) == 3
    made = [p["ID"] for p in ports if p["ID"] != port["id"]]
    ic.openstack("server", "remove", "port", s["id"], port["id"])
    assert ic.openstack("port", "show", port["id"])["device_id"] == ""
    r = ic.request("DELETE", "compute", "/v2.1/servers/%s/os-interface/%s" % (s["id"], port["id"]))
    assert r.status_code == 404
    ic.openstack("server", "delete", "--wait", s["id"])
    for pid in made:
        assert ic.request("GET", "network", "/v2.0/ports/%s" % pid).status_code == 404
    ic.openstack("port", "delete", port["id"])


def vol_status(c, vid):
    return c.openstack("volume", "show", vid)["status"]


def test_volume_attach_detach(ic):
    s = boot(ic, "v1", "--network", "int-net")
    v = ic.openstack("volume", "create", "--size", "1", "int-vol")
    wait_for(lambda: vol_status(ic, v["id"]) == "available", what="volume available")
    ic.openstack("server", "add", "volume", s["id"], v["id"])
    assert vol_status(ic, v["id"]) == "in-use"
    vol = ic.openstack("volume", "show", v["id"])
    assert vol["attachments"][0]["server_id"] == s["id"]
    r = ic.request("GET", "compute", "/v2.1/servers/%s/os-volume_attachments" % s["id"])
    atts = r.json()["volumeAttachments"]
    assert [a["volumeId"] for a in atts] == [v["id"]] and atts[0]["device"] == "/dev/vdb"
    srv = ic.request("GET", "compute", "/v2.1/servers/%s" % s["id"]).json()["server"]
    assert [x["id"] for x in srv["os-extended-volumes:volumes_attached"]] == [v["id"]]
    # attached volumes cannot be deleted
    r = ic.request("DELETE", "volume", "/v3/%s/volumes/%s" % (vol["os-vol-tenant-attr:tenant_id"], v["id"]))
    assert r.status_code == 400, r.text
    # nor attached twice
    r = ic.request("POST", "compute", "/v2.1/servers/%s/os-volume_attachments" % s["id"],
                   json={"volumeAttachment": {"volumeId": v["id"]}})
    assert r.status_code == 400
    ic.openstack("server", "remove", "volume", s["id"], v["id"])
    wait_for(lambda: vol_status(ic, v["id"]) == "available", what="volume detached")
    r = ic.request("GET", "compute", "/v2.1/servers/%s/os-volume_attachments" % s["id"])
    assert r.json()["volumeAttachments"] == []
    # attached at delete: the server's delete detaches it
    ic.openstack("server", "add", "volume", s["id"], v["id"])
    ic.openstack("server", "delete", "--wait", s["id"])
    wait_for(lambda: vol_status(ic, v["id"]) == "available", what="volume detached by delete")
    ic.openstack("volume", "delete", v["id"])


def test_boot_from_volume(ic):
    s = ic.openstack("server", "create", "--flavor", ic.flavor["id"], "--image", ic.image["id"],
                     "--boot-from-volume", "1", "--network", "int-net", "--wait", "bfv1")
    assert s["status"] == "ACTIVE"
    srv = ic.request("GET", "compute", "/v2.1/servers/%s" % s["id"],
                     headers={"OpenStack-API-Version": "compute 2.3"}).json()["server"]
    vols = srv["os-extended-volumes:volumes_attached"]
    assert len(vols) == 1
    vid = vols[0]["id"]
    assert vol_status(ic, vid) == "in-use"
    r = ic.request("DELETE", "compute", "/v2.1/servers/%s/os-volume_attachments/%s" % (s["id"], vid))
    assert r.status_code == 400  # the root volume
    dot = vols[0]["delete_on_termination"]
    ic.openstack("server", "delete", "--wait", s["id"])
    if dot:
        wait_for(lambda: ic.request("GET", "volume", "/v3/%s/volumes/%s" % (srv["tenant_id"], vid)).status_code == 404,
                 what="volume deleted with the server")
    else:
        wait_for(lambda: vol_status(ic, vid) == "available", what="volume kept")
        ic.openstack("volume", "delete", vid)


def test_external_events(ic):
    s = boot(ic, "e1", "--network", "int-net")
    pid = ports_of(ic, s["id"])[0]["ID"]
    ev = {"name": "network-vif-plugged", "server_uuid": s["id"], "tag": pid, "status": "completed"}
    missing = dict(ev, server_uuid="4b3d5a3c-0000-4000-8000-000000000000")
    r = ic.request("POST", "compute", "/v2.1/os-server-external-events", json={"events": [ev]})
    assert r.status_code == 200, r.text
    assert r.json()["events"][0]["code"] == 200
    r = ic.request("POST", "compute", "/v2.1/os-server-external-events", json={"events": [ev, missing]})
    assert r.status_code == 207 and [e["code"] for e in r.json()["events"]] == [200, 404]
    r = ic.request("POST", "compute", "/v2.1/os-server-external-events", json={"events": [missing]})
    assert r.status_code == 404
    r = ic.request("POST", "compute", "/v2.1/os-server-external-events", json={"events": [dict(ev, name="bogus")]})
    assert r.status_code == 400
    u = ic.new_project_user()
    r = ic.request("POST", "compute", "/v2.1/os-server-external-events", json={"events": [ev]}, token=u.token())
    assert r.status_code == 403
    ic.openstack("server", "delete", "--wait", s["id"])


def test_no_networks_before_2_37(ic):
    """Before 2.37 a request without "networks" gets a port on the one network the project can
    use (its own or a shared one), no NIC when there is none, and Nova's 409 when there are
    several."""
    u = ic.new_project_user()
    tok = u.token()
    body = {"server": {"name": "legacy1", "imageRef": ic.image["id"], "flavorRef": ic.flavor["id"]}}
    old = {"OpenStack-API-Version": "compute 2.36"}
    made = []
    try:
        # no network at all: the server boots without a NIC
        r = ic.request("POST", "compute", "/v2.1/servers", json=body, headers=old, token=tok)
        assert r.status_code == 202, r.text
        sid = r.json()["server"]["id"]
        made.append(sid)
        wait_for(lambda: ic.request("GET", "compute", "/v2.1/servers/%s" % sid, token=tok).json()["server"]
                 ["status"] == "ACTIVE", what="ACTIVE")
        assert ports_of(ic, sid) == []
        # the project's own network: the server gets a port there (2.1 has no networks either)
        r = ic.request("POST", "network", "/v2.0/networks", json={"network": {"name": "legacy-net"}}, token=tok)
        assert r.status_code == 201, r.text
        net = r.json()["network"]
        r = ic.request("POST", "network", "/v2.0/subnets", token=tok,
                       json={"subnet": {"network_id": net["id"], "cidr": "10.78.0.0/24", "ip_version": 4}})
        assert r.status_code == 201, r.text
        body["server"]["name"] = "legacy2"
        r = ic.request("POST", "compute", "/v2.1/servers", json=body, token=tok)
        assert r.status_code == 202, r.text
        sid = r.json()["server"]["id"]
        made.append(sid)
        ports = wait_for(lambda: ports_of(ic, sid), what="port on the project's network")
        assert len(ports) == 1
        assert ic.openstack("port", "show", ports[0]["ID"])["network_id"] == net["id"]
        # 2.37 and later still need "networks"
        r = ic.request("POST", "compute", "/v2.1/servers", json=body, token=tok,
                       headers={"OpenStack-API-Version": "compute 2.37"})
        assert r.status_code == 400, r.text
        # a shared network as well: ambiguous
        shared = ic.openstack("network", "create", "--share", "legacy-shared")
        try:
            r = ic.request("POST", "compute", "/v2.1/servers", json=body, headers=old, token=tok)
            assert r.status_code == 409, r.text
            assert r.json()["conflictingRequest"]["message"] == \
                "Multiple possible networks found, use a Network ID to be more specific."
        finally:
            ic.openstack("network", "delete", shared["id"])
    finally:
        for sid in made:
            ic.request("DELETE", "compute", "/v2.1/servers/%s" % sid, token=tok)
        for sid in made:
            wait_for(lambda: ic.request("GET", "compute", "/v2.1/servers/%s" % sid, token=tok).status_code == 404,
                     what="server gone")
