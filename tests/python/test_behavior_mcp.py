"""mcp-behavior through the coordinator with the official Python MCP SDK (mcp 2.3.0): a
program launched under trace_start does one behaviour (executable memory, a connection to a
port the game does not use), `detect` fires exactly those rules, and the coordinator records
each detection as a finding about the traced process, linked to the call that found it. And
a watch series: mcp-memory's `watch` of a value changed on a fixed beat, its change times
given to `detect`, fires the timing rule; the same value changed on an uneven beat does not.

Needs MCP_COORDINATOR (mcp-behavior beside it) and BEHAVFIX_DIR (tests/fixtures/behavfix
built); scripts/test.sh sets both."""

import json
import os
import subprocess
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


def test_a_watched_values_changes_are_a_series_for_the_timing_rule():
    bins = os.path.dirname(COORD)

    async def watch_while_writing(client, writer, pid, life, gaps_ms):
        """Watches `life` while the writer stores a new value after each gap; answers the
        change times after the first sample (the value's start)."""
        samples = int((sum(gaps_ms) + 1500) / 10)
        answer = {}

        async def watch():
            answer["r"] = await client.call_tool("memory__watch", {
                "pid": pid, "address": life, "value_type": "u32", "interval_ms": 10,
                "samples": samples})

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            await anyio.sleep(0.5)
            for i, gap in enumerate(gaps_ms):
                await anyio.sleep(gap / 1000)
                writer.stdin.write(f"write {2000 + i}\n".encode())
                writer.stdin.flush()
                assert writer.stdout.readline().strip() == b"ok"
        r = answer["r"]
        assert not r.is_error, r.content
        changes = r.structured_content["changes"]
        assert [c["value"] for c in changes[1:]] == [2000 + i for i in range(len(gaps_ms))], changes
        return [c["t_ms"] for c in changes[1:]]

    async def main():
        with tempfile.TemporaryDirectory() as tmp:
            config = os.path.join(tmp, "c.toml")
            with open(config, "w") as f:
                f.write(f'[[servers]]\nname = "behavior"\ncommand = "{bins}/mcp-behavior"\n\n'
                        f'[[servers]]\nname = "memory"\ncommand = "{bins}/mcp-memory"\n')
            writer = subprocess.Popen([os.path.join(BEHAVFIX, "writer")], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE)
            try:
                info = json.loads(writer.stdout.readline())
                params = StdioServerParameters(
                    command=COORD, args=["--config", config, "--data-dir", os.path.join(tmp, "data")])
                async with Client(params) as client:
                    # A script's beat: 400 ms apart (the 10 ms sampling blurs each time by
                    # at most one sample); a human's: 250 to 650 ms apart.
                    beat = await watch_while_writing(client, writer, info["pid"], info["life"], [400] * 22)
                    uneven = [250 + (i * 137) % 400 for i in range(22)]
                    human = await watch_while_writing(client, writer, info["pid"], info["life"], uneven)
                    fired = {}
                    for name, times in (("beat", beat), ("human", human)):
                        d = await client.call_tool("behavior__detect", {"actions_ms": times})
                        assert not d.is_error, d.content
                        fired[name] = {x["rule"]: x["count"] for x in d.structured_content["detections"]}
                    assert fired == {"beat": {"regular-action-intervals": 1}, "human": {}}, (fired, beat, human)
            finally:
                writer.kill()
                writer.wait()

    anyio.run(main)
