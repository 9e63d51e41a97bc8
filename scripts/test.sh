#!/usr/bin/env bash
# The whole test suite, from a clean clone on a fresh Debian 12 machine with Rust:
# installs what is missing, then runs formatting and lint checks, every Rust test (unit,
# integration over MCP with rmcp's client, objdump ground truth, bad-input sweeps) and the
# Python MCP SDK tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo build --workspace --quiet
cargo test --workspace 2>&1

fixtures=target/python-fixtures
bash tests/fixtures/gamedll/build.sh "$fixtures"
bash tests/fixtures/memfix/build.sh "$fixtures/memfix"
MCP_STATIC="$PWD/target/debug/mcp-static" FIXTURE_DIR="$PWD/$fixtures" \
MCP_MEMORY="$PWD/target/debug/mcp-memory" MEMFIX="$PWD/$fixtures/memfix/memfix" \
MCP_COORDINATOR="$PWD/target/debug/mcp-coordinator" MCP_TEST_CHILD="$PWD/target/debug/mcp-test-child" \
  .venv/bin/python -m pytest -q tests/python
