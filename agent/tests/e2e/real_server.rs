//! Issue 9: what a real v1.36 API server showed, reproduced on kube-sim made as strict as
//! the real server. One test per numbered point; each failed against the agent before its fix
//! (see the closing note of the issue for the runs against the old binary).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube_sim::{PatchType, SimOptions};
use serde_json::{Value, json};

use crate::common::*;

fn node_ports(sim: &kube_sim::Sim) -> Vec<(String, Option<i64>)> {
    let svc = sim.cluster().get("v1", "services", "istio-system", "istio-ingressgateway").unwrap_or_default();
    svc["spec"]["ports"]
        .as_array()
        .map(|ps| ps.iter().map(|p| (p["name"].as_str().unwrap_or("").to_string(), p["nodePort"].as_i64())).collect())
        .unwrap_or_default()
}

fn pinned(sim: &kube_sim::Sim) -> bool {
    let want: std::collections::BTreeMap<&str, i64> =
        kube_sim::seed::GATEWAY_PORTS.iter().map(|(n, _, np)| (*n, *np)).collect();
    let now = node_ports(sim);
    !now.is_empty() && now.iter().all(|(n, np)| want.get(n.as_str()).copied() == *np)
}

/// Point 1: a gateway Service created as after a reinstall (nodePorts allocated at random) is
/// pinned with one patch, no contest, no error; a later `kubectl patch` is undone within 1 s.
#[tokio::test]
async fn point1_a_fresh_gateway_service_is_fully_pinned_in_one_patch_and_later_drift_is_undone() {
    let sim = cluster().await;
    let c = sim.cluster();
    c.delete("v1", "services", "istio-system", "istio-ingressgateway").expect("delete the seeded Service");
    let mut svc = kube_sim::seed::ingress_gateway_service();
    for p in svc["spec"]["ports"].as_array_mut().unwrap() {
        p.as_object_mut().unwrap().remove("nodePort");
    }
    c.create("v1", "services", "istio-system", svc).expect("create it without nodePorts");
    assert!(!pinned(&sim), "the server allocated other nodePorts: {:?}", node_ports(&sim));
    sim.clear_requests();
    let agent = start(&sim, &config("gateway:\n  repair: true\n")).await;
    until(&sim, Duration::from_secs(20), "every nodePort pinned", |_| pinned(&sim)).await;
    agent
        .wait_metrics_line(
            "meshkeeper_actions_total{action=\"gateway_pin\",result=\"success\"} 1",
            Duration::from_secs(2),
        )
        .await;
    let writes = writes_by_meshkeeper(&sim, "services");
    assert_eq!(writes.len(), 1, "one patch pins all nine ports: {writes:?}");
    let text = agent.get("/metrics").await.1;
    for bad in ["result=\"conflict\"", "result=\"error\""] {
        // The series exist from the start (at 0), so the first failure shows in increase().
        let line =
            text.lines().find(|l| l.starts_with("meshkeeper_actions_total{action=\"gateway_pin\"") && l.contains(bad));
        assert_eq!(line.map(|l| l.ends_with(" 0")), Some(true), "{bad}:\n{text}");
    }
    assert!(!agent.has_finding("RepairContested").await, "pinning a fresh Service is never a contest");
    if !have("kubectl") {
        return;
    }
    let start_patch = Instant::now();
    kubectl_move_http2(&sim).await;
    let took = until(&sim, Duration::from_secs(1), "http2 back on 31380", |_| pinned(&sim)).await;
    eprintln!(
        "point 1: a later kubectl patch undone {:?} after kubectl returned ({:?} after it started)",
        took,
        start_patch.elapsed()
    );
    assert_eq!(writes_by_meshkeeper(&sim, "services").len(), 2);
    assert!(!agent.has_finding("RepairContested").await);
}

/// Point 2: quiet watches stay open longer than every client timeout: no restart, no re-list.
#[tokio::test]
async fn point2_quiet_watches_outlive_every_client_timeout() {
    // The real server's bookmark interval (about a minute), and a request timeout of 2 s.
    let sim = cluster_with(SimOptions::default().bookmark_interval(Duration::from_secs(60)), true).await;
    let agent = start(&sim, &config("client:\n  timeout_seconds: 2\n")).await;
    agent.wait_ready().await;
    // Ready means every watch has listed; its WATCH request follows the LIST: wait (bounded)
    // until every watch has sent it, so the window below counts only what comes after.
    eventually(Duration::from_secs(5), "one WATCH per LIST", || {
        let sim = &sim;
        async move { requests_by_meshkeeper(sim, "watch", "").len() >= requests_by_meshkeeper(sim, "list", "").len() }
    })
    .await;
    let lists = requests_by_meshkeeper(&sim, "list", "").len();
    let watches = requests_by_meshkeeper(&sim, "watch", "").len();
    // NB: this is the measurement window, not synchronisation: nothing may happen in it.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let text = agent.get("/metrics").await.1;
    let restarts: Vec<&str> = text.lines().filter(|l| l.starts_with("meshkeeper_watch_restarts_total{")).collect();
    assert!(restarts.iter().all(|l| l.ends_with(" 0")), "no watch restarted: {restarts:?}");
    assert_eq!(requests_by_meshkeeper(&sim, "list", "").len(), lists, "no re-list");
    assert_eq!(requests_by_meshkeeper(&sim, "watch", "").len(), watches, "no new watch");
    for l in text.lines().filter(|l| l.starts_with("meshkeeper_watch_lists_total{")) {
        assert!(l.ends_with(" 1"), "one list per watch: {l}");
    }
    for l in text.lines().filter(|l| l.starts_with("meshkeeper_watch_synced{")) {
        assert!(l.ends_with(" 1"), "{l}");
    }
    // Ordinary requests are still bounded: the client's timeout applies to them.
    eprintln!("point 2: {} watches quiet for 7 s with a 2 s request timeout: 0 restarts, 0 re-lists", watches);
}

/// Point 3: without its namespace the agent keeps running as a non-leader, says why, writes
/// nothing, and leads once the namespace exists. Logs are one readable line, without colour.
#[tokio::test]
async fn point3_without_its_namespace_the_agent_keeps_running_and_says_why_it_cannot_lead() {
    let sim = cluster_with(SimOptions::default(), false).await;
    let yaml = config("injection:\n  mode: enforce\n");
    let agent = start_with(&sim, &yaml, &["run", "--log-format", "text"]).await;
    agent.wait_ready().await;
    agent.wait_finding("LeaseNamespaceMissing", true, Duration::from_secs(10)).await;
    let status = agent.status().await;
    assert_eq!(status["role"], "follower");
    assert_eq!(status["leader_election"]["state"], "failing");
    let f =
        status["findings"].as_array().unwrap().iter().find(|f| f["reason"] == "LeaseNamespaceMissing").unwrap().clone();
    let message = f["message"].as_str().unwrap();
    assert!(message.contains("namespaces \"meshkeeper\" not found (404 NotFound)"), "{message}");
    assert!(f["hint"].as_str().unwrap().contains("leader_election.namespace"));
    assert!(agent.has_finding("InjectionLabelMissing").await, "it reports as usual");
    assert!(writes_by_meshkeeper(&sim, "namespaces").is_empty(), "a non-leader writes nothing");
    assert_eq!(agent.metric("meshkeeper_leader").await, Some(0.0));
    let logs = agent.logs();
    assert!(!logs.contains("Status {") && !logs.contains("ListMeta"), "no Debug output:\n{logs}");
    assert!(!logs.contains('\u{1b}'), "no colour escapes when stderr is not a terminal");
    assert!(
        logs.contains("namespaces \\\"meshkeeper\\\" not found (404 NotFound)")
            || logs.contains("namespaces \"meshkeeper\" not found (404 NotFound)"),
        "{logs}"
    );
    // The namespace appears: it takes the Lease and repairs.
    let created = Instant::now();
    sim.cluster().create("v1", "namespaces", "", json!({"metadata": {"name": "meshkeeper"}})).unwrap();
    agent.wait_leader().await;
    eprintln!("point 3: leader {:?} after the namespace was created", created.elapsed());
    until(&sim, Duration::from_secs(10), "shop labelled", |_| label(&sim, "shop", "istio-injection").is_some()).await;
    agent.wait_finding("LeaseNamespaceMissing", false, Duration::from_secs(5)).await;
}

/// Point 4: three replicas, the leader SIGTERMed once and SIGKILLed once; sampled every 100 ms,
/// never two leaders; prints the failover times.
#[tokio::test]
async fn point4_three_replicas_never_two_leaders_and_fast_failover() {
    let sim = cluster().await;
    let le = |id: &str| config_le(&format!("  identity: {id}\n  lease_duration_seconds: 6\n  grace_seconds: 2\n"), "");
    let mut agents = Vec::new();
    for id in ["replica-a", "replica-b", "replica-c"] {
        agents.push(start(&sim, &le(id)).await);
    }
    let addrs: Vec<String> = agents.iter().map(|a| a.addr.clone()).collect();
    let max_leaders = Arc::new(Mutex::new(0usize));
    let samples = Arc::new(Mutex::new(0usize));
    let stop = tokio_util::sync::CancellationToken::new();
    let sampler = {
        let (max_leaders, samples, stop, addrs) = (max_leaders.clone(), samples.clone(), stop.clone(), addrs.clone());
        tokio::spawn(async move {
            let leads = |a: String| async move {
                http(&a, "GET", "/metrics").await.2.lines().any(|l| l == "meshkeeper_leader 1")
            };
            while !stop.is_cancelled() {
                // The replicas are asked one after the other, twice (positions 0..k, then k..2k):
                // one seen leading in both passes led all the time in between, so any other
                // read between those two saying "leader" is two leaders at once. (One pass alone
                // counts a handover within the pass, release then take, as two.)
                let mut first = Vec::new();
                for a in &addrs {
                    first.push(leads(a.clone()).await);
                }
                let mut second = Vec::new();
                for a in &addrs {
                    second.push(leads(a.clone()).await);
                }
                let k = addrs.len();
                let overlapping = (0..k)
                    .filter(|&i| first[i] && second[i])
                    .map(|i| 1 + (0..k).filter(|&j| (j > i && first[j]) || (j < i && second[j])).count())
                    .max();
                let n = overlapping.unwrap_or_else(|| usize::from(first.iter().chain(&second).any(|l| *l)));
                {
                    let mut m = max_leaders.lock().unwrap();
                    *m = (*m).max(n);
                    *samples.lock().unwrap() += 1;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let leader_of = |agents: &Vec<Agent>| {
        let addrs: Vec<String> = agents.iter().map(|a| a.addr.clone()).collect();
        async move {
            for (i, a) in addrs.iter().enumerate() {
                if http(a, "GET", "/metrics").await.2.lines().any(|l| l == "meshkeeper_leader 1") {
                    return Some(i);
                }
            }
            None
        }
    };
    let wait_new_leader = |agents: &Vec<Agent>, not: usize, within: Duration| {
        let addrs: Vec<String> = agents.iter().map(|a| a.addr.clone()).collect();
        async move {
            let start = Instant::now();
            loop {
                for (i, a) in addrs.iter().enumerate() {
                    if i != not && http(a, "GET", "/metrics").await.2.lines().any(|l| l == "meshkeeper_leader 1") {
                        return (i, start.elapsed());
                    }
                }
                assert!(start.elapsed() < within, "no new leader within {within:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let t0 = Instant::now();
    let first = loop {
        if let Some(i) = leader_of(&agents).await {
            break i;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "nobody led");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    agents[first].sigterm();
    let (second, term_failover) = wait_new_leader(&agents, first, Duration::from_secs(5)).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), agents[first].child.wait()).await;
    agents[second].sigkill();
    let _ = agents[second].child.wait().await;
    let killed = Instant::now();
    let (third, _) = wait_new_leader(&agents, second, Duration::from_secs(15)).await;
    let kill_failover = killed.elapsed();
    assert!(third != first && third != second);
    stop.cancel();
    sampler.await.unwrap();
    let (max, n) = (*max_leaders.lock().unwrap(), *samples.lock().unwrap());
    eprintln!(
        "point 4: failover after SIGTERM {term_failover:?}, after SIGKILL {kill_failover:?} (lease 6 s, grace 2 s, retry 2 s); {n} samples, at most {max} leader(s) at once"
    );
    let leadership: Vec<String> = agents
        .iter()
        .enumerate()
        .flat_map(|(i, a)| {
            a.logs().lines().filter(|l| l.contains("leader")).map(|l| format!("replica {i}: {l}")).collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(max, 1, "never two leaders at the same time; leadership logs:\n{}", leadership.join("\n"));
    assert!(term_failover < Duration::from_secs(3), "a released Lease is taken within a couple of seconds");
    assert!(kill_failover <= Duration::from_secs(10), "lease duration + retry period (+ jitter): {kill_failover:?}");
    assert!(kill_failover >= Duration::from_secs(4), "not before the old leader's renew deadline: {kill_failover:?}");
}

/// Point 5: a forbidden list (the commonest install mistake) is a finding before any sync;
/// gauges derived from the unsynced cache are absent, not a false 0; /readyz says why.
#[tokio::test]
async fn point5_permission_problems_are_visible_before_sync_and_raise_no_false_alarm() {
    let sim = cluster_with(SimOptions::default().rbac(true), true).await;
    let c = sim.cluster();
    let rule = |groups: &[&str], resources: &[&str], verbs: &[&str]| json!({"apiGroups": groups, "resources": resources, "verbs": verbs});
    // Everything the agent reads, but pods.
    c.create(
        "rbac.authorization.k8s.io/v1",
        "clusterroles",
        "",
        json!({"metadata": {"name": "meshkeeper-no-pods"}, "rules": [
            rule(&[""], &["namespaces", "nodes", "services"], &["get", "list", "watch"]),
            rule(&["apps"], &["deployments", "replicasets", "statefulsets", "daemonsets"], &["get", "list", "watch"]),
        rule(&[""], &["configmaps"], &["get", "list", "watch"]),
            rule(&["admissionregistration.k8s.io"], &["mutatingwebhookconfigurations"], &["get", "list", "watch"]),
            rule(&["events.k8s.io"], &["events"], &["create", "patch"]),
            rule(&["coordination.k8s.io"], &["leases"], &["get", "create", "update"]),
        ]}),
    )
    .unwrap();
    c.create(
        "rbac.authorization.k8s.io/v1",
        "clusterrolebindings",
        "",
        json!({"metadata": {"name": "meshkeeper-no-pods"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "meshkeeper-no-pods"},
        "subjects": [{"kind": "ServiceAccount", "name": "meshkeeper", "namespace": "meshkeeper"}]}),
    )
    .unwrap();
    let kubeconfig = sim.kubeconfig_for_service_account("meshkeeper", "meshkeeper").unwrap();
    let kc = kubeconfig.to_string_lossy().to_string();
    let agent = start_with(&sim, &config(""), &["run", "--kubeconfig", &kc]).await;
    agent.wait_finding("WatchForbidden", true, Duration::from_secs(10)).await;
    let (code, body) = agent.get("/readyz").await;
    assert_eq!(code, 503);
    // The initial state is a streaming list (a WATCH), so the refusal is the watch's.
    assert!(body.contains("pods (watch failed to start: pods is forbidden"), "{body}");
    assert!(body.contains("(403 Forbidden)"), "{body}");
    let status = agent.status().await;
    assert_eq!(status["watches"]["pods"]["state"], "failing");
    assert!(status["watches"]["pods"]["error"].as_str().unwrap().contains("cannot watch resource \"pods\""));
    let forbidden: Vec<&Value> =
        status["findings"].as_array().unwrap().iter().filter(|f| f["reason"] == "WatchForbidden").collect();
    assert_eq!(forbidden.len(), 1, "only the pods watch is refused: {forbidden:?}");
    let f = forbidden[0].clone();
    assert_eq!(f["object"]["name"], "watch:pods");
    assert_eq!(f["severity"], "error");
    assert!(f["hint"].as_str().unwrap().contains("kubectl auth can-i watch pods"));
    agent.wait_metrics_line("meshkeeper_watch_synced{resource=\"pods\"} 0", Duration::from_secs(5)).await;
    agent.wait_metrics_line("meshkeeper_watch_synced{resource=\"namespaces\"} 1", Duration::from_secs(5)).await;
    let text = agent.get("/metrics").await.1;
    assert!(
        !text.lines().any(|l| l.starts_with("meshkeeper_control_plane_healthy")),
        "no control-plane verdict from a cache that could not list:\n{text}"
    );
    // The injection policy reads namespaces only: it reports as usual.
    agent.wait_finding("InjectionLabelMissing", true, Duration::from_secs(5)).await;
}

/// Point 7: a GitOps tool that keeps removing the label is outlasted: after N reverts
/// meshkeeper stops, names it and raises the contest gauge.
#[tokio::test]
async fn point7_a_tool_that_keeps_removing_the_label_is_not_fought_forever() {
    let sim = cluster().await;
    // The default guard: 3 reverts within 10 minutes.
    let agent = start(&sim, &config("injection:\n  mode: enforce\n")).await;
    agent.wait_leader().await;
    let c = sim.cluster();
    let fighter = {
        let c = c.clone();
        let mut rx = c.subscribe();
        tokio::spawn(async move {
            let mut n = 0;
            let remove = |c: &kube_sim::Cluster, n: i32| {
                // As a GitOps tool would: its manifest has no such label; it stamps its tracking annotation.
                let _ = c.patch(
                    "v1",
                    "namespaces",
                    "",
                    "bookinfo",
                    PatchType::Merge,
                    &json!({"metadata": {"labels": {"istio-injection": null}, "annotations": {"argocd.argoproj.io/tracking-id": format!("bookinfo:/Namespace:{n}")}}}),
                    "argocd-controller",
                );
            };
            remove(&c, n);
            while let Ok(ev) = rx.recv().await {
                if ev.object["kind"] == "Namespace"
                    && ev.object["metadata"]["name"] == "bookinfo"
                    && ev.object["metadata"]["labels"]["istio-injection"] == "enabled"
                {
                    n += 1;
                    remove(&c, n);
                }
            }
        })
    };
    agent.wait_finding("RepairContested", true, Duration::from_secs(20)).await;
    let status = agent.status().await;
    let f = status["findings"].as_array().unwrap().iter().find(|f| f["reason"] == "RepairContested").unwrap().clone();
    assert!(f["message"].as_str().unwrap().contains("argocd-controller"), "{f}");
    assert_eq!(f["object"]["name"], "bookinfo");
    agent
        .wait_metrics_line(
            "meshkeeper_repair_contested{check=\"injection\",field=\"label:istio-injection\"} 1",
            Duration::from_secs(5),
        )
        .await;
    fighter.abort();
    let repairs: Vec<_> = writes_by_meshkeeper(&sim, "namespaces")
        .into_iter()
        .filter(|r| r.name.as_deref() == Some("bookinfo"))
        .collect();
    // The first removal is no revert (meshkeeper had not set the label); each of the three
    // repairs is removed again; the third revert stops it.
    assert_eq!(repairs.len(), 3, "stopped after N reverts: {repairs:?}");
    assert!(label(&sim, "bookinfo", "istio-injection").is_none(), "meshkeeper left it alone");
    let events: Vec<Value> = c
        .list("events.k8s.io/v1", "events", None)
        .into_iter()
        .filter(|e| e["reason"] == "RepairContested" && e["regarding"]["name"] == "bookinfo")
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut events = events;
    while events.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        events = c
            .list("events.k8s.io/v1", "events", None)
            .into_iter()
            .filter(|e| e["reason"] == "RepairContested" && e["regarding"]["name"] == "bookinfo")
            .collect();
    }
    assert!(!events.is_empty(), "a Warning Event on the namespace");
}

/// Point 10: SIGTERM right after a burst of repairs: the Events of the last writes are still
/// published, and the agent exits 0 within 10 s.
#[tokio::test]
async fn point10_the_events_of_the_last_writes_survive_shutdown() {
    let sim = cluster().await;
    // A slow Event API: Events queue up behind each other.
    sim.faults().latency(Some("events"), Duration::from_millis(250));
    let mut agent = start(&sim, &config("injection:\n  mode: enforce\n")).await;
    agent.wait_leader().await;
    until(&sim, Duration::from_secs(10), "shop labelled", |_| label(&sim, "shop", "istio-injection").is_some()).await;
    let c = sim.cluster();
    for ns in ["team-a", "team-b", "team-c"] {
        c.create("v1", "namespaces", "", json!({"metadata": {"name": ns}})).unwrap();
    }
    until(&sim, Duration::from_secs(10), "all three labelled", |_| {
        ["team-a", "team-b", "team-c"].iter().all(|n| label(&sim, n, "istio-injection").is_some())
    })
    .await;
    let t = Instant::now();
    agent.sigterm();
    let status =
        tokio::time::timeout(Duration::from_secs(10), agent.child.wait()).await.expect("exit within 10 s").unwrap();
    eprintln!("point 10: exit {status} {:?} after SIGTERM", t.elapsed());
    assert!(status.success());
    let applied: Vec<String> = c
        .list("events.k8s.io/v1", "events", None)
        .into_iter()
        .filter(|e| e["reason"] == "InjectionLabelApplied")
        .filter_map(|e| e["regarding"]["name"].as_str().map(str::to_string))
        .collect();
    for ns in ["team-a", "team-b", "team-c"] {
        assert!(applied.iter().any(|a| a == ns), "the Event for {ns}'s label was published: {applied:?}");
    }
}
