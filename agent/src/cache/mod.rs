//! Caches of trimmed objects: plain in-memory indexes with synchronous `apply`, `delete` and
//! `reset`, fed by the watchers. Each keeps only the fields the checks read, so memory per
//! object stays small; checks borrow them read-only.

pub mod injector;
pub mod intern;
pub mod namespace;
pub mod pod;
pub mod slim;
pub mod tolerant;
pub mod watch;
pub mod webhook;
pub mod workload;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard};

pub use injector::InjectorConfig;
pub use intern::{Interner, Labels};
pub use namespace::NamespaceInfo;
pub use pod::{ContainerInfo, Phase, PodInfo};
pub use webhook::{Selector, WebhookConfigInfo, WebhookInfo};
pub use workload::{
    DeploymentInfo, NodeInfo, ReplicaSetInfo, Rollout, ServiceInfo, ServicePort, SetInfo, Strategy, image_tag,
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

/// The managers (with the unix time of their last write) of an object's managedFields,
/// newest first. Only what the contest guard needs to name who changed a field.
pub fn writers(managed: &[ManagedFieldsEntry]) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = managed
        .iter()
        .filter_map(|e| Some((e.manager.clone()?, e.time.as_ref().map(|t| t.0.as_second()).unwrap_or(0))))
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.dedup_by(|a, b| a.0 == b.0);
    v
}

/// The managers that own the field at `pointer` (a JSON pointer into FieldsV1, e.g.
/// `/f:metadata/f:labels/f:istio-injection`).
pub fn owners(managed: &[ManagedFieldsEntry], pointer: &str) -> Vec<String> {
    let mut v: Vec<String> = managed
        .iter()
        .filter(|e| e.fields_v1.as_ref().is_some_and(|f| f.0.pointer(pointer).is_some()))
        .filter_map(|e| e.manager.clone())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// A trimmed object that can live in an [`Index`].
pub trait Cached: Clone + Send + Sync + 'static {
    /// `namespace/name` for namespaced objects, `name` for cluster-scoped ones.
    fn key(&self) -> String;
}

/// A plain index of trimmed objects by key (a boxed str: 8 bytes less than a String in every
/// slot of the map's nodes, and no spare capacity).
#[derive(Debug, Clone)]
pub struct Index<T> {
    objects: BTreeMap<Box<str>, T>,
}

impl<T> Default for Index<T> {
    fn default() -> Self {
        Index { objects: BTreeMap::new() }
    }
}

impl<T: Cached> Index<T> {
    pub fn apply(&mut self, obj: T) {
        self.objects.insert(obj.key().into_boxed_str(), obj);
    }

    pub fn delete(&mut self, key: &str) {
        self.objects.remove(key);
    }

    /// Replaces everything (after a (re-)list).
    pub fn reset(&mut self, objs: impl IntoIterator<Item = T>) {
        self.objects = objs.into_iter().map(|o| (o.key().into_boxed_str(), o)).collect();
    }

    pub fn get(&self, key: &str) -> Option<&T> {
        self.objects.get(key)
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.objects.values()
    }

    /// The objects of one namespace (keys `namespace/name`): a range of the index, not a scan.
    pub fn in_namespace<'a>(&'a self, namespace: &str) -> impl Iterator<Item = &'a T> + 'a {
        // Namespace names are DNS labels ([a-z0-9-]): every key of `ns` sorts from "ns/" up to,
        // not including, "ns0" ('0' follows '/'), and no other namespace's key sorts between.
        let (start, end) = (format!("{namespace}/"), format!("{namespace}0"));
        self.objects.range::<str, _>((Bound::Included(start.as_str()), Bound::Excluded(end.as_str()))).map(|(_, v)| v)
    }

    /// Builds an index from objects (tests, one-shot `check`).
    pub fn from_objects(objs: impl IntoIterator<Item = T>) -> Self {
        let mut i = Index::default();
        i.reset(objs);
        i
    }
}

/// A cache shared between its watcher (writer) and the evaluator (reader).
pub type Shared<T> = Arc<RwLock<Index<T>>>;

/// Every cache the checks read.
#[derive(Clone, Default)]
pub struct Caches {
    pub namespaces: Shared<NamespaceInfo>,
    pub webhooks: Shared<WebhookConfigInfo>,
    pub deployments: Shared<DeploymentInfo>,
    pub replicasets: Shared<ReplicaSetInfo>,
    pub statefulsets: Shared<SetInfo>,
    pub daemonsets: Shared<SetInfo>,
    pub injector: Shared<InjectorConfig>,
    pub pods: Shared<PodInfo>,
    pub services: Shared<ServiceInfo>,
    pub nodes: Shared<NodeInfo>,
}

fn read<T>(s: &Shared<T>) -> RwLockReadGuard<'_, Index<T>> {
    s.read().unwrap_or_else(|p| p.into_inner())
}

/// Read locks on every cache, held while the checks run.
pub struct Guards<'a> {
    pub namespaces: RwLockReadGuard<'a, Index<NamespaceInfo>>,
    pub webhooks: RwLockReadGuard<'a, Index<WebhookConfigInfo>>,
    pub deployments: RwLockReadGuard<'a, Index<DeploymentInfo>>,
    pub replicasets: RwLockReadGuard<'a, Index<ReplicaSetInfo>>,
    pub statefulsets: RwLockReadGuard<'a, Index<SetInfo>>,
    pub daemonsets: RwLockReadGuard<'a, Index<SetInfo>>,
    pub injector: RwLockReadGuard<'a, Index<InjectorConfig>>,
    pub pods: RwLockReadGuard<'a, Index<PodInfo>>,
    pub services: RwLockReadGuard<'a, Index<ServiceInfo>>,
    pub nodes: RwLockReadGuard<'a, Index<NodeInfo>>,
}

impl Caches {
    pub fn read(&self) -> Guards<'_> {
        Guards {
            namespaces: read(&self.namespaces),
            webhooks: read(&self.webhooks),
            deployments: read(&self.deployments),
            replicasets: read(&self.replicasets),
            statefulsets: read(&self.statefulsets),
            daemonsets: read(&self.daemonsets),
            injector: read(&self.injector),
            pods: read(&self.pods),
            services: read(&self.services),
            nodes: read(&self.nodes),
        }
    }
}

/// Owned indexes of every kind (one-shot `meshkeeper check`, tests).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub namespaces: Index<NamespaceInfo>,
    pub webhooks: Index<WebhookConfigInfo>,
    pub deployments: Index<DeploymentInfo>,
    pub replicasets: Index<ReplicaSetInfo>,
    pub statefulsets: Index<SetInfo>,
    pub daemonsets: Index<SetInfo>,
    pub injector: Index<InjectorConfig>,
    pub pods: Index<PodInfo>,
    pub services: Index<ServiceInfo>,
    pub nodes: Index<NodeInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_delete_reset() {
        let mut idx = Index::default();
        idx.apply(NamespaceInfo::test("a"));
        idx.apply(NamespaceInfo::test("b"));
        idx.apply(NamespaceInfo::test("a").labelled("x", "y"));
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.get("a").map(|n| n.labels.len()), Some(1));
        idx.delete("a");
        idx.delete("missing");
        assert_eq!(idx.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["b"]);
        idx.reset([NamespaceInfo::test("c")]);
        assert_eq!(idx.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["c"]);
    }

    #[test]
    fn a_namespace_is_a_range_without_its_neighbours() {
        let names = [("ns", "a"), ("ns", "b"), ("ns-a", "x"), ("ns0", "y"), ("nsa", "z"), ("n", "w"), ("ns1", "v")];
        let idx = Index::from_objects(names.iter().map(|(ns, n)| PodInfo::test(ns, n)));
        let got = |ns: &str| idx.in_namespace(ns).map(|p| p.name.to_string()).collect::<Vec<_>>();
        assert_eq!(got("ns"), ["a", "b"]);
        assert_eq!(got("ns-a"), ["x"]);
        assert_eq!(got("ns0"), ["y"]);
        assert_eq!(got("n"), ["w"]);
        assert!(got("missing").is_empty());
        for (ns, _) in names {
            let scan: Vec<String> = idx.iter().filter(|p| &*p.namespace == ns).map(|p| p.name.to_string()).collect();
            assert_eq!(got(ns), scan, "{ns}");
        }
    }
}
