#!/usr/bin/env bash
# Runs every check and test of Berth on a fresh Debian machine with Rust: installs what the
# tests need (openssl, Docker Engine, skopeo, busybox-static and PostgreSQL from Debian; the aws
# CLI in a private virtualenv), starts dockerd when it is not running and a throw-away
# PostgreSQL server on a free loopback port (and stops what it started at the end), then runs
# fmt, clippy and the tests. .ci/run calls exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/berth-target}"
TOOLS="${BERTH_TOOLS_DIR:-/var/tmp/berth-tools}"

step() { printf '\n== %s\n' "$*"; }

step "test tools"
# What to stop at the end: only what this script started, by PID.
STOP=()
trap 'for c in "${STOP[@]}"; do eval "$c" 2>/dev/null || true; done' EXIT
missing=()
command -v openssl >/dev/null || missing+=(openssl)
command -v dockerd >/dev/null || missing+=(docker.io)
command -v skopeo >/dev/null || missing+=(skopeo)
[ -x /bin/busybox ] || missing+=(busybox-static)
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
[ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
if ! docker info >/dev/null 2>&1; then
  mkdir -p "$TOOLS"
  setsid dockerd >"$TOOLS/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  STOP+=("kill $DOCKERD_PID")
  for _ in $(seq 1 120); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start; log:"; cat "$TOOLS/dockerd.log"; exit 1; }
fi
docker version --format 'Docker Engine {{.Server.Version}}'
# PostgreSQL for the store's conformance suite: a fresh cluster in a temporary directory (initdb
# refuses to run as root, hence the postgres user), on a free loopback port.
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PG_DIR=$(mktemp -d /tmp/berth-test-pg.XXXXXX)
chown postgres: "$PG_DIR"
PG_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres >"$PG_DIR/initdb.log"
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
  -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1" start >/dev/null
PG_PID=$(head -1 "$PG_DIR/data/postmaster.pid")
STOP+=("kill -INT $PG_PID; while kill -0 $PG_PID; do sleep 0.1; done; rm -rf $PG_DIR")
export BERTH_TEST_POSTGRES="postgres://postgres@127.0.0.1:$PG_PORT"
"$PG_BIN/postgres" --version
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
