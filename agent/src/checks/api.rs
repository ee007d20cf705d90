//! The `kubernetes-api` check: the API server answers, its version is supported, the agent's
//! ServiceAccount has every permission the enabled capabilities need (asked with
//! SelfSubjectAccessReview, so a missing RBAC rule shows up before a write fails), every watch
//! lists and stays up, and this replica can take part in leader election. It reads no cache,
//! so it reports from the first second — a forbidden list (the commonest install mistake)
//! is a finding, not just a 503 from `/readyz`.

use serde::Serialize;

use super::{Check, Evaluation, Resource, View};
use crate::config::{GatewayMode, Mode, Settings};
use crate::findings::{CheckReport, Finding, Item, ObjectRef, Severity};
use crate::state::LeaderObservation;

/// The oldest Kubernetes minor version meshkeeper supports.
pub const MIN_MINOR: u32 = 24;

/// One permission the agent needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Permission {
    pub verb: &'static str,
    pub group: &'static str,
    pub resource: &'static str,
    /// None: cluster-wide (all namespaces / cluster-scoped).
    pub namespace: Option<String>,
    /// The one object it is needed on, when the chart grants it by resourceNames.
    pub name: Option<String>,
    /// A subresource, e.g. `eviction`.
    pub subresource: Option<&'static str>,
    /// Which capability needs it.
    pub why: &'static str,
}

impl Permission {
    pub fn new(verb: &'static str, group: &'static str, resource: &'static str, why: &'static str) -> Self {
        Permission { verb, group, resource, namespace: None, name: None, subresource: None, why }
    }

    fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    fn in_namespace(mut self, ns: &str) -> Self {
        self.namespace = Some(ns.to_string());
        self
    }

    /// `get leases.coordination.k8s.io in meshkeeper`
    pub fn describe(&self) -> String {
        let resource = match self.subresource {
            Some(sub) => format!("{}/{sub}", self.resource),
            None => self.resource.to_string(),
        };
        let res = if self.group.is_empty() { resource } else { format!("{resource}.{}", self.group) };
        let res = match &self.name {
            Some(n) => format!("{res}/{n}"),
            None => res,
        };
        match &self.namespace {
            Some(ns) => format!("{} {res} in {ns}", self.verb),
            None => format!("{} {res}", self.verb),
        }
    }
}

/// What the probe saw of one permission: allowed, denied, or could not ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PermissionResult {
    pub permission: Permission,
    pub allowed: Result<bool, String>,
}

/// What the I/O layer learnt by asking the API server (filled before the checks run).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApiProbe {
    /// `gitVersion` of the server, or why it could not be read. None: not probed yet.
    pub server_version: Option<Result<String, String>>,
    pub permissions: Vec<PermissionResult>,
    /// The mesh-wide mTLS policy, as read (for the control-plane check).
    pub mtls: super::control_plane::MtlsObservation,
}

/// The permissions the enabled capabilities need, derived from the settings.
pub fn required_permissions(s: &Settings) -> Vec<Permission> {
    let mut p = Vec::new();
    // Reads: every resource a registered check reads is listed and watched. Only `list` is
    // asked: a watch that is refused shows up at once as WatchForbidden.
    for r in super::watched(&super::registry(s)) {
        let Some((group, plural)) = r.api() else { continue };
        let why = match r {
            Resource::Namespaces => "injection policy and re-injection: namespaces",
            Resource::Webhooks => "injection policy, control plane, re-injection: the injector webhook",
            Resource::Nodes => "control-plane health: cluster capacity",
            Resource::Services => "control plane (injector backend) and gateway pin",
            Resource::InjectorConfig => "re-injection: the injector's ConfigMap (expected proxy version)",
            Resource::Pods | Resource::ReplicaSets | Resource::Deployments => "control-plane health and re-injection",
            _ => "re-injection: workloads",
        };
        let perm = Permission::new("list", group, plural, why);
        p.push(match r {
            Resource::InjectorConfig => {
                perm.in_namespace(&s.control_plane.namespace).named(&injector_configmap_name(s))
            }
            _ => perm,
        });
    }
    if s.injection.mode == Mode::Enforce {
        p.push(Permission::new("patch", "", "namespaces", "injection policy: restore the injection label"));
    }
    if s.events.enabled {
        p.push(Permission::new("create", "events.k8s.io", "events", "events: report findings and actions"));
    }
    if s.leader_election.enabled {
        let ns = &s.leader_election.namespace;
        let lease = &s.leader_election.lease_name;
        p.push(Permission::new("create", "coordination.k8s.io", "leases", "leader election").in_namespace(ns));
        for verb in ["get", "update"] {
            p.push(
                Permission::new(verb, "coordination.k8s.io", "leases", "leader election").in_namespace(ns).named(lease),
            );
        }
    }
    if s.gateway.mode != GatewayMode::Off && s.gateway.repair {
        let ns = &s.gateway.namespace;
        p.push(
            Permission::new("patch", "", "services", "gateway pin: repair drift")
                .in_namespace(ns)
                .named(&s.gateway.service),
        );
    }
    if s.reinjection.mode == Mode::Enforce {
        for plural in ["deployments", "statefulsets", "daemonsets"] {
            p.push(Permission::new("patch", "apps", plural, "re-injection: rolling restarts"));
        }
        if s.reinjection.evict_on_delete {
            let mut e = Permission::new("create", "", "pods", "re-injection: evictions of OnDelete workloads' pods");
            e.subresource = Some("eviction");
            p.push(e);
        }
    }
    p
}

/// The injector ConfigMap's name for these settings (`<name>-<rev>` with a revision label).
pub fn injector_configmap_name(s: &Settings) -> String {
    let base = &s.reinjection.injector_configmap;
    if s.injection.label.key == super::injection::ISTIO_REV {
        format!("{base}-{}", s.injection.label.value)
    } else {
        base.clone()
    }
}

/// Parses `v1.36.0`, `v1.27.3-gke.100` or `v1.30+` into (major, minor).
pub fn parse_version(git_version: &str) -> Option<(u32, u32)> {
    let v = git_version.strip_prefix('v').unwrap_or(git_version);
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor_raw = parts.next()?;
    let digits: String = minor_raw.chars().take_while(char::is_ascii_digit).collect();
    Some((major, digits.parse().ok()?))
}

pub struct ApiCheck;

pub const CHECK: &str = "kubernetes-api";

fn finding(
    reason: &'static str,
    severity: Severity,
    expected: String,
    actual: String,
    message: String,
    hint: &str,
) -> Finding {
    Finding {
        check: CHECK,
        reason,
        severity,
        object: ObjectRef::cluster("kubernetes-api"),
        expected,
        actual,
        remediable: false,
        message,
        hint: Some(hint.to_string()),
    }
}

impl Check for ApiCheck {
    fn name(&self) -> &'static str {
        CHECK
    }

    fn title(&self) -> &'static str {
        "Kubernetes API"
    }

    fn inputs(&self) -> &'static [Resource] {
        &[Resource::ApiProbe, Resource::Watches, Resource::Leadership]
    }

    fn evaluate(&self, view: &View<'_>) -> Evaluation {
        let probe = view.api;
        let mut items = vec![reach_item(CHECK, probe)];
        if let Some(Ok(version)) = &probe.server_version {
            let desc = format!("Kubernetes version {version} is supported (>= 1.{MIN_MINOR})");
            match parse_version(version) {
                Some((1, minor)) if minor >= MIN_MINOR => items.push(Item::pass(desc)),
                _ => items.push(Item::finding(
                    desc,
                    finding(
                        "UnsupportedKubernetesVersion",
                        Severity::Warning,
                        format!(">= v1.{MIN_MINOR}"),
                        version.clone(),
                        format!(
                            "Kubernetes {version} is older than v1.{MIN_MINOR} or unrecognised; results may be wrong"
                        ),
                        "upgrade the cluster, or run an older meshkeeper",
                    ),
                )),
            }
        }
        items.extend(permission_items(CHECK, &probe.permissions, "meshkeeper", |p| {
            format!(
                "grant it in the chart's RBAC (needed by {}); check with: kubectl auth can-i {} {} --as=system:serviceaccount:<namespace>:<serviceaccount>",
                p.why, p.verb, p.resource
            )
        }));
        health_items(view, &mut items);
        Evaluation::report(CheckReport { check: CHECK, title: self.title(), items })
    }
}

/// "can reach the Kubernetes API": a pass, `ApiUnreachable` (an error), or skipped before the
/// first probe.
pub fn reach_item(check: &'static str, probe: &ApiProbe) -> Item {
    let desc = "can reach the Kubernetes API";
    match &probe.server_version {
        None => Item::skipped(desc, "not probed yet"),
        Some(Ok(_)) => Item::pass(desc),
        Some(Err(e)) => Item::finding(
            desc,
            Finding {
                check,
                ..finding(
                    "ApiUnreachable",
                    Severity::Error,
                    "the API server answers".into(),
                    e.clone(),
                    format!("cannot reach the Kubernetes API: {e}"),
                    "check --kubeconfig/--context, or the pod's network policy and service account token",
                )
            },
        ),
    }
}

/// One item per access review: a pass where allowed, a `PermissionDenied` error naming `who`
/// and why it is needed where denied (with `hint`), skipped where the review could not be made.
pub fn permission_items(
    check: &'static str,
    results: &[PermissionResult],
    who: &str,
    hint: impl Fn(&Permission) -> String,
) -> Vec<Item> {
    results
        .iter()
        .map(|r| {
            let (p, desc) = (&r.permission, format!("can {}", r.permission.describe()));
            match &r.allowed {
                Ok(true) => Item::pass(desc),
                Ok(false) => Item::finding(
                    desc,
                    Finding {
                        check,
                        object: ObjectRef::cluster(&format!("rbac:{}", p.describe())),
                        ..finding(
                            "PermissionDenied",
                            Severity::Error,
                            "allowed".into(),
                            "denied".into(),
                            format!("{who} may not {} ({})", p.describe(), p.why),
                            &hint(p),
                        )
                    },
                ),
                Err(e) => Item::skipped(desc, format!("could not ask: {e}")),
            }
        })
        .collect()
}

/// The watches and leader election, as items.
fn health_items(view: &View<'_>, items: &mut Vec<Item>) {
    for (resource, w) in &view.health.watches {
        let desc = format!("the {resource} watch lists and stays up");
        match &w.error {
            None if w.listed => items.push(Item::pass(desc)),
            None => items.push(Item::skipped(desc, "first list in progress")),
            Some(e) => {
                let denied = matches!(e.code, Some(401 | 403));
                let (reason, severity, hint) = if denied {
                    (
                        "WatchForbidden",
                        Severity::Error,
                        format!(
                            "grant list and watch on {resource} in the chart's ClusterRole; check with: kubectl auth can-i watch {resource} --as=system:serviceaccount:<namespace>:<serviceaccount>"
                        ),
                    )
                } else {
                    (
                        "WatchFailing",
                        if w.listed { Severity::Warning } else { Severity::Error },
                        "check the API server's health and the network path to it; meshkeeper retries with backoff"
                            .to_string(),
                    )
                };
                let effect = if w.listed {
                    "meshkeeper's view of them may be stale; repairs that depend on it are held"
                } else {
                    "meshkeeper cannot see them: nothing that depends on them is checked or repaired"
                };
                items.push(Item::finding(
                    desc,
                    Finding {
                        object: ObjectRef::cluster(&format!("watch:{resource}")),
                        ..finding(
                            reason,
                            severity,
                            "listing and watching".into(),
                            e.message.clone(),
                            format!("the {resource} watch fails: {}; {effect}", e.message),
                            &hint,
                        )
                    },
                ));
            }
        }
    }
    let le = &view.settings.leader_election;
    let lease = format!("{}/{}", le.namespace, le.lease_name);
    let desc = format!("can take part in leader election on Lease {lease}");
    match &view.health.leader {
        LeaderObservation::Starting => items.push(Item::skipped(desc, "not started yet")),
        LeaderObservation::Disabled => {
            items.push(Item::pass("leader election is disabled: this replica acts (run one replica only)"))
        }
        LeaderObservation::Leading { .. } => items.push(Item::pass(format!("{desc} (leader)"))),
        LeaderObservation::Following { holder, .. } => items.push(Item::pass(format!(
            "{desc} (follower; leader: {})",
            holder.clone().unwrap_or_else(|| "none".into())
        ))),
        LeaderObservation::Failing { error, code, namespace_missing, .. } => {
            let (reason, severity, hint) = if *namespace_missing {
                (
                    "LeaseNamespaceMissing",
                    Severity::Error,
                    format!(
                        "create it (kubectl create namespace {}), or set leader_election.namespace to the namespace meshkeeper runs in (the Helm chart sets it to the release namespace)",
                        le.namespace
                    ),
                )
            } else if matches!(code, Some(401 | 403)) {
                (
                    "LeaseForbidden",
                    Severity::Error,
                    format!(
                        "grant get, create and update on leases.coordination.k8s.io in {} (the chart's Role does)",
                        le.namespace
                    ),
                )
            } else {
                (
                    "LeaderElectionFailing",
                    Severity::Warning,
                    "check the API server's health; meshkeeper retries with backoff".to_string(),
                )
            };
            items.push(Item::finding(
                desc,
                Finding {
                    object: ObjectRef::cluster(&format!("lease:{lease}")),
                    ..finding(
                        reason,
                        severity,
                        "the Lease can be read and written".into(),
                        error.clone(),
                        format!(
                            "cannot take part in leader election on Lease {lease}: {error}; meshkeeper keeps watching and reporting but repairs nothing until it can lead"
                        ),
                        &hint,
                    )
                },
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Snapshot;
    use crate::config::Profile;
    use crate::findings::Outcome;

    fn run(probe: &ApiProbe) -> CheckReport {
        run_with(probe, &Default::default())
    }

    fn run_with(probe: &ApiProbe, health: &crate::checks::Health) -> CheckReport {
        let settings = Settings::defaults(Profile::AsmOnprem);
        let snapshot = Snapshot::default();
        ApiCheck.evaluate(&View::of(&settings, probe, &snapshot, health, 0)).report
    }

    #[test]
    fn a_forbidden_watch_and_a_missing_lease_namespace_are_errors_naming_the_fix() {
        use crate::state::{WatchError, WatchStatus};
        let mut health = crate::checks::Health::default();
        health.watches.insert("namespaces", WatchStatus { listed: true, ..Default::default() });
        health.watches.insert(
            "pods",
            WatchStatus {
                listed: false,
                error: Some(WatchError {
                    message: "list failed: pods is forbidden: User \"system:serviceaccount:meshkeeper:meshkeeper\" cannot list resource \"pods\" in API group \"\" at the cluster scope (403 Forbidden)".into(),
                    code: Some(403),
                    since: 1,
                }),
                ..Default::default()
            },
        );
        health.watches.insert(
            "services",
            WatchStatus {
                listed: true,
                error: Some(WatchError {
                    message: "watch failed: cannot reach the API server: connection refused".into(),
                    code: None,
                    since: 1,
                }),
                ..Default::default()
            },
        );
        health.leader = LeaderObservation::Failing {
            lease: "meshkeeper/meshkeeper".into(),
            error: "namespaces \"meshkeeper\" not found (404 NotFound)".into(),
            code: Some(404),
            namespace_missing: true,
        };
        let r = run_with(&ApiProbe::default(), &health);
        let f: Vec<_> = r.findings().map(|f| (f.reason, f.severity, f.object.name.as_str())).collect();
        assert_eq!(
            f,
            [
                ("WatchForbidden", Severity::Error, "watch:pods"),
                ("WatchFailing", Severity::Warning, "watch:services"),
                ("LeaseNamespaceMissing", Severity::Error, "lease:meshkeeper/meshkeeper"),
            ]
        );
        let lease = r.findings().find(|f| f.reason == "LeaseNamespaceMissing").unwrap();
        assert!(lease.message.contains("namespaces \"meshkeeper\" not found (404 NotFound)"), "{}", lease.message);
        assert!(lease.hint.as_deref().unwrap().contains("kubectl create namespace meshkeeper"));
        assert!(lease.hint.as_deref().unwrap().contains("leader_election.namespace"));
        assert!(r.findings().all(|f| !f.message.contains("Status {")), "no Debug output");
    }

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("v1.36.0"), Some((1, 36)));
        assert_eq!(parse_version("v1.27.3-gke.100"), Some((1, 27)));
        assert_eq!(parse_version("v1.30+"), Some((1, 30)));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn unreachable_api_is_an_error() {
        let r = run(&ApiProbe { server_version: Some(Err("connection refused".into())), ..Default::default() });
        let f: Vec<_> = r.findings().collect();
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].reason, f[0].severity), ("ApiUnreachable", Severity::Error));
    }

    #[test]
    fn old_version_warns_and_supported_passes() {
        let r = run(&ApiProbe { server_version: Some(Ok("v1.23.4".into())), ..Default::default() });
        assert_eq!(r.findings().map(|f| f.reason).collect::<Vec<_>>(), ["UnsupportedKubernetesVersion"]);
        let r = run(&ApiProbe { server_version: Some(Ok("v1.36.0".into())), ..Default::default() });
        assert_eq!(r.findings().count(), 0);
        assert_eq!(r.items.len(), 3, "reachable, version, leader election (not started yet)");
    }

    #[test]
    fn denied_permission_is_an_error_naming_it_and_unknown_is_skipped() {
        let s = Settings::defaults(Profile::AsmOnprem);
        let perms = required_permissions(&s);
        let results: Vec<_> = perms
            .iter()
            .enumerate()
            .map(|(i, p)| PermissionResult {
                permission: p.clone(),
                allowed: match i {
                    0 => Ok(false),
                    1 => Err("timeout".into()),
                    _ => Ok(true),
                },
            })
            .collect();
        let r =
            run(&ApiProbe { server_version: Some(Ok("v1.36.0".into())), permissions: results, ..Default::default() });
        let f: Vec<_> = r.findings().collect();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].message, "meshkeeper may not list namespaces (injection policy and re-injection: namespaces)");
        assert!(matches!(r.items[3].outcome, Outcome::Skipped { .. }));
        assert_eq!(r.items[3].description, "can list mutatingwebhookconfigurations.admissionregistration.k8s.io");
    }

    #[test]
    fn required_permissions_follow_the_settings() {
        let mut s = Settings::defaults(Profile::AsmOnprem);
        let describe = |s: &Settings| required_permissions(s).iter().map(Permission::describe).collect::<Vec<_>>();
        assert!(!describe(&s).contains(&"patch namespaces".to_string()), "audit mode needs no patch");
        assert!(describe(&s).contains(&"update leases.coordination.k8s.io/meshkeeper in meshkeeper".to_string()));
        s.injection.mode = Mode::Enforce;
        s.leader_election.enabled = false;
        s.gateway.repair = true;
        let d = describe(&s);
        assert!(d.contains(&"patch namespaces".to_string()));
        assert!(d.contains(&"patch services/istio-ingressgateway in istio-system".to_string()));
        assert!(!d.iter().any(|p| p.contains("leases")));
        assert!(d.contains(&"list statefulsets.apps".to_string()), "re-injection (audit) reads workloads");
        assert!(d.contains(&"list configmaps/istio-sidecar-injector in istio-system".to_string()));
        assert!(!d.iter().any(|p| p.starts_with("patch deployments")), "audit mode restarts nothing");
        s.reinjection.mode = Mode::Enforce;
        s.reinjection.evict_on_delete = true;
        let d = describe(&s);
        assert!(d.contains(&"patch deployments.apps".to_string()));
        assert!(d.contains(&"create pods/eviction".to_string()));
        s.reinjection.mode = Mode::Off;
        s.control_plane.enabled = false;
        assert!(!describe(&s).iter().any(|p| p.contains("statefulsets")), "only what the registered checks read");
    }
}
