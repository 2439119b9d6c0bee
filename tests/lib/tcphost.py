# tcphost.py: a small TCP client in Python for the TCP lane's tests in the notun build: it
# speaks IPv4 and TCP itself, in the frames of a notun tunnel device (2-byte length, then one IP
# packet), so that TCP connections enter the slave's tunnel without a TUN device or root.
#
# It implements what a lossless path needs and a little more: the three-way handshake with an
# MSS option, the peer's window (no scaling), cumulative ACKs, go-back-N after 300 ms without
# progress, half-close with FIN both ways, and RST. Every connection runs the exchange of
# tests/tools/lane_xfer.py's server: 8 bytes (how many bytes to send back), UP bytes, FIN; then
# it expects the SHA-256 (hex) of those UP bytes and DOWN bytes of the server's pattern.
# Everything is bounded: connections, buffers and time.
import hashlib
import random
import selectors
import socket
import struct
import time

MSS = 1300  # (within the tests' tunnel MTU, 1428, with 40 bytes of headers)
RTO = 0.3
WINDOW = 65535


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def pattern(n):
    """lane_xfer.py's server pattern."""
    block = hashlib.sha256(b"braid lane").digest() * 2048
    out = bytearray()
    while len(out) < n:
        out += block[: n - len(out)]
    return bytes(out)


def payload(seed, n):
    """n pseudo-random bytes of a connection's own."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(b"%d:%d" % (seed, i)).digest()
        i += 1
    return bytes(out[:n])


SYN, ACK, FIN, RST, PSH = 0x02, 0x10, 0x01, 0x04, 0x08


class Conn:
    def __init__(self, host, sport, dst, up, down, seed):
        self.h = host
        self.sport = sport
        self.dst = dst  # (ip, port)
        self.data = struct.pack(">Q", down) + payload(seed, up)
        self.digest = hashlib.sha256(self.data[8:]).hexdigest().encode()
        self.want = len(self.digest) + down
        self.down = down
        self.iss = random.getrandbits(32)
        self.una = 0   # bytes of data acknowledged (offsets from the first data byte)
        self.nxt = 0   # next data offset to send
        self.fin_sent = self.fin_acked = False
        self.syn_acked = False
        self.irs = None
        self.rcv = bytearray()
        self.peer_fin = False
        self.peer_wnd = 0
        self.rst = False
        self.last_progress = time.monotonic()
        self.opened_at = time.monotonic()
        self.first_byte_s = None
        self.error = None

    # sequence numbers
    def seq_of(self, off):
        return (self.iss + 1 + off) & 0xFFFFFFFF

    def rcv_nxt(self):
        return (self.irs + 1 + len(self.rcv) + (1 if self.peer_fin else 0)) & 0xFFFFFFFF

    def segment(self, flags, seq, data=b"", mss=False):
        opts = struct.pack("!BBH", 2, 4, MSS) if mss else b""
        ack = self.rcv_nxt() if self.irs is not None else 0
        if self.irs is not None:
            flags |= ACK
        off = (20 + len(opts)) // 4
        src, dst = self.h.src_b, socket.inet_aton(self.dst[0])
        tcp = struct.pack("!HHIIBBHHH", self.sport, self.dst[1], seq, ack, off << 4, flags,
                          WINDOW, 0, 0) + opts + data
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
        c = checksum(pseudo + tcp)
        tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src, dst)
        ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
        self.h.emit(ip + tcp)

    def done(self):
        return self.rst or self.error is not None or (self.fin_acked and self.peer_fin)

    def pump(self, now):
        """Send what the window allows; go back after RTO without progress."""
        if self.done():
            return
        if now - self.last_progress > RTO:
            self.last_progress = now
            self.nxt = self.una
            if self.fin_sent and not self.fin_acked:
                self.fin_sent = False
            if not self.syn_acked:
                self.segment(SYN, self.iss, mss=True)
                return
        if not self.syn_acked:
            return
        limit = self.una + min(self.peer_wnd, 8 * 65536)
        while self.nxt < len(self.data) and self.nxt < limit:
            n = min(MSS, len(self.data) - self.nxt, limit - self.nxt)
            self.segment(PSH, self.seq_of(self.nxt), self.data[self.nxt:self.nxt + n])
            self.nxt += n
        if self.nxt == len(self.data) and not self.fin_sent:
            self.segment(FIN, self.seq_of(self.nxt))
            self.fin_sent = True

    def input(self, flags, seq, ack, wnd, data, now):
        if flags & RST:
            self.rst = True
            return
        if not self.syn_acked:
            if flags & SYN and flags & ACK and ack == (self.iss + 1) & 0xFFFFFFFF:
                self.irs = seq
                self.syn_acked = True
                self.peer_wnd = wnd
                self.last_progress = now
                self.segment(0, self.seq_of(0))  # the handshake's ACK
                self.pump(now)
            return
        if flags & ACK:
            acked = (ack - self.iss - 1) & 0xFFFFFFFF
            if acked <= len(self.data) + 1 and acked > self.una:
                if acked == len(self.data) + 1:
                    self.fin_acked = True
                    acked = len(self.data)
                if acked > self.una:
                    self.una = acked
                self.last_progress = now
            elif acked == len(self.data) + 1 and self.fin_sent:
                self.fin_acked = True
            self.peer_wnd = wnd
        if data or flags & FIN:
            if seq == self.rcv_nxt() and not self.peer_fin:
                if data:
                    if self.first_byte_s is None:
                        self.first_byte_s = now - self.opened_at
                    if len(self.rcv) + len(data) > self.want:
                        self.error = "more bytes than asked for"
                    self.rcv += data
                if flags & FIN:
                    self.peer_fin = True
            self.segment(0, (self.seq_of(self.nxt) + (1 if self.fin_sent else 0)) & 0xFFFFFFFF)

    def result(self):
        ok = (not self.rst and self.error is None and self.peer_fin and self.fin_acked and
              bytes(self.rcv[:64]) == self.digest and len(self.rcv) == self.want and
              bytes(self.rcv[64:]) == pattern(self.down))
        why = (self.error or ("reset" if self.rst else None) or
               (None if ok else "got %d of %d bytes, fin %s/%s, digest %s" % (
                   len(self.rcv), self.want, self.peer_fin, self.fin_acked,
                   bytes(self.rcv[:64]) == self.digest)))
        return {"ok": ok, "error": why, "received": len(self.rcv), "reset": self.rst,
                "first_byte_s": self.first_byte_s}


class Host:
    """One notun frame client: a host with address src behind the tunnel device."""

    def __init__(self, frames_addr, src="198.18.0.2"):
        self.sock = socket.create_connection(frames_addr, timeout=5)
        self.sock.setblocking(False)
        self.src_b = socket.inet_aton(src)
        self.out = bytearray()
        self.inb = bytearray()
        self.conns = {}
        self.other = 0  # packets that were not for a connection of ours

    def emit(self, pkt):
        self.out += struct.pack("!H", len(pkt)) + pkt

    def open(self, dst, up, down, seed=None):
        sport = 20000 + len(self.conns)
        c = Conn(self, sport, dst, up, down, seed if seed is not None else sport)
        self.conns[sport] = c
        c.segment(SYN, c.iss, mss=True)
        return c

    def _frames(self, now):
        while len(self.inb) >= 2:
            n = struct.unpack("!H", self.inb[:2])[0]
            if len(self.inb) < 2 + n:
                return
            pkt = bytes(self.inb[2:2 + n])
            del self.inb[:2 + n]
            if len(pkt) < 40 or pkt[0] >> 4 != 4 or pkt[9] != 6:
                self.other += 1
                continue
            ihl = (pkt[0] & 15) * 4
            t = pkt[ihl:]
            sport, dport, seq, ack, off, flags, wnd = struct.unpack("!HHIIBBH", t[:16])
            c = self.conns.get(dport)
            if not c:
                self.other += 1
                continue
            c.input(flags, seq, ack, wnd, t[(off >> 4) * 4:], now)

    def run(self, timeout, until=None):
        """Run until every connection is done (or until() is true), at most timeout s."""
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            now = time.monotonic()
            for c in self.conns.values():
                if len(self.out) < 4 << 20:
                    c.pump(now)
            if self.out:
                try:
                    k = self.sock.send(self.out)
                    del self.out[:k]
                except BlockingIOError:
                    pass
            if until and until():
                break
            if all(c.done() for c in self.conns.values()) and not self.out:
                break
            for _ in sel.select(0.01):
                try:
                    d = self.sock.recv(1 << 20)
                except BlockingIOError:
                    continue
                if not d:
                    raise ConnectionError("the tunnel device closed the frame connection")
                self.inb += d
                self._frames(time.monotonic())
        sel.close()
        return [c.result() for c in self.conns.values()]

    def close(self):
        self.sock.close()


if __name__ == "__main__":
    # tcphost.py FRAMES_PORT DST_IP DST_PORT CONNS UP DOWN SECONDS: a manual check
    import sys
    h = Host(("127.0.0.1", int(sys.argv[1])))
    for i in range(int(sys.argv[4])):
        h.open((sys.argv[2], int(sys.argv[3])), int(sys.argv[5]), int(sys.argv[6]))
    res = h.run(float(sys.argv[7]))
    print(res)
    sys.exit(0 if all(r["ok"] for r in res) else 1)
