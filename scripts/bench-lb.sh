#!/usr/bin/env bash
# Load balancer benchmark: Berth's listener vs nginx and haproxy as reverse proxies to the same
# nginx backend, with wrk (see docs/benchmarks.md). Installs nginx, haproxy, wrk (Debian) and
# awscli (private virtualenv); builds Berth in release mode. Args: [SECONDS] [ROUNDS].
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/berth-target}"
TOOLS="${BERTH_TOOLS_DIR:-/var/tmp/berth-tools}"
need=()
for p in nginx haproxy wrk; do command -v "$p" >/dev/null || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
if [ ! -x "$TOOLS/venv/bin/aws" ]; then
  [ -x "$TOOLS/venv/bin/pip" ] || python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check awscli
fi
ulimit -n "$(ulimit -Hn)"
cargo build --release --locked -p berth --bin berth --example lb_bench
"$CARGO_TARGET_DIR/release/examples/lb_bench" "$CARGO_TARGET_DIR/release/berth" "$TOOLS/venv/bin/aws" "${1:-10}" "${2:-3}"
