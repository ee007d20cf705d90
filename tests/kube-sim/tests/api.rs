//! kube-sim over real HTTP: discovery, CRUD and Status bodies, concurrency, patches, lists,
//! namespaces, finalizers, GC, dry-run, Services, eviction, faults, stop/restart.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn discovery_answers_like_v1_36() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    let v = c.get("/version").await.json();
    assert_eq!(v["gitVersion"], "v1.36.0");
    assert_eq!(v["major"], "1");
    assert_eq!(v["minor"], "36");
    assert!(v["platform"].is_string());
    let api = c.get("/api").await.json();
    assert_eq!(api["kind"], "APIVersions");
    assert_eq!(api["versions"], json!(["v1"]));
    let core = c.get("/api/v1").await.json();
    assert_eq!(core["kind"], "APIResourceList");
    let find = |list: &Value, name: &str| -> Value {
        list["resources"].as_array().and_then(|a| a.iter().find(|r| r["name"] == name).cloned()).unwrap_or(Value::Null)
    };
    let pods = find(&core, "pods");
    assert_eq!(pods["kind"], "Pod");
    assert_eq!(pods["namespaced"], true);
    assert_eq!(pods["singularName"], "pod");
    assert!(pods["shortNames"].as_array().is_some_and(|s| s.contains(&json!("po"))));
    assert!(pods["verbs"].as_array().is_some_and(|s| s.contains(&json!("watch"))));
    for sub in ["pods/status", "pods/eviction", "services/status", "nodes/status"] {
        assert!(find(&core, sub).is_object(), "{sub} in /api/v1");
    }
    assert_eq!(find(&core, "namespaces")["namespaced"], false);
    let groups = c.get("/apis").await.json();
    assert_eq!(groups["kind"], "APIGroupList");
    let names: Vec<&str> = groups["groups"].as_array().unwrap().iter().filter_map(|g| g["name"].as_str()).collect();
    for g in [
        "apps",
        "batch",
        "policy",
        "events.k8s.io",
        "coordination.k8s.io",
        "rbac.authorization.k8s.io",
        "authorization.k8s.io",
        "apiextensions.k8s.io",
        "admissionregistration.k8s.io",
    ] {
        assert!(names.contains(&g), "group {g}");
    }
    let apps = c.get("/apis/apps/v1").await.json();
    for sub in ["deployments", "deployments/status", "deployments/scale", "replicasets", "statefulsets", "daemonsets"] {
        assert!(find(&apps, sub).is_object(), "{sub} in apps/v1");
    }
    assert_eq!(c.get("/apis/apps").await.json()["preferredVersion"]["version"], "v1");
    assert_eq!(c.get("/apis/nope.example.com/v1").await.status, 404);
}

#[tokio::test]
async fn crud_and_status_bodies() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    let r = c.post("/api/v1/namespaces", &ns_obj("team-a")).await;
    assert_eq!(r.status, 201);
    let ns = r.json();
    assert!(ns["metadata"]["uid"].as_str().is_some_and(|u| !u.is_empty()));
    assert!(ns["metadata"]["creationTimestamp"].is_string());
    let rv1: u64 = ns["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();

    // AlreadyExists
    let r = c.post("/api/v1/namespaces", &ns_obj("team-a")).await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "namespaces \"team-a\" already exists", "reason": "AlreadyExists",
            "details": {"name": "team-a", "kind": "namespaces"}, "code": 409})
    );
    // NotFound
    let r = c.get("/api/v1/namespaces/team-a/pods/nope").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "pods \"nope\" not found", "reason": "NotFound",
            "details": {"name": "nope", "kind": "pods"}, "code": 404})
    );
    let r = c.get("/apis/apps/v1/namespaces/team-a/deployments/nope").await;
    assert_eq!(r.json()["message"], "deployments.apps \"nope\" not found");
    assert_eq!(r.json()["details"]["group"], "apps");
    // namespace must exist
    let r = c.post("/api/v1/namespaces/ghost/pods", &pod("p", json!({}))).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "namespaces \"ghost\" not found");
    // Invalid: label value
    let mut bad = ns_obj("bad");
    bad["metadata"]["labels"] = json!({"a": "-bad"});
    let r = c.post("/api/v1/namespaces", &bad).await;
    assert_eq!(r.status, 422);
    let s = r.json();
    assert_eq!(s["reason"], "Invalid");
    assert_eq!(
        s["message"],
        "Namespace \"bad\" is invalid: metadata.labels: Invalid value: \"-bad\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
    );
    assert_eq!(s["details"]["kind"], "Namespace");
    assert_eq!(s["details"]["causes"][0]["field"], "metadata.labels");
    assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueInvalid");
    // Invalid: name
    let r = c.post("/api/v1/namespaces", &ns_obj("Upper_Case")).await;
    assert_eq!(r.status, 422);
    assert!(r.json()["message"].as_str().unwrap().contains("metadata.name: Invalid value: \"Upper_Case\""));
    // malformed body / wrong JSON type -> 400, never a panic
    let r = c.req("POST", "/api/v1/namespaces", Some("application/json"), b"{not json").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["reason"], "BadRequest");
    let r = c.req("POST", "/api/v1/namespaces", Some("application/json"), b"[1,2]").await;
    assert!(matches!(r.status, 400 | 422), "{}", r.status);
    let r = c.req("POST", "/api/v1/namespaces", Some("application/json"), br#"{"metadata":{"name":7}}"#).await;
    assert!(matches!(r.status, 400 | 422), "{}", r.status);
    // unknown resource
    assert_eq!(c.get("/api/v1/widgets").await.status, 404);
    // generateName
    let r = c.post("/api/v1/namespaces/team-a/configmaps", &json!({"metadata": {"generateName": "cfg-"}})).await;
    assert_eq!(r.status, 201);
    let name = r.json()["metadata"]["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("cfg-") && name.len() > 4, "{name}");
    // resourceVersion is global and monotonic
    let rv2: u64 = r.json()["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    assert!(rv2 > rv1);
    // delete
    let r = c.delete(&format!("/api/v1/namespaces/team-a/configmaps/{name}")).await;
    assert_eq!(r.status, 200);
    assert!(sim.cluster().get("v1", "configmaps", "team-a", &name).is_none());
    // 405
    let r = c.req("POST", "/api/v1/namespaces/team-a/configmaps/x", Some("application/json"), b"{}").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["reason"], "MethodNotAllowed");
}

#[tokio::test]
async fn generation_status_split_and_stale_resource_version() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    c.post("/api/v1/namespaces", &ns_obj("web")).await;
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}});
    let created = c.post("/apis/apps/v1/namespaces/web/deployments", &d).await.json();
    assert_eq!(created["metadata"]["generation"], 1);
    let path = "/apis/apps/v1/namespaces/web/deployments/web";
    // metadata change: no bump
    let v = c.patch(path, "application/merge-patch+json", r#"{"metadata":{"labels":{"x":"y"}}}"#).await.json();
    assert_eq!(v["metadata"]["generation"], 1);
    // spec change: bump
    let v = c.patch(path, "application/merge-patch+json", r#"{"spec":{"replicas":3}}"#).await.json();
    assert_eq!(v["metadata"]["generation"], 2);
    // status through the main resource is ignored
    let v = c.patch(path, "application/merge-patch+json", r#"{"status":{"replicas":9}}"#).await.json();
    assert!(v["status"]["replicas"].is_null(), "{}", v["status"]);
    // status subresource: only status changes, no generation bump
    let v = c
        .patch(
            &format!("{path}/status"),
            "application/merge-patch+json",
            r#"{"status":{"replicas":3},"spec":{"replicas":7}}"#,
        )
        .await
        .json();
    assert_eq!(v["status"]["replicas"], 3);
    assert_eq!(v["spec"]["replicas"], 3);
    assert_eq!(v["metadata"]["generation"], 2);
    // deployments/status keeps spec and labels but takes annotations (deploymentStatusStrategy:
    // the deployment controller writes its revision annotation there).
    let v = c
        .patch(
            &format!("{path}/status"),
            "application/merge-patch+json",
            r#"{"metadata":{"labels":{"x":"z"},"annotations":{"deployment.kubernetes.io/revision":"1"}}}"#,
        )
        .await
        .json();
    assert_eq!(v["metadata"]["labels"], json!({"x": "y"}));
    assert_eq!(v["metadata"]["annotations"], json!({"deployment.kubernetes.io/revision": "1"}));
    assert_eq!(v["metadata"]["generation"], 2);
    // PUT with a stale resourceVersion
    let mut stale = created.clone();
    stale["spec"]["replicas"] = json!(5);
    let r = c.put(path, &stale).await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again",
            "reason": "Conflict", "details": {"name": "web", "group": "apps", "kind": "deployments"}, "code": 409})
    );
    // patch carrying a stale resourceVersion
    let rv = created["metadata"]["resourceVersion"].as_str().unwrap();
    let r = c
        .patch(
            path,
            "application/merge-patch+json",
            &format!(r#"{{"metadata":{{"resourceVersion":"{rv}"}},"spec":{{"replicas":4}}}}"#),
        )
        .await;
    assert_eq!(r.status, 409);
    // PUT with the current one works
    let mut cur = c.get(path).await.json();
    cur["spec"]["replicas"] = json!(5);
    let r = c.put(path, &cur).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["metadata"]["generation"], 3);
    // namespaces: the exact message from the brief
    let ns = c.get("/api/v1/namespaces/web").await.json();
    c.patch("/api/v1/namespaces/web", "application/merge-patch+json", r#"{"metadata":{"labels":{"a":"b"}}}"#).await;
    let r = c.put("/api/v1/namespaces/web", &ns).await;
    assert_eq!(
        r.json()["message"],
        "Operation cannot be fulfilled on namespaces \"web\": the object has been modified; please apply your changes to the latest version and try again"
    );
}

#[tokio::test]
async fn every_patch_type_is_routed() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    c.post("/api/v1/namespaces", &ns_obj("p")).await;
    c.post("/api/v1/namespaces/p/pods", &pod("a", json!({"app": "a"}))).await;
    let path = "/api/v1/namespaces/p/pods/a";
    let r = c.patch(path, "application/merge-patch+json", r#"{"metadata":{"labels":{"m":"1"}}}"#).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["metadata"]["labels"]["m"], "1");
    let r =
        c.patch(path, "application/json-patch+json", r#"[{"op":"add","path":"/metadata/labels/j","value":"2"}]"#).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["metadata"]["labels"]["j"], "2");
    // 03-patch-errors.json: a JSON patch that fails while applying (a failed test, missing
    // paths) is the generic 422 with empty details
    for ops in [
        r#"[{"op":"test","path":"/metadata/labels/j","value":"x"}]"#,
        r#"[{"op":"test","path":"/metadata/labels/absent","value":"x"}]"#,
        r#"[{"op":"replace","path":"/metadata/annotations/absent","value":"x"}]"#,
        r#"[{"op":"remove","path":"/metadata/labels/absent"}]"#,
        r#"[{"op":"add","path":"/metadata/annotations/rec~1x","value":"x"}]"#,
        r#"[{"op":"frobnicate","path":"/metadata"}]"#,
    ] {
        let r = c.patch(path, "application/json-patch+json", ops).await;
        assert_eq!(r.status, 422, "{ops}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(
            r.json(),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "the server rejected our request due to an error in our request", "reason": "Invalid",
                "details": {}, "code": 422}),
            "{ops}"
        );
    }
    // ... one the server cannot decode is a 400 with Go's message
    let r = c.patch(path, "application/json-patch+json", r#"{"op":"add","path":"/data/x","value":"y"}"#).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "error decoding patch: json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp"
    );
    let r = c.patch(path, "application/merge-patch+json", "{not json").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "error decoding patch: invalid character 'n' looking for beginning of object key string"
    );
    // strategic merge: containers merge by name
    let r = c
        .patch(
            path,
            "application/strategic-merge-patch+json",
            r#"{"spec":{"containers":[{"name":"side","image":"busybox"}]}}"#,
        )
        .await;
    assert_eq!(r.status, 200);
    let names: Vec<Value> =
        r.json()["spec"]["containers"].as_array().unwrap().iter().map(|c| c["name"].clone()).collect();
    assert_eq!(names, vec![json!("app"), json!("side")]);
    // server-side apply, YAML body, needs a fieldManager
    let apply = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  labels:\n    applied: \"yes\"\n";
    let r = c.patch(path, "application/apply-patch+yaml", apply).await;
    assert_eq!(r.status, 422);
    let r = c.patch(&format!("{path}?fieldManager=tester"), "application/apply-patch+yaml", apply).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["metadata"]["labels"]["applied"], "yes");
    let managers: Vec<&str> =
        v["metadata"]["managedFields"].as_array().unwrap().iter().filter_map(|m| m["manager"].as_str()).collect();
    assert!(managers.contains(&"tester"), "{managers:?}");
    assert!(managers.contains(&"kube-sim-test"), "default manager from the User-Agent: {managers:?}");
    // apply creates when absent
    let r = c
        .patch(
            "/api/v1/namespaces/p/configmaps/made?fieldManager=tester",
            "application/apply-patch+yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: made\ndata:\n  k: v\n",
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    // conflict between managers, then force
    let r = c
        .patch(
            "/api/v1/namespaces/p/configmaps/made?fieldManager=other",
            "application/apply-patch+yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: made\ndata:\n  k: w\n",
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["reason"], "Conflict");
    assert!(r.json()["message"].as_str().unwrap().contains("conflict"), "{}", r.json()["message"]);
    let r = c
        .patch(
            "/api/v1/namespaces/p/configmaps/made?fieldManager=other&force=true",
            "application/apply-patch+yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: made\ndata:\n  k: w\n",
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(sim.cluster().get("v1", "configmaps", "p", "made").unwrap()["data"]["k"], "w");
    // unknown patch type (03-patch-errors.json: also application/json)
    for ctype in ["text/plain", "application/json"] {
        let r = c.patch(path, ctype, "{}").await;
        assert_eq!(r.status, 415);
        assert_eq!(
            r.json(),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "415: Unsupported Media Type", "reason": "UnsupportedMediaType", "details": {}, "code": 415})
        );
    }
    // strategic merge on a custom resource: 415
    sim.cluster()
        .register_crd("security.istio.io", "v1beta1", "PeerAuthentication", "peerauthentications", true)
        .unwrap();
    let r = c
        .post(
            "/apis/security.istio.io/v1beta1/namespaces/p/peerauthentications",
            &json!({"apiVersion": "security.istio.io/v1beta1", "kind": "PeerAuthentication", "metadata": {"name": "default"}, "spec": {"mtls": {"mode": "STRICT"}}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let r = c
        .patch(
            "/apis/security.istio.io/v1beta1/namespaces/p/peerauthentications/default",
            "application/strategic-merge-patch+json",
            "{}",
        )
        .await;
    assert_eq!(r.status, 415);
    // malformed patch bodies are 400
    let r = c.patch(path, "application/merge-patch+json", "{").await;
    assert_eq!(r.status, 400);
    let r = c.patch(path, "application/json-patch+json", r#"{"op":"add"}"#).await;
    assert!(matches!(r.status, 400 | 422), "{}", r.status);
}

#[tokio::test]
async fn list_selectors_and_pagination() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    let cl = sim.cluster();
    for ns in ["a", "b"] {
        cl.create("v1", "namespaces", "", ns_obj(ns)).unwrap();
    }
    cl.create("v1", "pods", "a", pod("p1", json!({"app": "web", "tier": "fe"}))).unwrap();
    cl.create("v1", "pods", "a", pod("p2", json!({"app": "api"}))).unwrap();
    cl.create("v1", "pods", "b", pod("p3", json!({"app": "web"}))).unwrap();
    cl.create("v1", "pods", "b", pod("p4", json!({}))).unwrap();
    let names = |v: Value| -> Vec<String> {
        let mut n: Vec<String> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    };
    let q = |sel: &str| format!("/api/v1/pods?labelSelector={sel}");
    assert_eq!(names(c.get(&q("app%3Dweb")).await.json()), ["p1", "p3"]);
    assert_eq!(names(c.get(&q("app%3D%3Dweb")).await.json()), ["p1", "p3"]);
    assert_eq!(names(c.get(&q("app!%3Dweb")).await.json()), ["p2", "p4"]);
    assert_eq!(names(c.get(&q("app%20in%20(web,api)")).await.json()), ["p1", "p2", "p3"]);
    assert_eq!(names(c.get(&q("app%20notin%20(web)")).await.json()), ["p2", "p4"]);
    assert_eq!(names(c.get(&q("tier")).await.json()), ["p1"]);
    assert_eq!(names(c.get(&q("!app")).await.json()), ["p4"]);
    assert_eq!(names(c.get(&q("app%3Dweb,tier")).await.json()), ["p1"]);
    let list = c.get("/api/v1/namespaces/a/pods").await.json();
    assert_eq!(list["kind"], "PodList");
    assert_eq!(list["apiVersion"], "v1");
    assert!(list["metadata"]["resourceVersion"].is_string());
    assert_eq!(names(list), ["p1", "p2"]);
    // bad selector
    let r = c.get(&q("app%20in%20web")).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["reason"], "BadRequest");
    // field selectors
    assert_eq!(names(c.get("/api/v1/pods?fieldSelector=metadata.name%3Dp3").await.json()), ["p3"]);
    assert_eq!(names(c.get("/api/v1/pods?fieldSelector=metadata.namespace!%3Da").await.json()), ["p3", "p4"]);
    let r = c.get("/api/v1/pods?fieldSelector=spec.bogus%3Dx").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "field label not supported: spec.bogus");
    // limit / continue
    let page1 = c.get("/api/v1/pods?limit=3").await.json();
    assert_eq!(page1["items"].as_array().unwrap().len(), 3);
    let cont = page1["metadata"]["continue"].as_str().unwrap().to_string();
    let page2 = c.get(&format!("/api/v1/pods?limit=3&continue={cont}")).await.json();
    assert_eq!(page2["items"].as_array().unwrap().len(), 1);
    assert!(page2["metadata"]["continue"].is_null() || page2["metadata"]["continue"] == "");
    let mut all = names(page1);
    all.extend(names(page2));
    all.sort();
    assert_eq!(all, ["p1", "p2", "p3", "p4"]);
    assert_eq!(c.get("/api/v1/pods?continue=not-base64!").await.status, 400);
    // a continue token older than the retained history: 410 Expired
    cl.create("v1", "configmaps", "a", json!({"metadata": {"name": "later"}})).unwrap();
    sim.faults().compact();
    let r = c.get(&format!("/api/v1/pods?limit=3&continue={cont}")).await;
    assert_eq!(r.status, 410);
    assert_eq!(r.json()["reason"], "Expired");
}

#[tokio::test]
async fn namespace_cascade_and_terminating() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    let cl = sim.cluster();
    cl.create("v1", "namespaces", "", ns_obj("gone")).unwrap();
    cl.create("v1", "pods", "gone", pod("p", json!({}))).unwrap();
    cl.create("v1", "configmaps", "gone", json!({"metadata": {"name": "c"}})).unwrap();
    // a finalizer keeps one object (and so the namespace) around
    cl.create("v1", "configmaps", "gone", json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}))
        .unwrap();
    let r = c.delete("/api/v1/namespaces/gone").await;
    assert_eq!(r.status, 200);
    let ns = cl.get("v1", "namespaces", "", "gone").expect("still terminating");
    assert_eq!(ns["status"]["phase"], "Terminating");
    assert!(ns["metadata"]["deletionTimestamp"].is_string());
    assert!(cl.get("v1", "pods", "gone", "p").is_none());
    assert!(cl.get("v1", "configmaps", "gone", "c").is_none());
    let held = cl.get("v1", "configmaps", "gone", "held").expect("held by its finalizer");
    assert!(held["metadata"]["deletionTimestamp"].is_string());
    let r = c.post("/api/v1/namespaces/gone/configmaps", &json!({"metadata": {"name": "late"}})).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["reason"], "Forbidden");
    assert_eq!(
        r.json()["message"],
        "configmaps \"late\" is forbidden: unable to create new content in namespace gone because it is being terminated"
    );
    // removing the last finalizer lets the object, then the namespace, go
    c.patch(
        "/api/v1/namespaces/gone/configmaps/held",
        "application/merge-patch+json",
        r#"{"metadata":{"finalizers":null}}"#,
    )
    .await;
    assert!(cl.get("v1", "configmaps", "gone", "held").is_none());
    assert!(cl.get("v1", "namespaces", "", "gone").is_none());
}

#[tokio::test]
async fn owner_references_are_garbage_collected() {
    let sim = sim().await;
    let cl = sim.cluster();
    cl.create("v1", "namespaces", "", ns_obj("gc")).unwrap();
    let d = cl
        .create(
            "apps/v1",
            "deployments",
            "gc",
            json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
        )
        .unwrap();
    let oref = |o: &Value, kind: &str, api: &str| json!([{"apiVersion": api, "kind": kind, "name": o["metadata"]["name"], "uid": o["metadata"]["uid"], "controller": true}]);
    let rs = cl
        .create(
            "apps/v1",
            "replicasets",
            "gc",
            json!({"metadata": {"name": "d-1", "ownerReferences": oref(&d, "Deployment", "apps/v1")},
                "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
        )
        .unwrap();
    let mut p = pod("d-1-x", json!({"a": "b"}));
    p["metadata"]["ownerReferences"] = oref(&rs, "ReplicaSet", "apps/v1");
    cl.create("v1", "pods", "gc", p).unwrap();
    cl.create("v1", "pods", "gc", pod("bystander", json!({"a": "b"}))).unwrap();
    cl.delete("apps/v1", "deployments", "gc", "d").unwrap();
    assert!(cl.get("apps/v1", "replicasets", "gc", "d-1").is_none());
    assert!(cl.get("v1", "pods", "gc", "d-1-x").is_none());
    assert!(cl.get("v1", "pods", "gc", "bystander").is_some());
}

#[tokio::test]
async fn dry_run_stores_nothing() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    let cl = sim.cluster();
    cl.create("v1", "namespaces", "", ns_obj("d")).unwrap();
    let before = cl.resource_version();
    let r = c.post("/api/v1/namespaces/d/configmaps?dryRun=All", &json!({"metadata": {"name": "x"}})).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["metadata"]["name"], "x");
    assert!(cl.get("v1", "configmaps", "d", "x").is_none());
    let r = c.post("/api/v1/namespaces/d/configmaps?dryRun=All", &json!({"metadata": {"name": "-x"}})).await;
    assert_eq!(r.status, 422, "dry-run still validates");
    let r = c
        .patch(
            "/api/v1/namespaces/d?dryRun=All",
            "application/merge-patch+json",
            r#"{"metadata":{"labels":{"k":"v"}}}"#,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["metadata"]["labels"]["k"], "v");
    assert!(cl.get("v1", "namespaces", "", "d").unwrap()["metadata"]["labels"]["k"].is_null());
    let r = c.delete("/api/v1/namespaces/d?dryRun=All").await;
    assert_eq!(r.status, 200);
    assert!(cl.get("v1", "namespaces", "", "d").is_some());
    assert_eq!(cl.resource_version(), before);
    // fieldValidation=Strict is accepted
    let r = c.post("/api/v1/namespaces/d/configmaps?fieldValidation=Strict", &json!({"metadata": {"name": "y"}})).await;
    assert_eq!(r.status, 201);
}

#[tokio::test]
async fn services_cluster_ip_and_node_ports() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    let cl = sim.cluster();
    cl.create("v1", "namespaces", "", ns_obj("istio-system")).unwrap();
    let svc = |name: &str, np: Option<u32>| {
        let mut port = json!({"name": "http2", "port": 80, "targetPort": 80, "protocol": "TCP"});
        if let Some(n) = np {
            port["nodePort"] = json!(n);
        }
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": {"type": "NodePort", "ports": [port]}})
    };
    let r = c.post("/api/v1/namespaces/istio-system/services", &svc("gw", Some(31380))).await;
    assert_eq!(r.status, 201);
    let v = r.json();
    assert_eq!(v["spec"]["ports"][0]["nodePort"], 31380);
    let ip = v["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(ip.starts_with("10.9") || ip.starts_with("10.10") || ip.starts_with("10.11"), "{ip}");
    let auto = c.post("/api/v1/namespaces/istio-system/services", &svc("auto", None)).await.json();
    let np = auto["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    assert!((30000..=32767).contains(&np) && np != 31380);
    let r = c.post("/api/v1/namespaces/istio-system/services", &svc("other", Some(31380))).await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["message"],
        "Service \"other\" is invalid: spec.ports[0].nodePort: Invalid value: 31380: provided port is already allocated"
    );
    let r = c.post("/api/v1/namespaces/istio-system/services", &svc("far", Some(80))).await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["message"],
        "Service \"far\" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"
    );
    // clusterIP is immutable
    let r = c
        .patch(
            "/api/v1/namespaces/istio-system/services/gw",
            "application/merge-patch+json",
            r#"{"spec":{"clusterIP":"10.96.99.99"}}"#,
        )
        .await;
    assert_eq!(r.status, 422);
    // deleting releases the port
    c.delete("/api/v1/namespaces/istio-system/services/gw").await;
    let r = c.post("/api/v1/namespaces/istio-system/services", &svc("other", Some(31380))).await;
    assert_eq!(r.status, 201);
    // a type change to ClusterIP releases it too
    c.patch(
        "/api/v1/namespaces/istio-system/services/other",
        "application/merge-patch+json",
        r#"{"spec":{"type":"ClusterIP","ports":[{"name":"http2","port":80,"targetPort":80,"protocol":"TCP"}]}}"#,
    )
    .await;
    let r = c.post("/api/v1/namespaces/istio-system/services", &svc("third", Some(31380))).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
}

/// 06-nodeport.json: defaulting, what the registry allocates (owned by nobody) and the 422s.
#[tokio::test]
async fn services_default_and_allocate_like_a_real_server() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    sim.cluster().create("v1", "namespaces", "", ns_obj("svc")).unwrap();
    let r = c
        .post(
            "/api/v1/namespaces/svc/services",
            &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "np-auto"},
                "spec": {"type": "NodePort", "selector": {"app": "np-auto"},
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}, {"name": "https", "port": 443}]}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    let spec = &v["spec"];
    assert_eq!(spec["ports"][1]["protocol"], "TCP");
    assert_eq!(spec["ports"][1]["targetPort"], 443);
    for (f, want) in [
        ("sessionAffinity", json!("None")),
        ("externalTrafficPolicy", json!("Cluster")),
        ("internalTrafficPolicy", json!("Cluster")),
        ("ipFamilies", json!(["IPv4"])),
        ("ipFamilyPolicy", json!("SingleStack")),
    ] {
        assert_eq!(spec[f], want, "{f}");
    }
    assert_eq!(spec["clusterIPs"], json!([spec["clusterIP"]]));
    assert!(spec["ports"].as_array().unwrap().iter().all(|p| p["nodePort"].as_i64().is_some()));
    assert_eq!(v["status"], json!({"loadBalancer": {}}));
    // The creator owns what it sent and the defaults, not what the registry allocated.
    let mf = &v["metadata"]["managedFields"];
    assert_eq!(mf.as_array().unwrap().len(), 1);
    let owned = mf[0]["fieldsV1"]["f:spec"].as_object().unwrap();
    for f in ["f:sessionAffinity", "f:externalTrafficPolicy", "f:internalTrafficPolicy", "f:type", "f:ports"] {
        assert!(owned.contains_key(f), "creator owns {f}: {mf}");
    }
    for f in ["f:clusterIP", "f:clusterIPs", "f:ipFamilies", "f:ipFamilyPolicy"] {
        assert!(!owned.contains_key(f), "nobody owns {f}: {mf}");
    }
    let port443 = &owned["f:ports"]["k:{\"port\":443,\"protocol\":\"TCP\"}"];
    assert!(port443.get("f:targetPort").is_some() && port443.get("f:nodePort").is_none(), "{port443}");
    // So another manager applying a nodePort of its own conflicts with nobody.
    let np = spec["ports"][0]["nodePort"].as_i64().unwrap();
    let want = if np == 32080 { 32081 } else { 32080 };
    let r = c
        .patch(
            "/api/v1/namespaces/svc/services/np-auto?fieldManager=meshkeeper",
            "application/apply-patch+yaml",
            &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "np-auto"},
                "spec": {"ports": [{"port": 80, "protocol": "TCP", "nodePort": want}]}})
            .to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["spec"]["ports"][0]["nodePort"], want);
    // A nodePort on a ClusterIP Service is forbidden.
    let r = c
        .post(
            "/api/v1/namespaces/svc/services",
            &json!({"metadata": {"name": "cip-np"}, "spec": {"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 31998}]}}),
        )
        .await;
    assert_eq!(r.status, 422);
    let e = r.json();
    assert_eq!(
        e["message"],
        "Service \"cip-np\" is invalid: spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
    );
    assert_eq!(e["details"]["causes"][0]["reason"], "FieldValueForbidden");
    // Ports are required, except on a headless Service and an ExternalName one (ValidateService).
    let no_ports = |name: &str, spec: serde_json::Value| json!({"metadata": {"name": name}, "spec": spec});
    let r = c.post("/api/v1/namespaces/svc/services", &no_ports("none", json!({"selector": {"app": "x"}}))).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["message"], "Service \"none\" is invalid: spec.ports: Required value");
    for (name, spec) in [
        ("headless", json!({"clusterIP": "None", "selector": {"app": "x"}})),
        ("external", json!({"type": "ExternalName", "externalName": "example.com"})),
    ] {
        let r = c.post("/api/v1/namespaces/svc/services", &no_ports(name, spec)).await;
        assert_eq!(r.status, 201, "{name}: {}", String::from_utf8_lossy(&r.body));
    }
    assert_eq!(c.get("/api/v1/namespaces/svc/services/headless").await.json()["spec"]["clusterIPs"], json!(["None"]));
    // A PUT switching to ClusterIP that keeps the allocated nodePorts drops them (dropTypeDependentFields).
    let mut cur = c.get("/api/v1/namespaces/svc/services/np-auto").await.json();
    cur["spec"]["type"] = json!("ClusterIP");
    let r = c.put("/api/v1/namespaces/svc/services/np-auto", &cur).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert!(v["spec"]["ports"].as_array().unwrap().iter().all(|p| p.get("nodePort").is_none()), "{v}");
    assert_eq!(v["spec"]["clusterIP"], spec["clusterIP"], "the clusterIP stays");
    assert!(v["spec"].get("externalTrafficPolicy").is_none(), "only for externally accessible Services");
    // A PUT that leaves out the clusterIP keeps the allocated one.
    let mut cur = v.clone();
    cur["spec"].as_object_mut().unwrap().remove("clusterIP");
    cur["spec"].as_object_mut().unwrap().remove("clusterIPs");
    let r = c.put("/api/v1/namespaces/svc/services/np-auto", &cur).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["spec"]["clusterIP"], spec["clusterIP"]);
}

/// 01-lease-missing-namespace.json and 02-stale-resourceversion.json.
#[tokio::test]
async fn leases_refuse_unconditional_updates_and_deletes_honour_preconditions() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    // A namespace that does not exist: create, apply and PUT are 404 for the namespace.
    let lease = |ns: &str, holder: &str| {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "stale", "namespace": ns},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15}})
    };
    let missing = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "namespaces \"nope\" not found", "reason": "NotFound", "details": {"name": "nope", "kind": "namespaces"}, "code": 404});
    let r = c.post("/apis/coordination.k8s.io/v1/namespaces/nope/leases", &lease("nope", "a")).await;
    assert_eq!((r.status, r.json()), (404, missing.clone()));
    let r = c
        .patch(
            "/apis/coordination.k8s.io/v1/namespaces/nope/leases/stale?fieldManager=rec",
            "application/apply-patch+yaml",
            &lease("nope", "a").to_string(),
        )
        .await;
    assert_eq!((r.status, r.json()), (404, missing.clone()));
    let r = c.put("/apis/coordination.k8s.io/v1/namespaces/nope/leases/stale", &lease("nope", "a")).await;
    assert_eq!((r.status, r.json()), (404, missing));
    let r = c.get("/apis/coordination.k8s.io/v1/namespaces/nope/leases").await;
    assert_eq!((r.status, r.json()["items"].clone()), (200, json!([])));

    sim.cluster().create("v1", "namespaces", "", ns_obj("w")).unwrap();
    let path = "/apis/coordination.k8s.io/v1/namespaces/w/leases/stale";
    let created = c.post("/apis/coordination.k8s.io/v1/namespaces/w/leases", &lease("w", "rec-1")).await.json();
    let stale_rv = created["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let mut put = created.clone();
    put["spec"]["holderIdentity"] = json!("rec-2");
    assert_eq!(c.put(path, &put).await.status, 200, "PUT with the current resourceVersion");
    put["spec"]["holderIdentity"] = json!("rec-3");
    let conflict = "Operation cannot be fulfilled on leases.coordination.k8s.io \"stale\": the object has been modified; please apply your changes to the latest version and try again";
    let r = c.put(path, &put).await;
    assert_eq!((r.status, r.json()["message"].as_str()), (409, Some(conflict)), "stale PUT");
    for (ctype, body) in [
        (
            "application/merge-patch+json",
            json!({"metadata": {"resourceVersion": stale_rv}, "spec": {"holderIdentity": "rec-4"}}),
        ),
        (
            "application/strategic-merge-patch+json",
            json!({"metadata": {"resourceVersion": stale_rv}, "spec": {"holderIdentity": "rec-5"}}),
        ),
        (
            "application/json-patch+json",
            json!([{"op": "replace", "path": "/metadata/resourceVersion", "value": stale_rv}, {"op": "replace", "path": "/spec/holderIdentity", "value": "rec-6"}]),
        ),
    ] {
        let r = c.patch(path, ctype, &body.to_string()).await;
        assert_eq!((r.status, r.json()["message"].as_str()), (409, Some(conflict)), "{ctype}");
    }
    let r = c.patch(path, "application/merge-patch+json", r#"{"spec":{"holderIdentity":"rec-7"}}"#).await;
    assert_eq!(r.status, 200, "a patch without resourceVersion is unconditional");
    let current = r.json();
    // A Lease PUT without resourceVersion: 422 (AllowUnconditionalUpdate is false) ...
    let mut unconditional = current.clone();
    unconditional["metadata"].as_object_mut().unwrap().remove("resourceVersion");
    unconditional["spec"]["holderIdentity"] = json!("rec-8");
    let r = c.put(path, &unconditional).await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "leases.coordination.k8s.io \"stale\" is invalid: metadata.resourceVersion: Invalid value: 0: must be specified for an update",
            "reason": "Invalid", "details": {"name": "stale", "group": "coordination.k8s.io", "kind": "leases",
                "causes": [{"reason": "FieldValueInvalid", "message": "Invalid value: 0: must be specified for an update", "field": "metadata.resourceVersion"}]},
            "code": 422})
    );
    // ... a ConfigMap's is fine.
    c.post("/api/v1/namespaces/w/configmaps", &json!({"metadata": {"name": "uncond"}, "data": {"k": "1"}})).await;
    let r = c
        .put("/api/v1/namespaces/w/configmaps/uncond", &json!({"metadata": {"name": "uncond"}, "data": {"k": "2"}}))
        .await;
    assert_eq!(r.status, 200);
    // Deletes with stale preconditions: 409 with the real texts, and nothing deleted.
    let rv = current["metadata"]["resourceVersion"].as_str().unwrap();
    let uid = current["metadata"]["uid"].as_str().unwrap();
    let r = c
        .req(
            "DELETE",
            path,
            Some("application/json"),
            json!({"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"resourceVersion": stale_rv}})
                .to_string()
                .as_bytes(),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("Operation cannot be fulfilled on Lease.coordination.k8s.io \"stale\": the ResourceVersion in the precondition ({stale_rv}) does not match the ResourceVersion in record ({rv}). The object might have been modified"),
            "reason": "Conflict", "details": {"name": "stale", "group": "coordination.k8s.io", "kind": "Lease"}, "code": 409})
    );
    let wrong = "00000000-0000-0000-0000-000000000000";
    let r = c
        .req("DELETE", path, Some("application/json"), json!({"preconditions": {"uid": wrong}}).to_string().as_bytes())
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json()["message"],
        format!(
            "Operation cannot be fulfilled on Lease.coordination.k8s.io \"stale\": the UID in the precondition ({wrong}) does not match the UID in record ({uid}). The object might have been deleted and then recreated"
        )
    );
    assert_eq!(c.get(path).await.status, 200, "still there");
    let r = c
        .req(
            "DELETE",
            path,
            Some("application/json"),
            json!({"preconditions": {"uid": uid, "resourceVersion": rv}}).to_string().as_bytes(),
        )
        .await;
    assert_eq!(r.status, 200, "matching preconditions delete");
    // A PUT of a Lease that does not exist creates it (AllowCreateOnUpdate).
    let r = c.put(path, &lease("w", "new")).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
}

/// 10-events-v1.json: one storage served by both Event APIs, converted, and validated.
#[tokio::test]
async fn events_k8s_io_v1_and_core_v1_are_one_resource() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    sim.cluster().create("v1", "namespaces", "", ns_obj("ev")).unwrap();
    let rv = sim.cluster().resource_version();
    let mut w = c.watch(&format!("/apis/events.k8s.io/v1/namespaces/ev/events?watch=1&resourceVersion={rv}")).await;
    let mut core_w = c.watch(&format!("/api/v1/namespaces/ev/events?watch=1&resourceVersion={rv}")).await;
    let ev = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e1"},
        "eventTime": "2026-12-01T07:44:49.354257Z", "reportingController": "meshkeeper", "reportingInstance": "pod-a",
        "action": "Repair", "reason": "Repaired", "type": "Normal", "note": "label restored",
        "regarding": {"apiVersion": "v1", "kind": "Pod", "namespace": "ev", "name": "web-0"}});
    let r = c.post("/apis/events.k8s.io/v1/namespaces/ev/events", &ev).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let created = r.json();
    assert_eq!(created["deprecatedSource"], json!({}));
    assert!(created["deprecatedFirstTimestamp"].is_null());
    // Through core/v1: the same object (uid, resourceVersion), converted.
    let core = c.get("/api/v1/namespaces/ev/events/e1").await.json();
    assert_eq!(
        (core["apiVersion"].as_str(), core["metadata"]["uid"].clone()),
        (Some("v1"), created["metadata"]["uid"].clone())
    );
    assert_eq!(core["metadata"]["resourceVersion"], created["metadata"]["resourceVersion"]);
    assert_eq!(
        (core["involvedObject"]["name"].as_str(), core["message"].as_str()),
        (Some("web-0"), Some("label restored"))
    );
    assert_eq!(core["reportingComponent"], "meshkeeper");
    let listed = c.get("/api/v1/namespaces/ev/events").await.json();
    assert_eq!(listed["items"][0]["message"], "label restored");
    let listed = c.get("/apis/events.k8s.io/v1/events").await.json();
    assert_eq!(
        (listed["kind"].as_str(), listed["items"][0]["note"].as_str()),
        (Some("EventList"), Some("label restored"))
    );
    // Each watch sees it in its own form.
    let e = w.next().await.unwrap();
    assert_eq!((e["type"].as_str(), e["object"]["note"].as_str()), (Some("ADDED"), Some("label restored")));
    let e = core_w.next().await.unwrap();
    assert_eq!(e["object"]["message"], "label restored");
    // A series update (what kube-runtime's Recorder sends for repeats) passes; changing the note does not.
    let r = c
        .patch(
            "/apis/events.k8s.io/v1/namespaces/ev/events/e1",
            "application/merge-patch+json",
            r#"{"series":{"count":2,"lastObservedTime":"2026-12-01T07:45:49.000000Z"}}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(c.get("/api/v1/namespaces/ev/events/e1").await.json()["series"]["count"], 2);
    let r = c
        .patch("/apis/events.k8s.io/v1/namespaces/ev/events/e1", "application/merge-patch+json", r#"{"note":"other"}"#)
        .await;
    assert_eq!(r.status, 422);
    assert!(
        r.json()["message"].as_str().unwrap().contains("message: Invalid value: \"other\": field is immutable"),
        "{}",
        r.json()
    );
    // core/v1 gets only the legacy checks: an old-style Event without eventTime is fine.
    let old_style = json!({"metadata": {"name": "e2"}, "involvedObject": {"kind": "Pod", "namespace": "ev", "name": "web-0"},
        "reason": "Started", "message": "started", "type": "Normal", "source": {"component": "kubelet"}});
    let r = c.post("/api/v1/namespaces/ev/events", &old_style).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let v1 = c.get("/apis/events.k8s.io/v1/namespaces/ev/events/e2").await.json();
    assert_eq!((v1["deprecatedSource"]["component"].as_str(), v1["note"].as_str()), (Some("kubelet"), Some("started")));
    // ... but not one naming another namespace's object.
    let mut wrong = old_style.clone();
    wrong["metadata"]["name"] = json!("e3");
    wrong["involvedObject"]["namespace"] = json!("elsewhere");
    let r = c.post("/api/v1/namespaces/ev/events", &wrong).await;
    assert_eq!(r.status, 422);
    // Deleting through one API removes it from both.
    assert_eq!(c.delete("/apis/events.k8s.io/v1/namespaces/ev/events/e2").await.status, 200);
    assert_eq!(c.get("/api/v1/namespaces/ev/events/e2").await.status, 404);
    assert_eq!(sim.cluster().list("events.k8s.io/v1", "events", Some("ev"))[0]["note"], "label restored");
}

/// 03-patch-errors.json: fields the schema does not declare are dropped, with a Warning by
/// default and under fieldValidation=Warn, a 400 under Strict, silently under Ignore; patches too.
#[tokio::test]
async fn unknown_fields_follow_field_validation() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    c.post("/api/v1/namespaces", &ns_obj("uf")).await;
    let cm = |name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "bogusMeta": 1}, "data": {"k": "v"}, "bogus": 1});
    let r = c.post("/api/v1/namespaces/uf/configmaps", &cm("a")).await;
    assert_eq!(r.status, 201);
    let warnings: Vec<&str> =
        r.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case("warning")).map(|(_, v)| v.as_str()).collect();
    assert_eq!(warnings, [r#"299 - "unknown field \"bogus\"""#, r#"299 - "unknown field \"metadata.bogusMeta\"""#]);
    let v = r.json();
    assert!(v.get("bogus").is_none() && v["metadata"].get("bogusMeta").is_none(), "dropped: {v}");
    assert!(v["metadata"]["managedFields"][0]["fieldsV1"].get("f:bogus").is_none(), "and owned by nobody");
    let r = c.post("/api/v1/namespaces/uf/configmaps?fieldValidation=Strict", &cm("b")).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        r#"ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "bogus", unknown field "metadata.bogusMeta""#
    );
    let r = c.post("/api/v1/namespaces/uf/configmaps?fieldValidation=Ignore", &cm("c")).await;
    assert_eq!((r.status, r.header("Warning")), (201, None));
    let r = c.post("/api/v1/namespaces/uf/configmaps?fieldValidation=strict", &cm("d")).await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["message"],
        r#"CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "strict": supported values: "", "Ignore", "Strict", "Warn""#
    );
    // A merge patch adding an unknown field: warned and dropped; an apply too.
    let r = c
        .patch("/api/v1/namespaces/uf/configmaps/a", "application/merge-patch+json", r#"{"bogus":2,"data":{"x":"y"}}"#)
        .await;
    assert_eq!((r.status, r.header("Warning")), (200, Some(r#"299 - "unknown field \"bogus\"""#)));
    assert!(r.json().get("bogus").is_none());
    let r = c
        .patch(
            "/api/v1/namespaces/uf/configmaps/a?fieldManager=t",
            "application/apply-patch+yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\nbogus: 3\n",
        )
        .await;
    assert_eq!(r.status, 200);
    let mf = r.json()["metadata"]["managedFields"].clone();
    assert!(!mf.to_string().contains("bogus"), "{mf}");
}

/// 15-discovery.json and 14-access-reviews.json: what the extra resources and reviews answer.
#[tokio::test]
async fn subresources_reviews_and_verbs() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    let cl = sim.cluster();
    cl.create("v1", "namespaces", "", ns_obj("s")).unwrap();
    cl.create("v1", "pods", "s", pod("p", json!({}))).unwrap();
    // Namespaces have no deletecollection.
    assert_eq!(c.delete("/api/v1/namespaces").await.status, 405);
    // Binding a pod sets its node, once.
    let bind = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "node-1"}});
    assert_eq!(c.post("/api/v1/namespaces/s/pods/p/binding", &bind).await.status, 201);
    assert_eq!(cl.get("v1", "pods", "s", "p").unwrap()["spec"]["nodeName"], "node-1");
    let r = c.post("/api/v1/namespaces/s/bindings", &bind).await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json()["message"],
        "Operation cannot be fulfilled on pods/binding \"p\": pod p is already assigned to node \"node-1\""
    );
    // Logs are empty (nothing runs), exec needs an upgrade, services have no endpoints.
    let r = c.get("/api/v1/namespaces/s/pods/p/log").await;
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(c.post("/api/v1/namespaces/s/pods/p/exec", &json!({})).await.status, 400);
    assert_eq!(c.get("/api/v1/namespaces/s/pods/nope/log").await.status, 404);
    cl.create("v1", "services", "s", json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}})).unwrap();
    assert_eq!(c.get("/api/v1/namespaces/s/services/web/proxy").await.status, 503);
    // ServiceAccount tokens.
    cl.create("v1", "serviceaccounts", "s", json!({"metadata": {"name": "sa"}})).unwrap();
    let r = c.post("/api/v1/namespaces/s/serviceaccounts/sa/token", &json!({"spec": {}})).await;
    assert_eq!(r.status, 201);
    let token = r.json()["status"]["token"].as_str().unwrap().to_string();
    // ... that a TokenReview recognises.
    let r = c.post("/apis/authentication.k8s.io/v1/tokenreviews", &json!({"spec": {"token": token}})).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["status"]["user"]["username"], "system:serviceaccount:s:sa");
    // componentstatuses are computed and read-only.
    let cs = c.get("/api/v1/componentstatuses").await.json();
    assert_eq!(cs["items"].as_array().unwrap().len(), 3);
    assert_eq!(c.post("/api/v1/componentstatuses", &json!({"metadata": {"name": "x"}})).await.status, 405);
    // SubjectAccessReview: a user or group is required; without RBAC everything is allowed.
    let sar =
        |spec: Value| json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec});
    let r = c
        .post(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            &sar(json!({"resourceAttributes": {"verb": "get", "resource": "pods"}})),
        )
        .await;
    assert_eq!(r.status, 422);
    let r = c
        .post(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            &sar(json!({"user": "u", "resourceAttributes": {"verb": "get", "resource": "pods"}})),
        )
        .await;
    assert_eq!((r.status, r.json()["status"].clone()), (201, json!({"allowed": true})));
    // Plain storage for the rest of what a v1.36 server serves, e.g. a StorageClass.
    let r = c
        .post("/apis/storage.k8s.io/v1/storageclasses", &json!({"metadata": {"name": "fast"}, "provisioner": "x"}))
        .await;
    assert_eq!(r.status, 201);
    // Aggregated discovery for kubectl, the legacy documents otherwise.
    let r = c
        .req_with(
            "GET",
            "/apis",
            &[("Accept", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json")],
            b"",
        )
        .await;
    assert_eq!(r.header("Content-Type"), Some("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"));
    let apps = r.json()["items"].as_array().unwrap().iter().find(|g| g["metadata"]["name"] == "apps").cloned().unwrap();
    let deploy = apps["versions"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "deployments")
        .cloned()
        .unwrap();
    assert_eq!(deploy["scope"], "Namespaced");
    assert_eq!(deploy["categories"], json!(["all"]));
    let scale =
        deploy["subresources"].as_array().unwrap().iter().find(|s| s["subresource"] == "scale").cloned().unwrap();
    assert_eq!(scale["responseKind"], json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}));
    assert_eq!(c.get("/apis").await.json()["kind"], "APIGroupList");
}

/// 13-eviction-pdb.json: the eviction handler decides from the budget's status, which the
/// disruption controller writes (stood in for here).
#[tokio::test]
async fn eviction_honours_disruption_budgets() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    let cl = sim.cluster();
    cl.create("v1", "namespaces", "", ns_obj("e")).unwrap();
    for n in ["a", "b"] {
        cl.create("v1", "pods", "e", pod(n, json!({"app": "x"}))).unwrap();
        cl.patch_status(
            "v1",
            "pods",
            "e",
            n,
            &json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}),
        )
        .unwrap();
    }
    let created = cl
        .create(
            "policy/v1",
            "poddisruptionbudgets",
            "e",
            json!({"metadata": {"name": "pdb"}, "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "x"}}}}),
        )
        .unwrap();
    assert_eq!(
        created["status"],
        json!({"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0})
    );
    let ev = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "a", "namespace": "e"}});
    // Not processed yet: 429 with Retry-After 10.
    let r = c.post("/api/v1/namespaces/e/pods/a/eviction", &ev).await;
    assert_eq!((r.status, r.header("Retry-After")), (429, Some("10")));
    assert_eq!(
        r.json()["details"],
        json!({"causes": [{"reason": "DisruptionBudget", "message": "The disruption budget pdb is still being processed by the server."}], "retryAfterSeconds": 10})
    );
    // The disruption controller's status: no disruption allowed.
    let status = |allowed: i64, desired: i64| json!({"status": {"observedGeneration": 1, "disruptionsAllowed": allowed, "currentHealthy": 2, "desiredHealthy": desired, "expectedPods": 2}});
    cl.patch_status("policy/v1", "poddisruptionbudgets", "e", "pdb", &status(0, 2)).unwrap();
    let r = c.post("/api/v1/namespaces/e/pods/a/eviction", &ev).await;
    assert_eq!((r.status, r.header("Retry-After")), (429, None));
    assert_eq!(r.json()["message"], "Cannot evict pod as it would violate the pod's disruption budget.");
    assert_eq!(
        r.json()["details"]["causes"][0]["message"],
        "The disruption budget pdb needs 2 healthy pods and has 2 currently"
    );
    assert!(cl.get("v1", "pods", "e", "a").is_some());
    // One disruption allowed: a dry run deletes nothing, then the eviction uses it up.
    cl.patch_status("policy/v1", "poddisruptionbudgets", "e", "pdb", &status(1, 1)).unwrap();
    assert_eq!(c.post("/api/v1/namespaces/e/pods/a/eviction?dryRun=All", &ev).await.status, 201);
    assert!(cl.get("v1", "pods", "e", "a").is_some());
    let r = c.post("/api/v1/namespaces/e/pods/a/eviction", &ev).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert!(cl.get("v1", "pods", "e", "a").is_none());
    let pdb = cl.get("policy/v1", "poddisruptionbudgets", "e", "pdb").unwrap();
    assert_eq!(pdb["status"]["disruptionsAllowed"], 0);
    assert!(pdb["status"]["disruptedPods"]["a"].is_string());
    let ev_b = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "b", "namespace": "e"}});
    assert_eq!(c.post("/api/v1/namespaces/e/pods/b/eviction", &ev_b).await.status, 429);
    assert_eq!(c.post("/api/v1/namespaces/e/pods/nope/eviction", &ev_b).await.status, 404);
    // A negative disruptionsAllowed is the handler's Forbidden, the resource named in the singular.
    cl.patch_status("policy/v1", "poddisruptionbudgets", "e", "pdb", &status(-1, 1)).unwrap();
    let r = c.post("/api/v1/namespaces/e/pods/b/eviction", &ev_b).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json()["message"],
        "poddisruptionbudget.policy \"pdb\" is forbidden: pdb disruptions allowed is negative"
    );
    assert_eq!(r.json()["details"], json!({"name": "pdb", "group": "policy", "kind": "poddisruptionbudget"}));
    // A pod that is not running yet (Pending) is evicted without a budget check.
    cl.create("v1", "pods", "e", pod("c", json!({"app": "x"}))).unwrap();
    let ev_c = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "c", "namespace": "e"}});
    cl.patch_status("v1", "pods", "e", "c", &json!({"status": {"phase": "Pending"}})).unwrap();
    assert_eq!(c.post("/api/v1/namespaces/e/pods/c/eviction", &ev_c).await.status, 201);
    assert!(cl.get("v1", "pods", "e", "c").is_none());
}

/// A Job's pods run to completion: its template's restartPolicy must be OnFailure or Never
/// (defaulting made an unset one Always, which ValidateJobSpec refuses).
#[tokio::test]
async fn jobs_need_a_run_to_completion_restart_policy() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    c.post("/api/v1/namespaces", &ns_obj("j")).await;
    let job = |policy: Option<&str>| {
        let mut j = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
        if let Some(p) = policy {
            j["spec"]["template"]["spec"]["restartPolicy"] = json!(p);
        }
        j
    };
    let r = c.post("/apis/batch/v1/namespaces/j/jobs", &job(None)).await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["message"],
        "Job.batch \"once\" is invalid: spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
    );
    assert_eq!(c.post("/apis/batch/v1/namespaces/j/jobs", &job(Some("Always"))).await.status, 422);
    let r = c.post("/apis/batch/v1/namespaces/j/jobs", &job(Some("Never"))).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst", "the template is defaulted");
}

/// A pod deleted with no grace period (no kubelet actor here) is marked first, as the pod
/// strategy's graceful deletion with a period of 0 does: watchers see a MODIFIED with
/// deletionTimestamp and deletionGracePeriodSeconds 0, then the DELETED; the answer is the
/// marked pod (12-paused-and-ondelete.json [15]).
#[tokio::test]
async fn a_pod_deleted_at_once_is_marked_first() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    c.post("/api/v1/namespaces", &ns_obj("d")).await;
    let created = c.post("/api/v1/namespaces/d/pods", &pod("p", json!({}))).await.json();
    let rv = created["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let mut w = c.watch(&format!("/api/v1/namespaces/d/pods?watch=1&resourceVersion={rv}")).await;
    let r = c.delete("/api/v1/namespaces/d/pods/p").await;
    assert_eq!(r.status, 200);
    let answer = r.json();
    assert!(answer["metadata"]["deletionTimestamp"].is_string(), "{answer}");
    assert_eq!(answer["metadata"]["deletionGracePeriodSeconds"], 0);
    let modified = w.next().await.expect("an event");
    assert_eq!(modified["type"], "MODIFIED");
    assert_eq!(modified["object"]["metadata"]["deletionGracePeriodSeconds"], 0);
    assert_eq!(modified["object"]["metadata"]["resourceVersion"], answer["metadata"]["resourceVersion"]);
    let deleted = w.next().await.expect("an event");
    assert_eq!(deleted["type"], "DELETED");
    assert!(deleted["object"]["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(c.get("/api/v1/namespaces/d/pods/p").await.status, 404);
}

#[tokio::test]
async fn crds_register_resources() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "meshpolicies.authentication.istio.io"},
        "spec": {"group": "authentication.istio.io", "scope": "Cluster",
            "names": {"kind": "MeshPolicy", "plural": "meshpolicies", "singular": "meshpolicy", "listKind": "MeshPolicyList"},
            "versions": [{"name": "v1alpha1", "served": true, "storage": true}]}});
    let r = c.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", &crd).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let disc = c.get("/apis/authentication.istio.io/v1alpha1").await;
    assert_eq!(disc.status, 200);
    assert!(disc.json()["resources"].as_array().unwrap().iter().any(|r| r["name"] == "meshpolicies"));
    let r = c
        .post(
            "/apis/authentication.istio.io/v1alpha1/meshpolicies",
            &json!({"apiVersion": "authentication.istio.io/v1alpha1", "kind": "MeshPolicy", "metadata": {"name": "default"}, "spec": {"peers": [{"mtls": {}}]}}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(sim.cluster().count("authentication.istio.io/v1alpha1", "meshpolicies"), 1);
}

#[tokio::test]
async fn faults_then_success() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    sim.faults().fail_next("list", "pods", 2, 429);
    for _ in 0..2 {
        let r = c.get("/api/v1/pods").await;
        assert_eq!(r.status, 429);
        assert_eq!(r.header("retry-after"), Some("1"));
        assert_eq!(r.json()["reason"], "TooManyRequests");
        assert_eq!(r.json()["kind"], "Status");
    }
    assert_eq!(c.get("/api/v1/pods").await.status, 200);
    for (code, reason) in [(500, "InternalError"), (503, "ServiceUnavailable"), (403, "Forbidden"), (409, "Conflict")] {
        sim.faults().fail_next("get", "namespaces", 1, code);
        let r = c.get("/api/v1/namespaces/default").await;
        assert_eq!(r.status, code);
        assert_eq!(r.json()["reason"], reason);
        assert_eq!(r.json()["code"], code);
    }
    // namespace/name scoped rules
    sim.faults().add(kube_sim::FaultRule::new("get", "namespaces", 1, 503).name("kube-public"));
    assert_eq!(c.get("/api/v1/namespaces/default").await.status, 200);
    assert_eq!(c.get("/api/v1/namespaces/kube-public").await.status, 503);
    sim.faults().add(kube_sim::FaultRule::new("list", "configmaps", 1, 500).namespace("kube-system"));
    assert_eq!(c.get("/api/v1/namespaces/default/configmaps").await.status, 200);
    assert_eq!(c.get("/api/v1/namespaces/kube-system/configmaps").await.status, 500);
    // latency
    sim.faults().latency(Some("secrets-none"), std::time::Duration::from_millis(1));
    // other verbs are untouched
    sim.faults().fail_next("create", "configmaps", 1, 500);
    assert_eq!(c.get("/api/v1/configmaps").await.status, 200);
    let recorded = sim.requests();
    assert!(recorded.iter().any(|r| r.verb == "list" && r.resource == "pods" && r.code == 429));
    sim.clear_requests();
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn stop_refuses_then_restart_serves_with_state() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    sim.cluster().create("v1", "namespaces", "", ns_obj("kept")).unwrap();
    sim.stop().await;
    assert!(c.try_req("GET", "/api/v1/namespaces/kept", None, b"").await.is_err(), "refused while down");
    sim.restart().await.unwrap();
    let r = c.get("/api/v1/namespaces/kept").await;
    assert_eq!(r.status, 200);
}

fn names(list: &Value) -> Vec<String> {
    list["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_string()).collect()
}

/// 09-paged-list.json: pages with remainingItemCount, resourceVersion=0, Exact at an older
/// version (a consistent snapshot), old continue tokens, too-large versions.
#[tokio::test]
async fn list_resource_version_semantics() {
    let wait = Duration::from_millis(300);
    let sim =
        kube_sim::Sim::start(kube_sim::SimOptions::default().actors(false).resource_version_wait(wait)).await.unwrap();
    let c = Client::new(sim.addr());
    let cl = sim.cluster();
    cl.create("v1", "namespaces", "", ns_obj("page")).unwrap();
    let mut rvs = Vec::new();
    for i in 1..=5 {
        let cm = cl
            .create(
                "v1",
                "configmaps",
                "page",
                json!({"metadata": {"name": format!("cm-{i}"), "labels": {"rec": "page"}}}),
            )
            .unwrap();
        rvs.push(cm["metadata"]["resourceVersion"].as_str().unwrap().to_string());
    }
    let base = "/api/v1/namespaces/page/configmaps";
    // Pages of 2: remainingItemCount counts what follows; the token is the real format.
    let p1 = c.get(&format!("{base}?limit=2")).await.json();
    assert_eq!(
        (names(&p1), p1["metadata"]["remainingItemCount"].clone()),
        (vec!["cm-1".into(), "cm-2".into()], json!(3))
    );
    let token = p1["metadata"]["continue"].as_str().unwrap().to_string();
    use base64::Engine;
    let decoded: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&token).unwrap()).unwrap();
    assert_eq!(decoded, json!({"v": "meta.k8s.io/v1", "rv": rvs[4].parse::<u64>().unwrap(), "start": "/cm-2\u{0}"}));
    let p2 = c.get(&format!("{base}?limit=2&continue={token}")).await.json();
    assert_eq!(
        (names(&p2), p2["metadata"]["remainingItemCount"].clone()),
        (vec!["cm-3".into(), "cm-4".into()], json!(1))
    );
    let p3 = c.get(&format!("{base}?limit=2&continue={}", p2["metadata"]["continue"].as_str().unwrap())).await.json();
    assert_eq!(names(&p3), ["cm-5"]);
    assert!(p3["metadata"].get("continue").is_none() && p3["metadata"].get("remainingItemCount").is_none());
    // A selector: no remainingItemCount.
    let sel = c.get(&format!("{base}?limit=2&labelSelector=rec%3Dpage")).await.json();
    assert!(sel["metadata"]["continue"].is_string() && sel["metadata"].get("remainingItemCount").is_none());
    // Errors around continue.
    let r = c.get(&format!("{base}?limit=2&continue={token}&resourceVersion={}", rvs[4])).await;
    assert_eq!(
        (r.status, r.json()["message"].as_str()),
        (400, Some("specifying resource version is not allowed when using continue"))
    );
    let r = c.get(&format!("{base}?limit=2&continue=garbage")).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        r"invalid continue token: continue key is not valid: invalid character '\x81' looking for beginning of value"
    );
    // A token of a compacted revision: 410, with a token to go on inconsistently.
    let old = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(r#"{"v":"meta.k8s.io/v1","rv":2,"start":"cm-1\u0000"}"#);
    let r = c.get(&format!("{base}?limit=2&continue={old}")).await;
    assert_eq!(r.status, 410);
    let e = r.json();
    assert_eq!(e["reason"], "Expired");
    assert!(e["message"].as_str().unwrap().starts_with("The provided continue parameter is too old"));
    let again = e["metadata"]["continue"].as_str().unwrap();
    let d: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(again).unwrap()).unwrap();
    assert_eq!(d, json!({"v": "meta.k8s.io/v1", "rv": -1, "start": "cm-1\u{0}"}));
    assert_eq!(names(&c.get(&format!("{base}?limit=2&continue={again}")).await.json()), ["cm-2", "cm-3"]);
    // resourceVersion=0 comes from the watch cache, which ignores the limit.
    let all = c.get(&format!("{base}?limit=2&resourceVersion=0")).await.json();
    assert_eq!(names(&all).len(), 5);
    assert!(all["metadata"].get("continue").is_none());
    // Exact at an older version: that snapshot, paged consistently even while things change.
    let after_cm2 = &rvs[1];
    let exact = c.get(&format!("{base}?resourceVersion={after_cm2}&resourceVersionMatch=Exact")).await.json();
    assert_eq!(
        (names(&exact), exact["metadata"]["resourceVersion"].as_str()),
        (vec!["cm-1".into(), "cm-2".into()], Some(after_cm2.as_str()))
    );
    for q in [
        format!("limit=1&resourceVersion={after_cm2}&resourceVersionMatch=Exact"),
        format!("limit=1&resourceVersion={after_cm2}"),
    ] {
        let first = c.get(&format!("{base}?{q}")).await.json();
        assert_eq!(
            (names(&first), first["metadata"]["remainingItemCount"].clone()),
            (vec!["cm-1".into()], json!(1)),
            "{q}"
        );
        cl.patch(
            "v1",
            "configmaps",
            "page",
            "cm-2",
            kube_sim::PatchType::Merge,
            &json!({"data": {"changed": "yes"}}),
            "t",
        )
        .unwrap();
        let second =
            c.get(&format!("{base}?limit=1&continue={}", first["metadata"]["continue"].as_str().unwrap())).await.json();
        assert_eq!(names(&second), ["cm-2"]);
        assert_eq!(
            second["items"][0]["metadata"]["resourceVersion"],
            json!(after_cm2),
            "cm-2 as it was at {after_cm2}"
        );
        assert!(second["items"][0].get("data").is_none());
    }
    // No limit and no match: not older than, i.e. the current state.
    let cur = c.get(&format!("{base}?resourceVersion={after_cm2}")).await.json();
    assert_eq!(names(&cur).len(), 5);
    assert_eq!(cur["metadata"]["resourceVersion"], cl.resource_version().to_string());
    // Deleted since: still in the older snapshot.
    cl.delete("v1", "configmaps", "page", "cm-1").unwrap();
    let exact = c.get(&format!("{base}?resourceVersion={after_cm2}&resourceVersionMatch=Exact")).await.json();
    assert_eq!(names(&exact), ["cm-1", "cm-2"]);
    // Older than the sim (a fresh watch cache and etcd): 410.
    let r = c.get(&format!("{base}?resourceVersion=1&resourceVersionMatch=Exact")).await;
    assert_eq!(
        (r.status, r.json()["message"].as_str()),
        (410, Some("The resourceVersion for the provided list is too old."))
    );
    // Validation.
    let r = c.get(&format!("{base}?resourceVersionMatch=Exact")).await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
            "reason": "Invalid", "details": {"group": "meta.k8s.io", "kind": "ListOptions",
                "causes": [{"reason": "FieldValueForbidden", "message": "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided", "field": "resourceVersionMatch"}]},
            "code": 422})
    );
    let r = c.get(&format!("{base}?resourceVersion=5&resourceVersionMatch=Bogus")).await;
    assert_eq!(
        r.json()["message"],
        "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Unsupported value: \"Bogus\": supported values: \"Exact\", \"NotOlderThan\", \"\""
    );
    assert_eq!(c.get("/api/v1/namespaces?resourceVersion=abc").await.status, 400);
    // A version not reached yet: the list waits for it, then 504 with Retry-After.
    let now = cl.resource_version();
    let started = std::time::Instant::now();
    let r = c.get(&format!("{base}?resourceVersion={}&resourceVersionMatch=NotOlderThan", now + 100)).await;
    assert!(started.elapsed() >= wait, "waited first");
    assert_eq!((r.status, r.header("Retry-After")), (504, Some("1")));
    let e = r.json();
    assert_eq!(e["message"], format!("Timeout: Too large resource version: {}, current: {now}", now + 100));
    assert_eq!(
        e["details"],
        json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1})
    );
    // ... and answers once the version arrives within the wait.
    let path = format!("{base}?resourceVersion={}&resourceVersionMatch=NotOlderThan", now + 1);
    let ask = c.get(&path);
    let write = async {
        tokio::task::yield_now().await;
        cl.create("v1", "configmaps", "page", json!({"metadata": {"name": "late"}})).unwrap();
    };
    let (r, ()) = tokio::join!(ask, write);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // After a compaction, an Exact list at an older version is 410.
    let before = cl.resource_version();
    cl.create("v1", "namespaces", "", ns_obj("later")).unwrap();
    sim.faults().compact();
    let r = c.get(&format!("/api/v1/namespaces?resourceVersion={before}&resourceVersionMatch=Exact")).await;
    assert_eq!((r.status, r.json()["reason"].as_str()), (410, Some("Expired")));
}

#[tokio::test]
async fn deletecollection_honours_selectors() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    let cl = sim.cluster();
    cl.create("v1", "pods", "default", pod("keep", json!({"app": "a"}))).unwrap();
    cl.create("v1", "pods", "default", pod("drop", json!({"app": "b"}))).unwrap();
    let r = c.delete("/api/v1/namespaces/default/pods?labelSelector=app%3Db").await;
    assert_eq!(r.status, 200);
    assert!(cl.get("v1", "pods", "default", "keep").is_some());
    assert!(cl.get("v1", "pods", "default", "drop").is_none());
    assert_eq!(c.delete("/api/v1/namespaces/default/pods?labelSelector=app%20in%20b").await.status, 400);
}

#[tokio::test]
async fn deployment_scale_subresource() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    sim.cluster()
        .create(
            "apps/v1",
            "deployments",
            "default",
            json!({"metadata": {"name": "web"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
        )
        .unwrap();
    let path = "/apis/apps/v1/namespaces/default/deployments/web/scale";
    let s = c.get(path).await.json();
    assert_eq!(s["kind"], "Scale");
    assert_eq!(s["apiVersion"], "autoscaling/v1");
    assert_eq!(s["spec"]["replicas"], 2);
    assert_eq!(s["status"]["selector"], "app=web");
    let r = c.patch(path, "application/merge-patch+json", r#"{"spec":{"replicas":5}}"#).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["spec"]["replicas"], 5);
    let d = sim.cluster().get("apps/v1", "deployments", "default", "web").unwrap();
    assert_eq!(d["spec"]["replicas"], 5);
    assert_eq!(d["metadata"]["generation"], 2);
    let mut stale = s.clone();
    stale["spec"]["replicas"] = json!(1);
    assert_eq!(c.put(path, &stale).await.status, 409, "stale resourceVersion in the Scale");
    let r = c.patch(path, "application/merge-patch+json", r#"{"spec":{"replicas":-1}}"#).await;
    assert_eq!(r.status, 422);
}

#[tokio::test]
async fn immutable_uid_and_namespace_mismatch() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    let mut cm = c.post("/api/v1/namespaces/default/configmaps", &json!({"metadata": {"name": "m"}})).await.json();
    cm["metadata"]["uid"] = json!("other-uid");
    let r = c.put("/api/v1/namespaces/default/configmaps/m", &cm).await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["message"],
        "ConfigMap \"m\" is invalid: metadata.uid: Invalid value: \"other-uid\": field is immutable"
    );
    let r = c
        .post("/api/v1/namespaces/default/configmaps", &json!({"metadata": {"name": "n", "namespace": "kube-system"}}))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "the namespace of the provided object does not match the namespace sent on the request"
    );
}

/// The install guide's seed (what the agent's end-to-end tests start from) passes the real
/// validation: names, ports, defaulting, unknown fields.
#[tokio::test]
async fn the_asm_onprem_seed_is_valid() {
    let sim = kube_sim::Sim::start(kube_sim::SimOptions::default()).await.unwrap();
    kube_sim::seed::asm_onprem(&sim.cluster()).expect("seeds");
    let gw = sim.cluster().get("v1", "services", "istio-system", "istio-ingressgateway").expect("gateway");
    assert_eq!(gw["spec"]["ports"][1]["nodePort"], 31380);
}

#[tokio::test]
async fn non_json_answers_a_proxy_page_and_garbage() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    sim.faults().bad_gateway("list", "pods", 2);
    for _ in 0..2 {
        let r = c.get("/api/v1/pods").await;
        assert_eq!(r.status, 502);
        assert_eq!(r.header("content-type"), Some("text/html"));
        assert!(String::from_utf8_lossy(&r.body).contains("<h1>502 Bad Gateway</h1>"));
        assert!(serde_json::from_slice::<serde_json::Value>(&r.body).is_err(), "not JSON");
    }
    assert_eq!(c.get("/api/v1/pods").await.status, 200, "only the next 2");
    sim.faults().garbage("get", "namespaces", 1);
    let r = c.get("/api/v1/namespaces/default").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body, kube_sim::GARBAGE.as_bytes());
    assert!(serde_json::from_slice::<serde_json::Value>(&r.body).is_err(), "not JSON");
    assert_eq!(c.get("/api/v1/namespaces/default").await.json()["metadata"]["name"], "default");
    // A watch answered with garbage: a plain body, not a stream.
    sim.faults().garbage("watch", "namespaces", 1);
    let r = c.get("/api/v1/namespaces?watch=true").await;
    assert_eq!((r.status, r.body.as_slice()), (200, kube_sim::GARBAGE.as_bytes()));
    // Any code and body, scoped like every rule.
    sim.faults().add(
        kube_sim::FaultRule::new("get", "services", 1, 503).name("x").body("text/plain", "upstream connect error"),
    );
    let r = c.get("/api/v1/namespaces/default/services/x").await;
    assert_eq!((r.status, r.body.as_slice()), (503, b"upstream connect error".as_slice()));
    let codes: Vec<u16> = sim.requests().iter().filter(|r| r.resource == "pods").map(|r| r.code).collect();
    assert_eq!(codes, [502, 502, 200], "recorded with their codes");
}
