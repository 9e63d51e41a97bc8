#!/usr/bin/env python3
"""A scripted agent session: the steps an LLM agent takes through mcp-coordinator to analyse a
running game, written out so that anyone can replay them. It uses the official Python MCP SDK
(mcp 2.3.0) and prints one JSON line per step (its tool, whether it succeeded, what it found).

The game runs in a sandbox that sandbox-runner starts; mcp-d2 and mcp-memory read it from
outside by the host pid the sandbox reports; mcp-static looks at the game's D2Client.dll; the
coordinator records every result as a finding, and the session links them into one graph.

  # the coordinator over stdio, started by this script with the suite's binaries in BIN_DIR
  agent_session.py --game-dir DIR --bin-dir BIN_DIR [--data-dir D]
  # the same with a config of your own
  agent_session.py --game-dir DIR --config coordinator.toml [--coordinator BIN] [--data-dir D]
  # a coordinator already serving HTTP (e.g. behind its gateway)
  agent_session.py --game-dir DIR --url http://127.0.0.1:8931/ [--token TOKEN]
  # the container deployment (deploy/): HTTPS through nginx; the game's pid is the runner
  # container's, so the script signals it through that container
  agent_session.py --game-dir /games --url https://localhost:8443/ --token "$(cat deploy/local/token)" \
      --cacert deploy/local/tls/cert.pem --kill-cmd "podman exec mcp_runner_1 kill"

DIR holds the game: `d2game` and `D2Client.dll` (tests/fixtures/d2game/build.sh builds a small
stand-in with the 1.13c layout), or `d2game.exe` with `--wine`. The coordinator needs the
children `sandbox` (sandbox-runner mcp --allow-launch), `d2`, `memory` and `static`, the last
with DIR under its roots. Exit status 0 when every step succeeded, 1 otherwise.
"""

import argparse
import json
import os
import shlex
import signal
import ssl
import subprocess
import sys
import time

import anyio
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client


class Session:
    """Calls tools and prints each step as a JSON line; remembers whether any failed.
    `kill_cmd`: how the game is signalled when its pid is another namespace's (a container)."""

    def __init__(self, client, kill_cmd=None):
        self.client = client
        self.failed = False
        self.kill_cmd = kill_cmd

    def signal_game(self, pid):
        """SIGUSR1 to the game: the native fixture gains 1000 experience."""
        if self.kill_cmd:
            subprocess.run([*shlex.split(self.kill_cmd), "-USR1", str(pid)], check=True,
                           capture_output=True)
        else:
            os.kill(pid, signal.SIGUSR1)

    def step(self, name, tool, ok, /, **found):
        print(json.dumps({"step": name, "tool": tool, "ok": ok, **found}), flush=True)
        if not ok:
            self.failed = True

    async def call(self, tool, arguments):
        r = await self.client.call_tool(tool, arguments)
        text = " ".join(c.text for c in r.content if getattr(c, "text", None))
        return (not r.is_error), (r.structured_content or {}), text


def demo_config(bin_dir, game_dir):
    """The coordinator config the session needs: the suite's servers from `bin_dir`, with
    `game_dir` readable by mcp-static and by the sandbox."""
    b = os.path.abspath(bin_dir)
    return f"""[[servers]]
name = "sandbox"
command = "{b}/sandbox-runner"
args = ["mcp", "--allow-launch", "--root", "{game_dir}"]

[[servers]]
name = "d2"
command = "{b}/mcp-d2"

[[servers]]
name = "memory"
command = "{b}/mcp-memory"

[[servers]]
name = "static"
command = "{b}/mcp-static"
args = ["--root", "{game_dir}"]

[[servers]]
name = "behavior"
command = "{b}/mcp-behavior"
"""


async def wait_for(seconds, attempt):
    """Calls `attempt()` every 0.2 s until it returns something other than None."""
    deadline = time.monotonic() + seconds
    while True:
        found = await attempt()
        if found is not None or time.monotonic() > deadline:
            return found
        await anyio.sleep(0.2)


async def who_writes(s, pid, experience):
    """Cheat Engine's workflow: find the experience in memory, narrow it down after the game
    gains some, then ask which instruction writes it while the game gains again (the native
    fixture gains 1000 on SIGUSR1, standing in for the player's kill)."""
    ok, first, text = await s.call("memory__scan_start", {
        "pid": pid, "value_type": "u32", "value": experience})
    scan = first.get("scan_id")
    s.signal_game(pid)
    await anyio.sleep(0.3)
    ok2, nxt, text2 = await s.call("memory__scan_next", {"scan_id": scan, "condition": "increased"})
    found = (nxt.get("matches") or [{}])[0].get("address") if ok2 else None
    s.step("find_experience", "memory__scan_next", ok and ok2 and found is not None,
           first=first.get("match_count"), after_gain=nxt.get("match_count"), address=found,
           error=None if ok and ok2 else (text or text2))
    if found is None:
        return
    watched = {}

    async def watch():
        watched["r"] = await s.call("behavior__find_writers", {
            "pid": pid, "address": found, "duration_s": 3, "max_hits": 1})

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        # The watch is armed some time after the call starts (later on a busy machine), so
        # the game gains again every half second until the first write is caught.
        for _ in range(5):
            await anyio.sleep(0.5)
            if "r" in watched:
                break
            s.signal_game(pid)
    ok, w, text = watched["r"]
    top = (w.get("items") or [{}])[0]
    s.step("who_writes", "behavior__find_writers", ok and w.get("hits") == 1,
           instruction=top.get("instruction"), module=top.get("module"),
           change=top.get("first_change"), error=None if ok else text)


async def analyse(s, game_dir, wine):
    tools = (await s.client.list_tools()).tools
    prefixes = sorted({t.name.split("__")[0] for t in tools if "__" in t.name})
    s.step("discover", "tools/list", {"sandbox", "d2", "memory", "static"} <= set(prefixes),
           tools=len(tools), servers=prefixes)

    ok, st, text = await s.call("servers_status", {})
    states = {x["name"]: x["state"] for x in st.get("servers", [])}
    s.step("servers", "servers_status", ok and all(v == "running" for v in states.values()),
           states=states)

    dll = os.path.join(game_dir, "D2Client.dll")
    ok, info, text = await s.call("static__binary_info", {"path": dll})
    s.step("inspect_dll", "static__binary_info", ok, format=info.get("format"),
           arch=info.get("arch"), sha256=info.get("sha256"), error=None if ok else text)

    # The game waits on stdin; a pipe that never delivers keeps it running until the stop.
    if wine:
        program, script = "/bin/sh", f"cd '{game_dir}' && sleep 600 | wine d2game.exe"
        env = {"WINEDLLOVERRIDES": "mscoree,mshtml="}
        profile, is_game = "wine", lambda p: "d2game.exe" in (p.get("exe_mappings") or [])
    else:
        program, script = "/bin/sh", f"sleep 600 | '{game_dir}/d2game' '{dll}'"
        env = {}
        profile, is_game = "strict", lambda p: p.get("name") == "d2game"
    ok, launched, text = await s.call("sandbox__launch", {
        "profile": profile, "program": program, "args": ["-c", script], "ro": [game_dir],
        "env": env, "network": "none", "timeout": 600})
    sandbox = launched.get("sandbox_id")
    s.step("launch", "sandbox__launch", ok, sandbox_id=sandbox, error=None if ok else text)
    if not ok:
        return

    try:
        async def game_pid():
            ok, st, _ = await s.call("sandbox__status", {"sandbox_id": sandbox})
            if not ok or st.get("state") == "exited":
                return st or {}
            game = next((p for p in st.get("pids", []) if is_game(p)), None)
            return game
        game = await wait_for(120 if wine else 15, game_pid)
        pid = game.get("pid") if game else None
        s.step("find_game", "sandbox__status", pid is not None, host_pid=pid,
               pid_inside=game.get("ns_pid") if game else None)
        if pid is None:
            return

        async def character():
            ok, a, _ = await s.call("analyze_character", {"pid": pid})
            return a if ok and a["character"]["result"].get("name") else None
        a = await wait_for(20, character)
        ch = (a or {}).get("character", {}).get("result", {})
        s.step("analyse", "analyze_character", a is not None, name=ch.get("name"),
               level=ch.get("level"), character_class=ch.get("class"),
               items=(a or {}).get("inventory", {}).get("result", {}).get("count"),
               snapshot_ok=not (a or {}).get("snapshot", {}).get("is_error", True),
               analysis_id=(a or {}).get("analysis_id"))
        if a is None:
            return
        analysis = a["analysis_id"]

        if not wine:
            await who_writes(s, pid, ch.get("experience"))

        # The agent ties what it learned together: the DLL's static finding to the analysis.
        ok, q, _ = await s.call("findings_query", {
            "tool": "static__binary_info", "target": info.get("sha256", ""), "limit": 1})
        dll_finding = (q.get("items") or [{}])[0].get("id")
        s.step("find_dll_finding", "findings_query", ok and dll_finding is not None,
               finding=dll_finding)
        if dll_finding:
            ok, _, text = await s.call("findings_link", {
                "from": analysis, "to": dll_finding, "relation": "game_module"})
            s.step("link", "findings_link", ok, error=None if ok else text)
        ok, rec, text = await s.call("findings_record", {
            "kind": "note", "title": f"{ch.get('name')} analysed in a sandbox",
            "target": {"process": pid}, "data": {"sandbox_id": sandbox, "profile": profile},
            "links": [{"to": analysis, "relation": "about"}]})
        s.step("note", "findings_record", ok, finding=rec.get("finding", {}).get("id"))

        ok, got, _ = await s.call("findings_get", {"id": analysis})
        relations = sorted(link["relation"] for link in got.get("links", []))
        s.step("graph", "findings_get", ok, relations=relations)

        # A report a person reads: the analysis, what links to it, drawn and cited.
        started = time.monotonic()
        ok, rep, text = await s.call("report_generate", {"analysis_id": analysis, "format": "html"})
        s.step("report", "report_generate", ok, uri=rep.get("uri"), path=rep.get("path"),
               findings=rep.get("findings"), links=rep.get("links"), bytes=rep.get("bytes"),
               ms=round((time.monotonic() - started) * 1000, 1), error=None if ok else text)
    finally:
        ok, report, text = await s.call("sandbox__stop", {"sandbox_id": sandbox})
        s.step("stop", "sandbox__stop", ok and report.get("stopped") is True,
               refused_syscalls=len(report.get("seccomp_violations", [])),
               error=None if ok else text)


async def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--game-dir", required=True, help="directory holding the game")
    p.add_argument("--wine", action="store_true", help="run d2game.exe under wine64")
    p.add_argument("--bin-dir", help="the suite's binaries; the script writes the config")
    p.add_argument("--config", help="coordinator config; the script starts the coordinator")
    p.add_argument("--coordinator", default="mcp-coordinator", help="its binary")
    p.add_argument("--data-dir", help="the coordinator's data directory")
    p.add_argument("--url", help="a coordinator serving streamable HTTP")
    p.add_argument("--token", help="bearer token for the coordinator's gateway")
    p.add_argument("--cacert", help="with an https --url: the CA (or self-signed) certificate to trust")
    p.add_argument("--kill-cmd", help="how to signal the game when it runs in another pid namespace, "
                                      "e.g. 'podman exec mcp_runner_1 kill' (the signal and pid follow)")
    a = p.parse_args()
    if [bool(a.bin_dir), bool(a.config), bool(a.url)].count(True) != 1:
        p.error("give one of --bin-dir or --config (stdio) and --url (HTTP)")
    # A path in the servers' view: with --url it may be a container's, which need not exist here.
    game_dir = a.game_dir if a.url else os.path.abspath(a.game_dir)
    if a.bin_dir:
        data_dir = a.data_dir or os.path.abspath("agent-session-data")
        os.makedirs(data_dir, exist_ok=True)
        a.config = os.path.join(data_dir, "coordinator.toml")
        with open(a.config, "w") as f:
            f.write(demo_config(a.bin_dir, game_dir))
        a.coordinator, a.data_dir = os.path.join(a.bin_dir, "mcp-coordinator"), data_dir
    if a.url:
        headers = {"Authorization": f"Bearer {a.token}"} if a.token else {}
        verify = ssl.create_default_context(cafile=a.cacert) if a.cacert else True
        async with httpx2.AsyncClient(headers=headers, timeout=120, verify=verify) as http:
            async with Client(streamable_http_client(a.url, http_client=http)) as client:
                s = Session(client, a.kill_cmd)
                await analyse(s, game_dir, a.wine)
    else:
        args = ["--config", a.config] + (["--data-dir", a.data_dir] if a.data_dir else [])
        params = StdioServerParameters(command=a.coordinator, args=args,
                                       env={"PATH": os.environ.get("PATH", "")})
        async with Client(params) as client:
            s = Session(client, a.kill_cmd)
            await analyse(s, game_dir, a.wine)
    return 1 if s.failed else 0


if __name__ == "__main__":
    try:
        sys.exit(anyio.run(main))
    except Exception as e:  # a refused connection or token, a coordinator that died
        print(f"agent_session: the session ended early: {e!r}", file=sys.stderr)
        sys.exit(1)
