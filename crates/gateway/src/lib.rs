//! The gateway's SP side: everything an `auth = "saml"` app needs between
//! the proxy's route and enhance phases.
//!
//! Owns the `/_portcullis/*` endpoints on every app's origin (one table,
//! [`endpoints`]), sign-in (SSO start, ACS, RelayState: [`login`]),
//! sign-out (logout, Single Logout, the signed-out page: [`logout`]),
//! Universal Logout's receiver ([`revocation`]), the app's SAML SP
//! ([`sp`]), access rules, identity toward the backend, backend logout
//! hooks, and the gateway's cookies and request state. It does not own
//! HTTP plumbing (the proxy), SAML itself (`portcullis-saml`) or the
//! identity provider; the binary hands it to the proxy as an
//! [`portcullis_proxy::AuthProvider`].
//!
//! Top-down: [`Gateway`] builds one [`gate`] per app; a gate answers the
//! endpoints or decides by access rule and session; the endpoints use
//! replies, cookies and request state below them.

mod access;
mod backend_logout;
mod cookies;
mod endpoints;
mod error;
mod gate;
mod gateway;
mod identity;
mod idp_trust;
mod login;
mod logout;
mod logout_soap;
mod plan;
mod post_auth;
mod reply;
mod revocation;
mod session;
mod shared;
mod sp;
mod state;

pub use error::{BuildError, BuildProblem};
pub use gateway::{EmbeddedIssuer, Gateway, GatewayStores};
pub use identity::{IdentityConfigError, IdentityPlan, IdentitySigner};
pub use idp_trust::IdpTrust;
pub use login::relay_state_is_safe;
pub use post_auth::{ContextCheck, ContextVerdict, GatewayChange, SessionEnding};
pub use revocation::{RevocationError, RevocationObserver, Revocations, TrustError};
pub use session::{GatewaySession, NameIdQualifiers, Session, Sessions, Subject};
