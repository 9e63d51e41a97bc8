"""Every JSON-RPC line gets an answer: raw bytes written to every server binary over stdio
(and to mcp-static over streamable HTTP) after a real `initialize` handshake. What does not
parse gets -32700 with `id: null`; JSON that is not one valid message -32600 (the id echoed
when it can be read); params or `arguments` of the wrong shape, or arguments nested past the
cap, -32602; a line over the 8 MiB cap -32600. Each answer must come within 5 s, and the
server must still answer `tools/list` afterwards. A table of cells x servers is printed.

Needs MCP_STATIC; the other binaries come from MCP_MEMORY, MCP_NETWORK, MCP_D2,
SANDBOX_RUNNER, MCP_COORDINATOR and MCP_TEST_CHILD, or else from MCP_STATIC's directory
(cargo builds them all there): one missing fails the test rather than skipping it."""

import json
import os
import queue
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pytest
from netutil import free_port, wait_listening

STATIC = os.environ.get("MCP_STATIC", "")
ANSWER_WITHIN = 5.0
PARSE, INVALID_REQUEST, INVALID_PARAMS = -32700, -32600, -32602

pytestmark = pytest.mark.skipif(not STATIC, reason="MCP_STATIC must be set (scripts/test.sh does)")


def binary(env, name):
    """The binary `name`: from `env` if set, else next to mcp-static."""
    path = os.environ.get(env) or os.path.join(os.path.dirname(STATIC), name)
    assert os.access(path, os.X_OK), f"{name} not found: set {env} or build it next to {STATIC}"
    return path


def request(id, method, params=None):
    msg = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        msg["params"] = params
    return json.dumps(msg).encode()


def nested(n):
    return b"[" * n + b"]" * n


def cells():
    """(name, raw message without newline, expected code, expected id, text the message names)."""
    args_100 = b'{"jsonrpc":"2.0","id":19,"method":"tools/call","params":{"name":"nope","arguments":{"a":' \
        + nested(99) + b"}}}"
    big = b'{"jsonrpc":"2.0","id":20,"method":"ping","params":{"x":"' + b"a" * (9 * 1024 * 1024) + b'"}}'
    return [
        ("malformed JSON", b'{"jsonrpc":"2.0","id":1,', PARSE, None, "Parse error"),
        ("invalid UTF-8", b'{"jsonrpc":"2.0","id":2,"method":"ping","params":{"x":"\xff\xfe"}}',
         PARSE, None, "Parse error"),
        ("lone surrogate", b'{"jsonrpc":"2.0","id":3,"method":"ping","params":{"x":"\\ud800"}}',
         PARSE, None, "surrogate"),
        ("NaN", b'{"jsonrpc":"2.0","id":4,"method":"ping","params":{"x":NaN}}', PARSE, None, "Parse error"),
        ("1e400", b'{"jsonrpc":"2.0","id":5,"method":"ping","params":{"x":1e400}}', PARSE, None, "range"),
        ("nesting 128", nested(128), PARSE, None, "recursion"),
        ("nesting 2000", nested(2000), PARSE, None, "recursion"),
        ("[] batch", b"[]", INVALID_REQUEST, None, "batch"),
        ("[{...}] batch", b"[" + request(8, "ping") + b"]", INVALID_REQUEST, None, "batch"),
        ("id object", b'{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}', INVALID_REQUEST, None, "`id`"),
        ("id float", b'{"jsonrpc":"2.0","id":1.5,"method":"ping"}', INVALID_REQUEST, None, "`id`"),
        ("id null", b'{"jsonrpc":"2.0","id":null,"method":"ping"}', INVALID_REQUEST, None, "`id`"),
        ("missing method", b'{"jsonrpc":"2.0","id":12,"params":{}}', INVALID_REQUEST, 12, "`method`"),
        ("jsonrpc 1.0", b'{"jsonrpc":"1.0","id":13,"method":"ping"}', INVALID_REQUEST, 13, "`jsonrpc`"),
        ("params string", request(14, "tools/list", "x"), INVALID_PARAMS, 14, "`params`"),
        ("params array", request(15, "tools/call", ["nope"]), INVALID_PARAMS, 15, "`params`"),
        ("arguments string", request(16, "tools/call", {"name": "nope", "arguments": "x"}),
         INVALID_PARAMS, 16, "`arguments`"),
        ("arguments array", request(17, "tools/call", {"name": "nope", "arguments": [1]}),
         INVALID_PARAMS, 17, "`arguments`"),
        ("arguments nest 100", args_100, INVALID_PARAMS, 19, "64"),
        ("9 MiB line", big, INVALID_REQUEST, None, "cap"),
    ]


def verdict(answer, code, id, names):
    """'ok' when `answer` is the error expected, else what was wrong."""
    if answer is None:
        return f"no answer in {ANSWER_WITHIN:.0f} s"
    err = answer.get("error") if isinstance(answer, dict) else None
    if not err:
        return f"not an error: {str(answer)[:80]}"
    if "id" not in answer or answer["id"] != id:
        return f"id {answer.get('id', '(absent)')!r}, not {id!r}"
    if err.get("code") != code:
        return f"code {err.get('code')}, not {code}: {err.get('message', '')[:80]}"
    if names not in err.get("message", ""):
        return f"message does not name {names!r}: {err.get('message', '')[:80]}"
    return "ok"


class StdioServer:
    """A server binary on pipes: raw lines in, JSON answers collected by a reader thread."""

    def __init__(self, argv, log):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                     env={"PATH": os.environ.get("PATH", "")})
        self.answers = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.answers.put(json.loads(line))
            except ValueError:
                self.answers.put({"not json": line[:200].decode(errors="replace")})

    def write(self, raw):
        self.proc.stdin.write(raw + b"\n")
        self.proc.stdin.flush()

    def answer(self, within=ANSWER_WITHIN):
        """The next answer (notifications and requests of the server skipped), or None."""
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = self.answers.get(timeout=left)
            except queue.Empty:
                return None
            if "method" not in msg:
                return msg
        return None

    def handshake(self):
        self.write(request(0, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                             "clientInfo": {"name": "raw-jsonrpc-test", "version": "1"}}))
        init = self.answer(within=60)
        assert init and "result" in init, f"initialize answered {init}"
        self.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')

    def alive(self):
        self.write(request(99, "tools/list"))
        listed = self.answer(within=30)
        return "ok" if listed and listed.get("id") == 99 and listed.get("result", {}).get("tools") else \
            f"tools/list answered {str(listed)[:80]}"

    def stop(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def servers(tmp):
    """(name, argv) of every server binary over stdio."""
    child = binary("MCP_TEST_CHILD", "mcp-test-child")
    config = os.path.join(tmp, "coordinator.toml")
    with open(config, "w") as f:
        f.write(f'[[servers]]\nname = "child"\ncommand = "{child}"\n')
    return [
        ("static", [STATIC, "--root", tmp]),
        ("memory", [binary("MCP_MEMORY", "mcp-memory")]),
        ("network", [binary("MCP_NETWORK", "mcp-network"), "--root", tmp]),
        ("d2", [binary("MCP_D2", "mcp-d2"), "--root", tmp]),
        ("sandbox", [binary("SANDBOX_RUNNER", "sandbox-runner"), "mcp"]),
        ("behavior", [binary("MCP_BEHAVIOR", "mcp-behavior")]),
        ("coordinator", [binary("MCP_COORDINATOR", "mcp-coordinator"), "--config", config,
                         "--data-dir", os.path.join(tmp, "data")]),
    ]


def table(results, columns):
    rows = [name for name, *_ in cells()] + ["tools/list after"]
    width = max(map(len, rows))
    out = ["cell".ljust(width) + " | " + " | ".join(c.ljust(11) for c in columns)]
    for row in rows:
        marks = []
        for c in columns:
            v = results[c].get(row, "-")
            marks.append(("ok" if v == "ok" else "FAIL").ljust(11))
        out.append(row.ljust(width) + " | " + " | ".join(marks))
    return "\n".join(out)


def failures(results):
    return [f"{server} / {cell}: {v}" for server, r in results.items() for cell, v in r.items() if v != "ok"]


def test_every_line_gets_an_answer_over_stdio(capsys):
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, argv in servers(tmp):
            with open(os.path.join(tmp, f"{name}.log"), "wb") as log:
                server = StdioServer(argv, log)
                try:
                    server.handshake()
                    r = results[name] = {}
                    for cell, raw, code, id, names in cells():
                        server.write(raw)
                        r[cell] = verdict(server.answer(), code, id, names)
                    r["tools/list after"] = server.alive()
                finally:
                    server.stop()
    with capsys.disabled():
        print("\n" + table(results, list(results)))
    assert not failures(results), "\n".join(failures(results))


def post(port, body, session=None):
    """(status, JSON-RPC answer or None, session id) of one POST to the MCP endpoint."""
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2025-06-18"}
    if session:
        headers["Mcp-Session-Id"] = session
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=ANSWER_WITHIN) as r:
            status, text, sid = r.status, r.read().decode(errors="replace"), r.headers.get("Mcp-Session-Id")
    except urllib.error.HTTPError as e:
        status, text, sid = e.code, e.read().decode(errors="replace"), None
    except OSError as e:
        return f"failed: {e}", None, None
    # A JSON body, or the `data:` lines of an SSE stream.
    for chunk in [text] + [line[5:] for line in text.splitlines() if line.startswith("data:")]:
        try:
            msg = json.loads(chunk)
        except ValueError:
            continue
        if isinstance(msg, dict) and "method" not in msg:
            return status, msg, sid
    return status, None, sid


def test_every_post_gets_an_answer_over_http(capsys):
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp, open(os.path.join(tmp, "static.log"), "wb") as log:
        proc = subprocess.Popen([STATIC, "--http", f"127.0.0.1:{port}", "--root", tmp],
                                stdout=subprocess.DEVNULL, stderr=log)
        try:
            wait_listening(port, proc)
            status, init, session = post(port, request(0, "initialize", {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "raw-jsonrpc-test", "version": "1"}}))
            assert status == 200 and init and "result" in init and session, (status, init, session)
            assert post(port, b'{"jsonrpc":"2.0","method":"notifications/initialized"}', session)[0] == 202
            r = {}
            for cell, raw, code, id, names in cells():
                want = 413 if cell == "9 MiB line" else 400
                status, answer, _ = post(port, raw, session)
                v = verdict(answer, code, id, names)
                r[cell] = v if status == want or v != "ok" else f"HTTP {status}, not {want}"
            status, listed, _ = post(port, request(99, "tools/list"), session)
            r["tools/list after"] = "ok" if status == 200 and listed and listed.get("result", {}).get("tools") \
                else f"tools/list: HTTP {status} {str(listed)[:80]}"
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    results = {"static-http": r}
    with capsys.disabled():
        print("\n" + table(results, list(results)))
    assert not failures(results), "\n".join(failures(results))
