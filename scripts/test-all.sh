#!/usr/bin/env bash
# The test command: installs what it needs, then runs every check the project has.
# Usage: ./scripts/test-all.sh   (from anywhere)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/install-tools.sh"
# shellcheck disable=SC1091
. "$ROOT/.tools/env.sh"
# Tests that need kubectl, promtool or helm fail (instead of skipping) when this is set.
export MESHKEEPER_REQUIRE_TOOLS=1
export CARGO_TERM_COLOR=never

SUMMARY=()
step() {
  local name="$1"; shift
  printf '\n==> %s\n' "$name"
  local start=$SECONDS
  "$@"
  SUMMARY+=("ok  $(printf '%4ds' $((SECONDS - start)))  $name")
}

step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy -D warnings" cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo test" cargo test --workspace --locked

if [ -d helm/meshkeeper ]; then
  helm_checks() {
    helm lint --strict helm/meshkeeper
    local out; out="$(mktemp -d)"
    helm template meshkeeper helm/meshkeeper --namespace meshkeeper > "$out/default.yaml"
    kubernetes-validate --strict -k 1.33.0 "$out/default.yaml"
    for values in helm/meshkeeper/ci/*.yaml; do
      [ -e "$values" ] || continue
      helm lint --strict helm/meshkeeper -f "$values"
      helm template meshkeeper helm/meshkeeper --namespace meshkeeper -f "$values" > "$out/$(basename "$values")"
      kubernetes-validate --strict -k 1.33.0 "$out/$(basename "$values")"
    done
  }
  step "helm lint + template + schema validation" helm_checks
fi

dashboards() {
  python3 scripts/gen-dashboard.py --check
  python3 scripts/check-dashboards.py
}
step "dashboards: generated, valid, every query parses" dashboards

if ls dashboards/*.rules.yaml >/dev/null 2>&1; then
  step "promtool check rules" promtool check rules dashboards/*.rules.yaml
  if ls dashboards/tests/*.yaml >/dev/null 2>&1; then
    step "promtool test rules" promtool test rules dashboards/tests/*.yaml
  fi
fi

deny() {
  # cargo metadata needs every platform's crates present; fetching uses crates.io only.
  cargo fetch --locked -q
  local cfg; cfg="$(mktemp)"
  sed "s|@ADVISORY_DB@|$MESHKEEPER_ADVISORY_DB|" deny.toml > "$cfg"
  cargo deny --offline --config "$cfg" check
}
[ -f deny.toml ] && step "cargo deny (offline)" deny
[ -f Dockerfile ] && step "hadolint Dockerfile" hadolint Dockerfile

printf '\n==> summary\n'
printf '%s\n' "${SUMMARY[@]}"
