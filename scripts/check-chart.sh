#!/usr/bin/env bash
# The Helm chart's checks: the "helm chart" step of scripts/test-all.sh, or alone (with the tools
# of scripts/install-tools.sh on PATH: `. .tools/env.sh`):
#
#   scripts/check-chart.sh [OUT_DIR]     # OUT_DIR keeps the rendered manifests (default: a temp dir)
#
#  1. helm lint --strict, with the default values and with every ci/*.yaml.
#  2. helm template of each, validated by kubernetes-validate --strict against every version in
#     K8S_VERSIONS (default "1.33.0 1.37.0"; kubernetes-validate 1.37.0 bundles both). It has no
#     schema for the CRD kinds (ServiceMonitor, PrometheusRule): those are checked against a
#     hand-written subset of the prometheus-operator CRDs below (the fields the chart renders,
#     unknown ones refused).
#  3. What the renderings must hold: restricted Pod Security Standard for every pod (the agent's
#     and the test hook's), the test hook running `meshkeeper check --config ...` with the
#     Deployment's ServiceAccount, ConfigMap and environment, image.digest winning over the tag,
#     the spread defaults for more than one replica (and user values replacing them), the
#     PrometheusRule's rules equal to files/meshkeeper.rules.yaml (plus additionalRuleLabels,
#     nothing else changed), one dashboard ConfigMap per files/dashboards/*.json holding that
#     JSON unchanged.
#  4. The fail guards: each bad combination makes helm template fail with its message; the good
#     ones (the same settings with the values they need) render.
#  5. A typo in config: fails at helm template (values.schema.json); agent/tests/chart_schema.rs
#     checks the schema against the agent key by key.
#  And the chart README's values table lists every value of values.yaml.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CHART=helm/meshkeeper
read -r -a VERSIONS <<<"${K8S_VERSIONS:-1.33.0 1.37.0}"
OUT="${1:-}"
if [ -z "$OUT" ]; then
  OUT="$(mktemp -d)"
  trap 'rm -rf "$OUT"' EXIT
fi
mkdir -p "$OUT"

for tool in helm kubernetes-validate python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "check-chart: $tool not on PATH (. .tools/env.sh)" >&2; exit 1; }
done
python3 -c 'import yaml, jsonschema' 2>/dev/null || {
  echo "check-chart: python3 lacks yaml/jsonschema (use .tools/venv: . .tools/env.sh)" >&2
  exit 1
}

# --- 1 and 2: lint, render, validate ----------------------------------------------------------
validate() {
  local file="$1" v
  for v in "${VERSIONS[@]}"; do
    echo "--- kubernetes-validate --strict -k $v $(basename "$file")"
    # --no-warn: the only warnings are "couldn't find schema" for the CRD kinds (checked below).
    kubernetes-validate --strict --quiet --no-warn -k "$v" "$file"
  done
}

echo "--- helm lint --strict (default values)"
helm lint --strict "$CHART"
echo "--- helm template (default values)"
helm template meshkeeper "$CHART" --namespace meshkeeper >"$OUT/default.yaml"
validate "$OUT/default.yaml"
renders=("$OUT/default.yaml")
for values in "$CHART"/ci/*.yaml; do
  name="$(basename "$values" .yaml)"
  echo "--- helm lint --strict -f $values"
  helm lint --strict "$CHART" -f "$values"
  echo "--- helm template -f $values"
  helm template meshkeeper "$CHART" --namespace meshkeeper -f "$values" >"$OUT/$name.yaml"
  validate "$OUT/$name.yaml"
  renders+=("$OUT/$name.yaml")
done
# The defaults with the monitoring objects on (off by default): the rules and dashboards as shipped.
helm template meshkeeper "$CHART" --namespace meshkeeper \
  --set prometheusRule.enabled=true,grafanaDashboards.enabled=true,serviceMonitor.enabled=true,replicaCount=2 \
  >"$OUT/monitoring.yaml"
validate "$OUT/monitoring.yaml"
renders+=("$OUT/monitoring.yaml")

# --- 3: what the renderings must hold ----------------------------------------------------------
echo "--- rendered objects: CRD subsets, restricted PSS, test hook, digest, spread, rules, dashboards"
python3 - "$CHART" "${renders[@]}" <<'PY'
import json, os, sys
import jsonschema, yaml

chart, files = sys.argv[1], sys.argv[2:]
problems = []

def docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if isinstance(d, dict)]

def obj(props, required=()):
    return {"type": "object", "additionalProperties": False, "properties": props, "required": list(required)}

string, boolean, smap = {"type": "string"}, {"type": "boolean"}, {"type": "object", "additionalProperties": {"type": "string"}}
duration = {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
metadata = obj({"name": string, "namespace": string, "labels": smap, "annotations": smap}, ["name"])
relabel = obj({"sourceLabels": {"type": "array", "items": string}, "separator": string, "targetLabel": string,
               "regex": string, "modulus": {"type": "integer"}, "replacement": string,
               "action": {"enum": ["replace", "Replace", "keep", "Keep", "drop", "Drop", "hashmod", "HashMod",
                                   "labelmap", "LabelMap", "labeldrop", "LabelDrop", "labelkeep", "LabelKeep",
                                   "lowercase", "Lowercase", "uppercase", "Uppercase", "keepequal", "KeepEqual",
                                   "dropequal", "DropEqual"]}})
# The fields of monitoring.coreos.com/v1 the chart renders, as the prometheus-operator CRDs type them.
crd = {
    "ServiceMonitor": obj({"apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": string, "metadata": metadata,
        "spec": obj({
            "selector": obj({"matchLabels": smap}, ["matchLabels"]),
            "namespaceSelector": obj({"matchNames": {"type": "array", "items": string}}),
            "endpoints": {"type": "array", "minItems": 1, "items": obj({
                "port": string, "path": string, "interval": duration, "scrapeTimeout": duration, "honorLabels": boolean,
                "relabelings": {"type": "array", "items": relabel}, "metricRelabelings": {"type": "array", "items": relabel}},
                ["port"])}}, ["selector", "endpoints"])}, ["apiVersion", "kind", "metadata", "spec"]),
    "PrometheusRule": obj({"apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": string, "metadata": metadata,
        "spec": obj({"groups": {"type": "array", "minItems": 1, "items": obj({
            "name": {"type": "string", "minLength": 1}, "interval": duration, "limit": {"type": "integer"},
            "rules": {"type": "array", "items": {**obj({
                "alert": string, "record": string, "expr": {"type": ["string", "integer"]}, "for": duration,
                "keep_firing_for": duration, "labels": smap, "annotations": smap}, ["expr"]),
                "oneOf": [{"required": ["alert"]}, {"required": ["record"]}]}}}, ["name", "rules"])}}, ["groups"])},
        ["apiVersion", "kind", "metadata", "spec"]),
}

def check_pss(where, spec):
    """The restricted Pod Security Standard (v1.33 / latest), plus a read-only root file system."""
    psc = spec.get("securityContext", {})
    for k in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(k):
            problems.append(f"{where}: {k}")
    allowed_volumes = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}
    for v in spec.get("volumes", []):
        kinds = set(v) - {"name"}
        if not kinds <= allowed_volumes:
            problems.append(f"{where}: volume {v['name']} of type {sorted(kinds)} is not allowed under restricted")
    for c in spec.get("initContainers", []) + spec.get("containers", []):
        sc, name = c.get("securityContext", {}), f"{where} container {c['name']}"
        if not (sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True):
            problems.append(f"{name}: runAsNonRoot is not true")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            problems.append(f"{name}: runAsUser 0")
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile {seccomp}")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []) or set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: capabilities {caps} (drop ALL, add at most NET_BIND_SERVICE)")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: readOnlyRootFilesystem is not true")

with open(os.path.join(chart, "files/meshkeeper.rules.yaml")) as f:
    source_groups = yaml.safe_load(f)["groups"]
dashboard_dir = os.path.join(chart, "files/dashboards")
dashboards = {n: json.load(open(os.path.join(dashboard_dir, n))) for n in sorted(os.listdir(dashboard_dir)) if n.endswith(".json")}

for path in files:
    render = os.path.basename(path)
    ds = docs(path)
    by_kind = {}
    for d in ds:
        by_kind.setdefault(d["kind"], []).append(d)
    values_file = os.path.join(chart, "ci", render)
    values = yaml.safe_load(open(values_file)) if os.path.exists(values_file) else {}

    for kind, schema in crd.items():
        for d in by_kind.get(kind, []):
            for e in jsonschema.Draft7Validator(schema).iter_errors(d):
                problems.append(f"{render}: {kind} {'/'.join(map(str, e.absolute_path))}: {e.message}")

    deploy = by_kind["Deployment"][0]
    pod = deploy["spec"]["template"]["spec"]
    check_pss(f"{render}: Deployment", pod)
    container = pod["containers"][0]

    image = values.get("image", {})
    if image.get("digest"):
        if not container["image"].endswith("@" + image["digest"]) or ":" + image.get("tag", "-") in container["image"]:
            problems.append(f"{render}: image {container['image']}: image.digest must win over the tag")

    replicas = deploy["spec"]["replicas"]
    spread = values.get("replicaSpreadDefaults", True) and replicas > 1
    for key, user in (("affinity", values.get("affinity")), ("topologySpreadConstraints", values.get("topologySpreadConstraints"))):
        if user:
            if pod.get(key) != user:
                problems.append(f"{render}: {key} is not the user's value")
        elif spread != (key in pod):
            problems.append(f"{render}: {key} {'missing' if spread else 'present'} with {replicas} replica(s)")
    if spread and not values.get("affinity"):
        term = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
        if term["labelSelector"]["matchLabels"] != deploy["spec"]["selector"]["matchLabels"]:
            problems.append(f"{render}: the default anti-affinity does not select the Deployment's pods")

    tests = [d for d in by_kind.get("Pod", []) if d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    if values.get("tests", {}).get("enabled", True) != bool(tests):
        problems.append(f"{render}: test hook Pods: {len(tests)}")
    for t in tests:
        spec = t["spec"]
        check_pss(f"{render}: test Pod", spec)
        c = spec["containers"][0]
        if c["args"][:3] != ["check", "--config", "/etc/meshkeeper/config.yaml"]:
            problems.append(f"{render}: test Pod args {c['args']}")
        if spec["serviceAccountName"] != pod["serviceAccountName"] or c["env"] != container["env"]:
            problems.append(f"{render}: the test Pod must use the Deployment's ServiceAccount and environment")
        cm = lambda s: [v["configMap"]["name"] for v in s["volumes"] if "configMap" in v]
        if cm(spec) != cm(pod) or c["image"] != container["image"] or spec.get("restartPolicy") != "Never":
            problems.append(f"{render}: the test Pod must mount the release's ConfigMap, run its image, never restart")
        if t["metadata"]["labels"]["app.kubernetes.io/name"] == deploy["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]:
            problems.append(f"{render}: the test Pod carries the Service's selector labels")

    for d in ds:
        labels = d["metadata"].get("labels", {})
        if labels.get("app.kubernetes.io/part-of") != "meshkeeper" or "app.kubernetes.io/component" not in labels:
            problems.append(f"{render}: {d['kind']} {d['metadata']['name']} lacks part-of/component labels")

    extra = values.get("prometheusRule", {}).get("additionalRuleLabels", {})
    for rule_obj in by_kind.get("PrometheusRule", []):
        groups = rule_obj["spec"]["groups"]
        want = json.loads(json.dumps(source_groups))
        for g in want:
            for r in g["rules"]:
                if extra:
                    r["labels"] = {**r.get("labels", {}), **extra}
        if groups != want:
            problems.append(f"{render}: the PrometheusRule's groups differ from files/meshkeeper.rules.yaml (+ additionalRuleLabels {extra})")
        else:
            n = sum(len(g["rules"]) for g in groups)
            print(f"{render}: PrometheusRule holds the {n} rules of {len(groups)} group(s) of files/meshkeeper.rules.yaml unchanged"
                  + (f", plus labels {extra}" if extra else ""))

    gd = values.get("grafanaDashboards", {})
    cms = [d for d in by_kind.get("ConfigMap", []) if d["metadata"]["labels"].get("app.kubernetes.io/component") == "monitoring"]
    if cms:
        got = {k: json.loads(v) for d in cms for k, v in d["data"].items()}
        if got != dashboards:
            problems.append(f"{render}: dashboard ConfigMaps hold {sorted(got)} != files/dashboards {sorted(dashboards)} (or their JSON differs)")
        for d in cms:
            label, value = gd.get("label", "grafana_dashboard"), gd.get("labelValue", "1")
            if d["metadata"]["labels"].get(label) != value:
                problems.append(f"{render}: {d['metadata']['name']} lacks the label {label}={value}")
            folder = gd.get("folder", "meshkeeper")
            if folder and d["metadata"].get("annotations", {}).get(gd.get("folderAnnotation", "grafana_folder")) != folder:
                problems.append(f"{render}: {d['metadata']['name']} lacks the folder annotation")
        print(f"{render}: {len(cms)} dashboard ConfigMap(s) hold files/dashboards/*.json unchanged")

if problems:
    print("\n".join(["rendered chart problems:"] + problems), file=sys.stderr)
    sys.exit(1)
print(f"checked {len(files)} renderings")
PY

# The chart README's values table lists every value of values.yaml, and nothing else.
echo "--- helm/meshkeeper/README.md lists every value"
python3 - "$CHART" <<'PY'
import re, sys
import yaml

chart = sys.argv[1]
values = yaml.safe_load(open(f"{chart}/values.yaml"))
readme = open(f"{chart}/README.md").read()
documented = set(re.findall(r"^\| `([a-zA-Z][a-zA-Z0-9.]*)` \|", readme, re.M)) - {"RUST_LOG"}
documented = {d for d in documented if not d.startswith("MESHKEEPER_")}
opaque = {"config", "resources", "podSecurityContext", "securityContext"}  # one row each

def keys(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict) and v and k not in opaque:
            yield from keys(v, f"{prefix}{k}.")
        else:
            yield prefix + k

have = set(keys(values))
missing, extra = sorted(have - documented), sorted(documented - have)
if missing or extra:
    sys.exit(f"README.md values table: missing {missing}, not in values.yaml {extra}")
print(f"{len(have)} values, each documented")
PY

# --- 4: fail guards ---------------------------------------------------------------------------
render() { helm template meshkeeper "$CHART" --namespace meshkeeper "$@" 2>&1 >/dev/null; }

# must_fail "MESSAGE PART" ARGS...: helm template fails, and its error holds the message.
must_fail() {
  local want="$1" out
  shift
  if out="$(render "$@")"; then
    echo "FAIL: helm template $* rendered, expected: $want" >&2
    return 1
  fi
  if [[ "$out" != *"$want"* ]]; then
    printf 'FAIL: helm template %s failed without the expected message\n  expected: %s\n  got: %s\n' "$*" "$want" "$out" >&2
    return 1
  fi
  echo "ok (refused): $* -> ...${want:0:90}..."
}

must_pass() {
  local out
  if ! out="$(render "$@")"; then
    printf 'FAIL: helm template %s was refused:\n%s\n' "$*" "$out" >&2
    return 1
  fi
  echo "ok (renders): $*"
}

echo "--- fail guards: settings that must agree"
must_fail "config.injection.mode is enforce, but rbac.injectionEnforce is false" --set config.injection.mode=enforce
must_pass --set config.injection.mode=enforce,rbac.injectionEnforce=true
must_pass --set config.injection.mode=enforce,rbac.create=false
must_fail "config.gateway.repair is true (gateway mode manual), but rbac.gatewayRepair.enabled is false" \
  --set config.gateway.repair=true
must_pass --set config.gateway.repair=true,rbac.gatewayRepair.enabled=true
must_fail "config.gateway.namespace is unset (the asm-onprem profile's default istio-system) but rbac.gatewayRepair.namespace is gateways" \
  --set config.gateway.repair=true,rbac.gatewayRepair.enabled=true,rbac.gatewayRepair.namespace=gateways
must_fail "config.gateway.service is edge-gateway but rbac.gatewayRepair.service is istio-ingressgateway" \
  --set config.gateway.repair=true,rbac.gatewayRepair.enabled=true,config.gateway.service=edge-gateway
must_pass --set config.gateway.repair=true,rbac.gatewayRepair.enabled=true,config.gateway.namespace=gateways,rbac.gatewayRepair.namespace=gateways
# The istiod profile's gateway check is off: repair does nothing, needs nothing.
must_pass --set config.profile=istiod,config.gateway.repair=true
must_fail "config.gateway.repair is true (gateway mode manual)" --set config.profile=istiod,config.gateway.mode=manual,config.gateway.repair=true
must_fail "config.reinjection.mode is enforce, but rbac.reinjection.enforce is false" --set config.reinjection.mode=enforce
must_pass --set config.reinjection.mode=enforce,rbac.reinjection.enforce=true
must_fail "config.reinjection.evict_on_delete is true (with config.reinjection.mode enforce), but rbac.reinjection.evict is false" \
  --set config.reinjection.mode=enforce,rbac.reinjection.enforce=true,config.reinjection.evict_on_delete=true
must_pass --set config.reinjection.mode=enforce,rbac.reinjection.enforce=true,config.reinjection.evict_on_delete=true,rbac.reinjection.evict=true
# In audit mode nothing is evicted.
must_pass --set config.reinjection.evict_on_delete=true
must_fail "config.control_plane.namespace is mesh-system but rbac.reinjection.namespace is istio-system" \
  --set config.control_plane.namespace=mesh-system
must_pass --set config.control_plane.namespace=mesh-system,rbac.reinjection.namespace=mesh-system
# With re-injection off the injector's ConfigMap is not read.
must_pass --set config.control_plane.namespace=mesh-system,config.reinjection.mode=off
must_fail "The agent reads the injector's ConfigMap injector-config, but rbac.reinjection.injectorConfigMap is istio-sidecar-injector" \
  --set config.reinjection.injector_configmap=injector-config
must_fail "The agent reads the injector's ConfigMap istio-sidecar-injector-asm-1 (with config.injection.label istio.io/rev=asm-1" \
  --set config.injection.label=istio.io/rev=asm-1
must_pass --set config.injection.label=istio.io/rev=asm-1,rbac.reinjection.injectorConfigMap=istio-sidecar-injector-asm-1
must_fail "replicaCount is 2 but config.leader_election.enabled is false" \
  --set replicaCount=2,config.leader_election.enabled=false
must_pass --set replicaCount=2
must_pass --set config.leader_election.enabled=false
must_fail "config.http.listen is 0.0.0.0:8080, but the container port, the liveness/readiness probes and the Service's targetPort are 9090" \
  --set config.http.listen=0.0.0.0:8080
must_fail "config.http.listen is 127.0.0.1:9090: the kubelet's probes and Prometheus connect to the pod IP" \
  --set config.http.listen=127.0.0.1:9090
must_pass --set 'config.http.listen=[::]:9090'
must_fail "config.leader_election.lease_name is set, but the chart sets it through the environment" \
  --set config.leader_election.lease_name=other
must_fail "serviceMonitor.scrapeTimeout (1m) is longer than serviceMonitor.interval (30s)" \
  --set serviceMonitor.enabled=true,serviceMonitor.scrapeTimeout=1m
must_pass --set serviceMonitor.enabled=true,serviceMonitor.interval=1m30s,serviceMonitor.scrapeTimeout=1m
must_fail "prometheusRule.additionalRuleLabels.severity would replace the label severity=" \
  --set prometheusRule.enabled=true,prometheusRule.additionalRuleLabels.severity=page
must_fail "meshkeeper: 3 setting(s) do not agree" \
  --set config.injection.mode=enforce,config.reinjection.mode=enforce,config.gateway.repair=true

# --- 5: a typo in config fails at render time -------------------------------------------------
echo "--- values.schema.json: a typo or a bad value in config fails at helm template"
must_fail "Additional property mdoe is not allowed" --set config.injection.mdoe=enforce
must_fail "config.injection.label: Does not match pattern" --set config.injection.label=istio-injection=true
must_fail "config.resync_seconds: Must be greater than or equal to 10" --set config.resync_seconds=5
must_fail "config.gateway.mode: config.gateway.mode must be one of the following" --set config.gateway.mode=loadbalancer
echo "chart checks passed"
