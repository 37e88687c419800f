//! `[cluster]` at run time: where sessions and one-time uses live. Single
//! and sticky nodes keep them in memory; shared nodes open one Redis
//! connection and put the gateway's and the IdP's stores on it, and
//! readiness follows that connection.

use std::sync::Arc;

use anyhow::Context;
use portcullis_config::OnStoreError;
use portcullis_config::{ClusterMode, Config, RedisEndpoints};
use portcullis_gateway::{GatewaySession, GatewayStores, Sessions};
use portcullis_idp::console::AdminSession;
use portcullis_idp::session::{IdpSessions, DEFAULT_IDP_ID};
use portcullis_idp::web::IdpStores;
use portcullis_session::redis::{
    CachePolicy, MacCookies, RedisConnection, RedisEndpoint, RedisLockouts, RedisOneTime,
    RedisOptions, RedisStore, RedisTickets, SealKeys,
};
use portcullis_session::{MemoryStore, NodeCookies};

/// The stores a node serves with.
pub struct Stores {
    pub gateway: GatewayStores,
    pub idp: IdpStores,
    /// Set in shared mode: whether Redis answers (`/readyz`).
    pub ready: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
}

impl Stores {
    /// In this process's memory; a sticky node's cookies name the node.
    fn memory(node: Option<&str>, sticky: bool) -> Self {
        let mut idp = IdpStores::memory();
        let mut gateway = GatewayStores::memory();
        if let Some(node) = node {
            idp.sessions = idp.sessions.on_node(node);
            if sticky {
                let cookies = Arc::new(NodeCookies::new(node));
                idp.sessions = idp.sessions.with_cookies(cookies.clone());
                gateway.sessions =
                    Sessions::with_cookies(Arc::new(MemoryStore::<GatewaySession>::new()), cookies);
            }
        }
        Self {
            gateway,
            idp,
            ready: None,
        }
    }
}

/// Opens the stores `[cluster]` asks for. Never waits for Redis: a node
/// started while Redis is down starts not-ready and becomes ready when
/// Redis answers. Must run inside a runtime.
pub fn open(config: &Config) -> anyhow::Result<Stores> {
    let cluster = &config.cluster;
    if cluster.mode != ClusterMode::Shared {
        return Ok(Stores::memory(
            cluster.node_id.as_deref(),
            cluster.mode == ClusterMode::Sticky,
        ));
    }
    let redis = cluster
        .redis
        .as_ref()
        .context("shared mode without [cluster.redis]")?;
    let endpoint = match &redis.endpoints {
        RedisEndpoints::Single(url) => RedisEndpoint::Url(url.clone()),
        RedisEndpoints::Sentinel { master, nodes } => RedisEndpoint::Sentinel {
            master: master.clone(),
            nodes: nodes.clone(),
        },
        RedisEndpoints::Cluster(nodes) => RedisEndpoint::Cluster {
            nodes: nodes.clone(),
        },
    };
    let mut options = RedisOptions::with_endpoint(endpoint);
    options.username = redis.username.clone();
    options.password = match &redis.password {
        Some(password) => Some(password.resolve().context("[cluster.redis] password")?),
        None => None,
    };
    options.tls_ca_pem = match &redis.tls_ca {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
        }
        None => None,
    };
    options.key_prefix = redis.key_prefix.clone();
    options.connect_timeout = redis.connect_timeout;
    options.command_timeout = redis.command_timeout;
    let path = cluster
        .store_key_file
        .as_ref()
        .context("shared mode without [cluster] store_key_file")?;
    let secrets = portcullis_config::read_store_keys(path)?;
    let seal = || SealKeys::from_secrets(&secrets).context("[cluster] store_key_file");
    let connection = RedisConnection::open(&options).context("opening the Redis connection")?;
    tracing::info!(
        endpoint = %endpoint_label(&options.endpoint),
        node = cluster.node_id.as_deref().unwrap_or(""),
        prefix = %redis.key_prefix,
        "sessions shared through Redis"
    );
    // Sessions in use are served from this node's cache for at most
    // revocation_staleness; every end or change any node makes evicts
    // them at once through pub/sub.
    let cache = CachePolicy {
        staleness: cluster.revocation_staleness,
        serve_cached: cluster.on_store_error == OnStoreError::ServeCached,
    };
    // Cookie values carry a MAC under the same ring: a forged or guessed
    // one is refused before it costs a Redis round trip.
    let cookies = Arc::new(MacCookies::new(seal()?));
    // The sign-in forms' CSRF fields verify on any node.
    let csrf_key = cookies.keys().derived("idp csrf");
    let gateway = GatewayStores {
        sessions: Sessions::with_cookies(
            Arc::new(RedisStore::with_cache(
                connection.clone(),
                "gw",
                seal()?,
                cache,
            )),
            cookies.clone(),
        ),
        one_time: Arc::new(RedisOneTime::with_default_capacity(
            connection.clone(),
            "gw",
        )),
    };
    let idp = IdpStores {
        sessions: IdpSessions::new(
            Arc::new(RedisStore::with_cache(
                connection.clone(),
                "idp",
                seal()?,
                cache,
            )),
            DEFAULT_IDP_ID,
        )
        .on_node(cluster.node_id.clone().unwrap_or_default())
        .with_cookies(cookies),
        one_time: Arc::new(RedisOneTime::with_default_capacity(
            connection.clone(),
            "idp",
        )),
        tickets: Arc::new(RedisTickets::new(connection.clone(), "idp", seal()?)),
        // A guess counts against the account whichever node it reaches.
        lockouts: Arc::new(RedisLockouts::new(connection.clone(), "idp")),
        admin_sessions: Arc::new(RedisStore::<AdminSession>::with_cache(
            connection.clone(),
            "adm",
            seal()?,
            cache,
        )),
        csrf_key: Some(csrf_key),
    };
    follow_readiness(&connection);
    Ok(Stores {
        gateway,
        idp,
        ready: Some(Arc::new(move || connection.is_ready())),
    })
}

/// Where the store is, for the log: URLs as configured (they carry no
/// credentials, `check` refuses those).
fn endpoint_label(endpoint: &RedisEndpoint) -> String {
    match endpoint {
        RedisEndpoint::Url(url) => url.clone(),
        RedisEndpoint::Sentinel { master, nodes } => {
            format!("sentinel master {master} via {}", nodes.join(", "))
        }
        RedisEndpoint::Cluster { nodes } => format!("Redis Cluster via {}", nodes.join(", ")),
    }
}

/// Mirrors the connection's readiness into the metrics (the transitions
/// themselves are logged by the connection).
fn follow_readiness(connection: &RedisConnection) {
    let metrics = portcullis_proxy::session_store();
    let mut readiness = connection.readiness();
    metrics.up.set(i64::from(*readiness.borrow()));
    tokio::spawn(async move {
        while readiness.changed().await.is_ok() {
            let up = *readiness.borrow_and_update();
            metrics.up.set(i64::from(up));
            metrics
                .transitions
                .get_or_create(&portcullis_proxy::StoreTransitionLabels {
                    to: if up { "up" } else { "down" },
                })
                .inc();
        }
    });
}
