//! Per-workload verdicts over a small cluster snapshot that each case changes in one way.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::cache::{
    DeploymentInfo, Index, InjectorConfig, NamespaceInfo, PodInfo, ReplicaSetInfo, Selector, ServiceInfo, SetInfo,
    Snapshot, Strategy, WebhookConfigInfo, WebhookInfo,
};
use crate::checks::{ApiProbe, Health};
use crate::config::{Mode, Profile, Settings};

const NOW: i64 = 1_795_564_800;
const CURRENT: &str = "gcr.io/gke-release/asm/proxyv2:1.4.10-asm.18";
const OLD: &str = "gcr.io/gke-release/asm/proxyv2:1.4.10-asm.17";

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn deployment(ns: &str, name: &str) -> DeploymentInfo {
    DeploymentInfo {
        namespace: ns.into(),
        name: name.into(),
        uid: None,
        labels: labels(&[("app", name)]),
        selector: Selector { match_labels: labels(&[("app", name)]), match_expressions: vec![] },
        desired: 2,
        available: 2,
        ready: 2,
        updated: 2,
        images: vec![],
        rollout: rollout(2),
    }
}

fn rollout(n: i32) -> Rollout {
    Rollout {
        generation: 3,
        observed_generation: 3,
        desired: n,
        replicas: n,
        updated: n,
        available: n,
        revisions_match: true,
        template: crate::cache::workload::TemplateMeta::Annotations,
        ..Default::default()
    }
}

fn set(ns: &str, name: &str, strategy: Strategy) -> SetInfo {
    SetInfo {
        namespace: ns.into(),
        name: name.into(),
        rollout: Rollout { strategy, ..rollout(3) },
        update_revision: None,
    }
}

fn rs(ns: &str, name: &str, deployment: Option<&str>) -> ReplicaSetInfo {
    ReplicaSetInfo {
        namespace: ns.into(),
        name: name.into(),
        owner: deployment.map(|d| ("Deployment".to_string(), d.to_string())),
        revision: 1,
        replicas: 2,
    }
}

fn pod(ns: &str, name: &str, owner: Option<(&str, &str)>) -> PodInfo {
    let p = PodInfo::test(ns, name).with_labels(&[("app", "x")]).created_at(NOW - 86_400);
    match owner {
        Some((k, n)) => p.owned_by(k, n),
        None => p,
    }
}

/// A healthy 1.4 mesh: the injector webhook, its Service and ready pod, its ConfigMap, and
/// the namespace `shop` labelled for injection.
fn mesh() -> Snapshot {
    let mut s = Snapshot { ..Default::default() };
    s.namespaces = Index::from_objects([
        NamespaceInfo::test("shop").labelled("istio-injection", "enabled"),
        NamespaceInfo::test("pay").labelled("istio-injection", "enabled"),
        NamespaceInfo::test("legacy")
            .labelled("istio-injection", "enabled")
            .labelled("meshkeeper.io/reinject", "false"),
        NamespaceInfo::test("istio-system"),
    ]);
    s.webhooks = Index::from_objects([WebhookConfigInfo {
        name: "istio-sidecar-injector".into(),
        uid: None,
        webhooks: vec![WebhookInfo {
            name: "sidecar-injector.istio.io".into(),
            namespace_selector: Some(Selector {
                match_labels: labels(&[("istio-injection", "enabled")]),
                match_expressions: vec![],
            }),
            object_selector: None,
            service: Some(("istio-system".into(), "istio-sidecar-injector".into(), Some("/inject".into()))),
            url: None,
            ca_bundle: Some(kube_sim::seed::ca_pem(365).into_bytes()),
            failure_policy: None,
        }],
    }]);
    s.services = Index::from_objects([ServiceInfo {
        selector: labels(&[("istio", "sidecar-injector")]),
        ..ServiceInfo::test("istio-system", "istio-sidecar-injector")
    }]);
    s.pods =
        Index::from_objects(
            [PodInfo::test("istio-system", "injector-0").with_labels(&[("istio", "sidecar-injector")])],
        );
    s.injector = Index::from_objects([InjectorConfig {
        name: "istio-sidecar-injector".into(),
        proxy_image: Some(CURRENT.into()),
        policy_enabled: true,
        never_inject: vec![],
        always_inject: vec![],
        namespaces_by_default: false,
        changed_at: NOW - 30 * 86_400,
        problems: vec![],
    }]);
    s
}

fn settings() -> Settings {
    let mut s = Settings::defaults(Profile::AsmOnprem);
    s.reinjection.mode = Mode::Enforce;
    s
}

fn run(snap: &Snapshot, s: &Settings) -> (Vec<(&'static str, String)>, RestartInput) {
    let api = ApiProbe::default();
    let health = Health::default();
    let view = View::of(s, &api, snap, &health, NOW);
    let ev = ReinjectionCheck::default().evaluate(&view);
    let findings = ev.report.findings().map(|f| (f.reason, format!("{}/{}", f.object.kind, f.object.name))).collect();
    (findings, ev.restarts.unwrap())
}

#[test]
fn verdict_table() {
    type Mutate = Box<dyn Fn(&mut Snapshot, &mut Settings)>;
    let add_deploy = |s: &mut Snapshot, name: &str, pods: Vec<PodInfo>| {
        s.deployments.apply(deployment("shop", name));
        s.replicasets.apply(rs("shop", &format!("{name}-abc"), Some(name)));
        for p in pods {
            s.pods.apply(p);
        }
    };
    let web = |i: usize| pod("shop", &format!("web-abc-{i}"), Some(("ReplicaSet", "web-abc")));
    type Case = (&'static str, Mutate, Vec<(&'static str, &'static str)>, usize);
    let cases: Vec<Case> = vec![
        ("nothing to do", Box::new(|_, _| {}), vec![], 0),
        (
            "a Deployment whose pods predate injection",
            Box::new(move |s, _| add_deploy(s, "web", vec![web(1), web(2).injected(CURRENT)])),
            vec![("SidecarMissing", "Deployment/web")],
            1,
        ),
        (
            "every pod current",
            Box::new(move |s, _| add_deploy(s, "web", vec![web(1).injected(CURRENT), web(2).injected(CURRENT)])),
            vec![],
            0,
        ),
        (
            "a stale proxy after an upgrade",
            Box::new(move |s, _| add_deploy(s, "web", vec![web(1).injected(OLD), web(2).injected(CURRENT)])),
            vec![("ProxyStale", "Deployment/web")],
            1,
        ),
        (
            "a paused Deployment",
            Box::new(move |s, _| {
                add_deploy(s, "web", vec![web(1)]);
                let mut d = deployment("shop", "web");
                d.rollout.strategy = Strategy::Paused;
                s.deployments.apply(d);
            }),
            vec![("ReinjectionBlocked", "Deployment/web")],
            0,
        ),
        (
            "a StatefulSet with OnDelete",
            Box::new(|s, _| {
                s.statefulsets.apply(set("shop", "db", Strategy::OnDelete));
                s.pods.apply(pod("shop", "db-0", Some(("StatefulSet", "db"))));
            }),
            vec![("ReinjectionBlocked", "StatefulSet/db")],
            0,
        ),
        (
            "OnDelete with evict_on_delete: the oldest pod is evicted",
            Box::new(|s, st| {
                st.reinjection.evict_on_delete = true;
                s.statefulsets.apply(set("shop", "db", Strategy::OnDelete));
                s.pods.apply(pod("shop", "db-0", Some(("StatefulSet", "db"))).created_at(NOW - 100));
                s.pods.apply(pod("shop", "db-1", Some(("StatefulSet", "db"))).created_at(NOW - 200));
            }),
            vec![("SidecarMissing", "StatefulSet/db")],
            1,
        ),
        (
            "a partition that keeps every affected ordinal",
            Box::new(|s, _| {
                s.statefulsets.apply(set("shop", "db", Strategy::Partition(2)));
                s.pods.apply(pod("shop", "db-0", Some(("StatefulSet", "db"))));
                s.pods.apply(pod("shop", "db-1", Some(("StatefulSet", "db"))));
                s.pods.apply(pod("shop", "db-2", Some(("StatefulSet", "db"))).injected(CURRENT));
            }),
            vec![("ReinjectionBlocked", "StatefulSet/db")],
            0,
        ),
        (
            "a partition below an affected ordinal rolls it",
            Box::new(|s, _| {
                s.statefulsets.apply(set("shop", "db", Strategy::Partition(1)));
                s.pods.apply(pod("shop", "db-2", Some(("StatefulSet", "db"))));
            }),
            vec![("SidecarMissing", "StatefulSet/db")],
            1,
        ),
        (
            "a DaemonSet",
            Box::new(|s, _| {
                s.daemonsets.apply(set("shop", "agent", Strategy::Rolling));
                s.pods.apply(pod("shop", "agent-x1", Some(("DaemonSet", "agent"))));
            }),
            vec![("SidecarMissing", "DaemonSet/agent")],
            1,
        ),
        (
            "a bare pod",
            Box::new(|s, _| s.pods.apply(pod("shop", "debug", None))),
            vec![("NoControllerToRestart", "Pod/debug")],
            0,
        ),
        (
            "a Job's running pod",
            Box::new(|s, _| s.pods.apply(pod("shop", "migrate-x", Some(("Job", "migrate"))))),
            vec![("NoControllerToRestart", "Job/migrate")],
            0,
        ),
        (
            "a ReplicaSet without a Deployment",
            Box::new(|s, _| {
                s.replicasets.apply(rs("shop", "orphan", None));
                s.pods.apply(pod("shop", "orphan-1", Some(("ReplicaSet", "orphan"))));
            }),
            vec![("NoControllerToRestart", "ReplicaSet/orphan")],
            0,
        ),
        (
            "the workload opts out",
            Box::new(move |s, _| {
                add_deploy(s, "web", vec![web(1)]);
                let mut d = deployment("shop", "web");
                d.rollout.annotations.insert("meshkeeper.io/reinject".into(), "false".into());
                s.deployments.apply(d);
            }),
            vec![("ReinjectionOptedOut", "Deployment/web")],
            0,
        ),
        (
            "its namespace opts out",
            Box::new(|s, _| {
                s.deployments.apply(deployment("legacy", "old"));
                s.replicasets.apply(rs("legacy", "old-abc", Some("old")));
                s.pods.apply(pod("legacy", "old-abc-1", Some(("ReplicaSet", "old-abc"))));
            }),
            vec![("ReinjectionOptedOut", "Deployment/old")],
            0,
        ),
        (
            "restarted, done, and the new pods still lack the sidecar: failed",
            Box::new(move |s, _| {
                add_deploy(s, "web", vec![web(1).created_at(NOW - 100)]);
                let mut d = deployment("shop", "web");
                d.rollout.restarted_at = Some(NOW - 600);
                s.deployments.apply(d);
            }),
            vec![("ReinjectionFailed", "Deployment/web")],
            0,
        ),
        (
            "... until the injector changes",
            Box::new(move |s, _| {
                add_deploy(s, "web", vec![web(1).created_at(NOW - 100)]);
                let mut d = deployment("shop", "web");
                d.rollout.restarted_at = Some(NOW - 600);
                s.deployments.apply(d);
                let mut inj = s.injector.get("istio-sidecar-injector").unwrap().clone();
                inj.changed_at = NOW - 60;
                s.injector.apply(inj);
            }),
            vec![("SidecarMissing", "Deployment/web")],
            1,
        ),
        (
            "restarted but old pods remain: still rolling, not failed",
            Box::new(move |s, _| {
                add_deploy(s, "web", vec![web(1).created_at(NOW - 3000)]);
                let mut d = deployment("shop", "web");
                d.rollout.restarted_at = Some(NOW - 600);
                d.rollout.updated = 1;
                s.deployments.apply(d);
            }),
            vec![("SidecarMissing", "Deployment/web")],
            1,
        ),
        (
            "the control plane's own pods are not re-injected",
            Box::new(|s, _| s.pods.apply(pod("istio-system", "pilot-1", None))),
            vec![],
            0,
        ),
        (
            "an unlabelled namespace is out of scope",
            Box::new(|s, _| s.pods.apply(pod("default", "x", None))),
            vec![],
            0,
        ),
    ];
    for (name, mutate, want, candidates) in cases {
        let mut snap = mesh();
        let mut s = settings();
        mutate(&mut snap, &mut s);
        let (got, input) = run(&snap, &s);
        let want: Vec<(&str, String)> = want.into_iter().map(|(r, o)| (r, o.to_string())).collect();
        assert_eq!(got, want, "{name}");
        assert_eq!(input.candidates.len(), candidates, "{name}: {:?}", input.candidates);
    }
}

#[test]
fn candidates_carry_what_the_planner_needs() {
    let mut snap = mesh();
    snap.deployments.apply(deployment("shop", "web"));
    snap.replicasets.apply(rs("shop", "web-abc", Some("web")));
    snap.pods.apply(pod("shop", "web-abc-1", Some(("ReplicaSet", "web-abc"))));
    snap.pods.apply(pod("shop", "web-abc-2", Some(("ReplicaSet", "web-abc"))).injected(OLD));
    let mut d = deployment("pay", "api");
    d.rollout.restarted_at = Some(NOW - 120);
    d.rollout.restarted_by_meshkeeper = true;
    d.rollout.updated = 1;
    snap.deployments.apply(d);
    let mut s = settings();
    s.reinjection.evict_on_delete = true;
    snap.statefulsets.apply(set("shop", "db", Strategy::OnDelete));
    snap.pods.apply(pod("shop", "db-0", Some(("StatefulSet", "db"))).created_at(NOW - 100));
    snap.pods.apply(pod("shop", "db-1", Some(("StatefulSet", "db"))).created_at(NOW - 200));
    let (_, input) = run(&snap, &s);
    let web = input.candidates.iter().find(|c| c.workload.name == "web").unwrap();
    assert_eq!((web.missing, web.stale, web.pods, web.generation), (1, 1, 2, 3));
    assert_eq!(web.kind, Restartable::Deployment);
    let db = input.candidates.iter().find(|c| c.workload.name == "db").unwrap();
    assert_eq!(db.evict.as_ref().map(|(n, _)| n.as_str()), Some("db-1"), "the oldest pod first");
    assert!(!db.replacement_pending);
    // While an evicted pod is on its way out (or its replacement not ready), the next waits.
    let mut evicting = snap.clone();
    evicting.pods.apply(pod("shop", "db-2", Some(("StatefulSet", "db"))).set_terminating());
    let (_, i2) = run(&evicting, &s);
    let db = i2.candidates.iter().find(|c| c.workload.name == "db").unwrap();
    assert!(db.replacement_pending && db.evict.is_none());
    assert_eq!(input.recent_restarts.len(), 1);
    assert_eq!(input.in_progress.len(), 1, "meshkeeper's restart of pay/api has not completed");
    assert_eq!(input.injector_down, None);
    // The injector's only pod goes away: injection cannot work.
    snap.pods.delete("istio-system/injector-0");
    let (_, input) = run(&snap, &s);
    assert!(input.injector_down.unwrap().contains("has no ready pod"));
}

#[test]
fn gauges_count_pods_by_state_and_coverage() {
    let mut snap = mesh();
    snap.deployments.apply(deployment("shop", "web"));
    snap.replicasets.apply(rs("shop", "web-abc", Some("web")));
    snap.pods.apply(pod("shop", "web-abc-1", Some(("ReplicaSet", "web-abc"))));
    snap.pods.apply(pod("shop", "web-abc-2", Some(("ReplicaSet", "web-abc"))).injected(OLD));
    snap.pods.apply(pod("shop", "web-abc-3", Some(("ReplicaSet", "web-abc"))).injected(CURRENT));
    snap.pods.apply(pod("shop", "web-abc-4", Some(("ReplicaSet", "web-abc"))).injected(CURRENT));
    let s = settings();
    let api = ApiProbe::default();
    let health = Health::default();
    let view = View::of(&s, &api, &snap, &health, NOW);
    let a = assess(&view);
    assert_eq!(a.pods[&PodState::Missing], 1);
    assert_eq!(a.pods[&PodState::Stale], 1);
    assert_eq!(a.pods[&PodState::Injected], 2);
    assert!((a.coverage() - 0.75).abs() < 1e-9, "3 of 4 have a sidecar: {}", a.coverage());
    let samples = samples(&a);
    assert!(samples.contains(&(0, vec!["missing".into()], 1.0)));
    assert!(samples.contains(&(2, vec!["1.4.10-asm.17".into()], 1.0)));
    assert!(samples.contains(&(2, vec!["1.4.10-asm.18".into()], 2.0)));
    assert!(samples.iter().all(|(f, _, _)| *f != 3), "no per-namespace series unless asked");
    let _ = Arc::new(());
}

/// Incremental evaluation: re-assessing only the namespaces that changed gives exactly what a
/// full assessment gives, and a namespace left out really is taken from the memo.
#[test]
fn an_incremental_assessment_equals_a_full_one() {
    let s = settings();
    let (api, health) = (ApiProbe::default(), Health::default());
    let mut snap = mesh();
    for ns in ["shop", "pay", "legacy"] {
        snap.deployments.apply(deployment(ns, "web"));
        snap.replicasets.apply(rs(ns, "web-abc", Some("web")));
        for i in 0..3 {
            snap.pods.apply(pod(ns, &format!("web-abc-{i}"), Some(("ReplicaSet", "web-abc"))).injected(CURRENT));
        }
    }
    let mut memo = Memo::default();
    let first = assess_incremental(&View::of(&s, &api, &snap, &health, NOW), &mut memo, &Changed::All);
    assert_eq!(first, assess(&View::of(&s, &api, &snap, &health, NOW)));

    // shop: a pod without the sidecar appears; pay: a pod goes; a new namespace with a bare pod.
    snap.pods.apply(pod("shop", "web-abc-9", Some(("ReplicaSet", "web-abc"))));
    snap.pods.delete("pay/web-abc-0");
    snap.namespaces.apply(NamespaceInfo::test("new").labelled("istio-injection", "enabled"));
    snap.pods.apply(pod("new", "debug", None));
    let changed = Changed::Namespaces(["shop", "pay", "new"].map(String::from).into());
    let view = View::of(&s, &api, &snap, &health, NOW);
    let incremental = assess_incremental(&view, &mut memo, &changed);
    let full = assess(&view);
    assert_eq!(incremental, full);
    assert_eq!(full.pods.get(&PodState::Missing), Some(&2));

    // The last namespace's pods go away: its part is dropped.
    snap.pods.delete("new/debug");
    let view = View::of(&s, &api, &snap, &health, NOW);
    let gone = assess_incremental(&view, &mut memo, &Changed::Namespaces(["new".to_string()].into()));
    assert_eq!(gone, assess(&view));
    assert!(!gone.workloads.keys().any(|(_, ns, _)| ns == "new"));

    // A change the memo was not told about stays unseen (the memo is really used) ...
    snap.pods.apply(pod("legacy", "web-abc-7", Some(("ReplicaSet", "web-abc"))));
    let view = View::of(&s, &api, &snap, &health, NOW);
    let stale = assess_incremental(&view, &mut memo, &Changed::Namespaces(Default::default()));
    assert_ne!(stale, assess(&view));
    // ... until its namespace is named, or everything is re-assessed.
    assert_eq!(assess_incremental(&view, &mut memo, &Changed::All), assess(&view));
}

#[test]
fn which_changes_re_assess_which_namespaces() {
    use std::collections::BTreeSet;
    let inputs = ReinjectionCheck::default();
    let inputs = inputs.inputs();
    let mut c = crate::checks::Changes::default();
    assert_eq!(changed_namespaces(None, inputs), Changed::All, "unknown: everything");
    c.namespaces.insert(Resource::Pods, Some(BTreeSet::from(["shop".to_string()])));
    c.namespaces.insert(Resource::Namespaces, Some(BTreeSet::from(["pay".to_string()])));
    c.namespaces.insert(Resource::Nodes, None);
    assert_eq!(
        changed_namespaces(Some(&c), inputs),
        Changed::Namespaces(BTreeSet::from(["pay".to_string(), "shop".to_string()])),
        "nodes are no input"
    );
    c.namespaces.insert(Resource::ReplicaSets, None);
    assert_eq!(changed_namespaces(Some(&c), inputs), Changed::All, "a re-list of ReplicaSets");
    c.namespaces.remove(&Resource::ReplicaSets);
    c.namespaces.insert(Resource::InjectorConfig, Some(BTreeSet::from(["istio-system".to_string()])));
    assert_eq!(changed_namespaces(Some(&c), inputs), Changed::All, "the injector changes every verdict");
}
