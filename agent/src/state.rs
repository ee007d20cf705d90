//! What every part of the daemon shares: readiness of the watches, leadership, the current
//! findings and reports, recent actions, and a liveness heartbeat. Read by `/status`,
//! `/readyz`, `/healthz`; written by the watchers, the evaluator and the actuator.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Value, json};

use crate::findings::{CheckReport, Finding, FindingSet};

/// How many actions `/status` remembers.
pub const RECENT_ACTIONS: usize = 50;

/// One write the actuator attempted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionRecord {
    /// Unix seconds.
    pub at: u64,
    pub action: String,
    pub object: String,
    pub description: String,
    /// success, dry_run, conflict, forbidden, error
    pub result: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Shared state of one agent process.
#[derive(Debug)]
pub struct AgentState {
    watches: Mutex<BTreeMap<&'static str, bool>>,
    leader: AtomicBool,
    findings: RwLock<FindingSet>,
    reports: RwLock<BTreeMap<&'static str, CheckReport>>,
    actions: Mutex<VecDeque<ActionRecord>>,
    heartbeat: Mutex<Instant>,
    stall_after: Duration,
    config_summary: Value,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl AgentState {
    /// `stall_after`: how long the evaluator may go without a pass before liveness fails.
    pub fn new(config_summary: Value, stall_after: Duration) -> Self {
        AgentState {
            watches: Mutex::new(BTreeMap::new()),
            leader: AtomicBool::new(false),
            findings: RwLock::new(FindingSet::default()),
            reports: RwLock::new(BTreeMap::new()),
            actions: Mutex::new(VecDeque::new()),
            heartbeat: Mutex::new(Instant::now()),
            stall_after,
            config_summary,
        }
    }

    // --- readiness ---

    /// Declares a watch that must complete its first list before the agent is ready.
    pub fn register_watch(&self, resource: &'static str) {
        lock(&self.watches).entry(resource).or_insert(false);
    }

    pub fn mark_synced(&self, resource: &'static str) {
        lock(&self.watches).insert(resource, true);
    }

    /// Watches that have not completed their first list yet.
    pub fn pending_watches(&self) -> Vec<&'static str> {
        lock(&self.watches).iter().filter(|(_, synced)| !**synced).map(|(r, _)| *r).collect()
    }

    pub fn is_ready(&self) -> bool {
        self.pending_watches().is_empty()
    }

    // --- leadership ---

    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::SeqCst);
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }

    // --- liveness ---

    pub fn beat(&self) {
        *lock(&self.heartbeat) = Instant::now();
    }

    /// None when alive; otherwise why not.
    pub fn stalled(&self) -> Option<String> {
        let since = lock(&self.heartbeat).elapsed();
        (since > self.stall_after).then(|| format!("evaluator has not run for {}s", since.as_secs()))
    }

    // --- findings and actions ---

    /// Stores a check's report and returns what appeared and resolved since its last one.
    pub fn record_report(&self, report: CheckReport) -> crate::findings::Diff {
        let findings: Vec<Finding> = report.findings().cloned().collect();
        let diff = self.findings.write().unwrap_or_else(|p| p.into_inner()).replace_check(report.check, findings);
        self.reports.write().unwrap_or_else(|p| p.into_inner()).insert(report.check, report);
        diff
    }

    pub fn findings(&self) -> FindingSet {
        self.findings.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn reports(&self) -> Vec<CheckReport> {
        self.reports.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    pub fn record_action(&self, record: ActionRecord) {
        let mut a = lock(&self.actions);
        if a.len() == RECENT_ACTIONS {
            a.pop_front();
        }
        a.push_back(record);
    }

    pub fn recent_actions(&self) -> Vec<ActionRecord> {
        lock(&self.actions).iter().cloned().collect()
    }

    /// The `/status` document.
    pub fn status_json(&self) -> Value {
        let findings: Vec<Finding> = self.findings().iter().cloned().collect();
        let watches: BTreeMap<&str, &str> =
            lock(&self.watches).iter().map(|(r, s)| (*r, if *s { "synced" } else { "syncing" })).collect();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "ready": self.is_ready(),
            "role": if self.is_leader() { "leader" } else { "follower" },
            "watches": watches,
            "findings": findings,
            "recent_actions": self.recent_actions(),
            "config": self.config_summary,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::{Item, test_support::finding};

    #[test]
    fn ready_only_after_every_watch_synced() {
        let s = AgentState::new(json!({}), Duration::from_secs(60));
        assert!(s.is_ready(), "nothing to wait for");
        s.register_watch("namespaces");
        s.register_watch("pods");
        assert_eq!(s.pending_watches(), ["namespaces", "pods"]);
        s.mark_synced("namespaces");
        assert!(!s.is_ready());
        s.mark_synced("pods");
        assert!(s.is_ready());
        s.register_watch("pods");
        assert!(s.is_ready(), "re-registering keeps the synced state");
    }

    #[test]
    fn actions_are_bounded_and_status_renders() {
        let s = AgentState::new(json!({"profile": "asm-onprem"}), Duration::from_secs(60));
        for i in 0..(RECENT_ACTIONS + 5) {
            s.record_action(ActionRecord {
                at: i as u64,
                action: "a".into(),
                object: "o".into(),
                description: "d".into(),
                result: "success".into(),
                error: None,
            });
        }
        assert_eq!(s.recent_actions().len(), RECENT_ACTIONS);
        assert_eq!(s.recent_actions()[0].at, 5);
        let d = s.record_report(CheckReport {
            check: "injection",
            title: "t",
            items: vec![Item::finding("x", finding("injection", "Missing", "a"))],
        });
        assert_eq!(d.appeared.len(), 1);
        let st = s.status_json();
        assert_eq!(st["role"], "follower");
        assert_eq!(st["findings"][0]["reason"], "Missing");
        assert_eq!(st["config"]["profile"], "asm-onprem");
    }

    #[test]
    fn liveness_fails_when_the_evaluator_stalls() {
        let s = AgentState::new(json!({}), Duration::ZERO);
        std::thread::sleep(Duration::from_millis(2)); // NB: measures elapsed time, not synchronisation
        assert!(s.stalled().is_some());
        let s = AgentState::new(json!({}), Duration::from_secs(3600));
        s.beat();
        assert!(s.stalled().is_none());
    }
}
