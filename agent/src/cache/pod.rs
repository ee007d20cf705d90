//! Trimmed Pods, kept small because every pod of the cluster is cached: only what sidecar
//! classification and the control-plane check read. Repeating strings (namespace, owner,
//! proxy image, the whole label set of a ReplicaSet's pods) are interned; container details
//! are kept only for pods in the control-plane namespace.
//!
//! | kept | for |
//! |---|---|
//! | namespace, name, labels, owner (kind, name) | workload resolution, selectors (Istio's never/always-inject, Deployments, Services) |
//! | `sidecar.istio.io/inject` (label or annotation), `sidecar.istio.io/status` present | injection precedence, "the injector ran" |
//! | the `istio-proxy` image, as a container or a native sidecar (init container with `restartPolicy: Always`), `istio-init` present | injected? which proxy? |
//! | phase, Ready, deletion, hostNetwork, creation time | ignore terminating/completed pods; host-network pods are never injected; "created after the restart" |
//! | container statuses (control-plane namespace only) | crash loops, readiness of components |

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde::ser::SerializeStruct;

use super::Cached;
use super::intern::{Interner, Labels, label};
use super::slim::{self, SlimContainer, SlimContainerStatus, SlimPod};

/// The sidecar's container name.
pub const PROXY: &str = "istio-proxy";
/// The init container that sets up traffic redirection (absent with the CNI plugin).
pub const INIT: &str = "istio-init";

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

/// A pod's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

impl Phase {
    fn parse(s: Option<&str>) -> Phase {
        match s {
            Some("Pending") | None => Phase::Pending,
            Some("Running") => Phase::Running,
            Some("Succeeded") => Phase::Succeeded,
            Some("Failed") => Phase::Failed,
            Some(_) => Phase::Unknown,
        }
    }

    /// Succeeded or Failed: the pod will not run again.
    pub fn completed(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }
}

const READY: u16 = 1;
const TERMINATING: u16 = 1 << 1;
const HOST_NETWORK: u16 = 1 << 2;
const STATUS_ANNOTATION: u16 = 1 << 3;
const PROXY_CONTAINER: u16 = 1 << 4;
const PROXY_NATIVE: u16 = 1 << 5;
const ISTIO_INIT: u16 = 1 << 6;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    pub namespace: Arc<str>,
    pub name: Box<str>,
    pub labels: Labels,
    /// (kind, name) of the controlling owner, shared by the pods of one owner.
    pub owner: Option<Owner>,
    pub phase: Phase,
    flags: u16,
    /// The image of its `istio-proxy` container (or native sidecar).
    pub proxy_image: Option<Arc<str>>,
    /// Unix seconds.
    pub created: i64,
    /// What few pods have, out of line: the map's nodes hold every pod inline.
    rare: Option<Box<Rare>>,
}

/// A controlling owner: (kind, name), interned.
pub type Owner = Arc<(Arc<str>, Arc<str>)>;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Rare {
    /// The pod's `sidecar.istio.io/inject` label, else annotation.
    inject_override: Option<Arc<str>>,
    /// Container and init-container statuses, for pods in the control-plane namespace only.
    detail: Option<Box<[ContainerInfo]>>,
}

impl Serialize for PodInfo {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("PodInfo", 6)?;
        st.serialize_field("namespace", &*self.namespace)?;
        st.serialize_field("name", &*self.name)?;
        st.serialize_field("owner", &self.owner.as_deref().map(|(k, n)| format!("{k}/{n}")))?;
        st.serialize_field("phase", &self.phase)?;
        st.serialize_field("ready", &self.ready())?;
        st.serialize_field("proxy_image", &self.proxy_image.as_deref())?;
        st.end()
    }
}

impl Cached for PodInfo {
    fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

fn containers(specs: &[SlimContainer], statuses: &[SlimContainerStatus], init: bool) -> Vec<ContainerInfo> {
    let by_name: BTreeMap<&str, &SlimContainerStatus> = statuses.iter().map(|s| (s.name.as_str(), s)).collect();
    specs
        .iter()
        .map(|c| {
            let st = by_name.get(c.name.as_str());
            ContainerInfo {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                ready: st.is_some_and(|s| s.ready),
                restart_count: st.map(|s| s.restart_count).unwrap_or(0),
                waiting_reason: st.and_then(|s| s.state.waiting.as_ref()).and_then(|w| w.reason.clone()),
                last_terminated_at: st
                    .and_then(|s| s.last_state.terminated.as_ref())
                    .and_then(|t| t.finished_at.as_ref())
                    .map(|t| t.0.as_second()),
                native_sidecar: init && c.restart_policy.as_deref() == Some("Always"),
            }
        })
        .collect()
}

/// The pod trimmer of a cache: its interner, and the namespace whose pods keep detail.
#[derive(Debug, Clone)]
pub struct PodTrim {
    interner: Arc<std::sync::Mutex<Interner>>,
    detail_namespace: String,
}

impl PodTrim {
    pub fn new(detail_namespace: &str) -> Self {
        PodTrim { interner: Arc::default(), detail_namespace: detail_namespace.to_string() }
    }

    pub fn trim(&self, p: SlimPod) -> Option<PodInfo> {
        let detail = p.metadata.namespace.as_deref() == Some(self.detail_namespace.as_str());
        let mut i = self.interner.lock().unwrap_or_else(|e| e.into_inner());
        PodInfo::from_object(p, &mut i, detail)
    }

    /// Drops interned values no cached pod holds any more (after a re-list).
    pub fn sweep(&self) {
        self.interner.lock().unwrap_or_else(|e| e.into_inner()).sweep();
    }
}

impl PodInfo {
    /// Keeps only what the checks read, interning what repeats; `detail`: keep container
    /// statuses. None for an object without namespace or name (malformed).
    pub fn from_object(p: SlimPod, interner: &mut Interner, detail: bool) -> Option<Self> {
        let namespace = interner.str(&p.metadata.namespace?);
        let name: Box<str> = p.metadata.name?.into_boxed_str();
        let annotations = p.metadata.annotations.unwrap_or_default();
        let labels_map = p.metadata.labels.unwrap_or_default();
        let owner = p
            .metadata
            .owner_references
            .unwrap_or_default()
            .into_iter()
            .find(|o| o.controller == Some(true))
            .map(|o| interner.owner(&o.kind, &o.name));
        let (spec, status) = (p.spec, p.status);
        let mut flags = 0;
        if status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True") {
            flags |= READY;
        }
        if p.metadata.deletion_timestamp.is_some() {
            flags |= TERMINATING;
        }
        if spec.host_network {
            flags |= HOST_NETWORK;
        }
        if annotations.contains_key(slim::STATUS) {
            flags |= STATUS_ANNOTATION;
        }
        let inits = spec.init_containers;
        let mut proxy_image = None;
        if let Some(c) = spec.containers.iter().find(|c| c.name == PROXY) {
            flags |= PROXY_CONTAINER;
            proxy_image = c.image.as_deref().map(|i| interner.str(i));
        }
        if let Some(c) = inits.iter().find(|c| c.name == PROXY && c.restart_policy.as_deref() == Some("Always")) {
            flags |= PROXY_NATIVE;
            proxy_image = proxy_image.or_else(|| c.image.as_deref().map(|i| interner.str(i)));
        }
        if inits.iter().any(|c| c.name == INIT) {
            flags |= ISTIO_INIT;
        }
        let inject_override =
            labels_map.get(slim::INJECT).or_else(|| annotations.get(slim::INJECT)).map(|v| interner.str(v));
        let detail = detail.then(|| {
            let mut d = containers(&spec.containers, &status.container_statuses, false);
            d.extend(containers(&inits, &status.init_container_statuses, true));
            d.into_boxed_slice()
        });
        let rare = (inject_override.is_some() || detail.is_some()).then(|| Box::new(Rare { inject_override, detail }));
        Some(PodInfo {
            namespace,
            name,
            labels: interner.labels(labels_map),
            owner,
            phase: Phase::parse(status.phase.as_deref()),
            flags,
            proxy_image,
            created: p.metadata.creation_timestamp.map(|t| t.0.as_second()).unwrap_or(0),
            rare,
        })
    }

    /// The pod's `sidecar.istio.io/inject` label, else annotation.
    pub fn inject_override(&self) -> Option<&str> {
        self.rare.as_ref()?.inject_override.as_deref()
    }

    pub fn ready(&self) -> bool {
        self.flags & READY != 0
    }

    pub fn terminating(&self) -> bool {
        self.flags & TERMINATING != 0
    }

    pub fn host_network(&self) -> bool {
        self.flags & HOST_NETWORK != 0
    }

    /// The injector ran on it (`sidecar.istio.io/status`).
    pub fn injected_annotation(&self) -> bool {
        self.flags & STATUS_ANNOTATION != 0
    }

    /// It runs the proxy, as a container or a native sidecar.
    pub fn has_proxy(&self) -> bool {
        self.flags & (PROXY_CONTAINER | PROXY_NATIVE) != 0
    }

    /// The proxy is a native sidecar (an init container with `restartPolicy: Always`).
    pub fn native_sidecar(&self) -> bool {
        self.flags & PROXY_NATIVE != 0
    }

    pub fn has_istio_init(&self) -> bool {
        self.flags & ISTIO_INIT != 0
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        label(&self.labels, key)
    }

    /// Container and init-container statuses (only for pods kept with detail).
    pub fn containers(&self) -> &[ContainerInfo] {
        self.rare.as_ref().and_then(|r| r.detail.as_deref()).unwrap_or_default()
    }

    /// What this entry costs on the heap beyond its own struct, with interned values counted
    /// as a share (they are held once per workload, not per pod): for the size budget tests.
    pub fn heap_bytes(&self) -> usize {
        self.name.len()
            + if self.rare.is_some() { std::mem::size_of::<Rare>() } else { 0 }
            + std::mem::size_of_val(self.containers())
    }
}

#[cfg(test)]
impl PodInfo {
    /// A pod for tests: `PodInfo::test("shop", "web-1").with_labels(&[("app", "web")])`.
    pub fn test(ns: &str, name: &str) -> Self {
        PodInfo {
            namespace: Arc::from(ns),
            name: name.into(),
            labels: Arc::from(Vec::new()),
            owner: None,
            phase: Phase::Running,
            flags: READY,
            proxy_image: None,
            created: 0,
            rare: None,
        }
    }

    pub fn with_labels(mut self, pairs: &[(&str, &str)]) -> Self {
        let mut v: Vec<(Arc<str>, Arc<str>)> = pairs.iter().map(|(k, v)| (Arc::from(*k), Arc::from(*v))).collect();
        v.sort();
        self.labels = Arc::from(v);
        self
    }

    pub fn owned_by(mut self, kind: &str, name: &str) -> Self {
        self.owner = Some(Arc::new((Arc::from(kind), Arc::from(name))));
        self
    }

    pub fn set_ready(mut self, ready: bool) -> Self {
        self.flags = if ready { self.flags | READY } else { self.flags & !READY };
        self
    }

    pub fn set_terminating(mut self) -> Self {
        self.flags |= TERMINATING;
        self
    }

    pub fn set_host_network(mut self) -> Self {
        self.flags |= HOST_NETWORK;
        self
    }

    /// Injected: the status annotation, `istio-init` and the proxy container with `image`.
    pub fn injected(mut self, image: &str) -> Self {
        self.flags |= STATUS_ANNOTATION | PROXY_CONTAINER | ISTIO_INIT;
        self.proxy_image = Some(Arc::from(image));
        self
    }

    /// Injected as a native sidecar (istio-proxy an init container with restartPolicy Always).
    pub fn injected_native(mut self, image: &str) -> Self {
        self.flags |= STATUS_ANNOTATION | PROXY_NATIVE;
        self.proxy_image = Some(Arc::from(image));
        self
    }

    pub fn inject(mut self, value: &str) -> Self {
        self.rare.get_or_insert_default().inject_override = Some(Arc::from(value));
        self
    }

    pub fn phase(mut self, p: Phase) -> Self {
        self.phase = p;
        self
    }

    pub fn created_at(mut self, t: i64) -> Self {
        self.created = t;
        self
    }

    pub fn with_containers(mut self, c: Vec<ContainerInfo>) -> Self {
        self.rare.get_or_insert_default().detail = Some(c.into_boxed_slice());
        self
    }

    pub fn containers_mut(&mut self) -> &mut [ContainerInfo] {
        self.rare.as_mut().and_then(|r| r.detail.as_deref_mut()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod};

    fn injected_json(i: usize) -> serde_json::Value {
        serde_json::json!({
            "metadata": {"namespace": "shop", "name": format!("web-5d9c8b7f6d-{i:05}"), "uid": format!("uid-{i}"),
                "creationTimestamp": "2026-11-25T07:00:00Z",
                "labels": {"app": "web", "version": "v1", "pod-template-hash": "5d9c8b7f6d", "security.istio.io/tlsMode": "istio", "service.istio.io/canonical-name": "web"},
                "annotations": {"sidecar.istio.io/status": "{\"initContainers\":[\"istio-init\"],\"containers\":[\"istio-proxy\"],\"volumes\":[\"istio-envoy\",\"istio-certs\"],\"version\":\"abc\"}",
                    "kubectl.kubernetes.io/last-applied-configuration": "x".repeat(800), "prometheus.io/scrape": "true"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d9c8b7f6d", "uid": "u", "controller": true}],
                "managedFields": [{"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:metadata": {"f:labels": {}}}}]},
            "spec": {"containers": [
                    {"name": "web", "image": "registry.example.com/shop/web:1.2.3", "env": [{"name": "A", "value": "b"}], "ports": [{"containerPort": 8080}]},
                    {"name": "istio-proxy", "image": "gcr.io/gke-release/asm/proxyv2:1.4.10-asm.18", "args": ["proxy", "sidecar", "--domain", "shop.svc.cluster.local"]}],
                "initContainers": [{"name": "istio-init", "image": "gcr.io/gke-release/asm/proxyv2:1.4.10-asm.18"}],
                "nodeName": "node-1"},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "web", "image": "x", "imageID": "", "ready": true, "restartCount": 0}]}
        })
    }

    // The trimming of a full `k8s_openapi` Pod as it was before the slim decoding (commit
    // 90c0754), kept as the reference the slim path must match.
    fn full_containers(specs: &[Container], statuses: &[ContainerStatus], init: bool) -> Vec<ContainerInfo> {
        let by_name: BTreeMap<&str, &ContainerStatus> = statuses.iter().map(|s| (s.name.as_str(), s)).collect();
        specs
            .iter()
            .map(|c| {
                let st = by_name.get(c.name.as_str());
                let state = st.and_then(|s| s.state.as_ref());
                ContainerInfo {
                    name: c.name.clone(),
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
                }
            })
            .collect()
    }

    fn full_path(p: Pod, interner: &mut Interner, detail: bool) -> Option<PodInfo> {
        let namespace = interner.str(&p.metadata.namespace?);
        let name: Box<str> = p.metadata.name?.into_boxed_str();
        let annotations = p.metadata.annotations.unwrap_or_default();
        let labels_map = p.metadata.labels.unwrap_or_default();
        let owner = p
            .metadata
            .owner_references
            .unwrap_or_default()
            .into_iter()
            .find(|o| o.controller == Some(true))
            .map(|o| interner.owner(&o.kind, &o.name));
        let spec = p.spec.unwrap_or_default();
        let status = p.status.unwrap_or_default();
        let mut flags = 0;
        if status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True") {
            flags |= READY;
        }
        if p.metadata.deletion_timestamp.is_some() {
            flags |= TERMINATING;
        }
        if spec.host_network.unwrap_or(false) {
            flags |= HOST_NETWORK;
        }
        if annotations.contains_key("sidecar.istio.io/status") {
            flags |= STATUS_ANNOTATION;
        }
        let inits = spec.init_containers.unwrap_or_default();
        let mut proxy_image = None;
        if let Some(c) = spec.containers.iter().find(|c| c.name == PROXY) {
            flags |= PROXY_CONTAINER;
            proxy_image = c.image.as_deref().map(|i| interner.str(i));
        }
        if let Some(c) = inits.iter().find(|c| c.name == PROXY && c.restart_policy.as_deref() == Some("Always")) {
            flags |= PROXY_NATIVE;
            proxy_image = proxy_image.or_else(|| c.image.as_deref().map(|i| interner.str(i)));
        }
        if inits.iter().any(|c| c.name == INIT) {
            flags |= ISTIO_INIT;
        }
        let inject_override = labels_map
            .get("sidecar.istio.io/inject")
            .or_else(|| annotations.get("sidecar.istio.io/inject"))
            .map(|v| interner.str(v));
        let detail = detail.then(|| {
            let mut d =
                full_containers(&spec.containers, status.container_statuses.as_deref().unwrap_or_default(), false);
            d.extend(full_containers(&inits, status.init_container_statuses.as_deref().unwrap_or_default(), true));
            d.into_boxed_slice()
        });
        Some(PodInfo {
            namespace,
            name,
            labels: interner.labels(labels_map),
            owner,
            phase: Phase::parse(status.phase.as_deref()),
            flags,
            proxy_image,
            created: p.metadata.creation_timestamp.map(|t| t.0.as_second()).unwrap_or(0),
            rare: (inject_override.is_some() || detail.is_some()).then(|| Box::new(Rare { inject_override, detail })),
        })
    }

    fn injected_pod(i: usize) -> SlimPod {
        serde_json::from_value(injected_json(i)).unwrap()
    }

    #[test]
    fn trims_to_what_classification_reads() {
        let mut i = Interner::default();
        let p = PodInfo::from_object(injected_pod(1), &mut i, false).unwrap();
        assert_eq!((&*p.namespace, &*p.name), ("shop", "web-5d9c8b7f6d-00001"));
        assert_eq!(p.owner.as_deref().map(|(k, n)| (&**k, &**n)), Some(("ReplicaSet", "web-5d9c8b7f6d")));
        assert!(p.ready() && p.injected_annotation() && p.has_proxy() && p.has_istio_init() && !p.native_sidecar());
        assert_eq!(p.proxy_image.as_deref(), Some("gcr.io/gke-release/asm/proxyv2:1.4.10-asm.18"));
        assert_eq!(p.label("app"), Some("web"));
        assert_eq!(p.phase, Phase::Running);
        assert_eq!(p.created, 1_795_590_000);
        assert!(p.containers().is_empty(), "no container detail outside the control-plane namespace");
        let d = PodInfo::from_object(injected_pod(2), &mut i, true).unwrap();
        assert_eq!(d.containers().len(), 3);
        assert!(PodInfo::from_object(SlimPod::default(), &mut i, false).is_none());
    }

    #[test]
    fn native_sidecars_and_overrides() {
        let mut i = Interner::default();
        let pod: SlimPod = serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "a", "name": "p", "labels": {"sidecar.istio.io/inject": "false"}, "annotations": {"sidecar.istio.io/inject": "true"}},
            "spec": {"hostNetwork": true, "containers": [{"name": "app"}],
                "initContainers": [{"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.24.0", "restartPolicy": "Always"}]},
            "status": {"phase": "Succeeded"}
        }))
        .unwrap();
        let p = PodInfo::from_object(pod, &mut i, false).unwrap();
        assert!(p.native_sidecar() && p.has_proxy() && p.host_network());
        assert_eq!(p.inject_override(), Some("false"), "the label wins over the annotation");
        assert!(p.phase.completed());
        assert_eq!(p.proxy_image.as_deref(), Some("docker.io/istio/proxyv2:1.24.0"));
    }

    #[test]
    fn a_cached_pod_costs_well_under_a_kilobyte() {
        // 1,000 pods of one Deployment: everything but the name and the map entry is shared.
        let mut i = Interner::default();
        let pods: Vec<PodInfo> =
            (0..1000).map(|n| PodInfo::from_object(injected_pod(n), &mut i, false).unwrap()).collect();
        let per_pod = std::mem::size_of::<PodInfo>() + pods[0].heap_bytes();
        // The index adds the key (the "ns/name" String) and the map's node overhead.
        let key = std::mem::size_of::<String>() + pods[0].key().len();
        let total = (per_pod + key) * 3 / 2;
        assert!(
            total < 512,
            "{total} bytes per cached pod (struct {}, heap {}, key {key})",
            std::mem::size_of::<PodInfo>(),
            pods[0].heap_bytes()
        );
        assert!(pods.windows(2).all(|w| Arc::ptr_eq(&w[0].labels, &w[1].labels)), "one label set for the ReplicaSet");
        assert_eq!(i.len().1, 1);
    }

    /// Pods of every shape the checks care about, as a real API server serves them.
    fn variety() -> Vec<serde_json::Value> {
        let mut native = injected_json(7);
        native["metadata"]["labels"]["sidecar.istio.io/inject"] = "true".into();
        native["metadata"]["annotations"]["sidecar.istio.io/inject"] = "false".into();
        native["metadata"]["deletionTimestamp"] = "2026-11-25T08:00:00Z".into();
        native["spec"]["hostNetwork"] = true.into();
        native["spec"]["initContainers"] = serde_json::json!([
            {"name": "istio-init", "image": "i"},
            {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.24.0", "restartPolicy": "Always", "env": [{"name": "X", "value": "y"}]}]);
        native["status"] = serde_json::json!({"phase": "Failed", "conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [
                {"name": "web", "image": "x", "imageID": "", "ready": false, "restartCount": 12,
                 "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}},
                 "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2026-11-25T07:59:00Z", "startedAt": "2026-11-25T07:58:00Z"}}},
                {"name": "istio-proxy", "image": "x", "imageID": "", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "2026-11-25T07:00:02Z"}}}],
            "initContainerStatuses": [{"name": "istio-proxy", "image": "x", "imageID": "", "ready": true, "restartCount": 1,
                "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 0, "finishedAt": "2026-11-25T07:30:00Z"}}}]});
        let mut pending = injected_json(8);
        pending["status"] = serde_json::json!({"phase": "Pending"});
        pending["metadata"]["annotations"] = serde_json::json!({"sidecar.istio.io/inject": "true"});
        pending["metadata"]["ownerReferences"] = serde_json::json!([
            {"apiVersion": "v1", "kind": "Node", "name": "n", "uid": "1"},
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "2", "controller": true}]);
        let mut bare = serde_json::json!({"metadata": {"namespace": "x", "name": "y"}, "spec": {"containers": [{"name": "istio-proxy"}]}});
        bare["status"] = serde_json::json!({"phase": "Weird"});
        vec![injected_json(1), native, pending, bare, serde_json::json!({"metadata": {"name": "no-namespace"}})]
    }

    #[test]
    fn the_slim_decoding_trims_to_what_the_full_pod_did() {
        for detail in [false, true] {
            for (n, json) in variety().into_iter().enumerate() {
                let (mut a, mut b) = (Interner::default(), Interner::default());
                let full = full_path(serde_json::from_value(json.clone()).unwrap(), &mut a, detail);
                // As the watch decodes it: from the bytes, not from a Value.
                let bytes = serde_json::to_vec(&json).unwrap();
                let slim = PodInfo::from_object(serde_json::from_slice(&bytes).unwrap(), &mut b, detail);
                assert_eq!(slim, full, "pod {n}, detail {detail}");
                if let Some(p) = &slim
                    && detail
                    && n == 1
                {
                    assert!(p.native_sidecar() && p.terminating() && p.host_network() && !p.ready());
                    assert_eq!(p.containers()[0].waiting_reason.as_deref(), Some("CrashLoopBackOff"));
                    assert_eq!(p.containers()[0].last_terminated_at, Some(1_795_593_540));
                    assert_eq!(p.inject_override(), Some("true"));
                }
            }
        }
    }

    #[test]
    fn the_slim_pod_keeps_no_managed_fields_and_only_the_istio_annotations() {
        let p = injected_pod(3);
        assert!(p.metadata.managed_fields.is_none());
        let a = p.metadata.annotations.unwrap_or_default();
        assert_eq!(a.keys().map(String::as_str).collect::<Vec<_>>(), [slim::STATUS]);
        assert_eq!(p.metadata.uid.as_deref(), Some("uid-3"));
        assert_eq!(p.spec.containers.len(), 2);
    }
}
