#!/usr/bin/env python3
# selftest.py: measures braid-emu on loopback with a plain UDP sender/receiver (rate, delay, jitter,
# loss, blackhole, rebind, trace replay; --ceiling: aggregate of 4 instances). Exit 1 on failure.
"""Usage: selftest.py [--quick | --ceiling] [--traces DIR] [PATH/TO/braid-emu]

Default (full) mode checks the accuracy targets of tests/emu/README.md (20 Mbit/s within 3 % over
10 s, delay within 1 ms at the median and p95); --quick runs each check for a second or two with
loose bounds (for make check). --ceiling measures how fast 4 emulator instances (one per link)
still deliver their configured rate. All traffic is UDP on 127.0.0.1.
"""

import argparse
import json
import multiprocessing
import os
import selectors
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
HDR = struct.Struct("!IQQ")  # seq, send time (ns, CLOCK_MONOTONIC), echo time (ns)
MS = 1_000_000
SEC = 1_000_000_000


def now_ns():
    return time.monotonic_ns()


class Emu:
    """One braid-emu process with a control socket; listen port learned from "stats"."""

    def __init__(self, binary, tmpdir, target_port, name, up=None, down=None, extra=()):
        self.ctl = os.path.join(tmpdir, name + ".ctl")
        self.stats_path = os.path.join(tmpdir, name + ".stats.json")
        self.log_path = os.path.join(tmpdir, name + ".log")
        args = [binary, "--listen", "127.0.0.1:0", "--target", "127.0.0.1:%d" % target_port,
                "--control", self.ctl, "--stats", self.stats_path, "--quiet"]
        if up:
            args += ["--up", up]
        if down:
            args += ["--down", down]
        args += list(extra)
        self.log = open(self.log_path, "w+")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("")  # autobind: the emulator replies to this address
        deadline = time.monotonic() + 5
        while not os.path.exists(self.ctl):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.fail_start()
            time.sleep(0.005)  # polling for the socket file, bounded by the deadline
        t = now_ns()
        st = self.stats()
        self.port = st["listen_port"]
        self.started = t - (st["uptime_ms"] + 1) * MS  # the emulator's time 0, within 1 ms

    def fail_start(self):
        self.log.seek(0)
        out = self.log.read()
        self.kill()
        raise RuntimeError("braid-emu did not start (exit %s): %s" % (self.proc.returncode, out))

    def cmd(self, text, timeout=3.0):
        self.sock.settimeout(timeout)
        self.sock.sendto(text.encode(), self.ctl)
        return self.sock.recv(65536).decode()

    def stats(self):
        return json.loads(self.cmd("stats"))

    def stop(self):
        """SIGTERM; returns (exit code, final stats from --stats)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = "timeout"
        self.sock.close()
        self.log.close()
        try:
            with open(self.stats_path) as f:
                return rc, json.load(f)
        except (OSError, ValueError):
            return rc, None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def logtext(self):
        with open(self.log_path) as f:
            return f.read()


def udp_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


class Stream:
    """Client -> emulator -> target; the target may echo each datagram back (down direction)."""

    def __init__(self, size=1400, echo=False):
        self.cli = udp_socket()
        self.tgt = udp_socket()
        self.tport = self.tgt.getsockname()[1]
        self.size = max(size, HDR.size)
        self.echo = echo
        self.sent = []  # seq -> send time
        self.up = []    # (seq, t_send, t_rx, source port, length) at the target
        self.down = []  # (seq, t_echo, t_rx) at the client
        self.buf = bytearray(65536)

    def close(self):
        self.cli.close()
        self.tgt.close()

    def _send(self, dst, n):
        pkt = bytearray(self.size)
        for _ in range(n):
            seq = len(self.sent)
            t = now_ns()
            HDR.pack_into(pkt, 0, seq, t, 0)
            try:
                self.cli.sendto(pkt, dst)
            except BlockingIOError:
                return
            self.sent.append(t)

    def _drain(self):
        got = 0
        while True:
            try:
                n, src = self.tgt.recvfrom_into(self.buf)
            except BlockingIOError:
                break
            t = now_ns()
            seq, ts, _ = HDR.unpack_from(self.buf, 0)
            self.up.append((seq, ts, t, src[1], n))
            got += 1
            if self.echo:
                struct.pack_into("!Q", self.buf, 12, now_ns())
                try:
                    self.tgt.sendto(memoryview(self.buf)[:n], src)
                except BlockingIOError:
                    pass
        while True:
            try:
                n = self.cli.recv_into(self.buf)
            except BlockingIOError:
                break
            t = now_ns()
            seq, _, te = HDR.unpack_from(self.buf, 0)
            self.down.append((seq, te, t))
            got += 1
        return got

    def run(self, port, duration, pps=0, backlog=0, events=(), linger=0.15):
        """Send for duration seconds: paced at pps, or keeping `backlog` datagrams in flight
        (sent but not yet at the target). events: [(seconds, fn)] run in the loop. Then keep
        receiving until nothing arrived for `linger` seconds (at most 3 s)."""
        dst = ("127.0.0.1", port)
        sel = selectors.DefaultSelector()
        sel.register(self.cli, selectors.EVENT_READ)
        sel.register(self.tgt, selectors.EVENT_READ)
        events = sorted(events, key=lambda e: e[0])
        start = now_ns()
        end = start + int(duration * SEC)
        base = len(self.sent)
        while True:
            t = now_ns()
            if t >= end:
                break
            while events and start + events[0][0] * SEC <= t:
                events.pop(0)[1]()
            if pps:
                due = base + int((t - start) * pps / SEC) + 1
                self._send(dst, min(due - len(self.sent), 256))
                wait = (len(self.sent) - base) / pps - (t - start) / SEC
            else:
                self._send(dst, min(backlog - (len(self.sent) - len(self.up)), 200))
                wait = 0.001
            if events:
                wait = min(wait, (start + events[0][0] * SEC - t) / SEC)
            sel.select(max(0.0, min(wait, 0.01)))
            self._drain()
        quiet_since = now_ns()
        hard = quiet_since + 3 * SEC
        while now_ns() < hard and now_ns() - quiet_since < linger * SEC:
            sel.select(0.01)
            if self._drain():
                quiet_since = now_ns()
        sel.close()


# ------------------------------------------------------------------------------------------ #

class Results:
    def __init__(self):
        self.rows = []

    def add(self, name, configured, measured, bound, ok):
        self.rows.append((name, configured, measured, bound, ok))
        print("  %-4s %-34s %-16s %-28s %s" % ("ok" if ok else "FAIL", name, configured, measured,
                                              bound), flush=True)

    def table(self):
        w = max(len(r[0]) for r in self.rows) if self.rows else 10
        print("\n%-*s  %-16s  %-28s  %-20s  %s" % (w, "check", "configured", "measured", "bound",
                                                  "result"))
        for name, conf, meas, bound, ok in self.rows:
            print("%-*s  %-16s  %-28s  %-20s  %s" % (w, name, conf, meas, bound,
                                                    ok if ok == "retried" else
                                                    "ok" if ok else "FAIL"))
        retried = sum(1 for r in self.rows if r[4] == "retried")
        failed = sum(1 for r in self.rows if not r[4])
        print("\n%d passed, %d failed%s" % (len(self.rows) - failed - retried, failed,
                                            ", %d retried" % retried if retried else ""))
        return failed


def percentile(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * (len(xs) - 1)))))
    return xs[k]


def stop_clean(emu, res, name):
    rc, st = emu.stop()
    if rc != 0:
        res.add(name + ": clean exit", "SIGTERM", "exit %s" % rc, "exit 0", False)
        print(emu.logtext())
    return st


def check_rate(binary, tmp, res, quick):
    dur = 1.0 if quick else 10.0
    tol = 0.05 if quick else 0.03
    s = Stream(size=1400)
    emu = Emu(binary, tmp, s.tport, "rate", up="rate=20mbit")
    try:
        s.run(emu.port, dur, pps=24e6 / 8 / 1400)  # 24 Mbit/s offered
    finally:
        st = stop_clean(emu, res, "rate")
        s.close()
    rx = s.up
    ok = len(rx) > 100
    rate = 0.0
    if ok:
        bytes_ = sum(r[4] for r in rx[1:])
        rate = bytes_ * 8 / ((rx[-1][2] - rx[0][2]) / SEC)
        ok = abs(rate / 20e6 - 1) <= tol
    res.add("rate 20mbit over %gs" % dur, "20.000 Mbit/s", "%.3f Mbit/s (%+.2f %%)" %
            (rate / 1e6, (rate / 20e6 - 1) * 100), "+-%g %%" % (tol * 100), ok)
    if st:
        res.add("rate: emulator counters", "rx = tx + drops",
                "rx %d tx %d drop %d" % (st["up"]["rx_packets"], st["up"]["tx_packets"],
                                         st["up"]["dropped_queue"]),
                "tx == received", st["up"]["tx_packets"] == len(rx) and
                st["up"]["rx_packets"] == st["up"]["tx_packets"] + st["up"]["dropped_queue"])


def check_delay(binary, tmp, res, quick):
    dur = 0.8 if quick else 6.0
    tol = 2.0 if quick else 1.0
    s = Stream(size=200, echo=True)
    emu = Emu(binary, tmp, s.tport, "delay", up="delay=30ms", down="delay=20ms")
    try:
        s.run(emu.port, dur, pps=200)
    finally:
        stop_clean(emu, res, "delay")
        s.close()
    for name, conf, samples in (("up", 30.0, [(r[2] - r[1]) / MS for r in s.up]),
                                ("down", 20.0, [(r[2] - r[1]) / MS for r in s.down])):
        med, p95 = statistics.median(samples or [0]), percentile(samples, 95)
        low = min(samples or [0])
        # never early; late by the host's scheduling only: in --quick mode (make check, on a
        # busy machine) the p95 bound is looser, since a late wake-up of this script or of the
        # emulator is the host's noise, not the emulator's delay
        p95_tol = 5.0 if quick else tol
        ok = len(samples) >= 0.99 * len(s.sent) and abs(med - conf) <= tol and \
            low >= conf - 0.5 and p95 - conf <= p95_tol
        res.add("delay %s (%d samples)" % (name, len(samples)), "%g ms" % conf,
                "min %.3f median %.3f p95 %.3f ms" % (low, med, p95),
                "min -0.5, median +-%g, p95 +%g ms" % (tol, p95_tol), ok)


def check_jitter(binary, tmp, res, quick):
    dur = 0.6 if quick else 3.0
    for reorder in (0, 1):
        s = Stream(size=200)
        emu = Emu(binary, tmp, s.tport, "jitter%d" % reorder,
                  up="delay=20ms,jitter=10ms,reorder=%d" % reorder)
        try:
            s.run(emu.port, dur, pps=500)
        finally:
            stop_clean(emu, res, "jitter")
            s.close()
        d = [(r[2] - r[1]) / MS for r in s.up]
        seqs = [r[0] for r in s.up]
        inversions = sum(1 for a, b in zip(seqs, seqs[1:]) if b < a)
        # the top of the range, 30 ms + the receiver's own latency: the p99, or in --quick mode
        # (a busy host, where 1 % of 300 wake-ups can be late by several ms) the p90
        q = 90 if quick else 99
        lo, top = min(d or [0]), percentile(d, q)
        hi = 32.0 if quick else 31.0
        ok = len(d) == len(s.sent) and lo >= 19.95 and top <= hi
        ok = ok and (inversions > 0 if reorder else inversions == 0)
        res.add("jitter reorder=%d" % reorder, "20ms + U(0,10ms)",
                "min %.2f p%d %.2f ms, %d reordered" % (lo, q, top, inversions),
                "20..%g ms, " % hi + ("some reordered" if reorder else "in order"), ok)


def check_loss(binary, tmp, res, quick):
    n = 3000 if quick else 20000
    p = 0.1
    s = Stream(size=100)
    emu = Emu(binary, tmp, s.tport, "loss", up="loss=%g" % p, extra=["--seed", "12345"])
    try:
        s.run(emu.port, n / 5000.0, pps=5000)
    finally:
        st = stop_clean(emu, res, "loss")
        s.close()
    sent = len(s.sent)
    lost = sent - len(s.up)
    frac = lost / max(1, sent)
    bound = 4 * (p * (1 - p) / max(1, sent)) ** 0.5
    ok = abs(frac - p) <= bound and st is not None and st["up"]["dropped_loss"] == lost
    res.add("loss 0.1 (%d sent)" % sent, "%.3f" % p, "%.4f (emu counted %s)" %
            (frac, st["up"]["dropped_loss"] if st else "?"), "+-%.4f (4 sd)" % bound, ok)


def check_blackhole(binary, tmp, res, quick):
    """Blackholes via the control socket; classify packets by their send time (the receiver may
    read a datagram a little after it arrived)."""
    s = Stream(size=200, echo=True)
    emu = Emu(binary, tmp, s.tport, "blackhole", up="delay=5ms")
    marks = {}

    def mark(name, command):
        def fn():
            t0 = now_ns()
            reply = emu.cmd(command)
            marks[name] = (t0, now_ns(), reply)
        return fn

    events = [(0.2, mark("bh", "blackhole both")), (0.5, mark("clear", "clear both")),
              (0.7, mark("bhdown", "blackhole down")), (1.0, mark("cleardown", "clear down")),
              (1.2, mark("bhfor", "blackhole both for 300ms"))]
    try:
        s.run(emu.port, 1.8, pps=1000, events=events)
    finally:
        st = stop_clean(emu, res, "blackhole")
        s.close()
    replies_ok = all(m[2] == "ok" for m in marks.values()) and len(marks) == 5
    sent = s.sent
    up_seqs = {r[0] for r in s.up}
    down_by_seq = {r[0]: r for r in s.down}
    # up: packets due (send + 5 ms) inside [bh reply, clear request) must not arrive
    bh_ok, bh_clr = marks["bh"][1], marks["clear"][0]
    leaked = [q for q, t in enumerate(sent) if bh_ok + 1 * MS <= t + 5 * MS < bh_clr - 1 * MS and
              q in up_seqs]
    after = [q for q, t in enumerate(sent) if marks["clear"][1] + MS <= t < marks["bhdown"][0]]
    passed_after = sum(1 for q in after if q in up_seqs)
    res.add("blackhole both / clear", "none pass / all", "%d leaked, %d/%d after clear" %
            (len(leaked), passed_after, len(after)), "0, all", replies_ok and not leaked and
            after and passed_after == len(after))
    # down only: the target still gets everything; echoes sent inside the window do not return
    d_ok, d_clr = marks["bhdown"][1], marks["cleardown"][0]
    in_win = [q for q, t in enumerate(sent) if d_ok + MS <= t < d_clr - 6 * MS]
    up_in_win = sum(1 for q in in_win if q in up_seqs)
    down_leaked = [q for q in in_win if q in down_by_seq and
                   d_ok + MS <= down_by_seq[q][1] < d_clr - MS]
    res.add("blackhole down only", "up passes", "%d/%d up, %d echoes leaked" %
            (up_in_win, len(in_win), len(down_leaked)), "all up, 0 down",
            bool(in_win) and up_in_win == len(in_win) and not down_leaked)
    # for 400 ms: ends by itself
    f0, f1 = marks["bhfor"][:2]
    # dropped: due (send + 5 ms) or arriving inside the 300 ms; passing: sent after its end
    blocked = [q for q, t in enumerate(sent) if f1 + MS <= t + 5 * MS and t < f0 + 300 * MS - MS]
    leaked = [q for q in blocked if q in up_seqs]
    resumed = [q for q, t in enumerate(sent) if t >= f1 + 300 * MS + MS]
    got = sum(1 for q in resumed if q in up_seqs)
    res.add("blackhole both for 300ms", "expires", "%d/%d leaked, %d/%d after" %
            (len(leaked), len(blocked), got, len(resumed)), "0, all",
            bool(blocked) and not leaked and bool(resumed) and got == len(resumed))
    if st:
        res.add("blackhole: counted", "drops counted", "up %d down %d" %
                (st["up"]["dropped_blackhole"], st["down"]["dropped_blackhole"]), "> 0",
                st["up"]["dropped_blackhole"] > 0 and st["down"]["dropped_blackhole"] > 0)


def check_rebind(binary, tmp, res, quick):
    s = Stream(size=200, echo=True)
    emu = Emu(binary, tmp, s.tport, "rebind", up="delay=20ms")
    info = {}

    def rebind():
        info["port0"] = emu.stats()["upstream_port"]
        info["t0"] = now_ns()
        info["reply"] = emu.cmd("rebind")
        info["t1"] = now_ns()
        info["port1"] = emu.stats()["upstream_port"]

    def foreign():
        f = udp_socket()
        f.sendto(b"not from the target", ("127.0.0.1", info["port1"]))
        f.close()

    try:
        s.run(emu.port, 1.0, pps=500, events=[(0.4, rebind), (0.7, foreign)])
        st = emu.stats()
    finally:
        stop_clean(emu, res, "rebind")
        s.close()
    p0, p1 = info.get("port0"), info.get("port1")
    by_seq = {r[0]: r for r in s.up}
    before = [by_seq[q][3] for q, t in enumerate(s.sent) if t + 20 * MS < info["t0"] - MS
              and q in by_seq]
    inflight = [q for q, t in enumerate(s.sent) if info["t0"] - 15 * MS <= t < info["t0"] - MS]
    after = [q for q, t in enumerate(s.sent) if t > info["t1"] + MS]
    after_ports = {by_seq[q][3] for q in after if q in by_seq}
    after_set = set(after)
    echoes_after = sum(1 for r in s.down if r[0] in after_set)
    got_after = sum(1 for q in after if q in by_seq)
    ok = (info.get("reply") == "ok" and p0 != p1 and set(before) == {p0} and
          bool(inflight) and all(q in by_seq and by_seq[q][3] == p1 for q in inflight) and
          after_ports == {p1} and got_after == len(after) > 0 and echoes_after == len(after))
    res.add("rebind", "new source port", "%s -> %s, %d in flight kept, %d/%d after, %d echoed" %
            (p0, p1, len(inflight), got_after, len(after), echoes_after), "all delivered", ok)
    res.add("foreign datagram on upstream", "dropped", "dropped_foreign %d" %
            st["dropped_foreign"], "== 1", st["dropped_foreign"] == 1)


def check_script(binary, tmp, res, quick):
    """--script events at their times (blackhole for, set, quit: the emulator exits by itself),
    and the command-line errors that must exit 2 with a message."""
    script = os.path.join(tmp, "events.emu")
    with open(script, "w") as f:
        f.write("# test script\n"
                "at 300ms blackhole up for 200ms\n"
                "at 700ms set up delay=10ms   # then slower\n"
                "at 1100ms quit\n")
    s = Stream(size=200)
    emu = Emu(binary, tmp, s.tport, "script", extra=["--script", script])
    start = emu.started
    try:
        s.run(emu.port, 1.0, pps=500)
        rc = emu.proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        rc = "still running"
    finally:
        emu.stop()
        s.close()
    by = {r[0]: r for r in s.up}
    gap = [q for q, t in enumerate(s.sent) if start + 305 * MS <= t < start + 495 * MS]
    before = [q for q, t in enumerate(s.sent) if t < start + 295 * MS]
    slow = [(by[q][2] - t) / MS for q, t in enumerate(s.sent) if t >= start + 705 * MS and q in by]
    fast = [(by[q][2] - t) / MS for q in before if q in by for t in [s.sent[q]]]
    ok = (rc == 0 and before and all(q in by for q in before) and gap and
          not any(q in by for q in gap) and slow and 9.5 <= statistics.median(slow) <= 11.5 and
          statistics.median(fast) < 2)
    res.add("script: blackhole, set, quit", "at 0.3/0.7/1.1 s",
            "%d/%d leaked, delay %.1f->%.1f ms, exit %s" %
            (sum(1 for q in gap if q in by), len(gap), statistics.median(fast or [0]),
             statistics.median(slow or [0]), rc), "0, 10 ms, exit 0", bool(ok))
    with open(script, "w") as f:
        f.write("at 1s rebind\nat 2s set up rate=fast\n")
    bad = [(["--up", "rate=0"], "rate=off"), (["--down", "colour=blue"], "unknown key"),
           (["--script", script], script + ":2:"), (["--seed", "-1"], "--seed"),
           (["--control", tmp], "not a socket")]
    for extra, want in bad:
        p = subprocess.run([binary, "--listen", "127.0.0.1:0", "--target", "127.0.0.1:9"] + extra,
                           capture_output=True, text=True, timeout=10)
        exp = 1 if extra[0] == "--control" else 2
        res.add("usage error " + " ".join(extra)[:28], "exit %d + message" % exp,
                "exit %d: %s" % (p.returncode, p.stderr.splitlines()[0][:60] if p.stderr else ""),
                repr(want)[:20], p.returncode == exp and want in p.stderr)


def opportunities(trace_ms, period, a_ns, b_ns):
    """Opportunities of a repeating trace with times in [a_ns, b_ns) (trace time)."""
    import bisect
    n = 0
    rep = max(0, a_ns // (period * MS) - 1)
    while rep * period * MS <= b_ns:
        off = rep * period * MS
        lo = bisect.bisect_left(trace_ms, (a_ns - off) / MS)
        hi = bisect.bisect_left(trace_ms, (b_ns - off) / MS)
        n += max(0, hi - lo)
        rep += 1
    return n


def check_trace(binary, tmp, res, path, label, dur, tol):
    """Keep the bottleneck backlogged (2000 datagrams in flight) and count 1500-byte datagrams
    delivered in a window: one per opportunity of the trace in that window."""
    with open(path) as f:
        ms = [int(x) for x in f if x.strip() and not x.startswith("#")]
    period = ms[-1]
    s = Stream(size=1500)
    emu = Emu(binary, tmp, s.tport, "trace", extra=["--pool", "8192"])
    try:
        t0 = now_ns()
        reply = emu.cmd("set up trace=%s queue=6000p" % path)
        t1 = now_ns()
        origin = (t0 + t1) // 2
        s.run(emu.port, dur + 0.5, backlog=2000, linger=0)
        st = emu.stats()
    finally:
        stop_clean(emu, res, "trace")
        s.close()
    w0 = origin + SEC // 2
    w1 = origin + int((dur + 0.4) * SEC)
    got = sum(1 for r in s.up if w0 <= r[2] < w1)
    want = opportunities(ms, period, w0 - origin, w1 - origin)
    mean = len(ms) * 12000 / period / 1000  # Mbit/s
    ok = reply == "ok" and want > 0 and abs(got / want - 1) <= tol and \
        st["up"]["dropped_queue"] == 0
    res.add("trace %s %gs" % (label, dur), "%.2f Mbit/s win" % (want * 12000 / (w1 - w0) * 1e3),
            "%.2f Mbit/s (%+.2f %%)" % (got * 12000 / (w1 - w0) * 1e3, (got / max(1, want) - 1)
                                        * 100), "+-%g %% (mean %.2f)" % (tol * 100, mean), ok)


def check_traces(binary, tmp, res, quick, trace_dir):
    syn = os.path.join(tmp, "synthetic.trace")
    with open(syn, "w") as f:  # 500 ms at 12 Mbit/s, then 500 ms at 36: mean 24 Mbit/s
        for m in range(1, 501):
            f.write("%d\n" % m)
        for m in range(501, 1001):
            f.write(("%d\n" % m) * 3)
    check_trace(binary, tmp, res, syn, "synthetic", 1.5 if quick else 10.0,
                0.05 if quick else 0.02)
    if quick or not trace_dir or not os.path.isdir(trace_dir):
        if not quick:
            print("  (no real traces at %s: skipped)" % trace_dir)
        return
    for name in sorted(os.listdir(trace_dir)):
        if name.endswith(".up") or name.endswith(".down"):
            check_trace(binary, tmp, res, os.path.join(trace_dir, name), name, 10.0, 0.02)


# ------------------------------------------------------------------------------------------ #
# ceiling: N emulators (one per link), one sender/receiver process per link

def ceiling_worker(binary, tmp, idx, rate_bps, dur, size, conn):
    s = Stream(size=size)
    emu = Emu(binary, tmp, s.tport, "ceil%d" % idx, up="rate=%d" % rate_bps)
    try:
        pid = emu.proc.pid
        cpu0 = proc_cpu(pid)
        s.run(emu.port, dur, pps=rate_bps * 1.03 / 8 / size, linger=0.1)
        cpu1 = proc_cpu(pid)
        st = emu.stats()
    finally:
        emu.stop()
        s.close()
    rx = [r for r in s.up if r[2] - s.sent[0] >= SEC // 2]  # skip the first 0.5 s
    rate = 0.0
    if len(rx) > 2:
        rate = sum(r[4] for r in rx[1:]) * 8 / ((rx[-1][2] - rx[0][2]) / SEC)
    conn.send({"rate": rate, "sent": len(s.sent), "emu_cpu": (cpu1 - cpu0) / dur,
               "send_errors": st["up"]["send_errors"], "pps": len(s.sent) / dur})
    conn.close()


def proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ceiling(binary, tmp, links, dur, size):
    print("ceiling: %d emulators, 1 sender/receiver process per link, %d-byte datagrams, %g s "
          "per step; a step passes when every link delivers within 3 %% of its rate"
          % (links, size, dur))
    best = 0
    gen_limited = False
    for per_link in (25, 50, 100, 150, 200, 250, 300, 400, 500, 600, 800):
        ctx = multiprocessing.get_context("fork")
        procs, pipes = [], []
        for i in range(links):
            a, b = ctx.Pipe(False)
            p = ctx.Process(target=ceiling_worker,
                            args=(binary, tmp, i, per_link * 1_000_000, dur, size, b))
            p.start()
            procs.append(p)
            pipes.append(a)
        out = []
        for p, a in zip(procs, pipes):
            out.append(a.recv() if a.poll(dur + 30) else None)
            p.join(10)
        need = per_link * 1e6 * 1.03 / 8 / size
        gen_limited = any(o and o["pps"] < 0.98 * need for o in out)
        ok = all(o and abs(o["rate"] / (per_link * 1e6) - 1) <= 0.03 for o in out)
        rates = " ".join("%.1f" % (o["rate"] / 1e6) if o else "?" for o in out)
        cpu = " ".join("%.0f%%" % (o["emu_cpu"] * 100) if o else "?" for o in out)
        print("  %3d Mbit/s x %d = %4d Mbit/s: delivered [%s] Mbit/s, emulator CPU [%s], "
              "offered %.0f pps/link: %s" % (per_link, links, per_link * links, rates, cpu,
                                             out[0]["pps"] if out[0] else 0,
                                             "ok" if ok else "FAIL"), flush=True)
        if gen_limited:
            print("  the Python senders could not offer %.0f pps per link: this is the load "
                  "generator's limit, not the emulator's" % need)
        if not ok:
            break
        best = per_link * links
    print("\nceiling: %d Mbit/s aggregate delivered at the configured rates (%d links)%s"
          % (best, links, " (at least: limited by the load generator)" if gen_limited else ""))
    return best


TIMING_CHECKS = (check_rate, check_delay, check_jitter)


def run_check(fn, args, tmp, res):
    try:
        fn(args.binary, tmp, res, args.quick)
    except Exception as e:  # a crash of one check is a failure, the others still run
        res.add(fn.__name__, "-", "exception: %s" % e, "-", False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("binary", nargs="?", default=os.path.join(REPO, "build/tools/braid-emu"))
    ap.add_argument("--quick", action="store_true", help="a few seconds, loose bounds")
    ap.add_argument("--ceiling", action="store_true", help="measure the aggregate ceiling")
    ap.add_argument("--links", type=int, default=4, help="emulators for --ceiling (4)")
    ap.add_argument("--traces", default=os.path.join(os.path.dirname(REPO), "shared", "traces"),
                    help="real Mahimahi traces to replay (default ../shared/traces)")
    args = ap.parse_args()
    if not os.access(args.binary, os.X_OK):
        print("selftest: %s is not an executable; build it with make build/tools/braid-emu"
              % args.binary, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="braid-emu-selftest.") as tmp:
        if args.ceiling:
            best = ceiling(args.binary, tmp, args.links, 5.0, 1400)
            return 0 if best >= 200 else 1
        res = Results()
        print("braid-emu self-test (%s mode), %s" % ("quick" if args.quick else "full",
                                                    args.binary), flush=True)
        for fn in (check_rate, check_delay, check_jitter, check_loss, check_blackhole,
                   check_rebind, check_script):
            n0 = len(res.rows)
            run_check(fn, args, tmp, res)
            # --quick runs on busy hosts (make check, CI): a timing bound missed once may be the
            # host's scheduling noise (late wake-ups of the test or the emulator); a real fault
            # misses it again. The first try stays in the table, marked "retried".
            if args.quick and fn in TIMING_CHECKS and not all(r[4] for r in res.rows[n0:]):
                first = [(r[0] + " (1st try)",) + r[1:4] + ("retried",)
                         for r in res.rows[n0:]]
                del res.rows[n0:]
                print("  a timing bound was missed: %s once more" % fn.__name__, flush=True)
                run_check(fn, args, tmp, res)
                res.rows[n0:n0] = first
        try:
            check_traces(args.binary, tmp, res, args.quick, args.traces)
        except Exception as e:
            res.add("traces", "-", "exception: %s" % e, "-", False)
        failed = res.table()
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
