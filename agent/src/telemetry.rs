//! Logging: tracing-subscriber with an `RUST_LOG` filter, as text or JSON lines.

use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The filter when `RUST_LOG` is unset: our own logs at info, chatty dependencies at warn.
pub const DEFAULT_FILTER: &str = "info,kube=warn,kube_runtime=warn,kube_client=warn,hyper=warn,tower=warn";

/// Installs the global subscriber (logs go to stderr). A bad `RUST_LOG` falls back to the default, with a warning.
pub fn init(format: LogFormat) {
    let (filter, bad) = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => match EnvFilter::try_new(&v) {
            Ok(f) => (f, None),
            Err(e) => (EnvFilter::new(DEFAULT_FILTER), Some(format!("ignoring RUST_LOG={v:?}: {e}"))),
        },
        _ => (EnvFilter::new(DEFAULT_FILTER), None),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
    if installed.is_ok()
        && let Some(w) = bad
    {
        tracing::warn!("{w}");
    }
}
