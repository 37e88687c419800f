//! [`LockoutStore`] on Redis: per user a small hash (failures, lock end)
//! with a TTL, and one sorted set of running locks by their end, so the
//! console lists locked accounts in one call. Each step is one script:
//! failures counted on several nodes at once lock the account once.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use time::OffsetDateTime;

use crate::error::StoreError;
use crate::lockout::{FailureOutcome, LockoutPolicy, LockoutStore};
use crate::redis::connection::{unavailable, RedisConnection};
use crate::redis::scripts;
use crate::redis::sessions::micros;
use crate::store::StoreFuture;

/// Redis keeps a count this long after the last failure: long enough for
/// any guessing campaign, short enough that a stray typo is forgotten
/// (the memory store keeps counts until a restart or its cap).
const COUNT_TTL: Duration = Duration::from_secs(24 * 3_600);
/// An entry outlives its lock by this much, so a lock never vanishes
/// early when Redis's clock runs ahead of the caller's.
const LOCK_GRACE: Duration = Duration::from_secs(60);
/// Lock ends are clamped here (2255): microseconds beyond 2^53 are not
/// exact in Lua's numbers.
const MAX_MICROS: i64 = (1 << 53) - 1;

/// Lockout counts and locks in Redis, shared by every node.
pub struct RedisLockouts {
    connection: RedisConnection,
    base: String,
}

impl RedisLockouts {
    /// Under `{prefix}<namespace>:`.
    pub fn new(connection: RedisConnection, namespace: &str) -> Self {
        let base = format!("{}{}:", connection.prefix(), namespace);
        Self { connection, base }
    }

    fn entry(&self, user_id: &str) -> String {
        format!("{}lk:{user_id}", self.base)
    }

    fn running(&self) -> String {
        format!("{}lkd", self.base)
    }
}

impl fmt::Debug for RedisLockouts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLockouts")
            .field("base", &self.base)
            .finish()
    }
}

fn end_micros(end: OffsetDateTime) -> i64 {
    micros(end).min(MAX_MICROS)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// How long an entry whose lock ends at `end` is kept.
fn lock_ttl_ms(end: i64, now: OffsetDateTime) -> u64 {
    let left = u64::try_from((end - micros(now)).max(0) / 1_000).unwrap_or(0);
    left.saturating_add(millis(LOCK_GRACE))
}

fn from_micros(text: &str) -> Result<OffsetDateTime, StoreError> {
    let us: i64 = text
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("lock end {text:?}")))?;
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000)
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl LockoutStore for RedisLockouts {
    fn record_failure<'a>(
        &'a self,
        user_id: &'a str,
        policy: &'a LockoutPolicy,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<FailureOutcome, StoreError>> {
        Box::pin(async move {
            let end = end_micros(policy.lock_end(now));
            let mut invocation = scripts::LOCKOUT_FAIL.prepare_invoke();
            invocation
                .key(self.entry(user_id))
                .key(self.running())
                .arg(micros(now))
                .arg(policy.threshold())
                .arg(end)
                .arg(user_id)
                .arg(millis(COUNT_TTL))
                .arg(lock_ttl_ms(end, now));
            let mut commands = self.connection.commands()?;
            let reply: (String, String) = invocation
                .invoke_async(&mut commands)
                .await
                .map_err(unavailable)?;
            match reply.0.as_str() {
                "already" => Ok(FailureOutcome::AlreadyLocked {
                    until: from_micros(&reply.1)?,
                }),
                "locked" => Ok(FailureOutcome::LockedNow {
                    until: from_micros(&reply.1)?,
                }),
                "counted" => Ok(FailureOutcome::Counted {
                    remaining: reply.1.parse().map_err(|_| {
                        StoreError::Corrupt(format!("lockout remaining {:?}", reply.1))
                    })?,
                }),
                other => Err(StoreError::Corrupt(format!("lockout verdict {other}"))),
            }
        })
    }

    fn record_success<'a>(&'a self, user_id: &'a str) -> StoreFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut commands = self.connection.commands()?;
            redis::pipe()
                .atomic()
                .del(self.entry(user_id))
                .ignore()
                .zrem(self.running(), user_id)
                .ignore()
                .query_async::<()>(&mut commands)
                .await
                .map_err(unavailable)
        })
    }

    fn restore<'a>(
        &'a self,
        user_id: &'a str,
        until: OffsetDateTime,
        policy: &'a LockoutPolicy,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if until <= now {
                return Ok(());
            }
            let end = end_micros(until);
            let mut invocation = scripts::LOCKOUT_RESTORE.prepare_invoke();
            invocation
                .key(self.entry(user_id))
                .key(self.running())
                .arg(end)
                .arg(policy.threshold())
                .arg(user_id)
                .arg(lock_ttl_ms(end, now));
            let mut commands = self.connection.commands()?;
            invocation
                .invoke_async::<i64>(&mut commands)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn unlock<'a>(
        &'a self,
        user_id: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut invocation = scripts::LOCKOUT_UNLOCK.prepare_invoke();
            invocation
                .key(self.entry(user_id))
                .key(self.running())
                .arg(micros(now))
                .arg(user_id);
            let mut commands = self.connection.commands()?;
            let lifted: i64 = invocation
                .invoke_async(&mut commands)
                .await
                .map_err(unavailable)?;
            Ok(lifted == 1)
        })
    }

    fn locked_until<'a>(
        &'a self,
        user_id: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<Option<OffsetDateTime>, StoreError>> {
        Box::pin(async move {
            let mut commands = self.connection.commands()?;
            let end: Option<String> = redis::cmd("HGET")
                .arg(self.entry(user_id))
                .arg("u")
                .query_async(&mut commands)
                .await
                .map_err(unavailable)?;
            match end {
                Some(end) => Ok(Some(from_micros(&end)?).filter(|until| *until > now)),
                None => Ok(None),
            }
        })
    }

    fn locked(
        &self,
        now: OffsetDateTime,
    ) -> StoreFuture<'_, Result<HashMap<String, OffsetDateTime>, StoreError>> {
        Box::pin(async move {
            let mut invocation = scripts::LOCKOUT_LIST.prepare_invoke();
            invocation.key(self.running()).arg(micros(now));
            let mut commands = self.connection.commands()?;
            let flat: Vec<String> = invocation
                .invoke_async(&mut commands)
                .await
                .map_err(unavailable)?;
            let mut locked = HashMap::with_capacity(flat.len() / 2);
            for pair in flat.chunks_exact(2) {
                locked.insert(pair[0].clone(), from_micros(&pair[1])?);
            }
            Ok(locked)
        })
    }
}
