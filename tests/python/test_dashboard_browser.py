"""The web dashboard in a real browser: Debian's Chromium, headless, driven by Playwright.

A scripted analysis first (the fixture game read by analyze_character through the Python MCP
SDK over HTTP), then the browser signs in with a token, opens every page and checks that the
numbers on them are the ones the MCP tools answer, that the findings graph links the
neighbours, that the live page updates when a call is made, that a finding titled
`<script>alert(1)</script>` renders as text (no dialog), that a page without a session goes to
the login, and that no page logs a console error. A screenshot of each page goes to
target/ui-screenshots/.

Needs MCP_COORDINATOR (the suite's binaries beside it), D2GAME_DIR (the fixture game) and
Chromium with Playwright (scripts/setup.sh installs both)."""

import json
import os
import shutil
import subprocess
import tempfile

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from netutil import free_port, wait_listening

NEEDED = ["MCP_COORDINATOR", "D2GAME_DIR"]
ENV = {k: os.environ.get(k, "") for k in NEEDED}
CHROMIUM = shutil.which("chromium") or ""
TOKEN = "dashboard-browser-token-0123456789"
EVIL = "<script>alert(1)</script>"
SHOTS = os.path.join(os.path.dirname(__file__), "..", "..", "target", "ui-screenshots")

try:
    from playwright.async_api import async_playwright
except ImportError:  # reported by the skip below
    async_playwright = None

pytestmark = pytest.mark.skipif(
    not all(ENV.values()) or not CHROMIUM or async_playwright is None,
    reason="needs MCP_COORDINATOR, D2GAME_DIR, chromium and playwright (scripts/setup.sh, scripts/test.sh)",
)


def config(tmp):
    bin_dir = os.path.dirname(ENV["MCP_COORDINATOR"])
    text = "".join(
        f'[[servers]]\nname = "{name}"\ncommand = "{os.path.join(bin_dir, program)}"\n'
        for name, program in [("d2", "mcp-d2"), ("memory", "mcp-memory")]
    )
    path = os.path.join(tmp, "c.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


async def tool(client, name, args):
    r = await client.call_tool(name, args)
    text = " ".join(c.text for c in r.content if getattr(c, "text", None))
    assert not r.is_error, f"{name}: {text}"
    return r.structured_content


async def session(base, tmp, game_pid):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        async with Client(streamable_http_client(base + "/", http_client=http)) as mcp:
            analysis = await tool(mcp, "analyze_character", {"pid": game_pid})
            evil = await tool(mcp, "findings_record", {
                "kind": "note", "title": EVIL, "target": {"process": game_pid},
                "links": [{"to": analysis["analysis_id"], "relation": "about"}]})
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                try:
                    await in_browser(browser, base, mcp, analysis, evil["finding"]["id"])
                finally:
                    await browser.close()


async def in_browser(browser, base, mcp, analysis, evil_id):
    os.makedirs(SHOTS, exist_ok=True)
    page = await browser.new_page(viewport={"width": 1100, "height": 900})
    problems = []
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: problems.append(f"dialog: {d.message}"))

    # No session: the login.
    await page.goto(base + "/ui/findings")
    assert page.url.endswith("/ui/login"), page.url
    await page.screenshot(path=os.path.join(SHOTS, "login.png"))
    await page.fill("input[name=token]", "not-the-token")
    async with page.expect_navigation():
        await page.click("button[type=submit]")
    assert "not one this coordinator accepts" in await page.content()
    await page.fill("input[name=token]", TOKEN)
    async with page.expect_navigation(url="**/ui/"):
        await page.click("button[type=submit]")
    await page.wait_for_load_state("load")

    # Overview: each server's calls as servers_status counts them (read after the page, so
    # the call that reads them is not counted on the page).
    await page.goto(base + "/ui/")
    await page.screenshot(path=os.path.join(SHOTS, "overview.png"), full_page=True)
    rows = await page.eval_on_selector_all(
        "#servers tr", "rs => rs.slice(1).map(r => [...r.cells].map(c => c.textContent))")
    status = await tool(mcp, "servers_status", {})
    expected = {s["name"]: [s["name"], s["state"], str(s["restarts"]), str(s["calls"])]
                for s in status["servers"]}
    assert {r[0]: r[:4] for r in rows} == expected, (rows, expected)

    # Analyses: the character sheet says what analyze_character answered.
    await page.goto(base + "/ui/analyses")
    await page.screenshot(path=os.path.join(SHOTS, "analyses.png"), full_page=True)
    async with page.expect_navigation():
        await page.click(f"a[href='/ui/analyses/{analysis['analysis_id']}']")
    await page.screenshot(path=os.path.join(SHOTS, "analysis.png"), full_page=True)
    sheet = dict(await page.eval_on_selector_all(
        "#sheet tr",
        "rs => rs.map(r => [r.cells[0].textContent, r.cells[1].textContent])"))
    character = analysis["character"]["result"]
    assert sheet["Name"] == character["name"] == "FixtureHero", sheet
    assert sheet["Level"] == str(character["level"]), sheet
    fire = character["resistances"]["fire"]
    assert sheet["fire resistance"] == f"{fire['value']} (cap {fire['max']})", sheet

    # Findings: the <script> title is text, and the finding's graph links its neighbour.
    await page.goto(base + "/ui/findings?text=alert")
    await page.screenshot(path=os.path.join(SHOTS, "findings.png"), full_page=True)
    titles = await page.eval_on_selector_all("#findings tr td:nth-child(4)", "cs => cs.map(c => c.textContent)")
    assert titles == [EVIL], titles
    await page.goto(f"{base}/ui/findings/{evil_id}")
    await page.screenshot(path=os.path.join(SHOTS, "finding.png"), full_page=True)
    assert await page.locator(f"#graph svg a[href='/ui/findings/{analysis['analysis_id']}']").count() == 1
    assert await page.locator("#graph svg a").count() == 2
    assert await page.eval_on_selector("h1", "h => h.textContent") == EVIL

    # Sandboxes: none here (no sandbox-runner among the servers; tests/sandboxed.rs has one).
    await page.goto(base + "/ui/sandboxes")
    assert "No sandbox-runner among the servers." in await page.content()
    await page.screenshot(path=os.path.join(SHOTS, "sandboxes.png"), full_page=True)

    # Live: a call made now shows up without a reload.
    await page.goto(base + "/ui/live")
    await page.wait_for_timeout(300)
    await tool(mcp, "findings_status", {})
    await page.wait_for_function("document.getElementById('count').textContent === '1'", timeout=10000)
    cells = await page.eval_on_selector_all("#live tr:first-child td", "cs => cs.map(c => c.textContent)")
    assert cells[2] == "findings_status" and cells[3] == "ok", cells
    await page.screenshot(path=os.path.join(SHOTS, "live.png"), full_page=True)

    # Sign out: back to the login, and the pages with it.
    await page.goto(base + "/ui/")
    async with page.expect_navigation(url="**/ui/login"):
        await page.click("form.logout button")
    await page.goto(base + "/ui/analyses")
    assert page.url.endswith("/ui/login"), page.url
    assert not problems, problems


def test_dashboard_in_a_browser():
    with tempfile.TemporaryDirectory() as tmp:
        tokens = os.path.join(tmp, "tokens.toml")
        with open(tokens, "w") as f:
            f.write(f'[[clients]]\nname = "browser"\ntoken = "{TOKEN}"\n')
        game_dir = ENV["D2GAME_DIR"]
        game = subprocess.Popen([os.path.join(game_dir, "d2game"), os.path.join(game_dir, "D2Client.dll")],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        port = free_port()
        coord = subprocess.Popen(
            [ENV["MCP_COORDINATOR"], "--config", config(tmp), "--data-dir", os.path.join(tmp, "data"),
             "--http", f"127.0.0.1:{port}", "--dashboard", "--auth-tokens", tokens,
             "--audit-log", os.path.join(tmp, "audit.jsonl")],
            stderr=subprocess.DEVNULL)
        try:
            game.stdout.readline()  # the fixture says it is ready
            wait_listening(port, coord)
            anyio.run(session, f"http://127.0.0.1:{port}", tmp, game.pid)
        finally:
            coord.terminate()
            coord.wait(timeout=30)
            game.kill()
            game.wait(timeout=30)
