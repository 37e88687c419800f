//! Start, reload and drain. Owns the listeners and the connection tracker;
//! see `REQUEST_PATH.md` for the lifecycle.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use portcullis_config::Config;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::conn::{self, Limits, Role};
use crate::error::Error;
use crate::metrics::{Metrics, ReloadLabels};
use crate::pipeline::Shared;
use crate::plan::Plan;
use crate::tls;

/// The addresses actually bound (ports resolved when the config asked for 0).
#[derive(Debug, Clone)]
pub struct ListenAddrs {
    pub https: Vec<SocketAddr>,
    pub http: Vec<SocketAddr>,
    pub admin: Option<SocketAddr>,
}

/// Counts open connections so a drain knows when it is done.
struct Tracker {
    open: AtomicUsize,
    idle: Notify,
}

struct Tracked(Arc<Tracker>, Arc<Metrics>);

impl Tracker {
    fn enter(self: &Arc<Self>, metrics: &Arc<Metrics>) -> Tracked {
        self.open.fetch_add(1, Ordering::AcqRel);
        metrics.open_connections.inc();
        Tracked(self.clone(), metrics.clone())
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.1.open_connections.dec();
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Outcome of a graceful shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Connections still open when the deadline passed (0 = clean drain).
    pub abandoned: usize,
}

/// A running gateway.
pub struct Gateway {
    shared: Arc<Shared>,
    acceptor: Arc<ArcSwap<TlsAcceptor>>,
    limits: Arc<ArcSwap<Limits>>,
    addrs: ListenAddrs,
    shutdown: watch::Sender<bool>,
    tracker: Arc<Tracker>,
    accept_tasks: Vec<JoinHandle<()>>,
    configured: (Vec<SocketAddr>, Vec<SocketAddr>, Option<SocketAddr>),
}

fn limits(config: &Config) -> Limits {
    Limits {
        header_read: config.server.timeouts.header_read,
        idle: config.server.timeouts.idle,
        max_header_bytes: config.server.max_header_bytes,
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

impl Gateway {
    /// Binds every listener and starts serving. Must run inside a Tokio runtime.
    pub async fn start(config: &Config) -> Result<Gateway, Error> {
        let metrics = Metrics::new();
        let plan = Plan::compile(config, &metrics)?;
        let server_tls = tls::server_config(&config.server.tls.cert, &config.server.tls.key)?;
        let shared = Arc::new(Shared {
            plan: ArcSwap::from_pointee(plan),
            metrics,
            ready: AtomicBool::new(false),
        });
        let acceptor = Arc::new(ArcSwap::from_pointee(TlsAcceptor::from(server_tls)));
        let limits_now = Arc::new(ArcSwap::from_pointee(limits(config)));
        let (shutdown, _) = watch::channel(false);
        let tracker = Arc::new(Tracker {
            open: AtomicUsize::new(0),
            idle: Notify::new(),
        });
        let mut addrs = ListenAddrs {
            https: Vec::new(),
            http: Vec::new(),
            admin: None,
        };
        let mut accept_tasks = Vec::new();
        let mut listeners = Vec::new();
        for addr in &config.server.https {
            let listener = bind(*addr).await?;
            addrs
                .https
                .push(listener.local_addr().map_err(|source| Error::Bind {
                    addr: *addr,
                    source,
                })?);
            listeners.push((listener, Role::Proxy));
        }
        // With a configured port of 0 (tests), redirect to the port actually bound.
        let https_port = match config.server.https.first() {
            Some(a) if a.port() == 0 => addrs.https.first().map_or(443, |a| a.port()),
            _ => config.server.https_redirect_port,
        };
        for addr in &config.server.http {
            let listener = bind(*addr).await?;
            addrs
                .http
                .push(listener.local_addr().map_err(|source| Error::Bind {
                    addr: *addr,
                    source,
                })?);
            listeners.push((listener, Role::Redirect { https_port }));
        }
        if let Some(admin) = &config.admin {
            let listener = bind(admin.listen).await?;
            addrs.admin = Some(listener.local_addr().map_err(|source| Error::Bind {
                addr: admin.listen,
                source,
            })?);
            listeners.push((listener, Role::Admin));
        }
        for (listener, role) in listeners {
            accept_tasks.push(tokio::spawn(accept_loop(
                listener,
                role,
                shared.clone(),
                acceptor.clone(),
                limits_now.clone(),
                tracker.clone(),
                shutdown.subscribe(),
            )));
        }
        shared.ready.store(true, Ordering::Release);
        tracing::info!(https = ?addrs.https, http = ?addrs.http, admin = ?addrs.admin, apps = config.apps.len(), "gateway listening");
        Ok(Gateway {
            shared,
            acceptor,
            limits: limits_now,
            addrs,
            shutdown,
            tracker,
            accept_tasks,
            configured: (
                config.server.https.clone(),
                config.server.http.clone(),
                config.admin.as_ref().map(|a| a.listen),
            ),
        })
    }

    pub fn addrs(&self) -> &ListenAddrs {
        &self.addrs
    }

    /// Publishes a new plan (routes, upstreams, timeouts, certificate).
    /// Requests already running finish on the old plan. On error nothing
    /// changes. Listener addresses are bound once and need a restart.
    pub fn reload(&self, config: &Config) -> Result<(), Error> {
        let result = self.try_reload(config);
        let label = if result.is_ok() { "success" } else { "failure" };
        self.shared
            .metrics
            .reloads
            .get_or_create(&ReloadLabels { result: label })
            .inc();
        result
    }

    fn try_reload(&self, config: &Config) -> Result<(), Error> {
        let plan = Plan::compile(config, &self.shared.metrics)?;
        let server_tls = tls::server_config(&config.server.tls.cert, &config.server.tls.key)?;
        let configured = (
            config.server.https.clone(),
            config.server.http.clone(),
            config.admin.as_ref().map(|a| a.listen),
        );
        if configured != self.configured {
            tracing::warn!("listener addresses changed; they take effect only after a restart");
        }
        self.shared.plan.store(Arc::new(plan));
        self.acceptor.store(Arc::new(TlsAcceptor::from(server_tls)));
        self.limits.store(Arc::new(limits(config)));
        Ok(())
    }

    /// Stops accepting, asks every connection to finish its in-flight
    /// requests, and waits up to `deadline` for them.
    pub async fn shutdown(self, deadline: Duration) -> Drained {
        self.shared.ready.store(false, Ordering::Release);
        let _ = self.shutdown.send(true);
        for task in &self.accept_tasks {
            task.abort();
        }
        let tracker = self.tracker.clone();
        let wait = async {
            loop {
                let notified = tracker.idle.notified();
                if tracker.open.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(deadline, wait).await;
        let abandoned = self.tracker.open.load(Ordering::Acquire);
        Drained { abandoned }
    }
}

async fn accept_loop(
    listener: TcpListener,
    role: Role,
    shared: Arc<Shared>,
    acceptor: Arc<ArcSwap<TlsAcceptor>>,
    limits: Arc<ArcSwap<Limits>>,
    tracker: Arc<Tracker>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Usually EMFILE: back off instead of spinning on the error.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let guard = tracker.enter(&shared.metrics);
        let shared = shared.clone();
        let limits = **limits.load();
        let shutdown = shutdown.clone();
        match role {
            Role::Proxy => {
                let acceptor = (**acceptor.load()).clone();
                tokio::spawn(async move {
                    conn::serve_tls(stream, peer, acceptor, shared, limits, shutdown).await;
                    drop(guard);
                });
            }
            Role::Redirect { .. } | Role::Admin => {
                tokio::spawn(async move {
                    conn::serve_plain(stream, peer, role, shared, limits, shutdown).await;
                    drop(guard);
                });
            }
        }
    }
}
