//! Reporters: render findings and the outcomes of actions as log lines, Kubernetes Events,
//! metrics and `/status` records, and serve them over HTTP.

pub mod events;
pub mod http;

use crate::findings::{Diff, Severity};
use crate::metrics::Metrics;
use crate::plan::{Action, Outcome};
use crate::state::{ActionRecord, AgentState, unix_now};
use events::{EventRequest, EventSink};

/// Logs what appeared and what was resolved, once each (not on every evaluation).
pub fn log_diff(diff: &Diff) {
    for f in &diff.appeared {
        match f.severity {
            Severity::Error => {
                tracing::error!(check = f.check, reason = f.reason, object = %f.object, expected = %f.expected, actual = %f.actual, remediable = f.remediable, "finding: {}", f.message)
            }
            Severity::Warning => {
                tracing::warn!(check = f.check, reason = f.reason, object = %f.object, expected = %f.expected, actual = %f.actual, remediable = f.remediable, "finding: {}", f.message)
            }
            Severity::Info => {
                tracing::info!(check = f.check, reason = f.reason, object = %f.object, expected = %f.expected, actual = %f.actual, remediable = f.remediable, "finding: {}", f.message)
            }
        }
    }
    for f in &diff.resolved {
        tracing::info!(check = f.check, reason = f.reason, object = %f.object, "resolved: {}", f.message);
    }
}

/// Renders what an action achieved: counters, a log line, a `/status` record and an Event on
/// the object (a success, or a refused/failing write; a race with another writer is no news).
pub fn record_outcome(action: &Action, outcome: &Outcome, agent: &AgentState, metrics: &Metrics, events: &EventSink) {
    if let Outcome::NotAttempted(why) = outcome {
        tracing::debug!(kind = action.kind, object = %action.object, why, "action not attempted");
        return;
    }
    let label = outcome.label();
    metrics.actions.with_label_values(&[action.kind, label]).inc();
    if matches!(outcome, Outcome::Forbidden(_)) {
        agent.saw_forbidden();
    }
    if action.kind == crate::checks::injection::ACTION {
        metrics.label_repairs.with_label_values(&[label]).inc();
    }
    if action.kind == crate::checks::reinjection::ACTION {
        metrics.reinjections.with_label_values(&[&action.object.kind.to_lowercase(), label]).inc();
    }
    if action.kind == crate::checks::gateway::ACTION {
        for (field, _) in &action.fields {
            metrics.gateway_repairs.with_label_values(&[field, label]).inc();
        }
    }
    let error = outcome.error();
    match (outcome, &error) {
        (_, None) => {
            tracing::info!(kind = action.kind, object = %action.object, result = label, "{}", action.description)
        }
        (Outcome::ChangedMeanwhile { .. } | Outcome::NotFound | Outcome::Throttled(_), Some(e)) => {
            tracing::info!(kind = action.kind, object = %action.object, result = label, detail = %e, "{}", action.description)
        }
        (_, Some(e)) => {
            tracing::warn!(kind = action.kind, object = %action.object, result = label, error = %e, "{}", action.description)
        }
    }
    agent.record_action(ActionRecord {
        at: unix_now(),
        action: action.kind.to_string(),
        object: action.object.to_string(),
        description: action.description.clone(),
        result: label.to_string(),
        error: error.clone(),
    });
    let (reason, warning, note) = match outcome {
        Outcome::Done { .. } => (action.reason.to_string(), false, action.description.clone()),
        Outcome::DryRun => (action.reason.to_string(), false, format!("dry run: {}", action.description)),
        Outcome::Forbidden(_) | Outcome::Failed(_) => {
            (format!("{}Failed", action.reason), true, format!("{}: {}", action.description, error.unwrap_or_default()))
        }
        Outcome::ChangedMeanwhile { .. } | Outcome::NotFound | Outcome::Throttled(_) | Outcome::NotAttempted(_) => {
            return;
        }
    };
    events.send(EventRequest { object: action.object.clone(), warning, reason, action: action.kind.to_string(), note });
}
