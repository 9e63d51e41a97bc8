"""Cancel-to-stop latency of a real scan, mcp-memory directly and through mcp-coordinator,
side by side: a pattern scan over a 1 GiB region of the memory fixture is started with the
official Python MCP SDK, cancelled by the client (the SDK sends `notifications/cancelled`)
once the server's CPU shows it busy, and the time until the server's CPU stops growing is
taken from /proc (the last 10 ms sample that saw it grow; 100 Hz clock ticks). Five runs each, medians printed.

    .venv/bin/python scripts/bench-cancel.py [BIN_DIR] [MEMFIX]
(default target/debug and target/python-fixtures/memfix/memfix, which scripts/test.sh builds)."""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import anyio
from mcp import Client, StdioServerParameters

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINS = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "target", "debug")
MEMFIX = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
    ROOT, "target", "python-fixtures", "memfix", "memfix")
RUNS = 5


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def children_of(pid):
    """Pids whose parent is `pid`."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except OSError:
                pass
    return out


async def one_run(client, server_pid, tool, target_pid):
    """Milliseconds from the cancel until the server's CPU stops growing."""
    stop_at = {}

    async def scan():
        with anyio.CancelScope() as scope:
            stop_at["scope"] = scope
            await client.call_tool(tool, {"pid": target_pid, "pattern": "B5 ?? 6B ?? ?? 01 ?? 77",
                                          "alignment": 1})

    async with anyio.create_task_group() as tg:
        tg.start_soon(scan)
        before = cpu_ticks(server_pid)
        deadline = time.monotonic() + 30
        while cpu_ticks(server_pid) < before + 20:
            if time.monotonic() > deadline:
                raise RuntimeError("the scan never got busy")
            await anyio.sleep(0.01)
        cancelled = time.monotonic()
        stop_at["scope"].cancel()
    # The CPU stopped at the last 10 ms sample that saw it grow, once 150 ms pass without
    # growth (a tick is 10 ms: the resolution is about one sample).
    last, last_growth = cpu_ticks(server_pid), cancelled
    while time.monotonic() - last_growth < 0.15:
        await anyio.sleep(0.01)
        now = cpu_ticks(server_pid)
        if now > last:
            last, last_growth = now, time.monotonic()
        if time.monotonic() - cancelled > 30:
            raise RuntimeError("the scan never stopped")
    return (last_growth - cancelled) * 1e3


async def measure(params, tool, server_pid_of, target_pid):
    async with Client(params) as client:
        server_pid = server_pid_of()
        results = []
        for _ in range(RUNS):
            results.append(await one_run(client, server_pid, tool, target_pid))
            # The server still answers after each cancel.
            await client.list_tools()
        return results


def main():
    fx = subprocess.Popen([MEMFIX, "--big-mib", "1024"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True)
    try:
        target = json.loads(fx.stdout.readline())["pid"]
        env = {"PATH": os.environ.get("PATH", "")}
        memory = os.path.join(BINS, "mcp-memory")
        coord = os.path.join(BINS, "mcp-coordinator")

        def direct_pid():
            return max(p for p in children_of(os.getpid())
                       if os.readlink(f"/proc/{p}/exe").endswith("mcp-memory"))

        direct = anyio.run(measure, StdioServerParameters(command=memory, args=[], env=env),
                           "scan_start", direct_pid, target)
        with tempfile.TemporaryDirectory() as d:
            cfg = os.path.join(d, "c.toml")
            with open(cfg, "w") as f:
                f.write(f'[[servers]]\nname = "memory"\ncommand = "{memory}"\n')

            def proxied_pid():
                coords = [p for p in children_of(os.getpid())
                          if os.readlink(f"/proc/{p}/exe").endswith("mcp-coordinator")]
                return max(c for p in coords for c in children_of(p))

            proxied = anyio.run(measure, StdioServerParameters(
                command=coord, args=["--config", cfg, "--data-dir", os.path.join(d, "data")],
                env=env), "memory__scan_start", proxied_pid, target)
        md, mp = statistics.median(direct), statistics.median(proxied)
        print(f"cancel -> scan CPU stopped, median of {RUNS}: direct {md:.0f} ms, "
              f"through the coordinator {mp:.0f} ms "
              f"(samples direct {[round(x) for x in direct]}, proxied {[round(x) for x in proxied]})")
    finally:
        fx.kill()
        fx.wait()


if __name__ == "__main__":
    main()
