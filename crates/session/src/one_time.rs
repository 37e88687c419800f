//! One-time-use caches: everything that must be accepted once only —
//! SAML assertion and response ids until they expire, Universal Logout
//! token `jti`s, TOTP time steps per user.
//!
//! Entries are remembered until the caller's `until` (the instant after
//! which the value would be refused anyway, e.g. an assertion's
//! NotOnOrAfter plus skew), so memory follows what is still replayable.
//! A full cache fails closed: evicting a live entry would re-open it for
//! replay.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::OffsetDateTime;

use crate::error::StoreError;
use crate::store::StoreFuture;

/// Namespaces of one-time keys: the same text used as two kinds never
/// collides, and each kind has its own capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OneTimeKind {
    /// SAML Response and Assertion ids (consumed together).
    AssertionId,
    /// SAML request ids answered once (`InResponseTo`).
    RequestId,
    /// JWT `jti` of Universal Logout tokens.
    JwtId,
    /// TOTP time steps, as a high-water mark per user.
    TotpStep,
}

impl OneTimeKind {
    pub const ALL: [OneTimeKind; 4] = [
        Self::AssertionId,
        Self::RequestId,
        Self::JwtId,
        Self::TotpStep,
    ];

    /// Stable text for logs and backend key prefixes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AssertionId => "assertion_id",
            Self::RequestId => "request_id",
            Self::JwtId => "jwt_id",
            Self::TotpStep => "totp_step",
        }
    }

    fn slot(self) -> usize {
        match self {
            Self::AssertionId => 0,
            Self::RequestId => 1,
            Self::JwtId => 2,
            Self::TotpStep => 3,
        }
    }
}

impl fmt::Display for OneTimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A one-time use was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OneTimeError {
    /// Already used (or, for [`OneTimeStore::advance`], not past the last
    /// accepted mark).
    #[error("already used")]
    Replayed,
    /// The cache is full of entries that are still live; refusing is the
    /// safe answer.
    #[error("one-time cache is full")]
    Full,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One-time-use enforcement, backend-neutral like
/// [`SessionStore`](crate::SessionStore).
pub trait OneTimeStore: Send + Sync {
    /// The first use of (`kind`, `key`) wins until `until`; a second use
    /// before then is `Err(Replayed)`. Fails closed (`Err(Full)`) when full
    /// of unexpired entries rather than evicting a live one.
    fn first_use<'a>(
        &'a self,
        kind: OneTimeKind,
        key: &'a str,
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<(), OneTimeError>>;

    /// Several keys atomically: refused if ANY is known, else all are
    /// recorded (a SAML Response id and its Assertion id are consumed
    /// together, so replaying either is caught).
    fn first_use_all<'a>(
        &'a self,
        kind: OneTimeKind,
        keys: &'a [&'a str],
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<(), OneTimeError>>;

    /// A monotonic high-water mark per key: `mark` is accepted only when it
    /// is greater than the last accepted one (still remembered until its
    /// `until`). For TOTP: a used code, or any older one, is refused.
    fn advance<'a>(
        &'a self,
        kind: OneTimeKind,
        key: &'a str,
        mark: u64,
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<(), OneTimeError>>;
}

/// Entries per kind when not configured: far above what an honest
/// deployment holds within the validity windows involved.
pub const DEFAULT_ONE_TIME_CAPACITY: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Used {
    until: OffsetDateTime,
    /// The high-water mark for [`OneTimeStore::advance`]; 0 otherwise.
    mark: u64,
}

type Kind = HashMap<String, Used>;

/// One-time caches in this process's memory: one map per kind, each
/// behind its own lock, so checking several keys is a single atomic step.
pub struct MemoryOneTime {
    kinds: [Mutex<Kind>; OneTimeKind::ALL.len()],
    capacity: usize,
}

impl Default for MemoryOneTime {
    fn default() -> Self {
        Self::new(DEFAULT_ONE_TIME_CAPACITY)
    }
}

impl MemoryOneTime {
    /// `capacity` entries per kind.
    pub fn new(capacity: usize) -> Self {
        Self {
            kinds: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            capacity,
        }
    }

    /// Entries remembered for `kind`, expired ones included until purged.
    pub fn len(&self, kind: OneTimeKind) -> usize {
        self.lock(kind).len()
    }

    pub fn is_empty(&self, kind: OneTimeKind) -> bool {
        self.len(kind) == 0
    }

    fn lock(&self, kind: OneTimeKind) -> MutexGuard<'_, Kind> {
        // Every operation below finishes its writes before anything that
        // could panic, so a poisoned lock still guards a consistent map.
        self.kinds[kind.slot()]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Room for the `keys` not held yet, purging expired entries when
    /// needed (which may turn held keys into new ones, hence the recount).
    fn make_room(
        &self,
        map: &mut Kind,
        keys: &[&str],
        now: OffsetDateTime,
    ) -> Result<(), OneTimeError> {
        let needed = |map: &Kind| {
            let mut absent: Vec<&str> = keys
                .iter()
                .copied()
                .filter(|k| !map.contains_key(*k))
                .collect();
            // Keys named twice in one call count once.
            absent.sort_unstable();
            absent.dedup();
            map.len().saturating_add(absent.len())
        };
        if needed(map) > self.capacity {
            map.retain(|_, used| used.until > now);
            if needed(map) > self.capacity {
                return Err(OneTimeError::Full);
            }
        }
        Ok(())
    }

    fn first_use_now(
        &self,
        kind: OneTimeKind,
        keys: &[&str],
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), OneTimeError> {
        let mut map = self.lock(kind);
        if keys
            .iter()
            .any(|key| map.get(*key).is_some_and(|used| used.until > now))
        {
            return Err(OneTimeError::Replayed);
        }
        self.make_room(&mut map, keys, now)?;
        for key in keys {
            map.insert((*key).to_owned(), Used { until, mark: 0 });
        }
        Ok(())
    }

    fn advance_now(
        &self,
        kind: OneTimeKind,
        key: &str,
        mark: u64,
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), OneTimeError> {
        let mut map = self.lock(kind);
        match map.get_mut(key) {
            Some(used) if used.until > now && mark <= used.mark => Err(OneTimeError::Replayed),
            Some(used) => {
                *used = Used { until, mark };
                Ok(())
            }
            None => {
                self.make_room(&mut map, &[key], now)?;
                map.insert(key.to_owned(), Used { until, mark });
                Ok(())
            }
        }
    }
}

impl OneTimeStore for MemoryOneTime {
    fn first_use<'a>(
        &'a self,
        kind: OneTimeKind,
        key: &'a str,
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<(), OneTimeError>> {
        Box::pin(async move { self.first_use_now(kind, &[key], until, now) })
    }

    fn first_use_all<'a>(
        &'a self,
        kind: OneTimeKind,
        keys: &'a [&'a str],
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<(), OneTimeError>> {
        Box::pin(async move { self.first_use_now(kind, keys, until, now) })
    }

    fn advance<'a>(
        &'a self,
        kind: OneTimeKind,
        key: &'a str,
        mark: u64,
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<(), OneTimeError>> {
        Box::pin(async move { self.advance_now(kind, key, mark, until, now) })
    }
}

impl fmt::Debug for MemoryOneTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("MemoryOneTime");
        for kind in OneTimeKind::ALL {
            out.field(kind.as_str(), &self.len(kind));
        }
        out.field("capacity", &self.capacity).finish()
    }
}
