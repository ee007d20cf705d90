//! The actuator: the only place that writes to the cluster. It acts only as leader, only
//! once the caches are synced, only while not shutting down; every write takes a token from
//! the client-side bucket, is sent with field manager `meshkeeper` (and `dryRun=All` in
//! dry-run mode), is retried with backoff on 429/5xx, and is recorded (metrics, `/status`,
//! an Event on the object). A 409 is not retried blindly: the planner re-plans on fresh state.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::ApiResource;
use serde_json::Value;

use crate::findings::ObjectRef;
use crate::metrics::Metrics;
use crate::ratelimit::WriteLimiter;
use crate::report::events::{EventRequest, EventSink};
use crate::state::{ActionRecord, AgentState, unix_now};

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "meshkeeper";

/// A patch body, by patch type.
#[derive(Debug, Clone, PartialEq)]
pub enum PatchBody {
    Merge(Value),
    Strategic(Value),
    Json(json_patch::Patch),
    /// Server-side apply (forced: meshkeeper owns what it pins).
    Apply(Value),
}

/// A write the planner decided on.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// Metric label, e.g. `restore_injection_label`.
    pub kind: &'static str,
    /// CamelCase Event reason on success, e.g. `InjectionLabelRestored`.
    pub reason: &'static str,
    pub object: ObjectRef,
    pub description: String,
    pub resource: ApiResource,
    pub patch: PatchBody,
    /// The field repaired, for per-field metrics (e.g. `node_port:http2`).
    pub field: Option<String>,
    /// The object's resourceVersion in the cache the plan was made from. Once an action was
    /// carried out on a version, actions planned from that same version are stale.
    pub observed: Option<String>,
}

/// How an action ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionResult {
    Success,
    DryRun,
    /// 409: the object changed meanwhile; re-plan on fresh state.
    Conflict,
    /// 403: RBAC denies it.
    Forbidden(String),
    /// 404: the object is gone.
    NotFound,
    Error(String),
    /// Not attempted, and why (not leader, not synced, shutting down).
    NotAttempted(&'static str),
}

impl ActionResult {
    pub fn label(&self) -> &'static str {
        match self {
            ActionResult::Success => "success",
            ActionResult::DryRun => "dry_run",
            ActionResult::Conflict => "conflict",
            ActionResult::Forbidden(_) => "forbidden",
            ActionResult::NotFound => "not_found",
            ActionResult::Error(_) => "error",
            ActionResult::NotAttempted(_) => "not_attempted",
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self, ActionResult::Success | ActionResult::DryRun)
    }
}

/// A low-cardinality label for a kube error (metrics `reason`).
pub fn error_reason(e: &kube::Error) -> &'static str {
    match e {
        kube::Error::Api(s) => match s.code {
            400 => "bad_request",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "not_found",
            409 => "conflict",
            410 => "gone",
            422 => "invalid",
            429 => "throttled",
            500..=599 => "server_error",
            _ => "api_error",
        },
        kube::Error::HyperError(_) | kube::Error::Service(_) => "connection",
        kube::Error::SerdeError(_) => "decode",
        _ => "other",
    }
}

fn retryable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 429 || s.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Executes actions against the API.
pub struct Actuator {
    client: Client,
    limiter: Arc<WriteLimiter>,
    agent: Arc<AgentState>,
    metrics: Metrics,
    events: EventSink,
    dry_run: bool,
    backoff: ExponentialBuilder,
}

impl Actuator {
    pub fn new(
        client: Client,
        limiter: Arc<WriteLimiter>,
        agent: Arc<AgentState>,
        metrics: Metrics,
        events: EventSink,
        dry_run: bool,
    ) -> Self {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(2))
            .with_max_times(3)
            .with_jitter();
        Actuator { client, limiter, agent, metrics, events, dry_run, backoff }
    }

    /// Gates, writes (with retries on 429/5xx), records. Never panics, never loops forever.
    pub async fn execute(&self, action: &Action) -> ActionResult {
        let result = if !self.agent.is_leader() {
            ActionResult::NotAttempted("not the leader")
        } else if !self.agent.is_ready() {
            ActionResult::NotAttempted("caches not synced")
        } else {
            self.write(action).await
        };
        self.record(action, &result);
        result
    }

    async fn write(&self, action: &Action) -> ActionResult {
        let api: Api<DynamicObject> = match &action.object.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &action.resource),
            None => Api::all_with(self.client.clone(), &action.resource),
        };
        let mut params = PatchParams::apply(FIELD_MANAGER);
        params.force = matches!(action.patch, PatchBody::Apply(_));
        params.dry_run = self.dry_run;
        let attempt = || async {
            let waited = self.limiter.acquire().await;
            if !waited.is_zero() {
                self.metrics.write_throttled.with_label_values(&[action.kind]).inc();
            }
            let r = match &action.patch {
                PatchBody::Merge(v) => api.patch(&action.object.name, &params, &Patch::Merge(v)).await,
                PatchBody::Strategic(v) => api.patch(&action.object.name, &params, &Patch::Strategic(v)).await,
                PatchBody::Json(p) => api.patch(&action.object.name, &params, &Patch::<Value>::Json(p.clone())).await,
                PatchBody::Apply(v) => api.patch(&action.object.name, &params, &Patch::Apply(v)).await,
            };
            r.map(|_| ())
        };
        let outcome = attempt
            .retry(self.backoff)
            .when(retryable)
            .notify(|e, after| tracing::warn!(error = %e, retry_in = ?after, kind = action.kind, object = %action.object, "write failed; retrying"))
            .await;
        match outcome {
            Ok(()) if self.dry_run => ActionResult::DryRun,
            Ok(()) => ActionResult::Success,
            Err(kube::Error::Api(s)) if s.code == 409 => ActionResult::Conflict,
            Err(kube::Error::Api(s)) if s.code == 404 => ActionResult::NotFound,
            Err(kube::Error::Api(s)) if s.code == 403 => ActionResult::Forbidden(s.message.clone()),
            Err(e) => ActionResult::Error(e.to_string()),
        }
    }

    fn record(&self, action: &Action, result: &ActionResult) {
        if let ActionResult::NotAttempted(why) = result {
            tracing::debug!(kind = action.kind, object = %action.object, why, "action not attempted");
            return;
        }
        self.metrics.actions.with_label_values(&[action.kind, result.label()]).inc();
        if action.kind == crate::checks::injection::ACTION {
            self.metrics.label_repairs.with_label_values(&[result.label()]).inc();
        }
        if action.kind == crate::checks::gateway::ACTION {
            let field = action.field.as_deref().unwrap_or("unknown");
            self.metrics.gateway_repairs.with_label_values(&[field, result.label()]).inc();
        }
        let error = match result {
            ActionResult::Forbidden(m) | ActionResult::Error(m) => Some(m.clone()),
            ActionResult::Conflict => Some("the object changed meanwhile; will re-plan on fresh state".into()),
            ActionResult::NotFound => Some("the object no longer exists".into()),
            _ => None,
        };
        match &error {
            None => {
                tracing::info!(kind = action.kind, object = %action.object, result = result.label(), "{}", action.description)
            }
            Some(e) => {
                tracing::warn!(kind = action.kind, object = %action.object, result = result.label(), error = %e, "{}", action.description)
            }
        }
        self.agent.record_action(ActionRecord {
            at: unix_now(),
            action: action.kind.to_string(),
            object: action.object.to_string(),
            description: action.description.clone(),
            result: result.label().to_string(),
            error: error.clone(),
        });
        let (reason, warning, note) = match result {
            ActionResult::Success => (action.reason.to_string(), false, action.description.clone()),
            ActionResult::DryRun => (action.reason.to_string(), false, format!("dry run: {}", action.description)),
            _ => (
                format!("{}Failed", action.reason),
                true,
                format!("{}: {}", action.description, error.unwrap_or_default()),
            ),
        };
        self.events.send(EventRequest {
            object: action.object.clone(),
            warning,
            reason,
            action: action.kind.to_string(),
            note,
        });
    }
}

#[cfg(test)]
mod tests;
