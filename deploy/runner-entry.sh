#!/bin/bash
# The runner container's processes: sandbox-runner's MCP server (it starts the game in its
# sandboxes) and the analysers that read the game's processes, each over streamable HTTP on
# the analysis network. If any of them ends, the others are stopped and the container ends
# with a failure, so that its restart policy brings the whole set back.
set -u
mkdir -p "$HOME"
name=${RUNNER_HOST:-runner}
games=${GAMES_DIR:-/games}
sandbox-runner mcp --http 0.0.0.0:8943 --allowed-host "$name" --allow-launch --root "$games" &
mcp-memory --http 0.0.0.0:8944 --allowed-host "$name" --root "$games" &
mcp-d2 --http 0.0.0.0:8945 --allowed-host "$name" --root "$games" &
mcp-behavior --http 0.0.0.0:8946 --allowed-host "$name" --allow-launch --root "$games" &
trap 'kill $(jobs -p) 2>/dev/null; wait; exit 0' TERM INT
wait -n
echo "runner-entry: a server ended; stopping the others" >&2
kill $(jobs -p) 2>/dev/null
wait
exit 1
