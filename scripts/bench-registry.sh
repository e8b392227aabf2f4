#!/usr/bin/env bash
# Registry benchmark: Berth vs CNCF distribution (Debian's docker-registry) and ferro-oci-server,
# on this machine in the same run (see docs/benchmarks.md). Installs wrk and docker-registry
# (Debian) and ferro-oci-server (crates.io), builds Berth in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/berth-target}"
TOOLS="${BERTH_TOOLS_DIR:-/var/tmp/berth-tools}"
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
[ -x "$TOOLS/ferro/bin/ferro-oci-server" ] || cargo install --locked --root "$TOOLS/ferro" ferro-oci-server
cargo build --release --locked -p berth --bin berth --example registry_bench
"$CARGO_TARGET_DIR/release/examples/registry_bench" "$CARGO_TARGET_DIR/release/berth" "$(command -v docker-registry)" \
  "$TOOLS/ferro/bin/ferro-oci-server" "${1:-10}"
