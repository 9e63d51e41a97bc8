# Sourced by test.sh and bench-proxy.sh: starts a private redis-server on a free loopback
# port, exports REDIS_URL, and stops the server when the sourcing shell exits.
# Usage: start_private_redis LOGFILE
start_private_redis() {
  local log=$1 port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$(dirname "$log")"
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no >"$log" 2>&1 &
  private_redis_pid=$!
  trap 'kill "$private_redis_pid" 2>/dev/null || true' EXIT
  export REDIS_URL="redis://127.0.0.1:$port/"
}
