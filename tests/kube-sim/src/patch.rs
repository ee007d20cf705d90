//! Patch algorithms of the Kubernetes API server, over plain JSON values.
//!
//! INTERFACE STUB — the real implementation replaces this file. Signatures are
//! fixed; callers (the server) code against them.
#![allow(dead_code)]

use serde_json::Value;

/// A field owned by another manager that an apply would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldConflict {
    /// The field manager that owns the field.
    pub manager: String,
    /// The field path as Kubernetes prints it, e.g. `.spec.ports[port=80].nodePort`.
    pub field: String,
}

/// Why a patch could not be applied; the server maps each to a Status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchError {
    /// The patch document is malformed (400 BadRequest).
    BadRequest(String),
    /// The patch is well formed but cannot be applied, e.g. a JSON-patch `test` failed
    /// or a path does not exist (422 Invalid).
    Invalid(String),
    /// Server-side apply touched fields owned by other managers (409 Conflict).
    Conflict(Vec<FieldConflict>),
}

/// RFC 7386 JSON merge patch (`application/merge-patch+json`).
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let _ = (target, patch);
}

/// RFC 6902 JSON patch (`application/json-patch+json`), atomic: on error `target` is unchanged.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let _ = (target, patch);
    Err(PatchError::BadRequest("json patch not implemented".into()))
}

/// Strategic merge patch (`application/strategic-merge-patch+json`) for an object of `kind`.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value, kind: &str) -> Result<(), PatchError> {
    let _ = (target, patch, kind);
    Err(PatchError::BadRequest("strategic merge patch not implemented".into()))
}

/// Server-side apply (`application/apply-patch+yaml`, body already parsed to JSON).
/// Returns the new object with `metadata.managedFields` updated.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    kind: &str,
    now: &str,
) -> Result<Value, PatchError> {
    let _ = (live, applied, manager, force, kind, now);
    Err(PatchError::BadRequest("apply not implemented".into()))
}

/// Records a non-apply write (create, update, patch) by `manager` in `new.metadata.managedFields`
/// (operation `Update`), taking ownership of every field it changed away from other managers.
pub fn record_update(old: Option<&Value>, new: &mut Value, manager: &str, subresource: Option<&str>, now: &str) {
    let _ = (old, new, manager, subresource, now);
}
