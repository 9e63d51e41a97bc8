#!/usr/bin/env bash
# Builds the suite (release) and runs one server over stdio, the way an MCP host launches it:
# mcp-static by default, or the one named first (`static`, `memory`, `d2`, `network`, `sandbox`
# for sandbox-runner's MCP server; add `--allow-launch` to let it start sandboxes). Files are readable under
# the working directory unless you pass `--root DIR`; `--http 127.0.0.1:8931` serves
# streamable HTTP instead.
#   scripts/run.sh --root /usr/lib/x86_64-linux-gnu/wine
#   scripts/run.sh memory
# `scripts/run.sh demo [--wine]` runs the end-to-end demo instead (scripts/demo.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
server=static
case "${1:-}" in
  demo) shift; bash "$here/scripts/setup.sh" >&2; exec bash "$here/scripts/demo.sh" "$@" ;;
  static|memory|d2|network|sandbox) server=$1; shift ;;
esac
bash "$here/scripts/setup.sh" >&2
if [ "$server" = sandbox ]; then
  cargo build --release --quiet --manifest-path "$here/Cargo.toml" -p sandbox-runner >&2
  exec "$here/target/release/sandbox-runner" mcp "$@"
fi
cargo build --release --quiet --manifest-path "$here/Cargo.toml" -p "mcp-$server" >&2
exec "$here/target/release/mcp-$server" "$@"
