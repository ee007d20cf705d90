//! Reporters: render findings and actions as Kubernetes Events and log lines
//! (metrics and `/status` read the shared state directly).

pub mod events;

use crate::findings::{Diff, Severity};

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
