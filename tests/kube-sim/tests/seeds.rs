//! The seeds a pre-install check starts from: an empty user cluster of the install guide's
//! size, GKE on VMware's own Istio pieces on their own, and the asm-onprem layout built from
//! the same parts.

use kube_sim::{Sim, SimOptions, seed};

fn names(c: &kube_sim::Cluster, api: &str, plural: &str, ns: Option<&str>) -> Vec<String> {
    let mut v: Vec<String> = c
        .list(api, plural, ns)
        .iter()
        .map(|o| match o["metadata"]["namespace"].as_str() {
            Some(ns) => format!("{ns}/{}", o["metadata"]["name"].as_str().unwrap_or_default()),
            None => o["metadata"]["name"].as_str().unwrap_or_default().to_string(),
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn an_empty_guide_sized_cluster_has_four_quarter_nodes_and_nothing_of_istio() {
    let sim = Sim::start(SimOptions::default().actors(false)).await.unwrap();
    let c = sim.cluster();
    seed::guide_sized(&c, 4).unwrap();
    let nodes = c.list("v1", "nodes", None);
    assert_eq!(nodes.len(), 4);
    for n in &nodes {
        assert_eq!(n["status"]["allocatable"]["cpu"], "1");
        assert_eq!(n["status"]["allocatable"]["memory"], "3750M");
        assert_eq!(n["status"]["conditions"][0]["type"], "Ready");
        assert_eq!(n["status"]["conditions"][0]["status"], "True");
        assert!(n["spec"]["unschedulable"].is_null());
    }
    assert_eq!(
        names(&c, "v1", "namespaces", None),
        ["default", "gke-connect", "gke-system", "kube-node-lease", "kube-public", "kube-system"]
    );
    assert!(c.list("apps/v1", "deployments", None).is_empty());
    assert!(c.list("apiextensions.k8s.io/v1", "customresourcedefinitions", None).is_empty());

    seed::gke_istio_pieces(&c).unwrap();
    assert_eq!(
        names(&c, "apps/v1", "deployments", None),
        ["gke-system/istio-ingressgateway", "gke-system/istio-pilot", "kube-system/istio-citadel"]
    );
    assert!(c.get("v1", "namespaces", "", "istio-system").is_none(), "GKE's pieces are not the mesh");
}

#[tokio::test]
async fn three_nodes_and_the_asm_onprem_layout_from_the_same_parts() {
    let sim = Sim::start(SimOptions::default().actors(false)).await.unwrap();
    seed::guide_sized(&sim.cluster(), 3).unwrap();
    assert_eq!(names(&sim.cluster(), "v1", "nodes", None), ["user-node-0", "user-node-1", "user-node-2"]);

    let sim = Sim::start(SimOptions::default().actors(false)).await.unwrap();
    let c = sim.cluster();
    seed::asm_onprem(&c).unwrap();
    assert_eq!(c.count("v1", "nodes"), 4);
    let gke: Vec<String> = names(&c, "apps/v1", "deployments", None)
        .into_iter()
        .filter(|n| n.starts_with("gke-system/") || n.starts_with("kube-system/"))
        .collect();
    assert_eq!(gke, ["gke-system/istio-ingressgateway", "gke-system/istio-pilot", "kube-system/istio-citadel"]);
    assert_eq!(names(&c, "apps/v1", "deployments", Some("istio-system")).len(), 6);
}
