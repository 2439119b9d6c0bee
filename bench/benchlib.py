# benchlib.py: shared code of braid's benchmarks (bench/s*): network namespaces, link emulators,
# the TUN daemons, iperf3/ping runs, status polling, CPU and RSS, tables, key=value lines, plots.
"""Shared benchmark code.  Topology (bench/README.md):

  slave ns  sw0 198.18.1.2/24 -- ws0 198.18.1.1/24  wan ns  wm0 198.18.2.1/24 -- mw0 198.18.2.2/24  master ns
  braid-slave, links bound to 198.18.1.2   braid-emu i: 198.18.1.1:(9000+i) -> 198.18.2.2:7000   braid-master
  tunnel: slave braid0 198.18.100.2/30 <-> master braid0 198.18.100.1/30

Everything started here is registered and stopped by PID (SIGTERM, then SIGKILL) and the
namespaces are deleted on exit, on SIGINT/SIGTERM/SIGHUP and when the time bound (SIGALRM) hits.
"""
import argparse
import bisect
import datetime
import json
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
# The daemons' control socket (a pathname UNIX socket, reachable from any namespace): what
# `braid-slave json -c CONF` prints. One client for tests and benchmarks.
from braid import mux_status, query  # noqa: E402
TRACES_DIR = os.path.normpath(os.path.join(ROOT, "..", "shared", "traces"))

SLAVE_WAN = "198.18.1.2"     # slave ns, veth to the wan ns
WAN_SLAVE = "198.18.1.1"     # wan ns, side facing the slave (emulators listen here)
WAN_MASTER = "198.18.2.1"    # wan ns, side facing the master
MASTER_WAN = "198.18.2.2"    # master ns: braid-master listens here
MASTER_PORT = 7000
EMU_PORT = 9000              # emulator i listens on WAN_SLAVE:(EMU_PORT + i)
TUN_MASTER = "198.18.100.1"  # tunnel addresses (/30)
TUN_SLAVE = "198.18.100.2"
LINK_MASTER = "198.18.4.%d"  # --tun emulators: the master's address as reached over link i
                             # (10 + i), routed through emulator i's two TUN devices
# Variant names that are not schedulers: the packet path and the TCP lane (tcp_lane = "auto"),
# both through TUN emulators (the lane's TCP connections must cross the link's emulator)
LANE_VARIANTS = ("packet", "lane")
EMU_TUN = False  # set by parse_schedulers when a lane variant is named
IPERF_PORT = 5201
FLOWS = 1                    # parallel TCP flows of each iperf3 test (--flows)
DANTE_PORT = 1080            # a CONNECT-only SOCKS5 proxy in the slave ns (Testbed.start_dante)

VERBOSE = False


def log(msg):
    if VERBOSE:
        sys.stderr.write("[%8.3f] %s\n" % (time.monotonic() % 100000, msg))
        sys.stderr.flush()


# ---------------------------------------------------------------- cleanup registry

class _Registry:
    def __init__(self):
        self.procs = []      # (name, Popen)
        self.netns = []
        self.tmpdirs = []
        self.done = False


REG = _Registry()


def stop_proc(p, grace=3.0):
    """Stop one process we started: SIGTERM, then SIGKILL after grace seconds. Returns its status."""
    if p.poll() is None:
        try:
            p.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


def cleanup():
    """Stop every registered process (by PID), delete our namespaces and temporary files."""
    if REG.done:
        return
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(s, signal.SIG_IGN)
    signal.alarm(0)
    for _, p in reversed(REG.procs):
        try:
            stop_proc(p)
        except Exception:
            pass
    REG.procs = []
    for ns in reversed(REG.netns):
        subprocess.run(["ip", "netns", "del", ns], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    REG.netns = []
    for d in REG.tmpdirs:
        if os.environ.get("BENCH_KEEP"):
            sys.stderr.write("kept %s\n" % d)
        else:
            shutil.rmtree(d, ignore_errors=True)
    REG.done = True


class Timeout(Exception):
    pass


def _on_signal(signum, frame):
    if signum == signal.SIGALRM:
        raise Timeout("time bound reached")
    raise SystemExit(128 + signum)


def install_handlers(max_time):
    import atexit
    atexit.register(cleanup)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(s, _on_signal)
    if max_time > 0:
        signal.alarm(int(max_time))


def spawn(name, argv, logpath, ns=None):
    """Start argv (inside namespace ns) with output to logpath; registered for cleanup.
    `ip netns exec` execs the program, so the Popen's PID is the program's own PID."""
    full = (["ip", "netns", "exec", ns] if ns else []) + list(argv)
    f = open(logpath, "ab")
    p = subprocess.Popen(full, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    f.close()
    REG.procs.append((name, p))
    log("started %s pid %d: %s" % (name, p.pid, " ".join(full)))
    return p


def unregister(p):
    REG.procs = [(n, q) for n, q in REG.procs if q is not p]


def sh(*argv, ns=None, check=True):
    full = (["ip", "netns", "exec", ns] if ns else []) + list(argv)
    r = subprocess.run(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("command failed (%d): %s\n%s" % (r.returncode, " ".join(full),
                                                            r.stderr.strip()))
    return r.stdout


def wait_until(cond, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    raise RuntimeError("timed out after %.0f s waiting for %s" % (timeout, what))


# ---------------------------------------------------------------- emulator control

def emu_cmd(ctl, text, timeout=2.0):
    """One command to a braid-emu control socket (UNIX datagram); returns the reply."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    # a pathname address for the reply: an autobind (abstract) address belongs to this network
    # namespace and the emulator runs in another one
    me = tempfile.mktemp(prefix="emuc-", dir=os.path.dirname(ctl))
    s.bind(me)
    s.settimeout(timeout)
    try:
        s.sendto(text.encode(), ctl)
        reply = s.recv(65536).decode()
    finally:
        s.close()
        os.unlink(me)
    if reply.startswith("error"):
        raise RuntimeError("braid-emu %s: %r: %s" % (ctl, text, reply))
    return json.loads(reply) if text.strip() == "stats" else reply


def proc_cpu_s(pid):
    """utime + stime of a process, in seconds (/proc/PID/stat fields 14 and 15)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    tck = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tck


def proc_hwm_kb(pid):
    """Peak resident set size (VmHWM) of a process, in KiB."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


# ---------------------------------------------------------------- link specifications

def parse_rate(s):
    """'20mbit' -> bit/s."""
    m = re.fullmatch(r"([0-9.]+)\s*(gbit|mbit|kbit|bit)?", s.strip().lower())
    if not m:
        raise ValueError("bad rate %r (e.g. 20mbit, 500kbit)" % s)
    mult = {"gbit": 1e9, "mbit": 1e6, "kbit": 1e3, "bit": 1, None: 1}[m.group(2)]
    return float(m.group(1)) * mult


def parse_ms(s):
    m = re.fullmatch(r"([0-9.]+)\s*(ms|s)?", s.strip().lower())
    if not m:
        raise ValueError("bad time %r (e.g. 20ms)" % s)
    return float(m.group(1)) * (1000 if m.group(2) == "s" else 1)


class Link:
    """One emulated link: a fixed rate or a pair of traces, and an RTT (delay = RTT/2 each way).
    rate_bps None and no traces = unshaped (the emulator relays at once)."""

    def __init__(self, name, rate_bps=None, rtt_ms=0.0, up_trace=None, down_trace=None,
                 extra=""):
        self.name = name
        self.rate_bps = rate_bps
        self.rtt_ms = rtt_ms
        self.up_trace = up_trace
        self.down_trace = down_trace
        self.extra = extra  # more SPEC keys for both directions, e.g. "queue=100ms"
        self.connect_only = False  # a socks5-tcp link through a CONNECT-only proxy (Dante)

    def spec(self, direction):
        parts = []
        trace = self.up_trace if direction == "up" else self.down_trace
        if trace:
            parts.append("trace=%s" % trace)
        elif self.rate_bps:
            parts.append("rate=%d" % int(self.rate_bps))
        if self.rtt_ms:
            parts.append("delay=%gms" % (self.rtt_ms / 2))
        if self.extra:
            parts.append(self.extra)
        return ",".join(parts)

    def label(self):
        if self.up_trace:
            base = os.path.basename(self.up_trace)
            base = re.sub(r"\.up$", "", base)
            return "%s/%gms" % (base[:20], self.rtt_ms)
        if self.rate_bps:
            return "%gM/%gms" % (self.rate_bps / 1e6, self.rtt_ms)
        return "%s(unshaped)" % self.name


def parse_links(text):
    """'20mbit/20ms,10mbit/60ms' -> [Link]."""
    links = []
    for i, item in enumerate(x for x in text.split(",") if x.strip()):
        rate, _, rtt = item.partition("/")
        links.append(Link("l%d" % i, parse_rate(rate), parse_ms(rtt or "0")))
    if not links:
        raise ValueError("no links given")
    return links


# ---------------------------------------------------------------- traces

class Trace:
    """A Mahimahi trace: each line a millisecond with one 1500-byte delivery opportunity;
    repeats shifted by its last timestamp (as braid-emu replays it)."""

    def __init__(self, path):
        self.path = path
        ts = []
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                ts.append(int(line))
        if not ts or ts[-1] <= 0:
            raise ValueError("%s: not a trace (needs increasing ms timestamps, last > 0)" % path)
        self.ts = ts
        self.period = ts[-1]

    def count(self, a_ms, b_ms):
        """Delivery opportunities in [a_ms, b_ms) after the trace's start."""
        if b_ms <= a_ms:
            return 0
        n = 0
        rep = int(a_ms // self.period)
        while rep * self.period < b_ms:
            off = rep * self.period
            lo = bisect.bisect_left(self.ts, a_ms - off)
            hi = bisect.bisect_left(self.ts, b_ms - off)
            n += hi - lo
            rep += 1
        return n

    def mbit(self, a_s, b_s):
        """Mean capacity in Mbit/s over [a_s, b_s) (1500 bytes per opportunity)."""
        return self.count(a_s * 1000, b_s * 1000) * 1500 * 8 / max(b_s - a_s, 1e-9) / 1e6

    def mean_mbit(self):
        return len(self.ts) * 1500 * 8 / (self.period / 1000) / 1e6


# ---------------------------------------------------------------- testbed

class Testbed:
    """Three namespaces (slave, wan, master), emulators in the wan ns, braid at both ends."""

    def __init__(self, build, tools, workdir, routed=False, cc="cubic"):
        self.build = build
        self.emu_bin = os.path.join(tools, "braid-emu")
        self.tmp = tempfile.mkdtemp(prefix="brb-%d-" % os.getpid())
        REG.tmpdirs.append(self.tmp)
        self.workdir = workdir  # logs of failed runs are copied there
        tag = "brb-%d" % os.getpid()
        self.S, self.W, self.M = tag + "-s", tag + "-w", tag + "-m"
        self.routed = routed
        self.cc = cc  # TCP congestion control of the iperf3 flows
        self.emus = []         # (Link, Popen, ctl path)
        self.trace_origin = {}  # emulator index -> monotonic time its traces restarted at
        self.master = self.slave = None
        self.key = None
        self.nlinks = 0
        self.direct = False
        self.scheduler = None  # mux.scheduler of both daemons (None: not set, their default)
        self.dante = None  # a CONNECT-only SOCKS5 proxy in the slave ns (start_dante)
        self.setup()

    # -- namespaces
    def setup(self):
        for ns in (self.S, self.W, self.M):
            sh("ip", "netns", "add", ns)
            REG.netns.append(ns)
            sh("ip", "link", "set", "lo", "up", ns=ns)
        sh("ip", "-n", self.S, "link", "add", "sw0", "type", "veth", "peer", "name", "ws0",
           "netns", self.W)
        sh("ip", "-n", self.W, "link", "add", "wm0", "type", "veth", "peer", "name", "mw0",
           "netns", self.M)
        for ns, dev, addr in ((self.S, "sw0", SLAVE_WAN), (self.W, "ws0", WAN_SLAVE),
                              (self.W, "wm0", WAN_MASTER), (self.M, "mw0", MASTER_WAN)):
            sh("ip", "-n", ns, "addr", "add", addr + "/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        if EMU_TUN:
            # emulators between TUN devices: the wan ns forwards; policy routes per link below
            for k in ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
                      "net.ipv4.conf.default.rp_filter=0"):
                sh("sysctl", "-qw", k, ns=self.W)
            for ns, net, via in ((self.W, "198.18.4.0/24", MASTER_WAN),
                                 (self.S, "198.18.4.0/24", WAN_SLAVE),
                                 (self.M, "198.18.1.0/24", WAN_MASTER)):
                sh("ip", "-n", ns, "route", "replace", net, "via", via)
        if self.routed:
            # direct path (no emulator): the wan ns routes between the two veths
            sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=self.W)
            sh("ip", "-n", self.S, "route", "replace", "198.18.2.0/24", "via", WAN_SLAVE)
            sh("ip", "-n", self.M, "route", "replace", "198.18.1.0/24", "via", WAN_MASTER)

    def path(self, name):
        return os.path.join(self.tmp, name)

    # -- emulators
    def start_tun_emus(self, links):
        """Emulator i between TUN devices ea<i> and eb<i> in the wan ns: what the slave sends to
        LINK_MASTER % (10 + i) is routed into ea<i> and comes out of eb<i> shaped (up), the
        master's answers from that address go into eb<i> and out of ea<i> (down): every IP
        packet of the link (braid's UDP and the lane's TCP) crosses the same shaper."""
        self.spawn_emus(links, lambda i: ["--tun", "ea%d,eb%d" % (i, i)])
        for i in range(len(links)):
            addr = LINK_MASTER % (10 + i)
            for dev in ("ea%d" % i, "eb%d" % i):
                sh("sysctl", "-qw", "net.ipv4.conf.%s.rp_filter=0" % dev, ns=self.W)
                sh("ip", "-n", self.W, "link", "set", dev, "up")
            for prio, sel, dev in ((100 + i, ["iif", "ws0", "to", addr], "ea%d" % i),
                                   (200 + i, ["iif", "wm0", "from", addr], "eb%d" % i)):
                sh("ip", "-n", self.W, "rule", "del", "priority", str(prio), check=False)
                sh("ip", "-n", self.W, "route", "replace", "default", "dev", dev, "table",
                   str(prio))
                sh("ip", "-n", self.W, "rule", "add", "priority", str(prio), *sel, "table",
                   str(prio))
            sh("ip", "-n", self.M, "addr", "replace", addr + "/32", "dev", "lo")

    def start_emus(self, links):
        self.stop_emus()
        if EMU_TUN:
            self.start_tun_emus(links)
            return
        self.spawn_emus(links, lambda i: ["--listen", "%s:%d" % (WAN_SLAVE, EMU_PORT + i),
                                          "--target", "%s:%d" % (MASTER_WAN, MASTER_PORT)])

    def spawn_emus(self, links, where):
        """Emulator i for link i, where(i) its placement options; wait for each to be ready."""
        for i, l in enumerate(links):
            ctl = self.path("emu%d.ctl" % i)
            argv = [self.emu_bin] + where(i) + [
                "--control", ctl, "--stats", self.path("emu%d.stats.json" % i), "--quiet"]
            for d in ("up", "down"):
                spec = l.spec(d)
                if spec:
                    argv += ["--" + d, spec]
            p = spawn("emu%d" % i, argv, self.path("emu%d.log" % i), ns=self.W)
            self.emus.append((l, p, ctl))
        for i, (l, p, ctl) in enumerate(self.emus):
            wait_until(lambda: os.path.exists(ctl) or p.poll() is not None, 5,
                       "emulator %d control socket" % i)
            if p.poll() is not None:
                raise RuntimeError("braid-emu %d exited: %s" % (i, self.tail("emu%d.log" % i)))

    def start_extra_emu(self, name, link, listen_port, target_port):
        """One more emulator (not one of the links), e.g. for a reference measurement."""
        ctl = self.path(name + ".ctl")
        argv = [self.emu_bin, "--listen", "%s:%d" % (WAN_SLAVE, listen_port),
                "--target", "%s:%d" % (MASTER_WAN, target_port), "--control", ctl, "--quiet"]
        for d in ("up", "down"):
            s = link.spec(d)
            if s:
                argv += ["--" + d, s]
        p = spawn(name, argv, self.path(name + ".log"), ns=self.W)
        wait_until(lambda: os.path.exists(ctl) or p.poll() is not None, 5, name)
        if p.poll() is not None:
            raise RuntimeError("%s exited: %s" % (name, self.tail(name + ".log")))
        return p

    def restart_traces(self):
        """Restart every trace of every emulator at trace time 0 now: each flow (bonded or one
        link alone, upload or download) then meets the same part of the traces. Without it a
        flow started wherever braid's start-up left the traces: bonded uploads met about 5 %
        less capacity on the best trace than that trace alone did (S3, S7-traces)."""
        for i, (l, _, ctl) in enumerate(self.emus):
            t = time.monotonic()
            done = False
            for d in ("up", "down"):
                trace = l.up_trace if d == "up" else l.down_trace
                if trace:
                    emu_cmd(ctl, "set %s trace=%s" % (d, trace))
                    done = True
            if done:
                self.trace_origin[i] = (t + time.monotonic()) / 2

    def emu_start_time(self, i):
        """Monotonic time of emulator i's trace time 0: its start, or the last restart_traces."""
        if i in self.trace_origin:
            return self.trace_origin[i]
        t = time.monotonic()
        st = emu_cmd(self.emus[i][2], "stats")
        t2 = time.monotonic()
        return (t + t2) / 2 - st["uptime_ms"] / 1000.0

    def stop_emus(self):
        self.trace_origin = {}
        for _, p, _ in self.emus:
            stop_proc(p)
            unregister(p)
        self.emus = []

    def start_dante(self):
        """Dante on 127.0.0.1:DANTE_PORT in the slave ns, CONNECT only (UDP ASSOCIATE refused),
        like a phone's proxy app: a socks5-tcp link reaches the master through it (and so
        through the link's emulator, routed by the master's address like any other link)."""
        if self.dante and self.dante.poll() is None:
            return
        exe = next((p for p in ("/usr/sbin/danted", shutil.which("danted") or "") if p and
                    os.path.exists(p)), None)
        if not exe:
            raise RuntimeError("danted not found: apt-get install dante-server")
        conf = self.path("danted.conf")
        with open(conf, "w") as f:
            f.write("logoutput: stderr\ninternal: 127.0.0.1 port = %d\nexternal: %s\n"
                    "clientmethod: none\nsocksmethod: none\nuser.privileged: root\n"
                    "user.unprivileged: nobody\n"
                    "client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }\n"
                    "socks pass { from: 127.0.0.0/8 to: 198.18.0.0/15 command: connect }\n"
                    "socks block { from: 0.0.0.0/0 to: 0.0.0.0/0 }\n" % (DANTE_PORT, SLAVE_WAN))
        self.dante = spawn("danted", [exe, "-f", conf, "-p", self.path("danted.pid"), "-N", "1"],
                           self.path("danted.log"), ns=self.S)
        wait_until(lambda: _ss_listening(self.S, "127.0.0.1", DANTE_PORT) or
                   self.dante.poll() is not None, 10, "danted listening")
        if self.dante.poll() is not None:
            raise RuntimeError("danted exited: %s" % self.tail("danted.log"))

    # -- braid
    def genkey(self):
        if not self.key:
            self.key = subprocess.run([self.program("braid-master"), "genkey"],
                                      capture_output=True, text=True, check=True).stdout.strip()
        return self.key

    def key_settings(self):
        """The key settings of (master.conf, slave.conf) for this build: key pairs (wire
        version 3 on, which has `genpsk`), or one shared key for an older build run beside."""
        prog = self.program("braid-master")
        new = subprocess.run([prog, "genpsk"], capture_output=True, text=True).returncode == 0
        if not new:
            k = 'key = "%s";\n' % self.genkey()
            return k, k

        def run(*args, stdin=None):
            return subprocess.run([prog] + list(args), input=stdin, capture_output=True,
                                  text=True, check=True).stdout.strip()
        mpriv, spriv, psk = run("genkey"), run("genkey"), run("genpsk")
        for name, key in (("master.key", mpriv), ("slave.key", spriv)):
            fd = os.open(self.path(name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(key + "\n")
        mpub, spub = run("pubkey", stdin=mpriv + "\n"), run("pubkey", stdin=spriv + "\n")
        return ('private_key_file = "%s";\nsites = ( { public_key = "%s"; psk = "%s"; } );\n'
                % (self.path("master.key"), spub, psk),
                'private_key_file = "%s";\nmaster_public_key = "%s";\npsk = "%s";\n'
                % (self.path("slave.key"), mpub, psk))

    def program(self, name):
        """Path of braid-master or braid-slave: from --old-build for an "old" variant."""
        return os.path.join(variant_build(self.scheduler, self.build), name)

    def start_braid(self, link_ids, direct=False, names=None, mux=""):
        """Start braid-master and braid-slave; the slave has one link per id in link_ids, link i
        through emulator i (direct: straight to the master through the routed wan ns).
        `mux` goes into `mux = { ... };` of both configs, after self.scheduler's setting."""
        self.stop_braid()
        mux = " ".join(x for x in (mux_setting(self.scheduler), mux) if x)
        mkeys, skeys = self.key_settings()
        self.direct = direct
        self.nlinks = len(link_ids)
        self.master_ctl = self.path("master.sock")
        self.slave_ctl = self.path("slave.sock")
        top = top_setting(self.scheduler)
        with open(self.path("master.conf"), "w") as f:
            f.write('%slisten = "%s:%d";\n'
                    'tunnel = { name = "braid0"; address = "%s/30"; };\n'
                    'control_socket = "%s";\nlog_level = "info";\n%s\n%s'
                    % (mkeys, "0.0.0.0" if EMU_TUN else MASTER_WAN, MASTER_PORT, TUN_MASTER,
                       self.master_ctl, "mux = { %s };" % mux if mux else "", top))
        links = []
        for i in link_ids:
            target = ("%s:%d" % (MASTER_WAN, MASTER_PORT) if direct
                      else "%s:%d" % (LINK_MASTER % (10 + i), MASTER_PORT) if EMU_TUN
                      else "%s:%d" % (WAN_SLAVE, EMU_PORT + i))
            nm = names[i] if names else "l%d" % i
            if i < len(self.emus) and self.emus[i][0].connect_only:
                self.start_dante()
                links.append('{ name = "%s"; id = %d; type = "socks5-tcp"; proxy = "127.0.0.1:%d";'
                             ' master = "%s"; }' % (nm, i, DANTE_PORT, target))
                continue
            links.append('{ name = "%s"; id = %d; bind = "%s"; master = "%s"; }'
                         % (nm, i, SLAVE_WAN, target))
        with open(self.path("slave.conf"), "w") as f:
            f.write('%smaster = "%s:%d";\nlinks = (\n  %s\n);\n'
                    'tunnel = { name = "braid0"; address = "%s/30"; };\n'
                    'control_socket = "%s";\nlog_level = "info";\n%s\n%s'
                    % (skeys, MASTER_WAN, MASTER_PORT, ",\n  ".join(links), TUN_SLAVE,
                       self.slave_ctl, "mux = { %s };" % mux if mux else "", top))
        for who in ("master", "slave"):
            with open(self.path(who + ".conf")) as f:
                log("%s.conf:\n%s" % (who, re.sub(r'(key|psk) = "[^"]*"', r'\1 = "..."', f.read())))
        for p in (self.master_ctl, self.slave_ctl):
            if os.path.exists(p):
                os.unlink(p)
        self.master = spawn("braid-master", [self.program("braid-master"), "-c",
                                             self.path("master.conf")],
                            self.path("master.log"), ns=self.M)
        wait_until(lambda: os.path.exists(self.master_ctl) or self.master.poll() is not None,
                   10, "braid-master control socket")
        self.slave = spawn("braid-slave", [self.program("braid-slave"), "-c",
                                           self.path("slave.conf")],
                           self.path("slave.log"), ns=self.S)
        n = len(link_ids)

        def up():
            for who in ("master", "slave"):
                p = self.master if who == "master" else self.slave
                if p.poll() is not None:
                    raise RuntimeError("braid-%s exited (%s): %s" % (who, p.returncode,
                                                                     self.tail(who + ".log")))
                try:
                    full = self.status(who)
                    st = mux_status(full)
                except (OSError, ValueError):
                    return False
                if not st["session"] or st["links_up"] < n:
                    return False
                # the TCP lane: every link's connection too (else the first flows would take
                # the packet path: the slave terminates TCP once two link connections are up)
                if (variant_sched(self.scheduler) == "lane"
                        and len(lane_peer(full).get("links", [])) < n):
                    return False
            return True
        try:
            wait_until(up, 15, "session and %d links (and their lane connections) up on both "
                       "ends" % n, 0.1)
        except RuntimeError as e:
            raise RuntimeError("%s\n--- master log:\n%s\n--- slave log:\n%s"
                               % (e, self.tail("master.log"), self.tail("slave.log")))

    def status(self, who):
        return query(self.master_ctl if who == "master" else self.slave_ctl)

    def mux(self, who):
        """The multiplexer's status (the master's: its first site's; older builds: "mux")."""
        return mux_status(self.status(who))

    def stop_braid(self):
        rcs = {}
        for who in ("slave", "master"):
            p = getattr(self, who)
            if p is not None:
                rcs[who] = stop_proc(p)
                unregister(p)
                setattr(self, who, None)
        for who, rc in rcs.items():
            if rc not in (0, -signal.SIGTERM):
                sys.stderr.write("warning: braid-%s exited with status %s:\n%s\n"
                                 % (who, rc, self.tail(who + ".log")))
        return rcs

    def tail(self, name, n=30):
        try:
            with open(self.path(name), errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"

    def save_logs(self, dest):
        os.makedirs(dest, exist_ok=True)
        for f in os.listdir(self.tmp):
            if f.endswith((".log", ".conf", ".json")):
                shutil.copy(self.path(f), os.path.join(dest, f))

    def down(self):
        self.stop_braid()
        self.stop_emus()


# ---------------------------------------------------------------- status poller

def lane_peer(full):
    """The TCP lane's peer counters in a daemon's status ({} without the lane)."""
    if "sites" in full:
        return full["sites"][0].get("lane", {}) if full["sites"] else {}
    return full.get("lane", {}).get("peer", {})


def lane_counters(full):
    """The lane's numeric counters (stalls, bytes sent again, ...)."""
    return {k: v for k, v in lane_peer(full).items() if isinstance(v, (int, float))}


def lane_link_tx(full):
    """{link id: bytes the lane's connection on it sent}."""
    return {l["id"]: l.get("tx_bytes", 0) for l in lane_peer(full).get("links", [])}


class Poller(threading.Thread):
    """Polls both daemons' JSON status every `interval` s; keeps per-link counters."""

    FIELDS = ("up", "tx_data", "tx_bytes", "rx_bytes", "rx_data", "srtt_ms", "est_Bps", "loss",
              "inflight_bytes", "queued_bytes", "owd_queue_ms", "rx_late")

    def __init__(self, tb, interval=0.1):
        super().__init__(daemon=True)
        self.tb = tb
        self.interval = interval
        self.samples = []  # (t, who, {link id: {field: value}})
        self.stop_ev = threading.Event()
        self.errors = 0
        self.first, self.last = {}, {}  # who: {"counters": ..., "reorder": ...} of the run

    def run(self):
        nxt = time.monotonic()
        while not self.stop_ev.is_set():
            for who in ("slave", "master"):
                try:
                    full = self.tb.status(who)
                    st = mux_status(full)
                except Exception:
                    self.errors += 1
                    continue
                t = time.monotonic()
                snap = {"counters": st.get("counters", {}), "reorder": st.get("reorder", {}),
                        "lane": lane_counters(full)}
                snap["lane_links"] = lane_link_tx(full)
                self.first.setdefault(who, snap)
                self.last[who] = snap
                links = {l["id"]: {k: l.get(k) for k in self.FIELDS} for l in st["links"]}
                for i, v in snap["lane_links"].items():  # the lane's link connection's bytes
                    if i in links:
                        links[i]["lane_tx"] = v
                self.samples.append((t, who, links))
            nxt += self.interval
            d = nxt - time.monotonic()
            if d > 0:
                self.stop_ev.wait(d)
            else:
                nxt = time.monotonic()

    def stop(self):
        self.stop_ev.set()
        self.join(5)

    def counter_deltas(self):
        """{who: {counter: increase over the poll}} for the mux counters and reorder stats."""
        out = {}
        for who, last in self.last.items():
            first = self.first.get(who, last)
            d = {}
            for group in ("counters", "reorder", "lane"):
                for k, v in last.get(group, {}).items():
                    if isinstance(v, (int, float)) and k not in ("timeout_ms", "held"):
                        d[k] = v - first[group].get(k, 0)
            out[who] = d
        return out

    def lane_link_bytes(self, who):
        """{lane link id: bytes its connection sent over the poll} (the TCP lane's)."""
        first, last = self.first.get(who, {}), self.last.get(who, {})
        a = first.get("lane_links", {})
        return {i: v - a.get(i, 0) for i, v in last.get("lane_links", {}).items()}

    def series(self, who, field, link_id):
        return [(t, l[link_id][field]) for t, w, l in self.samples
                if w == who and link_id in l and l[link_id].get(field) is not None]

    def rates(self, who, field, link_id):
        """[(t_mid, bit/s)] from a byte counter."""
        s = self.series(who, field, link_id)
        out = []
        for (t1, v1), (t2, v2) in zip(s, s[1:]):
            if t2 > t1:
                out.append(((t1 + t2) / 2, (v2 - v1) * 8 / (t2 - t1)))
        return out

    def delta(self, who, field, link_id, t0, t1):
        """Counter increase between the samples nearest t0 and t1."""
        s = self.series(who, field, link_id)
        if not s:
            return 0
        a = min(s, key=lambda x: abs(x[0] - t0))[1]
        b = min(s, key=lambda x: abs(x[0] - t1))[1]
        return b - a

    def write_csv(self, path, t0):
        with open(path, "w") as f:
            f.write("t_s,who,link," + ",".join(self.FIELDS) + "\n")
            for t, who, links in self.samples:
                for lid in sorted(links):
                    l = links[lid]
                    f.write("%.3f,%s,%d,%s\n" % (t - t0, who, lid, ",".join(
                        str(int(l[k])) if isinstance(l[k], bool) else str(l[k])
                        for k in self.FIELDS)))


# ---------------------------------------------------------------- iperf3

class Flow:
    """Result of one iperf3 run."""

    def __init__(self):
        self.ok = False
        self.error = None
        self.t0 = None          # monotonic time the client started
        self.t0_wall = None     # the same as wall-clock time
        self.goodput_bps = 0.0  # received, whole test
        self.seconds = 0.0
        self.bytes = 0
        self.intervals = []     # receiver side: (start_s, end_s, bytes)
        self.cpu = {}           # who -> CPU seconds over the run
        self.udp = None         # dict for UDP runs
        self.raw = None


def _ss_listening(ns, addr, port):
    out = sh("ss", "-ltnH", ns=ns, check=False)
    return ("%s:%d" % (addr, port)) in out


def iperf(tb, duration, reverse=False, server=TUN_MASTER, udp_size=None, interval=0.1,
          on_start=None, tag="iperf", extra=(), udp_rate="0"):
    """One iperf3 test from the slave ns (client) to a server in the master ns at `server`:
    upload (slave -> master) or download (reverse). TCP, or UDP with udp_size-byte payloads at
    udp_rate (iperf3 -b; "0": as fast as the sender can). CPU seconds of the daemons over the
    run go to Flow.cpu."""
    fl = Flow()
    srv_log = tb.path(tag + "-server.json")
    cli_log = tb.path(tag + "-client.json")
    for p in (srv_log, cli_log):
        if os.path.exists(p):
            os.unlink(p)
    srv = spawn("iperf3-server", ["iperf3", "-s", "-1", "-B", server, "-p", str(IPERF_PORT),
                                  "-i", str(interval), "-J"], srv_log, ns=tb.M)
    try:
        wait_until(lambda: _ss_listening(tb.M, server, IPERF_PORT) or srv.poll() is not None,
                   5, "iperf3 server")
        argv = ["iperf3", "-c", server, "-p", str(IPERF_PORT), "-t", str(duration),
                "-i", str(interval), "-J", "--get-server-output", "--connect-timeout", "5000"]
        if reverse:
            argv.append("-R")
        if tb.cc and not udp_size:
            # per socket (iperf3 -C, applied by the sender, client or server): a namespace's
            # default may only be one of the host's tcp_allowed_congestion_control
            argv += ["-C", tb.cc]
        if udp_size:
            argv += ["-u", "-b", str(udp_rate), "-l", str(udp_size)]
        elif FLOWS > 1:
            argv += ["-P", str(FLOWS)]
        argv += list(extra)
        procs = {"master": tb.master, "slave": tb.slave}
        cpu0 = {w: proc_cpu_s(p.pid) for w, p in procs.items() if p is not None}
        fl.t0 = time.monotonic()
        fl.t0_wall = time.time()
        cli = spawn("iperf3-client", argv, cli_log, ns=tb.S)
        if on_start:
            on_start(fl.t0)
        try:
            cli.wait(duration + 20)
        except subprocess.TimeoutExpired:
            fl.error = "iperf3 client did not finish within %d s" % (duration + 20)
        stop_proc(cli)
        unregister(cli)
        cpu1 = {w: proc_cpu_s(p.pid) for w, p in procs.items() if p is not None}
        fl.cpu = {w: cpu1[w] - cpu0[w] for w in cpu0 if cpu0[w] is not None and cpu1[w] is not None}
    finally:
        stop_proc(srv, 2)
        unregister(srv)
    try:
        with open(cli_log) as f:
            text = f.read()
        # iperf3 may print a warning line before its JSON (e.g. UDP block size > TCP MSS)
        j = json.loads(text[text.index("{"):] if "{" in text else text)
    except (OSError, ValueError) as e:
        fl.error = fl.error or "iperf3 output unreadable: %s" % e
        return fl
    fl.raw = j
    if "error" in j:
        fl.error = fl.error or "iperf3: %s" % j["error"]
    end = j.get("end", {})
    rx = end.get("sum_received") or {}
    fl.seconds = rx.get("seconds", 0.0) or 0.0
    fl.bytes = rx.get("bytes", 0) or 0
    fl.goodput_bps = rx.get("bits_per_second", 0.0) or 0.0
    side = j if reverse else (j.get("server_output_json") or {})
    for iv in side.get("intervals", []):
        s = iv["sum"]
        fl.intervals.append((s["start"], s["end"], s["bytes"]))
    if udp_size:
        sent = end.get("sum_sent") or end.get("sum") or {}
        fl.udp = {
            "size": udp_size,
            "sent_packets": sent.get("packets", 0),
            "rx_packets": fl.bytes // udp_size,
            "lost_percent": rx.get("lost_percent", 0.0),
            "seconds": fl.seconds,
        }
        fl.udp["rx_pps"] = fl.udp["rx_packets"] / fl.seconds if fl.seconds else 0.0
        fl.udp["tx_pps"] = (fl.udp["sent_packets"] / sent["seconds"]
                            if sent.get("seconds") else 0.0)
    fl.ok = fl.error is None and fl.bytes > 0
    return fl


def longest_stall(intervals, min_bytes=1500):
    """Longest run of receiver intervals with less than min_bytes (after the first data and
    excluding the final partial interval): (seconds, start_s)."""
    ivs = [iv for iv in intervals if iv[1] - iv[0] > 0.05]
    started = False
    best = (0.0, None)
    run_start = None
    run_len = 0.0
    for a, b, n in ivs:
        if not started:
            if n >= min_bytes:
                started = True
            continue
        if n < min_bytes:
            if run_start is None:
                run_start, run_len = a, 0.0
            run_len += b - a
            if run_len > best[0]:
                best = (run_len, run_start)
        else:
            run_start = None
    return best


# ---------------------------------------------------------------- ping / UDP echo

def ping(tb, target, count, interval=0.1, ns=None, times=None):
    """ping from the slave ns; returns a list of RTTs in ms and the number sent. With a list
    `times`, (wall-clock time, RTT ms) of each reply are appended to it."""
    out = sh("ping", "-n", "-D", "-i", str(interval), "-c", str(count), "-W", "2", target,
             ns=ns or tb.S, check=False)
    rtts = []
    for m in re.finditer(r"^\[([0-9.]+)\].*time=([0-9.]+) ms", out, re.M):
        rtts.append(float(m.group(2)))
        if times is not None:
            times.append((float(m.group(1)), float(m.group(2))))
    return rtts, count


def udp_echo_server(addr, port, seconds):
    """Echo UDP datagrams back for `seconds` (run inside a namespace by `benchlib.py echo`)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        s.settimeout(max(0.01, end - time.monotonic()))
        try:
            data, peer = s.recvfrom(2048)
        except socket.timeout:
            continue
        s.sendto(data, peer)


def udp_ping(addr, port, count, interval, wait=2.0):
    """Send count numbered datagrams every interval s; print the RTTs (ms) as JSON."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((addr, port))
    s.setblocking(False)
    sent = {}
    rtts = []
    t_next = time.monotonic()
    i = 0
    end = None
    while True:
        now = time.monotonic()
        if i < count and now >= t_next:
            sent[i] = now
            s.send(struct.pack("!Iq", i, 0) + b"x" * 52)
            i += 1
            t_next += interval
            if i == count:
                end = now + wait
        if end is not None and (now >= end or len(rtts) == count):
            break
        try:
            data = s.recv(2048)
            seq = struct.unpack("!I", data[:4])[0]
            if seq in sent:
                rtts.append((time.monotonic() - sent.pop(seq)) * 1000)
        except BlockingIOError:
            time.sleep(0.0005)
    print(json.dumps({"sent": count, "rtts": rtts}))


# ---------------------------------------------------------------- statistics and output

def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return None
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def fmt(x, nd=2):
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    return ("%." + str(nd) + "f") % x


def mrange(xs, nd=2):
    """'median [min-max]' over the repeats."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    if len(xs) == 1:
        return fmt(xs[0], nd)
    return "%s [%s-%s]" % (fmt(median(xs), nd), fmt(min(xs), nd), fmt(max(xs), nd))


def table(title, header, rows):
    """Print a readable table: header is a list of column names; rows lists of strings."""
    cols = [header] + rows
    w = [max(len(str(r[i])) for r in cols) for i in range(len(header))]
    print(title)
    line = "  " + "  ".join(str(h).ljust(w[i]) if i == 0 else str(h).rjust(w[i])
                            for i, h in enumerate(header))
    print(line)
    print("  " + "-" * (len(line) - 2))
    for r in rows:
        print("  " + "  ".join(str(c).ljust(w[i]) if i == 0 else str(c).rjust(w[i])
                               for i, c in enumerate(r)))
    sys.stdout.flush()


def kv_line(name, pairs):
    """The one machine-readable line every script ends with."""
    out = [name]
    for k, v in pairs:
        if v is None:
            v = "na"
        elif isinstance(v, bool):
            v = int(v)
        elif isinstance(v, float):
            v = ("%.3f" % v).rstrip("0").rstrip(".") if abs(v) < 1000 else "%.0f" % v
        out.append("%s=%s" % (k, v))
    print(" ".join(out))
    sys.stdout.flush()


# ---------------------------------------------------------------- plots

def _bins(points, t_lo, t_hi, width):
    """Average (t, value) points into bins of `width` s: [(t_center, mean)]."""
    n = max(1, int(round((t_hi - t_lo) / width)))
    acc = [[0.0, 0] for _ in range(n)]
    for t, v in points:
        k = int((t - t_lo) / width)
        if 0 <= k < n:
            acc[k][0] += v
            acc[k][1] += 1
    return [(t_lo + (k + 0.5) * width, a / c if c else None) for k, (a, c) in enumerate(acc)]


def test_offset(flow, poller, who, link_ids, frac=0.3):
    """Seconds from the iperf3 client's start (Flow.t0) to its test's time 0 (the connection
    setup before the test takes a few tunnel RTTs): the shift that makes the receiver's
    cumulative bytes reach `frac` of their total at the same moment as the links' bytes."""
    if not flow.intervals or not flow.bytes:
        return 0.0
    t_end = flow.t0 + flow.seconds + 0.5
    pts = []
    for lid in link_ids:
        s = [(t, v) for t, v in poller.series(who, "rx_bytes", lid) if t <= t_end]
        pts.append(s)
    if not pts or any(len(s) < 3 for s in pts):
        return 0.0
    times = [t for t, _ in pts[0]]
    cum = []
    for k in range(len(times)):
        cum.append(sum(s[min(k, len(s) - 1)][1] - s[0][1] for s in pts))
    if cum[-1] <= 0:
        return 0.0
    t_links = next(times[k] for k in range(len(cum)) if cum[k] >= frac * cum[-1]) - flow.t0
    acc = 0
    total = sum(n for _, _, n in flow.intervals)
    t_iperf = None
    for a, b, n in flow.intervals:
        if acc + n >= frac * total:
            t_iperf = a + (b - a) * ((frac * total - acc) / n if n else 0)
            break
        acc += n
    if t_iperf is None:
        return 0.0
    return max(0.0, min(5.0, t_links - t_iperf))


def write_plot_data(prefix, flow, poller, who, link_ids, t_hi, width=0.5, capacity=None):
    """Two CSVs for plot.gnuplot: PREFIX-links.csv (t, per-link Mbit/s received by `who`,
    total, optional per-link capacity) and PREFIX-goodput.csv (t, iperf3 goodput Mbit/s).
    Time 0 is the iperf3 client's start (the goodput is shifted by test_offset)."""
    t0 = flow.t0
    cols = []
    for lid in link_ids:
        pts = [(t - t0, v / 1e6) for t, v in poller.rates(who, "rx_bytes", lid)]
        cols.append(_bins(pts, 0, t_hi, width))
    with open(prefix + "-links.csv", "w") as f:
        f.write("# t_s," + ",".join("l%d_mbit" % l for l in link_ids) + ",total_mbit" +
                ("," + ",".join("cap%d_mbit" % l for l in link_ids) if capacity else "") + "\n")
        for k in range(len(cols[0]) if cols else 0):
            vals = [c[k][1] for c in cols]
            if any(v is None for v in vals):
                continue
            row = [cols[0][k][0]] + vals + [sum(vals)]
            if capacity:
                tc = cols[0][k][0]
                row += [cap(tc - width / 2, tc + width / 2) for cap in capacity]
            f.write(",".join("%.3f" % v for v in row) + "\n")
    off = test_offset(flow, poller, who, link_ids)
    pts = [(off + (a + b) / 2, n * 8 / (b - a) / 1e6) for a, b, n in flow.intervals
           if b - a > 0.05]
    with open(prefix + "-goodput.csv", "w") as f:
        f.write("# t_s,goodput_mbit\n")
        for t, v in _bins(pts, 0, t_hi, width):
            if v is not None:
                f.write("%.3f,%.3f\n" % (t, v))


def plot(prefix, png, title, names, shade=None, capacity=False, ymax=None, rtt=None):
    """Render PREFIX-*.csv with bench/plot.gnuplot into png. Returns True if written."""
    if not shutil.which("gnuplot"):
        sys.stderr.write("warning: gnuplot not installed, no plot (apt-get install gnuplot-nox)\n")
        return False
    x0, x1 = shade if shade else (-1, -1)
    args = ("links='%s'; goodput='%s'; out='%s'; ttl='%s'; nl=%d; names='%s'; x0=%g; x1=%g; "
            "cap=%d; ymax=%g" % (prefix + "-links.csv", prefix + "-goodput.csv", png,
                                 title.replace("'", ""), len(names), " ".join(names), x0, x1,
                                 1 if capacity else 0, ymax or 0))
    if rtt:
        args += "; rtt='%s'" % rtt
    r = subprocess.run(["gnuplot", "-e", args, os.path.join(HERE, "plot.gnuplot")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write("warning: gnuplot failed: %s\n" % r.stderr.strip())
        return False
    return True


# ---------------------------------------------------------------- command line

def common_args(desc, duration, repeat, scenario):
    ap = argparse.ArgumentParser(description=desc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=duration,
                    help="seconds per measured flow (default %(default)s)")
    ap.add_argument("--repeat", type=int, default=repeat,
                    help="repetitions; the tables show the median and [min-max] "
                         "(default %(default)s)")
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "bench"),
                    help="output directory; results go to OUT/%s/ (default %%(default)s)"
                    % scenario)
    ap.add_argument("--plot", action="store_true",
                    help="write PNG plots of per-link and total throughput (gnuplot)")
    ap.add_argument("--build", default=os.environ.get("BRAID_TUN_BUILD",
                                                      os.path.join(ROOT, "build")),
                    help="directory of the TUN build's braid-master and braid-slave "
                         "(default %(default)s)")
    ap.add_argument("--tools", default=os.path.join(ROOT, "build", "tools"),
                    help="directory of braid-emu (default %(default)s)")
    ap.add_argument("--max-time", type=float, default=0,
                    help="hard time bound in seconds; everything is stopped and cleaned up "
                         "when it is reached (default: computed from duration and repeats)")
    ap.add_argument("--flows", type=int, default=1,
                    help="parallel TCP flows in each measured transfer (iperf3 -P); goodput is "
                         "their sum (default %(default)s)")
    ap.add_argument("--cc", default="cubic",
                    help="TCP congestion control of the iperf3 flows (iperf3 -C; default "
                         "%(default)s, Linux's default)")
    ap.add_argument("--scheduler", default="",
                    help="comma-separated mux schedulers (mux.scheduler of both daemons, e.g. "
                         "weighted,earliest); each repeat runs each of them in turn and the "
                         "results are reported per scheduler (default: none set, the daemons' "
                         "default)")
    ap.add_argument("--old-build", default="",
                    help="directory of another TUN build (e.g. the commit before a data-path "
                         "change): each scheduler also runs with its programs, in the same "
                         "repeats, reported as old-NAME (old: the default scheduler)")
    ap.add_argument("--variant", action="append", default=[], metavar="TAG=DIR",
                    help="like --old-build, for any number of builds: each scheduler also runs "
                         "with the programs of DIR, reported as TAG-NAME (TAG: lower-case "
                         "letters and digits); repeatable")
    ap.add_argument("--verbose", action="store_true",
                    help="log what is started and the daemons' configs")
    return ap


BUILDS = {}  # --old-build and --variant: tag -> directory of the programs of its variants


def parse_variants(old_build, variants, scenario="bench"):
    """{tag: dir} from --old-build DIR (tag old) and --variant TAG=DIR options."""
    out = {"old": old_build} if old_build else {}
    for v in variants or []:
        tag, sep, d = v.partition("=")
        if not sep or not d or not re.fullmatch(r"[a-z][a-z0-9]{0,15}", tag) or tag in out:
            sys.exit("%s: --variant %r: expected TAG=DIR with a new tag of lower-case letters "
                     "and digits" % (scenario, v))
        out[tag] = d
    return out


def parse_schedulers(text, scenario="bench", old_build="", variants=None):
    """'--scheduler weighted,earliest' -> ['weighted', 'earliest']; '' -> [None] (not set).
    With old_build (or variants), each is preceded by its variants: ['old-weighted',
    'weighted', ...] (['old', None] without names)."""
    global BUILDS, EMU_TUN
    BUILDS = parse_variants(old_build, variants, scenario)
    names = [x.strip() for x in (text or "").split(",") if x.strip()]
    EMU_TUN = any(n in LANE_VARIANTS for n in names)
    for n in names:
        if not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", n) or \
                any(n == t or n.startswith(t + "-") for t in BUILDS) or n == "old" or \
                n.startswith("old-"):
            sys.exit("%s: --scheduler: %r is not a policy name (e.g. weighted, earliest)"
                     % (scenario, n))
    if len(set(names)) != len(names):
        sys.exit("%s: --scheduler: a name is given twice" % scenario)
    names = names or [None]
    return [v for n in names
            for v in [(t + "-" + n) if n else t for t in BUILDS] + [n]]


def variant_tag(sched):
    """The build tag of a variant (old-weighted -> old), None for the build under test."""
    for t in BUILDS:
        if sched and (sched == t or sched.startswith(t + "-")):
            return t
    return None


def variant_sched(sched):
    """The policy name of a variant: old-weighted -> weighted, old -> None (the default)."""
    t = variant_tag(sched)
    if t is None:
        return sched
    return sched[len(t) + 1:] or None


def variant_build(sched, build):
    """The build directory a variant runs with: its --old-build/--variant one, else build."""
    t = variant_tag(sched)
    return BUILDS[t] if t else build


def mux_setting(sched):
    """The mux group's setting for a scheduler ('' for None: the daemons' default)."""
    sched = variant_sched(sched)
    if sched in LANE_VARIANTS:
        return ""
    return 'scheduler = "%s";' % sched if sched else ""


def top_setting(sched):
    """Top-level settings of both configs for a variant: the TCP lane for "lane"."""
    return 'tcp_lane = "auto";\n' if variant_sched(sched) == "lane" else ""


def sched_tag(tag, sched):
    """A file tag with the scheduler in it: rep1-bond -> rep1-weighted-bond (None: unchanged)."""
    if not sched:
        return tag
    head, sep, rest = tag.partition("-")
    return "%s-%s%s%s" % (head, sched, sep, rest)


def sched_runs(args):
    """[(repeat index from 0, scheduler)] in run order: each repeat runs every scheduler."""
    return [(r, s) for r in range(args.repeat) for s in args.schedulers]


def sched_label(sched):
    return sched or "default"


def sched_report(scheds, reps, summarise, title, header, ratio_of=()):
    """Print a scenario's table and return its per-scheduler key=value pairs.
    summarise(reps of one scheduler) -> (rows, kv, figs): the table rows, key=value pairs and
    headline figures [(label, values over the repeats, digits)]. Without --scheduler the table
    and the pairs are what summarise gives. With schedulers: each row once per scheduler (the
    first cell gets the scheduler's name), the keys prefixed with it (weighted_up_goodput_mbit),
    a side-by-side table of the figures, and for two schedulers NEW_vs_OLD_KEY = median(NEW) /
    median(OLD) for each key in ratio_of (the second name given is NEW, the first OLD)."""
    if scheds == [None]:
        rows, kv, _ = summarise(reps)
        table(title, header, rows)
        return kv
    per = {}
    for s in scheds:
        per[s] = summarise([rp for rp in reps if rp.get("scheduler") == s])
    rows = []
    for i in range(len(per[scheds[0]][0])):
        for s in scheds:
            row = list(per[s][0][i])
            row[0] = "%s %s" % (row[0], sched_label(s))
            rows.append(row)
    table(title, header, rows)
    kv = []
    for s in scheds:
        kv += [("%s_%s" % (sched_label(s), k), v) for k, v in per[s][1]]
    two = len(scheds) == 2
    labels = [sched_label(s) for s in scheds]
    hdr = ["figure, median [min-max]"] + labels + (["%s/%s" % (labels[1], labels[0])]
                                                   if two else [])
    frows = []
    for i, (label, _, nd) in enumerate(per[scheds[0]][2]):
        vals = [per[s][2][i][1] for s in scheds]
        row = [label] + [mrange(v, nd) for v in vals]
        if two:
            a, b = median(vals[0]), median(vals[1])
            row.append(fmt(b / a) if a and b is not None else "-")
        frows.append(row)
    print()
    table("schedulers side by side (each repeat ran each in turn)", hdr, frows)
    if two:
        old, new = dict(per[scheds[0]][1]), dict(per[scheds[1]][1])
        for k in ratio_of:
            a, b = old.get(k), new.get(k)
            name = re.sub(r"_(mbit|ms|s|pct|percent)$", "", k)
            kv.append(("%s_vs_%s_%s" % (labels[1], labels[0], name),
                       b / a if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a
                       else None))
    return kv + [("schedulers", ",".join(labels))]


def prepare(args, scenario, est_seconds):
    """Checks (root, programs), handlers and the time bound; returns the output directory."""
    global VERBOSE, FLOWS
    VERBOSE = args.verbose
    FLOWS = max(1, getattr(args, "flows", 1))
    if os.geteuid() != 0:
        print("SKIP %s: needs root (network namespaces and TUN devices)" % scenario)
        sys.exit(0)
    if args.duration <= 0 or args.repeat < 1:
        sys.exit("%s: --duration must be > 0 and --repeat >= 1" % scenario)
    args.schedulers = parse_schedulers(args.scheduler, scenario, args.old_build, args.variant)
    need = [os.path.join(d, p) for d in [args.build] + list(BUILDS.values())
            for p in ("braid-master", "braid-slave")] + [os.path.join(args.tools, "braid-emu")]
    for p in need:
        if not os.access(p, os.X_OK):
            sys.exit("%s: %s is missing (build with `make all tools`)" % (scenario, p))
    for t in ("ip", "iperf3", "ping", "ss"):
        if not shutil.which(t):
            sys.exit("%s: %s is not installed (sh .ci/deps.sh bench)" % (scenario, t))
    avail = open("/proc/sys/net/ipv4/tcp_available_congestion_control").read().split()
    if args.cc not in avail:
        sys.exit("%s: --cc %s is not available (%s)" % (scenario, args.cc, " ".join(avail)))
    bound = args.max_time or (60 + 2.0 * est_seconds * len(args.schedulers))
    install_handlers(bound)
    out = os.path.join(args.out, scenario)
    os.makedirs(out, exist_ok=True)
    return out, bound


def run_info():
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain"],
                               capture_output=True, text=True).stdout.strip()
        if dirty:
            rev += " with uncommitted changes"
    except OSError:
        rev = "?"
    return {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "commit": rev,
            "cmd": " ".join(sys.argv), "cpus": os.cpu_count(),
            "kernel": os.uname().release}


def save_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, default=str)


def main_guard(fn):
    """Run a scenario's main; on a time bound or error print it, clean up, exit non-zero."""
    try:
        rc = fn()
    except Timeout:
        sys.stderr.write("error: the time bound was reached; stopped and cleaned up\n")
        rc = 3
    except RuntimeError as e:
        sys.stderr.write("error: %s\n" % e)
        rc = 1
    finally:
        cleanup()
    sys.exit(rc or 0)


def rr_server(addr, port, seconds):
    """TCP: each connection gets one byte back for its first byte, then is closed; stops by
    itself after `seconds`."""
    import socket
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(64)
    ls.settimeout(0.2)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            c, _ = ls.accept()
        except socket.timeout:
            continue
        try:
            c.settimeout(5)
            if c.recv(1):
                c.sendall(b"r")
        except OSError:
            pass
        c.close()


def rr_client(addr, port, count, interval, wait=5.0):
    """A new TCP connection every `interval` s, `count` times: ms from connect() to the first
    byte of the answer to a 1-byte request (None: failed); one JSON list on stdout."""
    import socket
    out = []
    for _ in range(count):
        t0 = time.monotonic()
        try:
            c = socket.create_connection((addr, port), timeout=wait)
            c.settimeout(wait)
            c.sendall(b"q")
            ok = c.recv(1) == b"r"
            c.close()
            out.append((time.monotonic() - t0) * 1000 if ok else None)
        except OSError:
            out.append(None)
        time.sleep(max(0.0, interval - (time.monotonic() - t0)))
    print(json.dumps(out))


if __name__ == "__main__":
    # helpers run inside a namespace: `benchlib.py echo ADDR PORT SECONDS`,
    # `benchlib.py uping ADDR PORT COUNT INTERVAL`, `benchlib.py rr-server ADDR PORT SECONDS`,
    # `benchlib.py rr-client ADDR PORT COUNT INTERVAL`
    if len(sys.argv) >= 2 and sys.argv[1] == "rr-server":
        rr_server(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    elif len(sys.argv) >= 2 and sys.argv[1] == "rr-client":
        rr_client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
    elif len(sys.argv) >= 2 and sys.argv[1] == "echo":
        udp_echo_server(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    elif len(sys.argv) >= 2 and sys.argv[1] == "uping":
        udp_ping(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
    else:
        sys.exit("usage: benchlib.py echo ADDR PORT SECONDS | uping ADDR PORT COUNT INTERVAL")
