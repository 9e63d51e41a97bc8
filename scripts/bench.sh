#!/usr/bin/env bash
# Every performance figure the README gives, each against its peer in the same run, with the
# ratios gathered at the end (release builds; the machine is noisy, so compare within a run):
#  - pages through MCP: list_strings / disassemble / list_exports walked page by page against
#    strings and objdump (mcp-static pages_bench), as JSON and as text, and the tokens a page
#    costs in each form (bench-tokens.py);
#  - the library targets of mcp-static against objdump and strings (static_bench);
#  - flows of a 1M-packet pcap against tshark, D2GS decoding, d2_decode pages against one
#    call (network_bench);
#  - streamable HTTP on keep-alive connections: the coordinator and a child against the Python
#    mcp-proxy, directly and through nginx, and the gateway's cost (bench-proxy.sh);
#  - scans over 1 GiB against the raw copy rate and scanmem (memory_bench);
#  - sandbox start-up against bubblewrap and firejail (sandbox-runner startup);
#  - how long a cancelled 1 GiB scan keeps its CPU (bench-cancel.py);
#  - the 32-bit game under 32-bit Wine: character latency, pointer scans, sandboxed start-up
#    against bare (bench-wine32.py);
#  - tracing overhead against strace, find_writers' slowdown and hit latency (behavior_bench).
# Usage: scripts/bench.sh [LOG]   (default target/bench.log)
set -euo pipefail
cd "$(dirname "$0")/.."
log="${1:-target/bench.log}"
mkdir -p "$(dirname "$log")"
# The peers and fixtures come from scripts/setup.sh; run it when one is missing.
need_setup() {
  local p
  [ -x .venv/bin/python ] || return 0
  for p in bubblewrap firejail nginx-light binutils-mingw-w64 wine64 scanmem redis-server; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || return 0
  done
  return 1
}
if need_setup; then
  bash scripts/setup.sh
fi
: >"$log"
section() { echo "== $1 ==" | tee -a "$log"; }
run() { "$@" 2>&1 | grep -v '^\s*\(Compiling\|Finished\|Running\|Blocking\)' | tee -a "$log"; }

section "pages through MCP (mcp-static)"
run cargo bench -p mcp-static --bench pages_bench
section "tokens per page as JSON and as text (mcp-static, Python SDK, cl100k)"
cargo build --release -p mcp-static --quiet
run .venv/bin/python scripts/bench-tokens.py target/release
section "mcp-static library targets"
run cargo bench -p mcp-static --bench static_bench
section "captures and D2GS pages (mcp-network)"
run cargo bench -p mcp-network --bench network_bench
section "streamable HTTP and stdio proxying (mcp-coordinator)"
run bash scripts/bench-proxy.sh
section "priority lanes and reports (mcp-coordinator)"
run cargo bench -p mcp-coordinator --bench orchestration_bench
section "the dashboard's findings page over 10,000 findings (server and browser)"
cargo build --release -p mcp-coordinator --quiet
run .venv/bin/python scripts/bench-dashboard.py target/release
section "scans over 1 GiB (mcp-memory)"
run cargo bench -p mcp-memory --bench memory_bench
section "traces against strace, find_writers (mcp-behavior)"
run cargo bench -p mcp-behavior --bench behavior_bench
section "sandbox start-up (sandbox-runner)"
run cargo bench -p sandbox-runner --bench startup
section "cancel to CPU stop"
cargo build --release -p mcp-memory -p mcp-coordinator -p mcp-d2 -p sandbox-runner --quiet
bash tests/fixtures/memfix/build.sh target/bench-fixtures/memfix
run .venv/bin/python scripts/bench-cancel.py target/release target/bench-fixtures/memfix/memfix
section "the 32-bit game under 32-bit Wine"
run .venv/bin/python scripts/bench-wine32.py target/release

echo
echo "== ratios (ours / peer unless said) =="
grep -iE "ratio|the raw copy rate|first scan \+|faster|its wait in one queue|findings page|of strace's|find_writers at" "$log" || true
echo "(whole log: $log)"
