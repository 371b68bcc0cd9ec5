#!/usr/bin/env bash
# Runs the lab scenarios N times each and prints a table of outcomes: pass
# rate per scenario and the figures the scenarios measure (DWMEASURE lines:
# localization at the border, false blackouts, alert counts, onset and end in
# rounds after the fault). Needs root (network namespaces) and CI=true, so
# that a scenario that cannot build its lab fails instead of skipping.
#
#   scripts/verdicts.sh [N] [scenario-name-prefix ...]
#
# N defaults to 5; scenarios default to s1..s15. Logs go to $OUT (default
# target/verdicts/), one file per run.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-5}
shift || true
if [ $# -gt 0 ]; then
  SCENARIOS=("$@")
else
  SCENARIOS=(s1_ s2_ s3_ s4_ s5_ s6_ s7_ s8_ s9_ s10_ s11_ s12_ s13_ s14_ s15_)
fi
OUT=${OUT:-target/verdicts}
mkdir -p "$OUT"
export CI=true

# The scenarios run the workspace's collector and agent binaries from
# target/debug/: build them too, or a series measures stale ones.
cargo build --workspace --bins >/dev/null 2>&1
cargo test -p darkwatch-tests --test it --no-run >/dev/null 2>&1

declare -A PASS
for s in "${SCENARIOS[@]}"; do
  PASS[$s]=0
  for i in $(seq 1 "$N"); do
    log="$OUT/${s%_}-$i.log"
    # The host-wide routing-error limit (net.ipv4.route.error_cost) is the
    # kernel's default unless another program changed it: record it.
    echo "DWMEASURE ${s%_} error_cost_before=$(cat /proc/sys/net/ipv4/route/error_cost)" >"$log"
    cargo test -p darkwatch-tests --test it -- "scenarios::${s}" --nocapture >>"$log" 2>&1 || true
    echo "DWMEASURE ${s%_} error_cost_after=$(cat /proc/sys/net/ipv4/route/error_cost)" >>"$log"
    if grep -q "test result: ok. 1 passed" "$log"; then
      PASS[$s]=$((PASS[$s] + 1))
      echo "${s%_} run $i: pass" >&2
    else
      echo "${s%_} run $i: FAIL ($log)" >&2
    fi
    # Lab namespaces are named dw<pid>x...: any whose process is gone was
    # left behind (labs of other live processes are theirs).
    left=$(ip netns list | awk '{print $1}' | sed -n 's/^dw\([0-9]*\)x.*/\1/p' | sort -u |
      while read -r pid; do kill -0 "$pid" 2>/dev/null || echo "$pid"; done | wc -l)
    if [ "$left" != 0 ]; then
      echo "${s%_} run $i: lab namespaces of $left dead processes left behind" >&2
    fi
  done
done

printf '\n%-6s %-7s %s\n' scenario passed measured
for s in "${SCENARIOS[@]}"; do
  name=${s%_}
  # key=v1,v2,... over the runs, in run order.
  figures=$(cat "$OUT/$name"-*.log 2>/dev/null |
    awk -v s="$name" '$1 == "DWMEASURE" && $2 == s {
        split($3, kv, "="); k = kv[1]; v = substr($3, length(k) + 2)
        if (!(k in seen)) { order[++n] = k; seen[k] = 1; vals[k] = v } else vals[k] = vals[k] "," v
      }
      END { for (i = 1; i <= n; i++) printf "%s=%s ", order[i], vals[order[i]] }')
  printf '%-6s %d/%-5d %s\n' "$name" "${PASS[$s]}" "$N" "$figures"
done
