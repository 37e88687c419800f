//! Redis Sentinel: which server is the master right now. The connection
//! manager reconnects to one fixed address, so after a failover it would
//! keep knocking on the old master (dead, or demoted to a read-only
//! replica). The connection's probe asks this module whenever the server
//! it talks to is not a writable master; when the sentinels name another
//! one, a fresh manager for it replaces the old.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{ConnectionAddr, IntoConnectionInfo, ProtocolVersion, RedisError, TlsCertificates};

use super::connection::{unavailable, RedisOptions};
use crate::error::StoreError;

/// Finds the master through the sentinels and builds managers for it.
pub(crate) struct MasterFollower {
    sentinels: SentinelClient,
    master: String,
    config: ConnectionManagerConfig,
    /// Bounds one whole lookup: a sentinel or a named master that accepts
    /// the connection and then says nothing must not stall the probe.
    deadline: Duration,
    /// The address the current manager talks to, once one was found.
    current: Option<String>,
}

impl MasterFollower {
    /// Checks the sentinel URLs and credentials; connects to nothing.
    pub(crate) fn new(
        options: &RedisOptions,
        master: &str,
        nodes: &[String],
        config: ConnectionManagerConfig,
    ) -> Result<Self, StoreError> {
        let sentinels = sentinel_client(options, master, nodes).map_err(unavailable)?;
        Ok(Self {
            sentinels,
            master: master.to_owned(),
            config,
            deadline: options.connect_timeout * 2 + options.command_timeout * 2,
            current: None,
        })
    }

    /// A manager for the master the sentinels name now, when that is not
    /// the one in use; `None` when it is the same, or nobody could say
    /// (every sentinel unreachable, or the failover still under way).
    pub(crate) async fn moved(&mut self) -> Option<ConnectionManager> {
        let found = tokio::time::timeout(self.deadline, self.sentinels.async_get_client()).await;
        let client = match found {
            Ok(Ok(client)) => client,
            Ok(Err(error)) => {
                tracing::debug!(master = %self.master, %error, "no master from the sentinels");
                return None;
            }
            Err(_) => {
                tracing::debug!(master = %self.master, "the sentinels did not answer in time");
                return None;
            }
        };
        let address = client.get_connection_info().addr().to_string();
        if self.current.as_deref() == Some(address.as_str()) {
            return None;
        }
        let manager = match ConnectionManager::new_lazy_with_config(client, self.config.clone()) {
            Ok(manager) => manager,
            Err(error) => {
                tracing::warn!(master = %self.master, %address, %error, "cannot use the master the sentinels named");
                return None;
            }
        };
        match self.current.replace(address.clone()) {
            Some(previous) => tracing::warn!(
                master = %self.master,
                %previous,
                %address,
                "Redis master moved: following the sentinels"
            ),
            None => {
                tracing::info!(master = %self.master, %address, "Redis master found through the sentinels")
            }
        }
        Some(manager)
    }
}

/// The sentinels get the same credentials and TLS settings as the master:
/// one `username`/password and one CA for the whole Redis deployment
/// (`[cluster.redis]` has one of each).
fn sentinel_client(
    options: &RedisOptions,
    master: &str,
    nodes: &[String],
) -> Result<SentinelClient, RedisError> {
    let mut addrs = Vec::with_capacity(nodes.len());
    let mut tls = false;
    // A sentinel has no databases: the path of its URL names the master's.
    let mut db = 0;
    for node in nodes {
        let info = node.as_str().into_connection_info()?;
        if addrs.is_empty() {
            db = info.redis_settings().db();
        }
        let addr = info.addr().clone();
        tls |= matches!(addr, ConnectionAddr::TcpTls { .. });
        addrs.push(addr);
    }
    let mut builder = SentinelClientBuilder::new(addrs, master, SentinelServerType::Master)?
        // RESP3 toward the master: pub/sub pushes share the command
        // connection, as with a standalone server.
        .set_client_to_redis_protocol(ProtocolVersion::RESP3)
        // RESP3 toward the sentinels too: the password then goes in
        // `HELLO 3 AUTH default …`, which a sentinel without a password
        // accepts, where a bare `AUTH …` would be an error.
        .set_client_to_sentinel_protocol(ProtocolVersion::RESP3)
        .set_client_to_redis_db(db);
    if let Some(username) = &options.username {
        builder = builder
            .set_client_to_redis_username(username)
            .set_client_to_sentinel_username(username);
    }
    if let Some(password) = &options.password {
        builder = builder
            .set_client_to_redis_password(password)
            .set_client_to_sentinel_password(password);
    }
    if tls {
        builder = builder.set_client_to_redis_tls_mode(redis::TlsMode::Secure);
        if let Some(ca) = &options.tls_ca_pem {
            let certificates = || TlsCertificates {
                client_tls: None,
                root_cert: Some(ca.clone()),
            };
            builder = builder
                .set_client_to_redis_certificates(certificates())
                .set_client_to_sentinel_certificates(certificates());
        }
    }
    builder.build()
}
