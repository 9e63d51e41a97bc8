"""Docker Compose reads the deployment's compose files as podman-compose does: Docker
Compose 1.29.2 (the last release in Python, from PyPI; scripts/setup.sh puts it in
.venv-compose) validates deploy/compose.yaml, alone and with compose.dgraph.yaml, against its
Compose specification schema and resolves them; the resolved files keep what the deployment
relies on (three replicas, internal networks, read-only roots, no capabilities but those
added, the Dgraph URL by environment).

Needs DOCKER_COMPOSE (scripts/test.sh sets it) or .venv-compose/bin/docker-compose."""

import json
import os
import subprocess

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
COMPOSE = os.environ.get("DOCKER_COMPOSE") or os.path.join(REPO, ".venv-compose", "bin", "docker-compose")

pytestmark = pytest.mark.skipif(not os.access(COMPOSE, os.X_OK),
                                reason="needs docker-compose 1.29.2 (scripts/setup.sh: .venv-compose)")


def resolved(*files):
    args = [COMPOSE, "-p", "mcp"]
    for f in files:
        args += ["-f", os.path.join(REPO, "deploy", f)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_", "GAME_DIR"))}
    r = subprocess.run(args + ["config"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    # YAML read by the Python beside docker-compose (it carries PyYAML), handed over as JSON.
    python = os.path.join(os.path.dirname(COMPOSE), "python")
    j = subprocess.run([python, "-c", "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
                       input=r.stdout, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(j.stdout)


def test_docker_compose_accepts_the_deployment():
    c = resolved("compose.yaml")
    s = c["services"]
    assert set(s) == {"nginx", "coordinator", "redis", "static", "network", "runner"}
    assert s["coordinator"]["deploy"]["replicas"] == 3
    assert c["networks"]["backend"]["internal"] and c["networks"]["analysis"]["internal"]
    assert not c["networks"]["front"].get("internal")
    for name, svc in s.items():
        assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"], name
        assert "no-new-privileges" in svc["security_opt"], name
        assert svc["restart"] == "on-failure" and svc["healthcheck"]["test"], name
        assert svc["deploy"]["resources"]["limits"]["memory"], name
    assert set(s["runner"]["networks"]) == {"analysis"}
    assert set(s["nginx"]["networks"]) == {"front", "backend"}
    assert s["coordinator"]["image"] == "localhost/mcp-coordinator:latest"
    assert s["nginx"]["ports"] == ["127.0.0.1:8443:8443/tcp", "127.0.0.1:8080:8080/tcp"]


def test_docker_compose_accepts_the_dgraph_overlay():
    s = resolved("compose.yaml", "compose.dgraph.yaml")["services"]
    assert s["coordinator"]["environment"]["MCP_FINDINGS_URL"] == "http://dgraph:8080"
    assert s["coordinator"]["command"][0] == "mcp-coordinator"
    assert s["coordinator"]["command"].count("--http=0.0.0.0:8931") == 1
    assert "dgraph" in s["coordinator"]["depends_on"]
    assert set(s["dgraph"]["networks"]) == {"backend"}
