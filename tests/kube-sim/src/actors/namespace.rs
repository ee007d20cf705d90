//! The namespace controllers: the root CA publisher (`kube-root-ca.crt` in every namespace), the
//! service account controller (`default`), and the conditions the namespace deleter writes while
//! content holds a namespace in Terminating (transcript 16). kube-sim's store deletes a
//! namespace's content inline and removes the namespace as soon as it is empty (a real one takes
//! a few seconds); this controller only reports what is left.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{Value, json};

use super::util::{self, deleting};
use super::{CONTROLLER_MANAGER, Ctx};
use crate::ApiError;

pub const ROOT_CA: &str = "kube-root-ca.crt";
const ROOT_CA_DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// The cluster's CA (one per process: generating a key per namespace would be slow).
fn root_ca() -> &'static str {
    static CA: OnceLock<String> = OnceLock::new();
    CA.get_or_init(|| crate::seed::ca_pem(3650))
}

pub fn reconcile(ctx: &mut Ctx, name: &str) -> Result<(), ApiError> {
    let Some(ns) = ctx.c.get("v1", "namespaces", "", name) else { return Ok(()) };
    if deleting(&ns) {
        return termination_conditions(ctx, &ns);
    }
    if ctx.c.get("v1", "configmaps", name, ROOT_CA).is_none() {
        let cm = json!({"metadata": {"name": ROOT_CA, "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION}},
            "data": {"ca.crt": root_ca()}});
        ignore_exists(ctx.c.create_by("v1", "configmaps", name, cm, CONTROLLER_MANAGER))?;
    }
    if ctx.c.get("v1", "serviceaccounts", name, "default").is_none() {
        let sa = json!({"metadata": {"name": "default"}});
        ignore_exists(ctx.c.create_by("v1", "serviceaccounts", name, sa, CONTROLLER_MANAGER))?;
    }
    Ok(())
}

fn ignore_exists(r: Result<Value, ApiError>) -> Result<(), ApiError> {
    match r {
        Ok(_) => Ok(()),
        // Already there, or the namespace went away or is terminating meanwhile.
        Err(e) if matches!(e.code, 409 | 403 | 404) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The five conditions of `NamespaceConditionUpdater`, in its order.
fn termination_conditions(ctx: &mut Ctx, ns: &Value) -> Result<(), ApiError> {
    let name = util::name(ns);
    let mut remaining: BTreeMap<String, usize> = BTreeMap::new();
    let mut finalizers: BTreeMap<String, usize> = BTreeMap::new();
    for rt in ctx.c.resource_types().iter().filter(|r| r.namespaced && !r.create_only) {
        let objs = ctx.c.list(&rt.api_version(), &rt.plural, Some(name));
        if objs.is_empty() {
            continue;
        }
        *remaining.entry(format!("{}.{}", rt.plural, rt.group)).or_default() += objs.len();
        for o in &objs {
            for f in o["metadata"]["finalizers"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                *finalizers.entry(f.to_string()).or_default() += 1;
            }
        }
    }
    let now = util::now_rfc3339();
    let c = |ty: &str, status: &str, reason: &str, message: String| json!({"type": ty, "status": status, "lastTransitionTime": now, "reason": reason, "message": message});
    let mut conds = vec![
        c(
            "NamespaceDeletionDiscoveryFailure",
            "False",
            "ResourcesDiscovered",
            "All resources successfully discovered".into(),
        ),
        c(
            "NamespaceDeletionGroupVersionParsingFailure",
            "False",
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed".into(),
        ),
        c(
            "NamespaceDeletionContentFailure",
            "False",
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization".into(),
        ),
    ];
    conds.push(if remaining.is_empty() {
        c("NamespaceContentRemaining", "False", "ContentRemoved", "All content successfully removed".into())
    } else {
        let parts: Vec<String> = remaining.iter().map(|(r, n)| format!("{r} has {n} resource instances")).collect();
        c(
            "NamespaceContentRemaining",
            "True",
            "SomeResourcesRemain",
            format!("Some resources are remaining: {}", parts.join(", ")),
        )
    });
    conds.push(if finalizers.is_empty() {
        c(
            "NamespaceFinalizersRemaining",
            "False",
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished".into(),
        )
    } else {
        let parts: Vec<String> = finalizers.iter().map(|(f, n)| format!("{f} in {n} resource instances")).collect();
        c(
            "NamespaceFinalizersRemaining",
            "True",
            "SomeFinalizersRemain",
            format!("Some content in the namespace has finalizers remaining: {}", parts.join(", ")),
        )
    });
    // Keep transition times of conditions whose status did not change.
    for cond in &mut conds {
        if let Some(prev) = util::condition(ns, cond["type"].as_str().unwrap_or_default())
            && prev["status"] == cond["status"]
        {
            cond["lastTransitionTime"] = prev["lastTransitionTime"].clone();
        }
    }
    let old: Vec<Value> = ns["status"]["conditions"].as_array().cloned().unwrap_or_default();
    if old == conds {
        return Ok(());
    }
    ctx.c.patch_status_by(
        "v1",
        "namespaces",
        "",
        name,
        &json!({"status": {"conditions": conds}}),
        CONTROLLER_MANAGER,
    )?;
    Ok(())
}
