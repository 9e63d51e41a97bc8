#!/usr/bin/env bash
# The coordinator's proxy benchmarks, in one run each:
#  - stdio: a tool of the test child called directly and through mcp-coordinator
#    (benches/proxy_bench.rs: added p50/p99 latency, calls/s with 8 callers);
#  - streamable HTTP: the same child directly (--http), through mcp-coordinator (HTTP in,
#    stdio to the child) and through the Python `mcp-proxy` package from PyPI (HTTP in, stdio
#    to the child), with mcp-proxy's added p50 latency and calls/s as ratios to ours
#    (benches/http_bench.rs), and the coordinator behind its gateway with the rate-limit
#    buckets in process and in a private redis-server (buckets and sessions there).
# mcp-proxy goes into its own venv, .venv-bench, because the main .venv pins mcp==2.3.0 for
# the tests and mcp-proxy brings the SDK version it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-bench
if [ ! -x "$venv/bin/mcp-proxy" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet mcp-proxy
fi
proxy_version=$("$venv/bin/pip" show mcp-proxy | sed -n 's/^Version: //p')
sdk_version=$("$venv/bin/pip" show mcp | sed -n 's/^Version: //p')
echo "mcp-proxy $proxy_version, Python MCP SDK $sdk_version"
if [ -z "${REDIS_URL:-}" ] && command -v redis-server >/dev/null; then
  source scripts/private-redis.sh
  start_private_redis target/redis-bench.log
fi
cargo bench -p mcp-coordinator --bench proxy_bench
MCP_PROXY="$PWD/$venv/bin/mcp-proxy" cargo bench -p mcp-coordinator --bench http_bench
