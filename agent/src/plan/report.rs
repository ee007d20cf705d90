//! The planner's own report ("Repairs"): contested fields, refused and failing writes, and
//! what waits and why — rendered as findings and items like every check's.

use crate::change::Remedy;
use crate::config::Settings;
use crate::findings::{CheckReport, Finding, Item, Severity};

use super::ledger::{Contest, Ledger};
use super::{Action, CHECK, Outcome, Wait, Waiting};

/// What an SRE can do about a contested field, by the check that repairs it.
fn contest_hint(check: &str, who: &str, expected: &str) -> String {
    match check {
        crate::checks::injection::CHECK => format!(
            "make {who} keep the label (add it to the namespace's manifest in Git / its Helm values), or opt the namespace out with the injection opt_out_label"
        ),
        crate::checks::gateway::CHECK => format!(
            "make {who} produce {expected} (the IstioOperator or Helm values of the gateway), or set gateway.repair: false"
        ),
        _ => format!("make {who} agree with meshkeeper's policy, or switch the repair off"),
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn render(
    settings: &Settings,
    contests: &[(&Remedy, Vec<Contest>)],
    waiting: &[Waiting],
    actions: &[Action],
    ledger: &Ledger,
    now_ms: i64,
    window_ms: i64,
) -> CheckReport {
    let minutes = settings.repairs.contest_window_minutes;
    let mut items = Vec::new();
    for (remedy, held) in contests {
        let mut by: Vec<String> = held.iter().flat_map(|c| c.by.iter().cloned()).collect();
        by.sort();
        by.dedup();
        let who = by.join(", ");
        let fields: Vec<&str> = held.iter().map(|c| c.field.as_str()).collect();
        let expected: Vec<String> = held.iter().map(|c| format!("{}={}", c.field, c.expected)).collect();
        let actual: Vec<String> = held
            .iter()
            .map(|c| {
                let now = remedy.fields.iter().find(|f| f.field == c.field).map(|f| f.actual.as_str()).unwrap_or("?");
                format!("{}={now}", c.field)
            })
            .collect();
        let reverts = held.iter().map(|c| c.reverts).max().unwrap_or(0);
        items.push(Item::finding(
            format!("{} on {} is not contested", fields.join(", "), remedy.object),
            Finding {
                check: CHECK,
                reason: "RepairContested",
                severity: Severity::Error,
                object: remedy.object.clone(),
                expected: expected.join(", "),
                actual: actual.join(", "),
                remediable: false,
                message: format!(
                    "{} of {} was set by meshkeeper and changed back {reverts} times in {minutes} min by {who}; meshkeeper stopped repairing it",
                    fields.join(", "),
                    remedy.object
                ),
                hint: Some(contest_hint(remedy.check, &who, &expected.join(", "))),
            },
        ));
    }
    for last in ledger.outcomes(now_ms, window_ms) {
        let desc = format!("{} on {}", last.kind, last.object);
        let (reason, severity, hint) = match &last.outcome {
            Outcome::Forbidden(_) => (
                "WriteForbidden",
                Severity::Error,
                "RBAC denies this write: grant it in the chart's RBAC (see `meshkeeper check`, Kubernetes API section)",
            ),
            Outcome::Failed(_) => (
                "WriteFailed",
                Severity::Warning,
                "the API server keeps failing this write; see meshkeeper's logs and the API server's health",
            ),
            other => {
                items.push(Item::pass(format!("{desc}: {}", other.label())));
                continue;
            }
        };
        items.push(Item::finding(
            desc,
            Finding {
                check: CHECK,
                reason,
                severity,
                object: last.object.clone(),
                expected: "success".into(),
                actual: last.outcome.label().into(),
                remediable: false,
                message: format!("{}: {}", last.description, last.outcome.error().unwrap_or_default()),
                hint: Some(hint.into()),
            },
        ));
    }
    for a in actions {
        items
            .push(Item::skipped(a.description.clone(), "next: the leader does it now (meshkeeper check never writes)"));
    }
    for w in waiting.iter().filter(|w| !matches!(w.wait, Wait::Contested { .. })) {
        items.push(Item::skipped(format!("{} {} on {}", w.kind, w.fields.join(", "), w.object), w.wait.describe()));
    }
    if items.is_empty() {
        items.push(Item::pass("no repair is contested, refused or failing"));
    }
    CheckReport { check: CHECK, title: "Repairs", items }
}
