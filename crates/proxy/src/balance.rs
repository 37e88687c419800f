//! Several upstream targets for one app: round-robin or least-connections,
//! passive health (a target that fails `fail_after` times in a row is
//! ejected for `cooldown`), optional active checks, and per-target metrics.
//!
//! Health state lives in each worker's plan: every worker notices a dead
//! target on its own after `fail_after` failures — a few extra failed
//! requests in exchange for no cross-thread coordination on the hot path.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use http::StatusCode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::{Metrics, TargetLabels, TargetOutcomeLabels};
use crate::upstream::HttpUpstream;

pub use portcullis_config::{Health, LoadBalancing};

type CheckClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Empty<bytes::Bytes>,
>;

pub struct Target {
    pub upstream: HttpUpstream,
    /// This target's internal URLs → the app's public ones.
    pub url_map: crate::rewrite::UrlMap,
    /// `GET` target for active checks, with its own small client (the
    /// proxy pool only carries client request bodies).
    check: Option<(CheckClient, http::Uri)>,
    in_flight: AtomicUsize,
    consecutive_failures: AtomicU32,
    /// Milliseconds since `Balancer::epoch` until which the target rests.
    ejected_until_ms: AtomicU64,
    /// Result of the last active check (true without checks).
    check_ok: AtomicBool,
    ok: Counter,
    failed: Counter,
    up: Gauge,
}

pub struct Balancer {
    targets: Vec<Target>,
    policy: LoadBalancing,
    health: Health,
    next: AtomicUsize,
    epoch: Instant,
    app: Arc<str>,
}

/// One request's target; drop it (after [`Picked::outcome`]) when done.
pub struct Picked<'b> {
    balancer: &'b Balancer,
    index: usize,
}

impl Balancer {
    pub fn new(
        app: Arc<str>,
        public: &portcullis_config::PublicUrl,
        upstreams: Vec<(HttpUpstream, &portcullis_config::UpstreamTarget)>,
        policy: LoadBalancing,
        health: Health,
        metrics: &Metrics,
    ) -> Result<Balancer, crate::Error> {
        let mut targets = Vec::new();
        for (upstream, config) in upstreams {
            let check = match &health.check_path {
                Some(path) => Some(check_client(&app, config, path)?),
                None => None,
            };
            targets.push({
                let labels = |outcome: &'static str| TargetOutcomeLabels {
                    app: app.clone(),
                    target: upstream.label.clone(),
                    outcome,
                };
                let up = metrics
                    .target_up
                    .get_or_create(&TargetLabels {
                        app: app.clone(),
                        target: upstream.label.clone(),
                    })
                    .clone();
                up.set(1);
                // One statement per handle: a family's read guard lives to
                // the end of its statement, and creating the next label
                // needs the write lock.
                let ok = metrics.target_requests.get_or_create(&labels("ok")).clone();
                let failed = metrics
                    .target_requests
                    .get_or_create(&labels("failed"))
                    .clone();
                Target {
                    url_map: crate::rewrite::UrlMap::from_config(public, config),
                    check,
                    ok,
                    failed,
                    up,
                    upstream,
                    in_flight: AtomicUsize::new(0),
                    consecutive_failures: AtomicU32::new(0),
                    ejected_until_ms: AtomicU64::new(0),
                    check_ok: AtomicBool::new(true),
                }
            });
        }
        Ok(Balancer {
            targets,
            policy,
            health,
            next: AtomicUsize::new(0),
            epoch: Instant::now(),
            app,
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn available(&self, target: &Target, now_ms: u64) -> bool {
        target.check_ok.load(Ordering::Relaxed)
            && target.ejected_until_ms.load(Ordering::Relaxed) <= now_ms
    }

    /// The target for the next request. When every target is down the
    /// least recently ejected one is tried anyway: an answer, even an
    /// error, beats refusing without asking.
    pub fn pick(&self) -> Picked<'_> {
        let now = self.now_ms();
        let n = self.targets.len();
        let index = if n == 1 {
            0
        } else {
            let chosen = match self.policy {
                LoadBalancing::RoundRobin => {
                    let start = self.next.fetch_add(1, Ordering::Relaxed);
                    (0..n)
                        .map(|k| (start + k) % n)
                        .find(|&i| self.available(&self.targets[i], now))
                }
                LoadBalancing::LeastConnections => (0..n)
                    .filter(|&i| self.available(&self.targets[i], now))
                    .min_by_key(|&i| self.targets[i].in_flight.load(Ordering::Relaxed)),
            };
            chosen.unwrap_or_else(|| {
                (0..n)
                    .min_by_key(|&i| self.targets[i].ejected_until_ms.load(Ordering::Relaxed))
                    .unwrap_or(0)
            })
        };
        if let Some(target) = self.targets.get(index) {
            target.in_flight.fetch_add(1, Ordering::Relaxed);
        }
        Picked {
            balancer: self,
            index,
        }
    }

    /// Whether a second target exists to retry on.
    pub fn has_alternatives(&self) -> bool {
        self.targets.len() > 1
    }

    /// An available target other than `tried`, for a retry.
    pub fn pick_other(&self, tried: &Picked<'_>) -> Option<Picked<'_>> {
        let now = self.now_ms();
        let n = self.targets.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let index = (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| i != tried.index && self.available(&self.targets[i], now))?;
        self.targets[index]
            .in_flight
            .fetch_add(1, Ordering::Relaxed);
        Some(Picked {
            balancer: self,
            index,
        })
    }

    fn record(&self, index: usize, ok: bool) {
        let Some(target) = self.targets.get(index) else {
            return;
        };
        if ok {
            target.ok.inc();
            target.consecutive_failures.store(0, Ordering::Relaxed);
            return;
        }
        target.failed.inc();
        let failures = target.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= self.health.fail_after && self.targets.len() > 1 {
            let until =
                self.now_ms() + u64::try_from(self.health.cooldown.as_millis()).unwrap_or(u64::MAX);
            target.ejected_until_ms.store(until, Ordering::Relaxed);
            target.consecutive_failures.store(0, Ordering::Relaxed);
            tracing::warn!(
                app = &*self.app,
                target = %target.upstream.label,
                failures,
                cooldown_ms = self.health.cooldown.as_millis() as u64,
                "upstream target ejected"
            );
        }
    }

    /// Starts active checks on the current runtime; they stop when the
    /// balancer (its plan) is dropped.
    pub fn spawn_checks(self: &Arc<Self>) {
        if self.health.check_path.is_none() || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let weak: Weak<Balancer> = Arc::downgrade(self);
        let interval = self.health.check_interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(balancer) = weak.upgrade() else {
                    return;
                };
                for target in &balancer.targets {
                    let Some((client, uri)) = &target.check else {
                        continue;
                    };
                    let ok = tokio::time::timeout(
                        interval.min(Duration::from_secs(5)),
                        client.get(uri.clone()),
                    )
                    .await
                    .is_ok_and(|answer| {
                        answer.is_ok_and(|r| r.status().is_success() || r.status().is_redirection())
                    });
                    let was = target.check_ok.swap(ok, Ordering::Relaxed);
                    target.up.set(i64::from(ok));
                    if was != ok {
                        tracing::warn!(
                            app = &*balancer.app,
                            target = %target.upstream.label,
                            up = ok,
                            "upstream health check changed"
                        );
                    }
                }
            }
        });
    }
}

impl Picked<'_> {
    pub fn upstream(&self) -> &HttpUpstream {
        &self.balancer.targets[self.index].upstream
    }

    pub fn url_map(&self) -> &crate::rewrite::UrlMap {
        &self.balancer.targets[self.index].url_map
    }

    /// Records how the target answered: a response (5xx gateway statuses
    /// count against it) or `None` for no usable answer.
    pub fn outcome(&self, status: Option<StatusCode>) {
        let ok = matches!(status, Some(s) if !matches!(s.as_u16(), 502..=504));
        self.balancer.record(self.index, ok);
    }
}

impl Drop for Picked<'_> {
    fn drop(&mut self) {
        if let Some(target) = self.balancer.targets.get(self.index) {
            target.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

fn check_client(
    app: &str,
    target: &portcullis_config::UpstreamTarget,
    path: &str,
) -> Result<(CheckClient, http::Uri), crate::Error> {
    let app_error = |reason: String| crate::Error::App {
        app: app.to_string(),
        reason,
    };
    let connector = crate::tls::upstream_connector(
        app,
        target.ca.as_deref(),
        target.sni.as_deref(),
        Duration::from_secs(3),
    )?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(connector);
    let scheme = if target.tls { "https" } else { "http" };
    let uri: http::Uri = format!("{scheme}://{}{}{path}", target.authority, target.base_path)
        .parse()
        .map_err(|e| app_error(format!("health check_path: {e}")))?;
    Ok((client, uri))
}
