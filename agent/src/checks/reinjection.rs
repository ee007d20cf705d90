//! Sidecar coverage and re-injection: which pods lack the sidecar or run a stale proxy, which
//! workload each belongs to, whether a rolling restart can fix it, and what it would take.
//! The planner (`plan/restarts.rs`) decides when; this check only says what and why.
//!
//! ```text
//!  pods ─► classify (Istio's precedence) ─► per workload (Pod → ReplicaSet → Deployment,
//!          StatefulSet, DaemonSet; Job, bare Pod, orphan ReplicaSet) ─► finding + candidate
//! ```
//!
//! | workload state (first match wins) | finding | candidate |
//! |---|---|---|
//! | every pod injected and current | – | – |
//! | not a Deployment/StatefulSet/DaemonSet (bare pod, Job, ReplicaSet without Deployment, other owner) | `NoControllerToRestart` (warning) | never (meshkeeper deletes nothing) |
//! | opted out (`reinjection.opt_out_annotation` on it, `namespace_opt_out_label` on its namespace) | `ReinjectionOptedOut` (info) | – |
//! | restarted, the rollout done, and pods created since still lack the sidecar / run the old proxy, the injector unchanged since | `ReinjectionFailed` (error) | – (until the template or the injector changes) |
//! | a paused Deployment | `ReinjectionBlocked` (warning): resume it | – |
//! | `updateStrategy: OnDelete` | `ReinjectionBlocked` (warning) | eviction of one pod at a time with `evict_on_delete` |
//! | a StatefulSet whose partition keeps every affected ordinal | `ReinjectionBlocked` (warning) | – |
//! | otherwise | `SidecarMissing` / `ProxyStale` (warning) | restart |

pub mod classify;

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Check, Evaluation, Resource, View};
use crate::cache::{NamespaceInfo, PodInfo, Rollout, SetInfo, Strategy, injector};
use crate::change::{RestartCandidate, RestartInput, Restartable};
use crate::findings::{CheckReport, Finding, Item, ObjectRef, Severity};
use classify::{Classified, Context, Expected, PodState, classify};

pub const CHECK: &str = "reinjection";
/// Metric label of restarts and evictions (`meshkeeper_actions_total{action}`).
pub const ACTION: &str = "reinjection";

/// The workload a pod belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Owner {
    Restartable(Restartable),
    /// A ReplicaSet no Deployment owns.
    ReplicaSet,
    Job,
    /// A pod without a controller.
    Pod,
    /// Another controller (a CRD's), by kind.
    Other(String),
}

impl Owner {
    fn kind(&self) -> &str {
        match self {
            Owner::Restartable(r) => r.kind(),
            Owner::ReplicaSet => "ReplicaSet",
            Owner::Job => "Job",
            Owner::Pod => "Pod",
            Owner::Other(k) => k,
        }
    }

    fn api_version(&self) -> &str {
        match self {
            Owner::Restartable(_) | Owner::ReplicaSet => "apps/v1",
            Owner::Job => "batch/v1",
            Owner::Pod => "v1",
            Owner::Other(_) => "",
        }
    }
}

/// What is known of one workload's pods.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Coverage {
    /// Pods by state.
    pub states: BTreeMap<PodState, usize>,
    /// Pods that need a restart (missing or stale): (name, created, ordinal).
    #[serde(skip)]
    pub needing: Vec<(String, i64, Option<i32>)>,
    /// Pods not ready or terminating (an eviction waits for them).
    pub unready: usize,
    /// Example reason for the first pod needing a restart.
    pub why: Option<&'static str>,
}

impl Coverage {
    pub fn count(&self, s: PodState) -> usize {
        self.states.get(&s).copied().unwrap_or(0)
    }

    pub fn pods(&self) -> usize {
        self.states.iter().filter(|(s, _)| **s != PodState::Ignored).map(|(_, n)| n).sum()
    }
}

/// The whole assessment: per pod counts, per workload coverage, and the planner's input.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Assessment {
    pub pods: BTreeMap<PodState, usize>,
    /// Pods running a proxy, by version (tag).
    pub proxy_versions: BTreeMap<String, usize>,
    /// Pods per (namespace, state), for `per_namespace_metrics`.
    pub by_namespace: BTreeMap<(String, PodState), usize>,
    pub workloads: BTreeMap<(Owner, String, String), Coverage>,
    pub expected: Option<String>,
    pub restarts: RestartInput,
}

impl Assessment {
    /// Pods with a sidecar among those that should have one (1 when none should).
    pub fn coverage(&self) -> f64 {
        let n = |s| self.pods.get(&s).copied().unwrap_or(0);
        let wanted = n(PodState::Injected) + n(PodState::Stale) + n(PodState::Missing);
        if wanted == 0 { 1.0 } else { (n(PodState::Injected) + n(PodState::Stale)) as f64 / wanted as f64 }
    }
}

/// The StatefulSet ordinal of a pod name (`web-3` -> 3).
fn ordinal(name: &str) -> Option<i32> {
    name.rsplit_once('-').and_then(|(_, n)| n.parse().ok())
}

/// The injector's ConfigMap the settings mean (`<name>-<rev>` for a revision policy).
pub fn injector_configmap(view: &View<'_>) -> String {
    super::api::injector_configmap_name(view.settings)
}

/// Resolves a pod to its workload: ReplicaSets to their Deployment.
fn owner_of(pod: &PodInfo, view: &View<'_>) -> (Owner, String) {
    let Some((kind, name)) = pod.owner.as_deref() else { return (Owner::Pod, pod.name.to_string()) };
    match &**kind {
        "ReplicaSet" => {
            match view.replicasets.get(&format!("{}/{}", pod.namespace, name)).and_then(|rs| rs.owner.as_ref()) {
                Some((k, d)) if k == "Deployment" => (Owner::Restartable(Restartable::Deployment), d.clone()),
                Some((k, _)) => (Owner::Other(k.clone()), name.to_string()),
                None => (Owner::ReplicaSet, name.to_string()),
            }
        }
        "StatefulSet" => (Owner::Restartable(Restartable::StatefulSet), name.to_string()),
        "DaemonSet" => (Owner::Restartable(Restartable::DaemonSet), name.to_string()),
        "Job" => (Owner::Job, name.to_string()),
        other => (Owner::Other(other.to_string()), name.to_string()),
    }
}

fn rollout_of<'a>(
    kind: Restartable,
    ns: &str,
    name: &str,
    view: &View<'a>,
) -> Option<(&'a Rollout, Option<&'a SetInfo>)> {
    let key = format!("{ns}/{name}");
    match kind {
        Restartable::Deployment => view.deployments.get(&key).map(|d| (&d.rollout, None)),
        Restartable::StatefulSet => view.statefulsets.get(&key).map(|s| (&s.rollout, Some(s))),
        Restartable::DaemonSet => view.daemonsets.get(&key).map(|s| (&s.rollout, Some(s))),
    }
}

/// Every workload the planner may be watching roll, with its rollout state.
fn workloads<'a>(view: &View<'a>) -> impl Iterator<Item = (Restartable, &'a str, &'a str, &'a Rollout)> + 'a {
    let d =
        view.deployments.iter().map(|d| (Restartable::Deployment, d.namespace.as_str(), d.name.as_str(), &d.rollout));
    let s =
        view.statefulsets.iter().map(|s| (Restartable::StatefulSet, s.namespace.as_str(), s.name.as_str(), &s.rollout));
    let ds =
        view.daemonsets.iter().map(|s| (Restartable::DaemonSet, s.namespace.as_str(), s.name.as_str(), &s.rollout));
    d.chain(s).chain(ds)
}

fn workload_ref(owner: &Owner, ns: &str, name: &str) -> ObjectRef {
    ObjectRef::new(owner.api_version(), owner.kind(), Some(ns), name)
}

/// What the pods of one namespace contribute to an [`Assessment`]: the unit of incremental
/// evaluation (a pod event re-assesses its namespace, not the cluster).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Part {
    pods: BTreeMap<PodState, usize>,
    proxy_versions: BTreeMap<String, usize>,
    by_namespace: BTreeMap<(String, PodState), usize>,
    workloads: BTreeMap<(Owner, String, String), Coverage>,
}

/// Which namespaces changed since the last assessment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// Something every pod's verdict depends on (the injector, the webhook, a re-list), or unknown.
    All,
    Namespaces(std::collections::BTreeSet<String>),
}

/// The per-namespace parts of the last assessment, kept between evaluations.
#[derive(Debug, Default)]
pub struct Memo {
    parts: Option<BTreeMap<String, Part>>,
}

/// What classifying a pod needs besides the pod and its namespace.
fn with_context<R>(view: &View<'_>, f: impl FnOnce(&Context<'_>, &Expected) -> R) -> R {
    let s = &view.settings.reinjection;
    let injector = view.injector.get(&injector_configmap(view));
    let expected = Expected::from(&s.expected_proxy_version, injector);
    let names = super::control_plane::injector_config_names(view);
    let webhook = names.iter().find_map(|n| view.webhooks.get(n));
    let label = &view.settings.injection.label;
    let revision = (label.key == super::injection::ISTIO_REV).then_some(label.value.as_str());
    let ctx = Context { webhook, injector, revision, expected: &expected };
    f(&ctx, &expected)
}

/// Adds one pod to a part.
fn add_pod(part: &mut Part, pod: &PodInfo, ns: Option<&NamespaceInfo>, ctx: &Context<'_>, view: &View<'_>) {
    let Classified { state, why } = classify(pod, ns, ctx);
    *part.pods.entry(state).or_default() += 1;
    if view.settings.reinjection.per_namespace_metrics {
        *part.by_namespace.entry((pod.namespace.to_string(), state)).or_default() += 1;
    }
    if let (true, Some(img)) = (pod.has_proxy() && state != PodState::Ignored, pod.proxy_image.as_deref()) {
        *part.proxy_versions.entry(injector::proxy_version(img).to_string()).or_default() += 1;
    }
    if state == PodState::Ignored {
        // A pod on its way out still counts as one of its workload's pods not ready (the next
        // eviction waits for its replacement).
        if pod.terminating() && !pod.phase.completed() {
            let (owner, name) = owner_of(pod, view);
            part.workloads.entry((owner, pod.namespace.to_string(), name)).or_default().unready += 1;
        }
        return;
    }
    let (owner, name) = owner_of(pod, view);
    let cov = part.workloads.entry((owner, pod.namespace.to_string(), name)).or_default();
    *cov.states.entry(state).or_default() += 1;
    if !pod.ready() {
        cov.unready += 1;
    }
    if state.needs_restart() {
        cov.needing.push((pod.name.to_string(), pod.created, ordinal(&pod.name)));
        cov.why.get_or_insert(why);
    }
}

/// The part of one namespace (a range of the pod index).
fn part_of(view: &View<'_>, ctx: &Context<'_>, namespace: &str) -> Part {
    let ns = view.namespaces.get(namespace);
    let mut part = Part::default();
    for pod in view.pods.in_namespace(namespace) {
        add_pod(&mut part, pod, ns, ctx, view);
    }
    part
}

/// Every namespace's part, in one pass over the pods (they are sorted by namespace).
fn all_parts(view: &View<'_>, ctx: &Context<'_>) -> BTreeMap<String, Part> {
    let mut parts: BTreeMap<String, Part> = BTreeMap::new();
    let mut current: Option<(&str, Option<&NamespaceInfo>, Part)> = None;
    for pod in view.pods.iter() {
        if current.as_ref().is_none_or(|(n, _, _)| *n != &*pod.namespace) {
            if let Some((n, _, part)) = current.take() {
                parts.insert(n.to_string(), part);
            }
            current = Some((&pod.namespace, view.namespaces.get(&pod.namespace), Part::default()));
        }
        if let Some((_, ns, part)) = current.as_mut() {
            add_pod(part, pod, *ns, ctx, view);
        }
    }
    if let Some((n, _, part)) = current {
        parts.insert(n.to_string(), part);
    }
    parts
}

/// The assessment from its parts, plus what is not per namespace (rollouts in progress, the
/// injector's health).
fn combine<'p>(parts: impl Iterator<Item = &'p Part>, expected: &Expected, view: &View<'_>) -> Assessment {
    let mut a = Assessment { expected: expected.version().map(str::to_string), ..Default::default() };
    for p in parts {
        for (k, n) in &p.pods {
            *a.pods.entry(*k).or_default() += n;
        }
        for (k, n) in &p.proxy_versions {
            *a.proxy_versions.entry(k.clone()).or_default() += n;
        }
        for (k, n) in &p.by_namespace {
            *a.by_namespace.entry(k.clone()).or_default() += n;
        }
        // Workload keys carry their namespace: parts never share one.
        a.workloads.extend(p.workloads.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let s = &view.settings.reinjection;
    let now = view.now;
    let deadline = i64::from(s.progress_deadline_minutes) * 60;
    for (kind, ns, name, r) in workloads(view) {
        let object = workload_ref(&Owner::Restartable(kind), ns, name);
        if let Some(t) = r.restarted_at {
            if now - t <= 3600 {
                a.restarts.recent_restarts.push((object.clone(), t));
            }
            if r.restarted_by_meshkeeper && !r.complete() && now - t <= deadline && !r.progress_deadline_exceeded {
                a.restarts.in_progress.push((object, t));
            }
        }
    }
    a.restarts.injector_down = super::control_plane::webhook_status(view).problem(now);
    a
}

/// Everything the check and the planner need, from the caches alone.
pub fn assess(view: &View<'_>) -> Assessment {
    with_context(view, |ctx, expected| combine(all_parts(view, ctx).values(), expected, view))
}

/// As [`assess`], re-assessing only the namespaces that changed since the memo was made (all
/// of them the first time and after [`Changed::All`]). The result equals [`assess`]'s.
pub fn assess_incremental(view: &View<'_>, memo: &mut Memo, changed: &Changed) -> Assessment {
    with_context(view, |ctx, expected| {
        let parts = match (memo.parts.as_mut(), changed) {
            (Some(parts), Changed::Namespaces(names)) => {
                for ns in names {
                    let part = part_of(view, ctx, ns);
                    if part.pods.is_empty() {
                        parts.remove(ns);
                    } else {
                        parts.insert(ns.clone(), part);
                    }
                }
                parts
            }
            _ => memo.parts.insert(all_parts(view, ctx)),
        };
        combine(parts.values(), expected, view)
    })
}

/// Why a workload that needs a restart gets none (its finding), or its candidate.
enum Verdict {
    NoController,
    OptedOut(&'static str),
    Failed {
        restarted_at: i64,
    },
    Blocked(String),
    Candidate(Box<RestartCandidate>),
    /// Its object is not cached (yet).
    Unknown,
}

fn verdict(owner: &Owner, ns: &str, name: &str, cov: &Coverage, view: &View<'_>, injector_changed: i64) -> Verdict {
    let s = &view.settings.reinjection;
    let Owner::Restartable(kind) = owner else { return Verdict::NoController };
    let Some((r, set)) = rollout_of(*kind, ns, name, view) else { return Verdict::Unknown };
    if r.annotation(&s.opt_out_annotation.key) == Some(s.opt_out_annotation.value.as_str()) {
        return Verdict::OptedOut("the workload carries the opt-out annotation");
    }
    if view.namespaces.get(ns).and_then(|n| n.label(&s.namespace_opt_out_label.key))
        == Some(s.namespace_opt_out_label.value.as_str())
    {
        return Verdict::OptedOut("its namespace carries the opt-out label");
    }
    if let Some(t) = r.restarted_at {
        let all_since = cov.needing.iter().all(|(_, created, _)| *created >= t);
        // (Seconds: an injector change in the very second of the restart counts as before it.)
        if r.complete() && all_since && injector_changed <= t {
            return Verdict::Failed { restarted_at: t };
        }
    }
    let mut evict = None;
    let mut replacement_pending = false;
    match r.strategy {
        Strategy::Paused => return Verdict::Blocked("the Deployment is paused: kubectl rollout resume".into()),
        Strategy::OnDelete if !s.evict_on_delete => {
            return Verdict::Blocked(
                "updateStrategy OnDelete replaces pods only when they are deleted (set reinjection.evict_on_delete: true to evict them one at a time)".into(),
            );
        }
        Strategy::OnDelete => {
            // One pod at a time: only once every pod is ready again, the oldest first.
            if cov.unready == 0 {
                evict = cov.needing.iter().min_by_key(|(_, created, _)| *created).map(|(n, c, _)| (n.clone(), *c));
            } else {
                replacement_pending = true;
            }
        }
        Strategy::Partition(p) if cov.needing.iter().all(|(_, _, o)| o.is_some_and(|o| o < p)) => {
            return Verdict::Blocked(format!(
                "the StatefulSet's partition {p} keeps ordinals 0-{} on the old template: lower spec.updateStrategy.rollingUpdate.partition",
                p - 1
            ));
        }
        Strategy::Partition(_) | Strategy::Rolling => {}
    }
    let _ = set;
    Verdict::Candidate(Box::new(RestartCandidate {
        workload: workload_ref(owner, ns, name),
        kind: *kind,
        namespace: ns.to_string(),
        missing: cov.count(PodState::Missing),
        stale: cov.count(PodState::Stale),
        pods: cov.pods(),
        restarted_at: r.restarted_at,
        generation: r.generation,
        template_has_metadata: r.template != crate::cache::workload::TemplateMeta::NoMetadata,
        template_has_annotations: r.template == crate::cache::workload::TemplateMeta::Annotations,
        evict,
        replacement_pending,
    }))
}

fn summary(cov: &Coverage) -> String {
    let (m, st, n) = (cov.count(PodState::Missing), cov.count(PodState::Stale), cov.pods());
    match (m, st) {
        (0, s) => format!("{s} of {n} pod(s) run a stale proxy"),
        (m, 0) => format!("{m} of {n} pod(s) lack the sidecar"),
        (m, s) => format!("{m} of {n} pod(s) lack the sidecar and {s} run a stale proxy"),
    }
}

/// Builds the report and the planner's input from the assessment (pure).
pub fn evaluate(mut a: Assessment, view: &View<'_>, title: &'static str) -> Evaluation {
    let cm = injector_configmap(view);
    let injector = view.injector.get(&cm);
    let injector_changed = injector.map(|i| i.changed_at).unwrap_or(0);
    let mut items = Vec::new();
    match (injector, view.settings.reinjection.expected_proxy_version.is_empty()) {
        (Some(i), _) if !i.problems.is_empty() => items.push(Item::finding(
            format!("the injector's ConfigMap {cm} can be read"),
            Finding {
                check: CHECK,
                reason: "InjectorConfigUnreadable",
                severity: Severity::Warning,
                object: ObjectRef::new("v1", "ConfigMap", Some(&view.settings.control_plane.namespace), &cm),
                expected: "values and config as Istio writes them".into(),
                actual: i.problems.join("; "),
                remediable: false,
                message: format!("the injector's ConfigMap {cm}: {}", i.problems.join("; ")),
                hint: Some("set reinjection.expected_proxy_version, or check the injector's install".into()),
            },
        )),
        (None, true) => items.push(Item::skipped(
            "stale proxies can be told",
            format!(
                "no ConfigMap {cm} in {} and no reinjection.expected_proxy_version",
                view.settings.control_plane.namespace
            ),
        )),
        _ => items
            .push(Item::pass(format!("the injector injects proxy {}", a.expected.as_deref().unwrap_or("(unknown)")))),
    }
    let ns_cp = &view.settings.control_plane.namespace;
    let mut candidates = Vec::new();
    for ((owner, ns, name), cov) in &a.workloads {
        if cov.needing.is_empty() || ns == ns_cp {
            continue;
        }
        let object = workload_ref(owner, ns, name);
        let desc = format!("{} {ns}/{name} runs the current sidecar", owner.kind().to_lowercase());
        let what = summary(cov);
        let f = |reason, severity, message: String, hint: String| {
            Item::finding(
                desc.clone(),
                Finding {
                    check: CHECK,
                    reason,
                    severity,
                    object: object.clone(),
                    expected: format!(
                        "every pod injected with {}",
                        a.expected.as_deref().map(|v| format!("proxy {v}")).unwrap_or_else(|| "the sidecar".into())
                    ),
                    actual: what.clone(),
                    remediable: matches!(reason, "SidecarMissing" | "ProxyStale"),
                    message,
                    hint: Some(hint),
                },
            )
        };
        let kind = owner.kind().to_lowercase();
        match verdict(owner, ns, name, cov, view, injector_changed) {
            Verdict::Unknown => items.push(Item::skipped(desc, "the workload is not cached (yet)")),
            Verdict::NoController => items.push(f(
                "NoControllerToRestart",
                Severity::Warning,
                format!("{kind} {ns}/{name}: {what}; it has no controller meshkeeper could restart"),
                match owner {
                    Owner::Pod => format!("recreate it: kubectl -n {ns} delete pod {name} && re-apply its manifest"),
                    Owner::Job => format!("the next run of job {name} gets the sidecar; re-run it if it must have one now"),
                    _ => format!("restart it through its owner, or delete its pods: kubectl -n {ns} get pods"),
                },
            )),
            Verdict::OptedOut(why) => items.push(f(
                "ReinjectionOptedOut",
                Severity::Info,
                format!("{kind} {ns}/{name}: {what}; not restarted: {why}"),
                format!("kubectl -n {ns} rollout restart {kind} {name} when convenient"),
            )),
            Verdict::Failed { restarted_at } => items.push(f(
                "ReinjectionFailed",
                Severity::Error,
                format!(
                    "{kind} {ns}/{name}: restarted at {restarted_at} and its new pods still: {what} ({}); meshkeeper does not restart it again until its template or the injector changes",
                    cov.why.unwrap_or("the injector did not inject them")
                ),
                "check why the injector skips these pods: neverInjectSelector, the webhook's objectSelector, sidecar.istio.io/inject, or the injector's logs".into(),
            )),
            Verdict::Blocked(why) => items.push(f(
                "ReinjectionBlocked",
                Severity::Warning,
                format!("{kind} {ns}/{name}: {what}; a restart cannot roll it: {why}"),
                why,
            )),
            Verdict::Candidate(c) => {
                let (reason, message) = if c.missing > 0 {
                    ("SidecarMissing", format!("{kind} {ns}/{name}: {what} (created before its namespace was labelled, or while the injector was down)"))
                } else {
                    ("ProxyStale", format!(
                        "{kind} {ns}/{name}: {what}; the injector injects {}",
                        a.expected.as_deref().unwrap_or("another version")
                    ))
                };
                let hint = if view.settings.reinjection.mode == crate::config::Mode::Enforce {
                    "meshkeeper restarts it (reinjection.mode: enforce) when the budget, windows and injector allow; /status `waiting` says when".to_string()
                } else {
                    format!("kubectl -n {ns} rollout restart {kind} {name}, or set reinjection.mode: enforce")
                };
                items.push(f(reason, Severity::Warning, message, hint));
                candidates.push(*c);
            }
        }
    }
    let cov = a.coverage();
    items.push(Item::pass(format!(
        "sidecar coverage {:.1}% ({} pods injected, {} stale, {} missing)",
        cov * 100.0,
        a.pods.get(&PodState::Injected).copied().unwrap_or(0),
        a.pods.get(&PodState::Stale).copied().unwrap_or(0),
        a.pods.get(&PodState::Missing).copied().unwrap_or(0),
    )));
    a.restarts.candidates = candidates;
    let restarts = std::mem::take(&mut a.restarts);
    Evaluation {
        report: CheckReport { check: CHECK, title, items },
        remedies: vec![],
        restarts: Some(restarts),
        gauges: Some(samples(&a)),
    }
}

/// The check keeps the per-namespace parts of its last assessment (see [`assess_incremental`]).
#[derive(Debug, Default)]
pub struct ReinjectionCheck {
    memo: std::sync::Mutex<Memo>,
}

/// The resources whose changes are confined to their objects' namespaces here: a pod's state
/// depends on its pod, its namespace and its owners; anything else re-assesses every namespace.
const NAMESPACED_INPUTS: [Resource; 6] = [
    Resource::Pods,
    Resource::Namespaces,
    Resource::ReplicaSets,
    Resource::Deployments,
    Resource::StatefulSets,
    Resource::DaemonSets,
];

/// The namespaces to re-assess for these changes.
pub fn changed_namespaces(changes: Option<&super::Changes>, inputs: &[Resource]) -> Changed {
    let Some(changes) = changes else { return Changed::All };
    let mut names = std::collections::BTreeSet::new();
    for (r, ns) in &changes.namespaces {
        if !inputs.contains(r) {
            continue;
        }
        match ns {
            Some(set) if NAMESPACED_INPUTS.contains(r) => names.extend(set.iter().cloned()),
            _ => return Changed::All,
        }
    }
    Changed::Namespaces(names)
}

impl Check for ReinjectionCheck {
    fn name(&self) -> &'static str {
        CHECK
    }

    fn title(&self) -> &'static str {
        "Sidecar coverage and re-injection"
    }

    fn inputs(&self) -> &'static [Resource] {
        &[
            Resource::Pods,
            Resource::Namespaces,
            Resource::ReplicaSets,
            Resource::Deployments,
            Resource::StatefulSets,
            Resource::DaemonSets,
            Resource::Webhooks,
            Resource::Services,
            Resource::InjectorConfig,
        ]
    }

    fn evaluate(&self, view: &View<'_>) -> Evaluation {
        let changed = changed_namespaces(view.changes, self.inputs());
        let mut memo = self.memo.lock().unwrap_or_else(|p| p.into_inner());
        evaluate(assess_incremental(view, &mut memo, &changed), view, self.title())
    }
}

/// The gauge families of this check (read at scrape time from the last assessment).
pub const GAUGES: &[(&str, &str, &[&str])] = &[
    (
        "meshkeeper_pods",
        "Pods by sidecar state (injected, stale, missing, opted_out, not_in_scope, host_network, ignored).",
        &["state"],
    ),
    (
        "meshkeeper_sidecar_coverage_ratio",
        "Pods with a sidecar among those that should have one (1 when none should).",
        &[],
    ),
    ("meshkeeper_proxy_versions", "Pods running a proxy, by proxy version (image tag).", &["version"]),
    (
        "meshkeeper_pods_by_namespace",
        "Pods by namespace and sidecar state (only with reinjection.per_namespace_metrics).",
        &["target_namespace", "state"],
    ),
];

/// The series of [`GAUGES`].
pub fn samples(a: &Assessment) -> Vec<crate::metrics::Sample> {
    let mut out = Vec::new();
    for s in PodState::ALL {
        out.push((0, vec![s.as_str().to_string()], a.pods.get(&s).copied().unwrap_or(0) as f64));
    }
    out.push((1, vec![], a.coverage()));
    for (v, n) in &a.proxy_versions {
        out.push((2, vec![v.clone()], *n as f64));
    }
    for ((ns, s), n) in &a.by_namespace {
        out.push((3, vec![ns.clone(), s.as_str().to_string()], *n as f64));
    }
    out
}

#[cfg(test)]
mod tests;
