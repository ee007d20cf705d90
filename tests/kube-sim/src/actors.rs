//! Cluster actors, each switchable: Istio's sidecar injector (an admission hook at pod
//! creation), the deployment controller (ReplicaSets with pod-template-hash, rolling to a new
//! ReplicaSet when the template changes, status), the kubelet (pods Running and Ready, or
//! crash-looping on request) and the service controller (LoadBalancer status IPs).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::store::{Admission, Store};
use crate::{Cluster, PatchType};

/// The simulated injector's state; change it to simulate an outage or an upgrade.
#[derive(Debug, Clone)]
pub struct InjectorState {
    /// Down: pods are created without a sidecar (failurePolicy Ignore).
    pub up: bool,
    pub hub: String,
    pub version: String,
    /// Revisions it serves for `istio.io/rev=<rev>` namespaces.
    pub revisions: Vec<String>,
}

impl Default for InjectorState {
    fn default() -> Self {
        InjectorState {
            up: true,
            hub: "gcr.io/gke-release/asm".into(),
            version: "1.4.10-asm.18".into(),
            revisions: vec![],
        }
    }
}

/// Handles to the running actors.
pub struct Actors {
    pub injector: Arc<Mutex<InjectorState>>,
    /// Container names the kubelet keeps in CrashLoopBackOff.
    pub crashing: Arc<Mutex<BTreeSet<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Actors {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Istio's decision (1.4 and later): a pod is injected when its namespace enables injection
/// (`istio-injection=enabled`, or `istio.io/rev=<served revision>` without `istio-injection`),
/// unless the namespace says `disabled` or the pod says `sidecar.istio.io/inject: "false"`;
/// host-network pods never are.
pub fn should_inject(ns_labels: &Value, pod: &Value, injector: &InjectorState) -> bool {
    let meta = &pod["metadata"];
    let pod_says =
        meta["labels"]["sidecar.istio.io/inject"].as_str().or(meta["annotations"]["sidecar.istio.io/inject"].as_str());
    if pod["spec"]["hostNetwork"].as_bool() == Some(true) || pod_says == Some("false") {
        return false;
    }
    match (ns_labels["istio-injection"].as_str(), ns_labels["istio.io/rev"].as_str()) {
        (Some("disabled"), _) => false,
        (Some("enabled"), _) => true,
        (Some(_), _) => false,
        (None, Some(rev)) => injector.revisions.iter().any(|r| r == rev),
        (None, None) => false,
    }
}

fn inject(pod: &mut Value, st: &InjectorState) {
    let image = format!("{}/proxyv2:{}", st.hub, st.version);
    let spec = &mut pod["spec"];
    let has = |list: &Value, name: &str| list.as_array().is_some_and(|a| a.iter().any(|c| c["name"] == name));
    if !has(&spec["initContainers"], "istio-init") {
        let mut inits = spec["initContainers"].as_array().cloned().unwrap_or_default();
        inits.push(json!({"name": "istio-init", "image": image, "args": ["-p", "15001", "-z", "15006", "-u", "1337"]}));
        spec["initContainers"] = Value::Array(inits);
    }
    if !has(&spec["containers"], "istio-proxy") {
        let mut cs = spec["containers"].as_array().cloned().unwrap_or_default();
        cs.push(json!({"name": "istio-proxy", "image": image, "args": ["proxy", "sidecar"], "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}]}));
        spec["containers"] = Value::Array(cs);
    }
    let status = json!({"version": st.version, "initContainers": ["istio-init"], "containers": ["istio-proxy"], "volumes": ["istio-envoy", "istio-certs"], "imagePullSecrets": null}).to_string();
    pod["metadata"]["annotations"]["sidecar.istio.io/status"] = json!(status);
}

fn injector_hook(state: Arc<Mutex<InjectorState>>) -> Admission {
    Arc::new(move |store: &Store, rt, ns, obj| {
        if rt.kind != "Pod" || !rt.group.is_empty() {
            return;
        }
        let st = lock(&state).clone();
        if !st.up {
            return;
        }
        let Some(nti) = store.type_index("", "v1", "namespaces") else { return };
        let Some(nsobj) = store.get(nti, "", ns) else { return };
        if should_inject(&nsobj.value["metadata"]["labels"], obj, &st) {
            inject(obj, &st);
        }
    })
}

/// FNV-1a of the pod template, as a short hex hash (stands in for pod-template-hash).
pub fn template_hash(template: &Value) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in template.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    format!("{:x}", h & 0xff_ffff_ffff)
}

fn owner_ref(obj: &Value) -> Value {
    json!({"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"], "uid": obj["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true})
}

fn owned_by<'a>(items: &'a [Value], owner: &Value) -> impl Iterator<Item = &'a Value> {
    let uid = owner["metadata"]["uid"].clone();
    items
        .iter()
        .filter(move |i| i["metadata"]["ownerReferences"].as_array().is_some_and(|o| o.iter().any(|r| r["uid"] == uid)))
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// Deployment -> ReplicaSets: one per template; the current one gets the replicas.
fn reconcile_deployment(c: &Cluster, d: &Value) {
    let ns = d["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = d["metadata"]["name"].as_str().unwrap_or_default();
    if d["metadata"]["deletionTimestamp"].is_string() {
        return;
    }
    let hash = template_hash(&d["spec"]["template"]);
    let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let rss = c.list("apps/v1", "replicasets", Some(ns));
    let mine: Vec<&Value> = owned_by(&rss, d).collect();
    let current = format!("{name}-{hash}");
    if !mine.iter().any(|r| r["metadata"]["name"] == current.as_str()) {
        let mut template = d["spec"]["template"].clone();
        template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
        let mut selector = d["spec"]["selector"].clone();
        selector["matchLabels"]["pod-template-hash"] = json!(hash);
        let rs = json!({"metadata": {"name": current, "namespace": ns, "labels": template["metadata"]["labels"], "ownerReferences": [owner_ref(d)]},
            "spec": {"replicas": replicas, "selector": selector, "template": template}});
        let _ = c.create("apps/v1", "replicasets", ns, rs);
    }
    for rs in mine {
        let rs_name = rs["metadata"]["name"].as_str().unwrap_or_default();
        let want = if rs_name == current { replicas } else { 0 };
        if rs["spec"]["replicas"].as_i64() != Some(want) {
            let _ = c.patch(
                "apps/v1",
                "replicasets",
                ns,
                rs_name,
                PatchType::Merge,
                &json!({"spec": {"replicas": want}}),
                "deployment-controller",
            );
        }
    }
    update_deployment_status(c, d, &current);
}

fn update_deployment_status(c: &Cluster, d: &Value, current_rs: &str) {
    let ns = d["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = d["metadata"]["name"].as_str().unwrap_or_default();
    let rss = c.list("apps/v1", "replicasets", Some(ns));
    let pods = c.list("v1", "pods", Some(ns));
    let mut total = 0;
    let mut ready_n = 0;
    let mut updated = 0;
    for rs in owned_by(&rss, d) {
        for p in owned_by(&pods, rs) {
            if p["metadata"]["deletionTimestamp"].is_string() {
                continue;
            }
            total += 1;
            if ready(p) {
                ready_n += 1;
            }
            if rs["metadata"]["name"] == current_rs {
                updated += 1;
            }
        }
    }
    let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let status = json!({"status": {"observedGeneration": d["metadata"]["generation"], "replicas": total, "updatedReplicas": updated,
        "readyReplicas": ready_n, "availableReplicas": ready_n, "unavailableReplicas": (desired - ready_n).max(0),
        "conditions": [{"type": "Available", "status": if ready_n >= desired { "True" } else { "False" }, "reason": "MinimumReplicasAvailable"}]}});
    let _ = c.patch_status("apps/v1", "deployments", ns, name, &status);
}

/// ReplicaSet -> Pods.
fn reconcile_replicaset(c: &Cluster, rs: &Value) {
    let ns = rs["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = rs["metadata"]["name"].as_str().unwrap_or_default();
    let want = rs["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
    let pods = c.list("v1", "pods", Some(ns));
    let mine: Vec<&Value> = owned_by(&pods, rs).filter(|p| !p["metadata"]["deletionTimestamp"].is_string()).collect();
    for p in mine.iter().skip(want) {
        let _ = c.delete("v1", "pods", ns, p["metadata"]["name"].as_str().unwrap_or_default());
    }
    for _ in mine.len()..want {
        let mut pod = rs["spec"]["template"].clone();
        pod["metadata"]["generateName"] = json!(format!("{name}-"));
        pod["metadata"]["ownerReferences"] = json!([owner_ref(rs)]);
        let _ = c.create("v1", "pods", ns, pod);
    }
    let status =
        json!({"status": {"replicas": mine.len().min(want), "observedGeneration": rs["metadata"]["generation"]}});
    let _ = c.patch_status("apps/v1", "replicasets", ns, name, &status);
}

/// Kubelet: a new pod runs (and is Ready) at once, unless one of its containers is told to crash.
fn run_pod(c: &Cluster, pod: &Value, crashing: &BTreeSet<String>) {
    if pod["status"]["phase"].is_string() || pod["metadata"]["deletionTimestamp"].is_string() {
        return;
    }
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let statuses = |list: &Value| -> Vec<Value> {
        list.as_array()
            .map(|cs| {
                cs.iter()
                    .map(|ct| {
                        let cname = ct["name"].as_str().unwrap_or_default();
                        if crashing.contains(cname) {
                            json!({"name": cname, "image": ct["image"], "imageID": "", "ready": false, "restartCount": 5, "started": false,
                                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting failed container"}},
                                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": crate::store::now_rfc3339()}}})
                        } else {
                            json!({"name": cname, "image": ct["image"], "imageID": "", "ready": true, "restartCount": 0, "started": true,
                                "state": {"running": {"startedAt": crate::store::now_rfc3339()}}})
                        }
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let cs = statuses(&pod["spec"]["containers"]);
    let all_ready = cs.iter().all(|s| s["ready"] == true);
    let status = json!({"status": {"phase": "Running", "podIP": "10.4.0.1", "hostIP": "10.0.0.11", "startTime": crate::store::now_rfc3339(),
        "conditions": [{"type": "Ready", "status": if all_ready { "True" } else { "False" }}, {"type": "ContainersReady", "status": if all_ready { "True" } else { "False" }}, {"type": "PodScheduled", "status": "True"}],
        "containerStatuses": cs}});
    let _ = c.patch_status("v1", "pods", ns, name, &status);
}

/// Service controller: LoadBalancer Services get `spec.loadBalancerIP` (or the next pool IP) in status.
fn reconcile_service(c: &Cluster, svc: &Value, next_ip: &mut u32) {
    if svc["spec"]["type"] != "LoadBalancer" {
        return;
    }
    let want = svc["spec"]["loadBalancerIP"].as_str().map(str::to_string).unwrap_or_else(|| {
        *next_ip += 1;
        format!("203.0.113.{}", *next_ip % 250 + 1)
    });
    let have = svc["status"]["loadBalancer"]["ingress"][0]["ip"].as_str();
    if have == Some(want.as_str()) || (have.is_some() && svc["spec"]["loadBalancerIP"].is_null()) {
        return;
    }
    let ns = svc["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = svc["metadata"]["name"].as_str().unwrap_or_default();
    let _ =
        c.patch_status("v1", "services", ns, name, &json!({"status": {"loadBalancer": {"ingress": [{"ip": want}]}}}));
}

fn owner_deployment(c: &Cluster, ns: &str, obj: &Value, kind: &str) -> Option<Value> {
    let owner = obj["metadata"]["ownerReferences"].as_array()?.iter().find(|o| o["kind"] == kind)?;
    let name = owner["name"].as_str()?;
    match kind {
        "Deployment" => c.get("apps/v1", "deployments", ns, name),
        _ => c.get("apps/v1", "replicasets", ns, name),
    }
}

impl Actors {
    pub fn start(cluster: Cluster) -> Self {
        let injector = Arc::new(Mutex::new(InjectorState::default()));
        let crashing = Arc::new(Mutex::new(BTreeSet::new()));
        cluster.add_admission(injector_hook(injector.clone()));
        let (c, crash) = (cluster.clone(), crashing.clone());
        let mut rx = cluster.subscribe();
        let task = tokio::spawn(async move {
            let mut next_ip = 0;
            loop {
                let ev = match rx.recv().await {
                    Ok(ev) => ev,
                    Err(RecvError::Lagged(_)) => {
                        // Missed events: reconcile everything once.
                        for d in c.list("apps/v1", "deployments", None) {
                            reconcile_deployment(&c, &d);
                        }
                        continue;
                    }
                    Err(RecvError::Closed) => return,
                };
                let resource = c.resource_of(&ev);
                let obj = &*ev.object;
                let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
                match (resource.as_str(), ev.kind) {
                    ("deployments", "ADDED" | "MODIFIED") => reconcile_deployment(&c, obj),
                    ("replicasets", "ADDED" | "MODIFIED") => {
                        reconcile_replicaset(&c, obj);
                    }
                    ("pods", kind) => {
                        if kind == "ADDED" {
                            let crashing = lock(&crash).clone();
                            run_pod(&c, obj, &crashing);
                        }
                        if let Some(rs) = owner_deployment(&c, &ns, obj, "ReplicaSet") {
                            if kind == "DELETED" {
                                reconcile_replicaset(&c, &rs);
                            }
                            if let Some(d) = owner_deployment(&c, &ns, &rs, "Deployment") {
                                update_deployment_status(
                                    &c,
                                    &d,
                                    &format!(
                                        "{}-{}",
                                        d["metadata"]["name"].as_str().unwrap_or_default(),
                                        template_hash(&d["spec"]["template"])
                                    ),
                                );
                            }
                        }
                    }
                    ("services", "ADDED" | "MODIFIED") => reconcile_service(&c, obj, &mut next_ip),
                    _ => {}
                }
            }
        });
        Actors { injector, crashing, task }
    }

    pub fn set_injector_up(&self, up: bool) {
        lock(&self.injector).up = up;
    }

    pub fn set_injector_version(&self, version: &str) {
        lock(&self.injector).version = version.to_string();
    }

    pub fn set_crashing(&self, container: &str, crash: bool) {
        let mut c = lock(&self.crashing);
        if crash {
            c.insert(container.to_string());
        } else {
            c.remove(container);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_precedence() {
        let st = InjectorState { revisions: vec!["asm-1".into()], ..Default::default() };
        let pod = |labels: Value, host: bool| json!({"metadata": {"labels": labels}, "spec": {"hostNetwork": host}});
        let cases = [
            (json!({"istio-injection": "enabled"}), pod(json!({}), false), true),
            (json!({"istio-injection": "disabled"}), pod(json!({"sidecar.istio.io/inject": "true"}), false), false),
            (json!({"istio-injection": "enabled"}), pod(json!({"sidecar.istio.io/inject": "false"}), false), false),
            (json!({"istio-injection": "enabled"}), pod(json!({}), true), false),
            (json!({"istio.io/rev": "asm-1"}), pod(json!({}), false), true),
            (json!({"istio.io/rev": "asm-2"}), pod(json!({}), false), false),
            (json!({"istio-injection": "enabled", "istio.io/rev": "asm-2"}), pod(json!({}), false), true),
            (json!({}), pod(json!({}), false), false),
            (json!(null), pod(json!({"sidecar.istio.io/inject": "true"}), false), false),
        ];
        for (i, (ns, p, want)) in cases.into_iter().enumerate() {
            assert_eq!(should_inject(&ns, &p, &st), want, "case {i}");
        }
    }

    #[test]
    fn injection_adds_the_sidecar_once() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}});
        let st = InjectorState::default();
        inject(&mut pod, &st);
        inject(&mut pod, &st);
        assert_eq!(pod["spec"]["containers"].as_array().unwrap().len(), 2);
        assert_eq!(pod["spec"]["containers"][1]["image"], "gcr.io/gke-release/asm/proxyv2:1.4.10-asm.18");
        assert!(pod["metadata"]["annotations"]["sidecar.istio.io/status"].as_str().unwrap().contains("1.4.10-asm.18"));
    }
}
