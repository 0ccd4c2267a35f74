"""Compute across processes: RabbitMQ on loopback, `tinystack serve` (api, scheduler,
conductor, no agent) and three `tinystack compute` agents with the fake driver. Spread
of 30 servers, anti-affinity across hosts, a killed agent goes down and is not
scheduled to; the whole boot flow runs over AMQP."""
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter

import pytest

from conftest import ROOT, TINYSTACK, Cloud, _build_ok, free_port

RMQ = os.path.join(ROOT, "scripts", "rabbitmq-local.sh")


def admin_mv():
    return {"OpenStack-API-Version": "compute 2.90"}


@pytest.fixture(scope="module")
def mh():
    _build_ok()
    if not os.path.exists("/usr/lib/rabbitmq/bin/rabbitmq-server"):
        pytest.skip("rabbitmq-server not installed")
    base = tempfile.mkdtemp(prefix="compute-e2e-mh-", dir="/var/tmp")
    renv = dict(os.environ, RMQ_DIR=os.path.join(base, "rmq"), RMQ_PORT=str(free_port()),
                RMQ_DIST_PORT=str(free_port()), RMQ_EPMD_PORT=str(free_port()))
    p = subprocess.run([RMQ, "start"], env=renv, capture_output=True, text=True, timeout=180)
    if p.returncode != 0:
        subprocess.run([RMQ, "stop"], env=renv, capture_output=True, timeout=120)
        pytest.skip("rabbitmq did not start: %s" % p.stderr)
    url = "amqp://guest:guest@127.0.0.1:%s/" % renv["RMQ_PORT"]
    d = os.path.join(base, "cloud")
    c = None
    agents = {}
    try:
        c = Cloud(d, {"DEFAULT.transport_url": url, "compute.run_agent": "false", "compute.virt_driver": "fake",
                      "compute.service_down_time": "6", "compute.report_interval": "1",
                      "fake.memory_mb": "16384", "compute.allow_resize_to_same_host": "false"}).init().start()
        c.agents = agents

        def start_agent(h):
            log = open(os.path.join(d, "agent-%s.log" % h), "ab")
            agents[h] = subprocess.Popen([TINYSTACK, "compute", "--data", d, "--host", h, "--driver", "fake"],
                                         stdout=log, stderr=log, start_new_session=True)

        c.start_agent = start_agent
        for h in ("h1", "h2", "h3"):
            start_agent(h)
        deadline = time.time() + 60
        while time.time() < deadline:
            svcs = c.request("GET", "compute", "/v2.1/os-services?binary=nova-compute").json()["services"]
            if len([s for s in svcs if s["state"] == "up"]) == 3:
                break
            time.sleep(0.3)
        else:
            raise AssertionError("agents did not come up")
        admin_project = c.openstack("project", "show", "admin")["id"]
        c.request("PUT", "compute", "/v2.1/os-quota-sets/%s" % admin_project,
                  json={"quota_set": {"instances": 200, "cores": 400, "ram": 1000000}})
        c.flavor = c.openstack("flavor", "create", "--vcpus", "1", "--ram", "256", "--disk", "1", "mh.tiny")
        c.has_image = c.service_up("image")
        if c.has_image:
            path = os.path.join(d, "tiny.img")
            with open(path, "wb") as f:
                f.write(b"\0" * 4096)
            c.image = c.openstack("image", "create", "--disk-format", "raw", "--container-format", "bare",
                                  "--file", path, "mh-img")
        yield c
    finally:
        for pr in agents.values():
            if pr.poll() is None:
                pr.send_signal(signal.SIGTERM)
                try:
                    pr.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(pr.pid, signal.SIGKILL)
                    pr.wait()
        if c:
            c.stop()
        subprocess.run([RMQ, "stop"], env=renv, capture_output=True, timeout=120)
        if os.environ.get("TS_KEEP_DATA") is None:
            shutil.rmtree(base, ignore_errors=True)


def boot(c, name, count=1, hints=None):
    body = {"server": {"name": name, "imageRef": c.image["id"], "flavorRef": c.flavor["id"], "networks": "none",
                       "min_count": count, "max_count": count, "return_reservation_id": True}}
    if hints:
        body["os:scheduler_hints"] = hints
    r = c.request("POST", "compute", "/v2.1/servers", json=body, headers=admin_mv())
    assert r.status_code == 202, r.text
    rid = r.json()["reservation_id"]
    return [s for s in c.request("GET", "compute", "/v2.1/servers/detail?reservation_id=%s" % rid).json()["servers"]]


def wait_all(c, ids, want="ACTIVE", timeout=120):
    deadline = time.time() + timeout
    pending = set(ids)
    got = {}
    while pending and time.time() < deadline:
        for s in c.request("GET", "compute", "/v2.1/servers/detail", headers=admin_mv()).json()["servers"]:
            if s["id"] in pending and s["status"] in (want, "ERROR") and s["OS-EXT-STS:task_state"] is None:
                got[s["id"]] = s
                pending.discard(s["id"])
        time.sleep(0.2)
    assert not pending, "still pending: %s" % pending
    return got


def delete_all(c, ids):
    for sid in ids:
        assert c.request("DELETE", "compute", "/v2.1/servers/%s" % sid).status_code == 204
    deadline = time.time() + 60
    while time.time() < deadline:
        left = [s for s in c.request("GET", "compute", "/v2.1/servers").json()["servers"] if s["id"] in ids]
        if not left:
            return
        time.sleep(0.2)
    raise AssertionError("servers not deleted")


def test_spread_thirty_servers(mh):
    if not mh.has_image:
        pytest.skip("image service not available")
    servers = boot(mh, "spread", count=30)
    ids = [s["id"] for s in servers]
    got = wait_all(mh, ids)
    assert all(s["status"] == "ACTIVE" for s in got.values()), [s.get("fault") for s in got.values()]
    per_host = Counter(s["OS-EXT-SRV-ATTR:host"] for s in got.values())
    assert sorted(per_host) == ["h1", "h2", "h3"]
    assert all(n == 10 for n in per_host.values()), per_host
    hv = mh.request("GET", "compute", "/v2.1/os-hypervisors/detail").json()["hypervisors"]
    assert sum(h["running_vms"] for h in hv) == 30
    delete_all(mh, ids)


def test_anti_affinity_across_hosts(mh):
    if not mh.has_image:
        pytest.skip("image service not available")
    g = mh.request("POST", "compute", "/v2.1/os-server-groups", headers=admin_mv(),
                   json={"server_group": {"name": "aa", "policy": "anti-affinity"}}).json()["server_group"]
    ids = []
    for i in range(3):
        ids += [s["id"] for s in boot(mh, "aa%d" % i, hints={"group": g["id"]})]
    got = wait_all(mh, ids)
    assert all(s["status"] == "ACTIVE" for s in got.values())
    assert len({s["OS-EXT-SRV-ATTR:host"] for s in got.values()}) == 3
    extra = [s["id"] for s in boot(mh, "aa4", hints={"group": g["id"]})]
    got4 = wait_all(mh, extra, want="ERROR")
    assert "No valid host" in got4[extra[0]]["fault"]["message"]
    delete_all(mh, ids + extra)
    mh.request("DELETE", "compute", "/v2.1/os-server-groups/%s" % g["id"])


def test_resize_to_another_host(mh):
    """Without allow_resize_to_same_host the scheduler moves a resized server to another host
    (the source agent powers it off, the destination finishes); revert brings it back, confirm
    keeps it there, and the old host's allocation is gone after either."""
    if not mh.has_image:
        pytest.skip("image service not available")
    big = mh.openstack("flavor", "create", "--vcpus", "2", "--ram", "512", "--disk", "1", "mh.big")
    sid = boot(mh, "rsz")[0]["id"]
    src = wait_all(mh, [sid])[sid]["OS-EXT-SRV-ATTR:host"]

    def used(host):
        hv = mh.request("GET", "compute", "/v2.1/os-hypervisors/detail").json()["hypervisors"]
        return [h["memory_mb_used"] for h in hv if h["service"]["host"] == host][0]

    base = {h: used(h) for h in ("h1", "h2", "h3")}
    act = "/v2.1/servers/%s/action" % sid
    assert mh.request("POST", "compute", act, json={"resize": {"flavorRef": big["id"]}}).status_code == 202
    s = wait_all(mh, [sid], want="VERIFY_RESIZE")[sid]
    dst = s["OS-EXT-SRV-ATTR:host"]
    assert dst != src and s["flavor"]["ram"] == 512 if "ram" in s["flavor"] else dst != src
    # both allocations while waiting for confirm or revert
    assert used(src) == base[src] and used(dst) == base[dst] + 512
    assert mh.request("POST", "compute", act, json={"revertResize": None}).status_code == 202
    s = wait_all(mh, [sid])[sid]
    assert s["OS-EXT-SRV-ATTR:host"] == src and s["status"] == "ACTIVE"
    assert used(src) == base[src] and used(dst) == base[dst]
    assert mh.request("POST", "compute", act, json={"resize": {"flavorRef": big["id"]}}).status_code == 202
    s = wait_all(mh, [sid], want="VERIFY_RESIZE")[sid]
    dst = s["OS-EXT-SRV-ATTR:host"]
    assert dst != src
    assert mh.request("POST", "compute", act, json={"confirmResize": None}).status_code == 204
    s = wait_all(mh, [sid])[sid]
    assert s["OS-EXT-SRV-ATTR:host"] == dst
    assert used(src) == base[src] - 256 and used(dst) == base[dst] + 512
    delete_all(mh, [sid])
    mh.openstack("flavor", "delete", "mh.big")


def test_killed_agent_goes_down_and_is_avoided(mh):
    if not mh.has_image:
        pytest.skip("image service not available")
    on_h3 = [s["id"] for s in boot(mh, "pre", count=3)]
    wait_all(mh, on_h3)
    os.killpg(mh.agents["h3"].pid, signal.SIGKILL)
    mh.agents["h3"].wait()
    deadline = time.time() + 30
    state = None
    while time.time() < deadline:
        svcs = mh.request("GET", "compute", "/v2.1/os-services?host=h3&binary=nova-compute").json()["services"]
        state = svcs[0]["state"]
        if state == "down":
            break
        time.sleep(0.5)
    assert state == "down"
    ids = [s["id"] for s in boot(mh, "after", count=6)]
    got = wait_all(mh, ids)
    assert all(s["status"] == "ACTIVE" for s in got.values())
    assert "h3" not in {s["OS-EXT-SRV-ATTR:host"] for s in got.values()}
    hs = mh.request("GET", "compute", "/v2.1/servers/detail", headers=admin_mv()).json()["servers"]
    assert any(s["host_status"] == "DOWN" for s in hs if s["id"] in on_h3)
    # servers on the dead host are deleted locally, as Nova does
    delete_all(mh, ids + on_h3)
    mh.start_agent("h3")
