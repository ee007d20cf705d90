//! Leader election on a Lease (kube-lease-manager): every replica watches and reports, only
//! the holder acts. `meshkeeper_leader` is 1 on the holder. On shutdown the Lease is released
//! so another replica takes over at once instead of waiting for it to expire.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio_util::sync::CancellationToken;

use crate::config::LeaderElectionSettings;
use crate::metrics::Metrics;
use crate::state::AgentState;

/// How long releasing the Lease may take at shutdown.
pub const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("cannot set up leader election on lease {namespace}/{name}: {source}")]
    Setup { namespace: String, name: String, source: kube_lease_manager::LeaseManagerError },
    #[error("leader election stopped unexpectedly: {0}")]
    Stopped(String),
}

/// The identity of this replica: configured, else the host name (the pod name in a cluster).
pub fn identity(configured: &str) -> String {
    if !configured.is_empty() {
        return configured.to_string();
    }
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string()))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("meshkeeper-{}", std::process::id()))
}

/// Called with the new state whenever leadership changes (the daemon re-plans then).
pub type OnChange = Box<dyn Fn(bool) + Send + Sync>;

fn set(agent: &AgentState, metrics: &Metrics, on_change: &OnChange, leader: bool) {
    let changed = agent.is_leader() != leader;
    agent.set_leader(leader);
    metrics.leader.set(i64::from(leader));
    if changed {
        tracing::info!(leader, "leadership changed");
        on_change(leader);
    }
}

/// Runs until `shutdown`; then releases the Lease. Returns an error only if election breaks.
pub async fn run(
    client: Client,
    settings: LeaderElectionSettings,
    identity: String,
    agent: Arc<AgentState>,
    metrics: Metrics,
    on_change: OnChange,
    shutdown: CancellationToken,
) -> Result<(), LeaderError> {
    let LeaderElectionSettings { enabled, namespace, lease_name, identity: _, lease_duration_seconds, grace_seconds } =
        settings;
    if !enabled {
        set(&agent, &metrics, &on_change, true);
        shutdown.cancelled().await;
        set(&agent, &metrics, &on_change, false);
        return Ok(());
    }
    let manager = LeaseManagerBuilder::new(client, &lease_name)
        .with_namespace(&namespace)
        .with_identity(&identity)
        .with_duration(lease_duration_seconds)
        .with_grace(grace_seconds)
        .with_field_manager("meshkeeper")
        .build()
        .await
        .map_err(|source| LeaderError::Setup { namespace: namespace.clone(), name: lease_name.clone(), source })?;
    tracing::info!(lease = %format!("{namespace}/{lease_name}"), %identity, "joined leader election");
    let (mut rx, handle) = manager.watch().await;
    let result = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            changed = rx.changed() => match changed {
                Ok(()) => { let leader = *rx.borrow_and_update(); set(&agent, &metrics, &on_change, leader); }
                Err(_) => break Err(LeaderError::Stopped("the lease manager task ended".into())),
            },
        }
    };
    // Stop acting before letting go of the Lease.
    set(&agent, &metrics, &on_change, false);
    // Dropping the receiver makes the manager release the Lease and end.
    drop(rx);
    match tokio::time::timeout(RELEASE_TIMEOUT, handle).await {
        Ok(Ok(Ok(_))) => tracing::info!("released the leader lease"),
        Ok(Ok(Err(e))) => {
            tracing::warn!(error = %e, "releasing the leader lease failed; it expires by itself")
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "lease manager task failed"),
        Err(_) => tracing::warn!("releasing the leader lease timed out; it expires by itself"),
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_prefers_configuration() {
        assert_eq!(identity("pod-a"), "pod-a");
        assert!(!identity("").is_empty());
    }

    #[tokio::test]
    async fn disabled_election_makes_this_replica_leader_until_shutdown() {
        let (svc, _handle) =
            tower_test::mock::pair::<http::Request<kube::client::Body>, http::Response<kube::client::Body>>();
        let client = Client::new(svc, "default");
        let agent = Arc::new(AgentState::new(serde_json::json!({}), Duration::from_secs(60)));
        let metrics = Metrics::new();
        let mut s = crate::config::Settings::defaults(crate::config::Profile::AsmOnprem).leader_election;
        s.enabled = false;
        let shutdown = CancellationToken::new();
        let changes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = changes.clone();
        let on_change: OnChange = Box::new(move |l| seen.lock().unwrap().push(l));
        let task =
            tokio::spawn(run(client, s, "me".into(), agent.clone(), metrics.clone(), on_change, shutdown.clone()));
        // Wait (bounded) until leadership is taken, observed through the gauge.
        tokio::time::timeout(Duration::from_secs(5), async {
            while metrics.leader.get() != 1 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        assert!(agent.is_leader());
        shutdown.cancel();
        task.await.unwrap().unwrap();
        assert!(!agent.is_leader());
        assert_eq!(metrics.leader.get(), 0);
        assert_eq!(*changes.lock().unwrap(), [true, false], "each change is reported once");
    }
}
