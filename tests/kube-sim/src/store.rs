//! The object store: every object kept once as a parsed value and as its serialized bytes,
//! one global monotonic resourceVersion, a bounded history of watch events (each serialized
//! once, shared by every watcher), and the write path with Kubernetes' semantics.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::patch::{self, PatchError};
use crate::resources::{self, ResourceType};

/// An API error, rendered as a Status object.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError { code, reason, message: message.into(), details: Value::Null }
    }

    pub fn with_details(mut self, name: &str, group: &str, kind: &str) -> Self {
        let mut d = if kind.is_empty() { json!({}) } else { json!({"kind": kind}) };
        if !name.is_empty() {
            d["name"] = json!(name);
        }
        if !group.is_empty() {
            d["group"] = json!(group);
        }
        self.details = d;
        self
    }

    /// The 422 a JSON patch that cannot be applied gets (`NewGenericServerResponse(422, ...)`):
    /// a fixed message and empty details; a failed `test` op means "changed meanwhile".
    pub fn patch_failed() -> Self {
        let mut e = ApiError::new(422, "Invalid", "the server rejected our request due to an error in our request");
        e.details = json!({});
        e
    }

    /// 415 for a PATCH whose Content-Type is not a patch type the resource accepts.
    pub fn unsupported_media_type() -> Self {
        let mut e = ApiError::new(415, "UnsupportedMediaType", "415: Unsupported Media Type");
        e.details = json!({});
        e
    }

    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        ApiError::new(404, "NotFound", format!("{} \"{name}\" not found", rt.qualified()))
            .with_details(name, &rt.group, &rt.plural)
    }

    pub fn status(&self) -> Value {
        let mut s = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code});
        if !self.details.is_null() {
            s["details"] = self.details.clone();
        }
        s
    }

    /// 422 Invalid for `Kind "name"` with field errors `(field, message)`, as
    /// `errors.NewInvalid` renders them: one error plain, several (deduplicated) in brackets;
    /// each cause's reason follows from its message (`Invalid value` -> FieldValueInvalid ...).
    pub fn invalid(rt: &ResourceType, name: &str, causes: Vec<(String, String)>) -> Self {
        let qualified = if rt.group.is_empty() { rt.kind.clone() } else { format!("{}.{}", rt.kind, rt.group) };
        ApiError::invalid_as(&qualified, name, &rt.group, &rt.kind, causes)
    }

    /// 422 Invalid with an explicit qualified kind for the message (`leases.coordination.k8s.io`
    /// for the registry's own checks, `PatchOptions.meta.k8s.io` for options) and details kind.
    pub fn invalid_as(qualified: &str, name: &str, group: &str, kind: &str, causes: Vec<(String, String)>) -> Self {
        let msgs: Vec<String> =
            causes.iter().map(|(f, m)| if f.is_empty() { m.clone() } else { format!("{f}: {m}") }).collect();
        let mut e = ApiError::new(422, "Invalid", format!("{qualified} \"{name}\" is invalid: {}", aggregate(&msgs)))
            .with_details(name, group, kind);
        e.details["causes"] = Value::Array(
            causes
                .iter()
                .map(|(f, m)| {
                    let mut c = json!({"reason": cause_reason(m), "message": m});
                    if !f.is_empty() {
                        c["field"] = json!(f);
                    }
                    c
                })
                .collect(),
        );
        e
    }
}

/// `utilerrors.NewAggregate(...).Error()`: one message as is, several deduplicated in `[a, b]`.
pub fn aggregate(msgs: &[String]) -> String {
    let mut seen: Vec<&String> = Vec::new();
    for m in msgs {
        if !seen.contains(&m) {
            seen.push(m);
        }
    }
    match seen.as_slice() {
        [one] => (*one).clone(),
        many => format!("[{}]", many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")),
    }
}

/// The StatusCause reason of a field error, from the way its message starts (field.ErrorType).
fn cause_reason(message: &str) -> &'static str {
    const KINDS: [(&str, &str); 9] = [
        ("Invalid value", "FieldValueInvalid"),
        ("Required value", "FieldValueRequired"),
        ("Forbidden", "FieldValueForbidden"),
        ("Unsupported value", "FieldValueNotSupported"),
        ("Duplicate value", "FieldValueDuplicate"),
        ("Too long", "FieldValueTooLong"),
        ("Too many", "FieldValueTooMany"),
        ("Not found", "FieldValueNotFound"),
        ("Internal error", "InternalError"),
    ];
    KINDS.iter().find(|(p, _)| message.starts_with(p)).map_or("FieldValueInvalid", |(_, r)| r)
}

/// A stored object: its serialized JSON (what get/list/watch send) and a small index of what
/// selectors, garbage collection and namespace termination read. No parsed tree is kept, so
/// 100k pods cost their JSON bytes plus a few hundred bytes each.
#[derive(Debug, Clone)]
pub struct Stored {
    pub json: Bytes,
    pub index: Index,
    /// The parsed object, parsed on first use and then cached (kept for callers that index into
    /// it; prefer [`Stored::parse`], which does not cache).
    pub value: LazyValue,
}

/// What selectors and the store need without parsing an object.
#[derive(Debug, Clone, Default)]
pub struct Index {
    pub labels: Box<[(Box<str>, Box<str>)]>,
    pub node_name: Option<Box<str>>,
    pub phase: Option<Box<str>>,
    pub uid: Box<str>,
    pub owner_uids: Box<[Box<str>]>,
    pub deleting: bool,
}

impl Index {
    fn of(v: &Value) -> Index {
        let meta = &v["metadata"];
        let s = |x: &Value| x.as_str().map(Into::into);
        Index {
            labels: meta["labels"]
                .as_object()
                .map(|m| m.iter().filter_map(|(k, v)| Some((k.as_str().into(), v.as_str()?.into()))).collect())
                .unwrap_or_default(),
            node_name: s(&v["spec"]["nodeName"]),
            phase: s(&v["status"]["phase"]),
            uid: meta["uid"].as_str().unwrap_or_default().into(),
            owner_uids: meta["ownerReferences"]
                .as_array()
                .map(|o| o.iter().filter_map(|r| r["uid"].as_str().map(Into::into)).collect())
                .unwrap_or_default(),
            deleting: meta["deletionTimestamp"].is_string(),
        }
    }

    pub fn label(&self, k: &str) -> Option<&str> {
        self.labels.iter().find(|(lk, _)| &**lk == k).map(|(_, v)| &**v)
    }
}

/// A JSON document parsed on first dereference.
#[derive(Debug, Clone)]
pub struct LazyValue {
    json: Bytes,
    cell: std::sync::OnceLock<Value>,
}

impl std::ops::Deref for LazyValue {
    type Target = Value;
    fn deref(&self) -> &Value {
        self.cell.get_or_init(|| serde_json::from_slice(&self.json).unwrap_or(Value::Null))
    }
}

impl Stored {
    fn new(value: &Value) -> Self {
        let json = Bytes::from(serde_json::to_vec(value).unwrap_or_default());
        Stored { index: Index::of(value), value: LazyValue { json: json.clone(), cell: Default::default() }, json }
    }

    /// The object, freshly parsed.
    pub fn parse(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    /// The value of a field selector's field (metadata.name/namespace come from the key).
    pub fn field<'a>(&'a self, key: &'a Key, field: &str) -> Option<&'a str> {
        match field {
            "metadata.name" => Some(&key.1),
            "metadata.namespace" => Some(&key.0),
            "spec.nodeName" => self.index.node_name.as_deref(),
            "status.phase" => self.index.phase.as_deref(),
            _ => None,
        }
    }
}

/// One watch event, serialized once (`line` is the newline-terminated JSON).
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub resource: usize,
    pub namespace: Option<String>,
    pub kind: &'static str,
    pub object: Arc<Value>,
    pub line: Bytes,
    /// The stored JSON of the object before this event (None for ADDED): what a list at an
    /// older resourceVersion serves. Shares the bytes the store held (no copy).
    pub prev: Option<Bytes>,
}

/// Options of a write.
#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    pub dry_run: bool,
    pub field_manager: Option<String>,
    pub force: bool,
    /// DeleteOptions.preconditions: the delete is refused (409) unless the object still has them.
    pub preconditions: Preconditions,
    /// What to do with fields the schema does not declare (they are dropped in any case).
    pub field_validation: crate::schema::FieldValidation,
}

/// `DeleteOptions.preconditions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

/// Patch types by content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

pub type Key = (String, String);

/// A mutating admission hook: sees the store (read-only), the type, the namespace and the
/// object about to be created, and may change it (the sidecar injector is one) or refuse it
/// (the error is the answer, as a failing webhook's).
pub type Admission = Arc<dyn Fn(&Store, &ResourceType, &str, &mut Value) -> Result<(), ApiError> + Send + Sync>;

pub struct Store {
    pub types: Vec<ResourceType>,
    objects: HashMap<usize, BTreeMap<Key, Stored>>,
    pub rv: u64,
    history: VecDeque<Arc<Event>>,
    history_cap: usize,
    /// Watches from a resourceVersion below this answer 410.
    pub compacted_below: u64,
    node_ports: BTreeMap<i64, Key>,
    next_ip: u32,
    uid: u64,
    pub events: broadcast::Sender<Arc<Event>>,
    pub admission: Vec<Admission>,
    /// What the cluster actors take over when they run (src/actors).
    pub controller_hooks: crate::actors::ControllerHooks,
    /// Warnings of the last write (`Warning: 299 ...` headers), taken by the HTTP layer.
    pub warnings: Vec<String>,
    /// A fixed time (Unix seconds) for the timestamps writes set (creation, deletion,
    /// managedFields); None: the system clock.
    pub clock: Option<u64>,
}

/// Events buffered for in-process subscribers and live watches; one that falls further behind
/// gets `Lagged` (a watch then ends and its client re-lists, as with a real server).
pub const EVENT_BUFFER: usize = 8192;

pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    rfc3339(secs)
}

/// `2026-11-25T07:00:00Z` (fractions ignored) as Unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // days-from-civil
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

/// Unix seconds as `2026-11-25T07:00:00Z` (civil-from-days, no dependency).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// Metadata validation as the API server does it (the subset meshkeeper and kubectl exercise).
/// How many times the metadata checks of an update run: the registry's common ObjectMeta
/// checks (create and update forms), the strategy's ValidateObjectMetaUpdate, and, for kinds
/// whose update validation repeats their full validation, ValidateObjectMeta again. The real
/// answer lists each cause that many times (03-patch-errors.json: four for a ConfigMap); its
/// message deduplicates them. A create stops at the strategy's own validation: once.
fn meta_passes(rt: &ResourceType, update: bool) -> usize {
    match (update, rt.group.as_str(), rt.kind.as_str()) {
        (false, ..) => 1,
        (true, "", "ConfigMap" | "Secret" | "Service" | "Pod" | "ServiceAccount") => 4,
        (true, ..) => 3,
    }
}

fn validate(rt: &ResourceType, obj: &Value, update: bool) -> Result<(), ApiError> {
    use crate::validation as v;
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let mut causes = Vec::new();
    if !obj["metadata"].is_object() {
        causes.push(("metadata".into(), "Required value".into()));
    }
    if name.is_empty() {
        causes.push(("metadata.name".into(), "Required value: name or generateName is required".into()));
    } else {
        let errs = match rt.kind.as_str() {
            "Namespace" => v::dns_label_errors(name),
            "Service" => v::dns1035_label_errors(name),
            "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding" => v::path_segment_errors(name),
            _ => v::dns_subdomain_errors(name),
        };
        causes
            .extend(errs.into_iter().map(|m| ("metadata.name".to_string(), format!("Invalid value: \"{name}\": {m}"))));
    }
    for (field, map) in [("labels", &obj["metadata"]["labels"]), ("annotations", &obj["metadata"]["annotations"])] {
        match map {
            Value::Null => {}
            Value::Object(m) => {
                let f = format!("metadata.{field}");
                for (k, val) in m {
                    for e in v::qualified_name_errors(k) {
                        causes.push((f.clone(), format!("Invalid value: \"{k}\": {e}")));
                    }
                    match val.as_str() {
                        Some(s) if field == "labels" => {
                            for e in v::label_value_errors(s) {
                                causes.push((f.clone(), format!("Invalid value: \"{s}\": {e}")));
                            }
                        }
                        Some(_) => {}
                        None => causes.push((f.clone(), format!("Invalid value: {val}: must be a string"))),
                    }
                }
            }
            other => causes.push((format!("metadata.{field}"), format!("Invalid value: {other}: must be a map"))),
        }
    }
    let meta: Vec<(String, String)> =
        causes.iter().filter(|(f, _)| f == "metadata.labels" || f == "metadata.annotations").cloned().collect();
    for _ in 1..meta_passes(rt, update) {
        causes.extend(meta.iter().cloned());
    }
    if rt.group == "batch" && rt.kind == "Job" {
        // ValidateJobSpec: a Job's pods run to completion (the template's restartPolicy was
        // defaulted to Always when unset, which is then refused).
        let policy = obj["spec"]["template"]["spec"]["restartPolicy"].as_str().unwrap_or_default();
        if !matches!(policy, "OnFailure" | "Never") {
            causes.push((
                "spec.template.spec.restartPolicy".into(),
                format!("Unsupported value: \"{policy}\": supported values: \"OnFailure\", \"Never\""),
            ));
        }
    }
    if causes.is_empty() { Ok(()) } else { Err(ApiError::invalid(rt, name, causes)) }
}

/// A watch event's line, `{"type":"ADDED","object":{...}}` and a newline: the type first, as
/// the real server writes it (a JSON map would sort `object` first; clients that read the
/// envelope as an adjacently tagged enum, kube-rs's, then buffer the whole object).
pub fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut v = Vec::with_capacity(256);
    v.extend_from_slice(b"{\"type\":");
    v.extend_from_slice(&serde_json::to_vec(kind).unwrap_or_default());
    v.extend_from_slice(b",\"object\":");
    v.extend_from_slice(&serde_json::to_vec(object).unwrap_or_default());
    v.extend_from_slice(b"}\n");
    Bytes::from(v)
}

impl Store {
    pub fn new(history_cap: usize) -> Self {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Store {
            types: resources::builtin(),
            objects: HashMap::new(),
            rv: 1,
            history: VecDeque::new(),
            history_cap: history_cap.max(1),
            compacted_below: 0,
            node_ports: BTreeMap::new(),
            next_ip: 1,
            uid: 0,
            events,
            admission: Vec::new(),
            controller_hooks: Default::default(),
            warnings: Vec::new(),
            clock: None,
        }
    }

    /// Now, as writes stamp it (the fixed clock if one is set).
    pub fn now(&self) -> String {
        match self.clock {
            Some(secs) => rfc3339(secs),
            None => now_rfc3339(),
        }
    }

    pub fn type_index(&self, group: &str, version: &str, plural: &str) -> Option<usize> {
        self.types.iter().position(|r| r.group == group && r.version == version && r.plural == plural)
    }

    pub fn type_by_kind(&self, api_version: &str, kind: &str) -> Option<usize> {
        self.types.iter().position(|r| r.api_version() == api_version && r.kind == kind)
    }

    /// The type whose storage holds `ti`'s objects (itself, or the converted-from type).
    pub fn storage_of(&self, ti: usize) -> usize {
        self.types.get(ti).and_then(|r| r.storage).unwrap_or(ti)
    }

    /// A stored object as type `ti` serves it.
    pub fn to_view(&self, ti: usize, v: Value) -> Value {
        match self.types.get(ti) {
            Some(r) if r.storage.is_some() => resources::to_view(r, &v),
            _ => v,
        }
    }

    /// An object of type `ti` as its storage keeps it.
    pub fn from_view(&self, ti: usize, v: Value) -> Value {
        match self.types.get(ti) {
            Some(r) if r.storage.is_some() => resources::from_view(r, &v),
            _ => v,
        }
    }

    /// A stored object parsed, as type `ti` serves it.
    pub fn read(&self, ti: usize, s: &Stored) -> Value {
        self.to_view(ti, s.parse())
    }

    /// A stored object's JSON as type `ti` serves it (the stored bytes unless converted).
    pub fn view_json(&self, ti: usize, s: &Stored) -> Bytes {
        if self.types.get(ti).is_some_and(|r| r.storage.is_some()) {
            Bytes::from(serde_json::to_vec(&self.read(ti, s)).unwrap_or_default())
        } else {
            s.json.clone()
        }
    }

    /// An event's line as a watch of type `ti` sends it.
    pub fn view_line(&self, ti: usize, e: &Event) -> Bytes {
        if self.types.get(ti).is_some_and(|r| r.storage.is_some()) {
            event_line(e.kind, &self.to_view(ti, (*e.object).clone()))
        } else {
            e.line.clone()
        }
    }

    pub fn get(&self, ti: usize, ns: &str, name: &str) -> Option<&Stored> {
        self.objects.get(&self.storage_of(ti))?.get(&(ns.to_string(), name.to_string()))
    }

    /// Objects of a type, optionally in one namespace, in key order, starting after `after`.
    pub fn iter<'a>(
        &'a self,
        ti: usize,
        ns: Option<&'a str>,
        after: Option<&'a Key>,
    ) -> impl Iterator<Item = (&'a Key, &'a Stored)> + 'a {
        self.objects.get(&self.storage_of(ti)).into_iter().flat_map(move |m| {
            use std::ops::Bound;
            // Keys sort by (namespace, name): one namespace is one contiguous range.
            let start = match (after, ns) {
                (Some(k), Some(n)) if k.0.as_str() < n => Bound::Included((n.to_string(), String::new())),
                (Some(k), _) => Bound::Excluded(k.clone()),
                (None, Some(n)) => Bound::Included((n.to_string(), String::new())),
                (None, None) => Bound::Unbounded,
            };
            m.range((start, Bound::Unbounded)).take_while(move |(k, _)| ns.is_none_or(|n| k.0 == n))
        })
    }

    pub fn count(&self, ti: usize) -> usize {
        self.objects.get(&self.storage_of(ti)).map_or(0, BTreeMap::len)
    }

    /// The oldest resourceVersion a watch can resume from (the watch cache's `oldest - 1`).
    pub fn oldest_resumable(&self) -> u64 {
        match self.history.front() {
            Some(e) => (e.rv - 1).max(self.compacted_below),
            None => self.rv,
        }
    }

    /// Events after `rv` (for watches); Err when `rv` is older than the retained history, with
    /// the real message: `too old resource version: 1 (<oldest resumable>)`.
    pub fn history_since(&self, rv: u64) -> Result<Vec<Arc<Event>>, ApiError> {
        let oldest = self.oldest_resumable();
        if rv < oldest {
            return Err(ApiError::new(410, "Expired", format!("too old resource version: {rv} ({oldest})")));
        }
        Ok(self.history.iter().filter(|e| e.rv > rv).cloned().collect())
    }

    /// Forgets history: every watch from an older resourceVersion now gets 410.
    pub fn compact(&mut self) {
        self.compact_to(self.rv);
    }

    /// Compacts to `rv` (as etcd's compaction, which the apiserver runs every 5 minutes): watches
    /// and lists from an older resourceVersion, and continue tokens issued before it, get 410.
    pub fn compact_to(&mut self, rv: u64) {
        self.compacted_below = self.compacted_below.max(rv.min(self.rv));
        while self.history.front().is_some_and(|e| e.rv <= self.compacted_below) {
            self.history.pop_front();
        }
    }

    /// The objects of a type (optionally one namespace) as they were at resourceVersion `at`,
    /// in key order, rolled back from the current state through the history. 410 when `at` is
    /// older than the compaction or than the history still held.
    pub fn snapshot(&self, ti: usize, ns: Option<&str>, at: u64) -> Result<Vec<(Key, Bytes)>, ApiError> {
        let too_old = || ApiError::new(410, "Expired", "The resourceVersion for the provided list is too old.");
        if at < self.compacted_below {
            return Err(too_old());
        }
        let mut state: BTreeMap<Key, Option<Bytes>> =
            self.iter(ti, ns, None).map(|(k, s)| (k.clone(), Some(s.json.clone()))).collect();
        if at >= self.rv {
            return Ok(state.into_iter().filter_map(|(k, v)| Some((k, v?))).collect());
        }
        if self.history.front().is_none_or(|e| e.rv > at + 1) {
            return Err(too_old());
        }
        let st = self.storage_of(ti);
        for ev in self.history.iter().rev().take_while(|e| e.rv > at) {
            if ev.resource != st {
                continue;
            }
            let ev_ns = ev.namespace.clone().unwrap_or_default();
            if ns.is_some_and(|n| n != ev_ns) {
                continue;
            }
            let name = ev.object["metadata"]["name"].as_str().unwrap_or_default().to_string();
            state.insert((ev_ns, name), ev.prev.clone());
        }
        Ok(state.into_iter().filter_map(|(k, v)| Some((k, v?))).collect())
    }

    fn emit(&mut self, ti: usize, kind: &'static str, obj: Arc<Value>, prev: Option<Bytes>) {
        let line = event_line(kind, &obj);
        let ns = obj["metadata"]["namespace"].as_str().map(str::to_string);
        let ev = Arc::new(Event { rv: self.rv, resource: ti, namespace: ns, kind, object: obj, line, prev });
        if self.history.len() == self.history_cap {
            self.history.pop_front();
        }
        self.history.push_back(ev.clone());
        let _ = self.events.send(ev);
    }

    fn next_uid(&mut self) -> String {
        self.uid += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.uid)
    }

    /// Stores `value` (as type `ti` serves it; converted for its storage) and emits the event.
    fn put(&mut self, ti: usize, key: Key, value: Value, kind: &'static str) -> Value {
        let st = self.storage_of(ti);
        let stored_value = if st == ti { value.clone() } else { self.from_view(ti, value.clone()) };
        let stored = Stored::new(&stored_value);
        let prev = self.objects.entry(st).or_default().insert(key, stored).map(|old| old.json);
        let served = if st == ti { value } else { self.to_view(ti, stored_value.clone()) };
        self.emit(st, kind, Arc::new(stored_value), prev);
        served
    }

    fn namespace_state(&self, ns: &str, rt: &ResourceType, name: &str) -> Result<(), ApiError> {
        let Some(nti) = self.type_index("", "v1", "namespaces") else { return Ok(()) };
        match self.get(nti, "", ns) {
            None => Err(ApiError::new(404, "NotFound", format!("namespaces \"{ns}\" not found")).with_details(
                ns,
                "",
                "namespaces",
            )),
            Some(s) if s.index.deleting => {
                let mut e = ApiError::new(
                    403,
                    "Forbidden",
                    format!(
                        "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        rt.qualified()
                    ),
                )
                .with_details(name, &rt.group, &rt.plural);
                e.details["causes"] = json!([{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]);
                Err(e)
            }
            Some(_) => Ok(()),
        }
    }

    /// Drops the fields the kind's schema does not declare; under `fieldValidation=Strict` that
    /// is a 400, under `Warn` (the default) each one is a warning.
    fn unknown_fields(&mut self, rt: &ResourceType, obj: &mut Value, opts: &WriteOpts) -> Result<(), ApiError> {
        use crate::schema::{self, FieldValidation};
        let unknown = schema::prune_unknown(&rt.group, &rt.kind, obj);
        if unknown.is_empty() {
            return Ok(());
        }
        match opts.field_validation {
            FieldValidation::Strict => {
                Err(ApiError::new(400, "BadRequest", schema::strict_message(&rt.kind, &rt.version, &unknown)))
            }
            FieldValidation::Warn => {
                self.warnings.extend(schema::warnings(&unknown));
                Ok(())
            }
            FieldValidation::Ignore => Ok(()),
        }
    }

    /// The Service registry, after field management: drops what a type change makes moot
    /// (dropTypeDependentFields), validates ports, keeps allocated values an update left out
    /// (patchAllocatedValues), allocates clusterIP/clusterIPs, ipFamilies/ipFamilyPolicy and
    /// nodePorts (owned by no manager, as on a real server) and empties status on create.
    fn prepare_service(
        &mut self,
        rt: &ResourceType,
        key: &Key,
        obj: &mut Value,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        let name = key.1.clone();
        if !obj["spec"].is_object() {
            obj["spec"] = json!({});
        }
        let ty = |v: &Value| v["spec"]["type"].as_str().unwrap_or("ClusterIP").to_string();
        let needs_ip = |v: &Value| ty(v) != "ExternalName";
        let needs_np = |v: &Value| {
            let t = ty(v);
            t == "NodePort"
                || (t == "LoadBalancer" && v["spec"]["allocateLoadBalancerNodePorts"].as_bool() != Some(false))
        };
        let needs_hc = |v: &Value| ty(v) == "LoadBalancer" && v["spec"]["externalTrafficPolicy"] == "Local";
        let node_ports = |v: &Value| -> Vec<Option<i64>> {
            v["spec"]["ports"]
                .as_array()
                .map(|ps| ps.iter().map(|p| p["nodePort"].as_i64()).collect())
                .unwrap_or_default()
        };
        let spec_of =
            |v: &Value| -> serde_json::Map<String, Value> { v["spec"].as_object().cloned().unwrap_or_default() };
        if let Some(old) = old {
            let mut spec = spec_of(obj);
            if needs_ip(old) && !needs_ip(obj) {
                if obj["spec"]["clusterIP"] == old["spec"]["clusterIP"]
                    && obj["spec"]["clusterIPs"] == old["spec"]["clusterIPs"]
                {
                    spec.remove("clusterIP");
                    spec.remove("clusterIPs");
                }
                if obj["spec"]["ipFamilies"] == old["spec"]["ipFamilies"] {
                    spec.remove("ipFamilies");
                }
                if obj["spec"]["ipFamilyPolicy"] == old["spec"]["ipFamilyPolicy"] {
                    spec.remove("ipFamilyPolicy");
                }
            }
            if needs_np(old)
                && !needs_np(obj)
                && node_ports(old) == node_ports(obj)
                && let Some(ps) = spec.get_mut("ports").and_then(Value::as_array_mut)
            {
                for p in ps.iter_mut().filter_map(Value::as_object_mut) {
                    p.remove("nodePort");
                }
            }
            if needs_hc(old)
                && !needs_hc(obj)
                && obj["spec"]["healthCheckNodePort"] == old["spec"]["healthCheckNodePort"]
            {
                spec.remove("healthCheckNodePort");
            }
            let external = |v: &Value| {
                let t = ty(v);
                t == "NodePort"
                    || t == "LoadBalancer"
                    || (t == "ClusterIP" && v["spec"]["externalIPs"].as_array().is_some_and(|a| !a.is_empty()))
            };
            if external(old)
                && !external(obj)
                && obj["spec"]["externalTrafficPolicy"] == old["spec"]["externalTrafficPolicy"]
            {
                spec.remove("externalTrafficPolicy");
            }
            if ty(old) == "LoadBalancer"
                && ty(obj) != "LoadBalancer"
                && obj["spec"]["allocateLoadBalancerNodePorts"] == old["spec"]["allocateLoadBalancerNodePorts"]
            {
                spec.remove("allocateLoadBalancerNodePorts");
            }
            obj["spec"] = Value::Object(spec);
        }
        // ValidateService (the part kube-sim models).
        let t = ty(obj);
        let mut causes = Vec::new();
        let ports = obj["spec"]["ports"].as_array().cloned().unwrap_or_default();
        // A headless Service (ClusterIP with clusterIP None) and an ExternalName may have none.
        let headless =
            t == "ClusterIP" && (obj["spec"]["clusterIP"] == "None" || obj["spec"]["clusterIPs"][0] == "None");
        if ports.is_empty() && t != "ExternalName" && !headless {
            causes.push(("spec.ports".to_string(), "Required value".to_string()));
        }
        for (i, p) in ports.iter().enumerate() {
            if ports.len() > 1 && p["name"].as_str().is_none_or(str::is_empty) {
                causes.push((format!("spec.ports[{i}].name"), "Required value".into()));
            }
            match p["port"].as_i64() {
                Some(n) if (1..=65535).contains(&n) => {}
                other => causes.push((
                    format!("spec.ports[{i}].port"),
                    format!("Invalid value: {}: must be between 1 and 65535, inclusive", other.unwrap_or(0)),
                )),
            }
            if matches!(t.as_str(), "ClusterIP" | "ExternalName") && p["nodePort"].as_i64().is_some_and(|n| n != 0) {
                causes.push((
                    format!("spec.ports[{i}].nodePort"),
                    format!("Forbidden: may not be used when `type` is '{t}'"),
                ));
            }
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(rt, &name, causes));
        }
        if let Some(old) = old {
            if needs_ip(old) && needs_ip(obj) {
                for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
                    let missing = match &obj["spec"][f] {
                        Value::Null => true,
                        Value::String(s) => s.is_empty(),
                        Value::Array(a) => a.is_empty(),
                        _ => false,
                    };
                    if missing && !old["spec"][f].is_null() {
                        obj["spec"][f] = old["spec"][f].clone();
                    }
                }
            }
            if needs_np(old) && needs_np(obj) {
                let mine: Vec<i64> = node_ports(obj).into_iter().flatten().collect();
                let used: Vec<i64> = node_ports(old).into_iter().flatten().filter(|n| mine.contains(n)).collect();
                let by_name: HashMap<String, i64> = old["spec"]["ports"]
                    .as_array()
                    .map(|ps| {
                        ps.iter()
                            .filter_map(|p| {
                                Some((p["name"].as_str().unwrap_or_default().to_string(), p["nodePort"].as_i64()?))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if let Some(ps) = obj["spec"]["ports"].as_array_mut() {
                    for p in ps.iter_mut() {
                        if p["nodePort"].as_i64().is_none_or(|n| n == 0)
                            && let Some(n) = by_name.get(p["name"].as_str().unwrap_or_default())
                            && !used.contains(n)
                        {
                            p["nodePort"] = json!(n);
                        }
                    }
                }
            }
            if needs_hc(old) && needs_hc(obj) && obj["spec"]["healthCheckNodePort"].as_i64().is_none_or(|n| n == 0) {
                obj["spec"]["healthCheckNodePort"] = old["spec"]["healthCheckNodePort"].clone();
            }
        }
        let old_ip = old.and_then(|o| o["spec"]["clusterIP"].as_str()).filter(|s| !s.is_empty());
        if let (Some(old_ip), Some(new_ip)) = (old_ip, obj["spec"]["clusterIP"].as_str().filter(|s| !s.is_empty()))
            && old_ip != new_ip
            && needs_ip(obj)
        {
            return Err(ApiError::invalid(
                rt,
                &name,
                vec![(
                    "spec.clusterIPs[0]".into(),
                    format!("Invalid value: []string{{\"{new_ip}\"}}: may not change once set"),
                )],
            ));
        }
        if needs_ip(obj) {
            if obj["spec"]["clusterIP"].as_str().is_none_or(str::is_empty) {
                let ip = match obj["spec"]["clusterIPs"][0].as_str() {
                    Some(ip) => ip.to_string(),
                    None => {
                        self.next_ip += 1;
                        format!("10.96.{}.{}", (self.next_ip >> 8) & 255, self.next_ip & 255)
                    }
                };
                obj["spec"]["clusterIP"] = json!(ip);
            }
            if obj["spec"]["clusterIPs"].as_array().is_none_or(Vec::is_empty) {
                obj["spec"]["clusterIPs"] = json!([obj["spec"]["clusterIP"]]);
            }
            if obj["spec"]["ipFamilies"].as_array().is_none_or(Vec::is_empty) {
                obj["spec"]["ipFamilies"] = json!(["IPv4"]);
            }
            if obj["spec"]["ipFamilyPolicy"].as_str().is_none_or(str::is_empty) {
                let headless_without_selector = obj["spec"]["clusterIP"] == "None"
                    && obj["spec"]["selector"].as_object().is_none_or(|m| m.is_empty());
                obj["spec"]["ipFamilyPolicy"] =
                    json!(if headless_without_selector { "RequireDualStack" } else { "SingleStack" });
            }
        }
        let wants_node_ports = needs_np(obj);
        let mut causes = Vec::new();
        let mut mine: Vec<i64> = Vec::new();
        let check = |this: &Self, field: String, np: i64, mine: &mut Vec<i64>, causes: &mut Vec<(String, String)>| {
            if !(30000..=32767).contains(&np) {
                causes.push((field, format!("Invalid value: {np}: provided port is not in the valid range. The range of valid ports is 30000-32767")));
            } else if this.node_ports.get(&np).is_some_and(|k| k != key) || mine.contains(&np) {
                causes.push((field, format!("Invalid value: {np}: provided port is already allocated")));
            } else {
                mine.push(np);
            }
        };
        let mut ports = obj["spec"]["ports"].as_array().cloned().unwrap_or_default();
        for (i, p) in ports.iter().enumerate() {
            if let Some(np) = p["nodePort"].as_i64().filter(|n| *n != 0) {
                check(self, format!("spec.ports[{i}].nodePort"), np, &mut mine, &mut causes);
            }
        }
        if let Some(np) = obj["spec"]["healthCheckNodePort"].as_i64().filter(|n| *n != 0) {
            check(self, "spec.healthCheckNodePort".into(), np, &mut mine, &mut causes);
        }
        let free = |mine: &mut Vec<i64>| {
            let n = (30000..=32767).find(|n| !self.node_ports.contains_key(n) && !mine.contains(n));
            if let Some(n) = n {
                mine.push(n);
            }
            n
        };
        if wants_node_ports {
            for (i, p) in ports.iter_mut().enumerate() {
                if p["nodePort"].as_i64().is_none_or(|n| n == 0) {
                    match free(&mut mine) {
                        Some(n) => p["nodePort"] = json!(n),
                        None => {
                            causes.push((format!("spec.ports[{i}].nodePort"), "Internal error: range is full".into()))
                        }
                    }
                }
            }
            obj["spec"]["ports"] = Value::Array(ports);
        }
        if needs_hc(obj) && obj["spec"]["healthCheckNodePort"].as_i64().is_none_or(|n| n == 0) {
            match free(&mut mine) {
                Some(n) => obj["spec"]["healthCheckNodePort"] = json!(n),
                None => causes.push(("spec.healthCheckNodePort".into(), "Internal error: range is full".into())),
            }
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(rt, &name, causes));
        }
        self.node_ports.retain(|_, k| k != key);
        for n in mine {
            self.node_ports.insert(n, key.clone());
        }
        if old.is_none() {
            obj["status"] = json!({"loadBalancer": {}});
        }
        Ok(())
    }

    /// Commits a new version of an object (create when `old` is None).
    #[allow(clippy::too_many_arguments)]
    fn commit(
        &mut self,
        ti: usize,
        key: Key,
        old: Option<Arc<Value>>,
        mut new: Value,
        sub: Option<&str>,
        opts: &WriteOpts,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let rt = self.types[ti].clone();
        let now = self.now();
        if !new.is_object() {
            return Err(ApiError::new(400, "BadRequest", "the body of the request was not a JSON object"));
        }
        new["apiVersion"] = json!(rt.api_version());
        new["kind"] = json!(rt.kind);
        if !new["metadata"].is_object() {
            new["metadata"] = json!({});
        }
        if manager != "__apply__" {
            self.unknown_fields(&rt, &mut new, opts)?;
        }
        if let Some(old) = &old {
            let sent_rv = new["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string();
            let cur_rv = old["metadata"]["resourceVersion"].as_str().unwrap_or_default();
            if !sent_rv.is_empty() && sent_rv != cur_rv {
                return Err(ApiError::new(
                    409,
                    "Conflict",
                    format!("Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again", rt.qualified(), key.1),
                )
                .with_details(&key.1, &rt.group, &rt.plural));
            }
            if let (Some(sent), Some(cur)) =
                (new["metadata"]["uid"].as_str().filter(|u| !u.is_empty()), old["metadata"]["uid"].as_str())
                && sent != cur
            {
                return Err(ApiError::invalid(
                    &rt,
                    &key.1,
                    vec![("metadata.uid".into(), format!("Invalid value: \"{sent}\": field is immutable"))],
                ));
            }
            for f in ["uid", "creationTimestamp", "namespace", "name", "deletionTimestamp", "generation"] {
                match old["metadata"].get(f) {
                    Some(v) => new["metadata"][f] = v.clone(),
                    None => {
                        if let Some(m) = new["metadata"].as_object_mut() {
                            m.remove(f);
                        }
                    }
                }
            }
            // Status subresource split.
            if rt.has_status() {
                match sub {
                    Some("status") => {
                        let status = new["status"].clone();
                        let mut kept = (**old).clone();
                        kept["status"] = status;
                        if rt.group == "apps" && rt.kind == "Deployment" {
                            // deploymentStatusStrategy keeps spec and labels only: annotations
                            // change through deployments/status (the deployment controller
                            // writes its revision annotation there).
                            kept["metadata"]["annotations"] = new["metadata"]["annotations"].clone();
                            if kept["metadata"]["annotations"].is_null()
                                && let Some(m) = kept["metadata"].as_object_mut()
                            {
                                m.remove("annotations");
                            }
                        }
                        if let Some(rvv) = new["metadata"].get("resourceVersion").cloned() {
                            kept["metadata"]["resourceVersion"] = rvv;
                        }
                        kept["metadata"]["managedFields"] = new["metadata"]["managedFields"].clone();
                        new = kept;
                    }
                    _ => match old.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            if let Some(m) = new.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    },
                }
            }
            if rt.generation {
                let strip = |v: &Value| {
                    let mut v = v.clone();
                    if let Some(m) = v.as_object_mut() {
                        m.remove("metadata");
                        m.remove("status");
                    }
                    v
                };
                let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
                new["metadata"]["generation"] = json!(if strip(old) != strip(&new) { g + 1 } else { g });
            }
        } else {
            if rt.namespaced {
                new["metadata"]["namespace"] = json!(key.0);
            }
            new["metadata"]["uid"] = json!(self.next_uid());
            new["metadata"]["creationTimestamp"] = json!(now);
            if rt.generation {
                new["metadata"]["generation"] = json!(1);
            }
        }
        new["metadata"]["name"] = json!(key.1);
        if rt.kind == "Namespace" && rt.group.is_empty() {
            // The real server keeps this label on every namespace (since 1.21).
            if !new["metadata"]["labels"].is_object() {
                new["metadata"]["labels"] = json!({});
            }
            new["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(key.1);
        }
        crate::defaults::apply(&rt.kind, &mut new);
        validate(&rt, &new, old.is_some())?;
        if rt.kind == "Event" && sub.is_none() {
            let core = |v: &Value| if rt.storage.is_some() { crate::events::to_core(v) } else { v.clone() };
            let errs =
                crate::events::validate(&core(&new), &key.0, &rt.api_version(), old.as_deref().map(core).as_ref());
            if !errs.is_empty() {
                // Validated as the internal (core) Event: the message names no group.
                return Err(ApiError::invalid_as("Event", &key.1, "", "Event", errs));
            }
        }
        if manager != "__apply__" {
            patch::record_update(old.as_deref(), &mut new, manager, sub, &now);
        }
        // What the registry sets after field management is owned by no manager.
        if rt.kind == "Service" && sub.is_none() {
            self.prepare_service(&rt, &key, &mut new, old.as_deref())?;
        }
        if rt.kind == "Event" && rt.group.is_empty() {
            // What a core/v1 Event always serializes (zero values: owned by nobody).
            crate::events::core_defaults(&mut new);
        }
        if old.is_none() && sub.is_none() {
            // PrepareForCreate empties status; these are the fields it then always serializes.
            let empty = match (rt.group.as_str(), rt.kind.as_str()) {
                ("policy", "PodDisruptionBudget") => {
                    Some(json!({"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}))
                }
                ("apps", "StatefulSet") => Some(json!({"replicas": 0, "availableReplicas": 0})),
                ("apps", "ReplicaSet") | ("", "ReplicationController") => Some(json!({"replicas": 0})),
                ("apps", "DaemonSet") => Some(
                    json!({"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0, "numberReady": 0}),
                ),
                ("apps", "Deployment") | ("batch", "Job" | "CronJob") => Some(json!({})),
                _ => None,
            };
            if let Some(st) = empty {
                new["status"] = st;
            }
        }
        if rt.kind == "Namespace" && old.is_none() {
            // The namespace strategy's PrepareForCreate.
            new["spec"]["finalizers"] = json!(["kubernetes"]);
            new["status"] = json!({"phase": "Active"});
        }
        if let Some(m) = new["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        if old.as_deref().is_some_and(|o| strip_rv(o) == strip_rv(&new)) {
            // A no-op write does not bump the resourceVersion (as the real server).
            return Ok((**old.as_ref().unwrap_or(&Arc::new(Value::Null))).clone());
        }
        if opts.dry_run {
            new["metadata"]["resourceVersion"] = json!(self.rv.to_string());
            return Ok(new);
        }
        self.rv += 1;
        new["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        // A deleted object whose last finalizer went away is gone now.
        if new["metadata"]["deletionTimestamp"].is_string()
            && new["metadata"]["finalizers"].as_array().is_none_or(|f| f.is_empty())
            && rt.kind != "Namespace"
            && !self.terminating_gracefully(&rt, &new)
        {
            self.remove(ti, &key);
            if rt.namespaced {
                self.finish_namespace(&key.0);
            }
            // The answer is what was written (finalizers gone), at the version it replaced.
            new["metadata"]["resourceVersion"] =
                old.as_ref().map_or(Value::Null, |o| o["metadata"]["resourceVersion"].clone());
            return Ok(new);
        }
        Ok(self.put(ti, key, new, if old.is_some() { "MODIFIED" } else { "ADDED" }))
    }

    fn remove(&mut self, ti: usize, key: &Key) -> Value {
        let view = ti;
        let ti = self.storage_of(ti);
        let Some(stored) = self.objects.get_mut(&ti).and_then(|m| m.remove(key)) else { return Value::Null };
        if self.types[ti].kind == "Service" {
            self.node_ports.retain(|_, k| k != key);
        }
        let mut v = stored.parse();
        if v.is_object() {
            v["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        }
        let arc = Arc::new(v.clone());
        self.emit(ti, "DELETED", arc, Some(stored.json.clone()));
        // Garbage-collect dependents (background propagation).
        let uid = stored.index.uid.clone();
        if !uid.is_empty() {
            let dependents: Vec<(usize, Key)> = self
                .objects
                .iter()
                .flat_map(|(t, m)| {
                    m.iter()
                        .filter(|(_, s)| s.index.owner_uids.contains(&uid))
                        .map(|(k, _)| (*t, k.clone()))
                        .collect::<Vec<_>>()
                })
                .collect();
            for (t, k) in dependents {
                self.rv += 1;
                self.remove(t, &k);
            }
        }
        self.to_view(view, v)
    }

    pub fn create(
        &mut self,
        ti: usize,
        ns: &str,
        mut obj: Value,
        opts: &WriteOpts,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let rt = self.types[ti].clone();
        check_shape(&obj)?;
        if obj["metadata"]["name"].as_str().is_none_or(str::is_empty)
            && let Some(prefix) = obj["metadata"]["generateName"].as_str().map(str::to_string)
        {
            self.uid += 1;
            obj["metadata"]["name"] = json!(format!("{prefix}{:05x}", self.uid & 0xfffff));
        }
        let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let key = (if rt.namespaced { ns.to_string() } else { String::new() }, name.clone());
        check_namespace(&rt, ns, &obj)?;
        if rt.namespaced {
            self.namespace_state(ns, &rt, &name)?;
        }
        if self.get(ti, &key.0, &name).is_some() {
            return Err(ApiError::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", rt.qualified()))
                .with_details(&name, &rt.group, &rt.plural));
        }
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        for hook in self.admission.clone() {
            hook(self, &rt, &key.0, &mut obj)?;
        }
        let created = self.commit(ti, key, None, obj, None, opts, manager)?;
        if rt.kind == "CustomResourceDefinition"
            && !opts.dry_run
            && let Some(t) = resources::from_crd(&created)
            && self.type_index(&t.group, &t.version, &t.plural).is_none()
        {
            self.types.push(t);
        }
        Ok(created)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &mut self,
        ti: usize,
        ns: &str,
        name: &str,
        obj: Value,
        sub: Option<&str>,
        opts: &WriteOpts,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let rt = self.types[ti].clone();
        check_shape(&obj)?;
        check_namespace(&rt, ns, &obj)?;
        let key = (if rt.namespaced { ns.to_string() } else { String::new() }, name.to_string());
        let body_name = obj["metadata"]["name"].as_str().unwrap_or(name);
        if body_name != name {
            return Err(ApiError::new(
                400,
                "BadRequest",
                format!("the name of the object ({body_name}) does not match the name on the URL ({name})"),
            ));
        }
        let Some(old) = self.get(ti, &key.0, name).map(|s| Arc::new(self.read(ti, s))) else {
            if rt.create_on_update && sub.is_none() {
                return self.create(ti, ns, obj, opts, manager);
            }
            return Err(ApiError::not_found(&rt, name));
        };
        if !rt.unconditional_update && obj["metadata"]["resourceVersion"].as_str().is_none_or(str::is_empty) {
            // The registry's own check (qualified by resource, not kind).
            return Err(ApiError::invalid_as(
                &rt.qualified(),
                name,
                &rt.group,
                &rt.plural,
                vec![("metadata.resourceVersion".into(), "Invalid value: 0: must be specified for an update".into())],
            ));
        }
        self.commit(ti, key, Some(old), obj, sub, opts, manager)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        ti: usize,
        ns: &str,
        name: &str,
        pt: PatchType,
        body: &Value,
        sub: Option<&str>,
        opts: &WriteOpts,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let rt = self.types[ti].clone();
        let key = (if rt.namespaced { ns.to_string() } else { String::new() }, name.to_string());
        let old = self.get(ti, &key.0, name).map(|s| Arc::new(self.read(ti, s)));
        let to_err = |e: PatchError| match e {
            PatchError::BadRequest(m) if pt == PatchType::Json => {
                ApiError::new(400, "BadRequest", format!("error decoding patch: {m}"))
            }
            PatchError::BadRequest(m) => ApiError::new(400, "BadRequest", m),
            // A JSON patch that fails while applying (a failed `test`, a missing path): the
            // generic 422, without the evanphx text.
            PatchError::Invalid(_) => ApiError::patch_failed(),
            PatchError::Conflict(c) => {
                // Details carry only the causes, one per conflicting field.
                let mut e = ApiError::new(409, "Conflict", patch::conflict_message(&c));
                e.details = json!({"causes": c.iter().map(|c| {
                    let who = if c.api_version.is_empty() { format!("{:?}", c.manager) } else { format!("{:?} using {}", c.manager, c.api_version) };
                    json!({"reason": "FieldManagerConflict", "message": format!("conflict with {who}"), "field": c.field})
                }).collect::<Vec<_>>()});
                e
            }
        };
        if pt != PatchType::Json {
            check_shape(body)?;
        }
        if pt == PatchType::Apply {
            if rt.namespaced && old.is_none() {
                self.namespace_state(ns, &rt, name)?;
            }
            let mut applied = body.clone();
            self.unknown_fields(&rt, &mut applied, opts)?;
            applied["metadata"]["name"] = json!(name);
            let mut new =
                patch::apply(old.as_deref(), &applied, manager, opts.force, &rt.kind, &self.now()).map_err(to_err)?;
            return match old {
                Some(o) => {
                    if let Some(m) = new["metadata"].as_object_mut() {
                        m.remove("resourceVersion");
                    }
                    self.commit(ti, key, Some(o), new, sub, opts, "__apply__")
                }
                None => {
                    if rt.namespaced {
                        new["metadata"]["namespace"] = json!(ns);
                    }
                    self.commit(ti, key, None, new, None, opts, "__apply__")
                }
            };
        }
        let old = old.ok_or_else(|| ApiError::not_found(&rt, name))?;
        let mut new = (*old).clone();
        match pt {
            PatchType::Merge => {
                if !body.is_object() {
                    return Err(ApiError::new(400, "BadRequest", "merge patch must be a JSON object"));
                }
                patch::merge_patch(&mut new, body)
            }
            PatchType::Json => patch::json_patch(&mut new, body).map_err(to_err)?,
            PatchType::Strategic => {
                if !patch::supports_strategic_merge(&rt.kind) {
                    return Err(ApiError::unsupported_media_type());
                }
                patch::strategic_merge_patch(&mut new, body, &rt.kind).map_err(to_err)?
            }
            PatchType::Apply => {}
        }
        // A patch without a resourceVersion applies to whatever is current.
        if body.pointer("/metadata/resourceVersion").is_none() && pt != PatchType::Json {
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        }
        self.commit(ti, key, Some(old), new, sub, opts, manager)
    }

    pub fn delete(&mut self, ti: usize, ns: &str, name: &str, opts: &WriteOpts) -> Result<Value, ApiError> {
        let rt = self.types[ti].clone();
        let key = (if rt.namespaced { ns.to_string() } else { String::new() }, name.to_string());
        let old = self
            .get(ti, &key.0, name)
            .map(|s| Arc::new(self.read(ti, s)))
            .ok_or_else(|| ApiError::not_found(&rt, name))?;
        check_preconditions(&rt, name, &old, &opts.preconditions)?;
        if opts.dry_run {
            return Ok((*old).clone());
        }
        let has_finalizers = old["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
        if rt.kind == "Namespace" {
            return Ok(self.delete_namespace(ti, key, &old));
        }
        if let Some(v) = self.graceful_pod_delete(ti, &key, &old) {
            return Ok(v);
        }
        if has_finalizers {
            if old["metadata"]["deletionTimestamp"].is_string() {
                return Ok((*old).clone());
            }
            let mut v = (*old).clone();
            v["metadata"]["deletionTimestamp"] = json!(self.now());
            v["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            self.rv += 1;
            v["metadata"]["resourceVersion"] = json!(self.rv.to_string());
            return Ok(self.put(ti, key, v, "MODIFIED"));
        }
        if rt.kind == "Pod" && rt.group.is_empty() && !old["metadata"]["deletionTimestamp"].is_string() {
            // The pod strategy deletes gracefully even with a grace period of 0 (its
            // terminationGracePeriodSeconds, not scheduled, finished, or no kubelet actor):
            // the pod is marked (deletionTimestamp now, deletionGracePeriodSeconds 0, a
            // MODIFIED) and then removed; the answer is the marked pod.
            let mut v = (*old).clone();
            v["metadata"]["deletionTimestamp"] = json!(self.now());
            v["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            self.rv += 1;
            v["metadata"]["resourceVersion"] = json!(self.rv.to_string());
            let marked = self.put(ti, key.clone(), v, "MODIFIED");
            self.rv += 1;
            self.remove(ti, &key);
            return Ok(marked);
        }
        self.rv += 1;
        Ok(self.remove(ti, &key))
    }

    /// Terminating, then every object in it, then the namespace itself (the namespace controller's job, done inline).
    fn delete_namespace(&mut self, ti: usize, key: Key, old: &Value) -> Value {
        let mut v = old.clone();
        v["metadata"]["deletionTimestamp"] = json!(self.now());
        v["status"]["phase"] = json!("Terminating");
        self.rv += 1;
        v["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let terminating = self.put(ti, key.clone(), v, "MODIFIED");
        let ns = key.1.clone();
        let contents: Vec<(usize, Key)> = self
            .objects
            .iter()
            .filter(|(t, _)| self.types[**t].namespaced)
            .flat_map(|(t, m)| m.keys().filter(|k| k.0 == ns).map(|k| (*t, k.clone())).collect::<Vec<_>>())
            .collect();
        for (t, k) in contents {
            let Some(obj) = self.objects.get(&t).and_then(|m| m.get(&k)).map(|s| Arc::new(s.parse())) else { continue };
            if obj["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty()) {
                // Held by a finalizer: marked for deletion; the namespace waits for it.
                if !obj["metadata"]["deletionTimestamp"].is_string() {
                    let mut v = (*obj).clone();
                    v["metadata"]["deletionTimestamp"] = json!(self.now());
                    v["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                    self.rv += 1;
                    v["metadata"]["resourceVersion"] = json!(self.rv.to_string());
                    self.put(t, k, v, "MODIFIED");
                }
                continue;
            }
            self.rv += 1;
            self.remove(t, &k);
        }
        self.finish_namespace(&ns);
        terminating
    }

    /// Removes a terminating namespace once nothing is left in it.
    fn finish_namespace(&mut self, ns: &str) {
        let Some(nti) = self.type_index("", "v1", "namespaces") else { return };
        let terminating = self.get(nti, "", ns).is_some_and(|s| s.index.deleting);
        if !terminating {
            return;
        }
        let start = (ns.to_string(), String::new());
        let empty = self
            .objects
            .iter()
            .filter(|(t, _)| self.types[**t].namespaced)
            .all(|(_, m)| m.range(start.clone()..).next().is_none_or(|(k, _)| k.0 != ns));
        if empty {
            self.rv += 1;
            self.remove(nti, &(String::new(), ns.to_string()));
        }
    }

    pub fn list_rv(&self) -> String {
        self.rv.to_string()
    }
}

/// DeleteOptions.preconditions (uid first, then resourceVersion), with the real 409 texts.
fn check_preconditions(rt: &ResourceType, name: &str, obj: &Value, pre: &Preconditions) -> Result<(), ApiError> {
    let meta = &obj["metadata"];
    let conflict = |what: String| {
        let qualified = if rt.group.is_empty() { rt.kind.clone() } else { format!("{}.{}", rt.kind, rt.group) };
        Err(ApiError::new(409, "Conflict", format!("Operation cannot be fulfilled on {qualified} \"{name}\": {what}"))
            .with_details(name, &rt.group, &rt.kind))
    };
    let cur_uid = meta["uid"].as_str().unwrap_or_default();
    if let Some(uid) = pre.uid.as_deref().filter(|u| *u != cur_uid) {
        return conflict(format!(
            "the UID in the precondition ({uid}) does not match the UID in record ({cur_uid}). The object might have been deleted and then recreated"
        ));
    }
    let cur_rv = meta["resourceVersion"].as_str().unwrap_or_default();
    if let Some(rv) = pre.resource_version.as_deref().filter(|r| *r != cur_rv) {
        return conflict(format!(
            "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({cur_rv}). The object might have been modified"
        ));
    }
    Ok(())
}

// === kube-sim actors: graceful pod deletion (the kubelet actor in src/actors/kubelet.rs
// removes the pod when its containers have stopped) ===

impl Store {
    /// A pod of a running kubelet is deleted gracefully: `deletionTimestamp` (now plus the grace
    /// period) and `deletionGracePeriodSeconds` first. None: delete as usual (no kubelet, grace
    /// 0, not scheduled, already finished).
    fn graceful_pod_delete(&mut self, ti: usize, key: &Key, old: &Value) -> Option<Value> {
        let rt = &self.types[ti];
        if !self.controller_hooks.graceful_pods || rt.kind != "Pod" || !rt.group.is_empty() {
            return None;
        }
        if old["metadata"]["deletionTimestamp"].is_string() {
            return Some(old.clone());
        }
        // Defaulted to 30 at create (src/defaults.rs); unset means 0, as in CheckGracefulDelete.
        let grace = old["spec"]["terminationGracePeriodSeconds"].as_i64().unwrap_or(0);
        let scheduled = old["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty());
        let finished = matches!(old["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
        if grace <= 0 || !scheduled || finished {
            return None;
        }
        let now = self.clock.unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
        });
        let mut v = old.clone();
        v["metadata"]["deletionTimestamp"] = json!(rfc3339(now + grace as u64));
        v["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
        self.rv += 1;
        v["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        Some(self.put(ti, key.clone(), v, "MODIFIED"))
    }

    fn terminating_gracefully(&self, rt: &ResourceType, obj: &Value) -> bool {
        self.controller_hooks.graceful_pods
            && rt.kind == "Pod"
            && obj["metadata"]["deletionGracePeriodSeconds"].as_i64().is_some_and(|g| g > 0)
    }

    /// The kubelet's last word on a pod (or pod garbage collection): it goes now, unless a
    /// finalizer holds it (then it is only marked for deletion). True when it went.
    pub fn remove_terminated_pod(&mut self, ti: usize, ns: &str, name: &str) -> bool {
        let key = (ns.to_string(), name.to_string());
        let Some(old) = self.get(ti, ns, name).map(Stored::parse) else { return false };
        if old["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty()) {
            if !old["metadata"]["deletionTimestamp"].is_string() {
                let mut v = old;
                v["metadata"]["deletionTimestamp"] = json!(self.now());
                v["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                self.rv += 1;
                v["metadata"]["resourceVersion"] = json!(self.rv.to_string());
                self.put(ti, key, v, "MODIFIED");
            }
            return false;
        }
        self.rv += 1;
        self.remove(ti, &key);
        self.finish_namespace(ns);
        true
    }
}

/// A namespaced body naming another namespace than the URL is a 400, as in the real server.
fn check_namespace(rt: &ResourceType, ns: &str, obj: &Value) -> Result<(), ApiError> {
    match obj["metadata"]["namespace"].as_str() {
        Some(n) if rt.namespaced && !n.is_empty() && n != ns => Err(ApiError::new(
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => Ok(()),
    }
}

/// A body must be an object whose metadata (if any) is an object: anything else is a 400, never a panic.
fn check_shape(obj: &Value) -> Result<(), ApiError> {
    let bad = |what: &str| {
        Err(ApiError::new(400, "BadRequest", format!("the body of the request could not be decoded: {what}")))
    };
    match obj {
        Value::Object(m) => match m.get("metadata") {
            None | Some(Value::Object(_)) | Some(Value::Null) => {
                for f in ["name", "namespace", "generateName", "resourceVersion", "uid"] {
                    if obj["metadata"].get(f).is_some_and(|v| !v.is_string() && !v.is_null()) {
                        return bad(&format!(
                            "json: cannot unmarshal into Go struct field ObjectMeta.metadata.{f} of type string"
                        ));
                    }
                }
                for f in ["labels", "annotations"] {
                    if obj["metadata"].get(f).is_some_and(|v| !v.is_object() && !v.is_null()) {
                        return bad(&format!(
                            "json: cannot unmarshal into Go struct field ObjectMeta.metadata.{f} of type map[string]string"
                        ));
                    }
                }
                Ok(())
            }
            Some(_) => bad("json: cannot unmarshal into Go struct field of type v1.ObjectMeta"),
        },
        _ => bad("json: cannot unmarshal into Go value of type struct (the body is not an object)"),
    }
}

/// An object without its resourceVersion: a write that changes nothing else (managedFields
/// included, which a client may rewrite on its own) is a no-op.
fn strip_rv(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(store: &mut Store, name: &str) {
        let ti = store.type_index("", "v1", "namespaces").unwrap();
        store.create(ti, "", json!({"metadata": {"name": name}}), &WriteOpts::default(), "test").unwrap();
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_564_800), "2026-11-25T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        for secs in [0, 951_782_400, 1_795_564_800, 1_796_111_079] {
            assert_eq!(parse_rfc3339(&rfc3339(secs)), Some(secs));
        }
        assert_eq!(parse_rfc3339("2026-12-01T07:44:49.354257Z"), parse_rfc3339("2026-12-01T07:44:49Z"));
    }

    #[test]
    fn create_get_conflict_generation_and_status_split() {
        let mut s = Store::new(100);
        ns(&mut s, "a");
        let d = s.type_index("apps", "v1", "deployments").unwrap();
        let o = WriteOpts::default();
        let created = s
            .create(
                d,
                "a",
                json!({"metadata": {"name": "web"}, "spec": {"replicas": 1}, "status": {"replicas": 9}}),
                &o,
                "t",
            )
            .unwrap();
        assert_eq!(created["metadata"]["generation"], 1);
        let rv1 = created["metadata"]["resourceVersion"].as_str().unwrap().to_string();
        let err = s.create(d, "a", json!({"metadata": {"name": "web"}}), &o, "t").unwrap_err();
        assert_eq!((err.code, err.reason), (409, "AlreadyExists"));
        assert_eq!(err.message, "deployments.apps \"web\" already exists");
        let up = s.patch(d, "a", "web", PatchType::Merge, &json!({"spec": {"replicas": 2}}), None, &o, "t").unwrap();
        assert_eq!(up["metadata"]["generation"], 2);
        let up = s
            .patch(d, "a", "web", PatchType::Merge, &json!({"metadata": {"labels": {"x": "y"}}}), None, &o, "t")
            .unwrap();
        assert_eq!(up["metadata"]["generation"], 2, "metadata changes do not bump generation");
        let stale = s
            .patch(
                d,
                "a",
                "web",
                PatchType::Merge,
                &json!({"metadata": {"resourceVersion": rv1}, "spec": {"replicas": 3}}),
                None,
                &o,
                "t",
            )
            .unwrap_err();
        assert_eq!(stale.code, 409);
        assert!(
            stale
                .message
                .starts_with("Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified")
        );
        let st = s
            .patch(
                d,
                "a",
                "web",
                PatchType::Merge,
                &json!({"status": {"availableReplicas": 2}, "spec": {"replicas": 7}}),
                Some("status"),
                &o,
                "t",
            )
            .unwrap();
        assert_eq!((st["status"]["availableReplicas"].as_i64(), st["spec"]["replicas"].as_i64()), (Some(2), Some(2)));
        let main = s
            .patch(d, "a", "web", PatchType::Merge, &json!({"status": {"availableReplicas": 0}}), None, &o, "t")
            .unwrap();
        assert_eq!(main["status"]["availableReplicas"], 2, "the main resource ignores status");
    }

    #[test]
    fn validation_namespace_existence_and_nodeports() {
        let mut s = Store::new(100);
        let o = WriteOpts::default();
        let svc = s.type_index("", "v1", "services").unwrap();
        let err = s.create(svc, "nope", json!({"metadata": {"name": "x"}}), &o, "t").unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (404, "namespaces \"nope\" not found"));
        ns(&mut s, "a");
        let nsi = s.type_index("", "v1", "namespaces").unwrap();
        let err = s
            .patch(nsi, "", "a", PatchType::Merge, &json!({"metadata": {"labels": {"x": "-bad"}}}), None, &o, "t")
            .unwrap_err();
        assert_eq!(err.code, 422);
        assert!(
            err.message.starts_with(
                "Namespace \"a\" is invalid: metadata.labels: Invalid value: \"-bad\": a valid label must be"
            ),
            "{}",
            err.message
        );
        let a = s.create(svc, "a", json!({"metadata": {"name": "gw"}, "spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": 31380}, {"name": "https", "port": 443}]}}), &o, "t").unwrap();
        assert_eq!(a["spec"]["ports"][0]["nodePort"], 31380);
        assert!(a["spec"]["ports"][1]["nodePort"].as_i64().is_some_and(|p| (30000..=32767).contains(&p)));
        let err = s.create(svc, "a", json!({"metadata": {"name": "other"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 31380}]}}), &o, "t").unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(
            err.message,
            "Service \"other\" is invalid: spec.ports[0].nodePort: Invalid value: 31380: provided port is already allocated"
        );
        s.delete(svc, "a", "gw", &o).unwrap();
        assert!(s.create(svc, "a", json!({"metadata": {"name": "other"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 31380}]}}), &o, "t").is_ok(), "released on delete");
    }

    #[test]
    fn snapshots_roll_back_through_history() {
        let mut s = Store::new(100);
        let o = WriteOpts::default();
        ns(&mut s, "a");
        let cm = s.type_index("", "v1", "configmaps").unwrap();
        let names = |snap: Vec<(Key, Bytes)>| snap.into_iter().map(|(k, _)| k.1).collect::<Vec<_>>();
        s.create(cm, "a", json!({"metadata": {"name": "x"}, "data": {"v": "1"}}), &o, "t").unwrap();
        let at = s.rv;
        s.patch(cm, "a", "x", PatchType::Merge, &json!({"data": {"v": "2"}}), None, &o, "t").unwrap();
        s.create(cm, "a", json!({"metadata": {"name": "y"}}), &o, "t").unwrap();
        let snap = s.snapshot(cm, Some("a"), at).unwrap();
        let x: Value = serde_json::from_slice(&snap[0].1).unwrap();
        assert_eq!((x["data"]["v"].as_str(), names(snap)), (Some("1"), vec!["x".to_string()]));
        s.delete(cm, "a", "x", &o).unwrap();
        assert_eq!(names(s.snapshot(cm, None, at).unwrap()), ["x"], "deleted since: still there");
        assert_eq!(names(s.snapshot(cm, Some("a"), s.rv).unwrap()), ["y"]);
        s.compact_to(at + 1);
        assert_eq!(s.snapshot(cm, Some("a"), at).unwrap_err().code, 410);
        // A history ring that lost the events after `at` cannot roll back either.
        let mut small = Store::new(2);
        ns(&mut small, "a");
        let at = small.rv;
        for n in ["p", "q", "r"] {
            small.create(cm, "a", json!({"metadata": {"name": n}}), &o, "t").unwrap();
        }
        assert_eq!(small.snapshot(cm, Some("a"), at).unwrap_err().code, 410);
        assert!(small.snapshot(cm, Some("a"), small.rv - 1).is_ok());
    }

    #[test]
    fn namespace_cascade_gc_finalizers_dry_run_and_history() {
        let mut s = Store::new(3);
        let o = WriteOpts::default();
        ns(&mut s, "a");
        let cm = s.type_index("", "v1", "configmaps").unwrap();
        let dry = s
            .create(
                cm,
                "a",
                json!({"metadata": {"name": "d"}}),
                &WriteOpts { dry_run: true, ..Default::default() },
                "t",
            )
            .unwrap();
        assert_eq!(dry["metadata"]["name"], "d");
        assert!(s.get(cm, "a", "d").is_none(), "dry run stores nothing");
        let owner = s.create(cm, "a", json!({"metadata": {"name": "owner"}}), &o, "t").unwrap();
        let uid = owner["metadata"]["uid"].as_str().unwrap();
        s.create(cm, "a", json!({"metadata": {"name": "child", "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]}}), &o, "t").unwrap();
        s.delete(cm, "a", "owner", &o).unwrap();
        assert!(s.get(cm, "a", "child").is_none(), "dependents are collected");
        s.create(cm, "a", json!({"metadata": {"name": "f", "finalizers": ["x/y"]}}), &o, "t").unwrap();
        s.delete(cm, "a", "f", &o).unwrap();
        assert!(s.get(cm, "a", "f").unwrap().value["metadata"]["deletionTimestamp"].is_string());
        s.patch(cm, "a", "f", PatchType::Merge, &json!({"metadata": {"finalizers": null}}), None, &o, "t").unwrap();
        assert!(s.get(cm, "a", "f").is_none(), "gone with its last finalizer");
        s.create(cm, "a", json!({"metadata": {"name": "z"}}), &o, "t").unwrap();
        let nsi = s.type_index("", "v1", "namespaces").unwrap();
        s.delete(nsi, "", "a", &o).unwrap();
        assert!(s.get(cm, "a", "z").is_none() && s.get(nsi, "", "a").is_none());
        assert_eq!(s.history_since(1).unwrap_err().code, 410, "history holds 3 events");
        assert!(s.history_since(s.rv - 1).is_ok());
        s.compact();
        assert_eq!(s.history_since(s.rv - 1).unwrap_err().code, 410);
    }
}
