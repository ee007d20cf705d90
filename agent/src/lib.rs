#![forbid(unsafe_code)]
//! meshkeeper: keeps an Istio / Anthos Service Mesh the way its install guide prescribes.

pub mod cache;
pub mod checks;
pub mod config;
pub mod findings;
pub mod http;
pub mod metrics;
pub mod ratelimit;
pub mod state;
