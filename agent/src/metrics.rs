//! Prometheus metrics of the agent. One struct, registered once; gauges about cache sizes are
//! read at scrape time from the caches themselves, so nothing has to be kept in step.

use std::time::Instant;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::findings::{FindingSet, Severity};

/// Every metric meshkeeper exports (see README "Metrics").
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub watch_events: IntCounterVec,
    pub watch_restarts: IntCounterVec,
    pub watch_lists: IntCounterVec,
    pub reconcile_duration: HistogramVec,
    pub reconcile_errors: IntCounterVec,
    pub findings: IntGaugeVec,
    pub actions: IntCounterVec,
    pub write_throttled: IntCounterVec,
    pub label_repairs: IntCounterVec,
    pub gateway_repairs: IntCounterVec,
    pub reinjections: IntCounterVec,
    pub last_evaluation: GaugeVec,
    config_info: IntGaugeVec,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // NB: metric names and labels are static and valid; a failure here is a programming error
    // caught by the unit test that builds Metrics.
    r.unwrap_or_else(|e| panic!("invalid metric definition: {e}"))
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let build_info = must(IntGaugeVec::new(
            Opts::new("meshkeeper_build_info", "Build information; the value is always 1."),
            &["version"],
        ));
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let watch_events = must(IntCounterVec::new(
            Opts::new("meshkeeper_watch_events_total", "Watch events received, by resource."),
            &["resource"],
        ));
        let watch_restarts = must(IntCounterVec::new(
            Opts::new(
                "meshkeeper_watch_restarts_total",
                "Times a watch failed and was restarted (re-list), by resource.",
            ),
            &["resource"],
        ));
        let watch_lists = must(IntCounterVec::new(
            Opts::new(
                "meshkeeper_watch_lists_total",
                "LISTs (initial and re-lists) each watch made, by resource; after the first, only 410 Gone or a failure re-lists.",
            ),
            &["resource"],
        ));
        let reconcile_duration = must(HistogramVec::new(
            HistogramOpts::new(
                "meshkeeper_reconcile_duration_seconds",
                "Time to evaluate a check (or run a controller pass), by controller.",
            )
            .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            &["controller"],
        ));
        let reconcile_errors = must(IntCounterVec::new(
            Opts::new("meshkeeper_reconcile_errors_total", "Errors of a controller pass, by controller and reason."),
            &["controller", "reason"],
        ));
        let findings = must(IntGaugeVec::new(
            Opts::new("meshkeeper_findings", "Current findings, by check and severity."),
            &["check", "severity"],
        ));
        let actions = must(IntCounterVec::new(
            Opts::new(
                "meshkeeper_actions_total",
                "Writes the actuator attempted, by action and result (success, dry_run, conflict, forbidden, error).",
            ),
            &["action", "result"],
        ));
        let write_throttled = must(IntCounterVec::new(
            Opts::new(
                "meshkeeper_write_throttled_total",
                "Writes that waited for the client-side token bucket, by action.",
            ),
            &["action"],
        ));
        let label_repairs = must(IntCounterVec::new(
            Opts::new(
                "meshkeeper_label_repairs_total",
                "Injection-label repairs attempted, by result (success, dry_run, conflict, forbidden, not_found, error).",
            ),
            &["result"],
        ));
        let gateway_repairs = must(IntCounterVec::new(
            Opts::new(
                "meshkeeper_gateway_repairs_total",
                "Gateway pin repairs attempted, by field (load_balancer_ip, node_port:<port name>) and result.",
            ),
            &["field", "result"],
        ));
        let reinjections = must(IntCounterVec::new(
            Opts::new(
                "meshkeeper_reinjections_total",
                "Re-injection restarts (kind deployment, statefulset, daemonset) and evictions (kind pod), by result.",
            ),
            &["kind", "result"],
        ));
        let last_evaluation = must(GaugeVec::new(
            Opts::new(
                "meshkeeper_last_evaluation_timestamp_seconds",
                "Unix time of the last evaluation of each check (repairs: the planner).",
            ),
            &["check"],
        ));
        let config_info = must(IntGaugeVec::new(
            Opts::new(
                "meshkeeper_config_info",
                "The running configuration's profile and modes; the value is always 1.",
            ),
            CONFIG_INFO_LABELS,
        ));
        for c in [
            Box::new(reinjections.clone()) as Box<dyn Collector>,
            Box::new(last_evaluation.clone()),
            Box::new(config_info.clone()),
            Box::new(label_repairs.clone()),
            Box::new(gateway_repairs.clone()),
            Box::new(build_info),
            Box::new(watch_events.clone()),
            Box::new(watch_restarts.clone()),
            Box::new(watch_lists.clone()),
            Box::new(reconcile_duration.clone()),
            Box::new(reconcile_errors.clone()),
            Box::new(findings.clone()),
            Box::new(actions.clone()),
            Box::new(write_throttled.clone()),
        ] {
            must(registry.register(c));
        }
        #[cfg(target_os = "linux")]
        must(registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self())));
        Metrics {
            registry,
            watch_events,
            watch_restarts,
            watch_lists,
            reconcile_duration,
            reconcile_errors,
            findings,
            actions,
            write_throttled,
            label_repairs,
            gateway_repairs,
            reinjections,
            last_evaluation,
            config_info,
        }
    }

    /// Sets `meshkeeper_config_info` (one series; any earlier one is removed).
    pub fn set_config_info(&self, values: &[&str; 7]) {
        self.config_info.reset();
        self.config_info.with_label_values(values).set(1);
    }

    /// Registers the API client's request metrics (built with the clients, before this).
    pub fn register_requests(&self, requests: &RequestMetrics) {
        must(self.registry.register(Box::new(requests.total.clone())));
        must(self.registry.register(Box::new(requests.duration.clone())));
    }

    /// Creates at 0 the counter series for label values known at start, so that `increase()`
    /// and `rate()` see the first increment (a series born at 1 has no increase).
    pub fn precreate(&self, known: &KnownSeries) {
        for r in &known.resources {
            for c in [&self.watch_events, &self.watch_restarts, &self.watch_lists] {
                c.with_label_values(&[r]).inc_by(0);
            }
        }
        for action in &known.actions {
            self.write_throttled.with_label_values(&[action]).inc_by(0);
            for result in RESULTS {
                self.actions.with_label_values(&[action, result]).inc_by(0);
            }
        }
        for result in RESULTS {
            if known.actions.contains(&crate::checks::injection::ACTION) {
                self.label_repairs.with_label_values(&[result]).inc_by(0);
            }
            for field in &known.gateway_fields {
                self.gateway_repairs.with_label_values(&[field, result]).inc_by(0);
            }
            for kind in &known.reinjection_kinds {
                self.reinjections.with_label_values(&[kind, result]).inc_by(0);
            }
        }
        for (controller, reason) in &known.errors {
            self.reconcile_errors.with_label_values(&[controller, reason]).inc_by(0);
        }
    }

    /// Adds a gauge family computed at scrape time.
    pub fn register_scrape_gauges(&self, collector: ScrapeGauges) {
        must(self.registry.register(Box::new(collector)));
    }

    /// Sets `meshkeeper_findings` from the current findings; every (check, severity) a check
    /// can produce is present, 0 when there is none, so alerts need no `absent()`.
    pub fn set_findings(&self, checks: &[&'static str], set: &FindingSet) {
        let counts = set.counts();
        for check in checks {
            for sev in Severity::ALL {
                let n = counts.get(&(*check, sev)).copied().unwrap_or(0);
                self.findings.with_label_values(&[check, sev.as_str()]).set(n as i64);
            }
        }
    }

    /// Starts timing a controller pass; observed when the guard drops.
    pub fn time(&self, controller: &str) -> ReconcileTimer {
        ReconcileTimer { histogram: self.reconcile_duration.with_label_values(&[controller]), start: Instant::now() }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let families = self.registry.gather();
        if let Err(e) = TextEncoder::new().encode(&families, &mut buf) {
            tracing::error!(error = %e, "encoding metrics");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The label names of `meshkeeper_config_info`, in the order [`Metrics::set_config_info`] takes.
pub const CONFIG_INFO_LABELS: &[&str] =
    &["profile", "dry_run", "injection_mode", "reinjection_mode", "gateway_mode", "gateway_repair", "control_plane"];

/// The results an action can have (`Outcome::label`, without "not_attempted", which is not counted).
pub const RESULTS: [&str; 7] = ["success", "dry_run", "conflict", "forbidden", "not_found", "throttled", "error"];

/// Label values known at start, whose counters are created at 0.
#[derive(Debug, Default, Clone)]
pub struct KnownSeries {
    /// Watched resources.
    pub resources: Vec<&'static str>,
    /// Enabled repair actions (`Action::kind`).
    pub actions: Vec<&'static str>,
    /// Pinned gateway fields (`load_balancer_ip`, `node_port:<name>`).
    pub gateway_fields: Vec<String>,
    /// Workload kinds re-injection restarts (and `pod` for evictions).
    pub reinjection_kinds: Vec<&'static str>,
    /// (controller, reason) pairs of `meshkeeper_reconcile_errors_total`.
    pub errors: Vec<(&'static str, &'static str)>,
}

/// `meshkeeper_kube_requests_total` and `meshkeeper_kube_request_duration_seconds`: every
/// request of the agent's own API clients, recorded by a tower layer (see `client`).
#[derive(Clone)]
pub struct RequestMetrics {
    total: IntCounterVec,
    duration: HistogramVec,
}

impl RequestMetrics {
    pub fn new() -> Self {
        let total = must(IntCounterVec::new(
            Opts::new(
                "meshkeeper_kube_requests_total",
                "Requests of meshkeeper's Kubernetes clients, by verb (GET, LIST, WATCH, CREATE, UPDATE, PATCH, DELETE) and HTTP status code (\"error\": no response).",
            ),
            &["verb", "code"],
        ));
        let duration = must(HistogramVec::new(
            HistogramOpts::new(
                "meshkeeper_kube_request_duration_seconds",
                "Time from sending a request to its response headers (for a WATCH: until the stream opened), by verb.",
            )
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["verb"],
        ));
        RequestMetrics { total, duration }
    }

    /// Records one request; `code`: the response's status, None when there was no response.
    pub fn observe(&self, verb: &str, code: Option<u16>, seconds: f64) {
        let code = code.map_or_else(|| "error".to_string(), |c| c.to_string());
        self.total.with_label_values(&[verb, &code]).inc();
        self.duration.with_label_values(&[verb]).observe(seconds);
    }
}

impl Default for RequestMetrics {
    fn default() -> Self {
        RequestMetrics::new()
    }
}

/// The Kubernetes verb of a request, from its method, path and query (as the API server's
/// `apiserver_request_total` names them): a GET of a collection is a LIST, with `watch=true` a
/// WATCH; discovery and other non-resource paths are GETs.
pub fn verb_of(method: &http::Method, path: &str, query: Option<&str>) -> &'static str {
    match *method {
        http::Method::POST => return "CREATE",
        http::Method::PUT => return "UPDATE",
        http::Method::PATCH => return "PATCH",
        http::Method::DELETE => return "DELETE",
        http::Method::GET | http::Method::HEAD => {}
        _ => return "OTHER",
    }
    let watching = query.unwrap_or("").split('&').any(|kv| matches!(kv.split_once('='), Some(("watch", "true" | "1"))));
    if watching {
        return "WATCH";
    }
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    // After /api/v1 or /apis/<group>/<version>: [namespaces, ns,] resource [, name [, sub]].
    let rest = match segs.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return "GET",
    };
    let collection = match rest {
        [] => false,
        // A Namespace's own subresources are not collections.
        ["namespaces", _ns, sub] => !matches!(*sub, "status" | "finalize"),
        [_resource] => true,
        _ => false,
    };
    if collection { "LIST" } else { "GET" }
}

/// Observes the elapsed time on drop.
pub struct ReconcileTimer {
    histogram: prometheus::Histogram,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

/// One series read at scrape time: which family (index into the families given to
/// [`ScrapeGauges::new`]), its label values, its value.
pub type Sample = (usize, Vec<String>, f64);

type Reader = Box<dyn Fn() -> Vec<Sample> + Send + Sync>;

/// Gauge families whose series are all read at scrape time by one reader (e.g.
/// `meshkeeper_cache_objects` reads each cache's length; the control-plane gauges share one
/// assessment). Series the reader no longer returns disappear.
pub struct ScrapeGauges {
    descs: Vec<Desc>,
    gauges: Vec<GaugeVec>,
    read: Reader,
}

impl ScrapeGauges {
    /// `families`: (name, help, label names); `read` returns samples for them.
    pub fn new(families: &[(&str, &str, &[&str])], read: impl Fn() -> Vec<Sample> + Send + Sync + 'static) -> Self {
        let gauges: Vec<GaugeVec> =
            families.iter().map(|(name, help, labels)| must(GaugeVec::new(Opts::new(*name, *help), labels))).collect();
        let descs = gauges.iter().flat_map(|g| g.desc().into_iter().cloned()).collect();
        ScrapeGauges { descs, gauges, read: Box::new(read) }
    }

    /// One family.
    pub fn single(
        name: &str,
        help: &str,
        labels: &[&str],
        read: impl Fn() -> Vec<(Vec<String>, f64)> + Send + Sync + 'static,
    ) -> Self {
        ScrapeGauges::new(&[(name, help, labels)], move || read().into_iter().map(|(l, v)| (0, l, v)).collect())
    }
}

impl Collector for ScrapeGauges {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.gauges.iter().for_each(GaugeVec::reset);
        for (family, labels, value) in (self.read)() {
            let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
            if let Some(g) = self.gauges.get(family).and_then(|g| g.get_metric_with_label_values(&refs).ok()) {
                g.set(value);
            }
        }
        self.gauges.iter().flat_map(|g| g.collect()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::test_support::finding;

    #[test]
    fn verbs_as_the_api_server_names_them() {
        use http::Method;
        for (method, path, query, verb) in [
            (Method::GET, "/api/v1/namespaces", None, "LIST"),
            (Method::GET, "/api/v1/namespaces", Some("watch=true&resourceVersion=5"), "WATCH"),
            (Method::GET, "/api/v1/pods", Some("allowWatchBookmarks=true&watch=1"), "WATCH"),
            (Method::GET, "/api/v1/namespaces/bookinfo", None, "GET"),
            (Method::GET, "/api/v1/namespaces/bookinfo/status", None, "GET"),
            (Method::GET, "/api/v1/namespaces/istio-system/pods", Some("limit=500"), "LIST"),
            (Method::GET, "/api/v1/namespaces/istio-system/pods/istiod-1", None, "GET"),
            (Method::GET, "/api/v1/nodes/n1/status", None, "GET"),
            (Method::GET, "/apis/apps/v1/deployments", Some("watch=false"), "LIST"),
            (Method::GET, "/apis/coordination.k8s.io/v1/namespaces/meshkeeper/leases/meshkeeper", None, "GET"),
            (Method::GET, "/apis/coordination.k8s.io", None, "GET"),
            (Method::GET, "/version", None, "GET"),
            (Method::POST, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", None, "CREATE"),
            (Method::PUT, "/apis/coordination.k8s.io/v1/namespaces/m/leases/l", None, "UPDATE"),
            (Method::PATCH, "/api/v1/namespaces/bookinfo", None, "PATCH"),
            (Method::DELETE, "/api/v1/namespaces/a/pods/b", None, "DELETE"),
            (Method::OPTIONS, "/api", None, "OTHER"),
        ] {
            assert_eq!(verb_of(&method, path, query), verb, "{method} {path}?{query:?}");
        }
    }

    #[test]
    fn counters_known_at_start_exist_at_zero_and_request_metrics_render() {
        let m = Metrics::new();
        m.precreate(&KnownSeries {
            resources: vec!["namespaces"],
            actions: vec![crate::checks::injection::ACTION],
            gateway_fields: vec!["node_port:http2".into()],
            reinjection_kinds: vec!["deployment"],
            errors: vec![("events", "queue_full")],
        });
        let req = RequestMetrics::new();
        m.register_requests(&req);
        req.observe("LIST", Some(200), 0.003);
        req.observe("PATCH", None, 0.5);
        m.set_config_info(&["asm-onprem", "false", "audit", "off", "manual", "false", "true"]);
        m.set_config_info(&["istiod", "true", "enforce", "audit", "off", "false", "false"]);
        let text = m.render();
        for want in [
            "meshkeeper_watch_restarts_total{resource=\"namespaces\"} 0",
            "meshkeeper_watch_lists_total{resource=\"namespaces\"} 0",
            "meshkeeper_actions_total{action=\"injection_label\",result=\"error\"} 0",
            "meshkeeper_actions_total{action=\"injection_label\",result=\"forbidden\"} 0",
            "meshkeeper_write_throttled_total{action=\"injection_label\"} 0",
            "meshkeeper_label_repairs_total{result=\"success\"} 0",
            "meshkeeper_gateway_repairs_total{field=\"node_port:http2\",result=\"conflict\"} 0",
            "meshkeeper_reinjections_total{kind=\"deployment\",result=\"dry_run\"} 0",
            "meshkeeper_reconcile_errors_total{controller=\"events\",reason=\"queue_full\"} 0",
            "meshkeeper_kube_requests_total{code=\"200\",verb=\"LIST\"} 1",
            "meshkeeper_kube_requests_total{code=\"error\",verb=\"PATCH\"} 1",
            "meshkeeper_kube_request_duration_seconds_count{verb=\"LIST\"} 1",
            "meshkeeper_config_info{control_plane=\"false\",dry_run=\"true\",gateway_mode=\"off\",gateway_repair=\"false\",injection_mode=\"enforce\",profile=\"istiod\",reinjection_mode=\"audit\"} 1",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
        assert_eq!(text.matches("meshkeeper_config_info{").count(), 1, "one config_info series");
    }

    #[test]
    fn renders_every_family_with_help_and_scrape_time_gauges() {
        let m = Metrics::new();
        let n = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(3));
        let n2 = n.clone();
        m.register_scrape_gauges(ScrapeGauges::single(
            "meshkeeper_cache_objects",
            "Objects in each cache.",
            &["resource"],
            move || vec![(vec!["namespaces".to_string()], n2.load(std::sync::atomic::Ordering::Relaxed) as f64)],
        ));
        m.register_scrape_gauges(ScrapeGauges::new(
            &[("meshkeeper_test_healthy", "A gauge without labels.", &[]), ("meshkeeper_test_info", "Info.", &["v"])],
            || vec![(0, vec![], 1.0), (1, vec!["1.4".into()], 1.0)],
        ));
        m.watch_events.with_label_values(&["namespaces"]).inc();
        let mut set = FindingSet::default();
        set.replace_check("injection", vec![finding("injection", "Missing", "a")]);
        m.set_findings(&["injection"], &set);
        {
            let _t = m.time("injection");
        }
        let text = m.render();
        assert!(text.contains("meshkeeper_build_info{version=\"0.1.0\"} 1"), "{text}");
        assert!(text.contains("meshkeeper_cache_objects{resource=\"namespaces\"} 3"));
        assert!(text.contains("meshkeeper_findings{check=\"injection\",severity=\"warning\"} 1"));
        assert!(text.contains("meshkeeper_findings{check=\"injection\",severity=\"error\"} 0"));
        assert!(text.contains("meshkeeper_reconcile_duration_seconds_count{controller=\"injection\"} 1"));
        n.store(7, std::sync::atomic::Ordering::Relaxed);
        assert!(m.render().contains("meshkeeper_cache_objects{resource=\"namespaces\"} 7"));
        assert!(text.contains("meshkeeper_test_healthy 1\n"), "{text}");
        assert!(text.contains("meshkeeper_test_info{v=\"1.4\"} 1\n"));
    }
}
