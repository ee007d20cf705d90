//! Changes a check proposes: plain data that says which fields of which object differ from
//! what the policy wants and the JSON-patch operations that would set each back. A check
//! never decides whether a change happens: the planner (`plan/`) does, and the actuator
//! carries it out. Shared by checks, planner and actuator; imports nothing of theirs.
//!
//! ```text
//!  check ──► Remedy { object, fields: [FieldChange { field, expected, actual, owners, ops }] }
//!               └─► planner: mode, leadership, sync, contest guard, cooldown ──► Action
//! ```

use kube::core::ApiResource;
use serde::Serialize;
use serde_json::Value;

use crate::findings::ObjectRef;

/// The field manager of every write meshkeeper makes.
pub const FIELD_MANAGER: &str = "meshkeeper";

/// One field that differs from its policy value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    /// A stable name, e.g. `label:istio-injection`, `node_port:http2`, `load_balancer_ip`.
    pub field: String,
    pub expected: String,
    pub actual: String,
    /// Field managers other than meshkeeper that own the field now (from managedFields).
    pub owners: Vec<String>,
    /// JSON-patch operations that set this field; their `test`s pin what they change, so a
    /// concurrent change makes the patch fail (422) instead of being overwritten.
    #[serde(skip)]
    pub ops: Vec<Value>,
}

/// A change to one object that would bring it back to policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Remedy {
    /// The check that proposes it.
    pub check: &'static str,
    /// The action's metric label, e.g. `injection_label`, `gateway_pin`.
    pub kind: &'static str,
    /// The CamelCase Event reason when it succeeds, e.g. `InjectionLabelRestored`.
    pub reason: &'static str,
    pub object: ObjectRef,
    #[serde(skip)]
    pub resource: ApiResource,
    /// The object's resourceVersion the remedy was computed from.
    pub resource_version: Option<String>,
    /// Operations every patch of this remedy starts with (e.g. a `test` of the resourceVersion).
    #[serde(skip)]
    pub prelude: Vec<Value>,
    pub fields: Vec<FieldChange>,
    /// Field managers (other than meshkeeper) that wrote the object, with the unix time of their
    /// last write: who else could have changed a field that no longer exists.
    pub writers: Vec<(String, i64)>,
}

impl Remedy {
    /// The JSON patch that sets the given fields (the prelude first).
    pub fn patch_for<'a>(&self, fields: impl IntoIterator<Item = &'a FieldChange>) -> Vec<Value> {
        let mut ops = self.prelude.clone();
        for f in fields {
            ops.extend(f.ops.iter().cloned());
        }
        ops
    }
}

/// A workload kind meshkeeper can restart (a rolling restart, as `kubectl rollout restart`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Restartable {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl Restartable {
    pub fn kind(self) -> &'static str {
        match self {
            Restartable::Deployment => "Deployment",
            Restartable::StatefulSet => "StatefulSet",
            Restartable::DaemonSet => "DaemonSet",
        }
    }

    /// The `kind` label of `meshkeeper_reinjections_total`.
    pub fn label(self) -> &'static str {
        match self {
            Restartable::Deployment => "deployment",
            Restartable::StatefulSet => "statefulset",
            Restartable::DaemonSet => "daemonset",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            Restartable::Deployment => "deployments",
            Restartable::StatefulSet => "statefulsets",
            Restartable::DaemonSet => "daemonsets",
        }
    }

    pub fn resource(self) -> ApiResource {
        ApiResource {
            group: "apps".into(),
            version: "v1".into(),
            api_version: "apps/v1".into(),
            kind: self.kind().into(),
            plural: self.plural().into(),
        }
    }
}

/// A workload whose pods need a restart to get the current sidecar.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestartCandidate {
    pub workload: ObjectRef,
    pub kind: Restartable,
    pub namespace: String,
    /// Pods without the sidecar / with a stale proxy / in all (not ignored).
    pub missing: usize,
    pub stale: usize,
    pub pods: usize,
    /// The last restart (any restarter), unix seconds.
    pub restarted_at: Option<i64>,
    /// metadata.generation: the restart patch `test`s it, so a spec changed meanwhile re-plans.
    pub generation: i64,
    /// The pod template has metadata / annotations (the patch adds what is missing).
    pub template_has_metadata: bool,
    pub template_has_annotations: bool,
    /// For `OnDelete` workloads with `reinjection.evict_on_delete`: the pod to evict next, and
    /// its creation time (a pod recreated under the same name is another pod).
    pub evict: Option<(String, i64)>,
    /// An OnDelete workload being evicted pod by pod has a pod not ready yet: the next waits.
    pub replacement_pending: bool,
}

/// What the restart planner needs from the re-injection check.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RestartInput {
    pub candidates: Vec<RestartCandidate>,
    /// Why injecting cannot work right now; None: the injector is healthy.
    pub injector_down: Option<String>,
    /// meshkeeper's own rollouts that have not completed (within the progress deadline), with
    /// their start (unix seconds).
    pub in_progress: Vec<(ObjectRef, i64)>,
    /// Every restart (by anyone) within the last hour, unix seconds.
    pub recent_restarts: Vec<(ObjectRef, i64)>,
}

/// Escapes a key for a JSON pointer (`istio.io/rev` -> `istio.io~1rev`).
pub fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Managers other than meshkeeper, sorted and deduplicated.
pub fn others(managers: &[String]) -> Vec<String> {
    let mut v: Vec<String> = managers.iter().filter(|m| m.as_str() != FIELD_MANAGER).cloned().collect();
    v.sort();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_escape_and_others_exclude_meshkeeper() {
        assert_eq!(pointer_escape("istio.io/rev"), "istio.io~1rev");
        assert_eq!(pointer_escape("a~b"), "a~0b");
        let m = ["kubectl-patch".to_string(), FIELD_MANAGER.to_string(), "kubectl-patch".to_string()];
        assert_eq!(others(&m), ["kubectl-patch"]);
    }
}
