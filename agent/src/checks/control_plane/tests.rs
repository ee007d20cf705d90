//! Table tests for every control-plane rule, over a snapshot of a healthy asm-onprem cluster
//! that each case breaks in one way. Certificates are generated here with rcgen.

use super::*;
use crate::cache::{ContainerInfo, Index, NodeInfo, Selector, ServiceInfo, Snapshot, WebhookConfigInfo, WebhookInfo};
use crate::checks::ApiProbe;
use crate::config::{Profile, Settings};
use crate::findings::Outcome;

/// 2026-11-25T00:00:00Z
const NOW: i64 = 1_795_564_800;
const DAY: i64 = 86_400;
const VERSION: &str = "1.4.10-asm.18";

/// A self-signed CA valid from `from` to `until` (unix seconds), as PEM.
fn ca_pem(from: i64, until: i64) -> Vec<u8> {
    let mut params =
        rcgen::CertificateParams::new(vec!["istio-sidecar-injector.istio-system.svc".to_string()]).unwrap();
    params.not_before = time::OffsetDateTime::from_unix_timestamp(from).unwrap();
    params.not_after = time::OffsetDateTime::from_unix_timestamp(until).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().pem().into_bytes()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn deployment(ns: &str, name: &str, image: &str, desired: i32, available: i32) -> DeploymentInfo {
    DeploymentInfo {
        namespace: ns.into(),
        name: name.into(),
        uid: None,
        labels: labels(&[("app", name)]),
        selector: Selector { match_labels: labels(&[("app", name)]), match_expressions: vec![] },
        desired,
        available,
        ready: available,
        updated: desired,
        images: vec![("main".into(), image.into())],
        rollout: Default::default(),
    }
}

fn container(name: &str, image: &str, ready: bool) -> ContainerInfo {
    ContainerInfo {
        name: name.into(),
        image: image.into(),
        ready,
        restart_count: 0,
        waiting_reason: None,
        last_terminated_at: None,
        native_sidecar: false,
    }
}

fn pod(ns: &str, app: &str, i: usize, ready: bool) -> PodInfo {
    PodInfo::test(ns, &format!("{app}-{i}"))
        .with_labels(&[("app", app)])
        .set_ready(ready)
        .with_containers(vec![container("main", "x", ready)])
}

fn rs(deployment: &str, name: &str, revision: u64) -> crate::cache::ReplicaSetInfo {
    crate::cache::ReplicaSetInfo {
        namespace: "istio-system".into(),
        name: name.into(),
        owner: Some(("Deployment".into(), deployment.into())),
        revision,
        replicas: 1,
    }
}

fn image(name: &str) -> String {
    match name {
        "promsd" => "prom/prometheus:v2.8.0".into(),
        n => format!("gcr.io/gke-release/asm/{}:{VERSION}", n.trim_start_matches("istio-")),
    }
}

/// The install guide's cluster, healthy.
fn healthy() -> Snapshot {
    let settings = Settings::defaults(Profile::AsmOnprem);
    let mut deployments = Vec::new();
    let mut pods = Vec::new();
    for c in &settings.control_plane.components {
        deployments.push(deployment("istio-system", &c.name, &image(&c.name), 1, 1));
        pods.push(pod("istio-system", &c.name, 0, true));
    }
    // GKE on VMware's own pieces: never the mesh.
    deployments.push(deployment("gke-system", "istio-pilot", "gke.gcr.io/pilot:1.3.6-gke.0", 1, 1));
    deployments.push(deployment("gke-system", "istio-ingressgateway", "gke.gcr.io/proxyv2:1.3.6-gke.0", 1, 1));
    deployments.push(deployment("kube-system", "istio-citadel", "gke.gcr.io/citadel:1.3.6-gke.0", 1, 1));
    let service = ServiceInfo {
        selector: labels(&[("app", "istio-sidecar-injector")]),
        ..ServiceInfo::test("istio-system", "istio-sidecar-injector")
    };
    let webhook = WebhookConfigInfo {
        name: "istio-sidecar-injector".into(),
        uid: None,
        webhooks: vec![WebhookInfo {
            name: "sidecar-injector.istio.io".into(),
            namespace_selector: Some(Selector {
                match_labels: labels(&[("istio-injection", "enabled")]),
                ..Default::default()
            }),
            object_selector: None,
            service: Some(("istio-system".into(), "istio-sidecar-injector".into(), Some("/inject".into()))),
            url: None,
            ca_bundle: Some(ca_pem(NOW - 30 * DAY, NOW + 365 * DAY)),
            failure_policy: Some("Fail".into()),
        }],
    };
    let nodes = (0..4).map(|i| NodeInfo::test(&format!("node-{i}"), 1000, 3_750_000_000));
    Snapshot {
        deployments: Index::from_objects(deployments),
        pods: Index::from_objects(pods),
        services: Index::from_objects([service]),
        webhooks: Index::from_objects([webhook]),
        nodes: Index::from_objects(nodes),
        ..Default::default()
    }
}

fn evaluate(snap: &Snapshot, settings: &Settings, api: &ApiProbe) -> (CheckReport, ControlPlaneStatus) {
    let health = Default::default();
    let view = View::of(settings, api, snap, &health, NOW);
    let st = assess(&view);
    (report(&st, &view, "Control plane"), st)
}

fn reasons(r: &CheckReport) -> Vec<(&'static str, Severity)> {
    r.findings().map(|f| (f.reason, f.severity)).collect()
}

fn mod_dep(s: &mut Snapshot, name: &str, f: impl FnOnce(&mut DeploymentInfo)) {
    let mut d = s.deployments.get(&format!("istio-system/{name}")).unwrap().clone();
    f(&mut d);
    s.deployments.apply(d);
}

fn mod_pod(s: &mut Snapshot, name: &str, f: impl FnOnce(&mut PodInfo)) {
    let mut p = s.pods.get(&format!("istio-system/{name}")).unwrap().clone();
    f(&mut p);
    s.pods.apply(p);
}

fn mod_webhook(s: &mut Snapshot, f: impl FnOnce(&mut WebhookInfo)) {
    let mut w = s.webhooks.get("istio-sidecar-injector").unwrap().clone();
    f(&mut w.webhooks[0]);
    s.webhooks.apply(w);
}

type Case = (&'static str, Box<dyn Fn(&mut Snapshot, &mut Settings, &mut ApiProbe)>, Vec<(&'static str, Severity)>);

#[test]
fn every_rule() {
    use Severity::*;
    let cases: Vec<Case> = vec![
        ("healthy cluster", Box::new(|_, _, _| {}), vec![]),
        (
            "component missing",
            Box::new(|s, _, _| s.deployments.delete("istio-system/istio-pilot")),
            vec![("ComponentMissing", Error)],
        ),
        (
            "scaled to zero",
            Box::new(|s, _, _| {
                mod_dep(s, "istio-pilot", |d| {
                    d.desired = 0;
                    d.available = 0;
                });
                s.pods.delete("istio-system/istio-pilot-0");
            }),
            vec![("ComponentUnavailable", Error)],
        ),
        (
            "0/1 available",
            Box::new(|s, _, _| mod_dep(s, "istio-galley", |d| d.available = 0)),
            vec![("ComponentUnavailable", Error)],
        ),
        (
            "pods not ready though status says available",
            Box::new(|s, _, _| mod_pod(s, "istio-citadel-0", |p| *p = p.clone().set_ready(false))),
            vec![("ComponentUnavailable", Error)],
        ),
        (
            "terminating pod does not count as ready",
            Box::new(|s, _, _| mod_pod(s, "istio-citadel-0", |p| *p = p.clone().set_terminating())),
            vec![("ComponentUnavailable", Error)],
        ),
        (
            "degraded above minimum",
            Box::new(|s, _, _| {
                mod_dep(s, "istio-pilot", |d| d.desired = 2);
            }),
            vec![("ComponentDegraded", Warning)],
        ),
        (
            "min_ready 2 not met",
            Box::new(|s, st, _| {
                st.control_plane.components[3].min_ready = 2;
                mod_dep(s, "istio-pilot", |d| {
                    d.desired = 2;
                    d.available = 2;
                });
            }),
            vec![("ComponentUnavailable", Error)],
        ),
        (
            "min_ready 2 met",
            Box::new(|s, st, _| {
                st.control_plane.components[3].min_ready = 2;
                mod_dep(s, "istio-pilot", |d| {
                    d.desired = 2;
                    d.available = 2;
                });
                s.pods.apply(pod("istio-system", "istio-pilot", 1, true));
            }),
            vec![],
        ),
        (
            "CrashLoopBackOff",
            Box::new(|s, _, _| {
                mod_pod(s, "istio-pilot-0", |p| p.containers_mut()[0].waiting_reason = Some("CrashLoopBackOff".into()))
            }),
            vec![("ComponentCrashLooping", Error)],
        ),
        (
            "ImagePullBackOff",
            Box::new(|s, _, _| {
                mod_pod(s, "promsd-0", |p| p.containers_mut()[0].waiting_reason = Some("ImagePullBackOff".into()))
            }),
            vec![("ComponentCrashLooping", Error)],
        ),
        (
            "benign waiting reason",
            Box::new(|s, _, _| {
                mod_pod(s, "promsd-0", |p| p.containers_mut()[0].waiting_reason = Some("ContainerCreating".into()))
            }),
            vec![],
        ),
        (
            "restarted within the window",
            Box::new(|s, _, _| {
                mod_pod(s, "istio-galley-0", |p| {
                    p.containers_mut()[0].restart_count = 3;
                    p.containers_mut()[0].last_terminated_at = Some(NOW - 120);
                })
            }),
            vec![("ComponentCrashLooping", Error)],
        ),
        (
            "one restart in the window is not a crash loop",
            Box::new(|s, _, _| {
                mod_pod(s, "istio-galley-0", |p| {
                    p.containers_mut()[0].restart_count = 1;
                    p.containers_mut()[0].last_terminated_at = Some(NOW - 120);
                })
            }),
            vec![],
        ),
        (
            "restart_threshold 1 makes one restart count",
            Box::new(|s, st, _| {
                st.control_plane.restart_threshold = 1;
                mod_pod(s, "istio-galley-0", |p| {
                    p.containers_mut()[0].restart_count = 1;
                    p.containers_mut()[0].last_terminated_at = Some(NOW - 120);
                })
            }),
            vec![("ComponentCrashLooping", Error)],
        ),
        (
            "a terminating crash-looping pod is ignored",
            Box::new(|s, _, _| {
                let mut old = pod("istio-system", "istio-galley", 7, false).set_terminating();
                old.containers_mut()[0].waiting_reason = Some("CrashLoopBackOff".into());
                s.pods.apply(old);
            }),
            vec![],
        ),
        (
            "pods of an old ReplicaSet are ignored during a rollout",
            Box::new(|s, _, _| {
                s.replicasets.apply(rs("istio-galley", "istio-galley-old", 1));
                s.replicasets.apply(rs("istio-galley", "istio-galley-new", 2));
                mod_pod(s, "istio-galley-0", |p| {
                    p.owner = Some(std::sync::Arc::new(("ReplicaSet".into(), "istio-galley-new".into())))
                });
                let mut old = pod("istio-system", "istio-galley", 8, false);
                old.owner = Some(std::sync::Arc::new(("ReplicaSet".into(), "istio-galley-old".into())));
                old.containers_mut()[0].waiting_reason = Some("CrashLoopBackOff".into());
                s.pods.apply(old);
            }),
            vec![],
        ),
        (
            "a selector with matchExpressions only still selects its pods",
            Box::new(|s, _, _| {
                mod_dep(s, "istio-pilot", |d| {
                    d.selector = Selector {
                        match_labels: BTreeMap::new(),
                        match_expressions: vec![("app".into(), "In".into(), vec!["istio-pilot".into()])],
                    }
                })
            }),
            vec![],
        ),
        (
            "restarted long ago",
            Box::new(|s, _, _| {
                mod_pod(s, "istio-galley-0", |p| {
                    p.containers_mut()[0].restart_count = 3;
                    p.containers_mut()[0].last_terminated_at = Some(NOW - 3600);
                })
            }),
            vec![],
        ),
        (
            "version skew",
            Box::new(|s, _, _| {
                mod_dep(s, "istio-pilot", |d| d.images[0].1 = "gcr.io/gke-release/asm/pilot:1.4.9-asm.1".into())
            }),
            vec![("VersionSkew", Warning)],
        ),
        (
            "promsd's Prometheus tag is not skew",
            Box::new(|s, _, _| mod_dep(s, "promsd", |d| d.images[0].1 = "prom/prometheus:v2.40.0".into())),
            vec![],
        ),
        ("expected version met", Box::new(|_, st, _| st.control_plane.expected_version = VERSION.into()), vec![]),
        (
            "expected version not met by any",
            Box::new(|_, st, _| st.control_plane.expected_version = "1.5.0".into()),
            vec![("UnexpectedVersion", Error); 5],
        ),
        (
            "webhook missing",
            Box::new(|s, _, _| s.webhooks.delete("istio-sidecar-injector")),
            vec![("InjectorWebhookMissing", Error)],
        ),
        (
            "webhook service missing",
            Box::new(|s, _, _| s.services.delete("istio-system/istio-sidecar-injector")),
            vec![("InjectorServiceMissing", Error)],
        ),
        (
            "webhook service without ready pods",
            Box::new(|s, _, _| {
                mod_pod(s, "istio-sidecar-injector-0", |p| *p = p.clone().with_labels(&[("app", "other")]))
            }),
            vec![("ComponentUnavailable", Error), ("InjectorNoReadyBackend", Error)],
        ),
        (
            "caBundle missing",
            Box::new(|s, _, _| mod_webhook(s, |w| w.ca_bundle = None)),
            vec![("CaBundleMissing", Error)],
        ),
        (
            "caBundle empty",
            Box::new(|s, _, _| mod_webhook(s, |w| w.ca_bundle = Some(b"  \n".to_vec()))),
            vec![("CaBundleMissing", Error)],
        ),
        (
            "caBundle garbage",
            Box::new(|s, _, _| {
                mod_webhook(s, |w| {
                    w.ca_bundle =
                        Some(b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n".to_vec())
                })
            }),
            vec![("CaBundleInvalid", Error)],
        ),
        (
            "caBundle holds only a key",
            Box::new(|s, _, _| {
                mod_webhook(s, |w| w.ca_bundle = Some(rcgen::KeyPair::generate().unwrap().serialize_pem().into_bytes()))
            }),
            vec![("CaBundleInvalid", Error)],
        ),
        (
            "CA expired",
            Box::new(|s, _, _| mod_webhook(s, |w| w.ca_bundle = Some(ca_pem(NOW - 400 * DAY, NOW - DAY)))),
            vec![("CaExpired", Error)],
        ),
        (
            "CA expiring in 10 days",
            Box::new(|s, _, _| mod_webhook(s, |w| w.ca_bundle = Some(ca_pem(NOW - 100 * DAY, NOW + 10 * DAY)))),
            vec![("CaExpiringSoon", Warning)],
        ),
        (
            "CA expiring in 10 days, warning at 7",
            Box::new(|s, st, _| {
                st.control_plane.cert_expiry_warning_days = 7;
                mod_webhook(s, |w| w.ca_bundle = Some(ca_pem(NOW - 100 * DAY, NOW + 10 * DAY)));
            }),
            vec![],
        ),
        (
            "a bundle stays valid through its latest certificate; an expiring extra one is info",
            Box::new(|s, _, _| {
                mod_webhook(s, |w| {
                    let mut b = ca_pem(NOW - DAY, NOW + 900 * DAY);
                    b.extend(ca_pem(NOW - DAY, NOW + 5 * DAY));
                    w.ca_bundle = Some(b);
                })
            }),
            vec![("CaBundleRootExpiringSoon", Info)],
        ),
        (
            "an expired old root during a rotation is a warning, not CaExpired",
            Box::new(|s, _, _| {
                mod_webhook(s, |w| {
                    let mut b = ca_pem(NOW - 400 * DAY, NOW - 2 * DAY);
                    b.extend(ca_pem(NOW - DAY, NOW + 365 * DAY));
                    w.ca_bundle = Some(b);
                })
            }),
            vec![("CaBundleRootExpired", Warning)],
        ),
        (
            "every certificate of the bundle expired",
            Box::new(|s, _, _| {
                mod_webhook(s, |w| {
                    let mut b = ca_pem(NOW - 400 * DAY, NOW - 2 * DAY);
                    b.extend(ca_pem(NOW - 300 * DAY, NOW - DAY));
                    w.ca_bundle = Some(b);
                })
            }),
            vec![("CaExpired", Error)],
        ),
        (
            "a URL webhook (managed or remote istiod) needs no Service and no caBundle",
            Box::new(|s, _, _| {
                mod_webhook(s, |w| {
                    w.service = None;
                    w.url = Some("https://istiod.example.com:15017/inject".into());
                    w.ca_bundle = None;
                })
            }),
            vec![],
        ),
        (
            "a URL webhook's caBundle is still checked",
            Box::new(|s, _, _| {
                mod_webhook(s, |w| {
                    w.service = None;
                    w.url = Some("https://istiod.example.com/inject".into());
                    w.ca_bundle = Some(ca_pem(NOW - 400 * DAY, NOW - DAY));
                })
            }),
            vec![("CaExpired", Error)],
        ),
        (
            "a URL webhook over plain http",
            Box::new(|s, _, _| {
                mod_webhook(s, |w| {
                    w.service = None;
                    w.url = Some("http://istiod.example.com/inject".into());
                })
            }),
            vec![("InjectorUrlInvalid", Error)],
        ),
        ("gke-system pilot ignored", Box::new(|_, _, _| {}), vec![]),
        (
            "a second mesh",
            Box::new(|s, _, _| {
                s.deployments.apply(deployment("other-mesh", "istiod", "docker.io/istio/pilot:1.20.0", 1, 1))
            }),
            vec![("SecondControlPlane", Error)],
        ),
        (
            "a second mesh by label",
            Box::new(|s, _, _| {
                let mut d = deployment("team-x", "my-discovery", "docker.io/istio/pilot:1.5.0", 1, 1);
                d.labels.insert("istio".into(), "pilot".into());
                s.deployments.apply(d);
            }),
            vec![("SecondControlPlane", Error)],
        ),
        (
            "ignored namespace configured",
            Box::new(|s, st, _| {
                s.deployments.apply(deployment("other-mesh", "istiod", "docker.io/istio/pilot:1.20.0", 1, 1));
                st.control_plane.ignored_namespaces.push("other-mesh".into());
            }),
            vec![],
        ),
        ("three nodes", Box::new(|s, _, _| s.nodes.delete("node-3")), vec![("CapacityBelowMinimum", Warning); 3]),
        (
            "a cordoned node does not count",
            Box::new(|s, _, _| {
                let mut n = s.nodes.get("node-3").unwrap().clone();
                n.unschedulable = true;
                s.nodes.apply(n);
            }),
            vec![("CapacityBelowMinimum", Warning); 3],
        ),
        (
            "memory below minimum",
            Box::new(|s, _, _| {
                let mut n = s.nodes.get("node-0").unwrap().clone();
                n.memory_bytes -= 1_000_000;
                s.nodes.apply(n);
            }),
            vec![("CapacityBelowMinimum", Warning)],
        ),
        (
            "mTLS any",
            Box::new(|_, _, a| {
                a.mtls = MtlsObservation::Mode { source: "MeshPolicy default".into(), mode: "PERMISSIVE".into() }
            }),
            vec![],
        ),
        (
            "mTLS strict wanted, permissive found",
            Box::new(|_, st, a| {
                st.control_plane.mtls_mode = MtlsMode::Strict;
                a.mtls = MtlsObservation::Mode { source: "MeshPolicy default".into(), mode: "PERMISSIVE".into() };
            }),
            vec![("MtlsModeMismatch", Error)],
        ),
        (
            "mTLS strict met",
            Box::new(|_, st, a| {
                st.control_plane.mtls_mode = MtlsMode::Strict;
                a.mtls = MtlsObservation::Mode {
                    source: "PeerAuthentication istio-system/default".into(),
                    mode: "STRICT".into(),
                };
            }),
            vec![],
        ),
        (
            "no policy means permissive",
            Box::new(|_, st, a| {
                st.control_plane.mtls_mode = MtlsMode::Strict;
                a.mtls = MtlsObservation::NoPolicy;
            }),
            vec![("MtlsModeMismatch", Error)],
        ),
        (
            "missing CRD is skipped, not an error",
            Box::new(|_, st, a| {
                st.control_plane.mtls_mode = MtlsMode::Strict;
                a.mtls = MtlsObservation::CrdMissing;
            }),
            vec![],
        ),
    ];
    assert!(cases.len() >= 30, "{} cases", cases.len());
    for (name, mutate, want) in cases {
        let mut snap = healthy();
        let mut settings = Settings::defaults(Profile::AsmOnprem);
        let mut api = ApiProbe::default();
        mutate(&mut snap, &mut settings, &mut api);
        let (r, _) = evaluate(&snap, &settings, &api);
        assert_eq!(reasons(&r), want, "case {name:?}:\n{:#?}", r.findings().collect::<Vec<_>>());
    }
}

#[test]
fn an_expired_old_root_keeps_the_injector_gate_open() {
    let mut snap = healthy();
    mod_webhook(&mut snap, |w| {
        let mut b = ca_pem(NOW - 400 * DAY, NOW - 2 * DAY);
        b.extend(ca_pem(NOW - DAY, NOW + 365 * DAY));
        w.ca_bundle = Some(b);
    });
    let (_, st) = evaluate(&snap, &Settings::defaults(Profile::AsmOnprem), &ApiProbe::default());
    assert!(st.webhook.healthy(NOW));
    assert_eq!(st.webhook.ca_expiry(), Some(NOW + 365 * DAY), "the bundle's validity, not the old root's");
}

#[test]
fn webhook_urls_are_checked_for_what_can_be_checked() {
    assert_eq!(url_problem("https://istiod.istio-system.svc:15017/inject"), None);
    assert!(url_problem("http://x/inject").unwrap().contains("not an https:// URL"));
    assert!(url_problem("https:///inject").unwrap().contains("names no host"));
    assert!(url_problem("https://:443/inject").is_some());
}

#[test]
fn hints_tell_the_sre_what_to_run() {
    let mut snap = healthy();
    mod_dep(&mut snap, "istio-pilot", |d| d.available = 0);
    let (r, _) = evaluate(&snap, &Settings::defaults(Profile::AsmOnprem), &ApiProbe::default());
    let f = r.findings().next().unwrap();
    assert_eq!(f.message, "istio-pilot: 0/1 available");
    assert_eq!(f.hint.as_deref(), Some("kubectl -n istio-system describe deploy istio-pilot"));
}

#[test]
fn health_gauges_follow_the_assessment() {
    let settings = Settings::defaults(Profile::AsmOnprem);
    let api = ApiProbe::default();
    let snap = healthy();
    let (_, st) = evaluate(&snap, &settings, &api);
    assert!(st.healthy(NOW) && st.webhook.healthy(NOW));
    let got = samples(&st, "istio-system", NOW);
    let ns = || "istio-system".to_string();
    let wh = || "istio-sidecar-injector".to_string();
    assert!(got.contains(&(0, vec![ns()], 1.0)));
    assert!(got.contains(&(3, vec![ns(), "istio-pilot".into(), VERSION.into()], 1.0)));
    assert!(!got.iter().any(|(f, l, _)| *f == 3 && l[1] == "promsd"), "promsd is not versioned");
    assert!(got.contains(&(6, vec![wh()], 1.0)), "backends ready");
    assert!(got.contains(&(9, vec![], 4.0)), "allocatable cores");
    let expiry = got.iter().find(|(f, _, _)| *f == 5).unwrap();
    assert_eq!((expiry.1.clone(), expiry.2 as i64), (vec![wh()], NOW + 365 * DAY));

    let mut down = healthy();
    mod_dep(&mut down, "istio-sidecar-injector", |d| d.available = 0);
    mod_pod(&mut down, "istio-sidecar-injector-0", |p| *p = p.clone().set_ready(false));
    let (_, st) = evaluate(&down, &settings, &api);
    assert!(!st.healthy(NOW));
    assert!(!st.webhook.healthy(NOW), "no ready backend: the injector gate is closed");
    let s = samples(&st, "istio-system", NOW);
    assert!(s.contains(&(0, vec![ns()], 0.0)) && s.contains(&(4, vec![wh()], 0.0)));
    assert!(s.contains(&(6, vec![wh()], 0.0)), "the backend is what is down");
    assert!(s.contains(&(1, vec![ns(), "istio-sidecar-injector".into()], 0.0)));

    // An expired CA: the webhook is unhealthy while its backend is ready.
    let mut expired = healthy();
    mod_webhook(&mut expired, |w| w.ca_bundle = Some(ca_pem(NOW - 10 * DAY, NOW - 1)));
    let (_, st) = evaluate(&expired, &settings, &api);
    let s = samples(&st, "istio-system", NOW);
    assert!(s.contains(&(4, vec![wh()], 0.0)) && s.contains(&(6, vec![wh()], 1.0)));
}

#[test]
fn expired_ca_closes_the_injector_gate() {
    let mut snap = healthy();
    mod_webhook(&mut snap, |w| w.ca_bundle = Some(ca_pem(NOW - 10 * DAY, NOW - 1)));
    let (_, st) = evaluate(&snap, &Settings::defaults(Profile::AsmOnprem), &ApiProbe::default());
    assert!(!st.webhook.healthy(NOW));
}

#[test]
fn mtls_modes_of_both_policy_kinds() {
    use serde_json::json;
    assert_eq!(
        mtls_mode_of("MeshPolicy", &json!({"spec": {"peers": [{"mtls": {"mode": "PERMISSIVE"}}]}})),
        "PERMISSIVE"
    );
    assert_eq!(mtls_mode_of("MeshPolicy", &json!({"spec": {"peers": [{"mtls": {}}]}})), "STRICT");
    assert_eq!(mtls_mode_of("MeshPolicy", &json!({"spec": {}})), "DISABLE");
    assert_eq!(mtls_mode_of("PeerAuthentication", &json!({"spec": {"mtls": {"mode": "STRICT"}}})), "STRICT");
    assert_eq!(mtls_mode_of("PeerAuthentication", &json!({"spec": {"mtls": {"mode": "UNSET"}}})), "PERMISSIVE");
    assert_eq!(mtls_mode_of("PeerAuthentication", &json!({})), "PERMISSIVE");
}

#[test]
fn revision_installs_look_for_the_revisioned_webhook() {
    let mut settings = Settings::defaults(Profile::Istiod);
    settings.injection.label = "istio.io/rev=asm-1234".parse().unwrap();
    let snap = Snapshot::default();
    let api = ApiProbe::default();
    let (r, _) = evaluate(&snap, &settings, &api);
    let missing = r.findings().find(|f| f.reason == "InjectorWebhookMissing").unwrap();
    assert_eq!(missing.object.name, "istio-sidecar-injector-asm-1234 or istio-sidecar-injector");
    assert!(r.items.iter().any(|i| matches!(i.outcome, Outcome::Skipped { .. })), "mTLS not probed is skipped");
}
