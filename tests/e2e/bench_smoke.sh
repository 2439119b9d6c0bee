#!/bin/bash
# bench_smoke.sh: smoke versions of benchmarks S1 (aggregate) and S4 (failover), a few seconds each, with
# loose bounds that catch breakage only, not performance (root: namespaces, TUN build, braid-emu).
#
# S1: 3 links 20/10/5 Mbit/s, RTT 20/60/120 ms, one 5 s TCP flow each way: goodput > 15 % of the
#     link sum (35 Mbit/s). S4: 2 links 10/10 Mbit/s, RTT 20 ms, one link blackholed at 2 s for
#     3 s in a 9 s upload: the flow survives and its longest stall is < 3 s. Takes about 35 s.
set -u
cd "$(dirname "$0")/../.."
B=${BRAID_TUN_BUILD:-build}
if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP e2e bench_smoke: needs root (network namespaces and TUN devices)"
    exit 0
fi
for t in ip iperf3 ping python3; do
    command -v $t >/dev/null || { echo "FAIL e2e bench_smoke: $t not installed"; exit 1; }
done
T=$(mktemp -d /tmp/braid-bench-smoke.XXXXXX)
child=""
pids=""
fail=0
cleanup() {
    # the bench scripts delete their own namespaces and stop their processes on TERM
    if [ -n "$child" ]; then kill "$child" 2>/dev/null; wait "$child" 2>/dev/null; fi
    [ -n "${KEEP:-}" ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

run() { # run NAME COMMAND... : run a bench script in the background (so a signal can stop it)
    local name=$1
    shift
    "$@" >"$T/$name.txt" 2>&1 &
    child=$!
    pids="$pids $child"
    wait "$child"
    local rc=$?
    child=""
    sed 's/^/    /' "$T/$name.txt"
    return $rc
}
kv() { # kv FILE KEY : a value from the script's last key=value line
    tail -1 "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}
check() { # check DESC PYTHON-EXPRESSION
    if python3 -c "import sys; sys.exit(0 if ($2) else 1)" 2>/dev/null; then
        echo "  ok: $1"
    else
        echo "  FAIL: $1"
        fail=1
    fi
}

echo "e2e bench_smoke: S1 and S4, short runs, loose bounds"
run s1 python3 bench/s1-aggregate --duration 5 --repeat 1 --no-single --build "$B" \
    --out "$T" --max-time 45
rc=$?
up=$(kv "$T/s1.txt" up_goodput_mbit)
down=$(kv "$T/s1.txt" down_goodput_mbit)
sum=$(kv "$T/s1.txt" sum_mbit)
check "S1 ran (status $rc) and printed its key=value line" "$rc == 0 and '${sum:-}' == '35'"
check "S1 upload goodput ${up:-?} Mbit/s > 15 % of the link sum" "float('${up:-0}') > 0.15 * 35"
check "S1 download goodput ${down:-?} Mbit/s > 15 % of the link sum" "float('${down:-0}') > 0.15 * 35"

run s4 python3 bench/s4-failover --duration 9 --outage-at 2 --outage-for 3 --repeat 1 \
    --directions up --build "$B" --out "$T" --max-time 40
rc=$?
surv=$(kv "$T/s4.txt" up_survived)
stall=$(kv "$T/s4.txt" up_longest_stall_s)
check "S4 ran (status $rc) and the flow survived the outage (${surv:-?})" "$rc == 0 and '${surv:-}' == '1/1'"
check "S4 longest stall ${stall:-?} s < 3 s" "float('${stall:-99}') < 3"
left=""
for p in $pids; do left="$left$(ip netns list | grep "^brb-$p-")"; done
check "the bench scripts deleted their namespaces" "'$left' == ''"

if [ $fail -eq 0 ]; then echo "PASS e2e bench_smoke"; else echo "FAIL e2e bench_smoke"; fi
exit $fail
