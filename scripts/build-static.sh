#!/usr/bin/env bash
# Builds the same static musl binary as the Dockerfile, without Docker (no engine runs on the
# CI machines). Not part of scripts/test-all.sh: a release build takes minutes.
#
#   ./scripts/build-static.sh        # -> target/x86_64-unknown-linux-musl/release/meshkeeper
#
# Needs rustup and, for musl-gcc (ring's and mimalloc's C code), Debian's musl-tools: installed
# with apt-get when missing (as root).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET=x86_64-unknown-linux-musl
log() { printf '[build-static] %s\n' "$*" >&2; }

if ! rustup target list --installed | grep -qx "$TARGET"; then
  log "rustup target add $TARGET"
  rustup target add "$TARGET"
fi
if ! command -v musl-gcc >/dev/null 2>&1; then
  log "apt-get install musl-tools"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends musl-tools >/dev/null
fi

log "cargo build --release --locked --target $TARGET -p meshkeeper"
start=$SECONDS
cargo build --release --locked --target "$TARGET" -p meshkeeper
bin="target/$TARGET/release/meshkeeper"
log "built in $((SECONDS - start))s: $bin"
log "size: $(du -h "$bin" | cut -f1) ($(stat -c %s "$bin") bytes)"
command -v file >/dev/null 2>&1 && log "file: $(file -b "$bin")"
# A static binary has no interpreter and no dynamic section.
if command -v ldd >/dev/null 2>&1; then
  log "ldd:  $(ldd "$bin" 2>&1 | head -1 | sed 's/^[[:space:]]*//')"
fi
"$bin" --version >/dev/null 2>&1 && log "runs: $("$bin" --version)"
exit 0
