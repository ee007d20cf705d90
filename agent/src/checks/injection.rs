//! The injection policy: which namespaces must carry the sidecar-injection label, which carry
//! it wrongly, and the label patch that repairs each (enforce mode).
//!
//! Decision per namespace (first matching row wins):
//!
//! | # | condition                                                        | state               | finding  | repair |
//! |---|------------------------------------------------------------------|---------------------|----------|--------|
//! | 1 | deletionTimestamp set / phase Terminating                        | `terminating`       | –        | never  |
//! | 2 | carries the opt-out label (`meshkeeper.io/injection=disabled`)    | `opted_out`         | –        | –      |
//! | 3 | not in scope (include/exclude globs, selector), has an injection label | `excluded_labelled` | warning | report only |
//! | 4 | not in scope, no injection label                                 | `excluded`          | –        | –      |
//! | 5 | both `istio-injection` and `istio.io/rev` (Istio obeys `istio-injection`) | `conflicting` | warning | report only |
//! | 6 | `istio-injection=disabled` (a deliberate opt-out in Istio)       | `disabled`          | info     | only with `overwrite_disabled` |
//! | 7 | the enforced key with the enforced value                          | `compliant`         | –        | –      |
//! | 8 | the enforced key with another value                              | `wrong_value`       | warning  | set the value |
//! | 9 | only the other injection key (e.g. policy `istio.io/rev=X`, namespace `istio-injection=enabled`) | `wrong_value` | warning | report only: it would switch control planes |
//! |10 | no injection label                                               | `missing`           | warning  | add the label |
//!
//! Scope: the name matches an `include` glob, no `exclude` glob, and the `selector`; the
//! agent's own namespace is never in scope (unless `exclude_own_namespace: false`).
//! Cross-check: the injector webhook's namespaceSelector must match a namespace that carries
//! only the enforced label, otherwise labelling achieves nothing (error).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use kube::core::ApiResource;
use serde_json::json;

use super::{Check, Evaluation, Resource, View};
use crate::cache::{Index, NamespaceInfo, WebhookConfigInfo};
use crate::change::{FieldChange, Remedy, others, pointer_escape};
use crate::config::{InjectionSettings, LabelPair};
#[cfg(test)]
use crate::findings::Outcome;
use crate::findings::{CheckReport, Finding, Item, ObjectRef, Severity};

pub const CHECK: &str = "injection";
pub const ISTIO_INJECTION: &str = "istio-injection";
pub const ISTIO_REV: &str = "istio.io/rev";
/// Metric label of label repairs (`meshkeeper_actions_total{action}`).
pub const ACTION: &str = "injection_label";

/// Where a namespace stands with respect to the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NsState {
    Compliant,
    Missing,
    WrongValue,
    Disabled,
    OptedOut,
    Excluded,
    ExcludedLabelled,
    Conflicting,
    Terminating,
}

impl NsState {
    pub const ALL: [NsState; 9] = [
        NsState::Compliant,
        NsState::Missing,
        NsState::WrongValue,
        NsState::Disabled,
        NsState::OptedOut,
        NsState::Excluded,
        NsState::ExcludedLabelled,
        NsState::Conflicting,
        NsState::Terminating,
    ];

    /// The `state` label of `meshkeeper_namespaces`.
    pub fn as_str(self) -> &'static str {
        match self {
            NsState::Compliant => "compliant",
            NsState::Missing => "missing",
            NsState::WrongValue => "wrong_value",
            NsState::Disabled => "disabled",
            NsState::OptedOut => "opted_out",
            NsState::Excluded => "excluded",
            NsState::ExcludedLabelled => "excluded_labelled",
            NsState::Conflicting => "conflicting",
            NsState::Terminating => "terminating",
        }
    }

    /// Whether the namespace is in the policy's scope (gets a `compliant` gauge).
    pub fn in_scope(self) -> bool {
        matches!(
            self,
            NsState::Compliant | NsState::Missing | NsState::WrongValue | NsState::Disabled | NsState::Conflicting
        )
    }
}

/// The label change that repairs a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    pub set: LabelPair,
    /// A label to remove at the same time (only `istio-injection=disabled` when overwriting
    /// it for a revision policy, because Istio obeys `istio-injection` first).
    pub remove: Option<String>,
}

/// The decision for one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub state: NsState,
    /// What to change in enforce mode; None when nothing may be changed.
    pub repair: Option<Repair>,
}

impl Decision {
    fn of(state: NsState) -> Self {
        Decision { state, repair: None }
    }
}

/// Whether the policy's include/exclude/selector put the namespace in scope.
pub fn in_scope(ns: &NamespaceInfo, policy: &InjectionSettings) -> bool {
    policy.own_namespace.as_deref() != Some(ns.name.as_str())
        && policy.include.iter().any(|g| g.matches(&ns.name))
        && !policy.exclude.iter().any(|g| g.matches(&ns.name))
        && policy.selector.matches(|k| ns.label(k))
}

/// The decision table above, as a pure function.
pub fn decide(ns: &NamespaceInfo, policy: &InjectionSettings) -> Decision {
    let want = &policy.label;
    let injection = ns.label(ISTIO_INJECTION);
    let rev = ns.label(ISTIO_REV);
    if ns.terminating {
        return Decision::of(NsState::Terminating);
    }
    if ns.label(&policy.opt_out_label.key) == Some(policy.opt_out_label.value.as_str()) {
        return Decision::of(NsState::OptedOut);
    }
    if !in_scope(ns, policy) {
        let labelled = injection.is_some_and(|v| v != "disabled") || rev.is_some();
        return Decision::of(if labelled { NsState::ExcludedLabelled } else { NsState::Excluded });
    }
    if injection.is_some() && rev.is_some() {
        return Decision::of(NsState::Conflicting);
    }
    if injection == Some("disabled") {
        let repair = policy.overwrite_disabled.then(|| Repair {
            set: want.clone(),
            remove: (want.key != ISTIO_INJECTION).then(|| ISTIO_INJECTION.to_string()),
        });
        return Decision { state: NsState::Disabled, repair };
    }
    match ns.label(&want.key) {
        Some(v) if v == want.value => Decision::of(NsState::Compliant),
        Some(_) => Decision { state: NsState::WrongValue, repair: Some(Repair { set: want.clone(), remove: None }) },
        None if injection.is_some() || rev.is_some() => Decision::of(NsState::WrongValue),
        None => Decision { state: NsState::Missing, repair: Some(Repair { set: want.clone(), remove: None }) },
    }
}

/// Counts per state (for `meshkeeper_namespaces{state}`) and compliance per in-scope namespace.
pub fn tally(
    namespaces: &Index<NamespaceInfo>,
    policy: &InjectionSettings,
) -> (BTreeMap<NsState, i64>, Vec<(String, bool)>) {
    let mut states: BTreeMap<NsState, i64> = NsState::ALL.iter().map(|s| (*s, 0)).collect();
    let mut compliant = Vec::new();
    for ns in namespaces.iter() {
        let d = decide(ns, policy);
        *states.entry(d.state).or_insert(0) += 1;
        if d.state.in_scope() {
            compliant.push((ns.name.clone(), d.state == NsState::Compliant));
        }
    }
    (states, compliant)
}

/// The webhook configuration the policy's label is meant for.
fn injector_candidates(view: &View<'_>) -> Vec<String> {
    let label = &view.settings.injection.label;
    let base = &view.settings.control_plane.injector_webhook;
    let mut names = Vec::new();
    if label.key == ISTIO_REV {
        names.push(format!("istio-sidecar-injector-{}", label.value));
    }
    names.push(base.clone());
    names
}

/// The cross-check: would the injector see a namespace carrying only the enforced label?
pub fn selector_item(policy_label: &LabelPair, webhook: Option<&WebhookConfigInfo>, looked_for: &[String]) -> Item {
    let desc = format!("the injector webhook selects namespaces labelled {policy_label}");
    let Some(config) = webhook else {
        return Item::skipped(desc, format!("no MutatingWebhookConfiguration {} found", looked_for.join(" or ")));
    };
    let labels: BTreeMap<String, String> = [(policy_label.key.clone(), policy_label.value.clone())].into();
    let matched = config.webhooks.iter().any(|w| w.namespace_selector.as_ref().is_none_or(|s| s.matches(&labels)));
    if matched {
        return Item::pass(desc);
    }
    let selectors: Vec<String> = config
        .webhooks
        .iter()
        .filter_map(|w| w.namespace_selector.as_ref())
        .map(|s| {
            let mut parts: Vec<String> = s.match_labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            parts.extend(s.match_expressions.iter().map(|(k, op, vs)| format!("{k} {op} ({})", vs.join(","))));
            parts.join(",")
        })
        .collect();
    Item::finding(
        desc,
        Finding {
            check: CHECK,
            reason: "InjectorSelectorMismatch",
            severity: Severity::Error,
            object: ObjectRef::new(
                "admissionregistration.k8s.io/v1",
                "MutatingWebhookConfiguration",
                None,
                &config.name,
            )
            .with_uid(config.uid.clone()),
            expected: format!("a namespaceSelector matching {policy_label}"),
            actual: selectors.join(" | "),
            remediable: false,
            message: format!(
                "the injector webhook {} does not select namespaces labelled {policy_label}: labelling them achieves nothing",
                config.name
            ),
            hint: Some(format!(
                "set injection.label to the label the webhook selects, or check the revision: kubectl get mutatingwebhookconfiguration {} -o yaml",
                config.name
            )),
        },
    )
}

fn namespace_item(ns: &NamespaceInfo, policy: &InjectionSettings, d: &Decision) -> Item {
    let want = &policy.label;
    let show = |k: &str| ns.label(k).map(|v| format!("{k}={v}"));
    let actual = [show(ISTIO_INJECTION), show(ISTIO_REV)].into_iter().flatten().collect::<Vec<_>>().join(",");
    let actual = if actual.is_empty() { "no injection label".to_string() } else { actual };
    let desc = format!("namespace {} carries {want}", ns.name);
    let finding = |reason, severity, message: String, hint: String| {
        Item::finding(
            desc.clone(),
            Finding {
                check: CHECK,
                reason,
                severity,
                object: ObjectRef::namespace(&ns.name).with_uid(ns.uid.clone()),
                expected: want.to_string(),
                actual: actual.clone(),
                remediable: d.repair.is_some(),
                message,
                hint: Some(hint),
            },
        )
    };
    let fix = format!("kubectl label namespace {} {want} --overwrite", ns.name);
    match d.state {
        NsState::Compliant => Item::pass(desc),
        NsState::Terminating => Item::skipped(format!("namespace {}", ns.name), "terminating"),
        NsState::OptedOut => {
            Item::skipped(format!("namespace {}", ns.name), format!("opted out with {}", policy.opt_out_label))
        }
        NsState::Excluded => Item::skipped(format!("namespace {}", ns.name), "excluded by policy"),
        NsState::Missing => finding(
            "InjectionLabelMissing",
            Severity::Warning,
            format!("namespace {} has no injection label; new pods get no sidecar", ns.name),
            fix,
        ),
        NsState::WrongValue if d.repair.is_some() => finding(
            "InjectionLabelWrong",
            Severity::Warning,
            format!("namespace {} has {actual}, policy wants {want}", ns.name),
            fix,
        ),
        NsState::WrongValue => finding(
            "InjectionLabelOtherControlPlane",
            Severity::Warning,
            format!(
                "namespace {} has {actual}, policy wants {want}; changing it switches control planes, so meshkeeper leaves it to you",
                ns.name
            ),
            format!(
                "remove the other label and set {want} when the workloads may move: kubectl label namespace {} {ISTIO_INJECTION}- {ISTIO_REV}- && {fix}",
                ns.name
            ),
        ),
        NsState::Disabled => finding(
            "InjectionDisabled",
            if d.repair.is_some() { Severity::Warning } else { Severity::Info },
            format!("namespace {} has istio-injection=disabled (a deliberate opt-out in Istio)", ns.name),
            format!(
                "set injection.overwrite_disabled: true to enforce {want}, or label it {} to silence this",
                policy.opt_out_label
            ),
        ),
        NsState::Conflicting => finding(
            "InjectionLabelsConflict",
            Severity::Warning,
            format!(
                "namespace {} has both {ISTIO_INJECTION} and {ISTIO_REV} ({actual}); Istio obeys {ISTIO_INJECTION}",
                ns.name
            ),
            format!("keep one: kubectl label namespace {} {ISTIO_INJECTION}-  (or {ISTIO_REV}-)", ns.name),
        ),
        NsState::ExcludedLabelled => finding(
            "InjectionLabelOutOfScope",
            Severity::Warning,
            format!("namespace {} is excluded by policy but carries {actual}", ns.name),
            format!(
                "if it must stay out of the mesh: kubectl label namespace {} {ISTIO_INJECTION}- {ISTIO_REV}-",
                ns.name
            ),
        ),
    }
}

/// The remedy for a namespace: one JSON patch that sets the label (and removes
/// `istio-injection` where a revision label must win), guarded by a `test` of the namespace's
/// resourceVersion so a concurrent change answers 422 and the decision is made again on
/// fresh state.
pub fn remedy(ns: &NamespaceInfo, d: &Decision, repair: &Repair) -> Remedy {
    let key = &repair.set.key;
    let mut ops = Vec::new();
    if ns.labels.is_empty() {
        ops.push(json!({"op": "add", "path": "/metadata/labels", "value": {key.clone(): repair.set.value.clone()}}));
    } else {
        ops.push(json!({"op": "add", "path": format!("/metadata/labels/{}", pointer_escape(key)), "value": repair.set.value}));
    }
    if let Some(rm) = repair.remove.as_ref().filter(|rm| ns.labels.contains_key(*rm)) {
        ops.push(json!({"op": "remove", "path": format!("/metadata/labels/{}", pointer_escape(rm))}));
    }
    let prelude = match &ns.resource_version {
        Some(rv) => vec![json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv})],
        None => vec![],
    };
    Remedy {
        check: CHECK,
        kind: ACTION,
        reason: if d.state == NsState::Missing { "InjectionLabelApplied" } else { "InjectionLabelRestored" },
        object: ObjectRef::namespace(&ns.name).with_uid(ns.uid.clone()),
        resource: ApiResource::erase::<Namespace>(&()),
        resource_version: ns.resource_version.clone(),
        prelude,
        fields: vec![FieldChange {
            field: format!("label:{key}"),
            expected: repair.set.value.clone(),
            actual: ns.label(key).unwrap_or("unset").to_string(),
            owners: others(ns.label_owners.get(key).map(Vec::as_slice).unwrap_or_default()),
            ops,
        }],
        writers: ns.writers.iter().filter(|(m, _)| m != crate::change::FIELD_MANAGER).cloned().collect(),
    }
}

pub struct InjectionCheck;

impl Check for InjectionCheck {
    fn name(&self) -> &'static str {
        CHECK
    }

    fn title(&self) -> &'static str {
        "Injection policy"
    }

    fn inputs(&self) -> &'static [Resource] {
        &[Resource::Namespaces, Resource::Webhooks]
    }

    fn evaluate(&self, view: &View<'_>) -> Evaluation {
        let policy = &view.settings.injection;
        let mut items = Vec::new();
        let mut remedies = Vec::new();
        let candidates = injector_candidates(view);
        let webhook = candidates.iter().find_map(|n| view.webhooks.get(n));
        items.push(selector_item(&policy.label, webhook, &candidates));
        for ns in view.namespaces.iter() {
            let d = decide(ns, policy);
            items.push(namespace_item(ns, policy, &d));
            if let Some(repair) = &d.repair {
                remedies.push(remedy(ns, &d, repair));
            }
        }
        Evaluation::with_remedies(CheckReport { check: CHECK, title: self.title(), items }, remedies)
    }
}

#[cfg(test)]
mod tests;
