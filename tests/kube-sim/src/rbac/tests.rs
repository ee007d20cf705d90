use super::*;

fn attrs(
    verb: &str,
    group: &str,
    resource: &str,
    sub: Option<&str>,
    ns: Option<&str>,
    name: Option<&str>,
) -> Attributes {
    Attributes {
        verb: verb.into(),
        api_group: group.into(),
        resource: resource.into(),
        subresource: sub.map(str::to_string),
        namespace: ns.map(str::to_string),
        name: name.map(str::to_string),
        path: None,
    }
}

fn path(verb: &str, p: &str) -> Attributes {
    Attributes { verb: verb.into(), path: Some(p.into()), ..Default::default() }
}

/// The shape of meshkeeper's chart RBAC.
fn chart() -> Authorizer {
    let mut a = Authorizer::with_bootstrap_policy();
    for obj in [
        json!({"kind": "ClusterRole", "metadata": {"name": "mk"}, "rules": [
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch", "patch"]},
            {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
            {"apiGroups": ["authentication.istio.io"], "resources": ["meshpolicies"], "resourceNames": ["default"], "verbs": ["get"]}]}),
        json!({"kind": "ClusterRoleBinding", "metadata": {"name": "mk"}, "roleRef": {"kind": "ClusterRole", "name": "mk"},
               "subjects": [{"kind": "ServiceAccount", "name": "meshkeeper", "namespace": "meshkeeper"}]}),
        json!({"kind": "Role", "metadata": {"name": "mk", "namespace": "meshkeeper"}, "rules": [
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["meshkeeper"], "verbs": ["get", "patch"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]}]}),
        json!({"kind": "RoleBinding", "metadata": {"name": "mk", "namespace": "meshkeeper"}, "roleRef": {"kind": "Role", "name": "mk"},
               "subjects": [{"kind": "ServiceAccount", "name": "meshkeeper"}]}),
    ] {
        a.load(&obj).unwrap();
    }
    a
}

#[test]
fn decisions() {
    let a = chart();
    let sa = User::service_account("meshkeeper", "meshkeeper");
    let other = User::service_account("default", "app");
    let admin = User { name: "admin".into(), groups: vec!["system:masters".into()] };
    use Decision::*;
    let cases = [
        ("list namespaces", &sa, attrs("list", "", "namespaces", None, None, None), Allow),
        ("patch a namespace", &sa, attrs("patch", "", "namespaces", None, None, Some("shop")), Allow),
        ("delete a namespace", &sa, attrs("delete", "", "namespaces", None, None, Some("shop")), Deny),
        ("namespace status", &sa, attrs("patch", "", "namespaces", Some("status"), None, Some("shop")), Deny),
        ("events in any namespace", &sa, attrs("create", "events.k8s.io", "events", None, Some("shop"), None), Allow),
        ("core events not granted", &sa, attrs("create", "", "events", None, Some("shop"), None), Deny),
        (
            "named meshpolicy",
            &sa,
            attrs("get", "authentication.istio.io", "meshpolicies", None, None, Some("default")),
            Allow,
        ),
        ("other meshpolicy", &sa, attrs("get", "authentication.istio.io", "meshpolicies", None, None, Some("x")), Deny),
        (
            "list with resourceNames never matches",
            &sa,
            attrs("list", "authentication.istio.io", "meshpolicies", None, None, None),
            Deny,
        ),
        (
            "lease by name in its namespace",
            &sa,
            attrs("patch", "coordination.k8s.io", "leases", None, Some("meshkeeper"), Some("meshkeeper")),
            Allow,
        ),
        (
            "another lease",
            &sa,
            attrs("patch", "coordination.k8s.io", "leases", None, Some("meshkeeper"), Some("x")),
            Deny,
        ),
        (
            "lease in another namespace",
            &sa,
            attrs("get", "coordination.k8s.io", "leases", None, Some("default"), Some("meshkeeper")),
            Deny,
        ),
        (
            "create a lease",
            &sa,
            attrs("create", "coordination.k8s.io", "leases", None, Some("meshkeeper"), None),
            Allow,
        ),
        ("another SA", &other, attrs("list", "", "namespaces", None, None, None), Deny),
        ("superuser", &admin, attrs("delete", "", "nodes", None, None, Some("n")), Allow),
        ("discovery", &sa, path("get", "/apis/apps/v1"), Allow),
        ("version", &sa, path("get", "/version"), Allow),
        ("metrics path", &sa, path("get", "/metrics"), Deny),
        (
            "self access review",
            &sa,
            attrs("create", "authorization.k8s.io", "selfsubjectaccessreviews", None, None, None),
            Allow,
        ),
    ];
    for (what, user, at, want) in cases {
        assert_eq!(a.authorize(user, &at), want, "{what}");
    }
}

#[test]
fn wildcards_subresources_aggregation_and_rolebindings_to_clusterroles() {
    let mut a = Authorizer::with_bootstrap_policy();
    a.load(&json!({"kind": "List", "items": [
        {"kind": "ClusterRole", "metadata": {"name": "agg"}, "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
         "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg": "yes"}}]}},
        {"kind": "ClusterRole", "metadata": {"name": "part", "labels": {"agg": "yes"}},
         "rules": [{"apiGroups": ["apps"], "resources": ["deployments/scale", "deployments/*"], "verbs": ["*"]}]},
        {"kind": "ClusterRole", "metadata": {"name": "mid", "labels": {"agg": "yes"}}, "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"leaf": "yes"}}]}},
        {"kind": "ClusterRole", "metadata": {"name": "leaf", "labels": {"leaf": "yes"}}, "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]},
        {"kind": "ClusterRole", "metadata": {"name": "evict"}, "rules": [{"apiGroups": [""], "resources": ["*/eviction"], "verbs": ["create"]}]},
        {"kind": "RoleBinding", "metadata": {"name": "b", "namespace": "team"}, "roleRef": {"kind": "ClusterRole", "name": "agg"}, "subjects": [{"kind": "Group", "name": "devs"}]},
        {"kind": "ClusterRoleBinding", "metadata": {"name": "e"}, "roleRef": {"kind": "ClusterRole", "name": "evict"}, "subjects": [{"kind": "User", "name": "jane"}]},
        {"kind": "ClusterRoleBinding", "metadata": {"name": "nobody"}, "roleRef": {"kind": "ClusterRole", "name": "leaf"}, "subjects": [{"kind": "ServiceAccount", "name": "default"}]}
    ]}))
    .unwrap();
    let dev = User { name: "bob".into(), groups: vec!["devs".into(), "system:authenticated".into()] };
    let jane = User { name: "jane".into(), groups: vec![] };
    fn allow(a: &Authorizer, u: &User, at: Attributes) -> bool {
        a.authorize(u, &at) == Decision::Allow
    }
    assert!(allow(&a, &dev, attrs("patch", "apps", "deployments", Some("scale"), Some("team"), Some("d"))));
    assert!(!allow(&a, &dev, attrs("patch", "apps", "deployments", None, Some("team"), Some("d"))));
    assert!(
        !allow(&a, &dev, attrs("patch", "apps", "deployments", Some("status"), Some("team"), Some("d"))),
        "`deployments/*` is no wildcard in real RBAC"
    );
    assert!(
        !allow(&a, &dev, attrs("patch", "apps", "deployments", Some("scale"), Some("other"), Some("d"))),
        "a RoleBinding grants its namespace only"
    );
    assert!(
        !allow(&a, &dev, attrs("get", "", "secrets", None, Some("team"), Some("s"))),
        "an aggregated role's own rules are replaced"
    );
    assert!(allow(&a, &dev, attrs("list", "", "configmaps", None, Some("team"), None)), "aggregation is transitive");
    let default_sa = User::service_account("default", "default");
    assert!(
        !allow(&a, &default_sa, attrs("list", "", "configmaps", None, Some("x"), None)),
        "a namespace-less SA subject in a ClusterRoleBinding matches no one"
    );
    assert!(allow(&a, &default_sa, path("get", "/.well-known/openid-configuration")));
    assert!(allow(&a, &jane, attrs("create", "", "pods", Some("eviction"), Some("x"), Some("p"))));
    a.remove("ClusterRoleBinding", None, "e");
    assert!(!allow(&a, &jane, attrs("create", "", "pods", Some("eviction"), Some("x"), Some("p"))));
    assert!(!a.rules_for(&dev, "team").is_empty());
}

#[test]
fn forbidden_messages_match_the_api_server() {
    let sa = User::service_account("meshkeeper", "meshkeeper");
    let cases = [
        (
            attrs("patch", "", "namespaces", None, None, Some("foo")),
            "namespaces \"foo\" is forbidden: User \"system:serviceaccount:meshkeeper:meshkeeper\" cannot patch resource \"namespaces\" in API group \"\" at the cluster scope",
        ),
        (
            attrs("list", "", "pods", None, Some("x"), None),
            "pods is forbidden: User \"system:serviceaccount:meshkeeper:meshkeeper\" cannot list resource \"pods\" in API group \"\" in the namespace \"x\"",
        ),
        (
            attrs("patch", "apps", "deployments", None, Some("ns"), Some("web")),
            "deployments.apps \"web\" is forbidden: User \"system:serviceaccount:meshkeeper:meshkeeper\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"ns\"",
        ),
        (
            attrs("create", "", "pods", Some("eviction"), Some("ns"), Some("p")),
            "pods \"p\" is forbidden: User \"system:serviceaccount:meshkeeper:meshkeeper\" cannot create resource \"pods/eviction\" in API group \"\" in the namespace \"ns\"",
        ),
        (
            path("get", "/metrics"),
            "forbidden: User \"system:serviceaccount:meshkeeper:meshkeeper\" cannot get path \"/metrics\"",
        ),
    ];
    for (at, want) in cases {
        assert_eq!(forbidden_message(&sa, &at), want);
    }
    let st = forbidden_status(&sa, &attrs("get", "apps", "deployments", None, Some("ns"), Some("web")));
    assert_eq!(
        (st["code"].as_i64(), st["reason"].as_str(), st["details"]["group"].as_str()),
        (Some(403), Some("Forbidden"), Some("apps"))
    );
}

#[test]
fn bad_objects_are_errors_not_panics() {
    let mut a = Authorizer::default();
    for bad in [
        json!({}),
        json!({"kind": "Role"}),
        json!({"kind": "Role", "metadata": {"name": "r"}, "rules": "x"}),
        json!({"kind": "Role", "metadata": {"name": "r"}, "rules": [{"verbs": [1]}]}),
        json!({"kind": "RoleBinding", "metadata": {"name": "b"}}),
        json!({"kind": "RoleBinding", "metadata": {"name": "b"}, "roleRef": {"kind": "Pod", "name": "x"}}),
        json!({"kind": "ClusterRoleBinding", "metadata": {"name": "b"}, "roleRef": {"kind": "Role", "name": "x"}}),
        json!({"kind": "List"}),
        json!({"kind": "ClusterRole", "metadata": {"name": "c"}, "aggregationRule": {"clusterRoleSelectors": "x"}}),
        json!({"kind": "Pod", "metadata": {"name": "p"}}),
    ] {
        assert!(a.load(&bad).is_err(), "{bad}");
    }
}
