# fakedns.py: a tiny DNS server on 127.0.0.1 for tests (so that name resolution never leaves
# loopback): A records from a table, NODATA for other types of known names, NXDOMAIN otherwise.
import socket
import struct
import threading


class FakeDNS:
    def __init__(self, names):
        """names: {"phone1.test": "127.0.0.1", ...} (IPv4 only)."""
        self.names = {k.lower().rstrip("."): v for k, v in names.items()}
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind(("127.0.0.1", 0))
        self.s.settimeout(0.2)
        self.port = self.s.getsockname()[1]
        self.queries = []
        self._stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    @property
    def server(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        self._stop.set()
        self.t.join(3)
        self.s.close()

    def _run(self):
        while not self._stop.is_set():
            try:
                q, src = self.s.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            r = self.answer(q)
            if r:
                self.s.sendto(r, src)

    def answer(self, q):
        if len(q) < 12:
            return None
        qid, flags, qd = struct.unpack(">HHH", q[:6])
        if qd != 1:
            return None
        labels, i = [], 12
        while i < len(q) and q[i] != 0:
            n = q[i]
            labels.append(q[i + 1:i + 1 + n].decode("ascii", "replace"))
            i += 1 + n
        if i + 5 > len(q):
            return None
        qtype, qclass = struct.unpack(">HH", q[i + 1:i + 5])
        question = q[12:i + 5]
        name = ".".join(labels).lower()
        self.queries.append((name, qtype))
        rd = flags & 0x0100
        if name not in self.names:
            return struct.pack(">HHHHHH", qid, 0x8080 | rd | 3, 1, 0, 0, 0) + question
        if qtype != 1:
            return struct.pack(">HHHHHH", qid, 0x8080 | rd, 1, 0, 0, 0) + question
        ans = (b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) +
               socket.inet_aton(self.names[name]))
        return struct.pack(">HHHHHH", qid, 0x8480 | rd, 1, 1, 0, 0) + question + ans
