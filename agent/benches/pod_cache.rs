//! What a cached pod costs: the trimmed, interned pod cache against keeping the full objects
//! (what a plain kube-rs reflector holds), measured as the process's RSS slope between two
//! cache sizes, in the same run. `cargo bench -p meshkeeper --bench pod_cache`
//! (`POD_CACHE_SIZES=20000,100000` to change the sizes).
//!
//! Pods are realistic injected pods (about 2.4 KB of JSON as a real API server serves them:
//! labels, annotations with the sidecar status, an app container and istio-proxy with args,
//! env and probes, istio-init, status with conditions and container statuses), 50 per
//! Deployment in namespaces of 200.

use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use meshkeeper::cache::pod::PodTrim;
use meshkeeper::cache::slim::SlimPod;
use meshkeeper::cache::{Index, PodInfo};
use serde_json::json;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096
}

fn pod(i: usize) -> Pod {
    serde_json::from_value(pod_json(i)).expect("a valid pod")
}

/// Decoded as the pod watch decodes it (only what the cache keeps).
fn slim_pod(i: usize) -> SlimPod {
    serde_json::from_value(pod_json(i)).expect("a valid pod")
}

fn pod_json(i: usize) -> serde_json::Value {
    let deploy = i / 50;
    let ns = format!("team-{}", deploy / 4);
    let app = format!("svc-{deploy}");
    let hash = format!("{:010x}", deploy * 7919);
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": format!("{app}-{hash}-{:05}", i % 50), "namespace": ns, "uid": format!("{:032x}", i),
            "resourceVersion": format!("{}", 100_000 + i), "creationTimestamp": "2026-11-25T07:00:00Z",
            "generateName": format!("{app}-{hash}-"),
            "labels": {"app": app, "version": "v1", "pod-template-hash": hash, "security.istio.io/tlsMode": "istio",
                "service.istio.io/canonical-name": app, "service.istio.io/canonical-revision": "v1"},
            "annotations": {"sidecar.istio.io/status": "{\"initContainers\":[\"istio-init\"],\"containers\":[\"istio-proxy\"],\"volumes\":[\"istio-envoy\",\"istio-data\",\"istio-podinfo\",\"istio-token\",\"istiod-ca-cert\"],\"imagePullSecrets\":null,\"revision\":\"default\"}",
                "prometheus.io/path": "/stats/prometheus", "prometheus.io/port": "15020", "prometheus.io/scrape": "true"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-{hash}"), "uid": format!("{:032x}", deploy), "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": {
            "nodeName": format!("node-{}", i % 100), "serviceAccountName": app, "restartPolicy": "Always",
            "containers": [
                {"name": "app", "image": format!("registry.example.com/{ns}/{app}:1.2.3"), "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                 "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                 "readinessProbe": {"httpGet": {"path": "/app-health/app/readyz", "port": 15020}, "periodSeconds": 10}},
                {"name": "istio-proxy", "image": "gcr.io/gke-release/asm/proxyv2:1.4.10-asm.18",
                 "args": ["proxy", "sidecar", "--domain", format!("{ns}.svc.cluster.local"), "--serviceCluster", format!("{app}.{ns}"), "--proxyLogLevel=warning", "--proxyComponentLogLevel=misc:error", "--concurrency", "2"],
                 "env": [{"name": "JWT_POLICY", "value": "third-party-jwt"}, {"name": "PILOT_CERT_PROVIDER", "value": "istiod"}, {"name": "CA_ADDR", "value": "istiod.istio-system.svc:15012"},
                         {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}, {"name": "ISTIO_META_WORKLOAD_NAME", "value": app}],
                 "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
                 "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021}, "initialDelaySeconds": 1, "periodSeconds": 2, "failureThreshold": 30},
                 "resources": {"requests": {"cpu": "10m", "memory": "40Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}},
                 "securityContext": {"runAsUser": 1337, "runAsGroup": 1337, "runAsNonRoot": true, "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false}}
            ],
            "initContainers": [{"name": "istio-init", "image": "gcr.io/gke-release/asm/proxyv2:1.4.10-asm.18",
                "args": ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020"]}]
        },
        "status": {"phase": "Running", "hostIP": "10.0.0.11", "podIP": format!("10.4.{}.{}", i / 250 % 250, i % 250), "startTime": "2026-11-25T07:00:01Z",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [
                {"name": "app", "image": "x", "imageID": "docker-pullable://x@sha256:0", "ready": true, "restartCount": 0, "started": true, "state": {"running": {"startedAt": "2026-11-25T07:00:03Z"}}},
                {"name": "istio-proxy", "image": "x", "imageID": "docker-pullable://x@sha256:1", "ready": true, "restartCount": 0, "started": true, "state": {"running": {"startedAt": "2026-11-25T07:00:02Z"}}}],
            "initContainerStatuses": [{"name": "istio-init", "image": "x", "imageID": "x", "ready": true, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}
    })
}

/// RSS growth (bytes) and time to build a cache of `n` pods.
fn trimmed(n: usize) -> (u64, f64, usize) {
    let before = rss_bytes();
    let t = Instant::now();
    let trim = PodTrim::new("istio-system");
    let idx: Index<PodInfo> = Index::from_objects((0..n).filter_map(|i| trim.trim(slim_pod(i))));
    let secs = t.elapsed().as_secs_f64();
    let grown = rss_bytes().saturating_sub(before);
    let len = idx.len();
    std::hint::black_box(&idx);
    drop(idx);
    (grown, secs, len)
}

fn naive(n: usize) -> (u64, f64, usize) {
    let before = rss_bytes();
    let t = Instant::now();
    let v: Vec<Pod> = (0..n).map(pod).collect();
    let secs = t.elapsed().as_secs_f64();
    let grown = rss_bytes().saturating_sub(before);
    let len = v.len();
    std::hint::black_box(&v);
    drop(v);
    (grown, secs, len)
}

fn main() {
    let sizes: Vec<usize> = std::env::var("POD_CACHE_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| v.len() == 2)
        .unwrap_or_else(|| vec![20_000, 100_000]);
    let (small, large) = (sizes[0], sizes[1]);
    println!("pod cache: {small} and {large} realistic injected pods (RSS slope between the two sizes)");
    // Separate processes would be cleaner; in one process the allocator reuses what the first
    // run freed, so each variant runs small then large and the slope is taken between them.
    let (t_small, _, _) = trimmed(small);
    let (t_large, t_secs, n) = trimmed(large);
    let (n_small, _, _) = naive(small);
    let (n_large, n_secs, _) = naive(large);
    let per = |a: u64, b: u64| (b as f64 - a as f64) / (large - small) as f64;
    let (pt, pn) = (per(t_small, t_large), per(n_small, n_large));
    println!("| cache | RSS at {small} | RSS at {large} | bytes per pod (slope) | build time at {large} |");
    println!("|---|---|---|---|---|");
    println!(
        "| meshkeeper (trimmed, interned) | {:.1} MiB | {:.1} MiB | {pt:.0} | {t_secs:.2} s |",
        t_small as f64 / 1048576.0,
        t_large as f64 / 1048576.0
    );
    println!(
        "| full objects (a plain reflector) | {:.1} MiB | {:.1} MiB | {pn:.0} | {n_secs:.2} s |",
        n_small as f64 / 1048576.0,
        n_large as f64 / 1048576.0
    );
    println!("ratio: the full objects cost {:.1}x as much per pod ({n} pods cached)", pn / pt.max(1.0));
}
