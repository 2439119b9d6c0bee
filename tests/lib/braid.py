# braid.py: test harness: writes configs, starts braid-master, braid-slave and link emulators on
# loopback, queries their status, and stops everything it started (by PID), checking sanitizers.
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_dir():
    """Where the daemons under test are: $BRAID_BUILD, default build/notun."""
    return os.path.join(ROOT, os.environ.get("BRAID_BUILD", "build/notun"))


def tool(name):
    return os.path.join(ROOT, "build", "tools", name)


_ports_given = set()


def free_port(kind=socket.SOCK_DGRAM, host="127.0.0.1"):
    """A port that is free for both UDP and TCP right now on host, and not handed out before
    by this process (the kernel may offer a just-closed port again: two ends of one test
    must not get the same one)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(100):
        s = socket.socket(fam, kind)
        s.bind((host, 0))
        port = s.getsockname()[1]
        s.close()
        if port in _ports_given:
            continue
        other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
        t = socket.socket(fam, other)
        try:
            t.bind((host, port))
        except OSError:
            continue
        finally:
            t.close()
        _ports_given.add(port)
        return port
    raise RuntimeError("no free port found")


def genkey(build=None):
    """A new private key (or PSK: the same form), from braid-master genkey."""
    out = subprocess.run([os.path.join(build or build_dir(), "braid-master"), "genkey"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def pubkey(private, build=None):
    out = subprocess.run([os.path.join(build or build_dir(), "braid-master"), "pubkey"],
                         input=private + "\n", capture_output=True, text=True, check=True)
    return out.stdout.strip()


def write_key(path, key):
    """A private key file only its owner may read (braid refuses any other)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return path


def wait_until(cond, timeout, what, interval=0.02):
    """Poll cond() until it returns a true value; fail with what after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.1f s waiting for %s (last: %r)" % (timeout, what, last))


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "UndefinedBehaviorSanitizer")


class Proc:
    """A started program with its output in a log file."""

    def __init__(self, name, argv, logdir, env=None):
        self.name = name
        self.log_path = os.path.join(logdir, name + ".log")
        self.log = open(self.log_path, "wb")
        e = dict(os.environ)
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=66")
        e.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1:exitcode=67")
        if env:
            e.update(env)
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=e,
                                  cwd=ROOT)
        self.pid = self.p.pid

    def alive(self):
        return self.p.poll() is None

    def output(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Stop it and return its exit status (killing it if it does not stop in time)."""
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()
        return self.p.returncode

    def sanitizer_report(self):
        out = self.output()
        for mark in SANITIZER_MARKS:
            i = out.find(mark)
            if i >= 0:
                return out[max(0, i - 200):i + 3000]
        return None


def query(path, cmd="json", timeout=2.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(cmd.encode() + b"\n")
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    finally:
        s.close()
    text = b"".join(chunks).decode()
    return json.loads(text) if cmd == "json" else text


class Emu:
    """One braid-emu relay: listen (where the slave link sends) -> target (the master)."""

    def __init__(self, name, target_port, logdir, up="", down="", script=None, extra=()):
        self.port = free_port()
        self.control = os.path.join(logdir, name + ".ctl")
        argv = [tool("braid-emu"), "--listen", "127.0.0.1:%d" % self.port,
                "--target", "127.0.0.1:%d" % target_port, "--control", self.control]
        if up:
            argv += ["--up", up]
        if down:
            argv += ["--down", down]
        if script:
            argv += ["--script", script]
        argv += list(extra)
        self.proc = Proc(name, argv, logdir)
        self.logdir = logdir
        wait_until(lambda: os.path.exists(self.control) or not self.proc.alive(), 5,
                   "emulator %s control socket" % name)
        if not self.proc.alive():
            raise AssertionError("emulator %s exited:\n%s" % (name, self.proc.output()))

    def cmd(self, text, timeout=2.0):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        me = tempfile.mktemp(prefix="emuc-", dir=self.logdir)
        s.bind(me)
        s.settimeout(timeout)
        try:
            s.sendto(text.encode(), self.control)
            reply = s.recv(65536).decode()
        finally:
            s.close()
            os.unlink(me)
        if reply.startswith("error"):
            raise AssertionError("emulator command %r: %s" % (text, reply))
        return json.loads(reply) if text.strip() == "stats" else reply


def mux_status(st):
    """The multiplexer part of a status answer: the slave's, or the master's first site's (builds
    before the site table answered with "mux" on both ends)."""
    if "mux" in st:
        return st["mux"]
    return st["sites"][0]["mux"]


def stop_all(procs, tmp):
    """Stop the programs (the last started first), assert clean exits and no sanitizer report,
    then remove tmp (kept with $BRAID_KEEP_LOGS)."""
    problems = []
    for p in reversed(procs):
        rc = p.stop()
        rep = p.sanitizer_report()
        if rep:
            problems.append("%s: sanitizer report:\n%s" % (p.name, rep))
        elif rc not in (0, -signal.SIGTERM):
            problems.append("%s exited with %s:\n%s" % (p.name, rc, p.output()[-2000:]))
    if problems:
        raise AssertionError("\n".join(problems))
    if os.environ.get("BRAID_KEEP_LOGS"):
        print("logs kept in", tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def write_conf(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


class Harness:
    """The programs a test started (self.procs, logs in self.tmp): stopped and checked on a
    clean exit from the with-block; on an exception their logs are printed and kept."""

    def stop(self):
        """Stop everything and assert clean exits."""
        procs, self.procs = self.procs, []
        stop_all(procs, self.tmp)

    def kill_all(self):
        for p in self.procs:
            if p.alive():
                p.p.kill()
                p.p.wait()
        self.procs = []

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            for p in self.procs:
                print("---- %s log (%s) ----" % (p.name, p.log_path))
                print(p.output()[-4000:])
            self.kill_all()
            print("logs kept in", self.tmp)
            return False
        self.stop()
        return False


class Braid(Harness):
    """A master and a slave on loopback with nlinks links; links may go through emulators.

    emu: list (one entry per link) of None (direct) or a dict(up=SPEC, down=SPEC, script=FILE).
    link_extra: {link index: settings text added to that link's group}, e.g. a SOCKS5 proxy.
    master_name: write the slave's "master" with this host name instead of the IP address.
    """

    def __init__(self, nlinks=2, emu=None, mux="", master_extra="", slave_extra="",
                 master_key=None, build=None, targets=None, ipv6=False, link_extra=None,
                 master_name=None, psk=True, mux_master="", mux_slave=""):
        self.tmp = tempfile.mkdtemp(prefix="braid-test-")
        self.build = build or build_dir()
        self.nlinks = nlinks
        self.emu_specs = emu or [None] * nlinks
        self.targets = targets or {}  # link index -> UDP port to send to instead of the master
        self.link_extra = link_extra or {}
        self.master_name = master_name
        self.mux_settings = mux
        self.mux_master = mux_master  # mux settings for one end only
        self.mux_slave = mux_slave
        # key pairs: master_key replaces the master's private key after the slave was told
        # the public key of another (a slave with the wrong master key)
        self.master_priv = genkey(self.build)
        self.slave_priv = genkey(self.build)
        self.master_pub = pubkey(self.master_priv, self.build)
        self.slave_pub = pubkey(self.slave_priv, self.build)
        if master_key:
            self.master_priv = master_key
        self.psk = genkey(self.build) if psk else None
        self.master_extra = master_extra
        self.slave_extra = slave_extra
        self.procs = []
        self.emus = []
        self.master = self.slave = None
        self.ipv6 = ipv6  # the links' transport (the notun frame ends stay on 127.0.0.1)
        self.lo = "::1" if ipv6 else "127.0.0.1"
        self.lo_port = "[::1]:%d" if ipv6 else "127.0.0.1:%d"
        self.master_port = free_port(host=self.lo)
        self.master_tun = free_port(socket.SOCK_STREAM)
        self.slave_tun = free_port(socket.SOCK_STREAM)
        self.master_ctl = os.path.join(self.tmp, "master.sock")
        self.slave_ctl = os.path.join(self.tmp, "slave.sock")

    def master_conf(self):
        write_key(os.path.join(self.tmp, "master.key"), self.master_priv)
        psk = 'psk = "%s"; ' % self.psk if self.psk else ""
        return write_conf(os.path.join(self.tmp, "master.conf"), """
private_key_file = "master.key";
sites = ( { name = "site"; public_key = "%s"; %s} );
listen = "%s";
tunnel = { notun_listen = "127.0.0.1:%d"; };
mux = { %s };
control_socket = "%s";
log_level = "debug";
%s
""" % (self.slave_pub, psk, self.lo_port % self.master_port, self.master_tun,
       self.mux_settings + " " + self.mux_master,
       self.master_ctl, self.master_extra))

    def slave_conf(self, link_targets):
        links = []
        for i in range(self.nlinks):
            target = ""
            if link_targets[i] is not None:
                target = ' master = "127.0.0.1:%d";' % link_targets[i]
            links.append('{ name = "wan%d"; bind = "%s";%s %s }'
                         % (i, self.lo, target, self.link_extra.get(i, "")))
        master = self.lo_port % self.master_port
        if self.master_name:
            master = "%s:%d" % (self.master_name, self.master_port)
        write_key(os.path.join(self.tmp, "slave.key"), self.slave_priv)
        psk = 'psk = "%s";' % self.psk if self.psk else ""
        return write_conf(os.path.join(self.tmp, "slave.conf"), """
private_key_file = "slave.key";
master_public_key = "%s";
%s
master = "%s";
links = ( %s );
tunnel = { notun_listen = "127.0.0.1:%d"; };
mux = { %s };
control_socket = "%s";
log_level = "debug";
%s
""" % (self.master_pub, psk, master, ", ".join(links), self.slave_tun,
       self.mux_settings + " " + self.mux_slave,
       self.slave_ctl, self.slave_extra))

    def start_master(self):
        self.master = Proc("master", [os.path.join(self.build, "braid-master"), "-c",
                                      self.master_conf()], self.tmp)
        self.procs.append(self.master)
        wait_until(lambda: os.path.exists(self.master_ctl) or not self.master.alive(), 10,
                   "master control socket")
        if not self.master.alive():
            raise AssertionError("braid-master exited:\n" + self.master.output())

    def start(self, wait=True):
        self.start_master()
        targets = []
        for i, spec in enumerate(self.emu_specs):
            if spec is None:
                targets.append(self.targets.get(i))
                continue
            e = Emu("emu%d" % i, self.master_port, self.tmp, **spec)
            self.emus.append(e)
            self.procs.append(e.proc)
            targets.append(e.port)
        self.emu_by_link = {}
        k = 0
        for i, spec in enumerate(self.emu_specs):
            if spec is not None:
                self.emu_by_link[i] = self.emus[k]
                k += 1
        self.slave = Proc("slave", [os.path.join(self.build, "braid-slave"), "-c",
                                    self.slave_conf(targets)], self.tmp)
        self.procs.append(self.slave)
        wait_until(lambda: os.path.exists(self.slave_ctl) or not self.slave.alive(), 10,
                   "slave control socket")
        if wait:
            self.wait_links_up(self.nlinks)
        return self

    def status(self, who):
        return query(self.master_ctl if who == "master" else self.slave_ctl)

    def mux(self, who):
        """The multiplexer's status (the master's: its site's)."""
        return mux_status(self.status(who))

    def links(self, who):
        return {l["id"]: l for l in self.mux(who)["links"]}

    def wait_links_up(self, n, timeout=10):
        def ok():
            for who in ("master", "slave"):
                st = self.mux(who)
                if not st["session"] or st["links_up"] < n:
                    return False
            return True
        try:
            wait_until(ok, timeout, "session and %d links up on both ends" % n)
        except AssertionError:
            raise AssertionError("links did not come up.\n--- master log:\n%s\n--- slave log:\n%s"
                                 % (self.master.output()[-3000:], self.slave.output()[-3000:]))

    def wait_link_state(self, who, link_id, up, timeout=5):
        return wait_until(lambda: self.links(who).get(link_id, {}).get("up") == up, timeout,
                          "%s link %d %s" % (who, link_id, "up" if up else "down"))

    def tun_addrs(self):
        return ("127.0.0.1", self.master_tun), ("127.0.0.1", self.slave_tun)


class Sites(Harness):
    """One master serving nsites sites on loopback: each site a braid-slave with its own key pair
    and nlinks direct links; site i's tunnel address is site_ip(i), its allowed_ips that /32
    unless allowed (a list of prefix lists, one per site) says otherwise."""

    def __init__(self, nsites=3, nlinks=2, build=None, allowed=None, master_extra=""):
        self.tmp = tempfile.mkdtemp(prefix="braid-sites-")
        self.build = build or build_dir()
        self.nsites = nsites
        self.nlinks = nlinks
        self.master_priv = genkey(self.build)
        self.master_pub = pubkey(self.master_priv, self.build)
        self.site_priv = [genkey(self.build) for _ in range(nsites)]
        self.site_pub = [pubkey(k, self.build) for k in self.site_priv]
        self.allowed = allowed or [["%s/32" % self.site_ip(i)] for i in range(nsites)]
        self.master_extra = master_extra
        self.master_port = free_port()
        self.master_tun = free_port(socket.SOCK_STREAM)
        self.slave_tun = [free_port(socket.SOCK_STREAM) for _ in range(nsites)]
        self.master_ctl = os.path.join(self.tmp, "master.sock")
        self.slave_ctl = [os.path.join(self.tmp, "slave%d.sock" % i) for i in range(nsites)]
        self.procs = []
        self.master = None
        self.slaves = [None] * nsites

    @staticmethod
    def site_ip(i):
        return "198.18.0.%d" % (10 + i)

    def start_master(self):
        write_key(os.path.join(self.tmp, "master.key"), self.master_priv)
        sites = ",\n".join('{ name = "site%d"; public_key = "%s"; allowed_ips = [ %s ]; }'
                           % (i, self.site_pub[i], ", ".join('"%s"' % p for p in self.allowed[i]))
                           for i in range(self.nsites))
        conf = write_conf(os.path.join(self.tmp, "master.conf"), """
private_key_file = "master.key";
sites = ( %s );
listen = "127.0.0.1:%d";
tunnel = { notun_listen = "127.0.0.1:%d"; };
control_socket = "%s";
log_level = "debug";
%s
""" % (sites, self.master_port, self.master_tun, self.master_ctl, self.master_extra))
        self.master = Proc("master", [os.path.join(self.build, "braid-master"), "-c", conf],
                           self.tmp)
        self.procs.append(self.master)
        wait_until(lambda: os.path.exists(self.master_ctl) or not self.master.alive(), 10,
                   "master control socket")
        if not self.master.alive():
            raise AssertionError("braid-master exited:\n" + self.master.output())

    def start_slave(self, i, key=None):
        name = "slave%d" % i
        write_key(os.path.join(self.tmp, name + ".key"), key or self.site_priv[i])
        links = ", ".join('{ name = "s%dl%d"; bind = "127.0.0.1"; }' % (i, k)
                          for k in range(self.nlinks))
        conf = write_conf(os.path.join(self.tmp, name + ".conf"), """
private_key_file = "%s.key";
master_public_key = "%s";
master = "127.0.0.1:%d";
links = ( %s );
tunnel = { notun_listen = "127.0.0.1:%d"; };
control_socket = "%s";
log_level = "debug";
""" % (name, self.master_pub, self.master_port, links, self.slave_tun[i], self.slave_ctl[i]))
        p = Proc(name, [os.path.join(self.build, "braid-slave"), "-c", conf], self.tmp)
        self.procs.append(p)
        self.slaves[i] = p
        wait_until(lambda: os.path.exists(self.slave_ctl[i]) or not p.alive(), 10,
                   "%s control socket" % name)
        if not p.alive():
            raise AssertionError("%s exited:\n%s" % (name, p.output()))

    def start(self, wait=True):
        self.start_master()
        for i in range(self.nsites):
            self.start_slave(i)
        if wait:
            self.wait_sessions()
        return self

    def status(self, who):
        """"master" or a site number."""
        return query(self.master_ctl if who == "master" else self.slave_ctl[who])

    def site_mux(self, i):
        """The master's multiplexer status for site i."""
        return self.status("master")["sites"][i]["mux"]

    def wait_sessions(self, timeout=10):
        def ok():
            st = self.status("master")
            for i in range(self.nsites):
                m = st["sites"][i]["mux"]
                if not m["session"] or m["links_up"] < self.nlinks:
                    return False
                s = mux_status(self.status(i))
                if not s["session"] or s["links_up"] < self.nlinks:
                    return False
            return True
        wait_until(ok, timeout, "every site's session and links up on both ends")

    def wait_no_frame_clients(self, timeout=5):
        """Until every notun end has seen its last frame client go (one client at a time)."""
        wait_until(lambda: all("(no client)" in self.status(w)["tundev"]["describe"]
                               for w in ["master"] + list(range(self.nsites))), timeout,
                   "the frame clients to be gone")

    def tun_addrs(self):
        """The master's frame end and [(site's frame end, site's address)]."""
        return (("127.0.0.1", self.master_tun),
                [(("127.0.0.1", self.slave_tun[i]), self.site_ip(i)) for i in range(self.nsites)])
