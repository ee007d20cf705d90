//! Scale benchmark: 100,000 small pods in 5,000 namespaces through the in-process API, then
//! full and selector lists over real HTTP. Prints numbers; asserts nothing about timings.
//!
//! `CARGO_TARGET_DIR=/work/target-sim cargo bench -p kube-sim --bench scale`
//! (env KUBE_SIM_BENCH_PODS / KUBE_SIM_BENCH_NAMESPACES to change the size,
//! KUBE_SIM_BENCH_HISTORY for the watch history capacity).

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// GET over a fresh HTTP/1.1 connection; returns (status, items, body bytes).
async fn get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, usize, usize)> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAccept: application/json\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).await?;
    let status = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut chunked = false;
    loop {
        line.clear();
        r.read_line(&mut line).await?;
        if line.trim().is_empty() {
            break;
        }
        chunked |= line.to_ascii_lowercase().starts_with("transfer-encoding: chunked");
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line).await?;
            let n = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            let mut c = vec![0; n + 2];
            r.read_exact(&mut c).await?;
            body.extend_from_slice(&c[..n]);
        }
    } else {
        r.read_to_end(&mut body).await?;
    }
    // Count items without building a tree (the client's own parse cost is measured separately).
    let items = if status == 200 {
        #[derive(serde::Deserialize)]
        struct List {
            items: Vec<serde::de::IgnoredAny>,
        }
        serde_json::from_slice::<List>(&body).map_err(std::io::Error::other)?.items.len()
    } else {
        0
    };
    Ok((status, items, body.len()))
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn timed(addr: std::net::SocketAddr, path: &str, runs: usize) -> (Duration, Duration, String) {
    let mut times = Vec::new();
    let mut n = String::new();
    for _ in 0..runs {
        let t = Instant::now();
        let (code, items, bytes) = get(addr, path).await.expect("request");
        assert_eq!(code, 200, "{path}");
        times.push(t.elapsed());
        n = format!("{items} items, {:.1} MB", bytes as f64 / 1e6);
    }
    (pct(&mut times, 0.5), pct(&mut times, 0.99), n)
}

#[tokio::main]
async fn main() {
    let pods: usize = std::env::var("KUBE_SIM_BENCH_PODS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let namespaces: usize =
        std::env::var("KUBE_SIM_BENCH_NAMESPACES").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000);
    let rss0 = rss_kib();
    let mut opts = kube_sim::SimOptions::default().actors(false);
    if let Some(h) = std::env::var("KUBE_SIM_BENCH_HISTORY").ok().and_then(|v| v.parse().ok()) {
        opts = opts.history(h);
    }
    println!("watch history capacity: {}", opts.history);
    let sim = kube_sim::Sim::start(opts).await.expect("sim");
    let c = sim.cluster();
    let rss1 = rss_kib();
    let t = Instant::now();
    for i in 0..namespaces {
        c.create("v1", "namespaces", "", json!({"metadata": {"name": format!("ns-{i}")}})).expect("namespace");
    }
    for i in 0..pods {
        let ns = format!("ns-{}", i % namespaces);
        let app = if i % 10 == 0 { "web" } else { "batch" };
        c.create(
            "v1",
            "pods",
            &ns,
            json!({"metadata": {"name": format!("pod-{i}"), "labels": {"app": app, "pod-template-hash": "5d8f7c9b4"}},
                "spec": {"nodeName": format!("node-{}", i % 4), "containers": [{"name": "app", "image": "registry.example/app:1.0"}]},
                "status": {"phase": "Running"}}),
        )
        .expect("pod");
    }
    let create = t.elapsed();
    let rss2 = rss_kib();
    println!("kube-sim scale benchmark: {pods} pods in {namespaces} namespaces");
    println!(
        "create: {:.1} s, {:.0} objects/s (in-process API, full write path)",
        create.as_secs_f64(),
        (pods + namespaces) as f64 / create.as_secs_f64()
    );
    let addr = sim.addr();
    let (p50, p99, n) = timed(addr, "/api/v1/pods", 20).await;
    println!("full list /api/v1/pods ({n}, over HTTP): p50 {p50:?} p99 {p99:?}");
    let (p50, p99, n) = timed(addr, "/api/v1/pods?labelSelector=app%3Dweb", 20).await;
    println!("selector list app=web ({n}): p50 {p50:?} p99 {p99:?}");
    let (p50, p99, n) = timed(addr, "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1", 10).await;
    println!("field selector spec.nodeName=node-1 ({n}): p50 {p50:?} p99 {p99:?}");
    let (p50, p99, n) = timed(addr, "/api/v1/namespaces/ns-7/pods", 50).await;
    println!("namespaced list ns-7 ({n}): p50 {p50:?} p99 {p99:?}");
    let (p50, p99, n) = timed(addr, "/api/v1/pods?limit=500", 20).await;
    println!("first page limit=500 ({n}): p50 {p50:?} p99 {p99:?}");
    let rss3 = rss_kib();
    println!(
        "RSS: {} MiB at start, {} MiB with an empty sim, {} MiB after creating, {} MiB after the lists ({:.2} KiB per pod)",
        rss0 / 1024,
        rss1 / 1024,
        rss2 / 1024,
        rss3 / 1024,
        (rss2.saturating_sub(rss1)) as f64 / pods.max(1) as f64
    );
}
