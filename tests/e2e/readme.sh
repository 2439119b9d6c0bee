#!/bin/bash
# readme.sh: runs README's "Trying it in two network namespaces" walk-through exactly as written
# (the lines between its walkthrough markers), with the TUN build first in PATH, and checks that
# the session and both links came up, the ping through the tunnel lost nothing and the master
# names the site's links; then does the README's "To finish".
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
B=${BRAID_TUN_BUILD:-build}
case "$B" in /*) ;; *) B=$ROOT/$B ;; esac
if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP e2e readme: needs root (network namespaces and TUN devices)"
    exit 0
fi
for ns in braid-srv braid-site; do
    if ip netns list | grep -qw "$ns"; then
        echo "SKIP e2e readme: namespace $ns exists already (someone is trying braid here)"
        exit 0
    fi
done
script=$(mktemp /tmp/braid-readme.XXXXXX)
out=$(mktemp /tmp/braid-readme-out.XXXXXX)
sed -n '/<!-- walkthrough:start -->/,/<!-- walkthrough:end -->/p' README.md |
    sed -e '/^<!--/d' -e '/^```/d' >"$script"
folder() { sed -n 's/^WALKTHROUGH_FOLDER=//p' "$out" | head -1; }
cleanup() { # README's "To finish", by the PIDs the walk-through wrote
    local d
    d=$(folder)
    if [ -n "$d" ] && [ -d "$d" ]; then
        for p in $(cat "$d"/master.pid "$d"/slave.pid 2>/dev/null); do kill "$p" 2>/dev/null; done
        for p in $(cat "$d"/master.pid "$d"/slave.pid 2>/dev/null); do
            for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        done
        [ -n "${KEEP:-}" ] && echo "kept $d" || rm -rf "$d"
    fi
    ip netns del braid-site 2>/dev/null
    ip netns del braid-srv 2>/dev/null
    rm -f "$script" "$out"
}
trap cleanup EXIT
fail=0
check() { if "$@"; then echo "  ok: $DESC"; else echo "  FAIL: $DESC"; fail=1; fi; }

echo "e2e readme: the walk-through in two namespaces, as README.md has it"
DESC="README has the walk-through ($(wc -l <"$script") lines)"
check test "$(wc -l <"$script")" -gt 10
# as a user would paste it, stopping at the first failing line; it tells us its folder
(export PATH="$B:$PATH"; bash -e -c "trap 'echo WALKTHROUGH_FOLDER=\$D' EXIT
$(cat "$script")") >"$out" 2>&1
rc=$?
DESC="every line ran (exit status 0)"
check test $rc -eq 0
DESC="the slave's status shows the session and both links up"
check grep -q "braid-slave: session established, 2 of 2 links up" "$out"
DESC="the ping through the tunnel lost nothing"
check grep -q " 0% packet loss" "$out"
DESC="the master's status names the site's links dsl and phone, both up"
check sh -c "grep -qE '^[0-9]+ +dsl +up ' '$out' && grep -qE '^[0-9]+ +phone +up ' '$out'"
if [ $fail -ne 0 ]; then
    echo "---- output"
    cat "$out"
    d=$(folder)
    [ -n "$d" ] && tail -20 "$d"/master.log "$d"/slave.log
fi
if [ $fail -eq 0 ]; then echo "PASS e2e readme"; else echo "FAIL e2e readme"; fi
exit $fail
