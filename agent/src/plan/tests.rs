//! Planner and ledger tables: modes, gates, the contest guard, cooldowns, staleness, bounds.

use k8s_openapi::api::core::v1::Service;
use serde_json::json;

use super::*;
use crate::change::FieldChange;
use crate::config::Profile;
use crate::findings::Severity;

const MIN: i64 = 60_000;

fn settings() -> Settings {
    let mut s = Settings::defaults(Profile::AsmOnprem);
    s.injection.mode = Mode::Enforce;
    s.gateway.repair = true;
    s
}

fn gw() -> ObjectRef {
    ObjectRef::new("v1", "Service", Some("istio-system"), "istio-ingressgateway")
}

fn field(name: &str, expected: &str, actual: &str, owners: &[&str]) -> FieldChange {
    FieldChange {
        field: format!("node_port:{name}"),
        expected: expected.into(),
        actual: actual.into(),
        owners: owners.iter().map(|o| o.to_string()).collect(),
        ops: vec![json!({"op": "replace", "path": format!("/spec/ports/{name}"), "value": expected})],
    }
}

/// A gateway remedy observed on resourceVersion `rv`.
fn remedy(rv: u64, fields: Vec<FieldChange>) -> Remedy {
    Remedy {
        check: crate::checks::gateway::CHECK,
        kind: crate::checks::gateway::ACTION,
        reason: "GatewayPinRepaired",
        object: gw(),
        resource: ApiResource::erase::<Service>(&()),
        resource_version: Some(rv.to_string()),
        prelude: vec![],
        fields,
        writers: vec![],
    }
}

fn leader() -> Gates {
    Gates { leader: true, synced: true, failing: vec![], restarts_queued: 0 }
}

fn run(s: &Settings, remedies: &[Remedy], gates: &Gates, now: i64, ledger: &mut Ledger) -> Plan {
    plan(s, remedies, None, gates, now, ledger)
}

fn reasons(p: &Plan) -> Vec<&'static str> {
    p.report.findings().map(|f| f.reason).collect()
}

fn waits(p: &Plan) -> Vec<Wait> {
    p.waiting.iter().map(|w| w.wait.clone()).collect()
}

/// The planned action, done, with the version the write produced.
fn done(p: &Plan, ledger: &mut Ledger, written: u64, now: i64) {
    assert_eq!(p.actions.len(), 1, "one action: {:?}", p.waiting);
    ledger.record(&p.actions[0], &Outcome::Done { resource_version: Some(written.to_string()) }, now);
}

#[test]
fn a_fresh_object_with_many_drifted_fields_is_one_write_and_never_a_contest() {
    let s = settings();
    let mut l = Ledger::default();
    let fields: Vec<FieldChange> =
        ["http2", "https", "status-port", "tcp", "tls"].iter().map(|n| field(n, "3", "30001", &[])).collect();
    let p = run(&s, &[remedy(5, fields.clone())], &leader(), 0, &mut l);
    assert_eq!(p.actions.len(), 1);
    let Operation::JsonPatch(ops) = &p.actions[0].operation else { panic!("a JSON patch") };
    assert_eq!(ops.len(), 5, "all five ports in one patch");
    assert_eq!(p.actions[0].fields.len(), 5);
    done(&p, &mut l, 6, 10);
    // The cache still shows the version the plan was made from: pending, not a revert.
    let p = run(&s, &[remedy(5, fields.clone())], &leader(), 20, &mut l);
    assert!(p.actions.is_empty());
    assert_eq!(waits(&p), vec![Wait::Pending; 1]);
    // Then the write's own version arrives: nothing drifts any more.
    let p = run(&s, &[], &leader(), 30, &mut l);
    assert!(p.actions.is_empty() && p.waiting.is_empty());
    assert_eq!(reasons(&p), Vec::<&str>::new(), "no contest from meshkeeper's own writes");
}

#[test]
fn a_field_changed_back_by_another_manager_n_times_is_contested_and_named() {
    let s = settings();
    let mut l = Ledger::default();
    let mut rv = 10;
    let drift = |rv: u64| remedy(rv, vec![field("http2", "31380", "32080", &["kubectl-patch"])]);
    let first = run(&s, &[drift(rv)], &leader(), 0, &mut l);
    assert_eq!(reasons(&first), Vec::<&str>::new(), "the first drift is no revert: meshkeeper had not set it");
    done(&first, &mut l, rv + 1, 100);
    for n in 1..=2 {
        rv += 2;
        let p = run(&s, &[drift(rv)], &leader(), n * MIN, &mut l);
        assert_eq!(reasons(&p), Vec::<&str>::new(), "revert {n} of 3: still repairing");
        // The same observed version in later passes counts once.
        let _ = run(&s, &[drift(rv)], &leader(), n * MIN + 1, &mut l);
        done(&p, &mut l, rv + 1, n * MIN + 2);
    }
    rv += 2;
    let p = run(&s, &[drift(rv)], &leader(), 3 * MIN, &mut l);
    assert!(p.actions.is_empty(), "contested: meshkeeper stops");
    assert_eq!(
        waits(&p),
        [Wait::Contested { field: "node_port:http2".into(), by: vec!["kubectl-patch".into()], reverts: 3 }]
    );
    let f = p.report.findings().next().unwrap();
    assert_eq!((f.reason, f.severity), ("RepairContested", Severity::Error));
    assert!(f.message.contains("changed back 3 times in 10 min by kubectl-patch"), "{}", f.message);
    assert!(f.hint.as_deref().unwrap().contains("kubectl-patch"));
    // Once the window has passed without new reverts, it is repaired again.
    let p = run(&s, &[drift(rv)], &leader(), 14 * MIN, &mut l);
    assert_eq!(p.actions.len(), 1);
}

#[test]
fn a_contested_field_does_not_hold_the_other_fields_of_the_object() {
    let s = settings();
    let mut l = Ledger::default();
    let p = run(&s, &[remedy(1, vec![field("http2", "31380", "32080", &[])])], &leader(), 0, &mut l);
    done(&p, &mut l, 2, 1);
    let mut s1 = s.clone();
    s1.repairs.contest_reverts = 1;
    // http2 changed back by an operator, and tls newly drifted.
    let both =
        remedy(3, vec![field("http2", "31380", "32080", &["istio-operator"]), field("tls", "30158", "30001", &[])]);
    let p = run(&s1, &[both], &leader(), 10, &mut l);
    assert_eq!(p.actions.len(), 1);
    assert_eq!(p.actions[0].fields, [("node_port:tls".to_string(), "30158".to_string())], "only the free field");
    assert!(matches!(&waits(&p)[0], Wait::Contested { by, .. } if by == &["istio-operator".to_string()]));
}

#[test]
fn a_removed_field_is_attributed_to_who_wrote_after_the_repair() {
    let s = settings();
    let mut l = Ledger::default();
    let mut r = remedy(1, vec![field("http2", "31380", "unset", &[])]);
    let p = run(&s, std::slice::from_ref(&r), &leader(), 5_000, &mut l);
    done(&p, &mut l, 2, 5_000);
    r.resource_version = Some("3".into());
    r.writers = vec![("argocd-controller".into(), 6), ("kubectl-create".into(), 1)];
    let mut s1 = s.clone();
    s1.repairs.contest_reverts = 1;
    let p = run(&s1, &[r.clone()], &leader(), 7_000, &mut l);
    assert!(matches!(&waits(&p)[0], Wait::Contested { by, .. } if by == &["argocd-controller".to_string()]));
    // Nobody wrote after the repair: "unknown".
    let mut l = Ledger::default();
    let p = run(&s, &[remedy(1, vec![field("http2", "31380", "unset", &[])])], &leader(), 5_000, &mut l);
    done(&p, &mut l, 2, 5_000);
    r.writers = vec![("kubectl-create".into(), 1)];
    let p = run(&s1, &[r], &leader(), 7_000, &mut l);
    assert!(matches!(&waits(&p)[0], Wait::Contested { by, .. } if by == &["unknown".to_string()]));
}

#[test]
fn gates_say_why_nothing_is_done() {
    let r = [remedy(1, vec![field("http2", "31380", "32080", &[])])];
    let cases: Vec<(&str, Settings, Gates, Wait)> = vec![
        (
            "repair off",
            {
                let mut s = settings();
                s.gateway.repair = false;
                s
            },
            leader(),
            Wait::ReportOnly { setting: "gateway.repair is false".into() },
        ),
        ("follower", settings(), Gates { leader: false, ..leader() }, Wait::NotLeader),
        ("not synced", settings(), Gates { synced: false, ..leader() }, Wait::NotSynced { resources: vec![] }),
        (
            "its watch is failing",
            settings(),
            Gates { failing: vec![("gateway", vec!["services".into()])], ..leader() },
            Wait::NotSynced { resources: vec!["services".into()] },
        ),
    ];
    for (name, s, gates, want) in cases {
        let p = run(&s, &r, &gates, 0, &mut Ledger::default());
        assert!(p.actions.is_empty(), "{name}");
        assert_eq!(waits(&p), [want], "{name}");
    }
    // Another check's failing watch does not hold this one.
    let gates = Gates { failing: vec![("injection", vec!["namespaces".into()])], ..leader() };
    assert_eq!(run(&settings(), &r, &gates, 0, &mut Ledger::default()).actions.len(), 1);
    // The injection policy in audit mode.
    let mut s = settings();
    s.injection.mode = Mode::Audit;
    let mut lr = r[0].clone();
    lr.check = crate::checks::injection::CHECK;
    let p = run(&s, &[lr], &leader(), 0, &mut Ledger::default());
    assert_eq!(waits(&p), [Wait::ReportOnly { setting: "injection.mode is audit".into() }]);
}

#[test]
fn a_race_is_replanned_on_fresh_state_and_failures_cool_down() {
    let s = settings();
    let mut l = Ledger::default();
    let r = |rv| [remedy(rv, vec![field("http2", "31380", "32080", &[])])];
    let p = run(&s, &r(1), &leader(), 0, &mut l);
    // Read back after the conflict: version 2 exists, so the watch will bring it.
    l.record(&p.actions[0], &Outcome::ChangedMeanwhile { current: Some("2".into()) }, 1);
    assert_eq!(waits(&run(&s, &r(1), &leader(), 2, &mut l)), [Wait::Pending], "not retried on the same version");
    let p = run(&s, &r(2), &leader(), 3, &mut l);
    assert_eq!(p.actions.len(), 1, "a newer version is planned afresh, with no cooldown");
    assert_eq!(reasons(&p), Vec::<&str>::new(), "a race is not a failure");

    l.record(&p.actions[0], &Outcome::Forbidden("namespaces is forbidden (403 Forbidden)".into()), 1_000);
    let p = run(&s, &r(3), &leader(), 1_500, &mut l);
    assert_eq!(waits(&p), [Wait::CoolingDown { until_ms: 2_000 }]);
    assert_eq!(reasons(&p), ["WriteForbidden"]);
    let f = p.report.findings().next().unwrap();
    assert_eq!(f.object, gw(), "the finding is about the object, so it gets an Event");
    let p = run(&s, &r(3), &leader(), 2_000, &mut l);
    l.record(&p.actions[0], &Outcome::Failed("down (503 ServiceUnavailable)".into()), 2_000);
    assert_eq!(waits(&run(&s, &r(3), &leader(), 3_999, &mut l)), [Wait::CoolingDown { until_ms: 4_000 }], "doubled");
    let p = run(&s, &r(3), &leader(), 4_000, &mut l);
    assert_eq!(reasons(&p), ["WriteFailed"]);
    l.record(&p.actions[0], &Outcome::Done { resource_version: Some("4".into()) }, 4_001);
    assert_eq!(reasons(&run(&s, &[], &leader(), 4_002, &mut l)), Vec::<&str>::new(), "a success clears it");
}

#[test]
fn a_conflict_on_an_object_still_at_the_planned_version_is_re_decided_after_a_backoff() {
    let s = settings();
    let r = |rv| [remedy(rv, vec![field("http2", "31380", "32080", &[])])];
    // Unreadable after the conflict: treated as changed (wait for the watch).
    let mut l = Ledger::default();
    let p = run(&s, &r(1), &leader(), 0, &mut l);
    l.record(&p.actions[0], &Outcome::ChangedMeanwhile { current: None }, 1);
    assert_eq!(waits(&run(&s, &r(1), &leader(), 5_000, &mut l)), [Wait::Pending]);
    // Read back at the very version the plan saw: nothing newer will come, so the same plan is
    // re-decided once the backoff has passed (1 s, then 2 s), never reported as a failure.
    let mut l = Ledger::default();
    let p = run(&s, &r(1), &leader(), 0, &mut l);
    l.record(&p.actions[0], &Outcome::ChangedMeanwhile { current: Some("1".into()) }, 10);
    let p = run(&s, &r(1), &leader(), 500, &mut l);
    assert_eq!(waits(&p), [Wait::CoolingDown { until_ms: 1_010 }]);
    assert_eq!(reasons(&p), Vec::<&str>::new(), "a race is not a failure");
    let p = run(&s, &r(1), &leader(), 1_010, &mut l);
    assert_eq!(p.actions.len(), 1, "re-decided on the same version");
    l.record(&p.actions[0], &Outcome::ChangedMeanwhile { current: Some("1".into()) }, 1_020);
    assert_eq!(waits(&run(&s, &r(1), &leader(), 2_000, &mut l)), [Wait::CoolingDown { until_ms: 3_020 }], "doubled");
}

#[test]
fn the_ledger_is_bounded_by_the_window_not_by_a_count() {
    let s = settings();
    let mut l = Ledger::default();
    for i in 0..500 {
        let mut r = remedy(1, vec![field("http2", "31380", "32080", &[])]);
        r.object = ObjectRef::namespace(&format!("ns-{i}"));
        let p = run(&s, &[r], &leader(), i, &mut l);
        done(&p, &mut l, 2, i);
    }
    assert_eq!(l.size(), (500, 500), "every object's history is kept within the window");
    let _ = run(&s, &[], &leader(), 11 * MIN, &mut l);
    assert_eq!(l.size(), (0, 0), "and dropped after it");
    // A deleted object (404) drops its history at once.
    let p = run(&s, &[remedy(1, vec![field("http2", "31380", "32080", &[])])], &leader(), 0, &mut l);
    done(&p, &mut l, 2, 0);
    let p = run(&s, &[remedy(3, vec![field("http2", "31380", "32080", &[])])], &leader(), 1, &mut l);
    l.record(&p.actions[0], &Outcome::NotFound, 2);
    assert_eq!(l.size().0, 0);
}

#[test]
fn views_of_an_older_version_than_meshkeeper_wrote_are_no_revert() {
    let s = Settings {
        repairs: crate::config::RepairSettings { contest_reverts: 1, contest_window_minutes: 10 },
        ..settings()
    };
    let mut l = Ledger::default();
    let p = run(&s, &[remedy(10, vec![field("http2", "31380", "32080", &["x"])])], &leader(), 0, &mut l);
    done(&p, &mut l, 12, 1);
    // Version 11 (someone else's unrelated write, seen before ours) still shows the drift.
    let p = run(&s, &[remedy(11, vec![field("http2", "31380", "32080", &["x"])])], &leader(), 2, &mut l);
    assert!(p.waiting.iter().all(|w| !matches!(w.wait, Wait::Contested { .. })), "{:?}", p.waiting);
}

#[test]
fn outcomes_label_and_explain() {
    assert_eq!(Outcome::ChangedMeanwhile { current: None }.label(), "conflict");
    assert!(!Outcome::ChangedMeanwhile { current: None }.is_failure());
    assert!(Outcome::Forbidden("x".into()).is_failure());
    assert_eq!(Outcome::Done { resource_version: None }.label(), "success");
    assert!(Outcome::DryRun.is_done());
    assert!(Outcome::NotFound.error().unwrap().contains("no longer exists"));
}

// === restarts ===

mod restarts {
    use super::*;
    use crate::change::{RestartCandidate, RestartInput, Restartable};
    use crate::config::{MaintenanceWindow, TimeOfDay};

    /// 2026-11-30T12:00:00Z, a Monday.
    const NOON: i64 = 1_796_040_000;

    fn enforce() -> Settings {
        let mut s = Settings::defaults(Profile::AsmOnprem);
        s.reinjection.mode = Mode::Enforce;
        s.reinjection.max_restarts_per_hour = 10;
        s.reinjection.max_rollouts_in_progress = 5;
        s
    }

    fn cand(ns: &str, name: &str, missing: usize, stale: usize) -> RestartCandidate {
        RestartCandidate {
            workload: ObjectRef::new("apps/v1", "Deployment", Some(ns), name),
            kind: Restartable::Deployment,
            namespace: ns.into(),
            missing,
            stale,
            pods: missing + stale,
            restarted_at: None,
            generation: 4,
            template_has_metadata: true,
            template_has_annotations: true,
            evict: None,
            replacement_pending: false,
        }
    }

    fn input(c: Vec<RestartCandidate>) -> RestartInput {
        RestartInput { candidates: c, ..Default::default() }
    }

    fn go(s: &Settings, i: &RestartInput, gates: &Gates, now_s: i64, l: &mut Ledger) -> Plan {
        plan(s, &[], Some(i), gates, now_s * 1000, l)
    }

    fn names(p: &Plan) -> Vec<String> {
        p.actions
            .iter()
            .map(|a| format!("{}/{}", a.object.namespace.clone().unwrap_or_default(), a.object.name))
            .collect()
    }

    fn waits(p: &Plan) -> Vec<(String, &'static str)> {
        p.waiting.iter().map(|w| (w.object.name.clone(), w.wait.label())).collect()
    }

    #[test]
    fn gates_hold_every_candidate_with_a_reason() {
        let i = input(vec![cand("shop", "web", 2, 0)]);
        let mut audit = enforce();
        audit.reinjection.mode = Mode::Audit;
        let follower = Gates { leader: false, ..leader() };
        let unsynced = Gates { synced: false, ..leader() };
        let down = RestartInput {
            injector_down: Some("the injector's Service istio-system/istio-sidecar-injector has no ready pod".into()),
            ..i.clone()
        };
        let (on, lead) = (enforce(), leader());
        let cases: Vec<(&str, &Settings, &RestartInput, &Gates, &str)> = vec![
            ("audit", &audit, &i, &lead, "report_only"),
            ("follower", &on, &i, &follower, "not_leader"),
            ("not synced", &on, &i, &unsynced, "not_synced"),
            ("injector down", &on, &down, &lead, "injector_unhealthy"),
        ];
        for (name, s, inp, gates, want) in cases {
            let p = go(s, inp, gates, NOON, &mut Ledger::default());
            assert!(p.actions.is_empty(), "{name}");
            assert_eq!(waits(&p), [("web".to_string(), want)], "{name}");
        }
        let p = go(&enforce(), &i, &leader(), NOON, &mut Ledger::default());
        assert_eq!(names(&p), ["shop/web"]);
        assert_eq!(p.rollouts_in_progress, 1);
    }

    #[test]
    fn maintenance_windows_open_and_close() {
        let mut s = enforce();
        s.reinjection.maintenance_windows =
            vec![MaintenanceWindow { days: vec![], start: TimeOfDay(22 * 60), end: TimeOfDay(4 * 60) }];
        let i = input(vec![cand("shop", "web", 1, 0)]);
        let p = go(&s, &i, &leader(), NOON, &mut Ledger::default());
        assert!(p.actions.is_empty());
        assert_eq!(p.waiting[0].wait, Wait::OutsideWindow { opens_at: Some(NOON + 10 * 3600) });
        let p = go(&s, &i, &leader(), NOON + 11 * 3600, &mut Ledger::default());
        assert_eq!(names(&p), ["shop/web"], "inside the window (23:00)");
        let p = go(&s, &i, &leader(), NOON + 16 * 3600, &mut Ledger::default());
        assert!(p.actions.is_empty(), "04:00: it has closed; nothing new starts");
    }

    #[test]
    fn the_budget_concurrency_and_namespace_limits_hold_within_one_pass() {
        let mut s = enforce();
        s.reinjection.max_restarts_per_hour = 3;
        s.reinjection.max_rollouts_in_progress = 2;
        let i = input(vec![
            cand("a", "one", 0, 1),
            cand("a", "two", 1, 0),
            cand("b", "three", 1, 0),
            cand("c", "four", 1, 0),
            cand("d", "five", 1, 0),
        ]);
        let p = go(&s, &i, &leader(), NOON, &mut Ledger::default());
        // Missing first: a/two (a is now busy), b/three; then the concurrency limit (2).
        assert_eq!(names(&p), ["a/two", "b/three"]);
        let w = waits(&p);
        assert!(w.contains(&("four".into(), "rollouts_in_progress")), "{w:?}");
        assert!(
            w.contains(&("one".into(), "namespace_busy")) || w.contains(&("one".into(), "rollouts_in_progress")),
            "{w:?}"
        );
        // Restarts by anyone in the last hour count against the budget.
        let mut busy = i.clone();
        busy.recent_restarts = (0..3)
            .map(|n| (ObjectRef::new("apps/v1", "Deployment", Some("x"), &format!("d{n}")), NOON - 600))
            .collect();
        let p = go(&s, &busy, &leader(), NOON, &mut Ledger::default());
        assert!(p.actions.is_empty());
        assert_eq!(p.waiting[0].wait, Wait::BudgetSpent { per_hour: 3, until_ms: (NOON - 600 + 3600) * 1000 });
    }

    /// The storm's overrun (faults 10): a plan made while the previous plan's last restart was
    /// still queued did not count it, and a namespace earlier in the order had just freed up,
    /// so it planned another: 25 restarts with `max_restarts_per_hour: 24`.
    #[test]
    fn restarts_not_carried_out_yet_hold_the_next_plan() {
        let mut s = enforce();
        s.reinjection.max_restarts_per_hour = 2;
        let earlier = (ObjectRef::new("apps/v1", "Deployment", Some("a"), "first"), NOON - 60);
        let mut i = input(vec![cand("b", "one", 0, 1), cand("c", "two", 0, 1)]);
        i.recent_restarts = vec![earlier.clone()];
        let p1 = go(&s, &i, &leader(), NOON, &mut Ledger::default());
        assert_eq!(names(&p1), ["b/one"], "the last restart the hour allows");
        // Before the actuator carried it out, a/first's rollout completed: namespace a is free.
        let mut next = input(vec![cand("a", "zero", 0, 1), cand("b", "one", 0, 1), cand("c", "two", 0, 1)]);
        next.recent_restarts = vec![earlier];
        let unaware = go(&s, &next, &leader(), NOON + 1, &mut Ledger::default());
        assert_eq!(names(&unaware), ["a/zero"], "not counting b/one, the budget looks unspent");
        let queued = Gates { restarts_queued: 1, ..leader() };
        let mut l = Ledger::default();
        let p2 = go(&s, &next, &queued, NOON + 1, &mut l);
        assert!(p2.actions.is_empty(), "{:?}", names(&p2));
        // Only the one that would start now waits for the queue; the others keep their reason.
        assert_eq!(
            waits(&p2),
            [("zero".into(), "pending"), ("one".into(), "budget_spent"), ("two".into(), "budget_spent")]
        );
        assert_eq!(p2.rollouts_in_progress, 0, "a place held is no rollout in progress");
        // Carried out: the next plan counts it, and the budget is spent.
        l.record(&p1.actions[0], &Outcome::Done { resource_version: Some("9".into()) }, (NOON + 1) * 1000);
        let p3 = go(&s, &next, &leader(), NOON + 2, &mut l);
        assert!(p3.actions.is_empty(), "{:?}", names(&p3));
        assert!(waits(&p3).contains(&("zero".into(), "budget_spent")), "{:?}", waits(&p3));
    }

    #[test]
    fn cooldowns_survive_a_leadership_change_and_sent_restarts_count_until_seen() {
        let s = enforce();
        let mut l = Ledger::default();
        let i = input(vec![cand("shop", "web", 1, 0), cand("pay", "api", 1, 0)]);
        let p = go(&s, &i, &leader(), NOON, &mut l);
        assert_eq!(p.actions.len(), 2);
        for a in &p.actions {
            l.record(a, &Outcome::Done { resource_version: Some("9".into()) }, NOON * 1000);
        }
        // The cache has not seen the restarts yet: same candidates, same generation.
        let p = go(&s, &i, &leader(), NOON + 1, &mut l);
        assert!(p.actions.is_empty(), "no second restart of the same workloads");
        assert!(p.waiting.iter().all(|w| w.wait.label() == "cooling_down"), "{:?}", p.waiting);
        assert_eq!(p.rollouts_in_progress, 2, "sent but not yet seen still counts");
        // A new leader, with no memory, sees the restart annotation in the cache.
        let mut seen = i.clone();
        for c in &mut seen.candidates {
            c.restarted_at = Some(NOON);
        }
        let p = go(&s, &seen, &leader(), NOON + 600, &mut Ledger::default());
        assert!(p.actions.is_empty());
        assert!(
            p.waiting
                .iter()
                .all(|w| matches!(w.wait, Wait::CoolingDown { until_ms } if until_ms == (NOON + 3600) * 1000))
        );
        let p = go(&s, &seen, &leader(), NOON + 3601, &mut Ledger::default());
        assert_eq!(p.actions.len(), 2, "after the cooldown");
    }

    #[test]
    fn on_delete_pods_are_evicted_one_at_a_time_and_a_pdb_defers_it() {
        let s = enforce();
        let mut c = cand("shop", "db", 1, 0);
        c.kind = Restartable::StatefulSet;
        c.workload.kind = "StatefulSet".into();
        c.evict = Some(("db-1".into(), NOON - 100));
        let i = input(vec![c]);
        let mut l = Ledger::default();
        let p = go(&s, &i, &leader(), NOON, &mut l);
        assert_eq!(p.actions.len(), 1);
        assert_eq!(p.actions[0].operation, Operation::Evict);
        assert_eq!((p.actions[0].object.kind.as_str(), p.actions[0].object.name.as_str()), ("Pod", "db-1"));
        l.record(
            &p.actions[0],
            &Outcome::Throttled("Cannot evict pod as it would violate the pod's disruption budget.".into()),
            NOON * 1000,
        );
        let p = go(&s, &i, &leader(), NOON + 5, &mut l);
        assert!(p.actions.is_empty(), "a PodDisruptionBudget said not now: wait");
        let p = go(&s, &i, &leader(), NOON + 11, &mut l);
        assert_eq!(p.actions.len(), 1, "then try again");
    }

    #[test]
    fn the_restart_patch_is_what_kubectl_sends_and_refuses_a_changed_spec() {
        let c = cand("shop", "web", 1, 0);
        let ops: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(
            crate::plan::restarts::restart_patch(&c, "2026-11-30T12:00:00Z"),
        ))
        .unwrap();
        let mut d = json!({"metadata": {"name": "web", "generation": 4}, "spec": {"template": {"metadata": {"annotations": {"team": "a"}}}}});
        json_patch::patch(&mut d, &ops).unwrap();
        assert_eq!(
            d["spec"]["template"]["metadata"]["annotations"],
            json!({"team": "a", "kubectl.kubernetes.io/restartedAt": "2026-11-30T12:00:00Z"})
        );
        let mut changed = json!({"metadata": {"name": "web", "generation": 5}, "spec": {"template": {"metadata": {"annotations": {}}}}});
        assert!(json_patch::patch(&mut changed, &ops).is_err(), "the spec changed meanwhile");
        for (has_meta, has_ann, doc) in [
            (false, false, json!({"metadata": {"generation": 4}, "spec": {"template": {}}})),
            (
                true,
                false,
                json!({"metadata": {"generation": 4}, "spec": {"template": {"metadata": {"labels": {"app": "web"}}}}}),
            ),
        ] {
            let c = RestartCandidate {
                template_has_metadata: has_meta,
                template_has_annotations: has_ann,
                ..cand("shop", "web", 1, 0)
            };
            let ops: json_patch::Patch =
                serde_json::from_value(serde_json::Value::Array(crate::plan::restarts::restart_patch(&c, "t")))
                    .unwrap();
            let mut doc = doc;
            json_patch::patch(&mut doc, &ops).unwrap();
            assert_eq!(doc["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"], "t");
        }
        assert_eq!(crate::plan::restarts::rfc3339(NOON * 1000 + 999), "2026-11-30T12:00:00Z");
    }
}

#[test]
fn every_wait_label_is_a_known_pending_reason() {
    let waits = [
        Wait::ReportOnly { setting: "x".into() },
        Wait::Contested { field: "f".into(), by: vec![], reverts: 3 },
        Wait::NotLeader,
        Wait::NotSynced { resources: vec![] },
        Wait::CoolingDown { until_ms: 0 },
        Wait::Pending,
        Wait::InjectorUnhealthy { why: "x".into() },
        Wait::OutsideWindow { opens_at: None },
        Wait::BudgetSpent { per_hour: 1, until_ms: 0 },
        Wait::RolloutsInProgress { in_progress: 1, max: 1 },
        Wait::NamespaceBusy { namespace: "n".into() },
        Wait::ReplacementPending,
    ];
    for w in &waits {
        assert!(Wait::PENDING_REASONS.contains(&w.label()), "{} is not in PENDING_REASONS", w.label());
    }
    let unique: std::collections::BTreeSet<_> = Wait::PENDING_REASONS.iter().collect();
    assert_eq!(unique.len(), Wait::PENDING_REASONS.len(), "no reason twice");
}

/// A re-injection hold gets a `ReinjectionHeld` Event whose action names the wait: Events fold
/// into a series by (reason, action, object) keeping the first note, so a workload held by the
/// rollouts in progress and then by a closed window must get a second Event that says so.
#[test]
fn each_hold_reason_gets_an_event_of_its_own() {
    let held = [
        (Wait::InjectorUnhealthy { why: "x".into() }, "the injector cannot inject"),
        (Wait::OutsideWindow { opens_at: Some(1_796_000_000) }, "outside the maintenance windows"),
        (Wait::BudgetSpent { per_hour: 24, until_ms: 0 }, "max_restarts_per_hour"),
        (Wait::RolloutsInProgress { in_progress: 3, max: 3 }, "max_rollouts_in_progress"),
        (Wait::NamespaceBusy { namespace: "n".into() }, "in progress in n"),
    ];
    let actions: std::collections::BTreeSet<&str> =
        held.iter().map(|(w, _)| w.held_action().unwrap_or_else(|| panic!("{} gets an Event", w.label()))).collect();
    assert_eq!(actions.len(), held.len(), "one action per hold reason: {actions:?}");
    for (w, says) in &held {
        assert!(w.describe().contains(says), "{:?}: {}", w, w.describe());
    }
    for w in [
        Wait::ReportOnly { setting: "x".into() },
        Wait::NotLeader,
        Wait::NotSynced { resources: vec![] },
        Wait::CoolingDown { until_ms: 0 },
        Wait::Pending,
        Wait::ReplacementPending,
    ] {
        assert_eq!(w.held_action(), None, "{} is no hold an Event reports", w.label());
    }
}

/// Each hold reason is told once while the workload keeps waiting: flapping between reasons
/// (rollouts in progress, its namespace's, waiting for the queued restarts) tells nothing new;
/// a workload restarted and held again later is told again.
#[test]
fn holds_are_told_once_per_reason_while_the_workload_waits() {
    let api = ObjectRef::new("apps/v1", "Deployment", Some("pay"), "api");
    let web = ObjectRef::new("apps/v1", "Deployment", Some("shop"), "web");
    let w = |o: &ObjectRef, wait: Wait| Waiting {
        check: crate::checks::reinjection::CHECK,
        kind: crate::checks::reinjection::ACTION,
        object: o.clone(),
        fields: vec!["restart".into()],
        wait,
    };
    let rollouts = || Wait::RolloutsInProgress { in_progress: 3, max: 3 };
    let busy = || Wait::NamespaceBusy { namespace: "pay".into() };
    let mut told = std::collections::BTreeSet::new();
    let mut tell = |waits: Vec<Waiting>| -> Vec<String> {
        holds_to_tell(&mut told, &waits).iter().map(|w| format!("{} {}", w.object.name, w.wait.label())).collect()
    };
    assert_eq!(
        tell(vec![w(&api, rollouts()), w(&web, rollouts())]),
        ["api rollouts_in_progress", "web rollouts_in_progress"]
    );
    assert_eq!(tell(vec![w(&api, busy()), w(&web, rollouts())]), ["api namespace_busy"]);
    assert!(tell(vec![w(&api, rollouts()), w(&web, rollouts())]).is_empty(), "back to a reason already told");
    assert!(tell(vec![w(&api, Wait::Pending), w(&web, rollouts())]).is_empty(), "pending tells nothing");
    assert!(tell(vec![w(&api, rollouts()), w(&web, rollouts())]).is_empty(), "nor is forgotten by it");
    let closed = || Wait::OutsideWindow { opens_at: Some(1_796_000_000) };
    assert_eq!(tell(vec![w(&api, closed()), w(&web, closed())]), ["api outside_window", "web outside_window"]);
    // api was restarted (it waits no more); held again later, it is told again.
    assert!(tell(vec![w(&web, closed())]).is_empty());
    assert_eq!(tell(vec![w(&api, rollouts()), w(&web, closed())]), ["api rollouts_in_progress"]);
}
