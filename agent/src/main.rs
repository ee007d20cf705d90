#![forbid(unsafe_code)]
//! The `meshkeeper` binary: parse the command line, set up logging, dispatch.

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = meshkeeper::cli::Cli::parse();
    meshkeeper::telemetry::init(cli.log_format);
    meshkeeper::app::main(cli).await
}
