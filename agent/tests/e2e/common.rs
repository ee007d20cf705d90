//! The harness: a seeded simulated cluster, the agent as a child process, kubectl.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube_sim::{Sim, SimOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_meshkeeper");

/// The binary under test: this build's, or `E2E_MESHKEEPER_BIN` (to run the suite against
/// another build, e.g. the release before a fix, and watch a test fail).
pub fn bin() -> String {
    std::env::var("E2E_MESHKEEPER_BIN").unwrap_or_else(|_| BIN.to_string())
}

/// The agent's command. Test-harness variables are removed from its environment: every
/// `MESHKEEPER_*` variable is a configuration key to the agent, and an unknown one is an error.
pub fn meshkeeper() -> Command {
    let mut c = Command::new(bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("MESHKEEPER_") {
            c.env_remove(k);
        }
    }
    c
}

/// Whether tools are required (the test command sets it); otherwise a missing tool skips.
pub fn require_tools() -> bool {
    std::env::var_os("MESHKEEPER_REQUIRE_TOOLS").is_some()
}

pub fn have(tool: &str) -> bool {
    let found =
        std::process::Command::new(tool).arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    if !found && require_tools() {
        panic!("{tool} is required (MESHKEEPER_REQUIRE_TOOLS is set) but not on PATH");
    }
    if !found {
        eprintln!("skipping: {tool} not found");
    }
    found
}

/// A simulated cluster with the install guide's layout and the agent's namespace.
pub async fn cluster() -> Sim {
    cluster_with(SimOptions::default(), true).await
}

/// A seeded simulated cluster with these options, with or without the `meshkeeper` namespace.
pub async fn cluster_with(opts: SimOptions, agent_namespace: bool) -> Sim {
    let sim = Sim::start(opts).await.expect("start kube-sim");
    kube_sim::seed::asm_onprem(&sim.cluster()).expect("seed");
    if agent_namespace {
        sim.cluster().create("v1", "namespaces", "", json!({"metadata": {"name": "meshkeeper"}})).expect("ns");
    }
    sim
}

/// The running agent.
pub struct Agent {
    pub child: Child,
    pub addr: String,
    pub logs: Arc<Mutex<Vec<String>>>,
    _config: tempfile::NamedTempFile,
    _keep: Vec<tempfile::NamedTempFile>,
}

/// Base config for tests: loopback on a free port, Lease in `meshkeeper`, fast resync.
pub fn config(extra: &str) -> String {
    format!(
        "http:\n  listen: 127.0.0.1:0\nleader_election:\n  namespace: meshkeeper\n  lease_duration_seconds: 15\nresync_seconds: 10\n{extra}"
    )
}

/// As [`config`], with more `leader_election` keys (lines indented by two spaces).
pub fn config_le(le: &str, extra: &str) -> String {
    format!("http:\n  listen: 127.0.0.1:0\nleader_election:\n  namespace: meshkeeper\n{le}resync_seconds: 10\n{extra}")
}

pub async fn start(sim: &Sim, config_yaml: &str) -> Agent {
    start_with(sim, config_yaml, &["run"]).await
}

pub async fn start_with(sim: &Sim, config_yaml: &str, args: &[&str]) -> Agent {
    start_with_env(sim, config_yaml, args, &[]).await
}

/// As [`start_with`], with environment variables for the agent (e.g. the ones a rendered
/// Deployment sets); they win over the harness's `RUST_LOG`.
pub async fn start_with_env(sim: &Sim, config_yaml: &str, args: &[&str], env: &[(String, String)]) -> Agent {
    let mut file = tempfile::NamedTempFile::new().expect("config file");
    std::io::Write::write_all(&mut file, config_yaml.as_bytes()).expect("write config");
    let mut cmd = meshkeeper();
    cmd.args(args);
    if !args.contains(&"--config") {
        cmd.arg("--config").arg(file.path());
    }
    if !args.contains(&"--kubeconfig") {
        cmd.arg("--kubeconfig").arg(sim.kubeconfig_path());
    }
    if !args.contains(&"--log-format") {
        cmd.args(["--log-format", "json"]);
    }
    let mut child = cmd
        .env("RUST_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn meshkeeper");
    let stderr = child.stderr.take().expect("stderr");
    let logs = Arc::new(Mutex::new(Vec::new()));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let sink = logs.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            let _ = tx.send(l.clone());
            sink.lock().unwrap().push(l);
        }
    });
    let addr = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(l) = rx.recv().await {
            if let Ok(v) = serde_json::from_str::<Value>(&l)
                && let Some(a) = v["listen"].as_str()
            {
                return a.to_string();
            }
            // Text logs: `... meshkeeper starting version=0.1.0 listen=127.0.0.1:PORT ...`
            if let Some(rest) = l.split(" listen=").nth(1) {
                return rest.split_whitespace().next().unwrap_or_default().to_string();
            }
        }
        panic!("meshkeeper exited before listening; logs:\n{}", logs_text(&logs));
    })
    .await
    .expect("meshkeeper did not start listening within 20 s");
    Agent { child, addr, logs, _config: file, _keep: Vec::new() }
}

fn logs_text(logs: &Arc<Mutex<Vec<String>>>) -> String {
    logs.lock().unwrap().join("\n")
}

/// A minimal HTTP/1.1 client (GET/POST), enough for our own endpoints. No answer (nothing
/// listening, or the process died mid-answer, e.g. SIGKILLed while sampled) is code 0.
pub async fn http(addr: &str, method: &str, path: &str) -> (u16, String, String) {
    let none = || (0, String::new(), String::new());
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return none();
    };
    let req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    let mut buf = Vec::new();
    if s.write_all(req.as_bytes()).await.is_err() || s.read_to_end(&mut buf).await.is_err() {
        return none();
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let ctype = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type: ").map(str::to_string))
        .unwrap_or_default();
    // Our responses are small; chunked bodies are de-chunked naively.
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_string() };
    (code, ctype, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

impl Agent {
    /// Keeps a file alive as long as the agent.
    pub fn keep(&mut self, f: tempfile::NamedTempFile) {
        self._keep.push(f);
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let (c, _, b) = http(&self.addr, "GET", path).await;
        (c, b)
    }

    pub async fn status(&self) -> Value {
        serde_json::from_str(&self.get("/status").await.1).expect("status JSON")
    }

    /// The value of one series, e.g. `meshkeeper_leader` or `meshkeeper_gateway_drift{field="node_port:http2"}`.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        metric_value(&self.get("/metrics").await.1, series)
    }

    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while http(&self.addr, "GET", "/readyz").await.0 != 200 {
            assert!(Instant::now() < deadline, "not ready within 20 s; logs:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_leader(&self) {
        let addr = self.addr.clone();
        eventually(Duration::from_secs(20), "leader", || {
            let addr = addr.clone();
            async move {
                serde_json::from_str::<Value>(&http(&addr, "GET", "/status").await.2)
                    .is_ok_and(|s| s["role"] == "leader")
            }
        })
        .await;
    }

    /// Waits (bounded) until /metrics holds exactly this line, e.g. `meshkeeper_leader 1`.
    pub async fn wait_metrics_line(&self, line: &str, within: Duration) {
        let (addr, line) = (self.addr.clone(), line.to_string());
        eventually(within, &line.clone(), || {
            let (addr, line) = (addr.clone(), line.clone());
            async move { http(&addr, "GET", "/metrics").await.2.lines().any(|l| l == line) }
        })
        .await;
    }

    pub async fn has_finding(&self, reason: &str) -> bool {
        self.status().await["findings"].as_array().is_some_and(|f| f.iter().any(|x| x["reason"] == reason))
    }

    pub async fn wait_finding(&self, reason: &str, present: bool, within: Duration) {
        let addr = self.addr.clone();
        let reason = reason.to_string();
        eventually(within, &format!("finding {reason} present={present}"), || {
            let (addr, reason) = (addr.clone(), reason.clone());
            async move {
                let s: Value = serde_json::from_str(&http(&addr, "GET", "/status").await.2).unwrap_or_default();
                s["findings"].as_array().is_some_and(|f| f.iter().any(|x| x["reason"] == reason.as_str())) == present
            }
        })
        .await;
    }

    pub fn sigterm(&self) {
        let pid = self.child.id().expect("pid");
        std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill");
    }

    /// Kills the process without a chance to clean up (no Lease release).
    pub fn sigkill(&mut self) {
        self.child.start_kill().expect("kill");
    }

    pub fn logs(&self) -> String {
        logs_text(&self.logs)
    }
}

/// The value of one series in a Prometheus text exposition.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
}

/// Polls `f` until it holds, failing after `within` (a failure bound, not a synchronisation sleep).
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if f().await {
            return;
        }
        if Instant::now() > deadline {
            panic!("timed out after {within:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (bounded) until a condition on the simulated cluster holds, re-checking on every change.
pub async fn until(
    sim: &Sim,
    within: Duration,
    what: &str,
    mut cond: impl FnMut(&kube_sim::Cluster) -> bool,
) -> Duration {
    let c = sim.cluster();
    let mut rx = c.subscribe();
    let start = Instant::now();
    if cond(&c) {
        return start.elapsed();
    }
    let r = tokio::time::timeout(within, async {
        loop {
            match rx.recv().await {
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if cond(&c) {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    })
    .await;
    assert!(r.is_ok(), "timed out after {within:?} waiting for: {what}");
    start.elapsed()
}

/// Runs the real kubectl against the sim (asynchronously: the sim serves on this runtime);
/// returns (success, stdout+stderr).
pub async fn kubectl(sim: &Sim, args: &[&str]) -> (bool, String) {
    let out = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", sim.kubeconfig_path())
        .output()
        .await
        .expect("run kubectl");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Moves the gateway's http2 nodePort to 32080 with the real kubectl, as an upgrade would.
pub async fn kubectl_move_http2(sim: &Sim) {
    let patch = r#"{"spec":{"ports":[{"port":80,"nodePort":32080}]}}"#;
    let (ok, out) = kubectl(sim, &["-n", "istio-system", "patch", "svc", "istio-ingressgateway", "-p", patch]).await;
    assert!(ok, "{out}");
}

/// Removes `istio-injection` from a namespace, as someone's `kubectl label ns X istio-injection-` would.
pub fn remove_injection_label(sim: &Sim, ns: &str) {
    sim.cluster()
        .patch(
            "v1",
            "namespaces",
            "",
            ns,
            kube_sim::PatchType::Json,
            &json!([{"op": "remove", "path": "/metadata/labels/istio-injection"}]),
            "test",
        )
        .expect("remove label");
}

pub fn label(sim: &Sim, ns: &str, key: &str) -> Option<String> {
    sim.cluster().get("v1", "namespaces", "", ns)?["metadata"]["labels"][key].as_str().map(str::to_string)
}

/// Writes (create/update/patch/delete) meshkeeper made to a resource.
pub fn writes_by_meshkeeper(sim: &Sim, resource: &str) -> Vec<kube_sim::RequestRecord> {
    sim.requests()
        .into_iter()
        .filter(|r| {
            r.user_agent.starts_with("meshkeeper/")
                && r.resource == resource
                && matches!(r.verb.as_str(), "create" | "update" | "patch" | "delete")
        })
        .collect()
}

/// Requests meshkeeper sent with this verb (get, list, watch, create, update, patch, delete).
pub fn requests_by_meshkeeper(sim: &Sim, verb: &str, resource: &str) -> Vec<kube_sim::RequestRecord> {
    sim.requests()
        .into_iter()
        .filter(|r| {
            r.user_agent.starts_with("meshkeeper/") && r.verb == verb && (resource.is_empty() || r.resource == resource)
        })
        .collect()
}

pub fn tmp_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("tmp");
    std::io::Write::write_all(&mut f, text.as_bytes()).expect("write");
    f
}

#[allow(dead_code)]
pub fn path(f: &tempfile::NamedTempFile) -> PathBuf {
    f.path().to_path_buf()
}
