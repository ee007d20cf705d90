#![forbid(unsafe_code)]
//! `kube-sim [--port N] [--kubeconfig PATH] [--rbac] [--seed asm-onprem|reinjection-demo|empty] [--no-actors]`: serve a simulated cluster until Ctrl-C.

use kube_sim::{Sim, SimOptions};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut opts = SimOptions::default();
    let mut seed = "asm-onprem".to_string();
    let mut kubeconfig_out: Option<std::path::PathBuf> = None;
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
            "--rbac" => opts.rbac = true,
            "--kubeconfig" => match args.next() {
                Some(p) => kubeconfig_out = Some(p.into()),
                None => {
                    eprintln!("kube-sim: --kubeconfig needs a path");
                    return std::process::ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                println!(
                    "kube-sim [--port N] [--kubeconfig PATH] [--rbac] [--seed asm-onprem|reinjection-demo|empty] [--no-actors]\nServes a simulated Kubernetes API on 127.0.0.1 and prints a kubeconfig path."
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
    let seeded = match seed.as_str() {
        "asm-onprem" => kube_sim::seed::asm_onprem(&sim.cluster()),
        "reinjection-demo" => match kube_sim::seed::asm_onprem_ready(&sim.cluster()).await {
            Ok(()) => kube_sim::seed::reinjection_demo(&sim.cluster()).await,
            Err(e) => Err(e),
        },
        _ => Ok(()),
    };
    if let Err(e) = seeded {
        eprintln!("kube-sim: seeding failed: {}", e.message);
        return std::process::ExitCode::from(1);
    }
    let mut kc = sim.kubeconfig_path();
    if let Some(out) = kubeconfig_out {
        if let Err(e) = std::fs::copy(&kc, &out) {
            eprintln!("kube-sim: cannot write {}: {e}", out.display());
            return std::process::ExitCode::from(1);
        }
        kc = out;
    }
    println!("kube-sim serving {}\nexport KUBECONFIG={}", sim.url(), kc.display());
    let _ = tokio::signal::ctrl_c().await;
    std::process::ExitCode::SUCCESS
}
