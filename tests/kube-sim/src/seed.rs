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

/// The injector's template as Istio 1.4 ships it (abridged): kube-sim's injector does not
/// render it, it only hashes it into the `sidecar.istio.io/status` annotation.
pub const INJECTOR_TEMPLATE: &str = r#"rewriteAppHTTPProbe: false
initContainers:
- name: istio-init
  image: "{{ .Values.global.hub }}/{{ .Values.global.proxy_init.image }}:{{ .Values.global.tag }}"
  args: ["-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15020"]
containers:
- name: istio-proxy
  image: "{{ .Values.global.hub }}/{{ .Values.global.proxy.image }}:{{ .Values.global.tag }}"
  args: [proxy, sidecar, --domain, $(POD_NAMESPACE).svc.{{ .Values.global.proxy.clusterDomain }}]
volumes:
- name: istio-envoy
  emptyDir: {medium: Memory}
- name: istio-certs
  secret: {optional: true, secretName: "istio.{{ .Spec.ServiceAccountName }}"}
"#;

/// The injector's ConfigMap `istio-sidecar-injector` (istio-system) as Istio 1.4 has it: `config`
/// (YAML: policy, selectors, template) and `values` (JSON: the Helm values; the proxy image is
/// `{global.hub}/{global.proxy.image}:{global.tag}`).
pub fn injector_configmap(hub: &str, tag: &str) -> Value {
    let config = format!(
        "policy: enabled\nalwaysInjectSelector:\n  []\nneverInjectSelector:\n  []\ntemplate: |\n{}",
        INJECTOR_TEMPLATE.lines().map(|l| format!("  {l}\n")).collect::<String>()
    );
    let values = json!({"global": {"hub": hub, "tag": tag, "proxy": {"image": "proxyv2", "clusterDomain": "cluster.local"},
        "proxy_init": {"image": "proxyv2"}}, "sidecarInjectorWebhook": {"enableNamespacesByDefault": false, "rewriteAppHTTPProbe": false}})
    .to_string();
    json!({"metadata": {"name": "istio-sidecar-injector", "namespace": "istio-system", "labels": {"app": "sidecar-injector", "istio": "sidecar-injector"}},
        "data": {"config": config, "values": values}})
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
    user_nodes(c, 4)?;
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
    c.create("v1", "configmaps", "istio-system", injector_configmap(ASM_HUB, ASM_VERSION))?;
    c.register_crd("authentication.istio.io", "v1alpha1", "MeshPolicy", "meshpolicies", false)?;
    c.create(
        "authentication.istio.io/v1alpha1",
        "meshpolicies",
        "",
        json!({"metadata": {"name": "default"}, "spec": {"peers": [{"mtls": {"mode": "PERMISSIVE"}}]}}),
    )?;
    gke_istio_pieces(c)?;
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

/// `n` Ready user-cluster nodes, each a quarter of the install guide's minimum (1 vCPU,
/// 3750M allocatable): four are exactly its 4 vCPU, 15 GB and 4 nodes.
pub fn user_nodes(c: &Cluster, n: usize) -> Result<(), ApiError> {
    for i in 0..n {
        let name = format!("user-node-{i}");
        let node = json!({"metadata": {"name": name, "labels": {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name}},
            "status": {"capacity": {"cpu": "1", "memory": "3750M", "pods": "110"}, "allocatable": {"cpu": "1", "memory": "3750M", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
                "addresses": [{"type": "InternalIP", "address": format!("10.0.0.{}", 11 + i)}, {"type": "Hostname", "address": name}],
                "nodeInfo": {"kubeletVersion": "v1.36.2", "osImage": "Ubuntu 22.04.4 LTS", "kernelVersion": "5.15.0-1060-gke",
                    "containerRuntimeVersion": "containerd://1.7.22", "operatingSystem": "linux", "architecture": "amd64"}}});
        c.create("v1", "nodes", "", node)?;
    }
    Ok(())
}

/// GKE on VMware's own Istio pieces (not the mesh): Pilot and an ingress gateway in
/// gke-system, Citadel in kube-system, their namespaces created where missing.
pub fn gke_istio_pieces(c: &Cluster) -> Result<(), ApiError> {
    for ns in ["gke-system", "kube-system"] {
        if c.get("v1", "namespaces", "", ns).is_none() {
            c.create("v1", "namespaces", "", ns_obj(ns, json!({})))?;
        }
    }
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
    Ok(())
}

/// An empty GKE on VMware user cluster of the install guide's size, before the install: the
/// namespaces every cluster has, gke-system and gke-connect, and [`user_nodes`] (4 of them is
/// exactly the guide's minimum). No mesh, and none of GKE's own Istio pieces (add them with
/// [`gke_istio_pieces`]).
pub fn guide_sized(c: &Cluster, nodes: usize) -> Result<(), ApiError> {
    basic(c)?;
    for ns in ["gke-system", "gke-connect"] {
        c.create("v1", "namespaces", "", ns_obj(ns, json!({})))?;
    }
    user_nodes(c, nodes)
}

/// [`asm_onprem`], then waits (bounded: an error after 20 s, e.g. without actors) until every
/// Deployment in istio-system is available: from then on pods in injected namespaces get their
/// sidecar (before, the injector's webhook has no endpoint and, with `failurePolicy: Fail`,
/// their creation fails as on a real cluster).
pub async fn asm_onprem_ready(c: &Cluster) -> Result<(), ApiError> {
    asm_onprem(c)?;
    wait_for(c, "the istio-system Deployments did not become available", |c| {
        c.list("apps/v1", "deployments", Some("istio-system")).iter().all(|d| {
            d["status"]["availableReplicas"].is_i64() && d["status"]["availableReplicas"] == d["spec"]["replicas"]
        })
    })
    .await
}

/// Waits until `f` holds, re-checking after every change (20 s at most).
async fn wait_for(c: &Cluster, what: &str, f: impl Fn(&Cluster) -> bool) -> Result<(), ApiError> {
    let mut rx = c.subscribe();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while !f(c) {
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::new(504, "Timeout", format!("{what} within 20 s (are the actors on?)")));
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => return Err(ApiError::new(504, "Timeout", format!("{what} within 20 s (are the actors on?)"))),
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => {
                return Err(ApiError::new(500, "InternalError", "the store went away"));
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

/// The namespaces [`reinjection_demo`] adds.
pub const REINJECTION_NAMESPACES: &[&str] = &["payments", "edge"];

/// The label of the workload the injector never injects (the demo adds a `neverInjectSelector`
/// for it to the injector's ConfigMap).
pub const NEVER_INJECT_LABEL: (&str, &str) = ("mesh.example.com/sidecar", "never");

fn workload_template(app: &str, image: &str, extra_labels: Value) -> Value {
    let mut labels = json!({"app": app});
    if let Some(m) = extra_labels.as_object() {
        for (k, v) in m {
            labels[k] = v.clone();
        }
    }
    json!({"metadata": {"labels": labels}, "spec": {"terminationGracePeriodSeconds": 5,
        "containers": [{"name": app, "image": image, "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}]}]}})
}

/// Workloads whose pods predate injection, for meshkeeper's re-injection by rolling restart (run
/// it after [`asm_onprem`], with the actors on). It creates, in namespaces without the injection
/// label:
/// - `payments`: Deployment `api` (3 replicas) with Service `api`, StatefulSet `ledger` (2, a
///   headless Service), a bare pod `debug-shell` (no controller: a restart cannot fix it), and
///   a Job `nightly-report` whose pod has Succeeded;
/// - `edge`: DaemonSet `log-shipper` (one pod per node) and Deployment `metrics-exporter`
///   labelled [`NEVER_INJECT_LABEL`], which the injector's `neverInjectSelector` matches (a
///   restart gives it no sidecar either).
///
/// Once every pod runs (bounded: an error after 20 s, e.g. without actors), the
/// `neverInjectSelector` entry is added to the injector's ConfigMap and both namespaces are
/// labelled `istio-injection=enabled`: every pod in them now lacks the sidecar it would get if
/// it were created again.
pub async fn reinjection_demo(c: &Cluster) -> Result<(), ApiError> {
    for ns in REINJECTION_NAMESPACES {
        c.create("v1", "namespaces", "", ns_obj(ns, json!({"team": ns})))?;
    }
    let deployment = |name: &str, image: &str, replicas: i64, extra: Value| {
        json!({"metadata": {"name": name, "labels": {"app": name}}, "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": workload_template(name, image, extra)}})
    };
    c.create(
        "apps/v1",
        "deployments",
        "payments",
        deployment("api", "gcr.io/example/payments-api:2.3.1", 3, json!({})),
    )?;
    c.create("v1", "services", "payments", json!({"metadata": {"name": "api"}, "spec": {"selector": {"app": "api"}, "ports": [{"name": "http", "port": 8080, "targetPort": 8080}]}}))?;
    c.create("v1", "services", "payments", json!({"metadata": {"name": "ledger"}, "spec": {"clusterIP": "None", "selector": {"app": "ledger"}, "ports": [{"name": "http", "port": 8080}]}}))?;
    c.create(
        "apps/v1",
        "statefulsets",
        "payments",
        json!({"metadata": {"name": "ledger", "labels": {"app": "ledger"}}, "spec": {"replicas": 2, "serviceName": "ledger",
            "selector": {"matchLabels": {"app": "ledger"}}, "template": workload_template("ledger", "gcr.io/example/ledger:1.8.0", json!({}))}}),
    )?;
    c.create(
        "v1",
        "pods",
        "payments",
        json!({"metadata": {"name": "debug-shell", "labels": {"app": "debug-shell"}}, "spec": {"containers": [{"name": "shell", "image": "busybox:1.36", "command": ["sleep", "infinity"]}]}}),
    )?;
    c.create(
        "batch/v1",
        "jobs",
        "payments",
        json!({"metadata": {"name": "nightly-report"}, "spec": {"backoffLimit": 2, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "report", "image": "gcr.io/example/report:0.9"}]}}}}),
    )?;
    c.create(
        "apps/v1",
        "daemonsets",
        "edge",
        json!({"metadata": {"name": "log-shipper", "labels": {"app": "log-shipper"}}, "spec": {"selector": {"matchLabels": {"app": "log-shipper"}},
            "template": workload_template("log-shipper", "fluent/fluent-bit:3.0", json!({}))}}),
    )?;
    let (k, v) = NEVER_INJECT_LABEL;
    c.create(
        "apps/v1",
        "deployments",
        "edge",
        deployment("metrics-exporter", "prom/statsd-exporter:v0.26.0", 1, json!({k: v})),
    )?;

    let ready = |c: &Cluster| {
        let full = |api: &str, plural: &str, ns: &str, name: &str, field: &str| {
            c.get(api, plural, ns, name)
                .is_some_and(|o| o["status"][field].is_i64() && o["status"][field] == o["spec"]["replicas"])
        };
        let nodes = c.count("v1", "nodes").max(1) as i64;
        full("apps/v1", "deployments", "payments", "api", "availableReplicas")
            && full("apps/v1", "deployments", "edge", "metrics-exporter", "availableReplicas")
            && full("apps/v1", "statefulsets", "payments", "ledger", "availableReplicas")
            && c.get("apps/v1", "daemonsets", "edge", "log-shipper")
                .is_some_and(|d| d["status"]["numberAvailable"].as_i64() == Some(nodes))
            && c.get("batch/v1", "jobs", "payments", "nightly-report").is_some_and(|j| j["status"]["succeeded"] == 1)
            && c.get("v1", "pods", "payments", "debug-shell").is_some_and(|p| p["status"]["phase"] == "Running")
    };
    wait_for(c, "reinjection_demo: the workloads did not start", ready).await?;
    // The injector never injects the exporter; then injection is turned on for both namespaces.
    if let Some(cm) = c.get("v1", "configmaps", "istio-system", "istio-sidecar-injector") {
        let mut config: Value =
            cm["data"]["config"].as_str().and_then(|s| serde_yaml::from_str(s).ok()).unwrap_or_else(|| json!({}));
        let mut never: Vec<Value> = config["neverInjectSelector"].as_array().cloned().unwrap_or_default();
        never.push(json!({"matchLabels": {k: v}}));
        config["neverInjectSelector"] = Value::Array(never);
        let text = serde_yaml::to_string(&config).map_err(|e| ApiError::new(500, "InternalError", e.to_string()))?;
        c.patch(
            "v1",
            "configmaps",
            "istio-system",
            "istio-sidecar-injector",
            crate::PatchType::Merge,
            &json!({"data": {"config": text}}),
            "istioctl",
        )?;
    }
    for ns in REINJECTION_NAMESPACES {
        c.patch(
            "v1",
            "namespaces",
            "",
            ns,
            crate::PatchType::Merge,
            &json!({"metadata": {"labels": {"istio-injection": "enabled"}}}),
            "kubectl-label",
        )?;
    }
    Ok(())
}
