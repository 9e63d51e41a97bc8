#!/usr/bin/env bash
# The whole test suite, from a clean clone on a fresh Debian 12 machine with Rust:
# installs what is missing, then runs formatting and lint checks, every Rust test (unit,
# integration over MCP with rmcp's client, objdump ground truth, bad-input sweeps) and the
# Python MCP SDK tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# A one-off build gains nothing from incremental caches, which doubled the target's size.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# setup.sh installed 32-bit Wine, and the suite runs as root with cgroups: the tests of the
# game under 32-bit Wine and of the sandbox must run, not skip.
export REQUIRE_WINE32=1 REQUIRE_SANDBOX=1 MCP_SUITE_STRICT=1
# The shared fixtures are optional for a clone elsewhere, but must be used when they are here.
[ -d "${SHARED_FIXTURES:-../shared/fixtures}" ] && export REQUIRE_SHARED_FIXTURES=1
# Every skip is listed (and, under MCP_SUITE_STRICT, fails its test).
export MCP_SKIP_LOG="$PWD/target/skipped.tsv"
# The build and tests need about 3 GiB under target/; say so plainly instead of dying in the linker.
mkdir -p target
free_kib=$(df -Pk target | awk 'NR==2 {print $4}')
if [ "${free_kib:-0}" -lt $((3 * 1024 * 1024)) ]; then
  echo "test: only $((free_kib / 1024)) MiB free under $PWD/target; the suite needs about 3 GiB (2.4 GiB measured)" >&2
  exit 1
fi

# A private redis-server on a free loopback port for the coordinator's Redis tests.
source scripts/private-redis.sh
start_private_redis target/redis-test.log

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo build --workspace --quiet
bash scripts/check-libraries.sh
: > "$MCP_SKIP_LOG"
cargo test --workspace 2>&1
echo "test: $(wc -l < "$MCP_SKIP_LOG") Rust tests skipped (listed in $MCP_SKIP_LOG)" >&2

# Every fuzz target briefly over its seeds and the crashes it once found (fuzz/README.md).
bash fuzz/smoke.sh

# The MCP Inspector CLI, a second outside client (pinned; needs node >= 20, else its test skips).
inspector=target/inspector/node_modules/.bin/mcp-inspector
if [ ! -x "$inspector" ] && command -v npm >/dev/null; then
  npm install --prefix target/inspector --silent --no-audit --no-fund @modelcontextprotocol/inspector@2.12.0 \
    || echo "test: could not install the MCP Inspector; its tests will fail (MCP_SUITE_STRICT)" >&2
fi

fixtures=target/python-fixtures
bash tests/fixtures/gamedll/build.sh "$fixtures"
bash tests/fixtures/memfix/build.sh "$fixtures/memfix"
bash tests/fixtures/d2game/build.sh "$fixtures/d2game"
bash tests/fixtures/behavfix/build.sh "$fixtures/behavfix"
MCP_STATIC="$PWD/target/debug/mcp-static" FIXTURE_DIR="$PWD/$fixtures" \
MCP_MEMORY="$PWD/target/debug/mcp-memory" MEMFIX="$PWD/$fixtures/memfix/memfix" \
D2GAME_DIR="$PWD/$fixtures/d2game" BEHAVFIX_DIR="$PWD/$fixtures/behavfix" \
MCP_NETWORK="$PWD/target/debug/mcp-network" MCP_D2="$PWD/target/debug/mcp-d2" \
MCP_COORDINATOR="$PWD/target/debug/mcp-coordinator" MCP_TEST_CHILD="$PWD/target/debug/mcp-test-child" \
SANDBOX_RUNNER="$PWD/target/debug/sandbox-runner" INSPECTOR="$PWD/$inspector" \
  .venv/bin/python -m pytest -q -rs tests/python
