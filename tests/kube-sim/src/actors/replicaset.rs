//! The ReplicaSet controller (upstream `pkg/controller/replicaset`): keeps `spec.replicas`
//! active pods, deleting the least useful ones first (unscheduled, pending, not ready, ready for
//! the shortest time, most restarts, newest), and writes the status the real one writes
//! (`replicas` always, `fullyLabeledReplicas`/`readyReplicas`/`availableReplicas` when non-zero,
//! `terminatingReplicas`, `observedGeneration`, a `ReplicaFailure` condition when pods cannot be
//! created). Status counts come from the pods as they were before this sync's creates and
//! deletes, as upstream. Orphan pods are not adopted.

use std::cmp::Ordering;

use serde_json::{Value, json};

use super::util::{self, deleting, int_or, pod_active, pod_ready};
use super::{CONTROLLER_MANAGER, Ctx, Key, Kind, write_status};
use crate::ApiError;

/// Pods created or deleted per sync (upstream `burstReplicas`).
const BURST: usize = 500;

/// A pod of `template` owned by `owner`, named by the server from `generate_name`.
pub fn pod_from_template(template: &Value, owner: &Value, generate_name: &str) -> Value {
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": generate_name,
        "namespace": owner["metadata"]["namespace"], "ownerReferences": [util::controller_ref(owner)]},
        "spec": template["spec"].clone()});
    for f in ["labels", "annotations"] {
        if template["metadata"][f].is_object() {
            pod["metadata"][f] = template["metadata"][f].clone();
        }
    }
    if let Some(fin) = template["metadata"]["finalizers"].as_array() {
        pod["metadata"]["finalizers"] = json!(fin);
    }
    pod
}

/// Deletion preference (`controller.ActivePods` order): the pod that sorts first goes first.
pub fn deletion_order(a: &Value, b: &Value) -> Ordering {
    let assigned = |p: &Value| p["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty());
    let phase_rank = |p: &Value| match util::pod_phase(p) {
        "Pending" | "" => 0,
        "Unknown" => 1,
        _ => 2,
    };
    let ready_since = |p: &Value| {
        util::condition(p, "Ready")
            .filter(|c| c["status"] == "True")
            .and_then(|c| c["lastTransitionTime"].as_str())
            .and_then(util::parse_time)
    };
    let restarts = |p: &Value| {
        p["status"]["containerStatuses"]
            .as_array()
            .map(|a| a.iter().map(|c| c["restartCount"].as_i64().unwrap_or(0)).max().unwrap_or(0))
            .unwrap_or(0)
    };
    let created = |p: &Value| p["metadata"]["creationTimestamp"].as_str().and_then(util::parse_time).unwrap_or(0.0);
    assigned(a)
        .cmp(&assigned(b))
        .then(phase_rank(a).cmp(&phase_rank(b)))
        .then(pod_ready(a).cmp(&pod_ready(b)))
        .then_with(|| match (ready_since(a), ready_since(b)) {
            // Ready for a shorter time (a later transition) first.
            (Some(x), Some(y)) => y.partial_cmp(&x).unwrap_or(Ordering::Equal),
            _ => Ordering::Equal,
        })
        .then(restarts(b).cmp(&restarts(a)))
        // Newer first.
        .then_with(|| created(b).partial_cmp(&created(a)).unwrap_or(Ordering::Equal))
        .then_with(|| util::name(b).cmp(util::name(a)))
}

pub fn reconcile(ctx: &mut Ctx, ns: &str, name: &str) -> Result<(), ApiError> {
    let Some(rs) = ctx.c.get("apps/v1", "replicasets", ns, name) else { return Ok(()) };
    let owned = ctx.c.list_owned("v1", "pods", ns, util::uid(&rs));
    let mine: Vec<&Value> = owned.iter().filter(|p| util::controlled_by(p, util::uid(&rs))).collect();
    let active: Vec<&Value> = mine.iter().copied().filter(|p| pod_active(p)).collect();
    let terminating = mine.iter().filter(|p| deleting(p) && !util::pod_terminal(p)).count();
    let want = util::replicas(&rs).max(0) as usize;
    let mut manage_err = None;
    if !deleting(&rs) {
        manage_err = manage_replicas(ctx, &rs, &active, want).err();
    }
    let min_ready = int_or(&rs["spec"]["minReadySeconds"], 0);
    let now = util::now_secs();
    let template_labels = &rs["spec"]["template"]["metadata"]["labels"];
    let mut fully = 0;
    let mut ready = 0;
    let mut available = 0;
    for p in &active {
        let labels = &p["metadata"]["labels"];
        if template_labels.as_object().is_none_or(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v))) {
            fully += 1;
        }
        if pod_ready(p) {
            ready += 1;
            if util::pod_available(p, min_ready, now) {
                available += 1;
            } else if let Some(at) = util::pod_available_at(p, min_ready) {
                ctx.q.at(Key::new(Kind::ReplicaSet, ns, name), at);
            }
        }
    }
    let mut status = json!({"replicas": active.len()});
    for (k, v) in [("fullyLabeledReplicas", fully), ("readyReplicas", ready), ("availableReplicas", available)] {
        if v > 0 {
            status[k] = json!(v);
        }
    }
    status["terminatingReplicas"] = json!(terminating);
    if util::generation(&rs) > 0 {
        status["observedGeneration"] = json!(util::generation(&rs));
    }
    let mut conds: Vec<Value> = rs["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let failure = conds.iter().any(|c| c["type"] == "ReplicaFailure");
    match &manage_err {
        Some(e) if !failure => {
            let reason = if active.len() < want { "FailedCreate" } else { "FailedDelete" };
            conds.push(json!({"type": "ReplicaFailure", "status": "True", "lastTransitionTime": util::now_rfc3339(), "reason": reason, "message": e.message}));
        }
        None if failure => util::remove_condition(&mut conds, "ReplicaFailure"),
        _ => {}
    }
    if !conds.is_empty() {
        status["conditions"] = Value::Array(conds);
    }
    write_status(ctx.c, "apps/v1", "replicasets", &rs, status)?;
    match manage_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn manage_replicas(ctx: &mut Ctx, rs: &Value, active: &[&Value], want: usize) -> Result<(), ApiError> {
    let ns = util::namespace(rs);
    let name = util::name(rs);
    if active.len() < want {
        let template = &rs["spec"]["template"];
        for _ in 0..(want - active.len()).min(BURST) {
            let pod = pod_from_template(template, rs, &format!("{name}-"));
            ctx.c.create_by("v1", "pods", ns, pod, CONTROLLER_MANAGER)?;
        }
    } else if active.len() > want {
        let mut victims: Vec<&Value> = active.to_vec();
        victims.sort_by(|a, b| deletion_order(a, b));
        for p in victims.into_iter().take((active.len() - want).min(BURST)) {
            match ctx.c.delete("v1", "pods", ns, util::name(p)) {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unready_and_newer_pods_go_first() {
        let pod = |name: &str, node: bool, ready: bool, created: &str| {
            json!({"metadata": {"name": name, "creationTimestamp": created}, "spec": {"nodeName": if node { "n" } else { "" }},
                "status": {"phase": if ready { "Running" } else { "Pending" },
                    "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": created}]}})
        };
        let mut pods = [
            pod("old-ready", true, true, "2026-01-01T00:00:00Z"),
            pod("new-ready", true, true, "2026-01-02T00:00:00Z"),
            pod("pending", true, false, "2026-01-01T00:00:00Z"),
            pod("unscheduled", false, false, "2026-01-01T00:00:00Z"),
        ];
        pods.sort_by(deletion_order);
        let names: Vec<&str> = pods.iter().map(util::name).collect();
        assert_eq!(names, ["unscheduled", "pending", "new-ready", "old-ready"]);
    }
}
