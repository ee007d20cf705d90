//! Scale benchmark: meshkeeper against 100,000 pods, beside a naive full-object reflector.
//!
//! ```text
//! cargo bench -p meshkeeper --bench scale
//! ```
//! Seeds kube-sim (in this process) with 5,000 namespaces and 100,000 realistic injected pods in
//! 2,000 Deployments (10% without the sidecar, 10% with an older proxy), the asm-onprem control
//! plane and the gateway; runs the release `meshkeeper` binary against it as a separate process,
//! then a plain kube-rs reflector keeping every Pod whole (this executable in its reflector role),
//! and prints a table; the JSON goes to `target/scale-bench.json` (`SCALE_JSON` to change).
//! Each size runs twice in a fresh cluster: the bytes per cached pod are the RSS slope between
//! them. `SCALE_PODS=20000,100000` sets the sizes, `SCALE_WINDOW_SECONDS` the steady windows
//! (60), `SCALE_TRIALS` the event-to-action trials per kind and phase (20), `SCALE_STREAMING=0`
//! makes the server refuse streaming lists (as etcd 3.4 does).

#[path = "harness.rs"]
mod harness;

use std::time::Duration;

use harness::{Params, Report, mib};

fn env_usize(key: &str) -> Option<usize> {
    std::env::var(key).ok().and_then(|v| v.parse().ok())
}

fn main() {
    if std::env::var(harness::ROLE_ENV).as_deref() == Ok("reflector") {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
        rt.block_on(harness::reflector_role());
        return;
    }
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_meshkeeper"));
    let sizes: Vec<usize> = std::env::var("SCALE_PODS")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![20_000, 100_000]);
    let mut full = Params::full();
    if let Some(s) = env_usize("SCALE_WINDOW_SECONDS") {
        full.window = Duration::from_secs(s as u64);
    }
    if let Some(t) = env_usize("SCALE_TRIALS") {
        full.trials = t;
    }
    full.streaming_lists = std::env::var("SCALE_STREAMING").as_deref() != Ok("0");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let exe = harness::current_exe();
    let reports: Vec<Report> = rt.block_on(async {
        let empty = harness::empty_rss(&bin).await;
        let mut out = Vec::new();
        for (i, pods) in sizes.iter().enumerate() {
            let p = if *pods == full.pods { full.clone() } else { full.scaled(*pods) };
            eprintln!("scale: {} pods in {} namespaces, {} Deployments ...", p.pods, p.namespaces, p.deployments);
            let mut r = harness::run(&bin, (&exe, &[]), &p, i + 1 == sizes.len() || sizes.len() == 1).await;
            r.empty_rss_bytes = empty;
            out.push(r);
        }
        out
    });
    print_table(&reports, &full);
    let json = serde_json::json!({
        "date": chrono_like_now(),
        "machine": machine(),
        "streaming_lists": full.streaming_lists,
        "sizes": reports,
        "bytes_per_cached_pod": slope(&reports),
    });
    let path = std::env::var("SCALE_JSON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/scale-bench.json").to_string());
    if let Err(e) = std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap_or_default()) {
        eprintln!("cannot write {path}: {e}");
    } else {
        eprintln!("wrote {path}");
    }
}

/// Bytes per cached pod: the steady-RSS slope between the first and the last size.
fn slope(r: &[Report]) -> Option<f64> {
    let (a, b) = (r.first()?, r.last()?);
    (b.cached_pods > a.cached_pods)
        .then(|| (b.steady_rss_bytes as f64 - a.steady_rss_bytes as f64) / (b.cached_pods - a.cached_pods))
}

fn print_table(reports: &[Report], p: &Params) {
    println!(
        "\nmeshkeeper scale benchmark ({}; streaming lists {})",
        machine(),
        if p.streaming_lists { "served" } else { "refused" }
    );
    for r in reports {
        println!(
            "\n{} pods, {} namespaces, {} Deployments (seeded in {:.1} s)",
            r.pods, r.namespaces, r.deployments, r.seed_seconds
        );
        println!("  {:<44} {:>14} {:>14} {:>8}", "", "meshkeeper", "naive", "ratio");
        let ratio = |a: f64, b: f64| if a > 0.0 && b > 0.0 { format!("{:.1}x", b / a) } else { "-".into() };
        println!(
            "  {:<44} {:>12.2} s {:>12} {:>8}",
            "start to ready (every watch listed)",
            r.ready_seconds,
            if r.baseline_ready_seconds > 0.0 { format!("{:.2} s", r.baseline_ready_seconds) } else { "-".into() },
            ratio(r.ready_seconds, r.baseline_ready_seconds)
        );
        println!("  {:<44} {:>12.2} s", "start to the first complete findings and plan", r.first_plan_seconds);
        println!(
            "  {:<44} {:>10.1} MiB {:>12} {:>8}",
            "steady RSS",
            mib(r.steady_rss_bytes),
            if r.baseline_rss_bytes > 0 { format!("{:.1} MiB", mib(r.baseline_rss_bytes)) } else { "-".into() },
            ratio(r.steady_rss_bytes as f64, r.baseline_rss_bytes as f64)
        );
        println!("  {:<44} {:>10.1} MiB", "peak RSS", mib(r.peak_rss_bytes));
        println!("  {:<44} {:>10.1} MiB", "RSS with the control plane only", mib(r.empty_rss_bytes));
        if r.cached_pods > 0.0 {
            println!(
                "  {:<44} {:>12.0} B",
                "RSS above the empty cluster per cached pod",
                (r.steady_rss_bytes as f64 - r.empty_rss_bytes as f64) / r.cached_pods
            );
        }
        for (k, (p50, p99, n)) in &r.latency_ms {
            println!("  {:<44} {:>6.1} / {:>6.1} ms (n={n})", format!("event to action {k} p50 / p99"), p50, p99);
        }
        let total: f64 = r.requests_per_minute.values().sum();
        let verbs: Vec<String> = r.requests_per_minute.iter().map(|(v, n)| format!("{v} {n:.1}")).collect();
        println!("  {:<44} {:>12.1}   ({})", "API requests per minute, idle", total, verbs.join(", "));
        println!("  {:<44} {:>12.0}%", "  of which periodic probes", r.probe_share * 100.0);
        let kinds: Vec<String> = r.requests_by_kind.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        println!("  {:<44} {}", "  in the idle window", kinds.join(", "));
        println!("  {:<44} {:>12}", "LISTs after the first sync", r.lists_after_sync);
        println!("  {:<44} {:>12.2} s/min", "CPU idle", r.cpu_seconds_per_minute_idle);
        println!(
            "  {:<44} {:>12.2} s/min",
            format!("CPU under churn ({}/s)", p.churn_per_sec),
            r.cpu_seconds_per_minute_churn
        );
        println!(
            "  {:<44} {:>12.0} of {:.2} ms",
            "  evaluation passes under churn, mean time", r.churn_passes, r.churn_pass_ms
        );
    }
    if let Some(s) = slope(reports) {
        println!("\nbytes per cached pod (steady-RSS slope between the sizes): {s:.0}");
    }
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    format!("{cpus} CPUs, {model}")
}

fn chrono_like_now() -> String {
    let out = std::process::Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]).output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default()
}
