//! Authentication (bearer tokens) and authorization (the RBAC authorizer kept in sync with the
//! Role/ClusterRole/RoleBinding/ClusterRoleBinding objects in the store).

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::rbac::{Attributes, Authorizer, Decision, User};
use crate::store::{Event, Store};

/// The admin's bearer token (user `system:admin`, group `system:masters`).
pub const ADMIN_TOKEN: &str = "kube-sim-admin-token";
const SA_PREFIX: &str = "kube-sim-sa.";
/// Server-URL prefix carrying a token (for kubectl, which sends no token over plain HTTP).
pub const PATH_PREFIX: &str = "/kube-sim-auth/";

/// The bearer token of a ServiceAccount.
pub fn service_account_token(namespace: &str, name: &str) -> String {
    format!("{SA_PREFIX}{namespace}.{name}")
}

pub fn admin() -> User {
    User { name: "system:admin".into(), groups: vec!["system:masters".into(), "system:authenticated".into()] }
}

/// The user a bearer token stands for; None: unknown token (401).
pub fn authenticate(token: &str) -> Option<User> {
    if token == ADMIN_TOKEN {
        return Some(admin());
    }
    let rest = token.strip_prefix(SA_PREFIX)?;
    // Namespaces and ServiceAccount names are DNS labels/subdomains: the first '.' ends the namespace.
    let (ns, name) = rest.split_once('.')?;
    (!ns.is_empty() && !name.is_empty()).then(|| User::service_account(ns, name))
}

pub fn is_superuser(user: &User) -> bool {
    user.groups.iter().any(|g| g == "system:masters")
}

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// The authorizer and the event receiver that keeps it current.
pub struct AuthState {
    pub authorizer: Authorizer,
    rx: broadcast::Receiver<Arc<Event>>,
}

impl AuthState {
    pub fn new(store: &Store) -> AuthState {
        let mut s = AuthState { authorizer: Authorizer::with_bootstrap_policy(), rx: store.events.subscribe() };
        s.rebuild(store);
        s
    }

    fn rebuild(&mut self, store: &Store) {
        self.authorizer = Authorizer::with_bootstrap_policy();
        for plural in ["clusterroles", "clusterrolebindings", "roles", "rolebindings"] {
            if let Some(ti) = store.type_index(RBAC_GROUP, "v1", plural) {
                for (_, s) in store.iter(ti, None, None) {
                    if let Err(e) = self.authorizer.load(&s.parse()) {
                        tracing::warn!(error = %e, "kube-sim: RBAC object not loaded");
                    }
                }
            }
        }
    }

    /// Applies every RBAC change committed since the last call. Called under the store lock
    /// before each authorization, so a binding written by a previous request is always seen.
    pub fn sync(&mut self, store: &Store) {
        loop {
            match self.rx.try_recv() {
                Ok(ev) => {
                    let Some(rt) = store.types.get(ev.resource) else { continue };
                    if rt.group != RBAC_GROUP {
                        continue;
                    }
                    let meta = &ev.object["metadata"];
                    let name = meta["name"].as_str().unwrap_or_default();
                    let ns = meta["namespace"].as_str().filter(|n| !n.is_empty());
                    if ev.kind == "DELETED" {
                        self.authorizer.remove(&rt.kind, ns, name);
                    } else if let Err(e) = self.authorizer.load(&ev.object) {
                        tracing::warn!(error = %e, "kube-sim: RBAC object not loaded");
                    }
                }
                Err(broadcast::error::TryRecvError::Empty) | Err(broadcast::error::TryRecvError::Closed) => return,
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    self.rx = store.events.subscribe();
                    self.rebuild(store);
                    return;
                }
            }
        }
    }

    pub fn allowed(&self, user: &User, attrs: &Attributes) -> bool {
        is_superuser(user) || self.authorizer.authorize(user, attrs) == Decision::Allow
    }
}

/// The real server's 403 message (falls back to our own rendering while the authorizer's is empty).
pub fn forbidden_message(user: &User, attrs: &Attributes) -> String {
    let m = crate::rbac::forbidden_message(user, attrs);
    if !m.is_empty() {
        return m;
    }
    if let Some(path) = &attrs.path {
        return format!("forbidden: User \"{}\" cannot {} path \"{}\"", user.name, attrs.verb, path);
    }
    let resource = match &attrs.subresource {
        Some(s) => format!("{}/{}", attrs.resource, s),
        None => attrs.resource.clone(),
    };
    let subject = match &attrs.name {
        Some(n) => format!("{} \"{}\" is forbidden", resource, n),
        None => format!("{resource} is forbidden"),
    };
    let scope = match &attrs.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    format!(
        "{subject}: User \"{}\" cannot {} resource \"{}\" in API group \"{}\" {scope}",
        user.name, attrs.verb, resource, attrs.api_group
    )
}

/// The 403 Status body.
pub fn forbidden_status(user: &User, attrs: &Attributes) -> Value {
    let mut details = json!({"group": attrs.api_group, "kind": attrs.resource});
    if let Some(n) = &attrs.name {
        details["name"] = json!(n);
    }
    if attrs.path.is_some() {
        details = json!({});
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": forbidden_message(user, attrs), "reason": "Forbidden", "details": details, "code": 403})
}

pub fn unauthorized_status() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized",
        "reason": "Unauthorized", "code": 401})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let t = service_account_token("meshkeeper", "agent");
        assert_eq!(authenticate(&t), Some(User::service_account("meshkeeper", "agent")));
        assert!(is_superuser(&authenticate(ADMIN_TOKEN).unwrap_or_else(|| User { name: "".into(), groups: vec![] })));
        assert_eq!(authenticate("nope"), None);
        assert_eq!(authenticate("kube-sim-sa.x"), None);
    }

    #[test]
    fn fallback_messages() {
        let u = User::service_account("m", "m");
        let a = Attributes {
            verb: "patch".into(),
            resource: "namespaces".into(),
            name: Some("foo".into()),
            ..Default::default()
        };
        assert_eq!(
            forbidden_message(&u, &a),
            "namespaces \"foo\" is forbidden: User \"system:serviceaccount:m:m\" cannot patch resource \"namespaces\" in API group \"\" at the cluster scope"
        );
        let a = Attributes {
            verb: "list".into(),
            resource: "pods".into(),
            namespace: Some("default".into()),
            ..Default::default()
        };
        assert_eq!(
            forbidden_message(&u, &a),
            "pods is forbidden: User \"system:serviceaccount:m:m\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        );
    }
}
