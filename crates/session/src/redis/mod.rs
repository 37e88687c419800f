//! The Redis backends (feature `redis`), for `[cluster] mode = "shared"`:
//! sessions ([`RedisStore`]), one-time caches ([`RedisOneTime`]),
//! tickets ([`RedisTickets`]) and lockout counts ([`RedisLockouts`]) that
//! every node shares, on one [`RedisConnection`] per process: to a
//! standalone server, to whichever server Redis Sentinel names the
//! master, or to a Redis Cluster. They pass the same conformance suites
//! as the memory backends.

mod cluster;
mod connection;
mod cookies;
mod lockouts;
mod one_time;
mod scripts;
mod seal;
mod sentinel;
mod sessions;
mod tickets;

pub use connection::{RedisConnection, RedisEndpoint, RedisOptions};
pub use cookies::MacCookies;
pub use lockouts::RedisLockouts;
pub use one_time::RedisOneTime;
pub use seal::{SealError, SealKeys, MIN_SECRET_BYTES};
pub use sessions::{CachePolicy, RedisStore};
pub use tickets::RedisTickets;
