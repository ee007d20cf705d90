#!/usr/bin/env bash
# The test command (README: `./scripts/test-all.sh`; CI: `bash .ci/run`). Works from any cwd.
#
# Installs the tools it needs (scripts/install-tools.sh, fast when they are there), then runs
# every check the project has, each step announced and timed, and stops at the first failure:
#
#   fmt · clippy -D warnings · cargo test (both crates, unit + integration) · cargo fuzz (each
#   parser target briefly, scripts/fuzz.sh) · helm lint/template
#   + schema validation · promtool rules (when dashboards/ has them) · cargo deny (offline) ·
#   hadolint
#
# MESHKEEPER_REQUIRE_TOOLS=1 makes tests that need kubectl, promtool or helm fail instead of
# skipping when the tool is missing.
#
# For local iteration only: MK_SKIP="clippy test" skips the steps with those ids (fmt clippy test
# fuzz helm rules rules-test dashboards deny hadolint; shown as "skip" in the summary). CI never
# sets it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

"$ROOT/scripts/install-tools.sh"
# shellcheck disable=SC1091
. "$ROOT/.tools/env.sh"

export MESHKEEPER_REQUIRE_TOOLS=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export CARGO_TERM_PROGRESS_WHEN=never

# Kubernetes versions whose schemas the rendered chart must satisfy: the oldest we support
# (k8s-openapi feature v1_33, the chart's kubeVersion) and the newest kubernetes-validate 1.37.0
# bundles (both are in it: a missing one is an error).
K8S_VERSIONS=(1.33.0 1.37.0)

SUMMARY=()
CURRENT=""
render_dir="$(mktemp -d)" # rendered chart manifests
T0=$SECONDS
on_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ] && [ -n "$CURRENT" ]; then
    SUMMARY+=("FAIL $(printf '%5ds' $((SECONDS - STEP_START)))  $CURRENT")
  fi
  if [ "${#SUMMARY[@]}" -gt 0 ]; then
    printf '\n==================== summary ====================\n'
    printf '%s\n' "${SUMMARY[@]}"
    printf 'total %ds: %s\n' $((SECONDS - T0)) "$([ "$rc" -eq 0 ] && echo 'all steps passed' || echo "FAILED (exit $rc)")"
  fi
  rm -rf "$render_dir"
}
trap on_exit EXIT

# step ID NAME COMMAND...: runs COMMAND under a header, records its time; a failure ends the
# script.
step() {
  local id="$1" word
  shift
  for word in ${MK_SKIP:-}; do
    if [ "$word" = "$id" ]; then
      SUMMARY+=("skip        $1 (MK_SKIP)")
      return 0
    fi
  done
  CURRENT="$1"
  shift
  printf '\n==================== %s ====================\n' "$CURRENT"
  printf '$ %s\n' "$*"
  STEP_START=$SECONDS
  "$@"
  SUMMARY+=("ok   $(printf '%5ds' $((SECONDS - STEP_START)))  $CURRENT")
  CURRENT=""
}

# --- Rust ------------------------------------------------------------------------------------
step fmt "cargo fmt" cargo fmt --all -- --check
step clippy "cargo clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
# `-- --quiet`: one dot per test, failures in full, and cargo's "Running <binary>" lines kept.
step test "cargo test" cargo test --workspace --locked -- --quiet
# Coverage-guided fuzzing of the image-reference, selector, quantity and config parsers, from
# the committed seeds, FUZZ_SECONDS (10 here) each; any crash fails (scripts/fuzz.sh). A dev
# build: half the build time of an optimised one, plenty for a run this short.
step fuzz "cargo fuzz (brief)" env FUZZ_BUILD="${FUZZ_BUILD:-dev}" FUZZ_SECONDS="${FUZZ_SECONDS:-10}" "$ROOT/scripts/fuzz.sh"

# --- Helm chart --------------------------------------------------------------------------------

# lint (default values and ci/*.yaml), render, kubernetes-validate --strict against every
# K8S_VERSIONS, the rendered objects (restricted PSS, test hook, rules and dashboards unchanged
# from their files), the fail guards and schema typos: see scripts/check-chart.sh.
helm_chart() {
  K8S_VERSIONS="${K8S_VERSIONS[*]}" "$ROOT/scripts/check-chart.sh" "$render_dir"
}
if [ -f helm/meshkeeper/Chart.yaml ]; then
  step helm "helm chart" helm_chart
fi

# --- Prometheus rules and dashboards (only once they exist) ------------------------------------
shopt -s nullglob
rule_files=(dashboards/*.yaml dashboards/*.yml)
rule_tests=(dashboards/tests/*.yaml dashboards/tests/*.yml)
shopt -u nullglob
if [ "${#rule_files[@]}" -gt 0 ]; then
  step rules "promtool check rules" promtool check rules "${rule_files[@]}"
fi
if [ "${#rule_tests[@]}" -gt 0 ]; then
  step rules-test "promtool test rules" promtool test rules "${rule_tests[@]}"
fi
if [ -f scripts/check-dashboards.py ]; then
  step dashboards "dashboards" python3 scripts/check-dashboards.py
fi

# --- Supply chain and image --------------------------------------------------------------------
deny() {
  # cargo metadata wants every platform's manifests; this fetches them from crates.io if missing.
  cargo fetch --locked --quiet
  cargo deny --offline check
}
step deny "cargo deny" deny
if [ -f Dockerfile ]; then
  step hadolint "hadolint" hadolint Dockerfile
fi
