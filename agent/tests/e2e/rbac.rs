//! The agent under the Helm chart's own RBAC, on kube-sim with authorization enforced: the
//! rendered ClusterRole/Role are applied, the agent authenticates as the chart's
//! ServiceAccount, and every request it makes must be allowed; a write the chart does not
//! grant is refused with 403 and reported, never retried hot.

use std::time::Duration;

use kube_sim::{Sim, SimOptions};
use serde_json::{Value, json};

use crate::common::*;

/// `helm template` of the chart with extra `--set`s, as JSON objects.
async fn render(sets: &[&str]) -> Vec<Value> {
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/../helm/meshkeeper");
    let mut cmd = tokio::process::Command::new("helm");
    cmd.args(["template", "meshkeeper", chart, "--namespace", "meshkeeper"]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    let out = cmd.output().await.expect("helm template");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    serde_yaml::Deserializer::from_str(&text)
        .filter_map(|d| Value::deserialize(d).ok())
        .filter(|v| v.is_object())
        .collect()
}

use serde::Deserialize;

async fn rbac_cluster(sets: &[&str]) -> (Sim, std::path::PathBuf) {
    rbac_cluster_seeded(sets, false).await
}

/// With `reinjection`: also the re-injection demo's workloads (pods without sidecars).
async fn rbac_cluster_seeded(sets: &[&str], reinjection: bool) -> (Sim, std::path::PathBuf) {
    let sim = Sim::start(SimOptions::default().rbac(true)).await.expect("sim");
    let c = sim.cluster();
    if reinjection {
        kube_sim::seed::asm_onprem_ready(&c).await.expect("seed");
        kube_sim::seed::reinjection_demo(&c).await.expect("demo seed");
    } else {
        kube_sim::seed::asm_onprem(&c).expect("seed");
    }
    c.create("v1", "namespaces", "", json!({"metadata": {"name": "meshkeeper"}})).unwrap();
    for obj in render(sets).await {
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        let kind = kind.as_str();
        let (api, plural) = match kind {
            "ServiceAccount" => ("v1", "serviceaccounts"),
            "ClusterRole" => ("rbac.authorization.k8s.io/v1", "clusterroles"),
            "ClusterRoleBinding" => ("rbac.authorization.k8s.io/v1", "clusterrolebindings"),
            "Role" => ("rbac.authorization.k8s.io/v1", "roles"),
            "RoleBinding" => ("rbac.authorization.k8s.io/v1", "rolebindings"),
            _ => continue,
        };
        let ns = obj["metadata"]["namespace"].as_str().unwrap_or("meshkeeper").to_string();
        let ns = if matches!(kind, "ClusterRole" | "ClusterRoleBinding") { String::new() } else { ns };
        c.create(api, plural, &ns, obj).unwrap_or_else(|e| panic!("{kind}: {}", e.message));
    }
    let kubeconfig = sim.kubeconfig_for_service_account("meshkeeper", "meshkeeper").expect("SA kubeconfig");
    (sim, kubeconfig)
}

async fn start_as(sim: &Sim, kubeconfig: &std::path::Path, extra: &str) -> Agent {
    let f = tmp_file(&config(extra));
    let mut agent = start_with(
        sim,
        "",
        &["run", "--kubeconfig", kubeconfig.to_str().unwrap(), "--config", f.path().to_str().unwrap()],
    )
    .await;
    agent.keep(f);
    agent
}

fn denied(sim: &Sim) -> Vec<kube_sim::RequestRecord> {
    sim.requests().into_iter().filter(|r| r.user_agent.starts_with("meshkeeper/") && r.code == 403).collect()
}

#[tokio::test]
async fn the_default_chart_rbac_allows_everything_the_default_agent_does() {
    if !have("helm") {
        return;
    }
    let (sim, kubeconfig) = rbac_cluster(&[]).await;
    let agent = start_as(&sim, &kubeconfig, "").await;
    agent.wait_ready().await;
    agent.wait_leader().await;
    agent.wait_finding("InjectionLabelMissing", true, Duration::from_secs(10)).await;
    // The probe asked for every permission: none denied.
    assert!(!agent.has_finding("PermissionDenied").await, "{}", agent.status().await);
    assert!(denied(&sim).is_empty(), "{:?}", denied(&sim));
    // Events were allowed too.
    assert!(
        sim.requests()
            .iter()
            .any(|r| r.user_agent.starts_with("meshkeeper/") && r.resource == "events" && r.code < 300)
    );
}

#[tokio::test]
async fn enforcement_needs_its_rbac_value_and_a_refusal_is_reported() {
    if !have("helm") {
        return;
    }
    // Enforce, but the chart rendered without rbac.injectionEnforce: patches are refused.
    let (sim, kubeconfig) = rbac_cluster(&[]).await;
    let agent = start_as(&sim, &kubeconfig, "injection:\n  mode: enforce\n").await;
    agent.wait_leader().await;
    agent.wait_finding("PermissionDenied", true, Duration::from_secs(10)).await;
    agent.wait_finding("WriteForbidden", true, Duration::from_secs(10)).await;
    let refused = denied(&sim);
    assert!(refused.iter().all(|r| r.verb == "patch" && r.resource == "namespaces"), "{refused:?}");
    assert!(refused.len() <= 6, "no hot loop: {} refusals", refused.len());

    // With the value set, the same agent config works.
    let (sim, kubeconfig) = rbac_cluster(&["rbac.injectionEnforce=true"]).await;
    let agent = start_as(&sim, &kubeconfig, "injection:\n  mode: enforce\n").await;
    agent.wait_leader().await;
    until(&sim, Duration::from_secs(10), "shop labelled under the chart's RBAC", |_| {
        label(&sim, "shop", "istio-injection").as_deref() == Some("enabled")
    })
    .await;
    assert!(denied(&sim).is_empty(), "{:?}", denied(&sim));
    assert!(!agent.has_finding("PermissionDenied").await);
}

#[tokio::test]
async fn reinjection_restarts_under_the_charts_rbac_only_with_its_value() {
    if !have("helm") {
        return;
    }
    let restarts = |sim: &Sim| {
        sim.requests()
            .into_iter()
            .filter(|r| r.user_agent.starts_with("meshkeeper/") && r.verb == "patch" && r.resource == "deployments")
            .collect::<Vec<_>>()
    };
    // Without rbac.reinjection.enforce: refused, reported, not retried hot.
    let (sim, kubeconfig) = rbac_cluster_seeded(&[], true).await;
    let agent = start_as(&sim, &kubeconfig, "reinjection:\n  mode: enforce\n").await;
    agent.wait_leader().await;
    agent.wait_finding("WriteForbidden", true, Duration::from_secs(15)).await;
    // The probe's access reviews may answer after the first refused write.
    agent.wait_finding("PermissionDenied", true, Duration::from_secs(10)).await;
    assert!(
        denied(&sim).iter().all(|r| r.verb == "patch"),
        "reads (the injector ConfigMap by name) are allowed: {:?}",
        denied(&sim)
    );
    assert!(restarts(&sim).len() <= 6, "no hot loop");
    // With it: the workloads roll, and nothing is refused.
    let (sim, kubeconfig) = rbac_cluster_seeded(&["rbac.reinjection.enforce=true"], true).await;
    let agent = start_as(&sim, &kubeconfig, "reinjection:\n  mode: enforce\n").await;
    agent.wait_leader().await;
    until(&sim, Duration::from_secs(30), "payments/api restarted under the chart's RBAC", |c| {
        c.get("apps/v1", "deployments", "payments", "api").is_some_and(|d| {
            d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_string()
        })
    })
    .await;
    assert!(denied(&sim).is_empty(), "{:?}", denied(&sim));
    assert!(!agent.has_finding("PermissionDenied").await);
    assert!(!agent.has_finding("WatchForbidden").await, "the injector's ConfigMap is watched by name");
}
