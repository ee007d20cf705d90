#![forbid(unsafe_code)]
//! meshkeeper: keeps an Istio / Anthos Service Mesh the way its install guide prescribes.

pub mod actuator;
pub mod app;
pub mod cache;
pub mod checkcmd;
pub mod checks;
pub mod cli;
pub mod client;
pub mod config;
pub mod demo;
pub mod findings;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod ratelimit;
pub mod report;
pub mod runtime;
pub mod state;
pub mod telemetry;
pub mod watch;
