//! ControllerRevisions (upstream `pkg/controller/history`), the template history of
//! StatefulSets and DaemonSets: `{owner}-{hash}` objects holding
//! `{"spec": {"template": {..., "$patch": "replace"}}}`, a `revision` number and the
//! `controller.kubernetes.io/hash` label.

use serde_json::{Value, json};

use super::util::{self, controlled_by};
use super::{CONTROLLER_MANAGER, Ctx};
use crate::ApiError;

pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// The revisions an owner controls, oldest revision first.
pub fn owned(ctx: &Ctx, owner: &Value) -> Vec<Value> {
    let uid = util::uid(owner);
    let mut list: Vec<Value> = ctx
        .c
        .list_owned("apps/v1", "controllerrevisions", util::namespace(owner), uid)
        .into_iter()
        .filter(|r| controlled_by(r, uid))
        .collect();
    list.sort_by_key(|r| (r["revision"].as_i64().unwrap_or(0), util::name(r).to_string()));
    list
}

/// What a revision stores for a template.
pub fn data_of(template: &Value) -> Value {
    let mut t = template.clone();
    if !t.is_object() {
        t = json!({});
    }
    t["$patch"] = json!("replace");
    json!({"spec": {"template": t}})
}

/// The template a revision holds.
pub fn template_of(rev: &Value) -> Value {
    let mut t = rev["data"]["spec"]["template"].clone();
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    t
}

pub fn hash_of(rev: &Value) -> &str {
    rev["metadata"]["labels"][HASH_LABEL].as_str().unwrap_or_default()
}

/// The revision for the owner's current template: the latest one when it holds it, an older
/// equal one renumbered to the next revision (a rollback), or a new one. Returns the revision
/// and the collision count (bumped when a name was taken by different data).
pub fn update_revision(
    ctx: &mut Ctx,
    owner: &Value,
    revisions: &[Value],
    collisions: i64,
) -> Result<(Value, i64), ApiError> {
    let data = data_of(&owner["spec"]["template"]);
    let next = revisions.last().and_then(|r| r["revision"].as_i64()).unwrap_or(0) + 1;
    if let Some(eq) = revisions.iter().rev().find(|r| r["data"] == data) {
        if revisions.last().is_some_and(|l| util::name(l) == util::name(eq)) {
            return Ok((eq.clone(), collisions));
        }
        let updated = super::patch_obj(ctx.c, "apps/v1", "controllerrevisions", eq, json!({"revision": next}))?;
        return Ok((updated, collisions));
    }
    let ns = util::namespace(owner);
    let mut collisions = collisions;
    loop {
        let hash = util::compute_hash(&data, collisions);
        let name = format!("{}-{hash}", util::name(owner));
        let mut labels = owner["spec"]["template"]["metadata"]["labels"].clone();
        if !labels.is_object() {
            labels = json!({});
        }
        labels[HASH_LABEL] = json!(hash);
        let rev = json!({"apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": name, "labels": labels, "ownerReferences": [util::controller_ref(owner)]},
            "data": data, "revision": next});
        match ctx.c.create_by("apps/v1", "controllerrevisions", ns, rev, CONTROLLER_MANAGER) {
            Ok(r) => return Ok((r, collisions)),
            Err(e) if e.code == 409 => {
                if let Some(existing) = ctx.c.get("apps/v1", "controllerrevisions", ns, &name)
                    && existing["data"] == data
                {
                    return Ok((existing, collisions));
                }
                collisions += 1;
                if collisions > 100 {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Deletes the oldest revisions no pod uses beyond `limit`.
pub fn truncate(ctx: &mut Ctx, revisions: &[Value], live: &[&str], limit: i64) -> Result<(), ApiError> {
    let dead: Vec<&Value> = revisions.iter().filter(|r| !live.contains(&util::name(r))).collect();
    let excess = dead.len() as i64 - limit.max(0);
    for r in dead.into_iter().take(excess.max(0) as usize) {
        match ctx.c.delete("apps/v1", "controllerrevisions", util::namespace(r), util::name(r)) {
            Ok(_) => {}
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
