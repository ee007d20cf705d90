//! Errors from the Kubernetes API as one readable line, and their low-cardinality labels.
//!
//! kube's own `Display` of an API error appends the `Status` in Rust `Debug` form
//! (`ApiError: ... (Status { status: Some(Failure), ... })`); nothing of that reaches logs,
//! findings, Events, `/status` or `meshkeeper check`. Everything goes through [`one_line`]:
//!
//! | error | shown as |
//! |---|---|
//! | a `Status` from the API server | `namespaces "meshkeeper" not found (404 NotFound)` |
//! | a transport error | `cannot reach the API server: connection refused` (the cause chain, deduplicated) |
//! | a watch's error | what it wraps, with the step: `list failed: ...` |

use std::error::Error as StdError;

use kube::core::Status;
use kube::runtime::watcher;

/// kube-client's reason for an error answer whose body is not a `Status` (it keeps the body as
/// the message): a proxy's or load balancer's page, plain text.
const NOT_A_STATUS: &str = "Failed to parse error data";

/// Longest excerpt of a body that is not a Status shown in a line.
const EXCERPT: usize = 120;

/// A Status as `message (code Reason)`, e.g. `namespaces "x" not found (404 NotFound)`; an
/// answer that was not a Status at all as an excerpt of it (an HTML page: its title), in one line.
pub fn status_line(s: &Status) -> String {
    if s.reason == NOT_A_STATUS {
        return not_a_status(s.code, &s.message);
    }
    let message = s.message.trim();
    let message = if message.is_empty() { "the API server refused the request" } else { message };
    match (s.code, s.reason.is_empty()) {
        (0, true) => message.to_string(),
        (0, false) => format!("{message} ({})", s.reason),
        (code, true) => format!("{message} ({code})"),
        (code, false) => format!("{message} ({code} {})", s.reason),
    }
}

/// An error answer whose body is not a Status, e.g. `502 Bad Gateway (HTTP 502, an HTML page
/// instead of a Kubernetes Status: a proxy or load balancer in front of the API server?)`.
fn not_a_status(code: u16, body: &str) -> String {
    let lower = body.to_ascii_lowercase();
    let html = lower.contains("<html") || lower.contains("<!doctype html");
    // Byte offsets of the lower-cased copy are the body's (ASCII lower-casing keeps lengths).
    let title = match (lower.find("<title>"), lower.find("</title>")) {
        (Some(a), Some(b)) if b > a + 7 => Some(&body[a + 7..b]),
        _ => None,
    };
    let mut excerpt = title.unwrap_or(body).split_whitespace().collect::<Vec<_>>().join(" ");
    if excerpt.chars().count() > EXCERPT {
        excerpt = excerpt.chars().take(EXCERPT).collect::<String>().trim_end().to_string() + "...";
    }
    let what = match (html, excerpt.is_empty()) {
        (_, true) => "an empty body",
        (true, false) => "an HTML page",
        (false, false) => "a body",
    };
    let excerpt = if excerpt.is_empty() { format!("HTTP {code}") } else { excerpt };
    format!(
        "{excerpt} (HTTP {code}, {what} instead of a Kubernetes Status: a proxy or load balancer in front of the API server?)"
    )
}

/// The chain of causes of `e`, joined by `: `, with a cause that only repeats its parent left out.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        // Wrappers that repeat their source ("HyperError: x" over "x") add nothing.
        let own = match err.source() {
            Some(src) => {
                let s = src.to_string();
                text.strip_suffix(&s).map(|p| p.trim_end_matches([':', ' '])).unwrap_or(&text).to_string()
            }
            None => text,
        };
        if !own.is_empty() && !parts.iter().any(|p| p.contains(&own)) {
            parts.push(own);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// One readable line for any kube client error.
pub fn one_line(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => status_line(s),
        kube::Error::HyperError(h) => format!("cannot reach the API server: {}", chain(h)),
        kube::Error::Service(s) => format!("cannot reach the API server: {}", chain(s.as_ref())),
        kube::Error::SerdeError(s) => format!("the API server's answer could not be decoded: {s}"),
        other => chain(other),
    }
}

/// One readable line for a watcher error (`list failed: ...`, `watch failed: ...`).
pub fn watcher_line(e: &watcher::Error) -> String {
    match e {
        watcher::Error::InitialListFailed(k) => format!("list failed: {}", one_line(k)),
        watcher::Error::WatchStartFailed(k) => format!("watch failed to start: {}", one_line(k)),
        watcher::Error::WatchError(s) => format!("watch ended with an error: {}", status_line(s)),
        // kube-client reads a line of the stream that is JSON but no watch event as a Status,
        // all of whose fields are optional: an empty one.
        watcher::Error::WatchFailed(kube::Error::Api(s))
            if s.code == 0 && s.message.is_empty() && s.reason.is_empty() =>
        {
            "watch failed: a line of the stream is neither a watch event nor a Status".into()
        }
        watcher::Error::WatchFailed(k) => format!("watch failed: {}", one_line(k)),
        watcher::Error::NoResourceVersion => "the API server sent no resourceVersion (does it support watch?)".into(),
    }
}

/// Whether a watch error says the server cannot serve streaming lists (`sendInitialEvents`):
/// a v1.27+ server on etcd 3.4 answers with an ERROR event naming RequestWatchProgress; a
/// server without the WatchList feature rejects the parameters. The caller falls back to
/// paged LISTs.
pub fn is_streaming_list_refused(e: &watcher::Error) -> bool {
    let (code, message) = match e {
        watcher::Error::WatchError(s) => (s.code, s.message.as_str()),
        watcher::Error::WatchStartFailed(kube::Error::Api(s)) => (s.code, s.message.as_str()),
        _ => return false,
    };
    message.contains("RequestWatchProgress")
        || (matches!(code, 400 | 422)
            && (message.contains("sendInitialEvents") || message.contains("resourceVersionMatch")))
}

/// The HTTP code of an API error, if the server answered.
pub fn code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// The code of a watcher error, if the server answered.
pub fn watcher_code(e: &watcher::Error) -> Option<u16> {
    match e {
        watcher::Error::InitialListFailed(k) | watcher::Error::WatchStartFailed(k) | watcher::Error::WatchFailed(k) => {
            code(k)
        }
        watcher::Error::WatchError(s) => Some(s.code),
        watcher::Error::NoResourceVersion => None,
    }
}

/// A low-cardinality label for an error (the `reason` of metrics).
pub fn reason_label(e: &kube::Error) -> &'static str {
    match e {
        kube::Error::Api(s) => code_label(s.code),
        kube::Error::HyperError(_) | kube::Error::Service(_) => "connection",
        kube::Error::SerdeError(_) => "decode",
        _ => "other",
    }
}

/// The label of an HTTP code.
pub fn code_label(code: u16) -> &'static str {
    match code {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        409 => "conflict",
        410 => "gone",
        422 => "invalid",
        429 => "throttled",
        500..=599 => "server_error",
        _ => "api_error",
    }
}

/// Whether a 422 is a JSON patch that no longer applies (a failed `test`, a path that is gone):
/// the real server answers those with this fixed message and no causes. It means "the object
/// changed meanwhile", not "the request is invalid".
pub fn is_stale_json_patch(s: &Status) -> bool {
    s.code == 422
        && s.message.contains("the server rejected our request due to an error in our request")
        && s.details.as_ref().is_none_or(|d| d.causes.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::response::{StatusCause, StatusDetails, StatusSummary};

    fn status(code: u16, reason: &str, message: &str) -> Box<Status> {
        Box::new(Status {
            status: Some(StatusSummary::Failure),
            code,
            message: message.into(),
            metadata: None,
            reason: reason.into(),
            details: None,
        })
    }

    #[test]
    fn a_refused_streaming_list_is_recognised_and_nothing_else_is() {
        // What a v1.36 server on etcd 3.4 sends (real-server.md).
        let etcd34 = status(
            500,
            "InternalError",
            "a watch stream was requested by the client but the required storage feature RequestWatchProgress is disabled",
        );
        assert!(is_streaming_list_refused(&watcher::Error::WatchError(etcd34.clone())));
        assert!(is_streaming_list_refused(&watcher::Error::WatchStartFailed(kube::Error::Api(etcd34))));
        let old = status(
            422,
            "Invalid",
            "sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
        );
        assert!(is_streaming_list_refused(&watcher::Error::WatchStartFailed(kube::Error::Api(old))));
        for other in [
            status(410, "Expired", "too old resource version: 5 (90)"),
            status(403, "Forbidden", "pods is forbidden"),
            status(500, "InternalError", "etcdserver: request timed out"),
        ] {
            assert!(!is_streaming_list_refused(&watcher::Error::WatchError(other)));
        }
        assert!(!is_streaming_list_refused(&watcher::Error::NoResourceVersion));
    }

    #[test]
    fn api_errors_are_one_line_without_debug_output() {
        let e = kube::Error::Api(status(404, "NotFound", "namespaces \"meshkeeper\" not found"));
        assert_eq!(one_line(&e), "namespaces \"meshkeeper\" not found (404 NotFound)");
        assert!(!one_line(&e).contains("Status {"));
        let w = watcher::Error::InitialListFailed(kube::Error::Api(status(
            403,
            "Forbidden",
            "pods is forbidden: User \"system:serviceaccount:meshkeeper:meshkeeper\" cannot list resource \"pods\" in API group \"\" at the cluster scope",
        )));
        let line = watcher_line(&w);
        assert!(line.starts_with("list failed: pods is forbidden"), "{line}");
        assert!(line.ends_with("(403 Forbidden)") && !line.contains('\n'), "{line}");
        assert_eq!(watcher_code(&w), Some(403));
        assert_eq!(status_line(&status(0, "", "")), "the API server refused the request");
        assert_eq!(reason_label(&e), "not_found");
    }

    #[test]
    fn answers_that_are_not_a_status_are_one_line_excerpts() {
        // What kube-client makes of a proxy's HTML 502 page (handle_api_errors).
        let page = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>";
        let html = Status::failure(page, NOT_A_STATUS).with_code(502);
        let line = watcher_line(&watcher::Error::WatchStartFailed(kube::Error::Api(Box::new(html))));
        assert_eq!(
            line,
            "watch failed to start: 502 Bad Gateway (HTTP 502, an HTML page instead of a Kubernetes Status: a proxy or load balancer in front of the API server?)"
        );
        let text =
            Status::failure("upstream connect error or disconnect/reset before headers\n", NOT_A_STATUS).with_code(503);
        assert_eq!(
            status_line(&text),
            "upstream connect error or disconnect/reset before headers (HTTP 503, a body instead of a Kubernetes Status: a proxy or load balancer in front of the API server?)"
        );
        let long = Status::failure(&"x ".repeat(500), NOT_A_STATUS).with_code(500);
        let line = status_line(&long);
        assert!(line.len() < 250 && line.contains("x x x...") && !line.contains('\n'), "{line}");
        assert!(
            status_line(&Status::failure("", NOT_A_STATUS).with_code(502))
                .starts_with("HTTP 502 (HTTP 502, an empty body")
        );
        // A JSON line that is no event reads as an empty Status.
        let empty = watcher::Error::WatchFailed(kube::Error::Api(status(0, "", "")));
        assert_eq!(watcher_line(&empty), "watch failed: a line of the stream is neither a watch event nor a Status");
    }

    #[test]
    fn transport_errors_name_the_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let e = kube::Error::Service(Box::new(io));
        assert_eq!(one_line(&e), "cannot reach the API server: connection refused");
    }

    #[test]
    fn a_failed_json_patch_test_is_a_stale_patch_but_a_validation_error_is_not() {
        let stale = status(422, "Invalid", "the server rejected our request due to an error in our request");
        assert!(is_stale_json_patch(&stale));
        let mut invalid = *status(
            422,
            "Invalid",
            "Service \"gw\" is invalid: spec.ports[0].nodePort: Invalid value: 31380: provided port is already allocated",
        );
        invalid.details = Some(StatusDetails {
            name: "gw".into(),
            group: String::new(),
            kind: "Service".into(),
            uid: String::new(),
            causes: vec![StatusCause {
                reason: "FieldValueInvalid".into(),
                message: "x".into(),
                field: "spec.ports[0].nodePort".into(),
            }],
            retry_after_seconds: 0,
        });
        assert!(!is_stale_json_patch(&invalid));
        assert!(!is_stale_json_patch(&status(409, "Conflict", "x")));
    }
}
