//! Istio's sidecar injector as an admission step at pod creation.
//!
//! Which pods reach it: the stored MutatingWebhookConfigurations whose webhooks call a Service
//! in `istio-system` (e.g. the seeded `istio-sidecar-injector`, `namespaceSelector:
//! istio-injection=enabled`; a revision's `istio-sidecar-injector-<rev>`), by their
//! `namespaceSelector` and `objectSelector`. With no such configuration stored the 1.4 default
//! applies (`istio-injection=enabled`, or `istio.io/rev=<served revision>` without
//! `istio-injection`).
//!
//! Whether it answers: `Actors::set_injector_up(false)` is an outage the webhook ignores (pods
//! are created without a sidecar, as with `failurePolicy: Ignore`). When the webhook's Service
//! has no ready pod (its Deployment scaled to 0, crash-looping, not started yet) the webhook's
//! `failurePolicy` decides: `Fail` (Istio's default and the seed's) rejects the pod with the
//! API server's 500 "failed calling webhook ... no endpoints available", `Ignore` creates it
//! without a sidecar.
//!
//! What it decides (Istio's `injectRequired`): never host-network pods or pods in kube-system
//! and kube-public; then the pod's `sidecar.istio.io/inject` label or annotation (`y`, `yes`,
//! `true`, `on` inject, any other value does not); then `neverInjectSelector`, then
//! `alwaysInjectSelector`, then `policy` (`enabled` injects) — all from the injector's ConfigMap
//! `istio-sidecar-injector` (`istio-sidecar-injector-<rev>` for a revision) in istio-system,
//! key `config` (YAML). The proxy image is `{global.hub}/{global.proxy.image}:{global.tag}` from
//! its key `values` (JSON); without a ConfigMap, [`InjectorState`]'s hub and version.
//!
//! What it adds: `istio-init` (init container), `istio-proxy` (a container, or with native
//! sidecars an init container with `restartPolicy: Always`), the `istio-envoy` and
//! `istio-certs` volumes, the `sidecar.istio.io/status` annotation and the
//! `security.istio.io/tlsMode: istio` label. Injection happens only at creation: running pods keep
//! what they were created with.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::lock;
use super::util::{self, selector_matches};
use crate::store::{Admission, Store};
use crate::{ApiError, Cluster, PatchType};

pub const CONFIGMAP: &str = "istio-sidecar-injector";
pub const ISTIO_NAMESPACE: &str = "istio-system";

/// The simulated injector's state; change it to simulate an outage or an upgrade.
#[derive(Debug, Clone)]
pub struct InjectorState {
    /// Down: pods are created without a sidecar (an outage the webhook ignores).
    pub up: bool,
    /// The hub and version used when the injector's ConfigMap does not exist.
    pub hub: String,
    pub version: String,
    /// Revisions it serves for `istio.io/rev=<rev>` namespaces when no webhook configuration
    /// is stored.
    pub revisions: Vec<String>,
    /// Inject istio-proxy as a native sidecar (an init container with `restartPolicy: Always`).
    pub native_sidecars: bool,
}

impl Default for InjectorState {
    fn default() -> Self {
        InjectorState {
            up: true,
            hub: crate::seed::ASM_HUB.into(),
            version: crate::seed::ASM_VERSION.into(),
            revisions: vec![],
            native_sidecars: false,
        }
    }
}

/// The injector's configuration (its ConfigMap, or the defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct InjectorConfig {
    pub policy: String,
    pub never_inject: Vec<Value>,
    pub always_inject: Vec<Value>,
    pub template: String,
    pub proxy_image: String,
    pub init_image: String,
    pub tag: String,
}

impl InjectorConfig {
    fn defaults(st: &InjectorState) -> Self {
        InjectorConfig {
            policy: "enabled".into(),
            never_inject: vec![],
            always_inject: vec![],
            template: String::new(),
            proxy_image: format!("{}/proxyv2:{}", st.hub, st.version),
            init_image: format!("{}/proxyv2:{}", st.hub, st.version),
            tag: st.version.clone(),
        }
    }

    /// From the ConfigMap's `config` (YAML) and `values` (JSON).
    pub fn from_configmap(cm: &Value, st: &InjectorState) -> Self {
        let mut c = Self::defaults(st);
        let config: Value =
            cm["data"]["config"].as_str().and_then(|s| serde_yaml::from_str(s).ok()).unwrap_or(Value::Null);
        if let Some(p) = config["policy"].as_str() {
            c.policy = p.to_string();
        }
        let selectors = |k: &str| config[k].as_array().cloned().unwrap_or_default();
        c.never_inject = selectors("neverInjectSelector");
        c.always_inject = selectors("alwaysInjectSelector");
        c.template = config["template"].as_str().unwrap_or_default().to_string();
        let values: Value =
            cm["data"]["values"].as_str().and_then(|s| serde_json::from_str(s).ok()).unwrap_or(Value::Null);
        let g = &values["global"];
        let hub = g["hub"].as_str().unwrap_or(&st.hub);
        let tag = g["tag"].as_str().unwrap_or(&st.version);
        let image = |name: &str| {
            if name.contains('/') { name.to_string() } else { format!("{hub}/{name}:{tag}") }
        };
        c.proxy_image = image(g["proxy"]["image"].as_str().unwrap_or("proxyv2"));
        c.init_image = image(g["proxy_init"]["image"].as_str().unwrap_or("proxyv2"));
        c.tag = tag.to_string();
        c
    }
}

/// Istio's `injectRequired` for a pod the webhook received.
pub fn inject_required(pod: &Value, namespace: &str, config: &InjectorConfig) -> bool {
    if pod["spec"]["hostNetwork"] == true || matches!(namespace, "kube-system" | "kube-public") {
        return false;
    }
    let meta = &pod["metadata"];
    let says =
        meta["labels"]["sidecar.istio.io/inject"].as_str().or(meta["annotations"]["sidecar.istio.io/inject"].as_str());
    let labels = &meta["labels"];
    let decided = match says.map(str::to_lowercase).as_deref() {
        Some("y" | "yes" | "true" | "on") => Some(true),
        Some("") | None => None,
        Some(_) => Some(false),
    };
    let matches = |sels: &[Value]| sels.iter().any(|s| !util::selector_is_empty(s) && selector_matches(s, labels));
    let decided = decided
        .or_else(|| matches(&config.never_inject).then_some(false))
        .or_else(|| matches(&config.always_inject).then_some(true));
    match (config.policy.as_str(), decided) {
        ("enabled", None) => true,
        ("enabled" | "disabled", Some(d)) => d,
        _ => false,
    }
}

/// Istio's decision with the default webhook (no webhook configuration stored): the namespace
/// must enable injection (`istio-injection=enabled`, or `istio.io/rev=<served revision>`
/// without `istio-injection`), then [`inject_required`] with the default config.
pub fn should_inject(ns_labels: &Value, pod: &Value, injector: &InjectorState) -> bool {
    let reached = match (ns_labels["istio-injection"].as_str(), ns_labels["istio.io/rev"].as_str()) {
        (Some("enabled"), _) => true,
        (Some(_), _) => false,
        (None, Some(rev)) => injector.revisions.iter().any(|r| r == rev),
        (None, None) => false,
    };
    reached && inject_required(pod, "", &InjectorConfig::defaults(injector))
}

/// A 64-hex-digit digest of the template (what the status annotation's `version` holds).
fn template_digest(template: &str) -> String {
    (0..8u8)
        .map(|i| {
            let mut b = template.as_bytes().to_vec();
            b.push(i);
            format!("{:08x}", util::fnv32a(&b))
        })
        .collect()
}

/// Adds the sidecar (once).
pub fn inject(pod: &mut Value, config: &InjectorConfig, native: bool, revision: Option<&str>) {
    let has = |list: &Value, name: &str| list.as_array().is_some_and(|a| a.iter().any(|c| c["name"] == name));
    if has(&pod["spec"]["containers"], "istio-proxy") || has(&pod["spec"]["initContainers"], "istio-proxy") {
        return;
    }
    if !pod["spec"].is_object() {
        pod["spec"] = json!({});
    }
    let sa = pod["spec"]["serviceAccountName"].as_str().unwrap_or("default").to_string();
    let init = json!({"name": "istio-init", "image": config.init_image, "imagePullPolicy": "IfNotPresent",
        "args": ["-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15020"],
        "resources": {"limits": {"cpu": "100m", "memory": "50Mi"}, "requests": {"cpu": "10m", "memory": "10Mi"}},
        "securityContext": {"runAsUser": 0, "runAsNonRoot": false, "capabilities": {"add": ["NET_ADMIN"]}}});
    let mut proxy = json!({"name": "istio-proxy", "image": config.proxy_image, "imagePullPolicy": "IfNotPresent",
        "args": ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local", "--configPath", "/etc/istio/proxy",
            "--binaryPath", "/usr/local/bin/envoy", "--serviceCluster", "$(POD_NAME).$(POD_NAMESPACE)",
            "--discoveryAddress", "istio-pilot.istio-system:15010", "--proxyLogLevel=warning"],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "INSTANCE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "ISTIO_META_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15020}, "initialDelaySeconds": 1, "periodSeconds": 2, "failureThreshold": 30},
        "resources": {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
        "securityContext": {"runAsUser": 1337, "runAsGroup": 1337, "readOnlyRootFilesystem": true},
        "volumeMounts": [{"name": "istio-envoy", "mountPath": "/etc/istio/proxy"}, {"name": "istio-certs", "mountPath": "/etc/certs/", "readOnly": true}]});
    let mut inits = pod["spec"]["initContainers"].as_array().cloned().unwrap_or_default();
    if !has(&pod["spec"]["initContainers"], "istio-init") {
        inits.push(init);
    }
    let (init_names, container_names) = if native {
        proxy["restartPolicy"] = json!("Always");
        inits.push(proxy);
        (json!(["istio-init", "istio-proxy"]), Value::Null)
    } else {
        let mut cs = pod["spec"]["containers"].as_array().cloned().unwrap_or_default();
        cs.push(proxy);
        pod["spec"]["containers"] = Value::Array(cs);
        (json!(["istio-init"]), json!(["istio-proxy"]))
    };
    pod["spec"]["initContainers"] = Value::Array(inits);
    let mut volumes = pod["spec"]["volumes"].as_array().cloned().unwrap_or_default();
    volumes.push(json!({"name": "istio-envoy", "emptyDir": {"medium": "Memory"}}));
    volumes.push(json!({"name": "istio-certs", "secret": {"secretName": format!("istio.{sa}"), "optional": true}}));
    pod["spec"]["volumes"] = Value::Array(volumes);
    let mut status = json!({"version": template_digest(&config.template), "initContainers": init_names, "containers": container_names,
        "volumes": ["istio-envoy", "istio-certs"], "imagePullSecrets": null});
    if let Some(rev) = revision {
        status["revision"] = json!(rev);
    }
    if !pod["metadata"]["annotations"].is_object() {
        pod["metadata"]["annotations"] = json!({});
    }
    pod["metadata"]["annotations"]["sidecar.istio.io/status"] = json!(status.to_string());
    if !pod["metadata"]["labels"].is_object() {
        pod["metadata"]["labels"] = json!({});
    }
    pod["metadata"]["labels"]["security.istio.io/tlsMode"] = json!("istio");
}

/// A webhook that would receive the pod: (webhook name, service namespace, service name,
/// failure policy, revision).
struct Reached {
    webhook: String,
    svc_ns: String,
    svc_name: String,
    port: i64,
    path: String,
    fail: bool,
    revision: Option<String>,
}

fn reached_webhooks(store: &Store, ns_labels: &Value, pod: &Value) -> Option<Vec<Reached>> {
    let ti = store.type_index("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations")?;
    let mut injector_configs = 0;
    let mut out = Vec::new();
    for (_, s) in store.iter(ti, None, None) {
        let cfg = &*s.value;
        let cfg_name = util::name(cfg);
        for wh in cfg["webhooks"].as_array().into_iter().flatten() {
            let svc = &wh["clientConfig"]["service"];
            if svc["namespace"] != ISTIO_NAMESPACE {
                continue;
            }
            injector_configs += 1;
            let ns_ok = match &wh["namespaceSelector"] {
                Value::Null => true,
                sel => selector_matches(sel, ns_labels),
            };
            let obj_ok = match &wh["objectSelector"] {
                Value::Null => true,
                sel => selector_matches(sel, &pod["metadata"]["labels"]),
            };
            if !(ns_ok && obj_ok) {
                continue;
            }
            let revision = cfg_name.strip_prefix("istio-sidecar-injector-").map(str::to_string).or_else(|| {
                ns_labels["istio.io/rev"]
                    .as_str()
                    .filter(|_| ns_labels["istio-injection"].is_null())
                    .map(str::to_string)
            });
            out.push(Reached {
                webhook: wh["name"].as_str().unwrap_or("sidecar-injector.istio.io").to_string(),
                svc_ns: ISTIO_NAMESPACE.into(),
                svc_name: svc["name"].as_str().unwrap_or(CONFIGMAP).to_string(),
                port: svc["port"].as_i64().unwrap_or(443),
                path: svc["path"].as_str().unwrap_or("/inject").to_string(),
                fail: wh["failurePolicy"].as_str().is_none_or(|p| p == "Fail"),
                revision,
            });
        }
    }
    (injector_configs > 0).then_some(out)
}

/// Why the webhook's Service cannot answer (None: a ready endpoint exists).
fn backend_down(store: &Store, ns: &str, name: &str) -> Option<String> {
    let svc_ti = store.type_index("", "v1", "services")?;
    let Some(svc) = store.get(svc_ti, ns, name) else { return Some(format!("service \"{name}\" not found")) };
    let selector = &svc.value["spec"]["selector"];
    let pod_ti = store.type_index("", "v1", "pods")?;
    let ready = selector.as_object().is_some_and(|sel| !sel.is_empty())
        && store.iter(pod_ti, Some(ns), None).any(|(_, p)| {
            let sel = selector.as_object().into_iter().flatten();
            let mut matches = true;
            for (k, v) in sel {
                if p.index.label(k) != v.as_str() {
                    matches = false;
                    break;
                }
            }
            matches && !p.index.deleting && util::pod_ready(&p.value)
        });
    if ready { None } else { Some(format!("no endpoints available for service \"{name}\"")) }
}

/// The admission hook.
pub fn hook(state: Arc<Mutex<InjectorState>>) -> Admission {
    let cache: Mutex<Vec<(String, String, InjectorConfig)>> = Mutex::new(Vec::new());
    Arc::new(move |store: &Store, rt, ns, pod| {
        if rt.kind != "Pod" || !rt.group.is_empty() {
            return Ok(());
        }
        let st = lock(&state).clone();
        let Some(nti) = store.type_index("", "v1", "namespaces") else { return Ok(()) };
        let Some(nsobj) = store.get(nti, "", ns) else { return Ok(()) };
        let ns_labels = nsobj.value["metadata"]["labels"].clone();
        let revision = match reached_webhooks(store, &ns_labels, pod) {
            None => {
                if !st.up || !should_inject(&ns_labels, pod, &st) {
                    return Ok(());
                }
                ns_labels["istio.io/rev"]
                    .as_str()
                    .filter(|_| ns_labels["istio-injection"].is_null())
                    .map(str::to_string)
            }
            Some(reached) => {
                let Some(wh) = reached.into_iter().next() else { return Ok(()) };
                if !st.up {
                    return Ok(());
                }
                if let Some(why) = backend_down(store, &wh.svc_ns, &wh.svc_name) {
                    if !wh.fail {
                        return Ok(());
                    }
                    return Err(ApiError::new(
                        500,
                        "InternalError",
                        format!(
                            "Internal error occurred: failed calling webhook \"{}\": failed to call webhook: Post \"https://{}.{}.svc:{}{}?timeout=10s\": {why}",
                            wh.webhook, wh.svc_name, wh.svc_ns, wh.port, wh.path
                        ),
                    ));
                }
                wh.revision
            }
        };
        // The injector's configuration, cached by the ConfigMap's resourceVersion.
        let config = {
            let cm_ti = store.type_index("", "v1", "configmaps");
            let cm = cm_ti.and_then(|t| {
                revision
                    .as_ref()
                    .and_then(|r| store.get(t, ISTIO_NAMESPACE, &format!("{CONFIGMAP}-{r}")))
                    .or_else(|| store.get(t, ISTIO_NAMESPACE, CONFIGMAP))
            });
            match cm {
                None => InjectorConfig::defaults(&st),
                Some(cm) => {
                    let name = util::name(&cm.value).to_string();
                    let rv = cm.value["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string();
                    let mut cache = lock(&cache);
                    match cache.iter().find(|(n, r, _)| *n == name && *r == rv) {
                        Some((_, _, c)) => c.clone(),
                        None => {
                            let c = InjectorConfig::from_configmap(&cm.value, &st);
                            cache.retain(|(n, _, _)| *n != name);
                            cache.push((name, rv, c.clone()));
                            c
                        }
                    }
                }
            }
        };
        if inject_required(pod, ns, &config) {
            inject(pod, &config, st.native_sidecars, revision.as_deref());
        }
        Ok(())
    })
}

/// Sets `global.tag` in the injector ConfigMap's `values` (an upgrade), when it exists.
pub fn write_tag(c: &Cluster, version: &str) {
    let Some(cm) = c.get("v1", "configmaps", ISTIO_NAMESPACE, CONFIGMAP) else { return };
    let mut values: Value =
        cm["data"]["values"].as_str().and_then(|s| serde_json::from_str(s).ok()).unwrap_or_else(|| json!({}));
    if !values.is_object() {
        values = json!({});
    }
    values["global"]["tag"] = json!(version);
    let _ = c.patch(
        "v1",
        "configmaps",
        ISTIO_NAMESPACE,
        CONFIGMAP,
        PatchType::Merge,
        &json!({"data": {"values": values.to_string()}}),
        "istioctl",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(labels: Value, annotations: Value, host: bool) -> Value {
        json!({"metadata": {"labels": labels, "annotations": annotations}, "spec": {"hostNetwork": host}})
    }

    #[test]
    fn the_default_webhook_follows_istio_precedence() {
        let st = InjectorState { revisions: vec!["asm-1".into()], ..Default::default() };
        let p = |labels: Value, host: bool| pod(labels, json!({}), host);
        let cases = [
            (json!({"istio-injection": "enabled"}), p(json!({}), false), true),
            (json!({"istio-injection": "disabled"}), p(json!({"sidecar.istio.io/inject": "true"}), false), false),
            (json!({"istio-injection": "enabled"}), p(json!({"sidecar.istio.io/inject": "false"}), false), false),
            (json!({"istio-injection": "enabled"}), p(json!({}), true), false),
            (json!({"istio.io/rev": "asm-1"}), p(json!({}), false), true),
            (json!({"istio.io/rev": "asm-2"}), p(json!({}), false), false),
            (json!({"istio-injection": "enabled", "istio.io/rev": "asm-2"}), p(json!({}), false), true),
            (json!({}), p(json!({}), false), false),
            (json!(null), p(json!({"sidecar.istio.io/inject": "true"}), false), false),
        ];
        for (i, (ns, p, want)) in cases.into_iter().enumerate() {
            assert_eq!(should_inject(&ns, &p, &st), want, "case {i}");
        }
    }

    #[test]
    fn inject_required_annotation_then_never_then_always_then_policy() {
        let cfg = |policy: &str| InjectorConfig {
            policy: policy.into(),
            never_inject: vec![json!({"matchLabels": {"batch": "true"}})],
            always_inject: vec![json!({"matchExpressions": [{"key": "mesh", "operator": "Exists"}]})],
            ..InjectorConfig::defaults(&InjectorState::default())
        };
        let cases = [
            // (policy, labels, annotations, expected)
            ("enabled", json!({}), json!({}), true),
            ("disabled", json!({}), json!({}), false),
            ("enabled", json!({}), json!({"sidecar.istio.io/inject": "false"}), false),
            ("enabled", json!({}), json!({"sidecar.istio.io/inject": "no"}), false),
            ("disabled", json!({}), json!({"sidecar.istio.io/inject": "yes"}), true),
            ("disabled", json!({}), json!({"sidecar.istio.io/inject": "On"}), true),
            ("enabled", json!({"batch": "true"}), json!({}), false),
            ("enabled", json!({"batch": "true"}), json!({"sidecar.istio.io/inject": "true"}), true),
            ("disabled", json!({"mesh": "x"}), json!({}), true),
            ("enabled", json!({"batch": "true", "mesh": "x"}), json!({}), false),
            ("bogus", json!({}), json!({}), false),
            ("bogus", json!({}), json!({"sidecar.istio.io/inject": "true"}), false),
        ];
        for (i, (policy, labels, anns, want)) in cases.into_iter().enumerate() {
            assert_eq!(inject_required(&pod(labels, anns, false), "apps", &cfg(policy)), want, "case {i}");
        }
        let c = cfg("enabled");
        assert!(!inject_required(&pod(json!({}), json!({}), true), "apps", &c), "host network never");
        assert!(!inject_required(
            &pod(json!({}), json!({"sidecar.istio.io/inject": "true"}), false),
            "kube-system",
            &c
        ));
    }

    #[test]
    fn config_comes_from_the_configmap() {
        let cm = json!({"data": {"config": "policy: disabled\nneverInjectSelector:\n- matchLabels:\n    a: b\ntemplate: |\n  containers: []\n",
            "values": json!({"global": {"hub": "example.com/istio", "tag": "1.4.11", "proxy": {"image": "proxyv2"}}}).to_string()}});
        let c = InjectorConfig::from_configmap(&cm, &InjectorState::default());
        assert_eq!(c.policy, "disabled");
        assert_eq!(c.proxy_image, "example.com/istio/proxyv2:1.4.11");
        assert_eq!(c.never_inject, vec![json!({"matchLabels": {"a": "b"}})]);
        assert!(c.template.contains("containers"));
        let cm = json!({"data": {"values": json!({"global": {"hub": "h", "tag": "t", "proxy": {"image": "other.io/proxy:9"}}}).to_string()}});
        assert_eq!(InjectorConfig::from_configmap(&cm, &InjectorState::default()).proxy_image, "other.io/proxy:9");
    }

    #[test]
    fn injection_adds_the_sidecar_once() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}});
        let cfg = InjectorConfig::defaults(&InjectorState::default());
        inject(&mut pod, &cfg, false, None);
        inject(&mut pod, &cfg, false, None);
        assert_eq!(pod["spec"]["containers"].as_array().unwrap().len(), 2);
        assert_eq!(pod["spec"]["containers"][1]["image"], "gcr.io/gke-release/asm/proxyv2:1.4.10-asm.18");
        assert_eq!(pod["spec"]["initContainers"][0]["name"], "istio-init");
        let status: Value =
            serde_json::from_str(pod["metadata"]["annotations"]["sidecar.istio.io/status"].as_str().unwrap()).unwrap();
        assert_eq!(status["containers"], json!(["istio-proxy"]));
        assert_eq!(status["version"].as_str().unwrap().len(), 64);
        let mut native = json!({"metadata": {}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}});
        inject(&mut native, &cfg, true, Some("asm-1"));
        assert_eq!(native["spec"]["containers"].as_array().unwrap().len(), 1);
        assert_eq!(native["spec"]["initContainers"][1]["name"], "istio-proxy");
        assert_eq!(native["spec"]["initContainers"][1]["restartPolicy"], "Always");
        assert!(native["metadata"]["annotations"]["sidecar.istio.io/status"].as_str().unwrap().contains("asm-1"));
    }
}
