"""mcp-coordinator driven by the official Python MCP SDK (mcp 2.3.0): the children's tools
appear namespaced, a proxied call answers like the child, progress sent by a child reaches the
host through the coordinator, servers_status lists the children and findings_status the store,
the children's resources keep their URIs and are read through the coordinator.

Needs MCP_COORDINATOR, MCP_TEST_CHILD and MCP_STATIC (the binaries); scripts/test.sh sets them."""

import os
import tempfile

import anyio
import pytest
from mcp import Client, StdioServerParameters

COORD = os.environ.get("MCP_COORDINATOR", "")
# Enough progress per call that its handler tasks are still running when the result is in.
STEPS = 200
CHILD = os.environ.get("MCP_TEST_CHILD", "")
STATIC = os.environ.get("MCP_STATIC", "")

pytestmark = pytest.mark.skipif(
    not (COORD and CHILD and STATIC),
    reason="MCP_COORDINATOR, MCP_TEST_CHILD and MCP_STATIC must be set (scripts/test.sh does)",
)


async def run_session(config):
    params = StdioServerParameters(command=COORD, args=["--config", config, "--data-dir",
                                                        os.path.join(os.path.dirname(config), "data")],
                                   env={"PATH": os.environ.get("PATH", "")})
    async with Client(params) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"servers_status", "fan_out", "child__echo", "static__binary_info"} <= names

        r = await client.call_tool("child__echo", {"text": "hello"})
        assert not r.is_error and r.structured_content["text"] == "hello"

        # Every call's progress reaches the host before its result: the last step is always
        # there when the call returns (earlier steps may be skipped, never reordered).
        for _ in range(20):
            seen = []

            async def progress(done, total, message):
                seen.append((done, total))

            r = await client.call_tool("child__progress", {"steps": STEPS}, progress_callback=progress)
            assert not r.is_error, r.content
            done = [d for d, _ in seen]
            assert done and done == sorted(set(done)) and done[-1] == STEPS, seen
            assert all(t == STEPS for _, t in seen)

        st = await client.call_tool("servers_status", {})
        states = {s["name"]: s["state"] for s in st.structured_content["servers"]}
        assert states == {"child": "running", "static": "running"}

        # Resources keep the child's URIs; a read by template reaches the child.
        uris = {r.uri for r in (await client.list_resources()).resources}
        assert "test://static" in uris, uris
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        assert {"test://echo/{text}", "findings://{id}"} <= templates, templates
        read = await client.read_resource("test://echo/hello")
        assert read.contents[0].text == "hello", read

        bad = await client.call_tool("static__binary_info", {"path": "/etc/passwd"})
        assert bad.is_error and "outside the allowed roots" in bad.content[0].text

        # The successful calls above are findings in the embedded store, nothing waits to
        # be shipped (no remote graph), and the shared scope says why it is not there.
        fs = (await client.call_tool("findings_status", {})).structured_content
        assert fs["store"] == "sqlite" and fs["backlog"] == 0 and fs["findings"] >= 2, fs
        shared = await client.call_tool("findings_query", {"scope": "shared"})
        assert shared.is_error and "`scope`" in shared.content[0].text


def test_python_sdk_through_the_coordinator():
    with tempfile.TemporaryDirectory() as d:
        config = os.path.join(d, "coordinator.toml")
        with open(config, "w") as f:
            f.write(f'[[servers]]\nname = "child"\ncommand = "{CHILD}"\n'
                    f'[[servers]]\nname = "static"\ncommand = "{STATIC}"\nargs = ["--root", "{d}"]\n')
        anyio.run(run_session, config)
