//! SAML behaviour with real keys and real xmlsec signatures: one test
//! binary for the crate (link time), one module per concern.

mod authn_request_and_metadata;
mod encryption;
mod logout;
mod parties;
mod peer_logout;
mod response_verification;
mod sha1;
mod soap;
