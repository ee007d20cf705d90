//! Building the Kubernetes clients: in-cluster config, or a kubeconfig (with a context);
//! user agent `meshkeeper/<version>`.
//!
//! Two clients share the configuration but not the read timeout: ordinary requests are
//! bounded by `client.timeout_seconds`, while watches have none. A quiet watch on a real API
//! server receives nothing but a bookmark about once a minute; with a 30 s read timeout every
//! quiet watch broke and re-listed twice a minute. kube-runtime's watcher ends a stream that
//! stays idle past the server-side timeout (290 s) plus a margin, and the server ends it after
//! `timeoutSeconds` anyway.
//!
//! Both retry 429, 503 and 504 answers a bounded number of times ([`RETRIES`], exponential
//! from 250 ms to 5 s with jitter), waiting at least what the server's `Retry-After` asks.
//! kube's own default would retry 15 times with delays up to 1000 s, holding a write (and the
//! actuator behind it) for minutes; after our retries the actuator's outcome decides.

use std::path::PathBuf;
use std::time::Duration;

use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::metrics::{RequestMetrics, verb_of};

/// Where to find the cluster (from the CLI).
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub timeout: Option<Duration>,
}

/// Why no client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read kubeconfig {path}: {source}")]
    ReadKubeconfig { path: PathBuf, source: kube::config::KubeconfigError },
    #[error("invalid kubeconfig: {0}")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    #[error(
        "no Kubernetes cluster found (not in a pod, no KUBECONFIG or ~/.kube/config): {0}; pass --kubeconfig, or try `meshkeeper demo`"
    )]
    Infer(#[source] kube::config::InferConfigError),
    #[error("cannot build the Kubernetes client: {}", crate::apierror::one_line(.0))]
    Build(#[source] kube::Error),
}

pub const USER_AGENT: &str = concat!("meshkeeper/", env!("CARGO_PKG_VERSION"));

/// Resolves the client configuration without connecting.
pub async fn config(opts: &ClientOptions) -> Result<Config, ClientError> {
    let kco = KubeConfigOptions { context: opts.context.clone(), ..Default::default() };
    let mut config = match (&opts.kubeconfig, &opts.context) {
        (Some(path), _) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|source| ClientError::ReadKubeconfig { path: path.clone(), source })?;
            Config::from_custom_kubeconfig(kc, &kco).await.map_err(ClientError::Kubeconfig)?
        }
        (None, Some(_)) => Config::from_kubeconfig(&kco).await.map_err(ClientError::Kubeconfig)?,
        (None, None) => Config::infer().await.map_err(ClientError::Infer)?,
    };
    config.headers.push((http::header::USER_AGENT, http::HeaderValue::from_static(USER_AGENT)));
    if let Some(t) = opts.timeout {
        config.read_timeout = Some(t);
        config.write_timeout = Some(t);
        config.connect_timeout = Some(t.min(Duration::from_secs(10)));
    }
    Ok(config)
}

/// The agent's clients.
#[derive(Clone)]
pub struct Clients {
    /// Every request but watches: bounded by the configured timeout.
    pub api: Client,
    /// Watches (and the LISTs that start them): no read timeout.
    pub watch: Client,
    /// What both clients record about their requests.
    pub requests: RequestMetrics,
    /// The resource plural of every watch request the API server accepted (200), as it happens.
    pub watch_opened: tokio::sync::broadcast::Sender<String>,
}

/// The configuration of the watch client: the same, without a read timeout.
pub fn watch_config(mut config: Config) -> Config {
    config.read_timeout = None;
    config
}

pub async fn build(opts: &ClientOptions) -> Result<Client, ClientError> {
    let config = config(opts).await?;
    Client::try_from(config).map_err(ClientError::Build)
}

pub async fn build_clients(opts: &ClientOptions) -> Result<Clients, ClientError> {
    let config = config(opts).await?;
    let requests = RequestMetrics::new();
    let (watch_opened, _) = tokio::sync::broadcast::channel(256);
    let layer = RequestMetricsLayer { metrics: requests.clone(), watch_opened: watch_opened.clone() };
    let retry = tower::retry::RetryLayer::new(retry_policy());
    // The retry layer clones the service it wraps: a buffer makes kube's boxed stack cloneable.
    let buffer = tower::buffer::BufferLayer::new(1024);
    let build = |mut config: Config| -> Result<Client, ClientError> {
        config.default_retry = false;
        Ok(ClientBuilder::try_from(config)
            .map_err(ClientError::Build)?
            .with_layer(&buffer)
            .with_layer(&retry)
            .with_layer(&layer)
            .build())
    };
    let watch = build(watch_config(config.clone()))?;
    let api = build(config)?;
    Ok(Clients { api, watch, requests, watch_opened })
}

/// How often a 429, 503 or 504 answer is retried inside the client.
pub const RETRIES: u32 = 4;

/// The client's retry policy: [`RETRIES`] retries of 429/503/504, exponential backoff from
/// 250 ms to 5 s with jitter, never sooner than the answer's `Retry-After`.
pub fn retry_policy() -> kube::client::retry::RetryPolicy {
    kube::client::retry::RetryPolicy::new(Duration::from_millis(250), Duration::from_secs(5), RETRIES, true)
        .expect("valid retry parameters")
}

/// A tower layer recording every request's verb, status code and latency (the outermost layer:
/// the time includes authentication and the client's retries), and announcing each watch the
/// API server accepted (the watcher says nothing when a watch resumes quietly).
#[derive(Clone)]
pub struct RequestMetricsLayer {
    pub metrics: RequestMetrics,
    pub watch_opened: tokio::sync::broadcast::Sender<String>,
}

impl<S> tower::Layer<S> for RequestMetricsLayer {
    type Service = RequestMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestMetricsService { inner, metrics: self.metrics.clone(), watch_opened: self.watch_opened.clone() }
    }
}

#[derive(Clone)]
pub struct RequestMetricsService<S> {
    inner: S,
    metrics: RequestMetrics,
    watch_opened: tokio::sync::broadcast::Sender<String>,
}

/// The resource plural of a collection path (`/api/v1/namespaces/x/services` → `services`).
pub fn plural_of(path: &str) -> &str {
    path.trim_end_matches('/').rsplit('/').next().unwrap_or_default()
}

impl<S, B, R> tower::Service<http::Request<B>> for RequestMetricsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let verb = verb_of(req.method(), req.uri().path(), req.uri().query());
        let opened = (verb == "WATCH").then(|| (self.watch_opened.clone(), plural_of(req.uri().path()).to_string()));
        let metrics = self.metrics.clone();
        let start = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            let code = res.as_ref().ok().map(|r| r.status().as_u16());
            metrics.observe(verb, code, start.elapsed().as_secs_f64());
            if let (Some((tx, plural)), Some(200)) = (opened, code) {
                // No receiver (e.g. `check`) is fine: nobody is waiting for it.
                let _ = tx.send(plural);
            }
            res
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn kubeconfig_with_context_and_user_agent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster: {server: 'http://127.0.0.1:1'}\n- name: b\n  cluster: {server: 'http://127.0.0.1:2'}\ncontexts:\n- name: a\n  context: {cluster: a, user: u}\n- name: b\n  context: {cluster: b, user: u, namespace: x}\nusers:\n- name: u\n  user: {token: t}\ncurrent-context: a\n",
        )
        .unwrap();
        let opts = ClientOptions {
            kubeconfig: Some(path.clone()),
            context: Some("b".into()),
            timeout: Some(Duration::from_secs(5)),
        };
        let c = config(&opts).await.unwrap();
        assert_eq!(c.cluster_url.to_string(), "http://127.0.0.1:2/");
        assert_eq!(c.default_namespace, "x");
        assert!(c.headers.iter().any(|(k, v)| k == http::header::USER_AGENT && v == USER_AGENT));
        assert_eq!(c.read_timeout, Some(Duration::from_secs(5)));
        let w = watch_config(c.clone());
        assert_eq!(w.read_timeout, None, "watches have no read timeout");
        assert_eq!((w.write_timeout, w.connect_timeout), (c.write_timeout, c.connect_timeout));

        let missing = ClientOptions { kubeconfig: Some(dir.path().join("nope")), ..Default::default() };
        let err = config(&missing).await.unwrap_err().to_string();
        assert!(err.starts_with("cannot read kubeconfig"), "{err}");

        let bad_ctx = ClientOptions { kubeconfig: Some(path), context: Some("zzz".into()), ..Default::default() };
        assert!(config(&bad_ctx).await.unwrap_err().to_string().contains("zzz"));
    }
}

#[cfg(test)]
mod retry_tests {
    use super::*;
    use http::{Request, Response};
    use k8s_openapi::api::core::v1::Namespace;
    use kube::Api;
    use kube::client::Body;
    use tower_test::mock;

    fn answer(code: u16, retry_after: Option<&str>) -> Response<Body> {
        let body = if code == 200 {
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}})
        } else {
            serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "slow down", "reason": "TooManyRequests", "code": code})
        };
        let mut r = Response::builder().status(code);
        if let Some(s) = retry_after {
            r = r.header("Retry-After", s);
        }
        r.body(Body::from(serde_json::to_vec(&body).unwrap())).unwrap()
    }

    /// A client over a mock API with the production retry layering.
    fn mock_client() -> (Client, mock::Handle<Request<Body>, Response<Body>>) {
        let (svc, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let svc = tower::ServiceBuilder::new().map_err(tower::BoxError::from).service(svc);
        let client = ClientBuilder::new(tower::util::BoxService::new(svc), "default")
            .with_layer(&tower::buffer::BufferLayer::new(8))
            .with_layer(&tower::retry::RetryLayer::new(retry_policy()))
            .build();
        (client, handle)
    }

    #[tokio::test(start_paused = true)]
    async fn throttled_requests_wait_what_retry_after_asks_and_are_retried_a_bounded_number_of_times() {
        let (client, mut handle) = mock_client();
        let api: Api<Namespace> = Api::all(client);
        let call = tokio::spawn(async move { api.get("a").await.map(|n| n.metadata.name) });
        let mut times = Vec::new();
        for resp in [answer(429, Some("3")), answer(503, None), answer(200, None)] {
            let (_, send) = handle.next_request().await.expect("a request");
            times.push(tokio::time::Instant::now());
            send.send_response(resp);
        }
        assert_eq!(call.await.unwrap().unwrap(), Some("a".into()));
        assert!(times[1] - times[0] >= Duration::from_secs(3), "Retry-After: 3 honoured: {:?}", times[1] - times[0]);
        assert!(times[2] - times[1] < Duration::from_secs(3), "no Retry-After: the backoff's own delay");

        // A server that keeps refusing: one try and RETRIES retries, then the caller decides.
        let (client, mut handle) = mock_client();
        let api: Api<Namespace> = Api::all(client);
        let call = tokio::spawn(async move { api.get("a").await });
        for _ in 0..=RETRIES {
            let (_, send) = handle.next_request().await.expect("a request");
            send.send_response(answer(503, Some("1")));
        }
        let err = call.await.unwrap().expect_err("gave up");
        assert!(matches!(&err, kube::Error::Api(s) if s.code == 503), "{err}");
        let more = tokio::time::timeout(Duration::from_secs(60), handle.next_request()).await;
        assert!(!matches!(more, Ok(Some(_))), "no request after the last retry");
    }
}
