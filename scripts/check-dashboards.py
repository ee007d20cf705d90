#!/usr/bin/env python3
"""Checks the Grafana dashboards (helm/meshkeeper/files/dashboards/*.json; dashboards/*.json link to
them) offline, and prints their queries in a concrete form for an end-to-end test.

Run it from the project's venv (scripts/install-tools.sh installs promql-parser and
grafana-foundation-sdk there; scripts/test-all.sh puts .tools/venv/bin first on PATH):

    .tools/venv/bin/python scripts/check-dashboards.py                 # check, exit 1 on a problem
    .tools/venv/bin/python scripts/check-dashboards.py --metrics scrape.txt   # + names exist in a real /metrics
    .tools/venv/bin/python scripts/check-dashboards.py --print-queries --rate-interval 30s

Checks:
- valid JSON; panel ids and titles unique; every panel has a description, and a unit unless it is
  a text panel or a table whose only value column is hidden (its values say nothing);
- the variables datasource, cluster, job, namespace exist; cluster, job and namespace include All
  with the all-value `.*` (so `cluster=~".*"` also matches series without a cluster label);
- every query parses as PromQL: extracted, Grafana variables replaced by concrete values, and given
  to `promtool check rules` as recording rules;
- every selector names a metric of the metric contract (METRICS below; with --metrics, also one
  present in the given /metrics exposition) and carries exactly the matchers
  cluster=~"$cluster", job=~"$job", namespace=~"$namespace"; other matchers use only the metric's
  own labels;
- no query uses a target label other than cluster/namespace/job (selection) and instance (only in
  on()/ignoring(), to join with meshkeeper_build_info): pod, service, endpoint and container are
  not there under annotation-based scraping. Every query is aggregated to one series per
  installation and the metric's labels: its result has cluster and namespace, never job, instance
  or any other target label; by()/on() name only labels the series have;
- the generated JSON is what scripts/gen-dashboard.py produces (its --check);
- runbook links point at README anchors of known alerts (or the Runbooks section).

--print-queries prints one JSON object per query to stdout ({"dashboard", "panel", "panel_id",
"ref", "instant", "expr"}), the expression with the variables replaced (defaults: cluster, job,
namespace `.*`; $__rate_interval 5m, $__interval 1m, $__range 1h; see --help for the flags that
change them); the checks' messages then go to stderr.
"""
import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

try:
    import promql_parser as pp
except ImportError:
    sys.exit("promql-parser is missing: run ./scripts/install-tools.sh, then "
             ".tools/venv/bin/python scripts/check-dashboards.py")

ROOT = pathlib.Path(__file__).resolve().parent.parent
README_URL = "https://github.com/meshkeeper/meshkeeper/blob/main/README.md"

# The metric contract (issue 11): name -> the metric's own labels. Histograms are listed by their
# base name; a query uses NAME_bucket (with le), NAME_sum or NAME_count.
HISTOGRAMS = {
    "meshkeeper_reconcile_duration_seconds": {"controller"},
    "meshkeeper_kube_request_duration_seconds": {"verb"},
}
METRICS = {
    # agent
    "meshkeeper_build_info": {"version"},
    "meshkeeper_config_info": {"profile", "dry_run", "injection_mode", "reinjection_mode", "gateway_mode",
                               "gateway_repair", "control_plane"},
    "meshkeeper_ready": set(),
    "meshkeeper_leader": set(),
    "meshkeeper_watch_synced": {"resource"},
    "meshkeeper_watch_events_total": {"resource"},
    "meshkeeper_watch_restarts_total": {"resource"},
    "meshkeeper_watch_lists_total": {"resource"},
    "meshkeeper_cache_objects": {"resource"},
    "meshkeeper_reconcile_errors_total": {"controller", "reason"},
    "meshkeeper_last_evaluation_timestamp_seconds": {"check"},
    "meshkeeper_findings": {"check", "severity"},
    "meshkeeper_finding": {"check", "code", "severity"},
    "meshkeeper_actions_total": {"action", "result"},
    "meshkeeper_write_throttled_total": {"action"},
    "meshkeeper_label_repairs_total": {"result"},
    "meshkeeper_gateway_repairs_total": {"field", "result"},
    "meshkeeper_reinjections_total": {"kind", "result"},
    "meshkeeper_repair_contested": {"check", "field"},
    "meshkeeper_kube_requests_total": {"verb", "code"},
    # the standard process collector
    "process_cpu_seconds_total": set(),
    "process_resident_memory_bytes": set(),
    "process_virtual_memory_bytes": set(),
    "process_start_time_seconds": set(),
    "process_open_fds": set(),
    "process_max_fds": set(),
    "process_threads": set(),
    # injection
    "meshkeeper_namespaces": {"state"},
    "meshkeeper_namespace_injection_compliant": {"target_namespace", "label"},
    # control plane
    "meshkeeper_control_plane_healthy": {"target_namespace"},
    "meshkeeper_control_plane_component_ready": {"target_namespace", "component"},
    "meshkeeper_control_plane_component_replicas": {"target_namespace", "component", "state"},
    "meshkeeper_control_plane_version_info": {"target_namespace", "component", "version"},
    "meshkeeper_injector_webhook_healthy": {"webhook"},
    "meshkeeper_injector_webhook_backend_ready": {"webhook"},
    "meshkeeper_injector_ca_expiry_timestamp_seconds": {"webhook"},
    "meshkeeper_cluster_nodes": set(),
    "meshkeeper_cluster_ready_nodes": set(),
    "meshkeeper_cluster_allocatable_cpu_cores": set(),
    "meshkeeper_cluster_allocatable_memory_bytes": set(),
    # re-injection
    "meshkeeper_pods": {"state"},
    "meshkeeper_sidecar_coverage_ratio": set(),
    "meshkeeper_proxy_versions": {"version"},
    "meshkeeper_pods_by_namespace": {"target_namespace", "state"},
    "meshkeeper_workloads_pending_reinjection": {"reason"},
    "meshkeeper_rollouts_in_progress": set(),
    # gateway
    "meshkeeper_gateway_pinned": {"target_namespace", "gateway"},
    "meshkeeper_gateway_drift": {"target_namespace", "gateway", "field"},
    "meshkeeper_gateway_contested": {"target_namespace", "gateway"},
}
for _base, _labels in HISTOGRAMS.items():
    METRICS[_base + "_bucket"] = _labels | {"le"}
    METRICS[_base + "_sum"] = set(_labels)
    METRICS[_base + "_count"] = set(_labels)

# Alerts of the contract; runbook links are README anchors of these (the alert name lower-cased).
ALERTS = """MeshkeeperControlPlaneComponentNotReady MeshkeeperInjectorWebhookUnhealthy
MeshkeeperInjectorCAExpiringSoon MeshkeeperInjectorCAExpiringVerySoon MeshkeeperControlPlaneVersionSkew
MeshkeeperNamespaceNotInjected MeshkeeperGatewayPinDrift MeshkeeperGatewayNotPinned
MeshkeeperGatewayPinContested MeshkeeperRepairContested MeshkeeperSidecarCoverageLow MeshkeeperStaleProxies
MeshkeeperReinjectionFailed MeshkeeperReinjectionBlocked MeshkeeperErrorFindings MeshkeeperDown
MeshkeeperTargetDown MeshkeeperNotReady MeshkeeperNoLeader MeshkeeperSplitBrain MeshkeeperWritesFailing
MeshkeeperWatchNotSynced MeshkeeperWatchesRestarting""".split()

# Target labels. Selection uses exactly these three, each with its variable:
SELECT = {"cluster": "$cluster", "job": "$job", "namespace": "$namespace"}
# Labels every series has (Prometheus sets job and instance on every target; cluster is harmless
# when absent). instance may only be used to match (on/ignoring), never to split a result.
TARGET = {"cluster", "namespace", "job", "instance"}
# Target labels some scrape configurations add and others do not: never used.
UNRELIABLE = {"pod", "service", "endpoint", "container"}
# Labels no meshkeeper metric may carry (a scrape renames them exported_*).
FORBIDDEN_ON_METRICS = {"namespace", "pod", "job", "instance", "service", "container", "endpoint"}
OTHER = "<other target labels>"  # marks a result that is not aggregated away from its targets

VAR_RE = re.compile(r"\$\{(\w+)(?::[\w-]+)?\}|\$(\w+)|\[\[(\w+)\]\]")
DURATION_VARS = {"__rate_interval", "__interval", "__range"}


class Problems(list):
    def add(self, where, msg):
        self.append(f"{where}: {msg}")


def substitute(expr, values, durations_only=False):
    """Replaces Grafana variables; unknown ones are kept (and reported by the caller)."""
    def repl(mt):
        name = mt.group(1) or mt.group(2) or mt.group(3)
        if durations_only and name not in DURATION_VARS:
            return mt.group(0)
        return values.get(name, mt.group(0))
    return VAR_RE.sub(repl, expr)


class Analysis:
    """Walks one parsed query: the selectors it uses and the labels its result carries."""

    def __init__(self, where, problems):
        self.where = where
        self.problems = problems
        self.selectors = []  # (metric name, {label: (op, value)})

    def err(self, msg):
        self.problems.add(self.where, msg)

    def check_names(self, labels, available, what):
        for label in labels:
            if label in UNRELIABLE or label.startswith("exported_"):
                self.err(f"{what} uses the label {label!r}, which not every scrape configuration has")
            elif available is not None and label not in available:
                self.err(f"{what} names the label {label!r}, which the series there do not have "
                         f"(they have {', '.join(sorted(available - {OTHER})) or 'none'})")

    def labels(self, e):
        """The labels of e's result; None for a scalar or string. Contains OTHER when target
        labels besides cluster/namespace/job/instance are still there (not aggregated)."""
        if isinstance(e, pp.ParenExpr) or isinstance(e, pp.UnaryExpr):
            return self.labels(e.expr)
        if isinstance(e, (pp.NumberLiteral, pp.StringLiteral)):
            return None
        if isinstance(e, pp.VectorSelector):
            return self.selector(e)
        if isinstance(e, pp.MatrixSelector):
            return self.selector(e.vector_selector)
        if isinstance(e, pp.SubqueryExpr):
            return self.labels(e.expr)
        if isinstance(e, pp.AggregateExpr):
            if e.param is not None:
                self.labels(e.param)
            inner = self.labels(e.expr)
            op = str(e.op)
            mod = e.modifier
            if mod is None:
                result = set()
            elif str(mod.type).endswith("Without"):
                self.check_names(mod.labels, inner, f"{op} without ()")
                result = (inner or set()) - set(mod.labels)
            else:
                self.check_names(mod.labels, inner, f"{op} by ()")
                split = set(mod.labels) & {"job", "instance"}
                if split:
                    self.err(f"{op} by () splits by {', '.join(sorted(split))}: aggregate replicas away")
                result = set(mod.labels)
            if op in ("topk", "bottomk") and inner is not None:
                result = inner
            return result
        if isinstance(e, pp.Call):
            name = e.func.name
            args = [self.labels(a) for a in e.args]
            if str(e.func.return_type).endswith("Scalar") or name in ("vector", "absent", "absent_over_time"):
                return None if str(e.func.return_type).endswith("Scalar") else set()
            if name == "histogram_quantile":
                inner = args[1] or set()
                if "le" not in inner:
                    self.err("histogram_quantile over series without le: keep le in the by ()")
                return inner - {"le"}
            if name in ("label_replace", "label_join"):
                dst = e.args[1]
                return (args[0] or set()) | ({str(dst).strip('"')} if dst is not None else set())
            vectors = [a for a in args if a is not None]
            return vectors[0] if vectors else None
        if isinstance(e, pp.BinaryExpr):
            lhs, rhs = self.labels(e.lhs), self.labels(e.rhs)
            if lhs is None or rhs is None:
                return lhs if rhs is None else rhs
            op = str(e.op)
            mod = e.modifier
            matching = mod.matching if mod is not None else None
            if matching is not None:
                self.check_names(matching.labels or [], lhs & rhs, f"{op} on ()/ignoring ()")
            card = str(mod.card) if mod is not None else "OneToOne"
            group = list(mod.group_labels or []) if mod is not None else []
            if group:
                self.check_names(group, rhs if card.endswith("ManyToOne") else lhs, "group_left/right ()")
            if op in ("and", "unless"):
                return lhs
            if op == "or":
                return lhs | rhs
            if card.endswith("ManyToOne"):
                return lhs | set(group)
            if card.endswith("OneToMany"):
                return rhs | set(group)
            if matching is not None and str(matching.type).endswith("Include"):
                return set(matching.labels or [])
            if matching is not None:
                return lhs - set(matching.labels or [])
            return lhs
        self.err(f"unexpected PromQL node {type(e).__name__}")
        return set()

    def selector(self, vs):
        name = vs.name
        matchers = {}
        for mt in vs.matchers.matchers:
            if mt.name == "__name__":
                name = name or mt.value
                if str(mt.op) != "MatchOp.Equal":
                    self.err("select metrics by name, not by a __name__ regex")
                continue
            matchers[mt.name] = (str(mt.op), mt.value)
        if vs.matchers.or_matchers:
            self.err(f"{name}: `or` inside a selector is not supported by Prometheus 2")
        self.selectors.append((name, matchers))
        own = METRICS.get(name)
        if own is None:
            self.err(f"{name!r} is not a metric of the contract")
            own = set()
        for label, want in SELECT.items():
            got = matchers.get(label)
            if got is None or got[1] != want or not got[0].startswith("MatchOp.Re"):
                self.err(f"{name}: select with {label}=~\"{want}\" (found {got[1] if got else 'nothing'})")
        for label in matchers:
            if label in SELECT:
                continue
            if label in TARGET or label in UNRELIABLE or label not in own:
                self.err(f"{name}: matcher on {label!r}, which is not a label of this metric "
                         f"(its labels: {', '.join(sorted(own)) or 'none'})")
        return own | TARGET | {OTHER}


def parse_exposition(paths, problems):
    """name -> label names seen, from Prometheus text expositions (a scrape of /metrics)."""
    seen = {}
    for path in paths:
        text = pathlib.Path(path).read_text()
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            mt = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s", line)
            if not mt:
                problems.add(path, f"cannot read the exposition line {line[:80]!r}")
                continue
            name, body = mt.group(1), mt.group(3) or ""
            labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', body))
            bad = labels & FORBIDDEN_ON_METRICS
            if bad:
                problems.add(path, f"{name} carries {', '.join(sorted(bad))}: a scrape renames them exported_* "
                                   f"(the contract forbids those labels)")
            seen.setdefault(name, set()).update(labels)
    return seen


def rule_alerts():
    names = set()
    for path in list((ROOT / "helm" / "meshkeeper" / "files").glob("*.yaml")) + list((ROOT / "dashboards").glob("*.yaml")):
        names.update(re.findall(r"^\s*-\s*alert:\s*(\S+)", path.read_text(), re.M))
    return names


def walk_panels(panels):
    for p in panels:
        yield p
        yield from walk_panels(p.get("panels", []) if p.get("type") == "row" else [])


def unit_exempt(p):
    """Why a panel may have no unit: a text panel, or a table that hides its value column."""
    if p.get("type") in ("text", "news", "dashlist"):
        return True
    if p.get("type") == "table":
        for tr in p.get("transformations", []):
            if tr.get("id") == "organize" and (tr.get("options", {}).get("excludeByName") or {}).get("Value"):
                return True
    return False


def check_dashboard(path, args, values, problems, exposition, queries, rules):
    name = path.name
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        problems.add(name, f"not valid JSON: {e}")
        return
    variables = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
    if variables.get("datasource", {}).get("type") != "datasource":
        problems.add(name, "no datasource variable named datasource")
    for var in SELECT:
        v = variables.get(var)
        if v is None or v.get("type") != "query":
            problems.add(name, f"no query variable {var}")
            continue
        if not v.get("includeAll") or v.get("allValue") != ".*":
            problems.add(name, f"variable {var}: include All with the all-value .*")
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        for metric in re.findall(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", q):
            if metric not in METRICS:
                problems.add(name, f"variable {var}: {metric!r} is not a metric of the contract")
            elif exposition is not None and metric not in exposition:
                problems.add(name, f"variable {var}: {metric!r} is not in the --metrics exposition")
    for link in d.get("links", []):
        check_link(name, "dashboard", link, problems, rules)
    if not any((lk.get("url") or "").endswith("#runbooks") for lk in d.get("links", [])):
        problems.add(name, "no dashboard link to the README's Runbooks section")

    ids, titles, nqueries = set(), set(), 0
    for p in walk_panels(d.get("panels", [])):
        pid, title = p.get("id"), p.get("title", "")
        where = f"{name}: panel {title!r}"
        if pid in ids:
            problems.add(where, f"duplicate panel id {pid}")
        ids.add(pid)
        if p.get("type") == "row":
            continue
        if title in titles:
            problems.add(where, "duplicate panel title")
        titles.add(title)
        if not (p.get("description") or "").strip():
            problems.add(where, "no description")
        unit = ((p.get("fieldConfig") or {}).get("defaults") or {}).get("unit")
        if not unit and not unit_exempt(p):
            problems.add(where, "no unit (only text panels and tables that hide their value may lack one)")
        for link in p.get("links", []):
            check_link(where, "panel", link, problems, rules)
        refs = set()
        for tgt in p.get("targets", []):
            ref = tgt.get("refId", "")
            if not ref or ref in refs:
                problems.add(where, f"target refId {ref!r} missing or duplicate")
            refs.add(ref)
            expr = tgt.get("expr", "")
            if not expr:
                problems.add(where, f"target {ref} has no expr")
                continue
            nqueries += 1
            qwhere = f"{where} [{ref}]"
            concrete = substitute(expr, values)
            left = VAR_RE.findall(concrete)
            if left:
                problems.add(qwhere, f"unknown variable(s) {sorted({a or b or c for a, b, c in left})} in {expr!r}")
                continue
            check_query(qwhere, expr, values, problems, exposition)
            queries.append({"dashboard": name, "panel": title, "panel_id": pid, "ref": ref,
                            "instant": bool(tgt.get("instant")), "expr": concrete})
    print(f"{name}: {len(titles)} panels, {nqueries} queries", file=args.out)


def check_link(where, kind, link, problems, rules):
    url = link.get("url") or ""
    if not url.startswith(README_URL + "#"):
        return
    anchor = url.split("#", 1)[1]
    if anchor == "runbooks":
        return
    alert = next((a for a in ALERTS if a.lower() == anchor), None)
    if alert is None:
        problems.add(where, f"{kind} link to README#{anchor}: not an alert of the contract")
    elif rules and alert not in rules:
        print(f"WARNING: {where}: links the runbook of {alert}, which the rules file does not define (yet)",
              file=sys.stderr)


def check_query(where, expr, values, problems, exposition):
    # Label variables stay as they are ($cluster is a valid regex), so the matchers can be compared.
    structural = substitute(expr, values, durations_only=True)
    try:
        ast = pp.parse(structural)
    except Exception as e:  # the parser raises plain exceptions on a syntax error
        problems.add(where, f"does not parse: {e}")
        return
    a = Analysis(where, problems)
    result = a.labels(ast)
    if result is not None:
        if OTHER in result or result & {"job", "instance"}:
            problems.add(where, "the result keeps per-target labels: aggregate with by (cluster, namespace, ...)")
        elif not {"cluster", "namespace"} <= result:
            problems.add(where, "the result lacks cluster or namespace: aggregate with by (cluster, namespace, ...)")
    if exposition is not None:
        for metric, matchers in a.selectors:
            if metric not in exposition:
                problems.add(where, f"{metric} is not in the --metrics exposition")
                continue
            for label in matchers:
                if label not in SELECT and label not in exposition[metric]:
                    problems.add(where, f"{metric} has no label {label!r} in the --metrics exposition")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dashboards", nargs="*", type=pathlib.Path,
                    help="dashboard JSON files (default: helm/meshkeeper/files/dashboards/*.json and dashboards/*.json)")
    ap.add_argument("--metrics", action="append", default=[], metavar="FILE",
                    help="a /metrics exposition of the real agent (repeatable: the union counts); every metric "
                         "a query uses, and every label it matches on, must be in it")
    ap.add_argument("--print-queries", action="store_true",
                    help="print every query with the variables replaced, one JSON object a line, on stdout")
    ap.add_argument("--cluster", default=".*", help="value of $cluster (default .*)")
    ap.add_argument("--job", default=".*", help="value of $job (default .*)")
    ap.add_argument("--namespace", default=".*", help="value of $namespace (default .*)")
    ap.add_argument("--rate-interval", default="5m", help="value of $__rate_interval (default 5m)")
    ap.add_argument("--interval", default="1m", help="value of $__interval (default 1m)")
    ap.add_argument("--range", default="1h", help="value of $__range (default 1h)")
    ap.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                    help="value of any other variable, e.g. --var datasource=prom (repeatable)")
    ap.add_argument("--no-generator-check", action="store_true",
                    help="skip running scripts/gen-dashboard.py --check")
    args = ap.parse_args()
    args.out = sys.stderr if args.print_queries else sys.stdout

    values = {"cluster": args.cluster, "job": args.job, "namespace": args.namespace,
              "__rate_interval": args.rate_interval, "__interval": args.interval, "__range": args.range,
              "datasource": "prometheus"}
    for kv in args.var:
        k, sep, v = kv.partition("=")
        if not sep:
            ap.error(f"--var wants NAME=VALUE, got {kv!r}")
        values[k] = v

    problems = Problems()
    paths = args.dashboards or (sorted((ROOT / "helm" / "meshkeeper" / "files" / "dashboards").glob("*.json"))
                                + sorted((ROOT / "dashboards").glob("*.json")))
    unique = {}
    for p in paths:
        if not p.exists():
            problems.add(str(p), "missing (a broken link?)")
            continue
        unique.setdefault(os.path.realpath(p), p)
    if not unique:
        problems.add("dashboards", "no dashboard found")

    exposition = parse_exposition(args.metrics, problems) if args.metrics else None
    rules = rule_alerts()
    queries = []
    for p in unique.values():
        check_dashboard(p, args, values, problems, exposition, queries, rules)

    if queries:
        with tempfile.TemporaryDirectory() as tmp:
            f = pathlib.Path(tmp) / "dashboard-queries.yaml"
            rules_doc = [{"record": f"dashboard:query:{i}", "expr": q["expr"]} for i, q in enumerate(queries)]
            f.write_text(json.dumps({"groups": [{"name": "dashboard-queries", "rules": rules_doc}]}))
            res = subprocess.run(["promtool", "check", "rules", str(f)], capture_output=True, text=True)
            if res.returncode != 0:
                out = res.stdout + res.stderr
                for i in sorted({int(n) for n in re.findall(r"dashboard:query:(\d+)", out)}):
                    out += f"\n  dashboard:query:{i} is {queries[i]['dashboard']}: panel {queries[i]['panel']!r} [{queries[i]['ref']}]"
                problems.append("promtool rejected a query:\n" + out)

    if not args.no_generator_check and not args.dashboards:
        res = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen-dashboard.py"), "--check"],
                             capture_output=True, text=True)
        if res.returncode != 0:
            problems.append("scripts/gen-dashboard.py --check: " + (res.stderr or res.stdout).strip())

    if args.print_queries:
        for q in queries:
            print(json.dumps(q))
    for p in problems:
        print("ERROR:", p, file=args.out)
    print(f"{len(queries)} queries, {len(problems)} problems", file=args.out)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
