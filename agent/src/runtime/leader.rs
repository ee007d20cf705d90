//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go does it: every replica
//! watches and reports, only the holder acts.
//!
//! ```text
//!  every retry period:  GET lease ─┬─ absent ─────────────► create (holder = me)
//!                                  ├─ mine ───────────────► PUT renewTime   (resourceVersion: optimistic lock)
//!                                  ├─ released / expired ─► PUT holder = me (resourceVersion: optimistic lock)
//!                                  └─ held by another ────► follow
//! ```
//!
//! - Mutual exclusion comes from the resourceVersion precondition of every write: of two
//!   replicas that saw the same released Lease, one PUT succeeds and the other answers 409.
//!   Each identity writes with its own field manager (`meshkeeper-<identity>`).
//! - A holder is leader only until `renew deadline = lease duration - grace` after the moment
//!   it *sent* its last successful renewal; past that it stops acting by itself (the deadline
//!   lives in [`AgentState`], read by the actuator and `meshkeeper_leader`), even when it
//!   cannot reach the API server to say so. Another replica takes over only after it has seen
//!   the same Lease record unchanged for the whole lease duration (on its own clock), which is
//!   later: no two replicas ever act at once, whatever the clocks say.
//! - A released Lease (empty holder, as SIGTERM leaves it) is taken at the next retry. A round
//!   in flight at SIGTERM is finished first (within the release's time), so the release starts
//!   from the version that round wrote.
//! - Errors (a missing namespace, RBAC) never stop the agent: it keeps watching and
//!   reporting as a follower, says why it cannot lead, and retries with backoff.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::apierror;
use crate::config::LeaderElectionSettings;
use crate::state::{AgentState, LeaderObservation};

/// How long releasing the Lease may take at shutdown (with the round in flight, if any).
pub const RELEASE_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest wait between attempts while the Lease cannot be used.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long after a holder's record expires (on this replica's clock) a follower tries to take it.
pub const EXPIRY_MARGIN: Duration = Duration::from_millis(10);

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

/// The field manager of this identity's Lease writes (at most 128 characters).
pub fn field_manager(identity: &str) -> String {
    let mut m = format!("meshkeeper-{identity}");
    if m.len() > 128 {
        let mut end = 128;
        while !m.is_char_boundary(end) {
            end -= 1;
        }
        m.truncate(end);
    }
    m
}

/// What the elector reports as it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Leadership changed (the daemon re-plans everything then).
    Leadership(bool),
    /// What the elector observes changed (e.g. the Lease's namespace is missing).
    Observation,
}

/// Called on every [`Change`].
pub type OnChange = Box<dyn Fn(Change) + Send + Sync>;

fn observe(agent: &AgentState, on_change: &OnChange, o: LeaderObservation) {
    if agent.leader_observation() != o {
        agent.set_leader_observation(o);
        on_change(Change::Observation);
    }
}

/// What one round concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Round {
    /// This replica holds the Lease until the deadline.
    Leader {
        until: Instant,
    },
    Follower {
        holder: Option<String>,
    },
}

/// The last Lease record seen, and when (on this replica's clock) it was first seen.
#[derive(Debug, Clone)]
struct Seen {
    resource_version: Option<String>,
    at: Instant,
}

/// Why a round failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundError {
    pub message: String,
    pub code: Option<u16>,
    pub namespace_missing: bool,
}

impl RoundError {
    fn of(e: &kube::Error) -> Self {
        let namespace_missing = matches!(e, kube::Error::Api(s) if s.code == 404
            && (s.details.as_ref().is_some_and(|d| d.kind == "namespaces") || s.message.starts_with("namespaces ")));
        RoundError { message: apierror::one_line(e), code: apierror::code(e), namespace_missing }
    }
}

/// One replica's elector.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    params: PostParams,
    lease_duration: Duration,
    renew_deadline: Duration,
    seen: Option<Seen>,
    /// The last version this replica wrote as holder (for the release).
    mine: Option<Lease>,
    /// Following a live holder: when its record expires (see [`Elector::expires`]).
    expires: Option<Instant>,
}

fn now_micro() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

impl Elector {
    pub fn new(client: Client, s: &LeaderElectionSettings, identity: &str) -> Self {
        Elector {
            api: Api::namespaced(client, &s.namespace),
            name: s.lease_name.clone(),
            identity: identity.to_string(),
            params: PostParams { field_manager: Some(field_manager(identity)), ..Default::default() },
            lease_duration: Duration::from_secs(s.lease_duration_seconds),
            renew_deadline: Duration::from_secs(s.lease_duration_seconds - s.grace_seconds),
            seen: None,
            mine: None,
            expires: None,
        }
    }

    fn spec(&self, transitions: i32, acquired: Option<MicroTime>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.lease_duration.as_secs() as i32),
            acquire_time: acquired.or_else(|| Some(now_micro())),
            renew_time: Some(now_micro()),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// Whether this replica wrote the Lease last as its holder (leading, or unable to renew).
    pub fn holds(&self) -> bool {
        self.mine.is_some()
    }

    /// Writes `lease` (PUT with its resourceVersion); 409 means another replica won.
    async fn put(&mut self, mut lease: Lease, sent: Instant) -> Result<Round, RoundError> {
        lease.metadata.managed_fields = None;
        match self.api.replace(&self.name, &self.params, &lease).await {
            Ok(written) => {
                self.mine = Some(written);
                Ok(Round::Leader { until: sent + self.renew_deadline })
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                self.mine = None;
                Ok(Round::Follower { holder: None })
            }
            Err(e) => {
                if apierror::code(&e) == Some(404) {
                    // The Lease (or its namespace) is gone: the next round reads and creates.
                    self.mine = None;
                }
                Err(RoundError::of(&e))
            }
        }
    }

    /// One round: create, renew, take over, or follow. A holder renews straight from the
    /// version it last wrote (one PUT; its resourceVersion makes a stale renewal a 409, after
    /// which the next round reads the Lease again): half the requests of a GET + PUT renewal.
    pub async fn round(&mut self) -> Result<Round, RoundError> {
        let sent = Instant::now();
        self.expires = None;
        if let Some(mut lease) = self.mine.clone() {
            let spec = lease.spec.clone().unwrap_or_default();
            lease.spec = Some(self.spec(spec.lease_transitions.unwrap_or(0), spec.acquire_time));
            return self.put(lease, sent).await;
        }
        let current = self.api.get_opt(&self.name).await.map_err(|e| RoundError::of(&e))?;
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..Default::default() },
                spec: Some(self.spec(0, None)),
            };
            return match self.api.create(&self.params, &lease).await {
                Ok(written) => {
                    self.mine = Some(written);
                    Ok(Round::Leader { until: sent + self.renew_deadline })
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Round::Follower { holder: None }),
                Err(e) => Err(RoundError::of(&e)),
            };
        };
        let rv = lease.metadata.resource_version.clone();
        if self.seen.as_ref().is_none_or(|s| s.resource_version != rv) {
            self.seen = Some(Seen { resource_version: rv, at: Instant::now() });
        }
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let transitions = spec.lease_transitions.unwrap_or(0);
        if holder.as_deref() == Some(self.identity.as_str()) {
            lease.spec = Some(self.spec(transitions, spec.acquire_time.clone()));
            return self.put(lease, sent).await;
        }
        let duration = spec
            .lease_duration_seconds
            .filter(|d| *d > 0)
            .map(|d| Duration::from_secs(d as u64))
            .unwrap_or(self.lease_duration);
        let expired = self.seen.as_ref().is_some_and(|s| s.at.elapsed() >= duration);
        if holder.is_none() || expired {
            lease.spec = Some(self.spec(transitions + 1, None));
            return self.put(lease, sent).await;
        }
        self.mine = None;
        self.expires = self.seen.as_ref().map(|s| s.at + duration);
        Ok(Round::Follower { holder })
    }

    /// When the live holder's record, unchanged since this replica first saw it, expires on this
    /// replica's clock (a follower tries again then, not a retry period later).
    pub fn expires(&self) -> Option<Instant> {
        self.expires
    }

    /// Gives the Lease up (empty holder), so another replica takes it at its next retry.
    pub async fn release(&mut self) -> Result<(), RoundError> {
        let Some(mut lease) = self.mine.take() else { return Ok(()) };
        let spec = lease.spec.clone().unwrap_or_default();
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            acquire_time: Some(now_micro()),
            renew_time: Some(now_micro()),
            lease_transitions: spec.lease_transitions,
            ..Default::default()
        });
        lease.metadata.managed_fields = None;
        self.api.replace(&self.name, &self.params, &lease).await.map(|_| ()).map_err(|e| RoundError::of(&e))
    }
}

/// The wait before the next round: the retry period while things work; after `failures`
/// failed rounds, doubling up to [`MAX_BACKOFF`] — but the holder (leading, or past its
/// deadline while it could not renew, e.g. during an API outage) keeps retrying at the retry
/// period, so it renews before its deadline, and takes up again within a retry period of the
/// API server answering.
pub fn next_delay(retry: Duration, failures: u32, holder: bool) -> Duration {
    if failures == 0 || holder {
        return retry;
    }
    retry.saturating_mul(1u32 << failures.min(5)).min(MAX_BACKOFF)
}

/// Runs until `shutdown`; then releases the Lease if held. Never fails: a Lease that cannot
/// be used is reported (`LeaderObservation::Failing`) and retried.
pub async fn run(
    client: Client,
    settings: LeaderElectionSettings,
    identity: String,
    agent: Arc<AgentState>,
    on_change: OnChange,
    shutdown: CancellationToken,
) {
    let lease = format!("{}/{}", settings.namespace, settings.lease_name);
    if !settings.enabled {
        agent.set_leader(true);
        observe(&agent, &on_change, LeaderObservation::Disabled);
        on_change(Change::Leadership(true));
        shutdown.cancelled().await;
        agent.set_leader(false);
        on_change(Change::Leadership(false));
        return;
    }
    tracing::info!(%lease, %identity, "joining leader election");
    let retry = Duration::from_secs(settings.retry_period_seconds);
    let mut elector = Elector::new(client, &settings, &identity);
    let mut failures = 0u32;
    let mut was_leader = false;
    // Set when shutdown is seen: the in-flight round and the release share it.
    let mut deadline = None;
    loop {
        let round = {
            let attempt = elector.round();
            tokio::pin!(attempt);
            let round = tokio::select! {
                r = &mut attempt => Some(r),
                _ = shutdown.cancelled() => None,
            };
            match round {
                Some(round) => round,
                None => {
                    // A round in flight is finished, not cut (bounded): its write may land
                    // anyway, and the release must start from the version it wrote, or it
                    // answers 409.
                    let until = Instant::now() + RELEASE_TIMEOUT;
                    deadline = Some(until);
                    let _ = tokio::time::timeout_at(until, attempt).await;
                    break;
                }
            }
        };
        match round {
            Ok(Round::Leader { until }) => {
                failures = 0;
                agent.set_leader_until(until.into_std());
                observe(&agent, &on_change, LeaderObservation::Leading { lease: lease.clone() });
            }
            Ok(Round::Follower { holder }) => {
                failures = 0;
                agent.set_leader(false);
                observe(&agent, &on_change, LeaderObservation::Following { lease: lease.clone(), holder });
            }
            Err(e) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(10) {
                    tracing::warn!(%lease, error = %e.message, "cannot take part in leader election; watching and reporting only, retrying");
                }
                let o = LeaderObservation::Failing {
                    lease: lease.clone(),
                    error: e.message,
                    code: e.code,
                    namespace_missing: e.namespace_missing,
                };
                observe(&agent, &on_change, o);
                // A leader that cannot renew keeps its deadline; past it, is_leader() is false.
            }
        }
        let leader = agent.is_leader();
        if leader != was_leader {
            tracing::info!(leader, %lease, "leadership changed");
            on_change(Change::Leadership(leader));
            was_leader = leader;
        }
        let delay = jitter(next_delay(retry, failures, leader || elector.holds()));
        // A follower tries again the moment the holder's record expires, so a SIGKILLed
        // leader is replaced within the lease duration plus one round, not plus a retry period.
        let delay = match elector.expires() {
            Some(at) if !leader => delay.min(at.saturating_duration_since(Instant::now()) + EXPIRY_MARGIN),
            _ => delay,
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
        // The deadline may have passed while waiting.
        let leader = agent.is_leader();
        if leader != was_leader {
            tracing::info!(leader, %lease, "leadership changed");
            on_change(Change::Leadership(leader));
            was_leader = leader;
        }
    }
    // Stop acting before letting go of the Lease.
    agent.set_leader(false);
    if was_leader {
        on_change(Change::Leadership(false));
    }
    let until = deadline.unwrap_or_else(|| Instant::now() + RELEASE_TIMEOUT);
    match tokio::time::timeout_at(until, elector.release()).await {
        Ok(Ok(())) if was_leader => tracing::info!(%lease, "released the leader lease"),
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(%lease, error = %e.message, "releasing the leader lease failed; it expires by itself")
        }
        Err(_) => tracing::warn!(%lease, "releasing the leader lease timed out; it expires by itself"),
    }
}

/// Up to 10% more, so replicas started together do not stay in lockstep.
fn jitter(d: Duration) -> Duration {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|t| t.subsec_nanos()).unwrap_or(0);
    d + d.mul_f64(f64::from(nanos % 1000) / 10_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_prefers_configuration_and_field_managers_are_per_identity() {
        assert_eq!(identity("pod-a"), "pod-a");
        assert!(!identity("").is_empty());
        assert_eq!(field_manager("pod-a"), "meshkeeper-pod-a");
        assert_ne!(field_manager("pod-a"), field_manager("pod-b"));
        assert_eq!(field_manager(&"x".repeat(300)).len(), 128);
    }

    #[test]
    fn backoff_doubles_for_followers_and_stays_at_the_retry_period_for_the_holder() {
        let r = Duration::from_secs(2);
        assert_eq!(next_delay(r, 0, false), r);
        assert_eq!(next_delay(r, 1, false), Duration::from_secs(4));
        assert_eq!(next_delay(r, 2, false), Duration::from_secs(8));
        assert_eq!(next_delay(r, 9, false), MAX_BACKOFF);
        assert_eq!(next_delay(r, 9, true), r, "a holder must renew before its deadline, and soon after an outage");
        assert!(jitter(r) >= r && jitter(r) <= r + r / 10);
    }

    /// SIGTERM while the renewal is in flight (faults 6, slow Lease): the renewal is finished,
    /// not cut, and the release is sent from the version it wrote (not the one before it,
    /// which a server that committed the renewal answers with 409).
    #[tokio::test(start_paused = true)]
    async fn a_renewal_in_flight_at_shutdown_is_finished_and_the_release_starts_from_it() {
        use http_body_util::BodyExt;
        let (svc, mut handle) =
            tower_test::mock::pair::<http::Request<kube::client::Body>, http::Response<kube::client::Body>>();
        let client = Client::new(svc, "default");
        let agent = Arc::new(AgentState::new(serde_json::json!({}), Duration::from_secs(60)));
        let mut s = crate::config::Settings::defaults(crate::config::Profile::AsmOnprem).leader_election;
        s.retry_period_seconds = 1;
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(client, s, "me".into(), agent.clone(), Box::new(|_| {}), shutdown.clone()));
        let lease = |rv: &str, holder: Option<&str>| {
            let body = serde_json::json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "meshkeeper", "namespace": "meshkeeper", "resourceVersion": rv},
                "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15}});
            http::Response::builder().status(200).body(kube::client::Body::from(body.to_string().into_bytes())).unwrap()
        };
        let body_of = |req: http::Request<kube::client::Body>| async move {
            let bytes = req.into_body().collect().await.unwrap().to_bytes();
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
        };
        // No Lease yet: created, this replica leads.
        let (req, send) = handle.next_request().await.expect("GET");
        assert_eq!(req.method(), http::Method::GET);
        let missing = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "reason": "NotFound", "code": 404, "message": "leases.coordination.k8s.io \"meshkeeper\" not found"});
        send.send_response(
            http::Response::builder()
                .status(404)
                .body(kube::client::Body::from(missing.to_string().into_bytes()))
                .unwrap(),
        );
        let (req, send) = handle.next_request().await.expect("create");
        assert_eq!(req.method(), http::Method::POST);
        send.send_response(lease("1", Some("me")));
        // The renewal is in flight when shutdown comes.
        let (req, renewal) = handle.next_request().await.expect("renewal");
        assert_eq!(req.method(), http::Method::PUT);
        assert_eq!(body_of(req).await["metadata"]["resourceVersion"], "1");
        shutdown.cancel();
        tokio::time::sleep(Duration::from_millis(10)).await;
        renewal.send_response(lease("2", Some("me")));
        let (req, send) = handle.next_request().await.expect("release");
        assert_eq!(req.method(), http::Method::PUT);
        let body = body_of(req).await;
        assert_eq!(body["metadata"]["resourceVersion"], "2", "the release starts from the renewal: {body}");
        assert!(body["spec"]["holderIdentity"].is_null(), "{body}");
        send.send_response(lease("3", None));
        task.await.unwrap();
        assert!(!agent.is_leader());
    }

    #[tokio::test]
    async fn disabled_election_makes_this_replica_leader_until_shutdown() {
        let (svc, _handle) =
            tower_test::mock::pair::<http::Request<kube::client::Body>, http::Response<kube::client::Body>>();
        let client = Client::new(svc, "default");
        let agent = Arc::new(AgentState::new(serde_json::json!({}), Duration::from_secs(60)));
        let mut s = crate::config::Settings::defaults(crate::config::Profile::AsmOnprem).leader_election;
        s.enabled = false;
        let shutdown = CancellationToken::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let on_change: OnChange = Box::new(move |c| {
            if let Change::Leadership(l) = c {
                let _ = tx.send(l);
            }
        });
        let task = tokio::spawn(run(client, s, "me".into(), agent.clone(), on_change, shutdown.clone()));
        assert_eq!(rx.recv().await, Some(true));
        assert!(agent.is_leader());
        assert_eq!(agent.leader_observation(), LeaderObservation::Disabled);
        shutdown.cancel();
        task.await.unwrap();
        assert!(!agent.is_leader());
        assert_eq!(rx.recv().await, Some(false), "each change is reported once");
    }
}
