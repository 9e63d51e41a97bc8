"""Every argument error names its argument: for each tool of the whole suite (through the
coordinator, official Python MCP SDK 2.3.0), each argument given a value of the wrong JSON
type, a value outside its enum, a number beyond its range, and a misspelt name, must come
back as isError text naming that argument (and, for a misspelt one, the accepted ones).

Needs MCP_COORDINATOR with the servers built beside it; scripts/test.sh sets it."""

import os
import tempfile

import anyio
import pytest
from mcp import Client, StdioServerParameters

COORD = os.environ.get("MCP_COORDINATOR", "")
# Tools that start or change things are left out: a valid call there has effects.
SKIP = {"memory__write_memory", "memory__undo_write", "sandbox__launch", "sandbox__stop",
        "network__capture_start", "servers_restart", "fan_out"}

pytestmark = pytest.mark.skipif(not COORD, reason="MCP_COORDINATOR must be set (scripts/test.sh does)")


def wrong_type(prop):
    """A value of a JSON type the property does not accept, or None when it takes anything."""
    types = prop.get("type")
    if types is None:
        return None
    types = types if isinstance(types, list) else [types]
    for candidate in ({"x": 1}, "not-a-number", 12345, True):
        kind = {dict: "object", str: "string", int: "integer", bool: "boolean"}[type(candidate)]
        if kind not in types and not (kind == "integer" and "number" in types):
            return candidate
    return None


def test_each_argument_error_names_its_argument():
    async def main():
        with tempfile.TemporaryDirectory() as home:
            params = StdioServerParameters(
                command=COORD, args=["--data-dir", os.path.join(home, "data")],
                env={"PATH": os.environ.get("PATH", ""), "HOME": home}, cwd="/")
            async with Client(params) as client:
                tools = (await client.list_tools()).tools
                checked, unnamed = 0, []
                for t in tools:
                    if t.name in SKIP:
                        continue
                    props = t.input_schema.get("properties", {})
                    # A misspelt argument.
                    r = await client.call_tool(t.name, {"zzz_unknown": 1})
                    text = " ".join(getattr(c, "text", "") for c in r.content)
                    checked += 1
                    if not (r.is_error and "`zzz_unknown`" in text):
                        unnamed.append((t.name, "zzz_unknown", text[:200]))
                    for name, prop in props.items():
                        bad = []
                        w = wrong_type(prop)
                        if w is not None:
                            bad.append(w)
                        if "enum" in prop:
                            bad.append("no-such-choice")
                        if "maximum" in prop:
                            bad.append(prop["maximum"] + 1)
                        if "minimum" in prop:
                            bad.append(prop["minimum"] - 1)
                        for value in bad:
                            r = await client.call_tool(t.name, {name: value})
                            text = " ".join(getattr(c, "text", "") for c in r.content)
                            checked += 1
                            # Another required argument may be named first as missing; that
                            # is an error naming its argument too.
                            if not (r.is_error and "`" in text):
                                unnamed.append((t.name, name, text[:200]))
                            elif f"`{name}`" not in text and "missing argument" not in text:
                                unnamed.append((t.name, name, text[:200]))
                print(f"{checked} bad calls over {len(tools)} tools")
                assert checked > 200
                assert not unnamed, "errors that do not name the argument:\n" + "\n".join(
                    f"{t} {a}: {m}" for t, a, m in unnamed)

    anyio.run(main)
