//! The actuator: the only place that writes to the cluster. It knows actions, not checks.
//! It acts only as leader, only once the caches are synced; every write takes a token from
//! the client-side bucket, is sent with field manager `meshkeeper` (and `dryRun=All` in
//! dry-run mode), is retried with backoff on 500/502 and connection errors (429, 503 and 504
//! are retried inside the client, honouring `Retry-After`: see [`crate::client`]), and ends in
//! an [`Outcome`]. A 409, or a JSON patch whose `test` no longer holds (422 without causes), is
//! "changed meanwhile": never retried blindly. The actuator reads the object's version back,
//! and the planner re-decides: on the newer version the watch brings, or, when the object is
//! still at the version the plan saw (a transient conflict), after a short backoff.
//!
//! ```text
//!  Action ─► gates (leader, synced) ─► token bucket ─► PATCH (retry) ─► Outcome
//!                                                           409/422 ─► GET (re-read) ─┘
//! ```

pub mod ratelimit;

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::Value;

use crate::apierror;
use crate::change::FIELD_MANAGER;
use crate::metrics::Metrics;
use crate::plan::{Action, Operation, Outcome};
use crate::state::AgentState;

pub use ratelimit::WriteLimiter;

/// Errors the actuator retries itself: 500s that are not the client's to retry, and
/// transport errors. 429/503/504 reach here only after the client's own retries.
fn retryable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code >= 500 && !matches!(s.code, 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Maps the API's answer to an outcome.
pub fn outcome_of(result: Result<Option<String>, kube::Error>, dry_run: bool) -> Outcome {
    match result {
        Ok(_) if dry_run => Outcome::DryRun,
        Ok(resource_version) => Outcome::Done { resource_version },
        Err(kube::Error::Api(s)) if s.code == 409 || apierror::is_stale_json_patch(&s) => {
            Outcome::ChangedMeanwhile { current: None }
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Outcome::NotFound,
        Err(kube::Error::Api(s)) if s.code == 403 => Outcome::Forbidden(apierror::status_line(&s)),
        Err(e) => Outcome::Failed(apierror::one_line(&e)),
    }
}

/// Executes actions against the API.
pub struct Actuator {
    client: Client,
    limiter: Arc<WriteLimiter>,
    agent: Arc<AgentState>,
    metrics: Metrics,
    dry_run: bool,
    backoff: ExponentialBuilder,
}

impl Actuator {
    pub fn new(
        client: Client,
        limiter: Arc<WriteLimiter>,
        agent: Arc<AgentState>,
        metrics: Metrics,
        dry_run: bool,
    ) -> Self {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(2))
            .with_max_times(3)
            .with_jitter();
        Actuator { client, limiter, agent, metrics, dry_run, backoff }
    }

    /// Gates, writes (with retries on 429/5xx), returns the outcome. Never panics, never loops forever.
    pub async fn execute(&self, action: &Action) -> Outcome {
        if !self.agent.is_leader() {
            return Outcome::NotAttempted("not the leader");
        }
        if !self.agent.is_ready() {
            return Outcome::NotAttempted("caches not synced");
        }
        let result = match &action.operation {
            Operation::JsonPatch(ops) => self.json_patch(action, ops).await,
            Operation::Evict => return self.evict(action).await,
        };
        match outcome_of(result, self.dry_run) {
            Outcome::ChangedMeanwhile { .. } => Outcome::ChangedMeanwhile { current: self.reread(action).await },
            other => other,
        }
    }

    /// The object's resourceVersion now (None when it cannot be read): after a conflict, the
    /// planner compares it with the version its plan saw.
    async fn reread(&self, action: &Action) -> Option<String> {
        let api: Api<DynamicObject> = match &action.object.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &action.resource),
            None => Api::all_with(self.client.clone(), &action.resource),
        };
        match api.get_metadata(&action.object.name).await {
            Ok(meta) => meta.metadata.resource_version,
            Err(e) => {
                tracing::info!(error = %apierror::one_line(&e), object = %action.object, "cannot re-read after a conflict");
                None
            }
        }
    }

    /// An eviction: a 429 means a PodDisruptionBudget does not allow it now (never retried
    /// here: the planner tries again later).
    async fn evict(&self, action: &Action) -> Outcome {
        let Some(ns) = &action.object.namespace else { return Outcome::Failed("a pod without a namespace".into()) };
        let api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(self.client.clone(), ns);
        let waited = self.limiter.acquire().await;
        if !waited.is_zero() {
            self.metrics.write_throttled.with_label_values(&[action.kind]).inc();
        }
        let params = kube::api::EvictParams {
            delete_options: None,
            post_options: PostParams { dry_run: self.dry_run, field_manager: Some(FIELD_MANAGER.into()) },
        };
        match api.evict(&action.object.name, &params).await {
            Ok(_) if self.dry_run => Outcome::DryRun,
            Ok(_) => Outcome::Done { resource_version: None },
            Err(kube::Error::Api(s)) if s.code == 429 => Outcome::Throttled(apierror::status_line(&s)),
            Err(e) => outcome_of(Err(e), self.dry_run),
        }
    }

    async fn json_patch(&self, action: &Action, ops: &[Value]) -> Result<Option<String>, kube::Error> {
        let api: Api<DynamicObject> = match &action.object.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &action.resource),
            None => Api::all_with(self.client.clone(), &action.resource),
        };
        let patch: json_patch::Patch =
            serde_json::from_value(Value::Array(ops.to_vec())).map_err(kube::Error::SerdeError)?;
        let mut params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
        params.dry_run = self.dry_run;
        let attempt = || async {
            let waited = self.limiter.acquire().await;
            if !waited.is_zero() {
                self.metrics.write_throttled.with_label_values(&[action.kind]).inc();
            }
            api.patch(&action.object.name, &params, &Patch::<Value>::Json(patch.clone()))
                .await
                .map(|o| o.metadata.resource_version)
        };
        attempt
            .retry(self.backoff)
            .when(retryable)
            .notify(|e, after| {
                tracing::warn!(error = %apierror::one_line(e), retry_in = ?after, kind = action.kind, object = %action.object, "write failed; retrying")
            })
            .await
    }
}

#[cfg(test)]
mod tests;
