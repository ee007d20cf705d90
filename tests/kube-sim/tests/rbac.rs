//! RBAC over real HTTP: 401 without a known token, 403 with the real Status, allowed once bound.

mod common;

use common::*;
use serde_json::json;

fn sa_token(ns: &str, name: &str) -> String {
    kube_sim::auth::service_account_token(ns, name)
}

#[tokio::test]
async fn unauthenticated_is_401() {
    let sim = kube_sim::Sim::start(kube_sim::SimOptions::default().actors(false).rbac(true)).await.unwrap();
    for token in [None, Some("wrong")] {
        let r = Client::with_token(sim.addr(), token).get("/api/v1/namespaces").await;
        assert_eq!(r.status, 401);
        assert_eq!(
            r.json(),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
        );
    }
    // the admin may do everything
    assert_eq!(Client::new(sim.addr()).get("/api/v1/namespaces").await.status, 200);
}

#[tokio::test]
async fn forbidden_then_allowed_by_a_binding() {
    let sim = kube_sim::Sim::start(kube_sim::SimOptions::default().actors(false).rbac(true)).await.unwrap();
    let admin = Client::new(sim.addr());
    admin.post("/api/v1/namespaces", &ns_obj("meshkeeper")).await;
    let kc = sim.kubeconfig_for_service_account("meshkeeper", "agent").unwrap();
    assert!(std::fs::read_to_string(&kc).unwrap().contains(&sa_token("meshkeeper", "agent")));
    let sa = Client::with_token(sim.addr(), Some(&sa_token("meshkeeper", "agent")));
    let r = sa.patch("/api/v1/namespaces/foo", "application/merge-patch+json", "{}").await;
    assert_eq!(r.status, 403);
    let s = r.json();
    assert_eq!(s["reason"], "Forbidden");
    assert_eq!(s["code"], 403);
    assert_eq!(
        s["message"],
        "namespaces \"foo\" is forbidden: User \"system:serviceaccount:meshkeeper:agent\" cannot patch resource \"namespaces\" in API group \"\" in the namespace \"foo\""
    );
    assert_eq!(s["details"], json!({"name": "foo", "group": "", "kind": "namespaces"}));
    assert!(
        sim.requests().iter().any(|r| r.user == "system:serviceaccount:meshkeeper:agent" && r.code == 403),
        "requests record the user"
    );
    let r = sa.get("/api/v1/namespaces/meshkeeper/pods").await;
    assert_eq!(
        r.json()["message"],
        "pods is forbidden: User \"system:serviceaccount:meshkeeper:agent\" cannot list resource \"pods\" in API group \"\" in the namespace \"meshkeeper\""
    );
    // bind a ClusterRole over HTTP (as `kubectl apply` of a chart would)
    admin
        .post(
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "reader"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]}),
        )
        .await;
    admin
        .post(
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "reader"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "agent", "namespace": "meshkeeper"}]}),
        )
        .await;
    // access reviews answer from the authorizer
    let review = |verb: &str, res: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": verb, "resource": res, "namespace": "meshkeeper"}}})
    };
    assert_eq!(sa.get("/api/v1/namespaces/meshkeeper/pods").await.status, 200);
    let r = sa.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", &review("delete", "pods")).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["status"]["allowed"], false);
    let r = sa.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", &review("list", "pods")).await;
    assert_eq!(r.json()["status"]["allowed"], true);
    // deleting the binding takes the permission away again
    admin.delete("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/reader").await;
    assert_eq!(sa.get("/api/v1/namespaces/meshkeeper/pods").await.status, 403);
}

#[tokio::test]
async fn resource_names_allow_a_list_or_watch_by_metadata_name_field_selector() {
    let sim = kube_sim::Sim::start(kube_sim::SimOptions::default().actors(false).rbac(true)).await.unwrap();
    let admin = Client::new(sim.addr());
    admin.post("/api/v1/namespaces", &ns_obj("istio-system")).await;
    admin
        .post(
            "/apis/rbac.authorization.k8s.io/v1/namespaces/istio-system/roles",
            &json!({"metadata": {"name": "injector-config"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["istio-sidecar-injector"], "verbs": ["get", "list", "watch"]}]}),
        )
        .await;
    admin
        .post(
            "/apis/rbac.authorization.k8s.io/v1/namespaces/istio-system/rolebindings",
            &json!({"metadata": {"name": "injector-config"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "injector-config"},
                "subjects": [{"kind": "ServiceAccount", "name": "agent", "namespace": "meshkeeper"}]}),
        )
        .await;
    let sa = Client::with_token(sim.addr(), Some(&sa_token("meshkeeper", "agent")));
    let base = "/api/v1/namespaces/istio-system/configmaps";
    // As the real RBAC authorizer: a list or watch names the object through metadata.name=X.
    assert_eq!(sa.get(&format!("{base}?fieldSelector=metadata.name%3Distio-sidecar-injector")).await.status, 200);
    assert_eq!(sa.get(&format!("{base}?fieldSelector=metadata.name=istio-sidecar-injector")).await.status, 200);
    assert_eq!(sa.get(&format!("{base}/istio-sidecar-injector")).await.status, 404, "allowed, not there");
    assert_eq!(sa.get(base).await.status, 403, "a list of every ConfigMap is not");
    assert_eq!(sa.get(&format!("{base}?fieldSelector=metadata.name=other")).await.status, 403);
}
