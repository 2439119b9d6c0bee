#!/bin/sh
# run.sh: short libFuzzer runs of the given targets (make fuzz-smoke): SECONDS each, corpus
# seeded from tests/fuzz/seeds/NAME; fails if a target finds a crash, leak or timeout.
set -u
secs=$1
shift
fail=0
for name in "$@"; do
    bin=build/fuzz/$name
    corpus=build/fuzz/corpus/$name
    mkdir -p "$corpus" build/fuzz/artifacts
    seeds=""
    [ -d "tests/fuzz/seeds/$name" ] && seeds="tests/fuzz/seeds/$name"
    if "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -artifact_prefix=build/fuzz/artifacts/"$name"- "$corpus" $seeds \
        >build/fuzz/"$name".log 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' build/fuzz/"$name".log)
        echo "fuzz $name: ok (${secs}s, ${execs:-?} inputs)"
    else
        echo "fuzz $name: FAILED, see build/fuzz/$name.log and build/fuzz/artifacts/"
        tail -30 build/fuzz/"$name".log
        fail=1
    fi
done
exit $fail
