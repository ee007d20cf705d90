//! The Pod as the pod watch decodes it: only the fields [`PodInfo`](super::PodInfo) keeps
//! (see the table in [`pod`](super::pod)). A pod's JSON is mostly what no check reads
//! (managedFields, env, volumes, args, probes, most annotations); decoding it into a full
//! `k8s_openapi` Pod allocated all of it for every event, only to drop it when trimming, and
//! at 100,000 pods that garbage left the allocator's pages fragmented. Here serde skips every
//! other field without allocating.
//!
//! Decoding is as tolerant as `k8s_openapi`'s: an absent or `null` field is its default (None,
//! empty, false); a kept field of the wrong type is an error, as it is there; any field not
//! kept is skipped whatever its type.
//!
//! The metadata is a `k8s_openapi` [`ObjectMeta`] (so the type is a [`kube::Resource`] the
//! watcher can resume from), filled by [`meta`] with name, namespace, uid, resourceVersion,
//! labels, ownerReferences and the creation and deletion timestamps; of the annotations only
//! `sidecar.istio.io/inject` (with its value) and `sidecar.istio.io/status` (present, its
//! value not kept: an empty string).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, IgnoredAny, MapAccess, Visitor};

/// The annotation whose value is kept.
pub const INJECT: &str = "sidecar.istio.io/inject";
/// The annotation whose presence is kept.
pub const STATUS: &str = "sidecar.istio.io/status";

/// A Pod with only what the pod cache keeps.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimPod {
    #[serde(default, deserialize_with = "meta")]
    pub metadata: ObjectMeta,
    #[serde(default, deserialize_with = "or_default")]
    pub spec: SlimSpec,
    #[serde(default, deserialize_with = "or_default")]
    pub status: SlimStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimSpec {
    #[serde(default, deserialize_with = "or_default")]
    pub containers: Vec<SlimContainer>,
    #[serde(default, deserialize_with = "or_default")]
    pub init_containers: Vec<SlimContainer>,
    #[serde(default, deserialize_with = "or_default")]
    pub host_network: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimContainer {
    #[serde(default, deserialize_with = "or_default")]
    pub name: String,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub restart_policy: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimStatus {
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default, deserialize_with = "or_default")]
    pub conditions: Vec<SlimCondition>,
    #[serde(default, deserialize_with = "or_default")]
    pub container_statuses: Vec<SlimContainerStatus>,
    #[serde(default, deserialize_with = "or_default")]
    pub init_container_statuses: Vec<SlimContainerStatus>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SlimCondition {
    #[serde(rename = "type", default, deserialize_with = "or_default")]
    pub type_: String,
    #[serde(default, deserialize_with = "or_default")]
    pub status: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimContainerStatus {
    #[serde(default, deserialize_with = "or_default")]
    pub name: String,
    #[serde(default, deserialize_with = "or_default")]
    pub ready: bool,
    #[serde(default, deserialize_with = "or_default")]
    pub restart_count: i32,
    /// `state.waiting.reason`
    #[serde(default, deserialize_with = "or_default")]
    pub state: SlimState,
    /// `lastState.terminated.finishedAt`
    #[serde(default, deserialize_with = "or_default")]
    pub last_state: SlimState,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SlimState {
    #[serde(default)]
    pub waiting: Option<SlimWaiting>,
    #[serde(default)]
    pub terminated: Option<SlimTerminated>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SlimWaiting {
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimTerminated {
    #[serde(default)]
    pub finished_at: Option<Time>,
}

impl kube::Resource for SlimPod {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Pod".into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }

    fn api_version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        "pods".into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// A field whose `null` is its default (as `k8s_openapi` reads required fields and lists).
fn or_default<'de, D: Deserializer<'de>, T: DeserializeOwned + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The metadata fields kept; every other one is skipped.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum MetaField {
    Name,
    Namespace,
    Uid,
    ResourceVersion,
    Labels,
    Annotations,
    OwnerReferences,
    CreationTimestamp,
    DeletionTimestamp,
    #[serde(other)]
    Other,
}

/// Reads an object's metadata, keeping what [`SlimPod`] documents.
pub fn meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = ObjectMeta;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("ObjectMeta")
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<ObjectMeta, E> {
            Ok(ObjectMeta::default())
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<ObjectMeta, E> {
            Ok(ObjectMeta::default())
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<ObjectMeta, D::Error> {
            d.deserialize_map(self)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ObjectMeta, A::Error> {
            let mut m = ObjectMeta::default();
            while let Some(key) = map.next_key::<MetaField>()? {
                match key {
                    MetaField::Name => m.name = map.next_value()?,
                    MetaField::Namespace => m.namespace = map.next_value()?,
                    MetaField::Uid => m.uid = map.next_value()?,
                    MetaField::ResourceVersion => m.resource_version = map.next_value()?,
                    MetaField::Labels => m.labels = map.next_value()?,
                    MetaField::Annotations => m.annotations = map.next_value::<Option<Annotations>>()?.map(|a| a.0),
                    MetaField::OwnerReferences => {
                        m.owner_references = map.next_value::<Option<Vec<OwnerReference>>>()?
                    }
                    MetaField::CreationTimestamp => m.creation_timestamp = map.next_value()?,
                    MetaField::DeletionTimestamp => m.deletion_timestamp = map.next_value()?,
                    MetaField::Other => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(m)
        }
    }
    d.deserialize_option(V)
}

/// The kept annotations: `sidecar.istio.io/inject` with its value, `sidecar.istio.io/status`
/// with an empty one.
struct Annotations(BTreeMap<String, String>);

/// An annotation key, matched without allocating.
enum AnnotationKey {
    Inject,
    Status,
    Other,
}

impl<'de> Deserialize<'de> for AnnotationKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct K;
        impl Visitor<'_> for K {
            type Value = AnnotationKey;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an annotation key")
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<AnnotationKey, E> {
                Ok(match s {
                    INJECT => AnnotationKey::Inject,
                    STATUS => AnnotationKey::Status,
                    _ => AnnotationKey::Other,
                })
            }
        }
        d.deserialize_str(K)
    }
}

impl<'de> Deserialize<'de> for Annotations {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Annotations;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of annotations")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Annotations, A::Error> {
                let mut kept = BTreeMap::new();
                while let Some(key) = map.next_key::<AnnotationKey>()? {
                    match key {
                        AnnotationKey::Inject => {
                            kept.insert(INJECT.to_string(), map.next_value::<String>()?);
                        }
                        AnnotationKey::Status => {
                            map.next_value::<IgnoredAny>()?;
                            kept.insert(STATUS.to_string(), String::new());
                        }
                        AnnotationKey::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Annotations(kept))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;

    #[test]
    fn a_resource_named_like_pods() {
        assert_eq!(SlimPod::url_path(&(), Some("shop")), "/api/v1/namespaces/shop/pods");
        assert_eq!(SlimPod::url_path(&(), None), "/api/v1/pods");
        assert_eq!(SlimPod::kind(&()), "Pod");
        assert_eq!(SlimPod::api_version(&()), "v1");
    }

    #[test]
    fn absent_null_and_unexpected_fields_decode() {
        // Everything absent.
        let p: SlimPod = serde_json::from_str("{}").unwrap();
        assert!(p.metadata.name.is_none() && p.spec.containers.is_empty() && p.status.phase.is_none());
        // Everything null.
        let p: SlimPod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": null, "namespace": null, "labels": null, "annotations": null, "ownerReferences": null,
                "creationTimestamp": null, "deletionTimestamp": null, "resourceVersion": null, "managedFields": null},
            "spec": {"containers": null, "initContainers": null, "hostNetwork": null},
            "status": {"phase": null, "conditions": null, "containerStatuses": [{"name": null, "ready": null,
                "restartCount": null, "state": null, "lastState": {"terminated": null}}], "initContainerStatuses": null}
        }))
        .unwrap();
        assert!(p.metadata.labels.is_none() && !p.spec.host_network && p.status.container_statuses.len() == 1);
        let p: SlimPod =
            serde_json::from_value(serde_json::json!({"metadata": null, "spec": null, "status": null})).unwrap();
        assert!(p.metadata.name.is_none());
        // Fields not kept are skipped whatever their type; a few an older or newer server
        // might send differently.
        let p: SlimPod = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "a", "managedFields": {"not": "a list"}, "generation": "x",
                "annotations": {"a": {"nested": [1, 2]}, "sidecar.istio.io/status": 7, "sidecar.istio.io/inject": "false"},
                "ownerReferences": [{"kind": "ReplicaSet", "name": "rs", "controller": true}], "finalizers": 3},
            "spec": {"containers": [{"name": "app", "env": "x", "resources": 5}], "volumes": true, "hostNetwork": true,
                "overhead": null},
            "status": {"conditions": [{"type": "Ready", "status": "True", "lastProbeTime": 9}], "podIPs": "none",
                "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "CrashLoopBackOff", "message": 1}}}]},
            "extra": [null]
        }))
        .unwrap();
        let a = p.metadata.annotations.as_ref().unwrap();
        assert_eq!(a.get(INJECT).map(String::as_str), Some("false"));
        assert!(a.contains_key(STATUS) && a.len() == 2, "{a:?}");
        let o = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (o.kind.as_str(), o.name.as_str(), o.controller, o.uid.as_str()),
            ("ReplicaSet", "rs", Some(true), "")
        );
        assert!(p.spec.host_network && p.spec.containers[0].image.is_none());
        assert_eq!(
            p.status.container_statuses[0].state.waiting.as_ref().unwrap().reason.as_deref(),
            Some("CrashLoopBackOff")
        );
        // A kept field of the wrong type is an error, as it is for k8s_openapi.
        assert!(serde_json::from_str::<SlimPod>(r#"{"metadata": {"name": 5}}"#).is_err());
        assert!(serde_json::from_str::<k8s_openapi::api::core::v1::Pod>(r#"{"metadata": {"name": 5}}"#).is_err());
    }
}
