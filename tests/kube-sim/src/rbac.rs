//! The RBAC authorizer, over plain JSON Role/ClusterRole/RoleBinding/ClusterRoleBinding
//! objects, deciding as Kubernetes' RBAC authorizer does: a request is allowed when any rule
//! of any role bound to the user (or one of its groups) matches it; there are no denies.
//!
//! Simpler than the real one: ClusterRole aggregation selectors support matchLabels and
//! In/NotIn/Exists/DoesNotExist; escalation checks on writing RBAC objects are not enforced.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// Who makes a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// e.g. `system:serviceaccount:meshkeeper:meshkeeper`
    pub name: String,
    /// e.g. `system:serviceaccounts`, `system:serviceaccounts:meshkeeper`, `system:authenticated`
    pub groups: Vec<String>,
}

impl User {
    /// The user a ServiceAccount token authenticates as, with the groups Kubernetes gives it.
    pub fn service_account(namespace: &str, name: &str) -> User {
        User {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }
}

/// What a request asks to do (the authorizer's attributes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    pub verb: String,
    /// "" for the core group
    pub api_group: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// For non-resource requests (`/version`, `/api`, ...): the path; resource fields are empty.
    pub path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
}

/// One rule of a SelfSubjectRulesReview answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuleSummary {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

#[derive(Debug, Clone, Default)]
struct ClusterRole {
    rules: Vec<RuleSummary>,
    labels: BTreeMap<String, String>,
    /// Label selectors (matchLabels, matchExpressions) of an aggregationRule.
    aggregation: Option<Vec<Value>>,
}

#[derive(Debug, Clone)]
struct Binding {
    /// ("Role" | "ClusterRole", name)
    role_ref: (String, String),
    /// (kind, name, namespace)
    subjects: Vec<(String, String, Option<String>)>,
}

#[derive(Debug, Clone, Default)]
pub struct Authorizer {
    roles: BTreeMap<(String, String), Vec<RuleSummary>>,
    cluster_roles: BTreeMap<String, ClusterRole>,
    role_bindings: BTreeMap<(String, String), Binding>,
    cluster_role_bindings: BTreeMap<String, Binding>,
}

fn strings(v: &Value, field: &str, what: &str) -> Result<Vec<String>, String> {
    match &v[field] {
        Value::Null => Ok(Vec::new()),
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map(str::to_string).ok_or_else(|| format!("{what}.{field}: {x} is not a string")))
            .collect(),
        other => Err(format!("{what}.{field}: {other} is not a list")),
    }
}

fn parse_rules(obj: &Value, what: &str) -> Result<Vec<RuleSummary>, String> {
    match &obj["rules"] {
        Value::Null => Ok(Vec::new()),
        Value::Array(rules) => rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let w = format!("{what}.rules[{i}]");
                if !r.is_object() {
                    return Err(format!("{w}: not an object"));
                }
                Ok(RuleSummary {
                    verbs: strings(r, "verbs", &w)?,
                    api_groups: strings(r, "apiGroups", &w)?,
                    resources: strings(r, "resources", &w)?,
                    resource_names: strings(r, "resourceNames", &w)?,
                    non_resource_urls: strings(r, "nonResourceURLs", &w)?,
                })
            })
            .collect(),
        other => Err(format!("{what}.rules: {other} is not a list")),
    }
}

fn name_of(obj: &Value, kind: &str) -> Result<String, String> {
    obj["metadata"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .ok_or_else(|| format!("{kind}: metadata.name is required"))
}

fn parse_binding(obj: &Value, kind: &str) -> Result<Binding, String> {
    let rr = &obj["roleRef"];
    let (Some(rk), Some(rn)) = (rr["kind"].as_str(), rr["name"].as_str()) else {
        return Err(format!("{kind}: roleRef.kind and roleRef.name are required"));
    };
    if rk != "Role" && rk != "ClusterRole" {
        return Err(format!("{kind}: roleRef.kind {rk:?} is not Role or ClusterRole"));
    }
    let subjects = match &obj["subjects"] {
        Value::Null => Vec::new(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (Some(k), Some(n)) = (s["kind"].as_str(), s["name"].as_str()) else {
                    return Err(format!("{kind}: subjects[{i}] needs kind and name"));
                };
                Ok((k.to_string(), n.to_string(), s["namespace"].as_str().map(str::to_string)))
            })
            .collect::<Result<_, _>>()?,
        other => return Err(format!("{kind}: subjects: {other} is not a list")),
    };
    Ok(Binding { role_ref: (rk.into(), rn.into()), subjects })
}

fn selector_matches(sel: &Value, labels: &BTreeMap<String, String>) -> bool {
    let ml = sel["matchLabels"]
        .as_object()
        .is_none_or(|m| m.iter().all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str()));
    let me = sel["matchExpressions"].as_array().is_none_or(|es| {
        es.iter().all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let vals: Vec<&str> =
                e["values"].as_array().map(|v| v.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            match e["operator"].as_str() {
                Some("In") => labels.get(key).is_some_and(|v| vals.contains(&v.as_str())),
                Some("NotIn") => labels.get(key).is_none_or(|v| !vals.contains(&v.as_str())),
                Some("Exists") => labels.contains_key(key),
                Some("DoesNotExist") => !labels.contains_key(key),
                _ => false,
            }
        })
    });
    ml && me
}

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], urls: &[&str]) -> RuleSummary {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
    RuleSummary {
        verbs: s(verbs),
        api_groups: s(groups),
        resources: s(resources),
        resource_names: vec![],
        non_resource_urls: s(urls),
    }
}

fn matches_rule(r: &RuleSummary, a: &Attributes) -> bool {
    let verb_ok = r.verbs.iter().any(|v| v == "*" || *v == a.verb);
    if !verb_ok {
        return false;
    }
    if let Some(path) = &a.path {
        return r
            .non_resource_urls
            .iter()
            .any(|u| u == "*" || u == path || u.strip_suffix('*').is_some_and(|p| path.starts_with(p)));
    }
    if !r.api_groups.iter().any(|g| g == "*" || *g == a.api_group) {
        return false;
    }
    let full = match &a.subresource {
        Some(s) => format!("{}/{s}", a.resource),
        None => a.resource.clone(),
    };
    // Only `*` and `*/<subresource>` are wildcards (`deployments/*` matches nothing, as in
    // the real authorizer).
    let res_ok = r
        .resources
        .iter()
        .any(|res| res == "*" || *res == full || a.subresource.as_ref().is_some_and(|s| res == &format!("*/{s}")));
    if !res_ok {
        return false;
    }
    r.resource_names.is_empty() || a.name.as_ref().is_some_and(|n| r.resource_names.contains(n))
}

impl Authorizer {
    /// An authorizer holding only the bootstrap policy every cluster has
    /// (system:discovery, system:basic-user, system:public-info-viewer).
    pub fn with_bootstrap_policy() -> Self {
        let mut a = Authorizer::default();
        let discovery = [
            "/api",
            "/api/*",
            "/apis",
            "/apis/*",
            "/healthz",
            "/livez",
            "/openapi",
            "/openapi/*",
            "/readyz",
            "/version",
            "/version/",
        ];
        let public = ["/healthz", "/livez", "/readyz", "/version", "/version/"];
        let issuer = [
            "/.well-known/openid-configuration",
            "/.well-known/openid-configuration/",
            "/openid/v1/jwks",
            "/openid/v1/jwks/",
        ];
        for (name, rules) in [
            ("system:discovery", vec![rule(&["get"], &[], &[], &discovery)]),
            (
                "system:basic-user",
                vec![
                    rule(
                        &["create"],
                        &["authorization.k8s.io"],
                        &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                        &[],
                    ),
                    rule(&["create"], &["authentication.k8s.io"], &["selfsubjectreviews"], &[]),
                ],
            ),
            ("system:public-info-viewer", vec![rule(&["get"], &[], &[], &public)]),
            ("system:service-account-issuer-discovery", vec![rule(&["get"], &[], &[], &issuer)]),
        ] {
            a.cluster_roles.insert(name.into(), ClusterRole { rules, ..Default::default() });
            let mut subjects = vec![("Group".to_string(), "system:authenticated".to_string(), None)];
            if name == "system:public-info-viewer" {
                subjects.push(("Group".into(), "system:unauthenticated".into(), None));
            }
            if name == "system:service-account-issuer-discovery" {
                subjects = vec![("Group".into(), "system:serviceaccounts".into(), None)];
            }
            a.cluster_role_bindings
                .insert(name.into(), Binding { role_ref: ("ClusterRole".into(), name.into()), subjects });
        }
        a
    }

    /// Adds or replaces one object (by kind, namespace, name); a `List` adds each item.
    pub fn load(&mut self, obj: &Value) -> Result<(), String> {
        let kind = obj["kind"].as_str().ok_or("kind is required")?;
        if kind == "List" || kind.ends_with("List") {
            for item in obj["items"].as_array().ok_or(format!("{kind}: items is required"))? {
                self.load(item)?;
            }
            return Ok(());
        }
        let name = name_of(obj, kind)?;
        let ns = obj["metadata"]["namespace"].as_str().unwrap_or("default").to_string();
        match kind {
            "Role" => {
                self.roles.insert((ns, name), parse_rules(obj, kind)?);
            }
            "ClusterRole" => {
                let labels = obj["metadata"]["labels"]
                    .as_object()
                    .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect())
                    .unwrap_or_default();
                let aggregation = match &obj["aggregationRule"] {
                    Value::Null => None,
                    rule => match &rule["clusterRoleSelectors"] {
                        Value::Array(s) if s.iter().all(Value::is_object) => Some(s.clone()),
                        Value::Null => Some(Vec::new()),
                        other => {
                            return Err(format!(
                                "ClusterRole {name}: aggregationRule.clusterRoleSelectors: {other} is not a list of label selectors"
                            ));
                        }
                    },
                };
                self.cluster_roles.insert(name, ClusterRole { rules: parse_rules(obj, kind)?, labels, aggregation });
            }
            "RoleBinding" => {
                let b = parse_binding(obj, kind)?;
                self.role_bindings.insert((ns, name), b);
            }
            "ClusterRoleBinding" => {
                let b = parse_binding(obj, kind)?;
                if b.role_ref.0 != "ClusterRole" {
                    return Err("ClusterRoleBinding: roleRef.kind must be ClusterRole".into());
                }
                self.cluster_role_bindings.insert(name, b);
            }
            other => return Err(format!("{other} is not an RBAC kind")),
        }
        Ok(())
    }

    /// Removes an object previously loaded.
    pub fn remove(&mut self, kind: &str, namespace: Option<&str>, name: &str) {
        let key = (namespace.unwrap_or("default").to_string(), name.to_string());
        match kind {
            "Role" => {
                self.roles.remove(&key);
            }
            "ClusterRole" => {
                self.cluster_roles.remove(name);
            }
            "RoleBinding" => {
                self.role_bindings.remove(&key);
            }
            "ClusterRoleBinding" => {
                self.cluster_role_bindings.remove(name);
            }
            _ => {}
        }
    }

    /// The rules of a ClusterRole, aggregation included.
    fn cluster_role_rules(&self, name: &str) -> Vec<RuleSummary> {
        self.cluster_role_rules_depth(name, 0)
    }

    /// An aggregated ClusterRole has exactly the union of the roles its selectors match (the
    /// aggregation controller overwrites its own rules), transitively.
    fn cluster_role_rules_depth(&self, name: &str, depth: usize) -> Vec<RuleSummary> {
        let Some(cr) = self.cluster_roles.get(name) else { return Vec::new() };
        let Some(selectors) = &cr.aggregation else { return cr.rules.clone() };
        if depth > 8 {
            return Vec::new();
        }
        let mut rules = Vec::new();
        for (other, o) in &self.cluster_roles {
            if other != name && selectors.iter().any(|s| selector_matches(s, &o.labels)) {
                rules.extend(self.cluster_role_rules_depth(other, depth + 1));
            }
        }
        rules
    }

    fn subject_matches(user: &User, s: &(String, String, Option<String>), binding_ns: Option<&str>) -> bool {
        match s.0.as_str() {
            "User" => s.1 == user.name,
            "Group" => user.groups.contains(&s.1),
            // A ServiceAccount subject without a namespace in a ClusterRoleBinding matches no one.
            "ServiceAccount" => match s.2.as_deref().or(binding_ns) {
                Some(ns) => user.name == format!("system:serviceaccount:{ns}:{}", s.1),
                None => false,
            },
            _ => false,
        }
    }

    /// The rules that apply to `user` in `namespace` (cluster-wide ones included).
    fn applicable(&self, user: &User, namespace: Option<&str>) -> Vec<RuleSummary> {
        let mut rules = Vec::new();
        for b in self.cluster_role_bindings.values() {
            if b.subjects.iter().any(|s| Self::subject_matches(user, s, None)) {
                rules.extend(self.cluster_role_rules(&b.role_ref.1));
            }
        }
        if let Some(ns) = namespace {
            for ((bns, _), b) in &self.role_bindings {
                if bns != ns || !b.subjects.iter().any(|s| Self::subject_matches(user, s, Some(bns))) {
                    continue;
                }
                match b.role_ref.0.as_str() {
                    "Role" => {
                        rules.extend(self.roles.get(&(bns.clone(), b.role_ref.1.clone())).cloned().unwrap_or_default())
                    }
                    _ => rules.extend(self.cluster_role_rules(&b.role_ref.1)),
                }
            }
        }
        rules
    }

    pub fn authorize(&self, user: &User, attrs: &Attributes) -> Decision {
        if user.groups.iter().any(|g| g == "system:masters") {
            return Decision::Allow;
        }
        let ns = if attrs.path.is_some() { None } else { attrs.namespace.as_deref() };
        if self.applicable(user, ns).iter().any(|r| matches_rule(r, attrs)) { Decision::Allow } else { Decision::Deny }
    }

    /// The rules that apply to `user` in `namespace` (SelfSubjectRulesReview).
    pub fn rules_for(&self, user: &User, namespace: &str) -> Vec<RuleSummary> {
        let mut rules = Vec::new();
        if user.groups.iter().any(|g| g == "system:masters") {
            // cluster-admin (bound to system:masters), then what every authenticated user gets.
            rules = vec![rule(&["*"], &["*"], &["*"], &[]), rule(&["*"], &[], &[], &["*"])];
        }
        rules.extend(self.applicable(user, Some(namespace)));
        rules
    }
}

/// The message a real API server puts in a 403 Status, e.g.
/// `namespaces "foo" is forbidden: User "system:serviceaccount:m:m" cannot patch resource "namespaces" in API group "" at the cluster scope`.
pub fn forbidden_message(user: &User, attrs: &Attributes) -> String {
    if let Some(path) = &attrs.path {
        return format!("forbidden: User \"{}\" cannot {} path \"{path}\"", user.name, attrs.verb);
    }
    let qualified = if attrs.api_group.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}.{}", attrs.resource, attrs.api_group)
    };
    let resource = match &attrs.subresource {
        Some(s) => format!("{}/{s}", attrs.resource),
        None => attrs.resource.clone(),
    };
    let prefix = match &attrs.name {
        Some(n) => format!("{qualified} \"{n}\" is forbidden"),
        None => format!("{qualified} is forbidden"),
    };
    let scope = match &attrs.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    format!(
        "{prefix}: User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
        user.name, attrs.verb, attrs.api_group
    )
}

/// The whole 403 Status a real server returns.
pub fn forbidden_status(user: &User, attrs: &Attributes) -> Value {
    let mut details = if attrs.path.is_some() { json!({}) } else { json!({"kind": attrs.resource}) };
    if let Some(n) = &attrs.name {
        details["name"] = json!(n);
    }
    if !attrs.api_group.is_empty() {
        details["group"] = json!(attrs.api_group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": forbidden_message(user, attrs), "reason": "Forbidden", "details": details, "code": 403})
}

#[cfg(test)]
mod tests;
