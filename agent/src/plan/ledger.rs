//! The planner's memory: what meshkeeper set, who changed it back, which versions were acted
//! on, and which writes are cooling down after a failure. Every record is kept per object and
//! field and dropped once it is older than the contest window (or its own short lifetime), so
//! the ledger stays bounded by recent activity, never by a global count.
//!
//! The contest rule ("loop guard") for every repairing check:
//!
//! 1. a successful repair records (field, value set, the resourceVersion the write produced);
//! 2. a later remedy for the same field, observed on a *newer* version of the object, is a
//!    revert: someone else changed what meshkeeper set. It is attributed to the field's current
//!    owners in managedFields (other than meshkeeper); for a field that was removed (no owner)
//!    to the managers that wrote the object after the repair; else "unknown". One revert per
//!    observed version.
//! 3. a field with `contest_reverts` reverts within `contest_window_minutes` is contested: the
//!    planner stops repairing it and reports it, naming the other managers.
//!
//! A fresh object with many drifted fields is pinned with one write and never reverted by
//! itself, so it is never a contest; neither are stale cache views of meshkeeper's own writes
//! (their version is not newer than the write's).

use std::collections::{BTreeMap, VecDeque};

use crate::change::{FieldChange, Remedy};
use crate::findings::ObjectRef;

use super::{Action, Outcome};

/// How long an acted-on version stays remembered (the watch normally delivers the write's
/// result within milliseconds; after this the same plan may be tried again).
pub const ACTED_TTL_MS: i64 = 60_000;
/// The longest cooldown after repeated failures.
pub const MAX_COOLDOWN_MS: i64 = 300_000;

/// The cooldown after the `failures`-th failure in a row: 1 s, doubling, at most
/// [`MAX_COOLDOWN_MS`].
fn cooldown_ms(failures: u32) -> i64 {
    (1000i64 << failures.saturating_sub(1).min(9)).min(MAX_COOLDOWN_MS)
}

/// A field that another manager keeps changing back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contest {
    pub field: String,
    pub expected: String,
    pub actual: String,
    pub by: Vec<String>,
    pub reverts: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Repair {
    at_ms: i64,
    value: String,
    /// The resourceVersion the write produced.
    written: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Revert {
    at_ms: i64,
    observed: Option<String>,
    by: Vec<String>,
}

#[derive(Debug, Clone, Default)]
struct FieldRecord {
    repairs: VecDeque<Repair>,
    reverts: VecDeque<Revert>,
}

/// The last outcome of an action on an object, for the planner's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastOutcome {
    pub at_ms: i64,
    pub kind: &'static str,
    pub object: ObjectRef,
    pub description: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Default)]
struct ActionState {
    /// (version acted on, when)
    acted: Option<(String, i64)>,
    failures: u32,
    retry_at_ms: i64,
    last: Option<LastOutcome>,
}

/// Per object and field history, bounded by time.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    fields: BTreeMap<(ObjectRef, String), FieldRecord>,
    actions: BTreeMap<(&'static str, ObjectRef), ActionState>,
    /// Restarts (and evictions) sent, by workload: unix ms, kept for an hour.
    restarts: BTreeMap<ObjectRef, i64>,
}

/// How long a restart is remembered (the hourly budget's window).
pub const RESTART_MEMORY_MS: i64 = 3_600_000;
/// How long an eviction refused by a PodDisruptionBudget waits before the next try.
pub const THROTTLE_MS: i64 = 10_000;

fn key(o: &ObjectRef) -> ObjectRef {
    // uids differ between a deleted and a recreated object; the history is about the name.
    ObjectRef { uid: None, ..o.clone() }
}

/// Whether `observed` is a later version than `written`. resourceVersions are etcd revisions
/// (integers) on every real API server; if either is not, any other version counts as later.
fn newer(observed: Option<&str>, written: Option<&str>) -> bool {
    match (observed.and_then(|o| o.parse::<u64>().ok()), written.and_then(|w| w.parse::<u64>().ok())) {
        (Some(o), Some(w)) => o > w,
        _ => observed.is_some() && observed != written,
    }
}

impl Ledger {
    /// Records what an action achieved.
    pub fn record(&mut self, action: &Action, outcome: &Outcome, now_ms: i64) {
        if matches!(outcome, Outcome::NotAttempted(_)) {
            return;
        }
        let state = self.actions.entry((action.kind, key(&action.object))).or_default();
        state.last = Some(LastOutcome {
            at_ms: now_ms,
            kind: action.kind,
            object: action.object.clone(),
            description: action.description.clone(),
            outcome: outcome.clone(),
        });
        let restart = action.kind == crate::checks::reinjection::ACTION;
        match outcome {
            Outcome::Done { .. } if restart => {
                state.failures = 0;
                state.retry_at_ms = 0;
                if let Some(rv) = &action.observed {
                    state.acted = Some((rv.clone(), now_ms));
                }
                self.restarts.insert(key(&action.object), now_ms);
            }
            Outcome::Throttled(_) => {
                state.failures = 1;
                state.retry_at_ms = now_ms + THROTTLE_MS;
            }
            Outcome::Done { resource_version } => {
                state.failures = 0;
                state.retry_at_ms = 0;
                if let Some(rv) = &action.observed {
                    state.acted = Some((rv.clone(), now_ms));
                }
                for (field, value) in &action.fields {
                    let rec = self.fields.entry((key(&action.object), field.clone())).or_default();
                    rec.repairs.push_back(Repair {
                        at_ms: now_ms,
                        value: value.clone(),
                        written: resource_version.clone(),
                    });
                }
            }
            Outcome::DryRun => {
                state.failures = 0;
                if let Some(rv) = &action.observed {
                    state.acted = Some((rv.clone(), now_ms));
                }
            }
            Outcome::ChangedMeanwhile { current } if current.is_some() && *current == action.observed => {
                // Re-read: still the version the plan saw, so nothing newer will arrive. A
                // transient conflict: re-decided on this version after a backoff (not an error).
                state.failures += 1;
                state.retry_at_ms = now_ms + cooldown_ms(state.failures);
                state.acted = None;
            }
            Outcome::ChangedMeanwhile { .. } => {
                // Not a failure: wait for the newer version instead of retrying this one.
                if let Some(rv) = &action.observed {
                    state.acted = Some((rv.clone(), now_ms));
                }
            }
            Outcome::NotFound => {
                state.failures = 0;
                state.retry_at_ms = 0;
                let k = key(&action.object);
                self.fields.retain(|(o, _), _| *o != k);
            }
            Outcome::Forbidden(_) | Outcome::Failed(_) => {
                state.failures += 1;
                state.retry_at_ms = now_ms + cooldown_ms(state.failures);
            }
            Outcome::NotAttempted(_) => {}
        }
    }

    /// Notes a revert if `field` of `remedy` was set by meshkeeper and the remedy was observed
    /// on a version newer than that write.
    pub fn observe(&mut self, remedy: &Remedy, field: &FieldChange, now_ms: i64) {
        let Some(rec) = self.fields.get_mut(&(key(&remedy.object), field.field.clone())) else { return };
        let Some(repair) = rec.repairs.back() else { return };
        if !newer(remedy.resource_version.as_deref(), repair.written.as_deref()) {
            return;
        }
        if rec.reverts.iter().any(|r| r.observed == remedy.resource_version && r.at_ms >= repair.at_ms) {
            return;
        }
        let mut by = field.owners.clone();
        if by.is_empty() {
            let since_s = repair.at_ms / 1000 - 1;
            by = remedy.writers.iter().filter(|(_, t)| *t >= since_s).map(|(m, _)| m.clone()).collect();
            by.sort();
            by.dedup();
        }
        if by.is_empty() {
            by.push("unknown".into());
        }
        rec.reverts.push_back(Revert { at_ms: now_ms, observed: remedy.resource_version.clone(), by });
    }

    /// The contest on a field, if it has `threshold` reverts within the window.
    pub fn contest(
        &self,
        object: &ObjectRef,
        field: &str,
        now_ms: i64,
        window_ms: i64,
        threshold: usize,
    ) -> Option<Contest> {
        let rec = self.fields.get(&(key(object), field.to_string()))?;
        let recent: Vec<&Revert> = rec.reverts.iter().filter(|r| now_ms - r.at_ms <= window_ms).collect();
        if recent.len() < threshold.max(1) {
            return None;
        }
        let mut by: Vec<String> = recent.iter().flat_map(|r| r.by.iter().cloned()).collect();
        by.sort();
        by.dedup();
        let expected = rec.repairs.back().map(|r| r.value.clone()).unwrap_or_default();
        Some(Contest { field: field.to_string(), expected, actual: String::new(), by, reverts: recent.len() })
    }

    /// Restarts sent at or after `since_ms`: (workload, unix ms).
    pub fn restarts_since(&self, since_ms: i64) -> Vec<(ObjectRef, i64)> {
        self.restarts.iter().filter(|(_, t)| **t >= since_ms).map(|(o, t)| (o.clone(), *t)).collect()
    }

    /// The last restart meshkeeper sent to this workload (unix ms).
    pub fn last_restart(&self, workload: &ObjectRef) -> Option<i64> {
        self.restarts.get(&key(workload)).copied()
    }

    /// Until when (unix ms) an action must wait after failures, if it must.
    pub fn cooling_down(&self, action: &Action, now_ms: i64) -> Option<i64> {
        let s = self.actions.get(&(action.kind, key(&action.object)))?;
        (s.failures > 0 && now_ms < s.retry_at_ms).then_some(s.retry_at_ms)
    }

    /// Whether this action was planned from a version already acted on (recently).
    pub fn is_stale(&self, action: &Action, now_ms: i64) -> bool {
        let Some(rv) = &action.observed else { return false };
        self.actions
            .get(&(action.kind, key(&action.object)))
            .and_then(|s| s.acted.as_ref())
            .is_some_and(|(acted, at)| acted == rv && now_ms - at < ACTED_TTL_MS)
    }

    /// The last outcome of every action within the window (oldest first).
    pub fn outcomes(&self, now_ms: i64, window_ms: i64) -> Vec<&LastOutcome> {
        let mut v: Vec<&LastOutcome> =
            self.actions.values().filter_map(|s| s.last.as_ref()).filter(|l| now_ms - l.at_ms <= window_ms).collect();
        v.sort_by_key(|l| l.at_ms);
        v
    }

    /// Drops everything older than the window (and acted versions older than their TTL).
    pub fn prune(&mut self, now_ms: i64, window_ms: i64) {
        for rec in self.fields.values_mut() {
            rec.repairs.retain(|r| now_ms - r.at_ms <= window_ms);
            rec.reverts.retain(|r| now_ms - r.at_ms <= window_ms);
        }
        self.fields.retain(|_, r| !r.repairs.is_empty() || !r.reverts.is_empty());
        for s in self.actions.values_mut() {
            if s.acted.as_ref().is_some_and(|(_, at)| now_ms - at >= ACTED_TTL_MS) {
                s.acted = None;
            }
            if s.last.as_ref().is_some_and(|l| now_ms - l.at_ms > window_ms) {
                s.last = None;
            }
            if s.failures > 0 && now_ms >= s.retry_at_ms && s.last.is_none() {
                s.failures = 0;
            }
        }
        self.actions.retain(|_, s| s.acted.is_some() || s.last.is_some() || s.failures > 0);
        self.restarts.retain(|_, t| now_ms - *t < RESTART_MEMORY_MS);
    }

    /// Entries held (for tests and `/status`): (fields, actions).
    pub fn size(&self) -> (usize, usize) {
        (self.fields.len(), self.actions.len())
    }

    /// Restarts remembered.
    pub fn restart_count(&self) -> usize {
        self.restarts.len()
    }
}
