"""The servers driven by the MCP Inspector CLI (npm `@modelcontextprotocol/inspector`, run
with `--cli`), a second client this project did not write: tools listed, a call answered with
structuredContent, bad input answered with isError (the CLI exits 5 on it), for mcp-static,
sandbox-runner (with and without --allow-launch) and mcp-coordinator proxying mcp-static.

Needs INSPECTOR (the CLI, installed by scripts/test.sh into target/inspector), node >= 20,
and the server binaries scripts/test.sh names in MCP_STATIC, SANDBOX_RUNNER, MCP_COORDINATOR
and FIXTURE_DIR."""

import json
import os
import subprocess
import tempfile

import pytest

INSPECTOR = os.environ.get("INSPECTOR", "")
STATIC = os.environ.get("MCP_STATIC", "")
SANDBOX = os.environ.get("SANDBOX_RUNNER", "")
COORDINATOR = os.environ.get("MCP_COORDINATOR", "")
FIXTURES = os.environ.get("FIXTURE_DIR", "")


def node_major():
    try:
        out = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=20).stdout
        return int(out.strip().lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.SubprocessError):
        return 0


# scripts/test.sh names INSPECTOR even when its npm install failed: a missing CLI is a skip
# (a failure under MCP_SUITE_STRICT=1, see conftest.py), not a crash of every test.
pytestmark = pytest.mark.skipif(
    not (INSPECTOR and os.access(INSPECTOR, os.X_OK) and STATIC and SANDBOX and COORDINATOR
         and FIXTURES) or node_major() < 20,
    reason=f"the Inspector CLI ({INSPECTOR or 'INSPECTOR unset'}) is not installed, or the server "
           "binaries are not set (scripts/test.sh does both), or node < 20",
)


def inspect(server, *args):
    """Runs the Inspector CLI against `server`; returns (exit code, its JSON answer, stderr)."""
    # `--` keeps the server's own options (e.g. --config) away from the Inspector's.
    cmd = [INSPECTOR, "--cli", *args, "--", *server]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    try:
        # On isError the CLI prints the result, then an error object of its own.
        answer, _ = json.JSONDecoder().raw_decode(p.stdout.lstrip())
    except json.JSONDecodeError:
        answer = None
    return p.returncode, answer, p.stderr


def dll():
    return os.path.join(FIXTURES, "D2Client.dll")


def test_inspector_drives_mcp_static():
    server = [STATIC, "--root", FIXTURES]
    rc, listed, err = inspect(server, "--method", "tools/list")
    assert rc == 0, err
    names = {t["name"] for t in listed["tools"]}
    assert {"binary_info", "disassemble", "list_exports"} <= names
    rc, r, err = inspect(server, "--method", "tools/call", "--tool-name", "binary_info", "--tool-arg", f"path={dll()}")
    assert rc == 0, err
    assert r["structuredContent"]["format"] == "pe32"
    assert r["structuredContent"]["image_base"] == "0x6FAB0000"
    rc, r, _ = inspect(server, "--method", "tools/call", "--tool-name", "binary_info", "--tool-arg", "path=/etc/passwd")
    assert rc == 5 and r["isError"] is True
    assert "`path`" in r["content"][0]["text"]


def test_inspector_drives_sandbox_runner():
    rc, listed, err = inspect([SANDBOX, "mcp"], "--method", "tools/list")
    assert rc == 0, err
    assert sorted(t["name"] for t in listed["tools"]) == ["list", "status"]
    rc, listed, err = inspect([SANDBOX, "mcp", "--allow-launch"], "--method", "tools/list")
    assert sorted(t["name"] for t in listed["tools"]) == ["launch", "list", "status", "stop"]
    launch = next(t for t in listed["tools"] if t["name"] == "launch")
    assert launch["annotations"]["destructiveHint"] is True
    rc, r, _ = inspect(
        [SANDBOX, "mcp", "--allow-launch"],
        "--method", "tools/call", "--tool-name", "launch",
        "--tool-arg", "profile=gaming", "--tool-arg", "program=/bin/true",
    )
    assert rc == 5 and r["isError"] is True
    assert "`profile`" in r["content"][0]["text"] and "wine, strict" in r["content"][0]["text"]


def test_inspector_through_the_coordinator():
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "c.toml")
        with open(cfg, "w") as f:
            f.write(f'[[servers]]\nname = "static"\ncommand = "{STATIC}"\nargs = ["--root", "{FIXTURES}"]\n')
        server = [COORDINATOR, "--config", cfg, "--data-dir", os.path.join(d, "data")]
        rc, listed, err = inspect(server, "--method", "tools/list")
        assert rc == 0, err
        names = {t["name"] for t in listed["tools"]}
        assert "static__binary_info" in names and "findings_query" in names
        rc, via, err = inspect(
            server, "--method", "tools/call", "--tool-name", "static__binary_info", "--tool-arg", f"path={dll()}"
        )
        assert rc == 0, err
        rc, direct, err = inspect(
            [STATIC, "--root", FIXTURES],
            "--method", "tools/call", "--tool-name", "binary_info", "--tool-arg", f"path={dll()}",
        )
        assert via["structuredContent"] == direct["structuredContent"]


def test_inspector_strict_finds_no_schema_error_on_any_server():
    """`--strict` checks every tool schema for portability problems: zero errors on each
    server alone and on the coordinator with the whole suite (its embedded defaults)."""
    bins = os.path.dirname(COORDINATOR)
    with tempfile.TemporaryDirectory() as home:
        servers = {
            "mcp-static": [STATIC, "--root", FIXTURES],
            "mcp-memory": [os.path.join(bins, "mcp-memory")],
            "mcp-d2": [os.path.join(bins, "mcp-d2"), "--root", FIXTURES],
            "mcp-network": [os.path.join(bins, "mcp-network"), "--root", FIXTURES],
            "mcp-behavior": [os.path.join(bins, "mcp-behavior"), "--allow-launch"],
            "sandbox-runner": [SANDBOX, "mcp", "--allow-launch", "--root", FIXTURES],
            "mcp-coordinator": [COORDINATOR, "--data-dir", os.path.join(home, "data")],
        }
        env = dict(os.environ, HOME=home)
        for name, server in servers.items():
            cmd = [INSPECTOR, "--cli", "--strict", "--method", "tools/list", "--", *server]
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
            errors = [line for line in p.stderr.splitlines() if line.startswith("Error")]
            assert p.returncode == 0 and not errors, f"{name}: rc {p.returncode}\n{p.stderr[-3000:]}"
            tools = json.loads(p.stdout)["tools"]
            if name == "mcp-coordinator":
                prefixes = {t["name"].split("__")[0] for t in tools if "__" in t["name"]}
                assert prefixes == {"static", "memory", "d2", "network", "behavior", "sandbox"}, prefixes
