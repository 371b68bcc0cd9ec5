#!/usr/bin/env bash
# Measures darkwatch's reliability and writes docs/reliability.md:
#   1. every fuzz target for FUZZ_SECS seconds (fuzz/run.sh; needs nightly + cargo-fuzz),
#   2. the bad-input, crash, spool and local-policy tests (real binaries),
#   3. the load generator against SQLite and PostgreSQL (release build, LOAD_SECS seconds),
#   4. the fleet load (loadgen --fleet: FLEET_AGENTS agents, one FLEET_BLOCKS-block packed
#      round each per FLEET_ROUND_SECS, then a drain of 6 spooled rounds; SKIP_FLEET=1 leaves it out).
# Usage (as root, from anywhere): bash scripts/reliability.sh
# Environment: FUZZ_SECS (default 60), LOAD_SECS (default 20), LOAD_AGENTS (default 200),
# LOAD_OBS (observations per batch, default 100), DARKWATCH_TEST_PG (PostgreSQL server URL;
# default: whatever .ci/postgres prints), SKIP_FUZZ=1 to leave the fuzzers out.
# Load goes to 127.0.0.1 only; probing tests run in network namespaces of their own.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
FUZZ_SECS=${FUZZ_SECS:-60}
LOAD_SECS=${LOAD_SECS:-20}
LOAD_AGENTS=${LOAD_AGENTS:-200}
LOAD_OBS=${LOAD_OBS:-100}
FLEET_AGENTS=${FLEET_AGENTS:-5000}
FLEET_BLOCKS=${FLEET_BLOCKS:-10000}
FLEET_ROUND_SECS=${FLEET_ROUND_SECS:-600}
out=docs/reliability.md
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DARKWATCH_TEST_PG=${DARKWATCH_TEST_PG:-$(bash .ci/postgres 2>/dev/null || true)}
failed=0

echo "== fuzzing (${FUZZ_SECS}s per target)" >&2
if [ "${SKIP_FUZZ:-0}" = 1 ]; then
  echo "(skipped: SKIP_FUZZ=1)" >"$work/fuzz"
else
  # Fuzzing needs nightly Rust and cargo-fuzz: install them when missing.
  rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal >&2 || true
  command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz >&2 || true
fi
if [ "${SKIP_FUZZ:-0}" = 1 ]; then
  :
elif command -v cargo-fuzz >/dev/null && rustup toolchain list | grep -q nightly; then
  bash fuzz/run.sh "$FUZZ_SECS" >"$work/fuzz" 2>&1 || failed=1
else
  echo "(not run: needs nightly Rust and cargo-fuzz)" >"$work/fuzz"
fi
cat "$work/fuzz" >&2

echo "== fault tests" >&2
run_tests() { # package, module of its integration-test binary...
  local pkg=$1; shift
  local filters=()
  for m in "$@"; do filters+=("$m::"); done
  cargo test -p "$pkg" --test it -- "${filters[@]}" --nocapture --test-threads=2 >"$work/$pkg.log" 2>&1
}
run_tests darkwatch-collector bad_input crash; rc_collector=$?
run_tests darkwatch-agent spool_crash policy; rc_agent=$?
[ $rc_collector -eq 0 ] && [ $rc_agent -eq 0 ] || failed=1
cat "$work"/darkwatch-*.log | grep -E '^test |test result' >&2

echo "== load (${LOAD_AGENTS} agents, ${LOAD_SECS}s, release build)" >&2
cargo build -q --release -p darkwatch-collector -p darkwatch-tests \
  --bin darkwatch-collector --bin darkwatch-loadgen || exit 2
lg=target/release/darkwatch-loadgen
load_args=(--agents "$LOAD_AGENTS" --seconds "$LOAD_SECS" --obs-per-batch "$LOAD_OBS" --markdown
  --collector-bin target/release/darkwatch-collector)
"$lg" "${load_args[@]}" >"$work/load" 2>"$work/load.err" || failed=1
if [ -n "$DARKWATCH_TEST_PG" ]; then
  "$lg" "${load_args[@]}" --pg "$DARKWATCH_TEST_PG" >>"$work/load" 2>>"$work/load.err" || failed=1
fi
cat "$work/load" >&2

fleet_args=(--fleet --agents "$FLEET_AGENTS" --blocks "$FLEET_BLOCKS" --round-secs "$FLEET_ROUND_SECS"
  --rounds 1 --outage-rounds 6 --collector-bin target/release/darkwatch-collector)
if [ "${SKIP_FLEET:-0}" = 1 ]; then
  echo "(not run: SKIP_FLEET=1)" >"$work/fleet"
else
  echo "== fleet (${FLEET_AGENTS} agents, ${FLEET_ROUND_SECS}-s rounds)" >&2
  "$lg" "${fleet_args[@]}" >"$work/fleet" 2>"$work/fleet.err" || failed=1
fi
cat "$work/fleet" >&2

figure() { grep -h "$1" "$work"/darkwatch-*.log | head -n1 | sed 's/^[ .]*//'; }
test_lines() { grep -hE '^test .* \.\.\. ' "$work/$1.log" | sed 's/^test /- `/; s/ \.\.\. /` /'; }

{
  echo "# Reliability figures"
  echo
  echo "Produced by \`bash scripts/reliability.sh\` on $(date -u +%Y-%m-%d) ($(nproc) cores,"
  echo "$(free -g | awk '/Mem:/ {print $2}') GiB RAM, $(uname -sr)); rerun it to refresh every figure here."
  echo "Settings: FUZZ_SECS=$FUZZ_SECS, LOAD_SECS=$LOAD_SECS, LOAD_AGENTS=$LOAD_AGENTS, LOAD_OBS=$LOAD_OBS."
  echo
  echo "## Fuzzing"
  echo
  echo "\`fuzz/run.sh $FUZZ_SECS\`: each cargo-fuzz target (libFuzzer, seeded from \`fuzz/seeds/\`) for"
  echo "$FUZZ_SECS s. Crashes would be in \`fuzz/artifacts/TARGET/\` and become regression tests next"
  echo "to the parser."
  echo
  echo '```'
  cat "$work/fuzz"
  echo '```'
  echo
  echo "## Load: acknowledged reports, latency, memory, and proof of storage"
  echo
  echo "\`darkwatch-loadgen\` (release build) creates $LOAD_AGENTS agents through the CLI, has them post"
  echo "valid batches of $LOAD_OBS block observations concurrently to a collector on 127.0.0.1 for"
  echo "$LOAD_SECS s, then reads the database back: every acknowledged batch must be stored exactly"
  echo "once with all its observations (lost = acked but absent; dup/partial = wrong observation"
  echo "count or extra rows). RSS is the collector's peak resident memory. Loadgen and collector share"
  echo "the same 2 cores."
  echo
  echo "| backend | agents | obs/batch | seconds | batches/s | observations/s | p50 | p99 | collector RSS | failed requests | acked batches | lost | dup/partial |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  cat "$work/load"
  [ -n "$DARKWATCH_TEST_PG" ] || echo "| PostgreSQL | not run: DARKWATCH_TEST_PG unset | | | | | | | | | | | |"
  echo
  echo "## Fleet load (issue 28, point 7)"
  echo
  echo "\`darkwatch-loadgen ${fleet_args[*]}\` (SQLite, release build): each agent"
  echo "posts one packed round per round at its own offset, then all drain 6 spooled rounds at once"
  echo "(\`tests/src/fleet.rs\` says how; CPU is the collector's user + system time over the phase)."
  echo
  cat "$work/fleet"
  echo
  echo "## Faults survived"
  echo
  echo "Collector (\`collector/tests/it/bad_input.rs\`, \`collector/tests/it/crash.rs\`; SQLite and PostgreSQL):"
  echo
  test_lines darkwatch-collector
  echo
  echo "- $(figure 'kill -9 during ingest')"
  echo
  echo "Agent (\`agent/tests/it/spool_crash.rs\`, \`agent/tests/it/policy.rs\`; real agent and collector in a"
  echo "loopback-only network namespace):"
  echo
  test_lines darkwatch-agent
  echo
  echo "- $(figure 'kill -9 while spooling')"
  echo "- Compromised collector, $(figure 'echo requests per destination') (refused space must be 0)."
  echo
  echo "## Inputs tried at the API"
  echo
  echo "Each gets its status and a one-line JSON message, and afterwards the stored rows are exactly"
  echo "what they were (plus the one good batch sent last):"
  echo
  echo "| input | status |"
  echo "| --- | --- |"
  echo "| body over \`--max-body\` | 413 |"
  echo "| truncated, empty, binary, non-object JSON | 400 \`invalid report JSON\` |"
  echo "| wrong type, negative count, bad CIDR, unknown field | 400, naming the field (\`observations[0].belief\`) |"
  echo "| SQL in batch id or campaign name | 400 (values are only ever bound parameters) |"
  echo "| timestamp in 1990, a year ahead, i64::MIN/MAX | 400 \`outside the accepted range\` |"
  echo "| round u64::MAX, belief f64::MAX | 400 |"
  echo "| unknown campaign; block outside the campaign's prefixes | 422 |"
  echo "| duplicate batch id (same or different content) | 200 \`duplicate: true\`, nothing written |"
  echo "| missing, non-Bearer, non-ASCII, forged, hash-as-token, revoked token | 401 |"
  echo "| upload stalled after headers; body dribbled a byte per 0.5 s | 408 after the request deadline, connection closed; other clients served meanwhile |"
  echo
  echo "## Choices behind these figures"
  echo
  echo "- **Durability**: SQLite runs in WAL mode with \`synchronous=FULL\`: an acknowledged batch"
  echo "  survives kill -9 and power loss. \`synchronous=NORMAL\` would survive kill -9 (the crash tests"
  echo "  above) but could lose the last commits on power loss, so it is not used. Throughput comes"
  echo "  instead from group commit: one writer task commits every batch waiting at that moment in one"
  echo "  transaction (one fsync for many acks), each ack sent only after its commit."
  echo "- **last_seen**: rewritten at most every 5 s per agent, not on every request."
  echo "- **Request deadline**: \`DARKWATCH_REQUEST_TIMEOUT_SECS\` (default 30 s) covers body upload and"
  echo "  handling; a stalled or dribbling client gets 408."
  echo "- **Tokens**: only SHA-256 hashes are stored; every stored hash is compared in constant time"
  echo "  (\`subtle\`), with no early exit, so timing does not reveal near misses."
  echo "- **Spool**: whole-or-absent writes (tmp + fsync + rename + directory fsync); unreadable files go"
  echo "  to \`corrupt/\` with a log line; when full, the oldest batches are dropped (logged)."
  echo "- **Local limits**: the agent refuses reserved ranges (unless \`allow\`ed), its exclusion list,"
  echo "  assignments above \`max_targets\`, and round intervals outside 1 s .. 7 days, whatever the"
  echo "  collector says, and logs each refusal; \`pps\` caps its packet rate."
  echo
  echo "Overall: $([ $failed -eq 0 ] && echo 'every check passed; nothing acknowledged was lost.' || echo '**SOME CHECKS FAILED** (see above).')"
} >"$out"
echo "wrote $out" >&2
exit $failed
