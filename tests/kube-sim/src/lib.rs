#![forbid(unsafe_code)]
//! kube-sim: a simulated Kubernetes API server for meshkeeper's tests, benchmarks and demo.
//!
//! It speaks the real HTTP API (discovery, get/list/watch with bookmarks, 410 and streaming
//! lists, create/update/delete, merge/JSON/strategic patches and server-side apply) over plain
//! HTTP on 127.0.0.1, writes a kubeconfig pointing at itself, and can inject faults. See
//! README.md for what it does and where it is simpler than a real API server.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let sim = kube_sim::Sim::start(kube_sim::SimOptions::default()).await?;
//! println!("kubectl --kubeconfig {} get ns", sim.kubeconfig_path().display());
//! # Ok(()) }
//! ```

pub mod actors;
pub mod auth;
pub mod defaults;
pub mod events;
pub mod gojson;
pub mod patch;
pub mod proto;
pub mod rbac;
pub mod resources;
pub mod schema;
pub mod seed;
pub mod selectors;
pub mod server;
pub mod store;
pub mod table;
pub mod validation;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

pub use actors::{ActorOptions, KubeletOptions};
pub use server::{Arrival, BAD_GATEWAY_HTML, FaultRule, RequestRecord, WatchFault, WatchFaultKind};
pub use store::{ApiError, PatchType, Preconditions, WriteOpts};

use server::{FaultState, Shared, lock};

/// How to start a simulated cluster.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// 0 picks a free port.
    pub port: u16,
    /// Watch events kept for watches that resume from a resourceVersion (older ones get 410).
    pub history: usize,
    /// Period of BOOKMARK events on watches that allow them (default 60 s, as a real server's
    /// watch cache; tests that need bookmarks soon set a short one).
    pub bookmark_interval: Duration,
    /// A watch without `timeoutSeconds` ends after this times a random factor in [1, 2), as
    /// the real server's `--min-request-timeout` (default 1800 s).
    pub min_request_timeout: Duration,
    /// A list from a resourceVersion the server has not reached waits this long for it, then
    /// answers 504 with `Retry-After: 1` (the real watch cache waits 3 s).
    pub resource_version_wait: Duration,
    /// etcd compaction as the API server schedules it (every 5 minutes, to the revision of the
    /// previous run): watches, Exact lists and continue tokens from before it get 410. None: only
    /// the start (a fresh sim, like a fresh watch cache, keeps nothing from before it started)
    /// and `faults().compact()` compact.
    pub compaction_interval: Option<Duration>,
    /// Serve streaming lists (`sendInitialEvents=true`), which need etcd 3.5's
    /// RequestWatchProgress. false: answer them as a server on etcd 3.4 does, with HTTP 200 and
    /// a single ERROR event, so clients that ask for them must fall back to paged lists.
    pub streaming_lists: bool,
    /// Run the cluster actors (src/actors: scheduler and kubelet, the Deployment, ReplicaSet,
    /// StatefulSet, DaemonSet, Job, disruption, namespace and service controllers, the sidecar
    /// injector).
    pub actors: bool,
    /// Enforce authentication (bearer tokens) and RBAC; off: every request is the admin's.
    pub rbac: bool,
    /// How the actors start (kubelet timing, injector state).
    pub actor_options: actors::ActorOptions,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            port: 0,
            history: 10_000,
            bookmark_interval: Duration::from_secs(60),
            min_request_timeout: Duration::from_secs(1800),
            resource_version_wait: Duration::from_secs(3),
            compaction_interval: Some(Duration::from_secs(300)),
            streaming_lists: true,
            actors: true,
            rbac: false,
            actor_options: actors::ActorOptions::default(),
        }
    }
}

impl SimOptions {
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
    pub fn history(mut self, n: usize) -> Self {
        self.history = n;
        self
    }
    pub fn bookmark_interval(mut self, d: Duration) -> Self {
        self.bookmark_interval = d;
        self
    }
    pub fn min_request_timeout(mut self, d: Duration) -> Self {
        self.min_request_timeout = d;
        self
    }
    pub fn resource_version_wait(mut self, d: Duration) -> Self {
        self.resource_version_wait = d;
        self
    }
    pub fn compaction_interval(mut self, d: Option<Duration>) -> Self {
        self.compaction_interval = d;
        self
    }
    pub fn streaming_lists(mut self, on: bool) -> Self {
        self.streaming_lists = on;
        self
    }
    pub fn actors(mut self, on: bool) -> Self {
        self.actors = on;
        self
    }
    pub fn rbac(mut self, on: bool) -> Self {
        self.rbac = on;
        self
    }
    /// The kubelet's timing (e.g. `KubeletOptions::slow(200 ms)` to watch rollouts progress).
    pub fn kubelet(mut self, k: actors::KubeletOptions) -> Self {
        self.actor_options.kubelet = k;
        self
    }
    pub fn actor_options(mut self, o: actors::ActorOptions) -> Self {
        self.actor_options = o;
        self
    }
}

/// A running simulated cluster.
pub struct Sim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
    actors: Option<actors::Actors>,
    compactor: Option<tokio::task::JoinHandle<()>>,
}

/// The in-process API: the same write path as HTTP, for test setup, assertions and actors.
#[derive(Clone)]
pub struct Cluster {
    shared: Arc<Shared>,
}

/// Fault injection from test code.
#[derive(Clone)]
pub struct Faults {
    shared: Arc<Shared>,
}

impl Sim {
    pub async fn start(opts: SimOptions) -> std::io::Result<Sim> {
        let (drop_watches, _) = watch::channel(0);
        let (hang, _) = watch::channel(false);
        let (watch_faults, _) = watch::channel(0);
        let store = store::Store::new(opts.history);
        let auth = opts.rbac.then(|| Mutex::new(auth::AuthState::new(&store)));
        let shared = Arc::new(Shared {
            auth,
            store: Mutex::new(store),
            faults: Mutex::new(FaultState::default()),
            requests: Mutex::new(Default::default()),
            drop_watches,
            watch_faults,
            bookmark_interval: opts.bookmark_interval,
            min_request_timeout: opts.min_request_timeout,
            resource_version_wait: opts.resource_version_wait,
            streaming_lists: opts.streaming_lists,
            bookmarks_sent: std::sync::atomic::AtomicU64::new(0),
            hang,
            arrivals: Mutex::new(Default::default()),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port)).await?;
        let addr = listener.local_addr()?;
        let dir = tempfile::tempdir()?;
        let sim = Sim { shared: shared.clone(), addr, dir, server: Mutex::new(None), actors: None, compactor: None };
        std::fs::write(sim.kubeconfig_path(), kubeconfig(&sim.server_url_for(auth::ADMIN_TOKEN), auth::ADMIN_TOKEN))?;
        *lock(&sim.server) = Some(serve(listener, shared.clone()));
        let mut sim = sim;
        // Every API server has these.
        seed::basic(&sim.cluster()).map_err(|e| std::io::Error::other(e.message))?;
        // Like a freshly started watch cache: nothing from before now to resume from.
        lock(&shared.store).compact();
        if let Some(every) = opts.compaction_interval {
            sim.compactor = Some(tokio::spawn(compactor(shared.clone(), every)));
        }
        if opts.actors {
            sim.actors = Some(actors::Actors::start_with(sim.cluster(), opts.actor_options.clone()));
        }
        Ok(sim)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server URL a kubeconfig for `token` names: with RBAC on it carries the token in a
    /// path prefix too, because kubectl sends no bearer token over plain HTTP.
    fn server_url_for(&self, token: &str) -> String {
        if self.shared.auth.is_some() { format!("{}{}{token}", self.url(), auth::PATH_PREFIX) } else { self.url() }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kubeconfig (admin) pointing at this server.
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// A kubeconfig whose bearer token authenticates as ServiceAccount `ns/name`
    /// (`system:serviceaccount:ns:name`, groups `system:serviceaccounts[:ns]`, `system:authenticated`).
    pub fn kubeconfig_for_service_account(&self, ns: &str, name: &str) -> std::io::Result<PathBuf> {
        let path = self.dir.path().join(format!("kubeconfig-sa-{ns}-{name}"));
        let token = auth::service_account_token(ns, name);
        std::fs::write(&path, kubeconfig(&self.server_url_for(&token), &token))?;
        Ok(path)
    }

    pub fn cluster(&self) -> Cluster {
        Cluster { shared: self.shared.clone() }
    }

    pub fn faults(&self) -> Faults {
        Faults { shared: self.shared.clone() }
    }

    pub fn actors(&self) -> Option<&actors::Actors> {
        self.actors.as_ref()
    }

    /// Every request served so far (oldest first, bounded).
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.requests).iter().cloned().collect()
    }

    /// BOOKMARK events sent on watches so far.
    pub fn bookmarks_sent(&self) -> u64 {
        self.shared.bookmarks_sent.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// Stops serving: connections are cut and new ones refused; the state is kept.
    pub async fn stop(&self) {
        let handle = lock(&self.server).take();
        if let Some(h) = handle {
            h.abort();
            let _ = h.await;
        }
        self.faults().drop_watches();
    }

    /// Serves again on the same port.
    pub async fn restart(&self) -> std::io::Result<()> {
        self.stop().await;
        let listener = tokio::net::TcpListener::bind(self.addr).await?;
        *lock(&self.server) = Some(serve(listener, self.shared.clone()));
        Ok(())
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(h) = lock(&self.server).take() {
            h.abort();
        }
        if let Some(h) = self.compactor.take() {
            h.abort();
        }
    }
}

/// The API server's compaction loop: every `every`, compact to the revision seen at the
/// previous run (so history from the last 1-2 intervals stays).
async fn compactor(shared: Arc<Shared>, every: Duration) {
    let mut previous = lock(&shared.store).rv;
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let mut store = lock(&shared.store);
        store.compact_to(previous);
        previous = store.rv;
    }
}

/// Serves until the returned task is aborted. Every connection runs in a JoinSet owned by the
/// task, so aborting it cuts open connections too (a stopped server refuses and resets, as a
/// real one that went away does; with plain `axum::serve` keep-alive connections would live on).
fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) -> tokio::task::JoinHandle<()> {
    let app = axum::Router::new().fallback(server::handle).with_state(shared);
    tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let svc = hyper_util::service::TowerToHyperService::new(app.clone());
                    conns.spawn(async move {
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await;
                    });
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
    })
}

/// A kubeconfig for `url` with a bearer token.
pub fn kubeconfig(url: &str, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-sim\n  cluster:\n    server: {url}\ncontexts:\n- name: kube-sim\n  context:\n    cluster: kube-sim\n    user: admin\n    namespace: default\ncurrent-context: kube-sim\nusers:\n- name: admin\n  user:\n    token: {token}\n"
    )
}

// === impl Cluster ===

impl Cluster {
    fn ti(&self, api_version: &str, plural: &str) -> Result<usize, ApiError> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        lock(&self.shared.store)
            .type_index(group, version, plural)
            .ok_or_else(|| ApiError::new(404, "NotFound", format!("no resource {plural} in {api_version}")))
    }

    pub fn get(&self, api_version: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        let ti = self.ti(api_version, plural).ok()?;
        let store = lock(&self.shared.store);
        store.get(ti, ns, name).map(|s| store.read(ti, s))
    }

    pub fn list(&self, api_version: &str, plural: &str, ns: Option<&str>) -> Vec<Value> {
        let Ok(ti) = self.ti(api_version, plural) else { return vec![] };
        let store = lock(&self.shared.store);
        store.iter(ti, ns, None).map(|(_, s)| store.read(ti, s)).collect()
    }

    pub fn count(&self, api_version: &str, plural: &str) -> usize {
        self.ti(api_version, plural).map(|ti| lock(&self.shared.store).count(ti)).unwrap_or(0)
    }

    pub fn create(&self, api_version: &str, plural: &str, ns: &str, obj: Value) -> Result<Value, ApiError> {
        let ti = self.ti(api_version, plural)?;
        lock(&self.shared.store).create(ti, ns, obj, &WriteOpts::default(), "kube-sim")
    }

    /// Creates or replaces (keeps nothing of the old object but its identity), whatever its
    /// current resourceVersion (also for kinds that refuse unconditional updates).
    pub fn upsert(&self, api_version: &str, plural: &str, ns: &str, mut obj: Value) -> Result<Value, ApiError> {
        let ti = self.ti(api_version, plural)?;
        let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let mut store = lock(&self.shared.store);
        let current = store.get(ti, ns, &name).map(|s| s.parse()["metadata"]["resourceVersion"].clone());
        if let Some(rv) = current {
            if obj.is_object() {
                obj["metadata"]["resourceVersion"] = rv;
            }
            store.update(ti, ns, &name, obj, None, &WriteOpts::default(), "kube-sim")
        } else {
            store.create(ti, ns, obj, &WriteOpts::default(), "kube-sim")
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        api_version: &str,
        plural: &str,
        ns: &str,
        name: &str,
        pt: PatchType,
        body: &Value,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let ti = self.ti(api_version, plural)?;
        let opts = WriteOpts { force: pt == PatchType::Apply, ..Default::default() };
        lock(&self.shared.store).patch(ti, ns, name, pt, body, None, &opts, manager)
    }

    pub fn patch_status(
        &self,
        api_version: &str,
        plural: &str,
        ns: &str,
        name: &str,
        body: &Value,
    ) -> Result<Value, ApiError> {
        self.patch_status_by(api_version, plural, ns, name, body, "kube-sim")
    }

    pub fn delete(&self, api_version: &str, plural: &str, ns: &str, name: &str) -> Result<Value, ApiError> {
        let ti = self.ti(api_version, plural)?;
        lock(&self.shared.store).delete(ti, ns, name, &WriteOpts::default())
    }

    /// Every change from now on (in-process watch for actors and tests).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<store::Event>> {
        lock(&self.shared.store).events.subscribe()
    }

    /// Adds a mutating admission hook (runs on every create).
    pub fn add_admission(&self, hook: store::Admission) {
        lock(&self.shared.store).admission.push(hook);
    }

    /// The resource plural of an event.
    pub fn resource_of(&self, ev: &store::Event) -> String {
        lock(&self.shared.store).types.get(ev.resource).map(|r| r.plural.clone()).unwrap_or_default()
    }

    /// Fixes the time writes stamp (creationTimestamp, deletionTimestamp, managedFields times),
    /// e.g. to reproduce a recorded sequence; None goes back to the system clock.
    pub fn set_clock(&self, at: Option<std::time::SystemTime>) {
        lock(&self.shared.store).clock =
            at.map(|t| t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0));
    }

    pub fn resource_version(&self) -> u64 {
        lock(&self.shared.store).rv
    }

    /// Registers a custom resource type (as creating its CRD does).
    pub fn register_crd(
        &self,
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
    ) -> Result<Value, ApiError> {
        let scope = if namespaced { "Namespaced" } else { "Cluster" };
        self.create(
            "apiextensions.k8s.io/v1",
            "customresourcedefinitions",
            "",
            serde_json::json!({"metadata": {"name": format!("{plural}.{group}")}, "spec": {"group": group, "scope": scope,
                "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase()},
                "versions": [{"name": version, "served": true, "storage": true}]}}),
        )
    }
}

// === impl Cluster: what the actors use ===

impl Cluster {
    /// Creates as `manager` (a controller's field manager).
    pub fn create_by(
        &self,
        api_version: &str,
        plural: &str,
        ns: &str,
        obj: Value,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let ti = self.ti(api_version, plural)?;
        lock(&self.shared.store).create(ti, ns, obj, &WriteOpts::default(), manager)
    }

    /// A merge patch of the status subresource as `manager`.
    pub fn patch_status_by(
        &self,
        api_version: &str,
        plural: &str,
        ns: &str,
        name: &str,
        body: &Value,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let ti = self.ti(api_version, plural)?;
        lock(&self.shared.store).patch(
            ti,
            ns,
            name,
            PatchType::Merge,
            body,
            Some("status"),
            &WriteOpts::default(),
            manager,
        )
    }

    /// Objects in a namespace with an owner reference to `owner_uid` (found from the index,
    /// without parsing the others).
    pub fn list_owned(&self, api_version: &str, plural: &str, ns: &str, owner_uid: &str) -> Vec<Value> {
        let Ok(ti) = self.ti(api_version, plural) else { return vec![] };
        lock(&self.shared.store)
            .iter(ti, Some(ns), None)
            .filter(|(_, s)| s.index.owner_uids.iter().any(|u| &**u == owner_uid))
            .map(|(_, s)| s.parse())
            .collect()
    }

    /// Names of the objects of a type in a namespace.
    pub fn names(&self, api_version: &str, plural: &str, ns: &str) -> Vec<String> {
        let Ok(ti) = self.ti(api_version, plural) else { return vec![] };
        lock(&self.shared.store).iter(ti, Some(ns), None).map(|(k, _)| k.1.clone()).collect()
    }

    /// (namespace, name) of every object of a type.
    pub fn keys(&self, api_version: &str, plural: &str) -> Vec<(String, String)> {
        let Ok(ti) = self.ti(api_version, plural) else { return vec![] };
        lock(&self.shared.store).iter(ti, None, None).map(|(k, _)| k.clone()).collect()
    }

    /// Every served resource type.
    pub fn resource_types(&self) -> Vec<resources::ResourceType> {
        lock(&self.shared.store).types.clone()
    }

    /// Removes a pod now (the kubelet's final delete); false when a finalizer holds it.
    pub fn remove_terminated_pod(&self, ns: &str, name: &str) -> bool {
        let Ok(ti) = self.ti("v1", "pods") else { return false };
        lock(&self.shared.store).remove_terminated_pod(ti, ns, name)
    }

    pub(crate) fn set_controller_hooks(&self, graceful_pods: bool) {
        lock(&self.shared.store).controller_hooks = actors::ControllerHooks { graceful_pods };
    }
}

// === impl Faults ===

impl Faults {
    /// The next `n` requests with this verb (get, list, watch, create, update, patch, delete)
    /// on this resource plural fail with `code` (429 gets a Retry-After of 1 s).
    pub fn fail_next(&self, verb: &str, resource: &str, n: u32, code: u16) {
        lock(&self.shared.faults).rules.push(FaultRule::new(verb, resource, n, code));
    }

    /// Adds a rule, e.g. `FaultRule::new("patch", "services", 1, 503).namespace("istio-system").name("istio-ingressgateway")`.
    pub fn add(&self, rule: FaultRule) {
        lock(&self.shared.faults).rules.push(rule);
    }

    /// The next `n` requests with this verb on this resource get a proxy's HTML page with
    /// 502 Bad Gateway instead of an answer from the API server.
    pub fn bad_gateway(&self, verb: &str, resource: &str, n: u32) {
        self.add(FaultRule::new(verb, resource, n, 502).body("text/html", BAD_GATEWAY_HTML));
    }

    /// The next `n` requests with this verb on this resource answer 200 with a body that is
    /// not JSON (`application/json` all the same).
    pub fn garbage(&self, verb: &str, resource: &str, n: u32) {
        self.add(FaultRule::new(verb, resource, n, 200).body("application/json", GARBAGE));
    }

    /// The next `n` watches on `resource` (open now or opened later) that send an event
    /// send it cut in half and close the connection (see [`WatchFaultKind::Truncate`]).
    pub fn truncate_watches(&self, resource: &str, n: u32) {
        self.add_watch(WatchFault { resource: resource.into(), remaining: n, kind: WatchFaultKind::Truncate });
    }

    /// The next `n` watches on `resource` (open now, or when a new one has sent its initial
    /// events) get this event at once, as it is: e.g. `{"type": "MODIFIED", "object": {...,
    /// "spec": "oops"}}`, whose object does not decode into the resource's type. Nothing is
    /// stored: a re-list or a watch from an older resourceVersion does not see it.
    pub fn inject_watch_event(&self, resource: &str, n: u32, event: &Value) {
        let mut line = serde_json::to_vec(event).unwrap_or_default();
        line.push(b'\n');
        self.inject_watch_line(resource, n, &line);
    }

    /// As [`Faults::inject_watch_event`], with raw bytes (a newline is added when missing):
    /// a line that is not JSON at all.
    pub fn inject_watch_line(&self, resource: &str, n: u32, line: &[u8]) {
        let mut line = line.to_vec();
        if !line.ends_with(b"\n") {
            line.push(b'\n');
        }
        let kind = WatchFaultKind::Inject(axum::body::Bytes::from(line));
        self.add_watch(WatchFault { resource: resource.into(), remaining: n, kind });
    }

    /// Adds a watch fault and tells open watches.
    pub fn add_watch(&self, fault: WatchFault) {
        lock(&self.shared.faults).watch.push(fault);
        self.shared.watch_faults.send_modify(|n| *n += 1);
    }

    /// Watch faults not yet delivered (0 once every hit has happened).
    pub fn pending_watch_faults(&self) -> u32 {
        lock(&self.shared.faults).watch.iter().map(|f| f.remaining).sum()
    }

    pub fn clear(&self) {
        *lock(&self.shared.faults) = FaultState::default();
    }

    /// Adds latency to requests on a resource (None: every request).
    pub fn latency(&self, resource: Option<&str>, d: Duration) {
        lock(&self.shared.faults).latency = Some((resource.map(str::to_string), d));
    }

    /// Cuts every open watch connection.
    /// The server hangs (`true`) or answers again (`false`): while it hangs, every request is
    /// accepted and left waiting (answered when released, unless the client gave up), and
    /// open watches deliver nothing (their events follow on release), as when etcd or the
    /// network stalls. Unlike `Sim::stop`, nothing is refused.
    pub fn hang(&self, on: bool) {
        self.shared.hang.send_replace(on);
    }

    /// Requests as they arrived, from user agents starting with `user_agent` (hanging and
    /// delayed ones too, before they are answered).
    pub fn arrivals(&self, user_agent: &str) -> Vec<server::Arrival> {
        lock(&self.shared.arrivals).iter().filter(|a| a.user_agent.starts_with(user_agent)).cloned().collect()
    }

    pub fn drop_watches(&self) {
        self.shared.drop_watches.send_modify(|n| *n += 1);
    }

    /// Forgets the watch history: resuming from any older resourceVersion gets 410 Gone.
    pub fn compact(&self) {
        lock(&self.shared.store).compact();
        self.drop_watches();
    }
}

/// The body [`Faults::garbage`] answers with: the start of a JSON document, then garbage.
pub const GARBAGE: &str = "{\"kind\":\"List\",\"apiVersion\":\"v1\",\"items\":[{\"metadata\":#%garbage%#";

/// Writes text to a file (for binaries printing paths).
pub fn write_file(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    #[test]
    fn defaults_are_the_real_servers() {
        let o = super::SimOptions::default();
        assert_eq!(o.bookmark_interval, std::time::Duration::from_secs(60), "bookmarks about once a minute");
        assert_eq!(o.min_request_timeout, std::time::Duration::from_secs(1800), "--min-request-timeout");
        assert_eq!(o.resource_version_wait, std::time::Duration::from_secs(3), "the watch cache's wait");
        assert_eq!(o.compaction_interval, Some(std::time::Duration::from_secs(300)), "etcd compaction");
    }
}
