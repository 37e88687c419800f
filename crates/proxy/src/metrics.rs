//! Prometheus metrics. Families live for the whole process (across reloads);
//! per-app handles are resolved once when a plan is compiled.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub app: Arc<str>,
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppLabels {
    pub app: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamErrorLabels {
    pub app: Arc<str>,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    pub app: Arc<str>,
    pub target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetOutcomeLabels {
    pub app: Arc<str>,
    pub target: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub result: &'static str,
}

fn latency_histogram() -> Histogram {
    // 1 ms … ~16 s: a proxy hop is sub-millisecond, a slow legacy app is seconds.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 2.0, 15,
    ))
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<AppLabels, Histogram, fn() -> Histogram>,
    pub upstream_errors: Family<UpstreamErrorLabels, Counter>,
    pub open_connections: Gauge,
    pub reloads: Family<ReloadLabels, Counter>,
    pub target_requests: Family<TargetOutcomeLabels, Counter>,
    pub target_up: Family<TargetLabels, Gauge>,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("portcullis");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<AppLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        let open_connections = Gauge::default();
        let reloads = Family::<ReloadLabels, Counter>::default();
        let target_requests = Family::<TargetOutcomeLabels, Counter>::default();
        let target_up = Family::<TargetLabels, Gauge>::default();
        registry.register(
            "upstream_target_requests",
            "Requests per upstream target by outcome (ok, failed: no answer or 502-504)",
            target_requests.clone(),
        );
        registry.register(
            "upstream_target_up",
            "1 while the target passes its active health check (1 without checks)",
            target_up.clone(),
        );
        registry.register(
            "http_requests",
            "Requests answered, by app and status code (app \"-\" when no app matched)",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from request head to response head, by app",
            latency.clone(),
        );
        registry.register(
            "upstream_errors",
            "Upstream failures by app and kind (connect, timeout, protocol)",
            upstream_errors.clone(),
        );
        registry.register(
            "open_connections",
            "Client connections currently open on the public listeners",
            open_connections.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration reloads by result",
            reloads.clone(),
        );
        Arc::new(Metrics {
            registry,
            requests,
            latency,
            upstream_errors,
            open_connections,
            reloads,
            target_requests,
            target_up,
        })
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
