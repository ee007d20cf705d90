#![forbid(unsafe_code)]
//! kube-sim (under construction)
pub mod patch;
pub mod rbac;
pub mod resources;
pub mod selectors;
pub mod store;
