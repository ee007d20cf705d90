//! Trimmed MutatingWebhookConfigurations: per webhook, its selectors, service, CA bundle and
//! failure policy (what the injection cross-check and the control-plane check read).

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Serialize;

use super::Cached;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookConfigInfo {
    pub name: String,
    pub uid: Option<String>,
    pub webhooks: Vec<WebhookInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookInfo {
    pub name: String,
    /// None: every namespace.
    pub namespace_selector: Option<Selector>,
    pub object_selector: Option<Selector>,
    /// (namespace, name, path) of the backing Service; None for a URL webhook.
    pub service: Option<(String, String, Option<String>)>,
    /// `clientConfig.url` (managed or remote control planes): no Service to check.
    pub url: Option<String>,
    pub ca_bundle: Option<Vec<u8>>,
    pub failure_policy: Option<String>,
}

/// A Kubernetes label selector (matchLabels AND matchExpressions), evaluable on label maps.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Selector {
    pub match_labels: BTreeMap<String, String>,
    /// (key, operator, values)
    pub match_expressions: Vec<(String, String, Vec<String>)>,
}

impl Selector {
    pub fn from_k8s(s: &LabelSelector) -> Self {
        Selector {
            match_labels: s.match_labels.clone().unwrap_or_default(),
            match_expressions: s
                .match_expressions
                .iter()
                .flatten()
                .map(|e| (e.key.clone(), e.operator.clone(), e.values.clone().unwrap_or_default()))
                .collect(),
        }
    }

    /// Whether `labels` match, as the API server evaluates it. An unknown operator matches
    /// nothing (the API server would have rejected the object).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_with(|k| labels.get(k).map(String::as_str))
    }

    /// As [`Selector::matches`], over any label lookup (e.g. a cached pod's interned labels).
    pub fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.match_labels.iter().all(|(k, v)| get(k) == Some(v.as_str()))
            && self.match_expressions.iter().all(|(k, op, vals)| match op.as_str() {
                "In" => get(k).is_some_and(|v| vals.iter().any(|x| x == v)),
                "NotIn" => get(k).is_none_or(|v| vals.iter().all(|x| x != v)),
                "Exists" => get(k).is_some(),
                "DoesNotExist" => get(k).is_none(),
                _ => false,
            })
    }

    /// The empty selector matches everything.
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }
}

impl Cached for WebhookConfigInfo {
    fn key(&self) -> String {
        self.name.clone()
    }
}

impl WebhookConfigInfo {
    pub fn from_object(m: MutatingWebhookConfiguration) -> Option<Self> {
        let name = m.metadata.name?;
        let webhooks = m
            .webhooks
            .unwrap_or_default()
            .into_iter()
            .map(|w| WebhookInfo {
                name: w.name,
                namespace_selector: w.namespace_selector.as_ref().map(Selector::from_k8s),
                object_selector: w.object_selector.as_ref().map(Selector::from_k8s),
                service: w.client_config.service.map(|s| (s.namespace, s.name, s.path)),
                url: w.client_config.url,
                ca_bundle: w.client_config.ca_bundle.map(|b| b.0),
                failure_policy: w.failure_policy,
            })
            .collect();
        Some(WebhookConfigInfo { name, uid: m.metadata.uid, webhooks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn selectors_evaluate_like_the_api_server() {
        let istio_14 = Selector { match_labels: labels(&[("istio-injection", "enabled")]), ..Default::default() };
        assert!(istio_14.matches(&labels(&[("istio-injection", "enabled")])));
        assert!(!istio_14.matches(&labels(&[("istio.io/rev", "asm-1")])));
        let rev = Selector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![
                ("istio.io/rev".into(), "In".into(), vec!["asm-1".into()]),
                ("istio-injection".into(), "DoesNotExist".into(), vec![]),
            ],
        };
        assert!(rev.matches(&labels(&[("istio.io/rev", "asm-1")])));
        assert!(!rev.matches(&labels(&[("istio.io/rev", "asm-1"), ("istio-injection", "enabled")])));
        let weird = Selector { match_expressions: vec![("a".into(), "Bogus".into(), vec![])], ..Default::default() };
        assert!(!weird.matches(&labels(&[("a", "b")])));
        assert!(Selector::default().matches(&BTreeMap::new()));
    }
}
