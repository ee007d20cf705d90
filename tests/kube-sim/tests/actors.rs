//! The cluster actors against what a real v1.36 cluster did (the recorded transcripts 11, 12,
//! 13 and 16 of shared/reference/real-server-transcripts, quoted where they are compared).
//! Every wait is a bounded observation of the in-process event stream.

mod common;

use std::time::Duration;

use common::BOUND;
use kube_sim::actors::KubeletOptions;
use kube_sim::{Cluster, PatchType, Sim, SimOptions};
use serde_json::{Value, json};

// === helpers ===

/// Waits until `f` holds, re-checking after every change in the store (bounded).
async fn until(c: &Cluster, what: &str, f: impl Fn(&Cluster) -> bool) {
    let mut rx = c.subscribe();
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        if f(c) {
            return;
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => panic!("timed out waiting for {what}"),
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => panic!("store closed"),
            Ok(_) => {}
        }
    }
}

async fn sim_with(k: KubeletOptions) -> Sim {
    Sim::start(SimOptions::default().kubelet(k)).await.expect("sim starts")
}

fn ns(c: &Cluster, name: &str, labels: Value) {
    c.create("v1", "namespaces", "", json!({"metadata": {"name": name, "labels": labels}})).unwrap();
}

fn template(app: &str) -> Value {
    json!({"metadata": {"labels": {"app": app}}, "spec": {"terminationGracePeriodSeconds": 0,
        "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}})
}

fn deployment(name: &str, replicas: i64) -> Value {
    json!({"metadata": {"name": name}, "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": template(name)}})
}

fn get(c: &Cluster, api: &str, plural: &str, ns: &str, name: &str) -> Value {
    c.get(api, plural, ns, name).unwrap_or(Value::Null)
}

fn cond<'a>(obj: &'a Value, ty: &str) -> &'a Value {
    obj["status"]["conditions"].as_array().and_then(|a| a.iter().find(|c| c["type"] == ty)).unwrap_or(&Value::Null)
}

/// `kubectl rollout status`'s notion of done.
fn rolled_out(d: &Value) -> bool {
    let s = &d["status"];
    let n = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let g = |f: &str| s[f].as_i64().unwrap_or(0);
    d.is_object()
        && g("observedGeneration") >= d["metadata"]["generation"].as_i64().unwrap_or(0)
        && g("updatedReplicas") == n
        && g("replicas") == n
        && g("availableReplicas") == n
}

fn pods(c: &Cluster, ns: &str) -> Vec<Value> {
    c.list("v1", "pods", Some(ns))
}

fn names(list: &[Value]) -> Vec<String> {
    let mut v: Vec<String> =
        list.iter().map(|o| o["metadata"]["name"].as_str().unwrap_or_default().to_string()).collect();
    v.sort();
    v
}

fn label(o: &Value, k: &str) -> String {
    o["metadata"]["labels"][k].as_str().unwrap_or_default().to_string()
}

fn restart_patch(at: &str) -> Value {
    json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": at}}}}})
}

/// A Deployment status as transcript 11's facts list it: zero counts omitted, except
/// terminatingReplicas.
fn shape(d: &Value) -> Value {
    let s = &d["status"];
    let mut out = json!({"gen": d["metadata"]["generation"], "obsGen": s["observedGeneration"]});
    for f in [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
        "unavailableReplicas",
        "terminatingReplicas",
    ] {
        if !s[f].is_null() {
            out[f] = s[f].clone();
        }
    }
    out["Progressing"] = cond(d, "Progressing")["reason"].clone();
    out["Available"] = json!(format!(
        "{}/{}",
        cond(d, "Available")["status"].as_str().unwrap_or(""),
        cond(d, "Available")["reason"].as_str().unwrap_or("")
    ));
    out
}

// === Deployments (transcripts 11 and 12) ===

#[tokio::test]
async fn rollout_restart_goes_through_the_statuses_of_the_real_controller() {
    // Slow pods, as in the recording: each new pod takes a while to be Ready.
    let sim = sim_with(KubeletOptions::slow(Duration::from_millis(120))).await;
    let c = sim.cluster();
    ns(&c, "rec-deploy", json!({}));
    c.create("apps/v1", "deployments", "rec-deploy", deployment("web", 2)).unwrap();
    until(&c, "web rolled out", |c| rolled_out(&get(c, "apps/v1", "deployments", "rec-deploy", "web"))).await;
    let first_rs = c.list("apps/v1", "replicasets", Some("rec-deploy"));
    assert_eq!(first_rs.len(), 1);
    assert_eq!(first_rs[0]["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "1");

    let mut rx = c.subscribe();
    c.patch(
        "apps/v1",
        "deployments",
        "rec-deploy",
        "web",
        PatchType::Strategic,
        &restart_patch("2026-12-01T07:44:52Z"),
        "kubectl-rollout",
    )
    .unwrap();
    let mut seen: Vec<Value> = Vec::new();
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv()).await.expect("rollout in time").expect("events");
        if c.resource_of(&ev) != "deployments" {
            continue;
        }
        let s = shape(&ev.object);
        if seen.last() != Some(&s) {
            seen.push(s);
        }
        if rolled_out(&ev.object) && cond(&ev.object, "Progressing")["reason"] == "NewReplicaSetAvailable" {
            break;
        }
    }
    // Transcript 11, facts.deployment_status_sequence (2 replicas, maxSurge 25% -> 1, maxUnavailable 25% -> 0).
    let row = |obs: i64, r: i64, u: i64, ready: i64, avail: i64, unavail: i64, prog: &str| {
        let mut v = json!({"gen": 2, "obsGen": obs, "replicas": r, "updatedReplicas": u, "readyReplicas": ready,
            "availableReplicas": avail, "unavailableReplicas": unavail, "terminatingReplicas": 0, "Progressing": prog,
            "Available": "True/MinimumReplicasAvailable"});
        for f in ["updatedReplicas", "unavailableReplicas"] {
            if v[f] == 0 {
                v.as_object_mut().unwrap().remove(f);
            }
        }
        v
    };
    let want = vec![
        row(1, 2, 2, 2, 2, 0, "NewReplicaSetAvailable"),
        row(1, 2, 2, 2, 2, 0, "NewReplicaSetCreated"),
        row(2, 2, 0, 2, 2, 1, "NewReplicaSetCreated"),
        row(2, 3, 1, 2, 2, 1, "ReplicaSetUpdated"),
        row(2, 3, 1, 3, 3, 0, "ReplicaSetUpdated"),
        row(2, 2, 1, 2, 2, 1, "ReplicaSetUpdated"),
        row(2, 3, 2, 2, 2, 1, "ReplicaSetUpdated"),
        row(2, 3, 2, 3, 3, 0, "ReplicaSetUpdated"),
        row(2, 2, 2, 2, 2, 0, "NewReplicaSetAvailable"),
    ];
    assert_eq!(seen, want, "got:\n{}", seen.iter().map(Value::to_string).collect::<Vec<_>>().join("\n"));

    let d = get(&c, "apps/v1", "deployments", "rec-deploy", "web");
    assert_eq!(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "2");
    let msg = cond(&d, "Progressing")["message"].as_str().unwrap().to_string();
    let rss = c.list("apps/v1", "replicasets", Some("rec-deploy"));
    assert_eq!(rss.len(), 2, "the old ReplicaSet is kept (revisionHistoryLimit 10)");
    let new = rss.iter().find(|r| r["spec"]["replicas"] == 2).expect("new ReplicaSet");
    let old = rss.iter().find(|r| r["spec"]["replicas"] == 0).expect("old ReplicaSet scaled to 0");
    assert_eq!(
        msg,
        format!("ReplicaSet \"{}\" has successfully progressed.", new["metadata"]["name"].as_str().unwrap())
    );
    assert_eq!(new["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "2");
    assert_eq!(new["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"], "2");
    assert_eq!(new["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"], "3");
    assert_eq!(old["status"], json!({"replicas": 0, "terminatingReplicas": 0, "observedGeneration": 3}));
    let hash = label(new, "pod-template-hash");
    assert_eq!(new["metadata"]["name"], format!("web-{hash}"));
    assert_eq!(new["spec"]["selector"]["matchLabels"]["pod-template-hash"], hash.as_str());
    let ps = pods(&c, "rec-deploy");
    assert_eq!(ps.len(), 2);
    assert!(ps.iter().all(|p| label(p, "pod-template-hash") == hash));
    assert!(ps.iter().all(|p| p["metadata"]["ownerReferences"][0]["name"] == new["metadata"]["name"]));
}

#[tokio::test]
async fn a_paused_deployment_does_not_roll_until_resumed() {
    let sim = sim_with(KubeletOptions::default()).await;
    let c = sim.cluster();
    ns(&c, "rec-paused", json!({}));
    // Born paused: no ReplicaSet at all (transcript 12, born_paused_replicasets: 0).
    let mut born = deployment("born-paused", 1);
    born["spec"]["paused"] = json!(true);
    c.create("apps/v1", "deployments", "rec-paused", born).unwrap();
    until(&c, "born-paused observed", |c| {
        get(c, "apps/v1", "deployments", "rec-paused", "born-paused")["status"]["observedGeneration"] == 1
    })
    .await;
    let d = get(&c, "apps/v1", "deployments", "rec-paused", "born-paused");
    let mut s = d["status"].clone();
    for cnd in s["conditions"].as_array_mut().unwrap() {
        let m = cnd.as_object_mut().unwrap();
        m.remove("lastUpdateTime");
        m.remove("lastTransitionTime");
    }
    assert_eq!(
        s,
        json!({"observedGeneration": 1, "terminatingReplicas": 0, "conditions": [
            {"type": "Progressing", "status": "Unknown", "reason": "DeploymentPaused", "message": "Deployment is paused"},
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "Deployment does not have minimum availability."}]})
    );
    assert!(c.list("apps/v1", "replicasets", Some("rec-paused")).is_empty());

    // Paused after a rollout, then restarted like kubectl rollout restart would (kubectl itself refuses).
    c.create("apps/v1", "deployments", "rec-paused", deployment("later", 1)).unwrap();
    until(&c, "later rolled out", |c| rolled_out(&get(c, "apps/v1", "deployments", "rec-paused", "later"))).await;
    c.patch(
        "apps/v1",
        "deployments",
        "rec-paused",
        "later",
        PatchType::Strategic,
        &json!({"spec": {"paused": true}}),
        "kubectl-rollout",
    )
    .unwrap();
    until(&c, "paused condition", |c| {
        cond(&get(c, "apps/v1", "deployments", "rec-paused", "later"), "Progressing")["reason"] == "DeploymentPaused"
    })
    .await;
    c.patch(
        "apps/v1",
        "deployments",
        "rec-paused",
        "later",
        PatchType::Strategic,
        &restart_patch("2026-12-01T07:45:03Z"),
        "kubectl-rollout",
    )
    .unwrap();
    until(&c, "generation 3 observed", |c| {
        get(c, "apps/v1", "deployments", "rec-paused", "later")["status"]["observedGeneration"] == 3
    })
    .await;
    let d = get(&c, "apps/v1", "deployments", "rec-paused", "later");
    // transcript 12, facts.paused_restart_status: no updatedReplicas, Progressing Unknown/DeploymentPaused.
    assert_eq!(
        shape(&d),
        json!({"gen": 3, "obsGen": 3, "replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "terminatingReplicas": 0,
            "Progressing": "DeploymentPaused", "Available": "True/MinimumReplicasAvailable"})
    );
    assert_eq!(cond(&d, "Progressing")["status"], "Unknown");
    let rss = c.list("apps/v1", "replicasets", Some("rec-paused"));
    assert_eq!(names(&rss).len(), 1, "no new ReplicaSet while paused: {:?}", names(&rss));
    let old_pod = names(&pods(&c, "rec-paused"));

    // Resume (kubectl rollout resume sends paused: null): the restart rolls.
    c.patch(
        "apps/v1",
        "deployments",
        "rec-paused",
        "later",
        PatchType::Strategic,
        &json!({"spec": {"paused": null}}),
        "kubectl-rollout",
    )
    .unwrap();
    until(&c, "later rolled out again", |c| {
        let d = get(c, "apps/v1", "deployments", "rec-paused", "later");
        rolled_out(&d)
            && d["status"]["observedGeneration"] == 4
            && cond(&d, "Progressing")["reason"] == "NewReplicaSetAvailable"
    })
    .await;
    let rss = c.list("apps/v1", "replicasets", Some("rec-paused"));
    assert_eq!(rss.len(), 2, "after resume: the new ReplicaSet and the old one");
    assert_ne!(names(&pods(&c, "rec-paused")), old_pod, "the pod was replaced");
    assert_eq!(
        get(&c, "apps/v1", "deployments", "rec-paused", "later")["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
}

#[tokio::test]
async fn rolling_update_respects_surge_and_unavailability() {
    // 4 replicas, maxSurge 1, maxUnavailable 1: never more than 5 pods, never fewer than 3 available.
    let sim = sim_with(KubeletOptions::slow(Duration::from_millis(40))).await;
    let c = sim.cluster();
    ns(&c, "roll", json!({}));
    let mut d = deployment("api", 4);
    d["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}});
    c.create("apps/v1", "deployments", "roll", d).unwrap();
    until(&c, "api rolled out", |c| rolled_out(&get(c, "apps/v1", "deployments", "roll", "api"))).await;
    let mut rx = c.subscribe();
    c.patch("apps/v1", "deployments", "roll", "api", PatchType::Strategic, &restart_patch("now"), "kubectl-rollout")
        .unwrap();
    let deadline = tokio::time::Instant::now() + BOUND;
    let (mut max_pods, mut min_available) = (0, i64::MAX);
    loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv()).await.expect("in time").expect("events");
        let all = pods(&c, "roll");
        max_pods = max_pods.max(all.len());
        let available = all
            .iter()
            .filter(|p| {
                p["status"]["conditions"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
            })
            .count() as i64;
        min_available = min_available.min(available);
        if c.resource_of(&ev) == "deployments"
            && rolled_out(&ev.object)
            && cond(&ev.object, "Progressing")["reason"] == "NewReplicaSetAvailable"
        {
            break;
        }
    }
    assert!(max_pods <= 5, "surge 1 over 4: saw {max_pods} pods");
    assert!(min_available >= 3, "unavailable 1 of 4: saw {min_available} ready pods");
}

#[tokio::test]
async fn recreate_stops_old_pods_before_new_ones_start() {
    let sim = sim_with(KubeletOptions::default().termination(Duration::from_millis(100))).await;
    let c = sim.cluster();
    ns(&c, "rc", json!({}));
    let mut d = deployment("db", 2);
    d["spec"]["strategy"] = json!({"type": "Recreate"});
    d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = json!(30);
    c.create("apps/v1", "deployments", "rc", d).unwrap();
    until(&c, "db rolled out", |c| rolled_out(&get(c, "apps/v1", "deployments", "rc", "db"))).await;
    let old = names(&pods(&c, "rc"));
    let mut rx = c.subscribe();
    c.patch("apps/v1", "deployments", "rc", "db", PatchType::Strategic, &restart_patch("now"), "kubectl-rollout")
        .unwrap();
    let deadline = tokio::time::Instant::now() + BOUND;
    let mut terminating_seen = false;
    loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv()).await.expect("in time").expect("events");
        if c.resource_of(&ev) == "pods" && ev.kind == "ADDED" {
            let left: Vec<String> = names(&pods(&c, "rc")).into_iter().filter(|p| old.contains(p)).collect();
            assert!(left.is_empty(), "a new pod started while old ones were still there: {left:?}");
        }
        if c.resource_of(&ev) == "pods" && ev.object["metadata"]["deletionTimestamp"].is_string() {
            terminating_seen = true;
        }
        if c.resource_of(&ev) == "deployments"
            && rolled_out(&ev.object)
            && cond(&ev.object, "Progressing")["reason"] == "NewReplicaSetAvailable"
        {
            break;
        }
    }
    assert!(terminating_seen, "old pods were Terminating for a while (graceful deletion)");
}

#[tokio::test]
async fn a_stuck_rollout_exceeds_its_progress_deadline() {
    let sim = sim_with(KubeletOptions::instant()).await;
    let c = sim.cluster();
    sim.actors().unwrap().set_crashing("broken", true);
    ns(&c, "stuck", json!({}));
    let mut d = deployment("web", 1);
    d["spec"]["progressDeadlineSeconds"] = json!(1);
    c.create("apps/v1", "deployments", "stuck", d).unwrap();
    until(&c, "web rolled out", |c| rolled_out(&get(c, "apps/v1", "deployments", "stuck", "web"))).await;
    c.patch("apps/v1", "deployments", "stuck", "web", PatchType::Strategic,
        &json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}, {"name": "broken", "image": "busybox"}]}}}}), "kubectl")
        .unwrap();
    until(&c, "ProgressDeadlineExceeded", |c| {
        cond(&get(c, "apps/v1", "deployments", "stuck", "web"), "Progressing")["reason"] == "ProgressDeadlineExceeded"
    })
    .await;
    let d = get(&c, "apps/v1", "deployments", "stuck", "web");
    assert_eq!(cond(&d, "Progressing")["status"], "False");
    assert!(cond(&d, "Progressing")["message"].as_str().unwrap().ends_with("has timed out progressing."));
    assert_eq!(d["status"]["unavailableReplicas"], 1, "the crash-looping new pod is not available");
    assert!(!rolled_out(&d));
    let crashing =
        pods(&c, "stuck").into_iter().find(|p| p["spec"]["containers"].as_array().unwrap().len() == 2).unwrap();
    assert_eq!(crashing["status"]["containerStatuses"][1]["state"]["waiting"]["reason"], "CrashLoopBackOff");
}

#[tokio::test]
async fn revision_history_limit_deletes_old_replicasets() {
    let sim = sim_with(KubeletOptions::instant()).await;
    let c = sim.cluster();
    ns(&c, "hist", json!({}));
    let mut d = deployment("web", 1);
    d["spec"]["revisionHistoryLimit"] = json!(1);
    c.create("apps/v1", "deployments", "hist", d).unwrap();
    for i in 0..3 {
        until(&c, "rolled out", |c| {
            let d = get(c, "apps/v1", "deployments", "hist", "web");
            rolled_out(&d) && cond(&d, "Progressing")["reason"] == "NewReplicaSetAvailable"
        })
        .await;
        c.patch(
            "apps/v1",
            "deployments",
            "hist",
            "web",
            PatchType::Strategic,
            &restart_patch(&format!("t{i}")),
            "kubectl-rollout",
        )
        .unwrap();
    }
    until(&c, "one old ReplicaSet left", |c| {
        let d = get(c, "apps/v1", "deployments", "hist", "web");
        rolled_out(&d) && c.list("apps/v1", "replicasets", Some("hist")).len() == 2
    })
    .await;
    let revs: Vec<String> = c
        .list("apps/v1", "replicasets", Some("hist"))
        .iter()
        .map(|r| r["metadata"]["annotations"]["deployment.kubernetes.io/revision"].as_str().unwrap().to_string())
        .collect();
    let mut revs = revs;
    revs.sort();
    assert_eq!(revs, ["3", "4"]);
}

// === kubelet ===

#[tokio::test]
async fn pods_go_pending_running_ready_and_terminate_gracefully() {
    let sim = sim_with(KubeletOptions::slow(Duration::from_millis(60)).termination(Duration::from_millis(150))).await;
    let c = sim.cluster();
    ns(&c, "life", json!({}));
    let mut rx = c.subscribe();
    let mut d = deployment("web", 1);
    d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = json!(30);
    c.create("apps/v1", "deployments", "life", d).unwrap();
    let mut phases: Vec<String> = Vec::new();
    let deadline = tokio::time::Instant::now() + BOUND;
    let pod_name = loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv()).await.expect("in time").expect("events");
        if c.resource_of(&ev) != "pods" {
            continue;
        }
        let p = &*ev.object;
        let ready = cond(p, "Ready")["status"] == "True";
        let step = format!("{}{}", p["status"]["phase"].as_str().unwrap_or("?"), if ready { "+Ready" } else { "" });
        if phases.last() != Some(&step) {
            phases.push(step);
        }
        if ready {
            break p["metadata"]["name"].as_str().unwrap().to_string();
        }
    };
    assert_eq!(phases, ["Pending", "Running", "Running+Ready"]);
    let p = get(&c, "v1", "pods", "life", &pod_name);
    assert!(p["spec"]["nodeName"].is_string(), "scheduled");
    assert_eq!(cond(&p, "PodScheduled")["status"], "True");
    assert!(p["status"]["podIP"].as_str().unwrap().starts_with("10."));
    assert_eq!(p["status"]["podIPs"][0]["ip"], p["status"]["podIP"]);
    assert_eq!(p["status"]["containerStatuses"][0]["ready"], true);
    assert_eq!(p["status"]["qosClass"], "BestEffort");

    c.delete("v1", "pods", "life", &pod_name).unwrap();
    let p = get(&c, "v1", "pods", "life", &pod_name);
    assert!(p["metadata"]["deletionTimestamp"].is_string(), "Terminating first");
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 30);
    until(&c, "terminatingReplicas 1", |c| {
        get(c, "apps/v1", "deployments", "life", "web")["status"]["terminatingReplicas"] == 1
    })
    .await;
    until(&c, "pod gone", |c| c.get("v1", "pods", "life", &pod_name).is_none()).await;
    until(&c, "replaced and rolled out", |c| {
        let d = get(c, "apps/v1", "deployments", "life", "web");
        rolled_out(&d) && d["status"]["terminatingReplicas"] == 0 && pods(c, "life").len() == 1
    })
    .await;
}

#[tokio::test]
async fn native_sidecars_get_init_container_statuses() {
    let sim = sim_with(KubeletOptions::instant()).await;
    let c = sim.cluster();
    ns(&c, "batch", json!({}));
    // A native sidecar (restartPolicy Always init container) runs beside the app.
    c.create("v1", "pods", "batch", json!({"metadata": {"name": "with-sidecar"}, "spec": {
        "initContainers": [{"name": "init", "image": "busybox"}, {"name": "proxy", "image": "proxy:1", "restartPolicy": "Always"}],
        "containers": [{"name": "app", "image": "app:1"}]}}))
        .unwrap();
    until(&c, "with-sidecar ready", |c| {
        cond(&get(c, "v1", "pods", "batch", "with-sidecar"), "Ready")["status"] == "True"
    })
    .await;
    let p = get(&c, "v1", "pods", "batch", "with-sidecar");
    let inits = p["status"]["initContainerStatuses"].as_array().unwrap();
    assert_eq!(inits[0]["state"]["terminated"]["reason"], "Completed");
    assert_eq!(inits[1]["name"], "proxy");
    assert!(inits[1]["state"]["running"].is_object());
    assert_eq!(inits[1]["ready"], true);
    assert_eq!(inits[1]["started"], true);
}
