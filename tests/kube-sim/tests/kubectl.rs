//! The real kubectl against kube-sim; every result is checked through the in-process API.
//! Skipped (with a message) when kubectl is missing, unless MESHKEEPER_REQUIRE_TOOLS is set.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use kube_sim::{Sim, SimOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BOUND: Duration = Duration::from_secs(20);

fn kubectl_path() -> Option<PathBuf> {
    let p = std::env::var_os("KUBECTL").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/kubectl"));
    if p.exists() {
        return Some(p);
    }
    if std::env::var_os("MESHKEEPER_REQUIRE_TOOLS").is_some() {
        panic!("kubectl not found at {} and MESHKEEPER_REQUIRE_TOOLS is set", p.display());
    }
    eprintln!("SKIP: kubectl not found at {} (set MESHKEEPER_REQUIRE_TOOLS to make this a failure)", p.display());
    None
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn kubectl(bin: &Path, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Out {
    let mut cmd = Command::new(bin);
    cmd.arg("--kubeconfig").arg(kubeconfig).args(args);
    cmd.env("HOME", kubeconfig.parent().unwrap_or(Path::new("/tmp"))); // a private discovery cache
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn kubectl");
    if let Some(text) = stdin {
        use tokio::io::AsyncWriteExt;
        let mut s = child.stdin.take().expect("stdin");
        s.write_all(text.as_bytes()).await.expect("write stdin");
        drop(s);
    }
    let out = tokio::time::timeout(BOUND, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
        .expect("kubectl ran");
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn must(bin: &Path, kc: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let o = kubectl(bin, kc, args, stdin).await;
    assert!(o.ok, "kubectl {args:?} failed:\n{}\n{}", o.stdout, o.stderr);
    o.stdout
}

async fn sim() -> Sim {
    Sim::start(SimOptions::default().actors(false)).await.expect("sim starts")
}

#[tokio::test]
async fn get_label_and_patch() {
    let Some(k) = kubectl_path() else { return };
    let sim = sim().await;
    let kc = sim.kubeconfig_path();
    let c = sim.cluster();
    c.create("v1", "namespaces", "", json!({"metadata": {"name": "x"}})).unwrap();
    c.create(
        "v1",
        "pods",
        "x",
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "i"}]}}),
    )
    .unwrap();
    // get -A -o json
    let out = must(&k, &kc, &["get", "pods", "-A", "-o", "json"], None).await;
    let list: Value = serde_json::from_str(&out).expect("JSON list");
    assert_eq!(list["items"][0]["metadata"]["name"], "p");
    assert_eq!(list["items"][0]["metadata"]["namespace"], "x");
    // plain table output still prints
    let out = must(&k, &kc, &["get", "ns"], None).await;
    assert!(out.contains("kube-system") && out.contains("x "), "{out}");
    // label --overwrite, then remove
    must(&k, &kc, &["label", "ns", "x", "a=b", "--overwrite"], None).await;
    let ns = c.get("v1", "namespaces", "", "x").unwrap();
    assert_eq!(ns["metadata"]["labels"]["a"], "b");
    let managers: Vec<&str> =
        ns["metadata"]["managedFields"].as_array().unwrap().iter().filter_map(|m| m["manager"].as_str()).collect();
    assert!(managers.contains(&"kubectl-label"), "{managers:?}");
    must(&k, &kc, &["label", "ns", "x", "a-"], None).await;
    assert!(c.get("v1", "namespaces", "", "x").unwrap()["metadata"]["labels"]["a"].is_null());
    // the three patch types
    must(&k, &kc, &["patch", "ns", "x", "--type", "merge", "-p", r#"{"metadata":{"labels":{"m":"1"}}}"#], None).await;
    must(&k, &kc, &["patch", "ns", "x", "--type", "strategic", "-p", r#"{"metadata":{"labels":{"s":"1"}}}"#], None)
        .await;
    must(
        &k,
        &kc,
        &["patch", "ns", "x", "--type", "json", "-p", r#"[{"op":"add","path":"/metadata/labels/j","value":"1"}]"#],
        None,
    )
    .await;
    let labels = c.get("v1", "namespaces", "", "x").unwrap()["metadata"]["labels"].clone();
    assert_eq!((labels["m"].as_str(), labels["s"].as_str(), labels["j"].as_str()), (Some("1"), Some("1"), Some("1")));
    // strategic merge on pod containers merges by name
    must(
        &k,
        &kc,
        &["patch", "pod", "p", "-n", "x", "-p", r#"{"spec":{"containers":[{"name":"a","image":"j"}]}}"#],
        None,
    )
    .await;
    let p = c.get("v1", "pods", "x", "p").unwrap();
    assert_eq!(p["spec"]["containers"].as_array().unwrap().len(), 1);
    assert_eq!(p["spec"]["containers"][0]["image"], "j");
    // a typed create (kubectl sends protobuf) works too
    must(&k, &kc, &["create", "namespace", "made-by-kubectl"], None).await;
    assert!(c.get("v1", "namespaces", "", "made-by-kubectl").is_some());
    must(&k, &kc, &["create", "deployment", "web", "-n", "x", "--image=nginx", "--replicas=2", "--port=80"], None)
        .await;
    let d = c.get("apps/v1", "deployments", "x", "web").unwrap();
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0],
        json!({"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "imagePullPolicy": "Always", "resources": {}, "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File"}),
        "the template as sent, with the real server's defaults"
    );
    must(&k, &kc, &["scale", "deployment", "web", "-n", "x", "--replicas=0"], None).await;
    assert_eq!(c.get("apps/v1", "deployments", "x", "web").unwrap()["spec"]["replicas"], 0);
    let err = kubectl(&k, &kc, &["get", "ns", "ghost"], None).await;
    assert!(!err.ok && err.stderr.contains("namespaces \"ghost\" not found"), "{}", err.stderr);
}

#[tokio::test]
async fn server_side_apply_conflict_and_force() {
    let Some(k) = kubectl_path() else { return };
    let sim = sim().await;
    let kc = sim.kubeconfig_path();
    let c = sim.cluster();
    c.create("v1", "namespaces", "", json!({"metadata": {"name": "x"}})).unwrap();
    let cm = |v: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  namespace: x\ndata:\n  k: {v}\n")
    };
    must(&k, &kc, &["apply", "--server-side", "-f", "-"], Some(&cm("one"))).await;
    let got = c.get("v1", "configmaps", "x", "applied").unwrap();
    assert_eq!(got["data"]["k"], "one");
    assert!(
        got["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["manager"] == "kubectl" && m["operation"] == "Apply")
    );
    let o = kubectl(&k, &kc, &["apply", "--server-side", "--field-manager=other", "-f", "-"], Some(&cm("two"))).await;
    assert!(!o.ok, "a conflict fails");
    assert!(o.stderr.contains("conflict with \"kubectl\"") && o.stderr.contains(".data.k"), "{}", o.stderr);
    assert_eq!(c.get("v1", "configmaps", "x", "applied").unwrap()["data"]["k"], "one");
    must(
        &k,
        &kc,
        &["apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "-"],
        Some(&cm("two")),
    )
    .await;
    assert_eq!(c.get("v1", "configmaps", "x", "applied").unwrap()["data"]["k"], "two");
}

#[tokio::test]
async fn get_watch_sees_a_change() {
    let Some(k) = kubectl_path() else { return };
    let sim = sim().await;
    let c = sim.cluster();
    c.create("v1", "namespaces", "", json!({"metadata": {"name": "x"}})).unwrap();
    c.create("v1", "configmaps", "x", json!({"metadata": {"name": "w"}, "data": {"k": "before"}})).unwrap();
    let mut child = Command::new(&k)
        .arg("--kubeconfig")
        .arg(sim.kubeconfig_path())
        .args([
            "get",
            "configmaps",
            "-n",
            "x",
            "--watch",
            "--no-headers",
            "-o",
            "custom-columns=N:.metadata.name,K:.data.k",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn kubectl");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next = async || tokio::time::timeout(BOUND, lines.next_line()).await.expect("line in time").expect("read");
    // the initial list
    loop {
        let l = next().await.expect("kubectl still running");
        if l.contains("before") {
            break;
        }
    }
    c.patch("v1", "configmaps", "x", "w", kube_sim::PatchType::Merge, &json!({"data": {"k": "after"}}), "test")
        .unwrap();
    loop {
        let l = next().await.expect("kubectl still running");
        if l.split_whitespace().collect::<Vec<_>>() == ["w", "after"] {
            break;
        }
    }
    let _ = child.kill().await;
}

#[tokio::test]
async fn delete_namespace_cascades() {
    let Some(k) = kubectl_path() else { return };
    let sim = sim().await;
    let c = sim.cluster();
    c.create("v1", "namespaces", "", json!({"metadata": {"name": "doomed"}})).unwrap();
    c.create("v1", "configmaps", "doomed", json!({"metadata": {"name": "a"}})).unwrap();
    c.create(
        "v1",
        "pods",
        "doomed",
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "i"}]}}),
    )
    .unwrap();
    let out = must(&k, &sim.kubeconfig_path(), &["delete", "namespace", "doomed"], None).await;
    assert!(out.contains("namespace \"doomed\" deleted"), "{out}");
    assert!(c.get("v1", "namespaces", "", "doomed").is_none());
    assert!(c.list("v1", "configmaps", Some("doomed")).is_empty());
    assert!(c.list("v1", "pods", Some("doomed")).is_empty());
}

#[tokio::test]
async fn auth_can_i_under_rbac() {
    let Some(k) = kubectl_path() else { return };
    let sim = Sim::start(SimOptions::default().actors(false).rbac(true)).await.unwrap();
    let admin = sim.kubeconfig_path();
    let out = must(&k, &admin, &["auth", "can-i", "delete", "pods", "-A"], None).await;
    assert_eq!(out.trim(), "yes");
    // a ServiceAccount bound (with kubectl) to a namespaced Role
    let rbac = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: meshkeeper\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: reader\n  namespace: meshkeeper\nrules:\n- apiGroups: [\"\"]\n  resources: [\"pods\"]\n  verbs: [\"get\", \"list\", \"watch\"]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: reader\n  namespace: meshkeeper\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: reader\nsubjects:\n- kind: ServiceAccount\n  name: agent\n  namespace: meshkeeper\n";
    must(&k, &admin, &["apply", "-f", "-"], Some(rbac)).await;
    assert!(sim.cluster().get("rbac.authorization.k8s.io/v1", "rolebindings", "meshkeeper", "reader").is_some());
    let sa = sim.kubeconfig_for_service_account("meshkeeper", "agent").unwrap();
    let no = kubectl(&k, &sa, &["auth", "can-i", "delete", "pods", "-n", "meshkeeper"], None).await;
    assert_eq!(no.stdout.trim(), "no", "{}", no.stderr);
    let yes = kubectl(&k, &sa, &["auth", "can-i", "list", "pods", "-n", "meshkeeper"], None).await;
    assert_eq!(yes.stdout.trim(), "yes", "{}", yes.stderr);
    let other = kubectl(&k, &sa, &["auth", "can-i", "list", "pods", "-n", "default"], None).await;
    assert_eq!(other.stdout.trim(), "no", "{}", other.stderr);
}

#[tokio::test]
async fn rollout_restart_and_status() {
    let Some(k) = kubectl_path() else { return };
    // The deployment controller and kubelet actors run here.
    let sim = Sim::start(SimOptions::default()).await.unwrap();
    let kc = sim.kubeconfig_path();
    let c = sim.cluster();
    c.create("v1", "namespaces", "", serde_json::json!({"metadata": {"name": "shop"}})).unwrap();
    c.create("apps/v1", "deployments", "shop", serde_json::json!({"metadata": {"name": "web"}, "spec": {"replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}}}))
        .unwrap();
    let out = must(&k, &kc, &["-n", "shop", "rollout", "status", "deployment/web", "--timeout=20s"], None).await;
    assert!(out.contains("successfully rolled out"), "{out}");
    let before: Vec<String> = c
        .list("v1", "pods", Some("shop"))
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(before.len(), 2);

    let out = must(&k, &kc, &["-n", "shop", "rollout", "restart", "deployment/web"], None).await;
    assert!(out.contains("restarted"), "{out}");
    let d = c.get("apps/v1", "deployments", "shop", "web").unwrap();
    assert!(d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_string());
    assert_eq!(d["metadata"]["generation"], 2, "a template change bumps the generation");

    let out = must(&k, &kc, &["-n", "shop", "rollout", "status", "deployment/web", "--timeout=20s"], None).await;
    assert!(out.contains("successfully rolled out"), "{out}");
    let after: Vec<String> = c
        .list("v1", "pods", Some("shop"))
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|p| !before.contains(p)), "every pod was replaced: {before:?} -> {after:?}");
    assert_eq!(c.list("apps/v1", "replicasets", Some("shop")).len(), 2, "the old ReplicaSet is kept, scaled to 0");
}
