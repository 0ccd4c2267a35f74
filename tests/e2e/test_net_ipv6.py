"""IPv6 data plane, end to end through the network API (issue #6).

A cloud (network API) and the in-cloud agent (tests/e2e/netagent_apply.c --cloud, so it can be
killed with -9), three IPv6 networks behind one router: SLAAC, DHCPv6-stateful and
DHCPv6-stateless. The "guests" are namespaces the test makes, each attached through a veth
named as the port's tap (the agent enslaves it to the network's bridge) with the port's MAC:
real Linux IPv6 stacks. Checked on the real state: the kernel's autoconf from the router's
real RA gives the EUI-64 address the API computed; a real DHCPv6 client (ISC dhclient -6)
gets the port's address from dnsmasq, and the stateless one the DNS server; ping6 to the
router; ICMPv6 blocked until a security-group rule allows it; a guest's RA and a spoofed
source dropped; the root namespace has no IPv6 on our devices; removing an interface, the
router (with the agent killed -9 meanwhile), ports and subnets removes radvd, its config,
dnsmasq and the ip6tables chains. Root only; addresses only in namespaces (fd00:77::/32).
"""
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import time
import uuid

import pytest

from test_netagent import driver_cmd, sh, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, bridges, ip6tables)")

DHCLIENT = shutil.which("dhclient") or "/sbin/dhclient"

# sends three Router Advertisements for PREFIX/64 (autonomous) to ff02::1 out of IFNAME; the
# kernel fills in the ICMPv6 checksum and the link-local source
RA_SEND = r"""
import socket, struct, sys
ifname, prefix = sys.argv[1], sys.argv[2]
idx = socket.if_nametoindex(ifname)
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 0, 0, 0)
opt = struct.pack("!BBBBIII", 3, 4, 64, 0xc0, 600, 600, 0) + socket.inet_pton(socket.AF_INET6, prefix)
for _ in range(3):
    s.sendto(ra + opt, ("ff02::1", 0, 0, idx))
"""


def guest(name, tap, mac):
    """A namespace as a VM: tap<port> (root end, no IPv6 of its own) <-> eth0 with the port's MAC."""
    sh("ip", "netns", "add", name)
    sh("ip", "link", "add", tap, "type", "veth", "peer", "name", "eth0", "netns", name)
    sh("sysctl", "-qw", "net.ipv6.conf.%s.disable_ipv6=1" % tap)
    sh("ip", "-n", name, "link", "set", "eth0", "address", mac)
    sh("ip", "-n", name, "link", "set", "lo", "up")
    sh("ip", "-n", name, "link", "set", "eth0", "up")


def addrs6(ns, dev="eth0"):
    out = sh("ip", "-n", ns, "-6", "-o", "addr", "show", "dev", dev, "scope", "global").stdout
    return [line.split()[3].split("/")[0] for line in out.splitlines()]


def ping6(ns, ip, src=None, count=1, wait=1):
    cmd = ["ip", "netns", "exec", ns, "ping", "-6", "-n", "-c", str(count), "-W", str(wait)]
    if src:
        cmd += ["-I", src]
    return subprocess.run(cmd + [ip], capture_output=True).returncode == 0


def rule_pkts(chain, pattern):
    """Packet counter of the first rule of ip6tables chain whose text matches pattern."""
    out = sh("ip6tables", "-w", "-L", chain, "-v", "-x", "-n").stdout
    for line in out.splitlines()[2:]:
        if re.search(pattern, line):
            return int(line.split()[0])
    raise AssertionError("no rule %r in %s: %s" % (pattern, chain, out))


def proc_alive(pid, name):
    try:
        return name in open("/proc/%d/cmdline" % pid, "rb").read().decode(errors="replace")
    except OSError:
        return False


def test_net_ipv6(make_cloud, tmp_path):
    for tool in ("dnsmasq", "radvd", "ip6tables-restore", "ebtables-restore"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            pytest.skip(tool + " not installed (scripts/deps.sh)")
    if not os.path.exists(DHCLIENT):
        pytest.skip("dhclient (isc-dhcp-client) not installed (scripts/deps.sh)")
    if not os.path.exists("/proc/sys/net/bridge/bridge-nf-call-ip6tables") or \
            open("/proc/sys/net/bridge/bridge-nf-call-ip6tables").read().strip() != "1":
        pytest.skip("br_netfilter (bridge-nf-call-ip6tables) is off: security groups cannot be tested")
    t0 = time.time()
    cmd = driver_cmd()
    c = make_cloud(**{"network.agent_interval": "1", "network.agent_cleanup_on_stop": "true",
                      "network.run_agent": "false"})
    end = time.time() + 10
    while not c.service_up("network"):
        if time.time() > end:
            pytest.skip("network service not running")
        time.sleep(0.2)
    host = "net6-" + uuid.uuid4().hex[:6]
    tag = uuid.uuid4().hex[:5]

    def api(method, path, body=None, ok=(200, 201, 204)):
        r = c.request(method, "network", "/v2.0" + path, json=body)
        assert r.status_code in ok, "%s %s -> %d %s" % (method, path, r.status_code, r.text)
        return r.json() if r.content else None

    sg = api("POST", "/security-groups", {"security_group": {"name": "v6sg"}})["security_group"]
    nets, subs = {}, {}
    modes = {"a": ("slaac", []), "b": ("dhcpv6-stateful", []), "c": ("dhcpv6-stateless", ["fd00:77:c::53"])}
    for k, (mode, dns) in modes.items():
        nets[k] = api("POST", "/networks", {"network": {"name": "v6-" + k}})["network"]
        subs[k] = api("POST", "/subnets", {"subnet": {
            "network_id": nets[k]["id"], "cidr": "fd00:77:%s::/64" % k, "ip_version": 6, "ipv6_ra_mode": mode,
            "ipv6_address_mode": mode, "dns_nameservers": dns}})["subnet"]
    router = api("POST", "/routers", {"router": {"name": "v6-r"}})["router"]
    rid = router["id"]
    for k in "abc":
        api("PUT", "/routers/%s/add_router_interface" % rid, {"subnet_id": subs[k]["id"]})
    gw = {k: subs[k]["gateway_ip"] for k in "abc"}

    ports, gns = {}, {}
    for name, k in (("a1", "a"), ("a2", "a"), ("b1", "b"), ("c1", "c")):
        ports[name] = api("POST", "/ports", {"port": {
            "network_id": nets[k]["id"], "binding:host_id": host, "device_owner": "compute:nova",
            "device_id": str(uuid.uuid4()), "security_groups": [sg["id"]]}})["port"]
        gns[name] = "ts6%s-%s" % (name, tag)
    ip = {n: p["fixed_ips"][0]["ip_address"] for n, p in ports.items()}
    # the API computed the EUI-64 addresses of the SLAAC and stateless ports
    for n, k in (("a1", "a"), ("a2", "a"), ("c1", "c")):
        m = bytes.fromhex(ports[n]["mac_address"].replace(":", ""))
        iid = int.from_bytes(bytes([m[0] ^ 2]) + m[1:3] + b"\xff\xfe" + m[3:], "big")
        assert ip[n] == str(ipaddress.IPv6Network(subs[k]["cidr"]).network_address + iid), (n, ip[n])
    agent = None
    dhc = []
    qdhcp_b, qrouter = "qdhcp-" + nets["b"]["id"], "qrouter-" + rid
    ra_dir = os.path.join(c.data_dir, "network-agent", "ra", rid)
    try:
        for n, p in ports.items():
            guest(gns[n], "tap" + p["id"][:11], p["mac_address"])
        log = open(os.path.join(c.data_dir, "netagent.log"), "a")
        agent = subprocess.Popen(cmd + ["--cloud", c.data_dir, "--host", host], stdout=log, stderr=log)

        # the router: gateway addresses, forwarding in its namespace, radvd
        wait_for(lambda: os.path.exists(os.path.join(ra_dir, "pid")), "radvd started")
        radvd = int(open(os.path.join(ra_dir, "pid")).read().split()[0])
        wait_for(lambda: proc_alive(radvd, "radvd"), "radvd running")
        conf = open(os.path.join(ra_dir, "radvd.conf")).read()
        assert "prefix fd00:77:a::/64" in conf and "AdvManagedFlag on;" in conf and \
            "AdvOtherConfigFlag on;" in conf, conf
        r_addrs = sh("ip", "-n", qrouter, "-6", "-o", "addr", "show", "scope", "global").stdout
        for k in "abc":
            assert gw[k] + "/64" in r_addrs, r_addrs
        assert sh("ip", "netns", "exec", qrouter, "sysctl", "-n", "net.ipv6.conf.all.forwarding").stdout.strip() == "1"

        # SLAAC: the kernel of the guest autoconfigures from the real RA what the API computed
        wait_for(lambda: ip["a1"] in addrs6(gns["a1"]) and ip["a2"] in addrs6(gns["a2"]), "SLAAC addresses",
                 timeout=40)
        wait_for(lambda: ip["c1"] in addrs6(gns["c1"]), "SLAAC address (stateless subnet)", timeout=30)
        assert addrs6(gns["b1"]) == [], "an autonomous prefix on the stateful subnet"
        assert "default via fe80::" in sh("ip", "-n", gns["a1"], "-6", "route").stdout
        assert ping6(gns["a1"], gw["a"], count=2, wait=2), "guest -> router gateway"

        # DHCPv6 stateful: a real client gets the port's address from dnsmasq in qdhcp-
        wait_for(lambda: qdhcp_b in sh("ip", "netns", "list").stdout, "qdhcp namespace of the stateful network")
        d_addrs = sh("ip", "-n", qdhcp_b, "-6", "-o", "addr", "show", "scope", "global").stdout
        dp = api("GET", "/ports?device_owner=network:dhcp&network_id=" + nets["b"]["id"])["ports"]
        assert len(dp) == 1 and dp[0]["fixed_ips"][0]["ip_address"] + "/64" in d_addrs, (dp, d_addrs)
        (tmp_path / "dhclient.conf").write_text("")

        def dhclient(n, *extra):
            """dhclient -6 in guest n; its script records each event in <tmp>/<n>.<reason> (no
            environment reaches it) and applies a bound address; /etc is left alone."""
            script = tmp_path / (n + "-script")
            script.write_text("#!/bin/sh\nenv > %s.$reason\ncase $reason in BOUND6|REBOOT6)\n"
                              "  ip -6 addr replace $new_ip6_address/64 dev $interface nodad;;\nesac\nexit 0\n"
                              % (tmp_path / n))
            script.chmod(0o755)
            # the link-local address must be usable (DAD done) before the client binds to it
            wait_for(lambda: "tentative" not in sh("ip", "-n", gns[n], "-6", "addr", "show", "dev", "eth0").stdout,
                     "link-local address of " + n, timeout=10)
            p = subprocess.Popen(["ip", "netns", "exec", gns[n], DHCLIENT, "-6", "-d", "-v", "-cf",
                                  str(tmp_path / "dhclient.conf"), "-sf", str(script), "-lf",
                                  str(tmp_path / (n + ".leases")), "-pf", str(tmp_path / (n + ".pid"))] +
                                 list(extra) + ["eth0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            dhc.append(p)
            return p

        dhclient("b1")
        wait_for(lambda: (tmp_path / "b1.BOUND6").exists(), "DHCPv6 lease of b1", timeout=40)
        env = (tmp_path / "b1.BOUND6").read_text()
        assert "new_ip6_address=%s\n" % ip["b1"] in env, env
        assert ip["b1"] in addrs6(gns["b1"])
        assert ping6(gns["b1"], gw["b"], count=2, wait=2), "stateful guest -> router gateway"
        hosts = open(os.path.join(c.data_dir, "network-agent", "dhcp", nets["b"]["id"], "host")).read()
        assert "%s,[%s]," % (ports["b1"]["mac_address"], ip["b1"]) in hosts, hosts
        # DHCPv6 stateless: options only (the DNS server), the address stays SLAAC's
        # (ISC dhclient calls the answer to its Information-request RENEW6)
        dhclient("c1", "-S")
        wait_for(lambda: [f for f in tmp_path.glob("c1.*") if "new_dhcp6_name_servers" in f.read_text()],
                 "DHCPv6 information reply for c1", timeout=40)
        env = [f for f in tmp_path.glob("c1.*") if "new_dhcp6_name_servers" in f.read_text()][0].read_text()
        assert "new_dhcp6_name_servers=fd00:77:c::53" in env, env
        assert "new_ip6_address" not in env, env

        # no IPv6 on our devices in the root namespace
        root6 = sh("ip", "-6", "-o", "addr", "show").stdout
        for dev in ["brq" + n["id"][:11] for n in nets.values()] + ["tap" + p["id"][:11] for p in ports.values()]:
            assert " %s " % dev not in root6 and " %s@" % dev not in root6, root6

        # security groups: no ICMPv6 ingress rule, no ping6 from another guest; the rule lets it in
        assert not ping6(gns["a2"], ip["a1"], count=2, wait=1), "ICMPv6 passed without a rule"
        assert not ping6(qrouter, ip["a1"], count=1, wait=1), "ICMPv6 from the router passed without a rule"
        api("POST", "/security-group-rules", {"security_group_rule": {
            "security_group_id": sg["id"], "direction": "ingress", "ethertype": "IPv6",
            "protocol": "ipv6-icmp"}})
        wait_for(lambda: ping6(gns["a2"], ip["a1"]), "ping6 a2 -> a1 after the ICMPv6 rule", timeout=20)
        assert ping6(qrouter, ip["a1"]), "router -> guest after the rule"

        # a guest's Router Advertisement is dropped on its way out (the same RA from the router
        # reaches the guest: the packet is good); a spoofed source too
        out_a2, spoof_a2 = "tsg-o" + ports["a2"]["id"][:11], "tsg-s" + ports["a2"]["id"][:11]
        before = rule_pkts(out_a2, r"DROP .*ipv6-icmptype 134")
        sh("ip", "netns", "exec", gns["a2"], "python3", "-c", RA_SEND, "eth0", "fd00:77:66::")
        time.sleep(2)
        assert rule_pkts(out_a2, r"DROP .*ipv6-icmptype 134") >= before + 3
        assert not [a for a in addrs6(gns["a1"]) if a.startswith("fd00:77:66:")], "a guest's RA reached a1"
        qr_a = [line.split()[1] for line in sh("ip", "-n", qrouter, "-6", "-o", "addr", "show").stdout.splitlines()
                if gw["a"] + "/64" in line][0]
        sh("ip", "netns", "exec", qrouter, "python3", "-c", RA_SEND, qr_a, "fd00:77:66::")
        wait_for(lambda: [a for a in addrs6(gns["a1"]) if a.startswith("fd00:77:66:")], "the router's RA at a1",
                 timeout=10)
        sh("ip", "-n", gns["a2"], "addr", "add", "fd00:77:a::dead/64", "dev", "eth0", "nodad")
        before = rule_pkts(spoof_a2, r"^\s*\d+\s+\d+\s+DROP")
        assert not ping6(gns["a2"], gw["a"], src="fd00:77:a::dead", count=2, wait=1), "spoofed source passed"
        assert rule_pkts(spoof_a2, r"^\s*\d+\s+\d+\s+DROP") >= before + 2
        # (its neighbour solicitations from the spoofed address were dropped too: start afresh)
        sh("ip", "-n", gns["a2"], "addr", "del", "fd00:77:a::dead/64", "dev", "eth0")
        sh("ip", "-n", gns["a2"], "neigh", "flush", "all")
        wait_for(lambda: ping6(gns["a2"], gw["a"], src=ip["a2"]), "a2 -> router from its own address", timeout=10)

        # removing an interface takes its prefix out of radvd's configuration (same process)
        api("PUT", "/routers/%s/remove_router_interface" % rid, {"subnet_id": subs["c"]["id"]})
        wait_for(lambda: "fd00:77:c::/64" not in open(os.path.join(ra_dir, "radvd.conf")).read(),
                 "stateless prefix out of radvd.conf")
        assert proc_alive(radvd, "radvd")

        # the agent killed -9; the router deleted meanwhile: the restarted agent removes radvd,
        # its directory and the namespace
        agent.send_signal(signal.SIGKILL)
        agent.wait()
        for k in "ab":
            api("PUT", "/routers/%s/remove_router_interface" % rid, {"subnet_id": subs[k]["id"]})
        api("DELETE", "/routers/" + rid)
        time.sleep(1)
        assert proc_alive(radvd, "radvd"), "radvd went with the agent"
        agent = subprocess.Popen(cmd + ["--cloud", c.data_dir, "--host", host], stdout=log, stderr=log)
        wait_for(lambda: not proc_alive(radvd, "radvd") and not os.path.exists(ra_dir) and
                 qrouter not in sh("ip", "netns", "list").stdout, "radvd, its config and qrouter- removed")

        # ports and subnets go: ip6tables chains, dnsmasq and its namespace with them
        for p in dhc:
            p.kill()
            p.wait()
        dnsmasq = int(open(os.path.join(c.data_dir, "network-agent", "dhcp", nets["b"]["id"], "pid")).read().split()[0])
        assert proc_alive(dnsmasq, "dnsmasq")
        assert "tsg-i" + ports["b1"]["id"][:11] in sh("ip6tables-save", "-t", "filter").stdout
        for p in ports.values():
            api("DELETE", "/ports/" + p["id"])
        api("DELETE", "/subnets/" + subs["b"]["id"])
        wait_for(lambda: not [p for p in ports.values() if p["id"][:11] in sh("ip6tables-save", "-t", "filter").stdout],
                 "ip6tables chains of the ports removed")
        wait_for(lambda: qdhcp_b not in sh("ip", "netns", "list").stdout and not proc_alive(dnsmasq, "dnsmasq"),
                 "dnsmasq and qdhcp- of the stateful network removed")
        for n in nets.values():
            api("DELETE", "/networks/" + n["id"])
        wait_for(lambda: not [n for n in nets.values() if "brq" + n["id"][:11] in sh("ip", "-o", "link").stdout],
                 "bridges removed")
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=15)
        agent = None
        assert os.listdir(os.path.join(c.data_dir, "network-agent", "own")) == []
        assert time.time() - t0 < 180
    finally:
        for p in dhc:
            if p.poll() is None:
                p.kill()
                p.wait()
        if agent is not None:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(timeout=15)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
        for n in gns.values():
            subprocess.run(["ip", "netns", "del", n], capture_output=True)
        # whatever a failure left: an empty desired state removes all the agent recorded
        empty = os.path.join(c.data_dir, "empty-state.json")
        with open(empty, "w") as f:
            f.write('{"networks": [], "subnets": [], "ports": [], "routers": [], "floatingips": [], '
                    '"security_groups": []}')
        subprocess.run(cmd + ["--state", empty, "--data", c.data_dir, "--host", host, "--once"],
                       capture_output=True)
