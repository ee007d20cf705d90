//! Issue 14 on kube-sim: `meshkeeper check --pre`, the real binary, before an install. kube-sim
//! answers /version with v1.36.0, outside Istio 1.4's range (the default of
//! `precheck.kubernetes_versions`), so the scenarios that should pass configure a range that
//! admits it; one scenario shows the default failing.

use std::process::Output;
use std::time::Duration;

use kube_sim::{Sim, SimOptions, seed};
use serde_json::{Value, json};

use crate::common::*;

/// A range that admits kube-sim's v1.36.0.
const ADMITS_1_36: &str = "precheck:\n  kubernetes_versions: \"1.24-1.36\"\n";

/// Runs `meshkeeper check --pre` with this config against a kubeconfig.
async fn pre(kubeconfig: &std::path::Path, config: &str, extra: &[&str]) -> Output {
    let f = tmp_file(config);
    meshkeeper()
        .args(["check", "--pre", "--config"])
        .arg(f.path())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(extra)
        .output()
        .await
        .expect("run meshkeeper check --pre")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
}

/// Every finding of a JSON report, as (reason, severity).
fn findings(v: &Value) -> Vec<(String, String)> {
    v["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["items"].as_array().into_iter().flatten())
        .filter(|i| i["outcome"] == "finding")
        .map(|i| (i["reason"].as_str().unwrap_or("").to_string(), i["severity"].as_str().unwrap_or("").to_string()))
        .collect()
}

fn no_debug_output(out: &Output) {
    let all = format!("{}{}", text(out), String::from_utf8_lossy(&out.stderr));
    assert!(!all.contains("Status {") && !all.contains("ErrorResponse {"), "Rust Debug output:\n{all}");
}

/// Runs `check --pre`, asserts its exit code and that each of `lines` is a line of the text
/// report.
async fn expect_report(kubeconfig: &std::path::Path, config: &str, code: i32, lines: &[&str]) {
    let out = pre(kubeconfig, config, &[]).await;
    let report = text(&out);
    assert_eq!(out.status.code(), Some(code), "{report}\n{}", String::from_utf8_lossy(&out.stderr));
    for line in lines {
        assert!(report.lines().any(|l| l == *line), "missing {line:?} in:\n{report}");
    }
    no_debug_output(&out);
}

async fn guide_sized_sim(nodes: usize, opts: SimOptions) -> Sim {
    let sim = Sim::start(opts.actors(false)).await.expect("kube-sim");
    seed::guide_sized(&sim.cluster(), nodes).expect("seed");
    sim
}

#[tokio::test]
async fn an_empty_cluster_of_the_guides_size_passes() {
    let sim = guide_sized_sim(4, SimOptions::default()).await;
    expect_report(
        &sim.kubeconfig_path(),
        ADMITS_1_36,
        0,
        &[
            "√ can reach the Kubernetes API",
            "√ Kubernetes version v1.36.0 is one the install supports (1.24-1.36)",
            "√ can create clusterrolebindings.rbac.authorization.k8s.io",
            "√ can create customresourcedefinitions.apiextensions.k8s.io",
            "√ at least 4 schedulable, Ready nodes (4)",
            "√ at least 4 vCPU allocatable on them (4)",
            "√ at least 15 GB of memory allocatable on them (15 GB)",
            "√ istio-system does not exist yet: a clean install",
            "√ no Istio CRDs from another install",
            "i the ingress gateway will need the nodePort table by hand (manual LB mode)",
            "Status check results are √ all checks passed",
        ],
    )
    .await;
    let v = json_of(&pre(&sim.kubeconfig_path(), ADMITS_1_36, &["--output", "json"]).await);
    assert_eq!(v["exit_code"], 0);
    assert_eq!((v["summary"]["errors"].as_u64(), v["summary"]["warnings"].as_u64()), (Some(0), Some(0)));
    assert_eq!(findings(&v), [("GatewayNeedsNodePorts".to_string(), "info".to_string())]);
    // Writes nothing: only reads, access reviews and /version.
    let writes: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| matches!(r.verb.as_str(), "create" | "update" | "patch" | "delete"))
        .filter(|r| r.resource != "selfsubjectaccessreviews")
        .collect();
    assert!(writes.is_empty(), "{writes:?}");

    // With the default range (Istio 1.4's), the same cluster's v1.36 is the one error.
    let out = pre(&sim.kubeconfig_path(), "", &[]).await;
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("× Kubernetes version v1.36.0 is one the install supports (1.13-1.15)"), "{report}");
    assert!(report.contains("expected: 1.13-1.15, actual: v1.36.0"), "{report}");
    assert!(report.ends_with("Status check results are × 1 error(s), 0 warning(s)\n"), "{report}");
}

#[tokio::test]
async fn a_three_node_cluster_fails_naming_the_shortfall() {
    let sim = guide_sized_sim(3, SimOptions::default()).await;
    expect_report(
        &sim.kubeconfig_path(),
        ADMITS_1_36,
        1,
        &[
            "× at least 4 schedulable, Ready nodes",
            "    the user cluster has 3 schedulable, Ready node(s): 1 node(s) short of the install guide's minimum",
            "    expected: >= 4 nodes, actual: 3 schedulable, Ready node(s)",
            "× at least 4 vCPU allocatable on them",
            "    the user cluster has 3 vCPU allocatable: 1 vCPU short of the install guide's minimum",
            "× at least 15 GB of memory allocatable on them",
            "    the user cluster has 11.25 GB allocatable: 3.75 GB short of the install guide's minimum",
            "    hint: add nodes to the user cluster (gkectl update / the node pool's replicas)",
            "Status check results are × 3 error(s), 0 warning(s)",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_cordoned_or_not_ready_node_does_not_count() {
    let sim = guide_sized_sim(4, SimOptions::default()).await;
    let c = sim.cluster();
    if have("kubectl") {
        let (ok, out) = kubectl(&sim, &["cordon", "user-node-3"]).await;
        assert!(ok, "{out}");
    } else {
        let mut node = c.get("v1", "nodes", "", "user-node-3").unwrap();
        node["spec"]["unschedulable"] = json!(true);
        c.upsert("v1", "nodes", "", node).unwrap();
    }
    let report = text(&pre(&sim.kubeconfig_path(), ADMITS_1_36, &[]).await);
    assert!(report.contains("not counted: user-node-3 (cordoned)"), "{report}");
    assert!(report.contains("kubectl uncordon user-node-3"), "{report}");

    // A fifth node, NotReady, does not make up for it.
    let mut node = c.get("v1", "nodes", "", "user-node-0").unwrap();
    node["metadata"] = json!({"name": "user-node-4"});
    node["status"]["conditions"] = json!([{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown"}]);
    c.create("v1", "nodes", "", node).unwrap();
    let out = pre(&sim.kubeconfig_path(), ADMITS_1_36, &["-o", "json"]).await;
    let v = json_of(&out);
    assert_eq!(out.status.code(), Some(1));
    let short: Vec<_> = findings(&v).into_iter().filter(|(r, _)| r == "CapacityBelowMinimum").collect();
    assert_eq!(short.len(), 3, "{v}");
    assert!(text(&out).contains("user-node-4 (NotReady)"), "{}", text(&out));
}

/// A ServiceAccount `default/installer` with a ClusterRole of `rules`, on kube-sim with RBAC on.
fn bind(sim: &Sim, role: &str, rules: Value) {
    let c = sim.cluster();
    c.upsert("rbac.authorization.k8s.io/v1", "clusterroles", "", json!({"metadata": {"name": role}, "rules": rules}))
        .unwrap();
    c.upsert(
        "rbac.authorization.k8s.io/v1",
        "clusterrolebindings",
        "",
        json!({"metadata": {"name": format!("installer-{role}")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": "installer", "namespace": "default"}]}),
    )
    .unwrap();
}

#[tokio::test]
async fn a_user_without_cluster_admin_fails_with_the_clusterrolebinding_hint() {
    let sim = guide_sized_sim(4, SimOptions::default().rbac(true)).await;
    seed::gke_istio_pieces(&sim.cluster()).unwrap();
    let installer = sim.kubeconfig_for_service_account("default", "installer").unwrap();
    let hint = "hint: the guide's step: kubectl create clusterrolebinding cluster-admin-binding --clusterrole=cluster-admin --user=$(gcloud config get-value core/account)";

    // No rights at all: the lists are refused too; that is reported, and the run is not aborted.
    let out = pre(&installer, ADMITS_1_36, &[]).await;
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(report.matches(hint).count(), 4, "{report}");
    assert!(
        report.contains("× can create clusterrolebindings.rbac.authorization.k8s.io\n    you may not create clusterrolebindings.rbac.authorization.k8s.io (the control plane's ClusterRoleBindings)"),
        "{report}"
    );
    assert!(report.contains("- the install guide's cluster size (skipped: cannot list nodes: nodes is forbidden: User \"system:serviceaccount:default:installer\" cannot list resource \"nodes\" in API group \"\" at the cluster scope (403 Forbidden))"), "{report}");
    no_debug_output(&out);

    // A reader (view-like): everything is seen, and the four rights are still missing.
    bind(
        &sim,
        "pre-reader",
        json!([{"apiGroups": ["", "apps", "apiextensions.k8s.io"],
            "resources": ["namespaces", "nodes", "services", "deployments", "customresourcedefinitions"],
            "verbs": ["get", "list", "watch"]}]),
    );
    let out = pre(&installer, ADMITS_1_36, &["--output", "json"]).await;
    let v = json_of(&out);
    assert_eq!(out.status.code(), Some(1), "{v}");
    let denied: Vec<_> = findings(&v).into_iter().filter(|(r, _)| r == "PermissionDenied").collect();
    assert_eq!(denied.len(), 4, "{v}");
    let text_report = text(&pre(&installer, ADMITS_1_36, &[]).await);
    assert!(text_report.contains("√ at least 4 schedulable, Ready nodes (4)"), "{text_report}");
    assert!(!text_report.contains("skipped: cannot list"), "{text_report}");

    // The guide's step (for this ServiceAccount: --serviceaccount instead of --user), run by an admin.
    bind(
        &sim,
        "cluster-admin",
        json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
    );
    let out = pre(&installer, ADMITS_1_36, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("√ can create mutatingwebhookconfigurations.admissionregistration.k8s.io"));
}

#[tokio::test]
async fn the_asm_onprem_control_plane_already_installed_is_an_upgrade() {
    let sim = cluster().await;
    expect_report(
        &sim.kubeconfig_path(),
        ADMITS_1_36,
        0,
        &[
            "‼ istio-system is absent or empty: a clean install",
            "    ASM is already installed: this is an upgrade; see the upgrade guide (istio-system runs ASM 1.4.10-asm.18: istio-citadel, istio-galley, istio-ingressgateway, istio-pilot, istio-sidecar-injector, promsd)",
            "    expected: no control plane in istio-system, actual: ASM 1.4.10-asm.18",
            "√ 1 Istio CRD(s), from the control plane installed",
            "√ no other Service holds one of the guide's nodePorts",
            "Status check results are ‼ 1 warning(s), no errors",
        ],
    )
    .await;

    // One set of checks, two entry points: a node gone is the same item before and after the
    // install (an error before, a warning after).
    sim.cluster().delete("v1", "nodes", "", "user-node-3").unwrap();
    let before = text(&pre(&sim.kubeconfig_path(), ADMITS_1_36, &[]).await);
    let f = tmp_file("");
    let after = meshkeeper()
        .args(["check", "--config"])
        .arg(f.path())
        .arg("--kubeconfig")
        .arg(sim.kubeconfig_path())
        .output()
        .await
        .unwrap();
    let after = text(&after);
    assert!(before.contains("× at least 4 schedulable, Ready nodes\n"), "{before}");
    assert!(after.contains("‼ at least 4 schedulable, Ready nodes\n"), "{after}");
    let msg = "    the user cluster has 3 schedulable, Ready node(s): 1 node(s) short of the install guide's minimum\n";
    assert!(before.contains(msg) && after.contains(msg), "{before}\n{after}");
}

#[tokio::test]
async fn gke_on_vmwares_own_pieces_alone_pass() {
    let sim = guide_sized_sim(4, SimOptions::default()).await;
    seed::gke_istio_pieces(&sim.cluster()).unwrap();
    expect_report(
        &sim.kubeconfig_path(),
        ADMITS_1_36,
        0,
        &[
            "√ istio-system does not exist yet: a clean install",
            "√ GKE on VMware's own Istio pieces are expected, not the mesh: gke-system/istio-ingressgateway (1.3.6-gke.0), gke-system/istio-pilot (1.3.6-gke.0), kube-system/istio-citadel (1.3.6-gke.0)",
            "√ one mesh: no control plane outside istio-system (ignoring gke-system, kube-system)",
            "Status check results are √ all checks passed",
        ],
    )
    .await;

    // Another mesh's istiod (with its CRDs) is reported.
    let c = sim.cluster();
    c.create("v1", "namespaces", "", json!({"metadata": {"name": "mesh-b"}})).unwrap();
    let istiod = json!({"metadata": {"name": "istiod", "labels": {"app": "istiod"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "istiod"}},
                "template": {"metadata": {"labels": {"app": "istiod"}}, "spec": {"containers": [{"name": "discovery", "image": "docker.io/istio/pilot:1.20.1"}]}}}});
    c.create("apps/v1", "deployments", "mesh-b", istiod).unwrap();
    c.register_crd("networking.istio.io", "v1beta1", "VirtualService", "virtualservices", true).unwrap();
    let v = json_of(&pre(&sim.kubeconfig_path(), ADMITS_1_36, &["-o", "json"]).await);
    assert_eq!(
        findings(&v),
        [
            ("SecondControlPlane".to_string(), "error".to_string()),
            ("IstioCrdsFromAnotherInstall".to_string(), "warning".to_string()),
            ("GatewayNeedsNodePorts".to_string(), "info".to_string()),
        ],
        "{v}"
    );
    assert_eq!(v["exit_code"], 1);
}

#[tokio::test]
async fn no_server_exits_2() {
    let sim = guide_sized_sim(4, SimOptions::default()).await;
    sim.stop().await;
    let out = tokio::time::timeout(Duration::from_secs(60), pre(&sim.kubeconfig_path(), ADMITS_1_36, &[]))
        .await
        .expect("gives up within the client timeout");
    let report = text(&out);
    assert_eq!(out.status.code(), Some(2), "{report}");
    assert!(report.contains("× can reach the Kubernetes API"), "{report}");
    assert!(report.ends_with("Status check results are × could not reach the Kubernetes API\n"), "{report}");
    no_debug_output(&out);
}
