//! Trimmed workloads (Deployments, ReplicaSets, StatefulSets, DaemonSets), Services and Nodes:
//! only what the control-plane, gateway and re-injection checks read (no managedFields, no
//! full specs).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::Serialize;

use super::{Cached, Selector};

fn ns_key(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

/// The tag of an image reference (`gcr.io/x/pilot:1.4.10-asm.18` -> `1.4.10-asm.18`), without a digest.
pub fn image_tag(image: &str) -> Option<&str> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split_once(':').map(|(_, tag)| tag).filter(|t| !t.is_empty())
}

// === Deployments ===

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeploymentInfo {
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub selector: Selector,
    pub desired: i32,
    pub available: i32,
    pub ready: i32,
    pub updated: i32,
    /// (container name, image) of the pod template.
    pub images: Vec<(String, String)>,
    /// What a rolling restart needs to know.
    pub rollout: Rollout,
}

impl Cached for DeploymentInfo {
    fn key(&self) -> String {
        ns_key(&self.namespace, &self.name)
    }
}

impl DeploymentInfo {
    pub fn from_object(d: Deployment) -> Option<Self> {
        let namespace = d.metadata.namespace.clone()?;
        let name = d.metadata.name.clone()?;
        let spec = d.spec.unwrap_or_default();
        let status = d.status.unwrap_or_default();
        let progress_deadline_exceeded = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded"));
        let desired = spec.replicas.unwrap_or(1);
        let rollout = Rollout {
            generation: d.metadata.generation.unwrap_or(0),
            observed_generation: status.observed_generation.unwrap_or(0),
            strategy: if spec.paused.unwrap_or(false) { Strategy::Paused } else { Strategy::Rolling },
            desired,
            replicas: status.replicas.unwrap_or(0),
            updated: status.updated_replicas.unwrap_or(0),
            available: status.available_replicas.unwrap_or(0),
            revisions_match: true,
            progress_deadline_exceeded,
            ..Rollout::from_meta(&d.metadata, &spec.template.metadata)
        };
        let images = spec
            .template
            .spec
            .map(|p| p.containers.into_iter().map(|c| (c.name, c.image.unwrap_or_default())).collect())
            .unwrap_or_default();
        Some(DeploymentInfo {
            namespace,
            name,
            uid: d.metadata.uid,
            labels: d.metadata.labels.unwrap_or_default(),
            selector: Selector::from_k8s(&spec.selector),
            desired: spec.replicas.unwrap_or(1),
            available: status.available_replicas.unwrap_or(0),
            ready: status.ready_replicas.unwrap_or(0),
            updated: status.updated_replicas.unwrap_or(0),
            images,
            rollout,
        })
    }
}

// === Rollouts (shared by Deployments, StatefulSets, DaemonSets) ===

/// How a workload rolls when its pod template changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum Strategy {
    #[default]
    Rolling,
    /// A Deployment with `spec.paused`: a template change creates no new ReplicaSet.
    Paused,
    /// `updateStrategy: OnDelete`: pods are replaced only when deleted.
    OnDelete,
    /// A StatefulSet's RollingUpdate with a partition: ordinals below it keep the old template.
    Partition(i32),
}

/// The restart and rollout state of a workload: generations, counts, who restarted it last.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Rollout {
    pub generation: i64,
    pub observed_generation: i64,
    pub strategy: Strategy,
    /// spec.replicas (a DaemonSet: desiredNumberScheduled).
    pub desired: i32,
    /// status.replicas (a DaemonSet: currentNumberScheduled).
    pub replicas: i32,
    pub updated: i32,
    pub available: i32,
    /// A StatefulSet's currentRevision equals its updateRevision (always true for others).
    pub revisions_match: bool,
    /// A Deployment's Progressing condition says ProgressDeadlineExceeded.
    pub progress_deadline_exceeded: bool,
    /// `kubectl.kubernetes.io/restartedAt` of the pod template, as unix seconds (any restarter).
    pub restarted_at: Option<i64>,
    /// meshkeeper owns that annotation (managedFields): the restart was its own.
    pub restarted_by_meshkeeper: bool,
    /// The workload's own annotations that meshkeeper reads (`meshkeeper.io/*`).
    pub annotations: BTreeMap<String, String>,
    /// What the pod template's metadata holds (a restart patch adds the annotation there).
    pub template: TemplateMeta,
}

/// The shape of a pod template's metadata, for the JSON patch that restarts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum TemplateMeta {
    #[default]
    NoMetadata,
    NoAnnotations,
    Annotations,
}

/// The annotation `kubectl rollout restart` puts on the pod template (meshkeeper writes it too).
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// The one kube-rs's `Api::restart` writes (kube 5): a restart by a kube-rs tool counts too.
pub const KUBE_RESTARTED_AT: &str = "kube.kubernetes.io/restartedAt";

impl Rollout {
    /// The parts every kind reads the same way: restart annotation and its owner, annotations.
    fn from_meta(
        meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        template: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
    ) -> Rollout {
        let template_annotations = template.as_ref().and_then(|t| t.annotations.as_ref());
        let restarted_at = [RESTARTED_AT, KUBE_RESTARTED_AT]
            .iter()
            .filter_map(|k| template_annotations.and_then(|a| a.get(*k)))
            .filter_map(|v| v.parse::<k8s_openapi::jiff::Timestamp>().ok())
            .map(|t| t.as_second())
            .max();
        let template_meta = match (template, template_annotations) {
            (None, _) => TemplateMeta::NoMetadata,
            (Some(_), None) => TemplateMeta::NoAnnotations,
            (Some(_), Some(_)) => TemplateMeta::Annotations,
        };
        let pointer =
            format!("/f:spec/f:template/f:metadata/f:annotations/f:{}", crate::change::pointer_escape(RESTARTED_AT));
        let owners = super::owners(meta.managed_fields.as_deref().unwrap_or_default(), &pointer);
        Rollout {
            generation: 0,
            observed_generation: 0,
            strategy: Strategy::Rolling,
            desired: 0,
            replicas: 0,
            updated: 0,
            available: 0,
            revisions_match: true,
            progress_deadline_exceeded: false,
            restarted_at,
            restarted_by_meshkeeper: owners.iter().any(|o| o == crate::change::FIELD_MANAGER),
            annotations: meta
                .annotations
                .iter()
                .flatten()
                .filter(|(k, _)| k.starts_with("meshkeeper.io/"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            template: template_meta,
        }
    }

    /// The controller has caught up with the latest spec and every replica runs the current
    /// template and is available (what `kubectl rollout status` waits for).
    pub fn complete(&self) -> bool {
        self.observed_generation >= self.generation
            && self.updated >= self.desired
            && self.replicas <= self.updated
            && self.available >= self.desired
            && self.revisions_match
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }
}

// === StatefulSets and DaemonSets ===

/// A trimmed StatefulSet or DaemonSet (the kind says which).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetInfo {
    pub namespace: String,
    pub name: String,
    pub rollout: Rollout,
    /// A StatefulSet's updateRevision (pods with this controller-revision-hash are current).
    pub update_revision: Option<String>,
}

impl Cached for SetInfo {
    fn key(&self) -> String {
        ns_key(&self.namespace, &self.name)
    }
}

impl SetInfo {
    pub fn from_statefulset(s: StatefulSet) -> Option<Self> {
        let namespace = s.metadata.namespace.clone()?;
        let name = s.metadata.name.clone()?;
        let spec = s.spec.unwrap_or_default();
        let status = s.status.unwrap_or_default();
        let strategy = match spec.update_strategy.as_ref() {
            Some(u) if u.type_.as_deref() == Some("OnDelete") => Strategy::OnDelete,
            Some(u) => match u.rolling_update.as_ref().and_then(|r| r.partition).filter(|p| *p > 0) {
                Some(p) => Strategy::Partition(p),
                None => Strategy::Rolling,
            },
            None => Strategy::Rolling,
        };
        let rollout = Rollout {
            generation: s.metadata.generation.unwrap_or(0),
            observed_generation: status.observed_generation.unwrap_or(0),
            strategy,
            desired: spec.replicas.unwrap_or(1),
            replicas: status.replicas,
            updated: status.updated_replicas.unwrap_or(0),
            available: status.available_replicas.unwrap_or(status.ready_replicas.unwrap_or(0)),
            revisions_match: status.current_revision.is_some() && status.current_revision == status.update_revision,
            ..Rollout::from_meta(&s.metadata, &spec.template.metadata)
        };
        Some(SetInfo { namespace, name, rollout, update_revision: status.update_revision })
    }

    pub fn from_daemonset(d: DaemonSet) -> Option<Self> {
        let namespace = d.metadata.namespace.clone()?;
        let name = d.metadata.name.clone()?;
        let spec = d.spec.unwrap_or_default();
        let status = d.status.unwrap_or_default();
        let strategy = match spec.update_strategy.as_ref().and_then(|u| u.type_.as_deref()) {
            Some("OnDelete") => Strategy::OnDelete,
            _ => Strategy::Rolling,
        };
        let rollout = Rollout {
            generation: d.metadata.generation.unwrap_or(0),
            observed_generation: status.observed_generation.unwrap_or(0),
            strategy,
            desired: status.desired_number_scheduled,
            replicas: status.current_number_scheduled,
            updated: status.updated_number_scheduled.unwrap_or(0),
            available: status.number_available.unwrap_or(0),
            revisions_match: true,
            ..Rollout::from_meta(&d.metadata, &spec.template.metadata)
        };
        Some(SetInfo { namespace, name, rollout, update_revision: None })
    }
}

// === ReplicaSets ===

/// A trimmed ReplicaSet: enough to tell a Deployment's current ReplicaSet from old ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicaSetInfo {
    pub namespace: String,
    pub name: String,
    /// The controlling owner, e.g. ("Deployment", "web").
    pub owner: Option<(String, String)>,
    /// `deployment.kubernetes.io/revision`: the highest is the Deployment's current one.
    pub revision: u64,
    pub replicas: i32,
}

impl Cached for ReplicaSetInfo {
    fn key(&self) -> String {
        ns_key(&self.namespace, &self.name)
    }
}

impl ReplicaSetInfo {
    pub fn from_object(rs: ReplicaSet) -> Option<Self> {
        let namespace = rs.metadata.namespace?;
        let name = rs.metadata.name?;
        let revision = rs
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("deployment.kubernetes.io/revision"))
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        let owner = rs
            .metadata
            .owner_references
            .unwrap_or_default()
            .into_iter()
            .find(|o| o.controller == Some(true))
            .map(|o| (o.kind, o.name));
        Some(ReplicaSetInfo {
            namespace,
            name,
            owner,
            revision,
            replicas: rs.spec.and_then(|s| s.replicas).unwrap_or(1),
        })
    }
}

// === Services ===

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServicePort {
    pub name: String,
    pub port: i32,
    pub protocol: String,
    pub node_port: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceInfo {
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub type_: String,
    pub selector: BTreeMap<String, String>,
    pub ports: Vec<ServicePort>,
    pub load_balancer_ip: Option<String>,
    pub annotations: BTreeMap<String, String>,
    /// IPs in status.loadBalancer.ingress.
    pub ingress_ips: Vec<String>,
    /// Which field managers own each port's nodePort (by port number), from managedFields.
    pub node_port_managers: BTreeMap<i32, Vec<String>>,
    /// Which field managers own `spec.loadBalancerIP` / the annotations.
    pub ip_managers: Vec<String>,
    /// Who wrote the Service and when (newest first).
    pub writers: Vec<(String, i64)>,
}

impl Cached for ServiceInfo {
    fn key(&self) -> String {
        ns_key(&self.namespace, &self.name)
    }
}

impl ServiceInfo {
    pub fn from_object(s: Service) -> Option<Self> {
        let namespace = s.metadata.namespace?;
        let name = s.metadata.name?;
        let spec = s.spec.unwrap_or_default();
        let managed = s.metadata.managed_fields.unwrap_or_default();
        let (node_port_managers, ip_managers) = field_owners(&managed);
        Some(ServiceInfo {
            namespace,
            name,
            uid: s.metadata.uid,
            resource_version: s.metadata.resource_version,
            type_: spec.type_.unwrap_or_else(|| "ClusterIP".into()),
            selector: spec.selector.unwrap_or_default(),
            ports: spec
                .ports
                .unwrap_or_default()
                .into_iter()
                .map(|p| ServicePort {
                    name: p.name.unwrap_or_default(),
                    port: p.port,
                    protocol: p.protocol.unwrap_or_else(|| "TCP".into()),
                    node_port: p.node_port,
                })
                .collect(),
            load_balancer_ip: spec.load_balancer_ip,
            annotations: s.metadata.annotations.unwrap_or_default(),
            ingress_ips: s
                .status
                .and_then(|st| st.load_balancer)
                .and_then(|lb| lb.ingress)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|i| i.ip)
                .collect(),
            node_port_managers,
            ip_managers,
            writers: super::writers(&managed),
        })
    }
}

#[cfg(test)]
impl DeploymentInfo {
    /// A Deployment for tests, labelled and selecting `app=<name>`, one replica available.
    pub fn test(ns: &str, name: &str) -> Self {
        let app: BTreeMap<String, String> = [("app".to_string(), name.to_string())].into();
        DeploymentInfo {
            namespace: ns.into(),
            name: name.into(),
            uid: None,
            labels: app.clone(),
            selector: Selector { match_labels: app, match_expressions: vec![] },
            desired: 1,
            available: 1,
            ready: 1,
            updated: 1,
            images: vec![],
            rollout: Default::default(),
        }
    }

    /// Its pod template runs `image` (one container).
    pub fn running(mut self, image: &str) -> Self {
        self.images = vec![("main".into(), image.into())];
        self
    }
}

#[cfg(test)]
impl ServiceInfo {
    /// A Service for tests: `ServiceInfo::test("istio-system", "istio-sidecar-injector")`.
    pub fn test(ns: &str, name: &str) -> Self {
        ServiceInfo {
            namespace: ns.into(),
            name: name.into(),
            uid: None,
            resource_version: None,
            type_: "ClusterIP".into(),
            selector: BTreeMap::new(),
            ports: vec![],
            load_balancer_ip: None,
            annotations: BTreeMap::new(),
            ingress_ips: vec![],
            node_port_managers: BTreeMap::new(),
            ip_managers: vec![],
            writers: vec![],
        }
    }
}

/// Reads FieldsV1 ownership of `spec.ports[port=N].nodePort`, `spec.loadBalancerIP` and
/// `metadata.annotations` per manager (the only fields the gateway pin needs to name).
fn field_owners(
    managed: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry],
) -> (BTreeMap<i32, Vec<String>>, Vec<String>) {
    let mut ports: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let mut ip = Vec::new();
    for entry in managed {
        let (Some(manager), Some(fields)) = (&entry.manager, &entry.fields_v1) else { continue };
        let f = &fields.0;
        if let Some(items) = f.pointer("/f:spec/f:ports").and_then(|p| p.as_object()) {
            for (key, item) in items {
                let port = key
                    .strip_prefix("k:")
                    .and_then(|k| serde_json::from_str::<serde_json::Value>(k).ok())
                    .and_then(|k| k["port"].as_i64());
                if let (Some(port), true) = (port, item.get("f:nodePort").is_some()) {
                    ports.entry(port as i32).or_default().push(manager.clone());
                }
            }
        }
        if f.pointer("/f:spec/f:loadBalancerIP").is_some() || f.pointer("/f:metadata/f:annotations").is_some() {
            ip.push(manager.clone());
        }
    }
    (ports, ip)
}

// === Nodes ===

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    pub name: String,
    pub ready: bool,
    /// `spec.unschedulable` (cordoned): no new pod lands on it.
    pub unschedulable: bool,
    /// Allocatable CPU (not capacity: what the kubelet leaves to pods), in millicores.
    pub cpu_millis: i64,
    /// Allocatable memory, in bytes.
    pub memory_bytes: i64,
}

impl Cached for NodeInfo {
    fn key(&self) -> String {
        self.name.clone()
    }
}

/// Parses a Kubernetes quantity into base units scaled by `scale` (1000 for CPU millis):
/// `<signed number><suffix>`, the suffix binary SI (`Ki` .. `Ei`), decimal SI (`n`, `u`, `m`,
/// none, `k`, `M` .. `E`) or a decimal exponent (`e3`, `E-2`). Unparseable quantities are 0
/// (the API server never stores them).
pub fn parse_quantity(q: &Quantity, scale: f64) -> i64 {
    let s = q.0.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let number_ok = !num.is_empty() && num.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | '+' | '-'));
    let Some(n) = num.parse::<f64>().ok().filter(|_| number_ok) else { return 0 };
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp => match exp.strip_prefix(['e', 'E']).map(str::parse::<i32>) {
            Some(Ok(e)) => 10f64.powi(e),
            _ => return 0,
        },
    };
    (n * mult * scale).round() as i64
}

impl NodeInfo {
    pub fn from_object(n: Node) -> Option<Self> {
        let name = n.metadata.name?;
        let status = n.status.unwrap_or_default();
        let alloc = status.allocatable.unwrap_or_default();
        Some(NodeInfo {
            name,
            ready: status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True"),
            unschedulable: n.spec.and_then(|s| s.unschedulable).unwrap_or(false),
            cpu_millis: alloc.get("cpu").map(|q| parse_quantity(q, 1000.0)).unwrap_or(0),
            memory_bytes: alloc.get("memory").map(|q| parse_quantity(q, 1.0)).unwrap_or(0),
        })
    }

    /// Whether its allocatable counts towards what new pods can use: Ready and not cordoned.
    pub fn usable(&self) -> bool {
        self.ready && !self.unschedulable
    }

    /// A Ready, schedulable node (tests).
    #[cfg(test)]
    pub fn test(name: &str, cpu_millis: i64, memory_bytes: i64) -> Self {
        NodeInfo { name: name.into(), ready: true, unschedulable: false, cpu_millis, memory_bytes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tags() {
        assert_eq!(image_tag("gcr.io/gke-release/asm/pilot:1.4.10-asm.18"), Some("1.4.10-asm.18"));
        assert_eq!(image_tag("localhost:5000/pilot:1.5"), Some("1.5"));
        assert_eq!(image_tag("localhost:5000/pilot"), None);
        assert_eq!(image_tag("pilot@sha256:abc"), None);
        assert_eq!(image_tag("docker.io/istio/proxyv2:1.20.1@sha256:abc"), Some("1.20.1"));
    }

    #[test]
    fn quantities() {
        // (quantity, scale, expected): the forms nodes report and the grammar's edges.
        let cases: &[(&str, f64, i64)] = &[
            ("4", 1000.0, 4000),
            ("3920m", 1000.0, 3920),
            ("3500m", 1000.0, 3500),
            ("0.5", 1000.0, 500),
            (".5", 1000.0, 500),
            ("5.", 1000.0, 5000),
            ("100u", 1000.0, 0),
            ("1500000n", 1000.0, 2),
            ("+2", 1000.0, 2000),
            ("16Gi", 1.0, 17_179_869_184),
            ("15G", 1.0, 15_000_000_000),
            ("3750M", 1.0, 3_750_000_000),
            ("15950552Ki", 1.0, 16_333_365_248),
            ("3936256Ki", 1.0, 4_030_726_144),
            ("1.5Gi", 1.0, 1_610_612_736),
            ("1Ti", 1.0, 1_099_511_627_776),
            ("1Pi", 1.0, 1_125_899_906_842_624),
            ("1Ei", 1.0, 1_152_921_504_606_846_976),
            ("2P", 1.0, 2_000_000_000_000_000),
            ("1E", 1.0, 1_000_000_000_000_000_000),
            ("1e3", 1.0, 1000),
            ("1E3", 1.0, 1000),
            ("15e9", 1.0, 15_000_000_000),
            ("1e-3", 1000.0, 1),
            ("4e0", 1000.0, 4000),
            (" 4 ", 1000.0, 4000),
            ("bogus", 1.0, 0),
            ("", 1.0, 0),
            ("1Xi", 1.0, 0),
            ("1e", 1.0, 0),
            ("1e3.5", 1.0, 0),
            ("1 Gi", 1.0, 0),
            ("inf", 1.0, 0),
            ("NaN", 1.0, 0),
            ("1_000", 1.0, 0),
        ];
        for (q, scale, want) in cases {
            assert_eq!(parse_quantity(&Quantity(q.to_string()), *scale), *want, "{q:?}");
        }
    }

    #[test]
    fn nodes_keep_allocatable_readiness_and_cordon() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "user-node-1"},
            "spec": {"unschedulable": true},
            "status": {"capacity": {"cpu": "4", "memory": "16393220Ki"},
                "allocatable": {"cpu": "3920m", "memory": "15950552Ki"},
                "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
        let n = NodeInfo::from_object(node).unwrap();
        assert_eq!((n.cpu_millis, n.memory_bytes), (3920, 16_333_365_248), "allocatable, not capacity");
        assert!(n.ready && n.unschedulable && !n.usable());
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "user-node-2"},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}
        }))
        .unwrap();
        let n = NodeInfo::from_object(node).unwrap();
        assert!(!n.ready && !n.unschedulable && !n.usable());
        assert_eq!((n.cpu_millis, n.memory_bytes), (0, 0));
    }

    #[test]
    fn services_record_who_owns_node_ports() {
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "istio-system", "name": "istio-ingressgateway", "managedFields": [
                {"manager": "istio-operator", "operation": "Apply", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:nodePort": {}}}}}},
                {"manager": "meshkeeper", "operation": "Update", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:spec": {"f:loadBalancerIP": {}, "f:ports": {"k:{\"port\":443,\"protocol\":\"TCP\"}": {"f:nodePort": {}}}}}},
                {"manager": "broken", "fieldsV1": {"f:spec": {"f:ports": {"k:not-json": {"f:nodePort": {}}}}}}
            ]},
            "spec": {"type": "NodePort", "ports": [{"name": "http2", "port": 80, "nodePort": 31380}]}
        }))
        .unwrap();
        let s = ServiceInfo::from_object(svc).unwrap();
        assert_eq!(s.node_port_managers[&80], ["istio-operator"]);
        assert_eq!(s.node_port_managers[&443], ["meshkeeper"]);
        assert_eq!(s.ip_managers, ["meshkeeper"]);
        assert_eq!(s.ports[0].protocol, "TCP");
    }
}
