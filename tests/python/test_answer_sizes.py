"""Every answer bounded: each tool of each server, called through the official Python MCP SDK
(mcp 2.3.0) at its default arguments and at the largest each accepts (every argument with a
`maximum` set to it), on real inputs: Wine's user32.dll, the memory fixture, the fixture game,
every save and stash of ../shared/fixtures/d2s and its D2GS dump. No answer may exceed
100 KB on the wire (text and structured content together, as JSON).

Arguments are filled by name from what each server can read (`path`, `pid`, `source`, ...)
and from ids earlier answers gave (`scan_id`, `snapshot_id`, ...), so a tool added later is
swept too. The largest answer per server is printed.

Needs MCP_STATIC, MCP_MEMORY, MCP_COORDINATOR (the bins beside it), MEMFIX, D2GAME_DIR;
scripts/test.sh sets them. The shared fixtures (../shared/fixtures, or SHARED_FIXTURES) are
optional: without them the sweep runs on what remains and a warning says so, or the test fails
when REQUIRE_SHARED_FIXTURES is set."""

import glob
import json
import os
import subprocess
import tempfile
import warnings

import anyio
import pytest
from mcp import Client, StdioServerParameters

COORD = os.environ.get("MCP_COORDINATOR", "")
MEMFIX = os.environ.get("MEMFIX", "")
D2GAME = os.environ.get("D2GAME_DIR", "")
SHARED = os.environ.get("SHARED_FIXTURES") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "fixtures")
USER32 = "/usr/lib/x86_64-linux-gnu/wine/x86_64-windows/user32.dll"
BOUND = 100_000

pytestmark = pytest.mark.skipif(
    not (COORD and MEMFIX and D2GAME),
    reason="MCP_COORDINATOR, MEMFIX and D2GAME_DIR must be set (scripts/test.sh does)",
)

# Tools that change state or start things: swept elsewhere, never here.
SKIP = {"write_memory", "undo_write", "launch", "stop", "capture_start", "freeze"}


def wire_size(result):
    return len(json.dumps(result.model_dump(by_alias=True, exclude_none=True, mode="json")))


def with_maxima(schema, args):
    """`args` plus every optional argument that has a `maximum`, set to it."""
    out = dict(args)
    for name, prop in schema.get("properties", {}).items():
        if name not in out and "maximum" in prop and prop.get("type") in ("integer", "number"):
            out[name] = prop["maximum"]
    return out


async def sweep(server, values, ids_from, sizes, label):
    """Calls each tool of `server` whose required arguments `values` (name -> list of
    candidates) can fill; ids answered by earlier calls are added to `values`."""
    params = StdioServerParameters(command=server[0], args=server[1:],
                                   env={"PATH": os.environ.get("PATH", ""),
                                        "HOME": os.environ.get("HOME", "/root")})
    async with Client(params) as client:
        tools = (await client.list_tools()).tools
        # Producers of ids first, so that their consumers find them.
        tools.sort(key=lambda t: (t.name not in ids_from, t.name))
        for t in tools:
            if t.name in SKIP:
                continue
            required = t.input_schema.get("required", [])
            props = t.input_schema.get("properties", {})
            # An argument with an enum: each of its values.
            local = dict(values)
            for r in required:
                if r not in local and "enum" in props.get(r, {}):
                    local[r] = props[r]["enum"]
            if any(r not in local for r in required):
                sizes.append((label, t.name, "skipped: no value for " + ",".join(
                    r for r in required if r not in values), 0))
                continue
            # One call per candidate of the first required argument with several.
            combos = [{}]
            for r in required:
                combos = [dict(c, **{r: v}) for c in combos for v in local[r]]
            for args in combos[:40]:
                for variant, a in (("default", args), ("max", with_maxima(t.input_schema, args))):
                    r = await client.call_tool(t.name, a)
                    n = wire_size(r)
                    sizes.append((label, t.name, f"{variant} {json.dumps(a)[:120]}", n))
                    if not r.is_error and t.name in ids_from and r.structured_content:
                        key = ids_from[t.name]
                        v = r.structured_content.get(key)
                        if v is not None:
                            values.setdefault(key, [])
                            if v not in values[key]:
                                values[key].append(v)


def test_no_answer_exceeds_100_kb():
    bins = os.path.dirname(COORD)
    saves = sorted(glob.glob(os.path.join(SHARED, "d2s", "*")))
    dump = os.path.join(SHARED, "d2gs", "d2gs_sc.dump")
    if not saves:
        why = f"the shared fixtures {SHARED} are absent (set SHARED_FIXTURES=DIR to where they are)"
        if os.environ.get("REQUIRE_SHARED_FIXTURES", "") not in ("", "0"):
            pytest.fail(f"{why}, and REQUIRE_SHARED_FIXTURES is set")
        warnings.warn(f"{why}: the sweep runs without the shared saves and dump")
    sizes = []
    fx = subprocess.Popen([MEMFIX], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    game = subprocess.Popen([os.path.join(D2GAME, "d2game"), os.path.join(D2GAME, "D2Client.dll")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=D2GAME)
    try:
        info = json.loads(fx.stdout.readline())
        json.loads(game.stdout.readline())

        async def main():
            with tempfile.TemporaryDirectory() as tmp:
                await sweep([os.path.join(bins, "mcp-static"), "--root", "/usr/lib"],
                            {"path": [USER32], "path_a": [USER32], "path_b": [USER32],
                             "address": ["0x180001000"], "pattern": ["48 89 5C 24"],
                             "string": ["user32"], "import": ["NtUserCallOneParam"]},
                            {}, sizes, "static")
                await sweep([os.path.join(bins, "mcp-memory")],
                            {"pid": [fx.pid], "address": [info["heap_value"]], "value_type": ["u32"],
                             "size": [64], "addresses": [[info["heap_value"]]],
                             "layout": ["d2-1.13c/UnitAny"], "target": [info["heap_value"]],
                             "length": [4096], "count": [100], "type": ["u32"],
                             "interval_ms": [10], "samples": [3], "max_depth": [2],
                             "max_offset": [256], "pointer_size": [8],
                             "base": [info["heap_value"]], "offsets": [[0]]},
                            {"scan_start": "scan_id", "snapshot": "snapshot_id",
                             "pointer_scan": "pointer_scan_id"}, sizes, "memory")
                d2_files = [s for s in saves if s.endswith(".d2s")] or [tmp]
                stashes = [s for s in saves if not s.endswith(".d2s")] or [tmp]
                await sweep([os.path.join(bins, "mcp-d2"), "--root", os.path.join(SHARED, "d2s")
                             if saves else tmp],
                            {"pid": [game.pid], "path": d2_files + stashes,
                             "before": d2_files[:3], "after": d2_files[-3:],
                             "path_a": d2_files[:3], "path_b": d2_files[-3:],
                             "table": ["stats", "skills", "areas", "classes"],
                             "kind": ["stat", "area", "class", "skill"]},
                            {}, sizes, "d2")
                if os.path.exists(dump):
                    await sweep([os.path.join(bins, "mcp-network"), "--root", os.path.dirname(dump),
                                 "--output-dir", tmp],
                                {"source": [dump], "index": [0, 100], "flow_id": [0, 1]},
                                {}, sizes, "network")
                await sweep([COORD, "--data-dir", os.path.join(tmp, "data")], {},
                            {}, sizes, "coordinator")

        anyio.run(main)
    finally:
        for p in (fx, game):
            p.kill()
            p.wait()
    by_server = {}
    for label, tool, args, n in sizes:
        if n > by_server.get(label, (0, ""))[0]:
            by_server[label] = (n, f"{tool} {args}")
    for label, (n, what) in sorted(by_server.items()):
        print(f"largest answer of {label}: {n} bytes ({what})")
    skipped = [s for s in sizes if s[2].startswith("skipped")]
    for label, tool, why, _ in skipped:
        print(f"{label} {tool}: {why}")
    assert len([s for s in sizes if not s[2].startswith("skipped")]) > 50
    over = [f"{label} {tool} {args}: {n} bytes" for label, tool, args, n in sizes if n > BOUND]
    assert not over, "answers over 100 KB:\n" + "\n".join(over)
