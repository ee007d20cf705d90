//! Issue 5 on kube-sim: the health gauge follows a component within a second; crash loops,
//! skew, CA problems, backends, a second mesh, capacity and mTLS are reported.

use std::time::{Duration, Instant};

use kube_sim::PatchType;
use serde_json::json;

use crate::common::*;

async fn gauge(agent: &Agent, series: &str, want: f64, within: Duration) -> Duration {
    let start = Instant::now();
    let addr = agent.addr.clone();
    let series = series.to_string();
    eventually(within, &format!("{series} == {want}"), || {
        let (addr, series) = (addr.clone(), series.clone());
        async move {
            let text = http(&addr, "GET", "/metrics").await.2;
            text.lines().any(|l| {
                l.strip_prefix(series.as_str())
                    .and_then(|r| r.strip_prefix(' '))
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    == Some(want)
            })
        }
    })
    .await;
    start.elapsed()
}

fn scale(sim: &kube_sim::Sim, name: &str, replicas: i64) {
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
        .unwrap();
}

#[tokio::test]
async fn health_follows_a_component_scaled_to_zero_and_back_within_a_second() {
    let sim = cluster().await;
    let agent = start(&sim, &config("")).await;
    agent.wait_ready().await;
    gauge(&agent, "meshkeeper_control_plane_healthy{target_namespace=\"istio-system\"}", 1.0, Duration::from_secs(10))
        .await;
    assert_eq!(
        agent.metric("meshkeeper_injector_webhook_healthy{webhook=\"istio-sidecar-injector\"}").await,
        Some(1.0)
    );
    assert!(
        agent
            .metric("meshkeeper_injector_ca_expiry_timestamp_seconds{webhook=\"istio-sidecar-injector\"}")
            .await
            .unwrap_or(0.0)
            > 1.7e9
    );
    assert_eq!(
        agent
            .metric("meshkeeper_control_plane_version_info{component=\"istio-pilot\",target_namespace=\"istio-system\",version=\"1.4.10-asm.18\"}")
            .await,
        Some(1.0)
    );

    scale(&sim, "istio-pilot", 0);
    let down = gauge(
        &agent,
        "meshkeeper_control_plane_healthy{target_namespace=\"istio-system\"}",
        0.0,
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(
        agent
            .metric(
                "meshkeeper_control_plane_component_ready{component=\"istio-pilot\",target_namespace=\"istio-system\"}"
            )
            .await,
        Some(0.0)
    );
    scale(&sim, "istio-pilot", 1);
    let up = gauge(
        &agent,
        "meshkeeper_control_plane_healthy{target_namespace=\"istio-system\"}",
        1.0,
        Duration::from_secs(1),
    )
    .await;
    eprintln!("health gauge: down after {down:?}, up after {up:?}");
    // The injector going away closes the injection gate.
    scale(&sim, "istio-sidecar-injector", 0);
    gauge(
        &agent,
        "meshkeeper_injector_webhook_healthy{webhook=\"istio-sidecar-injector\"}",
        0.0,
        Duration::from_secs(1),
    )
    .await;
    agent.wait_finding("InjectorNoReadyBackend", true, Duration::from_secs(1)).await;
}

#[tokio::test]
async fn crash_loops_skew_ca_second_mesh_capacity_and_mtls_are_reported() {
    let sim = cluster().await;
    let agent = start(&sim, &config("control_plane:\n  mtls_mode: strict\n")).await;
    agent.wait_ready().await;
    // mTLS: the seeded MeshPolicy is PERMISSIVE.
    agent.wait_finding("MtlsModeMismatch", true, Duration::from_secs(10)).await;
    // GKE's own pilot in gke-system is not a second mesh.
    assert!(!agent.has_finding("SecondControlPlane").await);

    // Crash loop: galley's container crashes after a restart.
    let actors = sim.actors().expect("actors");
    actors.set_crashing("galley", true);
    let c = sim.cluster();
    for p in c.list("v1", "pods", Some("istio-system")) {
        let name = p["metadata"]["name"].as_str().unwrap().to_string();
        if name.starts_with("istio-galley") {
            c.delete("v1", "pods", "istio-system", &name).unwrap();
        }
    }
    agent.wait_finding("ComponentCrashLooping", true, Duration::from_secs(5)).await;

    // Version skew.
    c.patch("apps/v1", "deployments", "istio-system", "istio-citadel", PatchType::Strategic,
        &json!({"spec": {"template": {"spec": {"containers": [{"name": "citadel", "image": "gcr.io/gke-release/asm/citadel:1.4.9-asm.1"}]}}}}), "kubectl").unwrap();
    agent.wait_finding("VersionSkew", true, Duration::from_secs(5)).await;

    // Expired, then soon-expiring CA.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let expired = kube_sim::seed::ca_pem_between(now - 400 * 86_400, now - 86_400);
    c.upsert(
        "admissionregistration.k8s.io/v1",
        "mutatingwebhookconfigurations",
        "",
        kube_sim::seed::injector_webhook(&expired),
    )
    .unwrap();
    agent.wait_finding("CaExpired", true, Duration::from_secs(5)).await;
    let soon = kube_sim::seed::ca_pem_between(now - 86_400, now + 5 * 86_400);
    c.upsert(
        "admissionregistration.k8s.io/v1",
        "mutatingwebhookconfigurations",
        "",
        kube_sim::seed::injector_webhook(&soon),
    )
    .unwrap();
    agent.wait_finding("CaExpiringSoon", true, Duration::from_secs(5)).await;
    agent.wait_finding("CaExpired", false, Duration::from_secs(5)).await;

    // A second mesh.
    c.create("v1", "namespaces", "", json!({"metadata": {"name": "other-mesh"}})).unwrap();
    c.create("apps/v1", "deployments", "other-mesh", json!({"metadata": {"name": "istiod"}, "spec": {"replicas": 1,
        "selector": {"matchLabels": {"app": "istiod"}}, "template": {"metadata": {"labels": {"app": "istiod"}}, "spec": {"containers": [{"name": "discovery", "image": "docker.io/istio/pilot:1.20.0"}]}}}})).unwrap();
    agent.wait_finding("SecondControlPlane", true, Duration::from_secs(5)).await;

    // Capacity below the guide's minimum.
    c.delete("v1", "nodes", "", "user-node-3").unwrap();
    agent.wait_finding("CapacityBelowMinimum", true, Duration::from_secs(5)).await;
    assert_eq!(agent.metric("meshkeeper_cluster_nodes").await, Some(3.0));
}
