"""The official Python MCP SDK through nginx (examples/deploy/nginx.conf, round robin) in front
of two coordinators sharing one Redis: every call answers, and both coordinators served some.
The SDK (2.3.0) negotiates protocol 2026-07-28, which has no sessions, so any instance can
answer any request; mcp-coordinator/tests/scale.rs covers session-era clients (rmcp's, at
2025-06-18), whose sessions move between instances through Redis.

Needs MCP_COORDINATOR, MCP_TEST_CHILD, REDIS_URL and nginx (scripts/test.sh provides them)."""

import json
import os
import shutil
import subprocess
import tempfile
import urllib.request

import anyio
import pytest
from mcp import Client
from netutil import free_ports, start_nginx, stop_all, wait_listening

COORD = os.environ.get("MCP_COORDINATOR", "")
CHILD = os.environ.get("MCP_TEST_CHILD", "")
REDIS = os.environ.get("REDIS_URL", "")
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)

pytestmark = pytest.mark.skipif(not (COORD and CHILD and REDIS and NGINX),
                                reason="needs MCP_COORDINATOR, MCP_TEST_CHILD, REDIS_URL and nginx "
                                       "(scripts/test.sh provides them)")


def echo_calls(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith('mcp_tool_calls_total{tool="child__echo"} '):
            return float(line.split()[-1])
    return 0.0


async def six_calls(url):
    async with Client(url) as client:
        assert client.protocol_version == "2026-07-28", client.protocol_version
        names = {t.name for t in (await client.list_tools()).tools}
        assert "child__echo" in names
        for i in range(6):
            r = await client.call_tool("child__echo", {"text": f"call {i}"})
            assert not r.is_error and r.structured_content["text"] == f"call {i}", r


def test_python_sdk_through_nginx_and_two_coordinators():
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "c.json")
        with open(config, "w") as f:
            json.dump({"mcpServers": {"child": {"command": CHILD}}}, f)
        *backs, front = free_ports(3)
        try:
            for port in backs:
                p = subprocess.Popen(
                    [COORD, "--config", config, "--data-dir", os.path.join(tmp, f"data-{port}"),
                     "--http", f"127.0.0.1:{port}", "--gateway", "--redis-url", REDIS],
                    stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                procs.append(p)
                wait_listening(port, p)
            nginx = start_nginx(NGINX, tmp, front, backs)
            procs.append(nginx)

            anyio.run(six_calls, f"http://127.0.0.1:{front}/")
            served = [echo_calls(p) for p in backs]
            assert sum(served) == 6 and all(n >= 1 for n in served), served
        finally:
            stop_all(procs)
