//! [`OneTimeStore`] on Redis: per kind, a sorted set of keys by the
//! instant they may be forgotten (the caller's clock decides, as in
//! memory) and a hash of high-water marks, changed by one script so a
//! check and its record are one atomic step for the whole cluster.

use std::fmt;

use time::OffsetDateTime;

use crate::error::StoreError;
use crate::one_time::{OneTimeError, OneTimeKind, OneTimeStore, DEFAULT_ONE_TIME_CAPACITY};
use crate::redis::connection::{unavailable, RedisConnection};
use crate::redis::scripts;
use crate::redis::sessions::micros;
use crate::store::StoreFuture;

/// One-time caches in Redis, shared by every node.
pub struct RedisOneTime {
    connection: RedisConnection,
    base: String,
    capacity: usize,
}

impl RedisOneTime {
    /// Caches under `{prefix}<namespace>:`, at most `capacity` live
    /// entries per kind.
    pub fn new(connection: RedisConnection, namespace: &str, capacity: usize) -> Self {
        let base = format!("{}{}:", connection.prefix(), namespace);
        Self {
            connection,
            base,
            capacity,
        }
    }

    /// With the default capacity.
    pub fn with_default_capacity(connection: RedisConnection, namespace: &str) -> Self {
        Self::new(connection, namespace, DEFAULT_ONE_TIME_CAPACITY)
    }

    async fn run(
        &self,
        kind: OneTimeKind,
        keys: &[&str],
        mark: Option<u64>,
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), OneTimeError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut invocation = scripts::ONE_TIME.prepare_invoke();
        invocation
            .key(format!("{}ot:{}", self.base, kind.as_str()))
            .key(format!("{}otm:{}", self.base, kind.as_str()))
            .arg(micros(now))
            .arg(micros(until))
            .arg(self.capacity)
            .arg(if mark.is_some() { "advance" } else { "use" })
            .arg(mark.unwrap_or(0));
        for key in keys {
            invocation.arg(*key);
        }
        let mut commands = self.connection.commands()?;
        let verdict: String = invocation
            .invoke_async(&mut commands)
            .await
            .map_err(unavailable)?;
        match verdict.as_str() {
            "ok" => Ok(()),
            "replayed" => Err(OneTimeError::Replayed),
            "full" => Err(OneTimeError::Full),
            other => Err(StoreError::Corrupt(format!("one-time verdict {other}")).into()),
        }
    }
}

impl fmt::Debug for RedisOneTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOneTime")
            .field("base", &self.base)
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl OneTimeStore for RedisOneTime {
    fn first_use<'a>(
        &'a self,
        kind: OneTimeKind,
        key: &'a str,
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<(), OneTimeError>> {
        Box::pin(async move { self.run(kind, &[key], None, until, now).await })
    }

    fn first_use_all<'a>(
        &'a self,
        kind: OneTimeKind,
        keys: &'a [&'a str],
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<(), OneTimeError>> {
        Box::pin(async move { self.run(kind, keys, None, until, now).await })
    }

    fn advance<'a>(
        &'a self,
        kind: OneTimeKind,
        key: &'a str,
        mark: u64,
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<(), OneTimeError>> {
        Box::pin(async move { self.run(kind, &[key], Some(mark), until, now).await })
    }
}
