use super::*;
use crate::cache::{Selector, WebhookInfo};
use crate::config::{Glob, LabelSelector, Mode, Profile, Settings};

fn policy(label: &str) -> InjectionSettings {
    let mut p = Settings::defaults(Profile::AsmOnprem).injection;
    p.label = label.parse().unwrap();
    p.mode = Mode::Enforce;
    p
}

fn ns(name: &str, labels: &[(&str, &str)]) -> NamespaceInfo {
    labels.iter().fold(NamespaceInfo::test(name), |n, (k, v)| n.labelled(k, v))
}

const ENABLED: &str = "istio-injection=enabled";
const REV: &str = "istio.io/rev=asm-1234";

#[test]
fn decision_table() {
    use NsState::*;
    let set = |l: &str| Some(Repair { set: l.parse().unwrap(), remove: None });
    let overwrite = |mut p: InjectionSettings| {
        p.overwrite_disabled = true;
        p
    };
    let scoped = |mut p: InjectionSettings| {
        p.include = vec![Glob::try_from("team-*".to_string()).unwrap()];
        p.exclude = vec![Glob::try_from("team-legacy-*".to_string()).unwrap()];
        p.selector = LabelSelector::try_from("env in (prod,staging)".to_string()).unwrap();
        p
    };
    #[rustfmt::skip]
    let cases: Vec<(&str, InjectionSettings, NamespaceInfo, NsState, Option<Repair>)> = vec![
        // 1-4: the default label, basic states
        ("compliant", policy(ENABLED), ns("a", &[("istio-injection", "enabled")]), Compliant, None),
        ("missing", policy(ENABLED), ns("a", &[]), Missing, set(ENABLED)),
        ("missing with other labels", policy(ENABLED), ns("a", &[("team", "x")]), Missing, set(ENABLED)),
        ("wrong value", policy(ENABLED), ns("a", &[("istio-injection", "true")]), WrongValue, set(ENABLED)),
        ("empty value is wrong", policy(ENABLED), ns("a", &[("istio-injection", "")]), WrongValue, set(ENABLED)),
        // 6: disabled is a deliberate opt-out
        ("disabled reported", policy(ENABLED), ns("a", &[("istio-injection", "disabled")]), Disabled, None),
        ("disabled overwritten", overwrite(policy(ENABLED)), ns("a", &[("istio-injection", "disabled")]), Disabled, set(ENABLED)),
        ("disabled overwritten for rev removes istio-injection", overwrite(policy(REV)), ns("a", &[("istio-injection", "disabled")]), Disabled,
            Some(Repair { set: REV.parse().unwrap(), remove: Some("istio-injection".into()) })),
        ("disabled under rev policy reported", policy(REV), ns("a", &[("istio-injection", "disabled")]), Disabled, None),
        // 5: both labels: Istio obeys istio-injection
        ("conflicting enabled+rev", policy(ENABLED), ns("a", &[("istio-injection", "enabled"), ("istio.io/rev", "asm-1")]), Conflicting, None),
        ("conflicting under rev policy", policy(REV), ns("a", &[("istio-injection", "enabled"), ("istio.io/rev", "asm-1234")]), Conflicting, None),
        ("conflicting disabled+rev wins over disabled", overwrite(policy(REV)), ns("a", &[("istio-injection", "disabled"), ("istio.io/rev", "asm-1234")]), Conflicting, None),
        // revision policies
        ("rev compliant", policy(REV), ns("a", &[("istio.io/rev", "asm-1234")]), Compliant, None),
        ("rev missing", policy(REV), ns("a", &[]), Missing, set(REV)),
        ("rev wrong revision", policy(REV), ns("a", &[("istio.io/rev", "asm-1000")]), WrongValue, set(REV)),
        // 9: the other injection key only: would switch control planes
        ("rev policy, namespace on default injector", policy(REV), ns("a", &[("istio-injection", "enabled")]), WrongValue, None),
        ("enabled policy, namespace on a revision", policy(ENABLED), ns("a", &[("istio.io/rev", "asm-1")]), WrongValue, None),
        // 1: terminating beats everything
        ("terminating missing", policy(ENABLED), ns("a", &[]).terminating(), Terminating, None),
        ("terminating excluded", policy(ENABLED), ns("kube-system", &[]).terminating(), Terminating, None),
        // 2: opt-out
        ("opted out", policy(ENABLED), ns("a", &[("meshkeeper.io/injection", "disabled")]), OptedOut, None),
        ("opted out though labelled", policy(ENABLED), ns("a", &[("meshkeeper.io/injection", "disabled"), ("istio-injection", "enabled")]), OptedOut, None),
        ("opt-out label with another value is no opt-out", policy(ENABLED), ns("a", &[("meshkeeper.io/injection", "enabled")]), Missing, set(ENABLED)),
        // 3-4: scope
        ("default exclusions", policy(ENABLED), ns("kube-system", &[]), Excluded, None),
        ("gke-system excluded", policy(ENABLED), ns("gke-system", &[]), Excluded, None),
        ("excluded but labelled", policy(ENABLED), ns("istio-system", &[("istio-injection", "enabled")]), ExcludedLabelled, None),
        ("excluded with rev label", policy(ENABLED), ns("kube-public", &[("istio.io/rev", "x")]), ExcludedLabelled, None),
        ("excluded and disabled is fine", policy(ENABLED), ns("kube-system", &[("istio-injection", "disabled")]), Excluded, None),
        ("include glob miss", scoped(policy(ENABLED)), ns("shop", &[("env", "prod")]), Excluded, None),
        ("exclude glob wins over include", scoped(policy(ENABLED)), ns("team-legacy-1", &[("env", "prod")]), Excluded, None),
        ("selector miss", scoped(policy(ENABLED)), ns("team-a", &[("env", "dev")]), Excluded, None),
        ("selector hit", scoped(policy(ENABLED)), ns("team-a", &[("env", "prod")]), Missing, set(ENABLED)),
        ("selector hit compliant", scoped(policy(ENABLED)), ns("team-b", &[("env", "staging"), ("istio-injection", "enabled")]), Compliant, None),
    ];
    assert!(cases.len() >= 25);
    for (name, p, n, state, repair) in cases {
        let d = decide(&n, &p);
        assert_eq!(d.state, state, "{name}: state");
        assert_eq!(d.repair, repair, "{name}: repair");
    }
}

/// Applies a remedy's JSON patch to the namespace as the API server would.
fn apply(remedy: &Remedy, live: &mut serde_json::Value) -> Result<(), String> {
    let ops: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(remedy.patch_for(&remedy.fields)))
        .map_err(|e| e.to_string())?;
    json_patch::patch(live, &ops).map_err(|e| e.to_string())
}

#[test]
fn the_remedy_touches_only_the_label_and_is_guarded_by_the_resource_version() {
    let n = ns("a", &[("team", "x")]);
    let d = decide(&n, &policy(ENABLED));
    let r = remedy(&n, &d, d.repair.as_ref().unwrap());
    assert_eq!(r.fields[0].field, "label:istio-injection");
    assert_eq!((r.fields[0].expected.as_str(), r.fields[0].actual.as_str()), ("enabled", "unset"));
    let mut live = json!({"metadata": {"name": "a", "resourceVersion": "1", "labels": {"team": "x"}}});
    apply(&r, &mut live).unwrap();
    assert_eq!(live["metadata"]["labels"], json!({"team": "x", "istio-injection": "enabled"}));
    let mut changed = json!({"metadata": {"name": "a", "resourceVersion": "2", "labels": {"team": "y"}}});
    assert!(apply(&r, &mut changed).is_err(), "a concurrent change fails the resourceVersion test");

    let n = ns("b", &[("istio-injection", "disabled")]);
    let mut p = policy(REV);
    p.overwrite_disabled = true;
    let d = decide(&n, &p);
    let r = remedy(&n, &d, d.repair.as_ref().unwrap());
    let mut live =
        json!({"metadata": {"name": "b", "resourceVersion": "1", "labels": {"istio-injection": "disabled"}}});
    apply(&r, &mut live).unwrap();
    assert_eq!(live["metadata"]["labels"], json!({"istio.io/rev": "asm-1234"}), "the revision label wins");

    let mut bare = ns("c", &[]);
    bare.resource_version = None;
    let d = decide(&bare, &policy(ENABLED));
    let r = remedy(&bare, &d, d.repair.as_ref().unwrap());
    let mut live = json!({"metadata": {"name": "c"}});
    apply(&r, &mut live).unwrap();
    assert_eq!(live["metadata"]["labels"], json!({"istio-injection": "enabled"}), "creates a missing labels map");
}

#[test]
fn the_remedy_names_other_owners_of_the_label() {
    let mut n = ns("a", &[("istio-injection", "yes")]);
    n.label_owners.insert("istio-injection".into(), vec!["argocd-controller".into(), "meshkeeper".into()]);
    let d = decide(&n, &policy(ENABLED));
    let r = remedy(&n, &d, d.repair.as_ref().unwrap());
    assert_eq!(r.fields[0].owners, ["argocd-controller"]);
}

fn snapshot(nss: &Index<NamespaceInfo>, whs: &Index<WebhookConfigInfo>) -> crate::cache::Snapshot {
    crate::cache::Snapshot { namespaces: nss.clone(), webhooks: whs.clone(), ..Default::default() }
}

fn webhook(name: &str, sel: &[(&str, &str)]) -> WebhookConfigInfo {
    WebhookConfigInfo {
        name: name.into(),
        uid: None,
        webhooks: vec![WebhookInfo {
            name: "sidecar-injector.istio.io".into(),
            namespace_selector: Some(Selector {
                match_labels: sel.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                match_expressions: vec![],
            }),
            object_selector: None,
            service: None,
            url: None,
            ca_bundle: None,
            failure_policy: Some("Fail".into()),
        }],
    }
}

#[test]
fn remedies_only_for_remediable_namespaces() {
    let mut s = Settings::defaults(Profile::AsmOnprem);
    s.injection.mode = Mode::Enforce;
    let nss = Index::from_objects([
        ns("a", &[]),
        ns("b", &[("istio-injection", "enabled")]),
        ns("c", &[("istio-injection", "disabled")]),
        ns("d", &[("istio-injection", "yes")]),
        ns("kube-system", &[]),
    ]);
    let whs = Index::from_objects([webhook("istio-sidecar-injector", &[("istio-injection", "enabled")])]);
    let api = Default::default();
    let snap = snapshot(&nss, &whs);
    let health = Default::default();
    let view = View::of(&s, &api, &snap, &health, 0);
    let Evaluation { report, remedies, .. } = InjectionCheck.evaluate(&view);
    let targets: Vec<_> = remedies.iter().map(|a| (a.object.name.as_str(), a.reason)).collect();
    assert_eq!(targets, [("a", "InjectionLabelApplied"), ("d", "InjectionLabelRestored")]);
    let reasons: Vec<_> = report.findings().map(|f| (f.object.name.as_str(), f.reason, f.severity)).collect();
    assert_eq!(
        reasons,
        [
            ("a", "InjectionLabelMissing", Severity::Warning),
            ("c", "InjectionDisabled", Severity::Info),
            ("d", "InjectionLabelWrong", Severity::Warning),
        ]
    );
    s.injection.mode = Mode::Audit;
    let view = View::of(&s, &api, &snap, &health, 0);
    assert_eq!(InjectionCheck.evaluate(&view).remedies.len(), 2, "audit mode still proposes; the planner holds them");
}

#[test]
fn a_compliant_cluster_plans_nothing() {
    let mut s = Settings::defaults(Profile::AsmOnprem);
    s.injection.mode = Mode::Enforce;
    let nss = Index::from_objects((0..50).map(|i| ns(&format!("n{i}"), &[("istio-injection", "enabled")])));
    let whs = Index::default();
    let api = Default::default();
    let snap = snapshot(&nss, &whs);
    let health = Default::default();
    let view = View::of(&s, &api, &snap, &health, 0);
    let Evaluation { report, remedies, .. } = InjectionCheck.evaluate(&view);
    assert!(remedies.is_empty());
    assert_eq!(report.findings().count(), 0);
}

#[test]
fn webhook_selector_cross_check() {
    let rev: LabelPair = REV.parse().unwrap();
    let looked = vec!["istio-sidecar-injector-asm-1234".to_string()];
    let wrong = webhook("istio-sidecar-injector", &[("istio-injection", "enabled")]);
    let item = selector_item(&rev, Some(&wrong), &looked);
    let Outcome::Finding(f) = &item.outcome else { panic!("expected a finding: {item:?}") };
    assert_eq!((f.reason, f.severity), ("InjectorSelectorMismatch", Severity::Error));
    assert_eq!(f.actual, "istio-injection=enabled");
    let right = webhook("istio-sidecar-injector-asm-1234", &[("istio.io/rev", "asm-1234")]);
    assert_eq!(selector_item(&rev, Some(&right), &looked).outcome, Outcome::Pass);
    assert!(matches!(selector_item(&rev, None, &looked).outcome, Outcome::Skipped { .. }));
    let mut any = right.clone();
    any.webhooks[0].namespace_selector = None;
    assert_eq!(selector_item(&rev, Some(&any), &looked).outcome, Outcome::Pass, "no selector selects everything");
}

#[test]
fn revision_policy_looks_for_the_revisioned_webhook_first() {
    let mut s = Settings::defaults(Profile::Istiod);
    s.injection.label = REV.parse().unwrap();
    let nss = Index::default();
    let whs = Index::from_objects([
        webhook("istio-sidecar-injector", &[("istio-injection", "enabled")]),
        webhook("istio-sidecar-injector-asm-1234", &[("istio.io/rev", "asm-1234")]),
    ]);
    let api = Default::default();
    let snap = snapshot(&nss, &whs);
    let health = Default::default();
    let report = InjectionCheck.evaluate(&View::of(&s, &api, &snap, &health, 0)).report;
    assert_eq!(report.items[0].outcome, Outcome::Pass);
}

#[test]
fn tally_counts_every_state_and_only_scoped_namespaces_get_compliance() {
    let p = policy(ENABLED);
    let nss = Index::from_objects([
        ns("a", &[("istio-injection", "enabled")]),
        ns("b", &[]),
        ns("kube-system", &[]),
        ns("t", &[]).terminating(),
    ]);
    let (states, compliant) = tally(&nss, &p);
    assert_eq!(states.len(), NsState::ALL.len(), "every state has a series, even at 0");
    assert_eq!(states[&NsState::Compliant], 1);
    assert_eq!(states[&NsState::Missing], 1);
    assert_eq!(states[&NsState::Excluded], 1);
    assert_eq!(states[&NsState::Terminating], 1);
    assert_eq!(states[&NsState::Conflicting], 0);
    assert_eq!(compliant, [("a".to_string(), true), ("b".to_string(), false)]);
}
