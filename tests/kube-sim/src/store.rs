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
        let mut d = json!({"kind": kind});
        if !name.is_empty() {
            d["name"] = json!(name);
        }
        if !group.is_empty() {
            d["group"] = json!(group);
        }
        self.details = d;
        self
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

    fn invalid(rt: &ResourceType, name: &str, causes: Vec<(String, String)>) -> Self {
        let msg = causes.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join(", ");
        let kind = rt.kind.clone();
        let mut e = ApiError::new(422, "Invalid", format!("{kind} \"{name}\" is invalid: {msg}"))
            .with_details(name, &rt.group, &kind);
        e.details["causes"] = Value::Array(
            causes.iter().map(|(f, m)| json!({"reason": "FieldValueInvalid", "message": m, "field": f})).collect(),
        );
        e
    }
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
}

/// Options of a write.
#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    pub dry_run: bool,
    pub field_manager: Option<String>,
    pub force: bool,
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
}

/// Events buffered for in-process subscribers and live watches; one that falls further behind
/// gets `Lagged` (a watch then ends and its client re-lists, as with a real server).
pub const EVENT_BUFFER: usize = 8192;

pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    rfc3339(secs)
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

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && !s.is_empty() && s.split('.').all(is_dns_label)
}

fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn valid_qualified_key(k: &str) -> bool {
    match k.split_once('/') {
        Some((p, n)) => is_dns_subdomain(p) && is_label_name(n),
        None => is_label_name(k),
    }
}

const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const KEY_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// Metadata validation as the API server does it (the subset meshkeeper and kubectl exercise).
fn validate(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let mut causes = Vec::new();
    if !obj["metadata"].is_object() {
        causes.push(("metadata".into(), "Required value".into()));
    }
    let ok_name = if rt.kind == "Namespace" || rt.kind == "Service" {
        is_dns_label(name)
    } else {
        is_dns_subdomain(name) || name.contains(':')
    };
    if name.is_empty() {
        causes.push(("metadata.name".into(), "Required value: name or generateName is required".into()));
    } else if !ok_name {
        causes.push(("metadata.name".into(), format!("Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character")));
    }
    for (field, map) in [("labels", &obj["metadata"]["labels"]), ("annotations", &obj["metadata"]["annotations"])] {
        match map {
            Value::Null => {}
            Value::Object(m) => {
                for (k, v) in m {
                    if !valid_qualified_key(k) {
                        causes.push((format!("metadata.{field}"), format!("Invalid value: \"{k}\": {KEY_MSG}")));
                    }
                    match v.as_str() {
                        Some(s) if field == "labels" && !(s.is_empty() || is_label_name(s)) => causes
                            .push((format!("metadata.{field}"), format!("Invalid value: \"{s}\": {LABEL_VALUE_MSG}"))),
                        Some(_) => {}
                        None => {
                            causes.push((format!("metadata.{field}"), format!("Invalid value: {v}: must be a string")))
                        }
                    }
                }
            }
            other => causes.push((format!("metadata.{field}"), format!("Invalid value: {other}: must be a map"))),
        }
    }
    if causes.is_empty() { Ok(()) } else { Err(ApiError::invalid(rt, name, causes)) }
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
        }
    }

    pub fn type_index(&self, group: &str, version: &str, plural: &str) -> Option<usize> {
        self.types.iter().position(|r| r.group == group && r.version == version && r.plural == plural)
    }

    pub fn type_by_kind(&self, api_version: &str, kind: &str) -> Option<usize> {
        self.types.iter().position(|r| r.api_version() == api_version && r.kind == kind)
    }

    pub fn get(&self, ti: usize, ns: &str, name: &str) -> Option<&Stored> {
        self.objects.get(&ti)?.get(&(ns.to_string(), name.to_string()))
    }

    /// Objects of a type, optionally in one namespace, in key order, starting after `after`.
    pub fn iter<'a>(
        &'a self,
        ti: usize,
        ns: Option<&'a str>,
        after: Option<&'a Key>,
    ) -> impl Iterator<Item = (&'a Key, &'a Stored)> + 'a {
        self.objects.get(&ti).into_iter().flat_map(move |m| {
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
        self.objects.get(&ti).map_or(0, BTreeMap::len)
    }

    /// Events after `rv` (for watches); Err when `rv` is older than the retained history.
    pub fn history_since(&self, rv: u64) -> Result<Vec<Arc<Event>>, ApiError> {
        let oldest = self.history.front().map_or(self.rv, |e| e.rv);
        if rv < self.compacted_below || (rv + 1 < oldest && !self.history.is_empty()) {
            return Err(ApiError::new(
                410,
                "Expired",
                format!("too old resource version: {rv} ({})", oldest.max(self.compacted_below)),
            ));
        }
        Ok(self.history.iter().filter(|e| e.rv > rv).cloned().collect())
    }

    /// Forgets history: every watch from an older resourceVersion now gets 410.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted_below = self.rv;
    }

    fn emit(&mut self, ti: usize, kind: &'static str, obj: Arc<Value>) {
        let line = {
            let mut v = serde_json::to_vec(&json!({"type": kind, "object": &*obj})).unwrap_or_default();
            v.push(b'\n');
            Bytes::from(v)
        };
        let ns = obj["metadata"]["namespace"].as_str().map(str::to_string);
        let ev = Arc::new(Event { rv: self.rv, resource: ti, namespace: ns, kind, object: obj, line });
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

    fn put(&mut self, ti: usize, key: Key, value: Value, kind: &'static str) -> Value {
        let stored = Stored::new(&value);
        self.objects.entry(ti).or_default().insert(key, stored);
        self.emit(ti, kind, Arc::new(value.clone()));
        value
    }

    fn namespace_state(&self, ns: &str, rt: &ResourceType, name: &str) -> Result<(), ApiError> {
        let Some(nti) = self.type_index("", "v1", "namespaces") else { return Ok(()) };
        match self.get(nti, "", ns) {
            None => Err(ApiError::new(404, "NotFound", format!("namespaces \"{ns}\" not found")).with_details(
                ns,
                "",
                "namespaces",
            )),
            Some(s) if s.index.deleting => Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    rt.qualified()
                ),
            )
            .with_details(name, &rt.group, &rt.plural)),
            Some(_) => Ok(()),
        }
    }

    /// Allocates clusterIP and nodePorts of a Service; rejects a nodePort held by another.
    fn allocate_service(
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
        let old_ip = old.and_then(|o| o["spec"]["clusterIP"].as_str()).filter(|s| !s.is_empty());
        if let (Some(old_ip), Some(new_ip)) = (old_ip, obj["spec"]["clusterIP"].as_str().filter(|s| !s.is_empty()))
            && old_ip != new_ip
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
        if obj["spec"]["clusterIP"].as_str().is_none_or(str::is_empty) {
            let ip = old.and_then(|o| o["spec"]["clusterIP"].as_str().map(str::to_string)).unwrap_or_else(|| {
                self.next_ip += 1;
                format!("10.96.{}.{}", (self.next_ip >> 8) & 255, self.next_ip & 255)
            });
            obj["spec"]["clusterIP"] = json!(ip);
        }
        let ty = obj["spec"]["type"].as_str().unwrap_or("ClusterIP").to_string();
        let wants_node_ports = ty == "NodePort" || ty == "LoadBalancer";
        let mut causes = Vec::new();
        let mut mine: Vec<i64> = Vec::new();
        if let Some(ports) = obj["spec"]["ports"].as_array_mut() {
            for (i, p) in ports.iter_mut().enumerate() {
                if !wants_node_ports {
                    if let Some(m) = p.as_object_mut() {
                        m.remove("nodePort");
                    }
                    continue;
                }
                match p["nodePort"].as_i64() {
                    Some(np) if !(30000..=32767).contains(&np) => causes.push((
                        format!("spec.ports[{i}].nodePort"),
                        format!("Invalid value: {np}: provided port is not in the valid range. The range of valid ports is 30000-32767"),
                    )),
                    Some(np) if self.node_ports.get(&np).is_some_and(|k| k != key) || mine.contains(&np) => {
                        causes.push((format!("spec.ports[{i}].nodePort"), format!("Invalid value: {np}: provided port is already allocated")))
                    }
                    Some(np) => mine.push(np),
                    None => {
                        let free = (30000..=32767).find(|n| !self.node_ports.contains_key(n) && !mine.contains(n));
                        match free {
                            Some(n) => {
                                p["nodePort"] = json!(n);
                                mine.push(n);
                            }
                            None => causes.push((format!("spec.ports[{i}].nodePort"), "Internal error: range is full".into())),
                        }
                    }
                }
            }
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(rt, &name, causes));
        }
        self.node_ports.retain(|_, k| k != key);
        for n in mine {
            self.node_ports.insert(n, key.clone());
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
        let now = now_rfc3339();
        if !new.is_object() {
            return Err(ApiError::new(400, "BadRequest", "the body of the request was not a JSON object"));
        }
        new["apiVersion"] = json!(rt.api_version());
        new["kind"] = json!(rt.kind);
        if !new["metadata"].is_object() {
            new["metadata"] = json!({});
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
            if rt.kind == "Namespace" {
                new["spec"]["finalizers"] = json!(["kubernetes"]);
                new["status"] = json!({"phase": "Active"});
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
        validate(&rt, &new)?;
        if rt.kind == "Service" {
            self.allocate_service(&rt, &key, &mut new, old.as_deref())?;
        }
        if manager != "__apply__" {
            patch::record_update(old.as_deref(), &mut new, manager, sub, &now);
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
            let gone = self.remove(ti, &key);
            if rt.namespaced {
                self.finish_namespace(&key.0);
            }
            return Ok(gone);
        }
        Ok(self.put(ti, key, new, if old.is_some() { "MODIFIED" } else { "ADDED" }))
    }

    fn remove(&mut self, ti: usize, key: &Key) -> Value {
        let Some(stored) = self.objects.get_mut(&ti).and_then(|m| m.remove(key)) else { return Value::Null };
        if self.types[ti].kind == "Service" {
            self.node_ports.retain(|_, k| k != key);
        }
        let mut v = stored.parse();
        if v.is_object() {
            v["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        }
        let arc = Arc::new(v.clone());
        self.emit(ti, "DELETED", arc);
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
        v
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
        let old =
            self.get(ti, &key.0, name).map(|s| Arc::new(s.parse())).ok_or_else(|| ApiError::not_found(&rt, name))?;
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
        let old = self.get(ti, &key.0, name).map(|s| Arc::new(s.parse()));
        let to_err = |e: PatchError| match e {
            PatchError::BadRequest(m) => ApiError::new(400, "BadRequest", m),
            PatchError::Invalid(m) => ApiError::new(
                422,
                "Invalid",
                format!("the server rejected our request due to an error in our request: {m}"),
            ),
            PatchError::Conflict(c) => {
                ApiError::new(409, "Conflict", patch::conflict_message(&c)).with_details(name, &rt.group, &rt.plural)
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
            applied["metadata"]["name"] = json!(name);
            let mut new = patch::apply(old.as_deref(), &applied, manager, opts.force, &rt.kind, &now_rfc3339())
                .map_err(to_err)?;
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
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                    ));
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
        let old =
            self.get(ti, &key.0, name).map(|s| Arc::new(s.parse())).ok_or_else(|| ApiError::not_found(&rt, name))?;
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
            v["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            self.rv += 1;
            v["metadata"]["resourceVersion"] = json!(self.rv.to_string());
            return Ok(self.put(ti, key, v, "MODIFIED"));
        }
        self.rv += 1;
        Ok(self.remove(ti, &key))
    }

    /// Terminating, then every object in it, then the namespace itself (the namespace controller's job, done inline).
    fn delete_namespace(&mut self, ti: usize, key: Key, old: &Value) -> Value {
        let mut v = old.clone();
        v["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
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
                    v["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
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
        let grace = old["spec"]["terminationGracePeriodSeconds"].as_i64().unwrap_or(30);
        let scheduled = old["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty());
        let finished = matches!(old["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
        if grace <= 0 || !scheduled || finished {
            return None;
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
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
                v["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
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

fn strip_rv(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v["metadata"].as_object_mut() {
        m.remove("resourceVersion");
        m.remove("managedFields");
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
        let a = s.create(svc, "a", json!({"metadata": {"name": "gw"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 31380}, {"port": 443}]}}), &o, "t").unwrap();
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
