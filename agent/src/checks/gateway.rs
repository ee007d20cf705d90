//! The gateway pin: keep the ingress gateway Service's IP (integrated LB mode) or nodePorts
//! (manual LB mode) where the load balancer expects them.
//!
//! | what                                             | finding                    | repair |
//! |--------------------------------------------------|----------------------------|--------|
//! | Service missing                                  | `GatewayServiceMissing`    | no (meshkeeper does not create it) |
//! | type is not LoadBalancer (integrated) / NodePort (manual) | `GatewayTypeWrong` | no (changing the type disrupts traffic) |
//! | IP field or annotation differs from the pin      | `GatewayIpDrift`           | JSON patch: test + replace |
//! | the IP actually assigned (status) differs        | `GatewayIpNotAssigned`     | no (status belongs to the LB) |
//! | a pinned port name is missing (renamed?)         | `GatewayPortMissing`       | no |
//! | a pinned port is on another nodePort             | `GatewayNodePortDrift`     | JSON patch: test name + test nodePort + replace |
//! | ... and the wanted nodePort is held by another Service | `GatewayNodePortTaken` | no: named, not fought |
//!
//! Every drifted field is one field of one remedy: the planner sends them as ONE JSON patch
//! whose `test` operations pin each port it changes (by index, name and current nodePort), so
//! pinning a freshly created Service is a single write, a concurrent change to any other port
//! is never clobbered, and a concurrent change to one of these makes the patch fail (422) and
//! re-plan on fresh state. Another controller that keeps changing a field back is the
//! planner's contest guard's business (`RepairContested`), not this check's.
//! IP pins apply in integrated mode, nodePort pins in manual mode; extra ports are left alone.

use k8s_openapi::api::core::v1::Service;
use kube::core::ApiResource;
use serde_json::{Value, json};

use super::{Check, Evaluation, Resource, View};
use crate::cache::ServiceInfo;
use crate::change::{FieldChange, Remedy, others, pointer_escape};
use crate::config::{GatewayMode, GatewaySettings};
use crate::findings::{CheckReport, Finding, Item, ObjectRef, Severity};

pub const CHECK: &str = "gateway";
/// Metric label of gateway repairs.
pub const ACTION: &str = "gateway_pin";
/// The field label of the IP pin.
pub const FIELD_IP: &str = "load_balancer_ip";

/// The `field` label of a nodePort pin.
pub fn field_node_port(port_name: &str) -> String {
    format!("node_port:{port_name}")
}

/// One drifted field and its repair.
#[derive(Debug, Clone, PartialEq)]
pub struct Drift {
    /// `load_balancer_ip` or `node_port:<name>`.
    pub field: String,
    pub expected: String,
    pub actual: String,
    /// The JSON-patch operations that repair it; None when it must not be repaired (collision).
    pub ops: Option<Vec<Value>>,
    /// Another Service holding the wanted nodePort.
    pub taken_by: Option<String>,
    /// Field managers other than meshkeeper that own the drifted field.
    pub owners: Vec<String>,
}

/// Everything detected about the gateway Service.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GatewayStatus {
    pub present: bool,
    pub type_wrong: Option<(String, String)>,
    pub drifts: Vec<Drift>,
    /// Pinned port names not on the Service (with a hint when a port with that nodePort exists).
    pub missing_ports: Vec<(String, Option<String>)>,
    /// The pinned IP is not what status.loadBalancer.ingress shows.
    pub ip_not_assigned: Option<(String, String)>,
}

impl GatewayStatus {
    /// `meshkeeper_gateway_pinned`: present, right type, nothing drifted.
    pub fn pinned(&self) -> bool {
        self.present && self.type_wrong.is_none() && self.drifts.is_empty() && self.missing_ports.is_empty()
    }
}

fn ops(v: Value) -> Option<Vec<Value>> {
    v.as_array().cloned()
}

/// The Service (`namespace/name`) other than `except` that holds nodePort `port`, if any.
pub fn node_port_holder(all: &[&ServiceInfo], except: (&str, &str), port: i32) -> Option<String> {
    all.iter()
        .filter(|o| (o.namespace.as_str(), o.name.as_str()) != except)
        .find(|o| o.ports.iter().any(|p| p.node_port == Some(port)))
        .map(|o| format!("{}/{}", o.namespace, o.name))
}

/// Detection over the cached Services (pure).
pub fn detect(g: &GatewaySettings, svc: Option<&ServiceInfo>, all: &[&ServiceInfo]) -> GatewayStatus {
    let Some(svc) = svc else { return GatewayStatus::default() };
    let mut st = GatewayStatus { present: true, ..Default::default() };
    let want_type = match g.mode {
        GatewayMode::Integrated => "LoadBalancer",
        GatewayMode::Manual => "NodePort",
        GatewayMode::Off => return st,
    };
    // A LoadBalancer Service also has nodePorts, so manual mode accepts it; integrated needs LoadBalancer.
    let type_ok = svc.type_ == want_type || (g.mode == GatewayMode::Manual && svc.type_ == "LoadBalancer");
    if !type_ok {
        st.type_wrong = Some((want_type.to_string(), svc.type_.clone()));
    }
    if g.mode == GatewayMode::Integrated
        && let Some(ip) = g.load_balancer_ip
    {
        let ip = ip.to_string();
        let annotation = &g.load_balancer_ip_annotation;
        let (current, path) = if annotation.is_empty() {
            (svc.load_balancer_ip.clone(), "/spec/loadBalancerIP".to_string())
        } else {
            (svc.annotations.get(annotation).cloned(), format!("/metadata/annotations/{}", pointer_escape(annotation)))
        };
        if current.as_deref() != Some(ip.as_str()) {
            let ops_v = match (&current, annotation.is_empty(), svc.annotations.is_empty()) {
                (Some(cur), _, _) => {
                    json!([{"op": "test", "path": path, "value": cur}, {"op": "replace", "path": path, "value": ip}])
                }
                // The annotations map itself may be absent: create it with the one key.
                (None, false, true) => {
                    json!([{"op": "add", "path": "/metadata/annotations", "value": {annotation.clone(): ip}}])
                }
                (None, _, _) => json!([{"op": "add", "path": path, "value": ip}]),
            };
            st.drifts.push(Drift {
                field: FIELD_IP.into(),
                expected: ip.clone(),
                actual: current.unwrap_or_else(|| "unset".into()),
                ops: ops(ops_v),
                taken_by: None,
                owners: others(&svc.ip_managers),
            });
        }
        if !svc.ingress_ips.is_empty() && !svc.ingress_ips.contains(&ip) {
            st.ip_not_assigned = Some((ip, svc.ingress_ips.join(",")));
        } else if svc.ingress_ips.is_empty() && svc.type_ == "LoadBalancer" {
            st.ip_not_assigned = Some((ip, "none yet".into()));
        }
    }
    if g.mode == GatewayMode::Manual {
        for (name, want) in &g.node_ports {
            if *want == 0 {
                continue;
            }
            let want = i32::from(*want);
            let Some((idx, port)) = svc.ports.iter().enumerate().find(|(_, p)| &p.name == name) else {
                let renamed = svc.ports.iter().find(|p| p.node_port == Some(want)).map(|p| {
                    format!("port {} ({}) now holds nodePort {want}: was it renamed from {name}?", p.port, p.name)
                });
                st.missing_ports.push((name.clone(), renamed));
                continue;
            };
            if port.node_port == Some(want) {
                continue;
            }
            let holder = node_port_holder(all, (&svc.namespace, &svc.name), want);
            let path = format!("/spec/ports/{idx}/nodePort");
            let ops_v = match port.node_port {
                Some(cur) => json!([
                    {"op": "test", "path": format!("/spec/ports/{idx}/name"), "value": name},
                    {"op": "test", "path": path, "value": cur},
                    {"op": "replace", "path": path, "value": want},
                ]),
                None => json!([
                    {"op": "test", "path": format!("/spec/ports/{idx}/name"), "value": name},
                    {"op": "add", "path": path, "value": want},
                ]),
            };
            st.drifts.push(Drift {
                field: field_node_port(name),
                expected: want.to_string(),
                actual: port.node_port.map(|p| p.to_string()).unwrap_or_else(|| "unset".into()),
                ops: if holder.is_some() { None } else { ops(ops_v) },
                taken_by: holder,
                owners: others(svc.node_port_managers.get(&port.port).map(Vec::as_slice).unwrap_or_default()),
            });
        }
    }
    st
}

fn service_ref(g: &GatewaySettings, svc: Option<&ServiceInfo>) -> ObjectRef {
    ObjectRef::new("v1", "Service", Some(&g.namespace), &g.service).with_uid(svc.and_then(|s| s.uid.clone()))
}

/// Assesses the gateway from a view.
pub fn assess(view: &View<'_>) -> GatewayStatus {
    let g = &view.settings.gateway;
    let svc = view.services.get(&format!("{}/{}", g.namespace, g.service));
    let all: Vec<&ServiceInfo> = view.services.iter().collect();
    detect(g, svc, &all)
}

pub fn report(st: &GatewayStatus, view: &View<'_>, title: &'static str) -> CheckReport {
    let g = &view.settings.gateway;
    let svc = view.services.get(&format!("{}/{}", g.namespace, g.service));
    let object = service_ref(g, svc);
    let name = format!("{}/{}", g.namespace, g.service);
    let mut items = Vec::new();
    let finding = |desc: String,
                   reason,
                   severity,
                   expected: String,
                   actual: String,
                   remediable,
                   message: String,
                   hint: String| {
        Item::finding(
            desc,
            Finding {
                check: CHECK,
                reason,
                severity,
                object: object.clone(),
                expected,
                actual,
                remediable,
                message,
                hint: Some(hint),
            },
        )
    };
    if !st.present {
        items.push(finding(
            format!("Service {name} present"),
            "GatewayServiceMissing",
            Severity::Error,
            "present".into(),
            "not found".into(),
            false,
            format!("the gateway Service {name} does not exist: no ingress traffic reaches the mesh"),
            format!("reinstall the ingress gateway; kubectl -n {} get svc", g.namespace),
        ));
        return CheckReport { check: CHECK, title, items };
    }
    items.push(Item::pass(format!("Service {name} present")));
    if let Some((want, got)) = &st.type_wrong {
        items.push(finding(
            format!("Service {name} is of type {want}"),
            "GatewayTypeWrong",
            Severity::Warning,
            want.clone(),
            got.clone(),
            false,
            format!("Service {name} is {got}, gateway.mode {:?} expects {want}", g.mode).to_lowercase(),
            format!(
                "kubectl -n {} patch svc {} -p '{{\"spec\":{{\"type\":\"{want}\"}}}}' (disrupts traffic: plan it)",
                g.namespace, g.service
            ),
        ));
    }
    for d in &st.drifts {
        let desc = format!("{} pinned at {}", d.field, d.expected);
        let (reason, severity, message, hint, remediable) = if let Some(holder) = &d.taken_by {
            (
                "GatewayNodePortTaken",
                Severity::Error,
                format!(
                    "{} should be {} but Service {holder} holds that nodePort; meshkeeper does not fight over it",
                    d.field, d.expected
                ),
                format!(
                    "free nodePort {} on {holder}, or pin another port in gateway.node_ports and update the load balancer",
                    d.expected
                ),
                false,
            )
        } else {
            let (reason, what) =
                if d.field == FIELD_IP { ("GatewayIpDrift", "IP") } else { ("GatewayNodePortDrift", "nodePort") };
            (
                reason,
                Severity::Warning,
                format!("{name}: {} drifted: {what} is {}, pinned {}", d.field, d.actual, d.expected),
                if g.repair {
                    "meshkeeper repairs it (gateway.repair: true)".to_string()
                } else {
                    format!("set gateway.repair: true, or: kubectl -n {} edit svc {}", g.namespace, g.service)
                },
                true,
            )
        };
        items.push(finding(desc, reason, severity, d.expected.clone(), d.actual.clone(), remediable, message, hint));
    }
    for (port, renamed) in &st.missing_ports {
        items.push(finding(
            format!("port {port} present"),
            "GatewayPortMissing",
            Severity::Error,
            format!("a port named {port}"),
            "absent".into(),
            false,
            format!("Service {name} has no port named {port}; the load balancer's target for it is gone"),
            renamed.clone().unwrap_or_else(|| format!("kubectl -n {} get svc {} -o yaml", g.namespace, g.service)),
        ));
    }
    if let Some((want, got)) = &st.ip_not_assigned {
        items.push(finding(
            format!("load balancer assigned {want}"),
            "GatewayIpNotAssigned",
            Severity::Warning,
            want.clone(),
            got.clone(),
            false,
            format!(
                "status.loadBalancer.ingress of {name} is {got}, pinned {want} (status belongs to the load balancer)"
            ),
            "check the load balancer controller (MetalLB, F5/Seesaw integration) and that the VIP is free".into(),
        ));
    }
    if st.drifts.is_empty() && st.missing_ports.is_empty() && st.type_wrong.is_none() {
        let what = match g.mode {
            GatewayMode::Integrated => format!("IP {}", g.load_balancer_ip.map(|i| i.to_string()).unwrap_or_default()),
            _ => format!("{} nodePorts", g.node_ports.values().filter(|p| **p != 0).count()),
        };
        items.push(Item::pass(format!("{what} pinned")));
    }
    CheckReport { check: CHECK, title, items }
}

/// The remedy for the drifted fields that may be repaired (collisions are never fought).
pub fn remedy(st: &GatewayStatus, g: &GatewaySettings, svc: Option<&ServiceInfo>) -> Option<Remedy> {
    let svc = svc?;
    let fields: Vec<FieldChange> = st
        .drifts
        .iter()
        .filter_map(|d| {
            Some(FieldChange {
                field: d.field.clone(),
                expected: d.expected.clone(),
                actual: d.actual.clone(),
                owners: d.owners.clone(),
                ops: d.ops.clone()?,
            })
        })
        .collect();
    if fields.is_empty() {
        return None;
    }
    Some(Remedy {
        check: CHECK,
        kind: ACTION,
        reason: "GatewayPinRepaired",
        object: service_ref(g, Some(svc)),
        resource: ApiResource::erase::<Service>(&()),
        resource_version: svc.resource_version.clone(),
        prelude: vec![],
        fields,
        writers: svc.writers.iter().filter(|(m, _)| m != crate::change::FIELD_MANAGER).cloned().collect(),
    })
}

pub struct GatewayCheck;

impl Check for GatewayCheck {
    fn name(&self) -> &'static str {
        CHECK
    }

    fn title(&self) -> &'static str {
        "Gateway pin"
    }

    fn inputs(&self) -> &'static [Resource] {
        &[Resource::Services]
    }

    fn evaluate(&self, view: &View<'_>) -> Evaluation {
        let g = &view.settings.gateway;
        let st = assess(view);
        let svc = view.services.get(&format!("{}/{}", g.namespace, g.service));
        let remedies = remedy(&st, g, svc).into_iter().collect();
        Evaluation::with_remedies(report(&st, view, self.title()), remedies)
    }
}

/// The gauge families of this check; `target_namespace` and `gateway` name the Service.
pub const GAUGES: &[(&str, &str, &[&str])] = &[
    (
        "meshkeeper_gateway_pinned",
        "1 when the gateway Service exists with the pinned type, IP and nodePorts, else 0.",
        &["target_namespace", "gateway"],
    ),
    (
        "meshkeeper_gateway_drift",
        "1 for each pinned field that currently differs from its pin.",
        &["target_namespace", "gateway", "field"],
    ),
    (
        "meshkeeper_gateway_contested",
        "1 when another controller keeps reverting the pin and meshkeeper stopped repairing.",
        &["target_namespace", "gateway"],
    ),
];

/// The series of [`GAUGES`]; `contested`: whether the planner holds a field of the pin.
pub fn samples(st: &GatewayStatus, g: &GatewaySettings, contested: bool) -> Vec<crate::metrics::Sample> {
    let b = |x: bool| if x { 1.0 } else { 0.0 };
    let svc = || vec![g.namespace.clone(), g.service.clone()];
    let mut out = vec![(0, svc(), b(st.pinned())), (2, svc(), b(contested))];
    let mut fields: Vec<String> = match g.mode {
        GatewayMode::Integrated => vec![FIELD_IP.to_string()],
        GatewayMode::Manual => g.node_ports.iter().filter(|(_, p)| **p != 0).map(|(n, _)| field_node_port(n)).collect(),
        GatewayMode::Off => vec![],
    };
    fields.sort();
    for f in fields {
        let drifted = st.drifts.iter().any(|d| d.field == f);
        let mut labels = svc();
        labels.push(f);
        out.push((1, labels, b(drifted)));
    }
    out
}

#[cfg(test)]
mod tests;
