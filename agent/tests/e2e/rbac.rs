//! The agent under the Helm chart's own RBAC, on kube-sim with authorization enforced: the
//! rendered ClusterRole/Role are applied, the agent authenticates as the chart's
//! ServiceAccount, and every request it makes must be allowed; a write the chart does not
//! grant is refused with 403 and reported, never retried hot.
//!
//! The whole chart, too: every rendered object (default values, and ci/full-values.yaml with
//! every option on) applied with the real kubectl (server-side apply) is accepted, and the
//! agent, run with the rendered Deployment's arguments, environment and ConfigMap as the
//! chart's ServiceAccount, uses every write its values grant without one denied request; the
//! helm test hook's `meshkeeper check` passes no denial either. kube-sim knows the
//! prometheus-operator kinds (ServiceMonitor, PrometheusRule) as registered CRDs, without their
//! schemas (scripts/check-chart.sh checks the rendered ones against a subset of them).

use std::time::Duration;

use kube_sim::{PatchType, Sim, SimOptions};
use serde_json::{Value, json};

use crate::common::*;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../helm/meshkeeper");
const FULL_VALUES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../helm/meshkeeper/ci/full-values.yaml");

/// `helm template` of the chart (release `meshkeeper` in namespace `meshkeeper`) with extra
/// arguments (`--set ...`, `-f FILE`): the rendered YAML.
async fn helm_template(args: &[&str]) -> String {
    let mut cmd = tokio::process::Command::new("helm");
    cmd.args(["template", "meshkeeper", CHART, "--namespace", "meshkeeper"]).args(args);
    let out = cmd.output().await.expect("helm template");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn objects(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .filter_map(|d| Value::deserialize(d).ok())
        .filter(|v| v.is_object())
        .collect()
}

/// `helm template` of the chart with extra `--set`s, as JSON objects.
async fn render(sets: &[&str]) -> Vec<Value> {
    let args: Vec<&str> = sets.iter().flat_map(|s| ["--set", s]).collect();
    objects(&helm_template(&args).await)
}

use serde::Deserialize;

async fn rbac_cluster(sets: &[&str]) -> (Sim, std::path::PathBuf) {
    rbac_cluster_seeded(sets, false).await
}

/// With `reinjection`: also the re-injection demo's workloads (pods without sidecars).
async fn rbac_cluster_seeded(sets: &[&str], reinjection: bool) -> (Sim, std::path::PathBuf) {
    let sim = Sim::start(SimOptions::default().rbac(true)).await.expect("sim");
    let c = sim.cluster();
    if reinjection {
        kube_sim::seed::asm_onprem_ready(&c).await.expect("seed");
        kube_sim::seed::reinjection_demo(&c).await.expect("demo seed");
    } else {
        kube_sim::seed::asm_onprem(&c).expect("seed");
    }
    c.create("v1", "namespaces", "", json!({"metadata": {"name": "meshkeeper"}})).unwrap();
    for obj in render(sets).await {
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        let kind = kind.as_str();
        let (api, plural) = match kind {
            "ServiceAccount" => ("v1", "serviceaccounts"),
            "ClusterRole" => ("rbac.authorization.k8s.io/v1", "clusterroles"),
            "ClusterRoleBinding" => ("rbac.authorization.k8s.io/v1", "clusterrolebindings"),
            "Role" => ("rbac.authorization.k8s.io/v1", "roles"),
            "RoleBinding" => ("rbac.authorization.k8s.io/v1", "rolebindings"),
            _ => continue,
        };
        let ns = obj["metadata"]["namespace"].as_str().unwrap_or("meshkeeper").to_string();
        let ns = if matches!(kind, "ClusterRole" | "ClusterRoleBinding") { String::new() } else { ns };
        c.create(api, plural, &ns, obj).unwrap_or_else(|e| panic!("{kind}: {}", e.message));
    }
    let kubeconfig = sim.kubeconfig_for_service_account("meshkeeper", "meshkeeper").expect("SA kubeconfig");
    (sim, kubeconfig)
}

async fn start_as(sim: &Sim, kubeconfig: &std::path::Path, extra: &str) -> Agent {
    let f = tmp_file(&config(extra));
    let mut agent = start_with(
        sim,
        "",
        &["run", "--kubeconfig", kubeconfig.to_str().unwrap(), "--config", f.path().to_str().unwrap()],
    )
    .await;
    agent.keep(f);
    agent
}

fn denied(sim: &Sim) -> Vec<kube_sim::RequestRecord> {
    sim.requests().into_iter().filter(|r| r.user_agent.starts_with("meshkeeper/") && r.code == 403).collect()
}

#[tokio::test]
async fn the_default_chart_rbac_allows_everything_the_default_agent_does() {
    if !have("helm") {
        return;
    }
    let (sim, kubeconfig) = rbac_cluster(&[]).await;
    let agent = start_as(&sim, &kubeconfig, "").await;
    agent.wait_ready().await;
    agent.wait_leader().await;
    agent.wait_finding("InjectionLabelMissing", true, Duration::from_secs(10)).await;
    // The probe asked for every permission: none denied.
    assert!(!agent.has_finding("PermissionDenied").await, "{}", agent.status().await);
    assert!(denied(&sim).is_empty(), "{:?}", denied(&sim));
    // Events were allowed too.
    assert!(
        sim.requests()
            .iter()
            .any(|r| r.user_agent.starts_with("meshkeeper/") && r.resource == "events" && r.code < 300)
    );
}

#[tokio::test]
async fn enforcement_needs_its_rbac_value_and_a_refusal_is_reported() {
    if !have("helm") {
        return;
    }
    // Enforce, but the chart rendered without rbac.injectionEnforce: patches are refused.
    let (sim, kubeconfig) = rbac_cluster(&[]).await;
    let agent = start_as(&sim, &kubeconfig, "injection:\n  mode: enforce\n").await;
    agent.wait_leader().await;
    agent.wait_finding("PermissionDenied", true, Duration::from_secs(10)).await;
    agent.wait_finding("WriteForbidden", true, Duration::from_secs(10)).await;
    let refused = denied(&sim);
    assert!(refused.iter().all(|r| r.verb == "patch" && r.resource == "namespaces"), "{refused:?}");
    assert!(refused.len() <= 6, "no hot loop: {} refusals", refused.len());

    // With the value set, the same agent config works.
    let (sim, kubeconfig) = rbac_cluster(&["rbac.injectionEnforce=true"]).await;
    let agent = start_as(&sim, &kubeconfig, "injection:\n  mode: enforce\n").await;
    agent.wait_leader().await;
    until(&sim, Duration::from_secs(10), "shop labelled under the chart's RBAC", |_| {
        label(&sim, "shop", "istio-injection").as_deref() == Some("enabled")
    })
    .await;
    assert!(denied(&sim).is_empty(), "{:?}", denied(&sim));
    assert!(!agent.has_finding("PermissionDenied").await);
}

#[tokio::test]
async fn reinjection_restarts_under_the_charts_rbac_only_with_its_value() {
    if !have("helm") {
        return;
    }
    let restarts = |sim: &Sim| {
        sim.requests()
            .into_iter()
            .filter(|r| r.user_agent.starts_with("meshkeeper/") && r.verb == "patch" && r.resource == "deployments")
            .collect::<Vec<_>>()
    };
    // Without rbac.reinjection.enforce: refused, reported, not retried hot.
    let (sim, kubeconfig) = rbac_cluster_seeded(&[], true).await;
    let agent = start_as(&sim, &kubeconfig, "reinjection:\n  mode: enforce\n").await;
    agent.wait_leader().await;
    agent.wait_finding("WriteForbidden", true, Duration::from_secs(15)).await;
    // The permission probe's finding may come after the first refused write.
    agent.wait_finding("PermissionDenied", true, Duration::from_secs(10)).await;
    assert!(
        denied(&sim).iter().all(|r| r.verb == "patch"),
        "reads (the injector ConfigMap by name) are allowed: {:?}",
        denied(&sim)
    );
    assert!(restarts(&sim).len() <= 6, "no hot loop");
    // With it: the workloads roll, and nothing is refused.
    let (sim, kubeconfig) = rbac_cluster_seeded(&["rbac.reinjection.enforce=true"], true).await;
    let agent = start_as(&sim, &kubeconfig, "reinjection:\n  mode: enforce\n").await;
    agent.wait_leader().await;
    until(&sim, Duration::from_secs(30), "payments/api restarted under the chart's RBAC", |c| {
        c.get("apps/v1", "deployments", "payments", "api").is_some_and(|d| {
            d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_string()
        })
    })
    .await;
    assert!(denied(&sim).is_empty(), "{:?}", denied(&sim));
    assert!(!agent.has_finding("PermissionDenied").await);
    assert!(!agent.has_finding("WatchForbidden").await, "the injector's ConfigMap is watched by name");
}

// === the whole chart ===

/// A sim with RBAC enforced and the namespaces a release expects to exist (its own, and
/// `monitoring` where ci/full-values.yaml puts the monitoring objects); the prometheus-operator
/// kinds registered as CRDs. With `workloads`: the re-injection demo's workloads and an OnDelete
/// StatefulSet (`store/db`) whose pods lack the sidecar, so every write capability has work.
async fn chart_cluster(workloads: bool) -> Sim {
    let sim = Sim::start(SimOptions::default().rbac(true)).await.expect("sim");
    let c = sim.cluster();
    if workloads {
        kube_sim::seed::asm_onprem_ready(&c).await.expect("seed");
        kube_sim::seed::reinjection_demo(&c).await.expect("demo seed");
        c.create("v1", "namespaces", "", json!({"metadata": {"name": "store"}})).unwrap();
        c.create("apps/v1", "statefulsets", "store", json!({"metadata": {"name": "db"}, "spec": {"replicas": 2, "serviceName": "db",
            "updateStrategy": {"type": "OnDelete"}, "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "example/db:1"}]}}}}))
            .unwrap();
        until(&sim, Duration::from_secs(20), "2 db pods ready", |c| {
            c.get("apps/v1", "statefulsets", "store", "db").is_some_and(|s| s["status"]["readyReplicas"] == 2)
        })
        .await;
        let label = json!({"metadata": {"labels": {"istio-injection": "enabled"}}});
        c.patch("v1", "namespaces", "", "store", PatchType::Merge, &label, "kubectl-label").unwrap();
    } else {
        kube_sim::seed::asm_onprem(&c).expect("seed");
    }
    for ns in ["meshkeeper", "monitoring"] {
        c.create("v1", "namespaces", "", json!({"metadata": {"name": ns}})).unwrap();
    }
    for (kind, plural) in [("ServiceMonitor", "servicemonitors"), ("PrometheusRule", "prometheusrules")] {
        c.register_crd("monitoring.coreos.com", "v1", kind, plural, true)
            .unwrap_or_else(|e| panic!("{kind}: {}", e.message));
    }
    sim
}

/// Renders the chart and applies every object with the real kubectl (server-side apply, as
/// the admin); each must be accepted and then be there.
async fn install(sim: &Sim, args: &[&str]) -> Vec<Value> {
    let yaml = helm_template(args).await;
    let objs = objects(&yaml);
    let file = tmp_file(&yaml);
    let path = file.path().to_str().unwrap();
    let (ok, out) = kubectl(sim, &["apply", "--server-side", "-f", path]).await;
    assert!(ok, "kubectl apply --server-side of the rendered chart ({args:?}) refused:\n{out}");
    let applied = out.lines().filter(|l| l.ends_with(" serverside-applied")).count();
    assert_eq!(applied, objs.len(), "every rendered object applied:\n{out}");
    let (ok, out) = kubectl(sim, &["get", "-f", path, "-o", "name"]).await;
    assert!(ok, "{out}");
    assert_eq!(out.lines().count(), objs.len(), "every rendered object stored:\n{out}");
    objs
}

fn kind<'a>(objs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objs.iter().filter(|o| o["kind"] == kind).collect()
}

/// A container of the chart run here as its pod would run it: the rendered arguments and
/// environment, the rendered ConfigMap as the config file (listening on a free loopback port
/// instead of 0.0.0.0:9090), the ServiceAccount's kubeconfig instead of the in-cluster one
/// (or a mounted one: `--kubeconfig` in extraArgs).
struct AsRendered {
    args: Vec<String>,
    env: Vec<(String, String)>,
    service_account: String,
    config: tempfile::NamedTempFile,
}

fn as_rendered(sim: &Sim, objs: &[Value], pod: &Value, pod_name: &str) -> AsRendered {
    let spec = &pod["spec"];
    let container = &spec["containers"][0];
    let service_account = spec["serviceAccountName"].as_str().expect("serviceAccountName").to_string();
    let kubeconfig = sim.kubeconfig_for_service_account("meshkeeper", &service_account).expect("SA kubeconfig");
    let cm_name = spec["volumes"]
        .as_array()
        .and_then(|vs| vs.iter().find_map(|v| v["configMap"]["name"].as_str()))
        .expect("a ConfigMap volume");
    let cm = kind(objs, "ConfigMap").into_iter().find(|c| c["metadata"]["name"] == cm_name).expect("the ConfigMap");
    let mut file: serde_yaml::Value =
        serde_yaml::from_str(cm["data"]["config.yaml"].as_str().expect("config.yaml")).expect("config YAML");
    let http =
        file.as_mapping_mut().expect("a mapping").entry("http".into()).or_insert(serde_yaml::Mapping::new().into());
    http.as_mapping_mut().expect("http").insert("listen".into(), "127.0.0.1:0".into());
    let config = tmp_file(&serde_yaml::to_string(&file).unwrap());

    let mut args: Vec<String> = Vec::new();
    let mut it = container["args"].as_array().expect("args").iter().filter_map(Value::as_str);
    let mut has_kubeconfig = false;
    while let Some(a) = it.next() {
        args.push(a.to_string());
        match a {
            "--config" => {
                it.next();
                args.push(config.path().to_str().unwrap().to_string());
            }
            "--kubeconfig" => {
                it.next();
                args.push(kubeconfig.to_str().unwrap().to_string());
                has_kubeconfig = true;
            }
            _ => {}
        }
    }
    if !has_kubeconfig {
        args.extend(["--kubeconfig".to_string(), kubeconfig.to_str().unwrap().to_string()]);
    }
    let env = container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let name = e["name"].as_str().expect("env name").to_string();
            let value = match (e["value"].as_str(), e["valueFrom"]["fieldRef"]["fieldPath"].as_str()) {
                (Some(v), _) => v.to_string(),
                (None, Some("metadata.namespace")) => "meshkeeper".to_string(),
                (None, Some("metadata.name")) => pod_name.to_string(),
                (None, Some("spec.nodeName")) => "kube-sim-node".to_string(),
                _ => panic!("env {name}: {e} is not a value this test knows how to resolve"),
            };
            (name, value)
        })
        .collect();
    AsRendered { args, env, service_account, config }
}

/// Requests of the chart's ServiceAccount that were refused.
fn denied_to(sim: &Sim, service_account: &str) -> Vec<kube_sim::RequestRecord> {
    let user = format!("system:serviceaccount:meshkeeper:{service_account}");
    sim.requests().into_iter().filter(|r| r.user == user && r.code == 403).collect()
}

/// Starts the agent as the rendered Deployment's first pod.
async fn run_as_rendered(sim: &Sim, objs: &[Value]) -> (Agent, String) {
    let deploy = kind(objs, "Deployment")[0];
    let pod_name = format!("{}-7d9f8b6c5-x2x4q", deploy["metadata"]["name"].as_str().unwrap());
    let r = as_rendered(sim, objs, &deploy["spec"]["template"], &pod_name);
    assert_eq!(r.args[0], "run", "{:?}", r.args);
    let args: Vec<&str> = r.args.iter().map(String::as_str).collect();
    let mut agent = start_with_env(sim, "", &args, &r.env).await;
    agent.keep(r.config);
    (agent, r.service_account)
}

/// Runs the helm test hook's command (`meshkeeper check --config ...`) as its Pod would: no
/// request refused, no permission reported denied, and an exit code of a check that could run.
async fn check_as_test_hook(sim: &Sim, objs: &[Value]) {
    let hooks: Vec<_> =
        kind(objs, "Pod").into_iter().filter(|p| p["metadata"]["annotations"]["helm.sh/hook"] == "test").collect();
    assert_eq!(hooks.len(), 1, "one helm test Pod");
    let r = as_rendered(sim, objs, hooks[0], hooks[0]["metadata"]["name"].as_str().unwrap());
    assert_eq!(r.args[..1], ["check".to_string()], "{:?}", r.args);
    sim.clear_requests();
    let out = meshkeeper().args(&r.args).envs(r.env.iter().map(|(k, v)| (k, v))).output().await.expect("run check");
    let report = String::from_utf8_lossy(&out.stdout);
    let code = out.status.code();
    assert!(
        matches!(code, Some(0 | 1)),
        "check could not run ({code:?}):\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!report.contains("actual: denied"), "the test hook's check reports a denied permission:\n{report}");
    assert!(report.contains("Status check results are"), "{report}");
    assert!(denied_to(sim, &r.service_account).is_empty(), "{:?}", denied_to(sim, &r.service_account));
    eprintln!("helm test hook: meshkeeper check exit {code:?}, no permission denied");
}

#[tokio::test]
async fn the_whole_default_chart_is_accepted_and_the_agent_runs_under_it_with_no_denial() {
    if !(have("helm") && have("kubectl")) {
        return;
    }
    let sim = chart_cluster(false).await;
    let objs = install(&sim, &[]).await;
    let (agent, sa) = run_as_rendered(&sim, &objs).await;
    agent.wait_ready().await;
    agent.wait_leader().await;
    agent.wait_finding("InjectionLabelMissing", true, Duration::from_secs(10)).await;
    assert!(!agent.has_finding("PermissionDenied").await, "{}", agent.status().await);
    assert!(denied_to(&sim, &sa).is_empty(), "{:?}", denied_to(&sim, &sa));
    assert!(
        sim.cluster().get("coordination.k8s.io/v1", "leases", "meshkeeper", "meshkeeper").is_some(),
        "the Lease the Role grants, by its rendered name"
    );
    check_as_test_hook(&sim, &objs).await;
}

#[tokio::test]
async fn the_whole_chart_with_every_option_on_is_accepted_and_every_write_it_grants_works() {
    if !(have("helm") && have("kubectl")) {
        return;
    }
    let sim = chart_cluster(true).await;
    let objs = install(&sim, &["-f", FULL_VALUES]).await;
    for k in ["ServiceMonitor", "PrometheusRule", "PodDisruptionBudget"] {
        assert_eq!(kind(&objs, k).len(), 1, "{k} rendered and applied");
    }
    assert!(
        sim.cluster().get("monitoring.coreos.com/v1", "prometheusrules", "monitoring", "meshkeeper-full").is_some(),
        "the PrometheusRule is stored in its namespace"
    );
    let (agent, sa) = run_as_rendered(&sim, &objs).await;
    agent.wait_leader().await;
    let lease =
        sim.cluster().get("coordination.k8s.io/v1", "leases", "meshkeeper", "meshkeeper-leader").expect("the Lease");
    assert!(lease["spec"]["holderIdentity"].as_str().unwrap().starts_with("meshkeeper-full-"), "{lease}");

    // Each write capability the values grant, used under the chart's RBAC.
    until(&sim, Duration::from_secs(20), "shop labelled (rbac.injectionEnforce)", |_| {
        label(&sim, "shop", "istio-injection").as_deref() == Some("enabled")
    })
    .await;
    until(&sim, Duration::from_secs(30), "payments/api restarted (rbac.reinjection.enforce)", |c| {
        c.get("apps/v1", "deployments", "payments", "api").is_some_and(|d| {
            d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_string()
        })
    })
    .await;
    let evicted = |sim: &Sim| {
        sim.requests().iter().any(|r| {
            r.subresource.as_deref() == Some("eviction") && r.namespace.as_deref() == Some("store") && r.code < 300
        })
    };
    eventually(Duration::from_secs(60), "a store/db pod evicted (rbac.reinjection.evict)", || async { evicted(&sim) })
        .await;
    kubectl_move_http2(&sim).await;
    until(&sim, Duration::from_secs(20), "the gateway's http2 nodePort repaired (rbac.gatewayRepair)", |c| {
        c.get("v1", "services", "istio-system", "istio-ingressgateway").is_some_and(|s| {
            s["spec"]["ports"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == "http2" && p["nodePort"] == 31380))
        })
    })
    .await;
    assert!(
        writes_by_meshkeeper(&sim, "services").iter().any(|r| r.code < 300),
        "the repair was a patch of the gateway Service"
    );
    assert!(sim.requests().iter().any(|r| r.resource == "events" && r.verb == "create" && r.code < 300), "Events");

    assert!(denied_to(&sim, &sa).is_empty(), "{:?}", denied_to(&sim, &sa));
    assert!(!agent.has_finding("PermissionDenied").await, "{}", agent.status().await);
    assert!(!agent.has_finding("WriteForbidden").await, "{}", agent.status().await);
    assert!(!agent.has_finding("WatchForbidden").await, "{}", agent.status().await);
    drop(agent);
    check_as_test_hook(&sim, &objs).await;
}
