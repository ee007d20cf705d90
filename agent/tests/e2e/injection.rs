//! Issue 4 on kube-sim: labels restored, corrected, left alone, only by the leader, with
//! retries on 409/500 and a finding on 403.

use std::time::Duration;

use serde_json::json;

use crate::common::*;

const ENFORCE: &str = "injection:\n  mode: enforce\n";

#[tokio::test]
async fn enforce_labels_new_restores_removed_corrects_wrong_and_leaves_disabled() {
    let sim = cluster().await;
    let agent = start(&sim, &config(ENFORCE)).await;
    agent.wait_leader().await;
    // The seeded drift: shop is labelled, its other labels survive.
    until(&sim, Duration::from_secs(10), "shop labelled", |_| {
        label(&sim, "shop", "istio-injection").as_deref() == Some("enabled")
    })
    .await;
    assert_eq!(label(&sim, "shop", "team").as_deref(), Some("shop"), "other labels survive");
    if !have("kubectl") {
        return;
    }
    // A label removed with kubectl is restored.
    let (ok, out) = kubectl(&sim, &["label", "ns", "bookinfo", "istio-injection-"]).await;
    assert!(ok, "{out}");
    until(&sim, Duration::from_secs(5), "bookinfo restored", |_| {
        label(&sim, "bookinfo", "istio-injection").as_deref() == Some("enabled")
    })
    .await;
    // A wrong value is corrected.
    let (ok, out) = kubectl(&sim, &["label", "ns", "bookinfo", "istio-injection=true", "--overwrite"]).await;
    assert!(ok, "{out}");
    until(&sim, Duration::from_secs(5), "bookinfo corrected", |_| {
        label(&sim, "bookinfo", "istio-injection").as_deref() == Some("enabled")
    })
    .await;
    // A new namespace is labelled.
    let ns = tmp_file("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-new\n  labels:\n    owner: x\n");
    let (ok, out) = kubectl(&sim, &["apply", "-f", ns.path().to_str().unwrap()]).await;
    assert!(ok, "{out}");
    until(&sim, Duration::from_secs(5), "team-new labelled", |_| {
        label(&sim, "team-new", "istio-injection").as_deref() == Some("enabled")
    })
    .await;
    assert_eq!(label(&sim, "team-new", "owner").as_deref(), Some("x"));
    // `disabled` is a deliberate opt-out: left alone, reported.
    let (ok, out) = kubectl(&sim, &["label", "ns", "team-new", "istio-injection=disabled", "--overwrite"]).await;
    assert!(ok, "{out}");
    agent.wait_finding("InjectionDisabled", true, Duration::from_secs(5)).await;
    assert_eq!(label(&sim, "team-new", "istio-injection").as_deref(), Some("disabled"));
    // Every repair came from meshkeeper's field manager, as a merge patch of the one label.
    let writes = writes_by_meshkeeper(&sim, "namespaces");
    assert!(writes.iter().all(|w| w.verb == "patch" && w.field_manager.as_deref() == Some("meshkeeper")), "{writes:?}");
    assert!(agent.metric("meshkeeper_label_repairs_total{result=\"success\"}").await.unwrap_or(0.0) >= 4.0);
    // Idempotent: after an unrelated change the evaluator runs again and writes nothing.
    agent.wait_finding("InjectionLabelMissing", false, Duration::from_secs(5)).await;
    let c = sim.cluster();
    eventually(Duration::from_secs(2), "repair Events", || {
        let found = c
            .list("events.k8s.io/v1", "events", None)
            .iter()
            .any(|e| e["reason"] == "InjectionLabelApplied" || e["reason"] == "InjectionLabelRestored");
        async move { found }
    })
    .await;
    let before = writes_by_meshkeeper(&sim, "namespaces").len();
    let passes =
        agent.metric("meshkeeper_reconcile_duration_seconds_count{controller=\"evaluate\"}").await.unwrap_or(0.0);
    c.patch(
        "v1",
        "namespaces",
        "",
        "bookinfo",
        kube_sim::PatchType::Merge,
        &json!({"metadata": {"labels": {"unrelated": "change"}}}),
        "test",
    )
    .unwrap();
    let addr = agent.addr.clone();
    eventually(Duration::from_secs(5), "another evaluation pass", || {
        let addr = addr.clone();
        async move {
            let text = http(&addr, "GET", "/metrics").await.2;
            text.lines()
                .find_map(|l| l.strip_prefix("meshkeeper_reconcile_duration_seconds_count{controller=\"evaluate\"} "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .is_some_and(|n| n > passes)
        }
    })
    .await;
    assert_eq!(writes_by_meshkeeper(&sim, "namespaces").len(), before, "a compliant cluster gets zero writes");
}

#[tokio::test]
async fn audit_mode_makes_zero_writes() {
    let sim = cluster().await;
    let agent = start(&sim, &config("injection:\n  mode: audit\n")).await;
    agent.wait_leader().await;
    agent.wait_finding("InjectionLabelMissing", true, Duration::from_secs(10)).await;
    remove_injection_label(&sim, "bookinfo");
    agent.wait_finding("InjectionLabelMissing", true, Duration::from_secs(5)).await;
    let addr = agent.addr.clone();
    eventually(Duration::from_secs(5), "bookinfo reported", || {
        let addr = addr.clone();
        async move { http(&addr, "GET", "/status").await.2.contains("namespace bookinfo has no injection label") }
    })
    .await;
    assert!(writes_by_meshkeeper(&sim, "namespaces").is_empty());
    assert_eq!(label(&sim, "shop", "istio-injection"), None);
}

#[tokio::test]
async fn a_follower_makes_zero_writes() {
    let sim = cluster().await;
    // Another replica holds the Lease for a long time.
    let now = kube_sim::store::now_rfc3339().replace('Z', ".000000Z");
    sim.cluster()
        .create("coordination.k8s.io/v1", "leases", "meshkeeper", json!({"metadata": {"name": "meshkeeper"},
            "spec": {"holderIdentity": "other-replica", "leaseDurationSeconds": 3600, "acquireTime": now, "renewTime": now, "leaseTransitions": 0}}))
        .unwrap();
    let agent = start(&sim, &config(ENFORCE)).await;
    agent.wait_ready().await;
    agent.wait_finding("InjectionLabelMissing", true, Duration::from_secs(10)).await;
    assert_eq!(agent.status().await["role"], "follower");
    assert_eq!(agent.metric("meshkeeper_leader").await, Some(0.0));
    assert!(writes_by_meshkeeper(&sim, "namespaces").is_empty(), "a follower never writes");
}

#[tokio::test]
async fn server_errors_and_conflicts_are_retried_and_403_is_a_finding() {
    let sim = cluster().await;
    sim.faults().fail_next("patch", "namespaces", 1, 500);
    sim.faults().fail_next("patch", "namespaces", 1, 409);
    let agent = start(&sim, &config(ENFORCE)).await;
    agent.wait_leader().await;
    until(&sim, Duration::from_secs(15), "shop labelled despite a 500 and a 409", |_| {
        label(&sim, "shop", "istio-injection").as_deref() == Some("enabled")
    })
    .await;
    let codes: Vec<u16> = writes_by_meshkeeper(&sim, "namespaces").iter().map(|w| w.code).collect();
    assert!(codes.contains(&500) && codes.contains(&409) && codes.contains(&200), "{codes:?}");

    // RBAC refuses from now on: a finding and a metric, and no hot loop.
    sim.faults().fail_next("patch", "namespaces", 1000, 403);
    remove_injection_label(&sim, "bookinfo");
    agent.wait_finding("WriteForbidden", true, Duration::from_secs(5)).await;
    assert!(agent.metric("meshkeeper_label_repairs_total{result=\"forbidden\"}").await.unwrap_or(0.0) >= 1.0);
    let forbidden = writes_by_meshkeeper(&sim, "namespaces").iter().filter(|w| w.code == 403).count();
    assert!(forbidden <= 3, "cooldown keeps 403s rare, saw {forbidden}");
    assert_eq!(agent.get("/healthz").await.0, 200, "no crash");
}
