#!/usr/bin/env bash
# Runs every check and test of Berth on a fresh Debian machine with Rust: installs what the
# tests need (openssl, Docker Engine, skopeo, busybox-static from Debian; the aws CLI in a
# private virtualenv), starts dockerd when it is not running (and stops it again at the end),
# then runs fmt, clippy and the tests. .ci/run calls exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/berth-target}"
TOOLS="${BERTH_TOOLS_DIR:-/var/tmp/berth-tools}"

step() { printf '\n== %s\n' "$*"; }

step "test tools"
missing=()
command -v openssl >/dev/null || missing+=(openssl)
command -v dockerd >/dev/null || missing+=(docker.io)
command -v skopeo >/dev/null || missing+=(skopeo)
[ -x /bin/busybox ] || missing+=(busybox-static)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
if ! docker info >/dev/null 2>&1; then
  mkdir -p "$TOOLS"
  setsid dockerd >"$TOOLS/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  trap 'kill "$DOCKERD_PID" 2>/dev/null || true' EXIT
  for _ in $(seq 1 120); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start; log:"; cat "$TOOLS/dockerd.log"; exit 1; }
fi
docker version --format 'Docker Engine {{.Server.Version}}'
skopeo --version
if [ ! -x "$TOOLS/venv/bin/aws" ]; then
  python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check 'awscli>=1.45,<2'
fi
export PATH="$TOOLS/venv/bin:$PATH"
aws --version

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
cargo test --workspace --locked
