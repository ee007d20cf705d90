//! Watchers: one kube-runtime watch per resource, trimming each object into its cache,
//! counting events, marking readiness after the first complete list, recording the watch's
//! current error (one readable line) so `/readyz`, `/status` and the `kubernetes-api` check
//! can say why a watch is not synced, and flagging the resource dirty so the evaluator re-runs
//! only the checks that read it.
//!
//! The watch client has no read timeout: a quiet watch on a real API server gets nothing but
//! a bookmark about once a minute, and kube-runtime ends an idle stream itself after the
//! server-side timeout plus a margin.
//!
//! A failing watch is retried with [`watch_backoff`]: 0.5 s doubling to 1.6 s, plus jitter of
//! up to as much again, so an API server that answers again is noticed within about 3 s
//! (kube-runtime's default grows to 30 s: after a 20 s outage on a real server, repairs
//! resumed only 8.6 s later). While a watch that had listed is failing, its cache may have
//! missed changes and nothing is acted on. It works again when an event arrives, or when the
//! API server accepted the watch again ([`follow_reopened`]) and no error followed within
//! [`REOPEN_GRACE`] (a 410 Gone or a refused resume fails it at once; a quiet resource may
//! send nothing for a minute).
//!
//! ```text
//!  API ─watch─► trim ─► Index (apply/delete/reset) ─► Dirty{resource} ─► evaluator
//! ```

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::utils::{Backoff, ResetTimerBackoff};
use kube::runtime::watcher::{self, Event, ExponentialBackoff};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::apierror;
use crate::cache::{Cached, Index};
use crate::checks::{Changes, Resource};
use crate::metrics::Metrics;
use crate::state::AgentState;

/// Which inputs changed since the evaluator last looked, and in which namespaces.
#[derive(Debug, Default)]
pub struct Dirty {
    set: Mutex<(BTreeSet<Resource>, Changes)>,
    notify: Notify,
}

/// Beyond this many changed namespaces of one resource between two evaluations, the change is
/// "everything" (re-assessing all is then cheaper than tracking).
pub const MAX_TRACKED_NAMESPACES: usize = 256;

impl Dirty {
    fn lock(&self) -> std::sync::MutexGuard<'_, (BTreeSet<Resource>, Changes)> {
        self.set.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `r` changed, where is not known (a re-list, a probe).
    pub fn mark(&self, r: Resource) {
        let mut g = self.lock();
        g.0.insert(r);
        g.1.namespaces.insert(r, None);
        drop(g);
        self.notify.notify_one();
    }

    /// An object of `r` in `namespace` changed (for Namespaces: that namespace).
    pub fn mark_namespace(&self, r: Resource, namespace: &str) {
        let mut g = self.lock();
        g.0.insert(r);
        let entry = g.1.namespaces.entry(r).or_insert_with(|| Some(BTreeSet::new()));
        if let Some(set) = entry {
            if !set.contains(namespace) {
                set.insert(namespace.to_string());
            }
            if set.len() > MAX_TRACKED_NAMESPACES {
                *entry = None;
            }
        }
        drop(g);
        self.notify.notify_one();
    }

    /// Takes everything marked so far.
    pub fn take(&self) -> BTreeSet<Resource> {
        self.take_changes().0
    }

    /// Takes everything marked so far, with the namespaces.
    pub fn take_changes(&self) -> (BTreeSet<Resource>, Changes) {
        std::mem::take(&mut *self.lock())
    }

    /// Completes when something is (or already was) marked.
    pub async fn changed(&self) {
        self.notify.notified().await;
    }
}

use crate::cache::Shared;

/// What every watcher shares.
#[derive(Clone)]
pub struct WatchContext {
    pub agent: Arc<AgentState>,
    pub metrics: Metrics,
    pub dirty: Arc<Dirty>,
}

/// Applies one watcher event to the cache; `buffer` holds a re-list in progress so the cache
/// is replaced atomically at `InitDone` (never half-listed). Returns whether the cache changed.
pub fn apply_event<K, T: Cached>(
    event: Event<K>,
    trim: &impl Fn(K) -> Option<T>,
    cache: &RwLock<Index<T>>,
    buffer: &mut Option<Vec<T>>,
) -> Applied {
    let write = || cache.write().unwrap_or_else(|p| p.into_inner());
    match event {
        Event::Init => {
            *buffer = Some(Vec::new());
            Applied::Nothing
        }
        Event::InitApply(k) => {
            if let (Some(buf), Some(t)) = (buffer.as_mut(), trim(k)) {
                buf.push(t);
            }
            Applied::Nothing
        }
        Event::InitDone => {
            write().reset(buffer.take().unwrap_or_default());
            Applied::Listed
        }
        Event::Apply(k) => match trim(k) {
            Some(t) => {
                let key = t.key();
                write().apply(t);
                Applied::Changed(key)
            }
            None => Applied::Skipped,
        },
        Event::Delete(k) => match trim(k) {
            Some(t) => {
                let key = t.key();
                write().delete(&key);
                Applied::Changed(key)
            }
            None => Applied::Skipped,
        },
    }
}

/// The effect of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Nothing,
    Listed,
    /// The object of this key changed.
    Changed(String),
    /// A malformed object (no name): logged and ignored.
    Skipped,
}

/// How long a reopened watch must go without an error before it counts as working again.
pub const REOPEN_GRACE: Duration = Duration::from_secs(1);

/// The retry delays of a failing watch: 0.5, 1, 1.6, 1.6, ... s, each plus a random jitter of
/// up to the same again; back to 0.5 s after a minute without failures.
pub fn watch_backoff() -> impl Backoff {
    let builder = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_millis(1600))
        .with_factor(2.0)
        .without_max_times()
        .with_jitter();
    ResetTimerBackoff::new(ExponentialBackoff::from(builder), Duration::from_secs(60))
}

/// Follows the watches the API server accepted (from the client's layer): a failing watch
/// that reopened and stays quiet for [`REOPEN_GRACE`] works again, and the evaluator hears
/// of it. Ends with `shutdown`.
pub async fn follow_reopened(
    mut opened: tokio::sync::broadcast::Receiver<String>,
    agent: Arc<AgentState>,
    dirty: Arc<Dirty>,
    shutdown: CancellationToken,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let plural = tokio::select! {
            _ = shutdown.cancelled() => return,
            next = opened.recv() => match next {
                Ok(plural) => plural,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            },
        };
        let Some(at) = agent.watch_reopened(&plural) else { continue };
        let (agent, dirty, shutdown) = (agent.clone(), dirty.clone(), shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(REOPEN_GRACE) => {
                    if agent.settle_reopened(&plural, at) {
                        tracing::info!(resource = %plural, "watch resumed");
                        dirty.mark(Resource::Watches);
                    }
                }
            }
        });
    }
}

/// An event arrived on a watch that was failing: it works again.
fn recovered(ctx: &WatchContext, name: &'static str) {
    if ctx.agent.watch_failing(name) {
        ctx.agent.watch_ok(name);
        ctx.dirty.mark(Resource::Watches);
    }
}

/// Runs a watch until `shutdown`. Errors are counted and retried with [`watch_backoff`] (a 410
/// Gone re-lists once); they never end the task.
pub async fn run<K, T>(
    api: Api<K>,
    config: watcher::Config,
    resource: Resource,
    trim: impl Fn(K) -> Option<T> + Send + 'static,
    cache: Shared<T>,
    ctx: WatchContext,
    shutdown: CancellationToken,
) where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    T: Cached,
{
    let name = resource.as_str();
    ctx.agent.register_watch(name);
    // Streaming lists first (the initial state arrives as watch events from the watch cache:
    // faster than paged LISTs and without holding pages); paged LISTs once the server refuses.
    let streaming = config.initial_list_strategy == watcher::InitialListStrategy::StreamingList;
    let paged = watcher::Config { initial_list_strategy: watcher::InitialListStrategy::ListWatch, ..config.clone() };
    let mut stream = watcher::watcher(api.clone(), config).backoff(watch_backoff()).boxed();
    let mut fell_back = !streaming;
    let mut buffer = None;
    let span = tracing::info_span!("watch", resource = name);
    async move {
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => break,
                next = stream.next() => next,
            };
            match next {
                None => break,
                Some(Ok(event)) => {
                    if matches!(event, Event::Apply(_) | Event::Delete(_) | Event::InitApply(_)) {
                        ctx.metrics.watch_events.with_label_values(&[name]).inc();
                    }
                    if matches!(event, Event::Init) {
                        ctx.metrics.watch_lists.with_label_values(&[name]).inc();
                    }
                    let listing = buffer.is_some() || matches!(event, Event::Init);
                    match apply_event(event, &trim, &cache, &mut buffer) {
                        Applied::Listed => {
                            let was_failing = ctx.agent.watch_failing(name);
                            ctx.agent.mark_synced(name);
                            tracing::debug!(objects = cache.read().map(|c| c.len()).unwrap_or(0), "listed");
                            ctx.dirty.mark(resource);
                            if was_failing {
                                ctx.dirty.mark(Resource::Watches);
                            }
                        }
                        Applied::Changed(key) => {
                            recovered(&ctx, name);
                            // Keys are `namespace/name`, or a Namespace's name.
                            match key.split_once('/') {
                                Some((ns, _)) => ctx.dirty.mark_namespace(resource, ns),
                                None if resource == Resource::Namespaces => ctx.dirty.mark_namespace(resource, &key),
                                None => ctx.dirty.mark(resource),
                            }
                        }
                        // The trim logged what it skipped and why (`cache::tolerant`).
                        Applied::Skipped => recovered(&ctx, name),
                        Applied::Nothing if !listing => recovered(&ctx, name),
                        Applied::Nothing => {}
                    }
                }
                Some(Err(error)) if !fell_back && apierror::is_streaming_list_refused(&error) => {
                    // Not a failure of the watch: this server cannot stream the initial list.
                    tracing::info!(error = %apierror::watcher_line(&error), "the API server refused a streaming list; listing in pages instead");
                    fell_back = true;
                    buffer = None;
                    stream = watcher::watcher(api.clone(), paged.clone()).backoff(watch_backoff()).boxed();
                }
                Some(Err(error)) => {
                    ctx.metrics.watch_restarts.with_label_values(&[name]).inc();
                    let message = apierror::watcher_line(&error);
                    tracing::warn!(error = %message, "watch failed; retrying with backoff");
                    ctx.agent.watch_failed(name, message, apierror::watcher_code(&error));
                    ctx.dirty.mark(Resource::Watches);
                }
            }
        }
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::NamespaceInfo;
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn ns(name: &str) -> Namespace {
        Namespace { metadata: ObjectMeta { name: Some(name.into()), ..Default::default() }, ..Default::default() }
    }

    #[test]
    fn dirty_tracks_namespaces_until_unknown_or_too_many() {
        let d = Dirty::default();
        d.mark_namespace(Resource::Pods, "shop");
        d.mark_namespace(Resource::Pods, "shop");
        d.mark_namespace(Resource::Pods, "pay");
        d.mark(Resource::Services);
        let (set, changes) = d.take_changes();
        assert_eq!(set, BTreeSet::from([Resource::Pods, Resource::Services]));
        assert_eq!(changes.namespaces[&Resource::Pods], Some(BTreeSet::from(["pay".into(), "shop".into()])));
        assert_eq!(changes.namespaces[&Resource::Services], None);
        assert!(d.take_changes().0.is_empty(), "taken");
        // A re-list after namespaced changes: unknown wins, and stays unknown.
        d.mark_namespace(Resource::Pods, "shop");
        d.mark(Resource::Pods);
        d.mark_namespace(Resource::Pods, "pay");
        assert_eq!(d.take_changes().1.namespaces[&Resource::Pods], None);
        for i in 0..=MAX_TRACKED_NAMESPACES {
            d.mark_namespace(Resource::Pods, &format!("ns-{i}"));
        }
        assert_eq!(d.take_changes().1.namespaces[&Resource::Pods], None, "too many to track");
    }

    #[test]
    fn relist_replaces_the_cache_atomically_at_init_done() {
        let cache = RwLock::new(Index::from_objects([NamespaceInfo::from_object(ns("old")).unwrap()]));
        let trim = NamespaceInfo::from_object;
        let mut buf = None;
        assert_eq!(apply_event(Event::Init, &trim, &cache, &mut buf), Applied::Nothing);
        apply_event(Event::InitApply(ns("a")), &trim, &cache, &mut buf);
        apply_event(Event::InitApply(ns("b")), &trim, &cache, &mut buf);
        assert!(cache.read().unwrap().get("old").is_some(), "old contents stay until InitDone");
        assert_eq!(apply_event(Event::InitDone, &trim, &cache, &mut buf), Applied::Listed);
        let names: Vec<_> = cache.read().unwrap().iter().map(|n| n.name.clone()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(apply_event(Event::Apply(ns("c")), &trim, &cache, &mut buf), Applied::Changed("c".into()));
        assert_eq!(apply_event(Event::Delete(ns("a")), &trim, &cache, &mut buf), Applied::Changed("a".into()));
        assert_eq!(apply_event(Event::Apply(Namespace::default()), &trim, &cache, &mut buf), Applied::Skipped);
        let names: Vec<_> = cache.read().unwrap().iter().map(|n| n.name.clone()).collect();
        assert_eq!(names, ["b", "c"]);
    }

    #[tokio::test]
    async fn dirty_coalesces_marks() {
        let d = Dirty::default();
        d.mark(Resource::Namespaces);
        d.mark(Resource::Namespaces);
        d.mark(Resource::ApiProbe);
        d.changed().await; // a permit was stored by mark: returns at once
        assert_eq!(d.take().len(), 2);
        assert!(d.take().is_empty());
    }
}
