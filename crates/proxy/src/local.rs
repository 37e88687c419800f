//! Services that run inside the gateway process and are published on a
//! public URL like an app — today the embedded IdP. The proxy knows them
//! only through this trait, handed in at start-up by the binary, so the data
//! plane never depends on the IdP crate.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};

/// What a local service may know about the request beyond HTTP itself.
#[derive(Debug, Clone)]
pub struct LocalMeta {
    /// The socket peer: a load balancer, when one is in front.
    pub client_addr: SocketAddr,
    /// The client, behind `[server] trusted_proxies` when the peer is one:
    /// what rate limits, sessions and the System Log must use.
    pub client_ip: IpAddr,
    pub request_id: String,
}

pub type LocalFuture = Pin<Box<dyn Future<Output = Response<Bytes>> + Send>>;

/// A request handler living in the gateway process. Bodies are buffered (a
/// local service handles forms and small JSON, never uploads) up to
/// [`LOCAL_BODY_LIMIT`]; larger bodies get 413 before the service sees them.
pub trait LocalApp: Send + Sync + 'static {
    fn call(&self, request: Request<Bytes>, meta: LocalMeta) -> LocalFuture;
}

/// Largest request body a local service receives.
pub const LOCAL_BODY_LIMIT: usize = 64 * 1024;

/// What the binary hands the proxy at start: the built-in services and
/// the auth phases it cannot build itself.
#[derive(Clone, Default)]
pub struct Services {
    /// Served on `[idp] public_url`.
    pub idp: Option<Arc<dyn LocalApp>>,
    /// Compiles the auth phase of every app with `auth` set.
    pub auth: Option<Arc<dyn crate::auth::AuthProvider>>,
    /// Whether a shared session store answers; `/readyz` says 503 while
    /// it does not (liveness stays 200).
    pub store_ready: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
}
