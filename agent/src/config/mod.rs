//! The agent's settings: one typed, validated struct, read from a YAML file with
//! `MESHKEEPER_...` environment overrides on top of the chosen profile's defaults.
//!
//! ```text
//!  profile defaults ──┐
//!  --config FILE ─────┼─► merged (config crate) ─► type coercion ─► serde (unknown keys are errors)
//!  MESHKEEPER_* env ──┘                                                   │
//!                                                          validate() ◄───┘  every error names its key
//! ```
//!
//! Environment keys use `__` between levels: `MESHKEEPER_GATEWAY__NODE_PORTS__HTTP2=31380`;
//! list keys take comma-separated values: `MESHKEEPER_INJECTION__EXCLUDE=kube-system,team-*`.

mod profile;
mod types;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use profile::Profile;
pub use types::{
    Glob, LabelPair, LabelSelector, MaintenanceWindow, TimeOfDay, VersionRange, Weekday, is_dns_label,
    validate_label_key, validate_label_value,
};

/// The environment variable prefix for overrides.
pub const ENV_PREFIX: &str = "MESHKEEPER";

/// Keys whose environment value is a comma-separated list.
const LIST_KEYS: &[&str] = &["injection.include", "injection.exclude"];

/// Every setting of the agent. See README.md "Configuration" for each key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Which install layout the defaults follow.
    pub profile: Profile,
    /// Compute and report actions but send every write with `dryRun=All`.
    pub dry_run: bool,
    /// Period of the full re-evaluation that catches anything an event missed.
    pub resync_seconds: u64,
    pub http: HttpSettings,
    pub client: ClientSettings,
    pub leader_election: LeaderElectionSettings,
    pub events: EventSettings,
    pub injection: InjectionSettings,
    pub reinjection: ReinjectionSettings,
    pub control_plane: ControlPlaneSettings,
    pub gateway: GatewaySettings,
    pub repairs: RepairSettings,
    pub precheck: PrecheckSettings,
}

/// What `meshkeeper check --pre` holds the cluster to, besides the install guide's size
/// (`control_plane.capacity`), namespaces and gateway mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrecheckSettings {
    /// The Kubernetes versions the mesh to be installed supports.
    pub kubernetes_versions: VersionRange,
}

/// The contest guard every repair passes: a field meshkeeper set that another field manager
/// changes back `contest_reverts` times within `contest_window_minutes` is left alone and
/// reported (`RepairContested`), so meshkeeper never fights a GitOps tool or an operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepairSettings {
    pub contest_reverts: u32,
    pub contest_window_minutes: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Address of the one HTTP port: /metrics, /healthz, /readyz, /status.
    pub listen: ListenAddr,
}

/// A `HOST:PORT` socket address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ListenAddr(pub SocketAddr);

impl TryFrom<String> for ListenAddr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse().map(ListenAddr).map_err(|_| format!("{s:?} is not HOST:PORT (e.g. 0.0.0.0:9090 or 127.0.0.1:9090)"))
    }
}

impl From<ListenAddr> for String {
    fn from(a: ListenAddr) -> String {
        a.0.to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSettings {
    /// Sustained rate of writes to the API server (token bucket refill per second).
    pub write_qps: f64,
    /// Writes allowed in a burst (token bucket capacity).
    pub write_burst: u32,
    /// Timeout of one API request.
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaderElectionSettings {
    /// With `false` this replica always acts (run one replica only).
    pub enabled: bool,
    /// Namespace of the Lease; the chart sets it to the release namespace.
    pub namespace: String,
    pub lease_name: String,
    /// This replica's identity in the Lease; empty means the host name.
    pub identity: String,
    /// How long a lease is valid after its last renewal: another replica takes over a holder
    /// that has not renewed for this long.
    pub lease_duration_seconds: u64,
    /// Safety margin: the holder stops acting `lease_duration_seconds - grace_seconds` after
    /// its last successful renewal (the renew deadline), well before anyone may take over.
    pub grace_seconds: u64,
    /// How often every replica tries to acquire or renew the Lease.
    pub retry_period_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSettings {
    /// Publish Kubernetes Events for new findings and for every action.
    pub enabled: bool,
}

/// What a capability may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Report findings and repair them.
    Enforce,
    /// Report findings, never write.
    Audit,
    /// Do not evaluate at all.
    Off,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
            Mode::Off => "off",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectionSettings {
    pub mode: Mode,
    /// The label every in-scope namespace must carry: `istio-injection=enabled` or `istio.io/rev=<rev>`.
    pub label: LabelPair,
    /// Namespace name globs in scope (a namespace must match one).
    pub include: Vec<Glob>,
    /// Namespace name globs never in scope (wins over include).
    pub exclude: Vec<Glob>,
    /// Optional label selector a namespace must also match.
    pub selector: LabelSelector,
    /// A namespace carrying this label is opted out.
    pub opt_out_label: LabelPair,
    /// Overwrite `istio-injection=disabled` (a deliberate opt-out in Istio) instead of only reporting it.
    pub overwrite_disabled: bool,
    /// Keep the agent's own namespace (`leader_election.namespace`, which the chart sets to the
    /// release namespace) out of scope: labelling it would give meshkeeper a sidecar on its
    /// next restart, and its Lease calls could fail until the proxy is up.
    pub exclude_own_namespace: bool,
    /// Derived (not a key): the namespace kept out of scope by `exclude_own_namespace`.
    #[serde(skip)]
    pub own_namespace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReinjectionSettings {
    /// enforce: restart workloads whose pods lack the sidecar or run a stale proxy; audit: report.
    pub mode: Mode,
    /// The proxy every injected pod should run: an image (`hub/proxyv2:tag`) or a tag; empty:
    /// read from the injector's ConfigMap (`{global.hub}/{global.proxy.image}:{global.tag}`).
    #[serde(deserialize_with = "quoted")]
    pub expected_proxy_version: String,
    /// The injector's ConfigMap in the control-plane namespace (with `istio.io/rev=R` policies,
    /// `<name>-R` is read).
    pub injector_configmap: String,
    /// Restarts allowed in any hour, cluster-wide (counting every recent restart, whoever made it).
    pub max_restarts_per_hour: u32,
    /// meshkeeper's rollouts allowed in progress at once (at most one per namespace).
    pub max_rollouts_in_progress: u32,
    /// A workload restarted less than this long ago (by anyone) is not restarted again.
    pub cooldown_minutes: u32,
    /// A rollout not complete after this long no longer counts as in progress (it is stuck).
    pub progress_deadline_minutes: u32,
    /// When restarts may start (UTC); empty: any time.
    pub maintenance_windows: Vec<MaintenanceWindow>,
    /// StatefulSets and DaemonSets with `updateStrategy: OnDelete` do not roll on a restart:
    /// evict their pods one at a time (honouring PodDisruptionBudgets) instead of only reporting.
    pub evict_on_delete: bool,
    /// A workload carrying this annotation is never restarted.
    pub opt_out_annotation: LabelPair,
    /// A namespace carrying this label is never restarted in.
    pub namespace_opt_out_label: LabelPair,
    /// Export pod counts per namespace (`meshkeeper_pods_by_namespace{target_namespace, state}`).
    pub per_namespace_metrics: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlPlaneSettings {
    /// Evaluate the control-plane health check (report only; never writes).
    pub enabled: bool,
    /// Namespace of the mesh's control plane.
    pub namespace: String,
    /// Deployments that make up the control plane.
    pub components: Vec<Component>,
    /// The version every component must run (image tag), e.g. `1.4.10-asm.18`; empty: only consistency.
    #[serde(deserialize_with = "quoted")]
    pub expected_version: String,
    /// Name of the injector's MutatingWebhookConfiguration.
    pub injector_webhook: String,
    /// Namespaces holding Istio pieces that are not the mesh (GKE's own) and never count as a second mesh.
    pub ignored_namespaces: Vec<String>,
    /// Warn when the injector's CA certificate expires within this many days.
    pub cert_expiry_warning_days: u32,
    /// A container that restarted at least `restart_threshold` times, the last within this
    /// window, counts as crash-looping (as does one waiting in CrashLoopBackOff/ImagePullBackOff).
    pub crashloop_window_minutes: u32,
    pub restart_threshold: u32,
    /// The mesh-wide mTLS mode required: permissive, strict, or any.
    pub mtls_mode: MtlsMode,
    pub capacity: CapacitySettings,
}

/// The mesh-wide mTLS mode the policy (MeshPolicy or PeerAuthentication `default`) must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MtlsMode {
    Permissive,
    Strict,
    Any,
}

/// The install guide's minimum cluster size (allocatable totals).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacitySettings {
    pub min_nodes: u32,
    pub min_cpu_cores: f64,
    pub min_memory_gb: f64,
}

/// One control-plane Deployment and how many ready replicas it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    pub name: String,
    #[serde(default = "one")]
    pub min_ready: u32,
    /// Whether its image tag is the mesh version (false for e.g. promsd, a Prometheus).
    #[serde(default = "yes")]
    pub versioned: bool,
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

/// Which Service type the gateway pin expects and what it pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GatewayMode {
    /// LoadBalancer Service with a pinned IP.
    Integrated,
    /// NodePort Service with pinned nodePorts.
    Manual,
    Off,
}

impl GatewayMode {
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayMode::Integrated => "integrated",
            GatewayMode::Manual => "manual",
            GatewayMode::Off => "off",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    pub mode: GatewayMode,
    pub namespace: String,
    pub service: String,
    /// Patch drift back (true) or only report it (false).
    pub repair: bool,
    /// The pinned IP (integrated mode).
    pub load_balancer_ip: Option<IpAddr>,
    /// Where the IP lives: empty = `spec.loadBalancerIP`, else this annotation (e.g. `metallb.universe.tf/loadBalancerIPs`).
    pub load_balancer_ip_annotation: String,
    /// Pinned nodePort per Service port name; 0 leaves that port unpinned.
    pub node_ports: BTreeMap<String, u16>,
}

// === impl Settings ===

impl Settings {
    /// The defaults of a profile (what an empty config file gives).
    pub fn defaults(profile: Profile) -> Settings {
        let mut s = profile::defaults(profile);
        s.derive();
        s
    }

    /// Reads `file` (if any) and the process environment, then validates.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigErrors> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Settings::load_from(file, &env)
    }

    /// As [`Settings::load`], with the environment given explicitly (for tests).
    pub fn load_from(file: Option<&Path>, env: &[(String, String)]) -> Result<Settings, ConfigErrors> {
        let text = match file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| ConfigErrors::one("--config", format!("cannot read {}: {e}", path.display())))?,
            ),
            None => None,
        };
        Settings::from_yaml_and_env(text.as_deref(), env)
    }

    /// Parses YAML text (None = no file) with environment overrides, then validates.
    pub fn from_yaml_and_env(yaml: Option<&str>, env: &[(String, String)]) -> Result<Settings, ConfigErrors> {
        Settings::parse(yaml, env).map_err(|e| e.naming_variables(env))
    }

    fn parse(yaml: Option<&str>, env: &[(String, String)]) -> Result<Settings, ConfigErrors> {
        let user = merged_user_config(yaml, env)?;
        let profile = match user.get("profile") {
            None | Some(Value::Null) => Profile::AsmOnprem,
            Some(Value::String(s)) => s.parse().map_err(|e| ConfigErrors::one("profile", e))?,
            Some(other) => {
                return Err(ConfigErrors::one("profile", format!("{other} is not a string ({})", Profile::ALLOWED)));
            }
        };
        let defaults = serde_json::to_value(Settings::defaults(profile))
            .map_err(|e| ConfigErrors::one("(defaults)", e.to_string()))?;
        let mut merged = defaults.clone();
        deep_merge(&mut merged, &user, "")?;
        coerce_like(&mut merged, &defaults);
        let settings: Settings = serde_path_to_error::deserialize(merged).map_err(|e| {
            let path = e.path().to_string();
            ConfigErrors::one(&path, humanize_serde(e.inner().to_string()))
        })?;
        settings.validate()?;
        let mut settings = settings;
        settings.derive();
        Ok(settings)
    }

    /// Settings that follow from others: the agent's own namespace is kept out of the
    /// injection policy's scope unless `injection.exclude_own_namespace` is false.
    pub fn derive(&mut self) {
        self.injection.own_namespace =
            self.injection.exclude_own_namespace.then(|| self.leader_election.namespace.clone());
    }

    /// Every semantic rule, all reported at once.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut errs = ConfigErrors::default();
        let Settings {
            profile: _,
            dry_run: _,
            resync_seconds,
            http: HttpSettings { listen: _ },
            client,
            leader_election,
            events: EventSettings { enabled: _ },
            injection,
            reinjection,
            control_plane,
            gateway,
            repairs: RepairSettings { contest_reverts, contest_window_minutes },
            // Parsed and checked by its type.
            precheck: PrecheckSettings { kubernetes_versions: _ },
        } = self;

        if !(10..=86_400).contains(resync_seconds) {
            errs.push("resync_seconds", format!("{resync_seconds} is outside 10-86400"));
        }

        let ClientSettings { write_qps, write_burst, timeout_seconds } = client;
        if !(write_qps.is_finite() && *write_qps > 0.0 && *write_qps <= 1000.0) {
            errs.push("client.write_qps", format!("{write_qps} is outside (0, 1000]"));
        }
        if !(1..=1000).contains(write_burst) {
            errs.push("client.write_burst", format!("{write_burst} is outside 1-1000"));
        }
        if !(1..=600).contains(timeout_seconds) {
            errs.push("client.timeout_seconds", format!("{timeout_seconds} is outside 1-600"));
        }

        let LeaderElectionSettings {
            enabled: _,
            namespace,
            lease_name,
            identity,
            lease_duration_seconds,
            grace_seconds,
            retry_period_seconds,
        } = leader_election;
        if !is_dns_label(namespace) {
            errs.push(
                "leader_election.namespace",
                format!("{namespace:?} is not a valid namespace name (DNS-1123 label)"),
            );
        }
        if !is_dns_label(lease_name) {
            errs.push(
                "leader_election.lease_name",
                format!("{lease_name:?} is not a valid object name (DNS-1123 label)"),
            );
        }
        if identity.len() > 128 {
            errs.push("leader_election.identity", format!("{} characters is longer than 128", identity.len()));
        }
        if !(2..=300).contains(lease_duration_seconds) {
            errs.push("leader_election.lease_duration_seconds", format!("{lease_duration_seconds} is outside 2-300"));
        }
        if *grace_seconds == 0 || grace_seconds >= lease_duration_seconds {
            errs.push(
                "leader_election.grace_seconds",
                format!(
                    "{grace_seconds} must be at least 1 and less than lease_duration_seconds ({lease_duration_seconds})"
                ),
            );
        }
        let renew_deadline = lease_duration_seconds.saturating_sub(*grace_seconds);
        if *retry_period_seconds == 0 || *retry_period_seconds >= renew_deadline.max(1) {
            errs.push(
                "leader_election.retry_period_seconds",
                format!(
                    "{retry_period_seconds} must be at least 1 and less than the renew deadline (lease_duration_seconds - grace_seconds = {renew_deadline})"
                ),
            );
        }

        let InjectionSettings {
            mode: _,
            label,
            include,
            exclude: _,
            selector: _,
            opt_out_label,
            overwrite_disabled: _,
            exclude_own_namespace: _,
            own_namespace: _,
        } = injection;
        match label.key.as_str() {
            "istio-injection" if label.value != "enabled" => errs.push(
                "injection.label",
                format!("{label:?} enables nothing: istio-injection must be \"enabled\"", label = label.to_string()),
            ),
            "istio-injection" => {}
            "istio.io/rev" if label.value.is_empty() => {
                errs.push("injection.label", "istio.io/rev needs a revision, e.g. istio.io/rev=asm-1234".to_string())
            }
            "istio.io/rev" => {}
            other => errs.push(
                "injection.label",
                format!(
                    "{other:?} is not an injection label (allowed: istio-injection=enabled, istio.io/rev=<revision>)"
                ),
            ),
        }
        if include.is_empty() {
            errs.push("injection.include", "is empty, so no namespace is in scope (use [\"*\"] for all)".to_string());
        }
        if opt_out_label.key == label.key {
            errs.push("injection.opt_out_label", format!("uses the enforced label's key {:?}", label.key));
        }

        let ReinjectionSettings {
            mode: _,
            expected_proxy_version,
            injector_configmap,
            max_restarts_per_hour,
            max_rollouts_in_progress,
            cooldown_minutes,
            progress_deadline_minutes,
            maintenance_windows,
            evict_on_delete: _,
            opt_out_annotation: _,
            namespace_opt_out_label: _,
            per_namespace_metrics: _,
        } = reinjection;
        if expected_proxy_version.chars().any(char::is_whitespace) {
            errs.push("reinjection.expected_proxy_version", format!("{expected_proxy_version:?} contains white space"));
        }
        if injector_configmap.is_empty() || !injector_configmap.split('.').all(is_dns_label) {
            errs.push(
                "reinjection.injector_configmap",
                format!("{injector_configmap:?} is not a valid ConfigMap name"),
            );
        }
        if !(1..=10_000).contains(max_restarts_per_hour) {
            errs.push("reinjection.max_restarts_per_hour", format!("{max_restarts_per_hour} is outside 1-10000"));
        }
        if !(1..=1000).contains(max_rollouts_in_progress) {
            errs.push("reinjection.max_rollouts_in_progress", format!("{max_rollouts_in_progress} is outside 1-1000"));
        }
        if *cooldown_minutes > 10_080 {
            errs.push("reinjection.cooldown_minutes", format!("{cooldown_minutes} is outside 0-10080 (a week)"));
        }
        if !(1..=1440).contains(progress_deadline_minutes) {
            errs.push(
                "reinjection.progress_deadline_minutes",
                format!("{progress_deadline_minutes} is outside 1-1440"),
            );
        }
        for (i, w) in maintenance_windows.iter().enumerate() {
            if w.start == w.end {
                errs.push(
                    &format!("reinjection.maintenance_windows[{i}]"),
                    format!("start and end are both {}: use 00:00 to 24:00 for a whole day", String::from(w.start)),
                );
            }
        }

        let ControlPlaneSettings {
            enabled: _,
            namespace,
            components,
            expected_version,
            injector_webhook,
            ignored_namespaces,
            cert_expiry_warning_days,
            crashloop_window_minutes,
            restart_threshold,
            mtls_mode: _,
            capacity: CapacitySettings { min_nodes, min_cpu_cores, min_memory_gb },
        } = control_plane;
        if !(1..=3650).contains(cert_expiry_warning_days) {
            errs.push(
                "control_plane.cert_expiry_warning_days",
                format!("{cert_expiry_warning_days} is outside 1-3650"),
            );
        }
        if !(1..=1440).contains(crashloop_window_minutes) {
            errs.push(
                "control_plane.crashloop_window_minutes",
                format!("{crashloop_window_minutes} is outside 1-1440"),
            );
        }
        if !(1..=1000).contains(restart_threshold) {
            errs.push("control_plane.restart_threshold", format!("{restart_threshold} is outside 1-1000"));
        }
        if *min_nodes > 100_000 {
            errs.push("control_plane.capacity.min_nodes", format!("{min_nodes} is more than 100000"));
        }
        for (key, v) in [("min_cpu_cores", min_cpu_cores), ("min_memory_gb", min_memory_gb)] {
            if !(v.is_finite() && *v >= 0.0) {
                errs.push(&format!("control_plane.capacity.{key}"), format!("{v} must be a number >= 0"));
            }
        }
        if !is_dns_label(namespace) {
            errs.push(
                "control_plane.namespace",
                format!("{namespace:?} is not a valid namespace name (DNS-1123 label)"),
            );
        }
        if components.is_empty() {
            errs.push("control_plane.components", "is empty: list at least one control-plane Deployment".to_string());
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, c) in components.iter().enumerate() {
            if !is_dns_label(&c.name) {
                errs.push(
                    &format!("control_plane.components[{i}].name"),
                    format!("{:?} is not a valid Deployment name", c.name),
                );
            } else if !seen.insert(c.name.as_str()) {
                errs.push(&format!("control_plane.components[{i}].name"), format!("{:?} is listed twice", c.name));
            }
        }
        if expected_version.chars().any(char::is_whitespace) {
            errs.push("control_plane.expected_version", format!("{expected_version:?} contains white space"));
        }
        if injector_webhook.is_empty() || injector_webhook.len() > 253 {
            errs.push("control_plane.injector_webhook", format!("{injector_webhook:?} is not a valid object name"));
        }
        for (i, ns) in ignored_namespaces.iter().enumerate() {
            if !is_dns_label(ns) {
                errs.push(
                    &format!("control_plane.ignored_namespaces[{i}]"),
                    format!("{ns:?} is not a valid namespace name"),
                );
            } else if ns == namespace {
                errs.push(
                    &format!("control_plane.ignored_namespaces[{i}]"),
                    format!("{ns:?} is the control-plane namespace itself"),
                );
            }
        }

        let GatewaySettings {
            mode,
            namespace,
            service,
            repair: _,
            load_balancer_ip,
            load_balancer_ip_annotation,
            node_ports,
        } = gateway;
        if !(1..=1000).contains(contest_reverts) {
            errs.push("repairs.contest_reverts", format!("{contest_reverts} is outside 1-1000"));
        }
        if !(1..=1440).contains(contest_window_minutes) {
            errs.push("repairs.contest_window_minutes", format!("{contest_window_minutes} is outside 1-1440"));
        }
        if !is_dns_label(namespace) {
            errs.push("gateway.namespace", format!("{namespace:?} is not a valid namespace name (DNS-1123 label)"));
        }
        if !is_dns_label(service) {
            errs.push("gateway.service", format!("{service:?} is not a valid Service name (DNS-1123 label)"));
        }
        if *mode == GatewayMode::Integrated && load_balancer_ip.is_none() {
            errs.push("gateway.load_balancer_ip", "is required when gateway.mode is integrated".to_string());
        }
        if !load_balancer_ip_annotation.is_empty()
            && let Err(e) = validate_label_key(load_balancer_ip_annotation)
        {
            errs.push("gateway.load_balancer_ip_annotation", format!("annotation key {e}"));
        }
        let mut by_port: BTreeMap<u16, &str> = BTreeMap::new();
        for (name, port) in node_ports {
            let key = format!("gateway.node_ports.{name}");
            if !is_port_name(name) {
                errs.push(&key, format!("{name:?} is not a Service port name (DNS-1123 label: a-z, 0-9, '-')"));
            }
            if *port == 0 {
                continue;
            }
            if !(30000..=32767).contains(port) {
                errs.push(&key, format!("{port} is outside 30000-32767"));
            } else if let Some(other) = by_port.insert(*port, name) {
                errs.push(&key, format!("{port} is also pinned for {other}"));
            }
        }
        errs.into_result()
    }

    /// The label values of `meshkeeper_config_info` (see `metrics::CONFIG_INFO_LABELS`).
    pub fn info_labels(&self) -> [&'static str; 7] {
        let b = |x: bool| if x { "true" } else { "false" };
        [
            self.profile.as_str(),
            b(self.dry_run),
            self.injection.mode.as_str(),
            self.reinjection.mode.as_str(),
            self.gateway.mode.as_str(),
            b(self.gateway.mode != GatewayMode::Off && self.gateway.repair),
            b(self.control_plane.enabled),
        ]
    }

    /// A short, secret-free summary for `/status` and the start-up log.
    pub fn summary(&self) -> Value {
        serde_json::json!({
            "profile": self.profile.as_str(),
            "dry_run": self.dry_run,
            "injection": { "mode": self.injection.mode, "label": self.injection.label.to_string() },
            "reinjection": { "mode": self.reinjection.mode, "max_restarts_per_hour": self.reinjection.max_restarts_per_hour, "max_rollouts_in_progress": self.reinjection.max_rollouts_in_progress, "maintenance_windows": self.reinjection.maintenance_windows.len() },
            "control_plane": { "namespace": self.control_plane.namespace, "components": self.control_plane.components.len() },
            "gateway": { "mode": self.gateway.mode, "repair": self.gateway.repair, "service": format!("{}/{}", self.gateway.namespace, self.gateway.service) },
            "leader_election": { "enabled": self.leader_election.enabled, "lease": format!("{}/{}", self.leader_election.namespace, self.leader_election.lease_name) },
        })
    }
}

/// A Service port name is a DNS-1123 label (the 15-character IANA limit applies to container ports only).
fn is_port_name(s: &str) -> bool {
    is_dns_label(s)
}

/// Builds the user's layer (file, then environment) as JSON.
fn merged_user_config(yaml: Option<&str>, env: &[(String, String)]) -> Result<Value, ConfigErrors> {
    let mut builder = config::Config::builder();
    if let Some(text) = yaml {
        // An empty file (or one holding only comments) is an empty map, not an error.
        if !text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
            builder = builder.add_source(config::File::from_str(text, config::FileFormat::Yaml));
        }
    }
    // NB: every environment value stays a string ("1.10" is a version, not the float 1.1; "007"
    // not 7): coerce_like types it by the default. List keys are split here, as overrides.
    let mut env_map = std::collections::HashMap::new();
    for (k, v) in env {
        let Some(key) = variable_key(k) else { continue };
        if LIST_KEYS.contains(&key.as_str()) {
            let items: Vec<String> = v.split(',').map(str::to_string).collect();
            builder = builder.set_override(&key, items).map_err(|e| ConfigErrors::one(&key, humanize_config(e)))?;
        } else {
            env_map.insert(k.clone(), v.clone());
        }
    }
    let environment =
        config::Environment::with_prefix(ENV_PREFIX).prefix_separator("_").separator("__").source(Some(env_map));
    let built =
        builder.add_source(environment).build().map_err(|e| ConfigErrors::one("--config", humanize_config(e)))?;
    let value: Value = built.try_deserialize().map_err(|e| ConfigErrors::one("--config", humanize_config(e)))?;
    match value {
        Value::Object(_) => Ok(value),
        Value::Null => Ok(Value::Object(Default::default())),
        other => Err(ConfigErrors::one("--config", format!("the file must hold a YAML mapping, not {other}"))),
    }
}

/// The config crate's (and its YAML parser's) wording, readable: yaml-rust2 names a key given
/// twice in Rust Debug form (`String("dry_run"): duplicated key in mapping at ...`).
fn humanize_config(e: config::ConfigError) -> String {
    let text = e.to_string();
    let Some((before, after)) = text.split_once(": duplicated key in mapping") else { return text };
    // The key is the last `Variant(value)` of what comes before.
    let (head, key) = ["String(", "Integer(", "Real(", "Boolean("]
        .iter()
        .filter_map(|v| before.rfind(v).map(|at| (at, v.len())))
        .max()
        .filter(|_| before.ends_with(')'))
        .map(|(at, len)| (&before[..at], &before[at + len..before.len() - 1]))
        .unwrap_or(("", before));
    format!("{head}the key {key} is given twice in one mapping{after}")
}

/// Rewrites serde's wording into the agent's: name the bad value and what is allowed.
fn humanize_serde(msg: String) -> String {
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some((field, expected)) = rest.split_once("`, expected ")
    {
        let allowed = expected.replace("one of ", "").replace('`', "");
        return format!("unknown key {field:?} (allowed: {allowed})");
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `")
        && let Some((variant, expected)) = rest.split_once("`, expected ")
    {
        let allowed = expected.replace("one of ", "").replace('`', "");
        return format!("{variant:?} is not one of {allowed}");
    }
    // `invalid type: string "istiod", expected struct Component`: no Rust type names.
    if let Some((head, _)) = msg.split_once("expected struct ") {
        return format!("{head}expected a mapping of keys");
    }
    msg
}

/// Merges `over` into `base`: objects merge key by key, everything else replaces.
/// A section (an object in the defaults) given as anything but a mapping is an error.
fn deep_merge(base: &mut Value, over: &Value, path: &str) -> Result<(), ConfigErrors> {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                let child = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                match b.get_mut(k) {
                    Some(slot) => deep_merge(slot, v, &child)?,
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
            Ok(())
        }
        // A section with nothing under it (`injection:` with every line below commented out)
        // is YAML's null: an empty mapping, as an empty file is.
        (Value::Object(_), Value::Null) => Ok(()),
        (Value::Object(_), v) => Err(ConfigErrors::one(path, format!("expected a mapping of keys, not {v}"))),
        (slot, v) => {
            *slot = v.clone();
            Ok(())
        }
    }
}

/// Environment values arrive as strings, YAML scalars as whatever they look like: convert each
/// to the type the default has at the same place (numbers, booleans, strings), so `"31380"`
/// from the environment is a port and `true` in YAML is the text "true" for a text key; a YAML
/// float for a text key stays a number and is refused (its text is lost: write it quoted).
fn coerce_like(value: &mut Value, like: &Value) {
    match (value, like) {
        (Value::Object(map), Value::Object(defaults)) => {
            // A map whose defaults all share one type (e.g. node_ports) types its new keys too.
            let uniform = uniform_type(defaults.values());
            for (k, v) in map.iter_mut() {
                if let Some(d) = defaults.get(k).or(uniform) {
                    coerce_like(v, d)
                }
            }
        }
        (Value::Array(items), Value::Array(defaults)) => {
            if let Some(d) = uniform_type(defaults.iter()) {
                items.iter_mut().for_each(|v| coerce_like(v, d));
            }
        }
        (v @ Value::String(_), Value::Number(_)) => {
            if let Some(n) = v.as_str().and_then(|s| number(s.trim())) {
                *v = Value::Number(n);
            }
        }
        (v @ Value::String(_), Value::Bool(_)) => match v.as_str().map(str::trim) {
            Some(s) if s.eq_ignore_ascii_case("true") => *v = Value::Bool(true),
            Some(s) if s.eq_ignore_ascii_case("false") => *v = Value::Bool(false),
            _ => {}
        },
        // A YAML float for a text key is left a number, refused with "write it quoted":
        // YAML has already read `1.10` as 1.1, so its text is lost (every 1.10 proxy stale).
        (Value::Number(n), Value::String(_)) if n.is_f64() => {}
        (v @ (Value::Number(_) | Value::Bool(_)), Value::String(_)) => *v = Value::String(v.to_string()),
        _ => {}
    }
}

/// A number as JSON writes it, or as Rust reads an integer ("060", "+5") or a finite float.
fn number(s: &str) -> Option<serde_json::Number> {
    s.parse::<serde_json::Number>()
        .ok()
        .or_else(|| s.parse::<i64>().ok().map(Into::into))
        .or_else(|| s.parse::<u64>().ok().map(Into::into))
        .or_else(|| s.parse::<f64>().ok().and_then(serde_json::Number::from_f64))
}

fn uniform_type<'a>(mut values: impl Iterator<Item = &'a Value>) -> Option<&'a Value> {
    let first = values.next()?;
    let same = |v: &Value| std::mem::discriminant(v) == std::mem::discriminant(first);
    values.all(same).then_some(first)
}

// === ConfigErrors ===

/// One configuration problem: the key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    /// The `MESHKEEPER_*` variable that set the key (or the unknown key), if one did.
    pub variable: Option<String>,
    pub message: String,
}

/// The key path an environment variable sets: `MESHKEEPER_GATEWAY__NODE_PORTS__HTTP2` ->
/// `gateway.node_ports.http2` (the config crate lower-cases; `__` separates levels).
fn variable_key(name: &str) -> Option<String> {
    let rest = name.strip_prefix(ENV_PREFIX)?.strip_prefix('_')?;
    Some(rest.to_lowercase().replace("__", "."))
}

/// Every problem found in a configuration (at least one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    fn one(key: &str, message: impl Into<String>) -> Self {
        let mut e = ConfigErrors::default();
        e.push(key, message.into());
        e
    }

    fn push(&mut self, key: &str, message: String) {
        let key = if key.is_empty() || key == "." { "(top level)".to_string() } else { key.to_string() };
        self.0.push(ConfigError { key, variable: None, message });
    }

    /// Names the environment variable behind each error it caused: the one that set the key
    /// (list items: the list), or, for an unknown key, the one that introduced it.
    fn naming_variables(mut self, env: &[(String, String)]) -> Self {
        let mut vars: Vec<(String, &str)> =
            env.iter().filter_map(|(name, _)| Some((variable_key(name)?, name.as_str()))).collect();
        vars.sort_by(|a, b| a.1.cmp(b.1));
        for e in &mut self.0 {
            // `injection.exclude[1]` is set by the variable of `injection.exclude`.
            let mut bare = String::with_capacity(e.key.len());
            let mut depth = 0;
            for c in e.key.chars() {
                match c {
                    '[' => depth += 1,
                    ']' => depth -= 1,
                    c if depth == 0 => bare.push(c),
                    _ => {}
                }
            }
            e.variable = vars
                .iter()
                .find(|(path, _)| *path == bare || path.strip_prefix(&bare).is_some_and(|r| r.starts_with('.')))
                .map(|(_, name)| name.to_string());
        }
        self
    }

    fn into_result(self) -> Result<(), ConfigErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match &e.variable {
                Some(v) => write!(f, "{} (from {v}): {}", e.key, e.message)?,
                None => write!(f, "{}: {}", e.key, e.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests;

/// A string that YAML must give quoted (see [`types::Quoted`]).
fn quoted<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    types::Quoted::deserialize(d).map(|q| q.0)
}
