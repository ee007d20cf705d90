//! The scheduler and the kubelet.
//!
//! - Scheduler (an admission step, so a pod costs no extra write): a new pod gets what the API
//!   server sets at create (`status.phase: Pending`, `qosClass`) and, when it names no node, the
//!   next Ready node (round robin) whose labels match its `nodeSelector` and whose NoSchedule /
//!   NoExecute taints it tolerates, with `PodScheduled: True`. No node fits: it stays Pending
//!   with `PodScheduled: False` (Unschedulable) until a node changes. A sim without Node
//!   objects binds to a virtual node, `kube-sim-node`.
//! - Kubelet: Pending -> Running (containers started; native sidecars and init containers get
//!   `initContainerStatuses`) after `start_delay`, -> Ready after `ready_delay`; containers named
//!   in `Actors::set_crashing` sit in CrashLoopBackOff instead (never Ready). Pods that run to
//!   completion (`restartPolicy` Never/OnFailure) exit 0 after `job_duration` and become
//!   Succeeded — unless a classic (non-native) `istio-proxy` container keeps them Running, as on
//!   a real mesh. A deleted pod (graceful deletion is on when `termination` > 0) stays
//!   Terminating for `termination` (at most its grace period), then goes away. Pods bound to a
//!   deleted node are removed (pod garbage collection).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use super::util::{self, deleting, pod_phase, pod_ready};
use super::{Ctx, Key, Kind, Queue, lock};
use crate::ApiError;
use crate::store::{Admission, Store};

/// The kubelet's timing. The default is instant (a pod goes from Pending to Running and Ready in
/// one status write, as fast as the old kube-sim, which existing tests rely on); use
/// [`KubeletOptions::slow`] or the setters to see every step a real pod goes through.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeletOptions {
    /// Off: pods stay Pending (the scheduler still binds them). For bulk seeding.
    pub enabled: bool,
    /// Pending -> Running.
    pub start_delay: Duration,
    /// Running -> Ready.
    pub ready_delay: Duration,
    /// How long a deleted pod stays Terminating (bounded by its grace period). Zero: deletion
    /// removes pods at once (graceful deletion off).
    pub termination: Duration,
    /// How long a run-to-completion pod runs before it succeeds.
    pub job_duration: Duration,
}

impl Default for KubeletOptions {
    fn default() -> Self {
        Self::instant()
    }
}

impl KubeletOptions {
    /// Pods go straight to Running and Ready (one status write per pod); Job pods straight to
    /// Succeeded.
    pub fn instant() -> Self {
        KubeletOptions {
            enabled: true,
            start_delay: Duration::ZERO,
            ready_delay: Duration::ZERO,
            termination: Duration::ZERO,
            job_duration: Duration::ZERO,
        }
    }
    /// No kubelet: pods stay Pending.
    pub fn off() -> Self {
        KubeletOptions { enabled: false, ..Self::instant() }
    }
    /// Slow enough to watch: each step after `d` (rollouts are observably in progress).
    pub fn slow(d: Duration) -> Self {
        KubeletOptions { start_delay: d / 2, ready_delay: d / 2, job_duration: d, ..Default::default() }
    }
    pub fn termination(mut self, d: Duration) -> Self {
        self.termination = d;
        self
    }
    pub fn ready_delay(mut self, d: Duration) -> Self {
        self.ready_delay = d;
        self
    }
    pub fn start_delay(mut self, d: Duration) -> Self {
        self.start_delay = d;
        self
    }
    pub fn job_duration(mut self, d: Duration) -> Self {
        self.job_duration = d;
        self
    }
}

/// What the kubelet remembers between steps.
#[derive(Debug, Default)]
pub struct KubeletState {
    next_ip: u32,
}

impl KubeletState {
    fn pod_ip(&mut self) -> String {
        self.next_ip += 1;
        let n = self.next_ip;
        format!("10.{}.{}.{}", 4 + (n >> 16) % 200, (n >> 8) & 255, (n & 255).max(1))
    }
}

/// The virtual node pods are bound to when the sim has no Node objects.
pub const VIRTUAL_NODE: &str = "kube-sim-node";

/// A pod event: which kubelet step is next.
pub fn route_pod(q: &mut Queue, k: &KubeletOptions, kind: &str, pod: &Value) {
    if kind == "DELETED" || !k.enabled {
        return;
    }
    let (ns, name) = (util::namespace(pod), util::name(pod));
    if deleting(pod) {
        let grace = pod["metadata"]["deletionGracePeriodSeconds"].as_f64().unwrap_or(0.0).max(0.0);
        q.after(Key::new(Kind::PodRemove, ns, name), k.termination.min(Duration::from_secs_f64(grace)));
        return;
    }
    if pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
        return;
    }
    if matches!(pod_phase(pod), "" | "Pending") && kind == "ADDED"
        || (kind == "MODIFIED" && pod_phase(pod) == "Pending" && util::condition(pod, "Initialized").is_none())
    {
        q.after(Key::new(Kind::PodStart, ns, name), k.start_delay);
    }
}

/// After missed events: the kubelet step each pod is waiting for, at once.
pub fn resync_pod(q: &mut Queue, pod: &Value) {
    let (ns, name) = (util::namespace(pod), util::name(pod));
    let step = match pod_phase(pod) {
        _ if deleting(pod) => Kind::PodRemove,
        "" | "Pending" => Kind::PodStart,
        "Running" if !pod_ready(pod) => Kind::PodReady,
        "Running" if runs_to_completion(pod) => Kind::PodFinish,
        _ => return,
    };
    q.add(Key::new(step, ns, name));
}

fn runs_to_completion(pod: &Value) -> bool {
    matches!(pod["spec"]["restartPolicy"].as_str(), Some("Never" | "OnFailure"))
}

fn restartable(c: &Value) -> bool {
    c["restartPolicy"] == "Always"
}

fn cond(ty: &str, status: bool, reason: Option<&str>, message: Option<String>, now: &str) -> Value {
    let mut c = json!({"type": ty, "status": if status { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": now});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    c
}

/// Keeps a condition's lastTransitionTime when its status did not change.
fn keep_transitions(old: &Value, mut conds: Vec<Value>) -> Vec<Value> {
    for c in &mut conds {
        if let Some(prev) = util::condition(old, c["type"].as_str().unwrap_or_default())
            && prev["status"] == c["status"]
            && prev["lastTransitionTime"].is_string()
        {
            c["lastTransitionTime"] = prev["lastTransitionTime"].clone();
        }
    }
    conds
}

#[derive(Clone, Copy, PartialEq)]
enum Stage {
    Started,
    Ready,
    Completed,
}

fn container_id(ns: &str, pod: &str, c: &str) -> String {
    let h = util::fnv32a(format!("{ns}/{pod}/{c}").as_bytes());
    format!("containerd://{h:08x}{:08x}{h:08x}{:08x}", h.rotate_left(7), h.rotate_left(13))
}

fn image_id(image: &str) -> String {
    let repo = image.split('@').next().unwrap_or(image);
    let repo = repo.rsplit_once(':').filter(|(_, t)| !t.contains('/')).map_or(repo, |(r, _)| r);
    let h = util::fnv32a(image.as_bytes());
    format!("{repo}@sha256:{h:08x}{:056x}", u64::from(h))
}

/// One container's status at a stage.
fn container_status(ns: &str, pod: &str, ct: &Value, stage: Stage, crashing: bool, started_at: &str) -> Value {
    let name = ct["name"].as_str().unwrap_or_default();
    let image = ct["image"].as_str().unwrap_or_default();
    let mut s = json!({"name": name, "image": image, "imageID": image_id(image), "containerID": container_id(ns, pod, name),
        "restartCount": 0, "started": true, "ready": stage == Stage::Ready, "lastState": {},
        "state": {"running": {"startedAt": started_at}}});
    if crashing {
        s["ready"] = json!(false);
        s["started"] = json!(false);
        s["restartCount"] = json!(5);
        s["state"] = json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off 2m40s restarting failed container={name} pod={pod}_{ns}({})", "")}});
        s["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": started_at, "finishedAt": util::now_rfc3339(), "containerID": container_id(ns, pod, name)}});
    } else if stage == Stage::Completed {
        s["ready"] = json!(false);
        s["started"] = json!(false);
        s["state"] = json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started_at, "finishedAt": util::now_rfc3339(), "containerID": container_id(ns, pod, name)}});
    }
    s
}

/// The whole status of a pod at a stage (conditions, IPs, container statuses).
fn pod_status(ctx: &mut Ctx, pod: &Value, stage: Stage) -> Value {
    let ns = util::namespace(pod);
    let name = util::name(pod);
    let now = util::now_rfc3339();
    let crashing = lock(ctx.crashing).clone();
    let old = &pod["status"];
    let started_at = old["startTime"].as_str().map(str::to_string).unwrap_or_else(|| now.clone());
    let running_at = |cs: &Value| -> String {
        cs["state"]["running"]["startedAt"].as_str().map(str::to_string).unwrap_or_else(|| started_at.clone())
    };
    let prev = |list: &str, n: &str| -> Value {
        old[list].as_array().and_then(|a| a.iter().find(|c| c["name"] == n).cloned()).unwrap_or(Value::Null)
    };
    let mut inits = Vec::new();
    for ct in pod["spec"]["initContainers"].as_array().into_iter().flatten() {
        let n = ct["name"].as_str().unwrap_or_default();
        let p = prev("initContainerStatuses", n);
        if restartable(ct) {
            // A native sidecar runs alongside the app; it stops last when the pod completes.
            let s = if stage == Stage::Completed { Stage::Completed } else { stage };
            let mut st = container_status(ns, name, ct, s, crashing.contains(n), &running_at(&p));
            if s == Stage::Started {
                st["ready"] = json!(false);
            }
            inits.push(st);
        } else {
            let mut st = container_status(ns, name, ct, Stage::Completed, false, &started_at);
            st["ready"] = json!(false);
            inits.push(st);
        }
    }
    let mut containers = Vec::new();
    for ct in pod["spec"]["containers"].as_array().into_iter().flatten() {
        let n = ct["name"].as_str().unwrap_or_default();
        let p = prev("containerStatuses", n);
        // A classic istio-proxy sidecar never exits: the pod of a Job never completes.
        let s = if stage == Stage::Completed && n == "istio-proxy" { Stage::Ready } else { stage };
        let crash = crashing.contains(n) && !(stage == Stage::Completed && n != "istio-proxy");
        let mut st = container_status(ns, name, ct, s, crash, &running_at(&p));
        // A container that crashed before keeps its restart count (and last termination).
        if !crash && p["restartCount"].as_i64().unwrap_or(0) > 0 {
            st["restartCount"] = p["restartCount"].clone();
            st["lastState"] = p["lastState"].clone();
            st["state"] = json!({"running": {"startedAt": util::now_rfc3339()}});
            if s == Stage::Completed {
                st["state"] = json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started_at, "finishedAt": now, "containerID": container_id(ns, name, n)}});
            }
        }
        if crash && runs_to_completion(pod) && pod["spec"]["restartPolicy"] == "Never" {
            st["state"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": started_at, "finishedAt": now, "containerID": container_id(ns, name, n)}});
            st["lastState"] = json!({});
            st["restartCount"] = json!(0);
        }
        containers.push(st);
    }
    let running_left = containers.iter().any(|c| c["state"]["running"].is_object());
    let failed = containers.iter().any(|c| c["state"]["terminated"]["exitCode"].as_i64().is_some_and(|x| x != 0));
    let phase = match stage {
        _ if failed && !running_left && pod["spec"]["restartPolicy"] == "Never" => "Failed",
        Stage::Completed if !running_left => "Succeeded",
        _ => "Running",
    };
    let sidecars_ready = inits
        .iter()
        .zip(pod["spec"]["initContainers"].as_array().into_iter().flatten())
        .filter(|(_, ct)| restartable(ct))
        .all(|(s, _)| s["ready"] == true);
    let unready: Vec<&str> = containers
        .iter()
        .chain(
            inits
                .iter()
                .zip(pod["spec"]["initContainers"].as_array().into_iter().flatten())
                .filter(|(_, ct)| restartable(ct))
                .map(|(s, _)| s),
        )
        .filter(|s| s["ready"] != true)
        .filter_map(|s| s["name"].as_str())
        .collect();
    let all_ready = containers.iter().all(|s| s["ready"] == true) && sidecars_ready;
    let done = phase == "Succeeded" || phase == "Failed";
    let unready_msg = (!all_ready && !done).then(|| format!("containers with unready status: [{}]", unready.join(" ")));
    let ready_reason = if done {
        Some("PodCompleted")
    } else if all_ready {
        None
    } else {
        Some("ContainersNotReady")
    };
    let conds = vec![
        cond("PodReadyToStartContainers", !done, None, None, &now),
        cond("Initialized", true, done.then_some("PodCompleted"), None, &now),
        cond("Ready", all_ready && !done, ready_reason, unready_msg.clone(), &now),
        cond("ContainersReady", all_ready && !done, ready_reason, unready_msg, &now),
        cond("PodScheduled", true, None, None, &now),
    ];
    let host_ip = host_ip(ctx, pod["spec"]["nodeName"].as_str().unwrap_or_default());
    let pod_ip = match old["podIP"].as_str() {
        Some(ip) => ip.to_string(),
        None if pod["spec"]["hostNetwork"] == true => host_ip.clone(),
        None => ctx.state.kubelet.pod_ip(),
    };
    let mut st = json!({"phase": phase, "conditions": keep_transitions(pod, conds),
        "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
        "startTime": started_at, "containerStatuses": containers,
        "qosClass": old["qosClass"].as_str().unwrap_or("BestEffort")});
    if !inits.is_empty() {
        st["initContainerStatuses"] = Value::Array(inits);
    }
    st
}

fn host_ip(ctx: &Ctx, node: &str) -> String {
    let n = ctx.c.get("v1", "nodes", "", node);
    if let Some(ip) = n.as_ref().and_then(|n| {
        n["status"]["addresses"].as_array()?.iter().find(|a| a["type"] == "InternalIP")?["address"]
            .as_str()
            .map(str::to_string)
    }) {
        return ip;
    }
    let idx = ctx.c.keys("v1", "nodes").iter().position(|(_, n)| n == node).unwrap_or(0);
    format!("10.0.0.{}", 11 + idx)
}

fn write(ctx: &mut Ctx, pod: &Value, status: Value) -> Result<Value, ApiError> {
    let body = json!({"metadata": {"resourceVersion": pod["metadata"]["resourceVersion"]},
        "status": util::merge_diff(if pod["status"].is_object() { &pod["status"] } else { &Value::Null }, &status)});
    ctx.c.patch_status_by("v1", "pods", util::namespace(pod), util::name(pod), &body, "kubelet")
}

pub fn reconcile(ctx: &mut Ctx, step: Kind, ns: &str, name: &str) -> Result<(), ApiError> {
    let Some(pod) = ctx.c.get("v1", "pods", ns, name) else { return Ok(()) };
    if step == Kind::PodRemove {
        if deleting(&pod) && ctx.kubelet.enabled {
            let grace = pod["metadata"]["deletionGracePeriodSeconds"].as_f64().unwrap_or(0.0).max(0.0);
            let since = pod["metadata"]["deletionTimestamp"].as_str().and_then(util::parse_time).map(|t| t - grace);
            let wait = ctx.kubelet.termination.min(Duration::from_secs_f64(grace)).as_secs_f64();
            // Keyed by the time the deletion was asked for (deletionTimestamp minus the grace).
            match since {
                Some(t) if t + wait > util::now_secs() + 0.001 => {
                    ctx.q.at(Key::new(Kind::PodRemove, ns, name), t + wait)
                }
                _ => {
                    ctx.c.remove_terminated_pod(ns, name);
                }
            }
        }
        return Ok(());
    }
    if !ctx.kubelet.enabled || deleting(&pod) || pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
        return Ok(());
    }
    let crashing = lock(ctx.crashing).clone();
    let any_crashing = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(pod["spec"]["initContainers"].as_array().into_iter().flatten().filter(|c| restartable(c)))
        .any(|c| c["name"].as_str().is_some_and(|n| crashing.contains(n)));
    match (step, pod_phase(&pod)) {
        (Kind::PodStart, "" | "Pending") => {
            let ready_now = ctx.kubelet.ready_delay.is_zero() && !any_crashing;
            let finish_now = ready_now && runs_to_completion(&pod) && ctx.kubelet.job_duration.is_zero();
            let stage = if finish_now {
                Stage::Completed
            } else if ready_now {
                Stage::Ready
            } else {
                Stage::Started
            };
            let status = pod_status(ctx, &pod, stage);
            write(ctx, &pod, status)?;
            if stage == Stage::Started && !any_crashing {
                ctx.q.after(Key::new(Kind::PodReady, ns, name), ctx.kubelet.ready_delay);
            }
            if runs_to_completion(&pod) && stage != Stage::Completed {
                let d = ctx.kubelet.job_duration.max(ctx.kubelet.ready_delay);
                ctx.q.after(Key::new(Kind::PodFinish, ns, name), d);
            }
        }
        (Kind::PodReady, "Running") if !pod_ready(&pod) && !any_crashing => {
            let status = pod_status(ctx, &pod, Stage::Ready);
            write(ctx, &pod, status)?;
        }
        (Kind::PodFinish, "Running") => {
            let status = pod_status(ctx, &pod, Stage::Completed);
            write(ctx, &pod, status)?;
        }
        _ => {}
    }
    Ok(())
}

/// Pod garbage collection: pods bound to a node that no longer exists go.
pub fn node_gone(ctx: &mut Ctx, node: &str) -> Result<(), ApiError> {
    if ctx.c.get("v1", "nodes", "", node).is_some() {
        return Ok(());
    }
    for pod in ctx.c.list("v1", "pods", None) {
        if pod["spec"]["nodeName"] == node {
            ctx.c.remove_terminated_pod(util::namespace(&pod), util::name(&pod));
        }
    }
    Ok(())
}

/// Binds pods the scheduler could not place when they were created (a node may fit now).
pub fn schedule_pending(ctx: &mut Ctx) -> Result<(), ApiError> {
    let nodes = ctx.c.list("v1", "nodes", None);
    for pod in ctx.c.list("v1", "pods", None) {
        if deleting(&pod) || pod["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty()) {
            continue;
        }
        let Some(node) = pick_node(&pod, nodes.iter(), 0) else { continue };
        let patch = json!({"spec": {"nodeName": node}});
        let bound = super::patch_obj(ctx.c, "v1", "pods", &pod, patch)?;
        let mut conds: Vec<Value> = bound["status"]["conditions"].as_array().cloned().unwrap_or_default();
        util::set_condition(
            &mut conds,
            json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": util::now_rfc3339()}),
        );
        let mut status = bound["status"].clone();
        status["conditions"] = Value::Array(conds);
        if let Some(m) = status.as_object_mut() {
            m.remove("nominatedNodeName");
        }
        write(ctx, &bound, status)?;
    }
    Ok(())
}

fn tolerates(pod: &Value, taint: &Value) -> bool {
    let effect = taint["effect"].as_str().unwrap_or_default();
    if effect == "PreferNoSchedule" {
        return true;
    }
    let key = taint["key"].as_str().unwrap_or_default();
    // Tolerations every pod of these kinds gets by default (DaemonSet pods tolerate cordoned nodes).
    let daemon = util::controller_of(pod).is_some_and(|(k, _, _)| k == "DaemonSet");
    if daemon && key == "node.kubernetes.io/unschedulable" {
        return true;
    }
    pod["spec"]["tolerations"].as_array().into_iter().flatten().any(|t| {
        let tkey = t["key"].as_str().unwrap_or_default();
        let key_ok = tkey.is_empty() && t["operator"] == "Exists" || tkey == key;
        let value_ok = t["operator"] == "Exists"
            || t["value"].as_str().unwrap_or_default() == taint["value"].as_str().unwrap_or_default();
        let effect_ok = t["effect"].as_str().is_none_or(|e| e.is_empty() || e == effect);
        key_ok && value_ok && effect_ok
    })
}

/// Whether a pod may run on a node (selector, node affinity on `metadata.name`, taints, Ready).
pub fn fits(pod: &Value, node: &Value) -> bool {
    let labels = &node["metadata"]["labels"];
    let ready = util::condition(node, "Ready").is_some_and(|c| c["status"] == "True");
    let selector_ok = pod["spec"]["nodeSelector"]
        .as_object()
        .is_none_or(|m| m.iter().all(|(k, v)| labels.get(k).is_some_and(|l| l == v)));
    let unschedulable = node["spec"]["unschedulable"] == true;
    let mut taints: Vec<Value> = node["spec"]["taints"].as_array().cloned().unwrap_or_default();
    if unschedulable {
        taints.push(json!({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}));
    }
    let taints_ok = taints.iter().all(|t| tolerates(pod, t));
    let affinity_ok = match pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"].as_array() {
        None => true,
        Some(terms) => terms.iter().any(|t| {
            let fields_ok = t["matchFields"].as_array().into_iter().flatten().all(|f| {
                f["key"] == "metadata.name"
                    && f["operator"] == "In"
                    && f["values"].as_array().is_some_and(|v| v.iter().any(|v| v == &node["metadata"]["name"]))
            });
            let exprs_ok = t["matchExpressions"].as_array().into_iter().flatten().all(|e| {
                let key = e["key"].as_str().unwrap_or_default();
                let have = labels.get(key).and_then(Value::as_str);
                let vals: Vec<&str> = e["values"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
                match e["operator"].as_str() {
                    Some("In") => have.is_some_and(|h| vals.contains(&h)),
                    Some("NotIn") => have.is_none_or(|h| !vals.contains(&h)),
                    Some("Exists") => have.is_some(),
                    Some("DoesNotExist") => have.is_none(),
                    _ => false,
                }
            });
            fields_ok && exprs_ok
        }),
    };
    ready && selector_ok && taints_ok && affinity_ok
}

fn pick_node<'a>(pod: &Value, nodes: impl Iterator<Item = &'a Value>, turn: usize) -> Option<String> {
    let fitting: Vec<&Value> = nodes.filter(|n| fits(pod, n)).collect();
    if fitting.is_empty() {
        return None;
    }
    Some(util::name(fitting[turn % fitting.len()]).to_string())
}

fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = pod["spec"]["containers"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
    let has = |c: &Value, k: &str| c["resources"][k].as_object().is_some_and(|m| !m.is_empty());
    if containers.iter().all(|c| !has(c, "requests") && !has(c, "limits")) {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let l = &c["resources"]["limits"][*r];
            !l.is_null() && (c["resources"]["requests"][*r].is_null() || &c["resources"]["requests"][*r] == l)
        })
    });
    if guaranteed { "Guaranteed" } else { "Burstable" }
}

/// The admission step for pods: what the API server sets at create, and the scheduler's binding.
pub fn scheduler_hook() -> Admission {
    let turn = Arc::new(AtomicUsize::new(0));
    Arc::new(move |store: &Store, rt, _ns, pod| {
        if rt.kind != "Pod" || !rt.group.is_empty() {
            return Ok(());
        }
        if !pod["status"]["phase"].is_string() {
            pod["status"] = json!({"phase": "Pending", "qosClass": qos_class(pod)});
        }
        if !pod["spec"].is_object() || pod["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty()) {
            return Ok(());
        }
        let Some(nti) = store.type_index("", "v1", "nodes") else { return Ok(()) };
        let nodes: Vec<&Value> = store.iter(nti, None, None).map(|(_, s)| &*s.value).collect();
        let now = util::now_rfc3339();
        let node = if nodes.is_empty() {
            Some(VIRTUAL_NODE.to_string())
        } else {
            pick_node(pod, nodes.iter().copied(), turn.fetch_add(1, Ordering::Relaxed))
        };
        match node {
            Some(n) => {
                pod["spec"]["nodeName"] = json!(n);
                pod["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}]);
            }
            None => {
                let n = nodes.len();
                pod["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "False", "lastProbeTime": null, "lastTransitionTime": now,
                    "reason": "Unschedulable", "message": format!("0/{n} nodes are available: {n} node(s) didn't match Pod's node affinity/selector, or had untolerated taints, or were not ready. preemption: 0/{n} nodes are available: {n} Preemption is not helpful for scheduling.")}]);
            }
        }
        Ok(())
    })
}
