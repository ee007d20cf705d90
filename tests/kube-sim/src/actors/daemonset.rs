//! The DaemonSet controller (upstream `pkg/controller/daemon`): one pod per node that should run
//! it — the node matches the template's `nodeSelector`/node affinity and the pod tolerates the
//! node's NoSchedule/NoExecute taints (a node that is not Ready counts as tainted
//! `node.kubernetes.io/not-ready:NoSchedule`: it keeps its pod but gets no new one; cordoned
//! nodes still run daemon pods, as DaemonSet pods tolerate `unschedulable`). Pods carry node
//! affinity for their node (the scheduler binds them there), `controller-revision-hash: {hash}`
//! and the default DaemonSet tolerations.
//!
//! RollingUpdate (`maxUnavailable` 1 by default, percentages rounded up, `maxSurge` 0) deletes
//! old pods on as many nodes as the unavailability budget allows, unavailable old pods first;
//! the manage loop recreates them at the new revision once they are gone. OnDelete replaces
//! nothing. Status: `desiredNumberScheduled`, `currentNumberScheduled`, `numberMisscheduled`,
//! `numberReady` (always), `updatedNumberScheduled`, `numberAvailable`, `numberUnavailable`,
//! `observedGeneration`. Not modelled: `maxSurge` > 0.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::history;
use super::kubelet::fits;
use super::replicaset::pod_from_template;
use super::util::{self, controlled_by, deleting, int_or, scaled_value};
use super::{CONTROLLER_MANAGER, Ctx, Key, Kind, write_status};
use crate::ApiError;

pub const HASH_LABEL: &str = "controller-revision-hash";
pub const GENERATION_LABEL: &str = "pod-template-generation";

fn default_tolerations(host_network: bool) -> Vec<Value> {
    let mut t = vec![
        json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}),
    ];
    if host_network {
        t.push(json!({"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}));
    }
    t
}

/// The pod the DaemonSet would run on `node`.
fn pod_for(ds: &Value, rev: &Value, node: &str) -> Value {
    let template = history::template_of(rev);
    let mut pod = pod_from_template(&template, ds, &format!("{}-", util::name(ds)));
    if !pod["metadata"]["labels"].is_object() {
        pod["metadata"]["labels"] = json!({});
    }
    pod["metadata"]["labels"][HASH_LABEL] = json!(history::hash_of(rev));
    pod["metadata"]["labels"][GENERATION_LABEL] = json!(util::generation(ds).to_string());
    if !pod["spec"].is_object() {
        pod["spec"] = json!({});
    }
    let mut tolerations: Vec<Value> = pod["spec"]["tolerations"].as_array().cloned().unwrap_or_default();
    for t in default_tolerations(pod["spec"]["hostNetwork"] == true) {
        if !tolerations.iter().any(|x| x["key"] == t["key"] && x["effect"] == t["effect"]) {
            tolerations.push(t);
        }
    }
    pod["spec"]["tolerations"] = Value::Array(tolerations);
    pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] =
        json!({"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]});
    pod
}

/// (should run a new pod, may keep a running one): `NodeShouldRunDaemonPod`.
fn should_run(ds: &Value, rev: &Value, node: &Value) -> (bool, bool) {
    let pod = pod_for(ds, rev, util::name(node));
    if fits(&pod, node) {
        return (true, true);
    }
    // Keep a running pod unless the node no longer matches or taints it NoExecute.
    let mut ready_node = node.clone();
    ready_node["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
    if let Some(taints) = ready_node["spec"]["taints"].as_array_mut() {
        taints.retain(|t| t["effect"] == "NoExecute");
    }
    (false, fits(&pod, &ready_node))
}

fn node_of(pod: &Value) -> Option<String> {
    if let Some(n) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        return Some(n.to_string());
    }
    pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchFields"][0]["values"][0]
        .as_str()
        .map(str::to_string)
}

fn created(p: &Value) -> f64 {
    p["metadata"]["creationTimestamp"].as_str().and_then(util::parse_time).unwrap_or(0.0)
}

pub fn reconcile(ctx: &mut Ctx, ns: &str, name: &str) -> Result<(), ApiError> {
    let Some(ds) = ctx.c.get("apps/v1", "daemonsets", ns, name) else { return Ok(()) };
    if !ds["spec"]["selector"].is_object() || util::selector_is_empty(&ds["spec"]["selector"]) {
        return Ok(());
    }
    let uid = util::uid(&ds).to_string();
    let revisions = history::owned(ctx, &ds);
    let collisions = int_or(&ds["status"]["collisionCount"], 0);
    let (cur, collisions) = history::update_revision(ctx, &ds, &revisions, collisions)?;
    let hash = history::hash_of(&cur).to_string();
    let nodes = ctx.c.list("v1", "nodes", None);
    let pods: Vec<Value> =
        ctx.c.list_owned("v1", "pods", ns, &uid).into_iter().filter(|p| controlled_by(p, &uid)).collect();
    let mut by_node: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for p in pods {
        if let Some(n) = node_of(&p) {
            by_node.entry(n).or_default().push(p);
        }
    }
    for list in by_node.values_mut() {
        list.sort_by(|a, b| created(a).partial_cmp(&created(b)).unwrap_or(std::cmp::Ordering::Equal));
    }
    let min_ready = int_or(&ds["spec"]["minReadySeconds"], 0);
    let now = util::now_secs();
    let runs: Vec<(String, bool, bool)> = nodes
        .iter()
        .map(|n| {
            let (run, keep) = should_run(&ds, &cur, n);
            (util::name(n).to_string(), run, keep)
        })
        .collect();
    let mut delete: Vec<String> = Vec::new();
    let mut create: Vec<String> = Vec::new();
    if !deleting(&ds) {
        // manage: the right number of pods per node.
        for (node, run, keep) in &runs {
            let pods = by_node.get(node).cloned().unwrap_or_default();
            if *run && pods.is_empty() {
                create.push(node.clone());
            } else if *keep {
                let mut running = Vec::new();
                for p in pods.iter().filter(|p| !deleting(p)) {
                    if util::pod_terminal(p) {
                        delete.push(util::name(p).to_string());
                    } else {
                        running.push(p);
                    }
                }
                delete.extend(running.iter().skip(1).map(|p| util::name(p).to_string()));
            } else {
                delete.extend(pods.iter().filter(|p| !deleting(p)).map(|p| util::name(p).to_string()));
            }
        }
        // rollingUpdate (maxSurge 0).
        // The spec as the API server defaulted it (RollingUpdate, maxUnavailable 1, maxSurge 0).
        let rolling = ds["spec"]["updateStrategy"]["type"] == "RollingUpdate";
        if rolling {
            let desired = runs.iter().filter(|(_, run, _)| *run).count() as i64;
            let mut max_unavailable =
                scaled_value(&ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"], desired, true)
                    .unwrap_or(1);
            if desired > 0 && max_unavailable == 0 {
                max_unavailable = 1;
            }
            let mut unavailable = 0;
            let mut replace: Vec<String> = Vec::new();
            let mut candidates: Vec<String> = Vec::new();
            let mut nodes_considered: Vec<&String> = by_node.keys().collect();
            for (node, run, _) in &runs {
                if *run && !by_node.contains_key(node) {
                    nodes_considered.push(node);
                }
            }
            for node in nodes_considered {
                if !runs.iter().any(|(n, run, _)| n == node && *run) {
                    continue;
                }
                let live: Vec<&Value> =
                    by_node.get(node).map(|v| v.iter().filter(|p| !deleting(p)).collect()).unwrap_or_default();
                let new: Vec<&&Value> =
                    live.iter().filter(|p| p["metadata"]["labels"][HASH_LABEL] == hash.as_str()).collect();
                let old: Vec<&&Value> =
                    live.iter().filter(|p| p["metadata"]["labels"][HASH_LABEL] != hash.as_str()).collect();
                if new.len() > 1 || old.len() > 1 {
                    unavailable += 1;
                    continue;
                }
                match (new.first(), old.first()) {
                    (None, None) | (Some(_), Some(_)) => unavailable += 1,
                    (Some(n), None) => {
                        if !util::pod_available(n, min_ready, now) {
                            unavailable += 1;
                        }
                    }
                    (None, Some(o)) => {
                        if !util::pod_available(o, min_ready, now) {
                            replace.push(util::name(o).to_string());
                        } else if unavailable < max_unavailable {
                            candidates.push(util::name(o).to_string());
                        }
                    }
                }
            }
            let room = (max_unavailable - unavailable).max(0).min(candidates.len() as i64) as usize;
            delete.extend(replace);
            delete.extend(candidates.into_iter().take(room));
        }
        delete.sort();
        delete.dedup();
        for n in &delete {
            match ctx.c.delete("v1", "pods", ns, n) {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        for node in &create {
            ctx.c.create_by("v1", "pods", ns, pod_for(&ds, &cur, node), CONTROLLER_MANAGER)?;
        }
    }
    // Status (from the pods as read).
    let (mut desired, mut current, mut misscheduled, mut ready, mut available, mut updated) = (0, 0, 0, 0, 0, 0);
    for (node, run, _) in &runs {
        let live: Vec<&Value> =
            by_node.get(node).map(|v| v.iter().filter(|p| !deleting(p)).collect()).unwrap_or_default();
        if *run {
            desired += 1;
            let Some(pod) = live.first() else { continue };
            current += 1;
            if util::pod_ready(pod) {
                ready += 1;
                if util::pod_available(pod, min_ready, now) {
                    available += 1;
                } else if let Some(at) = util::pod_available_at(pod, min_ready) {
                    ctx.q.at(Key::new(Kind::DaemonSet, ns, name), at);
                }
            }
            if pod["metadata"]["labels"][HASH_LABEL] == hash.as_str() {
                updated += 1;
            }
        } else if !live.is_empty() {
            misscheduled += 1;
        }
    }
    let mut status = json!({"currentNumberScheduled": current, "numberMisscheduled": misscheduled,
        "desiredNumberScheduled": desired, "numberReady": ready, "observedGeneration": util::generation(&ds)});
    for (k, v) in [
        ("updatedNumberScheduled", updated),
        ("numberAvailable", available),
        ("numberUnavailable", desired - available),
    ] {
        if v != 0 {
            status[k] = json!(v);
        }
    }
    if collisions > 0 {
        status["collisionCount"] = json!(collisions);
    }
    write_status(ctx.c, "apps/v1", "daemonsets", &ds, status)?;
    // History: keep the revisions live pods use.
    let live_pods = ctx.c.list_owned("v1", "pods", ns, &uid);
    let live_hashes: Vec<&str> =
        live_pods.iter().filter_map(|p| p["metadata"]["labels"][HASH_LABEL].as_str()).collect();
    let mut live: Vec<&str> =
        revisions.iter().filter(|r| live_hashes.contains(&history::hash_of(r))).map(util::name).collect();
    live.push(util::name(&cur));
    history::truncate(ctx, &revisions, &live, int_or(&ds["spec"]["revisionHistoryLimit"], 0))?;
    Ok(())
}
