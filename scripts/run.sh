#!/usr/bin/env bash
# The suite as an MCP host launches it. With no argument: mcp-coordinator over stdio with every
# server (static, memory, d2, network, behavior, sandbox) on its embedded defaults (files readable under
# $HOME), from any working directory. Coordinator flags pass through:
#   scripts/run.sh                          # stdio, what a host runs
#   scripts/run.sh --config examples/coordinator.toml --servers static,d2
#   scripts/run.sh --http 127.0.0.1:8931    # streamable HTTP at http://127.0.0.1:8931/
# Other first words:
#   scripts/run.sh host-config [--http ADDR]  # print a ready mcpServers entry for Claude Desktop
#   scripts/run.sh static|memory|d2|network|behavior|sandbox [flags]   # one server alone
#   scripts/run.sh demo [--wine]              # the end-to-end demo (scripts/demo.sh)
# It builds what is missing first (progress on stderr; the same dev-profile build that
# scripts/test.sh makes, so neither rebuilds the other's; PROFILE=release for an optimised
# one) and installs packages only when a build package is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
profile=${PROFILE:-debug}
# As scripts/test.sh builds, so that one build serves both.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# A fast check (no package manager) for what building needs; the full set-up only if missing.
need_setup() {
  command -v cargo >/dev/null || { echo "run: cargo is missing: install Rust (rustup.rs)" >&2; exit 1; }
  local p
  for p in build-essential pkg-config libpcap-dev libseccomp-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || return 0
  done
  return 1
}

build() {
  if need_setup; then
    echo "run: installing what the build needs (scripts/setup.sh)" >&2
    bash "$here/scripts/setup.sh" >&2
  fi
  local flags=(--workspace --bins --manifest-path "$here/Cargo.toml")
  [ "$profile" = release ] && flags+=(--release)
  # Progress on stderr (stdout is the MCP channel); a no-op when nothing changed.
  cargo build "${flags[@]}" >&2
}

bin="$here/target/$profile"
case "${1:-}" in
  demo)
    shift
    bash "$here/scripts/setup.sh" >&2
    exec bash "$here/scripts/demo.sh" "$@"
    ;;
  host-config)
    shift
    build
    if [ "${1:-}" = --http ]; then
      addr=${2:-127.0.0.1:8931}
      echo "# Start the server first:  $bin/mcp-coordinator --http $addr" >&2
      printf '{\n  "mcpServers": {\n    "d2-suite": { "type": "http", "url": "http://%s/" }\n  }\n}\n' "$addr"
    else
      printf '{\n  "mcpServers": {\n    "d2-suite": {\n      "command": "%s/mcp-coordinator",\n      "args": [],\n      "env": { "RUST_LOG": "warn" }\n    }\n  }\n}\n' "$bin"
    fi
    exit 0
    ;;
  static|memory|d2|network|behavior)
    server=$1; shift
    build
    exec "$bin/mcp-$server" "$@"
    ;;
  sandbox)
    shift
    build
    exec "$bin/sandbox-runner" mcp "$@"
    ;;
esac
build
if [ -t 0 ]; then
  echo "run: mcp-coordinator is serving MCP on stdio and waits for a host's messages (Ctrl-D ends);" \
       "'scripts/run.sh host-config' prints the entry for Claude Desktop" >&2
fi
exec "$bin/mcp-coordinator" "$@"
