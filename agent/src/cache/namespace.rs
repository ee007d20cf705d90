//! Trimmed Namespaces: name, labels, and whether it is terminating.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use serde::Serialize;

use super::Cached;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamespaceInfo {
    pub name: String,
    pub uid: Option<String>,
    /// The version the decision was made on (a repair carries it as a precondition).
    pub resource_version: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// deletionTimestamp set or phase Terminating: never touch it.
    pub terminating: bool,
    /// Who owns each injection label (managedFields), by label key.
    pub label_owners: BTreeMap<String, Vec<String>>,
    /// Who wrote the namespace and when (newest first).
    pub writers: Vec<(String, i64)>,
}

/// The label keys whose owners are kept (the injection labels).
const OWNED_KEYS: &[&str] = &["istio-injection", "istio.io/rev"];

impl Cached for NamespaceInfo {
    fn key(&self) -> String {
        self.name.clone()
    }
}

impl NamespaceInfo {
    /// Keeps only what the checks read. Returns None for an object without a name (malformed).
    pub fn from_object(ns: Namespace) -> Option<Self> {
        let name = ns.metadata.name?;
        let terminating = ns.metadata.deletion_timestamp.is_some()
            || ns.status.and_then(|s| s.phase).as_deref() == Some("Terminating");
        let managed = ns.metadata.managed_fields.unwrap_or_default();
        let label_owners = OWNED_KEYS
            .iter()
            .map(|k| {
                (
                    k.to_string(),
                    super::owners(&managed, &format!("/f:metadata/f:labels/f:{}", crate::change::pointer_escape(k))),
                )
            })
            .filter(|(_, o)| !o.is_empty())
            .collect();
        Some(NamespaceInfo {
            name,
            uid: ns.metadata.uid,
            resource_version: ns.metadata.resource_version,
            labels: ns.metadata.labels.unwrap_or_default(),
            terminating,
            label_owners,
            writers: super::writers(&managed),
        })
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

#[cfg(test)]
impl NamespaceInfo {
    /// A namespace for tests: `NamespaceInfo::test("team-a").labelled("istio-injection", "enabled")`.
    pub fn test(name: &str) -> Self {
        NamespaceInfo {
            name: name.into(),
            uid: Some(format!("uid-{name}")),
            resource_version: Some("1".into()),
            labels: BTreeMap::new(),
            terminating: false,
            label_owners: BTreeMap::new(),
            writers: Vec::new(),
        }
    }

    pub fn labelled(mut self, k: &str, v: &str) -> Self {
        self.labels.insert(k.into(), v.into());
        self
    }

    pub fn terminating(mut self) -> Self {
        self.terminating = true;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    #[test]
    fn keeps_who_owns_the_injection_labels() {
        let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": "shop", "managedFields": [
            {"manager": "kubectl-create", "operation": "Update", "time": "2026-12-01T07:44:39Z", "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:kubernetes.io/metadata.name": {}}}}},
            {"manager": "argocd-controller", "operation": "Apply", "time": "2026-12-01T07:50:00Z", "fieldsV1": {"f:metadata": {"f:labels": {"f:istio-injection": {}}}}},
            {"manager": "meshkeeper", "operation": "Update", "time": "2026-12-01T07:45:00Z", "fieldsV1": {"f:metadata": {"f:labels": {"f:istio.io/rev": {}}}}}
        ]}})).unwrap();
        let info = NamespaceInfo::from_object(ns).unwrap();
        assert_eq!(info.label_owners["istio-injection"], ["argocd-controller"]);
        assert_eq!(info.label_owners["istio.io/rev"], ["meshkeeper"]);
        assert_eq!(info.writers[0].0, "argocd-controller", "newest first");
        assert_eq!(info.writers.len(), 3);
    }

    #[test]
    fn trims_and_detects_terminating() {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some("a".into()),
                labels: Some([("k".to_string(), "v".to_string())].into()),
                annotations: Some([("big".to_string(), "x".repeat(10_000))].into()),
                deletion_timestamp: Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
                ..Default::default()
            },
            ..Default::default()
        };
        let info = NamespaceInfo::from_object(ns).unwrap();
        assert_eq!(info.label("k"), Some("v"));
        assert!(info.terminating);
        assert!(NamespaceInfo::from_object(Namespace::default()).is_none(), "nameless object is skipped");
    }
}
