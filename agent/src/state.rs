//! What every part of the daemon shares: the state of each watch, leadership, the current
//! findings and reports, what the planner holds back, recent actions, and a liveness
//! heartbeat. Read by `/status`, `/readyz`, `/healthz` and the scrape-time gauges; written by
//! the watchers, the leader elector, the evaluator and the actuator loop.

use std::collections::{BTreeMap, VecDeque};
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
    /// success, dry_run, conflict, forbidden, not_found, error
    pub result: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A watch's current error, as one readable line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WatchError {
    pub message: String,
    /// The HTTP code, when the API server answered.
    pub code: Option<u16>,
    /// Unix seconds of the first failure in this run of failures.
    pub since: u64,
}

/// One watch: has it listed once, and is it failing now?
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WatchStatus {
    pub listed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<WatchError>,
    /// When the API server last accepted this watch again while it was failing (the watch
    /// resumed: a quiet resource may send nothing for a minute).
    #[serde(skip)]
    pub reopened: Option<Instant>,
}

impl WatchStatus {
    /// Listed once and not failing right now (`meshkeeper_watch_synced`).
    pub fn synced(&self) -> bool {
        self.listed && self.error.is_none()
    }

    pub fn state(&self) -> &'static str {
        match (self.listed, &self.error) {
            (_, Some(_)) => "failing",
            (true, None) => "synced",
            (false, None) => "syncing",
        }
    }
}

/// What the leader elector last saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LeaderObservation {
    #[default]
    Starting,
    /// Election is off: this replica always acts.
    Disabled,
    Leading {
        lease: String,
    },
    Following {
        lease: String,
        holder: Option<String>,
    },
    /// The Lease cannot be read or written; this replica keeps watching and reporting.
    Failing {
        lease: String,
        error: String,
        code: Option<u16>,
        /// The Lease's namespace does not exist (404 `namespaces "x" not found`).
        namespace_missing: bool,
    },
}

#[derive(Debug, Clone, Copy)]
enum Leadership {
    No,
    Until(Instant),
    Always,
}

/// The planner's view of re-injection, for the gauges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReinjectionSummary {
    /// Workloads needing a restart that do not get one now, by reason.
    pub pending: BTreeMap<String, u64>,
    pub rollouts_in_progress: u64,
    /// Whether the planner has run with the re-injection check's input at all.
    pub known: bool,
}

/// Shared state of one agent process.
#[derive(Debug)]
pub struct AgentState {
    watches: Mutex<BTreeMap<&'static str, WatchStatus>>,
    leadership: Mutex<Leadership>,
    leader_observation: RwLock<LeaderObservation>,
    findings: RwLock<FindingSet>,
    reports: RwLock<BTreeMap<&'static str, CheckReport>>,
    waiting: RwLock<Value>,
    contested: RwLock<Vec<(String, String)>>,
    check_gauges: RwLock<BTreeMap<&'static str, Vec<crate::metrics::Sample>>>,
    reinjection: RwLock<ReinjectionSummary>,
    actions: Mutex<VecDeque<ActionRecord>>,
    heartbeat: Mutex<Instant>,
    stall_after: Duration,
    config_summary: Value,
    /// Refusals (403) seen since start, and a wake-up for the prober: permissions are asked
    /// again when one is seen.
    forbidden: std::sync::atomic::AtomicU64,
    forbidden_seen: tokio::sync::Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

pub fn unix_now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl AgentState {
    /// `stall_after`: how long the evaluator may go without a pass before liveness fails.
    pub fn new(config_summary: Value, stall_after: Duration) -> Self {
        AgentState {
            watches: Mutex::new(BTreeMap::new()),
            leadership: Mutex::new(Leadership::No),
            leader_observation: RwLock::new(LeaderObservation::Starting),
            findings: RwLock::new(FindingSet::default()),
            reports: RwLock::new(BTreeMap::new()),
            waiting: RwLock::new(Value::Array(vec![])),
            contested: RwLock::new(Vec::new()),
            check_gauges: RwLock::new(BTreeMap::new()),
            reinjection: RwLock::new(ReinjectionSummary::default()),
            actions: Mutex::new(VecDeque::new()),
            heartbeat: Mutex::new(Instant::now()),
            stall_after,
            config_summary,
            forbidden: Default::default(),
            forbidden_seen: tokio::sync::Notify::new(),
        }
    }

    // --- refusals ---

    /// The API server refused a request of ours (403): RBAC may have changed.
    pub fn saw_forbidden(&self) {
        self.forbidden.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.forbidden_seen.notify_one();
    }

    /// How many refusals were seen since start.
    pub fn forbidden_count(&self) -> u64 {
        self.forbidden.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Completes at the next refusal (or at once if one came since the last call).
    pub async fn next_forbidden(&self) {
        self.forbidden_seen.notified().await;
    }

    // --- watches ---

    /// Declares a watch that must complete its first list before the agent is ready.
    pub fn register_watch(&self, resource: &'static str) {
        lock(&self.watches).entry(resource).or_default();
    }

    /// A (re-)list completed: the cache is complete and the watch healthy.
    pub fn mark_synced(&self, resource: &'static str) {
        let mut w = lock(&self.watches);
        let s = w.entry(resource).or_default();
        s.listed = true;
        s.error = None;
        s.reopened = None;
    }

    /// An event arrived: the watch works (clears an earlier error).
    pub fn watch_ok(&self, resource: &'static str) {
        if let Some(s) = lock(&self.watches).get_mut(resource) {
            s.error = None;
            s.reopened = None;
        }
    }

    /// The API server accepted a new watch request for this resource (200). Returns the
    /// instant to pass to [`AgentState::settle_reopened`] when the watch was failing.
    pub fn watch_reopened(&self, resource: &str) -> Option<Instant> {
        let mut w = lock(&self.watches);
        let s = w.get_mut(resource).filter(|s| s.error.is_some())?;
        let now = Instant::now();
        s.reopened = Some(now);
        Some(now)
    }

    /// A failing watch reopened at `at` and no error followed within the grace period: it
    /// works again (a 410 or a refused resume would have failed it at once). True when this
    /// cleared the error.
    pub fn settle_reopened(&self, resource: &str, at: Instant) -> bool {
        let mut w = lock(&self.watches);
        match w.get_mut(resource) {
            Some(s) if s.error.is_some() && s.reopened == Some(at) => {
                s.error = None;
                s.reopened = None;
                true
            }
            _ => false,
        }
    }

    /// The watch failed; it is retried with backoff.
    pub fn watch_failed(&self, resource: &'static str, message: String, code: Option<u16>) {
        if code == Some(403) {
            self.saw_forbidden();
        }
        let mut w = lock(&self.watches);
        let s = w.entry(resource).or_default();
        let since = s.error.as_ref().map(|e| e.since).unwrap_or_else(unix_now);
        s.error = Some(WatchError { message, code, since });
        s.reopened = None;
    }

    /// Whether the watch of `resource` is failing right now.
    pub fn watch_failing(&self, resource: &str) -> bool {
        lock(&self.watches).get(resource).is_some_and(|s| s.error.is_some())
    }

    pub fn watches(&self) -> BTreeMap<&'static str, WatchStatus> {
        lock(&self.watches).clone()
    }

    /// Watches that have not completed their first list yet.
    pub fn pending_watches(&self) -> Vec<&'static str> {
        lock(&self.watches).iter().filter(|(_, s)| !s.listed).map(|(r, _)| *r).collect()
    }

    /// Whether the watch of `resource` has listed once (unknown watches have not).
    pub fn listed(&self, resource: &str) -> bool {
        lock(&self.watches).get(resource).is_some_and(|s| s.listed)
    }

    /// Every watch has listed once.
    pub fn is_ready(&self) -> bool {
        self.pending_watches().is_empty()
    }

    // --- leadership ---

    /// Leader until `until` (the renew deadline): past it, this replica stops acting even if
    /// the elector could not say so, before any other replica may take over.
    pub fn set_leader_until(&self, until: Instant) {
        *lock(&self.leadership) = Leadership::Until(until);
    }

    /// Leader for good (election disabled) or not at all.
    pub fn set_leader(&self, leader: bool) {
        *lock(&self.leadership) = if leader { Leadership::Always } else { Leadership::No };
    }

    pub fn is_leader(&self) -> bool {
        match *lock(&self.leadership) {
            Leadership::No => false,
            Leadership::Always => true,
            Leadership::Until(t) => Instant::now() < t,
        }
    }

    pub fn set_leader_observation(&self, o: LeaderObservation) {
        *write(&self.leader_observation) = o;
    }

    /// What the elector last saw; a leader past its renew deadline (its renewal hangs or keeps
    /// failing) is reported as failing, since it no longer acts.
    pub fn leader_observation(&self) -> LeaderObservation {
        match read(&self.leader_observation).clone() {
            LeaderObservation::Leading { lease } if !self.is_leader() => LeaderObservation::Failing {
                lease,
                error: "the Lease was not renewed within its renew deadline (lease_duration_seconds - grace_seconds); not acting until a renewal succeeds".into(),
                code: None,
                namespace_missing: false,
            },
            o => o,
        }
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

    // --- findings, plans and actions ---

    /// Stores a check's report and returns what appeared and resolved since its last one.
    pub fn record_report(&self, report: CheckReport) -> crate::findings::Diff {
        let findings: Vec<Finding> = report.findings().cloned().collect();
        let diff = write(&self.findings).replace_check(report.check, findings);
        write(&self.reports).insert(report.check, report);
        diff
    }

    pub fn findings(&self) -> FindingSet {
        read(&self.findings).clone()
    }

    pub fn reports(&self) -> Vec<CheckReport> {
        read(&self.reports).values().cloned().collect()
    }

    /// What the planner holds back (for `/status`), and the contested (check, field) pairs
    /// (for the gauges).
    pub fn set_plan_summary(&self, waiting: Value, contested: Vec<(String, String)>) {
        *write(&self.waiting) = waiting;
        *write(&self.contested) = contested;
    }

    pub fn contested(&self) -> Vec<(String, String)> {
        read(&self.contested).clone()
    }

    /// The gauge samples a check computed in its last evaluation.
    pub fn set_check_gauges(&self, check: &'static str, samples: Vec<crate::metrics::Sample>) {
        write(&self.check_gauges).insert(check, samples);
    }

    pub fn check_gauges(&self, check: &str) -> Vec<crate::metrics::Sample> {
        read(&self.check_gauges).get(check).cloned().unwrap_or_default()
    }

    pub fn set_reinjection_summary(&self, s: ReinjectionSummary) {
        *write(&self.reinjection) = s;
    }

    pub fn reinjection_summary(&self) -> ReinjectionSummary {
        read(&self.reinjection).clone()
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
        let watches: BTreeMap<&str, Value> = self
            .watches()
            .into_iter()
            .map(|(r, s)| {
                let mut v = json!({"state": s.state()});
                if let Some(e) = &s.error {
                    v["error"] = json!(e.message);
                    v["failing_since"] = json!(e.since);
                }
                (r, v)
            })
            .collect();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "ready": self.is_ready(),
            "role": if self.is_leader() { "leader" } else { "follower" },
            "leader_election": self.leader_observation(),
            "watches": watches,
            "findings": findings,
            "waiting": *read(&self.waiting),
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
    fn a_leader_past_its_renew_deadline_is_reported_as_failing() {
        let s = AgentState::new(json!({}), Duration::from_secs(60));
        s.set_leader_observation(LeaderObservation::Leading { lease: "meshkeeper/meshkeeper".into() });
        s.set_leader_until(Instant::now() + Duration::from_secs(60));
        assert_eq!(s.leader_observation(), LeaderObservation::Leading { lease: "meshkeeper/meshkeeper".into() });
        s.set_leader_until(Instant::now());
        match s.leader_observation() {
            LeaderObservation::Failing { lease, error, .. } => {
                assert_eq!(lease, "meshkeeper/meshkeeper");
                assert!(error.contains("not renewed within its renew deadline"), "{error}");
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn a_reopened_watch_works_again_only_when_no_error_followed_within_the_grace() {
        let s = AgentState::new(json!({}), Duration::from_secs(60));
        s.register_watch("services");
        s.mark_synced("services");
        assert_eq!(s.watch_reopened("services"), None, "a working watch's reopen is nothing");
        s.watch_failed("services", "watch failed: connection refused".into(), None);
        // Accepted again, then a 410 at once: still failing (the re-list will clear it).
        let at = s.watch_reopened("services").expect("failing, so a reopen counts");
        s.watch_failed("services", "410 Gone".into(), Some(410));
        assert!(!s.settle_reopened("services", at));
        assert!(s.watch_failing("services"));
        // Accepted again, and quiet: works.
        let first = s.watch_reopened("services").unwrap();
        let second = s.watch_reopened("services").unwrap();
        assert!(!s.settle_reopened("services", first) || first == second, "only the latest reopen settles");
        assert!(s.settle_reopened("services", second) || !s.watch_failing("services"));
        assert!(!s.watch_failing("services"));
        assert!(s.watches()["services"].synced());
    }

    #[test]
    fn ready_only_after_every_watch_listed_and_errors_are_kept_until_the_next_event() {
        let s = AgentState::new(json!({}), Duration::from_secs(60));
        assert!(s.is_ready(), "nothing to wait for");
        s.register_watch("namespaces");
        s.register_watch("pods");
        assert_eq!(s.pending_watches(), ["namespaces", "pods"]);
        s.watch_failed("pods", "list failed: pods is forbidden (403 Forbidden)".into(), Some(403));
        s.mark_synced("namespaces");
        assert!(!s.is_ready());
        assert_eq!(s.watches()["pods"].state(), "failing");
        assert_eq!(s.status_json()["watches"]["pods"]["error"], "list failed: pods is forbidden (403 Forbidden)");
        s.mark_synced("pods");
        assert!(s.is_ready() && s.watches()["pods"].synced());
        s.watch_failed("pods", "watch failed".into(), None);
        assert!(s.listed("pods") && !s.watches()["pods"].synced(), "listed once, failing now");
        s.watch_ok("pods");
        assert!(s.watches()["pods"].synced());
        s.register_watch("pods");
        assert!(s.is_ready(), "re-registering keeps the state");
    }

    #[test]
    fn leadership_ends_at_its_deadline() {
        let s = AgentState::new(json!({}), Duration::from_secs(60));
        assert!(!s.is_leader());
        s.set_leader_until(Instant::now() + Duration::from_secs(60));
        assert!(s.is_leader());
        s.set_leader_until(Instant::now() - Duration::from_millis(1));
        assert!(!s.is_leader(), "a deadline in the past is not leadership");
        s.set_leader(true);
        assert!(s.is_leader());
        s.set_leader(false);
        assert!(!s.is_leader());
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
        s.set_leader_observation(LeaderObservation::Failing {
            lease: "meshkeeper/meshkeeper".into(),
            error: "namespaces \"meshkeeper\" not found (404 NotFound)".into(),
            code: Some(404),
            namespace_missing: true,
        });
        let st = s.status_json();
        assert_eq!(st["role"], "follower");
        assert_eq!(st["findings"][0]["reason"], "Missing");
        assert_eq!(st["config"]["profile"], "asm-onprem");
        assert_eq!(st["leader_election"]["state"], "failing");
        assert_eq!(st["leader_election"]["namespace_missing"], true);
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
