//! Patch algorithms of the Kubernetes API server, over plain JSON values: JSON merge patch
//! (RFC 7386), JSON patch (RFC 6902), strategic merge patch, and server-side apply with
//! `metadata.managedFields` (FieldsV1). Only `serde_json` and `std` are used.
//!
//! Where this is simpler than the real server:
//! - JSON patch: a document the server cannot decode into its `[]handlers.jsonPatchOp` (not an
//!   array, an operation that is not an object, an `op`/`path`/`from` that is not a string) is
//!   a [`PatchError::BadRequest`] with Go's unmarshal message; everything else that fails (a
//!   failed `test`, missing paths, an unknown or missing `op`, a missing `value`/`from`, a
//!   malformed pointer) is noticed while applying: [`PatchError::Invalid`], which the server
//!   answers with the generic 422. The texts follow evanphx/json-patch v4, e.g.
//!   `testing value /metadata/labels/a failed: test failed`. There is no limit on the number of
//!   operations (the real one is 10000). Like evanphx, `test` of an absent member against
//!   `null` succeeds.
//! - strategic merge knows the merge keys of the fields meshkeeper and kubectl touch (see
//!   [`merge_key`]), not the whole OpenAPI schema; every other list is replaced.
//!   `$setElementOrder` reorders the listed items among the positions they occupy and leaves
//!   server-only items where they are (the real server interleaves them by original index).
//!   `$retainKeys` drops the keys not listed; it does not check that the patch only sets listed keys.
//! - server-side apply treats lists with those merge keys as associative (container and
//!   Service `ports` keyed by port and protocol, defaulting protocol to `TCP`), `finalizers` as
//!   a set, and every other list as atomic; it does not validate the applied object against a
//!   schema, does not convert between API versions, and does not create the
//!   `before-first-apply` manager for objects that have no managedFields. `status` is tracked
//!   only for writes to the `status` subresource (as if every kind had one), and
//!   `metadata.deletionTimestamp`/`deletionGracePeriodSeconds` are never tracked; the other
//!   untracked fields are exactly the real strip set (apiVersion, kind, metadata name,
//!   namespace, creationTimestamp, selfLink, uid, clusterName, generation, managedFields,
//!   resourceVersion).
//! - a field removed from an applied configuration is removed only if no other manager owns it;
//!   an associative-list item the applier no longer lists is removed whole when nobody else owns
//!   anything in it. Update entries record the `.` markers of the maps, lists and items they
//!   created, judged against a hand-written zero-value skeleton per kind ([`in_skeleton`]) rather
//!   than the schema; atomic fields are the selectors and object references ([`atomic`]).
//! - [`FieldConflict`] has no subresource, so conflict messages never say `with subresource`.
//! - as the real field manager: entries are sorted (operation, time, manager, apiVersion,
//!   subresource); managedFields a client rewrites in an update become the base; an apply that
//!   changes nothing leaves its entry's time alone; `kubectl` server-side applies keep a
//!   client-side `last-applied-configuration` annotation in step and may take over the fields
//!   it lists (the lastAppliedUpdater/lastAppliedManager pair). Update managers are not capped
//!   at 10 (no `ancient-changes` entry).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use serde_json::{Map, Value, json};

/// A field owned by another manager that an apply would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldConflict {
    pub manager: String,
    /// The apiVersion the other manager used when its entry is an `Update`; empty when it is an
    /// `Apply` entry (the real server leaves it out of appliers' identities and messages).
    pub api_version: String,
    /// As Kubernetes prints it, e.g. `.spec.ports[port=80,protocol="TCP"].nodePort`.
    pub field: String,
}

/// Why a patch could not be applied; the server maps each to a Status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchError {
    /// Malformed patch document (400).
    BadRequest(String),
    /// Well formed but not applicable, e.g. a failed JSON-patch `test` (422).
    Invalid(String),
    /// Server-side apply touched fields owned by other managers (409).
    Conflict(Vec<FieldConflict>),
}

// === merge patch (RFC 7386) ===

/// RFC 7386: objects merge recursively, `null` deletes, everything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

// === JSON patch (RFC 6902) ===

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Add,
    Remove,
    Replace,
    Move,
    Copy,
    Test,
}

impl OpKind {
    fn name(self) -> &'static str {
        match self {
            OpKind::Add => "add",
            OpKind::Remove => "remove",
            OpKind::Replace => "replace",
            OpKind::Move => "move",
            OpKind::Copy => "copy",
            OpKind::Test => "test",
        }
    }
}

struct Pointer {
    text: String,
    tokens: Vec<String>,
}

struct Op {
    kind: OpKind,
    path: Pointer,
    from: Option<Pointer>,
    value: Option<Value>,
}

/// Go's word for a JSON value's type in `json: cannot unmarshal ...` messages.
fn go_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// RFC 6901: `""` is the whole document, otherwise `/`-separated tokens with `~1` = `/`, `~0` = `~`.
fn parse_pointer(text: &str) -> Result<Pointer, PatchError> {
    let bad = || PatchError::BadRequest(format!("invalid JSON pointer {text:?}"));
    if text.is_empty() {
        return Ok(Pointer { text: String::new(), tokens: Vec::new() });
    }
    let rest = text.strip_prefix('/').ok_or_else(bad)?;
    let mut tokens = Vec::new();
    for raw in rest.split('/') {
        let mut tok = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '~' {
                match chars.next() {
                    Some('0') => tok.push('~'),
                    Some('1') => tok.push('/'),
                    _ => return Err(bad()),
                }
            } else {
                tok.push(c);
            }
        }
        tokens.push(tok);
    }
    Ok(Pointer { text: text.to_string(), tokens })
}

fn parse_op(raw: &Value) -> Result<Op, PatchError> {
    let Value::Object(m) = raw else {
        return Err(PatchError::BadRequest(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
            go_kind(raw)
        )));
    };
    let kind = match m.get("op") {
        Some(Value::String(s)) => match s.as_str() {
            "add" => OpKind::Add,
            "remove" => OpKind::Remove,
            "replace" => OpKind::Replace,
            "move" => OpKind::Move,
            "copy" => OpKind::Copy,
            "test" => OpKind::Test,
            other => return Err(PatchError::BadRequest(format!("Unexpected kind: {other}"))),
        },
        _ => return Err(PatchError::BadRequest("Unexpected kind: unknown".into())),
    };
    let pointer_field = |name: &str| -> Result<Pointer, PatchError> {
        match m.get(name) {
            Some(Value::String(s)) => parse_pointer(s),
            _ => Err(PatchError::BadRequest(format!("{} operation, missing {name} field: missing value", kind.name()))),
        }
    };
    let path = pointer_field("path")?;
    let from = match kind {
        OpKind::Move | OpKind::Copy => Some(pointer_field("from")?),
        _ => None,
    };
    let value = match kind {
        OpKind::Add | OpKind::Replace | OpKind::Test => Some(m.get("value").cloned().ok_or_else(|| {
            PatchError::BadRequest(format!("{} operation, missing value field: missing value", kind.name()))
        })?),
        _ => None,
    };
    Ok(Op { kind, path, from, value })
}

/// An array index token: digits without leading zeros.
fn array_index(tok: &str) -> Option<usize> {
    if tok.is_empty() || !tok.bytes().all(|b| b.is_ascii_digit()) || (tok.len() > 1 && tok.starts_with('0')) {
        return None;
    }
    tok.parse().ok()
}

fn pointer_get<'a>(doc: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    tokens.iter().try_fold(doc, |cur, tok| match cur {
        Value::Object(m) => m.get(tok),
        Value::Array(a) => a.get(array_index(tok)?),
        _ => None,
    })
}

fn pointer_get_mut<'a>(doc: &'a mut Value, tokens: &[String]) -> Option<&'a mut Value> {
    tokens.iter().try_fold(doc, |cur, tok| match cur {
        Value::Object(m) => m.get_mut(tok),
        Value::Array(a) => a.get_mut(array_index(tok)?),
        _ => None,
    })
}

/// JSON equality as RFC 6902 `test` defines it (numbers compare by value).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || (x.as_f64().is_some() && x.as_f64() == y.as_f64()),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn invalid_index(tok: &str) -> String {
    format!("Unable to access invalid index: {tok}: invalid index referenced")
}

/// Adds `value` at `ptr`; `Ok(false)` when the parent container does not exist.
fn add_at(doc: &mut Value, ptr: &Pointer, value: Value) -> Result<bool, String> {
    let Some((last, init)) = ptr.tokens.split_last() else {
        *doc = value;
        return Ok(true);
    };
    match pointer_get_mut(doc, init) {
        Some(Value::Object(m)) => {
            m.insert(last.clone(), value);
            Ok(true)
        }
        Some(Value::Array(a)) => {
            if last == "-" {
                a.push(value);
                return Ok(true);
            }
            match array_index(last) {
                Some(i) if i <= a.len() => {
                    a.insert(i, value);
                    Ok(true)
                }
                _ => Err(invalid_index(last)),
            }
        }
        _ => Ok(false),
    }
}

fn remove_at(doc: &mut Value, ptr: &Pointer) -> Result<Value, String> {
    let path = &ptr.text;
    let missing = || format!("remove operation does not apply: doc is missing path: \"{path}\": missing value");
    let Some((last, init)) = ptr.tokens.split_last() else {
        return Err(missing());
    };
    match pointer_get_mut(doc, init) {
        Some(Value::Object(m)) => m.remove(last).ok_or_else(|| {
            format!("error in remove for path: '{path}': Unable to remove nonexistent key: {last}: missing value")
        }),
        Some(Value::Array(a)) => match array_index(last) {
            Some(i) if i < a.len() => Ok(a.remove(i)),
            _ => Err(format!(
                "error in remove for path: '{path}': Unable to remove invalid index: {last}: invalid index referenced"
            )),
        },
        _ => Err(missing()),
    }
}

fn apply_op(doc: &mut Value, op: Op) -> Result<(), String> {
    let path = op.path.text.as_str();
    let value = op.value.unwrap_or(Value::Null);
    match op.kind {
        OpKind::Add => {
            if add_at(doc, &op.path, value)? {
                Ok(())
            } else {
                Err(format!("add operation does not apply: doc is missing path: \"{path}\": missing value"))
            }
        }
        OpKind::Remove => remove_at(doc, &op.path).map(drop),
        OpKind::Replace => {
            let Some((last, init)) = op.path.tokens.split_last() else {
                *doc = value;
                return Ok(());
            };
            let slot = match pointer_get_mut(doc, init) {
                Some(Value::Object(m)) => m.get_mut(last),
                Some(Value::Array(a)) => match array_index(last) {
                    Some(i) if i < a.len() => a.get_mut(i),
                    _ => return Err(invalid_index(last)),
                },
                _ => {
                    return Err(format!(
                        "replace operation does not apply: doc is missing path: {path}: missing value"
                    ));
                }
            };
            match slot {
                Some(s) => {
                    *s = value;
                    Ok(())
                }
                None => Err(format!("replace operation does not apply: doc is missing key: {path}: missing value")),
            }
        }
        OpKind::Move | OpKind::Copy => {
            let from = op.from.unwrap_or(Pointer { text: String::new(), tokens: Vec::new() });
            let name = op.kind.name();
            let val = pointer_get(doc, &from.tokens).cloned().ok_or_else(|| {
                format!("{name} operation does not apply: doc is missing from path: {}: missing value", from.text)
            })?;
            if op.kind == OpKind::Move {
                if from.tokens == op.path.tokens {
                    return Ok(());
                }
                remove_at(doc, &from)?;
            }
            if add_at(doc, &op.path, val)? {
                Ok(())
            } else {
                Err(format!("{name} operation does not apply: doc is missing destination path: {path}: missing value"))
            }
        }
        OpKind::Test => {
            let found = match op.path.tokens.split_last() {
                None => Some(&*doc),
                Some((last, init)) => match pointer_get(doc, init) {
                    Some(Value::Object(m)) => m.get(last),
                    Some(Value::Array(a)) => match array_index(last) {
                        Some(i) if i < a.len() => a.get(i),
                        _ => return Err(invalid_index(last)),
                    },
                    _ => return Err(format!("test operation does not apply: is missing path: {path}: missing value")),
                },
            };
            // evanphx/json-patch: an absent member equals `null`.
            let ok = found.map_or(value.is_null(), |f| json_eq(f, &value));
            if ok { Ok(()) } else { Err(format!("testing value {path} failed: test failed")) }
        }
    }
}

/// RFC 6902, atomically: on any error `target` is unchanged.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let ops: &[Value] = match patch {
        Value::Array(ops) => ops,
        // Go decodes `null` into an empty patch.
        Value::Null => &[],
        other => {
            return Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type []handlers.jsonPatchOp",
                go_kind(other)
            )));
        }
    };
    // What the server's decoding into `[]handlers.jsonPatchOp` rejects (400) ...
    for raw in ops {
        match raw {
            Value::Object(m) => {
                for f in ["op", "path", "from"] {
                    if let Some(v) = m.get(f).filter(|v| !v.is_string() && !v.is_null()) {
                        return Err(PatchError::BadRequest(format!(
                            "json: cannot unmarshal {} into Go struct field jsonPatchOp.{f} of type string",
                            go_kind(v)
                        )));
                    }
                }
            }
            Value::Null => {}
            other => {
                return Err(PatchError::BadRequest(format!(
                    "json: cannot unmarshal {} into Go value of type handlers.jsonPatchOp",
                    go_kind(other)
                )));
            }
        }
    }
    // ... and what only applying finds (422).
    let parsed = ops.iter().map(parse_op).collect::<Result<Vec<_>, _>>().map_err(|e| match e {
        PatchError::BadRequest(m) => PatchError::Invalid(m),
        other => other,
    })?;
    let mut work = target.clone();
    for op in parsed {
        apply_op(&mut work, op).map_err(PatchError::Invalid)?;
    }
    *target = work;
    Ok(())
}

// === strategic merge patch ===

/// Built-in kinds (strategic merge patch is not supported for custom resources).
pub fn supports_strategic_merge(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace"
            | "Pod"
            | "Service"
            | "Endpoints"
            | "Node"
            | "ConfigMap"
            | "Secret"
            | "ServiceAccount"
            | "Event"
            | "Deployment"
            | "ReplicaSet"
            | "StatefulSet"
            | "DaemonSet"
            | "Job"
            | "PodDisruptionBudget"
            | "MutatingWebhookConfiguration"
            | "Lease"
            | "Role"
            | "ClusterRole"
            | "RoleBinding"
            | "ClusterRoleBinding"
            | "CustomResourceDefinition"
            | "Scale"
    )
}

const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// The merge key of a list field, given its parent field (the enclosing map's field, or for a
/// list item the list's field) and the object's kind.
pub fn merge_key(field: &str, parent: Option<&str>, kind: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "webhooks"
        | "schedulingGates"
        | "resourceClaims" => "name",
        "secrets" if kind == "ServiceAccount" => "name",
        "ports" if parent.is_some_and(|p| CONTAINER_LISTS.contains(&p)) => "containerPort",
        "ports" if parent == Some("spec") && kind == "Service" => "port",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" => "type",
        "addresses" if kind == "Node" => "type",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        _ => return None,
    })
}

/// Lists merged as sets of primitives.
fn is_primitive_set(field: &str) -> bool {
    field == "finalizers"
}

fn directive(v: &Value) -> Option<&str> {
    v.get("$patch").and_then(Value::as_str)
}

/// Strategic merge patch of a built-in kind; atomic (on error `target` is unchanged).
pub fn strategic_merge_patch(target: &mut Value, patch: &Value, kind: &str) -> Result<(), PatchError> {
    if !patch.is_object() {
        return Err(PatchError::BadRequest("strategic merge patch must be a JSON object".into()));
    }
    let mut work = target.clone();
    smp_object(&mut work, patch, None, kind)?;
    *target = work;
    Ok(())
}

fn smp_object(target: &mut Value, patch: &Value, field: Option<&str>, kind: &str) -> Result<(), PatchError> {
    let Value::Object(p) = patch else {
        return Err(PatchError::BadRequest(format!("expected an object, got {patch}")));
    };
    match directive(patch) {
        Some("replace") => {
            let mut m = p.clone();
            m.remove("$patch");
            *target = Value::Object(m);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Object(Map::new());
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => {
            return Err(PatchError::BadRequest(format!("Unknown patch type: {other} in map: {patch}")));
        }
    }
    if p.get("$patch").is_some_and(|d| !d.is_string()) {
        return Err(PatchError::BadRequest(format!("invalid $patch directive in {patch}")));
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else { return Ok(()) };
    let mut orders = Vec::new();
    for (k, pv) in p {
        if k == "$patch" || k == "$retainKeys" {
            continue;
        }
        if let Some(list) = k.strip_prefix("$setElementOrder/") {
            let Value::Array(order) = pv else {
                return Err(PatchError::BadRequest(format!("invalid type for {k}: expected a list")));
            };
            orders.push((list, order));
            continue;
        }
        if let Some(list) = k.strip_prefix("$deleteFromPrimitiveList/") {
            let Value::Array(del) = pv else {
                return Err(PatchError::BadRequest(format!("invalid type for {k}: expected a list")));
            };
            if let Some(Value::Array(items)) = t.get_mut(list) {
                items.retain(|i| !del.contains(i));
            }
            continue;
        }
        match pv {
            Value::Null => {
                t.remove(k);
            }
            Value::Object(_) if directive(pv) == Some("delete") => {
                t.remove(k);
            }
            Value::Object(_) => smp_object(t.entry(k.clone()).or_insert(Value::Null), pv, Some(k), kind)?,
            Value::Array(items) => {
                let slot = t.entry(k.clone()).or_insert(Value::Array(vec![]));
                smp_list(slot, items, k, field, kind)?;
            }
            scalar => {
                t.insert(k.clone(), scalar.clone());
            }
        }
    }
    for (list, order) in orders {
        if let Some(Value::Array(items)) = t.get_mut(list) {
            let mk = merge_key(list, field, kind);
            set_element_order(items, order, mk);
        }
    }
    if let Some(retain) = p.get("$retainKeys") {
        let keys: Option<BTreeSet<&str>> = retain.as_array().and_then(|a| a.iter().map(Value::as_str).collect());
        let Some(keys) = keys else {
            return Err(PatchError::BadRequest(format!("$retainKeys must be a list of strings, got {retain}")));
        };
        t.retain(|k, _| keys.contains(k.as_str()));
    }
    Ok(())
}

/// Reorders the items named by `order` among the positions they occupy; other items stay put.
fn set_element_order(items: &mut [Value], order: &[Value], mk: Option<&str>) {
    let rank = |item: &Value| -> Option<usize> {
        order.iter().position(|o| match mk {
            Some(k) => item.get(k).is_some_and(|v| o.get(k) == Some(v)),
            None => o == item,
        })
    };
    let slots: Vec<usize> = (0..items.len()).filter(|&i| rank(&items[i]).is_some()).collect();
    let mut listed: Vec<Value> = slots.iter().map(|&i| items[i].clone()).collect();
    listed.sort_by_key(|v| rank(v).unwrap_or(usize::MAX));
    for (slot, v) in slots.into_iter().zip(listed) {
        items[slot] = v;
    }
}

fn smp_list(
    target: &mut Value,
    items: &[Value],
    field: &str,
    parent: Option<&str>,
    kind: &str,
) -> Result<(), PatchError> {
    if is_primitive_set(field) {
        let mut cur = target.as_array().cloned().unwrap_or_default();
        for i in items {
            if !cur.contains(i) {
                cur.push(i.clone());
            }
        }
        *target = Value::Array(cur);
        return Ok(());
    }
    let Some(mk) = merge_key(field, parent, kind) else {
        *target = Value::Array(items.to_vec());
        return Ok(());
    };
    if items.iter().any(|i| directive(i) == Some("replace")) {
        *target = Value::Array(items.iter().filter(|i| i.get("$patch").is_none()).cloned().collect());
        return Ok(());
    }
    let mut cur = target.as_array().cloned().unwrap_or_default();
    for item in items {
        let key = item
            .get(mk)
            .ok_or_else(|| PatchError::BadRequest(format!("map: {item} does not contain declared merge key: {mk}")))?;
        let pos = cur.iter().position(|c| c.get(mk) == Some(key));
        if directive(item) == Some("delete") {
            if let Some(i) = pos {
                cur.remove(i);
            }
            continue;
        }
        match pos {
            Some(i) => smp_object(&mut cur[i], item, Some(field), kind)?,
            None => {
                let mut fresh = Value::Object(Map::new());
                smp_object(&mut fresh, item, Some(field), kind)?;
                cur.push(fresh);
            }
        }
    }
    *target = Value::Array(cur);
    Ok(())
}

// === managed fields ===

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Seg {
    Field(String),
    /// The JSON of the key object, e.g. `{"port":80,"protocol":"TCP"}`.
    Key(String),
    /// The JSON of a set member, e.g. `"example.com/finalizer"`.
    Value(String),
    /// A FieldsV1 key this module does not interpret (e.g. `i:0`), kept verbatim.
    Raw(String),
}

type Path = Vec<Seg>;

/// Fields never tracked in managedFields (the real server's strip set, plus what we don't model).
fn untracked(path: &[Seg], track_status: bool) -> bool {
    match path {
        [Seg::Field(f)] => matches!(f.as_str(), "apiVersion" | "kind") || (f == "status" && !track_status),
        [Seg::Field(m), Seg::Field(f), ..] if m == "metadata" => matches!(
            f.as_str(),
            "name"
                | "namespace"
                | "uid"
                | "resourceVersion"
                | "generation"
                | "creationTimestamp"
                | "managedFields"
                | "selfLink"
                | "clusterName"
                | "deletionTimestamp"
                | "deletionGracePeriodSeconds"
        ),
        _ => false,
    }
}

/// The key fields of an associative-list item, sorted, e.g. `{"port":80,"protocol":"TCP"}`.
fn key_of(item: &Value, mk: &str, field: &str) -> Option<String> {
    let k = item.get(mk)?;
    let mut m = Map::new();
    m.insert(mk.to_string(), k.clone());
    if field == "ports" {
        m.insert("protocol".into(), item.get("protocol").cloned().unwrap_or_else(|| json!("TCP")));
    }
    Some(Value::Object(m).to_string())
}

/// The field names that make up an item's key.
fn key_fields(key: &str) -> Vec<String> {
    serde_json::from_str::<Map<String, Value>>(key).map(|m| m.keys().cloned().collect()).unwrap_or_default()
}

/// The list field a path ends in and its parent field, skipping keys (as strategic merge sees them).
fn list_context(path: &[Seg]) -> (Option<&str>, Option<&str>) {
    let mut names = path.iter().rev().filter_map(|s| match s {
        Seg::Field(f) => Some(f.as_str()),
        _ => None,
    });
    let field = match path.last() {
        Some(Seg::Field(f)) => Some(f.as_str()),
        _ => None,
    };
    if field.is_some() {
        names.next();
    }
    (field, names.next())
}

/// Fields the schema marks atomic (`x-kubernetes-map-type: atomic`, or structs owned whole):
/// label selectors, Service selectors and object references. One leaf, however deep.
fn atomic(field: &str) -> bool {
    matches!(
        field,
        "selector"
            | "labelSelector"
            | "namespaceSelector"
            | "objectSelector"
            | "regarding"
            | "related"
            | "involvedObject"
    )
}

/// The marker of a map, list or list item a write created (FieldsV1 `"."`).
fn marker() -> Seg {
    Seg::Raw(".".into())
}

/// Paths that exist in the zero value of a kind (non-pointer structs and non-omitempty fields):
/// writing into them creates nothing, so an Update records no `"."` for them. `*` is any item.
fn in_skeleton(kind: &str, path: &[Seg]) -> bool {
    let names: Vec<&str> = path
        .iter()
        .map(|s| match s {
            Seg::Field(f) => f.as_str(),
            _ => "*",
        })
        .collect();
    let pod_spec = |p: &[&str]| {
        matches!(
            p,
            ["spec"]
                | ["spec", "containers"]
                | ["spec", "containers" | "initContainers" | "ephemeralContainers", "*", "resources"]
        )
    };
    let template = |p: &[&str]| match p {
        ["metadata"] => true,
        _ => pod_spec(p),
    };
    let n = names.as_slice();
    if n == ["metadata"] {
        return true;
    }
    match kind {
        "Pod" => pod_spec(n) || n == ["status"],
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job" | "ReplicationController" => match n {
            ["spec"] | ["status"] => true,
            ["spec", "strategy"] => kind == "Deployment",
            ["spec", "updateStrategy"] => kind == "StatefulSet" || kind == "DaemonSet",
            ["spec", "template", rest @ ..] => rest.is_empty() || template(rest),
            _ => false,
        },
        "PodTemplate" => matches!(n, ["template", rest @ ..] if rest.is_empty() || template(rest)),
        "Service" => matches!(n, ["spec"] | ["status"] | ["status", "loadBalancer"]),
        "Node" => matches!(
            n,
            ["spec"]
                | ["status"]
                | ["status", "daemonEndpoints"]
                | ["status", "daemonEndpoints", "kubeletEndpoint"]
                | ["status", "nodeInfo"]
        ),
        "CustomResourceDefinition" => {
            matches!(n, ["spec"] | ["spec", "names"] | ["status"] | ["status", "acceptedNames"])
        }
        "Event" => matches!(n, ["involvedObject"] | ["source"] | ["regarding"] | ["deprecatedSource"]),
        "Role" | "ClusterRole" => n == ["rules"],
        "RoleBinding" | "ClusterRoleBinding" => n == ["roleRef"],
        "Namespace" | "PodDisruptionBudget" | "SelfSubjectAccessReview" | "SelfSubjectRulesReview" => {
            matches!(n, ["spec"] | ["status"])
        }
        "Lease" => n == ["spec"],
        _ => false,
    }
}

struct Walk<'a> {
    kind: &'a str,
    track_status: bool,
}

impl Walk<'_> {
    /// Every leaf path of an object, with keyed lists associative and finalizers a set.
    fn leaves(&self, v: &Value, path: &mut Path, out: &mut BTreeMap<Path, Value>) {
        if untracked(path, self.track_status) {
            return;
        }
        if let Some(Seg::Field(f)) = path.last()
            && atomic(f)
        {
            out.insert(path.clone(), v.clone());
            return;
        }
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, c) in m {
                    path.push(Seg::Field(k.clone()));
                    self.leaves(c, path, out);
                    path.pop();
                }
            }
            Value::Array(items) if !items.is_empty() => {
                let (field, parent) = list_context(path);
                let field = field.unwrap_or_default();
                if is_primitive_set(field) && items.iter().all(|i| !i.is_object() && !i.is_array()) {
                    for i in items {
                        path.push(Seg::Value(i.to_string()));
                        out.insert(path.clone(), i.clone());
                        path.pop();
                    }
                    return;
                }
                let keys: Option<Vec<String>> = merge_key(field, parent, self.kind)
                    .and_then(|mk| items.iter().map(|i| key_of(i, mk, field)).collect());
                let Some(keys) = keys.filter(|k| k.iter().collect::<BTreeSet<_>>().len() == k.len()) else {
                    out.insert(path.clone(), v.clone());
                    return;
                };
                for (item, k) in items.iter().zip(keys) {
                    path.push(Seg::Key(k));
                    self.leaves(item, path, out);
                    path.pop();
                }
            }
            _ => {
                out.insert(path.clone(), v.clone());
            }
        }
    }

    fn all(&self, v: &Value) -> BTreeMap<Path, Value> {
        let mut out = BTreeMap::new();
        self.leaves(v, &mut Vec::new(), &mut out);
        out
    }

    /// The `"."` markers of the maps, lists and list items present in `new` but not in `old`
    /// (an Update owns what it created), outside the kind's zero-value skeleton.
    fn created(&self, new: &Value, old: Option<&Value>, path: &mut Path, out: &mut Vec<Path>) {
        if untracked(path, self.track_status) {
            return;
        }
        if let Some(Seg::Field(f)) = path.last()
            && atomic(f)
        {
            return;
        }
        let old = old.filter(|o| !o.is_null());
        let non_empty = match new {
            Value::Object(m) => !m.is_empty(),
            Value::Array(a) => !a.is_empty(),
            _ => false,
        };
        if !non_empty {
            return;
        }
        if !path.is_empty() && old.is_none() && !in_skeleton(self.kind, path) {
            // Only maps, lists with set or key semantics, and their items carry a marker.
            let keyed_or_set = match new {
                Value::Array(items) => {
                    let (field, parent) = list_context(path);
                    let field = field.unwrap_or_default();
                    is_primitive_set(field)
                        || merge_key(field, parent, self.kind)
                            .is_some_and(|mk| items.iter().all(|i| key_of(i, mk, field).is_some()))
                }
                _ => true,
            };
            if keyed_or_set {
                let mut p = path.clone();
                p.push(marker());
                out.push(p);
            }
        }
        match new {
            Value::Object(m) => {
                for (k, c) in m {
                    path.push(Seg::Field(k.clone()));
                    self.created(c, old.and_then(|o| o.get(k)), path, out);
                    path.pop();
                }
            }
            Value::Array(items) => {
                let (field, parent) = list_context(path);
                let (field, parent) = (field.unwrap_or_default().to_string(), parent.map(str::to_string));
                let Some(mk) = merge_key(&field, parent.as_deref(), self.kind) else { return };
                let old_items = old.and_then(Value::as_array);
                for item in items {
                    let Some(k) = key_of(item, mk, &field) else { continue };
                    let before =
                        old_items.and_then(|o| o.iter().find(|i| key_of(i, mk, &field).as_deref() == Some(k.as_str())));
                    path.push(Seg::Key(k));
                    self.created(item, before, path, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }
}

/// The node at `path` in `obj` (fields, keyed items, set members), if present.
fn node_at<'a>(obj: &'a Value, path: &[Seg], kind: &str) -> Option<&'a Value> {
    let mut cur = obj;
    for (i, seg) in path.iter().enumerate() {
        cur = match (seg, cur) {
            (Seg::Field(f), Value::Object(m)) => m.get(f)?,
            (Seg::Key(k), Value::Array(items)) => {
                let (field, parent) = list_context(&path[..i]);
                let field = field?;
                let mk = merge_key(field, parent, kind)?;
                items.iter().find(|it| key_of(it, mk, field).as_deref() == Some(k.as_str()))?
            }
            (Seg::Value(v), Value::Array(items)) => {
                let member: Value = serde_json::from_str(v).ok()?;
                items.iter().find(|it| **it == member)?
            }
            _ => return None,
        };
    }
    Some(cur)
}

fn fv1_key(s: &Seg) -> String {
    match s {
        Seg::Field(f) => format!("f:{f}"),
        Seg::Key(k) => format!("k:{k}"),
        Seg::Value(v) => format!("v:{v}"),
        Seg::Raw(r) => r.clone(),
    }
}

fn to_fields_v1(paths: &[Path]) -> Value {
    let mut root = Map::new();
    for p in paths {
        let mut cur = &mut root;
        for seg in p {
            let slot = cur.entry(fv1_key(seg)).or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            let Value::Object(next) = slot else { break };
            cur = next;
        }
    }
    Value::Object(root)
}

fn from_fields_v1(v: &Value, prefix: &mut Path, out: &mut Vec<Path>) {
    let Value::Object(m) = v else { return };
    let children: Vec<(&String, &Value)> = m.iter().filter(|(k, _)| k.as_str() != ".").collect();
    if m.contains_key(".") && !prefix.is_empty() {
        let mut p = prefix.clone();
        p.push(marker());
        out.push(p);
    }
    if children.is_empty() && !prefix.is_empty() {
        if !m.contains_key(".") {
            out.push(prefix.clone());
        }
        return;
    }
    for (k, c) in children {
        let seg = if let Some(f) = k.strip_prefix("f:") {
            Seg::Field(f.to_string())
        } else if let Some(key) = k.strip_prefix("k:") {
            Seg::Key(key.to_string())
        } else if let Some(val) = k.strip_prefix("v:") {
            Seg::Value(val.to_string())
        } else {
            Seg::Raw(k.clone())
        };
        prefix.push(seg);
        from_fields_v1(c, prefix, out);
        prefix.pop();
    }
}

/// Kubernetes' rendering of a field path: `.spec.ports[port=80,protocol="TCP"].nodePort`,
/// `.metadata.finalizers[="x"]`.
fn render(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            Seg::Key(k) => {
                let parts: Vec<String> = serde_json::from_str::<Map<String, Value>>(k)
                    .map(|m| m.iter().map(|(a, b)| format!("{a}={b}")).collect())
                    .unwrap_or_else(|_| vec![k.clone()]);
                s.push('[');
                s.push_str(&parts.join(","));
                s.push(']');
            }
            Seg::Value(v) => {
                s.push_str("[=");
                s.push_str(v);
                s.push(']');
            }
            Seg::Raw(r) => {
                s.push('.');
                s.push_str(r);
            }
        }
    }
    s
}

#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    subresource: Option<String>,
    time: Option<Value>,
    paths: Vec<Path>,
}

impl Entry {
    fn is_apply_of(&self, manager: &str) -> bool {
        self.manager == manager && self.operation == "Apply"
    }
}

fn read_entries(obj: &Value) -> Vec<Entry> {
    let Some(list) = obj.get("metadata").and_then(|m| m.get("managedFields")).and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter(|e| e.is_object())
        .map(|e| {
            let mut paths = Vec::new();
            if let Some(f) = e.get("fieldsV1") {
                from_fields_v1(f, &mut Vec::new(), &mut paths);
            }
            let text = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
            Entry {
                manager: text("manager").unwrap_or_default(),
                operation: text("operation").unwrap_or_else(|| "Update".into()),
                api_version: text("apiVersion").unwrap_or_default(),
                subresource: text("subresource"),
                time: e.get("time").cloned(),
                paths,
            }
        })
        .collect()
}

/// The real server's order of managedFields entries: by operation (Apply before Update), then
/// time (none first), manager, apiVersion and subresource.
fn sorted(entries: &[Entry]) -> Vec<&Entry> {
    let mut v: Vec<&Entry> = entries.iter().collect();
    v.sort_by(|a, b| {
        let t = |e: &Entry| e.time.as_ref().and_then(Value::as_str).map(|t| t.get(..19).unwrap_or(t).to_string());
        (&a.operation, t(a), &a.manager, &a.api_version, &a.subresource).cmp(&(
            &b.operation,
            t(b),
            &b.manager,
            &b.api_version,
            &b.subresource,
        ))
    });
    v
}

fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = sorted(entries)
        .into_iter()
        .filter(|e| !e.paths.is_empty())
        .map(|e| {
            let mut m = Map::new();
            m.insert("manager".into(), json!(e.manager));
            m.insert("operation".into(), json!(e.operation));
            m.insert("apiVersion".into(), json!(e.api_version));
            if let Some(t) = &e.time {
                m.insert("time".into(), t.clone());
            }
            m.insert("fieldsType".into(), json!("FieldsV1"));
            m.insert("fieldsV1".into(), to_fields_v1(&e.paths));
            if let Some(s) = &e.subresource {
                m.insert("subresource".into(), json!(s));
            }
            Value::Object(m)
        })
        .collect();
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            m.remove("managedFields");
        } else {
            m.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// One path is a prefix of the other.
fn covers(a: &[Seg], b: &[Seg]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// The paths of `set` that are `p`, a prefix of `p` or an extension of `p`.
fn related<'a, V>(set: &'a BTreeMap<Path, V>, p: &'a [Seg]) -> impl Iterator<Item = (&'a Path, &'a V)> + 'a {
    let prefixes = (0..p.len()).filter_map(move |n| set.get_key_value(&p[..n]));
    let extensions =
        set.range::<[Seg], _>((Bound::Included(p), Bound::Unbounded)).take_while(move |(q, _)| q.starts_with(p));
    prefixes.chain(extensions)
}

/// How the real server names a manager in a conflict: `"kubectl"` for an applier,
/// `"kube-controller-manager" using apps/v1` for an updater.
fn print_manager(manager: &str, api_version: &str) -> String {
    if api_version.is_empty() { format!("{manager:?}") } else { format!("{manager:?} using {api_version}") }
}

/// The real server's 409 message for apply conflicts, e.g.
/// `Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas`;
/// with several, managers sorted, each followed by its fields as `- .path` lines.
pub fn conflict_message(conflicts: &[FieldConflict]) -> String {
    if let [c] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            print_manager(&c.manager, &c.api_version),
            c.field
        );
    }
    let mut groups: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for c in conflicts {
        groups.entry((&c.manager, &c.api_version)).or_default().push(&c.field);
    }
    let mut lines = Vec::new();
    for ((m, v), fields) in groups {
        lines.push(format!("conflicts with {}:", print_manager(m, v)));
        lines.extend(fields.iter().map(|f| format!("- {f}")));
    }
    format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
}

/// Server-side apply. Returns the new object with managedFields updated.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    kind: &str,
    now: &str,
) -> Result<Value, PatchError> {
    if !applied.is_object() {
        return Err(PatchError::BadRequest("the applied configuration must be an object".into()));
    }
    let walk = Walk { kind, track_status: false };
    let api_version = applied.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_string();
    let applied_leaves = walk.all(applied);
    let base = match live {
        Some(v) if v.is_object() => v.clone(),
        _ => json!({"metadata": {}}),
    };
    let mut result = base.clone();
    strategic_merge_patch(&mut result, &strip_meta(applied), kind)?;
    let mut entries = read_entries(&base);
    let live_leaves = walk.all(&base);

    // Conflicts: a field this apply sets to a different value that another manager owns.
    let mut conflicts = Vec::new();
    let mut taken: Vec<(usize, Path)> = Vec::new();
    for (p, v) in &applied_leaves {
        let differs = live_leaves.get(p).is_some_and(|lv| !json_eq(lv, v))
            || related(&live_leaves, p)
                .any(|(lp, lv)| lp != p && !applied_leaves.get(lp).is_some_and(|a| json_eq(a, lv)));
        if !differs {
            continue;
        }
        for (i, e) in entries.iter().enumerate().filter(|(_, e)| !e.is_apply_of(manager)) {
            for o in e.paths.iter().filter(|o| covers(o, p)) {
                taken.push((i, o.clone()));
                conflicts.push(FieldConflict {
                    manager: e.manager.clone(),
                    api_version: if e.operation == "Apply" { String::new() } else { e.api_version.clone() },
                    field: render(p),
                });
            }
        }
    }
    conflicts.sort_by(|a, b| (&a.manager, &a.api_version).cmp(&(&b.manager, &b.api_version)));
    conflicts.dedup();
    // kubectl's server-side apply over a client-side applied object: conflicts on fields the
    // last-applied configuration set to their live values are allowed (the server's
    // lastAppliedManager), so the upgrade goes through.
    if !conflicts.is_empty() && !force && manager == "kubectl" {
        let allowed = last_applied_fields(&base, &live_leaves, &walk);
        if conflicts.iter().all(|c| allowed.contains(&c.field)) {
            return apply(live, applied, manager, true, kind, now);
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(PatchError::Conflict(conflicts));
    }
    // Forced: the conflicting fields leave their other owners.
    for (i, o) in &taken {
        if let Some(e) = entries.get_mut(*i) {
            e.paths.retain(|x| x != o);
        }
    }

    // Fields this manager applied before and no longer lists: removed unless someone else owns them.
    let previous: Vec<Path> = entries.iter().filter(|e| e.is_apply_of(manager)).flat_map(|e| e.paths.clone()).collect();
    let others: BTreeMap<Path, ()> = entries
        .iter()
        .filter(|e| !e.is_apply_of(manager))
        .flat_map(|e| e.paths.iter().map(|p| (p.clone(), ())))
        .collect();
    let still_wanted = |p: &[Seg]| related(&applied_leaves, p).next().is_some() || related(&others, p).next().is_some();
    for p in &previous {
        if still_wanted(p) {
            continue;
        }
        // A whole associative-list item nobody wants any more goes away with its key.
        let item = (1..=p.len()).find(|&n| matches!(p[n - 1], Seg::Key(_)) && !still_wanted(&p[..n]));
        if let Some(n) = item {
            remove_path(&mut result, &p[..n], kind);
            continue;
        }
        // The key fields of an item that stays are kept.
        if let [.., Seg::Key(k), Seg::Field(f)] = p.as_slice()
            && key_fields(k).contains(f)
        {
            continue;
        }
        remove_path(&mut result, p, kind);
    }

    // Ownership: this manager's Apply entry is exactly what it applied, with the list items it
    // applied marked (FieldsV1 `"."`).
    let mut mine: Vec<Path> = applied_leaves.keys().cloned().collect();
    let items: BTreeSet<Path> = mine
        .iter()
        .flat_map(|p| {
            (1..p.len()).filter(|&n| matches!(p[n - 1], Seg::Key(_))).map(|n| {
                let mut m = p[..n].to_vec();
                m.push(marker());
                m
            })
        })
        .collect();
    mine.extend(items);
    // The entry's time moves only when the apply changed the object (the real
    // managedFieldsUpdater): a new applier of values already there gets an entry without one.
    let prior_time = entries.iter().find(|e| e.is_apply_of(manager)).and_then(|e| e.time.clone());
    entries.retain(|e| !e.is_apply_of(manager));
    entries.push(Entry {
        manager: manager.into(),
        operation: "Apply".into(),
        api_version,
        subresource: None,
        time: if result == base { prior_time } else { Some(json!(now)) },
        paths: mine,
    });
    write_entries(&mut result, &entries);
    // The server keeps a client-side apply annotation in step with kubectl's server-side applies
    // (lastAppliedUpdater): owned by nobody new.
    if manager == "kubectl"
        && let Some(annotations) = result.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut)
        && annotations.contains_key(LAST_APPLIED)
    {
        annotations.insert(LAST_APPLIED.into(), json!(build_last_applied(applied)));
    }
    Ok(result)
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The applied configuration without the annotation itself, as compact JSON with a newline
/// (how `runtime.Encode` writes it).
fn build_last_applied(applied: &Value) -> String {
    let mut v = applied.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut)
        && let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut)
    {
        a.remove(LAST_APPLIED);
        if a.is_empty() {
            meta.remove("annotations");
        }
    }
    format!("{v}\n")
}

/// The rendered paths of the fields the live object's last-applied configuration sets to the
/// values they have now.
fn last_applied_fields(live: &Value, live_leaves: &BTreeMap<Path, Value>, walk: &Walk) -> BTreeSet<String> {
    let Some(text) = live.pointer("/metadata/annotations").and_then(|a| a.get(LAST_APPLIED)).and_then(Value::as_str)
    else {
        return BTreeSet::new();
    };
    let Ok(last) = serde_json::from_str::<Value>(text) else { return BTreeSet::new() };
    walk.all(&last)
        .into_iter()
        .filter(|(p, v)| live_leaves.get(p).is_some_and(|l| json_eq(l, v)))
        .map(|(p, _)| render(&p))
        .collect()
}

/// The applied object without metadata the server owns.
fn strip_meta(applied: &Value) -> Value {
    let mut v = applied.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in ["managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink"] {
            m.remove(k);
        }
    }
    v
}

/// Removes the field, keyed item or set member at `path`, if present.
fn remove_path(obj: &mut Value, path: &[Seg], kind: &str) {
    let Some((last, init)) = path.split_last() else { return };
    let mut cur = obj;
    for (i, seg) in init.iter().enumerate() {
        cur = match (seg, cur) {
            (Seg::Field(f), Value::Object(m)) => match m.get_mut(f) {
                Some(c) => c,
                None => return,
            },
            (Seg::Key(k), Value::Array(items)) => match find_item(items, &path[..i], k, kind) {
                Some(c) => c,
                None => return,
            },
            _ => return,
        };
    }
    match (last, cur) {
        (Seg::Field(f), Value::Object(m)) => {
            m.remove(f);
        }
        (Seg::Key(k), Value::Array(items)) => {
            let (field, parent) = list_context(init);
            let field = field.unwrap_or_default();
            if let Some(mk) = merge_key(field, parent, kind) {
                items.retain(|it| key_of(it, mk, field).as_deref() != Some(k.as_str()));
            }
        }
        (Seg::Value(v), Value::Array(items)) => {
            let member: Option<Value> = serde_json::from_str(v).ok();
            items.retain(|it| Some(it) != member.as_ref());
        }
        _ => {}
    }
}

fn find_item<'a>(items: &'a mut [Value], list_path: &[Seg], key: &str, kind: &str) -> Option<&'a mut Value> {
    let (field, parent) = list_context(list_path);
    let field = field?;
    let mk = merge_key(field, parent, kind)?;
    items.iter_mut().find(|it| key_of(it, mk, field).as_deref() == Some(key))
}

/// Records a non-apply write by `manager` (operation `Update`): it takes ownership of every
/// field it set or changed, away from other managers; fields it removed leave every manager.
pub fn record_update(old: Option<&Value>, new: &mut Value, manager: &str, subresource: Option<&str>, now: &str) {
    let kind = new.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
    let api_version = new.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_string();
    let walk = Walk { kind: &kind, track_status: subresource == Some("status") };
    let before = old.map(|o| walk.all(o)).unwrap_or_default();
    let after = walk.all(new);
    // An empty struct where every object of the kind has one (`spec: {}`) is its zero value:
    // writing it changes nothing.
    let zero = |p: &Path, v: &Value| {
        v.as_object().is_some_and(Map::is_empty) && !p.iter().any(|s| matches!(s, Seg::Key(_))) && in_skeleton(&kind, p)
    };
    let changed: Vec<Path> = after
        .iter()
        .filter(|(p, v)| !before.get(*p).is_some_and(|b| json_eq(b, v)) && !zero(p, v))
        .map(|(p, _)| p.clone())
        .collect();
    // Leaves that are gone and were not replaced by deeper ones.
    let removed: Vec<&Path> = before.keys().filter(|p| related(&after, p).all(|(q, _)| !q.starts_with(p))).collect();
    let changed_set: BTreeMap<Path, ()> = changed.iter().map(|p| (p.clone(), ())).collect();
    // managedFields the client set (kubectl's migration from client-side apply rewrites them
    // with a JSON patch) replace the stored ones as the base; not on subresources.
    let sent = &new["metadata"]["managedFields"];
    let client_set = subresource.is_none()
        && sent.as_array().is_some_and(|a| !a.is_empty())
        && old.is_none_or(|o| &o["metadata"]["managedFields"] != sent);
    let mut entries = if client_set { read_entries(new) } else { old.map(read_entries).unwrap_or_default() };
    if client_set && entries.iter().all(|e| e.paths.is_empty()) {
        entries = old.map(read_entries).unwrap_or_default();
    }
    if changed.is_empty() && removed.is_empty() {
        write_entries(new, &entries);
        return;
    }
    let mut created = Vec::new();
    walk.created(new, old, &mut Vec::new(), &mut created);
    // Markers of nodes that are gone now leave every manager.
    for e in entries.iter_mut() {
        e.paths.retain(|p| match p.split_last() {
            Some((Seg::Raw(m), node)) if m == "." => node_at(new, node, &kind).is_some(),
            _ => true,
        });
    }
    let changed: Vec<Path> = changed.into_iter().chain(created).collect();
    let sub = subresource.map(str::to_string);
    let is_mine = |e: &Entry| e.manager == manager && e.operation == "Update" && e.subresource == sub;
    for e in entries.iter_mut() {
        e.paths.retain(|o| !removed.iter().any(|r| o.starts_with(r)));
        if !is_mine(e) {
            e.paths.retain(|o| related(&changed_set, o).next().is_none());
        }
    }
    match entries.iter_mut().find(|e| is_mine(e)) {
        Some(e) => {
            for p in changed {
                if !e.paths.contains(&p) {
                    e.paths.push(p);
                }
            }
            e.api_version = api_version;
            e.time = Some(json!(now));
        }
        None => entries.push(Entry {
            manager: manager.into(),
            operation: "Update".into(),
            api_version,
            subresource: sub,
            time: Some(json!(now)),
            paths: changed,
        }),
    }
    write_entries(new, &entries);
}

/// One step of a queried field path; a key matches when its pairs are a subset of the owned key's.
#[derive(Debug)]
enum QuerySeg {
    Field(String),
    Key(Map<String, Value>),
    Value(Value),
}

/// Parses `.spec.ports[port=80,protocol="TCP"].nodePort` or `.metadata.finalizers[="x"]`.
fn parse_query(s: &str) -> Option<Vec<QuerySeg>> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            out.push(QuerySeg::Field(r[..end].to_string()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            // Find the closing bracket outside JSON strings.
            let (mut in_str, mut esc, mut close) = (false, false, None);
            for (i, c) in r.char_indices() {
                match c {
                    _ if esc => esc = false,
                    '\\' if in_str => esc = true,
                    '"' => in_str = !in_str,
                    ']' if !in_str => {
                        close = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let close = close?;
            let inner = &r[..close];
            rest = &r[close + 1..];
            if let Some(v) = inner.strip_prefix('=') {
                out.push(QuerySeg::Value(serde_json::from_str(v).ok()?));
                continue;
            }
            let mut key = Map::new();
            for part in split_outside_strings(inner) {
                let (k, v) = part.split_once('=')?;
                key.insert(k.to_string(), serde_json::from_str(v).ok()?);
            }
            out.push(QuerySeg::Key(key));
        } else {
            return None;
        }
    }
    Some(out)
}

fn split_outside_strings(s: &str) -> Vec<&str> {
    let (mut parts, mut start, mut in_str, mut esc) = (Vec::new(), 0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if esc => esc = false,
            '\\' if in_str => esc = true,
            '"' => in_str = !in_str,
            ',' if !in_str => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn seg_matches(q: &QuerySeg, s: &Seg) -> bool {
    match (q, s) {
        (QuerySeg::Field(a), Seg::Field(b)) => a == b,
        (QuerySeg::Key(want), Seg::Key(k)) => serde_json::from_str::<Map<String, Value>>(k)
            .is_ok_and(|have| want.iter().all(|(a, v)| have.get(a).is_some_and(|h| json_eq(h, v)))),
        (QuerySeg::Value(want), Seg::Value(v)) => serde_json::from_str::<Value>(v).is_ok_and(|h| json_eq(&h, want)),
        _ => false,
    }
}

/// Managers owning a field as Kubernetes renders it (e.g. `.spec.replicas`,
/// `.spec.ports[port=80,protocol="TCP"].nodePort`; key pairs may be left out, so
/// `.spec.ports[port=80].nodePort` also matches). Owning a prefix (an atomic list, a whole
/// item) counts as owning the field. Each manager is listed once, in managedFields order.
pub fn managers_of(obj: &Value, field: &str) -> Vec<String> {
    let Some(query) = parse_query(field) else { return Vec::new() };
    let mut out: Vec<String> = Vec::new();
    for e in read_entries(obj) {
        let owns = e
            .paths
            .iter()
            .any(|p| !p.is_empty() && p.len() <= query.len() && p.iter().zip(&query).all(|(s, q)| seg_matches(q, s)));
        if owns && !out.contains(&e.manager) {
            out.push(e.manager);
        }
    }
    out
}

#[cfg(test)]
mod tests;
