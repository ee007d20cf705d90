//! The Job controller, reduced (upstream `pkg/controller/job`): up to `parallelism` pods at a
//! time (labels `batch.kubernetes.io/controller-uid`, `batch.kubernetes.io/job-name`,
//! `controller-uid`, `job-name`) until `completions` have succeeded (unset, a work queue: until
//! one has and none is active); then `SuccessCriteriaMet`
//! and `Complete` (`CompletionsReached`) and `completionTime`. More than `backoffLimit` failed
//! pods: `FailureTarget` and `Failed` (`BackoffLimitExceeded`). `suspend` deletes the active pods
//! (`Suspended`). Counts come from the pods that exist (no tracking finalizers, no
//! `uncountedTerminatedPods` bookkeeping), Indexed completion and pod failure policies are not
//! modelled. CronJobs are stored but nothing runs them.

use serde_json::{Value, json};

use super::replicaset::pod_from_template;
use super::util::{self, controlled_by, deleting, int_or};
use super::{CONTROLLER_MANAGER, Ctx, write_status};
use crate::ApiError;

fn cond(ty: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": ty, "status": "True", "lastProbeTime": now, "lastTransitionTime": now, "reason": reason, "message": message})
}

pub fn reconcile(ctx: &mut Ctx, ns: &str, name: &str) -> Result<(), ApiError> {
    let Some(job) = ctx.c.get("batch/v1", "jobs", ns, name) else { return Ok(()) };
    let uid = util::uid(&job).to_string();
    let pods: Vec<Value> =
        ctx.c.list_owned("v1", "pods", ns, &uid).into_iter().filter(|p| controlled_by(p, &uid)).collect();
    let active: Vec<&Value> = pods.iter().filter(|p| util::pod_active(p)).collect();
    let terminating = pods.iter().filter(|p| deleting(p) && !util::pod_terminal(p)).count();
    let succeeded = pods.iter().filter(|p| util::pod_phase(p) == "Succeeded").count() as i64;
    let failed = pods.iter().filter(|p| util::pod_phase(p) == "Failed").count() as i64;
    let ready = active.iter().filter(|p| util::pod_ready(p)).count();
    // The spec as the API server defaulted it (src/defaults.rs: parallelism and backoffLimit are
    // always set, completions unless parallelism alone was sent).
    let parallelism = int_or(&job["spec"]["parallelism"], 0).max(0);
    let completions = job["spec"]["completions"].as_i64().map(|n| n.max(0));
    let backoff_limit = int_or(&job["spec"]["backoffLimit"], 0);
    let suspended = job["spec"]["suspend"] == true;
    let now = util::now_rfc3339();
    let mut status = if job["status"].is_object() { job["status"].clone() } else { json!({}) };
    let mut conds: Vec<Value> = status["conditions"].as_array().cloned().unwrap_or_default();
    let finished = conds.iter().any(|c| (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True");
    let mut active_n = active.len() as i64;
    if !finished && !deleting(&job) {
        let complete = match completions {
            Some(n) => succeeded >= n,
            None => succeeded > 0 && active.is_empty(),
        };
        if complete {
            for ty in ["SuccessCriteriaMet", "Complete"] {
                util::set_condition(
                    &mut conds,
                    cond(ty, "CompletionsReached", "Reached expected number of succeeded pods", &now),
                );
            }
            status["completionTime"] = json!(now);
        } else if failed > backoff_limit {
            for p in &active {
                let _ = ctx.c.delete("v1", "pods", ns, util::name(p));
            }
            active_n = 0;
            for ty in ["FailureTarget", "Failed"] {
                util::set_condition(
                    &mut conds,
                    cond(ty, "BackoffLimitExceeded", "Job has reached the specified backoff limit", &now),
                );
            }
        } else if suspended {
            for p in &active {
                let _ = ctx.c.delete("v1", "pods", ns, util::name(p));
            }
            active_n = 0;
            util::set_condition(&mut conds, cond("Suspended", "JobSuspended", "Job suspended", &now));
        } else {
            if conds.iter().any(|c| c["type"] == "Suspended" && c["status"] == "True") {
                util::set_condition(
                    &mut conds,
                    json!({"type": "Suspended", "status": "False", "lastProbeTime": now,
                    "lastTransitionTime": now, "reason": "JobResumed", "message": "Job resumed"}),
                );
            }
            if status["startTime"].is_null() {
                status["startTime"] = json!(now);
            }
            let want = match completions {
                Some(n) => parallelism.min(n - succeeded),
                // A work queue stops starting pods once one has succeeded.
                None if succeeded > 0 => 0,
                None => parallelism,
            } - active.len() as i64;
            for _ in 0..want.max(0) {
                let mut pod = pod_from_template(&job["spec"]["template"], &job, &format!("{name}-"));
                if !pod["metadata"]["labels"].is_object() {
                    pod["metadata"]["labels"] = json!({});
                }
                for (k, v) in [
                    ("batch.kubernetes.io/controller-uid", uid.as_str()),
                    ("batch.kubernetes.io/job-name", name),
                    ("controller-uid", uid.as_str()),
                    ("job-name", name),
                ] {
                    pod["metadata"]["labels"][k] = json!(v);
                }
                ctx.c.create_by("v1", "pods", ns, pod, CONTROLLER_MANAGER)?;
            }
        }
    }
    let set_count = |status: &mut Value, k: &str, v: i64| {
        if v > 0 {
            status[k] = json!(v);
        } else if let Some(m) = status.as_object_mut() {
            m.remove(k);
        }
    };
    set_count(&mut status, "active", active_n);
    set_count(&mut status, "succeeded", succeeded);
    set_count(&mut status, "failed", failed);
    status["ready"] = json!(ready);
    status["terminating"] = json!(terminating);
    status["uncountedTerminatedPods"] = json!({});
    if !conds.is_empty() {
        status["conditions"] = Value::Array(conds);
    }
    write_status(ctx.c, "batch/v1", "jobs", &job, status)?;
    Ok(())
}
