"""mcp-static driven by the official Python MCP SDK (mcp 2.3.0), a client this project did
not write: every tool listed with an outputSchema and readOnlyHint, each called successfully
on the fixture DLL, and bad input answered with isError while the server keeps serving.

Needs MCP_STATIC (the server binary) and FIXTURE_DIR (holding D2Client.dll and
D2Client_v2.dll, built by tests/fixtures/gamedll/build.sh); scripts/test.sh sets both."""

import os

import anyio
import pytest
from mcp import Client, StdioServerParameters

SERVER = os.environ.get("MCP_STATIC", "")
FIXTURES = os.environ.get("FIXTURE_DIR", "")

pytestmark = pytest.mark.skipif(
    not (SERVER and FIXTURES), reason="MCP_STATIC and FIXTURE_DIR must be set (scripts/test.sh does)"
)


def params():
    return StdioServerParameters(
        command=SERVER, args=["--root", FIXTURES], env={"PATH": os.environ.get("PATH", "")}
    )


def dll(name="D2Client.dll"):
    return os.path.join(FIXTURES, name)


CALLS = [
    ("binary_info", {"path": dll()}),
    ("list_exports", {"path": dll(), "format": "json"}),
    ("list_imports", {"path": dll(), "format": "json"}),
    ("list_strings", {"path": dll(), "contains": "D2FIXTURE", "format": "json"}),
    ("disassemble", {"path": dll(), "ordinal": 10002, "count": 4, "format": "json"}),
    ("list_functions", {"path": dll(), "format": "json"}),
    ("xrefs_to", {"path": dll(), "string": "D2FIXTURE_ASCII_MARKER", "format": "json"}),
    ("find_pattern", {"path": dll(), "pattern": "8B 0D ?? ?? ?? ?? 85 C9"}),
    ("make_signature", {"path": dll(), "address": "0x6FAB1000"}),
    ("convert_address", {"path": dll(), "va": "0x6FAB1000", "live_base": "0x10000000"}),
    ("diff_binaries", {"path_a": dll(), "path_b": dll("D2Client_v2.dll")}),
]


async def run_session():
    async with Client(params()) as client:
        listed = await client.list_tools()
        tools = {t.name: t for t in listed.tools}
        assert sorted(tools) == sorted(name for name, _ in CALLS)
        for t in tools.values():
            assert t.output_schema is not None, t.name
            assert t.annotations is not None and t.annotations.read_only_hint is True, t.name

        results = {}
        for name, args in CALLS:
            r = await client.call_tool(name, args)
            assert not r.is_error, (name, r.content)
            assert r.structured_content is not None, name
            assert r.content and r.content[0].type == "text", name
            results[name] = r.structured_content

        assert results["binary_info"]["image_base"] == "0x6FAB0000"
        assert results["binary_info"]["format"] == "pe32"
        assert [e["ordinal"] for e in results["list_exports"]["items"]] == [10001, 10002, 10003]
        assert all("name" not in e for e in results["list_exports"]["items"])
        assert results["disassemble"]["items"][0]["bytes"] == "8B 0D 00 20 AB 6F"
        assert results["find_pattern"]["matches"][0]["va"] == "0x6FAB1000"
        assert results["make_signature"]["unique"] is True
        assert results["convert_address"]["live_va"] == "0x10001000"
        assert [e["export"] for e in results["diff_binaries"]["exports_added"]] == ["#10004"]

        bad = await client.call_tool("disassemble", {"path": dll(), "count": 10**9})
        assert bad.is_error and "count" in bad.content[0].text
        bad = await client.call_tool("binary_info", {"path": "/etc/passwd"})
        assert bad.is_error and "outside the allowed roots" in bad.content[0].text
        again = await client.call_tool("binary_info", {"path": dll()})
        assert not again.is_error

        # format "text", the default: the SDK validates structuredContent against the
        # outputSchema, which must allow a page without `items`; the lines carry what the
        # objects did.
        text = await client.call_tool("list_exports", {"path": dll()})
        assert not text.is_error, text.content
        assert "items" not in text.structured_content
        assert text.structured_content["total"] == 3
        lines = text.content[1].text.splitlines()
        assert lines[0].startswith("# va\trva\tordinal")
        assert [line.split("\t")[2] for line in lines[1:]] == ["10001", "10002", "10003"]
        dis = await client.call_tool(
            "disassemble", {"path": dll(), "ordinal": 10002, "count": 4, "format": "text"}
        )
        assert not dis.is_error, dis.content
        first = dis.content[1].text.splitlines()[1].split("\t")
        assert first[:2] == ["0x6FAB1000", "8B 0D 00 20 AB 6F"], first
        assert dis.structured_content["next_address"].startswith("0x")


def test_python_sdk_drives_every_tool():
    anyio.run(run_session)
