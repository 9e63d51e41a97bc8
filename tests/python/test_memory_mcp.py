"""mcp-memory driven by the official Python MCP SDK (mcp 2.3.0), a client this project did
not write: tools listed with outputSchema and readOnlyHint; the native memory fixture's known
values found, its pointer chain followed; progress notifications during a scan of a 256 MiB
region; a cancelled scan leaves the server serving; bad input answered with isError.

Needs MCP_MEMORY (the server binary) and MEMFIX (the native fixture, built by
tests/fixtures/memfix/build.sh); scripts/test.sh sets both."""

import json
import os
import subprocess

import anyio
import pytest
from mcp import Client, StdioServerParameters

SERVER = os.environ.get("MCP_MEMORY", "")
MEMFIX = os.environ.get("MEMFIX", "")

pytestmark = pytest.mark.skipif(
    not (SERVER and MEMFIX), reason="MCP_MEMORY and MEMFIX must be set (scripts/test.sh does)"
)


def params():
    return StdioServerParameters(command=SERVER, args=[], env={"PATH": os.environ.get("PATH", "")})


async def run_session(fx, info):
    pid = fx.pid
    async with Client(params()) as client:
        listed = await client.list_tools()
        names = {t.name for t in listed.tools}
        assert {"scan_start", "scan_next", "pointer_scan", "read_struct"} <= names
        assert "write_memory" not in names
        for t in listed.tools:
            assert t.output_schema is not None, t.name
            assert t.annotations is not None and t.annotations.read_only_hint is True, t.name

        seen = []

        async def progress(done, total, message):
            seen.append((done, total))

        r = await client.call_tool(
            "scan_start",
            {"pid": pid, "value_type": "u32", "value": 0x7A11CE55},
            progress_callback=progress,
        )
        assert not r.is_error, r.content
        assert [m["address"] for m in r.structured_content["matches"]] == [
            info["heap_value"].upper().replace("0X", "0x")
        ]

        # A pattern scan over the 256 MiB random region takes long enough to report progress.
        r = await client.call_tool(
            "scan_start",
            {"pid": pid, "pattern": "B5 ?? 6B ?? ?? 01", "writable_only": True},
            progress_callback=progress,
        )
        assert not r.is_error, r.content
        assert seen, "no progress notification arrived"
        assert all(t is None or d <= t for d, t in seen)

        root_off = int(info["root"], 16) - int(info["lib_base"], 16)
        r = await client.call_tool(
            "resolve_pointer",
            {"pid": pid, "base": f"libmemfix.so+{root_off:#x}", "offsets": [16, "0x28", 28],
             "pointer_size": 8},
        )
        assert not r.is_error, r.content
        assert int(r.structured_content["final_address"], 16) == int(info["chain_value"], 16)

        bad = await client.call_tool("pointer_scan", {"pid": pid, "target": 1, "max_depth": 50,
                                                      "max_offset": 16, "pointer_size": 8})
        assert bad.is_error and "max_depth" in bad.content[0].text

        # Cancel a scan from the client side (a short timeout): the server keeps serving.
        with anyio.move_on_after(0.05):
            await client.call_tool("scan_start", {"pid": pid, "value_type": "u8", "value": 3,
                                                  "alignment": 1})
        again = await client.call_tool("read_value", {"pid": pid, "address": info["exe_static"],
                                                      "type": "u32"})
        assert not again.is_error and again.structured_content["values"] == [0x5EED1234]


def test_python_sdk_drives_memory_tools():
    fx = subprocess.Popen([MEMFIX, "--big-mib", "256"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(fx.stdout.readline())
        anyio.run(run_session, fx, info)
    finally:
        fx.kill()
        fx.wait()
