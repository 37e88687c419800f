//! One multiplexed connection to Redis per process, shared by every Redis
//! backend: the async client's connection manager (reconnects with
//! backoff, resubscribes pub/sub after a reconnect), a readiness flag
//! driven by a health probe, and a generation counter that moves each time
//! the connection comes back, so listeners re-sync what pub/sub may have
//! dropped while it was down. Behind Sentinel the probe also checks that
//! the server is still the master, and moves the connection to the one
//! the sentinels name after a failover (see [`super::sentinel`]). On Redis
//! Cluster the connection is the cluster client's, and the probe checks
//! that the deployment's slot is served (see [`super::cluster`]).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use dashmap::DashMap;
use rand::RngCore;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, IntoConnectionInfo, Pipeline, ProtocolVersion, PushKind, RedisError, RedisFuture,
    RedisResult, Role, Value,
};
use tokio::sync::{mpsc, watch};

use super::cluster::ClusterSeeds;
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
    /// The Redis Cluster the seed `nodes` belong to (database 0, the only
    /// one a cluster has).
    Cluster { nodes: Vec<String> },
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

    /// Defaults for everything but a Redis Cluster's seed nodes.
    pub fn cluster(nodes: Vec<String>) -> Self {
        Self::with_endpoint(RedisEndpoint::Cluster { nodes })
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

/// What the stores run their commands on: one server's connection
/// manager, or the cluster client that routes each command to the node
/// serving its slot. Cheap to clone, like both of them.
#[derive(Clone)]
pub(crate) enum Commands {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Commands {
    async fn subscribe(&mut self, channel: &str) -> RedisResult<()> {
        match self {
            Self::Single(manager) => manager.subscribe(channel).await,
            Self::Cluster(cluster) => cluster.subscribe(channel).await,
        }
    }
}

impl ConnectionLike for Commands {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(manager) => manager.req_packed_command(cmd),
            Self::Cluster(cluster) => cluster.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(manager) => manager.req_packed_commands(pipeline, offset, count),
            Self::Cluster(cluster) => cluster.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(manager) => manager.get_db(),
            Self::Cluster(cluster) => cluster.get_db(),
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
    /// sentinels first named one. On a cluster, replaced when a fresh
    /// client is built from the seeds.
    manager: RwLock<Option<Commands>>,
    prefix: String,
    /// Distinguishes this process's own publications from its peers'.
    instance: String,
    listeners: DashMap<String, mpsc::UnboundedSender<Vec<u8>>>,
    ready: watch::Sender<bool>,
    /// UNKNOWN until the first probe answers or fails, then UP or DOWN:
    /// commands are tried unless Redis is known to be down.
    state: AtomicU8,
    generation: watch::Sender<u64>,
    /// On a cluster: one node's connection dropped, and what was published
    /// meanwhile may be lost even though the probe's node answers. The
    /// next answered probe moves the generation.
    resync_due: AtomicBool,
    cluster: bool,
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
            .set_push_sender(push_tx.clone())
            .set_automatic_resubscription();
        let prefix = format!("{{{}}}", options.key_prefix);
        let (manager, follow) = match &options.endpoint {
            RedisEndpoint::Url(url) => {
                let client = client(options, url).map_err(unavailable)?;
                let manager =
                    ConnectionManager::new_lazy_with_config(client, config).map_err(unavailable)?;
                (Some(Commands::Single(manager)), Follow::Fixed)
            }
            RedisEndpoint::Sentinel { master, nodes } => (
                None,
                Follow::Sentinel(MasterFollower::new(options, master, nodes, config)?),
            ),
            RedisEndpoint::Cluster { nodes } => {
                let seeds = ClusterSeeds::new(options, nodes, push_tx)?;
                (
                    Some(Commands::Cluster(seeds.connect())),
                    Follow::Cluster {
                        seeds,
                        key: format!("{prefix}probe"),
                        failures: 0,
                    },
                )
            }
        };
        let cluster = matches!(follow, Follow::Cluster { .. });
        let mut instance = [0u8; 8];
        rand::rng().fill_bytes(&mut instance);
        let inner = Arc::new(Inner {
            manager: RwLock::new(manager),
            prefix,
            instance: hex(&instance),
            listeners: DashMap::new(),
            ready: watch::channel(false).0,
            state: AtomicU8::new(UNKNOWN),
            generation: watch::channel(0).0,
            resync_due: AtomicBool::new(false),
            cluster,
        });
        tokio::spawn(dispatch(Arc::downgrade(&inner), push_rx));
        tokio::spawn(probe(
            Arc::downgrade(&inner),
            options.probe_interval,
            options.command_timeout,
            follow,
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
    pub(crate) fn commands(&self) -> Result<Commands, StoreError> {
        if self.inner.state.load(Ordering::Acquire) == DOWN {
            return Err(unreachable());
        }
        self.always()
    }

    /// The connection whatever the probe says (re-sync, best-effort
    /// cleanup); `Unavailable` only while no master is known yet.
    pub(crate) fn always(&self) -> Result<Commands, StoreError> {
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
    fn current(&self) -> Option<Commands> {
        // A poisoned lock still holds a usable manager: only a clone or a
        // replacement ever happens under it.
        match self.manager.read() {
            Ok(manager) => manager.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts the connection to a new master (or a fresh cluster client) in
    /// place and subscribes it to every channel listened on: its automatic
    /// resubscription only covers what was subscribed through it.
    fn replace(self: &Arc<Self>, manager: Commands) {
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
            // One cluster node gone says nothing about the one serving
            // the deployment's slot: the probe judges readiness, and a
            // re-sync follows in any case.
            PushKind::Disconnection if inner.cluster => {
                inner.resync_due.store(true, Ordering::Release);
            }
            PushKind::Disconnection => set_ready(&inner, false),
            _ => {}
        }
    }
}

/// How the probe follows the servers besides checking them.
enum Follow {
    /// One server at a fixed address: the manager reconnects by itself.
    Fixed,
    /// Asks the sentinels where the master went when it stops answering.
    Sentinel(MasterFollower),
    /// Builds a fresh cluster client from the seeds after a few failed
    /// probes in a row.
    Cluster {
        seeds: ClusterSeeds,
        /// A key in the deployment's slot.
        key: String,
        failures: u32,
    },
}

/// Failed probes in a row after which a cluster client is rebuilt: long
/// enough for the client's own recovery (a node reconnect, a slot map
/// refresh after a failover) to come first.
const REBUILD_AFTER: u32 = 4;

/// What the probe asks.
enum Check<'a> {
    Ping,
    /// Behind Sentinel: the server's role.
    Role,
    /// On a cluster: a read of a key in the deployment's slot, which only
    /// the master serving that slot answers (any node answers PING, even
    /// one of a cluster that is down).
    Slot(&'a str),
}

/// Probes Redis every `interval`; readiness follows the answers. Behind
/// Sentinel the probe asks for the server's role, and while the server is
/// not a master it asks the sentinels where the master went. On a cluster
/// it reads from the deployment's slot.
async fn probe(inner: Weak<Inner>, interval: Duration, bound: Duration, mut follow: Follow) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let mut answered = healthy(inner.current(), &check_for(&follow), bound).await;
        match &mut follow {
            Follow::Fixed => {}
            Follow::Sentinel(follower) if !answered => {
                // Fail fast from now on, not after the sentinels answered.
                set_ready(&inner, false);
                if let Some(manager) = follower.moved().await {
                    inner.replace(Commands::Single(manager));
                    answered = healthy(inner.current(), &Check::Role, bound).await;
                }
            }
            Follow::Sentinel(_) => {}
            Follow::Cluster {
                seeds,
                key,
                failures,
            } => {
                if answered {
                    *failures = 0;
                } else {
                    *failures += 1;
                    if *failures % REBUILD_AFTER == 0 {
                        set_ready(&inner, false);
                        tracing::warn!(
                            prefix = %inner.prefix,
                            failures = *failures,
                            "Redis Cluster slot unserved: reconnecting from the seed nodes"
                        );
                        inner.replace(Commands::Cluster(seeds.connect()));
                        answered = healthy(inner.current(), &Check::Slot(key), bound).await;
                    }
                }
            }
        }
        if answered
            && inner.resync_due.swap(false, Ordering::AcqRel)
            && inner.state.load(Ordering::Acquire) == UP
        {
            // Still up, so set_ready will not move it.
            inner.generation.send_modify(|g| *g += 1);
            tracing::info!(prefix = %inner.prefix, "a Redis Cluster node reconnected: re-syncing");
        }
        set_ready(&inner, answered);
    }
}

fn check_for(follow: &Follow) -> Check<'_> {
    match follow {
        Follow::Fixed => Check::Ping,
        Follow::Sentinel(_) => Check::Role,
        Follow::Cluster { key, .. } => Check::Slot(key),
    }
}

/// Whether the connection answers `check` within `bound`; behind Sentinel
/// the server must answer as the master: a demoted one answers reads but
/// refuses every write. The bound matters while the server is gone: a
/// command then waits out the manager's whole series of reconnect
/// attempts (seconds), which would hold up the move to a new master.
/// Giving up does not stop the reconnect, which runs on its own task.
async fn healthy(link: Option<Commands>, check: &Check<'_>, bound: Duration) -> bool {
    let Some(mut commands) = link else {
        return false;
    };
    let check = async {
        match check {
            Check::Role => matches!(
                redis::cmd("ROLE").query_async::<Role>(&mut commands).await,
                Ok(Role::Primary { .. })
            ),
            Check::Ping => redis::cmd("PING")
                .query_async::<String>(&mut commands)
                .await
                .is_ok(),
            Check::Slot(key) => redis::cmd("EXISTS")
                .arg(*key)
                .query_async::<i64>(&mut commands)
                .await
                .is_ok(),
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
