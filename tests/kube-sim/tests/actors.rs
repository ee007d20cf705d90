//! The cluster actors against what a real v1.36 cluster did (the recorded transcripts 11, 12,
//! 13 and 16 of shared/reference/real-server-transcripts, quoted where they are compared).
//! Every wait is a bounded observation of the in-process event stream.

mod common;

use std::time::Duration;

use common::{BOUND, Client, next_event, until};
use kube_sim::actors::KubeletOptions;
use kube_sim::{Cluster, PatchType, Sim, SimOptions};
use serde_json::{Value, json};

// === helpers ===

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
        let ev = next_event(&mut rx, deadline).await;
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
        let ev = next_event(&mut rx, deadline).await;
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
        let ev = next_event(&mut rx, deadline).await;
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
    // The crash is fixed: the pod comes up, keeps its restart count, the rollout completes.
    sim.actors().unwrap().set_crashing("broken", false);
    until(&c, "rolled out after the fix", |c| {
        let d = get(c, "apps/v1", "deployments", "stuck", "web");
        rolled_out(&d) && cond(&d, "Progressing")["reason"] == "NewReplicaSetAvailable"
    })
    .await;
    let p = pods(&c, "stuck").into_iter().find(|p| p["spec"]["containers"].as_array().unwrap().len() == 2).unwrap();
    assert_eq!(p["status"]["containerStatuses"][1]["restartCount"], 5);
    assert_eq!(p["status"]["containerStatuses"][1]["ready"], true);
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
        let ev = next_event(&mut rx, deadline).await;
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

// === StatefulSets (transcript 12) ===

fn statefulset(name: &str, replicas: i64, strategy: Value) -> Value {
    json!({"metadata": {"name": name}, "spec": {"replicas": replicas, "serviceName": name, "updateStrategy": strategy,
        "selector": {"matchLabels": {"app": name}}, "template": template(name)}})
}

fn sts_ready(c: &Cluster, ns: &str, name: &str, n: i64) -> bool {
    let s = get(c, "apps/v1", "statefulsets", ns, name);
    s["status"]["readyReplicas"] == n && s["status"]["observedGeneration"] == s["metadata"]["generation"]
}

#[tokio::test]
async fn an_on_delete_statefulset_keeps_its_pods_until_they_are_deleted() {
    let sim = sim_with(KubeletOptions::default()).await;
    let c = sim.cluster();
    ns(&c, "rec-sts", json!({}));
    c.create("apps/v1", "statefulsets", "rec-sts", statefulset("db", 2, json!({"type": "OnDelete"}))).unwrap();
    until(&c, "db ready", |c| sts_ready(c, "rec-sts", "db", 2)).await;
    let s = get(&c, "apps/v1", "statefulsets", "rec-sts", "db");
    let rev1 = s["status"]["currentRevision"].as_str().unwrap().to_string();
    assert_eq!(s["status"]["updateRevision"], rev1.as_str());
    assert_eq!(s["status"]["currentReplicas"], 2);
    assert_eq!(s["status"]["updatedReplicas"], 2);
    assert_eq!(s["status"]["collisionCount"], 0);
    assert_eq!(names(&pods(&c, "rec-sts")), ["db-0", "db-1"]);
    let before = pods(&c, "rec-sts");
    assert!(before.iter().all(|p| label(p, "controller-revision-hash") == rev1));
    assert_eq!(label(&before[0], "statefulset.kubernetes.io/pod-name"), "db-0");
    assert_eq!(label(&before[1], "apps.kubernetes.io/pod-index"), "1");
    assert_eq!(before[0]["spec"]["hostname"], "db-0");
    assert_eq!(before[0]["spec"]["subdomain"], "db");
    let cr = c.get("apps/v1", "controllerrevisions", "rec-sts", &rev1).expect("ControllerRevision");
    assert_eq!(cr["revision"], 1);
    assert_eq!(cr["data"]["spec"]["template"]["$patch"], "replace");

    c.patch(
        "apps/v1",
        "statefulsets",
        "rec-sts",
        "db",
        PatchType::Strategic,
        &json!({"spec": {"template": {"metadata": {"annotations": {"rec/changed": "2026-12-01T07:45:17Z"}}}}}),
        "t",
    )
    .unwrap();
    until(&c, "generation 2 observed", |c| {
        get(c, "apps/v1", "statefulsets", "rec-sts", "db")["status"]["observedGeneration"] == 2
    })
    .await;
    let s = get(&c, "apps/v1", "statefulsets", "rec-sts", "db");
    let rev2 = s["status"]["updateRevision"].as_str().unwrap().to_string();
    assert_ne!(rev2, rev1);
    // transcript 12, facts.sts_status_10s_after: no updatedReplicas, currentRevision unchanged.
    assert_eq!(
        s["status"],
        json!({"observedGeneration": 2, "replicas": 2, "readyReplicas": 2, "currentReplicas": 2, "currentRevision": rev1,
            "updateRevision": rev2, "collisionCount": 0, "availableReplicas": 2})
    );
    let after: Vec<(String, String)> = pods(&c, "rec-sts")
        .iter()
        .map(|p| (p["metadata"]["uid"].to_string(), label(p, "controller-revision-hash")))
        .collect();
    let before: Vec<(String, String)> =
        before.iter().map(|p| (p["metadata"]["uid"].to_string(), label(p, "controller-revision-hash"))).collect();
    assert_eq!(after, before, "OnDelete: same pods, old hash");

    let old_uid = get(&c, "v1", "pods", "rec-sts", "db-1")["metadata"]["uid"].clone();
    c.delete("v1", "pods", "rec-sts", "db-1").unwrap();
    until(&c, "db-1 back and ready", |c| {
        let p = get(c, "v1", "pods", "rec-sts", "db-1");
        p["metadata"]["uid"] != old_uid && cond(&p, "Ready")["status"] == "True" && sts_ready(c, "rec-sts", "db", 2)
    })
    .await;
    assert_eq!(label(&get(&c, "v1", "pods", "rec-sts", "db-1"), "controller-revision-hash"), rev2);
    let s = get(&c, "apps/v1", "statefulsets", "rec-sts", "db");
    assert_eq!((s["status"]["currentReplicas"].clone(), s["status"]["updatedReplicas"].clone()), (json!(1), json!(1)));
    assert_eq!(s["status"]["currentRevision"], rev1.as_str());
}

#[tokio::test]
async fn a_rolling_statefulset_updates_from_the_highest_ordinal_down_to_its_partition() {
    let sim = sim_with(KubeletOptions::slow(Duration::from_millis(30))).await;
    let c = sim.cluster();
    ns(&c, "sts", json!({}));
    let mut rx = c.subscribe();
    c.create(
        "apps/v1",
        "statefulsets",
        "sts",
        statefulset("web", 3, json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 1}})),
    )
    .unwrap();
    // OrderedReady: each pod is created once the previous one is Ready.
    let mut created: Vec<String> = Vec::new();
    let deadline = tokio::time::Instant::now() + BOUND;
    while created.len() < 3 {
        let ev = next_event(&mut rx, deadline).await;
        if c.resource_of(&ev) == "pods" && ev.kind == "ADDED" {
            let n = ev.object["metadata"]["name"].as_str().unwrap().to_string();
            for prev in &created {
                assert_eq!(
                    cond(&get(&c, "v1", "pods", "sts", prev), "Ready")["status"],
                    "True",
                    "{n} created before {prev} was Ready"
                );
            }
            created.push(n);
        }
    }
    assert_eq!(created, ["web-0", "web-1", "web-2"]);
    until(&c, "web ready", |c| sts_ready(c, "sts", "web", 3)).await;
    let rev1 =
        get(&c, "apps/v1", "statefulsets", "sts", "web")["status"]["currentRevision"].as_str().unwrap().to_string();

    let mut rx = c.subscribe();
    c.patch("apps/v1", "statefulsets", "sts", "web", PatchType::Strategic, &restart_patch("now"), "kubectl-rollout")
        .unwrap();
    let mut deleted: Vec<String> = Vec::new();
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let ev = next_event(&mut rx, deadline).await;
        if c.resource_of(&ev) == "pods" && ev.kind == "DELETED" {
            deleted.push(ev.object["metadata"]["name"].as_str().unwrap().to_string());
        }
        let s = get(&c, "apps/v1", "statefulsets", "sts", "web");
        if s["status"]["updatedReplicas"] == 2 && s["status"]["readyReplicas"] == 3 {
            break;
        }
    }
    assert_eq!(deleted, ["web-2", "web-1"], "highest ordinal first, web-0 below the partition");
    let s = get(&c, "apps/v1", "statefulsets", "sts", "web");
    let rev2 = s["status"]["updateRevision"].as_str().unwrap().to_string();
    assert_eq!(s["status"]["currentRevision"], rev1.as_str(), "not complete while web-0 is old");
    assert_eq!(label(&get(&c, "v1", "pods", "sts", "web-0"), "controller-revision-hash"), rev1);
    assert_eq!(label(&get(&c, "v1", "pods", "sts", "web-2"), "controller-revision-hash"), rev2);

    c.patch(
        "apps/v1",
        "statefulsets",
        "sts",
        "web",
        PatchType::Merge,
        &json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}}),
        "t",
    )
    .unwrap();
    until(&c, "rolling update complete", |c| {
        let s = get(c, "apps/v1", "statefulsets", "sts", "web");
        s["status"]["currentRevision"] == rev2.as_str()
            && s["status"]["currentReplicas"] == 3
            && s["status"]["readyReplicas"] == 3
    })
    .await;
    assert_eq!(label(&get(&c, "v1", "pods", "sts", "web-0"), "controller-revision-hash"), rev2);

    // Scale down from the highest ordinal.
    c.patch("apps/v1", "statefulsets", "sts", "web", PatchType::Merge, &json!({"spec": {"replicas": 1}}), "t").unwrap();
    until(&c, "scaled to 1", |c| {
        names(&pods(c, "sts")) == ["web-0"]
            && get(c, "apps/v1", "statefulsets", "sts", "web")["status"]["replicas"] == 1
    })
    .await;
}

// === DaemonSets ===

fn node(name: &str, ready: bool, labels: Value) -> Value {
    json!({"metadata": {"name": name, "labels": labels}, "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
}

#[tokio::test]
async fn a_daemonset_runs_one_pod_per_eligible_node_and_rolls_one_node_at_a_time() {
    let sim = sim_with(KubeletOptions::slow(Duration::from_millis(30))).await;
    let c = sim.cluster();
    for i in 0..4 {
        c.create("v1", "nodes", "", node(&format!("n{i}"), true, json!({"kubernetes.io/os": "linux"}))).unwrap();
    }
    c.create("v1", "nodes", "", node("down", false, json!({"kubernetes.io/os": "linux"}))).unwrap();
    c.create("v1", "nodes", "", node("win", true, json!({"kubernetes.io/os": "windows"}))).unwrap();
    let mut cordoned = node("cordoned", true, json!({"kubernetes.io/os": "linux"}));
    cordoned["spec"] = json!({"unschedulable": true});
    c.create("v1", "nodes", "", cordoned).unwrap();
    ns(&c, "ds", json!({}));
    let mut t = template("agent");
    t["spec"]["nodeSelector"] = json!({"kubernetes.io/os": "linux"});
    c.create(
        "apps/v1",
        "daemonsets",
        "ds",
        json!({"metadata": {"name": "agent"}, "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": t}}),
    )
    .unwrap();
    let ds_done = |c: &Cluster, n: i64| {
        let d = get(c, "apps/v1", "daemonsets", "ds", "agent");
        d["status"]["numberAvailable"] == n
            && d["status"]["updatedNumberScheduled"] == n
            && d["status"]["observedGeneration"] == d["metadata"]["generation"]
    };
    until(&c, "agent everywhere", |c| ds_done(c, 5)).await;
    let ps = pods(&c, "ds");
    let mut nodes: Vec<&str> = ps.iter().map(|p| p["spec"]["nodeName"].as_str().unwrap()).collect();
    nodes.sort();
    assert_eq!(
        nodes,
        ["cordoned", "n0", "n1", "n2", "n3"],
        "not on the NotReady or the windows node; cordoned nodes run daemons"
    );
    let d = get(&c, "apps/v1", "daemonsets", "ds", "agent");
    assert_eq!(
        d["status"],
        json!({"currentNumberScheduled": 5, "numberMisscheduled": 0, "desiredNumberScheduled": 5, "numberReady": 5,
            "observedGeneration": 1, "updatedNumberScheduled": 5, "numberAvailable": 5})
    );
    assert!(ps.iter().all(|p| !label(p, "controller-revision-hash").is_empty()));

    // RollingUpdate, maxUnavailable 1: one node without an available pod at a time.
    let mut rx = c.subscribe();
    c.patch("apps/v1", "daemonsets", "ds", "agent", PatchType::Strategic, &restart_patch("now"), "kubectl-rollout")
        .unwrap();
    let deadline = tokio::time::Instant::now() + BOUND;
    let mut min_ready = usize::MAX;
    loop {
        next_event(&mut rx, deadline).await;
        let ready = pods(&c, "ds").iter().filter(|p| cond(p, "Ready")["status"] == "True").count();
        min_ready = min_ready.min(ready);
        if ds_done(&c, 5) && get(&c, "apps/v1", "daemonsets", "ds", "agent")["status"]["observedGeneration"] == 2 {
            break;
        }
    }
    assert_eq!(min_ready, 4, "exactly one node at a time");

    // OnDelete: nothing replaced by a template change.
    c.patch(
        "apps/v1",
        "daemonsets",
        "ds",
        "agent",
        PatchType::Merge,
        &json!({"spec": {"updateStrategy": {"type": "OnDelete"}}}),
        "t",
    )
    .unwrap();
    let before = names(&pods(&c, "ds"));
    c.patch("apps/v1", "daemonsets", "ds", "agent", PatchType::Strategic, &restart_patch("later"), "kubectl-rollout")
        .unwrap();
    until(&c, "generation observed", |c| {
        let d = get(c, "apps/v1", "daemonsets", "ds", "agent");
        d["status"]["observedGeneration"] == d["metadata"]["generation"]
    })
    .await;
    assert_eq!(names(&pods(&c, "ds")), before);
    assert!(get(&c, "apps/v1", "daemonsets", "ds", "agent")["status"]["updatedNumberScheduled"].is_null());

    // A node that becomes Ready gets its pod; a deleted node's pod goes.
    c.patch_status(
        "v1",
        "nodes",
        "",
        "down",
        &json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    )
    .unwrap();
    until(&c, "pod on the recovered node", |c| pods(c, "ds").iter().any(|p| p["spec"]["nodeName"] == "down")).await;
    c.delete("v1", "nodes", "", "n3").unwrap();
    until(&c, "no pod on the deleted node", |c| {
        !pods(c, "ds").iter().any(|p| p["spec"]["nodeName"] == "n3")
            && get(c, "apps/v1", "daemonsets", "ds", "agent")["status"]["desiredNumberScheduled"] == 5
    })
    .await;
}

// === PodDisruptionBudgets and eviction (transcript 13) ===

#[tokio::test]
async fn eviction_waits_for_the_disruption_controller_then_follows_the_budget() {
    let sim = sim_with(KubeletOptions::default()).await;
    let c = sim.cluster();
    let http = Client::new(sim.addr());
    ns(&c, "rec-evict", json!({}));
    c.create("apps/v1", "deployments", "rec-evict", deployment("evictee", 1)).unwrap();
    until(&c, "evictee rolled out", |c| rolled_out(&get(c, "apps/v1", "deployments", "rec-evict", "evictee"))).await;
    let pod = names(&pods(&c, "rec-evict")).remove(0);
    let evict = |pod: &str, q: &str| {
        (
            format!("/api/v1/namespaces/rec-evict/pods/{pod}/eviction{q}"),
            json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": "rec-evict"}}),
        )
    };
    // Right after the PDB is created, before the disruption controller has processed it.
    let actors = sim.actors().unwrap();
    actors.hold(true);
    c.create("policy/v1", "poddisruptionbudgets", "rec-evict", json!({"metadata": {"name": "rec-pdb"}, "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "evictee"}}}}))
        .unwrap();
    let (path, body) = evict(&pod, "");
    let r = http.post(&path, &body).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("Retry-After"), Some("10"));
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Cannot evict pod as it would violate the pod's disruption budget.",
            "reason": "TooManyRequests", "details": {"causes": [{"reason": "DisruptionBudget", "message": "The disruption budget rec-pdb is still being processed by the server."}], "retryAfterSeconds": 10}, "code": 429})
    );
    actors.hold(false);
    until(&c, "PDB processed", |c| {
        get(c, "policy/v1", "poddisruptionbudgets", "rec-evict", "rec-pdb")["status"]["observedGeneration"] == 1
    })
    .await;
    let pdb = get(&c, "policy/v1", "poddisruptionbudgets", "rec-evict", "rec-pdb");
    let mut st = pdb["status"].clone();
    assert!(st["conditions"][0]["lastTransitionTime"].is_string());
    st["conditions"][0].as_object_mut().unwrap().remove("lastTransitionTime");
    // transcript 13, response 2.
    assert_eq!(
        st,
        json!({"observedGeneration": 1, "disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1,
            "conditions": [{"type": "DisruptionAllowed", "status": "False", "observedGeneration": 1, "reason": "InsufficientPods", "message": ""}]})
    );
    for q in ["", "?dryRun=All"] {
        let (path, body) = evict(&pod, q);
        let r = http.post(&path, &body).await;
        assert_eq!(r.status, 429);
        assert_eq!(r.header("Retry-After"), None);
        assert_eq!(
            r.json()["details"],
            json!({"causes": [{"reason": "DisruptionBudget", "message": "The disruption budget rec-pdb needs 1 healthy pods and has 1 currently"}]})
        );
    }
    let (path, body) = evict("nope", "");
    let r = http.post(&path, &body).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "pods \"nope\" not found");
    assert!(c.get("v1", "pods", "rec-evict", &pod).is_some());

    // A budget that allows one disruption: the eviction goes through and is recorded.
    c.patch("apps/v1", "deployments", "rec-evict", "evictee", PatchType::Merge, &json!({"spec": {"replicas": 2}}), "t")
        .unwrap();
    c.patch(
        "policy/v1",
        "poddisruptionbudgets",
        "rec-evict",
        "rec-pdb",
        PatchType::Merge,
        &json!({"spec": {"maxUnavailable": 1}}),
        "t",
    )
    .unwrap();
    until(&c, "one disruption allowed", |c| {
        let p = get(c, "policy/v1", "poddisruptionbudgets", "rec-evict", "rec-pdb");
        p["status"]["disruptionsAllowed"] == 1
            && p["status"]["observedGeneration"] == 2
            && p["status"]["currentHealthy"] == 2
    })
    .await;
    assert_eq!(
        cond(&get(&c, "policy/v1", "poddisruptionbudgets", "rec-evict", "rec-pdb"), "DisruptionAllowed")["reason"],
        "SufficientPods"
    );
    actors.hold(true);
    let (path, body) = evict(&pod, "");
    let r = http.post(&path, &body).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert!(c.get("v1", "pods", "rec-evict", &pod).is_none());
    let p = get(&c, "policy/v1", "poddisruptionbudgets", "rec-evict", "rec-pdb");
    assert_eq!(p["status"]["disruptionsAllowed"], 0, "decremented by the eviction");
    assert!(p["status"]["disruptedPods"][&pod].is_string());
    let other = names(&pods(&c, "rec-evict")).remove(0);
    let (path, body) = evict(&other, "");
    assert_eq!(http.post(&path, &body).await.status, 429, "no second disruption before the controller catches up");
    actors.hold(false);
    until(&c, "replaced and budget restored", |c| {
        let p = get(c, "policy/v1", "poddisruptionbudgets", "rec-evict", "rec-pdb");
        p["status"]["disruptionsAllowed"] == 1 && p["status"]["disruptedPods"].is_null()
    })
    .await;
}

// === Namespaces (transcript 16) ===

#[tokio::test]
async fn namespaces_get_the_root_ca_and_default_service_account_and_report_termination() {
    let sim = sim_with(KubeletOptions::default()).await;
    let c = sim.cluster();
    ns(&c, "rec-term", json!({}));
    until(&c, "published", |c| {
        c.get("v1", "configmaps", "rec-term", "kube-root-ca.crt").is_some()
            && c.get("v1", "serviceaccounts", "rec-term", "default").is_some()
    })
    .await;
    let cm = get(&c, "v1", "configmaps", "rec-term", "kube-root-ca.crt");
    assert!(cm["data"]["ca.crt"].as_str().unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(
        cm["metadata"]["annotations"]["kubernetes.io/description"]
            .as_str()
            .unwrap()
            .starts_with("Contains a CA bundle")
    );
    for basic in ["default", "kube-system"] {
        until(&c, "basic namespaces too", |c| c.get("v1", "serviceaccounts", basic, "default").is_some()).await;
    }
    // Deleted, it is put back.
    c.delete("v1", "configmaps", "rec-term", "kube-root-ca.crt").unwrap();
    until(&c, "republished", |c| c.get("v1", "configmaps", "rec-term", "kube-root-ca.crt").is_some()).await;

    c.create(
        "v1",
        "configmaps",
        "rec-term",
        json!({"metadata": {"name": "held", "finalizers": ["rec.meshkeeper.io/hold"]}}),
    )
    .unwrap();
    c.delete("v1", "namespaces", "", "rec-term").unwrap();
    until(&c, "conditions", |c| get(c, "v1", "namespaces", "", "rec-term")["status"]["conditions"].is_array()).await;
    let n = get(&c, "v1", "namespaces", "", "rec-term");
    assert_eq!(n["status"]["phase"], "Terminating");
    let conds: Vec<Value> = n["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert!(c["lastTransitionTime"].is_string());
            json!({"type": c["type"], "status": c["status"], "reason": c["reason"], "message": c["message"]})
        })
        .collect();
    // transcript 16, facts.terminating_conditions.
    assert_eq!(
        conds,
        vec![
            json!({"type": "NamespaceDeletionDiscoveryFailure", "status": "False", "reason": "ResourcesDiscovered", "message": "All resources successfully discovered"}),
            json!({"type": "NamespaceDeletionGroupVersionParsingFailure", "status": "False", "reason": "ParsedGroupVersions", "message": "All legacy kube types successfully parsed"}),
            json!({"type": "NamespaceDeletionContentFailure", "status": "False", "reason": "ContentDeleted", "message": "All content successfully deleted, may be waiting on finalization"}),
            json!({"type": "NamespaceContentRemaining", "status": "True", "reason": "SomeResourcesRemain", "message": "Some resources are remaining: configmaps. has 1 resource instances"}),
            json!({"type": "NamespaceFinalizersRemaining", "status": "True", "reason": "SomeFinalizersRemain", "message": "Some content in the namespace has finalizers remaining: rec.meshkeeper.io/hold in 1 resource instances"}),
        ]
    );
    let e =
        c.create("coordination.k8s.io/v1", "leases", "rec-term", json!({"metadata": {"name": "late"}})).unwrap_err();
    assert_eq!(e.code, 403);
    c.patch("v1", "configmaps", "rec-term", "held", PatchType::Merge, &json!({"metadata": {"finalizers": null}}), "t")
        .unwrap();
    until(&c, "namespace gone", |c| c.get("v1", "namespaces", "", "rec-term").is_none()).await;
}

// === Jobs ===

#[tokio::test]
async fn a_job_runs_its_pod_to_completion() {
    let sim = sim_with(KubeletOptions::instant()).await;
    let c = sim.cluster();
    ns(&c, "batch", json!({}));
    // A Job runs its pod to completion.
    c.create(
        "batch/v1",
        "jobs",
        "batch",
        json!({"metadata": {"name": "migrate"}, "spec": {"template": {"spec": {"restartPolicy": "Never",
        "containers": [{"name": "migrate", "image": "busybox"}]}}}}),
    )
    .unwrap();
    until(&c, "job complete", |c| {
        cond(&get(c, "batch/v1", "jobs", "batch", "migrate"), "Complete")["status"] == "True"
    })
    .await;
    let job = get(&c, "batch/v1", "jobs", "batch", "migrate");
    assert_eq!(job["status"]["succeeded"], 1);
    assert_eq!(cond(&job, "SuccessCriteriaMet")["reason"], "CompletionsReached");
    assert!(job["status"]["completionTime"].is_string());
    let p = &pods(&c, "batch")[0];
    assert_eq!(p["status"]["phase"], "Succeeded");
    assert_eq!(label(p, "batch.kubernetes.io/job-name"), "migrate");
    assert_eq!(p["status"]["containerStatuses"][0]["state"]["terminated"]["reason"], "Completed");
}

// === the sidecar injector (shared/reference/istio-injection.md) ===

async fn mesh() -> Sim {
    let sim = sim_with(KubeletOptions::default()).await;
    kube_sim::seed::asm_onprem_ready(&sim.cluster()).await.unwrap();
    sim
}

fn proxy_image(p: &Value) -> Option<String> {
    ["containers", "initContainers"]
        .iter()
        .flat_map(|l| p["spec"][*l].as_array().cloned().unwrap_or_default())
        .find(|c| c["name"] == "istio-proxy")
        .and_then(|c| c["image"].as_str().map(str::to_string))
}

fn all_ready(c: &Cluster, ns: &str, n: usize) -> bool {
    let ps = pods(c, ns);
    ps.len() == n
        && ps.iter().all(|p| cond(p, "Ready")["status"] == "True" && !p["metadata"]["deletionTimestamp"].is_string())
}

#[tokio::test]
async fn an_upgrade_through_the_configmap_reaches_only_new_pods() {
    let sim = mesh().await;
    let c = sim.cluster();
    until(&c, "bookinfo up", |c| {
        rolled_out(&get(c, "apps/v1", "deployments", "bookinfo", "productpage")) && all_ready(c, "bookinfo", 2)
    })
    .await;
    let old = pods(&c, "bookinfo");
    assert!(old.iter().all(|p| proxy_image(p).as_deref() == Some("gcr.io/gke-release/asm/proxyv2:1.4.10-asm.18")));
    let status: Value =
        serde_json::from_str(old[0]["metadata"]["annotations"]["sidecar.istio.io/status"].as_str().unwrap()).unwrap();
    assert_eq!(status["containers"], json!(["istio-proxy"]));
    assert_eq!(label(&old[0], "security.istio.io/tlsMode"), "istio");

    sim.actors().unwrap().set_injector_version("1.4.10-asm.19");
    let cm = get(&c, "v1", "configmaps", "istio-system", "istio-sidecar-injector");
    let values: Value = serde_json::from_str(cm["data"]["values"].as_str().unwrap()).unwrap();
    assert_eq!(values["global"]["tag"], "1.4.10-asm.19", "the upgrade is visible where a real install keeps it");
    assert_eq!(names(&pods(&c, "bookinfo")), names(&old), "running pods are not touched");
    assert!(pods(&c, "bookinfo").iter().all(|p| proxy_image(p).unwrap().ends_with(":1.4.10-asm.18")));

    c.patch(
        "apps/v1",
        "deployments",
        "bookinfo",
        "productpage",
        PatchType::Strategic,
        &restart_patch("now"),
        "kubectl-rollout",
    )
    .unwrap();
    until(&c, "restarted", |c| {
        let d = get(c, "apps/v1", "deployments", "bookinfo", "productpage");
        rolled_out(&d) && cond(&d, "Progressing")["reason"] == "NewReplicaSetAvailable" && all_ready(c, "bookinfo", 2)
    })
    .await;
    let new = pods(&c, "bookinfo");
    assert!(
        new.iter().all(|p| proxy_image(p).as_deref() == Some("gcr.io/gke-release/asm/proxyv2:1.4.10-asm.19")),
        "{new:?}"
    );

    // A changed hub in the values is followed as well.
    let mut values = values;
    values["global"]["hub"] = json!("registry.example.com/asm");
    c.patch(
        "v1",
        "configmaps",
        "istio-system",
        "istio-sidecar-injector",
        PatchType::Merge,
        &json!({"data": {"values": values.to_string()}}),
        "t",
    )
    .unwrap();
    c.create(
        "v1",
        "pods",
        "bookinfo",
        json!({"metadata": {"name": "probe"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    )
    .unwrap();
    assert_eq!(
        proxy_image(&get(&c, "v1", "pods", "bookinfo", "probe")).as_deref(),
        Some("registry.example.com/asm/proxyv2:1.4.10-asm.19")
    );
}

#[tokio::test]
async fn the_injectors_configmap_decides_who_is_injected() {
    let sim = mesh().await;
    let c = sim.cluster();
    let cm = get(&c, "v1", "configmaps", "istio-system", "istio-sidecar-injector");
    let mut config: Value = serde_yaml::from_str(cm["data"]["config"].as_str().unwrap()).unwrap();
    assert_eq!(config["policy"], "enabled");
    assert!(config["template"].as_str().unwrap().contains("istio-proxy"));
    config["neverInjectSelector"] = json!([{"matchLabels": {"batch": "true"}}]);
    config["alwaysInjectSelector"] = json!([{"matchExpressions": [{"key": "mesh", "operator": "Exists"}]}]);
    config["policy"] = json!("disabled");
    let text = serde_yaml::to_string(&config).unwrap();
    c.patch(
        "v1",
        "configmaps",
        "istio-system",
        "istio-sidecar-injector",
        PatchType::Merge,
        &json!({"data": {"config": text}}),
        "t",
    )
    .unwrap();
    let pod = |name: &str, labels: Value, anns: Value| json!({"metadata": {"name": name, "labels": labels, "annotations": anns}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let cases = [
        ("plain", json!({}), json!({}), false),
        ("always", json!({"mesh": "yes"}), json!({}), true),
        ("never", json!({"batch": "true", "mesh": "yes"}), json!({}), false),
        ("asked", json!({"batch": "true"}), json!({"sidecar.istio.io/inject": "true"}), true),
        ("refused", json!({"mesh": "yes"}), json!({"sidecar.istio.io/inject": "false"}), false),
        ("host", json!({"mesh": "yes"}), json!({}), false),
    ];
    for (name, labels, anns, want) in cases {
        let mut p = pod(name, labels, anns);
        if name == "host" {
            p["spec"]["hostNetwork"] = json!(true);
        }
        let created = c.create("v1", "pods", "bookinfo", p).unwrap();
        assert_eq!(proxy_image(&created).is_some(), want, "{name}");
    }
    // Not sent to the injector at all: a namespace without the label (1.4's namespaceSelector).
    let created = c
        .create(
            "v1",
            "pods",
            "shop",
            pod("in-shop", json!({"mesh": "yes"}), json!({"sidecar.istio.io/inject": "true"})),
        )
        .unwrap();
    assert!(proxy_image(&created).is_none());
}

#[tokio::test]
async fn an_injector_without_ready_pods_fails_pod_creation_unless_the_webhook_ignores_it() {
    let sim = mesh().await;
    let c = sim.cluster();
    until(&c, "bookinfo up", |c| all_ready(c, "bookinfo", 2)).await;
    // The endpoints controller lists the injector's ready pod, on the Service's port.
    let ep = get(&c, "v1", "endpoints", "istio-system", "istio-sidecar-injector");
    let injector_pod = pods(&c, "istio-system").into_iter().find(|p| label(p, "istio") == "sidecar-injector").unwrap();
    assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], injector_pod["status"]["podIP"]);
    assert_eq!(ep["subsets"][0]["addresses"][0]["targetRef"]["name"], injector_pod["metadata"]["name"]);
    assert_eq!(ep["subsets"][0]["ports"], json!([{"name": "main", "port": 443, "protocol": "TCP"}]));
    c.patch(
        "apps/v1",
        "deployments",
        "istio-system",
        "istio-sidecar-injector",
        PatchType::Merge,
        &json!({"spec": {"replicas": 0}}),
        "kubectl-scale",
    )
    .unwrap();
    until(&c, "injector pods gone", |c| {
        !pods(c, "istio-system").iter().any(|p| label(p, "istio") == "sidecar-injector")
    })
    .await;
    let pod = json!({"metadata": {"name": "late"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let e = c.create("v1", "pods", "bookinfo", pod.clone()).unwrap_err();
    assert_eq!((e.code, e.reason), (500, "InternalError"));
    assert_eq!(
        e.message,
        "Internal error occurred: failed calling webhook \"sidecar-injector.istio.io\": failed to call webhook: Post \"https://istio-sidecar-injector.istio-system.svc:443/inject?timeout=10s\": no endpoints available for service \"istio-sidecar-injector\""
    );
    let ep = get(&c, "v1", "endpoints", "istio-system", "istio-sidecar-injector");
    assert!(ep.is_object() && ep["subsets"].is_null(), "no backend left: {ep}");
    assert!(
        c.create("v1", "pods", "shop", pod.clone()).is_ok(),
        "namespaces the webhook does not select are unaffected"
    );
    // A restart now cannot create pods: the new ReplicaSet reports it, the old pods keep serving.
    c.patch(
        "apps/v1",
        "deployments",
        "bookinfo",
        "productpage",
        PatchType::Strategic,
        &restart_patch("now"),
        "kubectl-rollout",
    )
    .unwrap();
    until(&c, "ReplicaFailure", |c| {
        cond(&get(c, "apps/v1", "deployments", "bookinfo", "productpage"), "ReplicaFailure")["reason"] == "FailedCreate"
    })
    .await;
    assert_eq!(pods(&c, "bookinfo").len(), 2);
    // Back up: the rollout goes through, with sidecars.
    c.patch(
        "apps/v1",
        "deployments",
        "istio-system",
        "istio-sidecar-injector",
        PatchType::Merge,
        &json!({"spec": {"replicas": 1}}),
        "kubectl-scale",
    )
    .unwrap();
    until(&c, "restarted", |c| {
        let d = get(c, "apps/v1", "deployments", "bookinfo", "productpage");
        rolled_out(&d) && cond(&d, "ReplicaFailure").is_null() && all_ready(c, "bookinfo", 2)
    })
    .await;
    assert!(pods(&c, "bookinfo").iter().all(|p| proxy_image(p).is_some()));

    // failurePolicy Ignore: created without a sidecar instead.
    let mut wh =
        get(&c, "admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", "", "istio-sidecar-injector");
    wh["webhooks"][0]["failurePolicy"] = json!("Ignore");
    c.upsert("admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", "", wh).unwrap();
    c.patch(
        "apps/v1",
        "deployments",
        "istio-system",
        "istio-sidecar-injector",
        PatchType::Merge,
        &json!({"spec": {"replicas": 0}}),
        "kubectl-scale",
    )
    .unwrap();
    until(&c, "injector pods gone", |c| {
        !pods(c, "istio-system").iter().any(|p| label(p, "istio") == "sidecar-injector")
    })
    .await;
    assert!(proxy_image(&c.create("v1", "pods", "bookinfo", pod.clone()).unwrap()).is_none());
    // set_injector_up(false) is an ignored outage whatever the policy.
    c.patch(
        "apps/v1",
        "deployments",
        "istio-system",
        "istio-sidecar-injector",
        PatchType::Merge,
        &json!({"spec": {"replicas": 1}}),
        "kubectl-scale",
    )
    .unwrap();
    until(&c, "injector back", |c| {
        pods(c, "istio-system")
            .iter()
            .any(|p| label(p, "istio") == "sidecar-injector" && cond(p, "Ready")["status"] == "True")
    })
    .await;
    sim.actors().unwrap().set_injector_up(false);
    let mut p2 = pod.clone();
    p2["metadata"]["name"] = json!("during-outage");
    assert!(proxy_image(&c.create("v1", "pods", "bookinfo", p2).unwrap()).is_none());
}

#[tokio::test]
async fn native_sidecars_and_revisions() {
    let sim = mesh().await;
    let c = sim.cluster();
    let actors = sim.actors().unwrap();
    actors.set_native_sidecars(true);
    c.create(
        "v1",
        "pods",
        "bookinfo",
        json!({"metadata": {"name": "native"}, "spec": {"containers": [{"name": "app", "image": "busybox"}]}}),
    )
    .unwrap();
    until(&c, "native ready", |c| cond(&get(c, "v1", "pods", "bookinfo", "native"), "Ready")["status"] == "True").await;
    let p = get(&c, "v1", "pods", "bookinfo", "native");
    assert_eq!(p["spec"]["containers"].as_array().unwrap().len(), 1);
    assert_eq!(p["spec"]["initContainers"][1]["name"], "istio-proxy");
    assert_eq!(p["spec"]["initContainers"][1]["restartPolicy"], "Always");
    assert_eq!(p["status"]["initContainerStatuses"][1]["ready"], true);
    actors.set_native_sidecars(false);

    // A revision: its own webhook and ConfigMap (ASM 1.6+ style).
    let mut wh = kube_sim::seed::injector_webhook(&kube_sim::seed::ca_pem(30));
    wh["metadata"]["name"] = json!("istio-sidecar-injector-asm-1234");
    wh["webhooks"][0]["namespaceSelector"] = json!({"matchExpressions": [{"key": "istio-injection", "operator": "DoesNotExist"},
        {"key": "istio.io/rev", "operator": "In", "values": ["asm-1234"]}]});
    c.create("admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", "", wh).unwrap();
    let mut cm = kube_sim::seed::injector_configmap("gcr.io/gke-release/asm", "1.6.8-asm.9");
    cm["metadata"]["name"] = json!("istio-sidecar-injector-asm-1234");
    c.create("v1", "configmaps", "istio-system", cm).unwrap();
    ns(&c, "rev", json!({"istio.io/rev": "asm-1234"}));
    let created = c
        .create(
            "v1",
            "pods",
            "rev",
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app", "image": "busybox"}]}}),
        )
        .unwrap();
    assert_eq!(proxy_image(&created).as_deref(), Some("gcr.io/gke-release/asm/proxyv2:1.6.8-asm.9"));
    assert!(
        created["metadata"]["annotations"]["sidecar.istio.io/status"]
            .as_str()
            .unwrap()
            .contains("\"revision\":\"asm-1234\"")
    );
    // istio-injection wins over istio.io/rev.
    ns(&c, "both", json!({"istio.io/rev": "asm-1234", "istio-injection": "enabled"}));
    let created = c
        .create(
            "v1",
            "pods",
            "both",
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app", "image": "busybox"}]}}),
        )
        .unwrap();
    assert_eq!(proxy_image(&created).as_deref(), Some("gcr.io/gke-release/asm/proxyv2:1.4.10-asm.18"));
}

#[tokio::test]
async fn newer_istio_webhooks_select_by_pod_label_too() {
    // Istio 1.6+ installs a second webhook for pods that opt in by label in namespaces without
    // any injection label (istio-injection.md: "if either is enabled, the pod is injected").
    let sim = mesh().await;
    let c = sim.cluster();
    let mut wh =
        get(&c, "admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", "", "istio-sidecar-injector");
    let mut by_object = wh["webhooks"][0].clone();
    by_object["name"] = json!("object.sidecar-injector.istio.io");
    by_object["namespaceSelector"] = json!({"matchExpressions": [{"key": "istio-injection", "operator": "DoesNotExist"},
        {"key": "istio.io/rev", "operator": "DoesNotExist"}]});
    by_object["objectSelector"] = json!({"matchLabels": {"sidecar.istio.io/inject": "true"}});
    wh["webhooks"].as_array_mut().unwrap().push(by_object);
    wh["webhooks"][0]["objectSelector"] =
        json!({"matchExpressions": [{"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]}]});
    c.upsert("admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", "", wh).unwrap();
    let pod = |name: &str, labels: Value| json!({"metadata": {"name": name, "labels": labels}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    // (namespace, pod label, injected)
    for (i, (ns, labels, want)) in [
        ("shop", json!({"sidecar.istio.io/inject": "true"}), true),
        ("shop", json!({}), false),
        ("bookinfo", json!({}), true),
        ("bookinfo", json!({"sidecar.istio.io/inject": "false"}), false),
        ("istio-system", json!({"sidecar.istio.io/inject": "true"}), false),
    ]
    .into_iter()
    .enumerate()
    {
        let created = c.create("v1", "pods", ns, pod(&format!("p{i}"), labels)).unwrap();
        assert_eq!(proxy_image(&created).is_some(), want, "case {i} in {ns}");
    }
}

#[tokio::test]
async fn a_job_with_a_classic_sidecar_never_completes() {
    let sim = mesh().await;
    let c = sim.cluster();
    c.create(
        "batch/v1",
        "jobs",
        "bookinfo",
        json!({"metadata": {"name": "report"}, "spec": {"template": {"spec": {"restartPolicy": "Never",
        "containers": [{"name": "report", "image": "busybox"}]}}}}),
    )
    .unwrap();
    until(&c, "the app container exited", |c| {
        pods(c, "bookinfo").iter().any(|p| {
            label(p, "job-name") == "report"
                && p["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
        })
    })
    .await;
    let p = pods(&c, "bookinfo").into_iter().find(|p| label(p, "job-name") == "report").unwrap();
    assert_eq!(p["status"]["phase"], "Running", "istio-proxy keeps running");
    assert!(p["status"]["containerStatuses"][1]["state"]["running"].is_object());
    let job = get(&c, "batch/v1", "jobs", "bookinfo", "report");
    assert!(cond(&job, "Complete").is_null());
    assert_eq!(job["status"]["active"], 1);
    // With a native sidecar it completes.
    sim.actors().unwrap().set_native_sidecars(true);
    c.create(
        "batch/v1",
        "jobs",
        "bookinfo",
        json!({"metadata": {"name": "native"}, "spec": {"template": {"spec": {"restartPolicy": "Never",
        "containers": [{"name": "report", "image": "busybox"}]}}}}),
    )
    .unwrap();
    until(&c, "native job complete", |c| {
        cond(&get(c, "batch/v1", "jobs", "bookinfo", "native"), "Complete")["status"] == "True"
    })
    .await;
}

// === the re-injection demo seed ===

#[tokio::test]
async fn the_reinjection_demo_has_pods_that_predate_injection() {
    let sim = mesh().await;
    let c = sim.cluster();
    kube_sim::seed::reinjection_demo(&c).await.unwrap();
    for n in kube_sim::seed::REINJECTION_NAMESPACES {
        assert_eq!(get(&c, "v1", "namespaces", "", n)["metadata"]["labels"]["istio-injection"], "enabled");
        assert!(pods(&c, n).iter().all(|p| proxy_image(p).is_none()), "{n}: every pod predates injection");
    }
    assert_eq!(pods(&c, "payments").len(), 3 + 2 + 1 + 1, "api, ledger, debug-shell, the Job's pod");
    assert_eq!(pods(&c, "edge").len(), 4 + 1, "log-shipper on each node, metrics-exporter");
    let job_pod = pods(&c, "payments").into_iter().find(|p| label(p, "job-name") == "nightly-report").unwrap();
    assert_eq!(job_pod["status"]["phase"], "Succeeded");
    // Restarts re-inject, except where the injector never injects.
    for (ns, kind, name) in [
        ("payments", "deployments", "api"),
        ("payments", "statefulsets", "ledger"),
        ("edge", "daemonsets", "log-shipper"),
        ("edge", "deployments", "metrics-exporter"),
    ] {
        c.patch("apps/v1", kind, ns, name, PatchType::Strategic, &restart_patch("now"), "kubectl-rollout").unwrap();
    }
    until(&c, "restarted", |c| {
        let injected = |ns: &str, app: &str| {
            let ps: Vec<Value> = pods(c, ns).into_iter().filter(|p| label(p, "app") == app).collect();
            !ps.is_empty()
                && ps.iter().all(|p| {
                    proxy_image(p).is_some()
                        && cond(p, "Ready")["status"] == "True"
                        && !p["metadata"]["deletionTimestamp"].is_string()
                })
        };
        injected("payments", "api")
            && injected("payments", "ledger")
            && injected("edge", "log-shipper")
            && pods(c, "payments").iter().filter(|p| label(p, "app") == "api").count() == 3
            && rolled_out(&get(c, "apps/v1", "deployments", "edge", "metrics-exporter"))
            && get(c, "apps/v1", "deployments", "edge", "metrics-exporter")["status"]["observedGeneration"] == 2
    })
    .await;
    let exporter: Vec<Value> = pods(&c, "edge").into_iter().filter(|p| label(p, "app") == "metrics-exporter").collect();
    assert!(exporter.iter().all(|p| proxy_image(p).is_none()), "neverInjectSelector: restarted without a sidecar");
    assert!(proxy_image(&get(&c, "v1", "pods", "payments", "debug-shell")).is_none());
}

// === kubectl get prints the real server's columns ===

#[path = "common/kubectl.rs"]
mod kubectl;

#[tokio::test]
async fn kubectl_get_prints_the_real_columns() {
    let Some(k) = kubectl::path() else { return };
    let sim = mesh().await;
    let c = sim.cluster();
    let kc = sim.kubeconfig_path();
    until(&c, "bookinfo up", |c| {
        rolled_out(&get(c, "apps/v1", "deployments", "bookinfo", "productpage")) && all_ready(c, "bookinfo", 2)
    })
    .await;
    let (ok, out, err) = kubectl::run(&k, &kc, &["get", "pods", "-n", "bookinfo"]).await;
    assert!(ok, "{err}");
    let rows = kubectl::rows(&out);
    assert_eq!(rows[0], ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert_eq!(rows.len(), 3, "{out}");
    assert!(rows[1..].iter().all(|r| r[1] == "2/2" && r[2] == "Running" && r[3] == "0"), "{out}");
    let (ok, out, err) = kubectl::run(&k, &kc, &["get", "pods", "-n", "bookinfo", "-o", "wide"]).await;
    assert!(ok, "{err}");
    let rows = kubectl::rows(&out);
    assert_eq!(
        rows[0],
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    );
    assert!(rows[1][5].starts_with("10.") && rows[1][6].starts_with("user-node-"), "{out}");
    let (ok, out, err) = kubectl::run(&k, &kc, &["get", "deploy", "-n", "bookinfo"]).await;
    assert!(ok, "{err}");
    let rows = kubectl::rows(&out);
    assert_eq!(rows[0], ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    assert_eq!(rows[1][..4], ["productpage", "2/2", "2", "2"]);
    let (ok, out, err) = kubectl::run(&k, &kc, &["get", "deploy", "productpage", "-n", "bookinfo", "-o", "wide"]).await;
    assert!(ok, "{err}");
    assert_eq!(
        kubectl::rows(&out)[0],
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    );
    assert!(out.contains("app=productpage"), "{out}");
    for (args, header) in [
        (vec!["get", "rs", "-n", "bookinfo"], vec!["NAME", "DESIRED", "CURRENT", "READY", "AGE"]),
        (vec!["get", "ns"], vec!["NAME", "STATUS", "AGE"]),
        (vec!["get", "svc", "-n", "istio-system"], vec!["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]),
        (vec!["get", "nodes"], vec!["NAME", "STATUS", "ROLES", "AGE", "VERSION"]),
        (vec!["get", "cm", "-n", "bookinfo"], vec!["NAME", "DATA", "AGE"]),
        (vec!["get", "leases", "-A"], vec![]),
        (vec!["get", "meshpolicies"], vec!["NAME", "AGE"]),
    ] {
        let (ok, out, err) = kubectl::run(&k, &kc, &args).await;
        assert!(ok, "{args:?}: {err}");
        match kubectl::rows(&out).first() {
            Some(h) => assert_eq!(h, &header, "{args:?}:\n{out}"),
            None => assert!(header.is_empty() && err.contains("No resources found"), "{args:?}: {out}{err}"),
        }
    }
    let (_, out, _) = kubectl::run(&k, &kc, &["get", "nodes"]).await;
    assert!(kubectl::rows(&out)[1][..2] == ["user-node-0", "Ready"] && out.contains("v1.36.2"), "{out}");
    // StatefulSets, DaemonSets and Jobs too.
    kube_sim::seed::reinjection_demo(&c).await.unwrap();
    for (args, header) in [
        (vec!["get", "sts", "-n", "payments"], vec!["NAME", "READY", "AGE"]),
        (
            vec!["get", "ds", "-n", "edge"],
            vec!["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"],
        ),
        (vec!["get", "jobs", "-n", "payments"], vec!["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]),
        (vec!["get", "pdb", "-A"], vec![]),
    ] {
        let (ok, out, err) = kubectl::run(&k, &kc, &args).await;
        assert!(ok, "{args:?}: {err}");
        match kubectl::rows(&out).first() {
            Some(h) => assert_eq!(h, &header, "{args:?}:\n{out}"),
            None => assert!(header.is_empty(), "{args:?}: {out}{err}"),
        }
    }
    let (_, out, _) = kubectl::run(&k, &kc, &["get", "sts", "-n", "payments"]).await;
    assert_eq!(kubectl::rows(&out)[1][..2], ["ledger", "2/2"]);
    let (_, out, _) = kubectl::run(&k, &kc, &["get", "jobs", "-n", "payments"]).await;
    assert_eq!(kubectl::rows(&out)[1][..3], ["nightly-report", "Complete", "1/1"]);
    let (_, out, _) = kubectl::run(&k, &kc, &["get", "pods", "-n", "payments", "-l", "job-name=nightly-report"]).await;
    assert_eq!(kubectl::rows(&out)[1][1..3], ["0/1", "Completed"], "{out}");
    // kubectl rollout restart and status of a StatefulSet and a DaemonSet (the defaulted
    // RollingUpdate strategies are what kubectl checks first).
    for (ns, what) in [("payments", "sts/ledger"), ("edge", "ds/log-shipper"), ("payments", "deploy/api")] {
        let (ok, out, err) = kubectl::run(&k, &kc, &["-n", ns, "rollout", "restart", what]).await;
        assert!(ok && out.contains("restarted"), "{what}: {out}{err}");
        let (ok, out, err) = kubectl::run(&k, &kc, &["-n", ns, "rollout", "status", what, "--timeout=20s"]).await;
        assert!(ok, "{what}: {out}{err}");
        // A defaulted StatefulSet has partition 0: kubectl says "partitioned roll out complete".
        assert!(out.contains("successfully rolled out") || out.contains("roll out complete"), "{what}: {out}");
    }
    let (ok, out, err) = kubectl::run(&k, &kc, &["-n", "payments", "rollout", "history", "sts/ledger"]).await;
    assert!(ok && out.lines().filter(|l| l.starts_with(char::is_numeric)).count() == 2, "{out}{err}");
}
