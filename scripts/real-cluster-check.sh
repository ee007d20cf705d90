#!/usr/bin/env bash
# The issue-9 scenarios against a real cluster (any API server in $KUBECONFIG, e.g. a scratch
# v1.36 control plane), with real kubectl, printing what it measured:
#
#   1. a freshly created gateway Service (NodePort, no nodePorts: the server allocates random
#      ones) is fully pinned with one patch, no contest, no error; a later `kubectl patch` of a
#      nodePort is undone within 1 s;
#   2. an idle agent makes zero watch restarts and zero LISTs over IDLE_SECONDS (default 120);
#   3. an agent whose Lease namespace does not exist keeps running as a follower and says why;
#   4. (MK_REINJECTION=1, needs a working Istio injector, istio-injection=enabled) a Deployment
#      started before its namespace was labelled is restarted once and gets the sidecar, under
#      the RBAC the chart renders for rbac.reinjection.enforce=true (apply it for the agent's
#      identity yourself, or run as admin).
#   5. `check --pre` (before an install): the version is the server's own and judged by
#      precheck.kubernetes_versions, the report's exit code is the process's, the admin has the
#      four rights, the node count is what kubectl sees (Ready, not cordoned), and a
#      ServiceAccount without RBAC gets the four PermissionDenied with the guide's
#      clusterrolebinding hint, its refused lists skipped (exit 1, not 2), no Debug output.
#   (On kube-sim: `cargo run -p kube-sim -- --seed empty --kubeconfig F`, then KUBECONFIG=F.)
#   6. (issue 13) two replicas: the leader SIGKILLed, then the next one SIGTERMed; sampled every
#      100 ms: never two leaders, takeover within lease duration + retry period after SIGKILL and
#      within 2 s after SIGTERM.
#   7. (issue 13; only with MK_OUTAGE_DOWN and MK_OUTAGE_UP, commands that stop and start your
#      API server, e.g. `docker stop kube-apiserver`) an outage of OUTAGE_SECONDS (30): the
#      requests the agent sent meanwhile (no hot loop), /readyz during it, and how soon a label
#      removed during the outage is restored after the server answers again (want <= 5 s).
#
# Usage: KUBECONFIG=... scripts/real-cluster-check.sh [--keep]
#   MK_BIN=path      the meshkeeper binary (default: cargo build --release, target/release)
#   MK_NS=name       scratch namespace (default: mk-check; created and deleted)
#   MK_PROFILE=p     the profile of scenario 4 (asm-onprem or istiod)
#   IDLE_SECONDS=n   length of the idle window of scenario 2 (default 120)
#
# It never touches anything but MK_NS (and leaves it when --keep is given). Exit 0 when every
# scenario held, 1 otherwise. NB: MESHKEEPER_* variables are configuration to the agent, so the
# script's own knobs are named MK_*.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NS="${MK_NS:-mk-check}"
IDLE="${IDLE_SECONDS:-120}"
KEEP=0
[ "${1:-}" = "--keep" ] && KEEP=1
for tool in kubectl curl python3; do
  command -v "$tool" >/dev/null || { echo "real-cluster-check: $tool is required" >&2; exit 2; }
done
if [ -z "${MK_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --quiet -p meshkeeper)
  MK_BIN="$ROOT/target/release/meshkeeper"
fi
for v in $(env | grep -o '^MESHKEEPER_[A-Z0-9_]*' || true); do unset "$v"; done

WORK="$(mktemp -d)"
PIDS=()
FAILED=0
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  if [ "$KEEP" = 0 ]; then kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
say() { printf '\n=== %s\n' "$*"; }
pass() { printf 'PASS  %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; FAILED=1; }
now_ms() { python3 -c 'import time; print(int(time.time()*1000))'; }

# metric ADDR SERIES: the value of one series (empty when absent).
metric() { curl -fs "http://$1/metrics" | awk -v s="$2" '$1 == s { print $2 }' | head -1; }
# sum ADDR PREFIX: the sum of every series of a family.
sum() { curl -fs "http://$1/metrics" | awk -v p="$2" 'index($1, p) == 1 { t += $2 } END { print t + 0 }'; }
status_field() { curl -fs "http://$1/status" | python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$2"; }

# start NAME CONFIG: runs the agent, waits until it listens; sets ADDR.
start() {
  local name="$1" log="$WORK/$1.log"
  printf '%s' "$2" >"$WORK/$name.yaml"
  "$MK_BIN" run --config "$WORK/$name.yaml" --log-format json >/dev/null 2>"$log" &
  PIDS+=("$!")
  for _ in $(seq 1 200); do
    ADDR="$(python3 - "$log" <<'PY' 2>/dev/null || true
import json, sys
for line in open(sys.argv[1]):
    try:
        v = json.loads(line)
    except ValueError:
        continue
    if "listen" in v:
        print(v["listen"]); break
PY
)"
    [ -n "$ADDR" ] && return 0
    sleep 0.1
  done
  echo "meshkeeper ($name) did not start:"; cat "$log"; exit 1
}

wait_ready() {
  for _ in $(seq 1 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$1/readyz")" = 200 ] && return 0
    sleep 0.1
  done
  fail "not ready within 30 s: $(curl -s "http://$1/readyz")"
  return 1
}

kubectl create namespace "$NS" >/dev/null 2>&1 || true
echo "cluster: $(kubectl version -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])' || echo unknown)"

CONFIG="http:
  listen: 127.0.0.1:0
leader_election:
  namespace: $NS
injection:
  mode: audit
control_plane:
  enabled: false
gateway:
  mode: manual
  namespace: $NS
  repair: true
"

say "1. a fresh gateway Service is pinned with one patch; a later kubectl patch is undone"
start agent "$CONFIG"
wait_ready "$ADDR"
for _ in $(seq 1 100); do [ "$(status_field "$ADDR" 'd["role"]')" = leader ] && break; sleep 0.1; done
kubectl -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata:
  name: istio-ingressgateway
spec:
  type: NodePort
  selector: {app: mk-check-none}
  ports:
    - {name: status-port, port: 15020}
    - {name: http2, port: 80}
    - {name: https, port: 443}
    - {name: tcp, port: 31400}
    - {name: https-kiali, port: 15029}
    - {name: https-prometheus, port: 15030}
    - {name: https-grafana, port: 15031}
    - {name: https-tracing, port: 15032}
    - {name: tls, port: 15443}
EOF
pinned() {
  kubectl -n "$NS" get svc istio-ingressgateway -o json | python3 -c '
import json, sys
want = {"status-port": 30391, "http2": 31380, "https": 31390, "tcp": 31400, "https-kiali": 31073,
        "https-prometheus": 30253, "https-grafana": 30050, "https-tracing": 31204, "tls": 30158}
ports = {p["name"]: p.get("nodePort") for p in json.load(sys.stdin)["spec"]["ports"]}
sys.exit(0 if all(ports.get(k) == v for k, v in want.items()) else 1)'
}
T0=$(now_ms)
for _ in $(seq 1 100); do pinned && break; sleep 0.1; done
if pinned; then pass "all nine nodePorts pinned $(( $(now_ms) - T0 )) ms after the Service was created"; else fail "not pinned within 10 s"; fi
OK=$(metric "$ADDR" 'meshkeeper_actions_total{action="gateway_pin",result="success"}')
# (the counters exist at 0 from the start: only a non-zero one is bad)
BAD=$(curl -fs "http://$ADDR/metrics" | grep -E '^meshkeeper_actions_total\{action="gateway_pin",result="(conflict|error)"\}' | awk '$2 != 0' || true)
CONTESTED=$(status_field "$ADDR" 'any(f["reason"] == "RepairContested" for f in d["findings"])')
[ "${OK:-0}" = 1 ] && pass "one patch (gateway_pin success = 1)" || fail "gateway_pin success = ${OK:-0} (want 1)"
[ -z "$BAD" ] && pass "no conflict, no error" || fail "$BAD"
[ "$CONTESTED" = False ] && pass "no RepairContested" || fail "RepairContested reported"
BEFORE=$(metric "$ADDR" 'meshkeeper_gateway_repairs_total{field="node_port:http2",result="success"}')
kubectl -n "$NS" patch svc istio-ingressgateway -p '{"spec":{"ports":[{"port":80,"nodePort":32080}]}}' >/dev/null
T0=$(now_ms)
for _ in $(seq 1 200); do
  [ "$(metric "$ADDR" 'meshkeeper_gateway_repairs_total{field="node_port:http2",result="success"}')" != "$BEFORE" ] && break
  sleep 0.02
done
T=$(( $(now_ms) - T0 ))
if pinned && [ "$T" -lt 1000 ]; then pass "kubectl patch of http2 undone ${T} ms after kubectl returned"; else fail "kubectl patch not undone within 1 s (${T} ms)"; fi

say "2. an idle agent: no watch restart, no LIST for ${IDLE} s"
R0=$(sum "$ADDR" meshkeeper_watch_restarts_total)
L0=$(sum "$ADDR" meshkeeper_watch_lists_total)
sleep "$IDLE"
R1=$(sum "$ADDR" meshkeeper_watch_restarts_total)
L1=$(sum "$ADDR" meshkeeper_watch_lists_total)
[ "$R0" = "$R1" ] && pass "watch restarts: $R0 -> $R1" || fail "watch restarts: $R0 -> $R1"
[ "$L0" = "$L1" ] && pass "LISTs by the watches: $L0 -> $L1" || fail "LISTs by the watches: $L0 -> $L1"

say "3. without its namespace the agent keeps running and says why it cannot lead"
MISSING="mk-missing-$RANDOM"
start orphan "http:
  listen: 127.0.0.1:0
leader_election:
  namespace: $MISSING
control_plane:
  enabled: false
gateway:
  mode: off
"
ORPHAN="$ADDR"
FOUND=""
for _ in $(seq 1 100); do
  FOUND=$(status_field "$ORPHAN" '[f["message"] for f in d["findings"] if f["reason"] == "LeaseNamespaceMissing"]' 2>/dev/null || true)
  [ -n "$FOUND" ] && [ "$FOUND" != "[]" ] && break
  sleep 0.1
done
ROLE=$(status_field "$ORPHAN" 'd["role"]')
if [ -n "$FOUND" ] && [ "$FOUND" != "[]" ] && [ "$ROLE" = follower ]; then
  pass "still running as $ROLE; $FOUND"
else
  fail "role $ROLE, LeaseNamespaceMissing: $FOUND"
fi
grep -q 'Status {' "$WORK/orphan.log" && fail "Debug output in the logs" || pass "errors are one readable line (no Debug output in the logs)"

if [ "${MK_REINJECTION:-0}" = 1 ]; then
  say "4. a Deployment that predates injection is restarted once and gets the sidecar"
  APP_NS="${NS}-app"
  kubectl create namespace "$APP_NS" >/dev/null 2>&1 || true
  kubectl -n "$APP_NS" create deployment web --image=registry.k8s.io/pause:3.9 --replicas=2 >/dev/null
  kubectl -n "$APP_NS" rollout status deployment web --timeout=120s >/dev/null
  kubectl label namespace "$APP_NS" istio-injection=enabled --overwrite >/dev/null
  start reinject "profile: ${MK_PROFILE:-asm-onprem}
http:
  listen: 127.0.0.1:0
leader_election:
  namespace: $NS
injection:
  mode: audit
gateway:
  mode: off
reinjection:
  mode: enforce
"
  T0=$(now_ms)
  OK=0
  for _ in $(seq 1 600); do
    if kubectl -n "$APP_NS" get pods -l app=web -o json | python3 -c '
import json, sys
pods = [p for p in json.load(sys.stdin)["items"] if not p["metadata"].get("deletionTimestamp")]
sys.exit(0 if pods and all(any(c["name"] == "istio-proxy" for c in p["spec"]["containers"] + p["spec"].get("initContainers", [])) for p in pods) else 1)'; then OK=1; break; fi
    sleep 0.2
  done
  [ "$OK" = 1 ] && pass "web re-injected $(( $(now_ms) - T0 )) ms after the agent started" || fail "web not re-injected within 2 min"
  N=$(metric "$ADDR" 'meshkeeper_reinjections_total{kind="deployment",result="success"}')
  [ "${N:-0}" = 1 ] && pass "restarted once" || fail "restarts: ${N:-0}"
  kubectl delete namespace "$APP_NS" --wait=false >/dev/null 2>&1 || true
fi

say "5. check --pre, as the admin and as a user without cluster-admin"
# pre_json KUBECONFIG CONFIG OUT: runs check --pre -o json; the exit code goes to OUT.code.
pre_json() {
  printf '%s' "$2" >"$WORK/pre.yaml"
  set +e
  KUBECONFIG="$1" "$MK_BIN" check --pre -o json --config "$WORK/pre.yaml" >"$3" 2>"$3.err"
  echo $? >"$3.code"
  set -e
}
# pre_field OUT EXPR: a Python expression over the report `d` and its items `items`.
pre_field() {
  python3 - "$1" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
items = [i for c in d["checks"] for i in c["items"]]
findings = [i for i in items if i["outcome"] == "finding"]
print(eval(sys.argv[2]))
PY
}
SERVER_VERSION=$(kubectl version -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])' || echo unknown)
ADMIN_KC="${KUBECONFIG:-$HOME/.kube/config}"
pre_json "$ADMIN_KC" "" "$WORK/pre-default.json"
CODE=$(cat "$WORK/pre-default.json.code")
[ "$(pre_field "$WORK/pre-default.json" 'd["exit_code"]')" = "$CODE" ] && pass "exit code $CODE is the report's" || fail "exit code $CODE, report says $(pre_field "$WORK/pre-default.json" 'd["exit_code"]')"
VERSION_ITEM=$(pre_field "$WORK/pre-default.json" 'next((i["description"] for i in items if i["description"].startswith("Kubernetes version")), "")')
case "$VERSION_ITEM" in
  *"$SERVER_VERSION"*) pass "version item: $VERSION_ITEM" ;;
  *) fail "version item '$VERSION_ITEM' does not name $SERVER_VERSION" ;;
esac
MINOR=$(printf '%s' "$SERVER_VERSION" | sed -E 's/^v?([0-9]+)\.([0-9]+).*/\1.\2/')
pre_json "$ADMIN_KC" "precheck:
  kubernetes_versions: \"$MINOR\"
" "$WORK/pre-admin.json"
UNSUPPORTED=$(pre_field "$WORK/pre-admin.json" 'sum(f["reason"] == "KubernetesVersionUnsupported" for f in findings)')
[ "$UNSUPPORTED" = 0 ] && pass "precheck.kubernetes_versions=$MINOR admits $SERVER_VERSION" || fail "$SERVER_VERSION not admitted by $MINOR"
DENIED=$(pre_field "$WORK/pre-admin.json" 'sum(f["reason"] == "PermissionDenied" for f in findings)')
[ "$DENIED" = 0 ] && pass "the admin has the four rights" || fail "the admin is denied $DENIED right(s): $(pre_field "$WORK/pre-admin.json" '[f["message"] for f in findings if f["reason"] == "PermissionDenied"]')"
WANT_NODES=$(kubectl get nodes -o json | python3 -c '
import json, sys
nodes = json.load(sys.stdin)["items"]
ready = lambda n: any(c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))
print(sum(1 for n in nodes if ready(n) and not n.get("spec", {}).get("unschedulable")))')
GOT_NODES=$(pre_field "$WORK/pre-admin.json" 'next((i.get("actual") or i["description"] for i in items if "schedulable, Ready nodes" in i["description"]), "")')
case "$GOT_NODES" in
  *"($WANT_NODES)"|"$WANT_NODES schedulable"*) pass "schedulable, Ready nodes: $WANT_NODES, as kubectl sees them ($GOT_NODES)" ;;
  *) fail "schedulable, Ready nodes: kubectl sees $WANT_NODES, check --pre says '$GOT_NODES'" ;;
esac
if kubectl get namespace istio-system >/dev/null 2>&1; then
  pass "istio-system exists: $(pre_field "$WORK/pre-admin.json" 'next((i.get("message") or i["description"] for i in items if i["description"].endswith("a clean install")), "")')"
else
  CLEAN=$(pre_field "$WORK/pre-admin.json" 'any(i["description"] == "istio-system does not exist yet: a clean install" and i["outcome"] == "pass" for i in items)')
  [ "$CLEAN" = True ] && pass "no istio-system: a clean install" || fail "no istio-system, but no clean-install pass"
fi
# A user without cluster-admin: a ServiceAccount of MK_NS with no RBAC at all.
kubectl -n "$NS" create serviceaccount mk-installer >/dev/null 2>&1 || true
if TOKEN=$(kubectl -n "$NS" create token mk-installer 2>&1); then
  kubectl config view --minify --raw >"$WORK/installer.kubeconfig"
  KUBECONFIG="$WORK/installer.kubeconfig" kubectl config set-credentials mk-installer --token="$TOKEN" >/dev/null
  KUBECONFIG="$WORK/installer.kubeconfig" kubectl config set-context --current --user=mk-installer >/dev/null
  pre_json "$WORK/installer.kubeconfig" "precheck:
  kubernetes_versions: \"$MINOR\"
" "$WORK/pre-user.json"
  CODE=$(cat "$WORK/pre-user.json.code")
  [ "$CODE" = 1 ] && pass "without cluster-admin: exit 1" || fail "without cluster-admin: exit $CODE ($(cat "$WORK/pre-user.json.err"))"
  HINTED=$(pre_field "$WORK/pre-user.json" 'sum(f["reason"] == "PermissionDenied" and "kubectl create clusterrolebinding cluster-admin-binding --clusterrole=cluster-admin" in f["hint"] for f in findings)')
  [ "$HINTED" = 4 ] && pass "four PermissionDenied, each with the guide's clusterrolebinding command" || fail "PermissionDenied with the hint: $HINTED (want 4)"
  SKIPPED=$(pre_field "$WORK/pre-user.json" '[i["reason"] for i in items if i["outcome"] == "skipped"][:1]')
  case "$SKIPPED" in
    *"403 Forbidden"*) pass "refused lists skipped with the server's answer: $SKIPPED" ;;
    *) fail "no refused list reported as skipped: $SKIPPED" ;;
  esac
  grep -q 'Status {' "$WORK/pre-user.json" "$WORK/pre-user.json.err" && fail "Debug output in check --pre" || pass "check --pre errors are one readable line"
else
  fail "cannot create a token for $NS/mk-installer: $TOKEN"
fi

say "6. two replicas: the leader SIGKILLed, the next one SIGTERMed; never two leaders"
# le_config IDENTITY: replicas on one machine share a hostname, so each gets its own identity.
le_config() {
  printf '%s' "http:
  listen: 127.0.0.1:0
leader_election:
  namespace: $NS
  identity: $1
  lease_name: mk-failover
  lease_duration_seconds: 15
  retry_period_seconds: 2
injection:
  mode: audit
control_plane:
  enabled: false
gateway:
  mode: off
"
}
start rep-a "$(le_config rep-a)"; A_ADDR="$ADDR"; A_PID="${PIDS[-1]}"
start rep-b "$(le_config rep-b)"; B_ADDR="$ADDR"; B_PID="${PIDS[-1]}"
wait_ready "$A_ADDR"; wait_ready "$B_ADDR"
leaders() { local n=0 a; for a in "$@"; do [ "$(metric "$a" meshkeeper_leader)" = 1 ] && n=$((n + 1)); done; echo "$n"; }
# failover SIGNAL: signals the current leader, samples every 100 ms until the other leads.
failover() {
  local sig="$1" leader other lpid t0 n max=0
  for _ in $(seq 1 300); do [ "$(leaders "$A_ADDR" "$B_ADDR")" = 1 ] && break; sleep 0.1; done
  if [ "$(metric "$A_ADDR" meshkeeper_leader)" = 1 ]; then leader="$A_ADDR"; other="$B_ADDR"; lpid="$A_PID"; else leader="$B_ADDR"; other="$A_ADDR"; lpid="$B_PID"; fi
  t0=$(now_ms)
  kill "-$sig" "$lpid"
  for _ in $(seq 1 400); do
    n=$(leaders "$other"); [ "$n" -gt "$max" ] && max=$n
    [ "$(metric "$other" meshkeeper_leader)" = 1 ] && break
    sleep 0.1
  done
  TAKEOVER_MS=$(( $(now_ms) - t0 ))
  NEW_LEADER="$other"
}
failover KILL
[ "$TAKEOVER_MS" -le 17500 ] && pass "SIGKILL: the other took over after $TAKEOVER_MS ms (bound: lease 15 s + retry 2 s + sampling)" || fail "SIGKILL: takeover after $TAKEOVER_MS ms"
start rep-c "$(le_config rep-c)"; C_ADDR="$ADDR"; C_PID="${PIDS[-1]}"
wait_ready "$C_ADDR"
if [ "$NEW_LEADER" = "$A_ADDR" ]; then B_ADDR="$C_ADDR"; B_PID="$C_PID"; else A_ADDR="$C_ADDR"; A_PID="$C_PID"; fi
TWO=0
for _ in $(seq 1 30); do [ "$(leaders "$A_ADDR" "$B_ADDR")" -gt 1 ] && TWO=1; sleep 0.1; done
failover TERM
[ "$TAKEOVER_MS" -le 2500 ] && pass "SIGTERM: the other took over after $TAKEOVER_MS ms" || fail "SIGTERM: takeover after $TAKEOVER_MS ms (want <= 2 s)"
[ "$TWO" = 0 ] && pass "never two leaders in the samples" || fail "two leaders seen"

if [ -n "${MK_OUTAGE_DOWN:-}" ] && [ -n "${MK_OUTAGE_UP:-}" ]; then
  say "7. the API server down for ${OUTAGE_SECONDS:-30} s"
  OUT_NS="$NS-outage"
  kubectl create namespace "$OUT_NS" >/dev/null 2>&1 || true
  kubectl label namespace "$OUT_NS" istio-injection=enabled --overwrite >/dev/null
  start outage "http:
  listen: 127.0.0.1:0
leader_election:
  namespace: $NS
  lease_name: mk-outage
injection:
  mode: enforce
control_plane:
  enabled: false
gateway:
  mode: off
"
  wait_ready "$ADDR"
  for _ in $(seq 1 200); do [ "$(status_field "$ADDR" 'd["role"]')" = leader ] && break; sleep 0.1; done
  BEFORE=$(sum "$ADDR" meshkeeper_kube_requests_total)
  sh -c "$MK_OUTAGE_DOWN"
  T_DOWN=$(now_ms)
  sleep 3
  READYZ=$(curl -s "http://$ADDR/readyz")
  sleep $(( ${OUTAGE_SECONDS:-30} - 3 ))
  SENT=$(( $(sum "$ADDR" meshkeeper_kube_requests_total) - BEFORE ))
  sh -c "$MK_OUTAGE_UP"
  for _ in $(seq 1 600); do kubectl get --raw /readyz >/dev/null 2>&1 && break; sleep 0.1; done
  T_UP=$(now_ms)
  kubectl label namespace "$OUT_NS" istio-injection- >/dev/null
  for _ in $(seq 1 300); do
    [ "$(kubectl get namespace "$OUT_NS" -o jsonpath='{.metadata.labels.istio-injection}')" = enabled ] && break
    sleep 0.1
  done
  RECOVERY=$(( $(now_ms) - T_UP ))
  echo "requests during the outage: $SENT in $(( (T_UP - T_DOWN) / 1000 )) s; /readyz 3 s in: $READYZ"
  [ "$RECOVERY" -le 5000 ] && pass "a label removed as the server came back restored after $RECOVERY ms" || fail "label restored after $RECOVERY ms (want <= 5 s)"
  kubectl delete namespace "$OUT_NS" --wait=false >/dev/null 2>&1 || true
fi

say "summary"
[ "$FAILED" = 0 ] && echo "every scenario held" || echo "some scenarios FAILED"
exit "$FAILED"
