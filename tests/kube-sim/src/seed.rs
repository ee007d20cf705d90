//! Seeds: starting states of the simulated cluster.

use base64::Engine;
use serde_json::{Value, json};

use crate::{ApiError, Cluster};

/// The install guide's version.
pub const ASM_VERSION: &str = "1.4.10-asm.18";
pub const ASM_HUB: &str = "gcr.io/gke-release/asm";

/// The install guide's manual-LB ports of istio-ingressgateway: (name, port, nodePort).
pub const GATEWAY_PORTS: &[(&str, i64, i64)] = &[
    ("status-port", 15020, 30391),
    ("http2", 80, 31380),
    ("https", 443, 31390),
    ("tcp", 31400, 31400),
    ("https-kiali", 15029, 31073),
    ("https-prometheus", 15030, 30253),
    ("https-grafana", 15031, 30050),
    ("https-tracing", 15032, 31204),
    ("tls", 15443, 30158),
];

/// A bare cluster: the namespaces every cluster has.
pub fn basic(c: &Cluster) -> Result<(), ApiError> {
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        if c.get("v1", "namespaces", "", ns).is_none() {
            c.create("v1", "namespaces", "", json!({"metadata": {"name": ns}}))?;
        }
    }
    Ok(())
}

/// A self-signed CA valid for `days` from now, as PEM (what the injector's caBundle holds).
pub fn ca_pem(days: i64) -> String {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    ca_pem_between(now - 86_400, now + days * 86_400)
}

/// A self-signed CA valid between two unix times.
pub fn ca_pem_between(from: i64, until: i64) -> String {
    let Ok(mut params) = rcgen::CertificateParams::new(vec!["istio-sidecar-injector.istio-system.svc".to_string()])
    else {
        return String::new();
    };
    let to_dt = |t: i64| rcgen::date_time_ymd(1970, 1, 1) + std::time::Duration::from_secs(t.max(0) as u64);
    params.not_before = to_dt(from);
    params.not_after = to_dt(until);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    match rcgen::KeyPair::generate().and_then(|k| params.self_signed(&k)) {
        Ok(cert) => cert.pem(),
        Err(_) => String::new(),
    }
}

pub fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn deployment(ns: &str, name: &str, labels: Value, image: &str, replicas: i64) -> Value {
    json!({"metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": name.trim_start_matches("istio-"), "image": image}]}}}})
}

fn ns_obj(name: &str, labels: Value) -> Value {
    json!({"metadata": {"name": name, "labels": labels}})
}

/// The injector webhook for `istio-injection=enabled` namespaces, with a CA bundle.
pub fn injector_webhook(ca_pem: &str) -> Value {
    json!({"metadata": {"name": "istio-sidecar-injector", "labels": {"app": "sidecarInjectorWebhook", "istio": "sidecar-injector"}},
        "webhooks": [{"name": "sidecar-injector.istio.io",
            "clientConfig": {"service": {"name": "istio-sidecar-injector", "namespace": "istio-system", "path": "/inject"}, "caBundle": b64(ca_pem)},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
            "failurePolicy": "Fail", "sideEffects": "None", "admissionReviewVersions": ["v1beta1"],
            "namespaceSelector": {"matchLabels": {"istio-injection": "enabled"}}}]})
}

/// The istio-ingressgateway Service in manual LB mode (NodePort, the guide's nodePorts).
pub fn ingress_gateway_service() -> Value {
    let ports: Vec<Value> = GATEWAY_PORTS
        .iter()
        .map(|(name, port, node_port)| json!({"name": name, "port": port, "targetPort": port, "nodePort": node_port, "protocol": "TCP"}))
        .collect();
    json!({"metadata": {"name": "istio-ingressgateway", "namespace": "istio-system", "labels": {"app": "istio-ingressgateway", "istio": "ingressgateway"}},
        "spec": {"type": "NodePort", "selector": {"app": "istio-ingressgateway", "istio": "ingressgateway"}, "ports": ports}})
}

/// The install guide's layout (ASM 1.4.10-asm.18, profile asm-onprem, GKE on VMware) plus
/// application namespaces in every policy state:
/// - `bookinfo`: labelled `istio-injection=enabled`;
/// - `shop`: no label (the policy wants it), with a Deployment whose pods predate injection;
/// - `legacy`: opted out with `meshkeeper.io/injection=disabled`.
pub fn asm_onprem(c: &Cluster) -> Result<(), ApiError> {
    basic(c)?;
    for (name, labels) in [
        ("istio-system", json!({"istio-injection": "disabled"})),
        ("gke-system", json!({})),
        ("gke-connect", json!({})),
        ("bookinfo", json!({"istio-injection": "enabled"})),
        ("shop", json!({"team": "shop"})),
        ("legacy", json!({"meshkeeper.io/injection": "disabled"})),
    ] {
        c.create("v1", "namespaces", "", ns_obj(name, labels))?;
    }
    for i in 0..4 {
        let node = json!({"metadata": {"name": format!("user-node-{i}"), "labels": {"kubernetes.io/os": "linux"}},
            "status": {"capacity": {"cpu": "1", "memory": "3750M", "pods": "110"}, "allocatable": {"cpu": "1", "memory": "3750M", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}});
        c.create("v1", "nodes", "", node)?;
    }
    let components = [
        ("istio-citadel", json!({"app": "security", "istio": "citadel"}), format!("{ASM_HUB}/citadel:{ASM_VERSION}")),
        ("istio-galley", json!({"app": "galley", "istio": "galley"}), format!("{ASM_HUB}/galley:{ASM_VERSION}")),
        (
            "istio-ingressgateway",
            json!({"app": "istio-ingressgateway", "istio": "ingressgateway"}),
            format!("{ASM_HUB}/proxyv2:{ASM_VERSION}"),
        ),
        ("istio-pilot", json!({"app": "pilot", "istio": "pilot"}), format!("{ASM_HUB}/pilot:{ASM_VERSION}")),
        (
            "istio-sidecar-injector",
            json!({"app": "sidecarInjectorWebhook", "istio": "sidecar-injector"}),
            format!("{ASM_HUB}/sidecar_injector:{ASM_VERSION}"),
        ),
        ("promsd", json!({"app": "promsd"}), "prom/prometheus:v2.8.0".to_string()),
    ];
    for (name, labels, image) in &components {
        c.create("apps/v1", "deployments", "istio-system", deployment("istio-system", name, labels.clone(), image, 1))?;
    }
    for (name, selector, port) in [
        ("istio-sidecar-injector", json!({"istio": "sidecar-injector"}), 443),
        ("istio-pilot", json!({"istio": "pilot"}), 15010),
        ("istio-citadel", json!({"istio": "citadel"}), 8060),
        ("istio-galley", json!({"istio": "galley"}), 443),
    ] {
        c.create("v1", "services", "istio-system", json!({"metadata": {"name": name}, "spec": {"selector": selector, "ports": [{"name": "main", "port": port}]}}))?;
    }
    c.create("v1", "services", "istio-system", ingress_gateway_service())?;
    c.create("admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", "", injector_webhook(&ca_pem(365)))?;
    let values = json!({"global": {"hub": ASM_HUB, "tag": ASM_VERSION, "proxy": {"image": "proxyv2"}}}).to_string();
    c.create(
        "v1",
        "configmaps",
        "istio-system",
        json!({"metadata": {"name": "istio-sidecar-injector"},
        "data": {"config": "policy: enabled\ntemplate: ''\n", "values": values}}),
    )?;
    c.register_crd("authentication.istio.io", "v1alpha1", "MeshPolicy", "meshpolicies", false)?;
    c.create(
        "authentication.istio.io/v1alpha1",
        "meshpolicies",
        "",
        json!({"metadata": {"name": "default"}, "spec": {"peers": [{"mtls": {"mode": "PERMISSIVE"}}]}}),
    )?;
    // GKE on VMware's own Istio pieces: not the mesh.
    c.create(
        "apps/v1",
        "deployments",
        "gke-system",
        deployment("gke-system", "istio-pilot", json!({"app": "gke-pilot"}), "gke.gcr.io/istio/pilot:1.3.6-gke.0", 1),
    )?;
    c.create(
        "apps/v1",
        "deployments",
        "gke-system",
        deployment(
            "gke-system",
            "istio-ingressgateway",
            json!({"app": "gke-ingressgateway"}),
            "gke.gcr.io/istio/proxyv2:1.3.6-gke.0",
            1,
        ),
    )?;
    c.create(
        "apps/v1",
        "deployments",
        "kube-system",
        deployment(
            "kube-system",
            "istio-citadel",
            json!({"app": "gke-citadel"}),
            "gke.gcr.io/istio/citadel:1.3.6-gke.0",
            1,
        ),
    )?;
    // Applications.
    c.create(
        "apps/v1",
        "deployments",
        "bookinfo",
        deployment(
            "bookinfo",
            "productpage",
            json!({"app": "productpage"}),
            "docker.io/istio/examples-bookinfo-productpage-v1:1.15.0",
            2,
        ),
    )?;
    c.create("apps/v1", "deployments", "shop", deployment("shop", "web", json!({"app": "web"}), "nginx:1.25", 2))?;
    c.create(
        "apps/v1",
        "deployments",
        "legacy",
        deployment("legacy", "batch", json!({"app": "batch"}), "busybox:1.36", 1),
    )?;
    Ok(())
}
