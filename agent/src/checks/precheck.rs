//! `meshkeeper check --pre`: is this cluster ready for the install guide (ASM 1.4.10-asm.18,
//! profile asm-onprem, on a GKE on VMware user cluster)? Pure: the I/O layer asks the API
//! server once (version, access reviews, lists) and these rules turn what it saw into items.
//!
//! ```text
//!  /version, SelfSubjectAccessReviews ─► ApiProbe ─┐
//!  namespaces, deployments, nodes, services ─► View ┼─► reports() ─► Kubernetes API · rights ·
//!  CRD names, lists that failed ─► Observed ────────┘   cluster size · Istio already here · gateway
//! ```
//!
//! The cluster size and the one-mesh rule are [`super::guide`]'s, shared with the
//! control-plane check after the install. Nothing here writes.

use std::collections::{BTreeMap, BTreeSet};

use super::api::{ApiProbe, Permission, parse_version, permission_items, reach_item};
use super::{Resource, View, gateway, guide};
use crate::cache::{DeploymentInfo, ServiceInfo, image_tag};
use crate::config::{GatewayMode, Settings};
use crate::findings::{CheckReport, Finding, Item, ObjectRef, Severity};

pub const CHECK: &str = "pre-install";

/// The guide's step that makes the installing user a cluster admin.
pub const CLUSTER_ADMIN_BINDING: &str = "kubectl create clusterrolebinding cluster-admin-binding --clusterrole=cluster-admin --user=$(gcloud config get-value core/account)";

/// The cached resources the rules read (listed once by `check --pre`).
pub const INPUTS: &[Resource] = &[Resource::Namespaces, Resource::Deployments, Resource::Nodes, Resource::Services];

/// The plural under which a failed CRD list is reported in [`Observed::unlisted`].
pub const CRDS: &str = "customresourcedefinitions";

/// What the I/O layer saw besides the caches and the API probe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Names of the cluster's CustomResourceDefinitions (`<plural>.<group>`).
    pub crds: Vec<String>,
    /// Resources (plural) that could not be listed, with the API server's answer in one line:
    /// the rules that read them are skipped, saying why.
    pub unlisted: BTreeMap<&'static str, String>,
}

/// What the install creates cluster-wide, asked with SelfSubjectAccessReview: the guide's
/// user is a cluster admin, and these are the rights that show it.
pub fn installer_permissions() -> Vec<Permission> {
    let create = |group, resource, why| Permission::new("create", group, resource, why);
    vec![
        create("rbac.authorization.k8s.io", "clusterrolebindings", "the control plane's ClusterRoleBindings"),
        create("", "namespaces", "the istio-system namespace"),
        create("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "the sidecar injector's webhook"),
        create("apiextensions.k8s.io", "customresourcedefinitions", "Istio's CRDs"),
    ]
}

/// Every section of the report; only the first when the API server could not be reached.
pub fn reports(view: &View<'_>, seen: &Observed) -> Vec<CheckReport> {
    let report = |title, items| CheckReport { check: CHECK, title, items };
    let mut out = vec![report("Kubernetes API", api_items(view.settings, view.api))];
    if matches!(view.api.server_version, Some(Err(_))) {
        return out;
    }
    out.push(report("Your rights (the guide's user is a cluster admin)", rights_items(view.api)));
    out.push(report("Cluster size (allocatable of schedulable, Ready nodes)", size_items(view, seen)));
    out.push(report("Istio already in the cluster", existing_items(view, seen)));
    out.push(report("Ingress gateway after the install", gateway_items(view, seen)));
    out
}

fn skipped_unlisted(desc: impl Into<String>, resource: &str, seen: &Observed) -> Option<Item> {
    seen.unlisted.get(resource).map(|e| Item::skipped(desc, format!("cannot list {resource}: {e}")))
}

fn api_items(settings: &Settings, probe: &ApiProbe) -> Vec<Item> {
    let mut items = vec![reach_item(CHECK, probe)];
    let Some(Ok(version)) = &probe.server_version else { return items };
    let range = settings.precheck.kubernetes_versions;
    let desc = format!("Kubernetes version {version} is one the install supports ({range})");
    let parsed = parse_version(version);
    if parsed.is_some_and(|v| range.contains(v)) {
        items.push(Item::pass(desc));
        return items;
    }
    let seen = if parsed.is_some() { version.clone() } else { format!("{version} (unrecognised)") };
    items.push(Item::finding(
        desc,
        Finding::report_only(
            CHECK,
            "KubernetesVersionUnsupported",
            Severity::Error,
            ObjectRef::cluster("kubernetes-api"),
            format!("Kubernetes {seen} is outside the versions the mesh to be installed supports ({range}, precheck.kubernetes_versions)"),
        )
        .wanted(range.to_string(), seen)
        .hint("install on a cluster of a supported version (GKE on VMware: gkectl upgrade cluster), or install a mesh release that supports this one and set precheck.kubernetes_versions to its range"),
    ));
    items
}

fn rights_items(probe: &ApiProbe) -> Vec<Item> {
    permission_items(CHECK, &probe.permissions, "you", |_| format!("the guide's step: {CLUSTER_ADMIN_BINDING}"))
}

fn size_items(view: &View<'_>, seen: &Observed) -> Vec<Item> {
    let want = &view.settings.control_plane.capacity;
    if let Some(item) = skipped_unlisted("the install guide's cluster size", "nodes", seen) {
        return vec![item];
    }
    guide::capacity_items(CHECK, Severity::Error, &guide::capacity(view.nodes), want)
}

/// The Deployments of the control plane in its namespace: the configured components, and any
/// pilot/istiod.
fn installed<'a>(view: &View<'a>) -> Vec<&'a DeploymentInfo> {
    let cp = &view.settings.control_plane;
    view.deployments
        .iter()
        .filter(|d| d.namespace == cp.namespace)
        .filter(|d| guide::is_control_plane(d) || cp.components.iter().any(|c| c.name == d.name))
        .collect()
}

/// The versions a control plane runs: its versioned components' image tags.
fn versions(view: &View<'_>, deployments: &[&DeploymentInfo]) -> Vec<String> {
    let cp = &view.settings.control_plane;
    let versioned = |d: &DeploymentInfo| cp.components.iter().find(|c| c.name == d.name).is_none_or(|c| c.versioned);
    let tags: BTreeSet<String> = deployments
        .iter()
        .filter(|d| versioned(d))
        .filter_map(|d| d.images.first().and_then(|(_, i)| image_tag(i)).map(str::to_string))
        .collect();
    tags.into_iter().collect()
}

/// GKE on VMware's own Istio pieces: Istio Deployments in the ignored namespaces.
fn gke_pieces<'a>(view: &View<'a>) -> Vec<&'a DeploymentInfo> {
    let ignored = &view.settings.control_plane.ignored_namespaces;
    view.deployments
        .iter()
        .filter(|d| ignored.contains(&d.namespace))
        .filter(|d| d.name.starts_with("istio-") || guide::is_control_plane(d) || d.labels.contains_key("istio"))
        .collect()
}

fn existing_items(view: &View<'_>, seen: &Observed) -> Vec<Item> {
    let cp = &view.settings.control_plane;
    let ns = &cp.namespace;
    let mut items = Vec::new();
    let clean = format!("{ns} is absent or empty: a clean install");
    if let Some(item) = skipped_unlisted(&clean, "deployments", seen) {
        items.push(item);
        items.push(Item::skipped(
            "GKE on VMware's own Istio pieces are expected",
            "cannot list deployments (see above)",
        ));
        items.push(Item::skipped("one mesh", "cannot list deployments (see above)"));
    } else {
        items.push(clean_install_item(view, seen, clean));
        items.push(gke_item(view));
        items.extend(guide::one_mesh_items(CHECK, &guide::other_meshes(view.deployments, cp), cp));
    }
    items.push(crd_item(view, seen));
    items
}

fn clean_install_item(view: &View<'_>, seen: &Observed, desc: String) -> Item {
    let ns = &view.settings.control_plane.namespace;
    let control_plane = installed(view);
    if !control_plane.is_empty() {
        let names: Vec<&str> = control_plane.iter().map(|d| d.name.as_str()).collect();
        let found = match versions(view, &control_plane).as_slice() {
            [] => "a control plane of unknown version".to_string(),
            [v] => format!("ASM {v}"),
            vs => format!("ASM {}, mixed", vs.join(" and ")),
        };
        return Item::finding(
            desc,
            Finding::report_only(
                CHECK,
                "AsmAlreadyInstalled",
                Severity::Warning,
                ObjectRef::namespace(ns),
                format!(
                    "ASM is already installed: this is an upgrade; see the upgrade guide ({ns} runs {found}: {})",
                    names.join(", ")
                ),
            )
            .wanted(format!("no control plane in {ns}"), found)
            .hint(format!(
                "follow the upgrade guide, not the install guide; see what runs: kubectl -n {ns} get deploy -o wide"
            )),
        );
    }
    let leftovers: Vec<&str> =
        view.deployments.iter().filter(|d| d.namespace == *ns).map(|d| d.name.as_str()).collect();
    if !leftovers.is_empty() {
        return Item::finding(
            desc,
            Finding::report_only(
                CHECK,
                "ControlPlaneNamespaceNotEmpty",
                Severity::Warning,
                ObjectRef::namespace(ns),
                format!(
                    "{ns} holds Deployments but no control plane ({}): left over from an earlier install?",
                    leftovers.join(", ")
                ),
            )
            .wanted("absent or empty", format!("Deployments {}", leftovers.join(", ")))
            .hint(format!("kubectl -n {ns} get all; remove what is left before the install")),
        );
    }
    match view.namespaces.get(ns) {
        Some(n) if n.terminating => Item::finding(
            desc,
            Finding::report_only(
                CHECK,
                "ControlPlaneNamespaceTerminating",
                Severity::Error,
                ObjectRef::namespace(ns),
                format!("{ns} is being deleted: the install cannot create anything in it until it is gone"),
            )
            .wanted("absent or active", "Terminating")
            .hint(format!("wait until it is gone (kubectl get namespace {ns}), then install")),
        ),
        Some(_) => Item::pass(format!("{ns} exists and holds no Deployment: a clean install")),
        None if seen.unlisted.contains_key("namespaces") => {
            Item::pass(format!("no Deployment in {ns}: a clean install"))
        }
        None => Item::pass(format!("{ns} does not exist yet: a clean install")),
    }
}

fn gke_item(view: &View<'_>) -> Item {
    let ignored = view.settings.control_plane.ignored_namespaces.join(", ");
    let pieces = gke_pieces(view);
    if pieces.is_empty() {
        return Item::skipped(
            "GKE on VMware's own Istio pieces are expected",
            format!("none in {ignored}: not a GKE on VMware cluster?"),
        );
    }
    let listed: Vec<String> = pieces
        .iter()
        .map(|d| match d.images.first().and_then(|(_, i)| image_tag(i)) {
            Some(tag) => format!("{}/{} ({tag})", d.namespace, d.name),
            None => format!("{}/{}", d.namespace, d.name),
        })
        .collect();
    Item::pass(format!("GKE on VMware's own Istio pieces are expected, not the mesh: {}", listed.join(", ")))
}

fn crd_item(view: &View<'_>, seen: &Observed) -> Item {
    let desc = "no Istio CRDs from another install";
    if let Some(item) = skipped_unlisted(desc, CRDS, seen) {
        return item;
    }
    if seen.unlisted.contains_key("deployments") {
        return Item::skipped(desc, "cannot list deployments: whose CRDs they are is unknown");
    }
    let istio: Vec<&str> = seen.crds.iter().map(String::as_str).filter(|n| n.ends_with(".istio.io")).collect();
    if istio.is_empty() {
        return Item::pass(desc);
    }
    if !installed(view).is_empty() {
        return Item::pass(format!("{} Istio CRD(s), from the control plane installed", istio.len()));
    }
    let ns = &view.settings.control_plane.namespace;
    Item::finding(
        desc,
        Finding::report_only(
            CHECK,
            "IstioCrdsFromAnotherInstall",
            Severity::Warning,
            ObjectRef::cluster(CRDS),
            format!(
                "{} Istio CRD(s) exist but no control plane in {ns}: from another or an earlier install ({})",
                istio.len(),
                istio.join(", ")
            ),
        )
        .wanted("none", format!("{} CRD(s)", istio.len()))
        .hint(format!(
            "find who installed them (kubectl get crd {} -o jsonpath='{{.metadata.labels}}'); remove them if nothing uses them",
            istio[0]
        )),
    )
}

fn gateway_items(view: &View<'_>, seen: &Observed) -> Vec<Item> {
    let g = &view.settings.gateway;
    let (ns, svc) = (&g.namespace, &g.service);
    match g.mode {
        GatewayMode::Off => vec![Item::skipped(
            "the ingress gateway's next step",
            "gateway.mode is off: set it to integrated or manual to see it",
        )],
        GatewayMode::Integrated => {
            let ip = g.load_balancer_ip.map(|ip| ip.to_string()).unwrap_or_else(|| "<VIP>".into());
            let (field, step) = if g.load_balancer_ip_annotation.is_empty() {
                (
                    "spec.loadBalancerIP".to_string(),
                    format!("kubectl -n {ns} patch svc {svc} -p '{{\"spec\":{{\"loadBalancerIP\":\"{ip}\"}}}}'"),
                )
            } else {
                let a = &g.load_balancer_ip_annotation;
                (format!("the annotation {a}"), format!("kubectl -n {ns} annotate svc {svc} {a}={ip} --overwrite"))
            };
            vec![Item::finding(
                "the ingress gateway will need its IP set by hand (integrated LB mode)",
                Finding::report_only(
                    CHECK,
                    "GatewayNeedsLoadBalancerIp",
                    Severity::Info,
                    ObjectRef::new("v1", "Service", Some(ns), svc),
                    format!("after the install {svc} gets no external IP by itself: set {field} to {ip}"),
                )
                .wanted(format!("{field}: {ip}"), "a step after the install")
                .hint(format!("after the install: {step}; meshkeeper keeps it pinned with gateway.repair: true")),
            )]
        }
        GatewayMode::Manual => {
            let pinned: Vec<(&String, u16)> =
                g.node_ports.iter().filter(|(_, p)| **p != 0).map(|(n, p)| (n, *p)).collect();
            let table: Vec<String> = pinned.iter().map(|(n, p)| format!("{n} {p}")).collect();
            let mut items = vec![Item::finding(
                "the ingress gateway will need the nodePort table by hand (manual LB mode)",
                Finding::report_only(
                    CHECK,
                    "GatewayNeedsNodePorts",
                    Severity::Info,
                    ObjectRef::new("v1", "Service", Some(ns), svc),
                    format!(
                        "after the install {svc} gets no external IP by itself: keep it a NodePort Service on the guide's nodePorts ({}) and forward the VIP to them",
                        table.join(", ")
                    ),
                )
                .wanted("a NodePort Service on the guide's nodePorts", "a step after the install")
                .hint(format!(
                    "after the install: kubectl -n {ns} edit svc {svc} (each port's nodePort as above), then point the load balancer's VIP at every node on those ports; meshkeeper keeps them pinned with gateway.repair: true"
                )),
            )];
            items.push(node_ports_item(view, seen, &pinned));
            items
        }
    }
}

/// The guide's nodePorts are free: no other Service holds one (the install's Service could not
/// take it).
fn node_ports_item(view: &View<'_>, seen: &Observed, pinned: &[(&String, u16)]) -> Item {
    let g = &view.settings.gateway;
    let desc = "no other Service holds one of the guide's nodePorts";
    if let Some(item) = skipped_unlisted(desc, "services", seen) {
        return item;
    }
    let all: Vec<&ServiceInfo> = view.services.iter().collect();
    let taken: Vec<String> = pinned
        .iter()
        .filter_map(|(name, port)| {
            gateway::node_port_holder(&all, (&g.namespace, &g.service), i32::from(*port))
                .map(|holder| format!("{port} ({name}) by {holder}"))
        })
        .collect();
    if taken.is_empty() {
        return Item::pass(desc);
    }
    Item::finding(
        desc,
        Finding::report_only(
            CHECK,
            "GatewayNodePortTaken",
            Severity::Error,
            ObjectRef::new("v1", "Service", Some(&g.namespace), &g.service),
            format!("nodePorts the gateway needs are taken: {}", taken.join(", ")),
        )
        .wanted("free", taken.join(", "))
        .hint("free them (kubectl get svc -A | grep <port>), or pin other ports in gateway.node_ports and configure the load balancer for those"),
    )
}

#[cfg(test)]
mod tests;
