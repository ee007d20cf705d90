//! The RBAC authorizer, over plain JSON Role/ClusterRole/RoleBinding/ClusterRoleBinding objects.
//!
//! INTERFACE STUB — the real implementation replaces this file. Signatures are fixed.
#![allow(dead_code)]

use serde_json::Value;

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
    /// get, list, watch, create, update, patch, delete, deletecollection (or a non-resource verb)
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
pub struct Authorizer {}

impl Authorizer {
    /// An authorizer holding only the bootstrap policy every cluster has
    /// (system:discovery, system:basic-user, system:public-info-viewer bound to system:authenticated).
    pub fn with_bootstrap_policy() -> Self {
        Authorizer {}
    }
    /// Adds or replaces one object (by kind, namespace, name); a `List` adds each item.
    /// Errors name what is wrong with the object.
    pub fn load(&mut self, obj: &Value) -> Result<(), String> {
        let _ = obj;
        Ok(())
    }
    /// Removes an object previously loaded.
    pub fn remove(&mut self, kind: &str, namespace: Option<&str>, name: &str) {
        let _ = (kind, namespace, name);
    }
    pub fn authorize(&self, user: &User, attrs: &Attributes) -> Decision {
        let _ = (user, attrs);
        Decision::Deny
    }
    /// The rules that apply to `user` in `namespace` (SelfSubjectRulesReview).
    pub fn rules_for(&self, user: &User, namespace: &str) -> Vec<RuleSummary> {
        let _ = (user, namespace);
        Vec::new()
    }
}

/// The message a real API server puts in a 403 Status, e.g.
/// `namespaces "foo" is forbidden: User "system:serviceaccount:m:m" cannot patch resource "namespaces" in API group "" at the cluster scope`.
pub fn forbidden_message(user: &User, attrs: &Attributes) -> String {
    let _ = (user, attrs);
    String::new()
}
