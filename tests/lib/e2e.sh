# e2e.sh: helpers for the root-only end-to-end tests (sourced, not run): two network namespaces,
# the daemons' PIDs, clean-up, checks and waiting on the daemons' JSON status.
# The sourcing script sets B (the build folder) and calls e2e_init NAME first.

e2e_init() { # e2e_init NAME : namespaces $S and $M, a temp folder $T, clean-up on exit
    E2E_NAME=$1
    if [ "$(id -u)" -ne 0 ]; then
        echo "SKIP e2e $E2E_NAME: needs root (network namespaces and TUN devices)"
        exit 0
    fi
    for t in ip ping python3; do
        command -v $t >/dev/null || { echo "FAIL e2e: $t not installed"; exit 1; }
    done
    S=braid-e2e-s-$$
    M=braid-e2e-m-$$
    T=$(mktemp -d /tmp/braid-e2e.XXXXXX)
    pids=()
    fail=0
    trap e2e_cleanup EXIT
    ip netns add "$S" && ip netns add "$M" || { echo "FAIL: cannot create namespaces"; exit 1; }
    inS ip link set lo up
    inM ip link set lo up
}

e2e_cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    ip netns del "$S" 2>/dev/null
    ip netns del "$M" 2>/dev/null
    if [ "$fail" -ne 0 ]; then
        for f in "$T"/*.log; do echo "---- $f"; tail -40 "$f"; done
    fi
    [ -n "${KEEP:-}" ] && echo "kept $T" || rm -rf "$T"
}

inS() { ip netns exec "$S" "$@"; }
inM() { ip netns exec "$M" "$@"; }

to() { # to FILE COMMAND... : run COMMAND with its output appended to FILE
    local f=$1
    shift
    "$@" >>"$f" 2>&1
}
check() { # check COMMAND... : report DESC as ok or FAIL by COMMAND's status
    if "$@"; then echo "  ok: $DESC"; else echo "  FAIL: $DESC"; fail=1; fi
}

e2e_keys() { # master.key, slave.key in $T; MPUB, SPUB
    (umask 077 && "$B"/braid-master genkey >"$T"/master.key && "$B"/braid-slave genkey >"$T"/slave.key)
    MPUB=$("$B"/braid-master pubkey <"$T"/master.key)
    SPUB=$("$B"/braid-slave pubkey <"$T"/slave.key)
}

# jget ROLE EXPR: evaluate a Python expression over the daemon's JSON status (j) and its
# multiplexer's (m: the master's is its site's)
jget() {
    "$B"/braid-$1 json -c "$T"/$1.conf 2>/dev/null |
        python3 -c "import json,sys; j=json.load(sys.stdin); m=j['mux'] if 'mux' in j else j['sites'][0]['mux']; print($2)" 2>/dev/null
}
wait_for() { # wait_for SECONDS ROLE EXPR  (until EXPR prints True)
    local end=$((SECONDS + $1))
    while [ $SECONDS -lt $end ]; do
        [ "$(jget "$2" "$3")" = "True" ] && return 0
        sleep 0.1
    done
    return 1
}

e2e_end() { # the verdict line and exit status
    if [ $fail -eq 0 ]; then echo "PASS e2e $E2E_NAME"; else echo "FAIL e2e $E2E_NAME"; fi
    exit $fail
}
