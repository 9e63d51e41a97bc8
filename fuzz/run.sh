#!/usr/bin/env bash
# The long runs: each target in turn (one at a time: the machine has 2 cores), until
# RUNS executions or SECONDS seconds, whichever first, growing corpus/<target>. A crash stops
# that target's run and leaves the input in artifacts/<target>/. Logs: artifacts/<target>.log.
# Usage: fuzz/run.sh [TARGET...]   env: RUNS (10000000), SECONDS_EACH (1800), NO_BUILD=1 to
# run the binaries already built
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
export CARGO_INCREMENTAL=0
[[ -n "${NO_BUILD:-}" ]] || cargo +nightly fuzz build -s none || exit 1
[[ -d corpus ]] || ./seed.sh >/dev/null
bin="$here/target/x86_64-unknown-linux-gnu/release"
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || mapfile -t targets < <(cargo +nightly fuzz list)
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "regressions/$t" "artifacts/$t"
    "$bin/$t" "corpus/$t" "regressions/$t" -runs="${RUNS:-10000000}" \
        -max_total_time="${SECONDS_EACH:-1800}" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"artifacts/$t.log" 2>&1
    rc=$?
    runs=$(grep -o 'number_of_executed_units: [0-9]*' "artifacts/$t.log" | tail -1 | cut -d' ' -f2)
    secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "artifacts/$t.log" | tail -1 | awk '{print $5}')
    echo "$t rc=$rc runs=${runs:-?} seconds=${secs:-?} corpus=$(find "corpus/$t" -type f | wc -l)"
done
