"""The dashboard's findings page over a store of 10,000 findings (issue 17's figure): the
server's time to answer GET /ui/findings (first page, and a text search) on a keep-alive
connection, and a browser's (Debian's Chromium through Playwright) time to load the page,
medians of 20 and 5.

The store is filled with SQL in the coordinator's own schema (one process writes it before the
coordinator starts; each row as findings_record would write it).

Run: .venv/bin/python scripts/bench-dashboard.py target/release (scripts/bench.sh does)."""

import http.client
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

import anyio
from playwright.async_api import async_playwright

FINDINGS = 10_000


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port, proc):
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert proc.poll() is None, "the coordinator exited"
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def fill(data_dir, coordinator, config):
    # The coordinator creates its schema; then the rows go in, and it is started again.
    port = free_port()
    p = subprocess.Popen([coordinator, "--config", config, "--data-dir", data_dir,
                          "--http", f"127.0.0.1:{port}"], stderr=subprocess.DEVNULL)
    wait_listening(port, p)
    p.terminate()
    p.wait(timeout=30)
    db = sqlite3.connect(os.path.join(data_dir, "findings.sqlite3"))
    now = time.time()
    rows = [(f"f-bench-{i}", "bench", now - i, "tool_call" if i % 3 else "note",
             f"static__binary_info of sample {i}.dll", "static", "binary_info",
             json.dumps({"path": f"/games/sample{i}.dll"}),
             json.dumps({"binary": f"/games/sample{i}.dll", "sha256": f"{i:064x}"}),
             f"pe32 x86, {i % 40} sections", json.dumps({"format": "pe32", "n": i}))
            for i in range(FINDINGS)]
    db.executemany("INSERT INTO findings (id, session, time, kind, title, server, tool, arguments, "
                   "target, summary, data) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
    db.executemany("INSERT INTO links (from_id, to_id, relation, time) VALUES (?,?,?,?)",
                   [(f"f-bench-{i}", f"f-bench-{i + 1}", "next", now) for i in range(0, FINDINGS - 1, 2)])
    db.commit()
    db.close()


def server_times(port, path, n=20):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    for _ in range(n + 1):
        t = time.perf_counter()
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        times.append(time.perf_counter() - t)
        assert r.status == 200, (r.status, body[:200])
    conn.close()
    return statistics.median(times[1:]) * 1000, len(body)


async def browser_times(port, path, n=5):
    chromium = shutil.which("chromium")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = await browser.new_page()
        times = []
        for _ in range(n + 1):
            await page.goto(f"http://127.0.0.1:{port}{path}")
            t = await page.evaluate("() => { const n = performance.getEntriesByType('navigation')[0];"
                                    " return n.loadEventEnd - n.startTime; }")
            times.append(t)
        await browser.close()
    return statistics.median(times[1:])


def main():
    bin_dir = sys.argv[1] if len(sys.argv) > 1 else "target/release"
    coordinator = os.path.join(bin_dir, "mcp-coordinator")
    child = os.path.join(bin_dir, "mcp-test-child")
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "c.json")
        with open(config, "w") as f:
            json.dump({"mcpServers": {"child": {"command": child}}}, f)
        data = os.path.join(tmp, "data")
        fill(data, coordinator, config)
        port = free_port()
        p = subprocess.Popen([coordinator, "--config", config, "--data-dir", data,
                              "--http", f"127.0.0.1:{port}", "--dashboard"], stderr=subprocess.DEVNULL)
        try:
            wait_listening(port, p)
            for what, path in [("first page", "/ui/findings"), ("text search", "/ui/findings?text=sample%20777")]:
                ms, size = server_times(port, path)
                browser = anyio.run(browser_times, port, path)
                print(f"findings page ({what}) of {FINDINGS} findings: server {ms:.1f} ms "
                      f"({size // 1000} KB), browser load {browser:.1f} ms")
        finally:
            p.terminate()
            p.wait(timeout=30)


if __name__ == "__main__":
    main()
