//! The `writes` check: the actuator's recent writes, as findings. A repair that the API
//! refuses (403 from RBAC) or keeps failing is a problem an SRE must see in the same place
//! as every other finding, not only in a counter.

use std::collections::BTreeMap;

use super::{Check, Resource, View};
use crate::findings::{CheckReport, Finding, Item, ObjectRef, Severity};

pub const CHECK: &str = "writes";

/// How far back a failed write still counts (unless a later write of it succeeded).
pub const WINDOW_SECONDS: u64 = 600;

pub struct WritesCheck;

impl Check for WritesCheck {
    fn name(&self) -> &'static str {
        CHECK
    }

    fn title(&self) -> &'static str {
        "Repairs"
    }

    fn inputs(&self) -> &'static [Resource] {
        &[Resource::Actions]
    }

    fn evaluate(&self, view: &View<'_>) -> CheckReport {
        let since = (view.now.max(0) as u64).saturating_sub(WINDOW_SECONDS);
        // The latest outcome per (action, object).
        let mut latest: BTreeMap<(&str, &str), &crate::state::ActionRecord> = BTreeMap::new();
        for a in view.recent_actions.iter().filter(|a| a.at >= since) {
            latest.insert((a.action.as_str(), a.object.as_str()), a);
        }
        let mut items = Vec::new();
        for ((action, object), a) in latest {
            let desc = format!("{action} on {object}");
            let (reason, severity, hint) = match a.result.as_str() {
                "forbidden" => (
                    "WriteForbidden",
                    Severity::Error,
                    "RBAC denies this write: add the rule to the chart's ClusterRole/Role (see `meshkeeper check`, Kubernetes API section)",
                ),
                "error" => (
                    "WriteFailed",
                    Severity::Warning,
                    "the API server keeps failing this write; see meshkeeper's logs and the API server's health",
                ),
                _ => {
                    items.push(Item::pass(format!("{desc}: {}", a.result)));
                    continue;
                }
            };
            let object_ref = ObjectRef::cluster(object);
            items.push(Item::finding(
                desc,
                Finding {
                    check: CHECK,
                    reason,
                    severity,
                    object: object_ref,
                    expected: "success".into(),
                    actual: a.result.clone(),
                    remediable: false,
                    message: format!("{}: {}", a.description, a.error.clone().unwrap_or_default()),
                    hint: Some(hint.into()),
                },
            ));
        }
        if items.is_empty() {
            items.push(Item::pass("no repair failed recently"));
        }
        CheckReport { check: CHECK, title: self.title(), items }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Snapshot;
    use crate::checks::ApiProbe;
    use crate::config::{Profile, Settings};
    use crate::state::ActionRecord;

    fn rec(at: u64, object: &str, result: &str) -> ActionRecord {
        ActionRecord {
            at,
            action: "injection_label".into(),
            object: object.into(),
            description: format!("add label on {object}"),
            result: result.into(),
            error: (result != "success").then(|| "namespaces \"a\" is forbidden".into()),
        }
    }

    #[test]
    fn the_latest_outcome_per_object_counts_within_the_window() {
        let s = Settings::defaults(Profile::AsmOnprem);
        let (api, snap) = (ApiProbe::default(), Snapshot::default());
        let now = 9_500; // window: 8_900..
        let actions = [
            rec(9_000, "namespace/a", "forbidden"),
            rec(9_100, "namespace/b", "forbidden"),
            rec(9_200, "namespace/b", "success"),
            rec(9_300, "namespace/c", "error"),
            rec(1_000, "namespace/d", "forbidden"),
        ];
        let mut view = View::of(&s, &api, &snap, now);
        view.recent_actions = &actions;
        let r = WritesCheck.evaluate(&view);
        let f: Vec<_> = r.findings().map(|f| (f.reason, f.object.name.as_str(), f.severity)).collect();
        assert_eq!(
            f,
            [("WriteForbidden", "namespace/a", Severity::Error), ("WriteFailed", "namespace/c", Severity::Warning)]
        );
        assert!(r.findings().next().unwrap().message.contains("forbidden"));
    }
}
