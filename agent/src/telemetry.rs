//! Logging: tracing-subscriber with an `RUST_LOG` filter, as text or JSON lines. Text logs
//! are coloured only on a terminal: `kubectl logs`, files and pipes get plain text, and
//! `NO_COLOR` (any non-empty value, <https://no-color.org>) switches colour off everywhere.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The filter when `RUST_LOG` is unset: our own logs at info, chatty dependencies at warn.
/// kube-client's request module only at error: its warnings are Rust Debug dumps of what the
/// agent already reports in one line (`eof in poll: Custom { kind: UnexpectedEof, .. }` for a
/// watch cut mid-stream, and for an answer that does not decode, the whole body, a list of
/// every pod included, then the serde error's Debug); its TLS module's warnings stay.
pub const DEFAULT_FILTER: &str = "info,kube=warn,kube_runtime=warn,kube_client=warn,kube_client::client=error,kube_client::client::tls=warn,hyper=warn,tower=warn";

/// Whether text logs may carry colour escape codes.
pub fn use_colour(stderr_is_terminal: bool, no_color: Option<&str>) -> bool {
    stderr_is_terminal && no_color.is_none_or(str::is_empty)
}

/// Installs the global subscriber (logs go to stderr). A bad `RUST_LOG` falls back to the default, with a warning.
pub fn init(format: LogFormat) {
    let (filter, bad) = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => match EnvFilter::try_new(&v) {
            Ok(f) => (f, None),
            Err(e) => (EnvFilter::new(DEFAULT_FILTER), Some(format!("ignoring RUST_LOG={v:?}: {e}"))),
        },
        _ => (EnvFilter::new(DEFAULT_FILTER), None),
    };
    let no_color = std::env::var("NO_COLOR").ok();
    let ansi = use_colour(std::io::stderr().is_terminal(), no_color.as_deref());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_filter_drops_kube_clients_debug_dumps_and_keeps_the_rest() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new(DEFAULT_FILTER))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "kube_client::client", "eof in poll: Custom {{ kind: UnexpectedEof }}");
            tracing::error!(target: "kube_client::client::builder", "failed with status 502 Bad Gateway");
            tracing::warn!(target: "kube_client::client::tls", "failed to reload CA bundle; keeping stale roots");
            tracing::warn!(target: "kube_runtime::watcher", "watcher error 403");
            tracing::info!(target: "kube_runtime::watcher", "chatty");
            tracing::info!(target: "meshkeeper::runtime", "meshkeeper starting");
        });
        let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert!(!out.contains("eof in poll") && !out.contains("chatty"), "{out}");
        for kept in ["502 Bad Gateway", "CA bundle", "watcher error 403", "meshkeeper starting"] {
            assert!(out.contains(kept), "{kept} missing from:\n{out}");
        }
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some("")), "an empty NO_COLOR does not count");
        assert!(!use_colour(true, Some("1")));
        assert!(!use_colour(false, None), "kubectl logs, files and pipes get plain text");
    }
}
