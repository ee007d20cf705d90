//! The Deployment controller, ported from upstream `pkg/controller/deployment` (sync.go,
//! rolling.go, recreate.go, progress.go, util/deployment_util.go) step for step, so a rollout
//! goes through the statuses a real one does (transcript 11):
//!
//! - a ReplicaSet per template (`{name}-{pod-template-hash}`, the hash label added to its
//!   selector and template), `deployment.kubernetes.io/revision` on Deployment and ReplicaSets
//!   (`revision-history` when an old template comes back), `desired-replicas`/`max-replicas`
//!   annotations, the Deployment's own annotations copied over;
//! - RollingUpdate with `maxSurge` (rounded up) and `maxUnavailable` (rounded down), both 25% by
//!   default: the new ReplicaSet grows as far as the surge allows, old ones shrink as pods of the
//!   new one become available (`minReadySeconds`), unhealthy old replicas first; Recreate scales
//!   the old ones to zero and waits for their pods to be gone;
//! - proportional scaling of every active ReplicaSet when `spec.replicas` changes mid-rollout;
//! - `spec.paused`: no new ReplicaSet, no rollout, only scaling and status, `Progressing` Unknown
//!   `DeploymentPaused` (then `DeploymentResumed`) — transcript 12;
//! - status: `observedGeneration`, `replicas`, `updatedReplicas`, `readyReplicas`,
//!   `availableReplicas`, `unavailableReplicas` (zeros omitted), `terminatingReplicas` (always),
//!   `Available` (`MinimumReplicasAvailable` / `MinimumReplicasUnavailable`) and `Progressing`
//!   (`NewReplicaSetCreated`, `FoundNewReplicaSet`, `ReplicaSetUpdated`, `NewReplicaSetAvailable`,
//!   `ProgressDeadlineExceeded`), `ReplicaFailure` copied from the new ReplicaSet;
//! - `revisionHistoryLimit`: old ReplicaSets with no replicas beyond it are deleted.
//!
//! The spec is read as the API server defaulted it (`src/defaults.rs`: replicas 1, RollingUpdate
//! 25%/25%, progressDeadlineSeconds 600, revisionHistoryLimit 10), as upstream reads it; an
//! unset `progressDeadlineSeconds` or `revisionHistoryLimit` means none, as a nil pointer does.
//! The revision annotation is written through deployments/status, as the real controller
//! does; it goes in its own write (the real controller sends it with the status update that
//! follows when it creates a ReplicaSet), so a watcher may see one extra MODIFIED when a
//! revision changes.

use serde_json::{Map, Value, json};

use super::util::{self, controlled_by, deleting, int_or, now_rfc3339, scaled_value};
use super::{CONTROLLER_MANAGER, Ctx, Key, Kind, patch_obj, write_status};
use crate::ApiError;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const HASH_LABEL: &str = "pod-template-hash";
const MAX_REV_HISTORY_CHARS: usize = 2000;

// === the Deployment's spec, as the API server defaulted it ===

fn replicas(d: &Value) -> i64 {
    util::replicas(d).max(0)
}

fn is_rolling(d: &Value) -> bool {
    d["spec"]["strategy"]["type"] == "RollingUpdate"
}

fn rolling_param<'a>(d: &'a Value, f: &str) -> &'a Value {
    &d["spec"]["strategy"]["rollingUpdate"][f]
}

/// `ResolveFenceposts`: (surge, unavailable), never both zero.
fn fenceposts(d: &Value) -> (i64, i64) {
    let desired = replicas(d);
    let surge = scaled_value(rolling_param(d, "maxSurge"), desired, true).unwrap_or(0).max(0);
    let unavailable = scaled_value(rolling_param(d, "maxUnavailable"), desired, false).unwrap_or(0).max(0);
    if surge == 0 && unavailable == 0 { (0, 1) } else { (surge, unavailable) }
}

pub fn max_surge(d: &Value) -> i64 {
    if is_rolling(d) { fenceposts(d).0 } else { 0 }
}

pub fn max_unavailable(d: &Value) -> i64 {
    let desired = replicas(d);
    if !is_rolling(d) || desired == 0 {
        return 0;
    }
    fenceposts(d).1.min(desired)
}

/// `HasProgressDeadline`.
fn progress_deadline(d: &Value) -> Option<i64> {
    d["spec"]["progressDeadlineSeconds"].as_i64().filter(|s| *s != i64::from(i32::MAX))
}

/// `HasRevisionHistoryLimit`.
fn history_limit(d: &Value) -> Option<i64> {
    d["spec"]["revisionHistoryLimit"].as_i64().filter(|s| *s != i64::from(i32::MAX))
}

fn min_ready(d: &Value) -> i64 {
    int_or(&d["spec"]["minReadySeconds"], 0)
}

// === ReplicaSet accessors ===

fn rs_replicas(rs: &Value) -> i64 {
    util::replicas(rs)
}

fn rs_status(rs: &Value, f: &str) -> i64 {
    int_or(&rs["status"][f], 0)
}

fn annotation<'a>(obj: &'a Value, k: &str) -> Option<&'a str> {
    obj["metadata"]["annotations"][k].as_str()
}

pub fn revision(rs: &Value) -> i64 {
    annotation(rs, REVISION).and_then(|r| r.parse().ok()).unwrap_or(0)
}

fn created(o: &Value) -> (f64, String) {
    (o["metadata"]["creationTimestamp"].as_str().and_then(util::parse_time).unwrap_or(0.0), util::name(o).to_string())
}

fn by_creation(list: &mut [Value]) {
    list.sort_by(|a, b| created(a).partial_cmp(&created(b)).unwrap_or(std::cmp::Ordering::Equal));
}

fn sum(list: &[&Value], f: impl Fn(&Value) -> i64) -> i64 {
    list.iter().map(|rs| f(rs)).sum()
}

/// A template without the pod-template-hash label (`EqualIgnoreHash`). Both sides are compared
/// as stored: the store defaults a Deployment's and a ReplicaSet's template on every write
/// (`src/defaults.rs`), so a container patched into a Deployment has the defaults its
/// ReplicaSet's copy got.
fn without_hash(t: &Value) -> Value {
    let mut t = t.clone();
    if !t.is_object() {
        return t;
    }
    if let Some(l) = t.get_mut("metadata").and_then(|m| m.get_mut("labels")).and_then(Value::as_object_mut) {
        l.remove(HASH_LABEL);
        if l.is_empty()
            && let Some(m) = t["metadata"].as_object_mut()
        {
            m.remove("labels");
        }
    }
    if t["metadata"].as_object().is_some_and(Map::is_empty)
        && let Some(m) = t.as_object_mut()
    {
        m.remove("metadata");
    }
    t
}

/// The working state of one sync.
struct Sync<'c, 'a> {
    ctx: &'c mut Ctx<'a>,
    d: Value,
}

pub fn reconcile(ctx: &mut Ctx, ns: &str, name: &str) -> Result<(), ApiError> {
    let Some(d) = ctx.c.get("apps/v1", "deployments", ns, name) else { return Ok(()) };
    // Shapes a real API server would have refused (422): nothing to do.
    let t = &d["spec"]["template"];
    let map_or_absent = |v: &Value| v.is_null() || v.is_object();
    if !t.is_object()
        || !map_or_absent(&t["metadata"])
        || !map_or_absent(&t["metadata"]["labels"])
        || !map_or_absent(&d["spec"]["selector"]["matchLabels"])
    {
        return Ok(());
    }
    let mut s = Sync { ctx, d };
    let selector = s.d["spec"]["selector"].clone();
    if !selector.is_object() || util::selector_is_empty(&selector) {
        // "This deployment is selecting all pods. A non-empty selector is required."
        if int_or(&s.d["status"]["observedGeneration"], 0) < util::generation(&s.d) {
            let mut st = s.d["status"].clone();
            if !st.is_object() {
                st = json!({});
            }
            st["observedGeneration"] = json!(util::generation(&s.d));
            write_status(s.ctx.c, "apps/v1", "deployments", &s.d, st)?;
        }
        return Ok(());
    }
    let uid = util::uid(&s.d).to_string();
    let mut rs_list: Vec<Value> = s
        .ctx
        .c
        .list_owned("apps/v1", "replicasets", ns, &uid)
        .into_iter()
        .filter(|rs| controlled_by(rs, &uid))
        .collect();
    by_creation(&mut rs_list);
    if deleting(&s.d) {
        return s.sync_status_only(&rs_list);
    }
    s.check_paused_conditions()?;
    if s.d["spec"]["paused"] == true {
        return s.sync(&rs_list);
    }
    if s.is_scaling_event(&rs_list)? {
        return s.sync(&rs_list);
    }
    if is_rolling(&s.d) { s.rollout_rolling(&rs_list) } else { s.rollout_recreate(&rs_list) }
}

impl Sync<'_, '_> {
    fn ns(&self) -> String {
        util::namespace(&self.d).to_string()
    }

    fn name(&self) -> String {
        util::name(&self.d).to_string()
    }

    fn conditions(status: &Value) -> Vec<Value> {
        status["conditions"].as_array().cloned().unwrap_or_default()
    }

    fn progressing_cond(&self) -> Option<Value> {
        util::condition(&self.d, "Progressing").cloned()
    }

    fn new_condition(ty: &str, status: &str, reason: &str, message: &str) -> Value {
        let now = now_rfc3339();
        json!({"type": ty, "status": status, "lastUpdateTime": now, "lastTransitionTime": now, "reason": reason, "message": message})
    }

    /// `SetDeploymentCondition` on the in-memory status.
    fn set_condition(status: &mut Value, cond: Value) {
        let mut conds = Self::conditions(status);
        if util::set_condition(&mut conds, cond) {
            status["conditions"] = Value::Array(conds);
        }
    }

    fn update_status(&mut self, status: Value) -> Result<(), ApiError> {
        self.d = write_status(self.ctx.c, "apps/v1", "deployments", &self.d, status)?;
        Ok(())
    }

    /// The Deployment's revision annotation (`SetDeploymentRevision`), written as the real
    /// controller writes it: through deployments/status (whose strategy keeps annotations).
    fn sync_revision(&mut self, rev: &str) -> Result<(), ApiError> {
        if annotation(&self.d, REVISION) == Some(rev) {
            return Ok(());
        }
        let body = json!({"metadata": {"resourceVersion": self.d["metadata"]["resourceVersion"], "annotations": {REVISION: rev}}});
        self.d = self.ctx.c.patch_status_by(
            "apps/v1",
            "deployments",
            &self.ns(),
            &self.name(),
            &body,
            CONTROLLER_MANAGER,
        )?;
        Ok(())
    }

    fn check_paused_conditions(&mut self) -> Result<(), ApiError> {
        if progress_deadline(&self.d).is_none() {
            return Ok(());
        }
        let cond = self.progressing_cond();
        if cond.as_ref().is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded") {
            return Ok(());
        }
        let paused_cond = cond.as_ref().is_some_and(|c| c["reason"] == "DeploymentPaused");
        let paused = self.d["spec"]["paused"] == true;
        let mut status = self.d["status"].clone();
        if !status.is_object() {
            status = json!({});
        }
        if paused && !paused_cond {
            Self::set_condition(
                &mut status,
                Self::new_condition("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused"),
            );
        } else if !paused && paused_cond {
            Self::set_condition(
                &mut status,
                Self::new_condition("Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed"),
            );
        } else {
            return Ok(());
        }
        self.update_status(status)
    }

    /// `getAllReplicaSetsAndSyncRevision`: (new, old).
    fn new_and_old(&mut self, rs_list: &[Value], create: bool) -> Result<(Option<Value>, Vec<Value>), ApiError> {
        let template = without_hash(&self.d["spec"]["template"]);
        let new_idx = rs_list.iter().position(|rs| without_hash(&rs["spec"]["template"]) == template);
        let old: Vec<Value> =
            rs_list.iter().enumerate().filter(|(i, _)| Some(*i) != new_idx).map(|(_, rs)| rs.clone()).collect();
        let max_old = old.iter().map(revision).max().unwrap_or(0);
        let new_revision = (max_old + 1).to_string();
        if let Some(i) = new_idx {
            let rs = rs_list[i].clone();
            let mut anns = rs["metadata"]["annotations"].as_object().cloned().unwrap_or_default();
            let changed = self.set_new_rs_annotations(&mut anns, &new_revision, true);
            let min_ready_changed = int_or(&rs["spec"]["minReadySeconds"], 0) != min_ready(&self.d);
            if changed || min_ready_changed {
                let mut patch = json!({"metadata": {"annotations": Value::Object(anns)}});
                if min_ready_changed {
                    patch["spec"] = json!({"minReadySeconds": min_ready(&self.d)});
                }
                let updated = patch_obj(self.ctx.c, "apps/v1", "replicasets", &rs, patch)?;
                return Ok((Some(updated), old));
            }
            let rev = annotation(&rs, REVISION).unwrap_or_default().to_string();
            self.sync_revision(&rev)?;
            if progress_deadline(&self.d).is_some() && self.progressing_cond().is_none() {
                let mut status = self.d["status"].clone();
                Self::set_condition(
                    &mut status,
                    Self::new_condition(
                        "Progressing",
                        "True",
                        "FoundNewReplicaSet",
                        &format!("Found new replica set \"{}\"", util::name(&rs)),
                    ),
                );
                self.update_status(status)?;
            }
            return Ok((Some(rs), old));
        }
        if !create {
            return Ok((None, old));
        }
        let collisions = int_or(&self.d["status"]["collisionCount"], 0);
        let hash = util::compute_hash(&self.d["spec"]["template"], collisions);
        let mut template = self.d["spec"]["template"].clone();
        template["metadata"]["labels"][HASH_LABEL] = json!(hash);
        let mut selector = self.d["spec"]["selector"].clone();
        selector["matchLabels"][HASH_LABEL] = json!(hash);
        let rs_name = format!("{}-{hash}", self.name());
        let mut rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": rs_name, "namespace": self.ns(), "labels": template["metadata"]["labels"],
                "ownerReferences": [util::controller_ref(&self.d)]},
            "spec": {"replicas": 0, "minReadySeconds": min_ready(&self.d), "selector": selector, "template": template},
            "status": {"replicas": 0}});
        let mut all: Vec<&Value> = old.iter().collect();
        all.push(&rs);
        let n = self.new_rs_replicas(&all, &rs);
        rs["spec"]["replicas"] = json!(n);
        let mut anns = Map::new();
        self.set_new_rs_annotations(&mut anns, &new_revision, false);
        rs["metadata"]["annotations"] = Value::Object(anns);
        let created = match self.ctx.c.create_by("apps/v1", "replicasets", &self.ns(), rs, CONTROLLER_MANAGER) {
            Ok(rs) => rs,
            Err(e) if e.code == 409 => {
                // The name is taken: our own ReplicaSet (a resync raced), or a hash collision.
                let existing = self.ctx.c.get("apps/v1", "replicasets", &self.ns(), &rs_name);
                if let Some(rs) = existing.filter(|rs| {
                    controlled_by(rs, util::uid(&self.d))
                        && without_hash(&rs["spec"]["template"]) == without_hash(&self.d["spec"]["template"])
                }) {
                    return Ok((Some(rs), old));
                }
                let mut status = self.d["status"].clone();
                if !status.is_object() {
                    status = json!({});
                }
                status["collisionCount"] = json!(collisions + 1);
                self.update_status(status)?;
                return Err(ApiError::new(409, "AlreadyExists", format!("hash collision for ReplicaSet {rs_name}")));
            }
            Err(e) => {
                let mut status = self.d["status"].clone();
                if !status.is_object() {
                    status = json!({});
                }
                Self::set_condition(
                    &mut status,
                    Self::new_condition("ReplicaFailure", "True", "FailedCreate", &e.message),
                );
                let _ = self.update_status(status);
                return Err(e);
            }
        };
        self.sync_revision(&new_revision)?;
        if progress_deadline(&self.d).is_some() {
            let mut status = self.d["status"].clone();
            if !status.is_object() {
                status = json!({});
            }
            Self::set_condition(
                &mut status,
                Self::new_condition(
                    "Progressing",
                    "True",
                    "NewReplicaSetCreated",
                    &format!("Created new replica set \"{rs_name}\""),
                ),
            );
            self.update_status(status)?;
        }
        Ok((Some(created), old))
    }

    /// `SetNewReplicaSetAnnotations` on an annotation map; true when it changed.
    fn set_new_rs_annotations(&self, anns: &mut Map<String, Value>, new_revision: &str, exists: bool) -> bool {
        let mut changed = false;
        const SKIP: &[&str] = &[
            "kubectl.kubernetes.io/last-applied-configuration",
            REVISION,
            REVISION_HISTORY,
            DESIRED_REPLICAS,
            MAX_REPLICAS,
            "deprecated.deployment.rollback.to",
        ];
        if let Some(da) = self.d["metadata"]["annotations"].as_object() {
            for (k, v) in da {
                if SKIP.contains(&k.as_str()) || anns.get(k) == Some(v) {
                    continue;
                }
                anns.insert(k.clone(), v.clone());
                changed = true;
            }
        }
        let old = anns.get(REVISION).and_then(Value::as_str).map(str::to_string);
        let old_int = match &old {
            Some(o) => match o.parse::<i64>() {
                Ok(n) => n,
                Err(_) => return false,
            },
            None => 0,
        };
        let new_int: i64 = new_revision.parse().unwrap_or(0);
        if old_int < new_int {
            anns.insert(REVISION.into(), json!(new_revision));
            changed = true;
            if let Some(old) = old {
                let hist = anns.get(REVISION_HISTORY).and_then(Value::as_str).unwrap_or_default().to_string();
                let joined = if hist.is_empty() {
                    old
                } else {
                    let mut parts: Vec<&str> = hist.split(',').collect();
                    let mut total = hist.len() + old.len() + 1;
                    while total > MAX_REV_HISTORY_CHARS && !parts.is_empty() {
                        total -= parts[0].len() + 1;
                        parts.remove(0);
                    }
                    parts.push(&old);
                    parts.join(",")
                };
                anns.insert(REVISION_HISTORY.into(), json!(joined));
            }
        }
        if !exists {
            let (desired, max) = (replicas(&self.d), replicas(&self.d) + max_surge(&self.d));
            anns.insert(DESIRED_REPLICAS.into(), json!(desired.to_string()));
            anns.insert(MAX_REPLICAS.into(), json!(max.to_string()));
            changed = true;
        }
        changed
    }

    /// `NewRSNewReplicas`.
    fn new_rs_replicas(&self, all: &[&Value], new_rs: &Value) -> i64 {
        let desired = replicas(&self.d);
        if !is_rolling(&self.d) {
            return desired;
        }
        let current = sum(all, rs_replicas);
        let max_total = desired + max_surge(&self.d);
        if current >= max_total {
            return rs_replicas(new_rs);
        }
        let up = (max_total - current).min(desired - rs_replicas(new_rs));
        rs_replicas(new_rs) + up
    }

    /// `scaleReplicaSet`: size and the desired/max annotations. Returns (scaled, rs).
    fn scale_rs(&mut self, rs: &Value, n: i64) -> Result<(bool, Value), ApiError> {
        let desired = replicas(&self.d).to_string();
        let max = (replicas(&self.d) + max_surge(&self.d)).to_string();
        let size_changed = rs_replicas(rs) != n;
        let anns_changed = annotation(rs, DESIRED_REPLICAS) != Some(desired.as_str())
            || annotation(rs, MAX_REPLICAS) != Some(max.as_str());
        if !size_changed && !anns_changed {
            return Ok((false, rs.clone()));
        }
        let patch = json!({"metadata": {"annotations": {DESIRED_REPLICAS: desired, MAX_REPLICAS: max}}, "spec": {"replicas": n}});
        let updated = patch_obj(self.ctx.c, "apps/v1", "replicasets", rs, patch)?;
        Ok((size_changed, updated))
    }

    fn is_scaling_event(&mut self, rs_list: &[Value]) -> Result<bool, ApiError> {
        let (new, old) = self.new_and_old(rs_list, false)?;
        let desired = replicas(&self.d);
        Ok(old.iter().chain(new.iter()).filter(|rs| rs_replicas(rs) > 0).any(|rs| {
            annotation(rs, DESIRED_REPLICAS).and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v != desired)
        }))
    }

    /// `sync`: scaling and status only (paused deployments, scaling events). Like upstream, the
    /// status is computed from the ReplicaSets as read before scaling; their events bring the
    /// next sync.
    fn sync(&mut self, rs_list: &[Value]) -> Result<(), ApiError> {
        let (new, old) = self.new_and_old(rs_list, false)?;
        self.scale(new.as_ref(), &old)?;
        if self.d["spec"]["paused"] == true {
            self.cleanup(&old)?;
        }
        let status = self.calculate_status(new.as_ref(), &old);
        self.update_status(status)
    }

    fn sync_status_only(&mut self, rs_list: &[Value]) -> Result<(), ApiError> {
        let (new, old) = self.new_and_old(rs_list, false)?;
        let status = self.calculate_status(new.as_ref(), &old);
        self.update_status(status)
    }

    /// `scale`: one active ReplicaSet gets everything; otherwise proportional scaling.
    fn scale(&mut self, new: Option<&Value>, old: &[Value]) -> Result<(), ApiError> {
        let desired = replicas(&self.d);
        let active: Vec<&Value> = old.iter().chain(new).filter(|rs| rs_replicas(rs) > 0).collect();
        // FindActiveOrLatest
        let active_or_latest = match (active.len(), new) {
            (0, Some(n)) => Some(n.clone()),
            (0, None) => old
                .iter()
                .max_by(|a, b| created(a).partial_cmp(&created(b)).unwrap_or(std::cmp::Ordering::Equal))
                .cloned(),
            (1, _) => Some(active[0].clone()),
            _ => None,
        };
        if let Some(rs) = active_or_latest {
            if rs_replicas(&rs) != desired {
                self.scale_rs(&rs, desired)?;
            }
            return Ok(());
        }
        if let Some(n) = new
            && annotation(n, DESIRED_REPLICAS).and_then(|v| v.parse::<i64>().ok()) == Some(desired)
            && rs_replicas(n) == desired
            && rs_status(n, "availableReplicas") == desired
        {
            for o in old.iter().filter(|rs| rs_replicas(rs) > 0) {
                self.scale_rs(o, 0)?;
            }
            return Ok(());
        }
        if !is_rolling(&self.d) {
            return Ok(());
        }
        let mut all: Vec<Value> = active.iter().map(|rs| (*rs).clone()).collect();
        let all_replicas: i64 = all.iter().map(rs_replicas).sum();
        let allowed = if desired > 0 { desired + max_surge(&self.d) } else { 0 };
        let to_add = allowed - all_replicas;
        let key = |rs: &Value| (rs_replicas(rs), created(rs).0);
        if to_add > 0 {
            // Larger first; newer first among equals.
            all.sort_by(|a, b| key(b).partial_cmp(&key(a)).unwrap_or(std::cmp::Ordering::Equal));
        } else if to_add < 0 {
            // Larger first; older first among equals.
            all.sort_by(|a, b| {
                rs_replicas(b)
                    .cmp(&rs_replicas(a))
                    .then(created(a).partial_cmp(&created(b)).unwrap_or(std::cmp::Ordering::Equal))
            });
        }
        let mut added = 0;
        let mut sizes: Vec<i64> = Vec::new();
        for rs in &all {
            if to_add != 0 {
                let p = self.proportion(rs, to_add, added);
                sizes.push(rs_replicas(rs) + p);
                added += p;
            } else {
                sizes.push(rs_replicas(rs));
            }
        }
        for (i, rs) in all.iter().enumerate() {
            if i == 0 && to_add != 0 {
                sizes[0] = (sizes[0] + to_add - added).max(0);
            }
            self.scale_rs(rs, sizes[i])?;
        }
        Ok(())
    }

    /// `GetReplicaSetProportion`.
    fn proportion(&self, rs: &Value, to_add: i64, added: i64) -> i64 {
        if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
            return 0;
        }
        let fraction = {
            let desired = replicas(&self.d);
            if desired == 0 {
                -rs_replicas(rs)
            } else {
                let max_now = desired + max_surge(&self.d);
                let before = annotation(rs, MAX_REPLICAS).and_then(|v| v.parse::<i64>().ok()).filter(|v| *v > 0);
                match before.or_else(|| Some(int_or(&self.d["status"]["replicas"], 0)).filter(|v| *v > 0)) {
                    None => 0,
                    Some(b) => ((rs_replicas(rs) * max_now) as f64 / b as f64).round() as i64 - rs_replicas(rs),
                }
            }
        };
        let allowed = to_add - added;
        if to_add > 0 { fraction.min(allowed) } else { fraction.max(allowed) }
    }

    fn rollout_rolling(&mut self, rs_list: &[Value]) -> Result<(), ApiError> {
        let (new, old) = self.new_and_old(rs_list, true)?;
        let Some(new) = new else { return Ok(()) };
        // Scale up, if we can.
        if rs_replicas(&new) != replicas(&self.d) {
            let target = if rs_replicas(&new) > replicas(&self.d) {
                replicas(&self.d)
            } else {
                let mut all: Vec<&Value> = old.iter().collect();
                all.push(&new);
                self.new_rs_replicas(&all, &new)
            };
            let (scaled, _) = self.scale_rs(&new, target)?;
            if scaled {
                return self.sync_rollout_status(Some(&new), &old);
            }
        }
        // Scale down, if we can.
        if self.reconcile_old(&new, &old)? {
            return self.sync_rollout_status(Some(&new), &old);
        }
        if self.complete(&self.d["status"].clone()) {
            self.cleanup(&old)?;
        }
        self.sync_rollout_status(Some(&new), &old)
    }

    /// `reconcileOldReplicaSets`: true when something was scaled down.
    fn reconcile_old(&mut self, new: &Value, old: &[Value]) -> Result<bool, ApiError> {
        let mut old_active: Vec<Value> = old.iter().filter(|rs| rs_replicas(rs) > 0).cloned().collect();
        if old_active.is_empty() {
            return Ok(false);
        }
        let all_pods: i64 = old.iter().map(rs_replicas).sum::<i64>() + rs_replicas(new);
        let min_available = replicas(&self.d) - max_unavailable(&self.d);
        let new_unavailable = rs_replicas(new) - rs_status(new, "availableReplicas");
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok(false);
        }
        by_creation(&mut old_active);
        // Clean up unhealthy replicas first.
        let mut cleaned = 0;
        for rs in old_active.iter_mut() {
            if cleaned >= max_scaled_down {
                break;
            }
            let (spec, avail) = (rs_replicas(rs), rs_status(rs, "availableReplicas"));
            if spec == 0 || spec == avail {
                continue;
            }
            let down = (max_scaled_down - cleaned).min(spec - avail);
            let (_, updated) = self.scale_rs(rs, spec - down)?;
            *rs = updated;
            cleaned += down;
        }
        // Then scale down old ReplicaSets as far as availability allows.
        let available: i64 = old_active.iter().map(|rs| rs_status(rs, "availableReplicas")).sum::<i64>()
            + rs_status(new, "availableReplicas");
        let mut scaled = 0;
        if available > min_available {
            let total = available - min_available;
            for rs in &old_active {
                if scaled >= total {
                    break;
                }
                if rs_replicas(rs) == 0 {
                    continue;
                }
                let down = rs_replicas(rs).min(total - scaled);
                self.scale_rs(rs, rs_replicas(rs) - down)?;
                scaled += down;
            }
        }
        Ok(cleaned + scaled > 0)
    }

    fn rollout_recreate(&mut self, rs_list: &[Value]) -> Result<(), ApiError> {
        let (mut new, old) = self.new_and_old(rs_list, false)?;
        let mut scaled_down = false;
        for rs in old.iter().filter(|rs| rs_replicas(rs) > 0) {
            scaled_down |= self.scale_rs(rs, 0)?.0;
        }
        if scaled_down {
            return self.sync_rollout_status(new.as_ref(), &old);
        }
        // Wait for the old pods to be gone.
        let new_uid = new.as_ref().map(|rs| util::uid(rs).to_string());
        let old_running = old.iter().map(|rs| rs_status(rs, "replicas")).sum::<i64>() > 0
            || old.iter().filter(|rs| Some(util::uid(rs).to_string()) != new_uid).any(|rs| {
                self.ctx
                    .c
                    .list_owned("v1", "pods", util::namespace(rs), util::uid(rs))
                    .iter()
                    .any(|p| !util::pod_terminal(p))
            });
        if old_running {
            return self.sync_rollout_status(new.as_ref(), &old);
        }
        if new.is_none() {
            new = self.new_and_old(rs_list, true)?.0;
        }
        if let Some(n) = &new {
            self.scale_rs(n, replicas(&self.d))?;
        }
        if self.complete(&self.d["status"].clone()) {
            self.cleanup(&old)?;
        }
        self.sync_rollout_status(new.as_ref(), &old)
    }

    /// `DeploymentComplete`.
    fn complete(&self, status: &Value) -> bool {
        let n = replicas(&self.d);
        int_or(&status["updatedReplicas"], 0) == n
            && int_or(&status["replicas"], 0) == n
            && int_or(&status["availableReplicas"], 0) == n
            && int_or(&status["observedGeneration"], 0) >= util::generation(&self.d)
    }

    /// `calculateStatus`.
    fn calculate_status(&self, new: Option<&Value>, old: &[Value]) -> Value {
        let all: Vec<&Value> = old.iter().chain(new).collect();
        let available = sum(&all, |rs| rs_status(rs, "availableReplicas"));
        let total = sum(&all, rs_replicas);
        let unavailable = (total - available).max(0);
        let mut status = json!({"observedGeneration": util::generation(&self.d)});
        let counts = [
            ("replicas", sum(&all, |rs| rs_status(rs, "replicas"))),
            ("updatedReplicas", new.map(|rs| rs_status(rs, "replicas")).unwrap_or(0)),
            ("readyReplicas", sum(&all, |rs| rs_status(rs, "readyReplicas"))),
            ("availableReplicas", available),
            ("unavailableReplicas", unavailable),
        ];
        for (k, v) in counts {
            if v != 0 {
                status[k] = json!(v);
            }
        }
        status["terminatingReplicas"] = json!(sum(&all, |rs| rs_status(rs, "terminatingReplicas")));
        if let Some(cc) = self.d["status"]["collisionCount"].as_i64() {
            status["collisionCount"] = json!(cc);
        }
        let mut conds = Self::conditions(&self.d["status"]);
        let cond = if available >= replicas(&self.d) - max_unavailable(&self.d) {
            Self::new_condition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        } else {
            Self::new_condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        };
        util::set_condition(&mut conds, cond);
        status["conditions"] = Value::Array(conds);
        status
    }

    /// `syncRolloutStatus`: status plus the Progressing condition.
    fn sync_rollout_status(&mut self, new: Option<&Value>, old: &[Value]) -> Result<(), ApiError> {
        let mut status = self.calculate_status(new, old);
        let deadline = progress_deadline(&self.d);
        if deadline.is_none() {
            let mut conds = Self::conditions(&status);
            util::remove_condition(&mut conds, "Progressing");
            status["conditions"] = Value::Array(conds);
        }
        let current = self.progressing_cond();
        let old_status = &self.d["status"];
        let is_complete = int_or(&status["replicas"], 0) == int_or(&status["updatedReplicas"], 0)
            && current.as_ref().is_some_and(|c| c["reason"] == "NewReplicaSetAvailable");
        let rs_name = new.map(|rs| util::name(rs).to_string());
        if let Some(deadline) = deadline
            && !is_complete
        {
            let progressing = {
                let g = |s: &Value, f: &str| int_or(&s[f], 0);
                let old_old = g(old_status, "replicas") - g(old_status, "updatedReplicas");
                let new_old = g(&status, "replicas") - g(&status, "updatedReplicas");
                g(&status, "updatedReplicas") > g(old_status, "updatedReplicas")
                    || new_old < old_old
                    || g(&status, "readyReplicas") > g(old_status, "readyReplicas")
                    || g(&status, "availableReplicas") > g(old_status, "availableReplicas")
            };
            if self.complete(&status) {
                let msg = match &rs_name {
                    Some(n) => format!("ReplicaSet \"{n}\" has successfully progressed."),
                    None => format!("Deployment \"{}\" has successfully progressed.", self.name()),
                };
                Self::set_condition(
                    &mut status,
                    Self::new_condition("Progressing", "True", "NewReplicaSetAvailable", &msg),
                );
            } else if progressing {
                let msg = match &rs_name {
                    Some(n) => format!("ReplicaSet \"{n}\" is progressing."),
                    None => format!("Deployment \"{}\" is progressing.", self.name()),
                };
                let mut cond = Self::new_condition("Progressing", "True", "ReplicaSetUpdated", &msg);
                let mut conds = Self::conditions(&status);
                if let Some(cur) = &current {
                    if cur["status"] == "True" {
                        cond["lastTransitionTime"] = cur["lastTransitionTime"].clone();
                    }
                    util::remove_condition(&mut conds, "Progressing");
                }
                conds.push(cond);
                status["conditions"] = Value::Array(conds);
            } else if let Some(cond) = Self::conditions(&status).into_iter().find(|c| c["type"] == "Progressing")
                && cond["reason"] != "NewReplicaSetAvailable"
            {
                let from = cond["lastUpdateTime"].as_str().and_then(util::parse_time);
                let timed_out = cond["reason"] == "ProgressDeadlineExceeded"
                    || from.is_some_and(|f| f + (deadline as f64) < util::now_secs());
                if timed_out {
                    let msg = match &rs_name {
                        Some(n) => format!("ReplicaSet \"{n}\" has timed out progressing."),
                        None => format!("Deployment \"{}\" has timed out progressing.", self.name()),
                    };
                    Self::set_condition(
                        &mut status,
                        Self::new_condition("Progressing", "False", "ProgressDeadlineExceeded", &msg),
                    );
                } else if let Some(f) = from {
                    // requeueStuckDeployment: look again when the deadline passes.
                    self.ctx.q.at(Key::new(Kind::Deployment, &self.ns(), &self.name()), f + deadline as f64 + 1.0);
                }
            }
        }
        // ReplicaFailure comes from the new ReplicaSet.
        let failure =
            new.and_then(|rs| util::condition(rs, "ReplicaFailure")).filter(|c| c["status"] == "True").cloned();
        let mut conds = Self::conditions(&status);
        match failure {
            Some(f) => {
                let cond = json!({"type": "ReplicaFailure", "status": "True", "lastUpdateTime": f["lastTransitionTime"],
                    "lastTransitionTime": f["lastTransitionTime"], "reason": f["reason"], "message": f["message"]});
                util::set_condition(&mut conds, cond);
            }
            None => util::remove_condition(&mut conds, "ReplicaFailure"),
        }
        status["conditions"] = Value::Array(conds);
        self.update_status(status)
    }

    /// `cleanupDeployment`: old ReplicaSets beyond revisionHistoryLimit that have nothing left.
    fn cleanup(&mut self, old: &[Value]) -> Result<(), ApiError> {
        let Some(limit) = history_limit(&self.d) else { return Ok(()) };
        let mut cleanable: Vec<&Value> = old.iter().filter(|rs| !deleting(rs)).collect();
        let diff = cleanable.len() as i64 - limit;
        if diff <= 0 {
            return Ok(());
        }
        cleanable.sort_by_key(|rs| (revision(rs), util::name(rs).to_string()));
        for rs in cleanable.into_iter().take(diff as usize) {
            if rs_status(rs, "replicas") != 0
                || rs_replicas(rs) != 0
                || util::generation(rs) > rs_status(rs, "observedGeneration")
            {
                continue;
            }
            match self.ctx.c.delete("apps/v1", "replicasets", util::namespace(rs), util::name(rs)) {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Deployment as the API server stores it (defaulted).
    fn dep(replicas: i64, strategy: Value) -> Value {
        let mut d = json!({"spec": {"replicas": replicas, "strategy": strategy}});
        crate::defaults::apply("Deployment", &mut d);
        d
    }

    #[test]
    fn fenceposts_round_like_upstream() {
        let d = dep(2, json!(null));
        assert_eq!((max_surge(&d), max_unavailable(&d)), (1, 0));
        let d = dep(10, json!(null));
        assert_eq!((max_surge(&d), max_unavailable(&d)), (3, 2));
        let d = dep(1, json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "10%"}}));
        assert_eq!((max_surge(&d), max_unavailable(&d)), (0, 1), "both zero after rounding: unavailable 1");
        let d = dep(3, json!({"type": "Recreate"}));
        assert_eq!((max_surge(&d), max_unavailable(&d)), (0, 0));
        let d = dep(0, json!(null));
        assert_eq!(max_unavailable(&d), 0);
    }

    #[test]
    fn templates_compare_without_the_hash_label() {
        let t = json!({"metadata": {"labels": {"app": "a"}}, "spec": {}});
        let mut with = t.clone();
        with["metadata"]["labels"][HASH_LABEL] = json!("abc");
        assert_eq!(without_hash(&with), without_hash(&t));
        let bare = json!({"spec": {}});
        let mut labelled = bare.clone();
        labelled["metadata"] = json!({"labels": {HASH_LABEL: "x"}});
        assert_eq!(without_hash(&labelled), bare);
        // A container patched into a Deployment and its ReplicaSet's copy (hash label added)
        // match once the store has defaulted both, as it does on every write.
        let stored = |kind: &str, t: Value| {
            let mut o = json!({"spec": {"template": t}});
            crate::defaults::apply(kind, &mut o);
            o["spec"]["template"].take()
        };
        let patched = json!({"spec": {"containers": [{"name": "c", "image": "nginx:1"}]}});
        let mut copy = patched.clone();
        copy["metadata"] = json!({"labels": {HASH_LABEL: "x"}});
        assert_eq!(without_hash(&stored("Deployment", patched.clone())), without_hash(&stored("ReplicaSet", copy)));
        assert_ne!(
            without_hash(&stored("Deployment", patched)),
            without_hash(&stored("Deployment", json!({"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}})))
        );
        assert_eq!(without_hash(&json!("odd")), json!("odd"));
    }
}
