//! The `portcullis` binary as an operator runs it: `check` on good and bad
//! files, SIGHUP reloads, SIGTERM drains, memory while streaming large
//! bodies, the embedded IdP's HTTP endpoints and its Users API. Every test
//! starts its own process on 127.0.0.1:0.

mod balancing;
mod behaviors;
mod browser;
mod check;
mod client_ip;
mod cluster;
mod console;
mod deploy;
mod gateway_sso;
mod identity;
mod idp;
mod interop;
mod metadata_url;
mod post_auth;
mod process;
mod rewrite;
mod signals;
mod simplesamlphp;
mod slo;
mod slo_soap;
mod sso;
mod sticky;
mod streaming;
mod universal_logout;
mod users_api;
