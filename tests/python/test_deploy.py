"""The container deployment (deploy/), for real, with podman and no registry: the base image
from debootstrap and the role images (deploy/build.sh), the whole compose file up
(deploy/compose.sh), every container healthy; the demo's analysis (examples/agent_session.py)
through nginx over HTTPS with the Python MCP SDK; the dashboard signed in through nginx, the
sign-in holding on every replica; the analysers unable to reach the front network or anything
outside; a coordinator replica crashed mid-run while the calls go on through the others, every
acknowledged finding kept, the replica brought back by its restart policy; and everything torn
down, nothing left behind. The figures (image sizes, time to a healthy deployment, calls lost)
are written to target/deploy-figures.json.

Needs root, podman, podman-compose and debootstrap (scripts/setup.sh installs them), the
binaries of DEPLOY_PROFILE (debug, the default: what scripts/test.sh built; release) and
D2GAME_DIR (the fixture game). DEPLOY_KEEP_IMAGES=1 keeps the images for the next run."""

import http.client
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import time
import urllib.parse

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from netutil import free_ports

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(REPO, "deploy")
GAME = os.environ.get("D2GAME_DIR", "")
PROJECT = "mcpdeploytest"
TAG = "deploytest"
BASE = "localhost/mcp-base:bookworm"
ROLES = ["analysers", "runner", "coordinator", "nginx", "redis"]
FIGURES = os.path.join(REPO, "target", "deploy-figures.json")
TOOLS = [shutil.which(t) for t in ("podman", "podman-compose", "debootstrap")]

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(TOOLS) or not GAME,
    reason="needs root, podman, podman-compose, debootstrap (scripts/setup.sh) and D2GAME_DIR")


def env():
    e = dict(os.environ)
    e.update({"CONTAINERS_CONF": os.path.join(DEPLOY, "containers.conf"), "MCP_PROJECT": PROJECT,
              "MCP_TAG": TAG, "GAME_DIR": GAME, "PROFILE": os.environ.get("DEPLOY_PROFILE", "debug")})
    return e


def run(*cmd, timeout=600, check=True):
    r = subprocess.run(list(cmd), env=ENV, capture_output=True, text=True, timeout=timeout)
    # A failure names the command and ends with what it printed, for the CI's report.
    assert not check or r.returncode == 0, \
        f"{' '.join(cmd)}: exit {r.returncode}\n{r.stdout[-1500:]}\n{r.stderr[-3000:]}"
    return r


def podman(*args, **kw):
    return run("podman", *args, **kw)


def containers():
    out = podman("ps", "-a", "--filter", f"label=io.podman.compose.project={PROJECT}",
                 "--format", "{{.Names}}").stdout
    return sorted(out.split())


def leftovers():
    """What of the project is still there: containers, networks, volumes."""
    nets = [n for n in podman("network", "ls", "--format", "{{.Name}}").stdout.split()
            if n.startswith(PROJECT + "_")]
    vols = [v for v in podman("volume", "ls", "--format", "{{.Name}}").stdout.split()
            if v.startswith(PROJECT + "_")]
    return {"containers": containers(), "networks": nets, "volumes": vols}


def healthy(name):
    return podman("healthcheck", "run", name, check=False, timeout=30).returncode == 0


def ip_on(container, network):
    return podman("inspect", container, "--format",
                  f'{{{{(index .NetworkSettings.Networks "{PROJECT}_{network}").IPAddress}}}}').stdout.strip()


def reach(container, host, port, within=10):
    """Whether `container` can open a TCP connection to host:port (bash's /dev/tcp)."""
    started = time.monotonic()
    if not host[0].isdigit():
        # A name is resolved to its IPv4 address first: bash would ask for AAAA records too,
        # which podman's DNS forwards to a resolver this machine may never hear from.
        got = podman("exec", container, "getent", "ahostsv4", host, check=False, timeout=30).stdout.split()
        if not got:
            return False, f"{host} does not resolve in {container}"
        host = got[0]
    r = podman("exec", container, "timeout", str(within), "bash", "-c", f"exec 3<>/dev/tcp/{host}/{port}",
               check=False, timeout=30)
    took = time.monotonic() - started
    return r.returncode == 0, f"{r.stderr.strip()} (exit {r.returncode} after {took:.1f} s)"


ENV = env()
STATE = {}


@pytest.fixture(scope="module")
def deployment():
    https, plain = free_ports(2)
    ENV.update({"MCP_HTTPS_PORT": str(https), "MCP_HTTP_PORT": str(plain)})
    base_existed = podman("image", "exists", BASE, check=False).returncode == 0
    figures = {"profile": ENV["PROFILE"], "base_image_built": not base_existed}
    # What an interrupted earlier run left (its containers would be started again as they were).
    run("bash", os.path.join(DEPLOY, "compose.sh"), "down", "-v", timeout=600, check=False)
    try:
        started = time.monotonic()
        run("bash", os.path.join(DEPLOY, "build.sh"), timeout=1800)
        built = time.monotonic()
        run("bash", os.path.join(DEPLOY, "compose.sh"), "up", "-d", timeout=600)
        names = containers()
        deadline = time.monotonic() + 180
        waiting = list(names)
        while waiting and time.monotonic() < deadline:
            waiting = [n for n in waiting if not healthy(n)]
            if waiting:
                time.sleep(1)
        assert not waiting, f"not healthy within 180 s: {waiting}"
        # And the front door answers: the gateway's /health through nginx over HTTPS.
        ctx = ssl.create_default_context(cafile=os.path.join(DEPLOY, "local", "tls", "cert.pem"))
        while True:
            try:
                c = http.client.HTTPSConnection("localhost", https, timeout=5, context=ctx)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
                err = "not 200"
            except OSError as e:
                err = repr(e)
            assert time.monotonic() < deadline, f"/health through nginx: {err}"
            time.sleep(0.5)
        up = time.monotonic()
        figures.update({"images_s": round(built - started, 1), "up_to_healthy_s": round(up - built, 1),
                        "nothing_to_healthy_s": round(up - started, 1)})
        sizes = {}
        for role in ROLES:
            sizes[role] = int(podman("image", "inspect", f"localhost/mcp-{role}:{TAG}",
                                     "--format", "{{.Size}}").stdout.strip())
        sizes["base"] = int(podman("image", "inspect", BASE, "--format", "{{.Size}}").stdout.strip())
        figures["image_bytes"] = sizes
        STATE.update(https=https, http=plain, names=names, figures=figures,
                     token=open(os.path.join(DEPLOY, "local", "token")).read().strip(),
                     cacert=os.path.join(DEPLOY, "local", "tls", "cert.pem"))
        yield STATE
    finally:
        run("bash", os.path.join(DEPLOY, "compose.sh"), "down", "-v", timeout=600, check=False)
        if os.environ.get("DEPLOY_KEEP_IMAGES", "") in ("", "0"):
            for role in ROLES:
                podman("rmi", "-f", f"localhost/mcp-{role}:{TAG}", check=False)
            if not base_existed:
                podman("rmi", "-f", BASE, check=False)
        os.makedirs(os.path.dirname(FIGURES), exist_ok=True)
        with open(FIGURES, "w") as f:
            json.dump(figures, f, indent=1)


def test_every_service_is_up_and_healthy(deployment):
    services = {n.removeprefix(PROJECT + "_").rsplit("_", 1)[0] for n in deployment["names"]}
    assert services == {"nginx", "coordinator", "redis", "static", "network", "runner"}
    assert sum(n.startswith(f"{PROJECT}_coordinator_") for n in deployment["names"]) == 3
    # Hardened as the compose file says: read-only roots, capabilities only where added.
    for name in deployment["names"]:
        ro = podman("inspect", name, "--format", "{{.HostConfig.ReadonlyRootfs}}").stdout.strip()
        assert ro == "true", name
    caps = podman("exec", f"{PROJECT}_coordinator_1", "grep", "CapEff", "/proc/1/status").stdout
    assert caps.split()[-1] == "0000000000000000", caps


def test_the_demo_analysis_runs_through_nginx_over_https(deployment):
    r = subprocess.run(
        [sys.executable, os.path.join(REPO, "examples", "agent_session.py"), "--game-dir", "/games",
         "--url", f"https://localhost:{deployment['https']}/", "--token", deployment["token"],
         "--cacert", deployment["cacert"],
         "--kill-cmd", f"podman exec {PROJECT}_runner_1 kill"],
        env=ENV, capture_output=True, text=True, timeout=300)
    steps = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    failed = [s for s in steps if not s["ok"]]
    assert r.returncode == 0 and not failed, (failed, r.stderr[-2000:])
    by = {s["step"]: s for s in steps}
    assert by["analyse"]["name"] == "FixtureHero"
    assert by["who_writes"]["module"].startswith("d2game+")
    assert by["stop"]["ok"]
    # Without TLS the gateway is not reached: plain HTTP is redirected to HTTPS.
    c = http.client.HTTPConnection("127.0.0.1", deployment["http"], timeout=10)
    c.request("GET", "/")
    resp = c.getresponse()
    assert resp.status == 301 and resp.getheader("Location", "").startswith("https://")


def https_request(deployment, method, path, body=None, headers=None):
    ctx = ssl.create_default_context(cafile=deployment["cacert"])
    c = http.client.HTTPSConnection("localhost", deployment["https"], timeout=30, context=ctx)
    c.request(method, path, body, headers or {})
    r = c.getresponse()
    return r.status, r.getheaders(), r.read().decode(errors="replace")


def test_the_dashboard_signs_in_through_nginx_and_holds_on_every_replica(deployment):
    status, headers, page = https_request(deployment, "GET", "/ui/login")
    assert status == 200
    assert ("Strict-Transport-Security", "max-age=31536000") in headers
    cookie = next(v for k, v in headers if k.lower() == "set-cookie").split(";")[0]
    field = re.search(r'name="login" value="([0-9a-f]+)"', page).group(1)
    form = urllib.parse.urlencode({"login": field, "token": deployment["token"]})
    status, headers, _ = https_request(deployment, "POST", "/ui/login", form, {
        "content-type": "application/x-www-form-urlencoded", "cookie": cookie})
    assert status == 303, status
    set_cookie = next(v for k, v in headers if k.lower() == "set-cookie")
    assert "Secure" in set_cookie and "HttpOnly" in set_cookie, set_cookie
    session = set_cookie.split(";")[0]
    # Round robin over three replicas: the sign-in (kept in Redis) holds on each.
    for _ in range(6):
        status, _, page = https_request(deployment, "GET", "/ui/", headers={"cookie": session})
        assert status == 200 and "Sign out operator" in page, (status, page[:300])


def test_the_analysers_reach_neither_the_front_network_nor_outside(deployment):
    nginx_front = ip_on(f"{PROJECT}_nginx_1", "front")
    front_gateway = podman("network", "inspect", f"{PROJECT}_front", "--format",
                           "{{range .Subnets}}{{.Gateway}}{{end}}").stdout.strip()
    assert nginx_front and front_gateway
    # The probe works where a route exists: a coordinator reaches Redis, and the
    # analysers reach each other on their own network.
    for container, host, port in (("coordinator_1", "redis", 6379), ("static_1", "runner", 8943)):
        ok, err = reach(f"{PROJECT}_{container}", host, port)
        if not ok:  # what the container sees, for the report
            for cmd in (["getent", "ahostsv4", host], ["cat", "/proc/net/arp"], ["cat", "/etc/resolv.conf"]):
                err += "\n" + podman("exec", f"{PROJECT}_{container}", *cmd, check=False).stdout
            err += podman("ps", "-a", "--format", "{{.Names}} {{.Status}} {{.Networks}}").stdout
        assert ok, (container, host, port, err)
    for name in ("static_1", "network_1", "runner_1"):
        container = f"{PROJECT}_{name}"
        routes = podman("exec", container, "cat", "/proc/net/route").stdout.splitlines()[1:]
        assert not [r for r in routes if r.split()[1] == "00000000"], (container, routes)
        for host, port in ((nginx_front, 8443), (front_gateway, 443), (front_gateway, 53)):
            ok, err = reach(container, host, port)
            assert not ok and "unreachable" in err, (container, host, port, err)


async def record_while_a_replica_dies(https, token, cacert, calls, kill_after):
    ctx = ssl.create_default_context(cafile=cacert)
    acked, failed = [], []
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60,
                                  verify=ctx) as http:
        async with Client(streamable_http_client(f"https://localhost:{https}/", http_client=http)) as c:
            for i in range(calls):
                if i == kill_after:  # a crash: the coordinator process dies at once
                    # The container ends with it, so the exec may report 255 (its session
                    # cut off); the restart count checked below shows the crash happened.
                    podman("exec", f"{PROJECT}_coordinator_2", "sh", "-c",
                           "kill -9 $(pidof mcp-coordinator)", check=False)
                try:
                    r = await c.call_tool("findings_record", {
                        "kind": "note", "title": f"replica-kill-{i}", "target": {"process": 1}})
                    fid = (r.structured_content or {}).get("finding", {}).get("id")
                    (acked if not r.is_error and fid else failed).append((i, fid))
                except Exception as e:  # a call the dying replica took and never answered
                    failed.append((i, repr(e)))
    # A new session: every acknowledged finding is there (one query; the gateway's rate limit
    # is per client).
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60,
                                  verify=ctx) as http:
        async with Client(streamable_http_client(f"https://localhost:{https}/", http_client=http)) as c:
            r = await c.call_tool("findings_query", {"kind": "note", "text": "replica-kill-",
                                                     "limit": 1000})
            assert not r.is_error, r
            found = {f["id"]: f["title"] for f in (r.structured_content or {}).get("items", [])}
    missing = [(i, fid) for i, fid in acked if found.get(fid) != f"replica-kill-{i}"]
    return acked, failed, missing


def test_a_killed_replica_loses_no_acknowledged_call(deployment):
    calls, kill_after = 60, 20
    acked, failed, missing = anyio.run(record_while_a_replica_dies, deployment["https"],
                                       deployment["token"], deployment["cacert"], calls, kill_after)
    deployment["figures"].update({"replica_kill_calls": calls, "acknowledged": len(acked),
                                  "unacknowledged": len(failed), "acknowledged_lost": len(missing)})
    assert not missing, missing
    # The calls went on through the other replicas: at most the one in flight failed.
    assert len(failed) <= 1, failed
    assert [i for i, _ in acked if i > kill_after], "no call succeeded after the kill"
    # The restart policy brings the crashed replica back, healthy.
    deadline = time.monotonic() + 60
    name = f"{PROJECT}_coordinator_2"
    while not healthy(name):
        assert time.monotonic() < deadline, podman("inspect", name, "--format", "{{.State.Status}}").stdout
        time.sleep(1)
    restarts = int(podman("inspect", name, "--format", "{{.RestartCount}}").stdout.strip())
    deployment["figures"]["replica_restarts"] = restarts
    assert restarts >= 1


def test_down_leaves_nothing_behind(deployment):
    run("bash", os.path.join(DEPLOY, "compose.sh"), "down", "-v", timeout=600)
    assert leftovers() == {"containers": [], "networks": [], "volumes": []}
