//! The sidecar injector's ConfigMap (`istio-sidecar-injector`, or `-<rev>` for a revision):
//! which proxy image it injects and how it decides, as Istio 1.4 and later define it.
//!
//! - `values` (JSON of the Helm values): the image is `{global.hub}/{global.proxy.image}:{global.tag}`
//!   (an image with a `/` is used as is); `sidecarInjectorWebhook.enableNamespacesByDefault`.
//! - `config` (YAML): `policy: enabled|disabled`, `neverInjectSelector`, `alwaysInjectSelector`
//!   (lists of label selectors, OR'd).

use serde::Serialize;
use serde_json::Value;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::{Cached, Selector};

/// What the injector's ConfigMap says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InjectorConfig {
    pub name: String,
    /// The proxy image it injects, e.g. `gcr.io/gke-release/asm/proxyv2:1.4.10-asm.18`.
    pub proxy_image: Option<String>,
    /// `policy: enabled` (default) injects every pod the webhook sees unless it opts out.
    pub policy_enabled: bool,
    pub never_inject: Vec<Selector>,
    pub always_inject: Vec<Selector>,
    /// `enableNamespacesByDefault` (Istio 1.6+).
    pub namespaces_by_default: bool,
    /// The last write to the ConfigMap (managedFields), unix seconds: an upgrade after a
    /// failed re-injection allows another try.
    pub changed_at: i64,
    /// What could not be read, if anything.
    pub problems: Vec<String>,
}

impl Cached for InjectorConfig {
    fn key(&self) -> String {
        self.name.clone()
    }
}

fn selectors(v: &serde_yaml::Value, key: &str, problems: &mut Vec<String>) -> Vec<Selector> {
    let Some(list) = v.get(key) else { return vec![] };
    match serde_yaml::from_value::<Vec<LabelSelector>>(list.clone()) {
        Ok(s) => s.iter().map(Selector::from_k8s).collect(),
        Err(e) => {
            problems.push(format!("config.{key} is not a list of label selectors: {e}"));
            vec![]
        }
    }
}

/// The image the `values` JSON names.
pub fn image_of(values: &Value) -> Option<String> {
    let g = &values["global"];
    let image = g["proxy"]["image"].as_str().unwrap_or("proxyv2");
    let tag = g["tag"].as_str().map(str::to_string).or_else(|| g["tag"].as_f64().map(|t| t.to_string()))?;
    if image.contains('/') {
        // Its own tag or digest wins; a ':' before the last '/' is a registry's port, not a tag.
        let pinned = super::image_tag(image).is_some() || image.contains('@');
        return Some(if pinned { image.to_string() } else { format!("{image}:{tag}") });
    }
    let hub = g["hub"].as_str()?;
    Some(format!("{}/{image}:{tag}", hub.trim_end_matches('/')))
}

impl InjectorConfig {
    pub fn from_object(cm: ConfigMap) -> Option<Self> {
        let name = cm.metadata.name?;
        let changed_at = cm
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .filter_map(|m| m.time.as_ref().map(|t| t.0.as_second()))
            .max()
            .or_else(|| cm.metadata.creation_timestamp.as_ref().map(|t| t.0.as_second()))
            .unwrap_or(0);
        let data = cm.data.unwrap_or_default();
        let mut problems = Vec::new();
        let values: Value = match data.get("values") {
            Some(v) => serde_json::from_str(v).unwrap_or_else(|e| {
                problems.push(format!("values is not JSON: {e}"));
                Value::Null
            }),
            None => Value::Null,
        };
        let config: serde_yaml::Value = match data.get("config") {
            Some(c) => serde_yaml::from_str(c).unwrap_or_else(|e| {
                problems.push(format!("config is not YAML: {e}"));
                serde_yaml::Value::Null
            }),
            None => {
                problems.push("no config key".into());
                serde_yaml::Value::Null
            }
        };
        let proxy_image = image_of(&values);
        if proxy_image.is_none() && problems.is_empty() {
            problems.push("values names no global.hub/global.tag: the proxy version is unknown".into());
        }
        let policy_enabled = config.get("policy").and_then(|p| p.as_str()).is_none_or(|p| p != "disabled");
        Some(InjectorConfig {
            name,
            proxy_image,
            policy_enabled,
            never_inject: selectors(&config, "neverInjectSelector", &mut problems),
            always_inject: selectors(&config, "alwaysInjectSelector", &mut problems),
            namespaces_by_default: values["sidecarInjectorWebhook"]["enableNamespacesByDefault"]
                .as_bool()
                .unwrap_or(false),
            changed_at,
            problems,
        })
    }
}

/// The tag of an image reference, without digest (`.../proxyv2:1.4.10-asm.18@sha256:..` -> `1.4.10-asm.18`).
pub fn proxy_version(image: &str) -> &str {
    super::image_tag(image).unwrap_or("unknown")
}

/// An image reference without its digest, for comparing what runs with what is expected.
pub fn without_digest(image: &str) -> &str {
    image.split('@').next().unwrap_or(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(values: &str, config: &str) -> ConfigMap {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "istio-sidecar-injector", "namespace": "istio-system",
                "managedFields": [{"manager": "istioctl", "operation": "Apply", "time": "2026-11-20T10:00:00Z"}]},
            "data": {"values": values, "config": config}
        }))
        .unwrap()
    }

    #[test]
    fn reads_the_1_4_injector_config() {
        let c = InjectorConfig::from_object(cm(
            r#"{"global": {"hub": "gcr.io/gke-release/asm", "tag": "1.4.10-asm.18", "proxy": {"image": "proxyv2"}}}"#,
            "policy: enabled\nneverInjectSelector:\n  - matchExpressions:\n    - {key: openshift.io/build.name, operator: Exists}\nalwaysInjectSelector:\n  - matchLabels: {inject: always}\ntemplate: |\n  containers: []\n",
        ))
        .unwrap();
        assert_eq!(c.proxy_image.as_deref(), Some("gcr.io/gke-release/asm/proxyv2:1.4.10-asm.18"));
        assert!(c.policy_enabled && c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.never_inject.len(), 1);
        assert_eq!(c.always_inject[0].match_labels["inject"], "always");
        assert_eq!(c.changed_at, 1_795_168_800);
        assert!(!c.namespaces_by_default);
    }

    #[test]
    fn a_whole_image_gets_the_tag_even_from_a_registry_with_a_port() {
        let values = |image: &str| serde_json::json!({"global": {"tag": "1.20.1", "proxy": {"image": image}}});
        let v = values("registry.local:5000/istio/proxyv2");
        assert_eq!(image_of(&v).as_deref(), Some("registry.local:5000/istio/proxyv2:1.20.1"), "the port is no tag");
        let v = values("registry.local:5000/istio/proxyv2:1.19.0");
        assert_eq!(image_of(&v).as_deref(), Some("registry.local:5000/istio/proxyv2:1.19.0"), "its own tag wins");
        let digest = "docker.io/istio/proxyv2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(image_of(&values(digest)).as_deref(), Some(digest), "a digest pins it");
    }

    #[test]
    fn odd_configs_are_reported_not_fatal() {
        let c = InjectorConfig::from_object(cm("not json", "policy: disabled\n")).unwrap();
        assert!(!c.policy_enabled);
        assert_eq!(c.proxy_image, None);
        assert!(c.problems[0].starts_with("values is not JSON"), "{:?}", c.problems);
        let c = InjectorConfig::from_object(cm(
            r#"{"global": {"proxy": {"image": "docker.io/istio/proxyv2"}, "tag": 1.5}}"#,
            "neverInjectSelector: 3\n",
        ))
        .unwrap();
        assert_eq!(c.proxy_image.as_deref(), Some("docker.io/istio/proxyv2:1.5"), "an image with a / ignores the hub");
        assert!(c.problems.iter().any(|p| p.contains("neverInjectSelector")));
        assert_eq!(proxy_version("x/proxyv2:1.20.1@sha256:abc"), "1.20.1");
        assert_eq!(without_digest("x/proxyv2:1.20.1@sha256:abc"), "x/proxyv2:1.20.1");
    }
}
