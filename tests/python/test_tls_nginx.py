"""nginx terminating TLS (examples/deploy/nginx-tls.conf, a throwaway certificate) in front of
two coordinators sharing one Redis, each serving the dashboard: HTTP is redirected to HTTPS,
every answer carries the security headers once, a dashboard sign-in made through one
coordinator holds on both (its session is in Redis) with a Secure cookie, and the official
Python MCP SDK calls tools over HTTPS with a bearer token.

Needs MCP_COORDINATOR, MCP_TEST_CHILD, REDIS_URL, nginx and openssl (scripts/test.sh and
scripts/setup.sh provide them)."""

import http.client
import json
import os
import re
import shutil
import ssl
import subprocess
import tempfile
import urllib.parse

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from netutil import free_ports, stop_all, wait_listening

COORD = os.environ.get("MCP_COORDINATOR", "")
CHILD = os.environ.get("MCP_TEST_CHILD", "")
REDIS = os.environ.get("REDIS_URL", "")
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
OPENSSL = shutil.which("openssl")
EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "deploy", "nginx-tls.conf")
TOKEN = "tls-test-token-0123456789abcdef"
HEADERS = {
    "strict-transport-security": "max-age=31536000",
    "content-security-policy": "default-src 'self'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}

pytestmark = pytest.mark.skipif(not (COORD and CHILD and REDIS and NGINX and OPENSSL),
                                reason="needs MCP_COORDINATOR, MCP_TEST_CHILD, REDIS_URL, nginx and "
                                       "openssl (scripts/test.sh provides them)")


def start_tls_nginx(tmp, http_port, https_port, backs):
    prefix = os.path.join(tmp, "nginx")
    os.makedirs(prefix)
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", os.path.join(prefix, "key.pem"), "-out", os.path.join(prefix, "cert.pem")],
                   check=True, capture_output=True)
    with open(EXAMPLE) as f:
        conf = f.read()
    for old, new in [("127.0.0.1:8080", f"127.0.0.1:{http_port}"), (":8443", f":{https_port}"),
                     ("127.0.0.1:8931", f"127.0.0.1:{backs[0]}"), ("127.0.0.1:8932", f"127.0.0.1:{backs[1]}")]:
        assert old in conf, old
        conf = conf.replace(old, new)
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    proc = subprocess.Popen([NGINX, "-p", prefix, "-c", path, "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(https_port, proc)
    return proc, os.path.join(prefix, "cert.pem")


def request(https_port, ca, method, path, body=None, headers=None):
    ctx = ssl.create_default_context(cafile=ca)
    conn = http.client.HTTPSConnection("127.0.0.1", https_port, context=ctx, timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read().decode()
    conn.close()
    return r.status, r.getheaders(), data


def check_headers(headers):
    for name, value in HEADERS.items():
        got = [v for k, v in headers if k.lower() == name]
        assert got == [value], (name, got)


async def sdk_calls(url, ca):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx2.AsyncClient(headers=headers, verify=ca, timeout=60) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            for i in range(4):
                r = await client.call_tool("child__echo", {"text": f"over tls {i}"})
                assert not r.is_error and r.structured_content["text"] == f"over tls {i}", r


def test_dashboard_and_mcp_behind_tls_nginx():
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "c.json")
        with open(config, "w") as f:
            json.dump({"mcpServers": {"child": {"command": CHILD}}}, f)
        tokens = os.path.join(tmp, "tokens.toml")
        with open(tokens, "w") as f:
            f.write(f'[[clients]]\nname = "tls"\ntoken = "{TOKEN}"\n')
        *backs, http_port, https_port = free_ports(4)
        try:
            for port in backs:
                p = subprocess.Popen(
                    [COORD, "--config", config, "--data-dir", os.path.join(tmp, f"data-{port}"),
                     "--http", f"127.0.0.1:{port}", "--dashboard", "--auth-tokens", tokens,
                     "--redis-url", REDIS],
                    stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                procs.append(p)
                wait_listening(port, p)
            nginx, ca = start_tls_nginx(tmp, http_port, https_port, backs)
            procs.append(nginx)

            # HTTP goes to HTTPS.
            conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=30)
            conn.request("GET", "/ui/")
            r = conn.getresponse()
            assert r.status == 301 and r.getheader("location") == f"https://127.0.0.1:{https_port}/ui/", \
                (r.status, r.getheaders())
            conn.close()

            # The sign-in form, then a sign-in: a Secure cookie.
            status, headers, page = request(https_port, ca, "GET", "/ui/login")
            assert status == 200
            check_headers(headers)
            login_cookie = next(v for k, v in headers if k.lower() == "set-cookie").split(";")[0]
            field = re.search(r'name="login" value="([0-9a-f]+)"', page).group(1)
            form = urllib.parse.urlencode({"login": field, "token": TOKEN})
            status, headers, _ = request(https_port, ca, "POST", "/ui/login", form, {
                "content-type": "application/x-www-form-urlencoded", "cookie": login_cookie})
            assert status == 303, status
            set_cookie = next(v for k, v in headers if k.lower() == "set-cookie")
            assert "Secure" in set_cookie and "HttpOnly" in set_cookie, set_cookie
            session = set_cookie.split(";")[0]

            # Round robin: the session holds on both coordinators (six pages, all served).
            for _ in range(6):
                status, headers, page = request(https_port, ca, "GET", "/ui/", headers={"cookie": session})
                assert status == 200 and "Sign out tls" in page, (status, page[:300])
                check_headers(headers)

            # MCP over HTTPS through the same front.
            anyio.run(sdk_calls, f"https://127.0.0.1:{https_port}/", ca)
            status, headers, _ = request(https_port, ca, "GET", "/health")
            assert status == 200
            check_headers(headers)
        finally:
            stop_all(procs)
