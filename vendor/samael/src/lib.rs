// Portcullis patch: upstream's own warnings (lifetime syntax on newer
// compilers, unused items) are not ours to fix in a vendored copy.
#![allow(warnings)]
pub mod attribute;
pub mod crypto;
pub mod idp;
pub mod key_info;
pub mod metadata;
pub mod schema;
pub mod service_provider;
pub mod signature;

pub mod traits;

#[macro_use]
extern crate derive_builder;
