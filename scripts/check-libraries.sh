#!/usr/bin/env bash
# Each analysis library is usable without the MCP layer (issue 19): built without its `server`
# feature, its dependency tree holds none of rmcp, hyper, clap, tokio or mcp-common, the game
# and memory layers hold no goblin, and the doc example of each library runs that way. Each
# library also builds alone with its default features.
set -euo pipefail
cd "$(dirname "$0")/.."

libs=(mcp-static mcp-memory mcp-d2 mcp-network mcp-behavior sandbox-runner)
# One library at a time, as a crate depending on it alone gets it (with and without its server
# feature): built together, one library's dependency features would make up for another's
# missing ones.
for lib in "${libs[@]}"; do
  features=()
  [ "$lib" = mcp-static ] && features=(--features files)
  deps=$(cargo tree -q -p "$lib" --no-default-features "${features[@]}" -e normal --prefix none \
    | sed 's/ .*//' | sort -u)
  banned='^(rmcp|hyper|clap|tokio|mcp-common)$'
  case "$lib" in mcp-memory|mcp-d2|mcp-behavior) banned='^(rmcp|hyper|clap|tokio|mcp-common|goblin)$' ;; esac
  if found=$(grep -E "$banned" <<<"$deps"); then
    echo "check-libraries: $lib without its server feature still depends on: $(tr '\n' ' ' <<<"$found")" >&2
    exit 1
  fi
  cargo check -q -p "$lib" --lib
  cargo test -q --doc --no-default-features -p "$lib" "${features[@]}" 2>&1
done
echo "check-libraries: ${#libs[@]} libraries build alone and run their doc examples without MCP" >&2
