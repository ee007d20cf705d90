//! Dispatch of the subcommands and their exit codes.

use std::process::ExitCode;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::checkcmd::{self, Output};
use crate::cli::{Cli, Command};
use crate::client::{self, ClientOptions};
use crate::config::Settings;
use crate::runtime;

/// Exit code: findings of severity error (check) or a failure while running.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: invalid configuration or nothing to connect to.
pub const EXIT_USAGE: u8 = 2;

fn fail(code: u8, what: &str, detail: &dyn std::fmt::Display) -> ExitCode {
    let detail = detail.to_string();
    if detail.contains('\n') {
        let indented: Vec<String> = detail.lines().map(|l| format!("  {l}")).collect();
        eprintln!("meshkeeper: {what}:\n{}", indented.join("\n"));
    } else {
        eprintln!("meshkeeper: {what}: {detail}");
    }
    ExitCode::from(code)
}

/// Cancels the token on SIGTERM or SIGINT.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = term.recv() => tracing::info!("received SIGTERM"),
                        _ = tokio::signal::ctrl_c() => tracing::info!("received SIGINT"),
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the agent");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        token.cancel();
    });
}

pub async fn main(cli: Cli) -> ExitCode {
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => return fail(EXIT_USAGE, "invalid configuration", &e),
    };
    let opts = ClientOptions {
        kubeconfig: cli.kubeconfig.clone(),
        context: cli.context.clone(),
        timeout: Some(Duration::from_secs(settings.client.timeout_seconds)),
    };
    match cli.command {
        Command::Run => {
            let clients = match client::build_clients(&opts).await {
                Ok(c) => c,
                Err(e) => return fail(EXIT_USAGE, "cannot connect", &e),
            };
            let shutdown = CancellationToken::new();
            cancel_on_signal(shutdown.clone());
            match runtime::run(settings, clients, shutdown).await {
                Ok(()) => {
                    tracing::info!("stopped");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(EXIT_FAILURE, "stopped", &e),
            }
        }
        Command::Check { output, pre } => {
            let client = match client::build(&opts).await {
                Ok(c) => c,
                Err(e) => return fail(EXIT_USAGE, "cannot connect", &e),
            };
            let run = if pre {
                Ok(checkcmd::run_pre(&settings, &client).await)
            } else {
                checkcmd::run(&settings, &client).await
            };
            match run {
                Ok(run) => {
                    match output {
                        Output::Text => print!("{}", checkcmd::render_text(&run)),
                        Output::Json => println!("{}", checkcmd::render_json(&run)),
                    }
                    ExitCode::from(run.exit_code())
                }
                Err(e) => fail(EXIT_USAGE, "could not run the checks", &e),
            }
        }
        Command::Demo { scenario, port } => {
            let shutdown = CancellationToken::new();
            cancel_on_signal(shutdown.clone());
            match crate::demo::run(settings, scenario, port, shutdown).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(EXIT_FAILURE, "demo stopped", &e),
            }
        }
    }
}
