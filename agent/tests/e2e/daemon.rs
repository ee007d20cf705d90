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

    let start = Instant::now();
    agent.sigterm();
    let status =
        tokio::time::timeout(Duration::from_secs(10), agent.child.wait()).await.expect("exit within 10 s").unwrap();
    assert_eq!(status.code(), Some(0), "logs:\n{}", agent.logs());
    eprintln!("SIGTERM to exit: {:?}", start.elapsed());
    let lease = sim.cluster().get("coordination.k8s.io/v1", "leases", "meshkeeper", "meshkeeper").expect("lease");
    assert!(lease["spec"]["holderIdentity"].as_str().is_none_or(str::is_empty), "the Lease is released: {lease}");
}

#[tokio::test]
async fn readiness_waits_for_the_first_list() {
    let sim = cluster().await;
    // The first namespace list fails twice; /readyz must stay 503 until a list succeeds.
    sim.faults().fail_next("list", "namespaces", 2, 500);
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
