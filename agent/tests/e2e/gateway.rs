//! Issue 6 on kube-sim: nodePorts and the IP kept pinned, collisions reported, a contesting
//! controller outlasted, `repair: false` writes nothing.

use std::time::Duration;

use kube_sim::PatchType;
use serde_json::json;

use crate::common::*;

const REPAIR: &str = "gateway:\n  repair: true\n";

fn node_port(sim: &kube_sim::Sim, name: &str) -> Option<i64> {
    let svc = sim.cluster().get("v1", "services", "istio-system", "istio-ingressgateway")?;
    svc["spec"]["ports"].as_array()?.iter().find(|p| p["name"] == name)?["nodePort"].as_i64()
}

#[tokio::test]
async fn a_kubectl_patched_node_port_is_undone_within_a_second() {
    let sim = cluster().await;
    let agent = start(&sim, &config(REPAIR)).await;
    agent.wait_leader().await;
    if !have("kubectl") {
        return;
    }
    // Record every value http2's nodePort takes, with when it was seen.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(std::time::Instant, i64)>::new()));
    let recorder = {
        let (mut rx, seen) = (sim.cluster().subscribe(), seen.clone());
        tokio::spawn(async move {
            while let Ok(ev) = rx.recv().await {
                if ev.object["metadata"]["name"] != "istio-ingressgateway" {
                    continue;
                }
                let np = ev.object["spec"]["ports"]
                    .as_array()
                    .and_then(|ps| ps.iter().find(|p| p["name"] == "http2"))
                    .and_then(|p| p["nodePort"].as_i64());
                if let Some(np) = np {
                    seen.lock().unwrap().push((std::time::Instant::now(), np));
                }
            }
        })
    };
    kubectl_move_http2(&sim).await;
    let s2 = seen.clone();
    eventually(Duration::from_secs(1), "http2 drifted to 32080 and back to 31380", || {
        let s2 = s2.clone();
        async move {
            let v = s2.lock().unwrap();
            v.iter().position(|(_, np)| *np == 32080).is_some_and(|i| v[i..].iter().any(|(_, np)| *np == 31380))
        }
    })
    .await;
    recorder.abort();
    let v = seen.lock().unwrap().clone();
    let drift = v.iter().find(|(_, np)| *np == 32080).unwrap().0;
    let repair = v.iter().skip_while(|(_, np)| *np != 32080).find(|(_, np)| *np == 31380).unwrap().0;
    let took = repair - drift;
    eprintln!("nodePort drift repaired in {took:?}");
    assert!(took < Duration::from_secs(1), "undone within 1 s: {took:?}");
    assert_eq!(node_port(&sim, "https"), Some(31390), "other ports untouched");
    // The actuator records the success after the API answered: wait for it, bounded.
    agent
        .wait_metrics_line(
            "meshkeeper_gateway_repairs_total{field=\"node_port:http2\",result=\"success\"} 1",
            Duration::from_secs(2),
        )
        .await;
    let c = sim.cluster();
    eventually(Duration::from_secs(2), "GatewayPinRepaired Event", || {
        let found = c
            .list("events.k8s.io/v1", "events", Some("istio-system"))
            .iter()
            .any(|e| e["reason"] == "GatewayPinRepaired");
        async move { found }
    })
    .await;
}

#[tokio::test]
async fn a_recreated_service_is_repinned_and_a_collision_is_reported_not_fought() {
    let sim = cluster().await;
    let agent = start(&sim, &config(REPAIR)).await;
    agent.wait_leader().await;
    let c = sim.cluster();
    // Deleted and recreated with random nodePorts (a reinstall).
    c.delete("v1", "services", "istio-system", "istio-ingressgateway").unwrap();
    let mut svc = kube_sim::seed::ingress_gateway_service();
    for p in svc["spec"]["ports"].as_array_mut().unwrap() {
        p.as_object_mut().unwrap().remove("nodePort");
    }
    c.create("v1", "services", "istio-system", svc).unwrap();
    until(&sim, Duration::from_secs(10), "every port re-pinned", |_| {
        kube_sim::seed::GATEWAY_PORTS.iter().all(|(n, _, np)| node_port(&sim, n) == Some(*np))
    })
    .await;

    // Another Service takes 31400 while tcp has drifted: reported, never fought.
    c.patch(
        "v1",
        "services",
        "istio-system",
        "istio-ingressgateway",
        PatchType::Strategic,
        &json!({"spec": {"ports": [{"port": 31400, "nodePort": 32500}]}}),
        "installer",
    )
    .unwrap();
    let taken = c.create("v1", "services", "shop", json!({"metadata": {"name": "squatter"}, "spec": {"type": "NodePort", "ports": [{"port": 9, "nodePort": 31400}]}}));
    if taken.is_ok() {
        agent.wait_finding("GatewayNodePortTaken", true, Duration::from_secs(5)).await;
        let status = agent.status().await;
        assert!(status.to_string().contains("shop/squatter"), "the holder is named");
        assert_eq!(node_port(&sim, "tcp"), Some(32500));
    } else {
        // Our repair won the race for 31400 before the squatter was created: also correct.
        assert_eq!(node_port(&sim, "tcp"), Some(31400));
    }
}

#[tokio::test]
async fn a_contesting_controller_makes_it_stop_after_n_reverts() {
    let sim = cluster().await;
    let agent = start(
        &sim,
        &config("gateway:\n  repair: true\nrepairs:\n  contest_reverts: 3\n  contest_window_minutes: 10\n"),
    )
    .await;
    agent.wait_leader().await;
    let c = sim.cluster();
    // A controller that puts http2 back on 32080 whenever it sees 31380.
    let fighter = {
        let c = c.clone();
        let mut rx = c.subscribe();
        tokio::spawn(async move {
            let set = |c: &kube_sim::Cluster| {
                let _ = c.patch(
                    "v1",
                    "services",
                    "istio-system",
                    "istio-ingressgateway",
                    PatchType::Apply,
                    &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "istio-ingressgateway"},
                            "spec": {"ports": [{"name": "http2", "port": 80, "protocol": "TCP", "nodePort": 32080}]}}),
                    "istio-operator",
                );
            };
            set(&c);
            while let Ok(ev) = rx.recv().await {
                if ev.object["metadata"]["name"] == "istio-ingressgateway"
                    && ev.object["spec"]["ports"]
                        .as_array()
                        .is_some_and(|ps| ps.iter().any(|p| p["name"] == "http2" && p["nodePort"] == 31380))
                {
                    set(&c);
                }
            }
        })
    };
    agent.wait_finding("RepairContested", true, Duration::from_secs(20)).await;
    assert_eq!(
        agent
            .metric("meshkeeper_gateway_contested{gateway=\"istio-ingressgateway\",target_namespace=\"istio-system\"}")
            .await,
        Some(1.0)
    );
    assert_eq!(
        agent.metric("meshkeeper_repair_contested{check=\"gateway\",field=\"node_port:http2\"}").await,
        Some(1.0)
    );
    let repairs = agent
        .metric("meshkeeper_gateway_repairs_total{field=\"node_port:http2\",result=\"success\"}")
        .await
        .unwrap_or(0.0);
    // The first drift is no revert (meshkeeper had not set the field); each of the 3 repairs
    // is changed back by istio-operator; the third revert makes it contested.
    assert_eq!(repairs, 3.0, "stopped after N reverts");
    let status = agent.status().await.to_string();
    assert!(status.contains("istio-operator"), "the other field manager is named");
    fighter.abort();
}

#[tokio::test]
async fn repair_false_writes_nothing() {
    let sim = cluster().await;
    let agent = start(&sim, &config("gateway:\n  repair: false\n")).await;
    agent.wait_leader().await;
    sim.cluster()
        .patch(
            "v1",
            "services",
            "istio-system",
            "istio-ingressgateway",
            PatchType::Strategic,
            &json!({"spec": {"ports": [{"port": 80, "nodePort": 32080}]}}),
            "test",
        )
        .unwrap();
    agent.wait_finding("GatewayNodePortDrift", true, Duration::from_secs(5)).await;
    assert_eq!(agent.metric("meshkeeper_gateway_drift{field=\"node_port:http2\",gateway=\"istio-ingressgateway\",target_namespace=\"istio-system\"}").await, Some(1.0));
    assert!(writes_by_meshkeeper(&sim, "services").is_empty());
}

#[tokio::test]
async fn integrated_mode_puts_an_edited_ip_back() {
    let sim = cluster().await;
    let c = sim.cluster();
    // Integrated LB mode: the Service is a LoadBalancer with the VIP in spec.loadBalancerIP.
    c.patch(
        "v1",
        "services",
        "istio-system",
        "istio-ingressgateway",
        PatchType::Merge,
        &json!({"spec": {"type": "LoadBalancer", "loadBalancerIP": "10.0.0.50"}}),
        "installer",
    )
    .unwrap();
    let agent =
        start(&sim, &config("gateway:\n  mode: integrated\n  repair: true\n  load_balancer_ip: 10.0.0.50\n")).await;
    agent.wait_leader().await;
    let ip = |sim: &kube_sim::Sim| {
        sim.cluster()
            .get("v1", "services", "istio-system", "istio-ingressgateway")
            .and_then(|s| s["spec"]["loadBalancerIP"].as_str().map(str::to_string))
    };
    let assigned = |sim: &kube_sim::Sim| {
        sim.cluster()
            .get("v1", "services", "istio-system", "istio-ingressgateway")
            .and_then(|s| s["status"]["loadBalancer"]["ingress"][0]["ip"].as_str().map(str::to_string))
    };
    until(&sim, Duration::from_secs(5), "the LB assigned the VIP", |_| assigned(&sim).as_deref() == Some("10.0.0.50"))
        .await;
    assert_eq!(
        agent
            .metric("meshkeeper_gateway_pinned{gateway=\"istio-ingressgateway\",target_namespace=\"istio-system\"}")
            .await,
        Some(1.0)
    );
    if !have("kubectl") {
        return;
    }
    let (ok, out) = kubectl(
        &sim,
        &[
            "-n",
            "istio-system",
            "patch",
            "svc",
            "istio-ingressgateway",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"loadBalancerIP":"10.0.0.99"}}"#,
        ],
    )
    .await;
    assert!(ok, "{out}");
    until(&sim, Duration::from_secs(2), "the IP put back", |_| ip(&sim).as_deref() == Some("10.0.0.50")).await;
    agent
        .wait_metrics_line(
            "meshkeeper_gateway_repairs_total{field=\"load_balancer_ip\",result=\"success\"} 1",
            Duration::from_secs(2),
        )
        .await;
}
