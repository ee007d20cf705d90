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
    }
}

/// The built-in resources.
pub fn builtin() -> Vec<ResourceType> {
    let mut v = vec![
        rt("", "v1", "Namespace", "namespaces", false, &["ns"], &["status", "finalize"], false),
        rt("", "v1", "Pod", "pods", true, &["po"], &["status", "eviction"], false),
        rt("", "v1", "Service", "services", true, &["svc"], &["status"], false),
        rt("", "v1", "Endpoints", "endpoints", true, &["ep"], &[], false),
        rt("", "v1", "Node", "nodes", false, &["no"], &["status"], false),
        rt("", "v1", "ConfigMap", "configmaps", true, &["cm"], &[], false),
        rt("", "v1", "Secret", "secrets", true, &[], &[], false),
        rt("", "v1", "ServiceAccount", "serviceaccounts", true, &["sa"], &[], false),
        rt("", "v1", "Event", "events", true, &["ev"], &[], false),
        rt("events.k8s.io", "v1", "Event", "events", true, &["ev"], &[], false),
        rt("apps", "v1", "Deployment", "deployments", true, &["deploy"], &["status", "scale"], true),
        rt("apps", "v1", "ReplicaSet", "replicasets", true, &["rs"], &["status", "scale"], true),
        rt("apps", "v1", "StatefulSet", "statefulsets", true, &["sts"], &["status", "scale"], true),
        rt("apps", "v1", "DaemonSet", "daemonsets", true, &["ds"], &["status"], true),
        rt("apps", "v1", "ControllerRevision", "controllerrevisions", true, &[], &[], false),
        rt("batch", "v1", "Job", "jobs", true, &[], &["status"], true),
        rt("batch", "v1", "CronJob", "cronjobs", true, &["cj"], &["status"], true),
        rt("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true, &["pdb"], &["status"], true),
        rt(
            "admissionregistration.k8s.io",
            "v1",
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
            false,
            &[],
            &[],
            true,
        ),
        rt("coordination.k8s.io", "v1", "Lease", "leases", true, &[], &[], false),
        rt("rbac.authorization.k8s.io", "v1", "Role", "roles", true, &[], &[], false),
        rt("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false, &[], &[], false),
        rt("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true, &[], &[], false),
        rt("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false, &[], &[], false),
        rt(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            &["crd"],
            &["status"],
            true,
        ),
    ];
    for (kind, plural) in
        [("SelfSubjectAccessReview", "selfsubjectaccessreviews"), ("SelfSubjectRulesReview", "selfsubjectrulesreviews")]
    {
        let mut r = rt("authorization.k8s.io", "v1", kind, plural, false, &[], &[], false);
        r.create_only = true;
        v.push(r);
    }
    let core_events = v.iter().position(|r| r.group.is_empty() && r.plural == "events");
    if let Some(r) = v.iter_mut().find(|r| r.group == "events.k8s.io") {
        r.storage = core_events;
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

fn verbs(r: &ResourceType) -> Vec<&'static str> {
    if r.create_only {
        vec!["create"]
    } else {
        vec!["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
    }
}

/// `/api/v1` or `/apis/{group}/{version}`: the APIResourceList.
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
        resources.push(o);
        for sub in &r.subresources {
            let (kind, verbs) = match sub.as_str() {
                "eviction" => ("Eviction", vec!["create"]),
                "scale" => ("Scale", vec!["get", "patch", "update"]),
                "finalize" => (r.kind.as_str(), vec!["update"]),
                _ => (r.kind.as_str(), vec!["get", "patch", "update"]),
            };
            resources.push(json!({"name": format!("{}/{sub}", r.plural), "singularName": "", "namespaced": r.namespaced, "kind": kind, "verbs": verbs}));
        }
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}))
}

/// `/apis`: the APIGroupList (every group but the core one).
pub fn group_list(all: &[ResourceType]) -> Value {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for r in all.iter().filter(|r| !r.group.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, vs)) if !vs.contains(&r.version) => vs.push(r.version.clone()),
            Some(_) => {}
            None => groups.push((r.group.clone(), vec![r.version.clone()])),
        }
    }
    let groups: Vec<Value> = groups.iter().map(|(g, vs)| group_doc(g, vs)).collect();
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
