//! IdP sessions and the tokens around them.
//!
//! This module owns
//! - the IdP session: its cookie secret ([`SessionSecret`]), which the
//!   store never keeps (only its SHA-256, [`SecretHash`]), and its unrelated
//!   public id ([`SessionId`]) for the Sessions API;
//! - the session record in Okta's Sessions API shape ([`SessionRecord`]),
//!   with expiry = min(created + max lifetime, last activity + max idle);
//! - the live sessions ([`SessionStore`]): every use enforces the idle and
//!   lifetime limits, and every removal, by whatever path, publishes one
//!   [`SessionEnded`] on a broadcast channel ([`SessionStore::subscribe`]);
//!   [`spawn_sweeper`] ends the sessions nobody touches again;
//! - one-time session tokens from `/api/v1/authn` for
//!   `/login/sessionCookieRedirect` ([`SessionTokens`]);
//! - `SSWS` API tokens configured as SHA-256 digests with Okta scopes
//!   ([`ApiTokens`]).
//!
//! It does not own HTTP, cookies' attributes, policy evaluation or the
//! System Log: callers pass in the limits the policy chose and turn
//! [`SessionEnded`] into `user.session.end` events.
//!
//! Time is always passed in (`now`) so behaviour is testable and one
//! request sees one clock reading.

mod api_token;
mod encoding;
mod end;
mod error;
mod id;
mod record;
mod store;
mod sweeper;
mod token;

pub use api_token::{hash_token, ApiAuthError, ApiToken, ApiTokenError, ApiTokens, Scope};
pub use end::{EndReason, SessionEnded};
pub use error::SessionError;
pub use id::{SecretHash, SessionId, SessionSecret, SECRET_BYTES, SECRET_LEN};
pub use record::{Amr, IdpKind, IdpRef, NewSession, SessionRecord, SessionStatus};
pub use store::{SessionStore, DEFAULT_ENDED_CAPACITY, DEFAULT_IDP_ID};
pub use sweeper::spawn_sweeper;
pub use token::{PendingSignIn, SessionToken, SessionTokens, TokenError, SESSION_TOKEN_BYTES};
