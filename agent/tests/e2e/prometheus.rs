//! Issue 11 end to end: a real Prometheus server (the Debian package's) scrapes the real agent on
//! kube-sim through a scrape job shaped like the one prometheus-operator generates for the
//! chart's ServiceMonitor, with the chart's alert rules loaded. Faults made on the cluster make
//! their alert fire through Prometheus' HTTP API and clear after the repair; one injector outage
//! pages once; every dashboard query returns data at a point of the sequence where its data
//! exists; every metric and label the dashboard uses is in the agent's real exposition.
//!
//! Skipped (with a message) without `prometheus` on PATH, unless MESHKEEPER_REQUIRE_TOOLS is set.
//! The dashboard part also needs scripts/check-dashboards.py's promql-parser (.tools/venv).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use kube_sim::{PatchType, Sim};
use serde_json::{Value, json};

use crate::common::*;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
/// The one rules source (the chart renders it as a PrometheusRule).
const RULES: &str = "helm/meshkeeper/files/meshkeeper.rules.yaml";
/// The `for:` every rule gets in the test's copy of the rules ([`FOR_DURATION`]).
const FOR: &str = "2s";
const FOR_DURATION: Duration = Duration::from_secs(2);
/// Prometheus' scrape and rule-evaluation interval.
const INTERVAL: Duration = Duration::from_secs(1);
/// The pod name the scrape job gives the target, as Kubernetes SD would.
const POD: &str = "meshkeeper-6c9d8f7b5-x4k2p";
/// Bound of every wait for an alert to fire or clear (they take a few seconds: the agent's
/// gauge, a scrape, an evaluation, `for:`, an evaluation).
const ALERT_WAIT: Duration = Duration::from_secs(30);

/// A Prometheus server in a temporary directory, killed (and reaped) on drop, so no process is
/// left behind when an assertion fails.
struct Prometheus {
    child: std::process::Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus scraping `target` with these rules; returns once /-/ready answers 200.
    async fn start(target: &str, rules: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let rules_path = dir.path().join("meshkeeper.rules.yaml");
        std::fs::write(&rules_path, rules).expect("write rules");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, scrape_config(target, &rules_path)).expect("write prometheus.yml");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            // Port 0: the kernel picks a free one, which Prometheus logs (`msg="Listening on"`).
            .arg("--web.listen-address=127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        let mut p = Prometheus { child, addr: String::new(), dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let listening = p.log().lines().find_map(|l| {
                l.contains("msg=\"Listening on\"")
                    .then(|| l.split(" address=").nth(1))
                    .flatten()
                    .map(|a| a.split_whitespace().next().unwrap_or_default().to_string())
            });
            if let Some(addr) = listening {
                p.addr = addr;
                break;
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("prometheus exited ({status}) before listening; its log:\n{}", p.log());
            }
            assert!(Instant::now() < deadline, "prometheus not listening within 20 s; its log:\n{}", p.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        while http(&p.addr, "GET", "/-/ready").await.0 != 200 {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("prometheus exited ({status}) before ready; its log:\n{}", p.log());
            }
            assert!(Instant::now() < deadline, "prometheus not ready within 20 s; its log:\n{}", p.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// GET of an API path; the `data` of a successful answer.
    async fn api(&self, path: &str) -> Value {
        let (code, _, body) = http(&self.addr, "GET", path).await;
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path}: HTTP {code}, not JSON ({e}): {body:.500}"));
        assert_eq!(v["status"], "success", "GET {path}: HTTP {code}: {v}");
        v["data"].clone()
    }

    /// An instant query's result vector (empty: no data).
    async fn query(&self, expr: &str) -> Vec<Value> {
        let data = self.api(&format!("/api/v1/query?query={}", urlencode(expr))).await;
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// Every active (pending or firing) alert.
    async fn alerts(&self) -> Vec<Value> {
        self.api("/api/v1/alerts").await["alerts"].as_array().cloned().unwrap_or_default()
    }

    async fn firing(&self) -> Vec<Value> {
        self.alerts().await.into_iter().filter(|a| a["state"] == "firing").collect()
    }

    /// Waits (bounded) until an alert with this name and labels fires; returns it and the wait.
    async fn wait_firing(&self, name: &str, labels: &[(&str, &str)]) -> (Value, Duration) {
        let start = Instant::now();
        loop {
            let alerts = self.alerts().await;
            if let Some(a) = alerts.iter().find(|a| a["state"] == "firing" && is(a, name, labels)) {
                return (a.clone(), start.elapsed());
            }
            if start.elapsed() > ALERT_WAIT {
                panic!(
                    "timed out after {ALERT_WAIT:?} waiting for {} to fire; active alerts:\n{}",
                    show(name, labels),
                    describe(&alerts)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (bounded) until no alert with this name and labels is pending or firing.
    async fn wait_cleared(&self, name: &str, labels: &[(&str, &str)]) -> Duration {
        let start = Instant::now();
        loop {
            let alerts = self.alerts().await;
            if !alerts.iter().any(|a| is(a, name, labels)) {
                return start.elapsed();
            }
            if start.elapsed() > ALERT_WAIT {
                panic!(
                    "timed out after {ALERT_WAIT:?} waiting for {} to clear; active alerts:\n{}",
                    show(name, labels),
                    describe(&alerts)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The alerting rules as the rules API reports them: (group, rule).
    async fn rules(&self) -> Vec<(String, Value)> {
        let data = self.api("/api/v1/rules?type=alert").await;
        let mut out = Vec::new();
        for g in data["groups"].as_array().cloned().unwrap_or_default() {
            for r in g["rules"].as_array().cloned().unwrap_or_default() {
                out.push((g["name"].as_str().unwrap_or_default().to_string(), r));
            }
        }
        out
    }

    /// Each rule group's last evaluation time, as the rules API reports it.
    async fn group_evaluations(&self) -> BTreeMap<String, String> {
        let data = self.api("/api/v1/rules?type=alert").await;
        data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| (g["name"].as_str().unwrap_or_default().to_string(), g["lastEvaluation"].to_string()))
            .collect()
    }
}

/// The scrape configuration: what prometheus-operator generates for the chart's ServiceMonitor
/// (Kubernetes SD role endpoints, no honor_labels, so a metric's own `namespace` label would be
/// renamed `exported_namespace`): the job named after the ServiceMonitor, the target labels set
/// by its relabelling of the SD's meta labels, which here are the one static target's labels.
fn scrape_config(target: &str, rules: &Path) -> String {
    format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - {rules}
scrape_configs:
  - job_name: serviceMonitor/meshkeeper/meshkeeper/0
    honor_labels: false
    metrics_path: /metrics
    scheme: http
    static_configs:
      - targets: ["{target}"]
        labels:
          __meta_kubernetes_namespace: meshkeeper
          __meta_kubernetes_service_name: meshkeeper
          __meta_kubernetes_pod_name: {POD}
          __meta_kubernetes_pod_container_name: meshkeeper
          __meta_kubernetes_endpoint_port_name: http-metrics
          __meta_kubernetes_endpoint_address_target_kind: Pod
          __meta_kubernetes_endpoint_address_target_name: {POD}
    relabel_configs:
      - {{source_labels: [job], target_label: __tmp_prometheus_job_name}}
      - {{action: keep, source_labels: [__meta_kubernetes_endpoint_port_name], regex: http-metrics}}
      - {{source_labels: [__meta_kubernetes_endpoint_address_target_kind, __meta_kubernetes_endpoint_address_target_name], separator: ";", regex: "Pod;(.*)", replacement: "${{1}}", target_label: pod}}
      - {{source_labels: [__meta_kubernetes_namespace], target_label: namespace}}
      - {{source_labels: [__meta_kubernetes_service_name], target_label: service}}
      - {{source_labels: [__meta_kubernetes_pod_name], target_label: pod}}
      - {{source_labels: [__meta_kubernetes_pod_container_name], target_label: container}}
      - {{source_labels: [__meta_kubernetes_service_name], target_label: job, replacement: "${{1}}"}}
      - {{target_label: endpoint, replacement: http-metrics}}
"#,
        rules = rules.display()
    )
}

/// The chart's rules with only the `for:` values rewritten (to [`FOR`]): the real ones (minutes
/// to hours) would make the test wait that long. Every expr, label and annotation stays as it
/// is; the parsed copy is compared with the source to prove it. A `for:` of two evaluation
/// intervals keeps its purpose: a condition must hold over more than one evaluation to fire.
fn fast_rules(src: &str) -> String {
    let out: String = src
        .lines()
        .map(|l| {
            let t = l.trim_start();
            if t.starts_with("for:") { format!("{}for: {FOR}\n", &l[..l.len() - t.len()]) } else { format!("{l}\n") }
        })
        .collect();
    let rules = |text: &str| -> Vec<serde_yaml::Mapping> {
        let doc: serde_yaml::Value = serde_yaml::from_str(text).expect("rules YAML");
        doc["groups"]
            .as_sequence()
            .expect("groups")
            .iter()
            .flat_map(|g| g["rules"].as_sequence().expect("rules").iter())
            .map(|r| r.as_mapping().expect("rule").clone())
            .collect()
    };
    let (before, after) = (rules(src), rules(&out));
    assert_eq!(before.len(), after.len());
    let mut rewritten = 0;
    for (mut b, mut a) in before.into_iter().zip(after) {
        let (bf, af) = (b.remove("for"), a.remove("for"));
        assert_eq!(bf.is_some(), af.is_some(), "{b:?}");
        if af.is_some() {
            assert_eq!(af.and_then(|v| v.as_str().map(str::to_string)).as_deref(), Some(FOR));
            rewritten += 1;
        }
        assert_eq!(b, a, "only `for:` may differ");
    }
    assert!(rewritten > 0, "no rule has a for:");
    out
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Whether an alert has this name and these labels.
fn is(alert: &Value, name: &str, labels: &[(&str, &str)]) -> bool {
    let l = &alert["labels"];
    l["alertname"] == name && labels.iter().all(|(k, v)| l[*k] == *v)
}

fn show(name: &str, labels: &[(&str, &str)]) -> String {
    let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{name}{{{}}}", l.join(","))
}

/// `alertname{labels}` of an alert (labels sorted, alertname left out).
fn key(alert: &Value) -> String {
    let labels: BTreeMap<String, String> = alert["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| *k != "alertname")
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{}{{{}}}", alert["labels"]["alertname"].as_str().unwrap_or_default(), l.join(","))
}

fn describe(alerts: &[Value]) -> String {
    if alerts.is_empty() {
        return "  (none)".to_string();
    }
    let mut lines: Vec<String> =
        alerts.iter().map(|a| format!("  {} {}", a["state"].as_str().unwrap_or("?"), key(a))).collect();
    lines.sort();
    lines.join("\n")
}

fn critical(alerts: &[Value]) -> Vec<&Value> {
    alerts.iter().filter(|a| a["labels"]["severity"] == "critical").collect()
}

/// Where in the sequence a dashboard query's data exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum When {
    /// The agent with the default (asm-onprem, report-only) configuration, once scraped twice.
    Baseline,
    /// Scenario 1: an in-scope namespace without the injection label.
    NotCompliant,
    /// Scenario 1 repaired: shop labelled while its Deployment's pod runs without the sidecar.
    PendingReinjection,
    /// The agent restarted with every feature on (repairs in enforce mode).
    Enforce,
    /// ... while another controller keeps reverting the gateway pin.
    Contested,
}

/// Panels whose queries have data only under a condition, where the sequence creates it, and
/// why. Every other query must have data at [`When::Baseline`].
const CONDITIONAL: &[(&str, When, &str)] = &[
    (
        "Active findings by code",
        When::NotCompliant,
        "meshkeeper_finding exists only while a finding is present (here InjectionLabelMissing)",
    ),
    (
        "Namespaces in scope without the label",
        When::NotCompliant,
        "the table lists meshkeeper_namespace_injection_compliant == 0 only",
    ),
    (
        "Workloads pending re-injection, by reason",
        When::PendingReinjection,
        "meshkeeper_workloads_pending_reinjection has a series only for a workload that waits",
    ),
    ("Label repairs", When::Enforce, "meshkeeper_label_repairs_total is created only with injection.mode enforce"),
    ("Re-injections", When::Enforce, "meshkeeper_reinjections_total is created only with reinjection.mode enforce"),
    ("Gateway repairs", When::Enforce, "meshkeeper_gateway_repairs_total is created only with gateway.repair true"),
    ("Writes by action and result", When::Enforce, "meshkeeper_actions_total is created only for enabled repairs"),
    ("Write throttling", When::Enforce, "meshkeeper_write_throttled_total is created only for enabled repairs"),
    ("Contested repairs", When::Contested, "meshkeeper_repair_contested exists only while a repair is contested"),
];

struct Query {
    panel: String,
    r#ref: String,
    expr: String,
    when: When,
}

/// The dashboard's queries with this setup's variable values, from scripts/check-dashboards.py
/// (None, with a message, when its promql-parser is missing and tools are not required).
async fn dashboard_queries() -> Option<(String, Vec<Query>)> {
    let script = format!("{ROOT}/scripts/check-dashboards.py");
    let venv = format!("{ROOT}/.tools/venv/bin/python");
    let mut python = None;
    for candidate in [venv.as_str(), "python3"] {
        let ok = tokio::process::Command::new(candidate)
            .args(["-c", "import promql_parser"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success());
        if ok {
            python = Some(candidate.to_string());
            break;
        }
    }
    let Some(python) = python else {
        assert!(!require_tools(), "promql-parser is required (MESHKEEPER_REQUIRE_TOOLS): run scripts/install-tools.sh");
        eprintln!("skipping the dashboard queries: no Python with promql-parser (run scripts/install-tools.sh)");
        return None;
    };
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .args(["--print-queries", "--no-generator-check", "--cluster", ".*", "--job", "meshkeeper"])
        .args(["--namespace", "meshkeeper"])
        .output()
        .await
        .expect("run check-dashboards.py");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "check-dashboards.py --print-queries failed:\n{stderr}");
    let queries: Vec<Query> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let q: Value = serde_json::from_str(l).expect("a query as JSON");
            let panel = q["panel"].as_str().unwrap_or_default().to_string();
            let when = CONDITIONAL.iter().find(|(p, _, _)| *p == panel).map_or(When::Baseline, |(_, w, _)| *w);
            Query {
                panel,
                r#ref: q["ref"].as_str().unwrap_or_default().to_string(),
                expr: q["expr"].as_str().unwrap_or_default().to_string(),
                when,
            }
        })
        .collect();
    assert!(!queries.is_empty(), "no dashboard query printed:\n{stderr}");
    for (panel, _, _) in CONDITIONAL {
        assert!(queries.iter().any(|q| q.panel == *panel), "CONDITIONAL names panel {panel:?}, not in the dashboard");
    }
    Some((python, queries))
}

/// Evaluates the queries whose data exists at `when` (polling, bounded: data arrives with the
/// next scrape), each of which must return a non-empty result.
async fn check_queries(prom: &Prometheus, queries: &Option<(String, Vec<Query>)>, when: When, done: &mut usize) {
    let Some((_, queries)) = queries else { return };
    let start = Instant::now();
    let mut n = 0;
    for q in queries.iter().filter(|q| q.when == when) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while prom.query(&q.expr).await.is_empty() {
            if Instant::now() > deadline {
                panic!(
                    "dashboard panel {:?} [{}] has no data at {when:?} after 15 s: {}\nactive alerts:\n{}",
                    q.panel,
                    q.r#ref,
                    q.expr,
                    describe(&prom.alerts().await)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        n += 1;
    }
    *done += n;
    eprintln!("dashboard: {n} queries with data at {when:?} ({:?})", start.elapsed());
}

/// Runs check-dashboards.py with a saved /metrics scrape: every metric and label the dashboard
/// uses must be in the real exposition.
async fn check_exposition(queries: &Option<(String, Vec<Query>)>, scrape: &Path) {
    let Some((python, _)) = queries else { return };
    let out = tokio::process::Command::new(python)
        .arg(format!("{ROOT}/scripts/check-dashboards.py"))
        .arg("--no-generator-check")
        .arg("--metrics")
        .arg(scrape)
        .output()
        .await
        .expect("run check-dashboards.py");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "check-dashboards.py --metrics (the agent's real /metrics) failed:\n{text}");
    eprintln!("check-dashboards.py --metrics: {}", text.trim().lines().last().unwrap_or_default());
}

fn scale(sim: &Sim, name: &str, replicas: i64) {
    sim.cluster()
        .patch(
            "apps/v1",
            "deployments",
            "istio-system",
            name,
            PatchType::Merge,
            &json!({"spec": {"replicas": replicas}}),
            "kubectl-scale",
        )
        .expect("scale");
}

fn set_http2_node_port(sim: &Sim, port: i64) {
    sim.cluster()
        .patch(
            "v1",
            "services",
            "istio-system",
            "istio-ingressgateway",
            PatchType::Strategic,
            &json!({"spec": {"ports": [{"port": 80, "nodePort": port}]}}),
            "kubectl-patch",
        )
        .expect("patch the gateway Service");
}

/// The agent's configuration listening on a fixed address (the same target for Prometheus
/// across a restart).
fn config_at(addr: &str, extra: &str) -> String {
    let c = config(extra);
    assert!(c.contains("listen: 127.0.0.1:0"));
    c.replace("listen: 127.0.0.1:0", &format!("listen: {addr}"))
}

#[tokio::test]
async fn a_real_prometheus_fires_and_clears_the_alerts_and_every_dashboard_query_has_data() {
    if !have("prometheus") {
        return;
    }
    let t_test = Instant::now();
    let queries = dashboard_queries().await;
    let mut checked = 0;
    // The agent's address, fixed: the same target for both agents below (across a restart).
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").to_string()
    };
    // Prometheus first: it applies its first target set only after its 5-s reload tick, which
    // then overlaps the cluster's and the agent's start. (Until the first scrape MeshkeeperDown
    // fires, absent() holding longer than the shortened for:, and clears with that scrape.)
    let rules_src = std::fs::read_to_string(format!("{ROOT}/{RULES}")).expect("read the rules");
    let prom = Prometheus::start(&addr, &fast_rules(&rules_src)).await;
    eprintln!("prometheus ready at {} ({:?} after the test started)", prom.addr, t_test.elapsed());

    let sim = cluster().await;
    let c = sim.cluster();
    // shop (unlabelled, in scope) runs the seed's Deployment web; add a bare pod, which no
    // restart can re-inject (a re-injection pending in any mode once shop is labelled).
    c.create(
        "v1",
        "pods",
        "shop",
        json!({"metadata": {"name": "debug-shell", "labels": {"app": "debug-shell"}},
        "spec": {"containers": [{"name": "shell", "image": "busybox:1.36", "command": ["sleep", "infinity"]}]}}),
    )
    .expect("debug-shell");
    until(&sim, Duration::from_secs(20), "shop's pods (web's and debug-shell) running", |c| {
        let pods = c.list("v1", "pods", Some("shop"));
        pods.iter().any(|p| p["metadata"]["name"] == "debug-shell")
            && pods.iter().all(|p| p["status"]["phase"] == "Running")
    })
    .await;

    // The profile's defaults (report-only: injection and re-injection audit, gateway.repair false).
    let mut agent = start(&sim, &config_at(&addr, "gateway:\n  repair: false\n")).await;
    assert_eq!(agent.addr, addr);
    agent.wait_leader().await;

    // Every alert of the source is loaded.
    let alerts_in_source = rules_src.lines().filter(|l| l.trim_start().starts_with("- alert:")).count();
    let loaded = prom.rules().await;
    assert_eq!(loaded.len(), alerts_in_source, "alerting rules loaded; prometheus log:\n{}", prom.log());

    // The target, labelled as under a ServiceMonitor, is up.
    let deadline = Instant::now() + Duration::from_secs(20);
    let up = loop {
        let up = prom.query("up{job=\"meshkeeper\"} == 1").await;
        if !up.is_empty() {
            break up;
        }
        assert!(Instant::now() < deadline, "target not up within 20 s: {}", prom.api("/api/v1/targets").await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let t_up = Instant::now();
    eprintln!("target up {:?} after the test started", t_test.elapsed());
    let m = &up[0]["metric"];
    for (k, v) in [
        ("namespace", "meshkeeper"),
        ("pod", POD),
        ("service", "meshkeeper"),
        ("endpoint", "http-metrics"),
        ("container", "meshkeeper"),
        ("instance", addr.as_str()),
    ] {
        assert_eq!(m[k], v, "target label {k}: {m}");
    }

    // Baseline: every unconditional dashboard query has data.
    check_queries(&prom, &queries, When::Baseline, &mut checked).await;
    // No metric label collided with a target label (no honor_labels: it would be exported_*).
    let names = prom.api("/api/v1/labels").await;
    let exported: Vec<&Value> = names
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n.as_str().is_some_and(|n| n.starts_with("exported_")))
        .collect();
    assert!(exported.is_empty(), "labels renamed by the scrape: {exported:?}");

    // 1. An unlabelled in-scope namespace (the seed's shop) pages; labelling it clears it.
    let shop = [("target_namespace", "shop"), ("label", "istio-injection=enabled")];
    let (alert, took) = prom.wait_firing("MeshkeeperNamespaceNotInjected", &shop).await;
    eprintln!("1. NamespaceNotInjected{{shop}} firing {:?} after the first scrape (waited {took:?})", t_up.elapsed());
    assert_eq!(alert["labels"]["namespace"], "meshkeeper", "the agent's namespace, not a renamed one: {alert}");
    assert_eq!(alert["labels"]["severity"], "warning");
    assert!(alert["labels"].get("exported_namespace").is_none(), "{alert}");
    assert!(
        alert["annotations"]["runbook_url"].as_str().is_some_and(|u| u.ends_with("#meshkeepernamespacenotinjected"))
    );
    assert!(alert["annotations"]["summary"].as_str().is_some_and(|s| s.contains("shop")), "{alert}");
    check_queries(&prom, &queries, When::NotCompliant, &mut checked).await;
    c.patch(
        "v1",
        "namespaces",
        "",
        "shop",
        PatchType::Merge,
        &json!({"metadata": {"labels": {"istio-injection": "enabled"}}}),
        "kubectl-label",
    )
    .expect("label shop");
    let took = prom.wait_cleared("MeshkeeperNamespaceNotInjected", &shop).await;
    eprintln!("1. cleared {took:?} after labelling shop");
    // shop's pods now lack the sidecar they would get: re-injection pending (report only, and
    // no controller for debug-shell).
    check_queries(&prom, &queries, When::PendingReinjection, &mut checked).await;

    // 2. A control-plane component scaled to 0 pages; scaling it back clears it.
    let pilot = [("target_namespace", "istio-system"), ("component", "istio-pilot")];
    let t = Instant::now();
    scale(&sim, "istio-pilot", 0);
    let (alert, _) = prom.wait_firing("MeshkeeperControlPlaneComponentNotReady", &pilot).await;
    eprintln!("2. ComponentNotReady{{istio-pilot}} firing {:?} after the scale to 0", t.elapsed());
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["labels"]["namespace"], "meshkeeper");
    let t = Instant::now();
    scale(&sim, "istio-pilot", 1);
    prom.wait_cleared("MeshkeeperControlPlaneComponentNotReady", &pilot).await;
    eprintln!("2. cleared {:?} after the scale back to 1", t.elapsed());

    // 3. A drifted gateway (repair off) pages; putting the nodePort back clears it.
    let drift =
        [("target_namespace", "istio-system"), ("gateway", "istio-ingressgateway"), ("field", "node_port:http2")];
    let t = Instant::now();
    set_http2_node_port(&sim, 32080);
    let (alert, _) = prom.wait_firing("MeshkeeperGatewayPinDrift", &drift).await;
    eprintln!("3. GatewayPinDrift{{http2}} firing {:?} after the patch", t.elapsed());
    assert_eq!(alert["labels"]["namespace"], "meshkeeper");
    let t = Instant::now();
    set_http2_node_port(&sim, 31380);
    prom.wait_cleared("MeshkeeperGatewayPinDrift", &drift).await;
    eprintln!("3. cleared {:?} after the patch back", t.elapsed());

    // 4. One injector outage: exactly one critical alert, over the whole outage.
    let deadline = Instant::now() + ALERT_WAIT;
    while !critical(&prom.alerts().await).is_empty() {
        assert!(Instant::now() < deadline, "critical alerts before the outage:\n{}", describe(&prom.alerts().await));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let injector = [("target_namespace", "istio-system"), ("component", "istio-sidecar-injector")];
    let mut seen = BTreeSet::new();
    let t = Instant::now();
    scale(&sim, "istio-sidecar-injector", 0);
    loop {
        let alerts = prom.alerts().await;
        seen.extend(critical(&alerts).into_iter().filter(|a| a["state"] == "firing").map(key));
        if alerts.iter().any(|a| a["state"] == "firing" && is(a, "MeshkeeperControlPlaneComponentNotReady", &injector))
        {
            break;
        }
        assert!(
            t.elapsed() < ALERT_WAIT,
            "the injector outage did not page within {ALERT_WAIT:?}:\n{}",
            describe(&alerts)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fired = t.elapsed();
    // Every rule group evaluated `for:` / INTERVAL + 2 more times with the outage visible: any
    // other rule the outage makes true would be firing by now.
    let cycles = (FOR_DURATION.as_secs() / INTERVAL.as_secs()) as usize + 2;
    let mut evaluations: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for (g, at) in prom.group_evaluations().await {
            evaluations.entry(g).or_default().insert(at);
        }
        let alerts = prom.alerts().await;
        seen.extend(critical(&alerts).into_iter().filter(|a| a["state"] == "firing").map(key));
        if evaluations.len() == 2 && evaluations.values().all(|e| e.len() > cycles) {
            break;
        }
        assert!(Instant::now() < deadline, "rule groups not evaluated {cycles} times in 20 s: {evaluations:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let firing = prom.firing().await;
    eprintln!(
        "4. injector outage: paged after {fired:?}; firing {:?} after the outage:\n{}",
        t.elapsed(),
        describe(&firing)
    );
    let pages: Vec<String> = critical(&firing).into_iter().map(key).collect();
    assert_eq!(
        pages,
        vec![key(
            &json!({"labels": {"alertname": "MeshkeeperControlPlaneComponentNotReady", "namespace": "meshkeeper",
            "target_namespace": "istio-system", "component": "istio-sidecar-injector", "severity": "critical"}})
        )],
        "one injector outage, one page; firing:\n{}",
        describe(&firing)
    );
    assert_eq!(seen.len(), 1, "critical alerts seen firing during the outage: {seen:?}");
    // Not trivially one: the webhook is unhealthy too; its alert is what the rules suppress.
    let webhook = "max by (namespace, webhook) (meshkeeper_injector_webhook_healthy{job=\"meshkeeper\"}) == 0";
    assert!(!prom.query(webhook).await.is_empty(), "the injector webhook reported unhealthy during the outage");
    let t = Instant::now();
    scale(&sim, "istio-sidecar-injector", 1);
    prom.wait_cleared("MeshkeeperControlPlaneComponentNotReady", &injector).await;
    let deadline = Instant::now() + ALERT_WAIT;
    while !critical(&prom.alerts().await).is_empty() {
        assert!(Instant::now() < deadline, "critical alerts after the outage:\n{}", describe(&prom.alerts().await));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("4. cleared {:?} after the injector was scaled back", t.elapsed());

    // The agent again, with every feature on, at the same address; another controller keeps
    // reverting the gateway pin.
    agent.sigterm();
    tokio::time::timeout(Duration::from_secs(10), agent.child.wait()).await.expect("exit within 10 s").expect("wait");
    let all_on = "injection:\n  mode: enforce\nreinjection:\n  mode: enforce\ngateway:\n  repair: true\nrepairs:\n  contest_reverts: 3\n  contest_window_minutes: 10\n";
    let agent = start(&sim, &config_at(&addr, all_on)).await;
    agent.wait_leader().await;
    check_queries(&prom, &queries, When::Enforce, &mut checked).await;
    let fighter = {
        let c = c.clone();
        let mut rx = c.subscribe();
        tokio::spawn(async move {
            let set = |c: &kube_sim::Cluster| {
                let _ = c.patch(
                    "v1",
                    "services",
                    "istio-system",
                    "istio-ingressgateway",
                    PatchType::Apply,
                    &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "istio-ingressgateway"},
                            "spec": {"ports": [{"name": "http2", "port": 80, "protocol": "TCP", "nodePort": 32080}]}}),
                    "istio-operator",
                );
            };
            set(&c);
            while let Ok(ev) = rx.recv().await {
                if ev.object["metadata"]["name"] == "istio-ingressgateway"
                    && ev.object["spec"]["ports"]
                        .as_array()
                        .is_some_and(|ps| ps.iter().any(|p| p["name"] == "http2" && p["nodePort"] == 31380))
                {
                    set(&c);
                }
            }
        })
    };
    let gw = [("target_namespace", "istio-system"), ("gateway", "istio-ingressgateway")];
    let t = Instant::now();
    let (alert, _) = prom.wait_firing("MeshkeeperGatewayPinContested", &gw).await;
    eprintln!("contest: GatewayPinContested firing {:?} after the contest began", t.elapsed());
    assert_eq!(alert["labels"]["severity"], "critical");
    check_queries(&prom, &queries, When::Contested, &mut checked).await;
    // One fault, one page: the drift a contest leaves is not paged again.
    let drifted = "meshkeeper_gateway_drift{job=\"meshkeeper\", field=\"node_port:http2\"} == 1";
    assert!(!prom.query(drifted).await.is_empty(), "http2 reported drifted while contested");
    let firing = prom.firing().await;
    assert!(!firing.iter().any(|a| is(a, "MeshkeeperGatewayPinDrift", &gw)), "{}", describe(&firing));
    // A scrape with every feature on, while contested (meshkeeper_repair_contested exists).
    let scrape_all_on = prom.dir.path().join("metrics-all-on.txt");
    std::fs::write(&scrape_all_on, agent.get("/metrics").await.1).expect("save /metrics");
    fighter.abort();

    if let Some((_, q)) = &queries {
        assert_eq!(checked, q.len(), "every dashboard query evaluated");
        eprintln!("dashboard: all {} queries returned data", q.len());
    }
    check_exposition(&queries, &scrape_all_on).await;
    // No rule failed to evaluate (e.g. a many-to-many match) at any point.
    for (group, rule) in prom.rules().await {
        assert_eq!(rule["health"], "ok", "{group}/{}: {}", rule["name"], rule["lastError"]);
    }
    eprintln!("firing at the end:\n{}", describe(&prom.firing().await));
    eprintln!("prometheus e2e took {:?}", t_test.elapsed());
}
