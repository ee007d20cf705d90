//! The HTTP face of the store: discovery, get/list/watch/create/update/patch/delete as the
//! Kubernetes API answers them, and fault injection.

use std::collections::VecDeque;
use std::convert::Infallible;
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
use crate::store::{ApiError, PatchType, Store, WriteOpts};

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
}

/// A fault: the next `remaining` requests matching verb/resource[/namespace][/name] fail with
/// `code` (a Status body with the real reason; `retry_after` adds a Retry-After header).
#[derive(Debug, Clone, Default)]
pub struct FaultRule {
    pub verb: Option<String>,
    pub resource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub remaining: u32,
    pub code: u16,
    pub retry_after: Option<u32>,
}

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
}

#[derive(Default)]
pub struct FaultState {
    pub rules: Vec<FaultRule>,
    pub latency: Option<(Option<String>, Duration)>,
}

/// Everything the handlers share.
pub struct Shared {
    pub store: Mutex<Store>,
    pub faults: Mutex<FaultState>,
    pub requests: Mutex<VecDeque<RequestRecord>>,
    /// Bumped to drop every open watch.
    pub drop_watches: watch::Sender<u64>,
    pub bookmark_interval: Duration,
    /// BOOKMARK events sent on watches so far (tests observe bookmarks by their count).
    pub bookmarks_sent: std::sync::atomic::AtomicU64,
    /// Some when RBAC is enforced (SimOptions::rbac).
    pub auth: Option<Mutex<crate::auth::AuthState>>,
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
    if let Some(r) = non_resource(&shared, &method, &path) {
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
    // Like the real server's RequestInfo, `/api/v1/namespaces/x[/status]` carries namespace "x".
    crate::rbac::Attributes {
        verb: verb.into(),
        api_group: t.group.clone(),
        resource: t.plural.clone(),
        subresource: t.sub.clone(),
        namespace: if t.plural == "namespaces" && t.group.is_empty() { t.name.clone() } else { t.namespace.clone() },
        name: t.name.clone(),
        path: None,
    }
}

fn non_resource(shared: &Shared, method: &Method, path: &str) -> Option<Response> {
    let path = path.trim_end_matches('/');
    if method != Method::GET {
        return None;
    }
    let store = lock(&shared.store);
    let types = &store.types;
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
    let (code, retry) = (rule.code, rule.retry_after);
    f.rules.retain(|r| r.remaining > 0);
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
        return access_review(shared, &rt, verb, body, user);
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
    let opts = WriteOpts {
        dry_run: q.get("dryRun").is_some_and(|v| v == "All"),
        field_manager: q.get("fieldManager").cloned(),
        force: q.get("force").is_some_and(|v| v == "true"),
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
            "list" => list(shared, ti, &rt, t.namespace.as_deref(), q),
            _ => match lock(&shared.store).get(ti, if rt.namespaced { &ns } else { "" }, &name) {
                Some(s) => json_response(200, &s.parse()),
                None => error_response(&ApiError::not_found(&rt, &name)),
            },
        };
        return crate::table::render(plain, &rt, q).await;
    }
    let result = match verb {
        "get" => {
            let store = lock(&shared.store);
            return match store.get(ti, if rt.namespaced { &ns } else { "" }, &name) {
                Some(s) => {
                    let mut r = Response::new(Body::from(s.json.clone()));
                    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    r
                }
                None => error_response(&ApiError::not_found(&rt, &name)),
            };
        }
        "list" => return list(shared, ti, &rt, t.namespace.as_deref(), q),
        "watch" => return watch(shared.clone(), ti, &rt, t.namespace.clone(), t.name.clone(), q),
        "create" => {
            if t.sub.as_deref() == Some("eviction") {
                return evict(shared, ti, &ns, &name, opts.dry_run);
            }
            parse_body(body).and_then(|b| lock(&shared.store).create(ti, &ns, b, &opts, manager))
        }
        "update" => parse_body(body)
            .and_then(|b| lock(&shared.store).update(ti, &ns, &name, b, t.sub.as_deref(), &opts, manager)),
        "patch" => {
            let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
            let pt = match ctype.split(';').next().unwrap_or_default().trim() {
                "application/merge-patch+json" => PatchType::Merge,
                "application/json-patch+json" => PatchType::Json,
                "application/strategic-merge-patch+json" => PatchType::Strategic,
                "application/apply-patch+yaml" => PatchType::Apply,
                _ => {
                    let accepted = if crate::patch::supports_strategic_merge(&rt.kind) {
                        "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml"
                    } else {
                        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
                    };
                    return error_response(&ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        format!(
                            "the body of the request was in an unknown format - accepted media types include: {accepted}"
                        ),
                    ));
                }
            };
            let parsed = if pt == PatchType::Apply {
                serde_yaml::from_slice::<Value>(body)
                    .map_err(|e| ApiError::new(400, "BadRequest", format!("error decoding YAML: {e}")))
            } else {
                parse_body(body)
            };
            if pt == PatchType::Apply && q.get("fieldManager").is_none() {
                return error_response(&ApiError::new(
                    422,
                    "Invalid",
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                ));
            }
            let mut store = lock(&shared.store);
            let existed = store.get(ti, if rt.namespaced { &ns } else { "" }, &name).is_some();
            let r = parsed.and_then(|b| store.patch(ti, &ns, &name, pt, &b, t.sub.as_deref(), &opts, manager));
            // Server-side apply that creates answers 201 Created.
            if !existed && let Ok(v) = &r {
                return json_response(201, v);
            }
            r
        }
        "delete" => lock(&shared.store).delete(ti, &ns, &name, &opts),
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
        Ok(v) => json_response(if verb == "create" { 201 } else { 200 }, &v),
        Err(e) => error_response(&e),
    }
}

/// SelfSubjectAccessReview / SelfSubjectRulesReview, answered from the authorizer (without
/// RBAC everyone is the admin, who may do everything).
fn access_review(shared: &Shared, rt: &ResourceType, verb: &str, body: &Bytes, user: &crate::rbac::User) -> Response {
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
    v["apiVersion"] = json!("authorization.k8s.io/v1");
    v["kind"] = json!(rt.kind);
    let s = |x: &Value| x.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    let spec = v["spec"].clone();
    let store = lock(&shared.store);
    let mut auth = shared.auth.as_ref().map(lock);
    if let Some(a) = auth.as_mut() {
        a.sync(&store);
    }
    let superuser = crate::auth::is_superuser(user);
    v["status"] = if rt.kind == "SelfSubjectAccessReview" {
        let ra = &spec["resourceAttributes"];
        let nra = &spec["nonResourceAttributes"];
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
        let allowed = superuser || auth.as_ref().is_none_or(|a| a.allowed(user, &attrs));
        if allowed {
            json!({"allowed": true, "reason": if superuser || auth.is_none() { "system:masters may do everything" } else { "allowed by RBAC" }})
        } else {
            json!({"allowed": false})
        }
    } else if superuser || auth.is_none() {
        json!({"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}], "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}], "incomplete": false})
    } else {
        let ns = s(&spec["namespace"]).unwrap_or_default();
        let rules = auth.as_ref().map(|a| a.authorizer.rules_for(user, &ns)).unwrap_or_default();
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
        json!({"resourceRules": res, "nonResourceRules": non, "incomplete": false})
    };
    json_response(201, &v)
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
            let patch: Value = match serde_json::from_slice(body) {
                Ok(p) => p,
                Err(e) => {
                    return error_response(&ApiError::new(
                        400,
                        "BadRequest",
                        format!("the body of the request could not be decoded: {e}"),
                    ));
                }
            };
            let mut v = current.clone();
            let r = match ctype.split(';').next().unwrap_or_default().trim() {
                "application/merge-patch+json" => {
                    crate::patch::merge_patch(&mut v, &patch);
                    Ok(())
                }
                "application/json-patch+json" => crate::patch::json_patch(&mut v, &patch),
                "application/strategic-merge-patch+json" => {
                    crate::patch::strategic_merge_patch(&mut v, &patch, "Scale")
                }
                _ => {
                    return error_response(&ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json",
                    ));
                }
            };
            r.map(|_| v).map_err(|e| match e {
                crate::patch::PatchError::Invalid(m) => ApiError::new(422, "Invalid", m),
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

/// pods/eviction honouring PodDisruptionBudgets. The budget decision is the disruption
/// controller's business: `actors::disruption::check_eviction` (src/actors/disruption.rs).
fn evict(shared: &Shared, ti: usize, ns: &str, name: &str, dry_run: bool) -> Response {
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
    let deleted = if dry_run { Ok(pod) } else { store.delete(ti, ns, name, &WriteOpts::default()) };
    match deleted {
        Ok(_) => json_response(
            201,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        ),
        Err(e) => error_response(&e),
    }
}

fn list(
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
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).filter(|l| *l > 0).unwrap_or(usize::MAX);
    let store = lock(&shared.store);
    if let Err(e) = list_rv_semantics(&store, q) {
        return error_response(&e);
    }
    let after = match q.get("continue").filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => match decode_continue(c) {
            Some((rv, key)) if rv >= store.compacted_below => Some(key),
            Some(_) => {
                return error_response(&ApiError::new(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                ));
            }
            None => {
                return error_response(&ApiError::new(
                    400,
                    "BadRequest",
                    "continue key is not valid: illegal base64 data",
                ));
            }
        },
    };
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    let mut n = 0;
    let mut next = None;
    let mut last_key = None;
    let filtering = !labels.is_empty() || q.contains_key("fieldSelector");
    for (k, s) in store.iter(ti, ns, after.as_ref()) {
        if filtering && !(labels.matches_with(|l| s.index.label(l)) && fields.matches_with(|f| s.field(k, f))) {
            continue;
        }
        if n == limit {
            next = last_key.clone();
            break;
        }
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&s.json);
        n += 1;
        last_key = Some(k.clone());
    }
    let rv = store.list_rv();
    let cont = next.map(|k: (String, String)| encode_continue(store.rv, &k)).unwrap_or_default();
    drop(store);
    let mut meta = json!({"resourceVersion": rv});
    if !cont.is_empty() {
        meta["continue"] = json!(cont);
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

/// resourceVersion / resourceVersionMatch on a list, as the real server checks them. kube-sim
/// always serves the current state, so an Exact match on an older, uncompacted version is
/// answered with the current state (documented in the README).
fn list_rv_semantics(store: &Store, q: &std::collections::HashMap<String, String>) -> Result<(), ApiError> {
    let rv = q.get("resourceVersion").filter(|r| !r.is_empty());
    let matching = q.get("resourceVersionMatch").filter(|m| !m.is_empty());
    let invalid = |m: String| {
        ApiError::new(422, "Invalid", format!("ListOptions.meta.k8s.io \"\" is invalid: {m}")).with_details(
            "",
            "meta.k8s.io",
            "ListOptions",
        )
    };
    if let Some(m) = matching {
        if rv.is_none() {
            return Err(invalid(
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
                    .into(),
            ));
        }
        if q.get("continue").is_some_and(|c| !c.is_empty()) {
            return Err(invalid(
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided".into(),
            ));
        }
        if m != "Exact" && m != "NotOlderThan" {
            return Err(invalid(format!(
                "resourceVersionMatch: Unsupported value: \"{m}\": supported values: \"Exact\", \"NotOlderThan\""
            )));
        }
        if m == "Exact" && rv.map(String::as_str) == Some("0") {
            return Err(invalid("resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"".into()));
        }
    }
    let Some(rv) = rv else { return Ok(()) };
    let Ok(n) = rv.parse::<u64>() else {
        return Err(ApiError::new(400, "BadRequest", format!("invalid resource version: {rv}")));
    };
    if n > store.rv {
        // The real server waits up to 3 s for the version to arrive first.
        let mut e = ApiError::new(504, "Timeout", format!("Too large resource version: {n}, current: {}", store.rv));
        e.details = json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1});
        return Err(e);
    }
    if matching.map(String::as_str) == Some("Exact") && n < store.compacted_below {
        return Err(ApiError::new(410, "Expired", "The resourceVersion for the provided list is too old."));
    }
    Ok(())
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

fn encode_continue(rv: u64, key: &(String, String)) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(json!({"rv": rv, "ns": key.0, "name": key.1}).to_string())
}

fn decode_continue(c: &str) -> Option<(u64, (String, String))> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD.decode(c).ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    Some((v["rv"].as_u64()?, (v["ns"].as_str()?.to_string(), v["name"].as_str()?.to_string())))
}

fn bookmark(rt: &ResourceType, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let mut v = serde_json::to_vec(
        &json!({"type": "BOOKMARK", "object": {"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": meta}}),
    )
    .unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
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
    if let Some(n) = &name {
        fields = FieldSelector::parse(&format!("metadata.name={n}")).unwrap_or(fields);
    }
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|v| v == "true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
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
    let (backlog, mut live, start_rv) = {
        let store = lock(&shared.store);
        let live = store.events.subscribe();
        let mut backlog: Vec<Bytes> = Vec::new();
        let start_rv = store.rv;
        match (initial, rv_param) {
            (true, _) | (false, None) | (false, Some(0)) => {
                for (k, s) in store.iter(ti, ns.as_deref(), None) {
                    if labels.matches_with(|l| s.index.label(l)) && fields.matches_with(|f| s.field(k, f)) {
                        let mut v = Vec::with_capacity(s.json.len() + 30);
                        v.extend_from_slice(b"{\"type\":\"ADDED\",\"object\":");
                        v.extend_from_slice(&s.json);
                        v.extend_from_slice(b"}\n");
                        backlog.push(Bytes::from(v));
                    }
                }
                if initial {
                    backlog.push(bookmark(&rt, start_rv, true));
                }
            }
            (false, Some(rv)) => match store.history_since(rv) {
                Ok(evs) => {
                    for e in evs.iter().filter(|e| e.resource == ti && matches(&e.object)) {
                        backlog.push(e.line.clone());
                    }
                }
                Err(e) => {
                    let mut v = serde_json::to_vec(&json!({"type": "ERROR", "object": e.status()})).unwrap_or_default();
                    v.push(b'\n');
                    backlog.push(Bytes::from(v));
                    return stream_response(
                        futures::stream::iter(backlog.into_iter().map(Ok::<_, Infallible>)).boxed(),
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
    let interval = shared.bookmark_interval;
    let counter = shared.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(256);
    tokio::spawn(async move {
        for b in backlog {
            if tx.send(Ok(b)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        let mut last_rv = start_rv;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = dropped.changed() => return,
                _ = tick.tick(), if bookmarks => {
                    if tx.send(Ok(bookmark(&rt, last_rv, false))).await.is_err() { return; }
                    counter.bookmarks_sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                ev = live.recv() => match ev {
                    Ok(e) => {
                        last_rv = last_rv.max(e.rv);
                        if e.resource == ti && e.rv > from_rv && matches(&e.object) && tx.send(Ok(e.line.clone())).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    stream_response(tokio_stream_from(rx))
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, Infallible>>,
) -> futures::stream::BoxStream<'static, Result<Bytes, Infallible>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

fn stream_response(s: futures::stream::BoxStream<'static, Result<Bytes, Infallible>>) -> Response {
    let mut r = Response::new(Body::from_stream(s));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}
