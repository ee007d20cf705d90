//! Point 6: SIGTERM during a burst of repairs and restarts. The burst: a proxy upgrade (rolling
//! restarts), three of the gateway's nodePorts moved, the injection label removed from 20
//! namespaces. Two variants, run side by side on two clusters:
//! - a slow API: kube-sim answers namespace requests after 1.2 s, so a label repair is in
//!   flight for sure when the signal comes;
//! - a spent write budget (`client.write_qps: 2`, `write_burst: 4`): the burst outruns the
//!   client-side token bucket, so the next repair is waiting for its token when the signal comes;
//! - a slow Lease: kube-sim answers Lease requests after 1 s, and the signal comes while the
//!   leader's renewal is in flight (the release must start from the version it writes).
//!
//! The agent talks to kube-sim through the [`Tap`], which sees every request arrive and whether
//! its answer came back.
//!
//! ```text
//!  burst ── a label repair in flight (tap) ── SIGTERM ── in-flight write answered ── Lease
//!  released, Events drained ── exit 0 ── 1.5 s (longer than the latency) ── nothing more
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use futures::future::BoxFuture;
use kube_sim::{KubeletOptions, PatchType, SimOptions};
use serde_json::json;

use crate::common::*;
use crate::fleet::{self, ms};
use crate::table::Row;
use crate::tap::Tap;

const NAME: &str = "6 SIGTERM mid-burst";
const LATENCY: Duration = Duration::from_millis(1200);
const LEASE_LATENCY: Duration = Duration::from_millis(1000);
/// From the actuator's decision to send a write to its arrival on the wire, at most.
const ON_ITS_WAY: Duration = Duration::from_millis(100);
/// The gateway ports the burst moves: (index in spec.ports, name, pinned nodePort, drifted).
const DRIFT: [(usize, &str, i64, i64); 3] =
    [(1, "http2", 31380, 32080), (2, "https", 31390, 32443), (8, "tls", 30158, 32158)];
/// The resources the agent repairs (writes to anything else are its Lease and Events).
const REPAIRED: [&str; 3] = ["namespaces", "services", "deployments"];

/// How the burst meets the agent.
#[derive(Clone, Copy)]
enum Variant {
    /// Namespace writes answered after [`LATENCY`].
    SlowApi,
    /// The client-side write budget spent.
    Throttled,
    /// Lease writes answered after [`LEASE_LATENCY`].
    SlowLease,
}

impl Variant {
    fn fault(self) -> &'static str {
        match self {
            Variant::SlowApi => "SIGTERM while label repairs are in flight (namespace writes answered after 1.2 s)",
            Variant::Throttled => "SIGTERM while the next repair waits for a write token (client.write_qps 2, burst 4)",
            Variant::SlowLease => "SIGTERM while the leader renews its Lease (Lease writes answered after 1 s)",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Variant::SlowApi => "slow API",
            Variant::Throttled => "write budget spent",
            Variant::SlowLease => "slow Lease",
        }
    }

    fn client(self) -> &'static str {
        match self {
            Variant::SlowApi => "",
            Variant::Throttled => "client:\n  write_qps: 2\n  write_burst: 4\n",
            Variant::SlowLease => "",
        }
    }
}

pub fn run() -> BoxFuture<'static, Vec<Row>> {
    Box::pin(async {
        let (mut slow, throttled, lease) =
            futures::join!(scenario(Variant::SlowApi), scenario(Variant::Throttled), scenario(Variant::SlowLease));
        slow.extend(throttled);
        slow.extend(lease);
        slow
    })
}

fn node_ports(sim: &kube_sim::Sim) -> BTreeMap<String, i64> {
    let svc = sim.cluster().get("v1", "services", "istio-system", "istio-ingressgateway").unwrap_or_default();
    svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (p["name"].as_str().unwrap_or_default().to_string(), p["nodePort"].as_i64().unwrap_or(0)))
        .collect()
}

fn restarted_at(sim: &kube_sim::Sim, key: &str) -> Option<String> {
    let (ns, name) = key.split_once('/')?;
    sim.cluster().get("apps/v1", "deployments", ns, name)?["spec"]["template"]["metadata"]["annotations"]
        [fleet::RESTARTED_AT]
        .as_str()
        .map(str::to_string)
}

/// What the burst's objects look like: labels of the namespaces, the gateway's nodePorts, the
/// Deployments' restart annotations.
#[derive(Debug, PartialEq)]
struct Snapshot {
    labels: BTreeMap<String, Option<String>>,
    ports: BTreeMap<String, i64>,
    restarts: BTreeMap<String, Option<String>>,
}

fn snapshot(sim: &kube_sim::Sim, namespaces: &[String], deployments: &[String]) -> Snapshot {
    Snapshot {
        labels: namespaces.iter().map(|n| (n.clone(), label(sim, n, "istio-injection"))).collect(),
        ports: node_ports(sim),
        restarts: deployments.iter().map(|d| (d.clone(), restarted_at(sim, d))).collect(),
    }
}

async fn scenario(variant: Variant) -> Vec<Row> {
    let sim = fleet::mesh(SimOptions::default().kubelet(KubeletOptions::slow(Duration::from_millis(400)))).await;
    let c = sim.cluster();
    let burst: Vec<String> = (0..20).map(|n| format!("burst-{n:02}")).collect();
    for ns in &burst {
        c.create("v1", "namespaces", "", json!({"metadata": {"name": ns, "labels": {"istio-injection": "enabled"}}}))
            .expect("namespace");
    }
    let fleet_keys = fleet::deploy_fleet(&sim, "roll", 2, 2);
    fleet::wait_available(&sim, &fleet_keys, Duration::from_secs(30)).await;
    let tap = Tap::start(&sim).await;
    let kubeconfig = tap.kubeconfig().to_string_lossy().to_string();
    let yaml = config(&format!(
        "{}injection:\n  mode: enforce\ngateway:\n  repair: true\nreinjection:\n  mode: enforce\n  max_rollouts_in_progress: 2\n  max_restarts_per_hour: 100\n",
        variant.client()
    ));
    let mut agent = start_with(&sim, &yaml, &["run", "--kubeconfig", &kubeconfig]).await;
    agent.wait_leader().await;
    // The seed's own drift first (default and shop unlabelled, shop's pods without sidecars):
    // settled before the burst.
    until(&sim, Duration::from_secs(30), "default and shop labelled, shop/web restarted and rolled", |cl| {
        ["default", "shop"].iter().all(|ns| label(&sim, ns, "istio-injection").is_some())
            && cl.get("apps/v1", "deployments", "shop", "web").is_some_and(|d| {
                d["spec"]["template"]["metadata"]["annotations"][fleet::RESTARTED_AT].is_string() && !fleet::rolling(&d)
            })
    })
    .await;
    for line in [
        "meshkeeper_pods{state=\"missing\"} 0",
        "meshkeeper_rollouts_in_progress 0",
        "meshkeeper_sidecar_coverage_ratio 1",
    ] {
        agent.wait_metrics_line(line, Duration::from_secs(30)).await;
    }
    let deployments = fleet::injected_deployments(&c);

    // The burst.
    match variant {
        Variant::SlowApi => sim.faults().latency(Some("namespaces"), LATENCY),
        Variant::SlowLease => sim.faults().latency(Some("leases"), LEASE_LATENCY),
        Variant::Throttled => {}
    }
    sim.clear_requests();
    let from = tap.requests().len();
    let before = snapshot(&sim, &burst, &deployments);
    let restarted_before = fleet::restarted(&c);
    sim.actors().expect("actors").set_injector_version(fleet::PROXY_NEXT);
    // The restarts begin; then the gateway and the labels drift while they go on.
    until(&sim, Duration::from_secs(20), "the upgrade's first restart", |cl| fleet::restarted(cl) > restarted_before)
        .await;
    let drift: Vec<_> = DRIFT
        .iter()
        .map(|(i, _, _, to)| json!({"op": "replace", "path": format!("/spec/ports/{i}/nodePort"), "value": to}))
        .collect();
    c.patch("v1", "services", "istio-system", "istio-ingressgateway", PatchType::Json, &json!(drift), "kubectl-patch")
        .expect("move three nodePorts");
    for ns in &burst {
        remove_injection_label(&sim, ns);
    }
    let since = |tap: &Tap| tap.requests().into_iter().skip(from).collect::<Vec<_>>();
    let repairs = |reqs: &[crate::tap::Req]| {
        reqs.iter()
            .filter(|r| r.is_write() && r.by_meshkeeper() && REPAIRED.contains(&r.resource.as_str()))
            .cloned()
            .collect::<Vec<_>>()
    };
    match variant {
        // A label repair answered and the next in flight: the signal comes mid-burst, mid-write.
        Variant::SlowApi => {
            eventually(Duration::from_secs(30), "a label repair done and another in flight", || {
                let w = repairs(&since(&tap));
                let ns: Vec<_> = w.iter().filter(|r| r.resource == "namespaces").collect();
                let ok = ns.iter().any(|r| r.answered.is_some()) && ns.iter().any(|r| r.answered.is_none());
                async move { ok }
            })
            .await
        }
        // A label repair done, and the leader's renewal of its Lease in flight.
        Variant::SlowLease => {
            eventually(Duration::from_secs(30), "a label repair done and a Lease renewal in flight", || {
                let reqs = since(&tap);
                let labelled = repairs(&reqs).iter().any(|r| r.resource == "namespaces" && r.answered.is_some());
                let renewing = reqs
                    .iter()
                    .any(|r| r.by_meshkeeper() && r.resource == "leases" && r.method == "PUT" && r.answered.is_none());
                async move { labelled && renewing }
            })
            .await
        }
        // Label repairs have waited for their tokens (the bucket is empty: each next write waits
        // 500 ms for one, and takes a few ms), the last is answered and none is in flight: the
        // signal comes mid-burst, while the next waits for its token.
        Variant::Throttled => {
            let addr = agent.addr.clone();
            eventually(Duration::from_secs(30), "label repairs throttled, the last answered, more to do", || {
                let labels: Vec<_> = repairs(&since(&tap)).into_iter().filter(|r| r.resource == "namespaces").collect();
                let between = labels.len() >= 2 && labels.len() < 15 && labels.iter().all(|r| r.answered.is_some());
                let addr = addr.clone();
                async move {
                    if !between {
                        return false;
                    }
                    let text = http(&addr, "GET", "/metrics").await.2;
                    let throttled = text
                        .lines()
                        .find_map(|l| l.strip_prefix("meshkeeper_write_throttled_total{action=\"injection_label\"} "))
                        .and_then(|v| v.trim().parse::<f64>().ok())
                        .unwrap_or(0.0);
                    throttled >= 2.0
                }
            })
            .await
        }
    }
    let in_flight: Vec<_> = since(&tap).into_iter().filter(|r| r.is_write() && r.answered.is_none()).collect();
    agent.sigterm();
    let termed = Instant::now();
    let termed_wall = SystemTime::now();
    let exit = tokio::time::timeout(Duration::from_secs(15), agent.child.wait()).await;
    let took = termed.elapsed();
    let exited = Instant::now();
    let at_exit = snapshot(&sim, &burst, &deployments);
    let log_at_exit = sim.requests().len();
    // NB: a measurement window, not synchronisation: longer than the latency, so a write
    // kube-sim was still holding would have landed.
    tokio::time::sleep(LATENCY + Duration::from_millis(300)).await;
    let after = snapshot(&sim, &burst, &deployments);
    let later: Vec<_> =
        sim.requests().into_iter().skip(log_at_exit).filter(|r| r.user_agent.starts_with("meshkeeper/")).collect();

    let reqs = since(&tap);
    let writes: Vec<_> = reqs.iter().filter(|r| r.is_write() && r.by_meshkeeper()).cloned().collect();
    let unanswered: Vec<String> =
        writes.iter().filter(|r| r.answered.is_none()).map(|r| format!("{} {}", r.method, r.path)).collect();
    let logged: Vec<kube_sim::RequestRecord> =
        REPAIRED.iter().flat_map(|res| writes_by_meshkeeper(&sim, res)).collect();
    let mut tap_repairs: BTreeMap<String, usize> = BTreeMap::new();
    for r in repairs(&writes) {
        *tap_repairs.entry(format!("{} {}", r.resource, r.key())).or_default() += 1;
    }
    let mut log_repairs: BTreeMap<String, usize> = BTreeMap::new();
    for r in &logged {
        let key = match &r.namespace {
            Some(ns) => format!("{} {ns}/{}", r.resource, r.name.clone().unwrap_or_default()),
            None => format!("{} {}", r.resource, r.name.clone().unwrap_or_default()),
        };
        *log_repairs.entry(key).or_default() += 1;
    }
    // When the agent saw the signal and stopped taking actions (its log), after the kill.
    let logged_at = |message: &str| {
        agent.logs().lines().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            if v["message"] != message && v["fields"]["message"] != message {
                return None;
            }
            let t: k8s_openapi::jiff::Timestamp = v["timestamp"].as_str()?.parse().ok()?;
            let at = SystemTime::UNIX_EPOCH + Duration::from_micros(t.as_microsecond().max(0) as u64);
            Some(at.duration_since(termed_wall).unwrap_or_default())
        })
    };
    let received = logged_at("received SIGTERM");
    let stopped = logged_at("shutting down: no new actions; finishing in-flight work");
    let after_term: Vec<(String, Duration)> = writes
        .iter()
        .filter(|r| r.sent > termed && REPAIRED.contains(&r.resource.as_str()))
        .map(|r| (format!("{} {} {} (+{} ms)", r.method, r.resource, r.key(), ms(r.sent - termed)), r.sent - termed))
        .collect();
    // Started after the agent stopped taking actions (beyond a write already on its way).
    let started_after_stop: Vec<&String> =
        after_term.iter().filter(|(_, at)| stopped.is_none_or(|s| *at > s + ON_ITS_WAY)).map(|(w, _)| w).collect();

    let other_after_term: BTreeMap<String, usize> = writes
        .iter()
        .filter(|r| r.sent > termed && !REPAIRED.contains(&r.resource.as_str()))
        .fold(BTreeMap::new(), |mut m, r| {
            *m.entry(r.resource.clone()).or_default() += 1;
            m
        });
    let in_flight_text: Vec<String> = in_flight
        .iter()
        .map(|r| {
            let answered = writes
                .iter()
                .find(|w| w.conn == r.conn && w.sent == r.sent)
                .and_then(|w| w.answered)
                .map(|a| format!("answered {} ms after SIGTERM", a.saturating_duration_since(termed).as_millis()))
                .unwrap_or_else(|| "never answered".into());
            format!("{} {} {} ({answered})", r.method, r.resource, r.key())
        })
        .collect();

    let mut rows = Vec::new();
    let exited_ok = matches!(&exit, Ok(Ok(s)) if s.success());
    rows.push(Row::check(
        NAME,
        variant.fault(),
        "exit 0 within 10 s",
        format!(
            "exit {} {} ms after SIGTERM",
            match &exit {
                Ok(Ok(s)) => s.code().map(|c| c.to_string()).unwrap_or_else(|| s.to_string()),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "none within 15 s".into(),
            },
            ms(took)
        ),
        exited_ok && took <= Duration::from_secs(10),
    ));
    let same_writes = tap_repairs == log_repairs;
    rows.push(Row::check(
        NAME,
        &format!("{}: writes in flight at the signal", variant.label()),
        "every write sent is answered before exit (none cut off): the tap's writes = kube-sim's log",
        format!(
            "in flight at SIGTERM: {}; {} writes sent since the burst ({} repairs), {} unanswered{}; kube-sim logged {} repair writes{}",
            if in_flight_text.is_empty() { "none".to_string() } else { in_flight_text.join(", ") },
            writes.len(),
            tap_repairs.values().sum::<usize>(),
            unanswered.len(),
            if unanswered.is_empty() { String::new() } else { format!(" ({})", unanswered.join(", ")) },
            logged.len(),
            if same_writes { ", the same ones".to_string() } else { format!(", differing: tap {tap_repairs:?} vs log {log_repairs:?}") }
        ),
        (!in_flight.is_empty() || !matches!(variant, Variant::SlowApi)) && unanswered.is_empty() && same_writes,
    ));
    rows.push(Row::check(
        NAME,
        &format!("{}: repairs planned, not sent at the signal", variant.label()),
        &format!(
            "no repair write starts once the agent stopped taking actions (its log; a write already on its way may reach the wire {} ms later); after it only the Lease release and Events",
            ms(ON_ITS_WAY)
        ),
        format!(
            "the agent received SIGTERM at +{} ms and stopped taking actions at +{} ms (after the kill); repair writes on the wire after the kill: {}; other writes after it: {}",
            received.map(|d| ms(d).to_string()).unwrap_or_else(|| "?".into()),
            stopped.map(|d| ms(d).to_string()).unwrap_or_else(|| "?".into()),
            if after_term.is_empty() {
                "none".to_string()
            } else {
                after_term.iter().map(|(w, _)| w.as_str()).collect::<Vec<_>>().join(", ")
            },
            if other_after_term.is_empty() {
                "none".to_string()
            } else {
                other_after_term.iter().map(|(r, n)| format!("{n} {r}")).collect::<Vec<_>>().join(", ")
            }
        ),
        stopped.is_some() && started_after_stop.is_empty(),
    ));

    // Each object fully repaired (and its write logged) or untouched.
    let ok_patch = |resource: &str, key: &str| {
        logged.iter().any(|r| {
            r.resource == resource
                && r.code < 300
                && match &r.namespace {
                    Some(ns) => format!("{ns}/{}", r.name.clone().unwrap_or_default()) == key,
                    None => r.name.as_deref() == Some(key),
                }
        })
    };
    let mut half = Vec::new();
    let (mut labelled, mut untouched) = (0, 0);
    for ns in &burst {
        match (at_exit.labels[ns].as_deref(), ok_patch("namespaces", ns)) {
            (Some("enabled"), true) => labelled += 1,
            (None, false) => untouched += 1,
            (l, p) => half.push(format!("{ns}: label {l:?}, patch logged {p}")),
        }
    }
    let drifted = DRIFT.iter().filter(|(_, n, _, to)| at_exit.ports.get(*n) == Some(to)).count();
    let pinned = DRIFT.iter().filter(|(_, n, pin, _)| at_exit.ports.get(*n) == Some(pin)).count();
    let gateway_patched = ok_patch("services", "istio-system/istio-ingressgateway");
    let others_same = before
        .ports
        .iter()
        .filter(|(n, _)| !DRIFT.iter().any(|d| d.1 == n.as_str()))
        .all(|(n, p)| at_exit.ports.get(n) == Some(p));
    let gateway = match (pinned, drifted, gateway_patched) {
        (3, 0, true) => "all 3 moved nodePorts pinned back (one patch)".to_string(),
        (0, 3, false) => "all 3 moved nodePorts as the burst left them (no patch)".to_string(),
        (p, d, g) => {
            half.push(format!("gateway: {p} pinned, {d} drifted, patch logged {g}"));
            format!("{p} pinned, {d} drifted")
        }
    };
    if !others_same {
        half.push("gateway: an unmoved port changed".into());
    }
    let (mut restarted, mut not_restarted) = (0, 0);
    for d in &deployments {
        let changed = at_exit.restarts[d] != before.restarts[d];
        match (changed, ok_patch("deployments", d)) {
            (true, true) => restarted += 1,
            (false, false) => not_restarted += 1,
            (ch, p) => half.push(format!("{d}: annotation changed {ch}, patch logged {p}")),
        }
    }
    rows.push(Row::check(
        NAME,
        &format!("{}: objects the burst touched", variant.label()),
        "each fully repaired (its write logged) or untouched: no half-applied change",
        format!(
            "namespaces: {labelled} of 20 labelled, {untouched} untouched; gateway: {gateway}; Deployments: {restarted} of {} restarted, {not_restarted} not{}",
            deployments.len(),
            if half.is_empty() { String::new() } else { format!("; HALF: {}", half.join("; ")) }
        ),
        half.is_empty() && labelled > 0 && untouched > 0,
    ));

    // An Event for every write that completed.
    let mut missing = Vec::new();
    let label_events: Vec<String> = ["InjectionLabelRestored", "InjectionLabelApplied"]
        .iter()
        .flat_map(|r| fleet::events_regarding(&sim, r))
        .collect();
    let gateway_events = fleet::events_regarding(&sim, "GatewayPinRepaired");
    let restart_events = fleet::events_regarding(&sim, "WorkloadRestartedForReinjection");
    let mut completed = 0;
    for r in logged.iter().filter(|r| r.code < 300) {
        completed += 1;
        let key = match &r.namespace {
            Some(ns) => format!("{ns}/{}", r.name.clone().unwrap_or_default()),
            None => r.name.clone().unwrap_or_default(),
        };
        let events = match r.resource.as_str() {
            "namespaces" => &label_events,
            "services" => &gateway_events,
            _ => &restart_events,
        };
        if !events.contains(&key) {
            missing.push(format!("{} {key}", r.resource));
        }
    }
    rows.push(Row::check(
        NAME,
        &format!("{}: Events of the last writes", variant.label()),
        "an Event (reason, regarding) for every write that completed, published before exit",
        format!(
            "{completed} completed writes, {} with their Event{}",
            completed - missing.len(),
            if missing.is_empty() { String::new() } else { format!("; without: {}", missing.join(", ")) }
        ),
        missing.is_empty(),
    ));
    let lease = sim.cluster().get("coordination.k8s.io/v1", "leases", "meshkeeper", "meshkeeper");
    let holder = lease.as_ref().and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string));
    let releases: Vec<String> = writes
        .iter()
        .filter(|r| r.resource == "leases" && r.sent > termed)
        .map(|r| format!("{} {}", r.method, if r.answered.is_some() { "answered" } else { "never answered" }))
        .collect();
    let release_codes: Vec<u16> = sim
        .requests()
        .iter()
        .filter(|r| r.user_agent.starts_with("meshkeeper/") && r.resource == "leases" && r.verb == "update")
        .map(|r| r.code)
        .collect();
    rows.push(Row::check(
        NAME,
        &format!("{}: the Lease", variant.label()),
        "released at exit (holder empty), so another replica takes over at once",
        format!(
            "holder {}; Lease writes after SIGTERM: {}; kube-sim's answers to the Lease updates since the burst: {release_codes:?}",
            holder.as_deref().filter(|h| !h.is_empty()).unwrap_or("(none)"),
            if releases.is_empty() { "none".to_string() } else { releases.join(", ") }
        ),
        holder.as_deref().is_none_or(str::is_empty),
    ));
    let unchanged = after == at_exit;
    rows.push(Row::check(
        NAME,
        &format!("{}: after exit", variant.label()),
        "nothing written after exit (observed for 1.5 s, longer than the latency)",
        format!(
            "{} request(s) by meshkeeper in kube-sim's log after exit; objects {} over {} ms",
            later.len(),
            if unchanged { "unchanged" } else { "CHANGED" },
            ms(exited.elapsed())
        ),
        later.is_empty() && unchanged,
    ));
    rows
}
