use std::collections::BTreeMap;

use super::*;
use crate::cache::{ServicePort, Snapshot};
use crate::checks::ApiProbe;
use crate::config::{Profile, Settings};

/// The install guide's ports: (name, port, nodePort), as kube-sim seeds them.
const GUIDE: &[(&str, i64, i64)] = kube_sim::seed::GATEWAY_PORTS;

/// The istio-ingressgateway Service of the install guide, pinned.
fn gateway_svc() -> ServiceInfo {
    ServiceInfo {
        namespace: "istio-system".into(),
        name: "istio-ingressgateway".into(),
        uid: Some("u1".into()),
        resource_version: Some("7".into()),
        type_: "NodePort".into(),
        selector: BTreeMap::new(),
        ports: GUIDE
            .iter()
            .map(|(n, p, np)| ServicePort {
                name: (*n).into(),
                port: *p as i32,
                protocol: "TCP".into(),
                node_port: Some(*np as i32),
            })
            .collect(),
        load_balancer_ip: None,
        annotations: BTreeMap::new(),
        ingress_ips: vec![],
        node_port_managers: BTreeMap::new(),
        ip_managers: vec![],
        writers: vec![],
    }
}

fn other_svc(ns: &str, name: &str, node_port: i32) -> ServiceInfo {
    let mut s = gateway_svc();
    s.namespace = ns.into();
    s.name = name.into();
    s.ports = vec![ServicePort { name: "web".into(), port: 8080, protocol: "TCP".into(), node_port: Some(node_port) }];
    s
}

fn port<'a>(s: &'a mut ServiceInfo, name: &str) -> &'a mut ServicePort {
    s.ports.iter_mut().find(|p| p.name == name).unwrap()
}

fn manual() -> Settings {
    Settings::defaults(Profile::AsmOnprem)
}

fn integrated(annotation: &str) -> Settings {
    let mut s = manual();
    s.gateway.mode = GatewayMode::Integrated;
    s.gateway.load_balancer_ip = Some("10.0.0.50".parse().unwrap());
    s.gateway.load_balancer_ip_annotation = annotation.into();
    s
}

fn lb(mut s: ServiceInfo, ip: Option<&str>, status: &[&str]) -> ServiceInfo {
    s.type_ = "LoadBalancer".into();
    s.load_balancer_ip = ip.map(str::to_string);
    s.ingress_ips = status.iter().map(|s| s.to_string()).collect();
    s
}

type Case = (&'static str, Settings, Option<ServiceInfo>, Vec<ServiceInfo>, Vec<&'static str>);

fn reasons(
    settings: &Settings,
    svc: Option<ServiceInfo>,
    others: Vec<ServiceInfo>,
    now: i64,
) -> (Vec<&'static str>, GatewayStatus, Vec<Remedy>) {
    let mut services: Vec<ServiceInfo> = others;
    services.extend(svc);
    let snap = Snapshot { services: crate::cache::Index::from_objects(services), ..Default::default() };
    let api = ApiProbe::default();
    let health = Default::default();
    let view = View::of(settings, &api, &snap, &health, now);
    let st = assess(&view);
    let Evaluation { report, remedies, .. } = GatewayCheck.evaluate(&view);
    (report.findings().map(|f| f.reason).collect(), st, remedies)
}

#[test]
fn detection_table() {
    let cases: Vec<Case> = vec![
        ("manual, pinned", manual(), Some(gateway_svc()), vec![], vec![]),
        ("manual accepts a LoadBalancer Service", manual(), Some(lb(gateway_svc(), None, &[])), vec![], vec![]),
        ("service missing", manual(), None, vec![], vec!["GatewayServiceMissing"]),
        (
            "manual, ClusterIP",
            manual(),
            Some({
                let mut s = gateway_svc();
                s.type_ = "ClusterIP".into();
                s
            }),
            vec![],
            vec!["GatewayTypeWrong"],
        ),
        (
            "one nodePort drifted",
            manual(),
            Some({
                let mut s = gateway_svc();
                port(&mut s, "http2").node_port = Some(32001);
                s
            }),
            vec![],
            vec!["GatewayNodePortDrift"],
        ),
        (
            "two nodePorts drifted",
            manual(),
            Some({
                let mut s = gateway_svc();
                port(&mut s, "http2").node_port = Some(32001);
                port(&mut s, "tls").node_port = Some(32002);
                s
            }),
            vec![],
            vec!["GatewayNodePortDrift", "GatewayNodePortDrift"],
        ),
        (
            "nodePort unset",
            manual(),
            Some({
                let mut s = gateway_svc();
                port(&mut s, "https").node_port = None;
                s
            }),
            vec![],
            vec!["GatewayNodePortDrift"],
        ),
        (
            "wanted nodePort held elsewhere",
            manual(),
            Some({
                let mut s = gateway_svc();
                port(&mut s, "http2").node_port = Some(32001);
                s
            }),
            vec![other_svc("shop", "web", 31380)],
            vec!["GatewayNodePortTaken"],
        ),
        (
            "port renamed",
            manual(),
            Some({
                let mut s = gateway_svc();
                port(&mut s, "http2").name = "http".into();
                s
            }),
            vec![],
            vec!["GatewayPortMissing"],
        ),
        (
            "port removed",
            manual(),
            Some({
                let mut s = gateway_svc();
                s.ports.retain(|p| p.name != "https-kiali");
                s
            }),
            vec![],
            vec!["GatewayPortMissing"],
        ),
        (
            "extra ports left alone",
            manual(),
            Some({
                let mut s = gateway_svc();
                s.ports.push(ServicePort {
                    name: "extra".into(),
                    port: 9999,
                    protocol: "TCP".into(),
                    node_port: Some(32222),
                });
                s
            }),
            vec![],
            vec![],
        ),
        (
            "unpinned port (0) may drift",
            {
                let mut s = manual();
                s.gateway.node_ports.insert("https-kiali".into(), 0);
                s
            },
            Some({
                let mut s = gateway_svc();
                port(&mut s, "https-kiali").node_port = Some(32500);
                s
            }),
            vec![],
            vec![],
        ),
        (
            "another Service with an unrelated nodePort",
            manual(),
            Some(gateway_svc()),
            vec![other_svc("shop", "web", 30001)],
            vec![],
        ),
        (
            "manual mode ignores the IP",
            manual(),
            Some(lb(gateway_svc(), Some("1.2.3.4"), &["1.2.3.4"])),
            vec![],
            vec![],
        ),
        (
            "integrated, pinned",
            integrated(""),
            Some(lb(gateway_svc(), Some("10.0.0.50"), &["10.0.0.50"])),
            vec![],
            vec![],
        ),
        (
            "integrated, IP field edited",
            integrated(""),
            Some(lb(gateway_svc(), Some("10.0.0.99"), &["10.0.0.50"])),
            vec![],
            vec!["GatewayIpDrift"],
        ),
        (
            "integrated, IP field unset",
            integrated(""),
            Some(lb(gateway_svc(), None, &["10.0.0.50"])),
            vec![],
            vec!["GatewayIpDrift"],
        ),
        (
            "integrated, status shows another IP",
            integrated(""),
            Some(lb(gateway_svc(), Some("10.0.0.50"), &["10.0.0.77"])),
            vec![],
            vec!["GatewayIpNotAssigned"],
        ),
        (
            "integrated, no IP assigned yet",
            integrated(""),
            Some(lb(gateway_svc(), Some("10.0.0.50"), &[])),
            vec![],
            vec!["GatewayIpNotAssigned"],
        ),
        (
            "integrated, NodePort type",
            integrated(""),
            Some({
                let mut s = gateway_svc();
                s.load_balancer_ip = Some("10.0.0.50".into());
                s
            }),
            vec![],
            vec!["GatewayTypeWrong"],
        ),
        (
            "integrated ignores nodePorts",
            integrated(""),
            Some({
                let mut s = lb(gateway_svc(), Some("10.0.0.50"), &["10.0.0.50"]);
                port(&mut s, "http2").node_port = Some(32001);
                s
            }),
            vec![],
            vec![],
        ),
        (
            "annotation mode, pinned",
            integrated("metallb.universe.tf/loadBalancerIPs"),
            Some({
                let mut s = lb(gateway_svc(), None, &["10.0.0.50"]);
                s.annotations.insert("metallb.universe.tf/loadBalancerIPs".into(), "10.0.0.50".into());
                s
            }),
            vec![],
            vec![],
        ),
        (
            "annotation mode, annotation missing",
            integrated("metallb.universe.tf/loadBalancerIPs"),
            Some(lb(gateway_svc(), Some("10.0.0.50"), &["10.0.0.50"])),
            vec![],
            vec!["GatewayIpDrift"],
        ),
        (
            "annotation mode, wrong annotation",
            integrated("metallb.universe.tf/loadBalancerIPs"),
            Some({
                let mut s = lb(gateway_svc(), None, &["10.0.0.50"]);
                s.annotations.insert("metallb.universe.tf/loadBalancerIPs".into(), "10.0.0.1".into());
                s
            }),
            vec![],
            vec!["GatewayIpDrift"],
        ),
        (
            "off",
            {
                let mut s = manual();
                s.gateway.mode = GatewayMode::Off;
                s
            },
            Some({
                let mut s = gateway_svc();
                port(&mut s, "http2").node_port = Some(32001);
                s
            }),
            vec![],
            vec!["GatewayNodePortDrift"],
        ),
    ];
    assert!(cases.len() >= 20);
    for (name, settings, svc, others, want) in cases {
        let (got, _, _) = reasons(&settings, svc, others, 1_000_000);
        // "off" still evaluates when called directly; the registry does not register the check then.
        if settings.gateway.mode == GatewayMode::Off {
            assert!(got.is_empty(), "{name}: off detects nothing: {got:?}");
            continue;
        }
        assert_eq!(got, want, "case {name:?}");
    }
}

/// The Service as the API server returns it, for applying patches.
fn as_json(s: &ServiceInfo) -> serde_json::Value {
    let mut v = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": s.name, "namespace": s.namespace, "annotations": s.annotations},
        "spec": {"type": s.type_, "ports": s.ports.iter().map(|p| {
            let mut o = json!({"name": p.name, "port": p.port, "protocol": p.protocol});
            if let Some(np) = p.node_port { o["nodePort"] = json!(np); }
            o
        }).collect::<Vec<_>>()},
    });
    if let Some(ip) = &s.load_balancer_ip {
        v["spec"]["loadBalancerIP"] = json!(ip);
    }
    if s.annotations.is_empty() {
        v["metadata"].as_object_mut().unwrap().remove("annotations");
    }
    v
}

fn remedy_for(settings: &Settings, svc: &ServiceInfo) -> Remedy {
    reasons(settings, Some(svc.clone()), vec![], 1_000_000).2.pop().expect("a remedy")
}

/// The one JSON patch the planner sends for all the remedy's fields.
fn json_ops(r: &Remedy) -> json_patch::Patch {
    serde_json::from_value(Value::Array(r.patch_for(&r.fields))).unwrap()
}

#[test]
fn node_port_patch_repairs_only_its_port_and_refuses_a_concurrent_change() {
    let mut drifted = gateway_svc();
    port(&mut drifted, "http2").node_port = Some(32001);
    let r = remedy_for(&manual(), &drifted);
    assert_eq!(r.fields.len(), 1);
    assert_eq!(r.fields[0].field, "node_port:http2");
    assert_eq!(
        serde_json::to_value(json_ops(&r)).unwrap(),
        json!([
            {"op": "test", "path": "/spec/ports/1/name", "value": "http2"},
            {"op": "test", "path": "/spec/ports/1/nodePort", "value": 32001},
            {"op": "replace", "path": "/spec/ports/1/nodePort", "value": 31380},
        ])
    );
    // Applied to the live object: only that port changes.
    let mut live = as_json(&drifted);
    json_patch::patch(&mut live, &json_ops(&r)).unwrap();
    assert_eq!(live, as_json(&gateway_svc()));

    // Someone changed another port meanwhile: the patch still applies and keeps their change.
    let mut concurrent = drifted.clone();
    port(&mut concurrent, "tls").node_port = Some(32100);
    let mut live = as_json(&concurrent);
    json_patch::patch(&mut live, &json_ops(&r)).unwrap();
    assert_eq!(live["spec"]["ports"][8]["nodePort"], 32100);
    assert_eq!(live["spec"]["ports"][1]["nodePort"], 31380);

    // Someone changed the same port meanwhile: the test fails, nothing is clobbered.
    let mut same = drifted.clone();
    port(&mut same, "http2").node_port = Some(32002);
    let mut live = as_json(&same);
    assert!(json_patch::patch(&mut live, &json_ops(&r)).is_err());

    // The ports were reordered meanwhile: the name test fails instead of changing the wrong port.
    let mut reordered = drifted.clone();
    reordered.ports.swap(1, 2);
    let mut live = as_json(&reordered);
    assert!(json_patch::patch(&mut live, &json_ops(&r)).is_err());
}

#[test]
fn ip_patches_for_the_field_and_for_annotations() {
    let svc = lb(gateway_svc(), Some("10.0.0.99"), &[]);
    let r = remedy_for(&integrated(""), &svc);
    let mut live = as_json(&svc);
    json_patch::patch(&mut live, &json_ops(&r)).unwrap();
    assert_eq!(live["spec"]["loadBalancerIP"], "10.0.0.50");

    let svc = lb(gateway_svc(), None, &[]);
    let r = remedy_for(&integrated(""), &svc);
    let mut live = as_json(&svc);
    json_patch::patch(&mut live, &json_ops(&r)).unwrap();
    assert_eq!(live["spec"]["loadBalancerIP"], "10.0.0.50");

    // No annotations at all: the map is created with the one key.
    let key = "metallb.universe.tf/loadBalancerIPs";
    let svc = lb(gateway_svc(), None, &[]);
    let r = remedy_for(&integrated(key), &svc);
    let mut live = as_json(&svc);
    json_patch::patch(&mut live, &json_ops(&r)).unwrap();
    assert_eq!(live["metadata"]["annotations"][key], "10.0.0.50");

    // Other annotations survive; the '/' in the key is escaped in the pointer.
    let mut svc = lb(gateway_svc(), None, &[]);
    svc.annotations.insert("team".into(), "edge".into());
    svc.annotations.insert(key.into(), "10.0.0.1".into());
    let r = remedy_for(&integrated(key), &svc);
    let mut live = as_json(&svc);
    json_patch::patch(&mut live, &json_ops(&r)).unwrap();
    assert_eq!(live["metadata"]["annotations"], json!({"team": "edge", key: "10.0.0.50"}));
}

#[test]
fn collisions_are_reported_not_fought() {
    let mut drifted = gateway_svc();
    port(&mut drifted, "http2").node_port = Some(32001);
    let (got, _, remedies) = reasons(&manual(), Some(drifted.clone()), vec![other_svc("shop", "web", 31380)], 1);
    assert_eq!(got, ["GatewayNodePortTaken"]);
    assert!(remedies.is_empty(), "never fight over a nodePort another Service holds");
    let (got, _, remedies) = reasons(&manual(), Some(drifted), vec![], 1);
    assert_eq!(got, ["GatewayNodePortDrift"]);
    assert_eq!(remedies.len(), 1, "the remedy is proposed whatever gateway.repair says; the planner decides");
}

#[test]
fn a_freshly_created_service_is_pinned_by_one_patch() {
    // As after a reinstall: NodePort, the guide's port names, nodePorts allocated at random.
    let mut fresh = gateway_svc();
    for (i, p) in fresh.ports.iter_mut().enumerate() {
        p.node_port = Some(30_500 + i as i32);
    }
    fresh.ports[3].node_port = None;
    let r = remedy_for(&manual(), &fresh);
    assert_eq!(r.fields.len(), 9, "every pinned port is one field of one remedy");
    assert!(r.fields.iter().all(|f| f.owners.is_empty()), "allocated nodePorts have no owner");
    let mut live = as_json(&fresh);
    json_patch::patch(&mut live, &json_ops(&r)).unwrap();
    assert_eq!(live, as_json(&gateway_svc()), "one patch pins them all");
    // Someone moved one port meanwhile: the whole patch fails (422) and is re-planned.
    let mut moved = fresh.clone();
    port(&mut moved, "https").node_port = Some(32222);
    let mut live = as_json(&moved);
    assert!(json_patch::patch(&mut live, &json_ops(&r)).is_err());
}

#[test]
fn the_remedy_names_who_owns_a_drifted_port() {
    let mut drifted = gateway_svc();
    port(&mut drifted, "http2").node_port = Some(32001);
    drifted.node_port_managers.insert(80, vec!["meshkeeper".into(), "istio-operator".into()]);
    let r = remedy_for(&manual(), &drifted);
    assert_eq!(r.fields[0].owners, ["istio-operator"]);
    assert_eq!(r.resource_version.as_deref(), Some("7"));
}

#[test]
fn gauges() {
    let mut drifted = gateway_svc();
    port(&mut drifted, "http2").node_port = Some(32001);
    let s = manual();
    let (_, st, _) = reasons(&s, Some(drifted), vec![], 1);
    let got = samples(&st, &s.gateway, false);
    let svc = |field: Option<&str>| {
        let mut l = vec!["istio-system".to_string(), "istio-ingressgateway".to_string()];
        l.extend(field.map(str::to_string));
        l
    };
    assert!(got.contains(&(2, svc(None), 0.0)));
    assert!(got.contains(&(0, svc(None), 0.0)));
    assert!(got.contains(&(1, svc(Some("node_port:http2")), 1.0)));
    assert!(got.contains(&(1, svc(Some("node_port:tls")), 0.0)));
    assert_eq!(got.iter().filter(|(f, _, _)| *f == 1).count(), 9);
    let (_, st, _) = reasons(&s, Some(gateway_svc()), vec![], 1);
    assert!(samples(&st, &s.gateway, false).contains(&(0, svc(None), 1.0)));
    assert!(samples(&st, &s.gateway, true).contains(&(2, svc(None), 1.0)));
    // The Service is gone: not pinned, and no field drifts (the alert on pinned == 0 covers it).
    let (_, st, _) = reasons(&s, None, vec![], 1);
    let gone = samples(&st, &s.gateway, false);
    assert!(gone.contains(&(0, svc(None), 0.0)));
    assert!(gone.iter().filter(|(f, _, _)| *f == 1).all(|(_, _, v)| *v == 0.0));
}
