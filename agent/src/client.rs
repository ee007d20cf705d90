//! Building the Kubernetes clients: in-cluster config, or a kubeconfig (with a context);
//! user agent `meshkeeper/<version>`.
//!
//! Two clients share the configuration but not the read timeout: ordinary requests are
//! bounded by `client.timeout_seconds`, while watches have none. A quiet watch on a real API
//! server receives nothing but a bookmark about once a minute; with a 30 s read timeout every
//! quiet watch broke and re-listed twice a minute. kube-runtime's watcher ends a stream that
//! stays idle past the server-side timeout (290 s) plus a margin, and the server ends it after
//! `timeoutSeconds` anyway.

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
    let layer = RequestMetricsLayer(requests.clone());
    let build = |config: Config| -> Result<Client, ClientError> {
        Ok(ClientBuilder::try_from(config).map_err(ClientError::Build)?.with_layer(&layer).build())
    };
    let watch = build(watch_config(config.clone()))?;
    let api = build(config)?;
    Ok(Clients { api, watch, requests })
}

/// A tower layer recording every request's verb, status code and latency (the outermost layer:
/// the time includes authentication and kube's own retries).
#[derive(Clone)]
pub struct RequestMetricsLayer(pub RequestMetrics);

impl<S> tower::Layer<S> for RequestMetricsLayer {
    type Service = RequestMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestMetricsService { inner, metrics: self.0.clone() }
    }
}

#[derive(Clone)]
pub struct RequestMetricsService<S> {
    inner: S,
    metrics: RequestMetrics,
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
        let metrics = self.metrics.clone();
        let start = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            let code = res.as_ref().ok().map(|r| r.status().as_u16());
            metrics.observe(verb, code, start.elapsed().as_secs_f64());
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
