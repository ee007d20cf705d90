//! Defaulting as the API server applies it while decoding a request body (create, update and
//! the result of every patch; `pkg/apis/{apps,batch,core}/v1/defaults.go`). It runs before field
//! management, so the writer owns the defaulted fields, unlike what the registry sets afterwards
//! (Service clusterIP/nodePorts, Namespace finalizers), which nobody owns. Modelled: Services,
//! Pods, the workload kinds and their pod templates. Only unset fields are filled, so it is
//! idempotent. What Pods get from admission plugins (service account and its token volume,
//! default tolerations, priority) is not defaulting and is not modelled.

use serde_json::{Map, Value, json};

/// Fills in the defaults of `kind` (the kinds kube-sim models; others are left as sent).
pub fn apply(kind: &str, obj: &mut Value) {
    match kind {
        "Service" => service(obj),
        "Deployment" => deployment(obj),
        "ReplicaSet" | "ReplicationController" => {
            replicas(obj);
            template(obj, &["spec", "template"]);
        }
        "StatefulSet" => stateful_set(obj),
        "DaemonSet" => daemon_set(obj),
        "Job" => job(obj),
        "CronJob" => cron_job(obj),
        "PodTemplate" => template(obj, &["template"]),
        "Pod" => pod(obj),
        _ => {}
    }
}

fn set(m: &mut Map<String, Value>, k: &str, v: Value) {
    if m.get(k).is_none_or(Value::is_null) {
        m.insert(k.into(), v);
    }
}

fn replicas(obj: &mut Value) {
    if let Some(spec) = object_at(obj, "spec") {
        set(spec, "replicas", json!(1));
    }
}

/// `SetDefaults_Deployment`.
fn deployment(obj: &mut Value) {
    replicas(obj);
    if let Some(spec) = object_at(obj, "spec") {
        if spec.get("paused") == Some(&json!(false)) {
            spec.remove("paused"); // omitempty
        }
        set(spec, "revisionHistoryLimit", json!(10));
        set(spec, "progressDeadlineSeconds", json!(600));
        let strategy = unset_as_empty(spec.entry("strategy").or_insert_with(|| json!({})));
        if let Some(st) = strategy.as_object_mut() {
            if is_unset(st.get("type")) {
                st.insert("type".into(), json!("RollingUpdate"));
            }
            if st.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                let ru = unset_as_empty(st.entry("rollingUpdate").or_insert_with(|| json!({})));
                if let Some(ru) = ru.as_object_mut() {
                    set(ru, "maxUnavailable", json!("25%"));
                    set(ru, "maxSurge", json!("25%"));
                }
            }
        }
    }
    template(obj, &["spec", "template"]);
}

/// `SetDefaults_StatefulSet`.
fn stateful_set(obj: &mut Value) {
    replicas(obj);
    if let Some(spec) = object_at(obj, "spec") {
        set(spec, "podManagementPolicy", json!("OrderedReady"));
        set(spec, "revisionHistoryLimit", json!(10));
        set(spec, "persistentVolumeClaimRetentionPolicy", json!({"whenDeleted": "Retain", "whenScaled": "Retain"}));
        let us = unset_as_empty(spec.entry("updateStrategy").or_insert_with(|| json!({})));
        if let Some(us) = us.as_object_mut() {
            if is_unset(us.get("type")) {
                us.insert("type".into(), json!("RollingUpdate"));
            }
            if us.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                let ru = unset_as_empty(us.entry("rollingUpdate").or_insert_with(|| json!({})));
                if let Some(ru) = ru.as_object_mut() {
                    set(ru, "partition", json!(0));
                }
            }
        }
    }
    template(obj, &["spec", "template"]);
}

/// `SetDefaults_DaemonSet`.
fn daemon_set(obj: &mut Value) {
    if let Some(spec) = object_at(obj, "spec") {
        set(spec, "revisionHistoryLimit", json!(10));
        let us = unset_as_empty(spec.entry("updateStrategy").or_insert_with(|| json!({})));
        if let Some(us) = us.as_object_mut() {
            if is_unset(us.get("type")) {
                us.insert("type".into(), json!("RollingUpdate"));
            }
            if us.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                let ru = unset_as_empty(us.entry("rollingUpdate").or_insert_with(|| json!({})));
                if let Some(ru) = ru.as_object_mut() {
                    set(ru, "maxUnavailable", json!(1));
                    set(ru, "maxSurge", json!(0));
                }
            }
        }
    }
    template(obj, &["spec", "template"]);
}

/// `SetDefaults_CronJob`.
fn cron_job(obj: &mut Value) {
    if let Some(spec) = object_at(obj, "spec") {
        set(spec, "concurrencyPolicy", json!("Allow"));
        set(spec, "suspend", json!(false));
        set(spec, "successfulJobsHistoryLimit", json!(3));
        set(spec, "failedJobsHistoryLimit", json!(1));
    }
    template(obj, &["spec", "jobTemplate", "spec", "template"]);
}

/// `SetDefaults_Job` (not for a CronJob's jobTemplate, whose JobSpec gets only its pod
/// template's defaults). The Job's labels are not copied from its template: kube-sim generates
/// no selector and no controller-uid template labels to copy (the Job controller actor labels
/// its pods itself).
fn job(obj: &mut Value) {
    if let Some(spec) = object_at(obj, "spec") {
        let unset = |spec: &Map<String, Value>, k: &str| spec.get(k).is_none_or(Value::is_null);
        // A non-parallel Job may leave both unset: both become 1.
        if unset(spec, "completions") && unset(spec, "parallelism") {
            spec.insert("completions".into(), json!(1));
        }
        set(spec, "parallelism", json!(1));
        let backoff = if unset(spec, "backoffLimitPerIndex") { 6 } else { i32::MAX as i64 };
        set(spec, "backoffLimit", json!(backoff));
        set(spec, "completionMode", json!("NonIndexed"));
        set(spec, "suspend", json!(false));
        let replacement = if unset(spec, "podFailurePolicy") { "TerminatingOrFailed" } else { "Failed" };
        set(spec, "podReplacementPolicy", json!(replacement));
        let rules = spec.get_mut("podFailurePolicy").and_then(|p| p.get_mut("rules")).and_then(Value::as_array_mut);
        for rule in rules.into_iter().flatten() {
            let conds = rule.get_mut("onPodConditions").and_then(Value::as_array_mut);
            for c in conds.into_iter().flatten().filter_map(Value::as_object_mut) {
                if is_unset(c.get("status")) {
                    c.insert("status".into(), json!("True"));
                }
            }
        }
    }
    template(obj, &["spec", "template"]);
}

/// `SetDefaults_Pod` on top of the pod spec's: requests default to limits, `enableServiceLinks`
/// true, a host-network pod's container ports get their hostPort. (A template gets neither:
/// these materialize only in Pods.)
fn pod(obj: &mut Value) {
    let Some(spec) = object_at(obj, "spec") else { return };
    pod_spec(spec);
    set(spec, "enableServiceLinks", json!(true));
    let host_network = spec.get("hostNetwork") == Some(&json!(true));
    for list in ["containers", "initContainers"] {
        let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) else { continue };
        for c in cs.iter_mut().filter_map(Value::as_object_mut) {
            if let Some(res) = c.get_mut("resources").and_then(Value::as_object_mut)
                && let Some(limits) = res.get("limits").and_then(Value::as_object).cloned()
            {
                let requests = unset_as_empty(res.entry("requests").or_insert_with(|| json!({})));
                if let Some(requests) = requests.as_object_mut() {
                    for (k, v) in limits {
                        requests.entry(k).or_insert(v);
                    }
                }
            }
            if host_network && let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                    if is_unset(p.get("hostPort"))
                        && let Some(cp) = p.get("containerPort").cloned()
                    {
                        p.insert("hostPort".into(), cp);
                    }
                }
            }
        }
    }
}

/// The pod spec defaults of a workload's template.
fn template(obj: &mut Value, path: &[&str]) {
    let mut cur = obj;
    for p in path {
        if !cur.is_object() {
            return;
        }
        cur = cur
            .as_object_mut()
            .map(|m| m.entry(p.to_string()).or_insert_with(|| json!({})))
            .unwrap_or_else(|| unreachable!());
    }
    let Some(spec) = object_at(cur, "spec") else { return };
    pod_spec(spec);
}

/// `SetDefaults_PodSpec` and the container defaults (a Pod's and a template's alike).
fn pod_spec(spec: &mut Map<String, Value>) {
    set(spec, "restartPolicy", json!("Always"));
    set(spec, "terminationGracePeriodSeconds", json!(30));
    set(spec, "dnsPolicy", json!("ClusterFirst"));
    set(spec, "securityContext", json!({}));
    set(spec, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                container(c);
            }
        }
    }
    if let Some(vols) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        for v in vols.iter_mut().filter_map(Value::as_object_mut) {
            for source in ["configMap", "secret", "projected", "downwardAPI"] {
                if let Some(src) = v.get_mut(source).and_then(Value::as_object_mut) {
                    set(src, "defaultMode", json!(420));
                }
            }
        }
    }
}

fn container(c: &mut Map<String, Value>) {
    set(c, "terminationMessagePath", json!("/dev/termination-log"));
    set(c, "terminationMessagePolicy", json!("File"));
    set(c, "resources", json!({}));
    if is_unset(c.get("imagePullPolicy")) {
        let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
        // `:latest` or no tag (and no digest): Always; else IfNotPresent.
        let last = image.rsplit('/').next().unwrap_or(image);
        let always = !image.contains('@') && (!last.contains(':') || last.ends_with(":latest"));
        c.insert("imagePullPolicy".into(), json!(if always { "Always" } else { "IfNotPresent" }));
    }
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            set(p, "protocol", json!("TCP"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
            set(p, "timeoutSeconds", json!(1));
            set(p, "periodSeconds", json!(10));
            set(p, "successThreshold", json!(1));
            set(p, "failureThreshold", json!(3));
            if let Some(h) = p.get_mut("httpGet").and_then(Value::as_object_mut) {
                set(h, "scheme", json!("HTTP"));
            }
        }
    }
    if let Some(env) = c.get_mut("env").and_then(Value::as_array_mut) {
        for e in env.iter_mut() {
            if let Some(fr) = e.pointer_mut("/valueFrom/fieldRef").and_then(Value::as_object_mut) {
                set(fr, "apiVersion", json!("v1"));
            }
        }
    }
}

/// A struct sent as null decodes as an unset one, which defaulting fills in.
fn unset_as_empty(v: &mut Value) -> &mut Value {
    if v.is_null() {
        *v = json!({});
    }
    v
}

fn object_at<'a>(obj: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    let m = obj.as_object_mut()?;
    let slot = m.entry(key.to_string()).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    slot.as_object_mut()
}

fn is_unset(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Number(n)) => n.as_i64() == Some(0),
        _ => false,
    }
}

/// `SetDefaults_Service` (pkg/apis/core/v1/defaults.go).
fn service(obj: &mut Value) {
    let Some(spec) = object_at(obj, "spec") else { return };
    if is_unset(spec.get("sessionAffinity")) {
        spec.insert("sessionAffinity".into(), json!("None"));
    }
    match spec.get("sessionAffinity").and_then(Value::as_str) {
        Some("None") => {
            spec.remove("sessionAffinityConfig");
        }
        Some("ClientIP")
            if spec.get("sessionAffinityConfig").and_then(|c| c.pointer("/clientIP/timeoutSeconds")).is_none() =>
        {
            spec.insert("sessionAffinityConfig".into(), json!({"clientIP": {"timeoutSeconds": 10800}}));
        }
        _ => {}
    }
    if is_unset(spec.get("type")) {
        spec.insert("type".into(), json!("ClusterIP"));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            if is_unset(p.get("protocol")) {
                p.insert("protocol".into(), json!("TCP"));
            }
            if is_unset(p.get("targetPort"))
                && let Some(port) = p.get("port").cloned()
            {
                p.insert("targetPort".into(), port);
            }
        }
    }
    let ty = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP").to_string();
    let external_ips = spec.get("externalIPs").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    let externally_accessible = ty == "NodePort" || ty == "LoadBalancer" || (ty == "ClusterIP" && external_ips);
    if externally_accessible && is_unset(spec.get("externalTrafficPolicy")) {
        spec.insert("externalTrafficPolicy".into(), json!("Cluster"));
    }
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer" | "ClusterIP") && is_unset(spec.get("internalTrafficPolicy")) {
        spec.insert("internalTrafficPolicy".into(), json!("Cluster"));
    }
    if ty == "LoadBalancer" && spec.get("allocateLoadBalancerNodePorts").is_none_or(Value::is_null) {
        spec.insert("allocateLoadBalancerNodePorts".into(), json!(true));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_defaults_like_11_rollout_restart() {
        let mut d = json!({"spec": {"replicas": 2, "paused": false, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"terminationGracePeriodSeconds": 0,
                "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}}}});
        apply("Deployment", &mut d);
        assert_eq!(
            d["spec"],
            json!({"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                    "resources": {}, "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}],
                    "restartPolicy": "Always", "terminationGracePeriodSeconds": 0, "dnsPolicy": "ClusterFirst", "securityContext": {}, "schedulerName": "default-scheduler"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600})
        );
        for (image, policy) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("localhost:5000/app", "Always"),
            ("nginx:1.27", "IfNotPresent"),
            ("nginx@sha256:abc", "IfNotPresent"),
        ] {
            let mut d = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": image}]}}}});
            apply("Deployment", &mut d);
            assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], policy, "{image}");
        }
        let mut r = json!({"spec": {"strategy": {"type": "Recreate"}}});
        apply("Deployment", &mut r);
        assert!(r["spec"]["strategy"].get("rollingUpdate").is_none());
    }

    #[test]
    fn pod_defaults_are_the_templates_and_set_defaults_pod() {
        let mut p = json!({"spec": {"containers": [{"name": "app", "image": "nginx",
            "ports": [{"containerPort": 8080}], "resources": {"limits": {"cpu": "1"}, "requests": {"memory": "1Gi"}}}]}});
        apply("Pod", &mut p);
        assert_eq!(
            p["spec"],
            json!({"containers": [{"name": "app", "image": "nginx", "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "resources": {"limits": {"cpu": "1"}, "requests": {"memory": "1Gi", "cpu": "1"}},
                    "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "imagePullPolicy": "Always"}],
                "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst", "securityContext": {},
                "schedulerName": "default-scheduler", "enableServiceLinks": true})
        );
        let before = p.clone();
        apply("Pod", &mut p);
        assert_eq!(p, before, "idempotent");
        let mut h = json!({"spec": {"hostNetwork": true, "restartPolicy": "Never", "enableServiceLinks": false,
            "initContainers": [{"name": "i", "image": "busybox:1", "ports": [{"containerPort": 53, "protocol": "UDP"}]}]}});
        apply("Pod", &mut h);
        assert_eq!(
            h["spec"]["initContainers"][0]["ports"][0],
            json!({"containerPort": 53, "protocol": "UDP", "hostPort": 53})
        );
        assert_eq!(
            (h["spec"]["restartPolicy"].clone(), h["spec"]["enableServiceLinks"].clone()),
            (json!("Never"), json!(false))
        );
        // Only Pods: a template gets neither enableServiceLinks nor requests from limits.
        let mut d = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "a:1", "resources": {"limits": {"cpu": "1"}}}]}}}});
        apply("Deployment", &mut d);
        assert!(d["spec"]["template"]["spec"].get("enableServiceLinks").is_none());
        assert!(d["spec"]["template"]["spec"]["containers"][0]["resources"].get("requests").is_none());
    }

    #[test]
    fn job_and_workload_strategy_defaults() {
        let mut j = json!({"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": []}}}});
        apply("Job", &mut j);
        assert_eq!(
            j["spec"],
            json!({"completions": 1, "parallelism": 1, "backoffLimit": 6, "completionMode": "NonIndexed", "suspend": false,
                "podReplacementPolicy": "TerminatingOrFailed", "template": {"spec": {"restartPolicy": "Never", "containers": [],
                    "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst", "securityContext": {}, "schedulerName": "default-scheduler"}}})
        );
        let mut q = json!({"spec": {"parallelism": 3, "suspend": true, "backoffLimitPerIndex": 1, "completionMode": "Indexed",
            "podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}}});
        apply("Job", &mut q);
        assert!(q["spec"].get("completions").is_none(), "a work queue: parallelism alone");
        assert_eq!(q["spec"]["backoffLimit"], i32::MAX as i64);
        assert_eq!(
            (q["spec"]["suspend"].clone(), q["spec"]["podReplacementPolicy"].clone()),
            (json!(true), json!("Failed"))
        );
        assert_eq!(q["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["status"], "True");
        let mut cj = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure"}}}}}});
        apply("CronJob", &mut cj);
        assert!(cj["spec"]["jobTemplate"]["spec"].get("backoffLimit").is_none(), "SetDefaults_Job is for Jobs only");
        let mut s = json!({"spec": {}});
        apply("StatefulSet", &mut s);
        assert_eq!(s["spec"]["updateStrategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
        let mut ds = json!({"spec": {"updateStrategy": {"type": "OnDelete"}}});
        apply("DaemonSet", &mut ds);
        assert_eq!(ds["spec"]["updateStrategy"], json!({"type": "OnDelete"}));
        for odd in [
            json!(null),
            json!("x"),
            json!({"spec": "x"}),
            json!({"spec": {"template": []}}),
            json!({"spec": {"containers": "x", "template": {"spec": {"containers": "x"}}}}),
        ] {
            for kind in ["Pod", "Job", "StatefulSet", "Deployment"] {
                apply(kind, &mut odd.clone());
            }
        }
    }

    #[test]
    fn service_defaults_like_06_nodeport() {
        let mut s = json!({"spec": {"type": "NodePort", "selector": {"app": "x"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}, {"name": "https", "port": 443}]}});
        apply("Service", &mut s);
        assert_eq!(
            s["spec"],
            json!({"type": "NodePort", "selector": {"app": "x"},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}, {"name": "https", "port": 443, "targetPort": 443, "protocol": "TCP"}],
                "sessionAffinity": "None", "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster"})
        );
        let mut c = json!({"spec": {"ports": [{"port": 80, "targetPort": "http"}]}});
        apply("Service", &mut c);
        assert_eq!(c["spec"]["type"], "ClusterIP");
        assert_eq!(c["spec"]["ports"][0]["targetPort"], "http");
        assert!(c["spec"].get("externalTrafficPolicy").is_none(), "only for externally accessible Services");
        let mut lb = json!({"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP", "ports": [{"port": 1}]}});
        apply("Service", &mut lb);
        assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
        assert_eq!(lb["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"], 10800);
        let mut en = json!({"spec": {"type": "ExternalName", "externalName": "example.com"}});
        apply("Service", &mut en);
        assert!(en["spec"].get("internalTrafficPolicy").is_none());
    }
}
