//! The HTTP face of the store: discovery, get/list/watch/create/update/patch/delete as the
//! Kubernetes API answers them, and fault injection.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use crate::resources::{self, ResourceType};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{ApiError, Key, PatchType, Store, WriteOpts};

/// A recorded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// The authenticated user (`system:admin` when RBAC is off).
    pub user: String,
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub code: u16,
    pub field_manager: Option<String>,
    pub user_agent: String,
    /// When the request arrived (before any injected latency) and when it was answered (for
    /// a watch: when its stream started).
    pub received: std::time::Instant,
    pub answered: std::time::Instant,
}

/// A fault: the next `remaining` requests matching verb/resource[/namespace][/name] fail with
/// `code` (a Status body with the real reason; `retry_after` adds a Retry-After header), or
/// answer `code` with a `body` of their own (`(content type, text)`: an HTML page from a proxy,
/// garbage with 200).
#[derive(Debug, Clone, Default)]
pub struct FaultRule {
    pub verb: Option<String>,
    pub resource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub remaining: u32,
    pub code: u16,
    pub retry_after: Option<u32>,
    pub body: Option<(String, String)>,
}

/// The page a proxy in front of the API server (nginx, a cloud load balancer) answers with
/// when the server behind it is gone: HTML, not a Status.
pub const BAD_GATEWAY_HTML: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

impl FaultRule {
    /// The next `n` requests with this verb (get, list, watch, create, update, patch, delete,
    /// deletecollection) on this resource plural fail with `code`; 429 gets Retry-After: 1.
    pub fn new(verb: &str, resource: &str, n: u32, code: u16) -> FaultRule {
        FaultRule {
            verb: Some(verb.into()),
            resource: Some(resource.into()),
            remaining: n,
            code,
            retry_after: (code == 429).then_some(1),
            ..Default::default()
        }
    }
    pub fn namespace(mut self, ns: &str) -> Self {
        self.namespace = Some(ns.into());
        self
    }
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.into());
        self
    }
    pub fn retry_after(mut self, secs: u32) -> Self {
        self.retry_after = Some(secs);
        self
    }
    /// Answers with this body and content type instead of a Status (for any `code`, 200 too).
    pub fn body(mut self, content_type: &str, text: &str) -> Self {
        self.body = Some((content_type.into(), text.into()));
        self
    }
}

/// A fault on the watch streams of one resource (plural), open now or opened later.
#[derive(Debug, Clone)]
pub struct WatchFault {
    pub resource: String,
    /// How many watches it hits (each one once).
    pub remaining: u32,
    pub kind: WatchFaultKind,
}

#[derive(Debug, Clone)]
pub enum WatchFaultKind {
    /// The next event line (not a bookmark) goes out cut in half, then the connection is
    /// closed without ending the chunked body, as a proxy or load balancer cutting it does.
    /// The event is not lost: a watch resuming from the last resourceVersion it saw gets it.
    Truncate,
    /// This line is sent at once (after the initial events of a new watch), then the stream
    /// carries on: an event whose object does not decode into its type, or no JSON at all.
    Inject(Bytes),
}

#[derive(Default)]
pub struct FaultState {
    pub rules: Vec<FaultRule>,
    pub latency: Option<(Option<String>, Duration)>,
    pub watch: Vec<WatchFault>,
}

impl FaultState {
    /// Takes one hit of the first watch fault on `resource` that `pick` accepts.
    fn take_watch(&mut self, resource: &str, pick: impl Fn(&WatchFaultKind) -> bool) -> Option<WatchFaultKind> {
        let f = self.watch.iter_mut().find(|f| f.remaining > 0 && f.resource == resource && pick(&f.kind))?;
        f.remaining -= 1;
        let kind = f.kind.clone();
        self.watch.retain(|f| f.remaining > 0);
        Some(kind)
    }
}

/// Everything the handlers share.
pub struct Shared {
    pub store: Mutex<Store>,
    pub faults: Mutex<FaultState>,
    pub requests: Mutex<VecDeque<RequestRecord>>,
    /// Bumped to drop every open watch.
    pub drop_watches: watch::Sender<u64>,
    /// Bumped when a watch fault is added, so open watches look at once.
    pub watch_faults: watch::Sender<u64>,
    pub bookmark_interval: Duration,
    /// Watches without `timeoutSeconds` end after this times a random factor in [1, 2).
    pub min_request_timeout: Duration,
    /// How long a list from a resourceVersion the server has not reached waits before 504.
    pub resource_version_wait: Duration,
    /// Streaming lists are served (etcd 3.5+); false: refused as on etcd 3.4.
    pub streaming_lists: bool,
    /// BOOKMARK events sent on watches so far (tests observe bookmarks by their count).
    pub bookmarks_sent: std::sync::atomic::AtomicU64,
    /// Some when RBAC is enforced (SimOptions::rbac).
    pub auth: Option<Mutex<crate::auth::AuthState>>,
    /// True while the server hangs (`Faults::hang`): requests wait unanswered, open watches
    /// deliver nothing, until it is released.
    pub hang: watch::Sender<bool>,
    /// Every request as it arrived, before anything else (a hanging or delayed request is
    /// here at once, though it is answered, and recorded in `requests`, only later or never).
    pub arrivals: Mutex<VecDeque<Arrival>>,
}

/// A request as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    pub at: std::time::Instant,
    pub method: String,
    /// The path and query.
    pub uri: String,
    pub user_agent: String,
}

/// Waits while the server hangs.
pub async fn unheld(shared: &Shared) {
    let mut rx = shared.hang.subscribe();
    // An error means the sender is gone: nothing to wait for.
    let _ = rx.wait_for(|held| !*held).await;
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

const MAX_RECORDS: usize = 100_000;

fn json_response(code: u16, v: &Value) -> Response {
    let mut r = Response::new(Body::from(serde_json::to_vec(v).unwrap_or_default()));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.status())
}

/// The parts of a resource path.
#[derive(Debug, Clone, Default)]
struct Target {
    group: String,
    version: String,
    namespace: Option<String>,
    plural: String,
    name: Option<String>,
    sub: Option<String>,
    watch_path: bool,
}

fn parse_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, mut rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest.to_vec()),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest.to_vec()),
        _ => return None,
    };
    let mut t = Target { group, version, ..Default::default() };
    if rest.first() == Some(&"watch") {
        t.watch_path = true;
        rest.remove(0);
    }
    if rest.len() >= 3 && rest[0] == "namespaces" && !(rest.len() == 3 && matches!(rest[2], "status" | "finalize")) {
        t.namespace = Some(rest[1].to_string());
        rest.drain(0..2);
    }
    match rest.as_slice() {
        [plural] => t.plural = plural.to_string(),
        [plural, name] => {
            t.plural = plural.to_string();
            t.name = Some(name.to_string());
        }
        [plural, name, sub] => {
            t.plural = plural.to_string();
            t.name = Some(name.to_string());
            t.sub = Some(sub.to_string());
        }
        _ => return None,
    }
    // `/api/v1/namespaces/{name}` is the namespace object itself.
    if t.plural.is_empty() {
        return None;
    }
    Some(t)
}

fn query_map(q: Option<&str>) -> std::collections::HashMap<String, String> {
    q.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}

fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn default_manager(headers: &HeaderMap) -> String {
    let ua = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("unknown");
    ua.split('/').next().unwrap_or(ua).to_string()
}

pub async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let received = std::time::Instant::now();
    {
        let arrival = Arrival {
            at: received,
            method: req.method().to_string(),
            uri: req.uri().to_string(),
            user_agent: req
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
        };
        let mut a = lock(&shared.arrivals);
        if a.len() == MAX_RECORDS {
            a.pop_front();
        }
        a.push_back(arrival);
    }
    unheld(&shared).await;
    let (parts, body) = req.into_parts();
    let mut path = parts.uri.path().to_string();
    // kubectl (client-go's kubeconfig loader) sends no credentials over plain HTTP, so with RBAC
    // on the kubeconfigs also carry the token in a server URL prefix: /kube-sim-auth/<token>/...
    let mut path_token = None;
    if let Some(rest) = path.strip_prefix(crate::auth::PATH_PREFIX) {
        let (tok, rest) = rest.split_once('/').unwrap_or((rest, ""));
        path_token = Some(tok.to_string());
        path = format!("/{rest}");
    }
    let q = query_map(parts.uri.query());
    let body = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(e) => return error_response(&ApiError::new(400, "BadRequest", format!("cannot read the body: {e}"))),
    };
    let method = parts.method.clone();
    // Authentication: a known bearer token (only enforced with RBAC on; otherwise everyone is the admin).
    let user = if shared.auth.is_some() {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .or(path_token.as_deref());
        match token.and_then(crate::auth::authenticate) {
            Some(u) => u,
            None => {
                let attrs = attributes(&method, &path, parse_path(&path).as_ref(), &q);
                record_refused(&shared, "", &attrs, 401, &parts.headers);
                return json_response(401, &crate::auth::unauthorized_status());
            }
        }
    } else {
        crate::auth::admin()
    };
    let target = parse_path(&path);
    // Authorization happens before anything else (faults, validation, discovery).
    if let Some(auth) = &shared.auth {
        let attrs = attributes(&method, &path, target.as_ref(), &q);
        let store = lock(&shared.store);
        let mut a = lock(auth);
        a.sync(&store);
        if !a.allowed(&user, &attrs) {
            drop((a, store));
            record_refused(&shared, &user.name, &attrs, 403, &parts.headers);
            return json_response(403, &crate::auth::forbidden_status(&user, &attrs));
        }
    }
    // Discovery and other non-resource paths.
    if let Some(r) = non_resource(&shared, &method, &path, &parts.headers) {
        return r;
    }
    let Some(t) = target else {
        return error_response(&ApiError::new(404, "NotFound", "the server could not find the requested resource"));
    };
    let verb = match (&method, &t.name, q.get("watch").map(String::as_str), t.watch_path) {
        (&Method::GET, _, Some("true" | "1"), _) | (&Method::GET, _, _, true) => "watch",
        (&Method::GET, Some(_), _, _) => "get",
        (&Method::GET, None, _, _) => "list",
        (&Method::POST, Some(_), _, _) if t.sub.is_none() => {
            return error_response(&ApiError::new(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            ));
        }
        (&Method::POST, _, _, _) => "create",
        (&Method::PUT, _, _, _) => "update",
        (&Method::PATCH, _, _, _) => "patch",
        (&Method::DELETE, Some(_), _, _) => "delete",
        (&Method::DELETE, None, _, _) => "deletecollection",
        _ => {
            return error_response(&ApiError::new(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource".to_string(),
            ));
        }
    };
    // kube-sim speaks JSON only: like a server that cannot decode a type's protobuf, answer 415
    // so client-go falls back to JSON.
    let ctype = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let mut body = body;
    if !body.is_empty() && ctype.starts_with("application/vnd.kubernetes.protobuf") {
        // kubectl's typed clients send protobuf: decode the few kinds they send, 415 for the rest.
        match crate::proto::decode(&body) {
            Ok(v) => body = Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
            Err(_) if method == Method::DELETE => body = Bytes::new(),
            Err(e) => {
                return error_response(&ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml ({e})"
                    ),
                ));
            }
        }
    }
    let manager = q.get("fieldManager").cloned().unwrap_or_else(|| default_manager(&parts.headers));
    let user_agent =
        parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let response = dispatch(&shared, &t, verb, &q, &parts.headers, &body, &manager, &user).await;
    let answered = std::time::Instant::now();
    let code = response.status().as_u16();
    let mut rec = lock(&shared.requests);
    if rec.len() == MAX_RECORDS {
        rec.pop_front();
    }
    rec.push_back(RequestRecord {
        user: user.name.clone(),
        verb: verb.into(),
        group: t.group.clone(),
        resource: t.plural.clone(),
        subresource: t.sub.clone(),
        namespace: t.namespace.clone(),
        name: t.name.clone(),
        code,
        field_manager: (matches!(verb, "create" | "update" | "patch")).then(|| manager.clone()),
        user_agent,
        received,
        answered,
    });
    response
}

/// Records a request refused by authentication or authorization.
fn record_refused(shared: &Shared, user: &str, a: &crate::rbac::Attributes, code: u16, headers: &HeaderMap) {
    let mut rec = lock(&shared.requests);
    if rec.len() == MAX_RECORDS {
        rec.pop_front();
    }
    rec.push_back(RequestRecord {
        user: user.to_string(),
        verb: a.verb.clone(),
        group: a.api_group.clone(),
        resource: a.path.clone().unwrap_or_else(|| a.resource.clone()),
        subresource: a.subresource.clone(),
        namespace: a.namespace.clone(),
        name: a.name.clone(),
        code,
        field_manager: None,
        user_agent: headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string(),
        received: std::time::Instant::now(),
        answered: std::time::Instant::now(),
    });
}

/// The authorizer's attributes of a request.
fn attributes(
    method: &Method,
    path: &str,
    t: Option<&Target>,
    q: &std::collections::HashMap<String, String>,
) -> crate::rbac::Attributes {
    let Some(t) = t else {
        return crate::rbac::Attributes {
            verb: method.as_str().to_ascii_lowercase(),
            path: Some(path.to_string()),
            ..Default::default()
        };
    };
    let watching = q.get("watch").is_some_and(|w| w == "true" || w == "1") || t.watch_path;
    let verb = match (method, &t.name) {
        (&Method::GET, _) if watching => "watch",
        (&Method::GET, Some(_)) => "get",
        (&Method::GET, None) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, Some(_)) => "delete",
        (&Method::DELETE, None) => "deletecollection",
        (m, _) => return crate::rbac::Attributes { verb: m.as_str().to_ascii_lowercase(), ..Default::default() },
    };
    // Like the real server's RequestInfo, a list or watch whose fieldSelector is exactly
    // `metadata.name=X` carries the name X, so RBAC resourceNames can allow it.
    let name = match (verb, &t.name) {
        ("list" | "watch", None) => q
            .get("fieldSelector")
            .and_then(|f| f.strip_prefix("metadata.name="))
            .filter(|n| !n.is_empty() && !n.contains(','))
            .map(str::to_string),
        _ => t.name.clone(),
    };
    // Like the real server's RequestInfo, `/api/v1/namespaces/x[/status]` carries namespace "x".
    crate::rbac::Attributes {
        verb: verb.into(),
        api_group: t.group.clone(),
        resource: t.plural.clone(),
        subresource: t.sub.clone(),
        namespace: if t.plural == "namespaces" && t.group.is_empty() { t.name.clone() } else { t.namespace.clone() },
        name,
        path: None,
    }
}

fn non_resource(shared: &Shared, method: &Method, path: &str, headers: &HeaderMap) -> Option<Response> {
    let path = path.trim_end_matches('/');
    if method != Method::GET {
        return None;
    }
    let store = lock(&shared.store);
    let types = &store.types;
    // Aggregated discovery, when the client asks for it (kubectl does).
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let aggregated = accept.split(',').any(|a| {
        let a = a.replace(' ', "");
        a.contains("g=apidiscovery.k8s.io") && a.contains("v=v2;") && a.contains("as=APIGroupDiscoveryList")
            || a.ends_with("g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
    });
    if aggregated && (path == "/api" || path == "/apis") {
        let doc = resources::aggregated(types, path == "/api");
        let mut r = json_response(200, &doc);
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"),
        );
        return Some(r);
    }
    let v = match path {
        "/version" => resources::version_doc(),
        "/api" => resources::core_versions(),
        "/apis" => resources::group_list(types),
        "/healthz" | "/livez" | "/readyz" => {
            return Some((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], "ok").into_response());
        }
        "/openapi/v3" => resources::openapi_index(types),
        "/openapi/v2" => {
            return Some(error_response(&ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )));
        }
        _ => {
            let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            match segs.as_slice() {
                ["openapi", "v3", "api", v] => resources::openapi_doc(types, "", v)?,
                ["openapi", "v3", "apis", g, v] => resources::openapi_doc(types, g, v)?,
                ["api", v] => resources::resource_list(types, "", v)?,
                ["apis", g] => {
                    let versions: Vec<String> = types.iter().filter(|r| r.group == *g).map(|r| r.version.clone()).fold(
                        Vec::new(),
                        |mut a, v| {
                            if !a.contains(&v) {
                                a.push(v);
                            }
                            a
                        },
                    );
                    if versions.is_empty() {
                        return Some(error_response(&ApiError::new(
                            404,
                            "NotFound",
                            "the server could not find the requested resource",
                        )));
                    }
                    resources::group_doc(g, &versions)
                }
                ["apis", g, v] => match resources::resource_list(types, g, v) {
                    Some(l) => l,
                    None => {
                        return Some(error_response(&ApiError::new(
                            404,
                            "NotFound",
                            "the server could not find the requested resource",
                        )));
                    }
                },
                _ => return None,
            }
        }
    };
    Some(json_response(200, &v))
}

fn check_faults(shared: &Shared, verb: &str, t: &Target) -> Option<Response> {
    let mut f = lock(&shared.faults);
    let rule = f.rules.iter_mut().find(|r| {
        r.remaining > 0
            && r.verb.as_deref().is_none_or(|v| v == verb)
            && r.resource.as_deref().is_none_or(|res| res == t.plural)
            && r.name.as_deref().is_none_or(|n| Some(n) == t.name.as_deref())
            && r.namespace.as_deref().is_none_or(|n| Some(n) == t.namespace.as_deref())
    })?;
    rule.remaining -= 1;
    let (code, retry, body) = (rule.code, rule.retry_after, rule.body.clone());
    f.rules.retain(|r| r.remaining > 0);
    if let Some((ctype, text)) = body {
        let mut r = Response::new(Body::from(text));
        *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
        if let Ok(v) = HeaderValue::from_str(&ctype) {
            r.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        return Some(r);
    }
    let reason = match code {
        403 => "Forbidden",
        409 => "Conflict",
        410 => "Expired",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    };
    let mut e = ApiError::new(code, reason, format!("injected fault: {reason}"));
    if code == 409 {
        e.message = format!(
            "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
            t.plural,
            t.name.clone().unwrap_or_default()
        );
    }
    if let Some(s) = retry {
        // As the real server's NewTooManyRequests/NewServerTimeout: the body says it too.
        e.details = json!({"retryAfterSeconds": s});
    }
    let mut r = error_response(&e);
    if let Some(s) = retry {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    Some(r)
}

#[allow(clippy::too_many_arguments)]
async fn dispatch(
    shared: &Arc<Shared>,
    t: &Target,
    verb: &str,
    q: &std::collections::HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
    manager: &str,
    user: &crate::rbac::User,
) -> Response {
    let latency = lock(&shared.faults).latency.clone();
    if let Some((res, d)) = latency
        && res.as_deref().is_none_or(|r| r == t.plural)
    {
        tokio::time::sleep(d).await;
    }
    if let Some(r) = check_faults(shared, verb, t) {
        return r;
    }
    let ti = {
        let store = lock(&shared.store);
        store.type_index(&t.group, &t.version, &t.plural)
    };
    let Some(ti) = ti else {
        return error_response(&ApiError::new(404, "NotFound", "the server could not find the requested resource"));
    };
    let rt: ResourceType = lock(&shared.store).types[ti].clone();
    if rt.create_only {
        return access_review(shared, &rt, t, verb, body, user, manager);
    }
    let ns = t.namespace.clone().unwrap_or_default();
    if rt.namespaced && t.namespace.is_none() && !matches!(verb, "list" | "watch") {
        return error_response(&ApiError::new(404, "NotFound", "the server could not find the requested resource"));
    }
    if let Some(sub) = &t.sub
        && !rt.subresources.contains(sub)
    {
        return error_response(&ApiError::new(404, "NotFound", "the server could not find the requested resource"));
    }
    let method_not_allowed = || {
        error_response(&ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        ))
    };
    if t.sub.is_none() && !resources::verbs(&rt).iter().any(|v| v == verb) {
        return method_not_allowed();
    }
    if let Some(r) = subresource_without_storage(shared, &rt, ti, t, verb, body, manager) {
        return r;
    }
    if rt.group.is_empty() && rt.plural == "componentstatuses" {
        return component_statuses(t.name.as_deref());
    }
    if rt.group.is_empty() && rt.plural == "bindings" {
        return bind(shared, &ns, body, manager);
    }
    if matches!(verb, "create" | "update")
        && let Err(e) = validate_write_options(verb, None, q)
    {
        return error_response(&e);
    }
    let field_validation =
        crate::schema::FieldValidation::parse(q.get("fieldValidation").map(String::as_str)).unwrap_or_default();
    let opts = WriteOpts {
        dry_run: q.get("dryRun").is_some_and(|v| v == "All"),
        field_manager: q.get("fieldManager").cloned(),
        force: q.get("force").is_some_and(|v| v == "true"),
        field_validation,
        ..Default::default()
    };
    let parse_body = |b: &Bytes| -> Result<Value, ApiError> {
        serde_json::from_slice(b)
            .map_err(|e| ApiError::new(400, "BadRequest", format!("the body of the request could not be decoded: {e}")))
    };
    let name = t.name.clone().unwrap_or_default();
    if t.sub.as_deref() == Some("scale") {
        return scale(shared, ti, &rt, &ns, &name, verb, headers, body, &opts, manager);
    }
    // kubectl get asks for a meta.k8s.io Table: the real server's columns (src/table.rs).
    if matches!(verb, "get" | "list") && t.sub.is_none() && crate::table::wanted(headers) {
        let plain = match verb {
            "list" => list(shared, ti, &rt, t.namespace.as_deref(), q).await,
            _ => {
                let store = lock(&shared.store);
                match store.get(ti, if rt.namespaced { &ns } else { "" }, &name) {
                    // As the plain get answers it (events.k8s.io Events converted).
                    Some(s) => Response::new(Body::from(store.view_json(ti, s))),
                    None => error_response(&ApiError::not_found(&rt, &name)),
                }
            }
        };
        return crate::table::render(plain, &rt, q).await;
    }
    let mut warnings: Vec<String> = Vec::new();
    let result = match verb {
        "get" => {
            let store = lock(&shared.store);
            return match store.get(ti, if rt.namespaced { &ns } else { "" }, &name) {
                Some(s) => {
                    let mut r = Response::new(Body::from(store.view_json(ti, s)));
                    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    r
                }
                None => error_response(&ApiError::not_found(&rt, &name)),
            };
        }
        "list" => return list(shared, ti, &rt, t.namespace.as_deref(), q).await,
        "watch" => return watch(shared.clone(), ti, &rt, t.namespace.clone(), t.name.clone(), q),
        "create" => {
            if t.sub.as_deref() == Some("eviction") {
                return evict(shared, ti, &ns, &name, q, body);
            }
            let mut store = lock(&shared.store);
            store.warnings.clear();
            let r = parse_body(body).and_then(|b| store.create(ti, &ns, b, &opts, manager));
            warnings = std::mem::take(&mut store.warnings);
            r
        }
        "update" => {
            let mut store = lock(&shared.store);
            store.warnings.clear();
            let existed = store.get(ti, if rt.namespaced { &ns } else { "" }, &name).is_some();
            let r = parse_body(body).and_then(|b| store.update(ti, &ns, &name, b, t.sub.as_deref(), &opts, manager));
            warnings = std::mem::take(&mut store.warnings);
            // A PUT that creates (Leases, Events, Endpoints, Services) answers 201 Created.
            if !existed && let Ok(v) = &r {
                return with_warnings(json_response(201, v), &warnings);
            }
            r
        }
        "patch" => {
            let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
            let pt = match ctype.split(';').next().unwrap_or_default().trim() {
                "application/merge-patch+json" => PatchType::Merge,
                "application/json-patch+json" => PatchType::Json,
                "application/strategic-merge-patch+json" if !crate::patch::supports_strategic_merge(&rt.kind) => {
                    return error_response(&ApiError::unsupported_media_type());
                }
                "application/strategic-merge-patch+json" => PatchType::Strategic,
                "application/apply-patch+yaml" => PatchType::Apply,
                _ => return error_response(&ApiError::unsupported_media_type()),
            };
            let parsed = if pt == PatchType::Apply {
                serde_yaml::from_slice::<Value>(body)
                    .map_err(|e| ApiError::new(400, "BadRequest", format!("error decoding YAML: {e}")))
            } else {
                parse_patch(body, pt)
            };
            if let Err(e) = validate_write_options(verb, Some(pt), q) {
                return error_response(&e);
            }
            let mut store = lock(&shared.store);
            store.warnings.clear();
            let existed = store.get(ti, if rt.namespaced { &ns } else { "" }, &name).is_some();
            let r = parsed.and_then(|b| store.patch(ti, &ns, &name, pt, &b, t.sub.as_deref(), &opts, manager));
            warnings = std::mem::take(&mut store.warnings);
            // Server-side apply that creates answers 201 Created.
            if !existed && let Ok(v) = &r {
                return with_warnings(json_response(201, v), &warnings);
            }
            r
        }
        "delete" => {
            // DeleteOptions in the body: preconditions and dryRun.
            let mut opts = opts.clone();
            if let Ok(o) = serde_json::from_slice::<Value>(body) {
                let s = |v: &Value| v.as_str().map(str::to_string);
                opts.preconditions = crate::store::Preconditions {
                    uid: s(&o["preconditions"]["uid"]),
                    resource_version: s(&o["preconditions"]["resourceVersion"]),
                };
                if o["dryRun"].as_array().is_some_and(|d| d.iter().any(|x| x == "All")) {
                    opts.dry_run = true;
                }
            }
            lock(&shared.store).delete(ti, &ns, &name, &opts)
        }
        "deletecollection" => {
            let (labels, fields) = match selectors(q) {
                Ok(s) => s,
                Err(e) => return error_response(&e),
            };
            let mut store = lock(&shared.store);
            let keys: Vec<(String, String)> = store
                .iter(ti, t.namespace.as_deref(), None)
                .filter(|(k, s)| labels.matches_with(|l| s.index.label(l)) && fields.matches_with(|f| s.field(k, f)))
                .map(|(k, _)| k.clone())
                .collect();
            for (kns, kname) in keys {
                let _ = store.delete(ti, &kns, &kname, &opts);
            }
            Ok(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}))
        }
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )),
    };
    match result {
        Ok(v) => with_warnings(json_response(if verb == "create" { 201 } else { 200 }, &v), &warnings),
        Err(e) => error_response(&e),
    }
}

/// CreateOptions/UpdateOptions/PatchOptions validation (`ValidatePatchOptions` and friends):
/// `force` only for apply, `fieldManager` required for apply and at most 128 printable
/// characters, `dryRun` only `All`, `fieldValidation` one of the four values.
fn validate_write_options(
    verb: &str,
    patch: Option<PatchType>,
    q: &std::collections::HashMap<String, String>,
) -> Result<(), ApiError> {
    let kind = match verb {
        "create" => "CreateOptions",
        "update" => "UpdateOptions",
        _ => "PatchOptions",
    };
    let mut causes: Vec<(String, String)> = Vec::new();
    let manager = q.get("fieldManager").map(String::as_str).unwrap_or_default();
    if let Some(pt) = patch {
        if pt != PatchType::Apply && q.contains_key("force") {
            causes.push(("force".into(), "Forbidden: may not be specified for non-apply patch".into()));
        }
        if pt == PatchType::Apply && manager.is_empty() {
            causes.push(("fieldManager".into(), "Required value: is required for apply patch".into()));
        }
    }
    if manager.chars().count() > 128 {
        causes.push(("fieldManager".into(), "Too long: may not be more than 128 bytes".into()));
    }
    if let Some(d) = q.get("dryRun").filter(|d| d.as_str() != "All") {
        causes.push(("dryRun".into(), format!("Unsupported value: \"{d}\": supported values: \"All\"")));
    }
    if let Some(f) = q.get("fieldValidation").filter(|f| !matches!(f.as_str(), "" | "Ignore" | "Strict" | "Warn")) {
        causes.push((
            "fieldValidation".into(),
            format!("Unsupported value: \"{f}\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""),
        ));
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid_as(&format!("{kind}.meta.k8s.io"), "", "meta.k8s.io", kind, causes))
    }
}

/// Adds `Warning` headers (one per warning, as the real server sends them).
fn with_warnings(mut r: Response, warnings: &[String]) -> Response {
    for w in warnings {
        if let Ok(v) = HeaderValue::from_str(w) {
            r.headers_mut().append(header::WARNING, v);
        }
    }
    r
}

/// The pod and service subresources that are not the object itself: logs (empty: no
/// containers run), exec/attach/portforward (they need a stream upgrade), service proxies (no
/// endpoints), pod binding (sets spec.nodeName), ServiceAccount tokens. None: the generic path.
fn subresource_without_storage(
    shared: &Shared,
    rt: &ResourceType,
    ti: usize,
    t: &Target,
    verb: &str,
    body: &Bytes,
    manager: &str,
) -> Option<Response> {
    let sub = t.sub.as_deref()?;
    let name = t.name.clone().unwrap_or_default();
    let ns = t.namespace.clone().unwrap_or_default();
    let exists = || lock(&shared.store).get(ti, &ns, &name).is_some();
    let r = match (rt.kind.as_str(), sub) {
        ("Pod", "log") => {
            if !exists() {
                return Some(error_response(&ApiError::not_found(rt, &name)));
            }
            (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], "").into_response()
        }
        ("Pod", "exec" | "attach" | "portforward") => {
            error_response(&ApiError::new(400, "BadRequest", "Upgrade request required"))
        }
        ("Service", "proxy") => {
            if !exists() {
                return Some(error_response(&ApiError::not_found(rt, &name)));
            }
            error_response(&ApiError::new(
                503,
                "ServiceUnavailable",
                format!("no endpoints available for service \"{name}\""),
            ))
        }
        ("Pod", "binding") if verb == "create" => {
            let mut b: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            b["metadata"]["name"] = json!(name);
            return Some(bind(shared, &ns, &Bytes::from(b.to_string()), manager));
        }
        ("ServiceAccount", "token") if verb == "create" => {
            if !exists() {
                return Some(error_response(&ApiError::not_found(rt, &name)));
            }
            let mut req: Value = serde_json::from_slice(body).unwrap_or_else(|_| json!({}));
            let secs = req["spec"]["expirationSeconds"].as_u64().unwrap_or(3600);
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            req["apiVersion"] = json!("authentication.k8s.io/v1");
            req["kind"] = json!("TokenRequest");
            req["metadata"]["name"] = json!(name);
            req["metadata"]["namespace"] = json!(ns);
            req["spec"]["expirationSeconds"] = json!(secs);
            if req["spec"]["audiences"].as_array().is_none_or(Vec::is_empty) {
                req["spec"]["audiences"] = json!(["https://kubernetes.default.svc.cluster.local"]);
            }
            req["status"] = json!({"token": crate::auth::service_account_token(&ns, &name),
                "expirationTimestamp": crate::store::rfc3339(now + secs)});
            json_response(201, &req)
        }
        _ => return None,
    };
    Some(r)
}

/// componentstatuses (deprecated, computed): the control plane is healthy.
fn component_statuses(name: Option<&str>) -> Response {
    let item = |n: &str| {
        json!({"kind": "ComponentStatus", "apiVersion": "v1", "metadata": {"name": n},
            "conditions": [{"type": "Healthy", "status": "True", "message": "ok"}]})
    };
    let names = ["controller-manager", "etcd-0", "scheduler"];
    match name {
        Some(n) if names.contains(&n) => json_response(200, &item(n)),
        Some(n) => error_response(
            &ApiError::new(404, "NotFound", format!("componentstatuses \"{n}\" not found")).with_details(
                n,
                "",
                "componentstatuses",
            ),
        ),
        None => json_response(
            200,
            &json!({"kind": "ComponentStatusList", "apiVersion": "v1", "metadata": {}, "items": names.map(item)}),
        ),
    }
}

/// A Binding (`POST .../bindings` or `pods/{name}/binding`): the scheduler's write of the
/// pod's node.
fn bind(shared: &Shared, ns: &str, body: &Bytes, manager: &str) -> Response {
    let b: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let pod = b["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let node = b["target"]["name"].as_str().unwrap_or_default().to_string();
    let mut store = lock(&shared.store);
    let Some(pti) = store.type_index("", "v1", "pods") else {
        return error_response(&ApiError::new(500, "InternalError", "no pods"));
    };
    let rt = store.types[pti].clone();
    let Some(current) = store.get(pti, ns, &pod).map(|s| s.parse()) else {
        return error_response(&ApiError::not_found(&rt, &pod));
    };
    if let Some(at) = current["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        return error_response(
            &ApiError::new(
                409,
                "Conflict",
                format!("Operation cannot be fulfilled on pods/binding \"{pod}\": pod {pod} is already assigned to node \"{at}\""),
            )
            .with_details(&pod, "", "pods/binding"),
        );
    }
    match store.patch(
        pti,
        ns,
        &pod,
        PatchType::Merge,
        &json!({"spec": {"nodeName": node}}),
        None,
        &WriteOpts::default(),
        manager,
    ) {
        Ok(_) => json_response(
            201,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        ),
        Err(e) => error_response(&e),
    }
}

/// A merge, strategic or JSON patch body as the server decodes it: Go's syntax error, or for
/// merge/strategic patches anything but an object, is a 400 `error decoding patch: ...`.
fn parse_patch(body: &[u8], pt: PatchType) -> Result<Value, ApiError> {
    let bad = |m: String| ApiError::new(400, "BadRequest", format!("error decoding patch: {m}"));
    if let Some(e) = crate::gojson::syntax_error(body) {
        return Err(bad(e));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    if matches!(pt, PatchType::Merge | PatchType::Strategic) && !v.is_object() && !v.is_null() {
        return Err(bad(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            crate::gojson::kind(&v)
        )));
    }
    Ok(v)
}

/// The create-only reviews, answered from the authorizer and authenticator (without RBAC
/// everyone is the admin and every access is allowed, as with AlwaysAllow):
/// Self/Local/SubjectAccessReview, SelfSubjectRulesReview, SelfSubjectReview, TokenReview.
#[allow(clippy::too_many_arguments)]
fn access_review(
    shared: &Shared,
    rt: &ResourceType,
    t: &Target,
    verb: &str,
    body: &Bytes,
    user: &crate::rbac::User,
    manager: &str,
) -> Response {
    if verb != "create" {
        return error_response(&ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        ));
    }
    let mut v: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return error_response(&ApiError::new(
                400,
                "BadRequest",
                "the body of the request could not be decoded: expected an object",
            ));
        }
        Err(e) => {
            return error_response(&ApiError::new(
                400,
                "BadRequest",
                format!("the body of the request could not be decoded: {e}"),
            ));
        }
    };
    v["apiVersion"] = json!(rt.api_version());
    v["kind"] = json!(rt.kind);
    if !v["metadata"].is_object() {
        v["metadata"] = json!({});
    }
    let s = |x: &Value| x.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    let spec = v["spec"].clone();
    let store = lock(&shared.store);
    let mut auth = shared.auth.as_ref().map(lock);
    if let Some(a) = auth.as_mut() {
        a.sync(&store);
    }
    let now = store.now();
    // The field manager runs on these creates too: their answers carry managedFields.
    let managed = |mut v: Value| {
        crate::patch::record_update(None, &mut v, manager, None, &now);
        v
    };
    match rt.kind.as_str() {
        "SelfSubjectAccessReview" | "SubjectAccessReview" | "LocalSubjectAccessReview" => {
            let ra = &spec["resourceAttributes"];
            let nra = &spec["nonResourceAttributes"];
            let mut causes: Vec<(String, String)> = Vec::new();
            match (ra.is_object(), nra.is_object()) {
                (false, false) => causes.push((
                    "spec.resourceAttributes".into(),
                    "Invalid value: null: exactly one of nonResourceAttributes or resourceAttributes must be specified"
                        .into(),
                )),
                (true, true) => causes.push((
                    "spec.nonResourceAttributes".into(),
                    format!("Invalid value: {nra}: cannot be specified in combination with resourceAttributes"),
                )),
                _ => {}
            }
            if rt.kind != "SelfSubjectAccessReview"
                && s(&spec["user"]).is_none()
                && spec["groups"].as_array().is_none_or(Vec::is_empty)
            {
                causes.push((
                    "spec.user".into(),
                    "Invalid value: \"\": at least one of user or group must be specified".into(),
                ));
            }
            if rt.kind == "LocalSubjectAccessReview" && ra.is_object() && s(&ra["namespace"]) != t.namespace {
                causes.push((
                    "spec.resourceAttributes.namespace".into(),
                    format!("Invalid value: {}: must match metadata.namespace", ra["namespace"]),
                ));
            }
            if !causes.is_empty() {
                // The decoded object's kind is empty: the message names only the group.
                return error_response(&ApiError::invalid_as(&format!(".{}", rt.group), "", &rt.group, "", causes));
            }
            let subject = if rt.kind == "SelfSubjectAccessReview" {
                user.clone()
            } else {
                crate::rbac::User {
                    name: s(&spec["user"]).unwrap_or_default(),
                    groups: spec["groups"]
                        .as_array()
                        .map(|g| g.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                        .unwrap_or_default(),
                }
            };
            let attrs = if nra.is_object() {
                crate::rbac::Attributes {
                    verb: s(&nra["verb"]).unwrap_or_default(),
                    path: Some(s(&nra["path"]).unwrap_or_default()),
                    ..Default::default()
                }
            } else {
                crate::rbac::Attributes {
                    verb: s(&ra["verb"]).unwrap_or_default(),
                    api_group: s(&ra["group"]).unwrap_or_default(),
                    resource: s(&ra["resource"]).unwrap_or_default(),
                    subresource: s(&ra["subresource"]),
                    namespace: s(&ra["namespace"]),
                    name: s(&ra["name"]),
                    path: None,
                }
            };
            let allowed =
                crate::auth::is_superuser(&subject) || auth.as_ref().is_none_or(|a| a.allowed(&subject, &attrs));
            v["status"] = json!({"allowed": allowed});
            json_response(201, &managed(v))
        }
        "SelfSubjectRulesReview" => {
            // The REST handler answers a new object: metadata and spec come back empty.
            let ns = s(&spec["namespace"]).unwrap_or_default();
            let rules = match auth.as_ref() {
                Some(a) => a.authorizer.rules_for(user, &ns),
                None => crate::rbac::Authorizer::with_bootstrap_policy().rules_for(user, &ns),
            };
            let (mut res, mut non) = (vec![], vec![]);
            for r in rules {
                if r.non_resource_urls.is_empty() {
                    let mut o = json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources});
                    if !r.resource_names.is_empty() {
                        o["resourceNames"] = json!(r.resource_names);
                    }
                    res.push(o);
                } else {
                    non.push(json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}));
                }
            }
            json_response(
                201,
                &json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {}, "spec": {},
                    "status": {"resourceRules": res, "nonResourceRules": non, "incomplete": false}}),
            )
        }
        "SelfSubjectReview" => json_response(
            201,
            &json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {"creationTimestamp": now},
                "status": {"userInfo": {"username": user.name, "groups": user.groups}}}),
        ),
        _ => {
            // TokenReview
            let token = s(&spec["token"]).unwrap_or_default();
            let audiences = spec["audiences"].clone();
            v["status"] = match crate::auth::authenticate(&token) {
                Some(u) => {
                    let mut st = json!({"authenticated": true, "user": {"username": u.name, "groups": u.groups}});
                    if audiences.is_array() {
                        st["audiences"] = audiences;
                    }
                    st
                }
                None => json!({"user": {}, "error": "[invalid bearer token, token lookup failed]"}),
            };
            json_response(201, &managed(v))
        }
    }
}

/// The autoscaling/v1 Scale view of a workload.
fn scale_of(obj: &Value) -> Value {
    let selector = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(","))
        .unwrap_or_default();
    let meta = &obj["metadata"];
    json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"]},
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector}})
}

/// GET/PUT/PATCH of the scale subresource: reads and writes only spec.replicas.
#[allow(clippy::too_many_arguments)]
fn scale(
    shared: &Shared,
    ti: usize,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    verb: &str,
    headers: &HeaderMap,
    body: &Bytes,
    opts: &WriteOpts,
    manager: &str,
) -> Response {
    let mut store = lock(&shared.store);
    let Some(cur) = store.get(ti, ns, name).map(|s| s.parse()) else {
        return error_response(&ApiError::not_found(rt, name));
    };
    let current = scale_of(&cur);
    let desired: Result<Value, ApiError> = match verb {
        "get" => return json_response(200, &current),
        "update" => serde_json::from_slice::<Value>(body).map_err(|e| {
            ApiError::new(400, "BadRequest", format!("the body of the request could not be decoded: {e}"))
        }),
        "patch" => {
            let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
            let pt = match ctype.split(';').next().unwrap_or_default().trim() {
                "application/merge-patch+json" => PatchType::Merge,
                "application/json-patch+json" => PatchType::Json,
                "application/strategic-merge-patch+json" => PatchType::Strategic,
                _ => return error_response(&ApiError::unsupported_media_type()),
            };
            let patch = match parse_patch(body, pt) {
                Ok(p) => p,
                Err(e) => return error_response(&e),
            };
            let mut v = current.clone();
            let r = match pt {
                PatchType::Merge => {
                    crate::patch::merge_patch(&mut v, &patch);
                    Ok(())
                }
                PatchType::Json => crate::patch::json_patch(&mut v, &patch),
                _ => crate::patch::strategic_merge_patch(&mut v, &patch, "Scale"),
            };
            r.map(|_| v).map_err(|e| match e {
                crate::patch::PatchError::Invalid(_) => ApiError::patch_failed(),
                crate::patch::PatchError::BadRequest(m) if pt == PatchType::Json => {
                    ApiError::new(400, "BadRequest", format!("error decoding patch: {m}"))
                }
                crate::patch::PatchError::BadRequest(m) => ApiError::new(400, "BadRequest", m),
                other => ApiError::new(400, "BadRequest", format!("{other:?}")),
            })
        }
        _ => {
            return error_response(&ApiError::new(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            ));
        }
    };
    let desired = match desired {
        Ok(d) => d,
        Err(e) => return error_response(&e),
    };
    let Some(replicas) = desired["spec"]["replicas"].as_i64().filter(|r| *r >= 0) else {
        let mut e = ApiError::new(
            422,
            "Invalid",
            format!(
                "Scale.autoscaling \"{name}\" is invalid: spec.replicas: Invalid value: {}: must be greater than or equal to 0",
                desired["spec"]["replicas"]
            ),
        );
        e = e.with_details(name, "autoscaling", "Scale");
        return error_response(&e);
    };
    let mut p = json!({"spec": {"replicas": replicas}});
    if let Some(rv) = desired["metadata"]["resourceVersion"].as_str().filter(|r| !r.is_empty()) {
        p["metadata"] = json!({"resourceVersion": rv});
    }
    match store.patch(ti, ns, name, PatchType::Merge, &p, None, opts, manager) {
        Ok(v) => json_response(200, &scale_of(&v)),
        Err(e) => error_response(&e),
    }
}

/// pods/eviction, as the real eviction handler (upstream `pkg/registry/core/pod/storage/eviction.go`):
/// the decision is read from the budget's status, which the disruption controller keeps, in
/// `actors::disruption::check_eviction` (src/actors/disruption.rs, next to the controller that
/// writes that status). A dry run (`?dryRun=All` or the Eviction's `deleteOptions.dryRun`)
/// decides the same and changes nothing.
fn evict(
    shared: &Shared,
    ti: usize,
    ns: &str,
    name: &str,
    q: &std::collections::HashMap<String, String>,
    body: &Bytes,
) -> Response {
    let eviction: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let dry_run = q.get("dryRun").is_some_and(|d| d == "All")
        || eviction["deleteOptions"]["dryRun"].as_array().is_some_and(|d| d.iter().any(|x| x == "All"));
    let mut store = lock(&shared.store);
    let rt = store.types[ti].clone();
    let Some(pod) = store.get(ti, ns, name).map(|s| s.parse()) else {
        return error_response(&ApiError::not_found(&rt, name));
    };
    if let Err(e) = crate::actors::disruption::check_eviction(&mut store, ns, &pod, dry_run) {
        let mut r = error_response(&e);
        if let Some(s) = e.details["retryAfterSeconds"].as_u64() {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        return r;
    }
    let opts = WriteOpts { dry_run, ..Default::default() };
    match store.delete(ti, ns, name, &opts) {
        Ok(_) => json_response(
            201,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        ),
        Err(e) => error_response(&e),
    }
}

/// Where a list is served from: the current state, or the state at an older resourceVersion
/// (Exact, a limited list from a resourceVersion, a continue token of an older list).
struct ListPlan {
    at: Option<u64>,
    after: Option<Key>,
    limit: usize,
}

const CONTINUE_TOO_OLD: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

async fn list(
    shared: &Shared,
    ti: usize,
    rt: &ResourceType,
    ns: Option<&str>,
    q: &std::collections::HashMap<String, String>,
) -> Response {
    let (labels, fields) = match selectors(q) {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    if let Err(e) = validate_list_options(q) {
        return error_response(&e);
    }
    // A resourceVersion the server has not reached yet: wait for it up to 3 s (the watch
    // cache's wait), then 504 with Retry-After.
    let rv_param = q.get("resourceVersion").filter(|r| !r.is_empty());
    let cont = q.get("continue").filter(|c| !c.is_empty());
    if let Some(n) = rv_param.and_then(|r| r.parse::<u64>().ok()).filter(|_| cont.is_none())
        && !wait_for_rv(shared, n).await
    {
        let current = lock(&shared.store).rv;
        let mut e =
            ApiError::new(504, "Timeout", format!("Timeout: Too large resource version: {n}, current: {current}"));
        e.details = json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1});
        let mut r = error_response(&e);
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
        return r;
    }
    let store = lock(&shared.store);
    let plan = match list_plan(&store, rt, ns, q) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let filtering = !labels.is_empty() || q.contains_key("fieldSelector");
    let mut page = Page::default();
    let served_rv = match plan.at {
        None => {
            let items = store.iter(ti, ns, plan.after.as_ref()).filter(|(k, s)| {
                !filtering || (labels.matches_with(|l| s.index.label(l)) && fields.matches_with(|f| s.field(k, f)))
            });
            if rt.storage.is_some() {
                let converted: Vec<(Key, Bytes)> = items.map(|(k, s)| (k.clone(), store.view_json(ti, s))).collect();
                page.fill(converted.iter().map(|(k, j)| (k, j)), plan.limit, !filtering);
            } else {
                page.fill(items.map(|(k, s)| (k, &s.json)), plan.limit, !filtering);
            }
            store.rv
        }
        Some(at) => {
            let mut snap = match store.snapshot(ti, ns, at) {
                Ok(s) => s,
                Err(e) => return error_response(&e),
            };
            if rt.storage.is_some() {
                for (_, json) in snap.iter_mut() {
                    let v = store.to_view(ti, serde_json::from_slice(json).unwrap_or(Value::Null));
                    *json = Bytes::from(serde_json::to_vec(&v).unwrap_or_default());
                }
            }
            let items = snap.iter().filter(|(k, json)| {
                plan.after.as_ref().is_none_or(|a| k > a)
                    && (!filtering || {
                        let v: Value = serde_json::from_slice(json).unwrap_or(Value::Null);
                        labels.matches(&v) && fields.matches(&v)
                    })
            });
            page.fill(items.map(|(k, j)| (k, j)), plan.limit, !filtering);
            at
        }
    };
    let Page { out, next, remaining, .. } = page;
    drop(store);
    let mut meta = json!({"resourceVersion": served_rv.to_string()});
    if let Some(k) = &next {
        meta["continue"] = json!(encode_continue(served_rv as i64, &continue_start(rt, ns, k)));
        if let Some(r) = remaining {
            meta["remainingItemCount"] = json!(r);
        }
    }
    let head = format!(
        "{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{},\"items\":[",
        rt.kind,
        rt.api_version(),
        meta
    );
    let mut body = head.into_bytes();
    body.extend_from_slice(&out);
    body.extend_from_slice(b"]}");
    let mut r = Response::new(Body::from(body));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// One page of a list: the items' JSON joined by commas, the last key when more follow, and
/// how many follow (counted only for unfiltered lists, as the real `remainingItemCount`).
#[derive(Default)]
struct Page {
    out: Vec<u8>,
    n: usize,
    next: Option<Key>,
    remaining: Option<usize>,
}

impl Page {
    fn fill<'a>(&mut self, mut items: impl Iterator<Item = (&'a Key, &'a Bytes)>, limit: usize, count: bool) {
        let mut last: Option<&Key> = None;
        while let Some((k, json)) = items.next() {
            if self.n == limit {
                self.next = last.cloned();
                self.remaining = count.then(|| 1 + items.count());
                return;
            }
            if self.n > 0 {
                self.out.push(b',');
            }
            self.out.extend_from_slice(json);
            self.n += 1;
            last = Some(k);
        }
    }
}

/// Waits (up to `resource_version_wait`) until the store has reached resourceVersion `n`.
async fn wait_for_rv(shared: &Shared, n: u64) -> bool {
    let mut rx = {
        let store = lock(&shared.store);
        if store.rv >= n {
            return true;
        }
        store.events.subscribe()
    };
    let reached = tokio::time::timeout(shared.resource_version_wait, async {
        loop {
            match rx.recv().await {
                Ok(e) if e.rv >= n => return,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    if lock(&shared.store).rv >= n {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    })
    .await;
    reached.is_ok() || lock(&shared.store).rv >= n
}

/// Which state a list serves, from its resourceVersion, resourceVersionMatch, limit and
/// continue token, as the real server (etcd plus watch cache) decides it.
fn list_plan(
    store: &Store,
    rt: &ResourceType,
    ns: Option<&str>,
    q: &std::collections::HashMap<String, String>,
) -> Result<ListPlan, Box<Response>> {
    let mut limit: usize = q.get("limit").and_then(|l| l.parse().ok()).filter(|l| *l > 0).unwrap_or(usize::MAX);
    let rv = q.get("resourceVersion").filter(|r| !r.is_empty());
    let matching = q.get("resourceVersionMatch").filter(|m| !m.is_empty()).map(String::as_str);
    if let Some(c) = q.get("continue").filter(|c| !c.is_empty()) {
        if rv.is_some_and(|r| r != "0") {
            return Err(Box::new(error_response(&ApiError::new(
                400,
                "BadRequest",
                "specifying resource version is not allowed when using continue",
            ))));
        }
        let (token_rv, start) = decode_continue(c).map_err(|m| {
            Box::new(error_response(&ApiError::new(400, "BadRequest", format!("invalid continue token: {m}"))))
        })?;
        let after = continue_key(rt, ns, &start);
        if token_rv < 0 {
            // An inconsistent continuation (what the 410 below hands out): the current state.
            return Ok(ListPlan { at: None, after: Some(after), limit });
        }
        let token_rv = token_rv as u64;
        if token_rv < store.compacted_below {
            let mut r = error_response(&ApiError::new(410, "Expired", CONTINUE_TOO_OLD));
            let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {"continue": encode_continue(-1, &start)},
                "status": "Failure", "message": CONTINUE_TOO_OLD, "reason": "Expired", "code": 410});
            *r.body_mut() = Body::from(serde_json::to_vec(&body).unwrap_or_default());
            return Err(Box::new(r));
        }
        let at = (token_rv < store.rv).then_some(token_rv);
        return Ok(ListPlan { at, after: Some(after), limit });
    }
    let Some(rv) = rv else { return Ok(ListPlan { at: None, after: None, limit }) };
    let Ok(n) = rv.parse::<u64>() else {
        return Err(Box::new(error_response(&ApiError::new(
            400,
            "BadRequest",
            format!("invalid resource version: {rv}"),
        ))));
    };
    if n == 0 {
        // From the watch cache, which ignores the limit.
        limit = usize::MAX;
        return Ok(ListPlan { at: None, after: None, limit });
    }
    // Exact, or (the legacy rule) a limited list from a resourceVersion: served from etcd at it.
    let exact = matching == Some("Exact") || (matching.is_none() && limit != usize::MAX);
    if exact && n < store.compacted_below {
        return Err(Box::new(error_response(&ApiError::new(
            410,
            "Expired",
            "The resourceVersion for the provided list is too old.",
        ))));
    }
    let at = (exact && n < store.rv).then_some(n);
    Ok(ListPlan { at, after: None, limit })
}

/// ListOptions validation of a watch (`validateWatchOptions`): resourceVersionMatch only with
/// sendInitialEvents, which needs it to be NotOlderThan.
fn validate_watch_options(q: &std::collections::HashMap<String, String>) -> Result<(), ApiError> {
    let matching = q.get("resourceVersionMatch").filter(|m| !m.is_empty());
    let initial = q.contains_key("sendInitialEvents");
    let mut causes: Vec<(String, String)> = Vec::new();
    let forbidden = |m: &str| ("resourceVersionMatch".to_string(), format!("Forbidden: {m}"));
    if initial && matching.map(String::as_str) != Some("NotOlderThan") {
        causes.push(forbidden("sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"));
    }
    if let Some(m) = matching {
        if !initial {
            causes.push(forbidden("resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"));
        }
        if m != "NotOlderThan" {
            causes.push((
                "resourceVersionMatch".into(),
                format!("Unsupported value: \"{m}\": supported values: \"NotOlderThan\""),
            ));
        }
        if q.get("continue").is_some_and(|c| !c.is_empty()) {
            causes.push(forbidden("resourceVersionMatch is forbidden when continue is provided"));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid_as("ListOptions.meta.k8s.io", "", "meta.k8s.io", "ListOptions", causes))
    }
}

/// ListOptions validation of a list (`ValidateListOptions`), every error at once.
fn validate_list_options(q: &std::collections::HashMap<String, String>) -> Result<(), ApiError> {
    let rv = q.get("resourceVersion").filter(|r| !r.is_empty());
    let matching = q.get("resourceVersionMatch").filter(|m| !m.is_empty());
    let mut causes: Vec<(String, String)> = Vec::new();
    let forbidden = |m: &str| ("resourceVersionMatch".to_string(), format!("Forbidden: {m}"));
    if let Some(m) = matching {
        if rv.is_none() {
            causes.push(forbidden("resourceVersionMatch is forbidden unless resourceVersion is provided"));
        }
        if q.get("continue").is_some_and(|c| !c.is_empty()) {
            causes.push(forbidden("resourceVersionMatch is forbidden when continue is provided"));
        }
        if m != "Exact" && m != "NotOlderThan" {
            causes.push((
                "resourceVersionMatch".into(),
                format!("Unsupported value: \"{m}\": supported values: \"Exact\", \"NotOlderThan\", \"\""),
            ));
        }
        if m == "Exact" && rv.map(String::as_str) == Some("0") {
            causes.push(forbidden("resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""));
        }
    }
    if q.contains_key("sendInitialEvents") {
        causes.push(("sendInitialEvents".into(), "Forbidden: sendInitialEvents is forbidden for list".into()));
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid_as("ListOptions.meta.k8s.io", "", "meta.k8s.io", "ListOptions", causes))
    }
}

/// The `labelSelector` and `fieldSelector` of a request, or the 400 a bad one gets.
fn selectors(q: &std::collections::HashMap<String, String>) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    let bad = |e: String| ApiError::new(400, "BadRequest", e);
    Ok((
        LabelSelector::parse(get("labelSelector")).map_err(bad)?,
        FieldSelector::parse(get("fieldSelector")).map_err(bad)?,
    ))
}

/// A continue token as the real server writes it: unpadded URL-safe base64 of
/// `{"v":"meta.k8s.io/v1","rv":N,"start":"<key after the list's prefix>\u0000"}`.
fn encode_continue(rv: i64, start: &str) -> String {
    use base64::Engine;
    let json = format!(
        "{{\"v\":\"meta.k8s.io/v1\",\"rv\":{rv},\"start\":{}}}",
        serde_json::to_string(start).unwrap_or_default()
    );
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

/// The start key of the page after `last`, relative to the list's key prefix
/// (`/name` within a namespace or for cluster-scoped resources, `/ns/name` across namespaces).
fn continue_start(rt: &ResourceType, ns: Option<&str>, last: &Key) -> String {
    if rt.namespaced && ns.is_none() { format!("/{}/{}\0", last.0, last.1) } else { format!("/{}\0", last.1) }
}

/// The key a continued list starts after.
fn continue_key(rt: &ResourceType, ns: Option<&str>, start: &str) -> Key {
    let rel = start.trim_end_matches('\0').trim_start_matches('/');
    if rt.namespaced && ns.is_none() {
        let (n, name) = rel.split_once('/').unwrap_or((rel, ""));
        (n.to_string(), name.to_string())
    } else {
        (ns.unwrap_or_default().to_string(), rel.to_string())
    }
}

/// `storage.DecodeContinue`: the token's resourceVersion and start key, or the real error text.
fn decode_continue(c: &str) -> Result<(i64, String), String> {
    use base64::Engine;
    const INVALID: &str = "continue key is not valid";
    // Go's RawURLEncoding: no padding, trailing bits not checked.
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::general_purpose::NO_PAD.with_decode_allow_trailing_bits(true),
    );
    let raw = engine.decode(c).map_err(|e| {
        let at = match e {
            base64::DecodeError::InvalidByte(i, _) | base64::DecodeError::InvalidLastSymbol(i, _) => i,
            _ => c.len(),
        };
        format!("{INVALID}: illegal base64 data at input byte {at}")
    })?;
    if let Some(e) = crate::gojson::syntax_error(&raw) {
        return Err(format!("{INVALID}: {e}"));
    }
    let v: Value = serde_json::from_slice(&raw).map_err(|e| format!("{INVALID}: {e}"))?;
    if !v.is_object() {
        return Err(format!(
            "{INVALID}: json: cannot unmarshal {} into Go value of type storage.continueToken",
            crate::gojson::kind(&v)
        ));
    }
    let version = v["v"].as_str().unwrap_or_default();
    if version != "meta.k8s.io/v1" {
        return Err(format!("{INVALID}: server does not recognize this encoded version {version}"));
    }
    let rv = v["rv"].as_i64().unwrap_or(0);
    if rv == 0 {
        return Err(format!("{INVALID}: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"));
    }
    let start = v["start"].as_str().unwrap_or_default();
    if start.is_empty() {
        return Err(format!("{INVALID}: encoded start key empty (version meta.k8s.io/v1)"));
    }
    Ok((rv, start.to_string()))
}

fn bookmark(rt: &ResourceType, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    crate::store::event_line("BOOKMARK", &json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": meta}))
}

fn watch(
    shared: Arc<Shared>,
    ti: usize,
    rt: &ResourceType,
    ns: Option<String>,
    name: Option<String>,
    q: &std::collections::HashMap<String, String>,
) -> Response {
    let (labels, mut fields) = match selectors(q) {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    if let Err(e) = validate_watch_options(q) {
        return error_response(&e);
    }
    // A server on etcd 3.4 cannot serve streaming lists: HTTP 200, then one ERROR (the cacher's
    // error watcher), and the client falls back to listing.
    if !shared.streaming_lists && q.get("sendInitialEvents").is_some_and(|v| v == "true") {
        let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "a watch stream was requested by the client but the required storage feature RequestWatchProgress is disabled",
            "reason": "InternalError", "code": 500});
        let v = crate::store::event_line("ERROR", &status);
        return stream_response(futures::stream::iter([Ok::<_, std::io::Error>(v)]).boxed());
    }
    if let Some(n) = &name {
        fields = FieldSelector::parse(&format!("metadata.name={n}")).unwrap_or(fields);
    }
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|v| v == "true");
    let lifetime =
        watch_lifetime(q.get("timeoutSeconds").and_then(|t| t.parse::<u64>().ok()), shared.min_request_timeout);
    let started = tokio::time::Instant::now();
    let initial = q.get("sendInitialEvents").is_some_and(|v| v == "true");
    let rv_param: Option<u64> = q.get("resourceVersion").filter(|r| !r.is_empty()).and_then(|r| r.parse().ok());
    let rt = rt.clone();
    let matches = {
        let (labels, fields, ns) = (labels.clone(), fields.clone(), ns.clone());
        move |obj: &Value| {
            ns.as_deref().is_none_or(|n| obj["metadata"]["namespace"].as_str() == Some(n))
                && labels.matches(obj)
                && fields.matches(obj)
        }
    };
    // Under the store lock: the backlog and the live subscription, so nothing falls between.
    let view = rt.storage.is_some();
    let storage = rt.storage.unwrap_or(ti);
    let (backlog, mut live, start_rv) = {
        let store = lock(&shared.store);
        let live = store.events.subscribe();
        let mut backlog: Vec<Bytes> = Vec::new();
        let start_rv = store.rv;
        match (initial, rv_param) {
            (true, _) | (false, None) | (false, Some(0)) => {
                for (k, s) in store.iter(ti, ns.as_deref(), None) {
                    if labels.matches_with(|l| s.index.label(l)) && fields.matches_with(|f| s.field(k, f)) {
                        let json = store.view_json(ti, s);
                        let mut v = Vec::with_capacity(json.len() + 30);
                        v.extend_from_slice(b"{\"type\":\"ADDED\",\"object\":");
                        v.extend_from_slice(&json);
                        v.extend_from_slice(b"}\n");
                        backlog.push(Bytes::from(v));
                    }
                }
                if initial && bookmarks {
                    backlog.push(bookmark(&rt, start_rv, true));
                }
            }
            (false, Some(rv)) => match store.history_since(rv) {
                Ok(evs) => {
                    for e in evs.iter().filter(|e| e.resource == storage && matches(&e.object)) {
                        backlog.push(store.view_line(ti, e));
                    }
                }
                Err(e) => {
                    backlog.push(crate::store::event_line("ERROR", &e.status()));
                    return stream_response(
                        futures::stream::iter(backlog.into_iter().map(Ok::<_, std::io::Error>)).boxed(),
                    );
                }
            },
        }
        (backlog, live, start_rv)
    };
    // A watch from a resourceVersion the server has not reached yet starts after it.
    let from_rv = if initial { start_rv } else { start_rv.max(rv_param.unwrap_or(0)) };
    let mut dropped = shared.drop_watches.subscribe();
    dropped.mark_unchanged();
    let mut faulted = shared.watch_faults.subscribe();
    let interval = shared.bookmark_interval;
    let counter = shared.clone();
    let plural = rt.plural.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(256);
    tokio::spawn(async move {
        // An event line goes out whole, or (a Truncate fault) half of it and the connection is cut.
        let send_event = |line: Bytes| {
            let truncate =
                lock(&counter.faults).take_watch(&plural, |k| matches!(k, WatchFaultKind::Truncate)).is_some();
            let tx = tx.clone();
            async move {
                if truncate {
                    let _ = tx.send(Ok(line.slice(..line.len() / 2))).await;
                    let _ = tx.send(Err(std::io::Error::other("kube-sim: watch truncated (injected fault)"))).await;
                    return false;
                }
                tx.send(Ok(line)).await.is_ok()
            }
        };
        for b in backlog {
            let ok = if b.starts_with(b"{\"type\":\"BOOKMARK\"") {
                tx.send(Ok(b)).await.is_ok()
            } else {
                send_event(b).await
            };
            if !ok {
                return;
            }
        }
        let end = started.checked_add(lifetime).unwrap_or(started + Duration::from_secs(86_400 * 365));
        let deadline = tokio::time::sleep_until(end);
        tokio::pin!(deadline);
        let mut next_bm = if bookmarks { next_bookmark(started, interval, end) } else { None };
        let mut last_rv = start_rv;
        // Faults added before this watch started count as news.
        faulted.mark_changed();
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = dropped.changed() => return,
                Ok(()) = faulted.changed() => {
                    loop {
                        let injected = lock(&counter.faults).take_watch(&plural, |k| matches!(k, WatchFaultKind::Inject(_)));
                        let Some(WatchFaultKind::Inject(line)) = injected else { break };
                        if tx.send(Ok(line)).await.is_err() {
                            return;
                        }
                    }
                }
                _ = tokio::time::sleep_until(next_bm.unwrap_or(end)), if next_bm.is_some() && !*counter.hang.borrow() => {
                    if tx.send(Ok(bookmark(&rt, last_rv, false))).await.is_err() { return; }
                    counter.bookmarks_sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    next_bm = next_bookmark(tokio::time::Instant::now(), interval, end);
                }
                ev = live.recv() => match ev {
                    Ok(e) => {
                        last_rv = last_rv.max(e.rv);
                        if e.resource == storage && e.rv > from_rv && matches(&e.object) {
                            let line = if view {
                                crate::store::event_line(e.kind, &resources::to_view(&rt, &e.object))
                            } else {
                                e.line.clone()
                            };
                            // A hanging server delivers the event only once released.
                            if *counter.hang.borrow() {
                                tokio::select! {
                                    _ = &mut deadline => return,
                                    _ = dropped.changed() => return,
                                    _ = unheld(&counter) => {}
                                }
                            }
                            if !send_event(line).await {
                                return;
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    stream_response(tokio_stream_from(rx))
}

/// How long a watch lasts: the client's `timeoutSeconds`, or (absent or 0) the server's
/// `--min-request-timeout` times a random factor in [1, 2), as kube-apiserver does.
pub fn watch_lifetime(timeout_seconds: Option<u64>, min_request_timeout: Duration) -> Duration {
    match timeout_seconds.filter(|t| *t > 0) {
        Some(t) => Duration::from_secs(t),
        None => min_request_timeout.mul_f64(1.0 + random_unit()),
    }
}

/// When a watch's next BOOKMARK is due, by the watch cache's rule: one `interval` after `now`,
/// or 2 s before the watch's `deadline` if that comes first; None once that moment has passed
/// (a watch shorter than 2 s gets no bookmark, one with `timeoutSeconds=60` gets its only
/// bookmark at about 58 s).
pub fn next_bookmark(
    now: tokio::time::Instant,
    interval: Duration,
    deadline: tokio::time::Instant,
) -> Option<tokio::time::Instant> {
    let heartbeat = now.checked_add(interval)?;
    let due = match deadline.checked_sub(Duration::from_secs(2)) {
        Some(pre) => heartbeat.min(pre),
        None => heartbeat,
    };
    (due > now).then_some(due)
}

/// A random number in [0, 1) (std's per-instance random hasher keys; no RNG dependency).
fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let h = std::collections::hash_map::RandomState::new().build_hasher().finish();
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// The body stream of a watch. An `Err` from the channel cuts the connection; first the
/// stream answers Pending once (and wakes itself), so hyper flushes what came before it
/// (it drops unflushed output when a body fails).
fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>> {
    let mut cut: Option<std::io::Error> = None;
    futures::stream::poll_fn(move |cx| {
        if let Some(e) = cut.take() {
            return std::task::Poll::Ready(Some(Err(e)));
        }
        match rx.poll_recv(cx) {
            std::task::Poll::Ready(Some(Err(e))) => {
                cut = Some(e);
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
            other => other,
        }
    })
    .boxed()
}

/// A watch's chunked body; an `Err` item cuts the connection without the end of the body.
fn stream_response(s: futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>>) -> Response {
    let mut r = Response::new(Body::from_stream(s));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[test]
    fn bookmarks_come_a_minute_apart_and_once_just_before_the_deadline() {
        let now = Instant::now();
        let minute = Duration::from_secs(60);
        // timeoutSeconds=290 (kube-runtime): every 60 s, the last one 2 s before the end
        let end = now + Duration::from_secs(290);
        assert_eq!(next_bookmark(now, minute, end), Some(now + minute));
        let at_240 = now + Duration::from_secs(240);
        assert_eq!(next_bookmark(at_240, minute, end), Some(now + Duration::from_secs(288)));
        assert_eq!(next_bookmark(now + Duration::from_secs(288), minute, end), None);
        // timeoutSeconds=60: one bookmark at 58 s (07-quiet-watch.json: 57.999 s)
        let end = now + minute;
        assert_eq!(next_bookmark(now, minute, end), Some(now + Duration::from_secs(58)));
        // shorter than 2 s: none
        assert_eq!(next_bookmark(now, minute, now + Duration::from_secs(1)), None);
    }

    #[test]
    fn watch_lifetime_is_the_timeout_or_min_request_timeout_times_one_to_two() {
        assert_eq!(watch_lifetime(Some(60), Duration::from_secs(1800)), Duration::from_secs(60));
        for t in [None, Some(0)] {
            for _ in 0..100 {
                let d = watch_lifetime(t, Duration::from_secs(1800));
                assert!(d >= Duration::from_secs(1800) && d < Duration::from_secs(3600), "{d:?}");
            }
        }
        let spread: std::collections::BTreeSet<Duration> =
            (0..20).map(|_| watch_lifetime(None, Duration::from_secs(1800))).collect();
        assert!(spread.len() > 1, "the factor is random");
    }
}
