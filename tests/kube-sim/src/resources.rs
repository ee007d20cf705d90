//! The resources kube-sim serves, and the discovery documents a v1.36 server answers with.

use serde_json::{Value, json};

/// One served resource type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    /// "" for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    /// Subresources besides the object itself: "status", "eviction", "scale".
    pub subresources: Vec<String>,
    /// Spec changes bump metadata.generation.
    pub generation: bool,
    /// Create-only virtual resources (access reviews).
    pub create_only: bool,
    /// A PUT without `metadata.resourceVersion` is accepted (the strategy's
    /// AllowUnconditionalUpdate); false for Leases, PodDisruptionBudgets, CRDs and custom
    /// resources, which answer 422 `must be specified for an update`.
    pub unconditional_update: bool,
    /// A PUT of a missing object creates it (AllowCreateOnUpdate: Leases, Events, Endpoints, Services).
    pub create_on_update: bool,
    /// Served from another type's storage, converted (events.k8s.io/v1 Events are core/v1
    /// Events): the index of that type.
    pub storage: Option<usize>,
    /// Discovery categories (`all` for the workload kinds `kubectl get all` lists).
    pub categories: Vec<String>,
    /// Verbs when not the usual eight (namespaces have no deletecollection, componentstatuses
    /// only get and list).
    pub verbs: Option<Vec<String>>,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    pub fn has_status(&self) -> bool {
        self.subresources.iter().any(|s| s == "status")
    }

    /// `namespaces`, `deployments.apps`: the name used in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() { self.plural.clone() } else { format!("{}.{}", self.plural, self.group) }
    }
}

#[allow(clippy::too_many_arguments)]
fn rt(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    short: &[&str],
    subs: &[&str],
    generation: bool,
) -> ResourceType {
    ResourceType {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        subresources: subs.iter().map(|s| s.to_string()).collect(),
        generation,
        create_only: false,
        unconditional_update: !matches!(plural, "leases" | "poddisruptionbudgets" | "customresourcedefinitions"),
        create_on_update: matches!(plural, "leases" | "events" | "endpoints" | "services"),
        storage: None,
        categories: if matches!(
            plural,
            "pods"
                | "services"
                | "replicationcontrollers"
                | "deployments"
                | "replicasets"
                | "statefulsets"
                | "daemonsets"
                | "jobs"
                | "cronjobs"
                | "horizontalpodautoscalers"
        ) {
            vec!["all".into()]
        } else {
            vec![]
        },
        verbs: None,
    }
}

/// (group, version, kind, plural, namespaced, short names, subresources, generation)
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    &'static [&'static str],
    bool,
);

/// The built-in resources: what a v1.36 API server serves (15-discovery.json for core/v1 and
/// apps/v1, the group list of its aggregated discovery for the rest). Those without behaviour
/// of their own are plain storage.
pub fn builtin() -> Vec<ResourceType> {
    const CORE: &str = "";
    const ADM: &str = "admissionregistration.k8s.io";
    const RBAC: &str = "rbac.authorization.k8s.io";
    const AUTHZ: &str = "authorization.k8s.io";
    const AUTHN: &str = "authentication.k8s.io";
    const NET: &str = "networking.k8s.io";
    const RES: &str = "resource.k8s.io";
    const FC: &str = "flowcontrol.apiserver.k8s.io";
    const STOR: &str = "storage.k8s.io";
    #[rustfmt::skip]
    let table: &[Row] = &[
        // (group, version, kind, plural, namespaced, short names, subresources, generation)
        (CORE, "v1", "Binding", "bindings", true, &[], &[], false),
        (CORE, "v1", "ComponentStatus", "componentstatuses", false, &["cs"], &[], false),
        (CORE, "v1", "Namespace", "namespaces", false, &["ns"], &["status", "finalize"], false),
        (CORE, "v1", "Pod", "pods", true, &["po"], &["status", "eviction", "attach", "binding", "ephemeralcontainers", "exec", "log", "portforward", "proxy", "resize"], false),
        (CORE, "v1", "Service", "services", true, &["svc"], &["status", "proxy"], false),
        (CORE, "v1", "Endpoints", "endpoints", true, &["ep"], &[], false),
        (CORE, "v1", "Node", "nodes", false, &["no"], &["status", "proxy"], false),
        (CORE, "v1", "ConfigMap", "configmaps", true, &["cm"], &[], false),
        (CORE, "v1", "Secret", "secrets", true, &[], &[], false),
        (CORE, "v1", "ServiceAccount", "serviceaccounts", true, &["sa"], &["token"], false),
        (CORE, "v1", "Event", "events", true, &["ev"], &[], false),
        (CORE, "v1", "LimitRange", "limitranges", true, &["limits"], &[], false),
        (CORE, "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true, &["pvc"], &["status"], false),
        (CORE, "v1", "PersistentVolume", "persistentvolumes", false, &["pv"], &["status"], false),
        (CORE, "v1", "PodTemplate", "podtemplates", true, &[], &[], false),
        (CORE, "v1", "ReplicationController", "replicationcontrollers", true, &["rc"], &["scale", "status"], true),
        (CORE, "v1", "ResourceQuota", "resourcequotas", true, &["quota"], &["status"], false),
        ("events.k8s.io", "v1", "Event", "events", true, &["ev"], &[], false),
        ("apps", "v1", "ControllerRevision", "controllerrevisions", true, &[], &[], false),
        ("apps", "v1", "Deployment", "deployments", true, &["deploy"], &["status", "scale"], true),
        ("apps", "v1", "ReplicaSet", "replicasets", true, &["rs"], &["status", "scale"], true),
        ("apps", "v1", "StatefulSet", "statefulsets", true, &["sts"], &["status", "scale"], true),
        ("apps", "v1", "DaemonSet", "daemonsets", true, &["ds"], &["status"], true),
        ("batch", "v1", "Job", "jobs", true, &[], &["status"], true),
        ("batch", "v1", "CronJob", "cronjobs", true, &["cj"], &["status"], true),
        ("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true, &["hpa"], &["status"], false),
        ("autoscaling", "v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true, &["hpa"], &["status"], false),
        ("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true, &["pdb"], &["status"], true),
        (ADM, "v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", false, &[], &[], true),
        (ADM, "v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations", false, &[], &[], true),
        (ADM, "v1", "ValidatingAdmissionPolicy", "validatingadmissionpolicies", false, &[], &["status"], true),
        (ADM, "v1", "ValidatingAdmissionPolicyBinding", "validatingadmissionpolicybindings", false, &[], &[], true),
        (ADM, "v1", "MutatingAdmissionPolicy", "mutatingadmissionpolicies", false, &[], &[], true),
        (ADM, "v1", "MutatingAdmissionPolicyBinding", "mutatingadmissionpolicybindings", false, &[], &[], true),
        ("coordination.k8s.io", "v1", "Lease", "leases", true, &[], &[], false),
        (RBAC, "v1", "Role", "roles", true, &[], &[], false),
        (RBAC, "v1", "ClusterRole", "clusterroles", false, &[], &[], false),
        (RBAC, "v1", "RoleBinding", "rolebindings", true, &[], &[], false),
        (RBAC, "v1", "ClusterRoleBinding", "clusterrolebindings", false, &[], &[], false),
        ("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", false, &["crd", "crds"], &["status"], true),
        ("apiregistration.k8s.io", "v1", "APIService", "apiservices", false, &[], &["status"], false),
        ("certificates.k8s.io", "v1", "CertificateSigningRequest", "certificatesigningrequests", false, &["csr"], &["approval", "status"], false),
        (NET, "v1", "IngressClass", "ingressclasses", false, &[], &[], false),
        (NET, "v1", "Ingress", "ingresses", true, &["ing"], &["status"], true),
        (NET, "v1", "IPAddress", "ipaddresses", false, &["ip"], &[], false),
        (NET, "v1", "NetworkPolicy", "networkpolicies", true, &["netpol"], &[], true),
        (NET, "v1", "ServiceCIDR", "servicecidrs", false, &[], &["status"], false),
        ("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", false, &[], &[], false),
        ("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", true, &[], &[], false),
        (RES, "v1", "DeviceClass", "deviceclasses", false, &[], &[], true),
        (RES, "v1", "ResourceClaim", "resourceclaims", true, &[], &["status"], true),
        (RES, "v1", "ResourceClaimTemplate", "resourceclaimtemplates", true, &[], &[], true),
        (RES, "v1", "ResourceSlice", "resourceslices", false, &[], &[], true),
        (FC, "v1", "FlowSchema", "flowschemas", false, &[], &["status"], true),
        (FC, "v1", "PriorityLevelConfiguration", "prioritylevelconfigurations", false, &[], &["status"], true),
        ("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", false, &["pc"], &[], false),
        (STOR, "v1", "CSIDriver", "csidrivers", false, &[], &[], false),
        (STOR, "v1", "CSINode", "csinodes", false, &[], &[], false),
        (STOR, "v1", "CSIStorageCapacity", "csistoragecapacities", true, &[], &[], false),
        (STOR, "v1", "StorageClass", "storageclasses", false, &["sc"], &[], false),
        (STOR, "v1", "VolumeAttachment", "volumeattachments", false, &[], &["status"], false),
        (STOR, "v1", "VolumeAttributesClass", "volumeattributesclasses", false, &["vac"], &[], false),
        // Create-only reviews, answered from the authorizer and authenticator.
        (AUTHZ, "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews", true, &[], &[], false),
        (AUTHZ, "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", false, &[], &[], false),
        (AUTHZ, "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", false, &[], &[], false),
        (AUTHZ, "v1", "SubjectAccessReview", "subjectaccessreviews", false, &[], &[], false),
        (AUTHN, "v1", "SelfSubjectReview", "selfsubjectreviews", false, &[], &[], false),
        (AUTHN, "v1", "TokenReview", "tokenreviews", false, &[], &[], false),
    ];
    let mut v: Vec<ResourceType> = table
        .iter()
        .map(|(g, ver, k, p, ns, short, subs, generation)| rt(g, ver, k, p, *ns, short, subs, *generation))
        .collect();
    for r in v.iter_mut() {
        r.create_only = r.group == AUTHZ || r.group == AUTHN;
        r.verbs = match (r.group.as_str(), r.plural.as_str()) {
            (AUTHZ | AUTHN, _) | ("", "bindings") => Some(vec!["create".into()]),
            ("", "componentstatuses") => Some(vec!["get".into(), "list".into()]),
            ("", "namespaces") => {
                Some(["create", "delete", "get", "list", "patch", "update", "watch"].map(String::from).to_vec())
            }
            _ => None,
        };
    }
    let core_events = v.iter().position(|r| r.group.is_empty() && r.plural == "events");
    if let Some(r) = v.iter_mut().find(|r| r.group == "events.k8s.io") {
        r.storage = core_events;
    }
    // autoscaling/v1 HorizontalPodAutoscalers are the v2 objects.
    let hpa_v2 = v.iter().position(|r| r.group == "autoscaling" && r.version == "v2");
    if let Some(r) = v.iter_mut().find(|r| r.group == "autoscaling" && r.version == "v1") {
        r.storage = hpa_v2;
    }
    v
}

/// A stored object as a view type serves it (events.k8s.io/v1 Events from core/v1 ones;
/// autoscaling/v1 HorizontalPodAutoscalers from v2 ones, only relabelled).
pub fn to_view(r: &ResourceType, stored: &Value) -> Value {
    if r.group == "events.k8s.io" {
        return crate::events::to_v1(stored);
    }
    let mut v = stored.clone();
    v["apiVersion"] = json!(r.api_version());
    v
}

/// An object of a view type as its storage keeps it.
pub fn from_view(r: &ResourceType, view: &Value) -> Value {
    if r.group == "events.k8s.io" {
        return crate::events::to_core(view);
    }
    let mut v = view.clone();
    if r.group == "autoscaling" {
        v["apiVersion"] = json!("autoscaling/v2");
    }
    v
}

/// A custom resource type from a CustomResourceDefinition object (first served version).
pub fn from_crd(crd: &Value) -> Option<ResourceType> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str()?;
    let names = &spec["names"];
    let version =
        spec["versions"].as_array()?.iter().find(|v| v["served"].as_bool().unwrap_or(true))?["name"].as_str()?;
    let mut r = rt(
        group,
        version,
        names["kind"].as_str()?,
        names["plural"].as_str()?,
        spec["scope"].as_str() != Some("Cluster"),
        &[],
        &[],
        true,
    );
    r.singular = names["singular"].as_str().map(str::to_string).unwrap_or_else(|| r.kind.to_lowercase());
    r.unconditional_update = false;
    r.create_on_update = false;
    r.short_names = names["shortNames"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    Some(r)
}

/// The verbs a resource serves.
pub fn verbs(r: &ResourceType) -> Vec<String> {
    match &r.verbs {
        Some(v) => v.clone(),
        None => ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
            .map(String::from)
            .to_vec(),
    }
}

/// A subresource's response kind and verbs, as discovery lists them.
fn subresource(r: &ResourceType, sub: &str) -> (String, String, Vec<&'static str>) {
    let (group, version, kind, verbs): (&str, &str, &str, Vec<&'static str>) = match sub {
        "eviction" => ("policy", "v1", "Eviction", vec!["create"]),
        "scale" => ("autoscaling", "v1", "Scale", vec!["get", "patch", "update"]),
        "finalize" => (&r.group, &r.version, &r.kind, vec!["update"]),
        "binding" => ("", "v1", "Binding", vec!["create"]),
        "attach" => ("", "v1", "PodAttachOptions", vec!["create", "get"]),
        "exec" => ("", "v1", "PodExecOptions", vec!["create", "get"]),
        "portforward" => ("", "v1", "PodPortForwardOptions", vec!["create", "get"]),
        "log" => ("", "v1", "Pod", vec!["get"]),
        "token" => ("authentication.k8s.io", "v1", "TokenRequest", vec!["create"]),
        "approval" => (&r.group, &r.version, &r.kind, vec!["get", "patch", "update"]),
        "proxy" => {
            let kind = match r.kind.as_str() {
                "Node" => "NodeProxyOptions",
                "Pod" => "PodProxyOptions",
                _ => "ServiceProxyOptions",
            };
            ("", "v1", kind, vec!["create", "delete", "get", "patch", "update"])
        }
        _ => (&r.group, &r.version, &r.kind, vec!["get", "patch", "update"]),
    };
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    (gv, kind.to_string(), verbs)
}

/// `/api/v1` or `/apis/{group}/{version}`: the APIResourceList (the core one has no apiVersion,
/// as the real server's).
pub fn resource_list(all: &[ResourceType], group: &str, version: &str) -> Option<Value> {
    let rs: Vec<&ResourceType> = all.iter().filter(|r| r.group == group && r.version == version).collect();
    if rs.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for r in &rs {
        let mut o = json!({
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind, "verbs": verbs(r),
        });
        if !r.short_names.is_empty() {
            o["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            o["categories"] = json!(r.categories);
        }
        resources.push(o);
        for sub in &r.subresources {
            let (gv, kind, verbs) = subresource(r, sub);
            let mut o = json!({"name": format!("{}/{sub}", r.plural), "singularName": "", "namespaced": r.namespaced, "kind": kind, "verbs": verbs});
            if gv != r.api_version() {
                let (g, v) = gv.split_once('/').unwrap_or(("", &gv));
                o["group"] = json!(g);
                o["version"] = json!(v);
            }
            resources.push(o);
        }
    }
    resources.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    let mut doc = json!({"kind": "APIResourceList", "groupVersion": gv, "resources": resources});
    if !group.is_empty() {
        doc["apiVersion"] = json!("v1");
    }
    Some(doc)
}

/// The groups and their versions in preference order (the core group first as "").
fn groups(all: &[ResourceType]) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for r in all {
        match groups.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, vs)) if !vs.contains(&r.version) => vs.push(r.version.clone()),
            Some(_) => {}
            None => groups.push((r.group.clone(), vec![r.version.clone()])),
        }
    }
    groups
}

/// Aggregated discovery (apidiscovery.k8s.io/v2 APIGroupDiscoveryList) of `/api` (`core`) or
/// `/apis`, what kubectl asks for first.
pub fn aggregated(all: &[ResourceType], core: bool) -> Value {
    let items: Vec<Value> = groups(all)
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(g, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = all
                        .iter()
                        .filter(|r| r.group == g && &r.version == v)
                        .map(|r| {
                            let mut o = json!({"resource": r.plural,
                                "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                                "singularResource": r.singular, "verbs": verbs(r)});
                            if !r.short_names.is_empty() {
                                o["shortNames"] = json!(r.short_names);
                            }
                            if !r.categories.is_empty() {
                                o["categories"] = json!(r.categories);
                            }
                            let subs: Vec<Value> = r
                                .subresources
                                .iter()
                                .map(|s| {
                                    let (gv, kind, verbs) = subresource(r, s);
                                    let (sg, sv) = gv.split_once('/').unwrap_or(("", &gv));
                                    json!({"subresource": s, "responseKind": {"group": sg, "version": sv, "kind": kind}, "verbs": verbs})
                                })
                                .collect();
                            if !subs.is_empty() {
                                o["subresources"] = Value::Array(subs);
                            }
                            o
                        })
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

/// `/apis`: the APIGroupList (every group but the core one).
pub fn group_list(all: &[ResourceType]) -> Value {
    let groups: Vec<Value> =
        groups(all).iter().filter(|(g, _)| !g.is_empty()).map(|(g, vs)| group_doc(g, vs)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group_doc(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v})).collect();
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": vs, "preferredVersion": vs[0]})
}

pub fn version_doc() -> Value {
    json!({
        "major": "1", "minor": "36", "gitVersion": "v1.36.0", "gitCommit": "kube-sim", "gitTreeState": "clean",
        "buildDate": "2026-08-26T00:00:00Z", "goVersion": "go1.25.0", "compiler": "gc", "platform": "linux/amd64",
        "emulationMajor": "1", "emulationMinor": "36", "minCompatibilityMajor": "1", "minCompatibilityMinor": "35"
    })
}

pub fn core_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]})
}

/// `/openapi/v3`: the index of per-group-version documents.
pub fn openapi_index(all: &[ResourceType]) -> Value {
    let mut paths = serde_json::Map::new();
    for r in all {
        let gv =
            if r.group.is_empty() { format!("api/{}", r.version) } else { format!("apis/{}/{}", r.group, r.version) };
        paths.insert(gv.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash=kube-sim")}));
    }
    json!({"paths": paths})
}

/// `/openapi/v3/api/v1` etc.: a minimal document. It declares, for each resource, the
/// operations with their group-version-kind and the `fieldValidation` parameter, which is
/// what kubectl checks before it relies on server-side field validation. No schemas.
pub fn openapi_doc(all: &[ResourceType], group: &str, version: &str) -> Option<Value> {
    let rs: Vec<&ResourceType> = all.iter().filter(|r| r.group == group && r.version == version).collect();
    if rs.is_empty() {
        return None;
    }
    let mut paths = serde_json::Map::new();
    let base = if group.is_empty() { format!("/api/{version}") } else { format!("/apis/{group}/{version}") };
    for r in rs {
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let op = |verb: &str| {
            json!({"operationId": format!("{verb}{}", r.kind), "x-kubernetes-action": verb, "x-kubernetes-group-version-kind": gvk,
                "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                               {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                               {"name": "fieldManager", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "OK"}}})
        };
        let item = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{base}/{}/{{name}}", r.plural)
        };
        let coll = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{base}/{}", r.plural)
        };
        paths.insert(item, json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}));
        paths.insert(coll, json!({"get": op("list"), "post": op("post")}));
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.36.0"}, "paths": paths, "components": {"schemas": {}}}),
    )
}
