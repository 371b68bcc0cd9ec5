#!/usr/bin/env bash
# The darkwatch demo: builds the namespace lab, a collector and three agents,
# and replays the shape of North Korea's December 2014 blackout at lab speed.
# Run as root on Debian with Rust installed. Takes about three minutes after
# the build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup
cargo build --release --workspace --bins 2>&1 | tail -n 2
exec ./target/release/darkwatch-demo
