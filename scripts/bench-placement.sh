#!/usr/bin/env bash
# Placement benchmark: simulated instances, RunTask count 10 with spread(zone) + binpack(memory)
# (see docs/benchmarks.md). No Docker needed. Args: [INSTANCES] [TASKS] [CLIENTS].
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/berth-target}"
cargo build --release --locked -p berth --bin berth --example placement_bench
"$CARGO_TARGET_DIR/release/examples/placement_bench" "$CARGO_TARGET_DIR/release/berth" "${1:-500}" "${2:-5000}" "${3:-4}"
