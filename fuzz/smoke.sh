#!/usr/bin/env bash
# Builds every fuzz target and runs each briefly over its regression inputs and seeds
# (-runs=2000, at most ~10 s each): a crash fixed once must stay fixed. Needs nightly and
# cargo-fuzz (scripts/setup.sh installs it). Seeds come from seed.sh, run here when
# corpus/ is missing; without the shared fixtures the other seeds still run.
# Usage: fuzz/smoke.sh [TARGET...]   (default: every target)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
export CARGO_INCREMENTAL=0
# No sanitizer: the targets are safe Rust over C libraries (capstone, libpcap) that a
# sanitizer build would not instrument; overflow checks and debug assertions stay on.
cargo +nightly fuzz build -s none
[[ -d corpus ]] || ./seed.sh >/dev/null
bin="$here/target/x86_64-unknown-linux-gnu/release"
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || mapfile -t targets < <(cargo +nightly fuzz list)
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=()
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t" "regressions/$t" "corpus/$t"
    # New inputs go to the scratch directory (the first one), never into the repository.
    if "$bin/$t" "$scratch/$t" "regressions/$t" "corpus/$t" -runs=2000 -max_total_time=10 \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$scratch/$t.log" 2>&1; then
        echo "fuzz smoke $t: ok ($(grep -m1 -o 'number_of_executed_units: [0-9]*' "$scratch/$t.log" | cut -d' ' -f2) runs)"
    else
        echo "fuzz smoke $t: FAILED" >&2
        tail -40 "$scratch/$t.log" >&2
        failed+=("$t")
    fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz smoke failed: ${failed[*]}" >&2
    exit 1
fi
