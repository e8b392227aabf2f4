#!/usr/bin/env bash
# CloudWatch Logs benchmark: Berth vs moto's server on this machine, in the same run (see
# docs/benchmarks.md): PutLogEvents ingest, FilterLogEvents over 1,000,000 events, and the agent
# shipping a container's output (needs dockerd running). Installs wrk (Debian) and moto (PyPI,
# private virtualenv), builds Berth in release mode. Argument: seconds per ingest run (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/berth-target}"
TOOLS="${BERTH_TOOLS_DIR:-/var/tmp/berth-tools}"
docker info >/dev/null 2>&1 || { echo "start dockerd first (scripts/test.sh shows how)"; exit 1; }
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
if [ ! -x "$TOOLS/venv/bin/moto_server" ]; then
  [ -x "$TOOLS/venv/bin/pip" ] || python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]'
fi
cargo build --release --locked -p berth --bin berth --example logs_bench
"$CARGO_TARGET_DIR/release/examples/logs_bench" "$CARGO_TARGET_DIR/release/berth" "$TOOLS/venv/bin/moto_server" "${1:-10}"
