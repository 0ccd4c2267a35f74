"""Neutron's agents API (agent, dhcp_agent_scheduler, l3_agent_scheduler) end to end with
/usr/bin/openstack: the cloud's own network agent (run by `tinystack serve` as root) reports
its Linux bridge, DHCP, L3 and metadata agents with a heartbeat; admins list, show, disable
and delete them and move networks and routers between them."""
import os
import subprocess
import time
import uuid

import pytest

from conftest import TINYSTACK

TYPES = {"DHCP agent", "L3 agent", "Linux bridge agent", "Metadata agent"}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the network agent (and its heartbeat) needs root")


def name(prefix="ag"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


def wait_agents(cloud, alive=True, timeout=20):
    deadline = time.time() + timeout
    while True:
        agents = cloud.openstack("network", "agent", "list")
        if {a["Agent Type"] for a in agents if a["Alive"] is alive} >= TYPES:
            return {a["Agent Type"]: a for a in agents}
        assert time.time() < deadline, agents
        time.sleep(0.5)


def api(cloud, method, path, **kw):
    return cloud.request(method, "network", path, **kw)


def test_agents_list_show_set(cloud):
    ext = {e["alias"] for e in api(cloud, "GET", "/v2.0/extensions").json()["extensions"]}
    assert {"agent", "dhcp_agent_scheduler", "l3_agent_scheduler"} <= ext
    agents = wait_agents(cloud)
    hosts = {a["Host"] for a in agents.values()}
    assert len(hosts) == 1, agents
    host = hosts.pop()
    assert agents["DHCP agent"]["Binary"] == "neutron-dhcp-agent"
    assert agents["L3 agent"]["Availability Zone"] == "nova"
    assert agents["Linux bridge agent"]["Availability Zone"] in (None, "")
    assert all(a["State"] is True for a in agents.values())

    dhcp = agents["DHCP agent"]["ID"]
    only = cloud.openstack("network", "agent", "list", "--agent-type", "dhcp")
    assert [a["ID"] for a in only] == [dhcp]
    assert len(cloud.openstack("network", "agent", "list", "--host", host)) == len(agents)
    assert cloud.openstack("network", "agent", "list", "--host", "no-such-host") == []

    s = cloud.openstack("network", "agent", "show", dhcp)
    assert s["agent_type"] == "DHCP agent" and s["alive"] is True and s["topic"] == "dhcp_agent"
    assert s["host"] == host and s["configuration"]["dhcp_driver"] == "dnsmasq"
    # the raw API: Neutron's timestamp format, fields
    a = api(cloud, "GET", "/v2.0/agents/%s" % dhcp).json()["agent"]
    assert time.strptime(a["heartbeat_timestamp"], "%Y-%m-%d %H:%M:%S")
    assert a["description"] is None and a["admin_state_up"] is True
    a = api(cloud, "GET", "/v2.0/agents/%s?fields=id&fields=alive" % dhcp).json()["agent"]
    assert a == {"id": dhcp, "alive": True}
    r = api(cloud, "GET", "/v2.0/agents?agent_type=L3%20agent&alive=true")
    assert [x["agent_type"] for x in r.json()["agents"]] == ["L3 agent"]

    cloud.openstack("network", "agent", "set", "--disable", "--description", "maintenance", dhcp)
    s = cloud.openstack("network", "agent", "show", dhcp)
    assert s["admin_state_up"] is False and s["description"] == "maintenance"
    cloud.openstack("network", "agent", "set", "--enable", dhcp)
    assert cloud.openstack("network", "agent", "show", dhcp)["admin_state_up"] is True
    r = api(cloud, "PUT", "/v2.0/agents/%s" % dhcp, json={"agent": {"host": "elsewhere"}})
    assert r.status_code == 400 and r.json()["NeutronError"]["type"] == "HTTPBadRequest"
    r = api(cloud, "GET", "/v2.0/agents/%s" % uuid.uuid4())
    assert r.status_code == 404 and r.json()["NeutronError"]["type"] == "AgentNotFound"

    # admin only: a member lists none and finds none
    u = cloud.new_project_user()
    assert cloud.openstack("network", "agent", "list", env=u.env) == []
    p = cloud.openstack("network", "agent", "show", dhcp, env=u.env, check=False)
    assert p.returncode != 0 and "could not be found" in p.stderr
    r = api(cloud, "GET", "/v2.0/agents/%s/dhcp-networks" % dhcp, token=u.token())
    assert r.status_code == 403


def test_dhcp_and_l3_scheduling(cloud):
    agents = wait_agents(cloud)
    dhcp, l3 = agents["DHCP agent"]["ID"], agents["L3 agent"]["ID"]
    n = cloud.openstack("network", "create", name("n"))
    assert cloud.openstack("network", "agent", "list", "--network", n["id"]) == []
    cloud.openstack("subnet", "create", "--network", n["id"], "--subnet-range", "10.77.0.0/24", name("s"))
    hosting = cloud.openstack("network", "agent", "list", "--network", n["id"])
    assert [a["ID"] for a in hosting] == [dhcp]
    nets = api(cloud, "GET", "/v2.0/agents/%s/dhcp-networks" % dhcp).json()["networks"]
    assert n["id"] in [x["id"] for x in nets]

    cloud.openstack("network", "agent", "remove", "network", "--dhcp", dhcp, n["id"])
    assert cloud.openstack("network", "agent", "list", "--network", n["id"]) == []
    r = api(cloud, "DELETE", "/v2.0/agents/%s/dhcp-networks/%s" % (dhcp, n["id"]))
    assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "NetworkNotHostedByDhcpAgent"
    cloud.openstack("network", "agent", "add", "network", "--dhcp", dhcp, n["id"])
    assert [a["ID"] for a in cloud.openstack("network", "agent", "list", "--network", n["id"])] == [dhcp]
    r = api(cloud, "POST", "/v2.0/agents/%s/dhcp-networks" % dhcp, json={"network_id": n["id"]})
    assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "NetworkHostedByDHCPAgent"
    # a network is no router, an L3 agent no DHCP agent
    r = api(cloud, "POST", "/v2.0/agents/%s/dhcp-networks" % l3, json={"network_id": n["id"]})
    assert r.status_code == 404 and r.json()["NeutronError"]["type"] == "InvalidDHCPAgent"
    r = api(cloud, "POST", "/v2.0/agents/%s/dhcp-networks" % dhcp, json={"network_id": str(uuid.uuid4())})
    assert r.status_code == 404 and r.json()["NeutronError"]["type"] == "NetworkNotFound"

    rt = cloud.openstack("router", "create", name("r"))
    assert [a["ID"] for a in cloud.openstack("network", "agent", "list", "--router", rt["id"])] == [l3]
    routers = api(cloud, "GET", "/v2.0/agents/%s/l3-routers" % l3).json()["routers"]
    assert rt["id"] in [x["id"] for x in routers]
    r = api(cloud, "POST", "/v2.0/agents/%s/l3-routers" % l3, json={"router_id": rt["id"]})
    assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "RouterHostedByL3Agent"
    cloud.openstack("network", "agent", "remove", "router", "--l3", l3, rt["id"])
    assert cloud.openstack("network", "agent", "list", "--router", rt["id"]) == []
    cloud.openstack("network", "agent", "add", "router", "--l3", l3, rt["id"])
    assert [a["ID"] for a in cloud.openstack("network", "agent", "list", "--router", rt["id"])] == [l3]

    # bindings go with what they bind
    cloud.openstack("router", "delete", rt["id"])
    cloud.openstack("network", "delete", n["id"])
    assert n["id"] not in [x["id"] for x in
                           api(cloud, "GET", "/v2.0/agents/%s/dhcp-networks" % dhcp).json()["networks"]]
    assert rt["id"] not in [x["id"] for x in api(cloud, "GET", "/v2.0/agents/%s/l3-routers" % l3).json()["routers"]]


def serve(c, *sets):
    """(Re)starts c's serve with extra --set options (c.start() takes none)."""
    args = [TINYSTACK, "serve", "--data", c.data_dir]
    for s in sets:
        args += ["--set", s]
    log = open(os.path.join(c.data_dir, "serve.log"), "ab")
    c.proc = subprocess.Popen(args, stdout=log, stderr=log, start_new_session=True)
    deadline = time.time() + 30
    while not c.service_up("network"):
        assert c.proc.poll() is None and time.time() < deadline, "serve did not come up"
        time.sleep(0.1)
    c._tokens = {}


def test_heartbeat_stops_with_the_agent(make_cloud):
    c = make_cloud(**{"network.agent_report_interval": "0.5", "network.agent_down_time": "3"})
    agents = wait_agents(c)
    dhcp = agents["DHCP agent"]["ID"]
    beat = c.openstack("network", "agent", "show", dhcp)["last_heartbeat_at"]
    deadline = time.time() + 10
    while c.openstack("network", "agent", "show", dhcp)["last_heartbeat_at"] == beat:
        assert time.time() < deadline, "heartbeat did not advance"
        time.sleep(0.5)
    # the same cloud without its network agent: nobody reports, the agents go dead but stay
    c.stop()
    serve(c, "network.run_agent=false")
    agents = wait_agents(c, alive=False, timeout=15)
    assert agents["DHCP agent"]["ID"] == dhcp
    n = c.openstack("network", "create", name("n"))
    c.openstack("subnet", "create", "--network", n["id"], "--subnet-range", "10.78.0.0/24", name("s"))
    # a dead agent gets nothing new
    assert c.openstack("network", "agent", "list", "--network", n["id"]) == []
    c.openstack("network", "agent", "delete", dhcp)
    assert dhcp not in [a["ID"] for a in c.openstack("network", "agent", "list")]
    # the agent back: it registers anew and takes the network nobody hosts
    c.stop()
    serve(c)
    agents = wait_agents(c)
    assert agents["DHCP agent"]["ID"] != dhcp
    assert [a["ID"] for a in c.openstack("network", "agent", "list", "--network", n["id"])] == \
        [agents["DHCP agent"]["ID"]]
