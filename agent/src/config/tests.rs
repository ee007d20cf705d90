use super::*;

fn load(yaml: &str) -> Result<Settings, ConfigErrors> {
    Settings::from_yaml_and_env(Some(yaml), &[])
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn empty_file_gives_the_asm_onprem_defaults() {
    let s = load("# nothing but a comment\n").unwrap();
    assert_eq!(s, Settings::defaults(Profile::AsmOnprem));
    assert_eq!(s.gateway.node_ports["http2"], 31380);
    assert_eq!(s.gateway.node_ports.len(), 9);
    assert_eq!(s.control_plane.components.len(), 6);
    assert!(s.injection.exclude.iter().any(|g| g.as_str() == "gke-system"));
    assert_eq!(Settings::from_yaml_and_env(None, &[]).unwrap(), s);
}

#[test]
fn istiod_profile_has_its_own_defaults() {
    let s = load("profile: istiod\n").unwrap();
    let names: Vec<_> = s.control_plane.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["istiod", "istio-ingressgateway"]);
    assert_eq!(s.gateway.mode, GatewayMode::Off);
    assert!(s.gateway.node_ports.is_empty());
}

#[test]
fn file_values_override_defaults_and_maps_merge() {
    let s = load(
        "injection:\n  mode: enforce\n  exclude: [kube-system, 'legacy-*']\ngateway:\n  node_ports:\n    http2: 31000\n    https-kiali: 0\n",
    )
    .unwrap();
    assert_eq!(s.injection.mode, Mode::Enforce);
    assert_eq!(s.injection.exclude.len(), 2, "lists replace the default list");
    assert_eq!(s.gateway.node_ports["http2"], 31000);
    assert_eq!(s.gateway.node_ports["https-kiali"], 0, "0 unpins a port");
    assert_eq!(s.gateway.node_ports["tls"], 30158, "maps merge with the profile's");
}

#[test]
fn env_overrides_a_nested_key() {
    let s = Settings::from_yaml_and_env(
        Some("gateway:\n  node_ports:\n    http2: 31000\n"),
        &env(&[
            ("MESHKEEPER_GATEWAY__NODE_PORTS__HTTP2", "31381"),
            ("MESHKEEPER_LEADER_ELECTION__NAMESPACE", "mesh-ops"),
            ("MESHKEEPER_DRY_RUN", "true"),
            ("MESHKEEPER_CLIENT__WRITE_QPS", "2.5"),
            ("UNRELATED", "x"),
        ]),
    )
    .unwrap();
    assert_eq!(s.gateway.node_ports["http2"], 31381, "env wins over the file");
    assert_eq!(s.leader_election.namespace, "mesh-ops");
    assert!(s.dry_run);
    assert_eq!(s.client.write_qps, 2.5);
}

#[test]
fn env_overrides_a_list() {
    let s =
        Settings::from_yaml_and_env(None, &env(&[("MESHKEEPER_INJECTION__EXCLUDE", "kube-system,team-*")])).unwrap();
    let ex: Vec<_> = s.injection.exclude.iter().map(Glob::as_str).collect();
    assert_eq!(ex, ["kube-system", "team-*"]);
}

#[test]
fn env_string_that_looks_like_a_number_stays_a_string() {
    let s = Settings::from_yaml_and_env(None, &env(&[("MESHKEEPER_CONTROL_PLANE__EXPECTED_VERSION", "1.5")])).unwrap();
    assert_eq!(s.control_plane.expected_version, "1.5");
}

#[test]
fn env_values_reach_string_keys_as_written() {
    // The environment has no quoting: "1.10" is a version, not the float 1.1; "007" not 7.
    let s = Settings::from_yaml_and_env(
        None,
        &env(&[
            ("MESHKEEPER_REINJECTION__EXPECTED_PROXY_VERSION", "1.10"),
            ("MESHKEEPER_CONTROL_PLANE__EXPECTED_VERSION", "1.20"),
            ("MESHKEEPER_CONTROL_PLANE__INJECTOR_WEBHOOK", "0.00"),
            ("MESHKEEPER_LEADER_ELECTION__IDENTITY", "007"),
            ("MESHKEEPER_LEADER_ELECTION__LEASE_NAME", "1e3"),
            ("MESHKEEPER_PRECHECK__KUBERNETES_VERSIONS", "1.30"),
            ("MESHKEEPER_INJECTION__EXCLUDE", "1"),
        ]),
    )
    .unwrap();
    assert_eq!(s.reinjection.expected_proxy_version, "1.10");
    assert_eq!(s.control_plane.expected_version, "1.20");
    assert_eq!(s.control_plane.injector_webhook, "0.00");
    assert_eq!(s.leader_election.identity, "007");
    assert_eq!(s.leader_election.lease_name, "1e3");
    assert_eq!(s.precheck.kubernetes_versions.to_string(), "1.30");
    assert_eq!(s.injection.exclude.iter().map(Glob::as_str).collect::<Vec<_>>(), ["1"]);
    // Typed keys still take what they took: any case of true/false, integers as Rust reads them.
    let s = Settings::from_yaml_and_env(
        None,
        &env(&[
            ("MESHKEEPER_DRY_RUN", "TRUE"),
            ("MESHKEEPER_RESYNC_SECONDS", "060"),
            ("MESHKEEPER_CLIENT__WRITE_BURST", "+7"),
        ]),
    )
    .unwrap();
    assert!(s.dry_run);
    assert_eq!((s.resync_seconds, s.client.write_burst), (60, 7));
}

#[test]
fn bad_inputs_name_the_key_the_value_and_what_is_allowed() {
    let cases: &[(&str, &str)] = &[
        // Unquoted versions are YAML numbers: 1.10 would silently be 1.1 (every 1.10 proxy stale).
        (
            "reinjection:\n  expected_proxy_version: 1.10\n",
            "reinjection.expected_proxy_version: the number 1.1 (YAML reads an unquoted 1.10 as 1.1): write the version quoted, e.g. \"1.10\"",
        ),
        (
            "control_plane:\n  expected_version: 1.5\n",
            "control_plane.expected_version: the number 1.5 (YAML reads an unquoted 1.10 as 1.1): write the version quoted, e.g. \"1.10\"",
        ),
        (
            "precheck:\n  kubernetes_versions: 1.30\n",
            "precheck.kubernetes_versions: the number 1.3 (YAML reads an unquoted 1.10 as 1.1): write the version quoted, e.g. \"1.10\"",
        ),
        ("gateway:\n  node_ports:\n    http2: 80\n", "gateway.node_ports.http2: 80 is outside 30000-32767"),
        ("gateway:\n  node_ports:\n    http2: 31390\n", "gateway.node_ports.https: 31390 is also pinned for http2"),
        ("profile: ambient\n", "profile: \"ambient\" is not a profile (allowed: asm-onprem, istiod)"),
        ("injection:\n  mode: fix\n", "injection.mode: \"fix\" is not one of enforce, audit, off"),
        (
            "injection:\n  modes: audit\n",
            "injection.modes: unknown key \"modes\" (allowed: mode, label, include, exclude, selector, opt_out_label, overwrite_disabled, exclude_own_namespace)",
        ),
        (
            "colour: blue\n",
            "colour: unknown key \"colour\" (allowed: profile, dry_run, resync_seconds, http, client, leader_election, events, injection, reinjection, control_plane, gateway, repairs, precheck)",
        ),
        (
            "http:\n  listen: localhost\n",
            "http.listen: \"localhost\" is not HOST:PORT (e.g. 0.0.0.0:9090 or 127.0.0.1:9090)",
        ),
        (
            "injection:\n  label: istio-injection\n",
            "injection.label: \"istio-injection\" is not a label: expected key=value, e.g. istio-injection=enabled",
        ),
        (
            "injection:\n  label: istio-injection=true\n",
            "injection.label: \"istio-injection=true\" enables nothing: istio-injection must be \"enabled\"",
        ),
        (
            "injection:\n  label: sidecar=on\n",
            "injection.label: \"sidecar\" is not an injection label (allowed: istio-injection=enabled, istio.io/rev=<revision>)",
        ),
        (
            "injection:\n  label: istio.io/rev=\n",
            "injection.label: istio.io/rev needs a revision, e.g. istio.io/rev=asm-1234",
        ),
        (
            "injection:\n  exclude: ['Kube_System']\n",
            "injection.exclude[0]: \"Kube_System\" is not a namespace glob: 'K' is not allowed (use a-z, 0-9, '-', '*' and '?')",
        ),
        (
            "injection:\n  include: []\n",
            "injection.include: is empty, so no namespace is in scope (use [\"*\"] for all)",
        ),
        (
            "injection:\n  selector: 'env in prod'\n",
            "injection.selector: \"env in prod\": expected a parenthesised set of values, e.g. (a,b)",
        ),
        ("client:\n  write_qps: 0\n", "client.write_qps: 0 is outside (0, 1000]"),
        ("client:\n  write_burst: 0\n", "client.write_burst: 0 is outside 1-1000"),
        ("client:\n  write_burst: -3\n", "client.write_burst: invalid value: integer `-3`, expected u32"),
        ("resync_seconds: 1\n", "resync_seconds: 1 is outside 10-86400"),
        ("dry_run: maybe\n", "dry_run: invalid type: string \"maybe\", expected a boolean"),
        (
            "leader_election:\n  grace_seconds: 15\n",
            "leader_election.grace_seconds: 15 must be at least 1 and less than lease_duration_seconds (15)\n\
             leader_election.retry_period_seconds: 2 must be at least 1 and less than the renew deadline (lease_duration_seconds - grace_seconds = 0)",
        ),
        (
            "leader_election:\n  retry_period_seconds: 10\n",
            "leader_election.retry_period_seconds: 10 must be at least 1 and less than the renew deadline (lease_duration_seconds - grace_seconds = 10)",
        ),
        ("repairs:\n  contest_reverts: 0\n", "repairs.contest_reverts: 0 is outside 1-1000"),
        ("repairs:\n  contest_window_minutes: 2000\n", "repairs.contest_window_minutes: 2000 is outside 1-1440"),
        (
            "gateway:\n  contest_repairs: 3\n",
            "gateway.contest_repairs: unknown key \"contest_repairs\" (allowed: mode, namespace, service, repair, load_balancer_ip, load_balancer_ip_annotation, node_ports)",
        ),
        (
            "leader_election:\n  namespace: My_NS\n",
            "leader_election.namespace: \"My_NS\" is not a valid namespace name (DNS-1123 label)",
        ),
        ("gateway:\n  mode: integrated\n", "gateway.load_balancer_ip: is required when gateway.mode is integrated"),
        ("gateway:\n  load_balancer_ip: 10.0.0.300\n", "gateway.load_balancer_ip: invalid IP address syntax"),
        (
            "gateway:\n  node_ports:\n    Bad_Name: 31999\n",
            "gateway.node_ports.Bad_Name: \"Bad_Name\" is not a Service port name (DNS-1123 label: a-z, 0-9, '-')",
        ),
        (
            "control_plane:\n  components:\n    - name: istiod\n      min_ready: 1\n    - name: istiod\n      min_ready: 2\n",
            "control_plane.components[1].name: \"istiod\" is listed twice",
        ),
        (
            "control_plane:\n  components:\n    - name: istiod\n      replicas: 2\n",
            "control_plane.components[0].replicas: unknown key \"replicas\" (allowed: name, min_ready, versioned)",
        ),
        ("control_plane:\n  mtls_mode: on\n", "control_plane.mtls_mode: \"on\" is not one of permissive, strict, any"),
        (
            "control_plane:\n  cert_expiry_warning_days: 0\n",
            "control_plane.cert_expiry_warning_days: 0 is outside 1-3650",
        ),
        (
            "control_plane:\n  capacity:\n    min_memory_gb: -1\n",
            "control_plane.capacity.min_memory_gb: -1 must be a number >= 0",
        ),
        (
            "precheck:\n  kubernetes_versions: 1.13 to 1.15\n",
            "precheck.kubernetes_versions: \"1.13 to 1.15\" is not a range of Kubernetes versions (e.g. \"1.13-1.15\", \"1.24+\" or \"1.16\")",
        ),
        (
            "precheck:\n  kubernetes_versions: 1.16-1.13\n",
            "precheck.kubernetes_versions: \"1.16-1.13\": the first version is newer than the last",
        ),
        (
            "precheck:\n  kubernetes_min: '1.13'\n",
            "precheck.kubernetes_min: unknown key \"kubernetes_min\" (allowed: kubernetes_versions)",
        ),
        ("gateway: [1, 2]\n", "gateway: expected a mapping of keys, not [1,2]"),
        (
            "dry_run: true\nresync_seconds: 60\ndry_run: false\n",
            "--config: the key \"dry_run\" is given twice in one mapping at byte 42 line 3 column 10",
        ),
        (
            "gateway:\n  node_ports:\n    31380: http2\n    31380: https\n",
            "--config: the key 31380 is given twice in one mapping at byte 51 line 4 column 12",
        ),
        (
            "control_plane:\n  components: [istiod]\n",
            "control_plane.components[0]: invalid type: string \"istiod\", expected a mapping of keys",
        ),
        ("http: 9090\n", "http: expected a mapping of keys, not 9090"),
    ];
    for (yaml, want) in cases {
        let got = load(yaml).map(|_| ()).unwrap_err().to_string();
        assert_eq!(&got, want, "for input:\n{yaml}");
    }
}

#[test]
fn a_section_with_nothing_under_it_is_its_defaults() {
    let s = load("injection:\n  # mode: enforce\ngateway:\n").unwrap();
    assert_eq!(s, Settings::defaults(Profile::AsmOnprem));
    // A value (not a section) left empty is still an error.
    assert_eq!(load("dry_run:\n").unwrap_err().to_string(), "dry_run: invalid type: null, expected a boolean");
}

#[test]
fn components_default_min_ready_and_versioned() {
    let s = load(
        "control_plane:\n  components:\n    - name: istiod\n    - {name: promsd, versioned: false, min_ready: 2}\n",
    )
    .unwrap();
    assert_eq!(s.control_plane.components[0], Component { name: "istiod".into(), min_ready: 1, versioned: true });
    assert_eq!(s.control_plane.components[1], Component { name: "promsd".into(), min_ready: 2, versioned: false });
}

#[test]
fn all_semantic_errors_are_reported_at_once() {
    let err = load("resync_seconds: 1\nclient:\n  write_burst: 0\n").unwrap_err();
    assert_eq!(err.0.len(), 2);
    assert_eq!(err.0[0].key, "resync_seconds");
    assert_eq!(err.0[1].key, "client.write_burst");
}

#[test]
fn bad_env_values_name_the_key_and_the_variable() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("MESHKEEPER_GATEWAY__NODE_PORTS__HTTP2", "80")],
            "gateway.node_ports.http2 (from MESHKEEPER_GATEWAY__NODE_PORTS__HTTP2): 80 is outside 30000-32767",
        ),
        (
            &[("MESHKEEPER_HTTP__PORT", "80")],
            "http.port (from MESHKEEPER_HTTP__PORT): unknown key \"port\" (allowed: listen)",
        ),
        (
            &[("MESHKEEPER_DRY_RUN", "maybe")],
            "dry_run (from MESHKEEPER_DRY_RUN): invalid type: string \"maybe\", expected a boolean",
        ),
        // An unknown level: the variable under it introduced it.
        (
            &[("MESHKEEPER_GATEWAY__NODEPORTS__HTTP2", "31380")],
            "gateway.nodeports (from MESHKEEPER_GATEWAY__NODEPORTS__HTTP2): unknown key \"nodeports\" (allowed: mode, namespace, service, repair, load_balancer_ip, load_balancer_ip_annotation, node_ports)",
        ),
        // A list item: the list's variable.
        (
            &[("MESHKEEPER_INJECTION__EXCLUDE", "kube-system,Team_X")],
            "injection.exclude[1] (from MESHKEEPER_INJECTION__EXCLUDE): \"Team_X\" is not a namespace glob: 'T' is not allowed (use a-z, 0-9, '-', '*' and '?')",
        ),
        (
            &[("MESHKEEPER_GATEWAY", "off")],
            "gateway (from MESHKEEPER_GATEWAY): expected a mapping of keys, not \"off\"",
        ),
        // Only the variable that caused it is named.
        (
            &[("MESHKEEPER_DRY_RUN", "true"), ("MESHKEEPER_RESYNC_SECONDS", "1"), ("OTHER_RESYNC_SECONDS", "1")],
            "resync_seconds (from MESHKEEPER_RESYNC_SECONDS): 1 is outside 10-86400",
        ),
    ];
    for (vars, want) in cases {
        let err = Settings::from_yaml_and_env(None, &env(vars)).unwrap_err();
        assert_eq!(&err.to_string(), want, "for {vars:?}");
    }
    // A key the file got wrong names no variable.
    let err =
        Settings::from_yaml_and_env(Some("resync_seconds: 1\n"), &env(&[("MESHKEEPER_DRY_RUN", "true")])).unwrap_err();
    assert_eq!(err.to_string(), "resync_seconds: 1 is outside 10-86400");
}

#[test]
fn malformed_yaml_is_an_error_not_a_panic() {
    for yaml in ["a: [unclosed\n", "\t- x\n  y: :\n", "- just\n- a list\n", "42\n"] {
        assert!(load(yaml).is_err(), "{yaml:?} should be rejected");
    }
}

#[test]
fn missing_config_file_names_the_path() {
    let err = Settings::load_from(Some(Path::new("/nonexistent/meshkeeper.yaml")), &[]).unwrap_err();
    assert!(err.to_string().starts_with("--config: cannot read /nonexistent/meshkeeper.yaml:"), "{err}");
}

#[test]
fn the_shipped_example_config_is_valid() {
    let text = include_str!("../../../config/example.yaml");
    let s = load(text).unwrap();
    assert_eq!(s.profile, Profile::AsmOnprem);
}

#[test]
fn the_agents_own_namespace_is_excluded_by_default() {
    let s = Settings::from_yaml_and_env(Some("leader_election:\n  namespace: platform-tools\n"), &[]).unwrap();
    assert_eq!(s.injection.own_namespace.as_deref(), Some("platform-tools"));
    assert!(!s.injection.exclude.iter().any(|g| g.as_str() == "platform-tools"), "the exclude list is as given");
    let ns = crate::cache::NamespaceInfo::test("platform-tools");
    assert!(!crate::checks::injection::in_scope(&ns, &s.injection), "never label meshkeeper's own namespace");
    let s = Settings::from_yaml_and_env(
        Some("leader_election:\n  namespace: platform-tools\ninjection:\n  exclude_own_namespace: false\n"),
        &[],
    )
    .unwrap();
    assert!(crate::checks::injection::in_scope(&crate::cache::NamespaceInfo::test("platform-tools"), &s.injection));
    // The environment override the chart sets works the same way.
    let env = [("MESHKEEPER_LEADER_ELECTION__NAMESPACE".to_string(), "mk".to_string())];
    let s = Settings::from_yaml_and_env(None, &env).unwrap();
    assert!(!crate::checks::injection::in_scope(&crate::cache::NamespaceInfo::test("mk"), &s.injection));
}

#[test]
fn kubernetes_versions_parse_as_a_range() {
    let r = |s: &str| s.parse::<VersionRange>();
    type Versions = &'static [(u32, u32)];
    // (text, canonical form, versions in, versions out)
    let cases: &[(&str, &str, Versions, Versions)] = &[
        ("1.13-1.15", "1.13-1.15", &[(1, 13), (1, 14), (1, 15)], &[(1, 12), (1, 16), (1, 36), (2, 14)]),
        (" v1.13 - v1.15 ", "1.13-1.15", &[(1, 13), (1, 15)], &[(1, 16)]),
        ("1.24+", "1.24+", &[(1, 24), (1, 36), (2, 0)], &[(1, 23), (0, 99)]),
        ("1.16", "1.16", &[(1, 16)], &[(1, 15), (1, 17)]),
        ("1.16-1.16", "1.16", &[(1, 16)], &[(1, 17)]),
    ];
    for (text, canonical, inside, outside) in cases {
        let range = r(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(range.to_string(), *canonical);
        assert!(inside.iter().all(|v| range.contains(*v)), "{text:?} holds {inside:?}");
        assert!(outside.iter().all(|v| !range.contains(*v)), "{text:?} leaves out {outside:?}");
    }
    for bad in ["", "1", "1.", ".13", "1.13-", "-1.15", "1.x", "1.13-1.15-1.16", "1.13+1", "one.two", "1.13++"] {
        assert!(r(bad).is_err(), "{bad:?} should be rejected");
    }
}

#[test]
fn kubernetes_versions_default_by_profile_and_come_from_yaml_or_the_environment() {
    assert_eq!(Settings::defaults(Profile::AsmOnprem).precheck.kubernetes_versions.to_string(), "1.13-1.15");
    let istiod = Settings::defaults(Profile::Istiod).precheck.kubernetes_versions;
    assert_eq!(istiod.to_string(), format!("1.{}+", crate::checks::api::MIN_MINOR), "meshkeeper's own minimum");
    // Quoted, a version stays as written; unquoted, YAML would read 1.30 as 1.3: refused.
    let s = load("precheck:\n  kubernetes_versions: \"1.30\"\n").unwrap();
    assert_eq!(s.precheck.kubernetes_versions.to_string(), "1.30");
    assert!(load("precheck:\n  kubernetes_versions: 1.30\n").is_err());
    let s =
        Settings::from_yaml_and_env(None, &env(&[("MESHKEEPER_PRECHECK__KUBERNETES_VERSIONS", "1.24-1.36")])).unwrap();
    assert!(s.precheck.kubernetes_versions.contains((1, 36)));
}
