//! Portcullis data plane: HTTP plumbing only.
//!
//! Owns everything that moves bytes: TLS and plain listeners, the
//! per-request pipeline (route → gate → enhance → upstream → respond →
//! log), upstream pools and balancing, WebSocket tunnels, body streaming
//! and rewriting, error pages, the page shell, the `Cookie` header,
//! per-client rate limits, the built-in echo backend and the management
//! listener with its metrics. It reads only the validated
//! [`portcullis_config::Config`] and knows nothing of SAML, sessions or
//! the identity provider: an app's auth phase is handed in through
//! [`AuthProvider`] and the IdP through [`LocalApp`], both by the binary.
//!
//! The request path lives in `pipeline`; `docs/architecture.md` has the
//! lifecycle of a connection, a request, a session's end and a reload.

mod access;
mod admin;
pub mod auth;
mod balance;
mod body;
pub mod client_ip;
mod conn;
pub mod cookie;
pub mod descriptors;
mod echo;
mod error;
mod forward;
pub mod limit;
mod local;
pub mod log_rate;
mod metrics;
pub mod page;
mod pipeline;
mod plan;
mod redirect;
mod request_id;
pub mod respond;
mod rewrite;
mod route;
mod server;
mod tls;
mod tunnel;
mod upstream;

pub use auth::{
    Admission, AuthPhase, AuthProvider, EnhanceError, Gate, GateFuture, RequestFacts, SessionEnd,
    ShownIdentity,
};
pub use body::ProxyBody;
pub use client_ip::{ClientIp, TrustedProxies};
pub use error::Error;
pub use forward::X_PORTCULLIS_USER;
pub use limit::{ClientLimit, WorkBounds, WorkError, WorkLimit};
pub use local::{LocalApp, LocalFuture, LocalMeta, Services, LOCAL_BODY_LIMIT};
pub use metrics::{
    library_log_events, saml_metadata, session_store, LogSourceLabels, Metrics, PeerLabels,
    SamlMetadataMetrics, SessionStoreMetrics, StoreTransitionLabels,
};
pub use route::under;
pub use server::{Drained, ListenAddrs, Server};
pub use tls::upstream_connector;
pub use upstream::target_label;
