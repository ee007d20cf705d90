//! Patch algorithms of the Kubernetes API server, over plain JSON values: JSON merge patch
//! (RFC 7386), JSON patch (RFC 6902), strategic merge patch, and server-side apply with
//! `metadata.managedFields` (FieldsV1).
//!
//! Where this is simpler than the real server:
//! - strategic merge knows the merge keys of the fields meshkeeper and kubectl touch
//!   (containers, ports, env, volumes, volumeMounts, conditions, imagePullSecrets,
//!   ownerReferences, finalizers), not the whole OpenAPI schema; unknown lists are replaced;
//! - server-side apply treats lists with those keys as associative and every other list as
//!   atomic; it does not validate the applied object against a schema; ownership of
//!   `metadata.labels`/`annotations` entries is per key as in the real server;
//! - a field removed from an applied configuration is removed only if no other manager owns it.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// A field owned by another manager that an apply would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldConflict {
    pub manager: String,
    /// The apiVersion the other manager used.
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

pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let ops: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| PatchError::BadRequest(e.to_string()))?;
    let mut work = target.clone();
    json_patch::patch(&mut work, &ops).map_err(|e| PatchError::Invalid(e.to_string()))?;
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
    )
}

/// The merge key of a list field, given its parent field and the object's kind.
pub fn merge_key(field: &str, parent: Option<&str>, kind: &str) -> Option<&'static str> {
    Some(match field {
        "containers" | "initContainers" | "ephemeralContainers" | "env" | "volumes" | "imagePullSecrets" => "name",
        "ports" if kind == "Service" && parent == Some("spec") => "port",
        "ports" => "containerPort",
        "volumeMounts" => "mountPath",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        _ => return None,
    })
}

fn is_primitive_set(field: &str) -> bool {
    field == "finalizers"
}

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
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut v = patch.clone();
            if let Value::Object(m) = &mut v {
                m.remove("$patch");
            }
            *target = v;
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Object(Map::new());
            return Ok(());
        }
        Some(other) if other != "merge" => {
            return Err(PatchError::BadRequest(format!("unknown patch directive {other:?}")));
        }
        _ => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else { return Ok(()) };
    for (k, pv) in p {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(list) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Some(del)) = (t.get_mut(list), pv.as_array()) {
                items.retain(|i| !del.contains(i));
            }
            continue;
        }
        match pv {
            Value::Null => {
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
    Ok(())
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
    if items.iter().any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace")) {
        *target = Value::Array(items.iter().filter(|i| i.get("$patch").is_none()).cloned().collect());
        return Ok(());
    }
    let mut cur = target.as_array().cloned().unwrap_or_default();
    for item in items {
        let key = item
            .get(mk)
            .ok_or_else(|| PatchError::BadRequest(format!("map: {item} does not contain declared merge key: {mk}")))?;
        let pos = cur.iter().position(|c| c.get(mk) == Some(key));
        if item.get("$patch").and_then(Value::as_str) == Some("delete") {
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
}

type Path = Vec<Seg>;

/// Fields never tracked in managedFields.
fn untracked(path: &[Seg]) -> bool {
    match path {
        [Seg::Field(f)] => matches!(f.as_str(), "apiVersion" | "kind" | "status"),
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
                | "deletionTimestamp"
                | "deletionGracePeriodSeconds"
                | "generateName"
        ),
        _ => false,
    }
}

fn key_of(item: &Value, mk: &str, field: &str) -> Option<String> {
    let k = item.get(mk)?;
    let mut m = Map::new();
    m.insert(mk.to_string(), k.clone());
    if (field == "ports") && item.get("protocol").is_some() {
        m.insert("protocol".into(), item["protocol"].clone());
    } else if field == "ports" {
        m.insert("protocol".into(), json!("TCP"));
    }
    Some(Value::Object(m).to_string())
}

/// Every leaf path of an object, with keyed lists as associative.
fn leaves(v: &Value, path: &mut Path, field: Option<&str>, kind: &str, out: &mut BTreeMap<Path, Value>) {
    if untracked(path) {
        return;
    }
    match v {
        Value::Object(m) if !m.is_empty() => {
            let parent = field.map(str::to_string);
            for (k, c) in m {
                path.push(Seg::Field(k.clone()));
                leaves(c, path, Some(k), kind, out);
                path.pop();
                let _ = &parent;
            }
        }
        Value::Array(items)
            if field.is_some_and(|f| merge_key(f, parent_field(path), kind).is_some()) && !items.is_empty() =>
        {
            let f = field.unwrap_or_default();
            let mk = merge_key(f, parent_field(path), kind).unwrap_or("name");
            for item in items {
                match key_of(item, mk, f) {
                    Some(k) => {
                        path.push(Seg::Key(k));
                        leaves(item, path, None, kind, out);
                        path.pop();
                    }
                    None => {
                        out.insert(path.clone(), v.clone());
                        return;
                    }
                }
            }
        }
        _ => {
            out.insert(path.clone(), v.clone());
        }
    }
}

/// The field name before the last segment (for the `ports` merge-key decision).
fn parent_field(path: &[Seg]) -> Option<&str> {
    match path.len().checked_sub(2).map(|i| &path[i]) {
        Some(Seg::Field(f)) => Some(f.as_str()),
        _ => None,
    }
}

fn fv1_key(s: &Seg) -> String {
    match s {
        Seg::Field(f) => format!("f:{f}"),
        Seg::Key(k) => format!("k:{k}"),
    }
}

fn to_fields_v1(paths: impl IntoIterator<Item = Path>) -> Value {
    let mut root = Value::Object(Map::new());
    for p in paths {
        let mut cur = &mut root;
        for (i, seg) in p.iter().enumerate() {
            let Value::Object(m) = cur else { break };
            cur = m.entry(fv1_key(seg)).or_insert_with(|| Value::Object(Map::new()));
            if matches!(seg, Seg::Key(_))
                && i + 1 < p.len()
                && let Value::Object(km) = cur
            {
                km.entry(".").or_insert_with(|| Value::Object(Map::new()));
            }
        }
    }
    root
}

fn from_fields_v1(v: &Value, prefix: &mut Path, out: &mut Vec<Path>) {
    let Value::Object(m) = v else { return };
    let children: Vec<(&String, &Value)> = m.iter().filter(|(k, _)| k.as_str() != ".").collect();
    if children.is_empty() && !prefix.is_empty() {
        out.push(prefix.clone());
        return;
    }
    for (k, c) in children {
        let seg = if let Some(f) = k.strip_prefix("f:") {
            Seg::Field(f.to_string())
        } else if let Some(key) = k.strip_prefix("k:") {
            Seg::Key(key.to_string())
        } else {
            // v: (set values) and i: are not produced by kube-sim; treat as opaque leaves.
            Seg::Field(k.clone())
        };
        prefix.push(seg);
        from_fields_v1(c, prefix, out);
        prefix.pop();
    }
}

/// Kubernetes' rendering of a field path: `.spec.ports[port=80,protocol="TCP"].nodePort`.
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
    paths: Vec<Path>,
}

fn read_entries(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    let mut paths = Vec::new();
                    from_fields_v1(&e["fieldsV1"], &mut Vec::new(), &mut paths);
                    Entry {
                        manager: e["manager"].as_str().unwrap_or_default().to_string(),
                        operation: e["operation"].as_str().unwrap_or("Update").to_string(),
                        api_version: e["apiVersion"].as_str().unwrap_or_default().to_string(),
                        subresource: e["subresource"].as_str().map(str::to_string),
                        paths,
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

fn write_entries(obj: &mut Value, entries: &[Entry], now: &str) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.paths.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager, "operation": e.operation, "apiVersion": e.api_version, "time": now,
                "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(e.paths.iter().cloned()),
            });
            if let Some(s) = &e.subresource {
                v["subresource"] = json!(s);
            }
            v
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

fn covers(owned: &Path, p: &Path) -> bool {
    p.starts_with(owned) || owned.starts_with(p)
}

/// The real server's 409 message for apply conflicts, e.g.
/// `Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas`.
pub fn conflict_message(conflicts: &[FieldConflict]) -> String {
    let n = conflicts.len();
    if let [c] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with \"{}\" using {}: {}",
            c.manager, c.api_version, c.field
        );
    }
    let mut groups: Vec<(&str, &str, Vec<&str>)> = Vec::new();
    for c in conflicts {
        match groups.iter_mut().find(|(m, v, _)| *m == c.manager && *v == c.api_version) {
            Some(g) => g.2.push(&c.field),
            None => groups.push((&c.manager, &c.api_version, vec![&c.field])),
        }
    }
    let parts: Vec<String> = groups
        .iter()
        .map(|(m, v, fields)| {
            if let [f] = fields.as_slice() {
                format!("conflict with \"{m}\" using {v}: {f}")
            } else {
                let list: Vec<String> = fields.iter().map(|f| format!("- {f}")).collect();
                format!("conflicts with \"{m}\" using {v}:\n{}", list.join("\n"))
            }
        })
        .collect();
    format!("Apply failed with {n} conflicts: {}", parts.join("\n"))
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
    let api_version = applied["apiVersion"].as_str().unwrap_or_default().to_string();
    let mut applied_leaves = BTreeMap::new();
    leaves(applied, &mut Vec::new(), None, kind, &mut applied_leaves);
    let base = live.cloned().unwrap_or_else(|| json!({"metadata": {}}));
    let mut entries = read_entries(&base);
    let mut live_leaves = BTreeMap::new();
    leaves(&base, &mut Vec::new(), None, kind, &mut live_leaves);

    // Conflicts: a field this apply sets to a different value that another manager owns.
    let mut conflicts = Vec::new();
    for (p, v) in &applied_leaves {
        let differs = live_leaves.get(p).is_some_and(|lv| lv != v)
            || live_leaves.iter().any(|(lp, lv)| lp != p && covers(lp, p) && Some(lv) != applied_leaves.get(lp));
        if !differs {
            continue;
        }
        for e in entries.iter().filter(|e| !(e.manager == manager && e.operation == "Apply")) {
            if e.paths.iter().any(|o| covers(o, p)) {
                conflicts.push(FieldConflict {
                    manager: e.manager.clone(),
                    api_version: e.api_version.clone(),
                    field: render(p),
                });
            }
        }
    }
    conflicts.sort_by(|a, b| (&a.manager, &a.field).cmp(&(&b.manager, &b.field)));
    conflicts.dedup();
    if !conflicts.is_empty() && !force {
        return Err(PatchError::Conflict(conflicts));
    }

    // Fields this manager applied before and no longer lists: removed unless someone else owns them.
    let previous: Vec<Path> = entries
        .iter()
        .filter(|e| e.manager == manager && e.operation == "Apply")
        .flat_map(|e| e.paths.clone())
        .collect();
    let mut result = base.clone();
    strategic_merge_patch(&mut result, &strip_meta(applied), kind)?;
    for p in previous {
        if applied_leaves.keys().any(|a| covers(&p, a)) {
            continue;
        }
        let others_own = entries
            .iter()
            .any(|e| !(e.manager == manager && e.operation == "Apply") && e.paths.iter().any(|o| covers(o, &p)));
        if !others_own {
            remove_path(&mut result, &p, kind);
        }
    }
    // Ownership: this manager's Apply entry is exactly what it applied; forced fields leave others.
    let mine: Vec<Path> = applied_leaves.keys().cloned().collect();
    for e in entries.iter_mut().filter(|e| !(e.manager == manager && e.operation == "Apply")) {
        if force {
            e.paths.retain(|o| !mine.iter().any(|p| covers(o, p)));
        }
    }
    entries.retain(|e| !(e.manager == manager && e.operation == "Apply"));
    entries.push(Entry {
        manager: manager.into(),
        operation: "Apply".into(),
        api_version,
        subresource: None,
        paths: mine,
    });
    write_entries(&mut result, &entries, now);
    Ok(result)
}

/// The applied object without metadata the server owns.
fn strip_meta(applied: &Value) -> Value {
    let mut v = applied.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in ["managedFields", "resourceVersion", "uid", "creationTimestamp", "generation"] {
            m.remove(k);
        }
    }
    v
}

fn remove_path(obj: &mut Value, path: &[Seg], kind: &str) {
    let Some((last, init)) = path.split_last() else { return };
    let mut cur = obj;
    for (i, seg) in init.iter().enumerate() {
        cur = match (seg, cur) {
            (Seg::Field(f), Value::Object(m)) => match m.get_mut(f) {
                Some(c) => c,
                None => return,
            },
            (Seg::Key(k), Value::Array(items)) => {
                let field = match init.get(i.wrapping_sub(1)) {
                    Some(Seg::Field(f)) => f.as_str(),
                    _ => "",
                };
                let parent = if i >= 2 {
                    match &init[i - 2] {
                        Seg::Field(f) => Some(f.as_str()),
                        _ => None,
                    }
                } else {
                    None
                };
                let Some(mk) = merge_key(field, parent, kind) else { return };
                match items.iter_mut().find(|it| key_of(it, mk, field).as_deref() == Some(k.as_str())) {
                    Some(c) => c,
                    None => return,
                }
            }
            _ => return,
        };
    }
    if let (Seg::Field(f), Value::Object(m)) = (last, cur) {
        m.remove(f);
    }
}

/// Records a non-apply write by `manager` (operation `Update`): it takes ownership of every
/// field it changed, away from other managers.
pub fn record_update(old: Option<&Value>, new: &mut Value, manager: &str, subresource: Option<&str>, now: &str) {
    let kind = new["kind"].as_str().unwrap_or_default().to_string();
    let api_version = new["apiVersion"].as_str().unwrap_or_default().to_string();
    let mut before = BTreeMap::new();
    if let Some(o) = old {
        leaves(o, &mut Vec::new(), None, &kind, &mut before);
    }
    let mut after = BTreeMap::new();
    leaves(new, &mut Vec::new(), None, &kind, &mut after);
    let changed: Vec<Path> = after.iter().filter(|(p, v)| before.get(*p) != Some(*v)).map(|(p, _)| p.clone()).collect();
    let mut entries = old.map(read_entries).unwrap_or_default();
    if changed.is_empty() {
        write_entries(new, &entries, now);
        return;
    }
    for e in entries.iter_mut() {
        if !(e.manager == manager && e.operation == "Update") {
            e.paths.retain(|o| !changed.iter().any(|p| covers(o, p)));
        }
    }
    let sub = subresource.map(str::to_string);
    match entries.iter_mut().find(|e| e.manager == manager && e.operation == "Update" && e.subresource == sub) {
        Some(e) => {
            for p in changed {
                if !e.paths.contains(&p) {
                    e.paths.push(p);
                }
            }
        }
        None => entries.push(Entry {
            manager: manager.into(),
            operation: "Update".into(),
            api_version,
            subresource: sub,
            paths: changed,
        }),
    }
    write_entries(new, &entries, now);
}

/// Managers owning a field path as Kubernetes renders it (e.g. `.spec.replicas`).
pub fn managers_of(obj: &Value, field: &str) -> Vec<String> {
    read_entries(obj).into_iter().filter(|e| e.paths.iter().any(|p| render(p) == field)).map(|e| e.manager).collect()
}

#[cfg(test)]
mod tests;
