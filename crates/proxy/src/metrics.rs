//! Prometheus metrics. Families live for the whole process (across reloads);
//! per-app handles are resolved once when a plan is compiled.
//!
//! The per-request metrics (request counts and latency) are sharded by
//! worker: each worker writes only its own cache line, with no lock, and a
//! scrape sums the shards. A shared counter or prometheus-client's
//! mutex-guarded histogram would bounce one cache line between cores on
//! every request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    /// `public` (TLS and plain-HTTP redirect listeners) or `admin`.
    pub listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LogSourceLabels {
    /// `h2`, `rustls`, `xmlsec` or `stderr` (anything else a C library
    /// wrote).
    pub source: &'static str,
}

/// Log events a client can provoke in libraries (h2 and rustls warnings,
/// xmlsec's and libxml2's lines on stderr), every one counted while at
/// most one per source and interval is written. Process-wide and not a
/// [`Metrics`] field: the logging layer that counts them is installed
/// before any server exists, and every server's registry shows the same
/// family.
pub fn library_log_events() -> &'static Family<LogSourceLabels, Counter> {
    static EVENTS: OnceLock<Family<LogSourceLabels, Counter>> = OnceLock::new();
    EVENTS.get_or_init(Family::default)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// The [`WorkLimit`](crate::WorkLimit)'s name: `saml_verify`,
    /// `idp_saml_verify`, `password`.
    pub pool: &'static str,
}

/// Jobs a [`WorkLimit`](crate::WorkLimit) refused (every slot and queue
/// place taken): each a 503 or 429 with `Retry-After`. Process-wide like
/// [`library_log_events`]: the pools are built by the gateway and the
/// IdP, outside any server's [`Metrics`].
pub fn work_refused() -> &'static Family<PoolLabels, Counter> {
    static REFUSED: OnceLock<Family<PoolLabels, Counter>> = OnceLock::new();
    REFUSED.get_or_init(Family::default)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreTransitionLabels {
    /// `up` or `down`.
    pub to: &'static str,
}

/// The shared session store (Redis in `[cluster] mode = "shared"`): 1
/// while it answers, 0 while it does not, and how often it changed.
/// Process-wide: the binary follows the store's connection. A node
/// without a shared store (memory) reports 1.
pub struct SessionStoreMetrics {
    pub up: Gauge,
    pub transitions: Family<StoreTransitionLabels, Counter>,
}

pub fn session_store() -> &'static SessionStoreMetrics {
    static STORE: OnceLock<SessionStoreMetrics> = OnceLock::new();
    STORE.get_or_init(|| {
        let up = Gauge::default();
        up.set(1);
        SessionStoreMetrics {
            up,
            transitions: Family::default(),
        }
    })
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    /// `app/<name>` for an app's external IdP, `sp/<name>` for a
    /// service provider of the embedded IdP.
    pub peer: String,
}

/// Downloads of peer SAML metadata (`metadata_url`): failures (the last
/// good copy stays in use) and when the last one succeeded. Process-wide:
/// the binary's refresh tasks run outside any server.
pub struct SamlMetadataMetrics {
    pub refresh_failures: Family<PeerLabels, Counter>,
    pub last_success: Family<PeerLabels, Gauge>,
}

pub fn saml_metadata() -> &'static SamlMetadataMetrics {
    static METADATA: OnceLock<SamlMetadataMetrics> = OnceLock::new();
    METADATA.get_or_init(|| SamlMetadataMetrics {
        refresh_failures: Family::default(),
        last_success: Family::default(),
    })
}

/// Latency bucket count, not counting `+Inf`.
const LATENCY_BUCKETS: usize = 15;

/// Upper bound of latency bucket `i`: 1 ms … ~16 s, doubling. A proxy hop is
/// sub-millisecond, a slow legacy app is seconds.
fn latency_bound(i: usize) -> f64 {
    0.001 * f64::from(1u32 << i)
}

/// Keeps each shard on its own cache line (128 bytes covers the adjacent
/// line prefetcher too).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

/// A counter with one slot per worker.
#[derive(Clone, Debug)]
pub struct ShardedCounter {
    shards: Arc<[Padded<AtomicU64>]>,
}

impl ShardedCounter {
    fn new(shards: usize) -> Self {
        ShardedCounter {
            shards: (0..shards.max(1)).map(|_| Padded::default()).collect(),
        }
    }

    pub fn inc(&self, shard: usize) {
        if let Some(slot) = self.shards.get(shard % self.shards.len()) {
            slot.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn get(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .sum()
    }
}

impl TypedMetric for ShardedCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for ShardedCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.get(), None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[derive(Debug, Default)]
struct HistogramShard {
    /// `f64` bits of the sum of observations.
    sum: AtomicU64,
    count: AtomicU64,
    /// Per-bucket (not cumulative) counts; the last one is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS + 1],
}

/// The latency histogram with one slot per worker.
#[derive(Clone, Debug)]
pub struct ShardedHistogram {
    shards: Arc<[Padded<HistogramShard>]>,
}

impl ShardedHistogram {
    pub fn observe(&self, shard: usize, seconds: f64) {
        let Some(slot) = self.shards.get(shard % self.shards.len()) else {
            return;
        };
        let slot = &slot.0;
        let bucket = (0..LATENCY_BUCKETS)
            .find(|&i| seconds <= latency_bound(i))
            .unwrap_or(LATENCY_BUCKETS);
        if let Some(b) = slot.buckets.get(bucket) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        // One writer per shard in practice (one worker), so this never
        // retries; the loop only keeps it correct with more workers than
        // shards.
        let _ = slot
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + seconds).to_bits())
            });
        slot.count.fetch_add(1, Ordering::Relaxed);
    }
}

impl TypedMetric for ShardedHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for ShardedHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let mut sum = 0.0;
        let mut count = 0;
        let mut buckets: Vec<(f64, u64)> = (0..=LATENCY_BUCKETS)
            .map(|i| {
                let bound = if i < LATENCY_BUCKETS {
                    latency_bound(i)
                } else {
                    f64::INFINITY
                };
                (bound, 0)
            })
            .collect();
        for shard in self.shards.iter() {
            let shard = &shard.0;
            sum += f64::from_bits(shard.sum.load(Ordering::Relaxed));
            count += shard.count.load(Ordering::Relaxed);
            for (total, b) in buckets.iter_mut().zip(&shard.buckets) {
                total.1 += b.load(Ordering::Relaxed);
            }
        }
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Builds sharded metrics for a family: one shard per worker.
#[derive(Clone, Copy, Debug)]
pub struct Shards(usize);

impl MetricConstructor<ShardedCounter> for Shards {
    fn new_metric(&self) -> ShardedCounter {
        ShardedCounter::new(self.0)
    }
}

impl MetricConstructor<ShardedHistogram> for Shards {
    fn new_metric(&self) -> ShardedHistogram {
        ShardedHistogram {
            shards: (0..self.0.max(1)).map(|_| Padded::default()).collect(),
        }
    }
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, ShardedCounter, Shards>,
    pub latency: Family<AppLabels, ShardedHistogram, Shards>,
    pub upstream_errors: Family<UpstreamErrorLabels, Counter>,
    pub open_connections: Gauge,
    pub connection_limit: Gauge,
    pub connections_shed: Family<ListenerLabels, Counter>,
    pub header_timeouts: Counter,
    pub reloads: Family<ReloadLabels, Counter>,
    pub target_requests: Family<TargetOutcomeLabels, Counter>,
    pub target_up: Family<TargetLabels, Gauge>,
}

impl Metrics {
    /// `workers`: how many shards the per-request metrics get.
    pub fn new(workers: usize) -> Arc<Self> {
        let mut registry = Registry::with_prefix("portcullis");
        let shards = Shards(workers.max(1));
        let requests = Family::new_with_constructor(shards);
        let latency = Family::new_with_constructor(shards);
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        let open_connections = Gauge::default();
        let connection_limit = Gauge::default();
        let connections_shed = Family::<ListenerLabels, Counter>::default();
        let header_timeouts = Counter::default();
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
            "Upstream failures by app and kind (connect, timeout, protocol; truncated: the response body broke off)",
            upstream_errors.clone(),
        );
        registry.register(
            "open_connections",
            "Client connections currently open on the public listeners",
            open_connections.clone(),
        );
        registry.register(
            "connection_limit",
            "Open connections on the public listeners beyond which new ones are shed",
            connection_limit.clone(),
        );
        registry.register(
            "connections_shed",
            "Connections closed at once because their listener was at its limit",
            connections_shed.clone(),
        );
        registry.register(
            "header_timeouts",
            "Client connections closed because a request head (or the TLS handshake) took longer than header_read_timeout",
            header_timeouts.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration reloads by result",
            reloads.clone(),
        );
        registry.register(
            "library_log_events",
            "Log events from libraries that clients can provoke (h2, rustls warnings; xmlsec and other stderr output), all counted; at most one per source per 10 s is written",
            library_log_events().clone(),
        );
        registry.register(
            "work_refused",
            "Jobs a bounded work pool (saml_verify, idp_saml_verify, password) refused because every slot and queue place was taken; each answered 503 or 429 with Retry-After",
            work_refused().clone(),
        );
        registry.register(
            "session_store_up",
            "1 while the session store answers (always, for memory), 0 while the shared store (Redis) is unreachable",
            session_store().up.clone(),
        );
        registry.register(
            "session_store_transitions",
            "Times the shared session store became reachable (to=up) or unreachable (to=down)",
            session_store().transitions.clone(),
        );
        registry.register(
            "saml_metadata_refresh_failures",
            "Downloads of a peer's SAML metadata (metadata_url) that failed or were refused (signature, validUntil, content); the last good copy stays in use",
            saml_metadata().refresh_failures.clone(),
        );
        registry.register(
            "saml_metadata_last_success_timestamp_seconds",
            "When a peer's SAML metadata (metadata_url) was last downloaded and verified, in Unix seconds",
            saml_metadata().last_success.clone(),
        );
        Arc::new(Metrics {
            registry,
            requests,
            latency,
            upstream_errors,
            open_connections,
            connection_limit,
            connections_shed,
            header_timeouts,
            reloads,
            target_requests,
            target_up,
        })
    }

    /// The last health check of an upstream target (`target` as
    /// [`crate::upstream::target_label`] writes it); `None` for a target
    /// no worker has set up.
    pub fn target_up(&self, app: &str, target: &str) -> Option<bool> {
        self.target_up
            .get(&TargetLabels {
                app: Arc::from(app),
                target: target.to_owned(),
            })
            .map(|gauge| gauge.get() != 0)
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
