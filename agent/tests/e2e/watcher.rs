//! kube-rs 5's watcher against kube-sim: list then watch, resuming after a dropped watch,
//! bookmarks advancing the resume point, 410 Gone answered by exactly one re-list, and
//! streaming lists (sendInitialEvents) without any list request.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::runtime::watcher::{self, Event};
use kube_sim::{Sim, SimOptions};
use serde_json::json;

type Stream = std::pin::Pin<Box<dyn futures::Stream<Item = Result<Event<Namespace>, watcher::Error>> + Send>>;

async fn client(sim: &Sim) -> kube::Client {
    meshkeeper::client::build(&meshkeeper::client::ClientOptions {
        kubeconfig: Some(sim.kubeconfig_path()),
        ..Default::default()
    })
    .await
    .expect("client")
}

fn requests(sim: &Sim, verb: &str) -> usize {
    sim.requests().iter().filter(|r| r.resource == "namespaces" && r.verb == verb).count()
}

/// Next event, bounded; watcher errors (e.g. the 410 itself) are passed over and counted.
async fn next(s: &mut Stream, errors: &mut usize) -> Event<Namespace> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.next()).await.expect("watcher event within 10 s") {
            Some(Ok(e)) => return e,
            Some(Err(_)) => *errors += 1,
            None => panic!("watcher ended"),
        }
    }
}

async fn until_init_done(s: &mut Stream, errors: &mut usize) -> Vec<String> {
    let mut names = Vec::new();
    loop {
        match next(s, errors).await {
            Event::InitApply(ns) => names.extend(ns.metadata.name),
            Event::InitDone => return names,
            _ => {}
        }
    }
}

async fn until_applied(s: &mut Stream, errors: &mut usize, name: &str) {
    loop {
        if let Event::Apply(ns) | Event::InitApply(ns) = next(s, errors).await
            && ns.metadata.name.as_deref() == Some(name)
        {
            return;
        }
    }
}

/// Polls the watcher (so it makes progress) until `cond` holds; bounded. Fails if the watcher
/// yields an event meanwhile (none is expected while waiting for a connection).
async fn drive_until(s: &mut Stream, cond: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut drive = s.next();
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        if let Ok(ev) = tokio::time::timeout(Duration::from_millis(10), &mut drive).await {
            assert!(matches!(ev, Some(Err(_))), "unexpected event while waiting for {what}");
            drive = s.next();
        }
    }
}

fn create_ns(sim: &Sim, name: &str) {
    sim.cluster().create("v1", "namespaces", "", json!({"metadata": {"name": name}})).unwrap();
}

#[tokio::test]
async fn list_then_watch_resumes_without_relisting_and_410_relists_exactly_once() {
    let sim = Sim::start(SimOptions::default().actors(false)).await.unwrap();
    let api: Api<Namespace> = Api::all(client(&sim).await);
    let mut s: Stream = watcher::watcher(api, watcher::Config::default()).boxed();
    let mut errors = 0;
    let initial = until_init_done(&mut s, &mut errors).await;
    assert!(initial.contains(&"default".to_string()), "{initial:?}");
    assert_eq!(requests(&sim, "list"), 1);

    create_ns(&sim, "a");
    until_applied(&mut s, &mut errors, "a").await;

    // A dropped connection resumes from the last resourceVersion: no new list.
    sim.faults().drop_watches();
    drive_until(&mut s, || requests(&sim, "watch") >= 2, "a new watch after the drop").await;
    create_ns(&sim, "b");
    until_applied(&mut s, &mut errors, "b").await;
    assert_eq!(requests(&sim, "list"), 1, "resumed, not re-listed");

    // The server goes away; meanwhile the cluster moves on and history is compacted. The
    // resume answers 410 Gone and the watcher re-lists exactly once.
    sim.stop().await;
    create_ns(&sim, "c");
    sim.faults().compact();
    sim.restart().await.unwrap();
    let relisted = until_init_done(&mut s, &mut errors).await;
    assert!(relisted.contains(&"c".to_string()));
    assert_eq!(requests(&sim, "list"), 2, "exactly one re-list after 410");
    assert!(errors >= 1, "the 410 surfaced as one watcher error");
    create_ns(&sim, "d");
    until_applied(&mut s, &mut errors, "d").await;
    assert_eq!(requests(&sim, "list"), 2);
}

#[tokio::test]
async fn bookmarks_move_the_resume_point_past_a_short_history() {
    for bookmarks in [true, false] {
        // Five events of history only, bookmarks every 50 ms.
        let sim =
            Sim::start(SimOptions::default().actors(false).history(5).bookmark_interval(Duration::from_millis(50)))
                .await
                .unwrap();
        let api: Api<Namespace> = Api::all(client(&sim).await);
        let config =
            if bookmarks { watcher::Config::default() } else { watcher::Config::default().disable_bookmarks() };
        let mut s: Stream = watcher::watcher(api, config).boxed();
        let mut errors = 0;
        until_init_done(&mut s, &mut errors).await;
        // kube-rs opens the watch on the next poll after InitDone: drive it until the watch is open.
        drive_until(&mut s, || requests(&sim, "watch") >= 1, "the watch opened").await;
        // Twenty writes to another resource push the namespace watch's last version out of history.
        for i in 0..20 {
            sim.cluster()
                .create("v1", "configmaps", "default", json!({"metadata": {"name": format!("cm-{i}")}}))
                .unwrap();
        }
        // Let a bookmark (carrying the newest resourceVersion) reach the watcher: observed, bounded.
        let before = sim.bookmarks_sent();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut drive = s.next();
        while bookmarks && sim.bookmarks_sent() <= before {
            assert!(Instant::now() < deadline, "no bookmark sent");
            // NB: polls the watcher so it consumes the bookmark while we wait for the counter.
            if let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_millis(20), &mut drive).await {
                drive = s.next();
            }
        }
        drop(drive);
        sim.faults().drop_watches();
        create_ns(&sim, "after");
        until_applied(&mut s, &mut errors, "after").await;
        let lists = requests(&sim, "list");
        if bookmarks {
            assert_eq!(lists, 1, "the bookmark's resourceVersion was still in history: resumed without a re-list");
        } else {
            assert_eq!(lists, 2, "without bookmarks the old resourceVersion is gone: 410 and one re-list");
        }
    }
}

#[tokio::test]
async fn streaming_lists_need_no_list_request() {
    let sim = Sim::start(SimOptions::default().actors(false)).await.unwrap();
    let api: Api<Namespace> = Api::all(client(&sim).await);
    let mut s: Stream = watcher::watcher(api, watcher::Config::default().streaming_lists()).boxed();
    let mut errors = 0;
    let initial = until_init_done(&mut s, &mut errors).await;
    assert!(initial.contains(&"kube-system".to_string()), "{initial:?}");
    assert_eq!(requests(&sim, "list"), 0, "initial state came from the watch (sendInitialEvents)");
    create_ns(&sim, "streamed");
    until_applied(&mut s, &mut errors, "streamed").await;
    assert_eq!(errors, 0);
}
