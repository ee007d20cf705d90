//! The disruption controller (upstream `pkg/controller/disruption`) and the eviction decision
//! of `pods/eviction` (upstream `pkg/registry/core/pod/storage/eviction.go`), which reads what
//! the controller wrote (transcript 13):
//!
//! - status: `expectedPods` (the scale of the pods' controllers for `maxUnavailable` and
//!   percentages; the number of pods for an integer `minAvailable`), `desiredHealthy`,
//!   `currentHealthy` (ready pods not being deleted and not just evicted), `disruptionsAllowed`,
//!   `observedGeneration`, `disruptedPods`, the `DisruptionAllowed` condition (`SufficientPods`,
//!   `InsufficientPods`, `SyncFailed`);
//! - eviction: terminal, Pending or terminating pods are deleted without a budget check; with a
//!   budget whose status is older than its generation, 429 with `Retry-After: 10` and "The
//!   disruption budget X is still being processed by the server."; with no disruptions allowed,
//!   429 "needs N healthy pods and has M currently"; otherwise the budget is decremented and the
//!   pod recorded in `disruptedPods` until the controller sees it gone. Unhealthy pods follow
//!   `unhealthyPodEvictionPolicy` (IfHealthyBudget by default, AlwaysAllow).
//!
//! The eviction decides from the stored status only, as the real handler does: without the
//! actors (`SimOptions::actors(false)`) nobody writes budget statuses, so an eviction under a
//! budget answers "still being processed" until something (a test standing in for the
//! controller) writes one.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use super::util::{self, deleting, int_or, pod_ready, scaled_value};
use super::{Ctx, Key, Kind, write_status};
use crate::ApiError;
use crate::store::{Store, WriteOpts};

/// How long an eviction's entry in `disruptedPods` counts if the pod is not deleted.
const DELETION_TIMEOUT: f64 = 120.0;

/// What the controller computes for one budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Computed {
    pub expected: i64,
    pub desired: i64,
    pub current_healthy: i64,
    pub allowed: i64,
    pub disrupted: Map<String, Value>,
    /// When an entry of `disruptedPods` expires (a resync is due).
    pub recheck: Option<f64>,
}

/// Pods a budget selects: an absent selector selects nothing, an empty one everything.
fn selects(pdb: &Value, pod: &Value) -> bool {
    let sel = &pdb["spec"]["selector"];
    sel.is_object() && util::selector_matches(sel, &pod["metadata"]["labels"])
}

/// Computes a budget's status from its pods; `get(api, plural, ns, name)` reads controllers.
pub fn compute(
    pdb: &Value,
    pods: &[Value],
    get: &dyn Fn(&str, &str, &str, &str) -> Option<Value>,
    now: f64,
) -> Result<Computed, String> {
    let ns = util::namespace(pdb);
    let spec = &pdb["spec"];
    let mine: Vec<&Value> = pods.iter().filter(|p| selects(pdb, p)).collect();
    let expected_scale = || -> Result<i64, String> {
        let mut scales: HashMap<String, i64> = HashMap::new();
        for p in &mine {
            let Some((kind, name, uid)) = util::controller_of(p) else { continue };
            if scales.contains_key(uid) {
                continue;
            }
            let scale = match kind {
                "ReplicaSet" => {
                    let rs = get("apps/v1", "replicasets", ns, name).filter(|r| util::uid(r) == uid);
                    match rs {
                        Some(rs) => match util::controller_of(&rs) {
                            Some(("Deployment", d, duid)) => get("apps/v1", "deployments", ns, d)
                                .filter(|d| util::uid(d) == duid)
                                .map(|d| util::replicas(&d)),
                            _ => Some(util::replicas(&rs)),
                        },
                        None => None,
                    }
                }
                "StatefulSet" => {
                    get("apps/v1", "statefulsets", ns, name).filter(|s| util::uid(s) == uid).map(|s| util::replicas(&s))
                }
                _ => None,
            };
            let Some(scale) = scale else { return Err(format!("found no controllers for pod {:?}", util::name(p))) };
            // A Deployment counts once, whichever of its ReplicaSets a pod belongs to.
            let key = match kind {
                "ReplicaSet" => get("apps/v1", "replicasets", ns, name)
                    .and_then(|rs| util::controller_of(&rs).map(|(_, _, u)| u.to_string()))
                    .unwrap_or_else(|| uid.to_string()),
                _ => uid.to_string(),
            };
            scales.insert(key, scale);
        }
        Ok(scales.values().sum())
    };
    let (expected, desired) = if !spec["maxUnavailable"].is_null() {
        let expected = expected_scale()?;
        let max = scaled_value(&spec["maxUnavailable"], expected, true).ok_or("invalid maxUnavailable")?;
        (expected, (expected - max).max(0))
    } else if let Some(n) = spec["minAvailable"].as_i64() {
        (mine.len() as i64, n)
    } else if spec["minAvailable"].is_string() {
        let expected = expected_scale()?;
        (expected, scaled_value(&spec["minAvailable"], expected, true).ok_or("invalid minAvailable")?)
    } else {
        (mine.len() as i64, 0)
    };
    // disruptedPods: kept while the pod is there, not yet deleting, and the entry is recent.
    let old = pdb["status"]["disruptedPods"].as_object().cloned().unwrap_or_default();
    let mut disrupted = Map::new();
    let mut recheck: Option<f64> = None;
    for p in &mine {
        let name = util::name(p);
        let Some(t) = old.get(name) else { continue };
        if deleting(p) {
            continue;
        }
        let at = t.as_str().and_then(util::parse_time).unwrap_or(now);
        let expires = at + DELETION_TIMEOUT;
        if expires < now {
            continue;
        }
        recheck = Some(recheck.map_or(expires, |r: f64| r.min(expires)));
        disrupted.insert(name.to_string(), t.clone());
    }
    let current_healthy =
        mine.iter().filter(|p| !deleting(p) && !disrupted.contains_key(util::name(p)) && pod_ready(p)).count() as i64;
    let mut allowed = current_healthy - desired;
    if expected <= 0 || allowed <= 0 {
        allowed = 0;
    }
    Ok(Computed { expected, desired, current_healthy, allowed, disrupted, recheck })
}

/// `apimeta.SetStatusCondition` for the DisruptionAllowed condition.
fn set_allowed_condition(conds: &mut Vec<Value>, allowed: bool, reason: &str, message: &str, observed: i64) {
    let status = if allowed { "True" } else { "False" };
    let now = util::now_rfc3339();
    match conds.iter_mut().find(|c| c["type"] == "DisruptionAllowed") {
        Some(c) => {
            if c["status"] != status {
                c["lastTransitionTime"] = json!(now);
            }
            c["status"] = json!(status);
            c["reason"] = json!(reason);
            c["message"] = json!(message);
            c["observedGeneration"] = json!(observed);
        }
        None => conds.push(json!({"type": "DisruptionAllowed", "status": status, "observedGeneration": observed,
            "lastTransitionTime": now, "reason": reason, "message": message})),
    }
}

/// The status the controller writes for `c`.
pub fn status_of(pdb: &Value, c: &Computed) -> Value {
    let generation = util::generation(pdb);
    let mut status = json!({"observedGeneration": generation, "disruptionsAllowed": c.allowed,
        "currentHealthy": c.current_healthy, "desiredHealthy": c.desired, "expectedPods": c.expected});
    if !c.disrupted.is_empty() {
        status["disruptedPods"] = Value::Object(c.disrupted.clone());
    }
    let mut conds: Vec<Value> = pdb["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let reason = if c.allowed > 0 { "SufficientPods" } else { "InsufficientPods" };
    set_allowed_condition(&mut conds, c.allowed > 0, reason, "", generation);
    status["conditions"] = Value::Array(conds);
    status
}

pub fn reconcile(ctx: &mut Ctx, ns: &str, name: &str) -> Result<(), ApiError> {
    let Some(pdb) = ctx.c.get("policy/v1", "poddisruptionbudgets", ns, name) else { return Ok(()) };
    if deleting(&pdb) {
        return Ok(());
    }
    let pods = ctx.c.list("v1", "pods", Some(ns));
    let c = ctx.c;
    let get = |api: &str, plural: &str, ns: &str, name: &str| c.get(api, plural, ns, name);
    let status = match compute(&pdb, &pods, &get, util::now_secs()) {
        Ok(computed) => {
            if let Some(t) = computed.recheck {
                ctx.q.at(Key::new(Kind::Pdb, ns, name), t);
            }
            status_of(&pdb, &computed)
        }
        Err(msg) => {
            // failSafe: nothing allowed, the old observedGeneration kept.
            let mut st = if pdb["status"].is_object() { pdb["status"].clone() } else { json!({}) };
            st["disruptionsAllowed"] = json!(0);
            let observed = int_or(&st["observedGeneration"], 0);
            let mut conds: Vec<Value> = st["conditions"].as_array().cloned().unwrap_or_default();
            set_allowed_condition(&mut conds, false, "SyncFailed", &msg, observed);
            st["conditions"] = Value::Array(conds);
            st
        }
    };
    write_status(ctx.c, "policy/v1", "poddisruptionbudgets", &pdb, status)?;
    Ok(())
}

fn too_many(cause: String, retry_after: Option<u64>) -> ApiError {
    let mut e =
        ApiError::new(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget.");
    e.details = json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]});
    if let Some(s) = retry_after {
        e.details["retryAfterSeconds"] = json!(s);
    }
    e
}

/// `errors.NewForbidden(policy.Resource("poddisruptionbudget"), name, err)`: the resource is
/// named in the singular, as the handler spells it.
fn forbidden(pdb_name: &str, why: &str) -> ApiError {
    ApiError::new(403, "Forbidden", format!("poddisruptionbudget.policy \"{pdb_name}\" is forbidden: {why}"))
        .with_details(pdb_name, "policy", "poddisruptionbudget")
}

/// The eviction decision for `pod` (called by the pods/eviction handler with the store locked).
/// Ok: the pod may be deleted (a budget was decremented when one applies and this is no dry
/// run). Err: the Status to answer (429 with `details.retryAfterSeconds` when the handler must
/// send `Retry-After`).
pub fn check_eviction(store: &mut Store, ns: &str, pod: &Value, dry_run: bool) -> Result<(), ApiError> {
    if util::pod_terminal(pod) || util::pod_phase(pod) == "Pending" || deleting(pod) {
        return Ok(());
    }
    let Some(pdb_ti) = store.type_index("policy", "v1", "poddisruptionbudgets") else { return Ok(()) };
    let pdbs: Vec<Value> =
        store.iter(pdb_ti, Some(ns), None).map(|(_, s)| s.parse()).filter(|p| selects(p, pod)).collect();
    let pdb = match pdbs.len() {
        0 => return Ok(()),
        1 => &pdbs[0],
        _ => {
            return Err(ApiError::new(
                500,
                "InternalError",
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
    };
    let status = &pdb["status"];
    let g = |f: &str| int_or(&status[f], 0);
    if !pod_ready(pod) {
        if pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow" {
            return Ok(());
        }
        if g("currentHealthy") >= g("desiredHealthy") && g("desiredHealthy") > 0 {
            return Ok(());
        }
    }
    let pdb_name = util::name(pdb);
    if g("observedGeneration") < util::generation(pdb) {
        return Err(too_many(
            format!("The disruption budget {pdb_name} is still being processed by the server."),
            Some(10),
        ));
    }
    if g("disruptionsAllowed") < 0 {
        return Err(forbidden(pdb_name, "pdb disruptions allowed is negative"));
    }
    if status["disruptedPods"].as_object().is_some_and(|m| m.len() > 2000) {
        return Err(forbidden(
            pdb_name,
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if g("disruptionsAllowed") == 0 {
        return Err(too_many(
            format!(
                "The disruption budget {pdb_name} needs {} healthy pods and has {} currently",
                g("desiredHealthy"),
                g("currentHealthy")
            ),
            None,
        ));
    }
    if dry_run {
        return Ok(());
    }
    // checkAndDecrement: one disruption fewer, the pod noted as disrupted.
    let mut new_status = status.clone();
    let allowed = g("disruptionsAllowed") - 1;
    new_status["disruptionsAllowed"] = json!(allowed);
    if allowed == 0 {
        let mut conds: Vec<Value> = new_status["conditions"].as_array().cloned().unwrap_or_default();
        set_allowed_condition(&mut conds, false, "InsufficientPods", "", g("observedGeneration"));
        new_status["conditions"] = Value::Array(conds);
    }
    let mut disrupted: BTreeMap<String, Value> =
        new_status["disruptedPods"].as_object().map(|m| m.clone().into_iter().collect()).unwrap_or_default();
    disrupted.insert(util::name(pod).to_string(), json!(store.now()));
    new_status["disruptedPods"] = json!(disrupted);
    let body = json!({"metadata": {"resourceVersion": pdb["metadata"]["resourceVersion"]}, "status": util::merge_diff(status, &new_status)});
    store.patch(
        pdb_ti,
        ns,
        pdb_name,
        crate::PatchType::Merge,
        &body,
        Some("status"),
        &WriteOpts::default(),
        "kube-apiserver",
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ready: bool, owner: Option<(&str, &str)>) -> Value {
        let mut p = json!({"metadata": {"name": name, "namespace": "x", "labels": {"app": "a"}},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
        if let Some((kind, n)) = owner {
            p["metadata"]["ownerReferences"] =
                json!([{"kind": kind, "name": n, "uid": format!("{n}-uid"), "controller": true}]);
        }
        p
    }

    #[test]
    fn max_unavailable_uses_the_controllers_scale() {
        let pdb = json!({"metadata": {"name": "b", "namespace": "x", "generation": 1}, "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "a"}}}});
        let pods = vec![pod("p1", true, Some(("ReplicaSet", "rs")))];
        let get = |_: &str, plural: &str, _: &str, name: &str| match plural {
            "replicasets" => Some(
                json!({"metadata": {"name": name, "uid": "rs-uid", "ownerReferences": [{"kind": "Deployment", "name": "d", "uid": "d-uid", "controller": true}]}, "spec": {"replicas": 1}}),
            ),
            "deployments" => Some(json!({"metadata": {"name": name, "uid": "d-uid"}, "spec": {"replicas": 1}})),
            _ => None,
        };
        let c = compute(&pdb, &pods, &get, 0.0).unwrap();
        assert_eq!((c.expected, c.desired, c.current_healthy, c.allowed), (1, 1, 1, 0));
        let st = status_of(&pdb, &c);
        assert_eq!(st["conditions"][0]["reason"], "InsufficientPods");
        assert_eq!(st["conditions"][0]["message"], "");
    }

    #[test]
    fn min_available_counts_pods_and_unready_ones_are_not_healthy() {
        let pdb = json!({"metadata": {"name": "b", "namespace": "x", "generation": 2}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "a"}}}});
        let pods = vec![pod("p1", true, None), pod("p2", true, None), pod("p3", false, None)];
        let none = |_: &str, _: &str, _: &str, _: &str| None;
        let c = compute(&pdb, &pods, &none, 0.0).unwrap();
        assert_eq!((c.expected, c.desired, c.current_healthy, c.allowed), (3, 1, 2, 1));
        assert_eq!(status_of(&pdb, &c)["conditions"][0]["reason"], "SufficientPods");
        // maxUnavailable over unmanaged... pods of an unknown controller fail the sync.
        let pdb2 = json!({"metadata": {"name": "b", "namespace": "x"}, "spec": {"maxUnavailable": 1, "selector": {}}});
        let pods = vec![pod("p1", true, Some(("DaemonSet", "ds")))];
        assert!(compute(&pdb2, &pods, &none, 0.0).unwrap_err().contains("found no controllers"));
    }
}
