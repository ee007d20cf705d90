//! Issue 2: the daemon starts against a cluster, becomes ready, serves /metrics and /status,
//! stops on SIGTERM (releasing its Lease), and refuses a bad configuration.

use std::time::{Duration, Instant};

use crate::common::*;

#[tokio::test]
async fn run_becomes_ready_serves_metrics_and_status_and_stops_on_sigterm() {
    let sim = cluster().await;
    let mut agent = start(&sim, &config("")).await;
    agent.wait_ready().await;
    agent.wait_leader().await;

    let (code, ctype, metrics) = http(&agent.addr, "GET", "/metrics").await;
    assert_eq!(code, 200);
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    for family in [
        "meshkeeper_build_info",
        "meshkeeper_leader 1",
        "meshkeeper_watch_events_total",
        "meshkeeper_cache_objects{resource=\"namespaces\"}",
        "meshkeeper_reconcile_duration_seconds_bucket",
        "meshkeeper_findings{check=\"injection\",severity=\"warning\"}",
        // By code, while the finding is there (audit mode: `shop` stays unlabelled).
        "meshkeeper_finding{check=\"injection\",code=\"InjectionLabelMissing\",severity=\"warning\"}",
        "process_resident_memory_bytes",
    ] {
        assert!(metrics.contains(family), "missing {family}");
    }
    if have("promtool") {
        let mut child = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), metrics.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let status = agent.status().await;
    assert_eq!(status["ready"], true);
    assert_eq!(status["role"], "leader");
    assert_eq!(status["watches"]["namespaces"]["state"], "synced");
    assert_eq!(status["leader_election"]["state"], "leading");
    assert_eq!(status["config"]["profile"], "asm-onprem");
    assert!(
        status["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["reason"] == "InjectionLabelMissing" && f["object"]["name"] == "shop")
    );
    let (code, _, _) = http(&agent.addr, "POST", "/status").await;
    assert_eq!(code, 405);

    let lease = sim.cluster().get("coordination.k8s.io/v1", "leases", "meshkeeper", "meshkeeper").expect("lease");
    assert!(lease["spec"]["holderIdentity"].as_str().is_some_and(|h| !h.is_empty()));
    // The holder renews from the version it wrote: one PUT a round, no GET.
    sim.clear_requests();
    eventually(Duration::from_secs(20), "three renewals", || {
        let sim = &sim;
        async move { requests_by_meshkeeper(sim, "update", "leases").len() >= 3 }
    })
    .await;
    assert_eq!(requests_by_meshkeeper(&sim, "get", "leases").len(), 0, "renewals without a GET");

    let start = Instant::now();
    agent.sigterm();
    let status =
        tokio::time::timeout(Duration::from_secs(10), agent.child.wait()).await.expect("exit within 10 s").unwrap();
    assert_eq!(status.code(), Some(0), "logs:\n{}", agent.logs());
    eprintln!("SIGTERM to exit: {:?}", start.elapsed());
    let lease = sim.cluster().get("coordination.k8s.io/v1", "leases", "meshkeeper", "meshkeeper").expect("lease");
    assert!(lease["spec"]["holderIdentity"].as_str().is_none_or(str::is_empty), "the Lease is released: {lease}");
}

/// The target labels a ServiceMonitor or annotation-based scrape attaches: a meshkeeper label
/// of the same name would be renamed `exported_<name>` and its queries would silently break.
const TARGET_LABELS: [&str; 7] = ["namespace", "pod", "job", "instance", "service", "container", "endpoint"];

#[tokio::test]
async fn every_metric_family_with_every_feature_on_carries_no_target_label_name() {
    let sim = cluster().await;
    // NB: `meshkeeper_finding` and `meshkeeper_workloads_pending_reinjection` have series only
    // while a finding and a waiting workload exist, and the repairs clear the seeded ones within
    // a second: a bare pod that predates shop's label keeps one of each (NoControllerToRestart).
    let bare = serde_json::json!({"metadata": {"name": "debug"}, "spec": {"containers": [{"name": "sh", "image": "busybox:1.36"}]}});
    sim.cluster().create("v1", "pods", "shop", bare).expect("a bare pod");
    let extra = "injection:\n  mode: enforce\nreinjection:\n  mode: enforce\n  per_namespace_metrics: true\n  evict_on_delete: true\ngateway:\n  repair: true\n";
    let agent = start(&sim, &config(extra)).await;
    agent.wait_ready().await;
    agent.wait_leader().await;
    agent.wait_metrics_line("meshkeeper_ready 1", Duration::from_secs(10)).await;
    // The label repair of `shop` makes it compliant.
    agent
        .wait_metrics_line(
            "meshkeeper_namespace_injection_compliant{label=\"istio-injection=enabled\",target_namespace=\"shop\"} 1",
            Duration::from_secs(10),
        )
        .await;
    let text = agent.get("/metrics").await.1;
    let mut families = std::collections::BTreeSet::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (name, rest) = line.split_once(['{', ' ']).unwrap();
        families.insert(name.to_string());
        if let Some(labels) = line.strip_prefix(name).and_then(|r| r.strip_prefix('{')) {
            let labels = &labels[..labels.rfind('}').unwrap()];
            for pair in labels.split("\",") {
                let key = pair.split('=').next().unwrap();
                assert!(!TARGET_LABELS.contains(&key), "{name} has a label {key:?}: {line}");
            }
        }
        let _ = rest;
    }
    for family in [
        "meshkeeper_config_info",
        "meshkeeper_ready",
        "meshkeeper_last_evaluation_timestamp_seconds",
        "meshkeeper_kube_requests_total",
        "meshkeeper_kube_request_duration_seconds_bucket",
        "meshkeeper_namespace_injection_compliant",
        "meshkeeper_control_plane_component_ready",
        "meshkeeper_injector_webhook_backend_ready",
        "meshkeeper_cluster_nodes",
        "meshkeeper_cluster_allocatable_cpu_cores",
        "meshkeeper_cluster_allocatable_memory_bytes",
        "meshkeeper_gateway_pinned",
        "meshkeeper_pods_by_namespace",
        "meshkeeper_workloads_pending_reinjection",
    ] {
        assert!(families.contains(family), "missing {family}:\n{text}");
    }
    assert!(!families.contains("meshkeeper_cluster_capacity"), "capacity is split by unit");
    for line in [
        "meshkeeper_config_info{control_plane=\"true\",dry_run=\"false\",gateway_mode=\"manual\",gateway_repair=\"true\",injection_mode=\"enforce\",profile=\"asm-onprem\",reinjection_mode=\"enforce\"} 1",
        "meshkeeper_namespace_injection_compliant{label=\"istio-injection=enabled\",target_namespace=\"shop\"} 1",
        "meshkeeper_reinjections_total{kind=\"pod\",result=\"forbidden\"} 0",
        "meshkeeper_actions_total{action=\"injection_label\",result=\"error\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
    }
    // The agent's own client: the watches, the repairs, the Lease's renewals.
    // (Initial lists are streamed: WATCHes, no LIST.)
    for series in ["{code=\"200\",verb=\"WATCH\"}", "{code=\"200\",verb=\"PATCH\"}", "{code=\"201\",verb=\"CREATE\"}"] {
        let v = agent.metric(&format!("meshkeeper_kube_requests_total{series}")).await;
        assert!(v.is_some_and(|v| v >= 1.0), "{series}: {v:?}");
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let last = agent.metric("meshkeeper_last_evaluation_timestamp_seconds{check=\"injection\"}").await.unwrap();
    assert!((now - last).abs() < 60.0, "last evaluation {last}, now {now}");
}

#[tokio::test]
async fn readiness_waits_for_the_first_list() {
    let sim = cluster().await;
    // The first namespace list (a streaming list: a WATCH) fails twice; /readyz must stay 503
    // until a list succeeds.
    sim.faults().fail_next("watch", "namespaces", 2, 500);
    let agent = start(&sim, &config("")).await;
    let (code, body) = agent.get("/readyz").await;
    if code == 503 {
        assert!(body.contains("namespaces"), "{body}");
    }
    agent.wait_ready().await;
    assert!(agent.metric("meshkeeper_watch_restarts_total{resource=\"namespaces\"}").await.unwrap_or(0.0) >= 1.0);
    assert_eq!(agent.get("/healthz").await.0, 200);
}

#[tokio::test]
async fn invalid_config_exits_2_and_names_the_key() {
    let f = tmp_file("gateway:\n  node_ports:\n    http2: 80\n");
    let out = meshkeeper().args(["run", "--config"]).arg(f.path()).output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("gateway.node_ports.http2: 80 is outside 30000-32767"), "{err}");
}

/// Runs `meshkeeper check` against the sim with an empty config file.
async fn check(sim: &kube_sim::Sim, config: &tempfile::NamedTempFile, extra: &[&str]) -> std::process::Output {
    meshkeeper()
        .arg("check")
        .args(extra)
        .arg("--config")
        .arg(config.path())
        .arg("--kubeconfig")
        .arg(sim.kubeconfig_path())
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn check_reports_and_exits_by_severity() {
    let sim = cluster().await;
    let f = tmp_file("");
    let out = check(&sim, &f, &["--output", "json"]).await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(out.status.code(), Some(0), "warnings only: {v}");
    assert_eq!(v["summary"]["errors"], 0);
    assert!(v["summary"]["warnings"].as_u64().unwrap() >= 1, "shop lacks its label");

    // Scale the pilot away: an error, exit 1.
    sim.cluster()
        .patch(
            "apps/v1",
            "deployments",
            "istio-system",
            "istio-pilot",
            kube_sim::PatchType::Merge,
            &serde_json::json!({"spec": {"replicas": 0}}),
            "test",
        )
        .unwrap();
    until(&sim, Duration::from_secs(5), "pilot pods gone", |c| {
        c.list("v1", "pods", Some("istio-system"))
            .iter()
            .all(|p| !p["metadata"]["name"].as_str().unwrap_or("").starts_with("istio-pilot"))
    })
    .await;
    let out = check(&sim, &f, &[]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("× istio-pilot: at least 1 replica(s) available and ready"), "{text}");
    assert!(text.contains("hint: kubectl -n istio-system describe deploy istio-pilot"), "{text}");

    // Nothing listening: could not run, exit 2.
    sim.stop().await;
    let out = check(&sim, &f, &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
}

/// `meshkeeper demo`: each seeded workload that predates injection is re-injected once (one at a
/// time: the demo allows one rollout in progress), the bare pod is reported, SIGTERM stops it.
#[tokio::test]
async fn the_demo_reinjects_every_seeded_workload_once() {
    use tokio::io::AsyncBufReadExt;
    let mut child = meshkeeper()
        .args(["demo", "--port", "0", "--log-format", "json"])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the demo");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut restarts: Vec<String> = Vec::new();
    let mut reported_bare_pod = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while restarts.len() < 4 || !reported_bare_pod {
        let line = tokio::time::timeout_at(deadline.into(), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("the demo did not re-inject its workloads within 90 s: {restarts:?}"))
            .expect("read")
            .expect("the demo ended early");
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if v["kind"] == "reinjection" && v["result"] == "success" {
            restarts.push(v["object"].as_str().unwrap_or_default().to_string());
        }
        if v["reason"] == "NoControllerToRestart" && v["object"] == "pod/payments/debug-shell" {
            reported_bare_pod = true;
        }
    }
    restarts.sort();
    assert_eq!(
        restarts,
        ["daemonset/edge/log-shipper", "deployment/payments/api", "deployment/shop/web", "statefulset/payments/ledger"],
        "each workload that predates injection restarted once (edge/metrics-exporter is the injector's neverInjectSelector's)"
    );
    let pid = child.id().unwrap();
    std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("exits").unwrap();
    assert!(status.success(), "{status}");
}

/// Issue 12: the initial state comes as a streaming list where the server serves one (no LIST
/// at all), and from paged LISTs where it refuses (etcd 3.4: an ERROR event naming
/// RequestWatchProgress) — a fallback, not a watch failure.
#[tokio::test]
async fn initial_lists_stream_where_served_and_page_where_refused() {
    for streaming in [true, false] {
        let sim = cluster_with(kube_sim::SimOptions::default().streaming_lists(streaming), true).await;
        let agent = start(&sim, &config("")).await;
        agent.wait_ready().await;
        let lists = requests_by_meshkeeper(&sim, "list", "").len();
        let watches = requests_by_meshkeeper(&sim, "watch", "").len();
        let text = agent.get("/metrics").await.1;
        let restarts: Vec<&str> =
            text.lines().filter(|l| l.starts_with("meshkeeper_watch_restarts_total{") && !l.ends_with(" 0")).collect();
        assert!(
            restarts.is_empty(),
            "streaming={streaming}: a refused streaming list is no watch failure: {restarts:?}"
        );
        let synced = text.lines().filter(|l| l.starts_with("meshkeeper_watch_synced{")).count();
        assert!(synced >= 5, "{text}");
        if streaming {
            assert_eq!(lists, 0, "every initial state streamed, no LIST");
            assert!(watches >= synced);
        } else {
            assert_eq!(lists, synced, "one paged LIST per watch after the refusal");
            assert!(agent.logs().contains("refused a streaming list"), "{}", agent.logs());
        }
        eprintln!("streaming lists {streaming}: {lists} LISTs, {watches} WATCHes for {synced} watches");
    }
}
