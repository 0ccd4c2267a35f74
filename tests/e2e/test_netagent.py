"""Network agent data plane, end to end, without the API.

Builds a desired state (one tenant network/subnet, a DHCP port, two VM ports, a router with
an interface and a gateway on an external network, a floating IP, one security group), runs
the agent's reconcile (`tinystack netagent-apply`, or a driver built from
tests/e2e/netagent_apply.c against the build tree), boots two TCG guests on the agent's taps
and checks DHCP, metadata, guest-to-guest traffic, the floating IP from an "external"
namespace the test made, security-group rules (ICMP blocked until a rule allows it, stateful
replies to egress), then that deleting everything (and a kill -9 mid-way) leaves nothing of
ours behind. Root only. Addresses live only in namespaces (10.77.0.0/24, 10.78.0.0/24).
"""
import atexit
import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GUEST_DIR = "/var/tmp/tinystack-netagent-guest"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, bridges, iptables)")


def sh(*args, check=True, timeout=30, **kw):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s -> %d: %s %s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
    return r


def _build_dir():
    build = os.environ.get("TS_BUILD", "build")
    return build if os.path.isabs(build) else os.path.join(ROOT, build)


def agent_cmd():
    ts = os.path.join(_build_dir(), "tinystack")
    if os.path.exists(ts):
        r = subprocess.run([ts, "netagent-apply"], capture_output=True, text=True)
        if "usage: tinystack netagent-apply" in r.stderr and r.returncode == 2:
            return [ts, "netagent-apply"]
    return driver_cmd()


def driver_cmd():
    """tests/e2e/netagent_apply.c built against the build tree (also has --cloud)."""
    build = _build_dir()
    lib = None
    for d in (build, os.path.join(ROOT, "build-netagent")):
        if os.path.exists(os.path.join(d, "libtslib.a")):
            lib = os.path.join(d, "libtslib.a")
            break
    if not lib:
        pytest.skip("no tinystack with netagent-apply and no libtslib.a to build the driver")
    out = os.path.join(tempfile.gettempdir(), "ts-netagent-apply-%d" % os.getpid())
    if os.path.exists(out):
        return [out]
    atexit.register(lambda: os.path.exists(out) and os.unlink(out))
    libs = sh("pkg-config", "--libs", "libmicrohttpd", "jansson", "sqlite3", "libpq", "libcurl", "libcrypto",
              "libcrypt", "uuid", "librabbitmq", "libvirt", "yaml-0.1").stdout.split()
    sh("cc", "-std=gnu11", "-I", os.path.join(ROOT, "src"), os.path.join(ROOT, "tests/e2e/netagent_apply.c"), lib,
       *libs, "-lpthread", "-lm", "-o", out, timeout=120)
    return [out]


def ids():
    return str(uuid.uuid4())


class Topo:
    """The desired state, Neutron-shaped."""

    def __init__(self, host):
        self.host = host
        self.net, self.ext = ids(), ids()
        self.sub, self.extsub = ids(), ids()
        self.router, self.sg = ids(), ids()
        self.dhcp, self.vm1, self.vm2, self.rif, self.rgw = ids(), ids(), ids(), ids(), ids()
        self.dev1, self.dev2 = ids(), ids()
        self.fip = ids()
        self.macs = {self.vm1: "fa:16:3e:77:00:10", self.vm2: "fa:16:3e:77:00:11"}
        self.rules = [
            {"id": ids(), "direction": "egress", "ethertype": "IPv4", "protocol": None},
            {"id": ids(), "direction": "ingress", "ethertype": "IPv4", "protocol": "icmp",
             "remote_group_id": self.sg},
            {"id": ids(), "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
             "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "10.77.0.0/24"},
        ]
        self.gen = 0

    def port(self, pid, net, sub, ip, mac, owner, device, sgs=()):
        return {"id": pid, "network_id": net, "mac_address": mac, "device_owner": owner, "device_id": device,
                "fixed_ips": [{"subnet_id": sub, "ip_address": ip}], "security_groups": list(sgs),
                "binding:host_id": self.host, "allowed_address_pairs": [], "status": "DOWN",
                "project_id": "p1", "port_security_enabled": True}

    def state(self, pubkey=""):
        self.gen += 1
        T = self
        return {
            "generation": self.gen,
            "networks": [{"id": T.net, "name": "n1", "mtu": 1500, "router:external": False},
                         {"id": T.ext, "name": "ext", "mtu": 1500, "router:external": True}],
            "subnets": [{"id": T.sub, "network_id": T.net, "cidr": "10.77.0.0/24", "ip_version": 4,
                         "gateway_ip": "10.77.0.1", "enable_dhcp": True, "dns_nameservers": [], "host_routes": []},
                        {"id": T.extsub, "network_id": T.ext, "cidr": "10.78.0.0/24", "ip_version": 4,
                         "gateway_ip": "10.78.0.100", "enable_dhcp": False}],
            "ports": [
                T.port(T.dhcp, T.net, T.sub, "10.77.0.2", "fa:16:3e:77:00:02", "network:dhcp", "dhcp-" + T.net),
                T.port(T.vm1, T.net, T.sub, "10.77.0.10", T.macs[T.vm1], "compute:nova", T.dev1, [T.sg]),
                T.port(T.vm2, T.net, T.sub, "10.77.0.11", T.macs[T.vm2], "compute:nova", T.dev2, [T.sg]),
                T.port(T.rif, T.net, T.sub, "10.77.0.1", "fa:16:3e:77:00:01", "network:router_interface", T.router),
                T.port(T.rgw, T.ext, T.extsub, "10.78.0.2", "fa:16:3e:78:00:02", "network:router_gateway", T.router),
            ],
            "routers": [{"id": T.router, "name": "r1",
                         "external_gateway_info": {"network_id": T.ext, "enable_snat": True}}],
            "floatingips": [{"id": T.fip, "floating_ip_address": "10.78.0.50", "floating_network_id": T.ext,
                             "router_id": T.router, "port_id": T.vm1, "fixed_ip_address": "10.77.0.10"}],
            "security_groups": [{"id": T.sg, "name": "sg1", "security_group_rules": T.rules}],
            "servers": {
                T.dev1: {"name": "vm-one", "hostname": "vm-one", "instance_name": "instance-0000000a",
                         "project_id": "p1", "key_name": "k1", "public_key": pubkey},
                T.dev2: {"name": "vm-two", "hostname": "vm-two", "instance_name": "instance-0000000b",
                         "project_id": "p1", "key_name": "k1", "public_key": pubkey},
            },
        }

    def empty(self):
        self.gen += 1
        return {"generation": self.gen, "networks": [], "subnets": [], "ports": [], "routers": [],
                "floatingips": [], "security_groups": []}


class Agent:
    def __init__(self, cmd, data, host):
        self.cmd, self.data, self.host = cmd, data, host
        self.state_file = os.path.join(data, "state.json")
        self.proc = None

    def write(self, state):
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f)
        os.replace(tmp, self.state_file)
        return state.get("generation", 0)

    def start(self):
        log = open(os.path.join(self.data, "agent.log"), "a")
        self.proc = subprocess.Popen(self.cmd + ["--state", self.state_file, "--data", self.data, "--host",
                                                 self.host, "--interval", "1"], stdout=log, stderr=log)

    def wait_gen(self, gen, timeout=20):
        marker = os.path.join(self.data, "network-agent", "applied")
        end = time.time() + timeout
        last = ""
        while time.time() < end:
            try:
                last = open(marker).read().split()
                if len(last) == 2 and int(last[1]) >= gen and last[0] == "ok":
                    return
            except (OSError, ValueError):
                pass
            assert self.proc is None or self.proc.poll() is None, "agent exited: " + self.log()
            time.sleep(0.1)
        raise AssertionError("state %d not applied (marker %s): %s" % (gen, last, self.log()))

    def log(self):
        try:
            return open(os.path.join(self.data, "agent.log")).read()[-3000:]
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
        self.proc = None

    def once(self):
        sh(*(self.cmd + ["--state", self.state_file, "--data", self.data, "--host", self.host, "--once"]))


def leftovers(topo, fwd_hint="tsg-"):
    """Everything of ours (by name) that exists now."""
    found = []
    ns = sh("ip", "netns", "list").stdout
    for rid in (topo.net, topo.ext, topo.router):
        for p in ("qdhcp-", "qrouter-"):
            if p + rid in ns:
                found.append(p + rid)
    links = sh("ip", "-o", "link", "show").stdout
    for rid in (topo.net, topo.ext):
        if "brq" + rid[:11] in links:
            found.append("brq" + rid[:11])
    for pid in (topo.dhcp, topo.vm1, topo.vm2, topo.rif, topo.rgw):
        if "tap" + pid[:11] in links:
            found.append("tap" + pid[:11])
    rules = sh("iptables-save", "-t", "filter").stdout
    for pid in (topo.vm1, topo.vm2):
        if pid[:11] in rules:
            found.append("chain for " + pid)
    ps = sh("ps", "-eo", "args").stdout
    if topo.net in ps:
        found.append("process for " + topo.net)
    raw = sh("iptables-save", "-t", "raw").stdout
    for rid in (topo.net, topo.ext):
        if "brq" + rid[:11] in raw:
            found.append("conntrack zone rule for " + rid)
    eb = subprocess.run(["ebtables-save"], capture_output=True, text=True).stdout
    for pid in (topo.vm1, topo.vm2):
        if pid[:11] in eb:
            found.append("ebtables chain for " + pid)
    return found


def ns_ping(ns, ip, count=2, wait=2):
    return subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", str(count), "-W", str(wait), ip],
                          capture_output=True).returncode == 0


def wait_console(path, marker, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with open(path, "rb") as f:
                data = f.read().decode("utf-8", "replace")
            for line in data.splitlines():
                if marker in line:
                    return line.strip()
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("no %r on %s" % (marker, path))


@pytest.fixture
def env():
    for tool in ("dnsmasq", "qemu-system-x86_64", "qemu-img", "ssh", "ssh-keygen", "iptables-restore"):
        if not shutil.which(tool):
            pytest.skip(tool + " not installed")
    if not os.path.exists("/usr/sbin/dropbear"):
        pytest.skip("dropbear-bin not installed: the guest would have no ssh")
    if open("/proc/sys/net/bridge/bridge-nf-call-iptables").read().strip() != "1" if os.path.exists(
            "/proc/sys/net/bridge/bridge-nf-call-iptables") else True:
        pytest.skip("br_netfilter (bridge-nf-call-iptables) is off: security groups cannot be tested")
    policy = sh("iptables", "-S", "FORWARD").stdout
    work = tempfile.mkdtemp(prefix="ts-netagent-", dir="/var/tmp")
    os.chmod(work, 0o755)
    host = "netagent-test-" + uuid.uuid4().hex[:6]
    topo = Topo(host)
    agent = Agent(agent_cmd(), os.path.join(work, "data"), host)
    os.makedirs(agent.data)
    extns = "tsx-ext-" + uuid.uuid4().hex[:6]
    qemus = []
    ctx = type("Ctx", (), {})()
    ctx.work, ctx.topo, ctx.agent, ctx.extns, ctx.qemus, ctx.policy = work, topo, agent, extns, qemus, policy
    yield ctx
    for q in qemus:
        if q.poll() is None:
            q.kill()
            q.wait()
    agent.stop(signal.SIGKILL)
    try:
        agent.write(topo.empty())
        agent.once()
    except Exception:
        pass
    subprocess.run(["ip", "netns", "del", extns], capture_output=True)
    shutil.rmtree(work, ignore_errors=True)


def guest_image():
    sh(os.path.join(ROOT, "tools/build-guest.sh"), GUEST_DIR, timeout=300)
    return os.path.join(GUEST_DIR, "tinyvm.qcow2")


def boot(ctx, name, port_id, mac):
    img = guest_image()
    ov = os.path.join(ctx.work, name + ".qcow2")
    sh("qemu-img", "create", "-q", "-f", "qcow2", "-b", img, "-F", "qcow2", ov)
    console = os.path.join(ctx.work, name + ".log")
    q = subprocess.Popen([
        "qemu-system-x86_64", "-accel", "tcg", "-m", "192", "-display", "none", "-monitor", "none", "-no-reboot",
        "-nodefaults", "-drive", "file=%s,if=virtio,format=qcow2" % ov,
        "-netdev", "tap,id=n0,ifname=tap%s,script=no,downscript=no" % port_id[:11],
        "-device", "virtio-net-pci,netdev=n0,mac=%s" % mac, "-serial", "file:" + console],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctx.qemus.append(q)
    return console


def test_netagent_end_to_end(env):
    ctx, T, A = env, env.topo, env.agent
    t0 = time.time()
    key = os.path.join(ctx.work, "id")
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "netagent-test", "-f", key)
    pub = open(key + ".pub").read().strip()

    # 1. kill -9 mid-way through a first apply, then an empty state: nothing may be left
    A.write(T.state(pub))
    A.start()
    time.sleep(0.3)
    A.stop(signal.SIGKILL)
    A.write(T.empty())
    A.once()
    assert leftovers(T) == []

    # 2. the real thing
    gen = A.write(T.state(pub))
    A.start()
    A.wait_gen(gen)
    qdhcp, qrouter = "qdhcp-" + T.net, "qrouter-" + T.router
    assert qdhcp in sh("ip", "netns", "list").stdout
    assert qrouter in sh("ip", "netns", "list").stdout
    # an "external" host: a namespace of the test's own on the external network's bridge
    sh("ip", "netns", "add", ctx.extns)
    sh("ip", "link", "add", "tsxe" + ctx.extns[-6:], "type", "veth", "peer", "name", "eth0", "netns", ctx.extns)
    sh("ip", "link", "set", "tsxe" + ctx.extns[-6:], "master", "brq" + T.ext[:11], "up")
    sh("ip", "-n", ctx.extns, "addr", "add", "10.78.0.100/24", "dev", "eth0")
    sh("ip", "-n", ctx.extns, "link", "set", "eth0", "up")
    sh("ip", "-n", ctx.extns, "link", "set", "lo", "up")
    assert ns_ping(ctx.extns, "10.78.0.2"), "router gateway not reachable from the external namespace"

    c1 = boot(ctx, "vm1", T.vm1, T.macs[T.vm1])
    c2 = boot(ctx, "vm2", T.vm2, T.macs[T.vm2])
    for c, ip in ((c1, "10.77.0.10"), (c2, "10.77.0.11")):
        line = wait_console(c, "TINYVM DHCP")
        assert "ip=" + ip in line and "169.254.169.254/32 10.77.0.2" in line, line
    assert "instance-id=i-0000000a" in wait_console(c1, "TINYVM METADATA instance-id")
    assert "instance-id=i-0000000b" in wait_console(c2, "TINYVM METADATA instance-id")
    assert "hostname=vm-one" in wait_console(c1, "TINYVM METADATA hostname")
    wait_console(c1, "TINYVM SSH")
    wait_console(c2, "TINYVM SSH")

    def guest(ip, *cmd):
        return subprocess.run(["ip", "netns", "exec", qdhcp, "ssh", "-i", key, "-o", "StrictHostKeyChecking=no",
                               "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o",
                               "ConnectTimeout=5", "root@" + ip] + list(cmd), capture_output=True, text=True,
                              timeout=30)

    # guests reach each other (ICMP allowed from the same group), egress replies come back
    # statefully though no ingress rule admits 10.78.0.0/24
    r = guest("10.77.0.10", "ping", "-c", "2", "-W", "2", "10.77.0.11")
    assert r.returncode == 0, r.stdout + r.stderr
    r = guest("10.77.0.11", "ping", "-c", "2", "-W", "2", "10.78.0.100")
    assert r.returncode == 0, "egress via SNAT: " + r.stdout + r.stderr
    r = guest("10.77.0.11", "timeout", "5", "wget", "-q", "-O", "-",
              "http://169.254.169.254/openstack/latest/meta_data.json")
    assert r.returncode == 0 and json.loads(r.stdout)["name"] == "vm-two", r.stdout + r.stderr
    # ICMP from outside to the floating IP: blocked until a rule allows it
    assert not ns_ping(ctx.extns, "10.78.0.50", count=2, wait=1), "ICMP passed without a rule"
    assert not ns_ping(qdhcp, "10.77.0.10", count=1, wait=1), "ICMP from the DHCP port passed without a rule"
    T.rules.append({"id": ids(), "direction": "ingress", "ethertype": "IPv4", "protocol": "icmp",
                    "remote_ip_prefix": "0.0.0.0/0"})
    A.wait_gen(A.write(T.state(pub)))
    assert ns_ping(ctx.extns, "10.78.0.50"), "floating IP not reachable after the ICMP rule"
    assert ns_ping(qdhcp, "10.77.0.10")

    # 3. kill -9 the agent, restart it on the same state: everything still works
    A.stop(signal.SIGKILL)
    A.start()
    A.wait_gen(T.gen)
    assert ns_ping(ctx.extns, "10.78.0.50")
    r = guest("10.77.0.10", "timeout", "5", "wget", "-q", "-O", "-",
              "http://169.254.169.254/latest/meta-data/instance-id")
    assert r.stdout.strip() == "i-0000000a", r.stdout + r.stderr

    # 4. delete everything: nothing of ours is left
    for q in ctx.qemus:
        q.kill()
        q.wait()
    A.wait_gen(A.write(T.empty()))
    A.stop()
    assert leftovers(T) == []
    # other clouds' agents on this host may add or drop their own jumps meanwhile
    def ours_aside(text):
        return [line for line in text.splitlines() if " -j tsg-F" not in line]
    assert ours_aside(sh("iptables", "-S", "FORWARD").stdout) == ours_aside(ctx.policy)
    assert time.time() - t0 < 90


ARP_SEND = r"""
import socket, struct, sys
ifname, mac, spa, tpa = sys.argv[1:5]
m = bytes.fromhex(mac.replace(":", ""))
ip = lambda a: socket.inet_aton(a)
frame = b"\xff" * 6 + m + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + m + ip(spa) + b"\0" * 6 + ip(tpa)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
for _ in range(3):
    s.send(frame)
"""


def fake_vm(name, tap, mac, cidr):
    """A namespace as a VM: veth tap<port> (root, the agent enslaves it) <-> eth0 (inside)."""
    sh("ip", "netns", "add", name)
    sh("ip", "link", "add", tap, "type", "veth", "peer", "name", "eth0", "netns", name)
    sh("ip", "-n", name, "link", "set", "eth0", "address", mac)
    sh("ip", "-n", name, "addr", "add", cidr, "dev", "eth0")
    sh("ip", "-n", name, "link", "set", "eth0", "up")
    sh("ip", "-n", name, "link", "set", "lo", "up")


def test_netagent_hardening(env):
    """MAC/ARP anti-spoofing, conntrack zones per network and the conntrack flush of a removed
    rule, with two namespaces as VMs on the agent's bridge (no guests: about 10 s)."""
    ctx, T, A = env, env.topo, env.agent
    for tool in ("conntrack", "ebtables-restore", "ebtables-save"):
        if not shutil.which(tool):
            pytest.skip(tool + " not installed")
    vm1, vm2 = "tsv1-" + ctx.extns[-6:], "tsv2-" + ctx.extns[-6:]
    try:
        fake_vm(vm1, "tap" + T.vm1[:11], T.macs[T.vm1], "10.77.0.10/24")
        fake_vm(vm2, "tap" + T.vm2[:11], T.macs[T.vm2], "10.77.0.11/24")
        A.write(T.state())
        A.start()
        A.wait_gen(T.gen)
        assert ns_ping(vm1, "10.77.0.11"), "ICMP within the group: " + A.log()

        # conntrack zone of the network: the flow was tracked there, not in zone 0
        raw = sh("iptables-save", "-t", "raw").stdout
        zl = [line for line in raw.splitlines() if "-i brq" + T.net[:11] + " " in line and "--zone" in line]
        assert len(zl) == 1, raw
        zone = zl[0].split("--zone ")[1].split()[0]
        assert zone != "0"
        ct = sh("conntrack", "-L", "-w", zone, "-p", "icmp", "-d", "10.77.0.11", check=False)
        assert "src=10.77.0.10" in ct.stdout, ct.stdout + ct.stderr

        # ARP: a request with a sender address the port does not own never reaches vm2; one
        # with the port's own address does
        sh("ip", "-n", vm2, "neigh", "flush", "all")
        sh("ip", "netns", "exec", vm1, "python3", "-c", ARP_SEND, "eth0", T.macs[T.vm1], "10.77.0.13", "10.77.0.11")
        sh("ip", "netns", "exec", vm1, "python3", "-c", ARP_SEND, "eth0", T.macs[T.vm1], "10.77.0.10", "10.77.0.11")
        time.sleep(0.3)
        neigh = sh("ip", "-n", vm2, "neigh", "show").stdout
        assert "10.77.0.10 " in neigh, neigh
        assert "10.77.0.13 " not in neigh, "spoofed ARP passed: " + neigh

        # MAC: vm1 with a MAC that is not its port's cannot talk at all, its own again can
        sh("ip", "-n", vm2, "neigh", "flush", "all")
        sh("ip", "-n", vm1, "neigh", "flush", "all")
        sh("ip", "-n", vm1, "link", "set", "eth0", "address", "fa:16:3e:77:00:99")
        assert not ns_ping(vm1, "10.77.0.11", count=2, wait=1), "spoofed MAC passed"
        sh("ip", "-n", vm1, "link", "set", "eth0", "address", T.macs[T.vm1])
        sh("ip", "-n", vm1, "neigh", "flush", "all")
        assert ns_ping(vm1, "10.77.0.11")

        # a running ping (one conntrack flow) stops when the rule that admitted it goes
        p = subprocess.Popen(["ip", "netns", "exec", vm1, "ping", "-n", "-i", "0.2", "-W", "1", "10.77.0.11"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        got = []

        def reader():
            for line in p.stdout:
                if "icmp_seq=" in line:
                    got.append(time.time())
        import threading
        th = threading.Thread(target=reader, daemon=True)
        th.start()
        try:
            wait_for(lambda: len(got) >= 3, "ping replies")
            T.rules = [r for r in T.rules if r.get("protocol") != "icmp"]
            A.wait_gen(A.write(T.state()))
            t_applied = time.time()
            time.sleep(2)
            after = [t for t in got if t > t_applied + 0.3]
            assert after == [], "%d replies after the rule was removed: the flow was not flushed" % len(after)
            ct = sh("conntrack", "-L", "-w", zone, "-p", "icmp", "-d", "10.77.0.11", check=False)
            assert "src=10.77.0.10" not in ct.stdout, ct.stdout
        finally:
            p.kill()
            p.wait()
        assert "conntrack: " in A.log()

        # everything goes: no zone rule, no ebtables chain
        A.wait_gen(A.write(T.empty()))
        A.stop()
        assert leftovers(T) == []
        assert A.proc is None
    finally:
        for ns in (vm1, vm2):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def udhcpc(ns):
    """One DHCP exchange from a fake VM: the address it was offered and acked, or None."""
    r = subprocess.run(["ip", "netns", "exec", ns, "busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n",
                        "-t", "6", "-T", "1", "-s", "/bin/true"], capture_output=True, text=True, timeout=30)
    for line in (r.stdout + r.stderr).splitlines():
        if "lease of " in line and " obtained" in line:
            return line.split("lease of ")[1].split()[0]
    return None


def test_netagent_dhcp_reload(env):
    """Ports added or removed reach dnsmasq through its hosts file and a SIGHUP: the process
    (pid) stays, the new port's address is served at once; only a command-line change (a
    subnet's DNS servers) or a removed port's lease restarts it (the address can then go to
    another MAC at once); kill -9 + restart of the agent keeps it too."""
    ctx, T, A = env, env.topo, env.agent
    if not shutil.which("busybox"):
        pytest.skip("busybox (udhcpc) not installed")
    vm3 = ids()  # a later port that takes vm1's address with another MAC
    T.macs[vm3] = "fa:16:3e:77:00:55"
    vms = {T.vm1: "tsd1-" + ctx.extns[-6:], T.vm2: "tsd2-" + ctx.extns[-6:], vm3: "tsd3-" + ctx.extns[-6:]}
    d = os.path.join(A.data, "network-agent", "dhcp", T.net)

    def pid():
        p = int(open(os.path.join(d, "pid")).read().split()[0])
        assert os.path.exists("/proc/%d" % p), "dnsmasq %d is gone: %s" % (p, A.log())
        return p

    def hosts():
        return open(os.path.join(d, "host")).read()

    def state(ports=(T.vm1, T.vm2), dns=()):
        st = T.state()
        st["ports"] = [p for p in st["ports"] if p["id"] in ports or p["id"] not in (T.vm1, T.vm2)]
        if vm3 in ports:
            st["ports"].append(T.port(vm3, T.net, T.sub, "10.77.0.10", T.macs[vm3], "compute:nova", T.dev1, [T.sg]))
        st["subnets"][0]["dns_nameservers"] = list(dns)
        return st

    def fake(port):
        ns = vms[port]
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", "tap" + port[:11], "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "-n", ns, "link", "set", "eth0", "address", T.macs[port])
        sh("ip", "-n", ns, "link", "set", "eth0", "up")

    try:
        fake(T.vm1)
        fake(T.vm2)
        A.write(state(ports=[T.vm1]))
        A.start()
        A.wait_gen(T.gen)
        p0 = pid()
        assert T.macs[T.vm1] in hosts() and T.macs[T.vm2] not in hosts()
        assert not any(a.startswith("--dhcp-host=") for a in open("/proc/%d/cmdline" % p0).read().split("\0"))
        assert udhcpc(vms[T.vm1]) == "10.77.0.10", A.log()

        # a second port: same dnsmasq, and it serves the new port's address
        A.wait_gen(A.write(state()))
        assert pid() == p0, "dnsmasq restarted for a new port"
        assert T.macs[T.vm2] + ",10.77.0.11," in hosts()
        assert "reloads its hosts file" in A.log()
        assert udhcpc(vms[T.vm2]) == "10.77.0.11", A.log() + open(os.path.join(d, "log")).read()[-2000:]

        # kill -9 of the agent and a restart: the same dnsmasq, nothing rewritten
        A.stop(signal.SIGKILL)
        mtime = os.stat(os.path.join(d, "host")).st_mtime_ns
        A.start()
        A.wait_gen(A.write(state()))
        assert pid() == p0
        assert os.stat(os.path.join(d, "host")).st_mtime_ns == mtime

        # a port removed before it got a lease: the hosts file only, no restart
        A.wait_gen(A.write(state(ports=[T.vm1, T.vm2, vm3])))
        A.wait_gen(A.write(state()))
        assert pid() == p0 and T.macs[vm3] not in hosts()

        # a removed port with a lease goes with its lease (dnsmasq restarts without it): its
        # address, given to a new port with another MAC, is served at once
        A.wait_gen(A.write(state(ports=[T.vm2])))
        assert T.macs[T.vm1] not in hosts() and T.macs[T.vm1] not in open(os.path.join(d, "leases")).read()
        fake(vm3)
        A.wait_gen(A.write(state(ports=[T.vm2, vm3])))
        assert udhcpc(vms[vm3]) == "10.77.0.10", open(os.path.join(d, "log")).read()[-2000:]
        p0 = pid()

        # an option on the command line: restarted, and it still serves
        A.wait_gen(A.write(state(ports=[T.vm2, vm3], dns=["10.77.0.53"])))
        p1 = pid()
        assert p1 != p0 and "10.77.0.53" in open("/proc/%d/cmdline" % p1).read()
        assert udhcpc(vms[T.vm2]) == "10.77.0.11"

        A.wait_gen(A.write(T.empty()))
        A.stop()
        assert not os.path.exists("/proc/%d" % p1) or "dnsmasq" not in open("/proc/%d/cmdline" % p1).read()
        assert leftovers(T) == []
    finally:
        for ns in vms.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def wait_for(fn, what, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.25)
    raise AssertionError("timed out waiting for " + what)


def test_netagent_with_api(make_cloud):
    """The in-cloud agent (ts_netagent_start) against the real network API: DHCP port made
    through the API, port set ACTIVE, namespaces, taps and floating IPs follow the API, and
    everything goes with the resources."""
    if not shutil.which("dnsmasq"):
        pytest.skip("dnsmasq not installed")
    cmd = driver_cmd()
    # the test runs the agent itself: the cloud's own (in `serve`) would build the same things
    c = make_cloud(**{"network.agent_interval": "1", "network.agent_cleanup_on_stop": "true",
                      "network.run_agent": "false"})
    end = time.time() + 10
    while not c.service_up("network"):
        if time.time() > end:
            pytest.skip("network service not running")
        time.sleep(0.2)
    host = "netagent-api-" + uuid.uuid4().hex[:6]

    def api(method, path, body=None, ok=(200, 201, 204)):
        r = c.request(method, "network", "/v2.0" + path, json=body)
        assert r.status_code in ok, "%s %s -> %d %s" % (method, path, r.status_code, r.text)
        return r.json() if r.content else None

    ext = api("POST", "/networks", {"network": {"name": "na-ext", "router:external": True}})["network"]
    api("POST", "/subnets", {"subnet": {"network_id": ext["id"], "cidr": "10.79.1.0/24", "ip_version": 4,
                                                 "enable_dhcp": False, "gateway_ip": "10.79.1.254"}})["subnet"]
    net = api("POST", "/networks", {"network": {"name": "na-net"}})["network"]
    sub = api("POST", "/subnets", {"subnet": {"network_id": net["id"], "cidr": "10.79.0.0/24",
                                              "ip_version": 4}})["subnet"]
    router = api("POST", "/routers", {"router": {"name": "na-r", "external_gateway_info": {
        "network_id": ext["id"]}}})["router"]
    api("PUT", "/routers/%s/add_router_interface" % router["id"], {"subnet_id": sub["id"]})
    dev = str(uuid.uuid4())
    port = api("POST", "/ports", {"port": {"network_id": net["id"], "binding:host_id": host,
                                           "device_owner": "compute:nova", "device_id": dev}})["port"]
    log = open(os.path.join(c.data_dir, "netagent.log"), "a")
    agent = subprocess.Popen(cmd + ["--cloud", c.data_dir, "--host", host], stdout=log, stderr=log)
    topo = type("T", (), {})()
    topo.net, topo.ext, topo.router = net["id"], ext["id"], router["id"]
    topo.vm1, topo.vm2 = port["id"], port["id"]
    try:
        wait_for(lambda: "qdhcp-" + net["id"] in sh("ip", "netns", "list").stdout, "qdhcp namespace")
        wait_for(lambda: "qrouter-" + router["id"] in sh("ip", "netns", "list").stdout, "qrouter namespace")
        wait_for(lambda: "tap" + port["id"][:11] in sh("ip", "-o", "link", "show").stdout, "VIF tap")
        wait_for(lambda: api("GET", "/ports/" + port["id"])["port"]["status"] == "ACTIVE", "port ACTIVE")
        dhcp = api("GET", "/ports?network_id=%s&device_owner=network:dhcp" % net["id"])["ports"]
        assert len(dhcp) == 1, dhcp
        topo.dhcp = dhcp[0]["id"]
        ports = api("GET", "/ports?device_id=" + router["id"])["ports"]
        assert len(ports) == 2, ports
        topo.rif, topo.rgw = ports[0]["id"], ports[1]["id"]
        wait_for(lambda: "dnsmasq" in sh("ip", "netns", "pids", "qdhcp-" + net["id"]).stdout or
                 sh("ip", "netns", "pids", "qdhcp-" + net["id"]).stdout.strip(), "dnsmasq")
        fip = api("POST", "/floatingips", {"floatingip": {"floating_network_id": ext["id"],
                                                          "port_id": port["id"]}})["floatingip"]
        fa = fip["floating_ip_address"]
        wait_for(lambda: fa + "/32" in sh("ip", "-n", "qrouter-" + router["id"], "-o", "addr").stdout,
                 "floating IP on the gateway")
        # the address and the NAT rules are applied one after the other in a pass (and a restore
        # that fails is re-applied on the next pass): wait for the rules too
        nat = lambda: sh("ip", "netns", "exec", "qrouter-" + router["id"], "iptables-save", "-t", "nat").stdout
        wait_for(lambda: "-d %s/32 -j DNAT" % fa in nat(), "floating IP DNAT rule", timeout=20)
        assert "-j SNAT --to-source %s" % fa in nat(), nat()
        # a pass whose iptables-restore lost a race with another agent on this host is
        # re-applied on the next pass
        wait_for(lambda: "tsg-i" + port["id"][:11] in sh("iptables-save", "-t", "filter").stdout,
                 "security-group chains", timeout=20)
        # everything goes with the resources
        api("DELETE", "/floatingips/" + fip["id"])
        api("DELETE", "/ports/" + port["id"])
        wait_for(lambda: "tap" + port["id"][:11] not in sh("ip", "-o", "link", "show").stdout, "tap removed")
        api("PUT", "/routers/%s/remove_router_interface" % router["id"], {"subnet_id": sub["id"]})
        api("PUT", "/routers/" + router["id"], {"router": {"external_gateway_info": {}}})
        api("DELETE", "/routers/" + router["id"])
        # (Neutron lets the subnet go while only the DHCP port holds an address on it; ours
        # does not yet, so the network goes at once, DHCP port and subnet with it)
        api("DELETE", "/networks/" + net["id"])
        # (the external network's bridge stays, with its conntrack zone rule)
        wait_for(lambda: [x for x in leftovers(topo) if x != "conntrack zone rule for " + ext["id"]] ==
                 ["brq" + ext["id"][:11]], "everything but the external bridge removed")
        # the external network stays in the database; [network] agent_cleanup_on_stop makes
        # the agent take its bridge (and all it made) down when it stops
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=15)
        assert leftovers(topo) == []
        assert os.listdir(os.path.join(c.data_dir, "network-agent", "own")) == []
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=15)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
        # whatever a failure left: an empty desired state removes all the agent recorded
        empty = os.path.join(c.data_dir, "empty-state.json")
        with open(empty, "w") as f:
            json.dump({"networks": [], "subnets": [], "ports": [], "routers": [], "floatingips": [],
                       "security_groups": []}, f)
        subprocess.run(cmd + ["--state", empty, "--data", c.data_dir, "--host", host, "--once"],
                       capture_output=True)


def test_netagent_metadata_from_compute(make_cloud):
    """The metadata proxy of the in-cloud agent asks the real compute API (fake virt driver):
    instance-id, hostname, user data, meta and the keypair of the server behind the asking
    port, the password the guest posts (kept by compute: os-server-password, novaclient's
    get-password), and nothing for an address without a port."""
    if not shutil.which("dnsmasq"):
        pytest.skip("dnsmasq not installed")
    cmd = driver_cmd()
    c = make_cloud(**{"network.agent_interval": "1", "network.agent_cleanup_on_stop": "true",
                      "compute.virt_driver": "fake", "network.run_agent": "false"})
    end = time.time() + 10
    while not (c.service_up("network") and c.service_up("compute") and c.service_up("image")):
        if time.time() > end:
            pytest.skip("network/compute/image service not running")
        time.sleep(0.2)
    host = "netagent-md-" + uuid.uuid4().hex[:6]
    mv = {"OpenStack-API-Version": "compute 2.90"}

    def req(svc, method, path, body=None, ok=(200, 201, 202, 204), headers=None):
        r = c.request(method, svc, path, json=body, headers=dict(headers or {}))
        assert r.status_code in ok, "%s %s -> %d %s" % (method, path, r.status_code, r.text)
        return r.json() if r.content else None

    img_path = os.path.join(c.data_dir, "tiny.img")
    with open(img_path, "wb") as f:
        f.write(b"\0" * 4096)
    image = c.openstack("image", "create", "--disk-format", "raw", "--container-format", "bare", "--file",
                        img_path, "na-img")
    flavor = req("compute", "POST", "/v2.1/flavors", {"flavor": {"name": "na-f", "vcpus": 1, "ram": 128,
                                                                 "disk": 1}})["flavor"]
    pub = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ5m0+NM0oA3V7iX2Z8mE2yJ6m2fQzv9h6kQpQy3bKc1 na-test"
    req("compute", "POST", "/v2.1/os-keypairs", {"keypair": {"name": "na-key", "public_key": pub}}, headers=mv)
    srv = req("compute", "POST", "/v2.1/servers", {"server": {
        "name": "md-vm", "imageRef": image["id"], "flavorRef": flavor["id"], "networks": "none",
        "key_name": "na-key", "metadata": {"role": "web"},
        "user_data": "I2Nsb3VkLWNvbmZpZwpoZWxsbyBtZXRhZGF0YQo="}}, headers=mv)["server"]
    wait_for(lambda: req("compute", "GET", "/v2.1/servers/" + srv["id"], headers=mv)["server"]["status"]
             in ("ACTIVE", "ERROR"), "server built", timeout=60)
    full = req("compute", "GET", "/v2.1/servers/" + srv["id"], headers=mv)["server"]
    assert full["status"] == "ACTIVE", full

    net = req("network", "POST", "/v2.0/networks", {"network": {"name": "md-net"}})["network"]
    req("network", "POST", "/v2.0/subnets", {"subnet": {"network_id": net["id"], "cidr": "10.79.2.0/24",
                                                        "ip_version": 4}})
    port = req("network", "POST", "/v2.0/ports", {"port": {
        "network_id": net["id"], "binding:host_id": host, "device_owner": "compute:nova",
        "device_id": srv["id"]}})["port"]
    ip, mac = port["fixed_ips"][0]["ip_address"], port["mac_address"]
    log = open(os.path.join(c.data_dir, "netagent.log"), "a")
    agent = subprocess.Popen(cmd + ["--cloud", c.data_dir, "--host", host], stdout=log, stderr=log)
    client = "tsx-md-" + uuid.uuid4().hex[:6]
    try:
        qdhcp = "qdhcp-" + net["id"]
        wait_for(lambda: qdhcp in sh("ip", "netns", "list").stdout, "qdhcp namespace")
        dhcp = req("network", "GET", "/v2.0/ports?device_owner=network:dhcp&network_id=" + net["id"])["ports"]
        wait_for(lambda: len(dhcp) == 1 and dhcp[0]["fixed_ips"] and dhcp[0]["fixed_ips"][0]["ip_address"]
                 in sh("ip", "-n", qdhcp, "-o", "addr").stdout, "DHCP address")
        dhcp_ip = dhcp[0]["fixed_ips"][0]["ip_address"]
        # a stand-in for the guest: the port's address and MAC in a namespace of the test's own
        veth = "tsxm" + client[-6:]
        sh("ip", "netns", "add", client)
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", client)
        sh("ip", "link", "set", veth, "master", "brq" + net["id"][:11], "up")
        sh("ip", "-n", client, "link", "set", "eth0", "address", mac)
        sh("ip", "-n", client, "addr", "add", ip + "/24", "dev", "eth0")
        sh("ip", "-n", client, "link", "set", "eth0", "up")
        sh("ip", "-n", client, "route", "add", "169.254.169.254/32", "via", dhcp_ip)

        def md(path, src=None):
            code = ("import sys, urllib.request\n"
                    "try:\n"
                    "    r = urllib.request.urlopen('http://169.254.169.254' + sys.argv[1], timeout=10)\n"
                    "    print(r.status); sys.stdout.write(r.read().decode())\n"
                    "except urllib.error.HTTPError as e:\n"
                    "    print(e.code)\n")
            r = sh("ip", "netns", "exec", client, "python3", "-c", code, path, timeout=30)
            status, _, body = r.stdout.partition("\n")
            return int(status), body

        wait_for(lambda: md("/latest/meta-data/instance-id")[0] == 200, "metadata answers", timeout=20)
        assert md("/latest/meta-data/instance-id")[1] == "i-" + full["OS-EXT-SRV-ATTR:instance_name"][9:]
        assert md("/latest/meta-data/local-ipv4")[1] == ip
        assert md("/latest/meta-data/public-keys/0/openssh-key")[1] == pub
        assert md("/openstack/latest/user_data")[1] == "#cloud-config\nhello metadata\n"
        doc = json.loads(md("/openstack/latest/meta_data.json")[1])
        assert doc["uuid"] == srv["id"] and doc["name"] == "md-vm" and doc["meta"] == {"role": "web"}, doc
        assert doc["public_keys"] == {"na-key": pub}, doc
        nd = json.loads(md("/openstack/latest/network_data.json")[1])
        assert nd["networks"][0]["ip_address"] == ip and nd["links"][0]["ethernet_mac_address"] == mac, nd

        # the password, as Nova: the guest posts it once, the owner reads and clears it
        def post_pw(data, version="2013-04-04"):
            r = sh("ip", "netns", "exec", client, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                   "-m", "10", "-X", "POST", "--data-binary", data,
                   "http://169.254.169.254/openstack/%s/password" % version, timeout=30)
            return int(r.stdout)
        pw_url = "/v2.1/servers/%s/os-server-password" % srv["id"]
        assert md("/openstack/latest/password") == (200, "")
        assert "password" in md("/openstack/latest")[1].split("\n")
        assert req("compute", "GET", pw_url) == {"password": ""}
        assert post_pw("x" * 257) == 400
        secret = base64.b64encode(os.urandom(200)).decode()  # 268 chars: two of Nova's chunks
        assert post_pw(secret[:256]) == 200
        assert post_pw("another") == 409
        assert md("/openstack/2013-10-17/password") == (200, secret[:256])
        assert req("compute", "GET", pw_url) == {"password": secret[:256]}
        nova = c.run(["nova", "get-password", srv["id"]],  # novaclient, no key: the stored text
                     env=c.creds_env("admin", c.admin_password, "admin"))
        assert nova.stdout.strip() == secret[:256], nova.stdout
        other = c.new_project_user(prefix="pw")
        for method in ("GET", "DELETE"):
            r = c.request(method, "compute", pw_url, token=other.token())
            assert r.status_code == 404, (method, r.status_code, r.text)
        # storing is the metadata proxy's (admin) call; another project cannot even see the server
        member = c.new_project_user(prefix="pwm")
        r = c.request("POST", "compute", "/v2.1/servers/%s/os-server-password" % srv["id"],
                      token=member.token(), json={"password": "x"})
        assert r.status_code == 404, r.text
        r = c.request("DELETE", "compute", pw_url)
        assert r.status_code == 204, r.text
        assert req("compute", "GET", pw_url) == {"password": ""}
        assert md("/openstack/latest/password") == (200, "")
        assert post_pw("again") == 200  # cleared: the guest may set it anew, as in Nova
        assert req("compute", "GET", pw_url) == {"password": "again"}
        assert c.request("POST", "compute", pw_url, json={"password": "x" * 300}).status_code == 400

        # another address on the same network has no port: nothing to see
        sh("ip", "-n", client, "addr", "del", ip + "/24", "dev", "eth0")
        sh("ip", "-n", client, "addr", "add", "10.79.2.250/24", "dev", "eth0")
        sh("ip", "-n", client, "route", "add", "169.254.169.254/32", "via", dhcp_ip)
        assert md("/latest/meta-data/instance-id")[0] == 404
    finally:
        subprocess.run(["ip", "netns", "del", client], capture_output=True)
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=15)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
        empty = os.path.join(c.data_dir, "empty-state.json")
        with open(empty, "w") as f:
            json.dump({"networks": [], "subnets": [], "ports": [], "routers": [], "floatingips": [],
                       "security_groups": []}, f)
        subprocess.run(cmd + ["--state", empty, "--data", c.data_dir, "--host", host, "--once"],
                       capture_output=True)
