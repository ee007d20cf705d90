//! The API server's defaults for workloads and pods (`pkg/apis/{apps,batch,core}/v1/defaults.go`),
//! applied at create as an admission step while the actors run: what controllers and kubectl
//! read (a StatefulSet without `updateStrategy` makes `kubectl rollout status` refuse, a client
//! that checks `strategy.type` sees nothing). Only missing fields are filled, so it is
//! idempotent. The fields are those transcript 11 shows the real server adding to a
//! Deployment; the creator owns them in managedFields, as on a real server.
//!
//! NB: a real server defaults on every write (a PUT without these fields gets them again);
//! here only creates are defaulted, and only with actors on.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::store::{Admission, Store};

fn set(obj: &mut Value, key: &str, v: Value) {
    if let Some(m) = obj.as_object_mut()
        && !m.contains_key(key)
    {
        m.insert(key.to_string(), v);
    }
}

fn object<'a>(parent: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    if !parent.is_object() {
        return None;
    }
    set(parent, key, json!({}));
    let v = parent.get_mut(key)?;
    v.is_object().then_some(v)
}

/// `imagePullPolicy`: Always for `:latest` or an untagged image, otherwise IfNotPresent.
fn pull_policy(image: &str) -> &'static str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let tag = without_digest.rsplit_once(':').filter(|(_, t)| !t.contains('/')).map(|(_, t)| t);
    if image.contains('@') {
        return "IfNotPresent";
    }
    match tag {
        None | Some("latest") => "Always",
        Some(_) => "IfNotPresent",
    }
}

/// A PodSpec's defaults (`SetDefaults_PodSpec`, `SetDefaults_Container`).
pub fn pod_spec(spec: &mut Value, restart_policy: Option<&str>) {
    if !spec.is_object() {
        return;
    }
    if let Some(p) = restart_policy {
        set(spec, "restartPolicy", json!(p));
    }
    set(spec, "terminationGracePeriodSeconds", json!(30));
    set(spec, "dnsPolicy", json!("ClusterFirst"));
    set(spec, "schedulerName", json!("default-scheduler"));
    set(spec, "securityContext", json!({}));
    for list in ["initContainers", "containers"] {
        for c in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            if !c.is_object() {
                continue;
            }
            let image = c["image"].as_str().unwrap_or_default().to_string();
            set(c, "imagePullPolicy", json!(pull_policy(&image)));
            set(c, "terminationMessagePath", json!("/dev/termination-log"));
            set(c, "terminationMessagePolicy", json!("File"));
            set(c, "resources", json!({}));
            for p in c.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
                set(p, "protocol", json!("TCP"));
            }
        }
    }
}

fn template(obj: &mut Value, restart_policy: Option<&str>) {
    if let Some(spec) = object(obj, "spec")
        && let Some(t) = object(spec, "template")
        && let Some(ps) = object(t, "spec")
    {
        pod_spec(ps, restart_policy);
    }
}

/// Defaults for one object of `kind` (group-qualified kinds are matched by name only among the
/// built-in ones: apps and batch kinds, core Pods).
pub fn apply(group: &str, kind: &str, obj: &mut Value) {
    match (group, kind) {
        ("", "Pod") => {
            if let Some(spec) = object(obj, "spec") {
                pod_spec(spec, Some("Always"));
            }
        }
        ("apps", "Deployment") => {
            if let Some(spec) = object(obj, "spec") {
                set(spec, "replicas", json!(1));
                set(spec, "revisionHistoryLimit", json!(10));
                set(spec, "progressDeadlineSeconds", json!(600));
                if let Some(strategy) = object(spec, "strategy") {
                    set(strategy, "type", json!("RollingUpdate"));
                    if strategy["type"] == "RollingUpdate"
                        && let Some(ru) = object(strategy, "rollingUpdate")
                    {
                        set(ru, "maxUnavailable", json!("25%"));
                        set(ru, "maxSurge", json!("25%"));
                    }
                }
            }
            template(obj, Some("Always"));
        }
        ("apps", "ReplicaSet") => {
            if let Some(spec) = object(obj, "spec") {
                set(spec, "replicas", json!(1));
            }
            template(obj, Some("Always"));
        }
        ("apps", "StatefulSet") => {
            if let Some(spec) = object(obj, "spec") {
                set(spec, "replicas", json!(1));
                set(spec, "podManagementPolicy", json!("OrderedReady"));
                set(spec, "revisionHistoryLimit", json!(10));
                set(
                    spec,
                    "persistentVolumeClaimRetentionPolicy",
                    json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
                );
                if let Some(strategy) = object(spec, "updateStrategy") {
                    set(strategy, "type", json!("RollingUpdate"));
                    if strategy["type"] == "RollingUpdate"
                        && let Some(ru) = object(strategy, "rollingUpdate")
                    {
                        set(ru, "partition", json!(0));
                    }
                }
            }
            template(obj, Some("Always"));
        }
        ("apps", "DaemonSet") => {
            if let Some(spec) = object(obj, "spec") {
                set(spec, "revisionHistoryLimit", json!(10));
                if let Some(strategy) = object(spec, "updateStrategy") {
                    set(strategy, "type", json!("RollingUpdate"));
                    if strategy["type"] == "RollingUpdate"
                        && let Some(ru) = object(strategy, "rollingUpdate")
                    {
                        set(ru, "maxUnavailable", json!(1));
                        set(ru, "maxSurge", json!(0));
                    }
                }
            }
            template(obj, Some("Always"));
        }
        ("batch", "Job") => {
            if let Some(spec) = object(obj, "spec") {
                if spec.get("completions").is_none() && spec.get("parallelism").is_none() {
                    set(spec, "completions", json!(1));
                }
                set(spec, "parallelism", json!(1));
                set(spec, "backoffLimit", json!(6));
                set(spec, "completionMode", json!("NonIndexed"));
                set(spec, "suspend", json!(false));
                set(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
            }
            // A Job's template must name its restartPolicy (validation); none is defaulted.
            template(obj, None);
        }
        _ => {}
    }
}

/// The admission step.
pub fn hook() -> Admission {
    Arc::new(|_store: &Store, rt, _ns, obj| {
        apply(&rt.group, &rt.kind, obj);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_gets_what_transcript_11_shows() {
        let mut d = json!({"spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}}}});
        apply("apps", "Deployment", &mut d);
        assert_eq!(
            d["spec"],
            json!({"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10", "resources": {}, "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}],
                "restartPolicy": "Always", "terminationGracePeriodSeconds": 0, "dnsPolicy": "ClusterFirst", "securityContext": {}, "schedulerName": "default-scheduler"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600})
        );
        let before = d.clone();
        apply("apps", "Deployment", &mut d);
        assert_eq!(d, before, "idempotent");
        let mut r = json!({"spec": {"strategy": {"type": "Recreate"}}});
        apply("apps", "Deployment", &mut r);
        assert!(r["spec"]["strategy"].get("rollingUpdate").is_none());
    }

    #[test]
    fn pull_policies_and_odd_objects() {
        assert_eq!(pull_policy("nginx"), "Always");
        assert_eq!(pull_policy("nginx:latest"), "Always");
        assert_eq!(pull_policy("nginx:1.25"), "IfNotPresent");
        assert_eq!(pull_policy("localhost:5000/nginx"), "Always");
        assert_eq!(pull_policy("nginx@sha256:abc"), "IfNotPresent");
        for odd in [
            json!(null),
            json!({"spec": "x"}),
            json!({"spec": {"template": []}}),
            json!({"spec": {"template": {"spec": {"containers": "x"}}}}),
        ] {
            let mut o = odd.clone();
            apply("apps", "StatefulSet", &mut o);
            apply("", "Pod", &mut o);
        }
        let mut s = json!({"spec": {}});
        apply("apps", "StatefulSet", &mut s);
        assert_eq!(s["spec"]["updateStrategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
        let mut ds = json!({"spec": {"updateStrategy": {"type": "OnDelete"}}});
        apply("apps", "DaemonSet", &mut ds);
        assert_eq!(ds["spec"]["updateStrategy"], json!({"type": "OnDelete"}));
        let mut j = json!({"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": []}}}});
        apply("batch", "Job", &mut j);
        assert_eq!((j["spec"]["completions"].clone(), j["spec"]["parallelism"].clone()), (json!(1), json!(1)));
    }
}
