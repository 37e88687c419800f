//! Universal Logout at the gateway: one receiver for the HTTP endpoint
//! ([`endpoint`]) and for tokens the embedded IdP hands over in-process,
//! both through the same verification ([`verify`]).
//!
//! The caller is an IdP the app trusts. Its request carries
//! `Authorization: Bearer <JWT>` — RS256, signed by a key in that IdP's
//! JWKS, `iss` = the IdP, `aud` = the app's endpoint URL, unexpired, issued
//! recently, with a `jti` used once — and a JSON body naming the subject:
//! `{"sub_id":{"format":"email","email":"…"}}` or
//! `{"sub_id":{"format":"iss_sub","iss":"…","sub":"…"}}`. The subject's
//! sessions end in every app of this gateway.

mod endpoint;
mod verify;

pub(crate) use endpoint::endpoint;
pub use verify::{RevocationError, RevocationObserver, RevocationTrust, Revocations, TrustError};
