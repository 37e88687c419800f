//! The seam through which an app's auth phase is handed in. The proxy runs
//! it after route and before enhance for every app that has one, and knows
//! nothing of what is behind it: SAML, sessions and access rules live in
//! the gateway crate, which the binary wires in through [`AuthProvider`].
//!
//! Typed on both sides: the phase answers with a [`Gate`], the admitted
//! request's identity is added by [`Admission::enhance`] (which fails with
//! an [`EnhanceError`], never a string), and a session's end reaches the
//! streams and tunnels it opened through [`Admission::ended`].

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use http::{HeaderMap, Request, Response};
use hyper::body::Incoming;

use crate::body::ProxyBody;

/// A boxed future borrowed from the phase for one request.
pub type GateFuture<'a> = Pin<Box<dyn Future<Output = Gate> + Send + 'a>>;

/// Resolves once the session a request ran in has ended, by whatever path.
pub type SessionEnd = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// What the proxy knows about a request beyond the request itself.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub request_id: &'a str,
    /// The client, behind `[server] trusted_proxies` when the peer is one
    /// (`client_ip::resolve`): the key of rate limits and session context.
    pub client_ip: IpAddr,
    /// The client asked for JSON: errors go out in the JSON error shape.
    pub json: bool,
}

/// The auth phase's decision for one request.
pub enum Gate {
    /// Go on to the backend; `Admission` adds the identity and says when
    /// the session ends.
    Continue(Request<Incoming>, Box<dyn Admission>),
    /// The phase answered itself: one of its own endpoints, a redirect to
    /// sign in, or a refusal.
    Respond(Response<ProxyBody>),
}

/// Why the identity could not be sent toward the backend.
#[derive(Debug, thiserror::Error)]
pub enum EnhanceError {
    /// More identity than the app accepts (`max_identity_bytes`).
    #[error("injected identity is {bytes} bytes, over the app's limit of {limit}")]
    TooLarge { bytes: usize, limit: usize },
    /// The identity could not be built (e.g. signing its token failed).
    #[error("identity could not be built: {0}")]
    Unavailable(String),
}

/// A request the phase let through, with or without a session.
pub trait Admission: Send + Sync {
    /// Removes every header and cookie the client may not send, then adds
    /// this request's identity (nothing but the removal without a session).
    fn enhance(&self, headers: &mut HeaderMap) -> Result<(), EnhanceError>;

    /// When the session this request runs in ends; `None` outside one.
    fn ended(&self) -> Option<SessionEnd>;

    /// Who the request runs as, for the proxy's own log lines.
    fn user(&self) -> Option<&str>;

    /// What the built-in echo backend leads with; `None` outside a session.
    fn shown_identity(&self) -> Option<ShownIdentity> {
        None
    }
}

/// A signed-in request as the echo backend presents it: who, how to sign
/// out, and which of the request's headers and cookies carry the identity
/// (the app's injection rules name them; the echo cannot tell otherwise).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShownIdentity {
    pub user: String,
    /// Where a POST signs out of this app.
    pub sign_out: String,
    pub headers: Vec<http::header::HeaderName>,
    pub cookies: Vec<String>,
    /// The header that carries the identity JWT, decoded on the page.
    pub jwt_header: Option<http::header::HeaderName>,
}

/// An app's auth phase, compiled from its configuration.
pub trait AuthPhase: Send + Sync + 'static {
    fn gate<'a>(&'a self, request: Request<Incoming>, facts: RequestFacts<'a>) -> GateFuture<'a>;
}

pub use crate::error::CompileError;

/// Compiles the auth phase of every app that has `auth` set, at start and
/// at every reload (once per reload, shared by all workers).
pub trait AuthProvider: Send + Sync + 'static {
    fn compile(
        &self,
        config: &portcullis_config::Config,
        app: &portcullis_config::App,
    ) -> Result<Arc<dyn AuthPhase>, CompileError>;
}
