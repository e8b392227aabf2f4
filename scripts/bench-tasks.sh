#!/usr/bin/env bash
# Task benchmark on the local Docker Engine: RunTask → RUNNING vs `docker run -d`, and agent RSS
# with 50 running tasks (see docs/benchmarks.md). Needs dockerd running and busybox-static.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/berth-target}"
docker info >/dev/null 2>&1 || { echo "start dockerd first (scripts/test.sh shows how)"; exit 1; }
[ -x /bin/busybox ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static; }
cargo build --release --locked -p berth --bin berth --example task_bench
"$CARGO_TARGET_DIR/release/examples/task_bench" "$CARGO_TARGET_DIR/release/berth" "${1:-7}"
