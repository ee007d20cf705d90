//! The planner: pure decisions from what the checks propose to what the actuator does, and
//! why everything else waits.
//!
//! ```text
//!  remedies (from checks) ─┐
//!  gates (leader, synced) ─┼─► plan() ─► Plan { actions, waiting, report }
//!  settings, clock ────────┤        ▲
//!  ledger (history) ───────┘        └── outcomes of earlier actions (recorded by the runtime)
//! ```
//!
//! For every remedy, in order: is the capability enforcing (mode / repair switch)? is any of
//! its fields contested (the [`ledger`]'s guard: meshkeeper set it and another field manager
//! changed it back N times within M minutes)? is this replica the leader, are the caches
//! synced and the inputs' watches healthy? is the object cooling down after a failed write, or
//! was this very version already acted on? A remedy that passes becomes one [`Action`]: one
//! JSON patch for all of its fields that may be set, so pinning a fresh object with many
//! drifted fields is one write, never a contest.
//!
//! Nothing here does I/O; the clock is an argument.

pub mod ledger;
mod report;
pub mod restarts;

use std::collections::BTreeSet;

use kube::core::ApiResource;
use serde::Serialize;
use serde_json::Value;

use crate::change::{Remedy, RestartInput};
use crate::config::{GatewayMode, Mode, Settings};
use crate::findings::{CheckReport, ObjectRef};

pub use ledger::{Contest, Ledger};

/// The check name of the planner's own report (repairs held, refused or failing).
pub const CHECK: &str = "repairs";

/// What the actuator does with an action.
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    /// A JSON patch (RFC 6902); its `test`s make a concurrent change fail with 422.
    JsonPatch(Vec<Value>),
    /// An eviction of the pod (the Eviction API: PodDisruptionBudgets decide).
    Evict,
}

/// A write the planner decided on.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// Metric label, e.g. `injection_label`, `gateway_pin`.
    pub kind: &'static str,
    /// CamelCase Event reason on success, e.g. `InjectionLabelRestored`.
    pub reason: &'static str,
    pub object: ObjectRef,
    pub resource: ApiResource,
    pub description: String,
    pub operation: Operation,
    /// The fields it sets and the value each gets (for per-field metrics and the ledger).
    pub fields: Vec<(String, String)>,
    /// The object's resourceVersion the plan was made from: once an action was carried out
    /// (or found the object changed) on a version, plans from that version are stale.
    pub observed: Option<String>,
}

/// How an action ended (the actuator's answer, recorded in the ledger).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Written; the object's new resourceVersion.
    Done {
        resource_version: Option<String>,
    },
    DryRun,
    /// 409, or a JSON patch whose `test` failed (422 without causes): the object changed
    /// meanwhile. Not an error: the next plan is made on the fresh state. `current` is the
    /// version read back after the conflict (None when it could not be read).
    ChangedMeanwhile {
        current: Option<String>,
    },
    /// 403: RBAC denies it (the API's message).
    Forbidden(String),
    /// 404: the object is gone.
    NotFound,
    /// 429 on an eviction: a PodDisruptionBudget does not allow it now (the API's message).
    Throttled(String),
    /// Anything else, as one readable line.
    Failed(String),
    /// Not attempted, and why (not the leader, not synced, shutting down).
    NotAttempted(&'static str),
}

impl Outcome {
    /// The `result` label of metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Done { .. } => "success",
            Outcome::DryRun => "dry_run",
            Outcome::ChangedMeanwhile { .. } => "conflict",
            Outcome::Forbidden(_) => "forbidden",
            Outcome::NotFound => "not_found",
            Outcome::Throttled(_) => "throttled",
            Outcome::Failed(_) => "error",
            Outcome::NotAttempted(_) => "not_attempted",
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self, Outcome::Done { .. } | Outcome::DryRun)
    }

    /// A failure an SRE must act on (refused or failing), as opposed to a race.
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Forbidden(_) | Outcome::Failed(_))
    }

    /// What went wrong, for logs, `/status` and Events.
    pub fn error(&self) -> Option<String> {
        match self {
            Outcome::Forbidden(m) | Outcome::Failed(m) => Some(m.clone()),
            Outcome::ChangedMeanwhile { .. } => Some("the object changed meanwhile; re-planning on fresh state".into()),
            Outcome::NotFound => Some("the object no longer exists".into()),
            Outcome::Throttled(m) => Some(format!("not now: {m}")),
            _ => None,
        }
    }
}

/// Why a remedy (or some of its fields) is not acted on now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Wait {
    /// The capability only reports (e.g. `injection.mode: audit`, `gateway.repair: false`).
    ReportOnly {
        setting: String,
    },
    /// Another field manager keeps changing the field back.
    Contested {
        field: String,
        by: Vec<String>,
        reverts: usize,
    },
    NotLeader,
    /// Caches not complete yet, or a watch the check reads is failing.
    NotSynced {
        resources: Vec<String>,
    },
    /// An earlier write of it failed; retried at this unix time (ms).
    CoolingDown {
        until_ms: i64,
    },
    /// This version was just acted on; waiting to observe the result.
    Pending,
    /// Re-injection: the injector cannot inject right now.
    InjectorUnhealthy {
        why: String,
    },
    /// Re-injection: outside every maintenance window; the next opens at this unix time.
    OutsideWindow {
        opens_at: Option<i64>,
    },
    /// Re-injection: `max_restarts_per_hour` reached; a slot frees at this unix time (ms).
    BudgetSpent {
        per_hour: u32,
        until_ms: i64,
    },
    /// Re-injection: `max_rollouts_in_progress` of meshkeeper's rollouts are not complete.
    RolloutsInProgress {
        in_progress: usize,
        max: u32,
    },
    /// Re-injection: a rollout of meshkeeper's is in progress in this namespace.
    NamespaceBusy {
        namespace: String,
    },
    /// Re-injection of an OnDelete workload: the last evicted pod's replacement is not ready.
    ReplacementPending,
}

impl Wait {
    pub fn describe(&self) -> String {
        match self {
            Wait::ReportOnly { setting } => format!("report only ({setting})"),
            Wait::Contested { field, by, reverts } => {
                format!("{field} is contested: changed back {reverts} times by {}", by.join(", "))
            }
            Wait::NotLeader => "not the leader".into(),
            Wait::NotSynced { resources } => format!("waiting for the {} watch(es) to be synced", resources.join(", ")),
            Wait::CoolingDown { until_ms } => format!("an earlier write failed; retrying at {}", until_ms / 1000),
            Wait::Pending => "waiting to observe the last write".into(),
            Wait::InjectorUnhealthy { why } => format!("the injector cannot inject: {why}"),
            Wait::OutsideWindow { opens_at: Some(t) } => {
                format!("outside the maintenance windows; the next opens at {t}")
            }
            Wait::OutsideWindow { opens_at: None } => "outside the maintenance windows".into(),
            Wait::BudgetSpent { per_hour, until_ms } => {
                format!(
                    "{per_hour} restarts in the last hour (reinjection.max_restarts_per_hour); next slot at {}",
                    until_ms / 1000
                )
            }
            Wait::RolloutsInProgress { in_progress, max } => {
                format!(
                    "{in_progress} of meshkeeper's rollouts in progress (reinjection.max_rollouts_in_progress: {max})"
                )
            }
            Wait::NamespaceBusy { namespace } => {
                format!("another rollout of meshkeeper's is in progress in {namespace}")
            }
            Wait::ReplacementPending => "waiting for the last evicted pod's replacement to be ready".into(),
        }
    }

    /// The `action` of the `ReinjectionHeld` Event a workload gets when its restart starts
    /// waiting for this (None: no Event). One per reason: Events are folded into a series by
    /// reason, action and object, keeping the first one's note, so a hold that changes reason
    /// (rollouts in progress, then the window closed) would never say so under one action.
    pub fn held_action(&self) -> Option<&'static str> {
        match self {
            Wait::InjectorUnhealthy { .. } => Some("WaitForInjector"),
            Wait::OutsideWindow { .. } => Some("WaitForMaintenanceWindow"),
            Wait::BudgetSpent { .. } => Some("WaitForRestartBudget"),
            Wait::RolloutsInProgress { .. } => Some("WaitForRollouts"),
            Wait::NamespaceBusy { .. } => Some("WaitForNamespaceRollout"),
            Wait::ReportOnly { .. }
            | Wait::Contested { .. }
            | Wait::NotLeader
            | Wait::NotSynced { .. }
            | Wait::CoolingDown { .. }
            | Wait::Pending
            | Wait::ReplacementPending => None,
        }
    }

    /// Every value of [`Self::label`], and the verdicts the re-injection summary adds: the
    /// `reason` values of `meshkeeper_workloads_pending_reinjection`, each exported (0 when
    /// none) so a dashboard shows zeros rather than "no data".
    pub const PENDING_REASONS: [&'static str; 16] = [
        "report_only",
        "contested",
        "not_leader",
        "not_synced",
        "cooling_down",
        "pending",
        "injector_unhealthy",
        "outside_window",
        "budget_spent",
        "rollouts_in_progress",
        "namespace_busy",
        "replacement_pending",
        "no_controller",
        "blocked",
        "failed",
        "opted_out",
    ];

    /// The `reason` label of `meshkeeper_workloads_pending_reinjection`.
    pub fn label(&self) -> &'static str {
        match self {
            Wait::ReportOnly { .. } => "report_only",
            Wait::Contested { .. } => "contested",
            Wait::NotLeader => "not_leader",
            Wait::NotSynced { .. } => "not_synced",
            Wait::CoolingDown { .. } => "cooling_down",
            Wait::Pending => "pending",
            Wait::InjectorUnhealthy { .. } => "injector_unhealthy",
            Wait::OutsideWindow { .. } => "outside_window",
            Wait::BudgetSpent { .. } => "budget_spent",
            Wait::RolloutsInProgress { .. } => "rollouts_in_progress",
            Wait::NamespaceBusy { .. } => "namespace_busy",
            Wait::ReplacementPending => "replacement_pending",
        }
    }
}

/// A remedy the planner did not turn into an action now, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Waiting {
    pub check: &'static str,
    pub kind: &'static str,
    pub object: ObjectRef,
    pub fields: Vec<String>,
    pub wait: Wait,
}

/// The re-injection holds to announce with a `ReinjectionHeld` Event now: each reason a
/// workload waits for is told once while it keeps waiting (flapping between the rollouts in
/// progress and its namespace's, or a pass waiting for the queued restarts, tells nothing new).
/// `told` remembers (workload, reason) and forgets a workload once it no longer waits at all,
/// so a later hold of it is told again.
pub fn holds_to_tell<'w>(
    told: &mut BTreeSet<(ObjectRef, &'static str)>,
    waiting: impl IntoIterator<Item = &'w Waiting>,
) -> Vec<&'w Waiting> {
    let waiting: Vec<&Waiting> = waiting.into_iter().collect();
    let still: BTreeSet<&ObjectRef> = waiting.iter().map(|w| &w.object).collect();
    told.retain(|(o, _)| still.contains(o));
    waiting
        .into_iter()
        .filter(|w| w.wait.held_action().is_some() && told.insert((w.object.clone(), w.wait.label())))
        .collect()
}

/// What this replica may do right now (from leadership and watch state).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gates {
    pub leader: bool,
    /// Every watch has listed once.
    pub synced: bool,
    /// Per check, the resources it reads whose watch is failing right now.
    pub failing: Vec<(&'static str, Vec<String>)>,
    /// Restarts (and evictions) sent to the actuator earlier and not carried out yet. A plan
    /// that does not know them could exceed the budget: no new restart starts until they are.
    pub restarts_queued: usize,
}

/// The planner's result.
#[derive(Debug, Clone)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub waiting: Vec<Waiting>,
    /// The planner's own findings: contested fields, refused and failing writes.
    pub report: CheckReport,
    /// meshkeeper's rollouts in progress (`meshkeeper_rollouts_in_progress`).
    pub rollouts_in_progress: usize,
}

/// Whether the capability behind a check may write at all, or the setting that keeps it quiet.
pub fn enforcing(settings: &Settings, check: &str) -> Result<(), String> {
    match check {
        crate::checks::injection::CHECK => match settings.injection.mode {
            Mode::Enforce => Ok(()),
            m => Err(format!("injection.mode is {}", mode_str(m))),
        },
        crate::checks::gateway::CHECK => {
            if settings.gateway.mode == GatewayMode::Off {
                Err("gateway.mode is off".into())
            } else if !settings.gateway.repair {
                Err("gateway.repair is false".into())
            } else {
                Ok(())
            }
        }
        other => Err(format!("{other} has no repairs")),
    }
}

pub(crate) fn mode_str(m: Mode) -> &'static str {
    match m {
        Mode::Enforce => "enforce",
        Mode::Audit => "audit",
        Mode::Off => "off",
    }
}

/// Plans the actions for the current remedies and restart candidates (pure, apart from the
/// ledger it updates with what it observed: reverts of fields meshkeeper had set).
pub fn plan(
    settings: &Settings,
    remedies: &[Remedy],
    restarts: Option<&RestartInput>,
    gates: &Gates,
    now_ms: i64,
    ledger: &mut Ledger,
) -> Plan {
    let window_ms = i64::from(settings.repairs.contest_window_minutes) * 60_000;
    let threshold = settings.repairs.contest_reverts as usize;
    ledger.prune(now_ms, window_ms);
    let mut actions = Vec::new();
    let mut waiting = Vec::new();
    let mut contests: Vec<(&Remedy, Vec<Contest>)> = Vec::new();
    for r in remedies {
        let wait = |fields: Vec<String>, wait: Wait| Waiting {
            check: r.check,
            kind: r.kind,
            object: r.object.clone(),
            fields,
            wait,
        };
        // Reverts are observed whatever the mode: a report-only replica still tells the truth.
        let mut free = Vec::new();
        let mut held = Vec::new();
        for f in &r.fields {
            ledger.observe(r, f, now_ms);
            match ledger.contest(&r.object, &f.field, now_ms, window_ms, threshold) {
                Some(c) => held.push(c),
                None => free.push(f),
            }
        }
        for c in &held {
            waiting.push(wait(
                vec![c.field.clone()],
                Wait::Contested { field: c.field.clone(), by: c.by.clone(), reverts: c.reverts },
            ));
        }
        if !held.is_empty() {
            contests.push((r, held));
        }
        if free.is_empty() {
            continue;
        }
        let names: Vec<String> = free.iter().map(|f| f.field.clone()).collect();
        if let Err(setting) = enforcing(settings, r.check) {
            waiting.push(wait(names, Wait::ReportOnly { setting }));
            continue;
        }
        if !gates.leader {
            waiting.push(wait(names, Wait::NotLeader));
            continue;
        }
        let failing: BTreeSet<String> = gates
            .failing
            .iter()
            .filter(|(check, _)| *check == r.check)
            .flat_map(|(_, res)| res.iter().cloned())
            .collect();
        if !gates.synced || !failing.is_empty() {
            waiting.push(wait(names, Wait::NotSynced { resources: failing.into_iter().collect() }));
            continue;
        }
        let action = Action {
            kind: r.kind,
            reason: r.reason,
            object: r.object.clone(),
            resource: r.resource.clone(),
            description: describe(r, &free),
            operation: Operation::JsonPatch(r.patch_for(free.iter().copied())),
            fields: free.iter().map(|f| (f.field.clone(), f.expected.clone())).collect(),
            observed: r.resource_version.clone(),
        };
        if let Some(until_ms) = ledger.cooling_down(&action, now_ms) {
            waiting.push(wait(names, Wait::CoolingDown { until_ms }));
            continue;
        }
        if ledger.is_stale(&action, now_ms) {
            waiting.push(wait(names, Wait::Pending));
            continue;
        }
        actions.push(action);
    }
    let mut rollouts_in_progress = 0;
    if let Some(input) = restarts {
        let r = restarts::plan(settings, input, gates, now_ms, ledger);
        actions.extend(r.actions);
        waiting.extend(r.waiting);
        rollouts_in_progress = r.in_progress;
    }
    let report = report::render(settings, &contests, &waiting, &actions, ledger, now_ms, window_ms);
    Plan { actions, waiting, report, rollouts_in_progress }
}

/// `set node_port:http2 to 31380 (was 32080), https to 31390 (was unset)`.
fn describe(r: &Remedy, fields: &[&crate::change::FieldChange]) -> String {
    let parts: Vec<String> =
        fields.iter().map(|f| format!("{} to {} (was {})", f.field, f.expected, f.actual)).collect();
    format!("set {} on {}", parts.join(", "), r.object)
}

#[cfg(test)]
mod tests;
