#!/usr/bin/env bash
# Idle agent traffic: requests and bytes one registered agent with nothing to do sends (and gets
# back) per minute, through a counting relay (see docs/benchmarks.md). Needs dockerd running.
# Usage: scripts/bench-agent.sh [SECONDS] [BERTH_BIN] (another build's binary, to compare).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/berth-target}"
docker info >/dev/null 2>&1 || { echo "start dockerd first (scripts/test.sh shows how)"; exit 1; }
cargo build --release --locked -p berth --bin berth --example agent_bench
"$CARGO_TARGET_DIR/release/examples/agent_bench" "${2:-$CARGO_TARGET_DIR/release/berth}" "${1:-60}"
