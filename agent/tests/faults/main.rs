//! The fault-tolerance suite: the real `meshkeeper` binary against kube-sim while the API
//! server, the network, the agent's own replicas and its inputs misbehave. Each scenario
//! asserts convergence and the exact set of writes made, and reports one or more rows:
//! fault, expected, observed, pass. The suite prints them as one table at the end.
//!
//! `cargo test -p meshkeeper --test faults` runs every scenario; words after `--` select
//! scenarios whose name contains one of them (`-- outage 410`), as libtest filters do, and
//! flags (`--quiet`, `--nocapture`) are accepted and ignored. `FAULTS_JOBS` (default 2) runs
//! that many scenarios at once; `FAULTS_MARKDOWN=<file>` also writes the table there as
//! Markdown, a line per row. Waits are bounded observations, never fixed sleeps.

#[path = "../e2e/common.rs"]
#[allow(dead_code)]
mod common;
mod config;
mod failover;
mod fleet;
mod gone;
mod outage;
mod pathological;
mod properties;
mod shutdown;
mod storm;
mod support;
mod table;
mod tap;
mod writes;

use std::process::ExitCode;
use std::time::Instant;

/// A scenario: its name (for filtering) and what runs it.
struct Scenario {
    name: &'static str,
    run: table::Runner,
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario { name: "1 history compacted (410 Gone)", run: gone::run },
        Scenario { name: "2a API server down 30 s (refused)", run: outage::refused },
        Scenario { name: "2b API server hangs 30 s", run: outage::hanging },
        Scenario { name: "3 500 / 503 / 429 on writes", run: writes::server_errors },
        Scenario { name: "4 409 / 422 on writes", run: writes::conflicts },
        Scenario { name: "5 leader failover", run: failover::run },
        Scenario { name: "6 SIGTERM mid-burst", run: shutdown::run },
        Scenario { name: "7 pathological API", run: pathological::run },
        Scenario { name: "8 bad configuration", run: config::run },
        Scenario { name: "9 properties", run: properties::run },
        Scenario { name: "10 restart storm", run: storm::run },
    ]
}

fn main() -> ExitCode {
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let all = scenarios();
    let selected: Vec<&Scenario> =
        all.iter().filter(|s| filters.is_empty() || filters.iter().any(|f| s.name.contains(f.as_str()))).collect();
    if selected.is_empty() {
        println!("faults: no scenario matches {filters:?}");
        return ExitCode::SUCCESS;
    }
    let jobs = std::env::var("FAULTS_JOBS").ok().and_then(|j| j.parse().ok()).unwrap_or(2usize).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let start = Instant::now();
    let rows = rt.block_on(table::run_all(selected.iter().map(|s| (s.name, s.run)).collect(), jobs));
    print!("{}", table::render(&rows));
    if let Ok(path) = std::env::var("FAULTS_MARKDOWN")
        && let Err(e) = std::fs::write(&path, table::markdown(&rows))
    {
        eprintln!("faults: cannot write {path}: {e}");
    }
    let failed = rows.iter().filter(|r| !r.pass).count();
    println!(
        "faults: {} scenarios, {} rows, {} failed, {:.1} s",
        selected.len(),
        rows.len(),
        failed,
        start.elapsed().as_secs_f64()
    );
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
