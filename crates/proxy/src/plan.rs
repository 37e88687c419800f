//! A configuration compiled for serving: route table, per-app upstream
//! pools and metric handles. Built once per load or reload and shared by
//! `Arc`; in-flight requests finish on the plan they started with.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use portcullis_config::{Builtin, Config, Upstream};

use crate::auth::AuthPhase;
use crate::balance::Balancer;
use crate::client_ip::TrustedProxies;
use crate::error::Error;
use crate::local::{LocalApp, Services};
use crate::metrics::{
    AppLabels, Metrics, RequestLabels, ShardedCounter, ShardedHistogram, UpstreamErrorLabels,
};
use crate::route::RouteTable;
use crate::upstream::{HttpUpstream, UpstreamTimeouts};
use prometheus_client::metrics::counter::Counter;

/// The compiled auth phase of every app that has one, by app name.
pub type AuthPhases = HashMap<String, Arc<dyn AuthPhase>>;

pub struct Plan {
    pub routes: RouteTable,
    pub apps: Vec<AppPlan>,
    pub access_log: bool,
    /// Port used when a request's `Host` names none.
    pub default_port: u16,
    /// Every app's session and request-state cookie names, stripped from
    /// requests to any upstream.
    pub gateway_cookies: Vec<String>,
    /// This plan's worker: its slot in the sharded metrics.
    pub shard: usize,
    /// `[server] trusted_proxies`: part of the plan so that a reload
    /// changes whom the gateway believes.
    pub trusted_proxies: TrustedProxies,
    /// Sticky mode: `route_cookie=node_id`, set on every response to a
    /// browser that does not send it yet, so any balancer can pin by
    /// cookie. Stripped from requests to upstreams like the gateway's own.
    pub route_cookie: Option<RouteCookie>,
}

/// The cookie a sticky balancer pins on, and this node's value.
pub struct RouteCookie {
    pub name: String,
    pub value: String,
    /// The whole `Set-Cookie` header value, built once.
    pub set_cookie: http::HeaderValue,
}

impl RouteCookie {
    fn for_cluster(cluster: &portcullis_config::Cluster) -> Option<RouteCookie> {
        if cluster.mode != portcullis_config::ClusterMode::Sticky {
            return None;
        }
        let value = cluster.node_id.clone()?;
        let set_cookie = http::HeaderValue::from_str(&format!(
            "{}={value}; Path=/; Secure; HttpOnly; SameSite=Lax",
            cluster.route_cookie
        ))
        .ok()?;
        Some(RouteCookie {
            name: cluster.route_cookie.clone(),
            value,
            set_cookie,
        })
    }
}

pub struct AppPlan {
    pub name: Arc<str>,
    pub upstream: UpstreamPlan,
    pub latency: ShardedHistogram,
    /// `portcullis_http_requests` handles by status code, filled on first
    /// use: the family lookup hashes the labels under a lock shared by all
    /// workers. The plan belongs to one worker, so this lock is never
    /// contended.
    requests: Mutex<Vec<(u16, ShardedCounter)>>,
    /// `auth = "saml"`: the app's auth phase runs before enhance.
    pub auth: Option<Arc<dyn AuthPhase>>,
    /// `host_header = "upstream"`: send the target's own host.
    pub upstream_host_header: bool,
    /// `rewrite_body`: rewrite internal URLs in text bodies.
    pub rewrite_body: bool,
    /// `[app.error_pages]`, read at plan build.
    pub error_pages: Vec<(u16, crate::respond::CustomErrorPage)>,
    /// `portcullis_upstream_errors{kind="truncated"}` for proxied apps:
    /// response bodies the upstream broke off.
    pub truncated: Option<Counter>,
}

pub enum UpstreamPlan {
    Echo,
    Local(Arc<dyn LocalApp>),
    Http(Arc<Balancer>),
}

impl AppPlan {
    fn new(name: &str, upstream: UpstreamPlan, metrics: &Metrics) -> AppPlan {
        let name: Arc<str> = Arc::from(name);
        let latency = metrics
            .latency
            .get_or_create(&AppLabels { app: name.clone() })
            .clone();
        AppPlan {
            name,
            upstream,
            latency,
            requests: Mutex::new(Vec::new()),
            auth: None,
            upstream_host_header: false,
            rewrite_body: false,
            error_pages: Vec::new(),
            truncated: None,
        }
    }

    /// Counts one request of this app answered with `status` on `shard`.
    /// Counts under the cache lock rather than returning a handle: cloning
    /// one would touch a reference count shared with the other workers.
    pub fn count_request(&self, metrics: &Metrics, status: u16, shard: usize) {
        let mut cache = match self.requests.lock() {
            Ok(cache) => cache,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((_, counter)) = cache.iter().find(|(code, _)| *code == status) {
            counter.inc(shard);
            return;
        }
        let counter = metrics
            .requests
            .get_or_create(&RequestLabels {
                app: self.name.clone(),
                code: status,
            })
            .clone();
        counter.inc(shard);
        cache.push((status, counter));
    }
}

impl Plan {
    /// `worker`: the worker this plan serves (its metric shard).
    pub fn compile(
        config: &Config,
        metrics: &Metrics,
        services: &Services,
        phases: &AuthPhases,
        worker: usize,
    ) -> Result<Plan, Error> {
        let mut routes = RouteTable::default();
        let mut apps = Vec::with_capacity(config.apps.len() + 1);
        let timeouts = config.server.timeouts;
        let mut gateway_cookies = Vec::new();
        for (index, app) in config.apps.iter().enumerate() {
            routes.insert(
                &app.public.host,
                app.public.port,
                &app.public.path_prefix,
                index,
            );
            let upstream = match &app.upstream {
                Upstream::Builtin(Builtin::Echo) => UpstreamPlan::Echo,
                Upstream::Http(first) => {
                    let mut targets = Vec::with_capacity(1 + app.more_targets.len());
                    for target in std::iter::once(first).chain(&app.more_targets) {
                        let upstream = HttpUpstream::new(
                            &app.name,
                            target,
                            app.public.base_path(),
                            UpstreamTimeouts {
                                connect: timeouts.upstream_connect,
                                inactivity: timeouts.upstream_inactivity,
                                total: timeouts.upstream_response,
                            },
                        )?;
                        targets.push((upstream, target));
                    }
                    let balancer = Arc::new(Balancer::new(
                        Arc::from(app.name.as_str()),
                        &app.public,
                        targets,
                        app.load_balancing,
                        app.health.clone(),
                        metrics,
                    )?);
                    balancer.spawn_checks();
                    UpstreamPlan::Http(balancer)
                }
            };
            let mut plan = AppPlan::new(&app.name, upstream, metrics);
            if let UpstreamPlan::Http(_) = plan.upstream {
                plan.truncated = Some(
                    metrics
                        .upstream_errors
                        .get_or_create(&UpstreamErrorLabels {
                            app: plan.name.clone(),
                            kind: "truncated",
                        })
                        .clone(),
                );
            }
            plan.upstream_host_header = app.upstream_host_header;
            plan.rewrite_body = app.rewrite_body;
            for (status, page) in &app.error_pages {
                let page = match page {
                    portcullis_config::ErrorPage::Redirect(url) => {
                        crate::respond::CustomErrorPage::Redirect(url.clone())
                    }
                    portcullis_config::ErrorPage::File(path) => {
                        crate::respond::CustomErrorPage::Html(
                            std::fs::read(path)
                                .map_err(|e| Error::App {
                                    app: app.name.clone(),
                                    reason: format!("error page {}: {e}", path.display()),
                                })?
                                .into(),
                        )
                    }
                };
                plan.error_pages.push((*status, page));
            }
            if let Some(auth) = &app.auth {
                let phase = phases.get(&app.name).cloned().ok_or_else(|| Error::App {
                    app: app.name.clone(),
                    reason: "auth is set but no auth phase was compiled for it".into(),
                })?;
                gateway_cookies.push(auth.session_cookie.clone());
                gateway_cookies.push(auth.request_cookie.clone());
                plan.auth = Some(phase);
            }
            apps.push(plan);
        }
        if let Some(idp) = &config.idp {
            let service = services.idp.clone().ok_or_else(|| Error::App {
                app: "idp".into(),
                reason: "[idp] is configured but no IdP service was wired in".into(),
            })?;
            routes.insert(
                &idp.public.host,
                idp.public.port,
                &idp.public.path_prefix,
                apps.len(),
            );
            apps.push(AppPlan::new("idp", UpstreamPlan::Local(service), metrics));
        }
        let route_cookie = RouteCookie::for_cluster(&config.cluster);
        if let Some(route) = &route_cookie {
            gateway_cookies.push(route.name.clone());
        }
        Ok(Plan {
            route_cookie,
            routes,
            apps,
            access_log: config.log.access_log,
            default_port: 443,
            gateway_cookies,
            shard: worker,
            trusted_proxies: TrustedProxies::new(config.server.trusted_proxies.iter().copied()),
        })
    }
}
