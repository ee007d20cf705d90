//! Findings: the one currency of the agent. Every check produces them; metrics, Events,
//! `/status`, logs and `meshkeeper check` all render the same findings.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// The Kubernetes object a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

impl ObjectRef {
    pub fn new(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Self {
        ObjectRef {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
            uid: None,
        }
    }

    pub fn with_uid(mut self, uid: Option<String>) -> Self {
        self.uid = uid;
        self
    }

    pub fn namespace(name: &str) -> Self {
        ObjectRef::new("v1", "Namespace", None, name)
    }

    /// A cluster-level subject that is not an object (e.g. the API server itself).
    pub fn cluster(name: &str) -> Self {
        ObjectRef::new("", "Cluster", None, name)
    }

    /// Whether an Event can be attached to it (it is a real object).
    pub fn is_object(&self) -> bool {
        self.kind != "Cluster"
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind.to_lowercase();
        match &self.namespace {
            Some(ns) => write!(f, "{kind}/{ns}/{}", self.name),
            None => write!(f, "{kind}/{}", self.name),
        }
    }
}

/// One thing that is not as it should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The check that produced it (a metric label: low cardinality).
    pub check: &'static str,
    /// CamelCase reason; also the Kubernetes Event reason.
    pub reason: &'static str,
    pub severity: Severity,
    pub object: ObjectRef,
    pub expected: String,
    pub actual: String,
    /// Whether meshkeeper can repair it (in enforce mode).
    pub remediable: bool,
    pub message: String,
    /// What an SRE can do about it, e.g. a kubectl command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// Identity of a finding across evaluations: the same problem on the same object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FindingKey {
    pub check: &'static str,
    pub reason: &'static str,
    pub object: ObjectRef,
}

impl Finding {
    pub fn key(&self) -> FindingKey {
        FindingKey { check: self.check, reason: self.reason, object: self.object.clone() }
    }

    /// A finding meshkeeper never repairs itself; add what was wanted and seen with
    /// [`Finding::wanted`] and what to do with [`Finding::hint`].
    pub fn report_only(
        check: &'static str,
        reason: &'static str,
        severity: Severity,
        object: ObjectRef,
        message: impl Into<String>,
    ) -> Self {
        Finding {
            check,
            reason,
            severity,
            object,
            expected: String::new(),
            actual: String::new(),
            remediable: false,
            message: message.into(),
            hint: None,
        }
    }

    pub fn wanted(mut self, expected: impl Into<String>, actual: impl Into<String>) -> Self {
        self.expected = expected.into();
        self.actual = actual.into();
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// The outcome of one item a check looked at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    /// Not evaluated, with why (e.g. a CRD that is not installed).
    Skipped {
        reason: String,
    },
    Finding(Box<Finding>),
}

/// One line of a check's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    pub description: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl Item {
    pub fn pass(description: impl Into<String>) -> Self {
        Item { description: description.into(), outcome: Outcome::Pass }
    }
    pub fn skipped(description: impl Into<String>, reason: impl Into<String>) -> Self {
        Item { description: description.into(), outcome: Outcome::Skipped { reason: reason.into() } }
    }
    pub fn finding(description: impl Into<String>, finding: Finding) -> Self {
        Item { description: description.into(), outcome: Outcome::Finding(Box::new(finding)) }
    }
}

/// Everything one check concluded in one evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub check: &'static str,
    pub title: &'static str,
    pub items: Vec<Item>,
}

impl CheckReport {
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.items.iter().filter_map(|i| match &i.outcome {
            Outcome::Finding(f) => Some(f.as_ref()),
            _ => None,
        })
    }
}

/// The current findings, keyed so successive evaluations can be compared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindingSet {
    by_key: BTreeMap<FindingKey, Finding>,
}

/// What changed between two evaluations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    pub appeared: Vec<Finding>,
    pub resolved: Vec<Finding>,
}

impl FindingSet {
    pub fn from_findings<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> Self {
        FindingSet { by_key: findings.into_iter().map(|f| (f.key(), f.clone())).collect() }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Finding> {
        self.by_key.values()
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Replaces the findings of `check` with `new`, returning what appeared and what was resolved.
    /// Other checks' findings are untouched, so checks can be re-evaluated independently.
    pub fn replace_check(&mut self, check: &str, new: Vec<Finding>) -> Diff {
        let mut diff = Diff::default();
        let mut fresh: BTreeMap<FindingKey, Finding> = new.into_iter().map(|f| (f.key(), f)).collect();
        let old_keys: Vec<FindingKey> = self.by_key.keys().filter(|k| k.check == check).cloned().collect();
        for key in old_keys {
            match fresh.remove(&key) {
                Some(f) => {
                    self.by_key.insert(key, f);
                }
                None => {
                    if let Some(old) = self.by_key.remove(&key) {
                        diff.resolved.push(old);
                    }
                }
            }
        }
        for (key, f) in fresh {
            diff.appeared.push(f.clone());
            self.by_key.insert(key, f);
        }
        diff
    }

    /// Counts per (check, severity), for the `meshkeeper_findings` gauge.
    pub fn counts(&self) -> BTreeMap<(&'static str, Severity), usize> {
        let mut m = BTreeMap::new();
        for f in self.by_key.values() {
            *m.entry((f.check, f.severity)).or_insert(0) += 1;
        }
        m
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// A finding for tests: `finding("injection", "InjectionLabelMissing", "team-a")`.
    pub fn finding(check: &'static str, reason: &'static str, ns: &str) -> Finding {
        Finding {
            check,
            reason,
            severity: Severity::Warning,
            object: ObjectRef::namespace(ns),
            expected: "x".into(),
            actual: "y".into(),
            remediable: true,
            message: format!("{reason} on {ns}"),
            hint: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::finding;
    use super::*;

    #[test]
    fn replace_check_reports_appeared_and_resolved_once() {
        let mut set = FindingSet::default();
        let d = set.replace_check(
            "injection",
            vec![finding("injection", "Missing", "a"), finding("injection", "Missing", "b")],
        );
        assert_eq!(d.appeared.len(), 2);
        assert!(d.resolved.is_empty());

        // Same findings again: nothing new (no duplicate Events).
        let d = set.replace_check(
            "injection",
            vec![finding("injection", "Missing", "a"), finding("injection", "Missing", "b")],
        );
        assert_eq!(d, Diff::default());

        // b resolved, c appeared; another check's findings untouched.
        set.replace_check("gateway", vec![finding("gateway", "NodePortDrift", "istio-system")]);
        let d = set.replace_check(
            "injection",
            vec![finding("injection", "Missing", "a"), finding("injection", "Missing", "c")],
        );
        assert_eq!(d.appeared.iter().map(|f| f.object.name.as_str()).collect::<Vec<_>>(), ["c"]);
        assert_eq!(d.resolved.iter().map(|f| f.object.name.as_str()).collect::<Vec<_>>(), ["b"]);
        assert_eq!(set.len(), 3);
        assert_eq!(set.counts()[&("injection", Severity::Warning)], 2);
    }

    #[test]
    fn a_changed_message_updates_in_place_without_reappearing() {
        let mut set = FindingSet::default();
        set.replace_check("x", vec![finding("x", "R", "a")]);
        let mut changed = finding("x", "R", "a");
        changed.actual = "z".into();
        let d = set.replace_check("x", vec![changed.clone()]);
        assert_eq!(d, Diff::default());
        assert_eq!(set.iter().next(), Some(&changed));
    }

    #[test]
    fn object_refs_render_like_kubectl() {
        assert_eq!(ObjectRef::namespace("team-a").to_string(), "namespace/team-a");
        assert_eq!(ObjectRef::new("v1", "Service", Some("istio-system"), "gw").to_string(), "service/istio-system/gw");
    }
}
