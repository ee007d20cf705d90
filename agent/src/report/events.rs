//! Kubernetes Events: one when a finding appears and one for every action taken, published
//! by the leader only (so N replicas do not emit N copies) through a bounded queue, so a slow
//! API never stalls the evaluator. kube-runtime's Recorder deduplicates repeats into series.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::findings::{Finding, ObjectRef, Severity};
use crate::metrics::Metrics;

/// Queue length; beyond it Events are dropped (and counted) rather than blocking.
pub const QUEUE: usize = 1024;

/// An Event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRequest {
    pub object: ObjectRef,
    pub warning: bool,
    pub reason: String,
    pub action: String,
    pub note: String,
}

impl EventRequest {
    /// The Event for a finding that just appeared.
    pub fn for_finding(f: &Finding) -> Self {
        EventRequest {
            object: f.object.clone(),
            warning: f.severity != Severity::Info,
            reason: f.reason.to_string(),
            action: "Check".into(),
            note: truncate(&f.message, 1000),
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

pub fn object_reference(o: &ObjectRef) -> ObjectReference {
    ObjectReference {
        api_version: Some(o.api_version.clone()),
        kind: Some(o.kind.clone()),
        namespace: o.namespace.clone(),
        name: Some(o.name.clone()),
        uid: o.uid.clone(),
        ..Default::default()
    }
}

/// The sending side; cheap to clone. A disabled sink drops everything.
#[derive(Clone)]
pub struct EventSink {
    tx: Option<mpsc::Sender<EventRequest>>,
    metrics: Metrics,
}

impl EventSink {
    pub fn disabled(metrics: Metrics) -> Self {
        EventSink { tx: None, metrics }
    }

    /// Queues an Event; never waits. Only real objects get Events.
    pub fn send(&self, ev: EventRequest) {
        let Some(tx) = &self.tx else { return };
        if !ev.object.is_object() {
            return;
        }
        if tx.try_send(ev).is_err() {
            self.metrics.reconcile_errors.with_label_values(&["events", "queue_full"]).inc();
        }
    }
}

/// How long the publisher may take at shutdown to send what is still queued.
pub const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Starts the publisher task; returns the sink and the task. On `shutdown` it publishes what
/// is still queued (bounded by [`DRAIN_TIMEOUT`]), so the Event for the last write survives.
pub fn spawn(
    client: Client,
    identity: String,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> (EventSink, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<EventRequest>(QUEUE);
    let sink = EventSink { tx: Some(tx), metrics: metrics.clone() };
    let recorder = Recorder::new(client, Reporter { controller: "meshkeeper".into(), instance: Some(identity) });
    let task = tokio::spawn(async move {
        let publish = |ev: EventRequest| {
            let (recorder, metrics) = (&recorder, &metrics);
            async move {
                let event = Event {
                    type_: if ev.warning { EventType::Warning } else { EventType::Normal },
                    reason: ev.reason.clone(),
                    note: Some(ev.note.clone()),
                    action: ev.action.clone(),
                    secondary: None,
                };
                if let Err(error) = recorder.publish(&event, &object_reference(&ev.object)).await {
                    let reason = crate::apierror::reason_label(&error);
                    metrics.reconcile_errors.with_label_values(&["events", reason]).inc();
                    tracing::warn!(error = %crate::apierror::one_line(&error), object = %ev.object, reason = %ev.reason, "could not publish Event");
                }
            }
        };
        loop {
            let ev = tokio::select! {
                biased;
                ev = rx.recv() => match ev { Some(ev) => ev, None => break },
                _ = shutdown.cancelled() => break,
            };
            publish(ev).await;
        }
        // Shutdown: what is queued still goes out, within a bound.
        rx.close();
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while let Some(ev) = rx.recv().await {
                publish(ev).await;
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!("some Events were not published before shutdown");
        }
    });
    (sink, task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::test_support::finding;

    #[test]
    fn finding_events_are_warnings_with_bounded_notes() {
        let mut f = finding("injection", "InjectionLabelMissing", "team-a");
        f.message = "é".repeat(700);
        let ev = EventRequest::for_finding(&f);
        assert!(ev.warning);
        assert_eq!(ev.reason, "InjectionLabelMissing");
        assert!(ev.note.len() <= 1004 && ev.note.ends_with('…'));
        let r = object_reference(&ev.object);
        assert_eq!((r.kind.as_deref(), r.name.as_deref(), r.namespace), (Some("Namespace"), Some("team-a"), None));
    }

    #[tokio::test]
    async fn cluster_subjects_and_disabled_sinks_send_nothing() {
        let m = Metrics::new();
        EventSink::disabled(m.clone()).send(EventRequest::for_finding(&finding("x", "R", "a")));
        let (tx, mut rx) = mpsc::channel(1);
        let sink = EventSink { tx: Some(tx), metrics: m.clone() };
        let mut f = finding("x", "R", "a");
        f.object = ObjectRef::cluster("kubernetes-api");
        sink.send(EventRequest::for_finding(&f));
        assert!(rx.try_recv().is_err());
        sink.send(EventRequest::for_finding(&finding("x", "R", "a")));
        sink.send(EventRequest::for_finding(&finding("x", "R", "b")));
        assert!(rx.try_recv().is_ok());
        assert_eq!(m.reconcile_errors.with_label_values(&["events", "queue_full"]).get(), 1);
    }
}
