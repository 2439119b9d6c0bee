# fakesocks.py: a scripted SOCKS5 server on loopback for tests: a working UDP relay, or one of
# the broken and hostile behaviours a real proxy app can show (wrong version, REP != 0, bad
# login, truncated or split replies, bad relay names, silence, fragments, foreign sources).
import socket
import struct
import threading
import time

MODES = ("ok", "split", "unspecified", "wrong_version", "rep7", "auth_rejected", "truncated",
         "long_domain", "binary_domain", "silent", "frag", "close_after_assoc")


def _recv_exact(c, n):
    buf = b""
    while len(buf) < n:
        d = c.recv(n - len(buf))
        if not d:
            raise ConnectionError("closed")
        buf += d
    return buf


class FakeSocks:
    """A SOCKS5 server on 127.0.0.1 behaving as mode says. Counts connections and datagrams."""

    def __init__(self, mode, user=None, password=None):
        assert mode in MODES, mode
        self.mode = mode
        self.user, self.password = user, password
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.ls.settimeout(0.2)
        self.port = self.ls.getsockname()[1]
        self.connections = 0
        self.associations = 0
        self.relayed_up = 0
        self.relayed_down = 0
        self.hostile_sent = 0
        self.blackhole = False  # set to drop every datagram while the TCP connection stays up
        self._stop = threading.Event()
        self._threads = []
        self._socks = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self):
        self._stop.set()
        for s in list(self._socks):
            try:
                s.close()
            except OSError:
                pass
        for t in self._threads:
            t.join(3)
        self.ls.close()

    def _accept(self):
        while not self._stop.is_set():
            try:
                c, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            self._socks.append(c)
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            t.start()
            self._threads.append(t)

    def _send_split(self, c, data):
        """One byte per TCP segment, with pauses, to exercise reassembly of replies."""
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(data)):
            c.sendall(data[i:i + 1])
            time.sleep(0.02)

    def _serve(self, c):
        try:
            self._session(c)
        except (OSError, ConnectionError):
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def _idle(self, c, seconds=30):
        """Hold the connection open without answering (until the client or stop closes it)."""
        c.settimeout(0.2)
        end = time.monotonic() + seconds
        while not self._stop.is_set() and time.monotonic() < end:
            try:
                if not c.recv(4096):
                    return
            except socket.timeout:
                continue

    def _session(self, c):
        m = self.mode
        c.settimeout(5)
        if m == "silent":
            self._idle(c)
            return
        ver, n = _recv_exact(c, 2)
        methods = _recv_exact(c, n)
        if m == "wrong_version":
            c.sendall(b"\x04\x5a")  # a SOCKS4 answer
            self._idle(c, 5)
            return
        if m == "auth_rejected" or (self.user and 2 in methods):
            c.sendall(b"\x05\x02")
            _, ul = _recv_exact(c, 2)
            user = _recv_exact(c, ul)
            (pl,) = _recv_exact(c, 1)
            pw = _recv_exact(c, pl)
            if m == "auth_rejected" or user.decode() != self.user or pw.decode() != self.password:
                c.sendall(b"\x01\x01")
                return
            c.sendall(b"\x01\x00")
        elif m == "split":
            self._send_split(c, b"\x05\x00")
        else:
            c.sendall(b"\x05\x00")
        hdr = _recv_exact(c, 4)
        atyp = hdr[3]
        alen = {1: 4, 4: 16}.get(atyp)
        if alen is None:
            return
        _recv_exact(c, alen + 2)
        if hdr[1] != 3:
            c.sendall(b"\x05\x07\x00\x01\x00\x00\x00\x00\x00\x00")
            return
        if m == "rep7":
            c.sendall(b"\x05\x07\x00\x01\x00\x00\x00\x00\x00\x00")
            self._idle(c, 5)
            return
        if m == "truncated":
            c.sendall(b"\x05\x00\x00\x01\x7f\x00")
            time.sleep(0.1)
            return  # closes mid-reply
        if m == "long_domain":
            name = b"x" * 255
            c.sendall(b"\x05\x00\x00\x03" + bytes([len(name)]) + name + struct.pack(">H", 4000))
            self._idle(c, 10)
            return
        if m == "binary_domain":
            name = bytes(range(1, 200))
            c.sendall(b"\x05\x00\x00\x03" + bytes([len(name)]) + name + struct.pack(">H", 4000))
            self._idle(c, 10)
            return
        # a working relay
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):  # a Python relay is slow: buffer more
            u.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
        u.bind(("127.0.0.1", 0))
        self._socks.append(u)
        rport = u.getsockname()[1]
        bnd = b"\x00\x00\x00\x00" if m == "unspecified" else socket.inet_aton("127.0.0.1")
        reply = b"\x05\x00\x00\x01" + bnd + struct.pack(">H", rport)
        if m == "split":
            self._send_split(c, reply)
        else:
            c.sendall(reply)
        self.associations += 1
        if m == "close_after_assoc":
            time.sleep(0.5)
            u.close()
            return
        rt = threading.Thread(target=self._relay, args=(u,), daemon=True)
        rt.start()
        self._threads.append(rt)
        self._idle(c, 3600)
        u.close()

    def _relay(self, u):
        client = None
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a foreign source
        other.bind(("127.0.0.1", 0))
        u.settimeout(0.2)
        try:
            while not self._stop.is_set():
                try:
                    data, src = u.recvfrom(65535)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if self.blackhole:
                    continue
                if client is None or src == client:
                    client = src
                    if len(data) < 10 or data[3] != 1 or data[2] != 0:
                        continue
                    dst = (socket.inet_ntoa(data[4:8]), struct.unpack(">H", data[8:10])[0])
                    u.sendto(data[10:], dst)
                    self.relayed_up += 1
                else:
                    wrapped = (b"\x00\x00\x00\x01" + socket.inet_aton(src[0]) +
                               struct.pack(">H", src[1]) + data)
                    u.sendto(wrapped, client)
                    self.relayed_down += 1
                    if self.mode == "frag":
                        # the same datagram as fragment 1, and once more from another socket
                        u.sendto(wrapped[:2] + b"\x01" + wrapped[3:], client)
                        other.sendto(wrapped, client)
                        self.hostile_sent += 2
        finally:
            other.close()
