#!/usr/bin/env bash
# Builds the suite (release) and runs the static analyser as an MCP server over stdio, the
# way an MCP host launches it. Files are readable under the working directory unless you pass
# `--root DIR`; `--http 127.0.0.1:8931` serves streamable HTTP instead.
#   scripts/run.sh --root /usr/lib/x86_64-linux-gnu/wine
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/scripts/setup.sh" >&2
cargo build --release --quiet --manifest-path "$here/Cargo.toml" -p mcp-static >&2
exec "$here/target/release/mcp-static" "$@"
