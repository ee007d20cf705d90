//! The daemon's wiring (`meshkeeper run`): watchers feed caches, the evaluator runs the
//! checks whose inputs changed, reporters render findings, and the actuator (leader only)
//! carries out the plan.
//!
//! ```text
//!  watchers ─► caches ─► Dirty ─► evaluator ─► AgentState (findings: /status, metrics, logs)
//!  prober ──► ApiProbe ──┘            │  └──► Events (new findings, leader only)
//!                                     ▼
//!                         action queue (cooldown per object) ─► actuator ─► API
//! ```
//! Shutdown (SIGTERM/SIGINT): stop planning, let the in-flight write finish (at most
//! [`INFLIGHT_TIMEOUT`]), release the Lease, stop serving, exit 0.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::actuator::{Action, ActionResult, Actuator};
use crate::cache::{NamespaceInfo, WebhookConfigInfo};
use crate::checks::{self, ApiProbe, Check, Permission, PermissionResult, Resource, View, injection};
use crate::config::{Mode, Settings};
use crate::findings::ObjectRef;
use crate::http::{self, HttpState};
use crate::leader;
use crate::metrics::{Metrics, ScrapeGauges};
use crate::ratelimit::WriteLimiter;
use crate::report::{self, events::EventRequest, events::EventSink};
use crate::state::AgentState;
use crate::watch::{self, Dirty, Shared, WatchContext};

/// How long an in-flight write may take to finish at shutdown.
pub const INFLIGHT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Leader(#[from] leader::LeaderError),
    #[error("task {0} ended unexpectedly")]
    TaskEnded(&'static str),
    #[error("task {task} failed: {message}")]
    TaskFailed { task: &'static str, message: String },
}

/// Every cache the checks read.
#[derive(Clone, Default)]
pub struct Caches {
    pub namespaces: Shared<NamespaceInfo>,
    pub webhooks: Shared<WebhookConfigInfo>,
}

/// What the evaluator needs.
struct Evaluator {
    settings: Settings,
    checks: Vec<Box<dyn Check>>,
    caches: Caches,
    probe: Arc<RwLock<ApiProbe>>,
    agent: Arc<AgentState>,
    metrics: Metrics,
    events: EventSink,
    dirty: Arc<Dirty>,
    actions: mpsc::Sender<Vec<Action>>,
}

impl Evaluator {
    fn pass(&self, dirty: Option<&BTreeSet<Resource>>) {
        let evaluations = {
            let namespaces = self.caches.namespaces.read().unwrap_or_else(|p| p.into_inner());
            let webhooks = self.caches.webhooks.read().unwrap_or_else(|p| p.into_inner());
            let probe = self.probe.read().unwrap_or_else(|p| p.into_inner());
            let view = View { settings: &self.settings, api: &probe, namespaces: &namespaces, webhooks: &webhooks };
            let _t = self.metrics.time("evaluate");
            checks::evaluate(&self.checks, &view, dirty)
        };
        let mut planned = Vec::new();
        for ev in evaluations {
            let diff = self.agent.record_report(ev.report);
            report::log_diff(&diff);
            if self.agent.is_leader() {
                for f in &diff.appeared {
                    self.events.send(EventRequest::for_finding(f));
                }
            }
            planned.extend(ev.actions);
        }
        self.metrics.set_findings(&checks::names(&self.checks), &self.agent.findings());
        if !planned.is_empty() && self.actions.try_send(planned).is_err() {
            // The actuator is busy; the next pass re-plans whatever is still needed.
            self.metrics.reconcile_errors.with_label_values(&["evaluate", "action_queue_full"]).inc();
        }
        self.agent.beat();
    }

    async fn run(self, resync: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(resync);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let full = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => true,
                _ = self.dirty.changed() => false,
            };
            let dirty = self.dirty.take();
            self.pass(if full { None } else { Some(&dirty) });
        }
    }
}

/// Per-object cooldown after a failed write, so a denied or failing write is not hammered:
/// 1 s, doubling per failure, at most 5 minutes; cleared by a success.
#[derive(Debug, Default)]
pub struct Cooldown {
    failures: BTreeMap<(String, ObjectRef), (u32, Instant)>,
}

impl Cooldown {
    pub const MAX: Duration = Duration::from_secs(300);

    fn key(a: &Action) -> (String, ObjectRef) {
        (a.kind.to_string(), a.object.clone())
    }

    /// Whether the action may be attempted at `now`.
    pub fn ready(&self, a: &Action, now: Instant) -> bool {
        self.failures.get(&Self::key(a)).is_none_or(|(_, until)| now >= *until)
    }

    /// Records a result; returns when to re-plan if it failed.
    pub fn record(&mut self, a: &Action, result: &ActionResult, now: Instant) -> Option<Instant> {
        match result {
            ActionResult::Success | ActionResult::DryRun | ActionResult::NotFound => {
                self.failures.remove(&Self::key(a));
                None
            }
            ActionResult::NotAttempted(_) => None,
            ActionResult::Conflict | ActionResult::Forbidden(_) | ActionResult::Error(_) => {
                let entry = self.failures.entry(Self::key(a)).or_insert((0, now));
                entry.0 += 1;
                let delay = Duration::from_secs(1u64 << (entry.0 - 1).min(9)).min(Self::MAX);
                entry.1 = now + delay;
                Some(entry.1)
            }
        }
    }
}

async fn run_actuator(
    actuator: Actuator,
    mut rx: mpsc::Receiver<Vec<Action>>,
    dirty: Arc<Dirty>,
    shutdown: CancellationToken,
) {
    let mut cooldown = Cooldown::default();
    loop {
        let batch = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            batch = rx.recv() => match batch { Some(b) => b, None => break },
        };
        for action in batch {
            if shutdown.is_cancelled() {
                return;
            }
            if !cooldown.ready(&action, Instant::now()) {
                continue;
            }
            // NB: an in-flight write is not cancelled by shutdown, only bounded.
            let result = match tokio::time::timeout(INFLIGHT_TIMEOUT, actuator.execute(&action)).await {
                Ok(r) => r,
                Err(_) => ActionResult::Error(format!("no answer within {}s", INFLIGHT_TIMEOUT.as_secs())),
            };
            if let Some(at) = cooldown.record(&action, &result, Instant::now()) {
                // Re-plan on fresh state once the cooldown has passed.
                let dirty = dirty.clone();
                tokio::spawn(async move {
                    tokio::time::sleep_until(at).await;
                    Resource::ALL.iter().for_each(|r| dirty.mark(*r));
                });
            }
        }
    }
}

/// Asks the API server for its version and, by SelfSubjectAccessReview, for each permission.
pub async fn probe_api(client: &Client, permissions: &[Permission]) -> ApiProbe {
    let server_version = Some(client.apiserver_version().await.map(|v| v.git_version).map_err(|e| e.to_string()));
    if matches!(server_version, Some(Err(_))) {
        return ApiProbe { server_version, permissions: Vec::new() };
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
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let allowed = match api.create(&PostParams::default(), &review).await {
            Ok(r) => Ok(r.status.map(|s| s.allowed).unwrap_or(false)),
            Err(e) => Err(e.to_string()),
        };
        results.push(PermissionResult { permission: p.clone(), allowed });
    }
    ApiProbe { server_version, permissions: results }
}

async fn run_prober(
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
            fresh = probe_api(&client, &permissions) => fresh,
        };
        *probe.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        dirty.mark(Resource::ApiProbe);
    }
}

type Tasks = JoinSet<(&'static str, Result<(), String>)>;

/// Starts one watch task feeding `cache`.
fn spawn_watch<K, T>(
    tasks: &mut Tasks,
    api: Api<K>,
    resource: Resource,
    trim: fn(K) -> Option<T>,
    cache: &Shared<T>,
    ctx: &WatchContext,
    shutdown: &CancellationToken,
) where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    T: crate::cache::Cached,
{
    let (cache, ctx, token) = (cache.clone(), ctx.clone(), shutdown.clone());
    tasks.spawn(async move {
        watch::run(api, watcher::Config::default(), resource, trim, cache, ctx, token).await;
        (resource.as_str(), Ok(()))
    });
}

/// Gauges computed at scrape time from the caches: sizes, and the injection policy's view.
fn register_cache_gauges(metrics: &Metrics, caches: &Caches, settings: &Settings) {
    let c = caches.clone();
    metrics.register_scrape_gauges(ScrapeGauges::new(
        "meshkeeper_cache_objects",
        "Objects held in each cache (trimmed).",
        &["resource"],
        move || {
            let len = |n: usize| n as i64;
            vec![
                (vec![Resource::Namespaces.as_str().into()], len(c.namespaces.read().map(|i| i.len()).unwrap_or(0))),
                (vec![Resource::Webhooks.as_str().into()], len(c.webhooks.read().map(|i| i.len()).unwrap_or(0))),
            ]
        },
    ));
    if settings.injection.mode == Mode::Off {
        return;
    }
    let (nss, policy) = (caches.namespaces.clone(), settings.injection.clone());
    metrics.register_scrape_gauges(ScrapeGauges::new(
        "meshkeeper_namespaces",
        "Namespaces by injection-policy state.",
        &["state"],
        move || {
            let idx = nss.read().unwrap_or_else(|p| p.into_inner());
            let (states, _) = injection::tally(&idx, &policy);
            states.into_iter().map(|(s, n)| (vec![s.as_str().to_string()], n)).collect()
        },
    ));
    let (nss, policy) = (caches.namespaces.clone(), settings.injection.clone());
    metrics.register_scrape_gauges(ScrapeGauges::new(
        "meshkeeper_namespace_injection_compliant",
        "1 when an in-scope namespace carries the injection label the policy wants, else 0.",
        &["namespace"],
        move || {
            let idx = nss.read().unwrap_or_else(|p| p.into_inner());
            let (_, compliant) = injection::tally(&idx, &policy);
            compliant.into_iter().map(|(ns, ok)| (vec![ns], i64::from(ok))).collect()
        },
    ));
}

/// Runs the daemon until `shutdown` is cancelled (then returns Ok) or a task fails.
pub async fn run(settings: Settings, client: Client, shutdown: CancellationToken) -> Result<(), RunError> {
    let resync = Duration::from_secs(settings.resync_seconds);
    let metrics = Metrics::new();
    let agent = Arc::new(AgentState::new(settings.summary(), resync * 2 + Duration::from_secs(60)));
    let addr = settings.http.listen.0;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| RunError::Listen { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), listen = %local, config = %settings.summary(), "meshkeeper starting");

    let caches = Caches::default();
    register_cache_gauges(&metrics, &caches, &settings);
    let dirty = Arc::new(Dirty::default());
    let probe = Arc::new(RwLock::new(ApiProbe::default()));
    let identity = leader::identity(&settings.leader_election.identity);

    // Tasks that must live as long as the process; any that ends early is fatal.
    let work = shutdown.child_token();
    let mut tasks = Tasks::new();

    let (events, events_task) = if settings.events.enabled {
        let (sink, task) = report::events::spawn(client.clone(), identity.clone(), metrics.clone(), work.clone());
        (sink, Some(task))
    } else {
        (EventSink::disabled(metrics.clone()), None)
    };

    let wctx = WatchContext { agent: agent.clone(), metrics: metrics.clone(), dirty: dirty.clone() };
    if settings.injection.mode != Mode::Off {
        let nss: Api<Namespace> = Api::all(client.clone());
        spawn_watch(
            &mut tasks,
            nss,
            Resource::Namespaces,
            NamespaceInfo::from_object,
            &caches.namespaces,
            &wctx,
            &work,
        );
        let whs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
        spawn_watch(
            &mut tasks,
            whs,
            Resource::Webhooks,
            WebhookConfigInfo::from_object,
            &caches.webhooks,
            &wctx,
            &work,
        );
    }

    {
        let (client, settings, probe, dirty, token) =
            (client.clone(), settings.clone(), probe.clone(), dirty.clone(), work.clone());
        tasks.spawn(async move {
            run_prober(client, settings, probe, dirty, resync, token).await;
            ("api prober", Ok(()))
        });
    }

    let (action_tx, action_rx) = mpsc::channel(64);
    let evaluator = Evaluator {
        checks: checks::registry(&settings),
        settings: settings.clone(),
        caches: caches.clone(),
        probe: probe.clone(),
        agent: agent.clone(),
        metrics: metrics.clone(),
        events: events.clone(),
        dirty: dirty.clone(),
        actions: action_tx,
    };
    {
        let token = work.clone();
        tasks.spawn(async move {
            evaluator.run(resync, token).await;
            ("evaluator", Ok(()))
        });
    }

    let limiter = Arc::new(WriteLimiter::new(settings.client.write_qps, settings.client.write_burst));
    let actuator = Actuator::new(client.clone(), limiter, agent.clone(), metrics.clone(), events, settings.dry_run);
    let actuator_token = CancellationToken::new();
    let actuator_task = tokio::spawn(run_actuator(actuator, action_rx, dirty.clone(), actuator_token.clone()));

    // Leadership outlives the actuator at shutdown: its token is cancelled last.
    let leader_token = CancellationToken::new();
    {
        let (client, le, agent, metrics, token) =
            (client.clone(), settings.leader_election.clone(), agent.clone(), metrics.clone(), leader_token.clone());
        tasks.spawn(async move {
            let r = leader::run(client, le, identity, agent, metrics, token).await;
            ("leader election", r.map_err(|e| e.to_string()))
        });
    }

    let http_token = CancellationToken::new();
    let http_stop = http_token.clone();
    let http_state = HttpState { agent: agent.clone(), metrics: metrics.clone() };
    let mut http_task =
        tokio::spawn(
            async move { http::serve(listener, http_state, async move { http_stop.cancelled().await }).await },
        );

    let outcome = tokio::select! {
        _ = shutdown.cancelled() => Ok(()),
        ended = tasks.join_next() => Err(match ended {
            Some(Ok((task, Ok(())))) => RunError::TaskEnded(task),
            Some(Ok((task, Err(message)))) => RunError::TaskFailed { task, message },
            Some(Err(e)) => RunError::TaskFailed { task: "unknown", message: e.to_string() },
            None => RunError::TaskEnded("all"),
        }),
        r = &mut http_task => Err(RunError::TaskFailed { task: "http server", message: match r {
            Ok(Ok(())) => "stopped".into(), Ok(Err(e)) => e.to_string(), Err(e) => e.to_string() } }),
    };
    match &outcome {
        Ok(()) => tracing::info!("shutting down: no new actions; finishing in-flight work"),
        Err(e) => tracing::error!(error = %e, "shutting down after a failure"),
    }
    // 1. Stop planning and watching; 2. the actuator finishes its in-flight write (bounded);
    // 3. leadership is released; 4. HTTP stops.
    work.cancel();
    actuator_token.cancel();
    if tokio::time::timeout(INFLIGHT_TIMEOUT + Duration::from_secs(1), actuator_task).await.is_err() {
        tracing::warn!("the in-flight write did not finish in time");
    }
    leader_token.cancel();
    let mut leader_released = false;
    let deadline = Instant::now() + leader::RELEASE_TIMEOUT + Duration::from_secs(1);
    while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, tasks.join_next()).await {
        if let Ok(("leader election", _)) = joined {
            leader_released = true;
        }
    }
    tasks.abort_all();
    tracing::debug!(leader_released, "background tasks stopped");
    if let Some(t) = events_task {
        let _ = tokio::time::timeout(Duration::from_secs(1), t).await;
    }
    http_token.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(2), http_task).await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Namespace as Ns;
    use kube::core::ApiResource;

    fn action(ns: &str) -> Action {
        Action {
            kind: "k",
            reason: "R",
            object: ObjectRef::namespace(ns),
            description: String::new(),
            resource: ApiResource::erase::<Ns>(&()),
            patch: crate::actuator::PatchBody::Merge(serde_json::json!({})),
        }
    }

    #[test]
    fn cooldown_doubles_per_failure_and_clears_on_success() {
        let mut c = Cooldown::default();
        let t0 = Instant::now();
        let a = action("a");
        assert!(c.ready(&a, t0));
        assert_eq!(c.record(&a, &ActionResult::Forbidden("no".into()), t0), Some(t0 + Duration::from_secs(1)));
        assert!(!c.ready(&a, t0));
        assert!(c.ready(&action("b"), t0), "other objects are not held back");
        assert_eq!(c.record(&a, &ActionResult::Conflict, t0), Some(t0 + Duration::from_secs(2)));
        assert_eq!(c.record(&a, &ActionResult::Error("x".into()), t0), Some(t0 + Duration::from_secs(4)));
        for _ in 0..20 {
            c.record(&a, &ActionResult::Error("x".into()), t0);
        }
        assert!(c.ready(&a, t0 + Cooldown::MAX));
        assert_eq!(c.record(&a, &ActionResult::Success, t0), None);
        assert!(c.ready(&a, t0));
        assert_eq!(c.record(&a, &ActionResult::NotAttempted("not the leader"), t0), None);
    }
}
