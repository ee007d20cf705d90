//! Scenario 1: the watch history is compacted while the API server is away; every resume
//! answers 410 Gone.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use crate::common::*;
use crate::support::*;
use crate::table::Row;

const NAME: &str = "1 history compacted (410 Gone)";

pub fn run() -> BoxFuture<'static, Vec<Row>> {
    Box::pin(async {
        let (sim, agent) = converged("").await;
        let lists_before = series(&agent, "meshkeeper_watch_lists_total").await;
        let writes_before = cluster_writes(&sim).len();
        // The server goes away; the cluster moves on (a label removed) and compacts its history.
        sim.stop().await;
        remove_injection_label(&sim, "bookinfo");
        sim.faults().compact();
        sim.restart().await.expect("restart kube-sim");
        let repaired = until_labelled(&sim, "bookinfo", Duration::from_secs(15)).await;
        // Every watch re-lists once: wait for all of them, then compare exactly.
        let watches = lists_before.len();
        let lists_after = {
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                let now = series(&agent, "meshkeeper_watch_lists_total").await;
                let relisted = lists_before.iter().filter(|(k, v)| now.get(*k).copied().unwrap_or(0.0) > **v).count();
                if relisted == watches || Instant::now() > deadline {
                    break now;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        agent.wait_ready().await;
        agent.wait_finding("InjectionLabelMissing", false, Duration::from_secs(5)).await;
        let relists: Vec<String> = lists_before
            .iter()
            .map(|(k, v)| {
                let name = k.trim_start_matches("{resource=\"").trim_end_matches("\"}");
                format!("{name} {}", lists_after.get(k).copied().unwrap_or(0.0) - v)
            })
            .collect();
        let exactly_once = lists_before.iter().all(|(k, v)| lists_after.get(k).copied().unwrap_or(0.0) - v == 1.0);
        settle_writes(&sim, writes_before + 1).await;
        let writes = cluster_writes(&sim).split_off(writes_before);
        let one_write = writes.len() == 1
            && writes[0].verb == "patch"
            && writes[0].name.as_deref() == Some("bookinfo")
            && writes[0].code == 200;
        vec![
            Row::check(
                NAME,
                "API server stopped, a label removed, history compacted, server back",
                "exactly one re-list per watch",
                format!("{watches} watches, re-lists: {}", relists.join(", ")),
                exactly_once && watches >= 5,
            ),
            Row::check(
                NAME,
                "the label removed while the server was away",
                "converges: repaired once, nothing else written",
                format!("restored {} after the server answered; writes: {}", ms(repaired), describe(&writes)),
                one_write,
            ),
        ]
    })
}
