"""sandbox-runner's MCP server driven by the official Python MCP SDK (mcp 2.3.0), a client this
project did not write: the four tools with their annotations, a real sandbox launched, seen
running with its host pids, stopped with everything in it gone, and bad input answered with
isError while the server keeps serving.

Needs SANDBOX_RUNNER (the binary; scripts/test.sh sets it), root and cgroups."""

import os

import anyio
import pytest
from mcp import Client, StdioServerParameters

SERVER = os.environ.get("SANDBOX_RUNNER", "")

pytestmark = pytest.mark.skipif(
    not SERVER or os.geteuid() != 0,
    reason="SANDBOX_RUNNER must be set (scripts/test.sh does) and the sandbox needs root",
)


def params():
    return StdioServerParameters(command=SERVER, args=["mcp", "--allow-launch"], env={"PATH": os.environ.get("PATH", "")})


async def run_session():
    async with Client(params()) as client:
        listed = await client.list_tools()
        tools = {t.name: t for t in listed.tools}
        assert set(tools) == {"launch", "status", "stop", "list"}
        assert tools["launch"].annotations.destructive_hint is True
        assert tools["stop"].annotations.destructive_hint is True
        assert tools["status"].annotations.read_only_hint is True

        r = await client.call_tool("launch", {"profile": "strict", "program": "sleep", "args": ["60"]})
        assert not r.is_error, r.content
        sid = r.structured_content["sandbox_id"]

        st = await client.call_tool("status", {"sandbox_id": sid})
        assert not st.is_error, st.content
        assert st.structured_content["state"] == "running"
        procs = st.structured_content["pids"]
        program = [p for p in procs if p["role"] == "program"]
        assert len(program) == 1 and program[0]["name"] == "sleep", procs
        assert os.path.exists(f"/proc/{program[0]['pid']}")

        stop = await client.call_tool("stop", {"sandbox_id": sid})
        assert not stop.is_error, stop.content
        assert stop.structured_content["stopped"] is True
        assert stop.structured_content["signal"] == 9
        for p in procs:
            assert not os.path.exists(f"/proc/{p['pid']}"), p

        bad = await client.call_tool("launch", {"profile": "strict", "program": "sleep", "memory": "0"})
        assert bad.is_error and "memory" in bad.content[0].text
        bad = await client.call_tool("status", {"sandbox_id": "sbx-none"})
        assert bad.is_error and "sandbox_id" in bad.content[0].text
        ls = await client.call_tool("list", {})
        assert [s["sandbox_id"] for s in ls.structured_content["sandboxes"]] == [sid]


def test_python_sdk_drives_sandbox_tools():
    anyio.run(run_session)
