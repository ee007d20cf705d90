//! Scenarios 3 and 4: writes answered 500 / 503 / 429 (with and without Retry-After), 409,
//! and a JSON patch whose `test` fails because someone else changed the object meanwhile
//! (the real server's 422). Each namespace below gets one fault; its label is removed and
//! the requests kube-sim saw for it are compared with what must happen.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use kube_sim::{FaultRule, RequestRecord, Sim};
use serde_json::json;

use crate::common::*;
use crate::support::*;
use crate::table::Row;

const NAMESPACES: [&str; 7] = ["t-500", "t-503", "t-429", "t-503-after", "t-503-long", "t-409", "t-race"];

/// The seeded cluster plus the test namespaces (labelled), the agent converged on it.
async fn setup() -> (Sim, Agent) {
    let sim = cluster().await;
    for ns in NAMESPACES {
        sim.cluster()
            .create("v1", "namespaces", "", json!({"metadata": {"name": ns, "labels": {"istio-injection": "enabled"}}}))
            .expect("namespace");
    }
    let agent = start(&sim, &config(ENFORCE)).await;
    agent.wait_leader().await;
    agent.wait_finding("InjectionLabelMissing", false, Duration::from_secs(15)).await;
    (sim, agent)
}

/// meshkeeper's requests (verb, code) on one namespace object, in order.
fn on(sim: &Sim, ns: &str) -> Vec<RequestRecord> {
    sim.requests()
        .into_iter()
        .filter(|r| {
            r.user_agent.starts_with("meshkeeper/")
                && r.resource == "namespaces"
                && r.name.as_deref() == Some(ns)
                && r.subresource.is_none()
        })
        .collect()
}

fn codes(rs: &[RequestRecord]) -> String {
    rs.iter().map(|r| format!("{} {}", r.verb, r.code)).collect::<Vec<_>>().join(", ")
}

fn patches(rs: &[RequestRecord]) -> Vec<u16> {
    rs.iter().filter(|r| r.verb == "patch").map(|r| r.code).collect()
}

/// The time between the first and the second patch's arrival.
fn gap(rs: &[RequestRecord]) -> Option<Duration> {
    let p: Vec<&RequestRecord> = rs.iter().filter(|r| r.verb == "patch").collect();
    (p.len() >= 2).then(|| p[1].received - p[0].received)
}

/// Removes the label with `fault` installed; waits until it is back; the requests seen.
async fn repair_under(sim: &Sim, ns: &str, fault: FaultRule) -> (Duration, Vec<RequestRecord>) {
    sim.faults().add(fault.name(ns));
    remove_injection_label(sim, ns);
    let took = until_labelled(sim, ns, Duration::from_secs(30)).await;
    settled(sim, ns).await;
    (took, on(sim, ns))
}

/// The store changes before kube-sim records the request that changed it: waits (bounded)
/// until the successful patch is in the request log too.
async fn settled(sim: &Sim, ns: &str) {
    eventually(Duration::from_secs(5), "the successful patch recorded", || {
        let done = patches(&on(sim, ns)).contains(&200);
        async move { done }
    })
    .await;
}

pub fn server_errors() -> BoxFuture<'static, Vec<Row>> {
    Box::pin(async {
        const NAME: &str = "3 500 / 503 / 429 on writes";
        let (sim, agent) = setup().await;
        let mut rows = Vec::new();

        let (took, rs) = repair_under(&sim, "t-500", FaultRule::new("patch", "namespaces", 2, 500)).await;
        rows.push(Row::check(
            NAME,
            "PATCH answered 500 twice",
            "retried with backoff, applied once",
            format!("{} in {}", codes(&rs), ms(took)),
            patches(&rs) == [500, 500, 200],
        ));

        let (took, rs) = repair_under(&sim, "t-503", FaultRule::new("patch", "namespaces", 2, 503)).await;
        rows.push(Row::check(
            NAME,
            "PATCH answered 503 twice (no Retry-After)",
            "retried with backoff, applied once",
            format!("{} in {}", codes(&rs), ms(took)),
            patches(&rs) == [503, 503, 200],
        ));

        let (took, rs) =
            repair_under(&sim, "t-429", FaultRule::new("patch", "namespaces", 1, 429).retry_after(2)).await;
        let g = gap(&rs).unwrap_or_default();
        rows.push(Row::check(
            NAME,
            "PATCH answered 429 with Retry-After: 2",
            "the retry waits at least 2 s, applied once",
            format!("{}; retried after {}; in {}", codes(&rs), ms(g), ms(took)),
            patches(&rs) == [429, 200] && g >= Duration::from_secs(2),
        ));

        let (took, rs) =
            repair_under(&sim, "t-503-after", FaultRule::new("patch", "namespaces", 1, 503).retry_after(3)).await;
        let g = gap(&rs).unwrap_or_default();
        rows.push(Row::check(
            NAME,
            "PATCH answered 503 with Retry-After: 3",
            "the retry waits at least 3 s, applied once",
            format!("{}; retried after {}; in {}", codes(&rs), ms(g), ms(took)),
            patches(&rs) == [503, 200] && g >= Duration::from_secs(3),
        ));

        // A server that keeps answering 503 for 20 s: bounded retries, then a cooldown; the
        // write lands once the server recovers.
        let ns = "t-503-long";
        sim.faults().add(FaultRule::new("patch", "namespaces", 10_000, 503).name(ns));
        remove_injection_label(&sim, ns);
        let start = Instant::now();
        agent.wait_finding("WriteFailed", true, Duration::from_secs(20)).await;
        let failing_after = start.elapsed();
        while start.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let during = patches(&on(&sim, ns)).len();
        sim.faults().clear();
        let took = until_labelled(&sim, ns, Duration::from_secs(60)).await;
        settled(&sim, ns).await;
        let rs = on(&sim, ns);
        let ok = patches(&rs).iter().filter(|c| **c == 200).count();
        rows.push(Row::check(
            NAME,
            "every PATCH answered 503 for 20 s",
            "bounded retries and a cooldown (no hot loop), a finding; applied once after",
            format!(
                "{during} attempts in 20 s; WriteFailed after {}; applied {} after recovery ({ok} success)",
                ms(failing_after),
                ms(took)
            ),
            during <= 30 && ok == 1,
        ));
        agent.wait_finding("WriteFailed", false, Duration::from_secs(15)).await;
        rows
    })
}

pub fn conflicts() -> BoxFuture<'static, Vec<Row>> {
    Box::pin(async {
        const NAME: &str = "4 409 / 422 on writes";
        let (sim, agent) = setup().await;
        let mut rows = Vec::new();

        // A 409 on an object nobody else changed: re-read, found at the planned version, the
        // same decision made again after a short backoff.
        let (took, rs) = repair_under(&sim, "t-409", FaultRule::new("patch", "namespaces", 1, 409)).await;
        let shape: Vec<(String, u16)> = rs.iter().map(|r| (r.verb.clone(), r.code)).collect();
        let want = [("patch".to_string(), 409), ("get".to_string(), 200), ("patch".to_string(), 200)];
        rows.push(Row::check(
            NAME,
            "PATCH answered 409",
            "re-read, re-decided, applied once",
            format!("{} in {}", codes(&rs), ms(took)),
            shape == want,
        ));

        // A real race: while meshkeeper's patch is in flight, someone opts the namespace out
        // (istio-injection=disabled). The patch's `test` of the resourceVersion fails (422);
        // meshkeeper re-reads, sees the newer version, and decides afresh: leave it alone.
        let ns = "t-race";
        sim.faults().latency(Some("namespaces"), Duration::from_millis(1500));
        remove_injection_label(&sim, ns);
        eventually(Duration::from_secs(10), "meshkeeper's patch in flight", || {
            let arrived = sim
                .faults()
                .arrivals("meshkeeper/")
                .iter()
                .any(|a| a.method == "PATCH" && a.uri.starts_with(&format!("/api/v1/namespaces/{ns}?")));
            async move { arrived }
        })
        .await;
        sim.cluster()
            .patch(
                "v1",
                "namespaces",
                "",
                ns,
                kube_sim::PatchType::Merge,
                &json!({"metadata": {"labels": {"istio-injection": "disabled"}}}),
                "gitops",
            )
            .expect("opt out");
        until(&sim, Duration::from_secs(10), "the in-flight patch answered", |_| !patches(&on(&sim, ns)).is_empty())
            .await;
        sim.faults().clear();
        agent.wait_finding("InjectionDisabled", true, Duration::from_secs(10)).await;
        eventually(Duration::from_secs(5), "the re-read recorded", || {
            let read = on(&sim, ns).iter().any(|r| r.verb == "get");
            async move { read }
        })
        .await;
        let rs = on(&sim, ns);
        let now = label(&sim, ns, "istio-injection");
        rows.push(Row::check(
            NAME,
            "someone opts the namespace out while meshkeeper's PATCH is in flight",
            "422 (failed test): re-read and re-decided on the new state, never a blind overwrite",
            format!("{}; label now {}", codes(&rs), now.as_deref().unwrap_or("absent")),
            patches(&rs) == [422] && now.as_deref() == Some("disabled") && rs.iter().any(|r| r.verb == "get"),
        ));
        rows
    })
}
