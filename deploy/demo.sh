#!/usr/bin/env bash
# The darkwatch demo: builds the namespace lab, a collector and three agents,
# and replays the shape of North Korea's December 2014 blackout at lab speed.
# Run as root on Debian with Rust installed. Takes about three minutes after
# the build. Open the URL it prints first (the dashboard, on 127.0.0.1) to
# watch the outage unfold. Options go to darkwatch-demo: --round-secs N,
# --port N, --keep (leave everything up until Ctrl-C); see --help.
set -euo pipefail
cd "$(dirname "$0")/.."
# Help first: --help must not install packages or run a release build.
for a in "$@"; do
  case "$a" in
    -h|--help)
      sed -n '2,7s/^# \{0,1\}//p' "$0"
      echo
      if [[ -x ./target/release/darkwatch-demo ]]; then
        exec ./target/release/darkwatch-demo --help
      fi
      echo "(darkwatch-demo --help lists every option once the demo is built.)"
      exit 0
      ;;
  esac
done
bash .ci/setup
cargo build --release --workspace --bins 2>&1 | tail -n 2
exec ./target/release/darkwatch-demo "$@"
