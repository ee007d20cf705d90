//! The one HTTP port: `/metrics`, `/healthz`, `/readyz`, `/status`. GET and HEAD only
//! (axum answers 405 with an `Allow` header for anything else); unknown paths are 404.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::Metrics;
use crate::state::AgentState;

#[derive(Clone)]
pub struct HttpState {
    pub agent: Arc<AgentState>,
    pub metrics: Metrics,
}

const TEXT: &str = "text/plain; charset=utf-8";
const PROM_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .fallback(not_found)
        .with_state(state)
}

async fn metrics(State(s): State<HttpState>) -> Response {
    ([(header::CONTENT_TYPE, PROM_TEXT)], s.metrics.render()).into_response()
}

/// Liveness: the process and its evaluator loop are alive. Never asks the cluster.
async fn healthz(State(s): State<HttpState>) -> Response {
    match s.agent.stalled() {
        None => ([(header::CONTENT_TYPE, TEXT)], "ok\n").into_response(),
        Some(why) => {
            (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, TEXT)], format!("{why}\n")).into_response()
        }
    }
}

/// Readiness: every watch has completed its first list and none is failing now (a failing
/// watch's cache may be stale, so nothing is acted on). The body names each watch still
/// waiting or failing and why.
async fn readyz(State(s): State<HttpState>) -> Response {
    let watches = s.agent.watches();
    let pending: Vec<String> = watches
        .iter()
        .filter(|(_, w)| !w.listed)
        .map(|(r, w)| match &w.error {
            Some(e) => format!("{r} ({})", e.message),
            None => r.to_string(),
        })
        .collect();
    let failing: Vec<String> = watches
        .iter()
        .filter(|(_, w)| w.listed)
        .filter_map(|(r, w)| w.error.as_ref().map(|e| format!("{r} ({})", e.message)))
        .collect();
    let mut reasons = Vec::new();
    if !pending.is_empty() {
        reasons.push(format!("waiting for the first list of {}", pending.join(", ")));
    }
    if !failing.is_empty() {
        reasons.push(format!("watch failing, cache may be stale, not acting: {}", failing.join(", ")));
    }
    if reasons.is_empty() {
        ([(header::CONTENT_TYPE, TEXT)], "ready\n").into_response()
    } else {
        let body = format!("not ready: {}\n", reasons.join("; "));
        (StatusCode::SERVICE_UNAVAILABLE, [(header::CONTENT_TYPE, TEXT)], body).into_response()
    }
}

async fn status(State(s): State<HttpState>) -> Response {
    axum::Json(s.agent.status_json()).into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, TEXT)], "not found: try /metrics, /healthz, /readyz or /status\n")
        .into_response()
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: HttpState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Method, Request};
    use http_body_util::BodyExt;
    use std::time::Duration;
    use tower::ServiceExt;

    fn app() -> (Router, Arc<AgentState>) {
        let agent = Arc::new(AgentState::new(serde_json::json!({"profile": "asm-onprem"}), Duration::from_secs(600)));
        (router(HttpState { agent: agent.clone(), metrics: Metrics::new() }), agent)
    }

    async fn call(app: &Router, method: Method, uri: &str) -> (StatusCode, String, String) {
        let resp =
            app.clone().oneshot(Request::builder().method(method).uri(uri).body(Body::empty()).unwrap()).await.unwrap();
        let status = resp.status();
        let ctype =
            resp.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let body = String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        (status, ctype, body)
    }

    #[tokio::test]
    async fn endpoints_answer_with_their_content_types() {
        let (app, _) = app();
        let (s, ct, body) = call(&app, Method::GET, "/metrics").await;
        assert_eq!((s, ct.as_str()), (StatusCode::OK, PROM_TEXT));
        assert!(body.contains("meshkeeper_build_info"));
        let (s, ct, body) = call(&app, Method::GET, "/healthz").await;
        assert_eq!((s, ct.as_str(), body.as_str()), (StatusCode::OK, TEXT, "ok\n"));
        let (s, ct, body) = call(&app, Method::GET, "/status").await;
        assert_eq!((s, ct.as_str()), (StatusCode::OK, "application/json"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["config"]["profile"], "asm-onprem");
        let (s, _, _) = call(&app, Method::GET, "/nope").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn head_is_allowed_and_other_methods_are_405() {
        let (app, _) = app();
        for path in ["/metrics", "/healthz", "/readyz", "/status"] {
            let (s, _, body) = call(&app, Method::HEAD, path).await;
            assert!(s == StatusCode::OK || s == StatusCode::SERVICE_UNAVAILABLE, "{path}: {s}");
            assert!(body.is_empty(), "HEAD has no body");
            for m in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
                let resp = app
                    .clone()
                    .oneshot(Request::builder().method(m.clone()).uri(path).body(Body::empty()).unwrap())
                    .await
                    .unwrap();
                assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{m} {path}");
                assert!(resp.headers().get(header::ALLOW).is_some());
            }
        }
    }

    #[tokio::test]
    async fn readyz_flips_only_after_the_first_list() {
        let (app, agent) = app();
        agent.register_watch("namespaces");
        agent.register_watch("pods");
        agent.watch_failed("pods", "list failed: pods is forbidden (403 Forbidden)".into(), Some(403));
        let (s, _, body) = call(&app, Method::GET, "/readyz").await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            "not ready: waiting for the first list of namespaces, pods (list failed: pods is forbidden (403 Forbidden))\n"
        );
        agent.mark_synced("pods");
        agent.mark_synced("namespaces");
        let (s, _, _) = call(&app, Method::GET, "/readyz").await;
        assert_eq!(s, StatusCode::OK);
        // A listed watch failing (the API server went away): not ready, and why.
        agent.watch_failed("pods", "watch failed: cannot reach the API server: connection refused".into(), None);
        let (s, _, body) = call(&app, Method::GET, "/readyz").await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            "not ready: watch failing, cache may be stale, not acting: pods (watch failed: cannot reach the API server: connection refused)\n"
        );
        agent.watch_ok("pods");
        assert_eq!(call(&app, Method::GET, "/readyz").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn healthz_fails_when_the_evaluator_stalls() {
        let agent = Arc::new(AgentState::new(serde_json::json!({}), Duration::ZERO));
        let app = router(HttpState { agent, metrics: Metrics::new() });
        tokio::time::sleep(Duration::from_millis(2)).await; // NB: lets the zero budget elapse
        let (s, _, body) = call(&app, Method::GET, "/healthz").await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body.starts_with("evaluator has not run for"));
    }
}
