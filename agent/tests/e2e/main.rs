//! End-to-end tests: the real `meshkeeper` binary against kube-sim, changes made with the real
//! kubectl where the issues ask for it. Waits are bounded observations (events, or polling an
//! endpoint with a deadline), never fixed sleeps.

mod common;
mod control_plane;
mod daemon;
mod gateway;
mod injection;
mod precheck;
mod prometheus;
mod rbac;
mod real_server;
mod reinjection;
mod scale;
mod watcher;
