//! Where and on what a client is — its session context (DESIGN §5a).
//!
//! A session records a [`SessionContext`] when it starts: client IP, ASN and
//! AS organisation (from an operator's IP→ASN database), the network zones
//! the IP is in, and a coarse device (browser family and OS). Every request
//! of the session is [`ContextSource::observe`]d against it; what changed is
//! a [`Changes`] set the post-auth evaluation turns into events and
//! decisions. The unchanged path is two comparisons and a hash of the
//! user-agent bytes, with no allocation.

pub mod asn;
mod context;
pub mod device;
pub mod zone;

pub use asn::{Asn, AsnDatabase, AsnError, AsnFormat};
pub use context::{Attribute, Changes, ContextSource, Observed, SessionContext};
pub use device::{Browser, Device, Os};
pub use zone::{parse_cidr, Zone};
