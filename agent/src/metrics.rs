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
        for c in [
            Box::new(reinjections.clone()) as Box<dyn Collector>,
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
