//! Per pod: should it have a sidecar, does it, and is the proxy the one the injector injects
//! now? Istio's own precedence (1.4 and later), as a pure function.
//!
//! | # | condition (first match wins) | state |
//! |---|---|---|
//! | 1 | terminating, or Succeeded/Failed | `ignored` |
//! | 1b | pod label or annotation `sidecar.istio.io/inject` set to anything but `y`/`yes`/`true`/`on` | `opted_out` |
//! | 2 | the injector webhook would not see it: no webhook's `namespaceSelector` matches its namespace (and `objectSelector` the pod); without the webhook in the cache: namespace `istio-injection=enabled`, or `istio.io/rev=<our revision>` without `istio-injection`, or (Istio 1.6+) `enableNamespacesByDefault` | `not_in_scope` |
//! | 3 | `hostNetwork: true` | `host_network` (never injected) |
//! | 4 | pod label or annotation `sidecar.istio.io/inject`: `y`/`yes`/`true`/`on` wants it, any other value opts out | wanted / `opted_out` |
//! | 5 | the injector's `neverInjectSelector` matches | `opted_out` |
//! | 6 | its `alwaysInjectSelector` matches | wanted |
//! | 7 | `policy: enabled` (default) wants it; `disabled` does not | wanted / `opted_out` |
//! | 8 | wanted, `istio-proxy` runs (a container, or a native sidecar: an init container with `restartPolicy: Always`), its image is the expected one (or none is known) | `injected` |
//! | 9 | wanted, `istio-proxy` runs another image | `stale` |
//! | 10 | wanted, no `istio-proxy` | `missing` |

use serde::Serialize;

use crate::cache::injector::{proxy_version, without_digest};
use crate::cache::{InjectorConfig, NamespaceInfo, PodInfo, WebhookConfigInfo};

/// Where a pod stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PodState {
    Injected,
    Stale,
    Missing,
    OptedOut,
    NotInScope,
    HostNetwork,
    Ignored,
}

impl PodState {
    pub const ALL: [PodState; 7] = [
        PodState::Injected,
        PodState::Stale,
        PodState::Missing,
        PodState::OptedOut,
        PodState::NotInScope,
        PodState::HostNetwork,
        PodState::Ignored,
    ];

    /// The `state` label of `meshkeeper_pods`.
    pub fn as_str(self) -> &'static str {
        match self {
            PodState::Injected => "injected",
            PodState::Stale => "stale",
            PodState::Missing => "missing",
            PodState::OptedOut => "opted_out",
            PodState::NotInScope => "not_in_scope",
            PodState::HostNetwork => "host_network",
            PodState::Ignored => "ignored",
        }
    }

    /// Should have the current sidecar: counts towards coverage.
    pub fn wanted(self) -> bool {
        matches!(self, PodState::Injected | PodState::Stale | PodState::Missing)
    }

    /// A restart would fix it.
    pub fn needs_restart(self) -> bool {
        matches!(self, PodState::Stale | PodState::Missing)
    }
}

/// The proxy the injector injects now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Expected {
    /// Unknown: no setting and no readable injector config; stale proxies cannot be told.
    Unknown,
    /// A whole image reference (compared without digest).
    Image(String),
    /// A tag only (compared with the running image's tag).
    Tag(String),
}

impl Expected {
    /// From `reinjection.expected_proxy_version` (a tag, or an image when it has `/` or `:`),
    /// else the injector's ConfigMap.
    pub fn from(setting: &str, injector: Option<&InjectorConfig>) -> Expected {
        if !setting.is_empty() {
            return if setting.contains('/') || setting.contains(':') {
                Expected::Image(setting.to_string())
            } else {
                Expected::Tag(setting.to_string())
            };
        }
        match injector.and_then(|i| i.proxy_image.clone()) {
            Some(image) => Expected::Image(image),
            None => Expected::Unknown,
        }
    }

    /// The version, as `meshkeeper_proxy_versions` labels it.
    pub fn version(&self) -> Option<&str> {
        match self {
            Expected::Unknown => None,
            Expected::Image(i) => Some(proxy_version(i)),
            Expected::Tag(t) => Some(t),
        }
    }

    fn current(&self, image: Option<&str>) -> bool {
        match (self, image) {
            (Expected::Unknown, _) | (_, None) => true,
            (Expected::Image(want), Some(have)) => without_digest(want) == without_digest(have),
            (Expected::Tag(want), Some(have)) => proxy_version(have) == want,
        }
    }
}

/// What decides injection in this cluster.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The injector's MutatingWebhookConfiguration, if cached.
    pub webhook: Option<&'a WebhookConfigInfo>,
    pub injector: Option<&'a InjectorConfig>,
    /// The revision of an `istio.io/rev=<rev>` policy.
    pub revision: Option<&'a str>,
    pub expected: &'a Expected,
}

/// A pod's state and the rule that decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classified {
    pub state: PodState,
    pub why: &'static str,
}

fn c(state: PodState, why: &'static str) -> Classified {
    Classified { state, why }
}

/// Whether the injector webhook receives this pod's creation.
fn sent_to_injector(
    pod: &PodInfo,
    ns: Option<&NamespaceInfo>,
    ctx: &Context<'_>,
) -> Result<&'static str, &'static str> {
    let ns_label = |k: &str| ns.and_then(|n| n.label(k));
    if let Some(config) = ctx.webhook.filter(|c| !c.webhooks.is_empty()) {
        let selected = config.webhooks.iter().any(|w| {
            w.namespace_selector.as_ref().is_none_or(|s| s.matches_with(ns_label))
                && w.object_selector.as_ref().is_none_or(|s| s.matches_with(|k| pod.label(k)))
        });
        return if selected {
            Ok("the injector webhook selects its namespace")
        } else {
            Err("the injector webhook's namespaceSelector/objectSelector do not select it")
        };
    }
    match (ns_label("istio-injection"), ns_label("istio.io/rev"), pod.label("istio.io/rev")) {
        (Some("enabled"), _, _) => Ok("namespace istio-injection=enabled"),
        (Some(_), _, _) => Err("namespace istio-injection is not enabled"),
        (None, Some(rev), _) | (None, None, Some(rev)) if ctx.revision == Some(rev) => {
            Ok("istio.io/rev selects this revision")
        }
        (None, Some(_), _) | (None, None, Some(_)) => Err("istio.io/rev selects another revision"),
        (None, None, None) if ctx.injector.is_some_and(|i| i.namespaces_by_default) => Ok("enableNamespacesByDefault"),
        (None, None, None) => Err("namespace has no injection label"),
    }
}

/// Istio reads `sidecar.istio.io/inject` as a YAML boolean.
fn is_yes(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "y" | "yes" | "true" | "on")
}

/// The injector's decision for a pod it receives (Istio 1.4 `injectRequired`).
fn injector_wants(pod: &PodInfo, injector: Option<&InjectorConfig>) -> Result<&'static str, &'static str> {
    match pod.inject_override() {
        Some(v) if is_yes(v) => Ok("sidecar.istio.io/inject: true"),
        Some(v) if !v.is_empty() => Err("sidecar.istio.io/inject opts it out"),
        _ => injector_default(pod, injector),
    }
}

fn injector_default(pod: &PodInfo, injector: Option<&InjectorConfig>) -> Result<&'static str, &'static str> {
    let Some(inj) = injector else { return Ok("policy: enabled (default)") };
    if inj.never_inject.iter().any(|s| s.matches_with(|k| pod.label(k))) {
        return Err("the injector's neverInjectSelector matches it");
    }
    if inj.always_inject.iter().any(|s| s.matches_with(|k| pod.label(k))) {
        return Ok("the injector's alwaysInjectSelector matches it");
    }
    if inj.policy_enabled { Ok("policy: enabled") } else { Err("policy: disabled") }
}

/// The decision table above.
pub fn classify(pod: &PodInfo, ns: Option<&NamespaceInfo>, ctx: &Context<'_>) -> Classified {
    if pod.terminating() {
        return c(PodState::Ignored, "terminating");
    }
    if pod.phase.completed() {
        return c(PodState::Ignored, "completed");
    }
    // The pod's own opt-out wins whatever selects it (Istio: "if either the namespace or the
    // pod label is disabled, the pod is not injected").
    if pod.inject_override().is_some_and(|v| !v.is_empty() && !is_yes(v)) {
        return c(PodState::OptedOut, "sidecar.istio.io/inject opts it out");
    }
    if let Err(why) = sent_to_injector(pod, ns, ctx) {
        return c(PodState::NotInScope, why);
    }
    if pod.host_network() {
        return c(PodState::HostNetwork, "hostNetwork pods are never injected");
    }
    match injector_wants(pod, ctx.injector) {
        Err(why) => c(PodState::OptedOut, why),
        Ok(why) if !pod.has_proxy() => c(PodState::Missing, why),
        Ok(_) if !ctx.expected.current(pod.proxy_image.as_deref()) => c(PodState::Stale, "runs another proxy image"),
        Ok(why) => c(PodState::Injected, why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{Phase, Selector, WebhookInfo};
    use std::collections::BTreeMap;

    const CURRENT: &str = "gcr.io/gke-release/asm/proxyv2:1.4.10-asm.18";
    const OLD: &str = "gcr.io/gke-release/asm/proxyv2:1.4.10-asm.17";

    fn ns(labels: &[(&str, &str)]) -> NamespaceInfo {
        labels.iter().fold(NamespaceInfo::test("shop"), |n, (k, v)| n.labelled(k, v))
    }

    fn sel(labels: &[(&str, &str)], exprs: &[(&str, &str, &[&str])]) -> Selector {
        Selector {
            match_labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            match_expressions: exprs
                .iter()
                .map(|(k, op, vs)| (k.to_string(), op.to_string(), vs.iter().map(|v| v.to_string()).collect()))
                .collect(),
        }
    }

    /// The 1.4 injector webhook: namespaceSelector istio-injection=enabled.
    fn webhook_14() -> WebhookConfigInfo {
        wh(vec![(Some(sel(&[("istio-injection", "enabled")], &[])), None)])
    }

    /// istiod 1.6+'s three webhooks (revision "canary" served).
    fn webhook_istiod() -> WebhookConfigInfo {
        wh(vec![
            (
                Some(sel(&[], &[("istio.io/rev", "In", &["canary"]), ("istio-injection", "DoesNotExist", &[])])),
                Some(sel(&[], &[("sidecar.istio.io/inject", "NotIn", &["false"])])),
            ),
            (
                Some(sel(&[], &[("istio-injection", "In", &["enabled"])])),
                Some(sel(&[], &[("sidecar.istio.io/inject", "NotIn", &["false"])])),
            ),
            (
                Some(sel(&[], &[("istio-injection", "DoesNotExist", &[]), ("istio.io/rev", "DoesNotExist", &[])])),
                Some(sel(&[], &[("sidecar.istio.io/inject", "In", &["true"]), ("istio.io/rev", "DoesNotExist", &[])])),
            ),
        ])
    }

    fn wh(webhooks: Vec<(Option<Selector>, Option<Selector>)>) -> WebhookConfigInfo {
        WebhookConfigInfo {
            name: "istio-sidecar-injector".into(),
            uid: None,
            webhooks: webhooks
                .into_iter()
                .map(|(n, o)| WebhookInfo {
                    name: "sidecar-injector.istio.io".into(),
                    namespace_selector: n,
                    object_selector: o,
                    service: None,
                    url: None,
                    ca_bundle: None,
                    failure_policy: None,
                })
                .collect(),
        }
    }

    fn injector(policy_enabled: bool, never: Vec<Selector>, always: Vec<Selector>) -> InjectorConfig {
        InjectorConfig {
            name: "istio-sidecar-injector".into(),
            proxy_image: Some(CURRENT.into()),
            policy_enabled,
            never_inject: never,
            always_inject: always,
            namespaces_by_default: false,
            changed_at: 0,
            problems: vec![],
        }
    }

    fn pod() -> PodInfo {
        PodInfo::test("shop", "web-1").with_labels(&[("app", "web")])
    }

    #[test]
    fn decision_table() {
        use PodState::*;
        let enabled = ns(&[("istio-injection", "enabled")]);
        let disabled = ns(&[("istio-injection", "disabled")]);
        let unlabelled = ns(&[]);
        let rev = ns(&[("istio.io/rev", "canary")]);
        let other_rev = ns(&[("istio.io/rev", "stable")]);
        let both = ns(&[("istio-injection", "enabled"), ("istio.io/rev", "canary")]);
        let image = Expected::Image(CURRENT.into());
        let tag = Expected::Tag("1.4.10-asm.18".into());
        let unknown = Expected::Unknown;
        let (w14, wistiod) = (webhook_14(), webhook_istiod());
        let default_inj = injector(true, vec![], vec![]);
        let disabled_policy = injector(false, vec![], vec![]);
        let never = injector(true, vec![sel(&[("app", "web")], &[])], vec![]);
        let always = injector(false, vec![], vec![sel(&[], &[("app", "In", &["web", "api"])])]);
        let mut by_default = injector(true, vec![], vec![]);
        by_default.namespaces_by_default = true;
        type Case<'a> = (
            &'a str,
            PodInfo,
            Option<&'a NamespaceInfo>,
            Option<&'a WebhookConfigInfo>,
            Option<&'a InjectorConfig>,
            Option<&'a str>,
            &'a Expected,
            PodState,
        );
        let cases: Vec<Case> = vec![
            (
                "1.4: labelled ns, injected, current",
                pod().injected(CURRENT),
                Some(&enabled),
                Some(&w14),
                Some(&default_inj),
                None,
                &image,
                Injected,
            ),
            (
                "1.4: labelled ns, old proxy",
                pod().injected(OLD),
                Some(&enabled),
                Some(&w14),
                Some(&default_inj),
                None,
                &image,
                Stale,
            ),
            (
                "1.4: labelled ns, no sidecar",
                pod(),
                Some(&enabled),
                Some(&w14),
                Some(&default_inj),
                None,
                &image,
                Missing,
            ),
            ("1.4: unlabelled ns", pod(), Some(&unlabelled), Some(&w14), Some(&default_inj), None, &image, NotInScope),
            ("1.4: disabled ns", pod(), Some(&disabled), Some(&w14), Some(&default_inj), None, &image, NotInScope),
            (
                "1.4: unlabelled ns, pod says true: the webhook never sees it",
                pod().inject("true"),
                Some(&unlabelled),
                Some(&w14),
                Some(&default_inj),
                None,
                &image,
                NotInScope,
            ),
            (
                "pod annotation false",
                pod().inject("false"),
                Some(&enabled),
                Some(&w14),
                Some(&default_inj),
                None,
                &image,
                OptedOut,
            ),
            (
                "pod annotation 'no' is an opt-out too",
                pod().inject("no"),
                Some(&enabled),
                Some(&w14),
                Some(&default_inj),
                None,
                &image,
                OptedOut,
            ),
            (
                "pod annotation 'y' with policy disabled",
                pod().inject("y"),
                Some(&enabled),
                Some(&w14),
                Some(&disabled_policy),
                None,
                &image,
                Missing,
            ),
            ("policy disabled", pod(), Some(&enabled), Some(&w14), Some(&disabled_policy), None, &image, OptedOut),
            ("neverInjectSelector", pod(), Some(&enabled), Some(&w14), Some(&never), None, &image, OptedOut),
            (
                "neverInjectSelector loses to the pod's true",
                pod().inject("true"),
                Some(&enabled),
                Some(&w14),
                Some(&never),
                None,
                &image,
                Missing,
            ),
            (
                "alwaysInjectSelector beats policy disabled",
                pod(),
                Some(&enabled),
                Some(&w14),
                Some(&always),
                None,
                &image,
                Missing,
            ),
            (
                "hostNetwork",
                pod().set_host_network(),
                Some(&enabled),
                Some(&w14),
                Some(&default_inj),
                None,
                &image,
                HostNetwork,
            ),
            (
                "hostNetwork in an unlabelled ns",
                pod().set_host_network(),
                Some(&unlabelled),
                Some(&w14),
                Some(&default_inj),
                None,
                &image,
                NotInScope,
            ),
            (
                "terminating",
                pod().set_terminating(),
                Some(&enabled),
                Some(&w14),
                Some(&default_inj),
                None,
                &image,
                Ignored,
            ),
            (
                "completed (a Job's pod)",
                pod().phase(Phase::Succeeded),
                Some(&enabled),
                Some(&w14),
                Some(&default_inj),
                None,
                &image,
                Ignored,
            ),
            (
                "failed",
                pod().phase(Phase::Failed),
                Some(&enabled),
                Some(&w14),
                Some(&default_inj),
                None,
                &image,
                Ignored,
            ),
            (
                "native sidecar, current",
                pod().injected_native(CURRENT),
                Some(&enabled),
                Some(&w14),
                Some(&default_inj),
                None,
                &image,
                Injected,
            ),
            (
                "native sidecar, old",
                pod().injected_native(OLD),
                Some(&enabled),
                Some(&w14),
                Some(&default_inj),
                None,
                &image,
                Stale,
            ),
            (
                "expected by tag",
                pod().injected("mirror.local:5000/istio/proxyv2:1.4.10-asm.18"),
                Some(&enabled),
                Some(&w14),
                Some(&default_inj),
                None,
                &tag,
                Injected,
            ),
            (
                "a digest does not make it stale",
                pod().injected(&format!("{CURRENT}@sha256:0123")),
                Some(&enabled),
                Some(&w14),
                Some(&default_inj),
                None,
                &image,
                Injected,
            ),
            (
                "unknown expected version: never stale",
                pod().injected(OLD),
                Some(&enabled),
                Some(&w14),
                None,
                None,
                &unknown,
                Injected,
            ),
            (
                "istiod: revision namespace",
                pod(),
                Some(&rev),
                Some(&wistiod),
                Some(&default_inj),
                Some("canary"),
                &image,
                Missing,
            ),
            (
                "istiod: istio-injection wins over istio.io/rev",
                pod().injected(CURRENT),
                Some(&both),
                Some(&wistiod),
                Some(&default_inj),
                Some("canary"),
                &image,
                Injected,
            ),
            (
                "istiod: another revision",
                pod(),
                Some(&other_rev),
                Some(&wistiod),
                Some(&default_inj),
                Some("canary"),
                &image,
                NotInScope,
            ),
            (
                "istiod: unlabelled ns, pod label true",
                pod().with_labels(&[("sidecar.istio.io/inject", "true")]).inject("true"),
                Some(&unlabelled),
                Some(&wistiod),
                Some(&default_inj),
                Some("canary"),
                &image,
                Missing,
            ),
            (
                "istiod: pod label false",
                pod().with_labels(&[("sidecar.istio.io/inject", "false")]).inject("false"),
                Some(&enabled),
                Some(&wistiod),
                Some(&default_inj),
                None,
                &image,
                OptedOut,
            ),
            ("no webhook cached: label rules", pod(), Some(&enabled), None, Some(&default_inj), None, &image, Missing),
            (
                "no webhook cached: revision",
                pod(),
                Some(&rev),
                None,
                Some(&default_inj),
                Some("canary"),
                &image,
                Missing,
            ),
            (
                "no webhook cached: pod's own revision label",
                pod().with_labels(&[("istio.io/rev", "canary")]),
                Some(&unlabelled),
                None,
                Some(&default_inj),
                Some("canary"),
                &image,
                Missing,
            ),
            (
                "no webhook cached: enableNamespacesByDefault",
                pod(),
                Some(&unlabelled),
                None,
                Some(&by_default),
                None,
                &image,
                Missing,
            ),
            ("namespace unknown", pod(), None, Some(&w14), Some(&default_inj), None, &image, NotInScope),
        ];
        assert!(cases.len() >= 25, "{} cases", cases.len());
        for (name, p, n, w, i, r, e, want) in cases {
            let ctx = Context { webhook: w, injector: i, revision: r, expected: e };
            let got = classify(&p, n, &ctx);
            assert_eq!(got.state, want, "{name}: {}", got.why);
        }
    }

    #[test]
    fn expected_versions_come_from_the_setting_or_the_injector() {
        let inj = injector(true, vec![], vec![]);
        assert_eq!(Expected::from("", Some(&inj)), Expected::Image(CURRENT.into()));
        assert_eq!(Expected::from("1.5.0", Some(&inj)), Expected::Tag("1.5.0".into()));
        assert_eq!(
            Expected::from("docker.io/istio/proxyv2:1.5.0", None),
            Expected::Image("docker.io/istio/proxyv2:1.5.0".into())
        );
        assert_eq!(Expected::from("", None), Expected::Unknown);
        assert_eq!(Expected::from("", Some(&inj)).version(), Some("1.4.10-asm.18"));
        let _ = BTreeMap::<String, String>::new();
    }
}
