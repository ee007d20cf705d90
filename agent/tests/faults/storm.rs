//! Point 10: a restart storm guard. Two clusters side by side:
//! - the storm: 500 one-replica Deployments in 50 namespaces made stale at once by a proxy
//!   upgrade, under a small budget (4 rollouts in progress, 24 restarts an hour). Rollouts in
//!   progress are counted from kube-sim's Deployments at every change of one (and the agent's
//!   gauge sampled every 100 ms); the guard is proven while 477 wait, not by rolling all 500;
//! - the window: a proxy upgrade 6 s before a maintenance window closes. Windows are
//!   wall-clock UTC minutes and the agent has no test clock, so the window runs from the
//!   current minute to the first minute boundary at least 15 s after the start (crossing
//!   midnight when it must); the scenario waits for that boundary.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use kube_sim::{KubeletOptions, SimOptions};
use serde_json::Value;

use crate::common::*;
use crate::fleet::{self, RolloutTracker, ms};
use crate::table::Row;
use crate::tap::Tap;

const NAME: &str = "10 restart storm";
const MAX_IN_PROGRESS: usize = 4;
const PER_HOUR: usize = 24;
const WINDOW_MAX_IN_PROGRESS: usize = 3;
/// From a restart's decision to its write on the wire, at most.
const RACE: Duration = Duration::from_millis(100);

pub fn run() -> BoxFuture<'static, Vec<Row>> {
    Box::pin(async {
        // The storm builds its 500 Deployments once the window's agent is ready (the window's
        // timing must not wait behind them), and re-counts its restarts once the window part is
        // over (or has failed): a long observation of the hourly cap at no cost of its own.
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let (mut rows, more) = futures::join!(storm(ready_rx, done_rx), async move {
            let rows = window(ready_tx).await;
            drop(done_tx);
            rows
        });
        rows.extend(more);
        rows
    })
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `HH:MM` (UTC) of a unix time; midnight as an end is `24:00`.
fn hhmm(t: u64, end: bool) -> String {
    let m = (t % 86_400) / 60;
    if end && m == 0 { "24:00".into() } else { format!("{:02}:{:02}", m / 60, m % 60) }
}

/// Waits until the wall clock reaches `t`.
async fn wall_clock(t: SystemTime) {
    if let Ok(d) = t.duration_since(SystemTime::now()) {
        tokio::time::sleep(d).await;
    }
}

/// The agent's `/status` waiting entries of re-injection, by `ns/name`: (reason, text of the wait).
fn waiting(status: &Value) -> BTreeMap<String, (String, Value)> {
    status["waiting"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|w| w["check"] == "reinjection")
        .map(|w| {
            let key = format!(
                "{}/{}",
                w["object"]["namespace"].as_str().unwrap_or_default(),
                w["object"]["name"].as_str().unwrap_or_default()
            );
            (key, (w["wait"]["reason"].as_str().unwrap_or_default().to_string(), w["wait"].clone()))
        })
        .collect()
}

/// Samples one gauge of the agent every 100 ms: (largest value, samples).
fn sample_gauge(addr: String, series: &'static str) -> (Arc<Mutex<(f64, u64)>>, tokio::task::JoinHandle<()>) {
    let stats = Arc::new(Mutex::new((0.0f64, 0u64)));
    let st = stats.clone();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            if let Some(v) = metric_value(&http(&addr, "GET", "/metrics").await.2, series) {
                let mut s = st.lock().unwrap();
                s.0 = s.0.max(v);
                s.1 += 1;
            }
        }
    });
    (stats, task)
}

async fn storm(ready: tokio::sync::oneshot::Receiver<()>, done: tokio::sync::oneshot::Receiver<()>) -> Vec<Row> {
    let _ = tokio::time::timeout(Duration::from_secs(60), ready).await;
    let sim = fleet::mesh(SimOptions::default().kubelet(KubeletOptions::slow(Duration::from_millis(200)))).await;
    let c = sim.cluster();
    let t_setup = Instant::now();
    let keys = fleet::deploy_fleet(&sim, "storm", 50, 10);
    fleet::wait_available(&sim, &keys, Duration::from_secs(120)).await;
    let setup = t_setup.elapsed();
    let agent = start(
        &sim,
        &config(&format!(
            "reinjection:\n  mode: enforce\n  max_rollouts_in_progress: {MAX_IN_PROGRESS}\n  max_restarts_per_hour: {PER_HOUR}\n"
        )),
    )
    .await;
    agent.wait_leader().await;
    agent.wait_metrics_line("meshkeeper_sidecar_coverage_ratio 1", Duration::from_secs(60)).await;
    let stale = fleet::injected_deployments(&c);
    let tracker = RolloutTracker::start(&sim);
    let (gauge, gauge_task) = sample_gauge(agent.addr.clone(), "meshkeeper_rollouts_in_progress");

    let t = Instant::now();
    sim.actors().expect("actors").set_injector_version(fleet::PROXY_NEXT);
    // Settled: the hourly budget started as many as it allows, none rolls any more, and every
    // other stale workload waits for the budget.
    // (Against what was started, so a budget overrun still settles and shows in the rows.)
    let others = stale.len() - PER_HOUR;
    let addr = agent.addr.clone();
    eventually(Duration::from_secs(90), "the hourly budget spent, the rest waiting for it", || {
        let started: usize = fleet::restart_writes(&sim).values().sum();
        let idle = tracker.rolling_now().is_empty();
        let addr = addr.clone();
        let rest = stale.len().saturating_sub(started) as f64;
        async move {
            if started < PER_HOUR || !idle {
                return false;
            }
            let text = http(&addr, "GET", "/metrics").await.2;
            metric_value(&text, "meshkeeper_workloads_pending_reinjection{reason=\"budget_spent\"}") == Some(rest)
        }
    })
    .await;
    let settled = t.elapsed();
    let status = agent.status().await;
    gauge_task.abort();
    let (gauge_max, gauge_samples) = *gauge.lock().unwrap();
    let (max_total, max_per_ns, changes) = tracker.maxima();
    let writes = fleet::restart_writes(&sim);
    let started: usize = writes.values().sum();
    let restarted: Vec<&String> = writes.keys().collect();
    let namespaces: std::collections::BTreeSet<&str> = restarted.iter().filter_map(|k| k.split('/').next()).collect();

    let mut rows = vec![Row::check(
        NAME,
        &format!(
            "{} workloads stale at once (a proxy upgrade; {} Deployments in 50 namespaces)",
            stale.len(),
            keys.len()
        ),
        &format!(
            "at most {MAX_IN_PROGRESS} rollouts in progress at every instant, at most 1 per namespace (kube-sim's Deployments)"
        ),
        format!(
            "at most {max_total} at once, {max_per_ns} per namespace, over {changes} changes of a Deployment; the agent's meshkeeper_rollouts_in_progress at most {gauge_max} ({gauge_samples} samples every 100 ms); fleet set up in {:.1} s",
            setup.as_secs_f64()
        ),
        max_total <= MAX_IN_PROGRESS && max_per_ns <= 1 && gauge_max <= MAX_IN_PROGRESS as f64 && max_total >= 2,
    )];
    let once = writes.values().all(|n| *n == 1);
    rows.push(Row::check(
        NAME,
        &format!("max_restarts_per_hour {PER_HOUR} against {} candidates", stale.len()),
        &format!("exactly {PER_HOUR} restarted within the observed time (under an hour), each once"),
        format!(
            "{started} restart writes for {} Deployments in {} namespaces, {:.1} s after the upgrade{}",
            writes.len(),
            namespaces.len(),
            settled.as_secs_f64(),
            if once { String::new() } else { format!("; restarted more than once: {writes:?}") }
        ),
        started == PER_HOUR && once,
    ));
    let waits = waiting(&status);
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut silent = Vec::new();
    for k in stale.iter().filter(|k| !writes.contains_key(*k)) {
        match waits.get(k) {
            Some((r, _)) => *reasons.entry(r.clone()).or_default() += 1,
            None => silent.push(k.clone()),
        }
    }
    let next_slot = waits.values().find(|(r, _)| r == "budget_spent").and_then(|(_, w)| w["until_ms"].as_i64());
    let next_in = next_slot.map(|ms| ms / 1000 - unix(SystemTime::now()) as i64);
    rows.push(Row::check(
        NAME,
        "the workloads the budget holds back",
        &format!("each of the {others} others waits with a reason in /status: budget_spent"),
        format!(
            "{} waiting: {}; {} without a reason; the next slot in {} s",
            reasons.values().sum::<usize>(),
            reasons.iter().map(|(r, n)| format!("{r} {n}")).collect::<Vec<_>>().join(", "),
            silent.len(),
            next_in.map(|s| s.to_string()).unwrap_or_else(|| "?".into())
        ),
        silent.is_empty() && reasons.get("budget_spent") == Some(&others) && reasons.len() == 1,
    ));
    // Held for as long as the window part runs: still no more restarts.
    let held = Instant::now();
    let _ = tokio::time::timeout(Duration::from_secs(150), done).await;
    // NB: a measurement window, not synchronisation: at least 5 s more of the budget held,
    // even when the window part ended first.
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(held.elapsed())).await;
    let later: usize = fleet::restart_writes(&sim).values().sum();
    rows.push(Row::check(
        NAME,
        "the budget spent, for the rest of the scenario",
        &format!("still {PER_HOUR} restarts (the next slot opens an hour after the first)"),
        format!("{later} restart writes {:.1} s later", held.elapsed().as_secs_f64()),
        later == PER_HOUR,
    ));
    rows
}

async fn window(ready: tokio::sync::oneshot::Sender<()>) -> Vec<Row> {
    let sim = fleet::mesh(SimOptions::default().kubelet(KubeletOptions::slow(Duration::from_millis(1000)))).await;
    let c = sim.cluster();
    let keys = fleet::deploy_fleet(&sim, "win", 10, 4);
    fleet::wait_available(&sim, &keys, Duration::from_secs(30)).await;
    let tap = Tap::start(&sim).await;
    let kubeconfig = tap.kubeconfig().to_string_lossy().to_string();
    // The window: this minute to the first boundary at least 15 s from now.
    let now = unix(SystemTime::now());
    let close = (now + 15).div_ceil(60) * 60;
    let (start_at, end_at) = (hhmm(now, false), hhmm(close, true));
    let close_wall = UNIX_EPOCH + Duration::from_secs(close);
    let yaml = config(&format!(
        "reinjection:\n  mode: enforce\n  max_rollouts_in_progress: {WINDOW_MAX_IN_PROGRESS}\n  max_restarts_per_hour: 1000\n  maintenance_windows:\n    - start: \"{start_at}\"\n      end: \"{end_at}\"\n"
    ));
    let agent = start_with(&sim, &yaml, &["run", "--kubeconfig", &kubeconfig]).await;
    agent.wait_leader().await;
    agent.wait_metrics_line("meshkeeper_sidecar_coverage_ratio 1", Duration::from_secs(30)).await;
    let _ = ready.send(());
    let stale = fleet::injected_deployments(&c);
    let tracker = RolloutTracker::start(&sim);
    // NB: the window is wall-clock time: the upgrade is scheduled on the wall clock, 6 s before
    // the window closes (not a wait for the system to settle).
    wall_clock(close_wall - Duration::from_secs(6)).await;
    let before_close = close_wall.duration_since(SystemTime::now()).unwrap_or_default();
    assert!(before_close >= Duration::from_secs(3), "the agent was not ready 3 s before the window closed");
    sim.actors().expect("actors").set_injector_version(fleet::PROXY_NEXT);
    // NB: and the window closes on the wall clock.
    wall_clock(close_wall).await;
    let closed = Instant::now();
    until(&sim, Duration::from_secs(30), "the rollouts in progress at the close complete", |cl| {
        !cl.list("apps/v1", "deployments", None).iter().any(fleet::rolling)
    })
    .await;
    let drained = closed.elapsed();
    let writes = fleet::restart_writes(&sim);
    let restarted = writes.len();
    let logged = writes_by_meshkeeper(&sim, "deployments").len();
    let expect_waiting: Vec<String> = stale.iter().filter(|k| !writes.contains_key(*k)).cloned().collect();
    let addr = agent.addr.clone();
    eventually(Duration::from_secs(15), "every workload still stale waits outside the window", || {
        let (addr, expect) = (addr.clone(), expect_waiting.clone());
        async move {
            let s: Value = serde_json::from_str(&http(&addr, "GET", "/status").await.2).unwrap_or_default();
            let w = waiting(&s);
            expect.iter().all(|k| w.get(k).is_some_and(|(r, _)| r == "outside_window"))
        }
    })
    .await;
    let status = agent.status().await;
    let said = |cl: &kube_sim::Cluster| -> std::collections::BTreeSet<String> {
        cl.list("events.k8s.io/v1", "events", None)
            .iter()
            .filter(|e| {
                e["reason"] == "ReinjectionHeld"
                    && e["note"].as_str().is_some_and(|n| n.contains("outside the maintenance window"))
            })
            .map(|e| {
                format!(
                    "{}/{}",
                    e["regarding"]["namespace"].as_str().unwrap_or_default(),
                    e["regarding"]["name"].as_str().unwrap_or_default()
                )
            })
            .collect()
    };
    let (events_ok, held_events) =
        fleet::settle(&sim, Duration::from_secs(30), |cl| expect_waiting.iter().all(|k| said(cl).contains(k))).await;
    let told = said(&c);
    let untold: Vec<&String> = expect_waiting.iter().filter(|k| !told.contains(*k)).collect();
    // What the first of those was told instead (its ReinjectionHeld Events: note, series count).
    let instead: Vec<String> = untold
        .first()
        .map(|k| {
            c.list("events.k8s.io/v1", "events", None)
                .iter()
                .filter(|e| {
                    e["reason"] == "ReinjectionHeld"
                        && format!(
                            "{}/{}",
                            e["regarding"]["namespace"].as_str().unwrap_or_default(),
                            e["regarding"]["name"].as_str().unwrap_or_default()
                        ) == **k
                })
                .map(|e| {
                    format!(
                        "{k}: {:?} x{}",
                        e["note"].as_str().unwrap_or_default(),
                        e["series"]["count"].as_i64().unwrap_or(1)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let (max_total, max_per_ns, _) = tracker.maxima();
    let at_close = tracker.rolling_at(close_wall);
    let completed = tracker.completed();
    let all_done = at_close.iter().all(|k| completed.get(k).is_some_and(|t| *t >= close_wall));

    // Restart writes on the wire (the tap) against the window's end; the restartedAt each carries
    // is the planner's clock at the decision (second precision).
    let wire: Vec<_> = tap
        .requests()
        .into_iter()
        .filter(|r| r.is_write() && r.by_meshkeeper() && r.resource == "deployments" && r.method == "PATCH")
        .collect();
    // A restart decided in the window's last milliseconds reaches the wire a few ms later; one
    // sent more than RACE after the end was not started inside the window.
    let late: Vec<Duration> = wire.iter().filter_map(|r| r.sent_wall.duration_since(close_wall).ok()).collect();
    let after: Vec<String> = wire
        .iter()
        .filter_map(|r| {
            r.sent_wall.duration_since(close_wall).ok().map(|d| format!("{} +{} ms", r.key(), d.as_millis()))
        })
        .collect();
    let last_before = wire
        .iter()
        .filter(|r| r.sent_wall < close_wall)
        .filter_map(|r| close_wall.duration_since(r.sent_wall).ok())
        .min();
    let decided_after: Vec<String> = keys
        .iter()
        .filter_map(|k| {
            let (ns, name) = k.split_once('/')?;
            let d = c.get("apps/v1", "deployments", ns, name)?;
            let at: k8s_openapi::jiff::Timestamp =
                d["spec"]["template"]["metadata"]["annotations"][fleet::RESTARTED_AT].as_str()?.parse().ok()?;
            (at.as_second() >= close as i64).then(|| format!("{k} at {at}"))
        })
        .collect();
    let waits = waiting(&status);
    let opens = waits.values().find(|(r, _)| r == "outside_window").and_then(|(_, w)| w["opens_at"].as_i64());

    let mut rows = vec![Row::check(
        NAME,
        &format!(
            "a proxy upgrade 6 s before the maintenance window (UTC {start_at}-{end_at}) closes; {} stale",
            stale.len()
        ),
        &format!(
            "no rollout starts once the window closed: every restart decided (restartedAt) before its end, and sent (the tap) before it or within {} ms",
            RACE.as_millis()
        ),
        format!(
            "{restarted} restarted in the window's last {:.1} s (the last sent {} ms before the end); sent after: {}; decided after: {}",
            before_close.as_secs_f64(),
            last_before.map(|d| d.as_millis().to_string()).unwrap_or_else(|| "-".into()),
            if after.is_empty() { "none".to_string() } else { after.join(", ") },
            if decided_after.is_empty() { "none".to_string() } else { decided_after.join(", ") }
        ),
        late.iter().all(|d| *d <= RACE) && decided_after.is_empty() && restarted > 0 && wire.len() == logged,
    )];
    rows.push(Row::check(
        NAME,
        "rollouts in progress when the window closed",
        &format!("they finish; meanwhile at most {WINDOW_MAX_IN_PROGRESS} in progress, 1 per namespace"),
        format!(
            "{} in progress at the close, all complete {} ms after it; at most {max_total} at once, {max_per_ns} per namespace",
            at_close.len(),
            ms(drained)
        ),
        !at_close.is_empty() && all_done && max_total <= WINDOW_MAX_IN_PROGRESS && max_per_ns <= 1,
    ));
    let outside = expect_waiting.iter().filter(|k| waits.get(*k).is_some_and(|(r, _)| r == "outside_window")).count();
    rows.push(Row::check(
        NAME,
        "workloads still stale after the close",
        "each waits \"outside the maintenance windows\" in /status (and a ReinjectionHeld Event says so)",
        format!(
            "{outside} of {} outside_window; the next window opens at {} ({} h from now); {} with a ReinjectionHeld Event saying so ({} ms after the drain){}",
            expect_waiting.len(),
            opens.map(|t| format!("{} UTC", hhmm(t as u64, false))).unwrap_or_else(|| "?".into()),
            opens.map(|t| format!("{:.1}", (t - unix(SystemTime::now()) as i64) as f64 / 3600.0)).unwrap_or_else(|| "?".into()),
            expect_waiting.len() - untold.len(),
            ms(held_events),
            if untold.is_empty() {
                String::new()
            } else {
                format!("; without: {untold:?}; told instead: {}", instead.join("; "))
            }
        ),
        outside == expect_waiting.len() && !expect_waiting.is_empty() && events_ok,
    ));
    rows
}
