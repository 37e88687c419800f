//! One multiplexed connection to Redis per process, shared by every Redis
//! backend: the async client's connection manager (reconnects with
//! backoff, resubscribes pub/sub after a reconnect), a readiness flag
//! driven by a health probe, and a generation counter that moves each time
//! the connection comes back, so listeners re-sync what pub/sub may have
//! dropped while it was down. Behind Sentinel the probe also checks that
//! the server is still the master, and moves the connection to the one
//! the sentinels name after a failover (see [`super::sentinel`]).

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use dashmap::DashMap;
use rand::RngCore;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion, PushKind, RedisError, Role, Value};
use tokio::sync::{mpsc, watch};

use super::sentinel::MasterFollower;
use crate::encoding::hex;
use crate::error::StoreError;

/// Which servers to talk to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisEndpoint {
    /// One standalone server: `redis://host:port/db` or `rediss://…`.
    Url(String),
    /// The master the sentinels at `nodes` know as `master`. The path of
    /// the node URLs (`/db`) names the master's database.
    Sentinel { master: String, nodes: Vec<String> },
}

/// Where and how to reach Redis.
#[derive(Clone)]
pub struct RedisOptions {
    pub endpoint: RedisEndpoint,
    pub username: Option<String>,
    pub password: Option<String>,
    /// PEM CA bundle for `rediss://` instead of the system roots.
    pub tls_ca_pem: Option<Vec<u8>>,
    /// Prepended to every key and channel; used as a hash tag, so on Redis
    /// Cluster all of one deployment's keys share a slot and the
    /// multi-key scripts stay atomic.
    pub key_prefix: String,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    /// How often readiness is probed with PING.
    pub probe_interval: Duration,
}

impl fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOptions")
            .field("endpoint", &self.endpoint)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .finish()
    }
}

impl RedisOptions {
    /// Defaults for everything but the address of a standalone server.
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_endpoint(RedisEndpoint::Url(url.into()))
    }

    /// Defaults for everything but the sentinels and the master's name.
    pub fn sentinel(master: impl Into<String>, nodes: Vec<String>) -> Self {
        Self::with_endpoint(RedisEndpoint::Sentinel {
            master: master.into(),
            nodes,
        })
    }

    /// Defaults for everything but where Redis is.
    pub fn with_endpoint(endpoint: RedisEndpoint) -> Self {
        Self {
            endpoint,
            username: None,
            password: None,
            tls_ca_pem: None,
            key_prefix: "portcullis:".to_owned(),
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_millis(500),
            probe_interval: Duration::from_millis(500),
        }
    }
}

/// A handle on the shared connection; cheap to clone.
#[derive(Clone)]
pub struct RedisConnection {
    inner: Arc<Inner>,
}

struct Inner {
    /// Behind Sentinel, replaced when the master moves; empty until the
    /// sentinels first named one.
    manager: RwLock<Option<ConnectionManager>>,
    prefix: String,
    /// Distinguishes this process's own publications from its peers'.
    instance: String,
    listeners: DashMap<String, mpsc::UnboundedSender<Vec<u8>>>,
    ready: watch::Sender<bool>,
    /// UNKNOWN until the first probe answers or fails, then UP or DOWN:
    /// commands are tried unless Redis is known to be down.
    state: AtomicU8,
    generation: watch::Sender<u64>,
}

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConnection")
            .field("prefix", &self.inner.prefix)
            .field("ready", &*self.inner.ready.borrow())
            .finish()
    }
}

impl RedisConnection {
    /// Builds the connection without waiting for Redis: a process started
    /// while Redis is down starts not-ready and becomes ready when Redis
    /// answers. Must be called inside a tokio runtime (it spawns the probe
    /// and the pub/sub dispatcher).
    pub fn open(options: &RedisOptions) -> Result<Self, StoreError> {
        let (push_tx, push_rx) = mpsc::unbounded_channel();
        // Every manager, the ones made after a failover included, pushes
        // into the one dispatcher.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.command_timeout))
            .set_max_delay(Duration::from_secs(2))
            .set_push_sender(push_tx)
            .set_automatic_resubscription();
        let (manager, follower) = match &options.endpoint {
            RedisEndpoint::Url(url) => {
                let client = client(options, url).map_err(unavailable)?;
                let manager =
                    ConnectionManager::new_lazy_with_config(client, config).map_err(unavailable)?;
                (Some(manager), None)
            }
            RedisEndpoint::Sentinel { master, nodes } => (
                None,
                Some(MasterFollower::new(options, master, nodes, config)?),
            ),
        };
        let mut instance = [0u8; 8];
        rand::rng().fill_bytes(&mut instance);
        let inner = Arc::new(Inner {
            manager: RwLock::new(manager),
            prefix: format!("{{{}}}", options.key_prefix),
            instance: hex(&instance),
            listeners: DashMap::new(),
            ready: watch::channel(false).0,
            state: AtomicU8::new(UNKNOWN),
            generation: watch::channel(0).0,
        });
        tokio::spawn(dispatch(Arc::downgrade(&inner), push_rx));
        tokio::spawn(probe(
            Arc::downgrade(&inner),
            options.probe_interval,
            options.command_timeout,
            follower,
        ));
        Ok(Self { inner })
    }

    /// The hash-tagged prefix every key of this deployment starts with.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    pub(crate) fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// A connection to run commands on (a clone of the multiplexed one),
    /// or at once `Unavailable` while the probe finds Redis down: a request
    /// then gets its 503 without waiting out a reconnect.
    pub(crate) fn commands(&self) -> Result<ConnectionManager, StoreError> {
        if self.inner.state.load(Ordering::Acquire) == DOWN {
            return Err(unreachable());
        }
        self.always()
    }

    /// The connection whatever the probe says (re-sync, best-effort
    /// cleanup); `Unavailable` only while no master is known yet.
    pub(crate) fn always(&self) -> Result<ConnectionManager, StoreError> {
        self.inner.current().ok_or_else(unreachable)
    }

    /// Whether the last probe (or command) found Redis answering.
    pub fn is_ready(&self) -> bool {
        *self.inner.ready.borrow()
    }

    /// Follows readiness: for `/readyz` and for waiting in tests.
    pub fn readiness(&self) -> watch::Receiver<bool> {
        self.inner.ready.subscribe()
    }

    /// Moves each time the connection comes back after being down.
    pub(crate) fn generations(&self) -> watch::Receiver<u64> {
        self.inner.generation.subscribe()
    }

    /// Messages published on `channel`, this process's own included. The
    /// subscription is made as soon as Redis answers (a store may be built
    /// while Redis is down) and survives reconnects.
    pub(crate) fn listen(&self, channel: &str) -> mpsc::UnboundedReceiver<Vec<u8>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner.listeners.insert(channel.to_owned(), tx);
        subscribe(Arc::downgrade(&self.inner), channel.to_owned());
        rx
    }
}

impl Inner {
    fn current(&self) -> Option<ConnectionManager> {
        // A poisoned lock still holds a usable manager: only a clone or a
        // replacement ever happens under it.
        match self.manager.read() {
            Ok(manager) => manager.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts the manager for a new master in place and subscribes it to
    /// every channel listened on: its automatic resubscription only covers
    /// what was subscribed through it.
    fn replace(self: &Arc<Self>, manager: ConnectionManager) {
        match self.manager.write() {
            Ok(mut current) => *current = Some(manager),
            Err(poisoned) => *poisoned.into_inner() = Some(manager),
        }
        let channels: Vec<String> = self.listeners.iter().map(|l| l.key().clone()).collect();
        for channel in channels {
            subscribe(Arc::downgrade(self), channel);
        }
    }
}

/// Subscribes the current manager to `channel`, retrying until Redis
/// answers; a manager that replaces it meanwhile is the one retried on.
fn subscribe(inner: Weak<Inner>, channel: String) {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(20);
        loop {
            let Some(manager) = inner.upgrade().map(|i| i.current()) else {
                return;
            };
            if let Some(mut commands) = manager {
                if commands.subscribe(&channel).await.is_ok() {
                    return;
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    });
}

fn unreachable() -> StoreError {
    StoreError::Unavailable("session store unreachable".to_owned())
}

fn client(options: &RedisOptions, url: &str) -> Result<redis::Client, RedisError> {
    let info = url.into_connection_info()?;
    let mut settings = info.redis_settings().clone();
    if let Some(username) = &options.username {
        settings = settings.set_username(username);
    }
    if let Some(password) = &options.password {
        settings = settings.set_password(password);
    }
    // RESP3: pub/sub pushes share the command connection.
    settings = settings.set_protocol(ProtocolVersion::RESP3);
    let info = info.set_redis_settings(settings);
    match &options.tls_ca_pem {
        Some(ca) => redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(ca.clone()),
            },
        ),
        None => redis::Client::open(info),
    }
}

pub(crate) fn unavailable(error: RedisError) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

/// Routes pub/sub pushes to their listeners and notes disconnections.
async fn dispatch(inner: Weak<Inner>, mut pushes: mpsc::UnboundedReceiver<redis::PushInfo>) {
    while let Some(push) = pushes.recv().await {
        let Some(inner) = inner.upgrade() else { return };
        match push.kind {
            PushKind::Message => {
                let mut data = push.data.into_iter();
                let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) =
                    (data.next(), data.next())
                else {
                    continue;
                };
                let channel = String::from_utf8_lossy(&channel);
                if let Some(listener) = inner.listeners.get(channel.as_ref()) {
                    let _ = listener.send(payload);
                }
            }
            PushKind::Disconnection => set_ready(&inner, false),
            _ => {}
        }
    }
}

/// PINGs Redis every `interval`; readiness follows the answers. Behind
/// Sentinel the probe asks for the server's role instead, and while the
/// server is not a master it asks the sentinels where the master went.
async fn probe(
    inner: Weak<Inner>,
    interval: Duration,
    bound: Duration,
    mut follower: Option<MasterFollower>,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let sentinel = follower.is_some();
        let mut answered = healthy(inner.current(), sentinel, bound).await;
        if !answered {
            if let Some(follower) = follower.as_mut() {
                // Fail fast from now on, not after the sentinels answered.
                set_ready(&inner, false);
                if let Some(manager) = follower.moved().await {
                    inner.replace(manager);
                    answered = healthy(inner.current(), sentinel, bound).await;
                }
            }
        }
        set_ready(&inner, answered);
    }
}

/// Whether `manager` answers within `bound`, and behind Sentinel whether
/// it answers as the master: a demoted one answers reads but refuses every
/// write. The bound matters while the server is gone: a command then waits
/// out the manager's whole series of reconnect attempts (seconds), which
/// would hold up the move to a new master. Giving up does not stop the
/// reconnect, which runs on its own task.
async fn healthy(manager: Option<ConnectionManager>, sentinel: bool, bound: Duration) -> bool {
    let Some(mut commands) = manager else {
        return false;
    };
    let check = async {
        if sentinel {
            matches!(
                redis::cmd("ROLE").query_async::<Role>(&mut commands).await,
                Ok(Role::Primary { .. })
            )
        } else {
            redis::cmd("PING")
                .query_async::<String>(&mut commands)
                .await
                .is_ok()
        }
    };
    tokio::time::timeout(bound, check).await.unwrap_or(false)
}

fn set_ready(inner: &Inner, up: bool) {
    inner
        .state
        .store(if up { UP } else { DOWN }, Ordering::Release);
    let changed = inner.ready.send_if_modified(|ready| {
        let changed = *ready != up;
        *ready = up;
        changed
    });
    if !changed {
        return;
    }
    if up {
        inner.generation.send_modify(|g| *g += 1);
        tracing::info!(prefix = %inner.prefix, "session store reachable");
    } else {
        tracing::warn!(prefix = %inner.prefix, "session store unreachable");
    }
}
