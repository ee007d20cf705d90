#![forbid(unsafe_code)]
//! meshkeeper: keeps an Istio / Anthos Service Mesh the way its install guide prescribes.

pub mod config;
