"""The coordinator's gateway accepting JSON Web Tokens minted by PyJWT (an implementation this
project did not write): the official MCP SDK connects over streamable HTTP with a valid token
and calls a tool; the audit log names the token's subject; expired, wrongly signed, `alg:
none` and wrong-audience tokens get 401 with the reason.

Needs MCP_COORDINATOR and MCP_TEST_CHILD (scripts/test.sh sets them)."""

import json
import os
import subprocess
import tempfile
import time

import anyio
import httpx2
import jwt
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from netutil import free_port, wait_listening

COORD = os.environ.get("MCP_COORDINATOR", "")
CHILD = os.environ.get("MCP_TEST_CHILD", "")
SECRET = b"0123456789abcdef0123456789abcdef-jwt-test"

pytestmark = pytest.mark.skipif(not (COORD and CHILD),
                                reason="MCP_COORDINATOR and MCP_TEST_CHILD must be set (scripts/test.sh does)")

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "t", "version": "1"}}}


def token(secret=SECRET, algorithm="HS256", **claims):
    body = {"sub": "agent-7", "exp": int(time.time()) + 300, "iss": "idp", "aud": "mcp"}
    body.update(claims)
    return jwt.encode(body, secret, algorithm=algorithm)


def start(tmp):
    config = os.path.join(tmp, "c.json")
    with open(config, "w") as f:
        json.dump({"mcpServers": {"child": {"command": CHILD}}}, f)
    secret = os.path.join(tmp, "jwt.secret")
    with open(secret, "wb") as f:
        f.write(SECRET + b"\n")
    port = free_port()
    proc = subprocess.Popen(
        [COORD, "--config", config, "--data-dir", os.path.join(tmp, "data"),
         "--http", f"127.0.0.1:{port}", "--jwt-secret", secret, "--jwt-issuer", "idp",
         "--jwt-audience", "mcp", "--audit-log", os.path.join(tmp, "audit.jsonl")],
        stderr=subprocess.DEVNULL)
    wait_listening(port, proc)
    return proc, f"http://127.0.0.1:{port}/"


async def refused(url, bearer):
    async with httpx2.AsyncClient() as http:
        r = await http.post(url, json=INIT, headers={
            "Authorization": f"Bearer {bearer}", "Accept": "application/json, text/event-stream"})
    assert r.status_code == 401, (r.status_code, r.text)
    return r.json()


async def session(url, tmp):
    good = token()
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {good}"}, timeout=30) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert "child__echo" in names
            r = await client.call_tool("child__echo", {"text": "signed"})
            assert not r.is_error and r.structured_content["text"] == "signed"

    expired = await refused(url, token(exp=int(time.time()) - 3600))
    assert expired["error"] == "token_expired", expired
    forged = await refused(url, token(secret=b"another-secret-another-secret-another!!"))
    assert forged["error"] == "invalid_token" and "signature" in forged["message"], forged
    unsigned = await refused(url, token(secret=None, algorithm="none"))
    assert '"none"' in unsigned["message"], unsigned
    elsewhere = await refused(url, token(aud="another-api"))
    assert "aud" in elsewhere["message"], elsewhere
    no_sub = await refused(url, jwt.encode({"exp": int(time.time()) + 60, "iss": "idp", "aud": "mcp"},
                                           SECRET, algorithm="HS256"))
    assert "sub" in no_sub["message"], no_sub

    with open(os.path.join(tmp, "audit.jsonl")) as f:
        calls = [json.loads(line) for line in f]
    assert [c["client"] for c in calls if c["tool"] == "child__echo"] == ["agent-7"], calls


def test_jwt_tokens_from_pyjwt():
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start(tmp)
        try:
            anyio.run(session, url, tmp)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
