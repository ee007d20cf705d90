use super::*;

#[test]
fn rfc7386_examples() {
    let cases = [
        (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
        (json!({"a": "b"}), json!({"b": "c"}), json!({"a": "b", "b": "c"})),
        (json!({"a": "b"}), json!({"a": null}), json!({})),
        (json!({"a": "b", "b": "c"}), json!({"a": null}), json!({"b": "c"})),
        (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
        (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
        (json!({"a": {"b": "c"}}), json!({"a": {"b": "d", "c": null}}), json!({"a": {"b": "d"}})),
        (json!({"a": [{"b": "c"}]}), json!({"a": [1]}), json!({"a": [1]})),
        (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
        (json!({"a": "b"}), json!(["c"]), json!(["c"])),
        (json!({"a": "foo"}), json!(null), json!(null)),
        (json!({"e": null}), json!({"a": 1}), json!({"e": null, "a": 1})),
        (json!([1, 2]), json!({"a": "b", "c": null}), json!({"a": "b"})),
        (json!({}), json!({"a": {"bb": {"ccc": null}}}), json!({"a": {"bb": {}}})),
    ];
    for (mut t, p, want) in cases {
        merge_patch(&mut t, &p);
        assert_eq!(t, want, "patch {p}");
    }
}

#[test]
fn json_patch_ops_and_atomicity() {
    let mut doc = json!({"metadata": {"labels": {"a/b": "x"}}, "spec": {"ports": [{"port": 80}, {"port": 443}]}});
    json_patch(
        &mut doc,
        &json!([
            {"op": "test", "path": "/metadata/labels/a~1b", "value": "x"},
            {"op": "replace", "path": "/metadata/labels/a~1b", "value": "y"},
            {"op": "add", "path": "/spec/ports/-", "value": {"port": 8080}},
            {"op": "remove", "path": "/spec/ports/0"},
            {"op": "copy", "from": "/spec/ports/0", "path": "/spec/first"},
            {"op": "move", "from": "/spec/first", "path": "/spec/moved"},
        ]),
    )
    .unwrap();
    assert_eq!(doc["metadata"]["labels"]["a/b"], "y");
    assert_eq!(doc["spec"]["ports"], json!([{"port": 443}, {"port": 8080}]));
    assert_eq!(doc["spec"]["moved"], json!({"port": 443}));
    let before = doc.clone();
    let err = json_patch(
        &mut doc,
        &json!([{"op": "remove", "path": "/spec/moved"}, {"op": "test", "path": "/spec/ports/0/port", "value": 1}]),
    );
    assert!(matches!(err, Err(PatchError::Invalid(_))));
    assert_eq!(doc, before, "a failed patch changes nothing");
    assert!(matches!(json_patch(&mut doc, &json!({"op": "add"})), Err(PatchError::BadRequest(_))));
    assert!(matches!(
        json_patch(&mut doc, &json!([{"op": "frobnicate", "path": "/a"}])),
        Err(PatchError::BadRequest(_))
    ));
}

#[test]
fn strategic_merge_on_pods_and_services() {
    let mut pod = json!({"spec": {"containers": [
        {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}], "ports": [{"containerPort": 80}]},
        {"name": "istio-proxy", "image": "proxyv2:1.4"}
    ]}, "metadata": {"finalizers": ["a"], "labels": {"x": "1", "y": "2"}}});
    strategic_merge_patch(
        &mut pod,
        &json!({
            "metadata": {"finalizers": ["b"], "labels": {"y": null, "z": "3"}},
            "spec": {"containers": [{"name": "app", "image": "app:2", "env": [{"name": "B", "value": "2"}]}]}
        }),
        "Pod",
    )
    .unwrap();
    assert_eq!(pod["spec"]["containers"][0]["image"], "app:2");
    assert_eq!(pod["spec"]["containers"][0]["env"], json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]));
    assert_eq!(pod["spec"]["containers"][1]["name"], "istio-proxy", "other containers survive");
    assert_eq!(pod["metadata"]["finalizers"], json!(["a", "b"]));
    assert_eq!(pod["metadata"]["labels"], json!({"x": "1", "z": "3"}));
    strategic_merge_patch(
        &mut pod,
        &json!({"spec": {"containers": [{"name": "istio-proxy", "$patch": "delete"}]}}),
        "Pod",
    )
    .unwrap();
    assert_eq!(pod["spec"]["containers"].as_array().unwrap().len(), 1);

    let mut svc = json!({"spec": {"ports": [{"name": "http2", "port": 80, "nodePort": 31380}, {"name": "https", "port": 443, "nodePort": 31390}]}});
    strategic_merge_patch(&mut svc, &json!({"spec": {"ports": [{"port": 80, "nodePort": 32000}]}}), "Service").unwrap();
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "http2", "port": 80, "nodePort": 32000}, {"name": "https", "port": 443, "nodePort": 31390}])
    );
    assert!(
        strategic_merge_patch(&mut svc, &json!({"spec": {"ports": [{"nodePort": 1}]}}), "Service").is_err(),
        "missing merge key"
    );
    assert!(strategic_merge_patch(&mut svc, &json!([1]), "Service").is_err());
    assert!(!supports_strategic_merge("MeshPolicy"));
}

#[test]
fn server_side_apply_ownership_and_conflicts() {
    let now = "2026-11-25T00:00:00Z";
    let a = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "gw"}, "spec": {"ports": [{"port": 80, "nodePort": 31380}]}});
    let created = apply(None, &a, "installer", false, "Service", now).unwrap();
    assert_eq!(managers_of(&created, ".spec.ports[port=80,protocol=\"TCP\"].nodePort"), ["installer"]);
    // Re-applying the same configuration changes nothing.
    let again = apply(Some(&created), &a, "installer", false, "Service", now).unwrap();
    assert_eq!(again, created);
    // Another manager applying a different value conflicts.
    let b = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "gw"}, "spec": {"ports": [{"port": 80, "nodePort": 32000}]}});
    let err = apply(Some(&created), &b, "meshkeeper", false, "Service", now).unwrap_err();
    let PatchError::Conflict(c) = err else { panic!("expected a conflict") };
    assert_eq!(
        conflict_message(&c),
        "Apply failed with 1 conflict: conflict with \"installer\" using v1: .spec.ports[port=80,protocol=\"TCP\"].nodePort"
    );
    // Forced: ownership moves.
    let forced = apply(Some(&created), &b, "meshkeeper", true, "Service", now).unwrap();
    assert_eq!(forced["spec"]["ports"][0]["nodePort"], 32000);
    assert_eq!(managers_of(&forced, ".spec.ports[port=80,protocol=\"TCP\"].nodePort"), ["meshkeeper"]);
    // The same value applied by a second manager is shared, not a conflict.
    let shared = apply(Some(&created), &a, "other", false, "Service", now).unwrap();
    let mut m = managers_of(&shared, ".spec.ports[port=80,protocol=\"TCP\"].nodePort");
    m.sort();
    assert_eq!(m, ["installer", "other"]);
}

#[test]
fn apply_removes_dropped_fields_and_updates_take_ownership() {
    let now = "t";
    let first = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}});
    let live = apply(None, &first, "tool", false, "ConfigMap", now).unwrap();
    let second = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"k": "v"}});
    let live = apply(Some(&live), &second, "tool", false, "ConfigMap", now).unwrap();
    assert_eq!(live["metadata"]["labels"], json!({"a": "1"}), "a field the applier dropped is removed");

    // kubectl label (an Update) takes ownership of the label it changes.
    let mut updated = live.clone();
    updated["metadata"]["labels"]["a"] = json!("9");
    record_update(Some(&live), &mut updated, "kubectl-label", None, now);
    assert_eq!(managers_of(&updated, ".metadata.labels.a"), ["kubectl-label"]);
    assert_eq!(managers_of(&updated, ".data.k"), ["tool"]);
    // Applying the old value now conflicts with kubectl-label.
    assert!(matches!(apply(Some(&updated), &second, "tool", false, "ConfigMap", now), Err(PatchError::Conflict(_))));
}

#[test]
fn garbage_never_panics() {
    let garbage = [
        json!(null),
        json!(1),
        json!("x"),
        json!([null, {"a": [null]}]),
        json!({"spec": {"containers": [1, "x", null]}}),
    ];
    for g in &garbage {
        let mut t = json!({"spec": {"containers": [{"name": "a"}]}});
        merge_patch(&mut t, g);
        let _ = json_patch(&mut t, g);
        let _ = strategic_merge_patch(&mut t, g, "Pod");
        let _ = apply(Some(&t), g, "m", false, "Pod", "t");
        let mut n = g.clone();
        record_update(Some(&t), &mut n, "m", None, "t");
        let _ = managers_of(g, ".a");
    }
}
