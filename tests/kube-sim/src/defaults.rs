//! Defaulting as the API server applies it while decoding a request body (create, update and
//! the result of every patch). It runs before field management, so the writer owns the
//! defaulted fields, unlike what the registry sets afterwards (Service clusterIP/nodePorts,
//! Namespace finalizers), which nobody owns.

use serde_json::{Map, Value, json};

/// Fills in the defaults of `kind` (the kinds kube-sim models; others are left as sent).
pub fn apply(kind: &str, obj: &mut Value) {
    if kind == "Service" {
        service(obj);
    }
}

fn object_at<'a>(obj: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    let m = obj.as_object_mut()?;
    let slot = m.entry(key.to_string()).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    slot.as_object_mut()
}

fn is_unset(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Number(n)) => n.as_i64() == Some(0),
        _ => false,
    }
}

/// `SetDefaults_Service` (pkg/apis/core/v1/defaults.go).
fn service(obj: &mut Value) {
    let Some(spec) = object_at(obj, "spec") else { return };
    if is_unset(spec.get("sessionAffinity")) {
        spec.insert("sessionAffinity".into(), json!("None"));
    }
    match spec.get("sessionAffinity").and_then(Value::as_str) {
        Some("None") => {
            spec.remove("sessionAffinityConfig");
        }
        Some("ClientIP")
            if spec.get("sessionAffinityConfig").and_then(|c| c.pointer("/clientIP/timeoutSeconds")).is_none() =>
        {
            spec.insert("sessionAffinityConfig".into(), json!({"clientIP": {"timeoutSeconds": 10800}}));
        }
        _ => {}
    }
    if is_unset(spec.get("type")) {
        spec.insert("type".into(), json!("ClusterIP"));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            if is_unset(p.get("protocol")) {
                p.insert("protocol".into(), json!("TCP"));
            }
            if is_unset(p.get("targetPort"))
                && let Some(port) = p.get("port").cloned()
            {
                p.insert("targetPort".into(), port);
            }
        }
    }
    let ty = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP").to_string();
    let external_ips = spec.get("externalIPs").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    let externally_accessible = ty == "NodePort" || ty == "LoadBalancer" || (ty == "ClusterIP" && external_ips);
    if externally_accessible && is_unset(spec.get("externalTrafficPolicy")) {
        spec.insert("externalTrafficPolicy".into(), json!("Cluster"));
    }
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer" | "ClusterIP") && is_unset(spec.get("internalTrafficPolicy")) {
        spec.insert("internalTrafficPolicy".into(), json!("Cluster"));
    }
    if ty == "LoadBalancer" && spec.get("allocateLoadBalancerNodePorts").is_none_or(Value::is_null) {
        spec.insert("allocateLoadBalancerNodePorts".into(), json!(true));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_defaults_like_06_nodeport() {
        let mut s = json!({"spec": {"type": "NodePort", "selector": {"app": "x"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}, {"name": "https", "port": 443}]}});
        apply("Service", &mut s);
        assert_eq!(
            s["spec"],
            json!({"type": "NodePort", "selector": {"app": "x"},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}, {"name": "https", "port": 443, "targetPort": 443, "protocol": "TCP"}],
                "sessionAffinity": "None", "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster"})
        );
        let mut c = json!({"spec": {"ports": [{"port": 80, "targetPort": "http"}]}});
        apply("Service", &mut c);
        assert_eq!(c["spec"]["type"], "ClusterIP");
        assert_eq!(c["spec"]["ports"][0]["targetPort"], "http");
        assert!(c["spec"].get("externalTrafficPolicy").is_none(), "only for externally accessible Services");
        let mut lb = json!({"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP", "ports": [{"port": 1}]}});
        apply("Service", &mut lb);
        assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
        assert_eq!(lb["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"], 10800);
        let mut en = json!({"spec": {"type": "ExternalName", "externalName": "example.com"}});
        apply("Service", &mut en);
        assert!(en["spec"].get("internalTrafficPolicy").is_none());
    }
}
