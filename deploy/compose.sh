#!/usr/bin/env bash
# podman-compose on deploy/compose.yaml, with this machine's podman settings
# (deploy/containers.conf) and the project name `mcp` (MCP_PROJECT overrides):
#   deploy/compose.sh up -d      # start everything (deploy/build.sh first)
#   deploy/compose.sh ps
#   deploy/compose.sh down -v    # stop and remove it all, volumes included
#   MCP_DGRAPH=1 deploy/compose.sh up -d   # with compose.dgraph.yaml (findings in Dgraph too)
# Docker users run `docker compose -f deploy/compose.yaml -p mcp up -d` instead.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
command -v podman-compose >/dev/null || { echo "compose: podman-compose is missing: run scripts/setup.sh" >&2; exit 1; }
project=${MCP_PROJECT:-mcp}
files=(-f "$here/compose.yaml")
[ "${MCP_DGRAPH:-0}" = 0 ] || files+=(-f "$here/compose.dgraph.yaml")
podman-compose -p "$project" "${files[@]}" "$@"
# podman-compose 1.0.3 leaves the project's networks behind on `down`.
if [ "${1:-}" = down ]; then
  nets=$(podman network ls --quiet --filter "label=io.podman.compose.project=$project")
  [ -z "$nets" ] || podman network rm $nets >/dev/null
fi
