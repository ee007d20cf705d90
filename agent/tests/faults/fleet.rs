//! What the replica, shutdown and storm scenarios share: a mesh with a fleet of small
//! Deployments, the restart writes meshkeeper made, rollouts in progress as kube-sim's
//! Deployments show them (at every change of the cluster), and the leaders among replicas
//! (sampled every 100 ms).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use kube_sim::{Sim, SimOptions};
use serde_json::{Value, json};

use crate::common::*;
use crate::support::lock;

pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// The proxy a proxy upgrade moves to (the seed injects 1.4.10-asm.18).
pub const PROXY_NEXT: &str = "1.4.10-asm.19";

/// The asm-onprem layout (control plane available) and the agent's namespace.
pub async fn mesh(opts: SimOptions) -> Sim {
    let sim = Sim::start(opts).await.expect("start kube-sim");
    let c = sim.cluster();
    kube_sim::seed::asm_onprem_ready(&c).await.expect("seed");
    c.create("v1", "namespaces", "", json!({"metadata": {"name": "meshkeeper"}})).expect("ns");
    sim
}

/// `namespaces` labelled namespaces `{prefix}-NN`, each with `per_ns` one-replica Deployments
/// `svc-N`; returns their keys `ns/name`.
pub fn deploy_fleet(sim: &Sim, prefix: &str, namespaces: usize, per_ns: usize) -> Vec<String> {
    let c = sim.cluster();
    let mut keys = Vec::new();
    for n in 0..namespaces {
        let ns = format!("{prefix}-{n:02}");
        c.create("v1", "namespaces", "", json!({"metadata": {"name": ns, "labels": {"istio-injection": "enabled"}}}))
            .expect("namespace");
        for d in 0..per_ns {
            let name = format!("svc-{d}");
            c.create(
                "apps/v1",
                "deployments",
                &ns,
                json!({"metadata": {"name": name}, "spec": {"replicas": 1,
                    "selector": {"matchLabels": {"app": name}}, "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "app", "image": "example/app:1"}]}}}}),
            )
            .expect("deployment");
            keys.push(format!("{ns}/{name}"));
        }
    }
    keys
}

/// `ns/name` of an object.
pub fn key_of(obj: &Value) -> String {
    format!(
        "{}/{}",
        obj["metadata"]["namespace"].as_str().unwrap_or_default(),
        obj["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// Deployments in namespaces labelled `istio-injection=enabled` (the fleet and the seed's
/// injected applications): what a proxy upgrade makes stale.
pub fn injected_deployments(c: &kube_sim::Cluster) -> Vec<String> {
    let labelled: std::collections::BTreeSet<String> = c
        .list("v1", "namespaces", None)
        .iter()
        .filter(|n| n["metadata"]["labels"]["istio-injection"] == "enabled")
        .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    c.list("apps/v1", "deployments", None)
        .iter()
        .filter(|d| d["metadata"]["namespace"].as_str().is_some_and(|ns| labelled.contains(ns)))
        .map(key_of)
        .collect()
}

/// Waits (bounded) until every Deployment of the fleet is available, following the
/// Deployments' changes (re-listing them all on every change would cost more than the fleet).
pub async fn wait_available(sim: &Sim, keys: &[String], within: Duration) {
    let want: std::collections::BTreeSet<String> = keys.iter().cloned().collect();
    let c = sim.cluster();
    let mut rx = c.subscribe();
    let available = |d: &Value| d["status"]["availableReplicas"] == 1;
    let scan = |ready: &mut std::collections::BTreeSet<String>| {
        ready.clear();
        ready.extend(
            c.list("apps/v1", "deployments", None)
                .iter()
                .filter(|d| available(d))
                .map(key_of)
                .filter(|k| want.contains(k)),
        );
    };
    let mut ready = std::collections::BTreeSet::new();
    scan(&mut ready);
    let done = tokio::time::timeout(within, async {
        while ready.len() < want.len() {
            match rx.recv().await {
                Ok(ev) => {
                    let k = key_of(&ev.object);
                    if want.contains(&k) && c.resource_of(&ev) == "deployments" {
                        if ev.kind != "DELETED" && available(&ev.object) {
                            ready.insert(k);
                        } else {
                            ready.remove(&k);
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => scan(&mut ready),
                Err(_) => return,
            }
        }
    })
    .await;
    assert!(
        done.is_ok(),
        "timed out after {within:?} waiting for {} Deployments available ({} are)",
        want.len(),
        ready.len()
    );
}

/// meshkeeper's successful restart patches of Deployments, by `ns/name` (kube-sim's request log).
pub fn restart_writes(sim: &Sim) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in writes_by_meshkeeper(sim, "deployments") {
        if r.verb == "patch" && r.code < 300 {
            *m.entry(format!("{}/{}", r.namespace.unwrap_or_default(), r.name.unwrap_or_default())).or_default() += 1;
        }
    }
    m
}

/// Deployments whose pod template carries a restart annotation.
pub fn restarted(c: &kube_sim::Cluster) -> usize {
    c.list("apps/v1", "deployments", None)
        .iter()
        .filter(|d| d["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT].is_string())
        .count()
}

/// A Deployment that was restarted and whose rollout has not completed.
pub fn rolling(d: &Value) -> bool {
    if !d["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT].is_string() {
        return false;
    }
    let s = &d["status"];
    let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
    !(s["observedGeneration"].as_i64() >= d["metadata"]["generation"].as_i64()
        && s["updatedReplicas"].as_i64() == Some(want)
        && s["availableReplicas"].as_i64() == Some(want)
        && s["replicas"].as_i64() == Some(want))
}

#[derive(Default)]
struct Rollouts {
    rolling: BTreeMap<String, bool>,
    max_total: usize,
    max_per_ns: usize,
    changes: u64,
    /// When each Deployment was first seen rolling, and when it completed.
    started: BTreeMap<String, SystemTime>,
    completed: BTreeMap<String, SystemTime>,
}

impl Rollouts {
    fn set(&mut self, key: String, now_rolling: bool) {
        let was = self.rolling.insert(key.clone(), now_rolling).unwrap_or(false);
        if now_rolling && !was {
            self.started.entry(key.clone()).or_insert_with(SystemTime::now);
        }
        if was && !now_rolling {
            self.completed.insert(key, SystemTime::now());
        }
    }

    fn tally(&mut self) {
        let mut per_ns: BTreeMap<&str, usize> = BTreeMap::new();
        for (k, _) in self.rolling.iter().filter(|(_, r)| **r) {
            *per_ns.entry(k.split('/').next().unwrap_or_default()).or_default() += 1;
        }
        let total: usize = per_ns.values().sum();
        self.max_total = self.max_total.max(total);
        self.max_per_ns = self.max_per_ns.max(per_ns.values().copied().max().unwrap_or(0));
        self.changes += 1;
    }
}

/// Rollouts in progress among kube-sim's Deployments, re-counted at every change of a
/// Deployment (the store's event order: each count is the cluster's state at that revision).
pub struct RolloutTracker {
    state: Arc<Mutex<Rollouts>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RolloutTracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RolloutTracker {
    pub fn start(sim: &Sim) -> RolloutTracker {
        let c = sim.cluster();
        let mut rx = c.subscribe();
        let state = Arc::new(Mutex::new(Rollouts::default()));
        let relist = |c: &kube_sim::Cluster, s: &Mutex<Rollouts>| {
            let all = c.list("apps/v1", "deployments", None);
            let mut s = lock(s);
            let present: std::collections::BTreeSet<String> = all.iter().map(key_of).collect();
            let gone: Vec<String> = s.rolling.keys().filter(|k| !present.contains(*k)).cloned().collect();
            for k in gone {
                s.set(k, false);
            }
            for d in &all {
                s.set(key_of(d), rolling(d));
            }
            s.tally();
        };
        relist(&c, &state);
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(ev) => {
                        if c.resource_of(&ev) != "deployments" {
                            continue;
                        }
                        let mut s = lock(&st);
                        let now = ev.kind != "DELETED" && rolling(&ev.object);
                        s.set(key_of(&ev.object), now);
                        s.tally();
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => relist(&c, &st),
                    Err(_) => return,
                }
            }
        });
        RolloutTracker { state, task }
    }

    /// The most rollouts in progress at once, and in one namespace, and how many changes were counted.
    pub fn maxima(&self) -> (usize, usize, u64) {
        let s = lock(&self.state);
        (s.max_total, s.max_per_ns, s.changes)
    }

    /// Deployments rolling now.
    pub fn rolling_now(&self) -> Vec<String> {
        lock(&self.state).rolling.iter().filter(|(_, r)| **r).map(|(k, _)| k.clone()).collect()
    }

    /// Deployments that were rolling at wall-clock time `t` (started before, completed after).
    pub fn rolling_at(&self, t: SystemTime) -> Vec<String> {
        let s = lock(&self.state);
        s.started
            .iter()
            .filter(|(k, at)| **at <= t && s.completed.get(*k).is_none_or(|done| *done > t))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// When each Deployment completed its rollout.
    pub fn completed(&self) -> BTreeMap<String, SystemTime> {
        lock(&self.state).completed.clone()
    }
}

/// Samples every 100 ms how many replicas say `meshkeeper_leader 1` (fetched concurrently).
pub struct LeaderSampler {
    addrs: Arc<Mutex<Vec<String>>>,
    stats: Arc<Mutex<(usize, usize, u64)>>,
    started: Instant,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LeaderSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LeaderSampler {
    pub fn start(addrs: Vec<String>) -> LeaderSampler {
        let addrs = Arc::new(Mutex::new(addrs));
        // (most leaders at once, samples, samples with no leader)
        let stats = Arc::new(Mutex::new((0usize, 0usize, 0u64)));
        let (a, st) = (addrs.clone(), stats.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let list = lock(&a).clone();
                let answers = futures::future::join_all(list.iter().map(|addr| http(addr, "GET", "/metrics"))).await;
                let n = answers.iter().filter(|(_, _, body)| body.lines().any(|l| l == "meshkeeper_leader 1")).count();
                let mut s = lock(&st);
                s.0 = s.0.max(n);
                s.1 += 1;
                if n == 0 {
                    s.2 += 1;
                }
            }
        });
        LeaderSampler { addrs, stats, started: Instant::now(), task }
    }

    pub fn add(&self, addr: &str) {
        lock(&self.addrs).push(addr.to_string());
    }

    /// (most leaders at once, samples, samples without a leader, seconds sampled).
    pub fn stats(&self) -> (usize, usize, u64, f64) {
        let s = *lock(&self.stats);
        (s.0, s.1, s.2, self.started.elapsed().as_secs_f64())
    }
}

/// Events (events.k8s.io) of a reason, as `ns/name` of the object they regard.
pub fn events_regarding(sim: &Sim, reason: &str) -> Vec<String> {
    sim.cluster()
        .list("events.k8s.io/v1", "events", None)
        .iter()
        .filter(|e| e["reason"] == reason)
        .map(|e| match e["regarding"]["namespace"].as_str() {
            Some(ns) if !ns.is_empty() => format!("{ns}/{}", e["regarding"]["name"].as_str().unwrap_or_default()),
            _ => e["regarding"]["name"].as_str().unwrap_or_default().to_string(),
        })
        .collect()
}

/// As [`until`], without failing: whether the condition came to hold within `within`, and when.
pub async fn settle(sim: &Sim, within: Duration, mut cond: impl FnMut(&kube_sim::Cluster) -> bool) -> (bool, Duration) {
    let c = sim.cluster();
    let mut rx = c.subscribe();
    let start = Instant::now();
    if cond(&c) {
        return (true, start.elapsed());
    }
    let held = tokio::time::timeout(within, async {
        loop {
            match rx.recv().await {
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if cond(&c) {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
    })
    .await
    .unwrap_or(false);
    (held, start.elapsed())
}

/// Milliseconds, for the rows.
pub fn ms(d: Duration) -> u128 {
    d.as_millis()
}
