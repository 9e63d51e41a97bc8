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
exec "$here/.venv/bin/python" "$here/examples/agent_session.py" --game-dir "$game" \
  --bin-dir "$bin" --data-dir "$demo/data" "$@"
