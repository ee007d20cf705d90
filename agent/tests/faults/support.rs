//! What the fault scenarios share: a converged agent, reading its counters, and the writes
//! kube-sim saw.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube_sim::{RequestRecord, Sim};

use crate::common::*;

pub const ENFORCE: &str = "injection:\n  mode: enforce\n";

/// The seeded cluster with the agent enforcing labels, leading, and done with the seeded drift.
pub async fn converged(extra: &str) -> (Sim, Agent) {
    let sim = cluster().await;
    let agent = start(&sim, &config(&format!("{ENFORCE}{extra}"))).await;
    agent.wait_leader().await;
    agent.wait_finding("InjectionLabelMissing", false, Duration::from_secs(15)).await;
    (sim, agent)
}

/// Every series of a counter family, by its label set text (`{resource="pods"}`).
pub async fn series(agent: &Agent, family: &str) -> BTreeMap<String, f64> {
    let text = agent.get("/metrics").await.1;
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(family)?;
            let (labels, value) = rest.rsplit_once(' ')?;
            if !(labels.is_empty() || labels.starts_with('{')) {
                return None;
            }
            Some((labels.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The sum of a counter family.
pub async fn total(agent: &Agent, family: &str) -> f64 {
    series(agent, family).await.values().sum()
}

/// Writes by meshkeeper to anything but its own Lease and Events (what it changed in the cluster).
pub fn cluster_writes(sim: &Sim) -> Vec<RequestRecord> {
    sim.requests()
        .into_iter()
        .filter(|r| {
            r.user_agent.starts_with("meshkeeper/")
                && !matches!(r.resource.as_str(), "leases" | "events" | "selfsubjectaccessreviews")
                && matches!(r.verb.as_str(), "create" | "update" | "patch" | "delete")
        })
        .collect()
}

/// "patch namespaces/bookinfo 200" for each record.
pub fn describe(writes: &[RequestRecord]) -> String {
    if writes.is_empty() {
        return "none".into();
    }
    writes
        .iter()
        .map(|w| format!("{} {}/{} {}", w.verb, w.resource, w.name.as_deref().unwrap_or("-"), w.code))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Waits until the namespace's `istio-injection` label is `enabled` again; how long it took.
/// (kube-sim records the request that did it just after the change: see `settle_writes`.)
pub async fn until_labelled(sim: &Sim, ns: &str, within: Duration) -> Duration {
    let start = Instant::now();
    until(sim, within, &format!("{ns} labelled again"), |_| {
        label(sim, ns, "istio-injection").as_deref() == Some("enabled")
    })
    .await;
    start.elapsed()
}

pub fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// The store changes before kube-sim records the request that changed it: waits (bounded)
/// until `n` cluster writes are in the request log.
pub async fn settle_writes(sim: &Sim, n: usize) {
    eventually(Duration::from_secs(5), &format!("{n} writes recorded"), || {
        let done = cluster_writes(sim).len() >= n;
        async move { done }
    })
    .await;
}

/// A mutex's guard, poisoned or not (a panicking scenario fails its own row).
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
