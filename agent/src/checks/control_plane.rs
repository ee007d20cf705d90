//! Control-plane health: is the mesh able to work? Report only: this check never writes.
//!
//! ```text
//!  caches (deployments, pods, services, nodes, webhooks) + mTLS probe
//!      └─► assess() ─► ControlPlaneStatus ─┬─► report (findings with hints)
//!                                          └─► gauges at scrape time, injector-health gate
//! ```
//! GKE on VMware's own Istio pieces (pilot and ingress gateway in gke-system, citadel in
//! kube-system) are never counted as the mesh nor as a second control plane.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use x509_parser::pem::Pem;

pub use super::guide::Capacity;
use super::{Check, Evaluation, Resource, View, guide};
use crate::cache::{DeploymentInfo, PodInfo, image_tag};
use crate::config::{Component, ControlPlaneSettings, MtlsMode};
use crate::findings::{CheckReport, Finding, Item, ObjectRef, Severity};

pub const CHECK: &str = "control-plane";

/// Waiting reasons that mean a container cannot run.
const BAD_WAITING: &[&str] =
    &["CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError", "InvalidImageName"];

/// What the mTLS probe found (I/O fills it; interpreted here).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub enum MtlsObservation {
    #[default]
    NotProbed,
    /// Neither MeshPolicy nor PeerAuthentication is served (CRDs not installed).
    CrdMissing,
    /// The CRDs exist but no `default` policy: Istio's default applies (PERMISSIVE).
    NoPolicy,
    /// `source` e.g. `PeerAuthentication istio-system/default`; mode in upper case.
    Mode {
        source: String,
        mode: String,
    },
    Error(String),
}

/// The mTLS mode of a MeshPolicy (1.4) or PeerAuthentication (1.5+) object.
pub fn mtls_mode_of(kind: &str, obj: &serde_json::Value) -> String {
    let spec = &obj["spec"];
    match kind {
        // 1.4: peers: [{mtls: {mode: PERMISSIVE}}]; `mtls: {}` or no mode means STRICT; no peers: no mTLS.
        "MeshPolicy" => match spec["peers"].as_array().and_then(|p| p.iter().find(|x| x.get("mtls").is_some())) {
            Some(peer) => peer["mtls"]["mode"].as_str().unwrap_or("STRICT").to_uppercase(),
            None => "DISABLE".into(),
        },
        // UNSET inherits, and at the root means PERMISSIVE.
        _ => match spec["mtls"]["mode"].as_str().map(str::to_uppercase) {
            None => "PERMISSIVE".into(),
            Some(m) if m == "UNSET" => "PERMISSIVE".into(),
            Some(m) => m,
        },
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentStatus {
    pub name: String,
    pub min_ready: u32,
    pub present: bool,
    pub desired: i32,
    pub available: i32,
    pub updated: i32,
    pub ready_pods: i32,
    /// (pod, container, why)
    pub crashlooping: Vec<(String, String, String)>,
    /// The image tag of its first container, if versioned.
    pub version: Option<String>,
    pub versioned: bool,
}

impl ComponentStatus {
    pub fn is_ready(&self) -> bool {
        self.present
            && self.available >= self.min_ready as i32
            && self.ready_pods >= self.min_ready as i32
            && self.crashlooping.is_empty()
    }
}

/// One certificate of a CA bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    pub subject: String,
    /// Unix seconds.
    pub not_after: i64,
}

/// The injector's CA bundle, as far as it could be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum CaStatus {
    Missing,
    Invalid(String),
    /// Every certificate in the bundle (at least one). A bundle is valid while one of them is:
    /// during a rotation it holds the old root and the new one.
    Certs(Vec<CertInfo>),
}

impl CaStatus {
    /// The certificate that keeps the bundle valid longest.
    pub fn latest(&self) -> Option<&CertInfo> {
        match self {
            CaStatus::Certs(c) => c.iter().max_by_key(|c| c.not_after),
            _ => None,
        }
    }

    /// The other certificates (old or extra roots).
    pub fn extras(&self) -> Vec<&CertInfo> {
        let latest = self.latest();
        match self {
            CaStatus::Certs(c) => c.iter().filter(|x| Some(*x) != latest).collect(),
            _ => vec![],
        }
    }
}

/// The CA of one webhook of the injector's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookCa {
    pub webhook: String,
    pub status: CaStatus,
    /// A Service webhook needs a caBundle; a URL webhook may rely on the API server's trust roots.
    pub required: bool,
}

impl WebhookCa {
    /// Usable at `now`: present where required, parseable, and one certificate unexpired.
    pub fn usable(&self, now: i64) -> bool {
        match &self.status {
            CaStatus::Missing => !self.required,
            CaStatus::Invalid(_) => false,
            CaStatus::Certs(_) => self.status.latest().is_some_and(|c| c.not_after > now),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookStatus {
    pub config: String,
    pub present: bool,
    pub ca: Vec<WebhookCa>,
    /// (webhook, service ns/name, Some(ready backends) or None when the Service is missing)
    pub backends: Vec<(String, String, Option<usize>)>,
    /// (webhook, clientConfig.url, what is wrong with it): managed or remote control planes,
    /// whose backend meshkeeper cannot see.
    pub urls: Vec<(String, String, Option<String>)>,
    pub failure_policies: Vec<(String, String)>,
}

impl WebhookStatus {
    /// The re-injection gate: injecting can work right now, as far as can be told.
    pub fn healthy(&self, now: i64) -> bool {
        self.present && self.backends_ready() && self.ca.iter().all(|c| c.usable(now))
    }

    /// Whether every Service the webhook calls has a ready pod (and every URL is usable): what
    /// is left of [`Self::healthy`] without the CA. The alert rules use it to tell an injector
    /// that is down (its component's alert pages) from a broken webhook.
    pub fn backends_ready(&self) -> bool {
        !(self.backends.is_empty() && self.urls.is_empty())
            && self.backends.iter().all(|(_, _, n)| n.is_some_and(|n| n > 0))
            && self.urls.iter().all(|(_, _, problem)| problem.is_none())
    }

    /// Why injection cannot work right now, in a few words (None when healthy).
    pub fn problem(&self, now: i64) -> Option<String> {
        if !self.present {
            return Some(format!("the injector webhook {} does not exist", self.config));
        }
        if self.backends.is_empty() && self.urls.is_empty() {
            return Some(format!("the injector webhook {} calls nothing", self.config));
        }
        if let Some((_, svc, n)) = self.backends.iter().find(|(_, _, n)| !n.is_some_and(|n| n > 0)) {
            return Some(match n {
                None => format!("the injector's Service {svc} does not exist"),
                Some(_) => format!("the injector's Service {svc} has no ready pod"),
            });
        }
        if let Some((_, url, Some(p))) = self.urls.iter().find(|(_, _, p)| p.is_some()) {
            return Some(format!("the injector URL {url} is unusable: {p}"));
        }
        if let Some(c) = self.ca.iter().find(|c| !c.usable(now)) {
            return Some(format!("webhook {} has no valid CA certificate", c.webhook));
        }
        None
    }

    /// When the first webhook's bundle stops being valid (its latest certificate's expiry).
    pub fn ca_expiry(&self) -> Option<i64> {
        self.ca.iter().filter_map(|c| c.status.latest().map(|l| l.not_after)).min()
    }
}

/// What is wrong with a webhook URL, if anything: the API server calls only `https://host...`.
pub fn url_problem(url: &str) -> Option<String> {
    let Some(rest) = url.strip_prefix("https://") else {
        return Some(format!("{url} is not an https:// URL (the API server only calls webhooks over TLS)"));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Some(format!("{url} names no host"));
    }
    None
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControlPlaneStatus {
    pub components: Vec<ComponentStatus>,
    pub webhook: WebhookStatus,
    pub capacity: Capacity,
    /// Control-plane Deployments outside the mesh's namespace (and not GKE's own).
    pub other_meshes: Vec<(String, String)>,
}

impl ControlPlaneStatus {
    /// `meshkeeper_control_plane_healthy`: every component ready and the injector healthy.
    pub fn healthy(&self, now: i64) -> bool {
        self.components.iter().all(ComponentStatus::is_ready) && self.webhook.healthy(now)
    }
}

/// Parses a PEM CA bundle into its certificates.
pub fn parse_ca_bundle(bundle: &[u8]) -> CaStatus {
    if bundle.iter().all(u8::is_ascii_whitespace) {
        return CaStatus::Missing;
    }
    let mut certs = Vec::new();
    for pem in Pem::iter_from_buffer(bundle) {
        let pem = match pem {
            Ok(p) => p,
            Err(e) => return CaStatus::Invalid(format!("not PEM: {e}")),
        };
        if pem.label != "CERTIFICATE" {
            continue;
        }
        let cert = match pem.parse_x509() {
            Ok(c) => c,
            Err(e) => return CaStatus::Invalid(format!("not an X.509 certificate: {e}")),
        };
        certs.push(CertInfo { subject: cert.subject().to_string(), not_after: cert.validity().not_after.timestamp() });
    }
    if certs.is_empty() {
        CaStatus::Invalid("no CERTIFICATE block in the bundle".into())
    } else {
        CaStatus::Certs(certs)
    }
}

/// The Deployment's current ReplicaSet (the highest revision it owns), if the cache knows it.
fn current_replicaset<'a>(d: &DeploymentInfo, view: &View<'a>) -> Option<&'a str> {
    view.replicasets
        .iter()
        .filter(|rs| {
            rs.namespace == d.namespace && rs.owner.as_ref().is_some_and(|(k, n)| k == "Deployment" && *n == d.name)
        })
        .max_by_key(|rs| rs.revision)
        .map(|rs| rs.name.as_str())
}

/// The Deployment's live pods: selected by its selector (matchLabels and matchExpressions),
/// not terminating, and not left over from an old ReplicaSet during a rollout.
fn pods_of<'a>(d: &'a DeploymentInfo, view: &View<'a>) -> impl Iterator<Item = &'a PodInfo> + 'a {
    let current = current_replicaset(d, view);
    let selects = !d.selector.is_empty();
    view.pods.in_namespace(&d.namespace).filter(move |p| {
        selects
            && !p.terminating()
            && d.selector.matches_with(|k| p.label(k))
            && match (p.owner.as_deref(), current) {
                (Some((kind, rs)), Some(cur)) if &**kind == "ReplicaSet" => &**rs == cur,
                _ => true,
            }
    })
}

fn component_status(c: &Component, cp: &ControlPlaneSettings, view: &View<'_>) -> ComponentStatus {
    let key = format!("{}/{}", cp.namespace, c.name);
    let window = i64::from(cp.crashloop_window_minutes) * 60;
    let Some(d) = view.deployments.get(&key) else {
        return ComponentStatus {
            name: c.name.clone(),
            min_ready: c.min_ready,
            present: false,
            desired: 0,
            available: 0,
            updated: 0,
            ready_pods: 0,
            crashlooping: Vec::new(),
            version: None,
            versioned: c.versioned,
        };
    };
    let mut ready_pods = 0;
    let mut crashlooping = Vec::new();
    for p in pods_of(d, view) {
        if p.ready() {
            ready_pods += 1;
        }
        for ct in p.containers() {
            if let Some(r) = ct.waiting_reason.as_deref().filter(|r| BAD_WAITING.contains(r)) {
                crashlooping.push((p.name.to_string(), ct.name.clone(), r.to_string()));
            } else if ct.restart_count >= cp.restart_threshold as i32
                && ct.last_terminated_at.is_some_and(|t| view.now - t <= window)
            {
                crashlooping.push((
                    p.name.to_string(),
                    ct.name.clone(),
                    format!("restarted {} times, last within {} min", ct.restart_count, cp.crashloop_window_minutes),
                ));
            }
        }
    }
    ComponentStatus {
        name: c.name.clone(),
        min_ready: c.min_ready,
        present: true,
        desired: d.desired,
        available: d.available,
        updated: d.updated,
        ready_pods,
        crashlooping,
        version: if c.versioned { d.images.first().and_then(|(_, i)| image_tag(i)).map(str::to_string) } else { None },
        versioned: c.versioned,
    }
}

/// The injector webhook configuration meant by the settings (revisioned first).
pub fn injector_config_names(view: &View<'_>) -> Vec<String> {
    let label = &view.settings.injection.label;
    let mut names = Vec::new();
    if label.key == super::injection::ISTIO_REV {
        names.push(format!("istio-sidecar-injector-{}", label.value));
    }
    names.push(view.settings.control_plane.injector_webhook.clone());
    names
}

/// The injector webhook's state, from the caches alone.
pub fn webhook_status(view: &View<'_>) -> WebhookStatus {
    let names = injector_config_names(view);
    let found = names.iter().find_map(|n| view.webhooks.get(n));
    let Some(config) = found else {
        return WebhookStatus {
            config: names.join(" or "),
            present: false,
            ca: vec![],
            backends: vec![],
            urls: vec![],
            failure_policies: vec![],
        };
    };
    let mut st = WebhookStatus {
        config: config.name.clone(),
        present: true,
        ca: vec![],
        backends: vec![],
        urls: vec![],
        failure_policies: vec![],
    };
    for w in &config.webhooks {
        st.ca.push(WebhookCa {
            webhook: w.name.clone(),
            status: w.ca_bundle.as_deref().map(parse_ca_bundle).unwrap_or(CaStatus::Missing),
            required: w.url.is_none(),
        });
        if let (None, Some(url)) = (&w.service, &w.url) {
            st.urls.push((w.name.clone(), url.clone(), url_problem(url)));
        }
        st.failure_policies.push((w.name.clone(), w.failure_policy.clone().unwrap_or_else(|| "Fail".into())));
        if let Some((ns, name, _)) = &w.service {
            let ready = view.services.get(&format!("{ns}/{name}")).map(|svc| {
                view.pods
                    .in_namespace(ns)
                    .filter(|p| {
                        !svc.selector.is_empty()
                            && svc.selector.iter().all(|(k, v)| p.label(k) == Some(v.as_str()))
                            && p.ready()
                            && !p.terminating()
                    })
                    .count()
            });
            st.backends.push((w.name.clone(), format!("{ns}/{name}"), ready));
        }
    }
    st
}

/// Everything the check and the gauges need, from the caches alone.
pub fn assess(view: &View<'_>) -> ControlPlaneStatus {
    let cp = &view.settings.control_plane;
    let components = cp.components.iter().map(|c| component_status(c, cp, view)).collect();
    let other_meshes = guide::other_meshes(view.deployments, cp);
    let capacity = guide::capacity(view.nodes);
    ControlPlaneStatus { components, webhook: webhook_status(view), capacity, other_meshes }
}

struct Builder<'a> {
    items: Vec<Item>,
    cp: &'a ControlPlaneSettings,
}

impl Builder<'_> {
    fn pass(&mut self, d: String) {
        self.items.push(Item::pass(d));
    }

    #[allow(clippy::too_many_arguments)]
    fn find(
        &mut self,
        desc: String,
        reason: &'static str,
        severity: Severity,
        object: ObjectRef,
        expected: String,
        actual: String,
        message: String,
        hint: String,
    ) {
        self.items.push(Item::finding(
            desc,
            Finding {
                check: CHECK,
                reason,
                severity,
                object,
                expected,
                actual,
                remediable: false,
                message,
                hint: Some(hint),
            },
        ));
    }

    fn deploy(&self, name: &str) -> ObjectRef {
        ObjectRef::new("apps/v1", "Deployment", Some(&self.cp.namespace), name)
    }
}

fn days(secs: i64) -> i64 {
    secs.div_euclid(86_400)
}

/// Builds the report from the assessment (pure).
pub fn report(status: &ControlPlaneStatus, view: &View<'_>, title: &'static str) -> CheckReport {
    let cp = &view.settings.control_plane;
    let ns = &cp.namespace;
    let mut b = Builder { items: Vec::new(), cp };

    for c in &status.components {
        let desc = format!("{}: Deployment present in {ns}", c.name);
        if !c.present {
            b.find(
                desc,
                "ComponentMissing",
                Severity::Error,
                b.deploy(&c.name),
                "present".into(),
                "not found".into(),
                format!("{}: no Deployment in {ns}", c.name),
                format!("kubectl -n {ns} get deploy; reinstall the control plane (istioctl manifest apply)"),
            );
            continue;
        }
        b.pass(desc);
        let desc = format!("{}: at least {} replica(s) available and ready", c.name, c.min_ready);
        let available = c.available.min(c.ready_pods);
        if available < c.min_ready as i32 {
            b.find(
                desc,
                "ComponentUnavailable",
                Severity::Error,
                b.deploy(&c.name),
                format!(">= {} available", c.min_ready),
                format!("{}/{} available, {} pod(s) ready", c.available, c.desired, c.ready_pods),
                format!("{}: {}/{} available", c.name, c.available, c.desired),
                format!("kubectl -n {ns} describe deploy {}", c.name),
            );
        } else if c.available < c.desired {
            b.find(
                desc,
                "ComponentDegraded",
                Severity::Warning,
                b.deploy(&c.name),
                format!("{} available", c.desired),
                format!("{}/{} available", c.available, c.desired),
                format!("{}: {}/{} available (above its minimum of {})", c.name, c.available, c.desired, c.min_ready),
                format!("kubectl -n {ns} describe deploy {}", c.name),
            );
        } else {
            b.pass(desc);
        }
        let desc = format!("{}: no container crash-looping", c.name);
        if let Some((pod, container, why)) = c.crashlooping.first() {
            b.find(
                desc,
                "ComponentCrashLooping",
                Severity::Error,
                ObjectRef::new("v1", "Pod", Some(ns), pod),
                "running".into(),
                format!("{container}: {why}"),
                format!("{}: pod {pod} container {container}: {why}", c.name),
                format!("kubectl -n {ns} logs {pod} -c {container} --previous"),
            );
        } else {
            b.pass(desc);
        }
    }

    let versions: BTreeMap<&str, &str> =
        status.components.iter().filter_map(|c| c.version.as_deref().map(|v| (c.name.as_str(), v))).collect();
    let distinct: BTreeSet<&str> = versions.values().copied().collect();
    let desc = "control-plane components run one version".to_string();
    if distinct.len() > 1 {
        let actual = versions.iter().map(|(c, v)| format!("{c}={v}")).collect::<Vec<_>>().join(", ");
        b.find(
            desc,
            "VersionSkew",
            Severity::Warning,
            ObjectRef::namespace(ns),
            "one version".into(),
            actual.clone(),
            format!("control-plane components run different versions: {actual}"),
            "finish the upgrade: every component should run the same tag".into(),
        );
    } else {
        b.pass(desc);
    }
    if !cp.expected_version.is_empty() {
        for (c, v) in &versions {
            let desc = format!("{c}: runs {}", cp.expected_version);
            if *v != cp.expected_version {
                b.find(
                    desc,
                    "UnexpectedVersion",
                    Severity::Error,
                    b.deploy(c),
                    cp.expected_version.clone(),
                    v.to_string(),
                    format!("{c} runs {v}, expected {}", cp.expected_version),
                    format!("kubectl -n {ns} get deploy {c} -o jsonpath='{{.spec.template.spec.containers[*].image}}'"),
                );
            } else {
                b.pass(desc);
            }
        }
    }

    let wh = &status.webhook;
    let wref = ObjectRef::new("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", None, &wh.config);
    let desc = format!("injector webhook {} present", wh.config);
    if !wh.present {
        b.find(
            desc,
            "InjectorWebhookMissing",
            Severity::Error,
            wref.clone(),
            "present".into(),
            "not found".into(),
            format!("MutatingWebhookConfiguration {} not found: no pod gets a sidecar", wh.config),
            "kubectl get mutatingwebhookconfigurations; reinstall the sidecar injector".into(),
        );
    } else {
        b.pass(desc);
        for (w, svc, ready) in &wh.backends {
            let desc = format!("webhook {w}: service {svc} has a ready backend");
            match ready {
                None => b.find(
                    desc,
                    "InjectorServiceMissing",
                    Severity::Error,
                    wref.clone(),
                    "service present".into(),
                    "not found".into(),
                    format!("webhook {w} calls service {svc}, which does not exist"),
                    format!("kubectl get svc -n {}", svc.split('/').next().unwrap_or_default()),
                ),
                Some(0) => b.find(
                    desc,
                    "InjectorNoReadyBackend",
                    Severity::Error,
                    wref.clone(),
                    ">= 1 ready pod".into(),
                    "0 ready pods".into(),
                    format!("webhook {w}: service {svc} has no ready pod; pods are created without a sidecar (or not at all with failurePolicy Fail)"),
                    format!("kubectl -n {} get pods -l <the service's selector>; kubectl get endpoints -n {} {}", svc.split('/').next().unwrap_or_default(), svc.split('/').next().unwrap_or_default(), svc.split('/').nth(1).unwrap_or_default()),
                ),
                Some(n) => b.pass(format!("{desc} ({n})")),
            }
        }
        for (w, url, problem) in &wh.urls {
            let desc = format!("webhook {w}: calls {url}");
            match problem {
                None => b.pass(format!("{desc} (a URL webhook: its backend is outside the cluster's view)")),
                Some(p) => b.find(
                    desc,
                    "InjectorUrlInvalid",
                    Severity::Error,
                    wref.clone(),
                    "an https:// URL".into(),
                    url.clone(),
                    format!("webhook {w}: {p}"),
                    format!("kubectl get mutatingwebhookconfiguration {} -o yaml; fix clientConfig.url", wh.config),
                ),
            }
        }
        let warn_secs = i64::from(cp.cert_expiry_warning_days) * 86_400;
        for ca in &wh.ca {
            let w = &ca.webhook;
            let desc = format!("webhook {w}: caBundle holds a valid, unexpired X.509 certificate");
            match &ca.status {
                CaStatus::Missing if !ca.required => b.pass(format!(
                    "webhook {w}: no caBundle; the API server verifies the URL with its own trust roots"
                )),
                CaStatus::Missing => b.find(desc, "CaBundleMissing", Severity::Error, wref.clone(), "a PEM CA bundle".into(), "empty".into(),
                    format!("webhook {w} has no caBundle: the API server cannot verify the injector (x509 errors)"),
                    "restart the injector so it patches its caBundle, or check the certificate provisioner".into()),
                CaStatus::Invalid(e) => b.find(desc, "CaBundleInvalid", Severity::Error, wref.clone(), "a PEM CA bundle".into(), e.clone(),
                    format!("webhook {w} caBundle is unusable: {e}"),
                    format!("kubectl get mutatingwebhookconfiguration {} -o jsonpath='{{.webhooks[0].clientConfig.caBundle}}' | base64 -d | openssl x509 -noout -dates", wh.config)),
                CaStatus::Certs(certs) => {
                    let Some(latest) = ca.status.latest() else { continue };
                    let (not_after, subject) = (latest.not_after, &latest.subject);
                    let all = if certs.len() > 1 { "every certificate of the bundle has" } else { "has" };
                    if not_after <= view.now {
                        b.find(desc, "CaExpired", Severity::Error, wref.clone(),
                            "not expired".into(), format!("expired {} day(s) ago", days(view.now - not_after)),
                            format!("webhook {w} CA ({subject}) {all} expired: pod creation fails with x509 errors"),
                            "rotate the injector's CA (istio-ca-secret / citadel) and restart the injector".into());
                        continue;
                    }
                    if not_after - view.now < warn_secs {
                        b.find(desc, "CaExpiringSoon", Severity::Warning, wref.clone(),
                            format!("valid for >= {} days", cp.cert_expiry_warning_days), format!("expires in {} day(s)", days(not_after - view.now)),
                            format!("webhook {w} CA ({subject}) expires in {} day(s)", days(not_after - view.now)),
                            "rotate the injector's CA before it expires".into());
                    } else {
                        b.pass(format!("{desc} (expires in {} days)", days(not_after - view.now)));
                    }
                    // Extra roots (e.g. the old one during a rotation): harmless while the
                    // bundle is valid, reported one severity lower.
                    let extras = ca.status.extras();
                    let expired: Vec<String> = extras.iter().filter(|c| c.not_after <= view.now)
                        .map(|c| format!("{} (expired {} day(s) ago)", c.subject, days(view.now - c.not_after))).collect();
                    let expiring: Vec<String> = extras.iter().filter(|c| c.not_after > view.now && c.not_after - view.now < warn_secs)
                        .map(|c| format!("{} (expires in {} day(s))", c.subject, days(c.not_after - view.now))).collect();
                    if !expired.is_empty() {
                        b.find(format!("webhook {w}: no expired extra certificate in the caBundle"), "CaBundleRootExpired", Severity::Warning, wref.clone(),
                            "unexpired certificates only".into(), expired.join(", "),
                            format!("webhook {w}: the caBundle still holds expired certificate(s) {}; harmless while {subject} is valid", expired.join(", ")),
                            "finish the CA rotation: remove the old root from the caBundle (the injector does on restart)".into());
                    }
                    if !expiring.is_empty() {
                        b.find(format!("webhook {w}: no extra certificate in the caBundle expires soon"), "CaBundleRootExpiringSoon", Severity::Info, wref.clone(),
                            format!("valid for >= {} days", cp.cert_expiry_warning_days), expiring.join(", "),
                            format!("webhook {w}: extra certificate(s) {} in the caBundle expire soon; the bundle stays valid through {subject}", expiring.join(", ")),
                            "nothing to do if the rotation is planned; otherwise remove the old root".into());
                    }
                }
            }
        }
        for (w, policy) in &wh.failure_policies {
            b.pass(format!("webhook {w}: failurePolicy {policy}"));
        }
    }

    b.items.extend(guide::one_mesh_items(CHECK, &status.other_meshes, cp));
    // Below the install guide's size the mesh still runs: a warning here, an error before the install.
    b.items.extend(guide::capacity_items(CHECK, Severity::Warning, &status.capacity, &cp.capacity));

    let desc = format!(
        "mesh-wide mTLS mode is {}",
        match cp.mtls_mode {
            MtlsMode::Permissive => "PERMISSIVE",
            MtlsMode::Strict => "STRICT",
            MtlsMode::Any => "known",
        }
    );
    match (&view.api.mtls, cp.mtls_mode) {
        (MtlsObservation::NotProbed, _) => b.items.push(Item::skipped(desc, "not probed yet")),
        (MtlsObservation::CrdMissing, _) => {
            b.items.push(Item::skipped(desc, "neither MeshPolicy nor PeerAuthentication is installed"))
        }
        (MtlsObservation::Error(e), _) => b.items.push(Item::skipped(desc, format!("could not read the policy: {e}"))),
        (_, MtlsMode::Any) => b.pass(desc),
        (obs, want) => {
            let (source, mode) = match obs {
                MtlsObservation::Mode { source, mode } => (source.clone(), mode.clone()),
                _ => ("no default policy".to_string(), "PERMISSIVE".to_string()),
            };
            let want_s = if want == MtlsMode::Strict { "STRICT" } else { "PERMISSIVE" };
            if mode == want_s {
                b.pass(format!("{desc} ({source})"));
            } else {
                b.find(
                    desc,
                    "MtlsModeMismatch",
                    Severity::Error,
                    ObjectRef::namespace(ns),
                    want_s.into(),
                    format!("{mode} ({source})"),
                    format!("mesh-wide mTLS is {mode} ({source}), policy wants {want_s}"),
                    "istioctl manifest apply --set values.global.mtls.enabled=true (STRICT) or edit the default policy"
                        .into(),
                );
            }
        }
    }
    CheckReport { check: CHECK, title, items: b.items }
}

/// The gauge families of this check (read at scrape time by [`samples`]). `target_namespace`
/// is the control plane's namespace, `webhook` the injector's MutatingWebhookConfiguration.
pub const GAUGES: &[(&str, &str, &[&str])] = &[
    (
        "meshkeeper_control_plane_healthy",
        "1 when every control-plane component is ready and the injector webhook is healthy, else 0.",
        &["target_namespace"],
    ),
    (
        "meshkeeper_control_plane_component_ready",
        "1 when the component has its minimum of ready replicas and no crash-looping container.",
        &["target_namespace", "component"],
    ),
    (
        "meshkeeper_control_plane_component_replicas",
        "Replicas of a control-plane component by state (desired, available, updated, ready_pods).",
        &["target_namespace", "component", "state"],
    ),
    (
        "meshkeeper_control_plane_version_info",
        "The image tag each versioned control-plane component runs; the value is always 1.",
        &["target_namespace", "component", "version"],
    ),
    (
        "meshkeeper_injector_webhook_healthy",
        "1 when the injector webhook exists, has a valid unexpired CA bundle and a ready backend, else 0.",
        &["webhook"],
    ),
    (
        "meshkeeper_injector_ca_expiry_timestamp_seconds",
        "Unix time at which the injector webhook's CA bundle stops being valid (the expiry of its latest certificate).",
        &["webhook"],
    ),
    (
        "meshkeeper_injector_webhook_backend_ready",
        "1 when every Service the injector webhook calls has a ready pod (and every URL it calls is usable), else 0; absent when the webhook does not exist.",
        &["webhook"],
    ),
    ("meshkeeper_cluster_nodes", "Nodes in the cluster.", &[]),
    ("meshkeeper_cluster_ready_nodes", "Nodes whose Ready condition is True.", &[]),
    ("meshkeeper_cluster_allocatable_cpu_cores", "CPU allocatable on all nodes, in cores.", &[]),
    ("meshkeeper_cluster_allocatable_memory_bytes", "Memory allocatable on all nodes, in bytes.", &[]),
];

/// The series of [`GAUGES`] for an assessment; `namespace`: the control plane's.
pub fn samples(st: &ControlPlaneStatus, namespace: &str, now: i64) -> Vec<crate::metrics::Sample> {
    let b = |x: bool| if x { 1.0 } else { 0.0 };
    let ns = || namespace.to_string();
    let webhook = || st.webhook.config.clone();
    let mut out = vec![(0, vec![ns()], b(st.healthy(now))), (4, vec![webhook()], b(st.webhook.healthy(now)))];
    for c in &st.components {
        out.push((1, vec![ns(), c.name.clone()], b(c.is_ready())));
        for (state, n) in
            [("desired", c.desired), ("available", c.available), ("updated", c.updated), ("ready_pods", c.ready_pods)]
        {
            out.push((2, vec![ns(), c.name.clone(), state.into()], f64::from(n)));
        }
        if let Some(v) = &c.version {
            out.push((3, vec![ns(), c.name.clone(), v.clone()], 1.0));
        }
    }
    if let Some(t) = st.webhook.ca_expiry() {
        out.push((5, vec![webhook()], t as f64));
    }
    if st.webhook.present {
        out.push((6, vec![webhook()], b(st.webhook.backends_ready())));
    }
    let cap = &st.capacity;
    out.push((7, vec![], cap.nodes as f64));
    out.push((8, vec![], cap.ready_nodes as f64));
    out.push((9, vec![], cap.cpu_millis as f64 / 1000.0));
    out.push((10, vec![], cap.memory_bytes as f64));
    out
}

pub struct ControlPlaneCheck;

impl Check for ControlPlaneCheck {
    fn name(&self) -> &'static str {
        CHECK
    }

    fn title(&self) -> &'static str {
        "Control plane"
    }

    fn inputs(&self) -> &'static [Resource] {
        &[
            Resource::Deployments,
            Resource::ReplicaSets,
            Resource::Pods,
            Resource::Services,
            Resource::Nodes,
            Resource::Webhooks,
            Resource::ApiProbe,
        ]
    }

    fn evaluate(&self, view: &View<'_>) -> Evaluation {
        Evaluation::report(report(&assess(view), view, self.title()))
    }
}

#[cfg(test)]
mod tests;
