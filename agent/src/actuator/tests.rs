//! Actuator I/O tests against a mock API (tower-test): each scenario asserts the method,
//! URI and body the real API server would receive, and what the actuator concluded.

use super::*;
use crate::findings::ObjectRef;
use futures::FutureExt;
use http::{Request, Response};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::client::Body;
use kube::core::ApiResource;
use serde_json::json;
use tower_test::mock;

type Handle = mock::Handle<Request<Body>, Response<Body>>;

fn setup(
    leader: bool,
    ready: bool,
    dry_run: bool,
    qps: f64,
    burst: u32,
) -> (Actuator, Handle, Arc<AgentState>, Metrics) {
    let (svc, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(svc, "default");
    let agent = Arc::new(AgentState::new(json!({}), Duration::from_secs(600)));
    agent.set_leader(leader);
    agent.register_watch("namespaces");
    if ready {
        agent.mark_synced("namespaces");
    }
    let metrics = Metrics::new();
    let act = Actuator::new(client, Arc::new(WriteLimiter::new(qps, burst)), agent.clone(), metrics.clone(), dry_run);
    (act, handle, agent, metrics)
}

fn label_ops() -> Vec<serde_json::Value> {
    vec![
        json!({"op": "test", "path": "/metadata/resourceVersion", "value": "1"}),
        json!({"op": "add", "path": "/metadata/labels/istio-injection", "value": "enabled"}),
    ]
}

fn label_action(ns: &str) -> Action {
    Action {
        kind: "injection_label",
        reason: "InjectionLabelRestored",
        object: ObjectRef::namespace(ns),
        description: format!("set istio-injection=enabled on namespace {ns}"),
        resource: ApiResource::erase::<Namespace>(&()),
        operation: Operation::JsonPatch(label_ops()),
        fields: vec![("label:istio-injection".into(), "enabled".into())],
        observed: Some("1".into()),
    }
}

fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code});
    Response::builder().status(code).body(Body::from(serde_json::to_vec(&body).unwrap())).unwrap()
}

fn ok_namespace(name: &str) -> Response<Body> {
    let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "resourceVersion": "2", "labels": {"istio-injection": "enabled"}}});
    Response::builder().status(200).body(Body::from(serde_json::to_vec(&body).unwrap())).unwrap()
}

/// Serves `responses` in order, asserting each request is the expected PATCH (or the GET that
/// re-reads after a conflict: content type "GET", no body); returns the requests' (uri, content type, body).
async fn serve(mut handle: Handle, responses: Vec<Response<Body>>) -> Vec<(String, String, serde_json::Value)> {
    let mut seen = Vec::new();
    for resp in responses {
        let (req, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
            .await
            .expect("the actuator never sent the expected request")
            .expect("mock closed");
        let uri = req.uri().to_string();
        if req.method() == http::Method::GET {
            // The re-read after a conflict.
            seen.push((uri, "GET".into(), serde_json::Value::Null));
            send.send_response(resp);
            continue;
        }
        assert_eq!(req.method(), http::Method::PATCH);
        let ctype = req.headers()[http::header::CONTENT_TYPE].to_str().unwrap().to_string();
        let body: serde_json::Value =
            serde_json::from_slice(&req.into_body().collect().await.unwrap().to_bytes()).unwrap();
        seen.push((uri, ctype, body));
        send.send_response(resp);
    }
    seen
}

#[tokio::test]
async fn leader_sends_one_json_patch_with_field_manager_and_reports_the_new_version() {
    let (act, handle, _, _) = setup(true, true, false, 5.0, 10);
    let server = tokio::spawn(serve(handle, vec![ok_namespace("team-a")]));
    assert_eq!(act.execute(&label_action("team-a")).await, Outcome::Done { resource_version: Some("2".into()) });
    let seen = server.await.unwrap();
    assert_eq!(seen[0].0, "/api/v1/namespaces/team-a?&fieldManager=meshkeeper");
    assert_eq!(seen[0].1, "application/json-patch+json");
    assert_eq!(seen[0].2, serde_json::Value::Array(label_ops()));
}

#[tokio::test]
async fn follower_and_unsynced_replicas_write_nothing() {
    for (leader, ready, why) in [(false, true, "not the leader"), (true, false, "caches not synced")] {
        let (act, mut handle, _, _) = setup(leader, ready, false, 5.0, 10);
        assert_eq!(act.execute(&label_action("team-a")).await, Outcome::NotAttempted(why));
        assert!(handle.next_request().now_or_never().is_none(), "no request may have been sent");
    }
}

#[tokio::test]
async fn dry_run_sends_dry_run_all() {
    let (act, handle, _, _) = setup(true, true, true, 5.0, 10);
    let server = tokio::spawn(serve(handle, vec![ok_namespace("team-a")]));
    assert_eq!(act.execute(&label_action("team-a")).await, Outcome::DryRun);
    let seen = server.await.unwrap();
    assert_eq!(seen[0].0, "/api/v1/namespaces/team-a?&dryRun=All&fieldManager=meshkeeper");
}

#[tokio::test(start_paused = true)]
async fn server_errors_and_throttling_are_retried_then_succeed() {
    let (act, handle, _, _) = setup(true, true, false, 5.0, 10);
    let server = tokio::spawn(serve(
        handle,
        vec![
            status(500, "InternalError", "etcd leader changed"),
            status(502, "InternalError", "bad gateway"),
            ok_namespace("a"),
        ],
    ));
    assert!(act.execute(&label_action("a")).await.is_done());
    assert_eq!(server.await.unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn persistent_server_errors_give_up_after_bounded_retries_with_one_readable_line() {
    let (act, handle, _, _) = setup(true, true, false, 5.0, 10);
    let server = tokio::spawn(serve(handle, (0..4).map(|_| status(500, "InternalError", "down")).collect()));
    assert_eq!(act.execute(&label_action("a")).await, Outcome::Failed("down (500 InternalError)".into()));
    assert_eq!(server.await.unwrap().len(), 4, "one try and three retries");

    // 429, 503 and 504 were already retried by the client (honouring Retry-After): not again.
    for (code, reason) in [(429, "TooManyRequests"), (503, "ServiceUnavailable"), (504, "Timeout")] {
        let (act, handle, _, _) = setup(true, true, false, 5.0, 10);
        let server = tokio::spawn(serve(handle, vec![status(code, reason, "busy")]));
        assert_eq!(act.execute(&label_action("a")).await, Outcome::Failed(format!("busy ({code} {reason})")));
        assert_eq!(server.await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn conflicts_and_failed_tests_mean_changed_meanwhile_and_forbidden_is_not_retried() {
    let (act, handle, _, _) = setup(true, true, false, 5.0, 10);
    let server =
        tokio::spawn(serve(handle, vec![status(409, "Conflict", "the object has been modified"), ok_namespace("a")]));
    assert_eq!(act.execute(&label_action("a")).await, Outcome::ChangedMeanwhile { current: Some("2".into()) });
    let seen = server.await.unwrap();
    assert_eq!(seen.len(), 2, "the patch, then one re-read");
    assert_eq!((seen[1].0.as_str(), seen[1].1.as_str()), ("/api/v1/namespaces/a", "GET"));

    // What a real API server answers when a JSON patch's `test` fails; the re-read fails too.
    let (act, handle, _, _) = setup(true, true, false, 5.0, 10);
    let stale = status(422, "Invalid", "the server rejected our request due to an error in our request");
    let server = tokio::spawn(serve(handle, vec![stale, status(404, "NotFound", "namespaces \"a\" not found")]));
    assert_eq!(act.execute(&label_action("a")).await, Outcome::ChangedMeanwhile { current: None });
    let seen = server.await.unwrap();
    assert_eq!(seen.len(), 2, "not retried: read back, and the planner re-decides");

    let (act, handle, _, _) = setup(true, true, false, 5.0, 10);
    let msg = "namespaces \"a\" is forbidden: User \"system:serviceaccount:meshkeeper:meshkeeper\" cannot patch resource \"namespaces\" in API group \"\" at the cluster scope";
    let server = tokio::spawn(serve(handle, vec![status(403, "Forbidden", msg)]));
    assert_eq!(act.execute(&label_action("a")).await, Outcome::Forbidden(format!("{msg} (403 Forbidden)")));
    assert_eq!(server.await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_genuinely_invalid_patch_is_a_failure_not_a_race() {
    let (act, handle, _, _) = setup(true, true, false, 5.0, 10);
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "Service \"gw\" is invalid: spec.ports[0].nodePort: Invalid value: 31380: provided port is already allocated",
        "reason": "Invalid", "code": 422,
        "details": {"name": "gw", "kind": "Service", "causes": [{"reason": "FieldValueInvalid", "message": "Invalid value: 31380: provided port is already allocated", "field": "spec.ports[0].nodePort"}]}});
    let resp = Response::builder().status(422).body(Body::from(serde_json::to_vec(&body).unwrap())).unwrap();
    let server = tokio::spawn(serve(handle, vec![resp]));
    let Outcome::Failed(m) = act.execute(&label_action("a")).await else { panic!("expected a failure") };
    assert!(m.ends_with("provided port is already allocated (422 Invalid)"), "{m}");
    server.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn writes_beyond_the_burst_wait_for_the_token_bucket() {
    let (act, handle, _, metrics) = setup(true, true, false, 2.0, 2);
    let server = tokio::spawn(serve(handle, (0..4).map(|i| ok_namespace(&format!("n{i}"))).collect()));
    let start = tokio::time::Instant::now();
    for i in 0..4 {
        assert!(act.execute(&label_action(&format!("n{i}"))).await.is_done());
    }
    server.await.unwrap();
    // 2 burst tokens, then 2 more at 2/s: about 1 s of (paused, auto-advanced) time.
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(950) && elapsed < Duration::from_millis(1100), "{elapsed:?}");
    assert_eq!(metrics.write_throttled.with_label_values(&["injection_label"]).get(), 2);
}
