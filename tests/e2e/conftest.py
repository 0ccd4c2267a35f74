"""End-to-end harness: starts a real tinystack on free loopback ports and drives it with
the real OpenStack clients (/usr/bin/openstack, openstacksdk, /usr/bin/swift).

Fixtures:
  cloud       session-wide running cloud (all services built in)
  make_cloud  factory for private clouds (crash/restart tests, special config)
"""
import json
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("TS_BUILD", "build")
TINYSTACK = os.path.join(ROOT, BUILD, "tinystack") if not os.path.isabs(BUILD) else os.path.join(BUILD, "tinystack")
OPENSTACK = "/usr/bin/openstack"
SERVICES = ["identity", "image", "compute", "network", "volume", "object"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _OscFork:
    """Client of osc_fork.py: `openstack ARGS` run by a child forked from a process that has the
    client's modules imported already (see that file). One per pytest process, one call at a time
    (under _osc_fork_lock)."""

    def __init__(self):
        mine, theirs = socket.socketpair()
        self.proc = subprocess.Popen(["/usr/bin/python3", os.path.join(os.path.dirname(__file__), "osc_fork.py"),
                                      str(theirs.fileno())], pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        theirs.close()
        self.sock = mine
        self.buf = b""

    def _line(self, timeout=None):
        while b"\n" not in self.buf:
            if timeout is not None and not select.select([self.sock], [], [], max(timeout, 0))[0]:
                return None
            data = self.sock.recv(65536)
            if not data:
                raise RuntimeError("osc_fork.py exited")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def run(self, args, env, timeout):
        with tempfile.TemporaryDirectory(prefix="ts-osc-") as d:
            paths = {k: os.path.join(d, k) for k in ("stdin", "stdout", "stderr")}
            for path in paths.values():
                open(path, "w").close()
            req = dict(paths, argv=args, env=dict(env), cwd=os.getcwd())
            self.sock.sendall(json.dumps(req).encode() + b"\n")
            pid = self._line()["pid"]
            done = self._line(timeout)
            if done is None:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
                self._line()
                raise subprocess.TimeoutExpired([OPENSTACK] + args, timeout)
            with open(paths["stdout"]) as f:
                out = f.read()
            with open(paths["stderr"]) as f:
                err = f.read()
        return subprocess.CompletedProcess([OPENSTACK] + args, done["rc"], out, err)

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.sock.close()


_osc_fork = None
_osc_fork_lock = threading.Lock()
_EXEC_MODULES = ("test_identity_smoke.py::", "test_real_cloud.py::")


def _osc_fork_run(args, env, timeout):
    """The CLI call through the fork server, or None: the caller then runs /usr/bin/openstack
    (TS_E2E_CLI=exec, or another thread's call is in the fork server now: concurrent calls stay
    concurrent)."""
    global _osc_fork
    # the smoke tests and the real-cloud walk-through always run the installed binary itself
    # (/usr/bin/openstack as a user types it); the fork server is an optimisation for the rest
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    if any(m in current for m in _EXEC_MODULES):
        return None
    if os.environ.get("TS_E2E_CLI") == "exec" or not _osc_fork_lock.acquire(blocking=False):
        return None
    try:
        if _osc_fork is None:
            _osc_fork = _OscFork()
        return _osc_fork.run(args, env, timeout)
    finally:
        _osc_fork_lock.release()


class User:
    """A user with a role on its own project, usable with the CLI through .env."""

    def __init__(self, cloud, project_id, project_name, user_id, username, password):
        self.cloud = cloud
        self.project_id = project_id
        self.project_name = project_name
        self.user_id = user_id
        self.username = username
        self.password = password
        self.env = cloud.creds_env(username, password, project_name)

    def token(self):
        return self.cloud.token(self.env)


class Cloud:
    def __init__(self, data_dir, overrides=None, admin_password="admin-secret"):
        self.data_dir = data_dir
        self.admin_password = admin_password
        self.overrides = dict(overrides or {})
        self.proc = None
        self.ports = {}
        self.urls = {}
        self._tokens = {}

    # ---- lifecycle -------------------------------------------------------------
    def init(self):
        os.makedirs(self.data_dir, exist_ok=True)
        os.chmod(self.data_dir, 0o755)  # QEMU runs as libvirt-qemu and must reach instance disks
        args = [TINYSTACK, "init", "--data", self.data_dir, "--admin-password", self.admin_password]
        sets = {}
        for svc in SERVICES:
            port = free_port()
            self.ports[svc] = port
            sets["%s.port" % svc] = str(port)
        sets["identity.password_hash_rounds"] = "4"  # bcrypt cost: tests are not a benchmark
        # nothing a test cloud's network agent made may outlive it (bridges, namespaces, dnsmasq)
        sets["network.agent_cleanup_on_stop"] = "true"
        # clouds of one run share libvirtd: a per-cloud domain name prefix keeps two clouds'
        # first servers from both being instance-00000001 (still "instance-" + hex, so EC2 ids hold)
        sets["compute.instance_name_template"] = "instance-%04x%%04x" % random.randrange(0x10000)
        sets.update(self.overrides)
        for k, v in sets.items():
            args += ["--set", "%s=%s" % (k, v)]
        subprocess.run(args, check=True, capture_output=True, text=True)
        for svc, port in self.ports.items():
            self.urls[svc] = "http://127.0.0.1:%d" % port
        self.clouds_yaml = os.path.join(self.data_dir, "clouds.yaml")
        self.admin_env = dict(os.environ)
        for k in list(self.admin_env):
            if k.startswith("OS_"):
                del self.admin_env[k]
        self.admin_env.update({"OS_CLIENT_CONFIG_FILE": self.clouds_yaml, "OS_CLOUD": "tinystack"})
        return self

    def start(self):
        log = open(os.path.join(self.data_dir, "serve.log"), "ab")
        self.proc = subprocess.Popen([TINYSTACK, "serve", "--data", self.data_dir], stdout=log, stderr=log,
                                     start_new_session=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("tinystack serve exited: see %s/serve.log" % self.data_dir)
            try:
                if requests.get(self.urls["identity"] + "/v3", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.05)
        else:
            raise RuntimeError("tinystack did not come up")
        # every enabled service listens before the tests talk to it
        for svc in SERVICES:
            while time.time() < deadline and not self.service_up(svc):
                if self.proc.poll() is not None:
                    raise RuntimeError("tinystack serve exited: see %s/serve.log" % self.data_dir)
                time.sleep(0.05)
        self._tokens = {}
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def service_up(self, svc):
        """True if svc answers, or if it is not built in (nothing listens and nothing will)."""
        enabled = self._enabled()
        if svc not in enabled:
            return True
        try:
            requests.get(self.urls[svc] + "/", timeout=1)
            return True
        except requests.RequestException:
            return False

    def _enabled(self):
        if not hasattr(self, "_enabled_cache"):
            names = []
            with open(os.path.join(self.data_dir, "tinystack.conf")) as f:
                for line in f:
                    if line.startswith("enabled_services"):
                        names = [n.strip() for n in line.split("=", 1)[1].split(",")]
                        break
            self._enabled_cache = set(names)
        return self._enabled_cache

    # ---- clients -----------------------------------------------------------------
    def creds_env(self, username, password, project_name, domain="Default"):
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("OS_"):
                del env[k]
        env.update({
            "OS_AUTH_URL": self.urls["identity"] + "/v3",
            "OS_IDENTITY_API_VERSION": "3",
            "OS_USERNAME": username,
            "OS_PASSWORD": password,
            "OS_PROJECT_NAME": project_name,
            "OS_USER_DOMAIN_NAME": domain,
            "OS_PROJECT_DOMAIN_NAME": domain,
            "OS_REGION_NAME": "RegionOne",
        })
        return env

    def run(self, cmd, env=None, check=True, input=None, timeout=300):
        p = subprocess.run(cmd, env=env or self.admin_env, capture_output=True, text=True, input=input,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("%s failed (%d):\n%s\n%s" % (" ".join(cmd), p.returncode, p.stdout, p.stderr))
        return p

    def openstack(self, *args, env=None, check=True, timeout=300):
        args = list(args)
        want_json = (any(a in ("list", "show", "create", "issue") for a in args[:3]) and "-f" not in args
                     and args[:1] != ["console"])  # console log/url print text
        verbs_without_output = {"delete", "set", "unset", "add", "remove", "revoke", "save"}
        if want_json and not any(a in verbs_without_output for a in args[:3]):
            args += ["-f", "json"]
        p = _osc_fork_run(args, env or self.admin_env, timeout)
        if p is None:
            p = self.run([OPENSTACK] + args, env=env, check=False, timeout=timeout)
        if not check:
            return p
        if p.returncode != 0:
            raise AssertionError("openstack %s failed (%d):\n%s\n%s" % (" ".join(args), p.returncode, p.stdout,
                                                                        p.stderr))
        out = p.stdout.strip()
        try:
            return json.loads(out) if out else None
        except ValueError:
            return out

    def token(self, env=None):
        env = env or {"OS_USERNAME": "admin", "OS_PASSWORD": self.admin_password, "OS_PROJECT_NAME": "admin"}
        key = (env.get("OS_USERNAME"), env.get("OS_PROJECT_NAME"))
        if key in self._tokens:
            return self._tokens[key]
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": env["OS_USERNAME"], "domain": {"name": "Default"}, "password": env["OS_PASSWORD"]}}},
            "scope": {"project": {"name": env["OS_PROJECT_NAME"], "domain": {"name": "Default"}}}}}
        r = requests.post(self.urls["identity"] + "/v3/auth/tokens", json=body, timeout=30)
        assert r.status_code == 201, r.text
        self._tokens[key] = r.headers["X-Subject-Token"]
        return self._tokens[key]

    def request(self, method, service, path, token=None, **kw):
        headers = kw.pop("headers", {}) or {}
        if token is None:
            token = self.token()
        if token:
            headers.setdefault("X-Auth-Token", token)
        kw.setdefault("timeout", 60)
        return requests.request(method, self.urls[service] + path, headers=headers, **kw)

    def new_project_user(self, role="member", prefix="t", cli=False):
        """A new project and user with `role` on it. Made through the identity API (three CLI
        calls cost ~4 s of Python start-up, and this is setup for most tests); cli=True makes them
        with `openstack project create`, `user create` and `role add` (what test_identity tests)."""
        name = "%s-%s" % (prefix, uuid.uuid4().hex[:8])
        password = "pw-" + uuid.uuid4().hex[:12]
        if cli:
            p = self.openstack("project", "create", name)
            u = self.openstack("user", "create", "--password", password, "--project", p["id"], name)
            self.openstack("role", "add", "--user", u["id"], "--project", p["id"], role)
            return User(self, p["id"], name, u["id"], name, password)

        def call(method, path, want, **kw):
            r = self.request(method, "identity", path, **kw)
            assert r.status_code == want, "%s %s: %d %s" % (method, path, r.status_code, r.text)
            return r.json() if r.content else None

        p = call("POST", "/v3/projects", 201, json={"project": {"name": name, "enabled": True}})["project"]
        u = call("POST", "/v3/users", 201, json={"user": {"name": name, "password": password, "enabled": True,
                                                          "default_project_id": p["id"]}})["user"]
        roles = call("GET", "/v3/roles?name=" + role, 200)["roles"]
        assert len(roles) == 1, "role %s: %r" % (role, roles)
        call("PUT", "/v3/projects/%s/users/%s/roles/%s" % (p["id"], u["id"], roles[0]["id"]), 204)
        return User(self, p["id"], name, u["id"], name, password)


# ---- running in two processes (pytest-xdist: scripts/test.sh runs `-n 2 --dist loadgroup`) --------
# Files that boot TCG guests (through the one libvirtd, which some of them start and stop, or
# qemu directly with a wall-time bound) or make LVM volume groups on loop devices run in one
# group, one after another in one worker, as in a serial run; every other file is a group of its
# own (scope = module), so a module fixture's cloud is made once. Groups are handed out longest
# first (rough seconds of a serial run on 2 cores) so that the two workers end together.
GUEST_FILES = ("test_compute_libvirt.py", "test_real_cloud.py", "test_virt_libvirt.py", "test_volume_lvm.py",
               "test_netagent.py")
FILE_SECONDS = {"test_network.py": 170, "test_identity.py": 150, "test_volume.py": 140,
                "test_compute_integration.py": 115, "test_compute.py": 105, "test_volume_backup.py": 80,
                "test_object.py": 70, "test_image.py": 70, "test_compute_multihost.py": 60,
                "test_image_copy.py": 50, "test_object_rados.py": 40, "test_image_swift.py": 30}


def pytest_configure(config):
    config.addinivalue_line("markers", "xdist_group(name): tests of one group run in one pytest-xdist worker")


def pytest_unconfigure(config):
    global _osc_fork
    if _osc_fork is not None:
        _osc_fork.close()
        _osc_fork = None


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
    def weight(item):
        base = os.path.basename(str(item.fspath))
        return 10 ** 6 if base in GUEST_FILES else FILE_SECONDS.get(base, 60)

    for item in items:
        if os.path.basename(str(item.fspath)) in GUEST_FILES:
            item.add_marker(pytest.mark.xdist_group("guests"))
    # stable sort: the order inside a file (and inside the guest group) is kept
    items.sort(key=lambda it: -weight(it))


def _build_ok():
    if not os.path.exists(TINYSTACK):
        pytest.exit("tinystack binary not found at %s: build first (make build)" % TINYSTACK, returncode=2)


@pytest.fixture(scope="session")
def cloud():
    _build_ok()
    d = tempfile.mkdtemp(prefix="ts-e2e-", dir="/var/tmp")
    c = Cloud(d).init().start()
    yield c
    c.stop()
    if os.environ.get("TS_KEEP_DATA") is None:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def make_cloud():
    _build_ok()
    made = []

    def factory(**overrides):
        d = tempfile.mkdtemp(prefix="ts-e2e-p-", dir="/var/tmp")
        c = Cloud(d, overrides).init().start()
        made.append(c)
        return c

    yield factory
    for c in made:
        c.stop()
        if os.environ.get("TS_KEEP_DATA") is None:
            shutil.rmtree(c.data_dir, ignore_errors=True)
