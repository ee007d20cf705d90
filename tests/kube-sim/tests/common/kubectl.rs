//! The real kubectl against a sim (`$KUBECTL` or the one on PATH). Missing: None with a SKIP
//! message, or a panic when MESHKEEPER_REQUIRE_TOOLS is set.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

pub fn path() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("KUBECTL") {
        Some(p) => vec![PathBuf::from(p)],
        None => std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).map(|d| d.join("kubectl")).collect())
            .unwrap_or_default(),
    };
    if let Some(p) = candidates.into_iter().find(|p| p.exists()) {
        return Some(p);
    }
    if std::env::var_os("MESHKEEPER_REQUIRE_TOOLS").is_some() {
        panic!("kubectl not found and MESHKEEPER_REQUIRE_TOOLS is set");
    }
    eprintln!("SKIP: kubectl not found (set KUBECTL, or MESHKEEPER_REQUIRE_TOOLS to make this a failure)");
    None
}

/// Runs kubectl; (success, stdout, stderr).
pub async fn run(bin: &Path, kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("--kubeconfig").arg(kubeconfig).args(args);
    // A private discovery cache per sim.
    cmd.env("HOME", kubeconfig.parent().unwrap_or(Path::new("/tmp")));
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(20), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
        .expect("kubectl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The rows of a table kubectl printed, split on runs of two or more spaces.
pub fn rows(out: &str) -> Vec<Vec<String>> {
    out.lines().map(|l| l.split("  ").map(str::trim).filter(|c| !c.is_empty()).map(str::to_string).collect()).collect()
}
