//! One multiplexed connection to Redis per process, shared by every Redis
//! backend: the async client's connection manager (reconnects with
//! backoff, resubscribes pub/sub after a reconnect), a readiness flag
//! driven by a health probe, and a generation counter that moves each time
//! the connection comes back, so listeners re-sync what pub/sub may have
//! dropped while it was down.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::DashMap;
use rand::RngCore;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion, PushKind, RedisError, Value};
use tokio::sync::{mpsc, watch};

use crate::encoding::hex;
use crate::error::StoreError;

/// Where and how to reach Redis.
#[derive(Clone)]
pub struct RedisOptions {
    /// `redis://host:port/db` or `rediss://…` for TLS.
    pub url: String,
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
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .finish()
    }
}

impl RedisOptions {
    /// Defaults for everything but the address.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
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
    manager: ConnectionManager,
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
        let client = client(options).map_err(unavailable)?;
        let (push_tx, push_rx) = mpsc::unbounded_channel();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.command_timeout))
            .set_max_delay(Duration::from_secs(2))
            .set_push_sender(push_tx)
            .set_automatic_resubscription();
        let manager =
            ConnectionManager::new_lazy_with_config(client, config).map_err(unavailable)?;
        let mut instance = [0u8; 8];
        rand::rng().fill_bytes(&mut instance);
        let inner = Arc::new(Inner {
            manager,
            prefix: format!("{{{}}}", options.key_prefix),
            instance: hex(&instance),
            listeners: DashMap::new(),
            ready: watch::channel(false).0,
            state: AtomicU8::new(UNKNOWN),
            generation: watch::channel(0).0,
        });
        tokio::spawn(dispatch(Arc::downgrade(&inner), push_rx));
        tokio::spawn(probe(Arc::downgrade(&inner), options.probe_interval));
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
            return Err(StoreError::Unavailable(
                "session store unreachable".to_owned(),
            ));
        }
        Ok(self.inner.manager.clone())
    }

    /// The connection whatever the probe says (the probe and re-sync).
    pub(crate) fn always(&self) -> ConnectionManager {
        self.inner.manager.clone()
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
        let inner = Arc::downgrade(&self.inner);
        let channel = channel.to_owned();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(20);
            loop {
                let Some(mut commands) = inner.upgrade().map(|i| i.manager.clone()) else {
                    return;
                };
                if commands.subscribe(&channel).await.is_ok() {
                    return;
                }
                drop(commands);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        });
        rx
    }
}

fn client(options: &RedisOptions) -> Result<redis::Client, RedisError> {
    let info = options.url.as_str().into_connection_info()?;
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

/// PINGs Redis every `interval`; readiness follows the answers.
async fn probe(inner: Weak<Inner>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let mut commands = inner.manager.clone();
        let answered = redis::cmd("PING")
            .query_async::<String>(&mut commands)
            .await
            .is_ok();
        set_ready(&inner, answered);
    }
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
