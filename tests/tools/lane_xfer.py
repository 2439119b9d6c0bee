#!/usr/bin/env python3
"""lane_xfer.py: exact-bytes checks for the TCP lane tests.

  lane_xfer.py serve ADDR PORT SECONDS
      for each connection: read until the client's FIN, answer the SHA-256 of what came and
      then the bytes the client asked for in its first 8 bytes (big-endian), then close; stops
      by itself after SECONDS.
  lane_xfer.py reset-server ADDR PORT SECONDS
      for each connection: read 1000 bytes, send 1000 bytes back, then reset it (RST)
  lane_xfer.py reset-client ADDR PORT
      exit status 0 when the connection gets its 1000 bytes and then a reset
  lane_xfer.py send ADDR PORT UP DOWN CONNS [SECONDS]
      CONNS parallel connections, each sends 8 bytes (DOWN) and UP random bytes, half-closes,
      and checks the digest and that DOWN bytes of the server's pattern come back; exit status
      0 when every connection got exactly its bytes.
"""
import hashlib
import os
import socket
import struct
import sys
import threading
import time


def pattern(n):
    block = hashlib.sha256(b"braid lane").digest() * 2048  # 64 KiB
    out = bytearray()
    while len(out) < n:
        out += block[: n - len(out)]
    return bytes(out)


def serve(addr, port, seconds):
    ls = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(128)
    ls.settimeout(0.5)
    end = time.monotonic() + seconds

    def one(c):
        try:
            c.settimeout(max(1.0, end - time.monotonic()))
            h = hashlib.sha256()
            head = b""
            while True:
                d = c.recv(65536)
                if not d:
                    break
                if len(head) < 8:
                    take = 8 - len(head)
                    head += d[:take]
                    d = d[take:]
                h.update(d)
            down = struct.unpack(">Q", head)[0] if len(head) == 8 else 0
            c.sendall(h.hexdigest().encode())
            if down:
                c.sendall(pattern(down))
        except OSError:
            pass
        finally:
            c.close()

    while time.monotonic() < end:
        try:
            c, _ = ls.accept()
        except socket.timeout:
            continue
        threading.Thread(target=one, args=(c,), daemon=True).start()


def reset_server(addr, port, seconds):
    ls = socket.socket(socket.AF_INET)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(16)
    ls.settimeout(0.5)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            c, _ = ls.accept()
        except socket.timeout:
            continue
        try:
            c.settimeout(5)
            got = 0
            while got < 1000:
                d = c.recv(1000 - got)
                if not d:
                    break
                got += len(d)
            c.sendall(b"r" * 1000)
            time.sleep(0.2)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        c.close()


def reset_client(addr, port):
    c = socket.create_connection((addr, port), timeout=10)
    c.settimeout(10)
    c.sendall(b"q" * 1000)
    got = 0
    try:
        while True:
            d = c.recv(65536)
            if not d:
                print("the connection ended with a FIN after %d bytes, not a reset" % got)
                return 1
            got += len(d)
    except ConnectionResetError:
        print("reset after %d bytes" % got)
        return 0 if got == 1000 else 1
    except OSError as e:
        print("error after %d bytes: %s" % (got, e))
        return 1


def send(addr, port, up, down, conns, seconds):
    results = [None] * conns

    def one(i):
        try:
            data = os.urandom(up)
            c = socket.create_connection((addr, port), timeout=seconds)
            c.settimeout(seconds)
            c.sendall(struct.pack(">Q", down) + data)
            c.shutdown(socket.SHUT_WR)
            got = bytearray()
            while True:
                d = c.recv(65536)
                if not d:
                    break
                got += d
            c.close()
            want = hashlib.sha256(data).hexdigest().encode() + pattern(down)
            results[i] = "ok" if bytes(got) == want else \
                "wrong bytes: %d of %d, digest %s" % (len(got), len(want), got[:64] == want[:64])
        except OSError as e:
            results[i] = "error: %s" % e

    t0 = time.monotonic()
    th = [threading.Thread(target=one, args=(i,)) for i in range(conns)]
    for t in th:
        t.start()
    for t in th:
        t.join(seconds + 5)
    bad = [(i, r) for i, r in enumerate(results) if r != "ok"]
    dt = time.monotonic() - t0
    print("%d connections, %d up / %d down bytes each, %.2f s, %d bad" %
          (conns, up, down, dt, len(bad)))
    for i, r in bad[:10]:
        print("  connection %d: %s" % (i, r))
    return 0 if not bad else 1


def main():
    a = sys.argv[1:]
    if a and a[0] == "serve" and len(a) == 4:
        serve(a[1], int(a[2]), float(a[3]))
        return 0
    if a and a[0] == "reset-server" and len(a) == 4:
        reset_server(a[1], int(a[2]), float(a[3]))
        return 0
    if a and a[0] == "reset-client" and len(a) == 3:
        return reset_client(a[1], int(a[2]))
    if a and a[0] == "send" and len(a) in (6, 7):
        return send(a[1], int(a[2]), int(a[3]), int(a[4]), int(a[5]),
                    float(a[6]) if len(a) == 7 else 30.0)
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
