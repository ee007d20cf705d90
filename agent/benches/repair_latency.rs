//! Repair latency, measured end to end: the real `meshkeeper` binary against kube-sim, the
//! drift made with the real kubectl, the time taken from the API server's event showing the
//! drift to the event showing the repair. Prints p50/p99/max; asserts nothing.
//!
//!     cargo bench -p meshkeeper --bench repair_latency            # 200 trials each
//!     TRIALS=50 cargo bench -p meshkeeper --bench repair_latency

use std::process::Stdio;
use std::time::{Duration, Instant};

use kube_sim::{Sim, SimOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(what: &str, mut v: Vec<Duration>) {
    v.sort();
    println!(
        "{what}: n={} p50={:.1} ms p99={:.1} ms max={:.1} ms",
        v.len(),
        percentile(&v, 0.50).as_secs_f64() * 1e3,
        percentile(&v, 0.99).as_secs_f64() * 1e3,
        v.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
}

/// Waits for the event where `pred` first holds after one where `drift` held; returns the gap.
async fn measure(
    rx: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<kube_sim::store::Event>>,
    drift: impl Fn(&Value) -> bool,
    repaired: impl Fn(&Value) -> bool,
) -> Duration {
    let mut drift_at = None;
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("no repair within 10 s")
            .expect("events");
        let now = Instant::now();
        match drift_at {
            None if drift(&ev.object) => drift_at = Some(now),
            Some(t) if repaired(&ev.object) => return now - t,
            _ => {}
        }
    }
}

async fn kubectl(sim: &Sim, args: &[&str]) {
    let out = tokio::process::Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", sim.kubeconfig_path())
        .output()
        .await
        .expect("kubectl");
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::main]
async fn main() {
    let trials: usize = std::env::var("TRIALS").ok().and_then(|t| t.parse().ok()).unwrap_or(200);
    let sim = Sim::start(SimOptions::default()).await.expect("sim");
    let c = sim.cluster();
    kube_sim::seed::asm_onprem(&c).expect("seed");
    c.create("v1", "namespaces", "", json!({"metadata": {"name": "meshkeeper"}})).unwrap();
    c.create("v1", "namespaces", "", json!({"metadata": {"name": "bench", "labels": {"istio-injection": "enabled"}}}))
        .unwrap();
    let cfg = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        cfg.path(),
        // NB: drifts come faster (one per kubectl call, ~10/s) than the default write budget
        // (5/s): the bucket is raised so the numbers measure reaction, not the rate limit.
        "http:\n  listen: 127.0.0.1:0\nleader_election:\n  namespace: meshkeeper\ninjection:\n  mode: enforce\ngateway:\n  repair: true\n  contest_repairs: 1000\nclient:\n  write_qps: 100\n  write_burst: 100\n",
    )
    .unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_meshkeeper"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("MESHKEEPER_")) {
        cmd.env_remove(k);
    }
    let mut agent = cmd
        .args(["run", "--log-format", "json", "--config"])
        .arg(cfg.path())
        .arg("--kubeconfig")
        .arg(sim.kubeconfig_path())
        .env("RUST_LOG", "warn,meshkeeper::leader=info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("meshkeeper");
    // Wait until it leads (its log says so).
    let mut lines = BufReader::new(agent.stderr.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(l)) = lines.next_line().await {
            if l.contains("leadership changed") && l.contains("true") {
                return;
            }
        }
    })
    .await
    .expect("leader");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    println!("trials: {trials}; client.write_qps/write_burst raised to 100 so the rate limit does not dominate");
    let mut rx = c.subscribe();
    let mut label_times = Vec::with_capacity(trials);
    for _ in 0..trials {
        let remove = kubectl(&sim, &["label", "ns", "bench", "istio-injection-"]);
        let is_bench = |o: &Value| o["kind"] == "Namespace" && o["metadata"]["name"] == "bench";
        let (d, ()) = tokio::join!(
            measure(
                &mut rx,
                |o| is_bench(o) && o["metadata"]["labels"]["istio-injection"].is_null(),
                |o| is_bench(o) && o["metadata"]["labels"]["istio-injection"] == "enabled"
            ),
            remove
        );
        label_times.push(d);
    }
    report("label removal (kubectl) -> restored", label_times);

    let mut port_times = Vec::with_capacity(trials);
    for i in 0..trials {
        let drifted = 32000 + (i % 500) as i64;
        let patch = format!(r#"{{"spec":{{"ports":[{{"port":80,"nodePort":{drifted}}}]}}}}"#);
        let args = ["-n", "istio-system", "patch", "svc", "istio-ingressgateway", "-p", patch.as_str()];
        let change = kubectl(&sim, &args);
        let http2 = |o: &Value| -> Option<i64> {
            (o["kind"] == "Service" && o["metadata"]["name"] == "istio-ingressgateway")
                .then(|| o["spec"]["ports"].as_array()?.iter().find(|p| p["name"] == "http2")?["nodePort"].as_i64())
                .flatten()
        };
        let (d, ()) =
            tokio::join!(measure(&mut rx, |o| http2(o) == Some(drifted), |o| http2(o) == Some(31380)), change);
        port_times.push(d);
    }
    report("gateway nodePort drift (kubectl) -> repaired", port_times);
    let _ = agent.start_kill();
}
