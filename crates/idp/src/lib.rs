//! Portcullis embedded identity provider (the "IdP session core").
//!
//! Owns the directory of users and how they prove who they are, the global
//! session and per-app authentication policies, the IdP's sessions (on
//! `portcullis-session`'s store, whichever backend the binary picks), the
//! `SSWS` API tokens, the System Log, and what administrators do to users
//! at runtime ([`user_admin`]). It has no HTTP server code: the
//! binary mounts its endpoints on the proxy.

pub mod api_token;
pub mod atomic_file;
pub mod console;
pub mod directory;
pub mod policy;
pub mod post_auth;
pub mod session;
pub mod signed_token;
pub mod syslog;
pub mod universal_logout;
pub mod user_admin;
pub mod web;
