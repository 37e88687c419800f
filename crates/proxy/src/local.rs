//! Services that run inside the gateway process and are published on a
//! public URL like an app — today the embedded IdP. The proxy knows them
//! only through this trait, handed in at start-up by the binary, so the data
//! plane never depends on the IdP crate.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};

/// What a local service may know about the request beyond HTTP itself.
#[derive(Debug, Clone)]
pub struct LocalMeta {
    pub client_addr: SocketAddr,
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

/// The local services available to a plan.
#[derive(Clone, Default)]
pub struct LocalApps {
    /// Served on `[idp] public_url`.
    pub idp: Option<Arc<dyn LocalApp>>,
    /// The SAML SP of every `auth = "saml"` app, by app name.
    pub sps: HashMap<String, Arc<dyn crate::sso::SamlSp>>,
    /// Gateway sessions of every app: shared by all workers, kept across reloads.
    pub sessions: Arc<crate::session::SessionStore>,
    /// ACS posts per client IP, shared by all workers and apps.
    pub acs_limit: Arc<crate::limit::ClientLimit>,
    /// The Universal Logout issuer each app trusts, by app name.
    pub gtr_trust: HashMap<String, Arc<crate::gtr::GtrTrust>>,
    /// Universal Logout token ids already used, across all apps.
    pub gtr_jtis: Arc<crate::gtr::JtiCache>,
}
