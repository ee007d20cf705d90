//! Cluster actors: the parts of a control plane and of the nodes that make a cluster behave like
//! one. Each is a port of the real component's decisions, reduced to what meshkeeper observes:
//!
//! | actor | real component | module |
//! |---|---|---|
//! | sidecar injector (admission) | Istio's `istio-sidecar-injector` webhook | [`injector`] |
//! | scheduler (admission) + kubelet | kube-scheduler, kubelet | [`kubelet`] |
//! | deployment controller | kube-controller-manager `deployment` | [`deployment`] |
//! | replicaset controller | `replicaset` | [`replicaset`] |
//! | statefulset controller | `statefulset` | [`statefulset`] |
//! | daemonset controller | `daemonset` | [`daemonset`] |
//! | job controller | `job` | [`job`] |
//! | disruption controller (+ the eviction decision) | `disruption`, pods/eviction | [`disruption`] |
//! | namespace controllers | `namespace`, `root-ca-cert-publisher`, `serviceaccount` | [`namespace`] |
//! | endpoints controller | `endpoint` | [`endpoints`] |
//! | service controller | cloud provider's LoadBalancer | [`service`] |
//!
//! ```text
//!  store events ──► route() ──► work queue (dedup, FIFO) ──► reconcile(key) ──► Cluster writes
//!        ▲                          ▲  timers (requeue after,                      │
//!        └──────────────────────────┴─ kubelet delays, deadlines) ◄────────────────┘
//! ```
//!
//! One task runs every controller over one queue of keys, like kube-controller-manager's
//! workqueues but single-threaded: a key is reconciled from the current state in the store,
//! writes go through the same path as HTTP (validation, resourceVersion, managedFields, watch
//! events), and their events route back into the queue until nothing changes. Timed steps
//! (a kubelet making a pod Ready after a delay, a progress deadline) are timers on the same queue;
//! nothing sleeps.

pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod history;
pub mod injector;
pub mod job;
pub mod kubelet;
pub mod namespace;
pub mod replicaset;
pub mod service;
pub mod statefulset;
pub mod util;

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::TryRecvError;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::store::Event;
use crate::{ApiError, Cluster};

pub use injector::{InjectorState, should_inject};
pub use kubelet::KubeletOptions;

/// The field manager the controllers write as (the real kube-controller-manager's).
pub const CONTROLLER_MANAGER: &str = "kube-controller-manager";

/// What the store leaves to the actors while they run (set by [`Actors::start_with`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ControllerHooks {
    /// Pods are deleted gracefully; the kubelet removes them when their containers stopped.
    pub graceful_pods: bool,
}

/// How the actors start.
#[derive(Debug, Clone, Default)]
pub struct ActorOptions {
    pub kubelet: KubeletOptions,
    pub injector: InjectorState,
}

impl ActorOptions {
    pub fn kubelet(mut self, k: KubeletOptions) -> Self {
        self.kubelet = k;
        self
    }
    pub fn injector(mut self, i: InjectorState) -> Self {
        self.injector = i;
        self
    }
}

/// Handles to the running actors.
pub struct Actors {
    pub injector: Arc<Mutex<InjectorState>>,
    /// Container names the kubelet keeps in CrashLoopBackOff (for pods it starts from now on).
    pub crashing: Arc<Mutex<BTreeSet<String>>>,
    kubelet: Arc<Mutex<KubeletOptions>>,
    cluster: Cluster,
    commands: mpsc::UnboundedSender<Command>,
    paused: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Actors {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a key names: one object for one controller (or one pod for one kubelet step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    Job,
    Pdb,
    Namespace,
    Service,
    /// The Endpoints of a Service.
    Endpoints,
    /// The kubelet: start the pod's containers (Pending -> Running).
    PodStart,
    /// The kubelet: readiness probes pass (Ready).
    PodReady,
    /// The kubelet: a run-to-completion pod's containers exit 0 (Succeeded).
    PodFinish,
    /// The kubelet: a terminating pod's containers are stopped; the pod goes away.
    PodRemove,
    /// Pod garbage collection for a deleted node.
    NodeGone,
    /// Pods the scheduler could not place when they were created.
    Unscheduled,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub kind: Kind,
    pub ns: String,
    pub name: String,
}

impl Key {
    pub fn new(kind: Kind, ns: &str, name: &str) -> Key {
        Key { kind, ns: ns.to_string(), name: name.to_string() }
    }
}

/// The work queue: keys to reconcile (each at most once in the queue) and timers.
#[derive(Default)]
pub struct Queue {
    fifo: VecDeque<Key>,
    queued: HashSet<Key>,
    timers: BinaryHeap<Reverse<(Instant, u64, Key)>>,
    seq: u64,
    failures: HashMap<Key, u32>,
}

impl Queue {
    pub fn add(&mut self, k: Key) {
        if self.queued.insert(k.clone()) {
            self.fifo.push_back(k);
        }
    }

    /// Reconciles `k` after `d` (at once when `d` is zero).
    pub fn after(&mut self, k: Key, d: Duration) {
        if d.is_zero() {
            self.add(k);
        } else {
            self.seq += 1;
            self.timers.push(Reverse((Instant::now() + d, self.seq, k)));
        }
    }

    /// Reconciles `k` at a wall-clock time (Unix seconds), e.g. when a pod becomes available.
    pub fn at(&mut self, k: Key, unix: f64) {
        let d = (unix - util::now_secs()).max(0.0);
        // A little late rather than early: timestamps have second resolution.
        self.after(k, Duration::from_secs_f64(d) + Duration::from_millis(5));
    }

    fn pop(&mut self) -> Option<Key> {
        let k = self.fifo.pop_front()?;
        self.queued.remove(&k);
        Some(k)
    }

    fn fire_due(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((t, _, _))) = self.timers.peek() {
            if *t > now {
                break;
            }
            if let Some(Reverse((_, _, k))) = self.timers.pop() {
                self.add(k);
            }
        }
    }

    fn next_timer(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _, _))| *t)
    }

    /// A failed reconcile is retried with exponential backoff (10 ms doubling, at most 1 s).
    fn retry(&mut self, k: Key) {
        let n = self.failures.entry(k.clone()).or_insert(0);
        *n = (*n + 1).min(8);
        let d = Duration::from_millis(10 << *n).min(Duration::from_secs(1));
        self.after(k, d);
    }

    fn succeeded(&mut self, k: &Key) {
        if !self.failures.is_empty() {
            self.failures.remove(k);
        }
    }
}

/// What a reconcile sees.
pub struct Ctx<'a> {
    pub c: &'a Cluster,
    pub q: &'a mut Queue,
    pub kubelet: &'a KubeletOptions,
    pub crashing: &'a Arc<Mutex<BTreeSet<String>>>,
    pub state: &'a mut State,
}

/// What the actors remember between keys.
#[derive(Debug, Default)]
pub struct State {
    pub kubelet: kubelet::KubeletState,
    /// The last LoadBalancer IP handed out.
    pub next_lb_ip: u32,
}

enum Command {
    Resync,
    Wake,
}

/// Keys for an event (the informers' event handlers of every controller at once).
fn route(c: &Cluster, q: &mut Queue, kubelet: &KubeletOptions, ev: &Event) {
    let resource = c.resource_of(ev);
    let obj = &*ev.object;
    let ns = util::namespace(obj);
    let name = util::name(obj);
    let owner = util::controller_of(obj);
    match resource.as_str() {
        "deployments" => q.add(Key::new(Kind::Deployment, ns, name)),
        "replicasets" => {
            q.add(Key::new(Kind::ReplicaSet, ns, name));
            if let Some(("Deployment", d, _)) = owner {
                q.add(Key::new(Kind::Deployment, ns, d));
            }
        }
        "statefulsets" => q.add(Key::new(Kind::StatefulSet, ns, name)),
        "daemonsets" => q.add(Key::new(Kind::DaemonSet, ns, name)),
        "controllerrevisions" => match owner {
            Some(("StatefulSet", s, _)) => q.add(Key::new(Kind::StatefulSet, ns, s)),
            Some(("DaemonSet", s, _)) => q.add(Key::new(Kind::DaemonSet, ns, s)),
            _ => {}
        },
        "jobs" => q.add(Key::new(Kind::Job, ns, name)),
        "poddisruptionbudgets" => q.add(Key::new(Kind::Pdb, ns, name)),
        "pods" => {
            match owner {
                Some(("ReplicaSet", o, _)) => q.add(Key::new(Kind::ReplicaSet, ns, o)),
                Some(("StatefulSet", o, _)) => q.add(Key::new(Kind::StatefulSet, ns, o)),
                Some(("DaemonSet", o, _)) => q.add(Key::new(Kind::DaemonSet, ns, o)),
                Some(("Job", o, _)) => q.add(Key::new(Kind::Job, ns, o)),
                _ => {}
            }
            for pdb in c.names("policy/v1", "poddisruptionbudgets", ns) {
                q.add(Key::new(Kind::Pdb, ns, &pdb));
            }
            for svc in c.names("v1", "services", ns) {
                q.add(Key::new(Kind::Endpoints, ns, &svc));
            }
            kubelet::route_pod(q, kubelet, ev.kind, obj);
        }
        "nodes" => {
            for (dns, dname) in c.keys("apps/v1", "daemonsets") {
                q.add(Key::new(Kind::DaemonSet, &dns, &dname));
            }
            if ev.kind == "DELETED" {
                q.add(Key::new(Kind::NodeGone, "", name));
            } else {
                q.add(Key::new(Kind::Unscheduled, "", ""));
            }
        }
        "namespaces" => q.add(Key::new(Kind::Namespace, "", name)),
        "services" => {
            q.add(Key::new(Kind::Service, ns, name));
            q.add(Key::new(Kind::Endpoints, ns, name));
        }
        "endpoints" if ev.kind == "DELETED" => q.add(Key::new(Kind::Endpoints, ns, name)),
        _ => {}
    }
    // Content of a namespace going away (a terminating one's conditions change; a published
    // ConfigMap or ServiceAccount is put back).
    if !ns.is_empty() && (ev.kind == "DELETED" || util::deleting(obj)) {
        q.add(Key::new(Kind::Namespace, "", ns));
    }
}

/// Every object again (after missing events, or when the kubelet's options change).
fn resync(c: &Cluster, q: &mut Queue) {
    for (plural, api, kind) in [
        ("deployments", "apps/v1", Kind::Deployment),
        ("replicasets", "apps/v1", Kind::ReplicaSet),
        ("statefulsets", "apps/v1", Kind::StatefulSet),
        ("daemonsets", "apps/v1", Kind::DaemonSet),
        ("jobs", "batch/v1", Kind::Job),
        ("poddisruptionbudgets", "policy/v1", Kind::Pdb),
        ("services", "v1", Kind::Service),
    ] {
        for (ns, name) in c.keys(api, plural) {
            q.add(Key::new(kind, &ns, &name));
        }
    }
    for (ns, name) in c.keys("v1", "services") {
        q.add(Key::new(Kind::Endpoints, &ns, &name));
    }
    for (_, name) in c.keys("v1", "namespaces") {
        q.add(Key::new(Kind::Namespace, "", &name));
    }
    for pod in c.list("v1", "pods", None) {
        kubelet::resync_pod(q, &pod);
    }
    q.add(Key::new(Kind::Unscheduled, "", ""));
}

fn reconcile(ctx: &mut Ctx, k: &Key) -> Result<(), ApiError> {
    let (ns, name) = (k.ns.as_str(), k.name.as_str());
    match k.kind {
        Kind::Deployment => deployment::reconcile(ctx, ns, name),
        Kind::ReplicaSet => replicaset::reconcile(ctx, ns, name),
        Kind::StatefulSet => statefulset::reconcile(ctx, ns, name),
        Kind::DaemonSet => daemonset::reconcile(ctx, ns, name),
        Kind::Job => job::reconcile(ctx, ns, name),
        Kind::Pdb => disruption::reconcile(ctx, ns, name),
        Kind::Namespace => namespace::reconcile(ctx, name),
        Kind::Service => service::reconcile(ctx, ns, name),
        Kind::Endpoints => endpoints::reconcile(ctx, ns, name),
        Kind::PodStart | Kind::PodReady | Kind::PodFinish | Kind::PodRemove => {
            kubelet::reconcile(ctx, k.kind, ns, name)
        }
        Kind::NodeGone => kubelet::node_gone(ctx, name),
        Kind::Unscheduled => kubelet::schedule_pending(ctx),
    }
}

impl Actors {
    /// Starts every actor with the default options.
    pub fn start(cluster: Cluster) -> Self {
        Self::start_with(cluster, ActorOptions::default())
    }

    pub fn start_with(cluster: Cluster, opts: ActorOptions) -> Self {
        let injector = Arc::new(Mutex::new(opts.injector));
        let crashing = Arc::new(Mutex::new(BTreeSet::new()));
        let kubelet_opts = Arc::new(Mutex::new(opts.kubelet.clone()));
        cluster.set_controller_hooks(!opts.kubelet.termination.is_zero());
        cluster.add_admission(injector::hook(injector.clone()));
        cluster.add_admission(kubelet::scheduler_hook());
        let (commands, mut rx_cmd) = mpsc::unbounded_channel();
        let paused = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (c, crash, kopts, hold) = (cluster.clone(), crashing.clone(), kubelet_opts.clone(), paused.clone());
        let mut rx = cluster.subscribe();
        let task = tokio::spawn(async move {
            let mut q = Queue::default();
            let mut state = State::default();
            resync(&c, &mut q);
            let mut streak: u64 = 0;
            loop {
                let kubelet = lock(&kopts).clone();
                // Take in every event that is there, then work the queue dry.
                loop {
                    match rx.try_recv() {
                        Ok(ev) => route(&c, &mut q, &kubelet, &ev),
                        Err(TryRecvError::Lagged(_)) => resync(&c, &mut q),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Closed) => return,
                    }
                }
                q.fire_due();
                let held = hold.load(std::sync::atomic::Ordering::SeqCst);
                if let Some(k) = if held { None } else { q.pop() } {
                    let mut ctx = Ctx { c: &c, q: &mut q, kubelet: &kubelet, crashing: &crash, state: &mut state };
                    // NB: actors see user-written objects; a bug on an odd one must not stop them all.
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reconcile(&mut ctx, &k)));
                    match outcome {
                        Ok(Ok(())) => q.succeeded(&k),
                        Ok(Err(e)) if e.code == 404 => q.succeeded(&k),
                        Ok(Err(e)) => {
                            tracing::debug!(key = ?k, code = e.code, message = %e.message, "kube-sim actor retries");
                            q.retry(k);
                        }
                        Err(_) => {
                            tracing::warn!(key = ?k, "kube-sim actor panicked on an object; retrying later");
                            q.retry(k);
                        }
                    }
                    // The queue is worked dry before anything else runs on this thread (on a
                    // current-thread runtime a test that seeds and then awaits sees a settled
                    // cluster, as with the old inline actors); a long run still lets the HTTP
                    // server and tests in now and then.
                    streak += 1;
                    if streak.is_multiple_of(256) {
                        tokio::task::yield_now().await;
                    }
                    continue;
                }
                streak = 0;
                let timer = q.next_timer();
                tokio::select! {
                    ev = rx.recv() => match ev {
                        Ok(ev) => route(&c, &mut q, &kubelet, &ev),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => resync(&c, &mut q),
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                    cmd = rx_cmd.recv() => match cmd {
                        Some(Command::Resync) => resync(&c, &mut q),
                        Some(Command::Wake) => {}
                        None => return,
                    },
                    _ = async { match timer { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {}
                }
            }
        });
        Actors { injector, crashing, kubelet: kubelet_opts, cluster, commands, paused, task }
    }

    /// Up: inject. Down: pods are created without a sidecar (an outage of an injector whose
    /// webhook has `failurePolicy: Ignore`; see README for `Fail`).
    pub fn set_injector_up(&self, up: bool) {
        lock(&self.injector).up = up;
    }

    /// Upgrades the injector: new pods get this proxy version. Also written to the injector's
    /// ConfigMap (`values`: `global.tag`), where a real installation keeps it.
    pub fn set_injector_version(&self, version: &str) {
        lock(&self.injector).version = version.to_string();
        injector::write_tag(&self.cluster, version);
    }

    /// Native sidecars: istio-proxy as an init container with `restartPolicy: Always`.
    pub fn set_native_sidecars(&self, on: bool) {
        lock(&self.injector).native_sidecars = on;
    }

    pub fn injector_state(&self) -> InjectorState {
        lock(&self.injector).clone()
    }

    /// Containers with this name crash-loop in pods the kubelet starts from now on; `false`
    /// lets crash-looping ones come up (Ready, their restart count kept).
    pub fn set_crashing(&self, container: &str, crash: bool) {
        let mut c = lock(&self.crashing);
        if crash {
            c.insert(container.to_string());
        } else if c.remove(container) {
            let _ = self.commands.send(Command::Resync);
        }
    }

    /// Changes the kubelet's timing from now on (e.g. slow it down to watch a rollout).
    pub fn set_kubelet(&self, k: KubeletOptions) {
        self.cluster.set_controller_hooks(!k.termination.is_zero());
        *lock(&self.kubelet) = k;
        let _ = self.commands.send(Command::Resync);
    }

    pub fn kubelet(&self) -> KubeletOptions {
        lock(&self.kubelet).clone()
    }

    /// Holds every controller and the kubelet (events queue up; nothing is reconciled) until
    /// `hold(false)`: a test can then observe the moment before a controller reacts, e.g. an
    /// eviction against a PodDisruptionBudget the disruption controller has not processed yet.
    /// Admission (scheduler, injector) still runs.
    pub fn hold(&self, on: bool) {
        self.paused.store(on, std::sync::atomic::Ordering::SeqCst);
        let _ = self.commands.send(Command::Wake);
    }
}

/// Writes a controller's view of an object's status when it differs from the stored one: a
/// merge patch of the status subresource (dropped fields become null, as omitempty fields of a
/// real status vanish), guarded by the object's resourceVersion. Returns the object as written.
pub fn write_status(c: &Cluster, api: &str, plural: &str, obj: &Value, status: Value) -> Result<Value, ApiError> {
    let old = if obj["status"].is_object() { obj["status"].clone() } else { json!({}) };
    if old == status {
        return Ok(obj.clone());
    }
    let body = json!({"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}, "status": util::merge_diff(&old, &status)});
    c.patch_status_by(api, plural, util::namespace(obj), util::name(obj), &body, CONTROLLER_MANAGER)
}

/// A merge patch of an object by the controller manager, guarded by its resourceVersion.
pub fn patch_obj(c: &Cluster, api: &str, plural: &str, obj: &Value, mut body: Value) -> Result<Value, ApiError> {
    body["metadata"]["resourceVersion"] = obj["metadata"]["resourceVersion"].clone();
    c.patch(api, plural, util::namespace(obj), util::name(obj), crate::PatchType::Merge, &body, CONTROLLER_MANAGER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_dedups_and_orders() {
        let mut q = Queue::default();
        q.add(Key::new(Kind::Deployment, "a", "x"));
        q.add(Key::new(Kind::ReplicaSet, "a", "y"));
        q.add(Key::new(Kind::Deployment, "a", "x"));
        assert_eq!(q.pop().map(|k| k.kind), Some(Kind::Deployment));
        assert_eq!(q.pop().map(|k| k.kind), Some(Kind::ReplicaSet));
        assert_eq!(q.pop(), None);
        q.add(Key::new(Kind::Deployment, "a", "x"));
        assert!(q.pop().is_some(), "a popped key can be queued again");
    }
}
