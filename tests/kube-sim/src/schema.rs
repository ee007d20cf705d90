//! The part of the built-in schemas kube-sim knows: each kind's top-level fields and
//! ObjectMeta's. The API server drops fields its schema does not declare when it decodes a
//! body, and under `fieldValidation` warns (`Warn`, the default), refuses (`Strict`, 400) or
//! says nothing (`Ignore`). Fields below the top level (inside `spec`) are not checked.

use serde_json::Value;

const OBJECT_META: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// The top-level fields of a built-in kind besides apiVersion, kind and metadata; None for kinds
/// whose schema kube-sim does not know (custom resources).
pub fn top_level(group: &str, kind: &str) -> Option<&'static [&'static str]> {
    Some(match (group, kind) {
        ("", "ConfigMap") => &["data", "binaryData", "immutable"],
        ("", "Secret") => &["data", "stringData", "type", "immutable"],
        ("", "ServiceAccount") => &["secrets", "imagePullSecrets", "automountServiceAccountToken"],
        ("", "Endpoints") => &["subsets"],
        ("", "Event") => &[
            "involvedObject",
            "reason",
            "message",
            "source",
            "firstTimestamp",
            "lastTimestamp",
            "count",
            "type",
            "eventTime",
            "series",
            "action",
            "related",
            "reportingComponent",
            "reportingInstance",
        ],
        ("events.k8s.io", "Event") => &[
            "eventTime",
            "series",
            "reportingController",
            "reportingInstance",
            "action",
            "reason",
            "regarding",
            "related",
            "note",
            "type",
            "deprecatedSource",
            "deprecatedFirstTimestamp",
            "deprecatedLastTimestamp",
            "deprecatedCount",
        ],
        ("", "PodTemplate") => &["template"],
        ("", "LimitRange") | ("coordination.k8s.io", "Lease") => &["spec"],
        ("", "Binding") => &["target"],
        ("", "ComponentStatus") => &["conditions"],
        ("apps", "ControllerRevision") => &["data", "revision"],
        ("rbac.authorization.k8s.io", "Role") => &["rules"],
        ("rbac.authorization.k8s.io", "ClusterRole") => &["rules", "aggregationRule"],
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => &["subjects", "roleRef"],
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration") => {
            &["webhooks"]
        }
        ("apiextensions.k8s.io", _)
        | (
            "" | "apps" | "batch" | "policy" | "authorization.k8s.io" | "authentication.k8s.io",
            "Namespace"
            | "Pod"
            | "Service"
            | "Node"
            | "PersistentVolume"
            | "PersistentVolumeClaim"
            | "ReplicationController"
            | "ResourceQuota"
            | "Deployment"
            | "ReplicaSet"
            | "StatefulSet"
            | "DaemonSet"
            | "Job"
            | "CronJob"
            | "PodDisruptionBudget"
            | "SelfSubjectAccessReview"
            | "SelfSubjectRulesReview"
            | "SelfSubjectReview",
        ) => &["spec", "status"],
        _ => return None,
    })
}

/// How a request asks unknown fields to be handled (`fieldValidation`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    /// The default.
    #[default]
    Warn,
    Strict,
}

impl FieldValidation {
    /// The query parameter's value; Err with the real 400 message for anything else.
    pub fn parse(v: Option<&str>) -> Result<FieldValidation, String> {
        match v {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => {
                Err(format!("fieldValidation {other} is invalid, valid values are: Ignore, Warn, or Strict"))
            }
        }
    }
}

/// Removes the fields the kind's schema does not declare; returns their paths
/// (`bogus`, `metadata.bogus`), in order.
pub fn prune_unknown(group: &str, kind: &str, obj: &mut Value) -> Vec<String> {
    let Some(known) = top_level(group, kind) else { return Vec::new() };
    let mut unknown = Vec::new();
    if let Some(m) = obj.as_object_mut() {
        let extra: Vec<String> = m
            .keys()
            .filter(|k| !matches!(k.as_str(), "apiVersion" | "kind" | "metadata") && !known.contains(&k.as_str()))
            .cloned()
            .collect();
        for k in extra {
            m.remove(&k);
            unknown.push(k);
        }
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            let extra: Vec<String> = meta.keys().filter(|k| !OBJECT_META.contains(&k.as_str())).cloned().collect();
            for k in extra {
                meta.remove(&k);
                unknown.push(format!("metadata.{k}"));
            }
        }
    }
    unknown
}

/// The 400 body message under `Strict`.
pub fn strict_message(kind: &str, version: &str, unknown: &[String]) -> String {
    let fields: Vec<String> = unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect();
    format!(
        "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
        fields.join(", ")
    )
}

/// The Warning header values under `Warn`.
pub fn warnings(unknown: &[String]) -> Vec<String> {
    unknown.iter().map(|f| format!("299 - \"unknown field \\\"{f}\\\"\"")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_like_03_patch_errors() {
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "bogus2": 1}, "data": {"k": "v"}, "bogus": 1});
        let unknown = prune_unknown("", "ConfigMap", &mut cm);
        assert_eq!(unknown, ["bogus", "metadata.bogus2"]);
        assert_eq!(cm, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"k": "v"}}));
        assert_eq!(warnings(&["bogus".into()]), [r#"299 - "unknown field \"bogus\"""#]);
        assert_eq!(
            strict_message("ConfigMap", "v1", &["bogus".into()]),
            r#"ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "bogus""#
        );
        let mut cr = json!({"spec": {}, "anything": 1});
        assert!(prune_unknown("example.com", "Thing", &mut cr).is_empty(), "custom resources are not checked");
        assert_eq!(FieldValidation::parse(Some("Strict")), Ok(FieldValidation::Strict));
        assert_eq!(FieldValidation::parse(None), Ok(FieldValidation::Warn));
        assert!(FieldValidation::parse(Some("strict")).is_err());
    }
}
