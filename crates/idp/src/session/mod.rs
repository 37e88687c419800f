//! IdP sessions on the shared session model ([`portcullis_session`]).
//!
//! This module owns what is IdP-specific about a session:
//! - its body ([`IdpSession`]: user, status, `amr`, verification times,
//!   policy and rule, client) and the Okta Sessions API JSON
//!   ([`SessionsApiJson`]), with `expiresAt` derived from the common
//!   limits;
//! - the IdP's operations over any session backend ([`IdpSessions`]:
//!   sign-in, MFA verified, refresh, revoke a user's sessions);
//! - what a one-time session token from `/api/v1/authn` carries to
//!   `/login/sessionCookieRedirect` ([`PendingSignIn`]).
//!
//! Ids, expiry, end notifications, the store trait and its backends,
//! one-time caches and tickets are `portcullis_session`'s; the names the
//! IdP's callers use are re-exported here. It does not own HTTP, cookies'
//! attributes, policy evaluation or the System Log: callers pass in the
//! limits the policy chose and turn [`SessionEnded`] into
//! `user.session.end` events.

mod record;
mod sessions;
mod sign_in;

pub use portcullis_session::{
    EndReason, Lifetime, SecretHash, Session, SessionEnded, SessionError, SessionId, SessionSecret,
    SessionStore, StoreError, DEFAULT_ENDED_CAPACITY, SECRET_BYTES, SECRET_LEN,
};
pub use record::{
    Amr, IdpKind, IdpRef, IdpSession, NewSession, SessionRecord, SessionStatus, SessionsApiJson,
};
pub use sessions::{IdpSessions, DEFAULT_IDP_ID};
pub use sign_in::PendingSignIn;

/// API tokens are credentials, not sessions ([`crate::api_token`]); this
/// path is kept for callers that hash tokens for the configuration.
pub use crate::api_token::hash_token;
