//! The endpoints controller (upstream `pkg/controller/endpoint`): every Service with a selector
//! gets an Endpoints object of the same name listing its pods' IPs, Ready ones in `addresses`
//! and the others in `notReadyAddresses`, with the Service's ports resolved against the pods'
//! named container ports. What `kubectl get endpoints` shows and what a check of "does the
//! injector's Service have a ready backend" reads. EndpointSlices are not served.

use serde_json::{Value, json};

use super::util::{self, deleting};
use super::{CONTROLLER_MANAGER, Ctx};
use crate::{ApiError, PatchType};

/// A Service port's target on a pod: a number, a named container port, or the port itself.
fn target_port(svc_port: &Value, pod: &Value) -> Option<i64> {
    match &svc_port["targetPort"] {
        Value::Number(n) => n.as_i64(),
        Value::String(name) => pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
            .find(|p| p["name"] == name.as_str())
            .and_then(|p| p["containerPort"].as_i64()),
        _ => svc_port["port"].as_i64(),
    }
}

pub fn reconcile(ctx: &mut Ctx, ns: &str, name: &str) -> Result<(), ApiError> {
    let Some(svc) = ctx.c.get("v1", "services", ns, name) else { return Ok(()) };
    let selector = &svc["spec"]["selector"];
    let Some(sel) = selector.as_object().filter(|m| !m.is_empty()) else { return Ok(()) };
    if deleting(&svc) || svc["spec"]["type"] == "ExternalName" {
        return Ok(());
    }
    let mut pods: Vec<Value> = ctx
        .c
        .list("v1", "pods", Some(ns))
        .into_iter()
        .filter(|p| sel.iter().all(|(k, v)| p["metadata"]["labels"].get(k) == Some(v)))
        .filter(|p| !deleting(p) && !util::pod_terminal(p) && p["status"]["podIP"].is_string())
        .collect();
    pods.sort_by(|a, b| util::name(a).cmp(util::name(b)));
    // One subset per distinct port set (pods of one Deployment share theirs).
    let mut subsets: Vec<(Vec<Value>, Vec<Value>, Vec<Value>)> = Vec::new();
    for p in &pods {
        let ports: Vec<Value> = svc["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|sp| {
                let mut port =
                    json!({"port": target_port(sp, p)?, "protocol": sp["protocol"].as_str().unwrap_or("TCP")});
                if let Some(n) = sp["name"].as_str().filter(|n| !n.is_empty()) {
                    port["name"] = json!(n);
                }
                Some(port)
            })
            .collect();
        let addr = json!({"ip": p["status"]["podIP"], "nodeName": p["spec"]["nodeName"],
            "targetRef": {"kind": "Pod", "namespace": ns, "name": util::name(p), "uid": util::uid(p)}});
        let ready = util::pod_ready(p);
        let slot = match subsets.iter_mut().position(|(pp, _, _)| *pp == ports) {
            Some(i) => i,
            None => {
                subsets.push((ports, vec![], vec![]));
                subsets.len() - 1
            }
        };
        if ready {
            subsets[slot].1.push(addr);
        } else {
            subsets[slot].2.push(addr);
        }
    }
    let subsets: Vec<Value> = subsets
        .into_iter()
        .map(|(ports, ready, not_ready)| {
            let mut s = json!({"ports": ports});
            if !ready.is_empty() {
                s["addresses"] = Value::Array(ready);
            }
            if !not_ready.is_empty() {
                s["notReadyAddresses"] = Value::Array(not_ready);
            }
            s
        })
        .collect();
    let mut labels = svc["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    match ctx.c.get("v1", "endpoints", ns, name) {
        None => {
            let mut ep = json!({"metadata": {"name": name, "labels": labels,
                "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": util::now_rfc3339()}}});
            if !subsets.is_empty() {
                ep["subsets"] = Value::Array(subsets);
            }
            match ctx.c.create_by("v1", "endpoints", ns, ep, CONTROLLER_MANAGER) {
                Ok(_) => Ok(()),
                Err(e) if matches!(e.code, 409 | 403 | 404) => Ok(()),
                Err(e) => Err(e),
            }
        }
        Some(ep) => {
            let have: Vec<Value> = ep["subsets"].as_array().cloned().unwrap_or_default();
            if have == subsets && ep["metadata"]["labels"] == labels {
                return Ok(());
            }
            let body = json!({"metadata": {"resourceVersion": ep["metadata"]["resourceVersion"], "labels": labels,
                "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": util::now_rfc3339()}},
                "subsets": if subsets.is_empty() { Value::Null } else { Value::Array(subsets) }});
            ctx.c.patch("v1", "endpoints", ns, name, PatchType::Merge, &body, CONTROLLER_MANAGER)?;
            Ok(())
        }
    }
}
