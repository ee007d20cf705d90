//! Issue 10 on kube-sim with its deployment, StatefulSet, DaemonSet and disruption controllers,
//! kubelet and injector actors: re-injection by rolling restart, under the planner's gates.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube_sim::{KubeletOptions, PatchType, Sim, SimOptions};
use serde_json::{Value, json};

use crate::common::*;

const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// The asm-onprem layout with the re-injection demo's workloads (pods started before their
/// namespaces were labelled: none has a sidecar).
async fn demo_cluster(opts: SimOptions) -> Sim {
    let sim = Sim::start(opts).await.expect("start kube-sim");
    let c = sim.cluster();
    kube_sim::seed::asm_onprem_ready(&c).await.expect("seed");
    c.create("v1", "namespaces", "", json!({"metadata": {"name": "meshkeeper"}})).expect("ns");
    kube_sim::seed::reinjection_demo(&c).await.expect("demo seed");
    sim
}

fn enforce(extra: &str) -> String {
    config(&format!("reinjection:\n  mode: enforce\n{extra}"))
}

/// The pods of a namespace: (name, has istio-proxy, proxy image).
fn pods(sim: &Sim, ns: &str) -> Vec<(String, bool, Option<String>)> {
    sim.cluster()
        .list("v1", "pods", Some(ns))
        .iter()
        .filter(|p| !p["metadata"]["deletionTimestamp"].is_string())
        .map(|p| {
            let proxy = p["spec"]["containers"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["name"] == "istio-proxy"))
                .cloned();
            (
                p["metadata"]["name"].as_str().unwrap_or_default().to_string(),
                proxy.is_some(),
                proxy.and_then(|c| c["image"].as_str().map(str::to_string)),
            )
        })
        .collect()
}

fn injected(sim: &Sim, ns: &str, prefix: &str) -> bool {
    let p: Vec<_> = pods(sim, ns).into_iter().filter(|(n, _, _)| n.starts_with(prefix)).collect();
    !p.is_empty() && p.iter().all(|(_, has, _)| *has)
}

/// The restart patches meshkeeper sent, by workload name (in the namespaces given, or all).
fn restarts_in(sim: &Sim, namespaces: &[&str]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in sim.requests() {
        if r.user_agent.starts_with("meshkeeper/")
            && r.verb == "patch"
            && matches!(r.resource.as_str(), "deployments" | "statefulsets" | "daemonsets")
            && r.code < 300
            && (namespaces.is_empty() || r.namespace.as_deref().is_some_and(|n| namespaces.contains(&n)))
        {
            let key = if namespaces.len() == 1 || namespaces.is_empty() && r.namespace.is_none() {
                r.name.clone().unwrap_or_default()
            } else {
                format!("{}/{}", r.namespace.clone().unwrap_or_default(), r.name.clone().unwrap_or_default())
            };
            *m.entry(key).or_default() += 1;
        }
    }
    m
}

/// The demo's restarts (payments and edge), by workload name.
fn restarts_sent(sim: &Sim) -> BTreeMap<String, usize> {
    restarts_in(sim, &["payments", "edge"])
        .into_iter()
        .map(|(k, v)| (k.rsplit('/').next().unwrap_or_default().to_string(), v))
        .collect()
}

fn restarted_at(sim: &Sim, plural: &str, ns: &str, name: &str) -> Option<String> {
    sim.cluster().get("apps/v1", plural, ns, name)?["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
        .as_str()
        .map(str::to_string)
}

/// (1) A namespace labelled after its workloads ran: each is restarted once, coverage 1.0;
/// (4) the bare pod and the Job are reported and untouched.
#[tokio::test]
async fn scenario1_workloads_that_predate_injection_are_restarted_once_each() {
    let sim = demo_cluster(SimOptions::default()).await;
    let agent = start(&sim, &enforce("  max_rollouts_in_progress: 2\n")).await;
    agent.wait_leader().await;
    let t0 = Instant::now();
    until(&sim, Duration::from_secs(30), "api, ledger and log-shipper injected", |_| {
        injected(&sim, "payments", "api-")
            && injected(&sim, "payments", "ledger-")
            && injected(&sim, "edge", "log-shipper-")
    })
    .await;
    eprintln!("scenario 1: Deployment, StatefulSet and DaemonSet re-injected in {:?}", t0.elapsed());
    // Only the bare pod lacks the sidecar now (11 of 12 pods that should have one).
    agent.wait_metrics_line("meshkeeper_pods{state=\"missing\"} 1", Duration::from_secs(10)).await;
    let sent = restarts_sent(&sim);
    assert_eq!(sent.get("api"), Some(&1), "{sent:?}");
    assert_eq!(sent.get("ledger"), Some(&1), "{sent:?}");
    assert_eq!(sent.get("log-shipper"), Some(&1), "{sent:?}");
    assert_eq!(sent.get("metrics-exporter"), None, "the injector's neverInjectSelector matches it: left alone");
    assert_eq!(sent.len(), 3, "{sent:?}");
    // (4) The bare pod is reported, the completed Job ignored; neither is touched.
    agent.wait_finding("NoControllerToRestart", true, Duration::from_secs(5)).await;
    let status = agent.status().await;
    let f =
        status["findings"].as_array().unwrap().iter().find(|f| f["reason"] == "NoControllerToRestart").unwrap().clone();
    assert_eq!(f["object"]["name"], "debug-shell");
    assert!(
        sim.requests().iter().all(|r| !(r.user_agent.starts_with("meshkeeper/")
            && matches!(r.verb.as_str(), "patch" | "delete" | "create" | "update")
            && matches!(r.resource.as_str(), "pods" | "jobs"))),
        "pods and Jobs are never written"
    );
    assert!(sim.cluster().get("v1", "pods", "payments", "debug-shell").is_some());
    assert!(!agent.has_finding("SidecarMissing").await);
    // The SRE follows the finding's hint (recreate it); then coverage is complete.
    sim.cluster().delete("v1", "pods", "payments", "debug-shell").unwrap();
    agent.wait_metrics_line("meshkeeper_sidecar_coverage_ratio 1", Duration::from_secs(10)).await;
    let text = agent.get("/metrics").await.1;
    assert!(text.contains("meshkeeper_reinjections_total{kind=\"deployment\",result=\"success\"} 1"), "{text}");
    assert!(text.contains("meshkeeper_reinjections_total{kind=\"statefulset\",result=\"success\"} 1"));
    assert!(text.contains("meshkeeper_reinjections_total{kind=\"daemonset\",result=\"success\"} 1"));
    // Events are published asynchronously: wait (bounded) for the one on the Deployment.
    until(&sim, Duration::from_secs(10), "an Event on each workload restarted", |c| {
        c.list("events.k8s.io/v1", "events", Some("payments"))
            .iter()
            .any(|e| e["reason"] == "WorkloadRestartedForReinjection" && e["regarding"]["name"] == "api")
    })
    .await;
}

/// (2) The injector down: nothing restarted while it is, fixed after it recovers.
#[tokio::test]
async fn scenario2_nothing_is_restarted_while_the_injector_is_down() {
    let sim = demo_cluster(SimOptions::default()).await;
    let c = sim.cluster();
    let scale = |n: i64| {
        c.patch(
            "apps/v1",
            "deployments",
            "istio-system",
            "istio-sidecar-injector",
            PatchType::Merge,
            &json!({"spec": {"replicas": n}}),
            "kubectl",
        )
        .unwrap()
    };
    scale(0);
    until(&sim, Duration::from_secs(10), "the injector has no pod", |c| {
        c.list("v1", "pods", Some("istio-system"))
            .iter()
            .all(|p| !p["metadata"]["name"].as_str().unwrap_or("").starts_with("istio-sidecar-injector"))
    })
    .await;
    let agent = start(&sim, &enforce("")).await;
    agent.wait_leader().await;
    agent
        .wait_metrics_line(
            "meshkeeper_workloads_pending_reinjection{reason=\"injector_unhealthy\"} 3",
            Duration::from_secs(10),
        )
        .await;
    let status = agent.status().await;
    let held: Vec<&Value> =
        status["waiting"].as_array().unwrap().iter().filter(|w| w["wait"]["reason"] == "injector_unhealthy").collect();
    assert_eq!(held.len(), 3, "{status}");
    assert!(restarts_sent(&sim).is_empty(), "nothing restarted while the injector is down");
    until(&sim, Duration::from_secs(5), "an Event on each workload held", |c| {
        c.list("events.k8s.io/v1", "events", None).iter().filter(|e| e["reason"] == "ReinjectionHeld").count() >= 3
    })
    .await;
    scale(1);
    let t = Instant::now();
    until(&sim, Duration::from_secs(30), "re-injected after the injector recovered", |_| {
        injected(&sim, "payments", "api-")
            && injected(&sim, "payments", "ledger-")
            && injected(&sim, "edge", "log-shipper-")
    })
    .await;
    eprintln!("scenario 2: re-injected {:?} after the injector recovered", t.elapsed());
    assert_eq!(restarts_sent(&sim).values().sum::<usize>(), 3);
}

/// (3) A proxy upgrade across 50 Deployments: all rolled, never more in progress than the
/// budget at any instant.
#[tokio::test]
async fn scenario3_a_proxy_upgrade_rolls_50_deployments_within_the_budget() {
    let sim =
        Sim::start(SimOptions::default().kubelet(KubeletOptions::slow(Duration::from_millis(150)))).await.unwrap();
    let c = sim.cluster();
    kube_sim::seed::asm_onprem_ready(&c).await.expect("seed");
    c.create("v1", "namespaces", "", json!({"metadata": {"name": "meshkeeper"}})).unwrap();
    for n in 0..10 {
        let ns = format!("team-{n}");
        c.create("v1", "namespaces", "", json!({"metadata": {"name": ns, "labels": {"istio-injection": "enabled"}}}))
            .unwrap();
        for d in 0..5 {
            let name = format!("svc-{d}");
            c.create("apps/v1", "deployments", &ns, json!({"metadata": {"name": name}, "spec": {"replicas": 1,
                "selector": {"matchLabels": {"app": name}}, "template": {"metadata": {"labels": {"app": name}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "app", "image": "example/app:1"}]}}}})).unwrap();
        }
    }
    let all_on = |sim: &Sim, tag: &str| {
        (0..10).all(|n| {
            let p = pods(sim, &format!("team-{n}"));
            p.len() == 5 && p.iter().all(|(_, has, img)| *has && img.as_deref().is_some_and(|i| i.ends_with(tag)))
        })
    };
    until(&sim, Duration::from_secs(30), "50 injected pods", |_| all_on(&sim, "1.4.10-asm.18")).await;
    let agent = start(&sim, &enforce("  max_rollouts_in_progress: 3\n  max_restarts_per_hour: 100\n")).await;
    agent.wait_leader().await;
    agent.wait_metrics_line("meshkeeper_sidecar_coverage_ratio 1", Duration::from_secs(10)).await;
    assert!(restarts_sent(&sim).is_empty(), "nothing to do before the upgrade");
    // Sample the number of rollouts meshkeeper has in progress at every change of the cluster.
    let max_seen = Arc::new(Mutex::new(0usize));
    let sampler = {
        let (c, max_seen) = (sim.cluster(), max_seen.clone());
        let mut rx = c.subscribe();
        tokio::spawn(async move {
            loop {
                let in_progress = c
                    .list("apps/v1", "deployments", None)
                    .iter()
                    .filter(|d| d["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT].is_string())
                    .filter(|d| {
                        let s = &d["status"];
                        let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
                        !(s["observedGeneration"].as_i64() >= d["metadata"]["generation"].as_i64()
                            && s["updatedReplicas"].as_i64() == Some(want)
                            && s["availableReplicas"].as_i64() == Some(want)
                            && s["replicas"].as_i64() == Some(want))
                    })
                    .count();
                {
                    let mut m = max_seen.lock().unwrap();
                    *m = (*m).max(in_progress);
                }
                if rx.recv().await.is_err() {
                    break;
                }
            }
        })
    };
    let t = Instant::now();
    sim.actors().unwrap().set_injector_version("1.4.10-asm.19");
    agent.wait_finding("ProxyStale", true, Duration::from_secs(10)).await;
    until(&sim, Duration::from_secs(120), "every pod on 1.4.10-asm.19", |_| all_on(&sim, "1.4.10-asm.19")).await;
    let took = t.elapsed();
    sampler.abort();
    let max = *max_seen.lock().unwrap();
    let teams: Vec<String> = (0..10).map(|n| format!("team-{n}")).collect();
    let sent = restarts_in(&sim, &teams.iter().map(String::as_str).collect::<Vec<_>>());
    eprintln!(
        "scenario 3: 50 Deployments rolled to the new proxy in {took:?}; at most {max} rollouts in progress at once (budget 3)"
    );
    assert!(max <= 3, "never more than the budget in progress: {max}");
    assert!(max >= 2, "the budget was used: {max}");
    assert_eq!(sent.len(), 50, "every Deployment: {sent:?}");
    assert!(sent.values().all(|n| *n == 1), "each restarted once: {sent:?}");
    agent.wait_metrics_line("meshkeeper_pods{state=\"stale\"} 0", Duration::from_secs(10)).await;
}

/// (5) A workload the injector never injects (something strips its sidecar): one restart, then
/// ReinjectionFailed, no loop.
#[tokio::test]
async fn scenario5_a_workload_that_never_gets_the_sidecar_is_restarted_once_then_reported() {
    let sim = demo_cluster(SimOptions::default()).await;
    // Another mutating webhook that removes the proxy from payments/api's pods: meshkeeper has no
    // way to know, the restart cannot help.
    sim.cluster().add_admission(std::sync::Arc::new(|_store: &kube_sim::store::Store, rt, _ns, obj: &mut Value| {
        if rt.kind == "Pod" && obj["metadata"]["labels"]["app"] == "api" {
            if let Some(cs) = obj["spec"]["containers"].as_array_mut() {
                cs.retain(|c| c["name"] != "istio-proxy");
            }
            if let Some(cs) = obj["spec"]["initContainers"].as_array_mut() {
                cs.retain(|c| c["name"] != "istio-init");
            }
        }
        Ok(())
    }));
    let agent = start(&sim, &enforce("")).await;
    agent.wait_leader().await;
    agent.wait_finding("ReinjectionFailed", true, Duration::from_secs(30)).await;
    let first = restarted_at(&sim, "deployments", "payments", "api").expect("restarted once");
    // More evaluations (other workloads roll meanwhile, each a burst of changes): no second restart.
    until(&sim, Duration::from_secs(30), "the others re-injected", |_| {
        injected(&sim, "payments", "ledger-") && injected(&sim, "edge", "log-shipper-")
    })
    .await;
    agent
        .wait_metrics_line("meshkeeper_workloads_pending_reinjection{reason=\"failed\"} 1", Duration::from_secs(5))
        .await;
    assert_eq!(restarted_at(&sim, "deployments", "payments", "api"), Some(first));
    assert_eq!(restarts_sent(&sim).get("api"), Some(&1), "no loop");
    let status = agent.status().await;
    let f = status["findings"].as_array().unwrap().iter().find(|f| f["reason"] == "ReinjectionFailed").unwrap().clone();
    assert_eq!(f["severity"], "error");
    assert_eq!(f["object"]["name"], "api");
}

/// (6) Audit mode and followers: zero writes.
#[tokio::test]
async fn scenario6_audit_mode_and_followers_restart_nothing() {
    let sim = demo_cluster(SimOptions::default()).await;
    let audit = start(&sim, &config("reinjection:\n  mode: audit\n")).await;
    audit.wait_leader().await;
    audit.wait_finding("SidecarMissing", true, Duration::from_secs(10)).await;
    audit
        .wait_metrics_line(
            "meshkeeper_workloads_pending_reinjection{reason=\"report_only\"} 3",
            Duration::from_secs(10),
        )
        .await;
    // A follower in enforce mode: someone else holds the Lease and keeps renewing it.
    let c = sim.cluster();
    let now = || k8s_openapi::jiff::Timestamp::now().to_string();
    c.create("coordination.k8s.io/v1", "leases", "meshkeeper", json!({"metadata": {"name": "follower-lease"},
        "spec": {"holderIdentity": "someone-else", "leaseDurationSeconds": 15, "renewTime": now(), "acquireTime": now()}})).unwrap();
    let renewer = {
        let c = c.clone();
        tokio::spawn(async move {
            loop {
                let _ = c.patch(
                    "coordination.k8s.io/v1",
                    "leases",
                    "meshkeeper",
                    "follower-lease",
                    PatchType::Merge,
                    &json!({"spec": {"renewTime": k8s_openapi::jiff::Timestamp::now().to_string()}}),
                    "someone-else",
                );
                tokio::time::sleep(Duration::from_millis(500)).await; // NB: the other holder's renew period, not a wait
            }
        })
    };
    let follower = start(&sim, &config_le("  lease_name: follower-lease\n", "reinjection:\n  mode: enforce\n")).await;
    follower.wait_finding("SidecarMissing", true, Duration::from_secs(10)).await;
    follower
        .wait_metrics_line("meshkeeper_workloads_pending_reinjection{reason=\"not_leader\"} 3", Duration::from_secs(10))
        .await;
    assert_eq!(follower.status().await["role"], "follower");
    renewer.abort();
    assert!(restarts_sent(&sim).is_empty(), "neither audit mode nor a follower restarts anything");
}

/// (7) Leader failover mid-rollout: no workload restarted twice within its cooldown.
#[tokio::test]
async fn scenario7_a_new_leader_mid_rollout_restarts_nothing_twice() {
    let sim = demo_cluster(SimOptions::default().kubelet(KubeletOptions::slow(Duration::from_millis(400)))).await;
    let le = |id: &str| {
        config_le(
            &format!("  identity: {id}\n  lease_duration_seconds: 4\n  grace_seconds: 2\n  retry_period_seconds: 1\n"),
            "reinjection:\n  mode: enforce\n  max_rollouts_in_progress: 1\n",
        )
    };
    let mut a = start(&sim, &le("replica-a")).await;
    a.wait_leader().await;
    let b = start(&sim, &le("replica-b")).await;
    until(&sim, Duration::from_secs(20), "a first restart", |_| !restarts_sent(&sim).is_empty()).await;
    // Kill the leader mid-rollout (no Lease release).
    a.sigkill();
    let _ = a.child.wait().await;
    let t = Instant::now();
    b.wait_leader().await;
    eprintln!("scenario 7: replica-b leads {:?} after replica-a was killed", t.elapsed());
    until(&sim, Duration::from_secs(60), "every restartable workload re-injected", |_| {
        injected(&sim, "payments", "api-")
            && injected(&sim, "payments", "ledger-")
            && injected(&sim, "edge", "log-shipper-")
    })
    .await;
    let sent = restarts_sent(&sim);
    assert!(sent.values().all(|n| *n == 1), "no workload restarted twice within its cooldown: {sent:?}");
    assert_eq!(sent.len(), 3, "{sent:?}");
}

/// OnDelete workloads with `evict_on_delete`: their pods are evicted one at a time through the
/// Eviction API, which the PodDisruptionBudget governs; each replacement gets the sidecar.
#[tokio::test]
async fn on_delete_pods_are_evicted_one_at_a_time_under_their_budget() {
    let sim =
        Sim::start(SimOptions::default().kubelet(KubeletOptions::slow(Duration::from_millis(300)))).await.unwrap();
    let c = sim.cluster();
    kube_sim::seed::asm_onprem_ready(&c).await.expect("seed");
    c.create("v1", "namespaces", "", json!({"metadata": {"name": "meshkeeper"}})).unwrap();
    c.create("v1", "namespaces", "", json!({"metadata": {"name": "store"}})).unwrap();
    c.create("apps/v1", "statefulsets", "store", json!({"metadata": {"name": "db"}, "spec": {"replicas": 3, "serviceName": "db",
        "updateStrategy": {"type": "OnDelete"}, "selector": {"matchLabels": {"app": "db"}},
        "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "db", "image": "example/db:1"}]}}}})).unwrap();
    c.create(
        "policy/v1",
        "poddisruptionbudgets",
        "store",
        json!({"metadata": {"name": "db"},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "db"}}}}),
    )
    .unwrap();
    until(&sim, Duration::from_secs(20), "3 db pods ready", |c| {
        c.get("apps/v1", "statefulsets", "store", "db").is_some_and(|s| s["status"]["readyReplicas"] == 3)
    })
    .await;
    c.patch(
        "v1",
        "namespaces",
        "",
        "store",
        PatchType::Merge,
        &json!({"metadata": {"labels": {"istio-injection": "enabled"}}}),
        "kubectl-label",
    )
    .unwrap();
    // Without evict_on_delete it is only reported.
    let agent = start(&sim, &enforce("")).await;
    agent.wait_finding("ReinjectionBlocked", true, Duration::from_secs(10)).await;
    assert!(!injected(&sim, "store", "db-"));
    drop(agent);
    let agent = start(&sim, &enforce("  evict_on_delete: true\n  max_restarts_per_hour: 100\n")).await;
    agent.wait_leader().await;
    // Never more than one db pod away (the budget, and meshkeeper's one at a time).
    let most_missing = Arc::new(Mutex::new(0usize));
    let watcher = {
        let (c, m) = (sim.cluster(), most_missing.clone());
        let mut rx = c.subscribe();
        tokio::spawn(async move {
            loop {
                let ready = c
                    .list("v1", "pods", Some("store"))
                    .iter()
                    .filter(|p| !p["metadata"]["deletionTimestamp"].is_string())
                    .filter(|p| {
                        p["status"]["conditions"]
                            .as_array()
                            .is_some_and(|cs| cs.iter().any(|x| x["type"] == "Ready" && x["status"] == "True"))
                    })
                    .count();
                {
                    let mut m = m.lock().unwrap();
                    *m = (*m).max(3usize.saturating_sub(ready));
                }
                if rx.recv().await.is_err() {
                    break;
                }
            }
        })
    };
    until(&sim, Duration::from_secs(60), "every db pod replaced with a sidecar", |_| {
        let p = pods(&sim, "store");
        p.len() == 3 && p.iter().all(|(_, has, _)| *has)
    })
    .await;
    watcher.abort();
    let evictions: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| {
            r.user_agent.starts_with("meshkeeper/") && r.subresource.as_deref() == Some("eviction") && r.code < 300
        })
        .collect();
    assert_eq!(evictions.len(), 3, "one eviction per pod: {evictions:?}");
    assert!(restarts_in(&sim, &["store"]).is_empty(), "OnDelete: no restart patch, evictions only");
    let m = *most_missing.lock().unwrap();
    eprintln!("OnDelete: 3 pods evicted one at a time; at most {m} db pod(s) not ready at once");
    assert!(m <= 1, "one at a time: {m}");
}
