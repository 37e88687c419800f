//! Redis Cluster: the async cluster client keeps one connection per node,
//! follows the slot map through MOVED redirects and failovers, and
//! resubscribes pub/sub to whichever node serves a channel's slot now.
//! Every key and channel of one deployment carries the same hash tag, so
//! the whole deployment lives in one slot, on one master and its
//! replicas: the multi-key scripts stay atomic, and a Cluster gives
//! failover, not sharding.
//!
//! The client recovers a lost node by itself, but a connection built while
//! no seed answered may stay without a slot map; the probe replaces it
//! with a fresh one from the seeds after a few failed probes in a row.

use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{ProtocolVersion, PushInfo, RedisError, TlsCertificates};
use tokio::sync::mpsc;

use super::connection::{unavailable, RedisOptions};
use crate::error::StoreError;

/// Builds connections to the cluster from its seed nodes.
pub(crate) struct ClusterSeeds {
    client: ClusterClient,
    config: ClusterConfig,
}

impl ClusterSeeds {
    /// Checks the seed URLs and credentials; connects to nothing.
    pub(crate) fn new(
        options: &RedisOptions,
        nodes: &[String],
        pushes: mpsc::UnboundedSender<PushInfo>,
    ) -> Result<Self, StoreError> {
        let client = cluster_client(options, nodes).map_err(unavailable)?;
        let config = ClusterConfig::new()
            .set_connection_timeout(options.connect_timeout)
            .set_response_timeout(options.command_timeout)
            .set_push_sender(pushes);
        Ok(Self { client, config })
    }

    /// A connection that finds the nodes in the background: building it
    /// never waits for Redis, the first commands do.
    pub(crate) fn connect(&self) -> ClusterConnection {
        self.client
            .get_pending_async_connection_with_config(self.config.clone())
    }
}

fn cluster_client(options: &RedisOptions, nodes: &[String]) -> Result<ClusterClient, RedisError> {
    let mut builder = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
        // RESP3: pub/sub pushes share the command connections.
        .use_protocol(ProtocolVersion::RESP3)
        // One command, redirects and retries included, is bounded like a
        // standalone server's: a request gets its answer or its 503 in
        // about command_timeout.
        .overall_response_timeout(Some(options.command_timeout))
        // A few quick retries ride out a MOVED during a failover; more
        // would only outlast the overall bound.
        .retries(3)
        .min_retry_wait(10)
        .max_retry_wait(100);
    if let Some(username) = &options.username {
        builder = builder.username(username);
    }
    if let Some(password) = &options.password {
        builder = builder.password(password);
    }
    if let Some(ca) = &options.tls_ca_pem {
        // The TLS mode itself comes from the seeds' `rediss://` scheme.
        builder = builder.certs(TlsCertificates {
            client_tls: None,
            root_cert: Some(ca.clone()),
        });
    }
    builder.build()
}
