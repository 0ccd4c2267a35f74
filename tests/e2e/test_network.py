"""Network service (Neutron v2.0) end to end with /usr/bin/openstack and requests."""
import concurrent.futures
import uuid

import pytest


def name(prefix="n"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


def net_req(cloud, method, path, token=None, **kw):
    return cloud.request(method, "network", path, token=token, **kw)


@pytest.fixture(scope="module")
def ext_net(cloud):
    n = cloud.openstack("network", "create", "--external", "--provider-network-type", "flat",
                        "--provider-physical-network", "public-%s" % uuid.uuid4().hex[:6], name("ext"))
    cloud.openstack("subnet", "create", "--network", n["id"], "--subnet-range", "203.0.113.0/24",
                    "--no-dhcp", name("extsub"))
    return n


def test_versions_and_extensions(cloud):
    r = net_req(cloud, "GET", "/", token="")
    assert r.status_code == 200 and r.json()["versions"][0]["id"] == "v2.0"
    r = net_req(cloud, "GET", "/v2.0")
    assert {x["collection"] for x in r.json()["resources"]} >= {"networks", "subnets", "ports"}
    aliases = {e["alias"] for e in net_req(cloud, "GET", "/v2.0/extensions").json()["extensions"]}
    assert {"router", "external-net", "security-group", "quotas", "standard-attr-tag"} <= aliases
    assert cloud.openstack("extension", "show", "router")["alias"] == "router"


def test_network_subnet_port_crud(cloud):
    n = cloud.openstack("network", "create", "--mtu", "1400", name())
    assert n["mtu"] == 1400 and n["status"] == "ACTIVE"
    cloud.openstack("network", "set", "--name", n["name"] + "-x", n["id"])
    assert cloud.openstack("network", "show", n["id"])["name"] == n["name"] + "-x"
    s = cloud.openstack("subnet", "create", "--network", n["id"], "--subnet-range", "10.10.0.0/24",
                        "--allocation-pool", "start=10.10.0.10,end=10.10.0.20", "--dns-nameserver", "10.10.0.2",
                        "--host-route", "destination=10.20.0.0/24,gateway=10.10.0.1", name("s"))
    assert s["gateway_ip"] == "10.10.0.1"
    assert s["allocation_pools"] == [{"start": "10.10.0.10", "end": "10.10.0.20"}]
    s6 = cloud.openstack("subnet", "create", "--network", n["id"], "--ip-version", "6", "--subnet-range",
                         "fd00:10::/64", "--ipv6-ra-mode", "slaac", "--ipv6-address-mode", "slaac", name("s6"))
    assert s6["ipv6_address_mode"] == "slaac"
    p = cloud.openstack("port", "create", "--network", n["id"], "--allowed-address", "ip-address=10.10.0.99",
                        "--extra-dhcp-option", "name=mtu,value=1400", name("p"))
    assert p["mac_address"].startswith("fa:16:3e:")
    ips = {f["ip_address"] for f in p["fixed_ips"]}
    v4 = [i for i in ips if "." in i]  # a DHCP agent may already hold the pool's first address
    assert len(v4) == 1 and 10 <= int(v4[0].rsplit(".", 1)[1]) <= 20
    assert any(i.startswith("fd00:10::") for i in ips)
    assert p["status"] == "DOWN"
    p2 = cloud.openstack("port", "create", "--network", n["id"], "--fixed-ip",
                         "subnet=%s,ip-address=10.10.0.15" % s["id"], name("p"))
    assert p2["fixed_ips"][0]["ip_address"] == "10.10.0.15"
    cloud.openstack("port", "set", "--name", "renamed", p2["id"])
    assert cloud.openstack("port", "show", p2["id"])["name"] == "renamed"
    listed = cloud.openstack("port", "list", "--network", n["id"], "--long")
    # the data-plane agent's DHCP port may be there too
    assert {x["ID"] for x in listed if x["Device Owner"] != "network:dhcp"} == {p["id"], p2["id"]}
    cloud.openstack("subnet", "set", "--name", "s-renamed", s["id"])
    # delete: ports block the network and the subnet
    r = cloud.openstack("network", "delete", n["id"], check=False)
    assert r.returncode != 0
    assert net_req(cloud, "DELETE", "/v2.0/subnets/" + s["id"]).status_code == 409
    assert net_req(cloud, "DELETE", "/v2.0/networks/" + n["id"]).json()["NeutronError"]["type"] == "NetworkInUse"
    cloud.openstack("port", "delete", p["id"], p2["id"])
    cloud.openstack("subnet", "delete", s["id"])
    cloud.openstack("network", "delete", n["id"])
    r = net_req(cloud, "GET", "/v2.0/networks/" + n["id"])
    assert r.status_code == 404
    assert r.json()["NeutronError"] == {"type": "NetworkNotFound",
                                        "message": "Network %s could not be found." % n["id"], "detail": ""}


def test_bad_input_is_400(cloud):
    n = cloud.openstack("network", "create", name())
    nid = n["id"]
    bad = [
        {"network_id": nid, "cidr": "10.0.0.0/33", "ip_version": 4},
        {"network_id": nid, "cidr": "10.0.0.1/24", "ip_version": 4},
        {"network_id": nid, "cidr": "nonsense", "ip_version": 4},
        {"network_id": nid, "cidr": "10.1.0.0/24", "ip_version": 4, "gateway_ip": "10.1.0.300"},
        {"network_id": nid, "cidr": "10.1.0.0/24", "ip_version": 4,
         "allocation_pools": [{"start": "10.1.0.10", "end": "10.1.0.30"}, {"start": "10.1.0.20", "end": "10.1.0.40"}]},
        {"network_id": nid, "cidr": "10.1.0.0/24", "ip_version": 4, "gateway_ip": "10.1.0.15",
         "allocation_pools": [{"start": "10.1.0.10", "end": "10.1.0.30"}]},
        {"network_id": nid, "cidr": "10.1.0.0/24", "ip_version": 6},
    ]
    for b in bad:
        r = net_req(cloud, "POST", "/v2.0/subnets", json={"subnet": b})
        assert r.status_code == 400, (b, r.text)
        assert "NeutronError" in r.json()
    ok = net_req(cloud, "POST", "/v2.0/subnets", json={"subnet": {"network_id": nid, "cidr": "10.1.0.0/24",
                                                                  "ip_version": 4}})
    assert ok.status_code == 201
    r = net_req(cloud, "POST", "/v2.0/subnets", json={"subnet": {"network_id": nid, "cidr": "10.1.0.128/25",
                                                                 "ip_version": 4}})
    assert r.status_code == 400  # overlaps within the network
    r = net_req(cloud, "POST", "/v2.0/ports", json={"port": {"network_id": nid,
                                                             "fixed_ips": [{"ip_address": "10.1.0.999"}]}})
    assert r.status_code == 400
    r = net_req(cloud, "POST", "/v2.0/ports", json={"port": {"network_id": nid, "bogus": 1}})
    assert r.status_code == 400
    r = net_req(cloud, "POST", "/v2.0/networks", data="{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    cloud.openstack("subnet", "delete", ok.json()["subnet"]["id"])
    cloud.openstack("network", "delete", nid)


def test_ip_exhaustion_409(cloud):
    n = cloud.openstack("network", "create", name())
    # no DHCP: a network agent would otherwise race us for the addresses with its DHCP port
    cloud.openstack("subnet", "create", "--network", n["id"], "--subnet-range", "192.168.77.0/29", "--no-dhcp",
                    name("s"))
    made = []
    for _ in range(7):  # .2 .. .6
        r = net_req(cloud, "POST", "/v2.0/ports", json={"port": {"network_id": n["id"]}})
        if r.status_code != 201:
            break
        made.append(r.json()["port"])
    assert r.status_code == 409 and len(made) == 5
    assert r.json()["NeutronError"]["type"] == "IpAddressGenerationFailure"
    # a freed address is reused
    freed = made[0]["fixed_ips"][0]["ip_address"]
    cloud.openstack("port", "delete", made[0]["id"])
    r = net_req(cloud, "POST", "/v2.0/ports", json={"port": {"network_id": n["id"]}})
    assert r.status_code == 201 and r.json()["port"]["fixed_ips"][0]["ip_address"] == freed


def test_concurrent_port_creates_unique(cloud):
    n = cloud.openstack("network", "create", name())
    cloud.openstack("subnet", "create", "--network", n["id"], "--subnet-range", "10.77.0.0/24", name("s"))
    tok = cloud.token()

    def mk(_):
        return net_req(cloud, "POST", "/v2.0/ports", token=tok, json={"port": {"network_id": n["id"]}})

    with concurrent.futures.ThreadPoolExecutor(20) as ex:
        rs = list(ex.map(mk, range(60)))
    assert all(r.status_code < 500 for r in rs), [r.text for r in rs if r.status_code >= 500]
    ok = [r.json()["port"] for r in rs if r.status_code == 201]
    assert len(ok) == 60
    ips = [p["fixed_ips"][0]["ip_address"] for p in ok]
    macs = [p["mac_address"] for p in ok]
    assert len(set(ips)) == len(ips) and len(set(macs)) == len(macs)


def test_visibility_across_projects(cloud):
    a = cloud.new_project_user()
    b = cloud.new_project_user()
    private = cloud.openstack("network", "create", name("priv"), env=a.env)
    shared = cloud.openstack("network", "create", "--share", name("shared"))
    seen_b = {x["ID"] for x in cloud.openstack("network", "list", env=b.env)}
    assert shared["id"] in seen_b and private["id"] not in seen_b
    r = net_req(cloud, "GET", "/v2.0/networks/" + private["id"], token=b.token())
    assert r.status_code == 404
    # overlapping CIDRs in two projects
    cloud.openstack("subnet", "create", "--network", private["id"], "--subnet-range", "10.55.0.0/24", name("s"),
                    env=a.env)
    nb = cloud.openstack("network", "create", name("privb"), env=b.env)
    cloud.openstack("subnet", "create", "--network", nb["id"], "--subnet-range", "10.55.0.0/24", name("s"), env=b.env)
    pa = cloud.openstack("port", "create", "--network", private["id"], name("p"), env=a.env)
    r = net_req(cloud, "GET", "/v2.0/ports/" + pa["id"], token=b.token())
    assert r.status_code == 404
    assert pa["id"] not in {x["ID"] for x in cloud.openstack("port", "list", env=b.env)}
    assert net_req(cloud, "DELETE", "/v2.0/ports/" + pa["id"], token=b.token()).status_code == 404
    # non-admins cannot share or set provider attributes
    r = net_req(cloud, "POST", "/v2.0/networks", token=a.token(), json={"network": {"shared": True}})
    assert r.status_code == 403
    # provider attributes are hidden from non-admins
    r = net_req(cloud, "GET", "/v2.0/networks/" + private["id"], token=a.token())
    assert "provider:network_type" not in r.json()["network"]


def test_reader_cannot_write(cloud):
    rd = cloud.new_project_user(role="reader")
    r = net_req(cloud, "POST", "/v2.0/networks", token=rd.token(), json={"network": {"name": "x"}})
    assert r.status_code == 403
    assert net_req(cloud, "GET", "/v2.0/networks", token=rd.token()).status_code == 200


def test_quota_exceeded(cloud):
    u = cloud.new_project_user()
    cloud.openstack("quota", "set", "--networks", "2", u.project_id, check=False)
    r = net_req(cloud, "PUT", "/v2.0/quotas/" + u.project_id, json={"quota": {"network": 2}})
    assert r.status_code == 200 and r.json()["quota"]["network"] == 2
    q = net_req(cloud, "GET", "/v2.0/quotas/" + u.project_id, token=u.token()).json()["quota"]
    assert q["port"] == 500 and q["subnet"] == 100 and q["router"] == 10 and q["floatingip"] == 50
    assert q["security_group"] == 10 and q["security_group_rule"] == 100
    cloud.openstack("network", "create", name(), env=u.env)
    cloud.openstack("network", "create", name(), env=u.env)
    r = net_req(cloud, "POST", "/v2.0/networks", token=u.token(), json={"network": {"name": "x"}})
    assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "OverQuota"
    d = net_req(cloud, "GET", "/v2.0/quotas/%s/details" % u.project_id).json()["quota"]
    assert d["network"]["used"] == 2
    assert net_req(cloud, "DELETE", "/v2.0/quotas/" + u.project_id).status_code == 204


def test_security_groups(cloud):
    u = cloud.new_project_user()
    groups = cloud.openstack("security", "group", "list", env=u.env)
    assert [g["Name"] for g in groups] == ["default"]
    default = cloud.openstack("security", "group", "show", groups[0]["ID"], env=u.env)
    rules = default["rules"] if "rules" in default else default["security_group_rules"]
    assert len(rules) == 4
    sg = cloud.openstack("security", "group", "create", "--description", "web", name("sg"), env=u.env)
    r = cloud.openstack("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "80:81",
                        "--remote-ip", "10.0.0.1/24", sg["id"], "-f", "json", env=u.env)
    assert r["port_range_min"] == 80 and r["port_range_max"] == 81 and r["remote_ip_prefix"] == "10.0.0.0/24"
    r2 = cloud.openstack("security", "group", "rule", "create", "--protocol", "icmp", "--remote-group",
                         default["id"], sg["id"], "-f", "json", env=u.env)
    assert r2["remote_group_id"] == default["id"]
    cloud.openstack("security", "group", "rule", "create", "--protocol", "17", "--ingress", sg["id"], env=u.env)
    dup = net_req(cloud, "POST", "/v2.0/security-group-rules", token=u.token(), json={"security_group_rule": {
        "security_group_id": sg["id"], "direction": "ingress", "protocol": "tcp", "port_range_min": 80,
        "port_range_max": 81, "remote_ip_prefix": "10.0.0.0/24", "ethertype": "IPv4"}})
    assert dup.status_code == 409
    for bad in ({"protocol": "tcp", "port_range_min": 90, "port_range_max": 80},
                {"protocol": "tcp", "port_range_min": 0, "port_range_max": 70000},
                {"protocol": "nonsense"},
                {"protocol": "gre", "port_range_min": 1, "port_range_max": 2},
                {"ethertype": "IPv6", "remote_ip_prefix": "10.0.0.0/8"}):
        body = {"security_group_id": sg["id"], "direction": "ingress"}
        body.update(bad)
        rr = net_req(cloud, "POST", "/v2.0/security-group-rules", token=u.token(),
                     json={"security_group_rule": body})
        assert rr.status_code == 400, (bad, rr.text)
    cloud.openstack("security", "group", "set", "--name", sg["name"] + "-2", sg["id"], env=u.env)
    listed = cloud.openstack("security", "group", "rule", "list", sg["id"], "-f", "json", env=u.env)
    assert len(listed) == 5
    cloud.openstack("security", "group", "rule", "delete", r["id"], env=u.env)
    cloud.openstack("security", "group", "delete", sg["id"], env=u.env)
    assert net_req(cloud, "DELETE", "/v2.0/security-groups/" + default["id"], token=u.token()).status_code == 409


def test_router_and_floating_ip(cloud, ext_net):
    u = cloud.new_project_user()
    n = cloud.openstack("network", "create", name(), env=u.env)
    s = cloud.openstack("subnet", "create", "--network", n["id"], "--subnet-range", "10.99.0.0/24", name("s"),
                        env=u.env)
    rt = cloud.openstack("router", "create", name("r"), env=u.env)
    cloud.openstack("router", "add", "subnet", rt["id"], s["id"], env=u.env)
    cloud.openstack("router", "set", "--external-gateway", ext_net["id"], rt["id"], env=u.env)
    shown = cloud.openstack("router", "show", rt["id"], env=u.env)
    gw = shown["external_gateway_info"]
    assert gw["network_id"] == ext_net["id"] and gw["enable_snat"] is True
    assert gw["external_fixed_ips"][0]["ip_address"].startswith("203.0.113.")
    ifports = cloud.openstack("port", "list", "--router", rt["id"], env=u.env)
    assert any("10.99.0.1" in str(p["Fixed IP Addresses"]) for p in ifports)
    cloud.openstack("router", "set", "--route", "destination=10.123.0.0/16,gateway=10.99.0.5", rt["id"], env=u.env)
    assert cloud.openstack("router", "show", rt["id"], env=u.env)["routes"] == [
        {"destination": "10.123.0.0/16", "nexthop": "10.99.0.5"}]
    cloud.openstack("router", "unset", "--route", "destination=10.123.0.0/16,gateway=10.99.0.5", rt["id"],
                    env=u.env)
    port = cloud.openstack("port", "create", "--network", n["id"], name("vm"), env=u.env)
    fip = cloud.openstack("floating", "ip", "create", ext_net["id"], env=u.env)
    assert fip["floating_ip_address"].startswith("203.0.113.") and fip["port_id"] is None
    cloud.openstack("floating", "ip", "set", "--port", port["id"], fip["id"], env=u.env)
    f2 = cloud.openstack("floating", "ip", "show", fip["id"], env=u.env)
    assert f2["port_id"] == port["id"] and f2["router_id"] == rt["id"]
    assert f2["fixed_ip_address"] == port["fixed_ips"][0]["ip_address"]
    # the interface is needed by the floating IP
    r = net_req(cloud, "PUT", "/v2.0/routers/%s/remove_router_interface" % rt["id"], token=u.token(),
                json={"subnet_id": s["id"]})
    assert r.status_code == 409
    cloud.openstack("floating", "ip", "unset", "--port", fip["id"], env=u.env)
    assert cloud.openstack("floating", "ip", "show", fip["id"], env=u.env)["port_id"] is None
    cloud.openstack("floating", "ip", "delete", fip["id"], env=u.env)
    assert net_req(cloud, "DELETE", "/v2.0/routers/" + rt["id"], token=u.token()).status_code == 409
    cloud.openstack("router", "remove", "subnet", rt["id"], s["id"], env=u.env)
    cloud.openstack("router", "unset", "--external-gateway", rt["id"], env=u.env)
    cloud.openstack("router", "delete", rt["id"], env=u.env)
    cloud.openstack("port", "delete", port["id"], env=u.env)
    cloud.openstack("network", "delete", n["id"], env=u.env)


def test_subnet_pool(cloud):
    pool = cloud.openstack("subnet", "pool", "create", "--pool-prefix", "10.200.0.0/16", "--default-prefix-length",
                           "26", name("pool"))
    assert pool["default_prefixlen"] == 26
    n = cloud.openstack("network", "create", name())
    s1 = cloud.openstack("subnet", "create", "--network", n["id"], "--subnet-pool", pool["id"], name("s"))
    s2 = cloud.openstack("subnet", "create", "--network", n["id"], "--subnet-pool", pool["id"], "--prefix-length",
                         "28", name("s"))
    assert s1["cidr"] == "10.200.0.0/26" and s2["cidr"] == "10.200.0.64/28"
    cloud.openstack("subnet", "pool", "set", "--name", "renamed", pool["id"])
    assert net_req(cloud, "DELETE", "/v2.0/subnetpools/" + pool["id"]).status_code == 409
    cloud.openstack("subnet", "delete", s1["id"], s2["id"])
    cloud.openstack("subnet", "pool", "delete", pool["id"])
    cloud.openstack("network", "delete", n["id"])


def test_tags_filters_sort_pagination(cloud):
    u = cloud.new_project_user()
    ids = []
    for i in range(5):
        ids.append(cloud.openstack("network", "create", "--tag", "t%d" % (i % 2), "pg-%d" % i, env=u.env)["id"])
    tok = u.token()
    r = net_req(cloud, "GET", "/v2.0/networks?tags=t1", token=tok).json()["networks"]
    assert sorted(x["name"] for x in r) == ["pg-1", "pg-3"]
    r = net_req(cloud, "GET", "/v2.0/networks?name=pg-1&name=pg-2&fields=name", token=tok).json()["networks"]
    assert sorted(r, key=lambda x: x["name"]) == [{"name": "pg-1"}, {"name": "pg-2"}]
    r = net_req(cloud, "GET", "/v2.0/networks?sort_key=name&sort_dir=desc&shared=false", token=tok).json()
    names = [x["name"] for x in r["networks"] if x["name"].startswith("pg-")]
    assert names == ["pg-4", "pg-3", "pg-2", "pg-1", "pg-0"]
    page = net_req(cloud, "GET", "/v2.0/networks?sort_key=name&sort_dir=asc&limit=2&shared=false", token=tok).json()
    assert len(page["networks"]) == 2 and page["networks_links"][0]["rel"] == "next"
    seen = [x["name"] for x in page["networks"]]
    while True:
        nxt = [link for link in page.get("networks_links", []) if link["rel"] == "next"]
        if not nxt:
            break
        path = nxt[0]["href"].split("9696", 1)[-1] if "9696" in nxt[0]["href"] else "/" + nxt[0]["href"].split("/", 3)[3]
        page = net_req(cloud, "GET", path, token=tok).json()
        seen += [x["name"] for x in page["networks"]]
    assert [x for x in seen if x.startswith("pg-")] == ["pg-0", "pg-1", "pg-2", "pg-3", "pg-4"]
    # tags API
    assert net_req(cloud, "PUT", "/v2.0/networks/%s/tags/extra" % ids[0], token=tok).status_code == 201
    assert set(net_req(cloud, "GET", "/v2.0/networks/%s/tags" % ids[0], token=tok).json()["tags"]) == {"t0", "extra"}
    r = net_req(cloud, "PUT", "/v2.0/networks/%s/tags" % ids[0], token=tok, json={"tags": ["a", "b"]})
    assert r.status_code == 200 and sorted(r.json()["tags"]) == ["a", "b"]
    assert net_req(cloud, "DELETE", "/v2.0/networks/%s/tags" % ids[0], token=tok).status_code == 204
    n = net_req(cloud, "GET", "/v2.0/networks/" + ids[0], token=tok).json()["network"]
    assert n["tags"] == [] and n["revision_number"] >= 3 and n["created_at"].endswith("Z")
    for i in ids:
        cloud.openstack("network", "delete", i, env=u.env)


def test_agent_sets_port_active(cloud):
    n = cloud.openstack("network", "create", name())
    p = net_req(cloud, "POST", "/v2.0/ports", json={"port": {"network_id": n["id"], "device_id": "vm-1",
                                                             "device_owner": "compute:nova"}}).json()["port"]
    assert p["status"] == "DOWN" and p["binding:vif_type"] == "unbound"
    r = net_req(cloud, "PUT", "/v2.0/ports/" + p["id"], json={"port": {"binding:host_id": "host1", "status": "ACTIVE"}})
    assert r.status_code == 200
    q = r.json()["port"]
    assert q["status"] == "ACTIVE" and q["binding:host_id"] == "host1" and q["binding:vif_type"] == "bridge"
    assert q["revision_number"] > p["revision_number"]
    net_req(cloud, "DELETE", "/v2.0/ports/" + p["id"])
    cloud.openstack("network", "delete", n["id"])
