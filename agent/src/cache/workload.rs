//! Trimmed Deployments, Pods, Services and Nodes: only what the control-plane, gateway and
//! re-injection checks read (no managedFields, no full specs).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Container, ContainerStatus, Node, Pod, Service};
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
}

impl Cached for DeploymentInfo {
    fn key(&self) -> String {
        ns_key(&self.namespace, &self.name)
    }
}

impl DeploymentInfo {
    pub fn from_object(d: Deployment) -> Option<Self> {
        let namespace = d.metadata.namespace?;
        let name = d.metadata.name?;
        let spec = d.spec.unwrap_or_default();
        let status = d.status.unwrap_or_default();
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
        })
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

// === Pods ===

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerInfo {
    pub name: String,
    pub image: String,
    pub ready: bool,
    pub restart_count: i32,
    /// e.g. CrashLoopBackOff, ImagePullBackOff
    pub waiting_reason: Option<String>,
    /// Unix seconds of the last termination (the last restart).
    pub last_terminated_at: Option<i64>,
    /// An init container with `restartPolicy: Always` (a native sidecar).
    pub native_sidecar: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// (kind, name) of the controlling owner.
    pub owner: Option<(String, String)>,
    pub phase: Option<String>,
    pub ready: bool,
    pub terminating: bool,
    pub host_network: bool,
    pub containers: Vec<ContainerInfo>,
    pub init_containers: Vec<ContainerInfo>,
    /// The `sidecar.istio.io/status` annotation is present (the injector ran).
    pub injected_annotation: bool,
    /// The pod's `sidecar.istio.io/inject` label or annotation.
    pub inject_override: Option<String>,
}

impl Cached for PodInfo {
    fn key(&self) -> String {
        ns_key(&self.namespace, &self.name)
    }
}

fn containers(specs: Vec<Container>, statuses: Vec<ContainerStatus>, init: bool) -> Vec<ContainerInfo> {
    let by_name: BTreeMap<String, ContainerStatus> = statuses.into_iter().map(|s| (s.name.clone(), s)).collect();
    specs
        .into_iter()
        .map(|c| {
            let st = by_name.get(&c.name);
            let state = st.and_then(|s| s.state.as_ref());
            ContainerInfo {
                image: c.image.clone().unwrap_or_default(),
                ready: st.is_some_and(|s| s.ready),
                restart_count: st.map(|s| s.restart_count).unwrap_or(0),
                waiting_reason: state.and_then(|s| s.waiting.as_ref()).and_then(|w| w.reason.clone()),
                last_terminated_at: st
                    .and_then(|s| s.last_state.as_ref())
                    .and_then(|l| l.terminated.as_ref())
                    .and_then(|t| t.finished_at.as_ref())
                    .map(|t| t.0.as_second()),
                native_sidecar: init && c.restart_policy.as_deref() == Some("Always"),
                name: c.name,
            }
        })
        .collect()
}

impl PodInfo {
    pub fn from_object(p: Pod) -> Option<Self> {
        let namespace = p.metadata.namespace?;
        let name = p.metadata.name?;
        let annotations = p.metadata.annotations.unwrap_or_default();
        let labels = p.metadata.labels.unwrap_or_default();
        let owner = p
            .metadata
            .owner_references
            .unwrap_or_default()
            .into_iter()
            .find(|o| o.controller == Some(true))
            .map(|o| (o.kind, o.name));
        let spec = p.spec.unwrap_or_default();
        let status = p.status.unwrap_or_default();
        let ready = status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True");
        let inject_override =
            labels.get("sidecar.istio.io/inject").or_else(|| annotations.get("sidecar.istio.io/inject")).cloned();
        Some(PodInfo {
            namespace,
            name,
            uid: p.metadata.uid,
            owner,
            phase: status.phase,
            ready,
            terminating: p.metadata.deletion_timestamp.is_some(),
            host_network: spec.host_network.unwrap_or(false),
            containers: containers(spec.containers, status.container_statuses.unwrap_or_default(), false),
            init_containers: containers(
                spec.init_containers.unwrap_or_default(),
                status.init_container_statuses.unwrap_or_default(),
                true,
            ),
            injected_annotation: annotations.contains_key("sidecar.istio.io/status"),
            inject_override,
            labels,
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
    pub cpu_millis: i64,
    pub memory_bytes: i64,
}

impl Cached for NodeInfo {
    fn key(&self) -> String {
        self.name.clone()
    }
}

/// Parses a Kubernetes quantity into base units scaled by `scale` (1000 for CPU millis).
/// Unparseable quantities are 0 (the API server never stores them).
pub fn parse_quantity(q: &Quantity, scale: f64) -> i64 {
    let s = q.0.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let Ok(n) = num.parse::<f64>() else { return 0 };
    let mult = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        _ => return 0,
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
            cpu_millis: alloc.get("cpu").map(|q| parse_quantity(q, 1000.0)).unwrap_or(0),
            memory_bytes: alloc.get("memory").map(|q| parse_quantity(q, 1.0)).unwrap_or(0),
        })
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
        assert_eq!(parse_quantity(&Quantity("4".into()), 1000.0), 4000);
        assert_eq!(parse_quantity(&Quantity("3500m".into()), 1000.0), 3500);
        assert_eq!(parse_quantity(&Quantity("16Gi".into()), 1.0), 17_179_869_184);
        assert_eq!(parse_quantity(&Quantity("15G".into()), 1.0), 15_000_000_000);
        assert_eq!(parse_quantity(&Quantity("3936256Ki".into()), 1.0), 4_030_726_144);
        assert_eq!(parse_quantity(&Quantity("bogus".into()), 1.0), 0);
        assert_eq!(parse_quantity(&Quantity("1Xi".into()), 1.0), 0);
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

    #[test]
    fn pods_trim_to_what_checks_read() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "shop", "name": "web-1", "labels": {"app": "web"},
                "annotations": {"sidecar.istio.io/status": "{}", "kubectl.kubernetes.io/last-applied-configuration": "x"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "u", "controller": true}],
                "managedFields": [{"manager": "kubectl"}]},
            "spec": {"containers": [{"name": "web", "image": "web:1"}, {"name": "istio-proxy", "image": "x/proxyv2:1.4.10-asm.18"}],
                     "initContainers": [{"name": "istio-init", "image": "x/proxyv2:1.4.10-asm.18"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "web", "image": "web:1", "imageID": "", "ready": true, "restartCount": 2,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-11-25T07:00:00Z"}}}]}
        }))
        .unwrap();
        let p = PodInfo::from_object(pod).unwrap();
        assert_eq!(p.owner, Some(("ReplicaSet".into(), "web-abc".into())));
        assert!(p.ready && p.injected_annotation);
        assert_eq!(p.containers[0].waiting_reason.as_deref(), Some("CrashLoopBackOff"));
        assert_eq!(p.containers[0].restart_count, 2);
        assert!(p.containers[0].last_terminated_at.is_some());
        assert!(!p.containers[1].ready, "no status: not ready");
        assert!(!p.init_containers[0].native_sidecar);
        assert!(PodInfo::from_object(Pod::default()).is_none());
    }
}
