#!/usr/bin/env bash
# Reruns every command whose figures docs/ quotes, and writes each one's
# output to $OUT/NAME.md under a header with the date and the exact command,
# ready to replace the table it made (each table in docs/ names its command
# and date; scripts/check-figures.py checks that they do).
#
#   bash scripts/figures.sh [NAME ...]     # as root; default: all of them
#
# NAME is one of: bench (docs/benchmarks.md "Results"), agent-scale, agent-e2e,
# scale (docs/benchmarks.md and docs/scale.md), inputs, correlation
# (incremental engine), reliability (rewrites docs/reliability.md itself),
# fleet (docs/reliability.md "Fleet load"), verdicts (docs/verdicts.md).
# Release builds; a full run takes hours on 2 cores (agent-e2e ~17 min,
# verdicts ~1 h). OUT defaults to target/figures. DARKWATCH_TEST_PG (a
# PostgreSQL server URL, see .ci/postgres) adds the PostgreSQL rows.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-target/figures}
mkdir -p "$OUT"

# name|command (run by bash from the workspace root)
FIGURES=(
  "bench|bash bench/run.sh"
  "agent-scale|bash bench/run.sh --only agent-scale --agent-scale-rounds 5"
  "agent-e2e|bash bench/run.sh --only agent-e2e"
  "scale|bash bench/run.sh --only scale"
  "inputs|bash bench/run.sh --only inputs"
  "correlation|for a in '100000 10 288' '100000 10 48' '1000000 10 48' '1000000 10 288'; do cargo run -q --release -p darkwatch-correlate --example incremental_scale -- \$a 10; done"
  "reliability|bash scripts/reliability.sh"
  "fleet|cargo build --release -p darkwatch-collector -p darkwatch-tests && ./target/release/darkwatch-loadgen --fleet --agents 5000 --blocks 10000 --round-secs 60 --rounds 2 --outage-rounds 6"
  "verdicts|bash scripts/verdicts.sh 5"
)

wanted() {
  [ $# -eq 0 ] && return 0
  local n=$1; shift
  for w in "$@"; do [ "$w" = "$n" ] && return 0; done
  return 1
}

failed=()
for entry in "${FIGURES[@]}"; do
  name=${entry%%|*}
  cmd=${entry#*|}
  wanted "$name" "$@" || continue
  echo "== $name: $cmd" >&2
  {
    echo "Measured $(date -u +%Y-%m-%d) with \`$cmd\` ($(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), commit $(git rev-parse --short HEAD)):"
    echo
    bash -c "$cmd" 2>"$OUT/$name.log" || { echo "(failed: see $OUT/$name.log)"; false; }
  } >"$OUT/$name.md" || failed+=("$name")
done
echo "outputs in $OUT/" >&2
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}" >&2
  exit 1
fi
