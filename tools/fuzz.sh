#!/usr/bin/env bash
# `make fuzz`: builds the cargo-fuzz targets of fuzz/ and runs each for a set time with libFuzzer (see FUZZING.md).
#
#   FUZZ_SECONDS=600     seconds per target (default 600)
#   FUZZ_JOBS=2          targets run at once (default 2)
#   FUZZ_TARGETS="a b"   which targets (default: every fuzz/fuzz_targets/*.rs)
#   FUZZ_SANITIZER=address  cargo-fuzz sanitizer (default address: works with libtorch, which itself is not
#                        instrumented; `none` builds faster and runs plain coverage-guided libFuzzer)
#   FUZZ_OUT=target/fuzz working corpora, artifacts, logs, summary.md; FUZZ_BUILD_DIR the cargo target dir of
#                        the fuzz crate (default $FUZZ_OUT/build)
#   FUZZ_ARGS="..."      more libFuzzer flags
#
# A slow unit (over 10 s, libFuzzer's -report_slow_units) counts as a finding too.
#
# Each target starts from its seeds (fuzz/corpus/<target>/) copied into a working corpus ($FUZZ_OUT/corpus/<target>/,
# kept between runs, so a later run goes on from what earlier ones found). A crash, timeout, out-of-memory or slow
# input is copied to fuzz/regressions/<target>/ (tests/mutation.rs replays every file there) and the target restarts
# for the time left (at most 5 restarts). The table of targets, seconds, executions, corpus size and findings goes
# to $FUZZ_OUT/summary.md. Exit status 1 when any target found something.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

FUZZ_SECONDS=${FUZZ_SECONDS:-600}
FUZZ_JOBS=${FUZZ_JOBS:-2}
FUZZ_SANITIZER=${FUZZ_SANITIZER:-address}
FUZZ_OUT=$(mkdir -p "${FUZZ_OUT:-$ROOT/target/fuzz}" && cd "${FUZZ_OUT:-$ROOT/target/fuzz}" && pwd)
FUZZ_BUILD_DIR=${FUZZ_BUILD_DIR:-$FUZZ_OUT/build}
FUZZ_ARGS=${FUZZ_ARGS:-}
ALL_TARGETS=$(find fuzz/fuzz_targets -name '*.rs' -printf '%f\n' | sed 's/\.rs$//' | sort | tr '\n' ' ')
FUZZ_TARGETS=${FUZZ_TARGETS:-$ALL_TARGETS}
CARGO_FUZZ_VERSION=0.13.2

for t in $FUZZ_TARGETS; do
  [[ " $ALL_TARGETS " == *" $t "* ]] || { echo "fuzz.sh: unknown target '$t' (targets: $ALL_TARGETS)" >&2; exit 2; }
done
[[ "$FUZZ_SECONDS" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: FUZZ_SECONDS must be a positive integer" >&2; exit 2; }
[[ "$FUZZ_JOBS" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: FUZZ_JOBS must be a positive integer" >&2; exit 2; }

# libtorch from the project's venv, as the main build; cargo-fuzz needs -Z flags: no nightly here, so bootstrap.
export LIBTORCH_USE_PYTORCH=1 PATH="$ROOT/.venv/bin:$ROOT/.tools/bin:$PATH" RUSTC_BOOTSTRAP=1
# The params targets must never read the user's Hugging Face cache.
export HF_HUB_CACHE="$FUZZ_OUT/no-hub-cache"

if ! cargo-fuzz --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION"; then
  echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION into .tools"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$ROOT/.tools"
fi

echo "== building fuzz targets (sanitizer: $FUZZ_SANITIZER)"
# -a: debug assertions (integer overflow checks) on, so an overflow is a finding too.
cargo fuzz build -s "$FUZZ_SANITIZER" -a --target-dir "$FUZZ_BUILD_DIR"
BIN="$FUZZ_BUILD_DIR/x86_64-unknown-linux-gnu/release"

run_one() {
  local t=$1 work="$FUZZ_OUT/corpus/$1" art="$FUZZ_OUT/artifacts/$1" log="$FUZZ_OUT/logs/$1.log"
  mkdir -p "$work" "$art" "$FUZZ_OUT/logs" "$FUZZ_OUT/stats"
  cp -n fuzz/corpus/"$t"/* "$work"/ 2>/dev/null || true
  : >"$log"
  local start end left restarts=0
  start=$(date +%s)
  end=$((start + FUZZ_SECONDS))
  while :; do
    left=$((end - $(date +%s)))
    ((left > 0)) || break
    # shellcheck disable=SC2086
    if "$BIN/$t" "$work" -max_total_time="$left" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      -artifact_prefix="$art/" $FUZZ_ARGS >>"$log" 2>&1; then
      break
    fi
    restarts=$((restarts + 1))
    ((restarts <= 5)) || break
  done
  local secs execs corpus crashes
  secs=$(($(date +%s) - start))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{s += $2} END {print s + 0}')
  corpus=$(find "$work" -type f | wc -l)
  crashes=0
  for f in "$art"/crash-* "$art"/timeout-* "$art"/oom-* "$art"/slow-unit-*; do
    [[ -f "$f" ]] || continue
    crashes=$((crashes + 1))
    mkdir -p "fuzz/regressions/$t"
    cp "$f" "fuzz/regressions/$t/"
  done
  echo "| $t | $secs | $execs | $corpus | $crashes |" >"$FUZZ_OUT/stats/$t.row"
  echo "== $t: ${secs}s, $execs executions, corpus $corpus, findings $crashes (log: $log)"
}
export -f run_one
export FUZZ_OUT FUZZ_SECONDS FUZZ_ARGS BIN

rm -f "$FUZZ_OUT"/stats/*.row
echo "== fuzzing $FUZZ_TARGETS for ${FUZZ_SECONDS}s each, $FUZZ_JOBS at once"
# shellcheck disable=SC2086
printf '%s\n' $FUZZ_TARGETS | xargs -P "$FUZZ_JOBS" -I{} bash -c 'run_one "$1"' _ {}

{
  echo "# Fuzzing summary ($(date -u +%Y-%m-%dT%H:%MZ), sanitizer $FUZZ_SANITIZER, $FUZZ_SECONDS s per target)"
  echo
  echo "| target | seconds | executions | corpus size | findings (crash, timeout, oom, slow) |"
  echo "| --- | ---: | ---: | ---: | ---: |"
  for t in $FUZZ_TARGETS; do cat "$FUZZ_OUT/stats/$t.row"; done
} >"$FUZZ_OUT/summary.md"
cat "$FUZZ_OUT/summary.md"
if awk -F'|' '$6 + 0 > 0 {found = 1} END {exit !found}' "$FUZZ_OUT/summary.md"; then
  echo "fuzz.sh: crashes found: inputs copied to fuzz/regressions/ (replayed by tests/mutation.rs)" >&2
  exit 1
fi
