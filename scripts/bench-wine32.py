"""The 32-bit game's figures (issue 13), in one run: the fixture's Game.exe and PE32 DLLs under
32-bit Wine (tests/fixtures/d2game, win32/), read through MCP with the official Python SDK.

- `character` latency through mcp-d2 (median and p90 of 50 calls after a first);
- `pointer_scan` from D2Client.dll to the experience cell at depth 3 and 4 (time, chains);
- start-up of the game in a sandbox (`sandbox-runner run --profile wine`) against starting it
  bare, both until the game prints its first line, with a warm WINEPREFIX (median of 5).

    .venv/bin/python scripts/bench-wine32.py [BIN_DIR]    (default target/release; run
    `cargo build --release -p mcp-d2 -p mcp-memory -p sandbox-runner` first)"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import anyio
from mcp import Client, StdioServerParameters

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINS = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "target", "release")
RUNS = 5


def build_game(out):
    subprocess.run(["bash", os.path.join(ROOT, "tests/fixtures/d2game/build.sh"), out], check=True)
    return os.path.join(out, "win32")


def wine_env(prefix):
    env = dict(os.environ, WINEPREFIX=prefix, WINEDEBUG="-all", WINEDLLOVERRIDES="mscoree,mshtml=")
    return env


def first_line(cmd, cwd, env):
    """Seconds from start until the game prints its first line; the game is then ended."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    took = time.perf_counter() - t
    if not line.startswith("{"):
        raise SystemExit(f"{cmd[0]}: the game did not start ({line!r})")
    p.stdin.write("quit\n")
    p.stdin.flush()
    p.wait(timeout=60)
    return took


def params(name, args=()):
    return StdioServerParameters(command=os.path.join(BINS, name), args=list(args),
                                 env={"PATH": os.environ.get("PATH", "")})


async def measure(pid, windows_player):
    out = {}
    async with Client(params("mcp-d2")) as d2:
        await d2.call_tool("character", {"pid": pid})
        times = []
        for _ in range(50):
            t = time.perf_counter()
            r = await d2.call_tool("character", {"pid": pid})
            times.append(time.perf_counter() - t)
            assert r.structured_content["name"] == "FixtureHero", r
        times.sort()
        out["character"] = (statistics.median(times), times[int(len(times) * 0.9)])
    async with Client(params("mcp-memory")) as mem:
        async def u32(address):
            r = await mem.call_tool("read_value", {"pid": pid, "address": address, "type": "u32"})
            return r.structured_content["values"][0]
        stats = await u32(hex(windows_player + 0x5C))
        full = await u32(hex(stats + 0x48))
        exp_cell = full + 8 * 13 + 4
        for depth in (3, 4):
            t = time.perf_counter()
            r = await mem.call_tool("pointer_scan", {"pid": pid, "target": hex(exp_cell),
                                                     "max_depth": depth, "max_offset": 256,
                                                     "modules": ["D2Client.dll"]})
            took = time.perf_counter() - t
            s = r.structured_content
            out[f"depth{depth}"] = (took, s["chain_count"], s["pointers_indexed"])
    return out


def game_pid():
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/maps") as f:
                    if "win32/Game.exe" in f.read():
                        return int(entry)
            except OSError:
                pass
    raise SystemExit("no Game.exe process")


def main():
    work = tempfile.mkdtemp(prefix="bench-wine32-")
    try:
        game = build_game(os.path.join(work, "game"))
        prefix = os.path.join(work, "prefix")
        env = wine_env(prefix)
        first_line(["wine", "Game.exe"], game, env)  # creates the prefix (slow, not counted)
        bare = []
        for _ in range(RUNS):
            # No wineserver left from the last run: the sandbox starts its own each time too.
            subprocess.run(["wineserver", "-k"], env=env, check=False)
            subprocess.run(["wineserver", "-w"], env=env, check=False)
            bare.append(first_line(["wine", "Game.exe"], game, env))
        runner = os.path.join(BINS, "sandbox-runner")
        sandboxed_cmd = [runner, "run", "--profile", "wine", "--ro", work, "--rw", prefix,
                         "--env", f"WINEPREFIX={prefix}", "--env", "WINEDEBUG=-all",
                         "--env", "WINEDLLOVERRIDES=mscoree,mshtml=", "--", "wine",
                         os.path.join(game, "Game.exe")]
        first_line(sandboxed_cmd, game, env)
        boxed = [first_line(sandboxed_cmd, game, env) for _ in range(RUNS)]

        p = subprocess.Popen(["wine", "Game.exe"], cwd=game, env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        info = json.loads(p.stdout.readline())
        try:
            pid = game_pid()
            out = anyio.run(measure, pid, int(info["player"], 16))
        finally:
            p.stdin.write("quit\n")
            p.stdin.flush()
            p.wait(timeout=60)

        b, s = statistics.median(bare), statistics.median(boxed)
        med, p90 = out["character"]
        print(f"32-bit Wine game, character through mcp-d2 (Python SDK client): median "
              f"{med * 1e3:.2f} ms, p90 {p90 * 1e3:.2f} ms")
        for depth in (3, 4):
            took, chains, indexed = out[f"depth{depth}"]
            print(f"pointer_scan depth {depth} (max_offset 256, D2Client.dll bases): {took:.2f} s, "
                  f"{chains} chains, {indexed} pointers indexed")
        print(f"game start-up until its first line: bare {b * 1e3:.0f} ms, in the wine sandbox "
              f"{s * 1e3:.0f} ms; ratio {s / b:.2f}x")
    finally:
        subprocess.run(["wineserver", "-k"], env=wine_env(os.path.join(work, "prefix")),
                       check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
