#!/usr/bin/env bash
# Runs the cargo-fuzz targets of agent/fuzz (image_ref, selector, quantity, config) briefly, from
# their committed seed corpus, and fails on any crash. Works from any cwd.
#
#   bash scripts/fuzz.sh                          # every target, FUZZ_SECONDS (20) each
#   FUZZ_SECONDS=600 FUZZ_TARGETS="selector" bash scripts/fuzz.sh   # one target, longer
#
# FUZZ_BUILD=release (default) builds optimised: about 7 CPU-minutes from scratch on this
# machine's kind, then 20k-400k executions a second. FUZZ_BUILD=dev (what the test command uses)
# builds in half that and runs some 10 times slower: enough for a smoke run of seconds.
#
# Installs cargo-fuzz (pinned, from crates.io) into .tools/cargo-fuzz when it is missing. The
# machine has a stable toolchain only: RUSTC_BOOTSTRAP=1 lets it take cargo-fuzz's -Z flags.
# Inputs libFuzzer finds go to agent/fuzz/grown/<target>/ (gitignored; kept between runs, so
# longer runs build on each other); the seeds in agent/fuzz/corpus/<target>/ are only read. A
# crash leaves its input in agent/fuzz/artifacts/<target>/ and this script says how to replay it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
CARGO_FUZZ_VERSION="0.13.2"
SECONDS_EACH="${FUZZ_SECONDS:-20}"
BUILD="${FUZZ_BUILD:-release}"
TARGETS="${FUZZ_TARGETS:-image_ref selector quantity config}"
log() { printf '[fuzz] %s\n' "$*" >&2; }

# --- cargo-fuzz ---------------------------------------------------------------------------
BIN="$TOOLS/cargo-fuzz/bin"
if [ "$("$BIN/cargo-fuzz" --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
  log "cargo install cargo-fuzz $CARGO_FUZZ_VERSION into .tools/cargo-fuzz"
  t0=$SECONDS
  cargo install --quiet --locked --version "$CARGO_FUZZ_VERSION" --root "$TOOLS/cargo-fuzz" cargo-fuzz
  log "installed in $((SECONDS - t0)) s"
fi
export PATH="$BIN:$PATH"
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_PROGRESS_WHEN=never

cd "$ROOT/agent"
# --sanitizer none: the agent's code is safe Rust (#![forbid(unsafe_code)]); what is looked for is
# panics and broken invariants, and without ASan each second runs several times the inputs.
# -a: overflow checks and debug assertions on, so an overflow is a crash, not a silent wrap.
# 16 codegen units: a build in about half the time, at a small cost in speed.
FUZZ_FLAGS=(--sanitizer none -a)
case "$BUILD" in
  release) BUILD_FLAGS=(--release --codegen-units 16) ;;
  dev) BUILD_FLAGS=(--dev) ;;
  *) log "FUZZ_BUILD must be release or dev, not $BUILD"; exit 2 ;;
esac
t0=$SECONDS
log "building ${TARGETS// /, } ($BUILD)"
# cargo fuzz has no --locked: check agent/fuzz/Cargo.lock first, so the build cannot change it.
cargo fetch --locked --quiet --manifest-path "$ROOT/agent/fuzz/Cargo.toml"
# shellcheck disable=SC2086 # one word per target
for target in $TARGETS; do
  cargo fuzz build "${FUZZ_FLAGS[@]}" "${BUILD_FLAGS[@]}" "$target"
done
log "built in $((SECONDS - t0)) s"

failed=()
for target in $TARGETS; do
  seeds="$ROOT/agent/fuzz/corpus/$target"
  grown="$ROOT/agent/fuzz/grown/$target"
  artifacts="$ROOT/agent/fuzz/artifacts/$target"
  mkdir -p "$grown" "$artifacts"
  out="$(mktemp)"
  log "$target: ${SECONDS_EACH} s from $(find "$seeds" -type f | wc -l) seeds"
  # New inputs go to the first folder (grown); the seeds are read only.
  if cargo fuzz run "${FUZZ_FLAGS[@]}" "${BUILD_FLAGS[@]}" "$target" "$grown" "$seeds" -- \
    -max_total_time="$SECONDS_EACH" -print_final_stats=1 -artifact_prefix="$artifacts/" >"$out" 2>&1; then
    status=ok
  else
    status=CRASH
    failed+=("$target")
  fi
  # libFuzzer's last status line (coverage, features, corpus, exec/s) and its final stats.
  cov="$(grep -E '^#[0-9]+' "$out" | tail -1 || true)"
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$out")"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out")"
  added="$(sed -n 's/^stat::new_units_added: *//p' "$out")"
  printf '%-9s %-5s %s executions, %s exec/s, %s new inputs | %s\n' "$target" "$status" "${execs:-?}" "${rate:-?}" \
    "${added:-?}" "$cov"
  if [ "$status" != ok ]; then
    # The panic and the input that caused it.
    grep -E "panicked at|Test unit written to|ERROR: libFuzzer" -A 3 "$out" | head -30 >&2 || tail -40 "$out" >&2
    crash="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$out" | tail -1)"
    [ -n "$crash" ] && log "replay: (cd agent && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none -a ${BUILD_FLAGS[*]} $target $crash)"
  fi
  rm -f "$out"
done

if [ "${#failed[@]}" -gt 0 ]; then
  log "FAILED: ${failed[*]}"
  exit 1
fi
log "no crash in ${TARGETS// /, } (${SECONDS_EACH} s each)"
