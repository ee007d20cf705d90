//! `meshkeeper check`: load the caches once, run every check, print a report grouped by check
//! (a mark per item, a hint under each failure), or JSON. Exit code: 0 all good, 1 a finding
//! of severity error, 2 could not run. `meshkeeper check --pre` does the same for the
//! pre-install rules (is the cluster ready for the install guide?), before there is a mesh.

use std::fmt::Write as _;

use std::future::Future;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ListParams, ObjectList};
use serde::Serialize;
use serde_json::json;

use crate::cache::tolerant::{self, Tolerant};
use crate::cache::{
    Cached, DeploymentInfo, Index, InjectorConfig, NamespaceInfo, NodeInfo, ReplicaSetInfo, ServiceInfo, SetInfo,
    Snapshot, WebhookConfigInfo, pod::PodTrim,
};
use crate::checks::{self, Health, Resource, View, precheck};
use crate::config::Settings;
use crate::findings::{CheckReport, Outcome, Severity};
use crate::plan;
use crate::runtime::prober::{probe_api, probe_mtls};
use crate::state::{unix_now, unix_now_ms};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// Why the checks could not run.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot list {resource}: {}", crate::apierror::one_line(source))]
    List { resource: &'static str, source: kube::Error },
}

/// Fetches every page of a list (500 objects a page).
async fn paged<T, Fut>(fetch: impl Fn(ListParams) -> Fut) -> Result<Vec<T>, kube::Error>
where
    T: Clone,
    Fut: Future<Output = kube::Result<ObjectList<T>>>,
{
    let mut out = Vec::new();
    let mut lp = ListParams::default().limit(500);
    loop {
        let page = fetch(lp.clone()).await?;
        out.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = lp.continue_token(&token),
            None => return Ok(out),
        }
    }
}

/// Lists every object of a kind, page by page.
pub async fn list_all<K>(api: &Api<K>, resource: &'static str) -> Result<Vec<K>, CheckError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    paged(|lp| async move { api.list(&lp).await }).await.map_err(|source| CheckError::List { resource, source })
}

/// The result of a one-shot run.
#[derive(Debug, Clone, Serialize)]
pub struct CheckRun {
    pub reports: Vec<CheckReport>,
    /// The API could not be reached: nothing else could be checked.
    pub unreachable: bool,
}

impl CheckRun {
    pub fn count(&self, severity: Severity) -> usize {
        self.reports.iter().flat_map(|r| r.findings()).filter(|f| f.severity == severity).count()
    }

    pub fn exit_code(&self) -> u8 {
        if self.unreachable {
            2
        } else if self.count(Severity::Error) > 0 {
            1
        } else {
            0
        }
    }
}

/// Lists a kind (across all namespaces if namespaced) and trims it into an index; an object
/// that does not decode is logged and skipped, as the watches do (`cache::tolerant`).
async fn load<K, T>(client: &Client, resource: Resource, trim: impl Fn(K) -> Option<T>) -> Result<Index<T>, CheckError>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    T: Cached,
{
    let items = list_all(&Api::<Tolerant<K>>::all(client.clone()), resource.as_str()).await?;
    Ok(Index::from_objects(items.into_iter().filter_map(tolerant::trimming(trim))))
}

/// Loads once and evaluates every registered check.
pub async fn run(settings: &Settings, client: &Client) -> Result<CheckRun, CheckError> {
    let mut probe = probe_api(client, &checks::api::required_permissions(settings)).await;
    let unreachable = matches!(probe.server_version, Some(Err(_)));
    let registry = checks::registry(settings);
    let mut snap = Snapshot::default();
    if !unreachable {
        let cp_ns = &settings.control_plane.namespace;
        for r in checks::watched(&registry) {
            match r {
                Resource::Namespaces => snap.namespaces = load(client, r, NamespaceInfo::from_object).await?,
                Resource::Webhooks => snap.webhooks = load(client, r, WebhookConfigInfo::from_object).await?,
                Resource::Deployments => snap.deployments = load(client, r, DeploymentInfo::from_object).await?,
                Resource::ReplicaSets => snap.replicasets = load(client, r, ReplicaSetInfo::from_object).await?,
                Resource::StatefulSets => snap.statefulsets = load(client, r, SetInfo::from_statefulset).await?,
                Resource::DaemonSets => snap.daemonsets = load(client, r, SetInfo::from_daemonset).await?,
                Resource::Pods => {
                    let pods = PodTrim::new(cp_ns);
                    snap.pods = load(client, r, |p| pods.trim(p)).await?;
                }
                Resource::Services => snap.services = load(client, r, ServiceInfo::from_object).await?,
                Resource::Nodes => snap.nodes = load(client, r, NodeInfo::from_object).await?,
                Resource::InjectorConfig => {
                    let api: Api<ConfigMap> = Api::namespaced(client.clone(), cp_ns);
                    let name = checks::api::injector_configmap_name(settings);
                    let cm =
                        api.get_opt(&name).await.map_err(|source| CheckError::List { resource: r.as_str(), source })?;
                    snap.injector = Index::from_objects(cm.and_then(InjectorConfig::from_object));
                }
                _ => {}
            }
        }
        if settings.control_plane.enabled {
            probe.mtls = probe_mtls(client, cp_ns).await;
        }
    }
    let health = Health::default();
    let view = View::of(settings, &probe, &snap, &health, unix_now() as i64);
    let evaluations = checks::evaluate(&registry, &view, None, |_| true);
    let remedies: Vec<_> = evaluations.iter().flat_map(|e| e.remedies.iter().cloned()).collect();
    let restarts = evaluations.iter().find_map(|e| e.restarts.clone());
    let mut reports: Vec<CheckReport> = evaluations.into_iter().map(|e| e.report).collect();
    // What the daemon would do next, as its leader would see it (check itself never writes).
    let gates = plan::Gates { leader: true, synced: true, failing: vec![], restarts_queued: 0 };
    let plan = plan::plan(settings, &remedies, restarts.as_ref(), &gates, unix_now_ms(), &mut plan::Ledger::default());
    reports.push(plan.report);
    Ok(CheckRun { reports, unreachable })
}

/// `check --pre`: asks the API server once (its version, the installer's rights by access
/// review, the lists the pre-install rules read, the CRDs' names) and evaluates the rules. A
/// list that is refused (a user who is not a cluster admin may read little) does not stop the
/// run: the rules that read it are skipped, saying why.
pub async fn run_pre(settings: &Settings, client: &Client) -> CheckRun {
    let probe = probe_api(client, &precheck::installer_permissions()).await;
    let unreachable = matches!(probe.server_version, Some(Err(_)));
    let mut snap = Snapshot::default();
    let mut seen = precheck::Observed::default();
    if !unreachable {
        for r in precheck::INPUTS.iter().copied() {
            let listed = match r {
                Resource::Namespaces => load(client, r, NamespaceInfo::from_object).await.map(|i| snap.namespaces = i),
                Resource::Deployments => {
                    load(client, r, DeploymentInfo::from_object).await.map(|i| snap.deployments = i)
                }
                Resource::Nodes => load(client, r, NodeInfo::from_object).await.map(|i| snap.nodes = i),
                Resource::Services => load(client, r, ServiceInfo::from_object).await.map(|i| snap.services = i),
                _ => Ok(()),
            };
            if let Err(CheckError::List { resource, source }) = listed {
                seen.unlisted.insert(resource, crate::apierror::one_line(&source));
            }
        }
        // Names only: a CRD's schema can be hundreds of kilobytes.
        let crds: &Api<CustomResourceDefinition> = &Api::all(client.clone());
        match paged(|lp| async move { crds.list_metadata(&lp).await }).await {
            Ok(items) => seen.crds = items.into_iter().filter_map(|c| c.metadata.name).collect(),
            Err(e) => {
                seen.unlisted.insert(precheck::CRDS, crate::apierror::one_line(&e));
            }
        }
    }
    let health = Health::default();
    let view = View::of(settings, &probe, &snap, &health, unix_now() as i64);
    CheckRun { reports: precheck::reports(&view, &seen), unreachable }
}

/// The human report, in the spirit of `linkerd check`.
pub fn render_text(run: &CheckRun) -> String {
    let mut out = String::new();
    for r in &run.reports {
        let _ = writeln!(out, "{}\n{}", r.title, "-".repeat(r.title.chars().count()));
        for item in &r.items {
            match &item.outcome {
                Outcome::Pass => {
                    let _ = writeln!(out, "√ {}", item.description);
                }
                Outcome::Skipped { reason } => {
                    let _ = writeln!(out, "- {} (skipped: {reason})", item.description);
                }
                Outcome::Finding(f) => {
                    let mark = match f.severity {
                        Severity::Error => "×",
                        Severity::Warning => "‼",
                        Severity::Info => "i",
                    };
                    let _ = writeln!(out, "{mark} {}", item.description);
                    let _ = writeln!(out, "    {}", f.message);
                    let _ = writeln!(out, "    expected: {}, actual: {}", f.expected, f.actual);
                    if let Some(h) = &f.hint {
                        let _ = writeln!(out, "    hint: {h}");
                    }
                }
            }
        }
        out.push('\n');
    }
    let (e, w) = (run.count(Severity::Error), run.count(Severity::Warning));
    let verdict = match run.exit_code() {
        0 if w == 0 => "√ all checks passed".to_string(),
        0 => format!("‼ {w} warning(s), no errors"),
        1 => format!("× {e} error(s), {w} warning(s)"),
        _ => "× could not reach the Kubernetes API".to_string(),
    };
    let _ = writeln!(out, "Status check results are {verdict}");
    out
}

pub fn render_json(run: &CheckRun) -> String {
    let v = json!({
        "checks": run.reports,
        "summary": {
            "errors": run.count(Severity::Error),
            "warnings": run.count(Severity::Warning),
            "info": run.count(Severity::Info),
        },
        "exit_code": run.exit_code(),
    });
    serde_json::to_string_pretty(&v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::{Item, test_support::finding};

    fn sample() -> CheckRun {
        let mut err = finding("injection", "InjectionLabelMissing", "team-a");
        err.severity = Severity::Error;
        err.hint = Some("kubectl label namespace team-a istio-injection=enabled --overwrite".into());
        CheckRun {
            reports: vec![CheckReport {
                check: "injection",
                title: "Injection policy",
                items: vec![
                    Item::pass("namespace team-b carries istio-injection=enabled"),
                    Item::skipped("namespace kube-system", "excluded"),
                    Item::finding("namespace team-a carries istio-injection=enabled", err),
                ],
            }],
            unreachable: false,
        }
    }

    #[test]
    fn text_report_has_marks_hints_and_verdict() {
        let text = render_text(&sample());
        assert_eq!(
            text,
            "Injection policy\n----------------\n\
             √ namespace team-b carries istio-injection=enabled\n\
             - namespace kube-system (skipped: excluded)\n\
             × namespace team-a carries istio-injection=enabled\n    InjectionLabelMissing on team-a\n    expected: x, actual: y\n    hint: kubectl label namespace team-a istio-injection=enabled --overwrite\n\n\
             Status check results are × 1 error(s), 0 warning(s)\n"
        );
    }

    #[test]
    fn a_refused_list_is_one_readable_line() {
        let status = kube::core::Status {
            status: Some(kube::core::response::StatusSummary::Failure),
            code: 403,
            message:
                "pods is forbidden: User \"u\" cannot list resource \"pods\" in API group \"\" at the cluster scope"
                    .into(),
            metadata: None,
            reason: "Forbidden".into(),
            details: None,
        };
        let e = CheckError::List { resource: "pods", source: kube::Error::Api(Box::new(status)) };
        assert_eq!(
            e.to_string(),
            "cannot list pods: pods is forbidden: User \"u\" cannot list resource \"pods\" in API group \"\" at the cluster scope (403 Forbidden)"
        );
    }

    #[test]
    fn exit_codes_and_json() {
        let mut run = sample();
        assert_eq!(run.exit_code(), 1);
        let v: serde_json::Value = serde_json::from_str(&render_json(&run)).unwrap();
        assert_eq!(v["summary"]["errors"], 1);
        assert_eq!(v["checks"][0]["items"][2]["outcome"], "finding");
        assert_eq!(v["checks"][0]["items"][2]["reason"], "InjectionLabelMissing");
        run.reports[0].items.truncate(2);
        assert_eq!(run.exit_code(), 0);
        assert!(render_text(&run).ends_with("Status check results are √ all checks passed\n"));
        run.unreachable = true;
        assert_eq!(run.exit_code(), 2);
    }
}
