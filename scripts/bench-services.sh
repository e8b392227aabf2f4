#!/usr/bin/env bash
# Service scheduler benchmark: a REPLICA service on simulated instances, in-process over a
# durable store; times only the scheduler's passes (see docs/benchmarks.md). No Docker needed.
# Args: [INSTANCES] [TASKS].
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/berth-target}"
cargo build --release --locked -p berth-control --example service_bench
"$CARGO_TARGET_DIR/release/examples/service_bench" "${1:-500}" "${2:-2000}"
