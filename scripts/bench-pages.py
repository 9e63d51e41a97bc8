"""Every page of a list through MCP against the command-line tool that prints the whole list,
side by side in one run: `list_strings` over Wine's user32.dll (limit 1000, page after page,
over stdio with the official Python MCP SDK) against `strings -a -n 4`. Median of 5 each; the
server is started once and its first walk is not counted (the file's parse is cached, as in
any session).

    .venv/bin/python scripts/bench-pages.py [BIN_DIR]     (default target/release)"""

import os
import statistics
import subprocess
import sys
import time

import anyio
from mcp import Client, StdioServerParameters

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "release")
USER32 = "/usr/lib/x86_64-linux-gnu/wine/x86_64-windows/user32.dll"
RUNS = 5


async def walk(client):
    offset, n = 0, 0
    while True:
        r = await client.call_tool("list_strings", {"path": USER32, "encoding": "ascii",
                                                    "offset": offset, "limit": 1000})
        page = r.structured_content
        n += len(page["items"])
        if page.get("next_offset") is None:
            return n
        offset = page["next_offset"]


def server_cpu():
    """CPU seconds used so far by this script's mcp-static child."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == os.getpid() and os.readlink(f"/proc/{entry}/exe").endswith("mcp-static"):
                return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return 0.0


async def pages():
    params = StdioServerParameters(command=os.path.join(BINS, "mcp-static"),
                                   args=["--root", os.path.dirname(USER32)],
                                   env={"PATH": os.environ.get("PATH", "")})
    async with Client(params) as client:
        count = await walk(client)
        times = []
        cpu0 = server_cpu()
        for _ in range(RUNS):
            t = time.perf_counter()
            await walk(client)
            times.append(time.perf_counter() - t)
        return count, times, (server_cpu() - cpu0) / RUNS


def main():
    count, mcp_times, cpu = anyio.run(pages)
    tool_times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        subprocess.run(["strings", "-a", "-n", "4", USER32], stdout=subprocess.DEVNULL, check=True)
        tool_times.append(time.perf_counter() - t)
    m, s = statistics.median(mcp_times), statistics.median(tool_times)
    print(f"list_strings, every page ({count} strings): {m:.3f} s; strings -a -n 4: {s:.3f} s; "
          f"ratio {m / s:.2f}x; the server's own CPU per walk {cpu:.3f} s (the rest is the "
          f"client's parsing and the pipe)")


if __name__ == "__main__":
    main()
