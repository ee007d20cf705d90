//! Helpers the controllers share: owner references, label selectors as objects carry them,
//! int-or-percent values, pod readiness and availability, timestamps, the hash and name
//! encoding the real controllers use, and status writes that omit zero fields.

use serde_json::{Map, Value, json};

/// Seconds since the Unix epoch, with sub-second precision.
pub fn now_secs() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// `2026-12-01T07:44:51Z` (fractions allowed) as Unix seconds; None for anything else.
pub fn parse_time(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let rest = &s[19..];
    let (frac, tz) = match rest.strip_prefix('.') {
        Some(r) => {
            let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            (format!("0.{}", &r[..end]).parse::<f64>().unwrap_or(0.0), &r[end..])
        }
        None => (0.0, rest),
    };
    let offset = match tz {
        "Z" | "z" => 0,
        t if t.len() == 6 && (t.starts_with('+') || t.starts_with('-')) => {
            let h: i64 = t[1..3].parse().ok()?;
            let mi: i64 = t[4..6].parse().ok()?;
            let o = h * 3600 + mi * 60;
            if t.starts_with('-') { -o } else { o }
        }
        _ => return None,
    };
    // days from civil (Howard Hinnant).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3600 + mm * 60 + ss - offset) as f64 + frac)
}

pub fn now_rfc3339() -> String {
    crate::store::now_rfc3339()
}

pub fn str_of<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str().unwrap_or_default()
}

pub fn name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

pub fn namespace(obj: &Value) -> &str {
    obj["metadata"]["namespace"].as_str().unwrap_or_default()
}

pub fn uid(obj: &Value) -> &str {
    obj["metadata"]["uid"].as_str().unwrap_or_default()
}

pub fn generation(obj: &Value) -> i64 {
    obj["metadata"]["generation"].as_i64().unwrap_or(0)
}

pub fn deleting(obj: &Value) -> bool {
    obj["metadata"]["deletionTimestamp"].is_string()
}

/// An integer field, or `default` when absent (kube-sim does not default fields at create).
pub fn int_or(v: &Value, default: i64) -> i64 {
    v.as_i64().unwrap_or(default)
}

/// `spec.replicas` of a workload, as the API server defaulted it (`src/defaults.rs`: 1 when
/// unset, so it is always there).
pub fn replicas(obj: &Value) -> i64 {
    int_or(&obj["spec"]["replicas"], 0)
}

/// A controller owner reference to `obj`.
pub fn controller_ref(obj: &Value) -> Value {
    json!({"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true})
}

/// The controller owner reference of an object: (kind, name, uid).
pub fn controller_of(obj: &Value) -> Option<(&str, &str, &str)> {
    let r = obj["metadata"]["ownerReferences"].as_array()?.iter().find(|r| r["controller"] == true)?;
    Some((r["kind"].as_str()?, r["name"].as_str()?, r["uid"].as_str().unwrap_or_default()))
}

/// Whether `obj`'s controller is the object with this uid.
pub fn controlled_by(obj: &Value, owner_uid: &str) -> bool {
    controller_of(obj).is_some_and(|(_, _, u)| u == owner_uid)
}

/// A LabelSelector object (`matchLabels` and `matchExpressions`) against a label map. An empty
/// selector matches everything; a malformed one matches nothing.
pub fn selector_matches(selector: &Value, labels: &Value) -> bool {
    if !selector.is_object() {
        return false;
    }
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    if let Some(m) = selector["matchLabels"].as_object()
        && !m.iter().all(|(k, v)| v.as_str().is_some() && get(k) == v.as_str())
    {
        return false;
    }
    match &selector["matchExpressions"] {
        Value::Null => true,
        Value::Array(exprs) => exprs.iter().all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&str> =
                e["values"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            match e["operator"].as_str() {
                Some("In") => get(key).is_some_and(|v| values.contains(&v)),
                Some("NotIn") => get(key).is_none_or(|v| !values.contains(&v)),
                Some("Exists") => get(key).is_some(),
                Some("DoesNotExist") => get(key).is_none(),
                _ => false,
            }
        }),
        _ => false,
    }
}

/// A selector with neither matchLabels nor matchExpressions (selects everything).
pub fn selector_is_empty(selector: &Value) -> bool {
    selector["matchLabels"].as_object().is_none_or(Map::is_empty)
        && selector["matchExpressions"].as_array().is_none_or(Vec::is_empty)
}

/// `labels.FormatLabels`-style `k=v,k2=v2` of a selector (for printing), `<none>` when empty.
pub fn selector_string(selector: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(m) = selector["matchLabels"].as_object() {
        parts.extend(m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())));
    }
    if let Some(exprs) = selector["matchExpressions"].as_array() {
        for e in exprs {
            let key = e["key"].as_str().unwrap_or_default();
            let vals: Vec<&str> =
                e["values"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            parts.push(match e["operator"].as_str() {
                Some("In") => format!("{key} in ({})", vals.join(",")),
                Some("NotIn") => format!("{key} notin ({})", vals.join(",")),
                Some("Exists") => key.to_string(),
                Some("DoesNotExist") => format!("!{key}"),
                _ => continue,
            });
        }
    }
    parts.sort();
    if parts.is_empty() { "<none>".into() } else { parts.join(",") }
}

/// `intstr.GetScaledValueFromIntOrPercent`: an integer, or a percentage of `total` rounded up
/// or down. Anything else is None (the real API server would have rejected it).
pub fn scaled_value(v: &Value, total: i64, round_up: bool) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let p: i64 = s.strip_suffix('%')?.parse().ok()?;
            let x = p * total;
            Some(if round_up { (x + 99).div_euclid(100) } else { x.div_euclid(100) })
        }
        _ => None,
    }
}

pub fn condition<'a>(obj: &'a Value, ty: &str) -> Option<&'a Value> {
    obj["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == ty)
}

/// `podutil.IsPodReady`.
pub fn pod_ready(pod: &Value) -> bool {
    condition(pod, "Ready").is_some_and(|c| c["status"] == "True")
}

/// Ready for at least `min_ready` seconds at `now` (`podutil.IsPodAvailable`).
pub fn pod_available(pod: &Value, min_ready: i64, now: f64) -> bool {
    let Some(c) = condition(pod, "Ready").filter(|c| c["status"] == "True") else { return false };
    if min_ready <= 0 {
        return true;
    }
    let since = c["lastTransitionTime"].as_str().and_then(parse_time).unwrap_or(now);
    since + min_ready as f64 <= now
}

/// When a ready pod becomes available (None when it is not ready).
pub fn pod_available_at(pod: &Value, min_ready: i64) -> Option<f64> {
    let c = condition(pod, "Ready").filter(|c| c["status"] == "True")?;
    Some(c["lastTransitionTime"].as_str().and_then(parse_time).unwrap_or(0.0) + min_ready.max(0) as f64)
}

pub fn pod_phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or_default()
}

pub fn pod_terminal(pod: &Value) -> bool {
    matches!(pod_phase(pod), "Succeeded" | "Failed")
}

/// `controller.IsPodActive`: not terminal and not being deleted.
pub fn pod_active(pod: &Value) -> bool {
    !pod_terminal(pod) && !deleting(pod)
}

/// FNV-1a, 32 bits (what `controller.ComputeHash` and `HashControllerRevision` use).
pub fn fnv32a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// `rand.SafeEncodeString`: the decimal digits mapped onto consonants and digits that cannot
/// form words (how pod-template-hash and controller-revision-hash values look).
pub fn safe_encode(n: u32) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    n.to_string().bytes().map(|d| ALPHANUMS[(d - b'0') as usize % ALPHANUMS.len()] as char).collect()
}

/// A JSON value with object keys sorted (so equal objects hash equally).
pub fn canonical(v: &Value) -> String {
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String((*k).clone()).to_string());
                    out.push(':');
                    walk(&m[k.as_str()], out);
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    walk(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut s = String::new();
    walk(v, &mut s);
    s
}

/// The hash of a template with a collision count, encoded like the real controllers'.
pub fn compute_hash(template: &Value, collision_count: i64) -> String {
    let mut bytes = canonical(template).into_bytes();
    if collision_count > 0 {
        bytes.extend_from_slice(collision_count.to_string().as_bytes());
    }
    safe_encode(fnv32a(&bytes))
}

/// A JSON merge patch turning `old` into `new` (removed keys become null).
pub fn merge_diff(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut out = Map::new();
            for (k, nv) in n {
                match o.get(k) {
                    Some(ov) if ov == nv => {}
                    Some(ov @ Value::Object(_)) if nv.is_object() => {
                        out.insert(k.clone(), merge_diff(ov, nv));
                    }
                    _ => {
                        out.insert(k.clone(), nv.clone());
                    }
                }
            }
            for k in o.keys() {
                if !n.contains_key(k) {
                    out.insert(k.clone(), Value::Null);
                }
            }
            Value::Object(out)
        }
        _ => new.clone(),
    }
}

/// Sets a condition the way the controllers' `SetCondition` helpers do: an unchanged status and
/// reason leaves it alone; otherwise it moves to the end, keeping lastTransitionTime when only
/// the reason changed. Returns whether anything changed.
pub fn set_condition(conditions: &mut Vec<Value>, mut cond: Value) -> bool {
    let ty = cond["type"].clone();
    if let Some(cur) = conditions.iter().find(|c| c["type"] == ty) {
        if cur["status"] == cond["status"] && cur["reason"] == cond["reason"] {
            return false;
        }
        if cur["status"] == cond["status"] && cur.get("lastTransitionTime").is_some() {
            cond["lastTransitionTime"] = cur["lastTransitionTime"].clone();
        }
    }
    conditions.retain(|c| c["type"] != ty);
    conditions.push(cond);
    true
}

pub fn remove_condition(conditions: &mut Vec<Value>, ty: &str) {
    conditions.retain(|c| c["type"] != ty);
}

/// Kubernetes' `HumanDuration` (the AGE column).
pub fn human_duration(secs: f64) -> String {
    let s = secs as i64;
    if s < -1 {
        return "<invalid>".into();
    }
    if s < 0 {
        return "0s".into();
    }
    if s < 120 {
        return format!("{s}s");
    }
    let minutes = s / 60;
    if minutes < 10 {
        let r = s % 60;
        return if r == 0 { format!("{minutes}m") } else { format!("{minutes}m{r}s") };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = s / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 { format!("{}d", hours / 24) } else { format!("{}d{h}h", hours / 24) };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 { format!("{}y", hours / 24 / 365) } else { format!("{}y{dy}d", hours / 24 / 365) };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_time("2026-12-01T07:44:51Z"), Some(1_796_111_091.0));
        assert_eq!(crate::store::rfc3339(1_796_111_091), "2026-12-01T07:44:51Z");
        assert_eq!(parse_time("2026-12-01T07:44:51.5Z"), Some(1_796_111_091.5));
        assert_eq!(parse_time("2026-12-01T08:44:51+01:00"), Some(1_796_111_091.0));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn percentages_round_like_upstream() {
        assert_eq!(scaled_value(&json!("25%"), 2, true), Some(1));
        assert_eq!(scaled_value(&json!("25%"), 2, false), Some(0));
        assert_eq!(scaled_value(&json!("25%"), 10, true), Some(3));
        assert_eq!(scaled_value(&json!("25%"), 10, false), Some(2));
        assert_eq!(scaled_value(&json!(3), 10, false), Some(3));
        assert_eq!(scaled_value(&json!("x"), 10, false), None);
    }

    #[test]
    fn selectors() {
        let labels = json!({"app": "web", "tier": "front"});
        assert!(selector_matches(&json!({}), &labels));
        assert!(selector_matches(&json!({"matchLabels": {"app": "web"}}), &labels));
        assert!(!selector_matches(&json!({"matchLabels": {"app": "db"}}), &labels));
        let e = |op: &str, vals: Value| json!({"matchExpressions": [{"key": "tier", "operator": op, "values": vals}]});
        assert!(selector_matches(&e("In", json!(["front"])), &labels));
        assert!(!selector_matches(&e("NotIn", json!(["front"])), &labels));
        assert!(selector_matches(&e("Exists", json!(null)), &labels));
        assert!(!selector_matches(&e("DoesNotExist", json!(null)), &labels));
        assert!(!selector_matches(&e("Bogus", json!(null)), &labels));
        assert!(!selector_matches(&json!("x"), &labels));
        assert_eq!(selector_string(&json!({"matchLabels": {"b": "2", "a": "1"}})), "a=1,b=2");
    }

    #[test]
    fn hashes_look_like_the_real_ones() {
        let h = compute_hash(&json!({"metadata": {"labels": {"app": "web"}}}), 0);
        assert!(h.len() >= 8 && h.len() <= 10, "{h}");
        assert!(h.bytes().all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)));
        assert_eq!(h, compute_hash(&json!({"metadata": {"labels": {"app": "web"}}}), 0));
        assert_ne!(h, compute_hash(&json!({"metadata": {"labels": {"app": "web"}}}), 1));
    }

    #[test]
    fn merge_diffs_null_removed_keys() {
        let old = json!({"a": 1, "b": 2, "c": {"x": 1, "y": 2}});
        let new = json!({"a": 1, "c": {"x": 1}, "d": [1]});
        assert_eq!(merge_diff(&old, &new), json!({"b": null, "c": {"y": null}, "d": [1]}));
    }

    #[test]
    fn ages() {
        assert_eq!(human_duration(5.0), "5s");
        assert_eq!(human_duration(130.0), "2m10s");
        assert_eq!(human_duration(3600.0 * 5.0), "5h");
        assert_eq!(human_duration(86_400.0 * 3.0 + 3600.0), "3d1h");
    }
}
