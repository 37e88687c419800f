//! Test-only fixtures shared by the Portcullis test suites: a throw-away
//! PKI, a real HTTP backend with the behaviours the proxy tests need, and
//! TLS clients for HTTP/1.1, HTTP/2 and raw sockets. Never a dependency of
//! production code.

pub mod backend;
pub mod body;
pub mod browser;
pub mod client;
pub mod pki;
pub mod redis;
pub mod redis_cluster;
pub mod redis_sentinel;

pub use backend::Backend;
pub use body::ZeroBody;
pub use browser::Browser;
pub use client::{Client, Reply};
pub use pki::Pki;
pub use redis::RedisServer;
pub use redis_cluster::{Migration, RedisClusterSet};
pub use redis_sentinel::RedisSentinelSet;

/// Polls `check` every 20 ms until it returns true or `within` passes.
pub async fn eventually(within: std::time::Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
