//! The daemon's wiring (`meshkeeper run`): watchers feed caches, the evaluator runs the
//! checks whose inputs changed and the planner over their remedies, reporters render
//! findings, and the actuator (leader only) carries out the plan.
//!
//! ```text
//!  watchers ─► caches ─► Dirty ─► evaluator: checks ─► findings ─► AgentState · logs · Events
//!  prober ──► ApiProbe ──┘   │               └─► remedies ─► planner (ledger) ─► actions
//!  leader elector ───────────┘                                                  ▼
//!                            ledger ◄── outcomes ◄── actuator (leader only) ◄── queue
//! ```
//! Shutdown (SIGTERM/SIGINT): stop watching and planning; let the in-flight write finish (at
//! most [`INFLIGHT_TIMEOUT`]; a write still waiting for its write token is not sent); then
//! release the Lease and publish the queued Events (each bounded); stop serving; exit 0.

pub mod evaluator;
pub mod leader;
pub mod prober;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Service};
use kube::api::Api;
use kube::runtime::watcher;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::actuator::{Actuator, WriteLimiter};
use crate::cache::pod::PodTrim;
use crate::cache::slim::SlimPod;
use crate::cache::tolerant::{self, Tolerant};
use crate::cache::watch::{self, Dirty, WatchContext};
use crate::cache::{
    Caches, DeploymentInfo, InjectorConfig, NamespaceInfo, NodeInfo, ReplicaSetInfo, ServiceInfo, SetInfo, Shared,
    WebhookConfigInfo,
};
use crate::checks::{self, ApiProbe, Health, Resource, View, control_plane, gateway, injection, reinjection};
use crate::client::Clients;
use crate::config::{GatewayMode, Mode, Settings};
use crate::metrics::{KnownSeries, Metrics, ScrapeGauges};
use crate::plan::{Action, Ledger, Outcome};
use crate::report::events::{self, EventSink};
use crate::report::http::{self, HttpState};
use crate::state::{AgentState, unix_now, unix_now_ms};

/// How long the in-flight write may take to finish at shutdown.
pub const INFLIGHT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("task {0} ended unexpectedly")]
    TaskEnded(&'static str),
    #[error("task {task} failed: {message}")]
    TaskFailed { task: &'static str, message: String },
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Everything the actuator loop touches.
struct ActuatorLoop {
    actuator: Actuator,
    /// The actuator's write budget: a write waits for its token here, where shutdown can stop it.
    limiter: Arc<WriteLimiter>,
    /// Restart actions the evaluator sent and this loop has not carried out yet.
    restarts_queued: Arc<AtomicUsize>,
    ledger: Arc<Mutex<Ledger>>,
    agent: Arc<AgentState>,
    metrics: Metrics,
    events: EventSink,
    dirty: Arc<Dirty>,
}

impl ActuatorLoop {
    /// Executes batches until `shutdown`; an in-flight write is never cut, only bounded.
    async fn run(self, mut rx: mpsc::Receiver<Vec<Action>>, shutdown: CancellationToken) {
        loop {
            let batch = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                batch = rx.recv() => match batch { Some(b) => b, None => break },
            };
            for action in batch {
                // Counted down however it ends (done, failed, skipped); the last one re-plans the
                // restarts that waited for it.
                let _queued = (action.kind == reinjection::ACTION)
                    .then(|| Queued { count: self.restarts_queued.clone(), dirty: self.dirty.clone() });
                if shutdown.is_cancelled() {
                    return;
                }
                {
                    let ledger = lock(&self.ledger);
                    let now = unix_now_ms();
                    if ledger.is_stale(&action, now) || ledger.cooling_down(&action, now).is_some() {
                        continue;
                    }
                }
                // A write not sent when shutdown comes is not sent at all: its token is awaited
                // here, where shutdown interrupts the wait; the actuator then takes it at once.
                let wait = self.limiter.available_in();
                if !wait.is_zero() && self.agent.is_leader() {
                    self.metrics.write_throttled.with_label_values(&[action.kind]).inc();
                    tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => return,
                        // (A millisecond more: the refill, not rounding, decides.)
                        _ = tokio::time::sleep(wait + Duration::from_millis(1)) => {}
                    }
                }
                let timeout = Duration::from_secs(30);
                let outcome = match tokio::time::timeout(timeout, self.actuator.execute(&action)).await {
                    Ok(o) => o,
                    Err(_) => Outcome::Failed(format!("no answer within {}s", timeout.as_secs())),
                };
                let retry_at = {
                    let mut ledger = lock(&self.ledger);
                    ledger.record(&action, &outcome, unix_now_ms());
                    ledger.cooling_down(&action, unix_now_ms())
                };
                crate::report::record_outcome(&action, &outcome, &self.agent, &self.metrics, &self.events);
                if !matches!(outcome, Outcome::NotAttempted(_)) {
                    self.dirty.mark(Resource::Actions);
                }
                if let Some(at_ms) = retry_at {
                    // Re-plan once the cooldown has passed.
                    let dirty = self.dirty.clone();
                    let wait = Duration::from_millis((at_ms - unix_now_ms()).max(0) as u64 + 10);
                    tokio::spawn(async move {
                        tokio::time::sleep(wait).await;
                        dirty.mark(Resource::Actions);
                    });
                }
            }
        }
    }
}

/// One restart action the evaluator counted as queued: counted down when dropped.
struct Queued {
    count: Arc<AtomicUsize>,
    dirty: Arc<Dirty>,
}

impl Drop for Queued {
    fn drop(&mut self) {
        if self.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.dirty.mark(Resource::Actions);
        }
    }
}

type Tasks = JoinSet<(&'static str, Result<(), String>)>;

/// Starts watch tasks feeding the caches.
struct Watches<'a> {
    tasks: &'a mut Tasks,
    ctx: &'a WatchContext,
    shutdown: &'a CancellationToken,
}

/// Every watch decodes tolerantly: an object that does not decode into its type is logged and
/// skipped (see `cache::tolerant`), it fails neither a list nor the watch.
impl Watches<'_> {
    fn spawn<K, T>(
        &mut self,
        api: Api<Tolerant<K>>,
        resource: Resource,
        trim: impl Fn(K) -> Option<T> + Send + 'static,
        cache: &Shared<T>,
    ) where
        K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
        T: crate::cache::Cached,
    {
        self.spawn_with(api, watcher::Config::default().streaming_lists(), resource, trim, cache)
    }

    fn spawn_with<K, T>(
        &mut self,
        api: Api<Tolerant<K>>,
        config: watcher::Config,
        resource: Resource,
        trim: impl Fn(K) -> Option<T> + Send + 'static,
        cache: &Shared<T>,
    ) where
        K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
        T: crate::cache::Cached,
    {
        let (cache, ctx, token) = (cache.clone(), self.ctx.clone(), self.shutdown.clone());
        let trim = tolerant::trimming(trim);
        self.tasks.spawn(async move {
            watch::run(api, config, resource, trim, cache, ctx, token).await;
            (resource.as_str(), Ok(()))
        });
    }
}

/// Gauges computed at scrape time, from the caches and the shared state: nothing has to be
/// kept in step. A gauge derived from a cache is exported only once that cache has listed
/// (a half-filled cache would read as a false 0: a control plane "down" because meshkeeper
/// itself cannot list pods).
fn register_gauges(metrics: &Metrics, caches: &Caches, settings: &Settings, agent: &Arc<AgentState>) {
    let a = agent.clone();
    metrics.register_scrape_gauges(ScrapeGauges::single(
        "meshkeeper_leader",
        "1 when this replica holds the leader Lease and may act (before its renew deadline), else 0.",
        &[],
        move || vec![(vec![], if a.is_leader() { 1.0 } else { 0.0 })],
    ));
    let a = agent.clone();
    metrics.register_scrape_gauges(ScrapeGauges::single(
        "meshkeeper_ready",
        "1 when /readyz answers 200 (every watch has completed its first list), else 0.",
        &[],
        move || vec![(vec![], if a.is_ready() { 1.0 } else { 0.0 })],
    ));
    let a = agent.clone();
    metrics.register_scrape_gauges(ScrapeGauges::single(
        "meshkeeper_finding",
        "Current findings by check, code (the finding's reason, e.g. InjectorSelectorMismatch) and severity; only codes present now.",
        &["check", "code", "severity"],
        move || {
            let mut counts: BTreeMap<(&str, &str, &str), u32> = BTreeMap::new();
            for f in a.findings().iter() {
                *counts.entry((f.check, f.reason, f.severity.as_str())).or_default() += 1;
            }
            counts.into_iter().map(|((c, r, s), n)| (vec![c.into(), r.into(), s.into()], f64::from(n))).collect()
        },
    ));
    let a = agent.clone();
    metrics.register_scrape_gauges(ScrapeGauges::single(
        "meshkeeper_watch_synced",
        "1 when the watch of a resource has listed and is not failing, else 0.",
        &["resource"],
        move || {
            a.watches().into_iter().map(|(r, w)| (vec![r.to_string()], if w.synced() { 1.0 } else { 0.0 })).collect()
        },
    ));
    let a = agent.clone();
    metrics.register_scrape_gauges(ScrapeGauges::single(
        "meshkeeper_repair_contested",
        "1 for each field another field manager keeps changing back, which meshkeeper stopped repairing.",
        &["check", "field"],
        move || a.contested().into_iter().map(|(c, f)| (vec![c, f], 1.0)).collect(),
    ));
    let (c, a) = (caches.clone(), agent.clone());
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
                (Resource::ReplicaSets, g.replicasets.len()),
                (Resource::StatefulSets, g.statefulsets.len()),
                (Resource::DaemonSets, g.daemonsets.len()),
                (Resource::Pods, g.pods.len()),
                (Resource::Services, g.services.len()),
                (Resource::Nodes, g.nodes.len()),
            ]
            .into_iter()
            .filter(|(r, _)| a.listed(r.as_str()))
            .map(|(r, n)| (vec![r.as_str().to_string()], n as f64))
            .collect()
        },
    ));
    let listed =
        |agent: &AgentState, inputs: &[Resource]| inputs.iter().all(|r| !r.is_cache() || agent.listed(r.as_str()));
    if settings.injection.mode != Mode::Off {
        let (c, policy, a) = (caches.clone(), settings.injection.clone(), agent.clone());
        metrics.register_scrape_gauges(ScrapeGauges::new(
            &[
                ("meshkeeper_namespaces", "Namespaces by injection-policy state.", &["state"]),
                (
                    "meshkeeper_namespace_injection_compliant",
                    "1 when an in-scope namespace carries the injection label the policy wants (label), else 0.",
                    &["target_namespace", "label"],
                ),
            ],
            move || {
                if !listed(&a, &[Resource::Namespaces]) {
                    return vec![];
                }
                let g = c.read();
                let (states, compliant) = injection::tally(&g.namespaces, &policy);
                let states = states.into_iter().map(|(s, n)| (0, vec![s.as_str().to_string()], n as f64));
                let wanted = policy.label.to_string();
                let compliant =
                    compliant.into_iter().map(|(ns, ok)| (1, vec![ns, wanted.clone()], if ok { 1.0 } else { 0.0 }));
                states.chain(compliant).collect()
            },
        ));
    }
    if settings.control_plane.enabled {
        let (c, s, a) = (caches.clone(), settings.clone(), agent.clone());
        metrics.register_scrape_gauges(ScrapeGauges::new(control_plane::GAUGES, move || {
            if !listed(&a, checks::Check::inputs(&control_plane::ControlPlaneCheck)) {
                return vec![];
            }
            let g = c.read();
            let (probe, health) = (ApiProbe::default(), Health::default());
            let view = View::locked(&s, &probe, &g, &health, unix_now() as i64);
            control_plane::samples(&control_plane::assess(&view), &s.control_plane.namespace, view.now)
        }));
    }
    if settings.reinjection.mode != Mode::Off {
        let a = agent.clone();
        metrics
            .register_scrape_gauges(ScrapeGauges::new(reinjection::GAUGES, move || a.check_gauges(reinjection::CHECK)));
        let a = agent.clone();
        metrics.register_scrape_gauges(ScrapeGauges::new(
            &[
                (
                    "meshkeeper_workloads_pending_reinjection",
                    "Workloads whose pods need a restart to get the current sidecar and do not get one now, by reason.",
                    &["reason"],
                ),
                ("meshkeeper_rollouts_in_progress", "meshkeeper's re-injection rollouts that have not completed.", &[]),
            ],
            move || {
                let s = a.reinjection_summary();
                if !s.known {
                    return vec![];
                }
                let mut pending: BTreeMap<String, u64> =
                    crate::plan::Wait::PENDING_REASONS.iter().map(|r| (r.to_string(), 0)).collect();
                pending.extend(s.pending);
                let mut out: Vec<crate::metrics::Sample> =
                    pending.into_iter().map(|(r, n)| (0, vec![r], n as f64)).collect();
                out.push((1, vec![], s.rollouts_in_progress as f64));
                out
            },
        ));
    }
    if settings.gateway.mode != GatewayMode::Off {
        let (c, s, a) = (caches.clone(), settings.clone(), agent.clone());
        metrics.register_scrape_gauges(ScrapeGauges::new(gateway::GAUGES, move || {
            if !listed(&a, &[Resource::Services]) {
                return vec![];
            }
            let contested = a.contested().iter().any(|(check, _)| check == gateway::CHECK);
            let g = c.read();
            let (probe, health) = (ApiProbe::default(), Health::default());
            let view = View::locked(&s, &probe, &g, &health, unix_now() as i64);
            gateway::samples(&gateway::assess(&view), &s.gateway, contested)
        }));
    }
}

/// The counter label values known at start (created at 0): watched resources, the actions
/// the configuration enables, its pinned gateway fields.
fn known_series(settings: &Settings, registered: &[Box<dyn checks::Check>]) -> KnownSeries {
    let mut k = KnownSeries {
        resources: checks::watched(registered).into_iter().map(Resource::as_str).collect(),
        errors: vec![("evaluate", "action_queue_full")],
        ..Default::default()
    };
    if settings.events.enabled {
        k.errors.extend(
            ["queue_full", "forbidden", "not_found", "invalid", "server_error", "connection"].map(|r| ("events", r)),
        );
    }
    if settings.injection.mode == Mode::Enforce {
        k.actions.push(injection::ACTION);
    }
    if settings.reinjection.mode == Mode::Enforce {
        k.actions.push(reinjection::ACTION);
        k.reinjection_kinds.extend(["deployment", "statefulset", "daemonset"]);
        if settings.reinjection.evict_on_delete {
            k.reinjection_kinds.push("pod");
        }
    }
    let g = &settings.gateway;
    if g.repair && g.mode != GatewayMode::Off {
        k.actions.push(gateway::ACTION);
        if g.mode == GatewayMode::Integrated && g.load_balancer_ip.is_some() {
            k.gateway_fields.push(gateway::FIELD_IP.to_string());
        }
        if g.mode == GatewayMode::Manual {
            k.gateway_fields
                .extend(g.node_ports.iter().filter(|(_, p)| **p != 0).map(|(n, _)| gateway::field_node_port(n)));
        }
    }
    k
}

/// Runs the daemon until `shutdown` is cancelled (then returns Ok) or a task fails.
pub async fn run(settings: Settings, clients: Clients, shutdown: CancellationToken) -> Result<(), RunError> {
    let Clients { api: client, watch: watch_client, requests, watch_opened } = clients;
    let resync = Duration::from_secs(settings.resync_seconds);
    let metrics = Metrics::new();
    metrics.register_requests(&requests);
    let agent = Arc::new(AgentState::new(settings.summary(), resync * 2 + Duration::from_secs(60)));
    let addr = settings.http.listen.0;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| RunError::Listen { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), listen = %local, config = %settings.summary(), "meshkeeper starting");

    let caches = Caches::default();
    register_gauges(&metrics, &caches, &settings, &agent);
    let dirty = Arc::new(Dirty::default());
    let probe = Arc::new(RwLock::new(ApiProbe::default()));
    let identity = leader::identity(&settings.leader_election.identity);
    let ledger = Arc::new(Mutex::new(Ledger::default()));

    // Tasks that must live as long as the process; any that ends early is fatal.
    // Independent of `shutdown`: tasks stop only when shutdown has been observed below, so a
    // task ending on its own is always a failure.
    let work = CancellationToken::new();
    let mut tasks = Tasks::new();

    // The Event publisher outlives the actuator at shutdown, so the last write's Event goes out.
    let events_token = CancellationToken::new();
    let (events, events_task) = if settings.events.enabled {
        let (sink, task) = events::spawn(client.clone(), identity.clone(), metrics.clone(), events_token.clone());
        (sink, Some(task))
    } else {
        (EventSink::disabled(metrics.clone()), None)
    };

    let wctx = WatchContext { agent: agent.clone(), metrics: metrics.clone(), dirty: dirty.clone() };
    let registered = checks::registry(&settings);
    metrics.set_config_info(&settings.info_labels());
    metrics.precreate(&known_series(&settings, &registered));
    {
        let c = &caches;
        let mut w = Watches { tasks: &mut tasks, ctx: &wctx, shutdown: &work };
        let all = || watch_client.clone();
        let cp_ns = settings.control_plane.namespace.clone();
        // One watch per resource some registered check reads.
        for r in checks::watched(&registered) {
            match r {
                Resource::Namespaces => {
                    w.spawn(Api::<Tolerant<Namespace>>::all(all()), r, NamespaceInfo::from_object, &c.namespaces)
                }
                Resource::Webhooks => w.spawn(
                    Api::<Tolerant<MutatingWebhookConfiguration>>::all(all()),
                    r,
                    WebhookConfigInfo::from_object,
                    &c.webhooks,
                ),
                Resource::Deployments => {
                    w.spawn(Api::<Tolerant<Deployment>>::all(all()), r, DeploymentInfo::from_object, &c.deployments)
                }
                Resource::ReplicaSets => {
                    w.spawn(Api::<Tolerant<ReplicaSet>>::all(all()), r, ReplicaSetInfo::from_object, &c.replicasets)
                }
                Resource::StatefulSets => {
                    w.spawn(Api::<Tolerant<StatefulSet>>::all(all()), r, SetInfo::from_statefulset, &c.statefulsets)
                }
                Resource::DaemonSets => {
                    w.spawn(Api::<Tolerant<DaemonSet>>::all(all()), r, SetInfo::from_daemonset, &c.daemonsets)
                }
                Resource::Pods => {
                    let pods = PodTrim::new(&cp_ns);
                    w.spawn(Api::<Tolerant<SlimPod>>::all(all()), r, move |p| pods.trim(p), &c.pods)
                }
                Resource::Services => {
                    w.spawn(Api::<Tolerant<Service>>::all(all()), r, ServiceInfo::from_object, &c.services)
                }
                Resource::Nodes => w.spawn(Api::<Tolerant<Node>>::all(all()), r, NodeInfo::from_object, &c.nodes),
                Resource::InjectorConfig => {
                    // Only the injector's ConfigMap, by name (the chart grants just that one).
                    let name = checks::api::injector_configmap_name(&settings);
                    let config = watcher::Config::default().streaming_lists().fields(&format!("metadata.name={name}"));
                    w.spawn_with(
                        Api::<Tolerant<ConfigMap>>::namespaced(all(), &cp_ns),
                        config,
                        r,
                        InjectorConfig::from_object,
                        &c.injector,
                    )
                }
                _ => {}
            }
        }
    }

    {
        let (opened, agent, dirty, token) = (watch_opened.subscribe(), agent.clone(), dirty.clone(), work.clone());
        tasks.spawn(async move {
            crate::cache::watch::follow_reopened(opened, agent, dirty, token).await;
            ("watch reopen follower", Ok(()))
        });
    }

    {
        let (client, settings, probe, dirty, agent, token) =
            (client.clone(), settings.clone(), probe.clone(), dirty.clone(), agent.clone(), work.clone());
        tasks.spawn(async move {
            prober::run(client, settings, probe, dirty, agent, resync, token).await;
            ("api prober", Ok(()))
        });
    }

    let (action_tx, action_rx) = mpsc::channel(64);
    let restarts_queued = Arc::new(AtomicUsize::new(0));
    let evaluator = evaluator::Evaluator {
        checks: registered,
        settings: settings.clone(),
        caches: caches.clone(),
        probe: probe.clone(),
        agent: agent.clone(),
        metrics: metrics.clone(),
        events: events.clone(),
        dirty: dirty.clone(),
        actions: action_tx,
        ledger: ledger.clone(),
        remedies: BTreeMap::new(),
        restarts: None,
        held: Default::default(),
        led: false,
        restarts_queued: restarts_queued.clone(),
    };
    {
        let token = work.clone();
        tasks.spawn(async move {
            evaluator.run(resync, token).await;
            ("evaluator", Ok(()))
        });
    }

    let limiter = Arc::new(WriteLimiter::new(settings.client.write_qps, settings.client.write_burst));
    let actuator = Actuator::new(client.clone(), limiter.clone(), agent.clone(), metrics.clone(), settings.dry_run);
    let actuator_loop = ActuatorLoop {
        actuator,
        limiter,
        restarts_queued,
        ledger,
        agent: agent.clone(),
        metrics: metrics.clone(),
        events: events.clone(),
        dirty: dirty.clone(),
    };
    let actuator_token = CancellationToken::new();
    let actuator_task = tokio::spawn(actuator_loop.run(action_rx, actuator_token.clone()));

    // Leadership outlives the actuator at shutdown: its token is cancelled after it.
    let leader_token = CancellationToken::new();
    let mut leader_task = {
        let (client, le, agent, token, dirty) =
            (client.clone(), settings.leader_election.clone(), agent.clone(), leader_token.clone(), dirty.clone());
        tokio::spawn(async move {
            // Any change of leadership re-plans everything; the elector's view is an input too.
            let on_change: leader::OnChange = Box::new(move |c| match c {
                leader::Change::Leadership(_) => Resource::ALL.iter().for_each(|r| dirty.mark(*r)),
                leader::Change::Observation => dirty.mark(Resource::Leadership),
            });
            leader::run(client, le, identity, agent, on_change, token).await;
        })
    };
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
        r = &mut leader_task => Err(RunError::TaskFailed { task: "leader election", message: match r {
            Ok(()) => "stopped".into(), Err(e) => e.to_string() } }),
        r = &mut http_task => Err(RunError::TaskFailed { task: "http server", message: match r {
            Ok(Ok(())) => "stopped".into(), Ok(Err(e)) => e.to_string(), Err(e) => e.to_string() } }),
    };
    match &outcome {
        Ok(()) => tracing::info!("shutting down: no new actions; finishing in-flight work"),
        Err(e) => tracing::error!(error = %e, "shutting down after a failure"),
    }
    // 1. Stop watching and planning; 2. the actuator finishes its in-flight write (bounded);
    // 3. the Lease is released and the queued Events are published (both bounded, together);
    // 4. HTTP stops.
    work.cancel();
    actuator_token.cancel();
    if tokio::time::timeout(INFLIGHT_TIMEOUT, actuator_task).await.is_err() {
        tracing::warn!("the in-flight write did not finish in time");
    }
    leader_token.cancel();
    events_token.cancel();
    let release = async {
        if !leader_task.is_finished() {
            let _ = tokio::time::timeout(leader::RELEASE_TIMEOUT + Duration::from_millis(500), &mut leader_task).await;
        }
    };
    let drain = async {
        if let Some(t) = events_task {
            let _ = tokio::time::timeout(events::DRAIN_TIMEOUT + Duration::from_millis(500), t).await;
        }
    };
    tokio::join!(release, drain);
    let _ = tokio::time::timeout(Duration::from_secs(1), async { while tasks.join_next().await.is_some() {} }).await;
    tasks.abort_all();
    http_token.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(2), http_task).await;
    outcome
}
