use super::*;

const NOW: &str = "2026-11-25T09:00:00Z";
const LATER: &str = "2026-11-25T10:00:00Z";

fn entry<'a>(obj: &'a Value, manager: &str, operation: &str) -> Option<&'a Value> {
    obj["metadata"]["managedFields"].as_array()?.iter().find(|e| e["manager"] == manager && e["operation"] == operation)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

// ---------- merge patch (RFC 7386) ----------

#[test]
fn rfc7386_appendix_a_examples() {
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
        (json!({"a": "foo"}), json!("bar"), json!("bar")),
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
fn rfc7386_section3_example() {
    let mut doc = json!({
        "title": "Goodbye!",
        "author": {"givenName": "John", "familyName": "Doe"},
        "tags": ["example", "sample"],
        "content": "This will be unchanged"
    });
    merge_patch(
        &mut doc,
        &json!({"title": "Hello!", "phoneNumber": "+01-123-456-7890", "author": {"familyName": null}, "tags": ["example"]}),
    );
    assert_eq!(
        doc,
        json!({
            "title": "Hello!",
            "author": {"givenName": "John"},
            "tags": ["example"],
            "content": "This will be unchanged",
            "phoneNumber": "+01-123-456-7890"
        })
    );
}

#[test]
fn merge_patch_on_labels_removes_and_adds() {
    let mut svc = json!({"metadata": {"labels": {"app": "gw", "istio": "ingress", "old": "x"}}});
    merge_patch(&mut svc, &json!({"metadata": {"labels": {"old": null, "new": "y"}}}));
    assert_eq!(svc["metadata"]["labels"], json!({"app": "gw", "istio": "ingress", "new": "y"}));
}

// ---------- JSON patch (RFC 6902) ----------

fn jp(doc: Value, patch: Value) -> Result<Value, PatchError> {
    let mut d = doc;
    json_patch(&mut d, &patch).map(|()| d)
}

#[test]
fn rfc6902_appendix_a_successes() {
    let cases = [
        // A.1 adding an object member
        (
            json!({"foo": "bar"}),
            json!([{"op": "add", "path": "/baz", "value": "qux"}]),
            json!({"baz": "qux", "foo": "bar"}),
        ),
        // A.2 adding an array element
        (
            json!({"foo": ["bar", "baz"]}),
            json!([{"op": "add", "path": "/foo/1", "value": "qux"}]),
            json!({"foo": ["bar", "qux", "baz"]}),
        ),
        // A.3 removing an object member
        (json!({"baz": "qux", "foo": "bar"}), json!([{"op": "remove", "path": "/baz"}]), json!({"foo": "bar"})),
        // A.4 removing an array element
        (
            json!({"foo": ["bar", "qux", "baz"]}),
            json!([{"op": "remove", "path": "/foo/1"}]),
            json!({"foo": ["bar", "baz"]}),
        ),
        // A.5 replacing a value
        (
            json!({"baz": "qux", "foo": "bar"}),
            json!([{"op": "replace", "path": "/baz", "value": "boo"}]),
            json!({"baz": "boo", "foo": "bar"}),
        ),
        // A.6 moving a value
        (
            json!({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}}),
            json!([{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}]),
            json!({"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
        ),
        // A.7 moving an array element
        (
            json!({"foo": ["all", "grass", "cows", "eat"]}),
            json!([{"op": "move", "from": "/foo/1", "path": "/foo/3"}]),
            json!({"foo": ["all", "cows", "eat", "grass"]}),
        ),
        // A.8 testing a value: success
        (
            json!({"baz": "qux", "foo": ["a", 2, "c"]}),
            json!([{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}]),
            json!({"baz": "qux", "foo": ["a", 2, "c"]}),
        ),
        // A.10 adding a nested member object
        (
            json!({"foo": "bar"}),
            json!([{"op": "add", "path": "/child", "value": {"grandchild": {}}}]),
            json!({"foo": "bar", "child": {"grandchild": {}}}),
        ),
        // A.11 ignoring unrecognized elements
        (
            json!({"foo": "bar"}),
            json!([{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}]),
            json!({"foo": "bar", "baz": "qux"}),
        ),
        // A.14 ~ escape ordering
        (json!({"/": 9, "~1": 10}), json!([{"op": "test", "path": "/~01", "value": 10}]), json!({"/": 9, "~1": 10})),
        // A.16 adding an array value
        (
            json!({"foo": ["bar"]}),
            json!([{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}]),
            json!({"foo": ["bar", ["abc", "def"]]}),
        ),
    ];
    for (doc, patch, want) in cases {
        assert_eq!(jp(doc, patch.clone()), Ok(want), "patch {patch}");
    }
}

#[test]
fn rfc6902_appendix_a_errors() {
    // A.9 testing a value: error
    assert_eq!(
        jp(json!({"baz": "qux"}), json!([{"op": "test", "path": "/baz", "value": "bar"}])),
        Err(PatchError::Invalid("testing value /baz failed: test failed".into()))
    );
    // A.12 adding to a nonexistent target
    assert_eq!(
        jp(json!({"foo": "bar"}), json!([{"op": "add", "path": "/baz/bat", "value": "qux"}])),
        Err(PatchError::Invalid(
            "add operation does not apply: doc is missing path: \"/baz/bat\": missing value".into()
        ))
    );
    // A.13 (duplicate "op" member) cannot be represented once parsed into a serde_json::Value.
    // A.15 comparing strings and numbers
    assert_eq!(
        jp(json!({"/": 9, "~1": 10}), json!([{"op": "test", "path": "/~01", "value": "10"}])),
        Err(PatchError::Invalid("testing value /~01 failed: test failed".into()))
    );
}

#[test]
fn json_patch_failed_test_message_like_the_apiserver() {
    let doc = json!({"metadata": {"labels": {"a": "1"}}});
    assert_eq!(
        jp(doc, json!([{"op": "test", "path": "/metadata/labels/a", "value": "2"}])),
        Err(PatchError::Invalid("testing value /metadata/labels/a failed: test failed".into()))
    );
}

#[test]
fn json_patch_missing_paths_are_invalid_with_evanphx_messages() {
    let doc = json!({"spec": {"ports": [{"port": 80}]}, "metadata": {}});
    let cases = [
        (
            json!([{"op": "remove", "path": "/metadata/labels"}]),
            "error in remove for path: '/metadata/labels': Unable to remove nonexistent key: labels: missing value",
        ),
        (
            json!([{"op": "remove", "path": "/metadata/labels/a"}]),
            "remove operation does not apply: doc is missing path: \"/metadata/labels/a\": missing value",
        ),
        (
            json!([{"op": "replace", "path": "/spec/replicas", "value": 1}]),
            "replace operation does not apply: doc is missing key: /spec/replicas: missing value",
        ),
        (
            json!([{"op": "replace", "path": "/status/x/y", "value": 1}]),
            "replace operation does not apply: doc is missing path: /status/x/y: missing value",
        ),
        (
            json!([{"op": "remove", "path": "/spec/ports/3"}]),
            "error in remove for path: '/spec/ports/3': Unable to remove invalid index: 3: invalid index referenced",
        ),
        (
            json!([{"op": "add", "path": "/spec/ports/5", "value": {}}]),
            "Unable to access invalid index: 5: invalid index referenced",
        ),
        (
            json!([{"op": "move", "from": "/nope", "path": "/x"}]),
            "move operation does not apply: doc is missing from path: /nope: missing value",
        ),
        (
            json!([{"op": "copy", "from": "/spec", "path": "/a/b"}]),
            "copy operation does not apply: doc is missing destination path: /a/b: missing value",
        ),
    ];
    for (patch, msg) in cases {
        assert_eq!(jp(doc.clone(), patch.clone()), Err(PatchError::Invalid(msg.into())), "patch {patch}");
    }
}

#[test]
fn json_patch_undecodable_documents_are_bad_requests_the_rest_fails_while_applying() {
    let bad = [
        (
            json!({"op": "add", "path": "/a", "value": 1}),
            "json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp",
        ),
        (json!("x"), "json: cannot unmarshal string into Go value of type []handlers.jsonPatchOp"),
        (json!([1]), "json: cannot unmarshal number into Go value of type handlers.jsonPatchOp"),
        (
            json!([{"op": 1, "path": "/a"}]),
            "json: cannot unmarshal number into Go struct field jsonPatchOp.op of type string",
        ),
    ];
    for (patch, msg) in bad {
        assert_eq!(jp(json!({"a": 1}), patch.clone()), Err(PatchError::BadRequest(msg.into())), "patch {patch}");
    }
    let invalid = [
        (json!([{"path": "/a"}]), "Unexpected kind: unknown"),
        (json!([{"op": "frobnicate", "path": "/a"}]), "Unexpected kind: frobnicate"),
        (json!([{"op": "add", "path": "a/b", "value": 1}]), "invalid JSON pointer \"a/b\""),
        (json!([{"op": "add", "path": "/a~2", "value": 1}]), "invalid JSON pointer \"/a~2\""),
        (json!([{"op": "add", "value": 1}]), "add operation, missing path field: missing value"),
        (json!([{"op": "add", "path": "/a"}]), "add operation, missing value field: missing value"),
        (json!([{"op": "move", "path": "/a"}]), "move operation, missing from field: missing value"),
    ];
    for (patch, msg) in invalid {
        assert_eq!(jp(json!({"a": 1}), patch.clone()), Err(PatchError::Invalid(msg.into())), "patch {patch}");
    }
}

#[test]
fn json_patch_is_atomic() {
    let before = json!({"a": 1, "b": [1, 2]});
    let mut doc = before.clone();
    let err = json_patch(
        &mut doc,
        &json!([
            {"op": "remove", "path": "/a"},
            {"op": "add", "path": "/b/-", "value": 3},
            {"op": "test", "path": "/b/0", "value": 9}
        ]),
    );
    assert!(matches!(err, Err(PatchError::Invalid(_))));
    assert_eq!(doc, before, "a failed patch changes nothing");
    // A malformed operation late in the document also changes nothing.
    let err = json_patch(&mut doc, &json!([{"op": "remove", "path": "/a"}, {"op": "nope", "path": "/a"}]));
    assert!(matches!(err, Err(PatchError::Invalid(_))));
    assert_eq!(doc, before);
}

#[test]
fn json_patch_pointer_escaping_on_annotations() {
    let doc = json!({"metadata": {"annotations": {"sidecar.istio.io/inject": "false", "a~b": "1"}}});
    let out = jp(
        doc,
        json!([
            {"op": "replace", "path": "/metadata/annotations/sidecar.istio.io~1inject", "value": "true"},
            {"op": "remove", "path": "/metadata/annotations/a~0b"}
        ]),
    )
    .unwrap();
    assert_eq!(out["metadata"]["annotations"], json!({"sidecar.istio.io/inject": "true"}));
}

#[test]
fn json_patch_copy_move_and_root() {
    let out = jp(
        json!({"spec": {"ports": [{"port": 80}, {"port": 443}]}}),
        json!([
            {"op": "copy", "from": "/spec/ports/0", "path": "/spec/first"},
            {"op": "move", "from": "/spec/first", "path": "/spec/moved"},
            {"op": "move", "from": "/spec/moved", "path": "/spec/moved"},
            {"op": "add", "path": "/spec/ports/0", "value": {"port": 1}}
        ]),
    )
    .unwrap();
    assert_eq!(out, json!({"spec": {"ports": [{"port": 1}, {"port": 80}, {"port": 443}], "moved": {"port": 80}}}));
    // Moving a value into its own child fails (the source is gone by then).
    assert!(matches!(
        jp(json!({"a": {"b": 1}}), json!([{"op": "move", "from": "/a", "path": "/a/c"}])),
        Err(PatchError::Invalid(_))
    ));
    // The empty pointer is the whole document.
    assert_eq!(jp(json!({"a": 1}), json!([{"op": "replace", "path": "", "value": [1]}])), Ok(json!([1])));
    assert_eq!(jp(json!({"a": 1}), json!([{"op": "test", "path": "", "value": {"a": 1}}])), Ok(json!({"a": 1})));
}

#[test]
fn json_patch_test_compares_numbers_by_value_and_rejects_leading_zero_indexes() {
    assert!(jp(json!({"a": 1}), json!([{"op": "test", "path": "/a", "value": 1.0}])).is_ok());
    assert!(
        jp(json!({"a": {"x": [1, {"y": 2}]}}), json!([{"op": "test", "path": "/a", "value": {"x": [1.0, {"y": 2}]}}]))
            .is_ok()
    );
    assert!(matches!(
        jp(json!({"a": [1, 2]}), json!([{"op": "test", "path": "/a/01", "value": 2}])),
        Err(PatchError::Invalid(_))
    ));
    // Like evanphx/json-patch, an absent member tests equal to null; anything else fails.
    assert!(jp(json!({"a": 1}), json!([{"op": "test", "path": "/b", "value": null}])).is_ok());
    assert!(jp(json!({"a": 1}), json!([{"op": "test", "path": "/b", "value": 0}])).is_err());
}

#[test]
fn json_patch_null_and_empty_are_no_ops() {
    assert_eq!(jp(json!({"a": 1}), json!(null)), Ok(json!({"a": 1})));
    assert_eq!(jp(json!({"a": 1}), json!([])), Ok(json!({"a": 1})));
}

// ---------- strategic merge patch ----------

fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "labels": {"app": "a", "version": "v1"}, "finalizers": ["x"]},
        "spec": {
            "containers": [
                {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}],
                 "ports": [{"containerPort": 8080, "name": "http"}], "args": ["--a", "--b"]},
                {"name": "istio-proxy", "image": "proxyv2:1.4", "ports": [{"containerPort": 15090, "name": "http-envoy-prom"}]}
            ],
            "volumes": [{"name": "v1", "emptyDir": {}}],
            "tolerations": [{"key": "a", "operator": "Exists"}]
        }
    })
}

fn smp(mut target: Value, patch: Value, kind: &str) -> Value {
    strategic_merge_patch(&mut target, &patch, kind).unwrap();
    target
}

#[test]
fn smp_container_image_change_keeps_other_containers() {
    let out = smp(pod(), json!({"spec": {"containers": [{"name": "istio-proxy", "image": "proxyv2:1.5"}]}}), "Pod");
    let c = &out["spec"]["containers"];
    assert_eq!(c.as_array().unwrap().len(), 2);
    assert_eq!(c[0]["image"], "app:1");
    assert_eq!(c[1]["image"], "proxyv2:1.5");
    assert_eq!(c[1]["ports"][0]["containerPort"], 15090, "unpatched fields of the item survive");
}

#[test]
fn smp_delete_directive_removes_one_container() {
    let out = smp(pod(), json!({"spec": {"containers": [{"name": "istio-proxy", "$patch": "delete"}]}}), "Pod");
    assert_eq!(out["spec"]["containers"].as_array().unwrap().len(), 1);
    assert_eq!(out["spec"]["containers"][0]["name"], "app");
}

#[test]
fn smp_env_merges_by_name() {
    let out = smp(
        pod(),
        json!({"spec": {"containers": [{"name": "app", "env": [{"name": "A", "value": "9"}, {"name": "B", "value": "2"}]}]}}),
        "Pod",
    );
    assert_eq!(out["spec"]["containers"][0]["env"], json!([{"name": "A", "value": "9"}, {"name": "B", "value": "2"}]));
}

#[test]
fn smp_container_ports_merge_by_container_port() {
    let out = smp(
        pod(),
        json!({"spec": {"containers": [{"name": "app", "ports": [{"containerPort": 8080, "protocol": "TCP"}, {"containerPort": 9090}]}]}}),
        "Pod",
    );
    assert_eq!(
        out["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 8080, "name": "http", "protocol": "TCP"}, {"containerPort": 9090}])
    );
}

#[test]
fn smp_args_command_and_tolerations_replace() {
    let out = smp(
        pod(),
        json!({"spec": {"tolerations": [{"key": "b", "operator": "Exists"}], "containers": [{"name": "app", "args": ["--c"]}]}}),
        "Pod",
    );
    assert_eq!(out["spec"]["tolerations"], json!([{"key": "b", "operator": "Exists"}]));
    assert_eq!(out["spec"]["containers"][0]["args"], json!(["--c"]));
}

#[test]
fn smp_service_node_port_change_keeps_other_ports() {
    let svc = json!({"kind": "Service", "spec": {"type": "NodePort", "ports": [
        {"name": "http2", "port": 80, "targetPort": 8080, "nodePort": 31380},
        {"name": "https", "port": 443, "targetPort": 8443, "nodePort": 31390}
    ]}});
    let out = smp(svc, json!({"spec": {"ports": [{"port": 80, "nodePort": 32000}]}}), "Service");
    assert_eq!(
        out["spec"]["ports"],
        json!([
            {"name": "http2", "port": 80, "targetPort": 8080, "nodePort": 32000},
            {"name": "https", "port": 443, "targetPort": 8443, "nodePort": 31390}
        ])
    );
}

#[test]
fn smp_missing_merge_key_is_a_bad_request() {
    let mut svc = json!({"spec": {"ports": [{"port": 80}]}});
    let before = svc.clone();
    let err = strategic_merge_patch(&mut svc, &json!({"spec": {"ports": [{"nodePort": 1}]}}), "Service");
    assert!(matches!(err, Err(PatchError::BadRequest(m)) if m.contains("does not contain declared merge key: port")));
    assert_eq!(svc, before);
}

#[test]
fn smp_labels_null_removes_others_survive() {
    let out = smp(pod(), json!({"metadata": {"labels": {"version": null, "team": "mesh"}}}), "Pod");
    assert_eq!(out["metadata"]["labels"], json!({"app": "a", "team": "mesh"}));
}

#[test]
fn smp_finalizers_merge_as_a_set_and_delete_from_primitive_list() {
    let out = smp(pod(), json!({"metadata": {"finalizers": ["y", "x"]}}), "Pod");
    assert_eq!(out["metadata"]["finalizers"], json!(["x", "y"]));
    let out = smp(out, json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}), "Pod");
    assert_eq!(out["metadata"]["finalizers"], json!(["y"]));
}

#[test]
fn smp_replace_directive_on_map_and_list() {
    let out = smp(pod(), json!({"metadata": {"labels": {"$patch": "replace", "only": "this"}}}), "Pod");
    assert_eq!(out["metadata"]["labels"], json!({"only": "this"}));
    let out =
        smp(pod(), json!({"spec": {"containers": [{"name": "solo", "image": "s"}, {"$patch": "replace"}]}}), "Pod");
    assert_eq!(out["spec"]["containers"], json!([{"name": "solo", "image": "s"}]));
}

#[test]
fn smp_delete_directive_on_a_map_removes_it() {
    let out = smp(pod(), json!({"metadata": {"labels": {"$patch": "delete"}}}), "Pod");
    assert!(out["metadata"].get("labels").is_none());
}

#[test]
fn smp_retain_keys() {
    let dep = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
    let out = smp(dep, json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}), "Deployment");
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    let mut d = json!({"spec": {}});
    assert!(strategic_merge_patch(&mut d, &json!({"spec": {"$retainKeys": "type"}}), "Deployment").is_err());
}

#[test]
fn smp_set_element_order_is_honoured() {
    let out = smp(
        pod(),
        json!({"spec": {
            "$setElementOrder/containers": [{"name": "istio-proxy"}, {"name": "app"}],
            "containers": [{"name": "app", "image": "app:2"}]
        }}),
        "Pod",
    );
    let names: Vec<&str> =
        out["spec"]["containers"].as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["istio-proxy", "app"]);
    assert_eq!(out["spec"]["containers"][1]["image"], "app:2");
    assert!(out["spec"].get("$setElementOrder/containers").is_none(), "directives never reach the object");
}

#[test]
fn smp_volumes_volume_mounts_and_conditions() {
    let mut p = pod();
    p["spec"]["containers"][0]["volumeMounts"] = json!([{"name": "v1", "mountPath": "/a"}]);
    p["status"] =
        json!({"conditions": [{"type": "Ready", "status": "False"}, {"type": "Initialized", "status": "True"}]});
    let out = smp(
        p,
        json!({
            "spec": {"volumes": [{"name": "v2", "configMap": {"name": "c"}}],
                     "containers": [{"name": "app", "volumeMounts": [{"name": "v2", "mountPath": "/b"}]}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        }),
        "Pod",
    );
    assert_eq!(out["spec"]["volumes"].as_array().unwrap().len(), 2);
    assert_eq!(out["spec"]["containers"][0]["volumeMounts"].as_array().unwrap().len(), 2);
    assert_eq!(
        out["status"]["conditions"],
        json!([{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}])
    );
}

#[test]
fn smp_deployment_template_containers_merge() {
    let dep = json!({"kind": "Deployment", "spec": {"replicas": 1, "template": {"spec": {"containers": [
        {"name": "a", "image": "a:1", "ports": [{"containerPort": 80}]}, {"name": "b", "image": "b:1"}
    ]}}}});
    let out = smp(
        dep,
        json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 81}]}]}}}}),
        "Deployment",
    );
    assert_eq!(out["spec"]["replicas"], 3);
    let cs = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(cs[0]["ports"], json!([{"containerPort": 80}, {"containerPort": 81}]));
    assert_eq!(cs[1]["image"], "b:1");
}

#[test]
fn smp_owner_references_by_uid_and_image_pull_secrets_by_name() {
    let obj = json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}, "spec": {"imagePullSecrets": [{"name": "s1"}]}});
    let out = smp(
        obj,
        json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]}, "spec": {"imagePullSecrets": [{"name": "s2"}]}}),
        "Pod",
    );
    assert_eq!(out["metadata"]["ownerReferences"].as_array().unwrap().len(), 2);
    assert_eq!(out["spec"]["imagePullSecrets"], json!([{"name": "s1"}, {"name": "s2"}]));
}

#[test]
fn smp_unknown_directive_and_non_object_patch_are_bad_requests() {
    let mut p = pod();
    let before = p.clone();
    assert!(matches!(
        strategic_merge_patch(&mut p, &json!({"metadata": {"labels": {"$patch": "explode"}}}), "Pod"),
        Err(PatchError::BadRequest(_))
    ));
    assert!(matches!(strategic_merge_patch(&mut p, &json!([1]), "Pod"), Err(PatchError::BadRequest(_))));
    assert_eq!(p, before);
}

#[test]
fn strategic_merge_only_for_built_in_kinds() {
    for k in ["Pod", "Service", "Deployment", "ConfigMap", "Namespace", "CustomResourceDefinition", "Lease"] {
        assert!(supports_strategic_merge(k), "{k}");
    }
    for k in ["MeshPolicy", "VirtualService", "Gateway", ""] {
        assert!(!supports_strategic_merge(k), "{k}");
    }
}

#[test]
fn merge_keys_depend_on_the_parent_field() {
    assert_eq!(merge_key("ports", Some("spec"), "Service"), Some("port"));
    assert_eq!(merge_key("ports", Some("containers"), "Pod"), Some("containerPort"));
    assert_eq!(merge_key("ports", Some("initContainers"), "Deployment"), Some("containerPort"));
    assert_eq!(merge_key("ports", Some("subsets"), "Endpoints"), None);
    assert_eq!(merge_key("tolerations", Some("spec"), "Pod"), None);
    assert_eq!(merge_key("conditions", Some("status"), "Node"), Some("type"));
}

// ---------- server-side apply ----------

fn svc_cfg(node_port: u16) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "gw", "namespace": "istio-system"},
           "spec": {"ports": [{"port": 80, "nodePort": node_port}]}})
}

const NODE_PORT: &str = ".spec.ports[port=80,protocol=\"TCP\"].nodePort";

#[test]
fn apply_creates_with_an_apply_entry() {
    let created = apply(None, &svc_cfg(31380), "installer", false, "Service", NOW).unwrap();
    assert_eq!(created["spec"]["ports"][0]["nodePort"], 31380);
    let e = entry(&created, "installer", "Apply").expect("apply entry");
    assert_eq!(e["apiVersion"], "v1");
    assert_eq!(e["fieldsType"], "FieldsV1");
    assert_eq!(e["time"], NOW);
    assert_eq!(
        e["fieldsV1"],
        json!({"f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:nodePort": {}, "f:port": {}}}}})
    );
    assert!(e.get("subresource").is_none());
    assert_eq!(managers_of(&created, NODE_PORT), ["installer"]);
}

#[test]
fn reapplying_the_same_configuration_changes_nothing() {
    let created = apply(None, &svc_cfg(31380), "installer", false, "Service", NOW).unwrap();
    let again = apply(Some(&created), &svc_cfg(31380), "installer", false, "Service", LATER).unwrap();
    assert_eq!(again, created, "not even the time moves");
}

#[test]
fn apply_conflict_with_another_applier_has_the_real_message() {
    let created = apply(None, &svc_cfg(31380), "installer", false, "Service", NOW).unwrap();
    let err = apply(Some(&created), &svc_cfg(32000), "meshkeeper", false, "Service", NOW).unwrap_err();
    let PatchError::Conflict(c) = err else { panic!("expected a conflict") };
    assert_eq!(c, [FieldConflict { manager: "installer".into(), api_version: String::new(), field: NODE_PORT.into() }]);
    assert_eq!(
        conflict_message(&c),
        "Apply failed with 1 conflict: conflict with \"installer\": .spec.ports[port=80,protocol=\"TCP\"].nodePort"
    );
}

#[test]
fn apply_conflict_with_an_updater_names_its_api_version() {
    let mut dep =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 1}});
    record_update(None, &mut dep, "kubectl-client-side-apply", None, NOW);
    let cfg =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 3}});
    let Err(PatchError::Conflict(c)) = apply(Some(&dep), &cfg, "kubectl", false, "Deployment", NOW) else {
        panic!("expected a conflict")
    };
    assert_eq!(
        conflict_message(&c),
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
    );
}

#[test]
fn conflict_message_with_several_conflicts_groups_by_sorted_manager() {
    let c = |m: &str, v: &str, f: &str| FieldConflict { manager: m.into(), api_version: v.into(), field: f.into() };
    let msg = conflict_message(&[c("zeta", "v1", ".spec.a"), c("alpha", "", ".spec.b"), c("zeta", "v1", ".spec.c")]);
    assert_eq!(
        msg,
        "Apply failed with 3 conflicts: conflicts with \"alpha\":\n- .spec.b\nconflicts with \"zeta\" using v1:\n- .spec.a\n- .spec.c"
    );
}

#[test]
fn forced_apply_moves_ownership() {
    let created = apply(None, &svc_cfg(31380), "installer", false, "Service", NOW).unwrap();
    let forced = apply(Some(&created), &svc_cfg(32000), "meshkeeper", true, "Service", LATER).unwrap();
    assert_eq!(forced["spec"]["ports"][0]["nodePort"], 32000);
    assert_eq!(managers_of(&forced, NODE_PORT), ["meshkeeper"]);
    // The port number itself was equal, so it stays shared.
    assert_eq!(sorted(managers_of(&forced, ".spec.ports[port=80,protocol=\"TCP\"].port")), ["installer", "meshkeeper"]);
    assert_eq!(entry(&forced, "installer", "Apply").unwrap()["time"], NOW, "the loser's time is untouched");
}

#[test]
fn equal_values_are_shared_not_conflicting() {
    let created = apply(None, &svc_cfg(31380), "installer", false, "Service", NOW).unwrap();
    let shared = apply(Some(&created), &svc_cfg(31380), "other", false, "Service", NOW).unwrap();
    assert_eq!(sorted(managers_of(&shared, NODE_PORT)), ["installer", "other"]);
    // One of them dropping the field leaves it in place: the other still owns it.
    let cfg =
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "gw"}, "spec": {"ports": [{"port": 80}]}});
    let dropped = apply(Some(&shared), &cfg, "other", false, "Service", NOW).unwrap();
    assert_eq!(dropped["spec"]["ports"][0]["nodePort"], 31380);
    assert_eq!(managers_of(&dropped, NODE_PORT), ["installer"]);
}

#[test]
fn apply_removes_fields_the_applier_dropped() {
    let first = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}, "data": {"k": "v", "j": "w"}});
    let live = apply(None, &first, "tool", false, "ConfigMap", NOW).unwrap();
    let second = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"k": "v"}});
    let live = apply(Some(&live), &second, "tool", false, "ConfigMap", NOW).unwrap();
    assert_eq!(live["metadata"]["labels"], json!({"a": "1"}));
    assert_eq!(live["data"], json!({"k": "v"}));
    assert!(managers_of(&live, ".metadata.labels.b").is_empty());
}

#[test]
fn apply_removes_a_dropped_container_whole() {
    let cfg = |names: &[&str]| {
        let cs: Vec<Value> = names.iter().map(|n| json!({"name": n, "image": format!("{n}:1")})).collect();
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": cs}}}})
    };
    let live = apply(None, &cfg(&["a", "b"]), "tool", false, "Deployment", NOW).unwrap();
    let live = apply(Some(&live), &cfg(&["a"]), "tool", false, "Deployment", NOW).unwrap();
    assert_eq!(live["spec"]["template"]["spec"]["containers"], json!([{"name": "a", "image": "a:1"}]));
}

#[test]
fn apply_keeps_an_item_another_manager_has_fields_in() {
    let cfg = |ports: Value| json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": ports}});
    let live = apply(
        None,
        &cfg(json!([{"port": 80, "name": "http"}, {"port": 443, "name": "https"}])),
        "tool",
        false,
        "Service",
        NOW,
    )
    .unwrap();
    // An updater sets the nodePort of port 443.
    let mut updated = live.clone();
    updated["spec"]["ports"][1]["nodePort"] = json!(31390);
    record_update(Some(&live), &mut updated, "allocator", None, NOW);
    // The applier drops port 443: the item stays (with its key) because the allocator owns a field in it.
    let live =
        apply(Some(&updated), &cfg(json!([{"port": 80, "name": "http"}])), "tool", false, "Service", NOW).unwrap();
    assert_eq!(live["spec"]["ports"], json!([{"port": 80, "name": "http"}, {"port": 443, "nodePort": 31390}]));
}

#[test]
fn apply_merges_associative_lists_with_other_managers_items() {
    let cfg = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}});
    let live = apply(None, &cfg, "tool", false, "Pod", NOW).unwrap();
    // A webhook-like updater adds a sidecar.
    let mut injected = live.clone();
    if let Some(cs) = injected["spec"]["containers"].as_array_mut() {
        cs.push(json!({"name": "istio-proxy", "image": "proxyv2"}));
    }
    record_update(Some(&live), &mut injected, "injector", None, NOW);
    let cfg2 = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "app", "image": "app:2"}]}});
    let out = apply(Some(&injected), &cfg2, "tool", false, "Pod", LATER).unwrap();
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "app", "image": "app:2"}, {"name": "istio-proxy", "image": "proxyv2"}])
    );
    assert_eq!(managers_of(&out, ".spec.containers[name=\"istio-proxy\"].image"), ["injector"]);
}

#[test]
fn apply_finalizers_are_a_set() {
    let cfg = |f: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": f}});
    let live = apply(None, &cfg(json!(["a.io/x", "b.io/y"])), "tool", false, "ConfigMap", NOW).unwrap();
    assert_eq!(managers_of(&live, ".metadata.finalizers[=\"a.io/x\"]"), ["tool"]);
    let e = entry(&live, "tool", "Apply").unwrap();
    assert!(e["fieldsV1"]["f:metadata"]["f:finalizers"].get("v:\"a.io/x\"").is_some());
    let live = apply(Some(&live), &cfg(json!(["b.io/y"])), "tool", false, "ConfigMap", NOW).unwrap();
    assert_eq!(live["metadata"]["finalizers"], json!(["b.io/y"]));
}

#[test]
fn apply_keeps_server_owned_metadata_and_does_not_track_it() {
    let mut live = apply(None, &svc_cfg(31380), "installer", false, "Service", NOW).unwrap();
    live["metadata"]["resourceVersion"] = json!("42");
    live["metadata"]["uid"] = json!("u-1");
    let mut cfg = svc_cfg(31380);
    cfg["metadata"]["resourceVersion"] = json!("1");
    cfg["metadata"]["uid"] = json!("other");
    let out = apply(Some(&live), &cfg, "installer", false, "Service", NOW).unwrap();
    assert_eq!(out["metadata"]["resourceVersion"], "42");
    assert_eq!(out["metadata"]["uid"], "u-1");
    let fields = &entry(&out, "installer", "Apply").unwrap()["fieldsV1"];
    assert!(
        fields.get("f:metadata").is_none() && fields.get("f:apiVersion").is_none() && fields.get("f:kind").is_none()
    );
}

#[test]
fn apply_rejects_items_without_their_key_and_non_objects() {
    let cfg =
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"image": "x"}]}});
    assert!(matches!(apply(None, &cfg, "m", false, "Pod", NOW), Err(PatchError::BadRequest(_))));
    assert!(matches!(apply(None, &json!([1]), "m", false, "Pod", NOW), Err(PatchError::BadRequest(_))));
}

#[test]
fn apply_on_a_custom_resource_treats_lists_as_atomic() {
    let cfg = |hosts: Value| json!({"apiVersion": "mesh.io/v1", "kind": "MeshPolicy", "metadata": {"name": "m"}, "spec": {"hosts": hosts}});
    let live = apply(None, &cfg(json!(["a", "b"])), "tool", false, "MeshPolicy", NOW).unwrap();
    assert_eq!(managers_of(&live, ".spec.hosts"), ["tool"]);
    let live = apply(Some(&live), &cfg(json!(["c"])), "tool", false, "MeshPolicy", NOW).unwrap();
    assert_eq!(live["spec"]["hosts"], json!(["c"]));
}

// ---------- updates ----------

#[test]
fn record_update_on_create_owns_every_field_but_server_metadata() {
    let mut obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "n", "uid": "u", "resourceVersion": "1", "creationTimestamp": "t",
                     "generation": 1, "generateName": "c-", "labels": {"a": "1"}},
        "data": {"k": "v"}});
    record_update(None, &mut obj, "kubectl-create", None, NOW);
    let e = entry(&obj, "kubectl-create", "Update").unwrap();
    // The maps it created carry the "." marker, as 03-patch-errors.json shows.
    assert_eq!(
        e["fieldsV1"],
        json!({"f:data": {".": {}, "f:k": {}}, "f:metadata": {"f:generateName": {}, "f:labels": {".": {}, "f:a": {}}}})
    );
    assert_eq!(e["apiVersion"], "v1");
    assert_eq!(e["time"], NOW);
}

#[test]
fn record_update_marks_created_maps_lists_and_items_not_the_zero_value_skeleton() {
    // 06-nodeport.json: f:spec (a struct every Service has) has no marker, f:ports and its items
    // do, f:selector is atomic.
    let mut svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"type": "NodePort", "selector": {"app": "x"}, "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}});
    record_update(None, &mut svc, "rec", None, NOW);
    assert_eq!(
        entry(&svc, "rec", "Update").unwrap()["fieldsV1"],
        json!({"f:spec": {"f:type": {}, "f:selector": {},
            "f:ports": {".": {}, "k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:name": {}, "f:port": {}, "f:protocol": {}}}}})
    );
    // Changing an existing item or adding to an existing map marks nothing; the creator keeps
    // the markers; removing a map drops its marker.
    let mut next = svc.clone();
    next["spec"]["ports"][0]["name"] = json!("web");
    next["metadata"]["labels"] = json!({"a": "1"});
    record_update(Some(&svc), &mut next, "other", None, LATER);
    assert_eq!(
        entry(&next, "other", "Update").unwrap()["fieldsV1"],
        json!({"f:metadata": {"f:labels": {".": {}, "f:a": {}}}, "f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {"f:name": {}}}}})
    );
    let mut gone = next.clone();
    gone["metadata"].as_object_mut().unwrap().remove("labels");
    record_update(Some(&next), &mut gone, "third", None, LATER);
    assert!(entry(&gone, "other", "Update").unwrap()["fieldsV1"].get("f:metadata").is_none());
    // A Deployment: strategy and template are in every Deployment, rollingUpdate and labels are not.
    let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"app": "w"}}, "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
            "template": {"metadata": {"labels": {"app": "w"}}, "spec": {"containers": [{"name": "app", "image": "i", "resources": {}}]}}}});
    record_update(None, &mut d, "rec", None, NOW);
    assert_eq!(
        entry(&d, "rec", "Update").unwrap()["fieldsV1"],
        json!({"f:spec": {"f:selector": {}, "f:strategy": {"f:type": {}, "f:rollingUpdate": {".": {}, "f:maxSurge": {}}},
            "f:template": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}, "f:resources": {}}}}}}})
    );
}

#[test]
fn record_update_transfers_ownership_from_an_applier() {
    let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"k": "v"}});
    let live = apply(None, &cfg, "tool", false, "ConfigMap", NOW).unwrap();
    let mut updated = live.clone();
    updated["metadata"]["labels"]["a"] = json!("9");
    record_update(Some(&live), &mut updated, "kubectl-label", None, LATER);
    assert_eq!(managers_of(&updated, ".metadata.labels.a"), ["kubectl-label"]);
    assert_eq!(managers_of(&updated, ".data.k"), ["tool"]);
    assert_eq!(entry(&updated, "tool", "Apply").unwrap()["time"], NOW, "other entries keep their time");
    // Applying the old value now conflicts with kubectl-label.
    let Err(PatchError::Conflict(c)) = apply(Some(&updated), &cfg, "tool", false, "ConfigMap", LATER) else {
        panic!("expected a conflict")
    };
    assert_eq!(
        conflict_message(&c),
        "Apply failed with 1 conflict: conflict with \"kubectl-label\" using v1: .metadata.labels.a"
    );
}

#[test]
fn record_update_drops_removed_fields_from_every_manager() {
    let cfg =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}});
    let live = apply(None, &cfg, "tool", false, "ConfigMap", NOW).unwrap();
    let mut updated = live.clone();
    if let Some(l) = updated["metadata"]["labels"].as_object_mut() {
        l.remove("b");
    }
    record_update(Some(&live), &mut updated, "kubectl-label", None, NOW);
    assert!(managers_of(&updated, ".metadata.labels.b").is_empty());
    assert_eq!(managers_of(&updated, ".metadata.labels.a"), ["tool"]);
    assert!(entry(&updated, "kubectl-label", "Update").is_none(), "a pure removal owns nothing");
}

#[test]
fn record_update_without_changes_leaves_managed_fields_alone() {
    let mut obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}});
    record_update(None, &mut obj, "a", None, NOW);
    let mut same = obj.clone();
    record_update(Some(&obj), &mut same, "b", None, LATER);
    assert_eq!(same, obj);
}

#[test]
fn record_update_to_the_status_subresource_tracks_status() {
    let live =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 1}});
    let mut obj = live.clone();
    record_update(None, &mut obj, "kubectl", None, NOW);
    assert!(entry(&obj, "kubectl", "Update").unwrap()["fieldsV1"].get("f:status").is_none());
    let mut with_status = obj.clone();
    with_status["status"] = json!({"conditions": [{"type": "Available", "status": "True"}]});
    record_update(Some(&obj), &mut with_status, "kube-controller-manager", Some("status"), NOW);
    let e = entry(&with_status, "kube-controller-manager", "Update").unwrap();
    assert_eq!(e["subresource"], "status");
    assert_eq!(managers_of(&with_status, ".status.conditions[type=\"Available\"].status"), ["kube-controller-manager"]);
    assert_eq!(managers_of(&with_status, ".spec.replicas"), ["kubectl"]);
}

#[test]
fn record_update_merges_into_the_managers_existing_entry() {
    let mut obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    record_update(None, &mut obj, "m", None, NOW);
    let mut next = obj.clone();
    next["data"]["b"] = json!("2");
    record_update(Some(&obj), &mut next, "m", None, LATER);
    let entries = next["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["fieldsV1"], json!({"f:data": {".": {}, "f:a": {}, "f:b": {}}}));
    assert_eq!(entries[0]["time"], LATER);
}

// ---------- managers_of ----------

#[test]
fn managers_of_accepts_partial_keys_and_prefix_ownership() {
    let live = apply(None, &svc_cfg(31380), "installer", false, "Service", NOW).unwrap();
    assert_eq!(managers_of(&live, ".spec.ports[port=80].nodePort"), ["installer"]);
    assert!(managers_of(&live, ".spec.ports[port=81].nodePort").is_empty());
    assert!(managers_of(&live, ".spec.ports[port=80,protocol=\"UDP\"].nodePort").is_empty());
    assert!(managers_of(&live, ".spec.type").is_empty());
    assert!(managers_of(&live, "not a path").is_empty());
    assert!(managers_of(&live, ".spec.ports[port=").is_empty());
    // An owner of an atomic list owns its insides.
    let cr = apply(
        None,
        &json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "x"}, "spec": {"l": [{"a": 1}]}}),
        "t",
        false,
        "X",
        NOW,
    )
    .unwrap();
    assert_eq!(managers_of(&cr, ".spec.l"), ["t"]);
}

#[test]
fn managers_of_reads_real_server_field_sets() {
    // managedFields as a real kube-apiserver writes them (with `.` markers and an Update).
    let obj = json!({"metadata": {"managedFields": [
        {"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1", "time": "t", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:istio-injection": {}}},
                      "f:spec": {"f:ports": {".": {}, "k:{\"port\":443,\"protocol\":\"TCP\"}": {".": {}, "f:nodePort": {}, "f:port": {}}}}}},
        {"manager": "meshkeeper", "operation": "Apply", "apiVersion": "v1", "time": "t", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:metadata": {"f:labels": {"f:istio-injection": {}}}}}
    ]}});
    assert_eq!(managers_of(&obj, ".metadata.labels.istio-injection"), ["kubectl-client-side-apply", "meshkeeper"]);
    assert_eq!(managers_of(&obj, ".spec.ports[port=443,protocol=\"TCP\"].nodePort"), ["kubectl-client-side-apply"]);
}

#[test]
fn foreign_managed_fields_survive_a_round_trip() {
    let mut obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "managedFields": [
        {"manager": "old", "operation": "Update", "apiVersion": "v1", "time": "t0", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:data": {"f:x": {}}, "f:spec": {"f:l": {"i:0": {}}}}}
    ]}, "data": {"x": "1"}});
    let old = obj.clone();
    obj["data"]["y"] = json!("2");
    record_update(Some(&old), &mut obj, "new", None, NOW);
    let e = entry(&obj, "old", "Update").unwrap();
    assert_eq!(e["fieldsV1"], json!({"f:data": {"f:x": {}}, "f:spec": {"f:l": {"i:0": {}}}}));
    assert_eq!(e["time"], "t0");
}

// ---------- garbage in ----------

#[test]
fn garbage_never_panics() {
    let garbage = [
        json!(null),
        json!(1),
        json!(-1.5),
        json!("x"),
        json!(true),
        json!([]),
        json!([null, {"a": [null]}]),
        json!({"metadata": null, "spec": {"containers": [1, "x", null, {"name": null}]}}),
        json!({"metadata": {"managedFields": [1, null, {"fieldsV1": "x"}, {"fieldsV1": {"f:a": 1, "k:{": null}}]}}),
        json!({"metadata": {"managedFields": {"x": 1}}, "spec": {"ports": [{"port": {"a": null}}], "$patch": 1}}),
        json!({"spec": {"$setElementOrder/containers": 1, "$deleteFromPrimitiveList/x": null, "$retainKeys": [1]}}),
        json!([{"op": "add", "path": "/a/b/c/d", "value": null}, {"op": 1, "path": 2}]),
        json!([{"op": "move", "from": "", "path": "/x"}, {"op": "copy", "from": "/", "path": ""}]),
    ];
    for g in &garbage {
        for t0 in [pod(), json!(null), json!([1, 2]), g.clone()] {
            let mut t = t0.clone();
            merge_patch(&mut t, g);
            let mut t = t0.clone();
            let _ = json_patch(&mut t, g);
            let mut t = t0.clone();
            let _ = strategic_merge_patch(&mut t, g, "Pod");
            let _ = apply(Some(&t0), g, "m", false, "Pod", NOW);
            let _ = apply(Some(g), &pod(), "m", true, "Service", NOW);
            let _ = apply(None, g, "m", false, "", NOW);
            let mut n = g.clone();
            record_update(Some(&t0), &mut n, "m", None, NOW);
            let mut n = t0.clone();
            record_update(Some(g), &mut n, "m", Some("status"), NOW);
            let _ = managers_of(g, ".a[b=1].c[=\"d\"]");
            let _ = managers_of(&t0, "[[[");
        }
    }
}

// ---------- 05-namespace-managedfields.json ----------

#[test]
fn entries_are_sorted_like_the_real_server() {
    // Apply before Update, then by time (none first), then manager.
    let mut obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "managedFields": [
        {"manager": "z", "operation": "Update", "apiVersion": "v1", "time": LATER, "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:z": {}}}},
        {"manager": "b", "operation": "Update", "apiVersion": "v1", "time": NOW, "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:b": {}}}},
        {"manager": "a", "operation": "Update", "apiVersion": "v1", "time": NOW, "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}}},
        {"manager": "k", "operation": "Apply", "apiVersion": "v1", "time": NOW, "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:k": {}}}},
        {"manager": "l", "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:l": {}}}}]},
        "data": {"a": "1", "b": "1", "k": "1", "l": "1", "z": "1"}});
    let old = obj.clone();
    obj["data"]["n"] = json!("1");
    record_update(Some(&old), &mut obj, "n", None, NOW);
    let order: Vec<&str> =
        obj["metadata"]["managedFields"].as_array().unwrap().iter().map(|e| e["manager"].as_str().unwrap()).collect();
    assert_eq!(order, ["l", "k", "a", "b", "n", "z"]);
}

#[test]
fn managed_fields_a_client_rewrites_are_taken_and_an_apply_of_present_values_has_no_time() {
    let live = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n", "labels": {"a": "1"},
        "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1", "time": NOW,
            "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {"f:a": {}}}}}]}});
    // kubectl's migration: a JSON patch replaces managedFields only.
    let mut next = live.clone();
    next["metadata"]["managedFields"] = json!([{"manager": "kubectl", "operation": "Apply", "apiVersion": "v1",
        "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {"f:a": {}}}}}]);
    record_update(Some(&live), &mut next, "kubectl", None, LATER);
    assert_eq!(managers_of(&next, ".metadata.labels.a"), ["kubectl"]);
    assert!(entry(&next, "kubectl", "Apply").unwrap().get("time").is_none());
    // Another applier of a value already there: shared ownership, the object unchanged, no time.
    let cfg = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n", "labels": {"a": "1"}}});
    let shared = apply(Some(&next), &cfg, "other", false, "Namespace", LATER).unwrap();
    assert!(entry(&shared, "other", "Apply").unwrap().get("time").is_none());
}

#[test]
fn kubectl_server_side_apply_takes_over_client_side_applied_fields_and_syncs_the_annotation() {
    let last = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"k":"v"}}"#;
    let live = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c",
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": last},
        "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1", "time": NOW,
            "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:k": {}}, "f:metadata": {"f:annotations": {"f:kubectl.kubernetes.io/last-applied-configuration": {}}}}}]},
        "data": {"k": "v"}});
    let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "w"}});
    // Another manager conflicts on .data.k ...
    assert!(matches!(apply(Some(&live), &cfg, "tool", false, "ConfigMap", LATER), Err(PatchError::Conflict(_))));
    // ... kubectl does not: the last-applied configuration set it to the live value.
    let out = apply(Some(&live), &cfg, "kubectl", false, "ConfigMap", LATER).unwrap();
    assert_eq!(out["data"]["k"], "w");
    assert_eq!(
        out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        "{\"apiVersion\":\"v1\",\"data\":{\"k\":\"w\"},\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\"}}\n"
    );
}
