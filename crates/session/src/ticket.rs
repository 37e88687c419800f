//! One-time tickets that carry a value: a bearer secret handed to a client
//! and traded back, once, for what was stored with it (the IdP's session
//! tokens from `/api/v1/authn`, redeemed at `/login/sessionCookieRedirect`).
//!
//! Tickets are keyed by the SHA-256 of the secret, so no constant-time
//! comparison is needed: a lookup's timing can only reveal how the *digest*
//! of a guess relates to stored digests, and nobody can pick guesses whose
//! digests approach a stored one byte by byte.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use thiserror::Error;
use time::OffsetDateTime;

use crate::encoding::base64url;
use crate::error::StoreError;
use crate::store::StoreFuture;

/// Random bytes in a [`TicketSecret`] (256 bits).
pub const TICKET_BYTES: usize = 32;

const _: () = assert!(TICKET_BYTES * 8 >= 128);

/// Tickets held at most when not configured; issuing is rate-limited
/// upstream, so reaching this means something is wrong, and refusing is
/// safer than growing without bound.
pub const DEFAULT_TICKET_CAPACITY: usize = 100_000;

/// The bearer value of a ticket. Its `Debug` is redacted; the value leaves
/// the process only through [`expose`](Self::expose).
pub struct TicketSecret(String);

impl TicketSecret {
    pub(crate) fn generate() -> Self {
        let mut bytes = [0u8; TICKET_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self(base64url(&bytes))
    }

    /// The value to hand to the client (43 base64url characters). Never
    /// log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TicketSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TicketSecret(<redacted>)")
    }
}

/// Why a ticket was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TicketError {
    /// Never issued, or already redeemed.
    #[error("ticket is unknown or already used")]
    Unknown,
    /// Issued but past its expiry; it has now been discarded.
    #[error("ticket has expired")]
    Expired,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Outstanding tickets carrying a `T`, backend-neutral like
/// [`SessionStore`](crate::SessionStore).
pub trait TicketStore<T>: Send + Sync
where
    T: Send + Sync + Serialize + DeserializeOwned + 'static,
{
    /// Stores `value` until `expires_at` and returns the secret that
    /// redeems it. Tickets expired at `now` are dropped first, so memory
    /// follows the tickets still redeemable.
    fn issue(
        &self,
        value: T,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'_, Result<TicketSecret, StoreError>>;

    /// Trades a presented secret for its value, once. The ticket is
    /// consumed even when it has expired, so a second attempt reports
    /// `Unknown` whatever clock it brings.
    fn redeem<'a>(
        &'a self,
        presented: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<T, TicketError>>;
}

struct Pending<T> {
    value: T,
    expires_at: OffsetDateTime,
}

/// Tickets in this process's memory.
pub struct MemoryTickets<T> {
    pending: Mutex<HashMap<[u8; 32], Pending<T>>>,
    capacity: usize,
}

impl<T> Default for MemoryTickets<T> {
    fn default() -> Self {
        Self::new(DEFAULT_TICKET_CAPACITY)
    }
}

impl<T> MemoryTickets<T> {
    /// At most `capacity` live tickets; issuing more is `StoreError::Full`.
    pub fn new(capacity: usize) -> Self {
        Self {
            pending: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// Tickets held, including expired ones not yet dropped.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 32], Pending<T>>> {
        // Each operation is a single insert, remove or retain, so a panic
        // elsewhere cannot leave the map inconsistent.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn issue_now(
        &self,
        value: T,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<TicketSecret, StoreError> {
        let mut pending = self.lock();
        pending.retain(|_, p| p.expires_at > now);
        if pending.len() >= self.capacity {
            return Err(StoreError::Full);
        }
        loop {
            let secret = TicketSecret::generate();
            let key = digest(secret.expose());
            if let std::collections::hash_map::Entry::Vacant(slot) = pending.entry(key) {
                slot.insert(Pending { value, expires_at });
                return Ok(secret);
            }
        }
    }

    fn redeem_now(&self, presented: &str, now: OffsetDateTime) -> Result<T, TicketError> {
        let found = self.lock().remove(&digest(presented));
        match found {
            None => Err(TicketError::Unknown),
            Some(p) if now >= p.expires_at => Err(TicketError::Expired),
            Some(p) => Ok(p.value),
        }
    }
}

pub(crate) fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

impl<T> TicketStore<T> for MemoryTickets<T>
where
    T: Send + Sync + Serialize + DeserializeOwned + 'static,
{
    fn issue(
        &self,
        value: T,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'_, Result<TicketSecret, StoreError>> {
        Box::pin(async move { self.issue_now(value, expires_at, now) })
    }

    fn redeem<'a>(
        &'a self,
        presented: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<T, TicketError>> {
        Box::pin(async move { self.redeem_now(presented, now) })
    }
}

/// Counts only: never a secret (only digests are held anyway) nor a value.
impl<T> fmt::Debug for MemoryTickets<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryTickets")
            .field("pending", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}
