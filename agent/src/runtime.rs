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
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use kube::Client;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::actuator::{Action, ActionResult, Actuator};
use crate::cache::{Caches, DeploymentInfo, NamespaceInfo, NodeInfo, PodInfo, ServiceInfo, WebhookConfigInfo};
use crate::checks::control_plane::{self, MtlsObservation};
use crate::checks::{self, ApiProbe, Check, Permission, PermissionResult, Resource, View, gateway, injection};
use crate::config::{GatewayMode, Mode, Settings};
use crate::findings::ObjectRef;
use crate::http::{self, HttpState};
use crate::leader;
use crate::metrics::{Metrics, ScrapeGauges};
use crate::ratelimit::WriteLimiter;
use crate::report::{self, events::EventRequest, events::EventSink};
use crate::state::AgentState;
use crate::state::unix_now;
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
    /// Whether the last pass ran as leader (a new leader publishes Events for current findings).
    led: std::sync::atomic::AtomicBool,
}

impl Evaluator {
    /// One evaluation. Nothing is judged before every watch has listed (a half-filled cache
    /// would report objects as missing), and only the leader plans writes.
    fn pass(&self, dirty: Option<&BTreeSet<Resource>>) {
        self.agent.beat();
        if !self.agent.is_ready() {
            return;
        }
        let evaluations = {
            let actions = self.agent.recent_actions();
            let guards = self.caches.read();
            let probe = self.probe.read().unwrap_or_else(|p| p.into_inner());
            let view = View::locked(&self.settings, &probe, &guards, unix_now() as i64, &actions);
            let _t = self.metrics.time("evaluate");
            checks::evaluate(&self.checks, &view, dirty)
        };
        let leader = self.agent.is_leader();
        let newly_leader = leader && !self.led.swap(leader, std::sync::atomic::Ordering::SeqCst);
        if !leader {
            self.led.store(false, std::sync::atomic::Ordering::SeqCst);
        }
        let mut planned = Vec::new();
        for ev in evaluations {
            let diff = self.agent.record_report(ev.report);
            report::log_diff(&diff);
            if leader && !newly_leader {
                for f in &diff.appeared {
                    self.events.send(EventRequest::for_finding(f));
                }
            }
            if self.agent.is_leader() {
                planned.extend(ev.actions);
            }
        }
        if newly_leader {
            // Findings that appeared while another replica (or nobody) led got no Event from us.
            for f in self.agent.findings().iter() {
                self.events.send(EventRequest::for_finding(f));
            }
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
        let mut was_ready = false;
        loop {
            let full = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => true,
                _ = self.dirty.changed() => false,
            };
            let dirty = self.dirty.take();
            // The first pass after the caches are complete evaluates everything.
            let ready = self.agent.is_ready();
            let everything = full || (ready && !was_ready);
            was_ready = ready;
            self.pass(if everything { None } else { Some(&dirty) });
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

/// What the actuator already did, by (action, object, field): the resourceVersion it acted on.
/// An action planned from a version that was already acted on is stale (the cache has not seen
/// the write yet) and is skipped; a newer version (the write, or someone else's change) is not.
#[derive(Debug, Default)]
pub struct Acted {
    on: BTreeMap<(String, ObjectRef, Option<String>), String>,
}

impl Acted {
    fn key(a: &Action) -> (String, ObjectRef, Option<String>) {
        (a.kind.to_string(), a.object.clone(), a.field.clone())
    }

    pub fn is_stale(&self, a: &Action) -> bool {
        a.observed.as_ref().is_some_and(|rv| self.on.get(&Self::key(a)) == Some(rv))
    }

    pub fn record(&mut self, a: &Action, result: &ActionResult) {
        if let (true, Some(rv)) = (result.is_done(), &a.observed) {
            self.on.insert(Self::key(a), rv.clone());
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
    let mut acted = Acted::default();
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
            if !cooldown.ready(&action, Instant::now()) || acted.is_stale(&action) {
                continue;
            }
            // NB: an in-flight write is not cancelled by shutdown, only bounded.
            let result = match tokio::time::timeout(INFLIGHT_TIMEOUT, actuator.execute(&action)).await {
                Ok(r) => r,
                Err(_) => ActionResult::Error(format!("no answer within {}s", INFLIGHT_TIMEOUT.as_secs())),
            };
            acted.record(&action, &result);
            if !matches!(result, ActionResult::NotAttempted(_)) {
                dirty.mark(Resource::Actions);
            }
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
            Err(e) => return MtlsObservation::Error(e.to_string()),
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
            Err(e) => return MtlsObservation::Error(e.to_string()),
        }
    }
    if served { MtlsObservation::NoPolicy } else { MtlsObservation::CrdMissing }
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

type Tasks = JoinSet<(&'static str, Result<(), String>)>;

/// Starts watch tasks feeding the caches.
struct Watches<'a> {
    tasks: &'a mut Tasks,
    ctx: &'a WatchContext,
    shutdown: &'a CancellationToken,
}

impl Watches<'_> {
    fn spawn<K, T>(&mut self, api: Api<K>, resource: Resource, trim: fn(K) -> Option<T>, cache: &Shared<T>)
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
        T: crate::cache::Cached,
    {
        let (cache, ctx, token) = (cache.clone(), self.ctx.clone(), self.shutdown.clone());
        self.tasks.spawn(async move {
            watch::run(api, watcher::Config::default(), resource, trim, cache, ctx, token).await;
            (resource.as_str(), Ok(()))
        });
    }
}

/// Gauges computed at scrape time from the caches: sizes, the injection policy's view, and
/// the control plane's health. Nothing has to be kept in step with the caches.
fn register_cache_gauges(metrics: &Metrics, caches: &Caches, settings: &Settings, agent: &Arc<AgentState>) {
    let c = caches.clone();
    metrics.register_scrape_gauges(ScrapeGauges::single(
        "meshkeeper_cache_objects",
        "Objects held in each cache (trimmed).",
        &["resource"],
        move || {
            let g = c.read();
            [
                (Resource::Namespaces, g.namespaces.len()),
                (Resource::Webhooks, g.webhooks.len()),
                (Resource::Deployments, g.deployments.len()),
                (Resource::Pods, g.pods.len()),
                (Resource::Services, g.services.len()),
                (Resource::Nodes, g.nodes.len()),
            ]
            .into_iter()
            .map(|(r, n)| (vec![r.as_str().to_string()], n as f64))
            .collect()
        },
    ));
    if settings.injection.mode != Mode::Off {
        let (c, policy) = (caches.clone(), settings.injection.clone());
        metrics.register_scrape_gauges(ScrapeGauges::new(
            &[
                ("meshkeeper_namespaces", "Namespaces by injection-policy state.", &["state"]),
                (
                    "meshkeeper_namespace_injection_compliant",
                    "1 when an in-scope namespace carries the injection label the policy wants, else 0.",
                    &["namespace"],
                ),
            ],
            move || {
                let g = c.read();
                let (states, compliant) = injection::tally(&g.namespaces, &policy);
                let states = states.into_iter().map(|(s, n)| (0, vec![s.as_str().to_string()], n as f64));
                let compliant = compliant.into_iter().map(|(ns, ok)| (1, vec![ns], if ok { 1.0 } else { 0.0 }));
                states.chain(compliant).collect()
            },
        ));
    }
    if settings.control_plane.enabled {
        let (c, s) = (caches.clone(), settings.clone());
        metrics.register_scrape_gauges(ScrapeGauges::new(control_plane::GAUGES, move || {
            let g = c.read();
            let probe = ApiProbe::default();
            let view = View::locked(&s, &probe, &g, unix_now() as i64, &[]);
            control_plane::samples(&control_plane::assess(&view), view.now)
        }));
    }
    if settings.gateway.mode != GatewayMode::Off {
        let (c, s, agent) = (caches.clone(), settings.clone(), agent.clone());
        metrics.register_scrape_gauges(ScrapeGauges::new(gateway::GAUGES, move || {
            let actions = agent.recent_actions();
            let g = c.read();
            let probe = ApiProbe::default();
            let view = View::locked(&s, &probe, &g, unix_now() as i64, &actions);
            gateway::samples(&gateway::assess(&view), &s.gateway)
        }));
    }
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
    register_cache_gauges(&metrics, &caches, &settings, &agent);
    let dirty = Arc::new(Dirty::default());
    let probe = Arc::new(RwLock::new(ApiProbe::default()));
    let identity = leader::identity(&settings.leader_election.identity);

    // Tasks that must live as long as the process; any that ends early is fatal.
    // Independent of `shutdown`: tasks stop only when shutdown has been observed below, so a
    // task ending on its own is always a failure.
    let work = CancellationToken::new();
    let mut tasks = Tasks::new();

    let (events, events_task) = if settings.events.enabled {
        let (sink, task) = report::events::spawn(client.clone(), identity.clone(), metrics.clone(), work.clone());
        (sink, Some(task))
    } else {
        (EventSink::disabled(metrics.clone()), None)
    };

    let wctx = WatchContext { agent: agent.clone(), metrics: metrics.clone(), dirty: dirty.clone() };
    {
        let c = &caches;
        let mut w = Watches { tasks: &mut tasks, ctx: &wctx, shutdown: &work };
        let all = || client.clone();
        let injection = settings.injection.mode != Mode::Off;
        let control_plane = settings.control_plane.enabled;
        if injection {
            w.spawn(Api::<Namespace>::all(all()), Resource::Namespaces, NamespaceInfo::from_object, &c.namespaces);
        }
        if injection || control_plane {
            let api = Api::<MutatingWebhookConfiguration>::all(all());
            w.spawn(api, Resource::Webhooks, WebhookConfigInfo::from_object, &c.webhooks);
        }
        if control_plane {
            w.spawn(Api::<Deployment>::all(all()), Resource::Deployments, DeploymentInfo::from_object, &c.deployments);
            w.spawn(Api::<Pod>::all(all()), Resource::Pods, PodInfo::from_object, &c.pods);
            w.spawn(Api::<Node>::all(all()), Resource::Nodes, NodeInfo::from_object, &c.nodes);
        }
        if control_plane || settings.gateway.mode != GatewayMode::Off {
            w.spawn(Api::<Service>::all(all()), Resource::Services, ServiceInfo::from_object, &c.services);
        }
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
        led: std::sync::atomic::AtomicBool::new(false),
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
        let (client, le, agent, metrics, token, dirty) = (
            client.clone(),
            settings.leader_election.clone(),
            agent.clone(),
            metrics.clone(),
            leader_token.clone(),
            dirty.clone(),
        );
        tasks.spawn(async move {
            // Becoming leader re-plans everything: actions planned as a follower were not taken.
            let on_change: leader::OnChange = Box::new(move |_| Resource::ALL.iter().for_each(|r| dirty.mark(*r)));
            let r = leader::run(client, le, identity, agent, metrics, on_change, token).await;
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
        biased;
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
            field: None,
            observed: Some("5".into()),
        }
    }

    #[test]
    fn actions_planned_from_an_acted_on_version_are_stale() {
        let mut acted = Acted::default();
        let a = action("a");
        assert!(!acted.is_stale(&a));
        acted.record(&a, &ActionResult::Conflict);
        assert!(!acted.is_stale(&a), "failures do not count");
        acted.record(&a, &ActionResult::Success);
        assert!(acted.is_stale(&a), "same version: already done");
        let mut newer = action("a");
        newer.observed = Some("6".into());
        assert!(!acted.is_stale(&newer), "a newer version is planned afresh");
        let mut other_field = action("a");
        other_field.field = Some("node_port:tls".into());
        assert!(!acted.is_stale(&other_field));
        let mut unversioned = action("a");
        unversioned.observed = None;
        assert!(!acted.is_stale(&unversioned));
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
