//! Table tests for every pre-install rule, over the install guide's empty user cluster (four
//! nodes of exactly the guide's size, GKE on VMware's own Istio pieces, a supported version,
//! a cluster admin) that each case changes in one way.

use super::*;
use crate::cache::{Index, NamespaceInfo, NodeInfo, ServicePort, Snapshot};
use crate::checks::{Health, PermissionResult};
use crate::config::{Profile, VersionRange};
use crate::findings::{Outcome, Severity::*};

const ASM: &str = "gcr.io/gke-release/asm";

/// The guide's minimum exactly: 4 nodes x (1 vCPU, 3.75 GB) = 4 vCPU, 15 GB.
fn guide_sized() -> Snapshot {
    let gke = [
        ("gke-system", "istio-pilot", "gke.gcr.io/istio/pilot:1.3.6-gke.0"),
        ("gke-system", "istio-ingressgateway", "gke.gcr.io/istio/proxyv2:1.3.6-gke.0"),
        ("kube-system", "istio-citadel", "gke.gcr.io/istio/citadel:1.3.6-gke.0"),
        ("kube-system", "kube-dns", "k8s.gcr.io/kube-dns:1.15.0"),
    ];
    Snapshot {
        namespaces: Index::from_objects(
            ["default", "kube-system", "kube-public", "kube-node-lease", "gke-system"].map(NamespaceInfo::test),
        ),
        deployments: Index::from_objects(gke.map(|(ns, name, image)| DeploymentInfo::test(ns, name).running(image))),
        nodes: Index::from_objects((0..4).map(|i| NodeInfo::test(&format!("user-node-{i}"), 1000, 3_750_000_000))),
        ..Default::default()
    }
}

/// A cluster admin on a supported version.
fn admin_probe(version: &str) -> ApiProbe {
    ApiProbe {
        server_version: Some(Ok(version.into())),
        permissions: installer_permissions()
            .into_iter()
            .map(|permission| PermissionResult { permission, allowed: Ok(true) })
            .collect(),
        ..Default::default()
    }
}

/// The asm-onprem control plane, as `istioctl manifest apply --set profile=asm-onprem` leaves it.
fn install_asm(s: &mut Snapshot, tag: &str) {
    s.namespaces.apply(NamespaceInfo::test("istio-system"));
    for name in ["istio-citadel", "istio-galley", "istio-ingressgateway", "istio-pilot", "istio-sidecar-injector"] {
        let image = format!("{ASM}/{}:{tag}", name.trim_start_matches("istio-"));
        s.deployments.apply(DeploymentInfo::test("istio-system", name).running(&image));
    }
    s.deployments.apply(DeploymentInfo::test("istio-system", "promsd").running("prom/prometheus:v2.8.0"));
}

fn set_node(s: &mut Snapshot, name: &str, f: impl FnOnce(&mut NodeInfo)) {
    let mut n = s.nodes.get(name).cloned().unwrap_or_else(|| NodeInfo::test(name, 0, 0));
    f(&mut n);
    s.nodes.apply(n);
}

struct Case {
    snap: Snapshot,
    settings: Settings,
    probe: ApiProbe,
    seen: Observed,
}

fn run(c: &Case) -> Vec<CheckReport> {
    let health = Health::default();
    reports(&View::of(&c.settings, &c.probe, &c.snap, &health, 0), &c.seen)
}

fn findings(reports: &[CheckReport]) -> Vec<(&'static str, Severity)> {
    reports.iter().flat_map(|r| r.findings()).map(|f| (f.reason, f.severity)).collect()
}

type Mutate = Box<dyn Fn(&mut Case)>;
type Want = Vec<(&'static str, Severity)>;

/// The manual-LB next step every asm-onprem report carries (information, not a failure).
const NEXT_STEP: (&str, Severity) = ("GatewayNeedsNodePorts", Info);
const SHORT: (&str, Severity) = ("CapacityBelowMinimum", Error);

#[test]
fn every_requirement_passes_fails_and_holds_at_its_edges() {
    let cases: Vec<(&str, Mutate, Want)> = vec![
        ("the guide's empty cluster, exactly at the minimum", Box::new(|_| {}), vec![NEXT_STEP]),
        (
            "istio-system exists, empty",
            Box::new(|c| c.snap.namespaces.apply(NamespaceInfo::test("istio-system"))),
            vec![NEXT_STEP],
        ),
        (
            "real nodes' allocatable (3920m, 15950552Ki) on three nodes",
            Box::new(|c| {
                c.snap.nodes.delete("user-node-3");
                for i in 0..3 {
                    set_node(&mut c.snap, &format!("user-node-{i}"), |n| {
                        (n.cpu_millis, n.memory_bytes) = (3920, 16_333_365_248)
                    });
                }
            }),
            vec![SHORT, NEXT_STEP],
        ),
        ("three nodes", Box::new(|c| c.snap.nodes.delete("user-node-3")), [vec![SHORT; 3], vec![NEXT_STEP]].concat()),
        (
            "a NotReady node is not counted",
            Box::new(|c| set_node(&mut c.snap, "user-node-2", |n| n.ready = false)),
            [vec![SHORT; 3], vec![NEXT_STEP]].concat(),
        ),
        (
            "a cordoned node is not counted",
            Box::new(|c| set_node(&mut c.snap, "user-node-1", |n| n.unschedulable = true)),
            [vec![SHORT; 3], vec![NEXT_STEP]].concat(),
        ),
        (
            "a fifth node that is NotReady and cordoned changes nothing",
            Box::new(|c| {
                set_node(&mut c.snap, "user-node-4", |n| {
                    (n.cpu_millis, n.memory_bytes, n.ready, n.unschedulable) = (8000, 32_000_000_000, false, true)
                })
            }),
            vec![NEXT_STEP],
        ),
        (
            "one byte of memory short",
            Box::new(|c| set_node(&mut c.snap, "user-node-0", |n| n.memory_bytes -= 1)),
            vec![SHORT, NEXT_STEP],
        ),
        (
            "one millicore short",
            Box::new(|c| set_node(&mut c.snap, "user-node-0", |n| n.cpu_millis -= 1)),
            vec![SHORT, NEXT_STEP],
        ),
        ("the oldest supported version", Box::new(|c| c.probe = admin_probe("v1.13.0")), vec![NEXT_STEP]),
        ("a GKE build of the newest", Box::new(|c| c.probe = admin_probe("v1.15.12-gke.20")), vec![NEXT_STEP]),
        (
            "one older than supported",
            Box::new(|c| c.probe = admin_probe("v1.12.10")),
            vec![("KubernetesVersionUnsupported", Error), NEXT_STEP],
        ),
        (
            "a current server is outside Istio 1.4's range",
            Box::new(|c| c.probe = admin_probe("v1.36.0")),
            vec![("KubernetesVersionUnsupported", Error), NEXT_STEP],
        ),
        (
            "a configured range admits it",
            Box::new(|c| {
                c.probe = admin_probe("v1.36.0");
                c.settings.precheck.kubernetes_versions = "1.24-1.36".parse::<VersionRange>().unwrap();
            }),
            vec![NEXT_STEP],
        ),
        (
            "an unrecognised version",
            Box::new(|c| c.probe = admin_probe("experimental")),
            vec![("KubernetesVersionUnsupported", Error), NEXT_STEP],
        ),
        (
            "not a cluster admin",
            Box::new(|c| c.probe.permissions.iter_mut().for_each(|p| p.allowed = Ok(false))),
            vec![
                ("PermissionDenied", Error),
                ("PermissionDenied", Error),
                ("PermissionDenied", Error),
                ("PermissionDenied", Error),
                NEXT_STEP,
            ],
        ),
        (
            "may create namespaces only",
            Box::new(|c| {
                c.probe.permissions.iter_mut().filter(|p| p.permission.resource != "namespaces").for_each(|p| {
                    p.allowed = Ok(false);
                })
            }),
            vec![("PermissionDenied", Error), ("PermissionDenied", Error), ("PermissionDenied", Error), NEXT_STEP],
        ),
        (
            "a review that could not be made is skipped",
            Box::new(|c| c.probe.permissions[0].allowed = Err("timeout".into())),
            vec![NEXT_STEP],
        ),
        (
            "ASM already installed",
            Box::new(|c| install_asm(&mut c.snap, "1.4.10-asm.18")),
            vec![("AsmAlreadyInstalled", Warning), NEXT_STEP],
        ),
        (
            "an istiod in istio-system is a control plane too",
            Box::new(|c| {
                c.snap.namespaces.apply(NamespaceInfo::test("istio-system"));
                c.snap.deployments.apply(DeploymentInfo::test("istio-system", "istiod").running("istio/pilot:1.20.1"));
            }),
            vec![("AsmAlreadyInstalled", Warning), NEXT_STEP],
        ),
        (
            "leftovers without a control plane",
            Box::new(|c| {
                c.snap
                    .deployments
                    .apply(DeploymentInfo::test("istio-system", "kiali").running("quay.io/kiali/kiali:v1.9"))
            }),
            vec![("ControlPlaneNamespaceNotEmpty", Warning), NEXT_STEP],
        ),
        (
            "istio-system being deleted",
            Box::new(|c| {
                let mut ns = NamespaceInfo::test("istio-system");
                ns.terminating = true;
                c.snap.namespaces.apply(ns);
            }),
            vec![("ControlPlaneNamespaceTerminating", Error), NEXT_STEP],
        ),
        (
            "another mesh's istiod",
            Box::new(|c| {
                c.snap.deployments.apply(DeploymentInfo::test("mesh-b", "istiod").running("istio/pilot:1.20.1"))
            }),
            vec![("SecondControlPlane", Error), NEXT_STEP],
        ),
        (
            "a pilot by label in an app namespace",
            Box::new(|c| {
                let mut d = DeploymentInfo::test("team-x", "discovery").running("istio/pilot:1.5.0");
                d.labels.insert("istio".into(), "pilot".into());
                c.snap.deployments.apply(d);
            }),
            vec![("SecondControlPlane", Error), NEXT_STEP],
        ),
        (
            "Istio CRDs with no control plane",
            Box::new(|c| {
                c.seen.crds = vec![
                    "virtualservices.networking.istio.io".into(),
                    "meshpolicies.authentication.istio.io".into(),
                    "certificates.cert-manager.io".into(),
                ]
            }),
            vec![("IstioCrdsFromAnotherInstall", Warning), NEXT_STEP],
        ),
        (
            "Istio CRDs of the installed control plane",
            Box::new(|c| {
                install_asm(&mut c.snap, "1.4.10-asm.18");
                c.seen.crds = vec!["virtualservices.networking.istio.io".into()];
            }),
            vec![("AsmAlreadyInstalled", Warning), NEXT_STEP],
        ),
        ("other CRDs only", Box::new(|c| c.seen.crds = vec!["certificates.cert-manager.io".into()]), vec![NEXT_STEP]),
        (
            "no GKE on VMware pieces (another platform) is no failure",
            Box::new(|c| {
                for (ns, name) in [
                    ("gke-system", "istio-pilot"),
                    ("gke-system", "istio-ingressgateway"),
                    ("kube-system", "istio-citadel"),
                ] {
                    c.snap.deployments.delete(&format!("{ns}/{name}"));
                }
            }),
            vec![NEXT_STEP],
        ),
        (
            "a guide nodePort held by another Service",
            Box::new(|c| {
                let mut svc = ServiceInfo::test("shop", "web");
                svc.ports =
                    vec![ServicePort { name: "http".into(), port: 80, protocol: "TCP".into(), node_port: Some(31380) }];
                c.snap.services.apply(svc);
            }),
            vec![NEXT_STEP, ("GatewayNodePortTaken", Error)],
        ),
        (
            "the installed gateway's own nodePorts are not a collision",
            Box::new(|c| {
                install_asm(&mut c.snap, "1.4.10-asm.18");
                let mut svc = ServiceInfo::test("istio-system", "istio-ingressgateway");
                svc.ports = vec![ServicePort {
                    name: "http2".into(),
                    port: 80,
                    protocol: "TCP".into(),
                    node_port: Some(31380),
                }];
                c.snap.services.apply(svc);
            }),
            vec![("AsmAlreadyInstalled", Warning), NEXT_STEP],
        ),
        (
            "integrated LB mode",
            Box::new(|c| {
                c.settings.gateway.mode = GatewayMode::Integrated;
                c.settings.gateway.load_balancer_ip = Some("10.0.0.50".parse().unwrap());
            }),
            vec![("GatewayNeedsLoadBalancerIp", Info)],
        ),
        ("gateway off", Box::new(|c| c.settings.gateway.mode = GatewayMode::Off), vec![]),
        (
            "nodes that cannot be listed are skipped, not a shortfall",
            Box::new(|c| {
                c.snap.nodes = Index::default();
                c.seen.unlisted.insert("nodes", "nodes is forbidden (403 Forbidden)".into());
            }),
            vec![NEXT_STEP],
        ),
        (
            "deployments that cannot be listed skip what reads them",
            Box::new(|c| {
                c.snap.deployments = Index::default();
                c.seen.unlisted.insert("deployments", "deployments.apps is forbidden (403 Forbidden)".into());
                c.seen.crds = vec!["virtualservices.networking.istio.io".into()];
            }),
            vec![NEXT_STEP],
        ),
    ];
    assert!(cases.len() >= 30, "{} cases", cases.len());
    for (name, mutate, want) in cases {
        let mut c = base();
        mutate(&mut c);
        let r = run(&c);
        assert_eq!(
            findings(&r),
            want,
            "case {name:?}:\n{:#?}",
            r.iter().flat_map(|r| r.items.iter()).collect::<Vec<_>>()
        );
    }
}

fn base() -> Case {
    Case {
        snap: guide_sized(),
        settings: Settings::defaults(Profile::AsmOnprem),
        probe: admin_probe("v1.15.12"),
        seen: Observed::default(),
    }
}

fn finding<'a>(r: &'a [CheckReport], reason: &str) -> &'a Finding {
    r.iter().flat_map(|r| r.findings()).find(|f| f.reason == reason).unwrap_or_else(|| panic!("no {reason}"))
}

#[test]
fn the_report_has_a_section_per_requirement_and_passes_say_what_they_measured() {
    let r = run(&base());
    let titles: Vec<&str> = r.iter().map(|r| r.title).collect();
    assert_eq!(
        titles,
        [
            "Kubernetes API",
            "Your rights (the guide's user is a cluster admin)",
            "Cluster size (allocatable of schedulable, Ready nodes)",
            "Istio already in the cluster",
            "Ingress gateway after the install",
        ]
    );
    let passes: Vec<&str> = r
        .iter()
        .flat_map(|r| r.items.iter())
        .filter(|i| i.outcome == Outcome::Pass)
        .map(|i| i.description.as_str())
        .collect();
    for want in [
        "Kubernetes version v1.15.12 is one the install supports (1.13-1.15)",
        "can create clusterrolebindings.rbac.authorization.k8s.io",
        "can create namespaces",
        "can create mutatingwebhookconfigurations.admissionregistration.k8s.io",
        "can create customresourcedefinitions.apiextensions.k8s.io",
        "at least 4 schedulable, Ready nodes (4)",
        "at least 4 vCPU allocatable on them (4)",
        "at least 15 GB of memory allocatable on them (15 GB)",
        "istio-system does not exist yet: a clean install",
        "GKE on VMware's own Istio pieces are expected, not the mesh: gke-system/istio-ingressgateway (1.3.6-gke.0), gke-system/istio-pilot (1.3.6-gke.0), kube-system/istio-citadel (1.3.6-gke.0)",
        "one mesh: no control plane outside istio-system (ignoring gke-system, kube-system)",
        "no Istio CRDs from another install",
        "no other Service holds one of the guide's nodePorts",
    ] {
        assert!(passes.contains(&want), "missing pass {want:?} in {passes:#?}");
    }
    assert!(r.iter().all(|r| r.check == CHECK) && r.iter().flat_map(|r| r.findings()).all(|f| f.check == CHECK));
}

#[test]
fn a_user_without_cluster_admin_gets_the_guides_clusterrolebinding_command() {
    let mut c = base();
    c.probe.permissions.iter_mut().for_each(|p| p.allowed = Ok(false));
    let r = run(&c);
    let denied: Vec<&Finding> =
        r.iter().flat_map(|r| r.findings()).filter(|f| f.reason == "PermissionDenied").collect();
    assert_eq!(denied.len(), 4);
    assert_eq!(
        denied[0].message,
        "you may not create clusterrolebindings.rbac.authorization.k8s.io (the control plane's ClusterRoleBindings)"
    );
    for f in denied {
        assert_eq!(
            f.hint.as_deref(),
            Some(
                "the guide's step: kubectl create clusterrolebinding cluster-admin-binding --clusterrole=cluster-admin --user=$(gcloud config get-value core/account)"
            )
        );
    }
}

#[test]
fn an_existing_control_plane_is_an_upgrade_naming_its_version() {
    let mut c = base();
    install_asm(&mut c.snap, "1.4.10-asm.18");
    let f = finding(&run(&c), "AsmAlreadyInstalled").clone();
    assert_eq!(
        f.message,
        "ASM is already installed: this is an upgrade; see the upgrade guide (istio-system runs ASM 1.4.10-asm.18: istio-citadel, istio-galley, istio-ingressgateway, istio-pilot, istio-sidecar-injector, promsd)"
    );
    assert_eq!(f.object, ObjectRef::namespace("istio-system"));
    // Mid-upgrade: both versions are named.
    c.snap
        .deployments
        .apply(DeploymentInfo::test("istio-system", "istio-pilot").running(&format!("{ASM}/pilot:1.4.9-asm.1")));
    let f = finding(&run(&c), "AsmAlreadyInstalled").clone();
    assert_eq!(f.actual, "ASM 1.4.10-asm.18 and 1.4.9-asm.1, mixed");
}

#[test]
fn a_shortfall_names_what_is_missing_and_the_version_finding_names_the_range() {
    let mut c = base();
    c.snap.nodes.delete("user-node-3");
    c.probe = admin_probe("v1.36.0");
    let r = run(&c);
    let short: Vec<&Finding> =
        r.iter().flat_map(|r| r.findings()).filter(|f| f.reason == "CapacityBelowMinimum").collect();
    assert_eq!(
        short.iter().map(|f| f.message.as_str()).collect::<Vec<_>>(),
        [
            "the user cluster has 3 schedulable, Ready node(s): 1 node(s) short of the install guide's minimum",
            "the user cluster has 3 vCPU allocatable: 1 vCPU short of the install guide's minimum",
            "the user cluster has 11.25 GB allocatable: 3.75 GB short of the install guide's minimum",
        ]
    );
    let v = finding(&r, "KubernetesVersionUnsupported");
    assert_eq!((v.expected.as_str(), v.actual.as_str()), ("1.13-1.15", "v1.36.0"));
    assert!(v.message.contains("precheck.kubernetes_versions"), "{}", v.message);
}

#[test]
fn the_gateways_next_step_follows_the_lb_mode() {
    let c = base();
    let f = finding(&run(&c), "GatewayNeedsNodePorts").clone();
    assert!(f.message.contains("http2 31380") && f.message.contains("status-port 30391"), "{}", f.message);
    assert!(f.hint.as_deref().unwrap().contains("kubectl -n istio-system edit svc istio-ingressgateway"));
    let mut c = base();
    c.settings.gateway.mode = GatewayMode::Integrated;
    c.settings.gateway.load_balancer_ip = Some("10.0.0.50".parse().unwrap());
    let f = finding(&run(&c), "GatewayNeedsLoadBalancerIp").clone();
    assert_eq!(
        f.message,
        "after the install istio-ingressgateway gets no external IP by itself: set spec.loadBalancerIP to 10.0.0.50"
    );
    assert!(
        f.hint.as_deref().unwrap().contains(
            r#"kubectl -n istio-system patch svc istio-ingressgateway -p '{"spec":{"loadBalancerIP":"10.0.0.50"}}'"#
        ),
        "{:?}",
        f.hint
    );
    c.settings.gateway.load_balancer_ip_annotation = "metallb.universe.tf/loadBalancerIPs".into();
    let f = finding(&run(&c), "GatewayNeedsLoadBalancerIp").clone();
    assert!(
        f.hint
            .as_deref()
            .unwrap()
            .contains("annotate svc istio-ingressgateway metallb.universe.tf/loadBalancerIPs=10.0.0.50")
    );
}

#[test]
fn an_unreachable_server_reports_only_that() {
    let mut c = base();
    c.probe = ApiProbe { server_version: Some(Err("connection refused".into())), ..Default::default() };
    let r = run(&c);
    assert_eq!(r.len(), 1);
    assert_eq!(findings(&r), [("ApiUnreachable", Error)]);
}

#[test]
fn lists_that_failed_say_why_they_were_skipped() {
    let mut c = base();
    c.seen
        .unlisted
        .insert("nodes", "nodes is forbidden: User \"u\" cannot list resource \"nodes\" (403 Forbidden)".into());
    c.seen.unlisted.insert(CRDS, "customresourcedefinitions.apiextensions.k8s.io is forbidden (403 Forbidden)".into());
    let r = run(&c);
    let skipped: Vec<String> = r
        .iter()
        .flat_map(|r| r.items.iter())
        .filter_map(|i| match &i.outcome {
            Outcome::Skipped { reason } => Some(format!("{}: {reason}", i.description)),
            _ => None,
        })
        .collect();
    assert_eq!(
        skipped,
        [
            "the install guide's cluster size: cannot list nodes: nodes is forbidden: User \"u\" cannot list resource \"nodes\" (403 Forbidden)",
            "no Istio CRDs from another install: cannot list customresourcedefinitions: customresourcedefinitions.apiextensions.k8s.io is forbidden (403 Forbidden)",
        ]
    );
}
