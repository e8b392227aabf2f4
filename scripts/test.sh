#!/usr/bin/env bash
# Runs every check and test of Berth on a fresh Debian machine with Rust: installs what the
# tests need (openssl, the aws CLI in a private virtualenv), then fmt, clippy and the tests.
# .ci/run calls exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/berth-target}"
TOOLS="${BERTH_TOOLS_DIR:-/var/tmp/berth-tools}"

step() { printf '\n== %s\n' "$*"; }

step "test tools"
if ! command -v openssl >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl
fi
if [ ! -x "$TOOLS/venv/bin/aws" ]; then
  python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check 'awscli>=1.45,<2'
fi
export PATH="$TOOLS/venv/bin:$PATH"
aws --version

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
cargo test --workspace --locked
