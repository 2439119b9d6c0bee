# dante.py: runs Dante (Debian's dante-server, a real SOCKS5 server with UDP ASSOCIATE) on
# loopback for tests: writes its config, starts it in its own process group, kills it by PID.
import os
import shutil
import signal
import socket
import subprocess
import time

import braid


def danted_path():
    for p in ("/usr/sbin/danted", shutil.which("danted") or "", shutil.which("sockd") or ""):
        if p and os.path.exists(p):
            return p
    return None


def wait_listening(port, timeout, proc=None, what="server"):
    """Wait until a TCP connect to 127.0.0.1:port succeeds (the server is ready)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError("%s exited with %s" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.02)
    raise AssertionError("%s not listening on port %d after %.1f s" % (what, port, timeout))


class Dante:
    """One danted on 127.0.0.1:port. auth: False for no authentication, True to require an
    RFC 1929 login, which Dante checks against the system's users (so: root only)."""

    def __init__(self, name, logdir, port=None, auth=None, connect=False, udp=True):
        self.name = name
        self.logdir = logdir
        self.port = port or braid.free_port(socket.SOCK_STREAM)
        self.auth = auth
        self.connect = connect  # also allow CONNECT (TCP), as the TCP lane's links use
        self.udp = udp  # allow UDP ASSOCIATE (False: a CONNECT-only proxy, like many phone apps)
        self.conf = os.path.join(logdir, name + ".conf")
        self.pidfile = os.path.join(logdir, name + ".pid")
        self.log_path = os.path.join(logdir, name + ".log")
        self.p = None

    def write_conf(self):
        method = "username" if self.auth else "none"
        lines = [
            "logoutput: stderr",
            "internal: 127.0.0.1 port = %d" % self.port,
            "external: 127.0.0.1",
            "clientmethod: none",
            "socksmethod: %s" % method,
        ]
        if os.geteuid() == 0:
            lines += ["user.privileged: root", "user.unprivileged: nobody"]
        # Debian's example config refuses loopback destinations: allow them explicitly (the
        # master runs on 127.0.0.1 in the tests), for UDP ASSOCIATE and the replies.
        commands = (["udpassociate", "udpreply"] if self.udp else []) + \
            (["connect"] if self.connect else [])
        lines += [
            "client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }",
            "socks pass { from: 127.0.0.0/8 to: 127.0.0.0/8 command: %s }" % " ".join(commands),
            "socks block { from: 0.0.0.0/0 to: 0.0.0.0/0 }",
        ]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout=10):
        exe = danted_path()
        if not exe:
            raise AssertionError("danted not found: apt-get install dante-server")
        self.write_conf()
        log = open(self.log_path, "ab")
        self.p = subprocess.Popen([exe, "-f", self.conf, "-p", self.pidfile, "-N", "1"],
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_listening(self.port, timeout, self.p, "danted %s" % self.name)
        return self

    def kill(self):
        """Kill danted and its children at once (SIGKILL to its process group), like a proxy
        app that crashes: the kernel closes its sockets."""
        if self.p is None:
            return
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.p.wait()
        self.p = None

    def stop(self):
        if self.p is None:
            return
        try:
            os.killpg(self.p.pid, signal.SIGTERM)
            self.p.wait(5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        self.kill()

    def output(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""
