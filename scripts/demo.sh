#!/usr/bin/env bash
# The end-to-end demo: builds the suite (release) and the fixture game, then replays the
# scripted agent session of examples/agent_session.py through mcp-coordinator over stdio:
# the game started in a sandbox, analysed from outside, every result a finding, the findings
# linked, the sandbox stopped. One JSON line per step. Needs root and cgroups (the sandbox).
#   scripts/run.sh demo          # the native fixture game
#   scripts/run.sh demo --wine   # the same game as a Windows .exe under wine64 (~10 s more)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" != 0 ]; then
  echo "demo: sandbox-runner needs root here (namespaces, cgroups); run it as root" >&2
  exit 1
fi
cargo build --release --quiet --manifest-path "$here/Cargo.toml" --workspace >&2
bin="$here/target/release"
demo="$here/target/demo"
game="$demo/d2game"
rm -rf "$demo" && mkdir -p "$demo"
bash "$here/tests/fixtures/d2game/build.sh" "$game" >&2
cat >"$demo/coordinator.toml" <<TOML
[[servers]]
name = "sandbox"
command = "$bin/sandbox-runner"
args = ["mcp", "--allow-launch", "--root", "$game"]

[[servers]]
name = "d2"
command = "$bin/mcp-d2"

[[servers]]
name = "memory"
command = "$bin/mcp-memory"

[[servers]]
name = "static"
command = "$bin/mcp-static"
args = ["--root", "$game"]
TOML
exec "$here/.venv/bin/python" "$here/examples/agent_session.py" --game-dir "$game" \
  --config "$demo/coordinator.toml" --coordinator "$bin/mcp-coordinator" --data-dir "$demo/data" "$@"
