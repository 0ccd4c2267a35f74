"""Runs Debian's /usr/bin/openstack for the e2e tests without paying its Python start-up per call.

/usr/bin/openstack is `sys.exit(openstackclient.shell.main())`. Importing openstackclient, its
command plugins and the client libraries takes ~1 s of CPU, most of each CLI call in these tests.
This module is a fork server: one process per pytest process imports those modules once (and
nothing else: no command is run in it, so no logging or client state exists), then for every call
forks a child that sets the call's environment, argv, cwd and stdin/stdout/stderr and runs the same
`openstackclient.shell.main(argv)`; the child's exit status is the call's. The client code that
talks to tinystack is the same as the command's; only the interpreter start-up is shared.
TS_E2E_CLI=exec in the environment turns it off (every call runs /usr/bin/openstack).

Used by conftest.Cloud.run; protocol on a socketpair, one call at a time: the caller sends one
JSON line {argv, env, cwd, stdin, stdout, stderr} (the last three are file paths) and reads a
JSON line {"pid": N}, then {"rc": N} when the child has exited.
"""
import json
import os
import signal
import socket
import sys


def preload():
    """Import what a CLI call imports, without running anything."""
    import importlib
    import importlib.metadata as md
    from openstackclient import shell  # noqa: F401  (osc_lib, cliff, keystoneauth, openstacksdk)
    for group in sorted(md.entry_points().groups):
        if not group.startswith("openstack."):
            continue
        for ep in md.entry_points(group=group):
            try:
                ep.load()
            except Exception:  # a broken plugin fails in the CLI the same way, later
                pass
    for mod in ("openstack.connection", "keystoneclient.v3.client", "cinderclient.v3.client",
                "swiftclient.client", "openstack.compute.v2._proxy", "openstack.network.v2._proxy",
                "openstack.image.v2._proxy", "openstack.block_storage.v3._proxy",
                "openstack.identity.v3._proxy", "openstack.object_store.v1._proxy"):
        try:
            importlib.import_module(mod)
        except Exception:
            pass


def child(req, sock_fd):
    os.close(sock_fd)  # the caller sees the server's end only
    os.setsid()  # the caller kills the whole group on a timeout
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.chdir(req["cwd"])
    for fd, path, flags in ((0, req["stdin"], os.O_RDONLY), (1, req["stdout"], os.O_WRONLY),
                            (2, req["stderr"], os.O_WRONLY)):
        f = os.open(path, flags)
        os.dup2(f, fd)
        os.close(f)
    os.environ.clear()
    os.environ.update(req["env"])
    sys.argv = ["/usr/bin/openstack"] + req["argv"]
    rc = 1
    try:
        from openstackclient.shell import main
        rc = main(req["argv"])
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback
        traceback.print_exc()
        rc = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit((rc or 0) & 0xFF)


def serve(fd):
    sock = socket.socket(fileno=fd)
    f = sock.makefile("rw", buffering=1)
    for line in f:
        req = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            child(req, fd)
        f.write(json.dumps({"pid": pid}) + "\n")
        f.flush()
        _, status = os.waitpid(pid, 0)
        rc = os.waitstatus_to_exitcode(status)
        f.write(json.dumps({"rc": rc}) + "\n")
        f.flush()


if __name__ == "__main__":
    preload()
    serve(int(sys.argv[1]))
