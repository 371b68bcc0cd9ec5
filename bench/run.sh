#!/usr/bin/env bash
# Runs darkwatch's benchmarks against fping, zmap and scamper and prints a
# markdown table. As root on a Debian machine: bash bench/run.sh [bench args]
# (e.g. --reps 5, --only sweep16,steady, --out /tmp/bench.md).
# PostgreSQL ingest runs when DARKWATCH_TEST_PG is set (see .ci/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "bench/run.sh: run as root (network namespaces, raw sockets)" >&2
    exit 77
fi
missing=()
for t in fping zmap scamper ip; do
    command -v "$t" >/dev/null || missing+=("$t")
done
if [ ${#missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y fping zmap scamper iproute2 nftables
fi
cargo build --release -p darkwatch-agent -p darkwatch-collector -p darkwatch-bench -p darkwatch-tests
cargo build --release -p darkwatch-correlate --example perf
exec ./target/release/darkwatch-bench "$@"
