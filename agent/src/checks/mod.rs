//! Checks: pure functions from the cluster state the caches hold to findings.
//!
//! ```text
//!  caches + probes ──► View ──► Check::evaluate ──► CheckReport (items: pass / skipped / finding)
//! ```
//! Each check declares which cached resources it reads, so a change re-evaluates only the
//! checks that depend on it. No check does I/O.

pub mod api;
pub mod control_plane;
pub mod gateway;
pub mod injection;
pub mod writes;

use std::collections::BTreeSet;

use crate::actuator::Action;
use crate::cache::{
    DeploymentInfo, Guards, Index, NamespaceInfo, NodeInfo, PodInfo, ServiceInfo, Snapshot, WebhookConfigInfo,
};
use crate::config::Settings;
use crate::findings::CheckReport;
use crate::state::ActionRecord;

pub use api::{ApiProbe, Permission, PermissionResult};

/// The inputs checks read: each watched resource (also the `resource` label of watch
/// metrics) and the API probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    Namespaces,
    /// MutatingWebhookConfigurations.
    Webhooks,
    Deployments,
    Pods,
    Services,
    Nodes,
    /// The actuator's record of recent actions (the gateway pin counts its repairs).
    Actions,
    /// The result of asking the API server (version, permissions).
    ApiProbe,
}

impl Resource {
    pub const ALL: &'static [Resource] = &[
        Resource::Namespaces,
        Resource::Webhooks,
        Resource::Deployments,
        Resource::Pods,
        Resource::Services,
        Resource::Nodes,
        Resource::Actions,
        Resource::ApiProbe,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Namespaces => "namespaces",
            Resource::Webhooks => "mutatingwebhookconfigurations",
            Resource::Deployments => "deployments",
            Resource::Pods => "pods",
            Resource::Services => "services",
            Resource::Nodes => "nodes",
            Resource::Actions => "actions",
            Resource::ApiProbe => "api_probe",
        }
    }
}

/// Read-only view of everything the checks may look at.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub settings: &'a Settings,
    pub api: &'a ApiProbe,
    pub namespaces: &'a Index<NamespaceInfo>,
    pub webhooks: &'a Index<WebhookConfigInfo>,
    pub deployments: &'a Index<DeploymentInfo>,
    pub pods: &'a Index<PodInfo>,
    pub services: &'a Index<ServiceInfo>,
    pub nodes: &'a Index<NodeInfo>,
    /// Unix seconds "now" (certificate expiry, restart windows).
    pub now: i64,
    /// What the actuator did recently (oldest first).
    pub recent_actions: &'a [ActionRecord],
}

impl<'a> View<'a> {
    /// A view over locked caches.
    pub fn locked(
        settings: &'a Settings,
        api: &'a ApiProbe,
        g: &'a Guards<'_>,
        now: i64,
        recent_actions: &'a [ActionRecord],
    ) -> Self {
        View {
            settings,
            api,
            namespaces: &g.namespaces,
            webhooks: &g.webhooks,
            deployments: &g.deployments,
            pods: &g.pods,
            services: &g.services,
            nodes: &g.nodes,
            now,
            recent_actions,
        }
    }

    /// A view over owned indexes.
    pub fn of(settings: &'a Settings, api: &'a ApiProbe, s: &'a Snapshot, now: i64) -> Self {
        View {
            settings,
            api,
            namespaces: &s.namespaces,
            webhooks: &s.webhooks,
            deployments: &s.deployments,
            pods: &s.pods,
            services: &s.services,
            nodes: &s.nodes,
            now,
            recent_actions: &[],
        }
    }
}

/// One check: a name (metric label), a title (report heading), its inputs and its logic.
pub trait Check: Send + Sync {
    fn name(&self) -> &'static str;
    fn title(&self) -> &'static str;
    /// Cached resources it reads; a change to one of them re-evaluates it.
    fn inputs(&self) -> &'static [Resource];
    fn evaluate(&self, view: &View<'_>) -> CheckReport;
    /// The writes that would repair this report's remediable findings (enforce mode only);
    /// report-only checks keep the default.
    fn plan(&self, _view: &View<'_>, _report: &CheckReport) -> Vec<Action> {
        Vec::new()
    }
}

/// One check's evaluation and plan.
#[derive(Debug)]
pub struct Evaluation {
    pub report: CheckReport,
    pub actions: Vec<Action>,
}

/// Evaluates the checks that read a changed input (all of them when `dirty` is None).
pub fn evaluate(checks: &[Box<dyn Check>], view: &View<'_>, dirty: Option<&BTreeSet<Resource>>) -> Vec<Evaluation> {
    checks
        .iter()
        .filter(|c| dirty.is_none_or(|d| c.inputs().iter().any(|r| d.contains(r))))
        .map(|c| {
            let report = c.evaluate(view);
            let actions = c.plan(view, &report);
            Evaluation { report, actions }
        })
        .collect()
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
    checks.push(Box::new(writes::WritesCheck));
    checks
}
