//! Events: one storage (core/v1 Event) served as core/v1 and as events.k8s.io/v1, converted
//! field by field as the real server converts them, and the real validation of both
//! (`ValidateEventCreate`/`ValidateEventUpdate`: the "legacy" checks for every Event, the strict
//! ones for events.k8s.io/v1). Messages name the core fields (involvedObject, message), as the
//! real ones do.

use serde_json::{Map, Value, json};

/// (events.k8s.io/v1 field, core/v1 field) pairs that differ in name.
const RENAMED: [(&str, &str); 7] = [
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(obj: &Value, from_v1: bool, api_version: &str) -> Value {
    let Value::Object(m) = obj else { return obj.clone() };
    let mut out = Map::new();
    for (k, v) in m {
        let name = RENAMED
            .iter()
            .find(|(a, b)| if from_v1 { a == k } else { b == k })
            .map(|(a, b)| if from_v1 { *b } else { *a })
            .unwrap_or(k.as_str());
        out.insert(name.to_string(), v.clone());
    }
    out.insert("apiVersion".into(), json!(api_version));
    out.insert("kind".into(), json!("Event"));
    Value::Object(out)
}

/// An events.k8s.io/v1 Event as core/v1 stores it, with the fields core/v1 always serializes.
pub fn to_core(v1: &Value) -> Value {
    let mut core = rename(v1, true, "v1");
    core_defaults(&mut core);
    core
}

/// Fields a core/v1 Event always has in JSON (non-pointer structs and times, non-omitempty
/// strings): `involvedObject: {}`, `source: {}`, `firstTimestamp`/`lastTimestamp`/`eventTime:
/// null`, `reportingComponent`/`reportingInstance: ""`.
pub fn core_defaults(core: &mut Value) {
    let Some(m) = core.as_object_mut() else { return };
    for (k, v) in [
        ("involvedObject", json!({})),
        ("source", json!({})),
        ("firstTimestamp", Value::Null),
        ("lastTimestamp", Value::Null),
        ("eventTime", Value::Null),
        ("reportingComponent", json!("")),
        ("reportingInstance", json!("")),
    ] {
        m.entry(k).or_insert(v);
    }
}

/// A stored core/v1 Event as events.k8s.io/v1 serves it.
pub fn to_v1(core: &Value) -> Value {
    let mut v1 = rename(core, false, "events.k8s.io/v1");
    let Some(m) = v1.as_object_mut() else { return v1 };
    // omitempty in events.k8s.io/v1, always present in core/v1
    for k in ["reportingController", "reportingInstance"] {
        if m.get(k).is_some_and(|v| v.as_str() == Some("")) {
            m.remove(k);
        }
    }
    for (k, v) in [
        ("regarding", json!({})),
        ("deprecatedSource", json!({})),
        ("deprecatedFirstTimestamp", Value::Null),
        ("deprecatedLastTimestamp", Value::Null),
        ("eventTime", Value::Null),
    ] {
        m.entry(k).or_insert(v);
    }
    v1
}

fn text<'a>(obj: &'a Value, core: &str) -> &'a str {
    obj[core].as_str().unwrap_or_default()
}

fn unset(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_i64() == Some(0),
        Value::Object(m) => m.values().all(unset),
        _ => false,
    }
}

/// The field errors of an Event (in core/v1 form) written through `api_version`: the legacy
/// checks for both APIs, the strict ones for events.k8s.io/v1 creates, the immutable fields for
/// events.k8s.io/v1 updates.
pub fn validate(core: &Value, namespace: &str, api_version: &str, old: Option<&Value>) -> Vec<(String, String)> {
    let v1 = api_version == "events.k8s.io/v1";
    let mut errs: Vec<(String, String)> = Vec::new();
    let mut push = |f: &str, m: String| errs.push((f.to_string(), m));
    let controller_field = if v1 { "reportingController" } else { "reportingComponent" };
    let involved_ns = core["involvedObject"]["namespace"].as_str().unwrap_or_default();
    let mismatch = format!("Invalid value: \"{involved_ns}\": does not match event.namespace");
    if unset(&core["eventTime"]) {
        if involved_ns.is_empty() {
            if !namespace.is_empty() && namespace != "default" {
                push("involvedObject.namespace", mismatch);
            }
        } else if namespace != involved_ns {
            push("involvedObject.namespace", mismatch);
        }
    } else {
        if involved_ns.is_empty() && namespace != "default" && namespace != "kube-system" {
            push("involvedObject.namespace", mismatch);
        }
        let controller = text(core, "reportingComponent");
        if controller.is_empty() {
            push(controller_field, "Required value".into());
        }
        for m in crate::validation::qualified_name_errors(controller) {
            push(controller_field, format!("Invalid value: \"{controller}\": {m}"));
        }
        for (field, core_field, limit) in
            [("reportingInstance", "reportingInstance", 128), ("action", "action", 128), ("reason", "reason", 128)]
        {
            let v = text(core, core_field);
            if v.is_empty() {
                push(field, "Required value".into());
            }
            if v.len() > limit {
                push(field, format!("Invalid value: \"\": can have at most {limit} characters"));
            }
        }
        if text(core, "message").len() > 1024 {
            push("message", "Invalid value: \"\": can have at most 1024 characters".into());
        }
    }
    if !v1 {
        return errs;
    }
    match old {
        None => {
            if unset(&core["eventTime"]) {
                push("eventTime", "Required value".into());
            }
            let ty = text(core, "type");
            if ty != "Normal" && ty != "Warning" {
                push("type", format!("Invalid value: \"\": has invalid value: {ty}"));
            }
            for (core_field, v1_field) in [
                ("firstTimestamp", "deprecatedFirstTimestamp"),
                ("lastTimestamp", "deprecatedLastTimestamp"),
                ("count", "deprecatedCount"),
                ("source", "deprecatedSource"),
            ] {
                if !unset(&core[core_field]) {
                    push(v1_field, "Invalid value: \"\": needs to be unset".into());
                }
            }
        }
        Some(old) => {
            for f in [
                "involvedObject",
                "reason",
                "message",
                "source",
                "firstTimestamp",
                "lastTimestamp",
                "count",
                "action",
                "related",
                "reportingComponent",
                "reportingInstance",
                "type",
            ] {
                if core[f] != old[f] {
                    let name = if f == "reportingComponent" { "reportingController" } else { f };
                    push(name, format!("Invalid value: {}: field is immutable", core[f]));
                }
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Value {
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e", "namespace": "rec-events"},
            "eventTime": "2026-12-01T07:44:49.354257Z", "reportingController": "meshkeeper.io/recorder",
            "reportingInstance": "rec-instance-1", "action": "Injecting", "reason": "Injected", "type": "Normal",
            "note": "sidecar injected", "regarding": {"apiVersion": "v1", "kind": "Pod", "namespace": "rec-events", "name": "web-0"}})
    }

    #[test]
    fn converts_both_ways_like_10_events_v1() {
        let core = to_core(&valid());
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "web-0");
        assert_eq!(core["message"], "sidecar injected");
        assert_eq!(core["reportingComponent"], "meshkeeper.io/recorder");
        assert_eq!((core["source"].clone(), core["firstTimestamp"].clone()), (json!({}), Value::Null));
        let back = to_v1(&core);
        for k in ["regarding", "note", "reportingController", "action", "eventTime"] {
            assert_eq!(back[k], valid()[k], "{k}");
        }
        assert_eq!(back["deprecatedSource"], json!({}));
        assert!(back["deprecatedFirstTimestamp"].is_null() && back.get("source").is_none());
    }

    #[test]
    fn validation_messages_like_10_events_v1() {
        let check = |mut v: Value, f: &dyn Fn(&mut Value)| {
            f(&mut v);
            validate(&to_core(&v), "rec-events", "events.k8s.io/v1", None)
        };
        assert!(check(valid(), &|_| {}).is_empty());
        let missing = check(valid(), &|v| {
            let m = v.as_object_mut().unwrap();
            m.remove("reportingController");
            m.remove("action");
        });
        let msgs: Vec<String> = missing.iter().map(|(f, m)| format!("{f}: {m}")).collect();
        assert_eq!(msgs.len(), 4);
        assert_eq!(msgs[0], "reportingController: Required value");
        assert_eq!(msgs[1], "reportingController: Invalid value: \"\": name part must be non-empty");
        assert!(msgs[2].starts_with("reportingController: Invalid value: \"\": name part must consist of"));
        assert_eq!(msgs[3], "action: Required value");
        let long = check(valid(), &|v| v["note"] = json!("n".repeat(1025)));
        assert_eq!(
            long,
            [("message".to_string(), "Invalid value: \"\": can have at most 1024 characters".to_string())]
        );
        assert!(check(valid(), &|v| v["note"] = json!("n".repeat(1024))).is_empty());
        let no_time = check(valid(), &|v| {
            v.as_object_mut().unwrap().remove("eventTime");
        });
        assert_eq!(no_time, [("eventTime".to_string(), "Required value".to_string())]);
        let info = check(valid(), &|v| v["type"] = json!("Info"));
        assert_eq!(info, [("type".to_string(), "Invalid value: \"\": has invalid value: Info".to_string())]);
        let cluster_scoped =
            check(valid(), &|v| v["regarding"] = json!({"apiVersion": "v1", "kind": "Namespace", "name": "x"}));
        assert_eq!(
            cluster_scoped,
            [(
                "involvedObject.namespace".to_string(),
                "Invalid value: \"\": does not match event.namespace".to_string()
            )]
        );
    }
}
