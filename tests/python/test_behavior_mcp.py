"""mcp-behavior through the coordinator with the official Python MCP SDK (mcp 2.3.0): a
program launched under trace_start does one behaviour (executable memory, a connection to a
port the game does not use), `detect` fires exactly those rules, and the coordinator records
each detection as a finding about the traced process, linked to the call that found it.

Needs MCP_COORDINATOR (mcp-behavior beside it) and BEHAVFIX_DIR (tests/fixtures/behavfix
built); scripts/test.sh sets both."""

import os
import tempfile

import anyio
import pytest
from mcp import Client, StdioServerParameters

COORD = os.environ.get("MCP_COORDINATOR", "")
BEHAVFIX = os.environ.get("BEHAVFIX_DIR", "")

pytestmark = pytest.mark.skipif(
    not COORD or not BEHAVFIX, reason="MCP_COORDINATOR and BEHAVFIX_DIR must be set (scripts/test.sh does)"
)


def test_detections_through_the_coordinator_are_findings_about_the_process():
    bins = os.path.dirname(COORD)

    async def main():
        with tempfile.TemporaryDirectory() as tmp:
            config = os.path.join(tmp, "c.toml")
            with open(config, "w") as f:
                f.write(f'[[servers]]\nname = "behavior"\ncommand = "{bins}/mcp-behavior"\n'
                        'args = ["--allow-launch"]\n')
            params = StdioServerParameters(
                command=COORD, args=["--config", config, "--data-dir", os.path.join(tmp, "data")])
            async with Client(params) as client:
                behave = os.path.join(BEHAVFIX, "behave")
                fired = {}
                for mode, extra in (("execmem", []), ("connect", ["5999"])):
                    r = await client.call_tool("behavior__trace_start", {"command": [behave, mode, *extra]})
                    assert not r.is_error, r.content
                    trace, pid = r.structured_content["trace_id"], r.structured_content["pid"]
                    assert r.structured_content["mode"] == "seccomp"
                    for _ in range(100):
                        s = await client.call_tool("behavior__behavior_summary", {"trace_id": trace})
                        if not s.structured_content["running"]:
                            break
                        await anyio.sleep(0.05)
                    d = await client.call_tool("behavior__detect", {"trace_id": trace, "game_dir": BEHAVFIX,
                                                                     "save_dir": tmp})
                    assert not d.is_error, d.content
                    assert d.structured_content["pid"] == pid
                    fired[mode] = {x["rule"]: x["count"] for x in d.structured_content["detections"]}
                    q = await client.call_tool("findings_query", {"kind": "detection", "target": str(pid)})
                    items = q.structured_content["items"]
                    assert len(items) == 1, items
                    got = await client.call_tool("findings_get", {"id": items[0]["id"]})
                    assert [link["relation"] for link in got.structured_content["links"]] == ["found_by"]
                assert fired == {"execmem": {"exec-memory-outside-module": 1},
                                 "connect": {"unexpected-port": 1}}, fired

    anyio.run(main)
