//! The StatefulSet controller (upstream `pkg/controller/statefulset/stateful_set_control.go`):
//!
//! - pods `{name}-0..{n-1}` with `controller-revision-hash: {name}-{hash}`,
//!   `statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index`, `hostname` and
//!   `subdomain` (`serviceName`), from ControllerRevisions (see [`super::history`]);
//! - `OrderedReady` (default): one pod at a time in ordinal order, each Running and Ready (and
//!   available after `minReadySeconds`) before the next; scale-down from the highest ordinal;
//!   `Parallel`: all at once;
//! - RollingUpdate: once every pod is healthy, the highest-ordinal pod not at the update
//!   revision is deleted and recreated at it, waiting for it to be Ready before the next; only
//!   ordinals >= `partition` roll, lower ones are recreated at the current revision;
//!   `currentRevision` becomes `updateRevision` when every pod is updated and ready;
//! - OnDelete: nothing is replaced; a pod deleted by someone comes back at the update revision
//!   (transcript 12: `updateRevision` changes, pods keep their hash until deleted, and
//!   `currentRevision` stays — as upstream, only RollingUpdate completes it);
//! - status: `observedGeneration`, `replicas`, `readyReplicas`, `currentReplicas`,
//!   `updatedReplicas` (zeros omitted), `currentRevision`, `updateRevision`, `collisionCount`,
//!   `availableReplicas`.
//!
//! Not modelled: volumeClaimTemplates (no PVCs), `maxUnavailable`, `ordinals.start`,
//! `persistentVolumeClaimRetentionPolicy`.

use serde_json::{Value, json};

use super::history;
use super::replicaset::pod_from_template;
use super::util::{self, controlled_by, deleting, int_or, pod_ready};
use super::{CONTROLLER_MANAGER, Ctx, Key, Kind, write_status};
use crate::ApiError;

pub const REVISION_LABEL: &str = "controller-revision-hash";
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

fn pod_revision(pod: &Value) -> &str {
    pod["metadata"]["labels"][REVISION_LABEL].as_str().unwrap_or_default()
}

fn running_and_ready(pod: &Value) -> bool {
    util::pod_phase(pod) == "Running" && pod_ready(pod)
}

fn available(pod: &Value, min_ready: i64) -> bool {
    running_and_ready(pod) && util::pod_available(pod, min_ready, util::now_secs())
}

fn healthy(pod: &Value, min_ready: i64) -> bool {
    available(pod, min_ready) && !deleting(pod)
}

/// The ordinal of a pod named `{set}-{n}`.
fn ordinal(set: &str, pod: &str) -> Option<usize> {
    let n = pod.strip_prefix(set)?.strip_prefix('-')?;
    if n.is_empty() || (n.len() > 1 && n.starts_with('0')) || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

fn new_pod(set: &Value, rev: &Value, ordinal: usize) -> Value {
    let name = format!("{}-{ordinal}", util::name(set));
    let template = history::template_of(rev);
    let mut pod = pod_from_template(&template, set, "");
    if let Some(m) = pod["metadata"].as_object_mut() {
        m.remove("generateName");
    }
    pod["metadata"]["name"] = json!(name);
    if !pod["metadata"]["labels"].is_object() {
        pod["metadata"]["labels"] = json!({});
    }
    pod["metadata"]["labels"][POD_NAME_LABEL] = json!(name);
    pod["metadata"]["labels"][POD_INDEX_LABEL] = json!(ordinal.to_string());
    pod["metadata"]["labels"][REVISION_LABEL] = json!(util::name(rev));
    if !pod["spec"].is_object() {
        pod["spec"] = json!({});
    }
    pod["spec"]["hostname"] = json!(name);
    if let Some(svc) = set["spec"]["serviceName"].as_str().filter(|s| !s.is_empty()) {
        pod["spec"]["subdomain"] = json!(svc);
    }
    pod
}

pub fn reconcile(ctx: &mut Ctx, ns: &str, name: &str) -> Result<(), ApiError> {
    let Some(set) = ctx.c.get("apps/v1", "statefulsets", ns, name) else { return Ok(()) };
    if !set["spec"]["selector"].is_object() || util::selector_is_empty(&set["spec"]["selector"]) {
        return Ok(());
    }
    let uid = util::uid(&set).to_string();
    let revisions = history::owned(ctx, &set);
    let collisions = int_or(&set["status"]["collisionCount"], 0);
    let (update_rev, collisions) = history::update_revision(ctx, &set, &revisions, collisions)?;
    let revisions = history::owned(ctx, &set);
    let current_rev = set["status"]["currentRevision"]
        .as_str()
        .and_then(|n| revisions.iter().find(|r| util::name(r) == n))
        .cloned()
        .unwrap_or_else(|| update_rev.clone());
    let (cur_name, upd_name) = (util::name(&current_rev).to_string(), util::name(&update_rev).to_string());
    let replicas = util::replicas(&set).max(0) as usize;
    let min_ready = int_or(&set["spec"]["minReadySeconds"], 0);
    let pods: Vec<Value> =
        ctx.c.list_owned("v1", "pods", ns, &uid).into_iter().filter(|p| controlled_by(p, &uid)).collect();
    let mut slots: Vec<Option<Value>> = vec![None; replicas];
    let mut condemned: Vec<Value> = Vec::new();
    for p in pods {
        match ordinal(name, util::name(&p)) {
            Some(o) if o < replicas => slots[o] = Some(p),
            Some(_) => condemned.push(p),
            None => {}
        }
    }
    condemned.sort_by_key(|p| std::cmp::Reverse(ordinal(name, util::name(p))));
    // The spec as the API server defaulted it (OrderedReady, RollingUpdate, partition 0).
    let monotonic = set["spec"]["podManagementPolicy"] != "Parallel";
    let rolling = set["spec"]["updateStrategy"]["type"] == "RollingUpdate";
    let partition = if rolling {
        int_or(&set["spec"]["updateStrategy"]["rollingUpdate"]["partition"], 0).max(0) as usize
    } else {
        0
    };
    let status_before = set["status"].clone();
    let first_unhealthy = slots
        .iter()
        .flatten()
        .chain(condemned.iter().rev())
        .find(|p| !healthy(p, min_ready))
        .map(|p| util::name(p).to_string());
    let status_pods: Vec<Value> = slots.iter().flatten().cloned().chain(condemned.iter().cloned()).collect();
    let mut current_replicas_delta = 0i64;
    if !deleting(&set) {
        'work: {
            // Each ordinal in order: replace finished pods, create missing ones, wait for health.
            for (i, slot) in slots.iter().enumerate() {
                match slot {
                    Some(p) if util::pod_terminal(p) => {
                        if !deleting(p) {
                            delete_pod(ctx, ns, util::name(p))?;
                        }
                        break 'work;
                    }
                    None => {
                        let below_partition = rolling && i < partition;
                        let rev = if below_partition { &current_rev } else { &update_rev };
                        let pod = new_pod(&set, rev, i);
                        match ctx.c.create_by("v1", "pods", ns, pod, CONTROLLER_MANAGER) {
                            Ok(_) => {}
                            Err(e) if e.code == 409 => {}
                            Err(e) => return Err(e),
                        }
                        if monotonic {
                            break 'work;
                        }
                    }
                    Some(p) => {
                        if monotonic && (deleting(p) || !running_and_ready(p)) {
                            break 'work;
                        }
                        if monotonic && !available(p, min_ready) {
                            if let Some(at) = util::pod_available_at(p, min_ready) {
                                ctx.q.at(Key::new(Kind::StatefulSet, ns, name), at);
                            }
                            break 'work;
                        }
                    }
                }
            }
            // Scale down from the highest ordinal.
            for p in &condemned {
                if deleting(p) {
                    if monotonic {
                        break 'work;
                    }
                    continue;
                }
                if monotonic && !healthy(p, min_ready) && first_unhealthy.as_deref() != Some(util::name(p)) {
                    break 'work;
                }
                delete_pod(ctx, ns, util::name(p))?;
                if monotonic {
                    break 'work;
                }
            }
            if !rolling {
                break 'work;
            }
            // Rolling update: the highest ordinal not at the update revision goes first.
            for i in (partition..replicas).rev() {
                let Some(p) = &slots[i] else { break 'work };
                if pod_revision(p) != upd_name && !deleting(p) {
                    delete_pod(ctx, ns, util::name(p))?;
                    current_replicas_delta -= 1;
                    break 'work;
                }
                if !healthy(p, min_ready) {
                    break 'work;
                }
            }
        }
    }
    // Status from the pods as read (a pod deleted for the update no longer counts as current).
    let count = |f: &dyn Fn(&Value) -> bool| status_pods.iter().filter(|p| f(p)).count() as i64;
    let created = |p: &Value| !util::pod_phase(p).is_empty();
    let n_replicas = count(&|p| created(p));
    let ready = count(&running_and_ready);
    let avail = count(&|p| available(p, min_ready));
    let current = count(&|p| created(p) && !deleting(p) && pod_revision(p) == cur_name) + current_replicas_delta;
    let updated = count(&|p| created(p) && !deleting(p) && pod_revision(p) == upd_name);
    let (mut cur_name, mut current) = (cur_name, current);
    // completeRollingUpdate
    if rolling && updated == n_replicas && ready == n_replicas {
        current = updated;
        cur_name = upd_name.clone();
    }
    let mut status = json!({"observedGeneration": util::generation(&set), "replicas": n_replicas,
        "currentRevision": cur_name, "updateRevision": upd_name, "collisionCount": collisions, "availableReplicas": avail});
    for (k, v) in [("readyReplicas", ready), ("currentReplicas", current), ("updatedReplicas", updated)] {
        if v != 0 {
            status[k] = json!(v);
        }
    }
    if status_before.is_object() && status_before.get("conditions").is_some() {
        status["conditions"] = status_before["conditions"].clone();
    }
    let set = write_status(ctx.c, "apps/v1", "statefulsets", &set, status)?;
    // History: keep the revisions pods use, the current and the update one, and the limit.
    let live_pods: Vec<Value> = ctx.c.list_owned("v1", "pods", ns, &uid);
    let mut live: Vec<&str> = live_pods.iter().map(pod_revision).collect();
    live.push(set["status"]["currentRevision"].as_str().unwrap_or_default());
    live.push(set["status"]["updateRevision"].as_str().unwrap_or_default());
    history::truncate(ctx, &revisions, &live, int_or(&set["spec"]["revisionHistoryLimit"], 0))?;
    Ok(())
}

fn delete_pod(ctx: &mut Ctx, ns: &str, name: &str) -> Result<(), ApiError> {
    match ctx.c.delete("v1", "pods", ns, name) {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals() {
        assert_eq!(ordinal("db", "db-0"), Some(0));
        assert_eq!(ordinal("db", "db-12"), Some(12));
        assert_eq!(ordinal("db", "db-01"), None);
        assert_eq!(ordinal("db", "db-x"), None);
        assert_eq!(ordinal("db", "dbx-1"), None);
        assert_eq!(ordinal("db", "db-"), None);
    }
}
