#!/usr/bin/env python3
"""Generates helm/meshkeeper/files/dashboards/meshkeeper.json, the Grafana dashboard (the chart ships
it; dashboards/meshkeeper.json links to it), with Grafana's own foundation SDK (PyPI
grafana-foundation-sdk, pinned in scripts/install-tools.sh, which installs it into .tools/venv).

Run it from the project's venv after changing a panel, and commit the JSON it writes:

    ./scripts/install-tools.sh                              # once: creates .tools/venv
    .tools/venv/bin/python scripts/gen-dashboard.py         # rewrites the JSON
    .tools/venv/bin/python scripts/gen-dashboard.py --check # exit 1 if the committed JSON differs

The output is deterministic (fixed panel ids, sorted keys). scripts/check-dashboards.py runs the
`--check` and checks every query (variables, labels, metric names, PromQL syntax).

Query rules (they hold under a ServiceMonitor scrape, where job is the Service name and the
target labels are namespace/pod/service/endpoint/container, and under annotation-based scraping,
where job is e.g. "kubernetes-pods" and the target labels are namespace/pod):
- every selector carries exactly cluster=~"$cluster", job=~"$job", namespace=~"$namespace";
  `namespace` is the agent's namespace (a target label), `cluster` an optional external or target
  label (`.*` matches series without it);
- results are aggregated per installation (`by (cluster, namespace, ...)`) and never by pod or
  instance: the replicas export the same state gauges (min/max over them), and rates of counters
  are summed;
- process_* series exist for every target of a job, so they are restricted to meshkeeper's own
  targets with `and on (cluster, namespace, job, instance) meshkeeper_build_info` (instance is
  the one label Prometheus sets on every target).
"""
import pathlib
import sys

try:
    from grafana_foundation_sdk.builders import common as cb
    from grafana_foundation_sdk.builders import dashboard as db
    from grafana_foundation_sdk.builders import prometheus as pb
    from grafana_foundation_sdk.builders import stat, table, timeseries
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import common as cm
    from grafana_foundation_sdk.models import dashboard as dm
    from grafana_foundation_sdk.models import prometheus as pm
except ImportError:
    sys.exit("grafana-foundation-sdk is missing: run ./scripts/install-tools.sh, then "
             ".tools/venv/bin/python scripts/gen-dashboard.py")

OUT = pathlib.Path(__file__).resolve().parent.parent / "helm" / "meshkeeper" / "files" / "dashboards" / "meshkeeper.json"
README = "https://github.com/meshkeeper/meshkeeper/blob/main/README.md"
DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")

SEL = 'cluster=~"$cluster", job=~"$job", namespace=~"$namespace"'
BY = "cluster, namespace"  # one installation of meshkeeper
# meshkeeper's own targets, for the process_* series every target of a job has.
OWN = f"on (cluster, namespace, job, instance) meshkeeper_build_info{{{SEL}}}"
# Legends name the metric's labels; the cluster follows (empty without a cluster label).
CL = " {{cluster}}"


def m(name, extra=""):
    """A selector of the metric with the dashboard's variables (and extra matchers)."""
    return f"{name}{{{SEL}{', ' + extra if extra else ''}}}"


def rate(name, extra=""):
    return f"rate({m(name, extra)}[$__rate_interval])"


def runbook(alert):
    return db.DashboardLink(f"Runbook: {alert}").url(f"{README}#{alert.lower()}").target_blank(True)


def thresholds(*steps):
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(
        [dm.Threshold(value=v, color=c) for v, c in steps])


OK_NO = [dm.ValueMap(options={"0": dm.ValueMappingResult(text="NO", color="red", index=0),
                              "1": dm.ValueMappingResult(text="OK", color="green", index=1)})]
RED_GREEN = thresholds((None, "red"), (1, "green"))
GREEN_RED = thresholds((None, "green"), (1, "red"))
GREEN_ORANGE = thresholds((None, "green"), (1, "orange"))

_ids = iter(range(1, 1000))


def query(expr, legend=None, ref="A", instant=False, fmt=None):
    q = pb.Dataquery().expr(expr).ref_id(ref).datasource(DS)
    if legend is not None:
        q = q.legend_format(legend)
    if instant:
        q = q.instant()
    if fmt is not None:
        q = q.format(fmt)
    return q


def common(p, title, description, unit, w, h, alerts=()):
    p = p.id(next(_ids)).title(title).description(description).datasource(DS).span(w).height(h)
    if unit is not None:
        p = p.unit(unit)
    if alerts:
        p = p.links([runbook(a) for a in alerts])
    return p


def stat_panel(title, description, unit, w, h, targets, alerts=(), mappings=None, steps=None, no_value=None,
               color=cm.BigValueColorMode.VALUE):
    p = common(stat.Panel(), title, description, unit, w, h, alerts)
    p = (p.graph_mode(cm.BigValueGraphMode.NONE).color_mode(color).text_mode(cm.BigValueTextMode.AUTO)
         .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False)))
    if mappings:
        p = p.mappings(mappings)
    if steps:
        p = p.thresholds(steps)
    if no_value:
        p = p.no_value(no_value)
    for t in targets:
        p = p.with_target(t)
    return p


def ts_panel(title, description, unit, w, h, targets, alerts=(), stacked=False, steps=None, min_val=0):
    p = common(timeseries.Panel(), title, description, unit, w, h, alerts)
    p = p.legend(cb.VizLegendOptions().show_legend(True).display_mode(cm.LegendDisplayMode.LIST)
                 .placement(cm.LegendPlacement.BOTTOM).calcs([]))
    p = p.tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING))
    p = p.fill_opacity(10).line_width(1).show_points(cm.VisibilityMode.NEVER)
    if min_val is not None:
        p = p.min(min_val)
    if stacked:
        p = p.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL))
    if steps:
        p = p.thresholds(steps)
    for t in targets:
        p = p.with_target(t)
    return p


def table_panel(title, description, unit, w, h, expr, hide_value=False, alerts=(), rename=None):
    """An instant table of the series' labels. With hide_value the Value column is dropped (the
    value says nothing: an info metric, or a filter like `== 0`), and the panel needs no unit."""
    p = common(table.Panel(), title, description, unit, w, h, alerts)
    p = p.with_target(query(expr, ref="A", instant=True, fmt=pm.PromQueryFormat.TABLE))
    exclude = {"Time": True}
    if hide_value:
        exclude["Value"] = True
    p = p.with_transformation(dm.DataTransformerConfig(
        id_val="organize", options={"excludeByName": exclude, "renameByName": rename or {}}))
    return p


REPLICAS = m("meshkeeper_control_plane_component_replicas", 'state=~"desired|available|ready_pods"')
PODS = m("meshkeeper_pods", 'state!~"not_in_scope|ignored"')


def build():
    d = (db.Dashboard("meshkeeper")
         .uid("meshkeeper")
         .description("Mesh health as meshkeeper sees it: control plane, injection policy, sidecar coverage "
                      "and re-injection, gateway pin, repairs, and the agent itself. Pick the agent's cluster, "
                      "job and namespace; All works with or without a cluster label.")
         .tags(["istio", "meshkeeper"])
         .editable()
         .refresh("30s")
         .time("now-6h", "now")
         .timezone("browser")
         .tooltip(dm.DashboardCursorSync.CROSSHAIR)
         .link(db.DashboardLink("Runbooks").url(f"{README}#runbooks").target_blank(True)
               .icon("doc").tooltip("What each alert means, how to confirm it with kubectl, how to fix it"))
         .link(db.DashboardLink("meshkeeper README").url(README).target_blank(True).icon("info")))

    all_opt = dm.VariableOption(selected=True, text="All", value="$__all")
    d = d.with_variable(db.DatasourceVariable("datasource").label("Data source").type("prometheus")
                        .description("The Prometheus that scrapes meshkeeper"))
    for name, label, q, desc in [
        ("cluster", "cluster", "label_values(meshkeeper_build_info, cluster)",
         "The cluster label (external or target label); All (.*) also matches series without one"),
        ("job", "job", 'label_values(meshkeeper_build_info{cluster=~"$cluster"}, job)',
         "The scrape job: the Service name under a ServiceMonitor, e.g. kubernetes-pods under annotation scraping"),
        ("namespace", "agent namespace", 'label_values(meshkeeper_build_info{cluster=~"$cluster", job=~"$job"}, namespace)',
         "The namespace meshkeeper runs in (its target label), not the namespaces it watches"),
    ]:
        d = d.with_variable(db.QueryVariable(name).label(label).description(desc).query(q).datasource(DS)
                            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dm.VariableSort.ALPHABETICAL_ASC)
                            .multi(True).include_all(True).all_value(".*").current(all_opt))

    # --- Overview -----------------------------------------------------------------------------
    d = d.with_row(db.Row("Overview").id(next(_ids)))
    d = d.with_panel(stat_panel(
        "Control plane healthy",
        "1 (OK) when every control-plane component has its minimum of ready replicas and the injector "
        "webhook is healthy; the worst control-plane namespace counts.",
        "bool", 3, 4, [query(f"min by ({BY}) ({m('meshkeeper_control_plane_healthy')})", "{{cluster}}")],
        alerts=["MeshkeeperControlPlaneComponentNotReady", "MeshkeeperInjectorWebhookUnhealthy"],
        mappings=OK_NO, steps=RED_GREEN, color=cm.BigValueColorMode.BACKGROUND))
    d = d.with_panel(stat_panel(
        "Injector webhook healthy",
        "1 (OK) when every injector MutatingWebhookConfiguration exists with a valid, unexpired CA and a ready "
        "backend. While it is not, new pods start without a sidecar and re-injection waits.",
        "bool", 3, 4, [query(f"min by ({BY}) ({m('meshkeeper_injector_webhook_healthy')})", "{{cluster}}")],
        alerts=["MeshkeeperInjectorWebhookUnhealthy"], mappings=OK_NO, steps=RED_GREEN,
        color=cm.BigValueColorMode.BACKGROUND))
    d = d.with_panel(stat_panel(
        "Injector CA expires in",
        "Time until the first injector webhook's CA bundle stops being valid (orange under 30 days, red under 7).",
        "s", 3, 4,
        [query(f"min by ({BY}) ({m('meshkeeper_injector_ca_expiry_timestamp_seconds')}) - time()", "{{cluster}}")],
        alerts=["MeshkeeperInjectorCAExpiringSoon", "MeshkeeperInjectorCAExpiringVerySoon"],
        steps=thresholds((None, "red"), (7 * 86400, "orange"), (30 * 86400, "green"))))
    d = d.with_panel(stat_panel(
        "Sidecar coverage",
        "Pods with a sidecar among those that should have one (1 when none should).",
        "percentunit", 3, 4, [query(f"min by ({BY}) ({m('meshkeeper_sidecar_coverage_ratio')})", "{{cluster}}")],
        alerts=["MeshkeeperSidecarCoverageLow"],
        steps=thresholds((None, "red"), (0.9, "orange"), (1, "green"))))
    d = d.with_panel(stat_panel(
        "Gateway pinned",
        "1 (OK) when every managed gateway Service has the pinned type, IP and nodePorts. No data: the gateway "
        "pin is off.",
        "bool", 3, 4, [query(f"min by ({BY}) ({m('meshkeeper_gateway_pinned')})", "{{cluster}}")],
        alerts=["MeshkeeperGatewayNotPinned", "MeshkeeperGatewayPinDrift"], mappings=OK_NO, steps=RED_GREEN,
        no_value="off", color=cm.BigValueColorMode.BACKGROUND))
    d = d.with_panel(stat_panel(
        "Leaders",
        "Replicas holding the Lease: exactly 1 is right (0: nothing is repaired; 2: split brain).",
        "none", 3, 4, [query(f"sum by ({BY}) ({m('meshkeeper_leader')})", "{{cluster}}")],
        alerts=["MeshkeeperNoLeader", "MeshkeeperSplitBrain"],
        steps=thresholds((None, "red"), (1, "green"), (2, "red"))))
    d = d.with_panel(stat_panel(
        "Replicas ready",
        "Replicas whose /readyz answers 200 (every watch has listed), and the replicas scraped.",
        "none", 3, 4,
        [query(f"sum by ({BY}) ({m('meshkeeper_ready')})", "ready" + CL, "A"),
         query(f"count by ({BY}) ({m('meshkeeper_ready')})", "scraped" + CL, "B")],
        alerts=["MeshkeeperNotReady", "MeshkeeperDown", "MeshkeeperTargetDown"],
        steps=thresholds((None, "red"), (1, "green"))))
    d = d.with_panel(stat_panel(
        "Findings by severity",
        "Current findings of every check, summed per severity (`meshkeeper check` and /status list them).",
        "none", 3, 4,
        [query(f"sum by ({BY}, severity) (max by ({BY}, check, severity) ({m('meshkeeper_findings')}))",
               "{{severity}}" + CL)],
        alerts=["MeshkeeperErrorFindings"], steps=GREEN_ORANGE))
    d = d.with_panel(ts_panel(
        "Findings by check and severity",
        "Current findings per check and severity; every enabled check reports 0 when it has none.",
        "none", 12, 7,
        [query(f"max by ({BY}, check, severity) ({m('meshkeeper_findings')})", "{{check}} {{severity}}" + CL)],
        alerts=["MeshkeeperErrorFindings"]))
    d = d.with_panel(table_panel(
        "Active findings by code",
        "Findings present now, by check, code and severity, with how many objects each applies to "
        "(`meshkeeper check` prints each with its hint).",
        "none", 12, 7,
        f"max by ({BY}, check, code, severity) ({m('meshkeeper_finding')})",
        alerts=["MeshkeeperErrorFindings"], rename={"Value": "findings"}))

    # --- Injection policy ---------------------------------------------------------------------
    d = d.with_row(db.Row("Injection policy").id(next(_ids)))
    d = d.with_panel(ts_panel(
        "Namespaces by state",
        "Namespaces per injection state (compliant, missing, wrong_value, disabled, opted_out, excluded, ...).",
        "none", 12, 8, [query(f"max by ({BY}, state) ({m('meshkeeper_namespaces')})", "{{state}}" + CL)],
        alerts=["MeshkeeperNamespaceNotInjected"]))
    d = d.with_panel(table_panel(
        "Namespaces in scope without the label",
        "In-scope namespaces that lack the wanted injection label (label column: the label they should "
        "have). Empty when every namespace complies.",
        None, 12, 8,
        f"max by ({BY}, target_namespace, label) ({m('meshkeeper_namespace_injection_compliant')}) == 0",
        hide_value=True, alerts=["MeshkeeperNamespaceNotInjected"],
        rename={"target_namespace": "namespace", "label": "wanted label", "namespace": "agent namespace"}))
    d = d.with_panel(ts_panel(
        "Label repairs",
        "Injection-label repairs per second, by result (success, dry_run, conflict, forbidden, not_found, error).",
        "ops", 24, 6, [query(f"sum by ({BY}, result) ({rate('meshkeeper_label_repairs_total')})", "{{result}}" + CL)],
        alerts=["MeshkeeperNamespaceNotInjected", "MeshkeeperWritesFailing"]))

    # --- Control plane ------------------------------------------------------------------------
    d = d.with_row(db.Row("Control plane").id(next(_ids)))
    d = d.with_panel(ts_panel(
        "Replicas: desired vs available vs ready",
        "Per component: the replicas its Deployment wants, those available, and its pods that are ready. "
        "Available or ready below desired for long is a component not ready.",
        "none", 12, 8,
        [query(f'max by ({BY}, target_namespace, component, state) '
               f"({REPLICAS})",
               "{{component}} {{state}} ({{target_namespace}})" + CL)],
        alerts=["MeshkeeperControlPlaneComponentNotReady"]))
    d = d.with_panel(stat_panel(
        "Component ready",
        "1 (OK) when the component has its minimum of ready replicas and nothing crash-loops.",
        "bool", 12, 8,
        [query(f"min by ({BY}, target_namespace, component) ({m('meshkeeper_control_plane_component_ready')})",
               "{{component}} ({{target_namespace}})" + CL)],
        alerts=["MeshkeeperControlPlaneComponentNotReady"], mappings=OK_NO, steps=RED_GREEN,
        color=cm.BigValueColorMode.BACKGROUND))
    d = d.with_panel(table_panel(
        "Versions",
        "Image tag of each versioned control-plane component. More than one version at a time is a skew "
        "(an unfinished upgrade).",
        None, 12, 7,
        f"max by ({BY}, target_namespace, component, version) ({m('meshkeeper_control_plane_version_info')})",
        hide_value=True, alerts=["MeshkeeperControlPlaneVersionSkew"],
        rename={"target_namespace": "control-plane namespace", "namespace": "agent namespace"}))
    d = d.with_panel(stat_panel(
        "Webhook backend ready",
        "Per injector MutatingWebhookConfiguration: 1 (OK) when every Service it calls has a ready pod.",
        "bool", 12, 7,
        [query(f"min by ({BY}, webhook) ({m('meshkeeper_injector_webhook_backend_ready')})", "{{webhook}}" + CL)],
        alerts=["MeshkeeperInjectorWebhookUnhealthy"], mappings=OK_NO, steps=RED_GREEN,
        color=cm.BigValueColorMode.BACKGROUND))
    d = d.with_panel(stat_panel(
        "Cluster nodes", "Nodes in the cluster.", "none", 6, 4,
        [query(f"max by ({BY}) ({m('meshkeeper_cluster_nodes')})", "{{cluster}}")]))
    d = d.with_panel(stat_panel(
        "Ready nodes", "Nodes whose Ready condition is True.", "none", 6, 4,
        [query(f"max by ({BY}) ({m('meshkeeper_cluster_ready_nodes')})", "{{cluster}}")]))
    d = d.with_panel(stat_panel(
        "Allocatable CPU", "CPU cores allocatable to pods, summed over the nodes.", "suffix: cores", 6, 4,
        [query(f"max by ({BY}) ({m('meshkeeper_cluster_allocatable_cpu_cores')})", "{{cluster}}")]))
    d = d.with_panel(stat_panel(
        "Allocatable memory", "Memory allocatable to pods, summed over the nodes.", "bytes", 6, 4,
        [query(f"max by ({BY}) ({m('meshkeeper_cluster_allocatable_memory_bytes')})", "{{cluster}}")]))

    # --- Sidecars and re-injection ------------------------------------------------------------
    d = d.with_row(db.Row("Sidecars and re-injection").id(next(_ids)))
    d = d.with_panel(ts_panel(
        "Pods by sidecar state",
        "Pods per sidecar state: injected, stale (older proxy than the injector injects), missing, opted_out, "
        "host_network (pods out of scope are left out).",
        "none", 12, 7,
        [query(f"max by ({BY}, state) ({PODS})", "{{state}}" + CL)],
        alerts=["MeshkeeperSidecarCoverageLow", "MeshkeeperStaleProxies"]))
    d = d.with_panel(ts_panel(
        "Proxy versions",
        "Pods running a proxy, by proxy version (image tag). More than one version for long is an unfinished upgrade.",
        "none", 12, 7, [query(f"max by ({BY}, version) ({m('meshkeeper_proxy_versions')})", "{{version}}" + CL)],
        alerts=["MeshkeeperStaleProxies"]))
    d = d.with_panel(ts_panel(
        "Workloads pending re-injection, by reason",
        "Workloads that need a restart and do not get one now: a planner wait (injector_unhealthy, outside_window, "
        "budget_spent, ...) or a verdict (blocked, failed, no_controller, opted_out).",
        "none", 10, 7,
        [query(f"max by ({BY}, reason) ({m('meshkeeper_workloads_pending_reinjection')})", "{{reason}}" + CL)],
        alerts=["MeshkeeperReinjectionBlocked", "MeshkeeperReinjectionFailed"]))
    d = d.with_panel(stat_panel(
        "Rollouts in progress", "meshkeeper's re-injection rollouts that have not completed yet.", "none", 4, 7,
        [query(f"max by ({BY}) ({m('meshkeeper_rollouts_in_progress')})", "{{cluster}}")]))
    d = d.with_panel(ts_panel(
        "Re-injections",
        "Restarts (kind deployment, statefulset, daemonset) and evictions (kind pod) per second, by result.",
        "ops", 10, 7,
        [query(f"sum by ({BY}, kind, result) ({rate('meshkeeper_reinjections_total')})", "{{kind}} {{result}}" + CL)],
        alerts=["MeshkeeperReinjectionFailed"]))

    # --- Gateway pin --------------------------------------------------------------------------
    d = d.with_row(db.Row("Gateway pin").id(next(_ids)))
    d = d.with_panel(stat_panel(
        "Pinned gateways",
        "Per gateway Service: 1 (OK) when it has the pinned type, IP and nodePorts. 0 without drift means the "
        "Service is missing, has the wrong type, a renamed port or a nodePort taken by another Service.",
        "bool", 6, 7,
        [query(f"min by ({BY}, target_namespace, gateway) ({m('meshkeeper_gateway_pinned')})",
               "{{target_namespace}}/{{gateway}}" + CL)],
        alerts=["MeshkeeperGatewayNotPinned"], mappings=OK_NO, steps=RED_GREEN, no_value="off",
        color=cm.BigValueColorMode.BACKGROUND))
    d = d.with_panel(ts_panel(
        "Drift by field",
        "1 per pinned field (load_balancer_ip, node_port:<name>) that differs from the pin now.",
        "none", 6, 7,
        [query(f"max by ({BY}, target_namespace, gateway, field) ({m('meshkeeper_gateway_drift')})",
               "{{target_namespace}}/{{gateway}} {{field}}" + CL)],
        alerts=["MeshkeeperGatewayPinDrift"]))
    d = d.with_panel(ts_panel(
        "Contested pins",
        "1 while another controller keeps reverting the gateway's pin and meshkeeper stopped repairing it.",
        "none", 6, 7,
        [query(f"max by ({BY}, target_namespace, gateway) ({m('meshkeeper_gateway_contested')})",
               "{{target_namespace}}/{{gateway}}" + CL)],
        alerts=["MeshkeeperGatewayPinContested"], steps=GREEN_RED))
    d = d.with_panel(ts_panel(
        "Gateway repairs",
        "Repairs of pinned gateway fields per second, by field and result.",
        "ops", 6, 7,
        [query(f"sum by ({BY}, field, result) ({rate('meshkeeper_gateway_repairs_total')})",
               "{{field}} {{result}}" + CL)],
        alerts=["MeshkeeperGatewayPinDrift", "MeshkeeperWritesFailing"]))

    # --- Repairs ------------------------------------------------------------------------------
    d = d.with_row(db.Row("Repairs").id(next(_ids)))
    d = d.with_panel(ts_panel(
        "Writes by action and result",
        "Writes meshkeeper attempted per second, by action and result (success, dry_run, conflict, forbidden, "
        "not_found, error). forbidden and error are failures.",
        "ops", 8, 7,
        [query(f"sum by ({BY}, action, result) ({rate('meshkeeper_actions_total')})", "{{action}} {{result}}" + CL)],
        alerts=["MeshkeeperWritesFailing"]))
    d = d.with_panel(ts_panel(
        "Write throttling",
        "Writes per second that waited for the write token bucket, by action.",
        "ops", 8, 7,
        [query(f"sum by ({BY}, action) ({rate('meshkeeper_write_throttled_total')})", "{{action}}" + CL)]))
    d = d.with_panel(ts_panel(
        "Contested repairs",
        "1 per field another field manager keeps changing back, which meshkeeper stopped repairing "
        "(the RepairContested finding names the manager). Empty while nothing is contested.",
        "none", 8, 7,
        [query(f"max by ({BY}, check, field) ({m('meshkeeper_repair_contested')})", "{{check}} {{field}}" + CL)],
        alerts=["MeshkeeperRepairContested"], steps=GREEN_RED))
    d = d.with_panel(ts_panel(
        "Reconcile errors",
        "Errors per second of the controllers' evaluation passes, by controller and reason.",
        "ops", 12, 7,
        [query(f"sum by ({BY}, controller, reason) ({rate('meshkeeper_reconcile_errors_total')})",
               "{{controller}} {{reason}}" + CL)]))
    d = d.with_panel(ts_panel(
        "Reconcile duration",
        "Time of an evaluation pass per controller: median and 99th percentile over all replicas.",
        "s", 12, 7,
        [query(f"histogram_quantile(0.5, sum by ({BY}, controller, le) "
               f"({rate('meshkeeper_reconcile_duration_seconds_bucket')}))", "p50 {{controller}}" + CL, "A"),
         query(f"histogram_quantile(0.99, sum by ({BY}, controller, le) "
               f"({rate('meshkeeper_reconcile_duration_seconds_bucket')}))", "p99 {{controller}}" + CL, "B")]))

    # --- Agent --------------------------------------------------------------------------------
    d = d.with_row(db.Row("Agent").id(next(_ids)))
    d = d.with_panel(stat_panel(
        "Watch synced",
        "Per watched resource: 1 (OK) when the watch has listed and is not failing, on every replica. "
        "Checks reading a watch that is not synced do not run.",
        "bool", 12, 5,
        [query(f"min by ({BY}, resource) ({m('meshkeeper_watch_synced')})", "{{resource}}" + CL)],
        alerts=["MeshkeeperWatchNotSynced"], mappings=OK_NO, steps=RED_GREEN,
        color=cm.BigValueColorMode.BACKGROUND))
    d = d.with_panel(ts_panel(
        "Watch restarts",
        "Watch failures per second, by resource, summed over the replicas (each is retried with backoff; "
        "a 410 re-lists once).",
        "ops", 12, 5,
        [query(f"sum by ({BY}, resource) ({rate('meshkeeper_watch_restarts_total')})", "{{resource}}" + CL)],
        alerts=["MeshkeeperWatchesRestarting"]))
    d = d.with_panel(ts_panel(
        "Kube API requests",
        "Requests of meshkeeper's own Kubernetes client per second, by verb and HTTP status code "
        "(code \"error\": no response).",
        "reqps", 8, 7,
        [query(f"sum by ({BY}, verb, code) ({rate('meshkeeper_kube_requests_total')})", "{{verb}} {{code}}" + CL)],
        alerts=["MeshkeeperWritesFailing"]))
    d = d.with_panel(ts_panel(
        "Kube API latency p99",
        "99th percentile of the time to the response headers of meshkeeper's Kubernetes requests, by verb.",
        "s", 8, 7,
        [query(f"histogram_quantile(0.99, sum by ({BY}, verb, le) "
               f"({rate('meshkeeper_kube_request_duration_seconds_bucket')}))", "{{verb}}" + CL)]))
    d = d.with_panel(ts_panel(
        "Last evaluation age",
        "Time since each check last ran, on the replica that is furthest behind. It should stay near the "
        "evaluation interval.",
        "s", 8, 7,
        [query(f"time() - min by ({BY}, check) ({m('meshkeeper_last_evaluation_timestamp_seconds')})",
               "{{check}}" + CL)]))
    d = d.with_panel(ts_panel(
        "CPU",
        "CPU used by meshkeeper: all replicas together, and the busiest replica (compare with the container's "
        "CPU limit).",
        "suffix: cores", 8, 7,
        [query(f"sum by ({BY}) ({rate('process_cpu_seconds_total')} and {OWN})", "all replicas" + CL, "A"),
         query(f"max by ({BY}) ({rate('process_cpu_seconds_total')} and {OWN})", "busiest replica" + CL, "B")]))
    d = d.with_panel(ts_panel(
        "Memory",
        "Resident memory of meshkeeper: the largest replica (compare with the container's memory limit), and "
        "all replicas together.",
        "bytes", 8, 7,
        [query(f"max by ({BY}) ({m('process_resident_memory_bytes')} and {OWN})", "largest replica" + CL, "A"),
         query(f"sum by ({BY}) ({m('process_resident_memory_bytes')} and {OWN})", "all replicas" + CL, "B")]))
    d = d.with_panel(stat_panel(
        "Restarts",
        "Process restarts of meshkeeper's containers in the dashboard's time range (the process start time "
        "changed). A replaced pod is a new series and not counted.",
        "none", 8, 7,
        [query(f"sum by ({BY}) (changes({m('process_start_time_seconds')}[$__range]) and "
               f"on (cluster, namespace, job, instance) max_over_time(meshkeeper_build_info{{{SEL}}}[$__range]))",
               "{{cluster}}", instant=True)],
        alerts=["MeshkeeperDown"], steps=GREEN_ORANGE))
    d = d.with_panel(ts_panel(
        "Watch events",
        "Watch events received per second, by resource, summed over the replicas.",
        "ops", 12, 7,
        [query(f"sum by ({BY}, resource) ({rate('meshkeeper_watch_events_total')})", "{{resource}}" + CL)]))
    d = d.with_panel(ts_panel(
        "Cached objects",
        "Objects in each trimmed watch cache (largest replica).",
        "none", 12, 7,
        [query(f"max by ({BY}, resource) ({m('meshkeeper_cache_objects')})", "{{resource}}" + CL)]))
    d = d.with_panel(table_panel(
        "Build",
        "meshkeeper versions running, with how many replicas run each.",
        "none", 8, 5,
        f"count by ({BY}, version) ({m('meshkeeper_build_info')})", rename={"Value": "replicas"}))
    d = d.with_panel(table_panel(
        "Configuration",
        "The configuration each installation runs with: profile, dry_run, the modes of injection, re-injection "
        "and the gateway pin, whether gateway repair and control-plane checks are on.",
        None, 16, 5,
        f"max by ({BY}, profile, dry_run, injection_mode, reinjection_mode, gateway_mode, gateway_repair, "
        f"control_plane) ({m('meshkeeper_config_info')})",
        hide_value=True))
    return d.build()


def render():
    return JSONEncoder(sort_keys=True, indent=2).encode(build()) + "\n"


def main(argv):
    text = render()
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text() != text:
            sys.exit(f"{OUT} is not what scripts/gen-dashboard.py generates: run "
                     ".tools/venv/bin/python scripts/gen-dashboard.py and commit the result")
        return
    OUT.write_text(text)


if __name__ == "__main__":
    main(sys.argv[1:])
