//! Seeds: starting states of the simulated cluster.

use serde_json::json;

use crate::{ApiError, Cluster};

/// A bare cluster: the namespaces every cluster has.
pub fn basic(c: &Cluster) -> Result<(), ApiError> {
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        if c.get("v1", "namespaces", "", ns).is_none() {
            c.create("v1", "namespaces", "", json!({"metadata": {"name": ns}}))?;
        }
    }
    Ok(())
}

/// The install guide's layout (filled in by the seed module proper).
pub fn asm_onprem(c: &Cluster) -> Result<(), ApiError> {
    basic(c)
}
