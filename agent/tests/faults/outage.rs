//! Scenario 2: the API server is down for 30 s, once refusing connections (stopped) and once
//! hanging (requests accepted and never answered, watches silent). Counted: the requests the
//! agent sent meanwhile (no hot loop), what `/readyz` and `/status` said, that nothing was
//! acted on from stale state, and how soon repairs resumed once the server answered again.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde_json::Value;

use crate::common::*;
use crate::support::*;
use crate::table::Row;

/// How long each outage lasts (the fault itself, not a wait for anything).
const OUTAGE: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Refused,
    Hanging,
}

pub fn refused() -> BoxFuture<'static, Vec<Row>> {
    Box::pin(outage(Kind::Refused))
}

pub fn hanging() -> BoxFuture<'static, Vec<Row>> {
    Box::pin(outage(Kind::Hanging))
}

/// What the agent's endpoints said while the server was away.
#[derive(Default)]
struct Seen {
    readyz_503: bool,
    readyz_body: String,
    watch_failing: bool,
    follower: bool,
    leader_message: String,
}

async fn look(agent: &Agent, seen: &mut Seen) {
    let (code, body) = agent.get("/readyz").await;
    if code == 503 && !seen.readyz_503 {
        seen.readyz_503 = true;
        seen.readyz_body = body.trim().to_string();
    }
    let status: Value = serde_json::from_str(&agent.get("/status").await.1).unwrap_or_default();
    if status["watches"].as_object().is_some_and(|w| w.values().any(|v| v["state"] == "failing")) {
        seen.watch_failing = true;
    }
    if status["role"] == "follower" && !seen.follower {
        seen.follower = true;
        seen.leader_message = status["leader_election"].to_string();
    }
}

async fn outage(kind: Kind) -> Vec<Row> {
    let name = match kind {
        Kind::Refused => "2a API server down 30 s (refused)",
        Kind::Hanging => "2b API server hangs 30 s",
    };
    let (sim, agent) = converged("").await;
    let sent_before = total(&agent, "meshkeeper_kube_requests_total").await;
    let arrivals_before = sim.faults().arrivals("meshkeeper/").len();
    let writes_before = cluster_writes(&sim).len();
    let down = Instant::now();
    match kind {
        Kind::Refused => sim.stop().await,
        Kind::Hanging => sim.faults().hang(true),
    }
    // Meanwhile the cluster changes: a label is removed (the agent cannot see it).
    remove_injection_label(&sim, "bookinfo");
    let mut seen = Seen::default();
    while down.elapsed() < OUTAGE {
        look(&agent, &mut seen).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let sent = total(&agent, "meshkeeper_kube_requests_total").await - sent_before;
    let arrived = sim.faults().arrivals("meshkeeper/").len() - arrivals_before;
    let label_during = label(&sim, "bookinfo", "istio-injection");
    match kind {
        Kind::Refused => sim.restart().await.expect("restart kube-sim"),
        Kind::Hanging => sim.faults().hang(false),
    }
    let up = Instant::now();
    let recovery = until_labelled(&sim, "bookinfo", Duration::from_secs(30)).await;
    agent.wait_ready().await;
    settle_writes(&sim, writes_before + 1).await;
    let writes = cluster_writes(&sim).split_off(writes_before);
    // The repair must come from fresh state: after the namespaces watch answered again.
    let watch_back = sim
        .requests()
        .into_iter()
        .filter(|r| r.user_agent.starts_with("meshkeeper/") && r.resource == "namespaces" && r.verb == "watch")
        .map(|r| r.answered)
        .filter(|t| *t >= up)
        .min();
    let fresh = match (writes.first(), kind) {
        (Some(w), Kind::Refused) => watch_back.is_some_and(|t| w.received >= t),
        // The open watch delivers the held change on release.
        (Some(w), Kind::Hanging) => w.received >= up,
        (None, _) => false,
    };
    let per_second = match kind {
        Kind::Refused => sent / OUTAGE.as_secs_f64(),
        Kind::Hanging => arrived as f64 / OUTAGE.as_secs_f64(),
    };
    let counted = match kind {
        Kind::Refused => format!("{sent:.0} requests sent in {} s ({per_second:.1}/s)", OUTAGE.as_secs()),
        Kind::Hanging => format!("{arrived} requests reached the server in {} s ({per_second:.1}/s)", OUTAGE.as_secs()),
    };
    // No hot loop: each watch retries at most every ~1.6 s (plus jitter), the Lease every 2 s.
    let watches = agent.status().await["watches"].as_object().map_or(0, |w| w.len());
    let bound = 0.65 * watches as f64 + 1.0;
    let mut rows = vec![Row::check(
        name,
        "every request refused / left hanging",
        "backoff with jitter, no hot loop: at most ~0.6 requests/s per watch + the Lease's",
        format!("{counted}; bound for {watches} watches: {bound:.1}/s"),
        per_second <= bound,
    )];
    match kind {
        Kind::Refused => rows.push(Row::check(
            name,
            "watches cut, connections refused",
            "/readyz 503 and /status say why",
            format!(
                "/readyz: {}; /status watches failing: {}",
                if seen.readyz_503 { short(&seen.readyz_body) } else { "stayed 200".into() },
                seen.watch_failing
            ),
            seen.readyz_503 && seen.readyz_body.contains("watch failing") && seen.watch_failing,
        )),
        Kind::Hanging => rows.push(Row::check(
            name,
            "Lease renewals hang",
            "the leader stops acting; /status says so",
            format!(
                "follower during the hang: {}; leader_election: {}",
                seen.follower,
                if seen.leader_message.is_empty() { "-" } else { seen.leader_message.as_str() }
            ),
            seen.follower && seen.leader_message.contains("not renewed"),
        )),
    }
    rows.push(Row::check(
        name,
        "a label removed during the outage",
        "not acted on from stale state; repaired within 5 s of the server answering, once",
        format!(
            "label during the outage: {}; repaired {} after the server answered ({} after it went down); writes: {}; after the watch resumed: {fresh}",
            label_during.as_deref().unwrap_or("absent"),
            ms(recovery),
            ms((up - down) + recovery),
            describe(&writes)
        ),
        label_during.is_none() && recovery <= Duration::from_secs(5) && writes.len() == 1 && fresh,
    ));
    rows
}

/// The first 160 characters of a long message.
fn short(text: &str) -> String {
    match text.char_indices().nth(160) {
        Some((i, _)) => format!("{} ...", &text[..i]),
        None => text.to_string(),
    }
}
