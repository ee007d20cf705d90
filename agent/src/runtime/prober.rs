//! The API prober: asks the API server for its version, for each permission the enabled
//! capabilities need (SelfSubjectAccessReview), and for the mesh-wide mTLS policy; the
//! `kubernetes-api` and `control-plane` checks read what it learnt.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::api::authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
use kube::Client;
use kube::api::{Api, PostParams};
use tokio_util::sync::CancellationToken;

use crate::apierror;
use crate::cache::watch::Dirty;
use crate::checks::control_plane::{self, MtlsObservation};
use crate::checks::{self, ApiProbe, Permission, PermissionResult, Resource};
use crate::config::Settings;

/// Asks the API server for its version and, by SelfSubjectAccessReview, for each permission.
pub async fn probe_api(client: &Client, permissions: &[Permission]) -> ApiProbe {
    let server_version =
        Some(client.apiserver_version().await.map(|v| v.git_version).map_err(|e| apierror::one_line(&e)));
    if matches!(server_version, Some(Err(_))) {
        return ApiProbe { server_version, ..Default::default() };
    }
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut results = Vec::new();
    for p in permissions {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(p.verb.to_string()),
                    group: Some(p.group.to_string()),
                    resource: Some(p.resource.to_string()),
                    namespace: p.namespace.clone(),
                    name: p.name.clone(),
                    subresource: p.subresource.map(str::to_string),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let allowed = match api.create(&PostParams::default(), &review).await {
            Ok(r) => Ok(r.status.map(|s| s.allowed).unwrap_or(false)),
            Err(e) => Err(apierror::one_line(&e)),
        };
        results.push(PermissionResult { permission: p.clone(), allowed });
    }
    ApiProbe { server_version, permissions: results, mtls: MtlsObservation::NotProbed }
}

/// Reads the mesh-wide mTLS policy: PeerAuthentication `default` in the root namespace
/// (Istio 1.5+), else MeshPolicy `default` (1.4). A group that is not served is a missing CRD.
pub async fn probe_mtls(client: &Client, root_namespace: &str) -> MtlsObservation {
    let candidates = [
        ("security.istio.io", "v1beta1", "PeerAuthentication", "peerauthentications", Some(root_namespace)),
        ("authentication.istio.io", "v1alpha1", "MeshPolicy", "meshpolicies", None),
    ];
    let mut served = false;
    for (group, version, kind, plural, ns) in candidates {
        let gv = format!("{group}/{version}");
        match client.list_api_group_resources(&gv).await {
            Ok(list) if list.resources.iter().any(|r| r.name == plural) => served = true,
            Ok(_) => continue,
            Err(kube::Error::Api(s)) if s.code == 404 => continue,
            Err(e) => return MtlsObservation::Error(apierror::one_line(&e)),
        }
        let ar = kube::core::ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: gv.clone(),
            kind: kind.into(),
            plural: plural.into(),
        };
        let api: Api<kube::api::DynamicObject> = match ns {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        match api.get_opt("default").await {
            Ok(Some(obj)) => {
                let value = serde_json::to_value(&obj).unwrap_or_default();
                let source = match ns {
                    Some(ns) => format!("{kind} {ns}/default"),
                    None => format!("{kind} default"),
                };
                return MtlsObservation::Mode { source, mode: control_plane::mtls_mode_of(kind, &value) };
            }
            Ok(None) => continue,
            Err(e) => return MtlsObservation::Error(apierror::one_line(&e)),
        }
    }
    if served { MtlsObservation::NoPolicy } else { MtlsObservation::CrdMissing }
}

pub async fn run(
    client: Client,
    settings: Settings,
    probe: Arc<RwLock<ApiProbe>>,
    dirty: Arc<Dirty>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let permissions = checks::api::required_permissions(&settings);
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let fresh = tokio::select! {
            _ = shutdown.cancelled() => break,
            fresh = async {
                let mut p = probe_api(&client, &permissions).await;
                if settings.control_plane.enabled && matches!(p.server_version, Some(Ok(_))) {
                    p.mtls = probe_mtls(&client, &settings.control_plane.namespace).await;
                }
                p
            } => fresh,
        };
        *probe.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        dirty.mark(Resource::ApiProbe);
    }
}
