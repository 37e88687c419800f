//! Portcullis data plane.
//!
//! Owns everything that moves bytes: TLS and plain listeners, the per-request
//! pipeline (route → forward → upstream → respond), the upstream connection
//! pool, WebSocket tunnels, error pages, the built-in echo backend and the
//! management listener with its metrics. It reads only the validated
//! [`portcullis_config::Config`]; it never parses files of its own apart from
//! the PEM material that config names, and it knows nothing of SAML XML or
//! the identity provider: for `auth = "saml"` apps it runs the gateway
//! session and access-rule phase ([`sso`]) and reaches the SAML work through
//! the [`SamlSp`] trait the binary hands in.
//!
//! The request path lives in [`pipeline`]; see `REQUEST_PATH.md` beside this
//! file for the lifecycle of a connection, a request and a reload.

mod admin;
mod backend_logout;
mod balance;
mod body;
mod conn;
mod echo;
mod error;
mod forward;
mod gateway;
mod gtr;
mod identity;
mod limit;
mod local;
mod metrics;
mod pipeline;
mod plan;
mod redirect;
mod request_id;
mod respond;
mod rewrite;
mod route;
mod session;
mod slo;
mod sso;
mod tls;
mod tunnel;
mod upstream;

pub use backend_logout::{spawn as spawn_backend_logout, BackendLogout};
pub use error::Error;
pub use gateway::{Drained, Gateway, ListenAddrs};
pub use gtr::{GtrError, GtrTrust, JtiCache};
pub use identity::{IdentityError, IdentityPlan};
pub use limit::ClientLimit;
pub use local::{LocalApp, LocalApps, LocalFuture, LocalMeta, LOCAL_BODY_LIMIT};
pub use session::{EndReason, NewSession, Session, SessionStore};
pub use slo::revoke_in_process;
pub use sso::{AcsError, AuthnRedirect, Identity, SamlSp, SloInput, SloMessage};
