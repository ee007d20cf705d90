//! Point 5: two replicas, the leader SIGKILLed mid-rollout, later the next leader SIGTERMed
//! mid-rollout. The takeovers are timed from the Lease as kube-sim stores it (the moment the
//! new holder's write lands), leaders are sampled every 100 ms on every replica, and the
//! restart writes are kube-sim's request log.
//!
//! ```text
//!  a leads ── upgrade ── a restarts ── SIGKILL a ── b takes over (≤ lease + retry) ── b restarts
//!     ── c joins ── SIGTERM b (Lease released) ── c takes over (≤ 2 s) ── every workload once
//! ```

use std::time::{Duration, Instant, SystemTime};

use futures::future::BoxFuture;
use kube_sim::{KubeletOptions, SimOptions};

use crate::common::*;
use crate::fleet::{self, LeaderSampler, ms};
use crate::table::Row;

const NAME: &str = "5 leader failover";
const LEASE: u64 = 4;
const GRACE: u64 = 2;
const RETRY: u64 = 1;

pub fn run() -> BoxFuture<'static, Vec<Row>> {
    Box::pin(scenario())
}

fn holder(sim: &kube_sim::Sim) -> Option<String> {
    sim.cluster().get("coordination.k8s.io/v1", "leases", "meshkeeper", "meshkeeper")?["spec"]["holderIdentity"]
        .as_str()
        .map(str::to_string)
}

/// The Lease's renewTime as wall-clock time.
fn renewed(sim: &kube_sim::Sim) -> Option<SystemTime> {
    let l = sim.cluster().get("coordination.k8s.io/v1", "leases", "meshkeeper", "meshkeeper")?;
    let t: k8s_openapi::jiff::Timestamp = l["spec"]["renewTime"].as_str()?.parse().ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_micros(t.as_microsecond().max(0) as u64))
}

async fn scenario() -> Vec<Row> {
    let sim = fleet::mesh(SimOptions::default().kubelet(KubeletOptions::slow(Duration::from_millis(600)))).await;
    let keys = fleet::deploy_fleet(&sim, "fo", 6, 2);
    fleet::wait_available(&sim, &keys, Duration::from_secs(30)).await;
    let config = |id: &str| {
        config_le(
            &format!(
                "  identity: {id}\n  lease_duration_seconds: {LEASE}\n  grace_seconds: {GRACE}\n  retry_period_seconds: {RETRY}\n"
            ),
            "reinjection:\n  mode: enforce\n  max_rollouts_in_progress: 2\n  max_restarts_per_hour: 100\n",
        )
    };
    let mut a = start(&sim, &config("replica-a")).await;
    a.wait_leader().await;
    let mut b = start(&sim, &config("replica-b")).await;
    b.wait_ready().await;
    let sampler = LeaderSampler::start(vec![a.addr.clone(), b.addr.clone()]);
    a.wait_metrics_line("meshkeeper_sidecar_coverage_ratio 1", Duration::from_secs(20)).await;
    assert!(fleet::restart_writes(&sim).is_empty(), "nothing to restart before the upgrade");

    let stale = fleet::injected_deployments(&sim.cluster());
    // A proxy upgrade: replica-a starts rolling; it is killed right after its first restart.
    sim.actors().expect("actors").set_injector_version(fleet::PROXY_NEXT);
    // (The cluster's state, not the request log: a request is logged after its change is seen.)
    until(&sim, Duration::from_secs(20), "replica-a's first restart", |cl| fleet::restarted(cl) > 0).await;
    let last_renewal = renewed(&sim).expect("the Lease's renewTime");
    a.sigkill();
    let killed = Instant::now();
    let killed_wall = SystemTime::now();
    let _ = a.child.wait().await;
    let by_a = fleet::restart_writes(&sim).values().sum::<usize>();
    let restarted_by_a = fleet::restarted(&sim.cluster());
    let in_flight_at_kill =
        sim.cluster().list("apps/v1", "deployments", None).iter().filter(|d| fleet::rolling(d)).count();
    until(&sim, Duration::from_secs(20), "replica-b holds the Lease", |_| holder(&sim).as_deref() == Some("replica-b"))
        .await;
    let kill_takeover = killed.elapsed();
    let since_renewal = SystemTime::now().duration_since(last_renewal).unwrap_or_default();
    let renewal_before_kill = killed_wall.duration_since(last_renewal).unwrap_or_default();
    b.wait_metrics_line("meshkeeper_leader 1", Duration::from_secs(5)).await;

    // A third replica joins; replica-b is SIGTERMed right after its own first restart.
    let c = start(&sim, &config("replica-c")).await;
    c.wait_ready().await;
    sampler.add(&c.addr);
    until(&sim, Duration::from_secs(30), "replica-b's first restart", |cl| fleet::restarted(cl) > restarted_by_a).await;
    let rolling_at_term =
        sim.cluster().list("apps/v1", "deployments", None).iter().filter(|d| fleet::rolling(d)).count();
    b.sigterm();
    let termed = Instant::now();
    let term_takeover = until(&sim, Duration::from_secs(10), "replica-c holds the Lease", |_| {
        holder(&sim).as_deref() == Some("replica-c")
    })
    .await;
    let exit = tokio::time::timeout(Duration::from_secs(15), b.child.wait()).await;
    let b_exit = termed.elapsed();
    let by_b = fleet::restart_writes(&sim).values().sum::<usize>() - by_a;
    until(&sim, Duration::from_secs(60), "every Deployment rolled to the new proxy", |cl| {
        let ds = cl.list("apps/v1", "deployments", None);
        stale.iter().all(|k| {
            ds.iter().any(|d| {
                fleet::key_of(d) == *k
                    && d["spec"]["template"]["metadata"]["annotations"][fleet::RESTARTED_AT].is_string()
                    && !fleet::rolling(d)
            })
        })
    })
    .await;
    c.wait_metrics_line("meshkeeper_pods{state=\"stale\"} 0", Duration::from_secs(10)).await;
    let (max_leaders, samples, leaderless, secs) = sampler.stats();
    drop(sampler);
    let writes = fleet::restart_writes(&sim);
    let total: usize = writes.values().sum();
    let by_c = total - by_a - by_b;
    let failed_patches = writes_by_meshkeeper(&sim, "deployments").iter().filter(|r| r.code >= 300).count();

    let bound = Duration::from_secs(LEASE + RETRY);
    let deadline = Duration::from_secs(LEASE - GRACE);
    let mut rows = vec![Row::check(
        NAME,
        "SIGKILL the leader (replica-a) mid-rollout",
        &format!(
            "replica-b takes over within lease_duration + retry_period = {} ms of the kill, not before replica-a's renew deadline ({} ms after its last renewal)",
            ms(bound),
            ms(deadline)
        ),
        format!(
            "took {} ms after SIGKILL ({} ms after replica-a's last renewal, which was {} ms before the kill); {in_flight_at_kill} rollout(s) in progress at the kill",
            ms(kill_takeover),
            ms(since_renewal),
            ms(renewal_before_kill)
        ),
        kill_takeover <= bound && since_renewal >= deadline,
    )];
    let once =
        writes.len() == stale.len() && writes.values().all(|n| *n == 1) && stale.iter().all(|k| writes.contains_key(k));
    let twice: Vec<String> = writes.iter().filter(|(_, n)| **n > 1).map(|(k, n)| format!("{k} x{n}")).collect();
    rows.push(Row::check(
        NAME,
        "three leaders in turn over one proxy upgrade",
        &format!(
            "each of the {} injected Deployments ({} of the fleet, bookinfo's) restarted exactly once (cooldown 60 min)",
            stale.len(),
            keys.len()
        ),
        format!(
            "{total} restart writes for {} Deployments (replica-a {by_a}, replica-b {by_b}, replica-c {by_c}); restarted twice: {}; {failed_patches} refused patch(es)",
            writes.len(),
            if twice.is_empty() { "none".to_string() } else { twice.join(", ") }
        ),
        once,
    ));
    let exited_ok = matches!(&exit, Ok(Ok(s)) if s.success());
    rows.push(Row::check(
        NAME,
        "SIGTERM the leader (replica-b) mid-rollout",
        "the Lease is released; replica-c takes over within 2000 ms; replica-b exits 0",
        format!(
            "took {} ms; {rolling_at_term} rollout(s) in progress at the signal; replica-b exited {} after {} ms",
            ms(term_takeover),
            match &exit {
                Ok(Ok(s)) => s.to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "not within 15 s".into(),
            },
            ms(b_exit)
        ),
        term_takeover <= Duration::from_secs(2) && exited_ok,
    ));
    rows.push(Row::check(
        NAME,
        "both failovers, sampled on every replica",
        "never two leaders (meshkeeper_leader sampled every 100 ms)",
        format!("{samples} samples over {secs:.1} s: at most {max_leaders} leader(s) at once; {leaderless} sample(s) with none"),
        max_leaders == 1,
    ));
    rows
}
