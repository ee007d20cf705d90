#![forbid(unsafe_code)]
//! meshkeeper: keeps an Istio / Anthos Service Mesh the way its install guide prescribes.

pub mod actuator;
pub mod cache;
pub mod checks;
pub mod client;
pub mod config;
pub mod findings;
pub mod http;
pub mod metrics;
pub mod ratelimit;
pub mod report;
pub mod state;
pub mod watch;
