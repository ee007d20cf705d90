//! Watches over real HTTP: resume from a resourceVersion, initial ADDED, bookmarks,
//! timeoutSeconds, 410 after compaction, streaming lists, dropped connections.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

fn rv_of(v: &serde_json::Value) -> u64 {
    v["metadata"]["resourceVersion"].as_str().and_then(|s| s.parse().ok()).expect("resourceVersion")
}

#[tokio::test]
async fn watch_from_resource_version_and_initial_added() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    let cl = sim.cluster();
    cl.create("v1", "namespaces", "", ns_obj("w")).unwrap();
    let a = cl.create("v1", "configmaps", "w", json!({"metadata": {"name": "a"}})).unwrap();
    cl.create("v1", "configmaps", "w", json!({"metadata": {"name": "b", "labels": {"x": "1"}}})).unwrap();
    // from a resourceVersion: only what came after it
    let mut w = c.watch(&format!("/api/v1/namespaces/w/configmaps?watch=true&resourceVersion={}", rv_of(&a))).await;
    assert_eq!(w.status, 200);
    let ev = w.next().await.unwrap();
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(ev["object"]["metadata"]["name"], "b");
    cl.patch("v1", "configmaps", "w", "a", kube_sim::PatchType::Merge, &json!({"data": {"k": "v"}}), "t").unwrap();
    let ev = w.next().await.unwrap();
    assert_eq!(ev["type"], "MODIFIED");
    assert_eq!(ev["object"]["data"]["k"], "v");
    cl.delete("v1", "configmaps", "w", "a").unwrap();
    let ev = w.next().await.unwrap();
    assert_eq!(ev["type"], "DELETED");
    assert_eq!(ev["object"]["metadata"]["name"], "a");
    // resourceVersion=0: synthetic ADDED for what exists, then live; a label selector filters
    let mut w = c.watch("/api/v1/watch/namespaces/w/configmaps?labelSelector=x%3D1").await;
    let ev = w.next().await.unwrap();
    assert_eq!((ev["type"].as_str(), ev["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("b")));
    cl.create("v1", "configmaps", "w", json!({"metadata": {"name": "c"}})).unwrap();
    cl.create("v1", "configmaps", "w", json!({"metadata": {"name": "d", "labels": {"x": "1"}}})).unwrap();
    let ev = w.next().await.unwrap();
    assert_eq!(ev["object"]["metadata"]["name"], "d", "c does not match the selector");
    // a watch on one name (fieldSelector metadata.name)
    let mut w = c.watch("/api/v1/namespaces/w/configmaps?watch=1&fieldSelector=metadata.name%3Dd").await;
    assert_eq!(w.next().await.unwrap()["object"]["metadata"]["name"], "d");
    // a bad selector is a 400 before the stream starts
    let r = c.get("/api/v1/configmaps?watch=true&labelSelector=x%20in%20y").await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn quiet_watch_sends_only_bookmarks_and_ends_at_timeout() {
    let interval = Duration::from_millis(100);
    let sim =
        kube_sim::Sim::start(kube_sim::SimOptions::default().actors(false).bookmark_interval(interval)).await.unwrap();
    let c = Client::new(sim.addr());
    let cl = sim.cluster();
    cl.create("v1", "namespaces", "", ns_obj("quiet")).unwrap();
    cl.create("v1", "namespaces", "", ns_obj("busy")).unwrap();
    let rv = cl.resource_version();
    let started = std::time::Instant::now();
    let mut w = c
        .watch(&format!(
            "/api/v1/namespaces/quiet/configmaps?watch=1&allowWatchBookmarks=true&resourceVersion={rv}&timeoutSeconds=3"
        ))
        .await;
    // Writes elsewhere move the server's resourceVersion but send nothing on this watch.
    for i in 0..5 {
        cl.create("v1", "configmaps", "busy", json!({"metadata": {"name": format!("cm-{i}")}})).unwrap();
    }
    let mut bookmarks = Vec::new();
    while let Some(ev) = w.next().await {
        assert_eq!(ev["type"], "BOOKMARK", "a quiet watch sends nothing but bookmarks: {ev}");
        assert_eq!(ev["object"]["kind"], "ConfigMap");
        bookmarks.push((started.elapsed(), rv_of(&ev["object"])));
    }
    let ended = started.elapsed();
    assert!(ended >= Duration::from_secs(3), "ended at timeoutSeconds, not before: {ended:?}");
    assert!(!bookmarks.is_empty());
    assert!(bookmarks[0].0 >= interval, "the first bookmark comes one interval in: {bookmarks:?}");
    // The last one is due 2 s before the deadline (the watch cache's pre-timeout bookmark).
    let last = bookmarks.last().unwrap().0;
    assert!(last < Duration::from_millis(1900), "no bookmark in the last 2 s: {bookmarks:?}");
    assert!(bookmarks.iter().all(|(_, v)| *v >= rv + 5), "bookmarks carry the server's resourceVersion");
}

#[tokio::test]
async fn short_watches_get_no_bookmark_and_unbounded_ones_end_after_min_request_timeout() {
    let sim = kube_sim::Sim::start(
        kube_sim::SimOptions::default()
            .actors(false)
            .bookmark_interval(Duration::from_millis(50))
            .min_request_timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    let c = Client::new(sim.addr());
    let rv = sim.cluster().resource_version();
    // timeoutSeconds=1: the pre-timeout moment (deadline - 2 s) is already past, so no bookmark.
    let mut w = c
        .watch(&format!("/api/v1/namespaces?watch=true&allowWatchBookmarks=true&resourceVersion={rv}&timeoutSeconds=1"))
        .await;
    assert!(w.next().await.is_none(), "no events, then the end at 1 s");
    // No timeoutSeconds: the server ends it after min_request_timeout x [1, 2).
    let started = std::time::Instant::now();
    let mut w = c.watch(&format!("/api/v1/namespaces?watch=true&resourceVersion={rv}")).await;
    assert!(w.next().await.is_none());
    let ended = started.elapsed();
    assert!(
        ended >= Duration::from_millis(300) && ended < Duration::from_millis(900),
        "ended after min_request_timeout x [1, 2): {ended:?}"
    );
}

#[tokio::test]
async fn too_old_resource_version_is_410() {
    let sim = kube_sim::Sim::start(kube_sim::SimOptions::default().actors(false).history(3)).await.unwrap();
    let c = Client::new(sim.addr());
    let cl = sim.cluster();
    for i in 0..6 {
        cl.create("v1", "namespaces", "", ns_obj(&format!("n{i}"))).unwrap();
    }
    let mut w = c.watch("/api/v1/namespaces?watch=true&resourceVersion=1").await;
    assert_eq!(w.status, 200);
    let ev = w.next().await.unwrap();
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(ev["object"]["kind"], "Status");
    assert_eq!(ev["object"]["code"], 410);
    assert_eq!(ev["object"]["reason"], "Expired");
    assert!(
        ev["object"]["message"].as_str().unwrap().starts_with("too old resource version: 1 ("),
        "{}",
        ev["object"]["message"]
    );
    assert!(w.next().await.is_none(), "the stream ends after the error");
    // after a compaction, any older resourceVersion is 410 too
    let now = cl.resource_version();
    cl.create("v1", "namespaces", "", ns_obj("late")).unwrap();
    sim.faults().compact();
    let mut w = c.watch(&format!("/api/v1/namespaces?watch=true&resourceVersion={}", now)).await;
    assert_eq!(w.next().await.unwrap()["object"]["code"], 410);
}

/// 07-quiet-watch.json: on a freshly started server a watch from resourceVersion=1 gets HTTP
/// 200, one ERROR event with a 410 Expired Status, and the end of the stream; one from the
/// resourceVersion a list just returned resumes.
#[tokio::test]
async fn a_fresh_sim_has_no_history_before_its_start() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    let start = sim.cluster().resource_version();
    // A write after the start: the oldest version to resume from stays the start.
    sim.cluster().create("v1", "configmaps", "default", json!({"metadata": {"name": "early"}})).unwrap();
    for path in [
        "/api/v1/namespaces/default/configmaps?watch=1&allowWatchBookmarks=true&resourceVersion=1",
        "/api/v1/watch/namespaces/default/configmaps?resourceVersion=1",
    ] {
        let mut w = c.watch(path).await;
        assert_eq!(w.status, 200, "{path}");
        let ev = w.next().await.unwrap();
        assert_eq!(
            ev,
            json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("too old resource version: 1 ({start})"), "reason": "Expired", "code": 410}}),
            "{path}"
        );
        assert!(w.next().await.is_none(), "the stream ends after the error");
    }
    let list = c.get("/api/v1/namespaces/default/configmaps").await.json();
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap();
    let mut w = c.watch(&format!("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}")).await;
    sim.cluster().create("v1", "configmaps", "default", json!({"metadata": {"name": "after"}})).unwrap();
    assert_eq!(w.next().await.unwrap()["object"]["metadata"]["name"], "after");
}

/// The compaction loop: history older than an interval or two is gone.
#[tokio::test]
async fn periodic_compaction_expires_old_resource_versions() {
    let sim = kube_sim::Sim::start(
        kube_sim::SimOptions::default().actors(false).compaction_interval(Some(Duration::from_millis(50))),
    )
    .await
    .unwrap();
    let c = Client::new(sim.addr());
    let cm = sim.cluster().create("v1", "configmaps", "default", json!({"metadata": {"name": "a"}})).unwrap();
    let rv = rv_of(&cm);
    sim.cluster().create("v1", "configmaps", "default", json!({"metadata": {"name": "b"}})).unwrap();
    let deadline = std::time::Instant::now() + BOUND;
    loop {
        let mut w = c.watch(&format!("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}")).await;
        let ev = w.next().await.unwrap();
        if ev["type"] == "ERROR" {
            assert_eq!(ev["object"]["code"], 410);
            break;
        }
        assert_eq!(ev["object"]["metadata"]["name"], "b", "replayed while not compacted yet");
        assert!(std::time::Instant::now() < deadline, "compacted within the bound");
        // Writes move the compaction point forward; the next poll looks again.
        sim.cluster().create("v1", "configmaps", "default", json!({"metadata": {"generateName": "x-"}})).unwrap();
    }
}

#[tokio::test]
async fn streaming_list_ends_initial_events_with_a_bookmark() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    let cl = sim.cluster();
    cl.create("v1", "namespaces", "", ns_obj("s")).unwrap();
    for n in ["a", "b"] {
        cl.create("v1", "pods", "s", pod(n, json!({}))).unwrap();
    }
    let mut w = c
        .watch(
            "/api/v1/pods?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
        )
        .await;
    let mut names = vec![];
    for _ in 0..2 {
        let ev = w.next().await.unwrap();
        assert_eq!(ev["type"], "ADDED");
        names.push(ev["object"]["metadata"]["name"].as_str().unwrap().to_string());
    }
    names.sort();
    assert_eq!(names, ["a", "b"]);
    let ev = w.next().await.unwrap();
    assert_eq!(ev["type"], "BOOKMARK");
    assert_eq!(ev["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
    cl.create("v1", "pods", "s", pod("c", json!({}))).unwrap();
    let ev = w.until(|e| e["type"] != "BOOKMARK").await;
    assert_eq!((ev["type"].as_str(), ev["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("c")));
}

/// 08-streaming-list.json: the initial-events-end bookmark only when bookmarks are allowed;
/// sendInitialEvents needs resourceVersionMatch=NotOlderThan; a server on etcd 3.4 refuses.
#[tokio::test]
async fn streaming_list_rules() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    sim.cluster().create("v1", "configmaps", "default", json!({"metadata": {"name": "a"}})).unwrap();
    let mut w = c
        .watch("/api/v1/namespaces/default/configmaps?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan")
        .await;
    assert_eq!(w.next().await.unwrap()["type"], "ADDED");
    sim.cluster().create("v1", "configmaps", "default", json!({"metadata": {"name": "b"}})).unwrap();
    let ev = w.next().await.unwrap();
    assert_eq!(
        (ev["type"].as_str(), ev["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("b")),
        "no bookmark between"
    );
    for q in [
        "sendInitialEvents=true&allowWatchBookmarks=true",
        "sendInitialEvents=false",
        "resourceVersionMatch=NotOlderThan",
        "sendInitialEvents=true&resourceVersionMatch=Exact",
    ] {
        let r = c.get(&format!("/api/v1/namespaces/default/configmaps?watch=1&{q}&timeoutSeconds=1")).await;
        assert_eq!(r.status, 422, "{q}");
        assert!(r.json()["message"].as_str().unwrap().contains("resourceVersionMatch: "), "{q}: {}", r.json());
    }
    let r = c.get("/api/v1/namespaces/default/configmaps?watch=1&sendInitialEvents=true&allowWatchBookmarks=true&timeoutSeconds=1").await;
    assert_eq!(
        r.json()["message"],
        "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"
    );
    let old = kube_sim::Sim::start(kube_sim::SimOptions::default().actors(false).streaming_lists(false)).await.unwrap();
    let c = Client::new(old.addr());
    let mut w = c
        .watch("/api/v1/configmaps?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true")
        .await;
    assert_eq!(w.status, 200);
    let ev = w.next().await.unwrap();
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(ev["object"]["code"], 500);
    assert_eq!(
        ev["object"]["message"],
        "a watch stream was requested by the client but the required storage feature RequestWatchProgress is disabled"
    );
    assert!(w.next().await.is_none(), "and the stream ends");
    // Plain lists and watches still work there.
    assert_eq!(c.get("/api/v1/configmaps").await.status, 200);
}

#[tokio::test]
async fn dropped_watches_end() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    let rv = sim.cluster().resource_version();
    let mut w = c.watch(&format!("/api/v1/namespaces?watch=true&resourceVersion={rv}")).await;
    sim.cluster().create("v1", "namespaces", "", ns_obj("x")).unwrap();
    assert_eq!(w.next().await.unwrap()["type"], "ADDED");
    sim.faults().drop_watches();
    assert!(w.next().await.is_none());
}

#[tokio::test]
async fn in_process_subscribe_sees_http_writes() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    let mut rx = sim.cluster().subscribe();
    c.post("/api/v1/namespaces", &ns_obj("sub")).await;
    let ev = tokio::time::timeout(BOUND, rx.recv()).await.unwrap().unwrap();
    assert_eq!(ev.kind, "ADDED");
    assert_eq!(sim.cluster().resource_of(&ev), "namespaces");
    assert_eq!(ev.object["metadata"]["name"], "sub");
}

#[tokio::test]
async fn watch_from_a_future_version_starts_after_it() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    let now = sim.cluster().resource_version();
    let mut w = c.watch(&format!("/api/v1/namespaces?watch=true&resourceVersion={}", now + 2)).await;
    for n in ["f1", "f2", "f3"] {
        sim.cluster().create("v1", "namespaces", "", ns_obj(n)).unwrap();
    }
    assert_eq!(w.next().await.unwrap()["object"]["metadata"]["name"], "f3");
}

#[tokio::test]
async fn a_hanging_server_holds_requests_and_watch_events_until_released() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    let cl = sim.cluster();
    cl.create("v1", "namespaces", "", ns_obj("h")).unwrap();
    let mut w = c.watch("/api/v1/namespaces/h/configmaps?watch=true&resourceVersion=0").await;
    assert_eq!(w.status, 200);
    sim.faults().hang(true);
    cl.create("v1", "configmaps", "h", json!({"metadata": {"name": "during"}})).unwrap();
    // The open watch delivers nothing while the server hangs ...
    assert!(tokio::time::timeout(Duration::from_millis(300), w.next()).await.is_err(), "an event got through");
    // ... and a new request is accepted (counted on arrival) but not answered.
    let before = sim.faults().arrivals("").len();
    let get = tokio::spawn({
        let c = Client::new(sim.addr());
        async move { c.get("/api/v1/namespaces/h/configmaps/during").await }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while sim.faults().arrivals("").len() == before {
        assert!(std::time::Instant::now() < deadline, "the request never arrived");
        tokio::task::yield_now().await;
    }
    assert!(!get.is_finished(), "answered while hanging");
    sim.faults().hang(false);
    assert_eq!(get.await.unwrap().status, 200, "answered once released");
    let ev = w.next().await.unwrap();
    assert_eq!((ev["type"].as_str(), ev["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("during")));
}

#[tokio::test]
async fn a_truncated_watch_sends_half_an_event_then_cuts_the_connection() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    let rv = sim.cluster().resource_version();
    let path = format!("/api/v1/namespaces?watch=true&resourceVersion={rv}");
    let mut cut = c.watch(&path).await;
    // An open watch is hit: its next event goes out half, then the connection closes without
    // the chunked body's end.
    sim.faults().truncate_watches("namespaces", 1);
    sim.cluster().create("v1", "namespaces", "", ns_obj("t1")).unwrap();
    let (half, clean) = cut.rest().await;
    assert!(!clean, "cut, not ended: {}", String::from_utf8_lossy(&half));
    assert!(serde_json::from_slice::<serde_json::Value>(&half).is_err(), "a partial JSON line");
    assert_eq!(sim.faults().pending_watch_faults(), 0);
    // Nothing is lost: resuming from the last version seen gets the event whole; one hit only.
    let mut resumed = c.watch(&path).await;
    let full = resumed.next_line().await.unwrap();
    assert_eq!(half.len(), full.len() / 2, "half of the event line");
    assert_eq!(&full[..half.len()], &half[..]);
    let ev: serde_json::Value = serde_json::from_slice(&full).unwrap();
    assert_eq!((ev["type"].as_str(), ev["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("t1")));
    sim.cluster().create("v1", "namespaces", "", ns_obj("t2")).unwrap();
    assert_eq!(resumed.next().await.unwrap()["object"]["metadata"]["name"], "t2");
    drop(resumed);
    // A new watch's initial events are hit too.
    sim.faults().truncate_watches("namespaces", 1);
    let mut initial = c.watch("/api/v1/namespaces?watch=true").await;
    let (rest, clean) = initial.rest().await;
    assert!(!clean && !rest.ends_with(b"\n"), "cut in the first event: {}", String::from_utf8_lossy(&rest));
}

#[tokio::test]
async fn injected_watch_lines_arrive_on_open_watches_and_are_not_stored() {
    let sim = sim().await;
    let c = Client::new(sim.addr());
    let rv = sim.cluster().resource_version();
    let mut w = c.watch(&format!("/api/v1/namespaces?watch=true&resourceVersion={rv}")).await;
    let bad = json!({"type": "MODIFIED", "object": {"kind": "Namespace", "apiVersion": "v1",
        "metadata": {"name": "bad", "resourceVersion": "1"}, "spec": "oops"}});
    sim.faults().inject_watch_event("namespaces", 1, &bad);
    assert_eq!(w.next().await.unwrap(), bad, "delivered at once, as it is");
    sim.faults().inject_watch_line("namespaces", 1, b"<html>502 Bad Gateway</html>");
    assert_eq!(w.next_line().await.unwrap(), b"<html>502 Bad Gateway</html>\n");
    // The stream carries on; nothing was stored.
    sim.cluster().create("v1", "namespaces", "", ns_obj("good")).unwrap();
    assert_eq!(w.next().await.unwrap()["object"]["metadata"]["name"], "good");
    assert_eq!(c.get("/api/v1/namespaces/bad").await.status, 404);
    // A watch opened later gets it after its initial events; other resources are not hit.
    sim.cluster().create("v1", "configmaps", "default", json!({"metadata": {"name": "cm"}})).unwrap();
    let bad_cm = json!({"type": "ADDED", "object": {"kind": "ConfigMap", "apiVersion": "v1",
        "metadata": {"name": "x", "namespace": "default"}, "data": ["not", "a", "map"]}});
    sim.faults().inject_watch_event("configmaps", 1, &bad_cm);
    let mut cms = c.watch("/api/v1/configmaps?watch=true").await;
    assert_eq!(cms.next().await.unwrap()["object"]["metadata"]["name"], "cm", "the initial events first");
    assert_eq!(cms.next().await.unwrap(), bad_cm);
    sim.cluster().create("v1", "namespaces", "", ns_obj("good2")).unwrap();
    assert_eq!(w.next().await.unwrap()["object"]["metadata"]["name"], "good2", "namespaces not hit");
    assert_eq!(sim.faults().pending_watch_faults(), 0);
}

#[tokio::test]
async fn every_watch_line_starts_with_its_type_as_a_real_server_writes_it() {
    let sim = kube_sim::Sim::start(
        kube_sim::SimOptions::default().actors(false).bookmark_interval(Duration::from_millis(50)),
    )
    .await
    .unwrap();
    let c = Client::new(sim.addr());
    sim.cluster().create("v1", "namespaces", "", ns_obj("order")).unwrap();
    // Initial events, a bookmark, live events of every kind (08-streaming-list.json: type first).
    let mut w = c
        .watch("/api/v1/namespaces?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true")
        .await;
    let cl = sim.cluster();
    cl.create("v1", "namespaces", "", ns_obj("live")).unwrap();
    cl.patch(
        "v1",
        "namespaces",
        "",
        "live",
        kube_sim::PatchType::Merge,
        &json!({"metadata": {"labels": {"a": "b"}}}),
        "t",
    )
    .unwrap();
    cl.delete("v1", "namespaces", "", "live").unwrap();
    let mut kinds = std::collections::BTreeSet::new();
    while kinds.len() < 4 {
        let line = w.next_line().await.expect("a line");
        let text = String::from_utf8_lossy(&line);
        assert!(text.starts_with("{\"type\":\""), "{text}");
        kinds.insert(serde_json::from_slice::<serde_json::Value>(&line).unwrap()["type"].as_str().unwrap().to_string());
    }
    // An ERROR event too (a resume from a compacted version).
    sim.faults().compact();
    let mut gone = c.watch("/api/v1/namespaces?watch=true&resourceVersion=1").await;
    let line = gone.next_line().await.expect("the ERROR");
    assert!(String::from_utf8_lossy(&line).starts_with("{\"type\":\"ERROR\",\"object\":"), "{line:?}");
}
