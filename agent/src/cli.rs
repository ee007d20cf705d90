//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::checkcmd::Output;
use crate::telemetry::LogFormat;

/// meshkeeper keeps an Istio / Anthos Service Mesh the way its install guide prescribes:
/// namespace injection labels, sidecar coverage, control-plane health and the ingress
/// gateway's IP and nodePorts. It reports through Prometheus metrics, Kubernetes Events,
/// /status and logs, and repairs drift only where its configuration allows.
#[derive(Debug, Parser)]
#[command(name = "meshkeeper", version, propagate_version = true)]
pub struct Cli {
    /// YAML configuration file; every key can also be set with MESHKEEPER_<KEY> environment
    /// variables (nested keys joined by "__", e.g. MESHKEEPER_GATEWAY__NODE_PORTS__HTTP2=31380).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// kubeconfig file to use instead of the in-cluster configuration (or $KUBECONFIG / ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// kubeconfig context to use (default: the current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// Log line format on stderr; the level is set with RUST_LOG (default: info).
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent: watch the cluster, report findings (metrics, Events, /status, logs) and,
    /// as leader, repair what the configuration allows. Stops cleanly on SIGTERM/SIGINT.
    Run,
    /// Load the cluster state once, run every check, print a report and exit:
    /// 0 all good, 1 at least one finding of severity error, 2 could not run.
    Check {
        /// Report format.
        #[arg(long, short, value_enum, default_value = "text")]
        output: Output,
        /// Before installing the mesh: is this cluster ready for the install guide? (version,
        /// your rights, the cluster's size, what Istio is already there, the gateway's next step)
        #[arg(long)]
        pre: bool,
    },
    /// Run the real agent against a built-in simulated cluster seeded with the asm-onprem
    /// layout and some drift: no cluster needed. Prints a kubeconfig for kubectl, the
    /// /metrics and /status URLs, and a live log of findings and repairs.
    Demo {
        /// quiet: the seeded drift only; drift: keep injecting drift (label removed, nodePort
        /// changed, injector outage and recovery, proxy upgrade).
        #[arg(long, value_enum, default_value = "quiet")]
        scenario: Scenario,
        /// Port of the agent's HTTP endpoint (0 picks a free one).
        #[arg(long, default_value_t = 9090)]
        port: u16,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    Quiet,
    Drift,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent_and_parses_global_flags_anywhere() {
        Cli::command().debug_assert();
        let c =
            Cli::try_parse_from(["meshkeeper", "check", "--kubeconfig", "k", "-o", "json", "--context", "c"]).unwrap();
        assert_eq!(c.kubeconfig.as_deref(), Some(std::path::Path::new("k")));
        assert!(matches!(c.command, Command::Check { output: Output::Json, pre: false }));
        let c = Cli::try_parse_from(["meshkeeper", "check", "--pre", "-o", "json"]).unwrap();
        assert!(matches!(c.command, Command::Check { output: Output::Json, pre: true }));
        let c = Cli::try_parse_from(["meshkeeper", "--log-format", "json", "run"]).unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
        assert!(Cli::try_parse_from(["meshkeeper", "run", "--log-format", "xml"]).is_err());
        assert!(Cli::try_parse_from(["meshkeeper"]).is_err());
    }
}
