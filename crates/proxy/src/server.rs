//! The running proxy: start, reload and drain. Owns the listeners, the worker threads and the
//! connection tracker; see `docs/architecture.md` for the lifecycle.
//!
//! Thread-per-core: each worker is an OS thread running a single-threaded
//! Tokio runtime with its own copy of the plan (and so its own upstream
//! pools). A client connection, its upstream connection and any tunnel all
//! live on one thread, so a request never wakes another core — the same
//! reason nginx runs one process per core. Every worker accepts on a
//! duplicate of the same listening socket, so an idle worker picks up the
//! next connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use portcullis_config::Config;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{watch, Notify};
use tokio_rustls::TlsAcceptor;

use crate::conn::{self, Ended, Limits, Role};
use crate::descriptors::{self, ADMIN_MAX_CONNECTIONS};
use crate::error::Error;
use crate::local::Services;
use crate::log_rate::LogRate;
use crate::metrics::{ListenerLabels, Metrics, ReloadLabels};
use crate::pipeline::Shared;
use crate::plan::{AuthPhases, Plan};
use crate::tls;

/// Pending connections the kernel queues per listener.
const LISTEN_BACKLOG: u32 = 1024;

/// The addresses actually bound (ports resolved when the config asked for 0).
#[derive(Debug, Clone)]
pub struct ListenAddrs {
    pub https: Vec<SocketAddr>,
    pub http: Vec<SocketAddr>,
    pub admin: Option<SocketAddr>,
}

/// Counts open connections so a drain knows when it is done, and so a
/// listener knows when it is at its budget.
struct Tracker {
    open: AtomicUsize,
    idle: Notify,
}

struct Tracked(Arc<Tracker>, Arc<Metrics>);

impl Tracker {
    async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.open.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Counts without touching metrics (for accept loops).
    fn hold(self: &Arc<Self>) -> Held {
        self.open.fetch_add(1, Ordering::AcqRel);
        Held(self.clone())
    }

    /// Counts a public connection; also returns how many are open with it.
    fn enter(self: &Arc<Self>, metrics: &Arc<Metrics>) -> (Tracked, usize) {
        let open = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        metrics.open_connections.inc();
        (Tracked(self.clone(), metrics.clone()), open)
    }

    fn new() -> Arc<Self> {
        Arc::new(Tracker {
            open: AtomicUsize::new(0),
            idle: Notify::new(),
        })
    }
}

struct Held(Arc<Tracker>);

impl Drop for Held {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
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

/// What every worker shares: certificate, limits, budgets, drain and stop
/// signals.
#[derive(Clone)]
struct Common {
    acceptor: Arc<ArcSwap<TlsAcceptor>>,
    limits: Arc<ArcSwap<Limits>>,
    /// Connections on the public listeners (TLS and redirect); the drain
    /// waits for zero.
    tracker: Arc<Tracker>,
    /// Public connections beyond which new ones are shed; set on reload.
    max_connections: Arc<AtomicUsize>,
    /// Connections on the management listener: its own budget, outside the
    /// drain, so it answers (`/readyz` 503) until the process exits.
    admin: Arc<Tracker>,
    /// Public accept loops still holding a listening socket; a drain waits
    /// for zero so that "draining" really means new connections are refused.
    accepting: Arc<Tracker>,
    /// `true` once a drain begins: stop accepting, finish connections.
    draining: watch::Receiver<bool>,
    /// `true` once the workers stop: the management listener closes.
    stopping: watch::Receiver<bool>,
    /// Shedding (per budget, so a public flood does not hide the admin
    /// listener's) and failed accepts are logged once per interval.
    shed_public_log: Arc<LogRate>,
    shed_admin_log: Arc<LogRate>,
    accept_log: Arc<LogRate>,
}

/// A running proxy: its listeners, workers and plans.
pub struct Server {
    workers: Vec<Arc<Shared>>,
    services: Services,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    common: Common,
    addrs: ListenAddrs,
    draining: watch::Sender<bool>,
    /// `true` ends the worker threads (after a drain, or on drop).
    stop: watch::Sender<bool>,
    configured: (Vec<SocketAddr>, Vec<SocketAddr>, Option<SocketAddr>),
}

fn limits(config: &Config) -> Limits {
    Limits {
        header_read: config.server.timeouts.header_read,
        idle: config.server.timeouts.idle,
        max_header_bytes: config.server.max_header_bytes,
        max_headers: config.server.max_headers,
    }
}

/// `[server] max_connections`, or what the descriptor limit allows. A
/// configured budget the limit cannot hold is kept, with a warning: the
/// operator may raise the limit without restarting us.
fn max_connections(config: &Config) -> usize {
    let limit = descriptors::current();
    match (config.server.max_connections, limit) {
        (Some(configured), Ok(limit)) => {
            if descriptors::needed(configured) > limit.soft {
                tracing::warn!(
                    max_connections = configured,
                    descriptors.soft = limit.soft,
                    descriptors.needed = descriptors::needed(configured),
                    "max_connections needs more file descriptors than the limit allows; raise LimitNOFILE"
                );
            }
            configured
        }
        (Some(configured), Err(_)) => configured,
        (None, Ok(limit)) => descriptors::budget(limit),
        (None, Err(e)) => {
            let fallback = descriptors::budget(descriptors::NofileLimit {
                soft: 1024,
                hard: 1024,
            });
            tracing::warn!(error = %e, max_connections = fallback, "cannot read the descriptor limit");
            fallback
        }
    }
}

fn bind(addr: SocketAddr) -> Result<(std::net::TcpListener, SocketAddr), Error> {
    let error = |source| Error::Bind { addr, source };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(error)?;
    // Lets a restarted gateway bind while old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true).map_err(error)?;
    socket.bind(addr).map_err(error)?;
    let listener = socket.listen(LISTEN_BACKLOG).map_err(error)?;
    let local = listener.local_addr().map_err(error)?;
    // Deregistered from this runtime: each worker registers its own copy.
    let listener = listener.into_std().map_err(error)?;
    Ok((listener, local))
}

impl Server {
    /// Binds every listener and starts the workers. Must be called inside a
    /// Tokio runtime (used only to create the sockets).
    pub async fn start(config: &Config, services: Services) -> Result<Server, Error> {
        let metrics = Metrics::new(config.server.workers);
        let ready = Arc::new(AtomicBool::new(false));
        let server_tls = tls::server_config(&config.server.tls.cert, &config.server.tls.key)?;
        let (draining, draining_rx) = watch::channel(false);
        let (stop, stopping) = watch::channel(false);
        let budget = max_connections(config);
        metrics
            .connection_limit
            .set(i64::try_from(budget).unwrap_or(i64::MAX));
        let common = Common {
            acceptor: Arc::new(ArcSwap::from_pointee(TlsAcceptor::from(server_tls))),
            limits: Arc::new(ArcSwap::from_pointee(limits(config))),
            tracker: Tracker::new(),
            max_connections: Arc::new(AtomicUsize::new(budget)),
            admin: Tracker::new(),
            accepting: Tracker::new(),
            draining: draining_rx,
            stopping,
            shed_public_log: Arc::new(LogRate::default()),
            shed_admin_log: Arc::new(LogRate::default()),
            accept_log: Arc::new(LogRate::default()),
        };
        let mut addrs = ListenAddrs {
            https: Vec::new(),
            http: Vec::new(),
            admin: None,
        };
        let mut listeners = Vec::new();
        for addr in &config.server.https {
            let (listener, local) = bind(*addr)?;
            addrs.https.push(local);
            listeners.push((listener, Role::Proxy));
        }
        // With a configured port of 0 (tests), redirect to the port actually bound.
        let https_port = match config.server.https.first() {
            Some(a) if a.port() == 0 => addrs.https.first().map_or(443, |a| a.port()),
            _ => config.server.https_redirect_port,
        };
        for addr in &config.server.http {
            let (listener, local) = bind(*addr)?;
            addrs.http.push(local);
            listeners.push((listener, Role::Redirect { https_port }));
        }
        if let Some(admin) = &config.admin {
            let (listener, local) = bind(admin.listen)?;
            addrs.admin = Some(local);
            listeners.push((listener, Role::Admin));
        }

        let phases = compile_auth(config, &services)?;
        let mut workers = Vec::with_capacity(config.server.workers);
        for index in 0..config.server.workers {
            let shared = Arc::new(Shared {
                plan: ArcSwap::from_pointee(Plan::compile(
                    config, &metrics, &services, &phases, index,
                )?),
                metrics: metrics.clone(),
                ready: ready.clone(),
                store_ready: services.store_ready.clone(),
            });
            let mut own = Vec::with_capacity(listeners.len());
            for (listener, role) in &listeners {
                let copy = listener.try_clone().map_err(|source| Error::Bind {
                    addr: listener
                        .local_addr()
                        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))),
                    source,
                })?;
                // The management listener stays open through a drain, so
                // the drain does not wait for its accept loops.
                let held = match role {
                    Role::Admin => None,
                    Role::Proxy | Role::Redirect { .. } => Some(common.accepting.hold()),
                };
                own.push((copy, *role, held));
            }
            spawn_worker(index, own, shared.clone(), common.clone(), stop.subscribe())?;
            workers.push(shared);
        }
        ready.store(true, Ordering::Release);
        tracing::info!(
            https = ?addrs.https,
            http = ?addrs.http,
            admin = ?addrs.admin,
            apps = config.apps.len(),
            workers = config.server.workers,
            max_connections = budget,
            "gateway listening"
        );
        Ok(Server {
            workers,
            services,
            metrics,
            ready,
            common,
            addrs,
            draining,
            stop,
            configured: (
                config.server.https.clone(),
                config.server.http.clone(),
                config.admin.as_ref().map(|a| a.listen),
            ),
        })
    }

    /// The counters and gauges every worker writes (one set per process).
    pub fn metrics(&self) -> Option<Arc<Metrics>> {
        self.workers.first().map(|w| w.metrics.clone())
    }

    pub fn addrs(&self) -> &ListenAddrs {
        &self.addrs
    }

    /// Publishes a new plan (routes, upstreams, timeouts, certificate) to
    /// every worker. Requests already running finish on the old plan. On
    /// error nothing changes. Listener addresses and the worker count are
    /// fixed at start and need a restart.
    pub fn reload(&self, config: &Config) -> Result<(), Error> {
        let result = self.try_reload(config);
        self.count_reload(if result.is_ok() { "success" } else { "failure" });
        result
    }

    /// A reload the binary refused before it reached the server (the file
    /// did not load): counted as a failure like any other.
    pub fn reload_refused(&self) {
        self.count_reload("failure");
    }

    fn count_reload(&self, result: &'static str) {
        self.metrics
            .reloads
            .get_or_create(&ReloadLabels { result })
            .inc();
    }

    fn try_reload(&self, config: &Config) -> Result<(), Error> {
        let phases = compile_auth(config, &self.services)?;
        let plans = self
            .workers
            .iter()
            .enumerate()
            .map(|(worker, _)| {
                Plan::compile(config, &self.metrics, &self.services, &phases, worker)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let server_tls = tls::server_config(&config.server.tls.cert, &config.server.tls.key)?;
        let configured = (
            config.server.https.clone(),
            config.server.http.clone(),
            config.admin.as_ref().map(|a| a.listen),
        );
        if configured != self.configured || config.server.workers != self.workers.len() {
            tracing::warn!(
                "listener addresses or worker count changed; they take effect only after a restart"
            );
        }
        for (worker, plan) in self.workers.iter().zip(plans) {
            worker.plan.store(Arc::new(plan));
        }
        self.common
            .acceptor
            .store(Arc::new(TlsAcceptor::from(server_tls)));
        self.common.limits.store(Arc::new(limits(config)));
        let budget = max_connections(config);
        self.common.max_connections.store(budget, Ordering::Relaxed);
        self.metrics
            .connection_limit
            .set(i64::try_from(budget).unwrap_or(i64::MAX));
        Ok(())
    }

    /// Stops accepting on the public listeners, asks every connection to
    /// finish its in-flight requests and waits up to `deadline` for them.
    /// The management listener keeps answering (`/readyz` 503) until the
    /// `Server` is dropped, which stops the workers.
    pub async fn shutdown(&self, deadline: Duration) -> Drained {
        self.ready.store(false, Ordering::Release);
        let _ = self.draining.send(true);
        let started = tokio::time::Instant::now();
        let _ = tokio::time::timeout(deadline, self.common.accepting.wait_idle()).await;
        tracing::info!("listeners closed; draining open connections");
        let tracker = self.common.tracker.clone();
        let _ = tokio::time::timeout(
            deadline.saturating_sub(started.elapsed()),
            tracker.wait_idle(),
        )
        .await;
        Drained {
            abandoned: tracker.open.load(Ordering::Acquire),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Every app's auth phase, compiled once for all workers.
fn compile_auth(config: &Config, services: &Services) -> Result<AuthPhases, Error> {
    let mut phases = AuthPhases::new();
    for app in config.apps.iter().filter(|app| app.auth.is_some()) {
        let provider = services.auth.as_ref().ok_or_else(|| Error::App {
            app: app.name.clone(),
            reason: "auth is set but no auth provider was wired in".into(),
        })?;
        let phase = provider
            .compile(config, app)
            .map_err(|source| Error::Auth {
                app: app.name.clone(),
                source,
            })?;
        phases.insert(app.name.clone(), phase);
    }
    Ok(phases)
}

fn spawn_worker(
    index: usize,
    listeners: Vec<(std::net::TcpListener, Role, Option<Held>)>,
    shared: Arc<Shared>,
    common: Common,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Runtime { source })?;
    std::thread::Builder::new()
        .name(format!("portcullis-worker-{index}"))
        .spawn(move || {
            runtime.block_on(async move {
                for (listener, role, held) in listeners {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => {
                            tokio::spawn(accept_loop(
                                listener,
                                role,
                                shared.clone(),
                                common.clone(),
                                held,
                            ));
                        }
                        Err(e) => {
                            tracing::error!(worker = index, error = %e, "cannot register listener")
                        }
                    }
                }
                let _ = stop.wait_for(|stopped| *stopped).await;
            });
            // Dropping the runtime here ends whatever connections outlived the drain.
        })
        .map_err(|source| Error::Runtime { source })?;
    Ok(())
}

/// Accepts until a drain begins (the management listener: until the
/// workers stop), then closes its socket and releases `held`, so the drain
/// knows this worker no longer accepts. A listener at its budget closes
/// new connections at once.
async fn accept_loop(
    listener: TcpListener,
    role: Role,
    shared: Arc<Shared>,
    common: Common,
    held: Option<Held>,
) {
    let mut closed = match role {
        Role::Admin => common.stopping.clone(),
        Role::Proxy | Role::Redirect { .. } => common.draining.clone(),
    };
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = closed.wait_for(|d| *d) => {
                drop(listener);
                drop(held);
                return;
            }
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Usually EMFILE: back off instead of spinning on the error,
                // and say so once per interval rather than per attempt.
                if let Some(left_out) = common.accept_log.note() {
                    tracing::warn!(error = %e, left_out, "accept failed");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let limits = **common.limits.load();
        match role {
            Role::Proxy | Role::Redirect { .. } => {
                let (guard, open) = common.tracker.enter(&shared.metrics);
                let budget = common.max_connections.load(Ordering::Relaxed);
                if open > budget {
                    drop(guard);
                    shed(
                        &common.shed_public_log,
                        &shared.metrics,
                        "public",
                        budget,
                        stream,
                    );
                    continue;
                }
                let draining = common.draining.clone();
                if let Role::Redirect { .. } = role {
                    tokio::spawn(async move {
                        conn::serve_plain(stream, peer, role, shared, limits, draining).await;
                        drop(guard);
                    });
                    continue;
                }
                let acceptor = (**common.acceptor.load()).clone();
                tokio::spawn(async move {
                    let metrics = shared.metrics.clone();
                    let ended =
                        conn::serve_tls(stream, peer, acceptor, shared, limits, draining).await;
                    if ended == Ended::HeadTimeout {
                        metrics.header_timeouts.inc();
                    }
                    drop(guard);
                });
            }
            Role::Admin => {
                let held = common.admin.hold();
                if common.admin.open.load(Ordering::Acquire) > ADMIN_MAX_CONNECTIONS {
                    drop(held);
                    shed(
                        &common.shed_admin_log,
                        &shared.metrics,
                        "admin",
                        ADMIN_MAX_CONNECTIONS,
                        stream,
                    );
                    continue;
                }
                let stopping = common.stopping.clone();
                tokio::spawn(async move {
                    conn::serve_plain(stream, peer, role, shared, limits, stopping).await;
                    drop(held);
                });
            }
        }
    }
}

/// Closes a connection over its listener's budget at once: cheaper for us
/// than a TLS handshake, and clearer to a client than a hang. Counted
/// every time, logged once per interval.
fn shed(
    log: &LogRate,
    metrics: &Metrics,
    listener: &'static str,
    budget: usize,
    stream: tokio::net::TcpStream,
) {
    // Counted before the close: whoever sees the connection closed (a
    // scrape, a test) must find it counted.
    metrics
        .connections_shed
        .get_or_create(&ListenerLabels { listener })
        .inc();
    if let Some(left_out) = log.note() {
        tracing::warn!(
            listener,
            max_connections = budget,
            left_out,
            "connection limit reached; new connections are closed at once"
        );
    }
    drop(stream);
}
