//! Account lockout state: consecutive failed sign-ins per user and the
//! locks they set, kept where every node that signs users in sees them —
//! this process's memory ([`MemoryLockouts`]) or, in a shared cluster,
//! Redis — so an attacker spreading guesses over nodes gains nothing.
//!
//! The policy (how many failures, how long a lock) is the caller's and
//! comes with each call, as does `now`; a store only keeps counts and
//! ends. Counts are by user id: callers only count failures for users that
//! exist, so the directory bounds what is kept.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use time::{OffsetDateTime, PrimitiveDateTime};

use crate::error::StoreError;
use crate::store::StoreFuture;

/// How many failures lock an account, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Consecutive failures that lock the account. 0 is treated as 1 rather
    /// than "never lock", so a config typo can't silently disable lockout.
    pub max_failures: u32,
    pub lockout_duration: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            lockout_duration: Duration::from_secs(15 * 60),
        }
    }
}

impl LockoutPolicy {
    /// The failure that locks: never 0 (see `max_failures`).
    pub fn threshold(&self) -> u32 {
        self.max_failures.max(1)
    }

    /// When a lock set at `now` ends, saturating at the far future instead
    /// of overflowing on an absurd configured duration.
    pub fn lock_end(&self, now: OffsetDateTime) -> OffsetDateTime {
        time::Duration::try_from(self.lockout_duration)
            .ok()
            .and_then(|d| now.checked_add(d))
            .unwrap_or_else(|| PrimitiveDateTime::MAX.assume_utc())
    }
}

/// What a recorded failure did to the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Counted; `remaining` more failures lock the account.
    Counted { remaining: u32 },
    /// This failure locked the account: the caller emits its lock event.
    LockedNow { until: OffsetDateTime },
    /// The account was already locked; the lock is not extended and no new
    /// lock event is due.
    AlreadyLocked { until: OffsetDateTime },
}

/// Where lockout counts and locks live. Every step is atomic for all the
/// nodes sharing the store: two failures counted at once on two nodes are
/// two failures, and exactly one of them reports
/// [`LockedNow`](FailureOutcome::LockedNow).
pub trait LockoutStore: Send + Sync {
    /// Counts a failed sign-in. A lock that has ended starts the count
    /// over.
    fn record_failure<'a>(
        &'a self,
        user_id: &'a str,
        policy: &'a LockoutPolicy,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<FailureOutcome, StoreError>>;

    /// A successful sign-in clears the count.
    fn record_success<'a>(&'a self, user_id: &'a str) -> StoreFuture<'a, Result<(), StoreError>>;

    /// Puts back a lock recorded before a restart (a later end wins; one
    /// that has already ended is ignored).
    fn restore<'a>(
        &'a self,
        user_id: &'a str,
        until: OffsetDateTime,
        policy: &'a LockoutPolicy,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<(), StoreError>>;

    /// An administrator lifts the lock and the count; `true` when a lock
    /// was still running.
    fn unlock<'a>(
        &'a self,
        user_id: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<bool, StoreError>>;

    /// Until when the account is locked; checking does not count as an
    /// attempt.
    fn locked_until<'a>(
        &'a self,
        user_id: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<Option<OffsetDateTime>, StoreError>>;

    /// Every lock still running, by user id (one call for a whole user
    /// list, rather than one per user).
    fn locked(
        &self,
        now: OffsetDateTime,
    ) -> StoreFuture<'_, Result<HashMap<String, OffsetDateTime>, StoreError>>;

    /// The memory store, whose locks a restart loses and the caller puts
    /// back from its records (a shared store keeps its own); `None` for
    /// every other backend.
    fn as_memory(&self) -> Option<&MemoryLockouts> {
        None
    }
}

/// Cap on tracked users: a second line of defence behind "only users that
/// exist are counted".
pub const DEFAULT_LOCKOUT_CAPACITY: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    locked_until: Option<OffsetDateTime>,
    last_failure: OffsetDateTime,
}

/// Counts and locks in this process's memory. A full map makes room by
/// dropping ended locks first, then the oldest count, and only when every
/// entry is a running lock, the one closest to its end.
pub struct MemoryLockouts {
    capacity: usize,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Default for MemoryLockouts {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_LOCKOUT_CAPACITY)
    }
}

impl fmt::Debug for MemoryLockouts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryLockouts")
            .field("capacity", &self.capacity)
            .field("tracked", &self.lock().len())
            .finish()
    }
}

impl MemoryLockouts {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// How many users have a count or a lock (for tests of the cap).
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // Each update leaves entries consistent, so a poisoned lock is usable.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// [`LockoutStore::unlock`] without a future.
    pub fn lift(&self, user_id: &str, now: OffsetDateTime) -> bool {
        self.lock()
            .remove(user_id)
            .and_then(|e| e.locked_until)
            .is_some_and(|until| until > now)
    }

    fn failure(
        &self,
        user_id: &str,
        policy: &LockoutPolicy,
        now: OffsetDateTime,
    ) -> FailureOutcome {
        let threshold = policy.threshold();
        let mut entries = self.lock();
        if !entries.contains_key(user_id) {
            make_room(&mut entries, self.capacity, now);
        }
        let fresh = Entry {
            failures: 0,
            locked_until: None,
            last_failure: now,
        };
        let entry = entries.entry(user_id.to_owned()).or_insert(fresh);
        if let Some(until) = entry.locked_until {
            if until > now {
                return FailureOutcome::AlreadyLocked { until };
            }
            *entry = fresh;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        if entry.failures >= threshold {
            let until = policy.lock_end(now);
            entry.locked_until = Some(until);
            FailureOutcome::LockedNow { until }
        } else {
            FailureOutcome::Counted {
                remaining: threshold - entry.failures,
            }
        }
    }

    /// [`LockoutStore::restore`] without a future: for putting locks back
    /// at start, before any runtime runs.
    pub fn put_back(
        &self,
        user_id: &str,
        until: OffsetDateTime,
        policy: &LockoutPolicy,
        now: OffsetDateTime,
    ) {
        if until <= now {
            return;
        }
        let mut entries = self.lock();
        if !entries.contains_key(user_id) {
            make_room(&mut entries, self.capacity, now);
        }
        let entry = entries.entry(user_id.to_owned()).or_insert(Entry {
            failures: 0,
            locked_until: None,
            last_failure: now,
        });
        entry.failures = entry.failures.max(policy.threshold());
        entry.locked_until = Some(entry.locked_until.map_or(until, |u| u.max(until)));
    }
}

fn make_room(entries: &mut HashMap<String, Entry>, capacity: usize, now: OffsetDateTime) {
    if entries.len() < capacity {
        return;
    }
    entries.retain(|_, e| e.locked_until.is_none_or(|until| until > now));
    if entries.len() < capacity {
        return;
    }
    let victim = entries
        .iter()
        .min_by_key(|(_, e)| (e.locked_until.is_some(), e.locked_until, e.last_failure))
        .map(|(id, _)| id.clone());
    if let Some(id) = victim {
        entries.remove(&id);
    }
}

impl LockoutStore for MemoryLockouts {
    fn record_failure<'a>(
        &'a self,
        user_id: &'a str,
        policy: &'a LockoutPolicy,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<FailureOutcome, StoreError>> {
        let outcome = self.failure(user_id, policy, now);
        Box::pin(std::future::ready(Ok(outcome)))
    }

    fn record_success<'a>(&'a self, user_id: &'a str) -> StoreFuture<'a, Result<(), StoreError>> {
        self.lock().remove(user_id);
        Box::pin(std::future::ready(Ok(())))
    }

    fn restore<'a>(
        &'a self,
        user_id: &'a str,
        until: OffsetDateTime,
        policy: &'a LockoutPolicy,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<(), StoreError>> {
        self.put_back(user_id, until, policy, now);
        Box::pin(std::future::ready(Ok(())))
    }

    fn unlock<'a>(
        &'a self,
        user_id: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<bool, StoreError>> {
        Box::pin(std::future::ready(Ok(self.lift(user_id, now))))
    }

    fn locked_until<'a>(
        &'a self,
        user_id: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<Option<OffsetDateTime>, StoreError>> {
        let until = self
            .lock()
            .get(user_id)
            .and_then(|e| e.locked_until)
            .filter(|until| *until > now);
        Box::pin(std::future::ready(Ok(until)))
    }

    fn locked(
        &self,
        now: OffsetDateTime,
    ) -> StoreFuture<'_, Result<HashMap<String, OffsetDateTime>, StoreError>> {
        let locked = self
            .lock()
            .iter()
            .filter_map(|(id, e)| {
                e.locked_until
                    .filter(|until| *until > now)
                    .map(|until| (id.clone(), until))
            })
            .collect();
        Box::pin(std::future::ready(Ok(locked)))
    }

    fn as_memory(&self) -> Option<&MemoryLockouts> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).expect("valid timestamp")
    }

    fn policy(max_failures: u32, secs: u64) -> LockoutPolicy {
        LockoutPolicy {
            max_failures,
            lockout_duration: Duration::from_secs(secs),
        }
    }

    #[test]
    fn the_map_is_capped_and_keeps_running_locks() {
        let store = MemoryLockouts::with_capacity(3);
        let policy = policy(2, 10_000);
        store.failure("locked", &policy, at(0));
        store.failure("locked", &policy, at(0));
        for i in 0..100 {
            store.failure(&format!("noise{i}"), &policy, at(i));
        }
        assert!(store.tracked() <= 3);
        assert!(store.lift("locked", at(10)), "the running lock survived");
    }

    #[test]
    fn an_absurd_duration_saturates() {
        let store = MemoryLockouts::default();
        assert_eq!(
            store.failure("u1", &policy(1, u64::MAX), at(0)),
            FailureOutcome::LockedNow {
                until: PrimitiveDateTime::MAX.assume_utc()
            }
        );
    }
}
