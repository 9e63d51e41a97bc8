#!/usr/bin/env bash
# Builds the deployment's images with no registry: a Debian 12 base by debootstrap from the
# Debian mirror apt already uses, imported into podman, then one image per role FROM it
# (analysers, runner, coordinator, nginx, redis). Also makes what the compose file mounts
# and that must not be in git: a throwaway TLS pair and a client token (deploy/local/).
#   deploy/build.sh                 # release binaries (cargo build --release)
#   PROFILE=debug deploy/build.sh   # the dev build that scripts/test.sh already made
#   deploy/build.sh --rebuild-base  # debootstrap again even if the base exists
#   MCP_TAG=v1 deploy/build.sh      # the role images' tag (default latest; compose.yaml reads it)
# Needs root, podman, runc and debootstrap (scripts/setup.sh installs them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
profile=${PROFILE:-release}
local_dir="$here/local"
# podman here: runc (crun refuses hybrid cgroups) and explicit ulimits (deploy/containers.conf).
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
base=localhost/mcp-base:bookworm
say() { echo "deploy: $*" >&2; }
stamp() { date +%s.%N; }
t0=$(stamp)

for tool in podman debootstrap; do
  command -v "$tool" >/dev/null || { say "$tool is missing: run scripts/setup.sh (as root)"; exit 1; }
done

# The mirror apt uses (deb822 sources first, then sources.list); DEBIAN_MIRROR overrides.
mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1)
  [ -n "$mirror" ] || mirror=$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -v security | head -1)
  mirror=${mirror:-http://deb.debian.org/debian}
fi

if [ "${1:-}" = --rebuild-base ] || ! podman image exists "$base"; then
  say "debootstrap bookworm (minbase) from $mirror"
  rootfs=$(mktemp -d /tmp/mcp-base.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" > "$rootfs.log" 2>&1 \
    || { say "debootstrap failed; its log: $rootfs.log"; exit 1; }
  rm -f "$rootfs.log"
  # What no service reads: documentation, manuals, locales other than C, apt's lists.
  rm -rf "$rootfs"/usr/share/{doc,man,info}/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  # Keep them out of the role images too.
  printf 'path-exclude /usr/share/doc/*\npath-exclude /usr/share/man/*\npath-exclude /usr/share/info/*\npath-exclude /usr/share/locale/*\n' \
    > "$rootfs/etc/dpkg/dpkg.cfg.d/01-nodoc"
  tar -C "$rootfs" -c . | podman import --quiet --change 'CMD ["/bin/bash"]' - "$base" >/dev/null
  rm -rf "$rootfs"; trap - EXIT
fi
t_base=$(stamp)

# The binaries each role runs, stripped of their line tables.
if [ "$profile" = release ]; then
  say "cargo build --release (the first one takes several minutes)"
  cargo build --release --quiet --manifest-path "$repo/Cargo.toml" --workspace --bins
fi
bins=(mcp-static mcp-network mcp-memory mcp-d2 mcp-behavior mcp-coordinator sandbox-runner sandbox-runner-stage)
mkdir -p "$local_dir/bin"
for b in "${bins[@]}"; do
  src="${CARGO_TARGET_DIR:-$repo/target}/$profile/$b"
  [ -x "$src" ] || { say "$src is missing: cargo build --workspace${profile:+ (profile $profile)}"; exit 1; }
  strip --strip-debug -o "$local_dir/bin/$b" "$src"
done
t_bins=$(stamp)

# What the compose file mounts: TLS for nginx and the gateway's client tokens, made once.
mkdir -p "$local_dir/tls" "$local_dir/game"
if [ ! -s "$local_dir/tls/cert.pem" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$local_dir/tls/key.pem" -out "$local_dir/tls/cert.pem" 2>/dev/null
  chmod 600 "$local_dir/tls/key.pem"   # nginx's master reads it as root (its owner), no capability needed
fi
if [ ! -s "$local_dir/tokens.toml" ]; then
  token=$(openssl rand -hex 24)
  (umask 077; printf '%s\n' "$token" > "$local_dir/token")
  printf '# The gateway'"'"'s clients (deploy/build.sh made this one; the token is in ./token).\n[[clients]]\nname = "operator"\nsha256 = "%s"\n' \
    "$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)" > "$local_dir/tokens.toml"
fi

# A role image installs Debian packages from the mirror: one that fails to answer is tried
# twice more before the build gives up (apt retries each file as well).
for role in analysers runner coordinator nginx redis; do
  for try in 1 2 3; do
    if [ "$try" = 1 ]; then say "image mcp-$role"; else say "image mcp-$role (try $try)"; fi
    podman build --quiet --tag "localhost/mcp-$role:${MCP_TAG:-latest}" \
      --file "$here/images/$role.Containerfile" "$here" >/dev/null && break
    [ "$try" -lt 3 ] || { say "image mcp-$role failed 3 times"; exit 1; }
    sleep 5
  done
done
t_roles=$(stamp)

podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "^localhost/mcp-(base:bookworm|[a-z]+:${MCP_TAG:-latest}) " >&2
awk -v a="$t0" -v b="$t_base" -v c="$t_bins" -v d="$t_roles" \
  'BEGIN { printf "deploy: base image %.1f s, binaries %.1f s, role images %.1f s\n", b-a, c-b, d-c }' >&2
