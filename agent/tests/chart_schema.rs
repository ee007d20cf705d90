//! The Helm chart's `values.schema.json` (its `config` section) against the agent's own config
//! loader, so that `helm install` refuses what the agent would refuse at start, and accepts
//! everything it accepts.
//!
//! - agent -> schema: every key path of each profile's serialized defaults, and of the settings
//!   loaded from the schema's own examples, is in the schema, with a matching type, inside its
//!   enum and bounds (a small validator of the draft-07 keywords the schema uses; `pattern`,
//!   `format` and `propertyNames` are left to helm, below).
//! - schema -> agent: every leaf has an example; a config holding all of them at once is
//!   accepted and read back unchanged; so is each single example and every enum value; the
//!   numeric bounds are the agent's (the bound accepted, one past it refused); in every section
//!   a key the schema does not list is refused by the agent and by the schema.
//! - The chart's copy of the profile defaults its fail guards read (`meshkeeper.profileDefaults`
//!   in templates/_helpers.tpl) equals `Settings::defaults`.
//! - With helm on PATH (scripts/install-tools.sh installs it; MESHKEEPER_REQUIRE_TOOLS makes it
//!   required): helm's own JSON-schema validation accepts each profile's defaults and the full
//!   example, the ConfigMap it renders loads into the same settings, and helm agrees with the
//!   agent on a table of good and bad values (formats: labels, selectors, globs, times,
//!   addresses, nodePorts).

use std::path::Path;
use std::process::Command;

use meshkeeper::config::{Mode, Profile, Settings};
use serde::Deserialize;
use serde_json::{Value, json};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../helm/meshkeeper");

/// Keys the chart sets through the environment; its guards refuse them in `config:`.
const CHART_OWNED: &[&str] = &["namespace", "lease_name", "identity"];

/// Keys whose allowed range depends on another key, with the values of those other keys that
/// let the bound itself be valid (the agent checks grace < duration and retry < duration - grace).
const COMPANIONS: &[(&str, &[(&str, i64)])] = &[
    (
        "leader_election.lease_duration_seconds",
        &[("leader_election.grace_seconds", 1), ("leader_election.retry_period_seconds", 1)],
    ),
    (
        "leader_election.grace_seconds",
        &[("leader_election.lease_duration_seconds", 300), ("leader_election.retry_period_seconds", 1)],
    ),
    (
        "leader_election.retry_period_seconds",
        &[("leader_election.lease_duration_seconds", 300), ("leader_election.grace_seconds", 1)],
    ),
];

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn schema() -> Value {
    let path = Path::new(CHART).join("values.schema.json");
    serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn config_schema(root: &Value) -> &Value {
    let c = &root["properties"]["config"];
    assert!(c.is_object(), "values.schema.json has no properties.config");
    c
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

/// Follows `$ref: #/definitions/NAME`, the only kind of reference the schema uses.
fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.strip_prefix("#/definitions/").unwrap_or_else(|| panic!("unsupported $ref {r}"));
            let def = &root["definitions"][name];
            assert!(def.is_object(), "$ref {r} names no definition");
            resolve(root, def)
        }
        None => node,
    }
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        other => panic!("the schema uses type {other:?}, which this validator does not know"),
    }
}

/// Draft-07 validation of the keywords the schema uses, except `pattern`, `format` and
/// `propertyNames` (helm checks those). Siblings of `$ref` are ignored, as draft-07 says.
fn validate(root: &Value, node: &Value, v: &Value, path: &str, errs: &mut Vec<String>) {
    let node = resolve(root, node);
    if let Some(branches) = node.get("anyOf").and_then(Value::as_array)
        && !branches.iter().any(|b| {
            let mut e = Vec::new();
            validate(root, b, v, path, &mut e);
            e.is_empty()
        })
    {
        errs.push(format!("{path}: {v} matches none of anyOf"));
    }
    if let Some(allowed) = node.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        errs.push(format!("{path}: {v} is not one of {allowed:?}"));
    }
    if let Some(c) = node.get("const")
        && c != v
    {
        errs.push(format!("{path}: {v} is not {c}"));
    }
    if let Some(t) = node.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            other => panic!("{path}: type {other} is neither a string nor a list"),
        };
        if !types.iter().any(|t| has_type(v, t)) {
            errs.push(format!("{path}: {v} is not of type {types:?}"));
            return;
        }
    }
    match v {
        Value::Object(map) => {
            for key in node.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
                if !map.contains_key(key) {
                    errs.push(format!("{path}: {key} is required"));
                }
            }
            let props = node.get("properties").and_then(Value::as_object);
            for (k, child) in map {
                let child_path = join(path, k);
                match (props.and_then(|p| p.get(k)), node.get("additionalProperties")) {
                    (Some(s), _) => validate(root, s, child, &child_path, errs),
                    (None, Some(Value::Bool(false))) => errs.push(format!("{child_path}: not in the schema")),
                    (None, Some(s @ Value::Object(_))) => validate(root, s, child, &child_path, errs),
                    (None, _) => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(min) = node.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                errs.push(format!("{path}: fewer than {min} items"));
            }
            if let Some(s) = node.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate(root, s, item, &format!("{path}[{i}]"), errs);
                }
            }
        }
        Value::String(s) => {
            let n = s.chars().count() as u64;
            if let Some(min) = node.get("minLength").and_then(Value::as_u64)
                && n < min
            {
                errs.push(format!("{path}: {s:?} is shorter than {min}"));
            }
            if let Some(max) = node.get("maxLength").and_then(Value::as_u64)
                && n > max
            {
                errs.push(format!("{path}: {s:?} is longer than {max}"));
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().expect("a JSON number");
            let bound = |k: &str| node.get(k).and_then(Value::as_f64);
            if bound("minimum").is_some_and(|m| x < m)
                || bound("maximum").is_some_and(|m| x > m)
                || bound("exclusiveMinimum").is_some_and(|m| x <= m)
            {
                errs.push(format!("{path}: {x} is out of bounds"));
            }
        }
        _ => {}
    }
}

fn schema_errors(root: &Value, config: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    validate(root, config_schema(root), config, "config", &mut errs);
    errs
}

/// The schema's leaves and objects below `node`: paths with `.` between keys and `[]` for
/// "an item of this list", each with the node as written (its `examples` may sit beside a `$ref`).
struct Walk<'a> {
    leaves: Vec<(String, &'a Value)>,
    objects: Vec<(String, &'a Value)>,
}

fn walk<'a>(root: &'a Value, node: &'a Value, path: &str, out: &mut Walk<'a>) {
    let r = resolve(root, node);
    if let Some(props) = r.get("properties").and_then(Value::as_object) {
        out.objects.push((path.to_string(), r));
        for (k, child) in props {
            walk(root, child, &join(path, k), out);
        }
    } else if let Some(items) = r.get("items")
        && resolve(root, items).get("properties").is_some()
    {
        walk(root, items, &format!("{path}[]"), out);
    } else {
        out.leaves.push((path.to_string(), node));
    }
}

fn config_walk(root: &Value) -> Walk<'_> {
    let mut w = Walk { leaves: Vec::new(), objects: Vec::new() };
    walk(root, config_schema(root), "", &mut w);
    w
}

/// A node's examples: its own, else those of the definition it refers to.
fn examples(root: &Value, node: &Value) -> Vec<Value> {
    node.get("examples")
        .or_else(|| resolve(root, node).get("examples"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// A value built from the first example of every leaf (or the first allowed value).
fn example(root: &Value, node: &Value, path: &str) -> Value {
    if let Some(e) = examples(root, node).into_iter().next() {
        return e;
    }
    let r = resolve(root, node);
    if let Some(props) = r.get("properties").and_then(Value::as_object) {
        return Value::Object(props.iter().map(|(k, c)| (k.clone(), example(root, c, &join(path, k)))).collect());
    }
    if let Some(items) = r.get("items") {
        return json!([example(root, items, &format!("{path}[]"))]);
    }
    if let Some(first) = r.get("enum").and_then(|e| e.get(0)) {
        return first.clone();
    }
    panic!("config.{path}: the schema gives no example (add \"examples\" to it)");
}

fn full_example(root: &Value) -> Value {
    example(root, config_schema(root), "")
}

/// Sets `path` (keys joined by `.`, `key[]` = the first item of that list) in `v`.
fn set(v: &mut Value, path: &str, new: Value) {
    let parts: Vec<&str> = path.split('.').collect();
    let mut cur = v;
    for (i, part) in parts.iter().enumerate() {
        let (key, item) = match part.strip_suffix("[]") {
            Some(k) => (k, true),
            None => (*part, false),
        };
        let obj = cur.as_object_mut().unwrap_or_else(|| panic!("{path}: {key} is not inside a mapping"));
        if i == parts.len() - 1 && !item {
            obj.insert(key.to_string(), new);
            return;
        }
        cur = obj.get_mut(key).unwrap_or_else(|| panic!("{path}: no {key}"));
        if item {
            cur = cur.get_mut(0).unwrap_or_else(|| panic!("{path}: {key} is an empty list"));
        }
    }
}

fn with(base: &Value, path: &str, v: Value) -> Value {
    let mut c = base.clone();
    set(&mut c, path, v);
    c
}

/// The agent's verdict on a config file holding `config`.
fn load(config: &Value) -> Result<Settings, String> {
    let yaml = serde_yaml::to_string(config).expect("config as YAML");
    Settings::from_yaml_and_env(Some(&yaml), &[]).map_err(|e| e.to_string())
}

fn serialized(s: &Settings) -> Value {
    serde_json::to_value(s).expect("Settings serialize")
}

/// Every profile the agent knows, from its own list of allowed names.
fn profiles() -> Vec<(String, Profile)> {
    let names = Profile::ALLOWED.strip_prefix("allowed: ").expect("Profile::ALLOWED starts with \"allowed: \"");
    names.split(", ").map(|n| (n.to_string(), n.parse().unwrap_or_else(|e| panic!("{n}: {e}")))).collect()
}

/// `got` holds `want`: the same scalars (numbers compared as numbers), every key of a wanted
/// mapping, lists item by item.
fn assert_holds(want: &Value, got: &Value, path: &str) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                let gv = g.get(k).unwrap_or_else(|| panic!("{path}.{k}: missing after loading"));
                assert_holds(wv, gv, &join(path, k));
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            assert_eq!(w.len(), g.len(), "{path}: {want} read back as {got}");
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                assert_holds(wv, gv, &format!("{path}[{i}]"));
            }
        }
        (Value::Number(w), Value::Number(g)) => assert_eq!(w.as_f64(), g.as_f64(), "{path}"),
        _ => assert_eq!(want, got, "{path}"),
    }
}

#[test]
fn every_key_the_agent_has_is_in_the_schema() {
    let root = schema();
    let mut loaded = vec![];
    for (name, profile) in profiles() {
        loaded.push((format!("the {name} profile's defaults"), serialized(&Settings::defaults(profile))));
    }
    // The defaults hold no maintenance window and no component fields beyond what a profile
    // sets: the settings loaded from the schema's examples cover those.
    let example = full_example(&root);
    let settings = load(&example).unwrap_or_else(|e| panic!("the schema's examples are refused:\n{e}"));
    loaded.push(("the settings loaded from the schema's examples".into(), serialized(&settings)));
    for (what, value) in loaded {
        let errs = schema_errors(&root, &value);
        assert!(errs.is_empty(), "{what} do not fit values.schema.json:\n{}", errs.join("\n"));
    }
}

#[test]
fn every_key_of_the_schema_is_one_the_agent_accepts() {
    let root = schema();
    let base = full_example(&root);
    let settings = load(&base).unwrap_or_else(|e| panic!("the schema's examples are refused:\n{e}\n{base:#}"));
    assert_holds(&base, &serialized(&settings), "config");
    assert!(schema_errors(&root, &base).is_empty(), "{:?}", schema_errors(&root, &base));

    let w = config_walk(&root);
    assert!(w.leaves.len() > 60, "only {} leaves: is the config section complete?", w.leaves.len());
    for (path, node) in &w.leaves {
        let r = resolve(&root, node);
        let mut values = examples(&root, node);
        values.extend(r.get("enum").and_then(Value::as_array).cloned().unwrap_or_default());
        assert!(!values.is_empty(), "config.{path}: no example and no enum");
        for v in values {
            // Helm reads an unquoted `off` as false; the chart writes a false mode as off.
            let written = if v == json!(false) && path.ends_with("mode") { json!("off") } else { v.clone() };
            let c = with(&base, path, written);
            if let Err(e) = load(&c) {
                panic!("config.{path}: the schema allows {v}, the agent refuses it:\n{e}");
            }
        }
    }
}

#[test]
fn the_schemas_bounds_are_the_agents() {
    let root = schema();
    let base = full_example(&root);
    let mut checked = 0;
    for (path, node) in config_walk(&root).leaves {
        let r = resolve(&root, node);
        let integer = r.get("type") == Some(&json!("integer"));
        if !(integer || r.get("type") == Some(&json!("number"))) {
            continue;
        }
        let mut c = base.clone();
        for (p, companions) in COMPANIONS {
            if *p == path {
                for (k, v) in *companions {
                    set(&mut c, k, json!(v));
                }
            }
        }
        let num = |x: f64| if integer { json!(x as i64) } else { json!(x) };
        let step = if integer { 1.0 } else { 0.5 };
        let mut cases = Vec::new();
        if let Some(m) = r.get("minimum").and_then(Value::as_f64) {
            cases.extend([(num(m), true), (num(m - step), false)]);
        }
        if let Some(m) = r.get("maximum").and_then(Value::as_f64) {
            cases.extend([(num(m), true), (num(m + step), false)]);
        }
        if let Some(m) = r.get("exclusiveMinimum").and_then(Value::as_f64) {
            cases.extend([(num(m), false), (json!(m + 0.001), true)]);
        }
        assert!(!cases.is_empty() || path.ends_with("min_cpu_cores"), "config.{path}: a number without bounds");
        for (v, ok) in cases {
            let verdict = load(&with(&c, &path, v.clone()));
            assert_eq!(verdict.is_ok(), ok, "config.{path} = {v}: the schema says {ok}, the agent {verdict:?}");
            let errs = schema_errors(&root, &with(&c, &path, v.clone()));
            assert_eq!(errs.is_empty(), ok, "config.{path} = {v}: the schema's own verdict {errs:?}");
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} bounds checked");
}

#[test]
fn a_key_the_schema_does_not_list_is_refused_by_both() {
    let root = schema();
    let base = full_example(&root);
    for (path, node) in config_walk(&root).objects {
        assert_eq!(
            node.get("additionalProperties"),
            Some(&json!(false)),
            "config.{path}: the schema must refuse unknown keys (additionalProperties: false)"
        );
        let key = join(&path, "not_a_key");
        let c = with(&base, &key, json!(1));
        let e = load(&c).expect_err(&format!("the agent accepts config.{key}"));
        assert!(e.contains("unknown key \"not_a_key\""), "config.{key}: {e}");
        assert!(!schema_errors(&root, &c).is_empty(), "the schema accepts config.{key}");
    }
}

#[test]
fn the_charts_profile_defaults_are_the_agents() {
    let path = Path::new(CHART).join("templates/_helpers.tpl");
    let text = read(&path);
    let begin = "{{- define \"meshkeeper.profileDefaults\" -}}";
    let start = text.find(begin).unwrap_or_else(|| panic!("{}: no {begin}", path.display())) + begin.len();
    let body = &text[start..];
    let block = &body[..body.find("{{- end }}").expect("the define's end")];
    assert!(!block.contains("{{"), "meshkeeper.profileDefaults must be plain YAML:\n{block}");
    let chart: Value = serde_yaml::from_str(block).expect("meshkeeper.profileDefaults is YAML");
    let chart = chart.as_object().expect("a mapping of profiles");
    let names: Vec<String> = profiles().into_iter().map(|(n, _)| n).collect();
    assert_eq!(chart.keys().cloned().collect::<Vec<_>>(), names, "one entry per profile");
    for (name, profile) in profiles() {
        let agent = serialized(&Settings::defaults(profile));
        for (section, keys) in chart[&name].as_object().expect("sections") {
            for (key, v) in keys.as_object().expect("keys") {
                assert_eq!(
                    v, &agent[section][key],
                    "templates/_helpers.tpl meshkeeper.profileDefaults {name}.{section}.{key} differs from agent/src/config/profile.rs"
                );
            }
        }
    }
}

#[test]
fn the_schemas_profiles_are_the_agents() {
    let root = schema();
    let names: Vec<Value> = profiles().into_iter().map(|(n, _)| json!(n)).collect();
    assert_eq!(config_schema(&root)["properties"]["profile"]["enum"], json!(names));
}

// === helm ===

fn helm_available() -> bool {
    let ok = Command::new("helm").arg("version").output().is_ok_and(|o| o.status.success());
    if !ok && std::env::var_os("MESHKEEPER_REQUIRE_TOOLS").is_some() {
        panic!("helm is required (MESHKEEPER_REQUIRE_TOOLS is set) but not on PATH");
    }
    if !ok {
        eprintln!("skipping the helm half: helm not on PATH (scripts/install-tools.sh installs it)");
    }
    ok
}

const SCHEMA_REFUSED: &str = "values don't meet the specifications of the schema";

/// `helm template` with these config values (and `--set`s): the rendered manifests, or stderr.
fn helm_template(config: &Value, sets: &[&str]) -> Result<String, String> {
    let mut values = tempfile::NamedTempFile::new().expect("values file");
    // JSON is YAML, and no string is mistaken for a YAML 1.1 boolean.
    serde_json::to_writer(&mut values, &json!({ "config": config })).expect("write values");
    let mut cmd = Command::new("helm");
    cmd.args(["template", "t", CHART, "--namespace", "meshkeeper", "-f"]).arg(values.path());
    for s in sets {
        cmd.args(["--set", s]);
    }
    let out = cmd.output().expect("run helm");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The config file in the rendered ConfigMap.
fn rendered_config(manifests: &str) -> String {
    serde_yaml::Deserializer::from_str(manifests)
        .filter_map(|d| Value::deserialize(d).ok())
        .find(|o| o["kind"] == "ConfigMap" && o["data"]["config.yaml"].is_string())
        .and_then(|o| o["data"]["config.yaml"].as_str().map(str::to_string))
        .expect("a ConfigMap with config.yaml")
}

fn without_chart_owned(config: &Value) -> Value {
    let mut c = config.clone();
    if let Some(le) = c.get_mut("leader_election").and_then(Value::as_object_mut) {
        for k in CHART_OWNED {
            le.remove(*k);
        }
    }
    c
}

#[test]
fn helm_accepts_every_profiles_defaults_and_renders_them_unchanged() {
    if !helm_available() {
        return;
    }
    let root = schema();
    let mut cases: Vec<(String, Value, Vec<&str>)> = profiles()
        .into_iter()
        .map(|(n, p)| (format!("the {n} profile's defaults"), serialized(&Settings::defaults(p)), vec![]))
        .collect();
    // The examples ask for gateway repair: the chart's guard wants its RBAC value with it.
    cases.push(("the schema's examples".into(), full_example(&root), vec!["rbac.gatewayRepair.enabled=true"]));
    for (what, config, sets) in cases {
        let config = without_chart_owned(&config);
        let manifests = helm_template(&config, &sets).unwrap_or_else(|e| panic!("helm refuses {what}:\n{e}"));
        let file = rendered_config(&manifests);
        let from_chart = Settings::from_yaml_and_env(Some(&file), &[])
            .unwrap_or_else(|e| panic!("the agent refuses the ConfigMap rendered from {what}:\n{e}\n{file}"));
        assert_eq!(Ok(from_chart), load(&config), "{what}: the rendered ConfigMap reads differently:\n{file}");
    }
}

#[test]
fn an_unquoted_off_reaches_the_agent_as_off() {
    if !helm_available() {
        return;
    }
    // What `mode: off` in a values file is after Helm's YAML 1.1 parser.
    let config = json!({"profile": "asm-onprem", "injection": {"mode": false}, "reinjection": {"mode": false}, "gateway": {"mode": false}});
    let manifests = helm_template(&config, &[]).unwrap_or_else(|e| panic!("helm refuses mode: false\n{e}"));
    let file = rendered_config(&manifests);
    let s = Settings::from_yaml_and_env(Some(&file), &[]).unwrap_or_else(|e| panic!("{e}\n{file}"));
    assert_eq!((s.injection.mode, s.reinjection.mode), (Mode::Off, Mode::Off), "{file}");
    assert_eq!(s.gateway.mode, meshkeeper::config::GatewayMode::Off, "{file}");
}

/// (key, value, whether the agent accepts it), each set into the schema's full example.
fn probes() -> Vec<(&'static str, Value, bool)> {
    vec![
        ("http.listen", json!("0.0.0.0:9090"), true),
        ("http.listen", json!("[::]:9090"), true),
        ("http.listen", json!("localhost:9090"), false),
        ("http.listen", json!("0.0.0.0"), false),
        ("http.listen", json!("0.0.0.0:65536"), false),
        ("http.listen", json!("256.0.0.1:9090"), false),
        ("injection.label", json!("istio.io/rev=asm-1234"), true),
        ("injection.label", json!("istio-injection=true"), false),
        ("injection.label", json!("istio.io/rev="), false),
        ("injection.label", json!("sidecar=on"), false),
        ("injection.label", json!("istio-injection"), false),
        ("injection.include", json!(["team-*", "a?c"]), true),
        ("injection.include", json!([]), false),
        ("injection.exclude", json!(["Kube_System"]), false),
        ("injection.exclude", json!([""]), false),
        ("injection.selector", json!("env=prod,team in (a, b),!missing"), true),
        ("injection.selector", json!("env==prod"), true),
        ("injection.selector", json!("mesh="), true),
        ("injection.selector", json!("example.com/tier notin (batch)"), true),
        ("injection.selector", json!("env in prod"), false),
        ("injection.selector", json!("=x"), false),
        ("injection.selector", json!("a b c"), false),
        ("injection.selector", json!("env in (bad value)"), false),
        ("injection.opt_out_label", json!("example.com/opt-out=yes"), true),
        ("injection.opt_out_label", json!("noequals"), false),
        ("injection.opt_out_label", json!("-a=b"), false),
        ("injection.opt_out_label", json!("Bad_Prefix/a=b"), false),
        ("injection.opt_out_label", json!("a=b c"), false),
        ("injection.mode", json!("fix"), false),
        ("reinjection.maintenance_windows", json!([{"days": ["sat"], "start": "22:00", "end": "04:00"}]), true),
        ("reinjection.maintenance_windows", json!([{"start": "2:00", "end": "06:00"}]), false),
        ("reinjection.maintenance_windows", json!([{"start": "24:01", "end": "06:00"}]), false),
        ("reinjection.maintenance_windows", json!([{"start": "12:60", "end": "13:00"}]), false),
        ("reinjection.maintenance_windows", json!([{"days": ["monday"], "start": "02:00", "end": "06:00"}]), false),
        ("reinjection.maintenance_windows", json!([{"start": "02:00"}]), false),
        ("reinjection.expected_proxy_version", json!("1.4 x"), false),
        ("reinjection.injector_configmap", json!("istio-sidecar-injector.v2"), true),
        ("reinjection.injector_configmap", json!("Istio_Injector"), false),
        ("control_plane.namespace", json!("Istio-System"), false),
        ("control_plane.components", json!([{"name": "istiod", "min_ready": 2, "versioned": true}]), true),
        ("control_plane.components", json!([]), false),
        ("control_plane.components", json!([{"min_ready": 1}]), false),
        ("control_plane.components", json!([{"name": "istio_pilot"}]), false),
        ("control_plane.ignored_namespaces", json!(["GKE"]), false),
        ("control_plane.mtls_mode", json!("STRICT"), false),
        ("control_plane.injector_webhook", json!(""), false),
        ("gateway.load_balancer_ip", json!("203.0.113.7"), true),
        ("gateway.load_balancer_ip", json!("2001:db8::7"), true),
        ("gateway.load_balancer_ip", json!("300.1.1.1"), false),
        ("gateway.load_balancer_ip", json!("gateway.example.com"), false),
        ("gateway.load_balancer_ip_annotation", json!("metallb.universe.tf/loadBalancerIPs"), true),
        ("gateway.load_balancer_ip_annotation", json!("-bad"), false),
        ("gateway.node_ports", json!({"http2": 30000, "https": 32767, "tcp": 0}), true),
        ("gateway.node_ports", json!({"http2": 29999}), false),
        ("gateway.node_ports", json!({"http2": 32768}), false),
        ("gateway.node_ports", json!({"HTTP2": 31380}), false),
        ("gateway.node_ports", json!({"http2": "x"}), false),
        ("gateway.mode", json!("ingress"), false),
        ("gateway.service", json!("istio.ingressgateway"), false),
        ("leader_election.identity", json!("x".repeat(129)), false),
        ("resync_seconds", json!("5m"), false),
        ("dry_run", json!("yes"), false),
        ("client.write_qps", json!(0), false),
        ("profile", json!("ambient"), false),
    ]
}

#[test]
fn helm_and_the_agent_agree_on_good_and_bad_values() {
    let root = schema();
    let base = full_example(&root);
    let helm = helm_available();
    for (path, v, accepted) in probes() {
        let c = with(&base, path, v.clone());
        let agent = load(&c);
        assert_eq!(agent.is_ok(), accepted, "config.{path} = {v}: the agent says {agent:?}");
        if helm {
            let verdict = helm_template(&c, &["rbac.gatewayRepair.enabled=true"]);
            let schema_ok = !matches!(&verdict, Err(e) if e.contains(SCHEMA_REFUSED));
            assert_eq!(schema_ok, accepted, "config.{path} = {v}: helm's schema validation says {verdict:?}");
        }
    }
}
