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
    let server_version = Some(server_version(client).await);
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

/// How long an all-allowed set of permissions is trusted before it is asked again (a refusal
/// seen meanwhile asks at once; denied or unknown permissions are asked every `every`).
pub const PERMISSIONS_TTL: Duration = Duration::from_secs(3600);

/// Whether the permissions must be asked again: never asked, something refused since, one was
/// denied or could not be asked last time (to see the fix), or the answers are old.
pub fn permissions_due(last: Option<&ApiProbe>, asked: Option<Duration>, refusals_since: bool) -> bool {
    let (Some(last), Some(age)) = (last, asked) else { return true };
    refusals_since
        || last.permissions.is_empty()
        || last.permissions.iter().any(|p| !matches!(p.allowed, Ok(true)))
        || age >= PERMISSIONS_TTL
}

/// Probes every `every`: the version and the mTLS policy each time; the access reviews only
/// when [`permissions_due`] (they are most of the probe's requests), and at once when the agent
/// sees a refusal.
pub async fn run(
    client: Client,
    settings: Settings,
    probe: Arc<RwLock<ApiProbe>>,
    dirty: Arc<Dirty>,
    agent: Arc<crate::state::AgentState>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let permissions = checks::api::required_permissions(&settings);
    let mut tick = tokio::time::interval(every);
    let mut asked: Option<(std::time::Instant, u64)> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
            _ = agent.next_forbidden() => {}
        }
        let last = probe.read().unwrap_or_else(|p| p.into_inner()).clone();
        let refusals = agent.forbidden_count();
        let due = permissions_due(
            asked.is_some().then_some(&last),
            asked.map(|(at, _)| at.elapsed()),
            asked.is_some_and(|(_, n)| refusals > n),
        );
        let fresh = tokio::select! {
            _ = shutdown.cancelled() => break,
            fresh = async {
                let mut p = if due {
                    probe_api(&client, &permissions).await
                } else {
                    ApiProbe { server_version: Some(server_version(&client).await), ..last }
                };
                if settings.control_plane.enabled && matches!(p.server_version, Some(Ok(_))) {
                    p.mtls = probe_mtls(&client, &settings.control_plane.namespace).await;
                }
                p
            } => fresh,
        };
        if due && matches!(fresh.server_version, Some(Ok(_))) {
            asked = Some((std::time::Instant::now(), refusals));
        }
        *probe.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        dirty.mark(Resource::ApiProbe);
    }
}

async fn server_version(client: &Client) -> Result<String, String> {
    client.apiserver_version().await.map(|v| v.git_version).map_err(|e| apierror::one_line(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{Permission, PermissionResult};

    fn probe(allowed: &[Result<bool, String>]) -> ApiProbe {
        let p = Permission {
            verb: "list",
            group: "",
            resource: "pods",
            subresource: None,
            namespace: None,
            name: None,
            why: "test",
        };
        ApiProbe {
            server_version: Some(Ok("v1.36.0".into())),
            permissions: allowed
                .iter()
                .map(|a| PermissionResult { permission: p.clone(), allowed: a.clone() })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn permissions_are_asked_once_and_again_only_when_something_may_have_changed() {
        let minute = Some(Duration::from_secs(60));
        assert!(permissions_due(None, None, false), "never asked");
        let allowed = probe(&[Ok(true), Ok(true)]);
        assert!(!permissions_due(Some(&allowed), minute, false), "all allowed, a minute ago");
        assert!(permissions_due(Some(&allowed), minute, true), "a refusal since");
        assert!(permissions_due(Some(&allowed), Some(PERMISSIONS_TTL), false), "an hour old");
        assert!(permissions_due(Some(&probe(&[Ok(true), Ok(false)])), minute, false), "a denial: see the fix");
        assert!(permissions_due(Some(&probe(&[Err("timeout".into())])), minute, false), "unknown");
        assert!(permissions_due(Some(&probe(&[])), minute, false), "nothing learnt");
    }
}
