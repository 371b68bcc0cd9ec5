#!/usr/bin/env bash
# Runs every fuzz target for a bounded time and prints, per target, the
# executions done and the crashes found. Usage: fuzz/run.sh [SECONDS] (default 60).
# Needs nightly Rust and cargo-fuzz (`cargo install cargo-fuzz`).
# Crashes land in fuzz/artifacts/TARGET/; each becomes a regression test
# next to the parser it broke. Exit status 1 if any target crashed.
set -uo pipefail
secs=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
targets=(delegated pfx2as addrlist targets agent_config collector_config report mrt bmp)
cargo +nightly fuzz build -O >/dev/null 2>build.log || { echo "fuzz build failed, see fuzz/build.log" >&2; tail -20 build.log >&2; exit 2; }
crashed=0
printf '%-22s %12s %10s %8s\n' target executions exec/s crashes
for t in "${targets[@]}"; do
  corpus="corpus/$t"
  mkdir -p "$corpus" "artifacts/$t"
  # Seed with the project's own examples when the corpus is empty.
  if [ -z "$(ls -A "$corpus")" ] && [ -d "seeds/$t" ]; then cp "seeds/$t"/* "$corpus"/; fi
  log="artifacts/$t.log"
  before=$(find "artifacts/$t" -type f | wc -l)
  # -rss_limit_mb: a parser that eats memory is a finding too.
  cargo +nightly fuzz run -O "$t" "$corpus" -- -max_total_time="$secs" -rss_limit_mb=2048 \
    -max_len=65536 -print_final_stats=1 >"$log" 2>&1
  rc=$?
  after=$(find "artifacts/$t" -type f | wc -l)
  execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
  rate=$(grep -m1 'stat::average_exec_per_sec' "$log" | awk '{print $2}')
  new=$((after - before))
  if [ "$rc" -ne 0 ] || [ "$new" -gt 0 ]; then crashed=1; fi
  printf '%-22s %12s %10s %8s\n' "$t" "${execs:-?}" "${rate:-?}" "$new"
done
exit $crashed
