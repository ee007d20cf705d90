//! `meta.k8s.io/v1` Tables, what `kubectl get` asks for (`Accept:
//! application/json;as=Table;v=v1;g=meta.k8s.io`): the real server's columns for pods,
//! deployments, replicasets, statefulsets, daemonsets, jobs, namespaces, nodes, services,
//! configmaps, poddisruptionbudgets and controllerrevisions (upstream
//! `pkg/printers/internalversion/printers.go`), and NAME/AGE for everything else. Every column
//! is sent; kubectl shows the priority-1 ones only with `-o wide`. Rows carry the object as
//! PartialObjectMetadata (`includeObject=Metadata`, the default), the whole object (`Object`)
//! or nothing (`None`).

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use crate::actors::util::{self, human_duration, now_secs, parse_time};
use crate::resources::ResourceType;

const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// Whether the client asked for a Table.
pub fn wanted(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|a| {
        a.split(',').any(|m| {
            let params: Vec<&str> = m.split(';').map(str::trim).collect();
            params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io")
        })
    })
}

fn col(name: &str, ty: &str, priority: i64, description: &str) -> Value {
    let mut c = json!({"name": name, "type": ty, "format": "", "description": description, "priority": priority});
    if name == "Name" {
        c["format"] = json!("name");
    }
    c
}

fn age(obj: &Value) -> String {
    match obj["metadata"]["creationTimestamp"].as_str().and_then(parse_time) {
        Some(t) => human_duration(now_secs() - t),
        None => "<unknown>".into(),
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn or_none(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

fn containers_and_images(spec: &Value) -> (String, String) {
    let cs = spec["containers"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = cs.iter().filter_map(|c| c["name"].as_str()).collect();
    let images: Vec<&str> = cs.iter().filter_map(|c| c["image"].as_str()).collect();
    (names.join(","), images.join(","))
}

fn labels_string(m: &Value) -> String {
    let mut parts: Vec<String> = m
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect())
        .unwrap_or_default();
    parts.sort();
    or_none(parts.join(","))
}

/// READY, STATUS and RESTARTS of a pod (`printPod`).
fn pod_cells(pod: &Value) -> (String, String, String) {
    let spec = &pod["spec"];
    let st = &pod["status"];
    let restartable = |name: &str| {
        spec["initContainers"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["name"] == name && c["restartPolicy"] == "Always")
    };
    let mut total = spec["containers"].as_array().map_or(0, Vec::len);
    total += spec["initContainers"].as_array().into_iter().flatten().filter(|c| c["restartPolicy"] == "Always").count();
    let mut ready = 0;
    let mut restarts = 0;
    let mut sidecar_restarts = 0;
    let mut last_restart: f64 = 0.0;
    let mut last_sidecar_restart: f64 = 0.0;
    let finished_at = |c: &Value| c["lastState"]["terminated"]["finishedAt"].as_str().and_then(parse_time);
    let mut reason = st["reason"].as_str().or(st["phase"].as_str()).unwrap_or_default().to_string();
    if util::condition(pod, "PodScheduled").is_some_and(|c| c["reason"] == "SchedulingGated") {
        reason = "SchedulingGated".into();
    }
    let inits = st["initContainerStatuses"].as_array().cloned().unwrap_or_default();
    let n_inits = spec["initContainers"].as_array().map_or(0, Vec::len);
    let mut initializing = false;
    for (i, c) in inits.iter().enumerate() {
        let name = c["name"].as_str().unwrap_or_default();
        restarts += int(&c["restartCount"]);
        if let Some(t) = finished_at(c) {
            last_restart = last_restart.max(t);
        }
        if restartable(name) {
            sidecar_restarts += int(&c["restartCount"]);
            if let Some(t) = finished_at(c) {
                last_sidecar_restart = last_sidecar_restart.max(t);
            }
        }
        let term = &c["state"]["terminated"];
        if term.is_object() && int(&term["exitCode"]) == 0 {
            continue;
        }
        if restartable(name) && c["started"] == true {
            if c["ready"] == true {
                ready += 1;
            }
            continue;
        }
        if term.is_object() {
            reason = match term["reason"].as_str().filter(|r| !r.is_empty()) {
                Some(r) => format!("Init:{r}"),
                None if int(&term["signal"]) != 0 => format!("Init:Signal:{}", int(&term["signal"])),
                None => format!("Init:ExitCode:{}", int(&term["exitCode"])),
            };
        } else if let Some(r) =
            c["state"]["waiting"]["reason"].as_str().filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            reason = format!("Init:{r}");
        } else {
            reason = format!("Init:{i}/{n_inits}");
        }
        initializing = true;
        break;
    }
    let initialized = util::condition(pod, "Initialized").is_some_and(|c| c["status"] == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for c in st["containerStatuses"].as_array().into_iter().flatten().rev() {
            restarts += int(&c["restartCount"]);
            if let Some(t) = finished_at(c) {
                last_restart = last_restart.max(t);
            }
            let state = &c["state"];
            if let Some(r) = state["waiting"]["reason"].as_str().filter(|r| !r.is_empty()) {
                reason = r.to_string();
            } else if let Some(r) = state["terminated"]["reason"].as_str().filter(|r| !r.is_empty()) {
                reason = r.to_string();
            } else if state["terminated"].is_object() {
                reason = if int(&state["terminated"]["signal"]) != 0 {
                    format!("Signal:{}", int(&state["terminated"]["signal"]))
                } else {
                    format!("ExitCode:{}", int(&state["terminated"]["exitCode"]))
                };
            } else if c["ready"] == true && state["running"].is_object() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if util::pod_ready(pod) { "Running".into() } else { "NotReady".into() };
        }
    }
    let terminal = matches!(st["phase"].as_str(), Some("Succeeded" | "Failed"));
    if util::deleting(pod) && st["reason"] == "NodeLost" {
        reason = "Unknown".into();
    } else if util::deleting(pod) && !terminal {
        reason = "Terminating".into();
    }
    let restarts_str = if restarts != 0 && last_restart > 0.0 {
        format!("{restarts} ({} ago)", human_duration(now_secs() - last_restart))
    } else {
        restarts.to_string()
    };
    (format!("{ready}/{total}"), reason, restarts_str)
}

/// Columns and one row's cells for a kind.
fn columns(rt: &ResourceType) -> Vec<Value> {
    let name = col("Name", "string", 0, NAME_DOC);
    let age = col("Age", "string", 0, AGE_DOC);
    let wide = |n: &str, d: &str| col(n, "string", 1, d);
    let containers = || wide("Containers", "Names of each container in the template.");
    let images = || wide("Images", "Images referenced by each container in the template.");
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Pod") => vec![
            name,
            col("Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic."),
            col("Status", "string", 0, "The aggregate status of the containers in this pod."),
            col(
                "Restarts",
                "string",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            age,
            wide(
                "IP",
                "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
            ),
            wide(
                "Node",
                "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName.",
            ),
            wide(
                "Nominated Node",
                "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.",
            ),
            wide("Readiness Gates", "If specified, all readiness gates will be evaluated for pod readiness."),
        ],
        ("apps", "Deployment") => vec![
            name,
            col("Ready", "string", 0, "Number of the pod with ready state"),
            col(
                "Up-to-date",
                "string",
                0,
                "Total number of non-terminating pods targeted by this deployment that have the desired template spec.",
            ),
            col(
                "Available",
                "string",
                0,
                "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            age,
            containers(),
            images(),
            wide(
                "Selector",
                "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
            ),
        ],
        ("apps", "ReplicaSet") => vec![
            name,
            col("Desired", "integer", 0, "Replicas is the number of desired pods."),
            col("Current", "integer", 0, "Replicas is the most recently observed number of non-terminating pods."),
            col(
                "Ready",
                "integer",
                0,
                "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.",
            ),
            age,
            containers(),
            images(),
            wide("Selector", "Selector is a label query over pods that should match the replica count."),
        ],
        ("apps", "StatefulSet") => {
            vec![name, col("Ready", "string", 0, "Number of the pod with ready state"), age, containers(), images()]
        }
        ("apps", "DaemonSet") => vec![
            name,
            col(
                "Desired",
                "integer",
                0,
                "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod).",
            ),
            col(
                "Current",
                "integer",
                0,
                "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
            ),
            col(
                "Ready",
                "integer",
                0,
                "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.",
            ),
            col("Up-to-date", "integer", 0, "The total number of nodes that are running updated daemon pod"),
            col(
                "Available",
                "integer",
                0,
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)",
            ),
            col(
                "Node Selector",
                "string",
                0,
                "NodeSelector is a selector which must be true for the pod to fit on a node.",
            ),
            age,
            containers(),
            images(),
            wide("Selector", "A label query over pods that are managed by the daemon set."),
        ],
        ("apps", "ControllerRevision") => vec![
            name,
            col("Controller", "string", 0, "Controller of the object"),
            col("Revision", "string", 0, "Revision indicates the revision of the state represented by Data."),
            age,
        ],
        ("batch", "Job") => vec![
            name,
            col("Status", "string", 0, "Status of the job."),
            col(
                "Completions",
                "string",
                0,
                "The desired number of successfully finished pods the job should be run with.",
            ),
            col("Duration", "string", 0, "Time required to complete the job."),
            age,
            containers(),
            images(),
            wide("Selector", "A label query over pods that should match the pod count."),
        ],
        ("", "Namespace") => vec![name, col("Status", "string", 0, "The status of the namespace"), age],
        ("", "Node") => vec![
            name,
            col("Status", "string", 0, "The status of the node"),
            col("Roles", "string", 0, "The roles of the node"),
            age,
            col("Version", "string", 0, "Kubelet Version reported by the node."),
            wide("Internal-IP", "List of addresses reachable to the node. Queried from cloud provider, if available."),
            wide("External-IP", "List of addresses reachable to the node. Queried from cloud provider, if available."),
            wide("OS-Image", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
            wide("Kernel-Version", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
            wide(
                "Container-Runtime",
                "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
            ),
        ],
        ("", "Service") => vec![
            name,
            col("Type", "string", 0, "type determines how the Service is exposed."),
            col(
                "Cluster-IP",
                "string",
                0,
                "clusterIP is the IP address of the service and is usually assigned randomly.",
            ),
            col(
                "External-IP",
                "string",
                0,
                "List of IP addresses for which nodes in the cluster will also accept traffic for this service.",
            ),
            col("Port(s)", "string", 0, "The list of ports that are exposed by this service."),
            age,
            wide("Selector", "Route service traffic to pods with label keys and values matching this selector."),
        ],
        ("", "ConfigMap") => vec![name, col("Data", "integer", 0, "Data contains the configuration data."), age],
        ("", "ServiceAccount") => vec![
            name,
            col(
                "Secrets",
                "string",
                0,
                "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
            ),
            age,
        ],
        ("policy", "PodDisruptionBudget") => vec![
            name,
            col(
                "Min Available",
                "string",
                0,
                "The minimum number of pods that must be available simultaneously.  This can be either an integer or a string specifying a percentage, e.g. \"28%\".",
            ),
            col(
                "Max Unavailable",
                "string",
                0,
                "The maximum number of pods that may be unavailable simultaneously.  This can be either an integer or a string specifying a percentage, e.g. \"28%\".",
            ),
            col("Allowed Disruptions", "integer", 0, "Calculated number of pods that may be disrupted at this time."),
            age,
        ],
        _ => vec![name, age],
    }
}

fn cells(rt: &ResourceType, o: &Value) -> Vec<Value> {
    let name = json!(util::name(o));
    let age = json!(age(o));
    let spec = &o["spec"];
    let st = &o["status"];
    let tpl = |spec: &Value| containers_and_images(&spec["template"]["spec"]);
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Pod") => {
            let (ready, status, restarts) = pod_cells(o);
            let ip = st["podIPs"][0]["ip"].as_str().or(st["podIP"].as_str()).unwrap_or_default().to_string();
            let gates = match spec["readinessGates"].as_array() {
                Some(g) if !g.is_empty() => {
                    let ok = g
                        .iter()
                        .filter(|gate| {
                            util::condition(o, gate["conditionType"].as_str().unwrap_or_default())
                                .is_some_and(|c| c["status"] == "True")
                        })
                        .count();
                    format!("{ok}/{}", g.len())
                }
                _ => "<none>".into(),
            };
            vec![
                name,
                json!(ready),
                json!(status),
                json!(restarts),
                age,
                json!(or_none(ip)),
                json!(or_none(spec["nodeName"].as_str().unwrap_or_default().to_string())),
                json!(or_none(st["nominatedNodeName"].as_str().unwrap_or_default().to_string())),
                json!(gates),
            ]
        }
        ("apps", "Deployment") => {
            let (c, i) = tpl(spec);
            vec![
                name,
                json!(format!("{}/{}", int(&st["readyReplicas"]), spec["replicas"].as_i64().unwrap_or(1))),
                json!(int(&st["updatedReplicas"])),
                json!(int(&st["availableReplicas"])),
                age,
                json!(c),
                json!(i),
                json!(util::selector_string(&spec["selector"])),
            ]
        }
        ("apps", "ReplicaSet") => {
            let (c, i) = tpl(spec);
            vec![
                name,
                json!(spec["replicas"].as_i64().unwrap_or(1)),
                json!(int(&st["replicas"])),
                json!(int(&st["readyReplicas"])),
                age,
                json!(c),
                json!(i),
                json!(util::selector_string(&spec["selector"])),
            ]
        }
        ("apps", "StatefulSet") => {
            let (c, i) = tpl(spec);
            vec![
                name,
                json!(format!("{}/{}", int(&st["readyReplicas"]), spec["replicas"].as_i64().unwrap_or(1))),
                age,
                json!(c),
                json!(i),
            ]
        }
        ("apps", "DaemonSet") => {
            let (c, i) = tpl(spec);
            vec![
                name,
                json!(int(&st["desiredNumberScheduled"])),
                json!(int(&st["currentNumberScheduled"])),
                json!(int(&st["numberReady"])),
                json!(int(&st["updatedNumberScheduled"])),
                json!(int(&st["numberAvailable"])),
                json!(labels_string(&spec["template"]["spec"]["nodeSelector"])),
                age,
                json!(c),
                json!(i),
                json!(util::selector_string(&spec["selector"])),
            ]
        }
        ("apps", "ControllerRevision") => {
            let controller = util::controller_of(o)
                .map(|(k, n, _)| {
                    let group = o["metadata"]["ownerReferences"][0]["apiVersion"]
                        .as_str()
                        .and_then(|a| a.split_once('/'))
                        .map(|(g, _)| g)
                        .unwrap_or("");
                    let kind =
                        if group.is_empty() { k.to_lowercase() } else { format!("{}.{group}", k.to_lowercase()) };
                    format!("{kind}/{n}")
                })
                .unwrap_or_else(|| "<none>".into());
            vec![name, json!(controller), json!(o["revision"].as_i64().unwrap_or(0)), age]
        }
        ("batch", "Job") => {
            let (c, i) = tpl(spec);
            let completions = spec["completions"].as_i64();
            let parallelism = spec["parallelism"].as_i64().unwrap_or(1);
            let comp = match completions {
                Some(n) => format!("{}/{n}", int(&st["succeeded"])),
                None if parallelism > 1 => format!("{}/1 of {parallelism}", int(&st["succeeded"])),
                None => format!("{}/1", int(&st["succeeded"])),
            };
            let has = |t: &str| util::condition(o, t).is_some_and(|c| c["status"] == "True");
            let status = if has("Complete") {
                "Complete"
            } else if has("Failed") {
                "Failed"
            } else if util::deleting(o) {
                "Terminating"
            } else if has("Suspended") {
                "Suspended"
            } else if has("FailureTarget") {
                "FailureTarget"
            } else if has("SuccessCriteriaMet") {
                "SuccessCriteriaMet"
            } else {
                "Running"
            };
            let start = st["startTime"].as_str().and_then(parse_time);
            let end = st["completionTime"].as_str().and_then(parse_time).unwrap_or_else(now_secs);
            let duration = start.map(|s| human_duration(end - s)).unwrap_or_default();
            vec![
                name,
                json!(status),
                json!(comp),
                json!(duration),
                age,
                json!(c),
                json!(i),
                json!(util::selector_string(&spec["selector"])),
            ]
        }
        ("", "Namespace") => vec![name, json!(st["phase"].as_str().unwrap_or_default()), age],
        ("", "Node") => {
            let ready = util::condition(o, "Ready")
                .map(|c| if c["status"] == "True" { "Ready" } else { "NotReady" })
                .unwrap_or("Unknown");
            let status =
                if spec["unschedulable"] == true { format!("{ready},SchedulingDisabled") } else { ready.to_string() };
            let mut roles: Vec<String> = o["metadata"]["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/").map(str::to_string))
                .collect();
            roles.sort();
            let addr = |t: &str| {
                st["addresses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|a| a["type"] == t)
                    .and_then(|a| a["address"].as_str())
                    .unwrap_or("<none>")
                    .to_string()
            };
            let info = &st["nodeInfo"];
            let s = |v: &Value| v.as_str().filter(|s| !s.is_empty()).unwrap_or("<unknown>").to_string();
            vec![
                name,
                json!(status),
                json!(or_none(roles.join(","))),
                age,
                json!(info["kubeletVersion"].as_str().unwrap_or_default()),
                json!(addr("InternalIP")),
                json!(addr("ExternalIP")),
                json!(s(&info["osImage"])),
                json!(s(&info["kernelVersion"])),
                json!(s(&info["containerRuntimeVersion"])),
            ]
        }
        ("", "Service") => {
            let ty = spec["type"].as_str().unwrap_or("ClusterIP");
            let cluster_ip = spec["clusterIP"].as_str().filter(|s| !s.is_empty()).unwrap_or("<none>");
            let lb: Vec<&str> = st["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["ip"].as_str().or(i["hostname"].as_str()))
                .collect();
            let external: Vec<String> = spec["externalIPs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            let ext = match ty {
                "LoadBalancer" if !lb.is_empty() || !external.is_empty() => {
                    let mut all: Vec<String> = lb.iter().map(|s| s.to_string()).collect();
                    all.extend(external);
                    all.join(",")
                }
                "LoadBalancer" => "<pending>".into(),
                "ExternalName" => spec["externalName"].as_str().unwrap_or_default().to_string(),
                _ if !external.is_empty() => external.join(","),
                _ => "<none>".into(),
            };
            let ports: Vec<String> = spec["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let proto = p["protocol"].as_str().unwrap_or("TCP");
                    match p["nodePort"].as_i64() {
                        Some(np) => format!("{}:{np}/{proto}", int(&p["port"])),
                        None => format!("{}/{proto}", int(&p["port"])),
                    }
                })
                .collect();
            let selector = match spec["selector"].as_object() {
                Some(m) if !m.is_empty() => labels_string(&spec["selector"]),
                _ => "<none>".into(),
            };
            vec![name, json!(ty), json!(cluster_ip), json!(ext), json!(or_none(ports.join(","))), age, json!(selector)]
        }
        ("", "ConfigMap") => {
            let n = o["data"].as_object().map_or(0, |m| m.len()) + o["binaryData"].as_object().map_or(0, |m| m.len());
            vec![name, json!(n), age]
        }
        ("", "ServiceAccount") => vec![name, json!(o["secrets"].as_array().map_or(0, Vec::len)), age],
        ("policy", "PodDisruptionBudget") => {
            let v = |x: &Value| match x {
                Value::Null => "N/A".to_string(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            vec![
                name,
                json!(v(&spec["minAvailable"])),
                json!(v(&spec["maxUnavailable"])),
                json!(int(&st["disruptionsAllowed"])),
                age,
            ]
        }
        _ => vec![name, age],
    }
}

/// The Table for a list or an object.
pub fn table(rt: &ResourceType, body: &Value, include: &str) -> Value {
    let items: Vec<&Value> = match body["items"].as_array() {
        Some(items) if body["kind"].as_str().is_some_and(|k| k.ends_with("List")) => items.iter().collect(),
        _ => vec![body],
    };
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut row = json!({"cells": cells(rt, o)});
            match include {
                "None" => {}
                "Object" => row["object"] = (*o).clone(),
                _ => {
                    row["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]})
                }
            }
            if rt.kind == "Pod" {
                match o["status"]["phase"].as_str() {
                    Some("Succeeded") => {
                        row["conditions"] = json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}])
                    }
                    Some("Failed") => {
                        row["conditions"] = json!([{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}])
                    }
                    _ => {}
                }
            }
            row
        })
        .collect();
    let mut meta = json!({});
    if body["items"].is_array() {
        meta = body["metadata"].clone();
    } else if let Some(rv) = body["metadata"]["resourceVersion"].as_str() {
        meta["resourceVersion"] = json!(rv);
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": columns(rt), "rows": rows})
}

/// Turns a get or list answer into a Table answer (errors pass through).
pub async fn render(plain: Response, rt: &ResourceType, q: &std::collections::HashMap<String, String>) -> Response {
    if plain.status() != StatusCode::OK {
        return plain;
    }
    let Ok(bytes) = axum::body::to_bytes(plain.into_body(), usize::MAX).await else {
        return Response::builder().status(500).body(Body::empty()).unwrap_or_default();
    };
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let t = table(rt, &body, q.get("includeObject").map(String::as_str).unwrap_or("Metadata"));
    let mut r = Response::new(Body::from(serde_json::to_vec(&t).unwrap_or_default()));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(kind: &str) -> ResourceType {
        crate::resources::builtin()
            .into_iter()
            .find(|r| r.kind == kind && (r.group.is_empty() || r.group == "apps"))
            .unwrap()
    }

    #[test]
    fn accept_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"));
        assert!(wanted(&h));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json, */*"));
        assert!(!wanted(&h));
    }

    #[test]
    fn pod_rows_like_kubectl() {
        let pod = json!({"metadata": {"name": "web-1", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"nodeName": "n1", "containers": [{"name": "app"}, {"name": "istio-proxy"}]},
            "status": {"phase": "Running", "podIP": "10.4.0.2", "conditions": [{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}],
                "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}},
                    {"name": "istio-proxy", "ready": true, "restartCount": 0, "state": {"running": {}}}]}});
        let c = cells(&rt("Pod"), &pod);
        assert_eq!(c[..4], [json!("web-1"), json!("2/2"), json!("Running"), json!("0")]);
        assert_eq!(c[5..7], [json!("10.4.0.2"), json!("n1")]);
        let mut crashing = pod.clone();
        crashing["status"]["containerStatuses"][1] = json!({"name": "istio-proxy", "ready": false, "restartCount": 5,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": {"terminated": {"finishedAt": crate::store::now_rfc3339()}}});
        let c = cells(&rt("Pod"), &crashing);
        assert_eq!(c[1], "1/2");
        assert_eq!(c[2], "CrashLoopBackOff");
        assert!(c[3].as_str().unwrap().starts_with("5 ("), "{}", c[3]);
        let mut native = pod.clone();
        native["spec"]["initContainers"] = json!([{"name": "istio-proxy", "restartPolicy": "Always"}]);
        native["spec"]["containers"] = json!([{"name": "app"}]);
        native["status"]["initContainerStatuses"] = json!([{"name": "istio-proxy", "ready": true, "started": true, "restartCount": 0, "state": {"running": {}}}]);
        native["status"]["containerStatuses"] =
            json!([{"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}}]);
        assert_eq!(cells(&rt("Pod"), &native)[1], "2/2", "native sidecars count as containers");
        let mut gone = pod.clone();
        gone["metadata"]["deletionTimestamp"] = json!("2020-01-01T00:00:00Z");
        assert_eq!(cells(&rt("Pod"), &gone)[2], "Terminating");
    }

    #[test]
    fn deployment_rows() {
        let d = json!({"kind": "DeploymentList", "metadata": {"resourceVersion": "7"}, "items": [{"metadata": {"name": "web", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}]});
        let t = table(&rt("Deployment"), &d, "Metadata");
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["metadata"]["resourceVersion"], "7");
        let cols: Vec<&str> =
            t["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(cols, ["Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images", "Selector"]);
        let cells = t["rows"][0]["cells"].as_array().unwrap();
        assert_eq!(cells[..4], [json!("web"), json!("2/3"), json!(3), json!(2)]);
        assert_eq!(cells[7], "app=web");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }
}
