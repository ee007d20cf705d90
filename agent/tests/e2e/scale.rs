//! Issue 12's benchmark in small (5,000 pods), inside the test command: the real agent beside a
//! naive full-object reflector on the same seeded kube-sim. Debug build, other tests running
//! alongside: it bounds only gross regressions (ratios with wide margins, no absolute times).
//! The full-size run is `cargo bench -p meshkeeper --bench scale` (README "Scale").

#[path = "../../benches/scale/harness.rs"]
mod harness;

use std::time::Duration;

/// The baseline's process: this test binary run with only this test selected and the role
/// variable set; otherwise an empty test.
#[test]
fn naive_reflector_role() {
    if std::env::var(harness::ROLE_ENV).as_deref() == Ok("reflector") {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
        rt.block_on(harness::reflector_role());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_pods_beside_a_naive_reflector() {
    let p = harness::Params { trials: 3, window: Duration::from_secs(5), ..harness::Params::full().scaled(5_000) };
    let exe = harness::current_exe();
    let bin = std::path::PathBuf::from(crate::common::bin());
    let role = ["--exact", "scale::naive_reflector_role", "--nocapture", "--test-threads", "1"];
    let r = harness::run(&bin, (&exe, &role), &p, true).await;
    eprintln!("{}", serde_json::to_string_pretty(&r).unwrap());
    let mem_ratio = r.baseline_rss_bytes as f64 / r.steady_rss_bytes.max(1) as f64;
    assert!(r.baseline_rss_bytes > 0 && r.baseline_ready_seconds > 0.0, "the baseline ran: {r:?}");
    assert!(mem_ratio >= 3.0, "meshkeeper holds at least 3x less than the naive reflector: {mem_ratio:.1}x");
    assert!(
        r.ready_seconds <= 3.0 * r.baseline_ready_seconds + 5.0,
        "ready in {:.2} s, the naive reflector in {:.2} s",
        r.ready_seconds,
        r.baseline_ready_seconds
    );
    assert_eq!(r.lists_after_sync, 0, "no LIST after the first sync");
    for kind in ["label_removal", "gateway_drift", "reinjection"] {
        for phase in ["idle", "churn"] {
            let key = format!("{kind}/{phase}");
            let (_, p99, n) = r.latency_ms.get(&key).copied().unwrap_or((f64::NAN, f64::NAN, 0));
            assert_eq!(n, p.trials, "{key}: every trial saw its action");
            assert!(p99 < 5_000.0, "{key}: p99 {p99:.0} ms");
        }
    }
    let per_minute: f64 = r.requests_per_minute.values().sum();
    assert!(per_minute < 300.0, "steady requests: {per_minute:.0}/min ({:?})", r.requests_by_kind);
}
