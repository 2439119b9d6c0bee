#!/bin/bash
# lane_echo.sh: the TCP lane's terminator against Linux's own TCP (root): in a network namespace
# a TUN device lane0 goes to build/tools/lane-echo (lane_stack echoing every connection); a
# client there connects through it to addresses nobody has (198.18.50.7:80, 198.18.60.9:443,
# an IPv6 one), sends 4 MB on one and 100 KB on each of 20 others, and gets exactly its bytes
# back; the connections close cleanly.
set -u
cd "$(dirname "$0")/../.."
T=${BRAID_TOOLS:-build/tools}
if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP e2e lane_echo: needs root (a network namespace and a TUN device)"
    exit 0
fi
N=braid-lane-$$
D=$(mktemp -d /tmp/braid-lane.XXXXXX)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    ip netns del "$N" 2>/dev/null
    rm -rf "$D"
}
trap cleanup EXIT
ip netns add "$N" || { echo "FAIL: cannot create a namespace"; exit 1; }
inN() { ip netns exec "$N" "$@"; }
inN ip link set lo up
# (ip netns exec execs the program: $! is its PID)
ip netns exec "$N" "$T"/lane-echo lane0 60 >"$D"/echo.log 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q ready "$D"/echo.log 2>/dev/null && break; sleep 0.05; done
inN ip link set lane0 up
inN ip addr add 198.18.0.2/24 dev lane0
inN ip route add 198.18.50.0/24 dev lane0
inN ip route add 198.18.60.0/24 dev lane0
inN ip -6 addr add 2001:2::2/64 dev lane0 nodad
inN ip -6 route add 2001:2:0:50::/64 dev lane0
fail=0
echo "e2e lane_echo: lwIP's TCP against Linux's, through a TUN device"
inN python3 - "$D" <<'PY' || fail=1
import hashlib, os, socket, sys, threading, time
def echo(addr, n, family=socket.AF_INET):
    data = os.urandom(n)
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(addr)
    got = bytearray()
    def reader():
        while True:
            b = s.recv(65536)
            if not b:
                return
            got.extend(b)
    t = threading.Thread(target=reader)
    t.start()
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    t.join(30)
    s.close()
    return bytes(got) == data, len(got)
ok = True
t0 = time.monotonic()
r = echo(("198.18.50.7", 80), 4 * 1024 * 1024)
dt = time.monotonic() - t0
print("  %s: 4 MiB to 198.18.50.7:80 echoed back exactly (%d bytes, %.0f Mbit/s both ways)"
      % ("ok" if r[0] else "FAIL", r[1], 2 * 8 * 4 * 1024 * 1024 / dt / 1e6))
ok &= r[0]
results = []
def one(i):
    results.append(echo(("198.18.60.9", 443 if i % 2 else 8080 + i), 100 * 1024))
ts = [threading.Thread(target=one, args=(i,)) for i in range(20)]
for t in ts: t.start()
for t in ts: t.join(60)
n_ok = sum(1 for r in results if r[0])
print("  %s: 20 connections at once to 198.18.60.9 (ports 443, 8080+): %d of 20 echoed exactly"
      % ("ok" if n_ok == 20 else "FAIL", n_ok))
ok &= n_ok == 20
r = echo(("2001:2:0:50::7", 80, 0, 0), 512 * 1024, socket.AF_INET6)
print("  %s: IPv6, 512 KiB to [2001:2:0:50::7]:80 echoed back exactly" % ("ok" if r[0] else "FAIL"))
ok &= r[0]
sys.exit(0 if ok else 1)
PY
kill -INT "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
pid=
sed 's/^/  lane-echo: /' "$D"/echo.log
DESC="lane-echo closed every connection it accepted, and dropped nothing it had to send"
if grep -qE 'accepted=22 closed=22 .* out_dropped=0' "$D"/echo.log; then echo "  ok: $DESC"
else echo "  FAIL: $DESC"; fail=1; fi
if [ $fail -eq 0 ]; then echo "PASS e2e lane_echo"; else echo "FAIL e2e lane_echo"; fi
exit $fail
