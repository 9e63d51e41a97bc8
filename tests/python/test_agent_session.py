"""The scripted agent session in examples/ (the end-to-end demo) run for real: the fixture game
started in a sandbox by sandbox-runner, read from outside through mcp-d2 and mcp-memory, its
DLL inspected by mcp-static, every result a finding, linked into one graph, then the sandbox
stopped. Once with the coordinator over stdio, once over HTTP behind its gateway (bearer
token, rate limit, audit log): the seed's request flow.

Needs root and cgroups (the sandbox), MCP_COORDINATOR (the suite's other binaries beside it)
and D2GAME_DIR (the fixture game); scripts/test.sh exports both."""

import importlib.util
import json
import os
import subprocess
import sys
import tempfile

import pytest
from netutil import free_port, wait_listening

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "examples", "agent_session.py")
NEEDED = ["MCP_COORDINATOR", "D2GAME_DIR"]
ENV = {k: os.environ.get(k, "") for k in NEEDED}
# The suite's binaries sit side by side (target/debug).
BIN_DIR = os.path.dirname(ENV["MCP_COORDINATOR"])


def sandbox_possible():
    cgroups = os.path.isdir("/sys/fs/cgroup/pids") or "pids" in open_or_empty(
        "/sys/fs/cgroup/cgroup.controllers")
    return os.geteuid() == 0 and cgroups


def open_or_empty(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


pytestmark = [
    pytest.mark.skipif(not all(ENV.values()), reason=f"{', '.join(NEEDED)} must be set (scripts/test.sh does)"),
    pytest.mark.skipif(not sandbox_possible(), reason="the sandbox needs root and cgroups"),
]


def config(tmp):
    """The demo's own config (examples/agent_session.py writes it for --bin-dir)."""
    spec = importlib.util.spec_from_file_location("agent_session", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = os.path.join(tmp, "coordinator.toml")
    with open(path, "w") as f:
        f.write(module.demo_config(BIN_DIR, ENV["D2GAME_DIR"]))
    return path


def run_session(args):
    out = subprocess.run([sys.executable, SCRIPT, "--game-dir", ENV["D2GAME_DIR"], *args],
                         capture_output=True, text=True, timeout=300)
    steps = {}
    for line in out.stdout.splitlines():
        s = json.loads(line)
        steps[s["step"]] = s
    return out, steps


def check(out, steps):
    assert out.returncode == 0, (out.stdout, out.stderr[-3000:])
    assert all(s["ok"] for s in steps.values()), steps
    assert steps["discover"]["servers"] == ["behavior", "d2", "memory", "sandbox", "static"]
    # Which instruction writes the experience: the fixture game's own store, 1000 more.
    w = steps["who_writes"]
    assert w["module"].startswith("d2game+0x") and w["instruction"].startswith("mov"), w
    before, after = (int(w["change"][k], 16) for k in ("before", "after"))
    assert after - before == 1000, w
    assert steps["inspect_dll"]["format"] == "pe32+"  # x86_64-w64-mingw32
    assert len(steps["inspect_dll"]["sha256"]) == 64
    game = steps["find_game"]
    assert game["host_pid"] != game["pid_inside"], game
    a = steps["analyse"]
    assert (a["name"], a["items"], a["snapshot_ok"]) == ("FixtureHero", 3, True), a
    # Character, inventory and snapshot included; the DLL linked and the note (a link in) by
    # the session.
    assert steps["graph"]["relations"] == ["about", "game_module", "includes", "includes", "includes"]
    # The report holds the analysis and everything linked to it: the DLL with its SHA-256.
    r = steps["report"]
    assert (r["findings"], r["links"]) == (6, 5), r
    with open(r["path"]) as f:
        html = f.read()
    assert "FixtureHero" in html and steps["inspect_dll"]["sha256"] in html
    assert r["uri"].startswith("report://"), r
    assert steps["stop"]["ok"]
    assert not os.path.exists(f"/proc/{game['host_pid']}"), "the game survived the stop"


def test_agent_session_over_stdio():
    with tempfile.TemporaryDirectory() as tmp:
        out, steps = run_session(["--bin-dir", BIN_DIR, "--data-dir", os.path.join(tmp, "data")])
        check(out, steps)


def test_agent_session_over_http_behind_the_gateway():
    with tempfile.TemporaryDirectory() as tmp:
        tokens = os.path.join(tmp, "tokens.toml")
        with open(tokens, "w") as f:
            f.write('[[clients]]\nname = "agent"\ntoken = "agent-secret"\n')
        audit = os.path.join(tmp, "audit.jsonl")
        port = free_port()
        coord = subprocess.Popen(
            [ENV["MCP_COORDINATOR"], "--config", config(tmp), "--data-dir", os.path.join(tmp, "data"),
             "--http", f"127.0.0.1:{port}", "--auth-tokens", tokens, "--rate-limit", "50",
             "--audit-log", audit],
            stderr=subprocess.DEVNULL)
        try:
            wait_listening(port, coord)
            url = f"http://127.0.0.1:{port}/"
            out, steps = run_session(["--url", url, "--token", "wrong"])
            assert out.returncode != 0 and not steps, (out.stdout, out.stderr[-2000:])
            out, steps = run_session(["--url", url, "--token", "agent-secret"])
            check(out, steps)
            with open(audit) as f:
                calls = [json.loads(line) for line in f]
            assert {c["client"] for c in calls} == {"agent"}
            assert "analyze_character" in {c["tool"] for c in calls}
        finally:
            coord.terminate()
            coord.wait(timeout=30)
