//! Point 8, bad configuration: malformed files and `MESHKEEPER_*` overrides. The real binary
//! runs `meshkeeper run` and `meshkeeper check` against kube-sim with each; every one must
//! exit 2 with one readable line on stderr that names the key (for an environment override,
//! the variable), and send kube-sim no request at all: a bad configuration is refused before
//! anything touches the cluster.

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use kube_sim::{Sim, SimOptions};

use crate::common::*;
use crate::table::Row;

const SCENARIO: &str = "8 bad configuration";

pub fn run() -> BoxFuture<'static, Vec<Row>> {
    scenario().boxed()
}

/// One malformed configuration.
struct Case {
    what: &'static str,
    /// The file's text; None: `--config` names a file that does not exist.
    yaml: Option<&'static str>,
    env: &'static [(&'static str, &'static str)],
    /// Text the message must contain: the key (or the variable, the flag).
    names: &'static [&'static str],
}

const fn file(what: &'static str, yaml: &'static str, names: &'static [&'static str]) -> Case {
    Case { what, yaml: Some(yaml), env: &[], names }
}

const fn env(what: &'static str, env: &'static [(&'static str, &'static str)], names: &'static [&'static str]) -> Case {
    Case { what, yaml: Some("# only the environment\n"), env, names }
}

const CASES: &[Case] = &[
    // Wrong types.
    file("wrong type: a word for a boolean", "dry_run: maybe\n", &["dry_run"]),
    file("wrong type: a word for a number", "client:\n  write_burst: many\n", &["client.write_burst"]),
    file(
        "wrong type: a list for a string",
        "control_plane:\n  namespace: [istio-system]\n",
        &["control_plane.namespace"],
    ),
    file("wrong type: a scalar for a section", "gateway: manual\n", &["gateway"]),
    // Unknown keys.
    file("unknown key", "colour: blue\n", &["colour"]),
    file("typo'd key", "injection:\n  mdoe: enforce\n", &["injection.mdoe"]),
    // Out of range.
    file("out of range: resync period", "resync_seconds: 5\n", &["resync_seconds"]),
    file(
        "out of range: negative count",
        "reinjection:\n  max_restarts_per_hour: -1\n",
        &["reinjection.max_restarts_per_hour"],
    ),
    file("out of range: nodePort", "gateway:\n  node_ports:\n    http2: 80\n", &["gateway.node_ports.http2"]),
    // Times, windows, globs, selectors, labels, versions.
    file(
        "bad time of day in a maintenance window",
        "reinjection:\n  maintenance_windows:\n    - {start: '25:00', end: '06:00'}\n",
        &["reinjection.maintenance_windows[0].start"],
    ),
    file(
        "bad weekday in a maintenance window",
        "reinjection:\n  maintenance_windows:\n    - {days: [Someday], start: '01:00', end: '02:00'}\n",
        &["reinjection.maintenance_windows[0].days[0]"],
    ),
    file(
        "empty maintenance window",
        "reinjection:\n  maintenance_windows:\n    - {start: '03:00', end: '03:00'}\n",
        &["reinjection.maintenance_windows[0]"],
    ),
    file("bad namespace glob", "injection:\n  exclude: ['Kube_System']\n", &["injection.exclude[0]"]),
    file("bad label selector", "injection:\n  selector: 'env in prod'\n", &["injection.selector"]),
    file("bad label pair", "injection:\n  label: istio-injection\n", &["injection.label"]),
    file("bad version range", "precheck:\n  kubernetes_versions: 1.16-1.13\n", &["precheck.kubernetes_versions"]),
    file(
        "an unquoted version (YAML reads 1.10 as 1.1)",
        "reinjection:\n  expected_proxy_version: 1.10\n",
        &["reinjection.expected_proxy_version", "quoted"],
    ),
    file("unknown enum value", "control_plane:\n  mtls_mode: sometimes\n", &["control_plane.mtls_mode"]),
    file("unknown profile", "profile: ambient\n", &["profile"]),
    // Settings that contradict each other.
    file(
        "conflicting: integrated gateway without an IP",
        "gateway:\n  mode: integrated\n",
        &["gateway.load_balancer_ip"],
    ),
    file(
        "conflicting: opt-out label on the enforced key",
        "injection:\n  opt_out_label: istio-injection=disabled\n",
        &["injection.opt_out_label"],
    ),
    file(
        "conflicting: retry period not below the renew deadline",
        "leader_election:\n  retry_period_seconds: 10\n",
        &["leader_election.retry_period_seconds"],
    ),
    file("bad listen address", "http:\n  listen: localhost\n", &["http.listen"]),
    // The file itself.
    file("invalid YAML syntax", "injection:\n  mode: [enforce\n", &["--config", "line"]),
    file("a tab in the indentation", "injection:\n\tmode: enforce\n", &["--config", "line"]),
    file("a list, not a mapping", "- injection\n- gateway\n", &["--config"]),
    file(
        "a key given twice",
        "dry_run: true\nresync_seconds: 60\ndry_run: false\n",
        &["--config", "dry_run", "line 3"],
    ),
    file(
        "a word where a list of mappings goes",
        "control_plane:\n  components: [istiod]\n",
        &["control_plane.components[0]"],
    ),
    file(
        "a number too big for its type",
        "client:\n  timeout_seconds: 99999999999999999999999\n",
        &["client.timeout_seconds"],
    ),
    Case { what: "missing file", yaml: None, env: &[], names: &["--config", "/nonexistent/meshkeeper.yaml"] },
    // Environment overrides.
    env("env: wrong type (boolean)", &[("MESHKEEPER_DRY_RUN", "maybe")], &["MESHKEEPER_DRY_RUN"]),
    env(
        "env: wrong type (number)",
        &[("MESHKEEPER_CLIENT__TIMEOUT_SECONDS", "soon")],
        &["MESHKEEPER_CLIENT__TIMEOUT_SECONDS"],
    ),
    env(
        "env: out of range",
        &[("MESHKEEPER_GATEWAY__NODE_PORTS__HTTP2", "80")],
        &["MESHKEEPER_GATEWAY__NODE_PORTS__HTTP2"],
    ),
    env("env: unknown MESHKEEPER_ variable", &[("MESHKEEPER_COLOUR", "blue")], &["MESHKEEPER_COLOUR"]),
    env(
        "env: bad nested key",
        &[("MESHKEEPER_GATEWAY__NODEPORTS__HTTP2", "31380")],
        &["MESHKEEPER_GATEWAY__NODEPORTS__HTTP2"],
    ),
    env("env: one underscore between levels", &[("MESHKEEPER_GATEWAY_MODE", "off")], &["MESHKEEPER_GATEWAY_MODE"]),
    env(
        "env: bad list item",
        &[("MESHKEEPER_INJECTION__EXCLUDE", "kube-system,Team_X")],
        &["MESHKEEPER_INJECTION__EXCLUDE"],
    ),
    env("env: a scalar for a section", &[("MESHKEEPER_GATEWAY", "off")], &["MESHKEEPER_GATEWAY"]),
];

/// What one command did.
struct Outcome {
    code: Option<i32>,
    stderr: String,
    took: Duration,
}

async fn invoke(sim: &Sim, command: &[&str], config: &std::path::Path, env: &[(&str, &str)]) -> Outcome {
    let started = Instant::now();
    let mut cmd = meshkeeper();
    cmd.args(command)
        .arg("--config")
        .arg(config)
        .arg("--kubeconfig")
        .arg(sim.kubeconfig_path())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(20), cmd.output())
        .await
        .expect("meshkeeper exits within 20 s on a bad configuration")
        .expect("run meshkeeper");
    Outcome {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    }
}

/// Requests kube-sim has seen from meshkeeper.
fn meshkeeper_requests(sim: &Sim) -> usize {
    sim.requests().iter().filter(|r| r.user_agent.starts_with("meshkeeper/")).count()
}

/// Why a message is not one readable line, if it is not.
fn unreadable(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let debug = ["Error(", "Some(", "String(\"", "Integer(", " { ", "ConfigError", "kind:", "panicked"];
    if lines.len() != 1 {
        Some(format!("{} lines", lines.len()))
    } else if let Some(d) = debug.iter().find(|d| lines[0].contains(**d)) {
        Some(format!("Rust Debug output ({d})"))
    } else if lines[0].contains("expected struct ") {
        Some("a Rust type's name".into())
    } else if !lines[0].starts_with("meshkeeper: ") {
        Some("not meshkeeper's own line".into())
    } else {
        None
    }
}

async fn scenario() -> Vec<Row> {
    let mut rows = Vec::new();
    let sim = cluster_with(SimOptions::default().actors(false), true).await;
    sim.clear_requests();
    for case in CASES {
        let f = tmp_file(case.yaml.unwrap_or_default());
        let path = match case.yaml {
            Some(_) => f.path().to_path_buf(),
            None => std::path::PathBuf::from("/nonexistent/meshkeeper.yaml"),
        };
        let before = meshkeeper_requests(&sim);
        let run = invoke(&sim, &["run"], &path, case.env).await;
        let check = invoke(&sim, &["check"], &path, case.env).await;
        let requests = meshkeeper_requests(&sim) - before;
        let message = run.stderr.trim().to_string();
        let missing: Vec<&str> = case.names.iter().copied().filter(|k| !message.contains(k)).collect();
        let problems: Vec<String> = [
            (run.code != Some(2)).then(|| format!("run exited {:?}", run.code)),
            (check.code != Some(2)).then(|| format!("check exited {:?}", check.code)),
            (check.stderr.trim() != message).then(|| format!("check said otherwise: {}", check.stderr.trim())),
            (!missing.is_empty()).then(|| format!("does not name {missing:?}")),
            unreadable(&run.stderr),
            (requests > 0).then(|| format!("{requests} requests to kube-sim")),
        ]
        .into_iter()
        .flatten()
        .collect();
        let setting = match (case.yaml, case.env) {
            (_, [(k, v), ..]) => format!("{k}={v}"),
            (Some(y), []) => y.trim_end().replace('\n', " / ").replace('\t', "<TAB>"),
            (None, []) => "--config /nonexistent/meshkeeper.yaml".into(),
        };
        rows.push(Row::check(
            SCENARIO,
            &format!("{}: {setting}", case.what),
            &format!("exit 2 (run and check), one line naming {}, no request", case.names.join(" and ")),
            format!(
                "run {:?} in {} ms, check {:?}; {requests} requests; {message}{}",
                run.code.unwrap_or(-1),
                run.took.as_millis(),
                check.code.unwrap_or(-1),
                if problems.is_empty() { String::new() } else { format!(" -- PROBLEMS: {}", problems.join("; ")) }
            ),
            problems.is_empty(),
        ));
    }
    // The contrast: an empty file is the profile's defaults (by design), so `check` runs.
    let empty = tmp_file("");
    let before = sim.requests().len();
    let check = invoke(&sim, &["check"], empty.path(), &[]).await;
    let writes: Vec<String> = sim.requests()[before..]
        .iter()
        .filter(|r| {
            matches!(r.verb.as_str(), "create" | "update" | "patch" | "delete")
                && r.resource != "selfsubjectaccessreviews"
        })
        .map(|r| format!("{} {}", r.verb, r.resource))
        .collect();
    rows.push(Row::check(
        SCENARIO,
        "an empty file (not an error: the asm-onprem defaults, documented and unit-tested)",
        "check runs on the defaults: exit 0 or 1, no write",
        format!(
            "check exited {:?}; writes: {}",
            check.code,
            if writes.is_empty() { "none".into() } else { writes.join(", ") }
        ),
        matches!(check.code, Some(0 | 1)) && writes.is_empty(),
    ));
    rows
}
