#!/usr/bin/env bash
# IAM enforcement benchmark: DescribeTaskDefinition as a user with 10 policies vs as root, same
# server, same run (see docs/benchmarks.md). Installs wrk (Debian), builds Berth in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/berth-target}"
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
cargo build --release --locked -p berth --bin berth --example iam_bench
"$CARGO_TARGET_DIR/release/examples/iam_bench" "$CARGO_TARGET_DIR/release/berth" "${1:-10}" "${2:-3}"
