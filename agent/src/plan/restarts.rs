//! Restart planning: which workloads are restarted (or which OnDelete pod is evicted) now to
//! re-inject their sidecars, and why every other candidate waits.
//!
//! A candidate is restarted only when all of these hold, checked in this order (the first
//! that fails is the reason it waits):
//!
//! | # | gate | wait |
//! |---|---|---|
//! | 1 | `reinjection.mode: enforce` | `report_only` |
//! | 2 | this replica leads | `not_leader` |
//! | 3 | every cache listed, the check's watches healthy | `not_synced` |
//! | 4 | the injector can inject (webhook, backend, CA) | `injector_unhealthy` |
//! | 5 | inside a maintenance window, if any is set | `outside_window` |
//! | 6 | its last restart (by anyone) is older than `cooldown_minutes` | `cooling_down` |
//! | 7 | fewer than `max_restarts_per_hour` restarts in the last hour (cluster-wide, anyone's) | `budget_spent` |
//! | 8 | fewer than `max_rollouts_in_progress` of meshkeeper's rollouts are not complete | `rollouts_in_progress` |
//! | 9 | no rollout of meshkeeper's in progress in its namespace | `namespace_busy` |
//! | 10 | the restarts sent earlier have been carried out (the actuator's queue) | `pending` |
//!
//! An OnDelete workload (with `evict_on_delete`) is evicted a pod at a time: while the last
//! evicted pod's replacement is not ready it waits (`replacement_pending`, after gate 4).
//!
//! Restarts already sent but not yet visible in the cache count as done (the ledger), and
//! every restart planned in this pass counts against the limits of the next candidate.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::change::{RestartCandidate, RestartInput, pointer_escape};
use crate::config::{Mode, Settings};
use crate::findings::ObjectRef;

use super::ledger::Ledger;
use super::{Action, Gates, Operation, Wait, Waiting};

use crate::cache::workload::RESTARTED_AT;

/// The JSON patch of a rolling restart: `test` the generation the plan saw (a spec changed
/// meanwhile re-plans), then set `kubectl.kubernetes.io/restartedAt` on the pod template.
pub fn restart_patch(c: &RestartCandidate, at: &str) -> Vec<Value> {
    let mut ops = vec![json!({"op": "test", "path": "/metadata/generation", "value": c.generation})];
    if !c.template_has_metadata {
        ops.push(json!({"op": "add", "path": "/spec/template/metadata", "value": {"annotations": {RESTARTED_AT: at}}}));
    } else if !c.template_has_annotations {
        ops.push(json!({"op": "add", "path": "/spec/template/metadata/annotations", "value": {RESTARTED_AT: at}}));
    } else {
        ops.push(json!({"op": "add", "path": format!("/spec/template/metadata/annotations/{}", pointer_escape(RESTARTED_AT)), "value": at}));
    }
    ops
}

/// RFC 3339 at second precision, as kubectl writes it.
pub fn rfc3339(now_ms: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(now_ms.div_euclid(1000))
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// What the restart planner concluded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RestartPlan {
    pub actions: Vec<Action>,
    pub waiting: Vec<Waiting>,
    /// meshkeeper's rollouts in progress (including those sent but not yet seen, and those
    /// planned now).
    pub in_progress: usize,
}

fn order(c: &RestartCandidate) -> (bool, String, String) {
    // Pods without any sidecar first: they are outside the mesh altogether.
    (c.missing == 0, c.namespace.clone(), c.workload.name.clone())
}

/// Plans restarts (pure, apart from what the ledger remembers of restarts already sent).
pub fn plan(settings: &Settings, input: &RestartInput, gates: &Gates, now_ms: i64, ledger: &Ledger) -> RestartPlan {
    let s = &settings.reinjection;
    let now = now_ms.div_euclid(1000);
    let cooldown = i64::from(s.cooldown_minutes) * 60;
    let deadline = i64::from(s.progress_deadline_minutes) * 60;
    // What the cache shows, plus what was sent and not yet seen.
    let mut recent: Vec<(ObjectRef, i64)> = input.recent_restarts.clone();
    let mut in_progress: Vec<(ObjectRef, i64)> = input.in_progress.clone();
    for (object, at_ms) in ledger.restarts_since(now_ms - 3_600_000) {
        let at = at_ms.div_euclid(1000);
        if object.kind == "Pod" {
            // An eviction counts against the hourly budget; its workload's unready pods, not
            // a rollout, say when the next may go.
            recent.push((object, at));
            continue;
        }
        let seen = |list: &Vec<(ObjectRef, i64)>| list.iter().any(|(o, t)| same(o, &object) && *t >= at - 2);
        if !seen(&recent) {
            recent.push((object.clone(), at));
        }
        if now - at <= deadline
            && !seen(&in_progress)
            && !input.recent_restarts.iter().any(|(o, t)| same(o, &object) && *t >= at - 2)
        {
            in_progress.push((object, at));
        }
    }
    let mut busy: BTreeSet<String> = in_progress.iter().filter_map(|(o, _)| o.namespace.clone()).collect();
    let mut candidates: Vec<&RestartCandidate> = input.candidates.iter().collect();
    candidates.sort_by_key(|c| order(c));
    let window = if s.maintenance_windows.is_empty() || s.maintenance_windows.iter().any(|w| w.contains(now)) {
        Ok(())
    } else {
        Err(s.maintenance_windows.iter().filter_map(|w| w.next_open(now)).min())
    };
    let mut out = RestartPlan::default();
    // Places held by candidates waiting for the queued restarts (not rollouts in progress).
    let mut held_places = 0;
    for c in candidates {
        let wait = |w: Wait| Waiting {
            check: crate::checks::reinjection::CHECK,
            kind: crate::checks::reinjection::ACTION,
            object: c.workload.clone(),
            fields: vec![if c.evict.is_some() { "eviction".into() } else { "restart".into() }],
            wait: w,
        };
        if s.mode != Mode::Enforce {
            out.waiting
                .push(wait(Wait::ReportOnly { setting: format!("reinjection.mode is {}", super::mode_str(s.mode)) }));
            continue;
        }
        if !gates.leader {
            out.waiting.push(wait(Wait::NotLeader));
            continue;
        }
        let failing: Vec<String> = gates
            .failing
            .iter()
            .filter(|(check, _)| *check == crate::checks::reinjection::CHECK)
            .flat_map(|(_, r)| r.iter().cloned())
            .collect();
        if !gates.synced || !failing.is_empty() {
            out.waiting.push(wait(Wait::NotSynced { resources: failing }));
            continue;
        }
        if let Some(why) = &input.injector_down {
            out.waiting.push(wait(Wait::InjectorUnhealthy { why: why.clone() }));
            continue;
        }
        if c.replacement_pending {
            out.waiting.push(wait(Wait::ReplacementPending));
            continue;
        }
        if let Err(opens) = window {
            out.waiting.push(wait(Wait::OutsideWindow { opens_at: opens }));
            continue;
        }
        let last = c.restarted_at.into_iter().chain(ledger.last_restart(&c.workload).map(|t| t.div_euclid(1000))).max();
        if c.evict.is_none()
            && let Some(t) = last.filter(|t| now - t < cooldown)
        {
            out.waiting.push(wait(Wait::CoolingDown { until_ms: (t + cooldown) * 1000 }));
            continue;
        }
        let hour: Vec<i64> = recent.iter().map(|(_, t)| *t).filter(|t| now - t < 3600).collect();
        if hour.len() >= s.max_restarts_per_hour as usize {
            let until = hour.iter().min().map(|t| (t + 3600) * 1000).unwrap_or(now_ms);
            out.waiting.push(wait(Wait::BudgetSpent { per_hour: s.max_restarts_per_hour, until_ms: until }));
            continue;
        }
        let mine_rolling = in_progress.iter().any(|(o, _)| same(o, &c.workload));
        if !mine_rolling && in_progress.len() >= s.max_rollouts_in_progress as usize {
            out.waiting.push(wait(Wait::RolloutsInProgress {
                in_progress: in_progress.len(),
                max: s.max_rollouts_in_progress,
            }));
            continue;
        }
        if busy.contains(&c.namespace) {
            out.waiting.push(wait(Wait::NamespaceBusy { namespace: c.namespace.clone() }));
            continue;
        }
        if gates.restarts_queued > 0 {
            // This plan does not count them: restarting now could pass the limits they took up.
            // It holds the place it would take, so the candidates after it wait for the limits
            // as they would (their reasons, and the Events that tell them, do not flap).
            out.waiting.push(wait(Wait::Pending));
            recent.push((c.workload.clone(), now));
            in_progress.push((c.workload.clone(), now));
            busy.insert(c.namespace.clone());
            held_places += 1;
            continue;
        }
        let at = rfc3339(now_ms);
        let action = match &c.evict {
            Some((pod, created)) => Action {
                kind: crate::checks::reinjection::ACTION,
                reason: "PodEvictedForReinjection",
                object: ObjectRef::new("v1", "Pod", Some(&c.namespace), pod),
                resource: kube::core::ApiResource::erase::<k8s_openapi::api::core::v1::Pod>(&()),
                description: format!(
                    "evict pod {}/{pod} of {} (updateStrategy OnDelete) to re-inject its sidecar",
                    c.namespace, c.workload
                ),
                operation: Operation::Evict,
                fields: vec![("eviction".into(), at)],
                // The pod as it was planned from: the same pod is not evicted twice.
                observed: Some(created.to_string()),
            },
            None => Action {
                kind: crate::checks::reinjection::ACTION,
                reason: "WorkloadRestartedForReinjection",
                object: c.workload.clone(),
                resource: c.kind.resource(),
                description: format!(
                    "rolling restart of {} to re-inject its sidecar ({} missing, {} stale of {} pods)",
                    c.workload, c.missing, c.stale, c.pods
                ),
                operation: Operation::JsonPatch(restart_patch(c, &at)),
                fields: vec![("restart".into(), at)],
                observed: Some(c.generation.to_string()),
            },
        };
        if let Some(until_ms) = ledger.cooling_down(&action, now_ms) {
            // A failure, or a PodDisruptionBudget that did not allow an eviction.
            out.waiting.push(wait(Wait::CoolingDown { until_ms }));
            continue;
        }
        if ledger.is_stale(&action, now_ms) {
            out.waiting.push(wait(Wait::Pending));
            continue;
        }
        recent.push((c.workload.clone(), now));
        in_progress.push((c.workload.clone(), now));
        busy.insert(c.namespace.clone());
        out.actions.push(action);
    }
    out.in_progress = in_progress.len() - held_places;
    out
}

fn same(a: &ObjectRef, b: &ObjectRef) -> bool {
    a.kind == b.kind && a.namespace == b.namespace && a.name == b.name
}
