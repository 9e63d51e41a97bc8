"""The `Origin` check against DNS rebinding, as a browser page would meet it: through the
coordinator's gateway (`--gateway`) and through nginx in front of it (examples/deploy/nginx.conf).
No `Origin` (every non-browser client), this machine's origins and an `--allowed-origin` are
served; any other origin gets 403 before the MCP layer sees the request. (The bare servers are
tested in mcp-common/tests/origin.rs and mcp-static/tests/hardening.rs.)

Needs MCP_COORDINATOR, MCP_TEST_CHILD and nginx (scripts/test.sh provides them)."""

import json
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request

import pytest
from netutil import free_ports, start_nginx, stop_all, wait_listening

COORD = os.environ.get("MCP_COORDINATOR", "")
CHILD = os.environ.get("MCP_TEST_CHILD", "")
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)

pytestmark = pytest.mark.skipif(not (COORD and CHILD and NGINX),
                                reason="needs MCP_COORDINATOR, MCP_TEST_CHILD and nginx "
                                       "(scripts/test.sh provides them)")

INITIALIZE = json.dumps({
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {},
               "clientInfo": {"name": "origin-test", "version": "1"}},
}).encode()


def post(port, origin):
    """The status and body of an `initialize` POST carrying `origin` (None: no header)."""
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if origin is not None:
        headers["Origin"] = origin
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=INITIALIZE, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read(4096).decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def cells(port):
    """(origin, expected status) for an endpoint reached on 127.0.0.1:`port`."""
    return [
        (None, 200),
        (f"http://127.0.0.1:{port}", 200),
        (f"http://localhost:{port}", 200),
        ("https://dash.example", 200),  # the --allowed-origin
        ("https://dash.example:8443", 403),  # another port of the allowed host
        ("http://evil.example", 403),
        ("http://localhost.evil.example", 403),
        ("null", 403),  # what a sandboxed iframe or a file: page sends
    ]


def test_origin_through_the_gateway_and_through_nginx():
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "c.json")
        with open(config, "w") as f:
            json.dump({"mcpServers": {"child": {"command": CHILD}}}, f)
        back, front = free_ports(2)
        try:
            coord = subprocess.Popen(
                [COORD, "--config", config, "--data-dir", os.path.join(tmp, "data"),
                 "--http", f"127.0.0.1:{back}", "--gateway",
                 "--allowed-origin", "https://dash.example"],
                stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(coord)
            wait_listening(back, coord)
            nginx = start_nginx(NGINX, tmp, front, [back])
            procs.append(nginx)

            failures = []
            for where, port in (("gateway", back), ("nginx", front)):
                for origin, expected in cells(port):
                    status, body = post(port, origin)
                    print(f"{where:8} Origin {origin!s:36} -> {status}")
                    if status != expected:
                        failures.append((where, origin, expected, status, body[:200]))
                    elif status == 403:
                        assert "DNS rebinding" in body and len(body) < 1000, body
            assert not failures, failures
        finally:
            stop_all(procs)
