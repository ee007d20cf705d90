//! Checks: pure functions from the cluster state the caches hold to findings.
//!
//! ```text
//!  caches + probes ──► View ──► Check::evaluate ──► Evaluation { report (pass / skipped / finding),
//!                                                               remedies (what would repair it) }
//! ```
//! Each check declares which cached resources it reads, so a change re-evaluates only the
//! checks that depend on it, and a check runs only once every cache it reads has listed
//! (a half-filled cache would report objects as missing). Checks propose remedies; whether
//! and when they happen is the planner's decision. No check does I/O.

pub mod api;
pub mod control_plane;
pub mod gateway;
pub mod guide;
pub mod injection;
pub mod precheck;
pub mod reinjection;

use std::collections::{BTreeMap, BTreeSet};

use crate::cache::{
    DeploymentInfo, Guards, Index, InjectorConfig, NamespaceInfo, NodeInfo, PodInfo, ReplicaSetInfo, ServiceInfo,
    SetInfo, Snapshot, WebhookConfigInfo,
};
use crate::change::{Remedy, RestartInput};
use crate::config::Settings;
use crate::findings::CheckReport;
use crate::state::{LeaderObservation, WatchStatus};

pub use api::{ApiProbe, Permission, PermissionResult};

/// The inputs checks read: each watched resource (also the `resource` label of watch
/// metrics) and the API probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    Namespaces,
    /// MutatingWebhookConfigurations.
    Webhooks,
    Deployments,
    ReplicaSets,
    StatefulSets,
    DaemonSets,
    Pods,
    Services,
    Nodes,
    /// The injector's ConfigMap.
    InjectorConfig,
    /// The actuator finished an action (the planner re-plans).
    Actions,
    /// The result of asking the API server (version, permissions).
    ApiProbe,
    /// The state of the watches themselves (listed, failing and why).
    Watches,
    /// What the leader elector sees (leading, following, failing and why).
    Leadership,
}

impl Resource {
    pub const ALL: &'static [Resource] = &[
        Resource::Namespaces,
        Resource::Webhooks,
        Resource::Deployments,
        Resource::ReplicaSets,
        Resource::StatefulSets,
        Resource::DaemonSets,
        Resource::Pods,
        Resource::Services,
        Resource::Nodes,
        Resource::InjectorConfig,
        Resource::Actions,
        Resource::ApiProbe,
        Resource::Watches,
        Resource::Leadership,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Namespaces => "namespaces",
            Resource::Webhooks => "mutatingwebhookconfigurations",
            Resource::Deployments => "deployments",
            Resource::ReplicaSets => "replicasets",
            Resource::StatefulSets => "statefulsets",
            Resource::DaemonSets => "daemonsets",
            Resource::InjectorConfig => "configmaps",
            Resource::Pods => "pods",
            Resource::Services => "services",
            Resource::Nodes => "nodes",
            Resource::Actions => "actions",
            Resource::ApiProbe => "api_probe",
            Resource::Watches => "watches",
            Resource::Leadership => "leadership",
        }
    }

    /// (API group, plural) of a resource fed by a watch.
    pub fn api(self) -> Option<(&'static str, &'static str)> {
        Some(match self {
            Resource::Namespaces => ("", "namespaces"),
            Resource::Webhooks => ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
            Resource::Deployments => ("apps", "deployments"),
            Resource::ReplicaSets => ("apps", "replicasets"),
            Resource::StatefulSets => ("apps", "statefulsets"),
            Resource::DaemonSets => ("apps", "daemonsets"),
            Resource::Pods => ("", "pods"),
            Resource::Services => ("", "services"),
            Resource::Nodes => ("", "nodes"),
            Resource::InjectorConfig => ("", "configmaps"),
            _ => return None,
        })
    }

    /// Whether it is fed by a watch (a cache), as opposed to the agent's own observations.
    pub fn is_cache(self) -> bool {
        !matches!(self, Resource::Actions | Resource::ApiProbe | Resource::Watches | Resource::Leadership)
    }
}

/// The agent's view of its own machinery: each watch, and leader election.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    pub watches: BTreeMap<&'static str, WatchStatus>,
    pub leader: LeaderObservation,
}

/// What changed since the last evaluation: per resource, the namespaces of the objects that
/// changed (for Namespaces: their names), or None when that is not known (a re-list, too many
/// to track). A check may use it to re-evaluate only what changed (the re-injection check does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub namespaces: BTreeMap<Resource, Option<BTreeSet<String>>>,
}

/// Read-only view of everything the checks may look at.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub settings: &'a Settings,
    pub api: &'a ApiProbe,
    pub namespaces: &'a Index<NamespaceInfo>,
    pub webhooks: &'a Index<WebhookConfigInfo>,
    pub deployments: &'a Index<DeploymentInfo>,
    pub replicasets: &'a Index<ReplicaSetInfo>,
    pub statefulsets: &'a Index<SetInfo>,
    pub daemonsets: &'a Index<SetInfo>,
    pub injector: &'a Index<InjectorConfig>,
    pub pods: &'a Index<PodInfo>,
    pub services: &'a Index<ServiceInfo>,
    pub nodes: &'a Index<NodeInfo>,
    /// The watches' and the leader elector's state.
    pub health: &'a Health,
    /// Unix seconds "now" (certificate expiry, restart windows).
    pub now: i64,
    /// What changed since the last evaluation; None: unknown (evaluate everything).
    pub changes: Option<&'a Changes>,
}

impl<'a> View<'a> {
    /// A view over locked caches.
    pub fn locked(settings: &'a Settings, api: &'a ApiProbe, g: &'a Guards<'_>, health: &'a Health, now: i64) -> Self {
        View {
            settings,
            api,
            namespaces: &g.namespaces,
            webhooks: &g.webhooks,
            deployments: &g.deployments,
            replicasets: &g.replicasets,
            statefulsets: &g.statefulsets,
            daemonsets: &g.daemonsets,
            injector: &g.injector,
            pods: &g.pods,
            services: &g.services,
            nodes: &g.nodes,
            health,
            now,
            changes: None,
        }
    }

    /// The same view, knowing what changed since the last evaluation.
    pub fn with_changes(self, changes: &'a Changes) -> Self {
        View { changes: Some(changes), ..self }
    }

    /// A view over owned indexes.
    pub fn of(settings: &'a Settings, api: &'a ApiProbe, s: &'a Snapshot, health: &'a Health, now: i64) -> Self {
        View {
            settings,
            api,
            namespaces: &s.namespaces,
            webhooks: &s.webhooks,
            deployments: &s.deployments,
            replicasets: &s.replicasets,
            statefulsets: &s.statefulsets,
            daemonsets: &s.daemonsets,
            injector: &s.injector,
            pods: &s.pods,
            services: &s.services,
            nodes: &s.nodes,
            health,
            now,
            changes: None,
        }
    }
}

/// One check: a name (metric label), a title (report heading), its inputs and its logic.
pub trait Check: Send + Sync {
    fn name(&self) -> &'static str;
    fn title(&self) -> &'static str;
    /// Cached resources it reads; a change to one of them re-evaluates it.
    fn inputs(&self) -> &'static [Resource];
    fn evaluate(&self, view: &View<'_>) -> Evaluation;
}

/// One check's evaluation: its report and what it proposes (whatever the mode): field
/// remedies, and (the re-injection check) restart candidates with the facts their planner needs.
#[derive(Debug)]
pub struct Evaluation {
    pub report: CheckReport,
    pub remedies: Vec<Remedy>,
    pub restarts: Option<RestartInput>,
    /// Gauge samples computed during the evaluation (exported at scrape time as they are, so
    /// no scrape repeats work proportional to the cluster).
    pub gauges: Option<Vec<crate::metrics::Sample>>,
}

impl Evaluation {
    /// A report-only evaluation.
    pub fn report(report: CheckReport) -> Self {
        Evaluation { report, remedies: Vec::new(), restarts: None, gauges: None }
    }

    /// A report with field remedies.
    pub fn with_remedies(report: CheckReport, remedies: Vec<Remedy>) -> Self {
        Evaluation { report, remedies, restarts: None, gauges: None }
    }
}

/// Evaluates the checks that read a changed input (all of them when `dirty` is None), among
/// those whose every cached input has listed (`listed`).
pub fn evaluate(
    checks: &[Box<dyn Check>],
    view: &View<'_>,
    dirty: Option<&BTreeSet<Resource>>,
    listed: impl Fn(Resource) -> bool,
) -> Vec<Evaluation> {
    checks
        .iter()
        .filter(|c| dirty.is_none_or(|d| c.inputs().iter().any(|r| d.contains(r))))
        .filter(|c| c.inputs().iter().all(|r| !r.is_cache() || listed(*r)))
        .map(|c| c.evaluate(view))
        .collect()
}

/// Every cached resource the registered checks read: what the daemon watches.
pub fn watched(checks: &[Box<dyn Check>]) -> BTreeSet<Resource> {
    checks.iter().flat_map(|c| cache_inputs(c.as_ref())).collect()
}

/// The cached resources a check reads.
pub fn cache_inputs(check: &dyn Check) -> Vec<Resource> {
    check.inputs().iter().copied().filter(|r| r.is_cache()).collect()
}

/// Names of the registered checks (labels of `meshkeeper_findings`).
pub fn names(checks: &[Box<dyn Check>]) -> Vec<&'static str> {
    checks.iter().map(|c| c.name()).collect()
}

/// Every check the agent runs, in report order.
pub fn registry(settings: &Settings) -> Vec<Box<dyn Check>> {
    let mut checks: Vec<Box<dyn Check>> = vec![Box::new(api::ApiCheck)];
    if settings.injection.mode != crate::config::Mode::Off {
        checks.push(Box::new(injection::InjectionCheck));
    }
    if settings.control_plane.enabled {
        checks.push(Box::new(control_plane::ControlPlaneCheck));
    }
    if settings.gateway.mode != crate::config::GatewayMode::Off {
        checks.push(Box::new(gateway::GatewayCheck));
    }
    if settings.reinjection.mode != crate::config::Mode::Off {
        checks.push(Box::new(reinjection::ReinjectionCheck::default()));
    }
    checks
}
