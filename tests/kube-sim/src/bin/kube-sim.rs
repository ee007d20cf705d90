#![forbid(unsafe_code)]
//! `kube-sim [--port N] [--seed asm-onprem|empty] [--no-actors]`: serve a simulated cluster until Ctrl-C.

use kube_sim::{Sim, SimOptions};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut opts = SimOptions::default();
    let mut seed = "asm-onprem".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => match args.next().and_then(|p| p.parse().ok()) {
                Some(p) => opts.port = p,
                None => {
                    eprintln!("kube-sim: --port needs a number");
                    return std::process::ExitCode::from(2);
                }
            },
            "--seed" => seed = args.next().unwrap_or_default(),
            "--no-actors" => opts.actors = false,
            "-h" | "--help" => {
                println!(
                    "kube-sim [--port N] [--seed asm-onprem|empty] [--no-actors]\nServes a simulated Kubernetes API on 127.0.0.1 and prints a kubeconfig path."
                );
                return std::process::ExitCode::SUCCESS;
            }
            other => {
                eprintln!("kube-sim: unknown argument {other:?} (see --help)");
                return std::process::ExitCode::from(2);
            }
        }
    }
    let sim = match Sim::start(opts).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kube-sim: cannot start: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    if seed == "asm-onprem"
        && let Err(e) = kube_sim::seed::asm_onprem(&sim.cluster())
    {
        eprintln!("kube-sim: seeding failed: {}", e.message);
        return std::process::ExitCode::from(1);
    }
    println!("kube-sim serving {}\nexport KUBECONFIG={}", sim.url(), sim.kubeconfig_path().display());
    let _ = tokio::signal::ctrl_c().await;
    std::process::ExitCode::SUCCESS
}
