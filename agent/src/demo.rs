//! `meshkeeper demo`: the real agent against an in-process simulated cluster (kube-sim) seeded
//! with the install guide's asm-onprem layout, some drift, and workloads that predate
//! injection, so a newcomer sees it work with no cluster at all: labels restored, the gateway
//! pinned, and the workloads re-injected one by one. `--scenario drift` keeps injecting drift
//! (a label removed, a nodePort moved, an injector outage that holds re-injection, an upgrade
//! that rolls every proxy).

use std::time::Duration;

use kube_sim::{KubeletOptions, PatchType, Sim, SimOptions};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::cli::Scenario;
use crate::client::{self, ClientOptions};
use crate::config::{GatewayMode, Mode, Settings};
use crate::runtime;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot start the simulated cluster: {0}")]
    Sim(#[source] std::io::Error),
    #[error("cannot seed the simulated cluster: {0}")]
    Seed(String),
    #[error("{0}")]
    Client(#[from] client::ClientError),
    #[error("{0}")]
    Run(#[from] runtime::RunError),
}

/// The demo's settings: the given ones, with the writes switched on so repairs show.
pub fn demo_settings(mut s: Settings, port: u16) -> Settings {
    s.http.listen.0 = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    s.injection.mode = Mode::Enforce;
    s.gateway.mode = GatewayMode::Manual;
    s.gateway.repair = true;
    // One rollout at a time, so the re-injection is seen workload by workload.
    s.reinjection.mode = Mode::Enforce;
    s.reinjection.max_rollouts_in_progress = 1;
    s.reinjection.cooldown_minutes = 1;
    s.leader_election.namespace = "meshkeeper".into();
    s.resync_seconds = 30;
    s
}

/// One round of drift, by step number.
fn drift(sim: &Sim, step: u64) {
    let c = sim.cluster();
    let say = |what: &str| eprintln!("\n>>> drift: {what}");
    match step % 4 {
        0 => {
            say("someone removes istio-injection from namespace bookinfo");
            let _ = c.patch(
                "v1",
                "namespaces",
                "",
                "bookinfo",
                PatchType::Json,
                &json!([{"op": "remove", "path": "/metadata/labels/istio-injection"}]),
                "kubectl-label",
            );
        }
        1 => {
            say("an upgrade moves the gateway's http2 nodePort from 31380 to 32080");
            let _ = c.patch(
                "v1",
                "services",
                "istio-system",
                "istio-ingressgateway",
                PatchType::Strategic,
                &json!({"spec": {"ports": [{"port": 80, "nodePort": 32080}]}}),
                "istio-operator",
            );
        }
        2 => {
            say("the sidecar injector goes down (scaled to 0)");
            if let Some(a) = sim.actors() {
                a.set_injector_up(false);
            }
            let _ = c.patch(
                "apps/v1",
                "deployments",
                "istio-system",
                "istio-sidecar-injector",
                PatchType::Merge,
                &json!({"spec": {"replicas": 0}}),
                "kubectl",
            );
        }
        _ => {
            say("the injector recovers, upgraded to 1.4.10-asm.19");
            if let Some(a) = sim.actors() {
                a.set_injector_version("1.4.10-asm.19");
                a.set_injector_up(true);
            }
            let _ = c.patch(
                "apps/v1",
                "deployments",
                "istio-system",
                "istio-sidecar-injector",
                PatchType::Merge,
                &json!({"spec": {"replicas": 1}}),
                "kubectl",
            );
        }
    }
}

pub async fn run(
    settings: Settings,
    scenario: Scenario,
    port: u16,
    shutdown: CancellationToken,
) -> Result<(), DemoError> {
    // Pods take a second to become ready, so a rollout can be watched (kubectl get pods -w).
    let opts = SimOptions::default().kubelet(KubeletOptions::slow(Duration::from_secs(1)));
    let sim = Sim::start(opts).await.map_err(DemoError::Sim)?;
    let c = sim.cluster();
    println!("meshkeeper demo: starting a simulated cluster ...");
    kube_sim::seed::asm_onprem_ready(&c).await.map_err(|e| DemoError::Seed(e.message))?;
    c.create("v1", "namespaces", "", json!({"metadata": {"name": "meshkeeper"}}))
        .map_err(|e| DemoError::Seed(e.message))?;
    kube_sim::seed::reinjection_demo(&c).await.map_err(|e| DemoError::Seed(e.message))?;
    let settings = demo_settings(settings, port);
    let addr = settings.http.listen.0;
    println!("meshkeeper demo: a simulated cluster with the install guide's asm-onprem layout is running.");
    println!();
    println!("  kubectl:  export KUBECONFIG={}", sim.kubeconfig_path().display());
    println!("            kubectl get ns --show-labels; kubectl label ns shop istio-injection-");
    println!("            kubectl -n payments get pods -w    (READY 1/1 becomes 2/2 as sidecars arrive)");
    println!("  metrics:  http://{addr}/metrics");
    println!("  status:   http://{addr}/status");
    println!("  check:    meshkeeper check --kubeconfig {}", sim.kubeconfig_path().display());
    println!(
        "            meshkeeper check --pre --kubeconfig {}   (the install guide's pre-checks)",
        sim.kubeconfig_path().display()
    );
    println!();
    println!("Seeded drift: namespace shop lacks the injection label (the agent adds it); in payments and");
    println!("edge a Deployment, a StatefulSet and a DaemonSet started before their namespaces were labelled:");
    println!("the agent restarts them one at a time. The bare pod payments/debug-shell is reported (no");
    println!("controller to restart), edge/metrics-exporter is left alone (the injector's neverInjectSelector).");
    if scenario == Scenario::Drift {
        println!("Scenario drift: every 10 s a new drift (label removed, nodePort changed, injector outage that");
        println!("holds re-injection, an upgrade to 1.4.10-asm.19 whose proxies are then rolled under the budget).");
    }
    println!("Ctrl-C stops the demo.\n");
    let clients = client::build_clients(&ClientOptions {
        kubeconfig: Some(sim.kubeconfig_path()),
        context: None,
        timeout: Some(Duration::from_secs(10)),
    })
    .await?;
    let drifting = scenario == Scenario::Drift;
    let agent = runtime::run(settings, clients, shutdown.clone());
    tokio::pin!(agent);
    let mut step = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    loop {
        tokio::select! {
            r = &mut agent => return r.map_err(DemoError::from),
            _ = tick.tick(), if drifting => {
                drift(&sim, step);
                step += 1;
            }
        }
    }
}
