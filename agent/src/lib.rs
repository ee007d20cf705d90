#![forbid(unsafe_code)]
//! meshkeeper: keeps an Istio / Anthos Service Mesh the way its install guide prescribes.

//!
//! The modules follow the data flow, and imports point one way down it:
//!
//! ```text
//!  config · findings · change · state · metrics · apierror     (shared vocabulary)
//!     ▼
//!  cache (watchers ─► trimmed indexes) ─► checks (pure: findings + remedies)
//!     ─► plan (pure: actions and why the rest waits) ─► actuator (the only writer)
//!     ─► report (logs, Events, HTTP) ─► runtime (wiring) ─► app · checkcmd · demo
//! ```

pub mod actuator;
pub mod apierror;
pub mod app;
pub mod cache;
pub mod change;
pub mod checkcmd;
pub mod checks;
pub mod cli;
pub mod client;
pub mod config;
pub mod demo;
pub mod findings;
pub mod metrics;
pub mod plan;
pub mod report;
pub mod runtime;
pub mod state;
pub mod telemetry;
