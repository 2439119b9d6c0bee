# frames.py: synthetic tunnel traffic for braid tests: talks to notun tundevs over TCP frames,
# sends numbered IPv4/UDP packets both ways through a sliding window and checks what arrives.
"""Frame traffic generator and checker for braid's notun tunnel devices.

Wire format of a notun frame: 2-byte big-endian length, then one IP packet.
The packets sent here are IPv4/UDP (addresses from 198.18.0.0/15, valid header checksum,
UDP checksum 0) whose payload is:

    magic "BRDF" | stream u32 | seq u32 | send time u64 (ns, CLOCK_MONOTONIC) | crc32 u32 | padding

The crc32 covers the payload except the crc field itself. Everything here is bounded: buffers,
windows and run time.
"""

import collections
import selectors
import socket
import struct
import threading
import time
import zlib

MAGIC = b"BRDF"
IP_HDR = 20
UDP_HDR = 8
PAYLOAD_HDR = struct.Struct("!4sIIQI")  # magic, stream, seq, send ns, crc
MIN_SIZE = IP_HDR + UDP_HDR + PAYLOAD_HDR.size  # 52: the smallest packet that carries a header
MAX_SIZE = 65535
UDP_DPORT = 9  # discard
UDP_SPORT_BASE = 40000

STREAM_AB = 1
STREAM_BA = 2
DEFAULT_A_IP = "198.18.0.1"
DEFAULT_B_IP = "198.18.0.2"

MAX_OUT_BUFFER = 256 * 1024  # bytes queued toward one socket before generating more
MAX_IN_BUFFER = 4 * 65537  # a partial frame never exceeds this
RECV_CHUNK = 256 * 1024


class FrameError(Exception):
    """A tunnel end misbehaved or could not be reached."""


# ---------------------------------------------------------------------------------------------
# sizes and addresses


def parse_size(spec):
    """'1400' -> (1400, 1400); '64-1400' -> (64, 1400). Raises ValueError with a clear message."""
    text = str(spec).strip()
    parts = text.split("-")
    try:
        if len(parts) == 1:
            lo = hi = int(parts[0])
        elif len(parts) == 2:
            lo, hi = int(parts[0]), int(parts[1])
        else:
            raise ValueError
    except ValueError:
        raise ValueError(f'size "{spec}": expected a number or a range LO-HI, e.g. "64-1400"')
    if lo > hi:
        raise ValueError(f'size "{spec}": the range is backwards; write it LO-HI')
    if lo < MIN_SIZE or hi > MAX_SIZE:
        raise ValueError(
            f'size "{spec}": packet sizes must be {MIN_SIZE}..{MAX_SIZE} bytes '
            f"(IPv4 + UDP + the {PAYLOAD_HDR.size}-byte test header)"
        )
    return lo, hi


def parse_addr(addr):
    """'host:port', '[v6]:port' or (host, port) -> (host, port)."""
    if isinstance(addr, (tuple, list)):
        return str(addr[0]), int(addr[1])
    text = str(addr)
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f'address "{addr}": expected host:port, e.g. "127.0.0.1:7101"')
    return host, int(port)


def _ip4(text):
    b = socket.inet_aton(text)
    if not (b[0] == 198 and b[1] in (18, 19)):
        raise ValueError(f"{text}: test packets use addresses from 198.18.0.0/15 only")
    return b


def ip_checksum(data):
    """The Internet checksum (RFC 1071) of data."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _sport(stream):
    return UDP_SPORT_BASE + stream % 20000


def _mix(x):
    """splitmix64 finaliser: a cheap deterministic hash."""
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


# ---------------------------------------------------------------------------------------------
# packets


class PacketFactory:
    """Builds the test packets of one stream. Sizes and padding depend only on (seed, stream,
    seq), so a run is reproducible."""

    def __init__(self, stream, size=(MIN_SIZE, MIN_SIZE), seed=1, src=DEFAULT_A_IP,
                 dst=DEFAULT_B_IP):
        self.stream = stream
        self.lo, self.hi = parse_size(size) if isinstance(size, (str, int)) else size
        if self.lo < MIN_SIZE or self.hi > MAX_SIZE or self.lo > self.hi:
            raise ValueError(f"size {size}: expected {MIN_SIZE}..{MAX_SIZE}")
        self.seed = seed
        self.src = _ip4(src)
        self.dst = _ip4(dst)
        self.sport = _sport(stream)
        block = bytearray()
        x = _mix(seed * 1000003 + stream)
        while len(block) < MAX_SIZE + 256:
            x = _mix(x)
            block += x.to_bytes(8, "little")
        self.pad = bytes(block)

    def size_of(self, seq):
        if self.lo == self.hi:
            return self.lo
        return self.lo + _mix((self.seed << 40) ^ (self.stream << 32) ^ seq) % (
            self.hi - self.lo + 1
        )

    def make(self, seq, now_ns=None):
        """The IP packet for seq, stamped now (time.monotonic_ns())."""
        if now_ns is None:
            now_ns = time.monotonic_ns()
        size = self.size_of(seq)
        padlen = size - MIN_SIZE
        off = seq % 251
        pad = self.pad[off:off + padlen]
        head = PAYLOAD_HDR.pack(MAGIC, self.stream, seq, now_ns, 0)[:-4]
        crc = zlib.crc32(pad, zlib.crc32(head))
        payload = head + struct.pack("!I", crc) + pad
        udp = struct.pack("!HHHH", self.sport, UDP_DPORT, UDP_HDR + len(payload), 0)
        ip = bytearray(
            struct.pack("!BBHHHBBH4s4s", 0x45, 0, size, seq & 0xFFFF, 0, 64, 17, 0, self.src,
                        self.dst)
        )
        struct.pack_into("!H", ip, 10, ip_checksum(bytes(ip)))
        return bytes(ip) + udp + payload


# verdicts of parse_packet
OK, CORRUPT, FOREIGN = "ok", "corrupt", "foreign"


def parse_packet(pkt):
    """Classify one received packet: (OK, stream, seq, sent_ns), (CORRUPT, ...) when it is one
    of ours but damaged, or (FOREIGN, ...) when it is not a test packet at all."""
    n = len(pkt)
    if n < IP_HDR + UDP_HDR or pkt[0] >> 4 != 4 or pkt[9] != 17:
        return FOREIGN, None, None, None
    ihl = (pkt[0] & 15) * 4
    if n < ihl + UDP_HDR or struct.unpack_from("!H", pkt, ihl + 2)[0] != UDP_DPORT:
        return FOREIGN, None, None, None
    if ihl != IP_HDR or n < MIN_SIZE or ip_checksum(pkt[:IP_HDR]) != 0:
        return CORRUPT, None, None, None
    total, = struct.unpack_from("!H", pkt, 2)
    sport, _, ulen, ucsum = struct.unpack_from("!HHHH", pkt, IP_HDR)
    if total != n or ulen != n - IP_HDR or ucsum != 0:
        return CORRUPT, None, None, None
    p = IP_HDR + UDP_HDR
    magic, stream, seq, sent, crc = PAYLOAD_HDR.unpack_from(pkt, p)
    if magic != MAGIC or sport != _sport(stream):
        return CORRUPT, None, None, None
    want = zlib.crc32(pkt[p + PAYLOAD_HDR.size:], zlib.crc32(pkt[p:p + PAYLOAD_HDR.size - 4]))
    if want != crc:
        return CORRUPT, stream, seq, sent
    return OK, stream, seq, sent


# ---------------------------------------------------------------------------------------------
# checking


class Checker:
    """What arrived for one direction: counts, gaps and latencies. Bounded by count."""

    def __init__(self, name, stream, count):
        self.name = name
        self.stream = stream
        self.count = count
        self.seen = bytearray(count)
        self.received = 0
        self.duplicates = 0
        self.out_of_order = 0
        self.corrupted = 0
        self.foreign = 0
        self.max_seq = -1
        self.bytes = 0
        self.first_ns = None
        self.last_ns = None
        self.max_gap_ns = 0
        self.latencies_ns = []

    def on_packet(self, pkt, now_ns=None):
        """Record one arrival. Returns the seq when it is a new, intact packet, else None."""
        if now_ns is None:
            now_ns = time.monotonic_ns()
        verdict, stream, seq, sent = parse_packet(pkt)
        if verdict == FOREIGN or (verdict == OK and (stream != self.stream or seq >= self.count)):
            self.foreign += 1
            return None
        if self.last_ns is not None:
            self.max_gap_ns = max(self.max_gap_ns, now_ns - self.last_ns)
        else:
            self.first_ns = now_ns
        self.last_ns = now_ns
        if verdict == CORRUPT:
            self.corrupted += 1
            return None
        if self.seen[seq]:
            self.duplicates += 1
            return None
        self.seen[seq] = 1
        self.received += 1
        self.bytes += len(pkt)
        if seq < self.max_seq:
            self.out_of_order += 1
        else:
            self.max_seq = seq
        self.latencies_ns.append(max(0, now_ns - sent))
        return seq

    def ok(self):
        return (self.received == self.count and self.duplicates == 0 and self.out_of_order == 0
                and self.corrupted == 0 and self.foreign == 0)

    def result(self):
        lat = sorted(self.latencies_ns)

        def pct(p):
            if not lat:
                return None
            return round(lat[min(len(lat) - 1, int(p / 100.0 * len(lat)))] / 1e6, 3)

        span = (self.last_ns - self.first_ns) / 1e9 if self.first_ns is not None else 0.0
        return {
            "direction": self.name,
            "count": self.count,
            "received": self.received,
            "missing": self.count - self.received,
            "duplicates": self.duplicates,
            "out_of_order": self.out_of_order,
            "corrupted": self.corrupted,
            "foreign": self.foreign,
            "bytes": self.bytes,
            "max_stall_s": round(self.max_gap_ns / 1e9, 4),
            "latency_ms": {
                "min": round(lat[0] / 1e6, 3) if lat else None,
                "avg": round(sum(lat) / len(lat) / 1e6, 3) if lat else None,
                "p50": pct(50),
                "p90": pct(90),
                "p99": pct(99),
                "max": round(lat[-1] / 1e6, 3) if lat else None,
            },
            "mbit_s": round(self.bytes * 8 / span / 1e6, 3) if span > 0 else None,
            "ok": self.ok(),
        }


# ---------------------------------------------------------------------------------------------
# frame connections


class FrameConn:
    """A nonblocking TCP connection carrying frames, with bounded buffers."""

    def __init__(self, sock, name):
        self.sock = sock
        self.name = name
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.eof = False
        self.error = None
        self.sock.setblocking(False)

    @classmethod
    def connect(cls, addr, name, deadline):
        """Connect, retrying while the tunnel end is not listening yet, until deadline."""
        host, port = parse_addr(addr)
        last = None
        while True:
            try:
                sock = socket.create_connection((host, port), timeout=max(0.1, deadline -
                                                                          time.monotonic()))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return cls(sock, name)
            except OSError as e:
                last = e
            if time.monotonic() >= deadline:
                raise FrameError(
                    f"cannot connect to tunnel end {name} at {host}:{port}: {last}; is braid "
                    f"running with notun_listen = \"{host}:{port}\"?")
            time.sleep(0.05)  # the daemon may still be starting: poll until the deadline

    def send_frame(self, pkt):
        if not 1 <= len(pkt) <= MAX_SIZE:
            raise ValueError(f"frame of {len(pkt)} bytes: frames hold 1..{MAX_SIZE}")
        self.outbuf += struct.pack("!H", len(pkt))
        self.outbuf += pkt

    def flush(self):
        """Write what the socket takes now. Returns False when the peer is gone."""
        while self.outbuf:
            try:
                n = self.sock.send(self.outbuf)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError as e:
                self.eof = True
                self.error = str(e)
                return False
            del self.outbuf[:n]
        return True

    def read_frames(self):
        """Read what is available; return the complete frames (bytes), possibly empty."""
        frames = []
        for _ in range(8):
            try:
                data = self.sock.recv(RECV_CHUNK)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                self.eof = True
                self.error = str(e)
                break
            if not data:
                self.eof = True
                break
            self.inbuf += data
            if len(data) < RECV_CHUNK:
                break
        pos = 0
        buf = self.inbuf
        while len(buf) - pos >= 2:
            n = (buf[pos] << 8) | buf[pos + 1]
            if len(buf) - pos - 2 < n:
                break
            frames.append(bytes(buf[pos + 2:pos + 2 + n]))
            pos += 2 + n
        if pos:
            del buf[:pos]
        if len(buf) > MAX_IN_BUFFER:  # cannot happen with 16-bit lengths; defensive bound
            raise FrameError(f"tunnel end {self.name}: receive buffer overflow")
        return frames

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------
# transfer


class _Direction:
    def __init__(self, name, stream, count, factory, sender, receiver):
        self.name = name
        self.count = count
        self.factory = factory
        self.sender = sender  # FrameConn the packets are written to
        self.receiver = receiver  # FrameConn they arrive on
        self.checker = Checker(name, stream, count)
        self.next_seq = 0
        self.inflight = collections.OrderedDict()  # seq -> send time (monotonic s)
        self.declared_lost = 0
        self.resent = 0
        self.tries = {}  # seq -> times re-sent

    def done(self):
        return self.next_seq >= self.count and not self.inflight


def transfer(a_addr, b_addr, count, window, size, timeout, on_progress=None, loss_timeout=2.0,
             seed=1, a_ip=DEFAULT_A_IP, b_ip=DEFAULT_B_IP, connect_timeout=None, resend=0):
    """Send count frames a->b and count frames b->a at once, at most window of each direction
    in flight; a frame not received within loss_timeout seconds is declared lost. Ends when
    both directions are done, or after timeout seconds. Returns {"a->b": result, "b->a": result}
    (see Checker.result; each also has sent, declared_lost, timed_out, error, elapsed_s).

    on_progress(direction, received) is called whenever a direction received more frames.
    resend: a frame not received within loss_timeout is sent again, up to resend times, before
    it is declared lost (like a reliable protocol would; counted in "resent")."""
    return transfer_many(a_addr, [(b_addr, b_ip)], count, window, size, timeout,
                         on_progress=on_progress, loss_timeout=loss_timeout, seed=seed,
                         a_ip=a_ip, connect_timeout=connect_timeout, resend=resend,
                         names=["b"])


def transfer_many(a_addr, bs, count, window, size, timeout, on_progress=None, loss_timeout=2.0,
                  seed=1, a_ip=DEFAULT_A_IP, connect_timeout=None, resend=0, names=None):
    """transfer() between one end a (a master's tunnel device) and several ends b (its sites'
    slaves), given as [(b_addr, b_ip)]: count frames each way between a and every b, all at
    once. Each b's frames carry its own address and stream numbers, so a frame delivered to
    the wrong end is counted "foreign" there. Returns {"a->NAME": result, "NAME->a": result}
    for every b (names: default "b0", "b1", ...)."""
    if count < 0 or window < 1 or timeout <= 0 or loss_timeout <= 0:
        raise ValueError("count >= 0, window >= 1, timeout > 0 and loss_timeout > 0 required")
    if isinstance(size, (str, int)):
        size = parse_size(size)
    names = names or ["b%d" % i for i in range(len(bs))]
    start = time.monotonic()
    deadline = start + timeout
    cdeadline = min(deadline, start + (connect_timeout if connect_timeout else timeout))
    conns = []
    try:
        a = FrameConn.connect(a_addr, "a", cdeadline)
        conns.append(a)
        for (b_addr, _), name in zip(bs, names):
            conns.append(FrameConn.connect(b_addr, name, cdeadline))
    except BaseException:
        for c in conns:
            c.close()
        raise
    dirs = []
    for i, ((_, b_ip), name) in enumerate(zip(bs, names)):
        b = conns[1 + i]
        s_ab, s_ba = (STREAM_AB, STREAM_BA) if len(bs) == 1 else (2 * i + 1, 2 * i + 2)
        dirs.append(_Direction("a->" + name, s_ab, count,
                               PacketFactory(s_ab, size, seed, src=a_ip, dst=b_ip), a, b))
        dirs.append(_Direction(name + "->a", s_ba, count,
                               PacketFactory(s_ba, size, seed, src=b_ip, dst=a_ip), b, a))
    by_stream = {d.checker.stream: d for d in dirs}
    # a frame for no direction of the connection it arrived on is foreign to the first
    first_on = {}
    for d in dirs:
        first_on.setdefault(id(d.receiver), d)
    sel = selectors.DefaultSelector()
    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ, c)
    error = None
    timed_out = False
    try:
        while True:
            now = time.monotonic()
            if all(d.done() for d in dirs):
                break
            if now >= deadline:
                timed_out = True
                break
            for d in dirs:
                # frames overdue leave the window as lost
                while d.inflight:
                    seq, t = next(iter(d.inflight.items()))
                    if now - t < loss_timeout:
                        break
                    d.inflight.popitem(last=False)
                    if d.tries.get(seq, 0) < resend and len(d.sender.outbuf) < MAX_OUT_BUFFER:
                        d.tries[seq] = d.tries.get(seq, 0) + 1
                        d.resent += 1
                        d.sender.send_frame(d.factory.make(seq))
                        d.inflight[seq] = now
                        continue
                    d.declared_lost += 1
                # fill the window, keeping the socket buffer bounded
                while (len(d.inflight) < window and d.next_seq < count
                       and len(d.sender.outbuf) < MAX_OUT_BUFFER):
                    d.sender.send_frame(d.factory.make(d.next_seq))
                    d.inflight[d.next_seq] = now
                    d.next_seq += 1
            for conn in conns:
                if conn.outbuf and not conn.flush():
                    error = f"tunnel end {conn.name} failed: {conn.error}"
                ev = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.outbuf else 0)
                sel.modify(conn.sock, ev, conn)
            if error:
                break
            wait = deadline - now
            for d in dirs:
                if d.inflight:
                    wait = min(wait, next(iter(d.inflight.values())) + loss_timeout - now)
            wait = max(0.0, min(wait, 0.5))
            for key, mask in sel.select(wait):
                conn = key.data
                if mask & selectors.EVENT_WRITE and not conn.flush():
                    error = f"tunnel end {conn.name} failed: {conn.error}"
                if mask & selectors.EVENT_READ:
                    tnow = time.monotonic_ns()
                    grew = set()
                    for pkt in conn.read_frames():
                        _, stream, _, _ = parse_packet(pkt)
                        d = by_stream.get(stream)
                        if d is None or d.receiver is not conn:
                            d = first_on[id(conn)]
                        seq = d.checker.on_packet(pkt, tnow)
                        if seq is not None:
                            d.inflight.pop(seq, None)
                            grew.add(d)
                    if conn.eof:
                        error = (f"tunnel end {conn.name} closed the connection"
                                 + (f": {conn.error}" if conn.error else "")
                                 + " (is another frame client connected to it, or did braid "
                                 "stop?)")
                    if on_progress:
                        for d in grew:
                            on_progress(d.name, d.checker.received)
            if error:
                break
    finally:
        sel.close()
        for c in conns:
            c.close()
    elapsed = time.monotonic() - start
    out = {}
    for d in dirs:
        r = d.checker.result()
        r["sent"] = d.next_seq
        r["declared_lost"] = d.declared_lost
        r["resent"] = d.resent
        r["timed_out"] = timed_out
        r["error"] = error
        r["elapsed_s"] = round(elapsed, 3)
        if timed_out or error:
            r["ok"] = False
        out[d.name] = r
    return out


def failover_problems(res, count, max_lost, max_stall_s=1.0, max_reordered=0):
    """What is wrong with a transfer of count frames each way during which a link died: a stall
    of max_stall_s or more, frames unaccounted for, duplicates, corruption, more than
    max_reordered frames out of order, or max_lost or more frames lost (only those in flight on
    the dying link may be). [] if none."""
    problems = []
    for name, r in res.items():
        if r["max_stall_s"] >= max_stall_s:
            problems.append("%s stalled: %s" % (name, summary(r)))
        if r["received"] + r["declared_lost"] != count:
            problems.append("%s frames unaccounted for: %s" % (name, summary(r)))
        if r["duplicates"] + r["corrupted"] or r["out_of_order"] > max_reordered:
            problems.append("%s: %d duplicates, %d corrupted, %d out of order: %s"
                            % (name, r["duplicates"], r["corrupted"], r["out_of_order"],
                               summary(r)))
        if r["declared_lost"] >= max_lost:
            problems.append("%s lost %d frames (limit %d): %s"
                            % (name, r["declared_lost"], max_lost, summary(r)))
    return problems


def summary(result):
    """One readable line for one direction's result."""
    r = result
    lat = r["latency_ms"]
    line = (f"{r['direction']}: {r['received']}/{r['count']} received, {r['missing']} missing, "
            f"{r['duplicates']} duplicates, {r['out_of_order']} out of order, "
            f"{r['corrupted']} corrupted")
    if r["foreign"]:
        line += f", {r['foreign']} foreign"
    if lat["avg"] is not None:
        line += (f"; latency ms min {lat['min']} avg {lat['avg']} p99 {lat['p99']} "
                 f"max {lat['max']}")
    line += f"; largest stall {r['max_stall_s']} s"
    if r.get("mbit_s"):
        line += f"; {r['mbit_s']} Mbit/s"
    if r.get("timed_out"):
        line += "; TIMED OUT"
    if r.get("error"):
        line += f"; ERROR: {r['error']}"
    return line


# ---------------------------------------------------------------------------------------------
# a fake tunnel for self-tests: two notun-like listeners forwarding frames to each other


class FakeTunnel:
    """Two frame servers on 127.0.0.1 (ports a_port, b_port; 0 = any) that forward each frame
    from one client to the other, like a pair of braid ends. Per direction (index 0: a->b,
    1: b->a) faults can be injected on every Nth frame (1-based): drop, corrupt (one byte
    flipped), duplicate, reorder (held back and sent after the next frame); stall pauses a
    direction for stall_s seconds at frame stall_at. At most one fault per frame, in that order.
    Runs in a thread; use as a context manager. Counters in .stats[dir]."""

    HOLD_S = 0.05  # a held-back frame is released after this if no later frame comes

    def __init__(self, drop=0, corrupt=0, dup=0, reorder=0, stall_at=0, stall_s=0.0,
                 a_port=0, b_port=0, directions=(0, 1)):
        self.faults = dict(drop=drop, corrupt=corrupt, dup=dup, reorder=reorder)
        self.stall_at, self.stall_s = stall_at, stall_s
        self.directions = directions
        self.listeners = []
        for port in (a_port, b_port):
            ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind(("127.0.0.1", port))
            ls.listen(4)
            ls.setblocking(False)
            self.listeners.append(ls)
        self.addrs = ["127.0.0.1:%d" % ls.getsockname()[1] for ls in self.listeners]
        self.clients = [None, None]
        self.stats = [collections.Counter(), collections.Counter()]
        self.index = [0, 0]
        self.held = [None, None]  # (frame, release time)
        self.paused_until = [0.0, 0.0]
        self.pending = [collections.deque(), collections.deque()]  # frames held by a stall
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="FakeTunnel", daemon=True)
        self.error = None

    @property
    def a(self):
        return self.addrs[0]

    @property
    def b(self):
        return self.addrs[1]

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self._stop.set()
        self._thread.join(10)
        for c in self.clients:
            if c:
                c.close()
        for ls in self.listeners:
            ls.close()

    def _every(self, kind, i):
        n = self.faults[kind]
        return n > 0 and i % n == 0

    def _deliver(self, d, frame):
        dst = self.clients[1 - d]
        if dst is None or dst.eof:
            self.stats[d]["no_peer"] += 1
            return
        if len(dst.outbuf) > 8 * MAX_OUT_BUFFER:
            self.stats[d]["overflow"] += 1
            return
        dst.send_frame(frame)
        self.stats[d]["forwarded"] += 1

    def _forward(self, d, frame, now):
        self.index[d] += 1
        i = self.index[d]
        if d not in self.directions:
            self._deliver(d, frame)
            return
        if self.stall_at and i == self.stall_at:
            self.paused_until[d] = now + self.stall_s
            self.stats[d]["stalls"] += 1
        if now < self.paused_until[d]:
            self.pending[d].append((frame, i))
            return
        self._forward_now(d, frame, i, now)

    def _forward_now(self, d, frame, i, now):
        if self._every("drop", i):
            self.stats[d]["dropped"] += 1
            return
        if self._every("corrupt", i):
            frame = frame[:-1] + bytes([frame[-1] ^ 0x5A])
            self.stats[d]["corrupted"] += 1
        elif self._every("dup", i):
            self._deliver(d, frame)
            self.stats[d]["duplicated"] += 1
        elif self._every("reorder", i) and self.held[d] is None:
            self.held[d] = (frame, now + self.HOLD_S)
            return
        self._deliver(d, frame)
        if self.held[d] is not None:
            self._deliver(d, self.held[d][0])
            self.held[d] = None
            self.stats[d]["reordered"] += 1

    def _timers(self, now):
        for d in (0, 1):
            if self.held[d] is not None and now >= self.held[d][1]:
                self._deliver(d, self.held[d][0])  # no later frame came: not reordered
                self.held[d] = None
            if self.pending[d] and now >= self.paused_until[d]:
                while self.pending[d]:
                    frame, i = self.pending[d].popleft()
                    self._forward_now(d, frame, i, now)

    def _run(self):
        sel = selectors.DefaultSelector()
        for i, ls in enumerate(self.listeners):
            sel.register(ls, selectors.EVENT_READ, ("listen", i))
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                self._timers(now)
                for i, c in enumerate(self.clients):
                    if c is None:
                        continue
                    if c.outbuf:
                        c.flush()
                    ev = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.outbuf else 0)
                    sel.modify(c.sock, ev, ("client", i))
                for key, mask in sel.select(0.01):
                    kind, i = key.data
                    if kind == "listen":
                        try:
                            s, _ = self.listeners[i].accept()
                        except OSError:
                            continue
                        if self.clients[i] is not None and not self.clients[i].eof:
                            s.close()  # one client at a time, like notun
                            self.stats[i]["refused"] += 1
                            continue
                        if self.clients[i] is not None:
                            sel.unregister(self.clients[i].sock)
                            self.clients[i].close()
                        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        self.clients[i] = FrameConn(s, "ab"[i])
                        sel.register(s, selectors.EVENT_READ, ("client", i))
                        continue
                    c = self.clients[i]
                    if mask & selectors.EVENT_READ:
                        for frame in c.read_frames():
                            self._forward(i, frame, time.monotonic())
                        if c.eof:
                            sel.unregister(c.sock)
                            c.close()
                            self.clients[i] = None
                    elif mask & selectors.EVENT_WRITE:
                        c.flush()
        except Exception as e:  # reported to the test through .error
            self.error = repr(e)
        finally:
            sel.close()


__all__ = [
    "Checker", "FakeTunnel", "FrameConn", "FrameError", "PacketFactory", "MIN_SIZE",
    "MAX_SIZE", "parse_addr", "parse_packet", "parse_size", "summary", "transfer",
    "ip_checksum", "OK", "CORRUPT", "FOREIGN",
]
