#!/usr/bin/env bash
# Replication benchmark: Berth replicating an image to a second Berth vs `skopeo copy` between
# the same two servers, same run (see docs/benchmarks.md). Installs skopeo (Debian), builds Berth
# in release mode. Arguments: layer size in MiB (default 128) and number of layers (default 4).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/berth-target}"
if ! command -v skopeo >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq skopeo
fi
cargo build --release --locked -p berth --bin berth --example replication_bench
"$CARGO_TARGET_DIR/release/examples/replication_bench" "$CARGO_TARGET_DIR/release/berth" "${1:-128}" "${2:-4}"
