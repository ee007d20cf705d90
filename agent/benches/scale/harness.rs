//! The scale benchmark's machinery, shared by the benchmark (`benches/scale/main.rs`, full size,
//! release build) and its small version in the test command (`tests/e2e/scale.rs`): seed kube-sim,
//! run the real `meshkeeper` binary and a naive full-object reflector as separate processes,
//! measure them side by side.
//!
//! Nothing here asserts: it measures and returns numbers; the callers print them or bound them.

#![allow(dead_code)] // each caller uses a different part

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kube_sim::{PatchType, Sim, SimOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// The size and timing of one run.
#[derive(Debug, Clone)]
pub struct Params {
    pub pods: usize,
    pub namespaces: usize,
    pub deployments: usize,
    /// Event-to-action trials per kind and phase (idle, churn); needs 2 x trials namespaces.
    pub trials: usize,
    /// Steady-state measurement window (requests, CPU) while idle and under churn.
    pub window: Duration,
    /// Background pod changes per second in the churn phase.
    pub churn_per_sec: u32,
    /// Whether the server serves streaming lists (`sendInitialEvents`).
    pub streaming_lists: bool,
}

impl Params {
    pub fn full() -> Params {
        Params {
            pods: 100_000,
            namespaces: 5_000,
            deployments: 2_000,
            trials: 20,
            window: Duration::from_secs(60),
            churn_per_sec: 20,
            streaming_lists: true,
        }
    }

    pub fn scaled(&self, pods: usize) -> Params {
        let f = pods as f64 / self.pods as f64;
        Params {
            pods,
            namespaces: ((self.namespaces as f64 * f) as usize).max(1),
            deployments: ((self.deployments as f64 * f) as usize).max(1),
            ..self.clone()
        }
    }
}

/// Everything measured for one size.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    pub pods: usize,
    pub namespaces: usize,
    pub deployments: usize,
    pub seed_seconds: f64,
    pub ready_seconds: f64,
    pub first_plan_seconds: f64,
    pub peak_rss_bytes: u64,
    pub steady_rss_bytes: u64,
    pub empty_rss_bytes: u64,
    pub cached_pods: f64,
    /// Event-to-action latencies (ms) by kind and phase: (p50, p99, samples).
    pub latency_ms: BTreeMap<String, (f64, f64, usize)>,
    /// meshkeeper's requests per minute at steady state by verb (idle).
    pub requests_per_minute: BTreeMap<String, f64>,
    /// The same by verb, resource and code (what the steady requests are).
    pub requests_by_kind: BTreeMap<String, usize>,
    /// LISTs meshkeeper made after its first sync (idle and churn windows).
    pub lists_after_sync: usize,
    /// Share of the steady requests that are periodic probes (access reviews, discovery, /version).
    pub probe_share: f64,
    pub cpu_seconds_per_minute_idle: f64,
    pub cpu_seconds_per_minute_churn: f64,
    /// Evaluation passes and their mean duration (ms) in the churn window.
    pub churn_passes: f64,
    pub churn_pass_ms: f64,
    pub baseline_ready_seconds: f64,
    pub baseline_rss_bytes: u64,
}

// === processes ===============================================================================

/// A child process killed when dropped.
pub struct Proc {
    pub child: Child,
    pub pid: u32,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn proc_status(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
        * 1024
}

/// Resident set size of a process (bytes).
pub fn rss(pid: u32) -> u64 {
    proc_status(pid, "VmRSS:")
}

/// Peak resident set size of a process (bytes).
pub fn peak_rss(pid: u32) -> u64 {
    proc_status(pid, "VmHWM:")
}

/// User + system CPU time of a process (seconds).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0 // USER_HZ
}

/// Whether a process is still running (not exited, not a zombie).
pub fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().next()).is_some_and(|state| state != "Z")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

/// A minimal HTTP GET against the agent: (status, body).
pub async fn get(addr: &str, path: &str) -> (u16, String) {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return (0, String::new());
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return (0, String::new());
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut s = body;
        while let Some((len, rest)) = s.split_once("\r\n") {
            let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
            if n == 0 || rest.len() < n {
                break;
            }
            out.push_str(&rest[..n]);
            s = rest[n..].trim_start_matches("\r\n");
        }
        out
    } else {
        body.to_string()
    };
    (code, body)
}

/// The value of one series in an exposition.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')).and_then(|v| v.parse().ok()))
}

/// Polls `f` every 10 ms until it holds; None after `within`.
pub async fn poll<F, Fut>(within: Duration, mut f: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < within {
        if f().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// The agent's configuration for the benchmark: every capability on and enforcing, budgets
/// and write rate at their maximum so that the seed's broken workloads are all restarted at
/// start (their rollouts never finish: the cluster's controllers are held) before the
/// measurement windows, and a contest threshold the repeated trials never reach.
pub fn agent_config(port: u16) -> String {
    format!(
        "http:\n  listen: 127.0.0.1:{port}\n\
         resync_seconds: 300\n\
         client:\n  write_qps: 1000\n  write_burst: 1000\n\
         leader_election:\n  namespace: meshkeeper\n\
         events:\n  enabled: false\n\
         injection:\n  mode: enforce\n\
         reinjection:\n  mode: enforce\n  max_restarts_per_hour: 10000\n  max_rollouts_in_progress: 1000\n  cooldown_minutes: 60\n\
         gateway:\n  repair: true\n\
         repairs:\n  contest_reverts: 1000\n"
    )
}

/// Starts the agent (a separate process); returns it with its HTTP address.
pub async fn start_agent(bin: &Path, sim: &Sim, dir: &Path) -> (Proc, String) {
    let port = free_port();
    let config = dir.join("meshkeeper.yaml");
    std::fs::write(&config, agent_config(port)).expect("write config");
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars() {
        if k.starts_with("MESHKEEPER_") {
            cmd.env_remove(k);
        }
    }
    let child = cmd
        .args(["run", "--log-format", "json", "--config"])
        .arg(&config)
        .arg("--kubeconfig")
        .arg(sim.kubeconfig_path())
        .env("RUST_LOG", "warn")
        // As the image and the chart's Deployment run it (mimalloc returns freed pages at once).
        .env("MIMALLOC_PURGE_DELAY", "0")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("meshkeeper.log")).map(Stdio::from).unwrap_or_else(|_| Stdio::null()))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn meshkeeper");
    let pid = child.id().unwrap_or(0);
    (Proc { child, pid }, format!("127.0.0.1:{port}"))
}

/// Starts the naive baseline: this same executable in its reflector role (`role_env` set), a
/// full-object kube-rs reflector over every pod. `args` select the role in a test binary.
pub async fn start_reflector(
    exe: &Path,
    args: &[&str],
    sim: &Sim,
) -> (Proc, tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) {
    let mut child = Command::new(exe)
        .args(args)
        .env(ROLE_ENV, "reflector")
        .env("MK_SCALE_KUBECONFIG", sim.kubeconfig_path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the reflector");
    let pid = child.id().unwrap_or(0);
    let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    (Proc { child, pid }, lines)
}

/// The environment variable that turns this executable into the baseline reflector.
pub const ROLE_ENV: &str = "MK_SCALE_ROLE";

/// The baseline's body: a plain kube-rs reflector keeping every Pod whole (what a controller
/// written the straightforward way holds), with kube-runtime's default (paged) initial list.
/// Prints `READY <seconds>` once the store is complete, then keeps watching until killed.
pub async fn reflector_role() {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::Pod;
    use kube::runtime::{WatchStreamExt, reflector, watcher};
    let path = std::env::var("MK_SCALE_KUBECONFIG").expect("MK_SCALE_KUBECONFIG");
    let kc = kube::config::Kubeconfig::read_from(path).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("config");
    let client = kube::Client::try_from(config).expect("client");
    let start = Instant::now();
    let (reader, writer) = reflector::store::<Pod>();
    let stream = reflector(writer, watcher(kube::Api::<Pod>::all(client), watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while stream.next().await.is_some() {}
    });
    reader.wait_until_ready().await.expect("reflector ready");
    println!("READY {:.3} {}", start.elapsed().as_secs_f64(), reader.len());
    std::future::pending::<()>().await;
}

// === the seed ================================================================================

const PROXY_CURRENT: &str = "gcr.io/gke-release/asm/proxyv2:1.4.10-asm.18";
const PROXY_STALE: &str = "gcr.io/gke-release/asm/proxyv2:1.4.9-asm.3";

/// The sidecar state of a seeded workload: 80% injected and current, 10% without the sidecar,
/// 10% with an older proxy.
fn sidecar(deploy: usize) -> Option<&'static str> {
    match deploy % 10 {
        0 => None,
        1 => Some(PROXY_STALE),
        _ => Some(PROXY_CURRENT),
    }
}

/// A pod as a real API server serves an injected one (about 2.4 KB of JSON).
pub fn pod_json(ns: &str, app: &str, hash: &str, i: usize, rs_uid: &str, proxy: Option<&str>) -> Value {
    let mut containers = vec![json!({"name": "app", "image": format!("registry.example.com/{ns}/{app}:1.2.3"),
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "readinessProbe": {"httpGet": {"path": "/app-health/app/readyz", "port": 15020}, "periodSeconds": 10}})];
    let mut statuses =
        vec![json!({"name": "app", "image": "x", "imageID": "docker-pullable://x@sha256:0", "ready": true,
        "restartCount": 0, "started": true, "state": {"running": {"startedAt": "2026-11-25T07:00:03Z"}}})];
    let mut annotations = json!({});
    let mut init = json!([]);
    if let Some(image) = proxy {
        containers.push(json!({"name": "istio-proxy", "image": image,
            "args": ["proxy", "sidecar", "--domain", format!("{ns}.svc.cluster.local"), "--serviceCluster", format!("{app}.{ns}"), "--proxyLogLevel=warning", "--concurrency", "2"],
            "env": [{"name": "JWT_POLICY", "value": "third-party-jwt"}, {"name": "PILOT_CERT_PROVIDER", "value": "istiod"},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}, {"name": "ISTIO_META_WORKLOAD_NAME", "value": app}],
            "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
            "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021}, "initialDelaySeconds": 1, "periodSeconds": 2},
            "resources": {"requests": {"cpu": "10m", "memory": "40Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}},
            "securityContext": {"runAsUser": 1337, "runAsGroup": 1337, "runAsNonRoot": true, "readOnlyRootFilesystem": true}}));
        statuses.push(
            json!({"name": "istio-proxy", "image": image, "imageID": "docker-pullable://x@sha256:1", "ready": true,
            "restartCount": 0, "started": true, "state": {"running": {"startedAt": "2026-11-25T07:00:02Z"}}}),
        );
        annotations = json!({"sidecar.istio.io/status": "{\"version\":\"1\",\"initContainers\":[\"istio-init\"],\"containers\":[\"istio-proxy\"],\"volumes\":[\"istio-envoy\",\"istio-certs\"],\"imagePullSecrets\":null}",
            "prometheus.io/path": "/stats/prometheus", "prometheus.io/port": "15020", "prometheus.io/scrape": "true"});
        init = json!([{"name": "istio-init", "image": image,
            "args": ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020"]}]);
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": format!("{app}-{hash}-{i:05}"), "namespace": ns, "generateName": format!("{app}-{hash}-"),
            "labels": {"app": app, "version": "v1", "pod-template-hash": hash, "security.istio.io/tlsMode": "istio"},
            "annotations": annotations,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-{hash}"), "uid": rs_uid, "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": {"nodeName": format!("node-{}", i % 3), "serviceAccountName": "default", "restartPolicy": "Always",
            "containers": containers, "initContainers": init},
        "status": {"phase": "Running", "hostIP": "10.0.0.11", "podIP": format!("10.4.{}.{}", i / 250 % 250, i % 250),
            "startTime": "2026-11-25T07:00:01Z",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"},
                           {"type": "ContainersReady", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
            "containerStatuses": statuses}
    })
}

/// Creates one Deployment with its ReplicaSet and `replicas` pods (all created directly: the
/// cluster's controllers are held). Returns the Deployment's name.
pub fn create_workload(c: &kube_sim::Cluster, ns: &str, app: &str, replicas: usize, proxy: Option<&str>) -> String {
    let hash = format!("{:x}", app.bytes().fold(0xcbf2_9ce4_u32, |h, b| h.wrapping_mul(16_777_619) ^ u32::from(b)));
    let dep = c
        .create("apps/v1", "deployments", ns, json!({
            "metadata": {"name": app, "namespace": ns, "labels": {"app": app}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}},
                "template": {"metadata": {"labels": {"app": app, "version": "v1"}},
                    "spec": {"containers": [{"name": "app", "image": format!("registry.example.com/{ns}/{app}:1.2.3")}]}}},
        }))
        .expect("create deployment");
    let dep_uid = dep["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    let generation = dep["metadata"]["generation"].as_i64().unwrap_or(1);
    let _ = c.patch_status(
        "apps/v1",
        "deployments",
        ns,
        app,
        &json!({"status": {"observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas,
            "readyReplicas": replicas, "availableReplicas": replicas}}),
    );
    let rs = c
        .create("apps/v1", "replicasets", ns, json!({
            "metadata": {"name": format!("{app}-{hash}"), "namespace": ns,
                "labels": {"app": app, "pod-template-hash": hash},
                "annotations": {"deployment.kubernetes.io/revision": "1"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": app, "uid": dep_uid, "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app, "pod-template-hash": hash}},
                "template": {"metadata": {"labels": {"app": app, "version": "v1", "pod-template-hash": hash}},
                    "spec": {"containers": [{"name": "app", "image": format!("registry.example.com/{ns}/{app}:1.2.3")}]}}},
        }))
        .expect("create replicaset");
    let rs_uid = rs["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    let _ = c.patch_status(
        "apps/v1",
        "replicasets",
        ns,
        &format!("{app}-{hash}"),
        &json!({"status": {"observedGeneration": 1, "replicas": replicas, "readyReplicas": replicas,
            "availableReplicas": replicas, "fullyLabeledReplicas": replicas}}),
    );
    for i in 0..replicas {
        c.create("v1", "pods", ns, pod_json(ns, app, &hash, i, &rs_uid, proxy)).expect("create pod");
    }
    app.to_string()
}

fn sim_options(p: &Params) -> SimOptions {
    SimOptions::default().streaming_lists(p.streaming_lists)
}

/// Starts kube-sim with the install guide's control plane (ready), holds its controllers, and
/// seeds namespaces, Deployments and pods. Returns the cluster and the seed time.
pub async fn seed(p: &Params) -> (Sim, f64) {
    let sim = Sim::start(sim_options(p)).await.expect("start kube-sim");
    let c = sim.cluster();
    kube_sim::seed::asm_onprem_ready(&c).await.expect("seed the control plane");
    if let Some(a) = sim.actors() {
        // NB: from here on no controller or kubelet acts: the seeded objects stay as written,
        // and restarts meshkeeper makes are recorded but never rolled out.
        a.hold(true);
    }
    c.create("v1", "namespaces", "", json!({"metadata": {"name": "meshkeeper"}})).expect("agent namespace");
    let start = Instant::now();
    for n in 0..p.namespaces {
        c.create(
            "v1",
            "namespaces",
            "",
            json!({"metadata": {"name": format!("team-{n}"),
            "labels": {"istio-injection": "enabled"}}}),
        )
        .expect("create namespace");
    }
    let per = p.pods / p.deployments.max(1);
    let actors = sim.actors();
    for d in 0..p.deployments {
        let ns = format!("team-{}", d * p.namespaces / p.deployments.max(1));
        // The simulated injector would add the sidecar to the pods meant to lack it: they are
        // created while it does not answer (as pods created during an injector outage).
        let proxy = sidecar(d);
        if let Some(a) = actors.filter(|_| proxy.is_none()) {
            a.set_injector_up(false);
        }
        create_workload(&c, &ns, &format!("svc-{d}"), per, proxy);
        if let Some(a) = actors {
            a.set_injector_up(true);
        }
    }
    (sim, start.elapsed().as_secs_f64())
}

// === measurements ============================================================================

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Waits for the first cluster event satisfying `f`, returning how long it took from `since`.
async fn first_event(
    rx: &mut tokio::sync::broadcast::Receiver<Arc<kube_sim::store::Event>>,
    since: Instant,
    within: Duration,
    f: impl Fn(&Value) -> bool,
) -> Option<f64> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => return None,
            Ok(Ok(ev)) => {
                if f(&ev.object) {
                    return Some(since.elapsed().as_secs_f64() * 1000.0);
                }
            }
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(_)) => return None,
        }
    }
}

/// One trial of each kind of event-to-action: (kind, ms). `n`: a unique trial number.
async fn trial(
    c: &kube_sim::Cluster,
    actors: Option<&kube_sim::actors::Actors>,
    n: usize,
) -> Vec<(&'static str, Option<f64>)> {
    let within = Duration::from_secs(10);
    let mut out = Vec::new();
    // 1. The injection label removed from a namespace: until meshkeeper puts it back.
    let ns = format!("team-{n}");
    let mut rx = c.subscribe();
    let t = Instant::now();
    let _ = c.patch(
        "v1",
        "namespaces",
        "",
        &ns,
        PatchType::Merge,
        &json!({"metadata": {"labels": {"istio-injection": null}}}),
        "bench",
    );
    let ms = first_event(&mut rx, t, within, |o| {
        o["kind"] == "Namespace"
            && o["metadata"]["name"] == ns.as_str()
            && o["metadata"]["labels"]["istio-injection"] == "enabled"
    })
    .await;
    out.push(("label_removal", ms));
    // 2. A pinned nodePort moved: until it is back.
    let svc = c.get("v1", "services", "istio-system", "istio-ingressgateway").unwrap_or_default();
    let ports = svc["spec"]["ports"].as_array().cloned().unwrap_or_default();
    if let Some(idx) = ports.iter().position(|p| p["name"] == "http2") {
        let pinned = ports[idx]["nodePort"].clone();
        let moved = 30_000 + (n as i64 % 500);
        let mut rx = c.subscribe();
        let t = Instant::now();
        let _ = c.patch(
            "v1",
            "services",
            "istio-system",
            "istio-ingressgateway",
            PatchType::Json,
            &json!([{"op": "replace", "path": format!("/spec/ports/{idx}/nodePort"), "value": moved}]),
            "bench",
        );
        let ms = first_event(&mut rx, t, within, |o| {
            o["kind"] == "Service"
                && o["metadata"]["name"] == "istio-ingressgateway"
                && o["spec"]["ports"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == "http2" && p["nodePort"] == pinned))
        })
        .await;
        out.push(("gateway_drift", ms));
    }
    // 3. A new workload whose pod has no sidecar: until its Deployment is restarted.
    let ns = format!("bench-{n}");
    let _ =
        c.create("v1", "namespaces", "", json!({"metadata": {"name": ns, "labels": {"istio-injection": "enabled"}}}));
    let mut rx = c.subscribe();
    let t = Instant::now();
    // Created while the injector does not answer (the webhook ignores it): no sidecar.
    if let Some(a) = actors {
        a.set_injector_up(false);
    }
    let app = create_workload(c, &ns, "late", 1, None);
    if let Some(a) = actors {
        a.set_injector_up(true);
    }
    let ms = first_event(&mut rx, t, within, |o| {
        o["kind"] == "Deployment"
            && o["metadata"]["namespace"] == ns.as_str()
            && o["metadata"]["name"] == app.as_str()
            && !o["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_null()
    })
    .await;
    out.push(("reinjection", ms));
    out
}

/// Background churn: `per_sec` pod changes a second (an annotation bumped on existing pods)
/// until `stop` is set.
fn churn(c: kube_sim::Cluster, p: &Params, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<usize> {
    let (deployments, namespaces, per_sec) = (p.deployments.max(1), p.namespaces, p.churn_per_sec.max(1));
    let per = (p.pods / deployments).max(1);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1) / per_sec);
        let mut n = 0usize;
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let d = (n * 7919) % deployments;
            let ns = format!("team-{}", d * namespaces / deployments);
            let app = format!("svc-{d}");
            let hash =
                format!("{:x}", app.bytes().fold(0xcbf2_9ce4_u32, |h, b| h.wrapping_mul(16_777_619) ^ u32::from(b)));
            let name = format!("{app}-{hash}-{:05}", n % per);
            let _ = c.patch(
                "v1",
                "pods",
                &ns,
                &name,
                PatchType::Merge,
                &json!({"metadata": {"annotations": {"bench/churn": n.to_string()}}}),
                "bench",
            );
            n += 1;
        }
        n
    })
}

/// meshkeeper's requests in the log, by verb.
fn agent_requests(sim: &Sim) -> (BTreeMap<String, usize>, usize, usize, BTreeMap<String, usize>) {
    let mut by_verb = BTreeMap::new();
    let mut by_kind = BTreeMap::new();
    let (mut lists, mut probes) = (0, 0);
    for r in sim.requests().into_iter().filter(|r| r.user_agent.starts_with("meshkeeper")) {
        *by_verb.entry(r.verb.clone()).or_default() += 1;
        let sub = r.subresource.as_deref().map(|s| format!("/{s}")).unwrap_or_default();
        *by_kind.entry(format!("{} {}{} {}", r.verb, r.resource, sub, r.code)).or_default() += 1;
        if std::env::var_os("SCALE_DEBUG").is_some() && r.verb == "patch" {
            eprintln!("DEBUG patch {:?}/{:?} {}", r.namespace, r.name, r.code);
        }
        if r.verb == "list" {
            lists += 1;
        }
        if r.resource.ends_with("accessreviews") || r.resource.ends_with("rulesreviews") || r.resource.is_empty() {
            probes += 1;
        }
    }
    (by_verb, lists, probes, by_kind)
}

/// Runs one size: seed, the agent, the baseline; every measurement of [`Report`].
pub async fn run(bin: &Path, reflector: (&Path, &[&str]), p: &Params, baseline: bool) -> Report {
    let mut r = Report { pods: p.pods, namespaces: p.namespaces, deployments: p.deployments, ..Default::default() };
    let (sim, seed_seconds) = seed(p).await;
    r.seed_seconds = seed_seconds;
    let dir = tempfile::tempdir().expect("tempdir");

    // --- the agent: ready, first plan, memory ---
    let start = Instant::now();
    let (agent, addr) = start_agent(bin, &sim, dir.path()).await;
    let pid = agent.pid;
    let ready = poll(Duration::from_secs(600), || {
        let addr = addr.clone();
        async move { get(&addr, "/readyz").await.0 == 200 || !alive(pid) }
    })
    .await
    .filter(|_| alive(pid))
    .unwrap_or_else(|| {
        let log = std::fs::read_to_string(dir.path().join("meshkeeper.log")).unwrap_or_default();
        panic!("meshkeeper exited or was not ready within 10 minutes; its log:\n{log}")
    });
    r.ready_seconds = ready.as_secs_f64();
    let planned = poll(Duration::from_secs(600), || {
        let addr = addr.clone();
        async move {
            let text = get(&addr, "/metrics").await.1;
            metric(&text, "meshkeeper_last_evaluation_timestamp_seconds{check=\"repairs\"}").is_some()
                && metric(&text, "meshkeeper_rollouts_in_progress").is_some()
        }
    })
    .await
    .expect("a first plan within 10 minutes");
    let _ = planned;
    r.first_plan_seconds = start.elapsed().as_secs_f64();
    // The seed's broken workloads are restarted at start: wait until that is done.
    let expected = p.deployments.div_ceil(10) + p.deployments.saturating_sub(1).div_ceil(10);
    poll(Duration::from_secs(120), || {
        let addr = addr.clone();
        async move {
            metric(&get(&addr, "/metrics").await.1, "meshkeeper_rollouts_in_progress").unwrap_or(0.0) as usize
                >= expected
        }
    })
    .await;
    // ... and its writes have stopped (no write for 2 s; at most 2 minutes).
    let writes = |sim: &Sim| {
        sim.requests().iter().filter(|r| r.user_agent.starts_with("meshkeeper") && r.verb == "patch").count()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = writes(&sim);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(2)).await; // NB: the quiet period being checked
        let now = writes(&sim);
        if now == last {
            break;
        }
        last = now;
    }
    let text = get(&addr, "/metrics").await.1;
    r.cached_pods = metric(&text, "meshkeeper_cache_objects{resource=\"pods\"}").unwrap_or(0.0);

    // --- idle: requests, CPU, then latencies ---
    sim.clear_requests();
    let cpu0 = cpu_seconds(agent.pid);
    let t0 = Instant::now();
    tokio::time::sleep(p.window).await; // NB: the measurement window itself
    let minutes = t0.elapsed().as_secs_f64() / 60.0;
    r.cpu_seconds_per_minute_idle = (cpu_seconds(agent.pid) - cpu0) / minutes;
    let (by_verb, lists, probes, by_kind) = agent_requests(&sim);
    r.requests_by_kind = by_kind;
    let total: usize = by_verb.values().sum();
    r.requests_per_minute = by_verb.into_iter().map(|(v, n)| (v, n as f64 / minutes)).collect();
    r.lists_after_sync = lists;
    r.probe_share = if total == 0 { 0.0 } else { probes as f64 / total as f64 };
    r.steady_rss_bytes = rss(agent.pid);
    let c = sim.cluster();
    let mut lat: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut missed: BTreeMap<String, usize> = BTreeMap::new();
    for n in 0..p.trials {
        for (kind, ms) in trial(&c, sim.actors(), n).await {
            match ms {
                Some(ms) => lat.entry(format!("{kind}/idle")).or_default().push(ms),
                None => *missed.entry(format!("{kind}/idle")).or_default() += 1,
            }
        }
    }

    // --- churn ---
    sim.clear_requests();
    let passes = |text: &str| {
        (
            metric(text, "meshkeeper_reconcile_duration_seconds_count{controller=\"evaluate\"}").unwrap_or(0.0),
            metric(text, "meshkeeper_reconcile_duration_seconds_sum{controller=\"evaluate\"}").unwrap_or(0.0),
        )
    };
    let (n0, s0) = passes(&get(&addr, "/metrics").await.1);
    let stop = Arc::new(AtomicBool::new(false));
    let churner = churn(c.clone(), p, stop.clone());
    let cpu0 = cpu_seconds(agent.pid);
    let t0 = Instant::now();
    for n in 0..p.trials {
        for (kind, ms) in trial(&c, sim.actors(), p.trials + n).await {
            match ms {
                Some(ms) => lat.entry(format!("{kind}/churn")).or_default().push(ms),
                None => *missed.entry(format!("{kind}/churn")).or_default() += 1,
            }
        }
    }
    let rest = p.window.saturating_sub(t0.elapsed());
    tokio::time::sleep(rest).await; // NB: fills the churn measurement window
    let minutes = t0.elapsed().as_secs_f64() / 60.0;
    r.cpu_seconds_per_minute_churn = (cpu_seconds(agent.pid) - cpu0) / minutes;
    let (n1, s1) = passes(&get(&addr, "/metrics").await.1);
    r.churn_passes = n1 - n0;
    r.churn_pass_ms = if n1 > n0 { (s1 - s0) / (n1 - n0) * 1000.0 } else { 0.0 };
    stop.store(true, Ordering::Relaxed);
    let _ = churner.await;
    r.lists_after_sync += agent_requests(&sim).1;
    r.peak_rss_bytes = peak_rss(agent.pid);
    for (k, mut v) in lat {
        let n = v.len();
        r.latency_ms.insert(k, (percentile(&mut v, 0.5), percentile(&mut v, 0.99), n));
    }
    for (k, n) in missed {
        r.latency_ms.entry(k).or_insert((f64::NAN, f64::NAN, 0));
        eprintln!("warning: {n} trials of {} saw no action within 10 s", r.pods);
    }
    drop(agent);

    // --- the baseline, alone on the same cluster ---
    if baseline {
        let (proc_, mut lines) = start_reflector(reflector.0, reflector.1, &sim).await;
        let line = tokio::time::timeout(Duration::from_secs(600), async {
            while let Ok(Some(l)) = lines.next_line().await {
                // (In a test binary libtest's "test ... " may precede it on the line.)
                if let Some(at) = l.find("READY ") {
                    return l[at..].to_string();
                }
            }
            String::new()
        })
        .await
        .unwrap_or_default();
        r.baseline_ready_seconds = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(f64::NAN);
        // Let it settle as long as the agent did before its steady sample.
        tokio::time::sleep(Duration::from_secs(2)).await; // NB: settle time of the measured process
        r.baseline_rss_bytes = rss(proc_.pid);
    }
    r
}

/// The RSS of the agent on the seeded control plane alone (no workloads): the fixed cost.
pub async fn empty_rss(bin: &Path) -> u64 {
    let p = Params { pods: 0, namespaces: 0, deployments: 0, ..Params::full() };
    let (sim, _) = seed(&p).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, addr) = start_agent(bin, &sim, dir.path()).await;
    poll(Duration::from_secs(60), || {
        let addr = addr.clone();
        async move { get(&addr, "/readyz").await.0 == 200 }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await; // NB: settle time of the measured process
    rss(agent.pid)
}

pub fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// The executable that runs the benchmark (to start its reflector role).
pub fn current_exe() -> PathBuf {
    std::env::current_exe().expect("current exe")
}
