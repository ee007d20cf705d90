//! Profiles: the defaults of each supported install layout. Nothing about a layout is
//! hard-coded outside this file.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::*;

/// A supported install layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Profile {
    /// ASM 1.4 on GKE on VMware (`istioctl manifest apply --set profile=asm-onprem`): split control
    /// plane in istio-system; GKE's own Istio pieces in gke-system and kube-system are not the mesh.
    #[serde(rename = "asm-onprem")]
    AsmOnprem,
    /// Istio/ASM 1.6+: one istiod, optionally revision labels (`istio.io/rev=<rev>`).
    #[serde(rename = "istiod")]
    Istiod,
}

impl Profile {
    pub const ALLOWED: &'static str = "allowed: asm-onprem, istiod";

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::AsmOnprem => "asm-onprem",
            Profile::Istiod => "istiod",
        }
    }
}

impl FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "asm-onprem" => Ok(Profile::AsmOnprem),
            "istiod" => Ok(Profile::Istiod),
            other => Err(format!("{other:?} is not a profile ({})", Profile::ALLOWED)),
        }
    }
}

/// The install guide's manual-LB nodePorts for istio-ingressgateway (port name -> nodePort).
pub const ASM_ONPREM_NODE_PORTS: &[(&str, u16)] = &[
    ("status-port", 30391),
    ("http2", 31380),
    ("https", 31390),
    ("tcp", 31400),
    ("https-kiali", 31073),
    ("https-prometheus", 30253),
    ("https-grafana", 30050),
    ("https-tracing", 31204),
    ("tls", 30158),
];

/// Namespaces that are never in the injection policy's scope by default.
const SYSTEM_NAMESPACES: &[&str] =
    &["kube-system", "kube-public", "kube-node-lease", "istio-system", "gke-system", "gke-connect"];

fn globs(names: &[&str]) -> Vec<Glob> {
    names.iter().filter_map(|n| Glob::try_from(n.to_string()).ok()).collect()
}

fn components(names: &[&str]) -> Vec<Component> {
    // promsd is a Prometheus: its tag is not the mesh version.
    names.iter().map(|n| Component { name: n.to_string(), min_ready: 1, versioned: *n != "promsd" }).collect()
}

/// The Kubernetes versions Istio 1.4 (ASM 1.4.10-asm.18) was released for. Its CRDs are
/// `apiextensions.k8s.io/v1beta1`, which Kubernetes 1.22 no longer serves.
const ASM_ONPREM_KUBERNETES: VersionRange = VersionRange { min: (1, 13), max: Some((1, 15)) };
/// The istiod profile names no Istio version: meshkeeper's own minimum, no upper bound (set
/// `precheck.kubernetes_versions` to your release's range).
const ISTIOD_KUBERNETES: VersionRange = VersionRange { min: (1, 24), max: None };

pub(super) fn defaults(profile: Profile) -> Settings {
    let kubernetes_versions = match profile {
        Profile::AsmOnprem => ASM_ONPREM_KUBERNETES,
        Profile::Istiod => ISTIOD_KUBERNETES,
    };
    let (control_components, node_ports, gateway_mode, ignored): (
        Vec<Component>,
        BTreeMap<String, u16>,
        _,
        Vec<String>,
    ) = match profile {
        Profile::AsmOnprem => (
            components(&[
                "istio-citadel",
                "istio-galley",
                "istio-ingressgateway",
                "istio-pilot",
                "istio-sidecar-injector",
                "promsd",
            ]),
            ASM_ONPREM_NODE_PORTS.iter().map(|(n, p)| (n.to_string(), *p)).collect(),
            GatewayMode::Manual,
            vec!["gke-system".into(), "kube-system".into()],
        ),
        Profile::Istiod => (components(&["istiod", "istio-ingressgateway"]), BTreeMap::new(), GatewayMode::Off, vec![]),
    };
    Settings {
        profile,
        dry_run: false,
        resync_seconds: 300,
        http: HttpSettings { listen: ListenAddr(std::net::SocketAddr::from(([0, 0, 0, 0], 9090))) },
        client: ClientSettings { write_qps: 5.0, write_burst: 10, timeout_seconds: 30 },
        leader_election: LeaderElectionSettings {
            enabled: true,
            namespace: "meshkeeper".into(),
            lease_name: "meshkeeper".into(),
            identity: String::new(),
            lease_duration_seconds: 15,
            grace_seconds: 5,
            retry_period_seconds: 2,
        },
        events: EventSettings { enabled: true },
        injection: InjectionSettings {
            mode: Mode::Audit,
            label: LabelPair::new("istio-injection", "enabled"),
            include: globs(&["*"]),
            exclude: globs(SYSTEM_NAMESPACES),
            selector: LabelSelector::default(),
            opt_out_label: LabelPair::new("meshkeeper.io/injection", "disabled"),
            overwrite_disabled: false,
            exclude_own_namespace: true,
            own_namespace: None,
        },
        reinjection: ReinjectionSettings {
            mode: Mode::Audit,
            expected_proxy_version: String::new(),
            injector_configmap: "istio-sidecar-injector".into(),
            max_restarts_per_hour: 10,
            max_rollouts_in_progress: 2,
            cooldown_minutes: 60,
            progress_deadline_minutes: 15,
            maintenance_windows: Vec::new(),
            evict_on_delete: false,
            opt_out_annotation: LabelPair::new("meshkeeper.io/reinject", "false"),
            namespace_opt_out_label: LabelPair::new("meshkeeper.io/reinject", "false"),
            per_namespace_metrics: false,
        },
        control_plane: ControlPlaneSettings {
            enabled: true,
            namespace: "istio-system".into(),
            components: control_components,
            expected_version: String::new(),
            injector_webhook: "istio-sidecar-injector".into(),
            ignored_namespaces: ignored,
            cert_expiry_warning_days: 30,
            crashloop_window_minutes: 10,
            restart_threshold: 3,
            mtls_mode: MtlsMode::Any,
            capacity: CapacitySettings { min_nodes: 4, min_cpu_cores: 4.0, min_memory_gb: 15.0 },
        },
        gateway: GatewaySettings {
            mode: gateway_mode,
            namespace: "istio-system".into(),
            service: "istio-ingressgateway".into(),
            repair: false,
            load_balancer_ip: None,
            load_balancer_ip_annotation: String::new(),
            node_ports,
        },
        repairs: RepairSettings { contest_reverts: 3, contest_window_minutes: 10 },
        precheck: PrecheckSettings { kubernetes_versions },
    }
}
