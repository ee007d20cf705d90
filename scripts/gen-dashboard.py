#!/usr/bin/env python3
"""Generates helm/meshkeeper/files/dashboards/meshkeeper.json, the Grafana dashboard (dashboards/meshkeeper.json links to it), from the panel list below.

Run it after changing a panel: python3 scripts/gen-dashboard.py. The test command checks that
the committed JSON is what this script produces and that every query parses.
"""
import json
import pathlib
import sys

DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'namespace=~"$namespace"'

panels = []
y = 0


def row(title):
    global y
    panels.append({"type": "row", "title": title, "collapsed": False, "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
    y += 1


def panel(kind, title, exprs, w, h, x, unit=None, legend=None, description="", mappings=None, thresholds=None):
    targets = []
    for i, e in enumerate(exprs):
        expr, leg = (e if isinstance(e, tuple) else (e, legend))
        t = {"datasource": DS, "expr": expr, "refId": chr(65 + i)}
        if leg:
            t["legendFormat"] = leg
        if kind == "table":
            t["format"] = "table"
            t["instant"] = True
        targets.append(t)
    p = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "targets": targets,
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {},
    }
    if unit:
        p["fieldConfig"]["defaults"]["unit"] = unit
    if mappings:
        p["fieldConfig"]["defaults"]["mappings"] = mappings
    if thresholds:
        p["fieldConfig"]["defaults"]["thresholds"] = {"mode": "absolute", "steps": thresholds}
    panels.append(p)
    return p


OKBAD = [{"type": "value", "options": {"0": {"text": "NO", "color": "red"}, "1": {"text": "OK", "color": "green"}}}]
RED_GREEN = [{"color": "red", "value": None}, {"color": "green", "value": 1}]

row("Overview")
panel("stat", "Control plane", [f"min(meshkeeper_control_plane_healthy{{{SEL}}})"], 4, 4, 0, mappings=OKBAD, thresholds=RED_GREEN,
      description="1 when every component is ready and the injector is healthy")
panel("stat", "Injector webhook", [f"min(meshkeeper_injector_webhook_healthy{{{SEL}}})"], 4, 4, 4, mappings=OKBAD, thresholds=RED_GREEN)
panel("stat", "Injector CA expires in", [f"min(meshkeeper_injector_ca_expiry_timestamp_seconds{{{SEL}}}) - time()"], 4, 4, 8, unit="s",
      thresholds=[{"color": "red", "value": None}, {"color": "orange", "value": 604800}, {"color": "green", "value": 2592000}])
panel("stat", "Gateway pinned", [f"min(meshkeeper_gateway_pinned{{{SEL}}})"], 4, 4, 12, mappings=OKBAD, thresholds=RED_GREEN)
panel("stat", "Namespaces not injected", [f'max(meshkeeper_namespaces{{{SEL}, state=~"missing|wrong_value"}})'], 4, 4, 16,
      thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 1}])
panel("stat", "Leaders", [f"sum(meshkeeper_leader{{{SEL}}})"], 4, 4, 20,
      thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}, {"color": "red", "value": 2}])
y += 4
panel("timeseries", "Findings by check and severity", [f"max by (check, severity) (meshkeeper_findings{{{SEL}}})"], 24, 7, 0,
      legend="{{check}} {{severity}}")
y += 7

row("Injection policy")
panel("timeseries", "Namespaces by state", [f"max by (state) (meshkeeper_namespaces{{{SEL}}})"], 12, 8, 0, legend="{{state}}")
panel("table", "Namespaces in scope without the label", [f"max by (namespace) (meshkeeper_namespace_injection_compliant{{{SEL}}}) == 0"], 12, 8, 12)
y += 8
panel("timeseries", "Label repairs", [f"sum by (result) (rate(meshkeeper_label_repairs_total{{{SEL}}}[$__rate_interval]))"], 24, 6, 0,
      unit="ops", legend="{{result}}")
y += 6

row("Sidecar coverage and re-injection")
panel("stat", "Sidecar coverage", [f"min(meshkeeper_sidecar_coverage_ratio{{{SEL}}})"], 4, 6, 0, unit="percentunit",
      thresholds=[{"color": "red", "value": None}, {"color": "orange", "value": 0.9}, {"color": "green", "value": 1}],
      description="Pods with a sidecar among those that should have one")
panel("timeseries", "Pods by sidecar state", [f'max by (state) (meshkeeper_pods{{{SEL}, state=~"injected|stale|missing|opted_out|host_network"}})'],
      10, 6, 4, legend="{{state}}")
panel("timeseries", "Proxy versions", [f"max by (version) (meshkeeper_proxy_versions{{{SEL}}})"], 10, 6, 14, legend="{{version}}")
y += 6
panel("timeseries", "Workloads waiting for re-injection, by reason", [f"max by (reason) (meshkeeper_workloads_pending_reinjection{{{SEL}}})"],
      10, 7, 0, legend="{{reason}}",
      description="Why workloads that need a restart do not get one now: the planner's wait, or a verdict (blocked, failed, no controller)")
panel("stat", "Rollouts in progress", [f"max(meshkeeper_rollouts_in_progress{{{SEL}}})"], 4, 7, 10)
panel("timeseries", "Restarts and evictions", [f"sum by (kind, result) (increase(meshkeeper_reinjections_total{{{SEL}}}[$__rate_interval]))"],
      10, 7, 14, legend="{{kind}} {{result}}")
y += 7

row("Control plane")
panel("timeseries", "Component ready", [f"min by (component) (meshkeeper_control_plane_component_ready{{{SEL}}})"], 12, 8, 0,
      legend="{{component}}")
panel("timeseries", "Available replicas", [f'min by (component) (meshkeeper_control_plane_component_replicas{{{SEL}, state="available"}})'],
      12, 8, 12, legend="{{component}}")
y += 8
panel("table", "Versions", [f"max by (component, version) (meshkeeper_control_plane_version_info{{{SEL}}})"], 12, 7, 0)
panel("timeseries", "Cluster capacity", [
    (f'max(meshkeeper_cluster_capacity{{{SEL}, resource="nodes"}})', "nodes"),
    (f'max(meshkeeper_cluster_capacity{{{SEL}, resource="cpu_cores"}})', "vCPU"),
    (f'max(meshkeeper_cluster_capacity{{{SEL}, resource="memory_bytes"}}) / 1e9', "memory GB"),
], 12, 7, 12)
y += 7

row("Gateway pin")
panel("timeseries", "Drift by field", [f"max by (field) (meshkeeper_gateway_drift{{{SEL}}})"], 12, 7, 0, legend="{{field}}")
panel("timeseries", "Repairs", [f"sum by (field, result) (rate(meshkeeper_gateway_repairs_total{{{SEL}}}[$__rate_interval]))"], 12, 7, 12,
      unit="ops", legend="{{field}} {{result}}")
y += 7

row("Agent")
panel("timeseries", "Watch events", [f"sum by (resource) (rate(meshkeeper_watch_events_total{{{SEL}}}[$__rate_interval]))"], 8, 7, 0,
      unit="ops", legend="{{resource}}")
panel("timeseries", "Watch restarts", [f"sum by (resource) (increase(meshkeeper_watch_restarts_total{{{SEL}}}[$__rate_interval]))"], 8, 7, 8,
      legend="{{resource}}")
panel("timeseries", "Evaluation time p99", [
    f"histogram_quantile(0.99, sum by (le, controller) (rate(meshkeeper_reconcile_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))"
], 8, 7, 16, unit="s", legend="{{controller}}")
y += 7
panel("timeseries", "Writes by result", [f"sum by (action, result) (rate(meshkeeper_actions_total{{{SEL}}}[$__rate_interval]))"], 8, 7, 0,
      unit="ops", legend="{{action}} {{result}}")
panel("timeseries", "Cached objects", [f"max by (resource) (meshkeeper_cache_objects{{{SEL}}})"], 8, 7, 8, legend="{{resource}}")
panel("timeseries", "Memory (RSS)", [f'process_resident_memory_bytes{{{SEL}, job=~".*meshkeeper.*"}}'], 8, 7, 16, unit="bytes",
      legend="{{pod}}")
y += 7

dashboard = {
    "uid": "meshkeeper",
    "title": "meshkeeper",
    "description": "Mesh health as meshkeeper sees it: control plane, injection policy, sidecar coverage and re-injection, gateway pin, and the agent itself.",
    "tags": ["istio", "meshkeeper"],
    "editable": True,
    "schemaVersion": 39,
    "version": 1,
    "refresh": "30s",
    "time": {"from": "now-6h", "to": "now"},
    "templating": {"list": [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"},
        {"name": "namespace", "type": "query", "datasource": DS, "label": "meshkeeper namespace",
         "query": {"query": "label_values(meshkeeper_build_info, namespace)", "refId": "ns"},
         "definition": "label_values(meshkeeper_build_info, namespace)", "includeAll": True, "multi": True, "refresh": 2},
    ]},
    "panels": panels,
}

out = pathlib.Path(__file__).resolve().parent.parent / "helm" / "meshkeeper" / "files" / "dashboards" / "meshkeeper.json"
text = json.dumps(dashboard, indent=2) + "\n"
if "--check" in sys.argv:
    if not out.exists() or out.read_text() != text:
        sys.exit(f"{out} is not what scripts/gen-dashboard.py generates: run it and commit the result")
else:
    out.write_text(text)
