#!/bin/sh
# run.sh: everything `make check` runs once things are built: unit tests (plain and ASan+UBSan),
# short fuzz runs, tool self-tests, integration tests (notun, ASan+UBSan daemons), the Debian
# package, e2e (root).
set -u
cd "$(dirname "$0")/.."
mkdir -p build/logs
export CMOCKA_MESSAGE_OUTPUT=stdout
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=66
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=67
PY=${PYTHON:-python3}
failed=""
npass=0
start_all=$(date +%s)

step() { # step NAME COMMAND... : run, log to build/logs/NAME.log, show the log's end on failure
    name=$1
    shift
    t0=$(date +%s)
    mkdir -p "build/logs/$(dirname "$name")"
    if "$@" >"build/logs/$name.log" 2>&1; then
        npass=$((npass + 1))
        printf '  pass  %-40s %4ss\n' "$name" $(($(date +%s) - t0))
        grep -h '^SKIP' "build/logs/$name.log" | sed 's/^/        /'
    else
        printf '  FAIL  %-40s %4ss  (build/logs/%s.log)\n' "$name" $(($(date +%s) - t0)) "$name"
        tail -40 "build/logs/$name.log" | sed 's/^/        | /'
        failed="$failed $name"
    fi
}

echo "== unit tests (cmocka)"
for t in build/tests/test_*; do step "unit/$(basename "$t")" "$t"; done
echo "== unit tests under ASan+UBSan"
for t in build/asan/tests/test_*; do step "asan/$(basename "$t")" "$t"; done
echo "== fuzz targets (short runs)"
step fuzz make --no-print-directory fuzz-smoke FUZZ_SECONDS="${FUZZ_SECONDS:-10}"
grep -h '^fuzz\|^SKIP' build/logs/fuzz.log | sed 's/^/        /'
echo "== test tools"
step tools/frames-selftest $PY tests/integration/test_frames_selftest.py
step tools/emu-selftest $PY tests/emu/selftest.py --quick build/tools/braid-emu
echo "== integration (notun build with ASan+UBSan, loopback, no root)"
for t in tests/integration/test_*.py; do
    case "$t" in *frames_selftest*) continue ;; esac
    step "integration/$(basename "$t" .py)" env BRAID_BUILD=build/asan $PY "$t"
done
# the README's quick start: `make demo` must keep working (it had silently broken once)
step integration/demo $PY tests/demo.py --build build/notun
echo "== packaging (Debian package built, unpacked into a fresh root, checked)"
step package sh tests/package.sh
echo "== end to end (TUN build, network namespaces)"
if [ "$(id -u)" -ne 0 ]; then
    echo "  SKIP  end-to-end tests: they need root (network namespaces, TUN); run make check as root"
else
    for t in tests/e2e/*.sh; do step "e2e/$(basename "$t" .sh)" bash "$t"; done
fi

echo "== $npass passed, $(echo $failed | wc -w) failed, $(($(date +%s) - start_all))s"
if [ -n "$failed" ]; then
    echo "FAILED:$failed"
    exit 1
fi
echo "make check: all tests passed"
