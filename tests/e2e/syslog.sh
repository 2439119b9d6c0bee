#!/bin/bash
# syslog.sh: log_target "auto" sends the log to syslog when stderr is /dev/null (a daemon started
# without the journal), and "syslog" always does; with priorities and the program's name. Root:
# a private mount namespace gets its own /dev with a test syslog socket at /dev/log.
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
B=${BRAID_BUILD_NOTUN:-build/notun}
case "$B" in /*) ;; *) B=$ROOT/$B ;; esac
if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP e2e syslog: needs root (a mount namespace with its own /dev/log)"
    exit 0
fi
command -v unshare >/dev/null || { echo "FAIL e2e syslog: unshare not installed"; exit 1; }
T=$(mktemp -d /tmp/braid-syslog.XXXXXX)
trap 'rm -rf "$T"' EXIT
"$B"/braid-master genkey >"$T"/k 2>/dev/null
chmod 600 "$T"/k
SPUB=$("$B"/braid-slave genkey | "$B"/braid-slave pubkey)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
for target in auto syslog; do
    cat >"$T"/$target.conf <<EOF
private_key_file = "k";
listen = "127.0.0.1:$(port)";
sites = ( { public_key = "$SPUB"; } );
tunnel = { notun_listen = "127.0.0.1:$(port)"; };
log_target = "$target";
EOF
    chmod 600 "$T"/$target.conf
done
# in the namespace: a tmpfs /dev with null and urandom, a syslog socket that writes what it
# gets to a file, the master with stderr on /dev/null until its start is logged, then stopped
cat >"$T"/run.sh <<'EOF'
set -u
T=$1 B=$2 target=$3
mount -t tmpfs tmpfs /dev || exit 1
mknod -m 666 /dev/null c 1 3 && mknod -m 666 /dev/urandom c 1 9 && mknod -m 666 /dev/random c 1 8
python3 - "$T/$target.got" <<'PY' &
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
s.settimeout(0.2)
end = time.monotonic() + 15
with open(sys.argv[1], "w") as f:
    while time.monotonic() < end:
        try:
            f.write(s.recv(4096).decode(errors="replace") + "\n")
            f.flush()
        except socket.timeout:
            pass
        if os.path.exists(sys.argv[1] + ".stop"):
            break
PY
server=$!
for _ in $(seq 100); do [ -S /dev/log ] && break; sleep 0.05; done
"$B"/braid-master -c "$T/$target.conf" >/dev/null 2>/dev/null &
master=$!
for _ in $(seq 100); do grep -q "listening on" "$T/$target.got" 2>/dev/null && break; sleep 0.05; done
kill $master; wait $master
touch "$T/$target.got.stop"; wait $server
EOF
fail=0
echo "e2e syslog: the log goes to syslog without a journal"
for target in auto syslog; do
    unshare -m bash "$T"/run.sh "$T" "$B" $target
    if grep -qE '^<30>.*braid-master\[[0-9]+\]: braid-master listening on 127\.0\.0\.1:' "$T/$target.got"; then
        echo "  ok: log_target \"$target\", stderr on /dev/null: the start is in syslog (daemon.info)"
    else
        echo "  FAIL: log_target \"$target\": not in syslog; it got:"; cat "$T/$target.got"; fail=1
    fi
done
if [ $fail -eq 0 ]; then echo "PASS e2e syslog"; else echo "FAIL e2e syslog"; fi
exit $fail
